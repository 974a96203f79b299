/*
 * sem_workloads.h - the semaphore workloads of bench/WORKLOADS.md, written
 * once against a semaphore vtable (sem_t, the pthread mutex+condvar
 * semaphore, kanal's kn_sem) so that every implementation runs the same loop.
 */
#ifndef KN_BENCH_SEM_WORKLOADS_H
#define KN_BENCH_SEM_WORKLOADS_H

#include "bench.h"

struct sem_ops {
	/* A counting semaphore holding `tokens` tokens; NULL on failure. */
	void *(*new)(unsigned tokens);
	/* Takes one token, blocking while there is none; 0 or an errno value. */
	int (*acquire)(void *s);
	void (*release)(void *s);
	/* Tokens free; called only when no thread uses the semaphore. */
	unsigned (*available)(void *s);
	void (*free)(void *s);
	struct bench_runner run; /* the threads: OS threads unless set */
};

/* sem_uncontended: one thread, a semaphore of 1, N acquire+release pairs. */
void sw_uncontended(const struct sem_ops *ops, const struct bench_args *a,
		    struct bench_result *r);

/*
 * 8 threads share a semaphore of `tokens`, N pairs in all:
 * sem_contended (tokens 20) and sem_blocking (tokens 4).
 */
void sw_shared(const struct sem_ops *ops, unsigned tokens,
	       const struct bench_args *a, struct bench_result *r);

#endif

/*
 * sem_workloads.h - the semaphore workloads of bench/WORKLOADS.md, written
 * once against a semaphore vtable (sem_t, the pthread mutex+condvar
 * semaphore, kanal's kn_sem) so that every implementation runs the same loop.
 */
#ifndef KN_BENCH_SEM_WORKLOADS_H
#define KN_BENCH_SEM_WORKLOADS_H

#include <stdbool.h>

#include "bench.h"
#include "chan_workloads.h"

struct sem_ops {
	/* A counting semaphore holding `tokens` tokens; NULL on failure. */
	void *(*new)(unsigned tokens);
	/* Takes one token, blocking while there is none; 0 or an errno value. */
	int (*acquire)(void *s);
	/* Takes one token if one is there at once; false if not. */
	bool (*try_acquire)(void *s);
	void (*release)(void *s);
	/* Tokens free; called only when no thread uses the semaphore. */
	unsigned (*available)(void *s);
	void (*free)(void *s);
	struct bench_runner run; /* the threads: OS threads unless set */
	/* sem_blocking: the channel feeding the holders (its runner unused). */
	const struct chan_ops *feed;
};

/* sem_uncontended: one thread, a semaphore of 1, N acquire+release pairs. */
void sw_uncontended(const struct sem_ops *ops, const struct bench_args *a,
		    struct bench_result *r);

/* sem_contended: 8 threads share a semaphore of 20, N pairs in all. */
void sw_contended(const struct sem_ops *ops, const struct bench_args *a,
		  struct bench_result *r);

/*
 * sem_blocking: 8 threads share a semaphore of 4; each holds its token
 * across a receive from a rendezvous channel of ops->feed's kind, which a
 * feeder actor sends 0..N-1 on once every looper has made its first try.
 * Every acquire first tries; one that cannot take a token at once counts
 * as a wait (r->waits), and a run without waits fails its check.
 */
void sw_blocking(const struct sem_ops *ops, const struct bench_args *a,
		 struct bench_result *r);

#endif

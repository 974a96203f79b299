/*
 * sync_workloads.h - the lock workloads of bench/WORKLOADS.md (mutex,
 * rwmutex, condition variable), written once against a vtable of lock
 * operations (kanal's kn_mutex/kn_rwmutex/kn_cond, pthread's) so that
 * every implementation runs the same loops.
 */
#ifndef KN_BENCH_SYNC_WORKLOADS_H
#define KN_BENCH_SYNC_WORKLOADS_H

#include "bench.h"

/* One object holds a mutex, a rwmutex and a condition variable (used with
 * the mutex); each workload uses the members it needs. */
struct sync_ops {
	void *(*new)(void); /* NULL on failure */
	void (*lock)(void *o);
	void (*unlock)(void *o);
	void (*rlock)(void *o);
	void (*runlock)(void *o);
	void (*wlock)(void *o);
	void (*wunlock)(void *o);
	void (*wait)(void *o);   /* cond wait, the mutex held */
	void (*signal)(void *o); /* cond signal */
	void (*free)(void *o);
	struct bench_runner run; /* the actors: OS threads unless set */
};

/* mutex_uncontended: one actor, N lock+unlock pairs around a counter. */
void lw_mutex_uncontended(const struct sync_ops *ops, const struct bench_args *a,
			  struct bench_result *r);
/* mutex_8_contended: 8 actors, N critical sections of about 50 ns. */
void lw_mutex_contended(const struct sync_ops *ops, const struct bench_args *a,
			struct bench_result *r);
/* rwmutex_read_mostly: 8 actors, N sections, one write per 100 reads. */
void lw_rwmutex_read_mostly(const struct sync_ops *ops, const struct bench_args *a,
			    struct bench_result *r);
/* cond_pingpong: 2 actors pass a turn back and forth N times each way. */
void lw_cond_pingpong(const struct sync_ops *ops, const struct bench_args *a,
		      struct bench_result *r);

#endif

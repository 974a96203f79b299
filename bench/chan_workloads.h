/*
 * chan_workloads.h - the channel and pattern workloads of bench/WORKLOADS.md,
 * written once against a channel vtable so that every implementation (the
 * pthread baseline, ck_ring, kanal) runs exactly the same code around its
 * channel.
 *
 * An implementation fills a struct chan_ops and registers one-liners:
 *
 *	BENCH(chan_spsc, pthread) { cw_spsc(&pq_ops, a, r); }
 *
 * The actors run on OS threads unless the ops bring a runner (bench.h):
 * impl kanal_go runs the same bodies with every actor a kn_go task.
 */
#ifndef KN_BENCH_CHAN_WORKLOADS_H
#define KN_BENCH_CHAN_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

struct chan_ops {
	/* A channel of int64 items; cap 0 is a rendezvous. NULL on failure. */
	void *(*new)(size_t cap);
	/* Blocks while full; 0, or EPIPE when the channel is closed. */
	int (*send)(void *q, int64_t v);
	/* Blocks while empty; 0, or EPIPE once closed and drained. */
	int (*recv)(void *q, int64_t *v);
	/* Called once, by the sending side, when no send is in progress. */
	void (*close)(void *q);
	void (*free)(void *q);
	struct bench_runner run; /* the actors: threads unless set */
};

/* The channels of impls kanal (kanal_chan.c) and pthread (peer_pthread.c),
 * for workloads that need a channel beside what they measure. */
extern const struct chan_ops kq_ops, pq_ops;

/* chan_spsc: capacity 1024, values must arrive in order. */
void cw_spsc(const struct chan_ops *ops, const struct bench_args *a,
	     struct bench_result *r);

/* chan_mpmc_*: n producers, n consumers (n <= CW_MAX_ACTORS), one channel. */
#define CW_MAX_ACTORS 8
void cw_mpmc(const struct chan_ops *ops, int n, size_t cap,
	     const struct bench_args *a, struct bench_result *r);

/* chan_pingpong_unbuffered: round trips over two rendezvous channels. */
void cw_pingpong(const struct chan_ops *ops, const struct bench_args *a,
		 struct bench_result *r);

/* generator: an actor sends 0..N-1 into a rendezvous channel and closes it. */
void cw_generator(const struct chan_ops *ops, const struct bench_args *a,
		  struct bench_result *r);

/* pipeline_3stage (cap 0) and pipeline_3stage_buf (cap 64), with latency. */
void cw_pipeline3(const struct chan_ops *ops, size_t cap,
		  const struct bench_args *a, struct bench_result *r);

/* fanout4_fanin: generator, 4 workers, a 4-way merge, all capacity 64. */
void cw_fanout4_fanin(const struct chan_ops *ops, const struct bench_args *a,
		      struct bench_result *r);

/* worker_pool: jobs and results of capacity 100, 4 workers squaring. */
void cw_worker_pool(const struct chan_ops *ops, const struct bench_args *a,
		    struct bench_result *r);

#endif

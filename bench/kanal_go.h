/*
 * kanal_go.h - impl "kanal_go": the kanal workloads shaped as the Go
 * programs are. Every actor is a kn_go task, the one Go runs in its main
 * goroutine (the consumer, the pinger, the selector) included: the pair's
 * whole body runs as one task, the "main goroutine", and the calling thread
 * only waits for it, as Go's runtime waits for main. The body and its timed
 * region are those of impl "kanal"; only where the actors run differs.
 */
#ifndef KN_BENCH_KANAL_GO_H
#define KN_BENCH_KANAL_GO_H

#include <stddef.h>

#include "bench.h"

/* struct bench_runner hooks: the actors as kn_go tasks, joined
 * through a wait group (as Go's sync.WaitGroup). */
void *bench_go_start(int n, void *(*fn)(void *), void *args, size_t arg_size);
void bench_go_join(void *crew);

/* Runs fn(a, r) as a kn_go task and waits for it to end. */
void bench_go_main(bench_fn fn, const struct bench_args *a,
		   struct bench_result *r);

/* BENCH_GO(chan_spsc) { ... } registers the kanal_go pair of a workload,
 * its body run by bench_go_main; BENCH_GO_AS(w, impl) the same under
 * another impl name (kanal_go_batched). */
#define BENCH_GO_AS(workload, impl)                                            \
	static void bench_go_##workload##_##impl(const struct bench_args *a,   \
						 struct bench_result *r);      \
	BENCH(workload, impl)                                                  \
	{                                                                      \
		bench_go_main(bench_go_##workload##_##impl, a, r);             \
	}                                                                      \
	static void bench_go_##workload##_##impl(const struct bench_args *a,   \
						 struct bench_result *r)
#define BENCH_GO(workload) BENCH_GO_AS(workload, kanal_go)

#endif

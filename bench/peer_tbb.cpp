/*
 * peer_tbb.cpp - impl "tbb": oneTBB's task_group, a work-stealing scheduler.
 */
#include "bench.h"

#include <tbb/task_group.h>

#include <atomic>
#include <cstdint>

namespace {

/*
 * TBB builds its arena and worker threads on first use; run one task first,
 * so that, like Go's runtime and the pthread pool, it is up before the clock
 * starts.
 */
void warm_up()
{
	tbb::task_group g;

	g.run([] {});
	g.wait();
}

/* fib(n - 1) as a task, fib(n - 2) here, join; serial below 18. */
long fib(int n)
{
	if (n < BENCH_FIB_SERIAL_BELOW)
		return bench_fib_serial(n);
	long x = 0, y;
	tbb::task_group g;

	g.run([&] { x = fib(n - 1); });
	y = fib(n - 2);
	g.wait();
	return x + y;
}

} // namespace

/* Every task adds one to a shared counter, as every impl's does. */
BENCH(pool_spawn_wait, tbb)
{
	std::atomic<uint64_t> ran{0};
	tbb::task_group g;

	warm_up();
	uint64_t t0 = bench_now();
	for (uint64_t i = 0; i < a->items; i++)
		g.run([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
	g.wait();
	r->ns = bench_now() - t0;
	r->check = ran.load() == a->items ? "ok" : "tasks lost or run twice";
}

BENCH(pool_fib30, tbb)
{
	warm_up();
	bench_fib30(fib, a, r);
}

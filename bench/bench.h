/*
 * bench.h - the C side of the benchmark harness (binary kn-bench).
 *
 * Each workload/implementation pair is one function registered with BENCH().
 * The function does the work described in bench/WORKLOADS.md for a->items
 * items, times it with bench_now(), and fills the result. main() (bench/main.c)
 * parses "--workload W --impl I --items N", runs the pair and prints the JSON
 * line of the protocol.
 */
#ifndef KN_BENCH_H
#define KN_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench_args {
	uint64_t items;
};

struct bench_result {
	uint64_t ns;             /* elapsed, timed region only */
	const char *check;       /* NULL or "ok" when verified; else a message */
	uint64_t items;          /* 0: a->items; else the count to report */
	uint64_t waits;          /* >0: reported as waits_per_op (sem_blocking) */
	uint64_t release_ns;     /* >0: release_ns_per_op (blocked_1m) */
	uint64_t rss_bytes;      /* >0: rss_bytes_per_op (blocked_1m) */
	/* The runtime's system calls over the steady state (after a warm-up,
	 * bench_steady_begin/end): steady_syscalls_per_op, kanal impls. */
	uint64_t steady_syscalls, steady_items;
	const char *extra;       /* NULL, or more JSON fields: ",\"k\":v..." */
	/* allocs_ops > 0: allocs_per_op is allocs / allocs_ops, kanal's
	 * allocations over a window the workload chose (net_echo: the steady
	 * state), not the whole run's growth of kn_stat_allocs. */
	uint64_t allocs, allocs_ops;
	/* Latency workloads: samples recorded with bench_lat_record(). */
	struct bench_lat *lat;
};

typedef void (*bench_fn)(const struct bench_args *a, struct bench_result *r);

void bench_register(const char *workload, const char *impl, bench_fn fn);

/* BENCH(chan_spsc, kanal) { ... uses a, r ... } */
#define BENCH(workload, impl)                                                  \
	static void bench_##workload##_##impl(const struct bench_args *a,      \
					      struct bench_result *r);         \
	__attribute__((constructor)) static void bench_reg_##workload##_##impl(void) \
	{                                                                      \
		bench_register(#workload, #impl, bench_##workload##_##impl);  \
	}                                                                      \
	static void bench_##workload##_##impl(const struct bench_args *a,      \
					      struct bench_result *r)

/* The kanal runtime's own counters (futex calls, allocations), defined by
 * kanal_chan.c; main.c reports their growth per operation for impl kanal. */
uint64_t kn_bench_syscalls(void);
uint64_t kn_bench_allocs(void);

/* Mark the start (done: the items run so far, the warm-up) and the end
 * of the steady state of a workload whose suspensions must make no system
 * call (chan_pingpong_unbuffered); counted by the runtime itself, so only
 * for the kanal impls (0 calls elsewhere). */
void bench_steady_begin(struct bench_result *r, uint64_t done);
void bench_steady_end(struct bench_result *r, uint64_t done);
/* The registered function of a pair, or NULL (sequence_go_shaped). */
bench_fn bench_find(const char *workload, const char *impl);

/* "kn-bench: message" on stderr, exit 1: a workload that cannot set up
 * its actors or buffers cannot go on. */
__attribute__((format(printf, 1, 2), noreturn))
void bench_die(const char *fmt, ...);

/* CLOCK_MONOTONIC nanoseconds. */
uint64_t bench_now(void);

/*
 * Latency samples. bench_lat_new(n) preallocates room for n samples (no
 * allocation while recording); bench_lat_record is thread-safe (one atomic
 * increment). The harness prints p50/p99/p999 when r->lat is set and frees it.
 */
struct bench_lat;
struct bench_lat *bench_lat_new(uint64_t capacity);
void bench_lat_record(struct bench_lat *l, uint64_t ns);

/*
 * Run fn(args + i * arg_size) on n threads (i = 0..n-1) and join them;
 * returns 0 or an errno value.
 */
int bench_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

/*
 * The same, split in two so that the caller can act while the threads run:
 * bench_start returns at once (it ends the process with a message when a
 * thread cannot be created: a workload cannot go on without its actors),
 * bench_join waits for all of them and frees the crew.
 */
struct bench_crew;
struct bench_crew *bench_start(int n, void *(*fn)(void *), void *args,
			       size_t arg_size);
void bench_join(struct bench_crew *c);

/*
 * How a workload runs its actors. Both members NULL: OS threads
 * (bench_start/bench_join); impl kanal_go brings kn_go tasks (kanal_go.h).
 * start runs fn(args + i * arg_size) for i = 0..n-1 and returns at once
 * (ending the process when it cannot); join waits for all of them and
 * frees what start made.
 */
struct bench_runner {
	void *(*start)(int n, void *(*fn)(void *), void *args, size_t arg_size);
	void (*join)(void *crew);
};
void *bench_run(const struct bench_runner *how, int n, void *(*fn)(void *),
		void *args, size_t arg_size);
void bench_wait(const struct bench_runner *how, void *crew);

/*
 * The fib workloads (pool_fib30, fib30_wg): fib(n) below
 * BENCH_FIB_SERIAL_BELOW is computed serially, and bench_fib30 times
 * a->items computations of fib(30) by fib (the impl's parallel form) and
 * checks each.
 */
#define BENCH_FIB_SERIAL_BELOW 18
long bench_fib_serial(int n);
void bench_fib30(long (*fib)(int), const struct bench_args *a,
		 struct bench_result *r);

/* Sum of 0..n-1, the closed form the sum checks compare against. */
static inline uint64_t bench_sum_upto(uint64_t n)
{
	return n * (n - 1) / 2;
}

#ifdef __cplusplus
}
#endif
#endif

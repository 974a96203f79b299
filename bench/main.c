/*
 * main.c - kn-bench: the registry behind BENCH(), the command line, the JSON
 * line of the protocol (bench/WORKLOADS.md) and the small services of bench.h
 * (clock, latency samples, threads).
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Provided by the kanal side (kanal_chan.c): counters of the runtime's own
 * futex calls and allocations; reported for the kanal impls (names starting
 * "kanal") only, since the peers' system calls are not counted by them. */
#pragma weak kn_bench_syscalls
#pragma weak kn_bench_allocs

#define BENCH_MAX 256

struct entry {
	const char *workload;
	const char *impl;
	bench_fn fn;
};

static struct entry registry[BENCH_MAX];
static int registered;

void bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "kn-bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static struct entry *lookup(const char *workload, const char *impl)
{
	for (int i = 0; i < registered; i++)
		if (!strcmp(registry[i].workload, workload) &&
		    !strcmp(registry[i].impl, impl))
			return &registry[i];
	return NULL;
}

bench_fn bench_find(const char *workload, const char *impl)
{
	struct entry *e = lookup(workload, impl);

	return e ? e->fn : NULL;
}

/* Runs from constructors, before main(): a mistake here is a build bug. */
void bench_register(const char *workload, const char *impl, bench_fn fn)
{
	if (registered == BENCH_MAX)
		bench_die("more than %d workload/impl pairs", BENCH_MAX);
	if (lookup(workload, impl))
		bench_die("%s %s registered twice", workload, impl);
	registry[registered++] = (struct entry){ workload, impl, fn };
}

static uint64_t syscalls_now(void)
{
	return kn_bench_syscalls ? kn_bench_syscalls() : 0;
}

void bench_steady_begin(struct bench_result *r, uint64_t done)
{
	r->steady_syscalls = syscalls_now();
	r->steady_items = done;
}

void bench_steady_end(struct bench_result *r, uint64_t done)
{
	r->steady_syscalls = syscalls_now() - r->steady_syscalls;
	r->steady_items = done - r->steady_items;
}

long bench_fib_serial(int n)
{
	return n < 2 ? n : bench_fib_serial(n - 1) + bench_fib_serial(n - 2);
}

void bench_fib30(long (*fib)(int), const struct bench_args *a,
		 struct bench_result *r)
{
	uint64_t i, wrong = 0, t0;

	t0 = bench_now();
	for (i = 0; i < a->items; i++)
		wrong += fib(30) != 832040;
	r->ns = bench_now() - t0;
	r->check = wrong ? "fib(30) != 832040" : "ok";
}

uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency samples ---------------------------------------------------- */

struct bench_lat {
	uint64_t capacity;
	_Atomic uint64_t next;
	uint64_t sample[];
};

struct bench_lat *bench_lat_new(uint64_t capacity)
{
	size_t bytes = sizeof(struct bench_lat) + capacity * sizeof(uint64_t);
	struct bench_lat *l = malloc(bytes);

	if (!l)
		bench_die("no memory for %" PRIu64 " latency samples", capacity);
	/* Touch every page now so that recording never takes a page fault. */
	memset(l, 0, bytes);
	l->capacity = capacity;
	return l;
}

void bench_lat_record(struct bench_lat *l, uint64_t ns)
{
	uint64_t i = atomic_fetch_add_explicit(&l->next, 1, memory_order_relaxed);

	if (i < l->capacity)
		l->sample[i] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least permille/1000 at or below. */
static uint64_t rank(const uint64_t *sorted, uint64_t n, uint64_t permille)
{
	uint64_t r = (n * permille + 999) / 1000;

	return n ? sorted[r ? r - 1 : 0] : 0;
}

static void print_latency(struct bench_lat *l)
{
	uint64_t n = atomic_load_explicit(&l->next, memory_order_relaxed);

	if (n > l->capacity)
		n = l->capacity;
	qsort(l->sample, n, sizeof(uint64_t), cmp_u64);
	printf(",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
	       ",\"p999_ns\":%" PRIu64,
	       rank(l->sample, n, 500), rank(l->sample, n, 990),
	       rank(l->sample, n, 999));
}

/* ---- threads -------------------------------------------------------------- */

struct bench_crew {
	int n;
	pthread_t thread[];
};

/* Starts up to n threads; returns how many were started, errno in *err. */
static int start(pthread_t *t, int n, void *(*fn)(void *), void *args,
		 size_t arg_size, int *err)
{
	for (int i = 0; i < n; i++) {
		*err = pthread_create(&t[i], NULL, fn, (char *)args + i * arg_size);
		if (*err)
			return i;
	}
	return n;
}

struct bench_crew *bench_start(int n, void *(*fn)(void *), void *args,
			       size_t arg_size)
{
	struct bench_crew *c = malloc(sizeof(*c) + n * sizeof(pthread_t));
	int err = 0;

	if (!c)
		bench_die("no memory for %d threads", n);
	c->n = n;
	if (start(c->thread, n, fn, args, arg_size, &err) < n)
		bench_die("cannot start a thread: %s", strerror(err));
	return c;
}

void bench_join(struct bench_crew *c)
{
	for (int i = 0; i < c->n; i++)
		pthread_join(c->thread[i], NULL);
	free(c);
}

void *bench_run(const struct bench_runner *how, int n, void *(*fn)(void *),
		void *args, size_t arg_size)
{
	if (how->start)
		return how->start(n, fn, args, arg_size);
	return bench_start(n, fn, args, arg_size);
}

void bench_wait(const struct bench_runner *how, void *crew)
{
	if (how->join)
		how->join(crew);
	else
		bench_join(crew);
}

int bench_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
	pthread_t *t = malloc(n * sizeof(pthread_t));
	int err = 0, started;

	if (!t)
		return ENOMEM;
	started = start(t, n, fn, args, arg_size, &err);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
	return err;
}

/* ---- command line and report ---------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->workload, y->workload);

	return c ? c : strcmp(x->impl, y->impl);
}

static void list(void)
{
	qsort(registry, registered, sizeof(registry[0]), cmp_entry);
	for (int i = 0; i < registered; i++)
		printf("%s %s\n", registry[i].workload, registry[i].impl);
}

/* check is normally "ok" but may be any message: keep the line valid JSON. */
static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static bool counted(const struct entry *e)
{
	return kn_bench_syscalls && kn_bench_allocs &&
	       !strncmp(e->impl, "kanal", strlen("kanal"));
}

static long peak_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? 0 : ru.ru_maxrss;
}

static void report(const struct entry *e, uint64_t items,
		   const struct bench_result *r, uint64_t syscalls,
		   uint64_t allocs)
{
	printf("{\"workload\":\"%s\",\"impl\":\"%s\",\"items\":%" PRIu64
	       ",\"ns\":%" PRIu64 ",\"ns_per_op\":%.3f",
	       e->workload, e->impl, items, r->ns, (double)r->ns / items);
	if (counted(e))
		printf(",\"syscalls_per_op\":%.4f,\"allocs_per_op\":%.4f",
		       (double)syscalls / items,
		       r->allocs_ops ? (double)r->allocs / r->allocs_ops :
				       (double)allocs / items);
	if (counted(e) && r->steady_items)
		printf(",\"steady_syscalls_per_op\":%.4f",
		       (double)r->steady_syscalls / r->steady_items);
	if (r->waits)
		printf(",\"waits_per_op\":%.4f", (double)r->waits / items);
	if (r->release_ns)
		printf(",\"release_ns_per_op\":%.3f", (double)r->release_ns / items);
	if (r->rss_bytes)
		printf(",\"rss_bytes_per_op\":%.1f", (double)r->rss_bytes / items);
	printf(",\"peak_rss_kb\":%ld", peak_rss_kb());
	if (r->extra)
		fputs(r->extra, stdout);
	if (r->lat)
		print_latency(r->lat);
	printf(",\"check\":");
	print_json_string(r->check ? r->check : "ok");
	printf("}\n");
}

static void usage(void)
{
	fprintf(stderr, "usage: kn-bench --workload W --impl I --items N\n"
			"       kn-bench --list\n");
	exit(1);
}

static uint64_t parse_items(const char *s)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || *end || n == 0 || *s == '-')
		bench_die("--items wants a positive integer, not \"%s\"", s);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "workload", required_argument, NULL, 'w' },
		{ "impl", required_argument, NULL, 'i' },
		{ "items", required_argument, NULL, 'n' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *workload = NULL, *impl = NULL;
	struct bench_result r = { 0 };
	struct bench_args a = { 0 };
	uint64_t syscalls = 0, allocs = 0;
	struct entry *e;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'w': workload = optarg; break;
		case 'i': impl = optarg; break;
		case 'n': a.items = parse_items(optarg); break;
		case 'l': list(); return 0;
		default: usage();
		}
	}
	if (!workload || !impl || !a.items || optind != argc)
		usage();
	e = lookup(workload, impl);
	if (!e) {
		fprintf(stderr, "kn-bench: no workload %s for impl %s\n",
			workload, impl);
		return 2;
	}

	if (counted(e)) {
		syscalls = kn_bench_syscalls();
		allocs = kn_bench_allocs();
	}
	e->fn(&a, &r);
	if (counted(e)) {
		syscalls = kn_bench_syscalls() - syscalls;
		allocs = kn_bench_allocs() - allocs;
	}
	report(e, r.items ? r.items : a.items, &r, syscalls, allocs);
	free(r.lat);
	return !r.check || !strcmp(r.check, "ok") ? 0 : 1;
}

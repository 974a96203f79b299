/*
 * kanal_stacks.c - impl "kanal_go" of the stack and scale workloads
 * (bench/WORKLOADS.md, issue 14): Go's shapes with many tasks blocked at
 * once. Every task is a kn_go task; joins are wait groups and channels.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>

#include <kanal/chan.h>
#include <kanal/group.h>
#include <kanal/pool.h>
#include <kanal/time.h>

#include "bench.h"
#include "kanal_go.h"

static char message[128];

/* ---- skynet_1m ------------------------------------------------------------ */

/* Go's skynet: a task for num's subtree of size leaves spawns 10 children,
 * each sending its subtree's sum to a channel of capacity 10, and sends
 * the sum of the ten to its parent. */
struct sky {
	kn_chan *out;
	long num, size;
};

static void skynet(void *arg)
{
	struct sky *s = arg, kids[10];
	kn_chan *rc;
	long sum = 0, v, i, sub;

	if (s->size == 1) {
		kn_chan_send(s->out, &s->num);
		return;
	}
	rc = kn_chan_new(sizeof(long), 10);
	if (!rc)
		bench_die("no memory for a channel");
	sub = s->size / 10;
	for (i = 0; i < 10; i++) {
		kids[i] = (struct sky){ rc, s->num + i * sub, sub };
		if (kn_go(skynet, &kids[i]) != 0)
			bench_die("cannot start a task");
	}
	for (i = 0; i < 10; i++) {
		kn_chan_recv(rc, &v);
		sum += v;
	}
	/* rc is not freed: a child may still be inside its send (Go's
	 * collector frees it later; 111,111 channels of a run stay). */
	kn_chan_send(s->out, &sum);
}

/* items: leaves, rounded down to a power of ten (at least 10). */
BENCH_GO(skynet_1m)
{
	struct sky root = { kn_chan_new(sizeof(long), 1), 0, 10 };
	long sum = -1;
	uint64_t t0;

	while ((uint64_t)root.size * 10 <= a->items)
		root.size *= 10;
	if (!root.out)
		bench_die("no memory for a channel");
	t0 = bench_now();
	if (kn_go(skynet, &root) != 0)
		bench_die("cannot start a task");
	kn_chan_recv(root.out, &sum);
	r->ns = bench_now() - t0;
	r->items = (uint64_t)root.size;
	r->check = sum == root.size * (root.size - 1) / 2 ? "ok" : "wrong sum";
	kn_chan_free(root.out);
}

/* ---- fib30_wg --------------------------------------------------------------- */

struct fib_wg {
	int n;
	long r;
	kn_waitgroup wg;
};

static long fib_wg(int n);

static void fib_wg_task(void *arg)
{
	struct fib_wg *f = arg;

	f->r = fib_wg(f->n);
	kn_waitgroup_done(&f->wg);
}

/* Go's shape: fib(n - 1) in a new task that marks a wait group, fib(n - 2)
 * here, then wait (the parent suspends; no helping). */
static long fib_wg(int n)
{
	struct fib_wg c = { .n = n - 1 };
	long y;

	if (n < BENCH_FIB_SERIAL_BELOW)
		return bench_fib_serial(n);
	kn_waitgroup_init(&c.wg);
	kn_waitgroup_add(&c.wg, 1);
	if (kn_go(fib_wg_task, &c) != 0)
		bench_die("cannot start a task");
	y = fib_wg(n - 2);
	kn_waitgroup_wait(&c.wg);
	return c.r + y;
}

BENCH_GO(fib30_wg)
{
	bench_fib30(fib_wg, a, r);
}

/* ---- blocked_1m ------------------------------------------------------------- */

static uint64_t max_rss_bytes(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss * 1024;
}

struct blocked {
	kn_chan *ch;
	kn_waitgroup done;
	_Atomic uint64_t entered, epipe;
};

static void block_on_recv(void *arg)
{
	struct blocked *b = arg;
	long v;

	atomic_fetch_add_explicit(&b->entered, 1, memory_order_relaxed);
	if (kn_chan_recv(b->ch, &v) == EPIPE)
		atomic_fetch_add_explicit(&b->epipe, 1, memory_order_relaxed);
	kn_waitgroup_done(&b->done);
}

/* N tasks each blocked receiving from one channel, then the close. ns:
 * spawn until all have started (each is then blocked or about to be, and
 * nothing will send); release_ns: the close until the wait group's wait
 * returns; rss: the growth of the peak RSS over the run, per task. */
BENCH_GO(blocked_1m)
{
	struct blocked b = { .ch = kn_chan_new(sizeof(long), 0) };
	uint64_t i, t0, t1, rss0 = max_rss_bytes();

	if (!b.ch)
		bench_die("no memory for a channel");
	kn_waitgroup_init(&b.done);
	kn_waitgroup_add(&b.done, (int64_t)a->items);
	t0 = bench_now();
	for (i = 0; i < a->items; i++)
		if (kn_go(block_on_recv, &b) != 0)
			bench_die("cannot start a task");
	while (atomic_load_explicit(&b.entered, memory_order_relaxed) < a->items)
		kn_sleep(100000);
	t1 = bench_now();
	kn_chan_close(b.ch);
	kn_waitgroup_wait(&b.done);
	r->release_ns = bench_now() - t1;
	r->ns = t1 - t0;
	r->rss_bytes = max_rss_bytes() - rss0;
	if (atomic_load(&b.epipe) == a->items) {
		r->check = "ok";
	} else {
		snprintf(message, sizeof(message), "%llu of %llu receives saw the close",
			 (unsigned long long)atomic_load(&b.epipe),
			 (unsigned long long)a->items);
		r->check = message;
	}
	kn_chan_free(b.ch);
}

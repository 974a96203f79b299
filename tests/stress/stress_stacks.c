/*
 * stress_stacks.c - waves of 100,000 tasks suspended at once, released,
 * again and again on one pool: stacks are reused, never lost, never short.
 *
 * Each wave, on a 2-worker pool: 100,000 tasks (half spawned from outside
 * the pool, half by a task inside it) each receive from one rendezvous
 * channel; once all have started, a task sends 1..K (K random, below the
 * wave's size) and then the channel is closed. Checked every wave:
 *   - exactly K receives got a value, the values' sum is K(K+1)/2, the
 *     other receives saw EPIPE, and every task finished;
 *   - the pool's stats: tasks run add up over the waves, no suspension ever
 *     lacked a stack, no spare thread was needed, and the stack memory
 *     mapped stays within SLACK of the first wave's (stacks are reused;
 *     the slack covers the workers' caches, up to 64 stacks each, which
 *     may sit on the other worker than the one that needs them).
 *
 * Usage: stress_stacks [--seconds S]   (default 1; at least one wave)
 * Prints one line; exits non-zero on any discrepancy.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kanal/chan.h>
#include <kanal/pool.h>

#define STRESS_NAME "stress_stacks"
#include "stress.h"

#ifdef KN_TSAN
#define WAVE 2000 /* ThreadSanitizer keeps a large state per fiber */
#else
#define WAVE 100000
#endif

#define SLACK ((uint64_t)64 << 20)

struct wave {
	kn_pool *pool;
	kn_chan *ch;
	long k;
	atomic_long entered, got, sum, epipe, other, finished;
};

static void receiver(void *arg)
{
	struct wave *w = arg;
	long v;
	int r;

	atomic_fetch_add_explicit(&w->entered, 1, memory_order_relaxed);
	r = kn_chan_recv(w->ch, &v);
	if (r == 0) {
		atomic_fetch_add_explicit(&w->got, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->sum, v, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(r == EPIPE ? &w->epipe : &w->other, 1,
					  memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&w->finished, 1, memory_order_release);
}

static void spawner(void *arg)
{
	struct wave *w = arg;
	long i;

	for (i = 0; i < WAVE / 2; i++)
		CHECK(kn_pool_spawn(w->pool, receiver, w) == 0, "inside spawn failed");
}

static void sender(void *arg)
{
	struct wave *w = arg;
	long v;

	for (v = 1; v <= w->k; v++)
		CHECK(kn_chan_send(w->ch, &v) == 0, "send %ld failed", v);
	kn_chan_close(w->ch);
}

static void nap(void)
{
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
}

static void run_wave(kn_pool *p, long k)
{
	struct wave w = { .pool = p, .ch = kn_chan_new(sizeof(long), 0), .k = k };
	long i;

	CHECK(w.ch != NULL, "kn_chan_new failed");
	CHECK(kn_pool_spawn(p, spawner, &w) == 0, "spawn failed");
	for (i = 0; i < WAVE / 2; i++)
		CHECK(kn_pool_spawn(p, receiver, &w) == 0, "outside spawn failed");
	while (atomic_load(&w.entered) < WAVE)
		nap();
	CHECK(kn_pool_spawn(p, sender, &w) == 0, "spawn failed");
	kn_pool_wait_idle(p);
	CHECK(atomic_load(&w.finished) == WAVE, "finished %ld of %d",
	      atomic_load(&w.finished), WAVE);
	CHECK(atomic_load(&w.got) == k, "got %ld values of %ld", atomic_load(&w.got), k);
	CHECK(atomic_load(&w.sum) == k * (k + 1) / 2, "sum %ld, want %ld",
	      atomic_load(&w.sum), k * (k + 1) / 2);
	CHECK(atomic_load(&w.epipe) == WAVE - k, "EPIPE %ld, want %ld",
	      atomic_load(&w.epipe), WAVE - k);
	CHECK(atomic_load(&w.other) == 0, "%ld receives failed otherwise",
	      atomic_load(&w.other));
	kn_chan_free(w.ch);
}

int main(int argc, char **argv)
{
	struct kn_pool_opts o = { .workers = 2, .name = "stacks" };
	uint64_t end, waves = 0, rng = 88172645463325252ull, bytes = 0;
	struct kn_pool_stats st;
	double seconds = stress_args(argc, argv, NULL, NULL);
	kn_pool *p;

	p = kn_pool_new(&o);
	if (!p) {
		perror("kn_pool_new");
		return 1;
	}
	end = stress_deadline(seconds);
	do {
		run_wave(p, (long)(xorshift64(&rng) % (WAVE / 2)));
		waves++;
		kn_pool_stats(p, &st);
		/* tasks: the wave's receivers, its spawner and its sender */
		CHECK(st.tasks_run == waves * (WAVE + 2), "tasks_run %" PRIu64
		      " after %" PRIu64 " waves", st.tasks_run, waves);
		CHECK(st.stack_failures == 0, "%" PRIu64 " suspensions lacked a stack",
		      st.stack_failures);
		CHECK(st.threads == 2, "%u threads: a task held its thread", st.threads);
		if (waves == 1)
			bytes = st.stack_bytes;
		CHECK(st.stack_bytes <= bytes + SLACK, "stack memory grew from %" PRIu64
		      " to %" PRIu64 " bytes", bytes, st.stack_bytes);
	} while (kn_now() < end);
	kn_pool_free(p);
	printf("stress_stacks: %" PRIu64 " waves of %d suspended tasks, "
	       "%" PRIu64 " MiB of stacks mapped\n", waves, WAVE, bytes >> 20);
	return stress_exit();
}

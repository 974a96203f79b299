/*
 * stress_oversub.c - 64 threads on a machine with far fewer CPUs, all
 * hammering one channel and one semaphore: everyone makes progress, nobody
 * livelocks, and the books balance.
 *
 * Per configuration (channel capacity 4 and 0): 16 producers and 16
 * consumers on the channel (lone send/recv, which poll before they sleep,
 * and select), 32 threads on a semaphore of size 5 (weights 1 to 3; plain,
 * _until and _ctx acquires). A monitor samples the total of completed
 * operations every 100 ms:
 *
 *   - progress: every window in which the monitor itself ran on time (it
 *     woke within 200 ms: the process was not starved by the rest of the
 *     machine) must show more completed operations than the one before;
 *   - everyone: every one of the 64 threads completes operations (no
 *     parked thread starves while pollers take every value: notifiers
 *     never skip sleepers); the run is extended, up to 60 s, until each
 *     has, since under outside load a sleeper can lose races for a while;
 *   - no lost wake-up at the end: once the producers stop, the consumers
 *     must take everything still buffered without a close (a consumer
 *     asleep while values wait and nobody else left to wake it would
 *     stall here; the close comes only after the drain);
 *   - exact accounting: per producer, the count and the sum of the
 *     sequence numbers received equal what it sent, and arrive in order
 *     per consumer; the semaphore never has more than 5 tokens out, and is
 *     whole at the end.
 *
 * Usage: stress_oversub [--seconds S]   (S per configuration, default 1)
 * Prints one line per configuration; exits non-zero on any discrepancy.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kanal/kanal.h>

#include "stress.h"

#define PRODUCERS 16
#define CONSUMERS 16
#define SEMMERS 32
#define THREADS (PRODUCERS + CONSUMERS + SEMMERS)
#define SEM_SIZE 5
#define SEQ_BITS 40
#define WINDOW_NS (100ull * 1000 * 1000)
#define EVERYONE_NS (60ull * 1000 * 1000 * 1000)

struct shared {
	kn_chan *ch;
	kn_sem *sem;
	kn_ctx *live;
	atomic_bool stop;            /* producers and semaphore users stop */
	atomic_int in_use;           /* semaphore tokens out */
	atomic_ulong overgrants;
	atomic_ulong errors;
	atomic_ulong ops;            /* completed operations, for the monitor */
};

struct thread {
	struct shared *sh;
	pthread_t tid;
	int id;
	_Atomic uint64_t ops;        /* this thread's completed operations */
	/* producer */
	uint64_t sent, sum;
	/* consumer */
	uint64_t count[PRODUCERS], got_sum[PRODUCERS], last[PRODUCERS];
};

static void done_one(struct thread *t)
{
	atomic_store_explicit(&t->ops, atomic_load_explicit(&t->ops, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_fetch_add_explicit(&t->sh->ops, 1, memory_order_relaxed);
}

static void *produce(void *arg)
{
	struct thread *t = arg;
	struct shared *sh = t->sh;
	uint64_t seq = 1;
	int r;

	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		uint64_t v = (uint64_t)t->id << SEQ_BITS | seq;
		struct kn_case c = { sh->ch, KN_SEND, &v };

		r = t->id % 2 ? kn_chan_send(sh->ch, &v)
			      : kn_select(&c, 1, 0, KN_FOREVER, NULL, NULL);
		if (r) {
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		t->sent++;
		t->sum += seq++;
		done_one(t);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct thread *t = arg;
	struct shared *sh = t->sh;
	uint64_t v, seq;
	unsigned id;
	int r;

	for (;;) {
		struct kn_case c = { sh->ch, KN_RECV, &v };

		r = t->id % 2 ? kn_chan_recv(sh->ch, &v)
			      : kn_select(&c, 1, 0, KN_FOREVER, NULL, NULL);
		if (r) {
			if (r != EPIPE)
				atomic_fetch_add(&sh->errors, 1);
			break;
		}
		id = (unsigned)(v >> SEQ_BITS);
		seq = v & ((1ull << SEQ_BITS) - 1);
		if (id >= PRODUCERS || seq <= t->last[id]) {
			atomic_fetch_add(&sh->errors, 1);
			continue;
		}
		t->last[id] = seq;
		t->count[id]++;
		t->got_sum[id] += seq;
		done_one(t);
	}
	return NULL;
}

static void *use_sem(void *arg)
{
	struct thread *t = arg;
	struct shared *sh = t->sh;
	uint64_t i = 0;

	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		int n = 1 + (int)((i + (uint64_t)t->id) % 3), r;

		r = i % 3 == 0 ? kn_sem_acquire(sh->sem, (uint64_t)n)
		  : i % 3 == 1 ? kn_sem_acquire_until(sh->sem, (uint64_t)n, KN_FOREVER - 1)
		  : kn_sem_acquire_ctx(sh->sem, (uint64_t)n, sh->live);
		if (r) {
			atomic_fetch_add(&sh->errors, 1);
			break;
		}
		if (atomic_fetch_add(&sh->in_use, n) + n > SEM_SIZE)
			atomic_fetch_add(&sh->overgrants, 1);
		atomic_fetch_sub(&sh->in_use, n);
		if (kn_sem_release(sh->sem, (uint64_t)n))
			atomic_fetch_add(&sh->errors, 1);
		i++;
		done_one(t);
	}
	return NULL;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	nanosleep(&ts, NULL);
}

/* One window: did the operation total grow? Windows in which the monitor
 * itself was starved (woke more than two windows late) do not count. */
struct monitor {
	uint64_t last_ops, last_time;
	uint64_t windows, stalled, late;
};

static void monitor_tick(struct monitor *m, struct shared *sh)
{
	uint64_t now, ops;

	sleep_ns(WINDOW_NS);
	now = kn_now();
	ops = atomic_load(&sh->ops);
	if (now - m->last_time > 2 * WINDOW_NS)
		m->late++;
	else if (ops == m->last_ops)
		m->stalled++;
	m->windows++;
	m->last_ops = ops;
	m->last_time = now;
}

static bool someone_idle(struct thread *t)
{
	for (int i = 0; i < THREADS; i++)
		if (!atomic_load_explicit(&t[i].ops, memory_order_relaxed))
			return true;
	return false;
}

static int run(size_t cap, double seconds)
{
	struct shared sh = { 0 };
	struct thread *t = calloc(THREADS, sizeof(*t));
	struct monitor m = { 0 };
	uint64_t end, sent = 0, received = 0, discrepancies = 0, idle_threads = 0;
	uint64_t drain_windows = 0, sem_ops = 0, before;
	int i, j;

	sh.ch = kn_chan_new(sizeof(uint64_t), cap);
	sh.sem = kn_sem_new(SEM_SIZE);
	sh.live = kn_ctx_with_cancel(NULL);
	if (!t || !sh.ch || !sh.sem || !sh.live) {
		fprintf(stderr, "stress_oversub: setup failed\n");
		return 1;
	}
	for (i = 0; i < THREADS; i++) {
		void *(*fn)(void *) = i < PRODUCERS ? produce
				      : i < PRODUCERS + CONSUMERS ? consume : use_sem;

		t[i].sh = &sh;
		t[i].id = i < PRODUCERS ? i : i - PRODUCERS;
		if (pthread_create(&t[i].tid, NULL, fn, &t[i])) {
			fprintf(stderr, "stress_oversub: pthread_create failed\n");
			return 1;
		}
	}
	m.last_time = kn_now();
	end = stress_deadline(seconds);
	while (kn_now() < end)
		monitor_tick(&m, &sh);
	/* Everyone must get through, but not necessarily within the run: a
	 * machine loaded by others can leave a sleeper behind pollers for a
	 * while (wake-ups barge, as a futex mutex does). Starving for good is
	 * the bug: keep going until every thread has completed an operation,
	 * for at most EVERYONE_NS. */
	for (end = kn_deadline_in(EVERYONE_NS); someone_idle(t) && kn_now() < end;)
		monitor_tick(&m, &sh);
	atomic_store(&sh.stop, true);
	for (i = 0; i < PRODUCERS; i++)
		pthread_join(t[i].tid, NULL);
	for (i = 0; i < PRODUCERS; i++)
		sent += t[i].sent;
	/* The drain, without a close: every buffered value must be taken.
	 * It stalls for good only if a wake-up was lost: give up after 10 s
	 * of windows without a completed operation. */
	while (kn_chan_len(sh.ch) != 0 && drain_windows < 100) {
		before = atomic_load(&sh.ops);
		sleep_ns(WINDOW_NS);
		if (atomic_load(&sh.ops) == before)
			drain_windows++;
	}
	if (kn_chan_len(sh.ch) != 0) {
		fprintf(stderr, "stress_oversub: cap %zu: %zu values left buffered "
			"with every consumer asleep (lost wake-up)\n",
			cap, kn_chan_len(sh.ch));
		discrepancies++;
	}
	kn_chan_close(sh.ch);
	for (i = PRODUCERS; i < THREADS; i++)
		pthread_join(t[i].tid, NULL);

	received = 0;
	for (j = 0; j < PRODUCERS; j++) {
		uint64_t count = 0, sum = 0;

		for (i = PRODUCERS; i < PRODUCERS + CONSUMERS; i++) {
			count += t[i].count[j];
			sum += t[i].got_sum[j];
		}
		if (count != t[j].sent || sum != t[j].sum)
			discrepancies++;
		received += count;
	}
	for (i = 0; i < THREADS; i++) {
		if (t[i].ops)
			continue;
		fprintf(stderr, "stress_oversub: cap %zu: %s %d completed nothing\n",
			cap, i < PRODUCERS ? "producer" : i < PRODUCERS + CONSUMERS ?
			"consumer" : "semaphore user", t[i].id);
		idle_threads++;
	}
	for (i = PRODUCERS + CONSUMERS; i < THREADS; i++)
		sem_ops += t[i].ops;
	discrepancies += atomic_load(&sh.errors) + atomic_load(&sh.overgrants);
	if (kn_sem_available(sh.sem) != SEM_SIZE)
		discrepancies++;
	printf("stress_oversub: %d threads cap=%zu %.1fs: %" PRIu64 " items, %"
	       PRIu64 " sem ops, %" PRIu64 "/%" PRIu64 " windows stalled (%"
	       PRIu64 " late), %" PRIu64 " idle threads, %" PRIu64
	       " discrepancies\n",
	       THREADS, cap, seconds, received, sem_ops, m.stalled, m.windows,
	       m.late, idle_threads, discrepancies);
	fflush(stdout);
	kn_chan_free(sh.ch);
	kn_sem_free(sh.sem);
	kn_ctx_release(sh.live);
	free(t);
	return discrepancies || m.stalled || idle_threads || sent != received;
}

int main(int argc, char **argv)
{
	double seconds = stress_args(argc, argv, NULL, NULL);
	int failed = 0;

	failed |= run(4, seconds);
	failed |= run(0, seconds);
	return failed;
}

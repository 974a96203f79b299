/*
 * test_signals.c - blocking calls under a storm of signals.
 *
 * Threads block in channel send and receive (buffered and rendezvous,
 * plain, _until with a far deadline, _ctx with a live context), in select,
 * in semaphore acquire and in kn_ctx_wait, while a storm thread sends
 * SIGUSR1 to every one of them in a loop (pthread_kill). The handler only
 * counts. Each futex wait the signal interrupts returns EINTR (handler
 * installed without SA_RESTART) or is restarted by the kernel (with it);
 * either way kanal must neither lose nor duplicate an item, nor return an
 * error the caller did not ask for (EINTR, a spurious ETIMEDOUT or
 * ECANCELED).
 *
 * Checks: every item arrives exactly once and in order per producer; the
 * semaphore is never over-granted and every acquire succeeds; kn_ctx_wait
 * returns 0 only after the cancellation; the storm did deliver signals.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kanal/kanal.h"
#include "helpers.h"

#define ITEMS 4000      /* per producer */
#define PRODUCERS 2
#define SEM_SIZE 3
#define SEM_ROUNDS 3000

static atomic_long signals_seen;

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed);
}

/* What a worker reports back (kt_join): 0, or a code saying what broke. */
enum { OK = 0, BAD_SEND = 1, BAD_RECV, BAD_ORDER, BAD_SEM, OVERGRANT, EARLY_WAKE };

enum how { PLAIN, UNTIL, CTX, SELECT };

struct storm {
	kn_chan *ring, *zero;
	kn_sem *sem;
	atomic_int in_use;
	kn_ctx *live;       /* never cancelled during the run */
	kn_ctx *gate;       /* cancelled at the end: releases the ctx waiters */
	atomic_bool gate_cancelled;
	atomic_int busy;    /* workers not finished yet (ctx waiters excluded) */
	atomic_bool stop;
	pthread_t targets[32];
	int ntargets;
	long received;
};

struct producer {
	struct storm *s;
	kn_chan *ch;
	int id;
	enum how how;
};

struct consumer {
	struct storm *s;
	kn_chan *ch;
	enum how how;
	int64_t next[PRODUCERS];
	long count;
};

static uint64_t far(void)
{
	return kn_deadline_in(3600ull * 1000000000u);
}

static int send_one(struct producer *p, int64_t v)
{
	struct kn_case c = { p->ch, KN_SEND, &v };

	switch (p->how) {
	case UNTIL:
		return kn_chan_send_until(p->ch, &v, far());
	case CTX:
		return kn_chan_send_ctx(p->ch, &v, p->s->live);
	case SELECT:
		return kn_select(&c, 1, 0, KN_FOREVER, NULL, NULL);
	default:
		return kn_chan_send(p->ch, &v);
	}
}

static int produce(void *arg)
{
	struct producer *p = arg;
	int64_t i;
	int r = OK;

	for (i = 0; i < ITEMS && r == OK; i++)
		if (send_one(p, (int64_t)p->id << 32 | i) != 0)
			r = BAD_SEND;
	atomic_fetch_sub(&p->s->busy, 1);
	return r;
}

static int recv_one(struct consumer *c, int64_t *v)
{
	int64_t other;
	struct kn_case cases[2] = { { c->ch, KN_RECV, v }, { NULL, KN_RECV, &other } };

	switch (c->how) {
	case UNTIL:
		return kn_chan_recv_until(c->ch, v, far());
	case CTX:
		return kn_chan_recv_ctx(c->ch, v, c->s->live);
	case SELECT:
		return kn_select(cases, 2, 0, KN_FOREVER, NULL, NULL);
	default:
		return kn_chan_recv(c->ch, v);
	}
}

/* Receive until EPIPE; per producer, values arrive in order. */
static int consume(void *arg)
{
	struct consumer *c = arg;
	int64_t v;
	int r;

	while ((r = recv_one(c, &v)) == 0) {
		int id = (int)(v >> 32);

		if (id < 0 || id >= PRODUCERS || (v & 0xffffffff) < c->next[id]) {
			r = BAD_ORDER;
			break;
		}
		c->next[id] = (v & 0xffffffff) + 1;
		c->count++;
	}
	atomic_fetch_sub(&c->s->busy, 1);
	return r == EPIPE ? OK : r == BAD_ORDER ? BAD_ORDER : BAD_RECV;
}

static int sem_worker(void *arg)
{
	struct storm *s = arg;
	int i, r = OK;

	for (i = 0; i < SEM_ROUNDS && r == OK; i++) {
		int n = 1 + i % 2, held;
		int a = i % 3 == 0 ? kn_sem_acquire_until(s->sem, (uint64_t)n, far())
			: i % 3 == 1 ? kn_sem_acquire_ctx(s->sem, (uint64_t)n, s->live)
			: kn_sem_acquire(s->sem, (uint64_t)n);

		if (a != 0) {
			r = BAD_SEM;
			break;
		}
		held = atomic_fetch_add(&s->in_use, n) + n;
		if (held > SEM_SIZE)
			r = OVERGRANT;
		atomic_fetch_sub(&s->in_use, n);
		if (kn_sem_release(s->sem, (uint64_t)n) != 0)
			r = BAD_SEM;
	}
	atomic_fetch_sub(&s->busy, 1);
	return r;
}

/* Blocks until the gate is cancelled, through the signals. */
static int ctx_waiter(void *arg)
{
	struct storm *s = arg;
	int r = kn_ctx_wait(s->gate, far());

	if (r != 0)
		return BAD_RECV;
	return atomic_load(&s->gate_cancelled) ? OK : EARLY_WAKE;
}

static void *storm_main(void *arg)
{
	struct storm *s = arg;
	int i;

	while (!atomic_load(&s->stop)) {
		for (i = 0; i < s->ntargets; i++)
			pthread_kill(s->targets[i], SIGUSR1);
		sched_yield();
	}
	return NULL;
}

static void install(bool restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

static void run_storm(bool restart, kn_chan *ch, enum how how)
{
	struct storm s = { 0 };
	struct kt_thread t[32];
	struct producer prod[PRODUCERS];
	struct consumer cons[3];
	pthread_t storm_tid;
	int n = 0, i, ncons = 3, nsem = 3, nwait = 2;
	long total = 0;

	install(restart);
	atomic_store(&signals_seen, 0);
	s.sem = kn_sem_new(SEM_SIZE);
	s.live = kn_ctx_with_cancel(NULL);
	s.gate = kn_ctx_with_cancel(NULL);
	cr_assert(s.sem && s.live && s.gate);
	atomic_store(&s.busy, PRODUCERS + ncons + nsem);
	for (i = 0; i < ncons; i++) {
		cons[i] = (struct consumer){ &s, ch, (enum how)((how + i) % 4), { 0 }, 0 };
		kt_spawn(&t[n++], consume, &cons[i]);
	}
	for (i = 0; i < PRODUCERS; i++) {
		prod[i] = (struct producer){ &s, ch, i, (enum how)((how + i) % 4) };
		kt_spawn(&t[n++], produce, &prod[i]);
	}
	for (i = 0; i < nsem; i++)
		kt_spawn(&t[n++], sem_worker, &s);
	for (i = 0; i < nwait; i++)
		kt_spawn(&t[n++], ctx_waiter, &s);
	for (i = 0; i < n; i++)
		s.targets[i] = t[i].tid;
	s.ntargets = n;
	cr_assert_eq(pthread_create(&storm_tid, NULL, storm_main, &s), 0);

	/* Producers and semaphore workers finish; then close for the
	 * consumers and cancel the gate, the storm still raging. */
	while (atomic_load(&s.busy) > ncons)
		kt_pause();
	cr_assert_eq(kn_chan_close(ch), 0);
	while (atomic_load(&s.busy) > 0)
		kt_pause();
	/* The context waiters stay blocked until the gate opens: under load
	 * the storm thread may not have run yet, so let it reach them. */
	while (atomic_load(&signals_seen) == 0)
		kt_pause();
	atomic_store(&s.gate_cancelled, true);
	cr_assert_eq(kn_ctx_cancel(s.gate, 0, NULL), 0);
	for (i = ncons + PRODUCERS + nsem; i < n; i++)
		while (!kt_done(&t[i]))
			kt_pause();
	atomic_store(&s.stop, true);
	pthread_join(storm_tid, NULL);

	for (i = 0; i < n; i++)
		cr_expect_eq(kt_join(&t[i]), OK, "worker %d failed", i);
	for (i = 0; i < ncons; i++)
		total += cons[i].count;
	cr_expect_eq(total, (long)PRODUCERS * ITEMS, "items lost or duplicated");
	cr_expect_eq(kn_sem_available(s.sem), SEM_SIZE);
	cr_expect_gt(atomic_load(&signals_seen), 0, "no signal was delivered");
	cr_log_info("%s, how %d: %ld signals, %ld items\n",
		    restart ? "SA_RESTART" : "no SA_RESTART", how,
		    atomic_load(&signals_seen), total);
	kn_sem_free(s.sem);
	kn_ctx_release(s.live);
	kn_ctx_release(s.gate);
	kn_chan_free(ch);
}

Test(signals, ring_without_restart, .timeout = 300)
{
	run_storm(false, kt_chan(8, 1), PLAIN);
	run_storm(false, kt_chan(8, 4), SELECT);
}

Test(signals, ring_with_restart, .timeout = 300)
{
	run_storm(true, kt_chan(8, 1), UNTIL);
	run_storm(true, kt_chan(8, 4), CTX);
}

Test(signals, rendezvous_without_restart, .timeout = 300)
{
	run_storm(false, kt_chan(8, 0), UNTIL);
	run_storm(false, kt_chan(8, 0), SELECT);
}

Test(signals, rendezvous_with_restart, .timeout = 300)
{
	run_storm(true, kt_chan(8, 0), PLAIN);
	run_storm(true, kt_chan(8, 0), CTX);
}

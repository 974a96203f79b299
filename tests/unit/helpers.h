/*
 * helpers.h - threads and "is it blocked yet?" for the unit tests.
 *
 * Criterion asserts only on the test's own thread, so a helper thread
 * returns an int (usually the status of the call it made) that the test
 * checks after kt_join.
 *
 * Blocked-ness: a channel operation that has to wait registers a node on
 * the channel's send or receive queue before it parks (chan.c), and until
 * its partner, a close or its deadline decides it, it cannot return. So
 * "n nodes queued and the thread has not returned" is the exact,
 * timing-free meaning of "blocked". kt_wait_queued polls for it with short
 * sleeps; it gives up early if a watched thread returns, so that a thread
 * that wrongly did not block fails its test instead of hanging it.
 */
#ifndef KT_HELPERS_H
#define KT_HELPERS_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <criterion/criterion.h>

#include "chan_internal.h"

/* Small stacks: the sieve runs a thousand threads. */
#define KT_STACK (256u * 1024u)

struct kt_thread {
	pthread_t tid;
	int (*fn)(void *arg);
	void *arg;
	int ret;
	atomic_bool done;
};

static inline void *kt_trampoline(void *p)
{
	struct kt_thread *t = p;

	t->ret = t->fn(t->arg);
	atomic_store(&t->done, true);
	return NULL;
}

static inline void kt_spawn(struct kt_thread *t, int (*fn)(void *), void *arg)
{
	pthread_attr_t attr;

	t->fn = fn;
	t->arg = arg;
	t->ret = -1;
	atomic_store(&t->done, false);
	cr_assert_eq(pthread_attr_init(&attr), 0);
	cr_assert_eq(pthread_attr_setstacksize(&attr, KT_STACK), 0);
	cr_assert_eq(pthread_create(&t->tid, &attr, kt_trampoline, t), 0,
		     "pthread_create failed");
	pthread_attr_destroy(&attr);
}

static inline int kt_join(struct kt_thread *t)
{
	cr_assert_eq(pthread_join(t->tid, NULL), 0);
	return t->ret;
}

static inline bool kt_done(struct kt_thread *t)
{
	return atomic_load(&t->done);
}

/* The polling step of every wait below: short, and lets others run. */
static inline void kt_pause(void)
{
	struct timespec ts = { 0, 50 * 1000 };

	nanosleep(&ts, NULL);
}

/* Nodes queued on ch's queue of this kind: operations that are waiting. */
static inline size_t kt_queued(kn_chan *ch, int kind)
{
	struct waitq *q = kind == KN_SEND ? &ch->sendq : &ch->recvq;

	return at_load_seq_cst(&q->n);
}

/*
 * Wait until at least n operations of this kind are queued on ch. Returns
 * false, early, if one of the nt threads in t returned meanwhile (it did
 * not block as it should have).
 */
static inline bool kt_wait_queued(kn_chan *ch, int kind, size_t n,
				  struct kt_thread *t, size_t nt)
{
	size_t i;

	for (;;) {
		if (kt_queued(ch, kind) >= n)
			return true;
		for (i = 0; i < nt; i++)
			if (kt_done(&t[i]))
				return false;
		kt_pause();
	}
}

/* Is fd readable right now? */
static inline bool kt_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* A channel the test cannot do without. */
static inline kn_chan *kt_chan(size_t esize, size_t cap)
{
	kn_chan *ch = kn_chan_new(esize, cap);

	cr_assert_not_null(ch, "kn_chan_new(%zu, %zu): errno %d", esize, cap, errno);
	return ch;
}

/* Blocking send/receive of an 8-byte value that must succeed. */
static inline void kt_put(kn_chan *ch, int64_t v)
{
	cr_assert_eq(kn_chan_send(ch, &v), 0);
}

static inline int64_t kt_get(kn_chan *ch)
{
	int64_t v = -1;

	cr_assert_eq(kn_chan_recv(ch, &v), 0);
	return v;
}

/* Select cases. */
static inline struct kn_case kt_rc(kn_chan *ch, int64_t *v)
{
	return (struct kn_case){ ch, KN_RECV, v };
}

static inline struct kn_case kt_sc(kn_chan *ch, int64_t *v)
{
	return (struct kn_case){ ch, KN_SEND, v };
}

/* One 8-byte channel operation on a helper thread: kt_spawn(&t, kt_send,
 * &op); the status comes back from kt_join, a received value in op.val. */
struct kt_op {
	kn_chan *ch;
	int64_t val;
};

static inline int kt_send(void *p)
{
	struct kt_op *o = p;

	return kn_chan_send(o->ch, &o->val);
}

static inline int kt_recv(void *p)
{
	struct kt_op *o = p;

	return kn_chan_recv(o->ch, &o->val);
}

/* A helper thread that sends 0, 1, ..., n - 1 on ch: kt_spawn(&t,
 * kt_send_seq, &seq); kt_join gives 0, or the first failed send's status. */
struct kt_seq {
	kn_chan *ch;
	int64_t n;
};

static inline int kt_send_seq(void *p)
{
	struct kt_seq *a = p;
	int64_t i;
	int r;

	for (i = 0; i < a->n; i++)
		if ((r = kn_chan_send(a->ch, &i)) != 0)
			return r;
	return 0;
}

/* Deterministic per-test pseudo-random numbers: platform.h's xorshift64,
 * from a fixed nonzero state where the test's is 0. */
static inline uint64_t kt_rand(uint64_t *s)
{
	if (!*s)
		*s = 0x9e3779b97f4a7c15ull;
	return xorshift64(s);
}

#endif

/*
 * test_chan_go.c - Go's own channel tests, written for kanal (issue 4):
 * FIFO order (buffered and daisy-chained), Go's TestChan, non-blocking
 * operations on every channel kind, the double select, select fairness and
 * bias, the non-blocking races, and the prime sieve. Each test names the Go
 * test it follows. Goroutines are threads; nothing asserts on time.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "kanal/chan.h"
#include "helpers.h"

#define NOT_FIRED ((size_t)12345)

/* ---- FIFO (test/chan/fifo.go) ------------------------------------------- */

Test(go, async_fifo)
{
	enum { N = 1000 };
	kn_chan *ch = kt_chan(8, N);
	int64_t i;

	for (i = 0; i < N; i++)
		kt_put(ch, i);
	for (i = 0; i < N; i++)
		cr_assert_eq(kt_get(ch), i);
	kn_chan_free(ch);
}

/* SynchFifo: a daisy chain of threads, each waiting for its predecessor's
 * token before it takes one value from ch, so the values must come out in
 * the order they went in. */
struct link {
	kn_chan *ch, *in, *out;
	int64_t val;
};

static int chain(void *p)
{
	struct link *l = p;
	int64_t token, v;

	if (kn_chan_recv(l->in, &token) || kn_chan_recv(l->ch, &v))
		return -1;
	if (v != l->val)
		return 1;
	return kn_chan_send(l->out, &token);
}

Test(go, sync_fifo_daisy_chain)
{
	enum { N = 20 };
	size_t cap;
	int64_t i;

	for (cap = 0; cap < 5; cap += 4) {
		kn_chan *ch = kt_chan(8, cap), *links[N + 1];
		struct link l[N];
		struct kt_thread t[N];

		for (i = 0; i <= N; i++)
			links[i] = kt_chan(8, 0);
		for (i = 0; i < N; i++) {
			l[i] = (struct link){ ch, links[i], links[i + 1], i };
			kt_spawn(&t[i], chain, &l[i]);
		}
		kt_put(links[0], 0);
		for (i = 0; i < N; i++)
			kt_put(ch, i);
		cr_expect_eq(kt_get(links[N]), 0);
		for (i = 0; i < N; i++)
			cr_expect_eq(kt_join(&t[i]), 0, "cap %zu: link %ld saw disorder", cap,
				     (long)i);
		for (i = 0; i <= N; i++)
			kn_chan_free(links[i]);
		kn_chan_free(ch);
	}
}

/* ---- TestChan (runtime/chan_test.go) ---------------------------------- */

struct counted_sender {
	kn_chan *ch;
	int64_t n;
	int *hist; /* receivers: how often each value arrived */
};

static int send_upto(void *p)
{
	struct counted_sender *a = p;
	int64_t i;

	for (i = 0; i < a->n; i++)
		if (kn_chan_send(a->ch, &i))
			return -1;
	return 0;
}

static int recv_histogram(void *p)
{
	struct counted_sender *a = p;
	int64_t i, v;
	int bad = 0;

	for (i = 0; i < a->n; i++) {
		if (kn_chan_recv(a->ch, &v) || v < 0 || v >= a->n) {
			bad++;
			continue;
		}
		a->hist[v]++;
	}
	return bad;
}

static void test_chan_cap(size_t cap)
{
	kn_chan *ch = kt_chan(8, cap);
	struct kt_op op = { ch, -1 };
	struct kt_thread t, ts[4], tr[4];
	struct counted_sender cs = { ch, 100, NULL }, s4[4], r4[4];
	int64_t i, v;
	size_t fired;
	struct kn_case rc = kt_rc(ch, &v);
	int k;

	/* Receive from an empty channel blocks, until a send. */
	kt_spawn(&t, kt_recv, &op);
	cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1), "cap %zu: recv did not block", cap);
	kt_put(ch, 1);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 1);

	/* A non-blocking receive does not block. */
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	cr_expect_eq(kn_select(&rc, 1, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired), EAGAIN);

	/* A send to a full channel blocks, until a receive. */
	for (i = 0; i < (int64_t)cap; i++)
		kt_put(ch, i);
	op.val = 1000;
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1), "cap %zu: send did not block", cap);
	for (i = 0; i < (int64_t)cap; i++)
		cr_expect_eq(kt_get(ch), i);
	cr_expect_eq(kt_get(ch), 1000);
	cr_expect_eq(kt_join(&t), 0);

	/* 100 values in FIFO order, by recv and by select. */
	kt_spawn(&t, send_upto, &cs);
	for (i = 0; i < 100; i++) {
		if (i % 2) {
			cr_assert_eq(kn_select(&rc, 1, 0, KN_FOREVER, NULL, &fired), 0);
		} else {
			cr_assert_eq(kn_chan_recv(ch, &v), 0);
		}
		cr_assert_eq(v, i, "cap %zu: FIFO broken", cap);
	}
	cr_expect_eq(kt_join(&t), 0);

	/* 4 senders of 1000 values, 4 receivers: each value arrives 4 times. */
	for (k = 0; k < 4; k++) {
		s4[k] = (struct counted_sender){ ch, 1000, NULL };
		r4[k] = (struct counted_sender){ ch, 1000, calloc(1000, sizeof(int)) };
		cr_assert_not_null(r4[k].hist);
		kt_spawn(&ts[k], send_upto, &s4[k]);
		kt_spawn(&tr[k], recv_histogram, &r4[k]);
	}
	for (k = 0; k < 4; k++) {
		cr_expect_eq(kt_join(&ts[k]), 0);
		cr_expect_eq(kt_join(&tr[k]), 0);
	}
	for (i = 0; i < 1000; i++)
		cr_assert_eq(r4[0].hist[i] + r4[1].hist[i] + r4[2].hist[i] + r4[3].hist[i], 4,
			     "cap %zu: value %ld", cap, (long)i);
	for (k = 0; k < 4; k++)
		free(r4[k].hist);

	/* len and cap. */
	cr_expect_eq(kn_chan_cap(ch), cap);
	for (i = 0; i < (int64_t)cap; i++)
		kt_put(ch, i);
	for (i = 0; i < (int64_t)cap; i++) {
		cr_expect_eq(kn_chan_len(ch), cap - (size_t)i);
		cr_expect_eq(kt_get(ch), i);
	}

	/* Close: buffered values, then EPIPE (Go's zero value, ok == false). */
	for (i = 0; i < (int64_t)cap; i++)
		kt_put(ch, i);
	cr_assert_eq(kn_chan_close(ch), 0);
	for (i = 0; i < (int64_t)cap; i++)
		cr_expect_eq(kt_get(ch), i);
	cr_expect_eq(kn_chan_recv(ch, &v), EPIPE);
	cr_expect_eq(kn_chan_recv(ch, &v), EPIPE);
	kn_chan_free(ch);

	/* Close unblocks a receive. */
	ch = kt_chan(8, cap);
	op.ch = ch;
	kt_spawn(&t, kt_recv, &op);
	cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kt_join(&t), EPIPE);
	kn_chan_free(ch);
}

Test(go, test_chan)
{
	static const size_t caps[] = { 0, 1, 2, 5, 10, 100 };
	size_t i;

	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		test_chan_cap(caps[i]);
}

/* ---- non-blocking operations (test/chan/nonblock.go) -------------------- */

struct nb_partner {
	kn_chan *ch;
	unsigned char val[16];
};

static int nb_recv(void *p)
{
	struct nb_partner *a = p;

	return kn_chan_recv(a->ch, a->val);
}

static int nb_send(void *p)
{
	struct nb_partner *a = p;

	return kn_chan_send(a->ch, a->val);
}

/* One non-blocking attempt, as try_ form or as select with default. */
static int nb_try(kn_chan *ch, int kind, void *val, bool by_select)
{
	struct kn_case c = { ch, kind, val };
	size_t fired;

	if (by_select)
		return kn_select(&c, 1, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired);
	return kind == KN_SEND ? kn_chan_try_send(ch, val) : kn_chan_try_recv(ch, val);
}

/* Retry a non-blocking operation until its partner makes it possible. */
static void nb_until_done(kn_chan *ch, int kind, void *val, bool by_select)
{
	int r;

	while ((r = nb_try(ch, kind, val, by_select)) == EAGAIN)
		sched_yield();
	cr_assert_eq(r, 0);
}

static void nonblock(size_t esize, size_t cap, bool by_select)
{
	kn_chan *ch = kt_chan(esize, cap);
	struct nb_partner a = { ch, { 0 } };
	unsigned char v[16], want[16];
	struct kt_thread t;
	size_t i;

	memset(want, 0x5c, esize);
	cr_expect_eq(nb_try(ch, KN_RECV, v, by_select), EAGAIN, "empty channel ready");
	if (cap == 0)
		cr_expect_eq(nb_try(ch, KN_SEND, want, by_select), EAGAIN,
			     "rendezvous without receiver ready");
	/* Send to a receiver, without blocking. */
	kt_spawn(&t, nb_recv, &a);
	nb_until_done(ch, KN_SEND, want, by_select);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(memcmp(a.val, want, esize), 0);
	/* Receive from a sender, without blocking. */
	memset(a.val, 0x3e, esize);
	kt_spawn(&t, nb_send, &a);
	nb_until_done(ch, KN_RECV, v, by_select);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(memcmp(v, a.val, esize), 0);
	/* Buffered: exactly cap non-blocking sends fit. */
	for (i = 0; i < cap; i++)
		cr_expect_eq(nb_try(ch, KN_SEND, want, by_select), 0);
	cr_expect_eq(nb_try(ch, KN_SEND, want, by_select), EAGAIN, "full channel ready");
	for (i = 0; i < cap; i++)
		cr_expect_eq(nb_try(ch, KN_RECV, v, by_select), 0);
	cr_expect_eq(nb_try(ch, KN_RECV, v, by_select), EAGAIN);
	kn_chan_free(ch);
}

Test(go, nonblock_every_kind)
{
	static const size_t caps[] = { 0, 1, 10 };
	static const size_t sizes[] = { 1, 4, 8, 16 }; /* bool, int32, int64, string */
	size_t c, s;

	for (c = 0; c < 3; c++)
		for (s = 0; s < 4; s++) {
			nonblock(sizes[s], caps[c], false);
			nonblock(sizes[s], caps[c], true);
		}
}

/* ---- double select (test/chan/doubleselect.go) -------------------------- */

/* One sender selects among four channels for each value; four muxes
 * forward them into one channel; the receiver checks no value arrives
 * twice and none is lost. */
#define DS_N 100000

struct ds {
	kn_chan *c[4], *mux, *done;
};

static int ds_sender(void *p)
{
	struct ds *d = p;
	int64_t i;
	struct kn_case c[4];
	size_t fired;
	int k;

	for (k = 0; k < 4; k++)
		c[k] = kt_sc(d->c[k], &i);
	for (i = 0; i < DS_N; i++)
		if (kn_select(c, 4, 0, KN_FOREVER, NULL, &fired))
			return -1;
	for (k = 0; k < 4; k++)
		kn_chan_close(d->c[k]);
	return 0;
}

struct ds_mux {
	struct ds *d;
	kn_chan *in;
};

static int ds_mux(void *p)
{
	struct ds_mux *m = p;
	int64_t v;
	int r;

	while ((r = kn_chan_recv(m->in, &v)) == 0)
		if (kn_chan_send(m->d->mux, &v))
			return -1;
	if (r != EPIPE)
		return -1;
	return kn_chan_send(m->d->done, &(int64_t){ 1 });
}

static int ds_closer(void *p)
{
	struct ds *d = p;
	int64_t v;
	int k;

	for (k = 0; k < 4; k++)
		if (kn_chan_recv(d->done, &v))
			return -1;
	return kn_chan_close(d->mux);
}

Test(go, double_select)
{
	struct ds d;
	struct ds_mux m[4];
	struct kt_thread t[6];
	unsigned char *seen = calloc(DS_N, 1);
	int64_t v, got = 0;
	int k, r;

	cr_assert(seen);
	for (k = 0; k < 4; k++)
		d.c[k] = kt_chan(8, 0);
	d.mux = kt_chan(8, 0);
	d.done = kt_chan(8, 0);
	kt_spawn(&t[0], ds_sender, &d);
	for (k = 0; k < 4; k++) {
		m[k] = (struct ds_mux){ &d, d.c[k] };
		kt_spawn(&t[1 + k], ds_mux, &m[k]);
	}
	kt_spawn(&t[5], ds_closer, &d);
	while ((r = kn_chan_recv(d.mux, &v)) == 0) {
		cr_assert(v >= 0 && v < DS_N, "value %ld out of range", (long)v);
		cr_assert_not(seen[v], "got duplicate value %ld", (long)v);
		seen[v] = 1;
		got++;
	}
	cr_expect_eq(r, EPIPE);
	cr_expect_eq(got, DS_N, "%ld values lost", (long)(DS_N - got));
	for (k = 0; k < 6; k++)
		cr_expect_eq(kt_join(&t[k]), 0, "thread %d", k);
	for (k = 0; k < 4; k++)
		kn_chan_free(d.c[k]);
	kn_chan_free(d.mux);
	kn_chan_free(d.done);
	free(seen);
}

/* ---- TestSelfSelect: a select never pairs with itself ------------------ */

struct self_sel {
	kn_chan *ch;
	int64_t p;
	size_t cap;
};

static int self_select(void *arg)
{
	struct self_sel *s = arg;
	int64_t v, me = s->p;
	size_t fired;
	int i;

	for (i = 0; i < 1000; i++) {
		/* Go alternates the case order; so do we. */
		struct kn_case c[2] = { kt_sc(s->ch, &me), kt_rc(s->ch, &v) };

		if (s->p == 1 && i % 2) {
			c[0] = kt_rc(s->ch, &v);
			c[1] = kt_sc(s->ch, &me);
		}
		if (kn_select(c, 2, 0, KN_FOREVER, NULL, &fired))
			return -1;
		if (c[fired].op == KN_RECV && s->cap == 0 && v == s->p)
			return 1; /* self receive */
	}
	return 0;
}

Test(go, self_select)
{
	size_t cap;
	int p;

	for (cap = 0; cap <= 10; cap += 10) {
		kn_chan *ch = kt_chan(8, cap);
		struct self_sel s[2];
		struct kt_thread t[2];

		for (p = 0; p < 2; p++) {
			s[p] = (struct self_sel){ ch, p, cap };
			kt_spawn(&t[p], self_select, &s[p]);
		}
		for (p = 0; p < 2; p++)
			cr_expect_eq(kt_join(&t[p]), 0, "cap %zu: thread %d", cap, p);
		kn_chan_free(ch);
	}
}

/* ---- TestSelectDuplicateChannel --------------------------------------- */

struct dup_sel {
	kn_chan *c, *d, *e;
};

static int dup_select(void *arg)
{
	struct dup_sel *s = arg;
	int64_t v;
	struct kn_case c[3] = { kt_rc(s->c, &v), kt_rc(s->c, &v), kt_rc(s->d, &v) };
	size_t fired;

	if (kn_select(c, 3, 0, KN_FOREVER, NULL, &fired) || fired != 2 || v != 7)
		return -1;
	return kn_chan_send(s->e, &(int64_t){ 9 });
}

Test(go, select_duplicate_channel)
{
	size_t cap;

	for (cap = 0; cap < 2; cap++) {
		struct dup_sel s = { kt_chan(8, cap), kt_chan(8, 0), kt_chan(8, 0) };
		struct kt_op b = { s.c, -1 };
		struct kt_thread ta, tb;

		/* A queued first on c (twice), then B. */
		kt_spawn(&ta, dup_select, &s);
		cr_assert(kt_wait_queued(s.c, KN_RECV, 2, &ta, 1));
		kt_spawn(&tb, kt_recv, &b);
		cr_assert(kt_wait_queued(s.c, KN_RECV, 3, &tb, 1));
		/* Wake A through d: it must take itself off c cleanly... */
		kt_put(s.d, 7);
		cr_expect_eq(kt_get(s.e), 9);
		cr_expect_eq(kt_join(&ta), 0);
		/* ...so that this send reaches B. */
		kt_put(s.c, 8);
		cr_expect_eq(kt_join(&tb), 0);
		cr_expect_eq(b.val, 8);
		kn_chan_free(s.c);
		kn_chan_free(s.d);
		kn_chan_free(s.e);
	}
}

/* ---- TestPseudoRandomSend ------------------------------------------------- */

struct collect {
	kn_chan *ch;
	int64_t *out;
	int n;
};

static int collect(void *p)
{
	struct collect *c = p;
	int i;

	for (i = 0; i < c->n; i++) {
		sched_yield();
		if (kn_chan_recv(c->ch, &c->out[i]))
			return -1;
	}
	return 0;
}

/* A select sending 1 or 0 on the same channel, N times, to a receiver
 * that yields before each receive: both cases must fire often. */
static void pseudo_random_send(size_t cap)
{
	enum { N = 1000 };
	kn_chan *ch = kt_chan(8, cap);
	int64_t out[N], zero = 0, one = 1;
	struct collect c = { ch, out, N };
	struct kn_case sc[2] = { kt_sc(ch, &one), kt_sc(ch, &zero) };
	struct kt_thread t;
	size_t fired;
	int i, n0;

	kt_spawn(&t, collect, &c);
	for (i = 0; i < N; i++)
		cr_assert_eq(kn_select(sc, 2, 0, KN_FOREVER, NULL, &fired), 0);
	cr_expect_eq(kt_join(&t), 0);
	for (n0 = 0, i = 0; i < N; i++)
		n0 += out[i] == 0;
	cr_expect(n0 > N / 10 && N - n0 > N / 10,
		  "cap %zu: want pseudo-random, got %d zeros and %d ones", cap, n0, N - n0);
	kn_chan_free(ch);
}

Test(go, pseudo_random_send_buffered)
{
	pseudo_random_send(1000);
}

/* A select that has to wait on the same rendezvous channel twice must
 * still fire each case at random: it registers in its shuffled order. */
Test(go, pseudo_random_send_rendezvous)
{
	pseudo_random_send(0);
}

/* ---- TestSelectFairness, and the biased flag -------------------------- */

#define TRIALS 10000

/* |count - mean| within 10 sigma of a uniform choice among k (compared
 * squared: (count - mean)^2 <= 100 variance). */
static void expect_uniform(const int *count, int k, int trials, const char *what)
{
	double p = 1.0 / k, mean = trials * p, variance = trials * p * (1 - p);
	int i;

	for (i = 0; i < k; i++)
		cr_expect((count[i] - mean) * (count[i] - mean) <= 100 * variance,
			  "%s: case %d fired %d times of %d, want %.0f, variance %.0f", what,
			  i, count[i], trials, mean, variance);
}

/* Four always-ready cases: three receives from full channels, one send to
 * a channel with room. */
Test(go, select_fairness)
{
	kn_chan *ch[4];
	int64_t v[4] = { 0, 0, 0, 42 };
	struct kn_case c[4];
	int count[4] = { 0 }, i, k;
	size_t fired;

	for (k = 0; k < 4; k++) {
		ch[k] = kt_chan(8, TRIALS + 1);
		c[k] = k < 3 ? kt_rc(ch[k], &v[k]) : kt_sc(ch[k], &v[k]);
		for (i = 0; k < 3 && i <= TRIALS; i++)
			kt_put(ch[k], k);
	}
	for (i = 0; i < TRIALS; i++) {
		cr_assert_eq(kn_select(c, 4, 0, KN_FOREVER, NULL, &fired), 0);
		cr_assert_lt(fired, 4);
		count[fired]++;
	}
	expect_uniform(count, 4, TRIALS, "buffered");
	for (k = 0; k < 3; k++)
		cr_expect_eq(kn_chan_len(ch[k]), TRIALS + 1 - (size_t)count[k],
			     "case %d: values moved without firing", k);
	cr_expect_eq(kn_chan_len(ch[3]), (size_t)count[3]);
	for (k = 0; k < 4; k++)
		kn_chan_free(ch[k]);
}

static int send_until_closed(void *p)
{
	struct kt_op *o = p;
	int r;

	while ((r = kn_chan_send(o->ch, &o->val)) == 0)
		;
	return r == EPIPE ? 0 : r;
}

/* Two rendezvous channels, each with a sender waiting at every trial. */
Test(go, select_fairness_rendezvous)
{
	enum { RZ_TRIALS = 4000 };
	kn_chan *ch[2] = { kt_chan(8, 0), kt_chan(8, 0) };
	struct kt_op op[2] = { { ch[0], 0 }, { ch[1], 1 } };
	struct kt_thread t[2];
	int64_t v[2];
	struct kn_case c[2] = { kt_rc(ch[0], &v[0]), kt_rc(ch[1], &v[1]) };
	int count[2] = { 0 }, i, k;
	size_t fired;

	for (k = 0; k < 2; k++)
		kt_spawn(&t[k], send_until_closed, &op[k]);
	for (i = 0; i < RZ_TRIALS; i++) {
		for (k = 0; k < 2; k++)
			cr_assert(kt_wait_queued(ch[k], KN_SEND, 1, t, 2));
		cr_assert_eq(kn_select(c, 2, 0, KN_FOREVER, NULL, &fired), 0);
		cr_assert_eq(v[fired], (int64_t)fired);
		count[fired]++;
	}
	for (k = 0; k < 2; k++) {
		cr_assert_eq(kn_chan_close(ch[k]), 0);
		cr_expect_eq(kt_join(&t[k]), 0);
		kn_chan_free(ch[k]);
	}
	expect_uniform(count, 2, RZ_TRIALS, "rendezvous");
}

Test(go, select_biased_takes_first_ready)
{
	kn_chan *empty = kt_chan(8, 1), *a = kt_chan(8, 1), *b = kt_chan(8, 4),
		*zero = kt_chan(8, 0), *closed = kt_chan(8, 1);
	int64_t v = -1, s = 3;
	struct kn_case c[5] = { kt_rc(NULL, &v), kt_rc(empty, &v), kt_rc(a, &v),
				kt_sc(b, &s), kt_rc(closed, &v) };
	struct kn_case z[2] = { kt_rc(zero, &v), kt_rc(a, &v) };
	struct kt_op op = { zero, 0 };
	struct kt_thread t;
	size_t fired;
	int i;

	cr_assert_eq(kn_chan_close(closed), 0);
	for (i = 0; i < 1000; i++) {
		kt_put(a, i);
		cr_assert_eq(kn_select(c, 5, KN_SELECT_BIASED, KN_FOREVER, NULL, &fired), 0);
		cr_assert_eq(fired, 2);
		cr_assert_eq(v, i);
	}
	cr_expect_eq(kn_chan_len(b), 0, "a later case moved a value");
	/* With a rendezvous partner waiting, its case comes first. */
	kt_spawn(&t, send_until_closed, &op);
	for (i = 0; i < 100; i++) {
		kt_put(a, i);
		cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
		cr_assert_eq(kn_select(z, 2, KN_SELECT_BIASED, 0, NULL, &fired), 0);
		cr_assert_eq(fired, 0);
		cr_assert_eq(kt_get(a), i);
	}
	cr_assert_eq(kn_chan_close(zero), 0);
	cr_expect_eq(kt_join(&t), 0);
	kn_chan_free(empty);
	kn_chan_free(a);
	kn_chan_free(b);
	kn_chan_free(zero);
	kn_chan_free(closed);
}

/* ---- TestNonblockRecvRace ------------------------------------------------ */

/* A channel with one buffered value is closed while another thread tries
 * a non-blocking receive: the value or the close must be seen, never
 * "not ready"; and the value goes to exactly one of the two. */
static int nb_recv_race(void *p)
{
	struct kt_op *o = p;
	struct kn_case c = kt_rc(o->ch, &o->val);
	size_t fired;

	return kn_select(&c, 1, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired);
}

Test(go, nonblock_recv_race)
{
	int i, r1, r2, took;

	for (i = 0; i < 2000; i++) {
		kn_chan *ch = kt_chan(8, 1);
		struct kt_op op = { ch, -1 };
		struct kt_thread t;
		int64_t v = -1;

		kt_put(ch, 1);
		kt_spawn(&t, nb_recv_race, &op);
		cr_assert_eq(kn_chan_close(ch), 0);
		r1 = kn_chan_recv(ch, &v);
		r2 = kt_join(&t);
		cr_assert(r2 == 0 || r2 == EPIPE, "round %d: chan is not ready (%d)", i, r2);
		cr_assert(r1 == 0 || r1 == EPIPE);
		took = (r1 == 0 && v == 1) + (r2 == 0 && op.val == 1);
		cr_assert_eq(took, 1, "round %d: the value was taken %d times", i, took);
		kn_chan_free(ch);
	}
}

/* ---- TestNonblockSelectRace and TestNonblockSelectRace2 ------------------ */

/*
 * c1 holds a value; a select with default over c1 and c2 races with the
 * main thread filling (or closing) c2 and only then draining c1. At every
 * instant one of the two is ready, so the default must never be taken.
 * The wide form puts empty channels between c2 and c1, tried in order
 * (biased): the same rule, with a longer pass; its two threads meet by
 * polling (no parking: both must run at once) and the main thread varies
 * its delay, so that its two steps land inside the worker's pass.
 */
#define NBS_PAD 60

struct nbs {
	kn_chan *go, *done;
	kn_chan *pad[NBS_PAD];
	size_t npad;
};

struct nbs_round {
	kn_chan *c1, *c2;
};

/* A receive on a hand-shake channel: blocking, or polling (wide form). */
static int nbs_recv(struct nbs *w, kn_chan *ch, void *out)
{
	int r;

	if (!w->npad)
		return kn_chan_recv(ch, out);
	while ((r = kn_chan_try_recv(ch, out)) == EAGAIN)
		sched_yield();
	return r;
}

static int nbs_worker(void *p)
{
	struct nbs *w = p;
	struct nbs_round *rd;
	struct kn_case c[NBS_PAD + 2];
	unsigned flags = KN_SELECT_DEFAULT | (w->npad ? KN_SELECT_BIASED : 0);
	int64_t v, ok;
	size_t fired, k;

	while (nbs_recv(w, w->go, &rd) == 0) {
		c[0] = kt_rc(rd->c2, &v);
		for (k = 0; k < w->npad; k++)
			c[1 + k] = kt_rc(w->pad[k], &v);
		c[1 + w->npad] = kt_rc(rd->c1, &v);
		int r = kn_select(c, w->npad + 2, flags, KN_FOREVER, NULL, &fired);

		ok = r == 0 || r == EPIPE;
		if (kn_chan_send(w->done, &ok))
			return -1;
	}
	return 0;
}

static void nonblock_select_race(bool close_c2, size_t npad)
{
	struct nbs *w = calloc(1, sizeof(*w));
	struct kt_thread t;
	int64_t v, ok;
	size_t fired, k;
	int i, fails = 0;

	cr_assert(w);
	w->go = kt_chan(sizeof(void *), npad ? 1 : 0);
	w->done = kt_chan(8, npad ? 1 : 0);
	w->npad = npad;
	for (k = 0; k < npad; k++)
		w->pad[k] = kt_chan(8, 1);
	kt_spawn(&t, nbs_worker, w);
	for (i = 0; i < 10000; i++) {
		struct nbs_round rd = { kt_chan(8, 1), kt_chan(8, 1) };
		struct nbs_round *p = &rd;
		struct kn_case c1 = kt_rc(rd.c1, &v);

		kt_put(rd.c1, 1);
		cr_assert_eq(kn_chan_send(w->go, &p), 0);
		for (k = 0; npad && k < (size_t)(i % 64) * 8; k++)
			cpu_relax();
		if (close_c2)
			cr_assert_eq(kn_chan_close(rd.c2), 0);
		else
			kt_put(rd.c2, 1);
		cr_assert_neq(kn_select(&c1, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
		cr_assert_eq(nbs_recv(w, w->done, &ok), 0);
		fails += !ok;
		kn_chan_free(rd.c1);
		kn_chan_free(rd.c2);
	}
	cr_assert_eq(kn_chan_close(w->go), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(fails, 0, "%d of 10000 selects found no channel ready", fails);
	kn_chan_free(w->go);
	kn_chan_free(w->done);
	for (k = 0; k < npad; k++)
		kn_chan_free(w->pad[k]);
	free(w);
}

/* A select with a default must not take it when, at every instant, one of
 * its cases was ready (Go's TestNonblockSelectRace): the pass over ring
 * cases is validated (chan.c). */
Test(go, nonblock_select_race)
{
	nonblock_select_race(false, 0);
}

Test(go, nonblock_select_race2)
{
	nonblock_select_race(true, 0);
}

Test(go, nonblock_select_race_wide)
{
	nonblock_select_race(false, NBS_PAD);
}

/* ---- the prime sieve (test/chan/sieve1.go) --------------------------------- */

/* Generate 2, 3, 4, ... into out until quit is closed (Go's "done" idiom
 * with a select), then close out. */
struct gen {
	kn_chan *out, *quit;
};

static int generate(void *p)
{
	struct gen *g = p;
	int64_t i = 2;
	char q;
	struct kn_case c[2] = { kt_sc(g->out, &i), { g->quit, KN_RECV, &q } };
	size_t fired;
	int r;

	while ((r = kn_select(c, 2, 0, KN_FOREVER, NULL, &fired)) == 0 && fired == 0)
		i++;
	kn_chan_close(g->out);
	return r == EPIPE && fired == 1 ? 0 : -1;
}

/* Copy the values from in to out, removing those divisible by prime; on
 * the end of in, end out. */
struct stage {
	kn_chan *in, *out;
	int64_t prime;
};

static int filter(void *p)
{
	struct stage *s = p;
	int64_t v;
	int r;

	while ((r = kn_chan_recv(s->in, &v)) == 0)
		if (v % s->prime != 0 && (r = kn_chan_send(s->out, &v)) != 0)
			break;
	kn_chan_close(s->out);
	return r == EPIPE ? 0 : r;
}

#define PRIMES 1000

Test(go, prime_sieve)
{
	struct stage *st = calloc(PRIMES, sizeof(*st));
	struct kt_thread *t = calloc(PRIMES, sizeof(*t));
	int64_t *primes = calloc(PRIMES, sizeof(*primes)), v;
	kn_chan **chans = calloc(PRIMES, sizeof(*chans));
	struct gen g;
	char *composite;
	int i, n, r;

	cr_assert(st && t && primes && chans);
	g = (struct gen){ kt_chan(8, 0), kt_chan(1, 0) };
	chans[0] = g.out;
	kt_spawn(&t[0], generate, &g);
	for (i = 0; i < PRIMES; i++) {
		primes[i] = kt_get(chans[i]);
		if (i + 1 == PRIMES)
			break;
		chans[i + 1] = kt_chan(8, 0);
		st[i] = (struct stage){ chans[i], chans[i + 1], primes[i] };
		kt_spawn(&t[i + 1], filter, &st[i]);
	}
	/* Stop the generator; the end ripples down the chain. */
	cr_assert_eq(kn_chan_close(g.quit), 0);
	while ((r = kn_chan_recv(chans[PRIMES - 1], &v)) == 0)
		;
	cr_expect_eq(r, EPIPE);
	for (i = 0; i < PRIMES; i++)
		cr_expect_eq(kt_join(&t[i]), 0, "stage %d", i);

	/* The simple sieve: the 1000th prime is 7919. */
	composite = calloc(8000, 1);
	cr_assert(composite);
	for (n = 0, i = 2; i < 8000 && n < PRIMES; i++) {
		int64_t m;

		if (composite[i])
			continue;
		cr_assert_eq(primes[n], i, "prime %d: got %ld, want %d", n, (long)primes[n], i);
		n++;
		for (m = (int64_t)i * i; m < 8000; m += i)
			composite[m] = 1;
	}
	cr_expect_eq(n, PRIMES);
	for (i = 0; i < PRIMES; i++)
		kn_chan_free(chans[i]);
	kn_chan_free(g.quit);
	free(composite);
	free(chans);
	free(primes);
	free(t);
	free(st);
}

/*
 * test_select.c - rendezvous channels, select, and channel descriptors
 * (issue 4). Blocked-ness is checked through helpers.h, never by time.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "kanal/chan.h"
#include "kanal/ctx.h"
#include "helpers.h"

#define NOT_FIRED ((size_t)12345)

/* ---- rendezvous ----------------------------------------------------------- */

/* A counter the main thread bumps just before each of its operations: a
 * rendezvous partner that returns must already see its partner arrived. */
struct arrivals {
	kn_chan *ch;
	atomic_long arrived;
	long n;
};

static int send_after_arrivals(void *p)
{
	struct arrivals *a = p;
	int64_t i;

	for (i = 0; i < a->n; i++) {
		if (kn_chan_send(a->ch, &i) != 0)
			return -1;
		if (atomic_load(&a->arrived) < i + 1)
			return 1; /* returned before its receiver came */
	}
	return 0;
}

static int recv_after_arrivals(void *p)
{
	struct arrivals *a = p;
	int64_t i, v;

	for (i = 0; i < a->n; i++) {
		if (kn_chan_recv(a->ch, &v) != 0 || v != i)
			return -1;
		if (atomic_load(&a->arrived) < i + 1)
			return 1; /* returned before its sender came */
	}
	return 0;
}

Test(rendezvous, send_completes_only_with_a_receiver)
{
	struct arrivals a = { kt_chan(8, 0), 0, 200 };
	struct kt_thread t;
	int64_t i;

	cr_expect_eq(kn_chan_try_send(a.ch, &(int64_t){ 1 }), EAGAIN);
	kt_spawn(&t, send_after_arrivals, &a);
	/* First round: the sender is provably blocked before we come. */
	cr_assert(kt_wait_queued(a.ch, KN_SEND, 1, &t, 1), "send returned alone");
	cr_expect_not(kt_done(&t));
	for (i = 0; i < a.n; i++) {
		atomic_fetch_add(&a.arrived, 1);
		cr_assert_eq(kt_get(a.ch), i);
	}
	cr_expect_eq(kt_join(&t), 0, "a send returned before its receiver arrived");
	kn_chan_free(a.ch);
}

Test(rendezvous, recv_completes_only_with_a_sender)
{
	struct arrivals a = { kt_chan(8, 0), 0, 200 };
	struct kt_thread t;
	int64_t i;

	kt_spawn(&t, recv_after_arrivals, &a);
	cr_assert(kt_wait_queued(a.ch, KN_RECV, 1, &t, 1), "recv returned alone");
	for (i = 0; i < a.n; i++) {
		atomic_fetch_add(&a.arrived, 1);
		kt_put(a.ch, i);
	}
	cr_expect_eq(kt_join(&t), 0, "a recv returned before its sender arrived");
	kn_chan_free(a.ch);
}

static int select_recv_one(void *p)
{
	struct kt_op *o = p;
	struct kn_case c = kt_rc(o->ch, &o->val);
	size_t fired = NOT_FIRED;
	int r = kn_select(&c, 1, 0, KN_FOREVER, NULL, &fired);

	return r ? r : fired == 0 ? 0 : -1;
}

Test(rendezvous, try_forms_need_a_waiting_partner)
{
	kn_chan *ch = kt_chan(8, 0);
	struct kt_op op = { ch, -1 };
	struct kt_thread t;
	int64_t v = -1;

	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 1 }), EAGAIN);
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);

	kt_spawn(&t, kt_recv, &op);
	cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 2 }), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 2);
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 3 }), EAGAIN, "partner used twice");

	op.val = 4;
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1));
	cr_expect_eq(kn_chan_try_recv(ch, &v), 0);
	cr_expect_eq(v, 4);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);

	/* A partner blocked in a select counts as waiting. */
	op.val = -1;
	kt_spawn(&t, select_recv_one, &op);
	cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 5 }), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 5);

	/* A partner that gave up (deadline) is no partner any more. */
	cr_expect_eq(kn_chan_recv_until(ch, &v, kn_deadline_in(1000 * 1000)), ETIMEDOUT);
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 6 }), EAGAIN);
	kn_chan_free(ch);
}

/* ---- select: arguments and simple outcomes ------------------------------ */

Test(select, bad_arguments_are_einval)
{
	kn_chan *ch = kt_chan(8, 2);
	int64_t v = 1, w = 2;
	size_t fired = NOT_FIRED;
	struct kn_case bad_op0 = { ch, 0, &v }, bad_op3 = { ch, 3, &v };
	struct kn_case bad_opm = { ch, -1, &v };
	struct kn_case null_rval = { ch, KN_RECV, NULL }, null_sval = { ch, KN_SEND, NULL };
	struct kn_case mixed[2] = { kt_rc(ch, &w), bad_op3 };

	kt_put(ch, 7);
	cr_expect_eq(kn_select(NULL, 1, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&bad_op0, 1, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&bad_op3, 1, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&bad_opm, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&null_rval, 1, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&null_sval, 1, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(mixed, 1, 4, KN_FOREVER, NULL, &fired), EINVAL, "flag 4");
	cr_expect_eq(kn_select(mixed, 1, 0x80000000u, 0, NULL, &fired), EINVAL);
	/* A bad case anywhere fails the whole select before anything moves. */
	cr_expect_eq(kn_select(mixed, 2, 0, KN_FOREVER, NULL, &fired), EINVAL);
	cr_expect_eq(fired, NOT_FIRED, "EINVAL must leave *fired untouched");
	cr_expect_eq(w, 2);
	cr_expect_eq(kn_chan_len(ch), 1, "a failed select moved a value");
	kn_chan_free(ch);
}

Test(select, recv_on_closed_fires_epipe)
{
	kn_chan *open = kt_chan(8, 1), *ring = kt_chan(8, 2), *zero = kt_chan(8, 0);
	int64_t a = -1, b = -1;
	size_t fired;
	unsigned flags;

	kt_put(ring, 5);
	cr_assert_eq(kn_chan_close(ring), 0);
	cr_assert_eq(kn_chan_close(zero), 0);
	{
		struct kn_case c[2] = { kt_rc(open, &a), kt_rc(ring, &b) };

		/* Buffered values first, then EPIPE. */
		cr_expect_eq(kn_select(c, 2, 0, KN_FOREVER, NULL, &fired), 0);
		cr_expect_eq(fired, 1);
		cr_expect_eq(b, 5);
		for (flags = 0; flags < 4; flags++) {
			fired = NOT_FIRED;
			cr_expect_eq(kn_select(c, 2, flags, KN_FOREVER, NULL, &fired), EPIPE);
			cr_expect_eq(fired, 1, "flags %u", flags);
		}
	}
	{
		struct kn_case c[2] = { kt_rc(zero, &b), kt_rc(open, &a) };

		for (flags = 0; flags < 4; flags++) {
			fired = NOT_FIRED;
			cr_expect_eq(kn_select(c, 2, flags, 0, NULL, &fired), EPIPE);
			cr_expect_eq(fired, 0);
		}
	}
	cr_expect_eq(a, -1);
	kn_chan_free(open);
	kn_chan_free(ring);
	kn_chan_free(zero);
}

Test(select, send_on_closed_fires_epipe)
{
	kn_chan *full = kt_chan(8, 1), *ring = kt_chan(8, 2), *zero = kt_chan(8, 0);
	int64_t v = 3;
	size_t fired;
	unsigned flags;

	kt_put(full, 1);
	kt_put(ring, 1);
	kt_put(ring, 2);
	cr_assert_eq(kn_chan_close(ring), 0); /* closed and full */
	cr_assert_eq(kn_chan_close(zero), 0);
	for (flags = 0; flags < 4; flags++) {
		struct kn_case c[3] = { kt_sc(full, &v), kt_sc(ring, &v), kt_rc(NULL, NULL) };
		struct kn_case z[2] = { kt_sc(zero, &v), kt_sc(full, &v) };

		fired = NOT_FIRED;
		cr_expect_eq(kn_select(c, 3, flags, KN_FOREVER, NULL, &fired), EPIPE);
		cr_expect_eq(fired, 1);
		fired = NOT_FIRED;
		cr_expect_eq(kn_select(z, 2, flags, KN_FOREVER, NULL, &fired), EPIPE);
		cr_expect_eq(fired, 0);
	}
	cr_expect_eq(kn_chan_len(full), 1);
	cr_expect_eq(kn_chan_len(ring), 2);
	kn_chan_free(full);
	kn_chan_free(ring);
	kn_chan_free(zero);
}

Test(select, null_channel_is_never_ready)
{
	kn_chan *ch = kt_chan(8, 4);
	int64_t v = 1;
	size_t fired = NOT_FIRED;
	int i;
	/* A NULL channel's value is ignored, as for Go's nil (its op must
	 * still be a valid one: test_badinput). */
	struct kn_case nil[3] = { kt_rc(NULL, &v), kt_sc(NULL, &v), { NULL, KN_RECV, NULL } };
	struct kn_case mixed[3] = { kt_sc(NULL, &v), kt_rc(ch, &v), kt_rc(NULL, &v) };

	cr_expect_eq(kn_select(nil, 3, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired), EAGAIN);
	cr_expect_eq(kn_select(nil, 3, 0, 0, NULL, &fired), ETIMEDOUT);
	cr_expect_eq(kn_select(nil, 3, 0, kn_deadline_in(1000 * 1000), NULL, &fired),
		     ETIMEDOUT);
	cr_expect_eq(fired, NOT_FIRED);
	for (i = 0; i < 100; i++) {
		kt_put(ch, i);
		fired = NOT_FIRED;
		cr_assert_eq(kn_select(mixed, 3, 0, KN_FOREVER, NULL, &fired), 0);
		cr_assert_eq(fired, 1);
		cr_assert_eq(v, i);
	}
	kn_chan_free(ch);
}

/* Nothing is ready: an empty ring to receive from, a full one to send to,
 * rendezvous channels without partners. */
struct unready {
	kn_chan *empty, *full, *zero;
	int64_t a, b, d;
	struct kn_case cases[4];
};

static void unready_init(struct unready *u)
{
	u->empty = kt_chan(8, 2);
	u->full = kt_chan(8, 1);
	u->zero = kt_chan(8, 0);
	kt_put(u->full, 100);
	u->a = u->b = -1;
	u->d = 55;
	u->cases[0] = kt_rc(u->empty, &u->a);
	u->cases[1] = kt_sc(u->full, &u->d);
	u->cases[2] = kt_rc(u->zero, &u->b);
	u->cases[3] = kt_sc(u->zero, &u->d);
}

static void unready_check_and_free(struct unready *u)
{
	cr_expect_eq(u->a, -1);
	cr_expect_eq(u->b, -1);
	cr_expect_eq(kn_chan_len(u->empty), 0);
	cr_expect_eq(kn_chan_len(u->full), 1);
	cr_expect_eq(kt_queued(u->zero, KN_SEND) + kt_queued(u->zero, KN_RECV), 0,
		     "a select that gave up stayed queued");
	cr_expect_eq(kt_queued(u->empty, KN_RECV) + kt_queued(u->full, KN_SEND), 0);
	kn_chan_free(u->empty);
	kn_chan_free(u->full);
	kn_chan_free(u->zero);
}

Test(select, default_is_eagain)
{
	struct unready u;
	size_t fired = NOT_FIRED;

	unready_init(&u);
	cr_expect_eq(kn_select(u.cases, 4, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired),
		     EAGAIN);
	cr_expect_eq(kn_select(u.cases, 4, KN_SELECT_DEFAULT | KN_SELECT_BIASED, KN_FOREVER,
			       NULL, &fired), EAGAIN);
	cr_expect_eq(fired, NOT_FIRED);
	unready_check_and_free(&u);
}

Test(select, deadline_times_out)
{
	struct unready u;
	size_t fired = NOT_FIRED;
	uint64_t d;

	unready_init(&u);
	cr_expect_eq(kn_select(u.cases, 4, 0, 0, NULL, &fired), ETIMEDOUT);
	d = kn_deadline_in(2 * 1000 * 1000);
	cr_expect_eq(kn_select(u.cases, 4, 0, d, NULL, &fired), ETIMEDOUT);
	cr_expect_geq(kn_now(), d, "timed out before the deadline");
	cr_expect_eq(fired, NOT_FIRED);
	unready_check_and_free(&u);
}

Test(select, past_deadline_still_takes_a_ready_case)
{
	struct unready u;
	size_t fired = NOT_FIRED;

	unready_init(&u);
	kt_put(u.empty, 9);
	cr_expect_eq(kn_select(u.cases, 4, 0, 0, NULL, &fired), 0);
	cr_expect_eq(fired, 0);
	cr_expect_eq(u.a, 9);
	u.a = -1;
	unready_check_and_free(&u);
}

Test(select, empty_select)
{
	size_t fired = NOT_FIRED;
	struct kn_case c;

	cr_expect_eq(kn_select(NULL, 0, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired), EAGAIN);
	cr_expect_eq(kn_select(&c, 0, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired), EAGAIN);
	cr_expect_eq(kn_select(NULL, 0, 0, 0, NULL, &fired), ETIMEDOUT);
	cr_expect_eq(kn_select(NULL, 0, 0, kn_deadline_in(1000 * 1000), NULL, &fired),
		     ETIMEDOUT);
	cr_expect_eq(fired, NOT_FIRED);
}

/* ---- select: hand-offs and wake-ups ---------------------------------------- */

Test(select, same_channel_in_several_cases)
{
	kn_chan *ring = kt_chan(8, 2), *zero = kt_chan(8, 0);
	int64_t v[3] = { -1, -1, -1 }, s = 7;
	size_t fired = NOT_FIRED;
	struct kt_op op = { zero, 21 };
	struct kt_thread t;
	struct kn_case r3[3] = { kt_rc(ring, &v[0]), kt_rc(ring, &v[1]), kt_rc(ring, &v[2]) };
	struct kn_case z3[3] = { kt_rc(zero, &v[0]), kt_rc(zero, &v[1]), kt_rc(zero, &v[2]) };
	struct kn_case both[2] = { kt_sc(ring, &s), kt_rc(ring, &v[0]) };
	int i, sends = 0;

	/* One value, three cases on its channel: exactly one fires. */
	kt_put(ring, 11);
	cr_expect_eq(kn_select(r3, 3, 0, KN_FOREVER, NULL, &fired), 0);
	cr_assert_lt(fired, 3);
	cr_expect_eq(v[fired], 11);
	cr_expect_eq(kn_chan_len(ring), 0);
	cr_expect_eq(kn_select(r3, 3, KN_SELECT_DEFAULT, 0, NULL, &fired), EAGAIN);

	/* Send and receive on one ring: len moves by exactly one. */
	for (i = 0; i < 100; i++) {
		size_t before = kn_chan_len(ring);

		cr_assert_eq(kn_select(both, 2, 0, KN_FOREVER, NULL, &fired), 0);
		sends += fired == 0;
		cr_assert_eq(kn_chan_len(ring), fired == 0 ? before + 1 : before - 1);
	}
	cr_expect_gt(sends, 0);

	/* Rendezvous, the partner waiting first. */
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
	v[0] = v[1] = v[2] = -1;
	cr_expect_eq(kn_select(z3, 3, 0, KN_FOREVER, NULL, &fired), 0);
	cr_assert_lt(fired, 3);
	cr_expect_eq(v[fired], 21);
	cr_expect_eq(v[0] + v[1] + v[2], 21 - 2, "more than one case received");
	cr_expect_eq(kt_join(&t), 0);
	kn_chan_free(ring);
	kn_chan_free(zero);
}

struct sel_thread {
	struct kn_case *cases;
	size_t n;
	unsigned flags;
	size_t fired;
};

static int run_select(void *p)
{
	struct sel_thread *s = p;

	s->fired = NOT_FIRED;
	return kn_select(s->cases, s->n, s->flags, KN_FOREVER, NULL, &s->fired);
}

/* A select blocked over several cases of one rendezvous channel: one
 * sender completes exactly one of them, and no node is left behind. */
Test(select, blocked_select_same_rendezvous_channel)
{
	kn_chan *zero = kt_chan(8, 0);
	int64_t v[3] = { -1, -1, -1 };
	struct kn_case z3[3] = { kt_rc(zero, &v[0]), kt_rc(zero, &v[1]), kt_rc(zero, &v[2]) };
	struct sel_thread s = { z3, 3, 0, 0 };
	struct kt_thread t;

	kt_spawn(&t, run_select, &s);
	cr_assert(kt_wait_queued(zero, KN_RECV, 3, &t, 1));
	kt_put(zero, 42);
	cr_expect_eq(kt_join(&t), 0);
	cr_assert_lt(s.fired, 3);
	cr_expect_eq(v[s.fired], 42);
	cr_expect_eq(v[0] + v[1] + v[2], 42 - 2);
	cr_expect_eq(kt_queued(zero, KN_RECV), 0, "stale nodes left queued");
	cr_expect_eq(kn_chan_try_send(zero, &v[0]), EAGAIN);
	kn_chan_free(zero);
}

Test(select, rendezvous_cases_hand_off)
{
	kn_chan *zero = kt_chan(8, 0);
	struct kt_op op = { zero, 5 };
	struct kt_thread t;
	int64_t v = -1, out = 9;
	size_t fired = NOT_FIRED;
	struct kn_case rc = kt_rc(zero, &v), sc = kt_sc(zero, &out);
	struct sel_thread s = { &sc, 1, 0, 0 };

	/* Select receive with a plain sender waiting, and the reverse. */
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
	cr_expect_eq(kn_select(&rc, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), 0);
	cr_expect_eq(v, 5);
	cr_expect_eq(kt_join(&t), 0);
	op.val = -1;
	kt_spawn(&t, kt_recv, &op);
	cr_assert(kt_wait_queued(zero, KN_RECV, 1, &t, 1));
	cr_expect_eq(kn_select(&sc, 1, 0, KN_FOREVER, NULL, &fired), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 9);

	/* Blocked selects completed by plain operations. */
	kt_spawn(&t, run_select, &s);
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
	cr_expect_eq(kt_get(zero), 9);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(s.fired, 0);

	/* A blocked select send paired with a select receive. */
	out = 10;
	kt_spawn(&t, run_select, &s);
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
	v = -1;
	cr_expect_eq(kn_select(&rc, 1, 0, KN_FOREVER, NULL, &fired), 0);
	cr_expect_eq(v, 10);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(s.fired, 0);
	kn_chan_free(zero);
}

/* A select blocked over rings and rendezvous channels wakes for whichever
 * case becomes ready, and for a close. */
Test(select, blocked_select_wakes_on_any_case)
{
	kn_chan *ch[4] = { kt_chan(8, 1), kt_chan(8, 0), kt_chan(8, 3), kt_chan(8, 0) };
	int64_t v[4];
	struct kn_case c[4];
	struct sel_thread s = { c, 4, 0, 0 };
	struct kt_thread t;
	size_t k, i;

	for (k = 0; k < 4; k++)
		c[k] = kt_rc(ch[k], &v[k]);
	for (k = 0; k < 4; k++) {
		for (i = 0; i < 4; i++)
			v[i] = -1;
		kt_spawn(&t, run_select, &s);
		for (i = 0; i < 4; i++)
			cr_assert(kt_wait_queued(ch[i], KN_RECV, 1, &t, 1));
		kt_put(ch[k], 100 + (int64_t)k);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(s.fired, k);
		cr_expect_eq(v[k], 100 + (int64_t)k);
		for (i = 0; i < 4; i++)
			cr_expect_eq(kt_queued(ch[i], KN_RECV), 0);
	}
	for (k = 0; k < 4; k++) {
		kt_spawn(&t, run_select, &s);
		for (i = k; i < 4; i++)
			cr_assert(kt_wait_queued(ch[i], KN_RECV, 1, &t, 1));
		cr_assert_eq(kn_chan_close(ch[k]), 0);
		cr_expect_eq(kt_join(&t), EPIPE);
		cr_expect_eq(s.fired, k);
		c[k].ch = NULL; /* Go's idiom: a finished channel becomes nil */
	}
	for (k = 0; k < 4; k++)
		kn_chan_free(ch[k]);
}

/* ---- select racing with everything ---------------------------------------- */

/*
 * Go's TestSelectStress, with every value unique and accounted for: four
 * channels (two rendezvous, two buffered); per channel a plain sender and
 * a plain receiver of N values each; one thread sending N values to each
 * channel through one select, one receiving N from each through one
 * select. Every value must arrive exactly once, on the channel it was sent
 * to.
 */
#define RACE_N 3000
#define RACE_CH 4

struct race {
	kn_chan *ch[RACE_CH];
	atomic_uchar seen[2][RACE_CH][RACE_N];
	atomic_int errors;
};

struct race_arg {
	struct race *r;
	int k;
};

static int64_t race_val(int by_select, int k, int64_t i)
{
	return (int64_t)by_select << 40 | (int64_t)k << 32 | i;
}

static void race_record(struct race *r, int k, int64_t v)
{
	int by_select = (int)(v >> 40), vk = (int)(v >> 32 & 0xff);
	int64_t i = v & 0xffffffff;

	if (by_select > 1 || vk != k || i >= RACE_N ||
	    atomic_fetch_add(&r->seen[by_select][vk][i], 1) != 0)
		atomic_fetch_add(&r->errors, 1);
}

static int race_plain_send(void *p)
{
	struct race_arg *a = p;
	int64_t i, v;

	for (i = 0; i < RACE_N; i++) {
		v = race_val(0, a->k, i);
		if (kn_chan_send(a->r->ch[a->k], &v))
			return -1;
	}
	return 0;
}

static int race_plain_recv(void *p)
{
	struct race_arg *a = p;
	int64_t i, v;

	for (i = 0; i < RACE_N; i++) {
		if (kn_chan_recv(a->r->ch[a->k], &v))
			return -1;
		race_record(a->r, a->k, v);
	}
	return 0;
}

static int race_select(void *p)
{
	struct race_arg *a = p;
	int send = a->k == KN_SEND;
	struct kn_case c[RACE_CH];
	int64_t val[RACE_CH], count[RACE_CH] = { 0 }, i;
	size_t fired;
	int k;

	for (k = 0; k < RACE_CH; k++) {
		val[k] = race_val(1, k, 0);
		c[k] = send ? kt_sc(a->r->ch[k], &val[k]) : kt_rc(a->r->ch[k], &val[k]);
	}
	for (i = 0; i < RACE_CH * RACE_N; i++) {
		if (kn_select(c, RACE_CH, 0, KN_FOREVER, NULL, &fired) || fired >= RACE_CH)
			return -1;
		if (!send)
			race_record(a->r, (int)fired, val[fired]);
		if (++count[fired] == RACE_N)
			c[fired].ch = NULL;
		else if (send)
			val[fired] = race_val(1, (int)fired, count[fired]);
	}
	return 0;
}

Test(select, races_with_plain_operations_exactly_once)
{
	static const size_t caps[RACE_CH] = { 0, 0, 2, 3 };
	struct race *r = calloc(1, sizeof(*r));
	struct race_arg pa[RACE_CH], sel_send, sel_recv;
	struct kt_thread t[2 * RACE_CH + 2];
	int k, i, j;

	cr_assert(r);
	for (k = 0; k < RACE_CH; k++)
		r->ch[k] = kt_chan(8, caps[k]);
	for (k = 0; k < RACE_CH; k++) {
		pa[k] = (struct race_arg){ r, k };
		kt_spawn(&t[2 * k], race_plain_send, &pa[k]);
		kt_spawn(&t[2 * k + 1], race_plain_recv, &pa[k]);
	}
	sel_send = (struct race_arg){ r, KN_SEND };
	sel_recv = (struct race_arg){ r, KN_RECV };
	kt_spawn(&t[2 * RACE_CH], race_select, &sel_send);
	kt_spawn(&t[2 * RACE_CH + 1], race_select, &sel_recv);
	for (k = 0; k < 2 * RACE_CH + 2; k++)
		cr_expect_eq(kt_join(&t[k]), 0, "thread %d failed", k);
	cr_expect_eq(atomic_load(&r->errors), 0, "duplicated or misrouted values");
	for (i = 0; i < 2; i++)
		for (k = 0; k < RACE_CH; k++)
			for (j = 0; j < RACE_N; j++)
				cr_assert_eq(atomic_load(&r->seen[i][k][j]), 1,
					     "value %d/%d/%d arrived %d times", i, k, j,
					     atomic_load(&r->seen[i][k][j]));
	for (k = 0; k < RACE_CH; k++) {
		cr_expect_eq(kn_chan_len(r->ch[k]), 0);
		kn_chan_free(r->ch[k]);
	}
	free(r);
}

/*
 * Deadlines racing with hand-offs, in a select: a receiver selecting with
 * tiny deadlines over a rendezvous and a buffered channel, each fed by one
 * plain sender; and a sender selecting with tiny deadlines, retrying the
 * same value after each ETIMEDOUT, into two channels drained by plain
 * receivers. A timed-out select that moved its value anyway shows up as a
 * gap or a duplicate.
 */
#define DL_N 5000

struct dl_feed {
	kn_chan *ch;
	int64_t base;
};

static int dl_feed(void *p)
{
	struct dl_feed *f = p;
	int64_t i, v;

	for (i = 0; i < DL_N; i++) {
		v = f->base + i;
		if (kn_chan_send(f->ch, &v))
			return -1;
	}
	return kn_chan_close(f->ch);
}

Test(select, deadlines_race_with_receives)
{
	kn_chan *ch[2] = { kt_chan(8, 0), kt_chan(8, 3) };
	struct dl_feed f[2] = { { ch[0], 0 }, { ch[1], 1 << 20 } };
	struct kt_thread t[2];
	int64_t v[2], next[2] = { 0, 1 << 20 };
	struct kn_case c[2] = { kt_rc(ch[0], &v[0]), kt_rc(ch[1], &v[1]) };
	uint64_t rng = 99;
	size_t fired, open = 2;
	int r;

	kt_spawn(&t[0], dl_feed, &f[0]);
	kt_spawn(&t[1], dl_feed, &f[1]);
	while (open) {
		r = kn_select(c, 2, 0, kn_deadline_in(kt_rand(&rng) % 20000), NULL, &fired);
		if (r == ETIMEDOUT)
			continue;
		cr_assert(r == 0 || r == EPIPE, "select: %d", r);
		if (r == EPIPE) {
			c[fired].ch = NULL;
			open--;
			continue;
		}
		cr_assert_eq(v[fired], next[fired], "case %zu: got %ld, want %ld", fired,
			     (long)v[fired], (long)next[fired]);
		next[fired]++;
	}
	cr_expect_eq(next[0], DL_N);
	cr_expect_eq(next[1], (1 << 20) + DL_N);
	cr_expect_eq(kt_join(&t[0]), 0);
	cr_expect_eq(kt_join(&t[1]), 0);
	kn_chan_free(ch[0]);
	kn_chan_free(ch[1]);
}

struct dl_drain {
	kn_chan *ch;
	atomic_uchar *seen;
	int bad;
};

static int dl_drain(void *p)
{
	struct dl_drain *d = p;
	int64_t v;

	while (kn_chan_recv(d->ch, &v) == 0)
		if (v < 0 || v >= DL_N || atomic_fetch_add(&d->seen[v], 1) != 0)
			d->bad++;
	return d->bad;
}

Test(select, deadlines_race_with_sends)
{
	kn_chan *ch[2] = { kt_chan(8, 0), kt_chan(8, 2) };
	atomic_uchar *seen = calloc(DL_N, sizeof(*seen));
	struct dl_drain d[2] = { { ch[0], seen, 0 }, { ch[1], seen, 0 } };
	struct kt_thread t[2];
	int64_t i;
	struct kn_case c[2] = { kt_sc(ch[0], &i), kt_sc(ch[1], &i) };
	uint64_t rng = 5;
	size_t fired;
	int r, k;

	cr_assert(seen);
	kt_spawn(&t[0], dl_drain, &d[0]);
	kt_spawn(&t[1], dl_drain, &d[1]);
	for (i = 0; i < DL_N; i++) {
		do
			r = kn_select(c, 2, 0, kn_deadline_in(kt_rand(&rng) % 20000), NULL,
				      &fired);
		while (r == ETIMEDOUT);
		cr_assert_eq(r, 0);
	}
	cr_assert_eq(kn_chan_close(ch[0]), 0);
	cr_assert_eq(kn_chan_close(ch[1]), 0);
	cr_expect_eq(kt_join(&t[0]), 0, "duplicates on the rendezvous channel");
	cr_expect_eq(kt_join(&t[1]), 0, "duplicates on the buffered channel");
	for (k = 0; k < DL_N; k++)
		cr_assert_eq(atomic_load(&seen[k]), 1, "value %d arrived %d times", k,
			     atomic_load(&seen[k]));
	kn_chan_free(ch[0]);
	kn_chan_free(ch[1]);
	free(seen);
}

/* ---- many cases, allocation ------------------------------------------------- */

#define MANY 40

Test(select, more_cases_than_the_stack_holds)
{
	kn_chan *ch[MANY];
	int64_t v[MANY];
	struct kn_case c[MANY];
	struct sel_thread s = { c, MANY, 0, 0 };
	struct kt_thread t;
	size_t k, fired;
	unsigned flags;

	cr_assert_gt(MANY, KN_SELECT_STACK_CASES);
	/* Even cases rendezvous, odd ones buffered. */
	for (k = 0; k < MANY; k++) {
		ch[k] = kt_chan(8, k % 2);
		v[k] = -1;
		c[k] = kt_rc(ch[k], &v[k]);
	}
	for (flags = 0; flags <= KN_SELECT_BIASED; flags += KN_SELECT_BIASED) {
		kt_put(ch[37], 370);
		fired = NOT_FIRED;
		cr_expect_eq(kn_select(c, MANY, flags, KN_FOREVER, NULL, &fired), 0);
		cr_expect_eq(fired, 37);
		cr_expect_eq(v[37], 370);
		cr_expect_eq(kn_select(c, MANY, flags | KN_SELECT_DEFAULT, 0, NULL, &fired),
			     EAGAIN);
	}
	/* Blocked over all of them; woken by a rendezvous, then a ring. */
	for (fired = 22; fired < 24; fired++) {
		kt_spawn(&t, run_select, &s);
		for (k = 0; k < MANY; k++)
			cr_assert(kt_wait_queued(ch[k], KN_RECV, 1, &t, 1));
		kt_put(ch[fired], (int64_t)fired);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(s.fired, fired);
		cr_expect_eq(v[fired], (int64_t)fired);
		for (k = 0; k < MANY; k++)
			cr_expect_eq(kt_queued(ch[k], KN_RECV), 0, "case %zu left queued", k);
	}
	for (k = 0; k < MANY; k++)
		kn_chan_free(ch[k]);
}

static void select_allocs(size_t n, uint64_t want_per_call)
{
	kn_chan *ch[KN_SELECT_STACK_CASES + 1];
	int64_t v[KN_SELECT_STACK_CASES + 1];
	struct kn_case c[KN_SELECT_STACK_CASES + 1];
	uint64_t allocs, calls;
	size_t k, fired;
	int i;

	for (k = 0; k < n; k++) {
		ch[k] = kt_chan(8, 4);
		kt_put(ch[k], (int64_t)k);
		c[k] = kt_rc(ch[k], &v[k]);
	}
	allocs = kn_stat_allocs();
	calls = kn_stat_syscalls();
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(kn_select(c, n, 0, KN_FOREVER, NULL, &fired), 0);
		cr_assert_eq(kn_chan_try_send(ch[fired], &v[fired]), 0);
	}
	cr_expect_eq(kn_stat_allocs() - allocs, 1000 * want_per_call,
		     "%zu cases: %lu allocations in 1000 selects", n,
		     (unsigned long)(kn_stat_allocs() - allocs));
	cr_expect_eq(kn_stat_syscalls(), calls, "a ready select made system calls");
	for (k = 0; k < n; k++)
		kn_chan_free(ch[k]);
}

Test(select, no_allocation_up_to_stack_cases)
{
	select_allocs(1, 0);
	select_allocs(KN_SELECT_STACK_CASES, 0);
	select_allocs(KN_SELECT_STACK_CASES + 1, 1);
}

Test(select, null_ctx_behaves_like_none)
{
	kn_chan *ch = kt_chan(8, 1);
	int64_t v = 4;
	size_t fired = NOT_FIRED;
	struct kn_case c = kt_rc(ch, &v);

	cr_expect_eq(kn_select(&c, 1, 0, 0, NULL, &fired), ETIMEDOUT);
	kt_put(ch, 8);
	cr_expect_eq(kn_select(&c, 1, 0, KN_FOREVER, NULL, &fired), 0);
	cr_expect_eq(v, 8);
	cr_expect_eq(fired, 0);
	kn_chan_free(ch);
}

Test(select, cancelled_ctx_fails_even_when_ready)
{
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	kn_chan *ch = kt_chan(8, 1);
	int64_t v = -1;
	size_t fired = NOT_FIRED;
	struct kn_case c = kt_rc(ch, &v);

	cr_assert_not_null(ctx);
	cr_assert_eq(kn_ctx_cancel(ctx, 0, NULL), 0);
	kt_put(ch, 8);
	cr_expect_eq(kn_select(&c, 1, 0, KN_FOREVER, ctx, &fired), ECANCELED);
	cr_expect_eq(kn_select(&c, 1, KN_SELECT_DEFAULT, 0, ctx, &fired), ECANCELED);
	cr_expect_eq(kn_select(NULL, 0, 0, KN_FOREVER, ctx, &fired), ECANCELED);
	cr_expect_eq(fired, NOT_FIRED);
	cr_expect_eq(v, -1);
	cr_expect_eq(kn_chan_len(ch), 1);
	kn_chan_free(ch);
	kn_ctx_release(ctx);
}

struct ctx_select {
	struct kn_case *cases;
	size_t n;
	kn_ctx *ctx;
	size_t fired;
};

static int select_with_ctx(void *p)
{
	struct ctx_select *s = p;

	s->fired = NOT_FIRED;
	return kn_select(s->cases, s->n, 0, KN_FOREVER, s->ctx, &s->fired);
}

/* A select blocked over a ring and a rendezvous channel, and an empty
 * select (Go's select {} with a context), end on cancellation. */
Test(select, cancel_wakes_a_blocked_select)
{
	kn_chan *ring = kt_chan(8, 1), *zero = kt_chan(8, 0);
	int64_t a = -1, b = -1;
	struct kn_case c[2] = { kt_rc(ring, &a), kt_sc(zero, &b) };
	struct ctx_select s = { c, 2, kn_ctx_with_cancel(NULL), 0 };
	struct ctx_select e = { NULL, 0, kn_ctx_with_cancel(NULL), 0 };
	struct kt_thread t[2];

	cr_assert(s.ctx && e.ctx);
	kt_spawn(&t[0], select_with_ctx, &s);
	kt_spawn(&t[1], select_with_ctx, &e);
	cr_assert(kt_wait_queued(ring, KN_RECV, 1, t, 1));
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, t, 1));
	cr_assert_eq(kn_ctx_cancel(s.ctx, 0, NULL), 0);
	cr_expect_eq(kt_join(&t[0]), ECANCELED);
	cr_expect_eq(s.fired, NOT_FIRED);
	cr_expect_eq(kt_queued(ring, KN_RECV) + kt_queued(zero, KN_SEND), 0);
	cr_expect_eq(kn_chan_try_recv(zero, &a), EAGAIN, "a cancelled select delivered");
	cr_expect_not(kt_done(&t[1]), "an empty select returned by itself");
	cr_assert_eq(kn_ctx_cancel(e.ctx, 0, NULL), 0);
	cr_expect_eq(kt_join(&t[1]), ECANCELED);
	kn_chan_free(ring);
	kn_chan_free(zero);
	kn_ctx_release(s.ctx);
	kn_ctx_release(e.ctx);
}

/* ---- descriptors --------------------------------------------------------- */

Test(fd, bad_arguments)
{
	kn_chan *ch = kt_chan(8, 1);

	errno = 0;
	cr_expect_eq(kn_chan_fd(ch, 0), -1);
	cr_expect_eq(errno, EINVAL);
	errno = 0;
	cr_expect_eq(kn_chan_fd(ch, KN_SEND | KN_RECV), -1);
	cr_expect_eq(errno, EINVAL);
	kn_chan_free(ch);
}

Test(fd, one_descriptor_per_direction)
{
	kn_chan *ch = kt_chan(8, 1);
	int r = kn_chan_fd(ch, KN_RECV), s = kn_chan_fd(ch, KN_SEND);

	cr_assert_geq(r, 0);
	cr_assert_geq(s, 0);
	cr_expect_neq(r, s);
	cr_expect_eq(kn_chan_fd(ch, KN_RECV), r);
	cr_expect_eq(kn_chan_fd(ch, KN_SEND), s);
	kn_chan_free(ch);
	/* The channel owned them. */
	cr_expect_eq(fcntl(r, F_GETFD), -1);
	cr_expect_eq(fcntl(s, F_GETFD), -1);
}

Test(fd, recv_fd_follows_values_and_close)
{
	kn_chan *ch = kt_chan(8, 2);
	int fd = kn_chan_fd(ch, KN_RECV);
	int64_t v;

	cr_assert_geq(fd, 0);
	cr_expect_not(kt_readable(fd), "empty channel readable");
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	cr_expect_not(kt_readable(fd));
	cr_assert_eq(kn_chan_try_send(ch, &(int64_t){ 1 }), 0);
	cr_expect(kt_readable(fd), "a value but not readable");
	cr_assert_eq(kn_chan_try_send(ch, &(int64_t){ 2 }), 0);
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 3 }), EAGAIN);
	cr_expect(kt_readable(fd));
	cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
	cr_expect(kt_readable(fd), "one value left but not readable");
	cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
	cr_expect_not(kt_readable(fd), "drained but still readable");
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	cr_expect_not(kt_readable(fd));
	/* Many laps: level and value stay in step. */
	for (v = 0; v < 1000; v++) {
		kt_put(ch, v);
		cr_assert(kt_readable(fd));
		cr_assert_eq(kt_get(ch), v);
		cr_assert_not(kt_readable(fd));
	}
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kt_readable(fd), "closed but not readable");
	cr_expect_eq(kn_chan_try_recv(ch, &v), EPIPE);
	cr_expect(kt_readable(fd), "closed and drained must stay readable");
	kn_chan_free(ch);
}

Test(fd, send_fd_follows_room_and_close)
{
	kn_chan *ch = kt_chan(8, 2);
	int fd = kn_chan_fd(ch, KN_SEND);
	int64_t v;

	cr_assert_geq(fd, 0);
	cr_expect(kt_readable(fd), "room but not readable");
	cr_assert_eq(kn_chan_try_send(ch, &(int64_t){ 1 }), 0);
	cr_expect(kt_readable(fd));
	cr_assert_eq(kn_chan_try_send(ch, &(int64_t){ 2 }), 0);
	cr_expect_not(kt_readable(fd), "full but readable");
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 3 }), EAGAIN);
	cr_expect_not(kt_readable(fd));
	cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
	cr_expect(kt_readable(fd), "room again but not readable");
	cr_assert_eq(kn_chan_try_send(ch, &(int64_t){ 3 }), 0);
	cr_expect_not(kt_readable(fd));
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kt_readable(fd), "closed but not readable");
	kn_chan_free(ch);
}

/* A descriptor asked for late starts in the channel's current state. */
Test(fd, created_late_reflects_state)
{
	kn_chan *ch = kt_chan(8, 1);
	int r, s;

	kt_put(ch, 1);
	r = kn_chan_fd(ch, KN_RECV);
	s = kn_chan_fd(ch, KN_SEND);
	cr_assert_geq(r, 0);
	cr_assert_geq(s, 0);
	cr_expect(kt_readable(r));
	cr_expect_not(kt_readable(s));
	kn_chan_free(ch);
}

Test(fd, select_moves_the_level)
{
	kn_chan *ch = kt_chan(8, 1);
	int r = kn_chan_fd(ch, KN_RECV), s = kn_chan_fd(ch, KN_SEND);
	int64_t v = 5;
	size_t fired;
	struct kn_case sc = kt_sc(ch, &v), rc = kt_rc(ch, &v);

	cr_assert_eq(kn_select(&sc, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), 0);
	cr_expect(kt_readable(r));
	cr_expect_not(kt_readable(s));
	cr_assert_eq(kn_select(&rc, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), 0);
	cr_expect_not(kt_readable(r));
	cr_expect(kt_readable(s));
	kn_chan_free(ch);
}

static void wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	cr_assert_eq(poll(&p, 1, -1), 1);
	cr_assert(p.revents & POLLIN);
}

/* The level falls once every thread's update has finished: an update that
 * finds another one syncing the fd leaves the final sync to it (chan.c), so
 * right after our own operation the partner's may still be under way. */
static bool settles_unreadable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int i;

	for (i = 0; i < 5000; i++) {
		if (poll(&p, 1, 0) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

/* Rendezvous: readable to receive while a sender waits, to send while a
 * receiver waits. Rising edges come from the other thread and falling ones
 * may finish on it, so both are waited for. */
Test(fd, rendezvous_fds_follow_partners)
{
	kn_chan *ch = kt_chan(8, 0);
	int r = kn_chan_fd(ch, KN_RECV), s = kn_chan_fd(ch, KN_SEND);
	struct kt_op op = { ch, 61 };
	struct kt_thread t;
	int64_t v;

	cr_assert_geq(r, 0);
	cr_assert_geq(s, 0);
	cr_expect_not(kt_readable(r));
	cr_expect_not(kt_readable(s));

	kt_spawn(&t, kt_send, &op);
	wait_readable(r);
	cr_expect_not(kt_readable(s));
	cr_expect_eq(kn_chan_try_recv(ch, &v), 0);
	cr_expect_eq(v, 61);
	cr_expect(settles_unreadable(r), "no sender left but readable");
	cr_expect_eq(kt_join(&t), 0);

	kt_spawn(&t, kt_recv, &op);
	wait_readable(s);
	cr_expect_not(kt_readable(r));
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 62 }), 0);
	cr_expect(settles_unreadable(s), "no receiver left but readable");
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 62);

	/* A sender that gives up lowers the level again. */
	cr_expect_eq(kn_chan_send_until(ch, &v, kn_deadline_in(1000 * 1000)), ETIMEDOUT);
	cr_expect_not(kt_readable(r));

	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kt_readable(r));
	cr_expect(kt_readable(s));
	kn_chan_free(ch);
}

struct poller {
	kn_chan *ch;
	int fd;
	int kind;
	int64_t val;
};

/* An event loop of one descriptor: poll, then try until it works. */
static int poll_then_try(void *p)
{
	struct poller *a = p;
	struct pollfd pf = { .fd = a->fd, .events = POLLIN };
	int r;

	do {
		if (poll(&pf, 1, -1) != 1)
			return -1;
		r = a->kind == KN_RECV ? kn_chan_try_recv(a->ch, &a->val)
				       : kn_chan_try_send(a->ch, &a->val);
	} while (r == EAGAIN);
	return r;
}

Test(fd, poll_wakes_an_event_loop)
{
	size_t cap;

	for (cap = 0; cap < 3; cap += 2) {
		kn_chan *ch = kt_chan(8, cap);
		struct poller rp = { ch, kn_chan_fd(ch, KN_RECV), KN_RECV, -1 };
		struct poller sp = { ch, kn_chan_fd(ch, KN_SEND), KN_SEND, 77 };
		struct kt_thread t;
		size_t i;

		cr_assert_geq(rp.fd, 0);
		cr_assert_geq(sp.fd, 0);
		kt_spawn(&t, poll_then_try, &rp);
		kt_put(ch, 76);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(rp.val, 76);

		for (i = 0; i < cap; i++)
			kt_put(ch, (int64_t)i);
		kt_spawn(&t, poll_then_try, &sp);
		for (i = 0; i < cap; i++)
			cr_expect_eq(kt_get(ch), (int64_t)i);
		cr_expect_eq(kt_get(ch), 77);
		cr_expect_eq(kt_join(&t), 0);
		kn_chan_free(ch);
	}
}

/*
 * Concurrent traffic, then quiet: the levels must match the channel again.
 * A producer sends N + extra values while this thread takes N with
 * try_recv; afterwards extra values remain (0 to 2, never full). After
 * the traffic settles, each descriptor shows exactly the channel's
 * readiness: no raise is swallowed by a concurrent settle.
 */
Test(fd, levels_right_after_concurrent_traffic)
{
	enum { ROUNDS = 100, N = 2000 };
	int round, wrong_r = 0, wrong_s = 0;

	for (round = 0; round < ROUNDS; round++) {
		int64_t extra = round % 3, v, got = 0;
		struct kt_seq a = { kt_chan(8, 64), N + extra };
		int r = kn_chan_fd(a.ch, KN_RECV), s = kn_chan_fd(a.ch, KN_SEND);
		struct kt_thread t;

		cr_assert_geq(r, 0);
		cr_assert_geq(s, 0);
		kt_spawn(&t, kt_send_seq, &a);
		while (got < N)
			got += kn_chan_try_recv(a.ch, &v) == 0;
		cr_assert_eq(kt_join(&t), 0);
		cr_assert_eq(kn_chan_len(a.ch), (size_t)extra);
		wrong_r += kt_readable(r) != (extra > 0);
		wrong_s += !kt_readable(s);
		kn_chan_free(a.ch);
	}
	cr_expect_eq(wrong_r, 0, "receive level wrong after %d of %d rounds", wrong_r, ROUNDS);
	cr_expect_eq(wrong_s, 0, "send level wrong after %d of %d rounds", wrong_s, ROUNDS);
}

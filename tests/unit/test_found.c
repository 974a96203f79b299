/*
 * test_found.c - bugs found from outside (issue 18, items 8 and 11-13),
 * each reproduced as it was reported:
 *
 *   8   kn_waitgroup_add far out of range is refused without a signed
 *       overflow (UBSan aborted on INT64_MAX with the count at 5)
 *   11  cancellation first: a call blocked with a context that is cancelled
 *       fails with ECANCELED, even when a partner comes right after
 *       kn_ctx_cancel returned (receive, send, select, capacity 0 and 1;
 *       the semaphore: x/sync's TestWeightedAcquireCanceled)
 *   12  a receive from a closed and drained channel yields the zero value
 *       (every receive form, select included)
 *   13  kn_stage with an absurd out_size is EINVAL with nothing done;
 *       kn_flow_wait returns the same value when called again
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "kanal/kanal.h"
#include "helpers.h"

/* ---- 8: wait group range ------------------------------------------------ */

Test(found, waitgroup_add_out_of_range)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;

	cr_assert_eq(kn_waitgroup_add(&wg, 5), 0);
	cr_expect_eq(kn_waitgroup_add(&wg, INT64_MAX), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, INT64_MIN), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, (int64_t)INT32_MAX - 4), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, -6), EINVAL);
	/* Nothing changed: five dones bring it to zero. */
	cr_expect_eq(kn_waitgroup_add(&wg, -5), 0);
	cr_expect_eq(kn_waitgroup_wait(&wg), 0);
	cr_expect_eq(kn_waitgroup_add(&wg, INT32_MAX), 0);
	cr_expect_eq(kn_waitgroup_add(&wg, -(int64_t)INT32_MAX), 0);
}

/* ---- 11: cancellation first ------------------------------------------- */

/* One blocked call with a context, on a helper thread. */
struct blocked {
	kn_chan *ch, *other; /* other: a select's second case, or NULL */
	kn_ctx *ctx;
	int64_t val, val2;
	int kind;
};

static int blocked_call(void *p)
{
	struct blocked *b = p;
	struct kn_case c[2] = { { b->ch, b->kind, &b->val },
				{ b->other, b->kind, &b->val2 } };

	if (b->other)
		return kn_select(c, 2, 0, KN_FOREVER, b->ctx, NULL);
	return b->kind == KN_SEND ? kn_chan_send_ctx(b->ch, &b->val, b->ctx)
				  : kn_chan_recv_ctx(b->ch, &b->val, b->ctx);
}

/*
 * The call blocks (registered on ch), its context is cancelled, and only
 * after kn_ctx_cancel returned does a partner come: the call must fail
 * with ECANCELED and move nothing. cap 1: the channel starts full for a
 * send. A rendezvous partner waits 100 ms for the call (it must time
 * out); a buffered one completes on its own.
 */
static void cancel_then_partner(size_t cap, int kind, bool select)
{
	struct blocked b = { .kind = kind, .val = 7 };
	struct kt_thread t;
	int64_t v = 42, got = -1;
	int r;

	b.ch = kt_chan(sizeof(int64_t), cap);
	b.other = select ? kt_chan(sizeof(int64_t), 0) : NULL;
	b.ctx = kn_ctx_with_cancel(NULL);
	cr_assert_not_null(b.ctx);
	if (kind == KN_SEND && cap)
		kt_put(b.ch, 1);
	kt_spawn(&t, blocked_call, &b);
	cr_assert(kt_wait_queued(b.ch, kind, 1, &t, 1), "the call did not block");
	cr_assert_eq(kn_ctx_cancel(b.ctx, 0, NULL), 0);
	if (kind == KN_RECV)
		r = cap ? kn_chan_send(b.ch, &v)
			: kn_chan_send_until(b.ch, &v, kn_now() + 100000000);
	else
		r = cap ? kn_chan_recv(b.ch, &got)
			: kn_chan_recv_until(b.ch, &got, kn_now() + 100000000);
	cr_expect_eq(kt_join(&t), ECANCELED, "the blocked call completed after the cancellation");
	if (cap) {
		cr_expect_eq(r, 0);
		/* A receive left the value; a send did not refill. */
		cr_expect_eq(kn_chan_len(b.ch), kind == KN_RECV ? 1u : 0u);
	} else {
		cr_expect_eq(r, ETIMEDOUT, "the partner found the cancelled call");
	}
	kn_ctx_release(b.ctx);
	kn_chan_free(b.ch);
	kn_chan_free(b.other);
}

Test(found, cancel_first_recv_rendezvous) { cancel_then_partner(0, KN_RECV, false); }
Test(found, cancel_first_recv_buffered) { cancel_then_partner(1, KN_RECV, false); }
Test(found, cancel_first_send_rendezvous) { cancel_then_partner(0, KN_SEND, false); }
Test(found, cancel_first_send_buffered) { cancel_then_partner(1, KN_SEND, false); }
Test(found, cancel_first_select_recv) { cancel_then_partner(0, KN_RECV, true); }
Test(found, cancel_first_select_recv_buffered) { cancel_then_partner(1, KN_RECV, true); }
Test(found, cancel_first_select_send) { cancel_then_partner(0, KN_SEND, true); }

/* x/sync's TestWeightedAcquireCanceled (go.dev/issue/63615). */
struct sem_race {
	kn_sem *s;
	kn_ctx *ctx;
};

static int cancel_then_release(void *p)
{
	struct sem_race *x = p;

	/* Until the acquire of 2 has queued (then try_acquire fails). */
	while (kn_sem_try_acquire(x->s, 1) == 0) {
		kn_sem_release(x->s, 1);
		sched_yield();
	}
	kn_ctx_cancel(x->ctx, 0, NULL);
	return kn_sem_release(x->s, 1);
}

Test(found, sem_acquire_cancelled_first)
{
	int i, r;

	for (i = 0; i < 3000; i++) {
		struct sem_race x = { kn_sem_new(2), kn_ctx_with_cancel(NULL) };
		struct kt_thread t;

		cr_assert(x.s && x.ctx);
		cr_assert_eq(kn_sem_acquire(x.s, 1), 0);
		kt_spawn(&t, cancel_then_release, &x);
		r = kn_sem_acquire_ctx(x.s, 2, x.ctx);
		cr_assert_eq(kt_join(&t), 0);
		cr_assert_eq(r, ECANCELED, "round %d: acquired after the cancellation", i);
		cr_assert_eq(kn_sem_try_acquire(x.s, 2), 0, "round %d: tokens lost", i);
		/* Already cancelled: fails even when it would not block. */
		cr_assert_eq(kn_sem_release(x.s, 2), 0);
		cr_assert_eq(kn_sem_acquire_ctx(x.s, 1, x.ctx), ECANCELED);
		kn_ctx_release(x.ctx);
		kn_sem_free(x.s);
	}
}

/* ---- 12: the zero value on EPIPE --------------------------------------- */

static void expect_zeroed(const int64_t *v, const char *form)
{
	cr_expect_eq(v[0], 0, "%s left the buffer", form);
	cr_expect_eq(v[1], 0x5a5a5a5a5a5a5a5a, "%s wrote past the element", form);
}

static void closed_receive_zeroes(size_t cap)
{
	kn_chan *ch = kt_chan(sizeof(int64_t), cap);
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	int64_t v[2];
	size_t got = 9, fired = 9;
	struct kn_case c = { ch, KN_RECV, v };

#define DIRTY() (v[0] = -1, v[1] = 0x5a5a5a5a5a5a5a5a)
	cr_assert_not_null(ctx);
	cr_assert_eq(kn_chan_close(ch), 0);
	DIRTY();
	cr_expect_eq(kn_chan_recv(ch, v), EPIPE);
	expect_zeroed(v, "recv");
	DIRTY();
	cr_expect_eq(kn_chan_try_recv(ch, v), EPIPE);
	expect_zeroed(v, "try_recv");
	DIRTY();
	cr_expect_eq(kn_chan_recv_until(ch, v, kn_now() + 1000000), EPIPE);
	expect_zeroed(v, "recv_until");
	DIRTY();
	cr_expect_eq(kn_chan_recv_ctx(ch, v, ctx), EPIPE);
	expect_zeroed(v, "recv_ctx");
	DIRTY();
	cr_expect_eq(kn_chan_recv_batch(ch, v, 1, &got, KN_FOREVER, NULL), EPIPE);
	cr_expect_eq(got, 0);
	expect_zeroed(v, "recv_batch");
	DIRTY();
	cr_expect_eq(kn_select(&c, 1, 0, KN_FOREVER, NULL, &fired), EPIPE);
	cr_expect_eq(fired, 0);
	expect_zeroed(v, "select");
	DIRTY();
	cr_expect_eq(kn_select(&c, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EPIPE);
	expect_zeroed(v, "select with default");
#undef DIRTY
	kn_ctx_release(ctx);
	kn_chan_free(ch);
}

Test(found, closed_receive_zeroes_rendezvous) { closed_receive_zeroes(0); }
Test(found, closed_receive_zeroes_buffered) { closed_receive_zeroes(4); }

/* A receiver blocked when the channel closes gets the zero value too. */
Test(found, blocked_receive_zeroed_by_close)
{
	size_t cap;

	for (cap = 0; cap < 2; cap++) {
		struct kt_op o = { kt_chan(sizeof(int64_t), cap), -1 };
		struct kt_thread t;

		kt_spawn(&t, kt_recv, &o);
		cr_assert(kt_wait_queued(o.ch, KN_RECV, 1, &t, 1));
		cr_assert_eq(kn_chan_close(o.ch), 0);
		cr_expect_eq(kt_join(&t), EPIPE);
		cr_expect_eq(o.val, 0, "capacity %zu", cap);
		kn_chan_free(o.ch);
	}
}

/* ---- 13: stage arguments, flow_wait twice ------------------------------ */

static int pass(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	memcpy(out, in, sizeof(int64_t));
	return 0;
}

static int nothing(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return 0;
}

Test(found, stage_absurd_out_size)
{
	kn_flow *f = kn_flow_new(NULL, NULL);
	kn_chan *in = kt_chan(sizeof(int64_t), 4);
	struct kn_stage_spec s = { .fn = pass, .out_size = (size_t)1 << 41, .workers = 1 };

	cr_assert_not_null(f);
	errno = 0;
	cr_expect_null(kn_stage(f, in, &s));
	cr_expect_eq(errno, EINVAL);
	s.out_size = (size_t)1 << 40; /* a size a channel can carry */
	s.batch = UINT32_MAX;         /* but not batch of them */
	cr_expect_null(kn_stage(f, in, &s));
	cr_expect_eq(errno, EINVAL);
	/* Nothing happened: the flow is not cancelled and runs on. */
	cr_expect_eq(kn_ctx_err(kn_flow_ctx(f)), 0);
	cr_expect_eq(kn_flow_go(f, nothing, NULL), 0);
	cr_expect_eq(kn_flow_wait(f), 0);
	kn_flow_free(f);
	kn_chan_free(in);
}

Test(found, flow_wait_twice)
{
	kn_flow *f = kn_flow_new(NULL, NULL);

	cr_assert_not_null(f);
	cr_expect_eq(kn_flow_go(f, nothing, NULL), 0);
	cr_expect_eq(kn_flow_wait(f), 0);
	/* Refused now (the wait cancelled the flow): no new result. */
	cr_expect_eq(kn_flow_go(f, nothing, NULL), ECANCELED);
	cr_expect_eq(kn_flow_wait(f), 0);
	kn_flow_free(f);
}

/*
 * test_badinput.c - every public function of every header, called with
 * NULL, zero, huge, closed and already-cancelled arguments, returns the
 * code its header documents (docs/ARCHITECTURE.md: constructors NULL + errno, every
 * other call 0 or an errno value; nothing aborts on bad input).
 *
 * Nothing here waits: deadlines are 0 (already passed) and contexts are
 * cancelled beforehand, so a call that wrongly blocked would hang the test
 * (and fail it on Criterion's timeout) rather than pass.
 *
 * Where a header is unclear or the code disagrees with it, the test follows
 * the header and is disabled with a "BUG:" comment saying what differs.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kanal/kanal.h"
#include "helpers.h"

const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* ---- helpers -------------------------------------------------------------- */

static kn_ctx *cancelled_ctx(void)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);

	cr_assert_not_null(c);
	cr_assert_eq(kn_ctx_cancel(c, 0, NULL), 0);
	return c;
}

/* A constructor's failure: NULL with errno err. */
#define expect_null_errno(call, err)                                           \
	do {                                                                   \
		errno = 0;                                                     \
		cr_expect_null((call), #call " should fail");                  \
		cr_expect_eq(errno, (err), #call ": errno %d, want %d", errno, \
			     (err));                                           \
	} while (0)

/* ---- base.h ----------------------------------------------------------------- */

Test(badinput, deadline_in_saturates)
{
	uint64_t now = kn_now();

	cr_expect_eq(kn_deadline_in(UINT64_MAX), KN_FOREVER);
	cr_expect_eq(kn_deadline_in(UINT64_MAX - 1), KN_FOREVER);
	cr_expect_geq(kn_deadline_in(0), now);
	cr_expect_lt(kn_deadline_in(0), KN_FOREVER);
}

/* ---- chan.h ----------------------------------------------------------------- */

Test(badinput, chan_new_zero_and_huge)
{
	expect_null_errno(kn_chan_new(0, 1), EINVAL);
	expect_null_errno(kn_chan_new(0, 0), EINVAL);
	expect_null_errno(kn_chan_new(SIZE_MAX, 0), EINVAL);
	expect_null_errno(kn_chan_new(8, SIZE_MAX), EINVAL);
	expect_null_errno(kn_chan_new(SIZE_MAX, SIZE_MAX), EINVAL);
	expect_null_errno(kn_chan_new(8, (1ull << 40) + 1), EINVAL);
	kn_chan_free(NULL);
}

Test(badinput, chan_null_channel)
{
	int64_t v = 1;
	size_t n = 99;

	cr_expect_eq(kn_chan_send(NULL, &v), EINVAL);
	cr_expect_eq(kn_chan_try_send(NULL, &v), EINVAL);
	cr_expect_eq(kn_chan_send_until(NULL, &v, KN_FOREVER), EINVAL);
	cr_expect_eq(kn_chan_send_until(NULL, &v, 0), EINVAL);
	cr_expect_eq(kn_chan_send_ctx(NULL, &v, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv(NULL, &v), EINVAL);
	cr_expect_eq(kn_chan_try_recv(NULL, &v), EINVAL);
	cr_expect_eq(kn_chan_recv_until(NULL, &v, KN_FOREVER), EINVAL);
	cr_expect_eq(kn_chan_recv_until(NULL, &v, 0), EINVAL);
	cr_expect_eq(kn_chan_recv_ctx(NULL, &v, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_batch(NULL, &v, 1, &n, 0, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_batch(NULL, &v, 1, &n, KN_FOREVER, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv_batch(NULL, &v, 1, &n, 0, NULL), EINVAL);
	cr_expect_eq(n, 0, "recv_batch sets *received even when it fails");
	cr_expect_eq(kn_chan_recv_batch(NULL, &v, 1, &n, KN_FOREVER, NULL), EINVAL);
	cr_expect_eq(kn_chan_close(NULL), EINVAL);
	cr_expect_eq(kn_chan_len(NULL), 0);
	cr_expect_eq(kn_chan_cap(NULL), 0);
	cr_expect_eq(kn_chan_elem_size(NULL), 0);
	cr_expect_not(kn_chan_is_closed(NULL));
	errno = 0;
	cr_expect_eq(kn_chan_fd(NULL, KN_RECV), -1);
	cr_expect_eq(errno, EINVAL);
	kn_chan_free(NULL);
}

static void null_buffers(size_t cap)
{
	kn_chan *ch = kt_chan(8, cap);
	int64_t v[2] = { 1, 2 };
	size_t n = 99;

	cr_expect_eq(kn_chan_send(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_try_send(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_until(ch, NULL, 0), EINVAL);
	cr_expect_eq(kn_chan_send_ctx(ch, NULL, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_try_recv(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv_until(ch, NULL, 0), EINVAL);
	cr_expect_eq(kn_chan_recv_ctx(ch, NULL, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_batch(ch, NULL, 1, &n, 0, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_batch(ch, NULL, SIZE_MAX, &n, 0, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv_batch(ch, NULL, 1, &n, 0, NULL), EINVAL);
	cr_expect_eq(n, 0);
	/* Zero counts: nothing to send is done at once; a receive of at
	 * most zero values is a bad argument. */
	n = 99;
	cr_expect_eq(kn_chan_send_batch(ch, NULL, 0, &n, 0, NULL), 0);
	cr_expect_eq(n, 0);
	cr_expect_eq(kn_chan_recv_batch(ch, v, 0, &n, 0, NULL), EINVAL);
	errno = 0;
	cr_expect_eq(kn_chan_fd(ch, 0), -1);
	cr_expect_eq(errno, EINVAL);
	errno = 0;
	cr_expect_eq(kn_chan_fd(ch, KN_SEND | KN_RECV), -1);
	cr_expect_eq(errno, EINVAL);
	/* Nothing moved. */
	cr_expect_eq(kn_chan_len(ch), 0);
	cr_expect_eq(kn_chan_try_recv(ch, v), EAGAIN);
	kn_chan_free(ch);
}

Test(badinput, chan_null_buffers)
{
	null_buffers(2);
	null_buffers(0);
}

/* Deadline 0: the call is a try that reports ETIMEDOUT; if the operation
 * can complete, it does. */
static void passed_deadline(size_t cap)
{
	kn_chan *ch = kt_chan(8, cap);
	int64_t v = 5, got = 0;
	size_t n = 99;

	cr_expect_eq(kn_chan_recv_until(ch, &got, 0), ETIMEDOUT);
	cr_expect_eq(kn_chan_recv_batch(ch, &got, 1, &n, 0, NULL), ETIMEDOUT);
	cr_expect_eq(n, 0);
	if (cap) {
		cr_expect_eq(kn_chan_send_until(ch, &v, 0), 0);
		cr_expect_eq(kn_chan_send_until(ch, &v, 0), 0);
		cr_expect_eq(kn_chan_send_until(ch, &v, 0), ETIMEDOUT);
		cr_expect_eq(kn_chan_send_batch(ch, &v, 1, &n, 0, NULL), ETIMEDOUT);
		cr_expect_eq(n, 0);
		cr_expect_eq(kn_chan_recv_until(ch, &got, 0), 0);
		cr_expect_eq(got, 5);
	} else {
		cr_expect_eq(kn_chan_send_until(ch, &v, 0), ETIMEDOUT);
		cr_expect_eq(kn_chan_send_batch(ch, &v, 1, &n, 0, NULL), ETIMEDOUT);
		cr_expect_eq(n, 0);
	}
	kn_chan_free(ch);
}

Test(badinput, chan_deadline_already_passed)
{
	passed_deadline(2);
	passed_deadline(0);
}

/* An already-cancelled context fails the call, even one that could
 * complete, and even on a closed channel. */
static void cancelled(size_t cap)
{
	kn_chan *ch = kt_chan(8, cap);
	kn_ctx *ctx = cancelled_ctx();
	int64_t v = 5;
	size_t n = 99;

	if (cap)
		cr_assert_eq(kn_chan_send(ch, &v), 0);
	cr_expect_eq(kn_chan_send_ctx(ch, &v, ctx), ECANCELED);
	cr_expect_eq(kn_chan_recv_ctx(ch, &v, ctx), ECANCELED);
	cr_expect_eq(kn_chan_send_batch(ch, &v, 1, &n, KN_FOREVER, ctx), ECANCELED);
	cr_expect_eq(n, 0);
	n = 99;
	cr_expect_eq(kn_chan_recv_batch(ch, &v, 1, &n, KN_FOREVER, ctx), ECANCELED);
	cr_expect_eq(n, 0);
	cr_expect_eq(kn_chan_len(ch), cap ? 1 : 0, "a cancelled call moved a value");
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kn_chan_send_ctx(ch, &v, ctx), ECANCELED);
	cr_expect_eq(kn_chan_recv_ctx(ch, &v, ctx), ECANCELED);
	kn_ctx_release(ctx);
	kn_chan_free(ch);
}

Test(badinput, chan_cancelled_context)
{
	cancelled(2);
	cancelled(0);
}

static void closed(size_t cap)
{
	kn_chan *ch = kt_chan(8, cap);
	int64_t v = 5, got = 0;
	int64_t many[3] = { 1, 2, 3 };
	size_t n = 99;

	if (cap)
		cr_assert_eq(kn_chan_send(ch, &v), 0);
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kn_chan_is_closed(ch));
	cr_expect_eq(kn_chan_close(ch), EPIPE);
	cr_expect_eq(kn_chan_send(ch, &v), EPIPE);
	cr_expect_eq(kn_chan_try_send(ch, &v), EPIPE);
	cr_expect_eq(kn_chan_send_until(ch, &v, 0), EPIPE);
	cr_expect_eq(kn_chan_send_ctx(ch, &v, NULL), EPIPE);
	cr_expect_eq(kn_chan_send_batch(ch, many, 3, &n, KN_FOREVER, NULL), EPIPE);
	cr_expect_eq(n, 0);
	if (cap) {
		/* Buffered values are still delivered. */
		cr_expect_eq(kn_chan_recv_until(ch, &got, 0), 0);
		cr_expect_eq(got, 5);
	}
	cr_expect_eq(kn_chan_recv(ch, &got), EPIPE);
	cr_expect_eq(kn_chan_try_recv(ch, &got), EPIPE);
	cr_expect_eq(kn_chan_recv_until(ch, &got, 0), EPIPE);
	cr_expect_eq(kn_chan_recv_ctx(ch, &got, NULL), EPIPE);
	n = 99;
	cr_expect_eq(kn_chan_recv_batch(ch, many, 3, &n, KN_FOREVER, NULL), EPIPE);
	cr_expect_eq(n, 0);
	cr_expect(kt_readable(kn_chan_fd(ch, KN_RECV)));
	cr_expect(kt_readable(kn_chan_fd(ch, KN_SEND)));
	kn_chan_free(ch);
}

Test(badinput, chan_closed)
{
	closed(2);
	closed(0);
}

/* ---- select ----------------------------------------------------------------- */

Test(badinput, select_bad_arguments)
{
	kn_chan *ch = kt_chan(8, 1);
	int64_t v = 1;
	struct kn_case ok = kt_rc(ch, &v);
	struct kn_case badop = { ch, 0, &v };
	struct kn_case badop2 = { ch, KN_SEND | KN_RECV, &v };
	struct kn_case nullval = { ch, KN_RECV, NULL };
	struct kn_case two[2] = { ok, badop };
	size_t fired = 77;

	cr_expect_eq(kn_select(NULL, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(NULL, SIZE_MAX, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&badop, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&badop2, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&nullval, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(two, 2, KN_SELECT_DEFAULT, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&ok, 1, 4, 0, NULL, &fired), EINVAL);
	cr_expect_eq(kn_select(&ok, 1, ~0u, 0, NULL, &fired), EINVAL);
	cr_expect_eq(fired, 77, "*fired changed by a failed select");
	kn_chan_free(ch);
}

/* A bad op is EINVAL even on a NULL (never ready) channel. */
Test(badinput, select_bad_op_on_nil_channel)
{
	struct kn_case nil_bad = { NULL, 7, NULL };

	cr_expect_eq(kn_select(&nil_bad, 1, KN_SELECT_DEFAULT, 0, NULL, NULL), EINVAL);
}

Test(badinput, select_zero_cases_and_nil_channels)
{
	kn_ctx *ctx = cancelled_ctx();
	int64_t v = 1;
	struct kn_case nils[3] = { { NULL, KN_RECV, &v }, { NULL, KN_SEND, &v },
				   { NULL, KN_RECV, NULL } };
	size_t fired = 77;

	cr_expect_eq(kn_select(NULL, 0, KN_SELECT_DEFAULT, 0, NULL, &fired), EAGAIN);
	cr_expect_eq(kn_select(NULL, 0, 0, 0, NULL, &fired), ETIMEDOUT);
	cr_expect_eq(kn_select(NULL, 0, 0, KN_FOREVER, ctx, &fired), ECANCELED);
	cr_expect_eq(kn_select(nils, 3, KN_SELECT_DEFAULT, KN_FOREVER, NULL, &fired), EAGAIN);
	cr_expect_eq(kn_select(nils, 3, 0, 0, NULL, &fired), ETIMEDOUT);
	cr_expect_eq(kn_select(nils, 3, KN_SELECT_BIASED, KN_FOREVER, ctx, NULL), ECANCELED);
	cr_expect_eq(fired, 77);
	kn_ctx_release(ctx);
}

Test(badinput, select_cancelled_closed_and_many)
{
	kn_chan *ch = kt_chan(8, 1), *closed_ch = kt_chan(8, 0);
	kn_ctx *ctx = cancelled_ctx();
	int64_t v = 3, got[40];
	struct kn_case cases[40];
	size_t i, fired = 77;

	cr_assert_eq(kn_chan_send(ch, &v), 0);
	cases[0] = kt_rc(ch, &got[0]);
	/* Cancelled first, even with a ready case. */
	cr_expect_eq(kn_select(cases, 1, 0, KN_FOREVER, ctx, &fired), ECANCELED);
	cr_expect_eq(fired, 77);
	cr_expect_eq(kn_chan_len(ch), 1);
	/* A closed channel's cases fire with EPIPE. */
	cr_assert_eq(kn_chan_close(closed_ch), 0);
	cases[0] = kt_sc(closed_ch, &v);
	cr_expect_eq(kn_select(cases, 1, 0, KN_FOREVER, NULL, &fired), EPIPE);
	cr_expect_eq(fired, 0);
	cases[0] = kt_rc(closed_ch, &got[0]);
	cr_expect_eq(kn_select(cases, 1, KN_SELECT_DEFAULT, 0, NULL, &fired), EPIPE);
	/* More cases than the stack holds: the ready one fires. */
	for (i = 0; i < 40; i++)
		cases[i] = (struct kn_case){ i == 33 ? ch : NULL, KN_RECV, &got[i] };
	cr_expect_eq(kn_select(cases, 40, KN_SELECT_DEFAULT, 0, NULL, &fired), 0);
	cr_expect_eq(fired, 33);
	cr_expect_eq(got[33], 3);
	kn_ctx_release(ctx);
	kn_chan_free(ch);
	kn_chan_free(closed_ch);
}

/* ---- ctx.h ------------------------------------------------------------------ */

static const int key;

Test(badinput, ctx_null_is_background)
{
	const char *msg = "x";
	kn_ctx *c;

	cr_expect_eq(kn_ctx_err(NULL), 0);
	cr_expect_not(kn_ctx_done(NULL));
	cr_expect_eq(kn_ctx_cause(NULL, &msg), 0);
	cr_expect_null(msg);
	cr_expect_eq(kn_ctx_cause(NULL, NULL), 0);
	cr_expect_eq(kn_ctx_deadline(NULL), KN_FOREVER);
	cr_expect_null(kn_ctx_value(NULL, &key));
	cr_expect_null(kn_ctx_value(NULL, NULL));
	cr_expect_eq(kn_ctx_wait(NULL, 0), ETIMEDOUT);
	cr_expect_eq(kn_ctx_wait(kn_ctx_background(), 0), ETIMEDOUT);
	/* The background cannot be cancelled; retain/release do nothing. */
	cr_expect_eq(kn_ctx_cancel(NULL, 0, NULL), EINVAL);
	cr_expect_eq(kn_ctx_cancel(kn_ctx_background(), 0, "no"), EINVAL);
	cr_expect_null(kn_ctx_retain(NULL));
	cr_expect_eq(kn_ctx_retain(kn_ctx_background()), kn_ctx_background());
	kn_ctx_release(NULL);
	kn_ctx_release(kn_ctx_background());
	cr_expect(!kn_ctx_done(kn_ctx_background()));
	/* Children of NULL are children of the background. */
	c = kn_ctx_with_cancel(NULL);
	cr_assert_not_null(c);
	cr_expect_eq(kn_ctx_deadline(c), KN_FOREVER);
	kn_ctx_release(c);
}

Test(badinput, ctx_constructor_arguments)
{
	kn_ctx *c;
	const char *msg = "x";
	int x;

	expect_null_errno(kn_ctx_with_value(NULL, NULL, &x), EINVAL);
	/* A deadline already passed: born cancelled with ETIMEDOUT. */
	c = kn_ctx_with_deadline(NULL, 0);
	cr_assert_not_null(c);
	cr_expect_eq(kn_ctx_err(c), ETIMEDOUT);
	cr_expect_eq(kn_ctx_cause(c, &msg), ETIMEDOUT);
	cr_expect_eq(kn_ctx_wait(c, 0), 0);
	kn_ctx_release(c);
	c = kn_ctx_with_timeout(NULL, 0);
	cr_assert_not_null(c);
	cr_expect_eq(kn_ctx_err(c), ETIMEDOUT);
	kn_ctx_release(c);
	/* Huge: no deadline at all. */
	c = kn_ctx_with_timeout(NULL, UINT64_MAX);
	cr_assert_not_null(c);
	cr_expect_eq(kn_ctx_deadline(c), KN_FOREVER);
	cr_expect_eq(kn_ctx_err(c), 0);
	kn_ctx_release(c);
	c = kn_ctx_with_deadline(NULL, KN_FOREVER);
	cr_assert_not_null(c);
	cr_expect_eq(kn_ctx_deadline(c), KN_FOREVER);
	kn_ctx_release(c);
}

Test(badinput, ctx_cancel_arguments)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL), *v, *d;
	int x;

	cr_assert_not_null(c);
	v = kn_ctx_with_value(c, &key, &x);
	d = kn_ctx_without_cancel(c);
	cr_assert_not_null(v);
	cr_assert_not_null(d);
	cr_expect_eq(kn_ctx_cancel(c, -1, NULL), EINVAL);
	cr_expect_eq(kn_ctx_cancel(c, INT_MIN, "m"), EINVAL);
	cr_expect_eq(kn_ctx_err(c), 0, "a rejected cancel cancelled");
	cr_expect_eq(kn_ctx_cancel(v, 0, NULL), EINVAL);
	cr_expect_eq(kn_ctx_cancel(d, 0, NULL), EINVAL);
	cr_expect_eq(kn_ctx_cancel(c, INT_MAX, NULL), 0);
	cr_expect_eq(kn_ctx_cause(c, NULL), INT_MAX);
	cr_expect_eq(kn_ctx_cancel(c, 5, "again"), EALREADY);
	cr_expect_eq(kn_ctx_cause(c, NULL), INT_MAX, "the first cause stays");
	cr_expect_eq(kn_ctx_err(v), ECANCELED);
	cr_expect_eq(kn_ctx_err(d), 0, "a detached context is never cancelled");
	kn_ctx_release(d);
	kn_ctx_release(v);
	kn_ctx_release(c);
}

Test(badinput, ctx_children_of_cancelled_parent)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL), *kids[4];
	const char *msg = NULL;
	int x, i;

	cr_assert_not_null(p);
	cr_assert_eq(kn_ctx_cancel(p, 42, "gone"), 0);
	kids[0] = kn_ctx_with_cancel(p);
	kids[1] = kn_ctx_with_deadline(p, KN_FOREVER);
	kids[2] = kn_ctx_with_timeout(p, 1ull << 40);
	kids[3] = kn_ctx_with_value(p, &key, &x);
	for (i = 0; i < 4; i++) {
		cr_assert_not_null(kids[i]);
		cr_expect_eq(kn_ctx_err(kids[i]), ECANCELED);
		cr_expect_eq(kn_ctx_cause(kids[i], &msg), 42);
		cr_expect_str_eq(msg ? msg : "(null)", "gone");
		cr_expect_eq(kn_ctx_wait(kids[i], KN_FOREVER), 0);
		kn_ctx_release(kids[i]);
	}
	kn_ctx_release(p);
}

static void bump(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

Test(badinput, ctx_after_func_arguments)
{
	kn_ctx *c = cancelled_ctx();
	kn_ctx_stop stop;
	atomic_int ran = 0;

	cr_expect_eq(kn_ctx_after_func(c, NULL, NULL, &stop), EINVAL);
	cr_expect_eq(kn_ctx_after_func(c, bump, &ran, NULL), EINVAL);
	cr_expect_eq(kn_ctx_after_func(NULL, NULL, NULL, NULL), EINVAL);
	cr_expect_eq(atomic_load(&ran), 0);
	cr_expect_not(kn_ctx_stop_after_func(NULL));
	/* Already cancelled: runs at once; stopping afterwards is too late. */
	cr_expect_eq(kn_ctx_after_func(c, bump, &ran, &stop), 0);
	cr_expect_eq(atomic_load(&ran), 1);
	cr_expect_not(kn_ctx_stop_after_func(&stop));
	/* The background is never cancelled: never runs. */
	cr_expect_eq(kn_ctx_after_func(NULL, bump, &ran, &stop), 0);
	cr_expect_eq(atomic_load(&ran), 1);
	cr_expect(kn_ctx_stop_after_func(&stop));
	cr_expect_not(kn_ctx_stop_after_func(&stop), "stopped twice");
	kn_ctx_release(c);
}

/* ---- sem.h ------------------------------------------------------------------ */

Test(badinput, sem_new_zero_and_huge)
{
	kn_sem *s;

	expect_null_errno(kn_sem_new(0), EINVAL);
	expect_null_errno(kn_sem_new(KN_SEM_MAX + 1), EINVAL);
	expect_null_errno(kn_sem_new(UINT64_MAX), EINVAL);
	s = kn_sem_new(KN_SEM_MAX);
	cr_assert_not_null(s);
	cr_expect_eq(kn_sem_size(s), KN_SEM_MAX);
	cr_expect_eq(kn_sem_acquire(s, KN_SEM_MAX), 0);
	cr_expect_eq(kn_sem_release(s, KN_SEM_MAX), 0);
	cr_expect_eq(kn_sem_release(s, 1), EINVAL);
	kn_sem_free(s);
	kn_sem_free(NULL);
}

Test(badinput, sem_null)
{
	kn_ctx *ctx = cancelled_ctx();

	cr_expect_eq(kn_sem_acquire(NULL, 1), EINVAL);
	cr_expect_eq(kn_sem_acquire(NULL, 0), EINVAL);
	cr_expect_eq(kn_sem_try_acquire(NULL, 1), EINVAL);
	cr_expect_eq(kn_sem_acquire_until(NULL, 1, 0), EINVAL);
	cr_expect_eq(kn_sem_acquire_ctx(NULL, 1, NULL), EINVAL);
	/* A bad argument is reported before the context is looked at. */
	cr_expect_eq(kn_sem_acquire_ctx(NULL, 1, ctx), EINVAL);
	cr_expect_eq(kn_sem_release(NULL, 1), EINVAL);
	cr_expect_eq(kn_sem_release(NULL, 0), EINVAL);
	cr_expect_eq(kn_sem_available(NULL), 0);
	cr_expect_eq(kn_sem_size(NULL), 0);
	kn_ctx_release(ctx);
}

Test(badinput, sem_counts)
{
	kn_sem *s = kn_sem_new(3);
	kn_ctx *ctx = cancelled_ctx();

	cr_assert_not_null(s);
	/* More than the size could never be served. */
	cr_expect_eq(kn_sem_acquire(s, 4), EINVAL);
	cr_expect_eq(kn_sem_acquire(s, UINT64_MAX), EINVAL);
	cr_expect_eq(kn_sem_try_acquire(s, 4), EINVAL);
	cr_expect_eq(kn_sem_acquire_until(s, UINT64_MAX, 0), EINVAL);
	cr_expect_eq(kn_sem_acquire_ctx(s, 4, ctx), EINVAL);
	/* Zero: at once, after the checks. */
	cr_expect_eq(kn_sem_acquire(s, 0), 0);
	cr_expect_eq(kn_sem_try_acquire(s, 0), 0);
	cr_expect_eq(kn_sem_release(s, 0), 0);
	cr_expect_eq(kn_sem_acquire_ctx(s, 0, ctx), ECANCELED);
	/* Cancelled first, even when the tokens are there. */
	cr_expect_eq(kn_sem_acquire_ctx(s, 1, ctx), ECANCELED);
	cr_expect_eq(kn_sem_available(s), 3);
	/* Releasing what is not held changes nothing. */
	cr_expect_eq(kn_sem_release(s, 1), EINVAL);
	cr_expect_eq(kn_sem_release(s, UINT64_MAX), EINVAL);
	cr_expect_eq(kn_sem_available(s), 3);
	/* A deadline already passed: a try that says ETIMEDOUT. */
	cr_expect_eq(kn_sem_acquire_until(s, 3, 0), 0);
	cr_expect_eq(kn_sem_acquire_until(s, 1, 0), ETIMEDOUT);
	cr_expect_eq(kn_sem_try_acquire(s, 1), EAGAIN);
	cr_expect_eq(kn_sem_release(s, 4), EINVAL);
	cr_expect_eq(kn_sem_release(s, 3), 0);
	cr_expect_eq(kn_sem_available(s), 3);
	kn_ctx_release(ctx);
	kn_sem_free(s);
}

/* ---- pool.h ----------------------------------------------------------------- */

static void nothing(void *arg)
{
	(void)arg;
}

Test(badinput, pool_new_huge)
{
	struct kn_pool_opts o = { .workers = 5000 };

	expect_null_errno(kn_pool_new(&o), EINVAL);
	o = (struct kn_pool_opts){ .workers = UINT_MAX };
	expect_null_errno(kn_pool_new(&o), EINVAL);
	o = (struct kn_pool_opts){ .workers = 1, .max_spare = INT_MAX };
	expect_null_errno(kn_pool_new(&o), EINVAL);
	o = (struct kn_pool_opts){ .workers = 4000, .max_spare = 200 };
	expect_null_errno(kn_pool_new(&o), EINVAL);
}

Test(badinput, pool_null)
{
	struct kn_pool_stats st;

	cr_expect_eq(kn_pool_spawn(NULL, nothing, NULL), EINVAL);
	expect_null_errno(kn_pool_spawn_task(NULL, nothing, NULL), EINVAL);
	cr_expect_eq(kn_task_join(NULL), EINVAL);
	cr_expect_eq(kn_pool_wait_idle(NULL), EINVAL);
	cr_expect_eq(kn_pool_shutdown(NULL, true, NULL), EINVAL);
	cr_expect_eq(kn_pool_shutdown(NULL, false, NULL), EINVAL);
	cr_expect_eq(kn_pool_stats(NULL, &st), EINVAL);
	cr_expect_eq(kn_go(NULL, NULL), EINVAL);
	cr_expect_null(kn_pool_current());
	kn_pool_free(NULL);
}

struct self_calls {
	kn_pool *pool;
	int wait_idle, shutdown;
	kn_pool *current;
};

static void call_own_pool(void *arg)
{
	struct self_calls *s = arg;

	s->current = kn_pool_current();
	s->wait_idle = kn_pool_wait_idle(s->pool);
	s->shutdown = kn_pool_shutdown(s->pool, true, NULL);
	kn_pool_free(s->pool); /* does nothing from its own task */
}

Test(badinput, pool_arguments_and_shutdown)
{
	struct kn_pool_opts o = { .workers = 1 };
	struct kn_pool_stats st;
	struct self_calls s = { 0 };
	kn_pool *p = kn_pool_new(&o);
	kn_task *t;
	size_t dropped = 99;

	cr_assert_not_null(p);
	s.pool = p;
	cr_expect_eq(kn_pool_spawn(p, NULL, NULL), EINVAL);
	expect_null_errno(kn_pool_spawn_task(p, NULL, NULL), EINVAL);
	cr_expect_eq(kn_pool_stats(p, NULL), EINVAL);
	t = kn_pool_spawn_task(p, call_own_pool, &s);
	cr_assert_not_null(t);
	cr_expect_eq(kn_task_join(t), 0);
	cr_expect_eq(s.current, p);
	cr_expect_eq(s.wait_idle, EINVAL);
	cr_expect_eq(s.shutdown, EINVAL);
	/* Shut down: spawns fail with EPIPE, a second shutdown too. */
	cr_expect_eq(kn_pool_shutdown(p, false, &dropped), 0);
	cr_expect_eq(dropped, 0);
	cr_expect_eq(kn_pool_shutdown(p, true, NULL), EPIPE);
	cr_expect_eq(kn_pool_spawn(p, nothing, NULL), EPIPE);
	expect_null_errno(kn_pool_spawn_task(p, nothing, NULL), EPIPE);
	cr_expect_eq(kn_pool_wait_idle(p), 0);
	cr_expect_eq(kn_pool_stats(p, &st), 0);
	cr_expect_eq(st.workers, 1);
	kn_pool_free(p);
}

/* ---- group.h ---------------------------------------------------------------- */

static int ok_task(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return 0;
}

Test(badinput, group_null)
{
	cr_expect_eq(kn_group_go(NULL, ok_task, NULL), EINVAL);
	cr_expect_eq(kn_group_try_go(NULL, ok_task, NULL), EINVAL);
	cr_expect_eq(kn_group_set_limit(NULL, 1), EINVAL);
	cr_expect_eq(kn_group_wait(NULL), EINVAL);
	cr_expect_null(kn_group_ctx(NULL));
	cr_expect_eq(kn_group_skipped(NULL), 0);
	kn_group_free(NULL);
}

Test(badinput, group_arguments)
{
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *p = kn_pool_new(&o);
	kn_ctx *dead = cancelled_ctx();
	kn_group *g;

	cr_assert_not_null(p);
	g = kn_group_new(NULL, p);
	cr_assert_not_null(g);
	cr_expect_eq(kn_group_go(g, NULL, NULL), EINVAL);
	cr_expect_eq(kn_group_try_go(g, NULL, NULL), EINVAL);
	/* Limit 0: nothing may start; try_go says so. */
	cr_expect_eq(kn_group_set_limit(g, 0), 0);
	cr_expect_eq(kn_group_try_go(g, ok_task, NULL), EAGAIN);
	cr_expect_eq(kn_group_set_limit(g, INT_MIN), 0);
	cr_expect_eq(kn_group_go(g, ok_task, NULL), 0);
	cr_expect_eq(kn_group_wait(g), 0);
	/* After wait the context is cancelled: go is skipped. */
	cr_expect_eq(kn_group_go(g, ok_task, NULL), ECANCELED);
	cr_expect_eq(kn_group_try_go(g, ok_task, NULL), ECANCELED);
	cr_expect_eq(kn_group_skipped(g), 2);
	kn_group_free(g);
	/* A cancelled parent: born cancelled, every go skipped. */
	g = kn_group_new(dead, p);
	cr_assert_not_null(g);
	cr_expect(kn_ctx_done(kn_group_ctx(g)));
	cr_expect_eq(kn_group_go(g, ok_task, NULL), ECANCELED);
	cr_expect_eq(kn_group_skipped(g), 1);
	cr_expect_eq(kn_group_wait(g), 0);
	kn_group_free(g);
	/* A shut-down pool: EPIPE. */
	g = kn_group_new(NULL, p);
	cr_assert_not_null(g);
	cr_assert_eq(kn_pool_shutdown(p, true, NULL), 0);
	cr_expect_eq(kn_group_go(g, ok_task, NULL), EPIPE);
	cr_expect_eq(kn_group_wait(g), 0);
	kn_group_free(g);
	kn_ctx_release(dead);
	kn_pool_free(p);
}

Test(badinput, waitgroup_arguments)
{
	kn_waitgroup wg = KN_WAITGROUP_INIT;
	kn_ctx *ctx = cancelled_ctx();

	cr_expect_eq(kn_waitgroup_add(NULL, 1), EINVAL);
	cr_expect_eq(kn_waitgroup_done(NULL), EINVAL);
	cr_expect_eq(kn_waitgroup_wait(NULL), EINVAL);
	cr_expect_eq(kn_waitgroup_wait_until(NULL, 0), EINVAL);
	cr_expect_eq(kn_waitgroup_wait_ctx(NULL, NULL), EINVAL);
	kn_waitgroup_init(NULL);
	/* The counter stays in 0..INT32_MAX; a refused add changes nothing. */
	cr_expect_eq(kn_waitgroup_done(&wg), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, -1), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, INT64_MIN), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, INT64_MAX), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, (int64_t)INT32_MAX + 1), EINVAL);
	cr_expect_eq(kn_waitgroup_wait_until(&wg, 0), 0);
	cr_expect_eq(kn_waitgroup_add(&wg, INT32_MAX), 0);
	cr_expect_eq(kn_waitgroup_add(&wg, 1), EINVAL);
	cr_expect_eq(kn_waitgroup_add(&wg, 0), 0);
	cr_expect_eq(kn_waitgroup_wait_until(&wg, 0), ETIMEDOUT);
	cr_expect_eq(kn_waitgroup_add(&wg, -(int64_t)INT32_MAX), 0);
	/* The context is checked first, even at zero. */
	cr_expect_eq(kn_waitgroup_wait_ctx(&wg, ctx), ECANCELED);
	cr_expect_eq(kn_waitgroup_wait(&wg), 0);
	kn_ctx_release(ctx);
}

/* ---- pattern.h -------------------------------------------------------------- */

static int gen_nothing(kn_ctx *ctx, kn_chan *out, void *arg)
{
	(void)ctx;
	(void)out;
	(void)arg;
	return 0;
}

static int stage_copy(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	memcpy(out, in, 8);
	return 0;
}

static int visit_nothing(kn_ctx *ctx, size_t i, void *arg)
{
	(void)ctx;
	(void)i;
	(void)arg;
	return 0;
}

Test(badinput, pattern_null)
{
	struct kn_stage_spec spec = { .fn = stage_copy, .out_size = 8, .workers = 1 };
	kn_chan *outs[2] = { NULL, NULL }, *ins[1] = { NULL };
	int64_t items[1] = { 1 };

	cr_expect_eq(kn_flow_go(NULL, ok_task, NULL), EINVAL);
	cr_expect_eq(kn_flow_wait(NULL), EINVAL);
	kn_flow_free(NULL);
	expect_null_errno(kn_generate(NULL, 8, 0, gen_nothing, NULL), EINVAL);
	expect_null_errno(kn_generate_array(NULL, items, 8, 1, 0), EINVAL);
	expect_null_errno(kn_stage(NULL, NULL, &spec), EINVAL);
	cr_expect_eq(kn_worker_pool(NULL, NULL, NULL, 1, stage_copy, NULL), EINVAL);
	expect_null_errno(kn_merge(NULL, ins, 1, 0), EINVAL);
	cr_expect_eq(kn_distribute(NULL, NULL, 2, 0, KN_DIST_ANY, outs), EINVAL);
	cr_expect_eq(kn_foreach_bounded(NULL, 1, 1, NULL, NULL), EINVAL);
	cr_expect_eq(kn_foreach_bounded(NULL, 1, 0, visit_nothing, NULL), EINVAL);
	cr_expect_eq(kn_foreach_bounded(NULL, SIZE_MAX, 1, visit_nothing, NULL), EINVAL);
	cr_expect_eq(kn_foreach_bounded(NULL, SIZE_MAX / 2 + 1, 4, visit_nothing, NULL), EINVAL);
	cr_expect_eq(kn_foreach_bounded(NULL, 0, 1, visit_nothing, NULL), 0);
}

/* Each rejected constructor returns EINVAL and leaves the flow alone. */
Test(badinput, pattern_bad_arguments)
{
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *p = kn_pool_new(&o);
	kn_flow *f;
	kn_chan *in = kt_chan(8, 1), *other = kt_chan(4, 1), *outs[2] = { NULL, NULL };
	kn_chan *ins[2], *nulls[2] = { NULL, NULL };
	struct kn_stage_spec spec = { .fn = stage_copy, .out_size = 8, .workers = 1 };
	struct kn_stage_spec bad;
	int64_t items[1] = { 1 };

	cr_assert_not_null(p);
	f = kn_flow_new(NULL, p);
	cr_assert_not_null(f);
	cr_expect_eq(kn_flow_go(f, NULL, NULL), EINVAL);
	expect_null_errno(kn_generate(f, 0, 0, gen_nothing, NULL), EINVAL);
	expect_null_errno(kn_generate(f, 8, 0, NULL, NULL), EINVAL);
	expect_null_errno(kn_generate_array(f, NULL, 8, 1, 0), EINVAL);
	expect_null_errno(kn_generate_array(f, items, 0, 1, 0), EINVAL);
	expect_null_errno(kn_stage(f, NULL, &spec), EINVAL);
	expect_null_errno(kn_stage(f, in, NULL), EINVAL);
	bad = spec;
	bad.fn = NULL;
	expect_null_errno(kn_stage(f, in, &bad), EINVAL);
	bad = spec;
	bad.out_size = 0;
	expect_null_errno(kn_stage(f, in, &bad), EINVAL);
	bad = spec;
	bad.workers = 0;
	expect_null_errno(kn_stage(f, in, &bad), EINVAL);
	bad = spec;
	bad.flags = 0x80;
	expect_null_errno(kn_stage(f, in, &bad), EINVAL);
	cr_expect_eq(kn_worker_pool(f, NULL, in, 1, stage_copy, NULL), EINVAL);
	cr_expect_eq(kn_worker_pool(f, in, NULL, 1, stage_copy, NULL), EINVAL);
	cr_expect_eq(kn_worker_pool(f, in, in, 0, stage_copy, NULL), EINVAL);
	cr_expect_eq(kn_worker_pool(f, in, in, 1, NULL, NULL), EINVAL);
	expect_null_errno(kn_merge(f, NULL, 1, 0), EINVAL);
	expect_null_errno(kn_merge(f, nulls, 2, 0), EINVAL);
	ins[0] = in;
	ins[1] = NULL;
	expect_null_errno(kn_merge(f, ins, 2, 0), EINVAL);
	ins[1] = other;
	expect_null_errno(kn_merge(f, ins, 2, 0), EINVAL);
	expect_null_errno(kn_merge(f, ins, 0, 0), EINVAL);
	cr_expect_eq(kn_distribute(f, NULL, 2, 0, KN_DIST_ANY, outs), EINVAL);
	cr_expect_eq(kn_distribute(f, in, 2, 0, KN_DIST_ANY, NULL), EINVAL);
	cr_expect_eq(kn_distribute(f, in, 0, 0, KN_DIST_ANY, outs), EINVAL);
	cr_expect_eq(kn_distribute(f, in, 2, 0, (enum kn_dist_mode)7, outs), EINVAL);
	cr_expect(outs[0] == NULL && outs[1] == NULL, "outs written by a failed call");
	cr_expect_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "a rejected call cancelled the flow");
	/* n == 0 with no items: a channel that closes at once. */
	{
		kn_chan *empty = kn_generate_array(f, NULL, 8, 0, 0);
		int64_t v;

		cr_assert_not_null(empty);
		cr_expect_eq(kn_chan_recv(empty, &v), EPIPE);
	}
	cr_expect_eq(kn_flow_wait(f), 0);
	cr_expect_eq(kn_flow_wait(f), 0, "a second wait returns the same");
	/* Waited for: its context is cancelled, new tasks are refused. */
	cr_expect_eq(kn_flow_go(f, ok_task, NULL), ECANCELED);
	kn_flow_free(f);
	kn_chan_free(in);
	kn_chan_free(other);
	kn_pool_free(p);
}

Test(badinput, pattern_cancelled)
{
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *p = kn_pool_new(&o);
	kn_ctx *dead = kn_ctx_with_cancel(NULL);
	kn_flow *f;

	cr_assert_not_null(p);
	cr_assert_not_null(dead);
	cr_assert_eq(kn_ctx_cancel(dead, 33, NULL), 0);
	/* A cancelled parent: the flow is born cancelled; a pattern still
	 * returns its channel, which closes; its task never starts, and the
	 * wait reports a failure. */
	f = kn_flow_new(dead, p);
	cr_assert_not_null(f);
	cr_expect(kn_ctx_done(kn_flow_ctx(f)));
	cr_expect_eq(kn_flow_go(f, ok_task, NULL), ECANCELED);
	{
		int64_t items[2] = { 1, 2 }, v;
		kn_chan *ch = kn_generate_array(f, items, 8, 2, 0);

		cr_assert_not_null(ch);
		cr_expect_eq(kn_chan_recv(ch, &v), EPIPE);
	}
	cr_expect_neq(kn_flow_wait(f), 0);
	kn_flow_free(f);
	/* foreach with a cancelled context: the cause. */
	cr_expect_eq(kn_foreach_bounded(dead, 10, 2, visit_nothing, NULL), 33);
	/* A shut-down pool: EPIPE. */
	cr_assert_eq(kn_pool_shutdown(p, true, NULL), 0);
	f = kn_flow_new(NULL, p);
	cr_assert_not_null(f);
	cr_expect_eq(kn_flow_go(f, ok_task, NULL), EPIPE);
	kn_flow_free(f);
	kn_ctx_release(dead);
	kn_pool_free(p);
}

/* kn_flow_wait returns 0 only for a flow that ran to completion: a task
 * kn_flow_go refused (the flow was born cancelled) is not one. */
Test(badinput, pattern_refused_go_is_not_completion)
{
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *p = kn_pool_new(&o);
	kn_ctx *dead = cancelled_ctx();
	kn_flow *f;

	cr_assert_not_null(p);
	f = kn_flow_new(dead, p);
	cr_assert_not_null(f);
	cr_expect_eq(kn_flow_go(f, ok_task, NULL), ECANCELED);
	cr_expect_neq(kn_flow_wait(f), 0);
	kn_flow_free(f);
	kn_ctx_release(dead);
	kn_pool_free(p);
}

/*
 * test_ctx.c - the rules of kanal/ctx.h, one test each. Leaks are checked
 * by the AddressSanitizer build (every test releases what it made).
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <kanal/ctx.h>

#include "sleeps.h"

static const int key_a = 1, key_b = 2;

/* ---- helpers ---------------------------------------------------------------- */

struct counter {
	atomic_int runs;
	pthread_t thread;
	kn_ctx *observed;   /* err of this context when fn ran */
	int err_seen;
	kn_ctx *release;    /* fn releases this context */
};

static void count_fn(void *arg)
{
	struct counter *c = arg;

	c->thread = pthread_self();
	if (c->observed)
		c->err_seen = kn_ctx_err(c->observed);
	if (c->release)
		kn_ctx_release(c->release);
	atomic_fetch_add(&c->runs, 1);
}

static void never_fn(void *arg)
{
	(void)arg;
	cr_assert_fail("callback ran");
}

/* A thread blocked in kn_ctx_wait; parked counts its sleeps. */
struct waiting {
	pthread_t t;
	kn_ctx *ctx;
	uint64_t deadline;
	atomic_int parked;
	int ret;
};

static void *wait_main(void *arg)
{
	struct waiting *w = arg;
	struct block_hook h = kt_sleep_counter(&w->parked);

	waiter_set_block_hook(&h);
	w->ret = kn_ctx_wait(w->ctx, w->deadline);
	waiter_set_block_hook(NULL);
	return NULL;
}

static void start_waiting(struct waiting *w, kn_ctx *ctx, uint64_t deadline)
{
	w->ctx = ctx;
	w->deadline = deadline;
	atomic_init(&w->parked, 0);
	cr_assert_eq(pthread_create(&w->t, NULL, wait_main, w), 0);
	while (!atomic_load(&w->parked))
		usleep(100);
}

/* ---- background and NULL ------------------------------------------------------- */

Test(ctx, background)
{
	kn_ctx *bg = kn_ctx_background();
	const char *msg = "x";

	cr_assert_not_null(bg);
	cr_assert_eq(kn_ctx_err(bg), 0);
	cr_assert(!kn_ctx_done(bg));
	cr_assert_eq(kn_ctx_cause(bg, &msg), 0);
	cr_assert_null(msg);
	cr_assert_eq(kn_ctx_deadline(bg), KN_FOREVER);
	cr_assert_eq(kn_ctx_cancel(bg, ECANCELED, NULL), EINVAL);
	cr_assert_eq(kn_ctx_retain(bg), bg);
	kn_ctx_release(bg);
	kn_ctx_release(bg);
	cr_assert_null(kn_ctx_value(bg, &key_a));
	cr_assert_null(ctx_waitq(bg));
	cr_assert(!ctx_done(bg));
	cr_assert_eq(kn_ctx_wait(bg, 0), ETIMEDOUT);
	cr_assert_eq(kn_ctx_wait(bg, kn_deadline_in(1000000)), ETIMEDOUT);
}

Test(ctx, null_is_background)
{
	kn_ctx_stop stop;
	kn_ctx *c;

	cr_assert_eq(kn_ctx_err(NULL), 0);
	cr_assert(!kn_ctx_done(NULL));
	cr_assert_eq(kn_ctx_cause(NULL, NULL), 0);
	cr_assert_eq(kn_ctx_deadline(NULL), KN_FOREVER);
	cr_assert_null(kn_ctx_value(NULL, &key_a));
	cr_assert_eq(kn_ctx_cancel(NULL, 0, NULL), EINVAL);
	cr_assert_null(kn_ctx_retain(NULL));
	kn_ctx_release(NULL);
	cr_assert_eq(kn_ctx_wait(NULL, 0), ETIMEDOUT);
	cr_assert_null(ctx_waitq(NULL));
	cr_assert(!ctx_done(NULL));
	cr_assert_eq(kn_ctx_after_func(NULL, never_fn, NULL, &stop), 0);
	cr_assert(kn_ctx_stop_after_func(&stop));

	c = kn_ctx_with_cancel(NULL);
	cr_assert_not_null(c);
	cr_assert_eq(kn_ctx_err(c), 0);
	kn_ctx_release(c);
	c = kn_ctx_with_value(NULL, &key_a, (void *)&key_b);
	cr_assert_eq(kn_ctx_value(c, &key_a), &key_b);
	kn_ctx_release(c);
	c = kn_ctx_without_cancel(NULL);
	cr_assert_not_null(c);
	kn_ctx_release(c);
}

Test(ctx, bad_input)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	kn_ctx_stop stop;

	errno = 0;
	cr_assert_null(kn_ctx_with_value(c, NULL, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(kn_ctx_cancel(c, -1, NULL), EINVAL);
	cr_assert_eq(kn_ctx_err(c), 0);
	cr_assert_eq(kn_ctx_after_func(c, NULL, NULL, &stop), EINVAL);
	cr_assert_eq(kn_ctx_after_func(c, never_fn, NULL, NULL), EINVAL);
	cr_assert(!kn_ctx_stop_after_func(NULL));
	memset(&stop, 0, sizeof(stop));
	cr_assert(!kn_ctx_stop_after_func(&stop)); /* never registered */
	kn_ctx_release(c);
}

/* ---- cancel and cause ------------------------------------------------------------- */

Test(ctx, cancel_once_with_cause)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	char buf[] = "shutting down";
	const char *msg = NULL;

	cr_assert_eq(kn_ctx_cause(c, &msg), 0);
	cr_assert_null(msg);
	cr_assert_eq(kn_ctx_cancel(c, EPIPE, buf), 0);
	buf[0] = 'X'; /* the message was copied */
	cr_assert_eq(kn_ctx_err(c), ECANCELED);
	cr_assert(kn_ctx_done(c));
	cr_assert(ctx_done(c));
	cr_assert_eq(kn_ctx_cause(c, &msg), EPIPE);
	cr_assert_str_eq(msg, "shutting down");
	cr_assert_eq(kn_ctx_cancel(c, EIO, "second"), EALREADY);
	cr_assert_eq(kn_ctx_cause(c, &msg), EPIPE);
	cr_assert_str_eq(msg, "shutting down");
	cr_assert_eq(kn_ctx_cause(c, NULL), EPIPE);
	kn_ctx_release(c);
}

Test(ctx, cancel_code_zero_means_ecanceled)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	const char *msg = "x";

	cr_assert_eq(kn_ctx_cancel(c, 0, NULL), 0);
	cr_assert_eq(kn_ctx_cause(c, &msg), ECANCELED);
	cr_assert_null(msg);
	kn_ctx_release(c);
}

Test(ctx, parent_cancels_descendants)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c = kn_ctx_with_cancel(p);
	kn_ctx *v = kn_ctx_with_value(c, &key_a, NULL);
	kn_ctx *g = kn_ctx_with_cancel(v);
	kn_ctx *d = kn_ctx_with_timeout(g, 3600ull * 1000000000u);
	kn_ctx *sibling = kn_ctx_with_cancel(p);
	kn_ctx *all[] = { p, c, v, g, d, sibling };
	const char *msg;

	cr_assert_eq(kn_ctx_cancel(p, EPIPE, "boom"), 0);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		cr_assert_eq(kn_ctx_err(all[i]), ECANCELED, "context %zu", i);
		cr_assert_eq(kn_ctx_cause(all[i], &msg), EPIPE);
		cr_assert_str_eq(msg, "boom");
	}
	cr_assert_eq(kn_ctx_cancel(g, 0, NULL), EALREADY);
	cr_assert_eq(kn_ctx_cancel(v, 0, NULL), EINVAL);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		kn_ctx_release(all[i]);
}

Test(ctx, child_cancel_stays_below)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *a = kn_ctx_with_cancel(p);
	kn_ctx *b = kn_ctx_with_cancel(p);
	kn_ctx *a1 = kn_ctx_with_cancel(a);

	cr_assert_eq(kn_ctx_cancel(a, 0, NULL), 0);
	cr_assert_eq(kn_ctx_err(a1), ECANCELED);
	cr_assert_eq(kn_ctx_err(p), 0);
	cr_assert_eq(kn_ctx_err(b), 0);
	kn_ctx_release(a1);
	kn_ctx_release(a);
	cr_assert_eq(kn_ctx_cancel(p, 0, NULL), 0);
	cr_assert_eq(kn_ctx_err(b), ECANCELED);
	kn_ctx_release(b);
	kn_ctx_release(p);
}

Test(ctx, born_cancelled_under_cancelled_parent)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c, *v;
	const char *msg;

	kn_ctx_cancel(p, EIO, "gone");
	c = kn_ctx_with_cancel(p);
	v = kn_ctx_with_value(p, &key_a, NULL);
	cr_assert_eq(kn_ctx_err(c), ECANCELED);
	cr_assert_eq(kn_ctx_cause(c, &msg), EIO);
	cr_assert_str_eq(msg, "gone");
	cr_assert_eq(kn_ctx_err(v), ECANCELED);
	cr_assert_eq(kn_ctx_cancel(c, 0, NULL), EALREADY);
	kn_ctx_release(p); /* the children still hold it: msg stays valid */
	cr_assert_eq(kn_ctx_cause(c, &msg), EIO);
	cr_assert_str_eq(msg, "gone");
	kn_ctx_release(v);
	kn_ctx_release(c);
}

Test(ctx, chain_of_ten_thousand)
{
	enum { N = 10000 };
	static kn_ctx *chain[N];

	chain[0] = kn_ctx_with_cancel(NULL);
	for (int i = 1; i < N; i++)
		chain[i] = i % 3 ? kn_ctx_with_cancel(chain[i - 1])
				 : kn_ctx_with_value(chain[i - 1], &key_a, NULL);
	cr_assert_eq(kn_ctx_cancel(chain[0], 0, NULL), 0);
	cr_assert_eq(kn_ctx_err(chain[N - 1]), ECANCELED);
	/* Root first: each release leaves the rest held by its child. */
	for (int i = 0; i < N; i++)
		kn_ctx_release(chain[i]);
}

/* ---- lifetime ---------------------------------------------------------------------- */

Test(ctx, last_release_cancels)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c = kn_ctx_with_cancel(p);
	struct counter cnt = { .observed = c };
	kn_ctx_stop stop;
	const char *msg = "x";

	cr_assert_eq(kn_ctx_after_func(c, count_fn, &cnt, &stop), 0);
	kn_ctx_retain(p);
	kn_ctx_release(p);
	cr_assert_eq(kn_ctx_err(p), 0); /* one reference left */
	kn_ctx_release(p);              /* the last one: like defer cancel() */
	cr_assert_eq(atomic_load(&cnt.runs), 1);
	cr_assert_eq(cnt.err_seen, ECANCELED);
	cr_assert_eq(kn_ctx_err(c), ECANCELED);
	cr_assert_eq(kn_ctx_cause(c, &msg), ECANCELED);
	cr_assert_null(msg);
	cr_assert(!kn_ctx_stop_after_func(&stop));
	kn_ctx_release(c);
}

Test(ctx, release_orders)
{
	/* Every order of releasing a parent, a child, a grandchild, with and
	 * without an earlier cancel: the ASan build reports any leak. */
	static const int orders[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
		{ 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};

	for (int cancel_first = -1; cancel_first < 3; cancel_first++) {
		for (int o = 0; o < 6; o++) {
			kn_ctx *n[3];

			n[0] = kn_ctx_with_timeout(NULL, 3600ull * 1000000000u);
			n[1] = kn_ctx_with_value(n[0], &key_a, NULL);
			n[2] = kn_ctx_with_cancel(n[1]);
			if (cancel_first >= 0)
				kn_ctx_cancel(n[cancel_first], 0, NULL);
			for (int i = 0; i < 3; i++) {
				kn_ctx *x = n[orders[o][i]];

				kn_ctx_release(x);
				/* the rest are still usable */
				for (int j = i + 1; j < 3; j++)
					kn_ctx_err(n[orders[o][j]]);
			}
		}
	}
}

Test(ctx, detached_outlives_cancel)
{
	kn_ctx *p = kn_ctx_with_value(NULL, &key_a, (void *)&key_a);
	kn_ctx *c = kn_ctx_with_cancel(p);
	kn_ctx *d = kn_ctx_without_cancel(c);
	kn_ctx *dc = kn_ctx_with_cancel(d);

	kn_ctx_release(p);
	kn_ctx_release(c); /* cancels c, not d */
	cr_assert_eq(kn_ctx_err(d), 0);
	cr_assert_eq(kn_ctx_err(dc), 0);
	cr_assert_eq(kn_ctx_value(dc, &key_a), &key_a);
	kn_ctx_release(d);
	kn_ctx_release(dc);
}

/* ---- values and detached contexts ----------------------------------------------------- */

Test(ctx, values)
{
	int one = 1, two = 2, three = 3;
	kn_ctx *a = kn_ctx_with_value(NULL, &key_a, &one);
	kn_ctx *c = kn_ctx_with_cancel(a);
	kn_ctx *b = kn_ctx_with_value(c, &key_b, &two);
	kn_ctx *a2 = kn_ctx_with_value(b, &key_a, &three);

	cr_assert_eq(kn_ctx_value(a, &key_a), &one);
	cr_assert_null(kn_ctx_value(a, &key_b));
	cr_assert_eq(kn_ctx_value(c, &key_a), &one);
	cr_assert_eq(kn_ctx_value(b, &key_b), &two);
	cr_assert_eq(kn_ctx_value(b, &key_a), &one);
	cr_assert_eq(kn_ctx_value(a2, &key_a), &three); /* shadowed */
	cr_assert_eq(kn_ctx_value(a2, &key_b), &two);
	cr_assert_null(kn_ctx_value(a2, NULL));
	cr_assert_null(kn_ctx_value(a2, &one));
	/* A value context reports its cancellable ancestor. */
	cr_assert_eq(ctx_waitq(b), ctx_waitq(c));
	cr_assert_null(ctx_waitq(a));
	cr_assert_eq(kn_ctx_cancel(b, 0, NULL), EINVAL);
	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(kn_ctx_err(a2), ECANCELED);
	cr_assert_eq(kn_ctx_value(a2, &key_b), &two); /* values survive */
	kn_ctx_release(a2);
	kn_ctx_release(b);
	kn_ctx_release(c);
	kn_ctx_release(a);
}

Test(ctx, without_cancel)
{
	int one = 1;
	kn_ctx *p = kn_ctx_with_timeout(NULL, 3600ull * 1000000000u);
	kn_ctx *v = kn_ctx_with_value(p, &key_a, &one);
	kn_ctx *d = kn_ctx_without_cancel(v);
	kn_ctx *dc = kn_ctx_with_cancel(d);
	kn_ctx_stop stop;

	cr_assert_eq(kn_ctx_value(d, &key_a), &one);
	cr_assert_eq(kn_ctx_deadline(d), KN_FOREVER);
	cr_assert_neq(kn_ctx_deadline(p), KN_FOREVER);
	cr_assert_null(ctx_waitq(d));
	cr_assert_eq(kn_ctx_cancel(d, 0, NULL), EINVAL);
	cr_assert_eq(kn_ctx_after_func(d, never_fn, NULL, &stop), 0);
	kn_ctx_cancel(p, 0, NULL);
	cr_assert_eq(kn_ctx_err(v), ECANCELED);
	cr_assert_eq(kn_ctx_err(d), 0);
	cr_assert_eq(kn_ctx_err(dc), 0);
	cr_assert_eq(kn_ctx_wait(d, 0), ETIMEDOUT);
	cr_assert(kn_ctx_stop_after_func(&stop));
	/* dc roots its own tree. */
	cr_assert_eq(kn_ctx_cancel(dc, 0, NULL), 0);
	cr_assert_eq(kn_ctx_err(d), 0);
	kn_ctx_release(dc);
	kn_ctx_release(d);
	kn_ctx_release(v);
	kn_ctx_release(p);
}

/* ---- deadlines ------------------------------------------------------------------------- */

Test(ctx, deadline_in_the_past)
{
	uint64_t past[] = { 0, 1, kn_now() };
	const char *msg = "x";

	for (size_t i = 0; i < 3; i++) {
		kn_ctx *c = kn_ctx_with_deadline(NULL, past[i]);

		cr_assert_not_null(c);
		cr_assert_eq(kn_ctx_err(c), ETIMEDOUT);
		cr_assert_eq(kn_ctx_cause(c, &msg), ETIMEDOUT);
		cr_assert_null(msg);
		cr_assert_eq(kn_ctx_deadline(c), past[i]);
		cr_assert_eq(kn_ctx_wait(c, KN_FOREVER), 0);
		kn_ctx_release(c);
	}
}

Test(ctx, deadline_fires)
{
	struct counter cnt;
	kn_ctx_stop stop;
	kn_ctx *p, *c;

	/* If the deadline passes before the after_func is registered (a slow
	 * machine), fn runs at once on this thread: try a longer one. */
	for (uint64_t ns = 20 * 1000000;; ns *= 4) {
		cnt = (struct counter){ 0 };
		p = kn_ctx_with_timeout(NULL, ns);
		c = kn_ctx_with_cancel(p);
		cr_assert_eq(kn_ctx_after_func(c, count_fn, &cnt, &stop), 0);
		if (!atomic_load(&cnt.runs) || !pthread_equal(cnt.thread, pthread_self()))
			break;
		kn_ctx_release(c);
		kn_ctx_release(p);
	}
	cr_assert_eq(kn_ctx_wait(c, KN_FOREVER), 0);
	cr_assert_eq(kn_ctx_err(p), ETIMEDOUT);
	cr_assert_eq(kn_ctx_err(c), ETIMEDOUT);
	cr_assert_eq(kn_ctx_cause(c, NULL), ETIMEDOUT);
	cr_assert_eq(kn_ctx_cancel(p, 0, NULL), EALREADY);
	/* The after_func runs on the timer thread. */
	while (atomic_load(&cnt.runs) == 0)
		usleep(100);
	cr_assert(!pthread_equal(cnt.thread, pthread_self()));
	cr_assert_eq(atomic_load(&cnt.runs), 1);
	kn_ctx_release(c);
	kn_ctx_release(p);
}

Test(ctx, deadline_inherited)
{
	uint64_t d1 = kn_deadline_in(3600ull * 1000000000u);
	kn_ctx *p = kn_ctx_with_deadline(NULL, d1);
	kn_ctx *later = kn_ctx_with_deadline(p, d1 + 1000);
	kn_ctx *earlier = kn_ctx_with_deadline(p, d1 - 1000);
	kn_ctx *plain = kn_ctx_with_cancel(p);
	kn_ctx *v = kn_ctx_with_value(earlier, &key_a, NULL);

	cr_assert_eq(kn_ctx_deadline(p), d1);
	cr_assert_eq(kn_ctx_deadline(later), d1);
	cr_assert_eq(kn_ctx_deadline(earlier), d1 - 1000);
	cr_assert_eq(kn_ctx_deadline(plain), d1);
	cr_assert_eq(kn_ctx_deadline(v), d1 - 1000);
	kn_ctx_release(v);
	kn_ctx_release(plain);
	kn_ctx_release(earlier);
	kn_ctx_release(later);
	kn_ctx_release(p);
}

Test(ctx, many_deadlines)
{
	enum { N = 64 };
	kn_ctx *c[N];

	/* The odd ones fire, added latest first so that each one becomes the
	 * timer's earliest; the even ones, far in the future, are cancelled
	 * (taken out of the timer) before they could. */
	for (int i = 0; i < N; i++)
		c[i] = kn_ctx_with_timeout(NULL, i % 2 ? (uint64_t)(N - i) * 500000
						       : 3600ull * 1000000000u + i);
	for (int i = 0; i < N; i += 2)
		kn_ctx_cancel(c[i], 0, NULL);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(kn_ctx_wait(c[i], KN_FOREVER), 0);
		cr_assert_eq(kn_ctx_err(c[i]), i % 2 ? ETIMEDOUT : ECANCELED);
		kn_ctx_release(c[i]);
	}
}

Test(ctx, released_deadline_leaves_timer)
{
	size_t before;

	/* A far deadline released at once must leave the timer's heap with
	 * its context: still referenced from there, it would not even count
	 * as a leak. The first round starts the timer, sizes its heap and
	 * fills malloc's caches (which mallinfo counts as in use). */
	for (int i = 0; i < 100; i++)
		kn_ctx_release(kn_ctx_with_timeout(NULL, 3600ull * 1000000000u));
	before = mallinfo2().uordblks;
	for (int i = 0; i < 100; i++)
		kn_ctx_release(kn_ctx_with_timeout(NULL, 3600ull * 1000000000u));
	cr_assert_eq(mallinfo2().uordblks, before);
}

Test(ctx, idle_timer_sleeps)
{
	kn_ctx *c = kn_ctx_with_timeout(NULL, 1000000);
	uint64_t before;

	kn_ctx_wait(c, KN_FOREVER);
	kn_ctx_release(c);
	/* Let the timer thread settle: wait for a quiet moment. */
	do {
		before = kn_stat_syscalls();
		usleep(10000);
	} while (kn_stat_syscalls() != before);
	usleep(300000);
	cr_assert_eq(kn_stat_syscalls(), before, "the idle timer woke up");
}

/* ---- wait -------------------------------------------------------------------------------- */

Test(ctx, wait)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	kn_ctx *v = kn_ctx_with_value(c, &key_a, NULL);
	struct waiting w1, w2;

	cr_assert_eq(kn_ctx_wait(c, 0), ETIMEDOUT);
	cr_assert_eq(kn_ctx_wait(c, kn_deadline_in(2000000)), ETIMEDOUT);
	cr_assert_eq(kn_ctx_err(c), 0);
	start_waiting(&w1, c, KN_FOREVER);
	start_waiting(&w2, v, kn_deadline_in(3600ull * 1000000000u));
	kn_ctx_cancel(c, 0, NULL);
	pthread_join(w1.t, NULL);
	pthread_join(w2.t, NULL);
	cr_assert_eq(w1.ret, 0);
	cr_assert_eq(w2.ret, 0);
	cr_assert_eq(kn_ctx_wait(c, 0), 0);
	kn_ctx_release(v);
	kn_ctx_release(c);
}

Test(ctx, wait_woken_by_release_of_parent)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c = kn_ctx_with_cancel(p);
	struct waiting w;

	start_waiting(&w, c, KN_FOREVER);
	kn_ctx_release(p);
	pthread_join(w.t, NULL);
	cr_assert_eq(w.ret, 0);
	kn_ctx_release(c);
}

/* ---- after_func ---------------------------------------------------------------------------- */

Test(ctx, after_func_runs_once_on_canceller)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	struct counter a = { .observed = c }, b = { 0 };
	kn_ctx_stop sa, sb;

	cr_assert_eq(kn_ctx_after_func(c, count_fn, &a, &sa), 0);
	cr_assert_eq(kn_ctx_after_func(c, count_fn, &b, &sb), 0);
	cr_assert_eq(atomic_load(&a.runs), 0);
	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(atomic_load(&a.runs), 1);
	cr_assert_eq(atomic_load(&b.runs), 1);
	cr_assert(pthread_equal(a.thread, pthread_self()));
	cr_assert_eq(a.err_seen, ECANCELED);
	kn_ctx_cancel(c, 0, NULL);
	kn_ctx_release(c);
	cr_assert_eq(atomic_load(&a.runs), 1);
	cr_assert(!kn_ctx_stop_after_func(&sa));
	cr_assert(!kn_ctx_stop_after_func(&sb));
}

Test(ctx, after_func_on_cancelled_runs_at_once)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	struct counter a = { 0 };
	kn_ctx_stop s;

	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(kn_ctx_after_func(c, count_fn, &a, &s), 0);
	cr_assert_eq(atomic_load(&a.runs), 1);
	cr_assert(pthread_equal(a.thread, pthread_self()));
	cr_assert(!kn_ctx_stop_after_func(&s));
	kn_ctx_release(c);
}

Test(ctx, after_func_stop)
{
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	kn_ctx *v = kn_ctx_with_value(c, &key_a, NULL);
	struct counter a = { 0 }, b = { 0 };
	kn_ctx_stop s1, s2, s3;

	cr_assert_eq(kn_ctx_after_func(c, never_fn, NULL, &s1), 0);
	cr_assert_eq(kn_ctx_after_func(v, count_fn, &a, &s2), 0);
	cr_assert_eq(kn_ctx_after_func(c, never_fn, NULL, &s3), 0);
	cr_assert(kn_ctx_stop_after_func(&s3)); /* head of the list */
	cr_assert(kn_ctx_stop_after_func(&s1)); /* tail */
	cr_assert(!kn_ctx_stop_after_func(&s1)); /* already stopped */
	/* A stopped handle is the caller's again. */
	cr_assert_eq(kn_ctx_after_func(c, count_fn, &b, &s1), 0);
	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(atomic_load(&a.runs), 1);
	cr_assert_eq(atomic_load(&b.runs), 1);
	cr_assert(!kn_ctx_stop_after_func(&s1));
	cr_assert(!kn_ctx_stop_after_func(&s2));
	kn_ctx_release(v);
	kn_ctx_release(c);
}

Test(ctx, after_func_sees_subtree_cancelled)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c = kn_ctx_with_cancel(p);
	struct counter a = { .observed = c };
	kn_ctx_stop s;

	kn_ctx_after_func(p, count_fn, &a, &s);
	kn_ctx_cancel(p, 0, NULL);
	cr_assert_eq(a.err_seen, ECANCELED);
	kn_ctx_release(c);
	kn_ctx_release(p);
}

Test(ctx, after_func_may_release_last_reference)
{
	kn_ctx *p = kn_ctx_with_cancel(NULL);
	kn_ctx *c = kn_ctx_with_cancel(p);
	struct counter a = { .release = c }, b = { 0 };
	kn_ctx_stop s1, s2;

	kn_ctx_after_func(c, count_fn, &a, &s1);
	kn_ctx_after_func(c, count_fn, &b, &s2);
	kn_ctx_cancel(p, 0, NULL); /* a's fn frees c mid-cancellation */
	cr_assert_eq(atomic_load(&a.runs), 1);
	cr_assert_eq(atomic_load(&b.runs), 1);
	kn_ctx_release(p);
}

Test(ctx, after_func_never_on_uncancellable)
{
	kn_ctx *d = kn_ctx_without_cancel(NULL);
	kn_ctx *v = kn_ctx_with_value(d, &key_a, NULL);
	kn_ctx_stop s1, s2;

	cr_assert_eq(kn_ctx_after_func(kn_ctx_background(), never_fn, NULL, &s1), 0);
	cr_assert_eq(kn_ctx_after_func(v, never_fn, NULL, &s2), 0);
	kn_ctx_release(v);
	kn_ctx_release(d);
	cr_assert(kn_ctx_stop_after_func(&s1));
	cr_assert(kn_ctx_stop_after_func(&s2));
}

/* Stop racing the cancellation: fn runs iff stop returns false. */
struct race {
	kn_ctx *c;
	kn_ctx_stop s;
	struct counter cnt;
	bool stopped;
};

static void *stop_main(void *arg)
{
	struct race *r = arg;

	r->stopped = kn_ctx_stop_after_func(&r->s);
	return NULL;
}

Test(ctx, after_func_stop_races_cancel)
{
	for (int i = 0; i < 500; i++) {
		struct race r = { .c = kn_ctx_with_cancel(NULL) };
		pthread_t t;

		kn_ctx_after_func(r.c, count_fn, &r.cnt, &r.s);
		pthread_create(&t, NULL, stop_main, &r);
		kn_ctx_release(r.c); /* cancels, maybe freeing while t stops */
		pthread_join(t, NULL);
		cr_assert_eq(atomic_load(&r.cnt.runs), r.stopped ? 0 : 1);
	}
}

/* ---- the timer heap (internal) ------------------------------------------- */

#include "timer.h"

#define TIMER_N 3000

struct tentry {
	struct timer_entry e; /* first: fire gets &e */
	_Atomic int fired;
};

static struct tentry tents[TIMER_N];
static _Atomic uint64_t fired_total, last_fired_when;
static _Atomic int fired_out_of_order;

static void tfire(struct timer_entry *e)
{
	struct tentry *t = (struct tentry *)e;

	/* One timer thread: fires are sequential. */
	if (e->when < atomic_load(&last_fired_when))
		atomic_store(&fired_out_of_order, 1);
	atomic_store(&last_fired_when, e->when);
	atomic_fetch_add(&t->fired, 1);
	atomic_fetch_add(&fired_total, 1);
}

/* Many entries at random times (some equal), a third of them removed
 * before they are due: the rest fire once each, earliest first. */
Test(timer, entries_fire_once_in_time_order_unless_removed)
{
	uint64_t base = kn_now() + 200 * 1000000ull, x = 12345, want = 0;
	int i;

	for (i = 0; i < TIMER_N; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		atomic_init(&tents[i].fired, 0);
		cr_assert_eq(timer_add(&tents[i].e, base + (x >> 33) % 20000000ull,
				       tfire), 0);
	}
	for (i = 0; i < TIMER_N; i++) {
		if (i % 3 == 0)
			cr_assert(timer_remove(&tents[i].e), "entry %d", i);
		else
			want++;
	}
	for (i = 0; i < 10000 && atomic_load(&fired_total) < want; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&fired_total), want);
	cr_expect_eq(atomic_load(&fired_out_of_order), 0);
	for (i = 0; i < TIMER_N; i++) {
		cr_expect_eq(atomic_load(&tents[i].fired), i % 3 ? 1 : 0, "entry %d", i);
		cr_expect(!timer_remove(&tents[i].e), "entry %d left twice", i);
	}
}

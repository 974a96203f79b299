/*
 * test_pattern.c - the patterns (kanal/pattern.h): flows, generators,
 * stages (unordered, ordered, filters), the worker pool, merge,
 * distribute, bounded for-each.
 *
 * Every test runs its flow on a pool of its own and ends with ended(): the
 * flow's wait has returned, the pool is idle, and the pool ran exactly the
 * tasks the patterns were to start, each to its end - so a cancellation
 * that left a task blocked would hang the test (Criterion's timeout) and a
 * task count off by one fails it. Stage functions count the calls inside
 * them; those counts must be back at zero too.
 *
 * "Can k calls be in flight at once" is tested without clocks: the calls
 * meet at a wait group that opens only when k of them are inside, which
 * never happens (a hang) unless the pattern runs k at once.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "kanal/ctx.h"
#include "kanal/group.h"
#include "kanal/pattern.h"
#include "helpers.h"
#include "pool_helpers.h"

/* Calls inside a stage function right now, and the most seen at once. */
static _Atomic int inside, most_inside;

static void enter(void)
{
	int now = atomic_fetch_add(&inside, 1) + 1, most = atomic_load(&most_inside);

	while (now > most && !atomic_compare_exchange_weak(&most_inside, &most, now))
		;
}

static void leave(void)
{
	atomic_fetch_sub(&inside, 1);
}

static void reset_counts(void)
{
	atomic_store(&inside, 0);
	atomic_store(&most_inside, 0);
	atomic_store(&task_failures, 0);
}

static kn_pool *test_pool(unsigned workers)
{
	reset_counts();
	return pool_of(workers, 0);
}

static kn_flow *test_flow(kn_ctx *parent, kn_pool *pool)
{
	kn_flow *f = kn_flow_new(parent, pool);

	cr_assert_not_null(f, "kn_flow_new: %s", strerror(errno));
	return f;
}

/* Wait for the flow (its result must be want), check that exactly tasks
 * tasks ran on the pool and that nothing is left running, free both. */
static void ended(kn_flow *f, kn_pool *pool, int want, uint64_t tasks)
{
	struct kn_pool_stats st;

	cr_assert_eq(kn_flow_wait(f), want, "flow: %d, want %d",
		     kn_flow_wait(f), want);
	cr_assert_eq(kn_pool_wait_idle(pool), 0);
	cr_assert_eq(kn_pool_stats(pool, &st), 0);
	cr_assert_eq(st.tasks_run, tasks, "%llu tasks ran, want %llu",
		     (unsigned long long)st.tasks_run, (unsigned long long)tasks);
	cr_assert_eq(atomic_load(&inside), 0);
	cr_assert_eq(atomic_load(&task_failures), 0);
	kn_flow_free(f);
	kn_pool_free(pool);
}

/* Receive every int64 value of ch until it closes; returns the count. */
static size_t drain(kn_chan *ch, int64_t *got, size_t max)
{
	size_t n = 0;
	int64_t v;

	while (kn_chan_recv(ch, &v) == 0) {
		cr_assert_lt(n, max, "more values than expected");
		got[n++] = v;
	}
	return n;
}

static int64_t *seq(size_t n)
{
	int64_t *a = malloc(n * sizeof(*a));
	size_t i;

	cr_assert_not_null(a);
	for (i = 0; i < n; i++)
		a[i] = (int64_t)i;
	return a;
}

/* ---- stage functions ----------------------------------------------------- */

static int square(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t x = *(const int64_t *)in;

	(void)ctx;
	(void)arg;
	enter();
	*(int64_t *)out = x * x;
	leave();
	return 0;
}

/* Sleeps a pseudo-random 0..400 us (in kanal: the worker lets a spare run),
 * so that workers finish out of order; returns x + 1000. */
static int jitter(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t x = *(const int64_t *)in;
	uint64_t h = (uint64_t)x * 0x9e3779b97f4a7c15ull;

	(void)arg;
	enter();
	kn_ctx_wait(ctx, kn_deadline_in((h >> 59) * 25000));
	*(int64_t *)out = x + 1000;
	leave();
	return 0;
}

/* The identity, through a computation. */
static int square_plus(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t x = *(const int64_t *)in;

	(void)ctx;
	(void)arg;
	*(int64_t *)out = x * x - x * x + x;
	return 0;
}

/* Keeps even values, drops odd ones. */
static int evens(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t x = *(const int64_t *)in;

	(void)ctx;
	(void)arg;
	if (x % 2)
		return KN_SKIP;
	*(int64_t *)out = x;
	return 0;
}

/* Fails with EIO on the value *arg. */
static int fail_on(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int64_t x = *(const int64_t *)in;

	(void)ctx;
	*(int64_t *)out = x;
	return x == *(int64_t *)arg ? EIO : 0;
}

/* The first k calls meet: each waits until k calls are inside. */
struct meet {
	kn_waitgroup wg;
	_Atomic int arrived;
	int k;
};

static struct meet meeting;

static void meet_init(int k)
{
	kn_waitgroup_init(&meeting.wg);
	kn_waitgroup_add(&meeting.wg, k);
	atomic_store(&meeting.arrived, 0);
	meeting.k = k;
}

static void meet(kn_ctx *ctx)
{
	if (atomic_fetch_add(&meeting.arrived, 1) >= meeting.k)
		return;
	kn_waitgroup_done(&meeting.wg);
	TASK_CHECK(kn_waitgroup_wait_ctx(&meeting.wg, ctx) == 0);
}

static int meet_then_copy(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)arg;
	enter();
	meet(ctx);
	memcpy(out, in, sizeof(int64_t));
	leave();
	return 0;
}

static struct kn_stage_spec spec_of(kn_stage_fn fn, void *arg, unsigned workers,
				    unsigned flags, size_t cap)
{
	return (struct kn_stage_spec){ .fn = fn, .arg = arg,
				       .out_size = sizeof(int64_t),
				       .out_cap = cap, .workers = workers,
				       .flags = flags };
}

/* ---- flows --------------------------------------------------------------- */

static int return_arg(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	return (int)(intptr_t)arg;
}

Test(flow, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);

	cr_assert_null(kn_flow_ctx(NULL));
	cr_assert_eq(kn_flow_wait(NULL), EINVAL);
	cr_assert_eq(kn_flow_go(NULL, return_arg, NULL), EINVAL);
	cr_assert_eq(kn_flow_go(f, NULL, NULL), EINVAL);
	kn_flow_free(NULL);
	cr_assert_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "EINVAL changed the flow");
	ended(f, pool, 0, 0);
}

Test(flow, first_error_wins_and_cancels_with_it_as_cause)
{
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);

	cr_assert_eq(kn_flow_go(f, return_arg, (void *)(intptr_t)EIO), 0);
	cr_assert_eq(kn_ctx_wait(kn_flow_ctx(f), KN_FOREVER), 0);
	cr_assert_eq(kn_ctx_cause(kn_flow_ctx(f), NULL), EIO);
	/* Cancelled: later tasks do not start. */
	cr_assert_eq(kn_flow_go(f, return_arg, NULL), ECANCELED);
	ended(f, pool, EIO, 1);
}

/* A flow task that waits for the flow's context to end, then returns 0 as
 * if it stopped cleanly. */
static int wait_then_zero(kn_ctx *ctx, void *arg)
{
	(void)arg;
	TASK_CHECK(kn_ctx_wait(ctx, KN_FOREVER) == 0);
	return 0;
}

Test(flow, cut_short_by_an_ancestors_cancel_reports_its_cause)
{
	kn_pool *pool = test_pool(2);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);

	cr_assert_eq(kn_flow_go(f, wait_then_zero, NULL), 0);
	cr_assert_eq(kn_ctx_cancel(parent, ENOLINK, NULL), 0);
	ended(f, pool, ENOLINK, 1);
	kn_ctx_release(parent);
}

Test(flow, cut_short_by_a_cancel_of_its_context_reports_ecanceled)
{
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);

	cr_assert_eq(kn_flow_go(f, wait_then_zero, NULL), 0);
	cr_assert_eq(kn_ctx_cancel(kn_flow_ctx(f), 0, NULL), 0);
	ended(f, pool, ECANCELED, 1);
}

Test(flow, cut_short_by_a_deadline_reports_etimedout)
{
	uint64_t ns = 1000000;

	/* The deadline must pass after the task started: retried with a
	 * longer one if the machine was too slow to start it in time. */
	for (;; ns *= 10) {
		kn_pool *pool = test_pool(2);
		kn_ctx *parent = kn_ctx_with_timeout(NULL, ns);
		kn_flow *f = test_flow(parent, pool);

		if (kn_flow_go(f, wait_then_zero, NULL) == 0) {
			ended(f, pool, ETIMEDOUT, 1);
			kn_ctx_release(parent);
			return;
		}
		kn_flow_free(f);
		kn_pool_free(pool);
		kn_ctx_release(parent);
	}
}

Test(flow, a_tasks_error_before_the_cancel_wins)
{
	kn_pool *pool = test_pool(2);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);

	cr_assert_eq(kn_flow_go(f, wait_then_zero, NULL), 0);
	cr_assert_eq(kn_flow_go(f, return_arg, (void *)(intptr_t)EIO), 0);
	cr_assert_eq(kn_ctx_wait(kn_flow_ctx(f), KN_FOREVER), 0);
	kn_ctx_cancel(parent, ENOLINK, NULL);
	ended(f, pool, EIO, 2);
	kn_ctx_release(parent);
}

Test(flow, a_cancel_after_every_task_finished_is_not_reported)
{
	kn_pool *pool = test_pool(2);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);

	cr_assert_eq(kn_flow_go(f, return_arg, NULL), 0);
	cr_assert_eq(kn_pool_wait_idle(pool), 0); /* the task has ended */
	cr_assert_eq(kn_ctx_cancel(parent, ENOLINK, NULL), 0);
	ended(f, pool, 0, 1);
	kn_ctx_release(parent);
}

Test(flow, free_without_wait_cancels_and_frees_everything)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(10);

	/* A rendezvous generator nobody reads: blocked until cancelled. */
	cr_assert_not_null(kn_generate_array(f, v, sizeof(int64_t), 10, 0));
	kn_flow_free(f); /* AddressSanitizer: nothing leaks or is reused */
	cr_assert_eq(kn_pool_wait_idle(pool), 0);
	kn_pool_free(pool);
	free(v);
}

/* ---- generators ---------------------------------------------------------- */

Test(generate, array_in_order_then_closed)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(100), got[100];
	kn_chan *ch = kn_generate_array(f, v, sizeof(int64_t), 100, 0);
	size_t i;

	cr_assert_not_null(ch);
	cr_assert_eq(drain(ch, got, 100), 100);
	for (i = 0; i < 100; i++)
		cr_assert_eq(got[i], (int64_t)i);
	cr_assert(kn_chan_is_closed(ch));
	ended(f, pool, 0, 1);
	free(v);
}

Test(generate, odd_sized_values_and_an_empty_array)
{
	static const char words[4][3] = { "ab", "cd", "ef", "gh" };
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *ch = kn_generate_array(f, words, 3, 4, 2);
	kn_chan *none = kn_generate_array(f, NULL, 8, 0, 0);
	char w[3];
	int64_t v;
	int i;

	cr_assert_not_null(ch);
	cr_assert_not_null(none);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(kn_chan_recv(ch, w), 0);
		cr_assert_str_eq(w, words[i]);
	}
	cr_assert_eq(kn_chan_recv(ch, w), EPIPE);
	cr_assert_eq(kn_chan_recv(none, &v), EPIPE);
	ended(f, pool, 0, 2);
}

static int count_to(kn_ctx *ctx, kn_chan *out, void *arg)
{
	int64_t i, n = *(int64_t *)arg;
	int err;

	for (i = 0; i < n; i++) {
		err = kn_chan_send_ctx(out, &i, ctx);
		if (err)
			return err;
	}
	return n == 7 ? EIO : 0; /* 7: fail after the values */
}

Test(generate, function_values_and_its_error)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t n = 7, got[7];
	kn_chan *ch = kn_generate(f, sizeof(int64_t), 3, count_to, &n);

	cr_assert_not_null(ch);
	cr_assert_eq(drain(ch, got, 7), 7);
	ended(f, pool, EIO, 1);
}

Test(generate, cancel_ends_a_blocked_generator)
{
	kn_pool *pool = test_pool(1);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);
	int64_t n = 1000, v;
	kn_chan *ch = kn_generate(f, sizeof(int64_t), 0, count_to, &n);

	cr_assert_not_null(ch);
	cr_assert_eq(kn_chan_recv(ch, &v), 0);
	cr_assert_eq(v, 0);
	/* The stop-crane, through an ancestor, with a cause of its own. */
	cr_assert_eq(kn_ctx_cancel(parent, ENETDOWN, "down"), 0);
	while (kn_chan_recv(ch, &v) == 0)
		;
	ended(f, pool, ECANCELED, 1); /* count_to returns its send's status */
	kn_ctx_release(parent);
}

Test(generate, array_generator_reports_the_cause)
{
	kn_pool *pool = test_pool(1);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);
	int64_t *v = seq(10);

	cr_assert_not_null(kn_generate_array(f, v, sizeof(int64_t), 10, 0));
	cr_assert_eq(kn_ctx_cancel(parent, ENETDOWN, NULL), 0);
	ended(f, pool, ENETDOWN, 1);
	kn_ctx_release(parent);
	free(v);
}

Test(generate, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t x = 0;

	errno = 0;
	cr_assert_null(kn_generate(NULL, 8, 0, count_to, &x));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate(f, 8, 0, NULL, &x));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate(f, 0, 0, count_to, &x));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate_array(NULL, &x, 8, 1, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate_array(f, NULL, 8, 1, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate_array(f, &x, 0, 1, 0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_generate_array(f, &x, 8, 1, (size_t)1 << 41));
	cr_assert_eq(errno, EINVAL, "a capacity the channel refuses");
	cr_assert_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "EINVAL changed the flow");
	ended(f, pool, 0, 0);
}

Test(generate, on_a_cancelled_flow_returns_a_closed_channel)
{
	kn_pool *pool = test_pool(1);
	kn_ctx *parent = kn_ctx_with_cancel(NULL);
	kn_flow *f = test_flow(parent, pool);
	int64_t x = 5, v;
	kn_chan *ch;

	kn_ctx_cancel(parent, EHOSTDOWN, NULL);
	ch = kn_generate_array(f, &x, sizeof(x), 1, 0);
	cr_assert_not_null(ch);
	cr_assert_eq(kn_chan_recv(ch, &v), EPIPE);
	ended(f, pool, EHOSTDOWN, 0); /* the refused start is reported */
	kn_ctx_release(parent);
}

Test(generate, on_a_shut_down_pool_reports_epipe)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t x = 5, v;
	kn_chan *ch;

	cr_assert_eq(kn_pool_shutdown(pool, true, NULL), 0);
	ch = kn_generate_array(f, &x, sizeof(x), 1, 0);
	cr_assert_not_null(ch);
	cr_assert_eq(kn_chan_recv(ch, &v), EPIPE);
	cr_assert_eq(kn_ctx_cause(kn_flow_ctx(f), NULL), EPIPE,
		     "the failure cancels the flow");
	ended(f, pool, EPIPE, 0);
}

/* ---- stages -------------------------------------------------------------- */

Test(stage, workers_take_every_value_once_and_close)
{
	enum { N = 2000 };
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), *got = malloc(N * sizeof(int64_t));
	struct kn_stage_spec sp = spec_of(square, NULL, 4, 0, 16);
	static _Atomic uint8_t seen[N];
	kn_chan *out;
	size_t n, i;

	sp.batch = 7;
	out = kn_stage(f, kn_generate_array(f, v, 8, N, 16), &sp);

	cr_assert_not_null(out);
	n = drain(out, got, N);
	cr_assert_eq(n, N);
	for (i = 0; i < n; i++) {
		int64_t r = 0;

		while (r * r < got[i])
			r++;
		cr_assert_eq(r * r, got[i], "not a square: %lld", (long long)got[i]);
		cr_assert_eq(atomic_fetch_add(&seen[r], 1), 0, "%lld twice",
			     (long long)r);
	}
	ended(f, pool, 0, 1 + 4);
	free(v);
	free(got);
}

static void check_ordered(unsigned workers, size_t n, kn_stage_fn fn,
			  int64_t add, unsigned batch)
{
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(n), *got = malloc(n * sizeof(int64_t));
	struct kn_stage_spec sp = spec_of(fn, NULL, workers, KN_STAGE_ORDERED,
					  batch);
	kn_chan *out;

	sp.batch = batch;
	out = kn_stage(f, kn_generate_array(f, v, 8, n, batch), &sp);
	size_t i;

	cr_assert_not_null(out);
	cr_assert_eq(drain(out, got, n), n);
	for (i = 0; i < n; i++)
		cr_assert_eq(got[i], (int64_t)i + add, "position %zu: %lld", i,
			     (long long)got[i]);
	ended(f, pool, 0, 1 + workers);
	free(v);
	free(got);
}

Test(stage, ordered_keeps_input_order_with_jittery_workers)
{
	check_ordered(4, 300, jitter, 1000, 1);
	cr_assert_gt(atomic_load(&most_inside), 1, "the workers never overlapped");
}

Test(stage, ordered_with_one_worker_and_many)
{
	check_ordered(1, 200, jitter, 1000, 1);
	check_ordered(7, 1000, meet_then_copy, 0, 1);
}

Test(stage, ordered_batches_keep_the_order)
{
	check_ordered(3, 2000, square_plus, 0, 8);
	check_ordered(4, 300, jitter, 1000, 5);
}

Test(stage, ordered_runs_its_workers_at_once)
{
	/* 5 calls must be inside at once: on a 2-worker pool, spares. */
	meet_init(5);
	check_ordered(5, 50, meet_then_copy, 0, 1);
	cr_assert_eq(atomic_load(&most_inside), 5);
}

Test(stage, unordered_runs_its_workers_at_once)
{
	enum { N = 40 };
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N];
	struct kn_stage_spec sp = spec_of(meet_then_copy, NULL, 6, 0, 0);
	kn_chan *out;

	meet_init(6);
	out = kn_stage(f, kn_generate_array(f, v, 8, N, 0), &sp);
	cr_assert_eq(drain(out, got, N), N);
	cr_assert_eq(atomic_load(&most_inside), 6);
	ended(f, pool, 0, 1 + 6);
	free(v);
}

/* A slow value: 5 ms, holding the thread (outside kanal). */
static int slow_copy(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	enter();
	nap_ms(5);
	leave();
	*(int64_t *)out = *(const int64_t *)in;
	return 0;
}

/* Automatic batches (batch 0): slow values are taken one at a time, so
 * both workers run them; a fixed batch of 16 would let the first worker
 * take all 8 at once. */
Test(stage, automatic_batches_keep_slow_work_balanced)
{
	enum { N = 8 };
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N];
	struct kn_stage_spec sp = spec_of(slow_copy, NULL, 2, 0, N);
	kn_chan *out;

	reset_counts();
	out = kn_stage(f, kn_generate_array(f, v, 8, N, N), &sp);
	cr_assert_eq(drain(out, got, N), N);
	cr_assert_eq(atomic_load(&most_inside), 2);
	ended(f, pool, 0, 1 + 2);
	free(v);
}

static void check_filter(unsigned workers, unsigned flags, unsigned batch)
{
	enum { N = 500 };
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N], sum = 0;
	struct kn_stage_spec sp = spec_of(evens, NULL, workers, flags, 4);
	kn_chan *out;
	size_t n, i;

	sp.batch = batch;
	out = kn_stage(f, kn_generate_array(f, v, 8, N, 16), &sp);

	n = drain(out, got, N);
	cr_assert_eq(n, N / 2);
	for (i = 0; i < n; i++) {
		cr_assert_eq(got[i] % 2, 0);
		if (flags & KN_STAGE_ORDERED)
			cr_assert_eq(got[i], 2 * (int64_t)i);
		sum += got[i];
	}
	cr_assert_eq(sum, (N / 2) * (N / 2 - 1));
	ended(f, pool, 0, 1 + workers);
	free(v);
}

Test(stage, skip_filters_in_both_modes)
{
	check_filter(3, 0, 1);
	check_filter(3, KN_STAGE_ORDERED, 1);
	check_filter(3, 0, 6);
	check_filter(2, KN_STAGE_ORDERED, 6);
}

Test(stage, an_error_cancels_the_whole_pipeline)
{
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t fail = 50, n = 1000000, v;
	struct kn_stage_spec sp = spec_of(fail_on, &fail, 3, 0, 0);
	struct kn_stage_spec sq = spec_of(square, NULL, 2, KN_STAGE_ORDERED, 0);
	kn_chan *gen = kn_generate(f, 8, 0, count_to, &n);
	kn_chan *out = kn_stage(f, kn_stage(f, gen, &sp), &sq);
	size_t got = 0;

	cr_assert_not_null(out);
	while (kn_chan_recv(out, &v) == 0)
		got++;
	cr_assert_lt(got, 1000, "the error did not stop the generator");
	/* The generator (1), 3 failing workers, 2 squaring workers. */
	ended(f, pool, EIO, 1 + 3 + 2);
}

Test(stage, cancel_mid_stream_ends_every_worker)
{
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	int64_t n = 1000000, v;
	struct kn_stage_spec a = spec_of(jitter, NULL, 4, KN_STAGE_ORDERED, 0);
	struct kn_stage_spec b = spec_of(square, NULL, 3, 0, 8);
	kn_chan *out = kn_stage(f, kn_stage(f, kn_generate(f, 8, 0, count_to, &n),
					    &a), &b);
	int i;

	cr_assert_not_null(out);
	for (i = 0; i < 20; i++)
		cr_assert_eq(kn_chan_recv(out, &v), 0);
	/* Everyone is busy or blocked now: stop them all. */
	kn_ctx_cancel(kn_flow_ctx(f), 0, NULL);
	while (kn_chan_recv(out, &v) == 0)
		;
	ended(f, pool, ECANCELED, 1 + 4 + 3);
}

Test(stage, a_long_chain_on_one_pool_worker)
{
	enum { STAGES = 12, N = 300 };
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N];
	struct kn_stage_spec sp = spec_of(jitter, NULL, 1, 0, 0);
	kn_chan *ch = kn_generate_array(f, v, 8, N, 0);
	int s;
	size_t i;

	sp.fn = evens; /* keeps the evens, then 11 stages of +1000 */
	ch = kn_stage(f, ch, &sp);
	sp.fn = jitter;
	for (s = 1; s < STAGES; s++)
		ch = kn_stage(f, ch, &sp);
	cr_assert_eq(drain(ch, got, N), N / 2);
	for (i = 0; i < N / 2; i++)
		cr_assert_eq(got[i], 2 * (int64_t)i + 1000 * (STAGES - 1));
	ended(f, pool, 0, 1 + STAGES);
	free(v);
}

Test(stage, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *in = kt_chan(8, 0);
	struct kn_stage_spec ok = spec_of(square, NULL, 1, 0, 0), sp;

	errno = 0;
	cr_assert_null(kn_stage(NULL, in, &ok));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_stage(f, NULL, &ok));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_stage(f, in, NULL));
	cr_assert_eq(errno, EINVAL);
	sp = ok;
	sp.fn = NULL;
	cr_assert_null(kn_stage(f, in, &sp));
	sp = ok;
	sp.out_size = 0;
	cr_assert_null(kn_stage(f, in, &sp));
	sp = ok;
	sp.workers = 0;
	cr_assert_null(kn_stage(f, in, &sp));
	sp = ok;
	sp.flags = 4;
	errno = 0;
	cr_assert_null(kn_stage(f, in, &sp));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "EINVAL changed the flow");
	ended(f, pool, 0, 0);
	kn_chan_free(in);
}

/* ---- worker pool --------------------------------------------------------- */

Test(worker_pool, every_job_once_results_closed_channels_stay_ours)
{
	enum { N = 300 };
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	/* Room for every result: the test sends all jobs before receiving. */
	kn_chan *jobs = kt_chan(8, 10), *results = kt_chan(8, N);
	int64_t got[N], sum = 0, j;
	size_t i;

	cr_assert_eq(kn_worker_pool(f, jobs, results, 3, square, NULL), 0);
	for (j = 0; j < N; j++)
		kt_put(jobs, j);
	cr_assert_eq(kn_chan_close(jobs), 0);
	cr_assert_eq(drain(results, got, N), N);
	for (i = 0; i < N; i++)
		sum += got[i];
	cr_assert_eq(sum, (int64_t)(N - 1) * N * (2 * N - 1) / 6);
	cr_assert(kn_chan_is_closed(results));
	ended(f, pool, 0, 3);
	/* Still the caller's: usable, then freed once (ASan: no double free). */
	cr_assert_eq(kn_chan_recv(results, &j), EPIPE);
	kn_chan_free(jobs);
	kn_chan_free(results);
}

Test(worker_pool, cancel_ends_workers_blocked_on_jobs)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *jobs = kt_chan(8, 0), *results = kt_chan(8, 0);
	int64_t j = 3;

	cr_assert_eq(kn_worker_pool(f, jobs, results, 4, square, NULL), 0);
	kt_put(jobs, j);        /* one worker takes it and blocks on results */
	kn_ctx_cancel(kn_flow_ctx(f), 0, NULL);
	/* A send already waiting when the cancellation came may still meet
	 * this receive (the channel's rule: whichever is decided first). */
	if (kn_chan_recv(results, &j) == 0)
		cr_assert_eq(j, 9);
	cr_assert_eq(kn_chan_recv(results, &j), EPIPE, "results not closed");
	ended(f, pool, ECANCELED, 4);
	kn_chan_free(jobs);
	kn_chan_free(results);
}

Test(worker_pool, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *c = kt_chan(8, 0);

	cr_assert_eq(kn_worker_pool(NULL, c, c, 1, square, NULL), EINVAL);
	cr_assert_eq(kn_worker_pool(f, NULL, c, 1, square, NULL), EINVAL);
	cr_assert_eq(kn_worker_pool(f, c, NULL, 1, square, NULL), EINVAL);
	cr_assert_eq(kn_worker_pool(f, c, c, 0, square, NULL), EINVAL);
	cr_assert_eq(kn_worker_pool(f, c, c, 1, NULL, NULL), EINVAL);
	ended(f, pool, 0, 0);
	kn_chan_free(c);
}

/* ---- kn_flow_set_batch ----------------------------------------------------- */

/* The caller's channels of the test below, freed after the flow's wait. */
static kn_chan *ours[8];
static size_t nours;

/*
 * A pattern whose first receive found 8 values queued and whose send then
 * blocks (nobody receives its rendezvous output): with batch 1 it took one,
 * with the default it took them all. Returns what is left in in.
 */
static size_t left_after_first_receive(kn_flow *f, unsigned batch, bool pool)
{
	kn_chan *in = kt_chan(8, 8), *out = pool ? kt_chan(8, 0) : NULL;
	int64_t got[8], j;
	size_t left;

	for (j = 0; j < 8; j++)
		kt_put(in, j);
	cr_assert_eq(kn_flow_set_batch(f, batch), 0);
	if (pool)
		cr_assert_eq(kn_worker_pool(f, in, out, 1, square, NULL), 0);
	else
		out = kn_merge(f, &in, 1, 0);
	cr_assert_not_null(out);
	kt_wait_queued(out, KN_SEND, 1, NULL, 0);
	left = kn_chan_len(in);
	cr_assert_eq(kn_chan_close(in), 0);
	cr_assert_eq(drain(out, got, 8), 8);
	for (j = 0; j < 8; j++)
		cr_assert_eq(got[j], pool ? j * j : j);
	ours[nours++] = in;
	if (pool)
		ours[nours++] = out;
	return left;
}

Test(flow_batch, one_moves_one_value_per_operation)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);

	cr_assert_eq(left_after_first_receive(f, 1, false), 7, "merge");
	cr_assert_eq(left_after_first_receive(f, 0, false), 0, "merge, default");
	cr_assert_eq(left_after_first_receive(f, 1, true), 7, "worker pool");
	cr_assert_eq(left_after_first_receive(f, 4, true), 4, "worker pool, 4");
	cr_assert_eq(kn_flow_set_batch(NULL, 1), EINVAL);
	ended(f, pool, 0, 4);
	while (nours)
		kn_chan_free(ours[--nours]);
}

/* ---- merge --------------------------------------------------------------- */

Test(merge, every_value_once_per_input_order_closed_after_all)
{
	enum { INPUTS = 5 };
	static const size_t len[INPUTS] = { 0, 1, 50, 333, 1000 };
	kn_pool *pool = test_pool(2);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *ins[INPUTS], *out;
	int64_t *vals[INPUTS], got[1384], next[INPUTS] = { 0 };
	size_t n, i, k;

	for (k = 0; k < INPUTS; k++) {
		vals[k] = malloc((len[k] + 1) * sizeof(int64_t));
		for (i = 0; i < len[k]; i++)
			vals[k][i] = (int64_t)(k * 10000 + i);
		ins[k] = kn_generate_array(f, vals[k], 8, len[k], k % 2 ? 7 : 0);
		cr_assert_not_null(ins[k]);
	}
	out = kn_merge(f, ins, INPUTS, 3);
	cr_assert_not_null(out);
	n = drain(out, got, 1384);
	cr_assert_eq(n, 1384);
	for (i = 0; i < n; i++) {
		k = (size_t)got[i] / 10000;
		cr_assert_eq(got[i] % 10000, next[k], "input %zu out of order", k);
		next[k]++;
	}
	for (k = 0; k < INPUTS; k++) {
		cr_assert_eq((size_t)next[k], len[k]);
		cr_assert(kn_chan_is_closed(ins[k]));
	}
	ended(f, pool, 0, 2 * INPUTS);
	for (k = 0; k < INPUTS; k++)
		free(vals[k]);
}

Test(merge, an_input_that_never_closes_holds_the_output_until_cancel)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *open = kt_chan(8, 4), *ins[2], *out;
	int64_t x = 42, v;

	ins[0] = kn_generate_array(f, &x, 8, 1, 0);
	ins[1] = open;
	out = kn_merge(f, ins, 2, 0);
	cr_assert_eq(kn_chan_recv(out, &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(kn_chan_try_recv(out, &v), EAGAIN, "closed too early");
	kn_ctx_cancel(kn_flow_ctx(f), 0, NULL);
	cr_assert_eq(kn_chan_recv(out, &v), EPIPE);
	ended(f, pool, ECANCELED, 3);
	kn_chan_free(open);
}

Test(merge, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *a = kt_chan(8, 0), *b = kt_chan(4, 0);
	kn_chan *ab[] = { a, b }, *an[] = { a, NULL };

	errno = 0;
	cr_assert_null(kn_merge(NULL, ab, 1, 0));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(kn_merge(f, NULL, 1, 0));
	cr_assert_null(kn_merge(f, ab, 0, 0));
	cr_assert_null(kn_merge(f, an, 2, 0));
	errno = 0;
	cr_assert_null(kn_merge(f, ab, 2, 0), "sizes differ");
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "EINVAL changed the flow");
	ended(f, pool, 0, 0);
	kn_chan_free(a);
	kn_chan_free(b);
}

/* ---- distribute ---------------------------------------------------------- */

Test(distribute, round_robin_deals_in_turn)
{
	enum { N = 30, OUTS = 3 };
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N];
	kn_chan *outs[OUTS];
	size_t k, i;

	/* Room for everything: the test reads the outputs one after another. */
	cr_assert_eq(kn_distribute(f, kn_generate_array(f, v, 8, N, 0), OUTS, N,
				   KN_DIST_ROUND_ROBIN, outs), 0);
	for (k = 0; k < OUTS; k++) {
		cr_assert_eq(drain(outs[k], got, N), N / OUTS);
		for (i = 0; i < N / OUTS; i++)
			cr_assert_eq(got[i], (int64_t)(i * OUTS + k));
	}
	ended(f, pool, 0, 2);
	free(v);
}

Test(distribute, any_sends_where_there_is_room)
{
	enum { N = 200 };
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t *v = seq(N), got[N], x;
	kn_chan *outs[2];
	size_t i;

	/* outs[0] is a rendezvous nobody receives from: everything must go
	 * to outs[1]. */
	cr_assert_eq(kn_distribute(f, kn_generate_array(f, v, 8, N, 0), 2, 0,
				   KN_DIST_ANY, outs), 0);
	cr_assert_eq(drain(outs[1], got, N), N);
	for (i = 0; i < N; i++)
		cr_assert_eq(got[i], (int64_t)i);
	cr_assert_eq(kn_chan_recv(outs[0], &x), EPIPE);
	ended(f, pool, 0, 2);
	free(v);
}

Test(distribute, cancel_ends_it_and_closes_every_output)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	int64_t n = 1000000, x;
	kn_chan *outs[3];

	cr_assert_eq(kn_distribute(f, kn_generate(f, 8, 0, count_to, &n), 3, 0,
				   KN_DIST_ROUND_ROBIN, outs), 0);
	cr_assert_eq(kn_chan_recv(outs[0], &x), 0);
	kn_ctx_cancel(kn_flow_ctx(f), 0, NULL);
	for (int k = 0; k < 3; k++)
		while (kn_chan_recv(outs[k], &x) == 0)
			;
	ended(f, pool, ECANCELED, 2);
}

Test(distribute, bad_arguments)
{
	kn_pool *pool = test_pool(1);
	kn_flow *f = test_flow(NULL, pool);
	kn_chan *in = kt_chan(8, 0), *outs[2] = { NULL, NULL };

	cr_assert_eq(kn_distribute(NULL, in, 2, 0, KN_DIST_ANY, outs), EINVAL);
	cr_assert_eq(kn_distribute(f, NULL, 2, 0, KN_DIST_ANY, outs), EINVAL);
	cr_assert_eq(kn_distribute(f, in, 0, 0, KN_DIST_ANY, outs), EINVAL);
	cr_assert_eq(kn_distribute(f, in, 2, 0, KN_DIST_ANY, NULL), EINVAL);
	cr_assert_eq(kn_distribute(f, in, 2, 0, (enum kn_dist_mode)7, outs),
		     EINVAL);
	cr_assert_null(outs[0]);
	cr_assert_eq(kn_ctx_err(kn_flow_ctx(f)), 0, "EINVAL changed the flow");
	ended(f, pool, 0, 0);
	kn_chan_free(in);
}

/* ---- bounded for-each ---------------------------------------------------- */

struct fe {
	_Atomic uint8_t seen[1000];
	_Atomic int calls;
	int fail_at;        /* -1: never */
	kn_ctx *cancel;     /* cancelled by the call with index fail_at */
	bool meet;
};

static int fe_op(kn_ctx *ctx, size_t i, void *arg)
{
	struct fe *e = arg;
	int err = 0;

	enter();
	atomic_fetch_add(&e->calls, 1);
	TASK_CHECK(atomic_fetch_add(&e->seen[i], 1) == 0);
	if (e->meet)
		meet(ctx);
	if ((int)i == e->fail_at) {
		if (e->cancel)
			kn_ctx_cancel(e->cancel, 0, NULL);
		else
			err = EIO;
	}
	leave();
	return err;
}

Test(foreach, every_index_once_at_most_k_in_flight_and_k_reached)
{
	static struct fe e = { .fail_at = -1, .meet = true };
	size_t i;

	reset_counts();
	meet_init(7);
	cr_assert_eq(kn_foreach_bounded(NULL, 1000, 7, fe_op, &e), 0);
	for (i = 0; i < 1000; i++)
		cr_assert_eq(atomic_load(&e.seen[i]), 1);
	cr_assert_eq(atomic_load(&most_inside), 7);
	cr_assert_eq(atomic_load(&inside), 0);
	cr_assert_eq(atomic_load(&task_failures), 0);
}

Test(foreach, fewer_items_than_k)
{
	static struct fe e = { .fail_at = -1 };

	cr_assert_eq(kn_foreach_bounded(NULL, 3, 20, fe_op, &e), 0);
	cr_assert_eq(atomic_load(&e.calls), 3);
}

Test(foreach, first_error_stops_it)
{
	static struct fe e = { .fail_at = 10 };

	/* One at a time: exactly the calls up to the failing one run. */
	cr_assert_eq(kn_foreach_bounded(NULL, 1000, 1, fe_op, &e), EIO);
	cr_assert_eq(atomic_load(&e.calls), 11);
}

Test(foreach, cancel_stops_it_with_the_cause)
{
	static struct fe e = { .fail_at = 5 };
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);

	e.cancel = ctx;
	cr_assert_eq(kn_foreach_bounded(ctx, 1000, 1, fe_op, &e), ECANCELED);
	cr_assert_eq(atomic_load(&e.calls), 6);
	/* Already cancelled: nothing runs; the cause is returned. */
	kn_ctx_release(ctx);
	ctx = kn_ctx_with_cancel(NULL);
	kn_ctx_cancel(ctx, ENETDOWN, NULL);
	cr_assert_eq(kn_foreach_bounded(ctx, 1000, 4, fe_op, &e), ENETDOWN);
	cr_assert_eq(atomic_load(&e.calls), 6);
	kn_ctx_release(ctx);
}

Test(foreach, bad_arguments)
{
	static struct fe e = { .fail_at = -1 };

	cr_assert_eq(kn_foreach_bounded(NULL, 10, 2, NULL, &e), EINVAL);
	cr_assert_eq(kn_foreach_bounded(NULL, 10, 0, fe_op, &e), EINVAL);
	cr_assert_eq(kn_foreach_bounded(NULL, SIZE_MAX, 2, fe_op, &e), EINVAL);
	cr_assert_eq(kn_foreach_bounded(NULL, 0, 2, fe_op, &e), 0);
	cr_assert_eq(atomic_load(&e.calls), 0);
}

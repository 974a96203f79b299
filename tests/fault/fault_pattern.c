/*
 * fault_pattern.c - allocation failures in the patterns (kanal/pattern.h):
 * kn_flow_new, kn_generate_array, kn_stage (ordered, several workers),
 * kn_distribute, kn_merge, kn_worker_pool, kn_flow_go, kn_foreach_bounded.
 *
 * The contract under a failure: a constructor whose own channel or record
 * cannot be allocated returns NULL (or ENOMEM) and cancels the flow with
 * ENOMEM; one that cannot start a task still returns its channel, which
 * closes, and the flow reports ENOMEM. So: the pipeline's output always
 * ends (EPIPE), kn_flow_wait returns 0 with every result correct, or
 * ENOMEM; kn_flow_free frees everything. See sweep.h.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "kanal/pattern.h"
#include "sweep.h"

#define N 40

static int64_t items[N];

static int square(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	*(int64_t *)out = *(const int64_t *)in * *(const int64_t *)in;
	return 0;
}

static int nop_task(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return 0;
}

/* Take everything out; sum of squares of 0..N-1 when nothing failed. */
static int drain(kn_chan *ch, int64_t *sum, long *count)
{
	int64_t v;
	int r;

	while ((r = kn_chan_recv(ch, &v)) == 0) {
		*sum += v;
		(*count)++;
	}
	CHECK(r == EPIPE);
	return 0;
}

/* generate -> stage(2 workers, ordered) -> distribute(2) -> merge, plus a
 * worker pool fed by the caller and one plain task. */
static int flow_scenario(void *arg)
{
	kn_pool *pool = arg;
	struct kn_stage_spec spec = { .fn = square, .out_size = sizeof(int64_t),
				      .out_cap = 2, .workers = 2,
				      .flags = KN_STAGE_ORDERED };
	kn_chan *src, *sq, *outs[2] = { NULL, NULL }, *all, *jobs, *results;
	int64_t sum = 0, v, expect = 0;
	long count = 0;
	int r, err;
	size_t i;
	kn_flow *f;

	for (i = 0; i < N; i++)
		expect += (int64_t)(i * i);
	errno = 0;
	f = kn_flow_new(NULL, pool);
	if (!f) {
		CHECK_NOMEM(errno);
		return 0;
	}
	jobs = kn_chan_new(sizeof(int64_t), 4);
	results = kn_chan_new(sizeof(int64_t), 4);
	if (!jobs || !results) {
		kn_chan_free(jobs);
		kn_chan_free(results);
		kn_flow_free(f);
		return 0;
	}
	err = 0;
	errno = 0;
	src = kn_generate_array(f, items, sizeof(int64_t), N, 1);
	if (!src)
		goto failed;
	sq = kn_stage(f, src, &spec);
	if (!sq)
		goto failed;
	r = kn_distribute(f, sq, 2, 1, KN_DIST_ANY, outs);
	if (r) {
		errno = r;
		goto failed;
	}
	all = kn_merge(f, outs, 2, 1);
	if (!all)
		goto failed;
	r = kn_worker_pool(f, jobs, results, 2, square, NULL);
	if (r) {
		errno = r;
		goto failed;
	}
	r = kn_flow_go(f, nop_task, NULL);
	CHECK(r == 0 || r == ENOMEM || r == ECANCELED);
	/* The caller's side of the worker pool. */
	for (v = 0; v < 3; v++)
		if (kn_chan_send_ctx(jobs, &v, kn_flow_ctx(f)))
			break;
	CHECK(kn_chan_close(jobs) == 0);
	if (drain(all, &sum, &count))
		return 1;
	while (kn_chan_recv(results, &v) == 0)
		;
	err = kn_flow_wait(f);
	CHECK(err == 0 || err == ENOMEM);
	if (err == 0)
		CHECK(count == N && sum == expect);
	goto out;
failed:
	/* A constructor failed: ENOMEM, and the flow is cancelled with it. */
	CHECK_NOMEM(errno);
	CHECK(kn_flow_wait(f) == ENOMEM);
	kn_chan_close(jobs);
out:
	kn_flow_free(f);
	kn_chan_free(jobs);
	kn_chan_free(results);
	return 0;
}

static int visit(kn_ctx *ctx, size_t i, void *arg)
{
	(void)ctx;
	atomic_fetch_add((_Atomic long *)arg + i, 1);
	return 0;
}

static int foreach_scenario(void *arg)
{
	_Atomic long seen[N];
	size_t i;
	int r;

	(void)arg;
	for (i = 0; i < N; i++)
		atomic_init(&seen[i], 0);
	r = kn_foreach_bounded(NULL, N, 5, visit, seen);
	CHECK(r == 0 || r == ENOMEM);
	for (i = 0; i < N; i++)
		CHECK(atomic_load(&seen[i]) <= 1 && (r != 0 || atomic_load(&seen[i]) == 1));
	return 0;
}

static void nothing(void *arg)
{
	(void)arg;
}

int main(void)
{
	struct kn_pool_opts o = { .workers = 2 };
	kn_pool *pool;
	size_t i;
	int bad = 0;

	for (i = 0; i < N; i++)
		items[i] = (int64_t)i;
	pool = kn_pool_new(&o);
	/* The default pool of kn_foreach_bounded, made before any failure
	 * is injected (a failure to make it is final: see fault_pool.c). */
	if (!pool || kn_go(nothing, NULL)) {
		perror("setup");
		return 1;
	}
	bad |= sweep("pattern: flow, generate, stage, distribute, merge, "
		     "worker pool", flow_scenario, pool);
	bad |= sweep("pattern: foreach_bounded", foreach_scenario, NULL);
	kn_pool_free(pool);
	return bad;
}

/*
 * kanal/pattern.h - the seed's concurrency patterns as building blocks:
 * generator, pipeline stage (fan-out with optional order), fan-in (merge),
 * fan-out (distribute), worker pool over a channel, bounded for-each.
 *
 * Flows. Every pattern but the for-each runs inside a flow: a set of tasks
 * that share one context, one first error and one lifetime (an error group,
 * kanal/group.h, plus the channels its patterns made). A pipeline is built
 * by chaining patterns on one flow, consumed by the caller, then waited for:
 *
 *	kn_flow *f = kn_flow_new(ctx, NULL);
 *	kn_chan *src = kn_generate_array(f, input, sizeof(int), n, 0);
 *	kn_chan *sq = kn_stage(f, src, &(struct kn_stage_spec){
 *		.fn = square, .out_size = sizeof(int), .workers = 4,
 *		.flags = KN_STAGE_ORDERED });
 *	while (kn_chan_recv(sq, &v) == 0)
 *		use(v);
 *	err = kn_flow_wait(f);    // every task has ended; the first error
 *	kn_flow_free(f);          // frees src and sq too
 *
 * Tasks. Each pattern runs its workers as tasks of the flow's pool (the
 * default pool of kn_go when kn_flow_new is given NULL). They block in
 * kanal calls only, so a blocked one suspends and its worker runs others
 * (a pool made with .no_fibers starts a spare thread instead): a pipeline
 * of many stages runs on a pool of few workers.
 *
 * Ownership and lifetime, for every pattern:
 *
 *   - A channel a pattern returns is made by the flow and belongs to it:
 *     the pattern's tasks are its only senders and close it when they end
 *     (normally, on an error, or on cancellation); the caller only
 *     receives from it and never closes or frees it; kn_flow_free frees
 *     it. Values still buffered in it are plain bytes, dropped then.
 *   - A channel the caller passes in stays the caller's. An input is only
 *     received from (its sender closes it); the results channel of
 *     kn_worker_pool is sent to and closed by the pool's workers. The
 *     caller frees such channels, after kn_flow_wait or kn_flow_free has
 *     returned (then no task of the flow touches them any more).
 *   - Memory a pattern reads through a pointer (kn_generate_array's items,
 *     a function's arg) must stay valid until kn_flow_wait returns.
 *
 * Cancellation. Every blocking step of every task uses the flow's context,
 * so cancelling it (kn_ctx_cancel on kn_flow_ctx or on an ancestor, the
 * first error of any task, or kn_flow_free) ends every task the flow's
 * patterns started promptly: each closes its output channels and returns.
 * A task that ends because of the cancellation reports its cause (the code
 * kn_ctx_cause returns: ECANCELED for a plain cancel, ETIMEDOUT for a
 * deadline, the first error when an error cancelled the flow), so
 * kn_flow_wait returns 0 only for a flow that ran to completion (and
 * returns the cause even for tasks of kn_flow_go that return 0 then).
 *
 * Errors. Functions return 0 or a positive errno-style code; the first
 * nonzero code of any task of the flow wins, cancels the flow's context
 * with it as the cause, and is what kn_flow_wait returns. A pattern that
 * cannot start one of its tasks (the flow is cancelled already, the pool is
 * shut down, no memory) still returns its channel, which closes once the
 * tasks that did start have ended (at once if none did); the failure
 * cancels the flow with the error as its cause and kn_flow_wait reports
 * it. Constructors return NULL (or an error code) only for a bad argument
 * (EINVAL: nothing happens) or when the output channel or the pattern's
 * record cannot be allocated (ENOMEM: the flow is cancelled with ENOMEM, so
 * that what was built before stops too).
 *
 * Synchronization table
 *
 *   call                        may run concurrently with          blocks
 *   kn_flow_new                 everything                         no
 *   kn_generate*, kn_stage,     each other and everything on the   no
 *   kn_worker_pool, kn_merge,   flow but kn_flow_wait/free (those
 *   kn_distribute, kn_flow_go   must come after, unless called
 *                               from a task of the flow)
 *   kn_flow_set_batch           everything but kn_flow_free        no
 *   kn_flow_ctx                 everything but kn_flow_free        no
 *   kn_flow_wait                everything but kn_flow_free        yes
 *   kn_flow_free                nothing on the flow                yes
 *   kn_foreach_bounded          everything                         yes
 *
 * Memory order: what happens before a constructor happens-before its
 * tasks start; a task's end happens-before the return of the kn_flow_wait
 * that waited for it; a value's send happens-before its receive.
 */
#ifndef KANAL_PATTERN_H
#define KANAL_PATTERN_H

#include "kanal/base.h"
#include "kanal/chan.h"
#include "kanal/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_flow kn_flow;

/* ---- flows --------------------------------------------------------------- */

/*
 * A flow whose context is a child of parent (NULL: background), running its
 * tasks on pool (NULL: the default pool). NULL with errno ENOMEM (or what
 * making the default pool failed with).
 */
KN_API kn_flow *kn_flow_new(kn_ctx *parent, kn_pool *pool);

/* The flow's context (owned by the flow; valid until kn_flow_free).
 * Cancel it to stop the flow (Go's cancel(), or closing a done channel). */
KN_API kn_ctx *kn_flow_ctx(kn_flow *f);

/*
 * Run fn(ctx, arg) as one more task of the flow (Go's g.Go): its error
 * counts as the flow's, and kn_flow_wait waits for it. 0, EINVAL (NULL f
 * or fn), ECANCELED (the flow is cancelled: not started), EPIPE (the pool
 * is shut down), ENOMEM.
 */
KN_API int kn_flow_go(kn_flow *f, int (*fn)(kn_ctx *ctx, void *arg), void *arg);

/*
 * The batch of the kn_worker_pool workers and kn_merge forwarders built on
 * f after this call (those have no spec; a stage's is its spec's batch):
 * values taken per receive, at most. 0 (the default): a worker pool's
 * workers choose as a stage's do (see kn_stage), a merge's forwarders
 * take up to 16 values that are there already; 1: one value per receive
 * and per send, as a Go loop moves them. Patterns built before keep their
 * batch. 0, or EINVAL (f NULL).
 */
KN_API int kn_flow_set_batch(kn_flow *f, unsigned batch);

/*
 * Wait until every task of the flow has ended, then cancel its context
 * (as Go's errgroup Wait does; a flow is waited for once). Returns the
 * first error (see "Errors"); else, if the flow's context was ended from
 * outside (an ancestor's cancellation or deadline, kn_ctx_cancel on
 * kn_flow_ctx) before every task had finished, its cause (ETIMEDOUT for a
 * deadline, ECANCELED or the code given to kn_ctx_cancel), even when the
 * tasks returned 0 on the cancellation; else 0. EINVAL for NULL. Calling
 * it again returns the same value at once.
 */
KN_API int kn_flow_wait(kn_flow *f);

/*
 * Cancel the flow (cause ECANCELED, if nothing cancelled it before), wait
 * for every task, free every channel its patterns made, free the flow.
 * NULL is a no-op. Go's "defer cancel()": a flow freed early stops.
 */
KN_API void kn_flow_free(kn_flow *f);

/* ---- generator ----------------------------------------------------------- */

/*
 * The seed's generator. Makes a channel of elem_size-byte values with the
 * given capacity (0: rendezvous, as Go's make(chan T)) and runs
 * fn(ctx, out, arg) as a task that sends values on out, then closes out
 * when fn returns. fn sends with kn_chan_send_ctx(out, &v, ctx) (or a
 * kn_select with ctx), so that a cancellation ends it promptly, and returns
 * 0 or an error (returning the ECANCELED of an interrupted send is fine);
 * it must not close or free out. The channel belongs to the flow.
 * NULL with errno EINVAL (f or fn NULL, elem_size 0) or ENOMEM.
 */
KN_API kn_chan *kn_generate(kn_flow *f, size_t elem_size, size_t cap,
			    int (*fn)(kn_ctx *ctx, kn_chan *out, void *arg),
			    void *arg);

/*
 * A generator that sends the n values of the array items (elem_size bytes
 * each), in order, then closes: Go's generator(input []int). items is not
 * copied: it must stay valid until kn_flow_wait returns. n == 0 gives a
 * channel that closes at once. NULL with errno EINVAL (f NULL, elem_size 0,
 * items NULL with n > 0) or ENOMEM.
 */
KN_API kn_chan *kn_generate_array(kn_flow *f, const void *items,
				  size_t elem_size, size_t n, size_t cap);

/* ---- pipeline stage and worker pool -------------------------------------- */

/*
 * A stage function: read the input value at in, write the output value at
 * out (out_size bytes), return 0 to send it on, KN_SKIP to send nothing
 * for this input (a filter), or a positive error code, which ends the
 * worker and cancels the flow. It may block (preferably on kanal calls,
 * with ctx); it runs on several workers at once when there are several.
 */
typedef int (*kn_stage_fn)(kn_ctx *ctx, const void *in, void *out, void *arg);

#define KN_SKIP (-1)

/* Results leave the stage in the order their inputs arrived, whatever the
 * number of workers (a slow item holds back the results after it). */
#define KN_STAGE_ORDERED 1u

struct kn_stage_spec {
	kn_stage_fn fn;
	void *arg;         /* fn's last argument */
	size_t out_size;   /* bytes of an output value, > 0 */
	size_t out_cap;    /* capacity of the output channel (0: rendezvous) */
	unsigned workers;  /* tasks running fn, >= 1 (fan-out) */
	unsigned flags;    /* KN_STAGE_ORDERED */
	unsigned batch;    /* values a worker takes per receive, at most:
			      it waits for one, takes what else is there
			      already, and sends the results together;
			      1: one at a time; 0: automatic (see below) */
};

/*
 * A pipeline stage: spec->workers tasks receive values from in (until its
 * sender closes it), apply spec->fn, and send the results on a new channel,
 * which is returned. It closes once every worker has ended. Without
 * KN_STAGE_ORDERED the results of different workers interleave freely.
 * A batch above 1 saves wake-ups when fn is cheap and values queue up;
 * when fn is slow it lets one worker hold values that another, idle one
 * could have taken, so use 1 for slow or uneven work. Batch 0 (the
 * default; kn_worker_pool's too, see kn_flow_set_batch) chooses per
 * worker and per receive:
 * up to 16 values while fn has taken under 1 us per value on the last
 * batch, else one; so it holds back at most about 16 us of work. With
 * KN_STAGE_ORDERED and several workers, or a rendezvous input, 0 means 1.
 * NULL with errno EINVAL (f, in, spec or spec->fn NULL, out_size or workers
 * 0, out_size above KN_CHAN_MAX or a batch of values no buffer can hold,
 * unknown flags) or ENOMEM.
 */
KN_API kn_chan *kn_stage(kn_flow *f, kn_chan *in,
			 const struct kn_stage_spec *spec);

/*
 * The seed's worker pool: workers tasks take jobs from the jobs channel
 * until it is closed and drained, run fn(ctx, job, result, arg) (the same
 * contract as a stage function; results are kn_chan_elem_size(results)
 * bytes) and send each result on the caller's results channel, which the
 * last worker to end closes. Both channels stay the caller's (see
 * "Ownership"). 0, or EINVAL (a NULL argument, workers 0), ENOMEM.
 */
KN_API int kn_worker_pool(kn_flow *f, kn_chan *jobs, kn_chan *results,
			  unsigned workers, kn_stage_fn fn, void *arg);

/* ---- fan-in and fan-out -------------------------------------------------- */

/*
 * Fan-in: every value received from the n input channels is sent on one
 * new channel of capacity cap, which closes once every input has been
 * closed and drained. Values of one input keep their order; values of
 * different inputs interleave. The inputs must carry values of one size.
 * The array ins is copied. NULL with errno EINVAL (f or ins NULL, n 0, a
 * NULL input, sizes that differ) or ENOMEM.
 */
KN_API kn_chan *kn_merge(kn_flow *f, kn_chan *const *ins, size_t n, size_t cap);

/* How kn_distribute picks the output of each value. */
enum kn_dist_mode {
	KN_DIST_ROUND_ROBIN = 0, /* outputs in turn: waits for the next one */
	KN_DIST_ANY = 1,         /* whichever output has room (or a receiver)
				    first, chosen at random among several (a
				    select: above KN_SELECT_STACK_CASES
				    outputs it allocates once per value) */
};

/*
 * Fan-out: one task receives the values of in and sends each on one of n
 * new channels of capacity cap, stored in outs[0..n-1]; all of them close
 * once in is closed and drained. 0, or EINVAL (f, in or outs NULL, n 0, a
 * bad mode), ENOMEM (then outs is left untouched).
 */
KN_API int kn_distribute(kn_flow *f, kn_chan *in, size_t n, size_t cap,
			 enum kn_dist_mode mode, kn_chan **outs);

/* ---- bounded for-each ---------------------------------------------------- */

/*
 * Run fn(ctx, i, arg) for every i in 0..n-1 with at most k calls in flight
 * (the seed's "20 of 100 HTTP requests"), on min(k, n) tasks of the default
 * pool that take indices in turn, and wait for all of them. The first
 * nonzero return of fn stops the loop (calls in flight finish; no new one
 * starts) and is returned; so is the cause (kn_ctx_cause) if ctx is
 * cancelled before every call has run. ctx NULL: never cancelled. n == 0
 * returns 0. EINVAL: fn NULL, k 0, n > SIZE_MAX / 2. Calls that block in
 * kanal (channels, semaphores, kn_ctx_wait, ...) suspend and let their
 * worker run the others, so k of them can wait at once; a call that blocks outside
 * kanal (a raw system call) holds its pool thread, so at most the pool's
 * width of those wait at once.
 */
KN_API int kn_foreach_bounded(kn_ctx *ctx, size_t n, unsigned k,
			      int (*fn)(kn_ctx *ctx, size_t i, void *arg),
			      void *arg);

#ifdef __cplusplus
}
#endif
#endif

/*
 * pattern_stage.c - pipeline stages and the worker pool over a channel
 * (kanal/pattern.h). Flows and parts: pattern.c.
 *
 * A stage is W worker tasks sharing an input and an output channel. Without
 * order, each worker loops: receive, apply fn, send. The last worker to end
 * closes the output (part_exit). A receive takes a batch: it waits for one
 * value, then takes up to batch - 1 more that are already there (never
 * waiting for them); their results go out together. With batch 1 that is
 * one value per receive; batch 0 (the default) lets each worker choose
 * (see "Automatic batches" below).
 *
 * Order-preserving mode: two batons
 *
 * The workers form a ring 0, 1, ..., W-1, 0, ... Two batons go round it,
 * each a one-byte token in a per-worker channel of capacity 1: the input
 * baton (only its holder receives from the input) and the output baton
 * (only its holder sends on the output). A worker loops:
 *
 *   take the input baton; receive a batch; pass the input baton on;
 *   apply fn to each value;
 *   take the output baton; send the results (those fn did not skip);
 *   pass the output baton on.
 *
 * Number the batches in the order the stage received them (the values of
 * a batch are consecutive). The input baton visits the workers in ring
 * order, one receive per visit, so worker k's j-th batch is batch j*W + k;
 * the output baton visits them in the same order, one send per visit, so
 * results leave in input order. Waiting for the output baton cannot
 * deadlock: the holder of an earlier batch is either computing it or
 * waiting for the output baton itself, and the earliest pending batch's
 * holder gets it. Up to W batches are in fn at once; a slow value holds
 * back the results behind it, as order demands.
 *
 * End of input: the worker whose receive reports EPIPE passes the input
 * baton on before it returns, so each worker in turn sees EPIPE; every
 * batch received before the first EPIPE has an earlier output turn, so no
 * result waits for a worker that has left. A worker returning for an error
 * or a cancellation holds no baton (it passes the one it holds first), and
 * the others are woken by the same cancellation.
 *
 * Invariants (ordered mode)
 *
 *  1. Each ring has exactly one token, in a baton channel or held by one
 *     worker; so a baton channel never holds more than one, and passing a
 *     baton (a send on a capacity-1 channel) never blocks.
 *  2. Only the input baton's holder receives from the input, only the
 *     output baton's holder sends on the output.
 *  3. Both batons visit the workers in the same ring order, one step per
 *     batch.
 */
#include <string.h>

#include "pattern_internal.h"

struct stage_worker {
	struct stage *s;
	kn_chan *in_baton, *out_baton; /* ordered: this worker's turns */
	struct stage_worker *next;     /* ordered: the worker after it */
	void *ibuf, *obuf;
	size_t take;                   /* values per receive now, at most */
};

/*
 * Automatic batches (spec batch 0, unordered). A batch saves a CAS and a
 * wake-up per value when fn is cheap, and costs balance when it is slow
 * (one worker holds values an idle one could run). So a worker measures
 * fn over each batch: while it takes under CHEAP_NS per value it takes up
 * to AUTO_BATCH values per receive (holding at most AUTO_BATCH * CHEAP_NS
 * of work back), else one at a time. Only from a buffered input: on a
 * rendezvous channel the rest of a batch can come only from senders
 * already waiting, and looking for them costs a locked try per receive.
 */
#define AUTO_BATCH 16
#define CHEAP_NS 1000

struct stage {
	struct part part;
	kn_chan *in;
	kn_chan *out;                  /* chans[0] */
	kn_stage_fn fn;
	void *arg;
	size_t is, os;                 /* value sizes, in and out */
	bool automatic;                /* batch chosen by each worker */
	struct stage_worker *w;
	kn_chan **chans;               /* out, then the batons */
};

static const char baton = 1;

/* Apply fn to the got values at ibuf, packing the results to send at
 * obuf; *kept gets their number. 0 or fn's error. */
static int apply(kn_ctx *ctx, struct stage_worker *w, size_t got, size_t *kept)
{
	const struct stage *s = w->s;
	unsigned char *in = w->ibuf, *out = w->obuf;
	size_t i, k = 0;
	int r;

	*kept = 0;
	for (i = 0; i < got; i++) {
		r = s->fn(ctx, in + i * s->is, out + k * s->os, s->arg);
		if (r == KN_SKIP)
			continue;
		if (r)
			return r;
		k++;
	}
	*kept = k;
	return 0;
}

/* apply, and for an automatic batch, how much to take next time. */
static int apply_timed(kn_ctx *ctx, struct stage_worker *w, size_t got,
		       size_t *kept)
{
	uint64_t t0;
	int err;

	if (!w->s->automatic)
		return apply(ctx, w, got, kept);
	t0 = kn_now();
	err = apply(ctx, w, got, kept);
	w->take = kn_now() - t0 < got * CHEAP_NS ? AUTO_BATCH : 1;
	return err;
}

/* Receive, apply fn, send, until the input ends: unordered workers. */
static int stage_loop(kn_ctx *ctx, struct stage_worker *w)
{
	struct stage *s = w->s;
	size_t got, kept;
	int err;

	for (;;) {
		err = kn_chan_recv_batch(s->in, w->ibuf, w->take, &got,
					 KN_FOREVER, ctx);
		if (err)
			return input_done(ctx, err);
		err = apply_timed(ctx, w, got, &kept);
		if (err)
			return err;
		err = kn_chan_send_batch(s->out, w->obuf, kept, NULL,
					 KN_FOREVER, ctx);
		if (err)
			return interrupted(ctx, err);
	}
}

/* The same, each step in its turn (see "two batons" above). */
static int stage_loop_ordered(kn_ctx *ctx, struct stage_worker *w)
{
	struct stage *s = w->s;
	size_t got, kept;
	char token;
	int err;

	for (;;) {
		err = kn_chan_recv_ctx(w->in_baton, &token, ctx);
		if (err)
			return interrupted(ctx, err);
		err = kn_chan_recv_batch(s->in, w->ibuf, w->take, &got,
					 KN_FOREVER, ctx);
		kn_chan_send(w->next->in_baton, &baton);
		if (err)
			return input_done(ctx, err);
		err = apply(ctx, w, got, &kept);
		if (err)
			return err;
		err = kn_chan_recv_ctx(w->out_baton, &token, ctx);
		if (err)
			return interrupted(ctx, err);
		err = kn_chan_send_batch(s->out, w->obuf, kept, NULL,
					 KN_FOREVER, ctx);
		kn_chan_send(w->next->out_baton, &baton);
		if (err)
			return interrupted(ctx, err);
	}
}

static int stage_run(kn_ctx *ctx, void *arg)
{
	struct stage_worker *w = arg;
	int err = w->next ? stage_loop_ordered(ctx, w) : stage_loop(ctx, w);

	part_exit(&w->s->part);
	return err;
}

/* Lay the ring out: worker k's batons are chans[1 + 2k] and [2 + 2k]; the
 * first worker holds both tokens at the start. */
static void stage_ring(struct stage *s, unsigned workers)
{
	unsigned k;

	for (k = 0; k < workers; k++) {
		s->w[k].in_baton = s->chans[1 + 2 * k];
		s->w[k].out_baton = s->chans[2 + 2 * k];
		s->w[k].next = &s->w[(k + 1) % workers];
	}
	kn_chan_send(s->w[0].in_baton, &baton);
	kn_chan_send(s->w[0].out_baton, &baton);
}

/*
 * Build and start a stage from in to out (NULL: make one of out_size and
 * out_cap, owned by the flow). Returns the output channel, or NULL with
 * errno.
 */
static kn_chan *stage_new(kn_flow *f, kn_chan *in, kn_chan *out,
			  const struct kn_stage_spec *sp)
{
	size_t size = sizeof(struct stage), is = kn_chan_elem_size(in);
	size_t os = out ? kn_chan_elem_size(out) : sp->out_size;
	bool ordered = (sp->flags & KN_STAGE_ORDERED) && sp->workers > 1;
	bool automatic = sp->batch == 0 && !ordered && kn_chan_cap(in) > 0;
	size_t batch = automatic ? AUTO_BATCH : sp->batch > 1 ? sp->batch : 1;
	size_t ib, ob;
	size_t batons = ordered ? 2 * (size_t)sp->workers : 0;
	size_t workers, chans, ibufs, obufs, k;
	struct stage *s;

	/* Sizes no channel can carry are bad arguments: refused before
	 * anything happens (pattern.h). */
	if (os > KN_CHAN_MAX || mul_overflows(batch, is, &ib) ||
	    mul_overflows(batch, os, &ob)) {
		errno = EINVAL;
		return NULL;
	}
	workers = lay(&size, sp->workers, sizeof(struct stage_worker));
	chans = lay(&size, 1 + batons, sizeof(kn_chan *));
	ibufs = lay(&size, sp->workers, ib);
	obufs = lay(&size, sp->workers, ob);
	s = part_new(f, size, sp->workers);
	if (!s)
		return NULL;
	s->chans = at_offset(s, chans);
	s->part.close = s->chans;
	s->part.nclose = 1;
	/* A caller's out is closed, not freed: own starts after it. */
	s->part.own = out ? s->chans + 1 : s->chans;
	s->part.nown = batons + !out;
	if ((!out && !make_chans(f, s->chans, 1, os, sp->out_cap)) ||
	    !make_chans(f, s->chans + 1, batons, 1, 1)) {
		part_drop(&s->part);
		return NULL;
	}
	if (out)
		s->chans[0] = out;
	s->in = in;
	s->out = s->chans[0];
	s->fn = sp->fn;
	s->arg = sp->arg;
	s->is = is;
	s->os = os;
	s->automatic = automatic;
	s->w = at_offset(s, workers);
	for (k = 0; k < sp->workers; k++)
		s->w[k] = (struct stage_worker){
			.s = s,
			.ibuf = at_offset(s, ibufs + k * ib),
			.obuf = at_offset(s, obufs + k * ob),
			.take = automatic ? 1 : batch,
		};
	if (ordered)
		stage_ring(s, sp->workers);
	flow_adopt(f, &s->part);
	for (k = 0; k < sp->workers; k++)
		part_start(f, &s->part, stage_run, &s->w[k]);
	return s->out;
}

kn_chan *kn_stage(kn_flow *f, kn_chan *in, const struct kn_stage_spec *spec)
{
	if (!f || !in || !spec || !spec->fn || !spec->out_size ||
	    !spec->workers || (spec->flags & ~KN_STAGE_ORDERED)) {
		errno = EINVAL;
		return NULL;
	}
	return stage_new(f, in, NULL, spec);
}

int kn_worker_pool(kn_flow *f, kn_chan *jobs, kn_chan *results,
		   unsigned workers, kn_stage_fn fn, void *arg)
{
	struct kn_stage_spec spec = { .fn = fn, .arg = arg,
				      .workers = workers };

	if (f)
		spec.batch = at_load_relaxed(&f->batch);
	if (!f || !jobs || !results || !fn || !workers)
		return EINVAL;
	return stage_new(f, jobs, results, &spec) ? 0 : errno;
}

/*
 * pattern.c - flows, generators, fan-in, fan-out and the bounded for-each
 * (kanal/pattern.h). Stages and the worker pool are in pattern_stage.c.
 *
 * Structure
 *
 * A flow is an error group (its tasks, its first error, its context) plus
 * a list of parts. A part is the record of one pattern instance: what its
 * tasks need, the channels it closes, the channels it owns. Constructors
 * run on the caller's thread: they check the arguments, make the record
 * and its channels in one go (so that a failure leaves nothing behind),
 * push the record on the flow's list, then start the tasks. The tasks are
 * group tasks on the flow's pool; they block only in kanal calls given the
 * flow's context, so a blocked one suspends (its worker runs others),
 * and a cancellation wakes every one of them.
 *
 * Closing. A part counts its tasks down from the number it will start; a
 * task ends with part_exit, and a start that fails counts as an end. The
 * decrement that reaches zero closes the part's outputs. It is acq_rel:
 * every task's last send precedes its decrement (release), the closer's
 * decrement acquires them all, so the close follows every send and a
 * receiver that sees EPIPE has seen every value.
 *
 * Lifetime. Parts are freed only by kn_flow_free, after the group's wait
 * has returned: by then every task has ended (the group's wait returns
 * after the last task's final touch of the group), so no task can touch a
 * record or a channel being freed. Nothing is freed by a task; this is
 * what lets the caller receive from a pattern's channel, see it closed,
 * and go on using it (a receive after EPIPE returns EPIPE again) until it
 * frees the flow.
 *
 * Failures. A task that cannot start (the flow was cancelled, the pool is
 * shut down, no task record) is recorded as the flow's failure and cancels
 * the flow with that cause, so kn_flow_wait reports it even when no task
 * ran at all; the group's own first error (a task's) comes first. A flow
 * whose context ended (its parent's cancellation or deadline, a cancel of
 * kn_flow_ctx) while tasks still ran reports the cause even if those tasks
 * returned 0 (group_cut), after any error.
 *
 * Fan-in. One forwarder task per input, each moving the values it finds
 * (up to FWD_BATCH at a time, or the flow's batch if set, never waiting
 * for more than one) into the
 * output, was faster than one task selecting over every input (the
 * fanout4_fanin shape, capacity 64, 20000 items, 2 loaded cores, best of
 * 7 in three runs: 183-348 ns per item against 237-364; means 550-640
 * against 610-880): a select registers on every channel when it has to
 * wait and cannot take several values at once, and above 16 cases it
 * allocates per call; a forwarder waits on one channel, and a blocked one
 * costs a parked pool thread, not a busy one.
 *
 * Invariants
 *
 *  1. part.running >= 0 and reaches 0 exactly once: each task (or failed
 *     start) decrements it once; its outputs are closed exactly then.
 *  2. A part is on the flow's list before any of its tasks starts, and
 *     leaves it only in kn_flow_free, after the group's wait.
 *  3. flow.err is set once, by the first failed start (CAS from 0).
 */
#include <string.h>

#include "group_internal.h"
#include "pattern_internal.h"

/* Values a fan-in forwarder moves per receive, at most. */
#define FWD_BATCH 16

/* ---- flows and parts ----------------------------------------------------- */

kn_flow *kn_flow_new(kn_ctx *parent, kn_pool *pool)
{
	kn_flow *f = kn_alloc(sizeof(*f));

	if (!f) {
		errno = ENOMEM;
		return NULL;
	}
	f->g = kn_group_new(parent, pool);
	if (!f->g) {
		int err = errno;

		kn_free(f);
		errno = err;
		return NULL;
	}
	f->ctx = kn_group_ctx(f->g);
	at_store_relaxed(&f->parts, NULL);
	at_store_relaxed(&f->err, 0);
	at_store_relaxed(&f->waited, 0);
	at_store_relaxed(&f->batch, 0);
	return f;
}

int kn_flow_set_batch(kn_flow *f, unsigned batch)
{
	if (!f)
		return EINVAL;
	/* Relaxed: a constructor reads it on the thread that builds the
	 * pattern; one racing with the setter gets either value. */
	at_store_relaxed(&f->batch, batch);
	return 0;
}

kn_ctx *kn_flow_ctx(kn_flow *f)
{
	return f ? f->ctx : NULL;
}

int kn_flow_go(kn_flow *f, int (*fn)(kn_ctx *ctx, void *arg), void *arg)
{
	int r;

	if (!f)
		return EINVAL;
	/* A refused task means the flow cannot run to completion; a bad
	 * argument changes nothing. */
	r = kn_group_go(f->g, fn, arg);
	if (r && r != EINVAL)
		flow_fail(f, r);
	return r;
}

int kn_flow_wait(kn_flow *f)
{
	int err, first = 0;

	if (!f)
		return EINVAL;
	err = kn_group_wait(f->g);
	if (!err)
		err = at_load_acquire(&f->err);
	/* Cut short from outside: its tasks returned 0 on the cancellation. */
	if (!err && group_cut(f->g))
		err = kn_ctx_cause(f->ctx, NULL);
	/* The first result stays: a start refused after it (the flow is
	 * cancelled now) must not change what a later call reports. */
	if (!at_cas_acq_rel(&f->waited, &first, err + 1))
		err = first - 1;
	return err;
}

void kn_flow_free(kn_flow *f)
{
	struct part *p, *next;

	if (!f)
		return;
	kn_ctx_cancel(f->ctx, ECANCELED, NULL); /* EALREADY if it was */
	kn_group_wait(f->g);
	for (p = at_load_acquire(&f->parts); p; p = next) {
		next = p->next;
		part_free(p);
	}
	kn_group_free(f->g);
	kn_free(f);
}

void flow_fail(kn_flow *f, int err)
{
	int none = 0;

	if (at_cas_acq_rel(&f->err, &none, err))
		kn_ctx_cancel(f->ctx, err, "kanal: a task could not start");
}

void *part_new(kn_flow *f, size_t size, unsigned tasks)
{
	struct part *p = size == SIZE_MAX ? NULL : kn_calloc(1, size);

	if (!p) {
		flow_fail(f, ENOMEM);
		errno = ENOMEM;
		return NULL;
	}
	at_store_relaxed(&p->running, tasks);
	return p;
}

bool make_chans(kn_flow *f, kn_chan **slots, size_t n, size_t esize,
		size_t cap)
{
	size_t i;

	for (i = 0; i < n; i++) {
		slots[i] = kn_chan_new(esize, cap);
		if (!slots[i]) {
			if (errno == ENOMEM)
				flow_fail(f, ENOMEM);
			return false;
		}
	}
	return true;
}

void part_free(struct part *p)
{
	size_t i;

	for (i = 0; i < p->nown; i++)
		kn_chan_free(p->own[i]);
	kn_free(p);
}

void part_drop(struct part *p)
{
	int err = errno;

	part_free(p);
	errno = err;
}

void flow_adopt(kn_flow *f, struct part *p)
{
	struct part *head = at_load_relaxed(&f->parts);

	do
		p->next = head;
	while (!at_cas_weak_acq_rel(&f->parts, &head, p));
}

void part_exit(struct part *p)
{
	size_t i;

	if (at_sub_acq_rel(&p->running, 1) != 1)
		return;
	for (i = 0; i < p->nclose; i++)
		kn_chan_close(p->close[i]);
}

void part_start(kn_flow *f, struct part *p, int (*fn)(kn_ctx *, void *),
		void *arg)
{
	int err = kn_group_go(f->g, fn, arg);

	if (!err)
		return;
	flow_fail(f, interrupted(f->ctx, err));
	part_exit(p);
}

/* ---- generators ---------------------------------------------------------- */

struct items {
	const unsigned char *base;
	size_t n;
};

struct gen {
	struct part part;
	kn_chan *out;
	int (*fn)(kn_ctx *ctx, kn_chan *out, void *arg);
	void *arg;
	struct items items; /* kn_generate_array */
};

static int gen_run(kn_ctx *ctx, void *arg)
{
	struct gen *g = arg;
	int err = g->fn(ctx, g->out, g->arg);

	part_exit(&g->part);
	return err;
}

static int send_items(kn_ctx *ctx, kn_chan *out, void *arg)
{
	struct items *it = arg;

	return interrupted(ctx, kn_chan_send_batch(out, it->base, it->n, NULL,
						   KN_FOREVER, ctx));
}

static kn_chan *generate(kn_flow *f, size_t elem_size, size_t cap,
			 int (*fn)(kn_ctx *, kn_chan *, void *), void *arg,
			 const struct items *items)
{
	struct gen *g = part_new(f, sizeof(*g), 1);

	if (!g)
		return NULL;
	g->part.own = g->part.close = &g->out;
	g->part.nown = g->part.nclose = 1;
	if (!make_chans(f, &g->out, 1, elem_size, cap)) {
		part_drop(&g->part);
		return NULL;
	}
	g->fn = fn;
	g->arg = arg;
	if (items) {
		g->items = *items;
		g->arg = &g->items;
	}
	flow_adopt(f, &g->part);
	part_start(f, &g->part, gen_run, g);
	return g->out;
}

kn_chan *kn_generate(kn_flow *f, size_t elem_size, size_t cap,
		     int (*fn)(kn_ctx *ctx, kn_chan *out, void *arg), void *arg)
{
	if (!f || !fn || !elem_size) {
		errno = EINVAL;
		return NULL;
	}
	return generate(f, elem_size, cap, fn, arg, NULL);
}

kn_chan *kn_generate_array(kn_flow *f, const void *items, size_t elem_size,
			   size_t n, size_t cap)
{
	struct items it = { items, n };

	if (!f || !elem_size || (!items && n)) {
		errno = EINVAL;
		return NULL;
	}
	return generate(f, elem_size, cap, send_items, NULL, &it);
}

/* ---- fan-in -------------------------------------------------------------- */

struct fwd {
	kn_chan *in, *out;
	struct part *part;
	void *buf;   /* batch values */
	size_t batch;
};

struct merge {
	struct part part;
	kn_chan *out;
	struct fwd *fwd; /* one per input */
};

static int fwd_run(kn_ctx *ctx, void *arg)
{
	struct fwd *w = arg;
	size_t got;
	int err;

	for (;;) {
		err = kn_chan_recv_batch(w->in, w->buf, w->batch, &got,
					 KN_FOREVER, ctx);
		if (err) {
			err = input_done(ctx, err);
			break;
		}
		err = kn_chan_send_batch(w->out, w->buf, got, NULL,
					 KN_FOREVER, ctx);
		if (err) {
			err = interrupted(ctx, err);
			break;
		}
	}
	part_exit(w->part);
	return err;
}

static bool same_sizes(kn_chan *const *chans, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!chans[i] || kn_chan_elem_size(chans[i]) !=
				 kn_chan_elem_size(chans[0]))
			return false;
	return true;
}

kn_chan *kn_merge(kn_flow *f, kn_chan *const *ins, size_t n, size_t cap)
{
	size_t size = sizeof(struct merge), es, fwds, bufs, i, batch, each;
	struct merge *m;

	if (!f || !ins || !n || n > UINT32_MAX || !same_sizes(ins, n)) {
		errno = EINVAL;
		return NULL;
	}
	es = kn_chan_elem_size(ins[0]);
	batch = at_load_relaxed(&f->batch);
	if (!batch)
		batch = FWD_BATCH;
	if (mul_overflows(batch, es, &each))
		each = SIZE_MAX; /* lay() turns it into ENOMEM */
	fwds = lay(&size, n, sizeof(struct fwd));
	bufs = lay(&size, n, each);
	m = part_new(f, size, (unsigned)n);
	if (!m)
		return NULL;
	m->part.own = m->part.close = &m->out;
	m->part.nown = m->part.nclose = 1;
	if (!make_chans(f, &m->out, 1, es, cap)) {
		part_drop(&m->part);
		return NULL;
	}
	m->fwd = at_offset(m, fwds);
	for (i = 0; i < n; i++)
		m->fwd[i] = (struct fwd){
			ins[i], m->out, &m->part,
			at_offset(m, bufs + i * each), batch,
		};
	flow_adopt(f, &m->part);
	for (i = 0; i < n; i++)
		part_start(f, &m->part, fwd_run, &m->fwd[i]);
	return m->out;
}

/* ---- fan-out ------------------------------------------------------------- */

struct dist {
	struct part part;
	kn_chan *in;
	size_t n;
	enum kn_dist_mode mode;
	struct kn_case *cases; /* KN_DIST_ANY: a send of buf on every output */
	void *buf;
};

/* Send buf on one output: in turn, or on the first with room. */
static int dist_send(struct dist *d, size_t *next, kn_ctx *ctx)
{
	size_t fired;
	int err;

	if (d->mode == KN_DIST_ANY)
		return kn_select(d->cases, d->n, 0, KN_FOREVER, ctx, &fired);
	err = kn_chan_send_ctx(d->part.own[*next], d->buf, ctx);
	*next = *next + 1 == d->n ? 0 : *next + 1;
	return err;
}

static int dist_run(kn_ctx *ctx, void *arg)
{
	struct dist *d = arg;
	size_t next = 0;
	int err;

	for (;;) {
		err = kn_chan_recv_ctx(d->in, d->buf, ctx);
		if (err) {
			err = input_done(ctx, err);
			break;
		}
		err = dist_send(d, &next, ctx);
		if (err) {
			err = interrupted(ctx, err);
			break;
		}
	}
	part_exit(&d->part);
	return err;
}

int kn_distribute(kn_flow *f, kn_chan *in, size_t n, size_t cap,
		  enum kn_dist_mode mode, kn_chan **outs)
{
	size_t size = sizeof(struct dist), chans, cases, buf, es, i;
	struct dist *d;

	if (!f || !in || !outs || !n ||
	    (mode != KN_DIST_ROUND_ROBIN && mode != KN_DIST_ANY))
		return EINVAL;
	es = kn_chan_elem_size(in);
	chans = lay(&size, n, sizeof(kn_chan *));
	cases = lay(&size, mode == KN_DIST_ANY ? n : 0, sizeof(struct kn_case));
	buf = lay(&size, 1, es);
	d = part_new(f, size, 1);
	if (!d)
		return ENOMEM;
	d->part.own = d->part.close = at_offset(d, chans);
	d->part.nown = d->part.nclose = n;
	if (!make_chans(f, d->part.own, n, es, cap)) {
		part_drop(&d->part);
		return errno;
	}
	d->in = in;
	d->n = n;
	d->mode = mode;
	d->buf = at_offset(d, buf);
	d->cases = at_offset(d, cases);
	for (i = 0; i < n; i++) {
		outs[i] = d->part.own[i];
		if (mode == KN_DIST_ANY)
			d->cases[i] = (struct kn_case){ outs[i], KN_SEND,
							d->buf };
	}
	flow_adopt(f, &d->part);
	part_start(f, &d->part, dist_run, d);
	return 0;
}

/* ---- bounded for-each ---------------------------------------------------- */

struct foreach {
	_Atomic size_t next KN_ALIGNED; /* the next index to run; contended */
	size_t n;
	int (*fn)(kn_ctx *ctx, size_t i, void *arg);
	void *arg;
};

/*
 * One of the k runners: takes indices in turn until none is left. n, fn
 * and arg are read once, before the loop: they share next's line, which
 * the other runners' increments take away, so reading them after each
 * increment (the calls in between stop the compiler from keeping them)
 * missed on that line a second time per index.
 */
static int foreach_run(kn_ctx *ctx, void *arg)
{
	struct foreach *fe = arg;
	const size_t n = fe->n;
	int (*const fn)(kn_ctx *ctx, size_t i, void *arg) = fe->fn;
	void *const fn_arg = fe->arg;
	size_t i;
	int err;

	for (;;) {
		if (kn_ctx_done(ctx))
			return interrupted(ctx, ECANCELED);
		i = at_add_relaxed(&fe->next, 1);
		if (i >= n)
			return 0;
		err = fn(ctx, i, fn_arg);
		if (err)
			return err;
	}
}

int kn_foreach_bounded(kn_ctx *ctx, size_t n, unsigned k,
		       int (*fn)(kn_ctx *ctx, size_t i, void *arg), void *arg)
{
	struct foreach fe = { .n = n, .fn = fn, .arg = arg };
	size_t runners = n < k ? n : k, started;
	int err = 0;
	kn_group *g;

	if (!fn || !k || n > SIZE_MAX / 2)
		return EINVAL;
	if (kn_ctx_done(ctx))
		return interrupted(ctx, ECANCELED);
	if (!n)
		return 0;
	g = kn_group_new(ctx, NULL);
	if (!g)
		return errno;
	for (started = 0; started < runners; started++) {
		err = kn_group_go(g, foreach_run, &fe);
		if (err)
			break;
	}
	/* Fewer runners than asked for (no memory for more) still run
	 * every index. */
	if (started)
		err = kn_group_wait(g);
	else
		err = interrupted(kn_group_ctx(g), err);
	kn_group_free(g);
	return err;
}

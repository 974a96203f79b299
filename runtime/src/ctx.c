/*
 * ctx.c - cancellation contexts.
 *
 * Shape. Only cancellable contexts (with_cancel, with_deadline) carry
 * cancellation state: a struct cctx with a cancellation source cs (the
 * waiter layer's struct cancel_src: the state word err and a wait queue),
 * a lock, the cause, the list of cancellable children and the list of
 * after_func registrations. Every context, whatever its kind, starts with a
 * field src pointing at the source of the cctx whose state it reports:
 * itself, the nearest cancellable ancestor (value contexts, as Go's
 * valueCtx delegates Done to its parent), or NULL (background, detached,
 * and values over those: never cancelled). So "am I cancelled" is a load
 * of an immutable pointer and one seq_cst load of err (ctx_done, inline in
 * waiter.h), and a waiter on any context joins src's queue; the waiter
 * layer needs nothing else of contexts, and this file is above it.
 *
 * The cancellation tree links each cctx into the children list of its
 * tparent (= its parent's src). Values and detached contexts are not in
 * the tree; they only hold a reference on their parent.
 *
 * Cancel. Marking a cctx (under its lock) stores the cause, then err
 * (seq_cst: the store of the waiter layer's no-lost-wake-up argument), and
 * detaches its whole children list onto a worklist, taking a reference on
 * each child. The canceller marks the worklist iteratively (no recursion: a
 * chain of 10,000 contexts must not overflow the stack), then, for every
 * context it marked, notifies its wait queue, runs its after_funcs, takes
 * it out of the timer and out of its parent's list. Marking everything
 * first means an after_func sees the whole subtree cancelled. The cause of
 * a descendant points at the root's message, which lives as long as the
 * descendant, since a descendant holds its ancestors.
 *
 * Deadlines. A context whose own deadline is earlier than its parent's
 * effective deadline is put in the timer's heap (timer.c: one thread for
 * the process, parked through the waiter layer, woken only when the
 * earliest deadline changes, asleep while the heap is empty). The
 * alternative, each waiter passing the context's deadline to its own
 * futex wait, cannot flip kn_ctx_err nor run after_funcs when nobody
 * waits, and a thread per context does not scale; one heap is O(log n) per
 * deadline and costs nothing while idle. A context whose deadline is not
 * earlier than its parent's is cancelled by the parent and costs the timer
 * nothing; a deadline already passed cancels the context at birth.
 *
 * After_funcs. A registration lives in the caller's kn_ctx_stop and holds a
 * reference on its cctx. Its state word goes ARMED -> FIRED (the canceller,
 * under the lock, after copying fn and arg: its last access) or ARMED ->
 * STOPPED (kn_ctx_stop_after_func) by CAS; the winner owns the reference.
 * So the stopper never touches a context a canceller may have freed, and a
 * canceller never touches a stop handle after fn may have started.
 *
 * Linearization: a cancellation at the seq_cst store of err (under the
 * lock, so a child being adopted or an after_func being registered either
 * sees err set, or is linked in time to be detached by the marking);
 * kn_ctx_err at its load.
 *
 * Invariants
 *
 *  1. err goes 0 -> ECANCELED/ETIMEDOUT once, under the lock, after the
 *     cause is written; cause and msg never change afterwards.
 *  2. A cctx is in its tparent's children list (linked) only while it is
 *     not cancelled; linked and the list change under the tparent's lock.
 *     After marking, a cctx has no children, and no after_func joins
 *     its list (the marker's finish runs those linked, if any were).
 *  3. refs counts: 1 while users > 0, one per child (any kind), one per
 *     pending timer entry, one per armed after_func, and temporary ones of
 *     cancellers. A context is freed at refs == 0 and then drops its
 *     reference on its parent.
 *  4. The last user release of a cancellable context cancels it before
 *     dropping its users' reference: so a linked child always has refs > 0,
 *     and taking a reference on it under the tparent's lock is safe.
 *  5. A cctx is on at most one worklist: it is detached from its tparent
 *     once.
 */
#include "kanal/ctx.h"

#include <stddef.h>
#include <string.h>

#include "timer.h"
#include "waiter.h"

enum ctx_kind {
	KIND_BACKGROUND,
	KIND_CANCEL,
	KIND_VALUE,
	KIND_DETACHED,
};

struct cctx;

/* First: the waiter layer reads src through any kn_ctx (ctx_source). */
struct kn_ctx {
	struct cancel_src *src; /* whose cancellation this reports (the cs of
				 * a cctx, or NULL); immutable */
	_Atomic uint32_t users;
	_Atomic uint32_t refs;
	uint32_t kind;
	struct kn_ctx *parent;  /* a reference held; NULL for background */
	const void *key;        /* KIND_VALUE */
	void *value;
};

struct cctx {
	struct kn_ctx base;
	struct cancel_src cs;   /* the state word err and the wait queue */
	struct lock lock;
	/* Under lock: */
	int cause;
	const char *msg;
	char *own_msg;          /* msg, when this context was the one cancelled */
	struct cctx *children;
	kn_ctx_stop *afters;
	bool afters_due;        /* afters was not empty when marked (read
				 * by the marker after, without the lock) */
	/* Under tparent->lock: */
	struct cctx *prev, *next;
	bool linked;
	/* Immutable: */
	struct cctx *tparent;
	uint64_t deadline;      /* effective */
	bool timed;             /* has a timer entry of its own */
	struct timer_entry timer;
	struct cctx *work;      /* the canceller's worklist (invariant 5) */
};

/* What a cancellation stores; own is the message copy the root frees. */
struct cause {
	uint32_t err;
	int code;
	const char *msg;
	char *own;
};

enum {
	STOP_IDLE,
	STOP_ARMED,
	STOP_FIRED,
	STOP_STOPPED,
};

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t),
	       "kn_ctx_stop.state_ is accessed as an atomic");
#define STOP_STATE(s) ((_Atomic uint32_t *)&(s)->state_)

static kn_ctx background = { .kind = KIND_BACKGROUND };

static kn_ctx *ctx_or_bg(kn_ctx *ctx)
{
	return ctx ? ctx : &background;
}

static struct cctx *cctx_of(kn_ctx *c)
{
	return (struct cctx *)c;
}

_Static_assert(offsetof(struct kn_ctx, src) == 0,
	       "the waiter layer reads a context's source at its start");

/* The cctx whose cancellation c reports, or NULL. */
static struct cctx *src_of(kn_ctx *c)
{
	return c->src ? (struct cctx *)(void *)((char *)c->src -
						 offsetof(struct cctx, cs)) : NULL;
}

/* ---- references ----------------------------------------------------------- */

static void ctx_get(kn_ctx *c)
{
	if (c->kind != KIND_BACKGROUND)
		at_add_relaxed(&c->refs, 1);
}

/* Drop a reference; free the context, and so on up, at the last one. */
static void ctx_put(kn_ctx *c)
{
	while (c->kind != KIND_BACKGROUND && at_sub_acq_rel(&c->refs, 1) == 1) {
		kn_ctx *parent = c->parent;

		if (c->kind == KIND_CANCEL)
			kn_free(cctx_of(c)->own_msg);
		kn_free(c);
		c = parent;
	}
}

static kn_ctx *node_new(kn_ctx *parent, enum ctx_kind kind, size_t size)
{
	kn_ctx *c = kn_calloc(1, size);

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	at_store_relaxed(&c->users, 1);
	at_store_relaxed(&c->refs, 1);
	c->kind = kind;
	c->parent = parent;
	c->src = kind == KIND_DETACHED ? NULL : parent->src;
	ctx_get(parent);
	return c;
}

/* ---- cancellation ---------------------------------------------------------- */

/* Mark c cancelled and move its children onto *work, with a reference
 * each. False if c was cancelled already. */
static bool mark(struct cctx *c, const struct cause *k, struct cctx **work)
{
	struct cctx *ch;

	lock_acquire(&c->lock, LOCK_LEAF);
	if (at_load_relaxed(&c->cs.err)) {
		lock_release(&c->lock);
		return false;
	}
	c->cause = k->code;
	c->msg = k->msg;
	c->own_msg = k->own;
	at_store_seq_cst(&c->cs.err, k->err);
	c->afters_due = c->afters != NULL;
	while ((ch = c->children) != NULL) {
		c->children = ch->next;
		ch->linked = false;
		ctx_get(&ch->base);
		ch->work = *work;
		*work = ch;
	}
	lock_release(&c->lock);
	return true;
}

static void unlink_from_parent(struct cctx *c)
{
	struct cctx *p = c->tparent;

	lock_acquire(&p->lock, LOCK_LEAF);
	if (c->linked) {
		if (c->prev)
			c->prev->next = c->next;
		else
			p->children = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->linked = false;
	}
	lock_release(&p->lock);
}

/* Run the after_funcs, one at a time: fn may register or stop others. */
static void run_afters(struct cctx *c)
{
	for (;;) {
		uint32_t armed = STOP_ARMED;
		void (*fn)(void *);
		kn_ctx_stop *s;
		void *arg;
		bool fire;

		lock_acquire(&c->lock, LOCK_LEAF);
		s = c->afters;
		if (!s) {
			lock_release(&c->lock);
			return;
		}
		c->afters = s->next_;
		if (s->next_)
			s->next_->prev_ = NULL;
		s->prev_ = s; /* unlinked, for a stopper that won */
		fn = s->fn_;
		arg = s->arg_;
		fire = at_cas_acq_rel(STOP_STATE(s), &armed, STOP_FIRED);
		lock_release(&c->lock);
		if (fire) {
			fn(arg);
			ctx_put(&c->base);
		}
	}
}

/* The rest of a cancellation, after mark. */
static void finish(struct cctx *c, bool detached)
{
	waitq_notify_all(&c->cs.q);
	if (!detached && c->tparent)
		unlink_from_parent(c);
	if (c->timed && timer_remove(&c->timer))
		ctx_put(&c->base);
	/* Once err is set nothing joins afters (kn_ctx_after_func runs fn
	 * at once), so none linked when marked means none to run: a cancel
	 * of many children without after_funcs takes no lock for them. */
	if (c->afters_due)
		run_afters(c);
}

/* Cancel c and its subtree: 0, or EALREADY. */
static int cancel(struct cctx *c, const struct cause *k)
{
	const struct cause inherited = { k->err, k->code, k->msg, NULL };
	struct cctx *work = NULL, *marked = NULL, *ch;

	if (!mark(c, k, &work))
		return EALREADY;
	/* Our own reference: an after_func may drop the caller's. */
	ctx_get(&c->base);
	while ((ch = work) != NULL) {
		work = ch->work;
		if (mark(ch, &inherited, &work)) {
			ch->work = marked;
			marked = ch;
		} else {
			ctx_put(&ch->base);
		}
	}
	finish(c, false);
	while ((ch = marked) != NULL) {
		marked = ch->work;
		finish(ch, true);
		ctx_put(&ch->base);
	}
	ctx_put(&c->base);
	return 0;
}

static const struct cause released = { ECANCELED, ECANCELED, NULL, NULL };
static const struct cause timed_out = { ETIMEDOUT, ETIMEDOUT, NULL, NULL };

static void deadline_fire(struct timer_entry *e)
{
	struct cctx *c = (struct cctx *)((char *)e - offsetof(struct cctx, timer));

	cancel(c, &timed_out);
	ctx_put(&c->base);
}

/* ---- construction ----------------------------------------------------------- */

/* Join tp's children, or be born cancelled with its cause. */
static void adopt(struct cctx *tp, struct cctx *c)
{
	uint32_t err;

	lock_acquire(&tp->lock, LOCK_LEAF);
	err = at_load_relaxed(&tp->cs.err);
	if (err) {
		c->cause = tp->cause;
		c->msg = tp->msg;
		at_store_seq_cst(&c->cs.err, err);
	} else {
		c->next = tp->children;
		if (c->next)
			c->next->prev = c;
		tp->children = c;
		c->linked = true;
	}
	lock_release(&tp->lock);
}

/* Put c's own deadline in the timer: 0 or an errno value. */
static int arm_deadline(struct cctx *c)
{
	int r;

	if (c->deadline <= kn_now()) {
		cancel(c, &timed_out);
		return 0;
	}
	ctx_get(&c->base); /* the timer's */
	r = timer_add(&c->timer, c->deadline, deadline_fire);
	if (r)
		ctx_put(&c->base);
	return r;
}

kn_ctx *kn_ctx_with_deadline(kn_ctx *parent, uint64_t deadline)
{
	kn_ctx *p = ctx_or_bg(parent);
	struct cctx *tp = src_of(p), *c;
	uint64_t inherited = tp ? tp->deadline : KN_FOREVER;
	int r;

	c = cctx_of(node_new(p, KIND_CANCEL, sizeof(*c)));
	if (!c)
		return NULL;
	c->base.src = &c->cs;
	waitq_init(&c->cs.q);
	c->lock = (struct lock)LOCK_INIT;
	c->tparent = tp;
	c->timed = deadline < inherited;
	c->deadline = c->timed ? deadline : inherited;
	c->timer.queued = false;
	if (tp)
		adopt(tp, c);
	if (c->timed && !at_load_relaxed(&c->cs.err)) {
		r = arm_deadline(c);
		if (r) {
			kn_ctx_release(&c->base);
			errno = r;
			return NULL;
		}
	}
	return &c->base;
}

kn_ctx *kn_ctx_with_cancel(kn_ctx *parent)
{
	return kn_ctx_with_deadline(parent, KN_FOREVER);
}

kn_ctx *kn_ctx_with_timeout(kn_ctx *parent, uint64_t ns)
{
	return kn_ctx_with_deadline(parent, kn_deadline_in(ns));
}

kn_ctx *kn_ctx_without_cancel(kn_ctx *parent)
{
	return node_new(ctx_or_bg(parent), KIND_DETACHED, sizeof(kn_ctx));
}

kn_ctx *kn_ctx_with_value(kn_ctx *parent, const void *key, void *value)
{
	kn_ctx *c;

	if (!key) {
		errno = EINVAL;
		return NULL;
	}
	c = node_new(ctx_or_bg(parent), KIND_VALUE, sizeof(*c));
	if (c) {
		c->key = key;
		c->value = value;
	}
	return c;
}

kn_ctx *kn_ctx_background(void)
{
	return &background;
}

/* ---- queries ------------------------------------------------------------------ */

int kn_ctx_err(kn_ctx *ctx)
{
	return ctx_err(ctx);
}

bool kn_ctx_done(kn_ctx *ctx)
{
	return ctx_done(ctx);
}

int kn_ctx_cause(kn_ctx *ctx, const char **msg)
{
	struct cctx *c = src_of(ctx_or_bg(ctx));
	bool done = c && at_load_seq_cst(&c->cs.err);

	/* Invariant 1: the cause is written before err and never again. */
	if (msg)
		*msg = done ? c->msg : NULL;
	return done ? c->cause : 0;
}

uint64_t kn_ctx_deadline(kn_ctx *ctx)
{
	struct cctx *c = src_of(ctx_or_bg(ctx));

	return c ? c->deadline : KN_FOREVER;
}

void *kn_ctx_value(kn_ctx *ctx, const void *key)
{
	for (kn_ctx *c = ctx_or_bg(ctx); c; c = c->parent)
		if (c->kind == KIND_VALUE && c->key == key)
			return c->value;
	return NULL;
}

/* ---- cancel, wait, release ---------------------------------------------------- */

static char *copy_message(const char *msg)
{
	size_t n;
	char *s;

	if (!msg)
		return NULL;
	n = strlen(msg) + 1;
	s = kn_alloc(n);
	if (s)
		memcpy(s, msg, n);
	return s;
}

int kn_ctx_cancel(kn_ctx *ctx, int code, const char *msg)
{
	struct cause k = { ECANCELED, code ? code : ECANCELED, NULL, NULL };
	int r;

	if (!ctx || ctx->kind != KIND_CANCEL || code < 0)
		return EINVAL;
	if (at_load_acquire(&cctx_of(ctx)->cs.err))
		return EALREADY;
	k.own = copy_message(msg);
	k.msg = k.own;
	r = cancel(cctx_of(ctx), &k);
	if (r)
		kn_free(k.own);
	return r;
}

int kn_ctx_wait(kn_ctx *ctx, uint64_t deadline)
{
	struct waiter w;

	if (kn_ctx_done(ctx))
		return 0;
	if (deadline_left(deadline) == 0)
		return ETIMEDOUT;
	waiter_init(&w, WAIT_ON(WAIT_CTX, ctx));
	/* The waiter layer joins ctx's queue and re-checks it after joining. */
	return waiter_park(&w, deadline, ctx) == SEL_CANCEL ? 0 : ETIMEDOUT;
}

kn_ctx *kn_ctx_retain(kn_ctx *ctx)
{
	if (ctx && ctx->kind != KIND_BACKGROUND)
		at_add_relaxed(&ctx->users, 1);
	return ctx;
}

void kn_ctx_release(kn_ctx *ctx)
{
	if (!ctx || ctx->kind == KIND_BACKGROUND)
		return;
	if (at_sub_acq_rel(&ctx->users, 1) != 1)
		return;
	if (ctx->kind == KIND_CANCEL)
		cancel(cctx_of(ctx), &released); /* invariant 4 */
	ctx_put(ctx);
}

/* ---- after_func ------------------------------------------------------------------ */

int kn_ctx_after_func(kn_ctx *ctx, void (*fn)(void *), void *arg,
		      kn_ctx_stop *stop)
{
	struct cctx *c = src_of(ctx_or_bg(ctx));

	if (!fn || !stop)
		return EINVAL;
	stop->fn_ = fn;
	stop->arg_ = arg;
	stop->ctx_ = c;
	stop->next_ = stop->prev_ = NULL;
	at_store_relaxed(STOP_STATE(stop), STOP_ARMED);
	if (!c)
		return 0;
	lock_acquire(&c->lock, LOCK_LEAF);
	if (at_load_relaxed(&c->cs.err)) {
		lock_release(&c->lock);
		at_store_relaxed(STOP_STATE(stop), STOP_FIRED);
		fn(arg);
		return 0;
	}
	ctx_get(&c->base); /* the registration's, invariant 3 */
	stop->next_ = c->afters;
	if (c->afters)
		c->afters->prev_ = stop;
	c->afters = stop;
	lock_release(&c->lock);
	return 0;
}

bool kn_ctx_stop_after_func(kn_ctx_stop *stop)
{
	uint32_t armed = STOP_ARMED;
	struct cctx *c;

	if (!stop || !at_cas_acq_rel(STOP_STATE(stop), &armed, STOP_STOPPED))
		return false;
	/* We own the registration's reference: c stays valid. */
	c = stop->ctx_;
	if (!c)
		return true;
	lock_acquire(&c->lock, LOCK_LEAF);
	if (stop->prev_ != stop) {
		if (stop->prev_)
			stop->prev_->next_ = stop->next_;
		else
			c->afters = stop->next_;
		if (stop->next_)
			stop->next_->prev_ = stop->prev_;
	}
	lock_release(&c->lock);
	ctx_put(&c->base);
	return true;
}

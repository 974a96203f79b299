/*
 * pool.c - the work-stealing pool (kanal/pool.h): its public calls
 * (spawn, join, wait_idle, shutdown, new, stats, kn_dump, fork, the
 * default pool).
 *
 * Algorithm
 *
 * The pool's files follow the topics of this essay (pool_internal.h lists
 * them). Each worker thread owns a Chase-Lev deque and takes tasks as
 * pool_steal.c describes; the counters that keep about N workers running,
 * the kicks that wake them, their parking and the proof that no work is
 * stranded are pool_worker.c's; a task that blocks switches its worker to
 * another fiber (pool_fiber.c). This file holds the calls of the API.
 *
 * Deque memory. A ring a deque outgrew stays until the pool is freed
 * (deque.c, "Reclamation"): freeing a pool waits for its own threads only.
 *
 * Joins. Joinable records carry a state, a wait queue and two references.
 * A joiner on a worker of the task's pool helps first: it pops its own
 * deque and steals from the deque of the worker that took the joined task
 * (recorded in the task as its thief), then blocks on the record's queue
 * like any kanal call (the block hook applies).
 *
 * Linearization point: a spawn at its deque push (inside) or its
 * injector enqueue (outside).
 *
 * Invariants 4-5 (numbered across pool*.c: 1-2 in pool_worker.c, 3 in
 * pool_steal.c, 6-7 in pool_fiber.c)
 *
 *  4. Every queued task runs or is dropped exactly once: it leaves the
 *     injector under inj_lock, a deque through deque.c's protocol, and
 *     the drop passes of an immediate shutdown run only after stopping.
 *  5. A joinable record is freed by whichever of runner and joiner drops
 *     the second reference, after the runner's last touch (the notify).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "pool_internal.h"
#include "tsan.h"

#define MAX_THREADS 4096       /* the state word's fields are 16 bits */

#define pool_live(p) kn_live(p, KN_MAGIC_POOL)

_Atomic unsigned pool_fork_gen;

static bool on_own_worker(kn_pool *p)
{
	return pool_self && pool_self->pool == p;
}

/* ---- spawning ----------------------------------------------------------- */

static void task_init(struct kn_task *t, kn_pool *p, void (*fn)(void *),
		      void *arg, void (*drop)(void *), const char *name,
		      const void *site)
{
	t->fn = fn;
	t->arg = arg;
	t->drop = drop;
	at_store_relaxed(&t->diag.id, task_next_id());
	at_store_relaxed(&t->diag.name, name);
	at_store_relaxed(&t->diag.pool, p);
	at_store_relaxed(&t->diag.site, site);
	t->stack = NULL;
	TRACE(trace_spawn(at_load_relaxed(&t->diag.id), name));
	at_store_relaxed(&t->state, TASK_DETACHED);
	at_store_relaxed(&t->thief, -1);
}

static int submit(kn_pool *p, struct kn_task *t)
{
	if (unlikely(inherited(p)))
		return ECHILD;
	if (on_own_worker(p)) {
		if (deque_push(&pool_self->dq, dq_item(t)))
			return ENOMEM;
	} else {
		/* pending first: it covers the task from now on (invariant
		 * 3), and the shutdown's closing store cannot miss it. */
		at_add_seq_cst(&p->pending, 1);
		if (unlikely(at_load_seq_cst(&p->closing))) {
			/* kn_pool_wait_idle may have seen this pending and
			 * parked after the last worker did: the refusal is
			 * then the change that makes the pool idle. */
			if (at_sub_seq_cst(&p->pending, 1) == 1)
				waitq_notify_all(&p->idle_waiters);
			return EPIPE;
		}
		cds_wfcq_node_init(&t->link.inj);
		tsan_release(t);
		cds_wfcq_enqueue(&p->inj_head, &p->inj_tail, &t->link.inj);
	}
	notify_work(p);
	return 0;
}

int pool_submit(kn_pool *p, struct kn_task *t, void (*fn)(void *), void *arg,
		void (*drop)(void *), const void *site)
{
	int err;

	task_init(t, p, fn, arg, drop, NULL, site);
	err = submit(p, t);
	if (err)
		task_free(t);
	return err;
}

/* Give t the stack its options ask for: none beyond the pool's (the fast
 * path), or one of a larger class, taken now so that a spawn that cannot
 * have it fails (ENOMEM) instead of the task. Not in a child of fork: a
 * class's lock may have been held across the fork (submit says ECHILD). */
static int own_stack(kn_pool *p, struct kn_task *t, size_t size)
{
	if (size <= p->stack_size)
		return 0;
	if (unlikely(inherited(p)))
		return ECHILD;
	t->stack = stack_take_larger(&p->stacks, size);
	return t->stack ? 0 : ENOMEM;
}

/* Back into the record cache, with the stack the task never ran on. */
static void task_discard(struct kn_task *t)
{
	if (t->stack)
		stack_put_larger(t->stack);
	task_free(t);
}

/* Every spawn: a record for fn(arg) with opts (NULL: the defaults) on p,
 * joinable (with a handle in *out) or detached, queued; or an error with
 * nothing left behind. site: the public call's SPAWN_SITE. */
static int spawn(kn_pool *p, const struct kn_spawn_opts *opts,
		 void (*fn)(void *), void *arg, kn_task **out, const void *site)
{
	size_t size = opts ? opts->stack_size : 0;
	struct kn_task *t;
	int err;

	if (!pool_live(p) || !fn || size > KN_POOL_MAX_STACK ||
	    (size && !p->stack_size))
		return EINVAL;
	t = task_alloc();
	if (!t)
		return ENOMEM;
	task_init(t, p, fn, arg, NULL, opts ? opts->name : NULL, site);
	if (out) {
		at_store_relaxed(&t->refs, 2);
		at_store_relaxed(&t->state, TASK_PENDING);
		waitq_init(&t->joinq);
	}
	err = own_stack(p, t, size);
	if (!err)
		err = submit(p, t);
	if (err)
		task_discard(t);
	else if (out)
		*out = t;
	return err;
}

int kn_pool_spawn_opts(kn_pool *p, const struct kn_spawn_opts *opts,
		       void (*fn)(void *), void *arg)
{
	return spawn(p, opts, fn, arg, NULL, SPAWN_SITE());
}

int kn_pool_spawn_named(kn_pool *p, const char *name, void (*fn)(void *),
			void *arg)
{
	struct kn_spawn_opts o = { .name = name };

	return spawn(p, &o, fn, arg, NULL, SPAWN_SITE());
}

int kn_pool_spawn(kn_pool *p, void (*fn)(void *), void *arg)
{
	return spawn(p, NULL, fn, arg, NULL, SPAWN_SITE());
}

uint64_t kn_task_id(void)
{
	return pool_cur_task ? at_load_relaxed(&pool_cur_task->diag.id) : 0;
}

const char *kn_task_name(void)
{
	const char *name;

	if (!pool_cur_task)
		return NULL;
	name = at_load_relaxed(&pool_cur_task->diag.name);
	return name ? name : "";
}

int kn_task_set_name(const char *name)
{
	if (!pool_cur_task)
		return EINVAL;
	at_store_relaxed(&pool_cur_task->diag.name, name);
	return 0;
}

/* A joinable spawn's handle, or NULL with errno. */
static kn_task *spawn_task(kn_pool *p, const struct kn_spawn_opts *opts,
			   void (*fn)(void *), void *arg, const void *site)
{
	kn_task *t;
	int err = spawn(p, opts, fn, arg, &t, site);

	if (err) {
		errno = err;
		return NULL;
	}
	return t;
}

kn_task *kn_pool_spawn_task_opts(kn_pool *p, const struct kn_spawn_opts *opts,
				 void (*fn)(void *), void *arg)
{
	return spawn_task(p, opts, fn, arg, SPAWN_SITE());
}

kn_task *kn_pool_spawn_task(kn_pool *p, void (*fn)(void *), void *arg)
{
	return spawn_task(p, NULL, fn, arg, SPAWN_SITE());
}

/* ---- joining ------------------------------------------------------------ */

/* Steal from the worker that took t: its deque holds t's subtasks. */
static struct kn_task *leapfrog(struct worker *w, struct kn_task *t)
{
	int32_t i = at_load_relaxed(&t->thief);
	struct worker *v;
	struct kn_task *x;
	bool retry;

	if (i < 0 || (unsigned)i == w->index)
		return NULL;
	v = at_load_acquire(&w->pool->slots[i]);
	do {
		retry = false;
		x = steal_from(w, v, &retry, NULL);
	} while (!x && retry && at_load_acquire(&t->state) == TASK_PENDING);
	return x;
}

static void help(struct worker *w, struct kn_task *t)
{
	struct kn_task *x;

	while (at_load_acquire(&t->state) == TASK_PENDING && may_start_task(w)) {
		x = dq_pop(w);
		if (!x)
			x = leapfrog(w, t);
		if (!x)
			return;
		run_task(w, x);
	}
	/* Stopping: t may be queued here, where nothing starts any more;
	 * dropped now, it cannot hold this join even if the join must
	 * sleep on the thread (no stack to suspend on). */
	if (at_load_acquire(&w->pool->stopping))
		drop_queued(w);
}

static bool task_ended(void *t)
{
	return at_load_seq_cst(&((struct kn_task *)t)->state) != TASK_PENDING;
}

static uint32_t wait_task(struct kn_task *t)
{
	struct waitq *const q[] = { &t->joinq };
	uint32_t st;

	for (;;) {
		st = at_load_acquire(&t->state);
		if (st != TASK_PENDING)
			return st;
		waitq_wait(q, 1, task_ended, t, KN_FOREVER, NULL, WAIT_ON(WAIT_JOIN, t));
	}
}

int kn_task_join(kn_task *t)
{
	kn_pool *p;
	uint32_t st;

	if (!t)
		return EINVAL;
	p = at_load_relaxed(&t->diag.pool);
	if (inherited(p) && at_load_acquire(&t->state) == TASK_PENDING)
		return ECHILD;
	if (on_own_worker(p))
		help(pool_self, t);
	st = wait_task(t);
	task_put(t);
	return st == TASK_DONE ? 0 : ECANCELED;
}

/* ---- idleness and shutdown --------------------------------------------- */

/* Are fibers of any worker blocked (or runnable)? seq_cst: pool_idle's
 * re-check. */
static bool fibers_blocked(kn_pool *p)
{
	struct worker *w;

	pool_for_each_worker(p, w)
		if (at_load_seq_cst(&w->nblocked))
			return true;
	return false;
}

/* The re-check of kn_pool_wait_idle (seq_cst loads). */
static bool pool_idle(void *arg)
{
	kn_pool *p = arg;
	uint64_t s;

	if (at_load_seq_cst(&p->pending) > 0)
		return false;
	s = at_load_seq_cst(&p->state);
	return st_idle(s) == st_threads(s) && !fibers_blocked(p);
}

int kn_pool_wait_idle(kn_pool *p)
{
	struct waitq *q[1];

	if (!pool_live(p) || on_own_worker(p))
		return EINVAL;
	if (inherited(p))
		return ECHILD;
	q[0] = &p->idle_waiters; /* only now: p may have been NULL */
	while (waitq_wait(q, 1, pool_idle, p, KN_FOREVER, NULL,
			  WAIT_ON(WAIT_POOL_IDLE, p)) != SEL_ABORT)
		;
	return 0;
}

/* Drop what is left in the injector (the workers have stopped taking). */
static void drop_injected(kn_pool *p)
{
	struct backoff b = { 0 };
	struct cds_wfcq_node *node;
	struct kn_task *t;

	while (at_load_seq_cst(&p->pending) > 0) {
		lock_acquire(&p->inj_lock, LOCK_LEAF);
		node = __cds_wfcq_dequeue_nonblocking(&p->inj_head, &p->inj_tail);
		lock_release(&p->inj_lock);
		if (!node || node == CDS_WFCQ_WOULDBLOCK) {
			/* An enqueue (or a refused spawn's pending) is in
			 * flight: it settles in a few instructions. */
			backoff_snooze(&b);
			continue;
		}
		t = caa_container_of(node, struct kn_task, link.inj);
		tsan_acquire(t);
		at_sub_seq_cst(&p->pending, 1);
		drop_task(p, t);
	}
}

int kn_pool_shutdown(kn_pool *p, bool drain, size_t *dropped)
{
	unsigned i, n;
	struct kn_task *t;

	if (dropped)
		*dropped = 0;
	if (!pool_live(p) || on_own_worker(p))
		return EINVAL;
	if (inherited(p))
		return ECHILD;
	if (at_xchg_seq_cst(&p->closing, 1))
		return EPIPE;
	if (drain)
		kn_pool_wait_idle(p);
	else
		drop_injected(p); /* early: joins of these tasks return */
	stop_threads(p);
	/* The workers are gone (joined): this thread may pop their deques. */
	drop_injected(p);
	n = at_load_relaxed(&p->nstarted);
	for (i = 0; i < n; i++)
		while ((t = dq_pop(p->owned[i])) != NULL)
			drop_task(p, t);
	if (dropped)
		*dropped = (size_t)at_load_relaxed(&p->dropped);
	return 0;
}

static void pool_release(kn_pool *p)
{
	unsigned i, n = at_load_relaxed(&p->nstarted);

	for (i = 0; i < n; i++) {
		deque_destroy(&p->owned[i]->dq);
		kn_free(p->owned[i]);
	}
	if (p->stack_size)
		stack_pool_destroy(&p->stacks);
	kn_free(p->owned);
	kn_free(p->slots);
	kn_free(p);
}

void kn_pool_free(kn_pool *p)
{
	if (!pool_live(p) || on_own_worker(p) || inherited(p))
		return; /* inherited: its threads cannot be joined here */
	if (!at_load_acquire(&p->closing))
		kn_pool_shutdown(p, true, NULL);
	diag_pool_free(p);
	p->magic = KN_MAGIC_DEAD;
	pool_release(p);
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * A child of fork() has one thread, the one that called fork: none of the
 * parent's workers. Its copies of the parent's pools are inherited: calls
 * that need their threads return ECHILD (kn_pool_free frees nothing, since
 * it cannot join them), and the default pool is forgotten, so that kn_go
 * makes the child's own; the diagnostics start over (pool_diag.c, "fork").
 * default_lock is held across the fork so that the child never inherits
 * it locked.
 *
 * The handlers are registered before main, not at the first pool's
 * creation: a fork while another thread made the first pool (holding
 * default_lock, for the default pool) would otherwise leave the child
 * that lock held for ever; and a child must start over even if its parent
 * forked it from a constructor. After the timer's (timer.c: a constructor
 * of a lower priority): prepare handlers run in the reverse order of
 * registration, child handlers in that order, so default_lock is taken
 * before the timer's lock (the order of a pool's creation, which arms the
 * stall check with default_lock held), and the child's diagnostics find
 * the timer's heap unlocked and their own.
 */
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static kn_pool *_Atomic default_pool;

static void fork_prepare(void)
{
	pthread_mutex_lock(&default_lock);
	diag_fork_prepare();
}

static void fork_parent(void)
{
	diag_fork_parent();
	pthread_mutex_unlock(&default_lock);
}

static void fork_child(void)
{
	diag_fork_child();
	pthread_mutex_init(&default_lock, NULL);
	at_store_relaxed(&default_pool, NULL);
	at_store_relaxed(&pool_fork_gen, at_load_relaxed(&pool_fork_gen) + 1);
}

__attribute__((constructor(KN_CTOR_POOL_FORK))) static void fork_register(void)
{
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- creation ------------------------------------------------------------ */

kn_pool *kn_pool_new(const struct kn_pool_opts *opts)
{
	struct kn_pool_opts o = opts ? *opts : (struct kn_pool_opts){ 0 };
	unsigned n = o.workers ? o.workers : (unsigned)kn_ncpu(), i;
	unsigned spare = o.max_spare == 0 ? KN_POOL_DEFAULT_SPARE :
			 o.max_spare < 0 ? 0 : (unsigned)o.max_spare;
	kn_pool *p;
	int err = ENOMEM;

	if (n > MAX_THREADS || spare > MAX_THREADS - n ||
	    o.stack_size > KN_POOL_MAX_STACK) {
		errno = EINVAL;
		return NULL;
	}
	p = kn_alloc_aligned(KN_PAD, sizeof(*p));
	if (!p)
		goto fail;
	memset(p, 0, sizeof(*p));
	p->magic = KN_MAGIC_POOL;
	p->gen = at_load_relaxed(&pool_fork_gen);
	p->target = (int)n;
	p->max_search = n / 2 ? (int)(n / 2) : 1;
	p->max_threads = n + spare;
	if (FIBER_AVAILABLE && !o.no_fibers)
		p->stack_size = o.stack_size > KN_POOL_MIN_STACK ? o.stack_size :
				o.stack_size ? KN_POOL_MIN_STACK : KN_POOL_DEFAULT_STACK;
	snprintf(p->name, sizeof(p->name), "%s", o.name ? o.name : "kanal");
	if (p->stack_size)
		stack_pool_init(&p->stacks, p->stack_size, p->name);
	p->on_start = o.on_start;
	p->on_stop = o.on_stop;
	p->hook_arg = o.hook_arg;
	__cds_wfcq_init(&p->inj_head, &p->inj_tail);
	waitq_init(&p->idleq);
	waitq_init(&p->idle_waiters);
	p->slots = kn_calloc(p->max_threads, sizeof(p->slots[0]));
	p->owned = kn_calloc(p->max_threads, sizeof(p->owned[0]));
	if (!p->slots || !p->owned)
		goto fail;
	/* All N count from the start, so that the first parks keep
	 * threads >= idle (invariant 1). */
	at_store_relaxed(&p->state, n * ST_THREADS_ONE);
	lock_acquire(&p->threads_lock, LOCK_THREADS);
	for (i = 0; i < n; i++) {
		err = worker_start(p, i);
		if (err)
			break;
	}
	lock_release(&p->threads_lock);
	if (i == n) {
		diag_pool_new(p);
		return p;
	}
	stop_threads(p);
	pool_release(p);
	errno = err;
	return NULL;
fail:
	if (p) {
		kn_free(p->slots);
		kn_free(p->owned);
	}
	kn_free(p);
	errno = err;
	return NULL;
}

int kn_pool_stats(kn_pool *p, struct kn_pool_stats *st)
{
	struct worker *w;

	if (!pool_live(p) || !st)
		return EINVAL;
	memset(st, 0, sizeof(*st));
	st->threads = at_load_acquire(&p->nstarted);
	pool_for_each_worker(p, w) {
		st->tasks_run += at_load_relaxed(&w->n_run);
		st->steals += at_load_relaxed(&w->n_steal);
		st->parks += at_load_relaxed(&w->n_park);
		st->switches += at_load_relaxed(&w->n_switch);
	}
	st->spares_started = at_load_relaxed(&p->spares_started);
	if (p->stack_size) {
		st->stack_bytes = at_load_relaxed(&p->stacks.bytes);
		st->stack_failures = at_load_relaxed(&p->stacks.failures);
	}
	st->workers = (unsigned)p->target;
	return 0;
}

kn_pool *kn_pool_current(void)
{
	return pool_self ? pool_self->pool : NULL;
}

/* ---- the default pool --------------------------------------------------- */

/* Created on first use (default_lock, default_pool: see "fork"); a
 * failed creation (ENOMEM, no threads) is not remembered, so a later call
 * tries again. */
static struct kn_pool_opts default_opts = { .name = "kn-go" };
static char default_name[16];

/* KANAL_STACK_SIZE: bytes, or with a K, M or G suffix; 0 if unset,
 * SIZE_MAX (which kn_pool_new refuses) if it is not a size. */
static size_t env_stack_size(void)
{
	const char *s = getenv("KANAL_STACK_SIZE");
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (errno || end == s || *end || v == 0 || v > (SIZE_MAX >> shift))
		return SIZE_MAX;
	return (size_t)v << shift;
}

kn_pool *pool_default(void)
{
	struct kn_pool_opts o;
	kn_pool *p = at_load_acquire(&default_pool);

	if (likely(p))
		return p;
	pthread_mutex_lock(&default_lock);
	p = at_load_acquire(&default_pool);
	if (!p) {
		o = default_opts;
		if (!o.stack_size)
			o.stack_size = env_stack_size();
		p = kn_pool_new(&o);
		at_store_release(&default_pool, p);
	}
	pthread_mutex_unlock(&default_lock);
	return p;
}

kn_pool *kn_default_pool(void)
{
	return pool_default();
}

int kn_default_pool_set(const struct kn_pool_opts *opts)
{
	int err = EINVAL;

	if (!opts)
		return EINVAL;
	pthread_mutex_lock(&default_lock);
	if (!at_load_acquire(&default_pool)) {
		default_opts = *opts;
		if (opts->name) {
			snprintf(default_name, sizeof(default_name), "%s", opts->name);
			default_opts.name = default_name;
		}
		err = 0;
	}
	pthread_mutex_unlock(&default_lock);
	return err;
}

/* Every kn_go: spawn on the default pool, made if need be. */
static int go(const struct kn_spawn_opts *opts, void (*fn)(void *), void *arg,
	      const void *site)
{
	kn_pool *p;

	if (!fn)
		return EINVAL;
	p = pool_default();
	return p ? spawn(p, opts, fn, arg, NULL, site) : errno;
}

int kn_go_opts(const struct kn_spawn_opts *opts, void (*fn)(void *), void *arg)
{
	return go(opts, fn, arg, SPAWN_SITE());
}

int kn_go_named(const char *name, void (*fn)(void *), void *arg)
{
	struct kn_spawn_opts o = { .name = name };

	return go(&o, fn, arg, SPAWN_SITE());
}

int kn_go(void (*fn)(void *), void *arg)
{
	return go(NULL, fn, arg, SPAWN_SITE());
}


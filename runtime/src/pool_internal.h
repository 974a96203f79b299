/*
 * pool_internal.h - the pool's private header (internal).
 *
 * Two parts. The first is what the layers above the pool use of it
 * (group.c): pool_submit and pool_default. The second is for the pool's
 * own files only, which split pool.c's topics along the headings of its
 * essay:
 *
 *   pool.c         the public calls: spawn, join, wait_idle, shutdown,
 *                  new, stats, the registry (kn_dump), fork, the default
 *                  pool; the overview of the algorithm, invariants 4-5;
 *   pool_worker.c  work visibility and waking (the state word, kicks,
 *                  spare threads), parking and the worker loop; the
 *                  no-lost-wake-up argument, invariants 1-2;
 *   pool_steal.c   placement and stealing: taking tasks from the
 *                  injector in batches, the search, leaving a few tasks to
 *                  their owner; invariant 3;
 *   pool_fiber.c   the fiber scheduler: ready lists, loop fibers, switch,
 *                  suspend; invariants 6-7.
 *
 * The structures and the helpers that run on the hot paths (the worker
 * loop, spawning, joining, a switch) are here, static inline: there is no
 * LTO, and a helper called from another of these files would otherwise
 * stop being inlined. Each helper's proof is in the essay of the file
 * named above its group.
 */
#ifndef KN_POOL_INTERNAL_H
#define KN_POOL_INTERNAL_H

#include "task.h"

/*
 * Run fn(arg) on p, from a record the caller took with task_alloc (its
 * payload may hold fn's data: arg may point into it). If an immediate
 * shutdown discards the task, drop(arg) runs instead (when not NULL).
 * site: the caller's public call's SPAWN_SITE (task.h). 0, EPIPE,
 * ENOMEM; on error the record is freed.
 */
int pool_submit(kn_pool *p, struct kn_task *t, void (*fn)(void *), void *arg,
		void (*drop)(void *), const void *site);

/* The process-wide default pool (kn_go's), made on first use; NULL with
 * errno set if it could not be made. */
kn_pool *pool_default(void);

/* ==== for pool*.c only ==================================================== */

#include "deque.h"
#include "fiber.h"
#include "timer.h"
#include "trace.h"

/* The declarations below bind inside the library, so calls between the
 * pool's files are direct, as when they were static in one file. */
#pragma GCC visibility push(hidden)

#define TASK_STREAK 16         /* queued tasks before a runnable fiber, at most */
#define LEAVE_FEW 32           /* a deque this shallow is left to its owner */

/* The state word (pool_worker.c): four 16-bit counters in one atomic. */
#define ST_BLOCKED_ONE ((uint64_t)1)
#define ST_SEARCH_ONE ((uint64_t)1 << 16)
#define ST_IDLE_ONE ((uint64_t)1 << 32)
#define ST_THREADS_ONE ((uint64_t)1 << 48)

static inline int st_blocked(uint64_t s)
{
	return (int)(s & 0xffff);
}
static inline int st_search(uint64_t s)
{
	return (int)((s >> 16) & 0xffff);
}
static inline int st_idle(uint64_t s)
{
	return (int)((s >> 32) & 0xffff);
}
static inline int st_threads(uint64_t s)
{
	return (int)(s >> 48);
}
static inline int st_running(uint64_t s)
{
	return st_threads(s) - st_idle(s) - st_blocked(s);
}

struct worker {
	struct deque dq;
	kn_pool *pool;
	unsigned index;
	unsigned tick;
	unsigned streak;         /* tasks taken while fibers were runnable */
	uint64_t rng;
	pthread_t thread;
	struct block_hook hook;
	/* Written by the worker only, read by kn_pool_stats. */
	_Atomic uint64_t n_run, n_steal, n_park, n_switch;
	/* The task running now (NULL: none), for kn_dump and the stall
	 * report; written by the worker only. */
	_Atomic(struct kn_task *) running;
	/* Asleep (idle, or waiting for its fibers), for kn_dump; written by
	 * the worker around its sleep only. */
	_Atomic uint32_t asleep;
	/* The stall report (pool_diag.c), the timer thread only: the
	 * worker's progress (n_run + n_switch) when it last changed, when
	 * that was, and whether this stall was reported. */
	uint64_t stall_mark, stall_since;
	bool stall_said;

	/* Fibers (pool_fiber.c); the worker's thread only, except
	 * where noted. */
	struct fiber native;     /* the thread's own stack */
	struct fiber *cur;       /* the fiber running now */
	struct fiber *loops;     /* spare loop fibers, waiting in run_ready */
	unsigned nloops;
	struct fiber *ready, *ready_tail;   /* runnable blocked fibers, FIFO */
	struct waiter *suspending;          /* for the fiber switched to */
	struct fiber *dead;                 /* to free after the switch */
	struct stack_cache stacks;          /* free stacks (stack.c) */
	_Atomic uint64_t nblocked;          /* blocked or ready; read by pool_idle */
	_Atomic(struct fiber *) remote KN_ALIGNED; /* woken by other threads */
	struct waitq wakeq;                 /* this worker, while it sleeps */
};

struct kn_pool {
	uint32_t magic;                  /* KN_MAGIC_POOL while alive (debug.h) */
	/* Read-mostly. */
	int target;
	int max_search;
	unsigned max_threads;
	char name[16];
	void (*on_start)(kn_pool *, unsigned, void *);
	void (*on_stop)(kn_pool *, unsigned, void *);
	void *hook_arg;
	_Atomic(struct worker *) *slots; /* published by each worker itself */
	size_t stack_size;               /* of a fiber; 0: no fibers */
	struct stack_pool stacks;        /* when stack_size != 0 */
	_Atomic uint32_t stack_warned;   /* the no-stack message was printed */
	unsigned gen;                    /* pool_fork_gen when made */
	_Atomic uint32_t closing;        /* outside spawns refused */
	_Atomic uint32_t stopping;       /* workers exit */

	/* Thread starts and shutdown. */
	struct lock threads_lock;
	_Atomic uint32_t spare_wanted;   /* asked while threads_lock was held */
	struct worker **owned;           /* under threads_lock */
	struct timer_entry retry;        /* a failed start, tried again */
	_Atomic uint32_t retry_armed;    /* written under threads_lock */
	bool retry_again;                /* under threads_lock */
	uint64_t retry_ns;               /* the next backoff; same */
	_Atomic unsigned nstarted;
	_Atomic uint64_t spares_started;
	_Atomic uint64_t dropped;

	_Atomic uint64_t state KN_ALIGNED;
	_Atomic int64_t pending KN_ALIGNED;
	struct cds_wfcq_tail inj_tail KN_ALIGNED;
	struct __cds_wfcq_head inj_head KN_ALIGNED;
	struct lock inj_lock;
	struct waitq idleq KN_ALIGNED;
	struct waitq idle_waiters;
	kn_pool *dump_next;              /* the registry of live pools */
};

/* The pool's thread-locals are accessed as when they were static in one
 * file: GCC gives an extern one the general-dynamic model (one
 * __tls_get_addr call per variable) even when hidden. */
#define POOL_TLS __attribute__((tls_model("local-dynamic")))

/* The worker running on this thread (NULL: not a pool thread). */
extern _Thread_local struct worker *pool_self POOL_TLS;
/* The task running on this thread's current fiber (kn_task_id): set by
 * run_task, kept across a suspension by worker_suspend. */
extern _Thread_local struct kn_task *pool_cur_task POOL_TLS;
/* Children of fork() between this process and its first ancestor that
 * used kanal: incremented in each child (pool.c, "fork"). */
extern _Atomic unsigned pool_fork_gen;

/* pool_fiber.c */
void fiber_ready(struct fiber *f);
struct fiber *take_ready(struct worker *w);
void loop_main(void *arg);
bool worker_suspend(void *arg, struct waiter *wt);
void run_on_own_stack(struct worker *w, struct kn_task *t);
bool worker_others_ready(void *arg);
/* pool_steal.c */
struct kn_task *inj_take(struct worker *w);
struct kn_task *search(struct worker *w);
/* pool_diag.c */
void diag_pool_new(kn_pool *p);
void diag_pool_free(kn_pool *p);
void diag_fork_prepare(void);
void diag_fork_parent(void);
void diag_fork_child(void);
void diag_arm(void);
extern _Atomic uint32_t diag_armed;
/* pool_worker.c */
int worker_start(kn_pool *p, unsigned idx);
void start_spare(kn_pool *p);
struct kn_task *next_task(struct worker *w);
void stop_threads(kn_pool *p);

/* ---- everywhere in pool*.c ---------------------------------------------- */

/* for (each worker of p started when the scan began that has published
 * itself) the statement after it, with w that worker (acquire: its fields
 * are initialised; a worker not yet published is skipped). */
#define pool_for_each_worker(p, w)                                          \
	for (unsigned kn_i_ = 0, kn_n_ = at_load_acquire(&(p)->nstarted);    \
	     kn_i_ < kn_n_; kn_i_++)                                         \
		if (((w) = at_load_acquire(&(p)->slots[kn_i_])) == NULL) {   \
		} else

/* Make t (NULL: none) this thread's current task, and show it to kn_dump
 * and the trace: t resumes through waiter wt (NULL: it starts); t NULL:
 * the task that ran stops, blocked through wt (NULL: it ended), and
 * direct says that the thread switches straight to another task's fiber
 * (trace_stop). */
static inline void set_cur_task(struct worker *w, struct kn_task *t,
				const struct waiter *wt, bool direct)
{
	TRACE(t ? trace_run(at_load_relaxed(&t->diag.id), wt) :
		  trace_stop(wt ? wt->on : 0, wt, direct));
	pool_cur_task = t;
	at_store_release(&w->running, t); /* its record with it (kn_dump) */
}

/*
 * A task (t: pool_cur_task, NULL if none) suspends or sleeps in a wait
 * on w->on: the block hook's record of it for kn_dump (two stores and a
 * read of the coarse clock). The blocking path pays this; no other path
 * does.
 */
static inline void diag_block(struct kn_task *t, const struct waiter *w)
{
	if (!t)
		return;
	at_store_relaxed(&t->diag.since, kn_now_coarse());
	at_store_relaxed(&t->diag.on, w->on);
}

static inline void diag_unblock(struct kn_task *t)
{
	if (t)
		at_store_relaxed(&t->diag.on, 0);
}

/* A worker about to sleep (idle, or for its fibers) with fibers blocked
 * here, after its seq_cst RMW of the state word, arms the deadlock check
 * if it is not (the arming argument, pool_diag.c). A fiber's suspension
 * never arms it: a deadlock needs the worker to sleep after. */
static inline void diag_sleeps(struct worker *w)
{
	if (at_load_relaxed(&w->nblocked) && !at_load_seq_cst(&diag_armed))
		diag_arm();
}

/* Made before a fork that made this process: its threads are the
 * parent's, and none of them runs here. */
static inline bool inherited(kn_pool *p)
{
	return p->gen != at_load_relaxed(&pool_fork_gen);
}

static inline void stat_inc(_Atomic uint64_t *c)
{
	at_store_relaxed(c, at_load_relaxed(c) + 1);
}

/* ---- the fiber scheduler (pool_fiber.c) ------------------------------------ */

#define LOOPS_KEEP 16 /* spare loop fibers a worker keeps mapped */

static inline void ready_append(struct worker *w, struct fiber *f)
{
	f->next = NULL;
	if (w->ready_tail)
		w->ready_tail->next = f;
	else
		w->ready = f;
	w->ready_tail = f;
}

static inline bool has_ready(struct worker *w)
{
	return w->ready || at_load_seq_cst(&w->remote);
}

/* In the fiber just switched to: finish what the switch left to it. A
 * fiber that blocked is marked suspended only now that its registers are
 * saved; if a decision came first, it is runnable at once. */
static inline void after_switch(struct worker *w)
{
	struct waiter *wt = w->suspending;

	if (w->dead) {
		fiber_free(&w->pool->stacks, &w->stacks, w->dead);
		w->dead = NULL;
	}
	if (wt) {
		w->suspending = NULL;
		if (!waiter_mark_suspended(wt))
			ready_append(w, wt->fib);
	}
}

/* Run to; the running fiber waits (suspending: blocked on wt) or, leaving,
 * is freed by to. Returns when the running fiber is switched to again. */
static inline void switch_to(struct worker *w, struct fiber *to, struct waiter *wt,
		      bool leaving)
{
	struct fiber *from = w->cur;

	w->suspending = wt;
	if (leaving)
		w->dead = from;
	w->cur = to;
	stat_inc(&w->n_switch);
	fiber_switch(from, to, leaving);
	after_switch(w);
}

static inline struct fiber *new_loop(struct worker *w)
{
	struct fiber *f = fiber_new(&w->pool->stacks, &w->stacks, loop_main, w);

	if (f) {
		f->owner = w;
		f->wake = fiber_ready;
	}
	return f;
}

/* Invariant 7: may a task start here? Blocked fibers resume only on this
 * thread, so a task that slept on the thread (no stack to switch to) would
 * strand them, and they may be what it waits for. Hence a task starts
 * beside blocked fibers only with a spare loop in reserve. */
static inline bool may_start_task(struct worker *w)
{
	struct fiber *f;

	if (at_load_acquire(&w->pool->stopping))
		return false; /* queued tasks are dropped (drop_queued) */
	if (w->loops || !at_load_relaxed(&w->nblocked))
		return true;
	f = new_loop(w);
	if (!f)
		return false;
	f->next = NULL;
	w->loops = f;
	w->nloops = 1;
	return true;
}

/*
 * Do queued tasks go before runnable fibers now (at a block, and in the
 * loop)? A fiber woken by a task of this worker usually waits for that
 * task's siblings (a spawner held by a group's limit, a joiner), and
 * fibers that keep waking each other would otherwise hold the worker while
 * its new tasks wait for a thief (another core, for good). So up to
 * TASK_STREAK queued tasks go first: the woken fiber resumes once for many
 * and then spawns or joins in a burst. Past that the fibers go first, so a
 * stream of tasks never holds a woken fiber for more than TASK_STREAK
 * tasks; and so they do when no task may start here (invariant 7).
 */
static inline bool tasks_turn(struct worker *w)
{
	return w->streak < TASK_STREAK && !deque_empty(&w->dq) &&
	       may_start_task(w);
}

/* From the worker loop: resume f. This loop fiber waits among the spares
 * (or is freed, beyond LOOPS_KEEP) until a task blocks. */
static inline void run_ready(struct worker *w, struct fiber *f)
{
	struct fiber *l = w->cur;
	bool leaving = l != &w->native && w->nloops >= LOOPS_KEEP;

	if (!leaving) {
		l->next = w->loops;
		w->loops = l;
		w->nloops++;
	}
	switch_to(w, f, NULL, leaving);
}

static inline void free_loops(struct worker *w)
{
	struct fiber *f;

	while ((f = w->loops) != NULL) {
		w->loops = f->next;
		if (f != &w->native)
			fiber_free(&w->pool->stacks, &w->stacks, f);
	}
	w->nloops = 0;
}

/* With fibers blocked here, their partners are often about to answer:
 * wait for that a little (adaptive, bounded: poll_begin) before searching
 * and parking, which cost shared writes on both sides of the wake-up.
 * Queued work ends the wait too. */
static inline bool poll_ready(struct worker *w)
{
	struct poll p;
	bool ok;

	poll_begin(&p, 0);
	while (!(ok = has_ready(w) || at_load_relaxed(&w->pool->pending) > 0) &&
	       poll_next(&p))
		;
	poll_end(&p, ok);
	return ok;
}

/* ---- placement and stealing (pool_steal.c) -------------------------------- */

/* Record the thief for a join to leapfrog to. Only joinable tasks need
 * it: a detached record stays clean in its spawner's cache. */
static inline struct kn_task *took(struct worker *w, struct kn_task *t)
{
	if (at_load_relaxed(&t->state) != TASK_DETACHED)
		at_store_relaxed(&t->thief, (int32_t)w->index);
	return t;
}

/* Deque items: a joinable task is tagged so that thieves never leave it
 * to its owner (fork-join wants the other cores at once; see search). */
static inline void *dq_item(struct kn_task *t)
{
	uintptr_t tag = at_load_relaxed(&t->state) == TASK_DETACHED ? 0 : DEQUE_TAKE_ANYWAY;

	return (void *)((uintptr_t)t | tag);
}

static inline struct kn_task *dq_task(void *x)
{
	return (struct kn_task *)((uintptr_t)x & ~DEQUE_TAKE_ANYWAY);
}

static inline struct kn_task *dq_pop(struct worker *w)
{
	return dq_task(deque_pop(&w->dq));
}

/* left: NULL to take any task, else where to say that a few were left to
 * their owner (see search). Not to an owner that already holds LEAVE_FEW
 * more suspended fibers than the thief: they resume only there, so a
 * spawner whose children block and stay (a server's accept loop and its
 * connections) would otherwise keep all of them on its own core. */
static inline struct kn_task *steal_from(struct worker *w, struct worker *v,
				  bool *retry, bool *left)
{
	bool leave = left && at_load_relaxed(&v->nblocked) <=
			     at_load_relaxed(&w->nblocked) + LEAVE_FEW;
	void *x;

	switch (deque_steal(&v->dq, &x, leave ? LEAVE_FEW : 0)) {
	case STEAL_OK:
		stat_inc(&w->n_steal);
		TRACE(trace_steal(at_load_relaxed(&dq_task(x)->diag.id), v->index));
		return took(w, dq_task(x));
	case STEAL_RETRY:
		*retry = true;
		break;
	case STEAL_LEFT:
		*left = true;
		break;
	case STEAL_EMPTY:
		break;
	}
	return NULL;
}

/* ---- work visibility, waking and the worker loop (pool_worker.c) ---------- */

static inline void kick(kn_pool *p)
{
	if (!waitq_notify_one(&p->idleq))
		start_spare(p);
}

/* After making work visible (seq_cst): does someone need waking? */
static inline void notify_work(kn_pool *p)
{
	uint64_t s = at_load_seq_cst(&p->state);

	if (st_search(s) == 0 && st_running(s) < p->target)
		kick(p);
}

static inline void task_done(struct kn_task *t, uint32_t how)
{
	if (at_load_relaxed(&t->state) == TASK_DETACHED) {
		task_free(t);
		return;
	}
	at_store_relaxed(&t->diag.id, 0); /* kn_dump: ended */
	at_store_seq_cst(&t->state, how);
	waitq_notify_all(&t->joinq);
	task_put(t);
}

/* Run t here; t->fn may block (then its stack, this one, waits). */
static inline void run_task_here(struct worker *w, struct kn_task *t)
{
	struct kn_task *outer = pool_cur_task; /* a join that helps runs t inside */

	set_cur_task(w, t, NULL, false);
	t->fn(t->arg);
	set_cur_task(w, outer, NULL, false);
	stat_inc(&w->n_run);
	task_done(t, TASK_DONE);
}

static inline void run_task(struct worker *w, struct kn_task *t)
{
	if (unlikely(t->stack))
		run_on_own_stack(w, t);
	else
		run_task_here(w, t);
}

static inline void drop_task(kn_pool *p, struct kn_task *t)
{
	if (t->stack) { /* it never ran on it */
		stack_put_larger(t->stack);
		t->stack = NULL;
	}
	if (t->drop)
		t->drop(t->arg);
	at_add_relaxed(&p->dropped, 1);
	task_done(t, TASK_DROPPED);
}

/* Stopping: nothing starts any more (may_start_task), so what is queued
 * here is dropped now, so that a join waiting for it (a suspended task of
 * this worker, a thread, a task on another worker) returns and lets its
 * waiter finish. Tasks that a resumed task queues during the stop go the
 * same way when the loop comes back here. Draining shutdowns leave
 * nothing. */
static inline void drop_queued(struct worker *w)
{
	struct kn_task *t;

	while ((t = dq_pop(w)) != NULL)
		drop_task(w->pool, t);
}

/* Runs on whichever stack holds the loop: the thread's own at first,
 * a loop fiber after a task blocked. */
static inline void worker_loop(struct worker *w)
{
	struct kn_task *t;

	while ((t = next_task(w)) != NULL)
		run_task(w, t);
}

/* The loop runs on a fiber from the start, so that every task has the
 * same stack (stack_size) whatever ran before it on this worker; the
 * thread's own stack waits, and the loop ends there. Without fibers, or
 * without memory for the first one, it runs here (tasks then have the
 * thread's stack until one blocks). */
static inline void run_loop(struct worker *w)
{
	struct fiber *f = w->pool->stack_size ? new_loop(w) : NULL;

	if (f)
		switch_to(w, f, NULL, false);
	else
		worker_loop(w);
}

#pragma GCC visibility pop

#endif

/*
 * pool.c - the work-stealing pool (kanal/pool.h).
 *
 * Algorithm
 *
 * Workers. Each worker thread owns a Chase-Lev deque (deque.c). It runs
 * tasks from the bottom of its own deque; when that is empty it searches:
 * it takes a batch from the injector (the queue of tasks spawned by
 * threads outside the pool: liburcu's wfcqueue, wait-free enqueue,
 * dequeued under a try-lock, the batch beyond the first task going onto
 * the taker's deque where others can steal it) and steals from the other
 * workers' deques, for a few rounds, then parks. Every 61st task a worker
 * looks at the injector before its own deque, so that a worker busy with
 * local work does not starve outside submitters (Go does the same).
 *
 * The state word. One 64-bit atomic holds four 16-bit counters: threads
 * (worker threads started; an exited worker stays counted, as idle),
 * idle (workers registered on the idle queue: parked or about to park),
 * searching (workers in the search loop) and blocked (workers whose task
 * sleeps inside the waiter layer, between the block hook's enter and
 * leave). running = threads - idle - blocked: threads awake and not
 * blocked. The pool aims at running == N (the target):
 *
 *   - at most max(1, N/2) workers search at once (start_search refuses
 *     more: those park at once);
 *   - a worker whose deque is empty while running > N parks instead of
 *     searching (spare threads go back to sleep this way);
 *   - whenever work becomes visible while nobody searches and running < N,
 *     the thread that made it visible (a spawner, a searcher that stops,
 *     a worker that blocks) kicks: it wakes one parked worker, or if none is
 *     parked starts a spare thread (up to N + max_spare threads).
 *
 * Blocking inside tasks. A worker installs a block hook with the waiter
 * layer: a task about to sleep in waiter_park increments blocked (so
 * running drops) and kicks if there is work, which is how a spare takes its
 * place; leave decrements blocked. The pool's own parking (idle workers)
 * removes the hook meanwhile, since an idle worker is not a blocked task.
 *
 * Fibers. A task that blocks in the waiter layer (without no_fibers) does
 * not park its thread: the block hook's suspend switches to another stack
 * of the same worker, which goes on with the worker loop. The loop runs
 * on loop fibers only (run_loop; the thread's own stack just waits for
 * the end), taken from the worker's stack cache (stack.c) when a task
 * blocks. So a task runs on the stack of the loop that took it, with the
 * same stack_size whatever ran before it, a task that never blocks costs
 * no switch, and a blocked task keeps its whole stack (its loop frames
 * below it) until it resumes. The waiter moves to SEL_SUSPENDED only after the
 * switch (after_switch, on the new stack), so a decider that sees that
 * state may make the fiber runnable at once: fiber_ready appends it to the
 * worker's FIFO when it runs on that worker, else pushes it on the
 * worker's remote stack (a CAS; the worker takes the stack whole with one
 * exchange) and wakes the worker through its wakeq if it sleeps. The loop
 * and a blocking task resume runnable fibers, taking turns with queued
 * tasks (tasks_turn); a loop fiber that resumes one becomes a spare
 * (beyond LOOPS_KEEP its stack goes back to the cache). A task starts beside blocked fibers
 * only with a spare in reserve (invariant 7), so that no task sleeps on a
 * thread whose other fibers it may be waiting for. Fibers never move
 * between workers: a task resumes on its own thread. A worker with blocked
 * fibers polls for them briefly before searching (poll_ready), since their
 * partners often answer within microseconds; it sleeps registered on both
 * idleq and its wakeq. nblocked counts blocked and runnable fibers: the
 * pool is idle only when it is 0 on every worker, and a stopping worker
 * waits for it to reach 0 (a blocked task holds shutdown as a blocked
 * thread did); it starts no task meanwhile but drops what is queued on its
 * deque (drop_queued), so that its fibers, resumed first, never wait
 * behind tasks that may not start. The loop ends on the thread's own
 * stack: a loop fiber that sees the end switches to it (it waits among the
 * spares then).
 *
 * Tasks waiting for fds (netpoll.c). A worker about to search polls
 * epoll once without blocking (and a busy one every INJECTOR_EVERY
 * tasks); a worker going to sleep while tasks wait for fds sleeps in
 * epoll_wait instead of its futex if no other thread does (netpoll_park):
 * its waiter is the same, so every wake-up path above reaches it.
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
 * No lost wake-up. The protocol is the waiter layer's (register, re-check,
 * park) with the pool's two sides:
 *
 *   making work visible:  deque push or pending++ (seq_cst), then load the
 *                         state (seq_cst), kick if searching == 0 and
 *                         running < N;
 *   parking:              waitq_push(idleq) (seq_cst), then the state RMW
 *                         (idle++, searching-- for a searcher), then, if
 *                         running < N in its result, look for work (seq_cst
 *                         loads of pending and of every deque's indices):
 *                         found, or stopping: withdraw;
 *   stopping a search,    the state RMW, then as the spawner: kick if
 *   blocking:             searching == 0, running < N and there is work.
 *
 * In the total order of seq_cst operations, take a spawner's state load L
 * after its push P. If L sees a searcher, the last searcher to stop does
 * its RMW after L, hence after P, and sees the work (stop_search kicks, a
 * parking searcher withdraws) unless running >= N, when N running workers
 * will look before they park. If L sees nobody searching and running >= N,
 * the same holds. Otherwise the spawner kicks: waitq_notify_one decides an
 * undecided registered worker (registration precedes idle++, so every
 * worker L counted as idle is registered, and one that is decided already
 * is on its way to look); a worker L did not count as idle does its RMW and
 * re-check after L, so after P, and sees the work. When every thread is
 * blocked and the spare cap is reached, the work waits for a blocked task
 * to return: the cap is the documented limit.
 *
 * Linearization points: a spawn at its deque push (inside) or its
 * injector enqueue (outside); a worker becomes idle at its state RMW; the
 * pool is idle at the RMW that makes idle == threads with pending == 0.
 *
 * Invariants
 *
 *  1. threads >= idle + blocked; threads only grows, under threads_lock,
 *     except the undo of a thread that could not be started.
 *  2. A live worker counted in idle has a node on idleq: pushed before
 *     the increment, removed before the decrement. (An exited worker stays
 *     counted idle with no node: stopping is set, nobody wakes it.)
 *  3. pending >= the number of tasks in the injector: incremented before
 *     the enqueue, decremented after the dequeued tasks are on a deque.
 *  4. Every queued task runs or is dropped exactly once: it leaves the
 *     injector under inj_lock, a deque through deque.c's protocol, and
 *     the drop passes of an immediate shutdown run only after stopping.
 *  5. A joinable record is freed by whichever of runner and joiner drops
 *     the second reference, after the runner's last touch (the notify).
 *  6. A fiber is in exactly one place: running (w->cur), on the spare
 *     loops, runnable (ready list or remote stack), or blocked (its waiter
 *     undecided and SEL_SUSPENDED, or about to be marked so by the fiber
 *     switched to); nblocked counts the last two kinds. Only its own
 *     worker's thread switches to it.
 *  7. A task starts (from the loop or inside a join) on a worker with
 *     nblocked > 0 only while a spare loop is in reserve; while it runs
 *     the reserve stays (a fiber resumed from a loop leaves that loop
 *     spare; one resumed by a blocking task takes nothing). So a blocking
 *     task takes a stack only when no other fiber is blocked here, and if
 *     that fails, its thread sleeps without stranding any. A worker that
 *     cannot have the reserve only resumes its fibers (sleep_for_fibers).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "deque.h"
#include "netpoll.h"
#include "pool_internal.h"
#include "timer.h"
#include "tsan.h"

#define MAX_THREADS 4096       /* the state word's fields are 16 bits */
#define DEQUE_LOG2 8           /* 256 tasks before a deque first grows */
#define INJ_BATCH 32           /* most tasks taken from the injector at once */
#define INJECTOR_EVERY 61      /* tasks between looks at the injector first */
#define SEARCH_ROUNDS 4
#define TASK_STREAK 16         /* queued tasks before a runnable fiber, at most */
#define LEAVE_FEW 32           /* a deque this shallow is left to its owner */
#define LEAVE_GRACE_NS 20000   /* while its owner progresses this often: */
#define LEAVE_PROGRESS 1       /* a task end or a switch in each period */
#define LEAVE_MAX_NS 100000    /* and for no longer (see search) */

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
	/* The task running now (id 0: none), for kn_dump; the worker only. */
	_Atomic uint64_t running_id;
	_Atomic(const char *) running_name;

	/* Fibers (see "Fibers" above); the worker's thread only, except
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
	unsigned gen;                    /* fork_gen when made */
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

static _Thread_local struct worker *self;
/* Children of fork() between this process and its first ancestor that
 * used kanal: incremented in each child (see "fork" below). */
static _Atomic unsigned fork_gen;
/* The task running on this thread's current fiber (kn_task_id): set by
 * run_task, kept across a suspension by worker_suspend. */
static _Thread_local struct kn_task *cur_task;

/* Make t (NULL: none) this thread's current task, and show it to kn_dump. */
static void set_cur_task(struct worker *w, struct kn_task *t)
{
	cur_task = t;
	at_store_relaxed(&w->running_id, t ? t->id : 0);
	at_store_relaxed(&w->running_name, t ? t->name : NULL);
}

static void registry_add(kn_pool *p);
static void registry_remove(kn_pool *p);
static void worker_block(void *arg);
static void worker_unblock(void *arg);
static bool worker_suspend(void *arg, struct waiter *wt);
static bool worker_others_ready(void *arg);
static void *worker_main(void *arg);
static void worker_loop(struct worker *w);
static void drop_task(kn_pool *p, struct kn_task *t);

static bool on_own_worker(kn_pool *p)
{
	return self && self->pool == p;
}

/* Made before a fork that made this process: its threads are the
 * parent's, and none of them runs here. */
static bool inherited(kn_pool *p)
{
	return p->gen != at_load_relaxed(&fork_gen);
}

static void stat_inc(_Atomic uint64_t *c)
{
	at_store_relaxed(c, at_load_relaxed(c) + 1);
}

/* ---- work visibility and waking ------------------------------------- */

/* Is there a task queued anywhere? seq_cst loads: the re-check of the
 * no-lost-wake-up protocol. */
static bool pool_has_work(kn_pool *p)
{
	unsigned i, n = at_load_acquire(&p->nstarted);
	struct worker *w;

	if (at_load_seq_cst(&p->pending) > 0)
		return true;
	for (i = 0; i < n; i++) {
		w = at_load_acquire(&p->slots[i]);
		if (w && !deque_empty(&w->dq))
			return true;
	}
	return false;
}

static int worker_start(kn_pool *p, unsigned idx)
{
	struct worker *w = kn_alloc_aligned(KN_PAD, sizeof(*w));
	int err;

	if (!w)
		return ENOMEM;
	memset(w, 0, sizeof(*w));
	if (deque_init(&w->dq, DEQUE_LOG2)) {
		kn_free(w);
		return ENOMEM;
	}
	w->pool = p;
	w->index = idx;
	w->rng = 0x9e3779b97f4a7c15ull * (idx + 1);
	w->hook = (struct block_hook){ p->stack_size ? worker_suspend : NULL,
				       worker_others_ready, worker_block,
				       worker_unblock, w, timer_suspend_until };
	waitq_init(&w->wakeq);
	/* Counted before it runs, so that it sees itself among the workers
	 * (its slot stays NULL until it publishes it). */
	p->owned[idx] = w;
	at_store_release(&p->nstarted, idx + 1);
	err = thread_create(&w->thread, NULL, worker_main, w);
	if (err) {
		at_store_release(&p->nstarted, idx);
		deque_destroy(&w->dq);
		kn_free(w);
		return err;
	}
	return 0;
}

/* A spare thread, if blocked tasks hold so many threads that fewer than N
 * remain (idle ones included: those are woken, not replaced) and the cap
 * allows. It starts running: it will search. */
/*
 * Start a spare worker if the pool is short of running threads. Requests
 * are combined: each one marks spare_wanted, and whoever holds threads_lock
 * (through pthread_create, during which the new thread may itself block
 * and ask for another) loops until no request arrived meanwhile. So a
 * request that finds the lock taken is never dropped.
 */
#define pool_live(p) kn_live(p, KN_MAGIC_POOL)

static void arm_retry(kn_pool *p);

static bool start_spare(kn_pool *p)
{
	bool started = false;
	uint64_t s;

	at_store_seq_cst(&p->spare_wanted, 1);
	while (at_load_seq_cst(&p->spare_wanted)) {
		if (!lock_try(&p->threads_lock))
			return started; /* the holder will see spare_wanted */
		at_store_seq_cst(&p->spare_wanted, 0);
		s = at_load_seq_cst(&p->state);
		if (!at_load_seq_cst(&p->stopping) &&
		    st_threads(s) - st_blocked(s) < p->target &&
		    (unsigned)st_threads(s) < p->max_threads) {
			at_add_seq_cst(&p->state, ST_THREADS_ONE);
			if (worker_start(p, (unsigned)st_threads(s)) == 0) {
				started = true;
				p->retry_ns = 0;
				at_add_relaxed(&p->spares_started, 1);
			} else {
				s = at_sub_seq_cst(&p->state, ST_THREADS_ONE) - ST_THREADS_ONE;
				/* The phantom thread may have hidden the pool's
				 * idleness from the last worker to park. */
				if (st_idle(s) == st_threads(s))
					waitq_notify_all(&p->idle_waiters);
				arm_retry(p);
			}
		}
		lock_release(&p->threads_lock);
	}
	return started;
}

static void kick(kn_pool *p)
{
	if (!waitq_notify_one(&p->idleq))
		start_spare(p);
}

/*
 * Retrying a start. A spare that could not be started (the thread limit:
 * EAGAIN) may be what queued work waits for, every thread being blocked in
 * tasks that wait for that work, and no later event need come to ask
 * again. So a failed start arms a retry on kanal's timer thread after a
 * backoff (RETRY_MIN_NS, doubling up to RETRY_MAX_NS; reset by a start that
 * succeeds), which kicks if the pool is still short of running threads with
 * work queued, and fails into another retry. One retry is pending at a
 * time (a failure meanwhile asks for another: retry_again). retry_armed
 * covers the timer's entry and its fire until the fire's last touch of the
 * pool, so stop_threads unschedules it or waits for it. If the timer thread
 * cannot be started either, the next kick (a spawn, a block) tries again.
 */
#define RETRY_MIN_NS 1000000ull     /* 1 ms */
#define RETRY_MAX_NS 1000000000ull  /* 1 s */

static void kick_if_needed(kn_pool *p, uint64_t s);

/* The timer thread: try again, then arm again if a start failed meanwhile. */
static void retry_fire(struct timer_entry *e)
{
	kn_pool *p = caa_container_of(e, kn_pool, retry);
	bool again;

	if (inherited(p))
		return; /* a child's copy of the heap: no thread for it here */
	kick_if_needed(p, at_load_seq_cst(&p->state));
	lock_acquire(&p->threads_lock);
	again = p->retry_again && !at_load_relaxed(&p->stopping);
	p->retry_again = false;
	at_store_release(&p->retry_armed,
			 again && timer_add(&p->retry, kn_now() + p->retry_ns,
					    retry_fire) == 0);
	lock_release(&p->threads_lock);
}

/* Under threads_lock, after a failed start (not stopping). */
static void arm_retry(kn_pool *p)
{
	p->retry_ns = p->retry_ns ? 2 * p->retry_ns : RETRY_MIN_NS;
	if (p->retry_ns > RETRY_MAX_NS)
		p->retry_ns = RETRY_MAX_NS;
	if (at_load_relaxed(&p->retry_armed))
		p->retry_again = true;
	else
		at_store_release(&p->retry_armed,
				 timer_add(&p->retry, kn_now() + p->retry_ns,
					   retry_fire) == 0);
}

/* Stopping (no start arms a retry any more): unschedule the pending
 * retry, or wait for its fire to end. */
static void cancel_retry(kn_pool *p)
{
	struct backoff b = { 0 };

	for (;;) {
		lock_acquire(&p->threads_lock);
		if (at_load_relaxed(&p->retry_armed) && timer_remove(&p->retry))
			at_store_relaxed(&p->retry_armed, 0);
		if (!at_load_relaxed(&p->retry_armed)) {
			lock_release(&p->threads_lock);
			return;
		}
		lock_release(&p->threads_lock);
		backoff_snooze(&b);
	}
}

/* After making work visible (seq_cst): does someone need waking? */
static void notify_work(kn_pool *p)
{
	uint64_t s = at_load_seq_cst(&p->state);

	if (st_search(s) == 0 && st_running(s) < p->target)
		kick(p);
}

/* After a state RMW that may leave queued work unattended. */
static void kick_if_needed(kn_pool *p, uint64_t s)
{
	if (st_search(s) == 0 && st_running(s) < p->target && pool_has_work(p))
		kick(p);
}

/* A worker's thread stops running work (a task sleeps on it, or it waits
 * for its fibers): someone else may have to take the queued work. */
static void count_blocked(kn_pool *p)
{
	kick_if_needed(p, at_add_seq_cst(&p->state, ST_BLOCKED_ONE) + ST_BLOCKED_ONE);
}

static bool start_search(kn_pool *p)
{
	uint64_t s = at_load_relaxed(&p->state);

	do {
		if (st_search(s) >= p->max_search)
			return false;
	} while (!at_cas_weak_seq_cst(&p->state, &s, s + ST_SEARCH_ONE));
	return true;
}

static void stop_search(kn_pool *p)
{
	kick_if_needed(p, at_sub_seq_cst(&p->state, ST_SEARCH_ONE) - ST_SEARCH_ONE);
}

/* ---- fibers ------------------------------------------------------------ */

#define LOOPS_KEEP 16 /* spare loop fibers a worker keeps mapped */

static void ready_append(struct worker *w, struct fiber *f)
{
	f->next = NULL;
	if (w->ready_tail)
		w->ready_tail->next = f;
	else
		w->ready = f;
	w->ready_tail = f;
}

/* f->wake, from any thread. The worker's own thread appends to its list;
 * another pushes onto the worker's remote stack (seq_cst: the work side of
 * sleep_thread's no-lost-wake-up protocol) and wakes it if it sleeps. */
static void fiber_ready(struct fiber *f)
{
	struct worker *w = f->owner;
	struct fiber *head;

	if (self == w) {
		ready_append(w, f);
		return;
	}
	head = at_load_relaxed(&w->remote);
	do
		f->next = head;
	while (!at_cas_weak_seq_cst(&w->remote, &head, f));
	waitq_notify_one(&w->wakeq);
}

static bool has_ready(struct worker *w)
{
	return w->ready || at_load_seq_cst(&w->remote);
}

/* The oldest runnable blocked fiber, or NULL. The remote stack is taken
 * whole (no ABA) and reversed into arrival order. */
static struct fiber *take_ready(struct worker *w)
{
	struct fiber *f, *next, *tail = NULL;

	if (!w->ready && at_load_relaxed(&w->remote)) {
		f = at_xchg_acquire(&w->remote, NULL);
		for (; f; f = next) {
			next = f->next;
			f->next = w->ready;
			if (!tail)
				tail = f;
			w->ready = f;
		}
		w->ready_tail = tail;
	}
	f = w->ready;
	if (f) {
		w->ready = f->next;
		if (!w->ready)
			w->ready_tail = NULL;
		at_store_relaxed(&w->nblocked, at_load_relaxed(&w->nblocked) - 1);
	}
	return f;
}

/* In the fiber just switched to: finish what the switch left to it. A
 * fiber that blocked is marked suspended only now that its registers are
 * saved; if a decision came first, it is runnable at once. */
static void after_switch(struct worker *w)
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
static void switch_to(struct worker *w, struct fiber *to, struct waiter *wt,
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

/* A fresh loop fiber runs the worker loop from the top. When the loop ends
 * (the pool stops and no fiber is blocked), the thread must end on its own
 * stack, which then waits among the spare loops. */
static void loop_main(void *arg)
{
	struct worker *w = arg;
	struct fiber **l;

	after_switch(w);
	worker_loop(w);
	for (l = &w->loops; *l && *l != &w->native; l = &(*l)->next)
		;
	if (*l) { /* the loop ran there for want of a stack (run_loop) */
		*l = w->native.next;
		w->nloops--;
	}
	switch_to(w, &w->native, NULL, true);
}

static struct fiber *new_loop(struct worker *w)
{
	struct fiber *f = fiber_new(&w->pool->stacks, &w->stacks, loop_main, w);

	if (f) {
		f->owner = w;
		f->wake = fiber_ready;
	}
	return f;
}

/* A spare loop; mapping one here happens only with no fiber blocked
 * (invariant 7), so a failure that leaves the task asleep on the thread
 * strands nobody. */
static struct fiber *spare_loop(struct worker *w)
{
	struct fiber *f = w->loops;

	if (!f)
		return new_loop(w);
	w->loops = f->next;
	w->nloops--;
	return f;
}

/* Invariant 7: may a task start here? Blocked fibers resume only on this
 * thread, so a task that slept on the thread (no stack to switch to) would
 * strand them, and they may be what it waits for. Hence a task starts
 * beside blocked fibers only with a spare loop in reserve. */
static bool may_start_task(struct worker *w)
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
static bool tasks_turn(struct worker *w)
{
	return w->streak < TASK_STREAK && !deque_empty(&w->dq) &&
	       may_start_task(w);
}

/* A suspension found no memory for a stack: the task sleeps on its thread
 * (a spare thread takes over, up to max_spare). Counted in the stats
 * (stack_failures, by stack.c) and said once per pool on stderr, since a
 * pool whose spares are all taken this way stops starting tasks. */
static void no_stack(kn_pool *p)
{
	if (!at_xchg_acq_rel(&p->stack_warned, 1))
		fprintf(stderr, "kanal: pool \"%s\": no memory for a task stack; "
			"blocked tasks now hold their threads\n", p->name);
}

/* The block hook's suspend: run a runnable fiber, else a loop fiber, in
 * place of the blocked task. */
static bool worker_suspend(void *arg, struct waiter *wt)
{
	struct worker *w = arg;
	struct fiber *to = tasks_turn(w) ? NULL : take_ready(w);

	if (to)
		w->streak = 0;
	else
		to = spare_loop(w);
	if (!to) {
		no_stack(w->pool);
		return false;
	}
	struct kn_task *mine = cur_task;

	wt->fib = w->cur;
	at_store_relaxed(&w->nblocked, at_load_relaxed(&w->nblocked) + 1);
	set_cur_task(w, NULL);
	switch_to(w, to, wt, false);
	set_cur_task(w, mine);
	return true;
}

static bool worker_others_ready(void *arg)
{
	struct worker *w = arg;

	return has_ready(w) || !deque_empty(&w->dq);
}

/* From the worker loop: resume f. This loop fiber waits among the spares
 * (or is freed, beyond LOOPS_KEEP) until a task blocks. */
static void run_ready(struct worker *w, struct fiber *f)
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

static void free_loops(struct worker *w)
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
static bool poll_ready(struct worker *w)
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

/* Are fibers of any worker blocked (or runnable)? seq_cst: pool_idle's
 * re-check. */
static bool fibers_blocked(kn_pool *p)
{
	unsigned i, n = at_load_acquire(&p->nstarted);
	struct worker *w;

	for (i = 0; i < n; i++) {
		w = at_load_acquire(&p->slots[i]);
		if (w && at_load_seq_cst(&w->nblocked))
			return true;
	}
	return false;
}

/* ---- taking tasks ------------------------------------------------------- */

/* Record the thief for a join to leapfrog to. Only joinable tasks need
 * it: a detached record stays clean in its spawner's cache. */
static struct kn_task *took(struct worker *w, struct kn_task *t)
{
	if (at_load_relaxed(&t->state) != TASK_DETACHED)
		at_store_relaxed(&t->thief, (int32_t)w->index);
	return t;
}

/* Deque items: a joinable task is tagged so that thieves never leave it
 * to its owner (fork-join wants the other cores at once; see search). */
static void *dq_item(struct kn_task *t)
{
	uintptr_t tag = at_load_relaxed(&t->state) == TASK_DETACHED ? 0 : DEQUE_TAKE_ANYWAY;

	return (void *)((uintptr_t)t | tag);
}

static struct kn_task *dq_task(void *x)
{
	return (struct kn_task *)((uintptr_t)x & ~DEQUE_TAKE_ANYWAY);
}

static struct kn_task *dq_pop(struct worker *w)
{
	return dq_task(deque_pop(&w->dq));
}

/* A batch from the injector: the first task is returned, the rest go onto
 * w's deque (as many as fit without growing it). */
static struct kn_task *inj_take(struct worker *w)
{
	kn_pool *p = w->pool;
	struct cds_wfcq_node *node;
	struct kn_task *first = NULL, *t;
	int64_t n = at_load_relaxed(&p->pending), want, got = 0;

	if (n <= 0 || !lock_try(&p->inj_lock))
		return NULL;
	want = n / p->target + 1;
	if (want > INJ_BATCH)
		want = INJ_BATCH;
	if (want > deque_room(&w->dq) + 1)
		want = deque_room(&w->dq) + 1;
	while (got < want) {
		node = __cds_wfcq_dequeue_nonblocking(&p->inj_head, &p->inj_tail);
		if (!node || node == CDS_WFCQ_WOULDBLOCK)
			break; /* WOULDBLOCK: an enqueue is half done */
		t = caa_container_of(node, struct kn_task, link.inj);
		tsan_acquire(t);
		took(w, t);
		if (got++ == 0)
			first = t;
		else
			deque_push(&w->dq, dq_item(t)); /* fits: no growth, no failure */
	}
	lock_release(&p->inj_lock);
	if (got) {
		at_sub_seq_cst(&p->pending, got);
		if (got > 1)
			notify_work(p);
	}
	return first;
}

/* left: NULL to take any task, else where to say that a few were left to
 * their owner (see search). */
static struct kn_task *steal_from(struct worker *w, struct worker *v,
				  bool *retry, bool *left)
{
	void *x;

	switch (deque_steal(&v->dq, &x, left ? LEAVE_FEW : 0)) {
	case STEAL_OK:
		stat_inc(&w->n_steal);
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

static struct kn_task *steal_any(struct worker *w, bool *left)
{
	kn_pool *p = w->pool;
	unsigned n = at_load_acquire(&p->nstarted), i, start;
	struct worker *v;
	struct kn_task *t;
	bool retry;

	do {
		retry = false;
		start = (unsigned)(xorshift64(&w->rng) % n);
		for (i = 0; i < n; i++) {
			v = at_load_acquire(&p->slots[(start + i) % n]);
			if (v && v != w && (t = steal_from(w, v, &retry, left)))
				return t;
		}
	} while (retry);
	return NULL;
}

static struct kn_task *scan(struct worker *w, bool *left)
{
	struct kn_task *t = inj_take(w);

	return t ? t : steal_any(w, left);
}

/*
 * A few tasks on a deque are most often a group that talks to its spawner
 * and to each other (a generator and its consumer, pipeline stages, a
 * worker pool and its feeder): once the spawner's task blocks, its worker
 * runs them within microseconds, on one core, where every hand-off is a
 * fiber switch; split across cores, every hand-off crosses them, and a
 * fiber never moves. So a searcher leaves a deque of at most LEAVE_FEW
 * detached tasks to its owner while the owners keep making progress (a
 * task end or a switch in every LEAVE_GRACE_NS), for at most LEAVE_MAX_NS,
 * polling meanwhile (poll_ready) between looks at their deques. An owner
 * slower than that runs tasks long enough to be worth another core, and
 * its tasks are stolen. Joinable tasks (fork-join: tagged in the deque)
 * and deeper deques (data parallelism) are stolen from at once. Go's
 * runnext slot plays this part for one goroutine, and Go can move a
 * goroutine later; kanal cannot.
 */
static uint64_t others_progress(struct worker *w)
{
	kn_pool *p = w->pool;
	unsigned i, n = at_load_acquire(&p->nstarted);
	struct worker *v;
	uint64_t sum = 0;

	for (i = 0; i < n; i++) {
		v = at_load_acquire(&p->slots[i]);
		if (v && v != w)
			sum += at_load_relaxed(&v->n_run) + at_load_relaxed(&v->n_switch);
	}
	return sum;
}

struct leave {
	uint64_t first, since, seen; /* first == 0: nothing left yet */
};

/* May the search still leave shallow deques alone? */
static bool leave_few(struct worker *w, struct leave *l)
{
	uint64_t now, pr;

	if (!l->first)
		return true;
	now = kn_now();
	if (now - l->since < LEAVE_GRACE_NS)
		return true;
	pr = others_progress(w);
	if (pr - l->seen < LEAVE_PROGRESS || now - l->first >= LEAVE_MAX_NS)
		return false;
	l->since = now;
	l->seen = pr;
	return true;
}

static struct kn_task *search(struct worker *w)
{
	struct backoff b = { 0 };
	struct leave l = { 0 };
	struct kn_task *t;
	bool left;
	int round;

	for (round = 0;; round++) {
		left = false;
		t = scan(w, leave_few(w, &l) ? &left : NULL);
		if (t || at_load_acquire(&w->pool->stopping) || has_ready(w))
			return t;
		if (left && !l.first) {
			l.first = l.since = kn_now();
			l.seen = others_progress(w);
		}
		if (!left && round >= SEARCH_ROUNDS - 1)
			return NULL;
		if (left)
			poll_ready(w); /* not the owners' lines: each read
					* costs an owner a miss */
		else
			backoff_spin(&b);
	}
}

/* ---- parking ---------------------------------------------------------- */

/* Sleep the thread itself on wt (not a fiber switch): not counted as a
 * blocked task. */
static uint32_t sleep_thread(struct worker *w, struct waiter *wt)
{
	uint32_t v;

	waiter_set_block_hook(NULL);
	v = netpoll_park(wt); /* the thread that sleeps in epoll, if one is due */
	if (v == SEL_WAITING)
		v = waiter_park(wt, KN_FOREVER, NULL);
	waiter_set_block_hook(&w->hook);
	return v;
}

/* Wait for a fiber of this worker to become runnable, counted as a
 * blocked task (so queued work gets another thread): a stopping worker
 * whose fibers are still blocked, or one that may not start a task. */
static void sleep_for_fibers(struct worker *w)
{
	kn_pool *p = w->pool;
	struct waiter wt;
	struct wait_node n;

	waiter_init(&wt);
	n = WAIT_NODE(&wt, SEL_CASE0);
	waitq_push(&w->wakeq, &n);
	if (has_ready(w))
		waiter_decide(&wt, SEL_ABORT);
	count_blocked(p);
	sleep_thread(w, &wt);
	at_sub_seq_cst(&p->state, ST_BLOCKED_ONE);
	waitq_remove(&w->wakeq, &n);
}

/* Park on the idle queue; false if it withdrew because work (or the stop)
 * showed up during registration. */
static bool park(struct worker *w, bool searching)
{
	kn_pool *p = w->pool;
	uint64_t delta = ST_IDLE_ONE - (searching ? ST_SEARCH_ONE : 0), s;
	struct waiter wt;
	struct wait_node n, nf;
	uint32_t v = SEL_ABORT;

	waiter_init(&wt);
	n = WAIT_NODE(&wt, SEL_CASE0);
	nf = WAIT_NODE(&wt, SEL_CASE0);
	waitq_push(&p->idleq, &n);
	waitq_push(&w->wakeq, &nf);
	s = at_add_seq_cst(&p->state, delta) + delta;
	if (at_load_seq_cst(&p->stopping) || has_ready(w) ||
	    (st_running(s) < p->target && pool_has_work(p)))
		waiter_decide(&wt, SEL_ABORT);
	else if (st_idle(s) == st_threads(s))
		waitq_notify_all(&p->idle_waiters); /* the pool went idle */
	if (waiter_peek(&wt) == SEL_WAITING) {
		stat_inc(&w->n_park);
		v = sleep_thread(w, &wt);
	}
	waitq_remove(&w->wakeq, &nf);
	waitq_remove(&p->idleq, &n);
	at_sub_seq_cst(&p->state, ST_IDLE_ONE);
	return v != SEL_ABORT;
}

/* Stopping: nothing starts any more (may_start_task), so what is queued
 * here is dropped now, so that a join waiting for it (a suspended task of
 * this worker, a thread, a task on another worker) returns and lets its
 * waiter finish. Tasks that a resumed task queues during the stop go the
 * same way when the loop comes back here. Draining shutdowns leave
 * nothing. */
static void drop_queued(struct worker *w)
{
	struct kn_task *t;

	while ((t = dq_pop(w)) != NULL)
		drop_task(w->pool, t);
}

static struct kn_task *next_task(struct worker *w)
{
	kn_pool *p = w->pool;
	struct backoff b = { 0 };
	struct kn_task *t;
	bool searching;

	for (;;) {
		struct fiber *f = tasks_turn(w) ? NULL : take_ready(w);

		if (f) {
			w->streak = 0;
			run_ready(w, f);
			continue;
		}
		if (at_load_acquire(&p->stopping)) {
			drop_queued(w);
			if (!at_load_relaxed(&w->nblocked))
				return NULL;
			sleep_for_fibers(w);
			continue;
		}
		if (!may_start_task(w)) {
			sleep_for_fibers(w);
			continue;
		}
		if (++w->tick % INJECTOR_EVERY == 0) {
			netpoll_poll(); /* fd waiters get in on a busy pool too */
			if ((t = inj_take(w)) != NULL)
				return t;
		}
		t = dq_pop(w);
		if (t) {
			w->streak += has_ready(w);
			return t;
		}
		if (at_load_relaxed(&w->nblocked) && poll_ready(w))
			continue;
		if (netpoll_poll())
			continue; /* tasks waiting for fds are runnable */
		searching = st_running(at_load_relaxed(&p->state)) <= p->target &&
			    start_search(p);
		if (searching) {
			t = search(w);
			if (t) {
				stop_search(p);
				return t;
			}
		}
		if (park(w, searching) || has_ready(w)) {
			b.step = 0;
			continue;
		}
		/* Withdrew: work is visible. Take it even if searchers
		 * abound (leaving a few to a busy owner, as searchers do),
		 * or wait for the half-done enqueue behind it. */
		t = search(w);
		if (t)
			return t;
		backoff_snooze(&b);
	}
}

/* ---- running ---------------------------------------------------------- */

static void task_done(struct kn_task *t, uint32_t how)
{
	if (at_load_relaxed(&t->state) == TASK_DETACHED) {
		task_free(t);
		return;
	}
	at_store_seq_cst(&t->state, how);
	waitq_notify_all(&t->joinq);
	task_put(t);
}

static void run_task(struct worker *w, struct kn_task *t)
{
	struct kn_task *outer = cur_task; /* a join that helps runs t inside */

	set_cur_task(w, t);
	t->fn(t->arg);
	set_cur_task(w, outer);
	stat_inc(&w->n_run);
	task_done(t, TASK_DONE);
}

static void drop_task(kn_pool *p, struct kn_task *t)
{
	if (t->drop)
		t->drop(t->arg);
	at_add_relaxed(&p->dropped, 1);
	task_done(t, TASK_DROPPED);
}

static void worker_block(void *arg)
{
	struct worker *w = arg;

	count_blocked(w->pool);
}

static void worker_unblock(void *arg)
{
	struct worker *w = arg;

	at_sub_seq_cst(&w->pool->state, ST_BLOCKED_ONE);
}

static void name_thread(kn_pool *p, unsigned idx)
{
	char suffix[16], name[32];
	int k = snprintf(suffix, sizeof(suffix), "-%u", idx);

	/* Linux keeps 15 bytes: cut the prefix, not the number. */
	snprintf(name, sizeof(name), "%.*s%s", 15 - k, p->name, suffix);
	pthread_setname_np(pthread_self(), name);
}

/* Runs on whichever stack holds the loop: the thread's own at first,
 * a loop fiber after a task blocked. */
static void worker_loop(struct worker *w)
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
static void run_loop(struct worker *w)
{
	struct fiber *f = w->pool->stack_size ? new_loop(w) : NULL;

	if (f)
		switch_to(w, f, NULL, false);
	else
		worker_loop(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	kn_pool *p = w->pool;
	uint64_t s;

	self = w;
	fiber_adopt_thread(&w->native);
	w->native.owner = w;
	w->native.wake = fiber_ready;
	w->cur = &w->native;
	if (p->stack_size)
		stack_thread_init(&p->stacks);
	name_thread(p, w->index);
	at_store_release(&p->slots[w->index], w);
	waiter_set_block_hook(&w->hook);
	if (p->on_start)
		p->on_start(p, w->index, p->hook_arg);
	run_loop(w);
	/* Back on the thread's own stack, with no fiber blocked. */
	free_loops(w);
	if (p->stack_size) {
		stack_cache_flush(&p->stacks, &w->stacks);
		stack_thread_exit();
	}
	waiter_set_block_hook(NULL);
	if (p->on_stop)
		p->on_stop(p, w->index, p->hook_arg);
	self = NULL;
	/* An exited worker counts as idle for good. */
	s = at_add_seq_cst(&p->state, ST_IDLE_ONE) + ST_IDLE_ONE;
	if (st_idle(s) == st_threads(s))
		waitq_notify_all(&p->idle_waiters);
	return NULL;
}

/* ---- spawning ----------------------------------------------------------- */

static void task_init(struct kn_task *t, kn_pool *p, void (*fn)(void *),
		      void *arg, void (*drop)(void *), const char *name)
{
	t->fn = fn;
	t->arg = arg;
	t->drop = drop;
	t->pool = p;
	t->id = task_next_id();
	t->name = name;
	at_store_relaxed(&t->state, TASK_DETACHED);
	at_store_relaxed(&t->thief, -1);
}

static int submit(kn_pool *p, struct kn_task *t)
{
	if (unlikely(inherited(p)))
		return ECHILD;
	if (on_own_worker(p)) {
		if (deque_push(&self->dq, dq_item(t)))
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
		void (*drop)(void *))
{
	int err;

	task_init(t, p, fn, arg, drop, NULL);
	err = submit(p, t);
	if (err)
		task_free(t);
	return err;
}

int kn_pool_spawn_named(kn_pool *p, const char *name, void (*fn)(void *),
			void *arg)
{
	struct kn_task *t;
	int err;

	if (!pool_live(p) || !fn)
		return EINVAL;
	t = task_alloc();
	if (!t)
		return ENOMEM;
	task_init(t, p, fn, arg, NULL, name);
	err = submit(p, t);
	if (err)
		task_free(t);
	return err;
}

int kn_pool_spawn(kn_pool *p, void (*fn)(void *), void *arg)
{
	return kn_pool_spawn_named(p, NULL, fn, arg);
}

uint64_t kn_task_id(void)
{
	return cur_task ? cur_task->id : 0;
}

const char *kn_task_name(void)
{
	return !cur_task ? NULL : cur_task->name ? cur_task->name : "";
}

int kn_task_set_name(const char *name)
{
	if (!cur_task)
		return EINVAL;
	cur_task->name = name;
	at_store_relaxed(&self->running_name, name);
	return 0;
}

kn_task *kn_pool_spawn_task(kn_pool *p, void (*fn)(void *), void *arg)
{
	struct kn_task *t;
	int err;

	if (!pool_live(p) || !fn) {
		errno = EINVAL;
		return NULL;
	}
	t = task_alloc();
	if (!t)
		return NULL;
	task_init(t, p, fn, arg, NULL, NULL);
	at_store_relaxed(&t->refs, 2);
	at_store_relaxed(&t->state, TASK_PENDING);
	waitq_init(&t->joinq);
	err = submit(p, t);
	if (err) {
		task_free(t);
		errno = err;
		return NULL;
	}
	return t;
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
		waitq_wait(q, 1, task_ended, t, KN_FOREVER, NULL);
	}
}

int kn_task_join(kn_task *t)
{
	uint32_t st;

	if (!t)
		return EINVAL;
	if (inherited(t->pool) && at_load_acquire(&t->state) == TASK_PENDING)
		return ECHILD;
	if (on_own_worker(t->pool))
		help(self, t);
	st = wait_task(t);
	task_put(t);
	return st == TASK_DONE ? 0 : ECANCELED;
}

/* ---- idleness and shutdown --------------------------------------------- */

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
	while (waitq_wait(q, 1, pool_idle, p, KN_FOREVER, NULL) != SEL_ABORT)
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
		lock_acquire(&p->inj_lock);
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

static void stop_threads(kn_pool *p)
{
	unsigned i, n;

	at_store_seq_cst(&p->stopping, 1);
	waitq_notify_all(&p->idleq);
	/* No thread starts after this: start_spare checks stopping under
	 * the lock. */
	lock_acquire(&p->threads_lock);
	n = at_load_relaxed(&p->nstarted);
	lock_release(&p->threads_lock);
	cancel_retry(p);
	for (i = 0; i < n; i++)
		pthread_join(p->owned[i]->thread, NULL);
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
	registry_remove(p);
	p->magic = KN_MAGIC_DEAD;
	pool_release(p);
}

/* ---- the registry of live pools (kn_dump) ---------------------------------- */

static struct lock registry_lock = LOCK_INIT;
static kn_pool *registry;

static void registry_add(kn_pool *p)
{
	lock_acquire(&registry_lock);
	p->dump_next = registry;
	registry = p;
	lock_release(&registry_lock);
}

static void registry_remove(kn_pool *p)
{
	kn_pool **at;

	lock_acquire(&registry_lock);
	for (at = &registry; *at; at = &(*at)->dump_next) {
		if (*at == p) {
			*at = p->dump_next;
			break;
		}
	}
	lock_release(&registry_lock);
}

static void dump_pool(FILE *out, kn_pool *p)
{
	struct kn_pool_stats st;
	unsigned i;

	kn_pool_stats(p, &st);
	fprintf(out, "pool \"%s\" (%p): %u workers, %u threads, %lld queued from outside; "
		"%llu tasks run, %llu steals, %llu parks, %llu switches, %llu spares "
		"started, %llu stack bytes\n", p->name, (void *)p, st.workers, st.threads,
		(long long)at_load_relaxed(&p->pending), (unsigned long long)st.tasks_run,
		(unsigned long long)st.steals, (unsigned long long)st.parks,
		(unsigned long long)st.switches, (unsigned long long)st.spares_started,
		(unsigned long long)st.stack_bytes);
	for (i = 0; i < st.threads; i++) {
		struct worker *w = at_load_acquire(&p->slots[i]);
		uint64_t id;
		const char *name;

		if (!w)
			continue;
		id = at_load_relaxed(&w->running_id);
		name = at_load_relaxed(&w->running_name);
		fprintf(out, "  worker %u: ", i);
		if (id)
			fprintf(out, "running task %llu \"%s\"", (unsigned long long)id,
				name ? name : "");
		else
			fprintf(out, "no task running");
		fprintf(out, ", %lld queued, %llu suspended (blocked or runnable)\n",
			(long long)deque_len(&w->dq),
			(unsigned long long)at_load_relaxed(&w->nblocked));
	}
}

int kn_dump(FILE *out)
{
	kn_pool *p;

	if (!out)
		return EINVAL;
	lock_acquire(&registry_lock);
	for (p = registry; p; p = p->dump_next)
		dump_pool(out, p);
	lock_release(&registry_lock);
	fflush(out);
	return 0;
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * A child of fork() has one thread, the one that called fork: none of the
 * parent's workers. Its copies of the parent's pools are inherited: calls
 * that need their threads return ECHILD (kn_pool_free frees nothing, since
 * it cannot join them), and the default pool is forgotten, so that kn_go
 * makes the child's own. default_lock is held across the fork so that the
 * child never inherits it locked.
 */
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static kn_pool *_Atomic default_pool;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&default_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&default_lock);
}

static void fork_child(void)
{
	registry_lock = (struct lock)LOCK_INIT;
	pthread_mutex_init(&default_lock, NULL);
	at_store_relaxed(&default_pool, NULL);
	at_store_relaxed(&fork_gen, at_load_relaxed(&fork_gen) + 1);
}

static void handle_fork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
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
	pthread_once(&fork_once, handle_fork);
	p->magic = KN_MAGIC_POOL;
	p->gen = at_load_relaxed(&fork_gen);
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
	lock_acquire(&p->threads_lock);
	for (i = 0; i < n; i++) {
		err = worker_start(p, i);
		if (err)
			break;
	}
	lock_release(&p->threads_lock);
	if (i == n) {
		registry_add(p);
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
	unsigned i, n;
	struct worker *w;

	if (!pool_live(p) || !st)
		return EINVAL;
	memset(st, 0, sizeof(*st));
	n = at_load_acquire(&p->nstarted);
	for (i = 0; i < n; i++) {
		w = at_load_acquire(&p->slots[i]);
		if (!w)
			continue;
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
	st->threads = n;
	return 0;
}

kn_pool *kn_pool_current(void)
{
	return self ? self->pool : NULL;
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

int kn_go_named(const char *name, void (*fn)(void *), void *arg)
{
	kn_pool *p;

	if (!fn)
		return EINVAL;
	p = pool_default();
	return p ? kn_pool_spawn_named(p, name, fn, arg) : errno;
}

int kn_go(void (*fn)(void *), void *arg)
{
	return kn_go_named(NULL, fn, arg);
}

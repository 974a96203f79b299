/*
 * pool_worker.c - the pool's workers: work visibility and waking (the
 * state word, kicks, spare threads), parking and the worker loop
 * (pool_internal.h holds the inline helpers: notify_work, kick, run_task).
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
 * Tasks waiting for fds (netpoll.c). A worker about to search polls
 * epoll once without blocking (and a busy one every INJECTOR_EVERY
 * tasks); while such tasks exist it does not first wait for its blocked
 * fibers (poll_ready), since only a harvest readies a task waiting for an
 * fd, and that wait would put it off; a worker going to sleep while tasks wait for fds sleeps in
 * epoll_wait instead of its futex if no other thread does (netpoll_park):
 * its waiter is the same, so every wake-up path (a kick, a fiber made
 * runnable) reaches it.
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
 * Linearization points: a worker becomes idle at its state RMW; the
 * pool is idle at the RMW that makes idle == threads with pending == 0.
 *
 * Invariants 1-2 (numbered across pool*.c)
 *
 *  1. threads >= idle + blocked; threads only grows, under threads_lock,
 *     except the undo of a thread that could not be started.
 *  2. A live worker counted in idle has a node on idleq: pushed before
 *     the increment, removed before the decrement. (An exited worker stays
 *     counted idle with no node: stopping is set, nobody wakes it.)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "netpoll.h"
#include "pool_internal.h"

#define DEQUE_LOG2 8           /* 256 tasks before a deque first grows */
#define INJECTOR_EVERY 61      /* tasks between looks at the injector first */

static void worker_block(void *arg, const struct waiter *wt);
static void worker_unblock(void *arg);
static void *worker_main(void *arg);

/* ---- work visibility and waking ------------------------------------- */

/* Is there a task queued anywhere? seq_cst loads: the re-check of the
 * no-lost-wake-up protocol. */
static bool pool_has_work(kn_pool *p)
{
	struct worker *w;

	if (at_load_seq_cst(&p->pending) > 0)
		return true;
	pool_for_each_worker(p, w)
		if (!deque_empty(&w->dq))
			return true;
	return false;
}

int worker_start(kn_pool *p, unsigned idx)
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

static void arm_retry(kn_pool *p);

/*
 * Start a spare thread if blocked tasks hold so many threads that fewer
 * than N remain (idle ones included: those are woken, not replaced) and
 * the cap allows; it starts running: it will search. Requests are
 * combined: each one marks spare_wanted, and whoever holds threads_lock
 * (through pthread_create, during which the new thread may itself block
 * and ask for another) loops until no request arrived meanwhile. So a
 * request that finds the lock taken is never dropped.
 */
void start_spare(kn_pool *p)
{
	uint64_t s;

	at_store_seq_cst(&p->spare_wanted, 1);
	while (at_load_seq_cst(&p->spare_wanted)) {
		if (!lock_try(&p->threads_lock, LOCK_THREADS))
			return; /* the holder will see spare_wanted */
		at_store_seq_cst(&p->spare_wanted, 0);
		s = at_load_seq_cst(&p->state);
		if (!at_load_seq_cst(&p->stopping) &&
		    st_threads(s) - st_blocked(s) < p->target &&
		    (unsigned)st_threads(s) < p->max_threads) {
			at_add_seq_cst(&p->state, ST_THREADS_ONE);
			if (worker_start(p, (unsigned)st_threads(s)) == 0) {
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
	lock_acquire(&p->threads_lock, LOCK_THREADS);
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
		lock_acquire(&p->threads_lock, LOCK_THREADS);
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

/* ---- parking ---------------------------------------------------------- */

/* Both of a worker's own waits go through waitq_wait_by (waiter.h), so
 * the no-lost-wake-up argument of the registration is waiter.c's; the
 * pool's side of it (what the re-check reads, and the kicks) is above. */

/* Sleep the thread itself on wt (not a fiber switch): not counted as a
 * blocked task. */
static uint32_t sleep_thread(struct worker *w, struct waiter *wt)
{
	uint32_t v;

	waiter_set_block_hook(NULL);
	TRACE(trace_park(wt, true));
	at_store_relaxed(&w->asleep, 1);
	v = netpoll_park(wt); /* the thread that sleeps in epoll, if one is due */
	if (v == SEL_WAITING)
		v = waiter_park(wt, KN_FOREVER, NULL);
	at_store_relaxed(&w->asleep, 0);
	TRACE(trace_park(wt, false));
	waiter_set_block_hook(&w->hook);
	return v;
}

/* sleep_for_fibers' re-check, registered on wakeq: a fiber made runnable
 * meanwhile. Either way the thread counts as blocked from here on. */
static inline bool fibers_commit(void *arg)
{
	struct worker *w = arg;
	bool ready = has_ready(w);

	count_blocked(w->pool);
	return ready;
}

static inline uint32_t fibers_park(struct waiter *wt, void *arg)
{
	struct worker *w = arg;
	uint32_t v;

	diag_sleeps(w);
	v = sleep_thread(w, wt);
	at_sub_seq_cst(&w->pool->state, ST_BLOCKED_ONE);
	return v;
}

/* Wait for a fiber of this worker to become runnable, counted as a
 * blocked task (so queued work gets another thread): a stopping worker
 * whose fibers are still blocked, or one that may not start a task. */
static void sleep_for_fibers(struct worker *w)
{
	struct waitq *const q[] = { &w->wakeq };

	waitq_wait_by(q, 1, fibers_commit, fibers_park, w, WAIT_ON(WAIT_INTERNAL, w->pool));
}

struct parking {
	struct worker *w;
	uint64_t delta; /* to the state word: idle++, searching-- for a searcher */
	uint64_t s;     /* the state word after it */
};

/* park's re-check, registered on idleq and wakeq: the state RMW, then
 * work (or the stop) that showed up meanwhile. */
static inline bool park_commit(void *arg)
{
	struct parking *pk = arg;
	struct worker *w = pk->w;
	kn_pool *p = w->pool;
	uint64_t s = pk->s = at_add_seq_cst(&p->state, pk->delta) + pk->delta;

	if (at_load_seq_cst(&p->stopping) || has_ready(w) ||
	    (st_running(s) < p->target && pool_has_work(p)))
		return true;
	if (st_idle(s) == st_threads(s))
		waitq_notify_all(&p->idle_waiters); /* the pool went idle */
	return false;
}

/* Registered idle with no other worker running: give the pages of the
 * stacks a burst left free back to the kernel (stack.c, "Giving memory
 * back"), one arena at a time, until woken or nothing is left. Not while
 * another worker runs: that is when a burst ends, its tasks resuming and
 * ending, and a madvise (tens of microseconds, a TLB shootdown on every
 * CPU the process runs on) would slow them down. Between arenas it looks
 * at ready fds as a busy worker does; a fiber of its own made runnable
 * there withdraws the park. */
static void trim_stacks(struct worker *w, uint64_t s, struct waiter *wt)
{
	kn_pool *p = w->pool;

	if (!p->stack_size || st_running(s) != 0)
		return;
	while (waiter_peek(wt) == SEL_WAITING && stack_pool_trim(&p->stacks))
		if (netpoll_poll() && has_ready(w))
			waiter_decide(wt, SEL_ABORT);
}

/* Trim the free stacks, then sleep; SEL_ABORT unless it slept: a
 * decision before the sleep counts as a withdrawal (the caller looks for
 * work either way). */
static inline uint32_t park_sleep(struct waiter *wt, void *arg)
{
	struct parking *pk = arg;
	struct worker *w = pk->w;

	trim_stacks(w, pk->s, wt);
	if (waiter_peek(wt) != SEL_WAITING)
		return SEL_ABORT;
	stat_inc(&w->n_park);
	diag_sleeps(w);
	return sleep_thread(w, wt);
}

/* Park on the idle queue; false if it withdrew because work (or the stop)
 * showed up during registration. */
static bool park(struct worker *w, bool searching)
{
	kn_pool *p = w->pool;
	struct waitq *const q[] = { &p->idleq, &w->wakeq };
	struct parking pk = { w, ST_IDLE_ONE - (searching ? ST_SEARCH_ONE : 0), 0 };
	uint32_t v = waitq_wait_by(q, 2, park_commit, park_sleep, &pk,
				   WAIT_ON(WAIT_INTERNAL, p));

	at_sub_seq_cst(&p->state, ST_IDLE_ONE);
	return v != SEL_ABORT;
}

/* ---- the worker loop ---------------------------------------------------- */

struct kn_task *next_task(struct worker *w)
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
			/* A stop that came since the test above is handled
			 * there (its queue dropped): sleeping here, with no
			 * fiber to wake this thread, would keep it for ever
			 * (stress_pool's immediate shutdowns, rarely). */
			if (!at_load_acquire(&p->stopping))
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
		if (netpoll_poll())
			continue; /* tasks waiting for fds are runnable */
		/* Only a harvest of epoll readies a task waiting for an fd,
		 * not a partner on another worker: with such tasks about,
		 * waiting for fibers here would only put off that harvest
		 * (this worker polls, or blocks in epoll_wait as it parks). */
		if (at_load_relaxed(&w->nblocked) && !netpoll_waiting() && poll_ready(w))
			continue;
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

/* A task sleeps on its thread (no fiber switch): seq_cst after the
 * state RMW, the other half of diag_sleeps' argument. */
static void worker_block(void *arg, const struct waiter *wt)
{
	struct worker *w = arg;

	count_blocked(w->pool);
	diag_block(pool_cur_task, wt);
	if (pool_cur_task && !at_load_seq_cst(&diag_armed))
		diag_arm();
}

static void worker_unblock(void *arg)
{
	struct worker *w = arg;

	diag_unblock(pool_cur_task);
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

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	kn_pool *p = w->pool;
	uint64_t s;

	pool_self = w;
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
	pool_self = NULL;
	/* An exited worker counts as idle for good. */
	s = at_add_seq_cst(&p->state, ST_IDLE_ONE) + ST_IDLE_ONE;
	if (st_idle(s) == st_threads(s))
		waitq_notify_all(&p->idle_waiters);
	return NULL;
}

void stop_threads(kn_pool *p)
{
	unsigned i, n;

	at_store_seq_cst(&p->stopping, 1);
	waitq_notify_all(&p->idleq);
	/* No thread starts after this: start_spare checks stopping under
	 * the lock. */
	lock_acquire(&p->threads_lock, LOCK_THREADS);
	n = at_load_relaxed(&p->nstarted);
	lock_release(&p->threads_lock);
	cancel_retry(p);
	for (i = 0; i < n; i++)
		pthread_join(p->owned[i]->thread, NULL);
}

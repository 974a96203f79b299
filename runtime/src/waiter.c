/*
 * waiter.c - park/notify (internal).
 * Model: tests/model/waiter.pml, chan_close.pml (run by tests/model/check).
 *
 * Algorithm
 *
 * A waiter is one 32-bit word, sel, living on the blocked thread's stack.
 * It starts SEL_WAITING. Exactly one party decides it by a CAS away from
 * SEL_WAITING/SEL_PARKED/SEL_SUSPENDED: a notifier (with the token of the
 * node through which it found the waiter), the owner's own timeout or
 * cancellation, or the owner itself withdrawing (SEL_ABORT). The owner
 * sleeps on the futex of sel only after moving it SEL_WAITING ->
 * SEL_PARKED, so a decider knows from the value it replaced whether a
 * futex wake is needed at all.
 *
 * A fiber (a pool task, pool_fiber.c) does not sleep: the block hook switches
 * its thread to another fiber, and the scheduler moves sel SEL_WAITING ->
 * SEL_SUSPENDED once the fiber's registers are saved. A decider that
 * replaces SEL_SUSPENDED calls fib->wake instead of the futex; one that
 * replaces SEL_WAITING before that leaves the scheduler's CAS to fail, and
 * the scheduler makes the fiber runnable itself. A fiber's deadline is
 * kept through the block hook (suspend_until: a timer entry, timer.c,
 * that decides SEL_TIMEOUT), so this layer calls nothing above it. For a decider SEL_SUSPENDED is
 * SEL_PARKED with another wake; for the owner, the CAS to it and the
 * "sleep" are one step (no decision can come between them, and no
 * spurious wake after). So every fiber execution is one of the thread
 * executions that tests/model/waiter.pml explores, with the futex check
 * right after the CAS, and the model's verdict covers fibers.
 *
 * A wait queue is a FIFO of nodes guarded by a futex lock, plus a count n
 * that notifiers read without the lock. Notifying an empty queue is one
 * seq_cst load; the lock is taken only when someone waits.
 *
 * Linearization: a waiter is decided at its successful CAS; a notify that
 * finds n == 0 linearizes at that load.
 *
 * Invariants
 *
 *  1. sel leaves {WAITING, PARKED, SUSPENDED} exactly once (CAS), except
 *     CLAIMED -> token, written only by the claimer.
 *  2. The owner calls futex_wait only with the expected value PARKED, so a
 *     decision made before it sleeps makes the call return at once; a
 *     fiber is switched to again only after its decision (or a claim).
 *  3. A node is linked into at most one queue, and it is unlinked (by a
 *     notifier or by its owner, under the queue lock) before its owner's
 *     frame ends.
 *  4. A notifier unlinks a node before its owner can see the decision
 *     made through it: it decides while unlinking under the lock (notify
 *     all), or claims, unlinks, and publishes after (notify one, hand-off).
 *     So an owner decided through a node may reuse or drop it at once.
 *  5. n equals the number of linked nodes whenever the lock is free.
 *
 * No lost wake-up. The blocking side does: push (n++ under the lock, a
 * seq_cst RMW), then re-read the condition with seq_cst loads, then park.
 * The waking side does: make the condition true with a seq_cst RMW (or
 * store), then read n with a seq_cst load. In the single total order of
 * seq_cst operations either the push precedes the notifier's read of n (the
 * notifier sees the node and decides it, which either stops the park at
 * once by invariant 2 or wakes the futex) or the notifier's update precedes
 * the push, and then it precedes the waiter's re-check too, which sees the
 * condition true and withdraws. Spurious futex returns and EINTR only send
 * the owner around its loop to re-read sel. The model checked in
 * tests/model/waiter.pml covers this protocol.
 *
 * Wake after free (glibc BZ 12674): a decider may wake an owner that has
 * already seen the decision and returned; the wake then hits a futex word
 * that is gone or reused. That can only cause a spurious return of some
 * futex_wait on the same address, and every futex_wait in kanal re-checks
 * its condition. Nodes themselves are only touched under the queue lock,
 * and owners unlink (invariant 3) before returning.
 */
#include "waiter.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"

static _Thread_local const struct block_hook *block_hook;

/* ---- the locks a thread holds; Debug: calls from signal handlers ------ */

#ifdef KN_LOCKS_HELD
/* The locks this thread holds (the first HELD_MAX of them, whether taken
 * by lock_acquire or lock_try) and their ranks: for the lock order and
 * the Debug build's signal-handler check below. */
#define HELD_MAX 16
static _Thread_local struct held {
	struct lock *l;
	enum lock_rank rank;
} held[HELD_MAX];
static _Thread_local unsigned nheld;

void lock_held_add(struct lock *l, enum lock_rank rank)
{
	if (nheld < HELD_MAX)
		held[nheld] = (struct held){ l, rank };
	nheld++;
}

/* A lock not found was taken beyond HELD_MAX. */
static void held_del(struct lock *l)
{
	unsigned i, n = nheld < HELD_MAX ? nheld : HELD_MAX;

	for (i = 0; i < n; i++)
		if (held[i].l == l) {
			held[i] = held[n - 1];
			if (nheld > HELD_MAX)
				held[n - 1].l = NULL; /* the next add refills it */
			nheld--;
			return;
		}
	if (nheld > HELD_MAX)
		nheld--;
}
#else
#define held_del(l) ((void)0)
#endif

#ifdef KANAL_ASSERTS
/* Before taking l: every lock this thread holds ranks lower, or is a
 * channel's at a lower address when l is one too. */
static void order_check(struct lock *l, enum lock_rank rank)
{
	unsigned i, n = nheld < HELD_MAX ? nheld : HELD_MAX;

	for (i = 0; i < n; i++)
		KN_ASSERT(held[i].rank < rank ||
			  (rank == LOCK_CHAN && held[i].rank == LOCK_CHAN && held[i].l < l),
			  "lock order: a kanal lock taken while one of its rank or "
			  "higher is held (docs/ARCHITECTURE.md, \"Lock order\")");
}

static _Thread_local enum lock_rank queue_rank; /* 0: LOCK_WAITQ */

enum lock_rank waitq_rank(void)
{
	return queue_rank ? queue_rank : LOCK_WAITQ;
}

enum lock_rank waitq_rank_set(enum lock_rank rank)
{
	enum lock_rank old = waitq_rank();

	queue_rank = rank;
	return old;
}
#else
#define order_check(l, rank) ((void)0)
#endif

#ifdef KANAL_DEBUG_CHECKS
/*
 * A signal handler that calls kanal while the code it interrupted is inside
 * kanal can deadlock: the interrupted call may hold a lock the handler's
 * call needs, and never runs again to drop it. A Debug build aborts when a
 * thread asks for a lock it holds (held, above); and it aborts when a
 * plain thread waits inside one of its own waits, which only a handler
 * can do (a thread with a block hook runs other fibers while one waits,
 * so only threads without one are checked).
 */
static _Thread_local bool parking;

void kn_debug_fail(const char *what)
{
	static const char pre[] = "kanal: ";

	/* write(2) alone: this may run in a signal handler. */
	if (write(2, pre, sizeof(pre) - 1) >= 0 && write(2, what, strlen(what)) >= 0)
		(void)!write(2, "\n", 1);
	abort();
}

/* Before taking l: a lock this thread holds would never come. */
static void held_check(struct lock *l)
{
	unsigned i;

	for (i = 0; i < nheld && i < HELD_MAX; i++)
		if (held[i].l == l)
			kn_debug_fail("a thread asked for a kanal lock it holds: a kanal "
				      "call from a signal handler that interrupted another "
				      "(see kanal/chan.h, Signals)");
}

/* Set around the callbacks the timer thread fires (timer.c): a wait
 * there would hold every deadline of the process. */
static _Thread_local const char *no_park;

void waiter_debug_no_park(const char *why)
{
	no_park = why;
}

/* A wait that would really sleep (w undecided) where none may. */
static void no_park_check(struct waiter *w)
{
	if (no_park && waiter_peek(w) == SEL_WAITING)
		kn_debug_fail(no_park);
}

static bool park_begin(void)
{
	if (block_hook)
		return false;
	if (parking)
		kn_debug_fail("a blocking kanal call from a signal handler that "
			      "interrupted a wait of its thread (see kanal/chan.h, Signals)");
	parking = true;
	return true;
}

static void park_end(bool plain)
{
	if (plain)
		parking = false;
}
#else
#define held_check(l) ((void)0)
#define park_begin() false
#define park_end(plain) ((void)(plain))
#define no_park_check(w) ((void)(w))
#endif

/* ---- lock ------------------------------------------------------------- */

static void lock_acquire_slow(struct lock *l);

static inline void lock_take(struct lock *l)
{
	uint32_t c = 0;

	if (unlikely(!at_cas_acquire(&l->word, &c, 1)))
		lock_acquire_slow(l);
}

#ifdef KN_LOCKS_HELD
void lock_acquire_ranked(struct lock *l, enum lock_rank rank)
{
	held_check(l);
	order_check(l, rank);
	lock_take(l);
	lock_held_add(l, rank);
}
#else
void lock_acquire_unranked(struct lock *l)
{
	lock_take(l);
}
#endif

static void lock_acquire_slow(struct lock *l)
{
	struct backoff b = { 0 };
	uint32_t c = 0;
	bool won = false;

	/* Critical sections are a few pointer writes: a short spin usually
	 * wins; on one CPU it cannot. */
	while (!won && kn_ncpu() > 1 && b.step < BACKOFF_SPIN_LIMIT) {
		backoff_spin(&b);
		c = 0;
		won = at_load_relaxed(&l->word) == 0 &&
		      at_cas_acquire(&l->word, &c, 1);
	}
	if (won)
		return;
	/* Drepper's "mutex3": a sleeper marks the word contended. */
	c = at_xchg_acquire(&l->word, 2);
	while (c != 0) {
		sys_futex_wait(&l->word, 2, KN_FOREVER);
		c = at_xchg_acquire(&l->word, 2);
	}
}

void lock_release(struct lock *l)
{
	held_del(l);
	if (at_xchg_release(&l->word, 0) == 2)
		sys_futex_wake(&l->word, 1);
}

/* ---- waiter -------------------------------------------------------------- */

/* Move sel from undecided (WAITING, PARKED or SUSPENDED) to v; *prev gets
 * which. */
static bool cas_undecided(struct waiter *w, uint32_t v, uint32_t *prev)
{
	uint32_t cur = at_load_relaxed(&w->sel);

	while (cur == SEL_WAITING || cur == SEL_PARKED || cur == SEL_SUSPENDED) {
		if (at_cas_acq_rel(&w->sel, &cur, v)) {
			*prev = cur;
			return true;
		}
	}
	return false;
}

bool waiter_claim(struct waiter *w, uint32_t *prev)
{
	return cas_undecided(w, SEL_CLAIMED, prev);
}

bool waiter_decide(struct waiter *w, uint32_t token)
{
	uint32_t prev;

	if (!cas_undecided(w, token, &prev))
		return false;
	waiter_wake(wake_owed(w, prev));
	return true;
}

const char *wait_kind_name(unsigned kind)
{
	static const char *const names[WAIT_KINDS] = {
		[WAIT_NONE] = "nothing", [WAIT_INTERNAL] = "kanal",
		[WAIT_SEND] = "chan send", [WAIT_RECV] = "chan recv",
		[WAIT_SELECT] = "select", [WAIT_SEM] = "semaphore",
		[WAIT_MUTEX] = "mutex", [WAIT_RWMUTEX] = "rwmutex",
		[WAIT_COND] = "cond", [WAIT_ONCE] = "once",
		[WAIT_CTX] = "context", [WAIT_WAITGROUP] = "waitgroup",
		[WAIT_GROUP] = "group", [WAIT_JOIN] = "join",
		[WAIT_POOL_IDLE] = "pool idle", [WAIT_SLEEP] = "sleep",
		[WAIT_FD] = "fd",
	};

	return kind < WAIT_KINDS ? names[kind] : "?";
}

void waiter_set_block_hook(const struct block_hook *hook)
{
	block_hook = hook;
}

bool waiter_suspends(void)
{
	return block_hook && block_hook->suspend;
}

bool waiter_others_ready(void)
{
	return waiter_suspends() && block_hook->others_ready(block_hook->arg);
}

bool waiter_yield(void)
{
	struct waiter w;

	if (!waiter_others_ready())
		return false;
	waiter_init(&w, WAIT_ON(WAIT_NONE, NULL));
	at_store_relaxed(&w.sel, SEL_ABORT);
	return block_hook->suspend(block_hook->arg, &w);
}

/* Poll sel a little before sleeping: a partner on the other CPU often
 * answers within a microsecond, far below the cost of a futex round trip;
 * then yield a few times, which hands the CPU to the partner when it is
 * waiting for one (oversubscription) and costs little when it is not. */
static uint32_t spin_for_decision(struct waiter *w)
{
	struct poll p;
	uint32_t v = waiter_peek(w);

	if (v != SEL_WAITING)
		return v;
	poll_begin(&p, 0);
	while ((v = waiter_peek(w)) == SEL_WAITING && poll_next(&p))
		;
	poll_end(&p, v != SEL_WAITING);
	return v;
}

/* A fiber lets its thread run other fibers while it waits; SEL_WAITING if
 * it did not switch. Only a decision or a claim resumes it: a claim is
 * waited out by sleep_for_decision. A deadline is kept by whoever the
 * hook names (suspend_until: the timer thread); without one, or when it
 * cannot keep it, the thread sleeps instead. */
static uint32_t switch_for_decision(struct waiter *w, uint64_t deadline)
{
	const struct block_hook *hook = block_hook;
	uint32_t v = waiter_peek(w);
	bool switched;

	if (v != SEL_WAITING || !hook || !hook->suspend)
		return v;
	if (deadline == KN_FOREVER)
		switched = hook->suspend(hook->arg, w);
	else
		switched = hook->suspend_until &&
			   hook->suspend_until(hook, w, deadline);
	if (!switched)
		return v;
	v = at_load_acquire(&w->sel);
	return v == SEL_CLAIMED ? SEL_WAITING : v;
}

static _Atomic uint64_t sleep_word;

uint64_t waiter_sleep_word(void)
{
	return at_load_seq_cst(&sleep_word);
}

/* The threads' records (waiter.h, struct plain_wait). */
static struct lock plain_lock = LOCK_INIT;
static struct plain_wait *plain_list;
static _Thread_local struct plain_wait plain_me;
static pthread_key_t plain_key;
static bool plain_key_made;
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

void waiter_sleep_forget(void)
{
	at_store_relaxed(&sleep_word, 0);
	plain_lock = (struct lock)LOCK_INIT;
	plain_me.next = plain_me.prev = NULL;
	plain_list = plain_me.linked ? &plain_me : NULL;
}

/* A thread outside the pools waiting for something not kanal's own. */
static inline bool sleep_is_plain(const struct waiter *w, const struct block_hook *hook)
{
	return !hook && wait_kind(w->on) != WAIT_INTERNAL;
}

/* A sleep without a deadline begins (one of sleep_all, and of sleep_plain
 * for a plain one). */
static uint64_t sleep_begin(const struct waiter *w, const struct block_hook *hook)
{
	uint64_t one = SLEEP_ONE;

	if (sleep_is_plain(w, hook))
		one += SLEEP_PLAIN_ONE;
	at_add_seq_cst(&sleep_word, one);
	return one;
}

/* The thread-specific data destructor: the thread exits. */
static void plain_exit(void *arg)
{
	struct plain_wait *pw = arg;

	lock_acquire(&plain_lock, LOCK_LEAF);
	if (pw->prev)
		pw->prev->next = pw->next;
	else
		plain_list = pw->next;
	if (pw->next)
		pw->next->prev = pw->prev;
	lock_release(&plain_lock);
}

static void plain_key_make(void)
{
	plain_key_made = pthread_key_create(&plain_key, plain_exit) == 0;
}

/* This thread's record, linked at its first plain sleep; NULL if it
 * cannot be (no key: it would outlive the thread's storage). */
static struct plain_wait *plain_self(void)
{
	struct plain_wait *pw = &plain_me;

	if (likely(pw->linked))
		return pw;
	pthread_once(&plain_once, plain_key_make);
	if (!plain_key_made || pthread_setspecific(plain_key, pw))
		return NULL;
	pw->tid = gettid();
	lock_acquire(&plain_lock, LOCK_LEAF);
	pw->prev = NULL;
	pw->next = plain_list;
	if (plain_list)
		plain_list->prev = pw;
	plain_list = pw;
	lock_release(&plain_lock);
	pw->linked = true;
	return pw;
}

/* A plain sleep on w begins: its record says so (NULL: not plain). */
static struct plain_wait *plain_begin(const struct waiter *w, const struct block_hook *hook)
{
	struct plain_wait *pw = sleep_is_plain(w, hook) ? plain_self() : NULL;

	if (pw) {
		at_store_relaxed(&pw->since, kn_now_coarse());
		at_store_relaxed(&pw->on, w->on);
	}
	return pw;
}

static void plain_end(struct plain_wait *pw)
{
	if (pw)
		at_store_relaxed(&pw->on, 0);
}

void waiter_plain_each(void (*fn)(const struct plain_wait *pw, void *arg), void *arg)
{
	const struct plain_wait *pw;

	lock_acquire(&plain_lock, LOCK_LEAF);
	for (pw = plain_list; pw; pw = pw->next)
		fn(pw, arg);
	lock_release(&plain_lock);
}

static void sleep_end(uint64_t one)
{
	at_add_seq_cst(&sleep_word, SLEEP_END_ONE - one);
}

static uint32_t sleep_for_decision(struct waiter *w, uint64_t deadline)
{
	const struct block_hook *hook = block_hook;
	struct plain_wait *plain = NULL;
	bool blocked = false, slept = false;
	uint64_t counted = 0;
	uint32_t v = at_load_acquire(&w->sel);
	struct backoff b = { 0 };

	for (;;) {
		if (v == SEL_CLAIMED) {
			/* A decider is copying a value to us; it holds no
			 * futex for us, so wait it out by yielding. */
			backoff_snooze(&b);
			v = at_load_acquire(&w->sel);
			continue;
		}
		if (v != SEL_WAITING && v != SEL_PARKED)
			break;
		if (v == SEL_WAITING &&
		    !at_cas_acq_rel(&w->sel, &v, SEL_PARKED))
			continue;
		if (!slept) {
			TRACE(trace_sleep(w->on, w));
			plain = plain_begin(w, hook);
			slept = true;
		}
		if (hook && !blocked) {
			hook->enter(hook->arg, w);
			blocked = true;
		}
		if (deadline == KN_FOREVER && !counted)
			counted = sleep_begin(w, hook);
		if (sys_futex_wait(&w->sel, SEL_PARKED, deadline) == ETIMEDOUT)
			waiter_decide(w, SEL_TIMEOUT);
		v = at_load_acquire(&w->sel);
	}
	if (counted)
		sleep_end(counted);
	plain_end(plain);
	if (blocked)
		hook->leave(hook->arg);
	if (slept)
		TRACE(trace_woke(w));
	return v;
}

void waiter_watch_ctx_on(struct waiter *w, kn_ctx *ctx, struct ctx_watch *cw)
{
	cw->q = ctx_waitq(ctx);
	if (!cw->q)
		return; /* a context never cancelled: the node stays unwritten */
	cw->node = WAIT_NODE(w, SEL_CANCEL);
	waitq_push(cw->q, &cw->node);
	/* The re-check of the no-lost-wake-up argument: a cancellation that
	 * read the queue before the push has stored err before it. */
	if (ctx_done(ctx))
		waiter_decide(w, SEL_CANCEL);
}

static void (*_Atomic park_hook)(void);

void waiter_set_park_hook(void (*fn)(void))
{
	at_store_release(&park_hook, fn);
}

/* What every wait does before it may sleep. */
static void park_prepare(struct waiter *w, uint64_t deadline)
{
	void (*hook)(void) = at_load_relaxed(&park_hook);

	if (unlikely(hook))
		hook();
	if (deadline != KN_FOREVER && deadline_left(deadline) == 0)
		waiter_decide(w, SEL_TIMEOUT);
	no_park_check(w);
}

uint32_t waiter_park_suspend(struct waiter *w, uint64_t deadline, kn_ctx *ctx)
{
	struct ctx_watch cw;
	uint32_t v;

	park_prepare(w, deadline);
	waiter_watch_ctx(w, ctx, &cw);
	v = switch_for_decision(w, deadline);
	waiter_unwatch_ctx(&cw);
	return v;
}

void waiter_hold_thread(const struct waiter *w, bool start)
{
	const struct block_hook *hook = block_hook;

	if (hook && start && hook->enter)
		hook->enter(hook->arg, w);
	else if (hook && !start && hook->leave)
		hook->leave(hook->arg);
	else if (!hook && start)
		plain_begin(w, NULL);
	else if (!hook)
		plain_end(&plain_me);
}

uint32_t waiter_park(struct waiter *w, uint64_t deadline, kn_ctx *ctx)
{
	struct ctx_watch cw;
	bool plain = park_begin();
	uint32_t v;

	park_prepare(w, deadline);
	/* Watch the context before polling, so that a cancellation stops
	 * the poll too rather than only the sleep after it. */
	waiter_watch_ctx(w, ctx, &cw);
	v = switch_for_decision(w, deadline);
	if (v == SEL_WAITING)
		v = spin_for_decision(w);
	if (v == SEL_WAITING)
		v = sleep_for_decision(w, deadline);
	waiter_unwatch_ctx(&cw);
	park_end(plain);
	return v;
}

/* waitq_wait's arguments, for waitq_wait_by's single arg. */
struct wait_args {
	bool (*commit)(void *arg);
	void *arg;
	uint64_t deadline;
	kn_ctx *ctx;
};

static inline bool wait_commit(void *arg)
{
	struct wait_args *a = arg;

	return a->commit && a->commit(a->arg);
}

static inline uint32_t wait_park(struct waiter *w, void *arg)
{
	struct wait_args *a = arg;

	return waiter_park(w, a->deadline, a->ctx);
}

/* The no-lost-wake-up argument above, made once for every wait that uses
 * this or waitq_wait_by: each push precedes commit's re-check, and each
 * node stays linked until the park has returned. */
uint32_t waitq_wait(struct waitq *const qs[], unsigned n, bool (*commit)(void *arg),
		    void *arg, uint64_t deadline, kn_ctx *ctx, uint64_t on)
{
	struct wait_args a = { commit, arg, deadline, ctx };

	return waitq_wait_by(qs, n, wait_commit, wait_park, &a, on);
}

/* ---- wait queue ------------------------------------------------------------ */

void waitq_insert_locked(struct waitq *q, struct wait_node *n, bool front)
{
	KN_ASSERT(!n->linked, "waiter invariant 3: a node in one queue at once");
	n->next = front ? q->head : NULL;
	n->prev = front ? NULL : q->tail;
	if (n->prev)
		n->prev->next = n;
	else
		q->head = n;
	if (n->next)
		n->next->prev = n;
	else
		q->tail = n;
	n->linked = true;
	/* The registration store of the no-lost-wake-up argument. */
	at_add_seq_cst(&q->n, 1);
}

void waitq_unlink_locked(struct waitq *q, struct wait_node *n)
{
	KN_ASSERT(n->linked && at_load_relaxed(&q->n) > 0,
		  "waiter invariant 5: n counts the linked nodes");
	if (n->prev)
		n->prev->next = n->next;
	else
		q->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		q->tail = n->prev;
	n->linked = false;
	/* A store, not an RMW: n changes only under the lock, and only a
	 * push (the increment above) takes part in the no-lost-wake-up
	 * order; a notifier that reads the count before this store finds
	 * the node gone under the lock. */
	at_store_relaxed(&q->n, at_load_relaxed(&q->n) - 1);
}

void waitq_push(struct waitq *q, struct wait_node *n)
{
	lock_acquire(&q->lock, waitq_rank());
	waitq_push_locked(q, n);
	lock_release(&q->lock);
}

void waitq_remove(struct waitq *q, struct wait_node *n)
{
	lock_acquire(&q->lock, waitq_rank());
	if (n->linked)
		waitq_unlink_locked(q, n);
	lock_release(&q->lock);
}

/* Cheapest to wake first: a waiter still running (no call at all), then a
 * suspended fiber (a queue push), then a sleeping thread (a futex wake),
 * among the first PICK_SCAN undecided nodes: a queue of a hundred thousand
 * suspended tasks must not cost a walk over their stacks per hand-off.
 * A node whose waiter was decided through another queue (a select's other
 * cases, a parked worker's second node) is unlinked on the way: until its
 * owner runs to unlink it, every notify would take this lock for nothing.
 * Its owner unlinks under this lock too, and finds it gone (invariant 3). */
#define PICK_SCAN 8

struct wait_node *waitq_pick_locked(struct waitq *q)
{
	struct wait_node *n, *next, *suspended = NULL, *asleep = NULL;
	unsigned seen = 0;

	for (n = q->head; n && seen < PICK_SCAN; n = next) {
		uint32_t v = at_load_relaxed(&n->w->sel);

		next = n->next;
		if (v == SEL_WAITING)
			return n;
		if (v == SEL_SUSPENDED) {
			seen++;
			if (!suspended)
				suspended = n;
		} else if (v == SEL_PARKED) {
			seen++;
			if (!asleep)
				asleep = n;
		} else {
			waitq_unlink_locked(q, n);
		}
	}
	return suspended ? suspended : asleep;
}

struct wait_node *waitq_claim_one(struct waitq *q, uint32_t *prev)
{
	struct wait_node *n;

	lock_acquire(&q->lock, waitq_rank());
	/* Claim, then unlink: the owner may reuse or free the node as soon
	 * as it sees a decision, and the claim is not one yet. A pick can
	 * lose its claim to a racing decision: then pick again. */
	while ((n = waitq_pick_locked(q)) != NULL) {
		if (waiter_claim(n->w, prev)) {
			waitq_unlink_locked(q, n);
			break;
		}
	}
	lock_release(&q->lock);
	return n;
}

bool waitq_notify_one_slow(struct waitq *q)
{
	uint32_t prev = SEL_WAITING;
	struct wait_node *n = waitq_claim_one(q, &prev);

	/* Published outside the lock, so the woken thread does not at once
	 * block on it; the futex word may be gone after the store (see the
	 * essay). */
	if (n)
		waiter_publish(n->w, n->token, prev);
	return n != NULL;
}

void waitq_notify_all(struct waitq *q)
{
	struct wait_node *n;

	if (at_load_seq_cst(&q->n) == 0)
		return;
	lock_acquire(&q->lock, waitq_rank());
	while ((n = q->head) != NULL) {
		waitq_unlink_locked(q, n); /* before deciding: invariant 4 */
		waiter_decide(n->w, n->token);
	}
	lock_release(&q->lock);
}

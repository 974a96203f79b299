/*
 * sync.c - task-aware mutex, rwmutex, condition variable and once.
 * Model: tests/model/mutex.pml (run by tests/model/check).
 *
 * Every wait goes through the waiter layer (waiter.h): a pool task is
 * suspended as a fiber, a plain thread parks on its futex. Each object is
 * a state word plus a wait queue (a FIFO of nodes on the waiters' stacks
 * under the queue's lock); a zeroed object is a valid, free one.
 *
 * ---- kn_mutex -----------------------------------------------------------
 *
 * Algorithm (Go's sync.Mutex, with the queue lock serialising the slow
 * paths). The state word has four bits:
 *
 *   LOCKED   someone holds the mutex
 *   WOKEN    a waiter was woken to retry and has not yet retried; an unlock
 *            then wakes nobody else
 *   HANDOFF  starvation mode: an unlock hands the mutex to the oldest
 *            waiter without ever clearing LOCKED
 *   WAITERS  the queue holds nodes
 *
 *   lock     CAS 0 -> LOCKED. Else spin briefly (not on one CPU, not while
 *            other fibers of this thread are runnable: the holder may be
 *            one), taking the mutex whenever LOCKED is clear, even with
 *            WAITERS set (newcomers may barge in normal mode). Then, under
 *            the queue lock, take it if LOCKED is clear, else set WAITERS
 *            (and HANDOFF if this waiter has waited > 1 ms and was woken
 *            before) with a CAS and queue: at the tail the first time, at
 *            the head after a wake (it keeps its place). Park.
 *              HANDED: the mutex is ours.
 *              RETRY: we own WOKEN; spin and queue again as above, clearing
 *                WOKEN in the CAS that takes the mutex or queues us.
 *              TIMEOUT / CANCEL: withdraw (unlink; if the queue is empty,
 *                clear WAITERS and HANDOFF).
 *            A woken waiter whose deadline has passed (or whose context is
 *            done) tries once more and otherwise gives WOKEN up with a CAS
 *            that requires LOCKED; it never leaves a free mutex behind.
 *   unlock   CAS LOCKED -> 0. Else, if WAITERS is clear or WOKEN is set,
 *            clear LOCKED with a CAS. Else, under the queue lock, claim the
 *            oldest undecided waiter (unlinking decided ones on the way)
 *            and, in one CAS: in HANDOFF mode keep LOCKED (it is the
 *            waiter's now), clearing HANDOFF if the queue is left empty or
 *            the waiter waited < 1 ms; in normal mode clear LOCKED and set
 *            WOKEN. Clear WAITERS (and HANDOFF) if the queue is empty.
 *            After the queue lock, publish HANDED or RETRY to the waiter.
 *
 * While the queue lock is held and LOCKED is set, only one change of the
 * word can come from outside: a woken waiter giving WOKEN up. So the
 * unlock's decision, made from the word it read, stays valid, and its CAS
 * is retried only to carry that change along.
 *
 * Linearization: a lock at the CAS that sets LOCKED (fast, spin or under
 * the queue lock), or, handed over, at the unlock's CAS that keeps LOCKED
 * for it; an unlock at the CAS that clears LOCKED, or that hands over; a
 * failed lock at the decision of its waiter (timeout, cancel), or at the
 * CAS with which a woken waiter gives WOKEN up.
 *
 * Invariants (whenever the queue lock is free)
 *
 *  1. WAITERS is set iff the queue is non-empty. (Only queue lock holders
 *     change WAITERS or the queue.)
 *  2. HANDOFF implies LOCKED and WAITERS, and not WOKEN. (HANDOFF is set
 *     by a waiter that queues because LOCKED is set, in the CAS that drops
 *     its WOKEN; an unlock in HANDOFF mode keeps LOCKED unless the queue
 *     is empty, and then clears HANDOFF.)
 *  3. At most one party owns WOKEN: the waiter an unlock woke with RETRY.
 *     WOKEN is set only by such an unlock (the only one that may run: it
 *     holds LOCKED) and cleared only by its owner.
 *  4. No lost wake-up: if WAITERS is set, then LOCKED or WOKEN is set.
 *     A waiter queues only with LOCKED set (its CAS checks it); LOCKED
 *     is cleared with WAITERS set only by an unlock that sets WOKEN, or
 *     (with WOKEN already set) by one that leaves it; WOKEN's owner clears
 *     it only in a CAS that sets LOCKED or finds it set. So a holder that
 *     unlocks later, or the owner of WOKEN, always comes back for the
 *     queue.
 *  5. The queue is sorted by the time each waiter first queued (since),
 *     and a woken waiter out of the queue is older than every queued one.
 *     (Newcomers append with the current time; by 3 only one woken waiter
 *     is out at a time in normal mode, it was the head, and it goes back
 *     to the head. In HANDOFF mode nobody is woken with RETRY.)
 *  6. A node leaves the queue once, under the queue lock: claimed by an
 *     unlock, which publishes to it only after unlocking the queue, or
 *     unlinked decided (timed out, cancelled), by an unlock or by its
 *     owner's withdrawal.
 *
 * Fairness. By 5, an unlock in HANDOFF mode serves waiters in the order
 * they first queued, and newcomers cannot take the mutex (LOCKED stays
 * set, 2). A waiter W that has waited more than 1 ms: every waiter ahead
 * of W is older; when W reaches the head and is woken (normal mode wakes
 * the head whenever it wakes anybody), W either takes the mutex or
 * re-queues at the head with HANDOFF set, and the next unlock hands the
 * mutex to W. HANDOFF ends only at a waiter younger than 1 ms, i.e. after
 * every older waiter was served.
 *
 * ---- kn_rwmutex ---------------------------------------------------------
 *
 * The state word holds WLOCKED (a writer holds it), QUEUED (the queue is
 * non-empty) and the reader count in the bits above.
 *
 *   rlock    fetch_add(READER); done if neither WLOCKED nor QUEUED was
 *            set. Else the add was only transient: undo it as a runlock
 *            does, then take or queue under the queue lock.
 *   runlock  fetch_sub(READER); the reader that leaves the count at 0 with
 *            QUEUED set serves the queue.
 *   lock     CAS 0 -> WLOCKED; else take or queue under the queue lock.
 *   unlock   CAS WLOCKED -> 0; else clear WLOCKED with a CAS, and serve
 *            the queue if QUEUED was set.
 *   take or queue (queue lock held): take it with a CAS if the queue is
 *            empty and it fits (no writer; a writer also needs no reader),
 *            else set QUEUED with a CAS and append the node. Park; a grant
 *            is CASE0; a timeout or cancellation unlinks the node and
 *            serves the queue (the requests behind it may fit now).
 *   serve    (queue lock held) grant the head requests that fit, in order
 *            (readers while no writer holds; a writer when nobody does),
 *            claiming each waiter (a decided one is dropped) and adding its
 *            share to the word; clear QUEUED once the queue is empty;
 *            publish the grants after unlocking.
 *
 * Linearization: a fast rlock at its add, a fast lock at its CAS; a queued
 * request at the add its server made for it; a runlock at its sub, an
 * unlock at the CAS or sub that clears WLOCKED.
 *
 *  7. QUEUED is set iff the queue is non-empty, whenever its lock is free.
 *  8. A reader is inside only if its add saw neither WLOCKED nor QUEUED, or
 *     a server granted it; a writer only if WLOCKED was set for it with no
 *     reader inside. (A transient add is undone before its reader waits.)
 *  9. No lost wake-up: a request queues only when it does not fit, with a
 *     CAS on the word; whatever later makes it fit (the last reader
 *     leaving, the writer unlocking, a request ahead withdrawing) changes
 *     the word after that CAS, finds QUEUED, and serves under the lock.
 *
 * ---- kn_cond, kn_once ---------------------------------------------------
 *
 * A cond is a wait queue: wait registers (waitq_wait) and unlocks the
 * mutex as its commit step, after the registration, so a signaller that
 * takes the mutex after it (or that is ordered after the registration
 * otherwise) sees the node; signal is waitq_notify_one, broadcast
 * waitq_notify_all. A waiter that times out races the signal on its
 * waiter's CAS: the signal then picks another waiter (waitq_notify_one
 * claims), so no signal is lost to a timeout.
 *
 * A once goes NEW -> RUNNING (CAS, by the caller that runs fn) -> DONE
 * (seq_cst store, then notify_all). Waiters wait with waitq_wait, whose
 * commit re-reads the state (seq_cst): the waiter layer's no-lost-wake-up
 * argument (waiter.c).
 */
#include "sync_internal.h"

#include "debug.h"

#ifdef KANAL_DEBUG_CHECKS
#include <unistd.h>

#include "kanal/pool.h"
#endif

/* The error of a wait that the waiter layer ended without a grant. */
static inline int wait_error(uint32_t sel)
{
	return sel == SEL_CANCEL ? ECANCELED : ETIMEDOUT;
}

/* The checks every waiting call makes before it tries: a context already
 * done fails before anything else. */
static inline int wait_precheck(kn_ctx *ctx)
{
	return ctx && ctx_done(ctx) ? ECANCELED : 0;
}

static inline bool deadline_passed(uint64_t deadline)
{
	return deadline != KN_FOREVER && deadline_left(deadline) == 0;
}

/* ---- kn_mutex ---------------------------------------------------------- */

#define LOCKED 1u
#define WOKEN 2u
#define HANDOFF 4u
#define WAITERS 8u

/* A waiter older than this gets the mutex handed to it (Go's 1 ms). */
#define STARVE_NS 1000000u

/* Tokens a mutex waiter is decided with. */
#define RETRY SEL_CASE0
#define HANDED (SEL_CASE0 + 1)


/*
 * Owners (Debug builds). Go lets any goroutine unlock a sync.Mutex; kanal's
 * Debug builds do not: an unlock by a task or thread other than the one
 * that locked is nearly always a bug (a lock taken in one task and let go
 * in another it handed the work to can be a kn_sem(1) instead), and it
 * aborts with a message. The holder is kept in the padding word after the
 * state: 31 bits of the task id (kn_task_id), or the thread's kernel id
 * with the top bit set for a thread outside the pools; 0 while free, and
 * for a mutex locked before it could be recorded. Release builds never
 * touch it.
 */
#ifdef KANAL_DEBUG_CHECKS
static uint32_t owner_self(void)
{
	static _Thread_local uint32_t tid;
	uint64_t id = kn_task_id();

	if (id)
		return (uint32_t)(id & 0x7fffffffu) ? (uint32_t)(id & 0x7fffffffu) : 1;
	if (!tid)
		tid = 0x80000000u | (uint32_t)gettid();
	return tid;
}

static void owner_take(struct mutex *m)
{
	at_store_relaxed(&m->owner, owner_self());
}

/* Before an unlock lets m go; a free m (owner 0) is the unlock's own
 * EINVAL. */
static void owner_drop(struct mutex *m)
{
	uint32_t o = at_load_relaxed(&m->owner);

	if (o && o != owner_self())
		kn_debug_fail("kn_mutex_unlock by a task or thread that does not hold "
			      "the mutex (Go allows it; kanal's Debug builds do not: "
			      "see kanal/sync.h)");
	at_store_relaxed(&m->owner, 0);
}
#else
#define owner_take(m) ((void)(m))
#define owner_drop(m) ((void)(m))
#endif

/* A lock call that waits. */
struct locker {
	struct waiter w;
	struct wait_node node;
	uint64_t since; /* when it first queued; 0 before */
	bool woken;     /* it owns WOKEN */
};

/* Take m if LOCKED is clear (also while others wait: in HANDOFF mode
 * LOCKED stays set, invariant 2), dropping WOKEN if it is ours. */
static bool mutex_take(struct mutex *m, uint32_t *s, bool woken)
{
	uint32_t drop = woken ? WOKEN : 0;

	while (!(*s & LOCKED)) {
		KN_ASSERT(!(*s & HANDOFF), "sync invariant 2: HANDOFF implies LOCKED");
		if (at_cas_acquire(&m->state, s, (*s | LOCKED) & ~drop))
			return true;
	}
	return false;
}

/* One try, then a short spin: a critical section is usually short, and
 * its holder runs on another CPU. Not on one CPU, and not while other
 * fibers of this thread are runnable (the holder may be one of them). */
static bool mutex_spin(struct mutex *m, bool woken)
{
	struct backoff b = { 0 };
	uint32_t s = at_load_relaxed(&m->state);

	if (mutex_take(m, &s, woken))
		return true;
	if (kn_ncpu() == 1 || waiter_others_ready())
		return false;
	while (b.step < BACKOFF_SPIN_LIMIT && !(s & HANDOFF)) {
		backoff_spin(&b);
		s = at_load_relaxed(&m->state);
		if (mutex_take(m, &s, woken))
			return true;
	}
	return false;
}

/* With the queue lock: take m (false) or register l (true). */
static bool mutex_take_or_queue_locked(struct mutex *m, struct locker *l,
				       bool starving)
{
	uint32_t s = at_load_relaxed(&m->state);
	uint32_t set = WAITERS | (starving ? HANDOFF : 0);
	uint32_t drop = l->woken ? WOKEN : 0;
	bool requeue = l->woken;

	for (;;) {
		if (mutex_take(m, &s, l->woken))
			return false;
		if (at_cas_relaxed(&m->state, &s, (s | set) & ~drop))
			break;
	}
	waitq_insert_locked(&m->q, &l->node, requeue); /* invariant 5 */
	l->woken = false;
	return true;
}

/* A woken waiter out of time: take m if it is free, else give WOKEN back
 * (the holder's unlock then wakes the next waiter: invariant 4). */
static bool mutex_give_up_woken(struct mutex *m)
{
	uint32_t s = at_load_relaxed(&m->state);

	for (;;) {
		if (mutex_take(m, &s, true))
			return true;
		if (at_cas_relaxed(&m->state, &s, s & ~WOKEN))
			return false;
	}
}

/* A timed-out or cancelled waiter leaves the queue. */
static void mutex_withdraw(struct mutex *m, struct wait_node *n)
{
	uint32_t s;

	waitq_lock(&m->q);
	if (n->linked)
		waitq_unlink_locked(&m->q, n);
	if (!m->q.head) {
		s = at_load_relaxed(&m->state);
		while ((s & (WAITERS | HANDOFF)) &&
		       !at_cas_relaxed(&m->state, &s, s & ~(WAITERS | HANDOFF)))
			;
	}
	waitq_unlock(&m->q);
}

static int mutex_lock_slow(struct mutex *m, uint64_t deadline, kn_ctx *ctx)
{
	struct locker l = { .since = 0, .woken = false };
	uint32_t sel;
	bool starving, queued;

	l.node = WAIT_NODE(&l.w, RETRY);
	l.node.data = &l.since;
	for (;;) {
		if (mutex_spin(m, l.woken))
			return 0;
		if (deadline_passed(deadline) || (ctx && ctx_done(ctx))) {
			if (l.woken && mutex_give_up_woken(m))
				return 0;
			return deadline_passed(deadline) ? ETIMEDOUT : ECANCELED;
		}
		starving = l.woken && kn_now() - l.since > STARVE_NS;
		if (!l.since)
			l.since = kn_now();
		waiter_init(&l.w);
		waitq_lock(&m->q);
		queued = mutex_take_or_queue_locked(m, &l, starving);
		waitq_unlock(&m->q);
		if (!queued)
			return 0;
		sel = waiter_park(&l.w, deadline, ctx);
		if (sel == HANDED)
			return 0;
		if (sel != RETRY) {
			mutex_withdraw(m, &l.node);
			return wait_error(sel);
		}
		l.woken = true;
	}
}

static int mutex_lock(kn_mutex *km, uint64_t deadline, kn_ctx *ctx)
{
	struct mutex *m = mutex_of(km);
	uint32_t s = 0;
	int err;

	if (unlikely(!m))
		return EINVAL;
	if (unlikely((err = wait_precheck(ctx)) != 0))
		return err;
	if (likely(at_cas_acquire(&m->state, &s, LOCKED)) ||
	    (err = mutex_lock_slow(m, deadline, ctx)) == 0)
		owner_take(m);
	return err;
}

int kn_mutex_lock(kn_mutex *m)
{
	return mutex_lock(m, KN_FOREVER, NULL);
}

int kn_mutex_lock_until(kn_mutex *m, uint64_t deadline)
{
	return mutex_lock(m, deadline, NULL);
}

int kn_mutex_lock_ctx(kn_mutex *m, kn_ctx *ctx)
{
	return mutex_lock(m, KN_FOREVER, ctx);
}

int kn_mutex_try_lock(kn_mutex *km)
{
	struct mutex *m = mutex_of(km);
	uint32_t s;

	if (unlikely(!m))
		return EINVAL;
	s = at_load_relaxed(&m->state);
	if (!mutex_take(m, &s, false))
		return EAGAIN;
	owner_take(m);
	return 0;
}

/* With the queue lock: claim the oldest undecided waiter, unlinking it
 * and the decided ones before it (invariant 6). NULL if there is none. */
static struct wait_node *claim_oldest_locked(struct waitq *q, uint32_t *prev)
{
	struct wait_node *n;

	while ((n = q->head) != NULL) {
		waitq_unlink_locked(q, n);
		if (waiter_claim(n->w, prev))
			return n;
	}
	return NULL;
}

/* Unlock with waiters queued and nobody woken: wake the oldest (normal
 * mode) or hand it the mutex (HANDOFF). */
static void mutex_unlock_wake(struct mutex *m)
{
	struct wait_node *n = NULL;
	uint32_t s, next, prev = SEL_WAITING;
	bool handoff, young = false;

	waitq_lock(&m->q);
	s = at_load_relaxed(&m->state);
	KN_ASSERT((s & LOCKED) && !(s & WAITERS) == !m->q.head,
		  "sync invariant 1: WAITERS iff the queue holds nodes");
	handoff = s & HANDOFF;
	if (handoff || !(s & WOKEN))
		n = claim_oldest_locked(&m->q, &prev);
	if (n && handoff)
		young = kn_now() - *(uint64_t *)n->data < STARVE_NS;
	do {
		next = s;
		if (!m->q.head || young)
			next &= ~HANDOFF;
		if (!m->q.head)
			next &= ~WAITERS;
		if (!(n && handoff))
			next &= ~LOCKED;
		if (n && !handoff)
			next |= WOKEN;
	} while (!at_cas_release(&m->state, &s, next));
	waitq_unlock(&m->q);
	if (n)
		waiter_publish(n->w, handoff ? HANDED : RETRY, prev);
}

int kn_mutex_unlock(kn_mutex *km)
{
	struct mutex *m = mutex_of(km);
	uint32_t s = LOCKED;

	if (unlikely(!m))
		return EINVAL;
	owner_drop(m);
	if (likely(at_cas_release(&m->state, &s, 0)))
		return 0;
	for (;;) {
		if (!(s & LOCKED)) {
			kn_misuse("kn_mutex_unlock of a mutex that is not locked", m);
			return EINVAL;
		}
		if ((s & WAITERS) && !(s & WOKEN))
			break;
		/* Nobody to wake, or a woken waiter will look again. */
		if (at_cas_release(&m->state, &s, s & ~LOCKED))
			return 0;
	}
	mutex_unlock_wake(m);
	return 0;
}

int kn_mutex_init(kn_mutex *km)
{
	struct mutex *m = mutex_of(km);

	if (!m)
		return EINVAL;
	at_store_relaxed(&m->state, 0);
	at_store_relaxed(&m->owner, 0);
	waitq_init(&m->q);
	return 0;
}

int kn_mutex_destroy(kn_mutex *km)
{
	struct mutex *m = mutex_of(km);

	if (!m)
		return EINVAL;
	if (at_load_acquire(&m->state) != 0 || !waitq_empty(&m->q)) {
		kn_misuse("kn_mutex_destroy of a mutex that is locked or waited on", m);
		return EBUSY;
	}
	return 0;
}

/* ---- kn_rwmutex --------------------------------------------------------- */

#define WLOCKED 1u
#define QUEUED 2u
#define READER 4u
#define READERS(s) ((s) >> 2)


/* A queued request, on the waiter's stack. */
struct rw_request {
	bool writer;
	uint32_t prev; /* the waiter's state when claimed */
};

static inline uint32_t rw_share(bool writer)
{
	return writer ? WLOCKED : READER;
}

/* Could a request be granted on s, queue aside? */
static inline bool rw_fits(uint32_t s, bool writer)
{
	return !(s & WLOCKED) && (!writer || READERS(s) == 0);
}

/* With the lock: claim the head requests that fit, in order, add their
 * shares to the word, and return them as a list for rw_publish(); clear
 * QUEUED once the queue is empty (invariant 7). */
static struct wait_node *rw_serve_locked(struct rwmutex *rw)
{
	struct wait_node *head, *granted = NULL, **tail = &granted;
	uint32_t s = at_load_relaxed(&rw->state);

	while ((head = rw->q.head) != NULL) {
		struct rw_request *r = head->data;

		if (!rw_fits(s, r->writer))
			break;
		waitq_unlink_locked(&rw->q, head);
		if (!waiter_claim(head->w, &r->prev))
			continue; /* timed out or cancelled: nothing to give */
		s = at_add_acq_rel(&rw->state, rw_share(r->writer)) +
		    rw_share(r->writer);
		head->next = NULL;
		*tail = head;
		tail = &head->next;
	}
	while (!rw->q.head && (s & QUEUED))
		at_cas_acq_rel(&rw->state, &s, s & ~QUEUED);
	KN_ASSERT(!(s & QUEUED) == !rw->q.head, "sync invariant 7: QUEUED iff queued");
	return granted;
}

/* After unlocking: hand the grants over; the waiters may return at once,
 * so each node is read before its publish. */
static void rw_publish(struct wait_node *granted)
{
	while (granted) {
		struct wait_node *n = granted;

		granted = n->next;
		waiter_publish(n->w, SEL_CASE0, ((struct rw_request *)n->data)->prev);
	}
}

static void rw_serve(struct rwmutex *rw, struct wait_node *leaving)
{
	struct wait_node *granted;

	waitq_lock(&rw->q);
	if (leaving && leaving->linked)
		waitq_unlink_locked(&rw->q, leaving);
	granted = rw_serve_locked(rw);
	waitq_unlock(&rw->q);
	rw_publish(granted);
}

/* Drop a reader's share; the last reader out serves a queued writer. */
static int rw_reader_leave(struct rwmutex *rw)
{
	uint32_t old = at_sub_release(&rw->state, READER);

	if (unlikely(READERS(old) == 0)) {
		at_add_relaxed(&rw->state, READER);
		kn_misuse("kn_rwmutex_runlock of a rwmutex no reader holds", rw);
		return EINVAL;
	}
	if (unlikely((old & QUEUED) && READERS(old) == 1))
		rw_serve(rw, NULL);
	return 0;
}

/* With the lock: take the lock (false) or queue node (true). */
static bool rw_take_or_queue_locked(struct rwmutex *rw, struct wait_node *node,
				    bool writer)
{
	uint32_t s = at_load_relaxed(&rw->state);

	for (;;) {
		if (!(s & QUEUED) && rw_fits(s, writer)) {
			if (at_cas_acquire(&rw->state, &s, s + rw_share(writer)))
				return false;
		} else if (at_cas_relaxed(&rw->state, &s, s | QUEUED)) {
			break;
		}
	}
	waitq_push_locked(&rw->q, node);
	return true;
}

static int rw_lock_slow(struct rwmutex *rw, bool writer, uint64_t deadline,
			kn_ctx *ctx)
{
	struct rw_request r = { .writer = writer };
	struct waiter w;
	struct wait_node node = WAIT_NODE(&w, SEL_CASE0);
	uint32_t sel;
	bool queued;

	waiter_init(&w);
	node.data = &r;
	waitq_lock(&rw->q);
	queued = rw_take_or_queue_locked(rw, &node, writer);
	waitq_unlock(&rw->q);
	if (!queued)
		return 0;
	sel = waiter_park(&w, deadline, ctx);
	if (sel == SEL_CASE0)
		return 0; /* granted: the server unlinked node */
	rw_serve(rw, &node);
	return wait_error(sel);
}

/* Take the lock without waiting; a reader's add is kept only if it saw
 * neither a writer nor a queue (invariant 8). */
static bool rw_try(struct rwmutex *rw, bool writer)
{
	uint32_t s = 0;

	if (writer)
		return at_cas_acquire(&rw->state, &s, WLOCKED);
	s = at_add_acquire(&rw->state, READER);
	if (likely(!(s & (WLOCKED | QUEUED))))
		return true;
	rw_reader_leave(rw);
	return false;
}

static int rw_lock(kn_rwmutex *krw, bool writer, uint64_t deadline, kn_ctx *ctx)
{
	struct rwmutex *rw = rwmutex_of(krw);
	int err;

	if (unlikely(!rw))
		return EINVAL;
	if (unlikely((err = wait_precheck(ctx)) != 0))
		return err;
	if (likely(rw_try(rw, writer)))
		return 0;
	if (deadline_passed(deadline))
		return ETIMEDOUT;
	return rw_lock_slow(rw, writer, deadline, ctx);
}

int kn_rwmutex_rlock(kn_rwmutex *rw)
{
	return rw_lock(rw, false, KN_FOREVER, NULL);
}

int kn_rwmutex_rlock_until(kn_rwmutex *rw, uint64_t deadline)
{
	return rw_lock(rw, false, deadline, NULL);
}

int kn_rwmutex_rlock_ctx(kn_rwmutex *rw, kn_ctx *ctx)
{
	return rw_lock(rw, false, KN_FOREVER, ctx);
}

int kn_rwmutex_lock(kn_rwmutex *rw)
{
	return rw_lock(rw, true, KN_FOREVER, NULL);
}

int kn_rwmutex_lock_until(kn_rwmutex *rw, uint64_t deadline)
{
	return rw_lock(rw, true, deadline, NULL);
}

int kn_rwmutex_lock_ctx(kn_rwmutex *rw, kn_ctx *ctx)
{
	return rw_lock(rw, true, KN_FOREVER, ctx);
}

int kn_rwmutex_try_rlock(kn_rwmutex *rw)
{
	return !rw ? EINVAL : rw_try(rwmutex_of(rw), false) ? 0 : EAGAIN;
}

int kn_rwmutex_try_lock(kn_rwmutex *rw)
{
	return !rw ? EINVAL : rw_try(rwmutex_of(rw), true) ? 0 : EAGAIN;
}

int kn_rwmutex_runlock(kn_rwmutex *rw)
{
	return rw ? rw_reader_leave(rwmutex_of(rw)) : EINVAL;
}

int kn_rwmutex_unlock(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint32_t s = WLOCKED;

	if (unlikely(!rw))
		return EINVAL;
	if (likely(at_cas_release(&rw->state, &s, 0)))
		return 0;
	do {
		if (!(s & WLOCKED)) {
			kn_misuse("kn_rwmutex_unlock of a rwmutex no writer holds", rw);
			return EINVAL;
		}
	} while (!at_cas_release(&rw->state, &s, s & ~WLOCKED));
	/* Besides transient reader adds, a queue: serve it (invariant 9). */
	if (s & QUEUED)
		rw_serve(rw, NULL);
	return 0;
}

int kn_rwmutex_init(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);

	if (!rw)
		return EINVAL;
	at_store_relaxed(&rw->state, 0);
	waitq_init(&rw->q);
	return 0;
}

int kn_rwmutex_destroy(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);

	if (!rw)
		return EINVAL;
	if (at_load_acquire(&rw->state) != 0 || !waitq_empty(&rw->q)) {
		kn_misuse("kn_rwmutex_destroy of a rwmutex that is locked or waited on", rw);
		return EBUSY;
	}
	return 0;
}

/* ---- kn_cond -------------------------------------------------------------- */


/* waitq_wait's commit: the wait is registered, now let the mutex go (its
 * next holder's signal finds the node). */
static bool cond_unlock(void *m)
{
	kn_mutex_unlock(m);
	return false;
}

static int cond_wait(kn_cond *kc, kn_mutex *m, uint64_t deadline, kn_ctx *ctx)
{
	struct cond *c = cond_of(kc);
	struct waitq *q[1];
	uint32_t sel;
	int err;

	if (unlikely(!c || !m))
		return EINVAL;
	if (!(at_load_relaxed(&mutex_of(m)->state) & LOCKED)) {
		kn_misuse("kn_cond_wait with a mutex that is not locked", m);
		return EINVAL;
	}
	if ((err = wait_precheck(ctx)) != 0)
		return err;
	if (deadline_passed(deadline))
		return ETIMEDOUT;
	q[0] = &c->q;
	sel = waitq_wait(q, 1, cond_unlock, m, deadline, ctx);
	kn_mutex_lock(m);
	return sel == SEL_CASE0 ? 0 : wait_error(sel);
}

int kn_cond_wait(kn_cond *c, kn_mutex *m)
{
	return cond_wait(c, m, KN_FOREVER, NULL);
}

int kn_cond_wait_until(kn_cond *c, kn_mutex *m, uint64_t deadline)
{
	return cond_wait(c, m, deadline, NULL);
}

int kn_cond_wait_ctx(kn_cond *c, kn_mutex *m, kn_ctx *ctx)
{
	return cond_wait(c, m, KN_FOREVER, ctx);
}

int kn_cond_signal(kn_cond *c)
{
	if (unlikely(!c))
		return EINVAL;
	waitq_notify_one(&cond_of(c)->q);
	return 0;
}

int kn_cond_broadcast(kn_cond *c)
{
	if (unlikely(!c))
		return EINVAL;
	waitq_notify_all(&cond_of(c)->q);
	return 0;
}

int kn_cond_init(kn_cond *c)
{
	if (!c)
		return EINVAL;
	waitq_init(&cond_of(c)->q);
	return 0;
}

int kn_cond_destroy(kn_cond *c)
{
	if (!c)
		return EINVAL;
	if (!waitq_empty(&cond_of(c)->q)) {
		kn_misuse("kn_cond_destroy of a condition variable waited on", c);
		return EBUSY;
	}
	return 0;
}

/* ---- kn_once -------------------------------------------------------------- */

enum { ONCE_NEW = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };


static bool once_done(void *o)
{
	return at_load_seq_cst(&((struct once *)o)->state) == ONCE_DONE;
}

static void once_wait(struct once *o)
{
	struct waitq *q[1] = { &o->q };

	while (!once_done(o))
		waitq_wait(q, 1, once_done, o, KN_FOREVER, NULL);
}

int kn_once_do(kn_once *ko, void (*fn)(void *), void *arg)
{
	struct once *o = once_of(ko);
	uint32_t s = ONCE_NEW;

	if (unlikely(!o || !fn))
		return EINVAL;
	if (likely(at_load_acquire(&o->state) == ONCE_DONE))
		return 0;
	if (at_cas_acquire(&o->state, &s, ONCE_RUNNING)) {
		fn(arg);
		at_store_seq_cst(&o->state, ONCE_DONE);
		waitq_notify_all(&o->q);
		return 0;
	}
	once_wait(o);
	return 0;
}

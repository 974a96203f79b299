/*
 * sync.c - task-aware mutex, rwmutex, condition variable and once.
 * Models: tests/model/mutex.pml, rwmutex.pml (run by tests/model/check).
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
 * Algorithm (Go's sync.RWMutex). A kn_mutex w serialises the writers. The
 * state word holds the reader count (bits 0-30: readers in, and readers
 * held up by a writer), WRITER (bit 31, Go's -rwmutexMaxReaders bias) and
 * the generation (bits 32-63: how many writers have released). The wait
 * word holds a generation and Go's readerWait: the readers the writer of
 * that generation still waits for. Readers held up by a writer wait on the
 * readers queue, the writer for the readers in on the writer queue, each
 * with waitq_wait (a wake says "look again": the condition is in the
 * words, not in the wake).
 *
 *   rlock    fetch_add(READER). Done if WRITER was clear. Else this reader
 *            is counted and held up by the writer of the generation g it
 *            read: wait until the generation is no longer g. Out of time,
 *            withdraw: a CAS that takes the reader out of the count while
 *            the generation is still g (if it is not, the lock was granted
 *            and rlock returns 0).
 *   runlock  fetch_sub(READER). If WRITER was set, the writer of the
 *            generation g read counted this reader: decrement the wait
 *            word if its generation is g (CAS); the one that reaches 0
 *            wakes the writer.
 *   lock     lock w (with the deadline or context); fetch_add(WRITER): its
 *            result counts the r readers in, and bars new ones. If r > 0,
 *            add r to the wait word (CAS) and wait until it is 0. Out of
 *            time, release as an unlock does (a failed lock is a write
 *            section of length zero that waited for nobody).
 *   unlock   release: one add clears WRITER and steps the generation
 *            (every held-up reader is in now: it is counted already); store
 *            the wait word (new generation, 0); wake the readers queue in
 *            one pass; unlock w.
 *   try      try_rlock: CAS count+1 while WRITER is clear. try_lock:
 *            try_lock w, then CAS WRITER on only while the count is 0.
 *
 * Uncontended, rlock and runlock are one RMW each; lock and unlock are
 * w's CAS and one RMW of the state (and a store of the wait word). A
 * reader held up and a writer waiting for readers look at their condition
 * for a bounded spin before they register (none on one CPU): whom they
 * wait for usually runs on another CPU and is out within a microsecond.
 *
 * Linearization: a reader's rlock at its add when WRITER was clear, else
 * at the releasing add that ended its generation; a failed rlock at its
 * withdrawing CAS. A writer's lock at the CAS of the wait word that
 * reached 0 (or at its own add to the state or the wait word, when that
 * left nobody to wait for); unlock, and a failed lock, at the releasing
 * add. runlock at its sub.
 *
 * Invariants
 *
 *  7. Exclusion: while a writer's lock has returned 0 and its unlock has
 *     not released, no reader is in. (By 8 to 11: a writer's lock returns 0 only
 *     once every reader in at its add has left, and nobody enters after.)
 *  8. WRITER is set only by the holder of w, and cleared only by it, in
 *     the releasing add; w stays held from the set to after the clear. So
 *     there is one writer per generation, and WRITER is set iff it has not
 *     released.
 *  9. The generation changes only in the releasing add, which also clears
 *     WRITER. A reader whose add read WRITER with generation g is not in
 *     while the generation is g, and is in (counted) once it is not.
 * 10. Readers counted in the r of the writer of generation g are exactly
 *     those in when its add set WRITER (a held-up reader is counted only
 *     after the previous generation ended, so it was in; a withdrawing one
 *     leaves only while its generation lasts, so the count it leaves is
 *     never an r). Each of them subs once, after that add: it reads
 *     WRITER and generation g, and departs (invariant 11).
 * 11. While generation g lasts, the wait word has generation g, and its
 *     count is r minus the departures of invariant 10 made so far (those
 *     before the writer's add to it make it negative first). So it is 0
 *     exactly when every counted reader has left; no departure of another
 *     generation changes it (the CAS checks the generation), and the
 *     releasing writer stores the next generation's zero before it lets
 *     the next writer take w.
 * 12. No lost wake-up: each waiter re-reads its condition (the generation;
 *     the wait word's count) with a seq_cst load in waitq_wait's commit,
 *     and whoever makes it true (the releasing add; the departure that
 *     reaches 0) does so with a seq_cst RMW before notifying.
 *
 * Fairness: a writer waits for the readers in when it arrived, which
 * leave; readers after it wait for its unlock (so writers do not starve),
 * and its unlock lets them all in before the next writer, which waits for
 * them (so readers do not starve). Writers among themselves: w's fairness.
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
		waiter_init(&l.w, WAIT_ON(WAIT_MUTEX, m));
		/* Written out, not waitq_wait: an unlock may hand the mutex
		 * to the node (HANDED) and unlinks it, and registering and
		 * re-checking are one step under the queue lock. Why no
		 * wake-up is lost is invariant 4 above; the park itself is
		 * waiter.c's. */
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

/* The state word: the reader count, WRITER, and the writer generation. */
#define RW_READER 1ull
#define RW_WRITER (1ull << 31)
#define RW_GEN_ONE (1ull << 32)
#define RW_COUNT(s) ((uint32_t)((s) & (RW_WRITER - 1)))
#define RW_GEN(s) ((uint32_t)((s) >> 32))

/* The wait word: the generation and, below, the departing readers the
 * writer of that generation still waits for (signed: departures may come
 * before the writer's add). */
static inline uint64_t rw_wait_word(uint32_t gen, int32_t departing)
{
	return (uint64_t)gen << 32 | (uint32_t)departing;
}

static inline int32_t rw_departing(uint64_t v)
{
	return (int32_t)(uint32_t)v;
}

/* Before a rwmutex waiter registers: whom it waits for (the writer, the
 * readers in) usually runs on another CPU and is out within a
 * microsecond, less than a registration and a wake cost. A bounded spin;
 * none on one CPU. True if ready(arg) came true. */
static bool rw_spin(bool (*ready)(void *), void *arg)
{
	struct backoff b = { 0 };

	if (kn_ncpu() == 1)
		return false;
	while (b.step < BACKOFF_SPIN_LIMIT) {
		backoff_spin(&b);
		if (ready(arg))
			return true;
	}
	return false;
}

/* A reader held up by the writer of generation gen. */
struct rw_reader {
	struct rwmutex *rw;
	uint32_t gen;
};

/* Has that writer released (invariant 9)? The commit of the reader's
 * waitq_wait: a seq_cst load, paired with rw_release's add. */
static bool rw_reader_let_in(void *arg)
{
	struct rw_reader *r = arg;

	return RW_GEN(at_load_seq_cst(&r->rw->state)) != r->gen;
}

/* A reader out of time: leave the count while the writer has not
 * released (the writer did not count it: invariant 10); false if it has,
 * and the read lock is this reader's after all. */
static bool rw_reader_withdraw(struct rwmutex *rw, uint32_t gen)
{
	uint64_t s = at_load_acquire(&rw->state);

	while (RW_GEN(s) == gen) {
		KN_ASSERT(s & RW_WRITER, "sync invariant 9: a generation ends with its writer");
		if (at_cas_acq_rel(&rw->state, &s, s - RW_READER))
			return true;
	}
	return false;
}

/* A reader whose add found the writer of generation gen: wait until it
 * releases, which grants this reader (it is counted already). */
static int rw_reader_wait(struct rwmutex *rw, uint32_t gen, uint64_t deadline,
			  kn_ctx *ctx)
{
	struct rw_reader r = { rw, gen };
	struct waitq *q[1] = { &rw->readers };

	if (rw_spin(rw_reader_let_in, &r))
		return 0;
	while (!rw_reader_let_in(&r)) {
		if (deadline_passed(deadline) || (ctx && ctx_done(ctx))) {
			if (!rw_reader_withdraw(rw, gen))
				return 0;
			return deadline_passed(deadline) ? ETIMEDOUT : ECANCELED;
		}
		waitq_wait(q, 1, rw_reader_let_in, &r, deadline, ctx,
			   WAIT_ON(WAIT_RWMUTEX, rw));
	}
	return 0;
}

/* A reader leaving while the writer of generation gen waits for it: count
 * it out of the wait word; the last one wakes the writer (invariant 11). A
 * wait word of another generation belongs to a writer that gave up. */
static void rw_reader_depart(struct rwmutex *rw, uint32_t gen)
{
	uint64_t v = at_load_relaxed(&rw->wait);
	int32_t left;

	while (RW_GEN(v) == gen) {
		left = rw_departing(v) - 1;
		if (at_cas_seq_cst(&rw->wait, &v, rw_wait_word(gen, left))) {
			if (left == 0)
				waitq_notify_all(&rw->writer);
			return;
		}
	}
}

/* The writer's commit and loop test: no counted reader left. */
static bool rw_readers_gone(void *arg)
{
	struct rwmutex *rw = arg;

	return rw_departing(at_load_seq_cst(&rw->wait)) == 0;
}

/* The writer of generation gen waits for n counted readers; true if
 * they have all left already. */
static bool rw_writer_count(struct rwmutex *rw, uint32_t gen, uint32_t n)
{
	uint64_t v = at_load_relaxed(&rw->wait);
	int32_t left;

	do {
		KN_ASSERT(RW_GEN(v) == gen, "sync invariant 11: the wait word is the writer's");
		left = rw_departing(v) + (int32_t)n;
	} while (!at_cas_seq_cst(&rw->wait, &v, rw_wait_word(gen, left)));
	return left == 0;
}

/* End the writer's generation (unlock, or a lock that gave up): clear
 * WRITER and step the generation in one add, which lets in every reader
 * held up (they are counted already); reset the wait word for the next
 * writer; wake the held-up readers in one pass; let the next writer in. */
static void rw_release(struct rwmutex *rw)
{
	uint64_t s = at_add_seq_cst(&rw->state, RW_GEN_ONE - RW_WRITER);

	at_store_seq_cst(&rw->wait, rw_wait_word(RW_GEN(s) + 1, 0));
	waitq_notify_all(&rw->readers);
	kn_mutex_unlock(&rw->w);
}

/* With w held and WRITER set: wait for the readers counted in. */
static int rw_writer_wait(struct rwmutex *rw, uint64_t deadline, kn_ctx *ctx)
{
	struct waitq *q[1] = { &rw->writer };

	if (rw_spin(rw_readers_gone, rw))
		return 0;
	while (!rw_readers_gone(rw)) {
		if (deadline_passed(deadline) || (ctx && ctx_done(ctx))) {
			rw_release(rw);
			return deadline_passed(deadline) ? ETIMEDOUT : ECANCELED;
		}
		waitq_wait(q, 1, rw_readers_gone, rw, deadline, ctx,
			   WAIT_ON(WAIT_RWMUTEX, rw));
	}
	return 0;
}

static int rw_rlock(kn_rwmutex *krw, uint64_t deadline, kn_ctx *ctx)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint64_t s;
	int err;

	if (unlikely(!rw))
		return EINVAL;
	if (unlikely((err = wait_precheck(ctx)) != 0))
		return err;
	s = at_add_acquire(&rw->state, RW_READER);
	if (likely(!(s & RW_WRITER)))
		return 0;
	return rw_reader_wait(rw, RW_GEN(s), deadline, ctx);
}

static int rw_lock(kn_rwmutex *krw, uint64_t deadline, kn_ctx *ctx)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint64_t s;
	int err;

	if (unlikely(!rw))
		return EINVAL;
	if ((err = mutex_lock(&rw->w, deadline, ctx)) != 0)
		return err;
	s = at_add_seq_cst(&rw->state, RW_WRITER);
	KN_ASSERT(!(s & RW_WRITER), "sync invariant 8: w serialises writers");
	if (likely(RW_COUNT(s) == 0) || rw_writer_count(rw, RW_GEN(s), RW_COUNT(s)))
		return 0;
	return rw_writer_wait(rw, deadline, ctx);
}

int kn_rwmutex_rlock(kn_rwmutex *rw)
{
	return rw_rlock(rw, KN_FOREVER, NULL);
}

int kn_rwmutex_rlock_until(kn_rwmutex *rw, uint64_t deadline)
{
	return rw_rlock(rw, deadline, NULL);
}

int kn_rwmutex_rlock_ctx(kn_rwmutex *rw, kn_ctx *ctx)
{
	return rw_rlock(rw, KN_FOREVER, ctx);
}

int kn_rwmutex_lock(kn_rwmutex *rw)
{
	return rw_lock(rw, KN_FOREVER, NULL);
}

int kn_rwmutex_lock_until(kn_rwmutex *rw, uint64_t deadline)
{
	return rw_lock(rw, deadline, NULL);
}

int kn_rwmutex_lock_ctx(kn_rwmutex *rw, kn_ctx *ctx)
{
	return rw_lock(rw, KN_FOREVER, ctx);
}

int kn_rwmutex_try_rlock(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint64_t s;

	if (unlikely(!rw))
		return EINVAL;
	s = at_load_relaxed(&rw->state);
	while (!(s & RW_WRITER))
		if (at_cas_acquire(&rw->state, &s, s + RW_READER))
			return 0;
	return EAGAIN;
}

/* Take w, then WRITER only while no reader is in (so no generation to
 * end if it fails). */
int kn_rwmutex_try_lock(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint64_t s;

	if (unlikely(!rw))
		return EINVAL;
	if (kn_mutex_try_lock(&rw->w) != 0)
		return EAGAIN;
	s = at_load_relaxed(&rw->state);
	while (RW_COUNT(s) == 0)
		if (at_cas_acquire(&rw->state, &s, s | RW_WRITER))
			return 0;
	kn_mutex_unlock(&rw->w);
	return EAGAIN;
}

/* One sub: a load before it would make the contended path fetch the
 * line twice. A runlock with no reader in borrows from WRITER (or the
 * generation) until it undoes its sub; calls racing with that misuse may
 * see it. */
int kn_rwmutex_runlock(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);
	uint64_t s;

	if (unlikely(!rw))
		return EINVAL;
	s = at_sub_release(&rw->state, RW_READER);
	if (unlikely(RW_COUNT(s) == 0)) {
		at_add_relaxed(&rw->state, RW_READER);
		kn_misuse("kn_rwmutex_runlock of a rwmutex no reader holds", rw);
		return EINVAL;
	}
	if (unlikely(s & RW_WRITER))
		rw_reader_depart(rw, RW_GEN(s));
	return 0;
}

int kn_rwmutex_unlock(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);

	if (unlikely(!rw))
		return EINVAL;
	if (unlikely(!(at_load_relaxed(&rw->state) & RW_WRITER))) {
		kn_misuse("kn_rwmutex_unlock of a rwmutex no writer holds", rw);
		return EINVAL;
	}
	rw_release(rw);
	return 0;
}

int kn_rwmutex_init(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);

	if (!rw)
		return EINVAL;
	kn_mutex_init(&rw->w);
	at_store_relaxed(&rw->state, 0);
	at_store_relaxed(&rw->wait, 0);
	waitq_init(&rw->readers);
	waitq_init(&rw->writer);
	return 0;
}

int kn_rwmutex_destroy(kn_rwmutex *krw)
{
	struct rwmutex *rw = rwmutex_of(krw);
	struct mutex *w;

	if (!rw)
		return EINVAL;
	w = mutex_of(&rw->w);
	if ((at_load_acquire(&rw->state) & (RW_WRITER | (RW_WRITER - 1))) != 0 ||
	    at_load_acquire(&w->state) != 0 || !waitq_empty(&w->q) ||
	    !waitq_empty(&rw->readers) || !waitq_empty(&rw->writer)) {
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
	sel = waitq_wait(q, 1, cond_unlock, m, deadline, ctx, WAIT_ON(WAIT_COND, c));
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
		waitq_wait(q, 1, once_done, o, KN_FOREVER, NULL, WAIT_ON(WAIT_ONCE, o));
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

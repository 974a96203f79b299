/*
 * waiter.h - the one park/notify mechanism of kanal (internal).
 *
 * Every blocking call in kanal (channel send/receive, select, semaphore
 * acquire, context wait, wait group, idle pool worker) blocks the same way:
 *
 *   struct waiter w;  waiter_init(&w, WAIT_ON(kind, object));
 *   struct wait_node n = WAIT_NODE(&w, token);
 *   waitq_push(q, &n);                  (register: seq_cst)
 *   if (condition became true meanwhile) waiter_decide(&w, SEL_ABORT);
 *   sel = waiter_park(&w, deadline, ctx);
 *   waitq_remove(q, &n);                (unless the decider already did)
 *
 * and whoever makes the condition true calls waitq_notify_one/all(q) after
 * making it true. waitq_wait is that sequence in one call, for every wait
 * that only needs to be woken (not handed a value through its node), and
 * waitq_wait_by the same with the caller's own park (a pool worker's
 * sleep, an fd wait); the hand-off protocols (channels, the semaphore, the
 * mutex) write it out around their claims. See waiter.c for the protocol
 * and why no wake-up is lost. Only this layer (waiter.c, and waiter_wake
 * below) calls the futex.
 *
 * Synchronization table
 *
 *   call                  may run concurrently with     barrier / cost
 *   waiter_decide         any call on any waiter        acq_rel CAS; futex wake
 *                                                       only if the owner sleeps
 *   waiter_park           deciders; owner only          acquire on the result
 *   waitq_push/remove     everything                    queue lock; push is a
 *                                                       seq_cst RMW of the count
 *   waitq_notify_one/all  everything                    one seq_cst load when the
 *                                                       queue is empty; else lock
 *   waitq_wait            everything (the caller's      as push + park + remove
 *                         own queues' notifiers)
 */
#ifndef KN_WAITER_H
#define KN_WAITER_H

#include "fiber.h"
#include "platform.h"
#include "trace.h"

/* ---- lock: a futex mutex for slow paths (queue registration) --------- */

struct lock {
	_Atomic uint32_t word; /* 0 free, 1 held, 2 held and contended */
};
#define LOCK_INIT {0}

/*
 * The lock order (docs/ARCHITECTURE.md, "Lock order"): a thread that holds
 * locks takes only one of a higher rank, except rendezvous channel locks,
 * which it takes in address order among themselves. Each acquisition names
 * its lock's rank. A build with KANAL_ASSERTS checks the order: each
 * thread keeps a stack of the locks it holds and their ranks (the Debug
 * build's signal-handler check uses it too), and an acquisition out of
 * order aborts at once instead of deadlocking some day. Elsewhere the rank
 * is a constant the compiler drops. lock_try never waits, so it is not
 * checked itself, but what it takes goes on the stack.
 */
enum lock_rank {
	LOCK_CHAN = 1, /* a channel's (chan.c, chan_zero.c) */
	LOCK_THREADS,  /* a pool's thread starts (pool_worker.c) */
	LOCK_REGISTRY, /* the registry of pools (pool_diag.c): taken before
			* the timer heap's */
	LOCK_TICKER,   /* a kn_timer's (time.c): taken before the heap's */
	LOCK_TIMER,    /* the timer heap (timer.c) */
	LOCK_LEAF,     /* takes no other: a context's, an fd record's, a
			* channel fd's busy flag, the pool injector's */
	LOCK_WAITQ,    /* a wait queue's */
	LOCK_WAKEQ,    /* a pool worker's wake queue: fiber_ready notifies
			* it from inside other queues' wakes */
};

#if defined(KANAL_ASSERTS) || defined(KANAL_DEBUG_CHECKS)
#define KN_LOCKS_HELD 1
void lock_acquire_ranked(struct lock *l, enum lock_rank rank);
void lock_held_add(struct lock *l, enum lock_rank rank);
#define lock_acquire(l, rank) lock_acquire_ranked((l), (rank))
#else
void lock_acquire_unranked(struct lock *l);
#define lock_acquire(l, rank) lock_acquire_unranked(l)
#define lock_held_add(l, rank) ((void)0)
#endif
void lock_release(struct lock *l);

/* Take the lock if it is free: one CAS, never waits. */
static inline bool lock_try(struct lock *l, enum lock_rank rank)
{
	uint32_t free_word = 0;

	(void)rank; /* used where held locks are tracked */
	if (!at_cas_acquire(&l->word, &free_word, 1))
		return false;
	lock_held_add(l, rank);
	return true;
}

#ifdef KANAL_ASSERTS
/* The rank of the queue locks this thread's waitq calls take (LOCK_WAITQ
 * unless set); returns the one it replaces. */
enum lock_rank waitq_rank_set(enum lock_rank rank);
/* Run call with the queue locks it takes ranked rank. */
#define WAITQ_AT_RANK(rank, call)                                           \
	do {                                                                \
		enum lock_rank kn_old_rank_ = waitq_rank_set(rank);         \
		call;                                                       \
		waitq_rank_set(kn_old_rank_);                               \
	} while (0)
/* The rank of the queue lock the next waitq call takes. */
enum lock_rank waitq_rank(void);
#else
#define WAITQ_AT_RANK(rank, call) call
#define waitq_rank() LOCK_WAITQ
#endif

/* ---- waiter -------------------------------------------------------------- */

/* Values of waiter.sel. A waiter is decided exactly once: the first CAS away
 * from SEL_WAITING/SEL_PARKED/SEL_SUSPENDED wins. */
enum {
	SEL_WAITING = 0, /* undecided, owner running */
	SEL_PARKED = 1,  /* undecided, owner asleep (or about to be): wake it */
	SEL_CLAIMED = 2, /* a decider won and is handing data over (rendezvous) */
	SEL_TIMEOUT = 3, /* the deadline passed */
	SEL_CANCEL = 4,  /* the context was cancelled */
	SEL_ABORT = 5,   /* the owner withdrew: its condition became true */
	SEL_SUSPENDED = 6, /* undecided, owner is a fiber switched away: a
			      decider makes it runnable (fib->wake) */
	SEL_CASE0 = 8,   /* case i (of a select, or the only case) fired */
};

/*
 * What a wait waits on, for kn_dump and the deadlock report (pool_diag.c):
 * a kind and the object's address in one word (WAIT_ON), which every
 * blocking call hands to waiter_init or waitq_wait. It costs nothing
 * until the wait suspends or sleeps: then the block hook copies it into
 * the task's record (a store or two), or the sleep counts it (below).
 */
enum {
	WAIT_NONE = 0,    /* not waiting (a yield) */
	WAIT_INTERNAL,    /* kanal's own: an idle worker, the timer thread */
	WAIT_SEND,        /* kn_chan_send: the channel */
	WAIT_RECV,        /* kn_chan_recv: the channel */
	WAIT_SELECT,      /* kn_select: its first case's channel */
	WAIT_SEM,
	WAIT_MUTEX,
	WAIT_RWMUTEX,
	WAIT_COND,
	WAIT_ONCE,
	WAIT_CTX,         /* kn_ctx_wait: the context */
	WAIT_WAITGROUP,
	WAIT_GROUP,       /* an error group's limit */
	WAIT_JOIN,        /* kn_task_join: the task */
	WAIT_POOL_IDLE,   /* kn_pool_wait_idle: the pool */
	WAIT_SLEEP,       /* kn_sleep: no object */
	WAIT_FD,          /* kn_read and the rest: the fd number */
	WAIT_KINDS
};

#define WAIT_OBJ_BITS 56
#define WAIT_ON(kind, obj) \
	((uint64_t)(kind) << WAIT_OBJ_BITS | ((uint64_t)(uintptr_t)(obj) & \
					       ((1ull << WAIT_OBJ_BITS) - 1)))

static inline unsigned wait_kind(uint64_t on)
{
	return (unsigned)(on >> WAIT_OBJ_BITS);
}

static inline uintptr_t wait_obj(uint64_t on)
{
	return (uintptr_t)(on & ((1ull << WAIT_OBJ_BITS) - 1));
}

/* "chan recv", "mutex", ...: what kn_dump prints for a kind. */
const char *wait_kind_name(unsigned kind);

struct waiter {
	_Atomic uint32_t sel;
	struct fiber *fib; /* the owner, while SEL_SUSPENDED */
	uint64_t on;       /* WAIT_ON: what the owner waits on */
};

static inline void waiter_init(struct waiter *w, uint64_t on)
{
	at_store_relaxed(&w->sel, SEL_WAITING);
	w->on = on;
}

/* Decide w with token, if nobody did before. True if this call decided.
 * Safe from any thread; wakes the owner only if it sleeps. */
bool waiter_decide(struct waiter *w, uint32_t token);

/* Two-phase decision for hand-offs: claim (returns false if already
 * decided), move the data, then publish (release: the owner sees the data
 * once it sees the token). The owner waits out SEL_CLAIMED. */
bool waiter_claim(struct waiter *w, uint32_t *prev);

/* A publish in two halves, for a claimer that publishes under a lock and
 * wakes the owner after dropping it: waiter_publish_quiet stores the token
 * (release) and returns the wake still owed, waiter_wake does it (a futex
 * wake or a fiber's resumption, only if the owner slept). The owner may
 * return as soon as it sees the token; the wake reads nothing of it. */
struct wake {
	struct waiter *w;
	struct fiber *fib; /* the owner, if it was a suspended fiber */
	uint32_t prev;     /* what the claim replaced */
};

/* The wake owed to w's owner, read before the decision is out: a fiber may
 * run (and its frame go) as soon as it is. */
static inline struct wake wake_owed(struct waiter *w, uint32_t prev)
{
	return (struct wake){ w, prev == SEL_SUSPENDED ? w->fib : NULL, prev };
}

static inline struct wake waiter_publish_quiet(struct waiter *w, uint32_t token,
					       uint32_t prev)
{
	struct wake k = wake_owed(w, prev);

	KN_ASSERT(at_load_relaxed(&w->sel) == SEL_CLAIMED,
		  "waiter invariant 1: only the claimer publishes");
	at_store_release(&w->sel, token);
	return k;
}

/* An owner that was asleep needs waking. A suspended fiber cannot run
 * before it is woken, so its record is still there. */
static inline void waiter_wake(struct wake k)
{
	if (k.prev == SEL_PARKED) {
		TRACE(trace_wake(k.w));
		sys_futex_wake(&k.w->sel, 1);
	} else if (k.prev == SEL_SUSPENDED) {
		TRACE(trace_wake(k.w));
		k.fib->wake(k.fib);
	}
}

static inline void waiter_publish(struct waiter *w, uint32_t token, uint32_t prev)
{
	waiter_wake(waiter_publish_quiet(w, token, prev));
}

/* The decision, with acquire, or SEL_WAITING if none yet. */
static inline uint32_t waiter_peek(struct waiter *w)
{
	uint32_t v = at_load_acquire(&w->sel);

	return v == SEL_PARKED || v == SEL_SUSPENDED || v == SEL_CLAIMED ?
	       SEL_WAITING : v;
}

/*
 * Block until w is decided, the absolute deadline passes (SEL_TIMEOUT) or
 * ctx is cancelled (SEL_CANCEL). Spins briefly first, on more than one CPU.
 * Owner only. Returns the decision; a decision other than the owner's own
 * timeout or cancel must be honoured (its operation retried or completed)
 * even if the deadline has passed meanwhile, or a notification is lost.
 */
uint32_t waiter_park(struct waiter *w, uint64_t deadline, kn_ctx *ctx);

/* As waiter_park, but only by suspending the calling task's fiber; if it
 * cannot (not a task, no stack for the switch, a deadline the hook cannot
 * keep) it returns SEL_WAITING (or a claim's outcome still to settle: sel
 * SEL_CLAIMED) without sleeping, and the caller waits its own way: a wait
 * whose wake-up depends on other threads polling for it (netpoll.c) must
 * not sleep its thread unseen. */
uint32_t waiter_park_suspend(struct waiter *w, uint64_t deadline, kn_ctx *ctx);

/* Around a thread's sleep on w outside waiter_park (true before, false
 * after): the block hook's enter / leave, so that a pool starts a spare
 * worker; without a hook, the thread's record (struct plain_wait). */
void waiter_hold_thread(const struct waiter *w, bool start);

/*
 * The sleep word, for the deadlock report (pool_diag.c): threads asleep
 * in the waiter layer without a deadline (sleep_for_decision's futex
 * sleep; a suspended fiber does not count, its thread goes on), in bits
 * 0-15; those of them that wait outside every pool for something that is
 * not kanal's own (a plain thread in a kanal call), in bits 16-31; and
 * the sleeps of that kind that have ended, modulo 2^32, in bits 32-63.
 * One RMW when such a sleep begins and one when it ends (both beside a
 * futex call); nothing on any other path. A field that would overflow
 * (65536 threads asleep) carries into the next: the report then does not
 * fire (pool_diag.c).
 */
#define SLEEP_ONE ((uint64_t)1)
#define SLEEP_PLAIN_ONE ((uint64_t)1 << 16)
#define SLEEP_END_ONE ((uint64_t)1 << 32)
uint64_t waiter_sleep_word(void);
/* In a child of fork(): none of the sleepers it counted is here, and of
 * the threads' records below only the calling thread's stays. */
void waiter_sleep_forget(void);

/*
 * What each thread outside the pools is asleep on in a kanal call, for
 * kn_dump (a task's is in its record, task.h). Written only around such
 * a thread's sleeps, those that the sleep word counts as plain but with
 * or without a deadline (sleep_for_decision's futex sleep, and
 * waiter_hold_thread's poll of an fd): the WAIT_ON word and the coarse
 * clock at the start, 0 at the end (relaxed stores beside the futex or
 * poll call). The record is the thread's own (thread-local), linked into
 * a list at its first such sleep and unlinked by a thread-specific data
 * destructor at its exit, before its thread-local storage goes, both
 * under the list's lock; waiter_plain_each calls fn for each record
 * under that lock, so none goes away while fn reads it.
 */
struct plain_wait {
	_Atomic uint64_t on;    /* WAIT_ON of its sleep; 0 while awake */
	_Atomic uint64_t since; /* kn_now_coarse() at the sleep's start */
	int tid;
	bool linked;            /* the thread's own */
	struct plain_wait *next, *prev; /* under the list's lock */
};
void waiter_plain_each(void (*fn)(const struct plain_wait *pw, void *arg), void *arg);

static inline unsigned sleep_all(uint64_t s)
{
	return (unsigned)(s & 0xffff);
}

static inline unsigned sleep_plain(uint64_t s)
{
	return (unsigned)((s >> 16) & 0xffff);
}

/*
 * How a thread blocks, per thread (NULL: it sleeps on the futex).
 *
 * suspend: a wait switches to another fiber instead of sleeping:
 * suspend(arg, w) records w->fib, switches away, and has the
 * scheduler move w from SEL_WAITING to SEL_SUSPENDED once the fiber's
 * registers are saved (so a decider that sees SEL_SUSPENDED may resume it
 * at once); a decision made before that makes the fiber runnable again
 * directly. It returns when the fiber runs again, false if it could not
 * switch (no memory for a fiber): the thread then sleeps. NULL: never.
 *
 * others_ready: are other fibers of this thread runnable (or tasks queued
 * on it)? Polling is worth it only while there are none.
 *
 * suspend_until: suspend with a deadline, kept by a layer above this
 * one (timer_suspend_until: the timer thread decides w with SEL_TIMEOUT
 * when it passes); it returns as suspend does, false too when it cannot
 * keep the deadline. NULL: waits with a deadline sleep the thread.
 *
 * enter/leave: a thread about to sleep calls enter(arg, w) first and
 * leave(arg) on waking: the pool starts a spare worker in between (and
 * notes what the task waits on, w->on).
 */
struct block_hook {
	bool (*suspend)(void *arg, struct waiter *w);
	bool (*others_ready)(void *arg);
	void (*enter)(void *arg, const struct waiter *w);
	void (*leave)(void *arg);
	void *arg;
	bool (*suspend_until)(const struct block_hook *hook, struct waiter *w,
			      uint64_t deadline);
};
void waiter_set_block_hook(const struct block_hook *hook);

/* fn runs before every wait of the process, on the waiting thread, until
 * set to NULL: the timer layer's, in a child of fork() that has deadlines
 * from its parent and no timer thread yet (timer.c). A relaxed load per
 * wait otherwise. */
void waiter_set_park_hook(void (*fn)(void));

#ifdef KANAL_DEBUG_CHECKS
/* Debug: until called again with NULL, a wait that would sleep on this
 * thread aborts with "kanal: why" (the timer thread sets it around the
 * callbacks it fires: they must not block). */
void waiter_debug_no_park(const char *why);
#else
#define waiter_debug_no_park(why) ((void)0)
#endif

/* Would a wait on this thread switch to another runnable fiber? Then
 * polling before it would only hold up that fiber. */
bool waiter_others_ready(void);
/* Does a wait on this thread suspend a fiber rather than sleep? */
bool waiter_suspends(void);
/* Let the other runnable fibers (and queued tasks) of this thread run
 * first: suspend with a waiter decided already, which the scheduler finds
 * runnable at once (kn_yield). False if nothing else was ready or the
 * thread cannot suspend. */
bool waiter_yield(void);

/* The scheduler's half of suspend: move w from SEL_WAITING to
 * SEL_SUSPENDED (release: the fiber's saved state and w->fib go with it).
 * False if w was decided or claimed meanwhile: the fiber is runnable. */
static inline bool waiter_mark_suspended(struct waiter *w)
{
	uint32_t v = SEL_WAITING;

	return at_cas_acq_rel(&w->sel, &v, SEL_SUSPENDED);
}

/* ---- wait queue --------------------------------------------------------- */

struct wait_node {
	struct wait_node *next, *prev;
	struct waiter *w;
	uint32_t token; /* what the waiter is decided with via this node */
	bool linked;    /* under the queue lock */
	void *data;     /* operation data for hand-offs (the value, the size) */
};

#define WAIT_NODE(wp, tok) ((struct wait_node){ .w = (wp), .token = (tok) })

struct waitq {
	struct lock lock;
	_Atomic uint32_t n; /* linked nodes; read without the lock */
	struct wait_node *head, *tail;
};

static inline void waitq_init(struct waitq *q)
{
	q->lock.word = 0;
	at_store_relaxed(&q->n, 0);
	q->head = q->tail = NULL;
}

/* Register: append n (FIFO), then publish the count (seq_cst). */
void waitq_push(struct waitq *q, struct wait_node *n);
/* Unlink n if it is still linked. */
void waitq_remove(struct waitq *q, struct wait_node *n);
/* Decide one undecided waiter, with its node's token: the oldest one still
 * awake (polling: no system call needed), else the oldest asleep. One
 * seq_cst load when the queue is empty. True if a waiter was decided. */
bool waitq_notify_one_slow(struct waitq *q);
/* Claim the waiter waitq_notify_one would decide and unlink its node, or
 * NULL. The caller publishes the decision (waiter_publish with *prev);
 * until then the node and its data stay valid, since the owner waits out
 * SEL_CLAIMED. */
struct wait_node *waitq_claim_one(struct waitq *q, uint32_t *prev);
static inline bool waitq_notify_one(struct waitq *q)
{
	if (likely(at_load_seq_cst(&q->n) == 0))
		return false;
	return waitq_notify_one_slow(q);
}
/* Decide every waiter; unlink every node. */
void waitq_notify_all(struct waitq *q);

static inline bool waitq_empty(struct waitq *q)
{
	return at_load_seq_cst(&q->n) == 0;
}

/* Low-level access for protocols that pick a partner themselves (the
 * rendezvous channel, the FIFO semaphore, the mutex): with the lock held.
 * insert puts n at the tail, or at the head with front (a woken waiter
 * that lost the race for a mutex keeps its place, sync.c). */
static inline void waitq_lock(struct waitq *q)
{
	lock_acquire(&q->lock, waitq_rank());
}
static inline void waitq_unlock(struct waitq *q)
{
	lock_release(&q->lock);
}
void waitq_insert_locked(struct waitq *q, struct wait_node *n, bool front);
/* Append n (FIFO). */
static inline void waitq_push_locked(struct waitq *q, struct wait_node *n)
{
	waitq_insert_locked(q, n, false);
}
void waitq_unlink_locked(struct waitq *q, struct wait_node *n);
/* The node to decide next, among the oldest few undecided ones: one whose
 * owner is still awake (deciding it costs no system call), else the oldest
 * suspended one, else the oldest asleep; NULL if none. A
 * decision on it can still be lost to a racing one: pick again then. */
struct wait_node *waitq_pick_locked(struct waitq *q);

/* ---- the park primitive ------------------------------------------------- */

#define WAITQ_WAIT_MAX 4 /* queues one waitq_wait registers on, at most */

/*
 * Wait until a notifier of one of the n queues qs[] (1 <= n <=
 * WAITQ_WAIT_MAX) wakes this thread, or the deadline passes, or ctx is
 * cancelled. Registers a node on each queue (the node on qs[i] carries the
 * token SEL_CASE0 + i), then calls commit(arg) - the re-check of the
 * no-lost-wake-up argument: it reads the condition the caller waits for
 * with seq_cst loads (or under a lock its wakers take after changing it,
 * or releases such a lock held since the condition was read) and returns
 * true if the wait is not needed after all - then parks unless it did,
 * and unregisters every node; on (WAIT_ON) says what it waits for.
 * Returns the decision: SEL_ABORT (commit
 * returned true), SEL_CASE0 + i (woken through qs[i]), SEL_TIMEOUT or
 * SEL_CANCEL. A wake says only "look again": the caller re-checks its
 * condition and may wait again. commit NULL: nothing to re-check.
 */
uint32_t waitq_wait(struct waitq *const qs[], unsigned n, bool (*commit)(void *arg),
		    void *arg, uint64_t deadline, kn_ctx *ctx, uint64_t on);

/*
 * waitq_wait's sequence with the park left to the caller: park(w, arg)
 * waits for w's decision in place of waiter_park (and returns what the
 * wait returns), for a thread that sleeps its own way: a pool worker going
 * idle sleeps without its block hook and may sleep in epoll_wait
 * (pool_worker.c, netpoll.c). commit and park get the same arg; on is
 * waitq_wait's. Inline, so that a caller's commit and park compile into
 * its wait; waitq_wait is this with waiter_park. commit is never NULL
 * (waitq_wait's takes the NULL of its own caller): a test of the pointer
 * is a use of the function's address that GCC folds only after it has
 * decided to emit an out-of-line copy of the commit, which nothing calls
 * (nm showed one for each of the four: park_commit, fibers_commit,
 * fd_commit, wait_commit; tools/check-dead-copies looks for such). park
 * never decides w with SEL_CASE0 + i itself:
 * that decision is a notifier's, through the node on qs[i], which the
 * notifier unlinked (waiter.c invariant 4), so the woken waiter takes no
 * lock to remove it.
 */
static inline uint32_t waitq_wait_by(struct waitq *const qs[], unsigned n,
				     bool (*commit)(void *arg),
				     uint32_t (*park)(struct waiter *w, void *arg),
				     void *arg, uint64_t on)
{
	struct wait_node nodes[WAITQ_WAIT_MAX];
	struct waiter w;
	uint32_t v;
	unsigned i;

	KN_ASSERT(n >= 1 && n <= WAITQ_WAIT_MAX, "waitq_wait: 1 to WAITQ_WAIT_MAX queues");
	waiter_init(&w, on);
	for (i = 0; i < n; i++) {
		nodes[i] = WAIT_NODE(&w, SEL_CASE0 + i);
		waitq_push(qs[i], &nodes[i]);
	}
	if (commit(arg))
		waiter_decide(&w, SEL_ABORT);
	v = park(&w, arg);
	for (i = 0; i < n; i++)
		if (v != SEL_CASE0 + i)
			waitq_remove(qs[i], &nodes[i]);
	return v;
}

/* ---- contexts -------------------------------------------------------------- */

/*
 * A cancellation source: an error word that goes 0 -> ECANCELED or
 * ETIMEDOUT once (a seq_cst store, the store of the no-lost-wake-up
 * argument), after which its owner notifies every waiter on q. All the
 * waiter layer knows of a context: every kn_ctx starts with a pointer to
 * the source whose cancellation it reports, NULL if it is never cancelled
 * (ctx.c embeds a source in each cancellable context and asserts the
 * layout); a NULL context is never cancelled either.
 */
struct cancel_src {
	_Atomic uint32_t err;
	struct waitq q;
};

static inline struct cancel_src *ctx_source(kn_ctx *ctx)
{
	return ctx ? *(struct cancel_src *const *)(void *)ctx : NULL;
}

/* 0 while live, else ECANCELED or ETIMEDOUT. One seq_cst load: it pairs
 * with a watcher's registration on the source's queue. */
static inline int ctx_err(kn_ctx *ctx)
{
	struct cancel_src *s = ctx_source(ctx);

	return s ? (int)at_load_seq_cst(&s->err) : 0;
}

static inline bool ctx_done(kn_ctx *ctx)
{
	return ctx_err(ctx) != 0;
}

/* The queue whose waiters a cancellation of ctx decides; NULL if ctx can
 * never be cancelled (background, detached). */
static inline struct waitq *ctx_waitq(kn_ctx *ctx)
{
	struct cancel_src *s = ctx_source(ctx);

	return s ? &s->q : NULL;
}

/*
 * A waiter's registration with a context (on the waiter's stack).
 * waiter_watch_ctx makes a cancellation of ctx decide w with SEL_CANCEL
 * until waiter_unwatch_ctx, and decides it at once if ctx is cancelled
 * already; NULL or a context that is never cancelled watches nothing.
 *
 * Cancellation first: a wait that watches its context BEFORE it registers
 * where a partner can complete it (a channel queue, the semaphore's queue)
 * cannot be completed by a partner that comes after kn_ctx_cancel has
 * returned: the cancellation decided the waiter before that partner could
 * claim it (tests/model/cancel.pml). waiter_park(w, deadline, ctx) watches
 * only for the time it parks: enough for waits that move nothing.
 */
struct ctx_watch {
	struct wait_node node;
	struct waitq *q; /* NULL: nothing watched */
};
void waiter_watch_ctx_on(struct waiter *w, kn_ctx *ctx, struct ctx_watch *cw);

/* Inline for the NULL context of most waits (a channel operation watches
 * twice per wait: its own watch and its park's): no call then. */
static inline void waiter_watch_ctx(struct waiter *w, kn_ctx *ctx, struct ctx_watch *cw)
{
	cw->q = NULL;
	if (ctx)
		waiter_watch_ctx_on(w, ctx, cw);
}

static inline void waiter_unwatch_ctx(struct ctx_watch *cw)
{
	if (cw->q)
		waitq_remove(cw->q, &cw->node);
}

#endif

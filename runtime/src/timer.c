/*
 * timer.c - one timer thread for every deadline that must act by itself
 * (internal).
 *
 * Why a thread at all: a context's deadline must flip its state (so that
 * kn_ctx_err stays one atomic load) and run its after_funcs even when
 * nobody waits on it, so a waiter's own futex timeout cannot do the job.
 * Why one: a thread per deadline would cost a thread per context. The
 * thread parks through the waiter layer like every other blocked thread.
 *
 * Algorithm. A pairing heap of the entries by time (intrusive: an entry
 * carries its own links, so adding one never allocates and a fiber's
 * deadline cannot fail for want of memory), guarded by a futex lock. The
 * thread, under the lock, fires every due entry (dropping the lock around
 * each fire call), reads the earliest pending time at the root, pushes its
 * wait node on the queue `wake` still under the lock, then parks until
 * that time (KN_FOREVER when the heap is empty). timer_add notifies `wake`
 * only when the new entry became the root.
 *
 * The heap: every node's time is no earlier than its parent's. A node's
 * children form a list (child, then next); prev points to the previous
 * sibling, or to the parent for a first child, so that any entry can be
 * cut out. add melds the entry with the root, O(1); taking the root out
 * melds its children in two passes (left to right in pairs, then the pairs
 * right to left), O(log n) amortized; removing another entry cuts it out
 * and melds its children back in.
 *
 * No lost wake-up: the thread registers on `wake` before it releases the
 * heap lock, and an adder inserts under that lock and reads the queue after
 * releasing it; so an insertion the thread did not see finds its node and
 * decides it. timer_remove never notifies: the thread wakes at most once
 * for nothing, at the removed entry's time.
 *
 * Invariants
 *
 *  1. The root is the earliest entry; no child is earlier than its parent;
 *     an entry is queued (in the heap) exactly when its queued flag is set.
 *     All of it under `lock`.
 *  2. An entry leaves the heap exactly once: by timer_remove (which returns
 *     true) or by the thread before it calls fire.
 *  3. While the heap is not empty the thread is either running or parked
 *     with a deadline no later than the root's time.
 */
#include "timer.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

#include "waiter.h"

static struct {
	struct lock lock;
	struct timer_entry *root;
	bool started;
	struct waitq wake; /* the timer thread's node, while it parks */
} T = { .lock = LOCK_INIT };

/* Two heaps into one: the later root becomes the earlier's first child. */
static struct timer_entry *meld(struct timer_entry *a, struct timer_entry *b)
{
	struct timer_entry *t;

	if (!a || !b)
		return a ? a : b;
	if (b->when < a->when) {
		t = a;
		a = b;
		b = t;
	}
	b->prev = a;
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	a->next = a->prev = NULL;
	return a;
}

/* A list of sibling heaps into one: pairs left to right, then the pairs
 * right to left (the pairs are stacked through next as they are made). */
static struct timer_entry *meld_siblings(struct timer_entry *first)
{
	struct timer_entry *stack = NULL, *a, *b, *rest, *h = NULL;

	for (a = first; a; a = rest) {
		b = a->next;
		rest = b ? b->next : NULL;
		a->next = a->prev = NULL;
		if (b)
			b->next = b->prev = NULL;
		a = meld(a, b);
		a->next = stack;
		stack = a;
	}
	for (a = stack; a; a = rest) {
		rest = a->next;
		a->next = NULL;
		h = meld(h, a);
	}
	return h;
}

/* Take e out, keeping invariant 1. */
static void heap_delete(struct timer_entry *e)
{
	struct timer_entry *kids;

	KN_ASSERT(e->queued, "timer invariant 1: only a queued entry is in the heap");
	kids = meld_siblings(e->child);

	if (e == T.root) {
		T.root = kids;
	} else {
		if (e->prev->child == e)
			e->prev->child = e->next;
		else
			e->prev->next = e->next;
		if (e->next)
			e->next->prev = e->prev;
		T.root = meld(T.root, kids);
	}
	e->child = e->next = e->prev = NULL;
	e->queued = false;
}

#define NO_PARK "a blocking call on kanal's timer thread: an after_func run by " \
	"a context's deadline must not block, since every deadline of the "     \
	"process waits for it (see kanal/ctx.h, kn_ctx_after_func)"

/* With the lock: fire what is due, return the earliest pending time. */
static uint64_t fire_due(void)
{
	while (T.root) {
		struct timer_entry *e = T.root;

		if (e->when > kn_now())
			return e->when;
		heap_delete(e);
		KN_ASSERT(!T.root || T.root->when >= e->when,
			  "timer invariant 1: the root is the earliest entry");
		lock_release(&T.lock);
		waiter_debug_no_park(NO_PARK);
		e->fire(e);
		waiter_debug_no_park(NULL);
		lock_acquire(&T.lock, LOCK_TIMER);
	}
	return KN_FOREVER;
}

/* The thread's re-check is the heap lock, held since fire_due read the
 * root: an adder inserts under it, so one that inserted before the
 * registration was seen, and one after it finds the node. */
static bool release_heap(void *unused)
{
	(void)unused;
	lock_release(&T.lock);
	return false;
}

static void *timer_main(void *unused)
{
	struct waitq *const q[] = { &T.wake };

	(void)unused;
	lock_acquire(&T.lock, LOCK_TIMER);
	for (;;) {
		uint64_t next = fire_due();

		waitq_wait(q, 1, release_heap, NULL, next, NULL,
			   WAIT_ON(WAIT_INTERNAL, NULL));
		lock_acquire(&T.lock, LOCK_TIMER);
	}
	return NULL;
}

/*
 * fork(): the child has no timer thread. The lock is held across the fork
 * so that the heap is whole in the child. The child starts a thread of its
 * own with its first timer_add, or, if entries were pending (the parent's
 * deadlines, whose contexts the child has copies of), at its first wait
 * (the waiter layer's park hook): not in the fork handler, so that a child
 * that only execs starts no thread. The parent's thread's node on `wake`
 * is dropped.
 */
static int start_thread(void);

/* The park hook of a child whose heap is not empty: start its thread. */
static void start_orphaned(void)
{
	lock_acquire(&T.lock, LOCK_TIMER);
	start_thread();
	lock_release(&T.lock);
}

static void fork_prepare(void)
{
	lock_acquire(&T.lock, LOCK_TIMER);
}

static void fork_parent(void)
{
	lock_release(&T.lock);
}

static void fork_child(void)
{
	T.started = false;
	waitq_init(&T.wake);
	if (T.root)
		waiter_set_park_hook(start_orphaned);
	lock_release(&T.lock);
}

/* With the lock. Signals go to the application's threads, not to ours. */
static int start_thread(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (T.started)
		return 0;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = thread_create(&t, &attr, timer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		return EAGAIN;
	T.started = true;
	waiter_set_park_hook(NULL);
	return 0;
}

/* Registered before main, not at the first start: a fork while another
 * thread held the lock (starting the thread, say) would otherwise leave
 * the child a lock held for ever, and under AddressSanitizer the
 * sanitizer's own thread registry too (GCC 12's does not lock it across
 * fork; fork_prepare waits for the start that holds our lock). Before
 * constructors without a priority, which may fork (a test's), and before
 * the pools' handlers (pool.c, "fork"). */
__attribute__((constructor(KN_CTOR_TIMER_FORK))) static void fork_register(void)
{
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

bool timer_others_pending(const struct timer_entry *e)
{
	bool others;

	lock_acquire(&T.lock, LOCK_TIMER);
	/* The root is the only entry when it has no child. */
	others = T.root && (T.root != e || T.root->child);
	lock_release(&T.lock);
	return others;
}

/* A suspended fiber's deadline: the timer thread decides the waiter. The
 * entry lives in the fiber's frame, so the fiber waits for a fire that has
 * begun to end (done) before its frame goes. */
struct fiber_deadline {
	struct timer_entry e;
	struct waiter *w;
	_Atomic uint32_t done;
};

static void fiber_deadline_fire(struct timer_entry *e)
{
	struct fiber_deadline *d = (struct fiber_deadline *)
		((char *)e - offsetof(struct fiber_deadline, e));

	waiter_decide(d->w, SEL_TIMEOUT);
	at_store_release(&d->done, 1);
}

bool timer_suspend_until(const struct block_hook *hook, struct waiter *w,
			 uint64_t deadline)
{
	struct fiber_deadline d = { .w = w };
	struct backoff b = { 0 };
	bool switched;

	/* timer_add never allocates; it fails only when the timer thread
	 * cannot be started. */
	if (timer_add(&d.e, deadline, fiber_deadline_fire))
		return false;
	switched = hook->suspend(hook->arg, w);
	if (!timer_remove(&d.e))
		while (!at_load_acquire(&d.done))
			backoff_snooze(&b);
	return switched;
}

int timer_add(struct timer_entry *e, uint64_t when,
	      void (*fire)(struct timer_entry *e))
{
	bool first;
	int r;

	e->when = when;
	e->fire = fire;
	e->child = e->next = e->prev = NULL;
	lock_acquire(&T.lock, LOCK_TIMER);
	r = start_thread();
	e->queued = r == 0;
	if (e->queued)
		T.root = meld(T.root, e);
	first = T.root == e;
	lock_release(&T.lock);
	if (first)
		waitq_notify_one(&T.wake);
	return r;
}

bool timer_remove(struct timer_entry *e)
{
	bool queued;

	lock_acquire(&T.lock, LOCK_TIMER);
	queued = e->queued;
	if (queued)
		heap_delete(e);
	lock_release(&T.lock);
	return queued;
}

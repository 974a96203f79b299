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
 * Algorithm. A binary min-heap of entries by time, guarded by a futex lock.
 * The thread, under the lock, fires every due entry (dropping the lock
 * around each fire call), computes the earliest pending time, pushes its
 * wait node on the queue `wake` still under the lock, then parks until that
 * time (KN_FOREVER when the heap is empty). timer_add notifies `wake` only
 * when the new entry became the earliest.
 *
 * No lost wake-up: the thread registers on `wake` before it releases the
 * heap lock, and an adder inserts under that lock and reads the queue after
 * releasing it; so an insertion the thread did not see finds its node and
 * decides it. timer_remove never notifies: the thread wakes at most once
 * for nothing, at the removed entry's time.
 *
 * Invariants
 *
 *  1. heap[0..len) is a min-heap by when; heap[i]->idx == i; an entry not
 *     in the heap has idx == TIMER_NOT_QUEUED. All of it under `lock`.
 *  2. An entry leaves the heap exactly once: by timer_remove (which returns
 *     true) or by the thread before it calls fire.
 *  3. While the heap is not empty the thread is either running or parked
 *     with a deadline no later than heap[0]->when.
 */
#include "timer.h"

#include <pthread.h>
#include <signal.h>

#include "waiter.h"

static struct {
	struct lock lock;
	struct timer_entry **heap;
	size_t len, cap;
	bool started;
	struct waitq wake; /* the timer thread's node, while it parks */
} T = { .lock = LOCK_INIT };

static bool earlier(size_t a, size_t b)
{
	return T.heap[a]->when < T.heap[b]->when;
}

static void swap(size_t a, size_t b)
{
	struct timer_entry *e = T.heap[a];

	T.heap[a] = T.heap[b];
	T.heap[b] = e;
	T.heap[a]->idx = a;
	T.heap[b]->idx = b;
}

static void sift_up(size_t i)
{
	while (i > 0 && earlier(i, (i - 1) / 2)) {
		swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void sift_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;

		if (l < T.len && earlier(l, m))
			m = l;
		if (l + 1 < T.len && earlier(l + 1, m))
			m = l + 1;
		if (m == i)
			return;
		swap(i, m);
		i = m;
	}
}

/* Take heap[i] out, keeping invariant 1. */
static void heap_delete(size_t i)
{
	struct timer_entry *e = T.heap[i];

	T.len--;
	if (i != T.len) {
		T.heap[i] = T.heap[T.len];
		T.heap[i]->idx = i;
		sift_down(i);
		sift_up(i);
	}
	e->idx = TIMER_NOT_QUEUED;
}

static int heap_reserve(void)
{
	struct timer_entry **h;
	size_t cap;

	if (T.len < T.cap)
		return 0;
	cap = T.cap ? 2 * T.cap : 64;
	h = kn_alloc(cap * sizeof(*h));
	if (!h)
		return ENOMEM;
	for (size_t i = 0; i < T.len; i++)
		h[i] = T.heap[i];
	kn_free(T.heap);
	T.heap = h;
	T.cap = cap;
	return 0;
}

/* With the lock: fire what is due, return the earliest pending time. */
static uint64_t fire_due(void)
{
	while (T.len > 0) {
		struct timer_entry *e = T.heap[0];

		if (e->when > kn_now())
			return e->when;
		heap_delete(0);
		lock_release(&T.lock);
		e->fire(e);
		lock_acquire(&T.lock);
	}
	return KN_FOREVER;
}

static void *timer_main(void *unused)
{
	(void)unused;
	lock_acquire(&T.lock);
	for (;;) {
		struct waiter w;
		struct wait_node n = WAIT_NODE(&w, SEL_CASE0);
		uint64_t next = fire_due();

		waiter_init(&w);
		waitq_push(&T.wake, &n);
		lock_release(&T.lock);
		waiter_park(&w, next, NULL);
		waitq_remove(&T.wake, &n);
		lock_acquire(&T.lock);
	}
	return NULL;
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
	r = pthread_create(&t, &attr, timer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		return EAGAIN;
	T.started = true;
	return 0;
}

int timer_add(struct timer_entry *e, uint64_t when,
	      void (*fire)(struct timer_entry *e))
{
	bool first;
	int r;

	e->when = when;
	e->fire = fire;
	lock_acquire(&T.lock);
	r = start_thread();
	if (!r)
		r = heap_reserve();
	if (r) {
		e->idx = TIMER_NOT_QUEUED;
		lock_release(&T.lock);
		return r;
	}
	e->idx = T.len;
	T.heap[T.len++] = e;
	sift_up(e->idx);
	first = e->idx == 0;
	lock_release(&T.lock);
	if (first)
		waitq_notify_one(&T.wake);
	return 0;
}

bool timer_remove(struct timer_entry *e)
{
	bool queued;

	lock_acquire(&T.lock);
	queued = e->idx != TIMER_NOT_QUEUED;
	if (queued)
		heap_delete(e->idx);
	lock_release(&T.lock);
	return queued;
}

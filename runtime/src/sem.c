/*
 * sem.c - the weighted FIFO semaphore.
 *
 * Algorithm. One 64-bit word holds the free token count in its low 63 bits
 * and a flag WAITERS in the top bit. Behind it, a wait queue (waiter.h) of
 * nodes living on the waiters' stacks, each pointing at its request.
 *
 *   fast acquire   while WAITERS is clear and count >= n: CAS count -> count - n
 *   fast release   while WAITERS is clear: CAS count -> count + n (after the
 *                  overflow check)
 *
 * (A CAS rather than a fetch_add: an over-release must be refused before it
 * changes the word, or the excess tokens could be taken in between. When
 * uncontended it is still a single RMW.) A fast path whose CAS fails has
 * lost the word to another CPU and backs off (bounded: backoff_spin from
 * SEM_BACKOFF_FIRST) before it reloads, so the winner keeps the line for
 * its next operations; fast paths have no order among themselves, so
 * this changes no guarantee below.
 *
 * Everything else happens under the queue lock. A slow acquire, under the
 * lock, either takes its tokens (queue empty, enough tokens: the fast path
 * raced with a release) or sets WAITERS (if the queue was empty) and appends
 * its node, then parks through the waiter layer. A release that sees
 * WAITERS adds its tokens under the lock and then serves the queue from the
 * head: while the head's request fits, it claims the head's waiter
 * (waiter_claim: a CAS that fails if a timeout or cancellation decided it
 * first, in which case the node is just dropped), subtracts its tokens and
 * moves the node to a private list; it stops at the first request that does
 * not fit (head-of-line rule), clears WAITERS if the queue is empty, drops
 * the lock, and only then publishes SEL_CASE0 to each claimed waiter. A
 * waiter that timed out or was cancelled takes its node out under the lock
 * and serves the queue the same way, since the requests behind it may fit
 * now.
 *
 * Why no wake-up is lost: every change of the word is an RMW on that one
 * word, so they are totally ordered. A slow acquire sets WAITERS with a CAS
 * based on the count it read under the lock; a fast release whose CAS comes
 * later fails (the word changed), sees WAITERS and goes to the lock, where
 * it finds the node; one whose CAS came earlier has left a count the
 * acquirer's CAS was based on, so the acquirer took the tokens instead of
 * queueing.
 *
 * Why FIFO holds: a fast acquire needs WAITERS clear, i.e. an empty queue,
 * so nobody overtakes a queued request; grants go strictly from the head.
 *
 * BZ 12674 (a granted waiter frees the semaphore at once): the releaser
 * publishes the grants after it has unlocked, and its only accesses after
 * a publish are the next claimed nodes (still blocked, so alive) and the
 * waiter's futex word (a wake on a dead word is harmless, waiter.c). A
 * granted waiter never touches the semaphore again.
 *
 * Cancellation first (go.dev/issue/63615): a slow acquire watches its
 * context before it queues (waiter.h), so a cancellation that returned
 * before a release has decided the waiter, and that release's claim fails.
 *
 * Linearization: a fast acquire or release at its successful CAS; a slow
 * release at its add under the lock; a served acquire at the subtraction
 * made for it (in the same critical section as its claim); a timed-out or
 * cancelled acquire at the CAS that decided its waiter.
 *
 * Invariants
 *
 *  1. WAITERS is set iff the queue is non-empty, whenever the lock is free.
 *  2. While WAITERS is set only lock holders change the word.
 *  3. count <= size; count + tokens held by users + tokens of claimed but
 *     unpublished grants == size.
 *  4. A queued request has 0 < n <= size, so the head is served once
 *     enough tokens come back.
 *  5. A node leaves the queue once: claimed and granted by a server (and
 *     then its owner returns 0 holding the tokens), or dropped because its
 *     waiter was decided by a timeout/cancel (and then its owner returns
 *     the error holding nothing). The waiter's decision CAS arbitrates.
 *  6. After a publish the releaser touches neither the semaphore nor that
 *     node.
 */
#include "kanal/sem.h"

#include "waiter.h"

#define WAITERS (UINT64_C(1) << 63)
#define COUNT(v) ((v) & ~WAITERS)

struct kn_sem {
	/* The hot line: the word, and the size every call checks. */
	_Atomic uint64_t word KN_ALIGNED;
	uint64_t size;
	struct waitq q KN_ALIGNED;
};

/* A waiting request, on the waiter's stack. */
struct request {
	uint64_t n;
	uint32_t prev;  /* the waiter's state when claimed: wake it if PARKED */
};

kn_sem *kn_sem_new(uint64_t n)
{
	kn_sem *s;

	if (n == 0 || n > KN_SEM_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s = kn_alloc_aligned(KN_PAD, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	at_store_relaxed(&s->word, n);
	s->size = n;
	waitq_init(&s->q);
	return s;
}

void kn_sem_free(kn_sem *s)
{
	kn_free(s);
}

uint64_t kn_sem_available(const kn_sem *s)
{
	return s ? COUNT(at_load_acquire(&((kn_sem *)s)->word)) : 0;
}

uint64_t kn_sem_size(const kn_sem *s)
{
	return s ? s->size : 0;
}

/*
 * After a fast path's CAS failed: another CPU's RMW on the word came
 * between this one's load and CAS. Retrying at once pulls the line back
 * before that CPU's next operation (its release, just after its acquire)
 * can use it, so every operation moves the line twice. Backing off lets
 * the winner run a few acquire/release pairs on the line it holds (and
 * the CAS this one retries with moves it once). The first back-off is
 * 2^SEM_BACKOFF_FIRST pauses (about 200 ns here, one bounded
 * backoff_spin each retry): two threads on two CPUs, acquire(1) +
 * release(1) pairs, 30 ns a pair without it, 18 ns starting at one
 * pause, 8 ns starting at eight (one thread alone: 5 ns).
 */
#define SEM_BACKOFF_FIRST 3

/* Take n tokens if nobody waits and they are there. */
static bool take_fast(kn_sem *s, uint64_t n)
{
	struct backoff b = { SEM_BACKOFF_FIRST };
	uint64_t v = at_load_relaxed(&s->word);

	while (!(v & WAITERS) && v >= n) {
		if (likely(at_cas_acquire(&s->word, &v, v - n)))
			return true;
		backoff_spin(&b); /* lost to another CPU: see SEM_BACKOFF_FIRST */
		v = at_load_relaxed(&s->word);
	}
	return false;
}

/*
 * With the lock: claim the head requests that fit, in order, subtract their
 * tokens, and return them as a list for publish(); clear WAITERS once the
 * queue is empty.
 */
static struct wait_node *serve_locked(kn_sem *s)
{
	struct wait_node *head, *granted = NULL, **tail = &granted;
	uint64_t v = at_load_relaxed(&s->word);

	while ((head = s->q.head) != NULL) {
		struct request *r = head->data;

		if (COUNT(v) < r->n)
			break;
		waitq_unlink_locked(&s->q, head);
		if (!waiter_claim(head->w, &r->prev))
			continue; /* timed out or cancelled: nothing to give */
		/* acq_rel: the releases whose tokens these are happen-before
		 * the publish, which the waiter acquires. */
		v = at_sub_acq_rel(&s->word, r->n) - r->n;
		KN_ASSERT(COUNT(v) <= s->size, "sem invariant 3: count <= size");
		head->next = NULL;
		*tail = head;
		tail = &head->next;
	}
	while (!s->q.head && (v & WAITERS))
		at_cas_acq_rel(&s->word, &v, v & ~WAITERS);
	KN_ASSERT(!s->q.head == !(v & WAITERS),
		  "sem invariant 1: WAITERS iff the queue is not empty");
	return granted;
}

/* After unlocking: hand the grants over (invariant 6). */
static void publish(struct wait_node *granted)
{
	while (granted) {
		struct wait_node *n = granted;
		struct waiter *w = n->w;
		uint32_t prev = ((struct request *)n->data)->prev;

		granted = n->next;
		waiter_publish(w, SEL_CASE0, prev);
	}
}

/* With the lock: take the tokens (true) or queue node (false). */
static bool take_or_queue_locked(kn_sem *s, struct wait_node *node, uint64_t n)
{
	uint64_t v = at_load_relaxed(&s->word);

	/* Invariant 1: an empty queue means WAITERS is clear. */
	while (!s->q.head) {
		if (v >= n) {
			if (at_cas_acquire(&s->word, &v, v - n))
				return true;
		} else if (at_cas_relaxed(&s->word, &v, v | WAITERS)) {
			break;
		}
	}
	KN_ASSERT(n > 0 && n <= s->size, "sem invariant 4: 0 < n <= size queued");
	waitq_push_locked(&s->q, node);
	return false;
}

/* A timed-out or cancelled waiter leaves; those behind it may fit now. */
static void withdraw(kn_sem *s, struct wait_node *node)
{
	struct wait_node *granted;

	waitq_lock(&s->q);
	if (node->linked)
		waitq_unlink_locked(&s->q, node);
	granted = serve_locked(s);
	waitq_unlock(&s->q);
	publish(granted);
}

static int acquire_slow(kn_sem *s, uint64_t n, uint64_t deadline, kn_ctx *ctx)
{
	struct request r = { .n = n };
	struct waiter w;
	struct wait_node node = WAIT_NODE(&w, SEL_CASE0);
	struct ctx_watch cw;
	uint32_t sel;
	bool taken;

	waiter_init(&w, WAIT_ON(WAIT_SEM, s));
	node.data = &r;
	/* Cancellation first: watched before a release can serve node. */
	waiter_watch_ctx(&w, ctx, &cw);
	if (waiter_peek(&w) == SEL_CANCEL) {
		waiter_unwatch_ctx(&cw);
		return ECANCELED;
	}
	/* Written out, not waitq_wait: a release serves node by handing it
	 * tokens (a hand-off) and unlinks it, and registering and
	 * re-checking are one step under the queue lock. Why no wake-up is
	 * lost is the essay's above (WAITERS sends a release to the lock);
	 * the park itself is waiter.c's. */
	waitq_lock(&s->q);
	taken = take_or_queue_locked(s, &node, n);
	waitq_unlock(&s->q);
	sel = taken ? SEL_CASE0 : waiter_park(&w, deadline, NULL);
	waiter_unwatch_ctx(&cw);
	if (sel == SEL_CASE0)
		return 0; /* served: the server unlinked node */
	withdraw(s, &node);
	return sel == SEL_CANCEL ? ECANCELED : ETIMEDOUT;
}

static int acquire(kn_sem *s, uint64_t n, uint64_t deadline, kn_ctx *ctx)
{
	if (unlikely(!s || n > s->size))
		return EINVAL;
	if (ctx && ctx_done(ctx))
		return ECANCELED;
	if (likely(n == 0 || take_fast(s, n)))
		return 0;
	if (deadline != KN_FOREVER && deadline_left(deadline) == 0)
		return ETIMEDOUT;
	return acquire_slow(s, n, deadline, ctx);
}

int kn_sem_acquire(kn_sem *s, uint64_t n)
{
	return acquire(s, n, KN_FOREVER, NULL);
}

int kn_sem_acquire_until(kn_sem *s, uint64_t n, uint64_t deadline)
{
	return acquire(s, n, deadline, NULL);
}

int kn_sem_acquire_ctx(kn_sem *s, uint64_t n, kn_ctx *ctx)
{
	return acquire(s, n, KN_FOREVER, ctx);
}

int kn_sem_try_acquire(kn_sem *s, uint64_t n)
{
	if (!s || n > s->size)
		return EINVAL;
	return n == 0 || take_fast(s, n) ? 0 : EAGAIN;
}

/* Out of line: the fast path then saves no registers. */
static __attribute__((noinline)) int release_slow(kn_sem *s, uint64_t n)
{
	struct wait_node *granted;
	uint64_t v;

	waitq_lock(&s->q);
	v = at_load_relaxed(&s->word);
	/* WAITERS may have been cleared meanwhile: fast paths can race. */
	do {
		if (n > s->size - COUNT(v)) {
			waitq_unlock(&s->q);
			return EINVAL;
		}
	} while (!at_cas_release(&s->word, &v, v + n));
	KN_ASSERT(COUNT(v + n) <= s->size, "sem invariant 3: count <= size");
	granted = serve_locked(s);
	waitq_unlock(&s->q);
	publish(granted);
	return 0;
}

int kn_sem_release(kn_sem *s, uint64_t n)
{
	struct backoff b = { SEM_BACKOFF_FIRST };
	uint64_t v;

	if (unlikely(!s))
		return EINVAL;
	if (n == 0)
		return 0;
	v = at_load_relaxed(&s->word);
	for (;;) {
		if (unlikely(n > s->size - COUNT(v)))
			return EINVAL;
		if (v & WAITERS)
			return release_slow(s, n);
		if (likely(at_cas_release(&s->word, &v, v + n)))
			return 0;
		backoff_spin(&b); /* lost to another CPU: see SEM_BACKOFF_FIRST */
		v = at_load_relaxed(&s->word);
	}
}

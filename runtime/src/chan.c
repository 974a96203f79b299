/*
 * chan.c - channels: creation, close, and the one wait loop (internal).
 *
 * Every operation that may block - a lone send or receive on either flavour,
 * a batch, a select - ends up in wait_cases(), a select over n cases:
 *
 *   1. try every case once, in a random order (or in order when biased),
 *      holding the locks of the rendezvous channels involved (address
 *      order) so that "no partner" and "register" are one step for them;
 *   2. register one wait node per case, all for the same waiter;
 *   3. drop the locks, re-check the ring cases (seq_cst: see waiter.c for
 *      why this closes the lost-wake-up window) and withdraw if one became
 *      ready;
 *   4. park; a decision CASE_TOKEN(i) + 1 means a partner completed case
 *      i (a rendezvous partner, a receiver that put a ring send's value
 *      in the slot it freed, or a sender that took a ring receive's value
 *      out after filling a slot); CASE_TOKEN(i) means "case i may be ready now": the
 *      next round tries case i first, so a notification is never dropped
 *      (a notified waiter retries before it can time out; one whose
 *      context is cancelled by then passes the notification on instead).
 *
 * An operation on a small ring completes one waiting operation of the
 * other kind through the ring (ring_hand_off, Go's buffered channel): a
 * receive puts a waiting send's value into the slot it freed, a send takes
 * the oldest value out for a waiting receive (one load when nobody
 * waits); when that move fails (the ring full or empty again), the claimed
 * waiter is only notified. On a large ring it only notifies one waiter of
 * the other kind. Close notifies all.
 *
 * Cancellation rule: an already-cancelled context fails with ECANCELED
 * before the first try. Later, the deadline and the context are checked
 * only after a try pass failed, and a case completed by a partner always
 * wins over a timeout or cancellation decided after it (the waiter's single
 * decision orders them). So each operation moves its value exactly once or
 * not at all. Cancellation first: the waiter watches its context before it
 * registers on any channel (waiter.h), and a woken waiter checks the
 * context before it retries; so a call that is waiting when kn_ctx_cancel
 * runs fails with ECANCELED, whatever partner comes after that returned.
 * (A call running between its check and its try at that moment is not
 * waiting: it may complete, like one that started just before.)
 *
 * A select that returns without waiting (default, or a deadline already
 * passed) must be right for one instant although it tried its ring cases
 * one after another, without locks: it records each ring case's head and
 * tail before trying it and, when all failed, re-reads them. Unchanged
 * positions mean nothing moved on that channel, so every case was not
 * ready at once between the last record and the first re-read (rendezvous
 * cases are under their locks throughout); moved ones mean "try again".
 *
 * fd signals: a channel that was asked for a descriptor keeps an eventfd per
 * direction whose counter mirrors readiness (1 = ready); every operation
 * that changes readiness re-syncs it after the change (fdsig_update).
 *
 * Linearization points
 *
 *   a case that moves a value: a ring case at its head or tail CAS
 *     (chan_ring.h), a rendezvous case at the claim of the waiter that
 *     completes it (chan_zero.c); a select at the case that fired;
 *   EPIPE: the load that saw the ring's mark_bit (a receive: with the ring
 *     drained) or a rendezvous channel's closed flag, under its lock;
 *   EAGAIN of a try or a default select: an instant between the last
 *     record and the first re-read of its cases' positions (above);
 *   ETIMEDOUT, ECANCELED: the CAS that decided the waiter so (or, for a
 *     context cancelled before the call, its first load of the context);
 *   close: the fetch_or of mark_bit (ring) or the store of closed under
 *     the lock (rendezvous).
 *
 * Invariants
 *
 *  1. An operation moves its value exactly once or not at all: a ring case
 *     moves only in its owner's try pass or by the partner whose claim
 *     decides the owner's waiter (ring_hand_off), a rendezvous case
 *     only by the claim that decides the owner's waiter, and a decided
 *     waiter is never tried again.
 *  2. Every node wait_cases registers is unlinked before it returns, by a
 *     notifier (under the queue lock) or by the owner (waiter.c,
 *     invariant 3).
 *  3. A notification of a ring case (CASE_TOKEN(i)) is never dropped: the
 *     woken waiter tries case i first in its next round, or, if its
 *     context was cancelled meanwhile, passes it to the next waiter of
 *     that queue (pass_on).
 *  4. After close no send succeeds, and every waiter of the channel was
 *     woken: a ring's mark_bit stays set (chan_ring.h, invariant 4), a
 *     rendezvous channel's queues stay empty (chan_zero.c, invariant 3).
 *  5. Rendezvous locks are taken in address order, before any wait queue
 *     lock (docs/ARCHITECTURE.md, lock order).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chan_internal.h"
#include "chan_ring.h"

/* ---- creation ------------------------------------------------------------- */

static uint64_t next_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

kn_chan *kn_chan_new(size_t elem_size, size_t capacity)
{
	kn_chan *ch;
	size_t stride, bytes, i;

	if (elem_size == 0 || elem_size > KN_CHAN_MAX || capacity > KN_CHAN_MAX) {
		errno = EINVAL;
		return NULL;
	}
	stride = sizeof(uint64_t) + ((elem_size + 7) & ~(size_t)7);
	if (mul_overflows(stride, capacity, &bytes)) {
		errno = EINVAL;
		return NULL;
	}
	ch = kn_alloc_aligned(KN_PAD, sizeof(*ch));
	if (!ch) {
		errno = ENOMEM;
		return NULL;
	}
	memset(ch, 0, sizeof(*ch));
	ch->magic = KN_MAGIC_CHAN;
	ch->esize = elem_size;
	ch->cap = capacity;
	ch->stride = stride;
	ch->mark_bit = next_pow2((uint64_t)capacity + 1);
	ch->one_lap = ch->mark_bit * 2;
	waitq_init(&ch->sendq);
	waitq_init(&ch->recvq);
	if (capacity > 0) {
		ch->slots = kn_alloc_aligned(KN_PAD, bytes);
		if (!ch->slots) {
			kn_free(ch);
			errno = ENOMEM;
			return NULL;
		}
		for (i = 0; i < capacity; i++)
			at_store_relaxed((_Atomic uint64_t *)(ch->slots + i * stride), i);
	}
	return ch;
}

void kn_chan_free(kn_chan *ch)
{
	int k;

	if (!chan_live(ch))
		return;
#ifdef KANAL_DEBUG_CHECKS
	if (!waitq_empty(&ch->sendq) || !waitq_empty(&ch->recvq))
		kn_debug_fail("kn_chan_free while a call waits on the channel");
#endif
	ch->magic = KN_MAGIC_DEAD;
	for (k = 0; k < 2; k++) {
		struct fdsig *s = at_load_acquire(&ch->fds[k]);

		if (s) {
			close(s->fd);
			kn_free(s);
		}
	}
	kn_free(ch->slots);
	kn_free(ch);
}

size_t kn_chan_cap(const kn_chan *ch)
{
	return chan_live(ch) ? ch->cap : 0;
}

size_t kn_chan_elem_size(const kn_chan *ch)
{
	return chan_live(ch) ? ch->esize : 0;
}

size_t kn_chan_len(const kn_chan *ch)
{
	return chan_live(ch) && ch->cap ? ring_len(ch) : 0;
}

/* Operations a ring position stands for: cap per lap, plus the index. */
static uint64_t ring_ops(const kn_chan *ch, uint64_t pos)
{
	return pos / ch->one_lap * ch->cap + (pos & (ch->mark_bit - 1));
}

int kn_chan_stats(const kn_chan *cch, struct kn_chan_stats *out)
{
	kn_chan *ch = (kn_chan *)cch;

	if (!chan_live(ch) || !out)
		return EINVAL;
	if (ch->cap) {
		out->sends = ring_ops(ch, at_load_relaxed(&ch->tail) & ~ch->mark_bit);
		out->recvs = ring_ops(ch, at_load_relaxed(&ch->head));
	} else {
		out->sends = out->recvs = at_load_relaxed(&ch->handoffs);
	}
	out->send_waits = at_load_relaxed(&ch->waits[0]);
	out->recv_waits = at_load_relaxed(&ch->waits[1]);
	out->peak_send_waiters = at_load_relaxed(&ch->peak[0]);
	out->peak_recv_waiters = at_load_relaxed(&ch->peak[1]);
	return 0;
}

bool kn_chan_is_closed(const kn_chan *ch)
{
	if (!chan_live(ch))
		return false;
	if (ch->cap)
		return (at_load_seq_cst(&((kn_chan *)ch)->tail) & ch->mark_bit) != 0;
	return at_load_seq_cst(&((kn_chan *)ch)->closed) != 0;
}

/* ---- fd signals ------------------------------------------------------------- */

/* Would an operation of this kind complete (or fail with EPIPE) now? */
static bool chan_ready(kn_chan *ch, int kind)
{
	if (ch->cap)
		return ring_ready(ch, kind);
	if (at_load_seq_cst(&ch->closed))
		return true;
	return !waitq_empty(chan_queue(ch, kind == KN_SEND ? KN_RECV : KN_SEND));
}

/* Make the fd show the current readiness. Syncs are combined: every
 * caller marks the state dirty; one at a time (busy) clears the mark, reads
 * readiness and fixes the counter, and loops while someone marked it again
 * meanwhile. So the last sync reads readiness after the last change. Out
 * of line: fdsig_update, on every rendezvous operation, is one load. */
static __attribute__((noinline)) void fdsig_sync(kn_chan *ch, int kind,
						 struct fdsig *s)
{
	uint64_t one = 1;
	bool ready;

	at_store_seq_cst(&s->dirty, 1);
	while (at_load_seq_cst(&s->dirty)) {
		if (!lock_try(&s->busy, LOCK_LEAF))
			return; /* the holder will see dirty */
		at_store_seq_cst(&s->dirty, 0);
		ready = chan_ready(ch, kind);
		if (ready != s->level) {
			/* The counter is 0 or 1 and only the holder moves it,
			 * so neither call can fail or block. */
			if (ready ? write(s->fd, &one, sizeof(one)) < 0
				  : read(s->fd, &one, sizeof(one)) < 0)
				ready = s->level;
			s->level = ready;
		}
		lock_release(&s->busy);
	}
}

static inline void fdsig_update(kn_chan *ch, int kind)
{
	struct fdsig *s = at_load_acquire(&ch->fds[kind == KN_SEND]);

	if (unlikely(s))
		fdsig_sync(ch, kind, s);
}

static inline void fd_update_both(kn_chan *ch)
{
	fdsig_update(ch, KN_RECV);
	fdsig_update(ch, KN_SEND);
}

int kn_chan_fd(kn_chan *ch, int op)
{
	struct fdsig *s;
	int k;

	if (!chan_live(ch) || (op != KN_SEND && op != KN_RECV)) {
		errno = EINVAL;
		return -1;
	}
	k = op == KN_SEND;
	s = at_load_acquire(&ch->fds[k]);
	if (s)
		return s->fd;
	lock_acquire(&ch->lock, LOCK_CHAN);
	s = at_load_acquire(&ch->fds[k]);
	if (!s) {
		s = kn_alloc(sizeof(*s));
		if (s) {
			s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			at_store_relaxed(&s->dirty, 0);
			s->busy = (struct lock)LOCK_INIT;
			s->level = false;
			if (s->fd < 0) {
				kn_free(s);
				s = NULL;
			} else {
				at_store_release(&ch->fds[k], s);
			}
		} else {
			errno = ENOMEM;
		}
	}
	lock_release(&ch->lock);
	if (!s)
		return -1;
	fdsig_update(ch, op);
	return s->fd;
}

/* ---- notification --------------------------------------------------------- */

/*
 * An operation of kind_done moved a value of ring ch: complete the oldest
 * waiting operation of the other kind with the ring, as Go's buffered
 * channel does, rather than wake it to retry. A receive that freed a slot
 * completes a waiting send (its value goes into the ring): the receiver
 * then finds that value in the ring instead of waiting for it, so a full
 * ring costs one wait per value (the sender's), not two (the sender's and
 * then the receiver's, which ran dry while the woken sender had not yet
 * run: chan_mpmc_4p4c_cap1 on one CPU). A send that filled a slot
 * completes a waiting receive (the oldest value leaves the ring into the
 * receiver's buffer): the woken receiver returns at once instead of going
 * round its wait loop to take the value itself (a second try pass, ring
 * operation and signal per value on a one-worker hand-off). Either way the
 * value moves through the ring, so its order is the ring's. The claim
 * comes first: the partner may be deciding a timeout, a cancellation or
 * another case of its select, and a claimed waiter waits for the outcome.
 * A move that then fails (an operation on the fast path took the slot or
 * the value, or the ring was closed) turns the claim into the plain
 * notification: the partner retries. A completed partner's own operation
 * only notifies the side after it (no chain of completions in one call).
 * Only on a small ring (below POLL_BATCH_CAP, a hand-off of one value per
 * wait): a partner of a large one has the rest of the ring to work on
 * while the woken waiter gets going, and completing its operation would
 * only move its index and slot writes to this core (fanout4_fanin, cap 64:
 * 12% slower on 2 CPUs when receivers completed sends). True if a waiter
 * was claimed.
 */
/* Rings below this capacity are hand-offs, one value per wait (here and in
 * poll_first). */
#define POLL_BATCH_CAP 64

static __attribute__((noinline)) bool ring_hand_off(kn_chan *ch, int kind_done)
{
	int kind = kind_done == KN_SEND ? KN_RECV : KN_SEND;
	struct waitq *q = chan_queue(ch, kind);
	uint32_t prev = SEL_WAITING, token;
	struct wait_node *n;
	int r;

	if (ch->cap >= POLL_BATCH_CAP)
		return waitq_notify_one_slow(q);
	n = waitq_claim_one(q, &prev);
	if (!n)
		return false;
	token = n->token;
	r = kind == KN_SEND ? ring_try_send(ch, n->data) : ring_try_recv(ch, n->data);
	if (r == 0) {
		waiter_publish(n->w, token + 1, prev); /* TOKEN_DONE */
		waitq_notify_one(chan_queue(ch, kind_done));
	} else {
		waiter_publish(n->w, token, prev);
	}
	return true;
}

/* n values of kind_done moved: complete (or, on a large ring, wake) up to
 * n waiters of the other side. Nobody waiting, the common case of every
 * send and receive that did not wait, is one load (ring_hand_off is out of
 * line, so that this path does not pay its frame; this one is inlined into
 * every ring operation, so that it does not pay a call). */
static inline __attribute__((always_inline)) void chan_signal(kn_chan *ch, int kind_done, size_t n)
{
	struct waitq *q = chan_queue(ch, kind_done == KN_SEND ? KN_RECV : KN_SEND);

	while (n-- && !waitq_empty(q) && ring_hand_off(ch, kind_done))
		;
	if (unlikely(at_load_acquire(&ch->fds[0]) || at_load_acquire(&ch->fds[1])))
		fd_update_both(ch);
}

int kn_chan_close(kn_chan *ch)
{
	int r;

	if (!chan_live(ch))
		return EINVAL;
	if (ch->cap) {
		r = ring_close(ch);
		if (r == 0) {
			waitq_notify_all(&ch->sendq);
			waitq_notify_all(&ch->recvq);
		}
	} else {
		r = zero_close(ch);
	}
	if (r == 0)
		fd_update_both(ch);
	return r;
}

/* ---- trying ---------------------------------------------------------------- */

/* Inlined: a lone operation's kind is a constant in each public caller, so
 * its fast path is one straight line of the one ring operation. */
static inline __attribute__((always_inline)) int ring_op(struct op *o)
{
	int r = o->kind == KN_SEND ? ring_try_send(o->ch, o->val)
				   : ring_try_recv(o->ch, o->val);

	if (r == 0)
		chan_signal(o->ch, o->kind, 1);
	return r == EPIPE ? op_closed(o) : r;
}

/* ---- the wait loop ------------------------------------------------------------ */

#define CASE_INLINE 8

/* The line a rendezvous partner fetches from a waiting thread holds all it
 * needs there: the node, the value, and the waiter it decides. */
struct wait_case {
	struct wait_node node;
	/* A rendezvous value of up to CASE_INLINE bytes waits here; a larger
	 * one stays in the caller's buffer (one more line to fetch). */
	unsigned char value[CASE_INLINE];
	struct waiter w; /* wc[0]'s is the waiter of the whole wait */
	struct op op;
	uint64_t head, tail; /* ring: positions before the last failed try */
};
/* Cases on the stack start a line, so a node, its value and the waiter of
 * a lone operation share one. */
#define CASE_ALIGNED __attribute__((aligned(KN_CACHE_LINE)))

/* A partner reads the waiter's sel and fib; its on (what it waits on,
 * read only by its owner's thread) may spill into the next line, the
 * owner's op's. */
_Static_assert(offsetof(struct wait_case, w) + offsetof(struct waiter, on) <= KN_CACHE_LINE,
	       "a node, its value and its waiter share one line");

/* Where a partner finds (send) or leaves (receive) a rendezvous case's
 * value while it waits. */
static void *case_data(struct wait_case *c)
{
	if (c->op.ch->esize > CASE_INLINE)
		return c->op.val;
	if (c->op.kind == KN_SEND)
		copy_value(c->value, c->op.val, c->op.ch->esize);
	return c->value;
}

/* A case completed by its partner: collect a received value (a ring's
 * partner put it in the caller's buffer, a rendezvous partner in the case
 * when it fits). */
static void case_done(struct wait_case *c)
{
	if (c->op.kind == KN_RECV && !c->op.ch->cap && c->op.ch->esize <= CASE_INLINE)
		copy_value(c->op.val, c->value, c->op.ch->esize);
}

/* The distinct rendezvous channels of a wait, sorted by address. */
struct zlocks {
	kn_chan **ch;
	size_t n;
};

static void zlocks_add(struct zlocks *z, kn_chan *ch)
{
	size_t i, j;

	for (i = 0; i < z->n && z->ch[i] <= ch; i++)
		if (z->ch[i] == ch)
			return;
	for (j = z->n; j > i; j--)
		z->ch[j] = z->ch[j - 1];
	z->ch[i] = ch;
	z->n++;
}

static void zlocks_acquire(struct zlocks *z)
{
	size_t i;

	for (i = 0; i < z->n; i++)
		lock_acquire(&z->ch[i]->lock, LOCK_CHAN);
}

/* Release all, except the channel whose lock a hand-off already dropped. */
static void zlocks_release(struct zlocks *z, kn_chan *dropped)
{
	size_t i;

	for (i = 0; i < z->n; i++)
		if (z->ch[i] != dropped)
			lock_release(&z->ch[i]->lock);
}

static _Thread_local uint64_t rng_state;

static uint32_t rng_next(void)
{
	if (unlikely(rng_state == 0))
		rng_state = kn_now() ^ (uintptr_t)&rng_state ^ 0x9e3779b97f4a7c15ull;
	return (uint32_t)(xorshift64(&rng_state) >> 32);
}

/* Uniform random permutation (Fisher-Yates) of 0..n-1. */
static void shuffle(size_t *order, size_t n)
{
	size_t i, j, t;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; i > 1; i--) {
		j = (size_t)(((uint64_t)rng_next() * i) >> 32);
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

/* Move case i to the front of the order, keeping the rest. */
static void put_first(size_t *order, size_t n, size_t i)
{
	size_t k;

	for (k = 0; k < n && order[k] != i; k++)
		;
	for (; k > 0; k--)
		order[k] = order[k - 1];
	order[0] = i;
}

/* A ring case's try. With snap, a failed try leaves the positions it saw
 * before it for rings_moved; they are read only after a first failure, so
 * a ready ring costs no extra loads of lines its partners write, and only
 * waits that may give up (default, deadline) read them at all. */
static int ring_try(struct wait_case *c, bool snap)
{
	int r = ring_op(&c->op);

	if (r != EAGAIN || !snap)
		return r;
	c->head = at_load_seq_cst(&c->op.ch->head);
	c->tail = at_load_seq_cst(&c->op.ch->tail);
	return ring_op(&c->op);
}

/* One try pass, rendezvous locks held. EAGAIN if no case was ready. */
static int try_pass(struct wait_case *wc, const size_t *order, size_t n,
		    struct zlocks *z, bool snap, size_t *fired)
{
	size_t k;
	int r;

	for (k = 0; k < n; k++) {
		struct op *o = &wc[order[k]].op;
		bool dropped = false;

		if (!o->ch)
			continue;
		r = o->ch->cap ? ring_try(&wc[order[k]], snap) : zero_try_locked(o, &dropped);
		if (r != EAGAIN) {
			zlocks_release(z, dropped ? o->ch : NULL);
			*fired = order[k];
			if (!o->ch->cap)
				fd_update_both(o->ch);
			return r;
		}
	}
	return EAGAIN;
}

/* Did any ring case's channel move since its failed try? */
static bool rings_moved(const struct wait_case *wc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		kn_chan *ch = wc[i].op.ch;

		if (ch && ch->cap && (at_load_seq_cst(&ch->head) != wc[i].head ||
				      at_load_seq_cst(&ch->tail) != wc[i].tail))
			return true;
	}
	return false;
}

/* In the try order: partners pick the oldest node, so two cases on the
 * same rendezvous channel must not always queue in index order. */
static void register_all(struct wait_case *wc, const size_t *order, size_t n,
			 struct waiter *w)
{
	size_t k, i;

	for (k = 0; k < n; k++) {
		struct op *o = &wc[i = order[k]].op;

		wc[i].node = WAIT_NODE(w, CASE_TOKEN(i));
		if (!o->ch)
			continue;
		if (o->ch->cap) {
			struct waitq *q = chan_queue(o->ch, o->kind);

			/* A send's value, or a receive's buffer, for a
			 * partner that completes it (ring_hand_off). */
			wc[i].node.data = o->val;
			waitq_lock(q);
			waitq_push_locked(q, &wc[i].node);
			chan_count_wait(o->ch, o->kind);
			waitq_unlock(q);
		} else {
			zero_register_locked(o, &wc[i].node, case_data(&wc[i]));
			chan_count_wait(o->ch, o->kind);
		}
	}
}

static bool any_ring_ready(struct wait_case *wc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (wc[i].op.ch && wc[i].op.ch->cap &&
		    ring_ready(wc[i].op.ch, wc[i].op.kind))
			return true;
	return false;
}

/* Unlink every node except the one its decider already unlinked. */
static void unregister_all(struct wait_case *wc, size_t n, uint32_t sel)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct op *o = &wc[i].op;

		if (!o->ch || (sel >= SEL_CASE0 && TOKEN_CASE(sel) == i))
			continue;
		if (o->ch->cap) {
			waitq_remove(chan_queue(o->ch, o->kind), &wc[i].node);
		} else {
			lock_acquire(&o->ch->lock, LOCK_CHAN);
			if (wc[i].node.linked)
				waitq_unlink_locked(chan_queue(o->ch, o->kind), &wc[i].node);
			lock_release(&o->ch->lock);
		}
	}
}

static void update_zero_fds(struct wait_case *wc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (wc[i].op.ch && !wc[i].op.ch->cap)
			fd_update_both(wc[i].op.ch);
}

/*
 * A large ring that a waiter finds empty (full) is usually being filled
 * (drained) by its partner right now, item by item: a check at once takes
 * one item from the line the partner is still writing, and the two then
 * trade that line for every few items. Checking first after 8 pauses (about
 * 300 ns) lets a few lines' worth build up, taken then in a run. A small
 * ring is a hand-off, one item per wait, where the delay would only add
 * latency.
 */
#define POLL_BATCH_FIRST 3

static unsigned poll_first(const struct wait_case *wc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (wc[i].op.ch && wc[i].op.ch->cap < POLL_BATCH_CAP)
			return 0;
	return POLL_BATCH_FIRST;
}

/*
 * Before registering, a wait over ring channels only polls them for a
 * while (poll_begin: adaptive, bounded, yielding). Polling threads do not
 * announce themselves: a notifier that skipped sleepers because someone
 * polls can lose a wake-up (the poller may give up, or take only one of
 * several values) and lets pollers starve sleepers under
 * oversubscription; the spin model found both (tests/model/waiter.pml).
 * Waits with rendezvous cases do not poll: trying those takes their locks.
 * A fiber polls only while no other fiber of its thread is runnable:
 * switching to one costs less than a poll, and polling would hold it up.
 */
static int poll_rings(struct wait_case *wc, const size_t *order, size_t n,
		      kn_ctx *ctx, size_t *fired)
{
	struct zlocks none = { NULL, 0 };
	struct poll p;
	int r = EAGAIN;

	if (waiter_others_ready())
		return r;
	poll_begin(&p, poll_first(wc, n));
	while (poll_next(&p) && !(ctx && ctx_done(ctx)) &&
	       !waiter_others_ready() &&
	       (r = try_pass(wc, order, n, &none, false, fired)) == EAGAIN)
		;
	poll_end(&p, r != EAGAIN);
	return r;
}

/* A waiter that gives up for its context after a ring notification
 * (CASE_TOKEN of a ring case) hands it to the next waiter of that queue:
 * the value it announced must not wait for a later one. */
static void pass_on(struct wait_case *wc, uint32_t sel)
{
	kn_chan *ch;

	if (sel < SEL_CASE0)
		return;
	ch = wc[TOKEN_CASE(sel)].op.ch;
	if (ch->cap)
		waitq_notify_one(chan_queue(ch, wc[TOKEN_CASE(sel)].op.kind));
}

/* What a wait on these cases waits on (kn_dump): a lone operation's
 * channel and direction, or a select (its first case's channel). */
static uint64_t wait_on_cases(const struct wait_case *wc, size_t n)
{
	unsigned kind = n > 1 ? WAIT_SELECT :
			wc[0].op.kind == KN_SEND ? WAIT_SEND : WAIT_RECV;

	return WAIT_ON(kind, wc[0].op.ch);
}

/* wait_cases' flag beside the public KN_SELECT_*: the caller has just
 * tried the cases (a lone ring operation's fast path), so the first round
 * starts after its try pass, unless that pass must record the positions
 * for a wait that may give up (snap). */
#define WAIT_TRIED (1u << 31)

/* One copy for lone operations and selects (not inlined into chan_wait). */
static __attribute__((noinline)) int wait_cases(struct wait_case *wc, size_t n, size_t *order,
		      struct zlocks *z, unsigned flags, uint64_t deadline,
		      kn_ctx *ctx, size_t *fired)
{
	struct waiter *w = &wc[0].w;
	struct ctx_watch cw;
	uint32_t sel;
	bool polled = false;
	bool snap = (flags & KN_SELECT_DEFAULT) || deadline != KN_FOREVER;
	bool tried = (flags & WAIT_TRIED) && !snap;
	int r;

	if (ctx && ctx_done(ctx))
		return ECANCELED;
	/* A lone rendezvous operation: the partner's line is on its way
	 * while the lock's comes (chan_zero.c). */
	if (n == 1 && z->n == 1)
		zero_prefetch(z->ch[0]);
	for (;;) {
		zlocks_acquire(z);
		r = tried ? EAGAIN : try_pass(wc, order, n, z, snap, fired);
		tried = false;
		if (r != EAGAIN)
			return r;
		if (ctx && ctx_done(ctx)) {
			zlocks_release(z, NULL);
			return ECANCELED;
		}
		if ((flags & KN_SELECT_DEFAULT) || deadline_left(deadline) == 0) {
			bool moved = rings_moved(wc, n);

			zlocks_release(z, NULL);
			if (moved)
				continue;
			return (flags & KN_SELECT_DEFAULT) ? EAGAIN : ETIMEDOUT;
		}
		if (!polled && z->n == 0) {
			polled = true;
			r = poll_rings(wc, order, n, ctx, fired);
			if (r != EAGAIN)
				return r;
		}
		waiter_init(w, wait_on_cases(wc, n));
		/* Cancellation first: watched before any partner can
		 * find a node (waiter.h). */
		waiter_watch_ctx(w, ctx, &cw);
		if (waiter_peek(w) == SEL_CANCEL) {
			waiter_unwatch_ctx(&cw);
			zlocks_release(z, NULL);
			return ECANCELED;
		}
		/* Register, re-check, park, unregister written out, not
		 * waitq_wait: a rendezvous partner decides a node by a claim
		 * and takes or gives the case's value through it (a
		 * hand-off), unlinking it itself; zero-channel nodes go in
		 * under the channel locks taken for the try; and the
		 * watch above must precede any node. The no-lost-wake-up
		 * argument is waiter.c's: every push precedes
		 * any_ring_ready's seq_cst loads (rendezvous partners find
		 * the nodes under the locks). */
		register_all(wc, order, n, w);
		zlocks_release(z, NULL);
		update_zero_fds(wc, n);
		if (any_ring_ready(wc, n))
			waiter_decide(w, SEL_ABORT);
		sel = waiter_park(w, deadline, NULL);
		unregister_all(wc, n, sel);
		waiter_unwatch_ctx(&cw);
		if (z->n)
			update_zero_fds(wc, n);
		if (sel >= SEL_CASE0 && TOKEN_DONE(sel)) {
			*fired = TOKEN_CASE(sel);
			case_done(&wc[*fired]);
			return 0;
		}
		if (ctx && ctx_done(ctx)) {
			pass_on(wc, sel);
			return ECANCELED;
		}
		if (sel >= SEL_CASE0)
			put_first(order, n, TOKEN_CASE(sel));
		/* SEL_TIMEOUT: the next round's try pass may still succeed;
		 * only then is it reported. */
	}
}

/* ---- lone operations ------------------------------------------------------ */

/* A lone operation that must wait (or, rendezvous, try under the lock):
 * out of line, so that the ring's fast path in chan_op does not pay the
 * line-aligned frame of its wait case. */
static __attribute__((noinline)) int chan_wait(kn_chan *ch, int kind, void *val,
					       uint64_t deadline, kn_ctx *ctx,
					       bool try_only)
{
	struct wait_case wc CASE_ALIGNED;
	kn_chan *zc[1];
	struct zlocks z = { zc, 0 };
	size_t order = 0, fired;

	wc.op = (struct op){ ch, kind, val };
	if (!ch->cap)
		zlocks_add(&z, ch);
	return wait_cases(&wc, 1, &order, &z,
			  try_only ? KN_SELECT_DEFAULT : ch->cap ? WAIT_TRIED : 0,
			  deadline, ctx, &fired);
}

/* Inlined into each caller (as ring_op and chan_signal are into it): its
 * kind and flags are constants there, and a lone operation that does not
 * wait pays no call. */
static inline __attribute__((always_inline)) int
chan_op(kn_chan *ch, int kind, void *val, uint64_t deadline, kn_ctx *ctx,
	bool try_only)
{
	if (unlikely(!chan_live(ch) || !val))
		return EINVAL;
	if (unlikely(ctx && ctx_done(ctx)))
		return ECANCELED;
	if (ch->cap) {
		struct op o = { ch, kind, val };
		int r = ring_op(&o);

		if (likely(r != EAGAIN) || try_only)
			return r;
	}
	return chan_wait(ch, kind, val, deadline, ctx, try_only);
}

int kn_chan_send(kn_chan *ch, const void *elem)
{
	return chan_op(ch, KN_SEND, (void *)elem, KN_FOREVER, NULL, false);
}

int kn_chan_try_send(kn_chan *ch, const void *elem)
{
	return chan_op(ch, KN_SEND, (void *)elem, 0, NULL, true);
}

int kn_chan_send_until(kn_chan *ch, const void *elem, uint64_t deadline)
{
	return chan_op(ch, KN_SEND, (void *)elem, deadline, NULL, false);
}

int kn_chan_send_ctx(kn_chan *ch, const void *elem, kn_ctx *ctx)
{
	return chan_op(ch, KN_SEND, (void *)elem, KN_FOREVER, ctx, false);
}

int kn_chan_recv(kn_chan *ch, void *out)
{
	return chan_op(ch, KN_RECV, out, KN_FOREVER, NULL, false);
}

int kn_chan_try_recv(kn_chan *ch, void *out)
{
	return chan_op(ch, KN_RECV, out, 0, NULL, true);
}

int kn_chan_recv_until(kn_chan *ch, void *out, uint64_t deadline)
{
	return chan_op(ch, KN_RECV, out, deadline, NULL, false);
}

int kn_chan_recv_ctx(kn_chan *ch, void *out, kn_ctx *ctx)
{
	return chan_op(ch, KN_RECV, out, KN_FOREVER, ctx, false);
}

/* Through chan_op's public callers, not chan_op itself: each of them
 * already has its own inlined copy. */
int kn_chan_sized(kn_chan *ch, int op, const void *elem, size_t size,
		  uint64_t deadline, kn_ctx *ctx)
{
	if (!chan_live(ch) || size != ch->esize ||
	    (ctx && deadline != KN_FOREVER && !(op & KN_TRY)))
		return EINVAL;
	switch (op) {
	case KN_SEND:
		return ctx ? kn_chan_send_ctx(ch, elem, ctx) :
		       kn_chan_send_until(ch, elem, deadline);
	case KN_SEND | KN_TRY:
		return kn_chan_try_send(ch, elem);
	case KN_RECV:
		return ctx ? kn_chan_recv_ctx(ch, (void *)elem, ctx) :
		       kn_chan_recv_until(ch, (void *)elem, deadline);
	case KN_RECV | KN_TRY:
		return kn_chan_try_recv(ch, (void *)elem);
	default:
		return EINVAL;
	}
}

/* A run of buffered values moved with one CAS, or 0: the single-value
 * path (which waits, and reports closing and cancellation) decides, and
 * moves a lone value (n < 2) more cheaply than a run would (batch 1 of the
 * pattern library). */
static size_t ring_batch(kn_chan *ch, int kind, unsigned char *vals, size_t n,
			 kn_ctx *ctx)
{
	size_t k;

	if (n < 2 || !ch->cap || (ctx && ctx_done(ctx)))
		return 0;
	k = ring_move_n(ch, kind, vals, n);
	if (k)
		chan_signal(ch, kind, k);
	return k;
}

int kn_chan_send_batch(kn_chan *ch, const void *elems, size_t n, size_t *sent,
		       uint64_t deadline, kn_ctx *ctx)
{
	unsigned char *p = (unsigned char *)elems;
	size_t i = 0, k;
	int r = 0;

	if (!chan_live(ch) || (!elems && n))
		return EINVAL;
	while (i < n) {
		k = ring_batch(ch, KN_SEND, p + i * ch->esize, n - i, ctx);
		if (k) {
			i += k;
			continue;
		}
		r = chan_op(ch, KN_SEND, p + i * ch->esize, deadline, ctx, false);
		if (r)
			break;
		i++;
	}
	if (sent)
		*sent = i;
	return r;
}

int kn_chan_recv_batch(kn_chan *ch, void *elems, size_t n, size_t *received,
		       uint64_t deadline, kn_ctx *ctx)
{
	unsigned char *p = elems;
	size_t i;
	int r;

	if (received)
		*received = 0;
	if (!chan_live(ch) || !elems || n == 0)
		return EINVAL;
	i = ring_batch(ch, KN_RECV, p, n, ctx);
	if (!i) {
		r = chan_op(ch, KN_RECV, p, deadline, ctx, false);
		if (r)
			return r;
		i = 1 + ring_batch(ch, KN_RECV, p + ch->esize, n - 1, NULL);
	}
	/* Rendezvous: the rest only from senders already waiting. */
	for (; !ch->cap && i < n; i++)
		if (chan_op(ch, KN_RECV, p + i * ch->esize, 0, NULL, true))
			break;
	if (received)
		*received = i;
	return 0;
}

/* ---- select ---------------------------------------------------------------- */

int kn_select(const struct kn_case *cases, size_t n, unsigned flags,
	      uint64_t deadline, kn_ctx *ctx, size_t *fired)
{
	struct wait_case stack_wc[KN_SELECT_STACK_CASES] CASE_ALIGNED;
	size_t stack_order[KN_SELECT_STACK_CASES];
	kn_chan *stack_z[KN_SELECT_STACK_CASES];
	struct wait_case *wc = stack_wc;
	size_t *order = stack_order;
	struct zlocks z = { stack_z, 0 };
	size_t i, dummy;
	int r;

	if ((n && !cases) || (flags & ~(KN_SELECT_DEFAULT | KN_SELECT_BIASED)))
		return EINVAL;
	for (i = 0; i < n; i++)
		if ((cases[i].op != KN_SEND && cases[i].op != KN_RECV) ||
		    (cases[i].ch && (!cases[i].val || !chan_live(cases[i].ch))))
			return EINVAL;
	if (n > KN_SELECT_STACK_CASES) {
		size_t bytes;
		unsigned char *mem;

		if (mul_overflows(n, sizeof(*wc) + sizeof(*order) + sizeof(kn_chan *), &bytes))
			return ENOMEM;
		mem = kn_alloc(bytes);
		if (!mem)
			return ENOMEM;
		wc = (struct wait_case *)mem;
		order = (size_t *)(wc + n);
		z.ch = (kn_chan **)(order + n);
	}
	for (i = 0; i < n; i++) {
		wc[i].op = (struct op){ cases[i].ch, cases[i].op, cases[i].val };
		if (cases[i].ch && !cases[i].ch->cap)
			zlocks_add(&z, cases[i].ch);
		order[i] = i;
	}
	if (!(flags & KN_SELECT_BIASED))
		shuffle(order, n);
	r = wait_cases(wc, n, order, &z, flags, deadline, ctx, fired ? fired : &dummy);
	if (wc != stack_wc)
		kn_free(wc);
	return r;
}

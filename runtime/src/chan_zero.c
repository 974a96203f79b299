/*
 * chan_zero.c - rendezvous channels, capacity 0 (internal).
 * Model: tests/model/chan_close.pml -DRENDEZVOUS (run by tests/model/check).
 *
 * Algorithm (Go's unbuffered channel): the channel lock guards two FIFO
 * queues of blocked operations, senders (node data = the value) and
 * receivers (node data = the destination). An operation first looks for a
 * waiting partner on the other queue; if it finds one it claims the
 * partner's waiter (waiter_claim: the partner may be a select that another
 * case already won, then it is skipped), copies the value between its own
 * buffer and the partner's node data, unlinks the node, publishes
 * CASE_TOKEN + 1 ("done"), and only then drops the lock and wakes the
 * partner if it slept. Otherwise, if it may wait, it enqueues its own node
 * under the same lock hold; the wait loop in chan.c parks.
 *
 * Why the hand-off is one burst under the lock: a lone waiting operation
 * keeps its node, its value (up to 8 bytes; a larger one stays in the
 * caller's buffer) and its waiter word on one line (chan.c), and polls the
 * word. Claim, copy, unlink and publish then write that one line back to
 * back, fetched once for writing (prefetch_write), so the poller's reads
 * rarely fall between them and take the line away. The lock, closed and
 * both queues share another line (chan_internal.h): a hand-off between
 * threads moves two lines to the decider and one back.
 *
 * The decider's two misses (the channel's line, then the node it finds
 * there) would follow each other; a partner hint lets them overlap. Two
 * threads that meet on a channel often meet again with the partner's node
 * at the same address (a ping-pong, a pipeline stage: the same call at the
 * same depth of the same stack), so each thread remembers the last node it
 * decided and on which channel, and its next lone operation on that
 * channel prefetches that line for writing before it takes the lock
 * (zero_prefetch). A stale hint costs one useless prefetch, never a fault
 * or a wrong read: the address is only prefetched. Fibers keep no hint,
 * on either side: a pool worker's partners mostly run on its own CPU,
 * where the line already is, and one caught before it suspended would have
 * its line pulled from another worker for nothing (kanal_go ping-pong was
 * 6% slower with hints).
 *
 * Because "look for a partner" and "enqueue" happen under one hold of the
 * lock, two operations that could pair never both end up waiting; select
 * holds the locks of all its rendezvous channels (in address order) across
 * its whole try-then-register pass for the same reason.
 *
 * Linearization: a hand-off at the partner's successful claim (both
 * operations complete there); close at its store of closed under the lock.
 *
 * Invariants
 *
 *  1. A queued node belongs to an undecided waiter, or to one decided
 *     elsewhere whose owner will unlink it under the lock.
 *  2. A claimed waiter's buffer is touched only by its claimer, until the
 *     claimer publishes; the claimer holds the lock throughout.
 *  3. After close, both queues are empty and stay empty (close decides
 *     every node with its retry token; retries see closed).
 */
#include <string.h>

#include "chan_internal.h"

_Thread_local struct zero_hint zero_hint;

int zero_try_locked(struct op *o, bool *unlocked)
{
	kn_chan *ch = o->ch;
	struct waitq *partners = chan_queue(ch, o->kind == KN_SEND ? KN_RECV : KN_SEND);
	struct wait_node *n;
	uint32_t prev;

	if (at_load_relaxed(&ch->closed))
		return op_closed(o);
	/* The partner's line is read, then written: fetch it once. */
	if (partners->head)
		prefetch_write(partners->head);
	while ((n = waitq_pick_locked(partners)) != NULL) {
		struct wake k;

		if (!waiter_claim(n->w, &prev))
			continue;
		if (prev != SEL_SUSPENDED && !waiter_suspends())
			zero_hint = (struct zero_hint){ ch, n };
		if (o->kind == KN_SEND)
			copy_value(n->data, o->val, ch->esize);
		else
			copy_value(o->val, n->data, ch->esize);
		waitq_unlink_locked(partners, n);
		/* Only lock holders write it: no atomic RMW needed. */
		at_store_relaxed(&ch->handoffs, at_load_relaxed(&ch->handoffs) + 1);
		k = waiter_publish_quiet(n->w, n->token + 1, prev);
		lock_release(&ch->lock);
		*unlocked = true;
		waiter_wake(k);
		return 0;
	}
	return EAGAIN;
}

void zero_register_locked(struct op *o, struct wait_node *n, void *data)
{
	n->data = data;
	waitq_push_locked(chan_queue(o->ch, o->kind), n);
}

static void decide_all_locked(struct waitq *q)
{
	struct wait_node *n;

	while ((n = q->head) != NULL) {
		waitq_unlink_locked(q, n);
		waiter_decide(n->w, n->token);
	}
}

int zero_close(kn_chan *ch)
{
	lock_acquire(&ch->lock, LOCK_CHAN);
	if (at_load_relaxed(&ch->closed)) {
		lock_release(&ch->lock);
		return EPIPE;
	}
	at_store_seq_cst(&ch->closed, 1);
	decide_all_locked(&ch->sendq);
	decide_all_locked(&ch->recvq);
	lock_release(&ch->lock);
	return 0;
}

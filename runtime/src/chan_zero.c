/*
 * chan_zero.c - rendezvous channels, capacity 0 (internal).
 * Model: tests/model/chan_close.pml -DRENDEZVOUS (run by tests/model/check).
 *
 * Algorithm (Go's unbuffered channel): the channel lock guards two FIFO
 * queues of blocked operations, senders (node data = the value) and
 * receivers (node data = the destination). An operation first looks for a
 * waiting partner on the other queue; if it finds one it claims the
 * partner's waiter (waiter_claim: the partner may be a select that another
 * case already won, then it is skipped), unlinks it, drops the lock, copies
 * the value between its own buffer and the partner's node data and
 * publishes CASE_TOKEN + 1 ("done"). Otherwise, if it may wait, it enqueues
 * its own node under the same lock hold; the wait loop in chan.c parks. A
 * waiting value of up to 16 bytes sits in the node itself (chan.c), the
 * line the partner reads anyway; a larger one stays in the caller's
 * buffer. The lock and both queues share one line (chan_internal.h), so a
 * hand-off between threads fetches three lines of the waiter's: the
 * channel's, the node's and the waiter word.
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
 *     claimer publishes.
 *  3. After close, both queues are empty and stay empty (close decides
 *     every node with its retry token; retries see closed).
 */
#include <string.h>

#include "chan_internal.h"

int zero_try_locked(struct op *o, bool *unlocked)
{
	kn_chan *ch = o->ch;
	struct waitq *partners = chan_queue(ch, o->kind == KN_SEND ? KN_RECV : KN_SEND);
	struct wait_node *n;
	uint32_t prev;

	if (at_load_relaxed(&ch->closed))
		return EPIPE;
	while ((n = waitq_pick_locked(partners)) != NULL) {
		if (!waiter_claim(n->w, &prev))
			continue;
		waitq_unlink_locked(partners, n);
		lock_release(&ch->lock);
		*unlocked = true;
		if (o->kind == KN_SEND)
			copy_value(n->data, o->val, ch->esize);
		else
			copy_value(o->val, n->data, ch->esize);
		waiter_publish(n->w, n->token + 1, prev);
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
	lock_acquire(&ch->lock);
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

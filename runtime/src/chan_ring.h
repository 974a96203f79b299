/*
 * chan_ring.h - the bounded MPMC ring of buffered channels (internal).
 *
 * Included by chan.c only: the ring operations are the fast path of every
 * send and receive, so they are inlined into it.
 *
 * Algorithm (Vyukov's bounded queue, in the array-channel form of
 * crossbeam): cap slots, each a sequence stamp followed by the value. head
 * and tail are positions lap * one_lap + index, where one_lap is a power of
 * two above cap, so a position names both a slot and the lap it belongs to.
 * Slot i starts with stamp i (lap 0, empty).
 *
 *   send: at tail t, if slot(t).stamp == t the slot is free for this lap:
 *         CAS tail t -> next(t), write the value, stamp = t + 1 (full).
 *   recv: at head h, if slot(h).stamp == h + 1 the slot holds this lap's
 *         value: CAS head h -> next(h), read, stamp = h + one_lap (free
 *         for the next lap).
 *
 * A sender that finds the slot still full from the previous lap reads head
 * (seq_cst) to tell "full" from "a receiver is mid-read"; a receiver that
 * finds it empty reads tail to tell "empty" from "a sender is mid-write".
 * Mid-write/mid-read means another thread owns the slot between its CAS and
 * its stamp store; we back off (yielding once spinning is exhausted, since
 * that thread may be preempted on an oversubscribed machine) and retry.
 *
 * Close sets mark_bit in tail with one fetch_or: senders see it in the tail
 * they must read anyway, receivers drain to tail and then see it.
 *
 * Linearization points: a send (or a batch of sends) at its successful
 * tail CAS, a receive (or a batch) at its successful head CAS, close at the
 * fetch_or; "full" at the head load that proves it, "empty"/"closed and
 * drained" at the tail load.
 *
 * Invariants
 *
 *  1. head <= tail (as positions, ignoring mark_bit) <= head + cap.
 *  2. slot(p).stamp is p (free) or p + 1 (full) for the current lap of p;
 *     only the thread that won the CAS for p writes the stamp for p.
 *  3. The value is written before the release store of stamp = t + 1 and
 *     read after the acquire load that saw it (the send happens-before the
 *     receive of its value); likewise for the free stamp and the next lap.
 *  4. mark_bit, once set, stays set; no send succeeds after it is set.
 *
 * No mutex and no system call on these paths: blocking is chan.c's job.
 */
#ifndef KN_CHAN_RING_H
#define KN_CHAN_RING_H

#include <string.h>

#include "chan_internal.h"

static inline _Atomic uint64_t *stamp_of(kn_chan *ch, uint64_t pos)
{
	return (_Atomic uint64_t *)(ch->slots + (pos & (ch->mark_bit - 1)) * ch->stride);
}

static inline void *value_of(_Atomic uint64_t *stamp)
{
	return (unsigned char *)stamp + sizeof(uint64_t);
}

/* The position after pos: the next index, or index 0 of the next lap. */
static inline uint64_t next_pos(const kn_chan *ch, uint64_t pos)
{
	uint64_t index = pos & (ch->mark_bit - 1);
	uint64_t lap = pos & ~(ch->one_lap - 1);

	return index + 1 < ch->cap ? pos + 1 : lap + ch->one_lap;
}

static inline int ring_try_send(kn_chan *ch, const void *val)
{
	struct backoff b = { 0 };
	uint64_t tail = at_load_relaxed(&ch->tail);

	for (;;) {
		_Atomic uint64_t *stamp;
		uint64_t s;

		if (unlikely(tail & ch->mark_bit))
			return EPIPE;
		stamp = stamp_of(ch, tail);
		s = at_load_acquire(stamp);
		if (s == tail) {
			if (at_cas_weak_seq_cst(&ch->tail, &tail, next_pos(ch, tail))) {
				KN_ASSERT(at_load_relaxed(stamp) == tail,
					  "ring invariant 2: only the CAS winner stamps");
				copy_value(value_of(stamp), val, ch->esize);
				at_store_release(stamp, tail + 1);
				return 0;
			}
			backoff_spin(&b);
		} else if (s + ch->one_lap == tail + 1) {
			/* Full from the previous lap, unless a receiver is
			 * between its head CAS and its stamp store. */
			uint64_t head = at_load_seq_cst(&ch->head);

			if (head + ch->one_lap == tail)
				return EAGAIN;
			backoff_snooze(&b);
			tail = at_load_relaxed(&ch->tail);
		} else {
			/* Another sender took this slot: catch up. */
			backoff_snooze(&b);
			tail = at_load_relaxed(&ch->tail);
		}
	}
}

static inline int ring_try_recv(kn_chan *ch, void *out)
{
	struct backoff b = { 0 };
	uint64_t head = at_load_relaxed(&ch->head);

	for (;;) {
		_Atomic uint64_t *stamp = stamp_of(ch, head);
		uint64_t s = at_load_acquire(stamp);

		if (s == head + 1) {
			if (at_cas_weak_seq_cst(&ch->head, &head, next_pos(ch, head))) {
				KN_ASSERT(at_load_relaxed(stamp) == head + 1,
					  "ring invariant 2: only the CAS winner stamps");
				copy_value(out, value_of(stamp), ch->esize);
				at_store_release(stamp, head + ch->one_lap);
				return 0;
			}
			backoff_spin(&b);
		} else if (s == head) {
			/* Empty, unless a sender is between its tail CAS and
			 * its stamp store. */
			uint64_t tail = at_load_seq_cst(&ch->tail);

			if ((tail & ~ch->mark_bit) == head)
				return (tail & ch->mark_bit) ? EPIPE : EAGAIN;
			backoff_snooze(&b);
			head = at_load_relaxed(&ch->head);
		} else {
			backoff_snooze(&b);
			head = at_load_relaxed(&ch->head);
		}
	}
}

/*
 * Batches: one CAS for a run of slots. The run from pos is the slots whose
 * stamps say "free for this lap" (off 0, from tail) or "full for this lap"
 * (off 1, from head), at most n; end is the position after it. Such slots
 * change only through a CAS of that same index, so a CAS from pos to end
 * that succeeds finds every one of them as the stamps said (positions
 * never repeat: no ABA). The batch linearizes at that CAS, as its values
 * in order. 0 when there is no run now (empty, full, closed, or a partner
 * between its CAS and its stamp store): the single-value path decides.
 */
static inline size_t ring_run(kn_chan *ch, uint64_t pos, uint64_t off,
			      size_t n, uint64_t *end)
{
	size_t k = 0;

	while (k < n && at_load_acquire(stamp_of(ch, pos)) == pos + off) {
		pos = next_pos(ch, pos);
		k++;
	}
	*end = pos;
	return k;
}

/* A batch of kind (KN_SEND from vals, KN_RECV into vals): claim the run
 * at tail (sends) or head (receives), then fill or empty its slots and
 * stamp them full (t + 1) or free for the next lap (h + one_lap). */
static inline size_t ring_move_n(kn_chan *ch, int kind, unsigned char *vals,
				 size_t n)
{
	bool send = kind == KN_SEND;
	_Atomic uint64_t *index = send ? &ch->tail : &ch->head;
	uint64_t pos = at_load_relaxed(index), end;
	_Atomic uint64_t *stamp;
	unsigned char *v;
	size_t k, i;

	do {
		if (pos & ch->mark_bit) /* only a closed tail has it */
			return 0;
		k = ring_run(ch, pos, !send, n, &end);
		if (!k)
			return 0;
	} while (!at_cas_weak_seq_cst(index, &pos, end));
	for (i = 0; i < k; i++, pos = next_pos(ch, pos)) {
		stamp = stamp_of(ch, pos);
		KN_ASSERT(at_load_relaxed(stamp) == pos + !send,
			  "ring invariant 2: only the CAS winner stamps");
		v = vals + i * ch->esize;
		if (send)
			copy_value(value_of(stamp), v, ch->esize);
		else
			copy_value(v, value_of(stamp), ch->esize);
		at_store_release(stamp, send ? pos + 1 : pos + ch->one_lap);
	}
	return k;
}

static inline bool ring_ready(kn_chan *ch, int kind)
{
	uint64_t tail = at_load_seq_cst(&ch->tail);
	uint64_t head = at_load_seq_cst(&ch->head);

	if (tail & ch->mark_bit)
		return true;
	if (kind == KN_SEND)
		return head + ch->one_lap != tail;
	return head != tail;
}

static inline size_t ring_len(const kn_chan *ch)
{
	for (;;) {
		uint64_t tail = at_load_seq_cst(&ch->tail) & ~ch->mark_bit;
		uint64_t head = at_load_seq_cst(&ch->head);

		/* A consistent pair: tail did not move while we read head. */
		if ((at_load_seq_cst(&ch->tail) & ~ch->mark_bit) != tail)
			continue;
		uint64_t hix = head & (ch->mark_bit - 1);
		uint64_t tix = tail & (ch->mark_bit - 1);

		if (hix < tix)
			return (size_t)(tix - hix);
		if (hix > tix)
			return (size_t)(ch->cap - hix + tix);
		return tail == head ? 0 : ch->cap;
	}
}

static inline int ring_close(kn_chan *ch)
{
	uint64_t old = at_or_seq_cst(&ch->tail, ch->mark_bit);

	return (old & ch->mark_bit) ? EPIPE : 0;
}

#endif

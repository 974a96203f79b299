/*
 * chan_internal.h - the channel object and its two flavours (internal).
 *
 * ring (capacity > 0): chan_ring.h, lock-free bounded MPMC ring.
 * zero (capacity 0):   chan_zero.c, rendezvous under a channel lock.
 * chan.c holds what both share: creation, close, the one wait loop that
 * every blocking operation and select goes through, and the fd signals.
 */
#ifndef KN_CHAN_INTERNAL_H
#define KN_CHAN_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "debug.h"
#include "kanal/chan.h"
#include "waiter.h"

/* An eventfd mirroring one readiness condition (see chan.c). */
struct fdsig {
	int fd;
	_Atomic uint32_t dirty; /* readiness may have changed since the last sync */
	struct lock busy;       /* held (try only) by the thread syncing the fd */
	bool level;             /* what the fd shows; owned by the busy holder */
};

struct kn_chan {
	/* Read by every operation, written at most once after creation
	 * (fds, when asked): never a line an operation has to fetch again. */
	size_t esize;
	size_t cap;
	size_t stride;        /* slot size: stamp + value, 8-aligned */
	uint64_t one_lap;     /* ring: head/tail = lap * one_lap + index */
	uint64_t mark_bit;    /* ring: the closed bit in tail */
	/* KN_MAGIC_CHAN while alive (debug.h). Not in the first 32 bytes,
	 * which malloc's free lists overwrite when the block is freed. */
	uint32_t magic;
	unsigned char *slots; /* ring only */
	/* fdsig[0] readable-to-recv, fdsig[1] room-to-send; NULL until asked. */
	struct fdsig *_Atomic fds[2];

	/* Waiting, on one line: a rendezvous hand-off takes the lock, finds
	 * its partner and unlinks it with one line transfer. zero: the lock
	 * guards both queues; ring: it serialises kn_chan_fd creation, and
	 * each queue has its own. */
	struct lock lock KN_ALIGNED;
	_Atomic uint32_t closed; /* zero only (a ring: mark_bit in tail) */
	struct waitq sendq; /* blocked senders */
	struct waitq recvq; /* blocked receivers */
	/* zero: hand-offs made, written only under lock (kn_chan_stats) */
	_Atomic uint64_t handoffs;

	_Atomic uint64_t head KN_ALIGNED; /* ring: next slot to receive */
	_Atomic uint64_t tail KN_ALIGNED; /* ring: next slot to send; mark_bit = closed */

	/* kn_chan_stats, written only when an operation registers to wait */
	_Atomic uint64_t waits[2] KN_ALIGNED; /* [kind - KN_SEND] */
	_Atomic uint32_t peak[2];             /* most nodes on each queue */
};

_Static_assert(offsetof(struct kn_chan, handoffs) + sizeof(uint64_t) -
	       offsetof(struct kn_chan, lock) <= KN_CACHE_LINE,
	       "the waiting fields share one line");
_Static_assert(KN_RECV - KN_SEND == 1, "kinds index the stats");

#define chan_live(ch) kn_live(ch, KN_MAGIC_CHAN)

/* The queue where operations of this kind wait. */
static inline struct waitq *chan_queue(kn_chan *ch, int kind)
{
	return kind == KN_SEND ? &ch->sendq : &ch->recvq;
}

/* kn_chan_stats: an operation of this kind has just registered on its
 * queue, under the lock that guards that queue's pushes (a ring's queue
 * lock, a rendezvous channel's lock): so the counts are written by one
 * thread at a time, with plain stores (no RMW on the path of every
 * wait). */
static inline void chan_count_wait(kn_chan *ch, int kind)
{
	int k = kind - KN_SEND;
	uint32_t n = at_load_relaxed(&chan_queue(ch, kind)->n);

	at_store_relaxed(&ch->waits[k], at_load_relaxed(&ch->waits[k]) + 1);
	if (n > at_load_relaxed(&ch->peak[k]))
		at_store_relaxed(&ch->peak[k], n);
}

/* One operation of a wait: a case of a select, or a lone send/receive. */
struct op {
	kn_chan *ch;
	int kind; /* KN_SEND or KN_RECV */
	void *val;
};

/* An element copy: the common sizes as single moves. */
static inline void copy_value(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 8:
		memcpy(dst, src, 8);
		break;
	case 4:
		memcpy(dst, src, 4);
		break;
	case 16:
		memcpy(dst, src, 16);
		break;
	default:
		memcpy(dst, src, n);
	}
}

/* An operation that found its channel closed (and, a receive, drained):
 * a receive yields the zero value, as in Go. Returns EPIPE. */
static inline int op_closed(struct op *o)
{
	if (o->kind == KN_RECV)
		memset(o->val, 0, o->ch->esize);
	return EPIPE;
}

/* zero flavour, with ch->lock held: complete with a waiting partner.
 * 0, EAGAIN (no partner), EPIPE (closed). Drops the lock when it returns 0
 * (the hand-off finishes outside the lock). */
int zero_try_locked(struct op *o, bool *unlocked);
/* Register a node on the queue of o's kind, ch->lock held; a partner
 * finds the value (send) or leaves it (receive) at data. */
void zero_register_locked(struct op *o, struct wait_node *n, void *data);
int zero_close(kn_chan *ch);

/* The last partner node this thread decided on a rendezvous channel (see
 * chan_zero.c): only ever prefetched, never read. */
struct zero_hint {
	kn_chan *ch;
	const void *node;
};
extern _Thread_local struct zero_hint zero_hint;

/* Before taking ch's lock: fetch the line of the partner this thread met
 * last time on ch, if any, so that its miss overlaps the lock's. */
static inline void zero_prefetch(kn_chan *ch)
{
	if (zero_hint.ch == ch)
		prefetch_write(zero_hint.node);
}

/* Tokens: case i of a wait is decided with CASE_TOKEN(i) to say "retry
 * case i first" (a ring notification, a close), or with CASE_TOKEN(i) + 1
 * by a rendezvous partner that completed the operation itself. */
#define CASE_TOKEN(i) (SEL_CASE0 + 2u * (uint32_t)(i))
#define TOKEN_CASE(t) (((t) - SEL_CASE0) / 2u)
#define TOKEN_DONE(t) ((((t) - SEL_CASE0) & 1u) != 0)

#endif

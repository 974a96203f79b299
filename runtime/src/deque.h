/*
 * deque.h - the Chase-Lev work-stealing deque of a pool worker (internal).
 *
 * One owner pushes and pops at the bottom; any number of thieves steal at
 * the top. The ring grows (doubling) when full; a grown-out ring is kept
 * until deque_destroy, since a thief may still be reading it (deque.c,
 * "Reclamation"). See deque.c for the algorithm and its proof obligations.
 *
 * Who may call what:
 *
 *   - deque_push, deque_pop: the owner only. After the owner thread has
 *     exited (and was joined), another thread may pop, never push.
 *   - deque_steal: any thread, until deque_destroy (the pool's workers).
 *   - deque_empty: anyone (it reads the indices, never the ring).
 *   - deque_destroy: once nobody uses the deque any more.
 *
 * Synchronization table
 *
 *   call          may run concurrently with          barrier / cost
 *   deque_push    steal, empty                       seq_cst store of bottom
 *                                                    (xchg on x86); grow: one
 *                                                    allocation and a copy
 *   deque_pop     steal, empty                       seq_cst store of bottom +
 *                                                    seq_cst load of top; CAS
 *                                                    only for the last task
 *   deque_steal   push, pop, steal, empty            two seq_cst loads, an
 *                                                    acquire load, one CAS
 *   deque_room    steal, empty (owner only)          one acquire load
 *   deque_empty   everything                         two seq_cst loads
 */
#ifndef KN_DEQUE_H
#define KN_DEQUE_H

#include "platform.h"

struct deque_ring;

struct deque {
	_Atomic int64_t top KN_ALIGNED;      /* thieves CAS it */
	_Atomic int64_t bottom KN_ALIGNED;   /* the owner writes it */
	_Atomic(struct deque_ring *) ring;   /* the owner replaces it */
};

enum steal_result {
	STEAL_EMPTY,
	STEAL_OK,
	STEAL_RETRY, /* lost a race with another thief or the owner */
	STEAL_LEFT,  /* few items, left to their owner (deque_steal's leave) */
};

/* A deque with room for 2^log2 items before it first grows. ENOMEM. */
int deque_init(struct deque *d, unsigned log2);
/* Free the rings; nobody may use d any more. Items still in it are not
 * touched (pop them first). */
void deque_destroy(struct deque *d);

/* Owner: add x at the bottom; 0 or ENOMEM (the ring could not grow). */
int deque_push(struct deque *d, void *x);
/* Owner: take the newest item, or NULL. */
void *deque_pop(struct deque *d);
/* Owner: how many pushes fit before the ring must grow. */
int64_t deque_room(struct deque *d);
/* Thief: take the oldest item into *x, unless there are at most leave
 * and that item does not have DEQUE_TAKE_ANYWAY set in its address (the
 * pool sets it on joinable tasks; the deque stores items as given). */
#define DEQUE_TAKE_ANYWAY ((uintptr_t)1)
enum steal_result deque_steal(struct deque *d, void **x, int64_t leave);
/* Nothing to take right now (a snapshot; any thread). */
bool deque_empty(struct deque *d);
/* Items queued, roughly (a snapshot for kn_dump; any thread). */
int64_t deque_len(struct deque *d);
/* Up to max of the oldest items into items[] (a snapshot for the stall
 * report, any thread: an item may have been taken meanwhile, and is
 * then only stale); how many. */
int64_t deque_peek(struct deque *d, void **items, int64_t max);

#endif

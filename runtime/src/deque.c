/*
 * deque.c - Chase-Lev work-stealing deque (internal).
 *
 * Algorithm
 *
 * Chase and Lev (SPAA 2005), in the C11 form of Le, Pop, Cohen and Zappa
 * Nardelli, "Correct and Efficient Work-Stealing for Weak Memory Models"
 * (PPoPP 2013), with the later fix to that paper: the grown ring is
 * published with a release store and read with an acquire load in steal
 * (the paper's consume/relaxed pair does not order the copy into the new
 * ring before a thief's reads of it).
 *
 * Items live in a power-of-two ring indexed by two unbounded 64-bit
 * counters: top (next to steal) and bottom (next free slot); the deque
 * holds [top, bottom). The owner pushes and pops at bottom without atomic
 * read-modify-writes; thieves advance top with a CAS; the owner competes
 * with them by the same CAS only for the last item.
 *
 * Orders, against the paper. Every order is the paper's except where the
 * paper puts a seq_cst fence between two relaxed accesses: docs/ARCHITECTURE.md wants
 * ordered operations instead of bare fences (ThreadSanitizer does not model
 * fences), so the accesses on either side of each fence carry it:
 *
 *   pop:   bottom = b-1 (relaxed) ; fence(seq_cst) ; t = top (relaxed)
 *     ->   bottom = b-1 (seq_cst) ;                  t = top (seq_cst)
 *   steal: t = top (acquire) ; fence(seq_cst) ; b = bottom (acquire)
 *     ->   t = top (seq_cst) ;                   b = bottom (seq_cst)
 *   push:  slot = x (relaxed) ; fence(release) ; bottom = b+1 (relaxed)
 *     ->   slot = x (relaxed) ;                   bottom = b+1 (seq_cst)
 *
 * Both fences only serve to place the owner's bottom store and a thief's
 * loads in one total order (the store-buffering pattern); seq_cst accesses
 * give exactly that. Push needs only release for the deque itself; it is
 * seq_cst because the pool reads its idle counters right after a push and
 * that store-then-load pair must not be reordered either (pool_worker.c,
 * "no lost wake-up"). On x86 the cost is an xchg instead of a mov.
 *
 * Linearization points
 *
 *   push:  the store of bottom.
 *   pop:   the store of bottom = b-1 when more than one item is left (top
 *          read after it is below b-1); otherwise the CAS on top (success:
 *          took it; failure: empty); an empty pop at its load of top.
 *   steal: the successful CAS on top; an empty steal at its load of bottom;
 *          a failed CAS is STEAL_RETRY (another party took that item).
 *
 * Invariants
 *
 *  1. top never decreases, and only a successful CAS changes it.
 *  2. Only the owner writes bottom and ring; bottom - top >= -1 at all
 *     times (the -1 exists only inside pop, between its two stores).
 *  3. Slot i mod size of the current ring holds item i for top <= i <
 *     bottom; a grown ring is filled with [top, bottom) before it is
 *     published (release), and bottom moves past a pushed slot only after
 *     the slot is written (the seq_cst store orders it).
 *  4. An item is returned at most once: a thief returns item t only after
 *     its CAS moved top from t; the owner returns item b without a CAS
 *     only if it saw top < b after announcing bottom = b, and then no thief
 *     can see top == b with bottom > b (total order of the seq_cst
 *     accesses, invariant 1).
 *  5. A ring is freed only by deque_destroy, when no thief can run any
 *     more: a replaced ring stays chained to its successor (older) until
 *     then, so it outlives every read of it. Slots are atomics: a thief
 *     may read a slot the owner is rewriting; its CAS then fails and the
 *     value is dropped.
 *
 * Reclamation. The ring only grows, doubling, so the replaced rings
 * together are smaller than the current one: keeping them costs at most as
 * much again, and no thread ever waits for a grace period. (An earlier
 * version freed them through liburcu's QSBR: its grace periods are
 * process-wide, so freeing one pool waited for any other pool's long task,
 * and after a fork the child waited for the parent's threads for ever.)
 *
 * A thief reads the ring after bottom: the acquire on bottom makes any ring
 * that the owner published before pushing item t visible, so the slot read
 * is the item's (or top has moved and the CAS fails).
 */
#include "deque.h"

struct deque_ring {
	struct deque_ring *older; /* the ring this one replaced */
	int64_t mask;             /* size - 1 */
	_Atomic(void *) slot[];
};

static struct deque_ring *ring_new(int64_t size)
{
	struct deque_ring *r;

	r = kn_alloc(sizeof(*r) + (size_t)size * sizeof(r->slot[0]));
	if (r) {
		r->older = NULL;
		r->mask = size - 1;
	}
	return r;
}

int deque_init(struct deque *d, unsigned log2)
{
	struct deque_ring *r = ring_new((int64_t)1 << log2);

	if (!r)
		return ENOMEM;
	at_store_relaxed(&d->top, 0);
	at_store_relaxed(&d->bottom, 0);
	at_store_relaxed(&d->ring, r);
	return 0;
}

void deque_destroy(struct deque *d)
{
	struct deque_ring *r = at_load_relaxed(&d->ring), *older;

	for (; r; r = older) {
		older = r->older;
		kn_free(r);
	}
}

/* Owner: copy [t, b) into a ring twice as large and publish it. */
static struct deque_ring *grow(struct deque *d, struct deque_ring *old,
			       int64_t t, int64_t b)
{
	struct deque_ring *r = ring_new(2 * (old->mask + 1));
	int64_t i;

	if (!r)
		return NULL;
	r->older = old;
	for (i = t; i < b; i++)
		at_store_relaxed(&r->slot[i & r->mask],
				 at_load_relaxed(&old->slot[i & old->mask]));
	/* The fix: thieves load the ring with acquire and see the copy. */
	at_store_release(&d->ring, r);
	return r;
}

int deque_push(struct deque *d, void *x)
{
	int64_t b = at_load_relaxed(&d->bottom);
	int64_t t = at_load_acquire(&d->top);
	struct deque_ring *r = at_load_relaxed(&d->ring);

	KN_ASSERT(b >= t, "deque invariant 2: bottom - top >= 0 outside pop");
	if (unlikely(b - t > r->mask)) {
		r = grow(d, r, t, b);
		if (!r)
			return ENOMEM;
	}
	at_store_relaxed(&r->slot[b & r->mask], x);
	at_store_seq_cst(&d->bottom, b + 1);
	return 0;
}

void *deque_pop(struct deque *d)
{
	int64_t b = at_load_relaxed(&d->bottom) - 1;
	struct deque_ring *r = at_load_relaxed(&d->ring);
	int64_t t;
	void *x;

	at_store_seq_cst(&d->bottom, b);
	t = at_load_seq_cst(&d->top);
	KN_ASSERT(t <= b + 1, "deque invariant 2: bottom - top >= -1");
	if (t > b) {
		/* Empty: undo the announcement. */
		at_store_relaxed(&d->bottom, b + 1);
		return NULL;
	}
	x = at_load_relaxed(&r->slot[b & r->mask]);
	if (t == b) {
		/* The last item: race the thieves for it. */
		if (!at_cas_seq_cst(&d->top, &t, t + 1))
			x = NULL;
		at_store_relaxed(&d->bottom, b + 1);
	}
	return x;
}

int64_t deque_room(struct deque *d)
{
	int64_t used = at_load_relaxed(&d->bottom) - at_load_acquire(&d->top);

	return at_load_relaxed(&d->ring)->mask + 1 - used;
}

enum steal_result deque_steal(struct deque *d, void **x, int64_t leave)
{
	int64_t t = at_load_seq_cst(&d->top);
	int64_t b = at_load_seq_cst(&d->bottom);
	struct deque_ring *r;
	void *v;

	if (t >= b)
		return STEAL_EMPTY;
	r = at_load_acquire(&d->ring);
	v = at_load_relaxed(&r->slot[t & r->mask]);
	if (b - t <= leave && !((uintptr_t)v & DEQUE_TAKE_ANYWAY))
		return STEAL_LEFT;
	if (!at_cas_seq_cst(&d->top, &t, t + 1))
		return STEAL_RETRY;
	*x = v;
	return STEAL_OK;
}

bool deque_empty(struct deque *d)
{
	int64_t t = at_load_seq_cst(&d->top);

	return at_load_seq_cst(&d->bottom) <= t;
}

int64_t deque_len(struct deque *d)
{
	int64_t t = at_load_relaxed(&d->top), b = at_load_relaxed(&d->bottom);

	return b > t ? b - t : 0;
}

/* Rings are kept until deque_destroy (Reclamation), so any ring read here
 * is still mapped, whichever one is current by now. */
int64_t deque_peek(struct deque *d, void **items, int64_t max)
{
	int64_t t = at_load_acquire(&d->top), b = at_load_acquire(&d->bottom), i;
	struct deque_ring *r = at_load_acquire(&d->ring);

	for (i = 0; i < max && t + i < b; i++)
		items[i] = at_load_relaxed(&r->slot[(t + i) & r->mask]);
	return i;
}

/*
 * peer_ck.c - impl "ck": Concurrency Kit's ck_ring under the shared channel
 * workloads. ck_ring never blocks, so a full or empty ring is spun on
 * (ck_pr_stall(), and sched_yield() every 64 failed attempts so that the
 * oversubscribed runs finish). Close is an atomic flag that receivers look
 * at only once the ring is empty, and senders only once it is full.
 *
 * A ring of size S (a power of two, at least 4) holds S - 1 items, so the
 * channel of capacity c gets the smallest ring holding at least c: capacity
 * 1024 -> ring 2048 (2047 items), capacity 1 -> ring 4 (3 items). The cap1
 * workload therefore runs ck with slack the other implementations lack.
 * Items are stored in the ring's void * slots as uintptr_t.
 *
 * ck_ring_enqueue_mpmc commits in reservation order, spinning inside ck
 * (no yield) until the producers before it have committed; with 4
 * producers and 4 consumers on 2 vCPUs the spinners hold the CPUs the
 * committer needs, and chan_mpmc_4p4c at cpus=2 does not finish within the
 * runner's 60 s (it shows as a failed peer run; pinned to one CPU it does).
 */
#include "bench.h"
#include "chan_workloads.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct ckq {
	ck_ring_t ring;                         /* pads its own heads */
	_Alignas(128) ck_ring_buffer_t *buf;    /* read-only after new */
	atomic_bool closed;
};

static void *ckq_new(size_t cap)
{
	struct ckq *q = aligned_alloc(_Alignof(struct ckq), sizeof(*q));
	unsigned size = 4;

	while (size - 1 < cap)
		size *= 2;
	if (!q)
		return NULL;
	q->buf = calloc(size, sizeof(*q->buf));
	if (!q->buf) {
		free(q);
		return NULL;
	}
	ck_ring_init(&q->ring, size);
	atomic_init(&q->closed, false);
	return q;
}

static void ckq_close(void *qp)
{
	struct ckq *q = qp;

	atomic_store_explicit(&q->closed, true, memory_order_release);
}

static void ckq_free(void *qp)
{
	struct ckq *q = qp;

	free(q->buf);
	free(q);
}

static bool closed(struct ckq *q)
{
	return atomic_load_explicit(&q->closed, memory_order_acquire);
}

static void backoff(unsigned *fails)
{
	if (++*fails % 64 == 0)
		sched_yield();
	else
		ck_pr_stall();
}

/* mp / mc select the mpmc functions, else the spsc ones (constant-folded). */
static inline bool put(struct ckq *q, int64_t v, bool mp)
{
	void *e = (void *)(uintptr_t)v;

	return mp ? ck_ring_enqueue_mpmc(&q->ring, q->buf, e)
		  : ck_ring_enqueue_spsc(&q->ring, q->buf, e);
}

static inline bool take(struct ckq *q, int64_t *v, bool mc)
{
	void *e;
	bool ok = mc ? ck_ring_dequeue_mpmc(&q->ring, q->buf, &e)
		     : ck_ring_dequeue_spsc(&q->ring, q->buf, &e);

	if (ok)
		*v = (int64_t)(uintptr_t)e;
	return ok;
}

static inline int ckq_send(struct ckq *q, int64_t v, bool mp)
{
	unsigned fails = 0;

	while (!put(q, v, mp)) {
		if (closed(q))
			return EPIPE;
		backoff(&fails);
	}
	return 0;
}

/*
 * Every send finished before the close, so once the flag is seen, a ring
 * that is still empty stays empty.
 */
static inline int ckq_recv(struct ckq *q, int64_t *v, bool mc)
{
	unsigned fails = 0;

	while (!take(q, v, mc)) {
		if (closed(q))
			return take(q, v, mc) ? 0 : EPIPE;
		backoff(&fails);
	}
	return 0;
}

static int send_spsc(void *q, int64_t v) { return ckq_send(q, v, false); }
static int recv_spsc(void *q, int64_t *v) { return ckq_recv(q, v, false); }
static int send_mpmc(void *q, int64_t v) { return ckq_send(q, v, true); }
static int recv_mpmc(void *q, int64_t *v) { return ckq_recv(q, v, true); }

static const struct chan_ops spsc_ops = {
	.new = ckq_new, .send = send_spsc, .recv = recv_spsc,
	.close = ckq_close, .free = ckq_free,
};

static const struct chan_ops mpmc_ops = {
	.new = ckq_new, .send = send_mpmc, .recv = recv_mpmc,
	.close = ckq_close, .free = ckq_free,
};

BENCH(chan_spsc, ck) { cw_spsc(&spsc_ops, a, r); }
BENCH(chan_mpmc_2p2c, ck) { cw_mpmc(&mpmc_ops, 2, 1024, a, r); }
BENCH(chan_mpmc_4p4c, ck) { cw_mpmc(&mpmc_ops, 4, 1024, a, r); }
BENCH(chan_mpmc_4p4c_cap1, ck) { cw_mpmc(&mpmc_ops, 4, 1, a, r); }

/*
 * netpoll.h - the integrated poller: per-fd records, readiness waits, and
 * the two calls the pool makes (internal; algorithm in netpoll.c).
 *
 * Synchronization table
 *
 *   call            may run concurrently with       blocks   cost
 *   pd_get          everything but pd_close of fd   no       a table load; first use:
 *                                                            fcntl + epoll_ctl
 *   pd_wait         everything                      yes      waiter layer; a thread:
 *                                                            ppoll
 *   pd_close        pd_wait on fd                   no       epoll_ctl + notify_all
 *   pd_read_begin,  everything                      no       relaxed RMW / stores / loads
 *   _end, _drained,                                          on the record
 *   pd_noskip
 *   netpoll_poll    everything                      no       one relaxed load when no
 *                                                            task waits; else epoll_wait(0)
 *   netpoll_waiting everything                      no       one relaxed load
 *   netpoll_park    everything                      yes      epoll_wait(-1) for one
 *                                                            thread at a time
 */
#ifndef KN_NETPOLL_H
#define KN_NETPOLL_H

#include <sys/types.h>

#include "waiter.h"

enum { PD_READ = 0, PD_WRITE = 1 }; /* a direction; bit (1 << dir) of a mask */

/* In pd_wait's mask: a read's wait before its first try, on the ground of
 * pd_drained, which the re-check after the registration confirms. */
enum { PD_FIRST = 1 << 2 };

struct pdesc {
	struct lock lock;          /* registration and close */
	_Atomic uint32_t reg;      /* registered for the current seq */
	_Atomic uint32_t seq;      /* bumped by every close of the fd number */
	bool pollable;             /* epoll watches it (else always ready) */
	_Atomic uint32_t notsock;  /* writes use write(2), not send(2) */
	_Atomic uint32_t ready[2]; /* an edge the waiters have not consumed */
	struct waitq q[2];         /* waiting to read, to write */
	/* Drained reads (netpoll.c, "Drained"): reads tried, the count of
	 * the last one that emptied a TCP socket (0: none), and whether
	 * this incarnation may skip a read on that ground. */
	bool tcp;                  /* a short read empties it of data */
	_Atomic uint32_t noskip;   /* never (invariant 5): a read-readiness
				    * wait, or an edge reporting a hang-up,
				    * an error or urgent data */
	_Atomic uint32_t nread, drained;
};

/* The record of fd, registered (and fd made non-blocking) on first use;
 * *seq: the fd's current incarnation. 0, EBADF, EINVAL (fd too large),
 * ENOMEM, or epoll's error. */
int pd_get(int fd, struct pdesc **pd, uint32_t *seq);

/* Wait for an edge in the directions of mask (PD_ bits, PD_FIRST) on the
 * incarnation seq: 0 (retry the operation: the edge is consumed), EBADF
 * (closed meanwhile), ETIMEDOUT, ECANCELED (the edge is left). */
int pd_wait(struct pdesc *pd, int fd, uint32_t seq, int mask,
	    uint64_t deadline, kn_ctx *ctx);

/* Read try number: call before each read-direction system call on pd. */
static inline uint32_t pd_read_begin(struct pdesc *pd)
{
	return at_add_relaxed(&pd->nread, 1) + 1;
}

/* After read try tr of want bytes got n (-1: an error): a short read(2)
 * or flagless recv of a TCP socket empties it of data (not a peek, which
 * leaves the data, nor an out-of-band read). */
static inline void pd_read_end(struct pdesc *pd, uint32_t tr, size_t want,
			       ssize_t n, bool plain)
{
	bool empty = pd->tcp && plain && n > 0 && (size_t)n < want;

	at_store_relaxed(&pd->drained, empty ? tr : 0);
}

/* Is pd empty since the last read, so that a read without a deadline may
 * wait for an edge before its first try (netpoll.c, "Drained")? */
static inline bool pd_drained(struct pdesc *pd)
{
	uint32_t d = at_load_relaxed(&pd->drained);

	return d && d == at_load_relaxed(&pd->nread) && !at_load_relaxed(&pd->noskip);
}

/* From now on no read of this incarnation skips its first try: a
 * readiness wait for reading (kn_fd_wait, which need not read after it)
 * is about to consume an edge, or the poller saw one that a read does
 * not clear (invariant 5). */
static inline void pd_noskip(struct pdesc *pd)
{
	if (!at_load_relaxed(&pd->noskip))
		at_store_seq_cst(&pd->noskip, 1);
}

/* Wake every waiter of fd with EBADF and forget its registration, before
 * the caller closes it. */
void pd_close(int fd);

/* For the pool: wake the waiters of every ready fd without blocking. True
 * if any fd was ready. */
bool netpoll_poll(void);

/* For the pool: do tasks wait for fds (a hint: one relaxed load)? */
bool netpoll_waiting(void);

/* For the pool: an idle worker's sleep on w (registered on its idle
 * queues) as the process's one thread blocked in epoll_wait, if tasks wait
 * for fds and no other thread polls: returns w's decision, or SEL_ABORT
 * after waking the waiters of ready fds. SEL_WAITING: not taken on (sleep
 * as usual). */
uint32_t netpoll_park(struct waiter *w);

#endif

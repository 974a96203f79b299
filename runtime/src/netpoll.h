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
 *   netpoll_poll    everything                      no       one relaxed load when no
 *                                                            task waits; else epoll_wait(0)
 *   netpoll_waiting everything                      no       one relaxed load
 *   netpoll_park    everything                      yes      epoll_wait(-1) for one
 *                                                            thread at a time
 */
#ifndef KN_NETPOLL_H
#define KN_NETPOLL_H

#include "waiter.h"

enum { PD_READ = 0, PD_WRITE = 1 }; /* a direction; bit (1 << dir) of a mask */

struct pdesc {
	struct lock lock;          /* registration and close */
	_Atomic uint32_t reg;      /* registered for the current seq */
	_Atomic uint32_t seq;      /* bumped by every close of the fd number */
	bool pollable;             /* epoll watches it (else always ready) */
	_Atomic uint32_t notsock;  /* writes use write(2), not send(2) */
	_Atomic uint32_t ready[2]; /* an edge the waiters have not consumed */
	struct waitq q[2];         /* waiting to read, to write */
};

/* The record of fd, registered (and fd made non-blocking) on first use;
 * *seq: the fd's current incarnation. 0, EBADF, EINVAL (fd too large),
 * ENOMEM, or epoll's error. */
int pd_get(int fd, struct pdesc **pd, uint32_t *seq);

/* Wait for an edge in the directions of mask (PD_ bits) on the
 * incarnation seq: 0 (retry the operation), EBADF (closed meanwhile),
 * ETIMEDOUT, ECANCELED. */
int pd_wait(struct pdesc *pd, int fd, uint32_t seq, int mask,
	    uint64_t deadline, kn_ctx *ctx);

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

/*
 * netpoll.c - the integrated poller (kanal/net.h; Go's netpoller).
 *
 * Algorithm
 *
 * One epoll instance per process. Each fd number has a record (struct
 * pdesc, in a table of lazily allocated chunks, never freed) holding a
 * sequence number seq, two edge flags ready[dir] and two wait queues of
 * the waiter layer. The fd is registered once, edge-triggered for input,
 * output and hang-up, with (seq << 32 | fd) as its event data, and stays
 * registered until kn_fd_close.
 *
 * An operation (net.c) tries its system call first; on EAGAIN it waits
 * for an edge:
 *
 *   waiter:  push a node on q[dir] (seq_cst), then xchg(ready[dir], 0) and
 *            load seq (seq_cst): an edge or a close seen here withdraws
 *            (retry the call, or EBADF); else park through the waiter
 *            layer; after a wake, ready[dir] = 0 and retry the call (a
 *            timeout or a cancellation leaves ready[dir] as it is).
 *   poller:  for an event whose data carries the record's current seq,
 *            store ready[dir] = 1 (seq_cst), then notify_all(q[dir]).
 *   close:   seq++ (seq_cst), epoll_ctl(DEL), then notify_all both
 *            queues, then close(2).
 *
 * No lost wake-up: the waiter's push and re-check against the poller's
 * store and notify (or the closer's increment and notify) are the waiter
 * layer's register / re-check / notify pattern on seq_cst operations
 * (waiter.c): either the notify finds the node or the re-check sees the
 * edge. An edge the waiter consumed but whose data an earlier call already
 * took only costs one retry that finds EAGAIN again. Clearing ready[dir]
 * after a wake is safe because the call is retried after it: data that
 * came before the clear is found by the call, an edge after it sets the
 * flag again.
 *
 * Reuse of an fd number: kn_fd_close wakes every waiter (they see seq moved
 * and return EBADF) before close(2) frees the number; a waiter that
 * registers later sees the moved seq in its re-check. Events already taken
 * from epoll for the old fd carry the old seq and are dropped, so no
 * waiter of a new fd is woken for an old one and vice versa.
 *
 * Drained. A read(2) or flagless recv that returns less than it asked of
 * a TCP socket has emptied it of data (the kernel copies every queued
 * byte up to the length; not so for datagrams, pipes with packets, a
 * peek or an out-of-band read), so the next read without a deadline
 * waits for an edge before its first try (PD_FIRST) instead of finding
 * EAGAIN (Go pays that read; here it is a third of an echo server's
 * system calls). An edge is consumed only by a waiter that tries the
 * call after it (pd_wait leaves ready[dir] set when it returns a timeout,
 * cancellation or EBADF). Reads are counted (nread), and drained holds
 * the count of the emptying read: a read by anyone since, or a full one,
 * cancels the skip. Data that arrives after the emptying read raises an
 * edge, which either is still to be harvested, or sets ready[READ] (the
 * waiter's re-check sees it), or was consumed by another reader, whose
 * read then takes the data. But a socket is readable without data too:
 * at end of file, with a pending error, or with urgent data (a read
 * stops short at its mark). A read does not clear these, so the edge that
 * reported them may have been consumed by the wait before the emptying
 * read, and none comes again: the peer's last reply and its FIN arrive
 * in one edge, the wait takes it, the read takes the reply (and the FIN
 * with it: the socket now reads 0 for ever) and comes back short, and a
 * skip would wait for ever (example_http_server's hang). Hence
 * invariant 5 and its re-check: the poller marks the incarnation noskip
 * before it publishes such an edge, a PD_FIRST wait withdraws if its
 * re-check (after the xchg of ready[READ]) finds pd_drained false, and
 * kn_fd_wait for reading, which may consume a read edge with no read
 * after it, sets noskip before its wait.
 *
 * Who polls. A suspended task is woken by whoever harvests epoll:
 *   - a pool worker about to park polls once without blocking
 *     (netpoll_poll), and so does a busy worker every 61 tasks;
 *   - a worker that parks while tasks wait for fds, and finds no other
 *     thread blocked in epoll (the flag `blocking`), blocks in
 *     epoll_wait itself instead of on its futex (netpoll_park). Its
 *     waiter, registered on the pool's idle queues as usual, is marked
 *     SEL_SUSPENDED with a stand-in fiber whose wake writes the poller's
 *     eventfd (registered in the epoll set): a decider that would have
 *     woken a sleeping worker thus interrupts epoll_wait instead. No
 *     extra thread and no periodic wake-up: an idle server sleeps in
 *     epoll_wait, and an idle process with no fd waiter sleeps on futexes.
 * Readiness decides the waiters through the waiter layer, which resumes
 * each task on its own worker (its fiber's wake).
 *
 * A thread that is not a pool worker cannot be suspended, and a task
 * that cannot (no memory for a stack, a deadline the timer cannot keep)
 * must not sleep on a futex counting on a poller: every worker may be
 * asleep on its own futex, having seen no fd waiter. Either blocks in
 * ppoll on the fd and on an eventfd of its own, with the same stand-in
 * fiber trick, so that kn_fd_close, a context's cancellation (or the
 * poller) interrupt it through its waiter like any other wake.
 *
 * Invariants
 *
 *  1. A record's event data and its registration use the seq current
 *     under its lock; seq only grows.
 *  2. At most one thread is in the blocking epoll_wait (blocking == 1,
 *     taken by CAS).
 *  3. Only the blocking poller drains its eventfd (level-triggered in the
 *     epoll set), so a wake meant for it is never consumed by another
 *     thread's non-blocking harvest.
 *  4. A stand-in-fiber waiter is SEL_SUSPENDED only while its owner is
 *     inside (or about to enter) the interruptible system call; its owner
 *     moves it back to SEL_WAITING or reads its decision before it
 *     returns. A thread's own waker (thread-local, its eventfd closed when
 *     the thread exits) is not left before a wake owed to it has come;
 *     on the poller's (process-wide) one a late wake leaves only a
 *     spurious eventfd count, drained by the next blocking poll.
 *  5. A PD_FIRST wait sleeps only if, after its registration and its
 *     xchg of ready[READ], the incarnation is still drained and not
 *     noskip; and every edge whose event reports more than EPOLLIN and
 *     EPOLLOUT (a hang-up, an error, urgent data: readable with no data
 *     to read) sets noskip before its store of ready[READ]. So an edge
 *     that a read cannot clear is never consumed unseen by a skipping
 *     reader: the consumer's clear or xchg of ready[READ] follows the
 *     noskip store (the poller's store then notify, a wake, the clear
 *     or xchg, all seq_cst), and the reader's xchg reads that 0, so its
 *     later load of noskip sees 1. A stale noskip (an event of a closed
 *     incarnation dispatched after the close reset it, or a pre-connect
 *     hang-up) only costs the skip.
 */
#include "netpoll.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define PD_CHUNK 1024
#define PD_CHUNKS 1024 /* fds below 2^20 */
#define EVENTS_MAX 128
#define EFD_DATA UINT64_MAX /* the poller's eventfd in the epoll set */

/* A stand-in fiber: a decider's wake interrupts a system call. */
struct waker {
	struct fiber f;
	int efd;
};

static struct {
	pthread_once_t once;
	int err;                    /* of the initialization */
	int epfd;
	struct waker wk;            /* of the thread in the blocking epoll_wait */
	_Atomic uint32_t waiters;   /* tasks waiting for fds */
	_Atomic uint32_t blocking;  /* invariant 2 */
	_Atomic(struct pdesc *) chunks[PD_CHUNKS];
} NP = { .once = PTHREAD_ONCE_INIT };

static void waker_wake(struct fiber *f)
{
	struct waker *k = (struct waker *)((char *)f - offsetof(struct waker, f));
	uint64_t one = 1;

	stat_count_syscall();
	(void)!write(k->efd, &one, sizeof(one));
}

static void waker_drain(int efd)
{
	uint64_t n;

	stat_count_syscall();
	(void)!read(efd, &n, sizeof(n));
}

static void fork_child(void);
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void handle_fork(void)
{
	(void)pthread_atfork(NULL, NULL, fork_child);
}

static void netpoll_init(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EFD_DATA };

	pthread_once(&fork_once, handle_fork);
	NP.epfd = epoll_create1(EPOLL_CLOEXEC);
	NP.wk.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	NP.wk.f.wake = waker_wake;
	if (NP.epfd < 0 || NP.wk.efd < 0 ||
	    epoll_ctl(NP.epfd, EPOLL_CTL_ADD, NP.wk.efd, &ev))
		NP.err = errno;
}

/* ---- records ------------------------------------------------------------- */

static struct pdesc *pd_of(int fd, bool make)
{
	_Atomic(struct pdesc *) *slot = &NP.chunks[fd / PD_CHUNK];
	struct pdesc *c = at_load_acquire(slot), *none = NULL;

	if (!c && make) {
		c = kn_calloc(PD_CHUNK, sizeof(*c)); /* zero: unlocked, empty */
		if (!c)
			return NULL;
		if (!at_cas_acq_rel(slot, &none, c)) {
			kn_free(c);
			c = none;
		}
	}
	return c ? &c[fd % PD_CHUNK] : NULL;
}

/* With pd's lock: non-blocking mode, then the epoll registration. */
static int pd_register(struct pdesc *pd, int fd)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = (uint64_t)at_load_relaxed(&pd->seq) << 32 | (uint32_t)fd,
	};
	int fl = fcntl(fd, F_GETFL), proto = 0;
	socklen_t len = sizeof(proto);

	if (fl < 0)
		return EBADF;
	pd->tcp = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
		  proto == IPPROTO_TCP;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return errno;
	pd->pollable = true;
	if (epoll_ctl(NP.epfd, EPOLL_CTL_ADD, fd, &ev)) {
		if (errno == EEXIST) /* an fd closed without kn_fd_close, reused */
			(void)epoll_ctl(NP.epfd, EPOLL_CTL_MOD, fd, &ev);
		else if (errno == EPERM)
			pd->pollable = false; /* a regular file: always ready */
		else
			return errno;
	}
	at_store_release(&pd->reg, 1);
	return 0;
}

int pd_get(int fd, struct pdesc **out, uint32_t *seq)
{
	struct pdesc *pd;
	int err = 0;

	if (fd < 0)
		return EBADF;
	if (fd >= PD_CHUNK * PD_CHUNKS)
		return EINVAL;
	pthread_once(&NP.once, netpoll_init);
	if (NP.err)
		return NP.err;
	pd = pd_of(fd, true);
	if (!pd)
		return ENOMEM;
	if (!at_load_acquire(&pd->reg)) {
		lock_acquire(&pd->lock, LOCK_LEAF);
		if (!at_load_relaxed(&pd->reg))
			err = pd_register(pd, fd);
		lock_release(&pd->lock);
	}
	*out = pd;
	*seq = at_load_acquire(&pd->seq);
	return err;
}

void pd_close(int fd)
{
	struct pdesc *pd = fd >= 0 && fd < PD_CHUNK * PD_CHUNKS ? pd_of(fd, false) : NULL;
	int d;

	if (!pd)
		return;
	lock_acquire(&pd->lock, LOCK_LEAF);
	at_add_seq_cst(&pd->seq, 1);
	if (at_load_relaxed(&pd->reg) && pd->pollable)
		(void)epoll_ctl(NP.epfd, EPOLL_CTL_DEL, fd, NULL);
	at_store_relaxed(&pd->reg, 0);
	at_store_relaxed(&pd->notsock, 0);
	at_store_relaxed(&pd->noskip, 0);
	at_store_relaxed(&pd->drained, 0);
	lock_release(&pd->lock);
	for (d = PD_READ; d <= PD_WRITE; d++)
		waitq_notify_all(&pd->q[d]);
}

/* ---- the poller -------------------------------------------------------- */

static void pd_ready(struct pdesc *pd, int dir)
{
	at_store_seq_cst(&pd->ready[dir], 1);
	waitq_notify_all(&pd->q[dir]);
}

/* Wake the waiters of the fds in evs; how many fd events there were.
 * The eventfd is drained only by the blocking poller it is meant for
 * (own): a non-blocking harvest that drained it would leave the blocked
 * thread asleep. Level-triggered, it stays ready until then, and epoll
 * wakes the blocked thread for it even after another harvest saw it. */
static int dispatch(const struct epoll_event *evs, int n, bool own)
{
	int i, fds = 0;

	for (i = 0; i < n; i++) {
		uint64_t data = evs[i].data.u64;
		uint32_t e = evs[i].events;
		struct pdesc *pd;

		if (data == EFD_DATA) {
			if (own)
				waker_drain(NP.wk.efd);
			continue;
		}
		pd = pd_of((int)(uint32_t)data, false);
		if (!pd || at_load_acquire(&pd->seq) != (uint32_t)(data >> 32))
			continue; /* an event of a closed incarnation */
		fds++;
		if (e & ~(uint32_t)(EPOLLIN | EPOLLOUT))
			pd_noskip(pd); /* invariant 5 */
		if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
			pd_ready(pd, PD_READ);
		if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			pd_ready(pd, PD_WRITE);
	}
	return fds;
}

static int harvest(int timeout_ms)
{
	struct epoll_event evs[EVENTS_MAX];
	int n;

	stat_count_syscall();
	n = epoll_wait(NP.epfd, evs, EVENTS_MAX, timeout_ms);
	return n > 0 ? dispatch(evs, n, timeout_ms < 0) : 0;
}

/* Acquire on waiters: a waiter counted itself after the initialization
 * (pd_get), so a poller that sees it sees the epoll fd. */
bool netpoll_poll(void)
{
	return at_load_acquire(&NP.waiters) && harvest(0) > 0;
}

bool netpoll_waiting(void)
{
	return at_load_relaxed(&NP.waiters) != 0;
}

/* w's decision once any hand-off in progress is published. */
static uint32_t settle(struct waiter *w, uint32_t v)
{
	struct backoff b = { 0 };

	while (v == SEL_CLAIMED) {
		backoff_snooze(&b);
		v = at_load_acquire(&w->sel);
	}
	return v;
}

/* Run block(arg) with w (undecided) marked suspended on k, so that a
 * decider interrupts it through k's eventfd (invariant 4). Returns w's
 * decision, or SEL_WAITING with w undecided and running again; *owed
 * (if not NULL): a decider took w while suspended, so its wake (a write
 * to k's eventfd) comes, if it has not come yet. */
static uint32_t block_interruptible(struct waiter *w, struct waker *k,
				    void (*block)(void *), void *arg, bool *owed)
{
	uint32_t v = SEL_WAITING;

	w->fib = &k->f;
	if (at_cas_acq_rel(&w->sel, &v, SEL_SUSPENDED)) {
		block(arg);
		v = SEL_SUSPENDED;
		if (at_cas_acq_rel(&w->sel, &v, SEL_WAITING))
			return SEL_WAITING;
		if (owed)
			*owed = true;
	}
	return settle(w, v);
}

static void harvest_blocking(void *unused)
{
	(void)unused;
	harvest(-1);
}

uint32_t netpoll_park(struct waiter *w)
{
	uint32_t v, free_flag = 0;

	if (!at_load_seq_cst(&NP.waiters) ||
	    !at_cas_acq_rel(&NP.blocking, &free_flag, 1))
		return SEL_WAITING;
	v = block_interruptible(w, &NP.wk, harvest_blocking, NULL, NULL);
	at_store_release(&NP.blocking, 0);
	if (v == SEL_WAITING)
		v = waiter_decide(w, SEL_ABORT) ? SEL_ABORT :
		    settle(w, at_load_acquire(&w->sel));
	return v;
}

/* ---- waiting --------------------------------------------------------- */

static pthread_key_t waker_key;
static pthread_once_t waker_once = PTHREAD_ONCE_INIT;
static _Thread_local struct waker thread_wk = { .efd = -1 };

static void waker_exit(void *k)
{
	close(((struct waker *)k)->efd);
}

static void waker_key_init(void)
{
	(void)pthread_key_create(&waker_key, waker_exit);
}

/* This thread's waker, its eventfd made on first use (closed when the
 * thread exits); NULL if no eventfd could be made. */
static struct waker *thread_waker(void)
{
	struct waker *k = &thread_wk;

	if (k->efd < 0) {
		pthread_once(&waker_once, waker_key_init);
		k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (k->efd < 0)
			return NULL;
		k->f.wake = waker_wake;
		pthread_setspecific(waker_key, k);
	}
	return k;
}

struct thread_poll {
	struct pollfd pf[2]; /* the fd, the waker's eventfd */
	uint64_t deadline;
};

static void ppoll_until(void *arg)
{
	struct thread_poll *tp = arg;
	uint64_t left = deadline_left(tp->deadline);
	struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };

	tp->pf[0].revents = tp->pf[1].revents = 0;
	(void)ppoll(tp->pf, 2, left == KN_FOREVER ? NULL : &ts, NULL);
}

/* A thread's wait: ppoll on the fd itself, interruptible through w. */
static uint32_t park_thread(struct waiter *w, struct waker *k, int fd,
			    int mask, uint64_t deadline, kn_ctx *ctx)
{
	struct wait_node cn = WAIT_NODE(w, SEL_CANCEL);
	struct waitq *cq = ctx ? ctx_waitq(ctx) : NULL;
	struct thread_poll tp = {
		{ { fd, (short)((mask & 1 << PD_READ ? POLLIN | POLLRDHUP : 0) |
				(mask & 1 << PD_WRITE ? POLLOUT : 0)) },
		  { k->efd, POLLIN } },
		deadline,
	};
	struct pollfd efd = { k->efd, POLLIN, 0 };
	bool owed = false;
	uint32_t v;

	/* The context's node joins the registration pd_wait made
	 * (waitq_wait_by): written out since its token is SEL_CANCEL,
	 * which a node of waitq_wait's cannot carry; the re-check after
	 * the push is waiter.c's no-lost-wake-up argument. */
	if (cq) {
		waitq_push(cq, &cn);
		if (ctx_done(ctx))
			waiter_decide(w, SEL_CANCEL);
	}
	for (;;) {
		if (deadline_left(deadline) == 0)
			waiter_decide(w, SEL_TIMEOUT);
		v = block_interruptible(w, k, ppoll_until, &tp, &owed);
		/* A wake still to come reads k: this thread's, gone (and its
		 * eventfd's number reused) once it exits. Wait for it. */
		if (owed && !tp.pf[1].revents)
			while (poll(&efd, 1, -1) < 0 && errno == EINTR)
				;
		if (owed || tp.pf[1].revents)
			waker_drain(k->efd);
		if (v != SEL_WAITING)
			break;
		if (tp.pf[0].revents && waiter_decide(w, SEL_ABORT)) {
			v = SEL_ABORT;
			break;
		}
	}
	if (cq)
		waitq_remove(cq, &cn);
	return v;
}

/* One pd_wait, for waitq_wait_by's commit and park. */
struct fd_wait {
	struct pdesc *pd;
	int fd, mask, err;
	uint32_t seq;
	uint64_t deadline;
	kn_ctx *ctx;
};

/* pd_wait's re-check, registered on the queues of mask: an edge that came
 * meanwhile (taken: the retried operation finds its data), a close, or,
 * for a wait before a read's first try, a reason to try (invariant 5:
 * after the xchg). */
static inline bool fd_commit(void *arg)
{
	struct fd_wait *f = arg;
	bool ready = false;
	int d;

	for (d = PD_READ; d <= PD_WRITE; d++)
		if ((f->mask & 1 << d) && at_xchg_seq_cst(&f->pd->ready[d], 0))
			ready = true;
	return ready || at_load_seq_cst(&f->pd->seq) != f->seq ||
	       ((f->mask & PD_FIRST) && !pd_drained(f->pd));
}

/* A task suspends (a poller wakes it); anything else polls its fd itself. */
static inline uint32_t fd_park(struct waiter *w, void *arg)
{
	struct fd_wait *f = arg;
	struct waker *k;
	uint32_t v = SEL_WAITING;

	if (waiter_suspends()) {
		at_add_seq_cst(&NP.waiters, 1);
		v = waiter_park_suspend(w, f->deadline, f->ctx);
		if (v == SEL_WAITING)
			v = settle(w, at_load_acquire(&w->sel));
		at_sub_relaxed(&NP.waiters, 1);
	}
	if (v != SEL_WAITING)
		return v;
	/* Not a task, or one that could not suspend: it must not sleep on a
	 * futex counting on a poller that may never come (all workers may
	 * be asleep on theirs), so it polls its fd itself. */
	k = thread_waker();
	if (!k) {
		f->err = errno;
		return SEL_ABORT;
	}
	waiter_hold_thread(w, true);
	v = park_thread(w, k, f->fd, f->mask, f->deadline, f->ctx);
	waiter_hold_thread(w, false);
	return v;
}

int pd_wait(struct pdesc *pd, int fd, uint32_t seq, int mask,
	    uint64_t deadline, kn_ctx *ctx)
{
	struct fd_wait f = { pd, fd, mask, 0, seq, deadline, ctx };
	struct waitq *q[2];
	unsigned n = 0;
	uint32_t v;
	int d;

	if (!pd->pollable)
		return 0;
	for (d = PD_READ; d <= PD_WRITE; d++)
		if (mask & 1 << d)
			q[n++] = &pd->q[d];
	v = waitq_wait_by(q, n, fd_commit, fd_park, &f, WAIT_ON(WAIT_FD, (uintptr_t)fd));
	if (at_load_seq_cst(&pd->seq) != seq)
		return EBADF;
	if (f.err)
		return f.err;
	if (v == SEL_TIMEOUT || v == SEL_CANCEL)
		return v == SEL_TIMEOUT ? ETIMEDOUT : ECANCELED;
	/* Consumed: the caller tries again (see Drained). */
	for (d = PD_READ; d <= PD_WRITE; d++)
		if (mask & 1 << d)
			at_store_seq_cst(&pd->ready[d], 0);
	return 0;
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * A child of fork() shares the parent's epoll instance and eventfds (the
 * same open files): its registrations and closes would change the
 * parent's interest list, and its wakes and drains mix with the parent's.
 * So the child drops its copies and starts afresh: the poller is made
 * again on first use, every record forgets its registration (each fd is
 * registered with the new instance on its next use), and the waiters of
 * the parent's other threads, which do not run here, are forgotten with
 * the locks they may have held. The calling thread's own eventfd goes too.
 */
static void fork_child(void)
{
	struct pdesc *c;
	int i, j, d;

	if (NP.epfd >= 0)
		close(NP.epfd);
	if (NP.wk.efd >= 0)
		close(NP.wk.efd);
	NP.epfd = NP.wk.efd = -1;
	NP.err = 0;
	NP.once = (pthread_once_t)PTHREAD_ONCE_INIT;
	at_store_relaxed(&NP.waiters, 0);
	at_store_relaxed(&NP.blocking, 0);
	for (i = 0; i < PD_CHUNKS; i++) {
		c = at_load_relaxed(&NP.chunks[i]);
		for (j = 0; c && j < PD_CHUNK; j++) {
			c[j].lock = (struct lock)LOCK_INIT;
			at_store_relaxed(&c[j].reg, 0);
			for (d = PD_READ; d <= PD_WRITE; d++) {
				at_store_relaxed(&c[j].ready[d], 0);
				waitq_init(&c[j].q[d]);
			}
		}
	}
	if (thread_wk.efd >= 0) {
		close(thread_wk.efd);
		thread_wk.efd = -1;
	}
}

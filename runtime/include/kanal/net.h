/*
 * kanal/net.h - waiting for file descriptors: readiness waits and
 * blocking-style I/O for tasks (Go's netpoller).
 *
 * A pool task that calls kn_read on a socket with nothing to read is
 * suspended like any blocked kanal call: its worker runs other tasks, and
 * the pool's integrated poller (one epoll instance per process, netpoll.c)
 * makes the task runnable again, on its own worker, once the socket is
 * ready. So a server is written like Go's: one task per connection, with
 * straight-line kn_read/kn_write. On a thread that is not a pool worker
 * (or a pool with no_fibers) the same calls block the thread (in poll).
 *
 * Descriptors. The first call on an fd registers it with the poller (once;
 * edge-triggered) and switches it to non-blocking mode (O_NONBLOCK), so a
 * blocking socket is accepted; the blocking forms below never return
 * EAGAIN. Such an fd must be closed with kn_fd_close, not close(2): the
 * registration is cached per fd number, and kn_fd_close first wakes every
 * call waiting on the fd (they return EBADF) and forgets the registration,
 * so that a call waiting on the old fd is never woken by a new one that
 * reuses the number (a sequence number per fd guards the poller's events).
 * Files that epoll cannot watch (regular files) are always ready.
 *
 * Forms: each call comes plain (no limit), _until (absolute deadline,
 * ETIMEDOUT) and _ctx (context, ECANCELED; an already-cancelled context
 * fails before the call does anything). A call that fails with ETIMEDOUT or
 * ECANCELED may have moved data before: kn_write's *written says how much
 * (it is optional elsewhere, see each call).
 *
 * Return values: 0, or
 *   EBADF       fd negative, not open, or closed by kn_fd_close meanwhile
 *   ETIMEDOUT, ECANCELED   as above
 *   EINVAL      events without KN_READ or KN_WRITE, a NULL buffer with a
 *               length, NULL out-parameters where required
 *   ENOMEM      no memory for the fd's record or the poller
 *   any other errno the system call reports (ECONNRESET, EPIPE for a
 *   write to a closed peer (no SIGPIPE is raised for sockets),
 *   ECONNREFUSED, EMFILE, ...). EINTR is never returned: the call resumes.
 *
 * Synchronization table
 *
 *   call                  may run concurrently with              blocks
 *   kn_fd_wait(_until/_ctx)  everything                          yes
 *   kn_read/recv/accept   everything; one reader per fd makes   yes
 *                         sense (two would split the stream)
 *   kn_write/send         everything; one writer per fd          yes
 *   kn_connect            nothing else on fd                     yes
 *   kn_fd_close           calls waiting on fd (they get EBADF);  no
 *                         no call may start on fd during it
 *
 * Cost: a call that does not have to wait is its system call (plus
 * fcntl, getsockopt and epoll_ctl on an fd's first use); a wait is a fiber
 * switch and one wake through the waiter layer, no allocation. A plain
 * kn_read or flagless kn_recv (no deadline, no context) of a TCP socket
 * whose last read came back short, and so emptied it of data, waits for
 * data before its first try instead of finding EAGAIN, unless another
 * read came between, or, on that fd until kn_fd_close, kn_fd_wait for
 * reading was called or the poller saw a hang-up, an error or urgent
 * data (which a read leaves readable): an echo server makes one read per
 * request, not two. End of file and errors are returned as without it.
 */
#ifndef KANAL_NET_H
#define KANAL_NET_H

#include <sys/socket.h>

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Events of kn_fd_wait. */
#define KN_READ 1  /* readable, or end of file, hang-up, error */
#define KN_WRITE 2 /* writable, or hang-up, error */

/*
 * Wait until fd is ready for one of events. 0 once it is (it may have
 * become unready again by the time the caller looks: retry then), or the
 * errors above.
 */
KN_API int kn_fd_wait(int fd, int events, uint64_t deadline);
KN_API int kn_fd_wait_ctx(int fd, int events, kn_ctx *ctx);

/*
 * Read up to len bytes: waits until at least one byte (or the end of file)
 * is there. 0 with *n > 0 bytes read, 0 with *n == 0 at end of file (the
 * peer closed or shut down its writing side), or an error (*n == 0), e.g.
 * ECONNRESET.
 */
KN_API int kn_read(int fd, void *buf, size_t len, size_t *n);
KN_API int kn_read_until(int fd, void *buf, size_t len, size_t *n, uint64_t deadline);
KN_API int kn_read_ctx(int fd, void *buf, size_t len, size_t *n, kn_ctx *ctx);

/* kn_read with recv(2)'s flags (MSG_PEEK, ...); sockets only. */
KN_API int kn_recv(int fd, void *buf, size_t len, int flags, size_t *n);
KN_API int kn_recv_until(int fd, void *buf, size_t len, int flags, size_t *n,
			 uint64_t deadline);
KN_API int kn_recv_ctx(int fd, void *buf, size_t len, int flags, size_t *n,
		       kn_ctx *ctx);

/*
 * Write all len bytes, waiting for room as often as needed: 0 once all are
 * written, else an error (EPIPE: the peer closed), with *written (may be
 * NULL) the bytes written before it.
 */
KN_API int kn_write(int fd, const void *buf, size_t len, size_t *written);
KN_API int kn_write_until(int fd, const void *buf, size_t len, size_t *written,
			  uint64_t deadline);
KN_API int kn_write_ctx(int fd, const void *buf, size_t len, size_t *written,
			kn_ctx *ctx);

/* kn_write with send(2)'s flags (MSG_NOSIGNAL is always added). */
KN_API int kn_send(int fd, const void *buf, size_t len, int flags, size_t *written);
KN_API int kn_send_until(int fd, const void *buf, size_t len, int flags,
			 size_t *written, uint64_t deadline);
KN_API int kn_send_ctx(int fd, const void *buf, size_t len, int flags,
		       size_t *written, kn_ctx *ctx);

/*
 * Accept a connection on listening socket fd: *conn gets it, non-blocking
 * and close-on-exec (close it with kn_fd_close). addr/alen as accept(2)
 * (may be NULL).
 */
KN_API int kn_accept(int fd, struct sockaddr *addr, socklen_t *alen, int *conn);
KN_API int kn_accept_until(int fd, struct sockaddr *addr, socklen_t *alen,
			   int *conn, uint64_t deadline);
KN_API int kn_accept_ctx(int fd, struct sockaddr *addr, socklen_t *alen,
			 int *conn, kn_ctx *ctx);

/* Connect socket fd to addr, waiting until the connection is made (0) or
 * refused (ECONNREFUSED, ...). */
KN_API int kn_connect(int fd, const struct sockaddr *addr, socklen_t alen);
KN_API int kn_connect_until(int fd, const struct sockaddr *addr, socklen_t alen,
			    uint64_t deadline);
KN_API int kn_connect_ctx(int fd, const struct sockaddr *addr, socklen_t alen,
			  kn_ctx *ctx);

/*
 * Close fd: every call waiting on it returns EBADF first, then the fd is
 * closed (close(2)'s error, if any, is returned; EBADF for a negative fd).
 * Use it, not close(2), for every fd a call above has seen.
 */
KN_API int kn_fd_close(int fd);

#ifdef __cplusplus
}
#endif
#endif

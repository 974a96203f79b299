/*
 * net.c - blocking-style I/O on non-blocking fds (kanal/net.h).
 *
 * Every call is one loop (fd_io): try the system call; on EAGAIN wait for
 * an edge in its direction (pd_wait, netpoll.c) and try again. EINTR
 * retries the system call at once. The waiting, the poller and the
 * handling of kn_fd_close live in netpoll.c.
 */
#include "kanal/net.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kanal/ctx.h"
#include "netpoll.h"

struct io {
	int fd;
	char *buf;
	size_t len, done;
	int flags;
	const struct sockaddr *addr; /* connect */
	socklen_t alen;
	struct sockaddr *peer;       /* accept */
	socklen_t *peer_len;
	int conn;
	bool started;                /* connect: in progress */
	bool recv;                   /* a read: fd_io's drained skip (not a
					test of try's address, which left
					unused copies of the try functions:
					tools/check-dead-copies) */
};

/* One attempt: 0 done, EAGAIN to wait, or an error. */
typedef int (*try_fn)(struct pdesc *pd, struct io *io);

/* A system call's result: EINTR is retried by the callers' loops. */
static int sys_err(void)
{
	return errno == EWOULDBLOCK ? EAGAIN : errno;
}

static int try_recv(struct pdesc *pd, struct io *io)
{
	uint32_t tr = pd_read_begin(pd);
	ssize_t r;

	do
		r = io->flags < 0 ? read(io->fd, io->buf, io->len) :
		    recv(io->fd, io->buf, io->len, io->flags);
	while (r < 0 && errno == EINTR);
	pd_read_end(pd, tr, io->len, r, io->flags <= 0);
	if (r < 0)
		return sys_err();
	io->done = (size_t)r;
	return 0;
}

/* Sockets get send(MSG_NOSIGNAL), so a closed peer is EPIPE, not a
 * signal; other fds write(2) (learned from the first ENOTSOCK). */
static int try_send(struct pdesc *pd, struct io *io)
{
	ssize_t r;

	while (io->done < io->len) {
		if (at_load_relaxed(&pd->notsock))
			r = write(io->fd, io->buf + io->done, io->len - io->done);
		else
			r = send(io->fd, io->buf + io->done, io->len - io->done,
				 io->flags | MSG_NOSIGNAL);
		if (r >= 0) {
			io->done += (size_t)r;
			continue;
		}
		if (errno == ENOTSOCK && io->flags == 0 &&
		    !at_load_relaxed(&pd->notsock)) {
			at_store_relaxed(&pd->notsock, 1);
			continue;
		}
		if (errno != EINTR)
			return sys_err();
	}
	return 0;
}

static int try_accept(struct pdesc *pd, struct io *io)
{
	int c;

	(void)pd;
	do
		c = accept4(io->fd, io->peer, io->peer_len,
			    SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (c < 0 && errno == EINTR);
	if (c < 0)
		return sys_err();
	io->conn = c;
	return 0;
}

/* connect(2) once; then, once the socket is writable, its SO_ERROR (an
 * edge may be stale: poll says whether the connection is done). */
static int try_connect(struct pdesc *pd, struct io *io)
{
	struct pollfd p = { io->fd, POLLOUT, 0 };
	socklen_t len = sizeof(int);
	int err = 0;

	(void)pd;
	if (!io->started) {
		io->started = true;
		if (connect(io->fd, io->addr, io->alen) == 0)
			return 0;
		if (errno != EINPROGRESS && errno != EINTR)
			return errno;
	}
	if (poll(&p, 1, 0) == 0)
		return EAGAIN;
	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

static int fd_io(struct io *io, try_fn try, int dir, uint64_t deadline,
		 kn_ctx *ctx)
{
	struct pdesc *pd;
	uint32_t seq;
	int err;

	if (ctx && kn_ctx_err(ctx))
		return ECANCELED;
	err = pd_get(io->fd, &pd, &seq);
	/* A read of a TCP socket that the last read emptied: wait for data
	 * first rather than find EAGAIN (netpoll.c, "Drained"). Not with a
	 * deadline or a context, which must not end the call while data the
	 * poller has not yet reported is there. */
	if (!err && io->recv && deadline == KN_FOREVER && !ctx &&
	    pd_drained(pd))
		err = pd_wait(pd, io->fd, seq, 1 << dir | PD_FIRST, deadline, ctx);
	while (!err) {
		err = try(pd, io);
		if (err != EAGAIN)
			break;
		err = pd_wait(pd, io->fd, seq, 1 << dir, deadline, ctx);
	}
	return err;
}

/* ---- waits --------------------------------------------------------------- */

static int fd_wait(int fd, int events, uint64_t deadline, kn_ctx *ctx)
{
	struct pollfd p = { fd, (short)((events & KN_READ ? POLLIN | POLLRDHUP : 0) |
					(events & KN_WRITE ? POLLOUT : 0)), 0 };
	struct pdesc *pd;
	uint32_t seq;
	int err, r;

	if (!(events & (KN_READ | KN_WRITE)))
		return EINVAL;
	if (ctx && kn_ctx_err(ctx))
		return ECANCELED;
	err = pd_get(fd, &pd, &seq);
	if (!err && (events & KN_READ))
		pd_noskip(pd);
	while (!err) {
		r = poll(&p, 1, 0);
		if (r > 0)
			return p.revents & POLLNVAL ? EBADF : 0;
		if (r < 0 && errno != EINTR)
			return errno;
		err = pd_wait(pd, fd, seq,
			      (events & KN_READ ? 1 << PD_READ : 0) |
			      (events & KN_WRITE ? 1 << PD_WRITE : 0),
			      deadline, ctx);
	}
	return err;
}

int kn_fd_wait(int fd, int events, uint64_t deadline)
{
	return fd_wait(fd, events, deadline, NULL);
}

int kn_fd_wait_ctx(int fd, int events, kn_ctx *ctx)
{
	return fd_wait(fd, events, KN_FOREVER, ctx);
}

int kn_fd_close(int fd)
{
	if (fd < 0)
		return EBADF;
	pd_close(fd);
	return close(fd) ? errno : 0;
}

/* ---- reading ------------------------------------------------------------- */

/* flags < 0: read(2). */
static int do_recv(int fd, void *buf, size_t len, int flags, size_t *n,
		   uint64_t deadline, kn_ctx *ctx)
{
	struct io io = { .fd = fd, .buf = buf, .len = len, .flags = flags, .recv = true };
	int err;

	if (!n || (!buf && len))
		return EINVAL;
	err = fd_io(&io, try_recv, PD_READ, deadline, ctx);
	*n = err ? 0 : io.done;
	return err;
}

int kn_read(int fd, void *buf, size_t len, size_t *n)
{
	return do_recv(fd, buf, len, -1, n, KN_FOREVER, NULL);
}

int kn_read_until(int fd, void *buf, size_t len, size_t *n, uint64_t deadline)
{
	return do_recv(fd, buf, len, -1, n, deadline, NULL);
}

int kn_read_ctx(int fd, void *buf, size_t len, size_t *n, kn_ctx *ctx)
{
	return do_recv(fd, buf, len, -1, n, KN_FOREVER, ctx);
}

int kn_recv(int fd, void *buf, size_t len, int flags, size_t *n)
{
	return do_recv(fd, buf, len, flags < 0 ? 0 : flags, n, KN_FOREVER, NULL);
}

int kn_recv_until(int fd, void *buf, size_t len, int flags, size_t *n,
		  uint64_t deadline)
{
	return do_recv(fd, buf, len, flags < 0 ? 0 : flags, n, deadline, NULL);
}

int kn_recv_ctx(int fd, void *buf, size_t len, int flags, size_t *n, kn_ctx *ctx)
{
	return do_recv(fd, buf, len, flags < 0 ? 0 : flags, n, KN_FOREVER, ctx);
}

/* ---- writing ------------------------------------------------------------- */

static int do_send(int fd, const void *buf, size_t len, int flags,
		   size_t *written, uint64_t deadline, kn_ctx *ctx)
{
	struct io io = { .fd = fd, .buf = (char *)buf, .len = len,
			 .flags = flags };
	int err;

	if (!buf && len)
		return EINVAL;
	err = fd_io(&io, try_send, PD_WRITE, deadline, ctx);
	if (written)
		*written = io.done;
	return err;
}

int kn_write(int fd, const void *buf, size_t len, size_t *written)
{
	return do_send(fd, buf, len, 0, written, KN_FOREVER, NULL);
}

int kn_write_until(int fd, const void *buf, size_t len, size_t *written,
		   uint64_t deadline)
{
	return do_send(fd, buf, len, 0, written, deadline, NULL);
}

int kn_write_ctx(int fd, const void *buf, size_t len, size_t *written,
		 kn_ctx *ctx)
{
	return do_send(fd, buf, len, 0, written, KN_FOREVER, ctx);
}

int kn_send(int fd, const void *buf, size_t len, int flags, size_t *written)
{
	return do_send(fd, buf, len, flags < 0 ? 0 : flags, written, KN_FOREVER, NULL);
}

int kn_send_until(int fd, const void *buf, size_t len, int flags,
		  size_t *written, uint64_t deadline)
{
	return do_send(fd, buf, len, flags < 0 ? 0 : flags, written, deadline, NULL);
}

int kn_send_ctx(int fd, const void *buf, size_t len, int flags,
		size_t *written, kn_ctx *ctx)
{
	return do_send(fd, buf, len, flags < 0 ? 0 : flags, written, KN_FOREVER, ctx);
}

/* ---- connections --------------------------------------------------------- */

static int do_accept(int fd, struct sockaddr *addr, socklen_t *alen, int *conn,
		     uint64_t deadline, kn_ctx *ctx)
{
	struct io io = { .fd = fd, .peer = addr, .peer_len = alen, .conn = -1 };
	int err;

	if (!conn)
		return EINVAL;
	err = fd_io(&io, try_accept, PD_READ, deadline, ctx);
	*conn = io.conn;
	return err;
}

int kn_accept(int fd, struct sockaddr *addr, socklen_t *alen, int *conn)
{
	return do_accept(fd, addr, alen, conn, KN_FOREVER, NULL);
}

int kn_accept_until(int fd, struct sockaddr *addr, socklen_t *alen, int *conn,
		    uint64_t deadline)
{
	return do_accept(fd, addr, alen, conn, deadline, NULL);
}

int kn_accept_ctx(int fd, struct sockaddr *addr, socklen_t *alen, int *conn,
		  kn_ctx *ctx)
{
	return do_accept(fd, addr, alen, conn, KN_FOREVER, ctx);
}

static int do_connect(int fd, const struct sockaddr *addr, socklen_t alen,
		      uint64_t deadline, kn_ctx *ctx)
{
	struct io io = { .fd = fd, .addr = addr, .alen = alen };

	if (!addr)
		return EINVAL;
	return fd_io(&io, try_connect, PD_WRITE, deadline, ctx);
}

int kn_connect(int fd, const struct sockaddr *addr, socklen_t alen)
{
	return do_connect(fd, addr, alen, KN_FOREVER, NULL);
}

int kn_connect_until(int fd, const struct sockaddr *addr, socklen_t alen,
		     uint64_t deadline)
{
	return do_connect(fd, addr, alen, deadline, NULL);
}

int kn_connect_ctx(int fd, const struct sockaddr *addr, socklen_t alen,
		   kn_ctx *ctx)
{
	return do_connect(fd, addr, alen, KN_FOREVER, ctx);
}

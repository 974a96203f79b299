/*
 * test_net.c - kanal/net.h: readiness waits and I/O for tasks and threads.
 *
 * Loopback and socketpairs only. "Blocked" is never guessed from time: a
 * waiter is blocked once its node is on the fd record's wait queue
 * (wait_queued), the same timing-free meaning as helpers.h's for channels.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/ctx.h"
#include "kanal/group.h"
#include "kanal/net.h"
#include "netpoll.h"
#include "pool_helpers.h"

static void pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* Until n waiters are queued on fd's direction dir (or a watched flag
 * says the waiters returned early: then the test fails, not hangs). */
static void wait_queued(int fd, int dir, uint32_t n, _Atomic int *returned)
{
	struct pdesc *pd;
	uint32_t seq;

	cr_assert_eq(pd_get(fd, &pd, &seq), 0);
	while (at_load_seq_cst(&pd->q[dir].n) < n) {
		cr_assert(!returned || !at_load_seq_cst(returned), "a waiter returned early");
		nap_ms(1);
	}
}

Test(net, read_write_eof_on_a_thread)
{
	int sv[2];
	char b[16];
	size_t n;

	pair(sv);
	cr_assert_eq(kn_write(sv[0], "hello", 5, NULL), 0);
	cr_assert_eq(kn_read(sv[1], b, sizeof(b), &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(b, "hello", 5), 0);
	cr_assert_eq(kn_fd_close(sv[0]), 0);
	cr_assert_eq(kn_read(sv[1], b, sizeof(b), &n), 0);
	cr_assert_eq(n, 0, "end of file is 0 bytes");
	cr_assert_eq(kn_write(sv[1], "x", 1, NULL), EPIPE, "no SIGPIPE, EPIPE");
	cr_assert_eq(kn_fd_close(sv[1]), 0);
}

Test(net, bad_fds_and_arguments)
{
	int sv[2];
	size_t n;
	char b[4];

	cr_assert_eq(kn_read(-1, b, 4, &n), EBADF);
	cr_assert_eq(kn_write(-3, b, 4, NULL), EBADF);
	cr_assert_eq(kn_fd_wait(-1, KN_READ, KN_FOREVER), EBADF);
	cr_assert_eq(kn_fd_close(-1), EBADF);
	cr_assert_eq(kn_read(100000, b, 4, &n), EBADF, "not open");
	cr_assert_eq(kn_read(1 << 24, b, 4, &n), EINVAL, "beyond the table");
	pair(sv);
	cr_assert_eq(kn_fd_wait(sv[0], 0, KN_FOREVER), EINVAL);
	cr_assert_eq(kn_read(sv[0], NULL, 4, &n), EINVAL);
	cr_assert_eq(kn_read(sv[0], b, 4, NULL), EINVAL);
	cr_assert_eq(kn_accept(sv[0], NULL, NULL, NULL), EINVAL);
	cr_assert_eq(kn_connect(sv[0], NULL, 0), EINVAL);
	cr_assert_eq(kn_write(sv[0], b, 0, NULL), 0, "nothing to write");
	cr_assert_eq(kn_fd_close(sv[0]), 0);
	cr_assert_eq(kn_read(sv[0], b, 4, &n), EBADF, "closed");
	cr_assert_eq(kn_fd_wait(sv[0], KN_READ, 0), EBADF, "readiness after close");
	cr_assert_eq(kn_fd_close(sv[1]), 0);
}

Test(net, deadlines_and_contexts_on_a_thread)
{
	int sv[2];
	size_t n;
	char b[4];
	kn_ctx *c = kn_ctx_with_cancel(NULL);

	pair(sv);
	cr_assert_eq(kn_read_until(sv[0], b, 4, &n, 0), ETIMEDOUT);
	cr_assert_eq(kn_read_until(sv[0], b, 4, &n, kn_deadline_in(2000000)), ETIMEDOUT);
	cr_assert_eq(kn_fd_wait(sv[0], KN_READ, kn_deadline_in(1000000)), ETIMEDOUT);
	cr_assert_eq(kn_fd_wait(sv[0], KN_WRITE, 0), 0, "writable at once");
	kn_ctx_cancel(c, ECANCELED, NULL);
	cr_assert_eq(kn_read_ctx(sv[0], b, 4, &n, c), ECANCELED);
	cr_assert_eq(kn_write_ctx(sv[0], b, 4, NULL, c), ECANCELED, "checked first");
	kn_ctx_release(c);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

/* An fd in blocking mode is switched to non-blocking by its first call:
 * a task waiting on it holds no thread. */
struct rd {
	int fd;
	size_t n;
	int err;
	char b[64];
	_Atomic int done;
	kn_ctx *ctx;
	uint64_t deadline;
};

static void read_task(void *arg)
{
	struct rd *r = arg;

	r->err = r->ctx ? kn_read_ctx(r->fd, r->b, sizeof(r->b), &r->n, r->ctx) :
		 kn_read_until(r->fd, r->b, sizeof(r->b), &r->n, r->deadline);
	at_store_seq_cst(&r->done, 1);
}

static void wait_task(void *arg)
{
	struct rd *r = arg;

	r->err = kn_fd_wait(r->fd, KN_READ, KN_FOREVER);
	at_store_seq_cst(&r->done, 1);
}

struct wr {
	int fd;
	const char *s;
};

static void write_task(void *arg)
{
	struct wr *w = arg;

	TASK_CHECK(kn_write(w->fd, w->s, strlen(w->s), NULL) == 0);
}

Test(net, a_reading_task_holds_no_thread_and_blocking_fds_are_made_nonblocking)
{
	int sv[2];
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct rd r = { .deadline = KN_FOREVER };
	struct wr w;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.fd = sv[0];
	cr_assert_eq(kn_pool_spawn(p, read_task, &r), 0);
	wait_queued(sv[0], PD_READ, 1, &r.done);
	cr_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	/* One worker, no spare: the writer runs only if the reader let go. */
	w = (struct wr){ sv[1], "ping" };
	cr_assert_eq(kn_pool_spawn(p, write_task, &w), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.n, 4);
	cr_assert_eq(memcmp(r.b, "ping", 4), 0);
	kn_pool_free(p);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

Test(net, deadline_and_cancel_in_a_task)
{
	int sv[2];
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct rd r = { .deadline = kn_deadline_in(2000000) }, rc = { .deadline = KN_FOREVER };

	pair(sv);
	r.fd = rc.fd = sv[0];
	rc.ctx = kn_ctx_with_cancel(NULL);
	cr_assert_eq(kn_pool_spawn(p, read_task, &r), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(r.err, ETIMEDOUT);
	cr_assert_eq(kn_pool_spawn(p, read_task, &rc), 0);
	wait_queued(sv[0], PD_READ, 1, &rc.done);
	kn_ctx_cancel(rc.ctx, ECANCELED, NULL);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(rc.err, ECANCELED);
	kn_ctx_release(rc.ctx);
	kn_pool_free(p);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	/* A backlog for every connection a test makes at once: with a full
	 * accept queue (an accept task held up on a loaded machine) the
	 * kernel drops handshake packets, and TCP's retransmission backoff
	 * then stalls a connection for minutes. */
	cr_assert_eq(listen(fd, SOMAXCONN), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int dial(int port, int *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	*err = kn_connect(fd, (struct sockaddr *)&a, sizeof(a));
	return fd;
}

/* A TCP connection: EOF from a half-closed peer (which still reads),
 * ECONNRESET from an aborted one, ECONNREFUSED from a closed port. */
Test(net, tcp_half_close_reset_and_refused)
{
	int port, err, ln = listener(&port), c, s;
	struct linger lg = { 1, 0 };
	char b[16];
	size_t n;

	c = dial(port, &err);
	cr_assert_eq(err, 0);
	cr_assert_eq(kn_accept(ln, NULL, NULL, &s), 0);
	cr_assert(fcntl(s, F_GETFL) & O_NONBLOCK);
	cr_assert_eq(shutdown(c, SHUT_WR), 0);
	cr_assert_eq(kn_read(s, b, sizeof(b), &n), 0);
	cr_assert_eq(n, 0, "EOF from the half-closed peer");
	cr_assert_eq(kn_write(s, "still", 5, NULL), 0);
	cr_assert_eq(kn_read(c, b, sizeof(b), &n), 0);
	cr_assert_eq(n, 5, "the half-closed peer still reads");
	kn_fd_close(c);
	kn_fd_close(s);
	c = dial(port, &err);
	cr_assert_eq(err, 0);
	cr_assert_eq(kn_accept(ln, NULL, NULL, &s), 0);
	cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	cr_assert_eq(kn_fd_close(c), 0); /* RST */
	err = kn_read(s, b, sizeof(b), &n);
	cr_assert_eq(err, ECONNRESET, "got %d", err);
	kn_fd_close(s);
	kn_fd_close(ln);
	c = dial(port, &err);
	cr_assert_eq(err, ECONNREFUSED, "got %d", err);
	kn_fd_close(c);
}

/* A megabyte through a socketpair: kn_write writes it all, waiting for
 * room, while a task reads it in pieces. */
struct sink {
	int fd;
	size_t total;
	unsigned char expect;
	_Atomic int bad;
};

static void sink_task(void *arg)
{
	struct sink *s = arg;
	unsigned char b[4096];
	size_t n, i;

	while (kn_read(s->fd, b, sizeof(b), &n) == 0 && n > 0) {
		for (i = 0; i < n; i++)
			if (b[i] != (unsigned char)(s->total + i))
				at_store_relaxed(&s->bad, 1);
		s->total += n;
	}
}

Test(net, write_waits_for_room_and_writes_everything)
{
	enum { LEN = 1 << 20 };
	int sv[2];
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	unsigned char *buf = malloc(LEN);
	struct sink s;
	size_t i, written = 0;

	pair(sv);
	for (i = 0; i < LEN; i++)
		buf[i] = (unsigned char)i;
	s = (struct sink){ .fd = sv[1] };
	cr_assert_eq(kn_pool_spawn(p, sink_task, &s), 0);
	cr_assert_eq(kn_write(sv[0], buf, LEN, &written), 0);
	cr_assert_eq(written, LEN);
	kn_fd_close(sv[0]);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(s.total, LEN);
	cr_assert_eq(at_load_relaxed(&s.bad), 0);
	kn_pool_free(p);
	kn_fd_close(sv[1]);
	free(buf);
}

/* kn_fd_close wakes 100 waiting tasks and 4 waiting threads with EBADF. */
static void *wait_thread(void *arg)
{
	wait_task(arg);
	return NULL;
}

Test(net, close_wakes_100_waiters)
{
	enum { TASKS = 100, THREADS = 4 };
	static struct rd r[TASKS + THREADS];
	pthread_t t[THREADS];
	kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
	int sv[2], i;
	_Atomic int none = 0;

	pair(sv);
	for (i = 0; i < TASKS + THREADS; i++)
		r[i] = (struct rd){ .fd = sv[0], .err = -1 };
	for (i = 0; i < TASKS; i++)
		cr_assert_eq(kn_pool_spawn(p, wait_task, &r[i]), 0);
	for (i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, wait_thread, &r[TASKS + i]), 0);
	wait_queued(sv[0], PD_READ, TASKS + THREADS, &none);
	cr_assert_eq(kn_fd_close(sv[0]), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < TASKS + THREADS; i++)
		cr_assert_eq(r[i].err, EBADF, "waiter %d: %d", i, r[i].err);
	kn_pool_free(p);
	kn_fd_close(sv[1]);
}

/* Close and reopen the same fd number while a task and a thread wait on
 * it: the new fd becomes readable, but the old waiters see EBADF, and a
 * waiter on the new fd gets its readiness. */
Test(net, a_reused_fd_number_never_wakes_an_old_waiter)
{
	int sv[2], nv[2], i;
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct rd r = { .err = -1, .deadline = KN_FOREVER }, rt = { .err = -1 }, rn;
	pthread_t t;
	_Atomic int none = 0;

	for (i = 0; i < 20; i++) {
		pair(sv);
		r.fd = rt.fd = sv[0];
		at_store_relaxed(&r.done, 0);
		cr_assert_eq(kn_pool_spawn(p, read_task, &r), 0);
		cr_assert_eq(pthread_create(&t, NULL, wait_thread, &rt), 0);
		wait_queued(sv[0], PD_READ, 2, &none);
		cr_assert_eq(kn_fd_close(sv[0]), 0);
		pair(nv);
		cr_assert_eq(nv[0], sv[0], "the number is reused");
		cr_assert_eq(write(nv[1], "new", 3), 3);
		cr_assert_eq(kn_pool_wait_idle(p), 0);
		pthread_join(t, NULL);
		cr_assert_eq(r.err, EBADF);
		cr_assert_eq(rt.err, EBADF);
		rn = (struct rd){ .fd = nv[0], .deadline = KN_FOREVER };
		cr_assert_eq(kn_pool_spawn(p, read_task, &rn), 0);
		cr_assert_eq(kn_pool_wait_idle(p), 0);
		cr_assert_eq(rn.err, 0);
		cr_assert_eq(rn.n, 3);
		kn_fd_close(nv[0]);
		kn_fd_close(nv[1]);
		kn_fd_close(sv[1]);
	}
	kn_pool_free(p);
}

/* Signals interrupt the thread's ppoll: the call resumes, never EINTR. */
static void on_signal(int sig)
{
	(void)sig;
}

static void *read_thread(void *arg)
{
	read_task(arg);
	return NULL;
}

Test(net, eintr_is_never_returned)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	struct rd r = { .err = -1, .deadline = KN_FOREVER };
	int sv[2], i;
	pthread_t t;
	_Atomic int none = 0;

	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	pair(sv);
	r.fd = sv[0];
	cr_assert_eq(pthread_create(&t, NULL, read_thread, &r), 0);
	wait_queued(sv[0], PD_READ, 1, &none);
	for (i = 0; i < 20; i++) {
		pthread_kill(t, SIGUSR1);
		nap_ms(1);
	}
	cr_assert_eq(at_load_seq_cst(&r.done), 0);
	cr_assert_eq(write(sv[1], "go", 2), 2);
	pthread_join(t, NULL);
	cr_assert_eq(r.err, 0);
	cr_assert_eq(r.n, 2);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

/* Accept and connect in tasks: a server task per connection echoes; the
 * client tasks check. */
struct srv {
	int ln, conns;
};

static void echo_task(void *arg)
{
	int c = (int)(intptr_t)arg;
	char b[256];
	size_t n;

	while (kn_read(c, b, sizeof(b), &n) == 0 && n > 0)
		if (kn_write(c, b, n, NULL))
			break;
	kn_fd_close(c);
}

static void accept_task(void *arg)
{
	struct srv *s = arg;
	int i, c;

	for (i = 0; i < s->conns; i++) {
		TASK_CHECK(kn_accept(s->ln, NULL, NULL, &c) == 0);
		TASK_CHECK(kn_pool_spawn(kn_pool_current(), echo_task, (void *)(intptr_t)c) == 0);
	}
}

static int echo_port;

static void client_task(void *arg)
{
	int err, fd = dial(echo_port, &err), j;
	char out[32], in[32];
	size_t n, got;

	(void)arg;
	TASK_CHECK(err == 0);
	for (j = 0; j < 50 && !err; j++) {
		snprintf(out, sizeof(out), "message %d", j);
		TASK_CHECK(kn_write(fd, out, sizeof(out), NULL) == 0);
		for (got = 0; got < sizeof(out); got += n) {
			err = kn_read(fd, in + got, sizeof(in) - got, &n);
			TASK_CHECK(err == 0 && n > 0);
			if (err || n == 0)
				break;
		}
		TASK_CHECK(memcmp(in, out, sizeof(out)) == 0);
	}
	kn_fd_close(fd);
}

Test(net, echo_over_tcp_with_tasks)
{
	enum { CONNS = 50 };
	kn_pool *p = pool_of(2, KN_POOL_NO_SPARE);
	struct srv s = { listener(&echo_port), CONNS };
	int i;

	cr_assert_eq(kn_pool_spawn(p, accept_task, &s), 0);
	for (i = 0; i < CONNS; i++)
		cr_assert_eq(kn_pool_spawn(p, client_task, NULL), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_fd_close(s.ln);
}

Test(net, regular_files_are_always_ready)
{
	char path[] = "/tmp/kn_net_XXXXXX", b[8];
	int fd = mkstemp(path);
	size_t n;

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(kn_write(fd, "file", 4, NULL), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(kn_fd_wait(fd, KN_READ, 0), 0);
	cr_assert_eq(kn_read(fd, b, sizeof(b), &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(kn_fd_close(fd), 0);
}

/* A short read of a TCP socket empties it, so the next read without a
 * deadline waits for data before trying (netpoll.c, "Drained"). A
 * readiness wait in between consumes the edge of new data without reading
 * it: the read after it must find the data, never wait with it there. */
struct drained {
	int fd;
	_Atomic int phase, done;
	size_t n[2];
	int err[3];
	char b[2][64];
};

static void drained_task(void *arg)
{
	struct drained *d = arg;

	d->err[0] = kn_read(d->fd, d->b[0], sizeof(d->b[0]), &d->n[0]);
	at_store_seq_cst(&d->phase, 1);
	d->err[1] = kn_fd_wait(d->fd, KN_READ, KN_FOREVER);
	at_store_seq_cst(&d->phase, 2);
	d->err[2] = kn_read(d->fd, d->b[1], sizeof(d->b[1]), &d->n[1]);
	at_store_seq_cst(&d->done, 1);
}

Test(net, a_readiness_wait_between_reads_loses_no_data)
{
	int port, err, ln = listener(&port), c = dial(port, &err);
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct drained d = { 0 };
	struct pdesc *pd;
	uint32_t seq;

	cr_assert_eq(err, 0);
	cr_assert_eq(kn_accept(ln, NULL, NULL, &d.fd), 0);
	cr_assert_eq(kn_write(c, "ab", 2, NULL), 0);
	cr_assert_eq(kn_pool_spawn(p, drained_task, &d), 0);
	while (at_load_seq_cst(&d.phase) < 1)
		nap_ms(1);
	wait_queued(d.fd, PD_READ, 1, &d.done); /* in kn_fd_wait */
	cr_assert_eq(kn_write(c, "cd", 2, NULL), 0);
	cr_assert_eq(pd_get(d.fd, &pd, &seq), 0);
	while (!at_load_seq_cst(&d.done))
		if (at_load_seq_cst(&d.phase) == 2 && at_load_seq_cst(&pd->q[PD_READ].n) > 0)
			cr_assert_fail("the read waits with data there");
		else
			nap_ms(1);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert(d.err[0] == 0 && d.err[1] == 0 && d.err[2] == 0);
	cr_assert(d.n[0] == 2 && !memcmp(d.b[0], "ab", 2));
	cr_assert(d.n[1] == 2 && !memcmp(d.b[1], "cd", 2));
	kn_pool_free(p);
	kn_fd_close(d.fd);
	kn_fd_close(c);
	kn_fd_close(ln);
}

/* The lost edge that hung example_http_server: data and the peer's FIN
 * (or RST) arrive together while a task waits to read. The wait consumes
 * their one edge; the read takes the data, comes back short and so
 * empties the socket, but the hang-up stays readable and raises no edge
 * again. The next read must find it (netpoll.c, invariant 5), never wait.
 * The pool's one worker is held in a blocking read of a pipe while both
 * arrive, so that the poller sees them in one event. */
struct hangup {
	int fd, pipe[2];
	_Atomic int phase, done;
	size_t n[2];
	int err[2];
	char b[64];
};

static void hangup_reader(void *arg)
{
	struct hangup *h = arg;

	h->err[0] = kn_read(h->fd, h->b, sizeof(h->b), &h->n[0]);
	at_store_seq_cst(&h->phase, 2);
	h->err[1] = kn_read(h->fd, h->b, sizeof(h->b), &h->n[1]);
	at_store_seq_cst(&h->done, 1);
}

static void worker_holder(void *arg)
{
	struct hangup *h = arg;
	char c;

	at_store_seq_cst(&h->phase, 1);
	cr_assert_eq(read(h->pipe[0], &c, 1), 1);
}

static void hangup_after_data(bool reset)
{
	int port, err, ln = listener(&port), c = dial(port, &err);
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct linger lg = { 1, 0 };
	struct hangup h = { 0 };
	struct pdesc *pd;
	uint32_t seq;

	cr_assert_eq(err, 0);
	cr_assert_eq(pipe(h.pipe), 0);
	cr_assert_eq(kn_accept(ln, NULL, NULL, &h.fd), 0);
	cr_assert_eq(pd_get(h.fd, &pd, &seq), 0);
	cr_assert_eq(kn_pool_spawn(p, hangup_reader, &h), 0);
	wait_queued(h.fd, PD_READ, 1, &h.done); /* in its first read */
	cr_assert_eq(kn_pool_spawn(p, worker_holder, &h), 0);
	while (at_load_seq_cst(&h.phase) < 1)
		nap_ms(1);
	cr_assert_eq(kn_write(c, "ab", 2, NULL), 0);
	if (reset)
		cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	cr_assert_eq(reset ? kn_fd_close(c) : shutdown(c, SHUT_WR), 0);
	cr_assert_eq(write(h.pipe[1], "x", 1), 1);
	while (!at_load_seq_cst(&h.done))
		if (at_load_seq_cst(&h.phase) == 2 && at_load_seq_cst(&pd->q[PD_READ].n) > 0)
			cr_assert_fail("the read waits with the %s there", reset ? "reset" : "end of file");
		else
			nap_ms(1);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert(h.err[0] == 0 && h.n[0] == 2 && !memcmp(h.b, "ab", 2));
	if (reset)
		cr_assert_eq(h.err[1], ECONNRESET);
	else
		cr_assert(h.err[1] == 0 && h.n[1] == 0, "end of file");
	kn_pool_free(p);
	kn_fd_close(h.fd);
	if (!reset)
		kn_fd_close(c);
	kn_fd_close(ln);
	close(h.pipe[0]);
	close(h.pipe[1]);
}

Test(net, a_hang_up_that_came_with_the_data_is_not_lost)
{
	hangup_after_data(false);
	hangup_after_data(true);
}

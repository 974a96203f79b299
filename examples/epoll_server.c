/*
 * epoll_server.c - a TCP echo server on loopback whose socket loop and a
 * worker thread exchange work through kanal channels, all waited on in one
 * epoll loop.
 *
 *   clients --TCP--> [ epoll loop ] --req chan--> [ worker ]
 *   clients <--TCP-- [ epoll loop ] <--rep chan-- [ worker ]
 *
 * The pattern. epoll can only wait for file descriptors, and a channel is
 * memory shared between threads: a thread asleep in epoll_wait does not see
 * a send. kn_chan_fd() gives a channel an eventfd per direction whose
 * counter mirrors readiness: the KN_RECV descriptor is readable while a
 * receive would not block (a value is buffered, or the channel is closed),
 * the KN_SEND one while a send would not block (there is room, or it is
 * closed). An eventfd is the smallest thing epoll can wait on: one kernel
 * counter, no pipe buffer, and the channel writes it only when readiness
 * flips, not once per value.
 *
 * Level-style: the descriptor says "ready now", not "something happened".
 * So it is registered with plain EPOLLIN (no EPOLLET), the loop never reads
 * the eventfd itself (the channel resets it when it drains), and on a
 * wake-up the loop calls try_recv / try_send until EAGAIN. A wake-up that
 * covers many values costs one epoll round; a stale one costs one EAGAIN.
 *
 * Cost only for channels that asked: a channel without a descriptor pays
 * one extra load per operation; one with a descriptor pays an eventfd
 * write or read only on an empty <-> non-empty (or full <-> not full) flip.
 * The reply channel's KN_RECV descriptor sits in the epoll set for the
 * whole run. The request channel's KN_SEND descriptor is readable almost
 * always (there is usually room), so the loop adds it only while some
 * connection is stalled on a full request channel - backpressure: that
 * connection stops being read until the worker makes room - and removes it
 * when no connection waits any more.
 *
 * Protocol: each line (up to MAX_LINE bytes, newline included) is one
 * request; the reply is the same line. The worker's transformation is the
 * identity, so a client can check every byte; a real server computes its
 * reply there.
 *
 * Shutdown: SIGINT/SIGTERM, or a budget (--requests N forwarded to the
 * worker, --max-conns N connections accepted and closed again), stops
 * accepting and reading, closes the request channel; the worker finishes
 * what it holds, closes the reply channel and exits; the loop writes the
 * last replies (waiting at most GRACE_MS for slow readers), closes every
 * connection and returns.
 *
 * Usage: epoll_server [--max-conns N] [--requests N] [--capacity N]
 * Prints "listening on 127.0.0.1:PORT" first, "served N requests, ..." last.
 */
/* accept4, SOCK_NONBLOCK: Linux; the rest is POSIX. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kanal/chan.h>

#define MAX_LINE 16384  /* longest request, newline included */
#define OUT_HIGH 65536  /* stop reading a connection whose replies pile up */
#define MAX_CONNS 1024  /* open connections at once */
#define SLOT_BITS 16    /* connection id = accept sequence << SLOT_BITS | slot */
#define GRACE_MS 2000   /* how long shutdown waits for slow readers */
#define NEVENTS 64

/* epoll tokens; connection ids are >= 1 << SLOT_BITS. */
enum { TOK_LISTEN = 1, TOK_STOP, TOK_REPLY, TOK_ROOM };

struct echo_config {
	uint64_t requests;  /* forward this many, then shut down (0: no limit) */
	unsigned max_conns; /* accept this many, shut down once all closed (0: no limit) */
	size_t capacity;    /* of each channel */
};

/* A request, and then its reply: owned by whoever holds the pointer. */
struct msg {
	uint64_t conn;
	size_t len;
	char data[];
};

struct conn {
	uint64_t id;
	int fd;
	uint32_t events;           /* what epoll watches for it now */
	bool eof;                  /* the peer will send nothing more */
	bool stalled;              /* on the stalled list */
	unsigned inflight;         /* requests at the worker */
	struct msg *pending;       /* parsed, waiting for room in the request channel */
	struct conn *prev, *next;  /* the stalled list */
	char *out;                 /* replies not yet written: out[out_off..out_len) */
	size_t out_off, out_len, out_cap;
	size_t in_len;
	char in[MAX_LINE];
};

struct echo_server {
	struct echo_config cfg;
	int listen_fd, ep, stop_fd, room_fd, reply_fd;
	uint16_t port;
	kn_chan *req, *rep;         /* struct msg * both ways */
	pthread_t worker;
	bool worker_started;
	bool stop_asked;            /* a signal, or echo_server_stop() */
	bool closing;               /* begin_shutdown() ran */
	bool worker_done, room_watched;
	uint64_t deadline_ms;       /* closing: when to drop slow readers */
	uint64_t accepted, forwarded, served;
	uint64_t stalls;            /* times a connection waited for room */
	unsigned nconns, nfree;
	struct conn *conns[MAX_CONNS];
	uint32_t free_slots[MAX_CONNS];
	struct conn *stalled, *stalled_tail; /* waiting for room, oldest first */
};

static uint64_t now_ms(void)
{
	return kn_now() / 1000000;
}

static int ep_set(struct echo_server *s, int op, int fd, uint32_t events, uint64_t tok)
{
	struct epoll_event ev = { .events = events, .data.u64 = tok };

	return epoll_ctl(s->ep, op, fd, &ev) ? errno : 0;
}

/* ---- the worker ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct echo_server *s = arg;
	struct msg *m;

	/* The identity transformation: the reply is the request's own buffer.
	 * The send cannot fail: this thread is the only one closing rep. */
	while (kn_chan_recv(s->req, &m) == 0)
		kn_chan_send(s->rep, &m);
	kn_chan_close(s->rep);
	return NULL;
}

/* ---- connections ----------------------------------------------------------- */

static struct conn *conn_find(struct echo_server *s, uint64_t id)
{
	struct conn *c = s->conns[id & ((1u << SLOT_BITS) - 1)];

	return c && c->id == id ? c : NULL;
}

static void stalled_add(struct echo_server *s, struct conn *c)
{
	c->next = NULL;
	c->prev = s->stalled_tail;
	*(c->prev ? &c->prev->next : &s->stalled) = c;
	s->stalled_tail = c;
	c->stalled = true;
	s->stalls++;
}

static void stalled_del(struct echo_server *s, struct conn *c)
{
	*(c->prev ? &c->prev->next : &s->stalled) = c->next;
	*(c->next ? &c->next->prev : &s->stalled_tail) = c->prev;
	c->stalled = false;
}

static void conn_close(struct echo_server *s, struct conn *c)
{
	uint32_t slot = c->id & ((1u << SLOT_BITS) - 1);

	if (c->stalled)
		stalled_del(s, c);
	free(c->pending);
	close(c->fd); /* also leaves the epoll set */
	free(c->out);
	free(c);
	s->conns[slot] = NULL;
	s->free_slots[s->nfree++] = slot;
	s->nconns--;
}

static void close_all(struct echo_server *s)
{
	unsigned i;

	for (i = 0; i < MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s, s->conns[i]);
}

/* Write what fits; false if the peer is gone. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += n;
	}
	c->out_off = c->out_len = 0;
	return true;
}

static bool conn_append(struct conn *c, const char *p, size_t n)
{
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *out;

		while (cap < c->out_len + n)
			cap *= 2;
		out = realloc(c->out, cap);
		if (!out)
			return false;
		c->out = out;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return true;
}

static bool budget_left(const struct echo_server *s)
{
	return !s->cfg.requests || s->forwarded < s->cfg.requests;
}

/*
 * Forward c's complete lines to the worker until none is left, the request
 * channel is full (c then waits on the stalled list, keeping its place if
 * it was there already), or the budget is spent. False if c must go: out
 * of memory, or a full buffer without a newline (never a request).
 */
static bool conn_pump(struct echo_server *s, struct conn *c)
{
	size_t used = 0, len;
	char *nl;

	while (!s->closing && budget_left(s)) {
		if (!c->pending) {
			nl = memchr(c->in + used, '\n', c->in_len - used);
			if (!nl)
				break;
			len = nl + 1 - (c->in + used);
			c->pending = malloc(sizeof(*c->pending) + len);
			if (!c->pending)
				return false;
			c->pending->conn = c->id;
			c->pending->len = len;
			memcpy(c->pending->data, c->in + used, len);
			used += len;
		}
		if (kn_chan_try_send(s->req, &c->pending) != 0) {
			if (!c->stalled) /* EAGAIN: wait for room */
				stalled_add(s, c);
			break;
		}
		if (c->stalled)
			stalled_del(s, c);
		c->pending = NULL;
		c->inflight++;
		s->forwarded++;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	return c->in_len < MAX_LINE || memchr(c->in, '\n', MAX_LINE);
}

static bool conn_read(struct echo_server *s, struct conn *c)
{
	ssize_t n;

	if (c->pending || c->eof || s->closing)
		return true; /* not reading now: an event from before that */
	n = read(c->fd, c->in + c->in_len, MAX_LINE - c->in_len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		c->eof = true;
	c->in_len += n;
	return conn_pump(s, c);
}

/*
 * Bring c's epoll interest up to date, or close it once it is done: read
 * only while not stalled and not behind on writing; wait for EPOLLOUT only
 * while replies wait.
 */
static void conn_settle(struct echo_server *s, struct conn *c)
{
	bool reading = !s->closing && !c->eof && !c->pending && c->out_len < OUT_HIGH;
	uint32_t events = (reading ? EPOLLIN : 0) | (c->out_len ? EPOLLOUT : 0);

	if ((s->closing || c->eof) && !c->pending && !c->inflight && !c->out_len) {
		conn_close(s, c);
		return;
	}
	if (events != c->events && ep_set(s, EPOLL_CTL_MOD, c->fd, events, c->id) == 0)
		c->events = events;
}

static void on_conn(struct echo_server *s, struct conn *c, uint32_t events)
{
	/* We never shut down our side: a hang-up is a reset, the peer is gone. */
	bool ok = !(events & (EPOLLERR | EPOLLHUP));

	if (ok && (events & EPOLLIN))
		ok = conn_read(s, c);
	if (ok && (events & EPOLLOUT))
		ok = conn_flush(c);
	if (ok)
		conn_settle(s, c);
	else
		conn_close(s, c);
}

/* ---- channels in the loop ---------------------------------------------------- */

/* Watch the request channel's room descriptor exactly while someone waits. */
static void room_watch(struct echo_server *s)
{
	bool want = s->stalled != NULL;

	if (want != s->room_watched &&
	    ep_set(s, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->room_fd, EPOLLIN, TOK_ROOM) == 0)
		s->room_watched = want;
}

/* Room in the request channel: resume stalled connections, oldest first. */
static void on_room(struct echo_server *s)
{
	while (s->stalled) {
		struct conn *c = s->stalled;

		if (!conn_pump(s, c)) {
			conn_close(s, c);
			continue;
		}
		if (c->pending)
			break; /* full again: c keeps its place at the head */
		conn_settle(s, c);
	}
}

/* Replies: drain the channel, route each to its connection. */
static void on_reply(struct echo_server *s)
{
	struct msg *m;
	int r;

	while ((r = kn_chan_try_recv(s->rep, &m)) == 0) {
		struct conn *c = conn_find(s, m->conn);

		if (c) {
			c->inflight--;
			s->served++;
			if (conn_append(c, m->data, m->len) && conn_flush(c))
				conn_settle(s, c);
			else
				conn_close(s, c);
		}
		free(m);
	}
	if (r == EPIPE) {
		/* Closed and drained: the worker is done, and the descriptor
		 * would stay readable for good. */
		ep_set(s, EPOLL_CTL_DEL, s->reply_fd, 0, 0);
		s->worker_done = true;
	}
}

/* ---- accepting, stopping ----------------------------------------------------- */

static void stop_listening(struct echo_server *s)
{
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		s->listen_fd = -1;
	}
}

static void on_listen(struct echo_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		uint32_t slot;

		if (fd < 0)
			return; /* EAGAIN, or a connection that died waiting */
		c = s->nfree ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			close(fd);
			continue;
		}
		slot = s->free_slots[--s->nfree];
		c->id = (++s->accepted << SLOT_BITS) | slot;
		c->fd = fd;
		c->events = EPOLLIN;
		if (ep_set(s, EPOLL_CTL_ADD, fd, c->events, c->id)) {
			close(fd);
			free(c);
			s->free_slots[s->nfree++] = slot;
			continue;
		}
		s->conns[slot] = c;
		s->nconns++;
		if (s->accepted == s->cfg.max_conns) {
			stop_listening(s);
			return;
		}
	}
}

/*
 * Stop taking work: no more accepts, reads or forwarding; the worker sees
 * the request channel closed after the requests it already has.
 */
static void begin_shutdown(struct echo_server *s)
{
	unsigned i;

	s->closing = true;
	s->deadline_ms = now_ms() + GRACE_MS;
	stop_listening(s);
	kn_chan_close(s->req);
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = s->conns[i];

		if (!c)
			continue;
		if (c->stalled) {
			stalled_del(s, c);
			free(c->pending);
			c->pending = NULL;
		}
		conn_settle(s, c);
	}
}

static bool should_stop(const struct echo_server *s)
{
	return s->stop_asked || !budget_left(s) ||
	       (s->cfg.max_conns && s->accepted == s->cfg.max_conns && !s->nconns);
}

/* Async-signal-safe: may be called from a signal handler or any thread. */
static void echo_server_stop(struct echo_server *s)
{
	uint64_t one = 1;

	if (write(s->stop_fd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: the stop is on its way. */
	}
}

/* ---- the loop ------------------------------------------------------------------ */

static void dispatch(struct echo_server *s, uint64_t tok, uint32_t events)
{
	struct conn *c;
	uint64_t count;

	switch (tok) {
	case TOK_LISTEN:
		if (s->listen_fd >= 0)
			on_listen(s);
		break;
	case TOK_STOP:
		/* Reset it, or it would stay readable. */
		if (read(s->stop_fd, &count, sizeof(count)) == sizeof(count))
			s->stop_asked = true;
		break;
	case TOK_REPLY:
		on_reply(s);
		break;
	case TOK_ROOM:
		on_room(s);
		break;
	default:
		/* A connection closed earlier in this batch is simply gone. */
		c = conn_find(s, tok);
		if (c)
			on_conn(s, c, events);
	}
}

/* Serve until shut down and drained: 0, or an errno from epoll. */
static int echo_server_run(struct echo_server *s)
{
	struct epoll_event evs[NEVENTS];
	unsigned i;
	int n;

	while (!(s->closing && s->worker_done && !s->nconns)) {
		int timeout = -1;

		if (s->closing && s->nconns) {
			uint64_t now = now_ms();

			timeout = now < s->deadline_ms ? (int)(s->deadline_ms - now) : 0;
		}
		n = epoll_wait(s->ep, evs, NEVENTS, timeout);
		if (n < 0 && errno != EINTR)
			return errno;
		for (i = 0; n > 0 && i < (unsigned)n; i++)
			dispatch(s, evs[i].data.u64, evs[i].events);
		/* Here, not in a handler: begin_shutdown may close any
		 * connection, including the one a handler works on. */
		if (!s->closing && should_stop(s))
			begin_shutdown(s);
		if (s->closing && now_ms() >= s->deadline_ms)
			close_all(s); /* the slow readers */
		room_watch(s);
	}
	return 0;
}

/* ---- setup and teardown ------------------------------------------------------- */

static void echo_server_free(struct echo_server *s)
{
	struct msg *m;

	if (!s)
		return;
	if (s->worker_started) {
		/* After an early error the worker may still hold requests. */
		kn_chan_close(s->req);
		while (kn_chan_recv(s->rep, &m) == 0)
			free(m);
		pthread_join(s->worker, NULL);
	}
	close_all(s);
	stop_listening(s);
	if (s->ep >= 0)
		close(s->ep);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	kn_chan_free(s->req); /* closes its descriptors too */
	kn_chan_free(s->rep);
	free(s);
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, SOMAXCONN) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* The channels, their descriptors, the sockets and the epoll set: 0 or errno. */
static int open_fds(struct echo_server *s)
{
	int r;

	s->req = kn_chan_new(sizeof(struct msg *), s->cfg.capacity);
	s->rep = kn_chan_new(sizeof(struct msg *), s->cfg.capacity);
	if (!s->req || !s->rep)
		return errno;
	/* Both descriptors before the worker starts, so neither is created
	 * while its channel is in use. */
	s->room_fd = kn_chan_fd(s->req, KN_SEND);
	s->reply_fd = kn_chan_fd(s->rep, KN_RECV);
	if (s->room_fd < 0 || s->reply_fd < 0)
		return errno;
	s->listen_fd = listen_loopback(&s->port);
	if (s->listen_fd < 0)
		return errno;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->ep < 0)
		return errno;
	s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->stop_fd < 0)
		return errno;
	if ((r = ep_set(s, EPOLL_CTL_ADD, s->listen_fd, EPOLLIN, TOK_LISTEN)) ||
	    (r = ep_set(s, EPOLL_CTL_ADD, s->stop_fd, EPOLLIN, TOK_STOP)))
		return r;
	return ep_set(s, EPOLL_CTL_ADD, s->reply_fd, EPOLLIN, TOK_REPLY);
}

/* Listen on 127.0.0.1, an ephemeral port, and start the worker: 0 or errno. */
static int echo_server_open(struct echo_server **out, const struct echo_config *cfg)
{
	struct echo_server *s = calloc(1, sizeof(*s));
	unsigned i;
	int r;

	if (!s)
		return ENOMEM;
	s->cfg = *cfg;
	s->listen_fd = s->ep = s->stop_fd = -1;
	for (i = 0; i < MAX_CONNS; i++)
		s->free_slots[s->nfree++] = MAX_CONNS - 1 - i;
	r = open_fds(s);
	if (!r)
		r = pthread_create(&s->worker, NULL, worker_main, s);
	if (r) {
		echo_server_free(s);
		return r;
	}
	s->worker_started = true;
	*out = s;
	return 0;
}

#ifndef EPOLL_SERVER_NO_MAIN

static struct echo_server *the_server;

static void on_signal(int sig)
{
	(void)sig;
	echo_server_stop(the_server);
}

static int parse_args(int argc, char **argv, struct echo_config *cfg)
{
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		char *end;
		unsigned long long v = strtoull(argv[i + 1], &end, 10);

		if (*end || end == argv[i + 1])
			return EINVAL;
		if (!strcmp(argv[i], "--requests"))
			cfg->requests = v;
		else if (!strcmp(argv[i], "--max-conns") && v <= UINT32_MAX)
			cfg->max_conns = v;
		else if (!strcmp(argv[i], "--capacity"))
			cfg->capacity = v;
		else
			return EINVAL;
	}
	return i == argc ? 0 : EINVAL;
}

int main(int argc, char **argv)
{
	struct echo_config cfg = { .capacity = 64 };
	struct sigaction sa = { .sa_handler = on_signal };
	int r;

	if (parse_args(argc, argv, &cfg)) {
		fprintf(stderr, "usage: %s [--max-conns N] [--requests N] [--capacity N]\n",
			argv[0]);
		return 2;
	}
	r = echo_server_open(&the_server, &cfg);
	if (r) {
		fprintf(stderr, "epoll_server: %s\n", strerror(r));
		return 1;
	}
	printf("listening on 127.0.0.1:%u\n", the_server->port);
	fflush(stdout);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r = echo_server_run(the_server);
	printf("served %" PRIu64 " requests, %" PRIu64 " stalls on a full request channel\n",
	       the_server->served, the_server->stalls);
	echo_server_free(the_server);
	if (r) {
		fprintf(stderr, "epoll_server: epoll: %s\n", strerror(r));
		return 1;
	}
	return 0;
}

#endif

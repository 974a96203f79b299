/*
 * echo.h - the echo server and the client's plumbing of the net_echo
 * benchmark, one copy for every program that needs them: the kanal
 * server in kn-bench (bench/kanal_net.c), the client kn-net-client
 * (bench/net/client.c) and tests/stress/stress_net.c, which churns
 * connections through the same server. Header-only (static inline: each
 * program takes what it uses); the examples stay self-contained instead.
 *
 * Server. echo_accept, a task on a pool, accepts until its listener is
 * closed (kn_fd_close: EBADF) and spawns a task per connection on the
 * same pool (Go's `go echoConn(c)`), which reads what comes and writes it
 * back (kn_read, kn_write) until EOF, then closes the connection.
 *
 * Steady-state accounting, for the benchmark (want > 0 connections): the
 * window opens when the last of them has echoed once (each connection's
 * task, stack and fd registration exist: the warm-up) and closes when the
 * first one ends (the client is done). The server takes kanal's
 * allocation and system call counts (kn_stat_allocs, kn_stat_syscalls:
 * the runtime's own calls, not the reads and writes) at both ends and
 * counts the echoes
 * each connection makes inside the window (a connection notices the
 * phase after its next read, so an echo in flight at a boundary may fall
 * on either side). Per echo this costs one relaxed load of a line that is
 * written twice per run.
 */
#ifndef KN_BENCH_NET_ECHO_H
#define KN_BENCH_NET_ECHO_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <kanal/kanal.h>

enum { ECHO_WARMING, ECHO_STEADY, ECHO_ENDING };

struct echo_server {
	int ln;                      /* the listener, closed by its owner */
	int want;                    /* connections to account for; 0: none */
	_Atomic int warm;            /* connections past their first echo */
	_Atomic int phase;           /* ECHO_* */
	uint64_t allocs[2];          /* kn_stat_allocs as the window opens, closes */
	uint64_t syscalls[2];        /* kn_stat_syscalls likewise */
	_Atomic uint64_t echoes;     /* inside the window, added as each ends */
	kn_waitgroup conns;          /* connection tasks not yet ended */
};

struct echo_conn {
	struct echo_server *s;
	int fd;
	int phase;                   /* the phase it saw last */
	uint64_t n, base;            /* echoes made; n when the window opened */
};

/* The window's first and last step for one connection. */
static inline void echo_account(struct echo_conn *c)
{
	struct echo_server *s = c->s;
	int p = atomic_load_explicit(&s->phase, memory_order_relaxed), was = c->phase;

	if (c->n == 1 && atomic_fetch_add(&s->warm, 1) + 1 == s->want) {
		s->allocs[0] = kn_stat_allocs();
		s->syscalls[0] = kn_stat_syscalls();
		atomic_store_explicit(&s->phase, ECHO_STEADY, memory_order_release);
		p = ECHO_STEADY;
	}
	if (p == was)
		return;
	c->phase = p;
	if (p == ECHO_STEADY)
		c->base = c->n;
	else if (was == ECHO_STEADY)
		atomic_fetch_add(&s->echoes, c->n - c->base);
}

/* The connection is done: the first one to end closes the window. */
static inline void echo_end(struct echo_conn *c)
{
	struct echo_server *s = c->s;
	int steady = ECHO_STEADY;

	if (!s->want)
		return;
	if (atomic_compare_exchange_strong(&s->phase, &steady, ECHO_ENDING)) {
		s->allocs[1] = kn_stat_allocs();
		s->syscalls[1] = kn_stat_syscalls();
	}
	if (c->phase == ECHO_STEADY)
		atomic_fetch_add(&s->echoes, c->n - c->base);
}

static inline void echo_task(void *arg)
{
	struct echo_conn c = *(struct echo_conn *)arg;
	char b[4096];
	size_t n;
	int one = 1;

	free(arg);
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (kn_read(c.fd, b, sizeof(b), &n) == 0 && n > 0) {
		if (kn_write(c.fd, b, n, NULL) != 0)
			break;
		c.n++;
		if (c.s->want)
			echo_account(&c);
	}
	echo_end(&c);
	kn_fd_close(c.fd);
	kn_waitgroup_done(&c.s->conns);
}

/* A task: accept until s->ln is closed, a task per connection. */
static inline void echo_accept(void *arg)
{
	struct echo_server *s = arg;
	struct echo_conn *c;
	int fd;

	while (kn_accept(s->ln, NULL, NULL, &fd) == 0) {
		c = calloc(1, sizeof(*c));
		if (c) {
			*c = (struct echo_conn){ .s = s, .fd = fd };
			kn_waitgroup_add(&s->conns, 1);
			if (kn_pool_spawn(kn_pool_current(), echo_task, c) == 0)
				continue;
			kn_waitgroup_done(&s->conns);
			free(c);
		}
		kn_fd_close(fd);
	}
}

/* The window's allocations, runtime system calls and echoes; false if it
 * did not both open and close (no connection got past warming up before
 * the first one ended). Once every connection has ended (s->conns). */
static inline bool echo_window(struct echo_server *s, uint64_t *allocs,
			       uint64_t *syscalls, uint64_t *echoes)
{
	*allocs = s->allocs[1] - s->allocs[0];
	*syscalls = s->syscalls[1] - s->syscalls[0];
	*echoes = atomic_load(&s->echoes);
	return atomic_load(&s->phase) == ECHO_ENDING && *echoes > 0;
}

/* ---- both sides ------------------------------------------------------- */

static inline struct sockaddr_in echo_loopback(int port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

/* A connected non-blocking socket to 127.0.0.1:port (TCP_NODELAY), or -1. */
static inline int echo_dial(int port)
{
	struct sockaddr_in a = echo_loopback(port);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (kn_connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		kn_fd_close(fd);
		return -1;
	}
	return fd;
}

/* A thousand connections need two thousand fds in one process. */
static inline void echo_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#endif

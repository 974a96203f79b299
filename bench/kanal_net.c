/*
 * kanal_net.c - net_echo_64 / net_echo_1000 (echo servers under one
 * client) and timer_100k (many sleeping tasks), kanal and its C peers.
 *
 * net_echo_N (N = 64, 256, 1000): this process serves on 127.0.0.1; the same client program
 * (kn-net-client, a separate process) opens N connections and makes
 * a->items ping-pong round trips of 64 bytes in all, checking every byte;
 * it hands back the elapsed time and every round trip's latency, which
 * become this run's ns and p50/p99/p999. Servers:
 *   kanal    a task per connection (kn_accept, kn_read, kn_write)
 *   epoll    the practical limit: one thread per CPU, each a hand-written
 *            single-threaded epoll loop with its own SO_REUSEPORT listener
 *   pthread  a thread per connection, blocking read/write (64 only)
 *
 * net_echo_stream: one connection, a->items messages of 1 MiB streamed
 * through the kanal server (the client writes ahead of its reads).
 *
 * The kanal server is bench/net/echo.h's, which also measures kanal's
 * allocations and own system calls per request in its steady state
 * (allocs_per_op, steady_syscalls_per_op).
 *
 * timer_100k: a->items tasks each sleep a random 1-10 ms once (kn_sleep on
 * the default pool); ns is the wall time until all have woken, the latency
 * samples are each sleeper's lateness. timer_100k_cpu: the same run, its
 * ns being the process's CPU time (user + system) over it. timer_100k_idle:
 * the CPU an idle process burns per second with a->items tasks asleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kanal/kanal.h>

#include "bench.h"
#include "net/echo.h"

#define NET_MSG 64
#define NET_STREAM_MSG (1024 * 1024)
#define SAMPLES_CHUNK 512 /* latency samples read from the client at once */

extern char **environ;

/* ---- the client, as a process ------------------------------------------- */

static int listen_loopback(int port, bool reuseport)
{
	struct sockaddr_in a = echo_loopback(port);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096))
		bench_die("cannot listen on 127.0.0.1: %s", strerror(errno));
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	getsockname(fd, (struct sockaddr *)&a, &len);
	return ntohs(a.sin_port);
}

static bool read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			return false;
		if (n > 0)
			got += (size_t)n;
	}
	return true;
}

/* Run kn-net-client (beside this binary) against port; fill r. */
static void drive(int port, int conns, size_t size, const struct bench_args *a,
		  struct bench_result *r)
{
	char exe[PATH_MAX], path[PATH_MAX + 32], sport[16], sconns[16], sreq[32], ssize[16];
	char *argv[] = { path, sport, sconns, sreq, ssize, NULL };
	posix_spawn_file_actions_t fa;
	uint64_t head[2], chunk[SAMPLES_CHUNK], i, j, n = 0;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int p[2], status;
	pid_t pid;

	if (len <= 0 || pipe(p))
		bench_die("cannot set up the client");
	exe[len] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(path, sizeof(path), "%s/kn-net-client", exe);
	snprintf(sport, sizeof(sport), "%d", port);
	snprintf(sconns, sizeof(sconns), "%d", conns);
	snprintf(sreq, sizeof(sreq), "%llu", (unsigned long long)a->items);
	snprintf(ssize, sizeof(ssize), "%zu", size);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 3);
	if (posix_spawn(&pid, path, &fa, NULL, argv, environ))
		bench_die("cannot start %s", path);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	r->check = "the client failed (see stderr)";
	if (read_all(p[0], head, sizeof(head))) {
		r->lat = bench_lat_new(head[1]);
		/* In chunks: a read per sample would be most of this
		 * process's system calls under strace (after the clock). */
		for (i = 0; i < head[1]; i += n) {
			n = head[1] - i < SAMPLES_CHUNK ? head[1] - i : SAMPLES_CHUNK;
			if (!read_all(p[0], chunk, n * sizeof(chunk[0])))
				break;
			for (j = 0; j < n; j++)
				bench_lat_record(r->lat, chunk[j]);
		}
		if (i == head[1]) {
			r->ns = head[0];
			r->items = head[1];
			r->check = NULL;
		}
	}
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		r->check = "the client failed (see stderr)";
}

/* ---- kanal: a task per connection ------------------------------------------ */

/* The server is bench/net/echo.h's (shared with tests/stress/stress_net.c);
 * allocs_per_op is kanal's allocations per request in its steady state. */
static void kanal_echo(int conns, size_t size, const struct bench_args *a,
		       struct bench_result *r)
{
	kn_pool *p = kn_pool_new(NULL);
	struct echo_server s = { .ln = listen_loopback(0, false), .want = conns,
				 .conns = KN_WAITGROUP_INIT };

	echo_raise_fd_limit();
	if (!p || kn_pool_spawn(p, echo_accept, &s))
		bench_die("cannot start the pool");
	drive(port_of(s.ln), conns, size, a, r);
	kn_fd_close(s.ln); /* the accept task ends; connections ended with EOF */
	kn_waitgroup_wait(&s.conns);
	if (echo_window(&s, &r->allocs, &r->steady_syscalls, &r->allocs_ops))
		r->steady_items = r->allocs_ops;
	else /* too short a run: the whole run's counts */
		r->allocs_ops = 0;
	kn_pool_free(p);
}

BENCH(net_echo_64, kanal)
{
	kanal_echo(64, NET_MSG, a, r);
}

BENCH(net_echo_256, kanal)
{
	kanal_echo(256, NET_MSG, a, r);
}

BENCH(net_echo_1000, kanal)
{
	kanal_echo(1000, NET_MSG, a, r);
}

BENCH(net_echo_stream, kanal)
{
	kanal_echo(1, NET_STREAM_MSG, a, r);
}

/* ---- epoll: a single-threaded event loop per CPU ----------------------------- */

struct loop {
	pthread_t t;
	int ln, ep, stop;
};

static void loop_add(int ep, int fd, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.fd = fd };

	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* Echo what is there; false when the connection is done. A 64-byte reply
 * always fits the socket buffer of a ping-pong peer. */
static bool echo_ready(int fd)
{
	char b[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, b, sizeof(b));
		if (n > 0) {
			if (write(fd, b, (size_t)n) != n)
				return false;
			continue;
		}
		return n < 0 && (errno == EAGAIN || errno == EINTR);
	}
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct epoll_event evs[256];
	int i, n, c, one = 1;

	for (;;) {
		n = epoll_wait(l->ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == l->stop)
				return NULL;
			if (fd != l->ln) {
				if (!echo_ready(fd))
					close(fd);
				continue;
			}
			while ((c = accept4(l->ln, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				loop_add(l->ep, c, EPOLLIN);
			}
		}
	}
}

static void epoll_echo(int conns, const struct bench_args *a, struct bench_result *r)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	struct loop *ls;
	int i, n, port = 0;
	uint64_t one = 1;

	echo_raise_fd_limit();
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		ncpu = CPU_COUNT(&set);
	n = ncpu > 0 ? (int)ncpu : 1;
	ls = calloc((size_t)n, sizeof(*ls));
	if (!ls)
		bench_die("no memory");
	for (i = 0; i < n; i++) {
		ls[i].ln = listen_loopback(port, true);
		port = port_of(ls[i].ln);
		fcntl(ls[i].ln, F_SETFL, O_NONBLOCK);
		ls[i].ep = epoll_create1(EPOLL_CLOEXEC);
		ls[i].stop = eventfd(0, EFD_CLOEXEC);
		loop_add(ls[i].ep, ls[i].ln, EPOLLIN);
		loop_add(ls[i].ep, ls[i].stop, EPOLLIN);
		if (pthread_create(&ls[i].t, NULL, loop_main, &ls[i]))
			bench_die("cannot start a loop");
	}
	drive(port, conns, NET_MSG, a, r);
	for (i = 0; i < n; i++) {
		(void)!write(ls[i].stop, &one, sizeof(one));
		pthread_join(ls[i].t, NULL);
		close(ls[i].ln); /* its connections were closed by their peers */
		close(ls[i].ep);
		close(ls[i].stop);
	}
	free(ls);
}

BENCH(net_echo_64, epoll)
{
	epoll_echo(64, a, r);
}

BENCH(net_echo_256, epoll)
{
	epoll_echo(256, a, r);
}

BENCH(net_echo_1000, epoll)
{
	epoll_echo(1000, a, r);
}

/* ---- pthread: a thread per connection ------------------------------------- */

static void *echo_thread(void *arg)
{
	int c = (int)(intptr_t)arg, one = 1;
	char b[4096];
	ssize_t n;

	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while ((n = read(c, b, sizeof(b))) > 0)
		if (write(c, b, (size_t)n) != n)
			break;
	close(c);
	return NULL;
}

/* Accepts until shut down; detached connection threads end at EOF. */
static void *acceptor(void *arg)
{
	int ln = (int)(intptr_t)arg, c;
	pthread_attr_t at;
	pthread_t t;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	while ((c = accept4(ln, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		if (pthread_create(&t, &at, echo_thread, (void *)(intptr_t)c))
			close(c);
	pthread_attr_destroy(&at);
	return NULL;
}

BENCH(net_echo_64, pthread)
{
	int ln = listen_loopback(0, false);
	pthread_t t;

	if (pthread_create(&t, NULL, acceptor, (void *)(intptr_t)ln))
		bench_die("cannot start the acceptor");
	drive(port_of(ln), 64, NET_MSG, a, r);
	shutdown(ln, SHUT_RDWR); /* accept fails: the acceptor ends */
	pthread_join(t, NULL);
	close(ln);
}

/* ---- timer_100k ------------------------------------------------------------- */

static struct bench_lat *sleep_lat;
static kn_waitgroup sleepers;

static void sleeper(void *arg)
{
	uint64_t ns = (uint64_t)(uintptr_t)arg, d = kn_now() + ns;

	kn_sleep_until(d);
	bench_lat_record(sleep_lat, kn_now() - d);
	kn_waitgroup_done(&sleepers);
}

static uint64_t cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* The sleeps are 1 ms plus a xorshift draw below 9 ms (bench/go the same). */
static void sleep_many(const struct bench_args *a, struct bench_result *r, bool cpu)
{
	uint64_t x = 88172645463325252ull, i, t0, c0;

	kn_waitgroup_init(&sleepers);
	kn_waitgroup_add(&sleepers, (int64_t)a->items);
	sleep_lat = bench_lat_new(a->items);
	t0 = kn_now();
	c0 = cpu_now();
	for (i = 0; i < a->items; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (kn_go(sleeper, (void *)(uintptr_t)(1000000 + x % 9000000)))
			bench_die("cannot spawn");
	}
	kn_waitgroup_wait(&sleepers);
	r->ns = cpu ? cpu_now() - c0 : kn_now() - t0;
	r->lat = sleep_lat;
	r->check = "ok";
}

BENCH(timer_100k, kanal)
{
	sleep_many(a, r, false);
}

BENCH(timer_100k_cpu, kanal)
{
	sleep_many(a, r, true);
}

/* ---- timer_100k_idle ------------------------------------------------------- */

#define IDLE_SLEEP_NS 60000000000ull /* far beyond the measured second */

struct idle_sleep {
	kn_ctx *ctx;
	uint64_t ns;
};

static _Atomic uint64_t asleep, idle_bad;
static kn_waitgroup idle_done;

static void idle_sleeper(void *arg)
{
	struct idle_sleep *s = arg;

	atomic_fetch_add(&asleep, 1);
	if (kn_sleep_ctx(s->ns, s->ctx) != ECANCELED)
		atomic_fetch_add(&idle_bad, 1);
	kn_waitgroup_done(&idle_done);
}

/* a->items tasks asleep (kn_sleep_ctx, a minute plus the xorshift draw of
 * timer_100k) while the process's CPU time is measured over one second,
 * once all have started and 100 ms have passed; then the context is
 * cancelled and they all wake. ns: CPU ns in that second (items 1). */
BENCH(timer_100k_idle, kanal)
{
	struct idle_sleep *s = calloc(a->items, sizeof(*s));
	kn_ctx *ctx = kn_ctx_with_cancel(kn_ctx_background());
	uint64_t x = 88172645463325252ull, i, c0;

	if (!s || !ctx)
		bench_die("no memory");
	kn_waitgroup_init(&idle_done);
	kn_waitgroup_add(&idle_done, (int64_t)a->items);
	for (i = 0; i < a->items; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s[i] = (struct idle_sleep){ ctx, IDLE_SLEEP_NS + x % 9000000 };
		if (kn_go(idle_sleeper, &s[i]))
			bench_die("cannot spawn");
	}
	while (atomic_load(&asleep) < a->items)
		kn_sleep(1000000);
	kn_sleep(100000000);
	c0 = cpu_now();
	kn_sleep(1000000000);
	r->ns = cpu_now() - c0;
	kn_ctx_cancel(ctx, ECANCELED, "measured");
	kn_waitgroup_wait(&idle_done);
	kn_ctx_release(ctx);
	free(s);
	r->items = 1;
	r->check = atomic_load(&idle_bad) ? "a sleeper did not end with ECANCELED" : "ok";
}

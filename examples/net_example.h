/*
 * net_example.h - what the network examples share: the listener, the
 * accept loop (a task per connection), and the checking client.
 *
 * Usage of a program built on it:
 *   PROG                   serve on 127.0.0.1 and drive the server with the
 *                          client in the same process (the example test)
 *   PROG --listen PORT     serve until killed (PORT 0: any; the first line
 *                          printed is "listening on 127.0.0.1:P")
 *   PROG --client PORT     drive a server elsewhere
 * Client options: --conns N connections, each making --msgs M requests
 * (of --size S bytes where that applies), every reply checked.
 * Exit status 0 when every reply matched.
 */
#ifndef NET_EXAMPLE_H
#define NET_EXAMPLE_H

/* Included first: accept4's flags, memmem. */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <kanal/kanal.h>
#include <kanal/net.h>

struct net_opts {
	int port, conns, msgs;
	size_t size;
};

/* One connection of the client: make opts->msgs requests on fd, check each
 * reply; 0 if all matched. */
typedef int (*client_fn)(int fd, int id, const struct net_opts *opts);

static struct sockaddr_in loopback(int port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET,
				     .sin_port = htons((uint16_t)port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

/* A listener on 127.0.0.1:*port (0: any; *port gets the one chosen). */
static int listen_on(int *port)
{
	struct sockaddr_in a = loopback(*port);
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	printf("listening on 127.0.0.1:%d\n", *port);
	fflush(stdout);
	return fd;
}

static _Atomic uint64_t tasks_started;

/* kn_go, counted for net_end. */
static int go(void (*fn)(void *), void *arg)
{
	int err = kn_go(fn, arg);

	if (!err)
		atomic_fetch_add(&tasks_started, 1);
	return err;
}

/* How every run ends: shut the default pool down, draining (it waits for
 * every task, the connections' too), and check that each task started ran to its end; r, or 1. */
static int net_end(int r)
{
	struct kn_pool_stats st;
	kn_pool *pool = kn_default_pool();

	if (!pool)
		return 1;
	kn_pool_shutdown(pool, true, NULL);
	kn_pool_stats(pool, &st);
	if (st.tasks_run != atomic_load(&tasks_started)) {
		fprintf(stderr, "%llu tasks ended, %llu started\n",
			(unsigned long long)st.tasks_run,
			(unsigned long long)atomic_load(&tasks_started));
		return 1;
	}
	return r;
}

struct server {
	int ln;
	void (*conn)(void *); /* runs with the connection's fd, closes it */
};

/* Accept until the listener is closed (kn_fd_close: EBADF); a task per
 * connection. */
static void accept_loop(void *arg)
{
	struct server *s = arg;
	int conn;

	while (kn_accept(s->ln, NULL, NULL, &conn) == 0)
		if (go(s->conn, (void *)(intptr_t)conn) != 0)
			kn_fd_close(conn);
}

static int dial(int port)
{
	struct sockaddr_in a = loopback(port);
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

/* Read exactly len bytes (a reply may come in pieces). */
static int read_full(int fd, char *b, size_t len)
{
	size_t got = 0, n;
	int err;

	while (got < len) {
		err = kn_read(fd, b + got, len - got, &n);
		if (err || n == 0)
			return err ? err : EPIPE;
		got += n;
	}
	return 0;
}

struct client {
	const struct net_opts *opts;
	client_fn fn;
	kn_waitgroup wg;
	_Atomic int failures, next_id;
};

static void client_conn(void *arg)
{
	struct client *cl = arg;
	int id = atomic_fetch_add(&cl->next_id, 1), fd = dial(cl->opts->port);

	if (fd < 0 || cl->fn(fd, id, cl->opts) != 0)
		atomic_fetch_add(&cl->failures, 1);
	if (fd >= 0)
		kn_fd_close(fd);
	kn_waitgroup_done(&cl->wg);
}

static int run_client(const struct net_opts *o, client_fn fn)
{
	struct client cl = { o, fn, KN_WAITGROUP_INIT, 0, 0 };
	int i;

	for (i = 0; i < o->conns; i++) {
		kn_waitgroup_add(&cl.wg, 1);
		if (go(client_conn, &cl) != 0) {
			kn_waitgroup_done(&cl.wg);
			atomic_fetch_add(&cl.failures, 1);
		}
	}
	kn_waitgroup_wait(&cl.wg);
	printf("%d connections x %d requests: %d connections failed\n", o->conns,
	       o->msgs, atomic_load(&cl.failures));
	return atomic_load(&cl.failures) != 0;
}

static int net_main(int argc, char **argv, void (*conn)(void *), client_fn fn)
{
	struct net_opts o = { 0, 100, 100, 64 };
	struct server s = { -1, conn };
	int i, mode = 0, r;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen") || !strcmp(argv[i], "--client")) {
			mode = argv[i][2];
			o.port = atoi(argv[i + 1]);
		} else if (!strcmp(argv[i], "--conns")) {
			o.conns = atoi(argv[i + 1]);
		} else if (!strcmp(argv[i], "--msgs")) {
			o.msgs = atoi(argv[i + 1]);
		} else if (!strcmp(argv[i], "--size")) {
			o.size = (size_t)atol(argv[i + 1]);
		}
	}
	if (!o.size)
		o.size = 1;
	if (mode == 'c')
		return net_end(run_client(&o, fn));
	s.ln = listen_on(&o.port);
	if (go(accept_loop, &s) != 0)
		return 1;
	if (mode == 'l')
		for (;;)
			kn_sleep(3600ull * 1000000000ull);
	r = run_client(&o, fn);
	kn_fd_close(s.ln); /* the accept loop ends with EBADF */
	return net_end(r);
}

#endif

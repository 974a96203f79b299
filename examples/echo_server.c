/*
 * echo_server.c - a TCP echo server written like Go's: one task per
 * connection, straight-line kn_read / kn_write (examples/go/echo_server is
 * its Go twin). A task waiting for its socket is suspended and holds no
 * thread; the pool's poller resumes it when the socket is ready.
 *
 * Usage:
 *   echo_server                  serve on 127.0.0.1 and drive it with the
 *                                client below in the same process (the test)
 *   echo_server --listen PORT    serve until killed (PORT 0: any; the first
 *                                line printed is "listening on 127.0.0.1:P")
 *   echo_server --client PORT [--conns N] [--msgs M] [--size S]
 *                                N connections each send M messages of S
 *                                bytes and check every echoed byte
 * Exit status 0 when every reply matched.
 */
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

/* ---- the server: what the Go twin does -------------------------------- */

static void echo(void *arg)
{
	int conn = (int)(intptr_t)arg;
	char buf[4096];
	size_t n;

	while (kn_read(conn, buf, sizeof(buf), &n) == 0 && n > 0)
		if (kn_write(conn, buf, n, NULL) != 0)
			break;
	kn_fd_close(conn);
}

/* Accept until the listener is closed (kn_fd_close: EBADF). */
static void serve(void *arg)
{
	int ln = (int)(intptr_t)arg, conn;

	while (kn_accept(ln, NULL, NULL, &conn) == 0)
		if (kn_go(echo, (void *)(intptr_t)conn) != 0)
			kn_fd_close(conn);
}

static int listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		perror("listen");
		exit(1);
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

/* ---- the client: checks every byte ---------------------------------------- */

struct client {
	int port, msgs;
	size_t size;
	kn_waitgroup wg;
	_Atomic int failures;
	_Atomic long checked;
};

/* Message j of connection c: bytes that differ per connection and message. */
static void fill(char *b, size_t size, int c, int j)
{
	size_t i;

	for (i = 0; i < size; i++)
		b[i] = (char)(c * 131 + j * 7 + (int)i);
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
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

struct conn_arg {
	struct client *cl;
	int id;
};

static void client_conn(void *arg)
{
	struct conn_arg *ca = arg;
	struct client *cl = ca->cl;
	char *out = malloc(cl->size), *in = malloc(cl->size);
	int fd = dial(cl->port), j, bad = fd < 0 || !out || !in;

	for (j = 0; !bad && j < cl->msgs; j++) {
		fill(out, cl->size, ca->id, j);
		bad = kn_write(fd, out, cl->size, NULL) != 0 ||
		      read_full(fd, in, cl->size) != 0 ||
		      memcmp(in, out, cl->size) != 0;
		if (!bad)
			atomic_fetch_add(&cl->checked, 1);
	}
	if (bad)
		atomic_fetch_add(&cl->failures, 1);
	if (fd >= 0)
		kn_fd_close(fd);
	free(out);
	free(in);
	kn_waitgroup_done(&cl->wg);
}

static int run_client(int port, int conns, int msgs, size_t size)
{
	struct client cl = { port, msgs, size, KN_WAITGROUP_INIT, 0, 0 };
	struct conn_arg *args = calloc((size_t)conns, sizeof(*args));
	int i;

	if (!args)
		return 1;
	for (i = 0; i < conns; i++) {
		args[i] = (struct conn_arg){ &cl, i };
		kn_waitgroup_add(&cl.wg, 1);
		if (kn_go(client_conn, &args[i]) != 0) {
			kn_waitgroup_done(&cl.wg);
			atomic_fetch_add(&cl.failures, 1);
		}
	}
	kn_waitgroup_wait(&cl.wg);
	printf("%d connections x %d messages of %zu bytes: %ld echoed and checked, %d connections failed\n",
	       conns, msgs, size, atomic_load(&cl.checked), atomic_load(&cl.failures));
	free(args);
	return atomic_load(&cl.failures) != 0;
}

int main(int argc, char **argv)
{
	int i, port = 0, conns = 100, msgs = 100, listen_only = 0, client_only = 0;
	size_t size = 64;
	int ln;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_only = 1, port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--client"))
			client_only = 1, port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--conns"))
			conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--msgs"))
			msgs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = (size_t)atol(argv[i + 1]);
	}
	if (client_only)
		return run_client(port, conns, msgs, size ? size : 1);
	ln = listen_on(port);
	if (kn_go(serve, (void *)(intptr_t)ln) != 0)
		return 1;
	if (listen_only)
		for (;;)
			kn_sleep(3600ull * 1000000000ull);
	port = 0;
	{
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		getsockname(ln, (struct sockaddr *)&a, &len);
		port = ntohs(a.sin_port);
	}
	i = run_client(port, conns, msgs, size ? size : 1);
	kn_fd_close(ln); /* the accept loop ends with EBADF */
	return i;
}

/*
 * kn-net-client - the one client of the net_echo_* workloads, run as its
 * own process against every server (kanal, Go, epoll, pthreads), so that
 * the servers are compared with the same load.
 *
 *   kn-net-client PORT CONNS REQUESTS SIZE
 *
 * CONNS connections to 127.0.0.1:PORT, each a kanal task making
 * REQUESTS / CONNS ping-pong round trips of SIZE bytes (written whole,
 * read back whole, compared byte for byte). SIZE above STREAM_MIN: a
 * stream instead, each connection's messages written by a task of their
 * own, ahead of the reader (a sample is then a message's write start to
 * its last byte read). Writes to fd 3, in native
 * byte order: the elapsed ns (uint64), the number of samples (uint64),
 * then each round trip's ns (uint64), or nothing when a check failed
 * (exit status 1, the reason on stderr).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kanal/kanal.h>

#include "echo.h"

static int port, per_conn;
static size_t size;
static uint64_t *samples;
static _Atomic int failures;
static kn_waitgroup wg = KN_WAITGROUP_INIT;
static kn_waitgroup connected = KN_WAITGROUP_INIT;
static kn_chan *go_ahead; /* closed when every connection is up */

#define STREAM_MIN (64 * 1024)

static void fill(char *b, int id, int j)
{
	size_t i;

	for (i = 0; i < size; i++)
		b[i] = (char)(id + j + (int)i);
}

/* A stream's writer: every message, then the write side shut. */
struct writer {
	int fd, id;
	_Atomic uint64_t *start; /* per message, read by the reader */
	kn_waitgroup done;
};

static void writer_task(void *arg)
{
	struct writer *w = arg;
	char *out = malloc(size);
	int j;

	for (j = 0; out && j < per_conn; j++) {
		fill(out, w->id, j);
		w->start[j] = kn_now();
		if (kn_write(w->fd, out, size, NULL))
			break;
	}
	if (!out || j < per_conn)
		atomic_fetch_add(&failures, 1);
	free(out);
	kn_waitgroup_done(&w->done);
}

static void conn_task(void *arg)
{
	int id = (int)(intptr_t)arg, fd = echo_dial(port), j = 0, bad = fd < 0;
	char *out = malloc(size), *in = malloc(size);
	size_t got, n;
	uint64_t t0, dummy;

	kn_waitgroup_done(&connected);
	kn_chan_recv(go_ahead, &dummy); /* EPIPE: the start */
	bad |= !out || !in;
	if (!bad && size > STREAM_MIN) {
		struct writer *w = calloc(1, sizeof(*w));

		bad = !w || !(w->start = calloc((size_t)per_conn, sizeof(*w->start)));
		if (!bad) {
			w->fd = fd;
			w->id = id;
			kn_waitgroup_add(&w->done, 1);
			bad = kn_go(writer_task, w) != 0;
		}
		for (j = 0; !bad && j < per_conn; j++) {
			fill(out, id, j);
			for (got = 0; !bad && got < size; got += n)
				bad = kn_read(fd, in + got, size - got, &n) != 0 || n == 0;
			bad = bad || memcmp(in, out, size) != 0;
			if (!bad)
				samples[(size_t)id * (size_t)per_conn + (size_t)j] =
					kn_now() - w->start[j];
		}
		if (w && w->start) {
			if (bad)
				shutdown(fd, SHUT_RDWR); /* the writer stops */
			kn_waitgroup_wait(&w->done);
			free(w->start);
		}
		free(w);
		j = per_conn;
	}
	for (; !bad && j < per_conn; j++) {
		fill(out, id, j);
		t0 = kn_now();
		bad = kn_write(fd, out, size, NULL) != 0;
		for (got = 0; !bad && got < size; got += n)
			bad = kn_read(fd, in + got, size - got, &n) != 0 || n == 0;
		bad = bad || memcmp(in, out, size) != 0;
		samples[(size_t)id * (size_t)per_conn + (size_t)j] = kn_now() - t0;
	}
	if (bad)
		atomic_fetch_add(&failures, 1);
	if (fd >= 0)
		kn_fd_close(fd);
	free(out);
	free(in);
	kn_waitgroup_done(&wg);
}

int main(int argc, char **argv)
{
	uint64_t head[2], t0;
	int conns, i;
	size_t total;
	FILE *f;

	if (argc != 5)
		return 2;
	port = atoi(argv[1]);
	conns = atoi(argv[2]);
	per_conn = atoi(argv[3]) / (conns > 0 ? conns : 1);
	size = (size_t)atol(argv[4]);
	if (conns <= 0 || per_conn <= 0 || size == 0)
		return 2;
	echo_raise_fd_limit();
	total = (size_t)conns * (size_t)per_conn;
	samples = calloc(total, sizeof(*samples));
	go_ahead = kn_chan_new(1, 1);
	if (!samples || !go_ahead)
		return 1;
	kn_waitgroup_add(&wg, conns);
	kn_waitgroup_add(&connected, conns);
	for (i = 0; i < conns; i++)
		if (kn_go(conn_task, (void *)(intptr_t)i))
			return 1;
	kn_waitgroup_wait(&connected);
	t0 = kn_now();
	kn_chan_close(go_ahead);
	kn_waitgroup_wait(&wg);
	head[0] = kn_now() - t0;
	head[1] = total;
	if (atomic_load(&failures)) {
		fprintf(stderr, "kn-net-client: %d connections failed\n", atomic_load(&failures));
		return 1;
	}
	f = fdopen(3, "w");
	if (!f || fwrite(head, sizeof(head), 1, f) != 1 ||
	    fwrite(samples, sizeof(*samples), total, f) != total || fclose(f))
		return 1;
	return 0;
}

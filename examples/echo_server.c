/*
 * echo_server.c - a TCP echo server written like Go's: one task per
 * connection, straight-line kn_read / kn_write (examples/go/echo_server is
 * its Go twin). A task waiting for its socket is suspended and holds no
 * thread; the pool's poller resumes it when the socket is ready.
 *
 * Usage (net_example.h): echo_server [--listen PORT | --client PORT]
 * [--conns N] [--msgs M] [--size S]. The client sends M messages of S bytes
 * per connection and checks every echoed byte.
 */
#include "net_example.h"

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

/* ---- the client ------------------------------------------------------------ */

/* Message j of connection c: bytes that differ per connection and message. */
static void fill(char *b, size_t size, int c, int j)
{
	size_t i;

	for (i = 0; i < size; i++)
		b[i] = (char)(c * 131 + j * 7 + (int)i);
}

static int echo_client(int fd, int id, const struct net_opts *o)
{
	char *out = malloc(o->size), *in = malloc(o->size);
	int j, bad = !out || !in;

	for (j = 0; !bad && j < o->msgs; j++) {
		fill(out, o->size, id, j);
		bad = kn_write(fd, out, o->size, NULL) != 0 ||
		      read_full(fd, in, o->size) != 0 ||
		      memcmp(in, out, o->size) != 0;
	}
	free(out);
	free(in);
	return bad;
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, echo, echo_client);
}

/*
 * http_server.c - a small HTTP/1.1 "hello" server with keep-alive: one
 * task per connection reads requests in a straight line (kn_read), answers
 * each (kn_write) and keeps the connection open until the client closes it
 * or asks "Connection: close". Requests may be pipelined; bodies are not
 * supported (GET only).
 *
 * Usage (net_example.h): http_server [--listen PORT | --client PORT]
 * [--conns N] [--msgs M]. The client makes M keep-alive requests per
 * connection (the last with "Connection: close") and checks every status
 * line, length and body, and that the server then closes.
 */
#include "net_example.h"

#define BODY "Hello, World!"
#define MAX_HEAD 8192

static const char response[] = "HTTP/1.1 200 OK\r\n"
			       "Content-Type: text/plain\r\n"
			       "Content-Length: 13\r\n"
			       "\r\n" BODY;

/* Until "\r\n\r\n" is in buf[0..*have): its end, or 0 (EOF, error, or a
 * head longer than MAX_HEAD). */
static size_t read_head(int fd, char *buf, size_t *have)
{
	char *end;
	size_t n;

	while (!(end = memmem(buf, *have, "\r\n\r\n", 4))) {
		if (*have == MAX_HEAD ||
		    kn_read(fd, buf + *have, MAX_HEAD - *have, &n) || n == 0)
			return 0;
		*have += n;
	}
	return (size_t)(end + 4 - buf);
}

/* Drop the first len bytes of buf. */
static void consume(char *buf, size_t *have, size_t len)
{
	memmove(buf, buf + len, *have - len);
	*have -= len;
}

static void http_conn(void *arg)
{
	int conn = (int)(intptr_t)arg;
	char buf[MAX_HEAD];
	size_t have = 0, len;
	bool last = false;

	while (!last && (len = read_head(conn, buf, &have)) != 0) {
		last = memmem(buf, len, "\r\nConnection: close\r\n", 21) != NULL;
		if (kn_write(conn, response, sizeof(response) - 1, NULL))
			break;
		consume(buf, &have, len);
	}
	kn_fd_close(conn);
}

/* ---- the client ------------------------------------------------------------ */

static int http_client(int fd, int id, const struct net_opts *o)
{
	char buf[MAX_HEAD], req[128];
	size_t have = 0, len, n;
	const char *cl;
	int j, rl;

	for (j = 0; j < o->msgs; j++) {
		rl = snprintf(req, sizeof(req),
			      "GET /%d/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", id, j,
			      j == o->msgs - 1 ? "Connection: close\r\n" : "");
		if (kn_write(fd, req, (size_t)rl, NULL) ||
		    !(len = read_head(fd, buf, &have)) ||
		    strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) ||
		    !(cl = memmem(buf, len, "Content-Length: ", 16)) ||
		    strtoul(cl + 16, NULL, 10) != strlen(BODY))
			return 1;
		consume(buf, &have, len);
		if (have < strlen(BODY) &&
		    read_full(fd, buf + have, strlen(BODY) - have))
			return 1;
		have = have < strlen(BODY) ? strlen(BODY) : have;
		if (memcmp(buf, BODY, strlen(BODY)))
			return 1;
		consume(buf, &have, strlen(BODY));
	}
	/* After "Connection: close" the server hangs up. */
	return have != 0 || kn_read(fd, buf, sizeof(buf), &n) != 0 || n != 0;
}

int main(int argc, char **argv)
{
	return net_main(argc, argv, http_conn, http_client);
}

/*
 * stress_net.c - connections churn through an echo server whose tasks
 * wait in kanal/net.h, every byte checked.
 *
 * One pool runs both sides on 127.0.0.1: the net_echo benchmark's server
 * (bench/net/echo.h: an accept task, a task per accepted connection that
 * reads and writes back), and C client tasks that, until
 * the time is up, connect, send 1-8 messages of random length (each byte
 * a function of the client, the connection and its position), read each
 * echo back in full, compare it, and close; every 16th connection is
 * instead dropped with a message unread (the server's write then fails
 * or is discarded). So fd numbers are closed and reused all the time on
 * both sides, while other tasks wait on their own fds.
 *
 * Checks, per configuration:
 *   - every echoed byte equals the byte sent;
 *   - progress: a watchdog fails the run if no message completes for 30 s
 *     (a lost wake-up leaves tasks suspended with data waiting);
 *   - afterwards no socket is left open (the process's count is back).
 *
 * Usage: stress_net [--seconds S]   (S per configuration, default 1)
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kanal/kanal.h>

/* The server and dial of the net_echo benchmark. */
#include "../../bench/net/echo.h"

struct config {
	int clients;
	size_t max_len; /* longest message */
};

static const struct config configs[] = {
	{ 1000, 512 },
	{ 64, 256 * 1024 }, /* partial reads and writes, waits for room */
};

struct shared {
	const struct config *cfg;
	int port;
	uint64_t end;
	kn_waitgroup clients;
	_Atomic uint64_t messages, bytes, conns, failures;
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* ---- clients ------------------------------------------------------------- */

static unsigned char byte_at(uint64_t seed, size_t i)
{
	return (unsigned char)((seed >> (i % 7 * 8)) + i * 31);
}

/* Send len bytes of seed's pattern, read them back, compare: 0 or 1. */
static int round_trip(int fd, uint64_t seed, size_t len, unsigned char *out,
		      unsigned char *in)
{
	size_t i, got, n;

	for (i = 0; i < len; i++)
		out[i] = byte_at(seed, i);
	if (kn_write(fd, out, len, NULL) != 0)
		return 1;
	for (got = 0; got < len; got += n)
		if (kn_read(fd, in + got, len - got, &n) != 0 || n == 0)
			return 1;
	return memcmp(in, out, len) != 0;
}

struct client {
	struct shared *sh;
	int id;
};

static void client_task(void *arg)
{
	struct client *c = arg;
	struct shared *sh = c->sh;
	unsigned char *out = malloc(sh->cfg->max_len), *in = malloc(sh->cfg->max_len);
	uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(c->id + 1);
	int k, msgs, fd;
	size_t len;

	while (out && in && kn_now() < sh->end) {
		fd = echo_dial(sh->port);
		if (fd < 0) {
			at_fail:
			atomic_fetch_add(&sh->failures, 1);
			break;
		}
		atomic_fetch_add(&sh->conns, 1);
		msgs = 1 + (int)(next_rand(&rng) % 8);
		for (k = 0; k < msgs; k++) {
			len = 1 + next_rand(&rng) % sh->cfg->max_len;
			if (next_rand(&rng) % 16 == 0) { /* drop it unread */
				kn_write(fd, out, len, NULL);
				break;
			}
			if (round_trip(fd, rng, len, out, in)) {
				kn_fd_close(fd);
				goto at_fail;
			}
			atomic_fetch_add(&sh->messages, 1);
			atomic_fetch_add(&sh->bytes, len);
		}
		kn_fd_close(fd);
	}
	free(out);
	free(in);
	kn_waitgroup_done(&sh->clients);
}

/* ---- a run -------------------------------------------------------------- */

/* Open sockets: what this test makes and must close. Other fds come and
 * go with the runtime (the poller's epoll fd and eventfd, a thread's
 * eventfd made on its first fd wait, closed when it exits) and with the
 * sanitizers, so counting every fd would flag those as leaks. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[64];
	ssize_t len;
	int n = 0;

	while (d && (e = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		n += len > 7 && !strncmp(target, "socket:", 7);
	}
	if (d)
		closedir(d);
	return n;
}

static int listener(int *port)
{
	struct sockaddr_in a = echo_loopback(0);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Until the clients are done; false if no message completed for 30 s. */
static bool watch(struct shared *sh)
{
	uint64_t seen = 0, since = kn_now(), m;

	while (kn_waitgroup_wait_until(&sh->clients, kn_deadline_in(100000000)) == ETIMEDOUT) {
		m = atomic_load(&sh->messages) + atomic_load(&sh->failures);
		if (m != seen) {
			seen = m;
			since = kn_now();
		} else if (kn_now() - since > 30000000000ull) {
			return false;
		}
	}
	return true;
}

static int run(const struct config *cfg, double seconds, kn_pool *pool)
{
	struct shared sh = { .cfg = cfg, .clients = KN_WAITGROUP_INIT };
	struct client *cs = calloc((size_t)cfg->clients, sizeof(*cs));
	struct echo_server srv = { .conns = KN_WAITGROUP_INIT };
	int fds = open_fds(), i, bad = 0;

	srv.ln = listener(&sh.port);
	if (!cs || srv.ln < 0 || kn_pool_spawn(pool, echo_accept, &srv)) {
		fprintf(stderr, "stress_net: setup failed\n");
		return 1;
	}
	sh.end = kn_now() + (uint64_t)(seconds * 1e9);
	for (i = 0; i < cfg->clients; i++) {
		cs[i] = (struct client){ &sh, i };
		kn_waitgroup_add(&sh.clients, 1);
		if (kn_pool_spawn(pool, client_task, &cs[i])) {
			kn_waitgroup_done(&sh.clients);
			bad = 1;
		}
	}
	if (!watch(&sh)) {
		fprintf(stderr, "stress_net: no progress for 30 s (a lost wake-up?)\n");
		abort();
	}
	kn_fd_close(srv.ln); /* the accept task ends with EBADF */
	kn_pool_wait_idle(pool);
	if (open_fds() != fds) {
		fprintf(stderr, "stress_net: %d sockets open, %d before\n", open_fds(), fds);
		bad = 1;
	}
	bad |= atomic_load(&sh.failures) != 0 || atomic_load(&sh.messages) == 0;
	printf("%4d clients, messages up to %7zu B: %8" PRIu64 " connections, %9" PRIu64
	       " messages, %11" PRIu64 " bytes checked, %" PRIu64 " failures%s\n",
	       cfg->clients, cfg->max_len, atomic_load(&sh.conns), atomic_load(&sh.messages),
	       atomic_load(&sh.bytes), atomic_load(&sh.failures), bad ? "  FAILED" : "");
	free(cs);
	return bad;
}

int main(int argc, char **argv)
{
	double seconds = 1;
	kn_pool *pool;
	int i, failed = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--seconds S]\n", argv[0]);
			return 2;
		}
	}
	echo_raise_fd_limit(); /* two fds per connection, both ends here */
	pool = kn_pool_new(NULL);
	if (!pool)
		return 1;
	for (i = 0; i < (int)(sizeof(configs) / sizeof(configs[0])); i++)
		failed |= run(&configs[i], seconds, pool);
	kn_pool_free(pool);
	return failed;
}

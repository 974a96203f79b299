/*
 * stress_epoll.c - drives the epoll echo server of examples/epoll_server.c
 * with many pipelined client connections and checks every reply byte.
 *
 * Each round starts a server - in this process (the example is compiled
 * in, its loop runs on a thread), or with --exec the built example as a
 * child process - and connects CLIENTS connections that each send REQS
 * lines of random length (0..MAX_PAYLOAD bytes, no newline inside) written
 * in random-size pieces, up to WINDOW requests ahead of the replies. A
 * client regenerates its requests from their seed to check the replies, so
 * nothing is stored. Rounds cycle through channel capacities 1, 8 and 256
 * (1 keeps the request channel full: backpressure) and four ways to stop:
 *
 *   REQUESTS  budget --requests = every request: the server stops itself
 *   CONNS     budget --max-conns = every connection
 *   STOP      a stop (SIGTERM) once every client has all its replies
 *   EARLY     a stop (SIGINT) when half of all replies are in: each client
 *             then sees a correct prefix of its replies and the end
 *
 * Checks: every reply byte, in order; no reply missing (but in EARLY);
 * the server's count of replies served; that the server ends by itself
 * (status 0) and, in process, that it leaves no descriptor open. A round
 * in which no byte moves for WATCHDOG_S seconds fails with the state of
 * the server's channels and their descriptors (a lost readiness shows as
 * a channel holding values whose descriptor is not readable).
 *
 * Usage: stress_epoll [--seconds S] [--exec PATH]
 * Rounds repeat until S seconds have passed, at least one per way to stop.
 * Only loopback addresses; prints one line per round; exits non-zero on
 * any discrepancy.
 */
#define EPOLL_SERVER_NO_MAIN
#include "../../examples/epoll_server.c"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

#include "stress.h"

#define CLIENTS 64
#define REQS 200
#define MAX_PAYLOAD 4096
#define WINDOW 16
#define MAX_PIECE 3000
#define WATCHDOG_S 60

enum stop_mode { REQUESTS, CONNS, STOP, EARLY, NMODES };

static const char *const mode_name[] = { "requests", "max-conns", "stop", "early" };
static const size_t capacities[] = { 1, 8, 256 };

/* The server under test: in process (s) or a child process (pid). */
struct target {
	struct echo_server *s;
	pthread_t loop;
	int loop_result;
	pid_t pid;
	FILE *out; /* the child's stdout */
	int port;
};

struct client {
	int fd;
	uint64_t tx_rng, rx_rng, piece_rng; /* tx and rx: the same sequence */
	unsigned sent, checked;             /* requests written, replies checked */
	size_t tx_len, tx_off, rx_len, rx_off;
	char tx[MAX_PAYLOAD + 1], rx[MAX_PAYLOAD + 1];
};

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

/* The next request (and so the next reply) of a sequence: its length. */
static size_t gen_line(uint64_t *rng, char *buf)
{
	size_t n = xorshift64(rng) % (MAX_PAYLOAD + 1), i;
	uint64_t bits = 0;

	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			bits = xorshift64(rng);
		buf[i] = (char)(bits >> (i % 8 * 8));
		if (buf[i] == '\n')
			buf[i] = 0;
	}
	buf[n] = '\n';
	return n + 1;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the server under test ------------------------------------------------------ */

static void *loop_main(void *arg)
{
	struct target *t = arg;

	t->loop_result = echo_server_run(t->s);
	return NULL;
}

static int start_process(struct target *t, const char *path, const struct echo_config *cfg)
{
	char req[32], conns[32], cap[32];
	char line[128];
	int p[2];

	snprintf(req, sizeof(req), "%" PRIu64, cfg->requests);
	snprintf(conns, sizeof(conns), "%u", cfg->max_conns);
	snprintf(cap, sizeof(cap), "%zu", cfg->capacity);
	if (pipe2(p, O_CLOEXEC))
		return errno;
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0)
		return errno;
	if (t->pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execl(path, path, "--requests", req, "--max-conns", conns, "--capacity", cap,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	t->out = fdopen(p[0], "r");
	if (!t->out || !fgets(line, sizeof(line), t->out) ||
	    sscanf(line, "listening on 127.0.0.1:%d\n", &t->port) != 1) {
		fprintf(stderr, "FAIL: %s: no \"listening on 127.0.0.1:PORT\" line\n", path);
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		return EINVAL;
	}
	return 0;
}

static int target_start(struct target *t, const char *exec, const struct echo_config *cfg)
{
	int r;

	memset(t, 0, sizeof(*t));
	if (exec)
		return start_process(t, exec, cfg);
	r = echo_server_open(&t->s, cfg);
	if (r)
		return r;
	t->port = t->s->port;
	return pthread_create(&t->loop, NULL, loop_main, t);
}

static void target_stop(struct target *t, int sig)
{
	if (t->s)
		echo_server_stop(t->s);
	else
		kill(t->pid, sig);
}

/* Wait for the server to end by itself; its count of replies served. */
static uint64_t target_wait(struct target *t, uint64_t *stalls)
{
	uint64_t served = 0;
	char line[128];
	int status;

	if (t->s) {
		pthread_join(t->loop, NULL);
		CHECK(t->loop_result == 0, "echo_server_run: %s", strerror(t->loop_result));
		served = t->s->served;
		*stalls = t->s->stalls;
		echo_server_free(t->s);
		return served;
	}
	while (fgets(line, sizeof(line), t->out))
		sscanf(line, "served %" SCNu64 " requests, %" SCNu64, &served, stalls);
	fclose(t->out);
	waitpid(t->pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server exit status %#x", status);
	return served;
}

/* A round that stopped moving: what the server's channels look like. */
static void diagnose(const struct target *t, const struct client *cl)
{
	struct pollfd p[2];
	int i;

	for (i = 0; i < CLIENTS; i++)
		if (cl[i].fd >= 0)
			fprintf(stderr, "  client %d: sent %u, checked %u\n", i, cl[i].sent,
				cl[i].checked);
	if (!t->s) {
		kill(t->pid, SIGKILL);
		return;
	}
	p[0] = (struct pollfd){ .fd = t->s->reply_fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = t->s->room_fd, .events = POLLIN };
	poll(p, 2, 0);
	fprintf(stderr, "  reply channel: %zu values, KN_RECV fd %sreadable\n",
		kn_chan_len(t->s->rep), p[0].revents & POLLIN ? "" : "not ");
	fprintf(stderr, "  request channel: %zu of %zu values, KN_SEND fd %sreadable\n",
		kn_chan_len(t->s->req), kn_chan_cap(t->s->req),
		p[1].revents & POLLIN ? "" : "not ");
}

/* ---- clients -------------------------------------------------------------------- */

static int client_open(struct client *c, int port, uint64_t seed)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	memset(c, 0, sizeof(*c));
	c->tx_rng = c->rx_rng = seed | 1;
	c->piece_rng = ~seed | 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) ||
	    fcntl(c->fd, F_SETFL, O_NONBLOCK))
		return errno;
	c->rx_len = gen_line(&c->rx_rng, c->rx);
	return 0;
}

static void client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static bool client_wants_out(const struct client *c)
{
	return c->sent < REQS && c->sent - c->checked < WINDOW;
}

/* Write the next piece; false if the server is gone. */
static bool client_write(struct client *c)
{
	size_t piece;
	ssize_t n;

	if (c->tx_off == c->tx_len) {
		c->tx_len = gen_line(&c->tx_rng, c->tx);
		c->tx_off = 0;
	}
	piece = 1 + xorshift64(&c->piece_rng) % MAX_PIECE;
	if (piece > c->tx_len - c->tx_off)
		piece = c->tx_len - c->tx_off;
	n = send(c->fd, c->tx + c->tx_off, piece, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN;
	c->tx_off += n;
	if (c->tx_off == c->tx_len)
		c->sent++;
	return true;
}

/*
 * Check what arrived against the expected replies. 1: more may come,
 * 0: the connection ended (the server closed it, or every reply is in),
 * -1: a wrong byte or a reply that was never asked for.
 */
static int client_read(struct client *c, int id)
{
	char buf[65536];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0), i;

	if (n < 0)
		return errno == EAGAIN ? 1 : 0;
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (c->checked == REQS || c->checked == c->sent) {
			fprintf(stderr, "FAIL: client %d: a reply to request %u, not sent\n",
				id, c->checked);
			return -1;
		}
		if (buf[i] != c->rx[c->rx_off]) {
			fprintf(stderr, "FAIL: client %d: reply %u byte %zu is %#x, not %#x\n",
				id, c->checked, c->rx_off, (unsigned char)buf[i],
				(unsigned char)c->rx[c->rx_off]);
			return -1;
		}
		if (++c->rx_off == c->rx_len) {
			c->checked++;
			c->rx_off = 0;
			c->rx_len = gen_line(&c->rx_rng, c->rx);
		}
	}
	return c->checked < REQS;
}

/* Drive every client to its end; the number of replies checked. */
static uint64_t drive(struct target *t, struct client *cl, enum stop_mode mode)
{
	struct pollfd pfd[CLIENTS];
	int idx[CLIENTS];
	uint64_t checked = 0, last_progress = kn_now();
	bool stopped = false;
	int open = CLIENTS, i, k, r;

	while (open > 0) {
		for (i = k = 0; i < CLIENTS; i++) {
			if (cl[i].fd < 0)
				continue;
			pfd[k] = (struct pollfd){ .fd = cl[i].fd, .events = POLLIN };
			if (client_wants_out(&cl[i]))
				pfd[k].events |= POLLOUT;
			idx[k++] = i;
		}
		if (poll(pfd, k, 1000) == 0 &&
		    kn_now() - last_progress > WATCHDOG_S * 1000000000ull) {
			fprintf(stderr, "FAIL: no progress for %d s\n", WATCHDOG_S);
			diagnose(t, cl);
			exit(1);
		}
		for (i = 0; i < k; i++) {
			struct client *c = &cl[idx[i]];
			unsigned before = c->checked, sent = c->sent;

			r = 1;
			if (pfd[i].revents & POLLOUT)
				r = client_write(c);
			if (r > 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				r = client_read(c, idx[i]);
			if (r < 0)
				failures++;
			if (r <= 0) {
				CHECK(r < 0 || mode == EARLY || c->checked == REQS,
				      "client %d: the connection ended after %u replies",
				      idx[i], c->checked);
				client_close(c);
				open--;
			}
			checked += c->checked - before;
			if (c->checked != before || c->sent != sent || r <= 0)
				last_progress = kn_now();
		}
		if (mode == EARLY && !stopped && checked >= CLIENTS * REQS / 2) {
			target_stop(t, SIGINT);
			stopped = true;
		}
	}
	return checked;
}

/* ---- rounds ------------------------------------------------------------------------ */

static void round_run(const char *exec, enum stop_mode mode, size_t capacity, unsigned seed)
{
	struct echo_config cfg = { .capacity = capacity };
	struct client *cl = calloc(CLIENTS, sizeof(*cl));
	struct target t;
	uint64_t served, checked, stalls = 0;
	int fds = count_fds(), i, r;

	if (mode == REQUESTS)
		cfg.requests = (uint64_t)CLIENTS * REQS;
	if (mode == CONNS)
		cfg.max_conns = CLIENTS;
	r = cl ? target_start(&t, exec, &cfg) : ENOMEM;
	if (r) {
		fprintf(stderr, "FAIL: starting the server: %s\n", strerror(r));
		exit(1);
	}
	for (i = 0; i < CLIENTS; i++) {
		r = client_open(&cl[i], t.port, (uint64_t)seed * CLIENTS + i + 1);
		if (r) {
			fprintf(stderr, "FAIL: client %d: connect: %s\n", i, strerror(r));
			exit(1);
		}
	}
	checked = drive(&t, cl, mode);
	if (mode == STOP)
		target_stop(&t, SIGTERM);
	served = target_wait(&t, &stalls);
	if (mode == EARLY)
		CHECK(served >= checked && checked >= CLIENTS * REQS / 2,
		      "served %" PRIu64 ", checked %" PRIu64, served, checked);
	else
		CHECK(served == checked && checked == (uint64_t)CLIENTS * REQS,
		      "served %" PRIu64 ", checked %" PRIu64 " of %d", served, checked,
		      CLIENTS * REQS);
	if (!exec)
		CHECK(count_fds() == fds, "descriptors open: %d before the round, %d after",
		      fds, count_fds());
	printf("%-9s capacity %-3zu %s: %" PRIu64 " replies checked, %" PRIu64
	       " served, %" PRIu64 " stalls\n", mode_name[mode], capacity,
	       exec ? "process" : "in process", checked, served, stalls);
	fflush(stdout);
	free(cl);
}

int main(int argc, char **argv)
{
	const char *exec = NULL;
	double seconds = stress_args(argc, argv, "--exec PATH", &exec);
	uint64_t end = stress_deadline(seconds);
	unsigned i;

	for (i = 0; i < NMODES || kn_now() < end; i++)
		round_run(exec, i % NMODES, capacities[i % 3], i);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures != 0;
}

/*
 * test_trace.c - the execution trace (KANAL_TRACE, kn_trace_flush; issue 16).
 *
 * KANAL_TRACE is read once, before main, so the traced program runs in a
 * fresh process: the test executes this same binary with KANAL_TRACE and
 * KN_TRACE_CHILD set, and a constructor (run after the trace's own, which
 * has a priority) runs the known program in it and exits, which writes
 * the trace. The program: a pool "tr" of one worker and two named tasks,
 * "ping" sending ROUNDS values over an unbuffered channel to "pong",
 * enough hand-offs for the worker's lane to count as busy, so that most
 * switches are written by trace_run's inline path. With one worker the two
 * take turns on the same thread, so each hand-off blocks one of them until
 * the other comes: the trace must show exactly two spawns, slices of both
 * tasks on the worker's lane (and nowhere else), at least ROUNDS blocks
 * there, each on the channel (a send or a receive), and for each block a
 * wake ("s") and then a resumption ("f") on that lane naming its waiter,
 * before that waiter blocks again: a record lost or mangled breaks that
 * order. The file must also be one JSON document (python3's json module
 * reads it when python3 is there; the line checks below do not depend on
 * it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/kanal.h"

#define ROUNDS 100 /* enough for the switches written inline (trace_run) */
#define MAX_EVENTS 4096
#define MAX_WAITERS 8

static void ping(void *arg)
{
	int i;

	for (i = 0; i < ROUNDS; i++)
		if (kn_chan_send(arg, &i) != 0)
			exit(3);
}

static void pong(void *arg)
{
	int i, v;

	for (i = 0; i < ROUNDS; i++)
		if (kn_chan_recv(arg, &v) != 0 || v != i)
			exit(4);
}

/* The traced program, in the child; its exit status says what failed. */
__attribute__((constructor)) static void traced_child(void)
{
	struct kn_pool_opts opts = { .workers = 1, .name = "tr",
				     .max_spare = KN_POOL_NO_SPARE };
	kn_chan *c;
	kn_pool *p;

	if (!getenv("KN_TRACE_CHILD"))
		return;
	c = kn_chan_new(sizeof(int), 0);
	p = kn_pool_new(&opts);
	if (!c || !p)
		exit(2);
	if (kn_pool_spawn_named(p, "ping", ping, c) ||
	    kn_pool_spawn_named(p, "pong", pong, c))
		exit(2);
	/* A flush while the worker may still record (ThreadSanitizer
	 * watches the rings' protocol here); the exit's replaces it. */
	if (kn_trace_flush() != 0)
		exit(6);
	if (kn_pool_wait_idle(p) != 0)
		exit(5);
	kn_pool_free(p);
	kn_chan_free(c);
	exit(0);
}

/* One event line of the trace: the fields the checks use. */
struct event {
	char ph[4], name[32];
	int tid;
	double ts;
	unsigned long long task;
	char id[24], waiter[24], wait[24];
	char lane[32]; /* a thread_name's */
};

/* The string value of "key" in line, or "" (values have no quotes). */
static void str_field(const char *line, const char *key, char *out, size_t size)
{
	char pat[40];
	const char *s;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	out[0] = '\0';
	s = strstr(line, pat);
	if (!s)
		return;
	s += strlen(pat);
	n = strcspn(s, "\"");
	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

static double num_field(const char *line, const char *key)
{
	char pat[40];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	s = strstr(line, pat);
	return s ? strtod(s + strlen(pat), NULL) : -1;
}

static bool parse(const char *line, struct event *e)
{
	if (line[0] == ',')
		line++;
	if (strncmp(line, "{\"ph\":", 6) != 0)
		return false;
	str_field(line, "ph", e->ph, sizeof(e->ph));
	str_field(line, "name", e->name, sizeof(e->name));
	str_field(line, "id", e->id, sizeof(e->id));
	str_field(line, "waiter", e->waiter, sizeof(e->waiter));
	str_field(line, "wait", e->wait, sizeof(e->wait));
	str_field(strstr(line, "\"args\":{") ? strstr(line, "\"args\":{") : "",
		  "name", e->lane, sizeof(e->lane));
	e->tid = (int)num_field(line, "tid");
	e->ts = num_field(line, "ts");
	e->task = (unsigned long long)num_field(line, "task");
	return true;
}

static const char *trace_path(void)
{
	static char path[64];

	snprintf(path, sizeof(path), "/tmp/kn_test_trace_%d.json", (int)getpid());
	return path;
}

/* Run the traced program; its events into ev (n of them). */
static size_t run_traced(struct event *ev, size_t max)
{
	const char *path = trace_path();
	char line[1024];
	pid_t pid;
	int status;
	size_t n = 0;
	bool end = false;
	FILE *f;

	unlink(path);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		setenv("KANAL_TRACE", path, 1);
		setenv("KN_TRACE_CHILD", "1", 1);
		execl("/proc/self/exe", "test_trace", (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "traced child: status %#x", status);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no trace file %s", path);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "{\"traceEvents\":[\n");
	while (fgets(line, sizeof(line), f)) {
		cr_assert(!end, "text after the end: %s", line);
		if (strncmp(line, "],\"displayTimeUnit\"", 19) == 0) {
			cr_assert(strstr(line, "\"dropped_events\":0,"), "%s", line);
			end = true;
			continue;
		}
		cr_assert(n < max);
		cr_assert(parse(line, &ev[n]), "not an event: %s", line);
		n++;
	}
	fclose(f);
	cr_assert(end, "the trace has no end");
	if (system("command -v python3 >/dev/null 2>&1") == 0) {
		char cmd[160];

		snprintf(cmd, sizeof(cmd),
			 "python3 -c 'import json,sys; json.load(open(sys.argv[1]))' %s", path);
		cr_assert_eq(system(cmd), 0, "%s is not valid JSON", path);
	}
	unlink(path);
	return n;
}

Test(trace, events_match_program)
{
	static struct event ev[MAX_EVENTS];
	struct {
		char id[24];
		int next; /* 0: a block, 1: its wake, 2: its resumption */
		double ts;
	} w[MAX_WAITERS] = { 0 };
	size_t n = run_traced(ev, MAX_EVENTS), i, k, nw = 0;
	int worker = -1, spawns = 0, ping_runs = 0, pong_runs = 0, blocks = 0;

	for (i = 0; i < n; i++) {
		if (!strcmp(ev[i].ph, "i") && !strcmp(ev[i].name, "spawn"))
			spawns++;
		if (!strcmp(ev[i].ph, "X") && (!strcmp(ev[i].name, "ping") ||
					       !strcmp(ev[i].name, "pong"))) {
			if (worker < 0)
				worker = ev[i].tid;
			cr_assert_eq(ev[i].tid, worker, "%s ran on two lanes", ev[i].name);
			ping_runs += !strcmp(ev[i].name, "ping");
			pong_runs += !strcmp(ev[i].name, "pong");
		}
	}
	cr_assert_eq(spawns, 2);
	for (i = 0; i < n; i++)
		if (!strcmp(ev[i].name, "thread_name") && ev[i].tid == worker)
			cr_assert_str_eq(ev[i].lane, "tr-0");
	cr_assert_geq(ping_runs, 1);
	cr_assert_geq(pong_runs, 1);
	/* Every block of a task on the worker's lane is a channel
	 * hand-off's, and its waiter is woken ("s") and resumed through
	 * ("f") after it, before it blocks again: per waiter, in the lane's
	 * order, block, s, f, block, s, f, ..., ending with f (both tasks
	 * end). (The worker thread's own waits, task 0, are not the
	 * program's.) */
	for (i = 0; i < n; i++) {
		if (ev[i].tid != worker)
			continue;
		if (!strcmp(ev[i].name, "block") && ev[i].task) {
			cr_assert(!strcmp(ev[i].wait, "chan send") ||
				  !strcmp(ev[i].wait, "chan recv"),
				  "a task blocked on \"%s\", not the channel", ev[i].wait);
			for (k = 0; k < nw && strcmp(w[k].id, ev[i].waiter); k++)
				;
			cr_assert(k < MAX_WAITERS);
			if (k == nw)
				snprintf(w[nw++].id, sizeof(w[0].id), "%s", ev[i].waiter);
			cr_assert_eq(w[k].next, 0, "waiter %s blocked twice", w[k].id);
			w[k].next = 1;
			w[k].ts = ev[i].ts;
			blocks++;
			continue;
		}
		if (!strcmp(ev[i].name, "unpark")) {
			i++; /* its "f": the worker's own waiter (maybe at a
			      * task waiter's old address) */
			continue;
		}
		if (strcmp(ev[i].name, "wake") || (strcmp(ev[i].ph, "s") && strcmp(ev[i].ph, "f")))
			continue;
		for (k = 0; k < nw && strcmp(w[k].id, ev[i].id); k++)
			;
		if (k == nw)
			continue; /* the main thread's wait for the pool */
		cr_assert_eq(w[k].next, ev[i].ph[0] == 's' ? 1 : 2,
			     "waiter %s: \"%s\" out of turn", w[k].id, ev[i].ph);
		cr_assert_geq(ev[i].ts, w[k].ts, "waiter %s: time runs back", w[k].id);
		w[k].next = (w[k].next + 1) % 3;
		w[k].ts = ev[i].ts;
	}
	for (k = 0; k < nw; k++)
		cr_assert_eq(w[k].next, 0, "waiter %s not resumed", w[k].id);
	/* One worker: each value's hand-off blocks one of the two tasks. */
	cr_assert_geq(blocks, ROUNDS, "%d blocks for %d values", blocks, ROUNDS);
}

Test(trace, flush_is_off_without_kanal_trace)
{
	cr_assert_eq(kn_trace_flush(), ENOTSUP);
}

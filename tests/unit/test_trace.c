/*
 * test_trace.c - the execution trace (KANAL_TRACE, kn_trace_flush; issue 16).
 *
 * KANAL_TRACE is read once, before main, so the traced program runs in a
 * fresh process: the test executes this same binary with KANAL_TRACE and
 * KN_TRACE_CHILD set, and a constructor (run after the trace's own, which
 * has a priority) runs the known program in it and exits, which writes
 * the trace. The program: a pool "tr" of one worker and two named tasks,
 * "ping" sending ROUNDS values over an unbuffered channel to "pong". With
 * one worker the two take turns on the same thread, so each hand-off
 * blocks one of them until the other comes: the trace must show exactly
 * two spawns, slices of both tasks on the worker's lane (and nowhere
 * else), and a block on the channel (a send or a receive) whose waiter a
 * wake ("s") and a resumption ("f") on that lane name. The file must also be one JSON document (python3's json
 * module reads it when python3 is there; the line checks below do not
 * depend on it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/kanal.h"

#define ROUNDS 3
#define MAX_EVENTS 4096

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
	size_t n = run_traced(ev, MAX_EVENTS), i, j, k;
	int worker = -1, spawns = 0, ping_runs = 0, pong_runs = 0;
	bool handoff = false;

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
	/* A block on the worker's lane, the wake of its waiter, and the
	 * blocked task's resumption through it, in that order. */
	for (i = 0; i < n && !handoff; i++) {
		if (strcmp(ev[i].name, "block") || ev[i].tid != worker || !ev[i].waiter[0])
			continue;
		cr_assert(!strcmp(ev[i].wait, "chan send") || !strcmp(ev[i].wait, "chan recv"),
			  "a task blocked on \"%s\", not the channel", ev[i].wait);
		for (j = 0; j < n && !handoff; j++) {
			if (strcmp(ev[j].ph, "s") || strcmp(ev[j].id, ev[i].waiter))
				continue;
			for (k = 0; k < n && !handoff; k++)
				handoff = !strcmp(ev[k].ph, "f") && ev[k].tid == worker &&
					  !strcmp(ev[k].id, ev[i].waiter) &&
					  ev[k].ts >= ev[j].ts && ev[j].ts >= ev[i].ts;
		}
	}
	cr_assert(handoff, "no block, wake and resumption of a channel hand-off");
}

Test(trace, flush_is_off_without_kanal_trace)
{
	cr_assert_eq(kn_trace_flush(), ENOTSUP);
}

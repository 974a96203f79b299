/*
 * test_diag.c - seeing inside the pools (issue 16; the contracts are in
 * kanal/pool.h, the design in runtime/src/pool_diag.c): kn_dump names
 * what each task waits on; the deadlock report fires on a real deadlock
 * and never on a program that is only slow; the stall report names a task
 * that spins; a signal prints the dump; the dump says where each task
 * was spawned.
 *
 * The reports look at the whole process (every thread must be asleep in
 * kanal), and they read the environment at the first pool's creation, so
 * each of those scenarios runs in a process of its own: this test program
 * run again with KT_DIAG_SCENARIO naming the scenario in its environment
 * (a constructor runs it before the test framework starts, under a 20 s
 * alarm), its stderr captured. What the tests assert is behaviour (the
 * child's status, what it printed), never time: the 1 s sleeps only make
 * the slow programs slow.
 */
#include <dlfcn.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/kanal.h"

#include "child.h"
#include "pool_helpers.h"

extern char **environ;

/* ---- the scenarios, in a child process ------------------------------------- */

static kn_pool *child_pool(unsigned workers)
{
	struct kn_pool_opts o = { .workers = workers, .name = "diag" };
	kn_pool *p = kn_pool_new(&o);

	if (!p)
		_exit(90);
	return p;
}

struct pair {
	kn_chan *mine, *theirs;
};

/* Waits for the other side's value before sending its own. */
static void wait_then_send(void *arg)
{
	struct pair *pr = arg;
	int64_t v = 0;

	if (kn_chan_recv(pr->mine, &v) == 0)
		kn_chan_send(pr->theirs, &v);
}

/* Two tasks, each waiting on the other's channel; the main thread waits
 * for the pool to go idle, which it never does. */
static void deadlock(void)
{
	kn_pool *p = child_pool(2);
	kn_chan *a = kn_chan_new(sizeof(int64_t), 0), *b = kn_chan_new(sizeof(int64_t), 0);
	struct pair left = { a, b }, right = { b, a };

	kn_pool_spawn_named(p, "left", wait_then_send, &left);
	kn_pool_spawn_named(p, "right", wait_then_send, &right);
	kn_pool_wait_idle(p);
}

/* A pipeline that is only slow: each value waits a second in its first
 * stage, and the main thread waits for the pool meanwhile. */
static void slow_source(void *arg)
{
	int64_t i;

	for (i = 0; i < 3; i++) {
		kn_sleep(1000000000ull);
		kn_chan_send(arg, &i);
	}
	kn_chan_close(arg);
}

static void slow_sink(void *arg)
{
	int64_t v;

	while (kn_chan_recv(arg, &v) == 0)
		;
}

static void slow_pipeline(void)
{
	kn_pool *p = child_pool(2);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);

	kn_pool_spawn_named(p, "source", slow_source, ch);
	kn_pool_spawn_named(p, "sink", slow_sink, ch);
	kn_pool_wait_idle(p);
	kn_pool_free(p);
}

/* Tasks waiting for a plain thread that sends later: the thread sleeps
 * outside kanal (nanosleep) for 2.5 s, while every other thread of the
 * process is asleep in kanal. */
static void *late_sender(void *arg)
{
	int64_t v = 1;

	nap_ms(2500);
	kn_chan_send(arg, &v);
	kn_chan_send(arg, &v);
	return NULL;
}

static void recv_one(void *arg)
{
	int64_t v;

	kn_chan_recv(arg, &v);
}

static void waits_for_thread(void)
{
	kn_pool *p = child_pool(2);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	pthread_t t;

	kn_pool_spawn_named(p, "waiter-1", recv_one, ch);
	kn_pool_spawn_named(p, "waiter-2", recv_one, ch);
	if (pthread_create(&t, NULL, late_sender, ch))
		_exit(91);
	kn_pool_wait_idle(p);
	pthread_join(t, NULL);
	kn_pool_free(p);
}

/* One worker: the spinner queues two tasks behind itself, then runs for
 * 200 ms without blocking or yielding. */
static void nothing(void *arg)
{
	(void)arg;
}

static void spin(void *arg)
{
	uint64_t end = kn_now() + 200000000ull;

	kn_pool_spawn_named(arg, "behind-1", nothing, NULL);
	kn_pool_spawn_named(arg, "behind-2", nothing, NULL);
	while (kn_now() < end)
		;
}

static void stall(void)
{
	kn_pool *p = child_pool(1);

	kn_pool_spawn_named(p, "spinner", spin, p);
	kn_pool_wait_idle(p);
	kn_pool_free(p);
}

/* A task blocked on a channel, then "ready" on stderr and a wait (outside
 * kanal) for the parent's signal, whose dump names the task. */
static bool dump_has(const char *want)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool has;

	kn_dump(f);
	fclose(f);
	has = strstr(buf, want) != NULL;
	free(buf);
	return has;
}

static void on_signal(void)
{
	kn_pool *p = child_pool(1);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);

	kn_pool_spawn_named(p, "sig-waiter", recv_one, ch);
	while (!dump_has("\"sig-waiter\": blocked on chan recv"))
		nap_ms(1);
	fprintf(stderr, "ready\n");
	for (;;)
		pause(); /* the alarm ends it, or the parent */
}

/* A scenario run in a child of fork(), whose parent had the watcher
 * armed: a task blocked on a channel with its worker asleep (so an entry
 * of the check is pending in the heap the child inherits). The child's
 * report goes where the parent's stderr goes; the parent says how the
 * child ended, then ends its own task. */
static void (*forked)(void);

static void run_forked(void *unused)
{
	(void)unused;
	forked();
}

static void after_fork(void (*scenario)(void))
{
	kn_pool *p = child_pool(1);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	int64_t v = 1;
	int st;

	kn_pool_spawn_named(p, "parent-waiter", recv_one, ch);
	while (!dump_has("\"parent-waiter\": blocked on chan recv") ||
	       !dump_has("worker 0: asleep"))
		nap_ms(1);
	forked = scenario;
	st = kt_child(run_forked, NULL, NULL, 0);
	fprintf(stderr, "fork child: %s %d\n", WIFSIGNALED(st) ? "signal" : "exit",
		WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	kn_chan_send(ch, &v);
	kn_pool_wait_idle(p);
	kn_pool_free(p);
}

/* The child aborts on its deadlock. */
static void deadlock_after_fork(void)
{
	after_fork(deadlock);
}

/* The child's tasks wait for its thread that sends after 2.5 s. */
static void slow_after_fork(void)
{
	after_fork(waits_for_thread);
}

/* The child's signal prints the child's dump (which the parent's could
 * not: it has not the child's task): its stderr made a pipe it reads
 * until its task shows (the alarm ends it otherwise). */
static void signal_child(void)
{
	kn_pool *p = child_pool(1);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	char buf[16384];
	size_t got = 0;
	ssize_t n;
	int fds[2];

	kn_pool_spawn_named(p, "child-waiter", recv_one, ch);
	while (!dump_has("\"child-waiter\": blocked on chan recv"))
		nap_ms(1);
	if (pipe(fds) || dup2(fds[1], STDERR_FILENO) < 0)
		_exit(92);
	raise(SIGUSR1);
	buf[0] = 0;
	while (!strstr(buf, "\"child-waiter\": blocked on chan recv") &&
	       got < sizeof(buf) - 1 && (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0) {
		got += (size_t)n;
		buf[got] = 0;
	}
	_exit(strstr(buf, "\"child-waiter\"") ? 0 : 93);
}

static void signal_after_fork(void)
{
	after_fork(signal_child);
}

static const struct scenario {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{ "deadlock", deadlock },
	{ "slow_pipeline", slow_pipeline },
	{ "waits_for_thread", waits_for_thread },
	{ "stall", stall },
	{ "on_signal", on_signal },
	{ "deadlock_after_fork", deadlock_after_fork },
	{ "slow_after_fork", slow_after_fork },
	{ "signal_after_fork", signal_after_fork },
};

__attribute__((constructor)) static void scenario_main(void)
{
	const char *name = getenv("KT_DIAG_SCENARIO");
	size_t i;

	if (!name)
		return;
	alarm(20);
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(scenarios[i].name, name)) {
			scenarios[i].fn();
			fflush(stderr);
			_exit(0);
		}
	_exit(99);
}

/* ---- the parent's side ------------------------------------------------------ */

struct child {
	pid_t pid;
	int err; /* the read end of its stderr */
	char out[16384];
	size_t got;
};

/* This program again, running scenario with the extra environment
 * settings (NAME=VALUE, NULL-terminated). */
static void child_start(struct child *c, const char *scenario, const char *const *extra)
{
	static char self[4096];
	char setting[128];
	char *envp[256];
	posix_spawn_file_actions_t fa;
	char *argv[] = { self, NULL };
	int fds[2];
	size_t n = 0, i;
	ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert(k > 0);
	self[k] = 0;
	for (i = 0; environ[i] && n < 200; i++)
		if (strncmp(environ[i], "KANAL_", 6) && strncmp(environ[i], "KT_DIAG_", 8))
			envp[n++] = environ[i];
	snprintf(setting, sizeof(setting), "KT_DIAG_SCENARIO=%s", scenario);
	envp[n++] = setting;
	for (i = 0; extra[i]; i++)
		envp[n++] = (char *)extra[i];
	envp[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	cr_assert_eq(posix_spawn(&c->pid, self, &fa, NULL, argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	c->err = fds[0];
	c->got = 0;
	c->out[0] = 0;
}

/* Read its stderr until want appears (NULL: until the end). */
static bool child_read(struct child *c, const char *want)
{
	ssize_t k;

	while (!(want && strstr(c->out, want)) && c->got < sizeof(c->out) - 1 &&
	       (k = read(c->err, c->out + c->got, sizeof(c->out) - 1 - c->got)) > 0) {
		c->got += (size_t)k;
		c->out[c->got] = 0;
	}
	return !want || strstr(c->out, want) != NULL;
}

static int child_end(struct child *c)
{
	int status;

	child_read(c, NULL);
	close(c->err);
	cr_assert_eq(waitpid(c->pid, &status, 0), c->pid);
	return status;
}

static int run(struct child *c, const char *scenario, const char *const *extra)
{
	child_start(c, scenario, extra);
	return child_end(c);
}

/* ---- the deadlock report ----------------------------------------------------- */

static const char *const abort_on_deadlock[] = { "KANAL_DEADLOCK=abort", NULL };

Test(deadlock, two_tasks_waiting_on_each_other_are_reported, .timeout = 60)
{
	static struct child c;
	int st = run(&c, "deadlock", abort_on_deadlock);

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		  "the report must abort (status %#x); stderr:\n%s", st, c.out);
	cr_assert(strstr(c.out, "kanal: deadlock"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "\"left\": blocked on chan recv"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "\"right\": blocked on chan recv"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "threads outside the pools asleep in kanal calls: 1"),
		  "the main thread waits in kn_pool_wait_idle; stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "(outside the pools): blocked on pool idle 0x"),
		  "the main thread's line; stderr:\n%s", c.out);
}

/* ThreadSanitizer cannot follow threads started in the child of a
 * threaded process (test_fork.c): under it these are skipped. */
#if defined(__SANITIZE_THREAD__)
#define NO_CHILD_THREADS true
#else
#define NO_CHILD_THREADS false
#endif

/* A scenario whose child of fork exits by itself: its stderr. */
static const char *expect_child_exit(const char *scenario, const char *const *env)
{
	static struct child c;
	int st = run(&c, scenario, env);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x; stderr:\n%s", st, c.out);
	cr_assert(strstr(c.out, "fork child: exit 0\n"), "stderr:\n%s", c.out);
	return c.out;
}

/* deadlock_after_fork: its child aborts with its report. */
static void expect_child_report(const char *const *env)
{
	static struct child c;
	char want[32];
	int st = run(&c, "deadlock_after_fork", env);

	snprintf(want, sizeof(want), "fork child: signal %d\n", SIGABRT);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x; stderr:\n%s", st, c.out);
	cr_assert(strstr(c.out, want), "the child must abort on its deadlock; stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "kanal: deadlock"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "\"left\": blocked on chan recv"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "\"right\": blocked on chan recv"), "stderr:\n%s", c.out);
}

/* The stall check's entry, always pending while a pool lives, wakes
 * nobody: it must not hide the deadlock. */
Test(deadlock, is_reported_with_the_stall_report_on, .timeout = 60)
{
	static struct child c;
	const char *const env[] = { "KANAL_DEADLOCK=abort", "KANAL_STALL_MS=20", NULL };
	int st = run(&c, "deadlock", env);

	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		  "the report must abort (status %#x); stderr:\n%s", st, c.out);
	cr_assert(strstr(c.out, "\"left\": blocked on chan recv"), "stderr:\n%s", c.out);
}

Test(deadlock, a_child_of_fork_reports_its_own_deadlock, .timeout = 60,
     .disabled = NO_CHILD_THREADS)
{
	expect_child_report(abort_on_deadlock);
}

/* The parent's dump helper is not the child's: a thread the check would
 * count as awake, which the child does not have. */
Test(deadlock, a_child_of_fork_reports_with_the_dump_signal_on, .timeout = 60,
     .disabled = NO_CHILD_THREADS)
{
	const char *const env[] = { "KANAL_DEADLOCK=abort", "KANAL_DUMP_SIGNAL=SIGUSR1", NULL };

	expect_child_report(env);
}

/* The child's check must not count the parent's dump helper as a thread
 * of its own: it would take the child's sleeping thread (outside kanal,
 * about to send) for that helper, and report a deadlock that is none. */
Test(deadlock, a_child_of_fork_that_is_only_slow_is_not_reported, .timeout = 60,
     .disabled = NO_CHILD_THREADS)
{
	const char *const env[] = { "KANAL_DEADLOCK=abort", "KANAL_DUMP_SIGNAL=SIGUSR1", NULL };
	const char *out = expect_child_exit("slow_after_fork", env);

	cr_assert(!strstr(out, "deadlock"), "stderr:\n%s", out);
}

/* The dump signal set in the parent: the child's own dump, not the
 * parent's (whose helper read the pipe the child had inherited). */
Test(dump, a_signal_in_a_child_of_fork_prints_the_child_s_dump, .timeout = 60,
     .disabled = NO_CHILD_THREADS)
{
	/* No deadlock report: its dump would print the task too. */
	const char *const env[] = { "KANAL_DUMP_SIGNAL=SIGUSR1", "KANAL_DEADLOCK=off", NULL };

	expect_child_exit("signal_after_fork", env);
}

/* The scenario ends by itself (exit 0), with no report on stderr. */
static void expect_no_report(const char *scenario, const char *const *env, const char *report)
{
	static struct child c;
	int st = run(&c, scenario, env);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x; stderr:\n%s", st, c.out);
	cr_assert(!strstr(c.out, report), "stderr:\n%s", c.out);
}

Test(deadlock, a_pipeline_that_is_only_slow_is_not_reported, .timeout = 60)
{
	expect_no_report("slow_pipeline", abort_on_deadlock, "deadlock");
}

Test(deadlock, tasks_waiting_for_a_thread_that_sends_later_are_not_reported, .timeout = 60)
{
	expect_no_report("waits_for_thread", abort_on_deadlock, "deadlock");
}

/* Nor with the stall check's entry, which the check leaves aside. */
Test(deadlock, nor_with_the_stall_report_on, .timeout = 60)
{
	const char *const env[] = { "KANAL_DEADLOCK=abort", "KANAL_STALL_MS=20", NULL };

	expect_no_report("waits_for_thread", env, "deadlock");
	expect_no_report("slow_pipeline", env, "deadlock");
}

/* ---- the stall report ----------------------------------------------------------- */

Test(stall, a_task_that_spins_is_named_with_the_tasks_behind_it, .timeout = 60)
{
	static struct child c;
	const char *const env[] = { "KANAL_STALL_MS=20", NULL };
	int st = run(&c, "stall", env);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x; stderr:\n%s", st, c.out);
	cr_assert(strstr(c.out, "kanal: stall: task "), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "\"spinner\" has run for"), "stderr:\n%s", c.out);
	cr_assert(strstr(c.out, "2 tasks queued behind it (ids "), "stderr:\n%s", c.out);
	cr_assert(!strstr(c.out, "\"behind-"), "only the spinner stalls; stderr:\n%s", c.out);
}

Test(stall, off_by_default, .timeout = 60)
{
	const char *const env[] = { NULL };

	expect_no_report("stall", env, "stall");
}

/* ---- the dump on a signal --------------------------------------------------------- */

Test(dump, a_signal_prints_the_dump, .timeout = 60)
{
	static struct child c;
	const char *const env[] = { "KANAL_DUMP_SIGNAL=SIGUSR1", NULL };
	int st;

	child_start(&c, "on_signal", env);
	cr_assert(child_read(&c, "ready\n"), "stderr:\n%s", c.out);
	kill(c.pid, SIGUSR1);
	cr_assert(child_read(&c, "threads outside the pools"), "stderr:\n%s", c.out);
	kill(c.pid, SIGKILL);
	st = child_end(&c);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	cr_assert(strstr(strstr(c.out, "ready\n"), "\"sig-waiter\": blocked on chan recv"),
		  "stderr:\n%s", c.out);
}

Test(dump, kn_dump_on_signal_refuses_what_cannot_be_caught)
{
	cr_assert_eq(kn_dump_on_signal(0), EINVAL);
	cr_assert_eq(kn_dump_on_signal(SIGKILL), EINVAL);
	cr_assert_eq(kn_dump_on_signal(SIGSTOP), EINVAL);
	cr_assert_eq(kn_dump_on_signal(NSIG), EINVAL);
}

/* ---- kn_dump: what each task waits on ---------------------------------------------- */

static kn_mutex held = KN_MUTEX_INIT;

static void lock_once(void *arg)
{
	(void)arg;
	TASK_CHECK(kn_mutex_lock(&held) == 0);
	TASK_CHECK(kn_mutex_unlock(&held) == 0);
}

/* kn_dump into a string. */
static char *dump(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(kn_dump(f), 0);
	fclose(f);
	return buf;
}

/* The dump line of the task named name ("" if none). */
static bool line_of(const char *text, const char *name, char *line, size_t size)
{
	char quoted[64];
	const char *at, *end;

	snprintf(quoted, sizeof(quoted), "\"%s\": ", name);
	at = strstr(text, quoted);
	if (!at)
		return false;
	end = strchr(at, '\n');
	snprintf(line, size, "%.*s", (int)(end ? end - at : (long)strlen(at)), at);
	return true;
}

static bool blocked_both(char *ch_line, char *mu_line, size_t size)
{
	char *text = dump();
	bool ok = line_of(text, "chan-waiter", ch_line, size) &&
		  line_of(text, "mutex-waiter", mu_line, size) &&
		  strstr(ch_line, "blocked") && strstr(mu_line, "blocked");

	free(text);
	return ok;
}

Test(dump, names_the_channel_and_the_mutex_a_task_waits_on, .timeout = 60)
{
	kn_pool *p = pool_of(2, 0);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	char ch_line[256], mu_line[256], want[128];
	int64_t v = 7;
	int i;

	cr_assert_eq(kn_mutex_lock(&held), 0);
	cr_assert_eq(kn_pool_spawn_named(p, "chan-waiter", recv_one, ch), 0);
	cr_assert_eq(kn_pool_spawn_named(p, "mutex-waiter", lock_once, NULL), 0);
	/* Both block soon; the dump is only a snapshot. */
	for (i = 0; !blocked_both(ch_line, mu_line, sizeof(ch_line)); i++) {
		cr_assert_lt(i, 10000, "never both blocked: \"%s\", \"%s\"", ch_line, mu_line);
		nap_ms(1);
	}
	snprintf(want, sizeof(want), "blocked on chan recv %#lx for ", (unsigned long)(uintptr_t)ch);
	cr_assert(strstr(ch_line, want), "\"%s\" lacks \"%s\"", ch_line, want);
	snprintf(want, sizeof(want), "blocked on mutex %#lx for ", (unsigned long)(uintptr_t)&held);
	cr_assert(strstr(mu_line, want), "\"%s\" lacks \"%s\"", mu_line, want);
	cr_assert_eq(kn_chan_send(ch, &v), 0);
	cr_assert_eq(kn_mutex_unlock(&held), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	/* Ended tasks are gone from the dump. */
	{
		char *text = dump();

		cr_assert(!strstr(text, "\"chan-waiter\""), "%s", text);
		cr_assert(!strstr(text, "\"mutex-waiter\""), "%s", text);
		free(text);
	}
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_chan_free(ch);
}

static void gated(void *arg)
{
	(void)arg;
	gate_wait();
}

Test(dump, shows_a_running_task_and_its_worker, .timeout = 60)
{
	kn_pool *p = pool_of(1, 0);
	char line[256];
	char *text;
	int i;

	gate_close();
	cr_assert_eq(kn_pool_spawn_named(p, "gated", gated, NULL), 0);
	for (i = 0;; i++) {
		text = dump();
		if (line_of(text, "gated", line, sizeof(line)) && strstr(line, "running"))
			break;
		free(text);
		cr_assert_lt(i, 10000, "the gated task never showed as running");
		nap_ms(1);
	}
	cr_assert(strstr(line, "running on worker 0"), "%s", line);
	cr_assert(strstr(text, "worker 0: running task "), "%s", text);
	free(text);
	gate_open();
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	/* Idle, the worker goes to sleep (soon after the pool is idle). */
	for (i = 0;; i++) {
		bool asleep;

		text = dump();
		asleep = strstr(text, "worker 0: asleep") != NULL;
		free(text);
		if (asleep)
			break;
		cr_assert_lt(i, 10000, "the idle worker never showed as asleep");
		nap_ms(1);
	}
	kn_pool_free(p);
}

/* Spawns a task named "sited" from a call in this function, where the
 * dump must say it was spawned. */
static __attribute__((noinline, noclone)) kn_task *spawn_here(kn_pool *p, kn_chan *ch)
{
	return kn_pool_spawn_task_opts(p, &(struct kn_spawn_opts){ .name = "sited" },
				       recv_one, ch);
}

Test(dump, names_where_a_task_was_spawned, .timeout = 60)
{
	kn_pool *p = pool_of(1, 0);
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	uintptr_t fn = (uintptr_t)spawn_here;
	unsigned long addr = 0, off = 0;
	char line[512], want[300];
	const char *at;
	Dl_info self;
	int64_t v = 1;
	kn_task *t;
	char *text;

	cr_assert_not_null(ch);
	t = spawn_here(p, ch);
	cr_assert_not_null(t);
	/* Live until the send below: runnable or blocked, it has a line. */
	text = dump();
	cr_assert(line_of(text, "sited", line, sizeof(line)), "%s", text);
	free(text);
	cr_assert(dladdr((void *)fn, &self) && self.dli_fname);
	snprintf(want, sizeof(want), ", spawned at %s(+0x", self.dli_fname);
	at = strstr(line, want);
	cr_assert(at, "\"%s\" lacks \"%s\"", line, want);
	cr_assert_eq(sscanf(at + strlen(want), "%lx) [%lx]", &off, &addr), 2, "%s", line);
	cr_assert_eq(addr - off, (uintptr_t)self.dli_fbase, "%s", line);
	/* Inside spawn_here: after its start, well before its end. */
	cr_assert(addr > fn && addr < fn + 4096, "%s: spawn_here is at %#lx", line,
		  (unsigned long)fn);
	cr_assert_eq(kn_chan_send(ch, &v), 0);
	cr_assert_eq(kn_task_join(t), 0);
	kn_pool_free(p);
	kn_chan_free(ch);
}

/* ---- kn_dump: what threads outside the pools wait on ------------------------ */

struct plain {
	const char *name;
	kn_chan *ch; /* a receive on it, or with NULL: */
	int fd;      /* a read of it */
	int err;     /* what the call returned */
};

static void *plain_thread(void *arg)
{
	struct plain *pl = arg;
	int64_t v;
	char c;
	size_t n;

	pthread_setname_np(pthread_self(), pl->name);
	pl->err = pl->ch ? kn_chan_recv(pl->ch, &v) : kn_read(pl->fd, &c, 1, &n);
	return NULL;
}

/* The dump's line of the plain thread named name, if it shows it. */
static bool thread_line(const char *name, char *line, size_t size)
{
	char *text = dump(), quoted[64];
	const char *at, *end;

	snprintf(quoted, sizeof(quoted), "\"%s\" (outside the pools): ", name);
	at = strstr(text, quoted);
	if (at) {
		while (at > text && at[-1] != '\n')
			at--;
		end = strchr(at, '\n');
		snprintf(line, size, "%.*s", (int)(end ? end - at : (long)strlen(at)), at);
	}
	free(text);
	return at != NULL;
}

static void wait_for_line(const char *name, char *line, size_t size)
{
	int i;

	for (i = 0; !thread_line(name, line, size); i++) {
		cr_assert_lt(i, 10000, "the dump never named thread \"%s\"", name);
		nap_ms(1);
	}
}

Test(dump, names_what_a_plain_thread_waits_on, .timeout = 60)
{
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	struct plain on_chan = { "plain-recv", ch, -1, -1 }, on_fd = { "plain-read", NULL, -1, -1 };
	pthread_t t[2];
	char line[256], want[128];
	int64_t v = 7;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	on_fd.fd = sv[0];
	cr_assert_eq(pthread_create(&t[0], NULL, plain_thread, &on_chan), 0);
	cr_assert_eq(pthread_create(&t[1], NULL, plain_thread, &on_fd), 0);
	wait_for_line("plain-recv", line, sizeof(line));
	snprintf(want, sizeof(want), "\"plain-recv\" (outside the pools): blocked on chan recv %#lx for ",
		 (unsigned long)(uintptr_t)ch);
	cr_assert(strncmp(line, "thread ", 7) == 0 && strstr(line, want), "\"%s\" lacks \"%s\"", line, want);
	wait_for_line("plain-read", line, sizeof(line));
	snprintf(want, sizeof(want), "\"plain-read\" (outside the pools): blocked on fd %d for ", sv[0]);
	cr_assert(strstr(line, want), "\"%s\" lacks \"%s\"", line, want);
	cr_assert_eq(kn_chan_send(ch, &v), 0);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	cr_assert_eq(pthread_join(t[0], NULL), 0);
	cr_assert_eq(pthread_join(t[1], NULL), 0);
	cr_assert_eq(on_chan.err, 0);
	cr_assert_eq(on_fd.err, 0);
	/* Awake (and gone), they are not named. */
	cr_assert(!thread_line("plain-recv", line, sizeof(line)), "%s", line);
	cr_assert(!thread_line("plain-read", line, sizeof(line)), "%s", line);
	kn_chan_free(ch);
	close(sv[0]);
	close(sv[1]);
}

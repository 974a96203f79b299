/*
 * crshim.c - the runner of the Criterion shim (see criterion/criterion.h).
 *
 * Runs every registered test in a forked child, one at a time, with
 * .init/.fini and a timeout (the test's, else --timeout), and prints a
 * synthesis line in Criterion's format. Options: --jobs N (ignored: one at
 * a time), --timeout S, --filter GLOB (suite/name).
 */
#define _GNU_SOURCE
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criterion/criterion.h"

#define MAX_TESTS 1024

static struct crs_test *tests[MAX_TESTS];
static int ntests;
static int failed_expectations;

void crs_register(struct crs_test *t)
{
	if (ntests < MAX_TESTS)
		tests[ntests++] = t;
}

void crs_check(bool ok, bool fatal, const char *file, int line,
	       const char *expr, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	fprintf(stderr, "%s:%d: %s failed: %s", file, line,
		fatal ? "Assertion" : "Expectation", expr);
	if (fmt && *fmt) {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	fflush(stderr);
	if (fatal)
		_exit(1);
	failed_expectations++;
}

static int by_name(const void *a, const void *b)
{
	const struct crs_test *x = *(struct crs_test *const *)a;
	const struct crs_test *y = *(struct crs_test *const *)b;
	int c = strcmp(x->suite, y->suite);

	return c ? c : strcmp(x->name, y->name);
}

static int run_one(struct crs_test *t, unsigned timeout)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		alarm(t->timeout > 0 ? (unsigned)t->timeout + 1 : timeout);
		if (t->init)
			t->init();
		t->fn();
		if (t->fini)
			t->fini();
		fflush(NULL);
		_exit(failed_expectations ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	const char *filter = NULL;
	unsigned timeout = 600;
	int i, pass = 0, fail = 0, crash = 0, run = 0;
	char full[512];

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
			filter = argv[++i];
		else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
			i++;
	}
	qsort(tests, (size_t)ntests, sizeof(tests[0]), by_name);
	for (i = 0; i < ntests; i++) {
		struct crs_test *t = tests[i];
		int r;

		snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
		if (t->disabled || (filter && fnmatch(filter, full, 0)))
			continue;
		run++;
		r = run_one(t, timeout);
		if (r == 0) {
			pass++;
		} else if (r < 0) {
			crash++;
			fprintf(stderr, "[----] %s::%s: CRASH (signal %d)\n",
				t->suite, t->name, -r);
		} else {
			fail++;
			fprintf(stderr, "[FAIL] %s::%s\n", t->suite, t->name);
		}
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
		run, pass, fail, crash);
	return fail || crash;
}

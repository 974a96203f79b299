/*
 * sweep.h - the allocation-failure sweep of the fault build (KANAL_FAULT=ON).
 *
 * A scenario is a function that makes kanal calls and checks, for each
 * call that allocates, that it either succeeded or failed cleanly: NULL
 * with errno ENOMEM (or the call's documented code), the objects it was
 * given still usable, nothing half-made left behind. It frees everything
 * it made, whatever happened, and returns 0 if every check held.
 *
 * sweep() runs the scenario with the 1st allocation kanal makes failing,
 * then the 2nd, ... (kn_fault_fail_nth: one failure per run, counted from
 * the start of the run, on any thread), until a run in which no failure
 * was injected: the scenario made fewer allocations than n, and it must
 * then have succeeded in full. Leaks: the fault build runs under
 * AddressSanitizer; each sweep ends with a LeakSanitizer check, so a leak
 * is reported against the scenario that made it (and the process exit
 * checks again).
 *
 * sweep_threads() does the same with thread starts (kn_fault_fail_thread_nth:
 * the n-th thread kanal starts fails with EAGAIN, as at a thread limit).
 *
 * Each fault program prints one line per scenario: the allocation (thread
 * start) points swept. Exit status 0 if every scenario held.
 */
#ifndef KT_SWEEP_H
#define KT_SWEEP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define KT_LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define KT_LEAK_CHECK() 0
#endif

#include "kanal/base.h"

/* runtime/src/fault.c (exported in the fault build only). */
void kn_fault_fail_nth(long n);
long kn_fault_failures(void);
void kn_fault_fail_thread_nth(long n);
long kn_fault_thread_failures(void);

/* What a sweep makes fail. */
struct kt_injector {
	const char *what;
	void (*fail_nth)(long n);
	long (*failures)(void);
};

static const char *kt_what = "allocation"; /* failing in this sweep */

/* Far more than any scenario allocates: a sweep that gets here is stuck. */
#define KT_SWEEP_LIMIT 100000

static long kt_nth;             /* the allocation (start) failing in this run */
static long kt_failed_points;   /* runs in which the failure hit */

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed, %s %ld "    \
				"failing, errno %d\n", __FILE__, __LINE__,     \
				#cond, kt_what, kt_nth, errno);              \
			return 1;                                              \
		}                                                              \
	} while (0)

/* A call that allocates failed: it must say ENOMEM. */
#define CHECK_NOMEM(err) CHECK((err) == ENOMEM)

static int sweep_with(const struct kt_injector *inj, const char *name,
		      int (*scenario)(void *), void *arg)
{
	uint64_t allocs = 0;
	long injected;
	int bad;

	kt_what = inj->what;
	kt_failed_points = 0;
	for (kt_nth = 1; kt_nth <= KT_SWEEP_LIMIT; kt_nth++) {
		inj->fail_nth(kt_nth);
		allocs = kn_stat_allocs();
		bad = scenario(arg);
		allocs = kn_stat_allocs() - allocs;
		injected = inj->failures();
		inj->fail_nth(0);
		if (bad) {
			fprintf(stderr, "%s: failed with %s %ld failing\n",
				name, inj->what, kt_nth);
			return 1;
		}
		if (injected == 0)
			break;
		kt_failed_points++;
	}
	if (kt_nth > KT_SWEEP_LIMIT) {
		fprintf(stderr, "%s: still allocating after %d runs\n", name,
			KT_SWEEP_LIMIT);
		return 1;
	}
	if (KT_LEAK_CHECK()) {
		fprintf(stderr, "%s: leaks (reported above)\n", name);
		return 1;
	}
	printf("%-40s %4ld %s points failed in turn; the clean run "
	       "made %llu allocations\n", name, kt_failed_points, inj->what,
	       (unsigned long long)allocs);
	return 0;
}

static inline int sweep(const char *name, int (*scenario)(void *), void *arg)
{
	static const struct kt_injector allocs = { "allocation",
		kn_fault_fail_nth, kn_fault_failures };

	return sweep_with(&allocs, name, scenario, arg);
}

static inline int sweep_threads(const char *name, int (*scenario)(void *),
				void *arg)
{
	static const struct kt_injector threads = { "thread start",
		kn_fault_fail_thread_nth, kn_fault_thread_failures };

	return sweep_with(&threads, name, scenario, arg);
}

#endif

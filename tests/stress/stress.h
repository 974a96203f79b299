/*
 * stress.h - what the stress programs (tests/stress/stress_*.c) share:
 * their command line, their deadline and their count of violations.
 *
 * Command line: "[--seconds S]" (default 1: how long each configuration
 * runs, at least one round) and, where the program has one, one option of
 * its own; anything else prints the usage and exits 2. stdout is made
 * line-buffered, so that under ctest its lines stay in order with the
 * violations printed on stderr.
 *
 * Violations: a program that defines STRESS_NAME (its name, a string
 * literal) before including this file gets CHECK(cond, fmt, ...),
 * which prints "NAME: message" on stderr when cond is false and counts
 * it, and stress_exit(), which reports the count and gives the exit
 * status. Programs that account per configuration keep their own counts.
 *
 * STRESS_MAIN(configs, run): the main() of a program that runs each
 * element of an array of configurations in turn.
 *
 * Random numbers: xorshift64() of platform.h, the runtime's one generator.
 */
#ifndef KANAL_TESTS_STRESS_H
#define KANAL_TESTS_STRESS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/base.h>

#include "platform.h" /* xorshift64 */

/* Whether arg names the option of spec ("--exec PATH": name, space, value). */
static inline int stress_is_opt(const char *arg, const char *spec)
{
	size_t n = strcspn(spec, " ");

	return strlen(arg) == n && strncmp(arg, spec, n) == 0;
}

/*
 * Parses argv: returns S of "--seconds S"; with opt (e.g. "--exec PATH")
 * not NULL, stores the value given to that option in *value (untouched if
 * it is not given).
 */
static inline double stress_args(int argc, char **argv, const char *opt,
				 const char **value)
{
	double seconds = 1;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (stress_is_opt(argv[i], "--seconds S"))
			seconds = atof(argv[i + 1]);
		else if (opt && stress_is_opt(argv[i], opt))
			*value = argv[i + 1];
		else
			break;
	}
	if (i != argc) {
		fprintf(stderr, "usage: %s [--seconds S]%s%s%s\n", argv[0],
			opt ? " [" : "", opt ? opt : "", opt ? "]" : "");
		exit(2);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	return seconds;
}

/* The deadline of a configuration that runs for `seconds`. */
static inline uint64_t stress_deadline(double seconds)
{
	return kn_deadline_in((uint64_t)(seconds * 1e9));
}

/*
 * main() of a program whose configurations are an array: run(&configs[i],
 * seconds) for each, in order; the exit status is 1 if any run returned
 * nonzero.
 */
#define STRESS_MAIN(configs, run)                                              \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		double seconds = stress_args(argc, argv, NULL, NULL);          \
		int failed = 0;                                                \
                                                                               \
		for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) \
			failed |= run(&configs[i], seconds) != 0;              \
		return failed;                                                 \
	}

#ifdef STRESS_NAME
static atomic_int stress_violations;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, STRESS_NAME ": " __VA_ARGS__);         \
			fputc('\n', stderr);                                   \
			atomic_fetch_add_explicit(&stress_violations, 1,       \
						  memory_order_relaxed);       \
		}                                                              \
	} while (0)

/* main's return value: 1, after saying how many, if any check failed. */
static inline int stress_exit(void)
{
	int n = atomic_load_explicit(&stress_violations, memory_order_relaxed);

	if (n)
		fprintf(stderr, STRESS_NAME ": %d violations\n", n);
	return n != 0;
}
#endif

#endif

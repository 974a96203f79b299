/*
 * pool_helpers.h - what the pool and group tests share.
 */
#ifndef KN_TEST_POOL_HELPERS_H
#define KN_TEST_POOL_HELPERS_H

#include <errno.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "kanal/pool.h"
#include "platform.h"

/* Criterion asserts only on the test's thread: tasks count failures. */
static _Atomic int task_failures;
#define TASK_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			at_add_relaxed(&task_failures, 1);                     \
	} while (0)

static inline void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline kn_pool *pool_of(unsigned workers, int max_spare)
{
	struct kn_pool_opts o = { .workers = workers, .max_spare = max_spare };
	kn_pool *p = kn_pool_new(&o);

	cr_assert_not_null(p, "kn_pool_new: %s", strerror(errno));
	return p;
}

#endif

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

/* A gate: a task that calls gate_wait holds its worker thread until
 * gate_open, by sleeping outside kanal (a kanal wait would suspend the task
 * and free the thread). */
static _Atomic int gate_opened;

static inline void gate_close(void)
{
	at_store_release(&gate_opened, 0);
}

static inline void gate_open(void)
{
	at_store_release(&gate_opened, 1);
}

static inline void gate_wait(void)
{
	while (!at_load_acquire(&gate_opened))
		nap_ms(1);
}

static inline kn_pool *pool_with(struct kn_pool_opts o)
{
	kn_pool *p = kn_pool_new(&o);

	cr_assert_not_null(p, "kn_pool_new: %s", strerror(errno));
	return p;
}

static inline kn_pool *pool_of(unsigned workers, int max_spare)
{
	return pool_with((struct kn_pool_opts){ .workers = workers,
						 .max_spare = max_spare });
}

/* Blocked tasks block their threads: the spare-thread mechanism. */
static inline kn_pool *thread_pool_of(unsigned workers, int max_spare)
{
	return pool_with((struct kn_pool_opts){ .workers = workers,
						 .max_spare = max_spare,
						 .no_fibers = true });
}

#endif

/*
 * test_uaf.c - the Debug build's use-after-free checks (runtime/src/debug.h):
 * a freed pool, used again before its memory is reused, is refused with
 * EINVAL (or ignored, for a second free) instead of being touched. (A
 * freed channel aborts with a message: tests/debug/test_misuse.c.) Built only in the Debug build without sanitizers (tools/test's
 * "debug" stage): reading freed memory on purpose is what ASan forbids.
 */
#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "kanal/chan.h"
#include "kanal/pool.h"

static void noop(void *arg)
{
	(void)arg;
}

Test(uaf, freed_pool_is_refused)
{
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *p = kn_pool_new(&o);
	struct kn_pool_stats st;

	cr_assert_not_null(p);
	cr_assert_eq(kn_pool_spawn(p, noop, NULL), 0);
	kn_pool_free(p);
	cr_expect_eq(kn_pool_spawn(p, noop, NULL), EINVAL);
	cr_expect_eq(kn_pool_wait_idle(p), EINVAL);
	cr_expect_eq(kn_pool_stats(p, &st), EINVAL);
	kn_pool_free(p); /* a second free is ignored */
}

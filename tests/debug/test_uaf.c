/*
 * test_uaf.c - the Debug build's use-after-free checks (runtime/src/debug.h):
 * a freed channel or pool, used again before its memory is reused, is
 * refused with EINVAL (or ignored, for a second free) instead of being
 * touched. Built only in the Debug build without sanitizers (tools/test's
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

Test(uaf, freed_channel_is_refused)
{
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 4);
	int64_t v = 1;
	struct kn_case c = { ch, KN_SEND, &v };

	cr_assert_not_null(ch);
	cr_assert_eq(kn_chan_send(ch, &v), 0);
	kn_chan_free(ch);
	cr_expect_eq(kn_chan_send(ch, &v), EINVAL);
	cr_expect_eq(kn_chan_try_recv(ch, &v), EINVAL);
	cr_expect_eq(kn_chan_close(ch), EINVAL);
	cr_expect_eq(kn_chan_len(ch), 0);
	cr_expect_eq(kn_chan_fd(ch, KN_RECV), -1);
	cr_expect_eq(kn_select(&c, 1, KN_SELECT_DEFAULT, 0, NULL, NULL), EINVAL);
	kn_chan_free(ch); /* a second free is ignored */
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

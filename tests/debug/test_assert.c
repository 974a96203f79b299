/*
 * test_assert.c - the Debug build's KN_ASSERT: a broken invariant aborts
 * at once (here waiter.c's invariant 5: unlinking a node that no queue
 * holds), rather than corrupting a queue to hang later.
 */
#include <signal.h>

#include <criterion/criterion.h>

#include "waiter.h"

Test(kn_assert, a_broken_invariant_aborts, .signal = SIGABRT)
{
	struct waitq q;
	struct wait_node n = { 0 };

	waitq_init(&q);
	waitq_lock(&q);
	waitq_unlink_locked(&q, &n);
}

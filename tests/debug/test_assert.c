/*
 * test_assert.c - the Debug build's KN_ASSERT: a broken invariant aborts
 * at once (here waiter.c's invariant 5: unlinking a node that no queue
 * holds), rather than corrupting a queue to hang later; and so does a lock
 * taken out of the written order (docs/ARCHITECTURE.md, "Lock order"),
 * rather than deadlocking some day.
 */
#include <signal.h>
#include <string.h>

#include <criterion/criterion.h>

#include "unit/child.h"
#include "waiter.h"

Test(kn_assert, a_broken_invariant_aborts, .signal = SIGABRT)
{
	struct waitq q;
	struct wait_node n = { 0 };

	waitq_init(&q);
	waitq_lock(&q);
	waitq_unlink_locked(&q, &n);
}

/* ---- the lock order ------------------------------------------------------ */

static struct lock locks[2] = { LOCK_INIT, LOCK_INIT };

/* A channel's lock while a wait queue's is held: out of order. */
static void chan_after_queue(void *unused)
{
	(void)unused;
	lock_acquire(&locks[0], LOCK_WAITQ);
	lock_acquire(&locks[1], LOCK_CHAN);
}

/* Two channels' locks, the higher address first: out of order. */
static void chans_descending(void *unused)
{
	(void)unused;
	lock_acquire(&locks[1], LOCK_CHAN);
	lock_acquire(&locks[0], LOCK_CHAN);
}

/* Each rank after the one below, channels in address order: in order. */
static void in_order(void *unused)
{
	struct waitq q;

	(void)unused;
	waitq_init(&q);
	lock_acquire(&locks[0], LOCK_CHAN);
	lock_acquire(&locks[1], LOCK_CHAN);
	waitq_lock(&q);
	waitq_unlock(&q);
	lock_release(&locks[1]);
	lock_release(&locks[0]);
	/* Released: a lower rank may be taken again. */
	lock_acquire(&locks[1], LOCK_CHAN);
	lock_release(&locks[1]);
}

static void expect_order_abort(void (*fn)(void *))
{
	char buf[1024];
	int st = kt_child(fn, NULL, buf, sizeof(buf));

	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		  "the child did not abort (status %#x); stderr: %s", st, buf);
	cr_expect(strstr(buf, "lock order") != NULL, "stderr \"%s\" does not name the lock order", buf);
}

Test(lock_order, a_channel_lock_after_a_queue_lock_aborts)
{
	expect_order_abort(chan_after_queue);
}

Test(lock_order, channel_locks_out_of_address_order_abort)
{
	expect_order_abort(chans_descending);
}

Test(lock_order, locks_in_order_pass)
{
	char buf[1024];
	int st = kt_child(in_order, NULL, buf, sizeof(buf));

	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x; stderr: %s", st, buf);
}

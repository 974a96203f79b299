/*
 * test_waiter.c - the waiter layer's park primitive, waitq_wait: what it
 * returns for each way a wait ends, that its re-check runs after every
 * registration, and that it leaves no node behind.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include <kanal/ctx.h>

#include "waiter.h"

static struct waitq qa, qb;
static struct waitq *const both[] = { &qa, &qb };

static void setup(void)
{
	waitq_init(&qa);
	waitq_init(&qb);
}

static void left_empty(void)
{
	cr_assert(waitq_empty(&qa) && waitq_empty(&qb), "a node stayed linked");
}

/* The re-check sees both registrations, then answers *arg. */
static bool registered_then(void *arg)
{
	cr_assert_eq(at_load_seq_cst(&qa.n), 1);
	cr_assert_eq(at_load_seq_cst(&qb.n), 1);
	return *(bool *)arg;
}

Test(waitq_wait, a_true_recheck_withdraws, .init = setup)
{
	bool ready = true;

	cr_assert_eq(waitq_wait(both, 2, registered_then, &ready, KN_FOREVER, NULL, 0),
		     SEL_ABORT);
	left_empty();
}

Test(waitq_wait, a_passed_deadline_times_out, .init = setup)
{
	bool ready = false;

	cr_assert_eq(waitq_wait(both, 2, registered_then, &ready, 0, NULL, 0), SEL_TIMEOUT);
	left_empty();
}

Test(waitq_wait, a_cancelled_context_cancels, .init = setup)
{
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);

	cr_assert_not_null(ctx);
	kn_ctx_cancel(ctx, 0, NULL);
	cr_assert_eq(waitq_wait(both, 2, NULL, NULL, KN_FOREVER, ctx, 0), SEL_CANCEL);
	left_empty();
	kn_ctx_release(ctx);
}

/* Waits until the waiter is registered on qb, then wakes it through qb. */
static void *notify_b(void *unused)
{
	(void)unused;
	while (waitq_empty(&qb))
		sched_yield();
	waitq_notify_one(&qb);
	return NULL;
}

Test(waitq_wait, a_wake_through_a_queue_returns_its_token, .init = setup)
{
	bool ready = false;
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, notify_b, NULL), 0);
	cr_assert_eq(waitq_wait(both, 2, registered_then, &ready, KN_FOREVER, NULL, 0),
		     SEL_CASE0 + 1);
	pthread_join(t, NULL);
	left_empty();
}

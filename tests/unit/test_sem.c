/*
 * test_sem.c - the rules of kanal/sem.h, one test each.
 *
 * Threads that must be queued before the test goes on are observed through
 * the waiter layer's block hook: it runs once the thread's node is queued
 * and it is about to sleep.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <kanal/ctx.h>
#include <kanal/sem.h>

#include "sleeps.h"

/* ---- a thread that acquires ----------------------------------------------- */

enum how { PLAIN, UNTIL, CTX };

struct acq {
	pthread_t t;
	kn_sem *s;
	uint64_t n;
	enum how how;
	uint64_t deadline;
	kn_ctx *ctx;
	int id;
	bool keep;           /* hold the tokens instead of releasing them */
	atomic_int parked;
	atomic_bool done;
	int ret;
};

/* The order in which tokens were obtained (test fifo_order). */
static atomic_int order_next;
static int order[16];

static void *acq_main(void *arg)
{
	struct acq *a = arg;
	struct block_hook h = kt_sleep_counter(&a->parked);

	waiter_set_block_hook(&h);
	switch (a->how) {
	case PLAIN:
		a->ret = kn_sem_acquire(a->s, a->n);
		break;
	case UNTIL:
		a->ret = kn_sem_acquire_until(a->s, a->n, a->deadline);
		break;
	case CTX:
		a->ret = kn_sem_acquire_ctx(a->s, a->n, a->ctx);
		break;
	}
	waiter_set_block_hook(NULL);
	if (a->ret == 0) {
		int k = atomic_fetch_add(&order_next, 1);

		if (k < (int)(sizeof(order) / sizeof(order[0])))
			order[k] = a->id;
		if (!a->keep)
			kn_sem_release(a->s, a->n);
	}
	atomic_store(&a->done, true);
	return NULL;
}

/* Start a and wait until it is queued and asleep (or has already
 * returned: a deadline may pass before it gets to sleep). */
static void start_queued(struct acq *a)
{
	atomic_init(&a->parked, 0);
	atomic_init(&a->done, false);
	cr_assert_eq(pthread_create(&a->t, NULL, acq_main, a), 0);
	while (!atomic_load(&a->parked) && !atomic_load(&a->done))
		usleep(100);
}

static int join(struct acq *a)
{
	pthread_join(a->t, NULL);
	return a->ret;
}

/* ---- construction and bad input ---------------------------------------------- */

Test(sem, new_and_bad_sizes)
{
	kn_sem *s;

	errno = 0;
	cr_assert_null(kn_sem_new(0));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(kn_sem_new(KN_SEM_MAX + 1));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(kn_sem_new(UINT64_MAX));
	s = kn_sem_new(KN_SEM_MAX);
	cr_assert_not_null(s);
	cr_assert_eq(kn_sem_size(s), KN_SEM_MAX);
	cr_assert_eq(kn_sem_acquire(s, KN_SEM_MAX), 0);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert_eq(kn_sem_release(s, KN_SEM_MAX), 0);
	cr_assert_eq(kn_sem_available(s), KN_SEM_MAX);
	cr_assert_eq(kn_sem_release(s, 1), EINVAL);
	kn_sem_free(s);
	kn_sem_free(NULL);
}

Test(sem, null)
{
	cr_assert_eq(kn_sem_acquire(NULL, 1), EINVAL);
	cr_assert_eq(kn_sem_try_acquire(NULL, 1), EINVAL);
	cr_assert_eq(kn_sem_acquire_until(NULL, 1, KN_FOREVER), EINVAL);
	cr_assert_eq(kn_sem_acquire_ctx(NULL, 1, NULL), EINVAL);
	cr_assert_eq(kn_sem_release(NULL, 1), EINVAL);
	cr_assert_eq(kn_sem_acquire(NULL, 0), EINVAL);
	cr_assert_eq(kn_sem_release(NULL, 0), EINVAL);
	cr_assert_eq(kn_sem_available(NULL), 0);
	cr_assert_eq(kn_sem_size(NULL), 0);
}

Test(sem, more_than_size)
{
	kn_sem *s = kn_sem_new(5);
	kn_ctx *c = kn_ctx_with_cancel(NULL);

	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(kn_sem_acquire(s, 6), EINVAL);
	cr_assert_eq(kn_sem_try_acquire(s, 6), EINVAL);
	cr_assert_eq(kn_sem_acquire_until(s, 6, KN_FOREVER), EINVAL);
	cr_assert_eq(kn_sem_acquire_ctx(s, 6, NULL), EINVAL);
	cr_assert_eq(kn_sem_acquire_ctx(s, 6, c), EINVAL);
	cr_assert_eq(kn_sem_acquire(s, UINT64_MAX), EINVAL);
	cr_assert_eq(kn_sem_release(s, 6), EINVAL);
	cr_assert_eq(kn_sem_release(s, UINT64_MAX), EINVAL);
	cr_assert_eq(kn_sem_available(s), 5);
	kn_ctx_release(c);
	kn_sem_free(s);
}

Test(sem, zero_tokens)
{
	kn_sem *s = kn_sem_new(2);

	cr_assert_eq(kn_sem_acquire(s, 2), 0);
	cr_assert_eq(kn_sem_acquire(s, 0), 0);
	cr_assert_eq(kn_sem_try_acquire(s, 0), 0);
	cr_assert_eq(kn_sem_acquire_until(s, 0, 0), 0);
	cr_assert_eq(kn_sem_acquire_ctx(s, 0, NULL), 0);
	cr_assert_eq(kn_sem_release(s, 0), 0);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert_eq(kn_sem_release(s, 2), 0);
	kn_sem_free(s);
}

Test(sem, counts)
{
	kn_sem *s = kn_sem_new(10);

	cr_assert_eq(kn_sem_size(s), 10);
	cr_assert_eq(kn_sem_acquire(s, 3), 0);
	cr_assert_eq(kn_sem_available(s), 7);
	cr_assert_eq(kn_sem_try_acquire(s, 8), EAGAIN);
	cr_assert_eq(kn_sem_try_acquire(s, 7), 0);
	cr_assert_eq(kn_sem_try_acquire(s, 1), EAGAIN);
	cr_assert_eq(kn_sem_release(s, 4), 0);
	cr_assert_eq(kn_sem_acquire_until(s, 4, KN_FOREVER), 0);
	cr_assert_eq(kn_sem_release(s, 10), 0);
	cr_assert_eq(kn_sem_available(s), 10);
	kn_sem_free(s);
}

Test(sem, over_release)
{
	kn_sem *s = kn_sem_new(5);

	cr_assert_eq(kn_sem_acquire(s, 2), 0);
	cr_assert_eq(kn_sem_release(s, 3), EINVAL);
	cr_assert_eq(kn_sem_available(s), 3);
	cr_assert_eq(kn_sem_release(s, 2), 0);
	cr_assert_eq(kn_sem_release(s, 1), EINVAL);
	cr_assert_eq(kn_sem_available(s), 5);
	kn_sem_free(s);
}

Test(sem, over_release_with_waiters)
{
	kn_sem *s = kn_sem_new(4);
	struct acq a = { .s = s, .n = 4 };

	cr_assert_eq(kn_sem_acquire(s, 2), 0); /* 2 left, a waits for 4 */
	start_queued(&a);
	cr_assert_eq(kn_sem_release(s, 3), EINVAL); /* slow path check */
	cr_assert_eq(kn_sem_available(s), 2);
	cr_assert(!atomic_load(&a.done));
	cr_assert_eq(kn_sem_release(s, 2), 0);
	cr_assert_eq(join(&a), 0);
	cr_assert_eq(kn_sem_available(s), 4);
	kn_sem_free(s);
}

Test(sem, uncontended_is_free)
{
	kn_sem *s = kn_sem_new(3);
	uint64_t sys = kn_stat_syscalls(), allocs = kn_stat_allocs();

	for (int i = 0; i < 10000; i++) {
		cr_assert_eq(kn_sem_acquire(s, 1 + i % 3), 0);
		cr_assert_eq(kn_sem_try_acquire(s, 3), EAGAIN);
		cr_assert_eq(kn_sem_release(s, 1 + i % 3), 0);
	}
	cr_assert_eq(kn_stat_syscalls(), sys);
	cr_assert_eq(kn_stat_allocs(), allocs);
	kn_sem_free(s);
}

/* ---- FIFO ------------------------------------------------------------------------ */

Test(sem, head_of_line)
{
	kn_sem *s = kn_sem_new(10);
	struct acq big = { .s = s, .n = 8, .keep = true };
	struct acq small = { .s = s, .n = 1, .keep = true };

	cr_assert_eq(kn_sem_acquire(s, 10), 0);
	start_queued(&big);
	start_queued(&small);
	cr_assert_eq(kn_sem_release(s, 2), 0);
	/* 2 free: small would fit, but it is behind big. */
	cr_assert_eq(kn_sem_available(s), 2);
	cr_assert_eq(kn_sem_try_acquire(s, 1), EAGAIN);
	cr_assert(!atomic_load(&small.done));
	cr_assert_eq(kn_sem_release(s, 6), 0); /* 8: big is served */
	cr_assert_eq(join(&big), 0);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert(!atomic_load(&small.done));
	cr_assert_eq(kn_sem_release(s, 2), 0); /* the rest of ours */
	cr_assert_eq(join(&small), 0);
	cr_assert_eq(kn_sem_available(s), 1);
	cr_assert_eq(kn_sem_release(s, 9), 0);
	cr_assert_eq(kn_sem_available(s), 10);
	kn_sem_free(s);
}

Test(sem, fifo_order)
{
	enum { N = 8 };
	kn_sem *s = kn_sem_new(1);
	struct acq a[N];

	cr_assert_eq(kn_sem_acquire(s, 1), 0);
	for (int i = 0; i < N; i++) {
		a[i] = (struct acq){ .s = s, .n = 1, .id = i };
		start_queued(&a[i]);
	}
	cr_assert_eq(kn_sem_release(s, 1), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(join(&a[i]), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(order[i], i, "position %d got waiter %d", i, order[i]);
	cr_assert_eq(kn_sem_available(s), 1);
	kn_sem_free(s);
}

Test(sem, one_release_serves_several)
{
	kn_sem *s = kn_sem_new(10);
	struct acq a[3];

	cr_assert_eq(kn_sem_acquire(s, 10), 0);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct acq){ .s = s, .n = 3, .keep = true };
		start_queued(&a[i]);
	}
	cr_assert_eq(kn_sem_release(s, 9), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(join(&a[i]), 0);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert_eq(kn_sem_release(s, 10), 0);
	kn_sem_free(s);
}

/* ---- deadlines --------------------------------------------------------------------- */

Test(sem, deadline_in_the_past)
{
	kn_sem *s = kn_sem_new(2);

	cr_assert_eq(kn_sem_acquire_until(s, 2, 0), 0);
	cr_assert_eq(kn_sem_acquire_until(s, 1, 0), ETIMEDOUT);
	cr_assert_eq(kn_sem_acquire_until(s, 1, kn_now()), ETIMEDOUT);
	cr_assert_eq(kn_sem_release(s, 1), 0);
	cr_assert_eq(kn_sem_acquire_until(s, 1, 1), 0);
	/* Nothing was left queued: the fast paths still work. */
	cr_assert_eq(kn_sem_release(s, 2), 0);
	cr_assert_eq(kn_sem_try_acquire(s, 2), 0);
	cr_assert_eq(kn_sem_release(s, 2), 0);
	kn_sem_free(s);
}

Test(sem, deadline_expires)
{
	kn_sem *s = kn_sem_new(3);

	cr_assert_eq(kn_sem_acquire(s, 2), 0);
	cr_assert_eq(kn_sem_acquire_until(s, 2, kn_deadline_in(5000000)), ETIMEDOUT);
	cr_assert_eq(kn_sem_available(s), 1);
	cr_assert_eq(kn_sem_try_acquire(s, 1), 0); /* no waiter left behind */
	cr_assert_eq(kn_sem_release(s, 3), 0);
	kn_sem_free(s);
}

Test(sem, head_timeout_serves_next)
{
	kn_sem *s = kn_sem_new(10);
	struct acq big = { .s = s, .n = 8, .how = UNTIL };
	struct acq small = { .s = s, .n = 2, .keep = true };

	cr_assert_eq(kn_sem_acquire(s, 5), 0);
	big.deadline = kn_deadline_in(50000000);
	start_queued(&big);
	start_queued(&small);
	/* big times out; small (2 <= 5 free) must then be served. */
	cr_assert_eq(join(&big), ETIMEDOUT);
	cr_assert_eq(join(&small), 0);
	cr_assert_eq(kn_sem_available(s), 3);
	cr_assert_eq(kn_sem_release(s, 7), 0);
	kn_sem_free(s);
}

/* ---- contexts ---------------------------------------------------------------------- */

Test(sem, cancelled_ctx_fails_first)
{
	kn_sem *s = kn_sem_new(4);
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	kn_ctx *v = kn_ctx_with_value(c, &s, NULL);
	kn_ctx *t = kn_ctx_with_deadline(NULL, 0);

	kn_ctx_cancel(c, EPIPE, NULL);
	cr_assert_eq(kn_sem_acquire_ctx(s, 1, c), ECANCELED);
	cr_assert_eq(kn_sem_acquire_ctx(s, 0, c), ECANCELED);
	cr_assert_eq(kn_sem_acquire_ctx(s, 4, v), ECANCELED);
	cr_assert_eq(kn_sem_acquire_ctx(s, 1, t), ECANCELED);
	cr_assert_eq(kn_sem_available(s), 4);
	cr_assert_eq(kn_sem_acquire_ctx(s, 4, kn_ctx_background()), 0);
	cr_assert_eq(kn_sem_release(s, 4), 0);
	kn_ctx_release(t);
	kn_ctx_release(v);
	kn_ctx_release(c);
	kn_sem_free(s);
}

Test(sem, cancel_wakes_waiter)
{
	kn_sem *s = kn_sem_new(2);
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	struct acq a = { .s = s, .n = 1, .how = CTX, .ctx = c };

	cr_assert_eq(kn_sem_acquire(s, 2), 0);
	start_queued(&a);
	kn_ctx_cancel(c, EIO, "stop");
	cr_assert_eq(join(&a), ECANCELED);
	cr_assert_eq(kn_ctx_cause(c, NULL), EIO);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert_eq(kn_sem_release(s, 2), 0);
	cr_assert_eq(kn_sem_available(s), 2);
	kn_ctx_release(c);
	kn_sem_free(s);
}

Test(sem, ctx_deadline_wakes_waiter)
{
	kn_sem *s = kn_sem_new(1);
	kn_ctx *c = kn_ctx_with_timeout(NULL, 10000000);

	cr_assert_eq(kn_sem_acquire(s, 1), 0);
	cr_assert_eq(kn_sem_acquire_ctx(s, 1, c), ECANCELED);
	cr_assert_eq(kn_ctx_err(c), ETIMEDOUT);
	cr_assert_eq(kn_sem_release(s, 1), 0);
	kn_ctx_release(c);
	kn_sem_free(s);
}

Test(sem, grant_before_cancel_wins)
{
	kn_sem *s = kn_sem_new(3);
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	struct acq a = { .s = s, .n = 3, .how = CTX, .ctx = c, .keep = true };

	cr_assert_eq(kn_sem_acquire(s, 3), 0);
	start_queued(&a);
	cr_assert_eq(kn_sem_release(s, 3), 0); /* decides a: granted */
	kn_ctx_cancel(c, 0, NULL);             /* too late for a */
	cr_assert_eq(join(&a), 0);
	cr_assert_eq(kn_sem_available(s), 0);  /* a holds them */
	cr_assert_eq(kn_sem_release(s, 3), 0);
	kn_ctx_release(c);
	kn_sem_free(s);
}

Test(sem, cancel_before_grant_gives_tokens_on)
{
	kn_sem *s = kn_sem_new(3);
	kn_ctx *c = kn_ctx_with_cancel(NULL);
	struct acq a = { .s = s, .n = 3, .how = CTX, .ctx = c };
	struct acq b = { .s = s, .n = 3, .keep = true };

	cr_assert_eq(kn_sem_acquire(s, 3), 0);
	start_queued(&a);
	start_queued(&b);
	kn_ctx_cancel(c, 0, NULL);
	cr_assert_eq(kn_sem_release(s, 3), 0);
	/* a was decided cancelled first: the tokens go to b. */
	cr_assert_eq(join(&a), ECANCELED);
	cr_assert_eq(join(&b), 0);
	cr_assert_eq(kn_sem_available(s), 0);
	cr_assert_eq(kn_sem_release(s, 3), 0);
	kn_ctx_release(c);
	kn_sem_free(s);
}

/* A grant and a cancellation race: whoever wins, no token is lost. */
Test(sem, grant_cancel_race_loses_nothing)
{
	for (int i = 0; i < 300; i++) {
		kn_sem *s = kn_sem_new(3);
		kn_ctx *c = kn_ctx_with_cancel(NULL);
		struct acq a = { .s = s, .n = 2, .how = CTX, .ctx = c };
		struct acq b = { .s = s, .n = 3 };

		cr_assert_eq(kn_sem_acquire(s, 3), 0);
		start_queued(&a);
		start_queued(&b);
		if (i % 2)
			kn_ctx_cancel(c, 0, NULL);
		cr_assert_eq(kn_sem_release(s, 3), 0);
		if (i % 2 == 0)
			kn_ctx_cancel(c, 0, NULL);
		cr_assert(join(&a) == 0 || a.ret == ECANCELED);
		cr_assert_eq(join(&b), 0);
		cr_assert_eq(kn_sem_available(s), 3);
		kn_ctx_release(c);
		kn_sem_free(s);
	}
}

/* ---- lifetime ------------------------------------------------------------------------ */

/* glibc BZ 12674: the granted waiter frees the semaphore at once; the
 * AddressSanitizer build catches a releaser that touches it afterwards. */
static void *acquire_and_free(void *arg)
{
	kn_sem *s = arg;

	if (kn_sem_acquire(s, 1) == 0)
		kn_sem_free(s);
	return NULL;
}

Test(sem, granted_waiter_may_free)
{
	for (int i = 0; i < 500; i++) {
		kn_sem *s = kn_sem_new(1);
		pthread_t t;

		cr_assert_eq(kn_sem_acquire(s, 1), 0);
		pthread_create(&t, NULL, acquire_and_free, s);
		if (i % 2)
			usleep(50); /* let it queue, most of the time */
		cr_assert_eq(kn_sem_release(s, 1), 0);
		pthread_join(t, NULL);
	}
}

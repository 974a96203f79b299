/*
 * fault_ctx.c - allocation failures in contexts and semaphores: every
 * context constructor (the node; with_deadline also the timer's heap),
 * kn_ctx_cancel's copy of the message (dropped, the cancellation still
 * happens), kn_sem_new. See sweep.h.
 */
#include <stdint.h>

#include "kanal/ctx.h"
#include "kanal/sem.h"
#include "sweep.h"

static const int key = 1;

/* A constructor failed: NULL with ENOMEM (EAGAIN: the timer thread). */
#define CHECK_CTX_FAIL(c, allow_eagain)                                        \
	CHECK((c) == NULL && (errno == ENOMEM || ((allow_eagain) && errno == EAGAIN)))

static void release_all(kn_ctx **c, size_t n)
{
	while (n--)
		kn_ctx_release(c[n]);
}

/*
 * root -> child, value, detached(value), deadline(child, far), timeout
 * (root, 1 ms); wait for the timeout; cancel root with a message; check
 * what reached whom; release in an awkward order.
 */
static int scenario(void *arg)
{
	kn_ctx *c[6] = { 0 };
	size_t n = 0;
	const char *msg = "x";
	int x = 7;

	(void)arg;
	errno = 0;
	c[n] = kn_ctx_with_cancel(NULL);                        /* 0 root */
	if (!c[n]) {
		CHECK_CTX_FAIL(c[n], false);
		return 0;
	}
	n++;
	errno = 0;
	c[n] = kn_ctx_with_cancel(c[0]);                        /* 1 child */
	if (!c[n])
		goto out;
	n++;
	errno = 0;
	c[n] = kn_ctx_with_value(c[0], &key, &x);               /* 2 value */
	if (!c[n])
		goto out;
	CHECK(kn_ctx_value(c[n], &key) == &x);
	n++;
	errno = 0;
	c[n] = kn_ctx_without_cancel(c[2]);                     /* 3 detached */
	if (!c[n])
		goto out;
	CHECK(kn_ctx_value(c[n], &key) == &x);
	n++;
	errno = 0;
	c[n] = kn_ctx_with_deadline(c[1], kn_deadline_in(3600ull * 1000000000u));
	if (!c[n])                                              /* 4 far */
		goto out_timer;
	n++;
	errno = 0;
	c[n] = kn_ctx_with_timeout(c[0], 1000 * 1000);          /* 5 soon */
	if (!c[n])
		goto out_timer;
	CHECK(kn_ctx_wait(c[n], KN_FOREVER) == 0);
	CHECK(kn_ctx_err(c[n]) == ETIMEDOUT);
	n++;
	/* Everything made: the cancellation and its message. */
	CHECK(kn_ctx_cancel(c[0], 42, "boom") == 0);
	CHECK(kn_ctx_cause(c[4], &msg) == 42);
	CHECK(msg == NULL || strcmp(msg, "boom") == 0);
	CHECK(kn_ctx_err(c[1]) == ECANCELED && kn_ctx_err(c[2]) == ECANCELED);
	CHECK(kn_ctx_err(c[3]) == 0);
	CHECK(kn_ctx_cause(c[5], NULL) == ETIMEDOUT);
	kn_ctx_release(c[0]);
	release_all(c + 1, n - 1);
	return 0;
out_timer:
	CHECK_CTX_FAIL(c[n], true);
	goto check;
out:
	CHECK_CTX_FAIL(c[n], false);
check:
	/* What was made still works: cancel the root, it reaches all. */
	CHECK(kn_ctx_cancel(c[0], 0, "late") == 0);
	CHECK(n < 2 || kn_ctx_err(c[1]) == ECANCELED);
	release_all(c, n);
	return 0;
}

/* kn_ctx_cancel of a context whose parent and children exist: the message
 * copy may fail; the cancellation may not. */
static int cancel_scenario(void *arg)
{
	kn_ctx *root, *kid;
	const char *msg = "x";

	(void)arg;
	root = kn_ctx_with_cancel(NULL);
	if (!root) {
		CHECK_NOMEM(errno);
		return 0;
	}
	kid = kn_ctx_with_cancel(root);
	if (!kid) {
		CHECK_NOMEM(errno);
		kn_ctx_release(root);
		return 0;
	}
	CHECK(kn_ctx_cancel(root, 7, "a message that must be copied") == 0);
	CHECK(kn_ctx_err(kid) == ECANCELED);
	CHECK(kn_ctx_cause(kid, &msg) == 7);
	CHECK(msg == NULL || strcmp(msg, "a message that must be copied") == 0);
	kn_ctx_release(root);
	kn_ctx_release(kid);
	return 0;
}

static int sem_scenario(void *arg)
{
	kn_sem *s;

	(void)arg;
	errno = 0;
	s = kn_sem_new(3);
	if (!s) {
		CHECK_NOMEM(errno);
		return 0;
	}
	CHECK(kn_sem_acquire(s, 2) == 0);
	CHECK(kn_sem_try_acquire(s, 2) == EAGAIN);
	CHECK(kn_sem_acquire_until(s, 2, 0) == ETIMEDOUT);
	CHECK(kn_sem_release(s, 2) == 0);
	CHECK(kn_sem_available(s) == 3);
	kn_sem_free(s);
	return 0;
}

int main(void)
{
	int bad = 0;

	bad |= sweep("ctx: every constructor, timer, cancel", scenario, NULL);
	bad |= sweep("ctx: cancel with a message", cancel_scenario, NULL);
	bad |= sweep("sem: new", sem_scenario, NULL);
	return bad;
}

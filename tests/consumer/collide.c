/* The collision probe: an outside program that defines functions and data
 * named like kanal's internal ones. It must link against libkanal.a and
 * libkanal.so alike (the libraries export only kn_*), and kanal must keep
 * calling its own: a pool task, a timed receive (the timer thread) and a
 * context deadline all run, and the program's own functions are called and
 * checked. */
#include <stdio.h>

#include <kanal/kanal.h>

/* Not kanal's: each counts its calls. */
static int calls;
int zero_hint;
int lock_acquire(int x) { calls++; return x; }
int lock_release(int x) { calls++; return x; }
int timer_add(int x) { calls++; return x; }
int timer_remove(int x) { calls++; return x; }
int task_alloc(int x) { calls++; return x; }
int task_free(int x) { calls++; return x; }
int deque_push(int x) { calls++; return x; }
int fiber_new(int x) { calls++; return x; }
int fiber_switch(int x) { calls++; return x; }
int waiter_park(int x) { calls++; return x; }
int waitq_push(int x) { calls++; return x; }
int wg_wait(int x) { calls++; return x; }
int ctx_done(int x) { calls++; return x; }
int pool_submit(int x) { calls++; return x; }
int sys_futex_wait(int x) { calls++; return x; }
int qsbr_register(int x) { calls++; return x; }
int backoff_snooze(int x) { calls++; return x; }

static int own(void)
{
	int (*const fns[])(int) = {
		lock_acquire, lock_release, timer_add, timer_remove, task_alloc,
		task_free, deque_push, fiber_new, fiber_switch, waiter_park,
		waitq_push, wg_wait, ctx_done, pool_submit, sys_futex_wait,
		qsbr_register, backoff_snooze,
	};
	int sum = 0;

	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
		sum += fns[i](1);
	return sum == (int)(sizeof fns / sizeof fns[0]) && calls == sum;
}

static void task(void *arg)
{
	int v = 7;

	kn_chan_send(arg, &v);
}

int main(void)
{
	kn_chan *ch = kn_chan_new(sizeof(int), 0);
	kn_pool *pool = kn_pool_new(NULL);
	kn_ctx *ctx;
	int v = 0;

	if (!ch || !pool || !own())
		return 1;
	/* A timed receive that expires: the timer path. */
	if (kn_chan_recv_until(ch, &v, kn_deadline_in(1000000)) != ETIMEDOUT)
		return 1;
	/* A pool task (fiber, deque, waiter) hands a value over. */
	if (kn_pool_spawn(pool, task, ch) || kn_chan_recv(ch, &v) || v != 7)
		return 1;
	/* A deadline context ends by itself. */
	ctx = kn_ctx_with_timeout(NULL, 1000000);
	if (!ctx || kn_ctx_wait(ctx, KN_FOREVER) || kn_ctx_cause(ctx, NULL) != ETIMEDOUT)
		return 1;
	kn_ctx_release(ctx);
	kn_pool_shutdown(pool, true, NULL);
	kn_pool_free(pool);
	kn_chan_free(ch);
	puts("collide: ok");
	return zero_hint;
}

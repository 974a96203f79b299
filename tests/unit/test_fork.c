/*
 * test_fork.c - kanal in a child of fork() (issue 18, item 2; the contract
 * is in kanal/pool.h and README's "fork and signals").
 *
 * The parent has a pool with a task held on it, the default pool, the
 * timer thread and a pending deadline when it forks. The child must be able
 * to make new pools (and free them), use kn_go, channels and new
 * deadlines, see the pending deadline fire, and get ECHILD (not a hang)
 * from every call that needs the parent's pool; and the child gets its own
 * poller (kanal/net.h), so its closes leave the parent's fd waits alone.
 * Each child runs under
 * alarm() (child.h): a hang kills it, and the parent reports the signal.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/kanal.h"

#include "child.h"
#include "pool_helpers.h"

/* ThreadSanitizer cannot follow threads started in the child of a
 * threaded process (glibc gives them the parent's thread ids, which TSan
 * still holds: "dup thread"), so under it the child checks only the calls
 * that start no thread. */
#if defined(__SANITIZE_THREAD__)
#define CHILD_THREADS 0
#else
#define CHILD_THREADS 1
#endif

/* In the child: the first failing check is its exit status. */
#define CHILD_CHECK(n, cond)                                                   \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "child check %d failed: %s\n", n, #cond); \
			_exit(n);                                              \
		}                                                              \
	} while (0)

static void run_child(void (*child)(void *), void *arg)
{
	int st = kt_child(child, arg, NULL, 0);

	cr_assert(!WIFSIGNALED(st), "the child died of signal %d (a hang?)",
		  WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "child check %d failed", WEXITSTATUS(st));
}

static void count_task(void *arg)
{
	at_add_relaxed((_Atomic uint64_t *)arg, 1);
}

static void gate_task_started(void *arg)
{
	at_store_release((_Atomic int *)arg, 1);
	gate_wait();
}

/* kn_go's task: a value, then done (the channel may be freed after the
 * wait, not merely after the receive). */
static kn_waitgroup sent = KN_WAITGROUP_INIT;

static void send_one(void *arg)
{
	int64_t v = 1;

	kn_chan_send(arg, &v);
	kn_waitgroup_done(&sent);
}

static int go_send_recv(kn_chan *ch)
{
	int64_t v = 0;

	kn_waitgroup_add(&sent, 1);
	if (kn_go(send_one, ch) != 0) {
		kn_waitgroup_done(&sent);
		return -1;
	}
	if (kn_chan_recv(ch, &v) != 0 || kn_waitgroup_wait(&sent) != 0)
		return -1;
	return (int)v;
}

static void grow_deque(void *arg)
{
	int i;

	for (i = 0; i < 1000; i++) /* the deque grows: a ring is retired */
		TASK_CHECK(kn_pool_spawn(kn_pool_current(), count_task, arg) == 0);
}

struct parent {
	kn_pool *pool;
	kn_task *held;   /* gated: pending at the fork */
	kn_ctx *pending; /* a deadline pending at the fork */
};

static void child_main(void *arg)
{
	struct parent *pa = arg;
	static _Atomic uint64_t n;
	struct kn_pool_opts o = { .workers = 2 };
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	kn_ctx *ctx;
	kn_pool *q;
	kn_task *t;
	size_t dropped = 99;

	/* The parent's pool: an error, never a hang. */
	CHILD_CHECK(1, kn_pool_spawn(pa->pool, count_task, (void *)&n) == ECHILD);
	/* With a larger stack_size (a stack of its own) too. */
	CHILD_CHECK(13, kn_pool_spawn_opts(pa->pool, &(struct kn_spawn_opts){
					   .stack_size = 4 << 20 },
				   count_task, (void *)&n) == ECHILD);
	errno = 0;
	CHILD_CHECK(2, !kn_pool_spawn_task(pa->pool, count_task, (void *)&n) && errno == ECHILD);
	CHILD_CHECK(3, kn_task_join(pa->held) == ECHILD);
	CHILD_CHECK(4, kn_pool_wait_idle(pa->pool) == ECHILD);
	CHILD_CHECK(5, kn_pool_shutdown(pa->pool, false, &dropped) == ECHILD && dropped == 0);
	kn_pool_free(pa->pool); /* frees nothing, returns */
	if (!CHILD_THREADS)
		return;
	/* A new pool runs tasks and is freed (its deque grew). */
	q = kn_pool_new(&o);
	CHILD_CHECK(6, q != NULL);
	t = kn_pool_spawn_task(q, grow_deque, (void *)&n);
	CHILD_CHECK(7, t && kn_task_join(t) == 0);
	CHILD_CHECK(8, kn_pool_wait_idle(q) == 0 && at_load_relaxed(&n) == 1000 &&
			   at_load_relaxed(&task_failures) == 0);
	kn_pool_free(q);
	/* kn_go makes the child's own default pool; a channel to it. */
	CHILD_CHECK(9, ch != NULL);
	CHILD_CHECK(10, go_send_recv(ch) == 1);
	/* The deadline pending at the fork fires (a wait starts the child's
	 * timer thread), and so does a new one. */
	CHILD_CHECK(11, kn_ctx_wait(pa->pending, KN_FOREVER) == 0 &&
			    kn_ctx_err(pa->pending) == ETIMEDOUT);
	ctx = kn_ctx_with_timeout(kn_ctx_background(), 1000000);
	CHILD_CHECK(12, ctx && kn_ctx_wait(ctx, KN_FOREVER) == 0 &&
			    kn_ctx_err(ctx) == ETIMEDOUT);
	kn_ctx_release(ctx);
	kn_chan_free(ch);
}

Test(fork, child_makes_new_pools_and_gets_echild_from_the_parents, .timeout = 60)
{
	static _Atomic int started;
	static _Atomic uint64_t ran;
	struct parent pa;
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);

	/* Everything kanal runs in a process: pools, the default pool, the
	 * timer thread. */
	pa.pool = pool_of(2, 0);
	cr_assert_not_null(ch);
	cr_assert_eq(go_send_recv(ch), 1);
	pa.pending = kn_ctx_with_timeout(kn_ctx_background(), 200000000);
	cr_assert_not_null(pa.pending);
	gate_close();
	pa.held = kn_pool_spawn_task(pa.pool, gate_task_started, (void *)&started);
	cr_assert_not_null(pa.held);
	while (!at_load_acquire(&started))
		nap_ms(1);
	cr_assert_eq(kn_pool_spawn(pa.pool, count_task, (void *)&ran), 0);
	run_child(child_main, &pa);
	/* The parent is untouched. */
	gate_open();
	cr_assert_eq(kn_task_join(pa.held), 0);
	cr_assert_eq(kn_pool_wait_idle(pa.pool), 0);
	cr_assert_eq(at_load_relaxed(&ran), 1);
	cr_assert_eq(kn_ctx_wait(pa.pending, KN_FOREVER), 0);
	cr_assert_eq(kn_ctx_err(pa.pending), ETIMEDOUT);
	kn_ctx_release(pa.pending);
	kn_pool_free(pa.pool);
	kn_chan_free(ch);
}

/* The poller after fork (issue 15, item 4). */
static void read_byte_task(void *arg)
{
	char c;
	size_t n;

	TASK_CHECK(kn_read(*(int *)arg, &c, 1, &n) == 0 && n == 1);
}

static void net_child(void *arg)
{
	int *parent_fd = arg, sv[2];
	struct kn_pool_opts o = { .workers = 1 };
	kn_pool *q;
	kn_task *t;

	/* Shared with the parent's epoll instance, this close would take the
	 * parent's registration of the fd (its waiting task never woke). */
	CHILD_CHECK(1, kn_fd_close(*parent_fd) == 0);
	if (!CHILD_THREADS)
		return;
	/* A task's fd wait on the child's own poller. */
	CHILD_CHECK(2, socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	q = kn_pool_new(&o);
	CHILD_CHECK(3, q != NULL);
	t = kn_pool_spawn_task(q, read_byte_task, &sv[0]);
	CHILD_CHECK(4, t != NULL);
	CHILD_CHECK(5, write(sv[1], "c", 1) == 1);
	CHILD_CHECK(6, kn_task_join(t) == 0 && at_load_relaxed(&task_failures) == 0);
	kn_pool_free(q);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

Test(fork, child_has_its_own_poller, .timeout = 60)
{
	kn_pool *p = pool_of(1, 0);
	struct kn_pool_stats st;
	kn_task *t;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t = kn_pool_spawn_task(p, read_byte_task, &sv[0]);
	cr_assert_not_null(t);
	/* Until the task waits (registered in the parent's epoll set). */
	while (kn_pool_stats(p, &st) == 0 && st.switches == 0)
		nap_ms(1);
	run_child(net_child, &sv[0]);
	cr_assert_eq(write(sv[1], "p", 1), 1);
	cr_assert_eq(kn_task_join(t), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_fd_close(sv[0]);
	kn_fd_close(sv[1]);
}

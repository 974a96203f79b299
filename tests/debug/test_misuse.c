/*
 * test_misuse.c - misuses that hang a Release build abort a Debug build
 * with a message naming them (runtime/src/debug.h; issue 18, items 7, 9, 10).
 * Each case runs in a child process (a death test): the child must die of
 * SIGABRT and its stderr must name the misuse.
 *
 *   - a channel used after kn_chan_free (send, receive, close, select, a
 *     second free): Release reads freed memory, a send may spin for ever
 *   - kn_chan_free while a thread waits on the channel: Release returns,
 *     and the waiter sleeps for ever
 *   - a blocking call from a signal handler that interrupted a kanal call
 *     holding the channel's lock (the deadlock of item 9), and one that
 *     interrupted a wait of its thread
 *   - an after_func that blocks on the timer thread (every deadline of the
 *     process would wait for it)
 *   - a kn_mutex unlocked by a task or thread that does not hold it (Go
 *     allows it; kanal/sync.h says why a Debug build does not)
 *
 * Built only in the Debug build without sanitizers (tools/test's "debug"
 * stage), like test_uaf.c.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "kanal/kanal.h"
#include "unit/child.h"
#include "unit/helpers.h"

struct misuse {
	void (*fn)(void);
};

static void call_misuse(void *arg)
{
	((struct misuse *)arg)->fn();
}

/* Run fn in a child; expect SIGABRT and a message containing msg. */
static void expect_abort(void (*fn)(void), const char *msg)
{
	char buf[1024];
	int st = kt_child(call_misuse, &(struct misuse){ fn }, buf, sizeof(buf));

	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		  "the child did not abort (status %#x); stderr: %s", st, buf);
	cr_expect(strstr(buf, msg) != NULL, "stderr \"%s\" does not name \"%s\"", buf, msg);
}

/* ---- a freed channel ------------------------------------------------------- */

static kn_chan *freed(void)
{
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 4);

	kn_chan_free(ch);
	return ch;
}

static void send_freed(void)
{
	int64_t v = 1;

	kn_chan_send(freed(), &v);
}

static void recv_freed(void)
{
	int64_t v;

	kn_chan_try_recv(freed(), &v);
}

static void close_freed(void)
{
	kn_chan_close(freed());
}

static void select_freed(void)
{
	int64_t v;
	struct kn_case c = { freed(), KN_RECV, &v };

	kn_select(&c, 1, KN_SELECT_DEFAULT, 0, NULL, NULL);
}

static void free_twice(void)
{
	kn_chan_free(freed());
}

#define FREED "a freed channel was used"
Test(misuse, send_on_freed_channel) { expect_abort(send_freed, FREED); }
Test(misuse, recv_on_freed_channel) { expect_abort(recv_freed, FREED); }
Test(misuse, close_freed_channel) { expect_abort(close_freed, FREED); }
Test(misuse, select_on_freed_channel) { expect_abort(select_freed, FREED); }
Test(misuse, free_channel_twice) { expect_abort(free_twice, FREED); }

/* ---- kn_chan_free while a call waits ----------------------------------------- */

static void free_with_waiter(size_t cap)
{
	struct kt_op o = { kn_chan_new(sizeof(int64_t), cap), 0 };
	struct kt_thread t;

	kt_spawn(&t, kt_recv, &o);
	if (kt_wait_queued(o.ch, KN_RECV, 1, &t, 1))
		kn_chan_free(o.ch);
}

static void free_waited_rendezvous(void) { free_with_waiter(0); }
static void free_waited_buffered(void) { free_with_waiter(2); }

#define WAITED "kn_chan_free while a call waits on the channel"
Test(misuse, free_while_receiver_waits) { expect_abort(free_waited_rendezvous, WAITED); }
Test(misuse, free_while_receiver_waits_buffered) { expect_abort(free_waited_buffered, WAITED); }

/* ---- signal handlers ------------------------------------------------------------ */

static kn_chan *sig_ch;

static void blocking_handler(int sig)
{
	int64_t v = 0;

	(void)sig;
	kn_chan_recv_until(sig_ch, &v, kn_now() + 1000000);
}

static void handler_on(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = blocking_handler;
	sigaction(SIGUSR1, &sa, NULL);
}

/* The signal arrives while a call on the channel holds its lock: the
 * handler's call on the same channel would wait for that lock for ever. */
static void handler_takes_held_lock(void)
{
	sig_ch = kn_chan_new(sizeof(int64_t), 0);
	handler_on();
	lock_acquire(&sig_ch->lock, LOCK_CHAN); /* as a send in its try pass */
	raise(SIGUSR1);
}

/* The signal interrupts a receive that waits; the handler waits too. */
static int waits(void *arg)
{
	int64_t v;

	return kn_chan_recv(arg, &v);
}

static void handler_waits_in_wait(void)
{
	kn_chan *wait_ch = kn_chan_new(sizeof(int64_t), 0);
	struct kt_thread t;

	sig_ch = kn_chan_new(sizeof(int64_t), 0);
	handler_on();
	kt_spawn(&t, waits, wait_ch);
	/* Registered, then parked: signal until a signal finds it parked
	 * (the abort ends this process). */
	while (kt_wait_queued(wait_ch, KN_RECV, 1, &t, 1)) {
		pthread_kill(t.tid, SIGUSR1);
		kt_pause();
	}
}

Test(misuse, handler_call_on_held_lock)
{
	expect_abort(handler_takes_held_lock, "a kanal lock it holds");
}

Test(misuse, handler_blocks_inside_wait)
{
	expect_abort(handler_waits_in_wait, "from a signal handler that interrupted a wait");
}

/* ---- a blocking after_func on the timer thread (issue 18, item 7) --------- */

static void recv_forever(void *arg)
{
	int64_t v;

	kn_chan_recv(arg, &v); /* nothing is ever sent */
}

/* A deadline's after_funcs run on kanal's one timer thread: one that
 * blocks there stops every deadline in the process. */
static void after_func_blocks(void)
{
	kn_chan *ch = kn_chan_new(sizeof(int64_t), 0);
	kn_ctx *ctx = kn_ctx_with_timeout(kn_ctx_background(), 1000000);
	kn_ctx_stop stop;
	struct timespec ts = { 20, 0 };

	kn_ctx_after_func(ctx, recv_forever, ch, &stop);
	nanosleep(&ts, NULL); /* the check aborts long before */
}

Test(misuse, blocking_after_func_on_the_timer_thread)
{
	expect_abort(after_func_blocks, "on kanal's timer thread");
}

/* ---- kn_mutex unlocked by a task or thread that does not hold it ---------- */

static kn_mutex held = KN_MUTEX_INIT;

static void *unlock_foreign(void *arg)
{
	(void)arg;
	kn_mutex_unlock(&held);
	return NULL;
}

/* Go allows it; kanal's Debug build stops at the unlock (kanal/sync.h). */
static void unlock_by_another_thread(void)
{
	pthread_t t;

	kn_mutex_lock(&held);
	pthread_create(&t, NULL, unlock_foreign, NULL);
	pthread_join(t, NULL);
}

static kn_waitgroup unlocked = KN_WAITGROUP_INIT;

static void unlock_task(void *arg)
{
	unlock_foreign(arg);
	kn_waitgroup_done(&unlocked);
}

/* A task's unlock of a mutex this thread holds: same thread, other actor. */
static void unlock_by_a_task(void)
{
	kn_mutex_lock(&held);
	kn_waitgroup_add(&unlocked, 1);
	kn_go(unlock_task, NULL);
	kn_waitgroup_wait(&unlocked);
}

#define FOREIGN "kn_mutex_unlock by a task or thread that does not hold"
Test(misuse, mutex_unlock_by_another_thread) { expect_abort(unlock_by_another_thread, FOREIGN); }
Test(misuse, mutex_unlock_by_a_task) { expect_abort(unlock_by_a_task, FOREIGN); }

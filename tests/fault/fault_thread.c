/*
 * fault_thread.c - thread-start failures (EAGAIN, as at a thread limit):
 * kn_pool_new with its n-th worker failing to start (a clean EAGAIN), and
 * a pool that needs a spare thread to run a task that a blocked task waits
 * for, with that spare's start failing: the pool must try again (issue
 * 18, item 4), where it used to wait for ever; and a task waiting for
 * its socket with a deadline when the timer thread cannot start (issue 15:
 * it slept its thread, unseen by the poller, until the deadline). See
 * sweep.h.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "kanal/chan.h"
#include "kanal/net.h"
#include "kanal/pool.h"
#include "kanal/time.h"
#include "sweep.h"

static void nothing(void *arg)
{
	(void)arg;
}

static int new_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = 3 };
	kn_pool *p;
	kn_task *t;

	(void)arg;
	errno = 0;
	p = kn_pool_new(&o);
	if (!p) {
		CHECK(errno == EAGAIN);
		return 0;
	}
	t = kn_pool_spawn_task(p, nothing, NULL);
	CHECK(t && kn_task_join(t) == 0);
	kn_pool_free(p);
	return 0;
}

static void recv_task(void *arg)
{
	int v;

	if (kn_chan_recv(arg, &v) != 0)
		abort();
}

static void send_task(void *arg)
{
	int v = 1;

	if (kn_chan_send(arg, &v) != 0)
		abort();
}

/* The receiver blocks its only worker (no fibers); the sender, queued
 * behind it, runs only on a spare. */
static int spare_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = 1, .max_spare = 1, .no_fibers = true };
	kn_chan *ch = arg;
	kn_task *r, *s;
	kn_pool *p;

	errno = 0;
	p = kn_pool_new(&o);
	if (!p) {
		CHECK(errno == EAGAIN);
		return 0;
	}
	r = kn_pool_spawn_task(p, recv_task, ch);
	s = kn_pool_spawn_task(p, send_task, ch);
	CHECK(r && s);
	CHECK(kn_task_join(r) == 0);
	CHECK(kn_task_join(s) == 0);
	kn_pool_free(p);
	return 0;
}

static void fd_wait_task(void *arg)
{
	/* An hour: only the byte the scenario writes can end the wait. */
	if (kn_fd_wait(*(int *)arg, KN_READ, kn_deadline_in(3600ull * 1000000000ull)))
		abort();
}

/* The only worker, no spare: the task's deadline needs the timer thread
 * (the process's first deadline), whose start may fail; then the task
 * cannot suspend, and its thread must poll its fd itself, since no other
 * thread does. */
static int fd_deadline_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = 1, .max_spare = KN_POOL_NO_SPARE };
	kn_task *t;
	kn_pool *p;
	int sv[2];

	(void)arg;
	errno = 0;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	p = kn_pool_new(&o);
	if (!p)
		CHECK(errno == EAGAIN);
	t = p ? kn_pool_spawn_task(p, fd_wait_task, &sv[0]) : NULL;
	CHECK(!p || t);
	/* Before or after the task waits: either way the read side is ready. */
	kn_sleep(10000000);
	CHECK(write(sv[1], "x", 1) == 1);
	CHECK(!t || kn_task_join(t) == 0);
	kn_pool_free(p);
	kn_fd_close(sv[0]);
	close(sv[1]);
	return 0;
}

int main(void)
{
	kn_chan *ch = kn_chan_new(sizeof(int), 0);
	int bad = 0;

	/* A pool that never retries hangs: fail instead. */
	alarm(60);
	if (!ch) {
		perror("kn_chan_new");
		return 1;
	}
	/* First: the timer thread is not started yet. */
	bad |= sweep_threads("net: a task's fd wait with a deadline, no timer thread",
			     fd_deadline_scenario, NULL);
	bad |= sweep_threads("pool: new (3 workers)", new_scenario, NULL);
	bad |= sweep_threads("pool: a blocked task, its partner on a spare",
			     spare_scenario, ch);
	kn_chan_free(ch);
	return bad;
}

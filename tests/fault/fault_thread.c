/*
 * fault_thread.c - thread-start failures (EAGAIN, as at a thread limit):
 * kn_pool_new with its n-th worker failing to start (a clean EAGAIN), and
 * a pool that needs a spare thread to run a task that a blocked task waits
 * for, with that spare's start failing: the pool must try again (issue
 * 18, item 4), where it used to wait for ever. See sweep.h.
 */
#include <unistd.h>

#include "kanal/chan.h"
#include "kanal/pool.h"
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
	bad |= sweep_threads("pool: new (3 workers)", new_scenario, NULL);
	bad |= sweep_threads("pool: a blocked task, its partner on a spare",
			     spare_scenario, ch);
	kn_chan_free(ch);
	return bad;
}

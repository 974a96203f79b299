/*
 * fault_pool.c - allocation failures in the pool and the error group:
 * kn_pool_new (the pool, its tables, each worker and its deque),
 * kn_pool_spawn and kn_pool_spawn_task from outside (the task record) and
 * from inside a task (the record, and the deque's growth past its first
 * 256 slots), fiber stacks (a ring of tasks on one worker, each blocking in
 * turn), tasks spawned with a stack of their own (kn_pool_spawn_opts and,
 * every other one, kn_pool_spawn_task_opts: the class, its arena, the
 * record), kn_group_new (the group, its
 * context), kn_group_go. Thread
 * starts fail in fault_thread.c. See sweep.h.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "kanal/chan.h"
#include "kanal/group.h"
#include "kanal/pool.h"
#include "kanal/time.h"
#include "sweep.h"

#define INNER 300 /* subtasks spawned by one task: the deque must grow */

struct count {
	atomic_long ran;
	atomic_long spawned;
	atomic_long inner_bad; /* a spawn from a task failed with other than ENOMEM */
	kn_pool *pool;
};

static void bump(void *arg)
{
	struct count *c = arg;

	atomic_fetch_add(&c->ran, 1);
}

static void spawner(void *arg)
{
	struct count *c = arg;
	int i, r;

	atomic_fetch_add(&c->ran, 1);
	for (i = 0; i < INNER; i++) {
		r = kn_pool_spawn(c->pool, bump, c);
		if (r == 0)
			atomic_fetch_add(&c->spawned, 1);
		else if (r != ENOMEM)
			atomic_fetch_add(&c->inner_bad, 1);
	}
}

/* workers: 2 (a failure while starting the second worker), or 1 (the
 * spawner's subtasks all land on its own deque, which must grow). */
static int pool_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = *(unsigned *)arg, .max_spare = 1 };
	struct count c = { 0 };
	kn_task *t;
	long spawned = 0;
	int i, r;

	errno = 0;
	c.pool = kn_pool_new(&o);
	if (!c.pool) {
		CHECK_NOMEM(errno);
		return 0;
	}
	for (i = 0; i < 8; i++) {
		r = kn_pool_spawn(c.pool, bump, &c);
		CHECK(r == 0 || r == ENOMEM);
		spawned += r == 0;
	}
	errno = 0;
	t = kn_pool_spawn_task(c.pool, spawner, &c);
	if (t) {
		spawned++;
		CHECK(kn_task_join(t) == 0);
	} else {
		CHECK_NOMEM(errno);
	}
	CHECK(kn_pool_wait_idle(c.pool) == 0);
	CHECK(atomic_load(&c.inner_bad) == 0);
	CHECK(atomic_load(&c.ran) == spawned + atomic_load(&c.spawned));
	/* Still usable after whatever failed. */
	CHECK(kn_pool_spawn(c.pool, bump, &c) == 0);
	CHECK(kn_pool_shutdown(c.pool, true, NULL) == 0);
	CHECK(atomic_load(&c.ran) == spawned + atomic_load(&c.spawned) + 1);
	kn_pool_free(c.pool);
	return 0;
}

/* A ring on one worker: the root task sends ROUNDS values through STAGES
 * tasks over rendezvous channels, so every task blocks in turn and each
 * block needs a stack. Whichever stack fails to map, the ring must finish
 * (a task that sleeps on the thread must not strand the fibers it waits
 * for); a missing stage closes its channels and the ring ends early. */
#define STAGES 6
#define ROUNDS 20

struct ring {
	kn_pool *pool;
	kn_chan *ch[STAGES + 1];
	long got;       /* values back at the root, in order */
	bool bad;
};

struct stage {
	struct ring *r;
	int i;
};

static struct stage stages[STAGES];

static void ring_stage(void *arg)
{
	struct stage *st = arg;
	kn_chan *in = st->r->ch[st->i], *out = st->r->ch[st->i + 1];
	long v;

	while (kn_chan_recv(in, &v) == 0 && kn_chan_send(out, &v) == 0)
		;
	kn_chan_close(in);
	kn_chan_close(out);
}

static void ring_root(void *arg)
{
	struct ring *r = arg;
	long v, back;
	int i;

	/* Last first: the worker pops stage 0 first, so each stage starts
	 * while the ones it feeds wait on this thread. */
	for (i = STAGES - 1; i >= 0; i--) {
		stages[i] = (struct stage){ r, i };
		if (kn_pool_spawn(r->pool, ring_stage, &stages[i])) {
			kn_chan_close(r->ch[i]);
			kn_chan_close(r->ch[i + 1]);
		}
	}
	for (v = 0; v < ROUNDS; v++) {
		if (kn_chan_send(r->ch[0], &v) || kn_chan_recv(r->ch[STAGES], &back))
			break;
		if (back != v)
			r->bad = true;
		r->got++;
	}
	kn_chan_close(r->ch[0]);
	while (kn_chan_recv(r->ch[STAGES], &back) == 0)
		;
}

static int ring_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = 1 };
	struct ring r = { 0 };
	bool all = true;
	kn_task *t;
	int i;

	(void)arg;
	for (i = 0; i <= STAGES; i++)
		all &= (r.ch[i] = kn_chan_new(sizeof(long), 0)) != NULL;
	errno = 0;
	r.pool = all ? kn_pool_new(&o) : NULL;
	t = r.pool ? kn_pool_spawn_task(r.pool, ring_root, &r) : NULL;
	if (t) {
		CHECK(kn_task_join(t) == 0);
		CHECK(!r.bad && r.got <= ROUNDS);
		CHECK(kn_pool_wait_idle(r.pool) == 0);
	} else if (all) {
		CHECK_NOMEM(errno);
	}
	kn_pool_free(r.pool);
	for (i = 0; i <= STAGES; i++)
		kn_chan_free(r.ch[i]);
	return 0;
}

/* More tasks blocked at once on one worker than an arena holds (64), so
 * that a stack is taken from a new arena during a block: if that fails,
 * the task sleeps on its thread (a spare takes over), every task still
 * finishes, and the pool counts the suspension that had no stack. */
#define BLOCKERS 100

/* A channel of longs of capacity cap and a pool of options o: 0, or the
 * errno of the one that could not be made (then neither is left). */
static int chan_and_pool(size_t cap, const struct kn_pool_opts *o,
			 kn_chan **ch, kn_pool **p)
{
	int err;

	errno = 0;
	*ch = kn_chan_new(sizeof(long), cap);
	if (!*ch)
		return errno;
	*p = kn_pool_new(o);
	if (!*p) {
		err = errno;
		kn_chan_free(*ch);
		return err;
	}
	return 0;
}

struct blockers {
	kn_chan *ch;
	atomic_long done;
};

static void blocker(void *arg)
{
	struct blockers *b = arg;
	long v;

	kn_chan_recv(b->ch, &v);
	atomic_fetch_add(&b->done, 1);
}

static int blocked_scenario(void *arg)
{
	struct kn_pool_opts o = { .workers = 1 };
	struct blockers b = { 0 };
	struct kn_pool_stats st;
	long spawned = 0, i;
	kn_pool *p;
	int err;

	(void)arg;
	err = chan_and_pool(0, &o, &b.ch, &p);
	if (err) {
		CHECK_NOMEM(err);
		return 0;
	}
	for (i = 0; i < BLOCKERS; i++)
		spawned += kn_pool_spawn(p, blocker, &b) == 0;
	/* Until (about) all have blocked; bounded, since the close releases
	 * any that has not yet. */
	for (i = 0; i < 5000 && kn_pool_stats(p, &st) == 0 &&
		    st.switches < (uint64_t)spawned - st.stack_failures; i++)
		kn_sleep(1000000);
	kn_chan_close(b.ch);
	CHECK(kn_pool_wait_idle(p) == 0);
	CHECK(atomic_load(&b.done) == spawned);
	CHECK(kn_pool_stats(p, &st) == 0);
	CHECK(st.stack_failures <= (uint64_t)kn_fault_failures());
	kn_pool_free(p);
	kn_chan_free(b.ch);
	return 0;
}

/* Tasks with 1 MiB stacks of their own on a pool of 64 KiB ones, each
 * using 200 KiB of it and receiving once (a buffered channel: it may block
 * or not). A spawn fails with ENOMEM or runs; every spawned task ends. */
#define OWN_TASKS 4

struct own {
	kn_chan *ch;
	atomic_long ran;
};

static __attribute__((noinline)) long dig(long kib)
{
	volatile char frame[1024];

	frame[0] = (char)kib;
	return kib > 0 ? dig(kib - 1) + frame[0] : 0;
}

static void own_task(void *arg)
{
	struct own *o = arg;
	long v;

	if (dig(200) >= 0 && kn_chan_recv(o->ch, &v) == 0)
		atomic_fetch_add(&o->ran, 1);
}

static int own_stack_scenario(void *arg)
{
	struct kn_pool_opts po = { .workers = 1, .stack_size = 64 * 1024 };
	struct kn_spawn_opts so = { .stack_size = 1 << 20 };
	struct own o = { 0 };
	kn_task *joinable[OWN_TASKS];
	long spawned = 0, njoinable = 0, i;
	kn_pool *p;
	int r;

	(void)arg;
	r = chan_and_pool(OWN_TASKS, &po, &o.ch, &p);
	if (r) {
		CHECK_NOMEM(r);
		return 0;
	}
	for (i = 0; i < OWN_TASKS; i++) {
		if (i % 2) {
			errno = 0;
			joinable[njoinable] = kn_pool_spawn_task_opts(p, &so, own_task, &o);
			r = joinable[njoinable] ? 0 : errno;
			njoinable += r == 0;
		} else {
			r = kn_pool_spawn_opts(p, &so, own_task, &o);
		}
		CHECK(r == 0 || r == ENOMEM);
		spawned += r == 0;
	}
	for (i = 0; i < spawned; i++)
		CHECK(kn_chan_send(o.ch, &i) == 0);
	for (i = 0; i < njoinable; i++)
		CHECK(kn_task_join(joinable[i]) == 0);
	CHECK(kn_pool_wait_idle(p) == 0);
	CHECK(atomic_load(&o.ran) == spawned);
	kn_pool_free(p);
	kn_chan_free(o.ch);
	return 0;
}

static int task_ok(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	atomic_fetch_add((atomic_long *)arg, 1);
	return 0;
}

struct group_arg {
	kn_pool *pool;
};

static int group_scenario(void *arg)
{
	struct group_arg *ga = arg;
	atomic_long ran = 0;
	long started = 0;
	kn_group *g;
	int i, r;

	errno = 0;
	g = kn_group_new(NULL, ga->pool);
	if (!g) {
		CHECK_NOMEM(errno);
		return 0;
	}
	for (i = 0; i < 4; i++) {
		r = kn_group_go(g, task_ok, &ran);
		CHECK(r == 0 || r == ENOMEM);
		started += r == 0;
	}
	CHECK(kn_group_wait(g) == 0);
	CHECK(atomic_load(&ran) == started);
	kn_group_free(g);
	return 0;
}

/* kn_go: the first call makes the default pool. If that fails (ENOMEM),
 * a later call must be able to try again. */
static void nothing(void *arg)
{
	(void)arg;
}

static int go_scenario(void *arg)
{
	int r;

	(void)arg;
	r = kn_go(nothing, NULL);
	CHECK(r == 0 || r == ENOMEM);
	if (r == ENOMEM) {
		kn_fault_fail_nth(0);
		CHECK(kn_go(nothing, NULL) == 0);
	}
	return 0;
}

int main(void)
{
	struct kn_pool_opts o = { .workers = 2 };
	struct group_arg ga;
	unsigned two = 2, one = 1;
	int bad = 0;

	bad |= sweep("pool: new (2 workers), spawn, spawn_task", pool_scenario, &two);
	bad |= sweep("pool: 1 worker, deque growth in a task", pool_scenario, &one);
	bad |= sweep("pool: fiber stacks, a ring of blocking tasks", ring_scenario, NULL);
	bad |= sweep("pool: 100 tasks blocked on one worker (a second arena)",
		     blocked_scenario, NULL);
	bad |= sweep("pool: tasks with stacks of their own (kn_spawn_opts)",
		     own_stack_scenario, NULL);
	ga.pool = kn_pool_new(&o);
	if (!ga.pool) {
		perror("kn_pool_new");
		return 1;
	}
	bad |= sweep("group: new, go", group_scenario, &ga);
	kn_pool_free(ga.pool);
	/* A failure to make the default pool is not final: the next
	 * kn_go tries again. */
	bad |= sweep("go: default pool made again after ENOMEM", go_scenario, NULL);
	return bad;
}

/*
 * test_stacks.c - task stacks (pool.h "Stacks", "Stack overflow"):
 * hundreds of thousands of tasks suspended at once, the overflow message
 * (death tests in a child process), the default pool's options, the
 * limits on stack_size, and tasks spawned with a stack of their own.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fiber.h"
#include "kanal/chan.h"
#include "tsan.h"
#include "unit/child.h"
#include "unit/pool_helpers.h"

/* ThreadSanitizer keeps a large state per fiber: fewer there. */
#ifdef KN_TSAN
#define MANY 4000
#else
#define MANY 200000
#endif

struct blocked {
	kn_chan *ch;
	_Atomic long entered, released;
};

static void block_on_recv(void *arg)
{
	struct blocked *b = arg;
	long v;

	at_add_relaxed(&b->entered, 1);
	TASK_CHECK(kn_chan_recv(b->ch, &v) == EPIPE);
	at_add_relaxed(&b->released, 1);
}

/* More tasks blocked at once than the kernel's default mapping limit
 * (65,530) allowed with a mapping per stack; all released by the close. */
Test(stacks, many_blocked_at_once, .timeout = 120)
{
	kn_pool *p = pool_of(2, 0);
	struct blocked b = { .ch = kn_chan_new(sizeof(long), 0) };
	struct kn_pool_stats st;
	long i;

	cr_assert_not_null(b.ch);
	for (i = 0; i < MANY; i++)
		cr_assert_eq(kn_pool_spawn(p, block_on_recv, &b), 0);
	while (at_load_relaxed(&b.entered) < MANY)
		nap_ms(1);
	/* Nothing sends: every one of them is blocked or about to be. */
	cr_assert_eq(at_load_relaxed(&b.released), 0);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_geq(st.stack_bytes, (uint64_t)MANY * KN_POOL_DEFAULT_STACK);
	kn_chan_close(b.ch);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&b.released), MANY);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_eq(st.tasks_run, (uint64_t)MANY);
	cr_assert_eq(st.stack_failures, 0);
	cr_assert_eq(st.threads, 2, "no task held its thread");
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_chan_free(b.ch);
	kn_pool_free(p);
}

/* Once warm, suspending and resuming takes stacks from the worker's cache:
 * no system call, no allocation (measured inside the tasks, while the
 * test's thread polls without kanal). */
#define ROUNDS 2000
#define WARM 100

struct pp {
	kn_chan *ch[2];
	uint64_t syscalls, allocs;   /* over the warm rounds */
	_Atomic int done;
};

static void ping(void *arg)
{
	struct pp *pp = arg;
	uint64_t s = 0, a = 0;
	long v = 0;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		if (i == WARM) {
			s = kn_stat_syscalls();
			a = kn_stat_allocs();
		}
		TASK_CHECK(kn_chan_send(pp->ch[0], &v) == 0);
		TASK_CHECK(kn_chan_recv(pp->ch[1], &v) == 0);
	}
	pp->syscalls = kn_stat_syscalls() - s;
	pp->allocs = kn_stat_allocs() - a;
	at_store_release(&pp->done, 1);
}

static void pong(void *arg)
{
	struct pp *pp = arg;
	long v;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		TASK_CHECK(kn_chan_recv(pp->ch[0], &v) == 0);
		TASK_CHECK(kn_chan_send(pp->ch[1], &v) == 0);
	}
}

Test(stacks, warm_suspension_maps_nothing)
{
	kn_pool *p = pool_of(1, KN_POOL_NO_SPARE);
	struct pp pp = { { kn_chan_new(sizeof(long), 0), kn_chan_new(sizeof(long), 0) } };
	struct kn_pool_stats st;

	cr_assert_eq(kn_pool_spawn(p, pong, &pp), 0);
	cr_assert_eq(kn_pool_spawn(p, ping, &pp), 0);
	while (!at_load_acquire(&pp.done))
		nap_ms(1);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(pp.syscalls, 0);
	cr_assert_eq(pp.allocs, 0);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_geq(st.switches, 2 * ROUNDS);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_chan_free(pp.ch[0]);
	kn_chan_free(pp.ch[1]);
	kn_pool_free(p);
}

/* Take every stack of ARENAS arenas, touching each, and give them all
 * back: no trim on the way (that is the wake-up path); then
 * stack_pool_trim gives back every free arena beyond the reserve of two,
 * one madvise a call. */
#define ARENAS 5

static void burst_then_trim(struct stack_pool *sp, struct fiber **f, unsigned n)
{
	struct stack_cache c = { 0 };
	uint64_t mapped = at_load_relaxed(&sp->bytes), s;
	unsigned i, trims = 0;

	for (i = 0; i < n; i++) {
		f[i] = stack_take(sp, &c);
		cr_assert_not_null(f[i]);
		((volatile char *)f[i])[-1] = 1; /* the top page is touched */
	}
	cr_assert_eq(c.n, 0, "the burst took whole arenas");
	s = kn_stat_syscalls();
	for (i = 0; i < n; i++)
		stack_give(sp, &c, f[i]);
	stack_cache_flush(sp, &c);
	cr_assert_eq(kn_stat_syscalls(), s, "no trim where the stacks come back");
	while (stack_pool_trim(sp))
		trims++;
	cr_assert_eq(trims, ARENAS - 2);
	cr_assert_eq(kn_stat_syscalls() - s, ARENAS - 2);
	cr_assert(mapped == 0 || at_load_relaxed(&sp->bytes) == mapped,
		  "trimmed arenas serve again: nothing more mapped");
}

Test(stacks, free_arenas_trimmed_beyond_reserve)
{
	struct stack_pool sp;
	struct fiber **f;
	unsigned n;

	stack_pool_init(&sp, 64 * 1024, "trim");
	n = ARENAS * sp.per_arena;
	f = calloc(n, sizeof(*f));
	cr_assert_not_null(f);
	burst_then_trim(&sp, f, n);
	burst_then_trim(&sp, f, n); /* over trimmed arenas and kept ones */
	free(f);
	stack_pool_destroy(&sp);
}

Test(stacks, stack_size_limits)
{
	struct kn_pool_opts o = { .workers = 1, .stack_size = SIZE_MAX };

	errno = 0;
	cr_assert_null(kn_pool_new(&o));
	cr_assert_eq(errno, EINVAL);
	o.stack_size = KN_POOL_MAX_STACK + 1;
	cr_assert_null(kn_pool_new(&o));
	cr_assert_eq(errno, EINVAL);
	o.stack_size = KN_POOL_MAX_STACK;
	kn_pool_free(pool_with(o));
}

/* ---- the default pool's stack size ------------------------------------ */

/* Use about depth KiB of stack, touching every page on the way down. */
static __attribute__((noinline)) long dig(long kib)
{
	volatile char frame[1024];

	frame[0] = (char)kib;
	frame[sizeof(frame) - 1] = 0;
	return kib > 0 ? dig(kib - 1) + frame[0] : 0;
}

struct digger {
	long kib;
	kn_chan *done;
};

static void dig_then_report(void *arg)
{
	struct digger *d = arg;
	long v = dig(d->kib);

	kn_chan_send(d->done, &v);
}

/* A task using 700 KiB of stack on the default pool, as the first task on
 * its worker and after another task blocked there. */
static void dig_on_default_pool(long kib)
{
	struct digger d = { kib, kn_chan_new(sizeof(long), 0) };
	struct kn_pool_stats st;
	long v;
	int i;

	for (i = 0; i < 4; i++) {
		cr_assert_eq(kn_go(dig_then_report, &d), 0);
		cr_assert_eq(kn_chan_recv(d.done, &v), 0);
	}
	cr_assert_eq(kn_pool_stats(kn_default_pool(), &st), 0);
	cr_assert_gt(st.stack_bytes, 0);
	/* The last sender may still be inside its send. */
	cr_assert_eq(kn_pool_wait_idle(kn_default_pool()), 0);
	kn_chan_free(d.done);
}

Test(stacks, default_pool_from_environment)
{
	cr_assert_eq(setenv("KANAL_STACK_SIZE", "1M", 1), 0);
	dig_on_default_pool(700);
}

Test(stacks, default_pool_set)
{
	struct kn_pool_opts o = { .workers = 1, .stack_size = 1 << 20, .name = "mine" };

	cr_assert_eq(kn_default_pool_set(NULL), EINVAL);
	cr_assert_eq(kn_default_pool_set(&o), 0);
	dig_on_default_pool(700);
	cr_assert_eq(kn_default_pool_set(&o), EINVAL, "too late: it exists");
}

Test(stacks, default_pool_bad_environment)
{
	cr_assert_eq(setenv("KANAL_STACK_SIZE", "lots", 1), 0);
	cr_assert_eq(kn_go(dig_then_report, NULL), EINVAL);
	cr_assert_null(kn_default_pool());
}

Test(stacks, go_after_default_pool_shutdown)
{
	cr_assert_eq(kn_pool_shutdown(kn_default_pool(), true, NULL), 0);
	cr_assert_eq(kn_go(dig_then_report, NULL), EPIPE);
}

/* ---- a task's own stack_size (kn_spawn_opts) ------------------------- */

/* Tasks recursing through 700 KiB, far past the pool's 64 KiB, on stacks
 * of their own of 1 MiB; each blocks on the way back up (suspended on its
 * own stack, its starter waiting below) and sends what it dug. */
struct own_digger {
	kn_chan *go, *done;
	long kib;
};

static __attribute__((noinline)) long dig_and_wait(long kib, kn_chan *go)
{
	volatile char frame[1024];
	long v;

	frame[0] = 1;
	if (kib > 0)
		return dig_and_wait(kib - 1, go) + frame[0];
	TASK_CHECK(kn_chan_recv(go, &v) == 0);
	return v;
}

static void own_dig(void *arg)
{
	struct own_digger *d = arg;
	long v = dig_and_wait(d->kib, d->go);

	TASK_CHECK(strcmp(kn_task_name(), "digger") == 0);
	TASK_CHECK(kn_chan_send(d->done, &v) == 0);
}

#define DIGGERS 8

Test(stacks, own_stack_runs_deep_recursion, .timeout = 60)
{
	struct kn_pool_opts po = { .workers = 2, .stack_size = 64 * 1024 };
	kn_pool *p = pool_with(po);
	struct own_digger d = { kn_chan_new(sizeof(long), 0),
				kn_chan_new(sizeof(long), 0), 700 };
	struct kn_spawn_opts o = { .name = "digger", .stack_size = 1 << 20 };
	struct kn_pool_stats st;
	long i, v, sum = 0;

	for (i = 0; i < DIGGERS; i++)
		cr_assert_eq(kn_pool_spawn_opts(p, &o, own_dig, &d), 0);
	for (i = 0; i < DIGGERS; i++)
		cr_assert_eq(kn_chan_send(d.go, &i), 0);
	for (i = 0; i < DIGGERS; i++) {
		cr_assert_eq(kn_chan_recv(d.done, &v), 0);
		sum += v;
	}
	cr_assert_eq(sum, 700L * DIGGERS + DIGGERS * (DIGGERS - 1) / 2);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_eq(st.tasks_run, DIGGERS);
	cr_assert_eq(st.stack_failures, 0);
	cr_assert_eq(st.threads, 2, "no task held its thread");
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_chan_free(d.go);
	kn_chan_free(d.done);
	kn_pool_free(p);
}

static void count_run(void *arg)
{
	at_add_relaxed((_Atomic long *)arg, 1);
}

Test(stacks, own_stack_limits)
{
	struct kn_pool_opts po = { .workers = 1, .stack_size = 64 * 1024 };
	kn_pool *p = pool_with(po), *threads;
	struct kn_spawn_opts o = { .stack_size = KN_POOL_MAX_STACK + 1 };
	_Atomic long ran = 0;

	cr_assert_eq(kn_pool_spawn_opts(p, &o, count_run, &ran), EINVAL);
	cr_assert_eq(kn_pool_spawn_opts(p, &o, NULL, &ran), EINVAL);
	o.stack_size = 4096; /* below the pool's: the pool's */
	cr_assert_eq(kn_pool_spawn_opts(p, &o, count_run, &ran), 0);
	o.stack_size = KN_POOL_MAX_STACK; /* address space only */
	cr_assert_eq(kn_pool_spawn_opts(p, &o, count_run, &ran), 0);
	cr_assert_eq(kn_pool_spawn_opts(p, NULL, count_run, &ran), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&ran), 3);
	kn_pool_free(p);

	po.no_fibers = true;
	threads = pool_with(po);
	o.stack_size = 1 << 20;
	cr_assert_eq(kn_pool_spawn_opts(threads, &o, count_run, &ran), EINVAL,
		     "no stacks of its own without fibers");
	kn_pool_free(threads);
}

/* The joinable form honours the options as the detached one does: a task
 * named "digger" recursing 700 KiB deep on a 1 MiB stack of its own (the
 * pool's 64 KiB would overflow), suspended down there until released;
 * the join returns once it has sent what it dug. */
Test(stacks, own_stack_joinable, .timeout = 60)
{
	struct kn_pool_opts po = { .workers = 2, .stack_size = 64 * 1024 };
	kn_pool *p = pool_with(po), *threads;
	struct own_digger d = { kn_chan_new(sizeof(long), 0),
				kn_chan_new(sizeof(long), 0), 700 };
	struct kn_spawn_opts o = { .name = "digger", .stack_size = 1 << 20 };
	struct kn_pool_stats st;
	kn_task *t[DIGGERS];
	long i, v, sum = 0;

	for (i = 0; i < DIGGERS; i++)
		cr_assert_not_null(t[i] = kn_pool_spawn_task_opts(p, &o, own_dig, &d));
	for (i = 0; i < DIGGERS; i++)
		cr_assert_eq(kn_chan_send(d.go, &i), 0);
	for (i = 0; i < DIGGERS; i++) {
		cr_assert_eq(kn_chan_recv(d.done, &v), 0);
		sum += v;
	}
	for (i = 0; i < DIGGERS; i++)
		cr_assert_eq(kn_task_join(t[i]), 0);
	cr_assert_eq(sum, 700L * DIGGERS + DIGGERS * (DIGGERS - 1) / 2);
	cr_assert_eq(kn_pool_stats(p, &st), 0);
	cr_assert_eq(st.tasks_run, DIGGERS);
	cr_assert_eq(st.stack_failures, 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);

	o.stack_size = KN_POOL_MAX_STACK + 1;
	errno = 0;
	cr_assert_null(kn_pool_spawn_task_opts(p, &o, own_dig, &d));
	cr_assert_eq(errno, EINVAL);
	kn_pool_free(p);

	po.no_fibers = true;
	threads = pool_with(po);
	o.stack_size = 1 << 20;
	errno = 0;
	cr_assert_null(kn_pool_spawn_task_opts(threads, &o, own_dig, &d),
		       "no stacks of its own without fibers");
	cr_assert_eq(errno, EINVAL);
	kn_pool_free(threads);
	kn_chan_free(d.go);
	kn_chan_free(d.done);
}

Test(stacks, go_opts_on_the_default_pool, .timeout = 60)
{
	struct own_digger d = { kn_chan_new(sizeof(long), 0),
				kn_chan_new(sizeof(long), 0), 2000 };
	struct kn_spawn_opts o = { .name = "digger", .stack_size = 4 << 20 };
	long v = 5;

	cr_assert_eq(kn_go_opts(&o, own_dig, &d), 0);
	cr_assert_eq(kn_chan_send(d.go, &v), 0);
	cr_assert_eq(kn_chan_recv(d.done, &v), 0);
	cr_assert_eq(v, 2005);
	cr_assert_eq(kn_pool_wait_idle(kn_default_pool()), 0);
	kn_chan_free(d.go);
	kn_chan_free(d.done);
}

/* ---- overflow: death tests -------------------------------------------- */

static void recurse_forever(void *arg)
{
	dig(1L << 30);
	(void)arg;
}

/* A frame larger than the stack, built without stack-clash probes, that
 * then blocks: it may write below the guard page and go on. */
#pragma GCC push_options
#pragma GCC optimize("no-stack-clash-protection")
static __attribute__((noinline)) void huge_frame(kn_chan *ch)
{
	volatile char big[256 * 1024];
	long v;

	big[0] = 1;
	kn_chan_recv(ch, &v);
	(void)big[0];
}
#pragma GCC pop_options

static void huge_frame_task(void *arg)
{
	huge_frame(arg);
}

struct first_task {
	void (*fn)(void *);
};

/* The child: a pool "deep" of 64 KiB stacks whose first task is ft->fn,
 * then a wait for the death that task brings (or the alarm of child.h). */
static void deep_pool(void *arg)
{
	struct first_task *ft = arg;
	struct kn_pool_opts o = { .workers = 1, .stack_size = 64 * 1024,
				  .name = "deep" };
	kn_chan *ch = kn_chan_new(sizeof(long), 0);
	kn_pool *p = kn_pool_new(&o);

	kn_pool_spawn(p, ft->fn, ch);
	pause();
}

/* Runs fn as the first task of a pool in a child: the child's wait
 * status, its stderr in out. */
static int run_child(void (*fn)(void *), char *out, size_t size)
{
	return kt_child(deep_pool, &(struct first_task){ fn }, out, size);
}

/* Sanitizers install their own SIGSEGV handler and report overflows
 * themselves; kanal's message is only promised with the default one. */
static bool segv_is_default(void)
{
	struct sigaction sa;

	return sigaction(SIGSEGV, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
	       !(sa.sa_flags & SA_SIGINFO);
}

static void expect_overflow_death_of(void (*fn)(void *), const char *size)
{
	char out[4096];
	int status;

	if (!segv_is_default())
		return; /* AddressSanitizer's handler: its own report */
	status = run_child(fn, out, sizeof(out));
	cr_assert(WIFSIGNALED(status), "the child must die: status %#x", status);
	cr_assert(strstr(out, "kanal: task stack overflow"), "stderr: %s", out);
	cr_assert(strstr(out, "pool \"deep\""), "stderr: %s", out);
	cr_assert(strstr(out, size), "stderr: %s", out);
}

static void expect_overflow_death(void (*fn)(void *))
{
	expect_overflow_death_of(fn, "stack_size 65536");
}

/* The first task on a fresh worker: it gets 64 KiB like any other (not the
 * thread's own 8 MiB stack). */
Test(stacks, overflow_reports_recursion, .timeout = 60)
{
	expect_overflow_death(recurse_forever);
}

Test(stacks, overflow_reports_huge_frame, .timeout = 60)
{
	expect_overflow_death(huge_frame_task);
}

/* A task with a stack of its own (100,000 bytes: the 128 KiB class of a
 * 64 KiB pool) overflows it: the message gives its size. */
static void recurse_on_own_stack(void *arg)
{
	struct kn_spawn_opts o = { .stack_size = 100000 };

	kn_pool_spawn_opts(kn_pool_current(), &o, recurse_forever, arg);
}

Test(stacks, overflow_of_own_stack_reports_its_size, .timeout = 60)
{
	expect_overflow_death_of(recurse_on_own_stack, "stack_size 131072");
}

/* A SIGSEGV sent (not a fault) still kills, without the overflow message. */
static void raise_segv(void *arg)
{
	(void)arg;
	raise(SIGSEGV);
}

Test(stacks, sent_sigsegv_kills_silently, .timeout = 60)
{
	char out[4096];
	int status;

	if (!segv_is_default())
		return; /* AddressSanitizer's handler reports it its own way */
	status = run_child(raise_segv, out, sizeof(out));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		  "status %#x", status);
	cr_assert_null(strstr(out, "overflow"), "stderr: %s", out);
}

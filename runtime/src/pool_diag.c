/*
 * pool_diag.c - seeing inside the pools (kanal/pool.h, "Seeing inside"):
 * the registry of live pools, kn_dump, the dump on a signal, the deadlock
 * report and the stall report.
 *
 * What is recorded, and where. Every task record carries a task_diag
 * (task.h): its id, name, pool and spawn site (an address in the call
 * that spawned it, printed with dladdr's object and offset), written at
 * the spawn, and what it waits on (WAIT_ON: a kind and an address) with
 * the time the wait began (the coarse clock), written by the block hook
 * when the task suspends
 * or sleeps in the waiter layer (diag_block, pool_internal.h) and cleared
 * when it runs again. Every blocking call hands its WAIT_ON to the waiter
 * layer's one park path (waiter_init, waitq_wait), so a call that does
 * not wait pays nothing, and one that waits pays two relaxed stores and a
 * read of the coarse clock (the vDSO page) beside its fiber switch.
 * Records are never freed (task.c), and every record ever made is in a
 * chunk on one list (task_chunks), so a reader on any thread may look at
 * any of them at any time. Each worker shows the task it runs
 * (worker.running). A thread outside the pools that sleeps in a kanal
 * call writes the same into a record of its own (waiter.h, struct
 * plain_wait) beside its futex sleep. The deadlock check does not use
 * those: it counts such sleepers in the sleep word, and every thread of
 * the process (below).
 *
 * kn_dump takes registry_lock (kn_pool_free waits for it, so no pool it
 * prints goes away), then the waiter layer's lock of the threads' records
 * (a thread's exit waits for it), and reads everything else with relaxed
 * loads, stopping nothing: each line is a snapshot of its own,
 * and a task may have moved on by the time the next is read (a task woken
 * but not yet resumed still shows what it waited on; a record reused
 * meanwhile may show the new task's name with the old one's wait).
 *
 * The dump on a signal. kn_dump_on_signal installs a handler that only
 * write(2)s one byte to a pipe (async-signal-safe by POSIX; errno is
 * saved; if the pipe is full a dump is pending anyway, and the byte is
 * dropped: the write end is non-blocking). A helper thread, started with
 * the first kn_dump_on_signal, blocks in read(2) on the other end and
 * calls kn_dump(stderr) in an ordinary context: the handler never takes a
 * lock or touches stdio, so it may interrupt anything, kanal included.
 *
 * The deadlock report. Claim: it fires only if, for a second at least,
 * every thread of the process (bar the timer thread that checks, and the
 * dump helper) was asleep in a kanal wait without a deadline, no timer
 * was pending (but the stall check's, which wakes nobody) and no pool
 * progressed; then nothing can ever wake any of
 * them: every kanal wake-up is made by a running thread (a notifier) or
 * by the timer thread firing an entry, and fd readiness is seen only by a
 * thread polling or asleep in epoll, which such a thread is not.
 * Signal handlers may not call kanal (kanal/chan.h, Signals), so a signal
 * wakes nothing but through a thread that reads a pipe or waits in
 * sigwait, i.e. a thread that is not asleep in kanal.
 *
 * The check (dl_look) reads, in this order: the sleep word S1 (waiter.h:
 * threads asleep without a deadline, in a seq_cst RMW at each sleep's
 * begin and end, and the sleeps ended), whether any timer entry is
 * pending but the stall check's, the process's thread count N
 * (/proc/self/stat), and the sleep word again, S2. It holds if S1 == S2,
 * no such entry is pending, and the
 * sleepers in S1 plus the known awake threads (this one; the dump helper;
 * under ThreadSanitizer its background thread) make N. Then:
 *
 *  1. At the read of N every thread but the known ones was asleep. S1 ==
 *     S2: no sleep began or ended in between (each changes S; the count
 *     of ended sleeps only grows, and it would take 2^32 futex sleeps
 *     between two reads to wrap). So the sleepers were a fixed set during
 *     the read of N, every one of them a live thread, hence counted in N;
 *     the other threads counted in N are the known ones, and a thread
 *     made after the read of N needed a running maker, which would have
 *     been counted. (A field that overflowed makes the sum fall short of
 *     N, never reach it.)
 *  2. A second look a second later (the next fire) that holds with the
 *     same sleep word, and the same progress of every pool (the sum of
 *     its workers' tasks run and switches, a second guard), shows that no
 *     sleep began or ended between the two: every sleeper of the first
 *     look slept throughout, no other thread ran but the timer thread,
 *     and it ran only this check and the stall check, since no other
 *     entry was pending (and only a running thread adds one; the stall
 *     check adds only its own entry again, and reads the workers and
 *     writes stderr, changing no kanal object: with KANAL_STALL_MS set
 *     its entry is always pending while a pool lives, and counting it
 *     hid every deadlock). So the state of every kanal object was the
 *     same over that second, and stays so.
 *
 * A program that is merely slow never passes: a task that sleeps (kn_sleep,
 * a deadline, a context with a deadline) keeps an entry pending; one that
 * computes, or a thread outside kanal (in sleep(), read(), a pthread
 * mutex, or running), is not asleep in the waiter layer and N exceeds the
 * count; a task waiting for an fd keeps a thread in epoll or poll.
 *
 * Arming (no periodic wake-up while nothing is blocked, nothing on a
 * fiber's suspension). The check runs on kanal's timer thread, an entry
 * armed one second ahead when a worker goes to sleep with fibers blocked
 * on it (park, sleep_for_fibers: diag_sleeps) or a task sleeps on its
 * thread (worker_block): a deadlock with a task in it needs one of these
 * (every worker asleep), and each is a slow path already. Each does a
 * seq_cst RMW of its pool's state word, then a seq_cst load of
 * diag_armed, and arms if it is clear. A fire clears diag_armed
 * (seq_cst), then looks, and arms again only while a task is blocked
 * (some worker's nblocked, or the state word's blocked count) or a
 * thread outside the pools sleeps in kanal: when everything is idle it
 * stops. No arming is lost to a fire's clear: in the total order of
 * seq_cst operations either the sleeper's load follows the clear (it
 * arms), or its RMW precedes the fire's seq_cst load of that state word,
 * which then sees the blocked fibers (the nblocked store comes before the
 * RMW) and the fire arms again itself. A deadlock of plain threads alone,
 * with no task blocked, arms nothing and is not reported.
 *
 * One report per process: the fire that reports leaves diag_armed set (a
 * child of fork() starts over: "fork" below).
 * KANAL_DEADLOCK=abort aborts after it (for tests), =off disables it.
 *
 * The stall report (KANAL_STALL_MS=N, off by default: then nothing of it
 * runs). A timer entry every N/4 ms looks at each worker's running task
 * and progress (tasks run + switches): a worker whose task and progress
 * have not changed for N ms, and whose task is not blocked, runs a task
 * that neither blocked nor yielded for that long; it is said once, with
 * the tasks queued behind it on that worker.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"

/* ---- the registry of live pools ---------------------------------------- */

static struct lock registry_lock = LOCK_INIT;
static kn_pool *registry;

static void env_read(void);
static void stall_start(void);
static void helper_restart(void);

void diag_pool_new(kn_pool *p)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, env_read);
	helper_restart();
	lock_acquire(&registry_lock, LOCK_REGISTRY);
	p->dump_next = registry;
	registry = p;
	lock_release(&registry_lock);
	stall_start();
}

void diag_pool_free(kn_pool *p)
{
	kn_pool **at;

	lock_acquire(&registry_lock, LOCK_REGISTRY);
	for (at = &registry; *at; at = &(*at)->dump_next) {
		if (*at == p) {
			*at = p->dump_next;
			break;
		}
	}
	lock_release(&registry_lock);
}

/* ---- kn_dump --------------------------------------------------------------- */

static uint64_t worker_progress(struct worker *w)
{
	return at_load_relaxed(&w->n_run) + at_load_relaxed(&w->n_switch);
}

/* The worker running t, or -1. */
static int running_on(kn_pool *p, struct kn_task *t)
{
	struct worker *w;

	pool_for_each_worker(p, w)
		if (at_load_acquire(&w->running) == t)
			return (int)w->index;
	return -1;
}

static void dump_wait(FILE *out, uint64_t on, uint64_t since, uint64_t now)
{
	unsigned kind = wait_kind(on);

	fprintf(out, "blocked on %s", wait_kind_name(kind));
	if (kind == WAIT_FD)
		fprintf(out, " %lu", (unsigned long)wait_obj(on));
	else if (wait_obj(on))
		fprintf(out, " %#lx", (unsigned long)wait_obj(on));
	fprintf(out, " for %llu ms", (unsigned long long)(now > since ? (now - since) / 1000000 : 0));
}

/* Where the task was spawned: the object that made the call and the
 * offset in it (what addr2line -e takes, for a position-independent
 * object), and the address. */
static void dump_site(FILE *out, const void *site)
{
	Dl_info info;

	if (!site)
		return;
	if (dladdr(site, &info) && info.dli_fname)
		fprintf(out, ", spawned at %s(+%#lx) [%p]", info.dli_fname,
			(unsigned long)((uintptr_t)site - (uintptr_t)info.dli_fbase), site);
	else
		fprintf(out, ", spawned at [%p]", site);
}

/* One line for t if it is a live task of p. */
static void dump_task(FILE *out, kn_pool *p, struct kn_task *t, uint64_t now)
{
	uint64_t id = at_load_relaxed(&t->diag.id), on, since;
	const char *name;
	int wi;

	if (!id || at_load_relaxed(&t->diag.pool) != p)
		return;
	name = at_load_relaxed(&t->diag.name);
	since = at_load_relaxed(&t->diag.since);
	on = at_load_relaxed(&t->diag.on);
	fprintf(out, "  task %llu \"%s\": ", (unsigned long long)id, name ? name : "");
	if (on)
		dump_wait(out, on, since, now);
	else if ((wi = running_on(p, t)) >= 0)
		fprintf(out, "running on worker %d", wi);
	else
		fprintf(out, "runnable");
	dump_site(out, at_load_relaxed(&t->diag.site));
	fputc('\n', out);
}

static void dump_tasks(FILE *out, kn_pool *p, uint64_t now)
{
	struct task_chunk *c;
	unsigned i;

	for (c = task_chunks(); c; c = c->next)
		for (i = 0; i < TASK_CHUNK; i++)
			dump_task(out, p, &c->t[i], now);
}

static void dump_pool(FILE *out, kn_pool *p, uint64_t now)
{
	struct kn_pool_stats st;
	struct worker *w;

	kn_pool_stats(p, &st);
	fprintf(out, "pool \"%s\" (%p): %u workers, %u threads, %lld queued from outside; "
		"%llu tasks run, %llu steals, %llu parks, %llu switches, %llu spares "
		"started, %llu stack bytes\n", p->name, (void *)p, st.workers, st.threads,
		(long long)at_load_relaxed(&p->pending), (unsigned long long)st.tasks_run,
		(unsigned long long)st.steals, (unsigned long long)st.parks,
		(unsigned long long)st.switches, (unsigned long long)st.spares_started,
		(unsigned long long)st.stack_bytes);
	pool_for_each_worker(p, w) {
		struct kn_task *t = at_load_acquire(&w->running);

		fprintf(out, "  worker %u: ", w->index);
		if (t)
			fprintf(out, "running task %llu",
				(unsigned long long)at_load_relaxed(&t->diag.id));
		else if (at_load_relaxed(&w->asleep))
			fprintf(out, "asleep");
		else
			fprintf(out, "awake, no task running");
		fprintf(out, ", %lld queued, %llu suspended (blocked or runnable)\n",
			(long long)deque_len(&w->dq),
			(unsigned long long)at_load_relaxed(&w->nblocked));
	}
	dump_tasks(out, p, now);
}

struct dump_threads {
	FILE *out;
	uint64_t now;
	unsigned asleep;
};

/* A thread outside the pools, if it is asleep in a kanal call: its id,
 * its name (/proc: the record is linked, so the thread has not exited). */
static void dump_thread(const struct plain_wait *pw, void *arg)
{
	struct dump_threads *d = arg;
	uint64_t since = at_load_relaxed(&pw->since), on = at_load_relaxed(&pw->on);
	char path[64], name[32] = "";
	ssize_t n;
	int fd;

	if (!on)
		return;
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", pw->tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, name, sizeof(name) - 1) : 0;
	if (fd >= 0)
		close(fd);
	name[n > 0 ? n - (name[n - 1] == '\n') : 0] = 0;
	fprintf(d->out, "thread %d \"%s\" (outside the pools): ", pw->tid, name);
	dump_wait(d->out, on, since, d->now);
	fputc('\n', d->out);
	d->asleep++;
}

int kn_dump(FILE *out)
{
	struct dump_threads d = { out, kn_now_coarse(), 0 };
	kn_pool *p;

	if (!out)
		return EINVAL;
	lock_acquire(&registry_lock, LOCK_REGISTRY);
	for (p = registry; p; p = p->dump_next)
		dump_pool(out, p, d.now);
	lock_release(&registry_lock);
	waiter_plain_each(dump_thread, &d);
	fprintf(out, "threads outside the pools asleep in kanal calls: %u\n", d.asleep);
	fflush(out);
	return 0;
}

/* ---- the dump on a signal ------------------------------------------------- */

static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;
static int signal_pipe[2] = { -1, -1 };
static _Atomic uint32_t dump_helpers; /* the helper thread, once started */
/* A child of fork() whose parent had the helper: its first pool starts
 * one of its own (see "fork"). With signal_lock. */
static bool helper_again;

static void on_dump_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	(void)!write(signal_pipe[1], &c, 1);
	errno = saved;
}

static void *dump_helper(void *unused)
{
	char buf[64];
	ssize_t n;

	(void)unused;
	pthread_setname_np(pthread_self(), "kn-dump");
	for (;;) {
		n = read(signal_pipe[0], buf, sizeof(buf));
		if (n > 0)
			kn_dump(stderr);
		else if (n == 0 || errno != EINTR)
			return NULL;
	}
}

/* With signal_lock: the pipe and its reader. Signals go to the
 * application's threads, not to the helper (as for the timer thread). */
static int helper_start(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (signal_pipe[0] >= 0)
		return 0;
	if (pipe2(signal_pipe, O_CLOEXEC))
		return errno;
	if (fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK) ||
	    pthread_attr_init(&attr)) {
		r = errno;
		goto fail;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = thread_create(&t, &attr, dump_helper, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!r) {
		at_store_release(&dump_helpers, 1);
		return 0;
	}
fail:
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	signal_pipe[0] = signal_pipe[1] = -1;
	return r;
}

static void helper_restart(void)
{
	pthread_mutex_lock(&signal_lock);
	if (helper_again && !helper_start())
		helper_again = false;
	pthread_mutex_unlock(&signal_lock);
}

int kn_dump_on_signal(int sig)
{
	struct sigaction sa;
	int r;

	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
		return EINVAL;
	pthread_mutex_lock(&signal_lock);
	r = helper_start();
	if (!r) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_dump_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, NULL))
			r = errno;
	}
	pthread_mutex_unlock(&signal_lock);
	return r;
}

/* KANAL_DUMP_SIGNAL: a number, or a name with or without "SIG". */
static int signal_number(const char *s)
{
	char *end;
	long v;
	int i;

	if (!strncmp(s, "SIG", 3))
		s += 3;
	v = strtol(s, &end, 10);
	if (end != s && !*end)
		return v > 0 && v < NSIG ? (int)v : -1;
	for (i = 1; i < NSIG; i++) {
		const char *name = sigabbrev_np(i);

		if (name && !strcmp(name, s))
			return i;
	}
	return -1;
}

/* ---- the deadlock report ------------------------------------------------ */

#define DL_PERIOD_NS 1000000000ull

/* ThreadSanitizer's background thread, started with the process's first
 * pthread_create (so whenever a pool exists), sleeps in nanosleep: a
 * known thread that wakes nobody. */
#ifdef KN_TSAN
#define KN_TSAN_THREADS 1
#else
#define KN_TSAN_THREADS 0
#endif

enum { DL_REPORT, DL_ABORT, DL_OFF };

static struct timer_entry stall_entry; /* the stall report's (below) */

static int dl_mode = DL_OFF; /* until env_read */
static struct timer_entry dl_entry;
/* The check is pending (or will never run: off, reported, no timer
 * thread); "Arming" above says who sets it. Set until env_read. */
_Atomic uint32_t diag_armed = 1;

struct dl_look {
	uint64_t sleep;    /* the sleep word */
	uint64_t progress; /* every pool's tasks run and switches */
};
/* The timer thread's only. */
static struct dl_look dl_last;
static bool dl_have_last;
static bool dl_done; /* reported: a fire of an entry armed meanwhile ends */

static void dl_fire(struct timer_entry *e);

void diag_arm(void)
{
	if (at_xchg_seq_cst(&diag_armed, 1))
		return;
	/* No timer thread: no reports (the flag stays set). */
	(void)timer_add(&dl_entry, kn_now() + DL_PERIOD_NS, dl_fire);
}

/* Threads in this process (/proc/self/stat's 20th field), or 0. */
static unsigned proc_threads(void)
{
	char buf[1024], *p;
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	for (field = 2; p && field < 20; field++)
		p = strchr(p + 1, ' ');
	return p ? (unsigned)strtoul(p + 1, NULL, 10) : 0;
}

/* Is a task blocked (suspended or asleep on its thread), or a thread
 * outside the pools asleep in kanal? seq_cst loads of each state word:
 * the fire's half of the arming argument. With registry_lock. */
static bool dl_blocked(uint64_t sleep, uint64_t *progress)
{
	bool blocked = sleep_plain(sleep) > 0;
	struct worker *w;
	kn_pool *p;

	*progress = 0;
	for (p = registry; p; p = p->dump_next) {
		if (inherited(p))
			continue;
		blocked |= st_blocked(at_load_seq_cst(&p->state)) > 0;
		pool_for_each_worker(p, w) {
			blocked |= at_load_relaxed(&w->nblocked) > 0;
			*progress += worker_progress(w);
		}
	}
	return blocked;
}

/* Every thread but the known awake ones asleep without a deadline, and
 * no timer pending but the stall check's (the essay's first look). */
static bool dl_all_asleep(uint64_t *sleep)
{
	unsigned known = 1 + at_load_acquire(&dump_helpers) + (KN_TSAN_THREADS);
	uint64_t s1 = waiter_sleep_word(), s2;
	unsigned n;

	if (timer_others_pending(&stall_entry))
		return false;
	n = proc_threads();
	s2 = waiter_sleep_word();
	*sleep = s1;
	return s1 == s2 && n && sleep_all(s1) + known == n;
}

static void dl_report(void)
{
	fprintf(stderr, "kanal: deadlock: for a second every thread has been asleep "
		"in a kanal wait that nothing can end (no deadline, no fd, no thread "
		"outside kanal); every task:\n");
	kn_dump(stderr);
	if (dl_mode == DL_ABORT)
		abort();
}

static void dl_fire(struct timer_entry *e)
{
	struct dl_look now = { 0, 0 };
	bool asleep, blocked;

	(void)e;
	if (dl_done)
		return;
	at_store_seq_cst(&diag_armed, 0);
	lock_acquire(&registry_lock, LOCK_REGISTRY);
	blocked = dl_blocked(waiter_sleep_word(), &now.progress);
	lock_release(&registry_lock);
	/* The costly look (/proc) only with something blocked. */
	asleep = blocked && dl_all_asleep(&now.sleep);
	if (asleep && blocked && dl_have_last && dl_last.sleep == now.sleep &&
	    dl_last.progress == now.progress) {
		at_store_seq_cst(&diag_armed, 1); /* one report */
		dl_done = true;
		dl_report();
		return;
	}
	dl_have_last = asleep && blocked;
	dl_last = now;
	if (blocked)
		diag_arm();
}

/* ---- the stall report ---------------------------------------------------- */

#define STALL_IDS 8 /* queued task ids named, at most */

static uint64_t stall_ns; /* 0: off */
static _Atomic uint32_t stall_armed;

static void stall_say(kn_pool *p, struct worker *w, struct kn_task *t,
		      uint64_t ran)
{
	const char *name = at_load_relaxed(&t->diag.name);
	void *items[STALL_IDS];
	int64_t i, n = deque_peek(&w->dq, items, STALL_IDS);

	fprintf(stderr, "kanal: stall: task %llu \"%s\" has run for %llu ms on worker %u "
		"of pool \"%s\" without blocking or yielding; %lld tasks queued behind it",
		(unsigned long long)at_load_relaxed(&t->diag.id), name ? name : "",
		(unsigned long long)(ran / 1000000), w->index, p->name,
		(long long)deque_len(&w->dq));
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s%llu", i ? ", " : " (ids ",
			(unsigned long long)at_load_relaxed(&dq_task(items[i])->diag.id));
	fprintf(stderr, "%s, %llu suspended\n", n ? ")" : "",
		(unsigned long long)at_load_relaxed(&w->nblocked));
}

static void stall_look(kn_pool *p, struct worker *w, uint64_t now)
{
	struct kn_task *t = at_load_acquire(&w->running);
	uint64_t mark = worker_progress(w);

	if (!t || at_load_relaxed(&t->diag.on) || mark != w->stall_mark) {
		w->stall_mark = mark;
		w->stall_since = now;
		w->stall_said = false;
		return;
	}
	if (!w->stall_said && now - w->stall_since >= stall_ns) {
		w->stall_said = true;
		stall_say(p, w, t, now - w->stall_since);
	}
}

static void stall_fire(struct timer_entry *e)
{
	uint64_t now = kn_now(), period = stall_ns / 4;
	bool any = false;
	struct worker *w;
	kn_pool *p;

	(void)e;
	lock_acquire(&registry_lock, LOCK_REGISTRY);
	for (p = registry; p; p = p->dump_next) {
		if (inherited(p))
			continue;
		any = true;
		pool_for_each_worker(p, w)
			stall_look(p, w, now);
	}
	/* Armed while a pool lives; the next pool arms it again. */
	at_store_release(&stall_armed, any && timer_add(&stall_entry,
		now + (period > 1000000 ? period : 1000000), stall_fire) == 0);
	lock_release(&registry_lock);
}

static void stall_start(void)
{
	if (!stall_ns || at_xchg_acq_rel(&stall_armed, 1))
		return;
	if (timer_add(&stall_entry, kn_now() + stall_ns / 4, stall_fire))
		at_store_release(&stall_armed, 0);
}

/* ---- fork ------------------------------------------------------------------ */

/*
 * A child of fork() (pool.c, "fork") has one thread: neither the timer
 * thread, which may have been running a fire of the watchers, nor the
 * dump helper. So its watchers start over. An entry of theirs in the
 * heap it inherited is taken out (the timer's child handler has run
 * before this one, and released the heap lock held across the fork);
 * neither is armed, and no deadlock has been reported: the child's first
 * worker that sleeps with tasks blocked arms the deadlock check, its
 * first pool the stall check. The dump helper's count goes (the deadlock
 * check counts the threads it knows of), and so do the pipe, shared with
 * the parent (a signal to the child would have the parent dump itself):
 * the child's first pool makes both again, the handler staying installed.
 * signal_lock is held across the fork, as pool.c holds default_lock
 * (a pool's creation takes it inside default_lock: the same order).
 */
void diag_fork_prepare(void)
{
	pthread_mutex_lock(&signal_lock);
}

void diag_fork_parent(void)
{
	pthread_mutex_unlock(&signal_lock);
}

/* A watcher's entry gone from the child's heap, and its flag cleared
 * (left set while it must stay unarmed). */
static void watcher_forget(struct timer_entry *e, _Atomic uint32_t *armed, bool stay)
{
	(void)timer_remove(e);
	at_store_relaxed(armed, stay);
}

void diag_fork_child(void)
{
	registry_lock = (struct lock)LOCK_INIT;
	waiter_sleep_forget();
	pthread_mutex_init(&signal_lock, NULL);
	if (signal_pipe[0] >= 0) {
		close(signal_pipe[0]);
		close(signal_pipe[1]);
		signal_pipe[0] = signal_pipe[1] = -1;
		at_store_relaxed(&dump_helpers, 0);
		helper_again = true;
	}
	watcher_forget(&dl_entry, &diag_armed, dl_mode == DL_OFF);
	dl_done = dl_have_last = false;
	watcher_forget(&stall_entry, &stall_armed, false);
}

/* ---- the environment, read at the first pool's creation ------------------- */

static void env_read(void)
{
	const char *dl = getenv("KANAL_DEADLOCK"), *st = getenv("KANAL_STALL_MS");
	const char *sig = getenv("KANAL_DUMP_SIGNAL");
	char *end;
	unsigned long ms;
	int n;

	dl_mode = !dl || !*dl || !strcmp(dl, "report") ? DL_REPORT :
		  !strcmp(dl, "abort") ? DL_ABORT : DL_OFF;
	if (dl_mode != DL_OFF)
		at_store_release(&diag_armed, 0);
	if (st && *st) {
		ms = strtoul(st, &end, 10);
		if (!*end && ms > 0 && ms < 1000000000ul)
			stall_ns = ms * 1000000ull;
	}
	if (sig && *sig) {
		n = signal_number(sig);
		if (n < 0 || kn_dump_on_signal(n))
			fprintf(stderr, "kanal: KANAL_DUMP_SIGNAL=%s: not a signal kanal "
				"can take\n", sig);
	}
}

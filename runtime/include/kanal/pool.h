/*
 * kanal/pool.h - a work-stealing pool of worker threads (Go's "go f()").
 *
 * A pool runs tasks, calls fn(arg), on N worker threads (default: the CPUs
 * of the process's affinity mask). Each worker owns a work-stealing deque:
 * a task spawned from inside a task of the same pool goes onto the
 * spawning worker's deque (newest first for its owner, oldest first for
 * thieves); a task spawned from any other thread goes through the pool's
 * injector queue. An idle worker looks for work for a short while (at most
 * half of the workers search at once), then parks; a new task wakes a
 * parked worker only when no worker is searching. An idle pool makes no
 * system call and burns no CPU: there are no periodic wake-ups.
 *
 * Placement. A suspended task resumes on the worker that first ran it, so
 * where a task starts decides which tasks share a core for good. A few
 * detached tasks (at most 32) queued on a worker that keeps switching or
 * finishing tasks are left to it for up to 100 us: a generator, a pipeline
 * or a worker pool spawned by one task then runs on one core, where every
 * hand-off is a user-space switch. Joinable tasks (fork-join), deeper
 * queues and the queue of a worker busy in one long task are stolen at
 * once (long: 20 us). When queued tasks and runnable (woken) tasks both
 * wait on a worker, up to 16 queued ones run first, then a woken one.
 *
 * Tasks may block. When a task blocks in a kanal call (a channel, select,
 * semaphore, context, wait group, group or join, a sleep (kanal/time.h) or
 * a file descriptor (kanal/net.h); with a deadline, a context or neither),
 * it is suspended like a goroutine: its worker thread switches
 * to another stack (a fiber, in user space: no system call) and goes on
 * running other tasks; whoever completes the wait makes the task runnable
 * again, and it resumes on the same worker thread, with its own errno
 * (other thread-locals are the thread's, shared by its tasks).
 *
 * Stacks. Every task runs on a stack of stack_size bytes (a few hundred
 * bytes less: the worker loop's frames lie below it), whatever ran before
 * it on its worker; only a task that blocks keeps its stack while it
 * waits. Stacks come from per-worker caches backed by the pool's arenas
 * (mappings of up to 64 stacks, untouched pages cost no memory): in steady
 * state a suspension makes no system call and no allocation, and the
 * number of suspended tasks is bounded by memory, not by the kernel's
 * mapping limit. Memory of stacks freed in a burst goes back to the
 * kernel (one madvise per 64 stacks) beyond a reserve of two arenas, not
 * while the burst's tasks resume and end but once every worker of the
 * pool is idle or blocked (a pool that is never idle keeps its free
 * stacks mapped for its next burst). A blocked task costs its stack's
 * touched pages (one or two when it blocks shallow) plus its task record.
 *
 * A task that needs more stack than its pool's (deep recursion, large
 * frames) is spawned with kn_spawn_opts.stack_size (kn_pool_spawn_opts,
 * kn_pool_spawn_task_opts, kn_go_opts): its stack, of at least that size, is taken at the spawn
 * from the pool's larger size classes (the pool's stack_size times 2, 4,
 * 8, ... up to KN_POOL_MAX_STACK; one mutex per class, no per-worker
 * cache; an arena whose stacks are all free is given back at once) and
 * the task runs on it from its start, its worker switching to it and back
 * (two user-space switches). A stack_size at most the pool's costs
 * nothing: the task runs as any.
 *
 * Stack overflow. The process's first 8192 stacks have a guard page; an
 * access there kills the process (SIGSEGV) after a message on stderr
 * naming the pool and its stack_size ("kanal: task stack overflow ..."),
 * printed from kanal's SIGSEGV handler on an alternate signal stack
 * (installed only if the program left SIGSEGV at its default; sanitizers
 * report it their own way). Beyond 8192 stacks (guard pages cost a kernel
 * mapping each) and for frames larger than a page in code built without
 * -fstack-clash-protection (build your code with it: a frame that jumps
 * the guard page writes into another task's stack), the overrun is caught
 * at the task's or its victim's next switch (the stack pointer, and a
 * magic word at the top of every stack's record), with the same message
 * and abort(). A task with large frames or deep recursion needs a pool
 * with a larger stack_size.
 *
 * A task on a pool made with no_fibers, or a suspension for which no stack
 * can be had (out of memory: counted in stack_failures, said once on
 * stderr; or no timer set), blocks the worker thread instead: it
 * lets a spare thread take its place, up to max_spare spare threads, so
 * that the pool keeps N threads running tasks. Spare threads stay parked,
 * ready for the next block, until shutdown. A spare that cannot be started
 * (EAGAIN: a thread limit) is tried again after 1 ms, then 2, 4, ... up to
 * 1 s apart, for as long as the pool is short of running threads with
 * tasks queued (on kanal's timer thread; if that cannot start either, at
 * the next spawn or block). Out of memory, a worker with
 * suspended tasks starts a new task only once it holds a spare stack (else
 * it only resumes its own tasks): a task that slept on the thread could
 * wait for one of them. The one exception: the process's first deadline
 * starts kanal's timer thread, and if that thread cannot be created, a
 * suspension with a deadline sleeps on its thread, whose other suspended
 * tasks then wait until that deadline. A task
 * that blocks outside kanal (a raw system call, a pthread mutex) holds its
 * worker like any long computation, and so do the suspended tasks that are
 * to resume on that worker. Hence: do not hold an OS lock (a pthread mutex)
 * across a blocking kanal call in a task, since another task on the same
 * thread may wait for it; use kanal/sync.h's kn_mutex (or kn_rwmutex,
 * kn_cond), whose waiters are suspended like any kanal wait.
 *
 * Joining a task from inside a task of the same pool helps: while the
 * joined task is not finished, the joiner runs tasks from its own deque
 * (tasks spawned after the joined one by the joining task and the tasks it
 * ran) and steals from the worker that took the joined task ("leapfrogging":
 * those are the joined task's own subtasks). So nested fork-join never
 * deadlocks and never needs spare threads while there is work to help
 * with; when there is none, the joiner blocks like any kanal call. A
 * thread that is not a worker of the task's pool just blocks. The tasks a
 * join runs execute on the joiner's stack: a task that waits for something
 * its own joining ancestor does only after the join returns (rather than
 * for its own subtasks) would wait forever, so spawn such a consumer before
 * the task you join, or from another task.
 *
 * Tasks run only on worker threads. A pool's memory is its own: kanal
 * uses no process-wide reclamation (no RCU grace periods), so freeing a
 * pool waits for its own threads only, never for another pool's tasks.
 *
 * fork(). The child has one thread and none of the parent's workers: it
 * may make and free new pools and use kn_go (the default pool is made again
 * in the child), but the pools it inherited do not run there. Calls that
 * need an inherited pool's threads return ECHILD (spawn, spawn_task,
 * wait_idle, shutdown, and the join of a task that had not finished at the
 * fork); kn_pool_free of one frees nothing (its threads cannot be joined)
 * and kn_pool_stats reads the copy. The deadlock and stall reports start
 * over in the child (its own checks, its own report), and a dump signal
 * set in the parent gets a helper of the child's own at its first pool.
 * A child forked from inside a task may only exec or _exit.
 *
 * Return values: 0, or
 *   EINVAL   a NULL pool or function, or a call that would wait for the
 *            calling task itself (wait_idle, shutdown or free from a task of
 *            the same pool)
 *   EPIPE    the pool is shut down (spawn from outside its workers; a second
 *            shutdown)
 *   ENOMEM   no memory for the task record or a thread
 *   ECANCELED  kn_task_join: the task was dropped by an immediate shutdown
 *   ECHILD   in a child of fork(): the pool was made before the fork
 *
 * Synchronization table
 *
 *   call                 may run concurrently with         blocks   cost (steady state)
 *   kn_pool_spawn        everything but free                no       inside: a deque push (one
 *                                                                    seq_cst store) + one load;
 *                                                                    outside: 1 RMW + the
 *                                                                    injector's xchg;
 *                                                                    a wake-up only if nobody
 *                                                                    searches; no allocation
 *   kn_pool_spawn_task   as spawn                           no       as spawn
 *   kn_task_join         everything (one join per task)     yes      helps first
 *   kn_pool_wait_idle    everything but free/shutdown       yes      waiter layer
 *   kn_pool_shutdown     spawn, join, wait_idle, stats      yes      joins the threads
 *   kn_pool_free         nothing on this pool               yes      shutdown if needed
 *   kn_pool_stats        everything but free                no       reads per-worker counters
 *   kn_pool_current      everything                         no       one thread-local load
 *   kn_go                everything                         no       kn_pool_spawn on the
 *                                                                    default pool
 *   kn_*_named, kn_*_opts as kn_pool_spawn / kn_go          no       as spawn; a stack_size
 *                                                                    above the pool's: a
 *                                                                    class mutex, 2 switches
 *   kn_task_id/_name     everything                         no       one thread-local load
 *   kn_task_set_name     everything (own task only)         no       one store
 *   kn_dump              everything                         no       a global lock (kn_pool_free
 *                                                                    waits), stdio, a walk of
 *                                                                    every task record
 *   kn_dump_on_signal    everything                         no       a pipe, a thread (first call)
 *   kn_trace_flush       everything                         no       a mutex, stdio; reads the
 *                                                                    rings as they fill
 *   kn_default_pool      everything                         no       one acquire load
 *   kn_default_pool_set  everything                         no       a mutex
 *
 * Memory order: everything before a spawn happens-before the task's start;
 * the task's end happens-before its join returns, and before a wait_idle
 * that sees the pool idle returns.
 */
#ifndef KANAL_POOL_H
#define KANAL_POOL_H

#include <stdio.h>

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_pool kn_pool;
typedef struct kn_task kn_task;

/* Spare threads of a pool whose options leave max_spare at 0. */
#define KN_POOL_DEFAULT_SPARE 64
/* max_spare value for "never start a spare thread". */
#define KN_POOL_NO_SPARE (-1)
/* Stack of a suspended task of a pool whose options leave stack_size at 0;
 * smaller sizes are raised to the minimum. */
#define KN_POOL_DEFAULT_STACK ((size_t)256 * 1024)
#define KN_POOL_MIN_STACK ((size_t)16 * 1024)
/* The largest stack_size (1 GiB); kn_pool_new refuses more with EINVAL. */
#define KN_POOL_MAX_STACK ((size_t)1 << 30)

struct kn_pool_opts {
	unsigned workers;   /* N, threads running tasks; 0 = the CPUs of
			       the process's affinity mask */
	int max_spare;      /* 0 = KN_POOL_DEFAULT_SPARE; KN_POOL_NO_SPARE */
	const char *name;   /* thread name prefix ("name-N"), NULL = "kanal";
			       cut to fit the 15 bytes Linux keeps */
	/* Run on each worker thread (spares included) when it starts and
	 * before it ends; index is the worker's number, 0 up. May be NULL. */
	void (*on_start)(kn_pool *pool, unsigned index, void *arg);
	void (*on_stop)(kn_pool *pool, unsigned index, void *arg);
	void *hook_arg;
	size_t stack_size;  /* of a task's stack; 0 = KN_POOL_DEFAULT_STACK;
			       at most KN_POOL_MAX_STACK */
	bool no_fibers;     /* blocked tasks block their thread (spares
			       take its place) instead of switching */
};

struct kn_pool_stats {
	uint64_t tasks_run;      /* tasks that ran to completion */
	uint64_t steals;         /* tasks taken from another worker's deque */
	uint64_t parks;          /* times a worker went to sleep idle */
	uint64_t spares_started; /* spare threads started */
	uint64_t switches;       /* fiber switches (tasks blocked, resumed) */
	unsigned workers;        /* N */
	unsigned threads;        /* threads started so far: N + spares */
	uint64_t stack_bytes;    /* task stacks mapped now (virtual) */
	uint64_t stack_failures; /* suspensions that found no memory for a
				    stack (the task held its thread), and
				    spawns refused one (kn_spawn_opts) */
};

/*
 * A new pool with its N worker threads started (they park at once).
 * opts NULL: defaults. NULL with errno EINVAL (workers or max_spare too
 * large: more than 4096 threads in all; stack_size above
 * KN_POOL_MAX_STACK), ENOMEM, EAGAIN (no thread).
 */
KN_API kn_pool *kn_pool_new(const struct kn_pool_opts *opts);

/*
 * Run fn(arg) on the pool, soon. Non-blocking. 0, EINVAL, EPIPE (the pool
 * is shutting down and the caller is not one of its workers), ENOMEM.
 */
KN_API int kn_pool_spawn(kn_pool *pool, void (*fn)(void *), void *arg);

/*
 * As kn_pool_spawn, returning a handle that must be joined exactly once.
 * NULL with errno EINVAL, EPIPE, ENOMEM, ECHILD. With a name or a stack
 * size: kn_pool_spawn_task_opts (below).
 */
KN_API kn_task *kn_pool_spawn_task(kn_pool *pool, void (*fn)(void *), void *arg);

/*
 * Wait until the task has run (0) or was dropped by an immediate shutdown
 * (ECANCELED), and free the handle. Helps while it waits (see above).
 * EINVAL for NULL.
 */
KN_API int kn_task_join(kn_task *task);

/*
 * Wait until the pool is idle: no task queued or running, every worker
 * parked. Tasks spawned concurrently with the call may or may not be waited
 * for. 0, or EINVAL (NULL, or called from a task of this pool). Returns 0 at
 * once on a pool that has been shut down.
 */
KN_API int kn_pool_wait_idle(kn_pool *pool);

/*
 * Stop the pool: spawns from outside its workers fail with EPIPE from now
 * on. drain true: let every queued task run (tasks may still spawn
 * subtasks), then stop the threads. drain false: every worker finishes the
 * task it is running, then stops; the tasks not started are dropped (their
 * joins return ECANCELED) and *dropped (may be NULL) gets their number.
 * Waits for running tasks: a task blocked forever keeps it waiting. 0,
 * EINVAL (NULL, or from a task of this pool), EPIPE (already shut down).
 */
KN_API int kn_pool_shutdown(kn_pool *pool, bool drain, size_t *dropped);

/* Shut down (draining) if not done yet, and free. NULL is a no-op. No other
 * call on the pool may be running or start; a call from one of its own
 * tasks does nothing. */
KN_API void kn_pool_free(kn_pool *pool);

/* Counters since creation (relaxed snapshots). 0 or EINVAL. */
KN_API int kn_pool_stats(kn_pool *pool, struct kn_pool_stats *stats);

/* The pool whose worker is calling, or NULL on any other thread. */
KN_API kn_pool *kn_pool_current(void);

/*
 * Go's "go fn(arg)": kn_pool_spawn on the process-wide default pool, made
 * by the first call of kn_go or kn_default_pool and never freed. 0,
 * EINVAL (NULL fn; or the default pool's options are invalid, e.g. a
 * KANAL_STACK_SIZE that is not a size), ENOMEM/EAGAIN (the default pool
 * could not be made), EPIPE (the default pool was shut down through
 * kn_default_pool: it is not made again).
 */
KN_API int kn_go(void (*fn)(void *), void *arg);

/*
 * Task identity. Every task gets an id when spawned: unique in the process
 * (never reused), never 0, not in spawn order. A task may carry a name: a
 * string that is not copied and must stay valid while the task runs (a
 * literal, typically), given at spawn (the _named and _opts forms, otherwise as
 * kn_pool_spawn and kn_go; NULL is no name) or set by the task itself.
 * kn_task_id and kn_task_name answer for the task calling them (also
 * across its suspensions): 0 and NULL on a thread that is not running a
 * task, "" for a task without a name. kn_task_set_name returns EINVAL
 * there. The spawn site (where the spawning call was made) is recorded
 * for kn_dump. Costs: the id is a thread-local increment, the name and
 * the site one store each; all share the record's lines with fields a
 * spawn writes anyway.
 */
KN_API int kn_pool_spawn_named(kn_pool *pool, const char *name,
			       void (*fn)(void *), void *arg);
KN_API int kn_go_named(const char *name, void (*fn)(void *), void *arg);
KN_API uint64_t kn_task_id(void);
KN_API const char *kn_task_name(void);

/*
 * Options of one spawn; zeroed fields are the defaults (NULL opts: all).
 */
struct kn_spawn_opts {
	const char *name;   /* as the _named forms' (not copied) */
	size_t stack_size;  /* at least this much stack for the task: 0 or at
			       most the pool's stack_size = the pool's; more
			       = a stack of its own from the pool's larger
			       classes (see "Stacks"); at most
			       KN_POOL_MAX_STACK */
};

/*
 * kn_pool_spawn and kn_go with options. 0; EINVAL: as kn_pool_spawn and
 * kn_go, or a stack_size above KN_POOL_MAX_STACK, or a nonzero stack_size
 * on a pool without fibers (no_fibers: tasks run on the threads' own
 * stacks); ENOMEM: no memory for the record or for a stack of that size
 * (counted in stack_failures); EPIPE, ECHILD as kn_pool_spawn (ECHILD
 * before any stack is taken).
 */
KN_API int kn_pool_spawn_opts(kn_pool *pool, const struct kn_spawn_opts *opts,
			      void (*fn)(void *), void *arg);
KN_API int kn_go_opts(const struct kn_spawn_opts *opts, void (*fn)(void *),
		      void *arg);

/*
 * kn_pool_spawn_task with options: a handle to join exactly once
 * (kn_task_join), for a task that has the name and stack of opts (NULL:
 * the defaults) as kn_pool_spawn_opts gives them. NULL with errno set to
 * what kn_pool_spawn_opts would return: EINVAL, ENOMEM, EPIPE, ECHILD.
 * Costs as kn_pool_spawn_opts; a joinable task also initialises its join
 * queue (three stores). kn_pool_spawn_task is this call with NULL opts.
 */
KN_API kn_task *kn_pool_spawn_task_opts(kn_pool *pool,
					const struct kn_spawn_opts *opts,
					void (*fn)(void *), void *arg);

/*
 * Seeing inside (Go's SIGQUIT dump, deadlock detector; Seastar's stall
 * notice). kn_dump prints every live pool to out (what a hung program is
 * doing): per pool its name, counters (kn_pool_stats) and tasks queued
 * from outside; per worker its state (running task N, asleep, or awake
 * with no task: searching, or between tasks), the tasks queued on it and
 * its suspended tasks; then every live task of the pool,
 * one line each:
 *
 *   task 12 "parser": blocked on chan recv 0x5581c0a2e600 for 2008 ms,
 *     spawned at ./server(+0x2f4c) [0x5581bf8c3f4c]
 *   task 13 "": running on worker 1, spawned at ./server(+0x3010) [...]
 *   task 14 "writer": runnable, spawned at ./server(+0x2f9b) [...]
 *
 * (one line each, cut here; blocked on: chan send, chan recv, select (its
 * first case's channel), semaphore, mutex, rwmutex, cond, once, context,
 * waitgroup, group, join, pool idle, sleep, fd N; the time is the coarse
 * clock's, a few ms; spawned at: the object and offset of an address
 * inside the call that spawned the task (kn_pool_spawn*, kn_go*,
 * kn_group_go; the patterns' tasks name kanal's own call), for
 * "addr2line -e ./server 0x2f4c" in a position-independent executable,
 * and the address); then every thread outside the pools that is asleep
 * in a kanal call (a plain thread's kn_chan_recv, main's
 * kn_pool_wait_idle, with a deadline or without), with its id, its name
 * and the same account of its wait:
 *
 *   thread 4242 "reader" (outside the pools): blocked on fd 7 for 12 ms
 *
 * and last their number. A snapshot: it takes two global locks in turn
 * (the registry of pools, which kn_pool_free takes too, so a pool it
 * prints stays; the list of those threads' records, which a thread's
 * exit takes, so a record it prints stays) and reads every other figure
 * with a relaxed load, stopping nothing; each line is true
 * when read, and a task may have moved on since (one woken and not yet
 * resumed still shows its wait). May run at any time from any thread
 * (not from a signal handler: it uses stdio; see kn_dump_on_signal),
 * concurrently with every call. 0 or EINVAL. What it costs the tasks: a
 * task that blocks writes what it waits on and when into its record
 * beside its fiber switch (two stores and a clock read of the vDSO page),
 * and a thread outside the pools the same beside its futex sleep (its
 * first such sleep also links its record, under a lock); calls that do
 * not wait pay nothing; a spawn stores its site (one store into a line
 * it writes anyway).
 *
 * The deadlock report (on by default; KANAL_DEADLOCK=abort aborts after
 * it, =off disables it; read at the first pool's creation): when a task
 * is blocked and, for a second, every thread of the process has been
 * asleep in a kanal wait without a deadline (no timer pending but the
 * stall report's, no fd wait, no thread outside kanal, which might still
 * call it), nothing can wake anyone: "kanal: deadlock: ..." and the dump
 * go to stderr, once (once in each child of fork() too). A
 * program that is merely slow (sleeping tasks, computing tasks, a thread
 * about to send) never gets it; the proof is in runtime/src/pool_diag.c.
 * It is checked on kanal's timer thread, armed by a worker that goes to
 * sleep with tasks blocked on it: one look a second while tasks are
 * blocked, none while nothing is, nothing on a task's suspension.
 *
 * The stall report (KANAL_STALL_MS=N, off by default, read at the first
 * pool's creation): a task that runs N ms without blocking or yielding
 * gets one line on stderr, "kanal: stall: task 7 "spinner" has run for
 * 20 ms on worker 0 of pool "kn-go" without blocking or yielding; 2 tasks
 * queued behind it (ids 1025, 1026), 0 suspended". Off, it costs nothing;
 * on, the timer thread looks at every worker each N/4 ms.
 */
KN_API int kn_dump(FILE *out);
KN_API int kn_task_set_name(const char *name);

/*
 * The execution trace. With the environment variable KANAL_TRACE set to a
 * file name when the program starts, every thread records what the
 * scheduler does into a ring of its own: task spawns (with the first 16
 * bytes of the spawn's name), runs per worker (a slice from each start or
 * resumption to the next stop), blocks (what the task waits on and the
 * waiter it will be woken through), wakes (on the waker's thread, an arrow
 * to the woken task's resumption), steals, and the parking and waking of
 * idle workers. The file is written at exit (atexit: not after _exit, an
 * abort or a fatal signal) and by each kn_trace_flush, which replaces it
 * with everything recorded so far: the last 8192 records of each thread
 * (older ones are dropped and counted in otherData.dropped_events), for
 * at most 256 threads. A child of fork writes to "file.PID". The format is
 * Chrome's trace-event JSON (chrome://tracing, ui.perfetto.dev; one event
 * a line); tools/trace-render draws it as an SVG timeline.
 *
 * Cost: when KANAL_TRACE is unset, one predictable branch on a global that
 * is set before main and never changes, at each hook; when set, a record
 * (a cache line of the thread's own ring) per event, no lock, no shared
 * write, and a clock read per record, except that a worker switching
 * between tasks faster than once a microsecond writes one record per
 * switch (the wake before it included; inline, no call) and reads the
 * clock about every 4 microseconds of them (the times in between are
 * interpolated). About 10 ns per round trip of chan_pingpong_unbuffered's
 * two tasks, of about 140 (bench: kanal_go_traced).
 *
 * kn_trace_flush may run at any time from any thread but a signal handler,
 * concurrently with everything (flushes take turns): 0; ENOTSUP when
 * tracing is off; an errno value of opening or writing the file; ENOMEM.
 */
KN_API int kn_trace_flush(void);

/*
 * Print kn_dump(stderr) whenever the process gets signal sig (Go's SIGQUIT
 * goroutine dump), from then on; KANAL_DUMP_SIGNAL=SIGQUIT (a name, with
 * or without "SIG", or a number) in the environment does the same at the
 * first pool's creation. The handler only writes a byte to a pipe; a
 * helper thread ("kn-dump", started by the first call) reads it and
 * prints, so the signal may interrupt anything. It replaces sig's
 * handler (and its default action, e.g. SIGQUIT's core dump). 0, EINVAL
 * (not a signal that can be caught), or the errno of pipe, sigaction or
 * the thread's start.
 */
KN_API int kn_dump_on_signal(int sig);

/*
 * The default pool (kn_go's), made on first use; NULL with errno as kn_go.
 * Its options: those given to kn_default_pool_set, else the defaults with
 * thread names "kn-go-N"; a stack_size left at 0 is taken from the
 * environment variable KANAL_STACK_SIZE when set (bytes, or with a K, M or
 * G suffix: "1M"). Shutting it down is allowed (kn_go then fails with
 * EPIPE); freeing it is not.
 */
KN_API kn_pool *kn_default_pool(void);

/*
 * Set the default pool's options before its first use (opts->name is
 * copied). 0; EINVAL: opts NULL, or the default pool exists already.
 * May run concurrently with kn_go (one of them comes first).
 */
KN_API int kn_default_pool_set(const struct kn_pool_opts *opts);

#ifdef __cplusplus
}
#endif
#endif

/*
 * trace.h - the execution trace (internal; KANAL_TRACE, kn_trace_flush).
 *
 * With the environment variable KANAL_TRACE=file set when the program
 * starts, the layers record what the scheduler does, each thread into a
 * ring of its own (trace.c: no shared write, bounded memory), and the
 * trace is written to file as Chrome trace-event JSON at exit or on
 * kn_trace_flush (kanal/pool.h).
 *
 * Zero cost when off: every hook is TRACE(call), one predictable branch on
 * trace_on, a global set once before main (trace.c's constructor) and
 * never again; the call and its arguments are evaluated only behind it.
 * The hooks sit where the scheduler changes what a thread does, and the
 * wake hook only where a sleeping or suspended waiter is woken (waiter.h):
 * a hand-off to a waiter that is still awake records nothing.
 *
 * Synchronization table
 *
 *   call             may run concurrently with   barrier / cost
 *   trace_* hooks    everything                  none: relaxed stores into
 *                                                the thread's own ring, one
 *                                                release store of its head;
 *                                                a clock read every
 *                                                TRACE_CLOCK_EVERY records
 *                                                (and on the slow ones)
 *   kn_trace_flush   everything                  a mutex (one writer); reads
 *                                                the rings while they fill
 */
#ifndef KN_TRACE_H
#define KN_TRACE_H

#include "platform.h"

/* Set once, before main, when KANAL_TRACE names a file. */
extern _Atomic bool trace_on;

#define TRACE(call)                                                            \
	do {                                                                   \
		if (unlikely(at_load_relaxed(&trace_on)))                      \
			call;                                                  \
	} while (0)

/* A task was spawned from this thread (name: NULL or the caller's string,
 * copied in part). */
void trace_spawn(uint64_t id, const char *name);
/*
 * What a thread holds back for its next record (trace.c, "Recording"):
 * the block of the task about to suspend, a stop followed by a switch
 * straight to another fiber, and, on a busy lane, a wake. The hooks on a
 * fiber switch's path are inline and touch only this.
 */
struct trace_held {
	uint64_t on;         /* the block: what on (WAIT_ON, waiter.h) */
	const void *w;       /* and the waiter */
	const void *woke;    /* a wake held back, or NULL */
	bool stopped;        /* a stop held back */
	bool busy;           /* the lane records fast: hold wakes */
};
extern _Thread_local struct trace_held trace_held;

/* This thread now runs task id, resuming through waiter w (the end of its
 * wake's arrow; NULL: its first run). id 0: the task it ran stopped
 * (ended, yielded or blocked); w not NULL then says that the thread
 * switches straight to another task's fiber (whose resumption records
 * both: held back), NULL that the worker loop comes next. */
void trace_run_record(uint64_t id, const void *w);
static inline void trace_run(uint64_t id, const void *w)
{
	if (!id && w)
		trace_held.stopped = true;
	else
		trace_run_record(id, w);
}

/* The task running here is about to suspend, blocked on on (a WAIT_ON
 * word: decoded only when the trace is written), to be woken through
 * waiter w: kept for the record of its stop, trace_run(0, ...). w NULL:
 * it did not suspend after all. */
static inline void trace_block(uint64_t on, const void *w)
{
	trace_held.on = on;
	trace_held.w = w;
}
/* This thread goes to sleep in the waiter layer, blocked as above (a task
 * that could not suspend, or a thread that is not a worker); trace_woke
 * when it woke up. */
void trace_sleep(uint64_t on, const void *w);
void trace_woke(const void *w);
/* This thread woke the owner of waiter w (asleep or suspended). */
void trace_wake_record(const void *w);
static inline void trace_wake(const void *w)
{
	if (trace_held.busy && !trace_held.woke)
		trace_held.woke = w; /* for the next switch's record */
	else
		trace_wake_record(w);
}
/* This worker took task id from worker victim's deque. */
void trace_steal(uint64_t id, unsigned victim);
/* This worker goes to sleep with nothing to do, on waiter w (park true),
 * or woke (false): the waiter layer's records of the sleep are left out. */
void trace_park(const void *w, bool park);

#endif

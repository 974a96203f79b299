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
 * a hand-off to a waiter that is still awake records nothing. A fiber
 * switch on a busy worker (a stop, the wake before it, the resumption) is
 * one record, written inline by trace_run.
 *
 * Synchronization table
 *
 *   call             may run concurrently with   barrier / cost
 *   trace_* hooks    everything                  none: release stores into
 *                                                the thread's own ring; a
 *                                                clock read every few
 *                                                microseconds of switches
 *                                                on a busy lane (and on
 *                                                every other record)
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

/* A ring's record (trace.c: "Recording"; here for trace_run, which
 * writes a switch's inline): a stamp (its position and kind), the clock
 * value (if TR_CLOCKED) and five words whose meaning the kind gives. */
#define TRACE_RING_LOG2 13
#define TRACE_RING (1u << TRACE_RING_LOG2) /* records per thread */

enum {
	TR_RUN = 1,    /* a: task id, b: the waiter it resumed through (0:
			* its first run); with TR_AFTER_STOP, the task before
			* stopped just before: c, d as a stop's a, b, and e: a
			* waiter it woke before (0: none) */
	TR_STOP,       /* the task running stopped; a: what it blocked on
			* (WAIT_ON, waiter.h), b: the waiter it blocks with
			* (b 0 or a 0: it ended or yielded) */
	TR_WAKE,       /* a: the waiter woken */
	TR_SPAWN,      /* a: task id, b, c: the first 16 bytes of its name */
	TR_STEAL,      /* a: task id, b: the victim worker's index */
	TR_PARK,       /* a: 1 park, 0 unpark; b: the waiter it sleeps on */
	TR_SLEEP,      /* a thread's sleep; a, b: as a stop's */
	TR_WOKE,       /* a: the waiter it woke through */
};
#define TR_KIND 0xffu
#define TR_CLOCKED 0x100u    /* the clock word holds the time */
#define TR_AFTER_STOP 0x200u /* a switch: the stop held back is in it */
#define TR_STAMP_SHIFT 12    /* stamp: (position + 1) << 12 | kind */

struct trace_rec {
	_Atomic uint64_t stamp;
	_Atomic uint64_t clock, a, b, c, d, e;
	uint64_t pad; /* a record a cache line */
};

/* Write the record at position pos into its slot r (trace.c: "Reading
 * while the rings fill"): the stamp 0, the words (the clock only if kind
 * has TR_CLOCKED), the stamp. */
static inline void trace_rec_put(struct trace_rec *r, uint64_t pos,
				 uint32_t kind, uint64_t clock, uint64_t a,
				 uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
	at_store_relaxed(&r->stamp, 0);
	if (kind & TR_CLOCKED)
		at_store_release(&r->clock, clock);
	at_store_release(&r->a, a);
	at_store_release(&r->b, b);
	at_store_release(&r->c, c);
	at_store_release(&r->d, d);
	at_store_release(&r->e, e);
	at_store_release(&r->stamp, (pos + 1) << TR_STAMP_SHIFT | kind);
}

/*
 * This thread's recording state, its own (trace.c: "Recording"): where it
 * writes, when it reads the clock next, and what it holds back for its
 * next record: the stop of a task whose worker switches straight to
 * another task's fiber, and, on a busy lane, a wake. The hooks on a fiber
 * switch's path are inline and touch only this and the ring.
 */
struct trace_me {
	struct trace_rec *ring; /* the lane's; NULL before its first record */
	uint64_t pos;           /* records written */
	uint64_t clock_at;      /* the position of the next switch record
				 * that reads the clock */
	bool busy;              /* the lane records fast: hold wakes */
	const void *w;          /* a stop held back: the waiter of the task
				 * that stopped (never NULL), else NULL; */
	uint64_t on;            /* and what it blocked on (WAIT_ON, waiter.h) */
	const void *woke;       /* a wake held back, or NULL */
	/* for trace.c: the lane's last clock read (position, value) */
	uint64_t clocked, last_clock;
};
/* As the pool's thread-locals (POOL_TLS, pool_internal.h): accessed as a
 * static one, not through __tls_get_addr per use. */
extern _Thread_local struct trace_me trace_me
	__attribute__((tls_model("local-dynamic")));

/* The task running here stops: blocked on on (a WAIT_ON word: decoded
 * only when the trace is written) to be woken through waiter w, or ended
 * or yielded (w NULL, or on 0). direct: the thread switches straight to
 * another task's fiber, whose resumption records both (held back; a task
 * that suspends has a waiter: w is not NULL); else the worker loop comes
 * next. */
void trace_stop_record(uint64_t on, const void *w);
static inline void trace_stop(uint64_t on, const void *w, bool direct)
{
	if (direct) {
		trace_me.on = on;
		trace_me.w = w;
	} else {
		trace_stop_record(on, w);
	}
}

/* This thread now runs task id, resuming through waiter w (the end of its
 * wake's arrow; NULL: its first run). A switch on a busy lane between two
 * clock reads is written here: one record, the held stop and wake in it. */
void trace_run_record(uint64_t id, const void *w);
static inline void trace_run(uint64_t id, const void *w)
{
	struct trace_me *m = &trace_me;
	uint64_t pos;

	if (unlikely(!m->w || m->pos == m->clock_at)) {
		trace_run_record(id, w);
		return;
	}
	pos = m->pos++;
	trace_rec_put(&m->ring[pos & (TRACE_RING - 1)], pos, TR_RUN | TR_AFTER_STOP,
		      0, id, (uintptr_t)w, m->on, (uintptr_t)m->w,
		      (uintptr_t)m->woke);
	m->w = NULL;
	m->woke = NULL;
}

/* This thread goes to sleep in the waiter layer, blocked on on through
 * waiter w (a task that could not suspend, or a thread that is not a
 * worker); trace_woke when it woke up. */
void trace_sleep(uint64_t on, const void *w);
void trace_woke(const void *w);
/* This thread woke the owner of waiter w (asleep or suspended). */
void trace_wake_record(const void *w);
static inline void trace_wake(const void *w)
{
	if (trace_me.busy && !trace_me.woke)
		trace_me.woke = w; /* for the next switch's record */
	else
		trace_wake_record(w);
}
/* This worker took task id from worker victim's deque. */
void trace_steal(uint64_t id, unsigned victim);
/* This worker goes to sleep with nothing to do, on waiter w (park true),
 * or woke (false): the waiter layer's records of the sleep are left out. */
void trace_park(const void *w, bool park);

#endif

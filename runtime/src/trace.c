/*
 * trace.c - the execution trace: per-thread rings, written as Chrome
 * trace-event JSON (KANAL_TRACE=file; kn_trace_flush in kanal/pool.h).
 *
 * Algorithm
 *
 * Recording. Each thread that records gets a lane on its first record: a
 * ring of TRACE_RING records (trace_rec, one cache line) that only it
 * writes, never freed (a lane outlives its thread, so a trace shows pools
 * freed before the exit), linked onto a global list with one CAS. A record
 * is a stamp (its position and kind), a clock value (if TR_CLOCKED) and
 * five words whose meaning the kind gives (trace.h). What the owner needs
 * to append a record (the ring, its position, when to read the clock, what
 * it holds back) is one thread-local struct, trace_me: a hook costs a few
 * loads and stores there and into a line of the ring; no record touches a
 * shared line. A task that blocks and the one its worker switches to share
 * one record (the stop is held back until the next run; anything else
 * recorded first records it on its own): a fiber switch is one record, a
 * channel round trip between two tasks of a worker two (on a busy lane
 * each wake rides in the switch after it, below). A switch that does not
 * read the clock is written inline (trace_run, in the pool's
 * worker_suspend): the hot path of a switch makes no call. At most
 * TRACE_LANES lanes exist: a thread beyond them records nothing and counts
 * its records in a shared counter (the one shared write, on that path
 * only). A full ring overwrites its oldest records: the trace keeps the
 * last TRACE_RING records of every thread, and the JSON says how many were
 * dropped.
 *
 * Clock. Reading the clock costs more than the rest of a record (10 ns for
 * rdtsc on the virtual machines we measure on, a fiber switch about 50),
 * so a switch record on a busy lane reads it only about every
 * TRACE_CLOCK_SPAN microseconds: after a read, the next is as many
 * switches on as came in that span at the pace since the last read (at
 * most TRACE_CLOCK_EVERY); every other record reads it (each stands for
 * something that costs far more: a spawn, a start from the loop, an end, a
 * sleep, a park, a steal). Busy means that the records since the last read
 * came faster than one a microsecond; otherwise the next switch reads the
 * clock too (take_clock sets trace_me.clock_at, where trace_run stops). A
 * wake on a busy lane is held back and rides in the next switch's record
 * (a sender that wakes its partner and then blocks: one record for both).
 * The writer gives unclocked records times interpolated by position
 * between their lane's clocked neighbours (after the last one: its time).
 * So the times of a busy stretch of switches are exact every few
 * microseconds and interpolated in between (a channel ping-pong's: every
 * 30 to 60 switches); a task that computes for long right after a burst of
 * switches may have that time spread over the burst's slices. The clock is
 * the CPU's counter (rdtsc, cntvct), scaled to CLOCK_MONOTONIC nanoseconds
 * between the start and the flush, or CLOCK_MONOTONIC itself where there
 * is none.
 *
 * Reading while the rings fill (a flush at any time, the exit while
 * workers run). Each record has a stamp, a per-slot sequence lock: the
 * owner stores 0 (busy), then the words (release: none is visible before
 * the 0), then position + 1 (release). The reader loads the stamp, the
 * words and the stamp again, all acquire (in that order), and keeps the
 * record only if both stamps are its position + 1: a word it read from an
 * overwrite came after that overwrite's 0 store, so its second stamp load
 * sees 0 or later. The owner keeps its position to itself (trace_me.pos);
 * the reader finds where to look from the stamps: the largest is the
 * newest record's (a stamp being written is 0 and names no position).
 *
 * Linearization points: a record exists at its final stamp store; a lane
 * at its CAS onto the list.
 *
 * Invariants
 *
 *  1. A ring slot is written by its lane's thread only; a stamp equals the
 *     position of the record in its slot + 1, or 0 while it is written.
 *  2. A lane on the list never leaves it and its ring is never freed.
 *  3. Records of a lane are in the order its thread made them; clocked
 *     records' clock values never decrease along a lane.
 *
 * Writing. The writer (one at a time, under a mutex) copies every lane's
 * valid records, gives each a time, and turns them into events, per lane
 * in order: a run record ends the lane's slice ("X") and starts the next;
 * a stop carrying a block adds a "block" instant; a wake is a flow start
 * ("s", id: the waiter) and the resumption through that waiter its end
 * ("f"); a spawn is an instant and a flow ("spawn", id: the task id) to
 * the task's first run; steal, park and unpark are instants; a thread
 * that sleeps in the waiter layer outside a task gets a "blocked" slice.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "kanal/pool.h"
#include "trace.h"
#include "waiter.h"

#define TRACE_CLOCK_SPAN 4 /* microseconds between clock reads, busy, about */
#define TRACE_CLOCK_EVERY 64 /* records between clock reads, at most */
#define TRACE_LANES 256
#define TRACE_NAME 16 /* bytes of a task name kept */


struct lane {
	struct lane *next; /* set before publication, then fixed */
	struct trace_rec *ring;
	int tid;
	char name[32];
};

_Atomic bool trace_on;

static char *trace_path;
static pid_t trace_pid;
static uint64_t clock0, ns0;             /* the start, for scaling */
static uint64_t fast_ticks;              /* clock ticks in a microsecond, about */
static _Atomic(struct lane *) lanes;
static _Atomic uint32_t nlanes;
static _Atomic uint64_t lost;            /* records of threads past TRACE_LANES */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local bool laneless;
static _Thread_local bool parking; /* between trace_park's calls */
_Thread_local struct trace_me trace_me;

static inline uint64_t trace_clock(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#elif defined(__aarch64__)
	uint64_t v;

	__asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	return kn_now();
#endif
}

/* Ticks of trace_clock in about a microsecond: a TSC runs at 1 to 4 GHz,
 * the ARM counter says its rate. */
static uint64_t clock_ticks_us(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return 2000;
#elif defined(__aarch64__)
	uint64_t hz;

	__asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(hz));
	return hz / 1000000 ? hz / 1000000 : 1;
#else
	return 1000;
#endif
}

/* ---- recording -------------------------------------------------------- */

static struct lane *lane_new(void)
{
	struct lane *l, *head;

	if (at_add_relaxed(&nlanes, 1) >= TRACE_LANES)
		return NULL;
	l = kn_alloc(sizeof(*l));
	if (!l)
		return NULL;
	l->ring = kn_alloc(sizeof(*l->ring) * TRACE_RING);
	if (!l->ring) {
		kn_free(l);
		return NULL;
	}
	memset(l->ring, 0, sizeof(*l->ring) * TRACE_RING);
	l->tid = (int)syscall(SYS_gettid);
	if (pthread_getname_np(pthread_self(), l->name, sizeof(l->name)) != 0)
		snprintf(l->name, sizeof(l->name), "thread %d", l->tid);
	head = at_load_relaxed(&lanes);
	do
		l->next = head;
	while (!at_cas_weak_acq_rel(&lanes, &head, l));
	return l;
}

/* This thread's ring; NULL past TRACE_LANES lanes or without memory. */
static struct trace_rec *ring(void)
{
	struct lane *l;

	if (likely(trace_me.ring != NULL) || laneless)
		return trace_me.ring;
	l = lane_new();
	laneless = l == NULL;
	trace_me.ring = l ? l->ring : NULL;
	return trace_me.ring;
}

/* Read the clock for the record at pos, and say where trace_run's switch
 * records read it next: when the records since the last read came faster
 * than one a microsecond (a busy lane), as many records on as came in
 * TRACE_CLOCK_SPAN microseconds at that pace (at least TRACE_CLOCK_SPAN,
 * at most TRACE_CLOCK_EVERY), else at the next. */
static uint64_t take_clock(uint64_t pos)
{
	uint64_t now = trace_clock(), took = now - trace_me.last_clock;
	uint64_t n = pos - trace_me.clocked; /* at most TRACE_CLOCK_EVERY */
	bool busy = took < n * fast_ticks;

	trace_me.busy = busy;
	trace_me.clock_at = pos + (!busy ? 1 :
		took * TRACE_CLOCK_EVERY <= n * TRACE_CLOCK_SPAN * fast_ticks ?
		TRACE_CLOCK_EVERY : n * TRACE_CLOCK_SPAN * fast_ticks / took);
	trace_me.clocked = pos;
	trace_me.last_clock = now;
	return now;
}

/* Append a record that reads the clock (trace_run writes a busy lane's
 * other switches, without it). */
static void put_rec(uint32_t kind, uint64_t a, uint64_t b, uint64_t c,
		    uint64_t d, uint64_t e)
{
	struct trace_rec *rg = ring();
	uint64_t pos = trace_me.pos;

	if (unlikely(!rg)) {
		at_add_relaxed(&lost, 1);
		return;
	}
	trace_me.pos = pos + 1;
	trace_rec_put(&rg[pos & (TRACE_RING - 1)], pos, kind | TR_CLOCKED,
		      take_clock(pos), a, b, c, d, e);
}

/* Held back for the next switch's record (see "Recording"): a wake on a
 * busy lane and a stop followed by a switch straight to another fiber.
 * Anything else recorded first records them on their own, in the order
 * they happened (the wake came first). */
static void held_now(void)
{
	if (unlikely(trace_me.woke)) {
		put_rec(TR_WAKE, (uintptr_t)trace_me.woke, 0, 0, 0, 0);
		trace_me.woke = NULL;
	}
	if (unlikely(trace_me.w)) {
		put_rec(TR_STOP, trace_me.on, (uintptr_t)trace_me.w, 0, 0, 0);
		trace_me.w = NULL;
	}
}

static void put(uint32_t kind, uint64_t a, uint64_t b, uint64_t c)
{
	held_now();
	put_rec(kind, a, b, c, 0, 0);
}

void trace_spawn(uint64_t id, const char *name)
{
	uint64_t w[2] = { 0, 0 };

	if (name)
		memcpy(w, name, strnlen(name, sizeof(w)));
	put(TR_SPAWN, id, w[0], w[1]);
}

/* A switch that reads the clock (trace_run wrote the others), or a run
 * from the loop, which may have waited. */
void trace_run_record(uint64_t id, const void *w)
{
	if (trace_me.w) {
		put_rec(TR_RUN | TR_AFTER_STOP, id, (uintptr_t)w, trace_me.on,
			(uintptr_t)trace_me.w, (uintptr_t)trace_me.woke);
		trace_me.w = NULL;
		trace_me.woke = NULL;
	} else {
		put(TR_RUN, id, (uintptr_t)w, 0);
	}
}

/* A stop that the worker loop follows (trace.h). */
void trace_stop_record(uint64_t on, const void *w)
{
	put(TR_STOP, on, (uintptr_t)w, 0);
}

void trace_sleep(uint64_t on, const void *w)
{
	if (!parking)
		put(TR_SLEEP, on, (uintptr_t)w, 0);
}

void trace_woke(const void *w)
{
	if (!parking)
		put(TR_WOKE, (uintptr_t)w, 0, 0);
}

void trace_wake_record(const void *w)
{
	put(TR_WAKE, (uintptr_t)w, 0, 0);
}

void trace_steal(uint64_t id, unsigned victim)
{
	put(TR_STEAL, id, victim, 0);
}

void trace_park(const void *w, bool park)
{
	put(TR_PARK, park, (uintptr_t)w, 0);
	parking = park;
}

/* ---- writing ------------------------------------------------------------ */

struct ev {
	uint32_t kind;
	uint64_t clock; /* raw; 0 if not clocked */
	double us;      /* since the start */
	uint64_t a, b, c, d, e;
};

/* The valid records of l, oldest first, with their clock values still raw
 * (clocked) or 0; *dropped: the records written and not in the copy. */
static size_t snapshot(struct lane *l, struct ev *out, uint64_t *dropped)
{
	uint64_t head = 0, pos, s;
	size_t n = 0;

	for (pos = 0; pos < TRACE_RING; pos++) /* the newest record's stamp */
		if ((s = at_load_acquire(&l->ring[pos].stamp) >> TR_STAMP_SHIFT) > head)
			head = s;
	for (pos = head > TRACE_RING ? head - TRACE_RING : 0; pos < head; pos++) {
		struct trace_rec *r = &l->ring[pos & (TRACE_RING - 1)];
		struct ev e;

		s = at_load_acquire(&r->stamp);
		if (s >> TR_STAMP_SHIFT != pos + 1)
			continue;
		e.kind = (uint32_t)(s & ((1u << TR_STAMP_SHIFT) - 1));
		e.clock = at_load_acquire(&r->clock);
		e.a = at_load_acquire(&r->a);
		e.b = at_load_acquire(&r->b);
		e.c = at_load_acquire(&r->c);
		e.d = at_load_acquire(&r->d);
		e.e = at_load_acquire(&r->e);
		if (at_load_acquire(&r->stamp) == s)
			out[n++] = e;
	}
	*dropped = head - n;
	return n;
}

/* Times: clocked records scaled to microseconds since the start, the
 * others interpolated between their clocked neighbours by position
 * (before the first or after the last: that one's). */
static void give_times(struct ev *e, size_t n, double scale)
{
	size_t i, j, prev = SIZE_MAX;

	for (i = 0; i < n; i++) {
		if (!(e[i].kind & TR_CLOCKED))
			continue;
		e[i].us = (double)(e[i].clock - clock0) * scale / 1000.0;
		for (j = prev == SIZE_MAX ? 0 : prev + 1; j < i; j++)
			e[j].us = prev == SIZE_MAX ? e[i].us :
				  e[prev].us + (e[i].us - e[prev].us) *
				  (double)(j - prev) / (double)(i - prev);
		prev = i;
	}
	for (j = prev == SIZE_MAX ? 0 : prev + 1; j < n; j++)
		e[j].us = prev == SIZE_MAX ? 0 : e[prev].us;
}

/* Task names from the spawn records, by id (open addressing). */
struct names {
	size_t cap;
	uint64_t *id;
	char (*name)[TRACE_NAME + 1];
};

static void names_put(struct names *nm, uint64_t id, uint64_t w0, uint64_t w1)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15u) & (nm->cap - 1);

	while (nm->id[i] && nm->id[i] != id)
		i = (i + 1) & (nm->cap - 1);
	nm->id[i] = id;
	memcpy(nm->name[i], &w0, 8);
	memcpy(nm->name[i] + 8, &w1, 8);
	nm->name[i][TRACE_NAME] = '\0';
}

static const char *names_get(const struct names *nm, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15u) & (nm->cap - 1);

	for (; nm->id[i]; i = (i + 1) & (nm->cap - 1))
		if (nm->id[i] == id)
			return nm->name[i][0] ? nm->name[i] : NULL;
	return NULL;
}

/* A JSON string: the characters JSON allows as they are, the rest escaped. */
static void put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

struct out {
	FILE *f;
	int pid, tid;
	bool first;
	const struct names *nm;
};

/* Begin one event: ph, name, the lane and the time; the caller adds its
 * fields and closes it with "}". */
static void ev_begin(struct out *o, const char *ph, const char *name, double us)
{
	fprintf(o->f, "%s{\"ph\":\"%s\",\"name\":", o->first ? "" : ",\n", ph);
	o->first = false;
	put_str(o->f, name);
	fprintf(o->f, ",\"pid\":%d,\"tid\":%d,\"ts\":%.3f", o->pid, o->tid, us);
}

static void task_label(const struct out *o, uint64_t id, char *buf, size_t size)
{
	const char *name = names_get(o->nm, id);

	if (name)
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "task %llu", (unsigned long long)id);
}

static void slice(struct out *o, const char *name, uint64_t id, double from,
		  double to, const char *extra)
{
	ev_begin(o, "X", name, from);
	fprintf(o->f, ",\"dur\":%.3f,\"cat\":\"task\",\"args\":{\"task\":%llu%s}}",
		to - from, (unsigned long long)id, extra);
}

static void instant(struct out *o, const char *name, double us, const char *args)
{
	ev_begin(o, "i", name, us);
	fprintf(o->f, ",\"s\":\"t\",\"args\":{%s}}", args);
}

static void flow(struct out *o, const char *ph, const char *cat, uint64_t id,
		 double us)
{
	ev_begin(o, ph, cat, us);
	fprintf(o->f, ",\"cat\":\"%s\",\"id\":\"0x%llx\"%s}", cat,
		(unsigned long long)id, ph[0] == 'f' ? ",\"bp\":\"e\"" : "");
}

/* The lane's task (if any) stops at t: its slice. */
static void end_slice(struct out *o, uint64_t cur, double start, double t,
		      const char *extra)
{
	char label[48];

	if (!cur)
		return;
	task_label(o, cur, label, sizeof(label));
	slice(o, label, cur, start, t, extra);
}

/* The arguments of a block: task, object, wait, waiter. */
static void block_args(char *buf, size_t size, uint64_t task, uint64_t on,
		       uint64_t w)
{
	snprintf(buf, size, "\"task\":%llu,\"on\":\"0x%llx\",\"wait\":\"%s\",\"waiter\":\"0x%llx\"",
		 (unsigned long long)task, (unsigned long long)wait_obj(on),
		 wait_kind_name(wait_kind(on)), (unsigned long long)w);
}

/* The lane's task stops at t, blocked (w and on not 0: a yield's on is
 * WAIT_NONE's 0) or not: its slice, and the block. */
static void stop(struct out *o, uint64_t cur, double start, double t,
		 uint64_t on, uint64_t w)
{
	char args[200];

	if (!w || !on) {
		end_slice(o, cur, start, t, "");
		return;
	}
	snprintf(args, sizeof(args), ",\"blocked_on\":\"0x%llx\",\"wait\":\"%s\"",
		 (unsigned long long)wait_obj(on), wait_kind_name(wait_kind(on)));
	end_slice(o, cur, start, t, args);
	block_args(args, sizeof(args), cur, on, w);
	instant(o, "block", t, args);
}

/* One lane's events, in order (see "Writing" above). */
static void write_lane(struct out *o, const struct ev *e, size_t n)
{
	uint64_t cur = 0;
	double start = 0, blocked = -1;
	char args[200];
	size_t i;

	for (i = 0; i < n; i++) {
		double t = e[i].us;

		switch (e[i].kind & TR_KIND) {
		case TR_RUN:
			if (e[i].e) /* a wake held back: just before the stop */
				flow(o, "s", "wake", e[i].e, t > start ? t - 0.001 : t);
			if (e[i].kind & TR_AFTER_STOP)
				stop(o, cur, start, t, e[i].c, e[i].d);
			else
				end_slice(o, cur, start, t, "");
			cur = e[i].a;
			start = t;
			if (e[i].b)
				flow(o, "f", "wake", e[i].b, t);
			else
				flow(o, "f", "spawn", cur, t);
			break;
		case TR_STOP:
			stop(o, cur, start, t, e[i].a, e[i].b);
			cur = 0;
			break;
		case TR_WAKE:
			flow(o, "s", "wake", e[i].a, t);
			break;
		case TR_SPAWN:
			snprintf(args, sizeof(args), "\"task\":%llu,\"by\":%llu",
				 (unsigned long long)e[i].a, (unsigned long long)cur);
			instant(o, "spawn", t, args);
			flow(o, "s", "spawn", e[i].a, t);
			break;
		case TR_STEAL:
			snprintf(args, sizeof(args), "\"task\":%llu,\"from\":%llu",
				 (unsigned long long)e[i].a, (unsigned long long)e[i].b);
			instant(o, "steal", t, args);
			break;
		case TR_PARK:
			instant(o, e[i].a ? "park" : "unpark", t, "");
			if (!e[i].a)
				flow(o, "f", "wake", e[i].b, t);
			break;
		case TR_SLEEP:
			block_args(args, sizeof(args), cur, e[i].a, e[i].b);
			instant(o, "block", t, args);
			if (!cur)
				blocked = t;
			break;
		case TR_WOKE:
			if (blocked >= 0) {
				ev_begin(o, "X", "blocked", blocked);
				fprintf(o->f, ",\"dur\":%.3f,\"cat\":\"wait\",\"args\":{}}",
					t - blocked);
				blocked = -1;
			}
			flow(o, "f", "wake", e[i].a, t);
			break;
		}
	}
	if (n) /* still running at the flush */
		end_slice(o, cur, start, e[n - 1].us, ",\"open\":true");
}

struct snap {
	size_t nl;
	struct ev **evs;
	size_t *len;
	uint64_t dropped;
};

static void snap_free(struct snap *sn, struct names *nm)
{
	size_t i;

	for (i = 0; sn->evs && i < sn->nl; i++)
		free(sn->evs[i]);
	free(sn->evs);
	free(sn->len);
	free(nm->id);
	free(nm->name);
}

/* Copy every lane, give the records times, and index the task names. */
static int take_snap(struct lane *all, struct snap *sn, struct names *nm)
{
	uint64_t clock1 = trace_clock(), ns1 = kn_now(), dropped;
	double scale = clock1 > clock0 ? (double)(ns1 - ns0) / (double)(clock1 - clock0) : 1;
	size_t i, k, spawns = 0;
	struct lane *l;

	for (l = all; l; l = l->next)
		sn->nl++;
	sn->evs = calloc(sn->nl + 1, sizeof(*sn->evs));
	sn->len = calloc(sn->nl + 1, sizeof(*sn->len));
	if (!sn->evs || !sn->len)
		return ENOMEM;
	for (l = all, i = 0; l; l = l->next, i++) {
		sn->evs[i] = malloc(sizeof(**sn->evs) * TRACE_RING);
		if (!sn->evs[i])
			return ENOMEM;
		sn->len[i] = snapshot(l, sn->evs[i], &dropped);
		sn->dropped += dropped;
		give_times(sn->evs[i], sn->len[i], scale);
		for (k = 0; k < sn->len[i]; k++)
			spawns += (sn->evs[i][k].kind & TR_KIND) == TR_SPAWN;
	}
	for (nm->cap = 64; nm->cap < 2 * spawns; nm->cap *= 2)
		;
	nm->id = calloc(nm->cap, sizeof(*nm->id));
	nm->name = calloc(nm->cap, sizeof(*nm->name));
	if (!nm->id || !nm->name)
		return ENOMEM;
	for (i = 0; i < sn->nl; i++)
		for (k = 0; k < sn->len[i]; k++)
			if ((sn->evs[i][k].kind & TR_KIND) == TR_SPAWN)
				names_put(nm, sn->evs[i][k].a, sn->evs[i][k].b,
					  sn->evs[i][k].c);
	return 0;
}

static int write_trace(FILE *f)
{
	struct lane *l, *all = at_load_acquire(&lanes);
	struct out o = { f, (int)getpid(), 0, true, NULL };
	struct names nm = { 0 };
	struct snap sn = { 0 };
	int err = take_snap(all, &sn, &nm);
	size_t i;

	if (err) {
		snap_free(&sn, &nm);
		return err;
	}
	o.nm = &nm;
	fprintf(f, "{\"traceEvents\":[\n");
	ev_begin(&o, "M", "process_name", 0);
	fprintf(f, ",\"args\":{\"name\":\"kanal\"}}");
	for (l = all, i = 0; l; l = l->next, i++) {
		o.tid = l->tid;
		ev_begin(&o, "M", "thread_name", 0);
		fprintf(f, ",\"args\":{\"name\":");
		put_str(f, l->name);
		fprintf(f, "}}");
		write_lane(&o, sn.evs[i], sn.len[i]);
	}
	fprintf(f, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"dropped_events\":%llu,"
		"\"lanes\":%zu}}\n",
		(unsigned long long)(sn.dropped + at_load_relaxed(&lost)), sn.nl);
	snap_free(&sn, &nm);
	return 0;
}

int kn_trace_flush(void)
{
	char child[PATH_MAX];
	const char *path = trace_path;
	FILE *f;
	int err;

	if (!at_load_relaxed(&trace_on))
		return ENOTSUP;
	pthread_mutex_lock(&flush_lock);
	if (getpid() != trace_pid) { /* a child of fork: a file of its own */
		snprintf(child, sizeof(child), "%s.%d", trace_path, (int)getpid());
		path = child;
	}
	f = fopen(path, "w");
	if (!f) {
		err = errno;
	} else {
		err = write_trace(f);
		if (fclose(f) != 0 && !err)
			err = errno;
	}
	pthread_mutex_unlock(&flush_lock);
	return err;
}

static void flush_at_exit(void)
{
	int err = kn_trace_flush();

	if (err)
		fprintf(stderr, "kanal: KANAL_TRACE=%s: %s\n", trace_path, strerror(err));
}

/* Before main (and before constructors without a priority, a test's that
 * runs a traced program among them): read KANAL_TRACE once. */
__attribute__((constructor(KN_CTOR_TRACE))) static void trace_init(void)
{
	const char *path = getenv("KANAL_TRACE");

	if (!path || !*path)
		return;
	trace_path = strdup(path);
	if (!trace_path)
		return;
	trace_pid = getpid();
	clock0 = trace_clock();
	fast_ticks = clock_ticks_us();
	ns0 = kn_now();
	atexit(flush_at_exit);
	at_store_relaxed(&trace_on, true);
}

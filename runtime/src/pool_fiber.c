/*
 * pool_fiber.c - the pool's fiber scheduler: ready lists, loop fibers,
 * switch, suspend (pool_internal.h holds the inline helpers proven here).
 *
 * Fibers. A task that blocks in the waiter layer (without no_fibers) does
 * not park its thread: the block hook's suspend switches to another stack
 * of the same worker, which goes on with the worker loop. The loop runs
 * on loop fibers only (run_loop; the thread's own stack just waits for
 * the end), taken from the worker's stack cache (stack.c) when a task
 * blocks. So a task runs on the stack of the loop that took it, with the
 * same stack_size whatever ran before it, a task that never blocks costs
 * no switch, and a blocked task keeps its whole stack (its loop frames
 * below it) until it resumes. The waiter moves to SEL_SUSPENDED only after the
 * switch (after_switch, on the new stack), so a decider that sees that
 * state may make the fiber runnable at once: fiber_ready appends it to the
 * worker's FIFO when it runs on that worker, else pushes it on the
 * worker's remote stack (a CAS; the worker takes the stack whole with one
 * exchange) and wakes the worker through its wakeq if it sleeps. The loop
 * and a blocking task resume runnable fibers, taking turns with queued
 * tasks (tasks_turn), with the next one's frames prefetched while one
 * runs (prefetch_frames); a loop fiber that resumes one becomes a spare
 * (beyond LOOPS_KEEP its stack goes back to the cache). A task starts beside blocked fibers
 * only with a spare in reserve (invariant 7), so that no task sleeps on a
 * thread whose other fibers it may be waiting for. Fibers never move
 * between workers: a task resumes on its own thread. A worker with blocked
 * fibers polls for them briefly before searching (poll_ready), since their
 * partners often answer within microseconds (not while tasks wait for fds:
 * pool_worker.c); it sleeps registered on both
 * idleq and its wakeq. nblocked counts blocked and runnable fibers: the
 * pool is idle only when it is 0 on every worker, and a stopping worker
 * waits for it to reach 0 (a blocked task holds shutdown as a blocked
 * thread did); it starts no task meanwhile but drops what is queued on its
 * deque (drop_queued), so that its fibers, resumed first, never wait
 * behind tasks that may not start. The loop ends on the thread's own
 * stack: a loop fiber that sees the end switches to it (it waits among the
 * spares then).
 *
 * Invariants (numbered across pool*.c; 1-5 are in pool.c, pool_worker.c
 * and pool_steal.c)
 *
 *  6. A fiber is in exactly one place: running (w->cur), on the spare
 *     loops, runnable (ready list or remote stack), or blocked (its waiter
 *     undecided and SEL_SUSPENDED, or about to be marked so by the fiber
 *     switched to); nblocked counts the last two kinds. Only its own
 *     worker's thread switches to it.
 *  7. A task starts (from the loop or inside a join) on a worker with
 *     nblocked > 0 only while a spare loop is in reserve; while it runs
 *     the reserve stays (a fiber resumed from a loop leaves that loop
 *     spare; one resumed by a blocking task takes nothing). So a blocking
 *     task takes a stack only when no other fiber is blocked here, and if
 *     that fails, its thread sleeps without stranding any. A worker that
 *     cannot have the reserve only resumes its fibers (sleep_for_fibers).
 */
#include <stdio.h>

#include "pool_internal.h"

_Thread_local struct worker *pool_self POOL_TLS;
_Thread_local struct kn_task *pool_cur_task POOL_TLS;

/* f->wake, from any thread. The worker's own thread appends to its list;
 * another pushes onto the worker's remote stack (seq_cst: the work side of
 * sleep_thread's no-lost-wake-up protocol) and wakes it if it sleeps. */
void fiber_ready(struct fiber *f)
{
	struct worker *w = f->owner;
	struct fiber *head;

	if (pool_self == w) {
		ready_append(w, f);
		return;
	}
	head = at_load_relaxed(&w->remote);
	do
		f->next = head;
	while (!at_cas_weak_seq_cst(&w->remote, &head, f));
	WAITQ_AT_RANK(LOCK_WAKEQ, waitq_notify_one(&w->wakeq));
}

/* The frames a suspended fiber returns through first when it resumes: a
 * burst of wake-ups (a context cancelled, a channel closed) resumes
 * fibers whose stacks left the cache long ago, and the switch's pops and
 * the returns through those frames were half the CPU time of
 * ctx_cancel_fanout's wake-ups. So while one such fiber runs, the lines
 * of the next are on their way (the hardware prefetcher follows the rest
 * upwards), and so is the record's hot line (fiber.h) of the one after,
 * whose sp and next the next call reads. f is on the ready list: not
 * running, its sp saved (invariant 6). Only with more than PREFETCH_MIN
 * fibers blocked or runnable here: fewer keep their frames (about a
 * kilobyte each) in the first-level cache, where the sixteen prefetches
 * find them anyway and were a tenth of a one-worker hand-off's time
 * (chan_mpmc_4p4c_cap1 pinned to one CPU, eight fibers). */
#define PREFETCH_BYTES 1024
#define PREFETCH_MIN 32

static void prefetch_frames(const struct worker *w, const struct fiber *f)
{
	const char *p = f->sp, *end = p + PREFETCH_BYTES;

	if (f->next)
		__builtin_prefetch(&f->next->sp, 0, 3);
	if (at_load_relaxed(&w->nblocked) <= PREFETCH_MIN)
		return;
	if (end > (const char *)f)
		end = (const char *)f;
	for (; p < end; p += KN_CACHE_LINE)
		__builtin_prefetch(p, 1, 3);
}

/* The oldest runnable blocked fiber, or NULL. The remote stack is taken
 * whole (no ABA) and reversed into arrival order. */
struct fiber *take_ready(struct worker *w)
{
	struct fiber *f, *next, *tail = NULL;

	if (!w->ready && at_load_relaxed(&w->remote)) {
		f = at_xchg_acquire(&w->remote, NULL);
		for (; f; f = next) {
			next = f->next;
			f->next = w->ready;
			if (!tail)
				tail = f;
			w->ready = f;
		}
		w->ready_tail = tail;
	}
	f = w->ready;
	if (f) {
		w->ready = f->next;
		if (!w->ready)
			w->ready_tail = NULL;
		else
			prefetch_frames(w, w->ready);
		at_store_relaxed(&w->nblocked, at_load_relaxed(&w->nblocked) - 1);
	}
	return f;
}

/* A fresh loop fiber runs the worker loop from the top. When the loop ends
 * (the pool stops and no fiber is blocked), the thread must end on its own
 * stack, which then waits among the spare loops. */
void loop_main(void *arg)
{
	struct worker *w = arg;
	struct fiber **l;

	after_switch(w);
	worker_loop(w);
	for (l = &w->loops; *l && *l != &w->native; l = &(*l)->next)
		;
	if (*l) { /* the loop ran there for want of a stack (run_loop) */
		*l = w->native.next;
		w->nloops--;
	}
	switch_to(w, &w->native, NULL, true);
}

/* A spare loop; mapping one here happens only with no fiber blocked
 * (invariant 7), so a failure that leaves the task asleep on the thread
 * strands nobody. */
static struct fiber *spare_loop(struct worker *w)
{
	struct fiber *f = w->loops;

	if (!f)
		return new_loop(w);
	w->loops = f->next;
	w->nloops--;
	return f;
}

/* A suspension found no memory for a stack: the task sleeps on its thread
 * (a spare thread takes over, up to max_spare). Counted in the stats
 * (stack_failures, by stack.c) and said once per pool on stderr, since a
 * pool whose spares are all taken this way stops starting tasks. */
static void no_stack(kn_pool *p)
{
	if (!at_xchg_acq_rel(&p->stack_warned, 1))
		fprintf(stderr, "kanal: pool \"%s\": no memory for a task stack; "
			"blocked tasks now hold their threads\n", p->name);
}

/* The block hook's suspend: run a runnable fiber, else a loop fiber, in
 * place of the blocked task. */
bool worker_suspend(void *arg, struct waiter *wt)
{
	struct worker *w = arg;
	struct fiber *to = tasks_turn(w) ? NULL : take_ready(w);
	bool direct = to != NULL; /* straight to another task */

	if (to)
		w->streak = 0;
	else
		to = spare_loop(w);
	if (!to) {
		no_stack(w->pool);
		return false;
	}
	struct kn_task *mine = pool_cur_task;

	wt->fib = w->cur;
	at_store_relaxed(&w->nblocked, at_load_relaxed(&w->nblocked) + 1);
	set_cur_task(w, NULL, wt, direct);
	diag_block(mine, wt);
	switch_to(w, to, wt, false);
	diag_unblock(mine);
	/* (a fiber without a task, were one to suspend, resumes as a stop) */
	set_cur_task(w, mine, mine ? wt : NULL, false);
	return true;
}

/* A task spawned with a stack of its own (kn_spawn_opts.stack_size above
 * the pool's) runs on it: the running fiber (a loop, or a join that
 * helps) starts it and waits, on no list, until the task ends and
 * switches back, leaving its stack to be freed (into its class). If the
 * task blocks meanwhile, it is suspended like any task, its starter with
 * it, as a task's loop frames wait below it on a shared stack. */
struct own_stack_run {
	struct worker *w;
	struct kn_task *t;
	struct fiber *starter;
};

static void own_stack_main(void *arg)
{
	struct own_stack_run *r = arg;
	struct worker *w = r->w;
	struct fiber *starter = r->starter;

	after_switch(w);
	run_task_here(w, r->t); /* r (the starter's frame) is still there */
	switch_to(w, starter, NULL, true);
}

void run_on_own_stack(struct worker *w, struct kn_task *t)
{
	struct own_stack_run r = { w, t, w->cur };
	struct fiber *f = t->stack;

	t->stack = NULL;
	fiber_start(f, own_stack_main, &r);
	f->owner = w;
	f->wake = fiber_ready;
	switch_to(w, f, NULL, false);
}

bool worker_others_ready(void *arg)
{
	struct worker *w = arg;

	return has_ready(w) || !deque_empty(&w->dq);
}

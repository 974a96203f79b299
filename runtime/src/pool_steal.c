/*
 * pool_steal.c - the pool's placement and stealing policy: taking tasks
 * from the injector in batches, the search, leaving a few tasks to their
 * owner (pool_internal.h holds the inline helpers: dq_pop, steal_from).
 *
 * Workers. Each worker thread owns a Chase-Lev deque (deque.c). It runs
 * tasks from the bottom of its own deque; when that is empty it searches:
 * it takes a batch from the injector (the queue of tasks spawned by
 * threads outside the pool: liburcu's wfcqueue, wait-free enqueue,
 * dequeued under a try-lock, the batch beyond the first task going onto
 * the taker's deque where others can steal it) and steals from the other
 * workers' deques, for a few rounds, then parks. Every 61st task a worker
 * looks at the injector before its own deque, so that a worker busy with
 * local work does not starve outside submitters (Go does the same).
 *
 * Invariant 3 (numbered across pool*.c)
 *
 *  3. pending >= the number of tasks in the injector: incremented before
 *     the enqueue, decremented after the dequeued tasks are on a deque.
 */
#include "pool_internal.h"
#include "tsan.h"

#define INJ_BATCH 32           /* most tasks taken from the injector at once */
#define SEARCH_ROUNDS 4
#define LEAVE_GRACE_NS 20000   /* while its owner progresses this often: */
#define LEAVE_PROGRESS 1       /* a task end or a switch in each period */
#define LEAVE_MAX_NS 100000    /* and for no longer (see search) */

/* A batch from the injector: the first task is returned, the rest go onto
 * w's deque (as many as fit without growing it). */
struct kn_task *inj_take(struct worker *w)
{
	kn_pool *p = w->pool;
	struct cds_wfcq_node *node;
	struct kn_task *first = NULL, *t;
	int64_t n = at_load_relaxed(&p->pending), want, got = 0;

	if (n <= 0 || !lock_try(&p->inj_lock, LOCK_LEAF))
		return NULL;
	want = n / p->target + 1;
	if (want > INJ_BATCH)
		want = INJ_BATCH;
	if (want > deque_room(&w->dq) + 1)
		want = deque_room(&w->dq) + 1;
	while (got < want) {
		node = __cds_wfcq_dequeue_nonblocking(&p->inj_head, &p->inj_tail);
		if (!node || node == CDS_WFCQ_WOULDBLOCK)
			break; /* WOULDBLOCK: an enqueue is half done */
		t = caa_container_of(node, struct kn_task, link.inj);
		tsan_acquire(t);
		took(w, t);
		if (got++ == 0)
			first = t;
		else
			deque_push(&w->dq, dq_item(t)); /* fits: no growth, no failure */
	}
	lock_release(&p->inj_lock);
	if (got) {
		at_sub_seq_cst(&p->pending, got);
		if (got > 1)
			notify_work(p);
	}
	return first;
}

static struct kn_task *steal_any(struct worker *w, bool *left)
{
	kn_pool *p = w->pool;
	unsigned n = at_load_acquire(&p->nstarted), i, start;
	struct worker *v;
	struct kn_task *t;
	bool retry;

	do {
		retry = false;
		start = (unsigned)(xorshift64(&w->rng) % n);
		for (i = 0; i < n; i++) {
			v = at_load_acquire(&p->slots[(start + i) % n]);
			if (v && v != w && (t = steal_from(w, v, &retry, left)))
				return t;
		}
	} while (retry);
	return NULL;
}

static struct kn_task *scan(struct worker *w, bool *left)
{
	struct kn_task *t = inj_take(w);

	return t ? t : steal_any(w, left);
}

/*
 * A few tasks on a deque are most often a group that talks to its spawner
 * and to each other (a generator and its consumer, pipeline stages, a
 * worker pool and its feeder): once the spawner's task blocks, its worker
 * runs them within microseconds, on one core, where every hand-off is a
 * fiber switch; split across cores, every hand-off crosses them, and a
 * fiber never moves. So a searcher leaves a deque of at most LEAVE_FEW
 * detached tasks to its owner while the owners keep making progress (a
 * task end or a switch in every LEAVE_GRACE_NS), for at most LEAVE_MAX_NS,
 * polling meanwhile (poll_ready) between looks at their deques. An owner
 * slower than that runs tasks long enough to be worth another core, and
 * its tasks are stolen. Joinable tasks (fork-join: tagged in the deque)
 * and deeper deques (data parallelism) are stolen from at once, and so
 * are the tasks of an owner holding LEAVE_FEW more suspended fibers than
 * the thief (steal_from): a spawner whose children block and stay, as a
 * server's accept loop and its connections, would otherwise keep them all
 * on its core for good. Go's runnext slot plays this part for one
 * goroutine, and Go can move a goroutine later; kanal cannot.
 *
 * Why a group that blocks at once is not spread at its start, measured.
 * Such a group (a flow's stages, fan-out workers and forwarders, a worker
 * pool, producers and consumers) never reaches a thief: its spawner's
 * worker starts each task as the previous one blocks, microseconds after
 * the spawn, before the worker the spawn kicked is awake (and at a
 * program's start, before the pool's other threads first run), so it
 * stays whole on one worker for good. Spreading it was tried (commit
 * e419aee, branch place-handoff): a worker about to start a never-run task while it held
 * more than one blocked fiber handed the oldest queued one (the start of
 * a chain, so that a pipeline is cut once) to an idle worker's inbox,
 * balancing blocked fibers plus handed tasks, with kn_pool_new waiting
 * for its threads. A never-run task has no frames, so moving it is sound
 * where moving a suspended fiber is not (fiber.h: frames may hold
 * thread-local addresses, errno's among them). It spread every group as
 * meant and made every one slower: interleaved A/B medians on 2 CPUs,
 * kanal_go kept together -> spread (go): pipeline_3stage_buf 55.5 ->
 * 77.4 ms (83.4), fanout4_fanin 44.1 -> 68.5 (50.6), worker_pool 69.0 ->
 * 81.8 (81.2), chan_mpmc_4p4c_cap1 34.9 -> 292.9 (23.3); a worker
 * spinning for its fibers instead of parking did not change that. The
 * split is fixed for the group's life, and each value that crosses it
 * costs a wake-up on the other core (a remote push, and a futex wake
 * whenever that worker had parked: 0.01 to 0.08 system calls per item,
 * against 0.0003 on one worker), where on one worker a hand-off is a
 * fiber switch. Go profits from a second core because its scheduler runs
 * a woken goroutine on its waker's P and moves goroutines to idle Ps as
 * it goes, which needs movable goroutines. So groups stay with their
 * spawner, and the second core serves other groups, stolen tasks and
 * tasks from outside the pool.
 */
static uint64_t others_progress(struct worker *w)
{
	struct worker *v;
	uint64_t sum = 0;

	pool_for_each_worker(w->pool, v)
		if (v != w)
			sum += at_load_relaxed(&v->n_run) + at_load_relaxed(&v->n_switch);
	return sum;
}

struct leave {
	uint64_t first, since, seen; /* first == 0: nothing left yet */
};

/* May the search still leave shallow deques alone? */
static bool leave_few(struct worker *w, struct leave *l)
{
	uint64_t now, pr;

	if (!l->first)
		return true;
	now = kn_now();
	if (now - l->since < LEAVE_GRACE_NS)
		return true;
	pr = others_progress(w);
	if (pr - l->seen < LEAVE_PROGRESS || now - l->first >= LEAVE_MAX_NS)
		return false;
	l->since = now;
	l->seen = pr;
	return true;
}

struct kn_task *search(struct worker *w)
{
	struct backoff b = { 0 };
	struct leave l = { 0 };
	struct kn_task *t;
	bool left;
	int round;

	for (round = 0;; round++) {
		left = false;
		t = scan(w, leave_few(w, &l) ? &left : NULL);
		if (t || at_load_acquire(&w->pool->stopping) || has_ready(w))
			return t;
		if (left && !l.first) {
			l.first = l.since = kn_now();
			l.seen = others_progress(w);
		}
		if (!left && round >= SEARCH_ROUNDS - 1)
			return NULL;
		if (left)
			poll_ready(w); /* not the owners' lines: each read
					* costs an owner a miss */
		else
			backoff_spin(&b);
	}
}

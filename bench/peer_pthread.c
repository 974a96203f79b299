/*
 * peer_pthread.c - impl "pthread": the baselines a C programmer writes by
 * hand with one mutex and condition variables.
 *
 *   pq    a bounded ring guarded by a mutex and two condvars (not-empty,
 *         not-full) with a closed flag; capacity 0 is a hand-off slot whose
 *         sender waits, on a condvar of its own, until a receiver has taken
 *         the value: each wake-up (signal, never broadcast) goes to the one
 *         thread that can go on.
 *   psem  a counting semaphore: a mutex, a condvar, a count.
 *   pool  nproc threads sharing one mutex+condvar-guarded FIFO of malloc'd
 *         task records, with a count of unfinished tasks to wait on.
 *
 * The workload bodies are the shared ones (chan_workloads.c,
 * sem_workloads.c); only the pool workloads are written here.
 */
#include "bench.h"
#include "chan_workloads.h"
#include "sem_workloads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- pq: the hand-written channel ----------------------------------------- */

/* A hand-off sender waiting for its value to be taken. */
struct handoff {
	pthread_cond_t taken_cv;
	bool taken;
};

struct pq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	size_t size;            /* slots: the capacity, or 1 for a hand-off */
	size_t head, count;
	bool handoff;
	bool closed;
	struct handoff *owner;  /* hand-off: the sender of the slot's value */
	int64_t buf[];
};

static void *pq_new(size_t cap)
{
	size_t size = cap ? cap : 1;
	struct pq *q = malloc(sizeof(*q) + size * sizeof(q->buf[0]));

	if (!q)
		return NULL;
	*q = (struct pq){ .size = size, .handoff = cap == 0 };
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	return q;
}

/*
 * Hand-off, called with the value just put in the one slot: wait on a
 * condvar of this sender's own until a receiver has taken it. If the
 * channel is closed first, the slot still holds this value (nobody else
 * can fill it), so withdraw it.
 */
static int pq_await_taken(struct pq *q)
{
	struct handoff me = { .taken = false };
	int err = 0;

	pthread_cond_init(&me.taken_cv, NULL);
	q->owner = &me;
	while (!me.taken && !q->closed)
		pthread_cond_wait(&me.taken_cv, &q->mu);
	if (!me.taken) {
		q->count--;
		q->owner = NULL;
		err = EPIPE;
	}
	pthread_cond_destroy(&me.taken_cv);
	return err;
}

static int pq_send(void *qp, int64_t v)
{
	struct pq *q = qp;
	size_t tail;
	int err = 0;

	pthread_mutex_lock(&q->mu);
	while (q->count == q->size && !q->closed)
		pthread_cond_wait(&q->not_full, &q->mu);
	if (q->closed) {
		err = EPIPE;
	} else {
		tail = q->head + q->count;
		q->buf[tail < q->size ? tail : tail - q->size] = v;
		q->count++;
		pthread_cond_signal(&q->not_empty);
		if (q->handoff)
			err = pq_await_taken(q);
	}
	pthread_mutex_unlock(&q->mu);
	return err;
}

static int pq_recv(void *qp, int64_t *v)
{
	struct pq *q = qp;
	int err = 0;

	pthread_mutex_lock(&q->mu);
	while (q->count == 0 && !q->closed)
		pthread_cond_wait(&q->not_empty, &q->mu);
	if (q->count == 0) {
		err = EPIPE;
	} else {
		*v = q->buf[q->head];
		q->head = q->head + 1 == q->size ? 0 : q->head + 1;
		q->count--;
		/* A hand-off wakes the value's sender, then one sender
		 * waiting for the free slot; a ring, one waiting sender. */
		if (q->handoff) {
			q->owner->taken = true;
			pthread_cond_signal(&q->owner->taken_cv);
			q->owner = NULL;
		}
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->mu);
	return err;
}

static void pq_close(void *qp)
{
	struct pq *q = qp;

	pthread_mutex_lock(&q->mu);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	if (q->owner)
		pthread_cond_signal(&q->owner->taken_cv);
	pthread_mutex_unlock(&q->mu);
}

static void pq_free(void *qp)
{
	struct pq *q = qp;

	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->not_empty);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

const struct chan_ops pq_ops = {
	.new = pq_new, .send = pq_send, .recv = pq_recv,
	.close = pq_close, .free = pq_free,
};

/* ---- psem: the hand-written counting semaphore ----------------------------- */

struct psem {
	pthread_mutex_t mu;
	pthread_cond_t nonzero;
	unsigned count;
};

static void *psem_new(unsigned tokens)
{
	struct psem *s = malloc(sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->nonzero, NULL);
	s->count = tokens;
	return s;
}

static int psem_acquire(void *sp)
{
	struct psem *s = sp;

	pthread_mutex_lock(&s->mu);
	while (s->count == 0)
		pthread_cond_wait(&s->nonzero, &s->mu);
	s->count--;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static bool psem_try_acquire(void *sp)
{
	struct psem *s = sp;
	bool took;

	pthread_mutex_lock(&s->mu);
	took = s->count > 0;
	s->count -= took;
	pthread_mutex_unlock(&s->mu);
	return took;
}

static void psem_release(void *sp)
{
	struct psem *s = sp;

	pthread_mutex_lock(&s->mu);
	s->count++;
	pthread_cond_signal(&s->nonzero);
	pthread_mutex_unlock(&s->mu);
}

static unsigned psem_available(void *sp)
{
	return ((struct psem *)sp)->count;
}

static void psem_free(void *sp)
{
	struct psem *s = sp;

	pthread_cond_destroy(&s->nonzero);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static const struct sem_ops psem_ops = {
	.new = psem_new, .acquire = psem_acquire,
	.try_acquire = psem_try_acquire, .release = psem_release,
	.available = psem_available, .free = psem_free, .feed = &pq_ops,
};

/* ---- pool: nproc threads over one locked FIFO ------------------------------ */

struct task {
	void (*fn)(void *ctx, uint64_t i);
	void *ctx;
	uint64_t i;
	struct task *next;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;    /* a task was queued, or stop */
	pthread_cond_t idle;    /* pending dropped to zero */
	struct task *head, **tail;
	uint64_t pending;       /* submitted and not yet finished */
	uint64_t finished;
	bool stop;
	struct bench_crew *crew;
};

/* Takes the next task, or NULL once stopped; called with mu held. */
static struct task *pool_take(struct pool *p)
{
	struct task *t;

	while (!p->head && !p->stop)
		pthread_cond_wait(&p->work, &p->mu);
	t = p->head;
	if (t) {
		p->head = t->next;
		if (!p->head)
			p->tail = &p->head;
	}
	return t;
}

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	struct task *t;

	pthread_mutex_lock(&p->mu);
	while ((t = pool_take(p))) {
		pthread_mutex_unlock(&p->mu);
		t->fn(t->ctx, t->i);
		free(t);
		pthread_mutex_lock(&p->mu);
		p->finished++;
		if (--p->pending == 0)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The CPUs this process may run on. */
static int cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

static void pool_start(struct pool *p)
{
	*p = (struct pool){ .tail = &p->head };
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	/* arg_size 0: every worker gets the pool itself. */
	p->crew = bench_start(cpus(), pool_worker, p, 0);
}

static int pool_submit(struct pool *p, void (*fn)(void *, uint64_t),
		       void *ctx, uint64_t i)
{
	struct task *t = malloc(sizeof(*t));

	if (!t)
		return ENOMEM;
	*t = (struct task){ .fn = fn, .ctx = ctx, .i = i };
	pthread_mutex_lock(&p->mu);
	*p->tail = t;
	p->tail = &t->next;
	p->pending++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void pool_wait(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->pending)
		pthread_cond_wait(&p->idle, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

static void pool_stop(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	bench_join(p->crew);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
}

static char message[128];

static const char *tasks_verdict(uint64_t finished, uint64_t want)
{
	if (finished == want)
		return "ok";
	snprintf(message, sizeof(message), "%llu tasks ran, want %llu",
		 (unsigned long long)finished, (unsigned long long)want);
	return message;
}

/* Every impl's task adds one to a shared counter (WORKLOADS.md). */
static void count_one(void *ctx, uint64_t i)
{
	(void)i;
	atomic_fetch_add_explicit((_Atomic uint64_t *)ctx, 1,
				  memory_order_relaxed);
}

/* The pool is up before the clock starts, as Go's runtime is. */
BENCH(pool_spawn_wait, pthread)
{
	_Atomic uint64_t ran = 0;
	struct pool p;
	uint64_t t0, i;

	pool_start(&p);
	t0 = bench_now();
	for (i = 0; i < a->items; i++)
		if (pool_submit(&p, count_one, &ran, i))
			break;
	pool_wait(&p);
	r->ns = bench_now() - t0;
	r->check = tasks_verdict(atomic_load(&ran), a->items);
	pool_stop(&p);
}

struct foreach {
	void *sem;
	_Atomic uint64_t sum, ran;
};

static void foreach_op(void *ctx, uint64_t i)
{
	struct foreach *f = ctx;

	atomic_fetch_add_explicit(&f->sum, i, memory_order_relaxed);
	count_one(&f->ran, i);
	psem_release(f->sem);
}

/* At most 20 operations in flight: a token is taken before each submit. */
BENCH(foreach_per_item, pthread)
{
	struct foreach f = { .sem = psem_new(20) };
	struct pool p;
	uint64_t t0, i;

	if (!f.sem) {
		r->check = "cannot create the semaphore";
		return;
	}
	pool_start(&p);
	t0 = bench_now();
	for (i = 0; i < a->items; i++) {
		psem_acquire(f.sem);
		if (pool_submit(&p, foreach_op, &f, i)) {
			psem_release(f.sem);
			break;
		}
	}
	pool_wait(&p);
	r->ns = bench_now() - t0;

	r->check = tasks_verdict(atomic_load(&f.ran), a->items);
	if (atomic_load(&f.sum) != bench_sum_upto(a->items))
		r->check = "sum mismatch";
	else if (psem_available(f.sem) != 20)
		r->check = "semaphore tokens lost";
	pool_stop(&p);
	psem_free(f.sem);
}

/* ---- registrations --------------------------------------------------------- */

BENCH(chan_spsc, pthread) { cw_spsc(&pq_ops, a, r); }
BENCH(chan_mpmc_2p2c, pthread) { cw_mpmc(&pq_ops, 2, 1024, a, r); }
BENCH(chan_mpmc_4p4c, pthread) { cw_mpmc(&pq_ops, 4, 1024, a, r); }
BENCH(chan_mpmc_4p4c_cap1, pthread) { cw_mpmc(&pq_ops, 4, 1, a, r); }
BENCH(chan_mpmc_4p4c_cap0, pthread) { cw_mpmc(&pq_ops, 4, 0, a, r); }
BENCH(chan_pingpong_unbuffered, pthread) { cw_pingpong(&pq_ops, a, r); }
BENCH(generator, pthread) { cw_generator(&pq_ops, a, r); }
BENCH(pipeline_3stage, pthread) { cw_pipeline3(&pq_ops, 0, a, r); }
BENCH(pipeline_3stage_buf, pthread) { cw_pipeline3(&pq_ops, 64, a, r); }
BENCH(fanout4_fanin, pthread) { cw_fanout4_fanin(&pq_ops, a, r); }
BENCH(worker_pool, pthread) { cw_worker_pool(&pq_ops, a, r); }
BENCH(sem_contended, pthread) { sw_contended(&psem_ops, a, r); }
BENCH(sem_blocking, pthread) { sw_blocking(&psem_ops, a, r); }

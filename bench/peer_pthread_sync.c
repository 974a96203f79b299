/*
 * peer_pthread_sync.c - impl "pthread" of the lock workloads: the shared
 * bodies of sync_workloads.c over pthread_mutex_t, pthread_rwlock_t and
 * pthread_cond_t with their default attributes (the locks a C programmer
 * reaches for; glibc's default rwlock prefers readers).
 */
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"
#include "sync_workloads.h"

struct psync {
	_Alignas(128) pthread_mutex_t m;
	_Alignas(128) pthread_rwlock_t rw;
	_Alignas(128) pthread_cond_t c;
};

static void *ps_new(void)
{
	struct psync *p = aligned_alloc(128, sizeof(*p));

	if (p && (pthread_mutex_init(&p->m, NULL) || pthread_rwlock_init(&p->rw, NULL) ||
		  pthread_cond_init(&p->c, NULL))) {
		free(p);
		return NULL;
	}
	return p;
}

static void ps_free(void *o)
{
	struct psync *p = o;

	pthread_mutex_destroy(&p->m);
	pthread_rwlock_destroy(&p->rw);
	pthread_cond_destroy(&p->c);
	free(p);
}

static void ps_lock(void *o)
{
	pthread_mutex_lock(&((struct psync *)o)->m);
}

static void ps_unlock(void *o)
{
	pthread_mutex_unlock(&((struct psync *)o)->m);
}

static void ps_rlock(void *o)
{
	pthread_rwlock_rdlock(&((struct psync *)o)->rw);
}

static void ps_wlock(void *o)
{
	pthread_rwlock_wrlock(&((struct psync *)o)->rw);
}

static void ps_rwunlock(void *o)
{
	pthread_rwlock_unlock(&((struct psync *)o)->rw);
}

static void ps_wait(void *o)
{
	struct psync *p = o;

	pthread_cond_wait(&p->c, &p->m);
}

static void ps_signal(void *o)
{
	pthread_cond_signal(&((struct psync *)o)->c);
}

static const struct sync_ops psync_ops = {
	.new = ps_new, .lock = ps_lock, .unlock = ps_unlock, .rlock = ps_rlock,
	.runlock = ps_rwunlock, .wlock = ps_wlock, .wunlock = ps_rwunlock,
	.wait = ps_wait, .signal = ps_signal, .free = ps_free,
};

BENCH(mutex_uncontended, pthread) { lw_mutex_uncontended(&psync_ops, a, r); }
BENCH(mutex_8_contended, pthread) { lw_mutex_contended(&psync_ops, a, r); }
BENCH(rwmutex_read_mostly, pthread) { lw_rwmutex_read_mostly(&psync_ops, a, r); }
BENCH(cond_pingpong, pthread) { lw_cond_pingpong(&psync_ops, a, r); }

/*
 * kanal_sync.c - impls "kanal" and "kanal_go" of the lock workloads: the
 * shared bodies of sync_workloads.c over kn_mutex, kn_rwmutex and kn_cond.
 */
#include <stdlib.h>

#include <kanal/sync.h>

#include "bench.h"
#include "kanal_go.h"
#include "sync_workloads.h"

struct ksync {
	_Alignas(128) kn_mutex m;
	_Alignas(128) kn_rwmutex rw;
	_Alignas(128) kn_cond c;
};

static void *ks_new(void)
{
	struct ksync *k = aligned_alloc(128, sizeof(*k));

	if (k)
		*k = (struct ksync){ KN_MUTEX_INIT, KN_RWMUTEX_INIT, KN_COND_INIT };
	return k;
}

static void ks_lock(void *o)
{
	kn_mutex_lock(&((struct ksync *)o)->m);
}

static void ks_unlock(void *o)
{
	kn_mutex_unlock(&((struct ksync *)o)->m);
}

static void ks_rlock(void *o)
{
	kn_rwmutex_rlock(&((struct ksync *)o)->rw);
}

static void ks_runlock(void *o)
{
	kn_rwmutex_runlock(&((struct ksync *)o)->rw);
}

static void ks_wlock(void *o)
{
	kn_rwmutex_lock(&((struct ksync *)o)->rw);
}

static void ks_wunlock(void *o)
{
	kn_rwmutex_unlock(&((struct ksync *)o)->rw);
}

static void ks_wait(void *o)
{
	struct ksync *k = o;

	kn_cond_wait(&k->c, &k->m);
}

static void ks_signal(void *o)
{
	kn_cond_signal(&((struct ksync *)o)->c);
}

#define KSYNC_OPS                                                              \
	.new = ks_new, .lock = ks_lock, .unlock = ks_unlock, .rlock = ks_rlock, \
	.runlock = ks_runlock, .wlock = ks_wlock, .wunlock = ks_wunlock,       \
	.wait = ks_wait, .signal = ks_signal, .free = free

static const struct sync_ops ksync_ops = { KSYNC_OPS };

/* kanal_go: the actors are kn_go tasks, as Go's are goroutines. */
static const struct sync_ops ksync_go_ops = {
	KSYNC_OPS, .run = { bench_go_start, bench_go_join },
};

BENCH(mutex_uncontended, kanal) { lw_mutex_uncontended(&ksync_ops, a, r); }
BENCH(mutex_8_contended, kanal) { lw_mutex_contended(&ksync_ops, a, r); }
BENCH(rwmutex_read_mostly, kanal) { lw_rwmutex_read_mostly(&ksync_ops, a, r); }
BENCH(cond_pingpong, kanal) { lw_cond_pingpong(&ksync_ops, a, r); }
BENCH_GO(mutex_uncontended) { lw_mutex_uncontended(&ksync_go_ops, a, r); }
BENCH_GO(mutex_8_contended) { lw_mutex_contended(&ksync_go_ops, a, r); }
BENCH_GO(rwmutex_read_mostly) { lw_rwmutex_read_mostly(&ksync_go_ops, a, r); }
BENCH_GO(cond_pingpong) { lw_cond_pingpong(&ksync_go_ops, a, r); }

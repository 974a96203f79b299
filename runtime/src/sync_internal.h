/*
 * sync_internal.h - the layouts behind kanal/sync.h (internal: sync.c and
 * the tests, which look at the wait queues).
 *
 * Each object is a state word and a wait queue (waiter.h); the public
 * types are opaque storage at least as large and as aligned.
 */
#ifndef KN_SYNC_INTERNAL_H
#define KN_SYNC_INTERNAL_H

#include "kanal/sync.h"
#include "waiter.h"

struct mutex {
	_Atomic uint32_t state;
	_Atomic uint32_t owner; /* Debug builds: who holds it (sync.c) */
	struct waitq q;
};
_Static_assert(sizeof(struct mutex) <= sizeof(kn_mutex), "kn_mutex too small");
_Static_assert(_Alignof(struct mutex) <= _Alignof(kn_mutex), "kn_mutex alignment");

/* Go's sync.RWMutex (sync.c): w serialises writers; state holds the
 * reader count, WRITER and the writer generation; wait the readers the
 * writer still waits for; readers held up by a writer wait on readers, the
 * writer for the readers in on writer. */
struct rwmutex {
	kn_mutex w;
	_Atomic uint64_t state;
	_Atomic uint64_t wait;
	struct waitq readers;
	struct waitq writer;
};
_Static_assert(sizeof(struct rwmutex) <= sizeof(kn_rwmutex), "kn_rwmutex too small");
_Static_assert(_Alignof(struct rwmutex) <= _Alignof(kn_rwmutex), "kn_rwmutex alignment");

struct cond {
	struct waitq q;
};
_Static_assert(sizeof(struct cond) <= sizeof(kn_cond), "kn_cond too small");
_Static_assert(_Alignof(struct cond) <= _Alignof(kn_cond), "kn_cond alignment");

struct once {
	_Atomic uint32_t state;
	struct waitq q;
};
_Static_assert(sizeof(struct once) <= sizeof(kn_once), "kn_once too small");
_Static_assert(_Alignof(struct once) <= _Alignof(kn_once), "kn_once alignment");

static inline struct mutex *mutex_of(kn_mutex *m)
{
	return (struct mutex *)m;
}

static inline struct rwmutex *rwmutex_of(kn_rwmutex *rw)
{
	return (struct rwmutex *)rw;
}

static inline struct cond *cond_of(kn_cond *c)
{
	return (struct cond *)c;
}

static inline struct once *once_of(kn_once *o)
{
	return (struct once *)o;
}

#endif

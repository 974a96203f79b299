/*
 * kanal/sync.h - task-aware locks: Go's sync.Mutex, RWMutex, Cond, Once.
 *
 * Unlike a pthread mutex, these may be held across a blocking kanal call in
 * a pool task and waited for by other tasks of the same worker: a task that
 * waits is suspended like any kanal wait (its worker runs other tasks), a
 * plain thread parks. They are plain structs, statically initialisable
 * (KN_MUTEX_INIT, ...), and never allocate; a zeroed object is an
 * initialised one.
 *
 * kn_mutex. Uncontended, lock and unlock are one atomic read-modify-write
 * each. Contended, a locker spins briefly (not while other tasks of its
 * worker are runnable), then waits in a FIFO queue. Fairness is Go's: a
 * woken waiter competes with newcomers, but once a waiter has waited more
 * than 1 ms the mutex switches to hand-off mode, in which an unlock hands
 * the lock straight to the oldest waiter and newcomers queue behind it; it
 * switches back when the queue empties or a waiter that got the lock had
 * waited less than 1 ms. No waiter waits forever while the lock keeps
 * being released. As in Go, a mutex is not tied to whoever locked it: one
 * task may lock it and another unlock it.
 *
 * kn_rwmutex. Any number of readers or one writer: Go's sync.RWMutex.
 * rlock and runlock are one atomic RMW each; an uncontended writer's lock
 * and unlock are two (its kn_mutex, which serialises writers, and the
 * reader count). A writer that arrives bars new readers and waits for the
 * readers already in; the readers that come while it waits or holds the
 * lock all get it together when it unlocks, before the next writer. So
 * neither side starves. Read locks are not recursive: a reader that
 * rlocks again while a writer waits deadlocks (as in Go). At most 2^31 - 1
 * readers at once. The write lock is its kn_mutex's: Debug builds abort
 * when another task or thread than the locker unlocks it (kn_mutex_unlock).
 *
 * kn_cond. Go's sync.Cond over a kn_mutex: wait unlocks the mutex, waits
 * for a signal or broadcast, and locks it again before returning (also on
 * a timeout or cancellation). No spurious wake-ups: wait returns 0 only
 * after a signal or broadcast that chose it. Signal and broadcast may be
 * called with or without the mutex held; they wake only waiters that
 * registered before them (a waiter registers before it unlocks the
 * mutex).
 *
 * kn_once. Runs fn(arg) once; every other caller waits until it returned.
 *
 * Return values: 0, or
 *   EINVAL     a NULL object (or function); unlocking a mutex that is not
 *              locked, runlocking a rwmutex no reader holds, unlocking one
 *              no writer holds; a cond wait with a mutex that is not locked
 *   EAGAIN     try_lock/try_rlock: the lock is not free now
 *   ETIMEDOUT  the deadline passed first (a deadline already passed does
 *              not wait: try_lock reporting ETIMEDOUT)
 *   ECANCELED  the context was done first; a context already done fails
 *              before anything else
 *   EBUSY      destroy: the object is locked or waited on
 * A lock call that failed holds nothing; when a grant races the timeout or
 * cancellation, exactly one wins. A cond wait that fails (ETIMEDOUT,
 * ECANCELED) still holds the mutex again when it returns. Debug builds
 * (KANAL_DEBUG_CHECKS) also print a line on stderr for each misuse
 * (EINVAL or EBUSY above).
 *
 * Synchronization table
 *
 *   call                      may run concurrently with      blocks   cost
 *   kn_mutex_lock/_until/_ctx  any call but init/destroy     yes      1 CAS fast; spin,
 *                                                                     then queue + park
 *   kn_mutex_try_lock         any call but init/destroy      no       1 CAS
 *   kn_mutex_unlock           any call but init/destroy      no       1 CAS fast; queue
 *                                                                     lock + wake if waited on
 *   kn_rwmutex_rlock/...      any call but init/destroy      yes      1 atomic add fast; else
 *                                                                     waits for the writer
 *   kn_rwmutex_runlock        any call but init/destroy      no       1 atomic sub fast
 *   kn_rwmutex_lock/...       any call but init/destroy      yes      1 CAS + 1 atomic add
 *                                                                     fast; else waits for
 *                                                                     the writer, the readers
 *   kn_rwmutex_unlock         any call but init/destroy      no       1 atomic add + 1 CAS;
 *                                                                     wakes held-up readers
 *   kn_cond_wait/_until/_ctx  any call but init/destroy      yes      queue + park, and the
 *                                                                     mutex's unlock + lock
 *   kn_cond_signal/broadcast  any call but init/destroy      no       1 load if nobody waits
 *   kn_once_do                any kn_once_do                 yes(1)   1 load once done
 *   *_init, *_destroy         nothing on the same object     no       a few stores / loads
 *
 *   (1) while another caller runs fn.
 *
 * Memory order: an unlock happens-before the lock that next gets the
 * mutex (runlock/unlock likewise for the rwmutex's writer and readers);
 * a signal or broadcast happens-before the wait it ends returns; fn's
 * return happens-before every kn_once_do on that once returns.
 */
#ifndef KANAL_SYNC_H
#define KANAL_SYNC_H

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The layouts are the runtime's (runtime/src/sync.c): only their size and
 * alignment are public. A zeroed object is an initialised one. */
typedef struct kn_mutex {
	uint64_t opaque_[4];
} kn_mutex;
typedef struct kn_rwmutex {
	kn_mutex w_; /* it serialises the writers */
	uint64_t opaque_[8];
} kn_rwmutex;
typedef struct kn_cond {
	uint64_t opaque_[3];
} kn_cond;
typedef struct kn_once {
	uint64_t opaque_[4];
} kn_once;

#define KN_MUTEX_INIT {{0}}
#define KN_RWMUTEX_INIT { KN_MUTEX_INIT, {0} }
#define KN_COND_INIT {{0}}
#define KN_ONCE_INIT {{0}}

/* Initialise (as the _INIT macros do). 0 or EINVAL (NULL). */
KN_API int kn_mutex_init(kn_mutex *m);
/* Check that m is neither locked nor waited on: 0, EBUSY, EINVAL. After
 * 0 its memory may be reused; nothing is freed (there is nothing to). */
KN_API int kn_mutex_destroy(kn_mutex *m);

/* Lock m, waiting as long as it takes. */
KN_API int kn_mutex_lock(kn_mutex *m);
/* Lock m only if it is free now: 0 or EAGAIN. */
KN_API int kn_mutex_try_lock(kn_mutex *m);
/* Lock m, waiting until the absolute deadline at most. */
KN_API int kn_mutex_lock_until(kn_mutex *m, uint64_t deadline);
/* Lock m, waiting until ctx is done at most (NULL: forever). */
KN_API int kn_mutex_lock_ctx(kn_mutex *m, kn_ctx *ctx);
/* Unlock m. Never blocks. EINVAL if m was not locked. Go lets any
 * goroutine unlock a Mutex, and so do kanal's Release builds; Debug builds
 * (KANAL_DEBUG_CHECKS) track the holder (the task, or the thread outside
 * the pools) and abort with a message when another one unlocks: that is
 * nearly always a bug, and a lock passed between tasks on purpose is a
 * kn_sem of 1. */
KN_API int kn_mutex_unlock(kn_mutex *m);

/* As kn_mutex_init, kn_mutex_destroy (EBUSY: a reader or writer holds or
 * waits). */
KN_API int kn_rwmutex_init(kn_rwmutex *rw);
KN_API int kn_rwmutex_destroy(kn_rwmutex *rw);

/* Shared (read) side. A reader gets in at once unless a writer holds or
 * waits for the lock; then it waits for that writer's unlock (or gives
 * up: the deadline, ctx; try_rlock: EAGAIN at once). */
KN_API int kn_rwmutex_rlock(kn_rwmutex *rw);
KN_API int kn_rwmutex_try_rlock(kn_rwmutex *rw);
KN_API int kn_rwmutex_rlock_until(kn_rwmutex *rw, uint64_t deadline);
KN_API int kn_rwmutex_rlock_ctx(kn_rwmutex *rw, kn_ctx *ctx);
/* Leave; the last reader a waiting writer waits for lets it in. EINVAL if
 * no reader holds rw. */
KN_API int kn_rwmutex_runlock(kn_rwmutex *rw);

/* Exclusive (write) side: wait for the writers before this one, then bar
 * new readers and wait for the readers in. A writer that gives up (the
 * deadline, ctx) lets in the readers it held up. try_lock: only if nobody
 * holds rw now (and no writer is on its way in), else EAGAIN. */
KN_API int kn_rwmutex_lock(kn_rwmutex *rw);
KN_API int kn_rwmutex_try_lock(kn_rwmutex *rw);
KN_API int kn_rwmutex_lock_until(kn_rwmutex *rw, uint64_t deadline);
KN_API int kn_rwmutex_lock_ctx(kn_rwmutex *rw, kn_ctx *ctx);
/* Let in every reader held up, then the next writer. EINVAL if no writer
 * holds rw. */
KN_API int kn_rwmutex_unlock(kn_rwmutex *rw);

KN_API int kn_cond_init(kn_cond *c);
KN_API int kn_cond_destroy(kn_cond *c);
/* With m locked by the caller: unlock m, wait for a signal or broadcast,
 * lock m again. */
KN_API int kn_cond_wait(kn_cond *c, kn_mutex *m);
/* As kn_cond_wait, until the absolute deadline at most (ETIMEDOUT; a
 * deadline already passed returns at once without unlocking m). */
KN_API int kn_cond_wait_until(kn_cond *c, kn_mutex *m, uint64_t deadline);
/* As kn_cond_wait, until ctx is done at most (ECANCELED; a context already
 * done returns at once without unlocking m). */
KN_API int kn_cond_wait_ctx(kn_cond *c, kn_mutex *m, kn_ctx *ctx);
/* Wake one waiter (the oldest still awake, else the oldest), if any. */
KN_API int kn_cond_signal(kn_cond *c);
/* Wake every waiter. */
KN_API int kn_cond_broadcast(kn_cond *c);

/* Run fn(arg) if no kn_once_do on o has; wait until that call returned.
 * fn must not call kn_once_do on o (it would wait for itself). */
KN_API int kn_once_do(kn_once *o, void (*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif
#endif

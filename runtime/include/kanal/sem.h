/*
 * kanal/sem.h - a weighted counting semaphore (Go's x/sync/semaphore).
 *
 * A semaphore of size N holds N tokens. acquire(n) takes n of them, waiting
 * while they are not there; release(n) gives n back.
 *
 * FIFO, with head-of-line blocking: waiting requests are served strictly in
 * arrival order. A request that does not fit blocks every later one, even
 * a later one that would fit: a large request is never starved by a stream
 * of small ones. Likewise try_acquire fails (EAGAIN) while anyone waits,
 * even if there are enough tokens. Once the head is served, as many of the
 * following requests as then fit are served with it, in order.
 *
 * Return values: 0 on success, or
 *   EINVAL     s NULL, n greater than the size (it could never be served;
 *              Go would wait forever), or a release that would leave more
 *              than N tokens (releasing more than is held: Go panics;
 *              here nothing changes)
 *   EAGAIN     try_acquire: the tokens are not there, or others wait
 *   ETIMEDOUT  the deadline passed first; a deadline already passed does
 *              not wait (the call is a try_acquire reporting ETIMEDOUT)
 *   ECANCELED  the context was done first (cancelled, or its deadline
 *              passed: kn_ctx_err tells which); a context already done
 *              fails before anything else, even when the tokens are there
 * n == 0 succeeds at once (after the checks above). A failed acquire holds
 * nothing: when the grant and the timeout or cancellation race, exactly
 * one of them wins; a lost grant is made to the next waiters instead.
 *
 * Cost: an acquire that does not wait and a release that wakes nobody are
 * one atomic read-modify-write each, no system call, no allocation. When
 * threads on other CPUs change the semaphore between its read and its
 * read-modify-write, the call backs off (a bounded spin, a few hundred
 * nanoseconds at first) before it tries again, which leaves the winner
 * the semaphore's cache line for its next calls. A waiter costs no
 * allocation (its node is on its own stack).
 *
 * A granted waiter may free the semaphore as soon as its acquire returns
 * (provided nobody else uses it): the releaser is done with the semaphore
 * before any waiter can see its grant.
 *
 * Synchronization table
 *
 *   call                   may run concurrently with      blocks   cost
 *   kn_sem_acquire         any call but kn_sem_free       yes      1 CAS fast; lock + park
 *   kn_sem_acquire_until   any call but kn_sem_free       until    as acquire
 *   kn_sem_acquire_ctx     any call but kn_sem_free       yes      as acquire, + 1 load
 *   kn_sem_try_acquire     any call but kn_sem_free       no       1 CAS (or 1 load)
 *   kn_sem_release         any call but kn_sem_free       no       1 CAS fast; lock + wakes
 *   kn_sem_available/size  any call but kn_sem_free       no       1 load / none
 *   kn_sem_new/free        nothing on the same semaphore  no       one allocation / free
 *
 * Memory order: a release happens-before the acquire that gets its tokens
 * (release/acquire on the semaphore word, or through the waiter's decision).
 */
#ifndef KANAL_SEM_H
#define KANAL_SEM_H

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_sem kn_sem;

/* The largest size: the count shares a 64-bit word with a flag. */
#define KN_SEM_MAX (UINT64_MAX >> 1)

/* A semaphore of size n with all n tokens free. NULL with errno EINVAL
 * (n == 0 or n > KN_SEM_MAX) or ENOMEM. */
KN_API kn_sem *kn_sem_new(uint64_t n);

/* Free s. NULL is a no-op. Nobody may be using s (waiting included). */
KN_API void kn_sem_free(kn_sem *s);

/* Take n tokens, waiting as long as it takes. */
KN_API int kn_sem_acquire(kn_sem *s, uint64_t n);
/* Take n tokens only if that needs no waiting: 0 or EAGAIN. */
KN_API int kn_sem_try_acquire(kn_sem *s, uint64_t n);
/* Take n tokens, waiting until the absolute deadline at most. */
KN_API int kn_sem_acquire_until(kn_sem *s, uint64_t n, uint64_t deadline);
/* Take n tokens, waiting until ctx is done at most (NULL: forever). An
 * already-cancelled ctx fails with ECANCELED; so does a wait that is
 * queued when ctx is cancelled, whatever release comes after kn_ctx_cancel
 * returned (cancellation first, go.dev/issue/63615). */
KN_API int kn_sem_acquire_ctx(kn_sem *s, uint64_t n, kn_ctx *ctx);

/* Give n tokens back and serve the waiters they satisfy. Never blocks
 * (it takes the waiters' lock only when someone waits). */
KN_API int kn_sem_release(kn_sem *s, uint64_t n);

/* Free tokens now (a snapshot; 0 for NULL), and the size (0 for NULL). */
KN_API uint64_t kn_sem_available(const kn_sem *s);
KN_API uint64_t kn_sem_size(const kn_sem *s);

#ifdef __cplusplus
}
#endif
#endif

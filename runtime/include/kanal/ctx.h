/*
 * kanal/ctx.h - cancellation contexts (Go's context package).
 *
 * A context is a node of a tree rooted at kn_ctx_background(). A
 * cancellable context (with_cancel, with_deadline, with_timeout) is
 * cancelled by kn_ctx_cancel, by its deadline, by the cancellation of an
 * ancestor, or by the release of its last reference; cancelling it cancels
 * every descendant that has not been cancelled yet, and each of them keeps
 * the cause (code and message) of the cancellation that reached it. Every
 * blocking call of kanal takes a context and fails with ECANCELED once it is
 * cancelled; a context already cancelled fails such a call before it blocks.
 *
 * NULL stands for kn_ctx_background() in every call. Calls given a bad
 * argument return EINVAL (constructors: NULL with errno EINVAL).
 *
 * Lifetime (reference counts)
 *
 *   - A constructor returns one reference, owned by the caller.
 *     kn_ctx_retain adds one, kn_ctx_release drops one.
 *   - A child holds a reference on its parent of its own: a parent stays
 *     valid while any descendant exists, whatever the order of releases.
 *   - Releasing the last reference of a cancellable context that is not
 *     cancelled yet cancels it (cause ECANCELED, no message), like Go's
 *     "defer cancel()"; its descendants are cancelled with it. The memory is
 *     freed once no child holds it either. Value and detached contexts are
 *     only freed.
 *   - A context may be used only while its caller holds a reference
 *     (the call that drops the last one ends the caller's use).
 *   - The background context is static; retain and release do nothing.
 *
 * Deadlines fire on one process-wide timer thread, started by the first
 * context with a deadline of its own and asleep (no periodic wake-up) while
 * no deadline is pending. A child's effective deadline is the earlier of its
 * own and its parent's; only contexts with a deadline earlier than their
 * parent's wait in the timer. In a child of fork() contexts and deadlines
 * work: the child starts its own timer thread with its first deadline, or
 * its first wait if deadlines were pending at the fork (those fire in the
 * child too); a context that another thread was cancelling at the instant
 * of the fork may be unusable there.
 *
 * Synchronization table
 *
 *   call                         may run concurrently with   blocks   cost
 *   kn_ctx_err/done/cause        everything                  no       one seq_cst load
 *   kn_ctx_deadline, _value      everything                  no       reads immutable fields
 *   kn_ctx_with_*                everything                  no       one allocation; the
 *                                                                     parent's lock (cancellable)
 *   kn_ctx_cancel                everything                  no(1)    locks each cancelled
 *                                                                     context once; runs the
 *                                                                     after_funcs
 *   kn_ctx_wait                  everything                  yes      waiter layer
 *   kn_ctx_after_func            everything                  no(1)    the context's lock
 *   kn_ctx_stop_after_func       everything but a second     no       one CAS, the lock
 *                                registration of the same stop
 *   kn_ctx_retain/release        everything (while a         no(1)    one atomic RMW
 *                                reference is held)
 *
 *   (1) runs the after_func callbacks it triggers, on the calling thread.
 *
 * Memory order: a cancellation (the cause included) happens-before every
 * kn_ctx_err/done/cause that reports it, every wake-up it causes, and every
 * after_func it runs.
 */
#ifndef KANAL_CTX_H
#define KANAL_CTX_H

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The root: never cancelled, no deadline, no values. Static. */
KN_API kn_ctx *kn_ctx_background(void);

/*
 * Children of parent (NULL: background). Each returns a new reference, or
 * NULL with errno ENOMEM (with_deadline also: EAGAIN if the timer thread
 * cannot be started). A child of a cancelled parent is born cancelled with
 * the parent's cause. with_deadline takes an absolute CLOCK_MONOTONIC time
 * (KN_FOREVER: none; a time already passed: born cancelled with ETIMEDOUT);
 * with_timeout is with_deadline(parent, kn_deadline_in(ns)).
 * Non-blocking; may run concurrently with anything on parent.
 */
KN_API kn_ctx *kn_ctx_with_cancel(kn_ctx *parent);
KN_API kn_ctx *kn_ctx_with_deadline(kn_ctx *parent, uint64_t deadline);
KN_API kn_ctx *kn_ctx_with_timeout(kn_ctx *parent, uint64_t ns);

/*
 * Go's WithoutCancel: a child that keeps parent's values but is never
 * cancelled and has no deadline (contexts made from it start a new
 * cancellation tree). NULL with errno ENOMEM.
 */
KN_API kn_ctx *kn_ctx_without_cancel(kn_ctx *parent);

/*
 * Go's WithValue: a child carrying (key, value); lookups compare key
 * pointers, so use the address of a static object as the key. It is
 * cancelled when parent is; it cannot be cancelled by itself. NULL with
 * errno EINVAL (key NULL) or ENOMEM.
 */
KN_API kn_ctx *kn_ctx_with_value(kn_ctx *parent, const void *key, void *value);

/* The value of the nearest context up the chain carrying key, or NULL. */
KN_API void *kn_ctx_value(kn_ctx *ctx, const void *key);

/*
 * Cancel ctx and its descendants with cause code (0 means ECANCELED) and
 * an optional message, which is copied (if the copy cannot be allocated
 * the message is dropped; the cancellation still happens). Returns 0,
 * EALREADY if ctx was already cancelled (the first cause stays), EINVAL for
 * a negative code or a context that cannot be cancelled by itself
 * (background, value, detached). Runs the after_funcs of every context it
 * cancels, on this thread, before returning. Non-blocking otherwise.
 */
KN_API int kn_ctx_cancel(kn_ctx *ctx, int code, const char *msg);

/* 0 while live; ECANCELED once cancelled, ETIMEDOUT if its deadline (or an
 * ancestor's) did it. One atomic load. */
KN_API int kn_ctx_err(kn_ctx *ctx);
/* kn_ctx_err(ctx) != 0. */
KN_API bool kn_ctx_done(kn_ctx *ctx);

/*
 * The cause: the code given to kn_ctx_cancel (ECANCELED for a release,
 * ETIMEDOUT for a deadline), 0 while live. If msg is not NULL, *msg gets
 * the message or NULL; it stays valid while the caller holds ctx.
 */
KN_API int kn_ctx_cause(kn_ctx *ctx, const char **msg);

/*
 * Block until ctx is cancelled (0) or the absolute deadline passes
 * (ETIMEDOUT; a deadline already passed does not wait). A context that is
 * never cancelled (background, detached) waits for the deadline only:
 * with KN_FOREVER, forever, as Go's <-ctx.Done() does.
 */
KN_API int kn_ctx_wait(kn_ctx *ctx, uint64_t deadline);

/* The effective deadline (the earliest up the chain); KN_FOREVER if none. */
KN_API uint64_t kn_ctx_deadline(kn_ctx *ctx);

/*
 * Go's AfterFunc. The registration lives in a kn_ctx_stop that the caller
 * owns (no allocation): it must stay valid until kn_ctx_stop_after_func has
 * returned or fn has started, and may then be reused.
 */
typedef struct kn_ctx_stop {
	/* Private to kanal. */
	struct kn_ctx_stop *next_, *prev_;
	void *ctx_;
	void (*fn_)(void *);
	void *arg_;
	uint32_t state_;
} kn_ctx_stop;

/*
 * Run fn(arg) once when ctx is cancelled: on the thread that cancels it
 * (the timer thread for a deadline), or at once on this thread if ctx is
 * already cancelled. Never runs for a context that cannot be cancelled.
 * 0, or EINVAL (fn or stop NULL). fn may call anything on ctx, release
 * included. Non-blocking (apart from fn when it runs at once).
 *
 * fn must not block (no waiting send, receive, acquire, join, sleep): kanal
 * has one timer thread, and while an after_func run by a deadline waits,
 * no other deadline in the process fires. Hand blocking work to a task
 * (kn_go) or use the try_ forms. A Debug build aborts with a message when
 * a call would wait on the timer thread.
 */
KN_API int kn_ctx_after_func(kn_ctx *ctx, void (*fn)(void *), void *arg,
			     kn_ctx_stop *stop);

/*
 * Deregister: true if this call stopped fn from ever running, false if fn
 * has run or is running (it does not wait for fn) or was stopped already.
 * Afterwards stop is the caller's again. NULL returns false.
 */
KN_API bool kn_ctx_stop_after_func(kn_ctx_stop *stop);

/* References: see "Lifetime" above. retain returns ctx. NULL is a no-op. */
KN_API kn_ctx *kn_ctx_retain(kn_ctx *ctx);
KN_API void kn_ctx_release(kn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif

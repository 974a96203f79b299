/*
 * kanal/time.h - time for tasks: sleeping, yielding, timer channels
 * (Go's time.Sleep, runtime.Gosched, time.NewTimer/After, time.NewTicker).
 *
 * Sleeping parks through kanal's waiter layer like every blocking call: in
 * a pool task the task is suspended (its worker runs other tasks, the
 * process's one timer thread makes it runnable again at the deadline, on
 * its own worker), so 100,000 sleeping tasks cost no thread; on any other
 * thread the thread itself sleeps. A sleep ends at or after its deadline,
 * never before; how late depends on the scheduler (a busy worker resumes a
 * woken task after the task it is running).
 *
 * Timers deliver the time they fired (kn_now(), uint64_t nanoseconds) on a
 * channel of capacity 1, usable in kn_select like any channel:
 *
 *   one-shot (time.NewTimer, time.After):  kn_timer_new(delay, 0)
 *   ticker   (time.NewTicker(d)):           kn_timer_new(d, d)
 *
 * A ticker whose receiver is slow drops ticks: the channel holds at most
 * one, a tick that finds it full is discarded, and the next tick is
 * scheduled on the period's grid after the current time (never a backlog,
 * never a burst of catching up), as in Go. Stop and reset also discard a
 * value still in the channel (Go 1.23's semantics: no stale tick after
 * them). Timers fire on the timer thread and never block it.
 *
 * Return values: 0, or ECANCELED (kn_sleep_ctx: the context was cancelled
 * first, or was already), EINVAL (a NULL timer), EAGAIN (the timer thread
 * could not be started).
 *
 * Synchronization table
 *
 *   call                 may run concurrently with        blocks   cost
 *   kn_sleep, _until,    everything                       yes      waiter layer; a timer
 *   _ctx                                                           heap entry (no allocation)
 *   kn_yield             everything                       no(1)    one fiber switch in a task
 *   kn_timer_new         everything                       no       one allocation + a channel
 *   kn_timer_chan        everything but free              no       reads a field
 *   kn_timer_stop, reset everything but free              no(2)    the timer's lock, the heap's
 *   kn_timer_free        nothing on this timer or its     no(2)    stop, then frees
 *                        channel
 *
 *   (1) lets the worker run other runnable tasks first; sched_yield on a
 *       plain thread.
 *   (2) may wait a few instructions for a fire that has begun.
 *
 * Memory order: everything before a stop or reset happens-before the next
 * value the timer delivers.
 */
#ifndef KANAL_TIME_H
#define KANAL_TIME_H

#include "kanal/base.h"
#include "kanal/chan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sleep ns nanoseconds (0: return at once). Always 0. */
KN_API int kn_sleep(uint64_t ns);
/* Sleep until the absolute deadline (kn_now() clock). Always 0. */
KN_API int kn_sleep_until(uint64_t deadline);
/* Sleep ns nanoseconds or until ctx is cancelled: 0 or ECANCELED. */
KN_API int kn_sleep_ctx(uint64_t ns, kn_ctx *ctx);

/* Let other runnable tasks of this worker run, then go on (Go's
 * runtime.Gosched). On a thread that is not a pool worker: sched_yield. */
KN_API void kn_yield(void);

typedef struct kn_timer kn_timer;

/*
 * A timer that delivers the fire time on its channel after delay ns, and
 * then every period ns (0: once). NULL with errno ENOMEM or EAGAIN.
 */
KN_API kn_timer *kn_timer_new(uint64_t delay, uint64_t period);
/* Its channel (uint64_t values, capacity 1); owned by the timer. NULL for
 * NULL. */
KN_API kn_chan *kn_timer_chan(kn_timer *t);
/* Stop it: no value is delivered after the call, and a value not yet
 * received is discarded. 0, or EINVAL for NULL. Stopping twice is fine. */
KN_API int kn_timer_stop(kn_timer *t);
/* Stop, then start again as kn_timer_new(delay, period) would. 0, EINVAL,
 * EAGAIN. */
KN_API int kn_timer_reset(kn_timer *t, uint64_t delay, uint64_t period);
/* Stop and free the timer and its channel. NULL is a no-op. No other call
 * on the timer or its channel may be running or start. */
KN_API void kn_timer_free(kn_timer *t);

#ifdef __cplusplus
}
#endif
#endif

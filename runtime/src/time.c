/*
 * time.c - sleeping, yielding and timer channels (kanal/time.h).
 *
 * Sleeping is a wait that nobody notifies: a waiter parked with the
 * deadline, decided SEL_TIMEOUT by its owner's futex timeout (a thread) or
 * by the timer thread (a suspended task: waiter.c's fiber deadline), or
 * SEL_CANCEL by the context. Nothing here touches a futex or a fiber.
 *
 * Timers. A kn_timer owns a capacity-1 channel and one timer entry. Its
 * state (armed, period, and whether the entry belongs to the timer thread)
 * is guarded by the kn_timer's lock, taken by stop/reset/free and by the
 * fire function. Firing sends the time with try_send, which never blocks
 * and drops the tick when the previous one is still unreceived, and
 * re-adds a periodic entry at the first multiple of the period after now.
 *
 * The one race: the timer thread takes a due entry out of its heap and
 * only then calls fire, which waits for the lock. A stop in that window
 * finds timer_remove false although fire has not run yet; it must neither
 * re-add the entry (it would be in the heap and about to fire at once) nor
 * free the timer under fire. So:
 *
 * Invariants (under lock)
 *
 *  1. owned == the entry is in the heap or taken out for a fire that has
 *     not yet taken the lock; an entry is added only when !owned.
 *  2. armed == false from a stop's lock on: a fire that then takes the
 *     lock clears owned and neither sends nor re-adds.
 *  3. The fire function's last access to the kn_timer is its unlock; a
 *     stop that waits for owned to clear (disarm) therefore leaves no
 *     fire running on the timer, and free may follow.
 */
#include "kanal/time.h"
#include "kanal/ctx.h"

#include <sched.h>
#include <stddef.h>

#include "timer.h"
#include "waiter.h"

/* ---- sleeping ------------------------------------------------------------ */

static int sleep_on(uint64_t deadline, kn_ctx *ctx)
{
	struct waiter w;

	waiter_init(&w, WAIT_ON(WAIT_SLEEP, NULL));
	return waiter_park(&w, deadline, ctx) == SEL_CANCEL ? ECANCELED : 0;
}

int kn_sleep_until(uint64_t deadline)
{
	return sleep_on(deadline, NULL);
}

int kn_sleep(uint64_t ns)
{
	return sleep_on(kn_deadline_in(ns), NULL);
}

int kn_sleep_ctx(uint64_t ns, kn_ctx *ctx)
{
	if (ctx && kn_ctx_err(ctx))
		return ECANCELED;
	return sleep_on(kn_deadline_in(ns), ctx);
}

void kn_yield(void)
{
	if (!waiter_yield()) {
		stat_count_syscall();
		sched_yield();
	}
}

/* ---- timers ----------------------------------------------------------- */

struct kn_timer {
	struct timer_entry e;
	struct lock lock;
	kn_chan *ch;
	uint64_t period; /* 0: one-shot */
	bool armed;      /* values may still be delivered */
	bool owned;      /* the timer thread has the entry (invariant 1) */
};

/* The first point of when's period grid after now: missed ticks are
 * skipped, not delivered late in a burst. */
static uint64_t next_tick(uint64_t when, uint64_t period, uint64_t now)
{
	if (now < when)
		return when + period;
	return when + period * ((now - when) / period + 1);
}

static void timer_fire(struct timer_entry *e)
{
	kn_timer *t = (kn_timer *)((char *)e - offsetof(kn_timer, e));
	uint64_t now = kn_now();

	lock_acquire(&t->lock, LOCK_TICKER);
	if (t->armed) {
		kn_chan_try_send(t->ch, &now); /* full: the tick is dropped */
		if (t->period)
			t->armed = timer_add(e, next_tick(e->when, t->period, now),
					     timer_fire) == 0;
		else
			t->armed = false;
	}
	t->owned = t->armed;
	lock_release(&t->lock); /* invariant 3: the last touch */
}

/* With the lock: no value will be delivered, and the entry is ours.
 * Waits out a fire that has been taken out of the heap (invariant 2). */
static void disarm(kn_timer *t)
{
	struct backoff b = { 0 };
	uint64_t stale;

	t->armed = false;
	while (t->owned && !timer_remove(&t->e)) {
		lock_release(&t->lock);
		backoff_snooze(&b);
		lock_acquire(&t->lock, LOCK_TICKER);
	}
	t->owned = false;
	kn_chan_try_recv(t->ch, &stale);
}

/* With the lock, disarmed. */
static int arm(kn_timer *t, uint64_t delay, uint64_t period)
{
	t->period = period;
	t->armed = t->owned =
		timer_add(&t->e, kn_deadline_in(delay), timer_fire) == 0;
	return t->armed ? 0 : EAGAIN;
}

kn_timer *kn_timer_new(uint64_t delay, uint64_t period)
{
	kn_timer *t = kn_calloc(1, sizeof(*t));
	int err;

	if (!t) {
		errno = ENOMEM;
		return NULL;
	}
	t->ch = kn_chan_new(sizeof(uint64_t), 1);
	if (!t->ch) {
		kn_free(t);
		errno = ENOMEM;
		return NULL;
	}
	lock_acquire(&t->lock, LOCK_TICKER);
	err = arm(t, delay, period);
	lock_release(&t->lock);
	if (err) {
		kn_timer_free(t);
		errno = err;
		return NULL;
	}
	return t;
}

kn_chan *kn_timer_chan(kn_timer *t)
{
	return t ? t->ch : NULL;
}

int kn_timer_stop(kn_timer *t)
{
	if (!t)
		return EINVAL;
	lock_acquire(&t->lock, LOCK_TICKER);
	disarm(t);
	lock_release(&t->lock);
	return 0;
}

int kn_timer_reset(kn_timer *t, uint64_t delay, uint64_t period)
{
	int err;

	if (!t)
		return EINVAL;
	lock_acquire(&t->lock, LOCK_TICKER);
	disarm(t);
	err = arm(t, delay, period);
	lock_release(&t->lock);
	return err;
}

void kn_timer_free(kn_timer *t)
{
	if (!t)
		return;
	kn_timer_stop(t);
	kn_chan_free(t->ch);
	kn_free(t);
}

/*
 * timer.h - the process-wide timer thread (internal).
 *
 * One thread, started by the first timer_add, keeps the pending entries in a
 * pairing heap by time and parks through the waiter layer until the earliest
 * one is due (forever while the heap is empty: an idle process never wakes
 * it). A due entry is taken out of the heap and its fire function runs on
 * the timer thread, outside every lock. A fire function must not wait (it
 * would hold every later entry): Debug builds abort if it would
 * (waiter_debug_no_park).
 *
 * Ownership: from a successful timer_add until either timer_remove returns
 * true or fire is called, the entry belongs to the timer; exactly one of
 * the two happens. Callers typically hold a reference on the entry's owner
 * for the timer and drop it in both places.
 *
 * Synchronization table
 *
 *   call            may run concurrently with    blocks  cost
 *   timer_add       everything                   no      heap lock, O(1);
 *                                                        a wake only if the
 *                                                        entry is the earliest
 *   timer_remove    everything                   no      heap lock, O(log n)
 *   timer_others_pending  everything             no      heap lock, O(1)
 */
#ifndef KN_TIMER_H
#define KN_TIMER_H

#include "platform.h"

struct timer_entry {
	uint64_t when;                          /* absolute, CLOCK_MONOTONIC ns */
	void (*fire)(struct timer_entry *e);    /* runs on the timer thread */
	/* The heap's links (timer.c), under the heap lock. */
	struct timer_entry *child, *next, *prev;
	bool queued;                            /* in the heap */
};

/* Schedule e->fire at when. 0, or EAGAIN (the timer thread could not be
 * started: only the first call starts it); on error e is not scheduled.
 * Never allocates. */
int timer_add(struct timer_entry *e, uint64_t when,
	      void (*fire)(struct timer_entry *e));

/* Unschedule e: true if it was pending (fire will not run), false if it had
 * been taken out to fire (or its timer_add failed). */
bool timer_remove(struct timer_entry *e);

/* Is an entry other than e (NULL: any) pending? A snapshot under the
 * heap lock, for the deadlock report (pool_diag.c). */
bool timer_others_pending(const struct timer_entry *e);

struct block_hook;
struct waiter;

/* A block hook's suspend_until (waiter.h): hook->suspend(hook->arg, w)
 * with a timer entry that decides w with SEL_TIMEOUT at deadline; the
 * entry lives in this frame and is gone (or its fire done) on return.
 * False, without suspending, if the timer thread cannot be started. */
bool timer_suspend_until(const struct block_hook *hook, struct waiter *w,
			 uint64_t deadline);

#endif

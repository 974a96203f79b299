/*
 * sleeps.h - counting a thread's sleeps in kanal's waits (waiter.h's block
 * hook), for the tests that must know a thread is parked in its call, not
 * merely about to make it. On the thread that will wait:
 *
 *	struct block_hook h = kt_sleep_counter(&sleeps);
 *
 *	waiter_set_block_hook(&h);
 *	... the call that waits ...
 *	waiter_set_block_hook(NULL);
 *
 * sleeps (an _Atomic int) goes up by one each time the thread parks.
 */
#ifndef KT_SLEEPS_H
#define KT_SLEEPS_H

#include "waiter.h"

static inline void kt_count_sleep(void *arg, const struct waiter *w)
{
	(void)w;
	at_add_seq_cst((_Atomic int *)arg, 1);
}

static inline void kt_woke(void *arg)
{
	(void)arg;
}

static inline struct block_hook kt_sleep_counter(_Atomic int *sleeps)
{
	return (struct block_hook){ .enter = kt_count_sleep, .leave = kt_woke,
				    .arg = sleeps };
}

#endif

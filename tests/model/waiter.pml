/*
 * waiter.pml - the park/notify protocol of runtime/src/waiter.c, as the
 * ring channel's receivers use it (runtime/src/chan.c).
 *
 * The waiter layer itself is in waitq.inc: the word sel (one decision by
 * CAS, WAITING -> PARKED by the owner), the futex (sleeps only while sel is
 * PARKED, a deadline ends the sleep), the wait queue (FIFO under a lock,
 * its count n read without it) and notify_one (n == 0 or a spinner
 * announced: nothing; else pick, CAS, unlink, wake outside the lock).
 *
 * This file adds the condition, "a value is buffered" (items > 0), and
 * the two sides of chan.c around it:
 *
 *   producer: put a value (ring_try_send's CAS), then chan_signal, i.e.
 *             notify_one on the receive queue;
 *   consumer: kn_chan_recv ("lone": a fast try, then ring_spin: announce
 *             itself in spinning, poll, withdraw, pass the baton if it
 *             succeeded and values are still there), or kn_select ("sel":
 *             no spinning); then wait_cases: try, check the deadline,
 *             register (push: n++), re-check the condition (ring_ready)
 *             and withdraw with SEL_ABORT, park, unregister (the node a
 *             notifier decided is its to unlink), retry.
 *
 * Processes: consumer 0 (select, no deadline), consumer 1 (lone, no
 * deadline), consumer 2 (lone with a deadline: it may time out, in the
 * futex or before registering, racing a notification), and two producers
 * with three values in all, one per consumer.
 *
 * Checked: assertions, among them the waiter invariants (one decision per
 * round; a node unlinked before its owner leaves: waiter.c invariant 3;
 * n == linked nodes when the lock is free: invariant 4); invalid end
 * states; and "no lost wake-up": a monitor that runs only when no other
 * process can move (Promela's timeout, so at the end of every execution,
 * deadlocked or not) asserts that every consumer without a deadline got
 * its value, that no value is left while a consumer gave up only if it
 * was the deadline's, and that values taken + left == values put.
 * With -DNP (pan -l): no cycle without progress, i.e. no livelock.
 *
 * Options (tests/model/check runs the combinations): those of waitq.inc,
 * and
 *   -DNOSPIN        consumers never spin (the register/re-check core alone)
 *   -DFIX_BATON  ring_spin passes the baton after a failed spin too
 */

#ifndef NW
#define NW 3
#endif
#ifndef P0
#define P0 2
#endif
#ifndef P1
#define P1 1
#endif
#ifndef LONE2
#define LONE2 true
#endif
#ifndef DL2
#define DL2 true
#endif
#define NQ 1
#define RECVQ 0

#include "waitq.inc"

#ifndef SPINS
#define SPINS 1
#endif

byte items;             /* values buffered */
byte produced, consumed;
bool finished[NW];      /* returned 0 */
bool gaveup[NW];        /* returned ETIMEDOUT */

/* ring_try_recv at its linearization point (the head CAS). */
inline try_take(got)
{
	if
	:: items > 0 -> items--; consumed++; got = true
	:: else -> got = false
	fi
}

/* ring_spin: announce, poll, withdraw the announcement, pass the baton
 * (a notifier that saw the announcement skipped the sleepers). */
inline ring_spin(id, got)
{
	spinning[RECVQ]++;
	k = 0;
	do
	:: atomic {
		k < SPINS ->
		try_take(got);
		if
		:: got -> k = 0; break
		:: else -> k++
		fi
	   }
	:: atomic { k >= SPINS -> k = 0; break }
	od;
	spinning[RECVQ]--;
#ifndef FIX_BATON
	if
	:: !got -> skip
	:: else ->
#endif
		if
		:: items > 0 -> notify_one(RECVQ)
		:: else -> skip
		fi
#ifndef FIX_BATON
	fi
#endif
}

proctype consumer(byte id; bool lone; bool dl)
{
	WAITQ_LOCALS;
	bool got, exp, notified;
	byte k;

	if
	:: lone ->
		atomic {
			try_take(got);
			if
			:: got -> goto done
			:: else -> skip
			fi
		};
#ifndef NOSPIN
		ring_spin(id, got);
		if
		:: got -> goto done
		:: else -> skip
		fi
#endif
	:: else -> skip
	fi;
	/* wait_cases */
	do
	:: atomic {
		try_take(got);
		if
		:: got -> goto taken
		:: else -> skip
		fi
	   };
		/* the deadline check, then register: one step, the first being
		 * local */
		atomic {
			deadline_tick(dl, exp);
			if
			:: dl && exp -> gaveup[id] = true; goto out
			:: else -> skip
			fi;
			waiter_init(id);
			lock_acquire(qlk[RECVQ]);
			push_locked(RECVQ, id);
			lock_release(qlk[RECVQ], RECVQ)
		};
		/* the re-check after registering (ring_ready, seq_cst loads) */
		atomic {
			if
			:: items > 0 -> decide_self(id, ABORT)
			:: else -> skip
			fi
		};
		park(id, dl, exp);
		/* unregister_all: a notifier that decided the node unlinked it */
		if
		:: v == CASE0 -> notified = true; v = 0
		:: else -> v = 0; remove(RECVQ, id)
		fi
	od;
taken:
#ifdef FIX_BATON
	/* a notified waiter may carry a notification that others skipped
	 * for a spinner: pass it on while values are left */
	if
	:: notified ->
		if
		:: items > 0 -> notify_one(RECVQ)
		:: else -> skip
		fi
	:: else -> skip
	fi;
#endif
done:
	finished[id] = true;
out:
	/* waiter.c invariant 3: unlinked before the owner's frame ends */
	assert(lq[id] == 0)
}

proctype producer(byte k)
{
	WAITQ_LOCALS;

	do
	:: k > 0 ->
		d_step { items++; produced++ };
		notify_one(RECVQ);
		k--
	:: else -> break
	od
}

proctype monitor()
{
	timeout;
	assert(finished[0] && finished[1]);
	assert(consumed + items == produced);
#if NW > 2
	assert(finished[2] || DL2 && gaveup[2]);
	assert(items == 0 || DL2 && gaveup[2])
#else
	assert(items == produced - 2)
#endif
}

init
{
	WAITQ_LOCALS;

	atomic {
		waitq_init_all();
		run consumer(0, false, false);
		run consumer(1, true, false);
#if NW > 2
		run consumer(2, LONE2, DL2);
#endif
		run producer(P0);
#if P1 > 0
		run producer(P1);
#endif
		run monitor()
	}
}

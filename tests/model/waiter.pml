/*
 * waiter.pml - the park/notify protocol of runtime/src/waiter.c, as the
 * ring channel's receivers use it (runtime/src/chan.c).
 *
 * The waiter layer itself is in waitq.inc: the word sel (one decision by
 * CAS, WAITING -> PARKED by the owner), the futex (sleeps only while sel is
 * PARKED, a deadline ends the sleep), the wait queue (FIFO under a lock,
 * its count n read without it) and notify_one (n == 0 or a spinner
 * announced: nothing; else pick, claim, unlink, and publish the token
 * after the unlock).
 *
 * This file adds the condition, "a value is buffered" (items > 0), and
 * the two sides of chan.c around it:
 *
 *   producer: put a value (ring_try_send's CAS), then chan_signal, i.e.
 *             notify_one on the receive queue;
 *   consumer: kn_chan_recv ("lone": a fast try first) or kn_select, then
 *             wait_cases: try; check the deadline; the first time round,
 *             poll_rings (poll a bounded number of times, unannounced);
 *             register (push: n++),
 *             re-check the condition (ring_ready) and withdraw with
 *             SEL_ABORT; park; unregister (a node its notifier decided is
 *             already unlinked); retry.
 *
 * Processes: consumer 0 (select, no deadline), consumer 1 (lone, no
 * deadline), consumer 2 (lone with a deadline: it may time out, before
 * registering or in the futex, racing a notification), and one or two
 * producers (P0, P1 values).
 *
 * Checked: assertions (the waiter invariants of waitq.inc: one decision
 * per round, n == linked nodes when the lock is free, a node unlinked
 * before its owner returns); invalid end states; and "no lost wake-up": a
 * monitor that runs only when no other process can move (Promela's
 * timeout, so at the end of every execution, deadlocked or not) asserts
 * that every consumer without a deadline got its value, that a value is
 * left over only if the deadline's consumer gave up, and that values
 * taken + left == values put. With -DNP (pan -l): no cycle without
 * progress, i.e. no livelock.
 *
 * Options (tests/model/check runs the combinations): -DSPURIOUS (waitq.inc),
 * and
 *   -DNOSPIN     waits do not poll (the register/re-check core alone)
 *   -DSKIP_FOR_POLLERS  the earlier design (waitq.inc): pollers announce
 *                themselves, notifiers skip sleepers meanwhile, a poll that
 *                succeeds passes one baton. The model finds a lost wake-up
 *                in it (consumer 1 sleeps; consumer 0 polls announced and
 *                fails its last try; both producers skip the notification;
 *                consumer 0 registers, its re-check aborts the park, it
 *                takes one value: one value stays while consumer 1 sleeps),
 *                which is why the code no longer announces pollers.
 *   -DFIX_BATON  with SKIP_FOR_POLLERS: a baton after every poll and every
 *                notified success, the other repair the model accepts
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
#define NQ 1
#define RECVQ 0

#include "waitq.inc"

#ifndef SPINS
#define SPINS 1         /* tries of the poll */
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

/* poll_rings for one case: poll a bounded number of times. (The
 * SKIP_FOR_POLLERS mutant announces the poll and passes a baton.) */
inline poll_rings(got)
{
#ifdef SKIP_FOR_POLLERS
	spinning[RECVQ]++;
#endif
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
#ifdef SKIP_FOR_POLLERS
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
#endif
}

proctype consumer(byte id; bool lone; bool dl)
{
	WAITQ_LOCALS;
	bool got, exp, notified, polled;
	byte k;

	if
	:: lone ->
		/* chan_op's fast try */
		atomic {
			try_take(got);
			if
			:: got -> goto done
			:: else -> skip
			fi
		}
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
		atomic {
			deadline_tick(dl, exp);
			if
			:: dl && exp -> gaveup[id] = true; goto out
			:: else -> skip
			fi
		};
#ifndef NOSPIN
		if
		:: !polled ->
			polled = true;
			poll_rings(got);
			if
			:: got -> goto done
			:: else -> skip
			fi
		:: else -> skip
		fi;
#endif
		/* register: local until the push */
		atomic {
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
#if defined(SKIP_FOR_POLLERS) && defined(FIX_BATON)
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
	/* a node is unlinked before its owner's frame ends */
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
	assert(finished[2] || gaveup[2]);
	assert(items == 0 || gaveup[2])
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
		run consumer(2, true, true);
#endif
		run producer(P0);
#if P1 > 0
		run producer(P1);
#endif
		run monitor()
	}
}

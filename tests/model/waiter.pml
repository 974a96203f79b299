/*
 * waiter.pml - the park/notify protocol of runtime/src/waiter.c, as the
 * ring channel (runtime/src/chan.c) uses it for its receivers.
 *
 * What is modelled
 *
 *   - the waiter word sel: WAITING -> PARKED by its owner, and exactly one
 *     decision by a CAS away from WAITING/PARKED (a notifier's token, the
 *     owner's timeout, the owner's own withdrawal SEL_ABORT);
 *   - the futex: futex_wait(&sel, PARKED) sleeps only if sel is still
 *     PARKED (checked atomically by the kernel), futex_wake wakes it, a
 *     deadline ends the sleep with ETIMEDOUT; optionally (-DSPURIOUS)
 *     spurious returns, which also stand for the late wake of a decider
 *     that hits the next round's sleep (wake after free, glibc BZ 12674);
 *   - the wait queue: a FIFO of nodes under a lock, and its count n that
 *     notify_one reads without the lock; notify_one's pick (first waiter
 *     awake, else first asleep), its retry when the pick's CAS loses, the
 *     unlink, and the wake outside the lock;
 *   - the receive side of chan.c's wait loop: try, register (push: n++),
 *     re-check the condition and withdraw (SEL_ABORT), park, unregister,
 *     retry; the deadline check before registering and in waiter_park;
 *   - ring_spin: the "spinning" announcement (waitq_spin_enter/exit) that
 *     makes notify_one skip the queue, and the pass-the-baton rule.
 *
 * The condition is "a value is buffered" (items > 0): producers put values
 * (ring_try_send then chan_signal -> notify_one on the receive queue) and
 * consumers take them. Every access the no-lost-wake-up argument relies on
 * is seq_cst in the C code (the ring's CASes and loads, n, spinning), so
 * Promela's interleaving semantics (sequential consistency) is faithful
 * for them; pick_locked's scan is one atomic step (its reads are only hints:
 * the CAS that follows re-validates), and the queue lock is one atomic
 * test-and-set (the futex mutex itself is not modelled).
 *
 * Processes: two "select" consumers (kn_select: no spinning), one of them
 * with a deadline, and one "lone" consumer (kn_chan_recv: fast try, then
 * ring_spin, then the wait loop); two producers putting values. The
 * forever consumers need one value each, the deadline consumer one or
 * none; there are as many values as demands.
 *
 * Checked: assertions (below), invalid end states (a consumer blocked for
 * ever), and a global "no lost wake-up" assertion by a monitor process
 * that runs only when nothing else can (Promela's timeout): then no
 * forever consumer may still be waiting, and values taken plus values left
 * must equal values put. With -DNP: no cycle without progress (livelock).
 *
 * Options (tests/model/check runs the combinations):
 *   -DSPURIOUS        futex_wait may return spuriously (safety only)
 *   -DNOSPIN          no lone consumer spins (the register/recheck core)
 *   -DBATON_ALWAYS    ring_spin passes the baton whether or not its own
 *                     spin succeeded (the proposed fix, see check)
 */

#define NC 3            /* consumers */
#define NONE 255

#define WAITING 0
#define PARKED 1
#define TIMEOUT 3
#define ABORT 5
#define CASE0 8

#ifndef SPINS
#define SPINS 1         /* ring_spin polls before giving up */
#endif

byte sel[NC];
byte ndec[NC];          /* decisions of the current round: at most one */
bool asleep[NC];        /* inside futex_wait on sel[i] */
bool expired[NC];       /* consumer i's deadline has passed (monotonic) */
bool linked[NC];
bool finished[NC];      /* returned 0 */
bool gaveup[NC];        /* returned ETIMEDOUT */

byte q[NC];             /* the FIFO of waiting consumers, under lk */
byte qlen;
byte n;                 /* waitq.n: read without the lock */
byte spinning;          /* waitq.spinning */
bit lk;                 /* the queue lock */

byte items;             /* values buffered */
byte produced, consumed;

inline lock()
{
	atomic { lk == 0 -> lk = 1 }
}

/* Invariant 4 of waiter.c: n == linked nodes whenever the lock is free. */
inline unlock()
{
	assert(n == qlen);
	lk = 0
}

/* The ring operation (its linearization point, one atomic CAS). */
inline try_take(got)
{
	atomic {
		if
		:: items > 0 -> items--; consumed++; got = true
		:: else -> got = false
		fi
	}
}

/* waitq_push: lock, link at the tail, n++ (the seq_cst registration). */
inline push(id)
{
	lock();
	d_step {
		assert(!linked[id]);
		q[qlen] = id; qlen++; linked[id] = true
	};
	n++;
	unlock()
}

inline unlink_locked(id)
{
	d_step {
		j = 0;
		do
		:: q[j] == id -> break
		:: else -> j++
		od;
		do
		:: j + 1 < qlen -> q[j] = q[j + 1]; j++
		:: else -> break
		od;
		qlen--; q[qlen] = NONE; linked[id] = false; j = 0
	};
	n--
}

/* waitq_remove: unlink if still linked. */
inline remove(id)
{
	lock();
	if
	:: linked[id] -> unlink_locked(id)
	:: else -> skip
	fi;
	unlock()
}

/* decide_quiet: the one CAS away from WAITING/PARKED. */
inline decide(w, token, ok, prv)
{
	atomic {
		if
		:: sel[w] == WAITING || sel[w] == PARKED ->
			prv = sel[w]; sel[w] = token; ndec[w]++; ok = true;
			assert(ndec[w] == 1)
		:: else -> ok = false
		fi
	}
}

/* pick_locked: the first node whose owner is awake, else the first asleep. */
inline pick(p)
{
	d_step {
		p = NONE; j = 0;
		do
		:: j < qlen && sel[q[j]] == WAITING -> p = q[j]; break
		:: j < qlen && sel[q[j]] == PARKED && p == NONE -> p = q[j]; j++
		:: j < qlen && !(sel[q[j]] == WAITING) &&
		   !(sel[q[j]] == PARKED && p == NONE) -> j++
		:: j >= qlen -> break
		od;
		j = 0
	}
}

/* waitq_notify_one on the receive queue. */
inline notify_one()
{
	if
	:: n == 0 -> skip
	:: else ->
		if
		:: spinning > 0 -> skip
		:: else ->
			lock();
			woken = NONE;
			do
			:: pick(p);
				if
				:: p == NONE -> break
				:: else ->
#ifdef FIX_UNLINK_FIRST
					unlink_locked(p);
					decide(p, CASE0, ok, prv);
					if
					:: ok -> woken = p; break
					:: else -> skip
					fi
#else
					decide(p, CASE0, ok, prv);
					if
					:: ok -> unlink_locked(p); woken = p; break
					:: else -> skip
					fi
#endif
				fi
			od;
			unlock();
			if
			:: woken != NONE && prv == PARKED -> asleep[woken] = false
			:: else -> skip
			fi
		fi
	fi
}

/* deadline_left(deadline) == 0: the deadline may pass at any moment. */
inline past_deadline(id, dl, r)
{
	if
	:: dl && !expired[id] -> expired[id] = true
	:: true -> skip
	fi;
	r = expired[id]
}

/* sys_futex_wait(&sel, PARKED, deadline): 0 or ETIMEDOUT (timed). */
inline futex_wait(id, dl, timed)
{
	timed = false;
	atomic {
		if
		:: sel[id] == PARKED -> asleep[id] = true
		:: else -> skip
		fi
	};
	if
	:: !asleep[id] -> skip
	:: atomic { dl && asleep[id] -> asleep[id] = false; expired[id] = true; timed = true }
#ifdef SPURIOUS
	:: atomic { asleep[id] -> asleep[id] = false }
#endif
	fi
}

/* waiter_park (no context): returns the decision in v. */
inline park(id, dl)
{
	past_deadline(id, dl, late);
	if
	:: dl && late -> decide(id, TIMEOUT, ok, prv)
	:: else -> skip
	fi;
	/* spin_for_decision: a peek */
	v = sel[id];
	if
	:: v != WAITING && v != PARKED -> skip
	:: else ->
		/* sleep_for_decision */
		v = sel[id];
		do
		:: v == WAITING ->
			atomic {
				if
				:: sel[id] == WAITING -> sel[id] = PARKED; v = PARKED
				:: else -> v = sel[id]
				fi
			}
		:: v == PARKED ->
			futex_wait(id, dl, timed);
			if
			:: timed -> decide(id, TIMEOUT, ok, prv)
			:: else -> skip
			fi;
			v = sel[id]
		:: v != WAITING && v != PARKED -> break
		od
	fi
}

/* ring_spin: announce, poll, withdraw the announcement, pass the baton. */
inline ring_spin(id, got)
{
	spinning++;
	k = 0;
	do
	:: k < SPINS ->
		try_take(got);
		if
		:: got -> break
		:: else -> k++
		fi
	:: else -> break
	od;
	k = 0;
	spinning--;
#ifdef BATON_ALWAYS
	if
	:: items > 0 -> notify_one()
	:: else -> skip
	fi
#else
	if
	:: got ->
		if
		:: items > 0 -> notify_one()
		:: else -> skip
		fi
	:: else -> skip
	fi
#endif
}

proctype consumer(byte id; bool lone; bool dl)
{
	bool got, ok, late, timed;
	byte v, prv, p, woken, j, k;

	if
	:: lone ->
		try_take(got);
		if
		:: got -> goto done
		:: else -> skip
		fi;
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
	:: try_take(got);
		if
		:: got -> goto done
		:: else -> skip
		fi;
		past_deadline(id, dl, late);
		if
		:: dl && late -> gaveup[id] = true; goto out
		:: else -> skip
		fi;
		d_step { assert(!linked[id]); sel[id] = WAITING; ndec[id] = 0 };
		push(id);
		/* the re-check after registering (ring_ready, seq_cst loads) */
		if
		:: items > 0 -> decide(id, ABORT, ok, prv)
		:: else -> skip
		fi;
		park(id, dl);
		/* unregister_all: the node a notifier decided is unlinked */
		if
		:: v == CASE0 -> assert(!linked[id])
		:: else -> remove(id)
		fi
	od;
done:
	finished[id] = true;
out:
	assert(!linked[id])
}

proctype producer(byte k)
{
	bool ok;
	byte prv, p, woken, j;

	do
	:: k > 0 ->
progress:
		d_step { items++; produced++ };
		notify_one();
		k--
	:: else -> break
	od
}

/* Runs only once nothing else can move: the end of every execution. */
proctype monitor()
{
	timeout;
	/* No lost wake-up: nobody waits for ever while values are there,
	 * and each forever consumer got its value. */
	assert(finished[0] && finished[1]);
	assert(finished[2] || gaveup[2]);
	assert(consumed + items == produced);
	assert(items == 0 || gaveup[2])
}

init
{
	atomic {
		q[0] = NONE; q[1] = NONE; q[2] = NONE;
		run consumer(0, false, false);
		run consumer(1, true, false);
		run consumer(2, false, true);
		run producer(2);
		run producer(1);
		run monitor()
	}
}

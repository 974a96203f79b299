/*
 * mutex.pml - kn_mutex of runtime/src/sync.c: barging in normal mode, the
 * WOKEN baton, hand-off in HANDOFF (starvation) mode, waiters that time
 * out, on the waiter layer of waitq.inc.
 *
 * Processes: NW lockers, each locking and unlocking R times; locker 0 has
 * a deadline (-DDL) and may give up at any of its looks at the clock, also
 * when woken to retry. A woken waiter that queues again may find it has
 * waited more than 1 ms (a nondeterministic choice, kept once made) and
 * set HANDOFF; an unlock in HANDOFF mode may find the waiter it hands to
 * younger than 1 ms (a choice too, unless that waiter chose "old").
 *
 * Faithfulness (beyond waitq.inc's notes). Every change of the state word
 * is one CAS in C; a CAS retry loop is modelled as its successful CAS (the
 * failed ones change nothing). The spin before queueing is one try (more
 * tries are more of the same step). Under the queue lock, the CAS with
 * which a waiter queues and the insertion of its node are one step: the
 * node is invisible without the lock, and everyone who looks at the queue
 * takes the lock. The unlock's claim of each node is its own step, as the
 * waiter may decide itself (time out) in between.
 *
 * Checked: assertions, namely mutual exclusion; the state-word invariants
 * of sync.c (1, 2, 4: WAITERS iff the queue is non-empty, HANDOFF implies
 * LOCKED and WAITERS and not WOKEN, WAITERS implies LOCKED or WOKEN)
 * whenever the queue lock is free; invariant 3 (one WOKEN owner) and 5
 * (the queue sorted by first-queue ticket, a re-queued waiter older than
 * the head); nobody takes the mutex by barging in HANDOFF mode; a
 * hand-off arrives with LOCKED set. Invalid end states, and "no lost
 * wake-up": a monitor that runs when nothing else can move asserts that
 * every locker without a deadline did all its rounds, and that the
 * mutex ends free and unqueued. With -DNP (pan -l): no livelock.
 *
 * Mutants the model must reject (not run by tests/model/check; with
 * -DR=2 -DDL each fails within a second):
 *   -DGIVE_UP_BLIND    a woken waiter out of time gives WOKEN up without
 *                      first taking a free mutex: a free mutex with
 *                      sleeping waiters and nobody to wake them
 *                      (invariant 4)
 *   -DREQUEUE_AT_TAIL  a woken waiter that lost the race queues at the
 *                      tail: the queue is no longer in waiting order
 *                      (invariant 5), and hand-off mode would not serve
 *                      the oldest waiter first
 */

#ifndef NW
#define NW 3
#endif
#ifndef R
#define R 1
#endif
#define NQ 1

#include "waitq.inc"

/* sync.c: the state word */
#define LOCKED 1
#define WOKEN 2
#define HANDOFF 4
#define WAITERS 8
#define RETRY CASE0
#define HANDED DONE0

byte st;
byte inside;
byte woken_owner = NONE;   /* invariant 3 */
byte ticket[NW];           /* when each first queued (1, 2, ...) */
byte clock;
bool old[NW];              /* has waited more than 1 ms */
byte rounds[NW];
bool gaveup[NW];

#define INV (((st & WAITERS) != 0) == (qlen[0] > 0) && \
	     ((st & HANDOFF) == 0 || ((st & LOCKED) && (st & WAITERS) && !(st & WOKEN))) && \
	     ((st & WAITERS) == 0 || (st & (LOCKED | WOKEN))))

/* Invariants whenever the queue lock is free: after every change of the
 * word made without the lock, and at every release of the lock. */
inline check()
{
	assert(qlk[0] != 0 || INV)
}

inline qunlock()
{
	lock_release(qlk[0], 0);
	check()
}

/* mutex_take: the CAS that sets LOCKED (dropping WOKEN if ours). */
inline take(id, got)
{
	if
	:: !(st & LOCKED) ->
		assert(!(st & HANDOFF));
		if
		:: wk -> assert(woken_owner == id); woken_owner = NONE;
			st = (st | LOCKED) & ~WOKEN; wk = false
		:: else -> st = st | LOCKED
		fi;
		got = true
	:: else -> got = false
	fi
}

/* The queue is sorted by ticket (invariant 5). */
inline check_sorted()
{
	j = 1;
	do
	:: j < qlen[0] -> assert(ticket[q[j - 1]] < ticket[q[j]]); j++
	:: else -> break
	od;
	j = 0
}

/* waitq_insert_locked at the head (a woken waiter) or the tail. */
inline insert_locked(id, front)
{
	if
	:: front ->
		assert(qlen[0] == 0 || ticket[id] < ticket[q[0]]);
		j = qlen[0];
		do
		:: j > 0 -> q[j] = q[j - 1]; j--
		:: else -> break
		od;
		q[0] = id; qlen[0]++; lq[id] = 1; n[0]++
	:: else -> push_locked(0, id)
	fi;
	check_sorted()
}

/* Waited long enough to be "old" (may happen at any look at the clock). */
inline age(id)
{
	if
	:: !old[id] && ticket[id] != 0 -> old[id] = true
	:: true -> skip
	fi
}

inline lock_slow(id, dl)
{
	do
	:: /* the spin: one try */
		atomic { take(id, got); check() };
		if
		:: got -> break
		:: else -> skip
		fi;
		atomic {
			deadline_tick(dl, exp);
			if
			:: dl && exp ->
				/* mutex_give_up_woken */
				if
				:: wk ->
#ifdef GIVE_UP_BLIND
					got = false;
#else
					take(id, got);
#endif
					if
					:: !got -> assert(woken_owner == id);
						woken_owner = NONE; st = st & ~WOKEN;
						wk = false
					:: else -> skip
					fi
				:: else -> got = false
				fi;
				check();
				if
				:: !got -> gaveup[id] = true
				:: else -> skip
				fi;
				quit = true
			:: else -> skip
			fi
		};
		if
		:: quit -> quit = false; break
		:: else -> skip
		fi;
		age(id);
		/* under the queue lock: take, or set WAITERS (HANDOFF) and queue */
		atomic {
			waiter_init(id);
			lock_acquire(qlk[0]);
			take(id, got);
			if
			:: !got ->
				if
				:: ticket[id] == 0 -> clock++; ticket[id] = clock
				:: else -> skip
				fi;
				if
				:: wk && old[id] -> st = st | WAITERS | HANDOFF
				:: else -> st = st | WAITERS
				fi;
				if
				:: wk -> assert(woken_owner == id); woken_owner = NONE;
					st = st & ~WOKEN
				:: else -> skip
				fi;
#ifdef REQUEUE_AT_TAIL
				insert_locked(id, false);
#else
				insert_locked(id, wk);
#endif
				wk = false
			:: else -> skip
			fi;
			qunlock()
		};
		if
		:: got -> break
		:: else -> skip
		fi;
		park(id, dl, exp);
		if
		:: v == HANDED -> assert(st & LOCKED); got = true; v = 0; break
		:: v == RETRY -> wk = true; v = 0
		:: else ->
			/* mutex_withdraw */
			v = 0;
			atomic {
				lock_acquire(qlk[0]);
				if
				:: lq[id] == 1 -> unlink_locked(0, id)
				:: else -> skip
				fi;
				if
				:: qlen[0] == 0 -> st = st & ~(WAITERS | HANDOFF)
				:: else -> skip
				fi;
				qunlock()
			};
			gaveup[id] = true;
			break
		fi
	od
}

/* claim_oldest_locked: unlink the head; claim it, or drop it if decided. */
inline claim_oldest()
{
	p = NONE;
	do
	:: qlen[0] == 0 -> break
	:: else ->
		atomic {
			u = q[0];
			unlink_locked(0, u);
			decide(u, CLAIMED, ok, prv);
			if
			:: ok -> p = u
			:: else -> skip
			fi
		};
		if
		:: p != NONE -> break
		:: else -> skip
		fi
	od;
	u = 0
}

inline unlock(id)
{
	atomic {
		assert(st & LOCKED);
		if
		:: st == LOCKED -> st = 0; done = true
		:: st != LOCKED && (!(st & WAITERS) || (st & WOKEN)) ->
			st = st & ~LOCKED; done = true
		:: else -> done = false
		fi;
		check()
	};
	if
	:: !done ->
		/* mutex_unlock_wake */
		atomic {
			lock_acquire(qlk[0]);
			handoff = (st & HANDOFF) != 0
		};
		if
		:: handoff || !(st & WOKEN) -> claim_oldest()
		:: else -> p = NONE
		fi;
		atomic {
			young = false;
			if
			:: p != NONE && handoff && !old[p] -> young = true
			:: true -> skip
			fi;
			if
			:: qlen[0] == 0 || young -> st = st & ~HANDOFF
			:: else -> skip
			fi;
			if
			:: qlen[0] == 0 -> st = st & ~WAITERS
			:: else -> skip
			fi;
			if
			:: p != NONE && handoff -> skip
			:: else -> st = st & ~LOCKED
			fi;
			if
			:: p != NONE && !handoff ->
				assert(woken_owner == NONE); woken_owner = p;
				st = st | WOKEN
			:: else -> skip
			fi;
			qunlock()
		};
		if
		:: p != NONE && handoff -> publish(p, HANDED, prv)
		:: p != NONE && !handoff -> publish(p, RETRY, prv)
		:: else -> skip
		fi;
		d_step { p = 0; prv = 0; ok = false; handoff = false; young = false }
	:: else -> skip
	fi;
	done = false
}

proctype locker(byte id; bool dl)
{
	WAITQ_LOCALS;
	bool got, exp, wk, done, handoff, young, quit;

	do
	:: rounds[id] < R && !gaveup[id] ->
		/* kn_mutex_lock: the fast CAS 0 -> LOCKED */
		atomic {
			if
			:: st == 0 -> st = LOCKED; got = true
			:: else -> got = false
			fi;
			check()
		};
		if
		:: !got -> lock_slow(id, dl)
		:: else -> skip
		fi;
		if
		:: got ->
			atomic { inside++; assert(inside == 1) };
			inside--;
			unlock(id);
			rounds[id]++;
			got = false
		:: else -> skip
		fi;
		ticket[id] = 0; old[id] = false
	:: else -> break
	od;
	assert(lq[id] == 0 && !wk)
}

proctype monitor()
{
	timeout;
	byte k = 0;
	do
	:: k < NW -> assert(rounds[k] == R || gaveup[k]); k++
	:: else -> break
	od;
	assert(st == 0 && qlen[0] == 0 && inside == 0 && woken_owner == NONE)
}

init
{
	WAITQ_LOCALS;

	atomic {
		waitq_init_all();
		j = 0;
		do
		:: j < NW ->
#ifdef DL
			run locker(j, j == 0);
#else
			run locker(j, false);
#endif
			j++
		:: else -> break
		od;
		j = 0;
		run monitor()
	}
}

/*
 * cancel.pml - cancellation first: a call blocked with a context that is
 * cancelled never completes with a partner that comes after kn_ctx_cancel
 * returned (runtime/src/chan.c wait_cases, sem.c acquire_slow, the
 * context watch of waiter.c), over the waiter layer of waitq.inc.
 *
 * Processes: W, a call with a context; C, which cancels the context and
 * then, once kn_ctx_cancel has returned, acts as W's only partner. Three
 * flavours, chosen at compile time:
 *
 *   ring (default), capacity 1: W receives with ctx; C cancels, then
 *   sends one value (it never blocks) and notifies one receiver.
 *   -DRENDEZVOUS, capacity 0: W receives with ctx; C cancels, then sends
 *   with a deadline (the hand-off of chan_zero.c: pick, claim, copy,
 *   unlink, publish DONE under the channel lock).
 *   -DSEM: a semaphore of 2 with one token held; W acquires 2 with ctx; C
 *   cancels, then releases the held token (serve from the head: claim,
 *   subtract, unlink, publish after the unlock).
 *   -DPASS, ring: W receives with ctx beside R2, a plain receiver, while S
 *   sends two values and C only cancels, all at any moment: a
 *   notification W was given and then gives up for its context must reach
 *   R2 (pass_on), or R2 and S sleep for ever.
 *
 * The context: cancel stores err, then (its queue's notify_all) decides
 * every watching waiter with SEL_CANCEL. A watch is one critical section
 * of the context's queue lock: watched, then a re-check of err that
 * decides the waiter itself. The waiter's node on the context queue is
 * the boolean watching[] (waitq.inc gives a waiter one node, on the
 * channel's queue).
 *
 * W follows the code: check ctx; try; check ctx again; watch; if that
 * decided it, give up; register (under the channel lock for the
 * rendezvous, in the same hold as the try); re-check readiness (ring);
 * park; unregister; unwatch; a partner's DONE wins; else if the context
 * is cancelled: pass a ring notification on and fail; else retry.
 *
 * Checked: the ghost blocked_at_cancel records whether W was blocked
 * (registered on the channel's or semaphore's queue, or woken but not yet
 * past its check of the context) at the instant err was stored; if it
 * was, W must return ECANCELED and move nothing. (A call between its
 * check and its try is running, not blocked: it may still complete, as
 * one that started a moment earlier would.) At the end of every execution (monitor): every process
 * returned, the value (token) is where the result says (ring: received
 * by W or still buffered; rendezvous: C's send succeeded iff W received;
 * semaphore: W holds 2 and the count is 0, or the count is back at 2).
 * Plus waitq.inc's assertions and invalid end states.
 *
 * Mutants the model rejects (not run by tests/model/check; run by hand to
 * see the counterexample), the two halves of the code before issue 18:
 * -DLATE_WATCH -DRENDEZVOUS and -DLATE_WATCH -DSEM, the context watched
 * only inside waiter_park, after registering (C completes W between its
 * registration and its watch); -DRETRY_FIRST, a woken waiter retrying
 * before it checks its context (the retry takes C's value). The ring
 * flavour with LATE_WATCH alone passes: the check after waking covers it.
 * -DPASS -DNO_PASS_ON drops pass_on: R2 sleeps with a value buffered.
 */

#ifdef PASS
#define NW 3            /* W, R2, S */
#else
#define NW 2
#endif
#define NQ 2
#define SENDQ 0
#define RECVQ 1
#define W 0
#define P 1             /* C as a waiter (rendezvous: its blocked send) */
#define R2 1            /* PASS: a plain receiver */
#define S 2             /* PASS: a plain sender of two values */

#include "waitq.inc"

#define CANCEL 4        /* SEL_CANCEL */

#define OK 0
#define AGAIN 1
#define TIMEDOUT 3
#define CANCELED 4

bool ctxdone;
bool watching[NW];
bool waiting;           /* ghost: W is registered, or woken and not yet past its check */
bool blocked_at_cancel; /* ghost: waiting at the store of err */
bool returned[NW + 1];  /* W, P (C) or R2 and S, and C's cancel */
byte wres = 255;        /* W's result */
byte got;               /* W's value (1: C's) */

/* kn_ctx_cancel: the store of err, then notify_all of the context queue,
 * one step per node (as waitq_notify_all; only W can watch). */
inline cancel()
{
	atomic { ctxdone = true; blocked_at_cancel = waiting };
	atomic {
		if
		:: watching[W] ->
			decide(W, CANCEL, ok, prv);
			if
			:: ok && prv == PARKED -> asleep[W] = false
			:: else -> skip
			fi;
			ok = false; prv = 0
		:: else -> skip
		fi
	}
}

/* waiter_watch_ctx: push, then re-check err (one critical section). */
inline watch(id)
{
	atomic {
		watching[id] = true;
		if
		:: ctxdone -> decide_self(id, CANCEL)
		:: else -> skip
		fi
	}
}

/* The early watch of the fix, or (LATE_WATCH) none: watched in park. */
#ifdef LATE_WATCH
#define EARLY_WATCH(id) skip
#define PARK_WATCH(id) watch(id)
#else
#define EARLY_WATCH(id) watch(id)
#define PARK_WATCH(id) skip
#endif

/* ---- ring ------------------------------------------------------------------ */
#if !defined(RENDEZVOUS) && !defined(SEM)

byte items;             /* capacity 1 */
byte nrecv;             /* values received */

proctype waiter()
{
	WAITQ_LOCALS;
	bool exp;
	byte r;

	if
	:: ctxdone -> r = CANCELED
	:: else -> r = AGAIN
	fi;
	do
	:: r == CANCELED -> break
	:: r == AGAIN ->
		atomic {
			if
			:: items > 0 -> items--; nrecv++; got = 1; r = OK; break
			:: else -> skip
			fi
		};
		atomic {
			if
			:: ctxdone -> r = CANCELED; break
			:: else -> waiter_init(W)
			fi
		};
		EARLY_WATCH(W);
		if
		:: sel[W] == CANCEL -> watching[W] = false; r = CANCELED; break
		:: else -> skip
		fi;
		atomic { push(RECVQ, W); waiting = true };
		atomic {
			if
			:: items > 0 -> decide_self(W, ABORT)
			:: else -> skip
			fi
		};
		PARK_WATCH(W);
		park(W, false, exp);
		remove(RECVQ, W);
		watching[W] = false;
#ifndef RETRY_FIRST
		atomic {
			if
			:: ctxdone -> r = CANCELED
			:: else -> waiting = false; r = AGAIN
			fi
		};
#ifndef NO_PASS_ON
		/* pass_on: the notification W gives up goes to the next */
		if
		:: r == CANCELED && v == CASE0 -> notify_one(RECVQ)
		:: else -> skip
		fi;
#endif
#else
		waiting = false;
#endif
		v = 0
	od;
	/* chan_signal after a receive */
	if
	:: r == OK -> notify_one(SENDQ)
	:: else -> skip
	fi;
	atomic { wres = r; waiting = false; returned[W] = true }
}

#ifndef PASS
proctype canceller()
{
	WAITQ_LOCALS;

	cancel();
	atomic { items++ };
	notify_one(RECVQ);
	returned[NW] = true; returned[P] = true
}

proctype monitor()
{
	timeout;
	assert(returned[W] && returned[NW]);
	assert(!blocked_at_cancel || wres == CANCELED);
	assert(wres == OK && got == 1 && items == 0 ||
	       wres == CANCELED && got == 0 && items == 1)
}
#else
/* A plain ring operation without a context (chan.c without the poll):
 * try, register, re-check, park, unregister, retry; then chan_signal. */
inline plain_op(id, kind)
{
	do
	:: atomic {
		if
		:: kind == RECVQ && items > 0 -> items--; nrecv++; break
		:: kind == SENDQ && items == 0 -> items++; break
		:: else -> waiter_init(id)
		fi
	   };
		push(kind, id);
		atomic {
			if
			:: kind == RECVQ && items > 0 || kind == SENDQ && items == 0 ->
				decide_self(id, ABORT)
			:: else -> skip
			fi
		};
		park(id, false, exp);
		remove(kind, id);
		v = 0
	od;
	notify_one(1 - kind)
}

proctype receiver2()
{
	WAITQ_LOCALS;
	bool exp;

	plain_op(R2, RECVQ);
	returned[R2] = true
}

proctype sender()
{
	WAITQ_LOCALS;
	bool exp;

	plain_op(S, SENDQ);
	plain_op(S, SENDQ);
	returned[S] = true
}

proctype canceller()
{
	WAITQ_LOCALS;

	cancel();
	returned[NW] = true
}

/* Nobody sleeps for ever (a notification W gave up reached R2), and the
 * two values are received or buffered. */
proctype monitor()
{
	timeout;
	assert(returned[W] && returned[R2] && returned[S] && returned[NW]);
	assert(!blocked_at_cancel || wres == CANCELED);
	assert(nrecv + items == 2)
}
#endif

#endif

/* ---- rendezvous ------------------------------------------------------------ */
#ifdef RENDEZVOUS

bit zlk;
byte buf[NW];
bool sent;              /* C's send returned 0 */

proctype waiter()
{
	WAITQ_LOCALS;
	bool exp;
	byte r;

	if
	:: ctxdone -> r = CANCELED
	:: else -> r = AGAIN
	fi;
	do
	:: r == CANCELED || r == OK -> break
	:: r == AGAIN ->
		/* try_pass under the lock: a waiting sender to claim */
		atomic {
			lock_acquire(zlk);
			pick(SENDQ);
			do
			:: p == NONE -> break
			:: else ->
				decide(p, CLAIMED, ok, prv);
				if
				:: ok -> r = OK; break
				:: else -> pick(SENDQ)
				fi
			od;
			if
			:: r == OK ->
				buf[W] = buf[p];
				unlink_locked(SENDQ, p);
				publish(p, DONE0, prv);
				p = 0; prv = 0; ok = false;
				lock_release(zlk, SENDQ)
			:: else ->
				if
				:: ctxdone -> r = CANCELED; lock_release(zlk, SENDQ)
				:: else -> waiter_init(W)
				fi
			fi
		};
		if
		:: r != AGAIN -> break
		:: else -> skip
		fi;
		EARLY_WATCH(W);
		atomic {
			if
			:: sel[W] == CANCEL ->
				watching[W] = false; r = CANCELED;
				lock_release(zlk, SENDQ)
			:: else ->
				push_locked(RECVQ, W); waiting = true;
				lock_release(zlk, SENDQ)
			fi
		};
		if
		:: r == CANCELED -> break
		:: else -> skip
		fi;
		PARK_WATCH(W);
		park(W, false, exp);
		atomic {
			lock_acquire(zlk);
			if
			:: lq[W] == RECVQ + 1 -> unlink_locked(RECVQ, W)
			:: else -> skip
			fi;
			lock_release(zlk, RECVQ)
		};
		watching[W] = false;
		if
		:: v == DONE0 -> r = OK
		:: else ->
			atomic {
				if
				:: ctxdone -> r = CANCELED
				:: else -> waiting = false
				fi
			}
		fi;
		v = 0
	od;
	atomic {
		if
		:: r == OK -> got = buf[W]
		:: else -> skip
		fi;
		wres = r; waiting = false; returned[W] = true
	}
}

/* After the cancel: a send of 1 with a deadline (chan_zero.c). */
proctype canceller()
{
	WAITQ_LOCALS;
	bool exp;
	byte r;

	cancel();
	returned[NW] = true;
	buf[P] = 1;
	do
	:: atomic {
		lock_acquire(zlk);
		r = AGAIN;
		pick(RECVQ);
		do
		:: p == NONE -> break
		:: else ->
			decide(p, CLAIMED, ok, prv);
			if
			:: ok -> r = OK; break
			:: else -> pick(RECVQ)
			fi
		od;
		if
		:: r == OK ->
			buf[p] = buf[P];
			unlink_locked(RECVQ, p);
			publish(p, DONE0, prv);
			p = 0; prv = 0; ok = false
		:: else ->
			deadline_tick(true, exp);
			if
			:: exp -> r = TIMEDOUT
			:: else -> waiter_init(P); push_locked(SENDQ, P)
			fi
		fi;
		lock_release(zlk, SENDQ)
	   };
		if
		:: r != AGAIN -> break
		:: else ->
			park(P, true, exp);
			atomic {
				lock_acquire(zlk);
				if
				:: lq[P] == SENDQ + 1 -> unlink_locked(SENDQ, P)
				:: else -> skip
				fi;
				lock_release(zlk, SENDQ)
			};
			if
			:: v == DONE0 -> r = OK; v = 0; break
			:: else -> v = 0
			fi
		fi
	od;
	atomic { sent = r == OK; buf[P] = 0; returned[P] = true }
}

proctype monitor()
{
	timeout;
	assert(returned[W] && returned[P] && returned[NW]);
	assert(!blocked_at_cancel || wres == CANCELED);
	assert(wres == OK && got == 1 && sent || wres == CANCELED && got == 0 && !sent)
}

#endif

/* ---- semaphore --------------------------------------------------------------- */
#ifdef SEM

byte count = 1;         /* of 2: the other token is held by C */
bool granted;           /* W's request was served (claimed) */

/* serve_locked: the head (W, the only requester) if 2 tokens fit; a
 * decided waiter's node is dropped. The publish comes after the unlock. */
inline serve_locked()
{
	if
	:: lq[W] == SENDQ + 1 && count >= 2 ->
		decide(W, CLAIMED, ok, prv);
		unlink_locked(SENDQ, W);
		if
		:: ok -> count = count - 2; granted = true
		:: else -> skip
		fi
	:: else -> skip
	fi
}

inline publish_grant()
{
	if
	:: ok -> publish(W, CASE0, prv); ok = false; prv = 0
	:: else -> skip
	fi
}

proctype waiter()
{
	WAITQ_LOCALS;
	bool exp;
	byte r;

	if
	:: ctxdone -> r = CANCELED
	:: else -> r = AGAIN
	fi;
	if
	:: r == AGAIN ->
		/* take_fast: nobody queued and 2 tokens there */
		atomic {
			if
			:: count >= 2 -> count = count - 2; r = OK
			:: else -> waiter_init(W)
			fi
		};
		if
		:: r == AGAIN ->
			EARLY_WATCH(W);
			if
			:: sel[W] == CANCEL -> watching[W] = false; r = CANCELED
			:: else ->
				atomic {
					lock_acquire(qlk[SENDQ]);
					if
					:: count >= 2 -> count = count - 2; r = OK
					:: else -> push_locked(SENDQ, W); waiting = true
					fi;
					lock_release(qlk[SENDQ], SENDQ)
				};
				if
				:: r == AGAIN ->
					PARK_WATCH(W);
					park(W, false, exp);
					watching[W] = false;
					if
					:: v == CASE0 -> r = OK
					:: else ->
						/* withdraw */
						atomic {
							lock_acquire(qlk[SENDQ]);
							if
							:: lq[W] == SENDQ + 1 -> unlink_locked(SENDQ, W)
							:: else -> skip
							fi;
							lock_release(qlk[SENDQ], SENDQ)
						};
						r = CANCELED
					fi;
					v = 0
				:: else -> watching[W] = false
				fi
			fi
		:: else -> skip
		fi
	:: else -> skip
	fi;
	atomic { wres = r; waiting = false; returned[W] = true }
}

proctype canceller()
{
	WAITQ_LOCALS;

	cancel();
	returned[NW] = true;
	atomic {
		lock_acquire(qlk[SENDQ]);
		count++;
		serve_locked();
		lock_release(qlk[SENDQ], SENDQ)
	};
	publish_grant();
	returned[P] = true
}

proctype monitor()
{
	timeout;
	assert(returned[W] && returned[P] && returned[NW]);
	assert(!blocked_at_cancel || wres == CANCELED);
	assert(wres == OK && count == 0 || wres == CANCELED && count == 2 && !granted)
}

#endif

init
{
	WAITQ_LOCALS;

	atomic {
		waitq_init_all();
		run waiter();
		run canceller();
#ifdef PASS
		run receiver2();
		run sender();
#endif
		run monitor()
	}
}

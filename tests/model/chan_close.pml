/*
 * chan_close.pml - closing a channel while senders and receivers block on
 * it: runtime/src/chan.c (kn_chan_close, the wait loop wait_cases),
 * chan_ring.h (ring_close) and chan_zero.c (the rendezvous hand-off and
 * zero_close), over the waiter layer of waitq.inc.
 *
 * Two flavours, chosen at compile time:
 *
 *   ring (default), capacity 1: a value is put or taken at the ring's CAS
 *   (one atomic step here: the ring itself is checked by the
 *   linearizability test); close sets the closed bit with one RMW, then
 *   notify_all on the send queue, then on the receive queue. Blocked
 *   operations register on their queue, re-check ring_ready (closed counts
 *   as ready) and park; a successful operation notifies one waiter of the
 *   other side (chan_signal).
 *
 *   rendezvous (-DRENDEZVOUS), capacity 0: under the channel lock an
 *   operation picks a partner on the other queue (an awake one first) and
 *   claims its waiter (CAS to CLAIMED; if a decision got there first, it
 *   picks again), copies the value between the two threads' buffers,
 *   unlinks it and publishes DONE (CASE_TOKEN + 1), then drops the lock
 *   (the wake after it is merged with the publish: see waitq.inc); without
 *   a partner it registers its own node in the same lock hold. Close, under
 *   the lock, sets closed, then unlinks and decides every node of both
 *   queues with the retry token.
 *   The claimed owner waits out CLAIMED; its timeout cannot win any more.
 *
 * Processes: senders S0 (two values, then it closes: the sender closes)
 * and S1 (one value; in the rendezvous flavour with a deadline), receivers
 * R0 (until EPIPE) and R1 (ring: until EPIPE; rendezvous: one receive with
 * a deadline), and a closer racing S0's close. Ring waits do not poll
 * before registering (waiter.pml covers the polling and its announcement).
 * The processes and their values are configurable (S0N, S1N, NR, CLOSER):
 * tests/model/check runs several shapes.
 *
 * Checked: assertions (the waiter invariants of waitq.inc; a rendezvous
 * copy reads a sender's value only while that sender's call is running,
 * and a receiver sees its value once it sees DONE; exactly one close
 * succeeds; no send succeeds after close; EPIPE on receive only when
 * closed and drained), invalid end states, and at the end of every
 * execution (monitor): every process has returned (close woke every
 * blocked waiter, nobody waits for ever), every value whose send returned
 * 0 was received exactly once, no value whose send failed was received,
 * nothing is left in the ring. With -DNP: no livelock.
 */

#define NW 4
#define NQ 2
#define SENDQ 0
#define RECVQ 1

#define S0 0
#define S1 1
#define R0 2
#define R1 3

#include "waitq.inc"

/* The configuration (tests/model/check runs several). */
#ifndef S0N
#define S0N 2           /* values S0 sends before it closes */
#endif
#ifndef S1N
#define S1N 1           /* values S1 sends; 0: no S1 */
#endif
#ifndef NR
#define NR 2            /* receivers */
#endif
#ifndef CLOSER
#define CLOSER 1        /* a closer racing S0's close */
#endif
#ifdef RENDEZVOUS
#define S1DL true       /* S1 sends with a deadline */
#define R1ONCE true     /* R1 receives once, with a deadline */
#define R1DL true
#else
#define S1DL false
#define R1ONCE false
#define R1DL false
#endif

#define OK 0
#define AGAIN 1
#define PIPE 2
#define TIMEDOUT 3

bool closed;
byte closes;            /* successful kn_chan_close calls */
byte sentok;            /* bit v: the send of value v returned 0 */
byte sentfail;          /* bit v: the send of value v failed */
byte recvd;             /* bit v: value v was received */
bool returned[NW];      /* every call of the process has returned */

/* ---- ring ---------------------------------------------------------------- */
#ifndef RENDEZVOUS

#define CAP 1
byte items;
byte slot[CAP];         /* the buffered values, FIFO */

inline ring_send(val, r)
{
	if
	:: closed -> r = PIPE
	:: !closed && items < CAP -> slot[items] = val; items++; r = OK
	:: else -> r = AGAIN
	fi
}

inline ring_recv(out, r)
{
	if
	:: items > 0 ->
		out = slot[0]; j = 1;
		do
		:: j < items -> slot[j - 1] = slot[j]; j++
		:: else -> break
		od;
		items--; slot[items] = 0; j = 0; r = OK
	:: items == 0 && closed -> r = PIPE
	:: else -> r = AGAIN
	fi
}

/* ring_ready: would an operation of this kind not block? */
#define READY(kind) (closed || (kind == SENDQ && items < CAP) || \
		     (kind == RECVQ && items > 0))

inline ring_op(id, kind, val, r)
{
	if
	:: kind == SENDQ -> ring_send(val, r)
	:: else -> ring_recv(val, r)
	fi
}

/* chan_op for a ring channel, without the spin: try, register, re-check,
 * park, unregister, retry. val: the value to send / the value received. */
inline chan_op(id, kind, val, dl, r)
{
	do
	:: atomic {
		ring_op(id, kind, val, r);
		if
		:: r != AGAIN -> break
		:: else -> skip
		fi
	   };
		atomic {
			deadline_tick(dl, exp);
			if
			:: dl && exp -> r = TIMEDOUT; break
			:: else -> skip
			fi;
			waiter_init(id);
			lock_acquire(qlk[kind]);
			push_locked(kind, id);
			lock_release(qlk[kind], kind)
		};
		atomic {
			if
			:: READY(kind) -> decide_self(id, ABORT)
			:: else -> skip
			fi
		};
		park(id, dl, exp);
		if
		:: v == CASE0 -> v = 0
		:: else -> v = 0; remove(kind, id)
		fi
	od;
	/* chan_signal: a value moved, wake one waiter of the other side */
	if
	:: r == OK -> notify_one(1 - kind)
	:: else -> skip
	fi
}

inline chan_close(r)
{
	atomic {
		if
		:: closed -> r = PIPE
		:: else -> closed = true; closes++; r = OK
		fi
	};
	if
	:: r == OK ->
		notify_all(SENDQ);
		notify_all(RECVQ)
	:: else -> skip
	fi
}

/* ---- rendezvous ------------------------------------------------------------ */
#else

bit zlk;                /* the channel lock */
byte buf[NW];           /* each waiter's value buffer (sender: its value) */

/*
 * chan_op for a rendezvous channel. Under the lock: closed? a partner to
 * claim, fill or empty, and publish? else register.
 */
inline chan_op(id, kind, val, dl, r)
{
	if
	:: kind == SENDQ -> buf[id] = val
	:: else -> buf[id] = 0
	fi;
	do
	:: atomic {
		lock_acquire(zlk);
		if
		:: closed -> r = PIPE
		:: else ->
			/* zero_try_locked: pick a partner (awake ones
			 * first), claim it, pick again if the claim lost */
			r = AGAIN;
			pick(1 - kind);
			do
			:: p == NONE -> break
			:: else ->
				decide(p, CLAIMED, ok, prv);
				if
				:: ok -> r = OK; break
				:: else -> pick(1 - kind)
				fi
			od
		fi;
		if
		:: r == OK ->
			/* the copy, between the two threads' buffers */
			if
			:: kind == SENDQ -> buf[p] = buf[id]
			:: else ->
				/* the sender's call is still running */
				assert(!returned[p] && buf[p] != 0);
				buf[id] = buf[p]
			fi;
			unlink_locked(1 - kind, p);
			publish(p, DONE0, prv);
			p = 0; prv = 0; ok = false
		:: else -> skip
		fi;
		if
		:: r == AGAIN ->
			deadline_tick(dl, exp);
			if
			:: dl && exp -> r = TIMEDOUT
			:: else ->
				waiter_init(id);
				push_locked(kind, id)
			fi
		:: else -> skip
		fi;
		lock_release(zlk, SENDQ);
		assert(n[RECVQ] == qlen[RECVQ])
	   };
		if
		:: r == OK || r == PIPE || r == TIMEDOUT -> break
		:: r == AGAIN ->
			park(id, dl, exp);
			if
			:: v == CASE0 || v == DONE0 -> skip
			:: else ->
				atomic {
					lock_acquire(zlk);
					if
					:: lq[id] == kind + 1 -> unlink_locked(kind, id)
					:: else -> skip
					fi;
					lock_release(zlk, kind)
				}
			fi;
			if
			:: v == DONE0 ->
				/* the partner's copy is visible with DONE */
				assert(buf[id] != 0);
				v = 0; r = OK; break
			:: else -> v = 0
			fi
		fi
	od;
	if
	:: kind == RECVQ && r == OK -> val = buf[id]
	:: else -> skip
	fi
}

inline chan_close(r)
{
	atomic {
		lock_acquire(zlk);
		if
		:: closed -> r = PIPE
		:: else -> closed = true; closes++; r = OK
		fi
	};
	if
	:: r == OK ->
		decide_all_locked(SENDQ);
		decide_all_locked(RECVQ)
	:: else -> skip
	fi;
	atomic {
		assert(n[RECVQ] == qlen[RECVQ]);
		lock_release(zlk, SENDQ)
	}
}

#endif

/* ---- the processes ------------------------------------------------------- */

inline send(id, val, dl)
{
	chan_op(id, SENDQ, val, dl, r);
	atomic {
		if
		:: r == OK -> assert(!(sentok & (1 << val))); sentok = sentok | (1 << val)
		:: else -> assert(r == PIPE || dl && r == TIMEDOUT);
			sentfail = sentfail | (1 << val)
		fi;
#ifdef RENDEZVOUS
		buf[id] = 0     /* the caller's frame ends */
#else
		skip
#endif
	}
}

proctype sender(byte id; byte first; byte count; bool dl; bool closes_after)
{
	WAITQ_LOCALS;
	bool exp;
	byte r, val;

	val = first;
	do
	:: val < first + count -> send(id, val, dl); val++
	:: else -> break
	od;
	if
	:: closes_after -> chan_close(r)
	:: else -> skip
	fi;
	returned[id] = true
}

proctype receiver(byte id; bool once; bool dl)
{
	WAITQ_LOCALS;
	bool exp;
	byte r, val;

	do
	:: chan_op(id, RECVQ, val, dl, r);
		if
		:: r == OK ->
			atomic {
				assert(val != 0 && !(recvd & (1 << val)));
				recvd = recvd | (1 << val);
				val = 0
			};
			if
			:: once -> break
			:: else -> skip
			fi
		:: r == PIPE ->
#ifndef RENDEZVOUS
			assert(items == 0);
#endif
			assert(closed); break
		:: else -> assert(dl && r == TIMEDOUT); break
		fi
	od;
	returned[id] = true
}

proctype closer()
{
	WAITQ_LOCALS;
	byte r;

	chan_close(r)
}

proctype monitor()
{
	timeout;
	assert(returned[S0] && returned[R0]);
	assert(S1N == 0 || returned[S1]);
	assert(NR < 2 || returned[R1]);
	assert(closes == 1);
	assert(recvd == sentok);
	assert((sentok & sentfail) == 0);
#ifndef RENDEZVOUS
	assert(items == 0)
#endif
}

init
{
	WAITQ_LOCALS;

	atomic {
		waitq_init_all();
		run sender(S0, 1, S0N, false, true);
#if S1N > 0
		run sender(S1, 3, S1N, S1DL, false);
#endif
		run receiver(R0, false, false);
#if NR > 1
		run receiver(R1, R1ONCE, R1DL);
#endif
#if CLOSER
		run closer();
#endif
		run monitor()
	}
}

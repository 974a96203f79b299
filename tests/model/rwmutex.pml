/*
 * rwmutex.pml - kn_rwmutex of runtime/src/sync.c (Go's sync.RWMutex): the
 * reader count with WRITER and the generation, the wait word, readers
 * held up on one queue and the writer waiting for the readers in on
 * another, with waitq_wait of waitq.inc; readers and writers that give up.
 *
 * Processes: NR readers and NWR writers, each taking and releasing its
 * lock R times; reader 0 and writer 0 have deadlines (-DDL) and may give
 * up at any of their looks at the clock. Waiter ids: readers 0..NR-1,
 * writers NR..NR+NWR-1. Queue 0 holds held-up readers, queue 1 the writer
 * waiting for readers.
 *
 * Faithfulness (beyond waitq.inc's notes). Every change of the state word
 * and of the wait word is one RMW or CAS in C; a CAS retry loop is
 * modelled as its successful CAS (the failed ones change nothing). The
 * spin before registering is one more look at the condition, which the
 * loops below take anyway. The kn_mutex w that serialises writers is an
 * atomic test-and-set here (mutex.pml checks it), which a writer with a
 * deadline may give up waiting for at any moment. The generation is a
 * byte: the model's runs end long before it wraps.
 *
 * Checked: exclusion (a writer in with nobody else; readers in with no
 * writer in: sync.c invariant 7); WRITER is set only by w's holder
 * (invariant 8); a withdrawing reader's generation still has its writer
 * (invariant 9); the wait word's generation is the writer's when it adds
 * (invariant 11); waitq_wait's node, when a notifier decided through it,
 * is unlinked already (waiter invariant 4, which lets the owner skip its
 * removal). Invalid end states, and "no lost wake-up": a monitor that
 * runs when nothing else can move asserts that every process without a
 * deadline did all its rounds, and that the rwmutex ends free: no reader
 * counted, WRITER clear, w free, both queues empty. With -DNP (pan -l):
 * no livelock.
 *
 * Mutant the model must reject (not run by tests/model/check; with
 * -DNR=1 -DNWR=2 -DDL it fails within a second):
 *   -DDEPART_ANY_GEN   a departing reader decrements the wait word of
 *                      whatever generation it finds: one that departs
 *                      after its writer gave up takes a count from the
 *                      next writer, which then waits for a reader that has
 *                      gone, for ever (invariant 11)
 */

#ifndef NR
#define NR 2
#endif
#ifndef NWR
#define NWR 1
#endif
#ifndef R
#define R 1
#endif
#define NW (NR + NWR)
#define NQ 2
#define QR 0 /* held-up readers */
#define QW 1 /* the writer waiting for the readers in */

#include "waitq.inc"

byte cnt;          /* state: the reader count */
bool wr;           /* state: WRITER */
byte gen;          /* state: the generation */
byte wgen;         /* wait word: its generation */
short wcnt;        /* wait word: readers the writer still waits for */
bit wlk;           /* the kn_mutex w */
byte rin, win;     /* readers, writers in */
byte rounds[NW];
bool gaveup[NW];

/* waitq_wait(q, 1, commit, ...) with commit "cond": register, re-check,
 * park, and unregister unless decided through the node. */
inline waitq_wait(qi, id, cond, dl, exp)
{
	atomic { waiter_init(id); push(qi, id) };
	atomic {
		if
		:: cond -> decide_self(id, ABORT)
		:: else -> skip
		fi
	};
	park(id, dl, exp);
	if
	:: v == CASE0 -> assert(lq[id] == 0)
	:: else -> remove(qi, id)
	fi;
	v = 0
}

/* rw_release: end the generation, reset the wait word, let the held-up
 * readers in, let w go. */
inline release()
{
	atomic { assert(wr && wlk); gen++; wr = false; g = gen };
	atomic { wgen = g; wcnt = 0 };
	notify_all(QR);
	wlk = 0
}

proctype reader(byte id; bool dl)
{
	WAITQ_LOCALS;
	bool got, exp, sw;
	byte g;

	do
	:: rounds[id] < R && !gaveup[id] ->
		/* rw_rlock: fetch_add(READER) */
		atomic { sw = wr; g = gen; cnt++ };
		got = !sw;
		/* rw_reader_wait */
		do
		:: got -> break
		:: !got && gen != g -> got = true; break
		:: !got && gen == g ->
			deadline_tick(dl, exp);
			if
			:: dl && exp ->
				/* rw_reader_withdraw */
				atomic {
					if
					:: gen == g -> assert(wr); cnt--; gaveup[id] = true
					:: else -> got = true
					fi
				};
				break
			:: else -> waitq_wait(QR, id, gen != g, dl, exp)
			fi
		od;
		if
		:: got ->
			atomic { rin++; assert(win == 0) };
			rin--;
			/* runlock: fetch_sub(READER), then rw_reader_depart */
			atomic { assert(cnt > 0); sw = wr; g = gen; cnt-- };
			if
			:: sw ->
				atomic {
					if
#ifdef DEPART_ANY_GEN
					:: true -> wcnt--; got = wcnt == 0
#else
					:: wgen == g -> wcnt--; got = wcnt == 0
					:: else -> got = false
#endif
					fi
				};
				if
				:: got -> notify_all(QW)
				:: else -> skip
				fi
			:: else -> skip
			fi;
			rounds[id]++;
			got = false
		:: else -> skip
		fi
	:: else -> break
	od;
	assert(lq[id] == 0)
}

proctype writer(byte id; bool dl)
{
	WAITQ_LOCALS;
	bool got, exp;
	byte g, r;

	do
	:: rounds[id] < R && !gaveup[id] ->
		/* mutex_lock(&w, deadline) */
		if
		:: atomic { wlk == 0 -> wlk = 1 }; got = true
		:: dl -> gaveup[id] = true; got = false
		fi;
		if
		:: got ->
			/* fetch_add(WRITER), then rw_writer_count */
			atomic { assert(!wr); r = cnt; g = gen; wr = true };
			if
			:: r > 0 -> atomic { assert(wgen == g); wcnt = wcnt + r }
			:: else -> skip
			fi;
			/* rw_writer_wait */
			do
			:: wcnt == 0 -> break
			:: else ->
				deadline_tick(dl, exp);
				if
				:: dl && exp -> release(); gaveup[id] = true; got = false; break
				:: else -> waitq_wait(QW, id, wcnt == 0, dl, exp)
				fi
			od
		:: else -> skip
		fi;
		if
		:: got ->
			atomic { win++; assert(win == 1 && rin == 0) };
			win--;
			release();
			rounds[id]++;
			got = false
		:: else -> skip
		fi
	:: else -> break
	od;
	assert(lq[id] == 0)
}

proctype monitor()
{
	timeout;
	byte k = 0;
	do
	:: k < NW -> assert(rounds[k] == R || gaveup[k]); k++
	:: else -> break
	od;
	assert(cnt == 0 && !wr && wlk == 0 && qlen[QR] == 0 && qlen[QW] == 0 &&
	       rin == 0 && win == 0)
}

init
{
	WAITQ_LOCALS;

	atomic {
		waitq_init_all();
		j = 0;
		do
		:: j < NR ->
#ifdef DL
			run reader(j, j == 0);
#else
			run reader(j, false);
#endif
			j++
		:: else -> break
		od;
		do
		:: j < NW ->
#ifdef DL
			run writer(j, j == NR);
#else
			run writer(j, false);
#endif
			j++
		:: else -> break
		od;
		j = 0;
		run monitor()
	}
}

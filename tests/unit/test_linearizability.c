/*
 * test_linearizability.c - concurrent histories of a small channel checked
 * against a sequential channel (Wing and Gong's algorithm, memoized).
 *
 * A history: W worker threads each run a short random list of operations
 * on one channel (send, try_send, send_until, recv, try_recv, recv_until,
 * a two-case select that sends or receives, and now and then close). Each
 * operation records an invocation stamp before the call and a response
 * stamp after it, both from one seq_cst counter, so "a responded before b
 * was invoked" in stamps implies it in real time. Every value sent is
 * unique. When every worker that has not finished is queued on the
 * channel (it waits, and nobody is left to wake it), the test thread
 * closes the channel, and records that close too.
 *
 * The check: is there a total order of all operations that respects the
 * real-time order (a before b whenever a responded before b was invoked)
 * and in which every operation returns what a sequential channel would
 * return? Wing-Gong searches for one: repeatedly linearize one of the
 * "minimal" operations (invoked before the earliest response among those
 * left) whose result the model agrees with, backtracking on dead ends; a
 * set of (operations linearized, model state) already explored is never
 * explored again (Lowe's memoization), which keeps the search linear in
 * practice.
 *
 * The sequential channel of capacity c > 0: a FIFO of at most c values and
 * a closed flag. send: EPIPE if closed, else 0 if there is room (a send that
 * returned 0 linearizes only where there is room); recv: the head value if
 * any, else EPIPE if closed; try forms return EAGAIN where the plain form
 * would wait; a timed-out form (ETIMEDOUT) likewise. close: EPIPE if closed.
 *
 * Capacity 0 (rendezvous): no buffer; a send that returned 0 and the
 * receive that got its value linearize together, as one hand-off, at a
 * point inside both intervals where the channel is open. EAGAIN/ETIMEDOUT
 * are accepted wherever the channel is open (whether a partner was waiting
 * at that instant is not part of the sequential state).
 *
 * The checker is tested too: hand-written histories that are not
 * linearizable must be rejected.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanal/chan.h"
#include "helpers.h"

enum kind { SEND, TRY_SEND, SEND_UNTIL, RECV, TRY_RECV, RECV_UNTIL, SELECT, CLOSE };

static const char *const kind_name[] = {
	"send", "try_send", "send_until", "recv", "try_recv", "recv_until",
	"select", "close",
};

#define MAX_OPS 64
#define MAX_WORKERS 4
#define OPS_PER_WORKER 7

struct hop {
	enum kind kind;
	int thread;
	int64_t arg;     /* the value a send (or a select's send case) offers */
	int64_t val;     /* the value received, 0 if none */
	int ret;
	bool sent;       /* select: the send case fired */
	uint64_t inv, resp;
};

struct history {
	struct hop op[MAX_OPS];
	int n;
};

/* ---- the checker ------------------------------------------------------------ */

/* The sequential channel; values are 1..MAX_OPS, so a byte each. */
struct model {
	uint8_t q[2];
	uint8_t len;
	bool closed;
};

static uint32_t model_key(const struct model *m)
{
	return (uint32_t)m->q[0] | (uint32_t)m->q[1] << 8 |
	       (uint32_t)m->len << 16 | (uint32_t)m->closed << 18;
}

/* The effective operation: a select is the send or the receive that fired. */
static bool is_send(const struct hop *o)
{
	return o->kind == SEND || o->kind == TRY_SEND || o->kind == SEND_UNTIL ||
	       (o->kind == SELECT && o->sent);
}

static bool is_wait_fail(int ret)
{
	return ret == EAGAIN || ret == ETIMEDOUT;
}

/* Apply o alone to m (capacity cap): false if its result is impossible in
 * state m. Successful rendezvous operations never apply alone. */
static bool apply(struct model *m, size_t cap, const struct hop *o)
{
	if (o->kind == CLOSE) {
		if (o->ret == EPIPE)
			return m->closed;
		if (o->ret != 0 || m->closed)
			return false;
		m->closed = true;
		return true;
	}
	if (o->ret == EPIPE)
		return m->closed && (is_send(o) || m->len == 0);
	if (is_wait_fail(o->ret)) {
		if (m->closed)
			return false;
		if (cap == 0)
			return true;
		return is_send(o) ? m->len == cap : m->len == 0;
	}
	if (o->ret != 0 || cap == 0 || (m->closed && is_send(o)))
		return false;
	if (is_send(o)) {
		if (m->len == cap)
			return false;
		m->q[m->len++] = (uint8_t)o->arg;
		return true;
	}
	if (m->len == 0 || m->q[0] != o->val)
		return false;
	m->q[0] = m->q[1];
	m->q[1] = 0;
	m->len--;
	return true;
}

/* Memo of explored (linearized set, model state): open addressing. */
#define MEMO_BITS 16
struct memo {
	uint64_t mask[1u << MEMO_BITS];
	uint32_t key[1u << MEMO_BITS];
	uint32_t gen[1u << MEMO_BITS];
	uint32_t cur;
	size_t used;
};

/* True if (mask, key) was already explored; records it otherwise. */
static bool memo_seen(struct memo *t, uint64_t mask, uint32_t key)
{
	uint64_t h = (mask ^ (uint64_t)key * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
	size_t i = (size_t)(h >> (64 - MEMO_BITS));

	for (;;) {
		if (t->gen[i] != t->cur) {
			cr_assert_lt(t->used, (1u << MEMO_BITS) / 2, "memo full");
			t->gen[i] = t->cur;
			t->mask[i] = mask;
			t->key[i] = key;
			t->used++;
			return false;
		}
		if (t->mask[i] == mask && t->key[i] == key)
			return true;
		i = (i + 1) & ((1u << MEMO_BITS) - 1);
	}
}

struct search {
	const struct history *h;
	size_t cap;
	uint64_t all;
	struct memo *memo;
};

/* The rendezvous partner of a successful operation: the other side with
 * the same value. -1 if none. */
static int partner(const struct history *h, int i)
{
	const struct hop *o = &h->op[i];
	int64_t v = is_send(o) ? o->arg : o->val;
	int j;

	for (j = 0; j < h->n; j++) {
		const struct hop *p = &h->op[j];

		if (j == i || p->kind == CLOSE || p->ret != 0 || is_send(p) == is_send(o))
			continue;
		if ((is_send(p) ? p->arg : p->val) == v)
			return j;
	}
	return -1;
}

static bool linearize(struct search *s, uint64_t done, struct model m)
{
	const struct history *h = s->h;
	uint64_t min_resp = UINT64_MAX;
	int i, j;

	if (done == s->all)
		return true;
	if (memo_seen(s->memo, done, model_key(&m)))
		return false;
	for (i = 0; i < h->n; i++)
		if (!(done & 1ull << i) && h->op[i].resp < min_resp)
			min_resp = h->op[i].resp;
	for (i = 0; i < h->n; i++) {
		const struct hop *o = &h->op[i];
		struct model next = m;

		if (done & 1ull << i || o->inv > min_resp)
			continue;
		if (s->cap == 0 && o->kind != CLOSE && o->ret == 0) {
			/* A hand-off: linearize with its partner, from the
			 * send's side only (each pair once). */
			j = partner(h, i);
			if (!is_send(o) || j < 0 || done & 1ull << j ||
			    h->op[j].inv > min_resp || m.closed)
				continue;
			if (linearize(s, done | 1ull << i | 1ull << j, m))
				return true;
			continue;
		}
		if (apply(&next, s->cap, o) && linearize(s, done | 1ull << i, next))
			return true;
	}
	return false;
}

static struct memo memo;

static bool linearizable(const struct history *h, size_t cap)
{
	struct search s = { h, cap, h->n == 64 ? UINT64_MAX : (1ull << h->n) - 1, &memo };

	memo.cur++;
	memo.used = 0;
	return linearize(&s, 0, (struct model){ { 0, 0 }, 0, false });
}

static void print_history(const struct history *h)
{
	int i;

	for (i = 0; i < h->n; i++) {
		const struct hop *o = &h->op[i];

		fprintf(stderr, "  [%3llu, %3llu] t%d %-10s arg %2lld -> %d val %2lld%s\n",
			(unsigned long long)o->inv, (unsigned long long)o->resp,
			o->thread, kind_name[o->kind], (long long)o->arg, o->ret,
			(long long)o->val, o->kind == SELECT ? (o->sent ? " (sent)" : " (recv)") : "");
	}
}

/* ---- recording histories ---------------------------------------------------- */

static _Atomic uint64_t clock_now;

static uint64_t stamp(void)
{
	return atomic_fetch_add(&clock_now, 1);
}

struct run {
	kn_chan *ch;
	struct history *h;
	int workers;
	int first[MAX_WORKERS], count[MAX_WORKERS]; /* each worker's ops */
	atomic_int finished;
	pthread_barrier_t start, end;
	bool quit;
};

struct worker {
	struct run *run;
	int id;
};

static void perform(kn_chan *ch, struct hop *o)
{
	int64_t v = o->arg, got = 0;
	struct kn_case cases[2] = {
		{ ch, KN_SEND, &v },
		{ ch, KN_RECV, &got },
	};
	size_t fired = 0;

	o->inv = stamp();
	switch (o->kind) {
	case SEND:
		o->ret = kn_chan_send(ch, &v);
		break;
	case TRY_SEND:
		o->ret = kn_chan_try_send(ch, &v);
		break;
	case SEND_UNTIL:
		o->ret = kn_chan_send_until(ch, &v, kn_deadline_in(20 * 1000));
		break;
	case RECV:
		o->ret = kn_chan_recv(ch, &got);
		break;
	case TRY_RECV:
		o->ret = kn_chan_try_recv(ch, &got);
		break;
	case RECV_UNTIL:
		o->ret = kn_chan_recv_until(ch, &got, kn_deadline_in(20 * 1000));
		break;
	case SELECT:
		o->ret = kn_select(cases, 2, 0, KN_FOREVER, NULL, &fired);
		o->sent = fired == 0;
		break;
	case CLOSE:
		o->ret = kn_chan_close(ch);
		break;
	}
	o->resp = stamp();
	o->val = got;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	int i;

	for (;;) {
		pthread_barrier_wait(&r->start);
		if (r->quit)
			return NULL;
		for (i = 0; i < r->count[w->id]; i++)
			perform(r->ch, &r->h->op[r->first[w->id] + i]);
		atomic_fetch_add(&r->finished, 1);
		pthread_barrier_wait(&r->end);
	}
}

/* A random list of operations per worker; sends carry unique values. */
static void plan(struct run *r, uint64_t *seed)
{
	struct history *h = r->h;
	int w, i;

	h->n = 0;
	for (w = 0; w < r->workers; w++) {
		r->first[w] = h->n;
		r->count[w] = OPS_PER_WORKER;
		for (i = 0; i < OPS_PER_WORKER; i++) {
			struct hop *o = &h->op[h->n];
			unsigned pick = (unsigned)(kt_rand(seed) % 100);

			memset(o, 0, sizeof(*o));
			o->thread = w;
			o->kind = pick < 2 ? CLOSE : (enum kind)(pick % 7);
			o->arg = h->n + 1;
			h->n++;
		}
	}
}

/* Run the planned history; close the channel (recorded) if every worker
 * still running waits on it. */
static void record(struct run *r)
{
	int running;

	atomic_store(&r->finished, 0);
	pthread_barrier_wait(&r->start);
	for (;;) {
		running = r->workers - atomic_load(&r->finished);
		if (running == 0)
			break;
		if (kt_queued(r->ch, KN_SEND) + kt_queued(r->ch, KN_RECV) >= (size_t)running) {
			struct hop *o = &r->h->op[r->h->n++];

			memset(o, 0, sizeof(*o));
			o->thread = r->workers;
			o->kind = CLOSE;
			perform(r->ch, o);
			break;
		}
		kt_pause();
	}
	pthread_barrier_wait(&r->end);
}

static void check_many(size_t cap, int workers, int histories, uint64_t seed)
{
	static struct history h;
	struct run r = { .h = &h, .workers = workers };
	struct worker w[MAX_WORKERS];
	pthread_t tid[MAX_WORKERS];
	int i, k, closes = 0, handoffs = 0;

	cr_assert_eq(pthread_barrier_init(&r.start, NULL, (unsigned)workers + 1), 0);
	cr_assert_eq(pthread_barrier_init(&r.end, NULL, (unsigned)workers + 1), 0);
	for (i = 0; i < workers; i++) {
		w[i] = (struct worker){ &r, i };
		cr_assert_eq(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
	}
	for (k = 0; k < histories; k++) {
		r.ch = kt_chan(sizeof(int64_t), cap);
		plan(&r, &seed);
		record(&r);
		kn_chan_free(r.ch);
		for (i = 0; i < h.n; i++) {
			closes += h.op[i].kind == CLOSE && h.op[i].ret == 0;
			handoffs += h.op[i].kind != CLOSE && is_send(&h.op[i]) && h.op[i].ret == 0;
		}
		if (!linearizable(&h, cap)) {
			fprintf(stderr, "capacity %zu, history %d is not linearizable:\n", cap, k);
			print_history(&h);
			cr_assert_fail("history %d not linearizable (printed above)", k);
		}
	}
	r.quit = true;
	pthread_barrier_wait(&r.start);
	for (i = 0; i < workers; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&r.end);
	/* The histories did exercise something. */
	cr_expect_gt(closes, 0);
	cr_expect_gt(handoffs, histories);
	cr_log_info("capacity %zu: %d histories, %d values moved, %d closes\n",
		    cap, histories, handoffs, closes);
}

Test(linearizability, buffered_capacity_2)
{
	check_many(2, 3, 1500, 0x1234);
	check_many(2, 4, 1500, 0x5678);
}

Test(linearizability, buffered_capacity_1)
{
	check_many(1, 3, 1500, 0x9abc);
}

Test(linearizability, rendezvous)
{
	check_many(0, 3, 1500, 0xdef0);
	check_many(0, 4, 1500, 0x4321);
}

/* ---- the checker rejects what it must -------------------------------------- */

static struct hop mk(enum kind k, int64_t arg, int ret, int64_t val,
		    uint64_t inv, uint64_t resp)
{
	return (struct hop){ .kind = k, .arg = arg, .ret = ret, .val = val,
			    .inv = inv, .resp = resp };
}

static bool check_ops(const struct hop *ops, int n, size_t cap)
{
	static struct history h;

	memcpy(h.op, ops, (size_t)n * sizeof(*ops));
	h.n = n;
	return linearizable(&h, cap);
}

Test(linearizability, checker_accepts_overlap)
{
	/* Two overlapping sends may be received in either order. */
	struct hop ops[] = {
		mk(SEND, 1, 0, 0, 0, 3), mk(SEND, 2, 0, 0, 1, 2),
		mk(RECV, 0, 0, 2, 4, 5), mk(RECV, 0, 0, 1, 6, 7),
	};

	cr_expect(check_ops(ops, 4, 2));
}

Test(linearizability, checker_rejects_fifo_violation)
{
	struct hop ops[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(SEND, 2, 0, 0, 2, 3),
		mk(RECV, 0, 0, 2, 4, 5), mk(RECV, 0, 0, 1, 6, 7),
	};

	cr_expect_not(check_ops(ops, 4, 2));
}

Test(linearizability, checker_rejects_lost_and_invented_values)
{
	struct hop lost[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(TRY_RECV, 0, EAGAIN, 0, 2, 3),
	};
	struct hop invented[] = { mk(TRY_RECV, 0, 0, 7, 0, 1) };
	struct hop twice[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(RECV, 0, 0, 1, 2, 3),
		mk(RECV, 0, 0, 1, 4, 5),
	};

	cr_expect_not(check_ops(lost, 2, 2));
	cr_expect_not(check_ops(invented, 1, 2));
	cr_expect_not(check_ops(twice, 3, 2));
}

Test(linearizability, checker_rejects_capacity_and_close_violations)
{
	struct hop over[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(SEND, 2, 0, 0, 2, 3),
		mk(TRY_SEND, 3, 0, 0, 4, 5),
	};
	struct hop early_full[] = { mk(TRY_SEND, 1, EAGAIN, 0, 0, 1) };
	struct hop send_after_close[] = {
		mk(CLOSE, 0, 0, 0, 0, 1), mk(SEND, 1, 0, 0, 2, 3),
	};
	struct hop epipe_undrained[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(CLOSE, 0, 0, 0, 2, 3),
		mk(RECV, 0, EPIPE, 0, 4, 5),
	};
	struct hop close_twice[] = {
		mk(CLOSE, 0, 0, 0, 0, 1), mk(CLOSE, 0, 0, 0, 2, 3),
	};

	cr_expect_not(check_ops(over, 3, 2));
	cr_expect_not(check_ops(early_full, 1, 2));
	cr_expect_not(check_ops(send_after_close, 2, 2));
	cr_expect_not(check_ops(epipe_undrained, 3, 2));
	cr_expect_not(check_ops(close_twice, 2, 2));
}

Test(linearizability, checker_rendezvous_needs_overlap)
{
	/* A rendezvous send cannot complete before its receiver started. */
	struct hop apart[] = {
		mk(SEND, 1, 0, 0, 0, 1), mk(RECV, 0, 0, 1, 2, 3),
	};
	struct hop overlap[] = {
		mk(SEND, 1, 0, 0, 0, 3), mk(RECV, 0, 0, 1, 1, 2),
	};
	struct hop after_close[] = {
		mk(CLOSE, 0, 0, 0, 0, 1),
		mk(SEND, 1, 0, 0, 2, 5), mk(RECV, 0, 0, 1, 3, 4),
	};

	cr_expect_not(check_ops(apart, 2, 0));
	cr_expect(check_ops(overlap, 2, 0));
	cr_expect_not(check_ops(after_close, 3, 0));
}

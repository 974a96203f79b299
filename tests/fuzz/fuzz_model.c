/*
 * fuzz_model.c - randomized model-based testing of channels, select, close,
 * contexts and the semaphore.
 *
 * Each seed generates a program: a few channels (capacity 0 to 3), one
 * semaphore, two cancellable contexts, and 2 to 5 threads, each with a
 * random list of operations: send and receive in every form (plain, try_,
 * _until with a deadline a few microseconds away, _ctx), select over one to
 * three cases (with or without default, deadline or context), close,
 * cancel, and semaphore acquire (every form) followed by the release of
 * what it got. The program runs on kanal twice, with plain threads and as
 * tasks of a two-worker pool (fibers), and the observable history (each
 * call's status, the values received, a logical timestamp before and after
 * each call) is checked against the sequential reference model of those
 * objects. Every value sent is unique, so a history is legal only if:
 *
 *   conservation  every value received was sent on that channel by a send
 *                 that returned 0; each such value is received exactly once
 *                 (by the program, or by the drain at the end); a failed
 *                 send's value (EPIPE, EAGAIN, ETIMEDOUT, ECANCELED, a select
 *                 case that did not fire) is never received
 *   real time     a receive does not end before its send began; on a
 *                 rendezvous channel the two calls overlap
 *   FIFO          two values of one producer on one channel are not
 *                 received in the opposite order (the later one's receive
 *                 ending before the earlier one's began)
 *   close         one close per channel succeeds; a send that returned 0
 *                 began before that close ended; an EPIPE call ended
 *                 after it began; a receive gets EPIPE only when every value
 *                 sent before it began was received by a call that began
 *                 before it ended, and its buffer holds the zero value
 *   contexts      a call that began after kn_ctx_cancel returned fails with
 *                 ECANCELED; ECANCELED only after the cancel began
 *   semaphore     the tokens held never exceed the size; all come back
 *   statuses      each call returns only what its form may return
 *   final states  channels empty after the drain; closed (cancelled)
 *                 exactly when a close (cancel) succeeded
 *
 * Generator constraints that keep the model sequential and the program
 * finite: a thread releases its tokens right after acquiring them (no
 * hold-and-wait), and when every thread is blocked (no call ended for a
 * while) the driver closes every channel and cancels every context, which
 * ends every wait; its closes and cancels are part of the history.
 *
 * Usage: fuzz_model [--seconds S] [--seed N] [--mode threads|tasks|both]
 *                   [--repeat K]
 * Runs programs from consecutive seeds for S seconds (default 1; the
 * KANAL_STRESS_SECONDS convention of the stress programs), or only seed N
 * (K times: a replay reruns the same program, with another schedule).
 * Prints the seed and the violation on failure; exits non-zero then.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kanal/kanal.h>

#define MAX_CHANS 3
#define MAX_THREADS 5
#define MAX_OPS 40
#define MAX_CASES 3
#define NCTX 2
#define SEM_SIZE 3

enum kind { SEND, RECV, SELECT, CLOSE, CANCEL, ACQUIRE };
enum form { PLAIN, TRY, UNTIL, CTX };

struct scase {
	int ch;
	int op;           /* KN_SEND, KN_RECV */
	int64_t val;      /* send: the unique value; receive: what came */
};

struct op {
	enum kind kind;
	enum form form;
	int obj;          /* channel, context; tokens for ACQUIRE */
	int ctx;
	int ncase;
	struct scase c[MAX_CASES];
	unsigned sflags;  /* select: KN_SELECT_DEFAULT */
	uint64_t wait_ns; /* UNTIL: the deadline's distance */
	/* history */
	int r;
	size_t fired;
	uint64_t inv, res;
	int64_t pad;      /* the word after a receive's buffer: untouched */
};

struct thread {
	struct prog *pg;
	int nops;
	struct op ops[MAX_OPS];
};

/* Where each value came from: sends[val - 1]. */
struct send_ref {
	struct op *op;
	int c;            /* case index; 0 for a lone send */
	int thread;
	int ch;
	int recvs;        /* times received */
	struct op *by;    /* the (last) receiving call */
	int by_c;
};

struct prog {
	uint64_t seed;
	int nchans, nthreads;
	size_t cap[MAX_CHANS];
	kn_chan *ch[MAX_CHANS];
	kn_ctx *ctx[NCTX];
	kn_sem *sem;
	struct thread th[MAX_THREADS];
	/* the driver's closes, cancels and drain, as more history */
	struct op fin[MAX_CHANS + NCTX];
	struct op drain[MAX_CHANS * 64 + MAX_THREADS * MAX_OPS * MAX_CASES];
	int ndrain;
	struct send_ref sends[MAX_THREADS * MAX_OPS * MAX_CASES];
	int nsends;
	atomic_uint_fast64_t clock;
	atomic_int done;
	atomic_int_fast64_t held;
	atomic_int sem_bad;     /* over-granted, or a release refused */
	atomic_int violations;
};

static uint64_t ops_checked, progs_run[2];

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static int below(uint64_t *s, int n)
{
	return (int)(rnd(s) % (uint64_t)n);
}

static uint64_t stamp(struct prog *pg)
{
	return atomic_fetch_add(&pg->clock, 1);
}

/* ---- generation ------------------------------------------------------------ */

static void add_send(struct prog *pg, struct op *o, int c, int t)
{
	o->c[c].val = ++pg->nsends;
	pg->sends[pg->nsends - 1] = (struct send_ref){ o, c, t, o->c[c].ch, 0, NULL, 0 };
}

static void gen_op(struct prog *pg, uint64_t *s, int t, struct op *o)
{
	int k = below(s, 100), i;

	memset(o, 0, sizeof(*o));
	o->form = (enum form)below(s, 4);
	o->ctx = below(s, NCTX);
	o->wait_ns = (uint64_t)below(s, 300) * 1000;
	if (k < 30) {
		o->kind = SEND;
		o->ncase = 1;
		o->c[0] = (struct scase){ below(s, pg->nchans), KN_SEND, 0 };
		add_send(pg, o, 0, t);
	} else if (k < 62) {
		o->kind = RECV;
		o->ncase = 1;
		o->c[0] = (struct scase){ below(s, pg->nchans), KN_RECV, 0 };
	} else if (k < 82) {
		o->kind = SELECT;
		o->ncase = 1 + below(s, MAX_CASES);
		o->sflags = o->form == TRY ? KN_SELECT_DEFAULT : 0;
		for (i = 0; i < o->ncase; i++) {
			o->c[i] = (struct scase){ below(s, pg->nchans),
						  below(s, 2) ? KN_SEND : KN_RECV, 0 };
			if (o->c[i].op == KN_SEND)
				add_send(pg, o, i, t);
		}
	} else if (k < 86) {
		o->kind = CLOSE;
		o->obj = below(s, pg->nchans);
	} else if (k < 89) {
		o->kind = CANCEL;
		o->obj = below(s, NCTX);
	} else {
		o->kind = ACQUIRE;
		o->obj = 1 + below(s, SEM_SIZE);
	}
}

static void gen(struct prog *pg, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	int t, i;

	memset(pg, 0, sizeof(*pg));
	pg->seed = seed;
	pg->nchans = 1 + below(&s, MAX_CHANS);
	pg->nthreads = 2 + below(&s, MAX_THREADS - 1);
	for (i = 0; i < pg->nchans; i++)
		pg->cap[i] = (size_t)below(&s, 4);
	for (t = 0; t < pg->nthreads; t++) {
		pg->th[t].pg = pg;
		pg->th[t].nops = 5 + below(&s, MAX_OPS - 5);
		for (i = 0; i < pg->th[t].nops; i++)
			gen_op(pg, &s, t, &pg->th[t].ops[i]);
	}
}

/* ---- execution --------------------------------------------------------------- */

static uint64_t deadline_of(const struct op *o)
{
	return kn_now() + o->wait_ns;
}

static int chan_call(struct prog *pg, struct op *o)
{
	struct scase *c = &o->c[0];
	kn_chan *ch = pg->ch[c->ch];
	kn_ctx *ctx = pg->ctx[o->ctx];

	if (c->op == KN_SEND) {
		switch (o->form) {
		case PLAIN: return kn_chan_send(ch, &c->val);
		case TRY: return kn_chan_try_send(ch, &c->val);
		case UNTIL: return kn_chan_send_until(ch, &c->val, deadline_of(o));
		default: return kn_chan_send_ctx(ch, &c->val, ctx);
		}
	}
	switch (o->form) {
	case PLAIN: return kn_chan_recv(ch, &c->val);
	case TRY: return kn_chan_try_recv(ch, &c->val);
	case UNTIL: return kn_chan_recv_until(ch, &c->val, deadline_of(o));
	default: return kn_chan_recv_ctx(ch, &c->val, ctx);
	}
}

static int select_call(struct prog *pg, struct op *o)
{
	struct kn_case kc[MAX_CASES];
	int i;

	for (i = 0; i < o->ncase; i++)
		kc[i] = (struct kn_case){ pg->ch[o->c[i].ch], o->c[i].op, &o->c[i].val };
	return kn_select(kc, (size_t)o->ncase, o->sflags,
			 o->form == UNTIL ? deadline_of(o) : KN_FOREVER,
			 o->form == CTX ? pg->ctx[o->ctx] : NULL, &o->fired);
}

static int acquire_call(struct prog *pg, struct op *o)
{
	uint64_t n = (uint64_t)o->obj;
	int64_t h;
	int r;

	switch (o->form) {
	case PLAIN: r = kn_sem_acquire(pg->sem, n); break;
	case TRY: r = kn_sem_try_acquire(pg->sem, n); break;
	case UNTIL: r = kn_sem_acquire_until(pg->sem, n, deadline_of(o)); break;
	default: r = kn_sem_acquire_ctx(pg->sem, n, pg->ctx[o->ctx]); break;
	}
	if (r == 0) {
		h = atomic_fetch_add(&pg->held, (int64_t)n) + (int64_t)n;
		if (h > SEM_SIZE)
			atomic_fetch_add(&pg->sem_bad, 1);
		atomic_fetch_sub(&pg->held, (int64_t)n);
		if (kn_sem_release(pg->sem, n) != 0)
			atomic_fetch_add(&pg->sem_bad, 1);
	}
	return r;
}

static void run_op(struct prog *pg, struct op *o)
{
	int i;

	for (i = 0; i < o->ncase; i++)
		if (o->c[i].op == KN_RECV)
			o->c[i].val = -1;
	o->pad = 0x5a5a;
	o->fired = SIZE_MAX;
	o->inv = stamp(pg);
	switch (o->kind) {
	case SEND:
	case RECV: o->r = chan_call(pg, o); break;
	case SELECT: o->r = select_call(pg, o); break;
	case CLOSE: o->r = kn_chan_close(pg->ch[o->obj]); break;
	case CANCEL: o->r = kn_ctx_cancel(pg->ctx[o->obj], 0, NULL); break;
	case ACQUIRE: o->r = acquire_call(pg, o); break;
	}
	o->res = stamp(pg);
}

static void run_thread(void *arg)
{
	struct thread *th = arg;
	int i;

	for (i = 0; i < th->nops; i++)
		run_op(th->pg, &th->ops[i]);
	atomic_fetch_add(&th->pg->done, 1);
}

static void *thread_main(void *arg)
{
	run_thread(arg);
	return NULL;
}

static void sleep_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

/* Wait for every thread; while none makes progress for a while (all
 * blocked for good, e.g. receivers without senders), close every channel
 * and cancel every context: that ends every wait. */
static void drive(struct prog *pg)
{
	uint64_t last = UINT64_MAX;
	int idle = 0, i;
	bool ended = false;

	while (atomic_load(&pg->done) < pg->nthreads) {
		uint64_t now = atomic_load(&pg->clock);

		sleep_us(500);
		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle >= 20 && !ended) {
			ended = true;
			for (i = 0; i < pg->nchans; i++) {
				pg->fin[i] = (struct op){ .kind = CLOSE, .obj = i };
				run_op(pg, &pg->fin[i]);
			}
			for (i = 0; i < NCTX; i++) {
				pg->fin[MAX_CHANS + i] = (struct op){ .kind = CANCEL, .obj = i };
				run_op(pg, &pg->fin[MAX_CHANS + i]);
			}
		}
	}
}

static void drain(struct prog *pg)
{
	int i;

	for (i = 0; i < pg->nchans; i++) {
		for (;;) {
			struct op *o = &pg->drain[pg->ndrain];

			*o = (struct op){ .kind = RECV, .form = TRY, .ncase = 1 };
			o->c[0] = (struct scase){ i, KN_RECV, 0 };
			run_op(pg, o);
			if (o->r != 0)
				break;
			pg->ndrain++;
		}
	}
}

static bool setup(struct prog *pg)
{
	int i;

	for (i = 0; i < pg->nchans; i++)
		if (!(pg->ch[i] = kn_chan_new(sizeof(int64_t), pg->cap[i])))
			return false;
	for (i = 0; i < NCTX; i++)
		if (!(pg->ctx[i] = kn_ctx_with_cancel(NULL)))
			return false;
	pg->sem = kn_sem_new(SEM_SIZE);
	return pg->sem != NULL;
}

static void teardown(struct prog *pg)
{
	int i;

	for (i = 0; i < pg->nchans; i++)
		kn_chan_free(pg->ch[i]);
	for (i = 0; i < NCTX; i++)
		kn_ctx_release(pg->ctx[i]);
	kn_sem_free(pg->sem);
}

static void execute(struct prog *pg, kn_pool *pool)
{
	pthread_t tid[MAX_THREADS];
	int t;

	for (t = 0; t < pg->nthreads; t++) {
		if (pool) {
			while (kn_pool_spawn(pool, run_thread, &pg->th[t]) != 0)
				sleep_us(100);
		} else if (pthread_create(&tid[t], NULL, thread_main, &pg->th[t]) != 0) {
			run_thread(&pg->th[t]); /* no thread: run it here */
			tid[t] = 0;
		}
	}
	drive(pg);
	if (!pool)
		for (t = 0; t < pg->nthreads; t++)
			if (tid[t])
				pthread_join(tid[t], NULL);
	drain(pg);
}

/* ---- checking ------------------------------------------------------------------ */

static const char *mode_name;

#define FAIL(pg, ...)                                                         \
	do {                                                                      \
		fprintf(stderr, "fuzz_model: VIOLATION seed %" PRIu64 " (%s): ",  \
			(pg)->seed, mode_name);                                   \
		fprintf(stderr, __VA_ARGS__);                                     \
		fprintf(stderr, "\n");                                            \
		atomic_fetch_add(&(pg)->violations, 1);                          \
	} while (0)

/* The successful close of channel i, and of context i. */
static struct op *winner(struct prog *pg, enum kind kind, int obj)
{
	struct op *w = NULL, *o;
	int t, i, n = 0;

	for (t = 0; t <= pg->nthreads; t++) {
		int nops = t < pg->nthreads ? pg->th[t].nops : MAX_CHANS + NCTX;

		for (i = 0; i < nops; i++) {
			o = t < pg->nthreads ? &pg->th[t].ops[i] : &pg->fin[i];
			if (o->kind == kind && o->obj == obj && o->inv + o->res > 0) {
				if (o->r == 0) {
					w = o;
					n++;
				} else if (o->r != (kind == CLOSE ? EPIPE : EALREADY)) {
					FAIL(pg, "%s returned %d", kind == CLOSE ? "close" : "cancel", o->r);
				}
			}
		}
	}
	if (n > 1)
		FAIL(pg, "%d %s calls on object %d succeeded", n,
		     kind == CLOSE ? "close" : "cancel", obj);
	return w;
}

static bool status_ok(const struct op *o)
{
	switch (o->r) {
	case 0: return true;
	case EPIPE: return o->kind != ACQUIRE;
	case EAGAIN: return o->form == TRY;
	case ETIMEDOUT: return o->form == UNTIL;
	case ECANCELED: return o->form == CTX;
	default: return false;
	}
}

/* Which case moved a value (or got EPIPE): -1 if none. */
static int fired_case(const struct op *o)
{
	if (o->kind == SELECT)
		return (o->r == 0 || o->r == EPIPE) ? (int)o->fired : -1;
	return (o->r == 0 || o->r == EPIPE) ? 0 : -1;
}

static void check_receive(struct prog *pg, struct op *o, int c)
{
	struct send_ref *s;
	int64_t v = o->c[c].val;

	if (v < 1 || v > pg->nsends) {
		FAIL(pg, "received %" PRId64 ", never sent", v);
		return;
	}
	s = &pg->sends[v - 1];
	if (s->ch != o->c[c].ch)
		FAIL(pg, "value %" PRId64 " sent on channel %d received on %d", v, s->ch, o->c[c].ch);
	s->recvs++;
	s->by = o;
	s->by_c = c;
}

static void check_op(struct prog *pg, struct op *o, struct op **closes,
		     struct op **cancels)
{
	int c = fired_case(o), i;

	ops_checked++;
	if (o->kind == CLOSE || o->kind == CANCEL)
		return;
	if (!status_ok(o))
		FAIL(pg, "kind %d form %d returned %d", o->kind, o->form, o->r);
	if (o->kind == SELECT && c >= 0 && (c >= o->ncase))
		FAIL(pg, "select fired case %d of %d", c, o->ncase);
	if (o->pad != 0x5a5a)
		FAIL(pg, "a receive wrote past its buffer");
	/* contexts */
	if (o->form == CTX && cancels[o->ctx]) {
		struct op *k = cancels[o->ctx];

		if (o->inv > k->res && o->r != ECANCELED)
			FAIL(pg, "a call that began after its context's cancel returned %d", o->r);
	}
	if (o->r == ECANCELED && (!cancels[o->ctx] || o->res < cancels[o->ctx]->inv))
		FAIL(pg, "ECANCELED before the cancel");
	if (o->kind == ACQUIRE || c < 0)
		return;
	/* close */
	for (i = 0; i < o->ncase; i++) {
		struct op *k = closes[o->c[i].ch];

		if (i != c)
			continue;
		if (o->r == EPIPE) {
			if (!k || o->res < k->inv)
				FAIL(pg, "EPIPE before the close");
			if (o->c[i].op == KN_RECV && o->c[i].val != 0)
				FAIL(pg, "EPIPE receive left %" PRId64 ", not the zero value", o->c[i].val);
		} else if (o->c[i].op == KN_SEND && k && o->inv > k->res) {
			FAIL(pg, "a send that began after the close succeeded");
		}
		if (o->r == 0 && o->c[i].op == KN_RECV)
			check_receive(pg, o, i);
	}
}

/* An EPIPE receive on a drained channel: every value whose send ended
 * before it began was received by a call that began before it ended. */
static void check_drained(struct prog *pg, struct op *e, int ch)
{
	int v;

	for (v = 0; v < pg->nsends; v++) {
		struct send_ref *s = &pg->sends[v];

		if (s->ch == ch && s->recvs == 1 && s->op->res < e->inv && s->by->inv > e->res)
			FAIL(pg, "EPIPE on channel %d while value %d was still buffered", ch, v + 1);
	}
}

static void check_values(struct prog *pg)
{
	int v, w;

	for (v = 0; v < pg->nsends; v++) {
		struct send_ref *s = &pg->sends[v];
		bool sent = fired_case(s->op) == s->c && s->op->r == 0;

		if (sent && s->recvs != 1)
			FAIL(pg, "value %d sent, received %d times", v + 1, s->recvs);
		if (!sent && s->recvs)
			FAIL(pg, "value %d not sent (status %d), received", v + 1, s->op->r);
		if (!sent || s->recvs != 1)
			continue;
		if (s->by->res < s->op->inv)
			FAIL(pg, "value %d received before its send began", v + 1);
		if (pg->cap[s->ch] == 0 && s->by->inv > s->op->res)
			FAIL(pg, "rendezvous value %d: receive began after the send ended", v + 1);
		/* FIFO per producer */
		for (w = v + 1; w < pg->nsends; w++) {
			struct send_ref *u = &pg->sends[w];

			if (u->thread == s->thread && u->ch == s->ch && u->recvs == 1 &&
			    u->op != s->op && u->by->res < s->by->inv)
				FAIL(pg, "channel %d: value %d received before %d, sent earlier by one thread",
				     s->ch, w + 1, v + 1);
		}
	}
}

static void check(struct prog *pg)
{
	struct op *closes[MAX_CHANS], *cancels[NCTX];
	int t, i;

	for (i = 0; i < pg->nchans; i++)
		closes[i] = winner(pg, CLOSE, i);
	for (i = 0; i < NCTX; i++)
		cancels[i] = winner(pg, CANCEL, i);
	for (t = 0; t < pg->nthreads; t++)
		for (i = 0; i < pg->th[t].nops; i++)
			check_op(pg, &pg->th[t].ops[i], closes, cancels);
	for (i = 0; i < pg->ndrain; i++)
		check_op(pg, &pg->drain[i], closes, cancels);
	check_values(pg);
	for (t = 0; t < pg->nthreads; t++)
		for (i = 0; i < pg->th[t].nops; i++) {
			struct op *o = &pg->th[t].ops[i];
			int c = fired_case(o);

			if (o->r == EPIPE && c >= 0 && o->c[c].op == KN_RECV)
				check_drained(pg, o, o->c[c].ch);
		}
	if (atomic_load(&pg->sem_bad))
		FAIL(pg, "semaphore: more than %d tokens held, or a release refused", SEM_SIZE);
	if (kn_sem_available(pg->sem) != SEM_SIZE)
		FAIL(pg, "semaphore ends with %" PRIu64 " of %d tokens",
		     kn_sem_available(pg->sem), SEM_SIZE);
	for (i = 0; i < pg->nchans; i++) {
		if (kn_chan_len(pg->ch[i]) != 0)
			FAIL(pg, "channel %d not empty after the drain", i);
		if (kn_chan_is_closed(pg->ch[i]) != (closes[i] != NULL))
			FAIL(pg, "channel %d: closed %d, but a close succeeded: %d", i,
			     kn_chan_is_closed(pg->ch[i]), closes[i] != NULL);
	}
	for (i = 0; i < NCTX; i++)
		if ((kn_ctx_err(pg->ctx[i]) != 0) != (cancels[i] != NULL))
			FAIL(pg, "context %d: err %d, but a cancel succeeded: %d", i,
			     kn_ctx_err(pg->ctx[i]), cancels[i] != NULL);
}

/* ---- driver ------------------------------------------------------------------------ */

static int run_one(uint64_t seed, kn_pool *pool)
{
	static struct prog pg;
	int v;

	gen(&pg, seed);
	mode_name = pool ? "tasks" : "threads";
	if (!setup(&pg)) {
		fprintf(stderr, "fuzz_model: out of memory\n");
		return 1;
	}
	execute(&pg, pool);
	check(&pg);
	teardown(&pg);
	progs_run[pool != NULL]++;
	v = atomic_load(&pg.violations);
	if (v)
		fprintf(stderr, "fuzz_model: replay with: fuzz_model --seed %" PRIu64
			" --mode %s\n", seed, mode_name);
	return v;
}

int main(int argc, char **argv)
{
	double seconds = 1;
	uint64_t seed = 0, end, n;
	bool one = false, threads = true, tasks = true;
	long repeat = 1, k;
	struct kn_pool_opts po = { .workers = 2 };
	kn_pool *pool;
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
			one = true;
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			repeat = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			i++;
			threads = strcmp(argv[i], "tasks") != 0;
			tasks = strcmp(argv[i], "threads") != 0;
		} else {
			fprintf(stderr, "usage: fuzz_model [--seconds S] [--seed N] "
				"[--mode threads|tasks|both] [--repeat K]\n");
			return 2;
		}
	}
	pool = kn_pool_new(&po);
	if (!pool) {
		fprintf(stderr, "fuzz_model: no pool\n");
		return 1;
	}
	if (!one)
		seed = (uint64_t)time(NULL);
	printf("fuzz_model: first seed %" PRIu64 "\n", seed);
	end = kn_now() + (uint64_t)(seconds * 1e9);
	for (n = 0; !bad; n++) {
		if (one ? (long)n >= repeat : n > 0 && kn_now() >= end)
			break;
		for (k = 0; k < 1; k++) {
			if (threads)
				bad |= run_one(seed + (one ? 0 : n), NULL);
			if (tasks && !bad)
				bad |= run_one(seed + (one ? 0 : n), pool);
		}
	}
	kn_pool_free(pool);
	printf("fuzz_model: %" PRIu64 " programs (%" PRIu64 " as threads, %" PRIu64
	       " as tasks), %" PRIu64 " operations checked, %s\n",
	       progs_run[0] + progs_run[1], progs_run[0], progs_run[1], ops_checked,
	       bad ? "VIOLATIONS" : "0 violations");
	return bad ? 1 : 0;
}

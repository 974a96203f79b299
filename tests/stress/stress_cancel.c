/*
 * stress_cancel.c - the cancellation storm.
 *
 * Each round builds a random tree of 10,000 contexts (cancellable ones,
 * values, far deadlines, and detached leaves), registers after_funcs on
 * random nodes (stopping a quarter of them again), and starts 1,000 threads
 * that block under random nodes: on a semaphore with no tokens, in
 * kn_ctx_wait, receiving from an empty channel and sending to a full one.
 * Once every one of them sleeps, the root is cancelled while a second
 * thread cancels random inner nodes and releases a third of the tree.
 *
 * Checks: every waiter wakes with ECANCELED; every context of the tree is
 * cancelled (ECANCELED, never a deadline) and every detached leaf is not;
 * each after_func that was not stopped ran exactly once; the semaphore and
 * the channels are as they were. Nothing may leak: the AddressSanitizer
 * build reports it at exit (the arrays that held the contexts are cleared,
 * so that they do not make leaked ones look reachable).
 *
 * Usage: stress_cancel [--seconds S]   (rounds for S seconds, at least one)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kanal/chan.h>
#include <kanal/ctx.h>
#include <kanal/sem.h>

#include "stress.h"
#include "waiter.h"

#define NODES 10000
#define WAITERS 1000
#define AFTERS 2000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STACK (512 * 1024)
#else
#define STACK (64 * 1024)
#endif

static const uint64_t hour = 3600ull * 1000000000u;
static const int key = 1;

enum wait_kind { ON_SEM, ON_CTX, ON_RECV, ON_SEND, KINDS };

struct blocked {
	kn_ctx *ctx;
	enum wait_kind kind;
	bool parked;
	int ret;
};

struct tree {
	kn_ctx *node[NODES];
	bool detached[NODES];
	int cancellable[NODES]; /* indices of the nodes in the cancel tree */
	int ncancellable;
	kn_ctx_stop stop[AFTERS];
	bool stopped[AFTERS];
};

static kn_sem *sem;              /* no tokens: the main thread holds them */
static kn_chan *empty, *full;
static atomic_int parked, fired;
static uint64_t rng = 0x2545f4914f6cdd1dull;

static void on_block(void *arg, const struct waiter *wt)
{
	(void)wt;
	struct blocked *b = arg;

	if (!b->parked) {
		b->parked = true;
		atomic_fetch_add(&parked, 1);
	}
}

static void on_wake(void *arg)
{
	(void)arg;
}

static void *block(void *arg)
{
	struct blocked *b = arg;
	struct block_hook h = { .enter = on_block, .leave = on_wake, .arg = b };
	int v = 0;

	waiter_set_block_hook(&h);
	switch (b->kind) {
	case ON_SEM:
		b->ret = kn_sem_acquire_ctx(sem, 1, b->ctx);
		break;
	case ON_CTX:
		b->ret = kn_ctx_wait(b->ctx, KN_FOREVER) ? ETIMEDOUT
							 : kn_ctx_err(b->ctx);
		break;
	case ON_RECV:
		b->ret = kn_chan_recv_ctx(empty, &v, b->ctx);
		break;
	default:
		b->ret = kn_chan_send_ctx(full, &v, b->ctx);
		break;
	}
	waiter_set_block_hook(NULL);
	kn_ctx_release(b->ctx);
	return NULL;
}

static void count_fire(void *arg)
{
	(void)arg;
	atomic_fetch_add(&fired, 1);
}

static int random_cancellable(struct tree *t)
{
	return t->cancellable[xorshift64(&rng) % t->ncancellable];
}

static kn_ctx *new_node(kn_ctx *parent, uint64_t r, bool *detached)
{
	*detached = false;
	if (r < 12)
		return kn_ctx_with_cancel(parent);
	if (r < 15)
		return kn_ctx_with_value(parent, &key, NULL);
	if (r < 18)
		return kn_ctx_with_timeout(parent, hour + r);
	if (r < 19)
		return kn_ctx_with_deadline(parent, kn_now() + hour - r);
	*detached = true;
	return kn_ctx_without_cancel(parent);
}

static void build(struct tree *t)
{
	t->ncancellable = 0;
	for (int i = 0; i < NODES; i++) {
		/* Half near the newest nodes (deep chains), half anywhere. */
		int p = 0;
		uint64_t r = xorshift64(&rng);

		if (i > 0 && r % 2)
			p = t->cancellable[t->ncancellable - 1 -
					   xorshift64(&rng) % (t->ncancellable < 8 ? t->ncancellable : 8)];
		else if (i > 0)
			p = random_cancellable(t);
		t->detached[i] = false;
		t->node[i] = i ? new_node(t->node[p], xorshift64(&rng) % 20,
					  &t->detached[i])
			       : kn_ctx_with_cancel(NULL);
		if (!t->node[i]) {
			perror("stress_cancel: new context");
			exit(1);
		}
		/* Detached nodes stay leaves: nothing below them is cancelled. */
		if (!t->detached[i])
			t->cancellable[t->ncancellable++] = i;
	}
}

/* The owner of node i after the storm starts: the chaos thread for a third. */
static bool chaos_owns(int i)
{
	return i % 3 == 1;
}

static void *chaos(void *arg)
{
	struct tree *t = arg;
	int j;

	for (int i = 1; i < NODES; i += 3) {
		if (xorshift64(&rng) % 3 == 0)
			kn_ctx_cancel(t->node[i], EIO, "chaos");
		j = random_cancellable(t);
		if (xorshift64(&rng) % 8 == 0 && !chaos_owns(j))
			kn_ctx_cancel(t->node[j], EIO, NULL);
		kn_ctx_release(t->node[i]);
	}
	return NULL;
}

static int check(struct tree *t, struct blocked *b, int expected_fires)
{
	int bad = 0;

	for (int i = 0; i < WAITERS; i++) {
		if (b[i].ret != ECANCELED) {
			fprintf(stderr, "waiter %d (kind %d): %s\n", i,
				b[i].kind, strerror(b[i].ret));
			bad++;
		}
	}
	for (int i = 0; i < NODES; i++) {
		int want = t->detached[i] ? 0 : ECANCELED;

		if (!chaos_owns(i) && kn_ctx_err(t->node[i]) != want) {
			fprintf(stderr, "node %d: err %d, want %d\n", i,
				kn_ctx_err(t->node[i]), want);
			bad++;
		}
	}
	if (atomic_load(&fired) != expected_fires) {
		fprintf(stderr, "%d after_funcs ran, want %d\n",
			atomic_load(&fired), expected_fires);
		bad++;
	}
	for (int i = 0; i < AFTERS; i++)
		if (kn_ctx_stop_after_func(&t->stop[i])) {
			fprintf(stderr, "after_func %d still armed\n", i);
			bad++;
		}
	if (kn_sem_available(sem) != 0 || kn_chan_len(empty) != 0 ||
	    kn_chan_len(full) != 1) {
		fprintf(stderr, "a waiter took something\n");
		bad++;
	}
	return bad;
}

static int round_once(struct tree *t, struct blocked *b, pthread_t *th)
{
	pthread_attr_t attr;
	pthread_t chaos_thread;
	int expected_fires = 0, bad;

	build(t);
	atomic_store(&fired, 0);
	atomic_store(&parked, 0);
	for (int i = 0; i < AFTERS; i++) {
		kn_ctx_after_func(t->node[random_cancellable(t)], count_fire,
				  NULL, &t->stop[i]);
		t->stopped[i] = xorshift64(&rng) % 4 == 0 &&
				kn_ctx_stop_after_func(&t->stop[i]);
		expected_fires += !t->stopped[i];
	}

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK);
	for (int i = 0; i < WAITERS; i++) {
		b[i] = (struct blocked){
			.ctx = kn_ctx_retain(t->node[random_cancellable(t)]),
			.kind = (enum wait_kind)(xorshift64(&rng) % KINDS),
		};
		if (pthread_create(&th[i], &attr, block, &b[i])) {
			perror("stress_cancel: pthread_create");
			exit(1);
		}
	}
	pthread_attr_destroy(&attr);
	while (atomic_load(&parked) < WAITERS)
		usleep(1000);

	pthread_create(&chaos_thread, NULL, chaos, t);
	kn_ctx_cancel(t->node[0], ECANCELED, "storm");
	pthread_join(chaos_thread, NULL);
	for (int i = 0; i < WAITERS; i++)
		pthread_join(th[i], NULL);

	bad = check(t, b, expected_fires);
	/* Release the rest in a random order. */
	for (int i = 0; i < NODES; i++)
		if (chaos_owns(i))
			t->node[i] = NULL;
	for (int i = NODES - 1; i > 0; i--) {
		int j = xorshift64(&rng) % (i + 1);
		kn_ctx *x = t->node[i];

		t->node[i] = t->node[j];
		t->node[j] = x;
	}
	for (int i = 0; i < NODES; i++) {
		kn_ctx_release(t->node[i]);
		t->node[i] = NULL;
	}
	for (int i = 0; i < WAITERS; i++)
		b[i].ctx = NULL;
	memset(t->stop, 0, sizeof(t->stop));
	return bad;
}

int main(int argc, char **argv)
{
	static struct tree t;
	static struct blocked b[WAITERS];
	static pthread_t th[WAITERS];
	double seconds = stress_args(argc, argv, NULL, NULL);
	uint64_t end;
	int rounds = 0, bad = 0, v = 0;

	sem = kn_sem_new(1);
	empty = kn_chan_new(sizeof(int), 1);
	full = kn_chan_new(sizeof(int), 1);
	if (!sem || !empty || !full || kn_sem_acquire(sem, 1) ||
	    kn_chan_send(full, &v)) {
		perror("stress_cancel: setup");
		return 1;
	}
	end = stress_deadline(seconds);
	do {
		bad += round_once(&t, b, th);
		rounds++;
	} while (!bad && kn_now() < end);
	printf("stress_cancel: %d rounds of %d contexts, %d waiters, %d "
	       "after_funcs: %s\n", rounds, NODES, WAITERS, AFTERS,
	       bad ? "FAILED" : "ok");
	kn_sem_release(sem, 1);
	kn_sem_free(sem);
	kn_chan_free(empty);
	kn_chan_free(full);
	return bad != 0;
}

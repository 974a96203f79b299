/*
 * stress_chan.c - P producers, C consumers on one channel, every item
 * tagged (producer, sequence number).
 *
 * Checks, per configuration:
 *   - each consumer sees every producer's sequence numbers strictly
 *     increasing (FIFO per producer, no duplicate within a consumer);
 *   - at the end, for each producer, the number of items received and the
 *     sum of their sequence numbers equal what it sent (nothing lost,
 *     nothing duplicated across consumers).
 * Configurations include more threads than cores, capacity 1 and 0, try
 * and deadline forms, and consumers that receive through kn_select.
 *
 * Usage: stress_chan [--seconds S]   (S per configuration, default 1)
 * Prints one line per configuration and exits non-zero on any discrepancy.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/chan.h>

#include "stress.h"

#define MAX_P 16
#define SEQ_BITS 40

enum mode { PLAIN, TRY, DEADLINE, SELECT };

struct config {
	int producers, consumers;
	size_t cap;
	enum mode mode;
};

struct shared {
	kn_chan *ch;
	kn_chan *aux; /* a second channel SELECT consumers also watch */
	const struct config *cfg;
	uint64_t deadline;
	atomic_int producers_left;
};

struct producer {
	struct shared *sh;
	int id;
	uint64_t sent, sum;
};

struct consumer {
	struct shared *sh;
	uint64_t count[MAX_P], sum[MAX_P];
	uint64_t last[MAX_P];
	uint64_t errors;
};

static int send_one(struct shared *sh, uint64_t v)
{
	int r;

	switch (sh->cfg->mode) {
	case TRY:
		while ((r = kn_chan_try_send(sh->ch, &v)) == EAGAIN)
			sched_yield();
		return r;
	case DEADLINE:
		while ((r = kn_chan_send_until(sh->ch, &v, kn_deadline_in(20000))) == ETIMEDOUT)
			;
		return r;
	default:
		return kn_chan_send(sh->ch, &v);
	}
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct shared *sh = p->sh;
	uint64_t seq = 1;

	while (kn_now() < sh->deadline) {
		uint64_t v = ((uint64_t)p->id << SEQ_BITS) | seq;

		if (send_one(sh, v)) {
			fprintf(stderr, "producer %d: send failed\n", p->id);
			break;
		}
		p->sent++;
		p->sum += seq;
		seq++;
	}
	if (atomic_fetch_sub(&sh->producers_left, 1) == 1) {
		kn_chan_close(sh->ch);
		if (sh->aux)
			kn_chan_close(sh->aux);
	}
	return NULL;
}

static int recv_one(struct shared *sh, uint64_t *v)
{
	int r;

	switch (sh->cfg->mode) {
	case TRY:
		while ((r = kn_chan_try_recv(sh->ch, v)) == EAGAIN)
			sched_yield();
		return r;
	case DEADLINE:
		while ((r = kn_chan_recv_until(sh->ch, v, kn_deadline_in(20000))) == ETIMEDOUT)
			;
		return r;
	case SELECT: {
		/* aux never carries a value: it only closes with ch. */
		uint64_t dummy;
		struct kn_case c[2] = {
			{ sh->ch, KN_RECV, v },
			{ sh->aux, KN_RECV, &dummy },
		};
		size_t fired;

		do {
			r = kn_select(c, 2, 0, KN_FOREVER, NULL, &fired);
		} while (fired == 1 && r == EPIPE && (c[1].ch = NULL, 1));
		return r;
	}
	default:
		return kn_chan_recv(sh->ch, v);
	}
}

static void *consume(void *arg)
{
	struct consumer *c = arg;
	uint64_t v;

	while (recv_one(c->sh, &v) == 0) {
		unsigned id = (unsigned)(v >> SEQ_BITS);
		uint64_t seq = v & ((1ull << SEQ_BITS) - 1);

		if (id >= MAX_P || seq <= c->last[id]) {
			c->errors++;
			continue;
		}
		c->last[id] = seq;
		c->count[id]++;
		c->sum[id] += seq;
	}
	return NULL;
}

static int run(const struct config *cfg, double seconds)
{
	static const char *mode_names[] = { "plain", "try", "deadline", "select" };
	struct producer prod[MAX_P];
	struct consumer *cons = calloc((size_t)cfg->consumers, sizeof(*cons));
	pthread_t pt[MAX_P], ct[MAX_P];
	struct shared sh = { .cfg = cfg };
	uint64_t total = 0, discrepancies = 0;
	int i, j;

	sh.ch = kn_chan_new(sizeof(uint64_t), cfg->cap);
	if (cfg->mode == SELECT)
		sh.aux = kn_chan_new(sizeof(uint64_t), 0);
	sh.deadline = stress_deadline(seconds);
	atomic_init(&sh.producers_left, cfg->producers);
	if (!sh.ch || !cons || (cfg->mode == SELECT && !sh.aux)) {
		fprintf(stderr, "allocation failed\n");
		return 1;
	}
	for (i = 0; i < cfg->consumers; i++) {
		cons[i].sh = &sh;
		pthread_create(&ct[i], NULL, consume, &cons[i]);
	}
	for (i = 0; i < cfg->producers; i++) {
		prod[i] = (struct producer){ .sh = &sh, .id = i };
		pthread_create(&pt[i], NULL, produce, &prod[i]);
	}
	for (i = 0; i < cfg->producers; i++)
		pthread_join(pt[i], NULL);
	for (i = 0; i < cfg->consumers; i++)
		pthread_join(ct[i], NULL);

	for (i = 0; i < cfg->producers; i++) {
		uint64_t count = 0, sum = 0;

		for (j = 0; j < cfg->consumers; j++) {
			count += cons[j].count[i];
			sum += cons[j].sum[i];
		}
		if (count != prod[i].sent || sum != prod[i].sum)
			discrepancies++;
		total += prod[i].sent;
	}
	for (j = 0; j < cfg->consumers; j++)
		discrepancies += cons[j].errors;
	printf("stress_chan: %dp%dc cap=%zu %-8s %.1fs: %" PRIu64
	       " items, %" PRIu64 " discrepancies\n",
	       cfg->producers, cfg->consumers, cfg->cap, mode_names[cfg->mode],
	       seconds, total, discrepancies);
	fflush(stdout);
	kn_chan_free(sh.ch);
	kn_chan_free(sh.aux);
	free(cons);
	return discrepancies != 0 || total == 0;
}

static const struct config configs[] = {
	{ 1, 1, 1024, PLAIN },
	{ 2, 2, 1024, PLAIN },
	{ 4, 4, 1024, PLAIN },
	{ 4, 4, 1, PLAIN },
	{ 8, 8, 16, PLAIN },
	{ 4, 4, 0, PLAIN },
	{ 3, 5, 7, TRY },
	{ 4, 4, 3, DEADLINE },
	{ 4, 4, 0, DEADLINE },
	{ 4, 3, 2, SELECT },
	{ 4, 3, 0, SELECT },
	{ 16, 16, 64, PLAIN },
};

STRESS_MAIN(configs, run)

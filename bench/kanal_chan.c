/*
 * kanal_chan.c - impls "kanal" and "kanal_go" of the channel workloads.
 *
 * The shared bodies (chan_workloads.c) run over kanal channels through the
 * vtable; select_2_recv, which needs a select, is written here. Impl kanal
 * runs the actors on threads and the rest of the body on the calling
 * thread; kanal_go runs the same bodies as Go does (kanal_go.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/chan.h>
#include <kanal/pool.h>

#include "bench.h"
#include "chan_workloads.h"
#include "kanal_go.h"

uint64_t kn_bench_syscalls(void)
{
	return kn_stat_syscalls();
}

uint64_t kn_bench_allocs(void)
{
	return kn_stat_allocs();
}

static void *kq_new(size_t cap)
{
	return kn_chan_new(sizeof(int64_t), cap);
}

static int kq_send(void *q, int64_t v)
{
	return kn_chan_send(q, &v);
}

static int kq_recv(void *q, int64_t *v)
{
	return kn_chan_recv(q, v);
}

static void kq_close(void *q)
{
	kn_chan_close(q);
}

static void kq_free(void *q)
{
	kn_chan_free(q);
}

const struct chan_ops kq_ops = {
	.new = kq_new, .send = kq_send, .recv = kq_recv,
	.close = kq_close, .free = kq_free,
};

static const struct chan_ops kq_go_ops = {
	.new = kq_new, .send = kq_send, .recv = kq_recv,
	.close = kq_close, .free = kq_free,
	.run = { bench_go_start, bench_go_join },
};

BENCH(chan_spsc, kanal) { cw_spsc(&kq_ops, a, r); }
BENCH(chan_mpmc_2p2c, kanal) { cw_mpmc(&kq_ops, 2, 1024, a, r); }
BENCH(chan_mpmc_4p4c, kanal) { cw_mpmc(&kq_ops, 4, 1024, a, r); }
BENCH(chan_mpmc_4p4c_cap1, kanal) { cw_mpmc(&kq_ops, 4, 1, a, r); }
BENCH(chan_mpmc_4p4c_cap0, kanal) { cw_mpmc(&kq_ops, 4, 0, a, r); }
BENCH(chan_pingpong_unbuffered, kanal) { cw_pingpong(&kq_ops, a, r); }

BENCH_GO(chan_spsc) { cw_spsc(&kq_go_ops, a, r); }
BENCH_GO(chan_mpmc_2p2c) { cw_mpmc(&kq_go_ops, 2, 1024, a, r); }
BENCH_GO(chan_mpmc_4p4c) { cw_mpmc(&kq_go_ops, 4, 1024, a, r); }
BENCH_GO(chan_mpmc_4p4c_cap1) { cw_mpmc(&kq_go_ops, 4, 1, a, r); }
BENCH_GO(chan_mpmc_4p4c_cap0) { cw_mpmc(&kq_go_ops, 4, 0, a, r); }
BENCH_GO(chan_pingpong_unbuffered) { cw_pingpong(&kq_go_ops, a, r); }

/* kanal_go's body with the execution trace on (run.py sets KANAL_TRACE for
 * impls named *_traced): its cost is the difference to kanal_go. The flush,
 * after the timed region, says whether the trace was on. */
BENCH_GO_AS(chan_pingpong_unbuffered, kanal_go_traced)
{
	cw_pingpong(&kq_go_ops, a, r);
	if (kn_trace_flush() != 0 && (!r->check || !strcmp(r->check, "ok")))
		r->check = "not traced: run it with KANAL_TRACE=file";
}

/* ---- select_2_recv ------------------------------------------------------- */

struct stamped {
	int64_t v;
	uint64_t t;
};

/* Every 16th value carries its send time: a clock read costs about as
 * much as a select (27 ns on the reference machine), and two per value
 * made the clock most of what this workload measured (WORKLOADS.md). */
#define SEL_STAMP_EVERY 16

struct sel_producer {
	kn_chan *ch;
	uint64_t from, to;
};

static void *sel_produce(void *arg)
{
	struct sel_producer *p = arg;
	struct stamped s;
	uint64_t i;

	for (i = p->from; i < p->to; i++) {
		s.v = (int64_t)i;
		s.t = i % SEL_STAMP_EVERY ? 0 : bench_now();
		if (kn_chan_send(p->ch, &s))
			break;
	}
	kn_chan_close(p->ch);
	return NULL;
}

static void select2(const struct chan_ops *ops, const struct bench_args *a,
		    struct bench_result *r)
{
	struct sel_producer p[2];
	struct kn_case cases[2];
	struct stamped in;
	void *crew;
	uint64_t n = a->items, count = 0, sum = 0, t0;
	int open = 2, i;

	r->lat = bench_lat_new(n);
	for (i = 0; i < 2; i++) {
		p[i].ch = kn_chan_new(sizeof(struct stamped), 128);
		p[i].from = i ? n / 2 : 0;
		p[i].to = i ? n : n / 2;
		cases[i] = (struct kn_case){ p[i].ch, KN_RECV, &in };
	}
	t0 = bench_now();
	crew = bench_run(&ops->run, 2, sel_produce, p, sizeof(p[0]));
	while (open) {
		size_t fired;
		int e = kn_select(cases, 2, 0, KN_FOREVER, NULL, &fired);

		if (e == EPIPE) {
			cases[fired].ch = NULL; /* Go: set the closed case to nil */
			open--;
		} else if (e == 0) {
			if (in.t)
				bench_lat_record(r->lat, bench_now() - in.t);
			sum += (uint64_t)in.v;
			count++;
		} else {
			break;
		}
	}
	r->ns = bench_now() - t0;
	bench_wait(&ops->run, crew);
	r->check = count == n && sum == bench_sum_upto(n) ? "ok" : "select lost or duplicated values";
	for (i = 0; i < 2; i++)
		kn_chan_free(p[i].ch);
}

/* The ops bring only how the producers run: the channels carry stamps. */
BENCH(select_2_recv, kanal) { select2(&kq_ops, a, r); }
BENCH_GO(select_2_recv) { select2(&kq_go_ops, a, r); }

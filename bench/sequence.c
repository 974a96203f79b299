/*
 * sequence.c - impl "kanal_go" of sequence_go_shaped (bench/WORKLOADS.md,
 * issue 14): one process runs several kanal_go workloads one after the
 * other, as a long-lived Go program would, so that what one leaves behind
 * (placement, caches, stacks) shows in the next one's time. Each one's
 * ns/op is reported as field "seq_NN_<workload>", beside its time in a
 * fresh process (the same run's own record of that workload). Go's twin
 * (bench/go/sequence.go) runs the same list with the same items.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* Items at --items 1000 (per mille of these); the first workload runs again
 * at the end. */
static const struct step {
	const char *workload;
	uint64_t items;
} steps[] = {
	{ "group_limit20", 50000 },
	{ "chan_spsc", 300000 },
	{ "select_2_recv", 100000 },
	{ "chan_pingpong_unbuffered", 5000 },
	{ "pool_spawn_wait", 100000 },
	{ "pool_fib30", 2 },
	{ "skynet_1m", 100000 },
	{ "pipeline_3stage", 5000 },
	{ "fanout4_fanin", 50000 },
	{ "sem_contended", 500000 },
	{ "group_limit20", 50000 },
};

#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static char fields[NSTEPS * 64];
static char message[128];

BENCH(sequence_go_shaped, kanal_go)
{
	size_t i, len = 0;
	uint64_t t0 = bench_now();

	for (i = 0; i < NSTEPS; i++) {
		bench_fn fn = bench_find(steps[i].workload, "kanal_go");
		struct bench_args sa = { steps[i].items * a->items / 1000 };
		struct bench_result sr = { 0 };

		if (!fn)
			bench_die("no kanal_go %s", steps[i].workload);
		if (!sa.items)
			sa.items = 1;
		fn(&sa, &sr);
		if (sr.check && strcmp(sr.check, "ok")) {
			snprintf(message, sizeof(message), "%s: %s", steps[i].workload,
				 sr.check);
			r->check = message;
			return;
		}
		len += (size_t)snprintf(fields + len, sizeof(fields) - len,
					",\"seq_%02zu_%s\":%.3f", i, steps[i].workload,
					(double)sr.ns / (sr.items ? sr.items : sa.items));
	}
	r->ns = bench_now() - t0;
	r->items = NSTEPS;
	r->extra = fields;
	r->check = "ok";
}

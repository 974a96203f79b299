/*
 * fanout.c - the seed's fan-out: several workers take values from one
 * input channel, to widen the slowest step; their results are merged back
 * into one channel (fan-in).
 *
 * Go original: examples/go/fanout/main.go. Its fanOut starts numWorkers
 * square workers on the one input channel, each with its own result
 * channel: here three one-worker stages on the same input, merged by
 * kn_merge. (A single kn_stage with .workers = 3 does the same in one
 * call.) Which worker squares which value is not set, so the results are
 * sorted, as in Go.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

#define NUM_WORKERS 3

static int square(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	int v = *(const int *)in;

	(void)ctx;
	(void)arg;
	*(int *)out = v * v;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* numWorkers workers on one input, each with its own output. */
static bool fan_out(kn_flow *f, kn_chan *in, kn_chan **outs, size_t n)
{
	struct kn_stage_spec spec = { .fn = square, .out_size = sizeof(int),
				      .workers = 1 };
	size_t i;

	for (i = 0; i < n; i++)
		if (!(outs[i] = kn_stage(f, in, &spec)))
			return false;
	return true;
}

int main(void)
{
	static const int input[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	kn_chan *input_ch, *channels[NUM_WORKERS], *merged = NULL;
	int results[10], res;
	size_t n = 0, i;

	if (!f) {
		perror("kanal");
		return 1;
	}
	input_ch = kn_generate_array(f, input, sizeof(input[0]), 10, 0);
	if (input_ch && fan_out(f, input_ch, channels, NUM_WORKERS))
		merged = kn_merge(f, channels, NUM_WORKERS, 0);
	if (!merged) {
		perror("kanal");
		return 1;
	}
	while (kn_chan_recv(merged, &res) == 0 && n < 10)
		results[n++] = res;
	qsort(results, n, sizeof(int), by_value);

	for (i = 0; i < n; i++)
		kn_log("%d", results[i]);
	kn_log("Обработано значений: %zu", n);
	/* The generator, three workers, three forwarders. */
	return flow_end(f, pool, 1 + 2 * NUM_WORKERS);
}

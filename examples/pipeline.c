/*
 * pipeline.c - the seed's pipeline: generator -> add 1 -> multiply by 2 ->
 * output. Each stage is its own task with its own output channel, which
 * it closes; the stages run in parallel and, one worker each, keep the
 * order of the values.
 *
 * Go original: examples/go/pipeline/main.go. Its done channel, closed when
 * main returns, is the flow's context here: kn_flow_free cancels it.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

static int add(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	*(int *)out = *(const int *)in + 1;
	return 0;
}

static int multiply(kn_ctx *ctx, const void *in, void *out, void *arg)
{
	(void)ctx;
	(void)arg;
	*(int *)out = *(const int *)in * 2;
	return 0;
}

/* A one-worker stage over rendezvous channels, as the seed's. */
static kn_chan *stage(kn_flow *f, kn_chan *in, kn_stage_fn fn)
{
	struct kn_stage_spec spec = { .fn = fn, .out_size = sizeof(int),
				      .workers = 1 };

	return in ? kn_stage(f, in, &spec) : NULL;
}

int main(void)
{
	static const int input[] = { 1, 2, 3, 4, 5, 6 };
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	kn_chan *input_ch, *result_ch;
	int res;

	if (!f) {
		perror("kanal");
		return 1;
	}
	input_ch = kn_generate_array(f, input, sizeof(input[0]), 6, 0);
	/* One stage's output is the next one's input. */
	result_ch = stage(f, stage(f, input_ch, add), multiply);
	if (!result_ch) {
		perror("kanal");
		return 1;
	}
	while (kn_chan_recv(result_ch, &res) == 0)
		kn_log("%d", res);
	/* The generator and the two stages. */
	return flow_end(f, pool, 3);
}

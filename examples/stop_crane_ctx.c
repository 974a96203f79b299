/*
 * stop_crane_ctx.c - the seed's stop-crane with a context: the handler
 * stops at 3 and returns; its caller then cancels the context, and the
 * generator, whose send waits on the context too, stops.
 *
 * Go original: examples/go/stop_crane_ctx/main.go. Go's
 * "go func() { handler(ctx, input); cancel() }()" is a task of the flow
 * (kn_flow_go); the flow's context is a child of ctx, so cancelling ctx
 * reaches the generator. Go's main sleeps a second to let the generator
 * print its last line; here main waits for the flow's tasks instead.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <string.h>

#include <kanal/ctx.h>
#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

struct input {
	const int *data;
	size_t n;
};

struct job {
	kn_flow *f;
	kn_ctx *ctx;
	struct input in;
};

/* The generator's body. kn_chan_send_ctx is the seed's
 * select { case <-ctx.Done(): ...; case inputCh <- data: }. */
static int send_input(kn_ctx *ctx, kn_chan *out, void *arg)
{
	const struct input *in = arg;
	size_t i;

	for (i = 0; i < in->n; i++) {
		if (kn_chan_send_ctx(out, &in->data[i], ctx) == ECANCELED) {
			kn_log("Останавливаем генератор");
			return 0;
		}
	}
	return 0;
}

/* The handler gets the flow (which carries the context) and the data. */
static int handler(kn_flow *f, struct input *in)
{
	kn_chan *in_ch = kn_generate(f, sizeof(int), 0, send_input, in);
	int data;

	if (!in_ch)
		return errno;
	while (kn_chan_recv(in_ch, &data) == 0) {
		if (data == 3) {
			kn_log("Прекращаем обработку данных из канала");
			return 0;
		}
		kn_log("%d", data);
	}
	kn_log("Данные во входном канале закончились");
	return 0;
}

/* go func() { handler(ctx, input); cancel() }() */
static int handle_then_cancel(kn_ctx *ctx, void *arg)
{
	struct job *j = arg;
	int err = handler(j->f, &j->in);

	(void)ctx;
	kn_ctx_cancel(j->ctx, 0, NULL);
	return err;
}

int main(void)
{
	static const int input[] = { 1, 2, 3, 4, 5, 6 };
	kn_pool *pool = kn_pool_new(NULL);
	struct job j = { .ctx = kn_ctx_with_cancel(NULL), .in = { input, 6 } };
	int err;

	j.f = pool && j.ctx ? kn_flow_new(j.ctx, pool) : NULL;
	if (!j.f || kn_flow_go(j.f, handle_then_cancel, &j)) {
		perror("kanal");
		return 1;
	}
	/* The handler task and the generator task; the flow was cancelled
	 * from outside (j.ctx) while the generator ran: its cause. */
	err = flow_end_with(j.f, pool, 2, ECANCELED);
	kn_ctx_release(j.ctx);
	return err;
}

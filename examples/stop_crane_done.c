/*
 * stop_crane_done.c - the seed's stop-crane with a done channel: the
 * consumer stops at 3; leaving, it closes done, and the generator, which
 * selects between done and its send, stops.
 *
 * Go original: examples/go/stop_crane_done/main.go. The generator is
 * kn_generate with a body that selects over a receive on done and its send,
 * as the seed's does. Go's main sleeps a second to let the generator print
 * its last line; here the handler waits for the generator's task instead
 * (after closing done, as Go's "defer close(doneCh)"), so the program ends
 * as soon as it has.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

struct input {
	kn_chan *done;
	const int *data;
	size_t n;
};

/* The generator's body: send each value, unless done closes first. */
static int send_until_done(kn_ctx *ctx, kn_chan *out, void *arg)
{
	const struct input *in = arg;
	char none;
	size_t i, fired;
	int err;

	for (i = 0; i < in->n; i++) {
		struct kn_case cases[] = {
			{ in->done, KN_RECV, &none },          /* case <-doneCh */
			{ out, KN_SEND, (void *)&in->data[i] }, /* case inputCh <- data */
		};

		err = kn_select(cases, 2, 0, KN_FOREVER, ctx, &fired);
		if (err == EPIPE && fired == 0) {
			kn_log("Останавливаем генератор");
			return 0;
		}
		if (err)
			return err;
	}
	return 0;
}

/* The handler's loop: stop at 3. */
static void consume(kn_chan *in_ch)
{
	int data;

	while (kn_chan_recv(in_ch, &data) == 0) {
		if (data == 3) {
			kn_log("Прекращаем обработку данных из канала");
			return;
		}
		kn_log("%d", data);
	}
	kn_log("Данные во входном канале закончились");
}

static int handler(const int *data, size_t n)
{
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	/* chan struct{}: nothing is ever sent, closing it is the signal. */
	struct input in = { kn_chan_new(1, 0), data, n };
	kn_chan *in_ch = f && in.done ?
		kn_generate(f, sizeof(int), 0, send_until_done, &in) : NULL;
	int err;

	if (!in_ch) {
		perror("kanal");
		return 1;
	}
	consume(in_ch);
	kn_chan_close(in.done); /* defer close(doneCh) */
	err = flow_end(f, pool, 1);
	kn_chan_free(in.done);
	return err;
}

int main(void)
{
	static const int input[] = { 1, 2, 3, 4, 5, 6 };

	return handler(input, 6);
}

/*
 * generator.c - the seed's generator: the values are produced by their own
 * task (the goroutine) and sent on a rendezvous channel, which the
 * generator, its sender, closes; the consumer receives until then.
 *
 * Go original: examples/go/generator/main.go. kn_generate_array is Go's
 * generator(input []int). The flow runs on a pool of the program's own
 * (Go's runtime), shut down before exit.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

int main(void)
{
	static const int input[] = { 1, 2, 3, 4 };
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	kn_chan *in_ch = f ? kn_generate_array(f, input, sizeof(input[0]), 4, 0)
			   : NULL;
	int data;

	if (!in_ch) {
		perror("kanal");
		return 1;
	}
	/* The consumer ranges over the channel until the generator closes
	 * it (the generator owns in_ch: it closes it, the flow frees it). */
	while (kn_chan_recv(in_ch, &data) == 0)
		kn_log("%d", data);
	return flow_end(f, pool, 1);
}

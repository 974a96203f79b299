/*
 * fanin.c - the seed's fan-in: three generators, one merged channel
 * (multiplexing). The merged channel closes once every input has closed.
 *
 * Go original: examples/go/fanin/main.go. kn_merge is its fanIn: one
 * forwarder task per input and a count of them, the last one closing the
 * output (Go: a WaitGroup and a goroutine that closes). Values from
 * different inputs arrive in no set order, so they are sorted, as in Go.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

static int by_value(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	static const int data[3][3] = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } };
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	kn_chan *chans[3], *final_ch;
	int results[9], data_in;
	size_t n = 0, i;

	if (!f) {
		perror("kanal");
		return 1;
	}
	/* Three independent sources. */
	for (i = 0; i < 3; i++)
		chans[i] = kn_generate_array(f, data[i], sizeof(int), 3, 0);
	final_ch = chans[0] && chans[1] && chans[2] ?
		kn_merge(f, chans, 3, 0) : NULL;
	if (!final_ch) {
		perror("kanal");
		return 1;
	}
	while (kn_chan_recv(final_ch, &data_in) == 0 && n < 9)
		results[n++] = data_in;
	qsort(results, n, sizeof(int), by_value);

	for (i = 0; i < n; i++)
		kn_log("%d", results[i]);
	kn_log("Получено значений: %zu", n);
	/* Three generators and three forwarders. */
	return flow_end(f, pool, 6);
}

/*
 * worker_pool.c - the seed's worker pool: jobs arrive on a channel, a few
 * workers take them in turn, results come back on another channel.
 *
 * Go original: examples/go/worker_pool/main.go. main makes both channels,
 * sends the jobs and closes the jobs channel (it is their sender);
 * kn_worker_pool starts the workers, and the last one to finish closes
 * results (Go: wg.Wait(); close(results)). Jobs finish in no set order, so
 * the results are sorted by job, as in Go.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/pattern.h>

#include "flow_end.h"
#include "log.h"

#define NUM_JOBS 9
#define NUM_WORKERS 3

struct result {
	int job;
	int value;
};

static int worker(kn_ctx *ctx, const void *job, void *result, void *arg)
{
	int j = *(const int *)job;

	(void)ctx;
	(void)arg;
	*(struct result *)result = (struct result){ j, j * j };
	return 0;
}

static int by_job(const void *a, const void *b)
{
	const struct result *x = a, *y = b;

	return (x->job > y->job) - (x->job < y->job);
}

int main(void)
{
	kn_pool *pool = kn_pool_new(NULL);
	kn_flow *f = pool ? kn_flow_new(NULL, pool) : NULL;
	kn_chan *jobs = kn_chan_new(sizeof(int), NUM_JOBS);
	kn_chan *results = kn_chan_new(sizeof(struct result), NUM_JOBS);
	struct result all[NUM_JOBS], res;
	size_t n = 0, i;
	int j, err;

	if (!f || !jobs || !results ||
	    kn_worker_pool(f, jobs, results, NUM_WORKERS, worker, NULL)) {
		perror("kanal");
		return 1;
	}
	/* Send the jobs and close the channel: we are its sender. */
	for (j = 1; j <= NUM_JOBS; j++)
		kn_chan_send(jobs, &j);
	kn_chan_close(jobs);

	while (kn_chan_recv(results, &res) == 0 && n < NUM_JOBS)
		all[n++] = res;
	qsort(all, n, sizeof(all[0]), by_job);

	for (i = 0; i < n; i++)
		kn_log("задача %d результат %d", all[i].job, all[i].value);
	err = flow_end(f, pool, NUM_WORKERS);
	/* Ours, not the flow's: freed once no worker can touch them. */
	kn_chan_free(jobs);
	kn_chan_free(results);
	return err;
}

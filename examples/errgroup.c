/*
 * errgroup.c - the seed's error group: of four database calls, the one for
 * 3 fails, and Wait returns that error after every call has finished.
 *
 * Go original: examples/go/errgroup/main.go. The generator goroutine is a
 * task started with kn_go, sending on a rendezvous channel that it closes;
 * errgroup.Group is a kn_group on the same default pool. Go's errors are
 * values with a message; kanal's are errno codes, so callDatabase reports
 * EIO and the program prints the message that goes with it.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <kanal/chan.h>
#include <kanal/group.h>
#include <kanal/pool.h>

#include "log.h"

/* The error callDatabase fails with, and its text. */
#define ERR_DATABASE EIO

static const char *error_text(int err)
{
	return err == ERR_DATABASE ? "ошибка запроса к базе данных" : "неизвестная ошибка";
}

struct generator {
	kn_chan *out;
	const int *input;
	int n;
	kn_waitgroup done; /* the channel is freed only after its close */
};

/* The goroutine of generator(): send each value, then close. */
static void generate(void *arg)
{
	struct generator *g = arg;
	int i;

	for (i = 0; i < g->n; i++)
		kn_chan_send(g->out, &g->input[i]);
	kn_chan_close(g->out);
	kn_waitgroup_done(&g->done);
}

/* callDatabase: the call for 3 fails. */
static int call_database(int data)
{
	return data == 3 ? ERR_DATABASE : 0;
}

/* The function each g.Go runs; data arrives by value, as Go's copy. */
static int consume(kn_ctx *ctx, void *arg)
{
	(void)ctx;
	return call_database((int)(intptr_t)arg);
}

int main(void)
{
	static const int input[] = { 1, 2, 3, 4 };
	struct generator gen = { NULL, input, 4, KN_WAITGROUP_INIT };
	kn_group *g = kn_group_new(NULL, NULL);
	int data, err;

	gen.out = kn_chan_new(sizeof(int), 0);
	kn_waitgroup_add(&gen.done, 1);
	if (!g || !gen.out || kn_go(generate, &gen) != 0) {
		perror("kanal");
		return 1;
	}
	while (kn_chan_recv(gen.out, &data) == 0)
		kn_group_go(g, consume, (void *)(intptr_t)data);
	/* Wait returns after every call, with the first error. */
	err = kn_group_wait(g);
	if (err)
		kn_log("%s", error_text(err));
	kn_group_free(g);
	kn_waitgroup_wait(&gen.done);
	kn_chan_free(gen.out);
	return 0;
}

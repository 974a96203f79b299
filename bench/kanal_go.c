/*
 * kanal_go.c - the task side of impl "kanal_go" (kanal_go.h).
 *
 * The joins wait on a wait group rather than kn_task_join: a join from a
 * pool task helps, running queued tasks on the joiner's stack, and an actor
 * run there (a consumer waiting for the close its joiner does after the
 * join) could wait forever. A wait group only blocks, as Go's does.
 */
#include "kanal_go.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/group.h>
#include <kanal/pool.h>

struct go_actor {
	void *(*fn)(void *);
	void *arg;
	kn_waitgroup *done;
};

struct go_crew {
	kn_waitgroup done;
	struct go_actor actor[];
};

static void run_actor(void *arg)
{
	struct go_actor *a = arg;

	a->fn(a->arg);
	kn_waitgroup_done(a->done);
}

void *bench_go_start(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
	struct go_crew *c = malloc(sizeof(*c) + n * sizeof(c->actor[0]));
	int err;

	if (!c)
		bench_die("no memory for %d tasks", n);
	kn_waitgroup_init(&c->done);
	kn_waitgroup_add(&c->done, n);
	for (int i = 0; i < n; i++) {
		c->actor[i] = (struct go_actor){ fn, (char *)args + i * arg_size,
						 &c->done };
		err = kn_go(run_actor, &c->actor[i]);
		if (err)
			bench_die("cannot start a task: %s", strerror(err));
	}
	return c;
}

void bench_go_join(void *crew)
{
	struct go_crew *c = crew;

	kn_waitgroup_wait(&c->done);
	free(c);
}

struct go_main {
	bench_fn fn;
	const struct bench_args *a;
	struct bench_result *r;
};

static void *run_main(void *arg)
{
	struct go_main *m = arg;
	struct kn_pool_stats st;

	m->fn(m->a, m->r);
	/* KN_BENCH_STATS=1: where the tasks ran (a diagnostic, on stderr). */
	if (getenv("KN_BENCH_STATS") && !kn_pool_stats(kn_pool_current(), &st))
		fprintf(stderr, "pool: %llu tasks, %llu steals, %llu parks, "
			"%llu switches, %u threads\n",
			(unsigned long long)st.tasks_run,
			(unsigned long long)st.steals,
			(unsigned long long)st.parks,
			(unsigned long long)st.switches, st.threads);
	return NULL;
}

/* The first kn_go makes the default pool: before any clock starts, as Go's
 * runtime is up before main. */
void bench_go_main(bench_fn fn, const struct bench_args *a,
		   struct bench_result *r)
{
	struct go_main m = { fn, a, r };

	bench_go_join(bench_go_start(1, run_main, &m, 0));
}

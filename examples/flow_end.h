/*
 * flow_end.h - how every pattern example ends: wait for its flow, shut its
 * pool down, and check that exactly the tasks it started ran and that none
 * is left (the C counterpart of Go's "no goroutine leaks").
 */
#ifndef KN_EXAMPLE_FLOW_END_H
#define KN_EXAMPLE_FLOW_END_H

#include <stdio.h>
#include <string.h>

#include <kanal/kanal.h>

/* 0 if the flow ended with `want` (kn_flow_wait's result) after exactly
 * `tasks` tasks, else 1. */
static inline int flow_end_with(kn_flow *f, kn_pool *pool, uint64_t tasks, int want)
{
	struct kn_pool_stats st;
	int err = kn_flow_wait(f);

	kn_flow_free(f);
	kn_pool_shutdown(pool, false, NULL);
	kn_pool_stats(pool, &st);
	kn_pool_free(pool);
	if (err != want || st.tasks_run != tasks) {
		fprintf(stderr, "flow: %s; %llu tasks ran, want %llu\n",
			strerror(err), (unsigned long long)st.tasks_run,
			(unsigned long long)tasks);
		return 1;
	}
	return 0;
}

/* The flow ran to completion. */
static inline int flow_end(kn_flow *f, kn_pool *pool, uint64_t tasks)
{
	return flow_end_with(f, pool, tasks, 0);
}

#endif

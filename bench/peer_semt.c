/*
 * peer_semt.c - impl "sem_t": glibc's POSIX semaphore (a futex word) under
 * the shared semaphore workloads.
 */
#include "bench.h"
#include "sem_workloads.h"

#include <errno.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>

static void *semt_new(unsigned tokens)
{
	sem_t *s = malloc(sizeof(*s));

	if (s && sem_init(s, 0, tokens)) {
		free(s);
		return NULL;
	}
	return s;
}

static int semt_acquire(void *s)
{
	while (sem_wait(s))
		if (errno != EINTR)
			return errno;
	return 0;
}

static bool semt_try_acquire(void *s)
{
	return sem_trywait(s) == 0;
}

static void semt_release(void *s)
{
	sem_post(s);
}

static unsigned semt_available(void *s)
{
	int v = 0;

	sem_getvalue(s, &v);
	return v > 0 ? (unsigned)v : 0;
}

static void semt_free(void *s)
{
	sem_destroy(s);
	free(s);
}

static const struct sem_ops semt_ops = {
	.new = semt_new, .acquire = semt_acquire,
	.try_acquire = semt_try_acquire, .release = semt_release,
	.available = semt_available, .free = semt_free,
	.feed = &pq_ops, /* sem_blocking: the hand-written channel */
};

BENCH(sem_uncontended, sem_t) { sw_uncontended(&semt_ops, a, r); }
BENCH(sem_contended, sem_t) { sw_contended(&semt_ops, a, r); }
BENCH(sem_blocking, sem_t) { sw_blocking(&semt_ops, a, r); }

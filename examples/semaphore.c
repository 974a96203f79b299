/*
 * semaphore.c - the seed's semaphore pattern: of 100 simulated HTTP
 * requests, at most 20 run at once.
 *
 * The Go original (examples/go/semaphore/main.go) builds its semaphore from
 * a buffered channel of 20 empty structs; here it is a kn_sem of size 20.
 * Each request runs on its own thread (the goroutine), takes a token
 * before its request and gives it back after; a mutex-guarded counter
 * records how many requests ran at once.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, localtime_r */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kanal/sem.h>

#include "log.h"

#define NUM_REQUESTS 100
#define MAX_PARALLEL 20

/* Requests running right now, and the most seen at once. */
struct counter {
	pthread_mutex_t mu;
	int active;
	int max_seen;
	int finished;
};

static kn_sem *semaphore;
static struct counter stats = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void counter_start(struct counter *c)
{
	pthread_mutex_lock(&c->mu);
	c->active++;
	if (c->active > c->max_seen)
		c->max_seen = c->active;
	pthread_mutex_unlock(&c->mu);
}

static void counter_finish(struct counter *c)
{
	pthread_mutex_lock(&c->mu);
	c->active--;
	c->finished++;
	pthread_mutex_unlock(&c->mu);
}

/* A simulated HTTP request: wait 50 ms for the "server". */
static void fake_request(void)
{
	struct timespec d = { .tv_nsec = 50 * 1000 * 1000 };

	while (nanosleep(&d, &d) == -1 && errno == EINTR)
		;
}

static void *request(void *unused)
{
	int r;

	(void)unused;
	r = kn_sem_acquire(semaphore, 1);
	if (r) {
		kn_log("acquire: %s", strerror(r));
		exit(1);
	}
	counter_start(&stats);
	fake_request();
	counter_finish(&stats);
	kn_sem_release(semaphore, 1);
	return NULL;
}

int main(void)
{
	pthread_t threads[NUM_REQUESTS];

	semaphore = kn_sem_new(MAX_PARALLEL);
	if (!semaphore) {
		perror("kn_sem_new");
		return 1;
	}
	/* A goroutine starts in a microsecond, a thread may take much longer
	 * (under a sanitizer, on a loaded machine): hold every token while
	 * the threads start, so that the first 20 requests run together as
	 * in Go rather than one after another. */
	kn_sem_acquire(semaphore, MAX_PARALLEL);
	for (int i = 0; i < NUM_REQUESTS; i++) {
		int r = pthread_create(&threads[i], NULL, request, NULL);

		if (r) {
			kn_log("pthread_create: %s", strerror(r));
			return 1;
		}
	}
	kn_sem_release(semaphore, MAX_PARALLEL);
	for (int i = 0; i < NUM_REQUESTS; i++)
		pthread_join(threads[i], NULL);

	kn_log("Максимум одновременных запросов: %d", stats.max_seen);
	kn_log("Выполнено запросов: %d", stats.finished);
	kn_sem_free(semaphore);
	return 0;
}

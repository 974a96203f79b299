/*
 * task.c - recycling of task records (internal).
 *
 * Algorithm
 *
 * Two levels. Each thread has a private LIFO list of free records. The
 * shared level is a Treiber stack (liburcu lfstack) whose entries are whole
 * batches: a batch head record carries its chain (next) and its length.
 * Threads only ever push one batch (cds_lfs_push) or take the whole stack
 * (__cds_lfs_pop_all, a single exchange). Single-entry pop is never used,
 * so the stack has no ABA problem and needs neither a lock nor RCU
 * (liburcu's synchronization table for lfstack: push and pop_all need no
 * external synchronization).
 *
 * Linearization points: a batch becomes shared at the push's successful CAS
 * inside liburcu and is taken at the exchange of pop_all.
 *
 * Invariants
 *
 *  1. A free record is in exactly one place: one thread's list, or one
 *     batch on the shared stack.
 *  2. A thread's list is touched only by that thread, and holds at most
 *     TASK_CACHE_MAX records when task_free returns.
 *  3. Everything a thread wrote to the records of a batch happens-before
 *     the reads of the thread that takes the batch (liburcu's push and
 *     pop_all order the batch contents; tsan.h states that edge).
 *
 * The thread-exit hand-back uses a pthread key whose value is non-NULL
 * once the thread has a list; the key's destructor pushes the list.
 */
#include "task.h"

#include <pthread.h>

#include "tsan.h"

/* Two cache lines, on a line pair's boundary (the chunk's alignment):
 * no false sharing between records, and a spawn writes both (task.h says
 * which fields share storage to fit). A chunk is its records and its
 * link's line (8 KiB, less a line). The payload must hold the join queue
 * it shares storage with. */
_Static_assert(sizeof(struct kn_task) == 2 * KN_CACHE_LINE,
	       "task records are two cache lines");
_Static_assert(sizeof(struct task_chunk) == 8192 - KN_CACHE_LINE,
	       "a chunk is its records and a line");
_Static_assert(sizeof(struct waitq) <= TASK_PAYLOAD,
	       "the join queue fits the payload's room");

#define TASK_CACHE_MAX 256
#define TASK_CACHE_BATCH 128

struct task_cache {
	struct kn_task *head, *tail; /* tail: the oldest, NULL when empty */
	uint32_t n;
	bool keyed; /* the exit destructor is armed */
};

static _Thread_local struct task_cache cache;
static struct __cds_lfs_stack shared; /* zero is the empty stack */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* Push the chain head..tail (n records) as one batch. */
static void share(struct kn_task *head, struct kn_task *tail, uint32_t n)
{
	head->tail = tail;
	head->nbatch = n;
	tsan_release(head);
	cds_lfs_push(&shared, &head->link.stack);
}

static void cache_exit(void *arg)
{
	struct task_cache *c = arg;

	if (c->head)
		share(c->head, c->tail, c->n);
	c->head = c->tail = NULL;
	c->n = 0;
	c->keyed = false;
}

static void exit_key_init(void)
{
	/* Without the key a thread's list is stranded at its exit, not lost
	 * for correctness: only the hand-back is skipped. */
	(void)pthread_key_create(&exit_key, cache_exit);
}

static void arm_exit(void)
{
	pthread_once(&exit_once, exit_key_init);
	cache.keyed = pthread_setspecific(exit_key, &cache) == 0;
}

/* Take every shared batch into this thread's (empty) list. */
static bool refill(void)
{
	struct cds_lfs_head *all = __cds_lfs_pop_all(&shared);
	struct cds_lfs_node *node, *next;
	struct kn_task *b;

	if (!all)
		return false;
	/* Not cds_lfs_for_each_safe: it reads a node's link before the loop
	 * body could state the edge for that node. The batches' records are
	 * cold here (another thread freed them): splice, do not walk. */
	for (node = &all->node; node; node = next) {
		b = caa_container_of(node, struct kn_task, link.stack);
		tsan_acquire(b);
		next = node->next;
		if (!cache.head)
			cache.tail = b->tail;
		b->tail->next = cache.head;
		cache.head = b;
		cache.n += b->nbatch;
	}
	return true;
}

static struct task_chunk *_Atomic all_chunks;

/* A new chunk: its records' diag cleared, all but the first into this
 * thread's (empty) list, and the chunk onto the list of every chunk (a
 * CAS push, release: the cleared diag goes with it). Its first record,
 * or NULL with errno ENOMEM. */
static struct kn_task *new_chunk(void)
{
	struct task_chunk *c = kn_alloc_aligned(2 * KN_CACHE_LINE, sizeof(*c));
	struct task_chunk *head = at_load_relaxed(&all_chunks);
	unsigned i;

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < TASK_CHUNK; i++) {
		struct kn_task *t = &c->t[i];

		at_store_relaxed(&t->diag.id, 0);
		at_store_relaxed(&t->diag.name, NULL);
		at_store_relaxed(&t->diag.pool, NULL);
		at_store_relaxed(&t->diag.on, 0);
		at_store_relaxed(&t->diag.since, 0);
		at_store_relaxed(&t->diag.site, NULL);
		t->next = i + 1 < TASK_CHUNK ? t + 1 : NULL;
	}
	cache.head = &c->t[1];
	cache.tail = &c->t[TASK_CHUNK - 1];
	cache.n = TASK_CHUNK - 1;
	do
		c->next = head;
	while (!at_cas_release(&all_chunks, &head, c));
	return &c->t[0];
}

struct task_chunk *task_chunks(void)
{
	return at_load_acquire(&all_chunks);
}

struct kn_task *task_alloc(void)
{
	struct kn_task *t = cache.head;

	if (likely(t)) {
		cache.head = t->next;
		if (!--cache.n)
			cache.tail = NULL;
		else
			__builtin_prefetch(cache.head, 1); /* the next spawn's */
		return t;
	}
	if (unlikely(!cache.keyed))
		arm_exit();
	if (refill())
		return task_alloc();
	return new_chunk();
}

void task_free(struct kn_task *t)
{
	struct kn_task *head, *last;
	uint32_t i;

	at_store_relaxed(&t->diag.id, 0); /* kn_dump: no task here now */
	if (unlikely(!cache.keyed))
		arm_exit();
	if (!cache.head)
		cache.tail = t;
	t->next = cache.head;
	cache.head = t;
	if (likely(++cache.n <= TASK_CACHE_MAX))
		return;
	/* Keep the newest (warm) records, share the older part. */
	for (last = cache.head, i = 1; i < cache.n - TASK_CACHE_BATCH; i++)
		last = last->next;
	head = last->next;
	last->next = NULL;
	share(head, cache.tail, TASK_CACHE_BATCH);
	cache.tail = last;
	cache.n -= TASK_CACHE_BATCH;
}

/* Ids a thread takes from the shared counter at once. */
#define TASK_ID_BLOCK 1024

uint64_t task_next_id(void)
{
	static _Atomic uint64_t blocks;
	static _Thread_local uint64_t next, end;

	if (unlikely(next == end)) {
		next = at_add_relaxed(&blocks, 1) * TASK_ID_BLOCK + 1;
		end = next + TASK_ID_BLOCK;
	}
	return next++;
}

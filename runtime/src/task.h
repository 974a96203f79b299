/*
 * task.h - task records and their recycling (internal).
 *
 * A task record carries one call through a pool: the function and its
 * argument, optionally a drop callback (run instead of the function when
 * an immediate shutdown discards the task), a small payload for internal
 * callers (the error group keeps its call there, so that a group task costs
 * no allocation either), and, for joinable tasks, the join state.
 *
 * Records are recycled, process-wide: each thread keeps a free list of its
 * own (no synchronization); a list that grows past TASK_CACHE_MAX moves a
 * batch of TASK_CACHE_BATCH records onto a shared lock-free stack (liburcu's
 * lfstack, one push per batch), and a thread whose list is empty takes the
 * whole stack with one exchange (__cds_lfs_pop_all: no ABA, no lock). A
 * thread that exits gives its list back. So in steady state a spawn neither
 * allocates nor touches a shared line for its record, even when the tasks
 * are spawned on one thread and run on others. Records are never returned
 * to malloc: the cache keeps the high-water mark of live records. They
 * are made a chunk at a time (TASK_CHUNK records, one allocation) into
 * the list of every record.
 *
 * Synchronization table
 *
 *   call          may run concurrently with   barrier / cost
 *   task_alloc    everything                  none; refill: one xchg
 *                                             (if empty: one allocation
 *                                             and one CAS per chunk)
 *   task_free     everything                  none; overflow: one CAS push
 */
#ifndef KN_TASK_H
#define KN_TASK_H

#include <urcu/lfstack.h>
#include <urcu/wfcqueue.h>

#include "kanal/pool.h"
#include "waiter.h"

/* Room for an internal caller's data in the record (3 pointers; the
 * join queue's size). */
#define TASK_PAYLOAD 24

/*
 * What kn_dump and the reports (pool_diag.c) see of a task, readable by
 * any thread at any time: the pool writes it with relaxed stores (at the
 * spawn, and where the task blocks, beside the fiber switch), the readers
 * take each field as it is. A record is never freed, so a read of one
 * being reused is stale, never unsafe; every field is cleared before the
 * record's chunk is published. None of it shares storage with the fields
 * of a free record, so a reader never sees a free list's link as a name
 * or a pool.
 */
struct task_diag {
	_Atomic uint64_t id;          /* kn_task_id; 0: no live task here */
	_Atomic(const char *) name;   /* the caller's string, or NULL */
	_Atomic(kn_pool *) pool;      /* the pool it runs on (join's too) */
	_Atomic uint64_t on;          /* WAIT_ON of its wait while it is
					 suspended or asleep; 0 otherwise */
	_Atomic uint64_t since;       /* when that wait began (kn_now_coarse) */
	_Atomic(const void *) site;   /* its spawn (SPAWN_SITE), or NULL */
};

/* In a public call that spawns: an address inside the instruction that
 * called it (its return address less one), which addr2line turns into
 * the caller's file and line; kn_dump prints it. */
#define SPAWN_SITE() \
	((const char *)__builtin_extract_return_addr(__builtin_return_address(0)) - 1)

/* state: a joinable task goes PENDING -> DONE or DROPPED; a task spawned
 * without a handle stays DETACHED. */
enum {
	TASK_PENDING = 0,
	TASK_DONE = 1,     /* ran */
	TASK_DROPPED = 2,  /* discarded by an immediate shutdown */
	TASK_DETACHED = 3, /* no handle: nobody joins it */
};

/*
 * Two cache lines (task.c asserts it), which a spawn writes both of.
 * Storage is shared where two uses never overlap in time:
 *  - the call (fn, arg, drop) is dead while the record is free, when the
 *    free lists' links (next, tail, nbatch) use it (task.c);
 *  - the payload belongs to internal callers' detached tasks (the error
 *    group's), the join queue to joinable tasks (kn_pool_spawn_task*):
 *    no task has both.
 */
struct kn_task {
	_Alignas(KN_CACHE_LINE) union {
		struct cds_wfcq_node inj;  /* queued in a pool's injector */
		struct cds_lfs_node stack; /* a batch on the shared free stack */
	} link;
	union {
		struct { /* While queued or running. */
			void (*fn)(void *);
			void *arg;
			void (*drop)(void *);
		};
		struct { /* While free (task.c). */
			struct kn_task *next; /* free lists and batches */
			struct kn_task *tail; /* the last record of the batch
						 this one heads */
			uint32_t nbatch;      /* records in that batch */
		};
	};
	struct fiber *stack;  /* its own, larger stack (kn_spawn_opts), or NULL */
	_Atomic int32_t thief; /* worker that took it from a shared queue, -1 */

	/* Joinable tasks: one reference for the runner, one for the joiner;
	 * the last to let go frees the record. */
	_Atomic uint32_t refs;
	_Atomic uint32_t state;

	union {
		/* Detached internal tasks: their caller's data. */
		_Alignas(void *) unsigned char payload[TASK_PAYLOAD];
		/* Joinable tasks: their joiner waits here. */
		struct waitq joinq;
	};

	struct task_diag diag;
};

/* Records are made TASK_CHUNK at a time, in one allocation whose last
 * line holds the link to the chunk made before (8 KiB in all): a thread
 * that finds no free record anywhere allocates once per TASK_CHUNK
 * spawns, and the list of every record (kn_dump's) costs no field in the
 * record. The chunk is aligned to a line pair, and so is each record:
 * the adjacent-line prefetcher, which fetches lines in aligned pairs,
 * never pulls in a line of another record. */
#define TASK_CHUNK 63

struct task_chunk {
	struct kn_task t[TASK_CHUNK];
	struct task_chunk *next; /* the chunk made before this one */
};

/* Every chunk ever made, newest first: kn_dump walks their records
 * (chunks are never freed). */
struct task_chunk *task_chunks(void);

/* A record from this thread's cache (or new); NULL with errno ENOMEM.
 * Its fields are left as they were: the caller sets every one it uses. */
struct kn_task *task_alloc(void);
/* Back into this thread's cache. */
void task_free(struct kn_task *t);

/* A new task id: unique in the process, never 0. Ids come from a
 * per-thread block, so a spawn touches no shared line for it. */
uint64_t task_next_id(void);

/* Drop one reference to a joinable record, freeing it with the last. */
static inline void task_put(struct kn_task *t)
{
	if (at_sub_acq_rel(&t->refs, 1) == 1)
		task_free(t);
}

#endif

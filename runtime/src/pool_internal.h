/*
 * pool_internal.h - what the layers above the pool use of it (internal).
 */
#ifndef KN_POOL_INTERNAL_H
#define KN_POOL_INTERNAL_H

#include "task.h"

/*
 * Run fn(arg) on p, from a record the caller took with task_alloc (its
 * payload may hold fn's data: arg may point into it). If an immediate
 * shutdown discards the task, drop(arg) runs instead (when not NULL).
 * 0, EPIPE, ENOMEM; on error the record is freed.
 */
int pool_submit(kn_pool *p, struct kn_task *t, void (*fn)(void *), void *arg,
		void (*drop)(void *));

/* The process-wide default pool (kn_go's), made on first use; NULL with
 * errno set if it could not be made. */
kn_pool *pool_default(void);

#endif

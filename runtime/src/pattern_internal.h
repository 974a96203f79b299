/*
 * pattern_internal.h - what the pattern files share (internal): flows and
 * the records ("parts") of the patterns built on them. See pattern.c.
 */
#ifndef KN_PATTERN_INTERNAL_H
#define KN_PATTERN_INTERNAL_H

#include <stdalign.h>

#include "kanal/chan.h"
#include "kanal/ctx.h"
#include "kanal/group.h"
#include "kanal/pattern.h"
#include "platform.h"

/*
 * One pattern instance: its tasks, the channels its last task closes, and
 * the channels it owns. A part lives from its constructor to kn_flow_free,
 * so its tasks never race with its freeing (the flow's wait comes first).
 */
struct part {
	struct part *next;       /* the flow's list */
	_Atomic unsigned running; /* tasks not ended yet (started or not) */
	kn_chan **close;         /* closed by the last task to end */
	size_t nclose;
	kn_chan **own;           /* freed with the part */
	size_t nown;
};

struct kn_flow {
	kn_group *g;
	kn_ctx *ctx;             /* the group's */
	_Atomic(struct part *) parts;
	_Atomic int err;         /* the first failure to start a task */
	_Atomic int waited;      /* kn_flow_wait's result + 1; 0 before */
	_Atomic unsigned batch;  /* kn_flow_set_batch: worker pools, merges */
};

/*
 * Records are one allocation: the struct, then arrays laid out behind it.
 * lay() reserves count * each bytes at the next max_align_t boundary of
 * *size and returns their offset; on overflow *size becomes SIZE_MAX, which
 * part_new refuses.
 */
static inline size_t lay(size_t *size, size_t count, size_t each)
{
	size_t bytes, off;

	if (*size == SIZE_MAX || mul_overflows(count, each, &bytes) ||
	    __builtin_add_overflow(*size, alignof(max_align_t) - 1, &off)) {
		*size = SIZE_MAX;
		return 0;
	}
	off &= ~(alignof(max_align_t) - 1);
	if (__builtin_add_overflow(off, bytes, size))
		*size = SIZE_MAX;
	return off;
}

static inline void *at_offset(void *base, size_t off)
{
	return (unsigned char *)base + off;
}

/* A zeroed record of size bytes (a struct part first) expecting tasks
 * tasks; NULL (errno ENOMEM) on failure, after failing the flow. */
void *part_new(kn_flow *f, size_t size, unsigned tasks);

/* Make n channels into slots[0..n-1] (zeroed beforehand); false (ENOMEM or
 * EINVAL in errno, the flow failed on ENOMEM) if one cannot be made: the
 * ones made are left in their slots. */
bool make_chans(kn_flow *f, kn_chan **slots, size_t n, size_t esize,
		size_t cap);

/* Free the owned channels and the record (constructor failure paths and
 * kn_flow_free). */
void part_free(struct part *p);
/* part_free for a part whose making failed: errno (why) is kept. */
void part_drop(struct part *p);

/* Hand p to the flow (freed by kn_flow_free), before starting its tasks. */
void flow_adopt(kn_flow *f, struct part *p);

/*
 * Run fn(ctx, arg) as one task of p. If it cannot start, it counts as
 * ended (part_exit) and the flow fails with the reason.
 */
void part_start(kn_flow *f, struct part *p, int (*fn)(kn_ctx *, void *),
		void *arg);

/* A task of p ends: the last one closes p's outputs. */
void part_exit(struct part *p);

/* Record err as a failure of the flow and cancel it with err as the cause,
 * unless something failed or cancelled it before. */
void flow_fail(kn_flow *f, int err);

/*
 * What a pattern task reports for a failed channel operation: the cause of
 * the cancellation for ECANCELED (see "Cancellation" in kanal/pattern.h),
 * the code itself otherwise.
 */
static inline int interrupted(kn_ctx *ctx, int err)
{
	int cause;

	if (err != ECANCELED)
		return err;
	cause = kn_ctx_cause(ctx, NULL);
	return cause ? cause : ECANCELED;
}

/* The end of a receive loop: EPIPE (the input closed and drained) is the
 * normal end, 0. */
static inline int input_done(kn_ctx *ctx, int err)
{
	return err == EPIPE ? 0 : interrupted(ctx, err);
}

#endif

/*
 * ctx_internal.h - what the waiter layer needs from contexts (internal).
 */
#ifndef KN_CTX_INTERNAL_H
#define KN_CTX_INTERNAL_H

#include <stdbool.h>

#include "kanal/base.h"

struct waitq;

/* The queue a waiter joins to be decided SEL_CANCEL when ctx is cancelled;
 * NULL for a context that can never be cancelled (background, detached). */
struct waitq *ctx_waitq(kn_ctx *ctx);

/* Has ctx been cancelled? One seq_cst load (it pairs with the waiter's
 * registration on ctx_waitq, see waiter.c). NULL is never cancelled. */
bool ctx_done(kn_ctx *ctx);

#endif

/*
 * kanal/kanal.h - everything: Go's concurrency patterns for C11.
 */
#ifndef KANAL_KANAL_H
#define KANAL_KANAL_H

#include "kanal/base.h"
#include "kanal/chan.h"
#if __has_include("kanal/ctx.h")
#include "kanal/ctx.h"
#endif
#if __has_include("kanal/sem.h")
#include "kanal/sem.h"
#endif
#if __has_include("kanal/sync.h")
#include "kanal/sync.h"
#endif
#if __has_include("kanal/pool.h")
#include "kanal/pool.h"
#endif
#if __has_include("kanal/group.h")
#include "kanal/group.h"
#endif
#if __has_include("kanal/pattern.h")
#include "kanal/pattern.h"
#endif
#if __has_include("kanal/time.h")
#include "kanal/time.h"
#endif
#if __has_include("kanal/net.h")
#include "kanal/net.h"
#endif

#endif

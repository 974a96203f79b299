/*
 * tsan.h - telling ThreadSanitizer about synchronization it cannot see
 * (internal).
 *
 * liburcu is not instrumented: its queue and stack order
 * memory with atomics and fences that ThreadSanitizer never observes. Where
 * kanal relies on them, it states the happens-before edge they provide with
 * a release on the sending side and an acquire on the receiving side, on
 * the same address. This is a statement of the library's documented
 * guarantee (a node's content is visible to whoever dequeues it), not a
 * suppression: an access that lacks the edge is still reported. Outside a
 * ThreadSanitizer build the macros compile to nothing.
 */
#ifndef KN_TSAN_H
#define KN_TSAN_H

#include "platform.h" /* KN_TSAN */

#ifdef KN_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tsan_acquire(p) __tsan_acquire((void *)(p))
#define tsan_release(p) __tsan_release((void *)(p))
#else
#define tsan_acquire(p) ((void)(p))
#define tsan_release(p) ((void)(p))
#endif

#endif

/*
 * debug.h - misuse detection of the debug build (internal).
 *
 * Channels and pools carry a magic word, set when made and overwritten when
 * freed. In a Debug build (KANAL_DEBUG_CHECKS) every public entry checks it
 * and returns EINVAL (or does nothing, for free) on a foreign object or a
 * freed pool, as long as its memory has not been reused; release builds
 * check only for NULL. Bad input never aborts (docs/ARCHITECTURE.md).
 *
 * Misuses that would hang instead abort a Debug build with a message that
 * names them (kn_debug_fail): a freed channel used again (Release reads
 * the freed memory: a send may spin for ever), kn_chan_free while a call
 * waits on the channel (Release: that call sleeps for ever), and a
 * blocking call from a signal handler that interrupted kanal (waiter.c:
 * a lock the thread already holds, a wait inside a wait), and a wait on
 * the timer thread (an after_func that blocks: every deadline would wait).
 *
 * Misuse of a lock (sync.c: unlocking a free one, destroying a held one)
 * is reported as an error in every build and printed in Debug builds
 * (kn_misuse).
 */
#ifndef KN_DEBUG_H
#define KN_DEBUG_H

#include <stdbool.h>
#include <stdint.h>

#define KN_MAGIC_CHAN 0x6b6e6368u /* "knch" */
#define KN_MAGIC_POOL 0x6b6e706cu /* "knpl" */
#define KN_MAGIC_DEAD 0x64656164u /* "dead" */

#ifdef KANAL_DEBUG_CHECKS
/* Print "kanal: <what>" on stderr (async-signal-safe) and abort. */
_Noreturn void kn_debug_fail(const char *what);

static inline bool kn_magic_ok(uint32_t magic, uint32_t want)
{
	if (magic == KN_MAGIC_DEAD && want == KN_MAGIC_CHAN)
		kn_debug_fail("a freed channel was used (after kn_chan_free)");
	return magic == want;
}
#define kn_live(obj, m) ((obj) != NULL && kn_magic_ok((obj)->magic, (m)))
#else
#define kn_live(obj, m) ((obj) != NULL)
#endif

/* A misuse the call reports as an error (unlocking a free mutex,
 * destroying a held one): Debug builds also say so on stderr, since such
 * an error is seldom checked. */
#ifdef KANAL_DEBUG_CHECKS
#include <stdio.h>
#define kn_misuse(what, obj) fprintf(stderr, "kanal: %s (%p)\n", (what), (const void *)(obj))
#else
#define kn_misuse(what, obj) ((void)(obj))
#endif

#endif

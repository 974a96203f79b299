/*
 * debug.h - use-after-free detection of the debug build (internal).
 *
 * Channels and pools carry a magic word, set when made and overwritten when
 * freed. In a Debug build (KANAL_DEBUG_CHECKS) every public entry checks it
 * and returns EINVAL (or does nothing, for free) on a freed or foreign
 * object, as long as its memory has not been reused; release builds check
 * only for NULL. No assert: bad input never aborts (docs/ARCHITECTURE.md).
 */
#ifndef KN_DEBUG_H
#define KN_DEBUG_H

#define KN_MAGIC_CHAN 0x6b6e6368u /* "knch" */
#define KN_MAGIC_POOL 0x6b6e706cu /* "knpl" */
#define KN_MAGIC_DEAD 0x64656164u /* "dead" */

#ifdef KANAL_DEBUG_CHECKS
#define kn_live(obj, m) ((obj) != NULL && (obj)->magic == (m))
#else
#define kn_live(obj, m) ((obj) != NULL)
#endif

#endif

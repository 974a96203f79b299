/*
 * fault.h - allocation- and thread-failure injection (internal).
 *
 * Built with KANAL_FAULT_INJECTION (CMake option KANAL_FAULT=ON), every
 * kn_alloc asks fault_alloc_should_fail() first, and every thread kanal
 * starts (thread_create: pool workers, the timer thread) asks
 * fault_thread_should_fail(), which makes it fail with EAGAIN as
 * pthread_create does at a thread limit. The test sets "fail the Nth
 * allocation (thread start) from now" through kn_fault_fail_nth()
 * (kn_fault_fail_thread_nth(); declared in tests/fault/sweep.h) and sweeps
 * N over every allocation (start) a test reaches. In a normal build the
 * checks compile to nothing.
 */
#ifndef KN_FAULT_H
#define KN_FAULT_H

#include <stdbool.h>

#ifdef KANAL_FAULT_INJECTION
#include "kanal/base.h"

bool fault_alloc_should_fail(void);
bool fault_thread_should_fail(void);
/* The test build's controls (declared again in tests/fault/sweep.h). */
KN_API void kn_fault_fail_nth(long n);
KN_API long kn_fault_failures(void);
KN_API void kn_fault_fail_thread_nth(long n);
KN_API long kn_fault_thread_failures(void);
#else
static inline bool fault_alloc_should_fail(void)
{
	return false;
}

static inline bool fault_thread_should_fail(void)
{
	return false;
}
#endif

#endif

/*
 * fault.h - allocation-failure injection (internal).
 *
 * Built with KANAL_FAULT_INJECTION (CMake option KANAL_FAULT=ON), every
 * kn_alloc asks fault_alloc_should_fail() first; the test sets "fail the Nth
 * allocation from now" through kn_fault_fail_nth() (declared in
 * tests/fault/sweep.h) and sweeps N over every allocation a test reaches. In a
 * normal build the check compiles to nothing.
 */
#ifndef KN_FAULT_H
#define KN_FAULT_H

#include <stdbool.h>

#ifdef KANAL_FAULT_INJECTION
#include "kanal/base.h"

bool fault_alloc_should_fail(void);
/* The test build's controls (declared again in tests/fault/sweep.h). */
KN_API void kn_fault_fail_nth(long n);
KN_API long kn_fault_failures(void);
#else
static inline bool fault_alloc_should_fail(void)
{
	return false;
}
#endif

#endif

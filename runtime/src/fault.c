/*
 * fault.c - the allocation-failure injector of the fault build.
 */
#include "fault.h"

#ifdef KANAL_FAULT_INJECTION
#include "platform.h"

/* Allocations left before the one that fails; 0 = injection off. */
static _Atomic long fail_countdown;
static _Atomic long failures;

KN_API void kn_fault_fail_nth(long n)
{
	at_store_seq_cst(&failures, 0);
	at_store_seq_cst(&fail_countdown, n);
}

KN_API long kn_fault_failures(void)
{
	return at_load_seq_cst(&failures);
}

bool fault_alloc_should_fail(void)
{
	long left = at_load_relaxed(&fail_countdown);

	while (left > 0) {
		if (at_cas_acq_rel(&fail_countdown, &left, left - 1)) {
			if (left != 1)
				return false;
			at_add_relaxed(&failures, 1);
			return true;
		}
	}
	return false;
}
#endif

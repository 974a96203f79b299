/*
 * fault.c - the allocation- and thread-failure injector of the fault build.
 */
#include "fault.h"

#ifdef KANAL_FAULT_INJECTION
#include "platform.h"

/* One injector: calls left before the one that fails (0 = off), and how
 * many failed. */
struct countdown {
	_Atomic long left;
	_Atomic long failures;
};

static struct countdown allocs, threads;

static void countdown_set(struct countdown *c, long n)
{
	at_store_seq_cst(&c->failures, 0);
	at_store_seq_cst(&c->left, n);
}

static bool countdown_hit(struct countdown *c)
{
	long left = at_load_relaxed(&c->left);

	while (left > 0) {
		if (at_cas_acq_rel(&c->left, &left, left - 1)) {
			if (left != 1)
				return false;
			at_add_relaxed(&c->failures, 1);
			return true;
		}
	}
	return false;
}

KN_API void kn_fault_fail_nth(long n)
{
	countdown_set(&allocs, n);
}

KN_API long kn_fault_failures(void)
{
	return at_load_seq_cst(&allocs.failures);
}

KN_API void kn_fault_fail_thread_nth(long n)
{
	countdown_set(&threads, n);
}

KN_API long kn_fault_thread_failures(void)
{
	return at_load_seq_cst(&threads.failures);
}

bool fault_alloc_should_fail(void)
{
	return countdown_hit(&allocs);
}

bool fault_thread_should_fail(void)
{
	return countdown_hit(&threads);
}
#endif

/*
 * fiber.h - user-space stacks and the switch between them (internal).
 *
 * A fiber is a stack plus the registers its owner saved when it last
 * switched away. The pool runs its worker loop on fibers: a task that
 * blocks in the waiter layer hands its worker thread to another fiber
 * instead of parking the thread (pool.c), which is how Go hands off between
 * goroutines without the kernel.
 *
 * The switch saves only what the ABI says a call preserves (on x86-64: rbx,
 * rbp, r12-r15, the stack pointer, MXCSR and the x87 control word), so it is
 * a function call that returns on another stack: a few nanoseconds, no
 * system call, no signal mask (swapcontext(3) makes one sigprocmask call per
 * switch). Fibers never migrate between threads in kanal: a fiber is resumed
 * only by the thread that first ran it, so the compiler's caching of
 * thread-local addresses across a call is harmless. Each fiber keeps its
 * own errno across a switch; other thread-locals belong to the thread and
 * are shared by the fibers that run on it.
 *
 * Stacks are mmap'd with a guard page below (an overflow faults instead of
 * corrupting a neighbour) and MAP_NORESERVE: only touched pages cost memory.
 * The fiber record sits at the top of its own mapping.
 *
 * Sanitizers: AddressSanitizer and ThreadSanitizer are told about every
 * switch (__sanitizer_start/finish_switch_fiber, __tsan_switch_to_fiber), so
 * both keep working with fibers.
 *
 * Synchronization: none. A fiber is switched to only by the one thread that
 * owns it; handing a fiber to that thread is the scheduler's business.
 */
#ifndef KN_FIBER_H
#define KN_FIBER_H

#include "platform.h"

#if defined(__x86_64__) && defined(__linux__)
#define FIBER_AVAILABLE 1
#else
#define FIBER_AVAILABLE 0
#endif

struct fiber {
	void *sp;                /* saved stack pointer, while not running */
	void *map;               /* the mapping; NULL for a thread's own stack */
	size_t map_size;
	void (*entry)(void *);
	void *arg;
	struct fiber *next;      /* the scheduler's lists */
	void *owner;             /* the scheduler's data */
	void (*wake)(struct fiber *f); /* make it runnable (any thread) */
	void *tsan;              /* ThreadSanitizer's fiber */
	void *asan_fake;         /* AddressSanitizer's fake stack, while away */
	const void *stack_lo;    /* the usable stack, for AddressSanitizer */
	size_t stack_size;
};

/* Describe the calling thread's own stack as a fiber, to switch away from
 * it and back. */
void fiber_adopt_thread(struct fiber *f);

/* A new fiber that will run entry(arg) when first switched to, on a stack of
 * at least size bytes; entry must never return (it switches away for good).
 * NULL with errno ENOMEM. */
struct fiber *fiber_new(size_t size, void (*entry)(void *), void *arg);

/* Unmap a fiber that is not running and will not be switched to. */
void fiber_free(struct fiber *f);

/* Save the running fiber in from and run to; returns when someone switches
 * back to from. leaving: from will never run again (it is about to be
 * freed by whoever runs next). */
void fiber_switch(struct fiber *from, struct fiber *to, bool leaving);

#endif

/*
 * fiber.h - user-space stacks and the switch between them (internal).
 *
 * A fiber is a stack plus the registers its owner saved when it last
 * switched away. The pool runs its worker loop on fibers: a task that
 * blocks in the waiter layer hands its worker thread to another fiber
 * instead of parking the thread (pool_fiber.c), which is how Go hands off between
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
 * Stacks come from a stack pool (stack.c: arenas of many stacks in one
 * mapping, per-thread caches, guard pages and overflow detection); the
 * fiber record sits at the top of its stack.
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

#include <pthread.h>
#include <stddef.h>

#include "platform.h"

#if defined(__x86_64__) && defined(__linux__)
#define FIBER_AVAILABLE 1
#else
#define FIBER_AVAILABLE 0
#endif

struct stack_arena;

/*
 * A stack's record ends at the stack's top, which is page-aligned, so the
 * record's last FIBER_HOT_BYTES are one cache line: the fields that waking
 * and switching touch live there (the waker's wake, owner and next, the
 * switch's sp, stack_lo and magic), so that a fiber whose stack left the
 * cache costs its resumption one miss on its record, not two.
 */
struct fiber {
	struct stack_arena *arena; /* its stack's; NULL for a thread's own */
	uint32_t index;          /* its stack's number in the arena */
	void (*entry)(void *);
	void *arg;
	void *tsan;              /* ThreadSanitizer's fiber */
	/* The hot line, from here. */
	void *asan_fake;         /* AddressSanitizer's fake stack, while away */
	size_t stack_size;
	const void *stack_lo;    /* the usable stack (the thread's own: ASan only) */
	void *sp;                /* saved stack pointer, while not running */
	struct fiber *next;      /* the scheduler's lists */
	void *owner;             /* the scheduler's data */
	void (*wake)(struct fiber *f); /* make it runnable (any thread) */
	uintptr_t magic;         /* last: a neighbour's overflow hits it first */
};

#define FIBER_HOT_BYTES 64
_Static_assert(sizeof(struct fiber) - offsetof(struct fiber, asan_fake) <= FIBER_HOT_BYTES,
	       "fiber.h: the record's hot fields fit its last cache line");

/* Larger size classes of a pool's stacks (stack.c): class k holds stacks
 * of the pool's stack_size << (k + 1); 16 reach KN_POOL_MAX_STACK from
 * KN_POOL_MIN_STACK. */
#define STACK_CLASSES 16

/* Where a pool's stacks come from (stack.c): one per pool, shared by its
 * workers under a mutex taken only on cache misses; and one per larger
 * size class, made on first use, without caches. */
struct stack_pool {
	pthread_mutex_t lock;
	size_t stack_size;       /* usable bytes, as the pool asked */
	unsigned keep_empty;     /* all-free arenas kept untrimmed */
	size_t stride;           /* one stack in an arena: guard page included */
	unsigned per_arena;      /* stacks in one arena */
	char name[16];           /* the pool's, for the overflow message */
	/* Under lock. */
	struct stack_arena *all;   /* every arena, to unmap at destroy */
	struct stack_arena *avail; /* arenas with free stacks (doubly linked) */
	unsigned nempty;           /* arenas all free and not yet trimmed */
	struct stack_arena *trim;  /* arenas to trim (stack_pool_trim) */
	/* Counters for kn_pool_stats (relaxed). */
	_Atomic uint64_t bytes;    /* mapped */
	_Atomic uint64_t failures; /* stacks that could not be had */
	/* The pool's only: its larger classes (release-published). */
	struct stack_pool *_Atomic larger[STACK_CLASSES];
};

/* A thread's cache of free stacks of one pool (the owner thread only). */
struct stack_cache {
	struct fiber *free;
	unsigned n;
};

/* Set up sp for stacks of at least size usable bytes (at most
 * KN_POOL_MAX_STACK, so that no rounding wraps);
 * name: the pool's, quoted by the overflow message. */
void stack_pool_init(struct stack_pool *sp, size_t size, const char *name);
/* Unmap every arena, the larger classes' too; no stack of sp may be in
 * use or cached. */
void stack_pool_destroy(struct stack_pool *sp);
/* Hand the cached stacks back to sp (the thread ends). */
void stack_cache_flush(struct stack_pool *sp, struct stack_cache *c);
/* Give the pages of one free arena beyond the reserve (sp's, else one of
 * its larger classes') back to the kernel (one madvise, outside the
 * lock); false if none was queued. For a
 * thread with nothing else to do (stack.c: "Giving memory back"). */
bool stack_pool_trim(struct stack_pool *sp);

/* The calling thread runs sp's fibers from now on: the overflow message
 * names sp; a SIGSEGV on a fiber's guard page is reported as an overflow
 * (on an alternate signal stack). stack_thread_exit undoes it. */
void stack_thread_init(const struct stack_pool *sp);
void stack_thread_exit(void);

/* The fiber running on this thread (the overflow handler's). */
extern _Thread_local struct fiber *fiber_running;

#define FIBER_MAGIC ((uintptr_t)0x6b616e616c737470ull) /* ^ its address */

/* Between fiber.c and stack.c: a stack with its record initialized but
 * for the switch frame (NULL: none to be had), and back. */
struct fiber *stack_take(struct stack_pool *sp, struct stack_cache *c);
void stack_give(struct stack_pool *sp, struct stack_cache *c, struct fiber *f);

/* A stack of at least size usable bytes (above sp's stack_size, at most
 * KN_POOL_MAX_STACK) from the smallest larger class of the pool sp that
 * holds it, for a task spawned with its own stack_size; NULL: no memory
 * (sp's failures counts it). Its record is set up but for the switch
 * frame (fiber_start). Back with stack_give (into the class, whatever the
 * cache), or stack_put_larger when it never ran (any thread). */
struct fiber *stack_take_larger(struct stack_pool *sp, size_t size);
void stack_put_larger(struct fiber *f);
/* Print the overflow message naming the thread's pool; how: the check
 * that saw it. Called from the SIGSEGV handler too (no allocation). */
void stack_overflow(const char *how);

/* Describe the calling thread's own stack as a fiber, to switch away from
 * it and back. */
void fiber_adopt_thread(struct fiber *f);

/* A new fiber that will run entry(arg) when first switched to, on a stack
 * of sp (from the cache c first); entry must never return (it switches
 * away for good). NULL with errno ENOMEM (sp's failures counts it). */
struct fiber *fiber_new(struct stack_pool *sp, struct stack_cache *c,
			void (*entry)(void *), void *arg);

/* Make f, a stack from stack_take_larger, a fiber that will run
 * entry(arg) when first switched to (as fiber_new). */
void fiber_start(struct fiber *f, void (*entry)(void *), void *arg);

/* Give back the stack of a fiber that is not running and will not be
 * switched to (into c; the surplus to sp). */
void fiber_free(struct stack_pool *sp, struct stack_cache *c, struct fiber *f);

/* Save the running fiber in from and run to; returns when someone switches
 * back to from. leaving: from will never run again (it is about to be
 * freed by whoever runs next). Stops the process with the overflow message
 * if from's stack pointer is below its stack or to's record was
 * overwritten (stack.c). */
void fiber_switch(struct fiber *from, struct fiber *to, bool leaving);

#endif

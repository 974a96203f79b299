/*
 * fiber.c - the switch, and a fiber's first frame (fiber.h).
 *
 * Layout of a fresh fiber's stack (stack.c hands it out), from its top
 * (x86-64): the fiber record, 16 bytes of padding, then the frame
 * kn_fiber_swap pops when it first switches in: the return address (the
 * trampoline), rbp, rbx, r12 (the entry: fiber_main), r13 (its argument:
 * the fiber), r14, r15, and one word holding MXCSR and the x87 control word
 * at their power-on defaults. The trampoline's stack pointer is 16-byte
 * aligned, as the ABI wants before a call. Every switch checks the
 * leaving fiber's stack pointer and the arriving fiber's record (the
 * overflow checks 2 and 3 of stack.c).
 */
#include "fiber.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef KN_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef KN_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* void kn_fiber_swap(void **save_sp, void *new_sp): push the callee-saved
 * state, store the stack pointer, load the other one, pop its state. */
#if FIBER_AVAILABLE
void kn_fiber_swap(void **save_sp, void *new_sp);
void kn_fiber_trampoline(void);

__asm__(".text\n"
	".p2align 4\n"
	".globl kn_fiber_swap\n"
	".hidden kn_fiber_swap\n"
	".type kn_fiber_swap,@function\n"
	"kn_fiber_swap:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	subq $8, %rsp\n"
	"	stmxcsr (%rsp)\n"
	"	fnstcw 4(%rsp)\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	ldmxcsr (%rsp)\n"
	"	fldcw 4(%rsp)\n"
	"	addq $8, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size kn_fiber_swap, .-kn_fiber_swap\n"
	".p2align 4\n"
	".globl kn_fiber_trampoline\n"
	".hidden kn_fiber_trampoline\n"
	".type kn_fiber_trampoline,@function\n"
	"kn_fiber_trampoline:\n"
	"	movq %r13, %rdi\n"
	"	callq *%r12\n"
	"	ud2\n"
	".size kn_fiber_trampoline, .-kn_fiber_trampoline\n");
#endif

/* Tell the sanitizers that this fiber now runs. */
static void arrived(struct fiber *self)
{
#ifdef KN_ASAN
	__sanitizer_finish_switch_fiber(self->asan_fake, NULL, NULL);
#else
	(void)self;
#endif
}

static void fiber_main(struct fiber *f)
{
	arrived(f);
	f->entry(f->arg);
	abort(); /* entry must switch away for good */
}

_Thread_local struct fiber *fiber_running;

void fiber_adopt_thread(struct fiber *f)
{
	memset(f, 0, sizeof(*f));
	f->magic = FIBER_MAGIC ^ (uintptr_t)f;
#ifdef KN_ASAN
	{
		pthread_attr_t a;
		void *lo;
		size_t size;

		if (pthread_getattr_np(pthread_self(), &a) == 0) {
			pthread_attr_getstack(&a, &lo, &size);
			pthread_attr_destroy(&a);
			f->stack_lo = lo;
			f->stack_size = size;
		}
	}
#endif
#ifdef KN_TSAN
	f->tsan = __tsan_get_current_fiber();
#endif
}

/*
 * A stack's frames start STACK_COLOR bytes times one of eight colours
 * (its number in the arena) below its record. Stacks lie a stride of
 * 16 KiB or more apart, a multiple of the 4 KiB over which the first-level
 * cache's sets repeat (and of the second level's 128 KiB for the default
 * 256 KiB), so without colours the frames at one depth of every stack
 * fall in the same sets: fibers that switch among each other on one worker
 * (a producer's and a consumer's waits) evicted each other's frames there
 * (chan_mpmc_4p4c_cap1 pinned to one CPU, eight tasks: about 12% of its
 * time; 128-byte steps gained nothing measurable). At most 1792 bytes, so
 * a task blocked shallow still holds only its stack's top page
 * (blocked_1m: 4250 bytes per task either way).
 */
#define STACK_COLOR 256

void fiber_start(struct fiber *f, void (*entry)(void *), void *arg)
{
#if FIBER_AVAILABLE
	unsigned char *top;
	uint64_t *frame;

	f->entry = entry;
	f->arg = arg;
	top = (unsigned char *)((uintptr_t)f & ~(uintptr_t)15) - 16 -
	      (f->arena ? (f->index & 7) * STACK_COLOR : 0);
	frame = (uint64_t *)top - 8;
	frame[0] = 0x1f80 | ((uint64_t)0x037f << 32); /* MXCSR, x87 CW */
	frame[1] = 0;                               /* r15 */
	frame[2] = 0;                               /* r14 */
	frame[3] = (uint64_t)(uintptr_t)f;          /* r13 */
	frame[4] = (uint64_t)(uintptr_t)fiber_main; /* r12 */
	frame[5] = 0;                               /* rbx */
	frame[6] = 0;                               /* rbp */
	frame[7] = (uint64_t)(uintptr_t)kn_fiber_trampoline;
	f->sp = frame;
#ifdef KN_ASAN
	/* A reused stack may keep the poison of frames that never returned. */
	__asan_unpoison_memory_region(f->stack_lo, f->stack_size);
#endif
#ifdef KN_TSAN
	f->tsan = __tsan_create_fiber(0);
#endif
#else
	(void)f;
	(void)entry;
	(void)arg;
	abort(); /* no stack is handed out without fibers */
#endif
}

struct fiber *fiber_new(struct stack_pool *sp, struct stack_cache *c,
			void (*entry)(void *), void *arg)
{
#if FIBER_AVAILABLE
	struct fiber *f = stack_take(sp, c);

	if (!f) {
		errno = ENOMEM;
		return NULL;
	}
	fiber_start(f, entry, arg);
	return f;
#else
	(void)sp;
	(void)c;
	(void)entry;
	(void)arg;
	errno = ENOSYS;
	return NULL;
#endif
}

/* The magic word at the top of f's record is intact (check 3, stack.c). */
static void check_record(const struct fiber *f)
{
	if (unlikely(f->magic != (FIBER_MAGIC ^ (uintptr_t)f))) {
		stack_overflow("a task's stack overran into the one above it");
		abort();
	}
}

void fiber_free(struct stack_pool *sp, struct stack_cache *c, struct fiber *f)
{
	check_record(f);
#ifdef KN_TSAN
	__tsan_destroy_fiber(f->tsan);
#endif
	stack_give(sp, c, f);
}

/* Check 2 (stack.c): the leaving fiber's stack pointer is inside its
 * stack. */
static void check_leaving(const struct fiber *f)
{
	if (unlikely(f->arena &&
		     (uintptr_t)__builtin_frame_address(0) < (uintptr_t)f->stack_lo)) {
		stack_overflow("stack pointer below the stack at a switch");
		abort();
	}
}

void fiber_switch(struct fiber *from, struct fiber *to, bool leaving)
{
#if FIBER_AVAILABLE
	int saved_errno = errno;

	check_leaving(from);
	check_record(to);
	fiber_running = to;
#ifdef KN_ASAN
	__sanitizer_start_switch_fiber(leaving ? NULL : &from->asan_fake,
				       to->stack_lo, to->stack_size);
#endif
#ifdef KN_TSAN
	__tsan_switch_to_fiber(to->tsan, 0);
#endif

	(void)leaving;
	kn_fiber_swap(&from->sp, to->sp);
	arrived(from);
	errno = saved_errno;
#else
	(void)from;
	(void)to;
	(void)leaving;
	abort();
#endif
}

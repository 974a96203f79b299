/*
 * stack.c - where fiber stacks come from, and how an overflow is caught
 * (fiber.h).
 *
 * Goal: a task that suspends in steady state makes no system call and no
 * allocation, and the number of suspended tasks is bounded by memory, not
 * by the kernel's limit on mappings (vm.max_map_count, 65,530 by default:
 * one mapping plus one guard page each used to stop at about 32,700).
 *
 * Arenas. A pool's stacks are cut from arenas: one anonymous mapping
 * (MAP_NORESERVE: untouched pages cost nothing) of per_arena stacks of
 * stride bytes each, per_arena = 16 MiB / stride, between 1 and 64. A
 * stack is [low page][usable stack ... fiber record], the record at the
 * top, so a stack that only ever held a blocked task has touched its top
 * page or two. Stacks never move between pools (their size is the pool's)
 * and arenas are unmapped when the pool is freed.
 *
 * Caches. Each worker keeps up to CACHE_MAX free stacks (struct
 * stack_cache, its own thread only) and exchanges CACHE_BATCH at a time
 * with the pool (struct stack_pool, a mutex): taking a stack in steady
 * state is a pop from a thread-local list, no lock, no system call; the
 * lock is taken once per CACHE_BATCH misses and an arena is mapped once
 * per per_arena stacks the pool ever holds at once.
 *
 * Giving memory back. An arena whose stacks are all free is kept as it is
 * while the pool holds at most KEEP_EMPTY such arenas (the next burst
 * reuses their touched pages); beyond that it is queued for trimming: one
 * madvise(MADV_DONTNEED) over the whole arena, its pages go back to the
 * kernel, its address range and guard pages stay. The trim is not made
 * where the last stack comes back: that is on the path of the wake-ups
 * that end a burst (tasks resuming and ending), and one madvise costs tens
 * of microseconds (the freed pages, the TLB shootdown on every CPU the
 * process runs on), more than a hundred tasks' resumptions. Instead a
 * worker about to sleep while no other worker of its pool runs calls
 * stack_pool_trim, one arena at a time, until it is woken or nothing is
 * queued (pool_worker.c, trim_stacks; Go too returns stack memory from
 * its background scavenger, not where a goroutine ends). So a burst of a
 * million suspended tasks costs one madvise per 64 stacks after it ends,
 * on an idle worker; the memory of a pool that suspends few tasks stays
 * warm; and a pool that never idles keeps its free arenas mapped until it
 * does (they serve its next burst).
 *
 * An arena being trimmed is off the avail list (nobody can take one of its
 * stacks, and none is out, so nobody can give one back): the madvise runs
 * outside the lock, which the other workers' cache misses need.
 *
 * Size classes. A task spawned with a stack_size above its pool's
 * (kn_spawn_opts) takes its stack at the spawn from one of the pool's
 * larger classes: class k holds stacks of the pool's stack_size << (k+1),
 * each a struct stack_pool of its own made on first use (16 classes reach
 * KN_POOL_MAX_STACK from KN_POOL_MIN_STACK), with arenas as above but no
 * per-worker caches (such tasks are few: a lock per take and give is
 * cheap beside a deep recursion) and no reserve of all-free arenas (their
 * pages are many: an arena is queued for trimming as soon as its stacks
 * are free; stack_pool_trim trims the pool's queue, then its classes'). An
 * arena records its class, so fiber_free gives a stack back where it came
 * from. The pool's own class stays the fast path: a spawn without a
 * larger stack_size does not look at the classes.
 *
 * Memory per blocked task. A blocked task holds its stack's top page
 * (its fiber record, 104 bytes, its loop's frames and its own, the
 * channel's waiter among them, starting up to 1792 bytes below the record
 * (fiber.c's cache colours): well under a page when it blocks shallow)
 * and, until it starts, its task record (128 bytes, a cache line pair) and
 * a deque slot (8 bytes, 16 counting the outgrown rings). blocked_1m's
 * spawner outpaces the starts (a start faults a fresh page in), so all
 * its records are live at the peak: 4096 + 128 + 16 = 4240 bytes per
 * task, measured 4250. Go's figure there is 2731 bytes (2 KiB initial
 * stacks plus a g), and 1.5x of it is 4096.5 bytes, below one page plus
 * anything. The page is the floor for stacks like these: two stacks'
 * touched top regions could share a page only if the stacks lay less than
 * a page apart, and a stack is a contiguous range of at least
 * KN_POOL_MIN_STACK whose frames C code may point into, so it can be
 * neither smaller at first nor moved to grow (Go copies a goroutine's
 * stack when it outgrows 2 KiB, using the compiler's stack maps). The one
 * way left under 1.5x would bind the stack at the spawn with the record
 * inside its top page and an intrusive run queue (Go's own model: 4096
 * bytes, 0.5 under the bound), at the cost of a switch per task start
 * and of a stack per queued task.
 *
 * Guard pages. A guard page is a PROT_NONE page, and a protection change
 * inside a mapping splits it: a guarded stack costs two mappings however
 * the stacks are grouped, so guarding every stack brings back the
 * max_map_count wall. The low page of a stack is therefore a guard
 * (mprotect at arena creation, one call per stack) for the process's
 * first GUARDED_MAX stacks (8192: 16,384 mappings, a quarter of the
 * default limit, whatever the pools) and a plain unused page beyond; an
 * unguarded arena is one mapping. Overflow detection, in order of cost:
 *
 *  1. Guarded stack: the overflowing access faults on the guard page. A
 *     SIGSEGV handler (installed only if SIGSEGV was SIG_DFL, run on an
 *     alternate signal stack each worker sets up) recognizes a fault
 *     address within GUARD_REACH below the running fiber's stack, prints
 *     the overflow message and lets the fault kill the process; any other
 *     fault gets the default action. Free at run time.
 *  2. At every switch (fiber_switch), the stack pointer of the fiber that
 *     leaves must be inside its stack: an overrun with a frame still live
 *     (a large frame that jumped the guard, then blocked) stops there.
 *  3. The fiber record's last word holds a magic value: a stack's record
 *     lies right above the low page of the next stack in the arena, so an
 *     overrun that leaves its own stack through the low page (unguarded,
 *     or jumped by a frame larger than a page) hits it first; the magic is
 *     checked whenever the fiber is switched to or freed, i.e. before the
 *     victim runs on a corrupted stack. Two compares per switch, on lines
 *     the switch reads anyway.
 * Frames larger than a page can jump a guard page only in code built
 * without -fstack-clash-protection (kanal and its tests are built with
 * it where the compiler has it); 2 and 3 catch what they can of the rest,
 * at the next switch. The message names the pool and its stack_size.
 *
 * Synchronization: a cache belongs to its thread; the pool's lists and
 * arenas are under the pool's mutex (a class's under its own; a class is
 * made under the pool's and published with a release store; pthread
 * mutexes: a stack is taken inside the block hook, where the waiter
 * layer's park must not recurse);
 * the counters are relaxed atomics; the guard budget is one atomic.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault.h"
#include "fiber.h"
#ifdef KN_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define ARENA_BYTES ((size_t)16 << 20)
#define ARENA_STACKS_MAX 64
#define CACHE_MAX 64
#define CACHE_BATCH 32
#define KEEP_EMPTY 2
#define GUARDED_MAX 8192
#define GUARD_REACH ((uintptr_t)1 << 20)
#define ALTSTACK_SIZE ((size_t)64 * 1024)

struct stack_arena {
	struct stack_pool *owner; /* the pool or larger class it belongs to */
	struct stack_arena *next_all;
	struct stack_arena *next, *prev; /* on avail */
	struct stack_arena *next_trim;   /* on the trim queue */
	unsigned char *base;
	size_t len;
	unsigned nfree;
	bool guarded;
	bool dirty;          /* a stack was handed out since the last trim */
	bool queued;         /* on the trim queue */
	uint32_t free[];     /* stack numbers, nfree of them */
};

static _Atomic long guard_budget = GUARDED_MAX;
static size_t page_size;

void stack_pool_init(struct stack_pool *sp, size_t size, const char *name)
{
	size_t rec = sizeof(struct fiber) + 16;

	memset(sp, 0, sizeof(*sp));
	if (!page_size)
		page_size = (size_t)sysconf(_SC_PAGESIZE);
	pthread_mutex_init(&sp->lock, NULL);
	sp->stack_size = size;
	sp->keep_empty = KEEP_EMPTY;
	sp->stride = page_size + ((size + rec + page_size - 1) & ~(page_size - 1));
	sp->per_arena = (unsigned)(ARENA_BYTES / sp->stride);
	if (sp->per_arena < 1)
		sp->per_arena = 1;
	if (sp->per_arena > ARENA_STACKS_MAX)
		sp->per_arena = ARENA_STACKS_MAX;
	snprintf(sp->name, sizeof(sp->name), "%s", name);
}

static void avail_insert(struct stack_pool *sp, struct stack_arena *a)
{
	a->prev = NULL;
	a->next = sp->avail;
	if (sp->avail)
		sp->avail->prev = a;
	sp->avail = a;
}

static void avail_remove(struct stack_pool *sp, struct stack_arena *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		sp->avail = a->next;
	if (a->next)
		a->next->prev = a->prev;
}

/* Guard the low page of every stack of a, if the budget allows all. */
static void guard_arena(struct stack_pool *sp, struct stack_arena *a)
{
	long n = (long)sp->per_arena;
	unsigned i;

	if (at_sub_relaxed(&guard_budget, n) < n) {
		at_add_relaxed(&guard_budget, n);
		return;
	}
	for (i = 0; i < sp->per_arena; i++) {
		stat_count_syscall();
		mprotect(a->base + (size_t)i * sp->stride, page_size, PROT_NONE);
	}
	a->guarded = true;
}

/* A new arena on avail, all free; under the lock. */
static struct stack_arena *new_arena(struct stack_pool *sp)
{
	size_t len = sp->stride * sp->per_arena;
	struct stack_arena *a;
	unsigned i;
	void *base;

	if (fault_alloc_should_fail())
		return NULL;
	a = kn_alloc(sizeof(*a) + sp->per_arena * sizeof(a->free[0]));
	if (!a)
		return NULL;
	stat_count_syscall();
	base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (base == MAP_FAILED) {
		kn_free(a);
		return NULL;
	}
	stat_count_alloc();
	memset(a, 0, sizeof(*a));
	a->owner = sp;
	a->base = base;
	a->len = len;
	for (i = 0; i < sp->per_arena; i++)
		a->free[i] = sp->per_arena - 1 - i; /* lowest first */
	a->nfree = sp->per_arena;
	guard_arena(sp, a);
	a->next_all = sp->all;
	sp->all = a;
	at_add_relaxed(&sp->bytes, len);
	avail_insert(sp, a);
	return a;
}

static struct fiber *stack_record(struct stack_pool *sp, struct stack_arena *a,
				  uint32_t i)
{
	unsigned char *lo = a->base + (size_t)i * sp->stride;
	struct fiber *f = (struct fiber *)(lo + sp->stride) - 1;

	f->arena = a;
	f->index = i;
	return f;
}

/* A free stack of sp (a new arena only if may_map), or NULL; under the
 * lock. */
static struct fiber *take_locked(struct stack_pool *sp, bool may_map)
{
	struct stack_arena *a = sp->avail;
	struct fiber *f;

	if (!a && (!may_map || !(a = new_arena(sp))))
		return NULL;
	if (a->nfree == sp->per_arena && a->dirty)
		sp->nempty--;
	a->dirty = true;
	f = stack_record(sp, a, a->free[--a->nfree]);
	if (!a->nfree)
		avail_remove(sp, a);
	return f;
}

/* Up to CACHE_BATCH stacks into c (at least one unless out of memory). */
static void refill(struct stack_pool *sp, struct stack_cache *c)
{
	struct fiber *f;
	unsigned got;

	pthread_mutex_lock(&sp->lock);
	for (got = 0; got < CACHE_BATCH && (f = take_locked(sp, !got)); got++) {
		f->next = c->free;
		c->free = f;
		c->n++;
	}
	pthread_mutex_unlock(&sp->lock);
}

/* f's stack back to its arena; under the lock. */
static void put_back(struct stack_pool *sp, struct fiber *f)
{
	struct stack_arena *a = f->arena;

	a->free[a->nfree++] = f->index;
	if (a->nfree == 1)
		avail_insert(sp, a);
	if (a->nfree < sp->per_arena || !a->dirty)
		return;
	if (++sp->nempty > sp->keep_empty && !a->queued) {
		a->queued = true;
		a->next_trim = sp->trim;
		sp->trim = a;
	}
}

/* Under the lock: a queued arena to trim now, off avail, or NULL. One
 * that was taken from since it was queued, or that the reserve now
 * keeps, leaves the queue (put_back queues it again when it empties). */
static struct stack_arena *trim_next(struct stack_pool *sp)
{
	struct stack_arena *a;

	while ((a = sp->trim) != NULL) {
		sp->trim = a->next_trim;
		a->queued = false;
		if (a->nfree == sp->per_arena && a->dirty &&
		    sp->nempty > sp->keep_empty) {
			sp->nempty--;
			avail_remove(sp, a);
			return a;
		}
	}
	return NULL;
}

/* Trim one queued arena of sp (not of its classes). */
static bool trim_one(struct stack_pool *sp)
{
	struct stack_arena *a;

	pthread_mutex_lock(&sp->lock);
	a = trim_next(sp);
	pthread_mutex_unlock(&sp->lock);
	if (!a)
		return false;
	stat_count_syscall();
	madvise(a->base, a->len, MADV_DONTNEED);
	pthread_mutex_lock(&sp->lock);
	a->dirty = false;
	avail_insert(sp, a);
	pthread_mutex_unlock(&sp->lock);
	return true;
}

/* Hand back n stacks from the top of c. */
static void drain(struct stack_pool *sp, struct stack_cache *c, unsigned n)
{
	struct fiber *f;

	pthread_mutex_lock(&sp->lock);
	while (n-- && (f = c->free) != NULL) {
		c->free = f->next;
		c->n--;
		put_back(sp, f);
	}
	pthread_mutex_unlock(&sp->lock);
}

void stack_cache_flush(struct stack_pool *sp, struct stack_cache *c)
{
	drain(sp, c, c->n);
}

/* f's record as a fresh fiber's (but for the switch frame). */
static struct fiber *fresh_record(struct fiber *f)
{
	struct stack_arena *a = f->arena;
	uint32_t i = f->index;

	memset(f, 0, sizeof(*f));
	f->arena = a;
	f->index = i;
	f->stack_lo = a->base + (size_t)i * a->owner->stride + page_size;
	f->stack_size = (size_t)((unsigned char *)f - (unsigned char *)f->stack_lo) & ~(size_t)15;
	f->magic = FIBER_MAGIC ^ (uintptr_t)f;
	return f;
}

struct fiber *stack_take(struct stack_pool *sp, struct stack_cache *c)
{
	struct fiber *f;

	if (!c->free)
		refill(sp, c);
	f = c->free;
	if (!f) {
		at_add_relaxed(&sp->failures, 1);
		return NULL;
	}
	c->free = f->next;
	c->n--;
	return fresh_record(f);
}

void stack_give(struct stack_pool *sp, struct stack_cache *c, struct fiber *f)
{
	if (f->arena->owner != sp) { /* a larger class's: no caches */
		stack_put_larger(f);
		return;
	}
	f->next = c->free;
	c->free = f;
	if (++c->n > CACHE_MAX)
		drain(sp, c, CACHE_BATCH);
}

/* ---- larger classes ------------------------------------------------------ */

/* The class of sp that serves size (made now if need be), or NULL. */
static struct stack_pool *class_for(struct stack_pool *sp, size_t size)
{
	struct stack_pool *cls;
	unsigned k = 0;

	while ((sp->stack_size << (k + 1)) < size)
		k++; /* < STACK_CLASSES: size <= KN_POOL_MAX_STACK */
	cls = at_load_acquire(&sp->larger[k]);
	if (cls)
		return cls;
	pthread_mutex_lock(&sp->lock);
	cls = at_load_relaxed(&sp->larger[k]);
	if (!cls && (cls = kn_alloc(sizeof(*cls))) != NULL) {
		stack_pool_init(cls, sp->stack_size << (k + 1), sp->name);
		/* Large stacks are few and their pages many: queued for
		 * trimming as soon as an arena is free. */
		cls->keep_empty = 0;
		at_store_release(&sp->larger[k], cls);
	}
	pthread_mutex_unlock(&sp->lock);
	return cls;
}

struct fiber *stack_take_larger(struct stack_pool *sp, size_t size)
{
	struct stack_pool *cls = class_for(sp, size);
	struct fiber *f = NULL;

	if (cls) {
		pthread_mutex_lock(&cls->lock);
		f = take_locked(cls, true);
		pthread_mutex_unlock(&cls->lock);
	}
	if (!f) {
		at_add_relaxed(&sp->failures, 1);
		return NULL;
	}
	return fresh_record(f);
}

void stack_put_larger(struct fiber *f)
{
	struct stack_pool *cls = f->arena->owner;

	pthread_mutex_lock(&cls->lock);
	put_back(cls, f);
	pthread_mutex_unlock(&cls->lock);
}

bool stack_pool_trim(struct stack_pool *sp)
{
	struct stack_pool *cls;
	unsigned k;

	if (trim_one(sp))
		return true;
	for (k = 0; k < STACK_CLASSES; k++) {
		cls = at_load_acquire(&sp->larger[k]);
		if (cls && trim_one(cls))
			return true;
	}
	return false;
}

void stack_pool_destroy(struct stack_pool *sp)
{
	struct stack_arena *a, *next;
	unsigned k;

	for (k = 0; k < STACK_CLASSES; k++) {
		struct stack_pool *cls = at_load_relaxed(&sp->larger[k]);

		if (cls) {
			stack_pool_destroy(cls);
			kn_free(cls);
		}
	}

	for (a = sp->all; a; a = next) {
		next = a->next_all;
		/* Frames that never returned leave their redzones poisoned,
		 * and AddressSanitizer does not clear shadow at munmap: a
		 * thread's stack and static TLS mapped here later would
		 * inherit them (fault_pool's pools come and go). */
#ifdef KN_ASAN
		__asan_unpoison_memory_region(a->base, a->len);
#endif
		stat_count_syscall();
		munmap(a->base, a->len);
		if (a->guarded)
			at_add_relaxed(&guard_budget, (long)sp->per_arena);
		kn_free(a);
	}
	sp->all = sp->avail = NULL;
	pthread_mutex_destroy(&sp->lock);
}

/* ---- overflow reports -------------------------------------------------- */

static _Thread_local const struct stack_pool *thread_pool;
static _Thread_local void *thread_altstack;

/* From the SIGSEGV handler too: snprintf of strings and integers into a
 * local buffer (glibc allocates nothing for these) and one write(2). */
void stack_overflow(const char *how)
{
	const struct stack_pool *sp = thread_pool;
	const struct fiber *f = fiber_running;
	char msg[512];
	int n;

	if (f && f->arena)
		sp = f->arena->owner; /* a larger class's stack: its size */
	n = snprintf(msg, sizeof(msg),
		     "kanal: task stack overflow (%s) in pool \"%s\" "
		     "(stack_size %zu bytes): raise kn_pool_opts.stack_size "
		     "(KANAL_STACK_SIZE or kn_default_pool_set for kn_go) or "
		     "the task's kn_spawn_opts.stack_size, or move large arrays "
		     "off the stack\n",
		     how, sp ? sp->name : "?", sp ? sp->stack_size : (size_t)0);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		n = 0;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	const struct fiber *f = fiber_running;
	uintptr_t a = (uintptr_t)si->si_addr, lo;

	(void)uc;
	if (f && f->arena) {
		lo = (uintptr_t)f->stack_lo;
		if (a < lo && lo - a <= GUARD_REACH)
			stack_overflow("guard page");
	}
	/* The default action from now on: a fault returns to the access,
	 * which faults again and kills; a sent signal is sent again. */
	signal(sig, SIG_DFL);
	if (si->si_code <= 0)
		raise(sig);
}

static void install_handler(void)
{
	struct sigaction old, sa;

	if (sigaction(SIGSEGV, NULL, &old) || old.sa_handler != SIG_DFL ||
	    (old.sa_flags & SA_SIGINFO))
		return; /* the program's own handler (or a sanitizer's) stays */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
}

void stack_thread_init(const struct stack_pool *sp)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	stack_t ss, old;

	thread_pool = sp;
	pthread_once(&once, install_handler);
	if (sigaltstack(NULL, &old) || !(old.ss_flags & SS_DISABLE))
		return; /* the thread has one */
	ss.ss_sp = kn_alloc(ALTSTACK_SIZE);
	if (!ss.ss_sp)
		return; /* then a guard-page overflow dies unreported */
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		kn_free(ss.ss_sp);
		return;
	}
	thread_altstack = ss.ss_sp;
}

void stack_thread_exit(void)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	thread_pool = NULL;
	if (!thread_altstack)
		return;
	sigaltstack(&ss, NULL);
	kn_free(thread_altstack);
	thread_altstack = NULL;
}

/*
 * test_chan.c - the channel's rules (issue 2), on buffered and rendezvous
 * channels: bad input, element sizes, len/cap/closed, the try and _until
 * forms, close, batches, wrap-around, FIFO per producer, the fast path,
 * NULL and cancelled contexts, a stale rendezvous partner hint. Blocked-ness is checked through helpers.h, never by time.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kanal/chan.h"
#include "kanal/ctx.h"
#include "helpers.h"

/* A failed huge allocation must come back as ENOMEM, not as a sanitizer
 * report: let the sanitizer allocators return NULL as malloc does. */
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}

#define MS (1000u * 1000u)

/* ---- creation and bad input ------------------------------------------- */

static void expect_new_fails(size_t esize, size_t cap, int err)
{
	kn_chan *ch;

	errno = 0;
	ch = kn_chan_new(esize, cap);
	cr_expect_null(ch, "kn_chan_new(%zu, %zu) should fail", esize, cap);
	cr_expect_eq(errno, err, "kn_chan_new(%zu, %zu): errno %d, want %d",
		     esize, cap, errno, err);
	kn_chan_free(ch);
}

Test(chan, new_rejects_bad_sizes)
{
	expect_new_fails(0, 0, EINVAL);
	expect_new_fails(0, 16, EINVAL);
	expect_new_fails(8, (1ull << 40) + 1, EINVAL);
	expect_new_fails(1, SIZE_MAX, EINVAL);
	expect_new_fails(SIZE_MAX, 1, EINVAL);
	expect_new_fails(SIZE_MAX / 2 + 1, 2, EINVAL);
	expect_new_fails(1ull << 40, 1ull << 40, EINVAL);
	expect_new_fails((1ull << 32) + 1, 1ull << 32, EINVAL);
}

Test(chan, new_too_big_for_memory_is_enomem)
{
	/* 2^60 bytes: no overflow, but no machine has them. */
	expect_new_fails(1ull << 30, 1ull << 30, ENOMEM);
}

/* A slot array of 2^64 - 16 bytes: rounding it up to the alignment must
 * not wrap to a tiny allocation. */
Test(chan, new_slots_just_below_size_max_is_enomem)
{
	/* stride 2^34 - 16 times 2^30 + 1 slots = 2^64 - 16 bytes; the
	 * product elem_size * capacity does not overflow. */
	expect_new_fails((1ull << 34) - 24, (1ull << 30) + 1, ENOMEM);
}

Test(chan, new_reports_its_shape)
{
	static const size_t shapes[][2] = {
		{ 1, 0 }, { 3, 1 }, { 8, 2 }, { 24, 7 }, { 100, 1000 },
		{ 1ull << 20, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		kn_chan *ch = kt_chan(shapes[i][0], shapes[i][1]);

		cr_expect_eq(kn_chan_elem_size(ch), shapes[i][0]);
		cr_expect_eq(kn_chan_cap(ch), shapes[i][1]);
		cr_expect_eq(kn_chan_len(ch), 0);
		cr_expect_not(kn_chan_is_closed(ch));
		kn_chan_free(ch);
	}
}

/* Every form given a NULL value fails with EINVAL and moves nothing. */
static void expect_null_value_einval(kn_chan *ch)
{
	size_t n = 0;

	cr_expect_eq(kn_chan_send(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_try_send(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_until(ch, NULL, 0), EINVAL);
	cr_expect_eq(kn_chan_send_until(ch, NULL, KN_FOREVER), EINVAL);
	cr_expect_eq(kn_chan_send_ctx(ch, NULL, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_try_recv(ch, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv_until(ch, NULL, 0), EINVAL);
	cr_expect_eq(kn_chan_recv_until(ch, NULL, KN_FOREVER), EINVAL);
	cr_expect_eq(kn_chan_recv_ctx(ch, NULL, NULL), EINVAL);
	cr_expect_eq(kn_chan_send_batch(ch, NULL, 2, &n, KN_FOREVER, NULL), EINVAL);
	cr_expect_eq(kn_chan_recv_batch(ch, NULL, 2, &n, KN_FOREVER, NULL), EINVAL);
}

Test(chan, null_value_is_einval_buffered)
{
	kn_chan *ch = kt_chan(8, 4);

	/* One value in and room left: both directions could complete. */
	kt_put(ch, 42);
	expect_null_value_einval(ch);
	cr_expect_eq(kn_chan_len(ch), 1);
	cr_expect_eq(kt_get(ch), 42);
	kn_chan_free(ch);
}

Test(chan, null_value_is_einval_rendezvous)
{
	kn_chan *ch = kt_chan(8, 0);
	struct kt_thread t;
	struct kt_op op = { ch, 7 };

	expect_null_value_einval(ch);
	/* With a partner waiting, a NULL value still pairs with nobody. */
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1), "sender did not block");
	expect_null_value_einval(ch);
	cr_expect_not(kt_done(&t));
	cr_expect_eq(kt_queued(ch, KN_SEND), 1);
	cr_expect_eq(kt_get(ch), 7);
	cr_expect_eq(kt_join(&t), 0);
	kn_chan_free(ch);
}

/* ---- deadlines already passed --------------------------------------- */

static const uint64_t past[] = { 0, 1, 1000 };

Test(chan, past_deadline_buffered)
{
	kn_chan *ch = kt_chan(8, 1);
	size_t i, n;
	int64_t v, buf[3] = { 1, 2, 3 };

	for (i = 0; i < 3; i++) {
		v = -1;
		cr_expect_eq(kn_chan_recv_until(ch, &v, past[i]), ETIMEDOUT);
		cr_expect_eq(v, -1, "a failed receive wrote its buffer");
		cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 10 + (int64_t)i }, past[i]), 0);
		cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 99 }, past[i]), ETIMEDOUT);
		cr_expect_eq(kn_chan_recv_until(ch, &v, past[i]), 0);
		cr_expect_eq(v, 10 + (int64_t)i);
	}
	/* kn_now() itself has passed by the time the call looks. */
	cr_expect_eq(kn_chan_recv_until(ch, &v, kn_now()), ETIMEDOUT);
	cr_expect_eq(kn_chan_send_batch(ch, buf, 3, &n, 0, NULL), ETIMEDOUT);
	cr_expect_eq(n, 1);
	n = 9;
	cr_expect_eq(kn_chan_recv_batch(ch, buf, 3, &n, 0, NULL), 0);
	cr_expect_eq(n, 1);
	cr_expect_eq(buf[0], 1);
	n = 9;
	cr_expect_eq(kn_chan_recv_batch(ch, buf, 3, &n, 0, NULL), ETIMEDOUT);
	cr_expect_eq(n, 0);
	/* A closed channel answers EPIPE, not ETIMEDOUT. */
	kt_put(ch, 5);
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kn_chan_send_until(ch, &v, 0), EPIPE);
	cr_expect_eq(kn_chan_recv_until(ch, &v, 0), 0);
	cr_expect_eq(v, 5);
	cr_expect_eq(kn_chan_recv_until(ch, &v, 0), EPIPE);
	kn_chan_free(ch);
}

Test(chan, past_deadline_rendezvous)
{
	kn_chan *ch = kt_chan(8, 0);
	struct kt_thread t;
	struct kt_op op = { ch, 31 };
	int64_t v = -1;

	cr_expect_eq(kn_chan_send_until(ch, &v, 0), ETIMEDOUT);
	cr_expect_eq(kn_chan_recv_until(ch, &v, 0), ETIMEDOUT);
	cr_expect_eq(kt_queued(ch, KN_SEND) + kt_queued(ch, KN_RECV), 0,
		     "a timed-out operation stayed queued");
	/* With a partner already waiting, a passed deadline still succeeds. */
	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1));
	cr_expect_eq(kn_chan_recv_until(ch, &v, 0), 0);
	cr_expect_eq(v, 31);
	cr_expect_eq(kt_join(&t), 0);

	op.val = -1;
	kt_spawn(&t, kt_recv, &op);
	cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
	cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 32 }, 0), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 32);

	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kn_chan_send_until(ch, &v, 0), EPIPE);
	cr_expect_eq(kn_chan_recv_until(ch, &v, 0), EPIPE);
	kn_chan_free(ch);
}

/* ---- element sizes ------------------------------------------------------ */

#define GUARD 16
#define GUARD_BYTE 0xa5

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131u + i * 7u + 1u);
}

/* Receive one value into an exact-size slot between two guards and check
 * the value and that nothing was written around it. */
static void recv_checked(kn_chan *ch, size_t esize, unsigned seed)
{
	unsigned char *buf = malloc(esize + 2 * GUARD), *want = malloc(esize);
	size_t i;

	cr_assert(buf && want);
	memset(buf, GUARD_BYTE, esize + 2 * GUARD);
	pattern(want, esize, seed);
	cr_assert_eq(kn_chan_recv(ch, buf + GUARD), 0);
	cr_expect_eq(memcmp(buf + GUARD, want, esize), 0,
		     "size %zu: value %u corrupted", esize, seed);
	for (i = 0; i < GUARD; i++) {
		cr_expect_eq(buf[i], GUARD_BYTE, "size %zu: wrote before the value", esize);
		cr_expect_eq(buf[GUARD + esize + i], GUARD_BYTE,
			     "size %zu: wrote past the value", esize);
	}
	free(want);
	free(buf);
}

/* Sends come from exact-size heap buffers so that an over-read shows up
 * under AddressSanitizer. */
static int send_pattern(kn_chan *ch, size_t esize, unsigned seed)
{
	unsigned char *v = malloc(esize);
	int r;

	cr_assert(v);
	pattern(v, esize, seed);
	r = kn_chan_send(ch, v);
	free(v);
	return r;
}

/* 8 and 9: a rendezvous value of up to 8 bytes waits inline in its node
 * (chan.c), a larger one in the caller's buffer. */
static const size_t odd_sizes[] = { 1, 3, 8, 9, 16, 17, 24, 100 };
#define N_ODD_SIZES (sizeof(odd_sizes) / sizeof(odd_sizes[0]))

Test(chan, odd_sizes_round_trip_buffered)
{
	static const size_t caps[] = { 1, 3, 8 };
	size_t s, c, lap, i;
	unsigned seed;

	for (s = 0; s < N_ODD_SIZES; s++) {
		for (c = 0; c < 3; c++) {
			size_t esize = odd_sizes[s], cap = caps[c];
			kn_chan *ch = kt_chan(esize, cap);

			seed = 0;
			/* Fill, then drain, several laps: neighbouring slots
			 * must not bleed into each other. */
			for (lap = 0; lap < 4; lap++) {
				for (i = 0; i < cap; i++)
					cr_assert_eq(send_pattern(ch, esize, seed + (unsigned)i), 0);
				cr_expect_eq(kn_chan_len(ch), cap);
				for (i = 0; i < cap; i++)
					recv_checked(ch, esize, seed + (unsigned)i);
				seed += (unsigned)cap;
			}
			kn_chan_free(ch);
		}
	}
}

struct sized_sender {
	kn_chan *ch;
	size_t esize;
	unsigned count;
};

static int send_patterns(void *p)
{
	struct sized_sender *a = p;
	unsigned i;
	int bad = 0;

	for (i = 0; i < a->count; i++)
		bad += send_pattern(a->ch, a->esize, i) != 0;
	return bad;
}

Test(chan, odd_sizes_round_trip_rendezvous)
{
	size_t s;
	unsigned i;

	for (s = 0; s < N_ODD_SIZES; s++) {
		struct sized_sender a = { kt_chan(odd_sizes[s], 0), odd_sizes[s], 50 };
		struct kt_thread t;

		kt_spawn(&t, send_patterns, &a);
		for (i = 0; i < a.count; i++)
			recv_checked(a.ch, a.esize, i);
		cr_expect_eq(kt_join(&t), 0);
		kn_chan_free(a.ch);
	}
}

/* A thread's rendezvous hand-off leaves it a hint, the address of the
 * partner's wait node, which its next lone operation on that channel
 * prefetches (chan_zero.c). By then the partner's stack may be gone: here
 * it is made inaccessible, and the next hand-offs must still complete. */
static void *recv_on_own_stack(void *p)
{
	int64_t v = 0;

	return kn_chan_recv(p, &v) == 0 && v == 1 ? p : NULL;
}

static int send_one(void *p)
{
	int64_t v = 7;

	return kn_chan_send(p, &v);
}

Test(chan, rendezvous_partner_stack_gone)
{
	kn_chan *ch = kt_chan(sizeof(int64_t), 0);
	size_t size = 4u << 20; /* ThreadSanitizer keeps its own data there */
	void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	pthread_attr_t attr;
	pthread_t tid;
	struct kt_thread t;
	void *ret;

	cr_assert_neq(stack, MAP_FAILED);
	cr_assert_eq(pthread_attr_init(&attr), 0);
	cr_assert_eq(pthread_attr_setstack(&attr, stack, size), 0);
	cr_assert_eq(pthread_create(&tid, &attr, recv_on_own_stack, ch), 0);
	pthread_attr_destroy(&attr);
	/* The receiver waits first, so this send decides its node. */
	while (kt_queued(ch, KN_RECV) == 0)
		kt_pause();
	kt_put(ch, 1);
	cr_assert_eq(pthread_join(tid, &ret), 0);
	cr_assert_eq(ret, ch);
	cr_assert_eq(mprotect(stack, size, PROT_NONE), 0);

	/* Again, with the hint pointing into the dead stack. */
	kt_spawn(&t, send_one, ch);
	cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1));
	cr_expect_eq(kt_get(ch), 7);
	cr_expect_eq(kt_join(&t), 0);

	cr_assert_eq(munmap(stack, size), 0);
	kn_chan_free(ch);
}

/* ---- len, cap, closed, try forms -------------------------------------- */

/* The size-checked macros: a mismatch is EINVAL and moves nothing, in
 * every form; a match behaves as the unchecked call. */
static void sized_calls(size_t cap)
{
	kn_chan *ch = kn_chan_new(sizeof(int64_t), cap);
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	int64_t v = 7, got = 0;
	int16_t small = 0;
	int32_t mid = 0;

	cr_assert_not_null(ch);
	cr_assert_not_null(ctx);
	cr_assert_eq(kn_chan_sendv(ch, mid), EINVAL);
	cr_assert_eq(kn_chan_try_sendv(ch, small), EINVAL);
	cr_assert_eq(kn_chan_sendv_until(ch, mid, 0), EINVAL);
	cr_assert_eq(kn_chan_sendv_ctx(ch, small, ctx), EINVAL);
	cr_assert_eq(kn_chan_len(ch), 0, "a refused send moved a value");
	cr_assert_eq(kn_chan_try_recvv(ch, &got), EAGAIN);
	cr_assert_eq(kn_chan_recvv_until(ch, &got, 0), ETIMEDOUT);
	if (cap) {
		cr_assert_eq(kn_chan_sendv(ch, v), 0);
		cr_assert_eq(kn_chan_recvv(ch, &small), EINVAL);
		cr_assert_eq(kn_chan_try_recvv(ch, &mid), EINVAL);
		cr_assert_eq(kn_chan_recvv_until(ch, &small, KN_FOREVER), EINVAL);
		cr_assert_eq(kn_chan_recvv_ctx(ch, &mid, ctx), EINVAL);
		cr_assert_eq(small, 0, "a refused receive wrote");
		cr_assert_eq(kn_chan_len(ch), 1, "a refused receive took the value");
		cr_assert_eq(kn_chan_recvv_ctx(ch, &got, ctx), 0);
		cr_assert_eq(got, 7);
		cr_assert_eq(kn_chan_try_sendv(ch, v), 0);
		cr_assert_eq(kn_chan_sendv_until(ch, v, 0), cap > 1 ? 0 : ETIMEDOUT);
		cr_assert_eq(kn_chan_try_recvv(ch, &got), 0);
	}
	/* A deadline with a context is refused; NULL is EINVAL. */
	cr_assert_eq(kn_chan_sized(ch, KN_RECV, &got, sizeof(got), 0, ctx), EINVAL);
	cr_assert_eq(kn_chan_sized(ch, KN_SEND | KN_RECV, &v, sizeof(v), 0, NULL), EINVAL);
	cr_assert_eq(kn_chan_sized(NULL, KN_SEND, &v, sizeof(v), 0, NULL), EINVAL);
	kn_chan_close(ch);
	cr_assert_eq(kn_chan_sendv(ch, v), EPIPE);
	cr_assert_eq(kn_chan_sendv(ch, small), EINVAL);
	kn_ctx_release(ctx);
	kn_chan_free(ch);
}

Test(chan, sized_calls_check_the_element_size)
{
	sized_calls(0);
	sized_calls(1);
	sized_calls(4);
}

Test(chan, len_cap_closed)
{
	kn_chan *ch = kt_chan(4, 5);
	int32_t v;
	int i;

	for (i = 0; i < 5; i++) {
		cr_expect_eq(kn_chan_len(ch), (size_t)i);
		cr_assert_eq(kn_chan_try_send(ch, &i), 0);
	}
	cr_expect_eq(kn_chan_len(ch), 5);
	cr_expect_eq(kn_chan_try_send(ch, &i), EAGAIN);
	cr_expect_eq(kn_chan_len(ch), 5);
	cr_assert_eq(kn_chan_recv(ch, &v), 0);
	cr_assert_eq(kn_chan_recv(ch, &v), 0);
	cr_expect_eq(kn_chan_len(ch), 3);
	for (i = 5; i < 7; i++)
		cr_assert_eq(kn_chan_send(ch, &i), 0); /* wraps around */
	cr_expect_eq(kn_chan_len(ch), 5);
	cr_expect_eq(kn_chan_cap(ch), 5);
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kn_chan_is_closed(ch));
	cr_expect_eq(kn_chan_len(ch), 5, "close dropped buffered values");
	for (i = 2; i < 7; i++) {
		cr_assert_eq(kn_chan_recv(ch, &v), 0);
		cr_expect_eq(v, i);
		cr_expect_eq(kn_chan_len(ch), (size_t)(6 - i));
	}
	cr_expect_eq(kn_chan_recv(ch, &v), EPIPE);
	cr_expect_eq(kn_chan_len(ch), 0);
	cr_expect(kn_chan_is_closed(ch));
	kn_chan_free(ch);

	ch = kt_chan(4, 0);
	cr_expect_eq(kn_chan_len(ch), 0);
	cr_expect_eq(kn_chan_cap(ch), 0);
	cr_expect_not(kn_chan_is_closed(ch));
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect(kn_chan_is_closed(ch));
	kn_chan_free(ch);
}

Test(chan, try_on_full_and_empty_is_eagain)
{
	static const size_t caps[] = { 1, 2, 7 };
	size_t c;
	int64_t i, v;

	for (c = 0; c < 3; c++) {
		kn_chan *ch = kt_chan(8, caps[c]);

		v = -1;
		cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
		cr_expect_eq(v, -1, "a failed try_recv wrote its buffer");
		for (i = 0; i < (int64_t)caps[c]; i++)
			cr_assert_eq(kn_chan_try_send(ch, &i), 0);
		cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 99 }), EAGAIN);
		cr_expect_eq(kn_chan_len(ch), caps[c]);
		for (i = 0; i < (int64_t)caps[c]; i++) {
			cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
			cr_expect_eq(v, i);
		}
		v = -1;
		cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
		cr_expect_eq(v, -1);
		kn_chan_free(ch);
	}
}

Test(chan, try_on_rendezvous_without_partner_is_eagain)
{
	kn_chan *ch = kt_chan(8, 0);
	int64_t v = -1;

	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 1 }), EAGAIN);
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	cr_expect_eq(v, -1);
	cr_expect_eq(kt_queued(ch, KN_SEND) + kt_queued(ch, KN_RECV), 0,
		     "a try form stayed queued");
	kn_chan_free(ch);
}

/* ---- deadlines in the future ------------------------------------------- */

Test(chan, until_times_out_buffered)
{
	kn_chan *ch = kt_chan(8, 1);
	int64_t v = -1;
	uint64_t d;

	d = kn_deadline_in(2 * MS);
	cr_expect_eq(kn_chan_recv_until(ch, &v, d), ETIMEDOUT);
	cr_expect_geq(kn_now(), d, "timed out before the deadline");
	cr_expect_eq(v, -1);
	kt_put(ch, 1);
	d = kn_deadline_in(2 * MS);
	cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 2 }, d), ETIMEDOUT);
	cr_expect_geq(kn_now(), d);
	cr_expect_eq(kn_chan_len(ch), 1);
	cr_expect_eq(kt_get(ch), 1);
	cr_expect_eq(kt_queued(ch, KN_SEND) + kt_queued(ch, KN_RECV), 0);
	kn_chan_free(ch);
}

Test(chan, until_times_out_rendezvous)
{
	kn_chan *ch = kt_chan(8, 0);
	int64_t v = -1;
	uint64_t d;

	d = kn_deadline_in(2 * MS);
	cr_expect_eq(kn_chan_recv_until(ch, &v, d), ETIMEDOUT);
	cr_expect_geq(kn_now(), d);
	cr_expect_eq(v, -1);
	d = kn_deadline_in(2 * MS);
	cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 2 }, d), ETIMEDOUT);
	cr_expect_geq(kn_now(), d);
	/* The value that timed out must not be handed to a later receiver. */
	cr_expect_eq(kt_queued(ch, KN_SEND) + kt_queued(ch, KN_RECV), 0);
	cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	kn_chan_free(ch);
}

struct until_op {
	kn_chan *ch;
	int64_t val;
	int send;
};

static int until_op(void *p)
{
	struct until_op *a = p;
	uint64_t d = kn_deadline_in(600ull * 1000 * MS);

	return a->send ? kn_chan_send_until(a->ch, &a->val, d)
		       : kn_chan_recv_until(a->ch, &a->val, d);
}

/* A far deadline: the partner, not the clock, completes the operation. */
Test(chan, until_completes_with_partner)
{
	size_t cap;

	for (cap = 0; cap < 2; cap++) {
		kn_chan *ch = kt_chan(8, cap);
		struct until_op r = { ch, -1, 0 }, s = { ch, 77, 1 };
		struct kt_thread t;

		kt_spawn(&t, until_op, &r);
		cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
		kt_put(ch, 5);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(r.val, 5);

		if (cap)
			kt_put(ch, 6); /* full: the next send must wait */
		kt_spawn(&t, until_op, &s);
		cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1));
		if (cap)
			cr_expect_eq(kt_get(ch), 6);
		cr_expect_eq(kt_get(ch), 77);
		cr_expect_eq(kt_join(&t), 0);
		kn_chan_free(ch);
	}
}

/* Timeouts racing with hand-offs: a sender that retries on ETIMEDOUT
 * with tiny deadlines. Had a timed-out send delivered its value anyway,
 * the receiver would see it twice; had a successful one lost it, never. */
struct retry_sender {
	kn_chan *ch;
	int64_t n;
	uint64_t timeouts;
};

static int send_with_retries(void *p)
{
	struct retry_sender *a = p;
	uint64_t rng = 12345;
	int64_t i;
	int r;

	for (i = 0; i < a->n; i++) {
		do {
			r = kn_chan_send_until(a->ch, &i,
					       kn_deadline_in(kt_rand(&rng) % 20000));
			a->timeouts += r == ETIMEDOUT;
		} while (r == ETIMEDOUT);
		if (r)
			return r;
	}
	return kn_chan_close(a->ch);
}

Test(chan, until_timeouts_never_lose_or_duplicate)
{
	size_t cap;

	for (cap = 0; cap < 3; cap += 2) {
		struct retry_sender a = { kt_chan(8, cap), 20000, 0 };
		struct kt_thread t;
		uint64_t rng = 777;
		int64_t v, want = 0;
		int r;

		kt_spawn(&t, send_with_retries, &a);
		for (;;) {
			r = kn_chan_recv_until(a.ch, &v,
					       kn_deadline_in(kt_rand(&rng) % 20000));
			if (r == ETIMEDOUT)
				continue;
			if (r)
				break;
			cr_assert_eq(v, want, "cap %zu: got %ld, want %ld", cap,
				     (long)v, (long)want);
			want++;
		}
		cr_expect_eq(r, EPIPE);
		cr_expect_eq(want, a.n, "cap %zu: %ld of %ld values arrived", cap,
			     (long)want, (long)a.n);
		cr_expect_eq(kt_join(&t), 0);
		kn_chan_free(a.ch);
	}
}

/* Wait until the oldest operation of kind queued on ch is asleep: past the
 * re-check after which only a partner decides it. False if t returned
 * instead. */
static bool wait_asleep(kn_chan *ch, int kind, struct kt_thread *t)
{
	struct waitq *q = kind == KN_SEND ? &ch->sendq : &ch->recvq;
	bool asleep;

	for (;;) {
		waitq_lock(q);
		asleep = q->head && at_load_acquire(&q->head->w->sel) == SEL_PARKED;
		waitq_unlock(q);
		if (asleep)
			return true;
		if (kt_done(t))
			return false;
		kt_pause();
	}
}

/* A receive that frees a slot of a full ring completes the oldest waiting
 * send (chan.c, ring_hand_off): the sender's value is in the ring when the
 * receive returns, before the sender has run again, and its call returns
 * 0. */
Test(chan, recv_from_full_ring_completes_a_waiting_send)
{
	kn_chan *ch = kt_chan(8, 1);
	struct kt_thread t;
	struct kt_op op = { ch, 7 };

	kt_put(ch, 6);
	kt_spawn(&t, kt_send, &op);
	cr_assert(wait_asleep(ch, KN_SEND, &t), "sender did not block");
	cr_expect_eq(kt_get(ch), 6);
	cr_expect_eq(kn_chan_len(ch), 1, "the waiting send was not completed");
	cr_expect_eq(kt_queued(ch, KN_SEND), 0);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(kt_get(ch), 7);
	kn_chan_free(ch);
}

/* And a send that fills a slot of an empty ring completes the oldest
 * waiting receive: the value has left the ring when the send returns,
 * before the receiver has run again, and the receive returns it. */
Test(chan, send_to_empty_ring_completes_a_waiting_receive)
{
	kn_chan *ch = kt_chan(8, 1);
	struct kt_thread t;
	struct kt_op op = { ch, 0 };

	kt_spawn(&t, kt_recv, &op);
	cr_assert(wait_asleep(ch, KN_RECV, &t), "receiver did not block");
	kt_put(ch, 6);
	cr_expect_eq(kn_chan_len(ch), 0, "the waiting receive was not completed");
	cr_expect_eq(kt_queued(ch, KN_RECV), 0);
	kt_put(ch, 7);
	cr_expect_eq(kt_join(&t), 0);
	cr_expect_eq(op.val, 6);
	cr_expect_eq(kt_get(ch), 7);
	kn_chan_free(ch);
}

/* ---- close --------------------------------------------------------------- */

Test(chan, close_semantics)
{
	size_t cap;
	int64_t v, two[2] = { 8, 9 };
	size_t n;

	for (cap = 0; cap < 4; cap += 3) {
		kn_chan *ch = kt_chan(8, cap);

		if (cap) {
			kt_put(ch, 1);
			kt_put(ch, 2);
		}
		cr_expect_eq(kn_chan_close(ch), 0);
		cr_expect_eq(kn_chan_close(ch), EPIPE, "second close");
		cr_expect(kn_chan_is_closed(ch));
		cr_expect_eq(kn_chan_send(ch, &v), EPIPE);
		cr_expect_eq(kn_chan_try_send(ch, &v), EPIPE);
		cr_expect_eq(kn_chan_send_until(ch, &v, 0), EPIPE);
		cr_expect_eq(kn_chan_send_until(ch, &v, KN_FOREVER), EPIPE);
		cr_expect_eq(kn_chan_send_ctx(ch, &v, NULL), EPIPE);
		n = 5;
		cr_expect_eq(kn_chan_send_batch(ch, two, 2, &n, KN_FOREVER, NULL), EPIPE);
		cr_expect_eq(n, 0);
		if (cap) {
			cr_expect_eq(kn_chan_len(ch), 2, "a send after close went in");
			cr_expect_eq(kt_get(ch), 1);
			cr_expect_eq(kn_chan_try_recv(ch, &v), 0);
			cr_expect_eq(v, 2);
		}
		cr_expect_eq(kn_chan_recv(ch, &v), EPIPE);
		cr_expect_eq(kn_chan_try_recv(ch, &v), EPIPE);
		cr_expect_eq(kn_chan_recv_until(ch, &v, 0), EPIPE);
		cr_expect_eq(kn_chan_recv_until(ch, &v, KN_FOREVER), EPIPE);
		cr_expect_eq(kn_chan_recv_ctx(ch, &v, NULL), EPIPE);
		n = 5;
		cr_expect_eq(kn_chan_recv_batch(ch, two, 2, &n, KN_FOREVER, NULL), EPIPE);
		cr_expect_eq(n, 0);
		cr_expect_eq(kn_chan_close(ch), EPIPE);
		kn_chan_free(ch);
	}
}

Test(chan, try_send_on_full_closed_is_epipe)
{
	kn_chan *ch = kt_chan(8, 2);

	kt_put(ch, 1);
	kt_put(ch, 2);
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 3 }), EPIPE);
	cr_expect_eq(kn_chan_send_until(ch, &(int64_t){ 3 }, 0), EPIPE);
	kn_chan_free(ch);
}

/* Each blocking form, on its own thread, ends on close. */
struct blocked_op {
	kn_chan *ch;
	int form;
	int64_t val[2];
	size_t count;
};

#define FORMS 4

static int blocked_send(void *p)
{
	struct blocked_op *a = p;

	switch (a->form) {
	case 0:
		return kn_chan_send(a->ch, &a->val[0]);
	case 1:
		return kn_chan_send_until(a->ch, &a->val[0], KN_FOREVER);
	case 2:
		return kn_chan_send_ctx(a->ch, &a->val[0], NULL);
	default:
		return kn_chan_send_batch(a->ch, a->val, 2, &a->count, KN_FOREVER, NULL);
	}
}

static int blocked_recv(void *p)
{
	struct blocked_op *a = p;

	switch (a->form) {
	case 0:
		return kn_chan_recv(a->ch, &a->val[0]);
	case 1:
		return kn_chan_recv_until(a->ch, &a->val[0], KN_FOREVER);
	case 2:
		return kn_chan_recv_ctx(a->ch, &a->val[0], NULL);
	default:
		return kn_chan_recv_batch(a->ch, a->val, 2, &a->count, KN_FOREVER, NULL);
	}
}

static void close_wakes(size_t cap, int kind)
{
	kn_chan *ch = kt_chan(8, cap);
	struct blocked_op ops[FORMS];
	struct kt_thread t[FORMS];
	size_t i;

	if (kind == KN_SEND)
		for (i = 0; i < cap; i++)
			kt_put(ch, 100 + (int64_t)i);
	for (i = 0; i < FORMS; i++) {
		ops[i] = (struct blocked_op){ ch, (int)i, { -1, -1 }, 99 };
		kt_spawn(&t[i], kind == KN_SEND ? blocked_send : blocked_recv, &ops[i]);
	}
	cr_assert(kt_wait_queued(ch, kind, FORMS, t, FORMS),
		  "cap %zu: an operation returned instead of blocking", cap);
	cr_assert_eq(kn_chan_close(ch), 0);
	for (i = 0; i < FORMS; i++)
		cr_expect_eq(kt_join(&t[i]), EPIPE, "cap %zu form %zu", cap, i);
	cr_expect_eq(ops[FORMS - 1].count, 0, "batch count");
	/* Receivers still get what was buffered before the close. */
	if (kind == KN_SEND)
		for (i = 0; i < cap; i++)
			cr_expect_eq(kt_get(ch), 100 + (int64_t)i);
	cr_expect_eq(kn_chan_recv(ch, &ops[0].val[0]), EPIPE);
	cr_expect_eq(kt_queued(ch, KN_SEND) + kt_queued(ch, KN_RECV), 0);
	kn_chan_free(ch);
}

Test(chan, close_wakes_blocked_receivers)
{
	close_wakes(0, KN_RECV);
	close_wakes(1, KN_RECV);
	close_wakes(4, KN_RECV);
}

Test(chan, close_wakes_blocked_senders)
{
	close_wakes(0, KN_SEND);
	close_wakes(1, KN_SEND);
	close_wakes(2, KN_SEND);
}

/*
 * Close racing with busy senders and receivers: a send that returned 0
 * delivered its value exactly once, one that returned EPIPE delivered
 * nothing. Each sender sends 0, 1, 2, ... until EPIPE, so what arrives
 * from it must be exactly 0 .. sent-1. One sender and one receiver use
 * select instead of the plain calls.
 */
#define CR_SENDERS 3
#define CR_RECEIVERS 2
#define CR_MAX 1000000

struct close_race {
	kn_chan *ch;
	atomic_long received;
	atomic_uchar *seen; /* [CR_SENDERS][CR_MAX] */
	atomic_int errors;
};

struct cr_arg {
	struct close_race *r;
	int64_t id;
	int64_t sent;
	bool by_select;
};

static int cr_send(struct cr_arg *a, int64_t v)
{
	struct kn_case c = { a->r->ch, KN_SEND, &v };
	size_t fired;

	if (a->by_select)
		return kn_select(&c, 1, 0, KN_FOREVER, NULL, &fired);
	return kn_chan_send(a->r->ch, &v);
}

static int cr_sender(void *p)
{
	struct cr_arg *a = p;
	int r;

	while (a->sent < CR_MAX && (r = cr_send(a, a->id * CR_MAX + a->sent)) == 0)
		a->sent++;
	return a->sent < CR_MAX && r == EPIPE ? 0 : -1;
}

static int cr_receiver(void *p)
{
	struct cr_arg *a = p;
	struct close_race *r = a->r;
	int64_t v;
	struct kn_case c = { r->ch, KN_RECV, &v };
	size_t fired;
	int st;

	for (;;) {
		st = a->by_select ? kn_select(&c, 1, 0, KN_FOREVER, NULL, &fired)
				  : kn_chan_recv(r->ch, &v);
		if (st)
			return st == EPIPE ? 0 : -1;
		if (v < 0 || v >= CR_SENDERS * CR_MAX || atomic_fetch_add(&r->seen[v], 1))
			atomic_fetch_add(&r->errors, 1);
		atomic_fetch_add(&r->received, 1);
	}
}

Test(chan, close_races_exactly_once)
{
	static const size_t caps[] = { 0, 1, 4 };
	struct close_race r;
	struct cr_arg s[CR_SENDERS], c[CR_RECEIVERS];
	struct kt_thread st[CR_SENDERS], ct[CR_RECEIVERS];
	size_t k;
	int64_t i, j;

	r.seen = calloc(CR_SENDERS * (size_t)CR_MAX, 1);
	cr_assert(r.seen);
	for (k = 0; k < 3; k++) {
		r.ch = kt_chan(8, caps[k]);
		atomic_init(&r.received, 0);
		atomic_init(&r.errors, 0);
		memset((void *)r.seen, 0, CR_SENDERS * (size_t)CR_MAX);
		for (i = 0; i < CR_RECEIVERS; i++) {
			c[i] = (struct cr_arg){ &r, i, 0, i == 0 };
			kt_spawn(&ct[i], cr_receiver, &c[i]);
		}
		for (i = 0; i < CR_SENDERS; i++) {
			s[i] = (struct cr_arg){ &r, i, 0, i == 0 };
			kt_spawn(&st[i], cr_sender, &s[i]);
		}
		/* Close in the middle of the traffic (when is not the point). */
		while (atomic_load(&r.received) < 3000)
			kt_pause();
		cr_assert_eq(kn_chan_close(r.ch), 0);
		for (i = 0; i < CR_SENDERS; i++)
			cr_expect_eq(kt_join(&st[i]), 0, "sender %ld", (long)i);
		for (i = 0; i < CR_RECEIVERS; i++)
			cr_expect_eq(kt_join(&ct[i]), 0, "receiver %ld", (long)i);
		cr_expect_eq(atomic_load(&r.errors), 0, "cap %zu: duplicates", caps[k]);
		for (i = 0; i < CR_SENDERS; i++)
			for (j = 0; j < s[i].sent + 2 && j < CR_MAX; j++)
				cr_assert_eq(atomic_load(&r.seen[i * CR_MAX + j]), j < s[i].sent,
					     "cap %zu: sender %ld value %ld: sent %d, arrived %d",
					     caps[k], (long)i, (long)j, j < s[i].sent,
					     atomic_load(&r.seen[i * CR_MAX + j]));
		kn_chan_free(r.ch);
	}
	free((void *)r.seen);
}

Test(chan, free_with_buffered_values)
{
	kn_chan *ch = kt_chan(24, 4);
	unsigned char v[24] = { 1 };

	cr_assert_eq(kn_chan_send(ch, v), 0);
	cr_assert_eq(kn_chan_send(ch, v), 0);
	kn_chan_free(ch); /* AddressSanitizer checks nothing leaks */
}

/* ---- batches --------------------------------------------------------------- */

Test(chan, send_batch_partial_on_timeout)
{
	kn_chan *ch = kt_chan(8, 4);
	int64_t in[10], out[10];
	size_t i, n = 99;

	for (i = 0; i < 10; i++)
		in[i] = (int64_t)i * 3;
	cr_expect_eq(kn_chan_send_batch(ch, in, 10, &n, kn_deadline_in(MS), NULL),
		     ETIMEDOUT);
	cr_expect_eq(n, 4);
	cr_expect_eq(kn_chan_recv_batch(ch, out, 10, &n, KN_FOREVER, NULL), 0);
	cr_assert_eq(n, 4);
	for (i = 0; i < 4; i++)
		cr_expect_eq(out[i], in[i]);
	cr_expect_eq(kn_chan_send_batch(ch, in, 0, &n, KN_FOREVER, NULL), 0);
	cr_expect_eq(n, 0);
	cr_expect_eq(kn_chan_send_batch(ch, in, 2, NULL, KN_FOREVER, NULL), 0);
	cr_expect_eq(kn_chan_len(ch), 2);
	kn_chan_free(ch);
}

struct batch_arg {
	kn_chan *ch;
	int64_t *vals;
	size_t n;
	size_t done;
	kn_ctx *ctx;
};

static int batch_sender(void *p)
{
	struct batch_arg *a = p;

	return kn_chan_send_batch(a->ch, a->vals, a->n, &a->done, KN_FOREVER, a->ctx);
}

Test(chan, send_batch_epipe_mid_batch)
{
	size_t cap;

	for (cap = 0; cap < 3; cap += 2) {
		int64_t vals[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
		struct batch_arg a = { kt_chan(8, cap), vals, 10, 99 };
		struct kt_thread t;
		size_t i;

		kt_spawn(&t, batch_sender, &a);
		/* Rendezvous: take three by hand, then the fourth send waits. */
		for (i = 0; i < (cap ? 0 : 3); i++)
			cr_expect_eq(kt_get(a.ch), (int64_t)i);
		/* Queued means everything before it went in. */
		cr_assert(kt_wait_queued(a.ch, KN_SEND, 1, &t, 1));
		cr_assert_eq(kn_chan_close(a.ch), 0);
		cr_expect_eq(kt_join(&t), EPIPE);
		cr_expect_eq(a.done, cap ? cap : 3);
		for (i = 0; i < cap; i++)
			cr_expect_eq(kt_get(a.ch), (int64_t)i);
		cr_expect_eq(kn_chan_recv(a.ch, &vals[0]), EPIPE);
		kn_chan_free(a.ch);
	}
}

Test(chan, recv_batch_takes_what_is_there)
{
	kn_chan *ch = kt_chan(8, 8);
	int64_t out[10];
	size_t i, n;

	for (i = 0; i < 5; i++)
		kt_put(ch, (int64_t)i);
	cr_expect_eq(kn_chan_recv_batch(ch, out, 2, &n, KN_FOREVER, NULL), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(out[0], 0);
	cr_expect_eq(out[1], 1);
	cr_expect_eq(kn_chan_recv_batch(ch, out, 10, &n, KN_FOREVER, NULL), 0);
	cr_expect_eq(n, 3);
	for (i = 0; i < 3; i++)
		cr_expect_eq(out[i], (int64_t)i + 2);
	/* Closed with values left: they come first, then EPIPE. */
	kt_put(ch, 50);
	kt_put(ch, 51);
	cr_assert_eq(kn_chan_close(ch), 0);
	cr_expect_eq(kn_chan_recv_batch(ch, out, 10, &n, KN_FOREVER, NULL), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(out[0], 50);
	cr_expect_eq(out[1], 51);
	n = 7;
	cr_expect_eq(kn_chan_recv_batch(ch, out, 10, &n, KN_FOREVER, NULL), EPIPE);
	cr_expect_eq(n, 0);
	kn_chan_free(ch);
}

static int batch_receiver(void *p)
{
	struct batch_arg *a = p;

	return kn_chan_recv_batch(a->ch, a->vals, a->n, &a->done, KN_FOREVER, a->ctx);
}

Test(chan, recv_batch_waits_for_the_first_value)
{
	size_t cap;

	for (cap = 0; cap < 5; cap += 4) {
		int64_t out[4] = { -1, -1, -1, -1 };
		struct batch_arg a = { kt_chan(8, cap), out, 4, 99 };
		struct kt_thread t;

		kt_spawn(&t, batch_receiver, &a);
		cr_assert(kt_wait_queued(a.ch, KN_RECV, 1, &t, 1));
		kt_put(a.ch, 11);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(a.done, 1);
		cr_expect_eq(out[0], 11);
		cr_expect_eq(out[1], -1, "wrote past the values it reported");
		kn_chan_free(a.ch);
	}
}

/* A whole stream in batches, both sides: order and count survive. */
Test(chan, batches_stream_in_order)
{
	static const size_t caps[] = { 0, 1, 3, 64 };
	size_t c, i, n, got;

	for (c = 0; c < 4; c++) {
		int64_t *vals = malloc(5000 * sizeof(*vals)), out[7];
		struct batch_arg a = { kt_chan(8, caps[c]), vals, 5000, 0 };
		struct kt_thread t;
		int r;

		cr_assert(vals);
		for (i = 0; i < a.n; i++)
			vals[i] = (int64_t)i;
		kt_spawn(&t, batch_sender, &a);
		got = 0;
		while (got < a.n) {
			r = kn_chan_recv_batch(a.ch, out, 7, &n, KN_FOREVER, NULL);
			cr_assert_eq(r, 0);
			cr_assert(n >= 1 && n <= 7);
			for (i = 0; i < n; i++)
				cr_assert_eq(out[i], (int64_t)(got + i), "cap %zu", caps[c]);
			got += n;
		}
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(a.done, a.n);
		cr_expect_eq(kn_chan_try_recv(a.ch, out), EAGAIN);
		kn_chan_free(a.ch);
		free(vals);
	}
}

/* Batches from several threads at once, on small rings that wrap every
 * few batches: a batch claims its run of slots with one CAS, so a run
 * that overlapped another's would duplicate or lose values, and one
 * claimed out of order would break a producer's order. */
#define BM_PRODUCERS 3
#define BM_PER 20000

struct bm_side {
	kn_chan *ch;
	int id;
	_Atomic uint8_t *seen;   /* receivers: each value exactly once */
	long got;
	bool disorder;
};

static int bm_send(void *p)
{
	struct bm_side *s = p;
	int64_t buf[9];
	size_t i, k, sent = 0;

	while (sent < BM_PER) {
		k = 1 + (sent * 7 + (size_t)s->id) % 9;
		if (k > BM_PER - sent)
			k = BM_PER - sent;
		for (i = 0; i < k; i++)
			buf[i] = s->id * BM_PER + (int64_t)(sent + i);
		if (kn_chan_send_batch(s->ch, buf, k, NULL, KN_FOREVER, NULL))
			return 1;
		sent += k;
	}
	return 0;
}

static int bm_recv(void *p)
{
	struct bm_side *s = p;
	int64_t buf[9], last[BM_PRODUCERS] = { -1, -1, -1 }, v;
	size_t i, n, round = 0;

	while (kn_chan_recv_batch(s->ch, buf, 1 + round++ % 9, &n, KN_FOREVER,
				  NULL) == 0) {
		for (i = 0; i < n; i++) {
			v = buf[i];
			if (v / BM_PER >= BM_PRODUCERS || v <= last[v / BM_PER])
				s->disorder = true;
			else
				last[v / BM_PER] = v;
			atomic_fetch_add(&s->seen[v], 1);
			s->got++;
		}
	}
	return 0;
}

Test(chan, batches_mpmc_exactly_once_in_order)
{
	static const size_t caps[] = { 2, 5, 16 };
	size_t c, i;

	for (c = 0; c < 3; c++) {
		_Atomic uint8_t *seen = calloc(BM_PRODUCERS * BM_PER, 1);
		struct bm_side snd[BM_PRODUCERS], rcv[2];
		struct kt_thread ts[BM_PRODUCERS], tr[2];
		kn_chan *ch = kt_chan(8, caps[c]);
		long total = 0;

		cr_assert(seen);
		for (i = 0; i < 2; i++) {
			rcv[i] = (struct bm_side){ ch, (int)i, seen, 0, false };
			kt_spawn(&tr[i], bm_recv, &rcv[i]);
		}
		for (i = 0; i < BM_PRODUCERS; i++) {
			snd[i] = (struct bm_side){ ch, (int)i, NULL, 0, false };
			kt_spawn(&ts[i], bm_send, &snd[i]);
		}
		for (i = 0; i < BM_PRODUCERS; i++)
			cr_expect_eq(kt_join(&ts[i]), 0);
		kn_chan_close(ch);
		for (i = 0; i < 2; i++) {
			cr_expect_eq(kt_join(&tr[i]), 0);
			cr_expect(!rcv[i].disorder, "cap %zu: a producer's order broke", caps[c]);
			total += rcv[i].got;
		}
		cr_expect_eq(total, BM_PRODUCERS * BM_PER, "cap %zu", caps[c]);
		for (i = 0; i < BM_PRODUCERS * BM_PER; i++)
			cr_assert_eq(atomic_load(&seen[i]), 1, "cap %zu value %zu", caps[c], i);
		kn_chan_free(ch);
		free(seen);
	}
}

/* ---- wrap-around and order ---------------------------------------------- */

static const size_t wrap_caps[] = { 1, 2, 3, 7 };

Test(chan, wrap_around_many_laps)
{
	size_t c, lap, j;

	for (c = 0; c < 4; c++) {
		size_t cap = wrap_caps[c];
		kn_chan *ch = kt_chan(8, cap);
		int64_t next_in = 0, next_out = 0;

		/* Fill levels vary with the lap, so every slot meets every
		 * head/tail offset. */
		for (lap = 0; lap < 3000; lap++) {
			size_t k = 1 + (lap * 5) % cap;

			for (j = 0; j < k; j++, next_in++)
				cr_assert_eq(kn_chan_try_send(ch, &next_in), 0);
			cr_assert_eq(kn_chan_len(ch), k);
			if (k == cap)
				cr_assert_eq(kn_chan_try_send(ch, &next_in), EAGAIN);
			for (j = 0; j < k; j++)
				cr_assert_eq(kt_get(ch), next_out++, "cap %zu lap %zu", cap, lap);
			cr_assert_eq(kn_chan_len(ch), 0);
		}
		kn_chan_free(ch);
	}
}

Test(chan, wrap_around_two_threads)
{
	size_t c;
	int64_t i;

	for (c = 0; c < 4; c++) {
		struct kt_seq a = { kt_chan(8, wrap_caps[c]), 10000 };
		struct kt_thread t;

		kt_spawn(&t, kt_send_seq, &a);
		for (i = 0; i < a.n; i++)
			cr_assert_eq(kt_get(a.ch), i, "cap %zu", wrap_caps[c]);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(kn_chan_len(a.ch), 0);
		kn_chan_free(a.ch);
	}
}

/* P producers, C consumers, items tagged (producer, sequence): every
 * consumer sees each producer's sequence increase, and every item arrives
 * exactly once. */
#define FP_PRODUCERS 4
#define FP_CONSUMERS 3
#define FP_ITEMS 4000

struct fp_shared {
	kn_chan *ch;
	atomic_uint seen[FP_PRODUCERS * FP_ITEMS];
};

struct fp_arg {
	struct fp_shared *sh;
	uint64_t id;
};

static int fp_produce(void *p)
{
	struct fp_arg *a = p;
	uint64_t s, v;
	int r;

	for (s = 0; s < FP_ITEMS; s++) {
		v = a->id << 32 | s;
		if ((r = kn_chan_send(a->sh->ch, &v)) != 0)
			return r;
	}
	return 0;
}

static int fp_consume(void *p)
{
	struct fp_arg *a = p;
	int64_t last[FP_PRODUCERS];
	uint64_t v, who, seq;
	int bad = 0, r;

	for (who = 0; who < FP_PRODUCERS; who++)
		last[who] = -1;
	while ((r = kn_chan_recv(a->sh->ch, &v)) == 0) {
		who = v >> 32;
		seq = v & 0xffffffffu;
		if (who >= FP_PRODUCERS || seq >= FP_ITEMS || (int64_t)seq <= last[who]) {
			bad++;
			continue;
		}
		last[who] = (int64_t)seq;
		atomic_fetch_add(&a->sh->seen[who * FP_ITEMS + seq], 1);
	}
	return r == EPIPE ? bad : -1;
}

Test(chan, fifo_per_producer)
{
	static const size_t caps[] = { 0, 1, 8 };
	struct fp_shared *sh = malloc(sizeof(*sh));
	struct fp_arg pa[FP_PRODUCERS], ca[FP_CONSUMERS];
	struct kt_thread pt[FP_PRODUCERS], ct[FP_CONSUMERS];
	size_t c, i;

	cr_assert(sh);
	for (c = 0; c < 3; c++) {
		sh->ch = kt_chan(8, caps[c]);
		for (i = 0; i < FP_PRODUCERS * FP_ITEMS; i++)
			atomic_init(&sh->seen[i], 0);
		for (i = 0; i < FP_CONSUMERS; i++) {
			ca[i] = (struct fp_arg){ sh, i };
			kt_spawn(&ct[i], fp_consume, &ca[i]);
		}
		for (i = 0; i < FP_PRODUCERS; i++) {
			pa[i] = (struct fp_arg){ sh, i };
			kt_spawn(&pt[i], fp_produce, &pa[i]);
		}
		for (i = 0; i < FP_PRODUCERS; i++)
			cr_expect_eq(kt_join(&pt[i]), 0);
		cr_assert_eq(kn_chan_close(sh->ch), 0);
		for (i = 0; i < FP_CONSUMERS; i++)
			cr_expect_eq(kt_join(&ct[i]), 0, "cap %zu: consumer %zu saw disorder",
				     caps[c], i);
		for (i = 0; i < FP_PRODUCERS * FP_ITEMS; i++)
			cr_assert_eq(atomic_load(&sh->seen[i]), 1,
				     "cap %zu: item %zu arrived %u times", caps[c], i,
				     atomic_load(&sh->seen[i]));
		kn_chan_free(sh->ch);
	}
	free(sh);
}

/* ---- the fast path -------------------------------------------------------- */

Test(chan, fast_path_allocates_and_sleeps_nothing)
{
	kn_chan *ch = kt_chan(8, 16);
	int64_t i, v, batch[4] = { 1, 2, 3, 4 };
	uint64_t allocs, calls;
	size_t n;

	/* Warm up once: first calls may cache process-wide facts. */
	cr_assert_eq(kn_chan_send(ch, &(int64_t){ 0 }), 0);
	cr_assert_eq(kn_chan_recv(ch, &v), 0);
	allocs = kn_stat_allocs();
	calls = kn_stat_syscalls();
	for (i = 0; i < 10000; i++) {
		cr_assert_eq(kn_chan_try_send(ch, &i), 0);
		cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
		cr_assert_eq(v, i);
	}
	for (i = 0; i < 16; i++)
		cr_assert_eq(kn_chan_try_send(ch, &i), 0);
	cr_assert_eq(kn_chan_try_send(ch, &i), EAGAIN);
	for (i = 0; i < 16; i++)
		cr_assert_eq(kn_chan_try_recv(ch, &v), 0);
	cr_assert_eq(kn_chan_try_recv(ch, &v), EAGAIN);
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(kn_chan_send(ch, &i), 0);
		cr_assert_eq(kn_chan_send_until(ch, &i, 0), 0);
		cr_assert_eq(kn_chan_send_ctx(ch, &i, NULL), 0);
		cr_assert_eq(kn_chan_recv(ch, &v), 0);
		cr_assert_eq(kn_chan_recv_until(ch, &v, 0), 0);
		cr_assert_eq(kn_chan_recv_ctx(ch, &v, NULL), 0);
		cr_assert_eq(kn_chan_send_batch(ch, batch, 4, &n, KN_FOREVER, NULL), 0);
		cr_assert_eq(kn_chan_recv_batch(ch, batch, 4, &n, KN_FOREVER, NULL), 0);
		cr_assert_eq(n, 4);
	}
	cr_expect_eq(kn_stat_allocs(), allocs, "the fast path allocated");
	cr_expect_eq(kn_stat_syscalls(), calls, "the fast path made system calls");
	kn_chan_free(ch);
}

/* ---- NULL contexts --------------------------------------------------------- */

struct ctx_op {
	kn_chan *ch;
	int64_t val;
};

static int recv_ctx_null(void *p)
{
	struct ctx_op *a = p;

	return kn_chan_recv_ctx(a->ch, &a->val, NULL);
}

static int send_ctx_null(void *p)
{
	struct ctx_op *a = p;

	return kn_chan_send_ctx(a->ch, &a->val, NULL);
}

Test(chan, null_ctx_behaves_like_plain)
{
	size_t cap;
	int64_t v;

	for (cap = 0; cap < 2; cap++) {
		kn_chan *ch = kt_chan(8, cap);
		struct ctx_op r = { ch, -1 }, s = { ch, 9 };
		struct kt_thread t;

		kt_spawn(&t, recv_ctx_null, &r);
		cr_assert(kt_wait_queued(ch, KN_RECV, 1, &t, 1));
		cr_expect_eq(kn_chan_send_ctx(ch, &(int64_t){ 8 }, NULL), 0);
		cr_expect_eq(kt_join(&t), 0);
		cr_expect_eq(r.val, 8);

		if (cap)
			kt_put(ch, 1);
		kt_spawn(&t, send_ctx_null, &s);
		cr_assert(kt_wait_queued(ch, KN_SEND, 1, &t, 1));
		if (cap) {
			cr_expect_eq(kn_chan_recv_ctx(ch, &v, NULL), 0);
			cr_expect_eq(v, 1);
		}
		cr_expect_eq(kn_chan_recv_ctx(ch, &v, NULL), 0);
		cr_expect_eq(v, 9);
		cr_expect_eq(kt_join(&t), 0);

		cr_assert_eq(kn_chan_close(ch), 0);
		cr_expect_eq(kn_chan_send_ctx(ch, &v, NULL), EPIPE);
		cr_expect_eq(kn_chan_recv_ctx(ch, &v, NULL), EPIPE);
		kn_chan_free(ch);
	}
}

/* ---- cancelled contexts --------------------------------------------------- */

static kn_ctx *cancelled_ctx(void)
{
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);

	cr_assert_not_null(ctx);
	cr_assert_eq(kn_ctx_cancel(ctx, 0, NULL), 0);
	return ctx;
}

/* Cancellation is checked before anything else: it fails even when the
 * operation could complete at once, and moves nothing. */
Test(chan, cancelled_ctx_fails_even_when_ready)
{
	kn_ctx *ctx = cancelled_ctx();
	kn_chan *ch = kt_chan(8, 2), *zero = kt_chan(8, 0);
	struct kt_op op = { zero, 3 };
	struct kt_thread t;
	int64_t v = -1, two[2] = { 1, 2 };
	size_t n = 9;

	kt_put(ch, 5);
	cr_expect_eq(kn_chan_send_ctx(ch, &v, ctx), ECANCELED, "room, but cancelled");
	cr_expect_eq(kn_chan_recv_ctx(ch, &v, ctx), ECANCELED, "a value, but cancelled");
	cr_expect_eq(v, -1);
	cr_expect_eq(kn_chan_send_batch(ch, two, 1, &n, KN_FOREVER, ctx), ECANCELED);
	cr_expect_eq(n, 0);
	n = 9;
	cr_expect_eq(kn_chan_recv_batch(ch, two, 2, &n, KN_FOREVER, ctx), ECANCELED);
	cr_expect_eq(n, 0);
	cr_expect_eq(kn_chan_len(ch), 1);

	kt_spawn(&t, kt_send, &op);
	cr_assert(kt_wait_queued(zero, KN_SEND, 1, &t, 1));
	cr_expect_eq(kn_chan_recv_ctx(zero, &v, ctx), ECANCELED, "a partner, but cancelled");
	cr_expect_eq(v, -1);
	cr_expect_not(kt_done(&t));
	cr_expect_eq(kt_get(zero), 3);
	cr_expect_eq(kt_join(&t), 0);
	kn_chan_free(ch);
	kn_chan_free(zero);
	kn_ctx_release(ctx);
}

struct ctx_blocked {
	kn_chan *ch;
	kn_ctx *ctx;
	int kind;
	int64_t val;
};

static int op_with_ctx(void *p)
{
	struct ctx_blocked *a = p;

	return a->kind == KN_SEND ? kn_chan_send_ctx(a->ch, &a->val, a->ctx)
				  : kn_chan_recv_ctx(a->ch, &a->val, a->ctx);
}

/* Cancelling wakes a blocked operation, which then moved nothing. */
static void cancel_wakes(size_t cap, int kind)
{
	kn_ctx *ctx = kn_ctx_with_cancel(NULL);
	kn_chan *ch = kt_chan(8, cap);
	struct ctx_blocked a = { ch, ctx, kind, kind == KN_SEND ? 50 : -1 };
	struct kt_thread t;
	int64_t v;

	cr_assert_not_null(ctx);
	if (kind == KN_SEND && cap)
		kt_put(ch, 1);
	kt_spawn(&t, op_with_ctx, &a);
	cr_assert(kt_wait_queued(ch, kind, 1, &t, 1), "cap %zu: did not block", cap);
	cr_assert_eq(kn_ctx_cancel(ctx, 0, NULL), 0);
	cr_expect_eq(kt_join(&t), ECANCELED, "cap %zu kind %d", cap, kind);
	cr_expect_eq(kt_queued(ch, kind), 0);
	if (kind == KN_SEND) {
		if (cap)
			cr_expect_eq(kt_get(ch), 1);
		cr_expect_eq(kn_chan_try_recv(ch, &v), EAGAIN, "a cancelled send delivered");
	} else {
		cr_expect_eq(a.val, -1);
		if (cap) {
			kt_put(ch, 2);
			cr_expect_eq(kt_get(ch), 2, "a cancelled receive took a value");
		} else {
			cr_expect_eq(kn_chan_try_send(ch, &(int64_t){ 2 }), EAGAIN,
				     "a cancelled receive still takes values");
		}
	}
	kn_chan_free(ch);
	kn_ctx_release(ctx);
}

Test(chan, cancel_wakes_blocked_operations)
{
	cancel_wakes(0, KN_RECV);
	cancel_wakes(0, KN_SEND);
	cancel_wakes(1, KN_RECV);
	cancel_wakes(1, KN_SEND);
}

Test(chan, cancel_mid_batch_reports_the_count)
{
	int64_t vals[6] = { 0, 1, 2, 3, 4, 5 };
	struct batch_arg a = { kt_chan(8, 2), vals, 6, 99, kn_ctx_with_cancel(NULL) };
	struct kt_thread t;

	cr_assert_not_null(a.ctx);
	kt_spawn(&t, batch_sender, &a);
	cr_assert(kt_wait_queued(a.ch, KN_SEND, 1, &t, 1));
	cr_assert_eq(kn_ctx_cancel(a.ctx, 0, NULL), 0);
	cr_expect_eq(kt_join(&t), ECANCELED);
	cr_expect_eq(a.done, 2);
	cr_expect_eq(kt_get(a.ch), 0);
	cr_expect_eq(kt_get(a.ch), 1);
	cr_expect_eq(kn_chan_try_recv(a.ch, vals), EAGAIN);
	kn_chan_free(a.ch);
	kn_ctx_release(a.ctx);
}

/* kn_chan_stats: values in and out, and the waits, on both flavours. */
static void stats_of(kn_chan *ch, int64_t sends, int64_t recvs)
{
	struct kn_chan_stats s;

	cr_assert_eq(kn_chan_stats(ch, &s), 0);
	cr_expect_eq(s.sends, (uint64_t)sends);
	cr_expect_eq(s.recvs, (uint64_t)recvs);
}

Test(chan, stats_count_values_and_waits)
{
	size_t caps[] = { 3, 0 };

	for (size_t c = 0; c < 2; c++) {
		kn_chan *ch = kt_chan(8, caps[c]);
		struct blocked_op a[2] = { { .ch = ch }, { .ch = ch } };
		struct kt_thread t[2];
		struct kn_chan_stats s;
		int64_t i;

		cr_assert_eq(kn_chan_stats(NULL, &s), EINVAL);
		cr_assert_eq(kn_chan_stats(ch, NULL), EINVAL);
		stats_of(ch, 0, 0);
		/* Two receivers wait on an empty channel. */
		kt_spawn(&t[0], blocked_recv, &a[0]);
		kt_spawn(&t[1], blocked_recv, &a[1]);
		cr_assert(kt_wait_queued(ch, KN_RECV, 2, t, 2));
		kt_put(ch, 1);
		kt_put(ch, 2);
		cr_assert_eq(kt_join(&t[0]), 0);
		cr_assert_eq(kt_join(&t[1]), 0);
		stats_of(ch, 2, 2);
		cr_assert_eq(kn_chan_stats(ch, &s), 0);
		cr_expect_geq(s.recv_waits, 2);
		cr_expect_eq(s.peak_recv_waiters, 2);
		cr_expect_eq(s.send_waits, 0);
		/* Buffered only: values in, some out, around the ring's end. */
		for (i = 0; i < (int64_t)caps[c] * 5; i++) {
			kt_put(ch, i);
			cr_assert_eq(kt_get(ch), i);
		}
		stats_of(ch, 2 + (int64_t)caps[c] * 5, 2 + (int64_t)caps[c] * 5);
		if (caps[c]) {
			kt_put(ch, 7);
			kt_put(ch, 8);
			stats_of(ch, 2 + 15 + 2, 2 + 15);
		}
		kn_chan_free(ch);
	}
}

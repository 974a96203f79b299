/*
 * kanal/chan.h - Go channels for C: bounded MPMC, rendezvous, select.
 *
 * A channel carries fixed-size values, copied in on send and out on
 * receive. Capacity n > 0 is a bounded FIFO ring (lock-free on the data
 * path: a send or receive that does not have to wait is a few atomic
 * operations, no allocation, no system call). Capacity 0 is a rendezvous:
 * a send completes only once a receiver has taken the value (Go's
 * unbuffered channel).
 *
 * Return values: 0 on success, or
 *   EAGAIN     the try_ form would have to wait
 *   ETIMEDOUT  the deadline passed first (a deadline already passed behaves
 *              as a try_ form that reports ETIMEDOUT)
 *   ECANCELED  the context was cancelled first (checked right after the
 *              arguments: an already-cancelled context always fails, even
 *              when the operation could complete)
 *   EPIPE      send: the channel is closed; receive: closed and drained
 *              (every receive form, select's too, then stores the zero
 *              value, elem_size zero bytes, as Go's receive yields)
 *   EINVAL     a NULL channel or buffer, or a bad argument
 *
 * Cancellation and deadlines versus completion: an operation either
 * completes (the value moved exactly once) and returns 0, or fails and
 * moved nothing. When a value arrives at the same time as the deadline or
 * the cancellation, whichever is decided first wins; no value is ever lost
 * or duplicated. Cancellation first: a call waiting when kn_ctx_cancel
 * runs fails with ECANCELED, even if a partner comes right after
 * kn_ctx_cancel returned (Go's select takes ctx.Done there).
 *
 * Close (Go's close): only a sender closes. Afterwards sends fail with
 * EPIPE, receivers get what is still buffered, then EPIPE. Close wakes every
 * blocked sender and receiver.
 *
 * Concurrency: every call except kn_chan_free may run concurrently with any
 * other call on the same channel, from any number of threads. kn_chan_free
 * requires that no other call on the channel is running or will start.
 * Breaking that is undefined in Release (a call waiting on a freed channel
 * sleeps for ever; a call on a freed channel reads freed memory and may
 * spin for ever); a Debug build aborts with a message naming the misuse,
 * when the memory has not been reused yet.
 *
 * Signals: no kanal call is async-signal-safe, the try_ forms included (a
 * try_ that moves a value wakes waiters under a lock that the interrupted
 * code may hold: the handler would wait for it for ever). The pure reads
 * are safe: kn_chan_len, kn_chan_cap, kn_chan_elem_size, kn_chan_is_closed,
 * kn_sem_available, kn_sem_size, kn_ctx_err, kn_ctx_done. A handler should
 * write to a pipe or eventfd (or a thread should use sigwait or signalfd)
 * and leave the kanal call to a thread. A Debug build aborts with a message
 * when a handler's call asks for a lock its thread holds, or waits inside
 * a wait of its thread.
 *
 * Memory orders: a successful send happens-before the receive that gets
 * its value (release/acquire on the slot stamp); close happens-before every
 * EPIPE it causes.
 *
 * Synchronization table
 *
 *   call                      may run concurrently with   blocks   cost when it need not wait
 *   kn_chan_new               anything (a new channel)    no       one allocation (+ the ring)
 *   kn_chan_free              nothing on the channel      no       frees; closes its fds
 *   send, recv (all forms),   everything but free         yes(1)   buffered: a few atomics,
 *   their sized forms                                              no lock; rendezvous: the
 *                                                                  channel lock, a hand-off
 *   try_send, try_recv        everything but free         no       the same
 *   send_batch, recv_batch    everything but free         yes(1)   one CAS per run of values
 *   kn_select                 everything but free         yes(1)   a try per case; waiting:
 *                                                                  a node per case (allocated
 *                                                                  above 16 cases)
 *   kn_chan_close             everything but free         no       one RMW (buffered) or the
 *                                                                  lock (rendezvous); wakes all
 *   len, cap, is_closed,      everything but free         no       loads only
 *   elem_size, stats
 *   kn_chan_fd                everything but free         no       first call: an eventfd
 *
 *   (1) through the waiter layer: a pool task suspends, a thread polls
 *       briefly, then sleeps on a futex; until the deadline or ctx.
 */
#ifndef KANAL_CHAN_H
#define KANAL_CHAN_H

#include "kanal/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_chan kn_chan;

/* The largest element size and the largest capacity of a channel. */
#define KN_CHAN_MAX ((size_t)1 << 40)

/*
 * New channel of values of elem_size bytes and the given capacity
 * (0 = rendezvous). NULL with errno EINVAL for elem_size 0 or a size that
 * overflows (elem_size * capacity, or elem_size or capacity above
 * KN_CHAN_MAX), ENOMEM.
 */
KN_API kn_chan *kn_chan_new(size_t elem_size, size_t capacity);

/* Free the channel and any values still buffered (values are plain bytes:
 * if they own memory, drain first). NULL is a no-op. No other call may be
 * running on ch. */
KN_API void kn_chan_free(kn_chan *ch);

/* Send a copy of elem_size bytes at elem. Blocking forms wait for room. */
KN_API int kn_chan_send(kn_chan *ch, const void *elem);
KN_API int kn_chan_try_send(kn_chan *ch, const void *elem);
KN_API int kn_chan_send_until(kn_chan *ch, const void *elem, uint64_t deadline);
KN_API int kn_chan_send_ctx(kn_chan *ch, const void *elem, kn_ctx *ctx);

/* Receive into out (elem_size bytes). */
KN_API int kn_chan_recv(kn_chan *ch, void *out);
KN_API int kn_chan_try_recv(kn_chan *ch, void *out);
KN_API int kn_chan_recv_until(kn_chan *ch, void *out, uint64_t deadline);
KN_API int kn_chan_recv_ctx(kn_chan *ch, void *out, kn_ctx *ctx);

/*
 * Batches. send_batch sends all n values of the array elems in order,
 * waiting as needed; *sent (may be NULL) gets how many went in; it returns 0
 * when all did, or EPIPE if the channel closed first. recv_batch waits for
 * at least one value, then takes up to n that are there without waiting;
 * *received gets how many; it returns 0, or EPIPE when the channel is closed
 * and drained. Both also take a deadline and a context (KN_FOREVER, NULL for
 * none): on ETIMEDOUT/ECANCELED the count says how many moved. On a
 * buffered channel a batch moves each run of values it finds (free slots,
 * or buffered values) with one atomic operation, as consecutive sends or
 * receives at that instant: batches cost less per value than single calls.
 */
KN_API int kn_chan_send_batch(kn_chan *ch, const void *elems, size_t n,
			      size_t *sent, uint64_t deadline, kn_ctx *ctx);
KN_API int kn_chan_recv_batch(kn_chan *ch, void *elems, size_t n,
			      size_t *received, uint64_t deadline, kn_ctx *ctx);

/* Close: 0, or EPIPE if already closed, EINVAL for NULL. Wait-free apart
 * from waking the blocked threads. */
KN_API int kn_chan_close(kn_chan *ch);

/*
 * Counters since the channel was made, on request. A snapshot: each field
 * is read on its own, and a send or receive in progress may be counted.
 *   sends, recvs     values that went in and came out (buffered: read from
 *                    the ring's positions; rendezvous: each hand-off counts
 *                    in both)
 *   send_waits, ...  times a send (receive), or a select case of that kind,
 *                    registered to wait: it found no room (no value, no
 *                    partner) and polling did not help
 *   peak_*_waiters   the most operations of that kind waiting at once
 * Free when not asked for on every path that does not wait: the ring keeps
 * its positions anyway, a rendezvous hand-off adds one plain increment on
 * the line it already holds, a wait one relaxed increment. 0 or EINVAL.
 */
struct kn_chan_stats {
	uint64_t sends, recvs;
	uint64_t send_waits, recv_waits;
	uint32_t peak_send_waiters, peak_recv_waiters;
};
KN_API int kn_chan_stats(const kn_chan *ch, struct kn_chan_stats *out);

/* Buffered values now (a snapshot), capacity, closed flag. 0/false for NULL. */
KN_API size_t kn_chan_len(const kn_chan *ch);
KN_API size_t kn_chan_cap(const kn_chan *ch);
KN_API bool kn_chan_is_closed(const kn_chan *ch);
KN_API size_t kn_chan_elem_size(const kn_chan *ch);

/* ---- select ------------------------------------------------------------ */

enum kn_case_op {
	KN_SEND = 1,
	KN_RECV = 2,
};

/*
 * One case of a select: a send of *val (KN_SEND) or a receive into *val
 * (KN_RECV) on ch. A NULL ch is never ready (Go's nil channel). The same
 * channel may appear in several cases.
 */
struct kn_case {
	kn_chan *ch;
	int op;
	void *val;
};

/* Flags of kn_select. */
#define KN_SELECT_DEFAULT 1u /* do not wait: EAGAIN if no case is ready */
#define KN_SELECT_BIASED 2u  /* take the first ready case in order, not a random one */

/* Cases handled without allocation; more are allowed (one allocation). */
#define KN_SELECT_STACK_CASES 16

/*
 * Go's select. Exactly one case fires: *fired gets its index and the call
 * returns that case's status: 0 (the value moved) or EPIPE (a receive case
 * on a channel closed and drained, a send case on a closed channel). With
 * no case fired it returns EAGAIN (KN_SELECT_DEFAULT), ETIMEDOUT (deadline),
 * ECANCELED (ctx), EINVAL (cases NULL with n > 0, a bad op, a NULL val on
 * a non-NULL channel) or ENOMEM (more than KN_SELECT_STACK_CASES cases and
 * no memory for them) and leaves *fired untouched. With n == 0 and no
 * default, it waits for the deadline or the context (Go's empty select).
 * Among ready cases it chooses uniformly at random, unless KN_SELECT_BIASED.
 */
KN_API int kn_select(const struct kn_case *cases, size_t n, unsigned flags,
		     uint64_t deadline, kn_ctx *ctx, size_t *fired);

/* ---- channels in an event loop --------------------------------------- */

/*
 * A file descriptor (eventfd) that is readable while the channel has a value
 * to receive or is closed (KN_RECV), or has room to send or is closed
 * (KN_SEND). Level-style: poll/epoll it with EPOLLIN, then try_recv/try_send
 * until EAGAIN; the descriptor is re-armed automatically. It may lag the
 * channel for a moment while another thread is updating it (a wake-up then
 * finds EAGAIN), but it never stays wrong: the last update of a change reads
 * the final state. The channel owns
 * the descriptor (closed by kn_chan_free); the first call creates it, later
 * calls return the same one. Only channels that ask for a descriptor pay
 * for it (one extra atomic load per operation otherwise).
 * Returns the fd, or -1 with errno (EINVAL, EMFILE, ENOMEM).
 */
KN_API int kn_chan_fd(kn_chan *ch, int op);

/* ---- size-checked calls ------------------------------------------------ */

/*
 * The single-value calls with the value's size checked against the
 * channel's element size: EINVAL (nothing moves) on a mismatch, so a
 * receive of an 8-byte channel into a 2-byte variable fails instead of
 * writing past it. The sending macros take the value itself (an lvalue:
 * its address is taken), the receiving ones a pointer to where it goes:
 *
 *	int64_t v = 7;
 *	kn_chan_sendv(ch, v);        // EINVAL unless the channel holds 8 bytes
 *	kn_chan_recvv(ch, &v);
 *
 * Each expands to one call of kn_chan_sized (arguments evaluated once),
 * which checks the size and then behaves exactly as the unchecked call of
 * the same name; the check costs one comparison and one more call.
 */
#define kn_chan_sendv(ch, v) kn_chan_sized((ch), KN_SEND, &(v), sizeof(v), KN_FOREVER, NULL)
#define kn_chan_try_sendv(ch, v) kn_chan_sized((ch), KN_SEND | KN_TRY, &(v), sizeof(v), 0, NULL)
#define kn_chan_sendv_until(ch, v, deadline) \
	kn_chan_sized((ch), KN_SEND, &(v), sizeof(v), (deadline), NULL)
#define kn_chan_sendv_ctx(ch, v, ctx) \
	kn_chan_sized((ch), KN_SEND, &(v), sizeof(v), KN_FOREVER, (ctx))
#define kn_chan_recvv(ch, p) kn_chan_sized((ch), KN_RECV, (p), sizeof(*(p)), KN_FOREVER, NULL)
#define kn_chan_try_recvv(ch, p) kn_chan_sized((ch), KN_RECV | KN_TRY, (p), sizeof(*(p)), 0, NULL)
#define kn_chan_recvv_until(ch, p, deadline) \
	kn_chan_sized((ch), KN_RECV, (p), sizeof(*(p)), (deadline), NULL)
#define kn_chan_recvv_ctx(ch, p, ctx) \
	kn_chan_sized((ch), KN_RECV, (p), sizeof(*(p)), KN_FOREVER, (ctx))

/* With KN_SEND or KN_RECV in kn_chan_sized: the try_ form. */
#define KN_TRY 4

/*
 * op KN_SEND or KN_RECV, optionally | KN_TRY: kn_chan_send_until (or
 * kn_chan_send_ctx with a context, whose deadline must then be
 * KN_FOREVER), kn_chan_try_send (deadline and ctx ignored), or the
 * receiving ones, on elem, if size equals the channel's element size;
 * EINVAL otherwise (or for a bad op). Concurrency and blocking as for the
 * call it stands for.
 */
KN_API int kn_chan_sized(kn_chan *ch, int op, const void *elem, size_t size,
			 uint64_t deadline, kn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif

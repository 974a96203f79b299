/*
 * fault_chan.c - allocation failures in channels: kn_chan_new (the channel,
 * the ring), kn_chan_fd (the descriptor record), kn_select with more cases
 * than KN_SELECT_STACK_CASES (its case array). See sweep.h.
 */
#include <poll.h>
#include <stdint.h>

#include "kanal/chan.h"
#include "sweep.h"

#define NCASES (KN_SELECT_STACK_CASES + 4)

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* kn_chan_fd: -1 with ENOMEM, and the channel is unharmed; a second call
 * (nothing fails twice in one run) then works. */
static int get_fd(kn_chan *ch, int op, int *fd)
{
	errno = 0;
	*fd = kn_chan_fd(ch, op);
	if (*fd < 0) {
		CHECK_NOMEM(errno);
		*fd = kn_chan_fd(ch, op);
		CHECK(*fd >= 0);
	}
	return 0;
}

/* A select over NCASES cases, one of them ready: 0, or ENOMEM with
 * nothing moved and *fired untouched. */
static int big_select(kn_chan *ch, kn_chan *other, bool ready)
{
	struct kn_case cases[NCASES];
	int64_t vals[NCASES];
	size_t i, fired = 12345, len = kn_chan_len(ch);
	int r;

	for (i = 0; i < NCASES; i++) {
		vals[i] = -1;
		cases[i] = (struct kn_case){ i == NCASES / 2 ? ch : other,
					     KN_RECV, &vals[i] };
	}
	r = kn_select(cases, NCASES, KN_SELECT_DEFAULT, 0, NULL, &fired);
	if (r == ENOMEM) {
		CHECK(fired == 12345);
		CHECK(kn_chan_len(ch) == len);
		r = kn_select(cases, NCASES, KN_SELECT_DEFAULT, 0, NULL, &fired);
	}
	if (!ready) {
		CHECK(r == EAGAIN);
		return 0;
	}
	CHECK(r == 0);
	CHECK(fired == NCASES / 2 && vals[fired] == 42);
	return 0;
}

static int scenario(void *arg)
{
	size_t cap = *(size_t *)arg;
	kn_chan *ch, *other;
	int64_t v = 42, got = 0;
	int rfd, sfd;

	errno = 0;
	ch = kn_chan_new(sizeof(int64_t), cap);
	if (!ch) {
		CHECK_NOMEM(errno);
		return 0;
	}
	other = kn_chan_new(sizeof(int64_t), 1);
	if (!other) {
		CHECK_NOMEM(errno);
		kn_chan_free(ch);
		return 0;
	}
	if (get_fd(ch, KN_RECV, &rfd) || get_fd(ch, KN_SEND, &sfd))
		return 1;
	CHECK(!readable(rfd));
	if (cap) {
		CHECK(readable(sfd));
		CHECK(kn_chan_send(ch, &v) == 0);
		CHECK(readable(rfd));
		if (big_select(ch, other, true))
			return 1;
		CHECK(kn_chan_send(ch, &v) == 0);
		CHECK(kn_chan_recv(ch, &got) == 0 && got == 42);
	} else {
		CHECK(kn_chan_try_send(ch, &v) == EAGAIN);
		if (big_select(ch, other, false))
			return 1;
	}
	CHECK(kn_chan_close(ch) == 0);
	CHECK(readable(rfd) && readable(sfd));
	CHECK(kn_chan_recv(ch, &got) == EPIPE);
	kn_chan_free(ch);
	kn_chan_free(other);
	return 0;
}

int main(void)
{
	size_t ring = 4, zero = 0;
	int bad = 0;

	bad |= sweep("chan: ring, fds, select", scenario, &ring);
	bad |= sweep("chan: rendezvous, fds, select", scenario, &zero);
	return bad;
}

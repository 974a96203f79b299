/*
 * test_task.c - task identity (kanal/pool.h): ids, names, and that both
 * follow a task across its suspensions and around a join that runs other
 * tasks on its stack.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <kanal/chan.h>
#include <kanal/pool.h>

#include "pool_helpers.h"

Test(task, none_outside_tasks)
{
	cr_assert_eq(kn_task_id(), 0);
	cr_assert_null(kn_task_name());
	cr_assert_eq(kn_task_set_name("x"), EINVAL);
	cr_assert_eq(kn_pool_spawn_named(NULL, "x", NULL, NULL), EINVAL);
	cr_assert_eq(kn_go_named("x", NULL, NULL), EINVAL);
}

/* Two tasks of one worker take turns through a rendezvous channel: each
 * suspension runs the other, and each must find its own identity back. */
struct turns {
	kn_chan *ch;
	uint64_t ids[2];
};

static void turn_taker(void *arg)
{
	struct turns *t = arg;
	int me = strcmp(kn_task_name(), "first") == 0 ? 0 : 1;
	uint64_t id = kn_task_id();
	int64_t v = 0;

	TASK_CHECK(id != 0);
	t->ids[me] = id;
	if (me == 1)
		TASK_CHECK(kn_task_set_name("second, renamed") == 0);
	for (int i = 0; i < 100; i++) {
		if ((i + me) % 2 == 0)
			TASK_CHECK(kn_chan_send(t->ch, &v) == 0);
		else
			TASK_CHECK(kn_chan_recv(t->ch, &v) == 0);
		TASK_CHECK(kn_task_id() == id);
		TASK_CHECK(strcmp(kn_task_name(), me ? "second, renamed" : "first") == 0);
	}
}

Test(task, identity_survives_suspension)
{
	kn_pool *p = pool_of(1, 0);
	struct turns t = { .ch = kn_chan_new(sizeof(int64_t), 0) };

	at_store_relaxed(&task_failures, 0);
	cr_assert_not_null(t.ch);
	cr_assert_eq(kn_pool_spawn_named(p, "first", turn_taker, &t), 0);
	cr_assert_eq(kn_pool_spawn_named(p, "second", turn_taker, &t), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	cr_assert_neq(t.ids[0], t.ids[1]);
	kn_pool_free(p);
	kn_chan_free(t.ch);
}

/* A join that helps runs the joined task inside the joiner's frame. */
static void child(void *arg)
{
	*(uint64_t *)arg = kn_task_id();
	TASK_CHECK(strcmp(kn_task_name(), "") == 0);
}

static void parent(void *arg)
{
	uint64_t *ids = arg, me = kn_task_id();
	kn_task *t = kn_pool_spawn_task(kn_pool_current(), child, &ids[1]);

	TASK_CHECK(t != NULL);
	TASK_CHECK(kn_task_join(t) == 0);
	ids[0] = kn_task_id();
	TASK_CHECK(ids[0] == me);
	TASK_CHECK(strcmp(kn_task_name(), "parent") == 0);
}

Test(task, identity_after_a_helping_join)
{
	kn_pool *p = pool_of(2, 0);
	uint64_t ids[2] = { 0, 0 };

	at_store_relaxed(&task_failures, 0);
	cr_assert_eq(kn_pool_spawn_named(p, "parent", parent, ids), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	cr_assert_neq(ids[0], 0);
	cr_assert_neq(ids[1], 0);
	cr_assert_neq(ids[0], ids[1]);
	kn_pool_free(p);
}

/* Ids are unique, across threads that spawn and records that are reused. */
#define MANY 4000
static uint64_t many_ids[MANY];

static void record_id(void *arg)
{
	many_ids[(uintptr_t)arg] = kn_task_id();
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void spawn_half(void *arg)
{
	for (uintptr_t i = MANY / 2; i < MANY; i++)
		TASK_CHECK(kn_pool_spawn(kn_pool_current(), record_id, (void *)i) == 0);
	(void)arg;
}

Test(task, ids_are_unique)
{
	kn_pool *p = pool_of(2, 0);

	at_store_relaxed(&task_failures, 0);
	cr_assert_eq(kn_pool_spawn(p, spawn_half, NULL), 0);
	for (uintptr_t i = 0; i < MANY / 2; i++)
		cr_assert_eq(kn_pool_spawn(p, record_id, (void *)i), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	qsort(many_ids, MANY, sizeof(many_ids[0]), by_value);
	cr_assert_neq(many_ids[0], 0);
	for (int i = 1; i < MANY; i++)
		cr_assert_neq(many_ids[i], many_ids[i - 1], "id %llu twice",
			      (unsigned long long)many_ids[i]);
}

static void named_go(void *arg)
{
	TASK_CHECK(strcmp(kn_task_name(), "go-named") == 0);
	at_store_release((_Atomic int *)arg, 1);
}

Test(task, go_named)
{
	_Atomic int done = 0;

	at_store_relaxed(&task_failures, 0);
	cr_assert_eq(kn_go_named("go-named", named_go, &done), 0);
	while (!at_load_acquire(&done))
		nap_ms(1);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
}

/* kn_dump names the task a worker runs and counts the suspended ones. */
static _Atomic int spin_go;
static kn_chan *dump_ch;

static void dump_blocked(void *arg)
{
	int64_t v;

	(void)arg;
	TASK_CHECK(kn_chan_recv(dump_ch, &v) == 0);
}

static void dump_spinner(void *arg)
{
	(void)arg;
	at_store_release(&spin_go, 1);
	while (at_load_acquire(&spin_go) == 1)
		; /* holds the worker until the test has dumped */
}

Test(task, dump_shows_running_and_suspended)
{
	kn_pool *p = pool_with((struct kn_pool_opts){ .workers = 1, .name = "dumpme" });
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	int64_t v = 1;

	cr_assert_not_null(out);
	at_store_relaxed(&task_failures, 0);
	dump_ch = kn_chan_new(sizeof(int64_t), 0);
	cr_assert_eq(kn_pool_spawn_named(p, "waits-on-chan", dump_blocked, NULL), 0);
	for (;;) { /* until the receive waits: the task is suspended */
		struct kn_chan_stats st;

		cr_assert_eq(kn_chan_stats(dump_ch, &st), 0);
		if (st.recv_waits)
			break;
		nap_ms(1);
	}
	cr_assert_eq(kn_pool_spawn_named(p, "spins", dump_spinner, NULL), 0);
	while (at_load_acquire(&spin_go) == 0)
		nap_ms(1);
	cr_assert_eq(kn_dump(out), 0);
	fclose(out);
	at_store_release(&spin_go, 2);
	cr_assert_not_null(strstr(text, "pool \"dumpme\""), "%s", text);
	cr_assert_not_null(strstr(text, "running task"), "%s", text);
	cr_assert_not_null(strstr(text, "\"spins\""), "%s", text);
	cr_assert_not_null(strstr(text, "1 suspended"), "%s", text);
	cr_assert_eq(kn_chan_send(dump_ch, &v), 0);
	cr_assert_eq(kn_pool_wait_idle(p), 0);
	cr_assert_eq(at_load_relaxed(&task_failures), 0);
	kn_pool_free(p);
	kn_chan_free(dump_ch);
	free(text);
	cr_assert_eq(kn_dump(NULL), EINVAL);
}

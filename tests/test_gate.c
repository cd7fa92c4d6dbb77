/*
 * test_gate.c - the gate between iterators and compaction batches
 * (src/gate.h): a batch never starts while an iterator is open, and an
 * iterator never opens while a batch runs.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "gate.h"

static gate G;
static atomic_int entered_iter;

static void setup(void)
{
	gate_init(&G);
	atomic_store(&entered_iter, 0);
}

static void teardown(void)
{
	gate_destroy(&G);
}

static void *open_iter(void *arg)
{
	(void)arg;
	gate_iter_enter(&G);
	atomic_store(&entered_iter, 1);
	gate_iter_leave(&G);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

Test(gate, open_iterator_refuses_batches, .init = setup, .fini = teardown)
{
	int entered = 1;

	gate_iter_enter(&G);
	gate_iter_enter(&G);
	gate_batch_enter(&G, &entered);
	cr_assert_eq(entered, 0);
	gate_iter_leave(&G);
	gate_batch_enter(&G, &entered);
	cr_assert_eq(entered, 0, "one iterator is still open");
	gate_iter_leave(&G);
	gate_batch_enter(&G, &entered);
	cr_assert_eq(entered, 1);
	gate_batch_leave(&G);
}

Test(gate, iterator_waits_for_running_batches, .init = setup,
     .fini = teardown)
{
	int a = 0, b = 0;
	pthread_t t;

	/* Batches may overlap each other (a background pass and a call). */
	gate_batch_enter(&G, &a);
	gate_batch_enter(&G, &b);
	cr_assert(a && b);
	cr_assert_eq(pthread_create(&t, NULL, open_iter, NULL), 0);
	sleep_ms(50);
	cr_assert_eq(atomic_load(&entered_iter), 0, "opened during two batches");
	gate_batch_leave(&G);
	sleep_ms(50);
	cr_assert_eq(atomic_load(&entered_iter), 0, "opened during a batch");
	gate_batch_leave(&G);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(atomic_load(&entered_iter), 1);
}

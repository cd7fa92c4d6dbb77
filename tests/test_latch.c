/*
 * test_latch.c - the reader/writer latch (src/latch.h).  Ordering is
 * checked with threads and atomics: a thread records that it got the latch
 * only after the lock call returns, and the test checks that flag while the
 * other side still holds the latch.  Sleeps are never assertions.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "latch.h"

static _Alignas(64) latch the_latch;

/* Spin (yielding) until flag reaches want; fail after 20 s. */
static void wait_for(atomic_int *flag, int want, const char *what)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load(flag) != want) {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
		cr_assert_lt(t.tv_sec - t0.tv_sec, 20, "timed out waiting for %s", what);
	}
}

/* Give the other threads plenty of chances to run. */
static void let_others_run(void)
{
	for (int i = 0; i < 2000; i++)
		sched_yield();
}

Test(latch, init_leaves_everything_clear)
{
	latch_init(&the_latch);
	cr_assert_eq(atomic_load(&the_latch.writer), 0);
	cr_assert_eq(atomic_load(&the_latch.used), 0);
	for (int i = 0; i < LATCH_SLOTS; i++)
		cr_assert_eq(atomic_load(&the_latch.slot[i].readers), 0);
	cr_assert_eq((uintptr_t)&the_latch % 64, 0);
	cr_assert_eq(sizeof(latch_slot), 64, "one cache line per slot");
}

Test(latch, single_thread_read_lock_unlock)
{
	latch_init(&the_latch);
	unsigned s = latch_read_lock(&the_latch);
	cr_assert_lt(s, LATCH_SLOTS);
	cr_assert_eq(atomic_load(&the_latch.slot[s].readers), 1);
	cr_assert_neq(atomic_load(&the_latch.used) & ((uint_fast64_t)1 << s), 0);
	/* Recursive read locks on one thread stack on the same slot. */
	unsigned s2 = latch_read_lock(&the_latch);
	cr_assert_eq(s2, s);
	cr_assert_eq(atomic_load(&the_latch.slot[s].readers), 2);
	latch_read_unlock(&the_latch, s2);
	latch_read_unlock(&the_latch, s);
	cr_assert_eq(atomic_load(&the_latch.slot[s].readers), 0);
	cr_assert_eq(atomic_load(&the_latch.writer), 0);
}

Test(latch, single_thread_write_lock_unlock)
{
	latch_init(&the_latch);
	latch_write_lock(&the_latch);
	cr_assert_eq(atomic_load(&the_latch.writer), 1);
	latch_write_unlock(&the_latch);
	cr_assert_eq(atomic_load(&the_latch.writer), 0);
	/* After a reader came and went, the writer still gets in. */
	unsigned s = latch_read_lock(&the_latch);
	latch_read_unlock(&the_latch, s);
	latch_write_lock(&the_latch);
	cr_assert_eq(atomic_load(&the_latch.writer), 1);
	latch_write_unlock(&the_latch);
	s = latch_read_lock(&the_latch);
	cr_assert_eq(atomic_load(&the_latch.slot[s].readers), 1);
	latch_read_unlock(&the_latch, s);
}

Test(latch, works_on_heap_with_aligned_alloc)
{
	latch *l = aligned_alloc(64, sizeof(latch));

	cr_assert_not_null(l);
	latch_init(l);
	unsigned s = latch_read_lock(l);
	latch_read_unlock(l, s);
	latch_write_lock(l);
	latch_write_unlock(l);
	cr_assert_eq(atomic_load(&l->slot[s].readers), 0);
	free(l);
}

/* ---- a writer waits for a reader ---------------------------------------- */

static atomic_int reader_in, reader_release, writer_started, writer_in;

static void *reader_main(void *arg)
{
	(void)arg;
	unsigned s = latch_read_lock(&the_latch);
	atomic_store(&reader_in, 1);
	wait_for(&reader_release, 1, "release");
	latch_read_unlock(&the_latch, s);
	return NULL;
}

static void *writer_main(void *arg)
{
	(void)arg;
	atomic_store(&writer_started, 1);
	latch_write_lock(&the_latch);
	atomic_store(&writer_in, 1);
	latch_write_unlock(&the_latch);
	return NULL;
}

Test(latch, writer_waits_for_reader)
{
	pthread_t r, w;

	latch_init(&the_latch);
	cr_assert_eq(pthread_create(&r, NULL, reader_main, NULL), 0);
	wait_for(&reader_in, 1, "the reader");
	cr_assert_eq(pthread_create(&w, NULL, writer_main, NULL), 0);
	wait_for(&writer_started, 1, "the writer");
	/* The writer has announced itself and now drains the readers. */
	while (atomic_load(&the_latch.writer) != 1)
		sched_yield();
	let_others_run();
	cr_assert_eq(atomic_load(&writer_in), 0,
	             "writer got the latch while a reader held it");
	atomic_store(&reader_release, 1);
	cr_assert_eq(pthread_join(r, NULL), 0);
	cr_assert_eq(pthread_join(w, NULL), 0);
	cr_assert_eq(atomic_load(&writer_in), 1);
	cr_assert_eq(atomic_load(&the_latch.writer), 0);
}

/* ---- a reader waits for a writer ---------------------------------------- */

static atomic_int late_reader_in;

static void *late_reader_main(void *arg)
{
	(void)arg;
	unsigned s = latch_read_lock(&the_latch);
	atomic_store(&late_reader_in, 1);
	latch_read_unlock(&the_latch, s);
	return NULL;
}

Test(latch, reader_waits_for_writer)
{
	pthread_t r;

	latch_init(&the_latch);
	latch_write_lock(&the_latch);
	cr_assert_eq(pthread_create(&r, NULL, late_reader_main, NULL), 0);
	let_others_run();
	cr_assert_eq(atomic_load(&late_reader_in), 0,
	             "reader got the latch while the writer held it");
	latch_write_unlock(&the_latch);
	cr_assert_eq(pthread_join(r, NULL), 0);
	cr_assert_eq(atomic_load(&late_reader_in), 1);
}

/* ---- many readers at once ------------------------------------------------ */

#define NREADERS 8

static atomic_int inside, readers_go;

static void *concurrent_reader(void *arg)
{
	(void)arg;
	unsigned s = latch_read_lock(&the_latch);
	atomic_fetch_add(&inside, 1);
	/* Hold the latch until every reader is inside at the same time. */
	wait_for(&inside, NREADERS, "all readers inside together");
	wait_for(&readers_go, 1, "go");
	latch_read_unlock(&the_latch, s);
	return NULL;
}

Test(latch, readers_hold_it_concurrently)
{
	pthread_t t[NREADERS];

	latch_init(&the_latch);
	for (int i = 0; i < NREADERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, concurrent_reader, NULL), 0);
	wait_for(&inside, NREADERS, "all readers inside together");
	unsigned total = 0;
	for (int i = 0; i < LATCH_SLOTS; i++)
		total += atomic_load(&the_latch.slot[i].readers);
	cr_assert_eq(total, NREADERS, "every reader counted in its slot");
	atomic_store(&readers_go, 1);
	for (int i = 0; i < NREADERS; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < LATCH_SLOTS; i++)
		cr_assert_eq(atomic_load(&the_latch.slot[i].readers), 0);
	/* And a writer gets in once they are gone. */
	latch_write_lock(&the_latch);
	latch_write_unlock(&the_latch);
}

/* ---- readers never see a half-done write -------------------------------- */

#define WRITES 20000

static atomic_uint pair_a, pair_b;
static atomic_int stop_readers, torn_reads;
static atomic_uint good_reads;

static void *pair_reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_readers)) {
		unsigned s = latch_read_lock(&the_latch);
		unsigned a = atomic_load_explicit(&pair_a, memory_order_relaxed);
		unsigned b = atomic_load_explicit(&pair_b, memory_order_relaxed);
		latch_read_unlock(&the_latch, s);
		if (a != b)
			atomic_fetch_add(&torn_reads, 1);
		else
			atomic_fetch_add(&good_reads, 1);
	}
	return NULL;
}

Test(latch, readers_never_see_a_write_in_progress)
{
	pthread_t t[4];

	latch_init(&the_latch);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, pair_reader, NULL), 0);
	for (unsigned i = 1; i <= WRITES; i++) {
		if (i % 256 == 1) {
			/* Let the readers make progress between the writes. */
			unsigned seen = atomic_load(&good_reads);
			while (atomic_load(&good_reads) < seen + 8 &&
			       !atomic_load(&torn_reads))
				sched_yield();
		}
		latch_write_lock(&the_latch);
		atomic_store_explicit(&pair_a, i, memory_order_relaxed);
		if (i % 64 == 0)
			sched_yield(); /* widen the window for a broken latch */
		atomic_store_explicit(&pair_b, i, memory_order_relaxed);
		latch_write_unlock(&the_latch);
	}
	atomic_store(&stop_readers, 1);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	cr_assert_eq(atomic_load(&torn_reads), 0);
	cr_assert_gt(atomic_load(&good_reads), 8 * (WRITES / 256));
	cr_assert_eq(atomic_load(&pair_a), WRITES);
}

/*
 * test_snapshot.c - snapshots: a snapshot sees the store exactly as it was
 * when taken (get, get_alloc, has, count, iterate) through later puts,
 * deletes, compactions, checkpoints and segment id reuse; iteration returns
 * each key once; what it pins is reported and freed at release; the error
 * paths; a model test (random writes and compactions while several
 * snapshots are held, each checked against a copy of the map taken with
 * it).  Runs once per file system.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"

#define SEG_64K (64u << 10)

static void key_of(char *k, size_t cap, unsigned i)
{
	snprintf(k, cap, "key-%06u", i);
}

static void put_kv(cellar_db *db, unsigned i, unsigned ver)
{
	char k[32], v[64];

	key_of(k, sizeof k, i);
	snprintf(v, sizeof v, "value-%u-of-%06u-padding-padding", ver, i);
	OK(cellar_put(db, k, strlen(k), v, strlen(v)));
}

/* The snapshot holds key i with version ver (ver < 0: absent). */
static void expect_snap(cellar_snapshot *s, unsigned i, int ver)
{
	char k[32], want[64], got[64];
	size_t n = 0;

	key_of(k, sizeof k, i);
	if (ver < 0) {
		ERR(CELLAR_ENOTFOUND, cellar_snapshot_get(s, k, strlen(k), got,
		                                          sizeof got, &n));
		ERR(CELLAR_ENOTFOUND, cellar_snapshot_has(s, k, strlen(k)));
		return;
	}
	snprintf(want, sizeof want, "value-%d-of-%06u-padding-padding", ver, i);
	OK(cellar_snapshot_get(s, k, strlen(k), got, sizeof got, &n));
	cr_assert_eq(n, strlen(want), "key %u", i);
	cr_assert(memcmp(got, want, n) == 0, "key %u: %.*s, want %s", i,
	          (int)n, got, want);
	OK(cellar_snapshot_has(s, k, strlen(k)));
}

static cellar_db_stats stats_of(cellar_db *db)
{
	cellar_db_stats st;

	memset(&st, 0, sizeof st);
	OK(cellar_stats_sized(db, &st, sizeof st));
	return st;
}

Test(snapshot, sees_the_store_as_it_was)
{
	tc_store s;
	cellar_snapshot *snap;
	uint64_t n;

	tc_store_new(&s, 0);
	for (unsigned i = 0; i < 500; i++)
		put_kv(s.db, i, 1);
	OK(cellar_snapshot_new(s.db, &snap));
	for (unsigned i = 0; i < 500; i += 2)
		put_kv(s.db, i, 2);
	for (unsigned i = 1; i < 500; i += 4) {
		char k[32];
		key_of(k, sizeof k, i);
		OK(cellar_delete(s.db, k, strlen(k)));
	}
	for (unsigned i = 500; i < 600; i++)
		put_kv(s.db, i, 2);
	OK(cellar_sync(s.db)); /* a checkpoint freezes the index too */
	for (unsigned i = 0; i < 600; i++)
		expect_snap(snap, i, i < 500 ? 1 : -1);
	OK(cellar_snapshot_count(snap, &n));
	cr_assert_eq(n, 500);
	OK(cellar_count(s.db, &n));
	cr_assert_eq(n, 600 - 125);
	cellar_snapshot_release(snap);
	tc_store_free(&s);
}

Test(snapshot, get_alloc_and_buffer_too_small)
{
	tc_store s;
	cellar_snapshot *snap;
	void *p = NULL;
	size_t n = 0;
	char small[4];

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "a", 1, "hello", 5));
	OK(cellar_put(s.db, "empty", 5, "", 0));
	OK(cellar_snapshot_new(s.db, &snap));
	OK(cellar_put(s.db, "a", 1, "changed", 7));
	OK(cellar_snapshot_get_alloc(snap, "a", 1, &p, &n));
	cr_assert_eq(n, 5);
	cr_assert(memcmp(p, "hello", 5) == 0);
	cellar_free(p);
	ERR(CELLAR_EBUFS, cellar_snapshot_get(snap, "a", 1, small, sizeof small,
	                                      &n));
	cr_assert_eq(n, 5);
	OK(cellar_snapshot_get_alloc(snap, "empty", 5, &p, &n));
	cr_assert_not_null(p);
	cr_assert_eq(n, 0);
	cellar_free(p);
	OK(cellar_snapshot_get(snap, "empty", 5, NULL, 0, &n));
	ERR(CELLAR_ENOTFOUND, cellar_snapshot_get_alloc(snap, "b", 1, &p, &n));
	cr_assert_null(p);
	cellar_snapshot_release(snap);
	tc_store_free(&s);
}

Test(snapshot, error_paths)
{
	tc_store s;
	cellar_snapshot *snap = (void *)1;
	cellar_snapshot_iter *it = (void *)1;
	char buf[8], big[CELLAR_MAX_KEY_LEN + 1];
	void *p = (void *)1;
	uint64_t n;

	memset(big, 'k', sizeof big);
	tc_store_new(&s, 0);
	ERR(CELLAR_EINVAL, cellar_snapshot_new(NULL, &snap));
	cr_assert_null(snap);
	ERR(CELLAR_EINVAL, cellar_snapshot_new(s.db, NULL));
	OK(cellar_snapshot_new(s.db, &snap));
	ERR(CELLAR_EINVAL, cellar_snapshot_get(NULL, "a", 1, buf, 8, NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_get(snap, NULL, 1, buf, 8, NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_get(snap, "a", 1, NULL, 8, NULL));
	ERR(CELLAR_EKEYLEN, cellar_snapshot_get(snap, "a", 0, buf, 8, NULL));
	ERR(CELLAR_EKEYLEN, cellar_snapshot_get(snap, big, sizeof big, buf, 8,
	                                        NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_get_alloc(snap, "a", 1, NULL, NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_get_alloc(NULL, "a", 1, &p, NULL));
	cr_assert_null(p);
	ERR(CELLAR_EKEYLEN, cellar_snapshot_has(snap, "", 0));
	ERR(CELLAR_EINVAL, cellar_snapshot_has(NULL, "a", 1));
	ERR(CELLAR_EINVAL, cellar_snapshot_count(NULL, &n));
	ERR(CELLAR_EINVAL, cellar_snapshot_count(snap, NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_iter_new(NULL, &it));
	cr_assert_null(it);
	ERR(CELLAR_EINVAL, cellar_snapshot_iter_new(snap, NULL));
	ERR(CELLAR_EINVAL, cellar_snapshot_iter_next(NULL, NULL, NULL, NULL,
	                                             NULL));
	OK(cellar_snapshot_iter_new(snap, &it));
	ERR(CELLAR_EDONE, cellar_snapshot_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_snapshot_iter_free(it);
	cellar_snapshot_iter_free(NULL);
	cellar_snapshot_release(snap);
	cellar_snapshot_release(NULL);

	/* A read-only handle has nothing to snapshot. */
	tc_store_close(&s);
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	ERR(CELLAR_EREADONLY, cellar_snapshot_new(s.db, &snap));
	cr_assert_null(snap);
	tc_store_free(&s);
}

/* Iterate snap: every key once, with the version in want[] (-1: absent). */
static void expect_iter(cellar_snapshot *snap, const int *want, unsigned nkeys)
{
	cellar_snapshot_iter *it;
	const void *k, *v;
	size_t kn, vn;
	unsigned seen = 0, expected = 0;
	char *mark = calloc(nkeys, 1);
	int rc;

	OK(cellar_snapshot_iter_new(snap, &it));
	while ((rc = cellar_snapshot_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		unsigned i;
		int ver;
		cr_assert_eq(sscanf(k, "key-%06u", &i), 1);
		cr_assert(i < nkeys);
		cr_assert(!mark[i], "key %u returned twice", i);
		mark[i] = 1;
		cr_assert_eq(sscanf(v, "value-%d-", &ver), 1);
		cr_assert_eq(ver, want[i], "key %u: version %d, want %d", i, ver,
		             want[i]);
		seen++;
	}
	ERR(CELLAR_EDONE, rc);
	for (unsigned i = 0; i < nkeys; i++)
		expected += want[i] >= 0;
	cr_assert_eq(seen, expected);
	cellar_snapshot_iter_free(it);
	free(mark);
}

Test(snapshot, iterates_each_key_once_through_compaction)
{
	enum { N = 3000 };
	tc_store s;
	cellar_snapshot *snap;
	cellar_compact_result cr;
	int want[N];

	tc_store_init(&s);
	s.o.max_segment_size = SEG_64K;
	s.o.compact_dead_pct = 10;
	tc_store_open(&s);
	for (unsigned i = 0; i < N; i++) {
		put_kv(s.db, i, 1);
		want[i] = i % 3 ? 1 : -1;
	}
	for (unsigned i = 0; i < N; i += 3) {
		char k[32];
		key_of(k, sizeof k, i);
		OK(cellar_delete(s.db, k, strlen(k)));
	}
	OK(cellar_snapshot_new(s.db, &snap));
	/* Overwrite everything twice and compact: the snapshot's segments are
	 * dropped from the store (and their ids reused) while it holds them. */
	for (int round = 2; round <= 3; round++) {
		for (unsigned i = 0; i < N; i++)
			put_kv(s.db, i, (unsigned)round);
		OK(cellar_compact(s.db, &cr));
		OK(cellar_sync(s.db));
	}
	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.snapshots, 1);
	cr_assert_gt(st.snapshot_segment_bytes, 0, "compaction dropped none");
	cr_assert_gt(st.snapshot_index_bytes, 0, "no chunk was copied");
	expect_iter(snap, want, N);
	for (unsigned i = 0; i < N; i += 7)
		expect_snap(snap, i, want[i]);
	cellar_snapshot_release(snap);
	st = stats_of(s.db);
	cr_assert_eq(st.snapshots, 0);
	cr_assert_eq(st.snapshot_segment_bytes, 0);
	cr_assert_eq(st.snapshot_index_bytes, 0);
	/* The store itself moved on. */
	OK(cellar_snapshot_new(s.db, &snap));
	for (unsigned i = 0; i < N; i++)
		want[i] = 3;
	expect_iter(snap, want, N);
	cellar_snapshot_release(snap);
	tc_store_free(&s);
}

Test(snapshot, left_open_at_close_is_released_by_it)
{
	tc_store s;
	cellar_snapshot *snap;

	tc_store_new(&s, 0);
	for (unsigned i = 0; i < 100; i++)
		put_kv(s.db, i, 1);
	OK(cellar_snapshot_new(s.db, &snap));
	for (unsigned i = 0; i < 100; i++)
		put_kv(s.db, i, 2);
	tc_store_close(&s); /* releases snap's version; snap itself leaks */
	free(snap);         /* the handle's own memory (test only) */
	tc_store_open(&s);
	OK(cellar_snapshot_new(s.db, &snap));
	expect_snap(snap, 5, 2);
	cellar_snapshot_release(snap);
	tc_store_free(&s);
}

/* ---- the model ---------------------------------------------------------- */

enum { MODEL_KEYS = 400, MODEL_SNAPS = 4 };

typedef struct held {
	cellar_snapshot *snap;
	int want[MODEL_KEYS];
} held;

static void check_held(const held *h)
{
	uint64_t n, live = 0;

	for (unsigned i = 0; i < MODEL_KEYS; i++) {
		expect_snap(h->snap, i, h->want[i]);
		live += h->want[i] >= 0;
	}
	OK(cellar_snapshot_count(h->snap, &n));
	cr_assert_eq(n, live);
	expect_iter(h->snap, h->want, MODEL_KEYS);
}

Test(snapshot, model_random_writes_and_compactions)
{
	tc_store s;
	int map[MODEL_KEYS];
	held h[MODEL_SNAPS];
	uint64_t rng = 42;
	unsigned ver = 0;

	memset(h, 0, sizeof h);
	for (unsigned i = 0; i < MODEL_KEYS; i++)
		map[i] = -1;
	tc_store_init(&s);
	s.o.max_segment_size = SEG_64K;
	s.o.compact_dead_pct = 20;
	tc_store_open(&s);
	for (int step = 0; step < 6000; step++) {
		uint64_t r = tc_rand(&rng);
		unsigned i = (unsigned)(r >> 8) % MODEL_KEYS, op = (unsigned)(r % 100);
		if (op < 60) {
			put_kv(s.db, i, ++ver);
			map[i] = (int)ver;
		} else if (op < 85) {
			char k[32];
			key_of(k, sizeof k, i);
			int rc = cellar_delete(s.db, k, strlen(k));
			cr_assert(rc == (map[i] >= 0 ? CELLAR_OK : CELLAR_ENOTFOUND));
			map[i] = -1;
		} else if (op < 90) {
			OK(cellar_compact(s.db, NULL));
		} else if (op < 93) {
			OK(cellar_sync(s.db));
		} else {
			held *x = &h[(r >> 40) % MODEL_SNAPS];
			if (x->snap) {
				check_held(x);
				cellar_snapshot_release(x->snap);
				x->snap = NULL;
			} else {
				OK(cellar_snapshot_new(s.db, &x->snap));
				memcpy(x->want, map, sizeof map);
			}
		}
	}
	for (int j = 0; j < MODEL_SNAPS; j++)
		if (h[j].snap) {
			check_held(&h[j]);
			cellar_snapshot_release(h[j].snap);
		}
	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.snapshots, 0);
	cr_assert_eq(st.snapshot_segment_bytes, 0);
	cr_assert_eq(st.snapshot_index_bytes, 0);
	tc_store_free(&s);
}

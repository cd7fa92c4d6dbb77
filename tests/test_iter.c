/*
 * test_iter.c - iteration over a store: every live key exactly once with its
 * current value, in write order, across reopen, segments and overflow chains,
 * and what is promised for keys written while an iteration runs.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "testhook.h"

/* tc_store_free(), then the test hooks back to their defaults. */
static void store_free(tc_store *s)
{
	tc_store_free(s);
	cellar__test_set_hash(NULL);
	cellar__test_set_max_buckets(0);
}

/*
 * The expected content: key i ("k<i>") is live with generation gen[i] (its
 * value is derived from i and gen), or absent.  seq[i] is when its newest
 * record was written, for checking the order.
 */
typedef struct model {
	unsigned n;
	bool *live;
	unsigned *gen;
	uint64_t *seq;
	uint64_t clock;
} model;

static void model_init(model *m, unsigned n)
{
	m->n = n;
	m->live = calloc(n, sizeof *m->live);
	m->gen = calloc(n, sizeof *m->gen);
	m->seq = calloc(n, sizeof *m->seq);
	m->clock = 0;
	cr_assert(m->live && m->gen && m->seq);
}

static void model_free(model *m)
{
	free(m->live);
	free(m->gen);
	free(m->seq);
}

static size_t key_of(unsigned i, char k[24])
{
	return (size_t)snprintf(k, 24, "k%u", i);
}

/* Key i's value in generation gen: 0..~600 bytes, a few of them 0. */
static size_t val_of(unsigned i, unsigned gen, unsigned char *v)
{
	size_t n = (i * 31u + gen * 17u) % 600u;

	if ((i + gen) % 50 == 0)
		n = 0;
	for (size_t j = 0; j < n; j++)
		v[j] = (unsigned char)(i * 7u + gen * 13u + j);
	return n;
}

static void do_put(model *m, cellar_db *db, unsigned i, unsigned gen)
{
	char k[24];
	unsigned char v[600];
	size_t kn = key_of(i, k), vn = val_of(i, gen, v);

	OK(cellar_put(db, k, kn, v, vn));
	m->live[i] = true;
	m->gen[i] = gen;
	m->seq[i] = ++m->clock;
}

static void do_delete(model *m, cellar_db *db, unsigned i)
{
	char k[24];
	size_t kn = key_of(i, k);

	OK(cellar_delete(db, k, kn));
	m->live[i] = false;
}

/* Parse "k<i>" back to i; the key must be one of ours. */
static unsigned parse_key(const model *m, const void *key, size_t key_len)
{
	char buf[24];
	char *end;
	unsigned long i;

	cr_assert(key_len > 1 && key_len < sizeof buf, "odd key length %zu", key_len);
	memcpy(buf, key, key_len);
	buf[key_len] = '\0';
	cr_assert_eq(buf[0], 'k', "foreign key '%s'", buf);
	i = strtoul(buf + 1, &end, 10);
	cr_assert(*end == '\0' && i < m->n, "foreign key '%s'", buf);
	return (unsigned)i;
}

/*
 * Iterate the whole store and check it against the model: each live key
 * exactly once, with its current value, in the order the records were
 * written; no absent key.
 */
static void check_iteration(const model *m, cellar_db *db)
{
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	unsigned char want[600];
	bool *seen = calloc(m->n, sizeof *seen);
	uint64_t last_seq = 0, items = 0, live = 0;
	int rc;

	cr_assert_not_null(seen);
	OK(cellar_iter_new(db, &it));
	cr_assert_not_null(it);
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		unsigned i = parse_key(m, k, kn);
		cr_assert(m->live[i], "k%u is deleted but iteration returned it", i);
		cr_assert(!seen[i], "k%u returned twice", i);
		seen[i] = true;
		size_t wn = val_of(i, m->gen[i], want);
		cr_assert_eq(vn, wn, "k%u: value length %zu, want %zu (gen %u)", i,
		             vn, wn, m->gen[i]);
		cr_assert(vn == 0 || memcmp(v, want, vn) == 0, "k%u: stale or wrong value", i);
		cr_assert_gt(m->seq[i], last_seq, "k%u out of write order", i);
		last_seq = m->seq[i];
		items++;
	}
	ERR(CELLAR_EDONE, rc);
	ERR(CELLAR_EDONE, cellar_iter_next(it, &k, &kn, &v, &vn));
	cellar_iter_free(it);
	for (unsigned i = 0; i < m->n; i++) {
		if (m->live[i]) {
			live++;
			cr_assert(seen[i], "live key k%u was not returned", i);
		}
	}
	cr_assert_eq(items, live);
	uint64_t count = 0;
	OK(cellar_count(db, &count));
	cr_assert_eq(count, live, "count %llu, iteration %llu",
	             (unsigned long long)count, (unsigned long long)live);
	free(seen);
}

/* A mixed workload: puts, overwrites and deletes. */
static void churn(model *m, cellar_db *db, uint64_t seed, unsigned steps)
{
	for (unsigned s = 0; s < steps; s++) {
		uint64_t r = tc_rand(&seed);
		unsigned i = (unsigned)(r % m->n);
		if ((r >> 32) % 4 == 0) {
			if (m->live[i])
				do_delete(m, db, i);
		} else {
			do_put(m, db, i, m->gen[i] + 1);
		}
	}
}

Test(iter, empty_store_is_done_at_once)
{
	tc_store s;
	cellar_iter *it = NULL;
	const void *k = &k, *v = &v;
	size_t kn = 7, vn = 7;

	tc_store_new(&s, 0);
	OK(cellar_iter_new(s.db, &it));
	cr_assert_not_null(it);
	ERR(CELLAR_EDONE, cellar_iter_next(it, &k, &kn, &v, &vn));
	ERR(CELLAR_EDONE, cellar_iter_next(it, &k, &kn, &v, &vn));
	ERR(CELLAR_EDONE, cellar_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_iter_free(it);
	tc_store_reopen(&s);
	OK(cellar_iter_new(s.db, &it));
	ERR(CELLAR_EDONE, cellar_iter_next(it, &k, &kn, &v, &vn));
	cellar_iter_free(it);
	store_free(&s);
}

Test(iter, store_emptied_by_deletes_is_done_at_once)
{
	tc_store s;
	model m;
	cellar_iter *it = NULL;

	model_init(&m, 50);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < 50; i++)
		do_put(&m, s.db, i, 0);
	for (unsigned i = 0; i < 50; i++)
		do_delete(&m, s.db, i);
	OK(cellar_iter_new(s.db, &it));
	ERR(CELLAR_EDONE, cellar_iter_next(it, NULL, NULL, NULL, NULL));
	ERR(CELLAR_EDONE, cellar_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_iter_free(it);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, returns_each_live_key_once_with_current_value)
{
	tc_store s;
	model m;

	model_init(&m, 2000);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < m.n; i++)
		do_put(&m, s.db, i, 0);
	check_iteration(&m, s.db);
	churn(&m, s.db, 1, 5000);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, returns_items_in_write_order)
{
	tc_store s;
	model m;

	model_init(&m, 10);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < 10; i++)
		do_put(&m, s.db, i, 0);
	do_put(&m, s.db, 3, 1); /* 3 moves to the end */
	do_put(&m, s.db, 0, 1); /* then 0 */
	do_delete(&m, s.db, 5);
	do_put(&m, s.db, 5, 2); /* 5 comes back, last */
	check_iteration(&m, s.db);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, survives_reopen)
{
	tc_store s;
	model m;

	model_init(&m, 3000);
	tc_store_new(&s, 0);
	churn(&m, s.db, 7, 9000);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	churn(&m, s.db, 8, 3000);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, spans_many_segments)
{
	tc_store s;
	model m;
	uint64_t segments = 0;
	cellar__debug_info d;

	model_init(&m, 1500);
	tc_store_new(&s, 64u << 10);
	churn(&m, s.db, 11, 6000);
	OK(cellar__debug(s.db, &d));
	segments = d.segments;
	cr_assert_gt(segments, 1, "the workload spans several segments");
	check_iteration(&m, s.db);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

static uint64_t hash_constant(const void *key, size_t len, uint64_t seed)
{
	(void)key, (void)len, (void)seed;
	return 0x2545f4914f6cdd1dull;
}

/* Five distinct hashes, well mixed so that every bit the index uses differs. */
static uint64_t hash_weak(const void *key, size_t len, uint64_t seed)
{
	uint64_t x = len ? ((const unsigned char *)key)[len - 1] % 5 : 0;

	(void)seed;
	return tc_rand(&x);
}

static void collision_scenario(cellar__hash_fn fn, uint64_t max_buckets, unsigned n)
{
	tc_store s;
	model m;
	cellar__debug_info d;

	cellar__test_set_hash(fn);
	cellar__test_set_max_buckets(max_buckets);
	model_init(&m, n);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < n; i++)
		do_put(&m, s.db, i, 0);
	OK(cellar__debug(s.db, &d));
	cr_assert_gt(d.overflow_buckets, 0, "collisions fill overflow buckets");
	churn(&m, s.db, 3, 3 * n);
	check_iteration(&m, s.db);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, with_constant_hash)
{
	collision_scenario(hash_constant, 0, 300);
}

Test(iter, with_weak_hash_and_capped_buckets)
{
	collision_scenario(hash_weak, 2, 600);
}

Test(iter, with_one_bucket)
{
	collision_scenario(NULL, 1, 500);
}

Test(iter, null_output_pointers_are_accepted)
{
	tc_store s;
	model m;
	cellar_iter *it = NULL;
	const void *k;
	size_t kn, vn;
	unsigned items = 0;
	int rc;

	model_init(&m, 100);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < 100; i++)
		do_put(&m, s.db, i, 0);
	OK(cellar_iter_new(s.db, &it));
	while ((rc = cellar_iter_next(it, NULL, NULL, NULL, NULL)) == CELLAR_OK)
		items++;
	ERR(CELLAR_EDONE, rc);
	cellar_iter_free(it);
	cr_assert_eq(items, 100);

	/* Some outputs only: the ones given are filled. */
	items = 0;
	OK(cellar_iter_new(s.db, &it));
	while ((rc = cellar_iter_next(it, &k, &kn, NULL, &vn)) == CELLAR_OK) {
		unsigned char want[600];
		unsigned i = parse_key(&m, k, kn);
		cr_assert_eq(vn, val_of(i, 0, want));
		items++;
	}
	ERR(CELLAR_EDONE, rc);
	cellar_iter_free(it);
	cr_assert_eq(items, 100);
	items = 0;
	OK(cellar_iter_new(s.db, &it));
	while ((rc = cellar_iter_next(it, NULL, &kn, NULL, NULL)) == CELLAR_OK) {
		cr_assert(kn >= 2 && kn <= 4);
		items++;
	}
	ERR(CELLAR_EDONE, rc);
	cellar_iter_free(it);
	cr_assert_eq(items, 100);
	store_free(&s);
	model_free(&m);
}

Test(iter, new_with_null_arguments_is_einval)
{
	tc_store s;
	cellar_iter *it = (cellar_iter *)&s;

	tc_store_new(&s, 0);
	ERR(CELLAR_EINVAL, cellar_iter_new(NULL, &it));
	cr_assert_null(it, "*out is NULL on failure");
	ERR(CELLAR_EINVAL, cellar_iter_new(s.db, NULL));
	cellar_iter_free(NULL);
	store_free(&s);
}

Test(iter, two_iterators_are_independent)
{
	tc_store s;
	model m;
	cellar_iter *a = NULL, *b = NULL;
	const void *ka, *kb;
	size_t kna, knb;
	unsigned items = 0;
	int ra, rb;

	model_init(&m, 300);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < m.n; i++)
		do_put(&m, s.db, i, 0);
	OK(cellar_iter_new(s.db, &a));
	/* a is a few items ahead of b. */
	for (int j = 0; j < 5; j++)
		OK(cellar_iter_next(a, NULL, NULL, NULL, NULL));
	OK(cellar_iter_new(s.db, &b));
	for (int j = 0; j < 5; j++)
		OK(cellar_iter_next(b, NULL, NULL, NULL, NULL));
	for (;;) {
		ra = cellar_iter_next(a, &ka, &kna, NULL, NULL);
		rb = cellar_iter_next(b, &kb, &knb, NULL, NULL);
		cr_assert_eq(ra, rb);
		if (ra != CELLAR_OK)
			break;
		cr_assert_eq(kna, knb);
		cr_assert(memcmp(ka, kb, kna) == 0, "same store, same order");
		items++;
	}
	ERR(CELLAR_EDONE, ra);
	cr_assert_eq(items, m.n - 5);
	cellar_iter_free(a);
	cellar_iter_free(b);
	store_free(&s);
	model_free(&m);
}

Test(iter, freeing_an_unfinished_iterator_is_fine)
{
	tc_store s;
	model m;
	cellar_iter *it = NULL;

	model_init(&m, 100);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < m.n; i++)
		do_put(&m, s.db, i, 0);
	OK(cellar_iter_new(s.db, &it));
	OK(cellar_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_iter_free(it);
	OK(cellar_iter_new(s.db, &it));
	cellar_iter_free(it); /* never advanced */
	do_put(&m, s.db, 1, 1);
	check_iteration(&m, s.db);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, works_on_a_readonly_handle)
{
	tc_store s;
	model m;

	model_init(&m, 500);
	tc_store_new(&s, 0);
	churn(&m, s.db, 5, 1500);
	OK(cellar_close(s.db));
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
}

Test(iter, returns_large_values_whole)
{
	tc_store s;
	const size_t big = 3u << 20;
	unsigned char *v = malloc(big);
	cellar_iter *it = NULL;
	const void *k, *pv;
	size_t kn, vn;
	unsigned seen = 0;
	int rc;

	cr_assert_not_null(v);
	for (size_t j = 0; j < big; j++)
		v[j] = (unsigned char)(j * 2654435761u >> 13);
	tc_store_new(&s, 64u << 10);
	OK(cellar_put(s.db, "small1", 6, "a", 1));
	OK(cellar_put(s.db, "big", 3, v, big));
	OK(cellar_put(s.db, "small2", 6, "b", 1));
	for (int pass = 0; pass < 2; pass++) {
		seen = 0;
		OK(cellar_iter_new(s.db, &it));
		while ((rc = cellar_iter_next(it, &k, &kn, &pv, &vn)) == CELLAR_OK) {
			if (kn == 3 && memcmp(k, "big", 3) == 0) {
				cr_assert_eq(vn, big);
				cr_assert(memcmp(pv, v, big) == 0, "big value differs");
			} else {
				cr_assert_eq(vn, 1);
			}
			seen++;
		}
		ERR(CELLAR_EDONE, rc);
		cellar_iter_free(it);
		cr_assert_eq(seen, 3);
		tc_store_reopen(&s);
	}
	store_free(&s);
	free(v);
}

/*
 * Writes while an iteration runs (same thread): keys never touched during
 * the iteration come back exactly once with their value; a touched key may
 * be missed or come back with its old and its new value, but never with a
 * value it never had and never more than twice.
 */
Test(iter, untouched_keys_are_returned_once_during_writes)
{
	tc_store s;
	model m;
	const unsigned n = 2000, extra = 1000, total = n + extra;
	unsigned *writes, *times, *old_gen, *first_new_gen;
	bool *old_live;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	uint64_t seed = 99;
	unsigned steps = 0, next_new = n;
	int rc;

	model_init(&m, total);
	writes = calloc(total, sizeof *writes);
	times = calloc(total, sizeof *times);
	old_gen = calloc(total, sizeof *old_gen);
	first_new_gen = calloc(total, sizeof *first_new_gen);
	old_live = calloc(total, sizeof *old_live);
	cr_assert(writes && times && old_gen && first_new_gen && old_live);
	tc_store_new(&s, 64u << 10);
	for (unsigned i = 0; i < n; i++)
		do_put(&m, s.db, i, 0);
	for (unsigned i = 0; i < total; i++) {
		old_gen[i] = m.gen[i];
		old_live[i] = m.live[i];
		first_new_gen[i] = UINT32_MAX;
	}

	OK(cellar_iter_new(s.db, &it));
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		unsigned char want[600];
		unsigned i = parse_key(&m, k, kn);
		times[i]++;
		if (writes[i] == 0) {
			cr_assert(old_live[i], "k%u was never live", i);
			cr_assert_eq(times[i], 1, "untouched k%u returned twice", i);
			cr_assert_eq(vn, val_of(i, old_gen[i], want));
			cr_assert(vn == 0 || memcmp(v, want, vn) == 0, "k%u: wrong value", i);
		} else {
			/* At most its old value plus one per write. */
			cr_assert_leq(times[i], writes[i] + 1, "k%u returned %u times after %u writes",
			              i, times[i], writes[i]);
			bool ok = false;
			if (old_live[i])
				ok = val_of(i, old_gen[i], want) == vn &&
				     memcmp(v, want, vn) == 0;
			for (unsigned g = first_new_gen[i]; !ok && g <= m.gen[i]; g++)
				ok = val_of(i, g, want) == vn && memcmp(v, want, vn) == 0;
			cr_assert(ok, "touched k%u came back with a value it never had", i);
		}
		if (++steps > 20000)
			continue; /* stop writing; let the iteration finish */
		/* Write: maybe overwrite one key, maybe delete another, add a new one. */
		uint64_t r = tc_rand(&seed);
		unsigned a = (unsigned)(r % n), b = (unsigned)((r >> 24) % n);
		if (r % 2 == 0) {
			do_put(&m, s.db, a, m.gen[a] + 1);
			writes[a]++;
			if (first_new_gen[a] == UINT32_MAX)
				first_new_gen[a] = m.gen[a];
		}
		if ((r >> 8) % 3 == 0 && m.live[b]) {
			do_delete(&m, s.db, b);
			writes[b]++;
		}
		if (next_new < total) {
			do_put(&m, s.db, next_new, 0);
			writes[next_new]++;
			first_new_gen[next_new] = 0;
			next_new++;
		}
	}
	ERR(CELLAR_EDONE, rc);
	cellar_iter_free(it);
	unsigned untouched = 0;
	for (unsigned i = 0; i < n; i++) {
		if (writes[i] == 0) {
			untouched++;
			cr_assert_eq(times[i], 1, "untouched k%u returned %u times", i, times[i]);
		}
	}
	cr_assert_gt(untouched, 0, "the workload left some keys alone");
	/* Afterwards the store is exactly the model. */
	check_iteration(&m, s.db);
	tc_store_reopen(&s);
	check_iteration(&m, s.db);
	store_free(&s);
	model_free(&m);
	free(writes);
	free(times);
	free(old_gen);
	free(first_new_gen);
	free(old_live);
}

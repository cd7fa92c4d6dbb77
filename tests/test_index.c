/*
 * test_index.c - the linear-hash index (src/index.h) over synthetic keys:
 * keys are numbers, their hashes come from a mixer (or are forced equal),
 * and the "segments" are an in-test table that maps a location (seg, off)
 * back to the key stored there, which the match callback consults.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "endian.h"
#include "files.h"
#include "hash.h"
#include "index.h"

/* ---- the synthetic store ------------------------------------------------- */

#define MAX_LOCS 40000
#define NO_KEY UINT64_MAX

/* Location j is (seg j % 7, off 32 + 16 j); loc_key[j] is the key there. */
static uint64_t loc_key[MAX_LOCS];
static size_t nlocs;

static uint16_t loc_seg(size_t j)
{
	return (uint16_t)(j % 7);
}

static uint32_t loc_off(size_t j)
{
	return (uint32_t)(32 + 16 * j);
}

/* A new location holding key. */
static size_t new_loc(uint64_t key)
{
	cr_assert_lt(nlocs, MAX_LOCS);
	loc_key[nlocs] = key;
	return nlocs++;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Hash of key: mixed, or a constant for keys in the collision range. */
#define COLLIDE_BASE 1000000u
#define COLLIDE_HASH 0x5a5a5a5a00000001ull
static uint64_t key_hash(uint64_t key)
{
	return key >= COLLIDE_BASE ? COLLIDE_HASH : mix(key);
}

typedef struct want {
	uint64_t key;
	uint16_t seg; /* where the match was found */
	uint32_t off;
	unsigned calls;
	int fail;     /* return this error from the first call instead */
} want;

/* index_has_loc as a value: 1 or 0, or the error it returned. */
static int has_loc(cellar_index *ix, uint64_t hash, uint16_t seg, uint32_t off)
{
	int found = -1, rc = index_has_loc(ix, hash, seg, off, &found);

	cr_assert(rc < 0 || found == 0 || found == 1, "found not set");
	return rc < 0 ? rc : found;
}

static int match_key(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	want *w = ctx;

	w->calls++;
	if (w->fail)
		return w->fail;
	cr_assert_geq(off, 32u);
	cr_assert_eq((off - 32) % 16, 0, "off %u is no location", off);
	size_t j = (off - 32) / 16;
	cr_assert_lt(j, nlocs, "off %u past the table", off);
	cr_assert_eq(seg, loc_seg(j), "seg %u does not go with off %u", seg, off);
	if (loc_key[j] != w->key)
		return CELLAR_OK;
	w->seg = seg;
	w->off = off;
	*hit = 1;
	return CELLAR_OK;
}

/* Insert or update key at a new location; returns the location. */
static size_t put(cellar_index *ix, uint64_t key)
{
	want w = { key, 0, 0, 0, 0 };
	index_ref ref;
	size_t j = new_loc(key);

	OK(index_find(ix, key_hash(key), match_key, &w, &ref));
	OK(index_reserve(ix, &ref));
	index_set(ix, &ref, key_hash(key), loc_seg(j), loc_off(j));
	index_grow(ix);
	return j;
}

/* Remove key; returns whether it was there. */
static int del(cellar_index *ix, uint64_t key, index_ref *out)
{
	want w = { key, 0, 0, 0, 0 };
	index_ref ref;

	OK(index_find(ix, key_hash(key), match_key, &w, &ref));
	if (out)
		*out = ref;
	if (!ref.found)
		return 0;
	OK(index_reserve(ix, &ref));
	index_remove(ix, &ref);
	return 1;
}

/* Look key up: CELLAR_OK with its location in *j, or an error code. */
static int get(cellar_index *ix, uint64_t key, size_t *j)
{
	want w = { key, 0, 0, 0, 0 };
	int rc = index_lookup(ix, key_hash(key), match_key, &w, NULL);

	if (rc == CELLAR_OK && j)
		*j = (w.off - 32) / 16;
	return rc;
}

/* Every key in [0, n) maps to where[key], and nothing else is there. */
static void check_all(cellar_index *ix, const size_t *where, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		size_t j = 0;
		int rc = get(ix, k, &j);
		if (where[k] == SIZE_MAX) {
			cr_assert_eq(rc, CELLAR_ENOTFOUND, "key %llu: %s",
			             (unsigned long long)k, cellar_strerror(rc));
		} else {
			cr_assert_eq(rc, CELLAR_OK, "key %llu: %s", (unsigned long long)k,
			             cellar_strerror(rc));
			cr_assert_eq(j, where[k], "key %llu", (unsigned long long)k);
		}
	}
}

/* Buckets linear hashing grows to for count keys from one bucket: the
 * fewest that keep count <= buckets * slots * LOAD_NUM / LOAD_DEN. */
static uint64_t expected_buckets(uint64_t count)
{
	uint64_t per = (uint64_t)BUCKET_SLOTS * INDEX_LOAD_NUM;
	uint64_t n = (count * INDEX_LOAD_DEN + per - 1) / per;

	return n ? n : 1;
}

static void reset(void)
{
	nlocs = 0;
}

/* ---- the table in memory ------------------------------------------------- */

Test(index, new_index_is_empty, .init = reset)
{
	cellar_index *ix = NULL;
	index_shape sh;

	OK(index_new(&ix, 77));
	cr_assert_not_null(ix);
	cr_assert_eq(ix->seed, 77);
	cr_assert_eq(ix->prim.n, 1);
	cr_assert_eq(ix->ovf.n, 1, "overflow bucket 0 is reserved");
	cr_assert_eq(ix->count, 0);
	cr_assert_eq(ix->level, 0);
	cr_assert_eq(ix->split, 0);
	cr_assert_eq(ix->ovf_used, 0);
	cr_assert_eq(get(ix, 5, NULL), CELLAR_ENOTFOUND);
	cr_assert_eq(has_loc(ix, mix(5), 0, 32), 0);
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.buckets, 1);
	cr_assert_eq(sh.overflow_buckets, 0);
	cr_assert_eq(sh.longest_chain, 1);
	cr_assert_eq(sh.used_slots, 0);
	index_free(ix);
	index_free(NULL);
}

Test(index, addr_and_tag_follow_linear_hashing)
{
	cellar_index ix;

	memset(&ix, 0, sizeof ix);
	cr_assert_eq(index_tag(0x1234567890abcdefull), 0x12345678u);
	ix.level = 0;
	ix.split = 0;
	cr_assert_eq(index_addr(&ix, 0xffffffffu), 0);
	ix.level = 2;
	ix.split = 1; /* bucket 0 has split into 0 and 4 */
	cr_assert_eq(index_addr(&ix, 0x4), 4);
	cr_assert_eq(index_addr(&ix, 0x8), 0);
	cr_assert_eq(index_addr(&ix, 0x5), 1);
	cr_assert_eq(index_addr(&ix, 0xd), 1, "bucket 1 not split yet");
	cr_assert_eq(index_addr(&ix, 0x7), 3);
	ix.level = 32;
	ix.split = 0;
	cr_assert_eq(index_addr(&ix, 0xfedcba98u), 0xfedcba98u);
}

Test(index, thousands_of_keys_all_found, .init = reset)
{
	enum { N = 6000 };
	static size_t where[N + 100];
	cellar_index *ix;
	index_shape sh;

	OK(index_new(&ix, 1));
	for (uint64_t k = 0; k < N; k++)
		where[k] = put(ix, k);
	for (uint64_t k = N; k < N + 100; k++)
		where[k] = SIZE_MAX;
	cr_assert_eq(ix->count, N);
	check_all(ix, where, N + 100);
	/* Splits happened, exactly as many as keep the load under the limit. */
	cr_assert_eq(ix->prim.n, expected_buckets(N));
	cr_assert_leq(ix->count * INDEX_LOAD_DEN,
	              ix->prim.n * BUCKET_SLOTS * INDEX_LOAD_NUM);
	cr_assert_eq(ix->prim.n, (1ull << ix->level) + ix->split);
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.buckets, ix->prim.n);
	cr_assert_eq(sh.used_slots, N);
	cr_assert_eq(sh.overflow_buckets, ix->ovf_used);
	cr_assert_geq(sh.longest_chain, 1);
	index_free(ix);
}

Test(index, splits_never_lose_keys, .init = reset)
{
	enum { N = 2500 };
	static size_t where[N];
	cellar_index *ix;
	unsigned splits = 0;

	OK(index_new(&ix, 2));
	for (uint64_t k = 0; k < N; k++)
		where[k] = SIZE_MAX;
	for (uint64_t k = 0; k < N; k++) {
		uint64_t before = ix->prim.n;
		where[k] = put(ix, k);
		cr_assert_eq(ix->prim.n, expected_buckets(k + 1), "key %llu",
		             (unsigned long long)k);
		if (ix->prim.n != before) {
			cr_assert_gt(ix->prim.n, before);
			splits++;
			check_all(ix, where, k + 1);
		}
	}
	cr_assert_eq(splits, expected_buckets(N) - 1);
	cr_assert_eq(ix->count, N);
	index_free(ix);
}

Test(index, update_moves_key_to_new_location, .init = reset)
{
	cellar_index *ix;
	index_ref ref;
	size_t first, second, j = 0;
	want w = { 42, 0, 0, 0, 0 };

	OK(index_new(&ix, 3));
	for (uint64_t k = 0; k < 100; k++)
		put(ix, k);
	first = 42; /* keys 0..99 got locations 0..99 */
	cr_assert_eq(has_loc(ix, mix(42), loc_seg(first), loc_off(first)), 1);
	OK(index_find(ix, mix(42), match_key, &w, &ref));
	cr_assert_eq(ref.found, 1);
	cr_assert_eq(ref.old_seg, loc_seg(first));
	cr_assert_eq(ref.old_off, loc_off(first));
	second = put(ix, 42);
	cr_assert_eq(ix->count, 100, "an update does not add a key");
	OK(get(ix, 42, &j));
	cr_assert_eq(j, second);
	cr_assert_eq(has_loc(ix, mix(42), loc_seg(first), loc_off(first)), 0);
	cr_assert_eq(has_loc(ix, mix(42), loc_seg(second), loc_off(second)),
	             1);
	index_free(ix);
}

Test(index, has_loc_checks_hash_and_location, .init = reset)
{
	cellar_index *ix;

	OK(index_new(&ix, 4));
	size_t j = put(ix, 9);
	cr_assert_eq(has_loc(ix, mix(9), loc_seg(j), loc_off(j)), 1);
	cr_assert_eq(has_loc(ix, mix(9), loc_seg(j), loc_off(j) + 16), 0);
	cr_assert_eq(has_loc(ix, mix(9), (uint16_t)(loc_seg(j) + 1),
	                           loc_off(j)), 0);
	cr_assert_eq(has_loc(ix, mix(10), loc_seg(j), loc_off(j)), 0);
	index_free(ix);
}

Test(index, remove_deletes_only_that_key, .init = reset)
{
	enum { N = 3000 };
	static size_t where[N];
	cellar_index *ix;

	OK(index_new(&ix, 5));
	for (uint64_t k = 0; k < N; k++)
		where[k] = put(ix, k);
	for (uint64_t k = 0; k < N; k += 2) {
		cr_assert_eq(del(ix, k, NULL), 1);
		where[k] = SIZE_MAX;
	}
	cr_assert_eq(ix->count, N / 2);
	check_all(ix, where, N);
	cr_assert_eq(del(ix, 0, NULL), 0, "already gone");
	/* Put them back. */
	for (uint64_t k = 0; k < N; k += 2)
		where[k] = put(ix, k);
	cr_assert_eq(ix->count, N);
	check_all(ix, where, N);
	index_free(ix);
}

Test(index, match_errors_stop_the_search, .init = reset)
{
	cellar_index *ix;
	index_ref ref;
	want w = { 7, 0, 0, 0, CELLAR_EIO };

	OK(index_new(&ix, 6));
	put(ix, 7);
	cr_assert_eq(index_lookup(ix, mix(7), match_key, &w, NULL), CELLAR_EIO);
	cr_assert_eq(w.calls, 1);
	w.calls = 0;
	cr_assert_eq(index_find(ix, mix(7), match_key, &w, &ref), CELLAR_EIO);
	cr_assert_eq(w.calls, 1);
	/* A hash with no candidates never calls match. */
	w.calls = 0;
	cr_assert_eq(index_lookup(ix, mix(8), match_key, &w, NULL),
	             CELLAR_ENOTFOUND);
	cr_assert_eq(w.calls, 0);
	index_free(ix);
}

/* ---- chains and overflow buckets ----------------------------------------- */

/* 13 keys with one hash fill a primary bucket and two overflow buckets. */
Test(index, colliding_keys_form_overflow_chain, .init = reset)
{
	cellar_index *ix;
	index_shape sh;
	size_t where[13], j = 0;

	OK(index_new(&ix, 7));
	for (int i = 0; i < 13; i++)
		where[i] = put(ix, COLLIDE_BASE + (uint64_t)i);
	cr_assert_eq(ix->count, 13);
	cr_assert_eq(ix->ovf_used, 2);
	for (int i = 0; i < 13; i++) {
		OK(get(ix, COLLIDE_BASE + (uint64_t)i, &j));
		cr_assert_eq(j, where[i]);
	}
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.buckets, ix->prim.n);
	cr_assert_eq(sh.overflow_buckets, 2);
	cr_assert_eq(sh.longest_chain, 3);
	cr_assert_eq(sh.used_slots, 13);
	cr_assert_eq(get(ix, COLLIDE_BASE + 13, NULL), CELLAR_ENOTFOUND);
	/* probes: buckets read until the match (or the chain's end). */
	static const struct {
		uint64_t key;
		unsigned probes;
		int rc;
	} pr[] = {
		{ COLLIDE_BASE + 0, 1, CELLAR_OK },  { COLLIDE_BASE + 5, 1, CELLAR_OK },
		{ COLLIDE_BASE + 6, 2, CELLAR_OK },  { COLLIDE_BASE + 11, 2, CELLAR_OK },
		{ COLLIDE_BASE + 12, 3, CELLAR_OK },
		{ COLLIDE_BASE + 99, 3, CELLAR_ENOTFOUND },
	};
	for (size_t i = 0; i < sizeof pr / sizeof *pr; i++) {
		want w = { pr[i].key, 0, 0, 0, 0 };
		unsigned probes = 0;
		cr_assert_eq(index_lookup(ix, COLLIDE_HASH, match_key, &w, &probes),
		             pr[i].rc, "key %llu", (unsigned long long)pr[i].key);
		cr_assert_eq(probes, pr[i].probes, "key %llu",
		             (unsigned long long)pr[i].key);
	}
	index_free(ix);
}

Test(index, removing_lone_overflow_entry_frees_bucket_for_reuse, .init = reset)
{
	cellar_index *ix;
	index_ref ref;
	size_t j = 0;

	OK(index_new(&ix, 8));
	ix->max_buckets = 1;
	for (int i = 0; i < 13; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	cr_assert_eq(ix->prim.n, 1, "max_buckets holds the table at one bucket");
	cr_assert_eq(ix->ovf_used, 2);
	uint64_t ovf_n = ix->ovf.n;
	cr_assert_eq(ix->free_head, 0);
	/* The 13th key sits alone in the second overflow bucket. */
	cr_assert_eq(del(ix, COLLIDE_BASE + 12, &ref), 1);
	cr_assert_eq(ref.in_ovf, 1);
	cr_assert_eq(ref.has_prev, 1);
	cr_assert_eq(ix->ovf_used, 1, "emptied bucket unlinked");
	cr_assert_eq(ix->free_head, ref.bucket, "and put on the free list");
	cr_assert_eq(ix->count, 12);
	index_shape sh;
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.longest_chain, 2);
	cr_assert_eq(sh.overflow_buckets, 1);
	/* A new colliding key reuses it rather than growing the array. */
	put(ix, COLLIDE_BASE + 100);
	cr_assert_eq(ix->ovf_used, 2);
	cr_assert_eq(ix->free_head, 0);
	cr_assert_eq(ix->ovf.n, ovf_n, "no new overflow bucket allocated");
	OK(get(ix, COLLIDE_BASE + 100, &j));
	cr_assert_eq(loc_key[j], COLLIDE_BASE + 100);
	for (int i = 0; i < 12; i++)
		OK(get(ix, COLLIDE_BASE + (uint64_t)i, NULL));
	index_free(ix);
}

Test(index, emptying_middle_overflow_bucket_relinks_chain, .init = reset)
{
	cellar_index *ix;
	index_shape sh;

	OK(index_new(&ix, 9));
	ix->max_buckets = 1;
	for (int i = 0; i < 13; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	/* Keys 6..11 went to the first overflow bucket. */
	for (int i = 6; i < 12; i++) {
		index_ref ref;
		cr_assert_eq(del(ix, COLLIDE_BASE + (uint64_t)i, &ref), 1);
		cr_assert_eq(ref.in_ovf, 1, "key %d", i);
		cr_assert_eq(ix->ovf_used, i < 11 ? 2u : 1u, "after key %d", i);
	}
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.longest_chain, 2);
	cr_assert_eq(sh.used_slots, 7);
	for (int i = 0; i < 13; i++)
		cr_assert_eq(get(ix, COLLIDE_BASE + (uint64_t)i, NULL),
		             i >= 6 && i < 12 ? CELLAR_ENOTFOUND : CELLAR_OK,
		             "key %d", i);
	index_free(ix);
}

Test(index, max_buckets_cap_forces_chains_and_free_list_reuse, .init = reset)
{
	enum { N = 600 };
	static size_t where[N];
	cellar_index *ix;
	index_shape sh;

	OK(index_new(&ix, 10));
	ix->max_buckets = 4;
	for (uint64_t k = 0; k < N; k++)
		where[k] = put(ix, k);
	cr_assert_eq(ix->prim.n, 4);
	cr_assert_gt(ix->ovf_used, 90, "600 keys in 4 chains of 6-slot buckets");
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.overflow_buckets, ix->ovf_used);
	cr_assert_gt(sh.longest_chain, 20);
	cr_assert_eq(sh.used_slots, N);
	check_all(ix, where, N);
	uint64_t ovf_n = ix->ovf.n, ovf_used = ix->ovf_used;

	/* Remove everything: every overflow bucket is unlinked. */
	for (uint64_t k = 0; k < N; k++) {
		uint64_t before = ix->ovf_used;
		cr_assert_eq(del(ix, k, NULL), 1);
		cr_assert_leq(ix->ovf_used, before);
		where[k] = SIZE_MAX;
	}
	cr_assert_eq(ix->count, 0);
	cr_assert_eq(ix->ovf_used, 0);
	cr_assert_neq(ix->free_head, 0);
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.longest_chain, 1);
	cr_assert_eq(sh.used_slots, 0);
	check_all(ix, where, N);

	/* Refill: the free-listed buckets are reused, none allocated. */
	for (uint64_t k = 0; k < N; k++)
		where[k] = put(ix, k);
	cr_assert_eq(ix->ovf.n, ovf_n);
	cr_assert_eq(ix->ovf_used, ovf_used);
	check_all(ix, where, N);
	index_free(ix);
}

Test(index, lifting_the_cap_splits_long_chains, .init = reset)
{
	enum { N = 3000 };
	static size_t where[N + 1];
	cellar_index *ix;
	index_shape sh;

	OK(index_new(&ix, 12));
	ix->max_buckets = 2;
	for (uint64_t k = 0; k < N; k++)
		where[k] = put(ix, k);
	cr_assert_eq(ix->prim.n, 2);
	uint64_t ovf_before = ix->ovf_used;
	cr_assert_gt(ovf_before, 450);
	/* One more insert without the cap: splits until the load is normal,
	 * redistributing chains of hundreds of buckets. */
	ix->max_buckets = 0;
	where[N] = put(ix, N);
	cr_assert_eq(ix->prim.n, expected_buckets(N + 1));
	cr_assert_leq(ix->count * INDEX_LOAD_DEN,
	              ix->prim.n * BUCKET_SLOTS * INDEX_LOAD_NUM);
	cr_assert_lt(ix->ovf_used, ovf_before / 2, "chains handed back buckets");
	OK(index_shape_of(ix, &sh));
	cr_assert_eq(sh.used_slots, N + 1);
	cr_assert_eq(sh.overflow_buckets, ix->ovf_used);
	check_all(ix, where, N + 1);
	/* The buckets the splits freed are reused before new ones. */
	uint64_t ovf_n = ix->ovf.n;
	cr_assert_neq(ix->free_head, 0);
	ix->max_buckets = ix->prim.n;
	for (uint64_t k = 0; k < 200; k++)
		put(ix, COLLIDE_BASE + k);
	cr_assert_eq(ix->ovf.n, ovf_n);
	index_free(ix);
}

Test(index, unreserve_returns_the_new_overflow_bucket, .init = reset)
{
	cellar_index *ix;
	index_ref ref;
	want w = { COLLIDE_BASE + 6, 0, 0, 0, 0 };

	OK(index_new(&ix, 11));
	ix->max_buckets = 1;
	for (int i = 0; i < 6; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	OK(index_find(ix, COLLIDE_HASH, match_key, &w, &ref));
	cr_assert_eq(ref.found, 0);
	cr_assert_eq(ref.slot, -1, "the chain is full");
	OK(index_reserve(ix, &ref));
	cr_assert_neq(ref.new_ovf, 0);
	cr_assert_eq(ix->ovf_used, 1);
	index_unreserve(ix, &ref);
	cr_assert_eq(ix->ovf_used, 0);
	cr_assert_eq(ref.new_ovf, 0);
	cr_assert_eq(ix->count, 6);
	/* The abandoned bucket is what the next insert gets. */
	uint64_t ovf_n = ix->ovf.n;
	put(ix, COLLIDE_BASE + 6);
	cr_assert_eq(ix->ovf.n, ovf_n);
	cr_assert_eq(ix->ovf_used, 1);
	OK(get(ix, COLLIDE_BASE + 6, NULL));
	index_free(ix);
}

/* Look key up and return how many buckets that read. */
static unsigned probes_of(cellar_index *ix, uint64_t key, int *rc)
{
	want w = { key, 0, 0, 0, 0 };
	unsigned n = 0;

	*rc = index_lookup(ix, key_hash(key), match_key, &w, &n);
	return n;
}

Test(index, chain_filter_stops_most_misses_at_the_primary_bucket,
     .init = reset)
{
	enum { KEYS = 9, ABSENT = 2000 };
	cellar_index *ix;
	unsigned stopped = 0, walked = 0;
	int rc;

	OK(index_new(&ix, 11));
	ix->max_buckets = 1; /* every key in bucket 0: six there, three beyond */
	for (uint64_t k = 0; k < KEYS; k++)
		put(ix, k);
	const uint8_t *head = ix->prim.chunks[0].base;
	cr_assert_neq(bucket_next(head), 0);
	cr_assert_neq(bucket_chain_filter(head), 0, "the chain has a filter");
	for (uint64_t k = 0; k < KEYS; k++) {
		cr_assert_geq(probes_of(ix, k, &rc), 1);
		OK(rc); /* never hidden */
	}
	for (uint64_t k = KEYS; k < KEYS + ABSENT; k++) {
		unsigned n = probes_of(ix, k, &rc);
		cr_assert_eq(rc, CELLAR_ENOTFOUND);
		int may = bucket_chain_may_hold(head, index_tag(key_hash(k)));
		cr_assert_eq(n, may ? 2u : 1u, "key %llu", (unsigned long long)k);
		stopped += !may;
		walked += may;
	}
	/* At most three of eight filter bits are set. */
	cr_assert_gt(stopped, ABSENT / 2, "stopped %u, walked %u", stopped, walked);

	/* A filter that hides a stored key is damage. */
	OK(index_verify_all(ix));
	uint8_t *h = ix->prim.chunks[0].base;
	uint32_t saved = le32_load(h + 24);
	bucket_set_chain(h, bucket_next(h), 0);
	cr_assert_eq(index_verify_all(ix), CELLAR_ECORRUPT);
	le32_store(h + 24, saved);
	OK(index_verify_all(ix));

	/* Deleting the chain's keys and emptying it clears the filter. */
	for (uint64_t k = 0; k < KEYS; k++)
		del(ix, k, NULL);
	cr_assert_eq(bucket_next(head), 0);
	cr_assert_eq(le32_load(head + 24), 0);
	/* Splits rebuild the filters: lift the cap and grow. */
	for (uint64_t k = 0; k < 3000; k++)
		put(ix, k);
	ix->max_buckets = 0;
	index_grow(ix);
	OK(index_verify_all(ix));
	for (uint64_t k = 0; k < 3000; k++) {
		probes_of(ix, k, &rc);
		OK(rc);
	}
	index_free(ix);
}

Test(index, reserve_is_noop_only_when_it_would_change_nothing, .init = reset)
{
	cellar_index *ix;
	index_ref ref;
	want w = { COLLIDE_BASE + 2, 0, 0, 0, 0 };

	OK(index_new(&ix, 11));
	ix->max_buckets = 1;
	put(ix, COLLIDE_BASE);
	/* A present key in a private bucket. */
	put(ix, COLLIDE_BASE + 2);
	OK(index_find(ix, COLLIDE_HASH, match_key, &w, &ref));
	cr_assert(ref.found);
	cr_assert(index_reserve_is_noop(ix, &ref));
	/* An absent key with a free slot in its bucket. */
	w.key = COLLIDE_BASE + 3;
	OK(index_find(ix, COLLIDE_HASH, match_key, &w, &ref));
	cr_assert(!ref.found && ref.slot >= 0);
	cr_assert(index_reserve_is_noop(ix, &ref));
	/* An absent key whose chain is full needs an overflow bucket. */
	for (int i = 3; i < 6; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	put(ix, COLLIDE_BASE + 1);
	w.key = COLLIDE_BASE + 6;
	OK(index_find(ix, COLLIDE_HASH, match_key, &w, &ref));
	cr_assert(!ref.found && ref.slot < 0);
	cr_assert(!index_reserve_is_noop(ix, &ref));
	/* A bucket still shared with the checkpoint must be copied first. */
	ix->prim.chunks[0].owned = 0;
	w.key = COLLIDE_BASE + 2;
	OK(index_find(ix, COLLIDE_HASH, match_key, &w, &ref));
	cr_assert(ref.found);
	cr_assert(!index_reserve_is_noop(ix, &ref));
	ix->prim.chunks[0].owned = 1;
	index_free(ix);
}

/* ---- the checkpoint file ------------------------------------------------- */

static cellar_fs *fs;

static void fs_setup(void)
{
	reset();
	OK(cellar_fs_mem_new(&fs));
	OK(fs->mkdir(fs, "/d"));
}

static void fs_teardown(void)
{
	cellar_fs_free(fs);
	fs = NULL;
}

static uint64_t file_size(const char *path)
{
	cellar_file *f;
	uint64_t size;

	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	OK(fs->close(fs, f));
	return size;
}

/* Overwrite len bytes of the file at off (creating it if needed). */
static void poke(const char *path, uint64_t off, const void *bytes, size_t len)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->write_at(fs, f, off, bytes, len));
	OK(fs->close(fs, f));
}

static void flip(const char *path, uint64_t off)
{
	cellar_file *f;
	uint8_t b;
	size_t got;

	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->read_at(fs, f, off, &b, 1, &got));
	cr_assert_eq(got, 1);
	b ^= 0x5a;
	OK(fs->write_at(fs, f, off, &b, 1));
	OK(fs->close(fs, f));
}

/* Rewrite one header field and re-seal the header checksum. */
static void set_header_u64(const char *path, uint64_t off, uint64_t v,
                           int width)
{
	uint8_t *h = malloc(INDEX_HEADER_SIZE);
	cellar_file *f;
	size_t got;

	cr_assert_not_null(h);
	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->read_at(fs, f, 0, h, INDEX_HEADER_SIZE, &got));
	cr_assert_eq(got, INDEX_HEADER_SIZE);
	if (width == 4)
		le32_store(h + off, (uint32_t)v);
	else
		le64_store(h + off, v);
	le64_store(h + INDEX_HEADER_SIZE - 8,
	           XXH3_64bits(h, INDEX_HEADER_SIZE - 8));
	OK(fs->write_at(fs, f, 0, h, INDEX_HEADER_SIZE));
	OK(fs->close(fs, f));
	free(h);
}

static index_seg sample_segs[2] = {
	{ 3, 10, 65536, 40000, 25504, 0 },
	{ 0, 11, 1234, 1000, 202, 0 },
};
static const index_ckpt sample_ck = { 11, 1234, sample_segs, 2 };

/* A table of n keys (optionally capped) written to /d/index. */
static cellar_index *build_and_write(uint64_t n, uint64_t max_buckets,
                                     size_t *where)
{
	cellar_index *ix;

	OK(index_new(&ix, 0xfeedull));
	ix->max_buckets = max_buckets;
	for (uint64_t k = 0; k < n; k++)
		where[k] = put(ix, k);
	OK(index_write(ix, fs, "/d", &sample_ck));
	return ix;
}

static int never_matches(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	(void)ctx, (void)seg, (void)off, (void)hit;
	return CELLAR_OK;
}

/*
 * A checkpoint goes to the file in whole, aligned FILE_WRITE_UNIT pieces
 * (files.h), then the real header over the zeros that held its place.
 */
Test(index, checkpoint_is_written_in_aligned_units, .init = fs_setup,
     .fini = fs_teardown)
{
	enum { N = 700000 };
	tc_wlog *log = tc_wlog_new(fs);
	cellar_index *ix, *lx;
	index_ckpt ck;

	OK(index_new(&ix, 7));
	for (uint64_t k = 0; k < N; k++) {
		index_ref ref;
		OK(index_find(ix, mix(k), never_matches, NULL, &ref));
		OK(index_reserve(ix, &ref));
		index_set(ix, &ref, mix(k), (uint16_t)(k % 7), 32);
		index_grow(ix);
	}
	/* A large table's chunks past the first slab's worth are cut from
	 * aligned 2 MiB slabs (huge pages). */
	cr_assert_gt(ix->prim.nchunks, 2 * INDEX_SLAB_CHUNKS);
	for (size_t c = 0; c < ix->prim.nchunks; c++)
		cr_assert_eq(ix->prim.chunks[c].owned,
		             c < INDEX_SLAB_CHUNKS ? CHUNK_HEAP : CHUNK_SLAB,
		             "chunk %zu", c);
	cr_assert_geq(ix->prim.nslabs, 2);
	for (size_t i = 0; i < ix->prim.nslabs; i++)
		cr_assert_eq((uintptr_t)ix->prim.slabs[i] % INDEX_SLAB_BYTES, 0);
	OK(index_write(ix, &log->fs, "/d", &sample_ck));
	uint64_t size = index_file_size(ix, 2);
	cr_assert_gt(size, 3 * (uint64_t)FILE_WRITE_UNIT);
	cr_assert_eq(file_size("/d/index"), size);
	size_t units = (size_t)(size / FILE_WRITE_UNIT);
	cr_assert_eq(log->n, units + 2, "%zu writes", log->n);
	for (size_t i = 0; i <= units; i++) {
		cr_assert_str_eq(log->w[i].path, "/d/index.tmp");
		cr_assert_eq(log->w[i].off, i * (uint64_t)FILE_WRITE_UNIT);
		cr_assert_eq(log->w[i].len, i < units ? FILE_WRITE_UNIT
		                                      : size % FILE_WRITE_UNIT);
	}
	cr_assert_eq(log->w[units + 1].off, 0);
	cr_assert_eq(log->w[units + 1].len, INDEX_HEADER_SIZE);

	OK(index_load(&lx, fs, "/d", &ck));
	cr_assert_eq(lx->count, N);
	cr_assert_eq(lx->prim.n, ix->prim.n);
	cr_assert_eq(lx->ovf.n, ix->ovf.n);
	OK(index_verify_all(lx));
	/* A write into a loaded table copies the chunk into a slab. */
	index_ref ref;
	OK(index_find(lx, mix(N), never_matches, NULL, &ref));
	OK(index_reserve(lx, &ref));
	index_set(lx, &ref, mix(N), 1, 32);
	size_t own = 0;
	for (size_t c = 0; c < lx->prim.nchunks; c++)
		if (lx->prim.chunks[c].owned) {
			cr_assert_eq(lx->prim.chunks[c].owned, CHUNK_SLAB);
			own++;
		}
	cr_assert_eq(own, 1);
	cr_assert_eq(lx->prim.nslabs, 1);
	index_free(lx);
	index_free(ix);
	tc_wlog_free(log);
}

Test(index, write_and_load_round_trip, .init = fs_setup, .fini = fs_teardown)
{
	enum { N = 7000 };
	static size_t where[N + 10];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(N, 0, where);
	for (uint64_t k = N; k < N + 10; k++)
		where[k] = SIZE_MAX;
	cr_assert_eq(file_size("/d/index"), index_file_size(ix, 2));
	cr_assert_eq(fs->open(fs, "/d/index.tmp", CELLAR_FS_READ,
	                      &(cellar_file *){ NULL }),
	             CELLAR_ENOENT, "index.tmp renamed away");

	OK(index_load(&lx, fs, "/d", &ck));
	cr_assert_eq(lx->seed, 0xfeedull);
	cr_assert_eq(lx->count, N);
	cr_assert_eq(lx->level, ix->level);
	cr_assert_eq(lx->split, ix->split);
	cr_assert_eq(lx->prim.n, ix->prim.n);
	cr_assert_eq(lx->ovf.n, ix->ovf.n);
	cr_assert_eq(lx->ovf_used, ix->ovf_used);
	cr_assert_eq(lx->free_head, ix->free_head);
	cr_assert_gt(lx->prim.nchunks, 1, "more than one chunk");
	for (size_t c = 0; c < lx->prim.nchunks; c++) {
		cr_assert_eq(lx->prim.chunks[c].owned, 0, "chunk %zu file-backed", c);
		cr_assert_eq(memcmp(lx->prim.chunks[c].base, ix->prim.chunks[c].base,
		                    lx->prim.chunks[c].nvalid * BUCKET_SIZE), 0,
		             "chunk %zu content", c);
	}
	cr_assert_eq(ck.seq, 11);
	cr_assert_eq(ck.off, 1234);
	cr_assert_eq(ck.nsegs, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(ck.segs[i].id, sample_segs[i].id);
		cr_assert_eq(ck.segs[i].seq, sample_segs[i].seq);
		cr_assert_eq(ck.segs[i].size, sample_segs[i].size);
		cr_assert_eq(ck.segs[i].live, sample_segs[i].live);
		cr_assert_eq(ck.segs[i].dead, sample_segs[i].dead);
	}
	free(ck.segs);
	check_all(lx, where, N + 10);
	index_shape sa, sb;
	OK(index_shape_of(ix, &sa));
	OK(index_shape_of(lx, &sb));
	cr_assert_eq(memcmp(&sa, &sb, sizeof sa), 0);
	index_free(ix);
	index_free(lx);
}

Test(index, loaded_table_with_overflow_round_trips, .init = fs_setup,
     .fini = fs_teardown)
{
	enum { N = 900 };
	static size_t where[N];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(N, 8, where);
	cr_assert_gt(ix->ovf_used, 0);
	/* Leave a free list in the file too: the newest keys sit at the
	 * chains' ends, so removing them empties whole overflow buckets. */
	for (uint64_t k = N / 2; k < N; k++) {
		cr_assert_eq(del(ix, k, NULL), 1);
		where[k] = SIZE_MAX;
	}
	cr_assert_neq(ix->free_head, 0);
	OK(index_write(ix, fs, "/d", &(index_ckpt){ 1, 32, NULL, 0 }));
	OK(index_load(&lx, fs, "/d", &ck));
	cr_assert_eq(ck.nsegs, 0);
	cr_assert_null(ck.segs);
	cr_assert_eq(ck.seq, 1);
	cr_assert_eq(ck.off, 32);
	cr_assert_eq(lx->count, ix->count);
	cr_assert_eq(lx->ovf_used, ix->ovf_used);
	cr_assert_eq(lx->free_head, ix->free_head);
	cr_assert_eq(lx->ovf.n, ix->ovf.n);
	check_all(lx, where, N);
	/* The loaded free list is usable: re-inserting allocates nothing. */
	lx->max_buckets = 8;
	uint64_t ovf_n = lx->ovf.n;
	for (uint64_t k = N / 2; k < N; k++)
		where[k] = put(lx, k);
	cr_assert_eq(lx->ovf.n, ovf_n);
	check_all(lx, where, N);
	index_free(ix);
	index_free(lx);
}

Test(index, loaded_table_is_copy_on_write, .init = fs_setup,
     .fini = fs_teardown)
{
	enum { N = 5000 };
	static size_t where[N + 3000], orig[N + 3000];
	cellar_index *ix, *lx, *again;
	index_ckpt ck;

	ix = build_and_write(N, 0, where);
	index_free(ix);
	memcpy(orig, where, sizeof where);
	for (uint64_t k = N; k < N + 3000; k++)
		orig[k] = SIZE_MAX;
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	/* Change the loaded table: updates, deletes, inserts and splits. */
	uint64_t prim_before = lx->prim.n;
	for (uint64_t k = 0; k < 1000; k++)
		where[k] = put(lx, k);
	for (uint64_t k = 1000; k < 2000; k++) {
		cr_assert_eq(del(lx, k, NULL), 1);
		where[k] = SIZE_MAX;
	}
	for (uint64_t k = N; k < N + 3000; k++)
		where[k] = put(lx, k);
	cr_assert_gt(lx->prim.n, prim_before, "the loaded table split");
	cr_assert_eq(lx->count, N + 3000 - 1000);
	check_all(lx, where, N + 3000);
	int owned = 0;
	for (size_t c = 0; c < lx->prim.nchunks; c++)
		owned += lx->prim.chunks[c].owned;
	cr_assert_gt(owned, 0);

	/* The file did not change under the writes. */
	OK(index_load(&again, fs, "/d", &ck));
	free(ck.segs);
	cr_assert_eq(again->count, N);
	cr_assert_eq(again->prim.n, prim_before);
	check_all(again, orig, N + 3000);
	index_free(again);

	/* And the changed table checkpoints and loads again. */
	OK(index_write(lx, fs, "/d", &sample_ck));
	index_free(lx);
	OK(index_load(&again, fs, "/d", &ck));
	free(ck.segs);
	cr_assert_eq(again->count, N + 2000);
	check_all(again, where, N + 3000);
	index_free(again);
}

Test(index, damaged_bucket_chunk_fails_lookups_lazily, .init = fs_setup,
     .fini = fs_teardown)
{
	enum { N = 7000 };
	static size_t where[N];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(N, 0, where);
	cr_assert_gt(ix->prim.n, INDEX_CHUNK_BUCKETS, "two primary chunks");
	index_free(ix);
	/* Damage one byte of primary bucket 1030, in the second chunk. */
	flip("/d/index", INDEX_HEADER_SIZE + 1030 * BUCKET_SIZE + 41);
	OK(index_load(&lx, fs, "/d", &ck)); /* buckets are checked lazily */
	free(ck.segs);
	unsigned good = 0, bad = 0;
	for (uint64_t k = 0; k < N; k++) {
		uint64_t a = index_addr(lx, index_tag(mix(k)));
		int rc = get(lx, k, NULL);
		if (a >= INDEX_CHUNK_BUCKETS) {
			cr_assert_eq(rc, CELLAR_ECORRUPT, "key %llu in chunk 1",
			             (unsigned long long)k);
			cr_assert_lt(has_loc(lx, mix(k), 0, 32), 0);
			bad++;
		} else {
			cr_assert_eq(rc, CELLAR_OK, "key %llu in chunk 0: %s",
			             (unsigned long long)k, cellar_strerror(rc));
			good++;
		}
	}
	cr_assert_gt(good, 0);
	cr_assert_gt(bad, 0);
	index_shape sh;
	cr_assert_eq(index_shape_of(lx, &sh), CELLAR_ECORRUPT);
	/* Writing a damaged table refuses rather than sealing the damage. */
	cr_assert_eq(index_write(lx, fs, "/d", &sample_ck), CELLAR_ECORRUPT);
	/* Changing a key in the damaged chunk fails too. */
	for (uint64_t k = 0; k < N; k++) {
		if (index_addr(lx, index_tag(mix(k))) < INDEX_CHUNK_BUCKETS)
			continue;
		want w = { k, 0, 0, 0, 0 };
		index_ref ref;
		cr_assert_eq(index_find(lx, mix(k), match_key, &w, &ref),
		             CELLAR_ECORRUPT);
		break;
	}
	index_free(lx);
}

Test(index, damaged_overflow_chunk_fails_lookups_through_it,
     .init = fs_setup, .fini = fs_teardown)
{
	enum { N = 300 };
	static size_t where[N];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(N, 2, where); /* two long chains */
	uint64_t prim_n = ix->prim.n;
	cr_assert_eq(prim_n, 2);
	cr_assert_gt(ix->ovf_used, 40);
	index_free(ix);
	/* Overflow bucket 1 (the first real one). */
	flip("/d/index", INDEX_HEADER_SIZE + (prim_n + 1) * BUCKET_SIZE + 3);
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	unsigned bad = 0;
	for (uint64_t k = 0; k < N; k++) {
		int rc = get(lx, k, NULL);
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT, "key %llu: %s",
		          (unsigned long long)k, cellar_strerror(rc));
		bad += rc == CELLAR_ECORRUPT;
	}
	cr_assert_gt(bad, 0);
	index_free(lx);
}

Test(index, damaged_tail_fails_load, .init = fs_setup, .fini = fs_teardown)
{
	enum { N = 200 };
	static size_t where[N];
	cellar_index *ix, *lx = (cellar_index *)1;
	index_ckpt ck;

	ix = build_and_write(N, 0, where);
	uint64_t sums = INDEX_HEADER_SIZE + (ix->prim.n + ix->ovf.n) * BUCKET_SIZE;
	uint64_t size = index_file_size(ix, 2);
	index_free(ix);
	/* The tail (chunk sums, segment table) is checked when loading. */
	static const uint64_t at[] = { 0, 2, 8, 16 + 8, 16 + 40 + 12 };
	for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
		cr_assert_lt(sums + at[i], size);
		flip("/d/index", sums + at[i]);
		cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT,
		             "tail byte %llu", (unsigned long long)at[i]);
		cr_assert_null(lx);
		cr_assert_null(ck.segs);
		flip("/d/index", sums + at[i]);
	}
	flip("/d/index", size - 1);
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	flip("/d/index", size - 1);
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	for (uint64_t k = 0; k < N; k++)
		OK(get(lx, k, NULL));
	index_free(lx);
}

Test(index, damaged_header_fails_load, .init = fs_setup, .fini = fs_teardown)
{
	static const uint64_t offs[] = { 0, 7, 8, 17, 24, 33, 48, 56, 64, 80, 96,
	                                 104, 112, 119, 200, 4000,
	                                 INDEX_HEADER_SIZE - 1 };
	static size_t where[100];
	cellar_index *ix, *lx = (cellar_index *)1;
	index_ckpt ck;

	ix = build_and_write(100, 0, where);
	index_free(ix);
	for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
		flip("/d/index", offs[i]);
		cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT,
		             "byte %llu", (unsigned long long)offs[i]);
		cr_assert_null(lx);
		cr_assert_null(ck.segs);
		flip("/d/index", offs[i]);
	}
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	index_free(lx);
}

Test(index, impossible_header_fails_load, .init = fs_setup,
     .fini = fs_teardown)
{
	static size_t where[500];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(500, 0, where);
	uint64_t n = ix->prim.n, m = ix->ovf.n, level = ix->level;
	uint64_t split = ix->split;
	index_free(ix);
	/* Sealed headers whose fields contradict each other. */
	set_header_u64("/d/index", 48, n + 1, 8); /* buckets != 2^level + split */
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 48, n, 8);
	set_header_u64("/d/index", 40, 1ull << level, 8); /* split >= 2^level */
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 40, split, 8);
	set_header_u64("/d/index", 32, 33, 8); /* level > 32 */
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 32, level, 8);
	set_header_u64("/d/index", 104, INDEX_CHUNK_SHIFT + 1, 8);
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 104, INDEX_CHUNK_SHIFT, 8);
	set_header_u64("/d/index", 24, (n + m) * BUCKET_SLOTS + 1, 8); /* count */
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 24, 500, 8);
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	cr_assert_eq(lx->count, 500);
	index_free(lx);
}

Test(index, wrong_file_size_fails_load, .init = fs_setup, .fini = fs_teardown)
{
	static size_t where[100];
	cellar_index *ix, *lx;
	index_ckpt ck;
	cellar_file *f;

	ix = build_and_write(100, 0, where);
	uint64_t size = index_file_size(ix, 2);
	index_free(ix);
	cr_assert_eq(file_size("/d/index"), size);
	poke("/d/index", size, "x", 1); /* one byte too long */
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	OK(fs->open(fs, "/d/index", CELLAR_FS_WRITE, &f));
	OK(fs->truncate(fs, f, size - 1)); /* one byte too short */
	OK(fs->close(fs, f));
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	OK(fs->open(fs, "/d/index", CELLAR_FS_WRITE, &f));
	OK(fs->truncate(fs, f, 100)); /* shorter than the header */
	OK(fs->close(fs, f));
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	OK(fs->open(fs, "/d/index", CELLAR_FS_WRITE, &f));
	OK(fs->truncate(fs, f, 0));
	OK(fs->close(fs, f));
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
}

Test(index, newer_version_is_eversion, .init = fs_setup, .fini = fs_teardown)
{
	static size_t where[10];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(10, 0, where);
	index_free(ix);
	set_header_u64("/d/index", 8, 2, 4);
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_EVERSION);
	cr_assert_null(lx);
	set_header_u64("/d/index", 8, 0, 4);
	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ECORRUPT);
	set_header_u64("/d/index", 8, 1, 4);
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	index_free(lx);
}

Test(index, missing_file_is_enoent, .init = fs_setup, .fini = fs_teardown)
{
	cellar_index *lx = (cellar_index *)1;
	index_ckpt ck;

	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ENOENT);
	cr_assert_null(lx);
	cr_assert_eq(index_load(&lx, fs, "/nowhere", &ck), CELLAR_ENOENT);
}

Test(index, write_replaces_previous_checkpoint, .init = fs_setup,
     .fini = fs_teardown)
{
	static size_t where[50];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(50, 0, where);
	/* A stale index.tmp does not get in the way. */
	poke("/d/index.tmp", 0, "garbage", 7);
	cr_assert_eq(del(ix, 3, NULL), 1);
	OK(index_write(ix, fs, "/d", &(index_ckpt){ 2, 99, NULL, 0 }));
	OK(index_load(&lx, fs, "/d", &ck));
	cr_assert_eq(lx->count, 49);
	cr_assert_eq(ck.seq, 2);
	cr_assert_eq(ck.off, 99);
	cr_assert_eq(get(lx, 3, NULL), CELLAR_ENOTFOUND);
	cr_assert_eq(get(lx, 4, NULL), CELLAR_OK);
	cr_assert_eq(file_size("/d/index"), index_file_size(ix, 0));
	index_free(ix);
	index_free(lx);
}

/*
 * test_index.c - the linear-hash table (src/index.h): lookups, find /
 * reserve / set / remove, chains and overflow buckets, splits, the chain
 * cursor and the accessors, over the synthetic store of test_index_store.h.
 * Chunk memory is test_index_chunk.c's, the checkpoint file
 * test_index_file.c's.
 */
#include "test_index_store.h"

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

/* ---- the chain cursor ---------------------------------------------------- */

/* A table whose one primary bucket has n colliding keys, in insert order. */
static cellar_index *one_chain(uint64_t seed, int n)
{
	cellar_index *ix;

	OK(index_new(&ix, seed));
	index_set_max_buckets(ix, 1);
	for (int i = 0; i < n; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	cr_assert_eq(ix->prim.n, 1);
	return ix;
}

/* The overflow bucket at the end of the chain at primary bucket 0. */
static uint8_t *last_bucket(cellar_index *ix)
{
	index_chain c;
	uint8_t *last = NULL;
	int rc;

	for (rc = index_chain_first(&c, ix, 0, INDEX_CHAIN_CHECKED);
	     rc == CELLAR_OK && c.b; rc = index_chain_next(&c))
		last = c.b;
	OK(rc);
	return last;
}

/* Walk the chain at bucket 0 with how; the error, and *steps its steps. */
static int walk(cellar_index *ix, int how, uint64_t *steps)
{
	index_chain c;
	int rc;

	for (rc = index_chain_first(&c, ix, 0, how); rc == CELLAR_OK && c.b;
	     rc = index_chain_next(&c))
		cr_assert_leq(c.steps, ix->ovf.n, "the walk goes on too long");
	*steps = c.steps;
	return rc;
}

Test(index, chain_cursor_walks_overflow_buckets_in_order, .init = reset)
{
	/* 20 keys: six in the primary bucket, 6 + 6 + 2 in three overflow
	 * buckets, each filled in insert order. */
	cellar_index *ix = one_chain(21, 20);
	const uint8_t *prev = NULL;
	index_chain c;
	uint64_t seen = 0;
	int rc, key = 0;

	cr_assert_eq(ix->ovf_used, 3);
	for (rc = index_chain_first(&c, ix, 0, INDEX_CHAIN_CHECKED);
	     rc == CELLAR_OK && c.b; rc = index_chain_next(&c)) {
		if (c.steps == 0) {
			cr_assert_eq(c.at, 0);
			cr_assert_eq(c.b, index_bucket_addr(&ix->prim, 0));
		} else {
			cr_assert_eq(c.at, bucket_next(prev), "step %llu",
			             (unsigned long long)c.steps);
			cr_assert_eq(c.b, index_bucket_addr(&ix->ovf, c.at));
		}
		cr_assert_eq(c.steps, seen, "one step per link");
		cr_assert_eq(bucket_used(c.b), c.steps < 3 ? 6 : 2);
		for (int i = 0; i < BUCKET_SLOTS && bucket_slot_used(c.b, i); i++) {
			size_t j = (bucket_off(c.b, i) - 32) / 16;
			cr_assert_eq(loc_key[j], COLLIDE_BASE + (uint64_t)key++,
			             "keys in insert order");
		}
		prev = c.b;
		seen++;
	}
	OK(rc);
	cr_assert_eq(seen, 4, "a primary and three overflow buckets");
	cr_assert_eq(key, 20);
	cr_assert_null(c.b, "past the end");
	cr_assert_eq(c.steps, 3, "the cursor still names the last bucket");
	cr_assert_eq(index_bucket_addr(&ix->ovf, c.at), prev);
	/* The raw walk sees the same chain. */
	uint64_t steps = 0;
	OK(walk(ix, INDEX_CHAIN_RAW, &steps));
	cr_assert_eq(steps, 3);
	index_free(ix);
}

Test(index, chain_cursor_refuses_a_link_out_of_range, .init = reset)
{
	cellar_index *ix = one_chain(22, 14);
	uint8_t *last = last_bucket(ix);
	uint64_t steps = 0;
	index_ref ref;
	index_shape sh;
	want w = { COLLIDE_BASE + 99, 0, 0, 0, 0 };

	bucket_set_next(last, (uint32_t)ix->ovf.n); /* one past the array */
	for (int how = INDEX_CHAIN_CHECKED; how <= INDEX_CHAIN_RAW; how++) {
		cr_assert_eq(walk(ix, how, &steps), CELLAR_ECORRUPT);
		cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
		cr_assert_eq(steps, 2, "stopped at the bad link");
	}
	/* Every walk of the table reports it. */
	cr_assert_eq(index_lookup(ix, COLLIDE_HASH, match_key, &w, NULL),
	             CELLAR_ECORRUPT);
	cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
	cr_assert_eq(index_find(ix, COLLIDE_HASH, match_key, &w, &ref),
	             CELLAR_ECORRUPT);
	cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
	cr_assert_eq(index_shape_of(ix, &sh), CELLAR_ECORRUPT);
	cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
	cr_assert_eq(index_verify_all(ix), CELLAR_ECORRUPT);
	/* A key before the break is still found. */
	OK(get(ix, COLLIDE_BASE + 1, NULL));
	bucket_set_next(last, 0);
	OK(index_verify_all(ix));
	index_free(ix);
}

Test(index, chain_cursor_stops_a_cycle, .init = reset)
{
	cellar_index *ix = one_chain(23, 20);
	uint8_t *last = last_bucket(ix);
	uint32_t first = bucket_next(index_bucket_addr(&ix->prim, 0));
	uint64_t steps = 0;
	unsigned probes = 0;
	index_shape sh;
	want w = { COLLIDE_BASE + 99, 0, 0, 0, 0 };

	cr_assert_neq(first, 0);
	bucket_set_next(last, first); /* back to the first overflow bucket */
	for (int how = INDEX_CHAIN_CHECKED; how <= INDEX_CHAIN_RAW; how++) {
		cr_assert_eq(walk(ix, how, &steps), CELLAR_ECORRUPT);
		cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
		cr_assert_eq(steps, ix->ovf.n, "no more steps than buckets");
	}
	cr_assert_eq(index_lookup(ix, COLLIDE_HASH, match_key, &w, &probes),
	             CELLAR_ECORRUPT);
	cr_assert_str_eq(cellar_errmsg(), "index: broken overflow chain");
	cr_assert_eq(probes, ix->ovf.n + 1, "buckets read before the stop");
	cr_assert_eq(index_shape_of(ix, &sh), CELLAR_ECORRUPT);
	cr_assert_eq(index_verify_all(ix), CELLAR_ECORRUPT);
	bucket_set_next(last, 0);
	OK(index_verify_all(ix));
	index_free(ix);
}

/* ---- accessors ------------------------------------------------------------- */

Test(index, accessors_report_the_table, .init = reset)
{
	cellar_index *ix;
	uint64_t buckets = 0, overflow = 0;

	OK(index_new(&ix, 0xabcdefull));
	cr_assert_eq(index_seed(ix), 0xabcdefull);
	cr_assert_eq(index_count(ix), 0);
	index_sizes(ix, &buckets, &overflow);
	cr_assert_eq(buckets, 1);
	cr_assert_eq(overflow, 0);
	/* The cap holds the table at one bucket: 13 keys need two more. */
	index_set_max_buckets(ix, 1);
	cr_assert_eq(ix->max_buckets, 1);
	for (int i = 0; i < 13; i++)
		put(ix, COLLIDE_BASE + (uint64_t)i);
	cr_assert_eq(index_count(ix), 13);
	index_sizes(ix, &buckets, &overflow);
	cr_assert_eq(buckets, 1);
	cr_assert_eq(overflow, 2);
	cr_assert_eq(overflow, ix->ovf_used);
	index_sizes(ix, NULL, &overflow); /* either output may be NULL */
	index_sizes(ix, &buckets, NULL);
	cr_assert_eq(buckets, 1);
	/* Lifting it lets the table grow to its load. */
	index_set_max_buckets(ix, 0);
	for (uint64_t k = 0; k < 1000; k++)
		put(ix, k);
	cr_assert_eq(index_count(ix), 1013);
	index_sizes(ix, &buckets, NULL);
	cr_assert_eq(buckets, expected_buckets(1013));
	cr_assert_eq(buckets, ix->prim.n);
	OK(index_warm(ix)); /* built in memory: no mapping, nothing to do */
	index_free(ix);
}

/*
 * test_index_chunk.c - the index's chunk memory (src/index_chunk.h): bucket
 * addresses, private chunks from the heap and from slabs, chunks shared
 * with a checkpoint and checked on first touch, copy-on-write; directly,
 * then through tables loaded from a checkpoint (test_index_store.h).
 */
#include "test_index_store.h"
#include "index_file.h"
#include "index_table.h"
#include "pages.h"

/* ---- the chunk API --------------------------------------------------------- */

Test(index_chunk, reserve_takes_heap_chunks_then_slab_chunks)
{
	index_array a;
	size_t n = INDEX_SLAB_CHUNKS + 2;

	memset(&a, 0, sizeof a);
	cr_assert_eq(index_chunks_for(0), 0);
	cr_assert_eq(index_chunks_for(1), 1);
	cr_assert_eq(index_chunks_for(INDEX_CHUNK_BUCKETS), 1);
	cr_assert_eq(index_chunks_for(INDEX_CHUNK_BUCKETS + 1), 2);
	OK(index_array_reserve(&a, (uint64_t)n * INDEX_CHUNK_BUCKETS));
	cr_assert_eq(a.nchunks, n);
	cr_assert_eq(a.n, 0, "the array's count is the caller's");
	for (size_t c = 0; c < n; c++) {
		cr_assert_eq(a.chunks[c].owned,
		             c < INDEX_SLAB_CHUNKS ? CHUNK_HEAP : CHUNK_SLAB,
		             "chunk %zu", c);
		cr_assert_eq(atomic_load(&a.chunks[c].state), CHUNK_OK);
		cr_assert_eq((uintptr_t)a.chunks[c].base % 64, 0);
		cr_assert(index_bucket_is_private(&a, (uint64_t)c
		                                          << INDEX_CHUNK_SHIFT));
		for (size_t k = 0; k < INDEX_CHUNK_BYTES; k++)
			cr_assert_eq(a.chunks[c].base[k], 0, "chunk %zu zeroed", c);
	}
	/* Slab chunks are cut one after another from one aligned slab. */
	cr_assert_eq(a.nslabs, 1);
	cr_assert_eq((uintptr_t)a.slabs[0] % INDEX_SLAB_BYTES, 0);
	cr_assert_eq(a.chunks[INDEX_SLAB_CHUNKS].base, a.slabs[0]);
	cr_assert_eq(a.chunks[INDEX_SLAB_CHUNKS + 1].base,
	             a.slabs[0] + INDEX_CHUNK_BYTES);
	cr_assert_eq(a.slab_used, 2 * INDEX_CHUNK_BYTES);
	/* Reserving what exists already changes nothing. */
	OK(index_array_reserve(&a, 5));
	cr_assert_eq(a.nchunks, n);
	index_array_free(&a);
	cr_assert_null(a.chunks);
	cr_assert_eq(a.nchunks, 0);
	cr_assert_eq(a.nslabs, 0);
}

Test(index_chunk, bucket_addr_finds_bucket_in_its_chunk)
{
	index_array a;
	uint8_t *b;

	memset(&a, 0, sizeof a);
	OK(index_array_reserve(&a, 3 * INDEX_CHUNK_BUCKETS));
	cr_assert_eq(index_bucket_addr(&a, 0), a.chunks[0].base);
	cr_assert_eq(index_bucket_addr(&a, 7), a.chunks[0].base + 7 * BUCKET_SIZE);
	cr_assert_eq(index_bucket_addr(&a, INDEX_CHUNK_BUCKETS - 1),
	             a.chunks[0].base + INDEX_CHUNK_BYTES - BUCKET_SIZE);
	cr_assert_eq(index_bucket_addr(&a, INDEX_CHUNK_BUCKETS), a.chunks[1].base);
	cr_assert_eq(index_bucket_addr(&a, 2 * INDEX_CHUNK_BUCKETS + 5),
	             a.chunks[2].base + 5 * BUCKET_SIZE);
	/* The checked variant gives the same address, and what is written
	 * there is what a later read sees. */
	for (uint64_t i = 0; i < 3 * INDEX_CHUNK_BUCKETS; i += 341) {
		OK(index_bucket_checked(&a, i, &b));
		cr_assert_eq(b, index_bucket_addr(&a, i));
		bucket_set(b, 0, (uint32_t)i + 1, 3, 32);
	}
	for (uint64_t i = 0; i < 3 * INDEX_CHUNK_BUCKETS; i += 341) {
		OK(index_bucket_own(&a, i, &b)); /* already private: no copy */
		cr_assert_eq(b, index_bucket_addr(&a, i));
		cr_assert_eq(bucket_tag(b, 0), (uint32_t)i + 1);
	}
	index_array_free(&a);
}

/* Two chunks' worth of "checkpoint" buckets: chunk 0 whole (sum right),
 * chunk 1 with nvalid buckets and a wrong sum when bad1. */
static uint8_t *share_two(index_array *a, uint32_t nvalid1, int bad1)
{
	uint8_t *file = aligned_alloc(64, 2 * INDEX_CHUNK_BYTES);

	cr_assert_not_null(file);
	for (size_t k = 0; k < 2 * INDEX_CHUNK_BYTES; k++)
		file[k] = (uint8_t)(k * 7 + 1);
	memset(a, 0, sizeof *a);
	OK(index_array_alloc_chunks(a, 2));
	cr_assert_eq(a->nchunks, 2);
	index_chunk_share(a, 0, file, INDEX_CHUNK_BUCKETS,
	                  hash_checksum(file, INDEX_CHUNK_BYTES));
	uint64_t sum1 = hash_checksum(file + INDEX_CHUNK_BYTES,
	                              (size_t)nvalid1 * BUCKET_SIZE);
	index_chunk_share(a, 1, file + INDEX_CHUNK_BYTES, nvalid1,
	                  bad1 ? sum1 ^ 1 : sum1);
	a->n = INDEX_CHUNK_BUCKETS + nvalid1;
	return file;
}

Test(index_chunk, shared_chunk_is_checked_on_first_touch)
{
	index_array a;
	uint8_t *file = share_two(&a, 100, 1), *b = file;

	cr_assert_eq(atomic_load(&a.chunks[0].state), CHUNK_UNCHECKED);
	cr_assert_not(index_bucket_is_private(&a, 0));
	OK(index_bucket_checked(&a, 3, &b));
	cr_assert_eq(b, file + 3 * BUCKET_SIZE, "the checkpoint's own bytes");
	cr_assert_eq(atomic_load(&a.chunks[0].state), CHUNK_OK);
	cr_assert_eq(index_bucket_checked(&a, INDEX_CHUNK_BUCKETS + 2, &b),
	             CELLAR_ECORRUPT);
	cr_assert_null(b);
	cr_assert_str_eq(cellar_errmsg(), "index: bucket chunk failed its "
	                 "checksum; remove the index file to rebuild it");
	cr_assert_eq(atomic_load(&a.chunks[1].state), CHUNK_BAD);
	/* The verdict sticks, for every bucket of the chunk. */
	cr_assert_eq(index_bucket_checked(&a, INDEX_CHUNK_BUCKETS, &b),
	             CELLAR_ECORRUPT);
	cr_assert_eq(index_chunk_check(&a.chunks[1]), CELLAR_ECORRUPT);
	cr_assert_eq(index_array_check(&a), CELLAR_ECORRUPT);
	/* A damaged chunk is never copied into private memory. */
	cr_assert_eq(index_bucket_own(&a, INDEX_CHUNK_BUCKETS, &b),
	             CELLAR_ECORRUPT);
	cr_assert_not(index_bucket_is_private(&a, INDEX_CHUNK_BUCKETS));
	index_array_free(&a);
	free(file);
}

Test(index_chunk, owning_a_shared_chunk_copies_it)
{
	index_array a;
	uint8_t *file = share_two(&a, 100, 0), *b;
	uint8_t *orig = malloc(2 * INDEX_CHUNK_BYTES);

	cr_assert_not_null(orig);
	memcpy(orig, file, 2 * INDEX_CHUNK_BYTES);
	OK(index_array_check(&a));
	OK(index_bucket_own(&a, INDEX_CHUNK_BUCKETS + 9, &b));
	cr_assert(index_bucket_is_private(&a, INDEX_CHUNK_BUCKETS));
	cr_assert_eq(a.chunks[1].owned, CHUNK_HEAP);
	cr_assert_not(index_bucket_is_private(&a, 0), "chunk 0 still shared");
	cr_assert_neq(a.chunks[1].base, file + INDEX_CHUNK_BYTES);
	cr_assert_eq(b, index_bucket_addr(&a, INDEX_CHUNK_BUCKETS + 9));
	/* The copy holds the valid buckets, zeros after them. */
	cr_assert_eq(memcmp(a.chunks[1].base, file + INDEX_CHUNK_BYTES,
	                    100 * BUCKET_SIZE), 0);
	for (size_t k = 100 * BUCKET_SIZE; k < INDEX_CHUNK_BYTES; k++)
		cr_assert_eq(a.chunks[1].base[k], 0);
	/* Writes go to the copy; the checkpoint's bytes stay as they were. */
	memset(b, 0xee, BUCKET_SIZE);
	cr_assert_eq(memcmp(file, orig, 2 * INDEX_CHUNK_BYTES), 0);
	uint8_t *again;
	OK(index_bucket_own(&a, INDEX_CHUNK_BUCKETS + 9, &again));
	cr_assert_eq(again, b, "owned once");
	cr_assert_eq(again[0], 0xee);
	index_array_free(&a);
	free(orig);
	free(file);
}

/* ---- through a loaded table ------------------------------------------------ */

Test(index_chunk, loaded_table_is_copy_on_write, .init = fs_setup,
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

Test(index_chunk, damaged_bucket_chunk_fails_lookups_lazily, .init = fs_setup,
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

Test(index_chunk, damaged_overflow_chunk_fails_lookups_through_it,
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

/* ---- frozen versions (checkpoints off the writer's path) -------------------- */

/* Freeze a with heap and slab chunks, change one of each, thaw. */
Test(index_chunk, frozen_chunks_are_copied_before_a_change_then_freed)
{
	index_array a, f;
	size_t n = INDEX_SLAB_CHUNKS + 2, heap = 1, slab = INDEX_SLAB_CHUNKS + 1;
	uint64_t copied = 0;
	uint8_t *b, *old_heap, *old_slab;

	memset(&a, 0, sizeof a);
	OK(index_array_reserve(&a, (uint64_t)n * INDEX_CHUNK_BUCKETS));
	a.n = (uint64_t)n * INDEX_CHUNK_BUCKETS;
	a.chunks[heap].base[5] = 0x11;
	a.chunks[slab].base[7] = 0x22;
	OK(index_array_freeze(&a, &f));
	cr_assert_eq(f.nchunks, n);
	cr_assert_eq(f.n, a.n);
	for (size_t c = 0; c < n; c++) {
		cr_assert_eq(f.chunks[c].base, a.chunks[c].base);
		cr_assert_not(index_bucket_is_private(&a, (uint64_t)c
		                                              << INDEX_CHUNK_SHIFT),
		              "chunk %zu is frozen", c);
	}
	old_heap = a.chunks[heap].base;
	old_slab = a.chunks[slab].base;
	/* The writer's change goes to a copy; the frozen bytes stay. */
	OK(index_bucket_own(&a, (uint64_t)heap << INDEX_CHUNK_SHIFT, &b));
	b[5] = 0x33;
	OK(index_bucket_own(&a, (uint64_t)slab << INDEX_CHUNK_SHIFT, &b));
	b[7] = 0x44;
	cr_assert_neq(a.chunks[heap].base, old_heap);
	cr_assert_neq(a.chunks[slab].base, old_slab);
	cr_assert_eq(old_heap[5], 0x11);
	cr_assert_eq(old_slab[7], 0x22);
	cr_assert_eq(f.chunks[heap].base[5], 0x11);
	cr_assert_eq(a.chunks[heap].base[5], 0x33);
	cr_assert_eq(a.chunks[slab].base[7], 0x44);
	cr_assert(index_bucket_is_private(&a, (uint64_t)heap << INDEX_CHUNK_SHIFT),
	          "the copy is the writer's");
	/* A second change of the same chunk copies nothing more. */
	b = a.chunks[heap].base;
	OK(index_bucket_own(&a, (uint64_t)heap << INDEX_CHUNK_SHIFT, &b));
	cr_assert_eq(b, a.chunks[heap].base);
	cr_assert_eq(a.frozen_copies, 2);
	index_array_thaw(&a, &f, &copied);
	cr_assert_eq(copied, 2);
	cr_assert_null(f.chunks);
	for (size_t c = 0; c < n; c++)
		cr_assert(index_bucket_is_private(&a, (uint64_t)c
		                                          << INDEX_CHUNK_SHIFT),
		          "chunk %zu thawed", c);
	/* The replaced slab chunk is reused by the next allocation. */
	cr_assert_eq(a.nslab_free, 1);
	OK(index_array_reserve(&a, (uint64_t)(n + 1) * INDEX_CHUNK_BUCKETS));
	cr_assert_eq(a.chunks[n].base, old_slab);
	cr_assert_eq(a.chunks[n].base[7], 0, "reused chunks are zeroed");
	index_array_free(&a); /* the heap original was freed at the thaw: ASan */
}

/* A shared (checkpoint) chunk is not frozen: its copy-on-write is as before. */
Test(index_chunk, shared_chunks_are_not_frozen)
{
	static uint8_t file[INDEX_CHUNK_BYTES] __attribute__((aligned(64)));
	index_array a, f;
	uint64_t copied = 1;
	uint8_t *b;

	memset(&a, 0, sizeof a);
	file[3] = 9;
	OK(index_array_alloc_chunks(&a, 1));
	index_chunk_share(&a, 0, file, INDEX_CHUNK_BUCKETS,
	                  hash_checksum(file, INDEX_CHUNK_BYTES));
	a.n = INDEX_CHUNK_BUCKETS;
	OK(index_array_freeze(&a, &f));
	cr_assert_eq(a.chunks[0].owned, CHUNK_SHARED);
	OK(index_bucket_own(&a, 0, &b));
	cr_assert_eq(b[3], 9);
	b[3] = 10;
	cr_assert_eq(file[3], 9);
	cr_assert_eq(f.chunks[0].base, file);
	index_array_thaw(&a, &f, &copied);
	cr_assert_eq(copied, 0, "a shared chunk's copy is no frozen copy");
	cr_assert_eq(a.chunks[0].owned, CHUNK_HEAP);
	index_array_free(&a);
}

/* Slabs made and faulted in ahead (index_array_spare_*) are cut before any
 * new slab, and the count wanted is what the free chunks do not cover. */
Test(index_chunk, spare_slabs_are_cut_before_new_ones)
{
	index_array a;
	size_t n = INDEX_SLAB_CHUNKS + 2;
	uint8_t *v[2];

	memset(&a, 0, sizeof a);
	OK(index_array_reserve(&a, 4 * INDEX_CHUNK_BUCKETS));
	cr_assert_eq(index_array_spare_wanted(&a, 1000), 0,
	             "a heap-backed array wants no slab");
	OK(index_array_reserve(&a, (uint64_t)n * INDEX_CHUNK_BUCKETS));
	/* One slab, two chunks of it cut: 30 more fit before a new one. */
	cr_assert_eq(index_array_spare_wanted(&a, INDEX_SLAB_CHUNKS - 2), 0);
	cr_assert_eq(index_array_spare_wanted(&a, INDEX_SLAB_CHUNKS - 1), 1);
	cr_assert_eq(index_array_spare_wanted(&a, 3 * INDEX_SLAB_CHUNKS), 3);
	v[0] = pages_slab_new_faulted();
	v[1] = pages_slab_new_faulted();
	cr_assert(v[0] && v[1]);
	for (size_t k = 0; k < PAGES_SLAB_BYTES; k += 4096)
		cr_assert_eq(v[1][k], 0, "a faulted slab is zero");
	index_array_spare_add(&a, v, 2);
	cr_assert_eq(a.nspare, 2);
	cr_assert_eq(index_array_spare_wanted(&a, 3 * INDEX_SLAB_CHUNKS), 1);
	/* Fill the first slab, then the next chunk comes from a spare. */
	size_t upto = INDEX_SLAB_CHUNKS + INDEX_SLAB_CHUNKS;
	OK(index_array_reserve(&a, (uint64_t)(upto + 1) * INDEX_CHUNK_BUCKETS));
	cr_assert_eq(a.nslabs, 2);
	cr_assert_eq(a.nspare, 1);
	cr_assert(a.slabs[1] == v[0] || a.slabs[1] == v[1]);
	cr_assert_eq(a.chunks[upto].base, a.slabs[1]);
	index_array_free(&a); /* the spare left is freed too: ASan */
}

/* The table-level plan asks for enough slabs to copy every chunk once. */
Test(index_chunk, spare_plan_covers_every_chunk)
{
	cellar_index *ix;
	index_spare sp;
	uint64_t keys = (uint64_t)(INDEX_SLAB_CHUNKS * 3) * INDEX_CHUNK_BUCKETS * 8;

	OK(index_new(&ix, 7));
	OK(index_presize(ix, keys));
	cr_assert_gt(ix->prim.nchunks, 2 * INDEX_SLAB_CHUNKS);
	index_spare_plan(ix, &sp, UINT64_MAX);
	cr_assert_geq(sp.n[0] * INDEX_SLAB_CHUNKS + ix->prim.nslab_free +
	                  (ix->prim.nslabs ? (INDEX_SLAB_BYTES - ix->prim.slab_used) /
	                                         INDEX_CHUNK_BYTES
	                                   : 0),
	              ix->prim.nchunks);
	cr_assert_gt(sp.n[0], 0);
	index_spare_make(&sp);
	size_t made = sp.n[0];
	index_spare_give(ix, &sp);
	cr_assert_null(sp.slabs);
	cr_assert_eq(ix->prim.nspare, made);
	index_spare_plan(ix, &sp, UINT64_MAX);
	cr_assert_eq(sp.n[0], 0, "the spares cover it now");
	index_spare_make(&sp);
	index_spare_give(ix, &sp);
	index_spare_plan(ix, &sp, 0);
	cr_assert_eq(sp.n[0] + sp.n[1], 0, "none when no chunk is to be copied");
	index_spare_make(&sp);
	index_spare_give(ix, &sp);
	index_free(ix);
}

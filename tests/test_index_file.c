/*
 * test_index_file.c - the index checkpoint file (src/index_file.h): writing
 * in aligned units, loading (mapped or read in), round trips, and refusing
 * damaged, impossible or foreign files; over the synthetic store and the
 * mem file system of test_index_store.h.
 */
#include "test_index_store.h"

/*
 * A checkpoint goes to the file in whole, aligned FILE_WRITE_UNIT pieces
 * (files.h), then the real header over the zeros that held its place.
 */
Test(index_file, checkpoint_is_written_in_aligned_units, .init = fs_setup,
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

Test(index_file, write_and_load_round_trip, .init = fs_setup, .fini = fs_teardown)
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

Test(index_file, loaded_table_with_overflow_round_trips, .init = fs_setup,
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

Test(index_file, damaged_tail_fails_load, .init = fs_setup, .fini = fs_teardown)
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

Test(index_file, damaged_header_fails_load, .init = fs_setup, .fini = fs_teardown)
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

Test(index_file, impossible_header_fails_load, .init = fs_setup,
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

Test(index_file, wrong_file_size_fails_load, .init = fs_setup, .fini = fs_teardown)
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

Test(index_file, newer_version_is_eversion, .init = fs_setup, .fini = fs_teardown)
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

Test(index_file, missing_file_is_enoent, .init = fs_setup, .fini = fs_teardown)
{
	cellar_index *lx = (cellar_index *)1;
	index_ckpt ck;

	cr_assert_eq(index_load(&lx, fs, "/d", &ck), CELLAR_ENOENT);
	cr_assert_null(lx);
	cr_assert_eq(index_load(&lx, fs, "/nowhere", &ck), CELLAR_ENOENT);
}

Test(index_file, write_replaces_previous_checkpoint, .init = fs_setup,
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

Test(index_file, warm_reads_the_whole_mapping, .init = fs_setup,
     .fini = fs_teardown)
{
	static size_t where[3000];
	cellar_index *ix, *lx;
	index_ckpt ck;

	ix = build_and_write(3000, 0, where);
	OK(index_load(&lx, fs, "/d", &ck));
	free(ck.segs);
	cr_assert_not_null(lx->map, "the mem fs maps");
	cr_assert_eq(lx->map_len, index_file_size(ix, 2));
	OK(index_warm(lx));
	/* Warming reads only: the table and its chunks are as loaded. */
	cr_assert_eq(lx->prim.chunks[0].owned, CHUNK_SHARED);
	check_all(lx, where, 3000);
	OK(index_warm(ix)); /* a table built in memory has nothing to warm */
	index_free(ix);
	index_free(lx);
}

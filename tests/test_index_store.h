/*
 * test_index_store.h - what the index suites (test_index.c,
 * test_index_chunk.c, test_index_file.c) share: a synthetic store over the
 * index and a checkpoint-file fixture on the mem file system.
 *
 * Keys are numbers, their hashes come from a mixer (or are forced equal),
 * and the "segments" are an in-test table that maps a location (seg, off)
 * back to the key stored there, which the match callback consults.  Each
 * suite is its own executable, so each gets its own copy of the state; the
 * helpers are static inline so that a suite need not use them all.
 */
#ifndef CELLAR_TEST_INDEX_STORE_H
#define CELLAR_TEST_INDEX_STORE_H

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

static inline uint16_t loc_seg(size_t j)
{
	return (uint16_t)(j % 7);
}

static inline uint32_t loc_off(size_t j)
{
	return (uint32_t)(32 + 16 * j);
}

/* A new location holding key. */
static inline size_t new_loc(uint64_t key)
{
	cr_assert_lt(nlocs, MAX_LOCS);
	loc_key[nlocs] = key;
	return nlocs++;
}

static inline uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Hash of key: mixed, or a constant for keys in the collision range. */
#define COLLIDE_BASE 1000000u
#define COLLIDE_HASH 0x5a5a5a5a00000001ull
static inline uint64_t key_hash(uint64_t key)
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
static inline int has_loc(cellar_index *ix, uint64_t hash, uint16_t seg,
                          uint32_t off)
{
	int found = -1, rc = index_has_loc(ix, hash, seg, off, &found);

	cr_assert(rc < 0 || found == 0 || found == 1, "found not set");
	return rc < 0 ? rc : found;
}

static inline int match_key(void *ctx, uint16_t seg, uint32_t off,
                            int *hit)
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
static inline size_t put(cellar_index *ix, uint64_t key)
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
static inline int del(cellar_index *ix, uint64_t key, index_ref *out)
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
static inline int get(cellar_index *ix, uint64_t key, size_t *j)
{
	want w = { key, 0, 0, 0, 0 };
	int rc = index_lookup(ix, key_hash(key), match_key, &w, NULL);

	if (rc == CELLAR_OK && j)
		*j = (w.off - 32) / 16;
	return rc;
}

/* Every key in [0, n) maps to where[key], and nothing else is there. */
static inline void check_all(cellar_index *ix, const size_t *where,
                             uint64_t n)
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
static inline uint64_t expected_buckets(uint64_t count)
{
	uint64_t per = (uint64_t)BUCKET_SLOTS * INDEX_LOAD_NUM;
	uint64_t n = (count * INDEX_LOAD_DEN + per - 1) / per;

	return n ? n : 1;
}

static inline void reset(void)
{
	nlocs = 0;
}

/* ---- the checkpoint file ------------------------------------------------- */

static cellar_fs *fs;

static inline void fs_setup(void)
{
	reset();
	OK(cellar_fs_mem_new(&fs));
	OK(fs->mkdir(fs, "/d"));
}

static inline void fs_teardown(void)
{
	cellar_fs_free(fs);
	fs = NULL;
}

static inline uint64_t file_size(const char *path)
{
	cellar_file *f;
	uint64_t size;

	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	OK(fs->close(fs, f));
	return size;
}

/* Overwrite len bytes of the file at off (creating it if needed). */
static inline void poke(const char *path, uint64_t off, const void *bytes,
                        size_t len)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->write_at(fs, f, off, bytes, len));
	OK(fs->close(fs, f));
}

static inline void flip(const char *path, uint64_t off)
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
static inline void set_header_u64(const char *path, uint64_t off,
                                  uint64_t v, int width)
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
	{ 3, 10, 65536, 40000, 25504, 0, 0 },
	{ 0, 11, 1234, 1000, 202, 0, 0 },
};
static const index_ckpt sample_ck = { 11, 1234, sample_segs, 2 };

/* A table of n keys (optionally capped) written to /d/index. */
static inline cellar_index *build_and_write(uint64_t n,
                                            uint64_t max_buckets,
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

static inline int never_matches(void *ctx, uint16_t seg, uint32_t off,
                                int *hit)
{
	(void)ctx, (void)seg, (void)off, (void)hit;
	return CELLAR_OK;
}

#endif

/*
 * build_index.h - the builder's index writer: from the (hash, location)
 * pairs of every record a build appended, write the index file in one pass
 * in bucket order, byte-compatible with a checkpoint (docs/format.md), so
 * that index_load opens it like any other.
 *
 * The table's geometry is index_geometry_for(keys).  Pairs that fit the
 * memory budget are sorted in memory; otherwise they are read from the
 * spill file and distributed into partition files by bucket address, each
 * about the size of the budget, which are then sorted and written one by
 * one.  Within a chain, pairs with the same 64-bit hash are resolved
 * through the caller's same_key callback: the later record wins (or, with
 * unique, the build fails with CELLAR_EEXIST).  When duplicates make the
 * key count smaller than the geometry was chosen for, the pass is run again
 * with the right geometry.
 *
 * Owns: the pairs' order, partition and scratch files (named
 * FILE_BUILD_* in files.h), the bucket layout of a built table (primary buckets
 * streamed with their chunk sums, overflow buckets gathered in a scratch
 * file and appended), the file's tail and header (through index_file.h's
 * encoders).
 * Must not: read records (same_key and dropped do that for it), know the
 * segments' files, or call the OS other than through the cellar_fs vtable.
 */
#ifndef CELLAR_BUILD_INDEX_H
#define CELLAR_BUILD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"
#include "index_file.h"

/*
 * One record's pair.  Spilled to scratch files as it is in memory: those
 * files live and die with one process and are never part of a store, so
 * they do not go through the little-endian codecs.
 */
typedef struct build_pair {
	uint64_t hash;
	uint32_t off;
	uint16_t seg;
	uint16_t pad;
} build_pair;

typedef struct build_source {
	cellar_fs *fs;
	const char *dir;      /* the build directory: scratch files go here */
	uint64_t seed;
	int unique;           /* a duplicate key is CELLAR_EEXIST */
	/* The pairs, in input order: nspill in the spill file (if any), then
	 * nmem in mem (room for cap).  build_index_write may open the spill
	 * file <dir>/FILE_BUILD_PAIRS itself (the caller closes and removes
	 * it) and grow mem for a skewed partition. */
	cellar_file *spill;
	uint64_t nspill;
	build_pair *mem;
	size_t nmem, cap;
	/* Do the records of a and b hold the same key? */
	int (*same_key)(void *ctx, const build_pair *a, const build_pair *b,
	                int *same);
	/* A pass begins: forget what dropped was told so far. */
	void (*begin_pass)(void *ctx);
	/* p's record was replaced by a later one with the same key. */
	int (*dropped)(void *ctx, const build_pair *p);
	/* After the last pass: fill ck (position and segment table). */
	int (*checkpoint)(void *ctx, index_ckpt *ck);
	void *ctx;
} build_source;

/**
 * Write <dir>/<name> as the index of the pairs of src (not synced; the
 * caller syncs it with the rest).  *keys gets the number of distinct keys.
 * Scratch files it made are removed on success.  CELLAR_EEXIST (unique and
 * a key added twice), or an error of the file system or of the callbacks.
 */
int build_index_write(build_source *src, const char *name, uint64_t *keys);

#endif

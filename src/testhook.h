/*
 * testhook.h - knobs and probes for the test suite only.
 *
 * Not part of the public API: they exist only in test builds, where meson
 * defines CELLAR_TEST_HOOKS for the internal static library the tests link.
 * The shipped library has none of them, and no branch or field for them on
 * any path.  The knobs are process-wide and read by cellar_open(), which
 * copies them into the handle: set them before opening a store and reset
 * them (to NULL / 0) afterwards.
 */
#ifndef CELLAR_TESTHOOK_H
#define CELLAR_TESTHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "cellar.h"

/** Key hash used instead of xxhash when non-NULL (to force collisions). */
typedef uint64_t (*cellar__hash_fn)(const void *key, size_t len, uint64_t seed);

#ifdef CELLAR_TEST_HOOKS
void cellar__test_set_hash(cellar__hash_fn fn);

/**
 * Stop the linear-hash table from growing beyond this many primary buckets
 * (0 = no limit), so that overflow chains form.
 */
void cellar__test_set_max_buckets(uint64_t n);

/** What the index and the segment set look like right now. */
typedef struct cellar__debug_info {
	uint64_t keys;             /* same as cellar_count() */
	uint64_t buckets;          /* primary buckets */
	uint64_t overflow_buckets; /* overflow buckets in use */
	uint64_t longest_chain;    /* buckets in the longest chain */
	uint64_t segments;         /* live segment files */
	uint64_t ckpt_seq;         /* log position the index file covers */
	uint64_t ckpt_off;
	uint64_t replayed_records; /* records replayed by the last open */
	int rebuilt;               /* 1 if the last open rebuilt the index */
} cellar__debug_info;

int cellar__debug(cellar_db *db, cellar__debug_info *out);

/**
 * Call fn(ctx) in every checkpoint written off the writer's path, after
 * the version is frozen and the writer mutex released, before the file is
 * written (NULL: none), so that a test can write while a checkpoint is in
 * progress.
 */
void cellar__test_set_ckpt_hook(void (*fn)(void *ctx), void *ctx);

/**
 * Call fn(ctx) in every write of an append buffer set aside
 * (writer_flush_offpath), after it is claimed and the writer mutex
 * released, before it is written (NULL: none).  fn may write, but not a
 * whole buffer's worth.
 */
void cellar__test_set_flush_hook(void (*fn)(void *ctx), void *ctx);
#endif

#endif

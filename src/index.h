/*
 * index.h - the index: a linear-hash table of 64-byte buckets (bucket.h)
 * mapping a key's hash to the location (segment id, offset) of its newest
 * record, plus the index file that checkpoints it.
 *
 * The index owns the table and its file; it never reads segments.  Whether
 * a slot whose tag matches really holds the key is asked of the caller
 * through an index_match_fn.
 *
 * Memory: buckets live in chunks of INDEX_CHUNK_BUCKETS.  A chunk either
 * points into the read-only mapping of the index file (verified against its
 * checksum on first touch) or is a private copy made when the writer first
 * changes it.  Growing the table only appends chunks, so no lookup ever sees
 * a bucket move.
 *
 * Concurrency: lookups run under the shared latch; every change runs under
 * the exclusive latch, taken by the caller (the db), except index_find and
 * index_write which the single writer runs without it.
 */
#ifndef CELLAR_INDEX_H
#define CELLAR_INDEX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bucket.h"
#include "cellar.h"
#include "cellar_fs.h"
#include "files.h"

#define INDEX_CHUNK_SHIFT 10
#define INDEX_CHUNK_BUCKETS (1u << INDEX_CHUNK_SHIFT)
#define INDEX_HEADER_SIZE 4096
/* Private chunks of a large table come from slabs of this size (index.c). */
#define INDEX_SLAB_BYTES FILE_WRITE_UNIT
#define INDEX_SLAB_CHUNKS (INDEX_SLAB_BYTES / ((size_t)INDEX_CHUNK_BUCKETS * BUCKET_SIZE))
/* Split when keys > slots * LOAD_NUM / LOAD_DEN. */
#define INDEX_LOAD_NUM 17
#define INDEX_LOAD_DEN 20
/* Linear hashing addresses buckets with the 32-bit tag: at most 2^32. */
#define INDEX_MAX_LEVEL 32

/**
 * Does the record at (seg, off) hold the key being looked up?  Set *hit to
 * 1 for yes (the search stops) and leave it 0 for no; return CELLAR_OK, or
 * a negative error (the search stops and returns it).
 */
typedef int (*index_match_fn)(void *ctx, uint16_t seg, uint32_t off,
                              int *hit);

/* How a chunk's buckets are held (index_chunk.owned). */
enum {
	CHUNK_SHARED = 0, /* in the checkpoint's mapping, read-only */
	CHUNK_HEAP = 1,   /* private, from the heap */
	CHUNK_SLAB = 2    /* private, cut from one of the array's slabs */
};

typedef struct index_chunk {
	uint8_t *base;       /* 64-byte-aligned buckets */
	atomic_uchar state;  /* CHUNK_* */
	uint8_t owned;       /* base is private: CHUNK_HEAP or CHUNK_SLAB */
	uint32_t nvalid;     /* buckets covered by checksum (file-backed) */
	uint64_t checksum;   /* expected XXH3 of the nvalid buckets */
} index_chunk;

typedef struct index_array {
	index_chunk *chunks;
	size_t nchunks, cap;
	uint64_t n; /* buckets in use (primary) or allocated (overflow) */
	uint8_t **slabs; /* INDEX_SLAB_BYTES areas private chunks are cut from */
	size_t nslabs, slab_used; /* bytes of the newest slab handed out */
} index_array;

/** A segment as recorded in a checkpoint. */
typedef struct index_seg {
	uint16_t id;
	uint64_t seq;
	uint64_t size; /* bytes the checkpoint covers */
	uint64_t live; /* bytes of live records */
	uint64_t dead; /* bytes of dead records and damage */
	uint32_t kept; /* of dead: carried tombstones (see segment.h) */
} index_seg;

/** What a checkpoint records besides the table. */
typedef struct index_ckpt {
	uint64_t seq, off;  /* log position covered: everything before it */
	index_seg *segs;    /* live segments at the checkpoint */
	size_t nsegs;
} index_ckpt;

typedef struct cellar_index {
	uint64_t seed;
	uint32_t level;
	uint64_t split;
	index_array prim, ovf;
	uint32_t free_head;  /* overflow free list, 0 = empty */
	uint64_t ovf_used;   /* overflow buckets in chains */
	uint64_t count;      /* keys */
	uint64_t max_buckets; /* test hook; 0 = no limit */
	/* the checkpoint file the clean chunks point into */
	cellar_fs *fs;
	cellar_file *file;
	const void *map;
	uint64_t map_len;
	uint8_t *loaded;     /* whole file read into memory (no map) */
} cellar_index;

/** Where index_find found a key, or where it would insert it. */
typedef struct index_ref {
	int found;
	uint64_t addr;        /* primary bucket of the chain */
	int in_ovf;           /* target bucket is an overflow bucket */
	uint64_t bucket;      /* index of the target bucket in its array */
	int slot;             /* -1: chain full, a new overflow bucket is needed */
	int prev_in_ovf;      /* bucket before target in the chain (delete) */
	uint64_t prev;
	int has_prev;
	uint16_t old_seg;     /* found: the current location */
	uint32_t old_off;
	uint32_t new_ovf;     /* filled by index_reserve when slot == -1 */
} index_ref;

/** A new, empty table with one bucket. */
int index_new(cellar_index **out, uint64_t seed);

/**
 * Open the checkpoint <dir>/index.  CELLAR_ENOENT if there is none,
 * CELLAR_ECORRUPT / CELLAR_EVERSION if it can't be used.  *ck receives the
 * covered position and segment table (free ck->segs with free()).
 */
int index_load(cellar_index **out, cellar_fs *fs, const char *dir,
               index_ckpt *ck);

/**
 * Check every chunk against its checksum now, and the table's structure
 * (each overflow bucket in one chain or the free list, once; the key and
 * overflow counters equal to what the chains hold): CELLAR_ECORRUPT if not.
 */
int index_verify_all(cellar_index *ix);

/** Free the table; accepts NULL. */
void index_free(cellar_index *ix);

/** The chain address of a tag. */
static inline uint64_t index_addr(const cellar_index *ix, uint32_t tag)
{
	uint64_t a = tag & ((1ull << ix->level) - 1);

	if (a < ix->split)
		a = tag & ((2ull << ix->level) - 1);
	return a;
}

/** The tag of a hash. */
static inline uint32_t index_tag(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

enum { CHUNK_UNCHECKED = 0, CHUNK_OK = 1, CHUNK_BAD = 2 };

/** Verify a chunk against its checksum (first touch); CELLAR_ECORRUPT if bad. */
int index__chunk_check(index_chunk *c);

static inline int index__bucket_at(index_array *a, uint64_t i, uint8_t **out)
{
	index_chunk *c = &a->chunks[i >> INDEX_CHUNK_SHIFT];

	if (__builtin_expect(atomic_load_explicit(&c->state, memory_order_relaxed)
	                     != CHUNK_OK, 0)) {
		int rc = index__chunk_check(c);
		if (rc < 0)
			return rc;
	}
	*out = c->base + ((i & (INDEX_CHUNK_BUCKETS - 1)) * BUCKET_SIZE);
	return CELLAR_OK;
}

/** Writer or shared latch: start loading the primary bucket of hash. */
static inline void index_prefetch(const cellar_index *ix, uint64_t hash)
{
	uint64_t i = index_addr(ix, index_tag(hash));

	__builtin_prefetch(ix->prim.chunks[i >> INDEX_CHUNK_SHIFT].base +
	                   (i & (INDEX_CHUNK_BUCKETS - 1)) * BUCKET_SIZE);
}

/** CELLAR_ECORRUPT for a broken chain link (out of line: rare). */
int index__bad_chain(void);

/**
 * index_lookup for the hot path: inline, so that a constant match function
 * is inlined into the probe loop.
 */
static inline int index_lookup_inline(cellar_index *ix, uint64_t hash,
                                      index_match_fn match, void *ctx,
                                      unsigned *probes)
{
	uint32_t tag = index_tag(hash), next;
	uint64_t steps = 0;
	uint8_t *b;
	int rc;

	*probes = 1;
	if ((rc = index__bucket_at(&ix->prim, index_addr(ix, tag), &b)) < 0)
		return rc;
	for (;;) {
		unsigned m = bucket_match(b, tag);
		while (m) {
			int i = __builtin_ctz(m);
			m &= m - 1;
			if (!bucket_slot_used(b, i))
				continue;
			int hit = 0;
			rc = match(ctx, bucket_seg(b, i), bucket_off(b, i), &hit);
			if (rc < 0 || hit)
				return rc;
		}
		next = bucket_next(b);
		if (!next || (steps == 0 && !bucket_chain_may_hold(b, tag)))
			return CELLAR_ENOTFOUND;
		if (next >= ix->ovf.n || ++steps > ix->ovf.n)
			return index__bad_chain();
		++*probes;
		if ((rc = index__bucket_at(&ix->ovf, next, &b)) < 0)
			return rc;
	}
}

/**
 * Look hash up (shared latch).  Calls match for each candidate until one
 * sets its hit or fails; *probes (if not NULL) receives the number of
 * buckets read.  Returns CELLAR_OK on a hit, CELLAR_ENOTFOUND, or an error
 * (match's, or CELLAR_ECORRUPT for a damaged chunk).
 */
int index_lookup(cellar_index *ix, uint64_t hash, index_match_fn match,
                 void *ctx, unsigned *probes);

/**
 * Is (seg, off) the location stored for hash?  *found receives 1 or 0;
 * returns CELLAR_OK or an error (a damaged chunk or chain).
 */
int index_has_loc(cellar_index *ix, uint64_t hash, uint16_t seg, uint32_t off,
                  int *found);

/**
 * Writer, no latch: where is the key, or where would it go.  A slot with
 * the key's tag whose record is damaged (match returned CELLAR_ECORRUPT) is
 * reported as found when no intact record holds the key, so that a put or
 * delete replaces it instead of failing.
 */
int index_find(cellar_index *ix, uint64_t hash, index_match_fn match,
               void *ctx, index_ref *ref);

/**
 * Exclusive latch: make what index_set / index_remove will touch writable
 * and allocate the overflow bucket an insert needs, so that they cannot
 * fail.  CELLAR_ENOMEM leaves the table as it was (semantically).
 */
int index_reserve(cellar_index *ix, index_ref *ref);

/**
 * Writer, no latch: would index_reserve change nothing (every bucket it
 * touches already private, no overflow bucket needed)?  Then the writer
 * may skip it and the latch it needs.
 */
int index_reserve_is_noop(cellar_index *ix, const index_ref *ref);

/** Exclusive latch: undo index_reserve when the write is abandoned. */
void index_unreserve(cellar_index *ix, index_ref *ref);

/** Exclusive latch, after index_reserve: store (seg, off) for the key. */
void index_set(cellar_index *ix, const index_ref *ref, uint64_t hash,
               uint16_t seg, uint32_t off);

/** Exclusive latch, after index_reserve: remove the found key. */
void index_remove(cellar_index *ix, const index_ref *ref);

/**
 * Exclusive latch: split buckets while the load is above the threshold.
 * A split that can't get memory is skipped (the table just stays fuller).
 */
void index_grow(cellar_index *ix);

/**
 * Exclusive latch (or no readers yet): split buckets until the table is
 * as large as index_grow would make it for keys keys.  Unlike index_grow,
 * a split that can't get memory fails: CELLAR_ENOMEM.
 */
int index_presize(cellar_index *ix, uint64_t keys);

/**
 * Writer, no latch: write the table as a new checkpoint covering ck,
 * atomically replacing <dir>/index (temporary file, sync, rename, directory
 * sync).
 */
int index_write(cellar_index *ix, cellar_fs *fs, const char *dir,
                const index_ckpt *ck);

/** Shape of the table, for statistics and tests. */
typedef struct index_shape {
	uint64_t buckets, overflow_buckets, longest_chain, used_slots;
} index_shape;
int index_shape_of(cellar_index *ix, index_shape *out);

/** Size in bytes the index file of the current table would have. */
uint64_t index_file_size(const cellar_index *ix, size_t nsegs);

#endif

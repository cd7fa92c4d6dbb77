/*
 * index.h - the index: a linear-hash table of 64-byte buckets (bucket.h)
 * mapping a key's hash to the location (segment id, offset) of its newest
 * record.  Its checkpoint file is index_file.h, the memory its buckets live
 * in index_chunk.h; this header includes both, so that a caller needs only
 * this one.
 *
 * Owns (index.c): the table's logic - chain addresses, lookups, find /
 * reserve / set / remove, overflow buckets and their free list, splits,
 * grow / presize, the structural check and the shape - and the chain
 * cursor every walk of an overflow chain goes through.
 * Must not: read segments (whether a slot whose tag matches really holds the
 * key is asked of the caller through an index_match_fn), know the file's
 * layout (index_file.c), or compute a bucket's address itself
 * (index_chunk.h does).
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

#include <stddef.h>
#include <stdint.h>

#include "bucket.h"
#include "cellar.h"
#include "cellar_fs.h"
#include "files.h"
#include "index_chunk.h"
#include "index_file.h"
#include "index_table.h"

/* Split when keys > slots * LOAD_NUM / LOAD_DEN. */
#define INDEX_LOAD_NUM 17
#define INDEX_LOAD_DEN 20

/**
 * Does the record at (seg, off) hold the key being looked up?  Set *hit to
 * 1 for yes (the search stops) and leave it 0 for no; return CELLAR_OK, or
 * a negative error (the search stops and returns it).
 */
typedef int (*index_match_fn)(void *ctx, uint16_t seg, uint32_t off,
                              int *hit);

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

/** Writer or shared latch: start loading the primary bucket of hash. */
static inline void index_prefetch(const cellar_index *ix, uint64_t hash)
{
	__builtin_prefetch(index_bucket_addr(&ix->prim,
	                                     index_addr(ix, index_tag(hash))));
}

/* ---- the chain cursor ---------------------------------------------------- */

/*
 * Every walk of a chain (a primary bucket and the overflow buckets linked
 * from it) goes through one cursor, which owns the checks a link needs: the
 * next bucket exists (next < ovf.n) and the walk has not gone round a cycle
 * (no more steps than overflow buckets).  A link that fails either is
 * CELLAR_ECORRUPT, "index: broken overflow chain".
 *
 *	index_chain c;
 *	for (rc = index_chain_first(&c, ix, addr, INDEX_CHAIN_CHECKED);
 *	     rc == CELLAR_OK && c.b; rc = index_chain_next(&c))
 *		... c.b, c.steps, c.at ...
 *	if (rc < 0)
 *		...
 *
 * Everything is inline, so that in the hot path (index_lookup_inline) the
 * cursor becomes plain local variables and the raw/checked choice folds
 * away; a lookup does per bucket what it did before the cursor.
 */

/* How the cursor reaches buckets (index_chain_first). */
enum {
	INDEX_CHAIN_CHECKED = 0, /* check each chunk on first touch */
	INDEX_CHAIN_RAW = 1      /* no check: the caller checked every chunk */
};

typedef struct index_chain {
	uint8_t *b;         /* the current bucket; NULL past the chain's end */
	uint64_t at;        /* its number: in prim at steps 0, else in ovf */
	uint64_t steps;     /* links followed: 0 at the primary bucket */
	index_array *ovf;   /* the table's overflow array */
	int raw;            /* INDEX_CHAIN_RAW */
} index_chain;

/** CELLAR_ECORRUPT, "index: broken overflow chain" (out of line: rare). */
int index_chain_broken(void);

/**
 * Start a walk at primary bucket addr (< ix->prim.n) of ix.  CELLAR_OK, or
 * CELLAR_ECORRUPT when its chunk fails its checksum (INDEX_CHAIN_CHECKED).
 */
static inline int index_chain_first(index_chain *c, cellar_index *ix,
                                    uint64_t addr, int how)
{
	c->at = addr;
	c->steps = 0;
	c->ovf = &ix->ovf;
	c->raw = how == INDEX_CHAIN_RAW;
	if (c->raw) {
		c->b = index_bucket_addr(&ix->prim, addr);
		return CELLAR_OK;
	}
	return index_bucket_checked(&ix->prim, addr, &c->b);
}

/**
 * Follow the current bucket's link next (bucket_next of c->b, not 0) to
 * that overflow bucket, for a walk that looks at the link first (the
 * lookup's chain filter).  CELLAR_ECORRUPT for a broken link or a damaged
 * chunk; the cursor is then spent.
 */
static inline int index_chain_follow(index_chain *c, uint32_t next)
{
	if (next >= c->ovf->n || c->steps >= c->ovf->n)
		return index_chain_broken();
	c->steps++;
	c->at = next;
	if (c->raw) {
		c->b = index_bucket_addr(c->ovf, next);
		return CELLAR_OK;
	}
	return index_bucket_checked(c->ovf, next, &c->b);
}

/**
 * Step to the next bucket of the chain.  At the end c->b becomes NULL, and
 * c->at and c->steps still name the last bucket (where an insert into a
 * full chain links a new one).  CELLAR_OK or, as index_chain_follow,
 * CELLAR_ECORRUPT.
 */
static inline int index_chain_next(index_chain *c)
{
	uint32_t next = bucket_next(c->b);

	if (!next) {
		c->b = NULL;
		return CELLAR_OK;
	}
	return index_chain_follow(c, next);
}

/* index_lookup_inline's walk: c->steps + 1 buckets were read. */
static inline int index_lookup_walk(cellar_index *ix, uint64_t hash,
                                    index_match_fn match, void *ctx,
                                    index_chain *c)
{
	uint32_t tag = index_tag(hash), next;
	int rc;

	if ((rc = index_chain_first(c, ix, index_addr(ix, tag),
	                            INDEX_CHAIN_CHECKED)) < 0)
		return rc;
	for (;;) {
		unsigned m = bucket_match(c->b, tag);
		while (m) {
			int i = __builtin_ctz(m);
			m &= m - 1;
			if (!bucket_slot_used(c->b, i))
				continue;
			int hit = 0;
			rc = match(ctx, bucket_seg(c->b, i), bucket_off(c->b, i), &hit);
			if (rc < 0 || hit)
				return rc;
		}
		/* The primary bucket's filter says whether to walk on at all. */
		next = bucket_next(c->b);
		if (!next || (c->steps == 0 && !bucket_chain_may_hold(c->b, tag)))
			return CELLAR_ENOTFOUND;
		if ((rc = index_chain_follow(c, next)) < 0)
			return rc;
	}
}

/**
 * index_lookup for the hot path: inline, so that a constant match function
 * is inlined into the probe loop.  *probes gets the buckets read.
 */
static inline int index_lookup_inline(cellar_index *ix, uint64_t hash,
                                      index_match_fn match, void *ctx,
                                      unsigned *probes)
{
	index_chain c;
	int rc = index_lookup_walk(ix, hash, match, ctx, &c);

	*probes = (unsigned)c.steps + 1;
	return rc;
}

/**
 * Look hash up (shared latch).  Calls match for each candidate until one
 * sets its hit or fails; *probes (if not NULL) receives the number of
 * buckets read.  Returns CELLAR_OK on a hit, CELLAR_ENOTFOUND, or an error
 * (match's, or CELLAR_ECORRUPT for a damaged chunk).
 */
int index_lookup(cellar_index *ix, uint64_t hash, index_match_fn match,
                 void *ctx, unsigned *probes);

/** Has a chunk of ix failed its checksum (a lookup then gave ECORRUPT)? */
int index_has_bad_chunk(const cellar_index *ix);

/**
 * Mark every chunk of ix failed, as if each had failed its checksum: for a
 * table whose chunks pass but whose chains or counters contradict each
 * other (index_verify_all).  Every later checked access gives
 * CELLAR_ECORRUPT.
 */
void index_distrust(cellar_index *ix);

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
 * The geometry index_presize(keys) gives a new table (same rule, no
 * splits): *level and *split, with n = 2^level + split primary buckets.
 * The builder lays its table out with it.
 */
void index_geometry_for(uint64_t keys, uint32_t *level, uint64_t *split);

/** Shape of the table, for statistics and tests. */
typedef struct index_shape {
	uint64_t buckets, overflow_buckets, longest_chain, used_slots;
} index_shape;
int index_shape_of(cellar_index *ix, index_shape *out);

/* ---- accessors, for the modules above ------------------------------------ */

/** Keys in the table. */
uint64_t index_count(const cellar_index *ix);

/** *buckets gets the primary buckets, *overflow the overflow buckets in
 * chains (either may be NULL). */
void index_sizes(const cellar_index *ix, uint64_t *buckets,
                 uint64_t *overflow);

/** The hash seed the table was built with (or loaded with). */
uint64_t index_seed(const cellar_index *ix);

/** Test hook: never grow past max primary buckets (0: no limit). */
void index_set_max_buckets(cellar_index *ix, uint64_t max);

/* index_warm (fault the checkpoint's mapping in) is in index_file.h. */

#endif

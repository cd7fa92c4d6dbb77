/*
 * shadow.h - the in-memory table a read-only handle rebuilds from the
 * segments when its index file has a damaged chunk.
 *
 * A read-write open checks every chunk and rebuilds a damaged index; a
 * read-only handle cannot write one, and checks each chunk on first touch.
 * When a lookup or an iteration step meets a chunk that fails its checksum,
 * the read path asks for the shadow: the table a rebuild would produce,
 * made once, on the first such call, by reading every record of every
 * segment (one pass over the log, as a rebuilding open; memory: a second
 * table, about the index file's size).  The lookup is then answered from
 * the shadow, so every key whose record is intact is served.  If the pass
 * met damaged records the shadow may lack a key, so its "not found" stays
 * CELLAR_ECORRUPT.
 *
 * A table can also pass every checksum and still contradict itself (a
 * hostile or miswritten file: a key counter the chains do not hold, a
 * chain that loops into another).  Lookups cannot see that; the calls that
 * cover the whole store (cellar_count, cellar_stats, cellar_iter_new) check
 * the table's structure once first (shadow_check: one pass over the index,
 * the cost of reading it into memory), and a table that fails is treated
 * as if every chunk were damaged, so that every read, and the count, come
 * from the shadow.
 *
 * Owns: building the shadow once, under its mutex, and keeping it until
 * the handle closes or a refresh changes the table it stands in for; the
 * once-per-table check of the table's structure.  Must not: change the
 * segments or their counters, or be used by a read-write handle (its
 * writer rebuilds instead).
 */
#ifndef CELLAR_SHADOW_H
#define CELLAR_SHADOW_H

#include <pthread.h>
#include <stdatomic.h>

#include "hash.h"
#include "index.h"
#include "segment.h"

typedef struct shadow {
	pthread_mutex_t mu;
	_Atomic(cellar_index *) ix; /* NULL until built */
	int lossy;                  /* the pass skipped damaged records */
	int failed;                 /* the pass failed: no shadow (rc kept) */
	int rc;
	atomic_int checked;         /* shadow_check has passed this table */
} shadow;

void shadow_init(shadow *sh);
void shadow_free(shadow *sh);

/**
 * The shadow table of segs, built on the first call (which takes one pass
 * over the log; concurrent callers wait for it).  *lossy: the pass met
 * damage.  CELLAR_ENOMEM or CELLAR_EIO if it cannot be built (then every
 * later call fails the same way, without a new pass).
 */
int shadow_get(shadow *sh, const segset *segs, const keyhash *kh,
               cellar_index **out, int *lossy);

/**
 * Check ix's structure (index_verify_all), once per table; the caller holds
 * the shared latch.  A table that contradicts itself is marked as damaged
 * throughout (index_distrust), so that reads go to the shadow, and the call
 * still returns CELLAR_OK.  CELLAR_ENOMEM if the check cannot run.
 */
int shadow_check(shadow *sh, cellar_index *ix);

/**
 * The key count of the table reads are served from: the shadow's if ix has
 * a damaged chunk (building it if need be), else ix's.  Shared latch held.
 */
int shadow_count(shadow *sh, cellar_index *ix, const segset *segs,
                 const keyhash *kh, uint64_t *out);

/**
 * cellar_refresh changed the table the shadow stands in for (exclusive
 * latch held: no lookup uses it): forget it, so that the next lookup that
 * needs one builds it anew, and return the old one for the caller to free
 * after the latch (NULL if none was built).
 */
cellar_index *shadow_take(shadow *sh);

/** A reload swapped two handles' stores (exclusive latch): swap shadows. */
void shadow_swap(shadow *a, shadow *b);

#endif

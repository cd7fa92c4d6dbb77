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
 * Owns: building the shadow once, under its mutex, and keeping it until
 * the handle closes or a refresh changes the table it stands in for.  Must not: change the segments or their counters, or
 * be used by a read-write handle (its writer rebuilds instead).
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
 * cellar_refresh changed the table the shadow stands in for (exclusive
 * latch held: no lookup uses it): forget it, so that the next lookup that
 * needs one builds it anew, and return the old one for the caller to free
 * after the latch (NULL if none was built).
 */
cellar_index *shadow_take(shadow *sh);

/** A reload swapped two handles' stores (exclusive latch): swap shadows. */
void shadow_swap(shadow *a, shadow *b);

#endif

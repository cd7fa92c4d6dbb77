/*
 * index_chunk.h - the index's chunk memory: where its buckets live.
 *
 * The buckets of each of the index's two arrays (primary, overflow) live in
 * chunks of INDEX_CHUNK_BUCKETS.  A chunk either points into the read-only
 * mapping (or the in-memory copy) of the index file, verified against its
 * checksum on first touch, or is a private copy made when the writer first
 * changes it (copy-on-write).  Growing an array only appends chunks, so a
 * bucket never moves while readers look at it.  Private chunks of a large
 * array are cut from 2 MiB slabs that ask for huge pages.
 *
 * While a checkpoint is written off the writer's path, or a snapshot is
 * held, the private chunks are frozen (index_array_freeze): the writer
 * copies a frozen chunk before it changes it, as it does a shared one, and
 * the last thaw of the versions holding an original frees it.
 *
 * Owns: index_chunk and index_array, the slabs, chunk allocation, making a
 * chunk private, frozen chunks and their thaw, the first-touch checksum
 * check, and bucket addresses
 * (index_bucket_addr is the one place that computes one).
 * Must not: know what a bucket holds beyond its size (bucket.h does), how
 * buckets form chains or a hash table (index.c), or the file's layout
 * (index_file.c); it never reads or writes a file.
 */
#ifndef CELLAR_INDEX_CHUNK_H
#define CELLAR_INDEX_CHUNK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bucket.h"
#include "cellar.h"
#include "files.h"
#include "pages.h"

#define INDEX_CHUNK_SHIFT 10
#define INDEX_CHUNK_BUCKETS (1u << INDEX_CHUNK_SHIFT)
#define INDEX_CHUNK_MASK (INDEX_CHUNK_BUCKETS - 1)
#define INDEX_CHUNK_BYTES ((size_t)INDEX_CHUNK_BUCKETS * BUCKET_SIZE)
/* Private chunks of a large table come from slabs of this size. */
#define INDEX_SLAB_BYTES PAGES_SLAB_BYTES
#define INDEX_SLAB_CHUNKS (INDEX_SLAB_BYTES / INDEX_CHUNK_BYTES)

/* How a chunk's buckets are held (index_chunk.owned). */
enum {
	CHUNK_SHARED = 0, /* in the checkpoint's mapping, read-only */
	CHUNK_HEAP = 1,   /* private, from the heap */
	CHUNK_SLAB = 2    /* private, cut from one of the array's slabs */
};
/*
 * Or'ed into a private chunk's owned while a checkpoint writes a frozen
 * version of the table (index_array_freeze): the checkpoint reads the
 * buckets, so a writer about to change them first makes its own copy, as
 * for a shared chunk, and the frozen original is freed by
 * index_array_thaw once the checkpoint is written.
 */
#define CHUNK_FROZEN 0x80

/* Whether a chunk has been checked (index_chunk.state). */
enum { CHUNK_UNCHECKED = 0, CHUNK_OK = 1, CHUNK_BAD = 2 };

typedef struct index_chunk {
	uint8_t *base;       /* 64-byte-aligned buckets */
	atomic_uchar state;  /* CHUNK_UNCHECKED, CHUNK_OK or CHUNK_BAD */
	uint8_t owned;       /* CHUNK_SHARED, or private: CHUNK_HEAP or
	                        CHUNK_SLAB, maybe with CHUNK_FROZEN */
	uint32_t nvalid;     /* buckets covered by checksum (file-backed) */
	uint64_t checksum;   /* expected XXH3 of the nvalid buckets */
} index_chunk;

typedef struct index_array {
	index_chunk *chunks;
	size_t nchunks, cap;
	/* Buckets in use (primary) or allocated (overflow): kept by the table
	 * (and restored by the file codec); chunks cover at least this many. */
	uint64_t n;
	uint8_t **slabs; /* INDEX_SLAB_BYTES areas private chunks are cut from */
	size_t nslabs, slab_used; /* bytes of the newest slab handed out */
	uint8_t **spare;     /* faulted slabs not yet cut (index_array_spare) */
	size_t nspare, spare_cap;
	uint8_t **slab_free; /* slab chunks given back (a thawed original) */
	size_t nslab_free, slab_free_cap;
	/* Frozen chunks the writer copied (index_bucket_own), since the
	 * array was made: the memory cost of writing checkpoints off the
	 * writer's path. */
	uint64_t frozen_copies;
	/* Frozen versions (a checkpoint's, snapshots'): per chunk number, the
	 * private bases frozen versions hold and how many hold each
	 * (index_array_freeze adds one, index_array_thaw takes it back). */
	struct index_pins *pins;
	size_t npins;        /* entries of pins (chunk numbers covered) */
	uint64_t held;       /* pinned bases the live array no longer uses */
} index_array;

/* The bases frozen versions hold at one chunk number. */
typedef struct index_pin {
	uint8_t *base;
	uint32_t refs;
	uint8_t how;         /* CHUNK_HEAP or CHUNK_SLAB */
} index_pin;
typedef struct index_pins {
	index_pin *v;
	uint32_t n, cap;
} index_pins;

/** Chunks needed to hold n buckets. */
static inline size_t index_chunks_for(uint64_t n)
{
	return (size_t)((n + INDEX_CHUNK_MASK) >> INDEX_CHUNK_SHIFT);
}

/**
 * The address of bucket i of a, with no check: the caller knows its chunk
 * exists and was checked (or checks chunks itself, or only prefetches).
 */
static inline uint8_t *index_bucket_addr(const index_array *a, uint64_t i)
{
	return a->chunks[i >> INDEX_CHUNK_SHIFT].base +
	       (i & INDEX_CHUNK_MASK) * BUCKET_SIZE;
}

/**
 * Verify a chunk against its checksum, once (first touch): CELLAR_ECORRUPT
 * if it does not match, then and on every later call.
 */
int index_chunk_check(index_chunk *c);

/** Check every chunk of a now (index_chunk_check): CELLAR_ECORRUPT. */
int index_array_check(index_array *a);

/**
 * Mark every chunk of a failed (CHUNK_BAD): the table's structure was found
 * to contradict itself, so no chunk of it can be trusted.
 */
void index_array_distrust(index_array *a);

/**
 * The address of bucket i of a (its chunk must exist), after checking the
 * chunk on first touch: CELLAR_ECORRUPT (and NULL) if the chunk is damaged.
 */
static inline int index_bucket_checked(index_array *a, uint64_t i,
                                       uint8_t **out)
{
	index_chunk *c = &a->chunks[i >> INDEX_CHUNK_SHIFT];

	if (__builtin_expect(atomic_load_explicit(&c->state, memory_order_relaxed)
	                     != CHUNK_OK, 0)) {
		int rc = index_chunk_check(c);
		if (rc < 0) {
			*out = NULL;
			return rc;
		}
	}
	*out = index_bucket_addr(a, i);
	return CELLAR_OK;
}

/**
 * Is bucket i of a in a private chunk the writer may change in place (not
 * the checkpoint's, not frozen)?
 */
static inline int index_bucket_is_private(const index_array *a, uint64_t i)
{
	uint8_t o = a->chunks[i >> INDEX_CHUNK_SHIFT].owned;

	return o != CHUNK_SHARED && !(o & CHUNK_FROZEN);
}

/**
 * Make the chunk of bucket i private (a checked copy of the checkpoint's
 * buckets, zeros beyond them; or a copy of a frozen chunk, whose original
 * stays for the checkpoint) and give the bucket's address.
 * CELLAR_ECORRUPT if the shared chunk is damaged, CELLAR_ENOMEM.
 */
int index_bucket_own(index_array *a, uint64_t i, uint8_t **out);

/**
 * Writer: how many new slabs a would need for n more chunk allocations
 * (copies of chunks, new chunks) beyond the free chunks, the rest of the
 * current slab and the spare slabs it has; 0 while it uses the heap.
 */
size_t index_array_spare_wanted(const index_array *a, size_t n);

/**
 * Writer: take the n slabs at v (from pages_slab_new_faulted) as spares,
 * cut before any new slab is made.  Those it has no room for are freed.
 */
void index_array_spare_add(index_array *a, uint8_t *const *v, size_t n);

/**
 * Make sure chunks exist for buckets [0, nbuckets); new chunks are
 * private and zeroed.  a->n is left to the caller.  CELLAR_ENOMEM (the
 * chunks made so far stay).
 */
int index_array_reserve(index_array *a, uint64_t nbuckets);

/**
 * Give an empty array nchunks chunk descriptors (room for at least one),
 * zeroed, for index_chunk_share to fill before any use: CELLAR_ENOMEM.
 */
int index_array_alloc_chunks(index_array *a, size_t nchunks);

/**
 * Make chunk ci of a the nvalid read-only buckets at base (a checkpoint's),
 * which must hash to checksum: checked on first touch.
 */
void index_chunk_share(index_array *a, size_t ci, const uint8_t *base,
                       uint32_t nvalid, uint64_t checksum);

/**
 * Writer, no latch (readers may be checking chunks): copy a's descriptors
 * into out, a frozen version for a checkpoint or a snapshot to read
 * without the writer, and mark a's private chunks CHUNK_FROZEN, so that
 * the writer copies each before changing it.  out owns only its
 * descriptors.  Any number of frozen versions may be alive at once: each
 * private base counts the versions that hold it (a->pins) and is freed
 * when the last one thaws, once the live array has replaced it.
 * CELLAR_ENOMEM (a unchanged).
 */
int index_array_freeze(index_array *a, index_array *out);

/**
 * Writer, no latch, when the frozen version (index_array_freeze of a) is
 * no longer read: drop its hold on each base; a base no other version
 * holds is freed if the writer replaced it by a copy, else unfrozen.
 * Frees frozen's descriptors.  *copied (if not NULL) gets the chunks the
 * writer copied since the freeze.
 */
void index_array_thaw(index_array *a, index_array *frozen, uint64_t *copied);

/** Bytes of replaced chunks that frozen versions still hold. */
static inline uint64_t index_array_held_bytes(const index_array *a)
{
	return a->held * INDEX_CHUNK_BYTES;
}

/** Free the private chunks, the slabs and the descriptors; zero a. */
void index_array_free(index_array *a);

#endif

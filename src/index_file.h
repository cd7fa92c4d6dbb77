/*
 * index_file.h - the index checkpoint file <dir>/index (docs/format.md):
 * a header, the primary and overflow buckets, their chunk checksums and the
 * segment table.
 *
 * Owns: the file's layout and its codec (header fields, tail), loading a
 * checkpoint into a table whose chunks point into the file's mapping (or an
 * in-memory copy), writing a table out as a new checkpoint, and the mapping
 * while the table lives.
 * Must not: change the table's contents, walk its chains, or decide what a
 * lookup finds (index.c does); manage chunk memory other than through
 * index_chunk.h; call the OS other than through the cellar_fs vtable.
 */
#ifndef CELLAR_INDEX_FILE_H
#define CELLAR_INDEX_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"

#define INDEX_HEADER_SIZE 4096

typedef struct cellar_index cellar_index;

/** A segment as recorded in a checkpoint. */
typedef struct index_seg {
	uint16_t id;
	uint64_t seq;
	uint64_t size; /* bytes the checkpoint covers */
	uint64_t live; /* bytes of live records */
	uint64_t dead; /* bytes of dead records and damage */
	uint32_t kept; /* of dead: carried tombstones (see segment.h) */
	uint16_t flags; /* INDEX_SEG_EXPIRING */
} index_seg;

/** index_seg.flags: the segment holds expiring puts (compaction looks). */
#define INDEX_SEG_EXPIRING 0x1

/** What a checkpoint records besides the table. */
typedef struct index_ckpt {
	uint64_t seq, off;  /* log position covered: everything before it */
	index_seg *segs;    /* live segments at the checkpoint */
	size_t nsegs;
} index_ckpt;

/**
 * Open the checkpoint <dir>/index.  CELLAR_ENOENT if there is none,
 * CELLAR_ECORRUPT / CELLAR_EVERSION if it can't be used.  *ck receives the
 * covered position and segment table (free ck->segs with free()).
 */
int index_load(cellar_index **out, cellar_fs *fs, const char *dir,
               index_ckpt *ck);

/**
 * Writer, no latch: write the table as a new checkpoint covering ck,
 * atomically replacing <dir>/index (temporary file, sync, rename, directory
 * sync).
 */
int index_write(cellar_index *ix, cellar_fs *fs, const char *dir,
                const index_ckpt *ck);

/** Bytes of one segment-table entry in the file. */
#define INDEX_SEG_ENTRY_SIZE 40

/** A table's header fields, for a writer that lays buckets out itself. */
typedef struct index_file_shape {
	uint64_t seed, count;
	uint32_t level;
	uint64_t split, nprim, novf, free_head, ovf_used;
} index_file_shape;

/**
 * Encode a checkpoint's segment table (ck->nsegs entries of
 * INDEX_SEG_ENTRY_SIZE bytes) at out, the last part of the tail.
 */
void index_file_encode_segs(uint8_t *out, const index_ckpt *ck);

/**
 * Encode and seal the header of a file with the given shape, covering ck,
 * whose tail (chunk sums, then segment table) is tail_len bytes at tail.
 * For the builder, which streams buckets in its own order: the file then
 * loads with index_load like any checkpoint.
 */
void index_file_encode_header(uint8_t hdr[INDEX_HEADER_SIZE],
                              const index_file_shape *sh,
                              const index_ckpt *ck, const uint8_t *tail,
                              size_t tail_len);

/*
 * Checkpoints off the writer's path: the writer freezes the table (its
 * geometry, counters and a copy of the chunk descriptors; its private
 * chunks become copy-on-write), lets go of its mutex while index_write
 * writes the frozen version, then thaws it.
 */

/**
 * Writer, no latch: a frozen version of ix in *out, for index_write or a
 * snapshot to read while the writer goes on changing ix.  Several may be
 * alive at once (see index_array_freeze); index_thaw must follow each,
 * before ix is freed.  CELLAR_ENOMEM (ix unchanged).
 */
int index_freeze(cellar_index *ix, cellar_index **out);

/*
 * While a version is frozen the writer copies each chunk it changes, and a
 * copy may need a new slab.  Faulting a fresh huge page in takes
 * milliseconds on some machines (a virtual machine's first touch of the
 * memory), under the writer mutex and the exclusive latch.  The thread
 * that freezes makes those slabs first, holding nothing.
 */
typedef struct index_spare {
	uint8_t **slabs; /* the primary array's n[0], then the overflow's n[1] */
	size_t n[2];
} index_spare;

/** Writer mutex held: the slabs copying up to chunks chunks of each of
 *  ix's arrays once would need (none for a small table). */
void index_spare_plan(cellar_index *ix, index_spare *sp, uint64_t chunks);

/** No lock: make the planned slabs, faulted in; fewer if memory runs out. */
void index_spare_make(index_spare *sp);

/** Writer mutex held: give the slabs made to ix (planned on the same ix)
 *  and empty sp. */
void index_spare_give(cellar_index *ix, index_spare *sp);

/**
 * Writer, no latch: the checkpoint of frozen is written (or abandoned):
 * free the frozen chunks the writer replaced by copies, unfreeze the
 * others, free frozen.  *copied gets the chunks copied meanwhile.
 */
void index_thaw(cellar_index *ix, cellar_index *frozen, uint64_t *copied);

/** Bytes of chunks the writer replaced that frozen versions still hold. */
uint64_t index_held_bytes(const cellar_index *ix);

/** Chunks the writer copied because a checkpoint had them frozen, ever. */
uint64_t index_frozen_copies(const cellar_index *ix);

/** Size in bytes the index file of the current table would have. */
uint64_t index_file_size(const cellar_index *ix, size_t nsegs);

/**
 * Fault the whole mapping of the loaded checkpoint in (one read per 4 KiB
 * page), so that later lookups take no page faults; nothing to do for a
 * table that was built in memory or read into memory.  CELLAR_OK.
 */
int index_warm(cellar_index *ix);

/** Release the checkpoint a loaded table points into (index_free does). */
void index_file_release(cellar_index *ix);

/**
 * Did the index file's mapping lose pages under it (another program cut
 * the file; the SIGBUS guard, fs/sigbus.h, mapped zeros there)?  Then an
 * empty bucket may be a lost one.  One load while no fault ever happened.
 */
int index_map_faulted(const cellar_index *ix);

/**
 * Has the index file been cut short under its mapping, lost pages or not?
 * A cut inside a page leaves the rest of that page mapped and reading as
 * zeros, with no fault, so index_map_faulted alone misses buckets there.
 * This also reads the mapping's last segment entry, which a cut anywhere
 * before it turns to zeros (faulting, and so rescued, if its page is gone).
 * A load of one cache line, for lookups that found nothing.
 */
int index_map_cut(const cellar_index *ix);

#endif

/*
 * segment.h - the log: append-only segment files holding the records, the
 * writer's append buffer, roll-over, and reading records back.
 *
 * A segment file is a 32-byte header followed by records (record.h):
 *    0  8  magic "CELLARSG"
 *    8  4  format version
 *   12  2  segment id: the small number index slots use to name it
 *   14  2  reserved (0)
 *   16  8  sequence number; the file is named "%016llx.seg" after it
 *   24  4  reserved (0)
 *   28  4  low 32 bits of XXH3-64 of bytes 0..27
 *
 * Segments are ordered by sequence number; ids are reused once a segment is
 * gone, so at most 65,536 segments are live at once.
 *
 * Concurrency: readers (shared latch) use by_id, each segment's map, size and
 * flushed, and the append buffer below size.  The writer appends past size
 * without the latch and publishes (segset_publish, segset_flush, roll-over)
 * under the exclusive latch.
 */
#ifndef CELLAR_SEGMENT_H
#define CELLAR_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"
#include "files.h"
#include "latch.h"
#include "pages.h"
#include "record.h"

#define SEG_HEADER_SIZE 32
#define SEG_MAX_SEGMENTS 65536
/*
 * The append buffer: one write unit (files.h) plus room for the records
 * that cross the unit's end, which stay behind when a full buffer is
 * written (see segset_append).
 */
#define SEG_BUFFER_SIZE (FILE_WRITE_UNIT + (256u << 10))

typedef struct segment {
	uint64_t seq;
	uint16_t id;
	cellar_file *file;
	const uint8_t *map; /* NULL when the fs can't map */
	uint64_t map_len;
	uint64_t size;      /* readers may read [0, size) */
	uint64_t flushed;   /* records below flushed are read from the file,
	                     * the rest from buf (newest segment only) */
	uint64_t wend;      /* writer: bytes written to the file; between
	                     * flushed and wend they are in buf as well */
	uint64_t synced;    /* writer: bytes known durable */
	uint64_t live, dead; /* bytes of live / dead records */
	uint64_t kept;       /* of dead: tombstones compaction carried forward
	                      * because they still hide older puts */
	uint64_t covered;    /* the checkpoint's size of this segment when the
	                      * file is now shorter (cut by someone else): the
	                      * records in [size, covered) are lost, and reads
	                      * of them fail; 0 when the file is whole */
} segment;

typedef struct segset {
	cellar_fs *fs;
	const char *dir;
	latch *latch;
	uint64_t max_size;
	int readonly;
	int map_hint;       /* CELLAR_FS_MAP_* of the segment mappings */
	segment **by_id;    /* SEG_MAX_SEGMENTS entries */
	uint8_t *retired;   /* ids of dropped segments whose file may remain */
	segment **list;     /* live segments by sequence */
	size_t n, cap;
	uint8_t *buf;       /* append buffer of the newest segment */
	size_t buf_len;
	size_t staged;      /* bytes of a staged record after buf_len, or 0 */
	uint64_t cross_off, cross_end; /* the last buffered record that crosses
	                                * a FILE_WRITE_UNIT boundary */
	int dir_dirty;      /* segment files created since the last dir sync */
	int sync_failed;    /* an fsync failed: the OS may have dropped data */
} segset;


/**
 * Where the bytes of segment g from off on are now: *p, and how many of
 * them up to end lie there in one piece (*avail, 0 when off is past them).
 * Below g->flushed they are in the file, read through the mapping (*p is
 * NULL when the fs does not map: read them with read_at); from flushed on
 * they are in the append buffer.  No record straddles the two.  Shared
 * latch or writer.
 */
static inline void segset_locate(const segset *s, const segment *g,
                                 uint64_t off, uint64_t end,
                                 const uint8_t **p, uint64_t *avail)
{
	uint64_t region_end;

	if (off < g->flushed) {
		region_end = g->flushed < end ? g->flushed : end;
		*p = g->map ? g->map + off : NULL;
	} else {
		region_end = g->size < end ? g->size : end;
		*p = s->buf + (off - g->flushed);
	}
	*avail = off < region_end ? region_end - off : 0;
}

/**
 * Read every segment's file once (cellar_warm): through a CELLAR_FS_MAP_HOT
 * mapping when the fs maps, else with read_at.  The writer must not change
 * the segment list meanwhile.
 */
int segset_warm(segset *s);

/**
 * Open every segment of dir, in sequence order, validating their headers.
 * Segment sizes are the file sizes; recovery decides the valid end.
 */
int segset_open(segset *s, cellar_fs *fs, const char *dir, uint64_t max_size,
                int readonly, latch *l);
/** segset_open with map_hint (a CELLAR_FS_MAP_*) for every segment mapping
 *  instead of CELLAR_FS_MAP_RANDOM. */
int segset_open_hinted(segset *s, cellar_fs *fs, const char *dir,
                       uint64_t max_size, int readonly, latch *l,
                       int map_hint);
void segset_close(segset *s);

/** The newest segment, or NULL. */
static inline segment *segset_last(const segset *s)
{
	return s->n ? s->list[s->n - 1] : NULL;
}

/**
 * Locate and decode the record at (id, off) (shared latch or writer).
 * CELLAR_ECORRUPT if the location or header is impossible.  The checksum is
 * not checked: see rec_verify.
 */
int segset_record(const segset *s, uint16_t id, uint32_t off, record_view *v);

/** Decode the record at off in segment g, reading at most limit. */
int segment_record(const segset *s, const segment *g, uint64_t off,
                   uint64_t limit, record_view *v);

/**
 * Writer: encode and checksum a record just past the end of the append
 * buffer, without appending it.  s->staged is then its size, or 0 when it
 * needs segset_append instead (a roll-over, a flush or a large record;
 * nothing was done).  The writer does this while the index bucket it is
 * about to read is on its way from memory.  Any other change to the
 * segment set discards the staged record.
 */
void segset_stage(segset *s, unsigned kind, const void *key, size_t key_len,
                  const void *val, size_t val_len);

/** Writer: append the staged record; the outputs are segset_append's. */
void segset_commit_staged(segset *s, segment **seg, uint64_t *off,
                          uint64_t *total);

/**
 * Writer: append one record.  Rolls over to a new segment when the newest
 * is full.  The record is not visible to readers until segset_publish.
 */
int segset_append(segset *s, unsigned kind, const void *key, size_t key_len,
                  const void *val, size_t val_len, segment **seg,
                  uint64_t *off, uint64_t *total);

/** Exclusive latch: make the record ending at end visible. */
void segset_publish(segset *s, segment *g, uint64_t end);

/** Writer: write the append buffer to the file. */
int segset_flush(segset *s);

/**
 * Writer: flush and fsync every segment with unsynced bytes, and the
 * directory if segments were created.  The writer mutex stays held through
 * the fsyncs; readers meet the exclusive latch only around the flush's
 * in-memory step.  A failed fsync is also kept in s->sync_failed.
 */
int segset_sync(segset *s);

/** Writer: start a new empty segment (used when the newest is unusable). */
int segset_roll(segset *s);

/** Writer, recovery: cut segment g at size (the torn tail). */
int segset_truncate(segset *s, segment *g, uint64_t size);

/**
 * Exclusive latch / open: remove g from the set and free it.  Its file may
 * still exist, so its id is not reused until segset_release_ids.
 */
void segset_forget(segset *s, segment *g);

/**
 * segset_forget without freeing g (exclusive latch): no reader can reach
 * it afterwards, so segset_free_detached may unmap and close it later with
 * no lock held - unmapping a large mapping takes milliseconds.
 */
void segset_detach(segset *s, segment *g);
void segset_free_detached(segset *s, segment *g);

/** The files of every forgotten segment are gone: their ids may be reused. */
void segset_release_ids(segset *s);

/**
 * A record of total bytes in segment id was replaced or deleted: move its
 * bytes from live to dead.  Nothing if no such segment exists (the slot was
 * damaged).
 */
void segset_mark_dead(segset *s, uint16_t id, uint64_t total);

/** The first segment with sequence >= seq, or NULL. */
segment *segset_from(const segset *s, uint64_t seq);

/** Context of segset_match_key: the key looked for, and what was found. */
typedef struct seg_key {
	const segset *s;
	const void *key;
	size_t key_len;
	uint64_t found_total; /* size of the matching record */
} seg_key;

/** index_match_fn comparing a record's key with ctx (a seg_key). */
int segset_match_key(void *ctx, uint16_t seg, uint32_t off, int *hit);

/**
 * After a damaged record at from: find the next offset in [from + 1, end)
 * where a whole, valid record starts.  *next = end if there is none.
 */
int segment_resync(const segset *s, const segment *g, uint64_t from,
                   uint64_t end, uint64_t *next);

#endif

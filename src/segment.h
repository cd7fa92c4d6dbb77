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

#include <stdatomic.h>
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
/*
 * What each append buffer can hold.  A buffer counts as full at
 * SEG_BUFFER_SIZE; while the one set aside before is being written (and
 * fsynced) by another thread, appends go on into the room above that
 * instead of waiting for the fsync, and wait only once this is full too.
 */
#define SEG_BUFFER_CAP (2 * SEG_BUFFER_SIZE)

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
	/* writer mutex: frozen versions (snapshots, backups) that may read
	 * this segment; a dropped segment they hold is freed by the last */
	uint32_t pins;
	int orphan;          /* dropped while pinned: the last unpin frees it */
	uint64_t covered;    /* the checkpoint's size of this segment when the
	                      * file is now shorter (cut by someone else): the
	                      * records in [size, covered) are lost, and reads
	                      * of them fail; 0 when the file is whole */
	uint64_t exp_min;    /* writer: the earliest expiry of an expiring put
	                      * written or replayed into it (ms since the
	                      * epoch); 0: none; SEG_EXPIRE_UNKNOWN: some, of
	                      * expiry unknown (a checkpoint said so) */
} segment;

/** segment.exp_min: expiring puts whose expiry is unknown (already due). */
#define SEG_EXPIRE_UNKNOWN 1

/** A put expiring at expire (0: never) went into g. */
static inline void segment_note_expire(segment *g, uint64_t expire)
{
	if (expire && (!g->exp_min || expire < g->exp_min))
		g->exp_min = expire;
}

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
	/*
	 * Double buffering (segset_flush_begin): a full buffer set aside to be
	 * written to the file without the writer mutex.  wbuf holds the newest
	 * segment's bytes from flushed on: readers take [flushed, wbuf_keep)
	 * from it, and buf then holds the bytes from wbuf_keep on; the file
	 * gets [wend, wbuf_cut) of it (wbuf_keep <= wbuf_cut: a record across
	 * the cut is read from buf).  NULL when none; spare is the other
	 * buffer meanwhile (or NULL until first needed).
	 */
	uint8_t *wbuf, *spare;
	uint64_t wbuf_keep, wbuf_cut;
	atomic_int wbuf_busy; /* being written by a thread without the mutex */
	int wbuf_done;        /* written: segset_flush_end may let it go */
	int wbuf_synced;      /* ...and fsynced (segset_flush_run) */
	/* The segment before the newest, when roll-over left its fsync to be
	 * done before the newest file's first byte is written (seal_sync). */
	segment *seal;
} segset;


/**
 * Where the bytes of segment g from off on are now: *p, and how many of
 * them up to end lie there in one piece (*avail, 0 when off is past them).
 * Below g->flushed they are in the file, read through the mapping (*p is
 * NULL when the fs does not map: read them with read_at); from flushed on
 * they are in the append buffer, or first in the buffer being written
 * (wbuf) and then in the append buffer.  No record straddles two of
 * these.  Shared latch or writer.
 */
static inline void segset_locate(const segset *s, const segment *g,
                                 uint64_t off, uint64_t end,
                                 const uint8_t **p, uint64_t *avail)
{
	uint64_t region_end;

	if (off < g->flushed) {
		region_end = g->flushed < end ? g->flushed : end;
		*p = g->map ? g->map + off : NULL;
	} else if (!s->wbuf) {
		region_end = g->size < end ? g->size : end;
		*p = s->buf + (off - g->flushed);
	} else if (off < s->wbuf_keep) {
		region_end = s->wbuf_keep < end ? s->wbuf_keep : end;
		*p = s->wbuf + (off - g->flushed);
	} else {
		region_end = g->size < end ? g->size : end;
		*p = s->buf + (off - s->wbuf_keep);
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
 * Read [0, lens[i]) of each of the n segments of list once, as segset_warm;
 * no lock needed when each segment is pinned (a writer_version) and each
 * length lies within what its file held when the list was taken.
 */
int segset_warm_list(segset *s, segment *const *list, const uint64_t *lens,
                     size_t n);

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

/** segset_stage of a put expiring at expire (0: a plain record). */
void segset_stage_exp(segset *s, unsigned kind, const void *key,
                      size_t key_len, const void *val, size_t val_len,
                      uint64_t expire);

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

/** segset_append of a put expiring at expire (0: a plain record). */
int segset_append_exp(segset *s, unsigned kind, const void *key,
                      size_t key_len, const void *val, size_t val_len,
                      uint64_t expire, segment **seg, uint64_t *off,
                      uint64_t *total);

/**
 * Writer: append t bytes of encoded records (a write batch) in one piece,
 * in one segment, as segset_append does one record: fill(out, ctx) writes
 * them at out (the append buffer, or a heap copy written in place when
 * they are larger than it); *seg and *off say where they went.  Not
 * visible until segset_publish.
 */
typedef void (*segset_fill_fn)(uint8_t *out, void *ctx);
int segset_append_fill(segset *s, uint64_t t, segset_fill_fn fill, void *ctx,
                       segment **seg, uint64_t *off);

/** Exclusive latch: make the record ending at end visible. */
void segset_publish(segset *s, segment *g, uint64_t end);

/** Writer: write the append buffer (and a buffer set aside) to the file. */
int segset_flush(segset *s);

/**
 * Double buffering: a full append buffer is set aside (s->wbuf) instead of
 * being written under the writer mutex, and appends go on in the other
 * one; the next time a buffer fills, the one set aside is written first
 * if no one has written it yet (segset_flush does so too).  To write it
 * without the mutex: segset_flush_begin (writer mutex held) sets the
 * append buffer aside too if the slot is free and anything is in it
 * (all: when all), and claims the write (*job set, *claimed = 1) if one is
 * waiting; segset_flush_run (no mutex; the segment set may change
 * meanwhile, but not the claimed buffer or its file) writes and fsyncs it
 * (so that a crash never keeps later bytes of the file without these);
 * segset_flush_end (writer mutex held) lets a written buffer go (readers
 * then read those bytes from the file) and returns the write's result.
 */
typedef struct segset_flush_job {
	cellar_file *seal; /* fsync this first (see segset.seal), or NULL */
	cellar_file *file;
	uint64_t off;
	const uint8_t *p;
	size_t len;
	int nosync;        /* write only, fsync nothing (a bulk build, whose
	                    * files are fsynced at its end); 0 from begin */
} segset_flush_job;
int segset_flush_begin(segset *s, int all, segset_flush_job *job,
                       int *claimed);
int segset_flush_run(segset *s, const segset_flush_job *job);
int segset_flush_end(segset *s, int rc);

/**
 * Writer: is a buffer set aside that no one has claimed or written?  (The
 * thread writing it sets wbuf_done before it clears wbuf_busy: read in
 * this order.)
 */
static inline int segset_flush_waiting(const segset *s)
{
	return s->wbuf &&
	       !atomic_load_explicit(&s->wbuf_busy, memory_order_acquire) &&
	       !s->wbuf_done;
}

/**
 * Writer: would appending bytes more wait for the buffer set aside (being
 * written elsewhere, or to be written here first)?
 */
static inline int segset_flush_would_wait(const segset *s, uint64_t bytes)
{
	return s->wbuf && s->buf_len + bytes > SEG_BUFFER_SIZE &&
	       (atomic_load_explicit(&s->wbuf_busy, memory_order_acquire) ||
	        !s->wbuf_done);
}

/** Any thread: is a buffer set aside being written without the mutex? */
static inline int segset_flush_busy(segset *s)
{
	return atomic_load_explicit(&s->wbuf_busy, memory_order_acquire);
}

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

/** What segment_batch_check found behind a batch header. */
enum { SEG_BATCH_WHOLE, SEG_BATCH_SHORT, SEG_BATCH_BAD };

/**
 * The batch header v (valid, at off in g) announces a body: is it all
 * there before end (else SEG_BATCH_SHORT) and does it match its checksum
 * (else SEG_BATCH_BAD)?  *state says; *b gets the header's fields.
 * CELLAR_OK, or CELLAR_EIO / CELLAR_ENOMEM reading the body.
 */
int segment_batch_check(const segset *s, const segment *g, uint64_t off,
                        uint64_t end, const record_view *v, record_batch *b,
                        int *state);

/** Context of segset_match_key: the key looked for, and what was found. */
typedef struct seg_key {
	const segset *s;
	const void *key;
	size_t key_len;
	uint64_t found_total; /* size of the matching record */
	uint64_t found_expire; /* its expiry (0: none) */
} seg_key;

/** index_match_fn comparing a record's key with ctx (a seg_key). */
int segset_match_key(void *ctx, uint16_t seg, uint32_t off, int *hit);

/**
 * After a damaged record at from: find the next offset in [from + 1, end)
 * where a whole, valid record starts.  *next = end if there is none.
 */
int segment_resync(const segset *s, const segment *g, uint64_t from,
                   uint64_t end, uint64_t *next);

/*
 * Following a writer from a read-only handle (cellar_refresh).  The caller
 * is the only one changing the set; readers may run meanwhile, so changes
 * to what they see (the list, by_id, a segment's size, flushed and map) are
 * made under the exclusive latch, file I/O without it.
 */

/** The sequence numbers of the store's segment files, sorted (free *seqs). */
int segset_list_dir(const segset *s, uint64_t **seqs, size_t *n);

/**
 * Open segment seq read-only, mapped with room to grow, its size the
 * header's alone (nothing is known of its records yet).  *out = NULL with
 * CELLAR_OK if the file is still shorter than its header (being created);
 * CELLAR_ENOENT if it is gone.  Not yet in the set: segset_add_new.
 */
int segset_open_new(segset *s, uint64_t seq, segment **out);
/** Exclusive latch: add g from segset_open_new; ECORRUPT if its id is taken. */
int segset_add_new(segset *s, segment *g);
/** Free g from segset_open_new that was not added. */
void segset_discard_new(segset *s, segment *g);

/** The current length of g's file. */
int segset_file_size(const segset *s, const segment *g, uint64_t *size);

/**
 * Exclusive latch: let records of g up to end be read from its file (its
 * mapping grows if it must); g->size, what readers may use, is the
 * caller's to move as records are replayed.
 */
void segset_reach(segset *s, segment *g, uint64_t end);

#endif

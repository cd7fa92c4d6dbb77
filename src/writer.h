/*
 * writer.h - the write engine: the one writer at a time, and everything it
 * changes.
 *
 * Owns: the writer mutex (and the count of callers waiting for it), the
 * failure state that refuses writes after a failed fsync or a failed
 * background compaction (a write refused for lack of space is no failure:
 * see "a full disk" below, with the reserve of disk space it keeps), staging and committing a record (append it, make
 * the index point at it, move the old record's bytes to dead), committing
 * a write batch (writer_commit_ops: every record in one append into one
 * segment, every index change under one hold of the exclusive latch), sync,
 * and the index checkpoint with its schedule.  It offers compaction what it
 * needs through its own calls: batches that let waiting writers in first,
 * copy-if-still-at, carry-a-tombstone, roll-over and dropping segments.
 * Versions of the store for snapshots and backups (writer_version_take):
 * a frozen index and the segments it points into, pinned.
 *
 * Must not: know the public handle (cellar_db), check the caller's
 * arguments (the front does), or read records for anyone else.  It calls
 * the index, the segment set, the latch and files.h, never upward.
 *
 * Locking: every writer_* call except writer_lock, writer_batch_begin,
 * writer_set_bg_error, writer_clear_bg_error, writer_sync_offpath,
 * writer_sync_data_offpath, writer_flush_offpath and writer_remove_dropped
 * runs with the mutex held.
 *
 * Checkpoints off the writer's path (writer_sync_offpath): under the mutex
 * the segments are synced and the index frozen (index_freeze: its private
 * chunks become copy-on-write); the file is written and renamed into place
 * with the mutex released, so writers go on meanwhile, each copying a
 * frozen chunk it changes; under the mutex again the frozen version is
 * thawed.  One checkpoint at a time (ckpt_mutex), taken before the writer
 * mutex, never the other way round.
 * Readers are held up only while the exclusive latch is taken around an
 * in-memory change, never across file I/O.
 */
#ifndef CELLAR_WRITER_H
#define CELLAR_WRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ballast.h"
#include "hash.h"
#include "index.h"
#include "latch.h"
#include "segment.h"

/** Where the writer works; the pointers must outlive it. */
typedef struct writer_config {
	cellar_fs *fs;
	const char *dir;
	segset *segs;
	cellar_index *ix;
	latch *latch;
	const keyhash *kh;
	int sync_always; /* fsync every record before it is visible */
	uint64_t reserve_bytes; /* disk space held back (ballast.h); 0: none */
	/* The time expiring keys are judged by (ms since the epoch); NULL:
	 * the wall clock (clock_wall_ms). */
	uint64_t (*clock)(void *ctx);
	void *clock_ctx;
	/* Called (mutex held) for each expired key compaction drops (the
	 * front turns it into a change event); NULL: nobody is told. */
	void (*on_expire)(const void *key, size_t key_len, void *ctx);
	void *expire_ctx;
} writer_config;

typedef struct writer {
	writer_config c;
	pthread_mutex_t mutex;
	atomic_uint waiting;      /* callers blocked on mutex (writer_lock) */
	int failed;               /* error that poisoned writes, or 0 */
	int bg_error;             /* a background compaction failed, or 0 */
	uint64_t log_since_ckpt;  /* bytes appended since the last checkpoint */
	int have_ckpt;            /* an index file matches the log start */
	atomic_uint_fast64_t puts, deletes, syncs; /* successful calls */
	atomic_uint_fast64_t batches; /* write batches committed */
	atomic_uint_fast64_t expired; /* expired keys compaction dropped */
	/* Checkpoints (writer_sync_offpath).  ckpt_mutex: one at a time. */
	pthread_mutex_t ckpt_mutex;
	int ckpt_busy;            /* a frozen version is being written */
	uint64_t drops, drops_ckpt; /* segments dropped; as of the last ckpt */
	segment **detached;       /* dropped, to unmap and close unlocked */
	size_t ndetached, detached_cap;
	atomic_uint_fast64_t ckpts, ckpt_failures; /* written, failed */
	atomic_uint_fast64_t ckpt_copied;     /* chunks copied, all checkpoints */
	atomic_uint_fast64_t ckpt_copied_max; /* most in one checkpoint */
	atomic_uint_fast64_t ckpt_pause_max_ns; /* longest mutex hold of one */
	/* Versions held for snapshots and backups (writer_version_take). */
	struct writer_version *versions; /* the live ones, newest first */
	uint64_t nversions;
	uint64_t orphan_bytes;    /* dropped segments kept for them */
	uint64_t orphans;
	/* The reserve of disk space (see "A full disk" below). */
	ballast reserve;
	double reserve_tried;     /* clock_seconds() of the last attempt */
} writer;

/**
 * Start the writer on cfg.  Recovery says where the log stands: the bytes
 * it replayed past the checkpoint, and whether that checkpoint is usable.
 */
void writer_init(writer *w, const writer_config *cfg, uint64_t log_since_ckpt,
                 int have_ckpt);
void writer_destroy(writer *w);

/**
 * Take the mutex, announcing the wait so that a compaction pass lets this
 * caller in between two batches (pthread mutexes are not fair).
 */
void writer_lock(writer *w);
void writer_unlock(writer *w);

/** CELLAR_OK, or CELLAR_EFAILED (with its message) after a failed write. */
int writer_failed(const writer *w);

/**
 * CELLAR_OK, or why writes are refused (with its message): writer_failed,
 * or the error of a failed background compaction.
 */
int writer_refused(const writer *w);

/** Put a value: CELLAR_OK or an error. */
int writer_put(writer *w, const void *key, size_t key_len, const void *val,
               size_t val_len);

/** Put a value that expires at expire (ms since the epoch; 0: never). */
int writer_put_exp(writer *w, const void *key, size_t key_len,
                   const void *val, size_t val_len, uint64_t expire);

/**
 * Delete a key: CELLAR_OK, CELLAR_ENOTFOUND (also for a key that has
 * expired: nothing is written, compaction drops it), or an error.
 */
int writer_delete(writer *w, const void *key, size_t key_len);

/** The time expiring keys are judged by now (ms since the epoch). */
uint64_t writer_now(const writer *w);

/**
 * One put (RECORD_PUT) or delete (RECORD_DELETE) of a write batch; a put
 * may expire (expire: ms since the epoch, 0 never).  WRITER_OP_EXPIRE is
 * no record: it tells change events (watch.c) an expired key was dropped.
 */
#define WRITER_OP_EXPIRE 0x100
typedef struct writer_op {
	unsigned kind;
	const void *key, *val;
	size_t key_len, val_len;
	uint64_t expire;
} writer_op;

/**
 * Commit ops (n < 2^32) as one write batch: all or nothing, after a crash
 * and to readers.  A later op on a key supersedes an earlier one; a delete
 * of an absent (or expired) key writes nothing; a batch that changes nothing writes
 * nothing.  The records go into one segment, the index changes under one
 * hold of the exclusive latch.  CELLAR_OK, CELLAR_ELIMIT (more than a
 * segment can hold), or an error: before the append nothing is changed;
 * an index reservation failing while the batch is published (out of
 * memory) leaves the log whole but the handle failed (reopen).
 * skip (n bytes, or NULL): on CELLAR_OK, 1 for each op that wrote nothing.
 */
int writer_commit_ops(writer *w, const writer_op *ops, size_t n,
                      unsigned char *skip);

/**
 * Make everything written so far durable, and write a checkpoint when due
 * (the log grew by half the index since the last) or when force_ckpt and
 * anything is new.  After a failed fsync every later write is refused.
 */
int writer_sync(writer *w, int force_ckpt);

/**
 * Mutex NOT held: writer_sync, with the checkpoint written off the
 * writer's path (see the top): the mutex is held only to sync, freeze and
 * thaw, for time that grows with the unsynced log and the number of index
 * chunks (a few microseconds per thousand), not with the index's bytes.
 * The segments are fsynced with the mutex released first (presync), so
 * that the sync under it covers only what came meanwhile.  step (if not
 * NULL) runs under the mutex between the sync and the freeze (compaction
 * drops its segments there); a dropped segment always makes a checkpoint
 * wanted.  *held_ms (if not NULL) gets the time the mutex was held.
 * A second caller waits for the checkpoint in progress, then does its own
 * when still due.  A failed checkpoint write leaves the previous one in
 * place and is returned; the next due sync retries it.
 */
typedef void (*writer_step_fn)(writer *w, void *ctx);
int writer_sync_offpath(writer *w, int force_ckpt, writer_step_fn step,
                        void *ctx, double *held_ms);

/**
 * Mutex NOT held: writer_sync_data, the fsyncs with the mutex released
 * (as writer_sync_offpath's first step).  Compaction calls it as its
 * copies grow, so that little is left unsynced when a segment fills.
 * *held_ms as there.
 */
int writer_sync_data_offpath(writer *w, double *held_ms);

/**
 * Mutex NOT held: write the append buffer set aside when it filled (and,
 * when all, whatever else is buffered) to the segment file, holding the
 * mutex only to claim it and to let it go (segset_flush_begin): writers
 * go on appending meanwhile.  Otherwise the next buffer to fill writes it
 * under the mutex.  Compaction calls this after each batch, a sync before
 * it takes its plan.  A failed write is returned and tried again later;
 * when all (a sync's), it also refuses later writes, as a sync's failed
 * flush under the mutex does.
 */
int writer_flush_offpath(writer *w, int all);

/**
 * For compaction, which should let the disk catch up rather than make
 * writers wait: would appending bytes more wait for a buffer's write
 * (mutex held)?  writer_wait_flush (mutex NOT held) waits while another
 * thread writes one.
 */
int writer_would_wait(writer *w, uint64_t bytes);
void writer_wait_flush(writer *w);

/** Has the log grown enough since the last checkpoint for the next one? */
int writer_ckpt_due(const writer *w);

/** Flush and fsync the segments only (no checkpoint). */
int writer_sync_data(writer *w);

/* ---- for compaction ---------------------------------------------------- */

/**
 * Start a batch: let every announced writer take the mutex first, then
 * take it.  writer_batch_end releases it.
 */
void writer_batch_begin(writer *w);
void writer_batch_end(writer *w);

/**
 * Append a copy of a put (expiring at expire, 0 never) if the index still
 * points at (seg, off): *copied is 1 if it did, 0 if the key moved on
 * (nothing written).
 */
int writer_copy_if_at(writer *w, const void *key, size_t key_len,
                      const void *val, size_t val_len, uint64_t expire,
                      uint16_t seg, uint32_t off, int *copied);

/**
 * An expired put at (seg, off): if the index still points at it, remove
 * the key.  Unless oldest (no older segment survives the pass, so no older
 * record of the key can come back), a tombstone is appended so that a
 * rebuild from the segments does not bring an older put back.  *dropped is
 * 1 if the key went (cfg.on_expire is then told), 0 if it moved on.
 */
int writer_expire_if_at(writer *w, const void *key, size_t key_len,
                        uint16_t seg, uint32_t off, int oldest, int *dropped);

/**
 * Append a copy of a delete if its key is absent, so that it goes on
 * hiding older puts: *carried is 1 if it did, 0 if a put of the key is
 * live (the tombstone is no longer needed).
 */
int writer_carry_tombstone(writer *w, const void *key, size_t key_len,
                           int *carried);

/** Close the newest segment and start a new one. */
int writer_roll(writer *w);

/**
 * Drop segment g from the set (the index no longer points into it).  Its
 * file stays until writer_remove_dropped, after a checkpoint; its mapping
 * and handle until writer_free_dropped (or writer_remove_dropped), which
 * release them without the mutex.
 */
void writer_drop_segment(writer *w, segment *g);

/** Mutex NOT held: unmap and close the segments dropped so far. */
void writer_free_dropped(writer *w);

/**
 * Mutex NOT held, after a checkpoint that no longer lists them: remove the
 * files of dropped segments seqs; then (under the mutex, briefly) their ids
 * may be reused.
 */
int writer_remove_dropped(writer *w, const uint64_t *seqs, size_t n);

/** Record (under the mutex) that a background compaction failed, or clear it. */
void writer_set_bg_error(writer *w, int rc);
void writer_clear_bg_error(writer *w);

/* ---- versions for snapshots and backups -------------------------------- */

/*
 * A version is the store as it stood at one moment: a frozen index
 * (index_freeze) and the segments it points into, each pinned so that a
 * compaction that drops it meanwhile leaves it open and mapped (an orphan)
 * until the last version holding it is released.  Writers go on: they copy
 * each frozen index chunk they change (64 KiB) once per version.
 */
typedef struct writer_version {
	cellar_index *ix;         /* frozen: read it with no latch */
	segment **segs;           /* the segments then, by sequence */
	size_t nsegs;
	index_ckpt ck;            /* log position and segment table then */
	struct writer_version *next;
} writer_version;

/**
 * Mutex NOT held: take a version of the store now.  With flush, the append
 * buffer is written to the newest segment's file first, so that every byte
 * of the version lies in the files (a backup copies them).
 * CELLAR_ENOMEM, CELLAR_EFAILED, or the flush's I/O error.
 */
int writer_version_take(writer *w, int flush, writer_version **out);

/** Mutex NOT held: release a version (accepts NULL); frees the orphans
 *  only it held, with the mutex released. */
void writer_version_release(writer *w, writer_version *v);

/** Mutex NOT held: release every version still held (at close). */
void writer_version_release_all(writer *w);

/** What the versions hold now: their count, and the bytes of index chunks
 *  and of dropped segments kept for them (mutex NOT held). */
void writer_version_stats(writer *w, uint64_t *count, uint64_t *index_bytes,
                          uint64_t *segment_bytes);

/* ---- a full disk ------------------------------------------------------- *
 *
 * A write the file system refuses for lack of space (CELLAR_ENOSPC) leaves
 * the writer able to go on: the bytes stay buffered and are written again
 * later.  With a reserve (reserve_bytes), the first such refusal gives the
 * reserve's space back to the file system, and from then on puts are
 * refused with CELLAR_ENOSPC while deletes, syncs, checkpoints and
 * compaction write into the space it freed (one of them that meets the
 * full disk while the reserve is still held gives it up and tries once
 * more).  The reserve is made again after each compaction pass, by a sync
 * and, at most once a second, by a put; once it is whole, puts are taken
 * again.
 */

/**
 * At open (no other thread yet): make the reserve, if the store keeps one.
 * CELLAR_OK also when the disk has no room for it (the writer then starts
 * short of space: puts wait for it); another error of the file system.
 */
int writer_reserve_open(writer *w);

/** Is the reserve given up, puts waiting for room (mutex held)? */
int writer_short_of_space(const writer *w);

/** Mutex NOT held: make the reserve again if it was given up (after a
 *  compaction pass freed space). */
void writer_reserve_renew(writer *w);

/** The segment set the writer appends to. */
static inline segset *writer_segments(writer *w)
{
	return w->c.segs;
}

#endif

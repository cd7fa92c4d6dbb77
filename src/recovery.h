/*
 * recovery.h - bringing the index up to date with the log on open.
 *
 * The log (segments) is the truth; the index file is a checkpoint of the
 * table as of a log position.  On open, recovery loads the checkpoint,
 * checks it against the segments, and replays every record written after
 * its position.  When there is no usable checkpoint it rebuilds the table
 * from all segments.  A damaged record is skipped (its bytes are counted
 * dead) and replay resumes at the next valid record; garbage at the end of
 * the newest segment (a write torn by a crash) is cut off, unless the store
 * is opened read-only, in which case it is only ignored.
 *
 * A segment the checkpoint lists that is now shorter than the checkpoint
 * says was cut by someone else (a checkpoint is written only after the
 * segments it covers are durable): that is damage, not a torn write.  The
 * checkpoint is kept, so its slots that point past the cut still name the
 * lost records and reads of them fail with CELLAR_ECORRUPT instead of
 * saying "not found"; the segment keeps the size the checkpoint gave it in
 * segment.covered (and in every later checkpoint), and a read-write open
 * starts a new segment rather than append after the cut.
 */
#ifndef CELLAR_RECOVERY_H
#define CELLAR_RECOVERY_H

#include <stdint.h>

#include "hash.h"
#include "index.h"
#include "segment.h"

typedef struct recovery_result {
	uint64_t replayed;      /* records applied */
	uint64_t replayed_bytes;
	uint64_t damaged_bytes; /* bytes skipped as damaged */
	uint64_t cut_bytes;     /* torn tail removed from the newest segment */
	uint64_t lost_bytes;    /* bytes the checkpoint covered that segment
	                         * files no longer hold (they were cut short) */
	uint64_t lost_segments; /* segments cut short */
	uint64_t lost_seq;      /* the first of them */
	int rebuilt;            /* no usable checkpoint: rebuilt from scratch */
	uint64_t ckpt_seq, ckpt_off; /* position of the loaded checkpoint */
} recovery_result;

/** Produce the index for segs (already open); kh hashes the store's keys. */
int recovery_run(cellar_index **out, segset *segs, cellar_fs *fs,
                 const char *dir, const keyhash *kh, int readonly,
                 recovery_result *res);

/**
 * Apply one valid record at (g, off) to the index during replay.  Updates
 * live/dead byte counts.
 */
int recovery_apply(cellar_index *ix, segset *segs, uint64_t hash,
                   const record_view *v, segment *g, uint64_t off);

/**
 * A read-only handle follows the writer (cellar_refresh): replay g's records
 * from g->size, the end of what the table already holds, towards end (the
 * file's length now; segset_reach made it readable), at most budget of
 * them.  g->size moves past each record before it is applied, so that a
 * later record of the same key finds it.  Exclusive latch held.
 *
 * A record that fails its checksum with nothing valid after it, in the
 * newest segment, is a write still under way: replay stops there and the
 * next refresh starts again at it.  Anywhere else it is damage, skipped and
 * counted as in recovery_run.  A write batch is applied whole in one call
 * (budget grows by its records), or not at all while its body is still
 * being written.  *more is 1 if records remain before end.
 */
int recovery_follow(cellar_index *ix, segset *segs, segment *g, uint64_t end,
                    const keyhash *kh, int newest, unsigned budget,
                    recovery_result *res, int *more);

/**
 * A table of every segment's records, as a rebuild would make it, without
 * changing the segments or their counters (shadow.h: a read-only handle's
 * damaged index).  *lossy is set if a damaged record was skipped.
 */
int recovery_shadow(cellar_index **out, const segset *segs,
                    const keyhash *kh, int *lossy);

#endif

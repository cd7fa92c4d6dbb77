/*
 * snapshot.h - snapshots (snapshot.c): the cellar_snapshot_* calls of
 * cellar.h, and what the statistics need of them.
 *
 * Owns: the snapshot handle and its iterator.  Must not: change the
 * store, or read the live index (a snapshot reads its frozen version).
 */
#ifndef CELLAR_SNAPSHOT_H
#define CELLAR_SNAPSHOT_H

#include <stdint.h>

#include "cellar.h"

/**
 * What the snapshots and backups of db hold now: how many, and the bytes
 * of replaced index chunks and of dropped segments kept for them (0 for a
 * read-only handle).  Takes the writer mutex briefly.
 */
void snapshot_stats(cellar_db *db, uint64_t *count, uint64_t *index_bytes,
                    uint64_t *segment_bytes);

#endif

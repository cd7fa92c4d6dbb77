/*
 * pagecache.h - what of the store is in memory, and keeping the index
 * there: the residency report (cellar_residency), CELLAR_LOCK_INDEX's lock,
 * and the map hint the segment_access option asks for.
 *
 * Owns the locked range of the index (a pagecache struct in the handle)
 * and the arithmetic of the report.  It asks the file system (resident,
 * lock_mem, unlock_mem: the version-2 members of cellar_fs, read only of a
 * version-2 table) and reads the index's mapping and the segments' sizes
 * and mappings.  Must not: make system calls itself, change the index or
 * the segments, or read a record.
 */
#ifndef CELLAR_PAGECACHE_H
#define CELLAR_PAGECACHE_H

#include <stdint.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "index.h"
#include "segment.h"

/** What CELLAR_LOCK_INDEX locked, to unlock at close. */
typedef struct pagecache {
	cellar_fs *fs;
	cellar_file *file;  /* the index file, for messages */
	const void *addr;   /* NULL: nothing locked */
	uint64_t len;
} pagecache;

/**
 * The fs's version-2 member op, or NULL when the table is of version 1 (it
 * may end before the member) or leaves it NULL.
 */
#define PAGECACHE_FS_OP(fs, op) ((fs)->version >= 2 ? (fs)->op : NULL)

/**
 * The CELLAR_FS_MAP_* hint of the segment mappings for a cellar_access
 * value (already checked to be in range); a version-1 table is never given
 * a hint it does not know.
 */
int pagecache_segment_hint(const cellar_fs *fs, unsigned access);

/**
 * Lock the index file's bytes in memory as ix holds them (its mapping, or
 * the private copy read at open), and remember the range in pc.  Nothing to
 * lock (no index file yet) is CELLAR_OK with nothing locked.  CELLAR_EINVAL
 * when the fs has no lock_mem; CELLAR_EMLOCK (from the fs) when the OS
 * refuses.
 */
int pagecache_lock_index(pagecache *pc, cellar_fs *fs, cellar_index *ix);

/** Unlock what pagecache_lock_index locked, if anything.  Before the index
 *  is freed. */
void pagecache_unlock(pagecache *pc);

/**
 * Fill *out for the index ix and the segments s.  The caller keeps the
 * segment list still (the writer mutex, or a read-only handle).
 */
int pagecache_residency(const pagecache *pc, cellar_fs *fs,
                        cellar_index *ix, const segset *s,
                        cellar_residency_info *out);

#endif

/*
 * db.h - the database handle, shared by db.c (the public API) and iter.c.
 *
 * Locking: `wmutex` orders writers (put, delete, sync, checkpoint, the
 * background sync); `latch` guards what readers look at (the index and the
 * segment table) and is taken exclusive only around in-memory changes.  A
 * read-only handle has no writer and takes neither.
 */
#ifndef CELLAR_DB_H
#define CELLAR_DB_H

#include <pthread.h>
#include <stdint.h>

#include "cellar.h"
#include "hash.h"
#include "index.h"
#include "latch.h"
#include "recovery.h"
#include "segment.h"
#include "testhook.h"

struct cellar_db {
	latch latch; /* first: needs its cache-line alignment */
	cellar_fs *fs;
	int own_fs;
	char *dir;
	cellar_options opts;
	int readonly;
	cellar_file *lock;
	uint64_t seed;
	cellar__hash_fn hash_fn; /* test hook; NULL: xxhash */
	cellar_index *ix;
	segset segs;
	recovery_result recovery;

	pthread_mutex_t wmutex;
	int failed;               /* error that poisoned writes, or 0 */
	uint64_t log_since_ckpt;  /* bytes appended since the last checkpoint */
	int have_ckpt;            /* an index file matches the log start */

	/* background sync */
	pthread_t bg;
	int bg_running;
	int bg_stop;
	pthread_mutex_t bg_mutex;
	pthread_cond_t bg_cond;
};

static inline uint64_t db_hash(const cellar_db *db, const void *key, size_t len)
{
	if (db->hash_fn)
		return db->hash_fn(key, len, db->seed);
	return hash_key(key, len, db->seed);
}

static inline unsigned db_read_lock(cellar_db *db)
{
	return db->readonly ? 0 : latch_read_lock(&db->latch);
}

static inline void db_read_unlock(cellar_db *db, unsigned slot)
{
	if (!db->readonly)
		latch_read_unlock(&db->latch, slot);
}

#endif

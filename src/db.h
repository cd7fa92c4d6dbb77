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
#include <stdatomic.h>
#include <stdint.h>

#include "cellar.h"
#include "hash.h"
#include "index.h"
#include "latch.h"
#include "recovery.h"
#include "segment.h"
#include "testhook.h"

/* Read counters, one cache line per latch slot so threads don't share. */
typedef struct read_counters {
	_Alignas(64) atomic_uint_fast64_t gets;
	atomic_uint_fast64_t hits;
	atomic_uint_fast64_t probes;
} read_counters;

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

	read_counters reads[LATCH_SLOTS];
	atomic_uint_fast64_t puts, deletes, syncs, compactions;

	pthread_mutex_t wmutex;
	atomic_uint writers_waiting; /* callers blocked on wmutex (put, delete) */
	int failed;               /* error that poisoned writes, or 0 */
	int bg_error;             /* a background compaction failed, or 0 */
	uint64_t log_since_ckpt;  /* bytes appended since the last checkpoint */
	int have_ckpt;            /* an index file matches the log start */

	/* iterators vs compaction: no batch runs while an iterator is open */
	pthread_mutex_t iter_mutex;
	pthread_cond_t iter_cond;
	unsigned iters_open;
	int batch_running; /* compaction batches in progress (any thread) */

	/* background sync */
	pthread_t bg;
	int bg_running;
	atomic_int bg_stop;
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
	return db->readonly ? latch_thread_slot() : latch_read_lock(&db->latch);
}

static inline void db_read_unlock(cellar_db *db, unsigned slot)
{
	if (!db->readonly)
		latch_read_unlock(&db->latch, slot);
}

/* How db_write treats the key's current entry. */
enum {
	WRITE_NORMAL,    /* put or delete */
	WRITE_IF_AT,     /* put only if the index still points at `at` */
	WRITE_TOMBSTONE  /* append a delete only if the key is absent */
};

/** A record location, for WRITE_IF_AT. */
typedef struct db_loc {
	uint16_t seg;
	uint32_t off;
} db_loc;

/*
 * The write path (writer mutex held).  Returns CELLAR_OK when the record was
 * written, 1 when the mode's condition skipped it, CELLAR_ENOTFOUND for a
 * delete of an absent key, or an error.
 */
int db_write(cellar_db *db, unsigned kind, const void *key, size_t key_len,
             const void *val, size_t val_len, int mode, const db_loc *at);

/* Sync (and checkpoint when due, or always if force_ckpt); writer mutex held. */
int db_sync_locked(cellar_db *db, int force_ckpt);

/* Report an event to the user's callback, if any. */
void db_event(cellar_db *db, const cellar_event *ev);

/* A compaction pass; stops between batches once *stop is set. */
int compact_run(cellar_db *db, cellar_compact_result *res,
                const atomic_int *stop);

#endif

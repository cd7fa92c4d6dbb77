/*
 * handle.h - the database handle, shared by the parts of the front: the
 * public calls (db.c), the read path (read.c), opening and closing
 * (open.c), the background thread and events (bg.c), the iterator
 * (iter.c), write batches (batch.c), read-modify-write (rmw.c) and change
 * events (watch.c).  It has no .c of its own.
 *
 * The handle owns one of each engine piece: the segment set, the index,
 * the writer (writer.h, which owns the writer mutex and the failure
 * state), the iterator/compaction gate (gate.h) and the latch.  Code below
 * the front never sees this struct: it gets the pieces it needs.
 *
 * Locking: the writer's mutex orders writers (put, delete, sync,
 * checkpoint, compaction batches, the background sync); `latch` guards
 * what readers look at (the index and the segment table) and is taken
 * exclusive only around in-memory changes.  A read-only handle has no
 * writer; its readers take the latch too, because cellar_refresh changes
 * the table and the segment set under it (refresh_mutex orders refreshes,
 * and keeps the segment set still for cellar_warm and cellar_residency).
 */
#ifndef CELLAR_HANDLE_H
#define CELLAR_HANDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cellar.h"
#include "clock.h"
#include "error.h"
#include "gate.h"
#include "hash.h"
#include "index.h"
#include "latch.h"
#include "meta.h"
#include "pagecache.h"
#include "recovery.h"
#include "segment.h"
#include "shadow.h"
#include "writer.h"

/* Read counters, one cache line per latch slot so threads don't share. */
typedef struct read_counters {
	_Alignas(64) atomic_uint_fast64_t gets;
	atomic_uint_fast64_t hits;
	atomic_uint_fast64_t probes;
} read_counters;

/* The background thread: periodic sync and automatic compaction. */
typedef struct bg_thread {
	pthread_t thread;
	int running;
	atomic_int stop;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
} bg_thread;

struct cellar_db {
	latch latch; /* first: needs its cache-line alignment */
	cellar_fs *fs;
	int own_fs;
	char *dir;
	cellar_options opts;
	int readonly;
	cellar_file *lock;
	keyhash kh;
	cellar_index *ix;
	pagecache pc; /* what CELLAR_LOCK_INDEX locked */
	segset segs;
	recovery_result recovery;
	read_counters reads[LATCH_SLOTS];
	atomic_uint_fast64_t compactions;
	writer w;   /* read-write handles only */
	gate gate;  /* iterators vs compaction batches */
	bg_thread bg;
	meta meta;  /* the store the handle reads: a refresh compares it */
	pthread_mutex_t refresh_mutex;  /* read-only handles: one refresh at a time */
	atomic_uint_fast64_t refreshes, reloads, refreshed_records;
	struct watch_hub *watch; /* change events (watch.c), or NULL */
	shadow shadow; /* read-only handles: the table rebuilt in memory when
	                * the index has a damaged chunk (shadow.h) */
};

/*
 * The entry checks of the front's files (db.c, batch.c, rmw.c, watch.c):
 * db_enter clears this thread's message, checks db, that it is writable
 * (if writable) and the key (if key is not NULL; a key that may be NULL
 * goes to db_check_key).  Here, not in db.c, so that a module db.c calls
 * (watch.c) can use them without calling back up.
 */
/** CELLAR_OK, CELLAR_EINVAL (NULL) or CELLAR_EKEYLEN. */
static inline int db_check_key(const void *key, size_t key_len)
{
	if (!key)
		return cellar__error(CELLAR_EINVAL, "key is NULL");
	if (key_len == 0 || key_len > CELLAR_MAX_KEY_LEN)
		return cellar__error(CELLAR_EKEYLEN, "key length %zu not in 1..%u",
		                     key_len, CELLAR_MAX_KEY_LEN);
	return CELLAR_OK;
}

static inline int db_enter(cellar_db *db, int writable, const void *key,
                           size_t key_len)
{
	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (writable && db->readonly)
		return cellar__error(CELLAR_EREADONLY, "store is open read-only");
	return key ? db_check_key(key, key_len) : CELLAR_OK;
}

/** CELLAR_OK, CELLAR_EVALLEN, or CELLAR_EINVAL (NULL with val_len > 0). */
static inline int db_check_value(const void *val, size_t val_len)
{
	if (val_len > CELLAR_MAX_VALUE_LEN)
		return cellar__error(CELLAR_EVALLEN, "value length %zu > %u",
		                     val_len, CELLAR_MAX_VALUE_LEN);
	if (!val && val_len)
		return cellar__error(CELLAR_EINVAL, "value is NULL");
	return CELLAR_OK;
}

/** The handle's time for expiring keys: ms since the epoch. */
static inline uint64_t db_now(const cellar_db *db)
{
	return db->opts.clock ? db->opts.clock(db->opts.clock_ctx)
	                      : clock_wall_ms();
}

/**
 * The checks of a cellar_put_options (not NULL) that need no clock:
 * version, flags (allowed: the flags the call accepts), not both times.
 */
static inline int db_check_put_options(const cellar_put_options *po,
                                       unsigned allowed)
{
	if (po->version == 0 || po->version > CELLAR_PUT_OPTIONS_VERSION)
		return cellar__error(CELLAR_EINVAL, "put options version %u unknown",
		                     po->version);
	if (po->flags & ~allowed)
		return cellar__error(CELLAR_EINVAL, "put flags 0x%x not allowed here",
		                     po->flags);
	if (po->ttl_ms && po->expire_at)
		return cellar__error(CELLAR_EINVAL,
		                     "set ttl_ms or expire_at, not both");
	return CELLAR_OK;
}

/**
 * The absolute expiry of a put with ttl_ms or expire_at (0 both: never,
 * *out = 0) at time now: CELLAR_OK, or CELLAR_EINVAL when expire_at is not
 * after now or now + ttl_ms overflows.
 */
static inline int db_expiry(uint64_t ttl_ms, uint64_t expire_at, uint64_t now,
                            uint64_t *out)
{
	*out = 0;
	if (expire_at && expire_at <= now)
		return cellar__error(CELLAR_EINVAL, "expire_at %llu is not after "
		                     "now (%llu)", (unsigned long long)expire_at,
		                     (unsigned long long)now);
	if (ttl_ms && ttl_ms > UINT64_MAX - now)
		return cellar__error(CELLAR_EINVAL, "now + ttl_ms overflows");
	*out = expire_at ? expire_at : ttl_ms ? now + ttl_ms : 0;
	return CELLAR_OK;
}

static inline uint64_t db_hash(const cellar_db *db, const void *key, size_t len)
{
	return keyhash_of(&db->kh, key, len);
}

static inline unsigned db_read_lock(cellar_db *db)
{
	return latch_read_lock(&db->latch);
}

static inline void db_read_unlock(cellar_db *db, unsigned slot)
{
	latch_read_unlock(&db->latch, slot);
}

/* Keep the segment set as it is: the writer's mutex, or a read-only
 * handle's refresh mutex. */
static inline void db_hold_segments(cellar_db *db)
{
	if (db->readonly)
		pthread_mutex_lock(&db->refresh_mutex);
	else
		writer_lock(&db->w);
}

static inline void db_release_segments(cellar_db *db)
{
	if (db->readonly)
		pthread_mutex_unlock(&db->refresh_mutex);
	else
		writer_unlock(&db->w);
}

#endif

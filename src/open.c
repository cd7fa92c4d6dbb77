/*
 * open.c - opening and closing a store.
 *
 * cellar_open is a short sequence of named steps: check the options, make
 * the handle, attach the file system, find or create the store (taking the
 * write lock for a writer), open the log and recover the index (and lock it
 * in memory with CELLAR_LOCK_INDEX), ready the
 * writer, start the background thread.  Each step undoes nothing itself:
 * on failure db_free takes apart whatever was built.
 *
 * Owns the handle's life and the test hooks' effect on it.  Must not: read
 * or write records, or know the index file's or the meta file's bytes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bg.h"
#include "error.h"
#include "files.h"
#include "handle.h"
#include "meta.h"
#include "refresh.h"
#include "watch.h"

#define DEFAULT_SEGMENT_SIZE (256ull << 20)
#define MIN_SEGMENT_SIZE (64ull << 10)
#define MAX_SEGMENT_SIZE (2ull << 30)
#define DEFAULT_SYNC_MS 1000
#define DEFAULT_COMPACT_PCT 20
#define MAX_RESERVE (1ull << 40)

/* ---- test hooks (test builds only) -------------------------------------- */

#ifdef CELLAR_TEST_HOOKS
static cellar__hash_fn test_hash;
static uint64_t test_max_buckets;

void cellar__test_set_hash(cellar__hash_fn fn)
{
	test_hash = fn;
}

void cellar__test_set_max_buckets(uint64_t n)
{
	test_max_buckets = n;
}
#endif

/* ---- the steps ----------------------------------------------------------- */

static int check_options(const cellar_options *o)
{
	if (o->version == 0 || o->version > CELLAR_OPTIONS_VERSION)
		return cellar__error(CELLAR_EINVAL, "options version %u unknown",
		                     o->version);
	if (o->flags & ~(unsigned)(CELLAR_CREATE | CELLAR_READONLY |
	                           CELLAR_LOCK_INDEX))
		return cellar__error(CELLAR_EINVAL, "unknown option flags 0x%x",
		                     o->flags);
	if (o->sync_mode < CELLAR_SYNC_NONE || o->sync_mode > CELLAR_SYNC_ALWAYS)
		return cellar__error(CELLAR_EINVAL, "unknown sync mode %d",
		                     o->sync_mode);
	if (o->compact_dead_pct > 100 || o->auto_compact_pct > 100)
		return cellar__error(CELLAR_EINVAL, "percentages must be 0..100");
	if (o->max_segment_size && (o->max_segment_size < MIN_SEGMENT_SIZE ||
	                            o->max_segment_size > MAX_SEGMENT_SIZE))
		return cellar__error(CELLAR_EINVAL,
		                     "max_segment_size must be 64 KiB..2 GiB");
	if (o->version >= 3 && o->segment_access > CELLAR_ACCESS_WILLNEED)
		return cellar__error(CELLAR_EINVAL, "unknown segment_access %u",
		                     o->segment_access);
	if (o->version >= 4 && o->reserve_bytes > MAX_RESERVE)
		return cellar__error(CELLAR_EINVAL, "reserve_bytes must be at most "
		                     "1 TiB");
	return CELLAR_OK;
}

/* The caller's options, earlier versions included, with defaults filled. */
static void take_options(cellar_db *db, const cellar_options *opts)
{
	/* Version 1 callers' options end before expected_keys, version 2
	 * callers' before segment_access, version 3 callers' before
	 * reserve_bytes; the rest stays zero (default). */
	size_t len = opts->version >= 4   ? sizeof *opts
	             : opts->version == 3 ? offsetof(cellar_options, reserve_bytes)
	             : opts->version == 2
	                 ? offsetof(cellar_options, segment_access)
	                 : offsetof(cellar_options, expected_keys);

	memcpy(&db->opts, opts, len);
	if (!db->opts.max_segment_size)
		db->opts.max_segment_size = DEFAULT_SEGMENT_SIZE;
	if (!db->opts.sync_interval_ms)
		db->opts.sync_interval_ms = DEFAULT_SYNC_MS;
	if (!db->opts.compact_dead_pct)
		db->opts.compact_dead_pct = DEFAULT_COMPACT_PCT;
	db->readonly = !!(opts->flags & CELLAR_READONLY);
}

static int db_new(cellar_db **out, const char *dir, const cellar_options *opts)
{
	cellar_db *db = aligned_alloc(64, (sizeof *db + 63) & ~(size_t)63);

	*out = NULL;
	if (!db)
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	memset(db, 0, sizeof *db);
	latch_init(&db->latch);
	gate_init(&db->gate);
	shadow_init(&db->shadow);
	pthread_mutex_init(&db->bg.mutex, NULL);
	pthread_cond_init(&db->bg.cond, NULL);
	pthread_mutex_init(&db->refresh_mutex, NULL);
	take_options(db, opts);
	*out = db;
	if (!(db->dir = strdup(dir)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	return CELLAR_OK;
}

/* What open_log built: the index (and its lock in memory), the segments. */
static void close_log(cellar_db *db)
{
	pagecache_unlock(&db->pc);
	index_free(db->ix);
	db->ix = NULL;
	if (db->segs.by_id)
		segset_close(&db->segs);
}

static void db_free(cellar_db *db)
{
	bg_stop(db);
	close_log(db);
	if (db->lock)
		db->fs->unlock(db->fs, db->lock);
	if (db->own_fs)
		cellar_fs_free(db->fs);
	if (db->w.c.fs) /* writer_init ran */
		writer_destroy(&db->w);
	pthread_mutex_destroy(&db->bg.mutex);
	pthread_cond_destroy(&db->bg.cond);
	pthread_mutex_destroy(&db->refresh_mutex);
	gate_destroy(&db->gate);
	shadow_free(&db->shadow);
	free(db->dir);
	free(db);
}

/* The caller's file system, or a new mmap one the handle owns. */
static int attach_fs(cellar_db *db)
{
	int rc;

	if (db->opts.fs) {
		db->fs = db->opts.fs;
	} else {
		if ((rc = cellar_fs_mmap_new(&db->fs)) < 0)
			return rc;
		db->own_fs = 1;
	}
	/* Version 1 tables end at destroy: their version-2 members are never
	 * read (PAGECACHE_FS_OP). */
	if (db->fs->version < 1 || db->fs->version > CELLAR_FS_VERSION)
		return cellar__error(CELLAR_EINVAL, "file system version %u unknown",
		                     db->fs->version);
	return CELLAR_OK;
}

/* A writer takes the store's lock, then creates the store if it is new. */
static int lock_and_create(cellar_db *db, meta *m)
{
	char path[FILE_PATH_MAX];
	int rc;

	if ((rc = files_path(path, sizeof path, db->dir, FILE_LOCK)) < 0)
		return rc;
	if ((rc = db->fs->lock(db->fs, path, &db->lock)) < 0) {
		if (rc == CELLAR_ELOCKED)
			cellar__error(rc, "%s is open for writing elsewhere", db->dir);
		return rc;
	}
	/* Someone may have created it while we waited for the lock. */
	rc = meta_read(db->fs, db->dir, m);
	if (rc != CELLAR_ENOENT)
		return rc;
	meta_init(m, db->opts.hash_seed);
	return meta_write(db->fs, db->dir, m);
}

/* fs->list callback: count the names a new store may find in its dir. */
static int foreign_name(const char *name, void *ctx)
{
	/* What an interrupted creation leaves: the lock, a meta being written. */
	if (strcmp(name, FILE_LOCK) != 0 && strcmp(name, FILE_META_TMP) != 0 &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
		++*(unsigned *)ctx;
	return CELLAR_OK;
}

/* Make dir for a new store; refuse one that holds anything else. */
static int make_dir(cellar_db *db)
{
	unsigned foreign = 0;
	int rc = db->fs->mkdir(db->fs, db->dir);

	if (rc == CELLAR_OK)
		return CELLAR_OK;
	if (rc != CELLAR_EEXIST ||
	    (rc = db->fs->list(db->fs, db->dir, foreign_name, &foreign)) < 0)
		return rc;
	if (foreign)
		return cellar__error(CELLAR_EEXIST, "%s holds %u other file%s and no "
		                     "cellar store: not creating one there", db->dir,
		                     foreign, foreign == 1 ? "" : "s");
	return CELLAR_OK;
}

/* Read the store's identity (creating the directory if asked to). */
static int find_store(cellar_db *db, meta *m)
{
	int rc = meta_read(db->fs, db->dir, m);

	if (rc == CELLAR_ENOENT && (db->opts.flags & CELLAR_CREATE) &&
	    !db->readonly) {
		if ((rc = make_dir(db)) < 0)
			return rc;
	} else if (rc == CELLAR_ENOENT) {
		return cellar__error(CELLAR_ENOENT, "no cellar store in %s", db->dir);
	} else if (rc < 0) {
		return rc;
	}
	return db->readonly ? CELLAR_OK : lock_and_create(db, m);
}

/* Open the segments and bring the index up to date with them. */
static int open_log(cellar_db *db, const meta *m)
{
	int rc;

	db->kh.seed = m->seed;
#ifdef CELLAR_TEST_HOOKS
	db->kh.fn = test_hash;
#endif
	if ((rc = segset_open_hinted(&db->segs, db->fs, db->dir,
	                             db->opts.max_segment_size, db->readonly,
	                             &db->latch, pagecache_segment_hint(
	                                 db->fs, db->opts.segment_access))) < 0 ||
	    (rc = recovery_run(&db->ix, &db->segs, db->fs, db->dir, &db->kh,
	                       db->readonly, &db->recovery)) < 0)
		return rc;
#ifdef CELLAR_TEST_HOOKS
	index_set_max_buckets(db->ix, test_max_buckets);
#endif
	/* Before presizing, which adds private buckets but no file bytes. */
	if ((db->opts.flags & CELLAR_LOCK_INDEX) &&
	    (rc = pagecache_lock_index(&db->pc, db->fs, db->ix)) < 0)
		return rc;
	if (!db->readonly && db->opts.expected_keys)
		return index_presize(db->ix, db->opts.expected_keys);
	return CELLAR_OK;
}

/* Attempts at a consistent read-only open (see open_readonly). */
#define RO_OPEN_TRIES 8

/*
 * A read-only handle opens the store's files one by one while a writer may
 * compact (removing segments) and a builder may publish another store in
 * the directory's place.  What it opened is whole if the directory still
 * holds the store it found at the start; if not, or if a file it listed
 * was gone, it tries again.  A store replaced for good shows as a changed
 * id; damage does not go away, so it is reported after a few tries.
 */
static int open_readonly(cellar_db *db, meta *m)
{
	int rc = CELLAR_OK;

	for (int tries = 0; tries < RO_OPEN_TRIES; tries++) {
		meta now;
		if (tries)
			close_log(db);
		if ((rc = find_store(db, m)) < 0)
			return rc;
		rc = open_log(db, m);
		int rc2 = meta_read(db->fs, db->dir, &now);
		if (rc2 == CELLAR_OK && meta_same_store(m, &now) &&
		    (rc == CELLAR_OK || tries >= 2))
			return rc;
		if (rc2 < 0 && rc2 != CELLAR_ENOENT && rc2 != CELLAR_ECORRUPT)
			return rc2;
	}
	return rc < 0 ? rc
	              : cellar__error(CELLAR_EBUSY, "%s: the store was replaced "
	                              "%d times while it was being opened",
	                              db->dir, RO_OPEN_TRIES);
}

/* Find the store, then open its log and recover (consistently, read-only). */
static int open_store(cellar_db *db)
{
	int rc = db->readonly ? open_readonly(db, &db->meta)
	                      : find_store(db, &db->meta);

	if (rc == CELLAR_OK && !db->readonly)
		rc = open_log(db, &db->meta);
	return rc;
}

/* Ready the writer; save a rebuilt index or a long replay at once. */
static int start_writer(cellar_db *db)
{
	writer_config cfg = { db->fs, db->dir, &db->segs, db->ix, &db->latch,
	                      &db->kh, db->opts.sync_mode == CELLAR_SYNC_ALWAYS,
	                      db->opts.reserve_bytes, db->opts.clock,
	                      db->opts.clock_ctx, watch_expired, db };
	int rc;

	/* What the last handle wrote after its checkpoint may never have been
	 * fsynced (it may have died first): the next sync must. */
	for (size_t i = 0; i < db->segs.n; i++)
		if (db->recovery.rebuilt ||
		    db->segs.list[i]->seq >= db->recovery.ckpt_seq)
			db->segs.list[i]->synced = 0;
	db->segs.dir_dirty = 1;
	writer_init(&db->w, &cfg, db->recovery.replayed_bytes,
	            !db->recovery.rebuilt);
	/* First the reserve, which the checkpoint below may need. */
	if ((rc = writer_reserve_open(&db->w)) < 0)
		return rc;
	/* Save the rebuilt index so the next open is quick; a short replay is
	 * cheaper than rewriting the whole index. */
	if (!db->recovery.rebuilt && !writer_ckpt_due(&db->w))
		return CELLAR_OK;
	/* On a full disk the checkpoint waits for the next one (a sync that
	 * finds it due, or close): the table in memory is whole, and the
	 * log is still the truth. */
	rc = writer_sync(&db->w, 1);
	return rc == CELLAR_ENOSPC && !writer_failed(&db->w) ? CELLAR_OK : rc;
}

/* Tell the event callback what recovery cut or skipped, if anything. */
static void report_recovery(cellar_db *db)
{
	const recovery_result *r = &db->recovery;
	char msg[256];

	if (!r->cut_bytes && !r->damaged_bytes && !r->lost_bytes)
		return;
	snprintf(msg, sizeof msg,
	         "%s %llu bytes of a torn write at the end of the newest "
	         "segment; skipped %llu bytes of damaged records; %llu "
	         "segments (the first %016llx.seg) lack %llu bytes the "
	         "checkpoint covered",
	         db->readonly ? "ignored" : "cut",
	         (unsigned long long)r->cut_bytes,
	         (unsigned long long)r->damaged_bytes,
	         (unsigned long long)r->lost_segments,
	         (unsigned long long)r->lost_seq,
	         (unsigned long long)r->lost_bytes);
	cellar_event ev = { CELLAR_EVENT_RECOVERED, 0, msg, 0, NULL };
	bg_event(db, &ev);
}

int cellar_open(cellar_db **out, const char *dir, const cellar_options *opts)
{
	cellar_options defaults = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!dir || !*dir)
		return cellar__error(CELLAR_EINVAL, "dir is NULL or empty");
	if (!opts)
		opts = &defaults;
	if ((rc = check_options(opts)) < 0)
		return rc;
	if ((rc = db_new(&db, dir, opts)) < 0 || (rc = attach_fs(db)) < 0 ||
	    (rc = open_store(db)) < 0 ||
	    (!db->readonly && (rc = start_writer(db)) < 0) ||
	    (rc = bg_start(db)) < 0)
		goto fail;
	report_recovery(db);
	cellar__error_clear(); /* ignored errors (a stale index.tmp) are no news */
	*out = db;
	return CELLAR_OK;
fail:
	if (db)
		db_free(db);
	return rc;
}

int cellar_close(cellar_db *db)
{
	int rc = CELLAR_OK;

	cellar__error_clear();
	if (!db)
		return CELLAR_OK;
	watch_stop(db); /* delivers what is queued first */
	bg_stop(db); /* stops a background compaction between two batches */
	if (!db->readonly) {
		writer_version_release_all(&db->w); /* snapshots left open */
		writer_lock(&db->w);
		rc = writer_sync(&db->w, 1);
		writer_unlock(&db->w);
	}
	db_free(db);
	return rc;
}

/* ---- refresh ------------------------------------------------------------ */

/* Exclusive latch: trade the stores of a and b (their log and table). */
static void swap_store(cellar_db *a, cellar_db *b)
{
	segset segs = a->segs;
	cellar_index *ix = a->ix;
	recovery_result rec = a->recovery;
	pagecache pc = a->pc;
	keyhash kh = a->kh;
	meta m = a->meta;

	a->segs = b->segs;
	a->ix = b->ix;
	a->recovery = b->recovery;
	a->pc = b->pc;
	a->kh = b->kh;
	a->meta = b->meta;
	b->segs = segs;
	b->ix = ix;
	b->recovery = rec;
	b->pc = pc;
	b->kh = kh;
	b->meta = m;
	shadow_swap(&a->shadow, &b->shadow);
	/* The set points at its handle's latch and directory. */
	a->segs.latch = &a->latch;
	a->segs.dir = a->dir;
	b->segs.latch = &b->latch;
	b->segs.dir = b->dir;
}

/*
 * Open the store in db's directory afresh into a new handle with db's
 * options, then put it in db's place.  Gets on other threads wait only for
 * the exchange of pointers; the old files are closed once it is done.  An
 * open iterator walks the old log by position, so, as for a compaction
 * batch, the exchange waits for none: CELLAR_EBUSY.
 */
static int reload(cellar_db *db)
{
	cellar_db *nd = NULL;
	int entered = 0, rc;

	if ((rc = db_new(&nd, db->dir, &db->opts)) < 0)
		goto done;
	nd->fs = db->fs; /* db's, owned by db */
	if ((rc = open_readonly(nd, &nd->meta)) < 0)
		goto done;
	gate_batch_enter(&db->gate, &entered);
	if (!entered) {
		rc = cellar__error(CELLAR_EBUSY, "an iterator is open on the "
		                   "handle: the refresh must reload it, and waits");
		goto done;
	}
	latch_write_lock(&db->latch);
	swap_store(db, nd);
	latch_write_unlock(&db->latch);
	gate_batch_leave(&db->gate);
	atomic_fetch_add(&db->reloads, 1);
done:
	if (nd)
		db_free(nd);
	return rc;
}

/* A catching-up refresh changed the table: a shadow of it is stale. */
static void forget_shadow(cellar_db *db)
{
	latch_write_lock(&db->latch);
	cellar_index *old = shadow_take(&db->shadow);
	latch_write_unlock(&db->latch);
	index_free(old);
}

int cellar_refresh(cellar_db *db)
{
	recovery_result res = { 0 };
	meta now;
	int rc;

	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (!db->readonly)
		return cellar__error(CELLAR_EINVAL, "refresh is for read-only "
		                     "handles: a read-write handle is always current");
	pthread_mutex_lock(&db->refresh_mutex);
	rc = meta_read(db->fs, db->dir, &now);
	if (rc == CELLAR_OK && !meta_same_store(&db->meta, &now))
		rc = REFRESH_RELOAD; /* another store was published here */
	else if (rc == CELLAR_OK)
		rc = refresh_follow(db, &res);
	if (rc == CELLAR_ECORRUPT)
		rc = REFRESH_RELOAD; /* a damaged index chunk: reopening rebuilds */
	if (rc == REFRESH_RELOAD)
		rc = reload(db);
	else if (res.replayed)
		forget_shadow(db);
	if (rc == CELLAR_OK) {
		atomic_fetch_add(&db->refreshes, 1);
		atomic_fetch_add(&db->refreshed_records, res.replayed);
	}
	pthread_mutex_unlock(&db->refresh_mutex);
	return rc;
}

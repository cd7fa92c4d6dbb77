/*
 * db.c - the public API: opening and closing a store, the read path, the
 * write path, sync and checkpoints, and the background sync thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucket.h"
#include "db.h"
#include "endian.h"
#include "error.h"
#include "files.h"
#include "meta.h"

#define DEFAULT_SEGMENT_SIZE (256ull << 20)
#define MIN_SEGMENT_SIZE (64ull << 10)
#define MAX_SEGMENT_SIZE (2ull << 30)
#define DEFAULT_SYNC_MS 1000
#define DEFAULT_COMPACT_PCT 20
/* Write a checkpoint at sync once this much log is past the last one... */
#define CKPT_MIN_LOG (8ull << 20)

/* ---- test hooks -------------------------------------------------------- */

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

/* ---- helpers ----------------------------------------------------------- */

static int check_key(const void *key, size_t key_len)
{
	if (!key)
		return cellar__error(CELLAR_EINVAL, "key is NULL");
	if (key_len == 0 || key_len > CELLAR_MAX_KEY_LEN)
		return cellar__error(CELLAR_EKEYLEN, "key length %zu not in 1..%u",
		                     key_len, CELLAR_MAX_KEY_LEN);
	return CELLAR_OK;
}

static uint64_t random_seed(const void *salt)
{
	struct timespec ts = { 0, 0 };
	uint64_t mix[4];

	timespec_get(&ts, TIME_UTC);
	mix[0] = (uint64_t)ts.tv_sec;
	mix[1] = (uint64_t)ts.tv_nsec;
	mix[2] = (uint64_t)(uintptr_t)salt;
	mix[3] = (uint64_t)(uintptr_t)&ts;
	uint64_t s = hash_checksum(mix, sizeof mix);
	return s ? s : 1;
}

/* ---- checkpoints and sync (writer mutex held) -------------------------- */

static int checkpoint(cellar_db *db)
{
	segset *s = &db->segs;
	index_ckpt ck = { 0 };
	segment *last = segset_last(s);
	int rc;

	if (s->n && !(ck.segs = calloc(s->n, sizeof *ck.segs)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	ck.nsegs = s->n;
	for (size_t i = 0; i < s->n; i++) {
		segment *g = s->list[i];
		ck.segs[i].id = g->id;
		ck.segs[i].seq = g->seq;
		ck.segs[i].size = g->wend;
		ck.segs[i].live = g->live;
		ck.segs[i].dead = g->dead;
		ck.segs[i].kept = g->kept > UINT32_MAX ? UINT32_MAX : (uint32_t)g->kept;
	}
	ck.seq = last ? last->seq : 0;
	ck.off = last ? last->wend : 0;
	rc = index_write(db->ix, db->fs, db->dir, &ck);
	free(ck.segs);
	if (rc == CELLAR_OK) {
		db->log_since_ckpt = 0;
		db->have_ckpt = 1;
	}
	return rc;
}

/*
 * Log bytes past the last checkpoint at which sync writes a new one: half
 * the index's size, so checkpoints cost O(1) per byte logged and recovery
 * replays at most that much.
 */
static uint64_t ckpt_due(cellar_db *db)
{
	uint64_t due = index_file_size(db->ix, db->segs.n) / 2;

	return due < CKPT_MIN_LOG ? CKPT_MIN_LOG : due;
}

/* Make everything written so far durable; checkpoint when due or forced. */
int db_sync_locked(cellar_db *db, int force_ckpt)
{
	int rc;

	atomic_fetch_add_explicit(&db->syncs, 1, memory_order_relaxed);
	if (db->failed)
		return cellar__error(CELLAR_EFAILED, "an earlier write failed (%s)",
		                     cellar_strerror(db->failed));
	if ((rc = segset_sync(&db->segs)) < 0) {
		/* After a failed fsync the kernel may have dropped the data:
		 * refuse further writes rather than pretend. */
		db->failed = rc;
		return rc;
	}
	if (force_ckpt ? (db->log_since_ckpt > 0 || !db->have_ckpt)
	               : db->log_since_ckpt >= ckpt_due(db))
		rc = checkpoint(db);
	return rc;
}

/* ---- the write path (writer mutex held) -------------------------------- */

int db_write(cellar_db *db, unsigned kind, const void *key, size_t key_len,
             const void *val, size_t val_len, int mode, const db_loc *at)
{
	uint64_t h = db_hash(db, key, key_len), off, total;
	seg_key k = { &db->segs, key, key_len, 0 };
	int touch_index;
	index_ref ref;
	segment *g;
	int rc;

	/*
	 * The index bucket is the one cache miss of a put: ask for it, and
	 * encode the record while it comes (segs.staged says if it could be).
	 */
	index_prefetch(db->ix, h);
	segset_stage(&db->segs, kind, key, key_len, val, val_len);
	if ((rc = index_find(db->ix, h, segset_match_key, &k, &ref)) < 0)
		return rc;
	if (mode == WRITE_IF_AT &&
	    (!ref.found || ref.old_seg != at->seg || ref.old_off != at->off))
		return 1;
	if (mode == WRITE_TOMBSTONE && ref.found)
		return 1;
	if (mode == WRITE_NORMAL && kind == RECORD_DELETE && !ref.found)
		return CELLAR_ENOTFOUND;
	touch_index = mode != WRITE_TOMBSTONE;
	if (touch_index && !index_reserve_is_noop(db->ix, &ref)) {
		latch_write_lock(&db->latch);
		rc = index_reserve(db->ix, &ref);
		latch_write_unlock(&db->latch);
		if (rc < 0)
			return rc;
	}
	if (db->segs.staged) {
		segset_commit_staged(&db->segs, &g, &off, &total);
	} else if ((rc = segset_append(&db->segs, kind, key, key_len, val,
	                               val_len, &g, &off, &total)) < 0) {
		if (db->segs.sync_failed)
			db->failed = db->segs.sync_failed; /* fsync in a roll-over */
		goto unreserve;
	}
	if (db->opts.sync_mode == CELLAR_SYNC_ALWAYS &&
	    (rc = segset_sync(&db->segs)) < 0) {
		db->failed = rc;
		goto unreserve;
	}
	latch_write_lock(&db->latch);
	segset_publish(&db->segs, g, off + total);
	if (!touch_index) {
		/* A carried tombstone is dead weight that must stay for now:
		 * counted dead, but not as a reason to compact again. */
		g->dead += total;
		g->kept += total;
	} else if (kind == RECORD_PUT) {
		index_set(db->ix, &ref, h, g->id, (uint32_t)off);
		index_grow(db->ix);
		g->live += total;
	} else {
		index_remove(db->ix, &ref);
		g->dead += total;
	}
	if (touch_index && ref.found)
		segset_mark_dead(&db->segs, ref.old_seg, k.found_total);
	latch_write_unlock(&db->latch);
	db->log_since_ckpt += total;
	return CELLAR_OK;
unreserve:
	/* index_reserve may have taken an overflow bucket: give it back. */
	if (touch_index && !ref.found && ref.slot < 0) {
		latch_write_lock(&db->latch);
		index_unreserve(db->ix, &ref);
		latch_write_unlock(&db->latch);
	}
	return rc;
}

/* Why writes are refused, if they are. */
static int write_refused(cellar_db *db)
{
	if (db->failed)
		return cellar__error(CELLAR_EFAILED, "an earlier write failed (%s)",
		                     cellar_strerror(db->failed));
	if (db->bg_error)
		return cellar__error(db->bg_error, "background compaction failed "
		                     "(%s); cellar_compact() retries it",
		                     cellar_strerror(db->bg_error));
	return CELLAR_OK;
}

/*
 * Take the writer mutex for a put or delete, announcing the wait so that a
 * compaction pass lets this writer in between two batches (pthread mutexes
 * are not fair: without it, a pass could take the mutex back every time).
 */
static void writer_lock(cellar_db *db)
{
	if (pthread_mutex_trylock(&db->wmutex) == 0)
		return; /* uncontended: the usual case, one locked instruction */
	atomic_fetch_add(&db->writers_waiting, 1);
	pthread_mutex_lock(&db->wmutex);
	atomic_fetch_sub(&db->writers_waiting, 1);
}

/* Bump a counter only the writer (holding wmutex) changes: no locked RMW. */
static inline void writer_count(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

static int begin_write(cellar_db *db)
{
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (db->readonly)
		return cellar__error(CELLAR_EREADONLY, "store is open read-only");
	return CELLAR_OK;
}

int cellar_put(cellar_db *db, const void *key, size_t key_len,
               const void *val, size_t val_len)
{
	int rc;

	cellar__error_clear();
	if ((rc = begin_write(db)) < 0 || (rc = check_key(key, key_len)) < 0)
		return rc;
	if (val_len > CELLAR_MAX_VALUE_LEN)
		return cellar__error(CELLAR_EVALLEN, "value length %zu > %u",
		                     val_len, CELLAR_MAX_VALUE_LEN);
	if (!val && val_len)
		return cellar__error(CELLAR_EINVAL, "value is NULL");
	writer_lock(db);
	if ((rc = write_refused(db)) == CELLAR_OK &&
	    (rc = db_write(db, RECORD_PUT, key, key_len, val ? val : "", val_len,
	                   WRITE_NORMAL, NULL)) == CELLAR_OK)
		writer_count(&db->puts);
	pthread_mutex_unlock(&db->wmutex);
	return rc;
}

int cellar_delete(cellar_db *db, const void *key, size_t key_len)
{
	int rc;

	cellar__error_clear();
	if ((rc = begin_write(db)) < 0 || (rc = check_key(key, key_len)) < 0)
		return rc;
	writer_lock(db);
	if ((rc = write_refused(db)) == CELLAR_OK &&
	    (rc = db_write(db, RECORD_DELETE, key, key_len, NULL, 0, WRITE_NORMAL,
	                   NULL)) == CELLAR_OK)
		writer_count(&db->deletes);
	pthread_mutex_unlock(&db->wmutex);
	return rc;
}

int cellar_sync(cellar_db *db)
{
	int rc;

	cellar__error_clear();
	if ((rc = begin_write(db)) < 0)
		return rc;
	pthread_mutex_lock(&db->wmutex);
	rc = db_sync_locked(db, 0);
	pthread_mutex_unlock(&db->wmutex);
	return rc;
}

int cellar_warm(cellar_db *db)
{
	int rc;

	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (!db->readonly)
		writer_lock(db); /* the segment list stays as it is */
	rc = segset_warm(&db->segs);
	if (rc == CELLAR_OK && db->ix->map)
		pages_touch(db->ix->map, db->ix->map_len);
	if (!db->readonly)
		pthread_mutex_unlock(&db->wmutex);
	return rc;
}

/* ---- the read path ----------------------------------------------------- */

enum { GET_COPY, GET_ALLOC, GET_HAS };

typedef struct get_ctx {
	cellar_db *db;
	const void *key;
	size_t key_len;
	int mode;
	void *buf;
	size_t cap;
	void **out;
	size_t len;
} get_ctx;

/*
 * Copy a small value inline, sixteen bytes at a time, the last block
 * overlapping the one before: a 100-byte value is seven loads and seven
 * stores, far fewer instructions than a call to memcpy.  Fewer
 * instructions waiting on the record's cache lines let the processor start
 * the caller's next lookup sooner.
 */
static inline void copy_small(uint8_t *d, const uint8_t *s, size_t len)
{
	uint64_t a, b;

	if (len >= 16) {
		size_t i = 0;
		for (; i + 16 < len; i += 16)
			memcpy(d + i, s + i, 16);
		memcpy(d + len - 16, s + len - 16, 16);
	} else if (len >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + len - 8, &b, 8);
	} else {
		for (size_t i = 0; i < len; i++)
			d[i] = s[i];
	}
}

/* Are two keys of len bytes equal?  Inline for keys of up to 16 bytes. */
static inline int key_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint64_t a0, a1, b0, b1;

	if (len < 8 || len > 16)
		return memcmp(a, b, len) == 0;
	memcpy(&a0, a, 8);
	memcpy(&b0, b, 8);
	memcpy(&a1, a + len - 8, 8);
	memcpy(&b1, b + len - 8, 8);
	return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* Hand the value of a matching, verified record to the caller. */
static int deliver(get_ctx *c, const uint8_t *val, size_t len)
{
	c->len = len;
	if (c->mode == GET_COPY) {
		if (len > c->cap)
			return CELLAR_EBUFS;
		if (len <= 256)
			copy_small(c->buf, val, len);
		else
			memcpy(c->buf, val, len);
	} else if (c->mode == GET_ALLOC) {
		if (!(*c->out = malloc(len ? len : 1)))
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		if (len)
			memcpy(*c->out, val, len);
	}
	return CELLAR_OK;
}

/* Any record: the general decoder, and read_at when there is no mapping. */
static int match_get_slow(get_ctx *c, uint16_t seg, uint32_t off, int *hit)
{
	rec_view v;
	int rc = segset_record(&c->db->segs, seg, off, &v);

	if (rc < 0)
		return rc;
	if (v.h.key_len != c->key_len ||
	    memcmp(rec_key(&v), c->key, c->key_len) != 0) {
		rec_release(&v);
		return CELLAR_OK;
	}
	*hit = 1;
	if ((rc = rec_verify(&v, c->db->segs.by_id[seg]->seq, off)) ==
	    CELLAR_OK) {
		rc = v.h.kind == RECORD_PUT
		         ? deliver(c, rec_val(&v), v.h.val_len)
		         : cellar__error(CELLAR_ECORRUPT, "index points at a tombstone");
	}
	rec_release(&v);
	return rc;
}

/*
 * The common case inline: a put with one-byte lengths, in memory (mapped
 * or in the append buffer).  Anything else goes the general way.
 */
static inline int match_get(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	get_ctx *c = ctx;
	const segset *s = &c->db->segs;
	const segment *g = s->by_id[seg];
	const uint8_t *p;
	uint64_t avail;

	if (__builtin_expect(!g || off < SEG_HEADER_SIZE || off >= g->size, 0))
		return match_get_slow(c, seg, off, hit);
	if (off < g->flushed) {
		if (__builtin_expect(!g->map, 0))
			return match_get_slow(c, seg, off, hit);
		p = g->map + off;
		avail = g->flushed - off;
	} else {
		p = s->buf + (off - g->flushed);
		avail = g->size - off;
	}
	/*
	 * A small record spans two or three cache lines: ask for all of them
	 * at once, so that the checksum and the copy do not wait for each
	 * line in turn.
	 */
	if (avail > 64)
		__builtin_prefetch(p + 64);
	if (avail > 128)
		__builtin_prefetch(p + 128);
	if (__builtin_expect(avail < 7 || p[4] != RECORD_PUT || (p[5] | p[6]) & 0x80, 0))
		return match_get_slow(c, seg, off, hit);
	size_t klen = p[5], vlen = p[6];
	uint64_t total = 7 + (uint64_t)klen + vlen;
	if (klen != c->key_len)
		return CELLAR_OK;
	if (__builtin_expect(total > avail, 0))
		return match_get_slow(c, seg, off, hit);
	if (!key_equal(p + 7, c->key, klen))
		return CELLAR_OK;
	*hit = 1;
	if ((uint32_t)hash_checksum(p + 4, (size_t)total - 4) != le32_load(p))
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx.seg: bad checksum at offset %u",
		                     (unsigned long long)g->seq, (unsigned)off);
	return deliver(c, p + 7 + klen, vlen);
}

/* Bump a per-thread counter: plain loads and stores, no locked RMW. */
static inline void bump(atomic_uint_fast64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
	                      memory_order_relaxed);
}

static int lookup(cellar_db *db, get_ctx *c)
{
	uint64_t h = db_hash(db, c->key, c->key_len);
	unsigned slot = db_read_lock(db), probes;
	int rc = index_lookup_inline(db->ix, h, match_get, c, &probes);
	read_counters *rc_ = &db->reads[slot];

	db_read_unlock(db, slot);
	bump(&rc_->gets, 1);
	bump(&rc_->probes, probes);
	if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
		bump(&rc_->hits, 1);
	return rc;
}

int cellar_get(cellar_db *db, const void *key, size_t key_len, void *buf,
               size_t cap, size_t *val_len)
{
	get_ctx c = { db, key, key_len, GET_COPY, buf, cap, NULL, 0 };
	int rc;

	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if ((rc = check_key(key, key_len)) < 0)
		return rc;
	if (!buf && cap)
		return cellar__error(CELLAR_EINVAL, "buffer is NULL");
	rc = lookup(db, &c);
	if (val_len && (rc == CELLAR_OK || rc == CELLAR_EBUFS))
		*val_len = c.len;
	return rc;
}

int cellar_get_alloc(cellar_db *db, const void *key, size_t key_len,
                     void **out, size_t *val_len)
{
	get_ctx c = { db, key, key_len, GET_ALLOC, NULL, 0, out, 0 };
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if ((rc = check_key(key, key_len)) < 0)
		return rc;
	rc = lookup(db, &c);
	if (rc < 0) {
		free(*out);
		*out = NULL;
	} else if (val_len) {
		*val_len = c.len;
	}
	return rc;
}

void cellar_free(void *p)
{
	free(p);
}

int cellar_has(cellar_db *db, const void *key, size_t key_len)
{
	get_ctx c = { db, key, key_len, GET_HAS, NULL, 0, NULL, 0 };
	int rc;

	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if ((rc = check_key(key, key_len)) < 0)
		return rc;
	return lookup(db, &c);
}

int cellar_count(cellar_db *db, uint64_t *out)
{
	cellar__error_clear();
	if (!db || !out)
		return cellar__error(CELLAR_EINVAL, "db or out is NULL");
	unsigned slot = db_read_lock(db);
	*out = db->ix->count;
	db_read_unlock(db, slot);
	return CELLAR_OK;
}

/* ---- events and the background thread ------------------------------- */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void db_event(cellar_db *db, const cellar_event *ev)
{
	if (db->opts.on_event)
		db->opts.on_event(ev, db->opts.event_ctx);
}

static void event_error(cellar_db *db, int rc)
{
	cellar_event ev = { CELLAR_EVENT_ERROR, rc, cellar_errmsg(), 0, NULL };

	db_event(db, &ev);
}

/* Dead share of all segment bytes, in percent. */
static unsigned dead_pct(cellar_db *db)
{
	uint64_t live = 0, dead = 0;

	pthread_mutex_lock(&db->wmutex);
	for (size_t i = 0; i < db->segs.n; i++) {
		live += db->segs.list[i]->live;
		dead += db->segs.list[i]->dead;
	}
	pthread_mutex_unlock(&db->wmutex);
	return live + dead ? (unsigned)(dead * 100 / (live + dead)) : 0;
}

static void bg_sync(cellar_db *db)
{
	double t0 = now_seconds();
	int rc;

	pthread_mutex_lock(&db->wmutex);
	rc = db->failed ? CELLAR_EFAILED : db_sync_locked(db, 0);
	pthread_mutex_unlock(&db->wmutex);
	if (rc < 0) {
		event_error(db, rc); /* writes now fail with CELLAR_EFAILED */
	} else {
		cellar_event ev = { CELLAR_EVENT_SYNC, 0, "", now_seconds() - t0, NULL };
		db_event(db, &ev);
	}
}

static void bg_compact(cellar_db *db)
{
	cellar_compact_result res;
	int rc = compact_run(db, &res, &db->bg_stop);

	if (rc == CELLAR_EBUSY)
		return; /* an iterator is open: try again next time */
	if (rc < 0) {
		pthread_mutex_lock(&db->wmutex);
		db->bg_error = rc; /* later writes return it until compacted */
		pthread_mutex_unlock(&db->wmutex);
		event_error(db, rc);
	}
}

static void *bg_main(void *arg)
{
	cellar_db *db = arg;

	pthread_mutex_lock(&db->bg_mutex);
	while (!atomic_load(&db->bg_stop)) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		uint64_t ns = (uint64_t)until.tv_nsec +
		              (uint64_t)db->opts.sync_interval_ms * 1000000ull;
		until.tv_sec += (time_t)(ns / 1000000000ull);
		until.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&db->bg_cond, &db->bg_mutex, &until);
		if (atomic_load(&db->bg_stop))
			break;
		pthread_mutex_unlock(&db->bg_mutex);
		if (db->opts.sync_mode == CELLAR_SYNC_PERIODIC)
			bg_sync(db);
		if (db->opts.auto_compact_pct && !atomic_load(&db->bg_stop) &&
		    dead_pct(db) >= db->opts.auto_compact_pct)
			bg_compact(db);
		pthread_mutex_lock(&db->bg_mutex);
	}
	pthread_mutex_unlock(&db->bg_mutex);
	return NULL;
}

static void bg_stop(cellar_db *db)
{
	if (!db->bg_running)
		return;
	pthread_mutex_lock(&db->bg_mutex);
	atomic_store(&db->bg_stop, 1);
	pthread_cond_signal(&db->bg_cond);
	pthread_mutex_unlock(&db->bg_mutex);
	pthread_join(db->bg, NULL);
	db->bg_running = 0;
}

/* ---- compaction and statistics ---------------------------------------- */

int cellar_compact(cellar_db *db, cellar_compact_result *result)
{
	cellar_compact_result res;
	int rc;

	cellar__error_clear();
	if ((rc = begin_write(db)) < 0)
		return rc;
	rc = compact_run(db, &res, NULL);
	if (rc == CELLAR_OK) {
		pthread_mutex_lock(&db->wmutex);
		db->bg_error = 0; /* the pass that failed in the background is done */
		pthread_mutex_unlock(&db->wmutex);
	}
	if (result)
		*result = res;
	return rc;
}

int cellar_stats(cellar_db *db, cellar_db_stats *out)
{
	cellar__error_clear();
	if (!db || !out)
		return cellar__error(CELLAR_EINVAL, "db or out is NULL");
	memset(out, 0, sizeof *out);
	unsigned slot = db_read_lock(db);
	cellar_index *ix = db->ix;
	out->keys = ix->count;
	for (size_t i = 0; i < db->segs.n; i++) {
		const segment *g = db->segs.list[i];
		out->live_bytes += g->live;
		out->dead_bytes += g->dead;
		out->segment_bytes += g->size;
	}
	out->segments = db->segs.n;
	out->index_bytes = index_file_size(ix, db->segs.n);
	out->buckets = ix->prim.n;
	out->overflow_buckets = ix->ovf_used;
	out->load_factor = (double)ix->count / ((double)ix->prim.n * BUCKET_SLOTS);
	db_read_unlock(db, slot);
	out->bytes_on_disk = out->segment_bytes + out->index_bytes + META_SIZE;
	uint64_t probes = 0;
	for (int i = 0; i < LATCH_SLOTS; i++) {
		out->gets += atomic_load_explicit(&db->reads[i].gets,
		                                  memory_order_relaxed);
		out->hits += atomic_load_explicit(&db->reads[i].hits,
		                                  memory_order_relaxed);
		probes += atomic_load_explicit(&db->reads[i].probes,
		                               memory_order_relaxed);
	}
	out->misses = out->gets - out->hits;
	out->avg_probe = out->gets ? (double)probes / (double)out->gets : 0;
	out->puts = atomic_load_explicit(&db->puts, memory_order_relaxed);
	out->deletes = atomic_load_explicit(&db->deletes, memory_order_relaxed);
	out->syncs = atomic_load_explicit(&db->syncs, memory_order_relaxed);
	out->compactions = atomic_load_explicit(&db->compactions,
	                                        memory_order_relaxed);
	out->recovered_records = db->recovery.replayed;
	out->rebuilt_index = db->recovery.rebuilt;
	return CELLAR_OK;
}

int cellar_segments(cellar_db *db, cellar_segment_info *out, size_t cap,
                    size_t *count)
{
	cellar__error_clear();
	if (!db || !count || (!out && cap))
		return cellar__error(CELLAR_EINVAL, "db, count or out is NULL");
	unsigned slot = db_read_lock(db);
	*count = db->segs.n;
	for (size_t i = 0; i < db->segs.n && i < cap; i++) {
		const segment *g = db->segs.list[i];
		out[i].seq = g->seq;
		out[i].bytes = g->size;
		out[i].live_bytes = g->live;
		out[i].dead_bytes = g->dead;
	}
	db_read_unlock(db, slot);
	return CELLAR_OK;
}

/* ---- open and close ---------------------------------------------------- */

static int check_options(const cellar_options *o)
{
	if (o->version == 0 || o->version > CELLAR_OPTIONS_VERSION)
		return cellar__error(CELLAR_EINVAL, "options version %u unknown",
		                     o->version);
	if (o->flags & ~(unsigned)(CELLAR_CREATE | CELLAR_READONLY))
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
	return CELLAR_OK;
}

/* Create the store's directory and meta file (LOCK already held). */
static int create_store(cellar_db *db, meta *m)
{
	m->version = FORMAT_VERSION;
	m->seed = db->opts.hash_seed ? db->opts.hash_seed : random_seed(db);
	m->created = (uint64_t)time(NULL);
	return meta_write(db->fs, db->dir, m);
}

static void db_free(cellar_db *db)
{
	bg_stop(db);
	index_free(db->ix);
	if (db->segs.by_id)
		segset_close(&db->segs);
	if (db->lock)
		db->fs->unlock(db->fs, db->lock);
	if (db->own_fs)
		cellar_fs_free(db->fs);
	pthread_mutex_destroy(&db->wmutex);
	pthread_mutex_destroy(&db->bg_mutex);
	pthread_cond_destroy(&db->bg_cond);
	pthread_mutex_destroy(&db->iter_mutex);
	pthread_cond_destroy(&db->iter_cond);
	free(db->dir);
	free(db);
}

int cellar_open(cellar_db **out, const char *dir, const cellar_options *opts)
{
	cellar_options defaults = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	char path[FILE_PATH_MAX];
	meta m;
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
	if (!(db = aligned_alloc(64, (sizeof *db + 63) & ~(size_t)63)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	memset(db, 0, sizeof *db);
	latch_init(&db->latch);
	pthread_mutex_init(&db->wmutex, NULL);
	pthread_mutex_init(&db->bg_mutex, NULL);
	pthread_cond_init(&db->bg_cond, NULL);
	pthread_mutex_init(&db->iter_mutex, NULL);
	pthread_cond_init(&db->iter_cond, NULL);
	/* Version 1 callers' options end before expected_keys. */
	memcpy(&db->opts, opts, opts->version >= 2
	                            ? sizeof *opts
	                            : offsetof(cellar_options, expected_keys));
	if (!db->opts.max_segment_size)
		db->opts.max_segment_size = DEFAULT_SEGMENT_SIZE;
	if (!db->opts.sync_interval_ms)
		db->opts.sync_interval_ms = DEFAULT_SYNC_MS;
	if (!db->opts.compact_dead_pct)
		db->opts.compact_dead_pct = DEFAULT_COMPACT_PCT;
	db->readonly = !!(opts->flags & CELLAR_READONLY);
	db->hash_fn = test_hash;
	if (!(db->dir = strdup(dir))) {
		rc = cellar__error(CELLAR_ENOMEM, "out of memory");
		goto fail;
	}
	if (opts->fs) {
		db->fs = opts->fs;
	} else {
		if ((rc = cellar_fs_mmap_new(&db->fs)) < 0)
			goto fail;
		db->own_fs = 1;
	}
	if (db->fs->version != CELLAR_FS_VERSION) {
		rc = cellar__error(CELLAR_EINVAL, "file system version %u unknown",
		                   db->fs->version);
		goto fail;
	}

	rc = meta_read(db->fs, db->dir, &m);
	if (rc == CELLAR_ENOENT && (opts->flags & CELLAR_CREATE) && !db->readonly) {
		rc = db->fs->mkdir(db->fs, db->dir);
		if (rc < 0 && rc != CELLAR_EEXIST)
			goto fail;
		rc = CELLAR_OK;
	} else if (rc == CELLAR_ENOENT) {
		rc = cellar__error(CELLAR_ENOENT, "no cellar store in %s", dir);
		goto fail;
	} else if (rc < 0) {
		goto fail;
	}
	if (!db->readonly) {
		if ((rc = files_path(path, sizeof path, db->dir, FILE_LOCK)) < 0)
			goto fail;
		if ((rc = db->fs->lock(db->fs, path, &db->lock)) < 0) {
			if (rc == CELLAR_ELOCKED)
				cellar__error(rc, "%s is open for writing elsewhere", dir);
			goto fail;
		}
		/* Someone may have created it while we waited for the lock. */
		rc = meta_read(db->fs, db->dir, &m);
		if (rc == CELLAR_ENOENT)
			rc = create_store(db, &m);
		if (rc < 0)
			goto fail;
	}
	db->seed = m.seed;
	if ((rc = segset_open(&db->segs, db->fs, db->dir,
	                      db->opts.max_segment_size, db->readonly,
	                      &db->latch)) < 0)
		goto fail;
	if ((rc = recovery_run(&db->ix, &db->segs, db->fs, db->dir, db->seed,
	                       db->hash_fn ? db->hash_fn : hash_key, db->readonly,
	                       &db->recovery)) < 0)
		goto fail;
	db->ix->max_buckets = test_max_buckets;
	if (!db->readonly && db->opts.expected_keys &&
	    (rc = index_presize(db->ix, db->opts.expected_keys)) < 0)
		goto fail;
	if (!db->readonly) {
		/* What the last handle wrote after its checkpoint may never have
		 * been fsynced (it may have died first): the next sync must. */
		for (size_t i = 0; i < db->segs.n; i++)
			if (db->recovery.rebuilt ||
			    db->segs.list[i]->seq >= db->recovery.ckpt_seq)
				db->segs.list[i]->synced = 0;
		db->segs.dir_dirty = 1;
	}
	db->have_ckpt = !db->recovery.rebuilt;
	db->log_since_ckpt = db->recovery.replayed_bytes;
	if (!db->readonly && (db->recovery.rebuilt ||
	                      db->log_since_ckpt >= ckpt_due(db))) {
		/* Save the rebuilt index so the next open is quick; a short
		 * replay is cheaper than rewriting the whole index. */
		if ((rc = db_sync_locked(db, 1)) < 0)
			goto fail;
	}
	if (!db->readonly && (db->opts.sync_mode == CELLAR_SYNC_PERIODIC ||
	                      db->opts.auto_compact_pct)) {
		if (pthread_create(&db->bg, NULL, bg_main, db) != 0) {
			rc = cellar__error(CELLAR_ENOMEM, "cannot start the sync thread");
			goto fail;
		}
		db->bg_running = 1;
	}
	cellar__error_clear(); /* ignored errors (a stale index.tmp) are no news */
	*out = db;
	return CELLAR_OK;
fail:
	db_free(db);
	return rc;
}

int cellar_close(cellar_db *db)
{
	int rc = CELLAR_OK;

	cellar__error_clear();
	if (!db)
		return CELLAR_OK;
	bg_stop(db); /* stops a background compaction between two batches */
	if (!db->readonly && !db->failed) {
		pthread_mutex_lock(&db->wmutex);
		rc = db_sync_locked(db, 1);
		pthread_mutex_unlock(&db->wmutex);
	} else if (db->failed) {
		rc = cellar__error(CELLAR_EFAILED, "an earlier write failed (%s)",
		                   cellar_strerror(db->failed));
	}
	db_free(db);
	return rc;
}

const char *cellar_version(void)
{
	return "0.1.0";
}

/* ---- probes for the tests ---------------------------------------------- */

int cellar__debug(cellar_db *db, cellar__debug_info *out)
{
	index_shape sh;
	int rc;

	memset(out, 0, sizeof *out);
	unsigned slot = db_read_lock(db);
	rc = index_shape_of(db->ix, &sh);
	out->keys = db->ix->count;
	out->segments = db->segs.n;
	db_read_unlock(db, slot);
	out->buckets = sh.buckets;
	out->overflow_buckets = sh.overflow_buckets;
	out->longest_chain = sh.longest_chain;
	out->ckpt_seq = db->recovery.ckpt_seq;
	out->ckpt_off = db->recovery.ckpt_off;
	out->replayed_records = db->recovery.replayed;
	out->rebuilt = db->recovery.rebuilt;
	return rc;
}

/*
 * db.c - the public front: every cellar_* call on a handle checks its
 * arguments here, once, through enter(), and hands the work to the module
 * that owns it (read.c, writer.c, compact.c through bg.c, iter.c).
 *
 * Owns argument checking, the mapping of public calls onto the engine, and
 * statistics.  Must not: implement a read, a write, a sync or a pass
 * itself.  Opening and closing are in open.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bg.h"
#include "bucket.h"
#include "error.h"
#include "handle.h"
#include "index_file.h"
#include "meta.h"
#include "read.h"
#include "snapshot.h"
#include "watch.h"
#include "sigbus.h"

/* What a call needs of its arguments (enter). */
enum {
	NEED_WRITABLE = 1, /* a read-write handle */
	NEED_KEY = 2       /* a valid key */
};

/*
 * The entry of every public call on a handle: forget this thread's last
 * message, then check the handle and, as need says, that it is writable
 * and that the key is valid.
 */
static int enter(cellar_db *db, unsigned need, const void *key, size_t key_len)
{
	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if ((need & NEED_WRITABLE) && db->readonly)
		return cellar__error(CELLAR_EREADONLY, "store is open read-only");
	return need & NEED_KEY ? db_check_key(key, key_len) : CELLAR_OK;
}

/* ---- writes ------------------------------------------------------------ */

int cellar_put(cellar_db *db, const void *key, size_t key_len,
               const void *val, size_t val_len)
{
	int rc;

	if ((rc = enter(db, NEED_WRITABLE | NEED_KEY, key, key_len)) < 0 ||
	    (rc = db_check_value(val, val_len)) < 0)
		return rc;
	writer_lock(&db->w);
	if ((rc = writer_refused(&db->w)) == CELLAR_OK &&
	    (rc = writer_put(&db->w, key, key_len, val ? val : "", val_len)) ==
	        CELLAR_OK && db->watch) {
		writer_op op = { RECORD_PUT, key, val, key_len, val_len, 0 };
		watch_note(db, &op, NULL, 1);
	}
	writer_unlock(&db->w);
	return rc;
}

/* cellar_put_ex's work, the writer mutex held. */
static int put_ex_locked(cellar_db *db, const void *key, size_t key_len,
                         const void *val, size_t val_len,
                         const cellar_put_options *po)
{
	writer_op op = { RECORD_PUT, key, val, key_len, val_len, 0 };
	int rc;

	if ((rc = writer_refused(&db->w)) < 0)
		return rc;
	if ((po->ttl_ms || po->expire_at) &&
	    (rc = db_expiry(po->ttl_ms, po->expire_at, db_now(db),
	                    &op.expire)) < 0)
		return rc;
	if (po->flags & CELLAR_PUT_NOOVERWRITE) {
		read_req r = { key, key_len, READ_HAS, NULL, 0, NULL, 0, NULL, NULL };
		if ((rc = read_lookup(db, &r)) == CELLAR_OK)
			return cellar__error(CELLAR_EEXIST, "the key is present");
		if (rc != CELLAR_ENOTFOUND)
			return rc;
		cellar__error_clear();
	}
	if ((rc = writer_put_exp(&db->w, key, key_len, val, val_len,
	                         op.expire)) == CELLAR_OK)
		watch_note(db, &op, NULL, 1);
	return rc;
}

int cellar_put_ex(cellar_db *db, const void *key, size_t key_len,
                  const void *val, size_t val_len,
                  const cellar_put_options *opts)
{
	int rc;

	if (!opts)
		return cellar_put(db, key, key_len, val, val_len);
	if ((rc = enter(db, NEED_WRITABLE | NEED_KEY, key, key_len)) < 0 ||
	    (rc = db_check_value(val, val_len)) < 0 ||
	    (rc = db_check_put_options(opts, CELLAR_PUT_NOOVERWRITE)) < 0)
		return rc;
	writer_lock(&db->w);
	rc = put_ex_locked(db, key, key_len, val ? val : "", val_len, opts);
	writer_unlock(&db->w);
	return rc;
}

int cellar_delete(cellar_db *db, const void *key, size_t key_len)
{
	int rc;

	if ((rc = enter(db, NEED_WRITABLE | NEED_KEY, key, key_len)) < 0)
		return rc;
	writer_lock(&db->w);
	if ((rc = writer_refused(&db->w)) == CELLAR_OK &&
	    (rc = writer_delete(&db->w, key, key_len)) == CELLAR_OK && db->watch) {
		writer_op op = { RECORD_DELETE, key, NULL, key_len, 0, 0 };
		watch_note(db, &op, NULL, 1);
	}
	writer_unlock(&db->w);
	return rc;
}

int cellar_sync(cellar_db *db)
{
	int rc;

	if ((rc = enter(db, NEED_WRITABLE, NULL, 0)) < 0)
		return rc;
	/* A due checkpoint is written here, with writers going on. */
	return writer_sync_offpath(&db->w, 0, NULL, NULL, NULL);
}

int cellar_compact(cellar_db *db, cellar_compact_result *result)
{
	cellar_compact_result res;
	int rc;

	if ((rc = enter(db, NEED_WRITABLE, NULL, 0)) < 0)
		return rc;
	rc = bg_compact_pass(db, &res, NULL);
	if (rc == CELLAR_OK)
		writer_clear_bg_error(&db->w); /* the failed background pass is done */
	if (result)
		*result = res;
	return rc;
}

/* A read-write handle warms a version of the store (writer.h): its
 * segments are pinned and flushed, so the reading needs no writer lock. */
static int warm_version(cellar_db *db)
{
	writer_version *v;
	uint64_t *lens;
	int rc;

	if ((rc = writer_version_take(&db->w, 1, &v)) < 0)
		return rc;
	if (!(lens = malloc((v->nsegs + 1) * sizeof *lens))) {
		writer_version_release(&db->w, v);
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < v->nsegs; i++)
		lens[i] = v->ck.segs[i].size;
	rc = segset_warm_list(&db->segs, v->segs, lens, v->nsegs);
	free(lens);
	writer_version_release(&db->w, v);
	return rc;
}

int cellar_warm(cellar_db *db)
{
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!db->readonly) {
		if ((rc = warm_version(db)) == CELLAR_OK)
			rc = index_warm(db->ix); /* lives as long as the table */
		return rc;
	}
	/* A refresh waits for both parts. */
	db_hold_segments(db);
	rc = segset_warm(&db->segs);
	if (rc == CELLAR_OK)
		rc = index_warm(db->ix);
	db_release_segments(db);
	return rc;
}

int cellar_residency(cellar_db *db, cellar_residency_info *out)
{
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	db_hold_segments(db); /* the segment list stays as it is */
	rc = pagecache_residency(&db->pc, db->fs, db->ix, &db->segs, out);
	db_release_segments(db);
	return rc;
}

/* ---- reads ------------------------------------------------------------- */

int cellar_get(cellar_db *db, const void *key, size_t key_len, void *buf,
               size_t cap, size_t *val_len)
{
	read_req r = { key, key_len, READ_COPY, buf, cap, NULL, 0, NULL, NULL };
	int rc;

	if ((rc = enter(db, NEED_KEY, key, key_len)) < 0)
		return rc;
	if (!buf && cap)
		return cellar__error(CELLAR_EINVAL, "buffer is NULL");
	rc = read_lookup(db, &r);
	if (val_len && (rc == CELLAR_OK || rc == CELLAR_EBUFS))
		*val_len = r.len;
	return rc;
}

int cellar_get_alloc(cellar_db *db, const void *key, size_t key_len,
                     void **out, size_t *val_len)
{
	read_req r = { key, key_len, READ_ALLOC, NULL, 0, out, 0, NULL, NULL };
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if ((rc = enter(db, NEED_KEY, key, key_len)) < 0)
		return rc;
	rc = read_lookup(db, &r);
	if (rc < 0) {
		free(*out);
		*out = NULL;
	} else if (val_len) {
		*val_len = r.len;
	}
	return rc;
}

void cellar_free(void *p)
{
	free(p);
}

int cellar_get_pinned(cellar_db *db, const void *key, size_t key_len,
                      const void **val, size_t *val_len, cellar_pin *pin)
{
	read_req r = { key, key_len, READ_PIN, NULL, 0, NULL, 0, NULL, NULL };
	unsigned slot;
	int rc;

	cellar__error_clear();
	if (!val || !pin)
		return cellar__error(CELLAR_EINVAL, "val or pin is NULL");
	*val = NULL;
	pin->held_ = 0;
	if ((rc = enter(db, NEED_KEY, key, key_len)) < 0 ||
	    (rc = read_pinned(db, &r, &slot)) < 0)
		return rc;
	*pin = (cellar_pin){ db, r.owned, slot, 1 };
	*val = r.view;
	if (val_len)
		*val_len = r.len;
	return CELLAR_OK;
}

int cellar_pin_release(cellar_pin *pin)
{
	cellar__error_clear();
	if (!pin || pin->held_ != 1)
		return cellar__error(CELLAR_EINVAL, "pin is NULL or not held");
	pin->held_ = 0;
	read_unpin(pin->db_, pin->slot_, pin->owned_);
	pin->owned_ = NULL;
	return CELLAR_OK;
}

int cellar_get_many(cellar_db *db, cellar_get_item *items, size_t n)
{
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!items && n)
		return cellar__error(CELLAR_EINVAL, "items is NULL");
	/* Each item's arguments as cellar_get checks them; the read path
	 * looks up only the items still at CELLAR_OK. */
	for (size_t i = 0; i < n; i++) {
		cellar_get_item *it = &items[i];
		it->val_len = 0;
		it->status = db_check_key(it->key, it->key_len);
		if (it->status == CELLAR_OK && !it->buf && it->cap)
			it->status = cellar__error(CELLAR_EINVAL, "buffer is NULL");
	}
	read_many(db, items, n);
	return CELLAR_OK;
}

int cellar_has(cellar_db *db, const void *key, size_t key_len)
{
	read_req r = { key, key_len, READ_HAS, NULL, 0, NULL, 0, NULL, NULL };
	int rc;

	if ((rc = enter(db, NEED_KEY, key, key_len)) < 0)
		return rc;
	return read_lookup(db, &r);
}

/*
 * The key count of the table reads are answered from; the caller holds the
 * shared latch.  A read-only handle checks its table's structure first, and
 * one at odds with itself is answered from the shadow (shadow.h).
 */
static int keys_held(cellar_db *db, uint64_t *out)
{
	int rc;

	if (!db->readonly) {
		*out = index_count(db->ix);
		return CELLAR_OK;
	}
	if ((rc = shadow_check(&db->shadow, db->ix)) < 0)
		return rc;
	return shadow_count(&db->shadow, db->ix, &db->segs, &db->kh, out);
}

int cellar_count(cellar_db *db, uint64_t *out)
{
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	unsigned slot = db_read_lock(db);
	rc = keys_held(db, out);
	db_read_unlock(db, slot);
	return rc;
}

/* ---- statistics -------------------------------------------------------- */

/* What the table and the segments hold (shared latch). */
static int stats_of_store(cellar_db *db, cellar_db_stats *out)
{
	unsigned slot = db_read_lock(db);
	cellar_index *ix = db->ix;
	int rc = keys_held(db, &out->keys);

	for (size_t i = 0; i < db->segs.n; i++) {
		const segment *g = db->segs.list[i];
		out->live_bytes += g->live;
		out->dead_bytes += g->dead;
		out->segment_bytes += g->size;
		out->faulted_mappings += g->map && fs_sigbus_faulted(g->map);
	}
	out->faulted_mappings += (uint64_t)index_map_faulted(ix);
	out->segments = db->segs.n;
	out->index_bytes = index_file_size(ix, db->segs.n);
	index_sizes(ix, &out->buckets, &out->overflow_buckets);
	out->load_factor =
		(double)out->keys / ((double)out->buckets * BUCKET_SLOTS);
	db_read_unlock(db, slot);
	out->bytes_on_disk = out->segment_bytes + out->index_bytes + META_SIZE;
	return rc;
}

static uint64_t load_relaxed(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* What happened since open: the per-thread read counters and the writer's. */
static void stats_of_calls(cellar_db *db, cellar_db_stats *out)
{
	uint64_t probes = 0;

	for (int i = 0; i < LATCH_SLOTS; i++) {
		out->gets += load_relaxed(&db->reads[i].gets);
		out->hits += load_relaxed(&db->reads[i].hits);
		probes += load_relaxed(&db->reads[i].probes);
	}
	out->misses = out->gets - out->hits;
	out->avg_probe = out->gets ? (double)probes / (double)out->gets : 0;
	out->puts = load_relaxed(&db->w.puts);
	out->expired_dropped = load_relaxed(&db->w.expired);
	out->deletes = load_relaxed(&db->w.deletes);
	out->syncs = load_relaxed(&db->w.syncs);
	out->compactions = load_relaxed(&db->compactions);
	out->recovered_records = db->recovery.replayed;
	out->rebuilt_index = db->recovery.rebuilt;
	out->torn_bytes = db->recovery.cut_bytes;
	out->damaged_bytes = db->recovery.damaged_bytes;
	out->refreshes = load_relaxed(&db->refreshes);
	out->refresh_reloads = load_relaxed(&db->reloads);
	out->refreshed_records = load_relaxed(&db->refreshed_records);
	out->lost_bytes = db->recovery.lost_bytes;
}

static void stats_of_checkpoints(cellar_db *db, cellar_db_stats *out)
{
	if (db->readonly)
		return; /* no writer */
	out->checkpoints = load_relaxed(&db->w.ckpts);
	out->checkpoint_failures = load_relaxed(&db->w.ckpt_failures);
	out->ckpt_chunks_copied = load_relaxed(&db->w.ckpt_copied);
	out->ckpt_copy_bytes = out->ckpt_chunks_copied * INDEX_CHUNK_BYTES;
	out->ckpt_copy_bytes_max =
	    load_relaxed(&db->w.ckpt_copied_max) * INDEX_CHUNK_BYTES;
	out->ckpt_longest_hold_ms =
	    (double)load_relaxed(&db->w.ckpt_pause_max_ns) / 1e6;
}

int cellar_stats_sized(cellar_db *db, cellar_db_stats *out, size_t size)
{
	cellar_db_stats st;
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	if (size < CELLAR_DB_STATS_V1_SIZE)
		return cellar__error(CELLAR_EINVAL, "size %zu is too small", size);
	memset(&st, 0, sizeof st);
	if ((rc = stats_of_store(db, &st)) < 0)
		return rc;
	stats_of_calls(db, &st);
	stats_of_checkpoints(db, &st);
	if (size > offsetof(cellar_db_stats, snapshots)) /* takes the mutex */
		snapshot_stats(db, &st.snapshots, &st.snapshot_index_bytes,
		               &st.snapshot_segment_bytes);
	if (size > sizeof st) {
		memset((char *)out + sizeof st, 0, size - sizeof st);
		size = sizeof st;
	}
	memcpy(out, &st, size);
	return CELLAR_OK;
}

int cellar_stats(cellar_db *db, cellar_db_stats *out)
{
	/* A caller built against the older, shorter struct stays safe. */
	return cellar_stats_sized(db, out, CELLAR_DB_STATS_V1_SIZE);
}

int cellar_segments(cellar_db *db, cellar_segment_info *out, size_t cap,
                    size_t *count)
{
	int rc;

	if ((rc = enter(db, 0, NULL, 0)) < 0)
		return rc;
	if (!count || (!out && cap))
		return cellar__error(CELLAR_EINVAL, "count or out is NULL");
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

const char *cellar_version(void)
{
	return CELLAR_VERSION_STRING;
}

/* ---- probes for the tests ---------------------------------------------- */

#ifdef CELLAR_TEST_HOOKS
int cellar__debug(cellar_db *db, cellar__debug_info *out)
{
	index_shape sh;
	int rc;

	memset(out, 0, sizeof *out);
	unsigned slot = db_read_lock(db);
	rc = index_shape_of(db->ix, &sh);
	out->keys = index_count(db->ix);
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
#endif

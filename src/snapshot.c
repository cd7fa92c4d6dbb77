/*
 * snapshot.c - snapshots: consistent reads of the store as it was at one
 * moment, while writers and compaction go on (the cellar_snapshot_* calls).
 *
 * A snapshot is a writer version (writer.h): a frozen copy of the index's
 * chunk descriptors, whose private chunks the writer copies before it
 * changes them, and the segments the index then pointed into, pinned so
 * that a compaction that drops one leaves it readable until the snapshot
 * is released.  Reads walk the frozen index and resolve segment ids
 * through the snapshot's own table (ids are reused once a dropped
 * segment's file is gone).  Iteration walks the frozen buckets, so each key
 * comes out exactly once whatever writers and compaction do.
 *
 * Owns: the snapshot handle, its id table, its iterator's position.
 * Must not: change the store, take the writer mutex except to take or
 * release its version (writer.c does both), or read the live index.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "handle.h"
#include "item.h"
#include "snapshot.h"

struct cellar_snapshot {
	cellar_db *db;
	writer_version *v;
	segment **by_id; /* v->segs sorted by id, for lookups */
	size_t n;
	uint64_t now;    /* the clock when it was taken: expiry is judged by it */
};

struct cellar_snapshot_iter {
	cellar_snapshot *snap;
	uint64_t bucket;   /* next primary bucket to read */
	uint64_t chain;    /* buckets of its chain already read (0: none) */
	int slot;          /* next slot of the bucket being read */
	item_buf item;     /* the current key and value */
};

static int cmp_id(const void *a, const void *b)
{
	const segment *x = *(segment *const *)a, *y = *(segment *const *)b;

	return (x->id > y->id) - (x->id < y->id);
}

/* The snapshot's segment of id, or NULL. */
static const segment *seg_of(const cellar_snapshot *s, uint16_t id)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->by_id[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->by_id[lo]->id == id ? s->by_id[lo] : NULL;
}

int cellar_snapshot_new(cellar_db *db, cellar_snapshot **out)
{
	cellar_snapshot *s;
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (db->readonly)
		return cellar__error(CELLAR_EREADONLY, "store is open read-only: "
		                     "nothing changes it, read it directly");
	if (!(s = calloc(1, sizeof *s)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	s->db = db;
	if ((rc = writer_version_take(&db->w, 0, &s->v)) < 0)
		goto fail;
	s->now = db_now(db);
	s->n = s->v->nsegs;
	if (s->n && !(s->by_id = malloc(s->n * sizeof *s->by_id))) {
		rc = cellar__error(CELLAR_ENOMEM, "out of memory");
		goto fail;
	}
	if (s->n)
		memcpy(s->by_id, s->v->segs, s->n * sizeof *s->by_id);
	if (s->n)
		qsort(s->by_id, s->n, sizeof *s->by_id, cmp_id);
	*out = s;
	return CELLAR_OK;
fail:
	cellar_snapshot_release(s);
	return rc;
}

void cellar_snapshot_release(cellar_snapshot *s)
{
	if (!s)
		return;
	writer_version_release(&s->db->w, s->v);
	free(s->by_id);
	free(s);
}

/* ---- reading one record ------------------------------------------------- */

/* Decode and check the record at (id, off) of the snapshot; shared latch. */
static int snap_record(const cellar_snapshot *s, uint16_t id, uint32_t off,
                       record_view *v)
{
	const segment *g = seg_of(s, id);

	v->owned = NULL;
	if (!g)
		return cellar__error(CELLAR_ECORRUPT,
		                     "index names segment id %u, which does not exist",
		                     (unsigned)id);
	if (off < SEG_HEADER_SIZE || off >= g->size)
		return cellar__error(CELLAR_ECORRUPT,
		                     "index points past the end of segment %016llx",
		                     (unsigned long long)g->seq);
	return segment_record(&s->db->segs, g, off, g->size, v);
}

/* What a lookup in the frozen index looks for, and the record it found. */
typedef struct snap_key {
	const cellar_snapshot *s;
	const void *key;
	size_t key_len;
	record_view v;    /* the matching record, kept (hit) */
	uint16_t seg;
	uint32_t off;
} snap_key;

static int snap_match(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	snap_key *k = ctx;
	int rc = snap_record(k->s, seg, off, &k->v);

	if (rc < 0)
		return rc;
	*hit = k->v.h.key_len == k->key_len &&
	       memcmp(record_key(&k->v), k->key, k->key_len) == 0;
	if (*hit) {
		k->seg = seg;
		k->off = off;
	} else {
		record_release(&k->v);
	}
	return CELLAR_OK;
}

static int check_args(const cellar_snapshot *s, const void *key,
                      size_t key_len)
{
	cellar__error_clear();
	if (!s)
		return cellar__error(CELLAR_EINVAL, "snapshot is NULL");
	return db_check_key(key, key_len);
}

/* How a found value is handed over (snap_read). */
typedef struct snap_out {
	void *buf;        /* copy into buf (cap bytes) */
	size_t cap;
	void **alloc;     /* or into a new buffer */
	size_t *val_len;
	int has;          /* or just say it is there */
} snap_out;

static int deliver(const record_view *v, const snap_out *o)
{
	size_t n = v->h.val_len;

	if (o->val_len)
		*o->val_len = n;
	if (o->has)
		return CELLAR_OK;
	if (o->alloc) {
		if (!(*o->alloc = malloc(n ? n : 1)))
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		memcpy(*o->alloc, record_val(v), n);
		return CELLAR_OK;
	}
	if (n > o->cap)
		return cellar__error(CELLAR_EBUFS, "value is %zu bytes, buffer %zu",
		                     n, o->cap);
	if (n)
		memcpy(o->buf, record_val(v), n);
	return CELLAR_OK;
}

/* Look key up in the snapshot and hand its value over as o says. */
static int snap_read(cellar_snapshot *s, const void *key, size_t key_len,
                     const snap_out *o)
{
	cellar_db *db = s->db;
	snap_key k = { s, key, key_len, { 0 }, 0, 0 };
	unsigned slot;
	int rc;

	slot = db_read_lock(db); /* the newest segment's buffer and mapping */
	rc = index_lookup(s->v->ix, db_hash(db, key, key_len), snap_match, &k,
	                  NULL);
	if (rc == CELLAR_OK) {
		rc = record_verify(&k.v, seg_of(s, k.seg)->seq, k.off);
		if (rc == CELLAR_OK && record_expired(k.v.h.expire, s->now))
			rc = CELLAR_ENOTFOUND; /* expired when the snapshot was taken */
		if (rc == CELLAR_OK)
			rc = deliver(&k.v, o);
		record_release(&k.v);
	}
	db_read_unlock(db, slot);
	if (rc == CELLAR_ENOTFOUND)
		return cellar__error(rc, "no such key in the snapshot");
	return rc;
}

int cellar_snapshot_get(cellar_snapshot *s, const void *key, size_t key_len,
                        void *buf, size_t cap, size_t *val_len)
{
	snap_out o = { buf, cap, NULL, val_len, 0 };
	int rc;

	if ((rc = check_args(s, key, key_len)) < 0)
		return rc;
	if (!buf && cap)
		return cellar__error(CELLAR_EINVAL, "buffer is NULL");
	return snap_read(s, key, key_len, &o);
}

int cellar_snapshot_get_alloc(cellar_snapshot *s, const void *key,
                              size_t key_len, void **out, size_t *val_len)
{
	snap_out o = { NULL, 0, out, val_len, 0 };
	int rc;

	if (out)
		*out = NULL;
	if ((rc = check_args(s, key, key_len)) < 0)
		return rc;
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	return snap_read(s, key, key_len, &o);
}

int cellar_snapshot_has(cellar_snapshot *s, const void *key, size_t key_len)
{
	snap_out o = { NULL, 0, NULL, NULL, 1 };
	int rc;

	if ((rc = check_args(s, key, key_len)) < 0)
		return rc;
	return snap_read(s, key, key_len, &o);
}

int cellar_snapshot_count(cellar_snapshot *s, uint64_t *out)
{
	cellar__error_clear();
	if (!s || !out)
		return cellar__error(CELLAR_EINVAL, "snapshot or out is NULL");
	*out = index_count(s->v->ix);
	return CELLAR_OK;
}

/* ---- iteration ---------------------------------------------------------- */

int cellar_snapshot_iter_new(cellar_snapshot *s, cellar_snapshot_iter **out)
{
	cellar_snapshot_iter *it;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!s)
		return cellar__error(CELLAR_EINVAL, "snapshot is NULL");
	if (!(it = calloc(1, sizeof *it)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	it->snap = s;
	*out = it;
	return CELLAR_OK;
}

void cellar_snapshot_iter_free(cellar_snapshot_iter *it)
{
	if (!it)
		return;
	free(it->item.buf);
	free(it);
}

/*
 * The bucket the iterator is in: chain step it->chain of primary bucket
 * it->bucket, reached again from the primary bucket (chains are short, and
 * the position then survives nothing but plain numbers).  *b is NULL past
 * the chain's end.
 */
static int iter_bucket(cellar_snapshot_iter *it, uint8_t **b)
{
	cellar_index *ix = it->snap->v->ix;
	index_chain c;
	int rc = index_chain_first(&c, ix, it->bucket, INDEX_CHAIN_CHECKED);

	while (rc == CELLAR_OK && c.b && c.steps < it->chain)
		rc = index_chain_next(&c);
	*b = rc == CELLAR_OK ? c.b : NULL;
	return rc;
}

/* Move past the current bucket. */
static void iter_next_bucket(cellar_snapshot_iter *it, int end_of_chain)
{
	it->slot = 0;
	if (end_of_chain) {
		it->bucket++;
		it->chain = 0;
	} else {
		it->chain++;
	}
}

/* The next used slot from the position on: *seg, *off, or *done. */
static int iter_slot(cellar_snapshot_iter *it, uint16_t *seg, uint32_t *off,
                     int *done)
{
	cellar_index *ix = it->snap->v->ix;
	uint8_t *b;
	int rc;

	*done = 0;
	for (;;) {
		if (it->bucket >= ix->prim.n) {
			*done = 1;
			return CELLAR_OK;
		}
		if ((rc = iter_bucket(it, &b)) < 0) {
			iter_next_bucket(it, 1); /* skip the damaged chain */
			return rc;
		}
		if (!b) {
			iter_next_bucket(it, 1);
			continue;
		}
		while (it->slot < BUCKET_SLOTS) {
			int i = it->slot++;
			if (bucket_slot_used(b, i)) {
				*seg = bucket_seg(b, i);
				*off = bucket_off(b, i);
				return CELLAR_OK;
			}
		}
		iter_next_bucket(it, bucket_next(b) == 0);
	}
}

int cellar_snapshot_iter_next(cellar_snapshot_iter *it, const void **key,
                              size_t *key_len, const void **val,
                              size_t *val_len)
{
	uint16_t seg;
	uint32_t off;
	int done, rc, expired;

	cellar__error_clear();
	if (!it)
		return cellar__error(CELLAR_EINVAL, "iterator is NULL");
	do {
		if ((rc = iter_slot(it, &seg, &off, &done)) < 0)
			return rc;
		if (done)
			return CELLAR_EDONE;
		cellar_snapshot *s = it->snap;
		record_view v;
		unsigned slot = db_read_lock(s->db);
		expired = 0;
		if ((rc = snap_record(s, seg, off, &v)) == CELLAR_OK &&
		    (rc = record_verify(&v, seg_of(s, seg)->seq, off)) == CELLAR_OK) {
			/* Expired when the snapshot was taken: skipped. */
			expired = record_expired(v.h.expire, s->now);
			if (!expired)
				rc = item_keep(&it->item, &v);
		}
		record_release(&v);
		db_read_unlock(s->db, slot);
		if (rc < 0)
			return rc;
	} while (expired);
	item_give(&it->item, key, key_len, val, val_len);
	return CELLAR_OK;
}

void snapshot_stats(cellar_db *db, uint64_t *count, uint64_t *index_bytes,
                    uint64_t *segment_bytes)
{
	*count = *index_bytes = *segment_bytes = 0;
	if (!db->readonly)
		writer_version_stats(&db->w, count, index_bytes, segment_bytes);
}

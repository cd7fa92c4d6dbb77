/*
 * iter.c - iteration over every live item.
 *
 * Owns the iterator's position and its copy of the current item.  Must
 * not: change the store, or run while a compaction batch runs (gate.h).
 *
 * The iterator walks the log in write order and returns a record only if the
 * index still points at it and it has not expired by the clock's time when
 * the iterator was made, so every live key comes out exactly once and
 * dead records cost a scan but no copy.  It holds the shared latch only
 * while it looks at one record, so writers are never held up for long.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "handle.h"
#include "item.h"
#include "index_file.h"
#include "sigbus.h"

struct cellar_iter {
	cellar_db *db;
	uint64_t seq;  /* segment being read */
	uint64_t off;  /* next record in it */
	item_buf item; /* the current key and value */
	int told;      /* the end's report of a faulted index mapping is made */
	uint64_t now;  /* the clock at cellar_iter_new: expired keys are skipped */
};

int cellar_iter_new(cellar_db *db, cellar_iter **out)
{
	cellar_iter *it;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (db->readonly) { /* a table at odds with itself: use the shadow */
		unsigned slot = db_read_lock(db);
		int rc = shadow_check(&db->shadow, db->ix);
		db_read_unlock(db, slot);
		if (rc < 0)
			return rc;
	}
	if (!(it = calloc(1, sizeof *it)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	gate_iter_enter(&db->gate);
	it->db = db;
	it->off = SEG_HEADER_SIZE;
	it->now = db_now(db);
	*out = it;
	return CELLAR_OK;
}

void cellar_iter_free(cellar_iter *it)
{
	if (!it)
		return;
	gate_iter_leave(&it->db->gate);
	free(it->item.buf);
	free(it);
}

/* The end of a segment that was cut short: its lost records were live. */
static int cut_short(const segment *g)
{
	return cellar__error(CELLAR_ECORRUPT,
	                     "segment %016llx.seg was cut short: %llu bytes the "
	                     "checkpoint covered, from offset %llu, are gone",
	                     (unsigned long long)g->seq,
	                     (unsigned long long)(g->covered - g->size),
	                     (unsigned long long)g->size);
}

/*
 * Is (id, off) the key's live record?  A read-only handle whose index has
 * a damaged chunk asks the table rebuilt in memory (shadow.h).
 */
static int has_loc(cellar_db *db, uint64_t h, uint16_t id, uint32_t off,
                   int *live)
{
	cellar_index *sx;
	int lossy, rc = index_has_loc(db->ix, h, id, off, live);

	if (rc != CELLAR_ECORRUPT || !db->readonly ||
	    !index_has_bad_chunk(db->ix))
		return rc;
	if ((rc = shadow_get(&db->shadow, &db->segs, &db->kh, &sx, &lossy)) < 0)
		return rc;
	return index_has_loc(sx, h, id, off, live);
}

/*
 * The end.  If the index file lost pages under its mapping (the SIGBUS
 * guard put zeros there), live records may have been taken for dead:
 * say so once, then end.
 */
static int at_end(cellar_iter *it)
{
	if (it->told || !index_map_cut(it->db->ix))
		return CELLAR_EDONE;
	it->told = 1;
	return cellar__error(CELLAR_ECORRUPT,
	                     "the index file was cut short under its mapping: "
	                     "the iteration may have missed live keys");
}

/*
 * Look at the record at the iterator's position and step past it.  *live
 * is 1 if it is live (and copied), 0 if not; the return is CELLAR_OK,
 * CELLAR_EDONE at the end, or an error.
 */
static int step(cellar_iter *it, int *live)
{
	cellar_db *db = it->db;
	segset *s = &db->segs;
	segment *g = segset_from(s, it->seq);
	record_view v;
	int rc;

	*live = 0;
	if (!g)
		return at_end(it);
	if (g->seq != it->seq) {
		it->seq = g->seq;
		it->off = SEG_HEADER_SIZE;
	}
	if (it->off >= g->size) {
		int cut = it->off < g->covered;
		it->seq++;
		it->off = SEG_HEADER_SIZE;
		return cut ? cut_short(g) : CELLAR_OK;
	}
	/* A file cut between the check and the copy (the SIGBUS guard puts
	 * zeros there) must not hand out the copy: see below. */
	uint64_t rescues = fs_sigbus_rescues();
	rc = segment_record(s, g, it->off, g->size, &v);
	if (rc == CELLAR_OK)
		rc = record_verify(&v, g->seq, it->off);
	if (rc < 0) {
		uint64_t next;
		record_release(&v);
		/* Damage: go on at the next valid record (its length may lie). */
		if ((rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION) &&
		    segment_resync(s, g, it->off, g->size, &next) == CELLAR_OK)
			it->off = next;
		return rc;
	}
	if (v.h.kind == RECORD_PUT &&
	    (rc = has_loc(db, db_hash(db, record_key(&v), v.h.key_len), g->id,
	                  (uint32_t)it->off, live)) < 0) {
		/* A damaged index: never guess, and go on after it. */
		it->off += v.h.total;
		record_release(&v);
		return rc;
	}
	it->off += v.h.total;
	if (*live && record_expired(v.h.expire, it->now))
		*live = 0; /* expired by the iteration's time: absent */
	rc = *live ? item_keep(&it->item, &v) : CELLAR_OK;
	record_release(&v);
	if (rc == CELLAR_OK && *live && fs_sigbus_rescues() != rescues) {
		*live = 0;
		return cellar__error(CELLAR_ECORRUPT, "segment %016llx.seg was cut "
		                     "while the record was read",
		                     (unsigned long long)g->seq);
	}
	return rc;
}

int cellar_iter_next(cellar_iter *it, const void **key, size_t *key_len,
                     const void **val, size_t *val_len)
{
	int rc;

	cellar__error_clear();
	if (!it)
		return cellar__error(CELLAR_EINVAL, "iterator is NULL");
	int live = 0;
	do {
		unsigned slot = db_read_lock(it->db);
		/* Skip runs of dead records under one latch hold. */
		for (int n = 0; n < 64; n++)
			if ((rc = step(it, &live)) < 0 || live)
				break;
		db_read_unlock(it->db, slot);
	} while (rc == CELLAR_OK && !live);
	if (rc < 0)
		return rc;
	item_give(&it->item, key, key_len, val, val_len);
	return CELLAR_OK;
}

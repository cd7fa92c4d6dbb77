/*
 * writer.c - the write engine (see writer.h).
 *
 * A write goes through four named steps, each small: locate (encode the
 * record while the key's index bucket loads, then find the key's current
 * entry), reserve (make the index buckets it changes private, outside the
 * latch when nothing needs it), append (the record into the log), and
 * publish (under the exclusive latch: the record becomes visible, the index
 * points at it, the old record's bytes become dead).  A failure before
 * publish undoes the reservation; nothing is visible.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "writer.h"

/* Write a checkpoint at sync once this much log is past the last one... */
#define CKPT_MIN_LOG (8ull << 20)

void writer_init(writer *w, const writer_config *cfg, uint64_t log_since_ckpt,
                 int have_ckpt)
{
	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->mutex, NULL);
	w->c = *cfg;
	w->log_since_ckpt = log_since_ckpt;
	w->have_ckpt = have_ckpt;
}

void writer_destroy(writer *w)
{
	pthread_mutex_destroy(&w->mutex);
}

void writer_lock(writer *w)
{
	if (pthread_mutex_trylock(&w->mutex) == 0)
		return; /* uncontended: the usual case, one locked instruction */
	atomic_fetch_add(&w->waiting, 1);
	pthread_mutex_lock(&w->mutex);
	atomic_fetch_sub(&w->waiting, 1);
}

void writer_unlock(writer *w)
{
	pthread_mutex_unlock(&w->mutex);
}

/* Bump a counter only the writer (holding the mutex) changes: no locked RMW. */
static inline void count_one(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

int writer_failed(const writer *w)
{
	if (!w->failed)
		return CELLAR_OK;
	return cellar__error(CELLAR_EFAILED, "an earlier write failed (%s)",
	                     cellar_strerror(w->failed));
}

int writer_refused(const writer *w)
{
	if (w->failed)
		return writer_failed(w);
	if (w->bg_error)
		return cellar__error(w->bg_error, "background compaction failed "
		                     "(%s); cellar_compact() retries it",
		                     cellar_strerror(w->bg_error));
	return CELLAR_OK;
}

/* ---- checkpoints and sync ---------------------------------------------- */

static int checkpoint(writer *w)
{
	segset *s = w->c.segs;
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
	rc = index_write(w->c.ix, w->c.fs, w->c.dir, &ck);
	free(ck.segs);
	if (rc == CELLAR_OK) {
		w->log_since_ckpt = 0;
		w->have_ckpt = 1;
	}
	return rc;
}

/*
 * Log bytes past the last checkpoint at which sync writes a new one: half
 * the index's size, so checkpoints cost O(1) per byte logged and recovery
 * replays at most that much.
 */
static uint64_t ckpt_due(const writer *w)
{
	uint64_t due = index_file_size(w->c.ix, w->c.segs->n) / 2;

	return due < CKPT_MIN_LOG ? CKPT_MIN_LOG : due;
}

int writer_ckpt_due(const writer *w)
{
	return w->log_since_ckpt >= ckpt_due(w);
}

int writer_sync_data(writer *w)
{
	int rc = segset_sync(w->c.segs);

	/* After a failed fsync the kernel may have dropped the data: refuse
	 * further writes rather than pretend. */
	if (rc < 0)
		w->failed = rc;
	return rc;
}

int writer_sync(writer *w, int force_ckpt)
{
	int rc;

	atomic_fetch_add_explicit(&w->syncs, 1, memory_order_relaxed);
	if ((rc = writer_failed(w)) < 0 || (rc = writer_sync_data(w)) < 0)
		return rc;
	if (force_ckpt ? (w->log_since_ckpt > 0 || !w->have_ckpt)
	               : writer_ckpt_due(w))
		rc = checkpoint(w);
	return rc;
}

/* ---- the write path ---------------------------------------------------- */

/* One record on its way in. */
typedef struct pending {
	unsigned kind;
	const void *key, *val;
	size_t key_len, val_len;
	uint64_t hash;
	seg_key match;    /* the key's current record, once located */
	index_ref ref;    /* its index entry, or where the key would go */
	int touch_index;  /* 0: a carried tombstone, the index stays as it is */
	segment *g;       /* where the record went */
	uint64_t off, total;
} pending;

static void pending_init(writer *w, pending *p, unsigned kind, const void *key,
                         size_t key_len, const void *val, size_t val_len)
{
	p->kind = kind;
	p->key = key;
	p->key_len = key_len;
	p->val = val;
	p->val_len = val_len;
	p->hash = keyhash_of(w->c.kh, key, key_len);
	p->match = (seg_key){ w->c.segs, key, key_len, 0 };
	p->touch_index = 1;
}

/*
 * Find the key's current entry.  The index bucket is the one cache miss of
 * a put: ask for it, and encode the record while it comes (segs->staged
 * says if it could be).
 */
static int locate(writer *w, pending *p)
{
	index_prefetch(w->c.ix, p->hash);
	segset_stage(w->c.segs, p->kind, p->key, p->key_len, p->val, p->val_len);
	return index_find(w->c.ix, p->hash, segset_match_key, &p->match, &p->ref);
}

/* Make what publish changes in the index writable (and allocated). */
static int reserve(writer *w, pending *p)
{
	int rc;

	if (!p->touch_index || index_reserve_is_noop(w->c.ix, &p->ref))
		return CELLAR_OK;
	latch_write_lock(w->c.latch);
	rc = index_reserve(w->c.ix, &p->ref);
	latch_write_unlock(w->c.latch);
	return rc;
}

/* index_reserve may have taken an overflow bucket: give it back. */
static void unreserve(writer *w, pending *p)
{
	if (p->touch_index && !p->ref.found && p->ref.slot < 0) {
		latch_write_lock(w->c.latch);
		index_unreserve(w->c.ix, &p->ref);
		latch_write_unlock(w->c.latch);
	}
}

/* Put the record into the log, not yet visible. */
static int append(writer *w, pending *p)
{
	segset *s = w->c.segs;
	int rc;

	if (s->staged) {
		segset_commit_staged(s, &p->g, &p->off, &p->total);
	} else if ((rc = segset_append(s, p->kind, p->key, p->key_len, p->val,
	                               p->val_len, &p->g, &p->off,
	                               &p->total)) < 0) {
		if (s->sync_failed)
			w->failed = s->sync_failed; /* fsync in a roll-over */
		return rc;
	}
	if (w->c.sync_always && (rc = segset_sync(s)) < 0) {
		w->failed = rc;
		return rc;
	}
	return CELLAR_OK;
}

/* Exclusive latch: the record becomes visible and the index follows. */
static void publish(writer *w, pending *p)
{
	segment *g = p->g;

	latch_write_lock(w->c.latch);
	segset_publish(w->c.segs, g, p->off + p->total);
	if (!p->touch_index) {
		/* A carried tombstone is dead weight that must stay for now:
		 * counted dead, but not as a reason to compact again. */
		g->dead += p->total;
		g->kept += p->total;
	} else if (p->kind == RECORD_PUT) {
		index_set(w->c.ix, &p->ref, p->hash, g->id, (uint32_t)p->off);
		index_grow(w->c.ix);
		g->live += p->total;
	} else {
		index_remove(w->c.ix, &p->ref);
		g->dead += p->total;
	}
	if (p->touch_index && p->ref.found)
		segset_mark_dead(w->c.segs, p->ref.old_seg, p->match.found_total);
	latch_write_unlock(w->c.latch);
	w->log_since_ckpt += p->total;
}

/* Reserve, append and publish a located record. */
static int commit(writer *w, pending *p)
{
	int rc;

	if ((rc = reserve(w, p)) < 0)
		return rc;
	if ((rc = append(w, p)) < 0) {
		unreserve(w, p);
		return rc;
	}
	publish(w, p);
	return CELLAR_OK;
}

int writer_put(writer *w, const void *key, size_t key_len, const void *val,
               size_t val_len)
{
	pending p;
	int rc;

	pending_init(w, &p, RECORD_PUT, key, key_len, val, val_len);
	if ((rc = locate(w, &p)) < 0 || (rc = commit(w, &p)) < 0)
		return rc;
	count_one(&w->puts);
	return CELLAR_OK;
}

int writer_delete(writer *w, const void *key, size_t key_len)
{
	pending p;
	int rc;

	pending_init(w, &p, RECORD_DELETE, key, key_len, NULL, 0);
	if ((rc = locate(w, &p)) < 0)
		return rc;
	if (!p.ref.found)
		return CELLAR_ENOTFOUND;
	if ((rc = commit(w, &p)) < 0)
		return rc;
	count_one(&w->deletes);
	return CELLAR_OK;
}

/* ---- for compaction ---------------------------------------------------- */

void writer_batch_begin(writer *w)
{
	unsigned spins = 0;

	/* Writers waiting for the mutex go first. */
	while (atomic_load(&w->waiting) > 0)
		latch_relax(&spins);
	pthread_mutex_lock(&w->mutex);
}

void writer_batch_end(writer *w)
{
	pthread_mutex_unlock(&w->mutex);
}

int writer_copy_if_at(writer *w, const void *key, size_t key_len,
                      const void *val, size_t val_len, uint16_t seg,
                      uint32_t off, int *copied)
{
	pending p;
	int rc;

	*copied = 0;
	pending_init(w, &p, RECORD_PUT, key, key_len, val, val_len);
	if ((rc = locate(w, &p)) < 0)
		return rc;
	if (!p.ref.found || p.ref.old_seg != seg || p.ref.old_off != off)
		return CELLAR_OK;
	if ((rc = commit(w, &p)) < 0)
		return rc;
	*copied = 1;
	return CELLAR_OK;
}

int writer_carry_tombstone(writer *w, const void *key, size_t key_len,
                           int *carried)
{
	pending p;
	int rc;

	*carried = 0;
	pending_init(w, &p, RECORD_DELETE, key, key_len, NULL, 0);
	if ((rc = locate(w, &p)) < 0)
		return rc;
	if (p.ref.found)
		return CELLAR_OK;
	p.touch_index = 0;
	if ((rc = commit(w, &p)) < 0)
		return rc;
	*carried = 1;
	return CELLAR_OK;
}

int writer_roll(writer *w)
{
	return segset_roll(w->c.segs);
}

void writer_drop_segment(writer *w, segment *g)
{
	latch_write_lock(w->c.latch);
	segset_forget(w->c.segs, g);
	latch_write_unlock(w->c.latch);
}

int writer_remove_dropped(writer *w, const uint64_t *seqs, size_t n)
{
	int rc = files_remove_segments(w->c.fs, w->c.dir, seqs, n);

	if (rc == CELLAR_OK)
		segset_release_ids(w->c.segs);
	return rc;
}

void writer_set_bg_error(writer *w, int rc)
{
	pthread_mutex_lock(&w->mutex);
	w->bg_error = rc; /* later writes return it until compacted */
	pthread_mutex_unlock(&w->mutex);
}

void writer_clear_bg_error(writer *w)
{
	pthread_mutex_lock(&w->mutex);
	w->bg_error = 0;
	pthread_mutex_unlock(&w->mutex);
}

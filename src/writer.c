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

#include "clock.h"
#include "error.h"
#include "files.h"
#include "testhook.h"
#include "writer.h"

#ifdef CELLAR_TEST_HOOKS
static void (*test_ckpt_hook)(void *ctx);
static void *test_ckpt_ctx;

void cellar__test_set_ckpt_hook(void (*fn)(void *ctx), void *ctx)
{
	test_ckpt_hook = fn;
	test_ckpt_ctx = ctx;
}
#endif

/* Write a checkpoint at sync once this much log is past the last one... */
#define CKPT_MIN_LOG (8ull << 20)

void writer_init(writer *w, const writer_config *cfg, uint64_t log_since_ckpt,
                 int have_ckpt)
{
	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->mutex, NULL);
	pthread_mutex_init(&w->ckpt_mutex, NULL);
	w->c = *cfg;
	w->log_since_ckpt = log_since_ckpt;
	w->have_ckpt = have_ckpt;
}

void writer_destroy(writer *w)
{
	pthread_mutex_destroy(&w->mutex);
	pthread_mutex_destroy(&w->ckpt_mutex);
	/* Compaction frees what it drops (writer_free_dropped) before it
	 * returns; the file system may be gone by now. */
	free(w->detached);
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

/* What a checkpoint covers, taken under the mutex. */
typedef struct ckpt_version {
	index_ckpt ck;          /* log position and segment table */
	uint64_t log_covered;   /* log_since_ckpt when it was taken */
	uint64_t drops;         /* segments dropped before it was taken */
} ckpt_version;

/* The segment table and log position now (mutex held). */
static int ckpt_take(writer *w, ckpt_version *v)
{
	segset *s = w->c.segs;
	segment *last = segset_last(s);

	memset(v, 0, sizeof *v);
	if (s->n && !(v->ck.segs = calloc(s->n, sizeof *v->ck.segs)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	v->ck.nsegs = s->n;
	for (size_t i = 0; i < s->n; i++) {
		segment *g = s->list[i];
		v->ck.segs[i].id = g->id;
		v->ck.segs[i].seq = g->seq;
		/* A segment cut short keeps the size the checkpoints gave it:
		 * its lost records stay lost, not absent. */
		v->ck.segs[i].size = g->covered > g->wend ? g->covered : g->wend;
		v->ck.segs[i].live = g->live;
		v->ck.segs[i].dead = g->dead;
		v->ck.segs[i].kept = g->kept > UINT32_MAX ? UINT32_MAX
		                                          : (uint32_t)g->kept;
	}
	v->ck.seq = last ? last->seq : 0;
	v->ck.off = last ? last->wend : 0;
	v->log_covered = w->log_since_ckpt;
	v->drops = w->drops;
	return CELLAR_OK;
}

/* The checkpoint of v is written (rc == CELLAR_OK) or not (mutex held):
 * only the log it covered stops counting; what came meanwhile still does. */
static void ckpt_done(writer *w, ckpt_version *v, int rc)
{
	free(v->ck.segs);
	v->ck.segs = NULL;
	if (rc < 0) {
		atomic_fetch_add_explicit(&w->ckpt_failures, 1, memory_order_relaxed);
		return;
	}
	w->log_since_ckpt -= v->log_covered;
	w->drops_ckpt = v->drops;
	w->have_ckpt = 1;
	atomic_fetch_add_explicit(&w->ckpts, 1, memory_order_relaxed);
}

/* A checkpoint of the live table, the mutex held throughout. */
static int checkpoint(writer *w)
{
	ckpt_version v;
	int rc;

	if ((rc = ckpt_take(w, &v)) < 0)
		return rc;
	rc = index_write(w->c.ix, w->c.fs, w->c.dir, &v.ck);
	ckpt_done(w, &v, rc);
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

/* Is a checkpoint wanted now (mutex held)? */
static int ckpt_wanted(const writer *w, int force_ckpt)
{
	/* Dropped segments must leave the checkpoint before their files go. */
	if (w->drops != w->drops_ckpt)
		return 1;
	return force_ckpt ? (w->log_since_ckpt > 0 || !w->have_ckpt)
	                  : writer_ckpt_due(w);
}

int writer_sync(writer *w, int force_ckpt)
{
	int rc;

	atomic_fetch_add_explicit(&w->syncs, 1, memory_order_relaxed);
	if ((rc = writer_failed(w)) < 0 || (rc = writer_sync_data(w)) < 0)
		return rc;
	/* A checkpoint being written off the path owns index.tmp: the next
	 * sync writes this one. */
	if (!w->ckpt_busy && ckpt_wanted(w, force_ckpt))
		rc = checkpoint(w);
	return rc;
}

/* How long the mutex was held since t0, in ms: noted, and returned. */
static double note_pause(writer *w, double t0)
{
	double ms = (clock_seconds() - t0) * 1e3;
	uint64_t ns = (uint64_t)(ms * 1e6);

	if (ns > atomic_load_explicit(&w->ckpt_pause_max_ns, memory_order_relaxed))
		atomic_store_explicit(&w->ckpt_pause_max_ns, ns,
		                      memory_order_relaxed);
	return ms;
}

/*
 * Syncing with the mutex released.  Under the mutex the append buffer is
 * flushed (at most one buffer's worth of writes) and the segments with
 * unsynced bytes are noted with how far they reach; without it they are
 * fsynced; under it again they are marked synced.  A segment is freed only
 * when dropped, and drops run inside writer_sync_offpath's step, under
 * ckpt_mutex, which every caller of these holds.
 */
typedef struct sync_item {
	segment *g;
	uint64_t upto;
} sync_item;

typedef struct sync_plan {
	sync_item *v;
	size_t n;
	int dir; /* the directory needs a sync too (a new segment file) */
} sync_plan;

/* Mutex held: flush and note what to fsync.  Out of memory leaves the
 * segments to the next sync under the mutex (a failed plan syncs none). */
static int sync_plan_make(writer *w, sync_plan *p)
{
	segset *s = w->c.segs;
	int rc;

	memset(p, 0, sizeof *p);
	if ((rc = segset_flush(s)) < 0) {
		w->failed = rc; /* as writer_sync_data: a failed write */
		return rc;
	}
	if (s->n && !(p->v = calloc(s->n, sizeof *p->v)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (size_t i = 0; i < s->n; i++)
		if (s->list[i]->synced < s->list[i]->wend)
			p->v[p->n++] = (sync_item){ s->list[i], s->list[i]->wend };
	p->dir = s->dir_dirty;
	s->dir_dirty = 0;
	return CELLAR_OK;
}

/* No mutex: fsync what the plan lists. */
static int sync_plan_run(writer *w, const sync_plan *p)
{
	segset *s = w->c.segs;
	int rc = CELLAR_OK;

	for (size_t i = 0; i < p->n && rc == CELLAR_OK; i++)
		rc = s->fs->sync(s->fs, p->v[i].g->file);
	if (rc == CELLAR_OK && p->dir)
		rc = s->fs->sync_dir(s->fs, s->dir);
	return rc;
}

/* Mutex held: the plan ran with result rc; free it. */
static void sync_plan_done(writer *w, sync_plan *p, int rc)
{
	segset *s = w->c.segs;

	if (rc < 0) {
		/* After a failed fsync the kernel may have dropped the data. */
		w->failed = rc;
		s->sync_failed = rc;
		s->dir_dirty |= p->dir;
	}
	for (size_t i = 0; i < p->n && rc == CELLAR_OK; i++)
		if (p->v[i].g->synced < p->v[i].upto)
			p->v[i].g->synced = p->v[i].upto;
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Mutex held: forget a plan that will not run (nothing marked synced). */
static void sync_plan_drop(writer *w, sync_plan *p)
{
	w->c.segs->dir_dirty |= p->dir;
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Make everything written so far durable, fsyncing without the mutex. */
static int presync(writer *w, double *held)
{
	sync_plan p;
	double t0;
	int rc;

	writer_lock(w);
	t0 = clock_seconds();
	if ((rc = writer_failed(w)) == CELLAR_OK &&
	    (rc = sync_plan_make(w, &p)) == CELLAR_ENOMEM)
		rc = writer_sync_data(w) < 0 ? w->failed : 1; /* under the mutex */
	*held += note_pause(w, t0);
	writer_unlock(w);
	if (rc != CELLAR_OK)
		return rc < 0 ? rc : CELLAR_OK;
	rc = sync_plan_run(w, &p);
	writer_lock(w);
	t0 = clock_seconds();
	sync_plan_done(w, &p, rc);
	*held += note_pause(w, t0);
	writer_unlock(w);
	return rc;
}

/*
 * Run step and freeze a version to checkpoint if one is wanted (mutex
 * held): *frozen stays NULL when there is nothing to write.  The version's
 * log must be durable before it is published: *p lists what to fsync.
 */
static int freeze_version(writer *w, int force_ckpt, writer_step_fn step,
                          void *ctx, ckpt_version *v, cellar_index **frozen,
                          sync_plan *p)
{
	int rc;

	*frozen = NULL;
	if ((rc = writer_failed(w)) < 0)
		return rc;
	if (step)
		step(w, ctx);
	if (!ckpt_wanted(w, force_ckpt))
		return CELLAR_OK;
	if ((rc = sync_plan_make(w, p)) < 0)
		return rc;
	if ((rc = ckpt_take(w, v)) < 0) {
		sync_plan_drop(w, p);
		return rc;
	}
	if ((rc = index_freeze(w->c.ix, frozen)) < 0) {
		free(v->ck.segs);
		sync_plan_drop(w, p);
		return rc;
	}
	w->ckpt_busy = 1;
	return CELLAR_OK;
}

int writer_sync_data_offpath(writer *w, double *held_ms)
{
	double held = 0;
	int rc;

	pthread_mutex_lock(&w->ckpt_mutex); /* no drop meanwhile */
	rc = presync(w, &held);
	pthread_mutex_unlock(&w->ckpt_mutex);
	if (held_ms)
		*held_ms = held;
	return rc;
}

int writer_sync_offpath(writer *w, int force_ckpt, writer_step_fn step,
                        void *ctx, double *held_ms)
{
	cellar_index *frozen = NULL;
	ckpt_version v;
	sync_plan p;
	uint64_t copied = 0;
	double t0, held = 0;
	int rc, rc_sync;

	atomic_fetch_add_explicit(&w->syncs, 1, memory_order_relaxed);
	pthread_mutex_lock(&w->ckpt_mutex); /* one checkpoint at a time */
	if ((rc = presync(w, &held)) < 0)
		goto out;
	writer_lock(w);
	t0 = clock_seconds();
	rc = freeze_version(w, force_ckpt, step, ctx, &v, &frozen, &p);
	held += note_pause(w, t0);
	writer_unlock(w);
	if (!frozen)
		goto out;
#ifdef CELLAR_TEST_HOOKS
	if (test_ckpt_hook)
		test_ckpt_hook(test_ckpt_ctx); /* writers may run here */
#endif
	/* Writers go on meanwhile, copying the frozen chunks they change. */
	if ((rc = rc_sync = sync_plan_run(w, &p)) == CELLAR_OK)
		rc = index_write(frozen, w->c.fs, w->c.dir, &v.ck);
	writer_lock(w);
	t0 = clock_seconds();
	sync_plan_done(w, &p, rc_sync);
	index_thaw(w->c.ix, frozen, &copied);
	w->ckpt_busy = 0;
	ckpt_done(w, &v, rc);
	held += note_pause(w, t0);
	writer_unlock(w);
	atomic_fetch_add_explicit(&w->ckpt_copied, copied, memory_order_relaxed);
	if (copied > atomic_load_explicit(&w->ckpt_copied_max,
	                                  memory_order_relaxed))
		atomic_store_explicit(&w->ckpt_copied_max, copied,
		                      memory_order_relaxed);
out:
	pthread_mutex_unlock(&w->ckpt_mutex);
	if (held_ms)
		*held_ms = held;
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
	int keep = 1;

	if (w->ndetached == w->detached_cap) {
		size_t cap = w->detached_cap ? 2 * w->detached_cap : 8;
		segment **v = realloc(w->detached, cap * sizeof *v);
		if (v) {
			w->detached = v;
			w->detached_cap = cap;
		} else {
			keep = 0; /* free it here, under the latch */
		}
	}
	latch_write_lock(w->c.latch);
	if (keep)
		segset_detach(w->c.segs, g);
	else
		segset_forget(w->c.segs, g);
	latch_write_unlock(w->c.latch);
	if (keep)
		w->detached[w->ndetached++] = g;
	w->drops++;
}

void writer_free_dropped(writer *w)
{
	segment **v;
	size_t n;

	writer_lock(w);
	v = w->detached;
	n = w->ndetached;
	w->detached = NULL;
	w->ndetached = w->detached_cap = 0;
	writer_unlock(w);
	for (size_t i = 0; i < n; i++)
		segset_free_detached(w->c.segs, v[i]);
	free(v);
}

int writer_remove_dropped(writer *w, const uint64_t *seqs, size_t n)
{
	/* Nothing refers to these files any more: no mutex for the unlinks. */
	int rc;

	writer_free_dropped(w);
	rc = files_remove_segments(w->c.fs, w->c.dir, seqs, n);

	if (rc == CELLAR_OK) {
		writer_lock(w);
		segset_release_ids(w->c.segs);
		writer_unlock(w);
	}
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

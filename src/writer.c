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

static void (*test_flush_hook)(void *ctx);
static void *test_flush_ctx;

void cellar__test_set_flush_hook(void (*fn)(void *ctx), void *ctx)
{
	test_flush_hook = fn;
	test_flush_ctx = ctx;
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
	ballast_init(&w->reserve, cfg->fs, cfg->dir, cfg->reserve_bytes);
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

/*
 * A write of the log failed with rc (mutex held): may the writer go on?
 * A write refused for lack of space changed nothing the writer counts on:
 * its bytes stay in the append buffer and are written again, at the same
 * offsets, by the next flush once there is room (segment.c, "writing").
 * A failed fsync, or any other failed write, leaves what the file holds
 * unknown (after a failed fsync the kernel may have dropped the data):
 * refuse every later write rather than pretend.
 */
static void note_write_failure(writer *w, int rc)
{
	if (w->c.segs->sync_failed)
		w->failed = w->c.segs->sync_failed;
	else if (rc != CELLAR_ENOSPC)
		w->failed = rc;
}

/* ---- the reserve of disk space (writer.h, "a full disk") -------------- */

/* Puts and syncs try to make a given-up reserve again at most this often. */
#define RESERVE_RETRY_SECONDS 1.0

int writer_reserve_open(writer *w)
{
	int rc;

	if (!w->reserve.size)
		return CELLAR_OK;
	w->reserve_tried = clock_seconds();
	rc = ballast_make(&w->reserve);
	return rc == CELLAR_ENOSPC ? CELLAR_OK : rc;
}

int writer_short_of_space(const writer *w)
{
	return w->reserve.size && !w->reserve.held;
}

/*
 * A write failed with rc (mutex held).  If the disk was full and the
 * reserve is held, give the reserve's space back: 1 when the caller may
 * try once more (a delete, a sync, a checkpoint, compaction; a put does
 * not), else 0.
 */
static int spend_reserve(writer *w, int rc)
{
	if (rc != CELLAR_ENOSPC || !w->reserve.held || w->failed)
		return 0;
	w->reserve_tried = clock_seconds();
	return ballast_release(&w->reserve) == CELLAR_OK;
}

/* Make a given-up reserve again (mutex held); unless force, at most once
 * per RESERVE_RETRY_SECONDS (else CELLAR_ENOSPC).  CELLAR_OK once whole. */
static int renew_reserve(writer *w, int force)
{
	double now;

	if (!writer_short_of_space(w))
		return CELLAR_OK;
	now = clock_seconds();
	if (!force && now - w->reserve_tried < RESERVE_RETRY_SECONDS)
		return CELLAR_ENOSPC;
	w->reserve_tried = now;
	return ballast_make(&w->reserve);
}

/* Puts go in only while the reserve is whole (mutex held). */
static int room_for_puts(writer *w)
{
	int rc = renew_reserve(w, 0);

	if (rc == CELLAR_ENOSPC)
		return cellar__error(rc, "the disk is full: puts wait until the "
		                     "store's reserve of %llu bytes can be made "
		                     "again (delete and compact, or free space)",
		                     (unsigned long long)w->reserve.size);
	return rc;
}

void writer_reserve_renew(writer *w)
{
	writer_lock(w);
	(void)renew_reserve(w, 1);
	writer_unlock(w);
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
		v->ck.segs[i].flags = g->exp_min ? INDEX_SEG_EXPIRING : 0;
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
	while ((rc = index_write(w->c.ix, w->c.fs, w->c.dir, &v.ck)) ==
	           CELLAR_ENOSPC && spend_reserve(w, rc))
		; /* once more, in the reserve's space */
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
	int rc;

	while ((rc = segset_sync(w->c.segs)) < 0) {
		note_write_failure(w, rc);
		if (!spend_reserve(w, rc))
			break;
	}
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
	while ((rc = segset_flush(s)) < 0) {
		note_write_failure(w, rc);
		if (!spend_reserve(w, rc))
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

int writer_flush_offpath(writer *w, int all)
{
	segset_flush_job job;
	int claimed = 0, rc = CELLAR_OK;

	/* Twice: the buffer set aside, then (all) the one in use. */
	for (int round = 0; round < 1 + all && rc == CELLAR_OK; round++) {
		writer_lock(w);
		if ((rc = writer_failed(w)) == CELLAR_OK)
			rc = segset_flush_begin(w->c.segs, all, &job, &claimed);
		writer_unlock(w);
		if (rc < 0 || !claimed)
			break;
#ifdef CELLAR_TEST_HOOKS
		if (test_flush_hook)
			test_flush_hook(test_flush_ctx); /* writers may run here */
#endif
		rc = segset_flush_run(w->c.segs, &job); /* writers go on */
		writer_lock(w);
		rc = segset_flush_end(w->c.segs, rc);
		if (w->c.segs->sync_failed || (rc < 0 && all))
			note_write_failure(w, rc); /* as a sync's flush */
		if (spend_reserve(w, rc)) {
			rc = CELLAR_OK;
			round--; /* the same buffer again, in the reserve's space */
		}
		writer_unlock(w);
	}
	return rc;
}

int writer_would_wait(writer *w, uint64_t bytes)
{
	return segset_flush_would_wait(w->c.segs, bytes);
}

void writer_wait_flush(writer *w)
{
	unsigned spins = 0;

	while (segset_flush_busy(w->c.segs))
		latch_relax(&spins);
}

/* Make everything written so far durable, fsyncing without the mutex. */
static int presync(writer *w, double *held)
{
	sync_plan p;
	double t0;
	int rc;

	/* Write the buffers first, so that the plan's flush finds little. */
	if ((rc = writer_flush_offpath(w, 1)) < 0)
		return rc;
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
 * No mutex: fault in the slabs the writer would cut while a version is
 * frozen (index_spare), when one is to be (always, or if a checkpoint is
 * wanted now), holding nothing while they are made: enough to copy every
 * chunk once.  Sizing them by the last checkpoint's copies instead let a
 * compaction's checkpoint (which copies nearly every chunk) stall writers
 * again (10M latency phase: pause 17 ms against 6 ms).
 */
static void spare_prepare(writer *w, int always, int force_ckpt,
                          index_spare *sp)
{
	memset(sp, 0, sizeof *sp);
	writer_lock(w);
	if (always || ckpt_wanted(w, force_ckpt))
		index_spare_plan(w->c.ix, sp, UINT64_MAX);
	writer_unlock(w);
	index_spare_make(sp);
}

/*
 * Run step and freeze a version to checkpoint if one is wanted (mutex
 * held): *frozen stays NULL when there is nothing to write.  The version's
 * log must be durable before it is published: *p lists what to fsync.
 */
static int freeze_version(writer *w, int force_ckpt, writer_step_fn step,
                          void *ctx, ckpt_version *v, cellar_index **frozen,
                          sync_plan *p, index_spare *sp)
{
	int rc;

	*frozen = NULL;
	index_spare_give(w->c.ix, sp);
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

/* No mutex: write the frozen version's checkpoint; a full disk gives up
 * the reserve (under the mutex) for one more try. */
static int write_frozen(writer *w, cellar_index *frozen, const index_ckpt *ck)
{
	int rc = index_write(frozen, w->c.fs, w->c.dir, ck), again;

	if (rc != CELLAR_ENOSPC)
		return rc;
	writer_lock(w);
	again = spend_reserve(w, rc);
	writer_unlock(w);
	return again ? index_write(frozen, w->c.fs, w->c.dir, ck) : rc;
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
	index_spare sp;
	uint64_t copied = 0;
	double t0, held = 0;
	int rc, rc_sync;

	atomic_fetch_add_explicit(&w->syncs, 1, memory_order_relaxed);
	pthread_mutex_lock(&w->ckpt_mutex); /* one checkpoint at a time */
	if ((rc = presync(w, &held)) < 0)
		goto out;
	/* What came during the presync's fsyncs: written before the freeze. */
	if ((rc = writer_flush_offpath(w, 1)) < 0)
		goto out;
	spare_prepare(w, step != NULL, force_ckpt, &sp);
	writer_lock(w);
	t0 = clock_seconds();
	rc = freeze_version(w, force_ckpt, step, ctx, &v, &frozen, &p, &sp);
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
		rc = write_frozen(w, frozen, &v.ck);
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
	if (rc == CELLAR_OK && !step) {
		/* Room again?  (Compaction tries once its files are gone.) */
		writer_lock(w);
		(void)renew_reserve(w, 0);
		writer_unlock(w);
	}
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
	uint64_t expire;  /* a put's expiry (ms since the epoch), 0: never */
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
	p->match = (seg_key){ w->c.segs, key, key_len, 0, 0 };
	p->touch_index = 1;
	p->expire = 0;
}

uint64_t writer_now(const writer *w)
{
	return w->c.clock ? w->c.clock(w->c.clock_ctx) : clock_wall_ms();
}

/* Is the key's located entry a put that has expired by now? */
static int found_expired(const writer *w, const pending *p)
{
	return p->ref.found && p->match.found_expire &&
	       record_expired(p->match.found_expire, writer_now(w));
}

/*
 * Find the key's current entry.  The index bucket is the one cache miss of
 * a put: ask for it, and encode the record while it comes (segs->staged
 * says if it could be).
 */
static int locate(writer *w, pending *p)
{
	index_prefetch(w->c.ix, p->hash);
	segset_stage_exp(w->c.segs, p->kind, p->key, p->key_len, p->val,
	                 p->val_len, p->expire);
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
	} else if ((rc = segset_append_exp(s, p->kind, p->key, p->key_len,
	                                   p->val, p->val_len, p->expire, &p->g,
	                                   &p->off, &p->total)) < 0) {
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

/* Exclusive latch held: the index follows a record now in the log. */
static void apply_pending(writer *w, pending *p)
{
	segment *g = p->g;

	if (!p->touch_index) {
		/* A carried tombstone is dead weight that must stay for now:
		 * counted dead, but not as a reason to compact again. */
		g->dead += p->total;
		g->kept += p->total;
	} else if (p->kind == RECORD_PUT) {
		index_set(w->c.ix, &p->ref, p->hash, g->id, (uint32_t)p->off);
		index_grow(w->c.ix);
		g->live += p->total;
		segment_note_expire(g, p->expire);
	} else {
		index_remove(w->c.ix, &p->ref);
		g->dead += p->total;
	}
	if (p->touch_index && p->ref.found)
		segset_mark_dead(w->c.segs, p->ref.old_seg, p->match.found_total);
}

/* Exclusive latch: the record becomes visible and the index follows. */
static void publish(writer *w, pending *p)
{
	latch_write_lock(w->c.latch);
	segset_publish(w->c.segs, p->g, p->off + p->total);
	apply_pending(w, p);
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
	return writer_put_exp(w, key, key_len, val, val_len, 0);
}

int writer_put_exp(writer *w, const void *key, size_t key_len,
                   const void *val, size_t val_len, uint64_t expire)
{
	pending p;
	int rc;

	if ((rc = room_for_puts(w)) < 0)
		return rc;
	pending_init(w, &p, RECORD_PUT, key, key_len, val, val_len);
	p.expire = expire;
	if ((rc = locate(w, &p)) < 0)
		return rc;
	if ((rc = commit(w, &p)) < 0) {
		(void)spend_reserve(w, rc); /* for the deletes and syncs to come */
		return rc;
	}
	count_one(&w->puts);
	return CELLAR_OK;
}

int writer_delete(writer *w, const void *key, size_t key_len)
{
	pending p;
	int rc;

	do { /* once more in the reserve's space when the disk is full */
		pending_init(w, &p, RECORD_DELETE, key, key_len, NULL, 0);
		if ((rc = locate(w, &p)) < 0)
			return rc;
		if (!p.ref.found || found_expired(w, &p))
			return CELLAR_ENOTFOUND;
	} while ((rc = commit(w, &p)) == CELLAR_ENOSPC && spend_reserve(w, rc));
	if (rc < 0)
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
                      const void *val, size_t val_len, uint64_t expire,
                      uint16_t seg, uint32_t off, int *copied)
{
	pending p;
	int rc;

	*copied = 0;
	do { /* once more in the reserve's space when the disk is full */
		pending_init(w, &p, RECORD_PUT, key, key_len, val, val_len);
		p.expire = expire;
		if ((rc = locate(w, &p)) < 0)
			return rc;
		if (!p.ref.found || p.ref.old_seg != seg || p.ref.old_off != off)
			return CELLAR_OK;
	} while ((rc = commit(w, &p)) == CELLAR_ENOSPC && spend_reserve(w, rc));
	if (rc < 0)
		return rc;
	*copied = 1;
	return CELLAR_OK;
}

/* Exclusive latch taken here: remove a located key, writing nothing. */
static int remove_located(writer *w, pending *p)
{
	int rc = CELLAR_OK;

	latch_write_lock(w->c.latch);
	if (!index_reserve_is_noop(w->c.ix, &p->ref))
		rc = index_reserve(w->c.ix, &p->ref);
	if (rc == CELLAR_OK) {
		index_remove(w->c.ix, &p->ref);
		segset_mark_dead(w->c.segs, p->ref.old_seg, p->match.found_total);
	}
	latch_write_unlock(w->c.latch);
	return rc;
}

int writer_expire_if_at(writer *w, const void *key, size_t key_len,
                        uint16_t seg, uint32_t off, int oldest, int *dropped)
{
	pending p;
	int rc;

	*dropped = 0;
	pending_init(w, &p, RECORD_DELETE, key, key_len, NULL, 0);
	if ((rc = locate(w, &p)) < 0)
		return rc;
	if (!p.ref.found || p.ref.old_seg != seg || p.ref.old_off != off)
		return CELLAR_OK;
	/* Nothing older survives: no tombstone is needed to hide it. */
	if ((rc = oldest ? remove_located(w, &p) : commit(w, &p)) < 0)
		return rc;
	*dropped = 1;
	count_one(&w->expired);
	if (w->c.on_expire)
		w->c.on_expire(key, key_len, w->c.expire_ctx);
	return CELLAR_OK;
}

int writer_carry_tombstone(writer *w, const void *key, size_t key_len,
                           int *carried)
{
	pending p;
	int rc;

	*carried = 0;
	do { /* once more in the reserve's space when the disk is full */
		pending_init(w, &p, RECORD_DELETE, key, key_len, NULL, 0);
		if ((rc = locate(w, &p)) < 0)
			return rc;
		if (p.ref.found)
			return CELLAR_OK;
		p.touch_index = 0;
	} while ((rc = commit(w, &p)) == CELLAR_ENOSPC && spend_reserve(w, rc));
	if (rc < 0)
		return rc;
	*carried = 1;
	return CELLAR_OK;
}

int writer_roll(writer *w)
{
	int rc;

	while ((rc = segset_roll(w->c.segs)) == CELLAR_ENOSPC &&
	       spend_reserve(w, rc))
		; /* once more, in the reserve's space */
	return rc;
}

/* Mutex held: a dropped segment that versions still hold stays open and
 * mapped until the last of them is released (writer_version_release). */
static void orphan(writer *w, segment *g)
{
	g->orphan = 1;
	w->orphans++;
	w->orphan_bytes += g->size;
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
	if (keep || g->pins)
		segset_detach(w->c.segs, g);
	else
		segset_forget(w->c.segs, g);
	latch_write_unlock(w->c.latch);
	if (keep)
		w->detached[w->ndetached++] = g;
	else if (g->pins)
		orphan(w, g); /* the last version holding it frees it */
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
	for (size_t i = 0; i < n; i++)
		if (v[i]->pins) {
			orphan(w, v[i]);
			v[i] = NULL;
		}
	writer_unlock(w);
	for (size_t i = 0; i < n; i++)
		if (v[i])
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

/* ---- versions for snapshots and backups -------------------------------- */

/* Mutex held: fill v with the store as it is now. */
static int version_fill(writer *w, int flush, writer_version *v)
{
	segset *s = w->c.segs;
	ckpt_version cv;
	int rc;

	if (flush && (rc = segset_flush(s)) < 0) {
		note_write_failure(w, rc);
		return rc;
	}
	if (s->n && !(v->segs = malloc(s->n * sizeof *v->segs)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	if ((rc = ckpt_take(w, &cv)) < 0)
		return rc;
	v->ck = cv.ck;
	if ((rc = index_freeze(w->c.ix, &v->ix)) < 0)
		return rc;
	v->nsegs = s->n;
	for (size_t i = 0; i < s->n; i++) {
		v->segs[i] = s->list[i];
		v->segs[i]->pins++;
	}
	v->next = w->versions;
	w->versions = v;
	w->nversions++;
	return CELLAR_OK;
}

int writer_version_take(writer *w, int flush, writer_version **out)
{
	writer_version *v = calloc(1, sizeof *v);
	index_spare sp;
	int rc;

	*out = NULL;
	if (!v)
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	spare_prepare(w, 1, 0, &sp);
	writer_lock(w);
	index_spare_give(w->c.ix, &sp);
	if ((rc = writer_failed(w)) == CELLAR_OK)
		rc = version_fill(w, flush, v);
	writer_unlock(w);
	if (rc < 0) {
		free(v->ck.segs);
		free(v->segs);
		free(v);
		return rc;
	}
	*out = v;
	return CELLAR_OK;
}

/* Mutex held: unlink v, thaw its index, unpin its segments; the orphans
 * nobody holds any more are left in v->segs (the rest are NULLed). */
static void version_drop(writer *w, writer_version *v)
{
	for (writer_version **p = &w->versions; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	w->nversions--;
	index_thaw(w->c.ix, v->ix, NULL);
	v->ix = NULL;
	for (size_t i = 0; i < v->nsegs; i++) {
		segment *g = v->segs[i];
		if (--g->pins > 0 || !g->orphan) {
			v->segs[i] = NULL;
			continue;
		}
		w->orphans--;
		w->orphan_bytes -= g->size;
	}
}

static void version_free(writer *w, writer_version *v)
{
	for (size_t i = 0; i < v->nsegs; i++)
		if (v->segs[i]) /* unmapping a large mapping takes a while */
			segset_free_detached(w->c.segs, v->segs[i]);
	free(v->segs);
	free(v->ck.segs);
	free(v);
}

void writer_version_release(writer *w, writer_version *v)
{
	if (!v)
		return;
	writer_lock(w);
	version_drop(w, v);
	writer_unlock(w);
	version_free(w, v);
}

void writer_version_release_all(writer *w)
{
	while (w->versions)
		writer_version_release(w, w->versions);
}

void writer_version_stats(writer *w, uint64_t *count, uint64_t *index_bytes,
                          uint64_t *segment_bytes)
{
	writer_lock(w);
	*count = w->nversions;
	*index_bytes = index_held_bytes(w->c.ix);
	*segment_bytes = w->orphan_bytes;
	writer_unlock(w);
}

/* ---- write batches ----------------------------------------------------- */

/*
 * A batch is written as one piece: a batch header record (RECORD_BATCH)
 * giving the body's length, record count and checksum, then the body, the
 * put and delete records back to back.  Recovery applies the body only
 * when it is whole and its checksum holds.  The index then changes for
 * every record under one hold of the exclusive latch, so a reader sees
 * all of the batch or none of it.
 */

/* Which ops a batch writes: the last of each key, not a delete of an
 * absent key.  skip[i] marks the others. */
typedef struct batch_plan {
	pending *v;
	unsigned char *skip;
	size_t n, kept;
	uint64_t total;   /* bytes: header and body */
	uint32_t count;   /* records in the body */
	uint64_t nputs, ndeletes;
} batch_plan;

static int same_key(const pending *a, const pending *b)
{
	return a->hash == b->hash && a->key_len == b->key_len &&
	       memcmp(a->key, b->key, a->key_len) == 0;
}

/* Mark every op a later op of the same key supersedes. */
static int drop_superseded(batch_plan *bp)
{
	size_t cap = 16;
	uint32_t *t;

	while (cap < 2 * bp->n)
		cap <<= 1;
	if (!(t = malloc(cap * sizeof *t)))
		return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
	memset(t, 0xff, cap * sizeof *t);
	for (size_t i = bp->n; i-- > 0;) {
		size_t h = (size_t)bp->v[i].hash & (cap - 1);
		while (t[h] != UINT32_MAX && !same_key(&bp->v[t[h]], &bp->v[i]))
			h = (h + 1) & (cap - 1);
		if (t[h] == UINT32_MAX)
			t[h] = (uint32_t)i;
		else
			bp->skip[i] = 1;
	}
	free(t);
	return CELLAR_OK;
}

/* Find each kept key's current entry, a few index buckets ahead. */
#define BATCH_PREFETCH 32

static int locate_all(writer *w, batch_plan *bp)
{
	int rc;
	uint64_t now = 0;

	for (size_t i = 0; i < bp->n && i < BATCH_PREFETCH; i++)
		index_prefetch(w->c.ix, bp->v[i].hash);
	bp->total = RECORD_BATCH_SIZE;
	for (size_t i = 0; i < bp->n; i++) {
		pending *p = &bp->v[i];
		if (i + BATCH_PREFETCH < bp->n)
			index_prefetch(w->c.ix, bp->v[i + BATCH_PREFETCH].hash);
		if (bp->skip[i])
			continue;
		if ((rc = index_find(w->c.ix, p->hash, segset_match_key, &p->match,
		                     &p->ref)) < 0)
			return rc;
		if (p->kind == RECORD_DELETE && p->ref.found &&
		    p->match.found_expire && !now)
			now = writer_now(w); /* once, and only when it matters */
		if (p->kind == RECORD_DELETE &&
		    (!p->ref.found || record_expired(p->match.found_expire, now))) {
			bp->skip[i] = 1;
			continue;
		}
		p->total = record_size_exp(p->key_len, p->val_len, p->expire);
		bp->total += p->total;
		bp->count++;
		*(p->kind == RECORD_PUT ? &bp->nputs : &bp->ndeletes) += 1;
	}
	return CELLAR_OK;
}

/*
 * Grow the table now for every put of the batch being new, before its
 * entries are located: a split while the batch is published moves entries
 * and makes every later one be found again (refind), a second pass over
 * the index that cost a batch more than the puts it saved.  A failed split
 * leaves the table fuller, as index_grow does.
 */
static void grow_ahead(writer *w, const batch_plan *bp)
{
	uint64_t puts = 0;

	for (size_t i = 0; i < bp->n; i++)
		puts += !bp->skip[i] && bp->v[i].kind == RECORD_PUT;
	latch_write_lock(w->c.latch);
	(void)index_presize(w->c.ix, index_count(w->c.ix) + puts);
	latch_write_unlock(w->c.latch);
}

/* segset_fill_fn: the batch's bytes at buf; each kept record's offset in
 * them goes to its off. */
static void encode_batch(uint8_t *buf, void *ctx)
{
	batch_plan *bp = ctx;
	uint64_t off = RECORD_BATCH_SIZE;

	for (size_t i = 0; i < bp->n; i++) {
		pending *p = &bp->v[i];
		if (bp->skip[i])
			continue;
		p->off = off;
		off += record_encode_exp(buf + off, p->kind | RECORD_FLAG_BATCH,
		                         p->key, p->key_len, p->val, p->val_len,
		                         p->expire);
	}
	record_encode_batch(buf, buf + RECORD_BATCH_SIZE, off - RECORD_BATCH_SIZE,
	                    bp->count);
}

/* index_match_fn: the entry at the location the key had when located. */
typedef struct loc_key {
	int found;
	uint16_t seg;
	uint32_t off;
} loc_key;

static int match_loc(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	const loc_key *k = ctx;

	*hit = k->found && k->seg == seg && k->off == off;
	return CELLAR_OK;
}

/*
 * The chains (by primary bucket) an earlier record of the batch changed:
 * a ref locate_all found in one of them, or found before the table split,
 * is found again.  A small open-addressing set, cap a power of 2.
 */
typedef struct chain_set {
	uint64_t *v; /* addr + 1; 0 = empty */
	size_t cap;
} chain_set;

static int chain_seen(chain_set *cs, uint64_t addr, int add)
{
	size_t h = (size_t)(addr * 0x9e3779b97f4a7c15ull >> 20) & (cs->cap - 1);

	for (; cs->v[h]; h = (h + 1) & (cs->cap - 1))
		if (cs->v[h] == addr + 1)
			return 1;
	if (add)
		cs->v[h] = addr + 1;
	return 0;
}

/* p's entry as of now: its located ref, or found again by location (no
 * record is read) when the batch may have moved it. */
static int refind(writer *w, pending *p, chain_set *cs, int reshaped)
{
	loc_key k = { p->ref.found, p->ref.old_seg, p->ref.old_off };

	if (!reshaped && !chain_seen(cs, p->ref.addr, 0))
		return CELLAR_OK;
	return index_find(w->c.ix, p->hash, match_loc, &k, &p->ref);
}

/* Exclusive latch: the batch becomes visible at once. */
static int publish_batch(writer *w, batch_plan *bp, chain_set *cs, segment *g,
                         uint64_t base)
{
	uint64_t nb0, nb;
	int rc = CELLAR_OK;

	latch_write_lock(w->c.latch);
	segset_publish(w->c.segs, g, base + bp->total);
	g->dead += RECORD_BATCH_SIZE;
	index_sizes(w->c.ix, &nb0, NULL);
	for (size_t i = 0; i < bp->n && rc == CELLAR_OK; i++) {
		pending *p = &bp->v[i];
		if (bp->skip[i])
			continue;
		p->g = g;
		p->off += base;
		index_sizes(w->c.ix, &nb, NULL); /* a split moves entries */
		if ((rc = refind(w, p, cs, nb != nb0)) == CELLAR_OK &&
		    !index_reserve_is_noop(w->c.ix, &p->ref))
			rc = index_reserve(w->c.ix, &p->ref);
		if (rc == CELLAR_OK) {
			apply_pending(w, p);
			chain_seen(cs, p->ref.addr, 1);
		}
	}
	latch_write_unlock(w->c.latch);
	w->log_since_ckpt += bp->total;
	if (rc < 0)
		w->failed = rc; /* the log has the whole batch, the index not */
	return rc;
}

/* Append the located batch in one piece and publish it. */
static int write_batch(writer *w, batch_plan *bp)
{
	segset *s = w->c.segs;
	chain_set cs = { NULL, 16 };
	segment *g;
	uint64_t off;
	int rc;

	while (cs.cap < 2 * (size_t)bp->count)
		cs.cap <<= 1;
	if (bp->total > UINT32_MAX - SEG_HEADER_SIZE)
		return cellar__error(CELLAR_ELIMIT, "batch: %llu bytes do not fit "
		                     "in a segment (4 GiB)",
		                     (unsigned long long)bp->total);
	if (!(cs.v = calloc(cs.cap, sizeof *cs.v)))
		return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
	if ((rc = segset_append_fill(s, bp->total, encode_batch, bp, &g,
	                             &off)) < 0) {
		free(cs.v);
		if (s->sync_failed)
			w->failed = s->sync_failed; /* fsync in a roll-over */
		return rc;
	}
	if (w->c.sync_always && (rc = segset_sync(s)) < 0) {
		w->failed = rc;
		free(cs.v);
		return rc;
	}
	rc = publish_batch(w, bp, &cs, g, off);
	free(cs.v);
	return rc;
}

int writer_commit_ops(writer *w, const writer_op *ops, size_t n,
                      unsigned char *skip)
{
	batch_plan bp = { 0 };
	int rc;

	if (n == 0)
		return CELLAR_OK;
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == RECORD_PUT) {
			if ((rc = room_for_puts(w)) < 0)
				return rc;
			break;
		}
	bp.n = n;
	bp.v = malloc(n * sizeof *bp.v);
	bp.skip = skip ? memset(skip, 0, n) : calloc(n, 1);
	if (!bp.v || !bp.skip) {
		rc = cellar__error(CELLAR_ENOMEM, "batch: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		pending_init(w, &bp.v[i], ops[i].kind, ops[i].key, ops[i].key_len,
		             ops[i].val, ops[i].val_len);
		bp.v[i].expire = ops[i].kind == RECORD_PUT ? ops[i].expire : 0;
	}
	if ((rc = drop_superseded(&bp)) < 0)
		goto out;
	grow_ahead(w, &bp);
	if ((rc = locate_all(w, &bp)) < 0)
		goto out;
	if (bp.count && (rc = write_batch(w, &bp)) == CELLAR_OK) {
		atomic_fetch_add_explicit(&w->puts, bp.nputs, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->deletes, bp.ndeletes,
		                          memory_order_relaxed);
		count_one(&w->batches);
	} else {
		(void)spend_reserve(w, rc); /* deletes alone may then try again */
	}
out:
	free(bp.v);
	if (!skip)
		free(bp.skip);
	return rc;
}

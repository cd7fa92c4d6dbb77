/*
 * compact.c - reclaiming the space of dead records.
 *
 * A pass picks the segments whose dead share has reached the threshold and,
 * oldest first, walks each one: a put the index still points at is copied
 * to the end of the log and the index repointed (so the copy is the newest
 * record of its key and replay order stays right); a delete is dropped when
 * its key is present again (a later put superseded it) or when its segment
 * is the oldest (nothing older is left for it to hide), and copied forward
 * otherwise.  Everything else is dead and left behind.
 *
 * Each batch of records runs under the writer mutex, so writers wait at most
 * one batch; readers only meet the latch while one index slot changes.  Once
 * every segment of the pass is walked, the copies are synced, the segments
 * are dropped from the set, a checkpoint that no longer lists them is
 * written, and only then are their files removed.  A crash before the
 * checkpoint leaves the old segments in place (the copies are merely newer
 * records of the same keys); a crash after it leaves files that recovery
 * recognizes as compacted and removes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "error.h"
#include "files.h"

#define BATCH_RECORDS 256
#define BATCH_BYTES (4u << 20)

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Dead enough to rewrite?  Carried tombstones would only be carried again. */
static int worth_compacting(const segment *g, unsigned pct)
{
	uint64_t total = g->live + g->dead;
	uint64_t dead = g->dead > g->kept ? g->dead - g->kept : 0;

	return dead > 0 && dead * 100 >= (uint64_t)pct * total;
}

/*
 * Walk one batch of segment seq from *off (writer mutex held).  oldest: no
 * segment older than it survives this pass, so its tombstones can go.  Sets
 * *done when the segment is finished, *damaged when a record could not be
 * read.
 */
static int copy_batch(cellar_db *db, uint64_t seq, uint64_t *off,
                      int oldest, cellar_compact_result *res, int *done,
                      int *damaged)
{
	segset *s = &db->segs;
	segment *g = segset_from(s, seq);
	uint64_t bytes = 0;
	int n = 0, rc = CELLAR_OK;

	if (!g || g->seq != seq) {
		*done = 1;
		return CELLAR_OK;
	}
	while (*off < g->size && n < BATCH_RECORDS && bytes < BATCH_BYTES) {
		rec_view v;
		rc = segment_record(s, g, *off, g->size, &v);
		if (rc == CELLAR_OK)
			rc = rec_verify(&v, g->seq, *off);
		if (rc < 0) {
			uint64_t next;
			rec_release(&v);
			if (rc != CELLAR_ECORRUPT && rc != CELLAR_EVERSION)
				return rc;
			*damaged = 1;
			if ((rc = segment_resync(s, g, *off, g->size, &next)) < 0)
				return rc;
			*off = next;
			continue;
		}
		uint64_t total = v.h.total;
		if (v.h.kind == RECORD_PUT) {
			db_loc at = { g->id, (uint32_t)*off };
			rc = db_write(db, RECORD_PUT, rec_key(&v), v.h.key_len,
			              rec_val(&v), v.h.val_len, WRITE_IF_AT, &at);
			if (rc == CELLAR_OK) {
				res->records_copied++;
				res->bytes_copied += total;
			}
		} else if (oldest) {
			res->tombstones_dropped++;
			rc = CELLAR_OK;
		} else {
			rc = db_write(db, RECORD_DELETE, rec_key(&v), v.h.key_len, NULL, 0,
			              WRITE_TOMBSTONE, NULL);
			if (rc == 1)
				res->tombstones_dropped++;
			else if (rc == CELLAR_OK)
				res->bytes_copied += total;
		}
		rec_release(&v);
		if (rc < 0)
			return rc;
		*off += total;
		bytes += total;
		n++;
	}
	if (*off >= g->size)
		*done = 1;
	return CELLAR_OK;
}

/* Sync the copies, drop the walked segments, checkpoint, remove files. */
static int finish(cellar_db *db, const uint64_t *seqs, size_t n,
                  cellar_compact_result *res)
{
	segset *s = &db->segs;
	uint64_t *gone = calloc(n ? n : 1, sizeof *gone);
	size_t ngone = 0;
	int rc;

	if (!gone)
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	if ((rc = segset_sync(s)) < 0) {
		db->failed = rc;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		segment *g = segset_from(s, seqs[i]);
		/* Walked without damage, every record the index pointed at was
		 * moved under the writer mutex: nothing refers to it any more.
		 * The newest segment receives the copies; never drop it. */
		if (!g || g->seq != seqs[i] || g == segset_last(s))
			continue;
		res->bytes_reclaimed += g->size;
		latch_write_lock(&db->latch);
		segset_forget(s, g);
		latch_write_unlock(&db->latch);
		gone[ngone++] = seqs[i];
	}
	if (!ngone)
		goto done;
	if ((rc = db_sync_locked(db, 1)) < 0)
		goto done;
	/* On failure, recovery removes what is left. */
	if ((rc = files_remove_segments(db->fs, db->dir, gone, ngone)) == CELLAR_OK)
		segset_release_ids(s);
	res->segments_compacted += ngone;
done:
	res->bytes_reclaimed = res->bytes_reclaimed > res->bytes_copied
	                           ? res->bytes_reclaimed - res->bytes_copied
	                           : 0;
	free(gone);
	return rc;
}

int compact_run(cellar_db *db, cellar_compact_result *res,
                const atomic_int *stop)
{
	double t0 = now_seconds();
	uint64_t *seqs = NULL;
	size_t n = 0, walked = 0;
	int rc = CELLAR_OK;

	memset(res, 0, sizeof *res);
	pthread_mutex_lock(&db->wmutex);
	if (db->failed) {
		rc = cellar__error(CELLAR_EFAILED, "an earlier write failed (%s)",
		                   cellar_strerror(db->failed));
		goto unlock;
	}
	segment *last = segset_last(&db->segs);
	/* The newest segment takes writes: close it first if it qualifies. */
	if (last && last->size > SEG_HEADER_SIZE &&
	    worth_compacting(last, db->opts.compact_dead_pct) &&
	    (rc = segset_roll(&db->segs)) < 0)
		goto unlock;
	if (db->segs.n &&
	    !(seqs = calloc(db->segs.n, sizeof *seqs))) {
		rc = cellar__error(CELLAR_ENOMEM, "out of memory");
		goto unlock;
	}
	for (size_t i = 0; i + 1 < db->segs.n; i++)
		if (worth_compacting(db->segs.list[i], db->opts.compact_dead_pct))
			seqs[n++] = db->segs.list[i]->seq;
	pthread_mutex_unlock(&db->wmutex);

	res->complete = 1;
	for (; walked < n; walked++) {
		uint64_t off = SEG_HEADER_SIZE;
		int done = 0, damaged = 0;
		/* Segments this pass walked cleanly are removed with it: the
		 * oldest segment that stays decides whether tombstones may go. */
		pthread_mutex_lock(&db->wmutex);
		int oldest = 1;
		for (size_t i = 0; i < db->segs.n && oldest; i++) {
			uint64_t q = db->segs.list[i]->seq;
			if (q >= seqs[walked])
				break;
			int gone = 0;
			for (size_t j = 0; j < walked && !gone; j++)
				gone = seqs[j] == q;
			oldest = gone;
		}
		pthread_mutex_unlock(&db->wmutex);
		while (!done) {
			if (stop && atomic_load(stop)) {
				res->complete = 0;
				break;
			}
			/* No batch while an iterator is open: it would see moved
			 * records twice. */
			pthread_mutex_lock(&db->iter_mutex);
			int busy = db->iters_open > 0;
			/* A count: a background pass and cellar_compact may run
			 * batches at the same time. */
			db->batch_running += !busy;
			pthread_mutex_unlock(&db->iter_mutex);
			if (busy) {
				res->complete = 0;
				rc = cellar__error(CELLAR_EBUSY, "an iterator is open");
				break;
			}
			/* Writers waiting for the mutex go first. */
			unsigned spins = 0;
			while (atomic_load(&db->writers_waiting) > 0)
				latch_relax(&spins);
			pthread_mutex_lock(&db->wmutex);
			double b0 = now_seconds();
			rc = copy_batch(db, seqs[walked], &off, oldest, res, &done,
			                &damaged);
			double pause = (now_seconds() - b0) * 1e3;
			pthread_mutex_unlock(&db->wmutex);
			pthread_mutex_lock(&db->iter_mutex);
			db->batch_running--;
			pthread_cond_broadcast(&db->iter_cond);
			pthread_mutex_unlock(&db->iter_mutex);
			if (pause > res->longest_pause_ms)
				res->longest_pause_ms = pause;
			if (rc < 0)
				goto out;
		}
		if (!done || rc < 0)
			break;
		if (damaged)
			seqs[walked] = 0; /* keep it: its damage is still referenced */
	}
out:
	pthread_mutex_lock(&db->wmutex);
	{
		/* Writers wait for the final sync and checkpoint too: count it. */
		double f0 = now_seconds();
		int rc2 = finish(db, seqs, walked, res);
		double pause = (now_seconds() - f0) * 1e3;
		if (pause > res->longest_pause_ms)
			res->longest_pause_ms = pause;
		if (rc == CELLAR_OK)
			rc = rc2;
	}
unlock:
	pthread_mutex_unlock(&db->wmutex);
	free(seqs);
	res->seconds = now_seconds() - t0;
	atomic_fetch_add_explicit(&db->compactions, 1, memory_order_relaxed);
	if (rc == CELLAR_OK) {
		cellar_event ev = { CELLAR_EVENT_COMPACT, 0, "", res->seconds, res };
		db_event(db, &ev);
	}
	return rc;
}

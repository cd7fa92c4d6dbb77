/*
 * compact.c - reclaiming the space of dead records.
 *
 * Owns the choice of segments, the walk of their records and the order of
 * the final steps.  Must not: touch the index or the log but through the
 * writer's calls, or know the public handle.
 *
 * A pass picks the segments whose dead share has reached the threshold and,
 * oldest first, walks each one: a put the index still points at is copied
 * to the end of the log and the index repointed (so the copy is the newest
 * record of its key and replay order stays right); a delete is dropped when
 * its key is present again (a later put superseded it) or when its segment
 * is the oldest (nothing older is left for it to hide), and copied forward
 * otherwise.  A put that has expired (by the writer's clock) is not
 * copied: its key is removed, with a tombstone in its place unless its
 * segment is the oldest left.  Everything else is dead and left behind.
 *
 * Each batch of records runs under the writer mutex (writer_batch_begin),
 * so writers wait at most one batch; readers only meet the latch while one index slot changes.  Once
 * every segment of the pass is walked, the copies are synced, the segments
 * are dropped from the set, a checkpoint that no longer lists them is
 * written, and only then are their files removed.  The sync and the
 * checkpoint are written off the writer's path (writer_sync_offpath, with
 * the drop as its step under the mutex); the copies are also fsynced every
 * PRESYNC_BYTES as the pass goes, without the mutex.  A crash before the
 * checkpoint leaves the old segments in place (the copies are merely newer
 * records of the same keys); a crash after it leaves files that recovery
 * recognizes as compacted and removes.
 *
 * On a full disk (the writer's reserve given up, writer.h "a full disk"),
 * when the pass starts or once it happens during the pass, each segment
 * gets those final steps as soon as it is walked, before the next is
 * copied: the pass then needs room for one segment's live records and one
 * checkpoint at a time, not for all the copies at once.  At its end the
 * writer is asked to make its reserve again (writer_reserve_renew).
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "compact.h"
#include "error.h"

#define BATCH_RECORDS 256
#define BATCH_BYTES (4u << 20)
/* ...or this long, whichever comes first: a waiting writer's bound. */
#define BATCH_SECONDS 200e-6
/* Fsync the copies (without the writer mutex) every this many bytes. */
#define PRESYNC_BYTES (32u << 20)

/*
 * Dead enough to rewrite?  Carried tombstones would only be carried again.
 * A segment with an expiring put that is due by now (or of unknown expiry,
 * after a reopen) is rewritten too, whatever its dead share: that is how
 * expired keys leave the store.
 */
static int worth_compacting(const segment *g, unsigned pct, uint64_t now)
{
	uint64_t total = g->live + g->dead;
	uint64_t dead = g->dead > g->kept ? g->dead - g->kept : 0;

	if (record_expired(g->exp_min, now))
		return 1;
	return dead > 0 && dead * 100 >= (uint64_t)pct * total;
}

/* The tombstone that replaces an expired put v. */
static uint64_t tombstone_size(const record_view *v)
{
	return record_size(v->h.key_len, 0);
}

/* Move one valid record on, or let it go (writer mutex held).  An expired
 * put the index still points at is dropped (writer_expire_if_at). */
static int move_record(writer *w, const segment *g, uint64_t off,
                       const record_view *v, int oldest,
                       cellar_compact_result *res)
{
	int done = 0, rc;

	if (v->h.kind == RECORD_BATCH)
		return CELLAR_OK; /* its records are walked one by one */
	if (v->h.kind == RECORD_PUT && v->h.expire &&
	    record_expired(v->h.expire, writer_now(w))) {
		rc = writer_expire_if_at(w, record_key(v), v->h.key_len, g->id,
		                         (uint32_t)off, oldest, &done);
		if (done)
			res->bytes_copied += oldest ? 0 : tombstone_size(v);
		return rc;
	}
	if (v->h.kind == RECORD_PUT) {
		rc = writer_copy_if_at(w, record_key(v), v->h.key_len, record_val(v),
		                       v->h.val_len, v->h.expire, g->id, (uint32_t)off,
		                       &done);
		if (done) {
			res->records_copied++;
			res->bytes_copied += v->h.total;
		}
		return rc;
	}
	if (oldest) {
		res->tombstones_dropped++;
		return CELLAR_OK;
	}
	rc = writer_carry_tombstone(w, record_key(v), v->h.key_len, &done);
	if (rc == CELLAR_OK && done)
		res->bytes_copied += v->h.total;
	else if (rc == CELLAR_OK)
		res->tombstones_dropped++;
	return rc;
}

/*
 * Walk one batch of segment seq from *off (writer mutex held).  oldest: no
 * segment older than it survives this pass, so its tombstones can go.  Sets
 * *done when the segment is finished, *damaged when a record could not be
 * read.
 */
static int copy_batch(writer *w, uint64_t seq, uint64_t *off, int oldest,
                      cellar_compact_result *res, int *done, int *damaged)
{
	segset *s = writer_segments(w);
	segment *g = segset_from(s, seq);
	uint64_t bytes = 0;
	double until = clock_seconds() + BATCH_SECONDS;
	int n = 0, rc = CELLAR_OK;

	if (!g || g->seq != seq) {
		*done = 1;
		return CELLAR_OK;
	}
	while (*off < g->size && n < BATCH_RECORDS && bytes < BATCH_BYTES &&
	       (n == 0 || clock_seconds() < until)) {
		record_view v;
		rc = segment_record(s, g, *off, g->size, &v);
		if (rc == CELLAR_OK)
			rc = record_verify(&v, g->seq, *off);
		if (rc < 0) {
			uint64_t next;
			record_release(&v);
			if (rc != CELLAR_ECORRUPT && rc != CELLAR_EVERSION)
				return rc;
			*damaged = 1;
			if ((rc = segment_resync(s, g, *off, g->size, &next)) < 0)
				return rc;
			*off = next;
			continue;
		}
		uint64_t total = v.h.total;
		if (n > 0 && writer_would_wait(w, total)) {
			/* The disk is behind: write between batches instead. */
			record_release(&v);
			break;
		}
		rc = move_record(w, g, *off, &v, oldest, res);
		record_release(&v);
		if (rc < 0)
			return rc;
		*off += total;
		bytes += total;
		n++;
	}
	if (*off >= g->size) {
		*done = 1;
		/* Cut short: slots still name its lost records; keep it. */
		if (g->covered > g->size)
			*damaged = 1;
	}
	return CELLAR_OK;
}

/* What finish's drop step needs (writer_sync_offpath runs it). */
typedef struct drop_step {
	const uint64_t *seqs;
	size_t n;
	uint64_t *gone;
	size_t ngone;
	cellar_compact_result *res;
} drop_step;

/* Drop the walked segments (writer mutex held, the copies synced). */
static void drop_walked(writer *w, void *ctx)
{
	drop_step *d = ctx;
	segset *s = writer_segments(w);

	for (size_t i = 0; i < d->n; i++) {
		segment *g = segset_from(s, d->seqs[i]);
		/* Walked without damage, every record the index pointed at was
		 * moved under the writer mutex: nothing refers to it any more.
		 * The newest segment receives the copies; never drop it. */
		if (!g || g->seq != d->seqs[i] || g == segset_last(s))
			continue;
		d->res->bytes_reclaimed += g->size;
		writer_drop_segment(w, g);
		d->gone[d->ngone++] = d->seqs[i];
	}
}

/*
 * Sync the copies, drop the walked segments, checkpoint, remove files.
 * The sync and the checkpoint are written off the writer's path
 * (writer_sync_offpath): writers wait only for the drop, the freeze and
 * the fsync of what came during the presync.
 */
static int finish(writer *w, const uint64_t *seqs, size_t n,
                  cellar_compact_result *res)
{
	drop_step d = { seqs, n, calloc(n ? n : 1, sizeof *d.gone), 0, res };
	double held = 0;
	int rc;

	if (!d.gone)
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	/* On failure, recovery removes what is left. */
	rc = writer_sync_offpath(w, 0, drop_walked, &d, &held);
	writer_free_dropped(w); /* unmapped and closed without the mutex */
	if (held > res->longest_pause_ms)
		res->longest_pause_ms = held;
	if (rc == CELLAR_OK && d.ngone &&
	    (rc = writer_remove_dropped(w, d.gone, d.ngone)) == CELLAR_OK)
		res->segments_compacted += d.ngone;
	free(d.gone);
	return rc;
}

/*
 * The segments worth compacting, oldest first, into *out (writer mutex
 * held).  The newest takes writes: it is closed first if it qualifies.
 */
static int pick(writer *w, unsigned pct, uint64_t **out, size_t *n,
                int *one_by_one)
{
	segset *s = writer_segments(w);
	segment *last = segset_last(s);
	uint64_t now = writer_now(w);
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = writer_failed(w)) < 0)
		return rc;
	/* Short of space: each segment's file goes before the next is copied. */
	*one_by_one = writer_short_of_space(w);
	if (last && last->size > SEG_HEADER_SIZE &&
	    worth_compacting(last, pct, now) &&
	    (rc = writer_roll(w)) < 0)
		return rc;
	if (s->n && !(*out = calloc(s->n, sizeof **out)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (size_t i = 0; i + 1 < s->n; i++)
		if (worth_compacting(s->list[i], pct, now))
			(*out)[(*n)++] = s->list[i]->seq;
	return CELLAR_OK;
}

/*
 * Is seqs[walked] the oldest segment that stays?  Segments this pass
 * walked cleanly are removed with it, so only those may be older.
 */
static int oldest_left(writer *w, const uint64_t *seqs, size_t walked)
{
	segset *s = writer_segments(w);
	int oldest = 1;

	writer_lock(w);
	for (size_t i = 0; i < s->n && oldest; i++) {
		uint64_t q = s->list[i]->seq;
		if (q >= seqs[walked])
			break;
		int gone = 0;
		for (size_t j = 0; j < walked && !gone; j++)
			gone = seqs[j] == q;
		oldest = gone;
	}
	writer_unlock(w);
	return oldest;
}

/* Walk segment seq batch by batch; *done once it is all walked. */
static int walk(writer *w, gate *gt, uint64_t seq, int oldest,
                const atomic_int *stop, cellar_compact_result *res, int *done,
                int *damaged)
{
	uint64_t off = SEG_HEADER_SIZE, synced = res->bytes_copied;
	int rc = CELLAR_OK;

	while (!*done) {
		int entered;
		if (stop && atomic_load(stop)) {
			res->complete = 0;
			return CELLAR_OK;
		}
		/* Room for the batch: the file is written first, without the
		 * mutex, so that the batch does not fill a buffer writers
		 * would wait for. */
		if ((rc = writer_flush_offpath(w, 0)) < 0)
			return rc;
		writer_wait_flush(w);
		/* No batch while an iterator is open: it would see moved
		 * records twice. */
		gate_batch_enter(gt, &entered);
		if (!entered) {
			res->complete = 0;
			return cellar__error(CELLAR_EBUSY, "an iterator is open");
		}
		writer_batch_begin(w);
		double b0 = clock_seconds();
		rc = copy_batch(w, seq, &off, oldest, res, done, damaged);
		double pause = (clock_seconds() - b0) * 1e3;
		writer_batch_end(w);
		gate_batch_leave(gt);
		if (pause > res->longest_pause_ms)
			res->longest_pause_ms = pause;
		if (rc < 0)
			return rc;
		/* Keep the copies synced as they grow. */
		if (res->bytes_copied - synced >= PRESYNC_BYTES) {
			synced = res->bytes_copied;
			if ((rc = writer_sync_data_offpath(w, &pause)) < 0)
				return rc;
			if (pause > res->longest_pause_ms)
				res->longest_pause_ms = pause;
		}
	}
	return CELLAR_OK;
}

int compact_run(writer *w, gate *gt, unsigned dead_pct, const atomic_int *stop,
                cellar_compact_result *res)
{
	double t0 = clock_seconds();
	uint64_t *seqs = NULL;
	size_t n = 0, walked = 0, finished = 0;
	int one_by_one = 0, rc;

	memset(res, 0, sizeof *res);
	writer_lock(w);
	rc = pick(w, dead_pct, &seqs, &n, &one_by_one);
	writer_unlock(w);
	if (rc < 0)
		goto out;
	res->complete = 1;
	for (; walked < n; walked++) {
		int done = 0, damaged = 0;
		rc = walk(w, gt, seqs[walked], oldest_left(w, seqs, walked), stop,
		          res, &done, &damaged);
		if (!done || rc < 0)
			break;
		if (damaged)
			seqs[walked] = 0; /* keep it: its damage is still referenced */
		if (!one_by_one) { /* the disk may have filled meanwhile */
			writer_lock(w);
			one_by_one = writer_short_of_space(w);
			writer_unlock(w);
		}
		if (one_by_one) {
			if ((rc = finish(w, seqs + finished, walked + 1 - finished,
			                 res)) < 0)
				goto out;
			finished = walked + 1;
		}
	}
	/* Writers wait for parts of the final sync and checkpoint too:
	 * finish counts them. */
	int rc2 = finish(w, seqs ? seqs + finished : NULL, walked - finished,
	                 res); /* seqs is NULL when nothing was picked */
	if (rc == CELLAR_OK)
		rc = rc2;
out:
	res->bytes_reclaimed = res->bytes_reclaimed > res->bytes_copied
	                           ? res->bytes_reclaimed - res->bytes_copied
	                           : 0;
	writer_reserve_renew(w); /* the space freed may make it whole again */
	free(seqs);
	res->seconds = clock_seconds() - t0;
	return rc;
}

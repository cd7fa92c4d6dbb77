/* recovery.c - checkpoint load, log replay and index rebuild (see recovery.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "recovery.h"

int recovery_apply(cellar_index *ix, segset *segs, uint64_t hash,
                   const record_view *v, segment *g, uint64_t off)
{
	seg_key k = { segs, record_key(v), v->h.key_len, 0, 0 };
	index_ref ref;
	int rc;

	if ((rc = index_find(ix, hash, segset_match_key, &k, &ref)) < 0)
		return rc;
	if (v->h.kind == RECORD_DELETE) {
		g->dead += v->h.total;
		if (!ref.found)
			return CELLAR_OK;
		if ((rc = index_reserve(ix, &ref)) < 0)
			return rc;
		index_remove(ix, &ref);
	} else {
		if ((rc = index_reserve(ix, &ref)) < 0)
			return rc;
		index_set(ix, &ref, hash, g->id, (uint32_t)off);
		index_grow(ix);
		g->live += v->h.total;
		segment_note_expire(g, v->h.expire);
	}
	if (ref.found)
		segset_mark_dead(segs, ref.old_seg, k.found_total);
	return CELLAR_OK;
}

/*
 * The step every scan of a segment takes (replay, follow, the shadow
 * table): what lies at off.
 *   SCAN_RECORD: a valid put or delete, in *v (release it), at off;
 *   SCAN_BATCH:  a batch header; when its body is all there and intact
 *                (whole), next is past the header and the scan applies the
 *                body's records, count of them; else next is past the
 *                batch, or end when the body runs past it;
 *   SCAN_DAMAGE: [off, next) is damaged: next is the next valid record,
 *                or end.
 * A record of a batch body met outside the body of an intact batch header
 * (body_end: the end of the last one) is damage too, [off, its end): its
 * header was lost, and a batch applies whole or not at all.  An error that ends the scan is
 * returned: CELLAR_ENOMEM, CELLAR_EIO, and CELLAR_EVERSION unless
 * newer_is_damage.
 */
enum { SCAN_RECORD, SCAN_BATCH, SCAN_DAMAGE };

typedef struct scan_step {
	int what;
	int whole;      /* SCAN_BATCH */
	uint32_t count; /* SCAN_BATCH, whole: records in the body */
	uint64_t next;  /* SCAN_BATCH, SCAN_DAMAGE */
} scan_step;

static int scan_batch(const segset *segs, const segment *g, uint64_t off,
                      uint64_t end, const record_view *v, uint64_t *body_end,
                      scan_step *st)
{
	record_batch b;
	int state, rc;

	if ((rc = segment_batch_check(segs, g, off, end, v, &b, &state)) < 0)
		return rc;
	st->what = SCAN_BATCH;
	st->whole = state == SEG_BATCH_WHOLE;
	st->count = b.count;
	st->next = state == SEG_BATCH_SHORT ? end : off + v->h.total +
	                                                (st->whole ? 0 : b.body_len);
	if (st->whole)
		*body_end = st->next + b.body_len;
	return CELLAR_OK;
}

static int scan_next(const segset *segs, const segment *g, uint64_t off,
                     uint64_t end, uint64_t *body_end, int newer_is_damage,
                     record_view *v, scan_step *st)
{
	int rc = segment_record(segs, g, off, end, v);

	if (rc == CELLAR_OK)
		rc = record_verify(v, g->seq, off);
	if (rc == CELLAR_OK && v->h.in_batch && off >= *body_end) {
		/* Intact, so its length holds: the damage is the record, skipped
		 * whole as an iteration steps over it, never resynced inside. */
		st->what = SCAN_DAMAGE;
		st->next = off + v->h.total;
		record_release(v);
		return CELLAR_OK;
	}
	if (rc == CELLAR_ENOMEM || rc == CELLAR_EIO ||
	    (rc == CELLAR_EVERSION && !newer_is_damage)) {
		record_release(v);
		return rc;
	}
	if (rc == CELLAR_OK && v->h.kind == RECORD_BATCH) {
		rc = scan_batch(segs, g, off, end, v, body_end, st);
		record_release(v);
		return rc;
	}
	if (rc < 0) {
		record_release(v);
		st->what = SCAN_DAMAGE;
		return segment_resync(segs, g, off, end, &st->next);
	}
	st->what = SCAN_RECORD;
	return CELLAR_OK;
}

/* Replay segment g from off; sets g's sizes to the valid end. */
static int replay_segment(cellar_index *ix, segset *segs, segment *g,
                          uint64_t off, const keyhash *kh,
                          int newest, int readonly, recovery_result *res)
{
	uint64_t end = g->size, body_end = 0;
	record_view v;
	scan_step st;
	int rc;

	if (end > UINT32_MAX)
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx: larger than 4 GiB",
		                     (unsigned long long)g->seq);
	while (off < end) {
		if ((rc = scan_next(segs, g, off, end, &body_end, 0, &v, &st)) < 0)
			return rc;
		if (st.what == SCAN_RECORD) {
			rc = recovery_apply(ix, segs, keyhash_of(kh, record_key(&v),
			                                         v.h.key_len),
			                    &v, g, off);
			off += v.h.total;
			res->replayed++;
			res->replayed_bytes += v.h.total;
			record_release(&v);
			if (rc < 0)
				return rc;
			continue;
		}
		if (st.what == SCAN_BATCH && st.whole) {
			g->dead += st.next - off; /* the header is dead weight */
			res->replayed_bytes += st.next - off;
			off = st.next;
			continue;
		}
		/* [off, next) is damaged, or a batch that is not whole. */
		if (st.next >= end && newest) {
			/* A write torn by the crash: cut it off. */
			res->cut_bytes += end - off;
			if (!readonly && (rc = segset_truncate(segs, g, off)) < 0)
				return rc;
			end = off;
			break;
		}
		res->damaged_bytes += st.next - off;
		g->dead += st.next - off;
		off = st.next;
	}
	g->size = g->flushed = g->wend = end;
	if (g->synced > end)
		g->synced = end;
	return CELLAR_OK;
}

/*
 * Segments older than the checkpoint that it does not list were compacted
 * away: the checkpoint was written, their removal had not finished.
 */
static int drop_compacted(segset *segs, const index_ckpt *ck, cellar_fs *fs,
                          const char *dir, int readonly)
{
	uint64_t *gone = calloc(segs->n ? segs->n : 1, sizeof *gone);
	size_t ngone = 0;
	int rc;

	if (!gone)
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (size_t i = 0; i < segs->n;) {
		segment *g = segs->list[i];
		int listed = 0;
		for (size_t j = 0; j < ck->nsegs && !listed; j++)
			listed = ck->segs[j].seq == g->seq;
		if (listed || g->seq >= ck->seq) {
			i++;
			continue;
		}
		gone[ngone++] = g->seq;
		segset_forget(segs, g);
	}
	rc = readonly ? CELLAR_OK : files_remove_segments(fs, dir, gone, ngone);
	free(gone);
	if (rc == CELLAR_OK && !readonly)
		segset_release_ids(segs);
	return rc;
}

/* Can checkpoint ck be used with the segments on disk? */
static int ckpt_usable(const segset *segs, const index_ckpt *ck,
                       const cellar_index *ix, uint64_t seed)
{
	if (index_seed(ix) != seed)
		return 0;
	for (size_t i = 0; i < ck->nsegs; i++) {
		const segment *g = segs->by_id[ck->segs[i].id];
		if (!g || g->seq != ck->segs[i].seq)
			return 0;
	}
	/* A listed segment shorter than the checkpoint says was cut short
	 * (mark_cut); the segment the checkpoint ends in must be listed. */
	int listed = ck->seq == 0;
	for (size_t j = 0; j < ck->nsegs && !listed; j++)
		listed = ck->segs[j].seq == ck->seq;
	return listed;
}

/*
 * The checkpoint covered more of a segment than its file now holds: the
 * file was cut after the checkpoint was written (the segments a checkpoint
 * covers are durable before it is), so the records past the cut are lost,
 * not torn.  Remember how long it was; a read-write handle writes on in a
 * new segment, never after the cut, where the checkpoint's slots still
 * point.
 */
static int mark_cut(segset *segs, const index_ckpt *ck, int readonly,
                    recovery_result *res)
{
	for (size_t i = 0; i < ck->nsegs; i++) {
		segment *g = segs->by_id[ck->segs[i].id];
		uint64_t want = ck->segs[i].size;
		if (g->seq == ck->seq && ck->off > want)
			want = ck->off;
		if (g->size >= want)
			continue;
		g->covered = want;
		if (!res->lost_segments++)
			res->lost_seq = g->seq;
		res->lost_bytes += want - g->size;
	}
	segment *last = segset_last(segs);
	if (!readonly && last && last->covered)
		return segset_roll(segs);
	return CELLAR_OK;
}

static int replay_from(cellar_index *ix, segset *segs, uint64_t seq,
                       uint64_t off, const keyhash *kh,
                       int readonly, recovery_result *res)
{
	for (size_t i = 0; i < segs->n; i++) {
		segment *g = segs->list[i];
		uint64_t start;
		int rc;
		if (g->seq < seq)
			continue;
		start = g->seq == seq ? off : SEG_HEADER_SIZE;
		if (start < SEG_HEADER_SIZE)
			start = SEG_HEADER_SIZE;
		rc = replay_segment(ix, segs, g, start, kh,
		                    i + 1 == segs->n, readonly, res);
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

int recovery_run(cellar_index **out, segset *segs, cellar_fs *fs,
                 const char *dir, const keyhash *kh,
                 int readonly, recovery_result *res)
{
	cellar_index *ix = NULL;
	index_ckpt ck;
	char path[FILE_PATH_MAX];
	int rc;

	*out = NULL;
	memset(res, 0, sizeof *res);
	if (!readonly && files_path(path, sizeof path, dir, FILE_INDEX_TMP) == 0)
		fs->remove(fs, path); /* a checkpoint a crash interrupted */
	rc = index_load(&ix, fs, dir, &ck);
	if (rc == CELLAR_EVERSION || rc == CELLAR_ENOMEM || rc == CELLAR_EIO)
		return rc;
	/* A writer will checkpoint this table again: a damaged chunk would be
	 * carried along, so check them all now and rebuild if one is bad.
	 * Read-only handles check each chunk when they first touch it. */
	if (rc == CELLAR_OK && !readonly && index_verify_all(ix) < 0)
		rc = CELLAR_ECORRUPT;
	if (rc == CELLAR_OK && ckpt_usable(segs, &ck, ix, kh->seed)) {
		/* Only a checkpoint that matches the store may say which older
		 * segments are compaction leftovers. */
		if ((rc = drop_compacted(segs, &ck, fs, dir, readonly)) < 0) {
			free(ck.segs);
			goto fail;
		}
		for (size_t i = 0; i < ck.nsegs; i++) {
			segment *g = segs->by_id[ck.segs[i].id];
			g->live = ck.segs[i].live;
			g->dead = ck.segs[i].dead;
			g->kept = ck.segs[i].kept;
			/* Expiring puts of unknown expiry: compaction looks. */
			g->exp_min = ck.segs[i].flags & INDEX_SEG_EXPIRING
			                 ? SEG_EXPIRE_UNKNOWN : 0;
		}
		res->ckpt_seq = ck.seq;
		res->ckpt_off = ck.off;
		rc = mark_cut(segs, &ck, readonly, res);
		if (rc == CELLAR_OK)
			rc = replay_from(ix, segs, ck.seq, ck.off, kh, readonly, res);
		free(ck.segs);
		if (rc == CELLAR_OK) {
			*out = ix;
			return CELLAR_OK;
		}
		if (rc != CELLAR_ECORRUPT)
			goto fail;
		/* The checkpoint itself is damaged: rebuild from the log (what
		 * it said was cut short stays lost). */
		recovery_result cut = *res;
		memset(res, 0, sizeof *res);
		res->lost_bytes = cut.lost_bytes;
		res->lost_segments = cut.lost_segments;
		res->lost_seq = cut.lost_seq;
	} else {
		free(ck.segs);
	}
	index_free(ix);
	ix = NULL;
	res->rebuilt = 1;
	for (size_t i = 0; i < segs->n; i++) {
		segs->list[i]->live = segs->list[i]->dead = segs->list[i]->kept = 0;
		segs->list[i]->exp_min = 0;
	}
	if ((rc = index_new(&ix, kh->seed)) < 0)
		return rc;
	if ((rc = replay_from(ix, segs, 0, 0, kh, readonly, res)) < 0)
		goto fail;
	*out = ix;
	return CELLAR_OK;
fail:
	index_free(ix);
	return rc;
}

int recovery_follow(cellar_index *ix, segset *segs, segment *g, uint64_t end,
                    const keyhash *kh, int newest, unsigned budget,
                    recovery_result *res, int *more)
{
	uint64_t body_end = 0; /* a whole batch is followed in one call */
	record_view v;
	scan_step st;
	int rc;

	*more = 0;
	if (end > UINT32_MAX)
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx: larger than 4 GiB",
		                     (unsigned long long)g->seq);
	for (unsigned n = 0; g->size < end; n++) {
		uint64_t off = g->size;
		if (n >= budget) {
			*more = 1;
			return CELLAR_OK;
		}
		if ((rc = scan_next(segs, g, off, end, &body_end, 0, &v, &st)) < 0)
			return rc;
		if (st.what == SCAN_RECORD) {
			g->size = off + v.h.total;
			rc = recovery_apply(ix, segs, keyhash_of(kh, record_key(&v),
			                                         v.h.key_len),
			                    &v, g, off);
			res->replayed++;
			res->replayed_bytes += v.h.total;
			record_release(&v);
			if (rc < 0)
				return rc;
			continue;
		}
		if (st.what == SCAN_BATCH && st.whole) {
			/* Applied whole in this hold of the latch: the budget
			 * grows to cover its records. */
			budget += st.count;
			g->dead += st.next - off; /* the header is dead weight */
			res->replayed_bytes += st.next - off;
			g->size = st.next;
			continue;
		}
		if (st.next >= end && newest)
			return CELLAR_OK; /* still being written: wait for the rest */
		res->damaged_bytes += st.next - off;
		g->dead += st.next - off;
		g->size = st.next;
	}
	return CELLAR_OK;
}

/* A valid record into a shadow table: the index only, no counters. */
static int shadow_apply(cellar_index *ix, const segset *segs, uint64_t hash,
                        const record_view *v, uint16_t id, uint64_t off)
{
	seg_key k = { segs, record_key(v), v->h.key_len, 0, 0 };
	index_ref ref;
	int rc;

	if ((rc = index_find(ix, hash, segset_match_key, &k, &ref)) < 0)
		return rc;
	if (v->h.kind == RECORD_DELETE && !ref.found)
		return CELLAR_OK;
	if ((rc = index_reserve(ix, &ref)) < 0)
		return rc;
	if (v->h.kind == RECORD_DELETE) {
		index_remove(ix, &ref);
	} else {
		index_set(ix, &ref, hash, id, (uint32_t)off);
		index_grow(ix);
	}
	return CELLAR_OK;
}

static int shadow_segment(cellar_index *ix, const segset *segs,
                          const segment *g, const keyhash *kh, int *lossy)
{
	uint64_t off = SEG_HEADER_SIZE, end = g->size, body_end = 0;
	record_view v;
	scan_step st;
	int rc;

	*lossy |= g->covered > g->size;
	while (off < end && end <= UINT32_MAX) {
		/* A record of a newer kind is one this table cannot serve. */
		if ((rc = scan_next(segs, g, off, end, &body_end, 1, &v, &st)) < 0)
			return rc;
		if (st.what != SCAN_RECORD) {
			/* A whole batch: its records follow; else skip it all. */
			*lossy |= !(st.what == SCAN_BATCH && st.whole);
			off = st.next;
			continue;
		}
		rc = shadow_apply(ix, segs, keyhash_of(kh, record_key(&v), v.h.key_len),
		                  &v, g->id, off);
		off += v.h.total;
		record_release(&v);
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

int recovery_shadow(cellar_index **out, const segset *segs,
                    const keyhash *kh, int *lossy)
{
	cellar_index *ix = NULL;
	int rc;

	*out = NULL;
	*lossy = 0;
	if ((rc = index_new(&ix, kh->seed)) < 0)
		return rc;
	for (size_t i = 0; i < segs->n; i++)
		if ((rc = shadow_segment(ix, segs, segs->list[i], kh, lossy)) < 0) {
			index_free(ix);
			return rc;
		}
	*out = ix;
	return CELLAR_OK;
}

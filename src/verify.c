/* verify.c - cellar_verify and cellar_repair (see verify.h and cellar.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files.h"
#include "hash.h"
#include "index.h"
#include "latch.h"
#include "meta.h"
#include "record.h"
#include "recovery.h"
#include "segment.h"
#include "verify.h"

/* How often (in scanned bytes) the progress callback is called. */
#define PROGRESS_STEP (4ull << 20)

typedef struct verifier {
	const cellar_verify_options *o;
	cellar_verify_report *r;
	cellar_fs *fs;
	const char *dir;
	uint64_t seed;
	segset segs;
	int segs_open;
	cellar_index *truth; /* each key's newest record, from the log */
	cellar_index *ix;    /* the checkpoint, plus the log after it */
	index_ckpt ck;
	int usable;          /* ix can be compared with truth */
	uint64_t done, next_progress;
} verifier;

/* Count one problem, remember where the first one was, tell the caller. */
static void problem(verifier *v, cellar_damage_kind kind, uint64_t seq,
                    uint64_t off, uint64_t bytes, const void *key,
                    size_t key_len, const char *fmt, ...) CELLAR_PRINTF(8, 9);

static void problem(verifier *v, cellar_damage_kind kind, uint64_t seq,
                    uint64_t off, uint64_t bytes, const void *key,
                    size_t key_len, const char *fmt, ...)
{
	cellar_damage *d = &v->r->damage[kind];
	char msg[256];
	va_list ap;

	if (d->count++ == 0) {
		d->first_seq = seq;
		d->first_off = off;
	}
	d->bytes += bytes;
	v->r->problems++;
	if (!v->o->on_problem)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cellar_problem p = { kind, seq, off, bytes, key, key_len, msg };
	v->o->on_problem(&p, v->o->ctx);
}

static void progress(verifier *v, uint64_t done)
{
	v->done = done;
	if (v->o->on_progress && done >= v->next_progress) {
		v->o->on_progress(done, v->r->segment_bytes, v->o->ctx);
		v->next_progress = done + PROGRESS_STEP;
	}
}

/* ---- the index file ---------------------------------------------------- */

/* The checkpoint's segments must exist, as long as it says (as recovery's
 * ckpt_usable checks); the detail goes to a STALE problem. */
static int ckpt_matches(verifier *v)
{
	const index_ckpt *ck = &v->ck;

	if (index_seed(v->ix) != v->seed) {
		problem(v, CELLAR_DAMAGE_INDEX_STALE, 0, 0, 0, NULL, 0,
		        "the index has another hash seed than the store's meta");
		return 0;
	}
	for (size_t i = 0; i < ck->nsegs; i++) {
		const segment *g = v->segs.by_id[ck->segs[i].id];
		if (g && g->seq == ck->segs[i].seq && g->size < ck->segs[i].size) {
			problem(v, CELLAR_DAMAGE_INDEX_STALE, g->seq, g->size,
			        ck->segs[i].size - g->size, NULL, 0,
			        "segment %016llx.seg was cut short: the index covers "
			        "%llu bytes of it, the file holds %llu; the records "
			        "past the cut are lost (cellar repair accepts that)",
			        (unsigned long long)g->seq,
			        (unsigned long long)ck->segs[i].size,
			        (unsigned long long)g->size);
			return 0;
		}
		if (!g || g->seq != ck->segs[i].seq) {
			problem(v, CELLAR_DAMAGE_INDEX_STALE, ck->segs[i].seq,
			        ck->segs[i].size, 0, NULL, 0,
			        "the index covers %llu bytes of segment %016llx.seg, "
			        "which is missing",
			        (unsigned long long)ck->segs[i].size,
			        (unsigned long long)ck->segs[i].seq);
			return 0;
		}
	}
	return 1;
}

/* Load the index, check every chunk and the table; sets v->usable. */
static int load_index(verifier *v)
{
	int rc = index_load(&v->ix, v->fs, v->dir, &v->ck), bad = 0;

	if (rc == CELLAR_ENOMEM || rc == CELLAR_EIO)
		return rc;
	if (rc == CELLAR_ENOENT) {
		problem(v, CELLAR_DAMAGE_INDEX_FILE, 0, 0, 0, NULL, 0,
		        "there is no index file");
		return CELLAR_OK;
	}
	if (rc < 0) {
		problem(v, CELLAR_DAMAGE_INDEX_FILE, 0, 0, 0, NULL, 0, "%s",
		        cellar_errmsg());
		return CELLAR_OK;
	}
	v->r->index_keys = index_count(v->ix);
	/* Every chunk, not only the first bad one: each is reported. */
	index_array *arrays[2] = { &v->ix->prim, &v->ix->ovf };
	uint64_t base = INDEX_HEADER_SIZE;
	for (int a = 0; a < 2; a++) {
		for (size_t c = 0; c < arrays[a]->nchunks; c++) {
			uint64_t at = base + (uint64_t)c * INDEX_CHUNK_BUCKETS * BUCKET_SIZE;
			if (index_chunk_check(&arrays[a]->chunks[c]) < 0) {
				bad = 1;
				problem(v, CELLAR_DAMAGE_INDEX_CHUNK, 0, at, 0, NULL, 0,
				        "%s bucket chunk %zu (index offset %llu) fails its "
				        "checksum", a ? "overflow" : "primary", c,
				        (unsigned long long)at);
			}
		}
		base += v->ix->prim.n * BUCKET_SIZE;
	}
	if (bad)
		return CELLAR_OK;
	if ((rc = index_verify_all(v->ix)) == CELLAR_ENOMEM)
		return rc;
	if (rc < 0) {
		problem(v, CELLAR_DAMAGE_INDEX_TABLE, 0, 0, 0, NULL, 0,
		        "the index's chains or counters are inconsistent");
		return CELLAR_OK;
	}
	v->usable = ckpt_matches(v);
	return CELLAR_OK;
}

/* ---- the segment scan -------------------------------------------------- */

/*
 * A segment older than the checkpoint that it does not list was compacted
 * away; only its removal had not finished.  Recovery removes it, so the
 * truth must not replay it (it may hold puts whose tombstones are gone).
 */
static int compacted_away(const verifier *v, const segment *g)
{
	if (g->seq >= v->ck.seq)
		return 0;
	for (size_t j = 0; j < v->ck.nsegs; j++)
		if (v->ck.segs[j].seq == g->seq)
			return 0;
	return 1;
}

/* Is (seq, off) at or after the checkpoint's log position? */
static int after_ckpt(const verifier *v, uint64_t seq, uint64_t off)
{
	return seq > v->ck.seq || (seq == v->ck.seq && off >= v->ck.off);
}

/*
 * A valid record at (g, off): count it, apply it to the truth table and,
 * past the checkpoint, to the loaded index as recovery would.
 */
static int apply_record(verifier *v, segment *g, uint64_t off,
                        const record_view *rv)
{
	uint64_t h = hash_key(record_key(rv), rv->h.key_len, v->seed);
	int rc;

	v->r->records++;
	if (rv->h.kind == RECORD_DELETE)
		v->r->deletes++;
	else
		v->r->puts++;
	rc = recovery_apply(v->truth, &v->segs, h, rv, g, off);
	if (rc == CELLAR_OK && v->usable && after_ckpt(v, g->seq, off)) {
		int rc2 = recovery_apply(v->ix, &v->segs, h, rv, g, off);
		if (rc2 == CELLAR_ENOMEM) {
			rc = rc2;
		} else if (rc2 < 0) {
			v->usable = 0;
			problem(v, CELLAR_DAMAGE_INDEX_TABLE, g->seq, off, 0,
			        record_key(rv), rv->h.key_len,
			        "replaying the log into the index failed: %s",
			        cellar_errmsg());
		}
	}
	return rc;
}

/* [off, next) of g holds no whole record: say so. */
static void report_damage(verifier *v, segment *g, uint64_t off, uint64_t next,
                          uint64_t end)
{
	if (next >= end)
		problem(v, CELLAR_DAMAGE_TAIL, g->seq, off, end - off, NULL, 0,
		        "segment %016llx.seg: the last %llu bytes, from "
		        "offset %llu, are no whole record",
		        (unsigned long long)g->seq,
		        (unsigned long long)(end - off),
		        (unsigned long long)off);
	else
		problem(v, CELLAR_DAMAGE_RECORD, g->seq, off, next - off,
		        NULL, 0, "segment %016llx.seg: damaged record at "
		        "offset %llu (%llu bytes skipped)",
		        (unsigned long long)g->seq, (unsigned long long)off,
		        (unsigned long long)(next - off));
}

/*
 * A write batch's header at off: *next is its first record when the batch
 * is whole (recovery applies it), else past the batch, reported as damage
 * (recovery skips it, or cuts it off at the end of the newest segment).
 */
static int batch_at(verifier *v, segment *g, uint64_t off, uint64_t end,
                    const record_view *rv, uint64_t *next, uint64_t *body_end)
{
	record_batch b;
	int state, rc;

	if ((rc = segment_batch_check(&v->segs, g, off, end, rv, &b, &state)) < 0)
		return rc;
	*next = off + rv->h.total;
	if (state == SEG_BATCH_WHOLE) {
		*body_end = *next + b.body_len;
		return CELLAR_OK;
	}
	*next = state == SEG_BATCH_SHORT ? end : *next + b.body_len;
	report_damage(v, g, off, *next, end);
	return CELLAR_OK;
}

static int scan_segment(verifier *v, segment *g)
{
	uint64_t off = SEG_HEADER_SIZE, end = g->size, start = v->done;
	uint64_t body_end = 0; /* of the last whole batch met */
	record_view rv;
	int rc;

	if (end > UINT32_MAX) {
		problem(v, CELLAR_DAMAGE_TAIL, g->seq, UINT32_MAX, end - UINT32_MAX,
		        NULL, 0, "segment %016llx.seg is larger than 4 GiB",
		        (unsigned long long)g->seq);
		end = UINT32_MAX;
	}
	while (off < end) {
		rc = segment_record(&v->segs, g, off, end, &rv);
		if (rc == CELLAR_OK)
			rc = record_verify(&rv, g->seq, off);
		if (rc == CELLAR_OK && rv.h.in_batch && off >= body_end) {
			/* Its batch header was lost: damage, the record whole
			 * (intact, so its length holds), as recovery skips it. */
			uint64_t next = off + rv.h.total;
			record_release(&rv);
			report_damage(v, g, off, next, end);
			off = next;
			progress(v, start + off);
			continue;
		}
		if (rc == CELLAR_ENOMEM || rc == CELLAR_EIO) {
			record_release(&rv);
			return rc;
		}
		if (rc == CELLAR_EVERSION) {
			/* Intact, but of a kind this version cannot apply. */
			uint64_t total = rv.h.total;
			record_release(&rv);
			problem(v, CELLAR_DAMAGE_NEWER_RECORD, g->seq, off, total, NULL,
			        0, "segment %016llx.seg: a record of unknown kind %u at "
			        "offset %llu", (unsigned long long)g->seq, rv.h.kind,
			        (unsigned long long)off);
			off += total;
			continue;
		}
		if (rc < 0) {
			uint64_t next;
			record_release(&rv);
			if ((rc = segment_resync(&v->segs, g, off, end, &next)) < 0)
				return rc;
			report_damage(v, g, off, next, end);
			off = next;
			progress(v, start + off);
			continue;
		}
		if (rv.h.kind == RECORD_BATCH) {
			uint64_t next;
			rc = batch_at(v, g, off, end, &rv, &next, &body_end);
			record_release(&rv);
			if (rc < 0)
				return rc;
			off = next;
			progress(v, start + off);
			continue;
		}
		rc = apply_record(v, g, off, &rv);
		off += rv.h.total;
		record_release(&rv);
		if (rc < 0)
			return rc;
		progress(v, start + off);
	}
	progress(v, start + g->size);
	return CELLAR_OK;
}

/* ---- comparing the index with the log ---------------------------------- */

/* A lookup that reports where the key was found. */
typedef struct find_ctx {
	const segset *s;
	const void *key;
	size_t key_len;
	uint16_t seg;
	uint32_t off;
} find_ctx;

static int match_find(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	find_ctx *f = ctx;
	record_view rv;

	if (segset_record(f->s, seg, off, &rv) < 0)
		return CELLAR_OK; /* a bad slot: the other direction reports it */
	*hit = rv.h.key_len == f->key_len &&
	       memcmp(record_key(&rv), f->key, f->key_len) == 0;
	record_release(&rv);
	if (*hit) {
		f->seg = seg;
		f->off = off;
	}
	return CELLAR_OK;
}

/* Where does ix hold key?  CELLAR_OK with *seg, *off, ENOTFOUND, or error. */
static int find(const verifier *v, cellar_index *ix, const void *key,
                size_t key_len, uint64_t hash, uint16_t *seg, uint32_t *off)
{
	find_ctx f = { &v->segs, key, key_len, 0, 0 };
	int rc = index_lookup(ix, hash, match_find, &f, NULL);

	*seg = f.seg;
	*off = f.off;
	return rc;
}

static uint64_t seq_of(const verifier *v, uint16_t id)
{
	return v->segs.by_id[id] ? v->segs.by_id[id]->seq : 0;
}

typedef int (*slot_fn)(verifier *v, uint64_t chain, uint32_t tag,
                       uint16_t seg, uint32_t off);

/* Call fn for every used slot of ix, chain by chain (the index's cursor). */
static int each_slot(verifier *v, cellar_index *ix, slot_fn fn)
{
	uint64_t buckets;
	index_chain c;
	int rc;

	index_sizes(ix, &buckets, NULL);
	for (uint64_t a = 0; a < buckets; a++) {
		for (rc = index_chain_first(&c, ix, a, INDEX_CHAIN_CHECKED);
		     rc == CELLAR_OK && c.b; rc = index_chain_next(&c))
			for (int i = 0; i < BUCKET_SLOTS; i++)
				if (bucket_slot_used(c.b, i) &&
				    (rc = fn(v, a, bucket_tag(c.b, i), bucket_seg(c.b, i),
				             bucket_off(c.b, i))) < 0)
					return rc;
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* Log to index: the key of the newest record at (seg, off) must lead there. */
static int check_key(verifier *v, uint64_t chain, uint32_t tag, uint16_t seg,
                     uint32_t off)
{
	record_view rv;
	uint16_t iseg;
	uint32_t ioff;
	int rc;

	(void)chain;
	(void)tag;
	if ((rc = segset_record(&v->segs, seg, off, &rv)) < 0)
		return rc; /* the truth holds only records that read */
	uint64_t h = hash_key(record_key(&rv), rv.h.key_len, v->seed);
	rc = find(v, v->ix, record_key(&rv), rv.h.key_len, h, &iseg, &ioff);
	if (rc == CELLAR_ENOTFOUND)
		problem(v, CELLAR_DAMAGE_KEY_MISSING, seq_of(v, seg), off, 0,
		        record_key(&rv), rv.h.key_len,
		        "a live key is not in the index (its record is in segment "
		        "%016llx.seg at offset %llu)",
		        (unsigned long long)seq_of(v, seg), (unsigned long long)off);
	else if (rc == CELLAR_OK && (iseg != seg || ioff != off))
		problem(v, CELLAR_DAMAGE_KEY_MISSING, seq_of(v, seg), off, 0,
		        record_key(&rv), rv.h.key_len,
		        "the index leads a key to segment %016llx.seg offset %llu, "
		        "not to its newest record (%016llx.seg offset %llu)",
		        (unsigned long long)seq_of(v, iseg), (unsigned long long)ioff,
		        (unsigned long long)seq_of(v, seg), (unsigned long long)off);
	else if (rc < 0 && rc != CELLAR_ENOMEM)
		problem(v, CELLAR_DAMAGE_INDEX_TABLE, seq_of(v, seg), off, 0,
		        record_key(&rv), rv.h.key_len, "looking a key up failed: %s",
		        cellar_errmsg());
	record_release(&rv);
	return rc == CELLAR_ENOMEM ? rc : CELLAR_OK;
}

/* Index to log: the slot must hold a valid record, its key's newest. */
static int check_slot(verifier *v, uint64_t chain, uint32_t tag, uint16_t seg,
                      uint32_t off)
{
	uint64_t seq = seq_of(v, seg);
	uint16_t tseg;
	uint32_t toff;
	record_view rv;
	int rc;

	v->r->index_slots++;
	rc = segset_record(&v->segs, seg, off, &rv);
	if (rc == CELLAR_OK)
		rc = record_verify(&rv, seq, off);
	if (rc == CELLAR_ENOMEM || rc == CELLAR_EIO) {
		record_release(&rv);
		return rc;
	}
	if (rc < 0) {
		problem(v, CELLAR_DAMAGE_SLOT_BAD, seq, off, 0, NULL, 0,
		        "an index slot points at no valid record (segment id %u, "
		        "offset %llu): %s", (unsigned)seg, (unsigned long long)off,
		        cellar_errmsg());
		return CELLAR_OK;
	}
	uint64_t h = hash_key(record_key(&rv), rv.h.key_len, v->seed);
	if (rv.h.kind != RECORD_PUT)
		problem(v, CELLAR_DAMAGE_SLOT_BAD, seq, off, 0, record_key(&rv),
		        rv.h.key_len, "an index slot points at a tombstone "
		        "(%016llx.seg offset %llu)", (unsigned long long)seq,
		        (unsigned long long)off);
	else if (index_tag(h) != tag || index_addr(v->ix, tag) != chain)
		problem(v, CELLAR_DAMAGE_SLOT_BAD, seq, off, 0, record_key(&rv),
		        rv.h.key_len, "an index slot's tag or chain does not match "
		        "the key of its record (%016llx.seg offset %llu)",
		        (unsigned long long)seq, (unsigned long long)off);
	else if ((rc = find(v, v->truth, record_key(&rv), rv.h.key_len, h, &tseg,
	                    &toff)) == CELLAR_ENOTFOUND)
		problem(v, CELLAR_DAMAGE_SLOT_STALE, seq, off, 0, record_key(&rv),
		        rv.h.key_len, "the index holds a deleted key "
		        "(%016llx.seg offset %llu)", (unsigned long long)seq,
		        (unsigned long long)off);
	else if (rc == CELLAR_OK && (tseg != seg || toff != off))
		problem(v, CELLAR_DAMAGE_SLOT_STALE, seq, off, 0, record_key(&rv),
		        rv.h.key_len, "an index slot points at an old value "
		        "(%016llx.seg offset %llu; the newest is in %016llx.seg at "
		        "offset %llu)", (unsigned long long)seq,
		        (unsigned long long)off, (unsigned long long)seq_of(v, tseg),
		        (unsigned long long)toff);
	record_release(&rv);
	return rc == CELLAR_ENOMEM ? rc : CELLAR_OK;
}

static int cross_check(verifier *v)
{
	int rc;

	if ((rc = each_slot(v, v->truth, check_key)) < 0)
		return rc;
	rc = each_slot(v, v->ix, check_slot);
	if (rc == CELLAR_ENOMEM || rc == CELLAR_EIO)
		return rc;
	if (rc < 0)
		problem(v, CELLAR_DAMAGE_INDEX_TABLE, 0, 0, 0, NULL, 0,
		        "walking the index failed: %s", cellar_errmsg());
	if (v->ix->count != v->truth->count)
		problem(v, CELLAR_DAMAGE_COUNT, 0, 0, 0, NULL, 0,
		        "the index counts %llu keys, the log holds %llu",
		        (unsigned long long)v->ix->count,
		        (unsigned long long)v->truth->count);
	v->r->index_checked = 1;
	return CELLAR_OK;
}

/* ---- the public calls -------------------------------------------------- */

static int check_verify_options(const cellar_verify_options *o)
{
	if (o->version == 0 || o->version > CELLAR_VERIFY_OPTIONS_VERSION)
		return cellar__error(CELLAR_EINVAL, "verify options version %u unknown",
		                     o->version);
	if (o->fs && o->fs->version != CELLAR_FS_VERSION)
		return cellar__error(CELLAR_EINVAL, "file system version %u unknown",
		                     o->fs->version);
	return CELLAR_OK;
}

/* Verify; *last_seq and *last_size (if not NULL) get the newest segment. */
static int verify_run(const char *dir, const cellar_verify_options *o,
                      cellar_fs *fs, cellar_verify_report *r,
                      uint64_t *last_seq, uint64_t *last_size)
{
	verifier v;
	latch l; /* segset wants one; read-only sets never take it */
	meta m;
	int rc;

	memset(&v, 0, sizeof v);
	v.o = o;
	v.r = r;
	v.fs = fs;
	v.dir = dir;
	latch_init(&l);
	if ((rc = meta_read(fs, dir, &m)) < 0) {
		if (rc == CELLAR_ENOENT)
			rc = cellar__error(rc, "no cellar store in %s", dir);
		return rc;
	}
	v.seed = m.seed;
	if ((rc = segset_open(&v.segs, fs, dir, UINT32_MAX, 1, &l)) < 0)
		return rc;
	v.segs_open = 1;
	r->segments = v.segs.n;
	for (size_t i = 0; i < v.segs.n; i++)
		r->segment_bytes += v.segs.list[i]->size;
	if (last_seq && v.segs.n) {
		*last_seq = segset_last(&v.segs)->seq;
		*last_size = segset_last(&v.segs)->size;
	}
	if ((rc = index_new(&v.truth, v.seed)) < 0 || (rc = load_index(&v)) < 0)
		goto done;
	for (size_t i = 0; i < v.segs.n; i++) {
		if (v.usable && compacted_away(&v, v.segs.list[i])) {
			progress(&v, v.done + v.segs.list[i]->size);
			continue;
		}
		if ((rc = scan_segment(&v, v.segs.list[i])) < 0)
			goto done;
	}
	if (o->on_progress)
		o->on_progress(r->segment_bytes, r->segment_bytes, o->ctx);
	r->keys = v.truth->count;
	if (v.usable)
		rc = cross_check(&v);
done:
	index_free(v.truth);
	index_free(v.ix);
	free(v.ck.segs);
	if (v.segs_open)
		segset_close(&v.segs);
	return rc;
}

int cellar_verify(const char *dir, const cellar_verify_options *opts,
                  cellar_verify_report *out)
{
	cellar_verify_options defaults = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_fs *fs = NULL;
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	memset(out, 0, sizeof *out);
	if (!dir || !*dir)
		return cellar__error(CELLAR_EINVAL, "dir is NULL or empty");
	if (!opts)
		opts = &defaults;
	if ((rc = check_verify_options(opts)) < 0)
		return rc;
	if (!(fs = opts->fs) && (rc = cellar_fs_mmap_new(&fs)) < 0)
		return rc;
	rc = verify_run(dir, opts, fs, out, NULL, NULL);
	if (!opts->fs)
		cellar_fs_free(fs);
	return rc;
}

/* The first index kind in the report, or -1. */
static int index_damage(const cellar_verify_report *r)
{
	for (int k = 0; k < CELLAR_DAMAGE_KINDS; k++)
		if (verify_kind_is_index(k) && r->damage[k].count)
			return k;
	return -1;
}

int cellar_repair(const char *dir, const cellar_verify_options *opts,
                  cellar_repair_result *out)
{
	cellar_verify_options defaults = CELLAR_VERIFY_OPTIONS_INIT, quiet;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_repair_result res;
	cellar_verify_report r;
	cellar_file *lock = NULL;
	cellar_db_stats st;
	cellar_fs *fs = NULL;
	cellar_db *db = NULL;
	char path[4096];
	int rc;

	cellar__error_clear();
	memset(&res, 0, sizeof res);
	res.rebuild_reason = -1;
	if (out)
		*out = res;
	if (!dir || !*dir)
		return cellar__error(CELLAR_EINVAL, "dir is NULL or empty");
	if (!opts)
		opts = &defaults;
	if ((rc = check_verify_options(opts)) < 0)
		return rc;
	quiet = *opts; /* the scan's problems are summed, not told */
	quiet.on_problem = NULL;
	if (!(fs = opts->fs) && (rc = cellar_fs_mmap_new(&fs)) < 0)
		return rc;
	/* No writer may come between the verdict and the rebuild. */
	if ((rc = meta_read(fs, dir, &(meta){ 0 })) < 0) {
		if (rc == CELLAR_ENOENT)
			rc = cellar__error(rc, "no cellar store in %s", dir);
		goto done;
	}
	if ((rc = files_path(path, sizeof path, dir, FILE_LOCK)) < 0)
		goto done;
	if ((rc = fs->lock(fs, path, &lock)) < 0) {
		if (rc == CELLAR_ELOCKED)
			cellar__error(rc, "%s is open for writing elsewhere", dir);
		goto done;
	}
	memset(&r, 0, sizeof r);
	if ((rc = verify_run(dir, &quiet, fs, &r, NULL, NULL)) < 0)
		goto done;
	res.rebuild_reason = index_damage(&r);
	if (res.rebuild_reason >= 0 && r.damage[CELLAR_DAMAGE_INDEX_FILE].count == 0) {
		/* Without an index file the writable open rebuilds it. */
		if ((rc = files_path(path, sizeof path, dir, FILE_INDEX)) < 0 ||
		    (rc = fs->remove(fs, path)) < 0 || (rc = fs->sync_dir(fs, dir)) < 0)
			goto done;
	}
	fs->unlock(fs, lock);
	lock = NULL;
	o.fs = fs;
	if ((rc = cellar_open(&db, dir, &o)) < 0)
		goto done;
	if ((rc = cellar_stats_sized(db, &st, sizeof st)) < 0)
		goto done;
	res.index_rebuilt = st.rebuilt_index;
	res.records_replayed = st.recovered_records;
	res.keys = st.keys;
	res.tail_bytes_cut = st.torn_bytes; /* what the open cut off */
	res.damaged_records = r.damage[CELLAR_DAMAGE_RECORD].count;
	res.damaged_bytes = r.damage[CELLAR_DAMAGE_RECORD].bytes;
	rc = cellar_close(db);
	db = NULL;
done:
	if (db)
		cellar_close(db);
	if (lock)
		fs->unlock(fs, lock);
	if (!opts->fs)
		cellar_fs_free(fs);
	if (out)
		*out = res;
	return rc;
}

/*
 * index_file.c - the index checkpoint file (see index_file.h): header codec,
 * loading, writing, the tail (chunk sums, segment table).  It fills and
 * reads the table's fields but never changes what the table holds; bucket
 * memory goes through index_chunk.h.
 */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "index_chunk.h"
#include "index_file.h"
#include "index_table.h"
#include "pages.h"
#include "sigbus.h"

#define SEG_ENTRY_SIZE 40
/* Segment ids are 16-bit: a checkpoint lists at most this many. */
#define MAX_SEGS 65536

/* Header fields (offsets into the first INDEX_HEADER_SIZE bytes). */
#define H_VERSION 8
#define H_SEED 16
#define H_COUNT 24
#define H_LEVEL 32
#define H_SPLIT 40
#define H_NPRIM 48
#define H_NOVF 56
#define H_FREE 64
#define H_OVF_USED 72
#define H_CKPT_SEQ 80
#define H_CKPT_OFF 88
#define H_NSEGS 96
#define H_CHUNK_SHIFT 104
#define H_TAIL_SUM 112
#define H_SUM (INDEX_HEADER_SIZE - 8)

static const char index_magic[8] = { 'C', 'E', 'L', 'L', 'A', 'R', 'I', 'X' };

uint64_t index_file_size(const cellar_index *ix, size_t nsegs)
{
	return INDEX_HEADER_SIZE + (ix->prim.n + ix->ovf.n) * BUCKET_SIZE +
	       (index_chunks_for(ix->prim.n) + index_chunks_for(ix->ovf.n)) * 8 +
	       (uint64_t)nsegs * SEG_ENTRY_SIZE;
}

int index_warm(cellar_index *ix)
{
	if (ix->map) /* without a mapping there is nothing to fault in */
		pages_touch(ix->map, ix->map_len);
	return CELLAR_OK;
}

void index_file_release(cellar_index *ix)
{
	if (ix->map)
		ix->fs->unmap(ix->fs, ix->file, ix->map, ix->map_len);
	if (ix->file)
		ix->fs->close(ix->fs, ix->file);
	free(ix->loaded);
	ix->map = NULL;
	ix->map_len = 0;
	ix->file = NULL;
	ix->loaded = NULL;
}

/* ---- writing ------------------------------------------------------------ */

/*
 * The checkpoint goes out through one FILE_WRITE_UNIT buffer, so that every
 * write but the last covers one whole aligned unit (files.h): the mapping
 * readers use then gets huge pages.
 */
typedef struct unit_writer {
	cellar_fs *fs;
	cellar_file *f;
	uint64_t pos; /* file offset of buf[0] */
	uint8_t *buf;
	size_t len;
} unit_writer;

static int unit_flush(unit_writer *w)
{
	int rc = w->len ? w->fs->write_at(w->fs, w->f, w->pos, w->buf, w->len)
	                : CELLAR_OK;

	w->pos += w->len;
	w->len = 0;
	return rc;
}

static int unit_put(unit_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t k = FILE_WRITE_UNIT - w->len < n ? FILE_WRITE_UNIT - w->len : n;
		int rc;

		memcpy(w->buf + w->len, b, k);
		w->len += k;
		b += k;
		n -= k;
		if (w->len == FILE_WRITE_UNIT && (rc = unit_flush(w)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* Buckets of chunk c of an array of n buckets. */
static uint32_t chunk_buckets(uint64_t n, size_t c)
{
	uint64_t first = (uint64_t)c << INDEX_CHUNK_SHIFT;

	return (uint32_t)(n - first < INDEX_CHUNK_BUCKETS ? n - first
	                                                  : INDEX_CHUNK_BUCKETS);
}

/* Write an array's buckets, appending their chunk sums to sums.  A chunk
 * that fails its checksum is refused rather than sealed under a new one. */
static int write_array(unit_writer *w, index_array *a, uint8_t *sums)
{
	for (size_t c = 0; c < index_chunks_for(a->n); c++) {
		size_t len = (size_t)chunk_buckets(a->n, c) * BUCKET_SIZE;
		uint8_t *base;
		int rc = index_bucket_checked(a, (uint64_t)c << INDEX_CHUNK_SHIFT,
		                              &base);
		if (rc < 0)
			return rc;
		le64_store(sums + 8 * c, hash_checksum(base, len));
		if ((rc = unit_put(w, base, len)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* What index_write hands files_replace to write the file's content. */
typedef struct ckpt_out {
	cellar_index *ix;
	const index_ckpt *ck;
	uint8_t *hdr, *tail;
	size_t tail_len;
	unit_writer w;
} ckpt_out;

static void encode_tail_segs(uint8_t *se, const index_ckpt *ck)
{
	for (size_t i = 0; i < ck->nsegs; i++, se += SEG_ENTRY_SIZE) {
		le16_store(se, ck->segs[i].id);
		le16_store(se + 2, ck->segs[i].flags);
		le32_store(se + 4, ck->segs[i].kept);
		le64_store(se + 8, ck->segs[i].seq);
		le64_store(se + 16, ck->segs[i].size);
		le64_store(se + 24, ck->segs[i].live);
		le64_store(se + 32, ck->segs[i].dead);
	}
}

static void encode_header(uint8_t *hdr, const cellar_index *ix,
                          const index_ckpt *ck, const uint8_t *tail,
                          size_t tail_len)
{
	memcpy(hdr, index_magic, 8);
	le32_store(hdr + H_VERSION, FORMAT_VERSION);
	le64_store(hdr + H_SEED, ix->seed);
	le64_store(hdr + H_COUNT, ix->count);
	le64_store(hdr + H_LEVEL, ix->level);
	le64_store(hdr + H_SPLIT, ix->split);
	le64_store(hdr + H_NPRIM, ix->prim.n);
	le64_store(hdr + H_NOVF, ix->ovf.n);
	le64_store(hdr + H_FREE, ix->free_head);
	le64_store(hdr + H_OVF_USED, ix->ovf_used);
	le64_store(hdr + H_CKPT_SEQ, ck->seq);
	le64_store(hdr + H_CKPT_OFF, ck->off);
	le64_store(hdr + H_NSEGS, ck->nsegs);
	le64_store(hdr + H_CHUNK_SHIFT, INDEX_CHUNK_SHIFT);
	le64_store(hdr + H_TAIL_SUM, hash_checksum(tail, tail_len));
	le64_store(hdr + H_SUM, hash_checksum(hdr, H_SUM));
}

/* files_write_fn: the whole checkpoint, its header last. */
static int write_ckpt(void *ctx, cellar_fs *fs, cellar_file *f)
{
	ckpt_out *o = ctx;
	size_t cp = index_chunks_for(o->ix->prim.n);
	size_t co = index_chunks_for(o->ix->ovf.n);
	int rc;

	o->w.fs = fs;
	o->w.f = f;
	/* A zero header holds the place of the real one, written last. */
	if ((rc = unit_put(&o->w, o->hdr, INDEX_HEADER_SIZE)) < 0 ||
	    (rc = write_array(&o->w, &o->ix->prim, o->tail)) < 0 ||
	    (rc = write_array(&o->w, &o->ix->ovf, o->tail + 8 * cp)) < 0)
		return rc;
	encode_tail_segs(o->tail + 8 * (cp + co), o->ck);
	if ((rc = unit_put(&o->w, o->tail, o->tail_len)) < 0 ||
	    (rc = unit_flush(&o->w)) < 0)
		return rc;
	encode_header(o->hdr, o->ix, o->ck, o->tail, o->tail_len);
	return fs->write_at(fs, f, 0, o->hdr, INDEX_HEADER_SIZE);
}

int index_write(cellar_index *ix, cellar_fs *fs, const char *dir,
                const index_ckpt *ck)
{
	size_t cp = index_chunks_for(ix->prim.n), co = index_chunks_for(ix->ovf.n);
	ckpt_out o = { ix, ck, NULL, NULL, 0, { 0 } };
	int rc;

	o.tail_len = (cp + co) * 8 + ck->nsegs * SEG_ENTRY_SIZE;
	o.hdr = calloc(1, INDEX_HEADER_SIZE);
	o.tail = calloc(1, o.tail_len);
	o.w.buf = malloc(FILE_WRITE_UNIT);
	if (!o.hdr || !o.tail || !o.w.buf)
		rc = cellar__error(CELLAR_ENOMEM, "index: out of memory");
	else
		rc = files_replace(fs, dir, FILE_INDEX_TMP, FILE_INDEX, write_ckpt,
		                   &o);
	free(o.hdr);
	free(o.tail);
	free(o.w.buf);
	return rc;
}

/* ---- frozen versions ------------------------------------------------------- */

void index_spare_plan(cellar_index *ix, index_spare *sp, uint64_t chunks)
{
	memset(sp, 0, sizeof *sp);
	sp->n[0] = index_array_spare_wanted(&ix->prim, chunks < ix->prim.nchunks
	                                                   ? (size_t)chunks
	                                                   : ix->prim.nchunks);
	sp->n[1] = index_array_spare_wanted(&ix->ovf, chunks < ix->ovf.nchunks
	                                                  ? (size_t)chunks
	                                                  : ix->ovf.nchunks);
}

void index_spare_make(index_spare *sp)
{
	size_t want = sp->n[0] + sp->n[1], got = 0;

	if (!want || !(sp->slabs = malloc(want * sizeof *sp->slabs))) {
		sp->n[0] = sp->n[1] = 0;
		return;
	}
	while (got < want && (sp->slabs[got] = pages_slab_new_faulted()))
		got++;
	if (got < sp->n[0]) { /* out of memory: the primary array's first */
		sp->n[0] = got;
		sp->n[1] = 0;
	} else {
		sp->n[1] = got - sp->n[0];
	}
}

void index_spare_give(cellar_index *ix, index_spare *sp)
{
	if (sp->slabs) {
		index_array_spare_add(&ix->prim, sp->slabs, sp->n[0]);
		index_array_spare_add(&ix->ovf, sp->slabs + sp->n[0], sp->n[1]);
	}
	free(sp->slabs);
	memset(sp, 0, sizeof *sp);
}

int index_freeze(cellar_index *ix, cellar_index **out)
{
	cellar_index *f = malloc(sizeof *f);
	int rc;

	*out = NULL;
	if (!f)
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	*f = *ix; /* geometry and counters; the arrays are copied below */
	f->fs = NULL;
	f->file = NULL;
	f->map = NULL;
	f->map_len = 0;
	f->loaded = NULL;
	if ((rc = index_array_freeze(&ix->prim, &f->prim)) < 0) {
		free(f);
		return rc;
	}
	if ((rc = index_array_freeze(&ix->ovf, &f->ovf)) < 0) {
		index_array_thaw(&ix->prim, &f->prim, NULL);
		free(f);
		return rc;
	}
	*out = f;
	return CELLAR_OK;
}

void index_thaw(cellar_index *ix, cellar_index *frozen, uint64_t *copied)
{
	uint64_t a = 0, b = 0;

	if (!frozen)
		return;
	index_array_thaw(&ix->prim, &frozen->prim, &a);
	index_array_thaw(&ix->ovf, &frozen->ovf, &b);
	free(frozen);
	if (copied)
		*copied = a + b;
}

uint64_t index_held_bytes(const cellar_index *ix)
{
	return index_array_held_bytes(&ix->prim) + index_array_held_bytes(&ix->ovf);
}

uint64_t index_frozen_copies(const cellar_index *ix)
{
	return ix->prim.frozen_copies + ix->ovf.frozen_copies;
}

/* ---- loading ------------------------------------------------------------ */

/* Open <dir>/index and read its header; *size gets the file's size. */
static int read_header(cellar_index *ix, const char *dir,
                       uint8_t hdr[INDEX_HEADER_SIZE], uint64_t *size)
{
	char path[FILE_PATH_MAX];
	cellar_fs *fs = ix->fs;
	size_t got;
	int rc;

	if ((rc = files_path(path, sizeof path, dir, FILE_INDEX)) < 0 ||
	    (rc = fs->open(fs, path, CELLAR_FS_READ, &ix->file)) < 0 ||
	    (rc = fs->size(fs, ix->file, size)) < 0)
		return rc;
	if (*size < INDEX_HEADER_SIZE)
		return cellar__error(CELLAR_ECORRUPT, "index: file too short");
	if ((rc = fs->read_at(fs, ix->file, 0, hdr, INDEX_HEADER_SIZE, &got)) < 0)
		return rc;
	if (got != INDEX_HEADER_SIZE || memcmp(hdr, index_magic, 8) != 0)
		return cellar__error(CELLAR_ECORRUPT, "index: not a cellar index");
	if (le64_load(hdr + H_SUM) != hash_checksum(hdr, H_SUM))
		return cellar__error(CELLAR_ECORRUPT, "index: header checksum");
	if (le32_load(hdr + H_VERSION) != FORMAT_VERSION)
		return le32_load(hdr + H_VERSION) > FORMAT_VERSION
		           ? cellar__error(CELLAR_EVERSION, "index: newer format")
		           : cellar__error(CELLAR_ECORRUPT, "index: bad version");
	return CELLAR_OK;
}

/*
 * Decode a sealed header into the table's counters, refusing fields that
 * contradict each other or the file's size; *nsegs gets the segment count.
 */
static int decode_header(cellar_index *ix, const uint8_t *hdr, uint64_t size,
                         uint64_t *nsegs)
{
	uint64_t level = le64_load(hdr + H_LEVEL), split = le64_load(hdr + H_SPLIT);
	uint64_t n = le64_load(hdr + H_NPRIM), m = le64_load(hdr + H_NOVF);
	uint64_t free_head = le64_load(hdr + H_FREE);
	uint64_t count = le64_load(hdr + H_COUNT);
	uint64_t ovf_used = le64_load(hdr + H_OVF_USED);

	*nsegs = le64_load(hdr + H_NSEGS);
	if (level > INDEX_MAX_LEVEL || split >= (1ull << level) ||
	    n != (1ull << level) + split || m < 1 || m > UINT32_MAX ||
	    free_head >= m || ovf_used >= m ||
	    le64_load(hdr + H_CHUNK_SHIFT) != INDEX_CHUNK_SHIFT ||
	    *nsegs > MAX_SEGS || count > (n + m) * BUCKET_SLOTS)
		return cellar__error(CELLAR_ECORRUPT, "index: impossible header");
	ix->seed = le64_load(hdr + H_SEED);
	ix->count = count;
	ix->level = (uint32_t)level;
	ix->split = split;
	ix->free_head = (uint32_t)free_head;
	ix->ovf_used = ovf_used;
	ix->prim.n = n;
	ix->ovf.n = m;
	if (index_file_size(ix, (size_t)*nsegs) != size)
		return cellar__error(CELLAR_ECORRUPT, "index: file size %llu does "
		                     "not match its header", (unsigned long long)size);
	return CELLAR_OK;
}

/* The file's bytes in memory: mapped if the fs maps, else read in whole. */
static int map_or_read(cellar_index *ix, uint64_t size, const uint8_t **data)
{
	cellar_fs *fs = ix->fs;
	size_t got;
	int rc;

	*data = NULL;
	if (fs->map) {
		if ((rc = fs->map(fs, ix->file, size, CELLAR_FS_MAP_HOT,
		                  &ix->map)) < 0)
			return rc;
		ix->map_len = size;
		*data = ix->map;
		return CELLAR_OK;
	}
	if (!(ix->loaded = aligned_alloc(64, (size_t)((size + 63) & ~63ull))))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	if ((rc = fs->read_at(fs, ix->file, 0, ix->loaded, (size_t)size,
	                      &got)) < 0)
		return rc;
	if (got != size)
		return cellar__error(CELLAR_ECORRUPT, "index: short read");
	*data = ix->loaded;
	return CELLAR_OK;
}

/* Point array a at its n buckets at data + pos, chunk c summing to sums[c]. */
static int load_array(index_array *a, const uint8_t *data, uint64_t pos,
                      uint64_t n, const uint8_t *sums)
{
	size_t nc = index_chunks_for(n);
	int rc = index_array_alloc_chunks(a, nc);

	if (rc < 0)
		return rc;
	for (size_t c = 0; c < nc; c++) {
		uint64_t first = (uint64_t)c << INDEX_CHUNK_SHIFT;
		index_chunk_share(a, c, data + pos + first * BUCKET_SIZE,
		                  chunk_buckets(n, c), le64_load(sums + 8 * c));
	}
	a->n = n;
	return CELLAR_OK;
}

/* The segment table at se into ck (nsegs entries). */
static int decode_segs(const uint8_t *se, uint64_t nsegs, index_ckpt *ck)
{
	ck->nsegs = (size_t)nsegs;
	if (nsegs && !(ck->segs = calloc((size_t)nsegs, sizeof *ck->segs)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	for (size_t i = 0; i < nsegs; i++, se += SEG_ENTRY_SIZE) {
		ck->segs[i].id = le16_load(se);
		ck->segs[i].flags = le16_load(se + 2);
		ck->segs[i].kept = le32_load(se + 4);
		ck->segs[i].seq = le64_load(se + 8);
		ck->segs[i].size = le64_load(se + 16);
		ck->segs[i].live = le64_load(se + 24);
		ck->segs[i].dead = le64_load(se + 32);
	}
	return CELLAR_OK;
}

/*
 * The tail after the buckets of a file of size bytes in data: check it,
 * point the arrays at their buckets and decode the segment table.
 */
static int load_tail(cellar_index *ix, const uint8_t *data, uint64_t size,
                     const uint8_t *hdr, uint64_t nsegs, index_ckpt *ck)
{
	uint64_t n = ix->prim.n, m = ix->ovf.n;
	const uint8_t *sums = data + INDEX_HEADER_SIZE + (n + m) * BUCKET_SIZE;
	int rc;

	if (hash_checksum(sums, (size_t)(data + size - sums)) !=
	    le64_load(hdr + H_TAIL_SUM))
		return cellar__error(CELLAR_ECORRUPT, "index: checksum of the chunk "
		                     "sums and segment table");
	if ((rc = load_array(&ix->prim, data, INDEX_HEADER_SIZE, n, sums)) < 0 ||
	    (rc = load_array(&ix->ovf, data, INDEX_HEADER_SIZE + n * BUCKET_SIZE,
	                     m, sums + 8 * index_chunks_for(n))) < 0)
		return rc;
	ck->seq = le64_load(hdr + H_CKPT_SEQ);
	ck->off = le64_load(hdr + H_CKPT_OFF);
	return decode_segs(sums + 8 * (index_chunks_for(n) + index_chunks_for(m)),
	                   nsegs, ck);
}

int index_load(cellar_index **out, cellar_fs *fs, const char *dir,
               index_ckpt *ck)
{
	uint8_t hdr[INDEX_HEADER_SIZE];
	cellar_index *ix;
	const uint8_t *data;
	uint64_t size, nsegs;
	int rc;

	*out = NULL;
	memset(ck, 0, sizeof *ck);
	if (!(ix = calloc(1, sizeof *ix)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	ix->fs = fs;
	if ((rc = read_header(ix, dir, hdr, &size)) < 0 ||
	    (rc = decode_header(ix, hdr, size, &nsegs)) < 0 ||
	    (rc = map_or_read(ix, size, &data)) < 0 ||
	    (rc = load_tail(ix, data, size, hdr, nsegs, ck)) < 0)
		goto fail;
	ix->map_nsegs = ix->map ? nsegs : 0;
	*out = ix;
	return CELLAR_OK;
fail:
	free(ck->segs);
	ck->segs = NULL;
	/* What index_free would do, without calling up into the table. */
	index_array_free(&ix->prim);
	index_array_free(&ix->ovf);
	index_file_release(ix);
	free(ix);
	return rc;
}

/* ---- for writers that stream their own buckets (the builder) ------------ */

void index_file_encode_segs(uint8_t *out, const index_ckpt *ck)
{
	encode_tail_segs(out, ck);
}

void index_file_encode_header(uint8_t hdr[INDEX_HEADER_SIZE],
                              const index_file_shape *sh,
                              const index_ckpt *ck, const uint8_t *tail,
                              size_t tail_len)
{
	cellar_index ix;

	memset(&ix, 0, sizeof ix);
	ix.seed = sh->seed;
	ix.count = sh->count;
	ix.level = sh->level;
	ix.split = sh->split;
	ix.prim.n = sh->nprim;
	ix.ovf.n = sh->novf;
	ix.free_head = (uint32_t)sh->free_head;
	ix.ovf_used = sh->ovf_used;
	memset(hdr, 0, INDEX_HEADER_SIZE);
	encode_header(hdr, &ix, ck, tail, tail_len);
}

int index_map_faulted(const cellar_index *ix)
{
	return ix->map && fs_sigbus_faulted(ix->map);
}

int index_map_cut(const cellar_index *ix)
{
	if (!ix->map)
		return 0;
	if (ix->map_nsegs) {
		/* The last segment entry's sequence number, never 0 in a whole
		 * file.  Past a cut it is zeros: the kernel zeroes the rest of
		 * the page the file now ends in, or, on a later page, the
		 * SIGBUS guard maps zeros there as this load faults. */
		const volatile uint64_t *seq = (const volatile uint64_t *)(
		    (const uint8_t *)ix->map + ix->map_len - SEG_ENTRY_SIZE + 8);
		if (*seq == 0)
			return 1;
	}
	return fs_sigbus_faulted(ix->map);
}

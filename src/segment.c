/* segment.c - segment files, the append buffer and record access (see segment.h). */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "segment.h"

static const char seg_magic[8] = { 'C', 'E', 'L', 'L', 'A', 'R', 'S', 'G' };

static int segment_path(const segset *s, uint64_t seq, char *out, size_t cap)
{
	return files_segment_path(out, cap, s->dir, seq);
}

static void header_encode(uint8_t out[SEG_HEADER_SIZE], uint16_t id,
                          uint64_t seq)
{
	memset(out, 0, SEG_HEADER_SIZE);
	memcpy(out, seg_magic, 8);
	le32_store(out + 8, FORMAT_VERSION);
	le16_store(out + 12, id);
	le64_store(out + 16, seq);
	le32_store(out + 28, (uint32_t)hash_checksum(out, 28));
}

static int header_decode(const uint8_t *p, uint64_t seq, uint16_t *id)
{
	if (memcmp(p, seg_magic, 8) != 0)
		return cellar__error(CELLAR_ECORRUPT, "segment %016llx: not a segment",
		                     (unsigned long long)seq);
	if (le32_load(p + 28) != (uint32_t)hash_checksum(p, 28))
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx: header checksum",
		                     (unsigned long long)seq);
	if (le32_load(p + 8) > FORMAT_VERSION)
		return cellar__error(CELLAR_EVERSION,
		                     "segment %016llx: format version %u",
		                     (unsigned long long)seq, (unsigned)le32_load(p + 8));
	if (le32_load(p + 8) == 0 || le64_load(p + 16) != seq)
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx: header does not match its name",
		                     (unsigned long long)seq);
	*id = le16_load(p + 12);
	return CELLAR_OK;
}

static void segment_free(segset *s, segment *g)
{
	if (!g)
		return;
	if (g->map)
		s->fs->unmap(s->fs, g->file, g->map, g->map_len);
	s->fs->close(s->fs, g->file);
	free(g);
}

/* Map g for at least len bytes (exclusive latch or no readers yet). */
static void segment_map(segset *s, segment *g, uint64_t len)
{
	const void *p;

	if (!s->fs->map || (g->map && g->map_len >= len))
		return;
	if (g->map)
		s->fs->unmap(s->fs, g->file, g->map, g->map_len);
	g->map = NULL;
	g->map_len = 0;
	/* Without a mapping the segment is read with read_at: slower, correct. */
	if (s->fs->map(s->fs, g->file, len, s->map_hint, &p) == CELLAR_OK) {
		g->map = p;
		g->map_len = len;
	}
}

static int list_add(segset *s, segment *g)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		segment **l = realloc(s->list, cap * sizeof *l);
		if (!l)
			return cellar__error(CELLAR_ENOMEM, "segments: out of memory");
		s->list = l;
		s->cap = cap;
	}
	s->list[s->n++] = g;
	s->by_id[g->id] = g;
	return CELLAR_OK;
}

struct seq_list {
	uint64_t *v;
	size_t n, cap;
};

static int collect_seq(const char *name, void *ctx)
{
	struct seq_list *l = ctx;
	uint64_t seq = 0;
	int is_seg;

	files_parse_segment_name(name, &is_seg, &seq);
	if (!is_seg)
		return CELLAR_OK;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		uint64_t *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return CELLAR_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = seq;
	return CELLAR_OK;
}

static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The sequence numbers of dir's segment files, in order. */
static int list_seqs(cellar_fs *fs, const char *dir, struct seq_list *seqs)
{
	int rc = fs->list(fs, dir, collect_seq, seqs);

	if (rc < 0) {
		if (rc == CELLAR_ENOMEM)
			cellar__error(rc, "segments: out of memory");
		return rc;
	}
	if (seqs->n > 1)
		qsort(seqs->v, seqs->n, sizeof *seqs->v, cmp_seq);
	return CELLAR_OK;
}

/*
 * A newest file too short for its header was created just before a crash,
 * before any record: drop it first (a writer removes it), so that the
 * segment before it is the newest and is opened for writing.
 */
static int drop_short_newest(segset *s, struct seq_list *seqs)
{
	char path[FILE_PATH_MAX];
	int rc;

	while (seqs->n) {
		uint64_t size;
		cellar_file *f = NULL;
		if ((rc = segment_path(s, seqs->v[seqs->n - 1], path, sizeof path)) < 0 ||
		    (rc = s->fs->open(s->fs, path, CELLAR_FS_READ, &f)) < 0)
			return rc;
		rc = s->fs->size(s->fs, f, &size);
		s->fs->close(s->fs, f);
		if (rc < 0)
			return rc;
		if (size >= SEG_HEADER_SIZE)
			break;
		seqs->n--;
		if (!s->readonly &&
		    (rc = files_remove_segments(s->fs, s->dir, &seqs->v[seqs->n], 1)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/*
 * Open segment seq, check its header and map it (not yet in the set).  A
 * file still shorter than its header is damage, unless young (a file being
 * created, which a read-only handle looks at later): then *out = NULL.
 */
static int open_file(segset *s, uint64_t seq, int last, int young,
                     segment **out)
{
	char path[FILE_PATH_MAX];
	uint8_t hdr[SEG_HEADER_SIZE];
	segment *g;
	size_t got;
	int rc;

	*out = NULL;
	if ((rc = segment_path(s, seq, path, sizeof path)) < 0)
		return rc;
	if (!(g = calloc(1, sizeof *g)))
		return cellar__error(CELLAR_ENOMEM, "segments: out of memory");
	g->seq = seq;
	rc = s->fs->open(s->fs, path,
	                 last && !s->readonly ? CELLAR_FS_WRITE : CELLAR_FS_READ,
	                 &g->file);
	if (rc < 0 || (rc = s->fs->size(s->fs, g->file, &g->size)) < 0)
		goto fail;
	if (g->size < SEG_HEADER_SIZE && young) {
		segment_free(s, g);
		return CELLAR_OK;
	}
	if (g->size < SEG_HEADER_SIZE) {
		rc = cellar__error(CELLAR_ECORRUPT,
		                   "segment %016llx: shorter than its header",
		                   (unsigned long long)g->seq);
		goto fail;
	}
	if ((rc = s->fs->read_at(s->fs, g->file, 0, hdr, sizeof hdr, &got)) < 0 ||
	    (rc = header_decode(hdr, g->seq, &g->id)) < 0)
		goto fail;
	g->flushed = g->wend = g->synced = g->size;
	/* The newest grows: a writer appends to it, and a read-only handle
	 * follows it at a refresh.  Reserve room so that neither remaps. */
	segment_map(s, g, last && g->size < s->max_size ? s->max_size : g->size);
	*out = g;
	return CELLAR_OK;
fail:
	segment_free(s, g);
	return rc;
}

static int open_one(segset *s, uint64_t seq, int last)
{
	segment *g;
	int rc;

	if ((rc = open_file(s, seq, last, 0, &g)) < 0)
		return rc;
	if (s->by_id[g->id]) {
		rc = cellar__error(CELLAR_ECORRUPT,
		                   "segments %016llx and %016llx share id %u",
		                   (unsigned long long)s->by_id[g->id]->seq,
		                   (unsigned long long)g->seq, (unsigned)g->id);
		segment_free(s, g);
		return rc;
	}
	if ((rc = list_add(s, g)) < 0)
		segment_free(s, g);
	return rc;
}

int segset_open(segset *s, cellar_fs *fs, const char *dir, uint64_t max_size,
                int readonly, latch *l)
{
	return segset_open_hinted(s, fs, dir, max_size, readonly, l,
	                          CELLAR_FS_MAP_RANDOM);
}

int segset_open_hinted(segset *s, cellar_fs *fs, const char *dir,
                       uint64_t max_size, int readonly, latch *l,
                       int map_hint)
{
	struct seq_list seqs = { 0 };
	int rc;

	memset(s, 0, sizeof *s);
	s->map_hint = map_hint;
	s->fs = fs;
	s->dir = dir;
	s->latch = l;
	s->max_size = max_size;
	s->readonly = readonly;
	if (!(s->by_id = calloc(SEG_MAX_SEGMENTS, sizeof *s->by_id)) ||
	    !(s->retired = calloc(SEG_MAX_SEGMENTS, 1)) ||
	    (!readonly && !(s->buf = malloc(SEG_BUFFER_CAP)))) {
		rc = cellar__error(CELLAR_ENOMEM, "segments: out of memory");
		goto fail;
	}
	if ((rc = list_seqs(fs, dir, &seqs)) < 0 ||
	    (rc = drop_short_newest(s, &seqs)) < 0)
		goto fail;
	for (size_t i = 0; i < seqs.n; i++)
		if ((rc = open_one(s, seqs.v[i], i + 1 == seqs.n)) < 0)
			goto fail;
	free(seqs.v);
	return CELLAR_OK;
fail:
	free(seqs.v);
	segset_close(s);
	return rc;
}

void segset_close(segset *s)
{
	for (size_t i = 0; i < s->n; i++)
		segment_free(s, s->list[i]);
	free(s->list);
	free(s->by_id);
	free(s->retired);
	free(s->buf);
	free(s->wbuf);
	free(s->spare);
	s->wbuf = s->spare = NULL;
	s->list = NULL;
	s->by_id = NULL;
	s->retired = NULL;
	s->buf = NULL;
	s->n = s->cap = 0;
}

/* ---- reading ----------------------------------------------------------- */

int segment_record(const segset *s, const segment *g, uint64_t off,
                   uint64_t end, record_view *v)
{
	uint8_t hdr[512];
	const uint8_t *base;
	uint64_t avail;
	size_t got;
	int rc;

	v->owned = NULL;
	segset_locate(s, g, off, end, &base, &avail);
	if (avail == 0)
		return cellar__error(CELLAR_ECORRUPT,
		                     "segment %016llx: offset %llu out of range",
		                     (unsigned long long)g->seq,
		                     (unsigned long long)off);
	if (base) {
		rc = record_decode_header(base, avail < SIZE_MAX ? (size_t)avail : SIZE_MAX,
		                          avail, &v->h);
		v->p = base;
	} else {
		/* One read usually brings the whole record along with its header. */
		size_t want = avail < sizeof hdr ? (size_t)avail : sizeof hdr;
		if ((rc = s->fs->read_at(s->fs, g->file, off, hdr, want, &got)) < 0)
			return rc;
		rc = record_decode_header(hdr, got, avail, &v->h);
		if (rc == CELLAR_OK || rc == CELLAR_EVERSION) {
			int rc2 = CELLAR_OK;
			if (!(v->owned = malloc((size_t)v->h.total)))
				return cellar__error(CELLAR_ENOMEM, "out of memory");
			if (v->h.total <= got) {
				memcpy(v->owned, hdr, (size_t)v->h.total);
			} else {
				memcpy(v->owned, hdr, got);
				size_t more;
				rc2 = s->fs->read_at(s->fs, g->file, off + got, v->owned + got,
				                     (size_t)v->h.total - got, &more);
				if (rc2 == CELLAR_OK && got + more != v->h.total)
					rc2 = cellar__error(CELLAR_ECORRUPT,
					                    "segment %016llx: short read",
					                    (unsigned long long)g->seq);
			}
			if (rc2 < 0) {
				record_release(v);
				return rc2;
			}
			v->p = v->owned;
		}
	}
	if (rc == CELLAR_EVERSION &&
	    record_checksum(v->p, v->h.total) != v->h.checksum)
		rc = CELLAR_ECORRUPT;
	if (rc < 0) {
		record_release(v);
		return rc == CELLAR_EVERSION
		           ? cellar__error(rc, "segment %016llx: record of unknown "
		                           "kind at offset %llu",
		                           (unsigned long long)g->seq,
		                           (unsigned long long)off)
		           : cellar__error(rc, "segment %016llx: damaged record at "
		                           "offset %llu", (unsigned long long)g->seq,
		                           (unsigned long long)off);
	}
	return CELLAR_OK;
}

int segset_record(const segset *s, uint16_t id, uint32_t off, record_view *v)
{
	const segment *g = s->by_id[id];

	if (!g) {
		v->owned = NULL;
		return cellar__error(CELLAR_ECORRUPT,
		                     "index names segment id %u, which does not exist",
		                     (unsigned)id);
	}
	if (off < SEG_HEADER_SIZE || off >= g->size) {
		v->owned = NULL;
		return cellar__error(CELLAR_ECORRUPT,
		                     "index points past the end of segment %016llx",
		                     (unsigned long long)g->seq);
	}
	return segment_record(s, g, off, g->size, v);
}

int segset_match_key(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	seg_key *k = ctx;
	record_view v;
	int rc = segset_record(k->s, seg, off, &v);

	if (rc < 0)
		return rc;
	*hit = v.h.key_len == k->key_len &&
	       memcmp(record_key(&v), k->key, k->key_len) == 0;
	if (*hit) {
		k->found_total = v.h.total;
		k->found_expire = v.h.expire;
	}
	record_release(&v);
	return CELLAR_OK;
}

int segment_batch_check(const segset *s, const segment *g, uint64_t off,
                        uint64_t end, const record_view *v, record_batch *b,
                        int *state)
{
	uint64_t body = off + v->h.total, avail;
	const uint8_t *p;
	uint8_t *copy = NULL;
	size_t got;
	int rc;

	record_batch_info(v->p, &v->h, b);
	*state = SEG_BATCH_SHORT;
	if (body > end || b->body_len > end - body)
		return CELLAR_OK;
	segset_locate(s, g, body, body + b->body_len, &p, &avail);
	if (!p || avail < b->body_len) {
		/* Not in one mapped piece: read it. */
		if (!(copy = malloc(b->body_len ? (size_t)b->body_len : 1)))
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		rc = s->fs->read_at(s->fs, g->file, body, copy, (size_t)b->body_len,
		                    &got);
		if (rc < 0 || got < b->body_len) {
			free(copy); /* a short read: the file ends in the body */
			return rc;
		}
		p = copy;
	}
	*state = record_batch_body_ok(b, p) ? SEG_BATCH_WHOLE : SEG_BATCH_BAD;
	free(copy);
	return CELLAR_OK;
}

/* Is there a valid record at p (avail bytes)? */
static int valid_at(const uint8_t *p, uint64_t avail)
{
	record_header h;

	return record_decode_header(p, (size_t)avail, avail, &h) == CELLAR_OK &&
	       record_checksum(p, h.total) == h.checksum;
}

int segment_resync(const segset *s, const segment *g, uint64_t from,
                   uint64_t end, uint64_t *next)
{
	const uint8_t *base;
	uint8_t *copy = NULL;
	uint64_t avail;
	size_t got;
	int rc;

	/* Records never straddle the file/buffer boundary: scan one side. */
	segset_locate(s, g, from, end, &base, &avail);
	end = from + avail;
	*next = end;
	if (from + 1 >= end)
		return CELLAR_OK;
	if (!base) {
		/* No mapping: scan a copy of the rest of the segment. */
		if (!(copy = malloc((size_t)(end - from))))
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		if ((rc = s->fs->read_at(s->fs, g->file, from, copy,
		                         (size_t)(end - from), &got)) < 0) {
			free(copy);
			return rc;
		}
		end = from + got;
		base = copy;
	}
	for (uint64_t at = from + 1; at + 7 <= end; at++) {
		if (valid_at(base + (at - from), end - at)) {
			*next = at;
			break;
		}
	}
	free(copy);
	return CELLAR_OK;
}

/* Read [0, len) of one segment's file once; *buf is the read_at buffer,
 * made on first use. */
static int warm_one(segset *s, const segment *g, uint64_t len, uint8_t **buf)
{
	const void *p;
	size_t got;
	int rc = CELLAR_OK;

	if (len == 0)
		return CELLAR_OK; /* a new file whose first write is to come */
	if (s->fs->map) {
		if ((rc = s->fs->map(s->fs, g->file, len, CELLAR_FS_MAP_HOT, &p)) < 0)
			return rc;
		pages_touch(p, len);
		return s->fs->unmap(s->fs, g->file, p, len);
	}
	if (!*buf && !(*buf = malloc(FILE_WRITE_UNIT)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (uint64_t off = 0; off < len && rc == CELLAR_OK; off += got) {
		uint64_t want = len - off < FILE_WRITE_UNIT ? len - off
		                                            : FILE_WRITE_UNIT;
		rc = s->fs->read_at(s->fs, g->file, off, *buf, (size_t)want, &got);
		if (rc == CELLAR_OK && got == 0)
			break; /* shorter than recorded: nothing more to read */
	}
	return rc;
}

int segset_warm(segset *s)
{
	uint8_t *buf = NULL;
	int rc = CELLAR_OK;

	for (size_t i = 0; i < s->n && rc == CELLAR_OK; i++)
		rc = warm_one(s, s->list[i], s->list[i]->wend, &buf);
	free(buf);
	return rc;
}

int segset_warm_list(segset *s, segment *const *list, const uint64_t *lens,
                     size_t n)
{
	uint8_t *buf = NULL;
	int rc = CELLAR_OK;

	for (size_t i = 0; i < n && rc == CELLAR_OK; i++)
		rc = warm_one(s, list[i], lens[i], &buf);
	free(buf);
	return rc;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * A write the file system refuses for lack of space may have landed in
 * part; the writer goes on all the same (writer.c's note_write_failure).
 * A flush of the append buffer leaves what landed: those bytes are records
 * already acknowledged, and the next flush writes the very same bytes at
 * the same offsets (a read-only handle in another process may even have
 * replayed the whole records among them, so they must not go away).  A
 * record written in place, larger than the buffer, is refused whole: its
 * part is cut off again here (the file back to cut, its known end), so
 * that the records written next are not followed by its remains, and its
 * space is free again.
 */
static int write_in_place(segset *s, cellar_file *f, uint64_t off,
                          const void *p, size_t len, uint64_t cut)
{
	int rc = s->fs->write_at(s->fs, f, off, p, len);

	if (rc == CELLAR_ENOSPC)
		(void)s->fs->truncate(s->fs, f, cut);
	return rc;
}

/* The file offset of the append buffer's first byte (newest segment). */
static uint64_t buf_base(const segset *s, const segment *g)
{
	return s->wbuf ? s->wbuf_keep : g->flushed;
}

/* The end of the newest segment's data: the file's part, then the buffers. */
static uint64_t seg_end(const segset *s, const segment *g)
{
	return buf_base(s, g) + s->buf_len;
}

/*
 * Writer: before the newest file's first byte, the segment before it is
 * durable (roll-over left its fsync here, see roll): a crash then never
 * keeps records of the newest segment without the whole of the one before.
 */
static int seal_sync(segset *s)
{
	segment *o = s->seal;
	int rc;

	if (!o)
		return CELLAR_OK;
	if (o->synced < o->wend) {
		if ((rc = s->fs->sync(s->fs, o->file)) < 0) {
			s->sync_failed = rc;
			return rc;
		}
		o->synced = o->wend;
	}
	s->seal = NULL;
	return CELLAR_OK;
}

/* The buffer set aside is in the file: readers read those bytes there now. */
static void wbuf_release(segset *s, segment *g)
{
	latch_write_lock(s->latch);
	if (g->wend < s->wbuf_cut)
		g->wend = s->wbuf_cut;
	g->flushed = s->wbuf_keep;
	if (s->wbuf_synced && g->synced < s->wbuf_cut)
		g->synced = s->wbuf_cut;
	if (s->wbuf_synced && s->seal) {
		s->seal->synced = s->seal->wend; /* segset_flush_run synced it */
		s->seal = NULL;
	}
	s->spare = s->wbuf;
	s->wbuf = NULL;
	latch_write_unlock(s->latch);
	s->wbuf_done = s->wbuf_synced = 0;
}

/*
 * Writer: no buffer set aside any more.  Wait for a write of it that
 * another thread runs without the mutex, write it here if that failed or
 * no one has, and let it go.
 */
static int wbuf_finish(segset *s)
{
	segment *g = segset_last(s);
	unsigned spins = 0;
	int rc;

	if (!s->wbuf)
		return CELLAR_OK;
	while (atomic_load_explicit(&s->wbuf_busy, memory_order_acquire))
		latch_relax(&spins);
	if (!s->wbuf_done && s->wbuf_cut > g->wend &&
	    ((rc = seal_sync(s)) < 0 ||
	     (rc = s->fs->write_at(s->fs, g->file, g->wend,
	                          s->wbuf + (g->wend - g->flushed),
	                          (size_t)(s->wbuf_cut - g->wend))) < 0))
		return rc;
	wbuf_release(s, g);
	return CELLAR_OK;
}

/*
 * Writer, no buffer set aside: set the append buffer aside, to be written
 * up to file offset cut (> wend), and go on in the spare one with the
 * bytes from keep on (a record starts there; flushed <= keep <= cut).
 * 0 when no spare buffer can be had (nothing done).
 */
static int wbuf_swap(segset *s, segment *g, uint64_t cut, uint64_t keep)
{
	size_t rest = (size_t)(seg_end(s, g) - keep);

	if (!s->spare && !(s->spare = malloc(SEG_BUFFER_CAP)))
		return 0;
	s->staged = 0;
	memcpy(s->spare, s->buf + (keep - g->flushed), rest);
	latch_write_lock(s->latch);
	s->wbuf = s->buf;
	s->wbuf_keep = keep;
	s->wbuf_cut = cut;
	s->buf = s->spare;
	s->buf_len = rest;
	s->spare = NULL;
	latch_write_unlock(s->latch);
	s->wbuf_done = 0;
	return 1;
}

int segset_flush_begin(segset *s, int all, segset_flush_job *job,
                       int *claimed)
{
	segment *g = segset_last(s);

	*claimed = 0;
	if (!g || atomic_load_explicit(&s->wbuf_busy, memory_order_acquire))
		return CELLAR_OK; /* another thread is writing it */
	if (s->wbuf && s->wbuf_done)
		wbuf_release(s, g);
	if (!s->wbuf && all && s->buf_len && seg_end(s, g) > g->wend)
		(void)wbuf_swap(s, g, seg_end(s, g), seg_end(s, g));
	if (!s->wbuf)
		return CELLAR_OK;
	job->seal = s->seal && s->seal->synced < s->seal->wend ? s->seal->file
	                                                       : NULL;
	job->file = g->file;
	job->off = g->wend;
	job->p = s->wbuf + (g->wend - g->flushed);
	job->len = (size_t)(s->wbuf_cut - g->wend);
	job->nosync = 0;
	atomic_store_explicit(&s->wbuf_busy, 1, memory_order_relaxed);
	*claimed = 1;
	return CELLAR_OK;
}

int segset_flush_run(segset *s, const segset_flush_job *job)
{
	int rc = job->seal && !job->nosync ? s->fs->sync(s->fs, job->seal)
	                                   : CELLAR_OK;

	if (rc < 0)
		s->sync_failed = rc;
	else
		rc = s->fs->write_at(s->fs, job->file, job->off, job->p, job->len);

	/* Durable before anything later reaches the file (a crash then loses
	 * a tail, never a piece in the middle).  A failed fsync is kept as
	 * a failed one under the mutex is.  (nosync: the seal stays for the
	 * writer's next flush to fsync, as it would without this call.) */
	s->wbuf_synced = 0;
	if (rc == CELLAR_OK && !job->nosync &&
	    (rc = s->fs->sync(s->fs, job->file)) < 0)
		s->sync_failed = rc;
	s->wbuf_synced = rc == CELLAR_OK && !job->nosync;
	s->wbuf_done = rc == CELLAR_OK; /* else written again under the mutex */
	atomic_store_explicit(&s->wbuf_busy, 0, memory_order_release);
	return rc;
}

int segset_flush_end(segset *s, int rc)
{
	if (s->wbuf && s->wbuf_done &&
	    !atomic_load_explicit(&s->wbuf_busy, memory_order_acquire))
		wbuf_release(s, segset_last(s));
	return rc;
}

/*
 * Write the buffer to the file up to file offset to, then drop from the
 * buffer the bytes before file offset keep (flushed <= keep <= to, and keep
 * is where a record starts).  Bytes [keep, to) are then in both places;
 * readers take every record whole from one of them: the file below flushed,
 * the buffer from flushed on.  Readers see the drop and the new flushed
 * mark together, under the exclusive latch.
 */
static int flush_to(segset *s, segment *g, uint64_t to, uint64_t keep)
{
	size_t drop;
	int rc;

	s->staged = 0;
	if ((rc = wbuf_finish(s)) < 0)
		return rc;
	drop = (size_t)(keep - g->flushed);
	/* wend may be past to: a record written in place and not yet
	 * published (a sync in between flushes an empty buffer). */
	if (to > g->wend) {
		if ((rc = seal_sync(s)) < 0 ||
		    (rc = s->fs->write_at(s->fs, g->file, g->wend,
		                          s->buf + (g->wend - g->flushed),
		                          (size_t)(to - g->wend))) < 0)
			return rc;
		g->wend = to;
	}
	if (drop == 0)
		return CELLAR_OK;
	latch_write_lock(s->latch);
	g->flushed = keep;
	s->buf_len -= drop;
	if (s->buf_len)
		memmove(s->buf, s->buf + drop, s->buf_len);
	latch_write_unlock(s->latch);
	return CELLAR_OK;
}

int segset_flush(segset *s)
{
	segment *g = segset_last(s);

	s->staged = 0;
	return g ? flush_to(s, g, seg_end(s, g), seg_end(s, g)) : CELLAR_OK;
}

/*
 * Make room in a full buffer.  Write it only up to the last FILE_WRITE_UNIT
 * boundary, so that once the file's end is on a boundary every later write
 * covers exactly one whole unit.  The records from the one across the
 * boundary on stay in the buffer (about SEG_BUFFER_SIZE - FILE_WRITE_UNIT
 * bytes at most); the next write starts at the boundary.  The full buffer
 * is set aside rather than written here (see segset_flush_begin), unless
 * no spare buffer can be had; the one set aside before is written first
 * if no one has written it meanwhile.
 */
static int flush_full(segset *s, segment *g)
{
	uint64_t end, cut, keep;
	int rc;

	/* The buffer set aside before this one goes first. */
	if ((rc = wbuf_finish(s)) < 0)
		return rc;
	end = seg_end(s, g);
	cut = end & ~(uint64_t)(FILE_WRITE_UNIT - 1);
	if (cut <= g->wend)
		return flush_to(s, g, end, end);
	/* (A record across cut starts at or after flushed: the records
	 * before flushed end at or before it, and flushed <= wend < cut.) */
	keep = s->cross_off < cut && cut < s->cross_end ? s->cross_off : cut;
	if (wbuf_swap(s, g, cut, keep))
		return CELLAR_OK; /* written later, or by segset_flush_run */
	return flush_to(s, g, cut, keep);
}

/* A record of t bytes went into the buffer at file offset off. */
static void note_buffered(segset *s, uint64_t off, uint64_t t)
{
	s->buf_len += (size_t)t;
	if (off / FILE_WRITE_UNIT != (off + t) / FILE_WRITE_UNIT) {
		s->cross_off = off;
		s->cross_end = off + t;
	}
}

int segset_sync(segset *s)
{
	int rc;

	if ((rc = segset_flush(s)) < 0)
		return rc;
	for (size_t i = 0; i < s->n; i++) {
		segment *g = s->list[i];
		if (g->synced < g->wend) {
			if ((rc = s->fs->sync(s->fs, g->file)) < 0) {
				s->sync_failed = rc;
				return rc;
			}
			g->synced = g->wend;
		}
	}
	if (s->dir_dirty) {
		if ((rc = s->fs->sync_dir(s->fs, s->dir)) < 0)
			return rc;
		s->dir_dirty = 0;
	}
	return CELLAR_OK;
}

/* Start a new segment able to hold a first record of first bytes. */
static int roll(segset *s, uint64_t first)
{
	segment *old = segset_last(s), *g = NULL;
	uint8_t hdr[SEG_HEADER_SIZE];
	char path[FILE_PATH_MAX];
	int created = 0, seal, rc, id = -1;

	/* A full segment is durable before the next one has a byte on disk.
	 * When it is not yet, its fsync waits for the new file's first write
	 * (seal_sync), which a sync or compaction does without the writer
	 * mutex; until then the new file is empty (recovery drops a newest
	 * file shorter than its header) and its header waits in the buffer. */
	if (old && (rc = segset_flush(s)) < 0)
		return rc;
	for (int i = 0; i < SEG_MAX_SEGMENTS; i++)
		if (!s->by_id[i] && !s->retired[i]) {
			id = i;
			break;
		}
	if (id < 0)
		return cellar__error(CELLAR_ELIMIT, "65536 segment files are live");
	if (!(g = calloc(1, sizeof *g)))
		return cellar__error(CELLAR_ENOMEM, "segments: out of memory");
	g->seq = old ? old->seq + 1 : 1;
	g->id = (uint16_t)id;
	if ((rc = segment_path(s, g->seq, path, sizeof path)) < 0)
		goto fail;
	if ((rc = s->fs->open(s->fs, path,
	                      CELLAR_FS_WRITE | CELLAR_FS_CREATE | CELLAR_FS_EXCL,
	                      &g->file)) < 0)
		goto fail;
	created = 1;
	s->dir_dirty = 1;
	/* Mapped before the header makes the file visible to read-only
	 * handles (segset_open_new): their mappings then never come first
	 * (on the mem fs a shorter one would pin the file's buffer). */
	segment_map(s, g, s->max_size > SEG_HEADER_SIZE + first
	                      ? s->max_size : SEG_HEADER_SIZE + first);
	header_encode(hdr, g->id, g->seq);
	seal = old && old->synced < old->wend;
	if (!seal &&
	    (rc = s->fs->write_at(s->fs, g->file, 0, hdr, sizeof hdr)) < 0)
		goto fail;
	g->size = SEG_HEADER_SIZE;
	g->flushed = g->wend = seal ? 0 : SEG_HEADER_SIZE;
	s->cross_off = s->cross_end = 0;
	latch_write_lock(s->latch);
	rc = list_add(s, g);
	latch_write_unlock(s->latch);
	if (rc < 0)
		goto fail;
	if (seal) {
		memcpy(s->buf, hdr, sizeof hdr); /* the buffer is empty */
		s->buf_len = sizeof hdr;
		s->seal = old;
	}
	return CELLAR_OK;
fail:
	segment_free(s, g);
	if (created)
		s->fs->remove(s->fs, path);
	return rc;
}

int segset_roll(segset *s)
{
	return roll(s, 0);
}

/* Does a record of t bytes need a new segment? */
static int needs_roll(const segset *s, const segment *g, uint64_t t)
{
	return !g || (seg_end(s, g) + t > s->max_size &&
	              seg_end(s, g) > SEG_HEADER_SIZE) ||
	       seg_end(s, g) + t > UINT32_MAX;
}

/* Encode and seal a record at the end of the buffer. */
static void encode_at_end(segset *s, unsigned kind, const void *key,
                          size_t key_len, const void *val, size_t val_len,
                          uint64_t expire)
{
	record_encode_exp(s->buf + s->buf_len, kind, key, key_len, val, val_len,
	                  expire);
}

void segset_stage(segset *s, unsigned kind, const void *key, size_t key_len,
                  const void *val, size_t val_len)
{
	segset_stage_exp(s, kind, key, key_len, val, val_len, 0);
}

void segset_stage_exp(segset *s, unsigned kind, const void *key,
                      size_t key_len, const void *val, size_t val_len,
                      uint64_t expire)
{
	uint64_t t = record_size_exp(key_len, val_len, expire);
	segment *g = segset_last(s);

	s->staged = 0;
	if (needs_roll(s, g, t) || s->buf_len + t > SEG_BUFFER_SIZE ||
	    (g->map && g->map_len < seg_end(s, g) + t))
		return;
	encode_at_end(s, kind, key, key_len, val, val_len, expire);
	s->staged = (size_t)t;
}

void segset_commit_staged(segset *s, segment **seg, uint64_t *off,
                          uint64_t *total)
{
	segment *g = segset_last(s);

	*seg = g;
	*total = s->staged;
	*off = seg_end(s, g);
	note_buffered(s, *off, s->staged);
	s->staged = 0;
}

/*
 * Make the newest segment ready for t more bytes: roll over if they do not
 * fit, flush the buffer if they do not fit there (all of it when they go
 * in place), and map far enough.  *gp: the segment they go into.
 */
static int make_room(segset *s, uint64_t t, segment **gp)
{
	segment *g = segset_last(s);
	int rc;

	s->staged = 0;
	if (needs_roll(s, g, t)) {
		if ((rc = roll(s, t)) < 0)
			return rc;
		g = segset_last(s);
	}
	if (t > SEG_BUFFER_SIZE) {
		if ((rc = segset_flush(s)) < 0)
			return rc;
	} else if (s->buf_len + t > SEG_BUFFER_SIZE &&
	           !(segset_flush_busy(s) && s->buf_len + t <= SEG_BUFFER_CAP)) {
		if ((rc = flush_full(s, g)) < 0 ||
		    (s->buf_len + t > SEG_BUFFER_SIZE && (rc = segset_flush(s)) < 0))
			return rc;
	}
	if (g->map && g->map_len < seg_end(s, g) + t) {
		latch_write_lock(s->latch);
		segment_map(s, g, seg_end(s, g) + t);
		latch_write_unlock(s->latch);
	}
	*gp = g;
	return CELLAR_OK;
}

int segset_append_fill(segset *s, uint64_t t, segset_fill_fn fill, void *ctx,
                       segment **seg, uint64_t *off)
{
	segment *g;
	uint8_t *tmp;
	int rc;

	if ((rc = make_room(s, t, &g)) < 0)
		return rc;
	*seg = g;
	if (t <= SEG_BUFFER_SIZE) {
		fill(s->buf + s->buf_len, ctx); /* straight into the buffer */
		*off = seg_end(s, g);
		note_buffered(s, *off, t);
		return CELLAR_OK;
	}
	if (!(tmp = malloc((size_t)t)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	fill(tmp, ctx);
	rc = write_in_place(s, g->file, g->wend, tmp, (size_t)t, g->wend);
	free(tmp);
	if (rc < 0)
		return rc;
	*off = g->wend;
	g->wend += t;
	return CELLAR_OK;
}

int segset_append(segset *s, unsigned kind, const void *key, size_t key_len,
                  const void *val, size_t val_len, segment **seg,
                  uint64_t *off, uint64_t *total)
{
	return segset_append_exp(s, kind, key, key_len, val, val_len, 0, seg, off,
	                         total);
}

int segset_append_exp(segset *s, unsigned kind, const void *key,
                      size_t key_len, const void *val, size_t val_len,
                      uint64_t expire, segment **seg, uint64_t *off,
                      uint64_t *total)
{
	uint64_t t = record_size_exp(key_len, val_len, expire);
	segment *g;
	uint8_t hdr[RECORD_MAX_HEADER_EXP];
	int rc;

	if ((rc = make_room(s, t, &g)) < 0)
		return rc;
	*seg = g;
	*total = t;
	if (t <= SEG_BUFFER_SIZE) {
		encode_at_end(s, kind, key, key_len, val, val_len, expire);
		*off = seg_end(s, g);
		note_buffered(s, *off, t);
		return CELLAR_OK;
	}
	/* Larger than the buffer: checksum as a stream, write in place. */
	size_t h = record_encode_header_exp(hdr, kind, key_len, val_len, expire);
	le32_store(hdr, record_checksum_parts(hdr, h, key, key_len, val, val_len));
	if ((rc = write_in_place(s, g->file, g->wend, hdr, h, g->wend)) < 0 ||
	    (rc = write_in_place(s, g->file, g->wend + h, key, key_len, g->wend)) < 0 ||
	    (rc = write_in_place(s, g->file, g->wend + h + key_len, val, val_len,
	                    g->wend)) < 0)
		return rc;
	*off = g->wend;
	g->wend += t;
	return CELLAR_OK;
}

void segset_publish(segset *s, segment *g, uint64_t end)
{
	g->size = end;
	if (s->buf_len == 0 && !s->wbuf)
		g->flushed = g->wend; /* after a record written in place */
}

int segset_truncate(segset *s, segment *g, uint64_t size)
{
	int rc;

	if ((rc = s->fs->truncate(s->fs, g->file, size)) < 0 ||
	    (rc = s->fs->sync(s->fs, g->file)) < 0)
		return rc;
	g->size = g->flushed = g->wend = g->synced = size;
	s->cross_off = s->cross_end = 0;
	return CELLAR_OK;
}

void segset_mark_dead(segset *s, uint16_t id, uint64_t total)
{
	segment *g = s->by_id[id];

	if (!g)
		return;
	g->live = g->live > total ? g->live - total : 0;
	g->dead += total;
}

segment *segset_from(const segset *s, uint64_t seq)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->list[mid]->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n ? s->list[lo] : NULL;
}

void segset_forget(segset *s, segment *g)
{
	if (s->seal == g)
		s->seal = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->list[i] == g) {
			memmove(s->list + i, s->list + i + 1,
			        (s->n - i - 1) * sizeof *s->list);
			s->n--;
			break;
		}
	s->by_id[g->id] = NULL;
	s->retired[g->id] = 1;
	segment_free(s, g);
}

void segset_detach(segset *s, segment *g)
{
	if (s->seal == g)
		s->seal = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->list[i] == g) {
			memmove(s->list + i, s->list + i + 1,
			        (s->n - i - 1) * sizeof *s->list);
			s->n--;
			break;
		}
	s->by_id[g->id] = NULL;
	s->retired[g->id] = 1;
}

void segset_free_detached(segset *s, segment *g)
{
	segment_free(s, g);
}

void segset_release_ids(segset *s)
{
	memset(s->retired, 0, SEG_MAX_SEGMENTS);
}

/* ---- following a writer (read-only handles) ------------------------------ */

int segset_list_dir(const segset *s, uint64_t **seqs, size_t *n)
{
	struct seq_list l = { 0 };
	int rc = list_seqs(s->fs, s->dir, &l);

	if (rc < 0) {
		free(l.v);
		return rc;
	}
	*seqs = l.v;
	*n = l.n;
	return CELLAR_OK;
}

int segset_open_new(segset *s, uint64_t seq, segment **out)
{
	int rc = open_file(s, seq, 1, 1, out);

	if (rc < 0 || !*out)
		return rc;
	/* Nothing in it is known yet: refresh replays it and moves size. */
	(*out)->size = (*out)->flushed = (*out)->wend = SEG_HEADER_SIZE;
	return CELLAR_OK;
}

int segset_add_new(segset *s, segment *g)
{
	if (s->by_id[g->id])
		return cellar__error(CELLAR_ECORRUPT,
		                     "segments %016llx and %016llx share id %u",
		                     (unsigned long long)s->by_id[g->id]->seq,
		                     (unsigned long long)g->seq, (unsigned)g->id);
	return list_add(s, g);
}

void segset_discard_new(segset *s, segment *g)
{
	segment_free(s, g);
}

int segset_file_size(const segset *s, const segment *g, uint64_t *size)
{
	return s->fs->size(s->fs, g->file, size);
}

void segset_reach(segset *s, segment *g, uint64_t end)
{
	if (g->map && g->map_len < end)
		segment_map(s, g, end < s->max_size ? s->max_size : end);
	g->flushed = g->wend = end;
}

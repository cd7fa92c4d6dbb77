/*
 * build_index.c - the builder's index writer (see build_index.h): sorting
 * and partitioning the pairs by bucket address, resolving duplicates, and
 * streaming the index file in bucket order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "build_index.h"
#include "endian.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "index.h"

/* ---- geometry ------------------------------------------------------------ */

typedef struct geom {
	uint32_t level;
	uint64_t split, n;
} geom;

static geom geom_for(uint64_t keys)
{
	geom g;

	index_geometry_for(keys, &g.level, &g.split);
	g.n = (1ull << g.level) + g.split;
	return g;
}

/* The chain address of a hash (index_addr's rule). */
static inline uint64_t addr_of(const geom *g, uint64_t hash)
{
	uint32_t tag = (uint32_t)(hash >> 32);
	uint64_t a = tag & ((1ull << g->level) - 1);

	if (a < g->split)
		a = tag & ((2ull << g->level) - 1);
	return a;
}

/* ---- the output file ----------------------------------------------------- */

typedef struct out_file {
	cellar_fs *fs;
	cellar_file *f;
	uint64_t pos;   /* file offset of buf[0] */
	uint8_t *buf;   /* FILE_WRITE_UNIT bytes, as index_file.c writes */
	size_t len;
	uint64_t kicked; /* bytes given to the fs's writeback hint */
} out_file;

/* Bytes written between two writeback hints (as the builder's). */
#define KICK_BYTES (32ull << 20)

static int out_flush(out_file *o)
{
	int rc = o->len ? o->fs->write_at(o->fs, o->f, o->pos, o->buf, o->len)
	                : CELLAR_OK;

	o->pos += o->len;
	o->len = 0;
	/* Let the disk start on it: the final fsync then waits less. */
	if (rc == CELLAR_OK && o->fs->writeback &&
	    o->pos - o->kicked >= KICK_BYTES) {
		(void)o->fs->writeback(o->fs, o->f, o->kicked, o->pos - o->kicked);
		o->kicked = o->pos;
	}
	return rc;
}

static int out_put(out_file *o, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t k = FILE_WRITE_UNIT - o->len < n ? FILE_WRITE_UNIT - o->len : n;
		int rc;

		memcpy(o->buf + o->len, b, k);
		o->len += k;
		b += k;
		n -= k;
		if (o->len == FILE_WRITE_UNIT && (rc = out_flush(o)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* Buckets gathered a chunk at a time, each chunk summed as it is sealed. */
typedef struct chunker {
	uint8_t *buf;      /* INDEX_CHUNK_BYTES */
	uint32_t nb;       /* buckets in buf */
	uint64_t total;    /* buckets so far */
	uint8_t *sums;     /* 8 bytes per sealed chunk */
	size_t nsums, cap;
	out_file *out;     /* primary buckets go to the index file... */
	cellar_file *scratch; /* ...overflow buckets to a scratch file */
	uint64_t spos;
	cellar_fs *fs;
} chunker;

static int chunk_seal(chunker *c)
{
	size_t len = (size_t)c->nb * BUCKET_SIZE;
	int rc;

	if (!c->nb)
		return CELLAR_OK;
	if (c->nsums == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 64;
		uint8_t *ns = realloc(c->sums, ncap * 8);
		if (!ns)
			return cellar__error(CELLAR_ENOMEM, "build: out of memory");
		c->sums = ns;
		c->cap = ncap;
	}
	le64_store(c->sums + 8 * c->nsums++, hash_checksum(c->buf, len));
	if (c->out)
		rc = out_put(c->out, c->buf, len);
	else
		rc = c->fs->write_at(c->fs, c->scratch, c->spos, c->buf, len);
	c->spos += len;
	c->nb = 0;
	return rc;
}

/* The next bucket of c, zeroed; *num gets its number. */
static int chunk_next(chunker *c, uint8_t **b, uint64_t *num)
{
	int rc;

	if (c->nb == INDEX_CHUNK_BUCKETS && (rc = chunk_seal(c)) < 0)
		return rc;
	*b = c->buf + (size_t)c->nb++ * BUCKET_SIZE;
	memset(*b, 0, BUCKET_SIZE);
	*num = c->total++;
	return CELLAR_OK;
}

/* ---- one pass ------------------------------------------------------------ */

/* Bits of the radix sort's digits: 2048 counters stay in the L1 cache and
 * 2048 output streams in the write-combining buffers' reach. */
#define RADIX_BITS 11
#define RADIX_PASSES 3 /* addresses have at most 33 bits */

typedef struct pass {
	build_source *src;
	geom g;
	chunker prim, ovf;
	out_file out;
	uint64_t keys;
	build_pair *chain;  /* a chain's pairs after duplicates went */
	size_t chain_cap;
	size_t (*cnt)[RADIX_PASSES][1u << RADIX_BITS]; /* the sort's counters */
} pass;

static int cmp_pair(const void *a, const void *b)
{
	const build_pair *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Order e[0, n) (one chain) by hash, then input order. */
static void sort_chain(build_pair *e, size_t n)
{
	if (n > 16) {
		qsort(e, n, sizeof *e, cmp_pair);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		build_pair v = e[i];
		size_t j = i;
		while (j > 0 && cmp_pair(&e[j - 1], &v) > 0) {
			e[j] = e[j - 1];
			j--;
		}
		e[j] = v;
	}
}

/*
 * Resolve the duplicates of one chain (e[0, n), sorted by hash then input
 * order) into p->chain; *out_n gets its length.
 */
static int dedup_chain(pass *p, const build_pair *e, size_t n, size_t *out_n)
{
	build_source *s = p->src;
	size_t k = 0;
	int rc;

	if (n > p->chain_cap) {
		build_pair *nc = realloc(p->chain, n * sizeof *nc);
		if (!nc)
			return cellar__error(CELLAR_ENOMEM, "build: out of memory");
		p->chain = nc;
		p->chain_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		int replaced = 0;
		/* Kept pairs with the same hash are at the end of chain. */
		for (size_t j = k; j > 0 && p->chain[j - 1].hash == e[i].hash; j--) {
			int same = 0;
			if ((rc = s->same_key(s->ctx, &p->chain[j - 1], &e[i], &same)) < 0)
				return rc;
			if (!same)
				continue;
			if (s->unique)
				return cellar__error(CELLAR_EEXIST, "build: a key was "
				                     "added twice");
			if ((rc = s->dropped(s->ctx, &p->chain[j - 1])) < 0)
				return rc;
			p->chain[j - 1] = e[i];
			replaced = 1;
			break;
		}
		if (!replaced)
			p->chain[k++] = e[i];
	}
	*out_n = k;
	return CELLAR_OK;
}

/* Write the chain of address a: its primary bucket (the next one) and any
 * overflow buckets, from p->chain[0, n). */
static int emit_chain(pass *p, size_t n)
{
	uint8_t *head, *b;
	uint64_t num, first = 0;
	uint32_t filter = 0;
	int rc;

	if ((rc = chunk_next(&p->prim, &head, &num)) < 0)
		return rc;
	for (size_t i = 0; i < n && i < BUCKET_SLOTS; i++)
		bucket_set(head, (int)i, (uint32_t)(p->chain[i].hash >> 32),
		           p->chain[i].seg, p->chain[i].off);
	for (size_t i = BUCKET_SLOTS; i < n; i += BUCKET_SLOTS) {
		if (p->ovf.total >= BUCKET_NEXT_MAX)
			return cellar__error(CELLAR_ELIMIT, "build: 2^31 overflow buckets");
		if ((rc = chunk_next(&p->ovf, &b, &num)) < 0)
			return rc;
		if (!first)
			first = num;
		for (size_t j = 0; j < BUCKET_SLOTS && i + j < n; j++) {
			uint32_t tag = (uint32_t)(p->chain[i + j].hash >> 32);
			bucket_set(b, (int)j, tag, p->chain[i + j].seg,
			           p->chain[i + j].off);
			filter |= bucket_filter_bit(tag);
		}
		/* Overflow buckets are numbered in order: the next is num + 1. */
		bucket_set_next(b, i + BUCKET_SLOTS < n ? (uint32_t)(num + 1) : 0);
	}
	bucket_set_chain(head, (uint32_t)first, filter);
	p->keys += n;
	return CELLAR_OK;
}

/*
 * Sort e[0, n) by address, all in [lo, lo + span), with aux (room for n)
 * as the other buffer of an LSD radix sort: sequential reads, 2048
 * sequential write streams, no random access.  The result is in *out (e
 * or aux).  Stable, so pairs of one chain keep their input order.
 */
typedef size_t radix_counts[RADIX_PASSES][1u << RADIX_BITS];

static void sort_by_addr(const geom *g, build_pair *e, build_pair *aux,
                         size_t n, uint64_t lo, uint64_t span,
                         radix_counts cnt, build_pair **out)
{
	unsigned bits = span > 1 ? 64 - (unsigned)__builtin_clzll(span - 1) : 0;
	unsigned passes = (bits + RADIX_BITS - 1) / RADIX_BITS;
	const uint64_t mask = (1u << RADIX_BITS) - 1;
	build_pair *src = e, *dst = aux, *t;

	memset(cnt, 0, sizeof(radix_counts));
	for (size_t i = 0; i < n; i++) {
		uint64_t k = addr_of(g, e[i].hash) - lo;
		for (unsigned q = 0; q < passes; q++)
			cnt[q][(k >> (q * RADIX_BITS)) & mask]++;
	}
	for (unsigned q = 0; q < passes; q++) {
		size_t sum = 0;
		for (size_t d = 0; d <= mask; d++) {
			size_t c = cnt[q][d];
			cnt[q][d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t k = addr_of(g, src[i].hash) - lo;
			dst[cnt[q][(k >> (q * RADIX_BITS)) & mask]++] = src[i];
		}
		t = src;
		src = dst;
		dst = t;
	}
	*out = src;
}

/*
 * Write the chains of addresses [lo, hi) from the pairs e[0, n), all of
 * whose addresses lie there, sorting them by address first (aux: room for
 * n more), then each chain in turn.
 */
static int emit_range(pass *p, build_pair *e, build_pair *aux, size_t n,
                      uint64_t lo, uint64_t hi)
{
	build_pair *sorted;
	size_t i = 0;
	int rc;

	sort_by_addr(&p->g, e, aux, n, lo, hi - lo, *p->cnt, &sorted);
	for (uint64_t a = lo; a < hi; a++) {
		size_t j = i, k = 0;
		while (j < n && addr_of(&p->g, sorted[j].hash) == a)
			j++;
		sort_chain(sorted + i, j - i);
		if ((rc = dedup_chain(p, sorted + i, j - i, &k)) < 0 ||
		    (rc = emit_chain(p, k)) < 0)
			return rc;
		i = j;
	}
	return CELLAR_OK;
}

/* ---- partitions ---------------------------------------------------------- */

typedef struct parts {
	size_t np;
	cellar_file **f;
	uint64_t *count;   /* pairs in each */
} parts;

static int part_path(char *out, size_t cap, const char *dir, size_t k)
{
	char name[64];

	snprintf(name, sizeof name, FILE_BUILD_PART_PREFIX "%zu", k);
	return files_path(out, cap, dir, name);
}

static void parts_close(cellar_fs *fs, const char *dir, parts *pt, int remove)
{
	char path[FILE_PATH_MAX];

	for (size_t k = 0; pt->f && k < pt->np; k++) {
		if (pt->f[k])
			fs->close(fs, pt->f[k]);
		if (remove && part_path(path, sizeof path, dir, k) == CELLAR_OK)
			fs->remove(fs, path);
	}
	free(pt->f);
	free(pt->count);
	memset(pt, 0, sizeof *pt);
}

/*
 * Read every pair from the spill file (src->mem is all free room) and
 * distribute them by address into pt->np partition files, each holding an
 * address range of equal width.
 */
static int distribute(pass *p, parts *pt)
{
	build_source *s = p->src;
	cellar_fs *fs = s->fs;
	size_t np = pt->np, rd = s->cap / 2, wcap = (s->cap - rd) / np;
	build_pair *rbuf = s->mem, *wbase = s->mem + rd;
	size_t *wlen = calloc(np, sizeof *wlen);
	uint64_t *wpos = calloc(np, sizeof *wpos);
	char path[FILE_PATH_MAX];
	int rc = CELLAR_OK;

	if (!wlen || !wpos) {
		rc = cellar__error(CELLAR_ENOMEM, "build: out of memory");
		goto done;
	}
	for (size_t k = 0; k < np; k++) {
		if ((rc = part_path(path, sizeof path, s->dir, k)) < 0 ||
		    (rc = fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE,
		                   &pt->f[k])) < 0 ||
		    (rc = fs->truncate(fs, pt->f[k], 0)) < 0)
			goto done;
	}
	for (uint64_t at = 0; at < s->nspill;) {
		size_t want = s->nspill - at < rd ? (size_t)(s->nspill - at) : rd;
		size_t got;
		if ((rc = fs->read_at(fs, s->spill, at * sizeof *rbuf, rbuf,
		                      want * sizeof *rbuf, &got)) < 0)
			goto done;
		if (got != want * sizeof *rbuf) {
			rc = cellar__error(CELLAR_EIO, "build: spill file cut short");
			goto done;
		}
		for (size_t i = 0; i < want; i++) {
			size_t k = (size_t)(addr_of(&p->g, rbuf[i].hash) * np / p->g.n);
			build_pair *w = wbase + k * wcap;
			w[wlen[k]++] = rbuf[i];
			if (wlen[k] == wcap) {
				if ((rc = fs->write_at(fs, pt->f[k], wpos[k] * sizeof *w, w,
				                       wcap * sizeof *w)) < 0)
					goto done;
				wpos[k] += wcap;
				wlen[k] = 0;
			}
		}
		at += want;
	}
	for (size_t k = 0; k < np; k++) {
		build_pair *w = wbase + k * wcap;
		if (wlen[k] && (rc = fs->write_at(fs, pt->f[k], wpos[k] * sizeof *w,
		                                  w, wlen[k] * sizeof *w)) < 0)
			goto done;
		pt->count[k] = wpos[k] + wlen[k];
	}
done:
	free(wlen);
	free(wpos);
	return rc;
}

/* Write every chain from the partition files, in address order. */
static int emit_parts(pass *p, parts *pt)
{
	build_source *s = p->src;
	int rc;

	for (size_t k = 0; k < pt->np; k++) {
		uint64_t lo = (k * p->g.n + pt->np - 1) / pt->np;
		uint64_t hi = ((k + 1) * p->g.n + pt->np - 1) / pt->np;
		size_t n = (size_t)pt->count[k], got;
		if (n > s->cap / 2) {
			/* A skewed partition (many duplicates): over the budget. */
			build_pair *nm = realloc(s->mem, 2 * n * sizeof *nm);
			if (!nm)
				return cellar__error(CELLAR_ENOMEM, "build: out of memory");
			s->mem = nm;
			s->cap = 2 * n;
		}
		if (n && (rc = s->fs->read_at(s->fs, pt->f[k], 0, s->mem,
		                              n * sizeof *s->mem, &got)) < 0)
			return rc;
		if (n && got != n * sizeof *s->mem)
			return cellar__error(CELLAR_EIO, "build: partition cut short");
		if ((rc = emit_range(p, s->mem, s->mem + s->cap / 2, n, lo, hi)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* ---- the file ------------------------------------------------------------ */

/* Append the overflow scratch file (after its last chunk) to the output. */
static int append_ovf(pass *p)
{
	uint8_t *buf = p->prim.buf; /* free once the primaries are sealed */
	cellar_fs *fs = p->src->fs;
	int rc;

	for (uint64_t at = 0; at < p->ovf.spos;) {
		size_t want = p->ovf.spos - at < INDEX_CHUNK_BYTES
		                  ? (size_t)(p->ovf.spos - at) : INDEX_CHUNK_BYTES;
		size_t got;
		if ((rc = fs->read_at(fs, p->ovf.scratch, at, buf, want, &got)) < 0)
			return rc;
		if (got != want)
			return cellar__error(CELLAR_EIO, "build: overflow file cut short");
		if ((rc = out_put(&p->out, buf, want)) < 0)
			return rc;
		at += want;
	}
	return CELLAR_OK;
}

/* Tail and header, once every bucket is out. */
static int finish_file(pass *p)
{
	build_source *s = p->src;
	index_ckpt ck = { 0, 0, NULL, 0 };
	uint8_t hdr[INDEX_HEADER_SIZE];
	size_t ns = p->prim.nsums * 8 + p->ovf.nsums * 8, tail_len;
	uint8_t *tail = NULL;
	index_file_shape sh;
	int rc;

	if ((rc = s->checkpoint(s->ctx, &ck)) < 0)
		goto done;
	tail_len = ns + ck.nsegs * INDEX_SEG_ENTRY_SIZE;
	if (!(tail = malloc(tail_len ? tail_len : 1))) {
		rc = cellar__error(CELLAR_ENOMEM, "build: out of memory");
		goto done;
	}
	memcpy(tail, p->prim.sums, p->prim.nsums * 8);
	memcpy(tail + p->prim.nsums * 8, p->ovf.sums, p->ovf.nsums * 8);
	index_file_encode_segs(tail + ns, &ck);
	if ((rc = out_put(&p->out, tail, tail_len)) < 0 ||
	    (rc = out_flush(&p->out)) < 0)
		goto done;
	sh.seed = s->seed;
	sh.count = p->keys;
	sh.level = p->g.level;
	sh.split = p->g.split;
	sh.nprim = p->g.n;
	sh.novf = p->ovf.total;
	sh.free_head = 0;
	sh.ovf_used = p->ovf.total - 1;
	index_file_encode_header(hdr, &sh, &ck, tail, tail_len);
	rc = s->fs->write_at(s->fs, p->out.f, 0, hdr, INDEX_HEADER_SIZE);
done:
	free(tail);
	free(ck.segs);
	return rc;
}

static void pass_free(pass *p)
{
	free(p->prim.buf);
	free(p->prim.sums);
	free(p->ovf.buf);
	free(p->ovf.sums);
	free(p->out.buf);
	free(p->chain);
	free(p->cnt);
}

/*
 * One pass with geometry for keys: the whole file.  The caller opened the
 * output and scratch files.
 */
static int run_pass(build_source *s, uint64_t keys, cellar_file *out,
                    cellar_file *ovf_scratch, uint64_t *found)
{
	pass p;
	parts pt = { 0, NULL, NULL };
	uint8_t *b;
	uint64_t num;
	int rc;

	memset(&p, 0, sizeof p);
	p.src = s;
	p.g = geom_for(keys);
	p.out.fs = s->fs;
	p.out.f = out;
	p.prim.fs = p.ovf.fs = s->fs;
	p.prim.out = &p.out;
	p.ovf.scratch = ovf_scratch;
	if (!(p.out.buf = malloc(FILE_WRITE_UNIT)) ||
	    !(p.prim.buf = malloc(INDEX_CHUNK_BYTES)) ||
	    !(p.ovf.buf = malloc(INDEX_CHUNK_BYTES)) ||
	    !(p.cnt = malloc(sizeof *p.cnt))) {
		rc = cellar__error(CELLAR_ENOMEM, "build: out of memory");
		goto done;
	}
	s->begin_pass(s->ctx);
	/* The header's place; overflow bucket 0 means "none", never used. */
	memset(p.out.buf, 0, INDEX_HEADER_SIZE);
	p.out.len = INDEX_HEADER_SIZE;
	if ((rc = chunk_next(&p.ovf, &b, &num)) < 0)
		goto done;
	if (!s->nspill) {
		rc = emit_range(&p, s->mem, s->mem + s->cap / 2, s->nmem, 0, p.g.n);
	} else {
		/* Half the budget per partition (the sort's other half is its
		 * second buffer), less 1/8 of it: room for skew. */
		uint64_t per = s->cap / 2 - s->cap / 16;
		pt.np = (size_t)((s->nspill + per - 1) / per);
		if (pt.np < 1)
			pt.np = 1;
		if (pt.np > s->cap / 64)
			pt.np = s->cap / 64; /* keep the write buffers useful */
		if (!(pt.f = calloc(pt.np, sizeof *pt.f)) ||
		    !(pt.count = calloc(pt.np, sizeof *pt.count)))
			rc = cellar__error(CELLAR_ENOMEM, "build: out of memory");
		else if ((rc = distribute(&p, &pt)) == CELLAR_OK)
			rc = emit_parts(&p, &pt);
	}
	if (rc < 0 || (rc = chunk_seal(&p.prim)) < 0 ||
	    (rc = chunk_seal(&p.ovf)) < 0)
		goto done;
	*found = p.keys;
	/* Duplicates made the table bigger than its keys need: try again. */
	if (geom_for(p.keys).n != p.g.n)
		goto done;
	if ((rc = append_ovf(&p)) < 0 || (rc = finish_file(&p)) < 0)
		goto done;
done:
	parts_close(s->fs, s->dir, &pt, 1);
	pass_free(&p);
	return rc;
}

int build_index_write(build_source *s, const char *name, uint64_t *keys)
{
	char path[FILE_PATH_MAX], opath[FILE_PATH_MAX];
	cellar_file *out = NULL, *ovf = NULL;
	cellar_fs *fs = s->fs;
	uint64_t want, found = 0;
	int rc;

	/* Everything on disk, in order, so that mem is free for partitions;
	 * pairs in memory are sorted there only if they fill at most half
	 * of it (the sort needs the other half). */
	if (!s->spill && s->nmem > s->cap / 2) {
		if ((rc = files_path(path, sizeof path, s->dir, FILE_BUILD_PAIRS)) < 0 ||
		    (rc = fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE,
		                   &s->spill)) < 0)
			return rc;
	}
	if (s->spill && s->nmem) {
		if ((rc = fs->write_at(fs, s->spill, s->nspill * sizeof *s->mem,
		                       s->mem, s->nmem * sizeof *s->mem)) < 0)
			return rc;
		s->nspill += s->nmem;
		s->nmem = 0;
	}
	want = s->nspill + s->nmem;
	if ((rc = files_path(path, sizeof path, s->dir, name)) < 0 ||
	    (rc = files_path(opath, sizeof opath, s->dir, FILE_BUILD_OVF)) < 0)
		return rc;
	for (;;) {
		if ((rc = fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE,
		                   &out)) < 0 ||
		    (rc = fs->truncate(fs, out, 0)) < 0 ||
		    (rc = fs->open(fs, opath, CELLAR_FS_WRITE | CELLAR_FS_CREATE,
		                   &ovf)) < 0 ||
		    (rc = fs->truncate(fs, ovf, 0)) < 0 ||
		    (rc = run_pass(s, want, out, ovf, &found)) < 0)
			goto done;
		if (geom_for(found).n == geom_for(want).n)
			break;
		fs->close(fs, out);
		fs->close(fs, ovf);
		out = ovf = NULL;
		want = found;
	}
	if ((rc = fs->sync(fs, out)) < 0)
		goto done;
	*keys = found;
done:
	if (out)
		fs->close(fs, out);
	if (ovf)
		fs->close(fs, ovf);
	fs->remove(fs, opath);
	return rc;
}

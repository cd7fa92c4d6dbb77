/* fuzz_util.c - helpers shared by the fuzz targets (see fuzz.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "cellar.h"
#include "endian.h"
#include "files.h"
#include "fuzz.h"
#include "hash.h"
#include "index.h"
#include "meta.h"
#include "record.h"
#include "segment.h"

/*
 * The index file layout (index.c keeps these private; docs/format.md and
 * index.c are the reference): a 4096-byte header whose last 8 bytes are the
 * XXH3 of the rest, then the primary and overflow buckets, one 8-byte sum
 * per chunk of INDEX_CHUNK_BUCKETS buckets of each array, then 40 bytes per
 * segment.
 */
#define IX_COUNT 24
#define IX_NPRIM 48
#define IX_NOVF 56
#define IX_OVF_USED 72
#define IX_NSEGS 96
#define IX_TAIL_SUM 112
#define IX_SUM (INDEX_HEADER_SIZE - 8)
#define IX_BUCKET 64
#define IX_SEG_ENTRY 40

void fz_fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz: %s (rc %d: %s; %s)\n", what, rc,
	        cellar_strerror(rc), cellar_errmsg());
	abort();
}

cellar_fs *fz_mem_fs(const char *dir)
{
	cellar_fs *fs = NULL;
	int rc = cellar_fs_mem_new(&fs);

	FZ_CHECK(rc == CELLAR_OK, "cellar_fs_mem_new", rc);
	if (dir) {
		rc = fs->mkdir(fs, dir);
		FZ_CHECK(rc == CELLAR_OK, "mkdir", rc);
	}
	return fs;
}

void fz_nomap(cellar_fs *fs, cellar_fs *out)
{
	*out = *fs;
	out->map = NULL;
	out->unmap = NULL;
	out->destroy = NULL;
}

void fz_put_file(cellar_fs *fs, const char *path, const void *data,
                 size_t len)
{
	cellar_file *f = NULL;
	int rc = fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f);

	FZ_CHECK(rc == CELLAR_OK, "open for writing", rc);
	rc = fs->truncate(fs, f, 0);
	FZ_CHECK(rc == CELLAR_OK, "truncate", rc);
	if (len) {
		rc = fs->write_at(fs, f, 0, data, len);
		FZ_CHECK(rc == CELLAR_OK, "write_at", rc);
	}
	fs->close(fs, f);
}

uint8_t *fz_get_file(cellar_fs *fs, const char *path, size_t *len)
{
	cellar_file *f = NULL;
	uint64_t size = 0;
	uint8_t *p;
	size_t got = 0;
	int rc;

	*len = 0;
	if (fs->open(fs, path, CELLAR_FS_READ, &f) != CELLAR_OK)
		return NULL;
	rc = fs->size(fs, f, &size);
	FZ_CHECK(rc == CELLAR_OK, "size", rc);
	p = malloc(size ? (size_t)size : 1);
	FZ_CHECK(p != NULL, "out of memory", CELLAR_ENOMEM);
	rc = fs->read_at(fs, f, 0, p, (size_t)size, &got);
	FZ_CHECK(rc == CELLAR_OK && got == size, "read_at", rc);
	fs->close(fs, f);
	*len = (size_t)size;
	return p;
}

void fz_fix_meta(uint8_t *p, size_t len)
{
	if (len >= META_SIZE)
		le64_store(p + 56, hash_checksum(p, 56));
}

void fz_fix_segment_header(uint8_t *p, size_t len)
{
	if (len >= SEG_HEADER_SIZE)
		le32_store(p + 28, (uint32_t)hash_checksum(p, 28));
}

void fz_fix_segment_records(uint8_t *p, size_t len)
{
	size_t off = SEG_HEADER_SIZE;

	while (off < len) {
		record_header h;
		int rc = record_decode_header(p + off, len - off, len - off, &h);
		if (rc != CELLAR_OK && rc != CELLAR_EVERSION)
			break;
		record_seal(p + off, h.total);
		off += (size_t)h.total;
	}
}

static uint64_t chunks_of(uint64_t n)
{
	return (n + INDEX_CHUNK_BUCKETS - 1) / INDEX_CHUNK_BUCKETS;
}

/* n and m of a well-formed-size index file, else 0. */
static int index_dims(const uint8_t *p, size_t len, uint64_t *n, uint64_t *m)
{
	uint64_t nsegs;

	if (len < INDEX_HEADER_SIZE)
		return 0;
	*n = le64_load(p + IX_NPRIM);
	*m = le64_load(p + IX_NOVF);
	nsegs = le64_load(p + IX_NSEGS);
	return *n <= len / IX_BUCKET && *m <= len / IX_BUCKET &&
	       nsegs <= len / IX_SEG_ENTRY &&
	       INDEX_HEADER_SIZE + (*n + *m) * IX_BUCKET +
	                   (chunks_of(*n) + chunks_of(*m)) * 8 +
	                   nsegs * IX_SEG_ENTRY ==
	               len;
}

void fz_fix_index_chunks(uint8_t *p, size_t len)
{
	uint64_t n, m;

	if (!index_dims(p, len, &n, &m))
		return;
	uint8_t *sums = p + INDEX_HEADER_SIZE + (n + m) * IX_BUCKET;
	const uint8_t *b = p + INDEX_HEADER_SIZE;
	for (int a = 0; a < 2; a++) {
		uint64_t cnt = a ? m : n;
		for (uint64_t first = 0; first < cnt; first += INDEX_CHUNK_BUCKETS) {
			uint64_t k = cnt - first < INDEX_CHUNK_BUCKETS
			                 ? cnt - first
			                 : INDEX_CHUNK_BUCKETS;
			le64_store(sums, hash_checksum(b, (size_t)k * IX_BUCKET));
			sums += 8;
			b += k * IX_BUCKET;
		}
	}
	/* The chunk sums and the segment table have a checksum of their own. */
	const uint8_t *tail = p + INDEX_HEADER_SIZE + (n + m) * IX_BUCKET;
	le64_store(p + IX_TAIL_SUM,
	           hash_checksum(tail, (size_t)(p + len - tail)));
}

void fz_fix_index_header(uint8_t *p, size_t len)
{
	if (len >= INDEX_HEADER_SIZE)
		le64_store(p + IX_SUM, hash_checksum(p, IX_SUM));
}

void fz_meta_bytes(uint8_t out[64], uint64_t seed)
{
	meta m = { FORMAT_VERSION, seed, 1700000000, 0 };

	meta_encode(&m, out);
}

uint64_t fz_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

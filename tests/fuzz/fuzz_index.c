/*
 * fuzz_index.c - loading an index checkpoint from arbitrary bytes, then
 * using it.
 *
 * Input: one flags byte, one seed byte, then the bytes of <dir>/index.
 *   flags bit 0: recompute the bucket chunk sums and the tail checksum
 *         bit 1: recompute the header checksum before loading
 *         bit 2: after the lookups, run writer operations (find, reserve,
 *                set / remove, grow), then write the table back and load
 *                that again
 *         bits 3-6: how many writer operations (0-15)
 *         bit 7: the file system has no map(), so the file is read into
 *                memory instead of mapped
 * Without the fix-ups most mutations stop at a checksum, which is what a
 * damaged file looks like; with them the fuzzer reaches the header checks,
 * the chain walks and the free list on bytes that look valid.
 *
 * index_load() must refuse what it can't use with ECORRUPT / EVERSION, and
 * a table it accepts must answer lookups, index_shape_of() and writer
 * operations with results or ECORRUPT (a chunk failing its lazy checksum, a
 * broken chain), never a crash, a hang or a leak.
 */
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "cellar.h"
#include "files.h"
#include "fuzz.h"
#include "index.h"

#define DIR "/db"

struct probe {
	int calls;
	int mode;       /* 0: never match, 1: match (seg, off), 2: fail */
	uint16_t seg;
	uint32_t off;
};

static int probe_match(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	struct probe *p = ctx;

	p->calls++;
	FZ_CHECK(p->calls <= 1000000, "lookup calls match without end", 0);
	if (p->mode == 2)
		return CELLAR_EIO;
	*hit = p->mode == 1 && seg == p->seg && off == p->off;
	return CELLAR_OK;
}

/* Is there a bucket r picks in the file (bucket r % nbuckets, slot from r's
 * high bits)?  Then its slot goes to *tag, *seg, *off, for lookups that hit.
 * A predicate: it never fails. */
static int file_has_slot(const uint8_t *file, size_t len, uint64_t nbuckets,
                         uint64_t r, uint32_t *tag, uint16_t *seg,
                         uint32_t *off)
{
	if (nbuckets == 0)
		return 0;
	uint64_t pos = INDEX_HEADER_SIZE + (r % nbuckets) * BUCKET_SIZE;
	if (pos + BUCKET_SIZE > len)
		return 0;
	int i = (int)((r >> 40) % BUCKET_SLOTS);
	*tag = bucket_tag(file + pos, i);
	*seg = bucket_seg(file + pos, i);
	*off = bucket_off(file + pos, i);
	return 1;
}

static void lookups(cellar_index *ix, const uint8_t *file, size_t len,
                    uint64_t *rs)
{
	for (int k = 0; k < 8; k++) {
		uint64_t r = fz_rand(rs), hash = r;
		struct probe p = { 0, k % 3, 0, 0 };
		uint32_t tag;
		int rc;

		if (k & 1 && file_has_slot(file, len, ix->prim.n + ix->ovf.n, r,
		                           &tag, &p.seg, &p.off))
			hash = (uint64_t)tag << 32 | (r & 0xffffffffu);
		unsigned probes = 0;
		rc = index_lookup(ix, hash, probe_match, &p, k & 2 ? &probes : NULL);
		FZ_CHECK(!(k & 2) || rc == CELLAR_ECORRUPT || probes >= 1,
		         "index_lookup: no bucket probed", rc);
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ENOTFOUND ||
		             rc == CELLAR_ECORRUPT || (p.mode == 2 && rc == CELLAR_EIO),
		         "index_lookup: unexpected result", rc);
		FZ_CHECK(rc != CELLAR_OK || p.mode == 1,
		         "index_lookup: found without a match", rc);
		int found = -1;
		rc = index_has_loc(ix, hash, p.seg, p.off, &found);
		FZ_CHECK((rc == CELLAR_OK && (found == 0 || found == 1)) ||
		             rc == CELLAR_ECORRUPT,
		         "index_has_loc: unexpected result", rc);
	}
}

static void writer_ops(cellar_index *ix, const uint8_t *file, size_t len,
                       unsigned nops, uint64_t *rs)
{
	for (unsigned k = 0; k < nops; k++) {
		uint64_t r = fz_rand(rs), hash = r;
		struct probe p = { 0, 1, 0xffff, 0x80000000u + k };
		index_ref ref;
		uint32_t tag;
		int remove = (r >> 8) % 3 == 0, rc;

		if (r & 1 && file_has_slot(file, len, ix->prim.n + ix->ovf.n, r,
		                           &tag, &p.seg, &p.off)) {
			hash = (uint64_t)tag << 32 | (r >> 32);
			if (!remove) {
				p.seg = 0xffff; /* insert next to existing keys */
				p.off = 0x80000000u + k;
			}
		}
		rc = index_find(ix, hash, probe_match, &p, &ref);
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT,
		         "index_find: unexpected result", rc);
		if (rc < 0 || (remove && !ref.found))
			continue;
		rc = index_reserve(ix, &ref);
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT ||
		             rc == CELLAR_ELIMIT,
		         "index_reserve: unexpected result", rc);
		if (rc < 0)
			continue;
		if (remove) {
			index_remove(ix, &ref);
		} else {
			index_set(ix, &ref, hash, p.seg, p.off);
			index_grow(ix);
			p.calls = 0;
			rc = index_lookup(ix, hash, probe_match, &p, NULL);
			/* Not necessarily found: on a table whose chains share
			 * buckets (valid sums, bad links) a split can drop it. */
			FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ENOTFOUND ||
			             rc == CELLAR_ECORRUPT,
			         "index_lookup after set: unexpected result", rc);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cellar_index *ix = NULL, *ix2 = NULL;
	index_ckpt ck, ck2;
	index_shape sh, sh2;
	uint8_t meta[64], *file;
	uint64_t rs;
	size_t len;
	cellar_fs *fs, nomap, *use;
	int rc, rc_shape;

	if (size < 2)
		return 0;
	unsigned flags = data[0];
	rs = data[1];
	len = size - 2;
	if (!(file = malloc(len ? len : 1)))
		return 0;
	memcpy(file, data + 2, len);
	if (flags & 1)
		fz_fix_index_chunks(file, len);
	if (flags & 2)
		fz_fix_index_header(file, len);

	fs = fz_mem_fs(DIR);
	fz_nomap(fs, &nomap);
	use = flags & 0x80 ? &nomap : fs;
	fz_meta_bytes(meta, 42);
	fz_put_file(fs, DIR "/" FILE_META, meta, sizeof meta);
	fz_put_file(fs, DIR "/" FILE_INDEX, file, len);

	rc = index_load(&ix, use, DIR, &ck);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION,
	         "index_load: unexpected error code", rc);
	FZ_CHECK((rc == CELLAR_OK) == (ix != NULL),
	         "index_load: result and table disagree", rc);
	if (rc != CELLAR_OK)
		goto done;
	FZ_CHECK(ck.nsegs == 0 || ck.segs != NULL, "index_load: no segment table",
	         rc);
	free(ck.segs);

	lookups(ix, file, len, &rs);
	rc_shape = index_shape_of(ix, &sh);
	FZ_CHECK(rc_shape == CELLAR_OK || rc_shape == CELLAR_ECORRUPT,
	         "index_shape_of: unexpected error code", rc_shape);
	if (!(flags & 4))
		goto done;
	/* A writer only works on a table that passed the structural check a
	 * read-write open makes (bugs 2 and 3 in the README). */
	if (index_verify_all(ix) != CELLAR_OK)
		goto done;

	writer_ops(ix, file, len, (flags >> 3) & 15, &rs);
	lookups(ix, file, len, &rs);
	rc_shape = index_shape_of(ix, &sh);
	FZ_CHECK(rc_shape == CELLAR_OK || rc_shape == CELLAR_ECORRUPT,
	         "index_shape_of: unexpected error code", rc_shape);
	index_ckpt out = { 7, 4096, NULL, 0 };
	rc = index_write(ix, use, DIR, &out);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT,
	         "index_write: unexpected error code", rc);
	if (rc != CELLAR_OK)
		goto done;
	rc = index_load(&ix2, use, DIR, &ck2);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT,
	         "reloading a written index: unexpected error code", rc);
	if (rc == CELLAR_OK) {
		free(ck2.segs);
		FZ_CHECK(ck2.seq == 7 && ck2.off == 4096 && ck2.nsegs == 0,
		         "checkpoint position does not round-trip", rc);
		FZ_CHECK(ix2->count == ix->count && ix2->prim.n == ix->prim.n &&
		             ix2->ovf.n == ix->ovf.n && ix2->level == ix->level &&
		             ix2->split == ix->split,
		         "index header does not round-trip", rc);
		rc = index_shape_of(ix2, &sh2);
		FZ_CHECK(rc == rc_shape &&
		             (rc < 0 || memcmp(&sh, &sh2, sizeof sh) == 0),
		         "index shape does not round-trip", rc);
	}
done:
	index_free(ix2);
	index_free(ix);
	cellar_fs_free(fs);
	free(file);
	return 0;
}

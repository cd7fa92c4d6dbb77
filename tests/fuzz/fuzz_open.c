/*
 * fuzz_open.c - cellar_open() on a directory of arbitrary files.
 *
 * Input: one flags byte, then records of (u8 id, u16 little-endian length,
 * bytes), each a file of the store directory (a later record with the same
 * name replaces an earlier one; a short last record takes what is left):
 *   id % 32 == 0: meta      1: index      2: index.tmp      3: LOCK
 *   id % 32 >= 4: the segment with sequence number id % 32 - 3
 *                 (0000000000000001.seg ...)
 * flags bit 0: fix the meta checksum
 *       bit 1: fix segment header checksums
 *       bit 2: fix record checksums (walk and seal each segment's records)
 *       bit 3: fix the index chunk sums, tail and header checksums
 *       bit 4: on the read-write handle, also delete two keys, put one
 *       bit 5: the file system has no map(): the engine reads with read_at
 *       bit 6: on the read-write handle, also run a compaction pass
 *       bit 7: the clock stands far in the future, so that every expiring
 *              record (type 4) has expired; else it stands at 0 and none
 *              has (the count equals the items iterated only then)
 * The fix-ups let mutated stores get past the checksums to recovery.
 *
 * The store is opened read-only (which must change no file), then
 * read-write (recovery may repair it), and after a clean read-write close
 * read-only again (which must then succeed).  Each handle gets a few keys
 * (taken from the records in the input), is iterated to the end (bounded:
 * every step must make progress), counted and closed.  Never a crash, a
 * hang or a leak; when the index was rebuilt from the log, every item the
 * iterator returns must also be what cellar_get() returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "files.h"
#include "fuzz.h"
#include "record.h"
#include "segment.h"
#include "testhook.h"

#define DIR "/db"

/* The time the handles judge expiring records by (flags bit 7). */
static uint64_t fz_now;

static uint64_t fz_clock(void *ctx)
{
	return *(const uint64_t *)ctx;
}
#define MAX_KEYS 8


struct keys {
	uint8_t *key[MAX_KEYS];
	size_t len[MAX_KEYS];
	int n;
};

struct snapshot {
	char *name[64];
	uint8_t *data[64];
	size_t len[64];
	int n, overflow;
};

static void name_of(unsigned id, char *out, size_t cap)
{
	static const char *const fixed[] = { FILE_META, FILE_INDEX,
		                             FILE_INDEX_TMP, FILE_LOCK };

	id %= 32;
	if (id < 4)
		snprintf(out, cap, "%s/%s", DIR, fixed[id]);
	else
		snprintf(out, cap, "%s/%016llx%s", DIR, (unsigned long long)(id - 3),
		         FILE_SEG_SUFFIX);
}

static void collect_keys(struct keys *k, const uint8_t *p, size_t len)
{
	size_t off = SEG_HEADER_SIZE;

	while (off < len && k->n < MAX_KEYS) {
		record_header h;
		int rc = record_decode_header(p + off, len - off, len - off, &h);
		if (rc != CELLAR_OK && rc != CELLAR_EVERSION)
			break;
		if ((k->key[k->n] = malloc(h.key_len))) {
			memcpy(k->key[k->n], p + off + h.header_len, h.key_len);
			k->len[k->n++] = h.key_len;
		}
		off += (size_t)h.total;
	}
}

static int snap_file(const char *name, void *ctx)
{
	struct snapshot *s = ctx;

	if (s->n == 64) {
		s->overflow = 1;
		return 0;
	}
	s->name[s->n++] = strdup(name);
	return 0;
}

static void snapshot_take(cellar_fs *fs, struct snapshot *s)
{
	char path[256];

	memset(s, 0, sizeof *s);
	int rc = fs->list(fs, DIR, snap_file, s);
	FZ_CHECK(rc == CELLAR_OK, "list", rc);
	for (int i = 0; i < s->n; i++) {
		FZ_CHECK(s->name[i] != NULL, "out of memory", CELLAR_ENOMEM);
		snprintf(path, sizeof path, "%s/%s", DIR, s->name[i]);
		s->data[i] = fz_get_file(fs, path, &s->len[i]);
	}
}

static void snapshot_free(struct snapshot *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->name[i]);
		free(s->data[i]);
	}
}

static void snapshot_compare(const struct snapshot *a, const struct snapshot *b)
{
	FZ_CHECK(a->n == b->n && a->overflow == b->overflow,
	         "read-only open changed the set of files", 0);
	for (int i = 0; i < a->n; i++) {
		int j = 0;
		while (j < b->n && strcmp(a->name[i], b->name[j]) != 0)
			j++;
		FZ_CHECK(j < b->n, "read-only open removed a file", 0);
		FZ_CHECK(a->len[i] == b->len[j] &&
		             (a->len[i] == 0 ||
		              memcmp(a->data[i], b->data[j], a->len[i]) == 0),
		         "read-only open changed a file", 0);
	}
}

/*
 * EVERSION: the index points at a record of a kind this version does not
 * know (with a valid checksum).  cellar.h does not list it for the read
 * calls (reported: README, finding 3); accepted here.
 */
static int get_ok(int rc)
{
	return rc == CELLAR_OK || rc == CELLAR_ENOTFOUND ||
	       rc == CELLAR_ECORRUPT || rc == CELLAR_EIO || rc == CELLAR_EVERSION;
}

/* Look key up three ways; they must agree.  Returns the cellar_get code. */
static int probe_key(cellar_db *db, const void *key, size_t key_len,
                     const void *want, size_t want_len, int strict)
{
	uint8_t buf[256];
	size_t n = 0, n2 = 0;
	void *p = NULL;
	int rc = cellar_get(db, key, key_len, buf, sizeof buf, &n);
	int rc2 = cellar_get_alloc(db, key, key_len, &p, &n2);
	int rc3 = cellar_has(db, key, key_len);

	FZ_CHECK(get_ok(rc) || rc == CELLAR_EBUFS, "cellar_get: unexpected code",
	         rc);
	FZ_CHECK(get_ok(rc2), "cellar_get_alloc: unexpected code", rc2);
	FZ_CHECK(get_ok(rc3), "cellar_has: unexpected code", rc3);
	FZ_CHECK((rc == CELLAR_EBUFS ? CELLAR_OK : rc) == rc2 && rc2 == rc3,
	         "cellar_get, cellar_get_alloc and cellar_has disagree", rc);
	FZ_CHECK((rc2 == CELLAR_OK) == (p != NULL),
	         "cellar_get_alloc: buffer and result disagree", rc2);
	if (rc2 == CELLAR_OK) {
		FZ_CHECK(n == n2, "cellar_get and cellar_get_alloc lengths differ", rc);
		FZ_CHECK(rc == CELLAR_EBUFS || memcmp(buf, p, n) == 0,
		         "cellar_get and cellar_get_alloc values differ", rc);
		FZ_CHECK((rc == CELLAR_EBUFS) == (n > sizeof buf),
		         "cellar_get: EBUFS and the length disagree", rc);
	}
	if (strict) {
		FZ_CHECK(rc2 == CELLAR_OK && n2 == want_len &&
		             (want_len == 0 || memcmp(p, want, want_len) == 0),
		         "cellar_get does not return what the store holds", rc2);
	}
	cellar_free(p);
	return rc;
}

/*
 * Probe a handle.  strict: the index is known to be one the engine built
 * (rebuilt from the log by this open, or checkpointed by a writer that
 * rebuilt it), so every item iterated must be what cellar_get() returns.
 * Returns whether this open rebuilt the index.
 */
static int probe_db(cellar_db *db, const struct keys *k, uint64_t bound,
                    int strict)
{
	cellar__debug_info info;
	cellar_iter *it = NULL;
	uint64_t count = 0, items = 0, calls = 0;
	int rc, rebuilt;

	rc = cellar__debug(db, &info);
	rebuilt = info.rebuilt && rc == CELLAR_OK;
	strict |= rebuilt;
	for (int i = 0; i < k->n; i++)
		probe_key(db, k->key[i], k->len[i], NULL, 0, 0);
	probe_key(db, "k", 1, NULL, 0, 0);

	rc = cellar_iter_new(db, &it);
	FZ_CHECK(rc == CELLAR_OK, "cellar_iter_new", rc);
	for (;;) {
		const void *key, *val;
		size_t key_len, val_len;
		FZ_CHECK(++calls <= bound, "iteration does not end", 0);
		rc = cellar_iter_next(it, &key, &key_len, &val, &val_len);
		if (rc == CELLAR_EDONE)
			break;
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT ||
		             rc == CELLAR_EVERSION || rc == CELLAR_EIO,
		         "cellar_iter_next: unexpected code", rc);
		if (rc != CELLAR_OK)
			continue;
		items++;
		FZ_CHECK(key_len >= 1 && key_len <= CELLAR_MAX_KEY_LEN,
		         "cellar_iter_next: bad key length", rc);
		probe_key(db, key, key_len, val, val_len, strict);
	}
	cellar_iter_free(it);
	rc = cellar_count(db, &count);
	FZ_CHECK(rc == CELLAR_OK, "cellar_count", rc);
	cellar_db_stats sst;
	rc = cellar_stats(db, &sst);
	FZ_CHECK(rc == CELLAR_OK && sst.keys == count,
	         "cellar_stats: keys differ from the count", rc);
	/* Every key has a record of at least 8 bytes in the input or was put
	 * here (bug 2 in README wraps the count below zero). */
	FZ_CHECK(count <= bound, "count exceeds the records in the store", 0);
	/* The count includes expired keys compaction has not dropped yet. */
	if (strict && fz_now)
		FZ_CHECK(count >= items, "count below the items iterated", 0);
	else if (strict)
		FZ_CHECK(count == items, "count differs from the items iterated", 0);
	return rebuilt;
}

static int open_db(cellar_fs *fs, cellar_db **db, unsigned flags)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	int rc;

	o.fs = fs;
	o.flags = flags;
	o.max_segment_size = 64 << 10;
	o.clock = fz_clock;
	o.clock_ctx = &fz_now;
	rc = cellar_open(db, DIR, &o);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT ||
	             rc == CELLAR_EVERSION || rc == CELLAR_ENOENT ||
	             rc == CELLAR_EIO,
	         "cellar_open: unexpected code", rc);
	FZ_CHECK((rc == CELLAR_OK) == (*db != NULL),
	         "cellar_open: result and handle disagree", rc);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char val[] = "fuzz-value";
	struct keys keys = { { NULL }, { 0 }, 0 };
	struct snapshot before, after;
	cellar_db *db = NULL;
	cellar_fs *mem, nomap, *fs;
	uint64_t bound = 64;
	char path[256];
	size_t pos = 1;
	int rc, put_ok = 0, rw_rebuilt = 0;

	if (size < 1) {
		return 0;
	}
	unsigned flags = data[0];

	fz_now = flags & 128 ? UINT64_MAX / 2 : 0;
	mem = fz_mem_fs(DIR);
	fz_nomap(mem, &nomap);
	fs = flags & 32 ? &nomap : mem;
	while (pos < size) {
		unsigned id = data[pos++];
		size_t len = 0;
		if (pos + 2 <= size)
			len = (size_t)(data[pos] | data[pos + 1] << 8);
		pos += 2;
		if (pos > size)
			pos = size;
		if (len > size - pos)
			len = size - pos;
		uint8_t *p = malloc(len ? len : 1);
		FZ_CHECK(p != NULL, "out of memory", CELLAR_ENOMEM);
		memcpy(p, data + pos, len);
		pos += len;
		if (id % 32 == 0 && flags & 1)
			fz_fix_meta(p, len);
		if (id % 32 >= 4) {
			if (flags & 4)
				fz_fix_segment_records(p, len);
			if (flags & 2)
				fz_fix_segment_header(p, len);
			collect_keys(&keys, p, len);
			bound += len + 2;
		}
		if (id % 32 == 1 && flags & 8) {
			fz_fix_index_chunks(p, len);
			fz_fix_index_header(p, len);
		}
		name_of(id, path, sizeof path);
		fz_put_file(fs, path, p, len);
		free(p);
	}

	/* Read-only first: it must leave every file as it was. */
	snapshot_take(fs, &before);
	if (open_db(fs, &db, CELLAR_READONLY) == CELLAR_OK) {
		probe_db(db, &keys, bound, 0);
		rc = cellar_put(db, "k", 1, "v", 1);
		FZ_CHECK(rc == CELLAR_EREADONLY, "put on a read-only handle", rc);
		rc = cellar_close(db);
		FZ_CHECK(rc == CELLAR_OK, "closing a read-only handle", rc);
	}
	snapshot_take(fs, &after);
	snapshot_compare(&before, &after);
	snapshot_free(&before);
	snapshot_free(&after);

	/* Read-write: recovery may repair the store. */
	if (open_db(fs, &db, 0) != CELLAR_OK)
		goto done;
	rw_rebuilt = probe_db(db, &keys, bound, 0);
	if (flags & 16) {
		for (int i = 0; i < keys.n && i < 2; i++) {
			rc = cellar_delete(db, keys.key[i], keys.len[i]);
			/* A delete reads the key's record as a get does (a
			 * record of a newer kind: CELLAR_EVERSION). */
			FZ_CHECK(get_ok(rc) || rc == CELLAR_ENOMEM,
			         "cellar_delete: unexpected code", rc);
		}
		rc = cellar_put(db, "fuzz-key", 8, val, sizeof val);
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT || rc == CELLAR_EIO ||
		             rc == CELLAR_ENOMEM,
		         "cellar_put: unexpected code", rc);
		put_ok = rc == CELLAR_OK;
		probe_db(db, &keys, bound + 256, rw_rebuilt);
	}
	if (flags & 64) {
		cellar_compact_result res;
		uint64_t n_before = 0, n_after = 0;
		cellar_count(db, &n_before);
		rc = cellar_compact(db, &res);
		/* ECORRUPT / EVERSION (a damaged record, or one of an unknown
		 * kind) are not in cellar.h for compaction: README finding 3. */
		FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT ||
		             rc == CELLAR_EVERSION || rc == CELLAR_EIO ||
		             rc == CELLAR_ENOMEM,
		         "cellar_compact: unexpected code", rc);
		cellar_count(db, &n_after);
		FZ_CHECK(n_before == n_after, "compaction changed the count", rc);
		probe_db(db, &keys, bound + 256, rw_rebuilt);
	}
	rc = cellar_close(db);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_EIO || rc == CELLAR_ECORRUPT ||
	             rc == CELLAR_ENOMEM || rc == CELLAR_EFAILED,
	         "cellar_close: unexpected code", rc);
	if (rc != CELLAR_OK)
		goto done;

	/* A store a writer closed cleanly must open. */
	rc = open_db(fs, &db, CELLAR_READONLY);
	FZ_CHECK(rc == CELLAR_OK, "cannot reopen a cleanly closed store", rc);
	if (probe_db(db, &keys, bound + 256, rw_rebuilt))
		rw_rebuilt = 1;
	if (put_ok && rw_rebuilt)
		probe_key(db, "fuzz-key", 8, val, sizeof val, 1);
	rc = cellar_close(db);
	FZ_CHECK(rc == CELLAR_OK, "closing a read-only handle", rc);
done:
	cellar__test_set_max_buckets(0);
	for (int i = 0; i < keys.n; i++)
		free(keys.key[i]);
	cellar_fs_free(mem);
	return 0;
}

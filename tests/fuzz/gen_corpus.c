/*
 * gen_corpus.c - writes the seed corpora of the fuzz targets:
 *   gen_corpus <dir>    (normally tests/fuzz/corpus)
 * into <dir>/<target>/seed-*.  The stores are made by cellar itself on a mem
 * file system (plus one whose segments are laid out here by hand, to get
 * several small segments), so the seeds are valid inputs that the fuzzer
 * then mutates.  Input formats are described at the top of each target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellar.h"
#include "endian.h"
#include "files.h"
#include "fuzz.h"
#include "record.h"
#include "segment.h"
#include "testhook.h"

#define DIR "/db"

static const char *out_root;

static void die(const char *what, int rc)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, cellar_strerror(rc));
	exit(1);
}

static void emit(const char *target, const char *name, const void *p,
                 size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", out_root, target);
	mkdir(path, 0777);
	snprintf(path, sizeof path, "%s/%s/seed-%s", out_root, target, name);
	if (!(f = fopen(path, "wb")) || fwrite(p, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- a growable byte buffer -------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 64;
		if (!(b->p = realloc(b->p, b->cap)))
			die("realloc", CELLAR_ENOMEM);
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void buf_byte(struct buf *b, unsigned v)
{
	uint8_t c = (uint8_t)v;
	buf_add(b, &c, 1);
}

/* ---- stores -------------------------------------------------------------- */

static cellar_db *open_store(cellar_fs *fs, unsigned flags)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	int rc;

	o.fs = fs;
	o.flags = flags;
	o.max_segment_size = 64 << 10;
	o.hash_seed = 0x5eed;
	if ((rc = cellar_open(&db, DIR, &o)) < 0)
		die("cellar_open", rc);
	return db;
}

static void put(cellar_db *db, const char *k, const char *v)
{
	int rc = cellar_put(db, k, strlen(k), v, strlen(v));
	if (rc < 0)
		die("cellar_put", rc);
}

static void del(cellar_db *db, const char *k)
{
	int rc = cellar_delete(db, k, strlen(k));
	if (rc < 0)
		die("cellar_delete", rc);
}

struct tlv_ctx {
	cellar_fs *fs;
	struct buf *b;
};

static int tlv_file(const char *name, void *ctx)
{
	struct tlv_ctx *t = ctx;
	char path[256];
	size_t len;
	unsigned id;
	uint8_t *p;

	if (strcmp(name, FILE_META) == 0)
		id = 0;
	else if (strcmp(name, FILE_INDEX) == 0)
		id = 1;
	else if (strcmp(name, FILE_INDEX_TMP) == 0)
		id = 2;
	else if (strcmp(name, FILE_LOCK) == 0)
		return 0; /* empty; the writer creates it */
	else if (strlen(name) == FILE_SEG_NAME_LEN)
		id = 3 + (unsigned)strtoul(name, NULL, 16);
	else
		return 0;
	snprintf(path, sizeof path, "%s/%s", DIR, name);
	p = fz_get_file(t->fs, path, &len);
	if (!p || len > 0xffff || id > 31)
		die("file does not fit the fuzz_open format", CELLAR_EINVAL);
	buf_byte(t->b, id);
	buf_byte(t->b, (unsigned)(len & 0xff));
	buf_byte(t->b, (unsigned)(len >> 8));
	buf_add(t->b, p, len);
	free(p);
	return 0;
}

/* The store in fs as a fuzz_open input with these flags. */
static void emit_open(const char *name, cellar_fs *fs, unsigned flags)
{
	struct buf b = { NULL, 0, 0 };
	struct tlv_ctx t = { fs, &b };

	buf_byte(&b, flags);
	fs->list(fs, DIR, tlv_file, &t);
	emit("open", name, b.p, b.len);
	free(b.p);
}

/* The store's index as a fuzz_index input. */
static void emit_index(const char *name, cellar_fs *fs, unsigned flags,
                       unsigned seed)
{
	struct buf b = { NULL, 0, 0 };
	size_t len;
	uint8_t *p = fz_get_file(fs, DIR "/" FILE_INDEX, &len);

	if (!p)
		die("no index", CELLAR_ENOENT);
	buf_byte(&b, flags);
	buf_byte(&b, seed);
	buf_add(&b, p, len);
	emit("index", name, b.p, b.len);
	free(b.p);
	free(p);
}

static cellar_fs *store_small(void)
{
	cellar_fs *fs = fz_mem_fs(NULL);
	cellar_db *db = open_store(fs, CELLAR_CREATE);
	char k[16], v[32];

	for (int i = 0; i < 12; i++) {
		snprintf(k, sizeof k, "key%d", i);
		snprintf(v, sizeof v, "value-%d", i * 7);
		put(db, k, v);
	}
	put(db, "key3", "overwritten");
	put(db, "empty", "");
	del(db, "key5");
	del(db, "key7");
	if (cellar_close(db) < 0)
		die("close", CELLAR_EIO);
	return fs;
}

/* Segment seq with id, holding records (kind, key, value) laid out here. */
static void handmade_segment(cellar_fs *fs, uint64_t seq, uint16_t id,
                             const char *const *recs, size_t n)
{
	struct buf b = { NULL, 0, 0 };
	uint8_t hdr[SEG_HEADER_SIZE] = { 'C', 'E', 'L', 'L', 'A', 'R', 'S', 'G' };
	char path[64];

	le32_store(hdr + 8, FORMAT_VERSION);
	le16_store(hdr + 12, id);
	le64_store(hdr + 16, seq);
	fz_fix_segment_header(hdr, sizeof hdr);
	buf_add(&b, hdr, sizeof hdr);
	for (size_t i = 0; i < n; i += 2) {
		const char *key = recs[i], *val = recs[i + 1];
		unsigned kind = val ? RECORD_PUT : RECORD_DELETE;
		size_t kl = strlen(key), vl = val ? strlen(val) : 0;
		uint8_t h[RECORD_MAX_HEADER];
		size_t hl = record_encode_header(h, kind, kl, vl), at = b.len;
		buf_add(&b, h, hl);
		buf_add(&b, key, kl);
		buf_add(&b, val ? val : "", vl);
		record_seal(b.p + at, hl + kl + vl);
	}
	snprintf(path, sizeof path, "%s/%016llx%s", DIR, (unsigned long long)seq,
	         FILE_SEG_SUFFIX);
	fz_put_file(fs, path, b.p, b.len);
	free(b.p);
}

static void gen_stores(void)
{
	cellar_fs *fs;
	cellar_db *db;
	uint8_t meta[64];

	/* An empty store. */
	fs = fz_mem_fs(NULL);
	db = open_store(fs, CELLAR_CREATE);
	cellar_close(db);
	emit_open("empty", fs, 0x0f);
	cellar_fs_free(fs);

	/* A small store, closed cleanly: meta, index, one segment. */
	fs = store_small();
	emit_open("small", fs, 0x0f);
	emit_open("small-write", fs, 0x1f);
	emit_open("small-nofix", fs, 0x00);
	emit_open("small-nomap", fs, 0x3f);
	emit_index("small", fs, 0x03, 0);
	emit_index("small-ops", fs, 0x07 | 12 << 3, 1);

	/* The same with writes after the checkpoint: replayed on open. */
	db = open_store(fs, 0);
	put(db, "late1", "after the checkpoint");
	put(db, "key1", "changed after the checkpoint");
	del(db, "key2");
	if (cellar_sync(db) < 0)
		die("sync", CELLAR_EIO);
	emit_open("replay", fs, 0x0f);
	emit_open("replay-write", fs, 0x1f);
	emit_open("replay-compact", fs, 0x5f);
	cellar_close(db);

	/* A torn tail and a damaged record in the middle. */
	{
		size_t len;
		char path[64];
		uint8_t *p;
		snprintf(path, sizeof path, "%s/%016llx%s", DIR, 1ull, FILE_SEG_SUFFIX);
		p = fz_get_file(fs, path, &len);
		fz_put_file(fs, path, p, len - 5);
		emit_open("torn", fs, 0x0b);
		p[len / 2] ^= 0x40;
		fz_put_file(fs, path, p, len);
		emit_open("damaged", fs, 0x0b);
		emit_open("damaged-write", fs, 0x1b);
	emit_open("damaged-nomap", fs, 0x3b);
		free(p);
	}
	cellar_fs_free(fs);

	/* Long overflow chains: the table stopped at 2 buckets. */
	fs = fz_mem_fs(NULL);
	cellar__test_set_max_buckets(2);
	db = open_store(fs, CELLAR_CREATE);
	for (int i = 0; i < 60; i++) {
		char k[16];
		snprintf(k, sizeof k, "chain%d", i);
		put(db, k, i % 3 ? "v" : "");
	}
	for (int i = 0; i < 60; i += 7) {
		char k[16];
		snprintf(k, sizeof k, "chain%d", i);
		del(db, k);
	}
	cellar_close(db);
	cellar__test_set_max_buckets(0);
	emit_open("chains", fs, 0x1f);
	emit_open("chains-compact", fs, 0x7f);
	emit_index("chains", fs, 0x03, 2);
	emit_index("chains-ops", fs, 0x07 | 31 << 3, 3);
	cellar_fs_free(fs);

	/* A table that has split: 400 keys. */
	fs = fz_mem_fs(NULL);
	db = open_store(fs, CELLAR_CREATE);
	for (int i = 0; i < 400; i++) {
		char k[16];
		snprintf(k, sizeof k, "%d", i);
		put(db, k, "x");
	}
	cellar_close(db);
	emit_open("split", fs, 0x0f);
	emit_index("split", fs, 0x07 | 20 << 3, 4);
	cellar_fs_free(fs);

	/* Three small hand-made segments, no index (rebuilt on open). */
	fs = fz_mem_fs(DIR);
	fz_meta_bytes(meta, 0x5eed);
	fz_put_file(fs, DIR "/" FILE_META, meta, sizeof meta);
	{
		static const char *const s1[] = { "a", "1", "b", "2", "c", "3" };
		static const char *const s2[] = { "a", "one", "b", NULL, "d", "4" };
		static const char *const s3[] = { "c", NULL, "e", "5", "a", "uno" };
		handmade_segment(fs, 1, 0, s1, 6);
		handmade_segment(fs, 2, 1, s2, 6);
		handmade_segment(fs, 4, 2, s3, 6);
	}
	emit_open("segments", fs, 0x0f);
	emit_open("segments-write", fs, 0x17);
	emit_open("segments-compact", fs, 0x57);
	db = open_store(fs, 0); /* writes the index */
	cellar_close(db);
	emit_open("segments-index", fs, 0x0f);
	emit_index("segments", fs, 0x03, 5);
	cellar_fs_free(fs);
}

/* ---- decoders -------------------------------------------------------------- */

static void gen_records(void)
{
	uint8_t r[64];
	size_t n;

	n = record_encode_header(r, RECORD_PUT, 3, 5);
	memcpy(r + n, "keyvalue", 8);
	record_seal(r, n + 8);
	emit("record", "put", r, n + 8);

	n = record_encode_header(r, RECORD_DELETE, 3, 0);
	memcpy(r + n, "key", 3);
	record_seal(r, n + 3);
	emit("record", "delete", r, n + 3);

	/* A write batch's header (kind 3) over an empty body. */
	record_encode_batch(r, r, 0, 0);
	emit("record", "batch-header", r, RECORD_BATCH_SIZE);

	/* An expiring put (kind 4): the expiry leads its extension area. */
	n = record_encode_header_exp(r, RECORD_PUT, 3, 2, 1700000000000ull);
	memcpy(r + n, "keyvv", 5);
	record_seal(r, n + 5);
	emit("record", "expiring-put", r, n + 5);

	/* kind 5 (unknown to this version): EVERSION once sealed. */
	n = record_encode_header(r, 5, 1, 1);
	memcpy(r + n, "kv", 2);
	record_seal(r, n + 2);
	emit("record", "unknown-kind", r, n + 2);

	/* With a 3-byte extension area. */
	n = record_encode_header(r, RECORD_PUT | RECORD_FLAG_EXT, 1, 2);
	r[n++] = 3;
	memcpy(r + n, "extkvv", 6);
	record_seal(r, n + 6);
	emit("record", "ext", r, n + 6);

	/* Multi-byte lengths, one byte short of the record. */
	n = record_encode_header(r, RECORD_PUT, 200, 20000);
	emit("record", "long-lengths", r, n);

	/* Non-canonical varints: 0x81 0x00 for 1. */
	static const uint8_t nc[] = { 0, 0, 0, 0, 1, 0x81, 0x00, 0x80, 0x00, 'k' };
	emit("record", "noncanonical", nc, sizeof nc);
}

static void gen_meta(void)
{
	uint8_t m[64];

	fz_meta_bytes(m, 0x5eed);
	emit("meta", "valid", m, sizeof m);
	le32_store(m + 8, 2);
	fz_fix_meta(m, sizeof m);
	emit("meta", "version2", m, sizeof m);
	emit("meta", "short", m, 40);
}

static void gen_ops(void)
{
	/* One of each operation, then some random programs. */
	static const uint8_t tour[] = {
		0x00,
		0, 1, 10,  0, 4, 3,  0, 8, 0,  1, 16, 200,  2, 20, 7,  3, 21, 9,
		4, 2, 1, 0,  7, 1, 1, 2,  7, 4, 0,  8, 8,  8, 9,  5, 4,  6, 4,
		9, 0,  12, 0,  13, 0,  0, 5, 5,  14, 2,  6, 1,  14, 30,
		10, 0,  11, 0,  15, 3, 0xb1,  12, 0,  0, 3, 1,
		13, 0,  5, 3,  16, 0,  14, 20,  17, 0,  0, 3, 2,  16, 0,  12, 0
	};
	uint8_t prog[2000];
	uint64_t r = 7;

	/* Write batches (op 3: a count, then per op a key byte, bit 7 for a
	 * delete, and a value length for a put), with reopen, compaction and
	 * iteration between them. */
	static const uint8_t batches[] = {
		0x00,
		3, 3, 1, 10, 1, 20, 0x81,  3, 7, 2, 5, 3, 6, 0x82, 4, 7, 0x83, 2, 9,
		5, 8,  12, 0,  10, 0,  3, 2, 0x81, 0x81,  16, 0,  3, 7, 20, 200,
		21, 200, 22, 200, 23, 200, 20, 100, 0x94, 1, 0,  13, 0,
		3, 1, 5, 5,  14, 30,  11, 0,  3, 4, 0x80, 0x85, 6, 1, 7, 1,  12, 0
	};

	/* Expiring keys: put_ex (op 18/19: key, length, mode, time), the
	 * clock (op 20: key, ms / 2), snapshots (21 take, 22 check), batch
	 * puts with a ttl (key byte bit 6, then the ttl byte). */
	static const uint8_t expiry[] = {
		0x00,
		18, 1, 10, 0, 50,  18, 2, 5, 2, 100,  19, 3, 4, 4, 0,
		19, 1, 7, 1, 0,  21, 0,  20, 0, 30,  22, 0,  8, 1,  5, 1,
		18, 1, 3, 1, 9,  3, 2, 0x45, 8, 20, 0x86, 0x07, 4,  12, 0,
		13, 0,  14, 3,  16, 0,  14, 20,  16, 0,  20, 0, 100,  22, 0,
		16, 0,  17, 0,  10, 0,  12, 0,  21, 0,  18, 4, 9, 0, 200,
		20, 0, 255,  22, 0,  16, 0,  22, 0,  11, 0,  8, 4
	};

	emit("ops", "tour", tour, sizeof tour);
	emit("ops", "batches", batches, sizeof batches);
	emit("ops", "expiry", expiry, sizeof expiry);
	for (unsigned cfg = 0; cfg < 48; cfg += 5) {
		char name[32];
		size_t len = 200 + 25 * cfg;
		size_t i = 0;
		prog[i++] = (uint8_t)cfg;
		while (i + 4 <= len) {
			uint64_t x = fz_rand(&r);
			/* Fewer reopens and long or big values than uniform. */
			unsigned op = (unsigned)(x % 18);
			if ((op == 4 || op == 10 || op == 11 || op == 15) && x >> 61)
				op = (unsigned)(x >> 8) % 4;
			prog[i++] = (uint8_t)op;
			prog[i++] = (uint8_t)(x >> 16);
			if (op < 4 || op == 7)
				prog[i++] = (uint8_t)(x >> 24) & 0x3f;
		}
		len = i;
		snprintf(name, sizeof name, "random-%u", cfg);
		emit("ops", name, prog, len);
	}
	/* Random programs with every operation, the expiring ones too. */
	for (unsigned cfg = 1; cfg < 48; cfg += 7) {
		char name[32];
		size_t len = 300 + 20 * cfg, i = 0;
		prog[i++] = (uint8_t)cfg;
		while (i + 6 <= len) {
			uint64_t x = fz_rand(&r);
			unsigned op = (unsigned)(x % 23);
			if ((op == 4 || op == 10 || op == 11 || op == 15) && x >> 61)
				op = 18 + (unsigned)(x >> 8) % 5;
			prog[i++] = (uint8_t)op;
			prog[i++] = (uint8_t)(x >> 16);
			if (op < 4 || op == 7)
				prog[i++] = (uint8_t)(x >> 24) & 0x3f;
			if (op == 18 || op == 19) {
				prog[i++] = (uint8_t)(x >> 24) & 0x3f;
				prog[i++] = (uint8_t)(x >> 32);
				prog[i++] = (uint8_t)(x >> 40);
			}
			if (op == 20)
				prog[i++] = (uint8_t)(x >> 24);
		}
		snprintf(name, sizeof name, "random-exp-%u", cfg);
		emit("ops", name, prog, i);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	out_root = argv[1];
	mkdir(out_root, 0777);
	gen_records();
	gen_meta();
	gen_stores();
	gen_ops();
	return 0;
}

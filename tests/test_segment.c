/*
 * test_segment.c - the log (src/segment.h): opening a directory of
 * segments, appending, publishing, reading records back, roll-over, flush
 * and sync, reopening, resynchronising after damage, and refusing bad
 * segment files.  Mostly on the in-memory file system; the read paths that
 * differ without a mapping also run on the posix file system.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "endian.h"
#include "fault.h"
#include "files.h"
#include "hash.h"
#include "latch.h"
#include "record.h"
#include "segment.h"

static _Alignas(64) latch L;
static cellar_fs *fs;
static char dir[4096];
static char tmpdir[1024]; /* posix only: the mkdtemp directory */
static segset S;

static void setup_mem(void)
{
	latch_init(&L);
	OK(cellar_fs_mem_new(&fs));
	strcpy(dir, "/d");
	OK(fs->mkdir(fs, dir));
	tmpdir[0] = '\0';
}

static void setup_posix(void)
{
	const char *t = getenv("TMPDIR");

	latch_init(&L);
	OK(cellar_fs_posix_new(&fs));
	snprintf(tmpdir, sizeof tmpdir, "%s/cellar-seg-XXXXXX", t && *t ? t : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dir, sizeof dir, "%s/d", tmpdir);
	OK(fs->mkdir(fs, dir));
}

static void teardown(void)
{
	if (S.by_id)
		segset_close(&S);
	memset(&S, 0, sizeof S);
	cellar_fs_free(fs);
	fs = NULL;
	if (tmpdir[0]) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
}

/* ---- helpers ------------------------------------------------------------- */

static void seg_path(char *out, uint64_t seq)
{
	char name[FILE_SEG_NAME_LEN + 1];

	files_segment_name(name, seq);
	snprintf(out, 4096 + 32, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *p, size_t len)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->truncate(fs, f, 0));
	if (len)
		OK(fs->write_at(fs, f, 0, p, len));
	OK(fs->close(fs, f));
}

static void write_at(const char *path, uint64_t off, const void *p, size_t len)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->write_at(fs, f, off, p, len));
	OK(fs->close(fs, f));
}

static int exists(const char *path)
{
	cellar_file *f = NULL;
	int rc = fs->open(fs, path, CELLAR_FS_READ, &f);

	if (rc == CELLAR_OK) {
		fs->close(fs, f);
		return 1;
	}
	cr_assert_eq(rc, CELLAR_ENOENT, "%s: %s", path, cellar_strerror(rc));
	return 0;
}

static uint64_t file_size(const char *path)
{
	cellar_file *f;
	uint64_t size;

	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	OK(fs->close(fs, f));
	return size;
}

/* A segment header as the format describes it. */
static void make_header(uint8_t out[SEG_HEADER_SIZE], uint32_t version,
                        uint16_t id, uint64_t seq)
{
	memset(out, 0, SEG_HEADER_SIZE);
	memcpy(out, "CELLARSG", 8);
	le32_store(out + 8, version);
	le16_store(out + 12, id);
	le64_store(out + 16, seq);
	le32_store(out + 28, (uint32_t)XXH3_64bits(out, 28));
}

/* Encode and seal a record at p; returns its size. */
static size_t make_record(uint8_t *p, unsigned kind, const char *key,
                          const char *val)
{
	size_t kl = strlen(key), vl = val ? strlen(val) : 0;
	size_t h = record_encode_header(p, kind, kl, vl);

	memcpy(p + h, key, kl);
	if (vl)
		memcpy(p + h + kl, val, vl);
	record_seal(p, h + kl + vl);
	return h + kl + vl;
}

/* Write a segment file: header, then raw body bytes. */
static void write_segment(uint64_t seq, uint16_t id, const void *body,
                          size_t len)
{
	uint8_t *buf = malloc(SEG_HEADER_SIZE + len);
	char path[4200];

	cr_assert_not_null(buf);
	make_header(buf, FORMAT_VERSION, id, seq);
	if (len)
		memcpy(buf + SEG_HEADER_SIZE, body, len);
	seg_path(path, seq);
	write_file(path, buf, SEG_HEADER_SIZE + len);
	free(buf);
}

typedef struct loc {
	uint16_t id;
	uint64_t off, total;
	unsigned kind;
	char key[32];
	size_t val_len;
} loc;

/* Value bytes of record i: a pattern the reader can check. */
static void fill_val(uint8_t *v, size_t len, unsigned i)
{
	for (size_t j = 0; j < len; j++)
		v[j] = (uint8_t)(i * 31 + j * 7);
}

/* Append record i (puts with values of varying size, every 5th a delete). */
static loc append(unsigned i, size_t val_len)
{
	static uint8_t val[1 << 16];
	loc l;
	segment *g;

	memset(&l, 0, sizeof l);
	snprintf(l.key, sizeof l.key, "key-%06u", i);
	l.kind = i % 5 == 4 ? RECORD_DELETE : RECORD_PUT;
	l.val_len = l.kind == RECORD_PUT ? val_len : 0;
	fill_val(val, l.val_len, i);
	OK(segset_append(&S, l.kind, l.key, strlen(l.key), val, l.val_len, &g,
	                 &l.off, &l.total));
	cr_assert_eq(l.total, record_size(strlen(l.key), l.val_len));
	latch_write_lock(&L);
	segset_publish(&S, g, l.off + l.total);
	latch_write_unlock(&L);
	l.id = g->id;
	return l;
}

/* The record at l reads back with its kind, key and value. */
static void check_loc(const loc *l, unsigned i)
{
	static uint8_t val[1 << 16];
	record_view v;

	OK(segset_record(&S, l->id, (uint32_t)l->off, &v));
	cr_assert_eq(v.h.kind, l->kind, "record %u", i);
	cr_assert_eq(v.h.total, l->total, "record %u", i);
	cr_assert_eq(v.h.key_len, strlen(l->key));
	cr_assert_arr_eq(record_key(&v), l->key, v.h.key_len, "record %u", i);
	cr_assert_eq(v.h.val_len, l->val_len, "record %u", i);
	fill_val(val, l->val_len, i);
	if (l->val_len)
		cr_assert_arr_eq(record_val(&v), val, l->val_len, "record %u", i);
	OK(record_verify(&v, 1, l->off));
	record_release(&v);
	cr_assert_null(v.owned);
}

static int list_names(const char *name, void *ctx)
{
	char *names = ctx;

	strcat(names, name);
	strcat(names, ";");
	return 0;
}

/* ---- opening ------------------------------------------------------------- */

Test(segment, name_is_sixteen_hex_digits, .init = setup_mem, .fini = teardown)
{
	char name[FILE_SEG_NAME_LEN + 1];

	files_segment_name(name, 0x1234abcdull);
	cr_assert_str_eq(name, "000000001234abcd.seg");
	files_segment_name(name, UINT64_MAX);
	cr_assert_str_eq(name, "ffffffffffffffff.seg");
	files_segment_name(name, 1);
	cr_assert_str_eq(name, "0000000000000001.seg");
	cr_assert_eq(strlen(name), FILE_SEG_NAME_LEN);
}

Test(segment, open_empty_dir, .init = setup_mem, .fini = teardown)
{
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 0);
	cr_assert_null(segset_last(&S));
	cr_assert_not_null(S.buf, "a writer gets an append buffer");
	cr_assert_eq(S.buf_len, 0);
	OK(segset_sync(&S)); /* nothing to do */
	OK(segset_flush(&S));
	segset_close(&S);
	OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
	cr_assert_eq(S.n, 0);
	cr_assert_null(S.buf, "a reader does not");
}

Test(segment, open_missing_dir_is_enoent, .init = setup_mem, .fini = teardown)
{
	cr_assert_eq(segset_open(&S, fs, "/nowhere", 1 << 20, 0, &L),
	             CELLAR_ENOENT);
	cr_assert_null(S.by_id, "closed on failure");
}

Test(segment, other_files_are_ignored, .init = setup_mem, .fini = teardown)
{
	char path[4200];

	snprintf(path, sizeof path, "%s/index", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof path, "%s/000000000000000A.seg", dir); /* upper */
	write_file(path, "x", 1);
	snprintf(path, sizeof path, "%s/000000000000000g.seg", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof path, "%s/00000000000000001.seg", dir); /* 17 */
	write_file(path, "x", 1);
	snprintf(path, sizeof path, "%s/0000000000000001.sek", dir);
	write_file(path, "x", 1);
	write_segment(5, 2, NULL, 0);
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 1);
	cr_assert_eq(S.list[0]->seq, 5);
	cr_assert_eq(S.list[0]->id, 2);
	cr_assert_eq(S.by_id[2], S.list[0]);
	cr_assert_eq(S.list[0]->size, SEG_HEADER_SIZE);
}

/* ---- appending and reading ----------------------------------------------- */

Test(segment, append_publish_read_back, .init = setup_mem, .fini = teardown)
{
	static loc locs[200];

	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	for (unsigned i = 0; i < 200; i++) {
		locs[i] = append(i, (i * 37) % 700);
		cr_assert_eq(locs[i].id, 0);
		cr_assert_eq(locs[i].off,
		             i ? locs[i - 1].off + locs[i - 1].total : SEG_HEADER_SIZE);
	}
	segment *g = segset_last(&S);
	cr_assert_eq(S.n, 1);
	cr_assert_eq(g->seq, 1);
	cr_assert_eq(g->size, locs[199].off + locs[199].total);
	cr_assert_eq(g->flushed, SEG_HEADER_SIZE, "records still in the buffer");
	for (unsigned i = 0; i < 200; i++)
		check_loc(&locs[i], i);
	/* After a flush they are read from the file. */
	OK(segset_flush(&S));
	cr_assert_eq(S.buf_len, 0);
	cr_assert_eq(g->flushed, g->size);
	cr_assert_eq(g->wend, g->size);
	char path[4200];
	seg_path(path, 1);
	cr_assert_eq(file_size(path), g->size);
	for (unsigned i = 0; i < 200; i++)
		check_loc(&locs[i], i);
}

/* Stage record i and, if staged, commit it: what db_write does. */
/* segset_stage, and whether it staged the record (1) or not (0). */
static int stage(unsigned kind, const void *key, size_t key_len,
                 const void *val, size_t val_len)
{
	segset_stage(&S, kind, key, key_len, val, val_len);
	return S.staged != 0;
}

static int stage_commit(unsigned i, size_t val_len, loc *l)
{
	static uint8_t val[1 << 16];
	segment *g;

	memset(l, 0, sizeof *l);
	snprintf(l->key, sizeof l->key, "key-%06u", i);
	l->kind = RECORD_PUT;
	l->val_len = val_len;
	fill_val(val, val_len, i);
	if (!stage(l->kind, l->key, strlen(l->key), val, val_len))
		return 0;
	cr_assert_eq(S.staged, record_size(strlen(l->key), val_len));
	segset_commit_staged(&S, &g, &l->off, &l->total);
	cr_assert_eq(S.staged, 0);
	latch_write_lock(&L);
	segset_publish(&S, g, l->off + l->total);
	latch_write_unlock(&L);
	l->id = g->id;
	return 1;
}

Test(segment, staged_records_read_back_like_appended_ones,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[300];
	unsigned staged = 0;

	OK(segset_open(&S, fs, dir, 16 << 10, 0, &L));
	locs[0] = append(0, 10); /* the first record creates the segment */
	for (unsigned i = 1; i < 300; i++) {
		if (stage_commit(i, 100 + i % 50, &locs[i])) {
			staged++;
			cr_assert_eq(locs[i].off, locs[i - 1].id == locs[i].id
			                              ? locs[i - 1].off + locs[i - 1].total
			                              : SEG_HEADER_SIZE);
		} else {
			/* Not staged only when a roll-over is due. */
			cr_assert_gt(segset_last(&S)->wend + S.buf_len +
			             record_size(10, 100 + i % 50), 16 << 10);
			locs[i] = append(i, 100 + i % 50);
		}
	}
	cr_assert_gt(staged, 250);
	cr_assert_gt(S.n, 1, "the test crossed a roll-over");
	for (unsigned i = 0; i < 300; i++)
		check_loc(&locs[i], i);
}

/*
 * The first record of an empty segment may be larger than the segment's
 * size.  It fits the buffer but not the mapping made at the roll, so it
 * can't be staged: segset_append grows the mapping first.
 */
Test(segment, stage_refuses_what_would_outgrow_the_mapping, .init = setup_mem,
     .fini = teardown)
{
	static uint8_t val[20000];
	segment *g;
	loc l;

	OK(segset_open(&S, fs, dir, 8192, 0, &L));
	OK(segset_roll(&S));
	g = segset_last(&S);
	cr_assert_not_null(g->map);
	cr_assert_eq(g->map_len, 8192);
	cr_assert_eq(stage(RECORD_PUT, "key-000001", 10, val,
	                          sizeof val), 0);
	cr_assert_eq(S.staged, 0);
	l = append(1, sizeof val);
	cr_assert_eq(l.id, g->id, "no roll: the segment was empty");
	cr_assert_geq(g->map_len, SEG_HEADER_SIZE + l.total);
	check_loc(&l, 1);
	OK(segset_sync(&S));
	check_loc(&l, 1);
}

Test(segment, stage_refuses_what_needs_a_flush_or_is_large,
     .init = setup_mem, .fini = teardown)
{
	static uint8_t big[SEG_BUFFER_SIZE];
	loc l;

	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	/* No segment yet: the first record must go through segset_append. */
	cr_assert_eq(stage(RECORD_PUT, "k", 1, "v", 1), 0);
	cr_assert_eq(S.staged, 0);
	l = append(0, 10);
	cr_assert_eq(stage(RECORD_PUT, "k", 1, big, sizeof big), 0,
	             "larger than the buffer");
	/* Fill the buffer until the next record would need a flush. */
	unsigned i = 1;
	while (S.buf_len + record_size(10, 4000) <= SEG_BUFFER_SIZE) {
		cr_assert_lt(i, SEG_BUFFER_SIZE / 4000, "commit appends");
		cr_assert(stage_commit(i++, 4000, &l));
	}
	size_t before = S.buf_len;
	cr_assert_eq(stage(RECORD_PUT, "key-xxxxxx", 10, big, 4000), 0);
	cr_assert_eq(S.buf_len, before, "nothing was flushed");
	OK(segset_flush(&S));
	cr_assert_eq(S.buf_len, 0);
	/* A flush discards a staged record. */
	cr_assert(stage(RECORD_PUT, "k", 1, "v", 1));
	cr_assert_gt(S.staged, 0);
	OK(segset_flush(&S));
	cr_assert_eq(S.staged, 0);
	cr_assert(stage(RECORD_PUT, "k", 1, "v", 1));
	/* So does an append. */
	l = append(i, 10);
	cr_assert_eq(S.staged, 0);
	check_loc(&l, i);
}

Test(segment, record_invisible_until_published, .init = setup_mem,
     .fini = teardown)
{
	segment *g;
	uint64_t off, total;
	record_view v;

	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	OK(segset_append(&S, RECORD_PUT, "k", 1, "v", 1, &g, &off, &total));
	cr_assert_eq(off, SEG_HEADER_SIZE);
	cr_assert_eq(total, 8 + 1);
	cr_assert_eq(segset_record(&S, g->id, (uint32_t)off, &v), CELLAR_ECORRUPT);
	segset_publish(&S, g, off + total);
	OK(segset_record(&S, g->id, (uint32_t)off, &v));
	cr_assert_eq(v.h.kind, RECORD_PUT);
	cr_assert_arr_eq(record_val(&v), "v", 1);
	record_release(&v);
}

Test(segment, header_bytes_on_disk, .init = setup_mem, .fini = teardown)
{
	uint8_t got[SEG_HEADER_SIZE], want[SEG_HEADER_SIZE];
	char path[4200];
	cellar_file *f;
	size_t n;

	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	append(0, 10);
	OK(segset_flush(&S));
	seg_path(path, 1);
	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->read_at(fs, f, 0, got, sizeof got, &n));
	OK(fs->close(fs, f));
	cr_assert_eq(n, SEG_HEADER_SIZE);
	make_header(want, FORMAT_VERSION, 0, 1);
	cr_assert_arr_eq(got, want, SEG_HEADER_SIZE);
}

Test(segment, match_key_compares_record_keys, .init = setup_mem,
     .fini = teardown)
{
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	loc a = append(0, 5), b = append(1, 9);
	seg_key k = { &S, "key-000001", 10, 0, 0 };

	int hit = 0;

	OK(segset_match_key(&k, b.id, (uint32_t)b.off, &hit));
	cr_assert_eq(hit, 1);
	cr_assert_eq(k.found_total, b.total);
	k.found_total = 0;
	hit = 1;
	OK(segset_match_key(&k, a.id, (uint32_t)a.off, &hit));
	cr_assert_eq(hit, 0);
	cr_assert_eq(k.found_total, 0);
	seg_key shorter = { &S, "key-00000", 9, 0, 0 };
	hit = 1;
	OK(segset_match_key(&shorter, a.id, (uint32_t)a.off, &hit));
	cr_assert_eq(hit, 0);
	/* A location that does not exist is an error, not a mismatch. */
	cr_assert_eq(segset_match_key(&k, 7, 32, &hit), CELLAR_ECORRUPT);
}

Test(segment, roll_over_at_max_size, .init = setup_mem, .fini = teardown)
{
	enum { N = 300, MAX = 4096 };
	static loc locs[N];
	char names[4096] = "", want[4096] = "";

	OK(segset_open(&S, fs, dir, MAX, 0, &L));
	for (unsigned i = 0; i < N; i++)
		locs[i] = append(i, 80 + i % 40);
	cr_assert_gt(S.n, 5);
	for (size_t i = 0; i < S.n; i++) {
		segment *g = S.list[i];
		cr_assert_eq(g->seq, i + 1);
		cr_assert_eq(S.by_id[g->id], g);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(S.list[j]->id, g->id, "ids distinct");
		cr_assert_leq(g->size, MAX);
		if (i + 1 < S.n) {
			/* Synced before the next one has a byte in its file:
			 * the one before the newest may still wait for it. */
			if (i + 2 < S.n || S.list[i + 1]->wend > 0)
				cr_assert_eq(g->synced, g->wend, "full segments are synced");
			else
				cr_assert_eq(S.seal, g, "its fsync is left to the next write");
			cr_assert_eq(g->wend, g->size);
		}
	}
	for (unsigned i = 0; i < N; i++) {
		check_loc(&locs[i], i);
		if (i && locs[i].id == locs[i - 1].id) {
			cr_assert_eq(locs[i].off, locs[i - 1].off + locs[i - 1].total);
		} else if (i) {
			/* A new segment only when the record did not fit. */
			cr_assert_eq(locs[i].off, SEG_HEADER_SIZE);
			cr_assert_gt(locs[i - 1].off + locs[i - 1].total + locs[i].total,
			             MAX, "record %u", i);
		}
	}
	OK(fs->list(fs, dir, list_names, names));
	for (size_t i = 0; i < S.n; i++) {
		char name[FILE_SEG_NAME_LEN + 1];
		files_segment_name(name, S.list[i]->seq);
		cr_assert_not_null(strstr(names, name), "%s in %s", name, names);
		strcat(want, name);
		strcat(want, ";");
	}
	cr_assert_eq(strlen(names), strlen(want), "%s vs %s", names, want);
}

Test(segment, record_larger_than_max_gets_own_segment, .init = setup_mem,
     .fini = teardown)
{
	size_t big_len = SEG_BUFFER_SIZE + SEG_BUFFER_SIZE / 2;
	uint8_t *big = malloc(big_len);
	segment *g;
	uint64_t off, total;
	record_view v;

	cr_assert_not_null(big);
	fill_val(big, big_len, 99);
	OK(segset_open(&S, fs, dir, 65536, 0, &L));
	loc a = append(0, 100);
	OK(segset_append(&S, RECORD_PUT, "big", 3, big, big_len, &g, &off, &total));
	segset_publish(&S, g, off + total);
	cr_assert_eq(S.n, 2);
	cr_assert_eq(off, SEG_HEADER_SIZE);
	cr_assert_eq(g->seq, 2);
	loc b = append(1, 100); /* and the next one rolls again */
	cr_assert_eq(S.n, 3);
	cr_assert_eq(b.off, SEG_HEADER_SIZE);
	OK(segset_record(&S, g->id, (uint32_t)off, &v));
	cr_assert_eq(v.h.val_len, big_len);
	cr_assert_eq(memcmp(record_val(&v), big, big_len), 0);
	OK(record_verify(&v, g->seq, off));
	record_release(&v);
	check_loc(&a, 0);
	check_loc(&b, 1);
	free(big);
}

Test(segment, flush_and_sync, .init = setup_mem, .fini = teardown)
{
	OK(segset_open(&S, fs, dir, 8192, 0, &L));
	for (unsigned i = 0; i < 100; i++)
		append(i, 100);
	segment *g = segset_last(&S);
	cr_assert_gt(S.buf_len, 0);
	cr_assert_lt(g->synced, g->size);
	OK(segset_sync(&S));
	cr_assert_eq(S.buf_len, 0);
	cr_assert_eq(S.dir_dirty, 0);
	for (size_t i = 0; i < S.n; i++) {
		char path[4200];
		g = S.list[i];
		cr_assert_eq(g->synced, g->wend);
		cr_assert_eq(g->flushed, g->wend);
		seg_path(path, g->seq);
		cr_assert_eq(file_size(path), g->wend);
	}
}

/*
 * Full buffers go to the file in whole, aligned FILE_WRITE_UNIT pieces
 * (files.h), and the record across each cut stays readable whole from the
 * buffer until the next write, then from the file.
 */
Test(segment, full_buffers_are_written_in_aligned_units, .init = setup_mem,
     .fini = teardown)
{
	enum { N = 80000 };
	static loc locs[N];
	tc_wlog *log = tc_wlog_new(fs);
	unsigned crossing = 0, n = 0;

	OK(segset_open(&S, &log->fs, dir, 64u << 20, 0, &L));
	segment *g = NULL;
	while (n < N && log->n < 6) {
		locs[n] = append(n, 100 + (n * 37) % 300);
		g = segset_last(&S);
		cr_assert_leq(g->flushed, g->wend);
		cr_assert_leq(g->wend, g->flushed + S.buf_len);
		n++;
	}
	cr_assert_eq(S.n, 1, "one segment");
	/* The header, the first piece up to the first boundary, then whole
	 * aligned units. */
	cr_assert_eq(log->n, 6, "%zu writes for %u records", log->n, n);
	cr_assert_eq(log->w[0].off, 0);
	cr_assert_eq(log->w[0].len, SEG_HEADER_SIZE);
	cr_assert_eq(log->w[1].off, SEG_HEADER_SIZE);
	cr_assert_eq(log->w[1].off + log->w[1].len, FILE_WRITE_UNIT);
	for (size_t i = 2; i < log->n; i++) {
		cr_assert(strstr(log->w[i].path, ".seg"), "%s", log->w[i].path);
		cr_assert_eq(log->w[i].off, (i - 1) * (uint64_t)FILE_WRITE_UNIT,
		             "write %zu", i);
		cr_assert_eq(log->w[i].len, FILE_WRITE_UNIT, "write %zu", i);
	}
	for (unsigned i = 0; i < n; i++) {
		if (locs[i].off / FILE_WRITE_UNIT !=
		    (locs[i].off + locs[i].total - 1) / FILE_WRITE_UNIT)
			crossing++;
		check_loc(&locs[i], i);
	}
	cr_assert_geq(crossing, 4, "records across the cuts");
	cr_assert_lt(g->flushed, g->wend, "the last cut's record is buffered");
	OK(segset_sync(&S));
	cr_assert_eq(g->flushed, g->wend);
	cr_assert_eq(S.buf_len, 0);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	segset_close(&S);
	OK(segset_open(&S, &log->fs, dir, 64u << 20, 1, &L));
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	segset_close(&S);
	memset(&S, 0, sizeof S);
	tc_wlog_free(log);
}

static void reopen_reads_everything(void)
{
	enum { N = 400 };
	static loc locs[N];
	uint64_t sizes[64];
	size_t n;

	OK(segset_open(&S, fs, dir, 8192, 0, &L));
	for (unsigned i = 0; i < N; i++)
		locs[i] = append(i, (i * 53) % 300);
	OK(segset_sync(&S));
	n = S.n;
	cr_assert_gt(n, 3);
	cr_assert_leq(n, 64);
	for (size_t i = 0; i < n; i++)
		sizes[i] = S.list[i]->size;
	segset_close(&S);

	for (int ro = 0; ro < 2; ro++) {
		OK(segset_open(&S, fs, dir, 8192, ro, &L));
		cr_assert_eq(S.n, n);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(S.list[i]->seq, i + 1);
			cr_assert_eq(S.list[i]->size, sizes[i]);
			cr_assert_eq(S.list[i]->flushed, sizes[i]);
		}
		for (unsigned i = 0; i < N; i++)
			check_loc(&locs[i], i);
		segset_close(&S);
	}

	/* Appending after a reopen continues in the newest segment. */
	OK(segset_open(&S, fs, dir, 8192, 0, &L));
	segment *last = segset_last(&S);
	loc more = append(N, 10);
	cr_assert_eq(more.id, last->id);
	cr_assert_eq(more.off, sizes[n - 1]);
	check_loc(&more, N);
	OK(segset_sync(&S));
	segset_close(&S);
	OK(segset_open(&S, fs, dir, 8192, 1, &L));
	check_loc(&more, N);
	check_loc(&locs[0], 0);
}

Test(segment, reopen_reads_everything, .init = setup_mem, .fini = teardown)
{
	reopen_reads_everything();
}

Test(segment, reopen_reads_everything_posix, .init = setup_posix,
     .fini = teardown)
{
	reopen_reads_everything();
}

Test(segment, roll_starts_empty_segment, .init = setup_mem, .fini = teardown)
{
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	loc a = append(0, 10);
	OK(segset_roll(&S));
	cr_assert_eq(S.n, 2);
	cr_assert_eq(segset_last(&S)->size, SEG_HEADER_SIZE);
	loc b = append(1, 10);
	cr_assert_neq(b.id, a.id);
	cr_assert_eq(b.off, SEG_HEADER_SIZE);
	check_loc(&a, 0);
	check_loc(&b, 1);
}

Test(segment, truncate_and_forget, .init = setup_mem, .fini = teardown)
{
	char path[4200];
	record_view v;

	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	loc a = append(0, 10), b = append(1, 10);
	OK(segset_flush(&S));
	segment *g = segset_last(&S);
	OK(segset_truncate(&S, g, b.off));
	seg_path(path, g->seq);
	cr_assert_eq(file_size(path), b.off);
	cr_assert_eq(g->size, b.off);
	cr_assert_eq(g->wend, b.off);
	cr_assert_eq(g->synced, b.off);
	check_loc(&a, 0);
	cr_assert_eq(segset_record(&S, b.id, (uint32_t)b.off, &v), CELLAR_ECORRUPT);
	/* Forget: gone from the set, file stays. */
	OK(segset_roll(&S));
	cr_assert_eq(S.n, 2);
	segset_forget(&S, S.list[0]);
	cr_assert_eq(S.n, 1);
	cr_assert_null(S.by_id[a.id]);
	cr_assert_eq(S.list[0]->seq, 2);
	cr_assert_eq(segset_record(&S, a.id, (uint32_t)a.off, &v), CELLAR_ECORRUPT);
	cr_assert(exists(path));
}

Test(segment, record_out_of_range_is_corrupt, .init = setup_mem,
     .fini = teardown)
{
	record_view v;

	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	loc a = append(0, 10);
	uint64_t end = a.off + a.total;
	static const uint32_t bad[] = { 0, 1, 31 };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		v.owned = (uint8_t *)&v; /* must be reset */
		cr_assert_eq(segset_record(&S, a.id, bad[i], &v), CELLAR_ECORRUPT,
		             "off %u", bad[i]);
		cr_assert_null(v.owned);
	}
	cr_assert_eq(segset_record(&S, a.id, (uint32_t)end, &v), CELLAR_ECORRUPT);
	cr_assert_eq(segset_record(&S, a.id, (uint32_t)end + 100, &v),
	             CELLAR_ECORRUPT);
	cr_assert_eq(segset_record(&S, a.id, UINT32_MAX, &v), CELLAR_ECORRUPT);
	cr_assert_eq(segset_record(&S, (uint16_t)(a.id + 1), (uint32_t)a.off, &v),
	             CELLAR_ECORRUPT);
	cr_assert_eq(segset_record(&S, UINT16_MAX, (uint32_t)a.off, &v),
	             CELLAR_ECORRUPT);
	/* Inside the record, the bytes do not decode as one that fits. */
	OK(segset_flush(&S));
	cr_assert_eq(segset_record(&S, a.id, (uint32_t)a.off + 1, &v),
	             CELLAR_ECORRUPT);
	check_loc(&a, 0);
}

/* ---- damage -------------------------------------------------------------- */

/* Records r0, r1, r2 in segment 1; the middle one's value damaged. */
static void resync_skips_damaged_record(int flush)
{
	record_view v;
	uint64_t next;
	char path[4200];

	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	loc r0 = append(0, 40), r1 = append(1, 40), r2 = append(2, 40);
	segment *g = segset_last(&S);
	uint64_t end = r2.off + r2.total;
	uint8_t x = 0xff;
	if (flush) {
		OK(segset_flush(&S));
		seg_path(path, 1);
		write_at(path, r1.off + r1.total - 3, &x, 1);
	} else {
		S.buf[r1.off + r1.total - 3 - g->flushed] ^= 0xff;
	}
	OK(segset_record(&S, r1.id, (uint32_t)r1.off, &v)); /* header is fine */
	cr_assert_eq(record_verify(&v, g->seq, r1.off), CELLAR_ECORRUPT);
	char msg[128];
	snprintf(msg, sizeof msg, "segment %016llx.seg: bad checksum at offset %llu",
	         (unsigned long long)g->seq, (unsigned long long)r1.off);
	cr_assert_str_eq(cellar_errmsg(), msg, "the message names the file");
	record_release(&v);
	OK(segment_resync(&S, g, r1.off, end, &next));
	cr_assert_eq(next, r2.off);
	OK(segment_resync(&S, g, r0.off, end, &next));
	cr_assert_eq(next, r2.off, "the damaged record is no resync point");
	OK(segment_resync(&S, g, r2.off, end, &next));
	cr_assert_eq(next, end, "nothing valid after the last record");
	OK(segment_resync(&S, g, end - 1, end, &next));
	cr_assert_eq(next, end);
	check_loc(&r0, 0);
	check_loc(&r2, 2);
}

Test(segment, resync_skips_damaged_record_in_file, .init = setup_mem,
     .fini = teardown)
{
	resync_skips_damaged_record(1);
}

Test(segment, resync_skips_damaged_record_in_buffer, .init = setup_mem,
     .fini = teardown)
{
	resync_skips_damaged_record(0);
}

Test(segment, resync_skips_damaged_record_posix, .init = setup_posix,
     .fini = teardown)
{
	resync_skips_damaged_record(1);
}

static void resync_after_garbage(void)
{
	uint8_t body[512];
	size_t n = 0, a, b;
	uint64_t next;

	/* 37 bytes of garbage, then two records. */
	for (int i = 0; i < 37; i++)
		body[n++] = (uint8_t)(0xa5 ^ (i * 13));
	a = n;
	n += make_record(body + n, RECORD_PUT, "alpha", "one");
	b = n;
	n += make_record(body + n, RECORD_DELETE, "beta", NULL);
	write_segment(1, 0, body, n);
	OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
	segment *g = segset_last(&S);
	uint64_t end = SEG_HEADER_SIZE + n;
	cr_assert_eq(g->size, end);
	record_view v;
	int rc = segment_record(&S, g, SEG_HEADER_SIZE, end, &v);
	if (rc == CELLAR_OK) {
		rc = record_verify(&v, g->seq, SEG_HEADER_SIZE);
		record_release(&v);
	}
	cr_assert_eq(rc, CELLAR_ECORRUPT, "garbage is no record");
	OK(segment_resync(&S, g, SEG_HEADER_SIZE, end, &next));
	cr_assert_eq(next, SEG_HEADER_SIZE + a);
	OK(segment_record(&S, g, next, end, &v));
	cr_assert_eq(v.h.kind, RECORD_PUT);
	cr_assert_arr_eq(record_key(&v), "alpha", 5);
	cr_assert_arr_eq(record_val(&v), "one", 3);
	record_release(&v);
	OK(segment_resync(&S, g, next, end, &next));
	cr_assert_eq(next, SEG_HEADER_SIZE + b);
	OK(segment_record(&S, g, next, end, &v));
	cr_assert_eq(v.h.kind, RECORD_DELETE);
	cr_assert_arr_eq(record_key(&v), "beta", 4);
	OK(record_verify(&v, g->seq, next));
	record_release(&v);
	/* A limit before the second record's end hides it. */
	OK(segment_resync(&S, g, SEG_HEADER_SIZE + a, end - 1, &next));
	cr_assert_eq(next, end - 1);
}

Test(segment, resync_finds_record_after_garbage, .init = setup_mem,
     .fini = teardown)
{
	resync_after_garbage();
}

Test(segment, resync_finds_record_after_garbage_posix, .init = setup_posix,
     .fini = teardown)
{
	resync_after_garbage();
}

Test(segment, unknown_record_kind_is_eversion_only_when_sealed,
     .init = setup_mem, .fini = teardown)
{
	uint8_t body[64];
	/* 3 is a batch header, 4 an expiring put */
	size_t n = make_record(body, 5, "kkk", "vv");
	record_view v;

	write_segment(1, 0, body, n);
	OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
	cr_assert_eq(segset_record(&S, 0, SEG_HEADER_SIZE, &v), CELLAR_EVERSION);
	cr_assert_null(v.owned);
	segset_close(&S);
	body[n - 1] ^= 1; /* now it is just damage */
	write_segment(1, 0, body, n);
	OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
	cr_assert_eq(segset_record(&S, 0, SEG_HEADER_SIZE, &v), CELLAR_ECORRUPT);
}

Test(segment, bad_header_is_corrupt, .init = setup_mem, .fini = teardown)
{
	uint8_t h[SEG_HEADER_SIZE];
	char path[4200];

	seg_path(path, 1);
	/* Bad magic (re-sealed). */
	make_header(h, FORMAT_VERSION, 0, 1);
	h[3] = 'x';
	le32_store(h + 28, (uint32_t)XXH3_64bits(h, 28));
	write_file(path, h, sizeof h);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	/* Bad checksum. */
	make_header(h, FORMAT_VERSION, 0, 1);
	h[13] ^= 1;
	write_file(path, h, sizeof h);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 1, &L), CELLAR_ECORRUPT);
	/* A sequence number that does not match the file name. */
	make_header(h, FORMAT_VERSION, 0, 2);
	write_file(path, h, sizeof h);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	/* Version 0. */
	make_header(h, 0, 0, 1);
	write_file(path, h, sizeof h);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	/* And the same header done right opens. */
	make_header(h, FORMAT_VERSION, 0, 1);
	write_file(path, h, sizeof h);
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 1);
}

Test(segment, bad_header_in_older_segment_is_corrupt, .init = setup_mem,
     .fini = teardown)
{
	uint8_t h[SEG_HEADER_SIZE];
	char path[4200];

	make_header(h, FORMAT_VERSION, 0, 1);
	h[0] = 'X';
	seg_path(path, 1);
	write_file(path, h, sizeof h);
	write_segment(2, 1, NULL, 0);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
}

Test(segment, newer_version_is_eversion, .init = setup_mem, .fini = teardown)
{
	uint8_t h[SEG_HEADER_SIZE];
	char path[4200];

	make_header(h, FORMAT_VERSION + 1, 0, 1);
	seg_path(path, 1);
	write_file(path, h, sizeof h);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_EVERSION);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 1, &L), CELLAR_EVERSION);
	cr_assert(exists(path), "left alone");
}

Test(segment, short_newest_segment_is_removed_read_write, .init = setup_mem,
     .fini = teardown)
{
	uint8_t body[64];
	size_t n = make_record(body, RECORD_PUT, "a", "b");
	char p2[4200];
	uint8_t h[SEG_HEADER_SIZE];

	write_segment(1, 0, body, n);
	make_header(h, FORMAT_VERSION, 1, 2);
	seg_path(p2, 2);
	for (size_t len = 0; len < SEG_HEADER_SIZE; len += 31) {
		write_file(p2, h, len);
		/* Read-only: ignored, but left on disk. */
		OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
		cr_assert_eq(S.n, 1, "len %zu", len);
		cr_assert_eq(S.list[0]->seq, 1);
		segset_close(&S);
		cr_assert(exists(p2));
		cr_assert_eq(file_size(p2), len);
		/* Read-write: removed. */
		OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
		cr_assert_eq(S.n, 1, "len %zu", len);
		cr_assert_eq(S.list[0]->seq, 1);
		cr_assert_eq(S.list[0]->size, SEG_HEADER_SIZE + n);
		cr_assert(!exists(p2), "len %zu", len);
		/* The next segment gets the next sequence number after 1. */
		OK(segset_roll(&S));
		cr_assert_eq(segset_last(&S)->seq, 2);
		segset_close(&S);
		fs->remove(fs, p2);
	}
}

Test(segment, writer_appends_after_short_newest_was_dropped,
     .init = setup_mem, .fini = teardown)
{
	uint8_t body[64];
	size_t n = make_record(body, RECORD_PUT, "a", "b");
	char p2[4200];

	write_segment(1, 0, body, n);
	seg_path(p2, 2);
	write_file(p2, "CELLARSG", 8); /* created, header torn by a crash */
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 1);
	cr_assert(!exists(p2));
	/*
	 * Segment 1 is now the newest, and the writer appends to it (it has
	 * room), so it must be writable like any newest segment.
	 */
	loc a = append(0, 10);
	cr_assert_eq(a.id, 0);
	cr_assert_eq(a.off, SEG_HEADER_SIZE + n);
	OK(segset_sync(&S));
	check_loc(&a, 0);
	segset_close(&S);
	OK(segset_open(&S, fs, dir, 1 << 20, 1, &L));
	check_loc(&a, 0);
}

Test(segment, short_older_segment_is_corrupt, .init = setup_mem,
     .fini = teardown)
{
	uint8_t h[SEG_HEADER_SIZE];
	char p1[4200];

	make_header(h, FORMAT_VERSION, 0, 1);
	seg_path(p1, 1);
	write_file(p1, h, 20);
	write_segment(2, 1, NULL, 0);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	cr_assert(exists(p1), "an older segment is never removed");
}

Test(segment, duplicate_ids_are_corrupt, .init = setup_mem, .fini = teardown)
{
	write_segment(1, 5, NULL, 0);
	write_segment(2, 5, NULL, 0);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 0, &L), CELLAR_ECORRUPT);
	cr_assert_eq(segset_open(&S, fs, dir, 1 << 20, 1, &L), CELLAR_ECORRUPT);
	write_segment(2, 6, NULL, 0);
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 2);
	cr_assert_eq(S.by_id[5]->seq, 1);
	cr_assert_eq(S.by_id[6]->seq, 2);
}

Test(segment, gaps_in_sequence_are_kept_in_order, .init = setup_mem,
     .fini = teardown)
{
	write_segment(0x10, 1, NULL, 0);
	write_segment(0x3, 7, NULL, 0);
	write_segment(0xa, 0, NULL, 0);
	OK(segset_open(&S, fs, dir, 1 << 20, 0, &L));
	cr_assert_eq(S.n, 3);
	cr_assert_eq(S.list[0]->seq, 0x3);
	cr_assert_eq(S.list[1]->seq, 0xa);
	cr_assert_eq(S.list[2]->seq, 0x10);
	/* A new segment takes the lowest free id and the next sequence. */
	OK(segset_roll(&S));
	cr_assert_eq(segset_last(&S)->seq, 0x11);
	cr_assert_eq(segset_last(&S)->id, 2);
}

/* ---- double buffering ------------------------------------------------------ */

/*
 * A roll-over leaves the full segment's fsync to the new file's first
 * write: until then the new file is empty and its header is buffered;
 * that write (here: the unlocked one) fsyncs the full segment first.
 */
Test(segment, roll_over_leaves_the_fsync_to_the_first_write_of_the_new_file,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[64];
	segset_flush_job job;
	char path[4200];
	cellar_fs *bare = fs;
	int claimed;

	OK(fault_fs_new(&fs, bare));
	OK(segset_open(&S, fs, dir, 16 << 10, 0, &L));
	unsigned n = 0;
	while (S.n < 2) {
		cr_assert_lt(n, 64);
		locs[n] = append(n, 1000);
		n++;
	}
	segment *old = S.list[0], *g = S.list[1];
	cr_assert_lt(old->synced, old->wend, "not fsynced by the roll-over");
	cr_assert_eq(S.seal, old);
	seg_path(path, 2);
	cr_assert_eq(file_size(path), 0, "the new file waits for the fsync");
	cr_assert_eq(g->wend, 0);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	uint64_t syncs = fault_fs_count(fs, FAULT_SYNC);
	OK(segset_flush_begin(&S, 1, &job, &claimed));
	cr_assert_eq(claimed, 1);
	cr_assert_eq(job.seal, old->file);
	cr_assert_eq(job.off, 0, "the header goes with the first write");
	OK(segset_flush_end(&S, segset_flush_run(&S, &job)));
	cr_assert_eq(fault_fs_count(fs, FAULT_SYNC), syncs + 2);
	cr_assert_eq(old->synced, old->wend);
	cr_assert_null(S.seal);
	cr_assert_eq(file_size(path), g->size);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	/* Reopened, the header is there. */
	segset_close(&S);
	OK(segset_open(&S, fs, dir, 16 << 10, 0, &L));
	cr_assert_eq(S.n, 2);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	segset_close(&S);
	memset(&S, 0, sizeof S);
	cellar_fs_free(fs);
	fs = bare;
}

/* The same under the mutex: a plain flush fsyncs the full segment first. */
Test(segment, a_flush_under_the_mutex_fsyncs_the_full_segment_first,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[64];
	unsigned n = 0;

	OK(segset_open(&S, fs, dir, 16 << 10, 0, &L));
	while (S.n < 2) {
		cr_assert_lt(n, 64);
		locs[n] = append(n, 1000);
		n++;
	}
	cr_assert_eq(S.seal, S.list[0]);
	OK(segset_flush(&S));
	cr_assert_null(S.seal);
	cr_assert_eq(S.list[0]->synced, S.list[0]->wend);
	cr_assert_eq(S.list[1]->wend, S.list[1]->size);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
}

/* Append records of 4000-byte values until a full buffer has been set
 * aside; returns how many, their locations in locs. */
static unsigned fill_until_set_aside(loc *locs, unsigned max)
{
	unsigned n = 0;

	while (!S.wbuf) {
		cr_assert_lt(n, max, "no buffer was set aside");
		locs[n] = append(n, 4000);
		n++;
	}
	return n;
}

Test(segment, a_full_buffer_is_set_aside_then_written_without_the_mutex,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[2000];
	segset_flush_job job;
	char path[4200];
	int claimed;

	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	unsigned n = fill_until_set_aside(locs, 2000);
	segment *g = segset_last(&S);
	seg_path(path, 1);
	cr_assert_eq(file_size(path), SEG_HEADER_SIZE, "set aside, not written");
	cr_assert_eq(S.wbuf_cut, FILE_WRITE_UNIT);
	cr_assert_leq(S.wbuf_keep, S.wbuf_cut);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i); /* from the buffer set aside, or the other */
	/* Appends go on meanwhile. */
	for (unsigned i = n; i < n + 10; i++)
		locs[i] = append(i, 4000);
	OK(segset_flush_begin(&S, 0, &job, &claimed));
	cr_assert_eq(claimed, 1);
	cr_assert_eq(job.off, SEG_HEADER_SIZE);
	cr_assert_eq(job.len, FILE_WRITE_UNIT - SEG_HEADER_SIZE);
	cr_assert(segset_flush_busy(&S));
	/* A second claim while it is being written gets nothing. */
	segset_flush_job other;
	int again;
	OK(segset_flush_begin(&S, 1, &other, &again));
	cr_assert_eq(again, 0);
	OK(segset_flush_run(&S, &job));
	cr_assert(!segset_flush_busy(&S));
	OK(segset_flush_end(&S, CELLAR_OK));
	cr_assert_null(S.wbuf, "let go once written");
	cr_assert_eq(file_size(path), FILE_WRITE_UNIT);
	cr_assert_eq(g->wend, FILE_WRITE_UNIT);
	cr_assert_geq(g->synced, FILE_WRITE_UNIT, "fsynced with the write");
	cr_assert_leq(g->flushed, FILE_WRITE_UNIT);
	for (unsigned i = 0; i < n + 10; i++)
		check_loc(&locs[i], i);
	/* With all, the rest is set aside and written too. */
	OK(segset_flush_begin(&S, 1, &job, &claimed));
	cr_assert_eq(claimed, 1);
	OK(segset_flush_end(&S, segset_flush_run(&S, &job)));
	cr_assert_eq(S.buf_len, 0);
	cr_assert_eq(file_size(path), g->size);
	cr_assert_eq(g->flushed, g->size);
	for (unsigned i = 0; i < n + 10; i++)
		check_loc(&locs[i], i);
}

/* While the buffer set aside is being written elsewhere, a full buffer
 * takes appends on into its headroom instead of waiting for that write;
 * once the headroom is full too, it would wait (here it writes, as no
 * other thread is running), and every record reads back throughout. */
Test(segment, appends_go_on_into_the_headroom_while_a_write_runs,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[4000];
	segset_flush_job job;
	char path[4200];
	int claimed;

	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	unsigned n = fill_until_set_aside(locs, 4000);
	seg_path(path, 1);
	OK(segset_flush_begin(&S, 0, &job, &claimed));
	cr_assert_eq(claimed, 1);
	cr_assert(segset_flush_busy(&S));
	/* Past the usual full mark: nothing is written, nothing set aside. */
	while (S.buf_len + record_size(4, 4000) <= SEG_BUFFER_SIZE) {
		locs[n] = append(n, 4000);
		n++;
	}
	uint8_t *set_aside = S.wbuf;
	for (int k = 0; k < 100; k++, n++)
		locs[n] = append(n, 4000);
	cr_assert_gt(S.buf_len, SEG_BUFFER_SIZE, "into the headroom");
	cr_assert_leq(S.buf_len, SEG_BUFFER_CAP);
	cr_assert_eq(S.wbuf, set_aside, "the one being written stays aside");
	cr_assert_eq(file_size(path), SEG_HEADER_SIZE, "no write meanwhile");
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	/* The write ends; the next append finds a full buffer and sets it
	 * aside as usual, which may hold more than one unit now. */
	OK(segset_flush_end(&S, segset_flush_run(&S, &job)));
	cr_assert(!segset_flush_busy(&S));
	locs[n] = append(n, 4000);
	n++;
	cr_assert_not_null(S.wbuf);
	cr_assert_eq(S.wbuf_cut % FILE_WRITE_UNIT, 0);
	cr_assert_leq(S.buf_len, SEG_BUFFER_SIZE);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	OK(segset_flush(&S));
	cr_assert_eq(file_size(path), segset_last(&S)->size);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
}

Test(segment, a_buffer_set_aside_and_not_written_goes_first_at_the_next,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[4000];
	char path[4200];

	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	unsigned n = fill_until_set_aside(locs, 4000);
	uint64_t cut = S.wbuf_cut;
	seg_path(path, 1);
	/* Nobody writes it: the next full buffer writes it, then sets itself
	 * aside. */
	while (file_size(path) == SEG_HEADER_SIZE) {
		cr_assert_lt(n, 4000);
		locs[n] = append(n, 4000);
		n++;
	}
	cr_assert_eq(file_size(path), cut);
	cr_assert_not_null(S.wbuf);
	cr_assert_gt(S.wbuf_cut, cut);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	/* A plain flush writes both. */
	OK(segset_flush(&S));
	cr_assert_null(S.wbuf);
	cr_assert_eq(file_size(path), segset_last(&S)->size);
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
}

Test(segment, a_failed_unlocked_write_is_returned_and_written_again,
     .init = setup_mem, .fini = teardown)
{
	static loc locs[2000];
	segset_flush_job job;
	cellar_fs *bare = fs;
	char path[4200];
	int claimed;

	OK(fault_fs_new(&fs, bare));
	OK(segset_open(&S, fs, dir, 64 << 20, 0, &L));
	unsigned n = fill_until_set_aside(locs, 2000);
	OK(segset_flush_begin(&S, 0, &job, &claimed));
	cr_assert_eq(claimed, 1);
	fault_fs_fail(fs, FAULT_WRITE, fault_fs_count(fs, FAULT_WRITE) + 1,
	              CELLAR_EIO, 0);
	cr_assert_eq(segset_flush_run(&S, &job), CELLAR_EIO);
	cr_assert_eq(segset_flush_end(&S, CELLAR_EIO), CELLAR_EIO);
	cr_assert_not_null(S.wbuf, "kept, to be written again");
	cr_assert_eq(S.sync_failed, 0, "a failed write is not a failed fsync");
	for (unsigned i = 0; i < n; i++)
		check_loc(&locs[i], i);
	OK(segset_sync(&S));
	cr_assert_null(S.wbuf);
	seg_path(path, 1);
	cr_assert_eq(file_size(path), segset_last(&S)->size);
	/* A failed fsync of it is kept as one. */
	fill_until_set_aside(locs + n, 2000 - n);
	OK(segset_flush_begin(&S, 0, &job, &claimed));
	fault_fs_fail(fs, FAULT_SYNC, fault_fs_count(fs, FAULT_SYNC) + 1,
	              CELLAR_EIO, 0);
	cr_assert_eq(segset_flush_run(&S, &job), CELLAR_EIO);
	cr_assert_eq(segset_flush_end(&S, CELLAR_EIO), CELLAR_EIO);
	cr_assert_eq(S.sync_failed, CELLAR_EIO);
	segset_close(&S);
	memset(&S, 0, sizeof S);
	cellar_fs_free(fs);
	fs = bare;
}

/*
 * test_recovery.c - bringing a store back after damage or an unclean
 * state (src/recovery.h), through the public API: the files are changed
 * between a close and the next open with the file system's own operations.
 * Runs once per file system (CELLAR_TEST_FS).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "record.h"
#include "testhook.h"

/* ---- the store under test ------------------------------------------------ */

static cellar_fs *fs;
static char *dir;
static cellar_options opts;
static size_t big_values; /* when non-zero, every value has this length */

static void setup(void)
{
	cellar_options init = CELLAR_OPTIONS_INIT;

	fs = tc_fs_new();
	dir = tc_dir_new();
	opts = init;
	opts.fs = fs;
	opts.flags = CELLAR_CREATE;
	big_values = 0;
}

static void teardown(void)
{
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

static cellar_db *open_rw(void)
{
	cellar_db *db = NULL;

	opts.flags = CELLAR_CREATE;
	OK(cellar_open(&db, dir, &opts));
	return db;
}

static cellar_db *open_ro(void)
{
	cellar_db *db = NULL;

	opts.flags = CELLAR_READONLY;
	OK(cellar_open(&db, dir, &opts));
	opts.flags = CELLAR_CREATE;
	return db;
}

static cellar__debug_info debug_of(cellar_db *db)
{
	cellar__debug_info d;

	OK(cellar__debug(db, &d));
	return d;
}

/* Keys are "key-%06u"; value i of generation g has len(i) bytes. */
static size_t key_of(char *out, unsigned i)
{
	return (size_t)snprintf(out, 16, "key-%06u", i);
}

static size_t val_len(unsigned i)
{
	return big_values ? big_values : (i * 7) % 61;
}

static void val_of(uint8_t *out, unsigned i, unsigned gen)
{
	for (size_t j = 0; j < val_len(i); j++)
		out[j] = (uint8_t)(i * 131 + j * 17 + gen * 101);
}

/* State: gen[i] = generation of key i's live value, 0 = absent. */
#define MAXKEYS 4000
static unsigned gen[MAXKEYS];

static void put(cellar_db *db, unsigned i, unsigned g)
{
	static uint8_t v[4096];
	char k[16];
	size_t kl = key_of(k, i);

	val_of(v, i, g);
	OK(cellar_put(db, k, kl, v, val_len(i)));
	gen[i] = g;
}

static void del(cellar_db *db, unsigned i)
{
	char k[16];
	size_t kl = key_of(k, i);

	OK(cellar_delete(db, k, kl));
	gen[i] = 0;
}

/* Get key i: CELLAR_OK after checking its value, or the error. */
static int check_key(cellar_db *db, unsigned i)
{
	static uint8_t want[4096];
	char k[16];
	size_t kl = key_of(k, i), len = 0;
	void *v = NULL;
	int rc = cellar_get_alloc(db, k, kl, &v, &len);

	if (rc == CELLAR_OK) {
		cr_assert_neq(gen[i], 0, "key %u should be absent", i);
		val_of(want, i, gen[i]);
		cr_assert_eq(len, val_len(i), "key %u", i);
		cr_assert_eq(memcmp(v, want, len), 0, "key %u value", i);
	}
	cellar_free(v);
	return rc;
}

/* Every key in [0, n) is as gen says, except those with skip[i] set. */
static void check_all(cellar_db *db, unsigned n, const char *skip)
{
	uint64_t live = 0, count;

	for (unsigned i = 0; i < n; i++) {
		if (skip && skip[i])
			continue;
		int rc = check_key(db, i);
		if (gen[i]) {
			cr_assert_eq(rc, CELLAR_OK, "key %u: %s (%s)", i,
			             cellar_strerror(rc), cellar_errmsg());
			live++;
		} else {
			cr_assert_eq(rc, CELLAR_ENOTFOUND, "key %u: %s", i,
			             cellar_strerror(rc));
		}
	}
	if (!skip) {
		OK(cellar_count(db, &count));
		cr_assert_eq(count, live);
	}
}

/* A store of n keys with overwrites and deletes, closed cleanly. */
static void fill(unsigned n)
{
	cellar_db *db = open_rw();

	memset(gen, 0, sizeof gen);
	for (unsigned i = 0; i < n; i++)
		put(db, i, 1);
	for (unsigned i = 0; i < n; i += 3)
		put(db, i, 2);
	for (unsigned i = 1; i < n; i += 10)
		del(db, i);
	OK(cellar_close(db));
}

/* ---- files --------------------------------------------------------------- */

static void path_of(char *out, const char *name)
{
	snprintf(out, 4200, "%s/%s", dir, name);
}

static int exists(const char *name)
{
	char path[4200];
	cellar_file *f = NULL;
	int rc;

	path_of(path, name);
	rc = fs->open(fs, path, CELLAR_FS_READ, &f);
	if (rc == CELLAR_OK) {
		fs->close(fs, f);
		return 1;
	}
	cr_assert_eq(rc, CELLAR_ENOENT, "%s: %s", path, cellar_strerror(rc));
	return 0;
}

static void remove_file(const char *name)
{
	char path[4200];

	path_of(path, name);
	OK(fs->remove(fs, path));
}

static uint64_t size_of(const char *name)
{
	char path[4200];
	cellar_file *f;
	uint64_t size;

	path_of(path, name);
	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	OK(fs->close(fs, f));
	return size;
}

/* The whole file; *len receives its size. */
static uint8_t *read_file(const char *name, size_t *len)
{
	char path[4200];
	cellar_file *f;
	uint64_t size;
	size_t got;
	uint8_t *p;

	path_of(path, name);
	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	p = malloc(size ? (size_t)size : 1);
	cr_assert_not_null(p);
	OK(fs->read_at(fs, f, 0, p, (size_t)size, &got));
	cr_assert_eq(got, size);
	OK(fs->close(fs, f));
	*len = (size_t)size;
	return p;
}

static void write_file(const char *name, const void *p, size_t len)
{
	char path[4200];
	cellar_file *f;

	path_of(path, name);
	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->truncate(fs, f, 0));
	if (len)
		OK(fs->write_at(fs, f, 0, p, len));
	OK(fs->sync(fs, f));
	OK(fs->close(fs, f));
}

static void write_at(const char *name, uint64_t off, const void *p, size_t len)
{
	char path[4200];
	cellar_file *f;

	path_of(path, name);
	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->write_at(fs, f, off, p, len));
	OK(fs->sync(fs, f));
	OK(fs->close(fs, f));
}

/* Invert one byte of a file, so the damage is real whatever the byte held. */
static void flip_at(const char *name, uint64_t off)
{
	size_t len;
	uint8_t *buf = read_file(name, &len);
	uint8_t b;

	cr_assert_lt(off, len);
	b = (uint8_t)~buf[off];
	free(buf);
	write_at(name, off, &b, 1);
}

static void truncate_file(const char *name, uint64_t size)
{
	char path[4200];
	cellar_file *f;

	path_of(path, name);
	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->truncate(fs, f, size));
	OK(fs->sync(fs, f));
	OK(fs->close(fs, f));
}

/* Segment file names, sorted (fixed width hex: strcmp is log order). */
typedef struct seglist {
	char name[64][32];
	size_t n;
} seglist;

static int collect_seg(const char *name, void *ctx)
{
	seglist *l = ctx;
	size_t len = strlen(name);

	if (len == 20 && strcmp(name + 16, ".seg") == 0) {
		cr_assert_lt(l->n, 64);
		strcpy(l->name[l->n++], name);
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static seglist segments(void)
{
	seglist l;

	memset(&l, 0, sizeof l);
	OK(fs->list(fs, dir, collect_seg, &l));
	qsort(l.name, l.n, sizeof l.name[0], cmp_name);
	return l;
}

/* Offset of the bytes of key i in buf, or -1. */
static long find_key(const uint8_t *buf, size_t len, unsigned i)
{
	char k[16];
	size_t kl = key_of(k, i);

	for (size_t at = 0; at + kl <= len; at++)
		if (memcmp(buf + at, k, kl) == 0)
			return (long)at;
	return -1;
}

/* ---- tests --------------------------------------------------------------- */

Test(recovery, clean_reopen_replays_nothing, .init = setup, .fini = teardown)
{
	cellar_db *db;

	fill(1500);
	db = open_rw();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.replayed_records, 0);
	cr_assert_eq(d.rebuilt, 0);
	cr_assert_geq(d.ckpt_seq, 1);
	cr_assert_gt(d.ckpt_off, 32);
	check_all(db, 1500, NULL);
	OK(cellar_close(db));
	db = open_ro();
	d = debug_of(db);
	cr_assert_eq(d.replayed_records, 0);
	cr_assert_eq(d.rebuilt, 0);
	check_all(db, 1500, NULL);
	OK(cellar_close(db));
}

Test(recovery, missing_index_is_rebuilt, .init = setup, .fini = teardown)
{
	cellar_db *db;

	fill(2000);
	cr_assert(exists("index"));
	remove_file("index");
	db = open_rw();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 1);
	/* 2000 puts + 667 overwrites + 200 deletes */
	cr_assert_eq(d.replayed_records, 2000 + 667 + 200);
	check_all(db, 2000, NULL);
	OK(cellar_close(db));
	cr_assert(exists("index"), "the rebuilt index is saved");
	db = open_rw();
	d = debug_of(db);
	cr_assert_eq(d.rebuilt, 0);
	cr_assert_eq(d.replayed_records, 0);
	check_all(db, 2000, NULL);
	OK(cellar_close(db));
}

Test(recovery, missing_index_rebuilt_read_only_without_writing,
     .init = setup, .fini = teardown)
{
	cellar_db *db;

	fill(500);
	remove_file("index");
	db = open_ro();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 1);
	check_all(db, 500, NULL);
	OK(cellar_close(db));
	cr_assert(!exists("index"), "a read-only open writes nothing");
}

/* Events seen by the callback: how many RECOVERED, and the last message. */
static int recovered_events;
static char recovered_msg[256];

static void on_event(const cellar_event *ev, void *ctx)
{
	(void)ctx;
	if (ev->kind != CELLAR_EVENT_RECOVERED)
		return;
	recovered_events++;
	snprintf(recovered_msg, sizeof recovered_msg, "%s", ev->message);
}

/* The torn tail open found, as cellar_stats and the event report it. */
static void expect_torn(cellar_db *db, uint64_t bytes, const char *verb)
{
	cellar_db_stats st;

	OK(cellar_stats_sized(db, &st, sizeof st));
	cr_assert_eq(st.torn_bytes, bytes);
	cr_assert_eq(st.damaged_bytes, 0);
	cr_assert_eq(recovered_events, 1, "RECOVERED events: %d", recovered_events);
	cr_assert(strstr(recovered_msg, verb), "message: %s", recovered_msg);
	recovered_events = 0;
}

static void garbage_tail(uint8_t pattern)
{
	cellar_db *db;
	uint8_t junk[100];

	fill(800);
	seglist l = segments();
	cr_assert_geq(l.n, 1);
	const char *newest = l.name[l.n - 1];
	uint64_t size = size_of(newest);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = pattern ? (uint8_t)(pattern ^ (i * 29)) : 0;
	write_at(newest, size, junk, sizeof junk);
	cr_assert_eq(size_of(newest), size + sizeof junk);

	/* Read-only: the tail is ignored and left alone, and reported. */
	opts.on_event = on_event;
	recovered_events = 0;
	db = open_ro();
	expect_torn(db, sizeof junk, "ignored 100 bytes");
	check_all(db, 800, NULL);
	OK(cellar_close(db));
	cr_assert_eq(size_of(newest), size + sizeof junk);
	uint8_t back[100];
	size_t len;
	uint8_t *all = read_file(newest, &len);
	memcpy(back, all + size, sizeof back);
	free(all);
	cr_assert_arr_eq(back, junk, sizeof junk, "tail bytes unchanged");

	/* Read-write: cut off, and reported. */
	db = open_rw();
	expect_torn(db, sizeof junk, "cut 100 bytes");
	check_all(db, 800, NULL);
	cr_assert_eq(size_of(newest), size);
	/* And the store goes on from there. */
	put(db, 5000 % MAXKEYS, 3);
	OK(cellar_close(db));
	db = open_rw();
	check_all(db, MAXKEYS, NULL);
	cr_assert_eq(recovered_events, 0, "a clean store reported recovery");
	OK(cellar_close(db));
	opts.on_event = NULL;
}

Test(recovery, garbage_tail_cut_on_read_write_open, .init = setup,
     .fini = teardown)
{
	garbage_tail(0xa5);
}

Test(recovery, zero_tail_cut_on_read_write_open, .init = setup,
     .fini = teardown)
{
	garbage_tail(0);
}

/* The number in key "key-%06u" at p (not NUL-terminated). */
static unsigned key_num(const void *p)
{
	char d[7];

	memcpy(d, (const char *)p + 4, 6);
	d[6] = 0;
	return (unsigned)atoi(d);
}

/* The lost-bytes statistic (0.3) of an open handle. */
static uint64_t lost_of(cellar_db *db)
{
	cellar_db_stats st;

	OK(cellar_stats_sized(db, &st, sizeof st));
	return st.lost_bytes;
}

/*
 * Every key as gen says, except that a key in lost[] reads as
 * CELLAR_ECORRUPT, never as absent; iteration reports the cut and gives
 * every other live key.
 */
static void check_cut(cellar_db *db, unsigned n, const char *lost)
{
	unsigned corrupt = 0, items = 0, errors = 0;
	cellar_iter *it;
	const void *k;
	size_t kl;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		rc = check_key(db, i);
		if (lost[i] == 1) {
			cr_assert_eq(rc, CELLAR_ECORRUPT, "lost key %u: %s", i,
			             cellar_strerror(rc));
			corrupt++;
		} else {
			cr_assert_eq(rc, gen[i] ? CELLAR_OK : CELLAR_ENOTFOUND,
			             "key %u: %s (%s)", i, cellar_strerror(rc),
			             cellar_errmsg());
		}
	}
	cr_assert_gt(corrupt, 0);
	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, &k, &kl, NULL, NULL)) != CELLAR_EDONE) {
		if (rc == CELLAR_ECORRUPT) {
			errors++;
			continue;
		}
		OK(rc);
		unsigned i = key_num(k);
		cr_assert(lost[i] != 1 && gen[i], "iteration gives key %u", i);
		items++;
	}
	cellar_iter_free(it);
	cr_assert_geq(errors, 1, "iteration does not report the cut");
	unsigned live = 0;
	for (unsigned i = 0; i < n; i++)
		live += lost[i] != 1 && gen[i];
	cr_assert_eq(items, live);
}

/*
 * A segment of a cleanly closed store cut short (here: the newest, to a
 * third of its length) is damage, not a torn write: the checkpoint said
 * how long it was.  Its lost keys read as CELLAR_ECORRUPT on read-only and
 * read-write handles, iteration and verify report it, the statistic and
 * the event say how much, and it stays so across reopens.
 */
static void cut_newest_segment(char *lost, unsigned n, uint64_t *cut)
{
	fill(n);
	seglist l = segments();
	const char *newest = l.name[l.n - 1];
	uint64_t size = size_of(newest), keep = size / 3;
	size_t len;
	uint8_t *buf = read_file(newest, &len);

	/* The keys whose newest record was past the cut (or across it). */
	memset(lost, 0, n);
	for (uint64_t off = 32; off < size;) {
		record_header h;
		OK(record_decode_header(buf + off, (size_t)(size - off), size - off,
		                        &h));
		unsigned i = key_num(buf + off + h.header_len);
		if (off + h.total > keep)
			lost[i] = gen[i] ? 1 : 2; /* 2: a lost delete */
		off += h.total;
	}
	free(buf);
	truncate_file(newest, keep);
	*cut = size - keep;
}

Test(recovery, cut_segment_of_a_clean_store_reads_as_corrupt, .init = setup,
     .fini = teardown)
{
	static char lost[300];
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_verify_report r;
	uint64_t cut;
	cellar_db *db;

	cut_newest_segment(lost, 300, &cut);
	db = open_ro();
	check_cut(db, 300, lost);
	cr_assert_eq(lost_of(db), cut);
	OK(cellar_close(db));
	vo.fs = fs;
	OK(cellar_verify(dir, &vo, &r));
	cr_assert_geq(r.damage[CELLAR_DAMAGE_INDEX_STALE].count, 1);

	seglist before = segments();
	db = open_rw();
	cr_assert_eq(lost_of(db), cut);
	check_cut(db, 300, lost);
	/* New writes go to a new segment, not after the cut. */
	put(db, 0, 9);
	lost[0] = 0;
	OK(cellar_sync(db));
	cr_assert_eq(segments().n, before.n + 1);
	check_cut(db, 300, lost);
	OK(cellar_close(db));
	/* The checkpoint the close wrote still knows what was lost. */
	db = open_ro();
	cr_assert_eq(lost_of(db), cut);
	check_cut(db, 300, lost);
	OK(cellar_close(db));
}

/* Compaction keeps a cut segment: its slots still name the lost records. */
Test(recovery, compaction_keeps_a_cut_segment, .init = setup, .fini = teardown)
{
	static char lost[300];
	cellar_compact_result res;
	uint64_t cut;
	cellar_db *db;

	cut_newest_segment(lost, 300, &cut);
	db = open_rw();
	for (unsigned i = 0; i < 300; i++)
		if (lost[i] != 1 && gen[i])
			put(db, i, gen[i] + 1);
	OK(cellar_compact(db, &res));
	check_cut(db, 300, lost);
	OK(cellar_close(db));
	db = open_ro();
	check_cut(db, 300, lost);
	cr_assert_eq(lost_of(db), cut);
	OK(cellar_close(db));
}

/* cellar_repair accepts the loss: the lost keys are then absent. */
Test(recovery, repair_accepts_a_cut_segment, .init = setup, .fini = teardown)
{
	static char lost[300];
	cellar_repair_result rr;
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	uint64_t cut;
	cellar_db *db;

	cut_newest_segment(lost, 300, &cut);
	vo.fs = fs;
	OK(cellar_repair(dir, &vo, &rr));
	cr_assert_eq(rr.index_rebuilt, 1);
	db = open_rw(); /* keys with lost records are skipped: an older
	                 * value (or one a lost delete removed) is back */
	cr_assert_eq(lost_of(db), 0);
	check_all(db, 300, lost);
	OK(cellar_close(db));
}

/* What to damage in a record whose key starts at key_at (1000-byte value,
 * so the header is: checksum 4, kind 1, key length 1, value length 2). */
enum damage { DAMAGE_VALUE, DAMAGE_KIND, DAMAGE_CHECKSUM, DAMAGE_KEYLEN };

static void damaged_older_record(enum damage what, int drop_index)
{
	enum { N = 300, VICTIM = 20 };
	cellar_db *db;
	size_t len;

	big_values = 1000;
	opts.max_segment_size = 64 << 10;
	db = open_rw();
	memset(gen, 0, sizeof gen);
	for (unsigned i = 0; i < N; i++)
		put(db, i, 1);
	OK(cellar_close(db));
	seglist l = segments();
	cr_assert_geq(l.n, 4, "several segments");
	uint8_t *buf = read_file(l.name[0], &len);
	long at = find_key(buf, len, VICTIM);
	cr_assert_gt(at, 32, "victim in the oldest segment");
	uint64_t off;
	uint8_t b;
	switch (what) {
	case DAMAGE_VALUE: off = (uint64_t)at + 10 + 500; break;
	case DAMAGE_KIND: off = (uint64_t)at - 4; break;
	case DAMAGE_CHECKSUM: off = (uint64_t)at - 6; break;
	default: off = (uint64_t)at - 3; break;
	}
	b = buf[off] ^ (what == DAMAGE_KIND ? 0x07 : 0x40);
	free(buf);
	write_at(l.name[0], off, &b, 1);
	if (drop_index)
		remove_file("index");

	db = open_rw();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, drop_index);
	int rc = check_key(db, VICTIM);
	if (drop_index)
		cr_assert_eq(rc, CELLAR_ENOTFOUND, "damaged record skipped: %s",
		             cellar_strerror(rc));
	else
		cr_assert_eq(rc, CELLAR_ECORRUPT, "damage reported: %s",
		             cellar_strerror(rc));
	if (!drop_index && what != DAMAGE_KIND)
		cr_assert(strstr(cellar_errmsg(), ".seg: bad checksum at offset"),
		          "the message names the file: %s", cellar_errmsg());
	char skip[N] = { 0 };
	skip[VICTIM] = 1;
	check_all(db, N, skip);
	uint64_t count;
	OK(cellar_count(db, &count));
	cr_assert_eq(count, drop_index ? N - 1 : N);
	/* A new value for the victim heals it. */
	put(db, VICTIM, 2);
	OK(cellar_close(db));
	db = open_rw();
	check_all(db, N, NULL);
	OK(cellar_close(db));
}

Test(recovery, damaged_value_in_older_segment_affects_only_its_key,
     .init = setup, .fini = teardown)
{
	damaged_older_record(DAMAGE_VALUE, 0);
}

Test(recovery, damaged_value_skipped_on_rebuild, .init = setup,
     .fini = teardown)
{
	damaged_older_record(DAMAGE_VALUE, 1);
}

Test(recovery, damaged_kind_skipped_on_rebuild, .init = setup,
     .fini = teardown)
{
	damaged_older_record(DAMAGE_KIND, 1);
}

Test(recovery, damaged_checksum_skipped_on_rebuild, .init = setup,
     .fini = teardown)
{
	damaged_older_record(DAMAGE_CHECKSUM, 1);
}

Test(recovery, damaged_key_length_skipped_on_rebuild, .init = setup,
     .fini = teardown)
{
	damaged_older_record(DAMAGE_KEYLEN, 1);
}

Test(recovery, leftover_index_tmp_is_removed, .init = setup,
     .fini = teardown)
{
	cellar_db *db;

	fill(200);
	write_file("index.tmp", "half a checkpoint", 17);
	db = open_ro();
	check_all(db, 200, NULL);
	OK(cellar_close(db));
	cr_assert(exists("index.tmp"), "read-only leaves it");
	db = open_rw();
	cr_assert(!exists("index.tmp"));
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 0);
	check_all(db, 200, NULL);
	OK(cellar_close(db));
}

/* Remove segment file which (0 oldest, 1 second, -1 newest). */
static void removed_segment(int which)
{
	enum { N = 300 };
	cellar_db *db = NULL;
	size_t len;

	big_values = 1000;
	opts.max_segment_size = 64 << 10;
	db = open_rw();
	memset(gen, 0, sizeof gen);
	for (unsigned i = 0; i < N; i++)
		put(db, i, 1);
	OK(cellar_close(db));
	seglist l = segments();
	cr_assert_geq(l.n, 4);
	const char *victim = l.name[which < 0 ? (int)l.n - 1 : which];
	/* Which keys live in the segment about to go. */
	uint8_t *buf = read_file(victim, &len);
	char lost[N] = { 0 };
	unsigned nlost = 0;
	for (unsigned i = 0; i < N; i++)
		if (find_key(buf, len, i) >= 0) {
			lost[i] = 1;
			nlost++;
		}
	free(buf);
	cr_assert_gt(nlost, 0);
	remove_file(victim);

	db = NULL;
	int rc = cellar_open(&db, dir, &opts);
	cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT, "%s",
	          cellar_strerror(rc));
	if (rc == CELLAR_ECORRUPT) {
		cr_assert_null(db);
		return;
	}
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 1, "the checkpoint names a missing segment");
	for (unsigned i = 0; i < N; i++)
		if (lost[i])
			gen[i] = 0;
	check_all(db, N, NULL);
	/* The store keeps working. */
	put(db, 0, 5);
	OK(cellar_close(db));
	db = open_rw();
	check_all(db, N, NULL);
	OK(cellar_close(db));
}

Test(recovery, removed_oldest_segment_rebuilds_or_fails_cleanly,
     .init = setup, .fini = teardown)
{
	removed_segment(0);
}

Test(recovery, removed_middle_segment_rebuilds_or_fails_cleanly,
     .init = setup, .fini = teardown)
{
	removed_segment(1);
}

Test(recovery, removed_newest_segment_rebuilds_or_fails_cleanly,
     .init = setup, .fini = teardown)
{
	removed_segment(-1);
}

Test(recovery, damaged_record_mid_newest_segment_is_skipped_not_cut,
     .init = setup, .fini = teardown)
{
	enum { N = 200, VICTIM = 100 };
	cellar_db *db;
	size_t len;

	fill(N);
	seglist l = segments();
	const char *newest = l.name[l.n - 1];
	uint64_t size = size_of(newest);
	uint8_t *buf = read_file(newest, &len);
	/* The key's last byte: part of the checksummed record. */
	long at = find_key(buf, len, VICTIM);
	cr_assert_gt(at, 0);
	uint8_t b = buf[at + 9] ^ 0x01;
	free(buf);
	write_at(newest, (uint64_t)at + 9, &b, 1);
	remove_file("index");
	opts.on_event = on_event;
	recovered_events = 0;
	db = open_rw();
	opts.on_event = NULL;
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 1);
	cr_assert_eq(size_of(newest), size, "valid records follow: nothing cut");
	/* The loss is not silent: open reports the bytes it skipped. */
	cellar_db_stats st;
	OK(cellar_stats_sized(db, &st, sizeof st));
	cr_assert_gt(st.damaged_bytes, 0);
	cr_assert_eq(st.torn_bytes, 0);
	cr_assert_eq(recovered_events, 1);
	cr_assert(strstr(recovered_msg, "damaged records"), "%s", recovered_msg);
	/* Key 100 was put once (fill overwrites i % 3 == 0 and deletes
	 * i % 10 == 1): its only record is gone. */
	cr_assert_eq(check_key(db, VICTIM), CELLAR_ENOTFOUND);
	gen[VICTIM] = 0;
	check_all(db, N, NULL);
	OK(cellar_close(db));
}

Test(recovery, damaged_index_bucket_is_served_then_rebuilt,
     .init = setup, .fini = teardown)
{
	cellar_options ro = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	uint8_t b = 0x5a;
	unsigned corrupt = 0;

	fill(2000);
	/* A byte in the first primary bucket chunk (after the 4 KiB header). */
	write_at("index", 4096 + 64 * 3 + 5, &b, 1);
	/* Read-only: chunks are checked when first touched, and a damaged
	 * one sends lookups to a table rebuilt in memory: every key is
	 * served. */
	ro.flags = CELLAR_READONLY;
	ro.fs = fs;
	OK(cellar_open(&db, dir, &ro));
	for (unsigned i = 0; i < 2000; i++) {
		int rc = check_key(db, i);
		cr_assert(rc == CELLAR_OK || (rc == CELLAR_ENOTFOUND && !gen[i]),
		          "key %u: %s", i, cellar_strerror(rc));
		corrupt += rc == CELLAR_ECORRUPT;
	}
	cr_assert_eq(corrupt, 0);
	check_all(db, 2000, NULL);
	OK(cellar_close(db));
	/* Read-write: every chunk is checked at open, and the damage rebuilt. */
	db = open_rw();
	cr_assert_eq(debug_of(db).rebuilt, 1);
	check_all(db, 2000, NULL);
	OK(cellar_close(db));
}

Test(recovery, stale_checkpoint_is_replayed_forward, .init = setup,
     .fini = teardown)
{
	cellar_db *db;
	size_t len;

	fill(500);
	uint8_t *old = read_file("index", &len);
	db = open_rw();
	for (unsigned i = 500; i < 900; i++)
		put(db, i, 1);
	unsigned newer = 400;
	for (unsigned i = 0; i < 100; i++)
		if (gen[i]) {
			del(db, i);
			newer++;
		}
	cr_assert_eq(newer, 490);
	OK(cellar_close(db));
	write_file("index", old, len); /* back to the older checkpoint */
	free(old);
	db = open_ro();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 0);
	cr_assert_eq(d.replayed_records, newer, "only the newer records");
	check_all(db, 900, NULL);
	OK(cellar_close(db));
	db = open_rw();
	check_all(db, 900, NULL);
	OK(cellar_close(db));
}

Test(recovery, checkpoint_of_another_store_is_not_used, .init = setup,
     .fini = teardown)
{
	cellar_db *db;
	size_t len;
	char *mine = dir;

	/* Another store with another seed and other keys. */
	dir = tc_dir_new();
	opts.hash_seed = 0x1111;
	db = open_rw();
	for (unsigned i = 0; i < 50; i++)
		put(db, 3000 + i, 1);
	OK(cellar_close(db));
	uint8_t *theirs = read_file("index", &len);
	tc_dir_free(dir);
	dir = mine;

	opts.hash_seed = 0x2222;
	fill(400);
	write_file("index", theirs, len);
	free(theirs);
	for (unsigned i = 0; i < 50; i++)
		gen[3000 + i] = 0;
	db = NULL;
	int rc = cellar_open(&db, dir, &opts);
	cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT, "%s",
	          cellar_strerror(rc));
	if (rc == CELLAR_OK) {
		cellar__debug_info d = debug_of(db);
		cr_assert_eq(d.rebuilt, 1);
		check_all(db, 3050, NULL);
		OK(cellar_close(db));
	}
}

Test(recovery, damaged_checkpoint_header_rebuilds, .init = setup,
     .fini = teardown)
{
	cellar_db *db;

	fill(600);
	flip_at("index", 20); /* inside the hash seed, which is random */
	db = open_rw();
	cellar__debug_info d = debug_of(db);
	cr_assert_eq(d.rebuilt, 1);
	check_all(db, 600, NULL);
	OK(cellar_close(db));
}

Test(recovery, read_only_open_replays_log_past_checkpoint, .init = setup,
     .fini = teardown)
{
	cellar_db *w, *r;

	memset(gen, 0, sizeof gen);
	w = open_rw();
	for (unsigned i = 0; i < 100; i++)
		put(w, i, 1);
	OK(cellar_sync(w)); /* durable, but too little log for a checkpoint */
	r = open_ro();
	cellar__debug_info d = debug_of(r);
	cr_assert_eq(d.rebuilt, 0);
	cr_assert_eq(d.replayed_records, 100);
	check_all(r, 100, NULL);
	OK(cellar_close(r));
	OK(cellar_close(w));
	r = open_ro();
	d = debug_of(r);
	cr_assert_eq(d.replayed_records, 0, "close wrote a checkpoint");
	check_all(r, 100, NULL);
	OK(cellar_close(r));
}

Test(recovery, short_newest_segment_is_dropped, .init = setup,
     .fini = teardown)
{
	cellar_db *db;
	char name[32];

	fill(300);
	seglist l = segments();
	/* A segment created just before a crash, before its header landed. */
	unsigned long long seq = strtoull(l.name[l.n - 1], NULL, 16) + 1;
	snprintf(name, sizeof name, "%016llx.seg", seq);
	write_file(name, "CELLARSG", 8);
	db = open_rw();
	check_all(db, 300, NULL);
	cr_assert(!exists(name));
	put(db, 300, 1);
	OK(cellar_close(db));
	db = open_rw();
	check_all(db, 301, NULL);
	OK(cellar_close(db));
}

/* A record of a kind this version does not know, appended to the log. */
static void append_unknown_kind(int damaged)
{
	cellar_db *db = NULL;
	uint8_t rec[64];

	fill(100);
	seglist l = segments();
	const char *newest = l.name[l.n - 1];
	uint64_t size = size_of(newest);
	/* 3 is a batch header, 4 an expiring put */
	size_t h = record_encode_header(rec, 5, 4, 2);
	memcpy(rec + h, "newk", 4);
	memcpy(rec + h + 4, "vv", 2);
	record_seal(rec, h + 6);
	if (damaged)
		rec[h + 5] ^= 1;
	write_at(newest, size, rec, h + 6);

	if (!damaged) {
		/* Written by a newer version: refuse, and do not cut it. */
		opts.flags = CELLAR_READONLY;
		ERR(CELLAR_EVERSION, cellar_open(&db, dir, &opts));
		cr_assert_null(db);
		opts.flags = CELLAR_CREATE;
		ERR(CELLAR_EVERSION, cellar_open(&db, dir, &opts));
		cr_assert_null(db);
		cr_assert_eq(size_of(newest), size + h + 6);
	} else {
		/* Just damage at the tail: cut like any torn write. */
		db = open_rw();
		check_all(db, 100, NULL);
		OK(cellar_close(db));
		cr_assert_eq(size_of(newest), size);
	}
}

Test(recovery, record_of_unknown_kind_is_eversion, .init = setup,
     .fini = teardown)
{
	append_unknown_kind(0);
}

Test(recovery, damaged_record_of_unknown_kind_is_cut, .init = setup,
     .fini = teardown)
{
	append_unknown_kind(1);
}

/*
 * The index file of another store that happens to share the hash seed (a
 * copied or restored file) is a checkpoint that does not match the
 * segments: it must never make the store lose data.
 */
Test(recovery, foreign_checkpoint_with_same_seed_deletes_nothing,
     .init = setup, .fini = teardown)
{
	enum { N = 300 };
	cellar_db *db = NULL;
	cellar_compact_result res;
	size_t len;
	char *mine = dir;

	big_values = 1000;
	opts.max_segment_size = 64 << 10;
	opts.hash_seed = 0x5eed;
	/* Store B: everything rewritten twice, then compacted. */
	dir = tc_dir_new();
	db = open_rw();
	for (unsigned g = 1; g <= 3; g++)
		for (unsigned i = 0; i < N; i++)
			put(db, i, g);
	OK(cellar_compact(db, &res));
	cr_assert_gt(res.segments_compacted, 0);
	OK(cellar_close(db));
	uint8_t *theirs = read_file("index", &len);
	tc_dir_free(dir);
	dir = mine;

	/* Store A: same seed, its own data. */
	db = open_rw();
	memset(gen, 0, sizeof gen);
	for (unsigned i = 0; i < N; i++)
		put(db, i, 7);
	OK(cellar_close(db));
	seglist before = segments();
	cr_assert_geq(before.n, 4);
	write_file("index", theirs, len);
	free(theirs);

	db = NULL;
	int rc = cellar_open(&db, dir, &opts);
	cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT, "%s",
	          cellar_strerror(rc));
	/* Look at the files first, then close, then judge (no leak on failure). */
	unsigned removed = 0;
	for (size_t i = 0; i < before.n; i++)
		removed += !exists(before.name[i]);
	int rebuilt = rc == CELLAR_OK ? debug_of(db).rebuilt : -1;
	uint64_t count = 0;
	if (rc == CELLAR_OK) {
		OK(cellar_count(db, &count));
		OK(cellar_close(db));
	}
	cr_assert_eq(removed, 0, "%u of %zu segments removed; %llu keys left",
	             removed, before.n, (unsigned long long)count);
	if (rc == CELLAR_OK) {
		cr_assert_eq(rebuilt, 1);
		db = open_ro();
		check_all(db, N, NULL);
		OK(cellar_close(db));
	}
}

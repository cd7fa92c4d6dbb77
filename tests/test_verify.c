/*
 * test_verify.c - cellar_verify and cellar_repair: a sound store reports
 * nothing, each kind of damage is reported with its count and first place,
 * the segment scan goes on past a damaged index or record, the index is
 * compared with the log in both directions, repair rebuilds what verify
 * condemns, and the calls refuse bad arguments and foreign directories.
 *
 * Runs once per file system.  Files are edited through the file-system
 * table, so the same code damages posix, mmap and mem stores.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"

#define HASH_SEED 0x5eed5eedull

/* ---- helpers ------------------------------------------------------------ */

static void join(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static uint64_t file_size(cellar_fs *fs, const char *path)
{
	cellar_file *f;
	uint64_t n;

	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &n));
	fs->close(fs, f);
	return n;
}

/* Invert the byte at off of the file. */
static void flip(cellar_fs *fs, const char *path, uint64_t off)
{
	cellar_file *f;
	unsigned char b;
	size_t got;

	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->read_at(fs, f, off, &b, 1, &got));
	cr_assert_eq(got, 1);
	b ^= 0xff;
	OK(fs->write_at(fs, f, off, &b, 1));
	fs->close(fs, f);
}

static void cut(cellar_fs *fs, const char *path, uint64_t size)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE, &f));
	OK(fs->truncate(fs, f, size));
	fs->close(fs, f);
}

static void append(cellar_fs *fs, const char *path, const void *p, size_t n)
{
	cellar_file *f;
	uint64_t size;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->size(fs, f, &size));
	OK(fs->write_at(fs, f, size, p, n));
	fs->close(fs, f);
}

/* Copy a whole file, possibly between two file systems. */
static void copy_file(cellar_fs *from, const char *src, cellar_fs *to,
                      const char *dst)
{
	uint64_t n = file_size(from, src);
	char *buf = malloc(n ? n : 1);
	cellar_file *f;
	size_t got;

	cr_assert(buf);
	OK(from->open(from, src, CELLAR_FS_READ, &f));
	OK(from->read_at(from, f, 0, buf, n, &got));
	from->close(from, f);
	cr_assert_eq(got, n);
	OK(to->open(to, dst, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(to->truncate(to, f, 0));
	OK(to->write_at(to, f, 0, buf, n));
	to->close(to, f);
	free(buf);
}

/* The segment files' paths, oldest first (names sort in log order). */
typedef struct seg_list {
	char names[64][32];
	int n;
} seg_list;

static int collect(const char *name, void *ctx)
{
	seg_list *l = ctx;
	size_t len = strlen(name);

	if (len > 4 && strcmp(name + len - 4, ".seg") == 0 && l->n < 64)
		snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void segments_of(cellar_fs *fs, const char *dir, seg_list *l)
{
	l->n = 0;
	OK(fs->list(fs, dir, collect, l));
	qsort(l->names, (size_t)l->n, sizeof l->names[0], cmp_name);
	cr_assert_gt(l->n, 0, "no segment in %s", dir);
}

/* The sequence number of a segment file name. */
static uint64_t seq_of_name(const char *name)
{
	return strtoull(name, NULL, 16);
}

static cellar_verify_options vopts(cellar_fs *fs)
{
	cellar_verify_options o = CELLAR_VERIFY_OPTIONS_INIT;
	o.fs = fs;
	return o;
}

/* Verify with s's file system. */
static cellar_verify_report verify(tc_store *s)
{
	cellar_verify_options o = vopts(s->fs);
	cellar_verify_report r;

	OK(cellar_verify(s->dir, &o, &r));
	return r;
}

static void assert_sound(const cellar_verify_report *r)
{
	for (int k = 0; k < CELLAR_DAMAGE_KINDS; k++)
		cr_assert_eq(r->damage[k].count, 0, "damage of kind %d: %llu", k,
		             (unsigned long long)r->damage[k].count);
	cr_assert_eq(r->problems, 0);
	cr_assert_eq(r->index_checked, 1);
}

/* NKEYS keys, a third overwritten, a tenth deleted, in 64 KiB segments. */
#define NKEYS 3000

static void key_of(char *k, int i)
{
	snprintf(k, 16, "key%06d", i);
}

static uint64_t fill(tc_store *s)
{
	char k[16], v[64];
	uint64_t live = 0;

	for (int i = 0; i < NKEYS; i++) {
		key_of(k, i);
		snprintf(v, sizeof v, "value-%d-padding-padding-padding", i);
		OK(cellar_put(s->db, k, strlen(k), v, strlen(v)));
	}
	for (int i = 0; i < NKEYS; i += 3) {
		key_of(k, i);
		OK(cellar_put(s->db, k, strlen(k), "second", 6));
	}
	for (int i = 0; i < NKEYS; i += 10) {
		key_of(k, i);
		OK(cellar_delete(s->db, k, strlen(k)));
	}
	OK(cellar_count(s->db, &live));
	return live;
}

static void new_filled(tc_store *s, uint64_t *keys)
{
	tc_store_init(s);
	s->o.max_segment_size = 64u << 10;
	s->o.hash_seed = HASH_SEED;
	tc_store_open(s);
	*keys = fill(s);
	tc_store_close(s);
}

/* ---- sound stores ------------------------------------------------------- */

TestSuite(verify);

Test(verify, sound_store_reports_no_damage)
{
	tc_store s;
	uint64_t keys;

	new_filled(&s, &keys);
	cellar_verify_report r = verify(&s);
	assert_sound(&r);
	cr_assert_eq(r.keys, keys);
	cr_assert_eq(r.index_keys, keys);
	cr_assert_eq(r.index_slots, keys);
	cr_assert_eq(r.puts, NKEYS + NKEYS / 3 + (NKEYS % 3 != 0));
	cr_assert_eq(r.deletes, NKEYS / 10);
	cr_assert_eq(r.records, r.puts + r.deletes);
	cr_assert_gt(r.segments, 1, "the store should span several segments");
	cr_assert_gt(r.segment_bytes, 0);
	tc_store_free(&s);
}

Test(verify, empty_store_and_a_store_with_unsynced_log)
{
	tc_store s;
	tc_store_new(&s, 0);
	tc_store_close(&s);
	cellar_verify_report r = verify(&s);
	assert_sound(&r);
	cr_assert_eq(r.keys, 0);
	cr_assert_eq(r.records, 0);

	/* Records past the checkpoint are replayed into the index first. */
	tc_store_open(&s);
	OK(cellar_put(s.db, "a", 1, "1", 1));
	OK(cellar_put(s.db, "b", 1, "2", 1));
	OK(cellar_delete(s.db, "a", 1));
	OK(cellar_sync(s.db));
	r = verify(&s);
	assert_sound(&r);
	cr_assert_eq(r.keys, 1);
	tc_store_free(&s);
}

static uint64_t last_done, last_total, calls;

static void count_progress(uint64_t done, uint64_t total, void *ctx)
{
	(void)ctx;
	cr_assert_leq(done, total);
	cr_assert_geq(done, last_done, "progress went back");
	last_done = done;
	last_total = total;
	calls++;
}

Test(verify, progress_ends_at_the_total)
{
	tc_store s;
	uint64_t keys;

	new_filled(&s, &keys);
	cellar_verify_options o = vopts(s.fs);
	cellar_verify_report r;
	o.on_progress = count_progress;
	last_done = last_total = calls = 0;
	OK(cellar_verify(s.dir, &o, &r));
	cr_assert_gt(calls, 0);
	cr_assert_eq(last_done, r.segment_bytes);
	cr_assert_eq(last_total, r.segment_bytes);
	tc_store_free(&s);
}

/* ---- arguments and foreign directories ---------------------------------- */

Test(verify, null_and_bad_arguments)
{
	cellar_verify_report r;
	cellar_verify_options o = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_repair_result res;

	ERR(CELLAR_EINVAL, cellar_verify(NULL, NULL, &r));
	ERR(CELLAR_EINVAL, cellar_verify("", NULL, &r));
	ERR(CELLAR_EINVAL, cellar_verify("/x", NULL, NULL));
	o.version = 0;
	ERR(CELLAR_EINVAL, cellar_verify("/x", &o, &r));
	o.version = CELLAR_VERIFY_OPTIONS_VERSION + 1;
	ERR(CELLAR_EINVAL, cellar_verify("/x", &o, &r));
	ERR(CELLAR_EINVAL, cellar_repair(NULL, NULL, &res));
	cr_assert_eq(res.index_rebuilt, 0);
	cr_assert_eq(res.rebuild_reason, -1);
	ERR(CELLAR_EINVAL, cellar_repair("", NULL, NULL));
	ERR(CELLAR_EINVAL, cellar_repair("/x", &o, NULL));
	cr_assert_neq(cellar_errmsg()[0], '\0');
}

Test(verify, missing_directory_is_enoent)
{
	tc_store s;
	tc_store_init(&s);
	cellar_verify_options o = vopts(s.fs);
	cellar_verify_report r;
	ERR(CELLAR_ENOENT, cellar_verify(s.dir, &o, &r));
	cr_assert(strstr(cellar_errmsg(), "no cellar store"));
	ERR(CELLAR_ENOENT, cellar_repair(s.dir, &o, NULL));
	tc_store_free(&s);
}

Test(verify, foreign_files)
{
	tc_store s;
	char path[4096], junk[100];

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 37 + 11);
	/* A meta file that is not cellar's: the store cannot be scanned. */
	tc_store_init(&s);
	OK(s.fs->mkdir(s.fs, s.dir));
	join(path, sizeof path, s.dir, "meta");
	append(s.fs, path, junk, 64);
	cellar_verify_options o = vopts(s.fs);
	cellar_verify_report r;
	ERR(CELLAR_ECORRUPT, cellar_verify(s.dir, &o, &r));
	ERR(CELLAR_ECORRUPT, cellar_repair(s.dir, &o, NULL));
	tc_store_free(&s);

	/* A file named like a segment that is not one. */
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	tc_store_close(&s);
	join(path, sizeof path, s.dir, "00000000000000ff.seg");
	append(s.fs, path, junk, sizeof junk);
	o = vopts(s.fs);
	ERR(CELLAR_ECORRUPT, cellar_verify(s.dir, &o, &r));
	cr_assert(strstr(cellar_errmsg(), "00000000000000ff"), "%s",
	          cellar_errmsg());
	tc_store_free(&s);

	/* An index file that is not an index: reported, the scan goes on. */
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	tc_store_close(&s);
	join(path, sizeof path, s.dir, "index");
	cut(s.fs, path, 0);
	append(s.fs, path, junk, sizeof junk);
	r = verify(&s);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_INDEX_FILE].count, 1);
	cr_assert_eq(r.problems, 1);
	cr_assert_eq(r.index_checked, 0);
	cr_assert_eq(r.keys, 1);
	tc_store_free(&s);
}

/* ---- damage ------------------------------------------------------------- */

typedef struct seen {
	uint64_t n[CELLAR_DAMAGE_KINDS];
	int with_key;
} seen;

static void count_problem(const cellar_problem *p, void *ctx)
{
	seen *c = ctx;
	cr_assert_lt((int)p->kind, CELLAR_DAMAGE_KINDS);
	cr_assert_not_null(p->message);
	cr_assert_neq(p->message[0], '\0');
	c->n[p->kind]++;
	c->with_key += p->key != NULL;
}

Test(verify, damaged_record_is_reported_and_the_scan_goes_on)
{
	tc_store s;
	seg_list l;
	char path[4096];
	uint64_t keys;

	new_filled(&s, &keys);
	segments_of(s.fs, s.dir, &l);
	join(path, sizeof path, s.dir, l.names[0]);
	uint64_t size = file_size(s.fs, path);
	flip(s.fs, path, size / 2);

	cellar_verify_options o = vopts(s.fs);
	cellar_verify_report r;
	seen c = { { 0 }, 0 };
	o.on_problem = count_problem;
	o.ctx = &c;
	OK(cellar_verify(s.dir, &o, &r));
	const cellar_damage *d = &r.damage[CELLAR_DAMAGE_RECORD];
	cr_assert_eq(d->count, 1);
	cr_assert_eq(d->first_seq, seq_of_name(l.names[0]));
	cr_assert_leq(d->first_off, size / 2);
	cr_assert_gt(d->first_off + d->bytes, size / 2);
	cr_assert_lt(d->bytes, 200, "only the damaged record is skipped");
	cr_assert_eq(c.n[CELLAR_DAMAGE_RECORD], 1);
	cr_assert_eq(r.problems, c.n[CELLAR_DAMAGE_RECORD] +
	                         c.n[CELLAR_DAMAGE_SLOT_BAD] +
	                         c.n[CELLAR_DAMAGE_SLOT_STALE] +
	                         c.n[CELLAR_DAMAGE_KEY_MISSING] +
	                         c.n[CELLAR_DAMAGE_COUNT]);
	/* Every other record was read. */
	cr_assert_eq(r.records + 1, NKEYS + NKEYS / 3 + NKEYS / 10);
	cr_assert_eq(r.index_checked, 1);
	tc_store_free(&s);
}

Test(verify, damaged_index_chunks_are_each_reported)
{
	tc_store s;
	char path[4096], k[16];
	uint64_t keys = 15000;

	/* 15,000 keys: about 3,000 buckets, three chunks of 1024. */
	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < keys; i++) {
		key_of(k, (int)i);
		OK(cellar_put(s.db, k, strlen(k), "v", 1));
	}
	tc_store_close(&s);
	join(path, sizeof path, s.dir, "index");
	cr_assert_gt(file_size(s.fs, path), 4096 + 2 * 65536 + 100,
	             "the index should have several chunks");
	flip(s.fs, path, 4096 + 100);         /* primary chunk 0 */
	flip(s.fs, path, 4096 + 65536 + 100); /* primary chunk 1 */
	cellar_verify_report r = verify(&s);
	const cellar_damage *d = &r.damage[CELLAR_DAMAGE_INDEX_CHUNK];
	cr_assert_eq(d->count, 2);
	cr_assert_eq(d->first_seq, 0);
	cr_assert_eq(d->first_off, 4096);
	cr_assert_eq(r.problems, 2);
	cr_assert_eq(r.index_checked, 0);
	cr_assert_eq(r.keys, keys, "the segments are scanned all the same");

	cellar_repair_result res;
	cellar_verify_options o = vopts(s.fs);
	OK(cellar_repair(s.dir, &o, &res));
	cr_assert_eq(res.index_rebuilt, 1);
	cr_assert_eq(res.rebuild_reason, CELLAR_DAMAGE_INDEX_CHUNK);
	cr_assert_eq(res.keys, keys);
	r = verify(&s);
	assert_sound(&r);
	tc_store_free(&s);
}

Test(verify, missing_index_and_truncated_segment)
{
	tc_store s;
	seg_list l;
	char path[4096];
	uint64_t keys;

	new_filled(&s, &keys);
	join(path, sizeof path, s.dir, "index");
	OK(s.fs->remove(s.fs, path));
	cellar_verify_report r = verify(&s);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_INDEX_FILE].count, 1);
	cr_assert_eq(r.problems, 1);
	cr_assert_eq(r.keys, keys);
	cellar_verify_options o = vopts(s.fs);
	cellar_repair_result res;
	OK(cellar_repair(s.dir, &o, &res));
	cr_assert_eq(res.index_rebuilt, 1);
	cr_assert_eq(res.rebuild_reason, CELLAR_DAMAGE_INDEX_FILE);
	r = verify(&s);
	assert_sound(&r);

	/* The newest segment cut in the middle of a record. */
	segments_of(s.fs, s.dir, &l);
	join(path, sizeof path, s.dir, l.names[l.n - 1]);
	uint64_t size = file_size(s.fs, path);
	cut(s.fs, path, size - 5);
	r = verify(&s);
	const cellar_damage *d = &r.damage[CELLAR_DAMAGE_TAIL];
	cr_assert_eq(d->count, 1);
	cr_assert_eq(d->first_seq, seq_of_name(l.names[l.n - 1]));
	cr_assert_eq(d->first_off + d->bytes, size - 5);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_INDEX_STALE].count, 1);
	OK(cellar_repair(s.dir, &o, &res));
	cr_assert_eq(res.index_rebuilt, 1);
	cr_assert_eq(res.rebuild_reason, CELLAR_DAMAGE_INDEX_STALE);
	cr_assert_eq(res.tail_bytes_cut, d->bytes);
	r = verify(&s);
	assert_sound(&r);
	tc_store_free(&s);
}

Test(verify, torn_tail_is_cut_by_repair_without_a_rebuild)
{
	tc_store s;
	seg_list l;
	char path[4096];
	static const char garbage[10] = "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a";

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	tc_store_close(&s);
	segments_of(s.fs, s.dir, &l);
	join(path, sizeof path, s.dir, l.names[l.n - 1]);
	append(s.fs, path, garbage, sizeof garbage);
	cellar_verify_report r = verify(&s);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_TAIL].count, 1);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_TAIL].bytes, sizeof garbage);
	cr_assert_eq(r.problems, 1);
	cellar_verify_options o = vopts(s.fs);
	cellar_repair_result res;
	OK(cellar_repair(s.dir, &o, &res));
	cr_assert_eq(res.index_rebuilt, 0);
	cr_assert_eq(res.rebuild_reason, -1);
	cr_assert_eq(res.tail_bytes_cut, sizeof garbage);
	r = verify(&s);
	assert_sound(&r);
	tc_store_free(&s);
}

/*
 * An index that passes its checksums but belongs to another store of the
 * same seed and segment sizes: it leads key k1 to an old value and key k3
 * to a record of k1, and counts a key too many.  Both directions see it.
 */
Test(verify, index_disagreeing_with_the_log_both_ways)
{
	tc_store x, y;
	char from[4096], to[4096];

	tc_store_init(&x);
	x.o.hash_seed = HASH_SEED;
	tc_store_open(&x);
	OK(cellar_put(x.db, "k1", 2, "v1", 2));
	OK(cellar_put(x.db, "k3", 2, "v3", 2));
	OK(cellar_put(x.db, "k2", 2, "v2", 2));
	tc_store_close(&x);
	tc_store_init(&y);
	y.o.hash_seed = HASH_SEED;
	tc_store_open(&y);
	OK(cellar_put(y.db, "k1", 2, "v1", 2));
	OK(cellar_put(y.db, "k1", 2, "w1", 2));
	OK(cellar_put(y.db, "k2", 2, "v2", 2));
	tc_store_close(&y);
	join(from, sizeof from, x.dir, "index");
	join(to, sizeof to, y.dir, "index");
	copy_file(x.fs, from, y.fs, to);

	cellar_verify_options o = vopts(y.fs);
	cellar_verify_report r;
	seen c = { { 0 }, 0 };
	o.on_problem = count_problem;
	o.ctx = &c;
	OK(cellar_verify(y.dir, &o, &r));
	cr_assert_eq(r.index_checked, 1);
	cr_assert_eq(r.keys, 2);
	cr_assert_eq(r.index_keys, 3);
	cr_assert_eq(r.index_slots, 3);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_KEY_MISSING].count, 1);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_SLOT_STALE].count, 1);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_SLOT_BAD].count, 1);
	cr_assert_eq(r.damage[CELLAR_DAMAGE_COUNT].count, 1);
	cr_assert_eq(r.problems, 4);
	cr_assert_geq(c.with_key, 2, "the key is named where there is one");

	cellar_repair_result res;
	OK(cellar_repair(y.dir, &o, &res));
	cr_assert_eq(res.index_rebuilt, 1);
	cr_assert_eq(res.rebuild_reason, CELLAR_DAMAGE_KEY_MISSING);
	cr_assert_eq(res.keys, 2);
	o.on_problem = NULL;
	OK(cellar_verify(y.dir, &o, &r));
	assert_sound(&r);
	tc_store_open(&y);
	char buf[8];
	size_t n;
	OK(cellar_get(y.db, "k1", 2, buf, sizeof buf, &n));
	cr_assert_eq(n, 2);
	cr_assert(memcmp(buf, "w1", 2) == 0);
	tc_store_free(&y);
	tc_store_free(&x);
}

Test(verify, repair_of_a_store_open_for_writing_is_elocked)
{
	tc_store s;
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	cellar_verify_options o = vopts(s.fs);
	ERR(CELLAR_ELOCKED, cellar_repair(s.dir, &o, NULL));
	/* verify takes no lock. */
	cellar_verify_report r;
	OK(cellar_verify(s.dir, &o, &r));
	tc_store_free(&s);
}

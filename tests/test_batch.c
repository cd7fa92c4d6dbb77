/*
 * test_batch.c - atomic write batches (src/batch.c, writer_commit_ops in
 * src/writer.c, their replay in src/recovery.c): what a commit applies,
 * last-wins, reopen, roll-over, compaction, verification, damage, readers
 * in other threads, a crash at every write of a commit, and every error
 * path.  Runs once per file system (CELLAR_TEST_FS); the crash tests use
 * the fault wrapper over mem.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"

static tc_store st;

static void setup(void) { tc_store_new(&st, 0); }
static void teardown(void) { tc_store_free(&st); }

TestSuite(batch, .init = setup, .fini = teardown);

static void key_of(char *k, unsigned i) { snprintf(k, 32, "key-%06u", i); }

/* Assert key i holds exactly want (NULL: absent). */
static void expect(cellar_db *db, unsigned i, const char *want)
{
	char k[32], buf[1024];
	size_t n = 0;
	int rc;

	key_of(k, i);
	rc = cellar_get(db, k, strlen(k), buf, sizeof buf, &n);
	if (!want) {
		cr_assert_eq(rc, CELLAR_ENOTFOUND, "%s: %s", k, cellar_strerror(rc));
		return;
	}
	cr_assert_eq(rc, CELLAR_OK, "%s: %s", k, cellar_strerror(rc));
	cr_assert(n == strlen(want) && memcmp(buf, want, n) == 0,
	          "%s: %.*s, want %s", k, (int)n, buf, want);
}

static void bput(cellar_batch *b, unsigned i, const char *v)
{
	char k[32];

	key_of(k, i);
	OK(cellar_batch_put(b, k, strlen(k), v, strlen(v)));
}

static void bdel(cellar_batch *b, unsigned i)
{
	char k[32];

	key_of(k, i);
	OK(cellar_batch_delete(b, k, strlen(k)));
}

static uint64_t count(cellar_db *db)
{
	uint64_t n;

	OK(cellar_count(db, &n));
	return n;
}

Test(batch, commit_applies_puts_and_deletes)
{
	cellar_batch *b;
	char k[32];

	key_of(k, 7);
	OK(cellar_put(st.db, k, strlen(k), "old", 3));
	OK(cellar_batch_new(&b));
	for (unsigned i = 0; i < 100; i++)
		bput(b, i, "new");
	bdel(b, 7);
	cr_assert_eq(cellar_batch_count(b), 101);
	expect(st.db, 7, "old"); /* nothing before the commit */
	expect(st.db, 0, NULL);
	OK(cellar_batch_commit(st.db, b));
	for (unsigned i = 0; i < 100; i++)
		expect(st.db, i, i == 7 ? NULL : "new");
	cr_assert_eq(count(st.db), 99);
	tc_store_reopen(&st);
	for (unsigned i = 0; i < 100; i++)
		expect(st.db, i, i == 7 ? NULL : "new");
	cellar_batch_free(b);
}

Test(batch, last_op_of_a_key_wins)
{
	cellar_batch *b;

	OK(cellar_batch_new(&b));
	bput(b, 1, "a");
	bput(b, 1, "b");
	bdel(b, 1);
	bput(b, 1, "c");   /* 1: c */
	bput(b, 2, "a");
	bdel(b, 2);        /* 2: absent */
	bdel(b, 3);
	bput(b, 3, "z");   /* 3: z */
	OK(cellar_batch_commit(st.db, b));
	expect(st.db, 1, "c");
	expect(st.db, 2, NULL);
	expect(st.db, 3, "z");
	cr_assert_eq(count(st.db), 2);
	tc_store_reopen(&st);
	expect(st.db, 1, "c");
	expect(st.db, 2, NULL);
	expect(st.db, 3, "z");
	cr_assert_eq(count(st.db), 2);
	cellar_batch_free(b);
}

Test(batch, a_batch_that_changes_nothing_writes_nothing)
{
	cellar_batch *b;
	cellar_db_stats s0, s1;

	OK(cellar_batch_new(&b));
	OK(cellar_batch_commit(st.db, b)); /* empty */
	bdel(b, 1);
	bdel(b, 2);
	OK(cellar_stats(st.db, &s0));
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_stats(st.db, &s1));
	cr_assert_eq(s0.segment_bytes, s1.segment_bytes);
	cr_assert_eq(s1.deletes, 0);
	/* clear empties it; the batch can be reused */
	cellar_batch_clear(b);
	cr_assert_eq(cellar_batch_count(b), 0);
	bput(b, 5, "v");
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_batch_commit(st.db, b)); /* unchanged by a commit */
	expect(st.db, 5, "v");
	OK(cellar_stats(st.db, &s1));
	cr_assert_eq(s1.puts, 2);
	cellar_batch_free(b);
}

/* Batches larger than a segment, and many of them: each goes into one
 * segment whole; compaction and reopen keep the newest values. */
Test(batch, batches_across_rollover_compaction_and_reopen)
{
	cellar_batch *b;
	char v[600];

	tc_store_free(&st);
	tc_store_new(&st, 64 << 10);
	OK(cellar_batch_new(&b));
	for (unsigned round = 0; round < 6; round++) {
		cellar_batch_clear(b);
		for (unsigned i = 0; i < 150; i++) { /* ~90 KB: over a segment */
			snprintf(v, sizeof v, "r%u-%0500u", round, i);
			bput(b, i + (round % 2) * 50, v);
		}
		if (round == 3)
			for (unsigned i = 0; i < 20; i++)
				bdel(b, i);
		OK(cellar_batch_commit(st.db, b));
	}
	OK(cellar_compact(st.db, NULL));
	tc_store_reopen(&st);
	for (unsigned i = 0; i < 200; i++) {
		/* round 5 wrote 50..199, round 4 wrote 0..149 */
		unsigned r = i >= 50 ? 5 : 4;
		snprintf(v, sizeof v, "r%u-%0500u", r, i - (r % 2) * 50);
		expect(st.db, i, v);
	}
	cr_assert_eq(count(st.db), 200);
	cellar_verify_report rep;
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	vo.fs = st.fs;
	tc_store_close(&st);
	OK(cellar_verify(st.dir, &vo, &rep));
	cr_assert_eq(rep.problems, 0);
	tc_store_open(&st);
	cellar_batch_free(b);
}

Test(batch, iteration_returns_each_key_once)
{
	cellar_batch *b;
	cellar_iter *it;
	const void *k, *v;
	size_t kl, vl, n = 0;
	int rc;

	OK(cellar_batch_new(&b));
	for (unsigned i = 0; i < 300; i++)
		bput(b, i, "x");
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_iter_new(st.db, &it));
	while ((rc = cellar_iter_next(it, &k, &kl, &v, &vl)) == CELLAR_OK)
		n++;
	cr_assert_eq(rc, CELLAR_EDONE);
	cr_assert_eq(n, 300);
	cellar_iter_free(it);
	cellar_batch_free(b);
}

/* ---- damage ------------------------------------------------------------ */

/* The newest segment file's path and size. */
static void newest_segment(char *path, size_t cap, uint64_t *size)
{
	cellar_segment_info info[64];
	size_t n = 0;

	OK(cellar_segments(st.db, info, 64, &n));
	cr_assert(n > 0);
	snprintf(path, cap, "%s/%016llx.seg", st.dir,
	         (unsigned long long)info[n - 1].seq);
	*size = info[n - 1].bytes;
}

/* Flip one byte at off of the file at path (store closed). */
static void flip(const char *path, uint64_t off)
{
	cellar_file *f;
	uint8_t c;
	size_t got;

	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(st.fs->read_at(st.fs, f, off, &c, 1, &got));
	c ^= 0x40;
	OK(st.fs->write_at(st.fs, f, off, &c, 1));
	OK(st.fs->sync(st.fs, f));
	st.fs->close(st.fs, f);
}

static void cut(const char *path, uint64_t size)
{
	cellar_file *f;

	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(st.fs->truncate(st.fs, f, size));
	OK(st.fs->sync(st.fs, f));
	st.fs->close(st.fs, f);
}

/* Keys 0..49 at "old" (synced), then one batch setting them to "new". */
static void old_then_batch(uint64_t *batch_start, uint64_t *batch_end)
{
	cellar_batch *b;
	char path[512];

	for (unsigned i = 0; i < 50; i++) {
		char k[32];
		key_of(k, i);
		OK(cellar_put(st.db, k, strlen(k), "old", 3));
	}
	OK(cellar_sync(st.db));
	newest_segment(path, sizeof path, batch_start);
	OK(cellar_batch_new(&b));
	for (unsigned i = 0; i < 50; i++)
		bput(b, i, "new");
	OK(cellar_batch_commit(st.db, b));
	cellar_batch_free(b);
	OK(cellar_sync(st.db));
	newest_segment(path, sizeof path, batch_end);
}

/* The whole file at path, or back into it (store closed). */
static uint8_t *file_bytes(const char *path, uint64_t *len)
{
	cellar_file *f;
	size_t got;

	*len = 0;
	if (st.fs->open(st.fs, path, CELLAR_FS_READ, &f) == CELLAR_ENOENT)
		return NULL; /* none written */
	OK(st.fs->size(st.fs, f, len));
	uint8_t *p = malloc(*len ? *len : 1);
	cr_assert_not_null(p);
	OK(st.fs->read_at(st.fs, f, 0, p, *len, &got));
	st.fs->close(st.fs, f);
	return p;
}

static void file_restore(const char *path, const uint8_t *p, uint64_t len)
{
	cellar_file *f;

	if (!p) {
		int rc = st.fs->remove(st.fs, path);
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOENT);
		return;
	}
	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(st.fs->truncate(st.fs, f, 0));
	OK(st.fs->write_at(st.fs, f, 0, p, len));
	OK(st.fs->sync(st.fs, f));
	st.fs->close(st.fs, f);
}

Test(batch, a_torn_batch_at_the_tail_is_cut_whole)
{
	char path[512], ipath[512];
	uint64_t start, end, size, ilen;
	cellar_db_stats s;

	/* What a crash inside a commit leaves: the checkpoint from before the
	 * batch, and the batch cut inside the header, in the first record, in
	 * the middle, or at its last byte.  Each on a fresh store. */
	for (unsigned c = 0; c < 5; c++) {
		snprintf(ipath, sizeof ipath, "%s/index", st.dir);
		for (unsigned i = 0; i < 50; i++) {
			char k[32];
			key_of(k, i);
			OK(cellar_put(st.db, k, strlen(k), "old", 3));
		}
		tc_store_close(&st); /* a checkpoint of the old keys */
		uint8_t *index = file_bytes(ipath, &ilen);
		tc_store_open(&st);
		newest_segment(path, sizeof path, &start);
		cellar_batch *b;
		OK(cellar_batch_new(&b));
		for (unsigned i = 0; i < 50; i++)
			bput(b, i, "new");
		OK(cellar_batch_commit(st.db, b));
		cellar_batch_free(b);
		OK(cellar_sync(st.db));
		newest_segment(path, sizeof path, &end);
		newest_segment(path, sizeof path, &size);
		cr_assert_eq(size, end);
		uint64_t at[] = { start + 5, start + 27, start + 40,
		                  (start + end) / 2, end - 1 };
		tc_store_close(&st);
		file_restore(ipath, index, ilen);
		free(index);
		cut(path, at[c]);
		tc_store_open(&st);
		for (unsigned i = 0; i < 50; i++)
			expect(st.db, i, "old");
		OK(cellar_stats_sized(st.db, &s, sizeof s));
		cr_assert_eq(s.torn_bytes, at[c] - start, "cut at %llu: %llu torn",
		             (unsigned long long)at[c],
		             (unsigned long long)s.torn_bytes);
		tc_store_free(&st);
		tc_store_new(&st, 0);
	}
}

Test(batch, a_damaged_batch_inside_the_log_is_skipped_whole)
{
	char path[512], k[32];
	uint64_t start, end, size;

	old_then_batch(&start, &end);
	key_of(k, 99);
	OK(cellar_put(st.db, k, strlen(k), "after", 5)); /* not the tail now */
	newest_segment(path, sizeof path, &size);
	tc_store_close(&st);
	flip(path, end - 2); /* the last record's value: its own checksum fails */
	cellar_verify_report rep;
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	vo.fs = st.fs;
	OK(cellar_verify(st.dir, &vo, &rep));
	cr_assert_eq(rep.damage[CELLAR_DAMAGE_RECORD].count, 1);
	cr_assert_eq(rep.damage[CELLAR_DAMAGE_RECORD].bytes, end - start);
	/* Rebuild from the log (no index): the batch counts as absent. */
	char ix[512];
	snprintf(ix, sizeof ix, "%s/index", st.dir);
	st.fs->remove(st.fs, ix);
	tc_store_open(&st);
	for (unsigned i = 0; i < 50; i++)
		expect(st.db, i, "old");
	expect(st.db, 99, "after");
}

/* Zero n bytes at off of the file at path (store closed). */
static void zero(const char *path, uint64_t off, uint64_t n)
{
	cellar_file *f;
	uint8_t *z = calloc(1, n);

	cr_assert_not_null(z);
	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(st.fs->write_at(st.fs, f, off, z, n));
	OK(st.fs->sync(st.fs, f));
	st.fs->close(st.fs, f);
	free(z);
}

/*
 * What a power cut can leave: the page holding a batch's header lost
 * (zeros), later pages of its body kept.  The body's records are intact
 * one by one, but without their header none of them may apply: the
 * batch is absent, whether the loss is inside the log or at its tail, on
 * a rebuild, a replay, a read-only open and in cellar_verify.
 */
Test(batch, a_batch_whose_header_was_lost_applies_none_of_its_records)
{
	char path[512], ix[512], k[32];
	uint64_t start, end, size;

	for (int tail = 0; tail < 2; tail++) {
		old_then_batch(&start, &end);
		if (!tail) {
			key_of(k, 99);
			OK(cellar_put(st.db, k, strlen(k), "after", 5));
			OK(cellar_sync(st.db));
		}
		newest_segment(path, sizeof path, &size);
		tc_store_close(&st);
		zero(path, start, 27 + 40); /* the header and the first record */
		cellar_verify_report rep;
		cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
		vo.fs = st.fs;
		(void)cellar_verify(st.dir, &vo, &rep);
		cr_assert_geq(rep.damage[CELLAR_DAMAGE_RECORD].count +
		                  rep.damage[CELLAR_DAMAGE_TAIL].count, 1,
		              "verify reports the damage");
		cr_assert_eq(rep.damage[CELLAR_DAMAGE_RECORD].bytes +
		                 rep.damage[CELLAR_DAMAGE_TAIL].bytes,
		             end - start, "the whole batch (%d)", tail);
		snprintf(ix, sizeof ix, "%s/index", st.dir);
		st.fs->remove(st.fs, ix); /* rebuild from the log */
		cellar_options ro = st.o;
		cellar_db *r;
		ro.flags = CELLAR_READONLY;
		OK(cellar_open(&r, st.dir, &ro));
		for (unsigned i = 0; i < 50; i++)
			expect(r, i, "old");
		OK(cellar_close(r));
		tc_store_open(&st);
		for (unsigned i = 0; i < 50; i++)
			expect(st.db, i, "old");
		if (!tail)
			expect(st.db, 99, "after");
		tc_store_free(&st);
		tc_store_new(&st, 0);
	}
}

Test(batch, a_batch_starts_with_its_header_record)
{
	/* docs/format.md: kind 3, a 20-byte field, no value. */
	char path[512];
	uint64_t start, end, size;

	old_then_batch(&start, &end);
	newest_segment(path, sizeof path, &size);
	tc_store_close(&st);
	cellar_file *f;
	uint8_t rec[27];
	size_t got;
	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(st.fs->read_at(st.fs, f, start, rec, sizeof rec, &got));
	cr_assert_eq(rec[4], 3, "a batch header starts the batch");
	cr_assert_eq(rec[5], 20);
	cr_assert_eq(rec[6], 0);
	cr_assert_eq(rec[7] | rec[8] << 8, end - start - 27, "body length");
	cr_assert_eq(rec[15], 50, "record count");
	st.fs->close(st.fs, f);
}

/* ---- readers in other threads ---------------------------------------- */

#define VIS_KEYS 64
#define VIS_BATCHES 400

typedef struct vis {
	cellar_db *db;
	atomic_int done;
	atomic_int bad;
} vis;

static unsigned read_num(cellar_db *db, unsigned i)
{
	char k[32], buf[512];
	size_t n = 0;

	key_of(k, i);
	if (cellar_get(db, k, strlen(k), buf, sizeof buf - 1, &n) != CELLAR_OK)
		return 0;
	buf[n] = 0;
	return (unsigned)strtoul(buf, NULL, 10);
}

/* Once key 0 shows batch b, every key must show b or later. */
static void *vis_reader(void *arg)
{
	vis *v = arg;

	while (!atomic_load(&v->done)) {
		unsigned first = read_num(v->db, 0);
		for (unsigned i = 1; i < VIS_KEYS; i++)
			if (read_num(v->db, i) < first)
				atomic_fetch_add(&v->bad, 1);
		unsigned last = read_num(v->db, VIS_KEYS - 1);
		for (unsigned i = 0; i < VIS_KEYS - 1; i++)
			if (read_num(v->db, i) < last)
				atomic_fetch_add(&v->bad, 1);
	}
	return NULL;
}

Test(batch, readers_never_see_part_of_a_batch)
{
	vis v = { st.db, 0, 0 };
	pthread_t t[3];
	cellar_batch *b;
	char val[32];

	OK(cellar_batch_new(&b));
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, vis_reader, &v), 0);
	for (unsigned n = 1; n <= VIS_BATCHES; n++) {
		cellar_batch_clear(b);
		snprintf(val, sizeof val, "%u", n);
		for (unsigned i = 0; i < VIS_KEYS; i++)
			bput(b, i, val);
		OK(cellar_batch_commit(st.db, b));
	}
	atomic_store(&v.done, 1);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&v.bad), 0, "%d reads saw part of a batch",
	             atomic_load(&v.bad));
	for (unsigned i = 0; i < VIS_KEYS; i++)
		cr_assert_eq(read_num(st.db, i), VIS_BATCHES);
	cellar_batch_free(b);
}

/* ---- a crash at every write of a commit ------------------------------ */

#define CR_KEYS 24
#define CR_BATCHES 12

/*
 * Batch n (1..CR_BATCHES) sets every key of group A to "n" and, when n is
 * even, puts group B's keys as "n" (odd: deletes them).  A sync after
 * every third batch.  Returns the last batch acknowledged and synced.
 */
static unsigned crash_run(cellar_fs *fs, const char *dir, uint64_t crash_at,
                          int sync_mode, unsigned *acked)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_batch *b = NULL;
	cellar_db *db = NULL;
	unsigned synced = 0;
	char val[300];

	o.fs = fs;
	o.flags = CELLAR_CREATE;
	o.max_segment_size = 64 << 10;
	o.sync_mode = sync_mode;
	*acked = 0;
	if (cellar_open(&db, dir, &o) < 0) {
		if (!crash_at)
			cr_log_error("open: %s", cellar_errmsg());
		return 0;
	}
	if (crash_at)
		fault_fs_crash_at(fs, crash_at);
	OK(cellar_batch_new(&b));
	for (unsigned n = 1; n <= CR_BATCHES; n++) {
		cellar_batch_clear(b);
		snprintf(val, sizeof val, "%u-%0250u", n, n);
		for (unsigned i = 0; i < CR_KEYS; i++)
			bput(b, i, val);
		for (unsigned i = 100; i < 100 + CR_KEYS / 2; i++) {
			if (n % 2 == 0)
				bput(b, i, val);
			else
				bdel(b, i);
		}
		if (cellar_batch_commit(db, b) < 0) {
			if (!crash_at)
				cr_log_error("commit: %s", cellar_errmsg());
			break;
		}
		*acked = n;
		if (sync_mode == CELLAR_SYNC_ALWAYS)
			synced = n;
		else if (n % 3 == 0) {
			if (cellar_sync(db) < 0)
				break;
			synced = n;
		}
	}
	cellar_batch_free(b);
	cellar_close(db);
	return synced;
}

/* After the crash: both groups show one batch, at least the synced one. */
static void crash_check(cellar_fs *fs, const char *dir, unsigned synced,
                        unsigned acked, uint64_t k)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	unsigned a = 0;

	o.fs = fs;
	o.flags = 0;
	int rc = cellar_open(&db, dir, &o);
	if (rc == CELLAR_ENOENT && synced == 0)
		return; /* crashed before the store existed */
	cr_assert_eq(rc, CELLAR_OK, "crash at %llu: open: %s",
	             (unsigned long long)k, cellar_errmsg());
	a = read_num(db, 0);
	for (unsigned i = 0; i < CR_KEYS; i++)
		cr_assert_eq(read_num(db, i), a, "crash at %llu: key %u shows "
		             "batch %u, key 0 batch %u", (unsigned long long)k, i,
		             read_num(db, i), a);
	cr_assert(a >= synced && a <= acked + 1, "crash at %llu: batch %u, "
	          "synced %u, acked %u", (unsigned long long)k, a, synced, acked);
	for (unsigned i = 100; i < 100 + CR_KEYS / 2; i++) {
		unsigned want = a % 2 == 0 ? a : 0;
		cr_assert_eq(read_num(db, i), want, "crash at %llu: group B key "
		             "%u: %u, want %u", (unsigned long long)k, i,
		             read_num(db, i), want);
	}
	OK(cellar_close(db));
}

/*
 * Crash at every mutation k of the run (writes, syncs, creates...), then
 * power-cut with seed 0 (every file back to its last sync) and with seeds
 * 1..nseeds (a random choice of the unsynced writes kept whole, torn or
 * dropped), and check.
 */
static void crash_every_write(int sync_mode, unsigned nseeds)
{
	cellar_fs *base, *fs;
	unsigned acked;
	uint64_t n;

	OK(cellar_fs_mem_new(&base));
	OK(fault_fs_new(&fs, base));
	crash_run(fs, "/c0", 0, sync_mode, &acked);
	n = fault_fs_mutations(fs);
	cr_assert_eq(acked, CR_BATCHES);
	cellar_fs_free(fs);
	cellar_fs_free(base);
	for (uint64_t k = 1; k <= n; k++)
		for (uint64_t seed = 0; seed <= nseeds; seed++) {
			OK(cellar_fs_mem_new(&base));
			OK(fault_fs_new(&fs, base));
			unsigned synced = crash_run(fs, "/c", k, sync_mode, &acked);
			OK(fault_fs_power_cut(fs, seed ? seed * 7919 + k : 0));
			cellar_fs_free(fs);
			crash_check(base, "/c", synced, acked, k);
			cellar_fs_free(base);
		}
}

Test(batch, crash_at_every_write_is_all_or_nothing)
{
	crash_every_write(CELLAR_SYNC_NONE, 6);
}

Test(batch, crash_at_every_write_with_sync_always_is_all_or_nothing)
{
	crash_every_write(CELLAR_SYNC_ALWAYS, 6);
}

/* ---- errors ------------------------------------------------------------ */

Test(batch, error_paths)
{
	cellar_batch *b = NULL;
	char big;

	ERR(CELLAR_EINVAL, cellar_batch_new(NULL));
	ERR(CELLAR_EINVAL, cellar_batch_put(NULL, "k", 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_batch_delete(NULL, "k", 1));
	OK(cellar_batch_new(&b));
	ERR(CELLAR_EINVAL, cellar_batch_put(b, NULL, 1, "v", 1));
	ERR(CELLAR_EKEYLEN, cellar_batch_put(b, "k", 0, "v", 1));
	ERR(CELLAR_EKEYLEN, cellar_batch_put(b, "k", CELLAR_MAX_KEY_LEN + 1,
	                                     "v", 1));
	ERR(CELLAR_EINVAL, cellar_batch_put(b, "k", 1, NULL, 1));
	ERR(CELLAR_EVALLEN, cellar_batch_put(b, "k", 1, &big,
	                                     (size_t)CELLAR_MAX_VALUE_LEN + 1));
	ERR(CELLAR_EINVAL, cellar_batch_delete(b, NULL, 1));
	ERR(CELLAR_EKEYLEN, cellar_batch_delete(b, "k", 0));
	cr_assert_eq(cellar_batch_count(b), 0, "a refused op is not added");
	OK(cellar_batch_put(b, "k", 1, NULL, 0)); /* an empty value */
	ERR(CELLAR_EINVAL, cellar_batch_commit(NULL, b));
	ERR(CELLAR_EINVAL, cellar_batch_commit(st.db, NULL));
	OK(cellar_batch_commit(st.db, b));
	size_t n = 9;
	OK(cellar_get(st.db, "k", 1, NULL, 0, &n));
	cr_assert_eq(n, 0);
	cr_assert_eq(cellar_batch_count(NULL), 0);
	cellar_batch_clear(NULL);
	cellar_batch_free(NULL);
	/* read-only */
	tc_store_close(&st);
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_EREADONLY, cellar_batch_commit(st.db, b));
	cellar_batch_free(b);
}

/* A failed write leaves the store as it was; a failed fsync poisons. */
Test(batch, a_failed_commit_changes_nothing)
{
	cellar_fs *fs;
	cellar_batch *b;

	tc_store_close(&st);
	OK(fault_fs_new(&fs, st.fs));
	st.o.fs = fs;
	st.o.flags = 0;
	tc_store_open(&st);
	for (unsigned i = 0; i < 10; i++) {
		char k[32];
		key_of(k, i);
		OK(cellar_put(st.db, k, strlen(k), "old", 3));
	}
	OK(cellar_batch_new(&b));
	for (unsigned i = 0; i < 10; i++)
		bput(b, i, "new");
	/* The batch is larger than the append buffer: written in place. */
	char *v = calloc(1, 3 << 20);
	OK(cellar_batch_put(b, "big", 3, v, 3 << 20));
	free(v);
	fault_fs_fail(fs, FAULT_WRITE, fault_fs_count(fs, FAULT_WRITE) + 1,
	              CELLAR_ENOSPC, 0);
	ERR(CELLAR_ENOSPC, cellar_batch_commit(st.db, b));
	for (unsigned i = 0; i < 10; i++)
		expect(st.db, i, "old");
	ERR(CELLAR_ENOTFOUND, cellar_has(st.db, "big", 3));
	OK(cellar_batch_commit(st.db, b)); /* the fault was once */
	for (unsigned i = 0; i < 10; i++)
		expect(st.db, i, "new");
	fault_fs_fail(fs, FAULT_SYNC, fault_fs_count(fs, FAULT_SYNC) + 1,
	              CELLAR_EIO, 0);
	ERR(CELLAR_EIO, cellar_sync(st.db));
	ERR(CELLAR_EFAILED, cellar_batch_commit(st.db, b));
	cellar_batch_free(b);
	ERR(CELLAR_EFAILED, cellar_close(st.db)); /* its final sync is refused */
	st.db = NULL;
	cellar_fs_free(fs);
	st.o.fs = st.fs;
}

/*
 * test_stats.c - cellar_stats() and cellar_segments(): the byte and key
 * accounting agrees with a full scan and with the files, operation counters
 * are exact, and the per-segment figures add up to the totals, through
 * overwrites, deletes, compaction, reopen and an index rebuild.  Runs once
 * per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"

#define SEG_HEADER 32   /* bytes before the first record of a segment */
#define META_BYTES 64   /* the meta file */
#define BUCKET_SLOTS 6  /* index slots per primary bucket */

/* ---- a store under test ------------------------------------------------ */

/* Close, remove the index file, reopen: the index is rebuilt from the log. */
static void store_rebuild(tc_store *s)
{
	char path[4200];

	OK(cellar_close(s->db));
	snprintf(path, sizeof path, "%s/index", s->dir);
	OK(s->fs->remove(s->fs, path));
	tc_store_open(s);
}

static cellar_db_stats stats_of(cellar_db *db)
{
	cellar_db_stats st;

	memset(&st, 0xff, sizeof st);
	OK(cellar_stats(db, &st));
	return st;
}

/* ---- data ----------------------------------------------------------------- */

static size_t key_of(unsigned i, char key[24])
{
	return (size_t)snprintf(key, 24, "k%u", i * 2654435761u);
}

/* 0..300 bytes: some values need a two-byte length varint. */
static size_t val_of(unsigned i, unsigned ver, char val[512])
{
	size_t len = (i * 37u + ver * 101u) % 301u;

	for (size_t j = 0; j < len; j++)
		val[j] = (char)(i + ver + j);
	return len;
}

static void put_num(cellar_db *db, unsigned i, unsigned ver)
{
	char k[24], v[512];
	size_t kn = key_of(i, k), vn = val_of(i, ver, v);

	OK(cellar_put(db, k, kn, v, vn));
}

static void del_num(cellar_db *db, unsigned i)
{
	char k[24];

	OK(cellar_delete(db, k, key_of(i, k)));
}

/* Overwrites and deletes across several segments. */
#define KEYS 2500u

static void workload(cellar_db *db)
{
	for (unsigned r = 0; r < 3; r++)
		for (unsigned i = 0; i < KEYS; i++)
			if (r == 0 || (i + r) % 3 == 0)
				put_num(db, i, r);
	for (unsigned i = 0; i < KEYS; i += 5)
		del_num(db, i);
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The size of a put record: checksum, kind, two varints, key, value. */
static uint64_t record_bytes(size_t klen, size_t vlen)
{
	return 5 + varint_len(klen) + varint_len(vlen) + klen + vlen;
}

/* Iterate everything: the item count and the sum of their record sizes. */
static void scan(cellar_db *db, uint64_t *items, uint64_t *bytes)
{
	cellar_iter *it = NULL;
	size_t kn, vn;
	int rc;

	*items = *bytes = 0;
	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, NULL, &kn, NULL, &vn)) == CELLAR_OK) {
		(*items)++;
		*bytes += record_bytes(kn, vn);
	}
	cellar_iter_free(it);
	cr_assert_eq(rc, CELLAR_EDONE, "iteration: %s", cellar_strerror(rc));
}

/* The segments; free the result. */
static cellar_segment_info *segments_of(cellar_db *db, size_t *n)
{
	size_t cap = 0;
	cellar_segment_info *out;

	OK(cellar_segments(db, NULL, 0, &cap));
	out = calloc(cap + 1, sizeof *out);
	cr_assert_not_null(out);
	OK(cellar_segments(db, out, cap, n));
	cr_assert_eq(*n, cap);
	return out;
}

/*
 * Every accounting identity the stats promise, checked against a scan, the
 * segment list and the files:
 *   keys == items iterated == cellar_count
 *   live_bytes == sum of the iterated items' record sizes
 *   live + dead == segment bytes minus the segment headers
 *   per-segment sums == totals
 *   bytes_on_disk == segments + index + meta
 */
static void expect_consistent(const tc_store *s, const char *when)
{
	cellar_db_stats st = stats_of(s->db);
	uint64_t items, bytes, count = UINT64_MAX;
	size_t n;
	cellar_segment_info *segs = segments_of(s->db, &n);

	scan(s->db, &items, &bytes);
	OK(cellar_count(s->db, &count));
	cr_assert_eq(st.keys, items, "%s: stats.keys %llu, iteration %llu", when,
	             (unsigned long long)st.keys, (unsigned long long)items);
	cr_assert_eq(st.keys, count, "%s: stats.keys vs cellar_count", when);
	cr_assert_eq(st.live_bytes, bytes,
	             "%s: live_bytes %llu, records of the live items %llu", when,
	             (unsigned long long)st.live_bytes, (unsigned long long)bytes);

	uint64_t sum_bytes = 0, sum_live = 0, sum_dead = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_geq(segs[i].bytes, SEG_HEADER, "%s: segment %zu", when, i);
		cr_assert_eq(segs[i].live_bytes + segs[i].dead_bytes,
		             segs[i].bytes - SEG_HEADER,
		             "%s: segment %016llx: live %llu + dead %llu != %llu "
		             "bytes - %d header", when,
		             (unsigned long long)segs[i].seq,
		             (unsigned long long)segs[i].live_bytes,
		             (unsigned long long)segs[i].dead_bytes,
		             (unsigned long long)segs[i].bytes, SEG_HEADER);
		if (i)
			cr_assert_gt(segs[i].seq, segs[i - 1].seq,
			             "%s: segments oldest first", when);
		sum_bytes += segs[i].bytes;
		sum_live += segs[i].live_bytes;
		sum_dead += segs[i].dead_bytes;
	}
	cr_assert_eq(st.segments, n, "%s: stats.segments vs cellar_segments", when);
	cr_assert_eq(st.segment_bytes, sum_bytes, "%s: segment_bytes", when);
	cr_assert_eq(st.live_bytes, sum_live, "%s: per-segment live sum", when);
	cr_assert_eq(st.dead_bytes, sum_dead, "%s: per-segment dead sum", when);
	cr_assert_eq(st.live_bytes + st.dead_bytes,
	             st.segment_bytes - SEG_HEADER * st.segments,
	             "%s: live %llu + dead %llu vs %llu segment bytes in %llu "
	             "segments", when, (unsigned long long)st.live_bytes,
	             (unsigned long long)st.dead_bytes,
	             (unsigned long long)st.segment_bytes,
	             (unsigned long long)st.segments);
	cr_assert_eq(st.bytes_on_disk, st.segment_bytes + st.index_bytes + META_BYTES,
	             "%s: bytes_on_disk", when);
	cr_assert_gt(st.index_bytes, 0, "%s: index_bytes", when);
	cr_assert_gt(st.buckets, 0, "%s: buckets", when);
	free(segs);
}

/* ---- accounting ---------------------------------------------------------- */

Test(stats, fresh_store_is_empty)
{
	tc_store s;

	tc_store_new(&s, 64u << 10);
	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.keys, 0);
	cr_assert_eq(st.live_bytes, 0);
	cr_assert_eq(st.dead_bytes, 0);
	cr_assert_eq(st.puts + st.deletes + st.gets + st.hits + st.misses, 0);
	cr_assert_eq(st.compactions, 0);
	cr_assert_eq(st.load_factor, 0.0);
	cr_assert_eq(st.avg_probe, 0.0, "no lookups yet");
	cr_assert_geq(st.bytes_on_disk, st.segment_bytes + st.index_bytes);
	tc_store_free(&s);
}

Test(stats, stats_agree_with_a_full_scan)
{
	tc_store s;

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	cr_assert_gt(stats_of(s.db).segments, 3, "the workload spans segments");
	expect_consistent(&s, "after the workload");
	OK(cellar_sync(s.db));
	expect_consistent(&s, "after sync");
	tc_store_free(&s);
}

Test(stats, stats_agree_with_a_full_scan_after_compaction)
{
	tc_store s;

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	cellar_db_stats before = stats_of(s.db);
	OK(cellar_compact(s.db, NULL));
	expect_consistent(&s, "after compaction");
	cellar_db_stats after = stats_of(s.db);
	cr_assert_eq(after.live_bytes, before.live_bytes);
	cr_assert_eq(after.keys, before.keys);
	cr_assert_lt(after.dead_bytes, before.dead_bytes);
	cr_assert_eq(after.compactions, before.compactions + 1);
	tc_store_free(&s);
}

Test(stats, accounting_survives_reopen_and_rebuild)
{
	tc_store s;

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	cellar_db_stats before = stats_of(s.db);
	tc_store_reopen(&s);
	expect_consistent(&s, "after reopen");
	cellar_db_stats re = stats_of(s.db);
	cr_assert_eq(re.keys, before.keys);
	cr_assert_eq(re.live_bytes, before.live_bytes);
	cr_assert_eq(re.dead_bytes, before.dead_bytes, "reopen: dead %llu, was %llu",
	             (unsigned long long)re.dead_bytes,
	             (unsigned long long)before.dead_bytes);
	cr_assert_eq(re.segments, before.segments);
	cr_assert_eq(re.puts + re.deletes + re.gets, 0, "counters are since open");

	store_rebuild(&s);
	expect_consistent(&s, "after an index rebuild");
	cellar_db_stats rb = stats_of(s.db);
	cr_assert_eq(rb.keys, before.keys);
	cr_assert_eq(rb.live_bytes, before.live_bytes);
	cr_assert_eq(rb.dead_bytes, before.dead_bytes,
	             "rebuild: dead %llu, was %llu",
	             (unsigned long long)rb.dead_bytes,
	             (unsigned long long)before.dead_bytes);

	/* ... and after a pass plus a rebuild. */
	OK(cellar_compact(s.db, NULL));
	cellar_db_stats c = stats_of(s.db);
	store_rebuild(&s);
	expect_consistent(&s, "after compaction and a rebuild");
	cr_assert_eq(stats_of(s.db).live_bytes, c.live_bytes);
	cr_assert_eq(stats_of(s.db).dead_bytes, c.dead_bytes);
	tc_store_free(&s);
}

Test(stats, read_only_handle_reports_the_same_accounting)
{
	tc_store s;
	cellar_db *ro = NULL;
	cellar_options o;

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	OK(cellar_sync(s.db));
	cellar_db_stats w = stats_of(s.db);
	o = s.o;
	o.flags = CELLAR_READONLY;
	OK(cellar_open(&ro, s.dir, &o));
	cellar_db_stats r = stats_of(ro);
	cr_assert_eq(r.keys, w.keys);
	cr_assert_eq(r.live_bytes, w.live_bytes);
	cr_assert_eq(r.dead_bytes, w.dead_bytes);
	cr_assert_eq(r.segments, w.segments);
	cr_assert_eq(r.segment_bytes, w.segment_bytes);
	OK(cellar_close(ro));
	tc_store_free(&s);
}

/* Segment sizes are the sizes of the files, once synced. */
Test(stats, segment_bytes_match_the_files)
{
	tc_store s;
	size_t n;
	char path[4200];

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	OK(cellar_sync(s.db));
	cellar_segment_info *segs = segments_of(s.db, &n);
	for (size_t i = 0; i < n; i++) {
		cellar_file *f = NULL;
		uint64_t size = 0;
		snprintf(path, sizeof path, "%s/%016llx.seg", s.dir,
		         (unsigned long long)segs[i].seq);
		OK(s.fs->open(s.fs, path, CELLAR_FS_READ, &f));
		OK(s.fs->size(s.fs, f, &size));
		OK(s.fs->close(s.fs, f));
		cr_assert_eq(size, segs[i].bytes, "segment %016llx: file %llu bytes, "
		             "listed %llu", (unsigned long long)segs[i].seq,
		             (unsigned long long)size,
		             (unsigned long long)segs[i].bytes);
	}
	free(segs);
	tc_store_free(&s);
}

/* ---- counters ------------------------------------------------------------ */

Test(stats, operation_counters_are_exact)
{
	tc_store s;
	char k[24], buf[512];
	size_t n;
	void *p = NULL;

	tc_store_new(&s, 64u << 10);
	for (unsigned i = 0; i < 100; i++)
		put_num(s.db, i, 0);
	for (unsigned i = 0; i < 30; i++)
		put_num(s.db, i, 1); /* overwrites count as puts */
	for (unsigned i = 0; i < 10; i++)
		del_num(s.db, i);
	/* Failed writes are not counted. */
	ERR(CELLAR_ENOTFOUND, cellar_delete(s.db, k, key_of(5, k)));
	ERR(CELLAR_EKEYLEN, cellar_put(s.db, k, 0, "x", 1));
	/* 50 hits and 20 misses by get, 5 + 5 by get_alloc, 3 + 2 by has. */
	for (unsigned i = 10; i < 60; i++)
		OK(cellar_get(s.db, k, key_of(i, k), buf, sizeof buf, &n));
	for (unsigned i = 1000; i < 1020; i++)
		ERR(CELLAR_ENOTFOUND, cellar_get(s.db, k, key_of(i, k), buf,
		                                 sizeof buf, &n));
	for (unsigned i = 60; i < 65; i++) {
		OK(cellar_get_alloc(s.db, k, key_of(i, k), &p, &n));
		cellar_free(p);
	}
	for (unsigned i = 0; i < 5; i++)
		ERR(CELLAR_ENOTFOUND, cellar_get_alloc(s.db, k, key_of(i, k), &p, &n));
	for (unsigned i = 70; i < 73; i++)
		OK(cellar_has(s.db, k, key_of(i, k)));
	ERR(CELLAR_ENOTFOUND, cellar_has(s.db, k, key_of(2000, k)));
	ERR(CELLAR_ENOTFOUND, cellar_has(s.db, k, key_of(2001, k)));

	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.puts, 130, "puts %llu", (unsigned long long)st.puts);
	cr_assert_eq(st.deletes, 10, "deletes %llu", (unsigned long long)st.deletes);
	cr_assert_eq(st.gets, 85, "gets %llu", (unsigned long long)st.gets);
	cr_assert_eq(st.hits, 58, "hits %llu", (unsigned long long)st.hits);
	cr_assert_eq(st.misses, 27, "misses %llu", (unsigned long long)st.misses);
	cr_assert_eq(st.keys, 90);
	cr_assert_geq(st.avg_probe, 1.0, "avg_probe %g", st.avg_probe);

	/* A value too big for the buffer was found: a hit. */
	size_t need = 0;
	unsigned big = 0;
	while (val_of(big, 1, buf) < 2 || big < 10)
		big++;
	ERR(CELLAR_EBUFS, cellar_get(s.db, k, key_of(big, k), buf, 1, &need));
	st = stats_of(s.db);
	cr_assert_eq(st.gets, 86);
	cr_assert_eq(st.hits, 59);

	/* Syncs and passes are counted too. */
	uint64_t syncs = st.syncs;
	OK(cellar_sync(s.db));
	OK(cellar_compact(s.db, NULL));
	st = stats_of(s.db);
	cr_assert_geq(st.syncs, syncs + 1);
	cr_assert_eq(st.compactions, 1);
	tc_store_free(&s);
}

typedef struct reader_arg {
	cellar_db *db;
	unsigned first, n; /* keys first.. first+n-1; even ones are present */
	int failed;
} reader_arg;

static void *count_reader(void *p)
{
	reader_arg *a = p;

	for (unsigned i = a->first; i < a->first + a->n; i++) {
		char k[24];
		int rc = cellar_has(a->db, k, key_of(i, k));
		if (rc != (i % 2 == 0 ? CELLAR_OK : CELLAR_ENOTFOUND))
			a->failed = 1;
	}
	return NULL;
}

/* Read counters are kept per thread; the totals must still be exact. */
Test(stats, counters_from_several_threads_add_up)
{
	enum { THREADS = 4, PER = 1000 };
	tc_store s;
	pthread_t t[THREADS];
	reader_arg a[THREADS];

	tc_store_new(&s, 64u << 10);
	for (unsigned i = 0; i < THREADS * PER; i += 2)
		put_num(s.db, i, 0);
	for (int j = 0; j < THREADS; j++) {
		a[j] = (reader_arg){ s.db, (unsigned)j * PER, PER, 0 };
		cr_assert_eq(pthread_create(&t[j], NULL, count_reader, &a[j]), 0);
	}
	for (int j = 0; j < THREADS; j++) {
		pthread_join(t[j], NULL);
		cr_assert_eq(a[j].failed, 0, "reader %d saw a wrong answer", j);
	}
	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.gets, THREADS * PER, "gets %llu", (unsigned long long)st.gets);
	cr_assert_eq(st.hits, THREADS * PER / 2);
	cr_assert_eq(st.misses, THREADS * PER / 2);
	cr_assert_eq(st.puts, THREADS * PER / 2);
	tc_store_free(&s);
}

Test(stats, avg_probe_is_at_least_one_after_gets)
{
	tc_store s;
	char k[24];

	tc_store_new(&s, 64u << 10);
	for (unsigned i = 0; i < 3000; i++)
		put_num(s.db, i, 0);
	for (unsigned i = 0; i < 6000; i++)
		(void)cellar_has(s.db, k, key_of(i, k));
	cellar_db_stats st = stats_of(s.db);
	cr_assert_eq(st.gets, 6000);
	cr_assert_eq(st.hits, 3000);
	cr_assert_geq(st.avg_probe, 1.0, "avg_probe %g", st.avg_probe);
	cr_assert_lt(st.avg_probe, 4.0, "avg_probe %g: chains are short",
	             st.avg_probe);
	tc_store_free(&s);
}

Test(stats, load_factor_is_keys_over_primary_slots)
{
	tc_store s;

	tc_store_new(&s, 64u << 10);
	for (unsigned step = 0; step < 4; step++) {
		for (unsigned i = step * 1500; i < (step + 1) * 1500; i++)
			put_num(s.db, i, 0);
		if (step == 2)
			for (unsigned i = 0; i < 1000; i++)
				del_num(s.db, i);
		cellar_db_stats st = stats_of(s.db);
		double want = (double)st.keys / ((double)st.buckets * BUCKET_SLOTS);
		cr_assert_float_eq(st.load_factor, want, 1e-12,
		                   "load_factor %g, keys %llu / (%llu buckets x %d)",
		                   st.load_factor, (unsigned long long)st.keys,
		                   (unsigned long long)st.buckets, BUCKET_SLOTS);
		cr_assert_gt(st.load_factor, 0.0);
		cr_assert_leq(st.load_factor, 1.0 + (double)st.overflow_buckets);
	}
	tc_store_free(&s);
}

/* ---- cellar_segments --------------------------------------------------- */

Test(stats, segments_cap_zero_returns_the_count_then_fills)
{
	tc_store s;
	size_t n = 12345, m = 0;
	cellar_segment_info few[2], *all;

	tc_store_new(&s, 64u << 10);
	workload(s.db);
	OK(cellar_segments(s.db, NULL, 0, &n));
	cr_assert_eq(n, stats_of(s.db).segments);
	cr_assert_gt(n, 2);
	all = calloc(n + 4, sizeof *all);
	cr_assert_not_null(all);
	memset(all, 0xab, (n + 4) * sizeof *all);
	OK(cellar_segments(s.db, all, n + 4, &m));
	cr_assert_eq(m, n, "a bigger buffer gets the same count");
	/* Entries past the count are left alone. */
	unsigned char *tail = (unsigned char *)&all[n];
	for (size_t i = 0; i < 4 * sizeof *all; i++)
		cr_assert_eq(tail[i], 0xab, "wrote past the %zu segments", n);
	/* A short buffer gets the first cap entries and the full count. */
	memset(few, 0, sizeof few);
	OK(cellar_segments(s.db, few, 2, &m));
	cr_assert_eq(m, n);
	cr_assert_eq(few[0].seq, all[0].seq);
	cr_assert_eq(few[1].seq, all[1].seq);
	cr_assert_eq(few[1].bytes, all[1].bytes);
	free(all);
	tc_store_free(&s);
}

Test(stats, invalid_arguments_are_rejected)
{
	tc_store s;
	cellar_db_stats st;
	cellar_segment_info one;
	size_t n;

	ERR(CELLAR_EINVAL, cellar_stats(NULL, &st));
	ERR(CELLAR_EINVAL, cellar_segments(NULL, &one, 1, &n));
	ERR(CELLAR_EINVAL, cellar_segments(NULL, NULL, 0, &n));
	tc_store_new(&s, 64u << 10);
	ERR(CELLAR_EINVAL, cellar_stats(s.db, NULL));
	ERR(CELLAR_EINVAL, cellar_segments(s.db, &one, 1, NULL));
	ERR(CELLAR_EINVAL, cellar_segments(s.db, NULL, 1, &n));
	OK(cellar_segments(s.db, NULL, 0, &n));
	tc_store_free(&s);
}

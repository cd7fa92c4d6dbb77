/*
 * test_compact.c - cellar_compact(), background compaction and events:
 * every key keeps its newest value through a pass, deleted keys never come
 * back (after reopen and after an index rebuild too), passes converge, leave
 * segments below the threshold alone, run beside readers and a writer, stop
 * cleanly at close, and report what they did.  Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"

#define SEG_64K (64u << 10)
#define SEG_HEADER 32
#define NO_VERSION (-1) /* model: the key is absent */

/* ---- a store under test ------------------------------------------------ */

static void path_in(const tc_store *s, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, name);
	cr_assert(n > 0 && (size_t)n < cap);
}

/* Close, remove the index file, reopen: the index is rebuilt from the log. */
static void store_rebuild(tc_store *s)
{
	char path[4200];

	tc_store_close(s);
	path_in(s, "index", path, sizeof path);
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

static uint64_t count_of(cellar_db *db)
{
	uint64_t n = UINT64_MAX;

	OK(cellar_count(db, &n));
	return n;
}

/* The segments as cellar_segments() describes them; free the result. */
static cellar_segment_info *segments_of(cellar_db *db, size_t *n)
{
	size_t cap = 0;
	cellar_segment_info *out;

	OK(cellar_segments(db, NULL, 0, &cap));
	out = calloc(cap + 1, sizeof *out);
	cr_assert_not_null(out);
	OK(cellar_segments(db, out, cap, n));
	cr_assert_eq(*n, cap, "segment count changed between two calls");
	return out;
}

static int has_seq(const cellar_segment_info *v, size_t n, uint64_t seq)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].seq == seq)
			return 1;
	return 0;
}

/* Segment files in the store's directory, by sequence number. */
typedef struct seq_list {
	uint64_t seq[4096];
	size_t n;
} seq_list;

static int collect_seg(const char *name, void *ctx)
{
	seq_list *l = ctx;
	size_t len = strlen(name);

	if (len == 20 && strcmp(name + 16, ".seg") == 0 && l->n < 4096)
		l->seq[l->n++] = strtoull(name, NULL, 16);
	return 0;
}

static int file_has_seq(const seq_list *l, uint64_t seq)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->seq[i] == seq)
			return 1;
	return 0;
}

static void files_of(const tc_store *s, seq_list *l)
{
	l->n = 0;
	OK(s->fs->list(s->fs, s->dir, collect_seg, l));
}

/* The segment files on disk are exactly the segments the handle lists. */
static void expect_files_match_segments(const tc_store *s)
{
	seq_list *files = malloc(sizeof *files);
	size_t n;
	cellar_segment_info *segs = segments_of(s->db, &n);

	cr_assert_not_null(files);
	files_of(s, files);
	cr_assert_eq(files->n, n, "%zu segment files on disk, handle lists %zu",
	             files->n, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(file_has_seq(files, segs[i].seq),
		          "segment %016llx has no file",
		          (unsigned long long)segs[i].seq);
	free(segs);
	free(files);
}

/* ---- numbered data: values name their key and version ------------------ */

static size_t key_of(unsigned i, char key[16])
{
	return (size_t)snprintf(key, 16, "key%06u", i);
}

/* "v:<key>:<version>:" then filler derived from both; 24..119 bytes. */
static size_t val_of(unsigned i, unsigned ver, char val[128])
{
	size_t len = 24 + (i * 7u + ver * 13u) % 96u;
	int n = snprintf(val, 128, "v:%06u:%06u:", i, ver);

	for (size_t j = (size_t)n; j < len; j++)
		val[j] = (char)('a' + (i + ver * 3u + j) % 26u);
	return len;
}

/*
 * Check a value read for key i: it must be a well-formed value of key i.
 * Returns its version, or -1 (and describes the problem in why).
 */
static long parse_val(unsigned i, const char *v, size_t n, char *why,
                      size_t why_cap)
{
	unsigned ki, ver;
	char want[128], head[20];

	/* sscanf needs a string; values are not NUL-terminated. */
	memcpy(head, v, n < sizeof head - 1 ? n : sizeof head - 1);
	head[n < sizeof head - 1 ? n : sizeof head - 1] = '\0';
	if (n < 16 || sscanf(head, "v:%6u:%6u:", &ki, &ver) != 2) {
		snprintf(why, why_cap, "key %u: malformed value (%zu bytes)", i, n);
		return -1;
	}
	if (ki != i) {
		snprintf(why, why_cap, "key %u: got the value of key %u", i, ki);
		return -1;
	}
	if (val_of(i, ver, want) != n || memcmp(want, v, n) != 0) {
		snprintf(why, why_cap, "key %u version %u: value damaged", i, ver);
		return -1;
	}
	return (long)ver;
}

static void put_num(cellar_db *db, unsigned i, unsigned ver)
{
	char k[16], v[128];
	size_t kn = key_of(i, k), vn = val_of(i, ver, v);

	OK(cellar_put(db, k, kn, v, vn));
}

static void del_num(cellar_db *db, unsigned i)
{
	char k[16];

	OK(cellar_delete(db, k, key_of(i, k)));
}

/*
 * Check the whole store against the model ver[0..nkeys): gets, the count,
 * and an iteration that returns every present key once with its value.
 */
static void expect_model(cellar_db *db, const long *ver, unsigned nkeys)
{
	unsigned char *seen = calloc(nkeys, 1);
	uint64_t live = 0, iterated = 0;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	char why[128];
	int rc;

	cr_assert_not_null(seen);
	for (unsigned i = 0; i < nkeys; i++) {
		char key[16], got[128];
		size_t n = 0, klen = key_of(i, key);
		rc = cellar_get(db, key, klen, got, sizeof got, &n);
		if (ver[i] == NO_VERSION) {
			cr_assert_eq(rc, CELLAR_ENOTFOUND,
			             "deleted key %u: want ENOTFOUND, got %s", i,
			             cellar_strerror(rc));
			continue;
		}
		live++;
		cr_assert_eq(rc, CELLAR_OK, "key %u: %s (%s)", i,
		             cellar_strerror(rc), cellar_errmsg());
		long got_ver = parse_val(i, got, n, why, sizeof why);
		cr_assert(got_ver >= 0, "%s", why);
		cr_assert_eq(got_ver, ver[i], "key %u: version %ld, want %ld", i,
		             got_ver, ver[i]);
	}
	cr_assert_eq(count_of(db), live, "count %llu, want %llu",
	             (unsigned long long)count_of(db), (unsigned long long)live);

	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		unsigned i;
		char key[16];
		cr_assert(kn > 3 && kn < 16, "iterated a key of %zu bytes", kn);
		memcpy(key, k, kn);
		key[kn] = '\0';
		cr_assert_eq(sscanf(key, "key%6u", &i), 1, "iterated key '%s'", key);
		cr_assert_lt(i, nkeys, "iterated unknown key %u", i);
		cr_assert_neq(ver[i], NO_VERSION, "iteration returned deleted key %u",
		              i);
		cr_assert_eq(seen[i], 0, "iteration returned key %u twice", i);
		seen[i] = 1;
		cr_assert_eq(parse_val(i, v, vn, why, sizeof why), ver[i],
		             "iterated key %u: %s", i, why);
		iterated++;
	}
	cr_assert_eq(rc, CELLAR_EDONE, "iteration ended with %s",
	             cellar_strerror(rc));
	cellar_iter_free(it);
	cr_assert_eq(iterated, live, "iterated %llu keys, want %llu",
	             (unsigned long long)iterated, (unsigned long long)live);
	free(seen);
}

static void expect_absent(cellar_db *db, unsigned i)
{
	char k[16];

	ERR(CELLAR_ENOTFOUND, cellar_has(db, k, key_of(i, k)));
}

/*
 * Overwrite-heavy workload: nkeys keys written `rounds` times (each round a
 * new version of every key, in a scrambled order), then every seventh key
 * deleted.  Fills ver.
 */
static void churn(cellar_db *db, long *ver, unsigned nkeys, unsigned rounds)
{
	for (unsigned r = 0; r < rounds; r++)
		for (unsigned j = 0; j < nkeys; j++) {
			unsigned i = (j * 7919u + r * 31u) % nkeys;
			put_num(db, i, r);
			ver[i] = (long)r;
		}
	for (unsigned i = 0; i < nkeys; i += 7) {
		del_num(db, i);
		ver[i] = NO_VERSION;
	}
}

/* ---- correctness of a pass --------------------------------------------- */

#define CHURN_KEYS 3000u /* 7919 is coprime with it: every key each round */

Test(compact, overwrites_and_deletes_read_back_after_compaction)
{
	tc_store s;
	long ver[CHURN_KEYS];
	cellar_compact_result r;
	seq_list *files = malloc(sizeof *files);
	size_t nbefore, nafter;

	cr_assert_not_null(files);
	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 4);
	cellar_db_stats before = stats_of(s.db);
	cellar_segment_info *segs_before = segments_of(s.db, &nbefore);
	cr_assert_gt(nbefore, 4, "the workload spans several segments");

	memset(&r, 0xee, sizeof r);
	OK(cellar_compact(s.db, &r));
	cr_assert_gt(r.segments_compacted, 0);
	cr_assert_gt(r.records_copied, 0);
	cr_assert_gt(r.bytes_copied, 0);
	cr_assert_gt(r.bytes_reclaimed, 0);
	cr_assert_eq(r.complete, 1);
	cr_assert_geq(r.seconds, 0);
	cr_assert_geq(r.longest_pause_ms, 0);
	/* Only live records are copied: at most one per present key. */
	cr_assert_leq(r.records_copied, before.keys);

	cellar_db_stats after = stats_of(s.db);
	cr_assert_lt(after.dead_bytes, before.dead_bytes);
	cr_assert_lt(after.bytes_on_disk, before.bytes_on_disk);
	cr_assert_eq(after.live_bytes, before.live_bytes,
	             "copying moves live bytes, it does not change them");
	cr_assert_eq(after.compactions, before.compactions + 1);
	cr_assert_leq(after.dead_bytes * 100, 20 * (after.live_bytes + after.dead_bytes),
	              "after a pass the store is at most 20%% dead (%llu of %llu)",
	              (unsigned long long)after.dead_bytes,
	              (unsigned long long)(after.live_bytes + after.dead_bytes));
	expect_model(s.db, ver, CHURN_KEYS);

	/* The segments the pass rewrote are gone, from the list and the disk. */
	cellar_segment_info *segs_after = segments_of(s.db, &nafter);
	files_of(&s, files);
	size_t gone = 0;
	for (size_t i = 0; i < nbefore; i++) {
		if (has_seq(segs_after, nafter, segs_before[i].seq))
			continue;
		gone++;
		cr_assert(!file_has_seq(files, segs_before[i].seq),
		          "compacted segment %016llx still has a file",
		          (unsigned long long)segs_before[i].seq);
	}
	cr_assert_eq(gone, r.segments_compacted, "%zu segments left the list, "
	             "the pass says it compacted %llu", gone,
	             (unsigned long long)r.segments_compacted);
	expect_files_match_segments(&s);

	tc_store_reopen(&s);
	expect_model(s.db, ver, CHURN_KEYS);
	expect_files_match_segments(&s);
	cellar_db_stats reopened = stats_of(s.db);
	cr_assert_eq(reopened.keys, after.keys);
	cr_assert_eq(reopened.live_bytes, after.live_bytes);
	cr_assert_eq(reopened.segments, after.segments);
	size_t nre;
	cellar_segment_info *segs_re = segments_of(s.db, &nre);
	cr_assert_eq(nre, nafter);
	for (size_t i = 0; i < nre; i++)
		cr_assert_eq(segs_re[i].seq, segs_after[i].seq);

	store_rebuild(&s);
	expect_model(s.db, ver, CHURN_KEYS);
	free(segs_re);
	free(segs_after);
	free(segs_before);
	free(files);
	tc_store_free(&s);
}

#define TOMB_KEYS 12000u

Test(compact, only_tombstones_compact_to_an_empty_store)
{
	tc_store s;
	cellar_compact_result r;
	cellar_iter *it = NULL;

	tc_store_new(&s, SEG_64K);
	for (unsigned i = 0; i < TOMB_KEYS; i++)
		put_num(s.db, i, 0);
	for (unsigned i = 0; i < TOMB_KEYS; i++)
		del_num(s.db, i);
	cellar_db_stats before = stats_of(s.db);
	cr_assert_eq(before.keys, 0);
	cr_assert_eq(before.live_bytes, 0);

	OK(cellar_compact(s.db, &r));
	cr_assert_eq(r.complete, 1);
	cr_assert_gt(r.segments_compacted, 0);
	cr_assert_eq(r.records_copied, 0, "no put is live");
	uint64_t dropped = r.tombstones_dropped;
	cellar_db_stats after = stats_of(s.db);
	cr_assert_eq(after.keys, 0);
	cr_assert_lt(after.segments, before.segments);
	cr_assert_lt(after.bytes_on_disk, before.bytes_on_disk);
	cr_assert_lt(after.dead_bytes, before.dead_bytes);
	OK(cellar_iter_new(s.db, &it));
	ERR(CELLAR_EDONE, cellar_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_iter_free(it);

	/* Once nothing older is left, every tombstone goes. */
	OK(cellar_compact(s.db, &r));
	dropped += r.tombstones_dropped;
	int passes = 2;
	while (stats_of(s.db).dead_bytes > 0 && passes < 10) {
		OK(cellar_compact(s.db, &r));
		cr_assert_eq(r.records_copied, 0);
		dropped += r.tombstones_dropped;
		passes++;
	}
	cellar_db_stats last = stats_of(s.db);
	cr_assert_eq(dropped, TOMB_KEYS, "%llu of %u tombstones dropped",
	             (unsigned long long)dropped, TOMB_KEYS);
	cr_assert_eq(last.dead_bytes, 0,
	             "after %d passes %llu dead bytes are left in %llu segments",
	             passes, (unsigned long long)last.dead_bytes,
	             (unsigned long long)last.segments);
	cr_assert_eq(last.segment_bytes, last.segments * SEG_HEADER);

	tc_store_reopen(&s);
	cr_assert_eq(count_of(s.db), 0);
	for (unsigned i = 0; i < TOMB_KEYS; i += 13)
		expect_absent(s.db, i);
	OK(cellar_iter_new(s.db, &it));
	ERR(CELLAR_EDONE, cellar_iter_next(it, NULL, NULL, NULL, NULL));
	cellar_iter_free(it);

	store_rebuild(&s);
	cr_assert_eq(count_of(s.db), 0, "a rebuild brought deleted keys back");
	for (unsigned i = 0; i < TOMB_KEYS; i++)
		expect_absent(s.db, i);
	tc_store_free(&s);
}

/* The first pass drops the tombstones it can; a rebuild after each pass. */
Test(compact, tombstones_survive_a_rebuild_after_one_pass)
{
	tc_store s;

	tc_store_new(&s, SEG_64K);
	for (unsigned i = 0; i < TOMB_KEYS; i++)
		put_num(s.db, i, 0);
	for (unsigned i = 0; i < TOMB_KEYS; i++)
		del_num(s.db, i);
	for (int pass = 0; pass < 3; pass++) {
		OK(cellar_compact(s.db, NULL));
		store_rebuild(&s);
		cr_assert_eq(count_of(s.db), 0,
		             "pass %d: the rebuilt index holds %llu keys", pass,
		             (unsigned long long)count_of(s.db));
	}
	tc_store_free(&s);
}

/*
 * Tombstone safety.  Key K gets a big value in the oldest segment, which
 * otherwise holds keys that never change (so it stays below most
 * thresholds); K is deleted in a later segment that churn makes almost all
 * dead; more keys follow.  Passes at several thresholds, in several orders,
 * with reopens and rebuilds in between: K must never come back.
 */
#define STABLE_KEYS 500u
#define HOT_KEYS 200u
#define K_INDEX 999999u

static void put_big_k(cellar_db *db)
{
	char k[16], v[2048];
	size_t kn = key_of(K_INDEX, k);

	memset(v, 'K', sizeof v);
	OK(cellar_put(db, k, kn, v, sizeof v));
}

static void expect_k_absent(tc_store *s, const char *when)
{
	char k[16], buf[4096];
	size_t kn = key_of(K_INDEX, k), n;
	int rc = cellar_get(s->db, k, kn, buf, sizeof buf, &n);

	cr_assert_eq(rc, CELLAR_ENOTFOUND, "%s: deleted key came back (%s)", when,
	             cellar_strerror(rc));
}

static void tombstone_scenario(const unsigned *pcts, size_t npcts)
{
	tc_store s;
	long ver[STABLE_KEYS + HOT_KEYS];
	char when[96];

	tc_store_new(&s, SEG_64K);
	put_big_k(s.db);
	for (unsigned i = 0; i < STABLE_KEYS + HOT_KEYS; i++)
		ver[i] = NO_VERSION;
	for (unsigned i = 0; i < STABLE_KEYS; i++) { /* ~35 KiB: segment 1 */
		put_num(s.db, i, 0);
		ver[i] = 0;
	}
	char k[16];
	OK(cellar_delete(s.db, k, key_of(K_INDEX, k)));
	for (unsigned r = 0; r < 12; r++) /* churn: dead segments */
		for (unsigned i = STABLE_KEYS; i < STABLE_KEYS + HOT_KEYS; i++) {
			put_num(s.db, i, r);
			ver[i] = (long)r;
		}
	expect_k_absent(&s, "before compaction");

	for (size_t p = 0; p < npcts; p++) {
		s.o.compact_dead_pct = pcts[p];
		tc_store_reopen(&s);
		OK(cellar_compact(s.db, NULL));
		snprintf(when, sizeof when, "pass %zu at %u%%", p, pcts[p]);
		expect_k_absent(&s, when);
		expect_model(s.db, ver, STABLE_KEYS + HOT_KEYS);
		tc_store_reopen(&s);
		expect_k_absent(&s, when);
		/* Give the next pass something to do. */
		for (unsigned i = STABLE_KEYS; i < STABLE_KEYS + HOT_KEYS; i += 3) {
			put_num(s.db, i, 100 + (unsigned)p);
			ver[i] = 100 + (long)p;
		}
		store_rebuild(&s);
		expect_k_absent(&s, when);
		expect_model(s.db, ver, STABLE_KEYS + HOT_KEYS);
	}
	tc_store_free(&s);
}

Test(compact, deleted_key_never_reappears_high_threshold_first)
{
	static const unsigned pcts[] = { 50, 20, 1, 100, 1 };
	tombstone_scenario(pcts, sizeof pcts / sizeof pcts[0]);
}

Test(compact, deleted_key_never_reappears_low_threshold_first)
{
	static const unsigned pcts[] = { 1, 1, 90, 20 };
	tombstone_scenario(pcts, sizeof pcts / sizeof pcts[0]);
}

Test(compact, deleted_key_never_reappears_when_reput_and_deleted_again)
{
	tc_store s;
	char k[16];
	size_t kn = key_of(K_INDEX, k);

	tc_store_new(&s, SEG_64K);
	put_big_k(s.db);
	for (unsigned i = 0; i < STABLE_KEYS; i++)
		put_num(s.db, i, 0);
	OK(cellar_delete(s.db, k, kn));
	for (unsigned r = 0; r < 6; r++)
		for (unsigned i = STABLE_KEYS; i < STABLE_KEYS + HOT_KEYS; i++)
			put_num(s.db, i, r);
	put_big_k(s.db); /* K again: the first tombstone is superseded */
	for (unsigned r = 0; r < 6; r++)
		for (unsigned i = STABLE_KEYS; i < STABLE_KEYS + HOT_KEYS; i++)
			put_num(s.db, i, 10 + r);
	OK(cellar_delete(s.db, k, kn));
	for (unsigned r = 0; r < 6; r++)
		for (unsigned i = STABLE_KEYS; i < STABLE_KEYS + HOT_KEYS; i++)
			put_num(s.db, i, 20 + r);
	for (unsigned pct = 100; pct >= 1; pct = pct > 10 ? pct - 30 : pct - 1) {
		s.o.compact_dead_pct = pct;
		tc_store_reopen(&s);
		OK(cellar_compact(s.db, NULL));
		expect_k_absent(&s, "after a pass");
		store_rebuild(&s);
		expect_k_absent(&s, "after a rebuild");
	}
	tc_store_free(&s);
}

/* ---- what a pass touches ------------------------------------------------ */

Test(compact, second_pass_rewrites_nothing)
{
	tc_store s;
	long ver[CHURN_KEYS];
	cellar_compact_result r1, r2;

	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 3);
	OK(cellar_compact(s.db, &r1));
	cr_assert_gt(r1.segments_compacted, 0);
	cellar_db_stats after1 = stats_of(s.db);
	OK(cellar_compact(s.db, &r2));
	cr_assert(r2.segments_compacted == 0 || r2.records_copied == 0,
	          "second pass compacted %llu segments and copied %llu records",
	          (unsigned long long)r2.segments_compacted,
	          (unsigned long long)r2.records_copied);
	cellar_db_stats after2 = stats_of(s.db);
	cr_assert_leq(after2.bytes_on_disk, after1.bytes_on_disk,
	              "bytes on disk grew from %llu to %llu",
	              (unsigned long long)after1.bytes_on_disk,
	              (unsigned long long)after2.bytes_on_disk);
	cr_assert_eq(after2.live_bytes, after1.live_bytes);
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

static int qualifies(const cellar_segment_info *g, unsigned pct)
{
	return g->dead_bytes > 0 &&
	       g->dead_bytes * 100 >= (uint64_t)pct * (g->live_bytes + g->dead_bytes);
}

Test(compact, segments_below_threshold_are_untouched)
{
	tc_store s;
	long ver[4 * STABLE_KEYS + HOT_KEYS];
	size_t nb, na;
	cellar_compact_result r;

	tc_store_new(&s, SEG_64K); /* compact_dead_pct: the default, 20 */
	for (unsigned i = 0; i < 4 * STABLE_KEYS; i++) { /* ~2 segments */
		put_num(s.db, i, 0);
		ver[i] = 0;
	}
	for (unsigned rd = 0; rd < 15; rd++)
		for (unsigned i = 4 * STABLE_KEYS; i < 4 * STABLE_KEYS + HOT_KEYS; i++) {
			put_num(s.db, i, rd);
			ver[i] = (long)rd;
		}
	/* A little dead data in the stable segments, under 20%. */
	for (unsigned i = 0; i < 4 * STABLE_KEYS; i += 50) {
		put_num(s.db, i, 1);
		ver[i] = 1;
	}
	cellar_segment_info *b = segments_of(s.db, &nb);
	size_t untouched = 0, qualifying = 0;
	for (size_t i = 0; i + 1 < nb; i++) {
		if (qualifies(&b[i], 20))
			qualifying++;
		else
			untouched++;
	}
	cr_assert_geq(untouched, 2, "the test needs segments below the threshold");
	cr_assert_geq(qualifying, 2, "the test needs segments above the threshold");

	OK(cellar_compact(s.db, &r));
	cellar_segment_info *a = segments_of(s.db, &na);
	for (size_t i = 0; i < nb; i++) {
		int present = has_seq(a, na, b[i].seq);
		if (i + 1 == nb) {
			/* The newest takes writes: rolled and compacted if it
			 * qualifies, else kept (and appended to). */
			cr_assert(present || qualifies(&b[i], 20),
			          "the newest segment %016llx was removed below "
			          "the threshold", (unsigned long long)b[i].seq);
			continue;
		}
		if (!qualifies(&b[i], 20)) {
			cr_assert(present, "segment %016llx (%llu live, %llu dead) is "
			          "below the threshold but was rewritten",
			          (unsigned long long)b[i].seq,
			          (unsigned long long)b[i].live_bytes,
			          (unsigned long long)b[i].dead_bytes);
			cr_assert_eq(a[i].seq, b[i].seq, "order kept");
			cr_assert_eq(a[i].bytes, b[i].bytes, "untouched segment changed size");
			cr_assert_eq(a[i].live_bytes, b[i].live_bytes);
			cr_assert_eq(a[i].dead_bytes, b[i].dead_bytes);
		} else {
			cr_assert(!present, "segment %016llx qualified but was kept",
			          (unsigned long long)b[i].seq);
		}
	}
	cr_assert_geq(r.segments_compacted, qualifying);
	expect_model(s.db, ver, 4 * STABLE_KEYS + HOT_KEYS);
	expect_files_match_segments(&s);
	free(a);
	free(b);
	tc_store_free(&s);
}

/* ---- concurrency ------------------------------------------------------- */

#define CONC_KEYS 2000u
#define CONC_READERS 3

typedef struct conc {
	cellar_db *db;
	atomic_int stop;        /* readers stop */
	atomic_int compacting;  /* 1 while the pass runs, 2 after */
	atomic_long ver[CONC_KEYS]; /* newest version written (writer) */
	atomic_ulong reads, writes_during;
	char why[256];
	atomic_int failed;
} conc;

static void conc_fail(conc *c, const char *why)
{
	if (atomic_exchange(&c->failed, 1) == 0)
		snprintf(c->why, sizeof c->why, "%s", why);
}

static void *conc_reader(void *arg)
{
	conc *c = arg;
	uint64_t rs = (uint64_t)(uintptr_t)&rs;
	char key[16], got[128], why[200];

	while (!atomic_load(&c->stop) && !atomic_load(&c->failed)) {
		unsigned i = (unsigned)(tc_rand(&rs) % CONC_KEYS);
		size_t n = 0, kn = key_of(i, key);
		long floor = atomic_load(&c->ver[i]);
		int rc = cellar_get(c->db, key, kn, got, sizeof got, &n);
		if (rc != CELLAR_OK) {
			snprintf(why, sizeof why, "reader: key %u: %s (%s)", i,
			         cellar_strerror(rc), cellar_errmsg());
			conc_fail(c, why);
			break;
		}
		long v = parse_val(i, got, n, why, sizeof why);
		if (v < 0) {
			conc_fail(c, why);
			break;
		}
		if (v < floor) {
			snprintf(why, sizeof why, "reader: key %u: version %ld after "
			         "%ld was written", i, v, floor);
			conc_fail(c, why);
			break;
		}
		atomic_fetch_add(&c->reads, 1);
	}
	return NULL;
}

static void *conc_writer(void *arg)
{
	conc *c = arg;
	uint64_t rs = 77;
	unsigned long n = 0;

	/* Keep writing while the pass runs, and at least a little. */
	while (atomic_load(&c->compacting) < 2 || n < 2000) {
		if (atomic_load(&c->failed))
			break;
		unsigned i = (unsigned)(tc_rand(&rs) % CONC_KEYS);
		long v = atomic_load(&c->ver[i]) + 1;
		char k[16], val[128];
		size_t kn = key_of(i, k), vn = val_of(i, (unsigned)v, val);
		int rc = cellar_put(c->db, k, kn, val, vn);
		if (rc != CELLAR_OK) {
			char why[200];
			snprintf(why, sizeof why, "writer: put key %u: %s (%s)", i,
			         cellar_strerror(rc), cellar_errmsg());
			conc_fail(c, why);
			break;
		}
		atomic_store(&c->ver[i], v);
		n++;
		if (atomic_load(&c->compacting) == 1)
			atomic_fetch_add(&c->writes_during, 1);
	}
	return NULL;
}

Test(compact, readers_and_writer_run_during_compaction)
{
	tc_store s;
	conc *c = calloc(1, sizeof *c);
	pthread_t readers[CONC_READERS], writer;
	cellar_compact_result r;

	cr_assert_not_null(c);
	tc_store_new(&s, SEG_64K);
	c->db = s.db;
	for (unsigned rd = 0; rd < 8; rd++)
		for (unsigned i = 0; i < CONC_KEYS; i++)
			put_num(s.db, i, rd);
	for (unsigned i = 0; i < CONC_KEYS; i++)
		atomic_store(&c->ver[i], 7);

	for (int t = 0; t < CONC_READERS; t++)
		cr_assert_eq(pthread_create(&readers[t], NULL, conc_reader, c), 0);
	cr_assert_eq(pthread_create(&writer, NULL, conc_writer, c), 0);
	/* Let everyone get going before the pass starts. */
	while (atomic_load(&c->reads) < 1000 && !atomic_load(&c->failed))
		sched_yield();
	atomic_store(&c->compacting, 1);
	int rc = cellar_compact(s.db, &r);
	atomic_store(&c->compacting, 2);
	pthread_join(writer, NULL);
	atomic_store(&c->stop, 1);
	for (int t = 0; t < CONC_READERS; t++)
		pthread_join(readers[t], NULL);

	cr_assert_eq(atomic_load(&c->failed), 0, "%s", c->why);
	cr_assert_eq(rc, CELLAR_OK, "cellar_compact: %s", cellar_strerror(rc));
	cr_assert_eq(r.complete, 1);
	cr_assert_gt(r.segments_compacted, 0);
	/* Writers go first between batches, so the writer may have overwritten
	 * every live record of the pass's segments before it copied them: how
	 * many were copied depends on scheduling, but never more than one per
	 * key. */
	cr_assert_leq(r.records_copied, CONC_KEYS);

	long ver[CONC_KEYS];
	for (unsigned i = 0; i < CONC_KEYS; i++)
		ver[i] = atomic_load(&c->ver[i]);
	expect_model(s.db, ver, CONC_KEYS);
	tc_store_reopen(&s);
	expect_model(s.db, ver, CONC_KEYS);
	tc_store_free(&s);
	free(c);
}

/* A read-only handle opened before a pass keeps reading its snapshot. */
Test(compact, read_only_handle_reads_while_writer_compacts)
{
	tc_store s;
	long ver[CHURN_KEYS];
	cellar_db *ro = NULL;
	cellar_options o;

	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 3);
	OK(cellar_sync(s.db));
	o = s.o;
	o.flags = CELLAR_READONLY;
	OK(cellar_open(&ro, s.dir, &o));
	OK(cellar_compact(s.db, NULL));
	expect_model(ro, ver, CHURN_KEYS);
	OK(cellar_close(ro));
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

/*
 * An iterator that has passed a segment must not meet that segment's keys
 * again when a pass copies them to the end of the log: keys nobody writes
 * during the iteration come out exactly once (cellar.h).
 */
Test(compact, iteration_across_a_pass_returns_each_key_once)
{
	tc_store s;
	unsigned char *seen = calloc(CHURN_KEYS, 1);
	cellar_iter *it = NULL;
	const void *k;
	size_t kn;
	uint64_t got = 0, copied = 0;
	int rc, busy = CELLAR_OK;

	cr_assert_not_null(seen);
	tc_store_new(&s, SEG_64K);
	/* Every key, then the even ones again: the old segments end up half
	 * dead, and their live (odd) keys come first in log order. */
	for (unsigned i = 0; i < CHURN_KEYS; i++)
		put_num(s.db, i, 0);
	for (unsigned i = 0; i < CHURN_KEYS; i += 2)
		put_num(s.db, i, 1);
	OK(cellar_iter_new(s.db, &it));
	while ((rc = cellar_iter_next(it, &k, &kn, NULL, NULL)) == CELLAR_OK) {
		unsigned i;
		char key[16];
		memcpy(key, k, kn);
		key[kn] = '\0';
		cr_assert_eq(sscanf(key, "key%6u", &i), 1);
		cr_assert_lt(i, CHURN_KEYS);
		cr_assert_eq(seen[i], 0, "key %u returned twice: a pass after "
		             "%u items copied %llu records", i, CHURN_KEYS / 4,
		             (unsigned long long)copied);
		seen[i] = 1;
		if (++got == CHURN_KEYS / 4) { /* halfway through the odd keys */
			/* Either the pass runs and the iterator copes, or it
			 * refuses to move records under an open iterator. */
			cellar_compact_result r;
			memset(&r, 0, sizeof r);
			busy = cellar_compact(s.db, &r);
			cr_assert(busy == CELLAR_OK || busy == CELLAR_EBUSY,
			          "cellar_compact with an iterator open: %s",
			          cellar_strerror(busy));
			copied = r.records_copied;
		}
	}
	cr_assert_eq(rc, CELLAR_EDONE);
	cr_assert_eq(got, CHURN_KEYS);
	cellar_iter_free(it);
	/* With the iterator gone, the pass runs and moves the odd keys. */
	if (busy == CELLAR_EBUSY) {
		cellar_compact_result r;
		OK(cellar_compact(s.db, &r));
		cr_assert_eq(r.complete, 1);
		cr_assert_gt(r.records_copied, 0, "the pass must move live keys");
	} else {
		cr_assert_gt(copied, 0, "the pass must move live keys");
	}
	free(seen);
	tc_store_free(&s);
}

/* ---- background compaction and close ----------------------------------- */

typedef struct events {
	atomic_int syncs, compacts, errors, bad;
	atomic_ulong copied, segments, complete;
	atomic_int rewriting; /* passes that compacted a segment */
} events;

static void on_event(const cellar_event *ev, void *ctx)
{
	events *e = ctx;

	if (!ev || !ev->message) {
		atomic_fetch_add(&e->bad, 1);
		return;
	}
	switch (ev->kind) {
	case CELLAR_EVENT_SYNC:
		if (ev->seconds < 0 || ev->compact)
			atomic_fetch_add(&e->bad, 1);
		atomic_fetch_add(&e->syncs, 1);
		break;
	case CELLAR_EVENT_COMPACT:
		if (!ev->compact || ev->seconds < 0) {
			atomic_fetch_add(&e->bad, 1);
			break;
		}
		atomic_fetch_add(&e->copied, ev->compact->records_copied);
		atomic_fetch_add(&e->segments, ev->compact->segments_compacted);
		atomic_fetch_add(&e->complete, (unsigned long)ev->compact->complete);
		if (ev->compact->segments_compacted)
			atomic_fetch_add(&e->rewriting, 1);
		atomic_fetch_add(&e->compacts, 1);
		break;
	case CELLAR_EVENT_ERROR:
		atomic_fetch_add(&e->errors, 1);
		break;
	default:
		atomic_fetch_add(&e->bad, 1);
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Wait (generously; no timing is asserted) until *v >= want. */
static int wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 30000 && atomic_load(v) < want; i++)
		sleep_ms(1);
	return atomic_load(v) >= want;
}

#define BG_KEYS 6000u

Test(compact, close_stops_background_compaction_cleanly)
{
	static const unsigned delays_ms[] = { 0, 0, 1, 2, 5, 20 };
	tc_store s;
	long ver[BG_KEYS];
	events ev;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	for (size_t d = 0; d < sizeof delays_ms / sizeof delays_ms[0]; d++) {
		/* Dead data for the background thread, written without it. */
		s.o.auto_compact_pct = 0;
		s.o.on_event = NULL;
		tc_store_reopen(&s);
		for (unsigned rd = 0; rd < 3; rd++)
			for (unsigned i = 0; i < BG_KEYS; i++) {
				unsigned v = (unsigned)d * 10 + rd;
				put_num(s.db, (i * 7919u) % BG_KEYS, v);
				ver[(i * 7919u) % BG_KEYS] = (long)v;
			}
		for (unsigned i = (unsigned)d; i < BG_KEYS; i += 11)
			if (ver[i] != NO_VERSION) {
				del_num(s.db, i);
				ver[i] = NO_VERSION;
			}
		s.o.auto_compact_pct = 1;
		s.o.sync_interval_ms = 1;
		s.o.on_event = on_event;
		s.o.event_ctx = &ev;
		tc_store_reopen(&s);
		if (delays_ms[d])
			sleep_ms(delays_ms[d]);
		OK(cellar_close(s.db)); /* whether or not the pass finished */
		s.db = NULL;
		s.o.auto_compact_pct = 0;
		s.o.on_event = NULL;
		tc_store_open(&s);
		expect_model(s.db, ver, BG_KEYS);
		expect_files_match_segments(&s);
		store_rebuild(&s);
		expect_model(s.db, ver, BG_KEYS);
	}
	cr_assert_eq(atomic_load(&ev.errors), 0, "a background error was reported");
	cr_assert_eq(atomic_load(&ev.bad), 0, "a malformed event");
	tc_store_free(&s);
}

Test(compact, background_compaction_reclaims_dead_space)
{
	tc_store s;
	long ver[CHURN_KEYS];
	events ev;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 4);
	cellar_db_stats before = stats_of(s.db);
	s.o.auto_compact_pct = 30;
	s.o.sync_interval_ms = 5;
	s.o.on_event = on_event;
	s.o.event_ctx = &ev;
	tc_store_reopen(&s);
	cr_assert(wait_for(&ev.compacts, 1), "no background pass was reported");
	cr_assert_eq(atomic_load(&ev.errors), 0);
	cr_assert_eq(atomic_load(&ev.bad), 0);
	cr_assert_gt(atomic_load(&ev.segments), 0);
	cr_assert_gt(atomic_load(&ev.copied), 0);
	/* Let any pass in flight finish before looking (close stops it). */
	tc_store_close(&s);
	s.o.auto_compact_pct = 0;
	s.o.on_event = NULL;
	tc_store_open(&s);
	cellar_db_stats after = stats_of(s.db);
	cr_assert_lt(after.dead_bytes, before.dead_bytes);
	cr_assert_lt(after.segments, before.segments);
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

/*
 * Once a pass has reclaimed what it can, later background passes (the
 * store-wide dead share may stay above auto_compact_pct: tombstones that
 * still hide older puts, segments below compact_dead_pct) must not keep
 * rewriting the same records.
 */
Test(compact, background_passes_stop_rewriting_once_converged)
{
	tc_store s;
	long ver[CHURN_KEYS];
	events ev;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 3);
	s.o.auto_compact_pct = 5;
	s.o.sync_interval_ms = 2;
	s.o.on_event = on_event;
	s.o.event_ctx = &ev;
	tc_store_reopen(&s);
	int passes = wait_for(&ev.compacts, 8);
	int rewriting = atomic_load(&ev.rewriting);
	int total = atomic_load(&ev.compacts);
	tc_store_close(&s);
	cr_assert(passes, "fewer than 8 background passes ran");
	cr_assert_leq(rewriting, 2, "%d of %d background passes rewrote segments "
	              "of a store with nothing new to reclaim", rewriting, total);
	s.o.auto_compact_pct = 0;
	s.o.on_event = NULL;
	tc_store_open(&s);
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

/*
 * A background pass that meets an open iterator waits for a later round; it
 * must not count as a failed compaction (which would refuse later writes).
 */
Test(compact, open_iterator_does_not_make_background_compaction_fail)
{
	tc_store s;
	long ver[CHURN_KEYS];
	events ev;
	cellar_iter *it = NULL;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 3);
	OK(cellar_iter_new(s.db, &it));
	OK(cellar_iter_next(it, NULL, NULL, NULL, NULL));
	s.o.auto_compact_pct = 1;
	s.o.sync_interval_ms = 1;
	s.o.on_event = on_event;
	s.o.event_ctx = &ev;
	cellar_iter_free(it); /* iterators must not outlive their handle */
	tc_store_reopen(&s);
	OK(cellar_iter_new(s.db, &it));
	OK(cellar_iter_next(it, NULL, NULL, NULL, NULL));
	sleep_ms(30); /* background rounds meet the open iterator */
	put_num(s.db, 1, 500);
	ver[1] = 500;
	cellar_iter_free(it);
	cr_assert(wait_for(&ev.compacts, 1), "no background pass after the "
	          "iterator was freed");
	put_num(s.db, 2, 500);
	ver[2] = 500;
	cr_assert_eq(atomic_load(&ev.errors), 0, "a background error was reported");
	tc_store_close(&s);
	s.o.auto_compact_pct = 0;
	s.o.on_event = NULL;
	tc_store_open(&s);
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

/* ---- events --------------------------------------------------------------- */

Test(compact, compact_event_reports_the_pass)
{
	tc_store s;
	long ver[CHURN_KEYS];
	events ev;
	cellar_compact_result r;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	s.o.on_event = on_event;
	s.o.event_ctx = &ev;
	tc_store_reopen(&s);
	churn(s.db, ver, CHURN_KEYS, 3);
	OK(cellar_compact(s.db, &r));
	/* cellar_compact reports before it returns, on this thread. */
	cr_assert_eq(atomic_load(&ev.compacts), 1);
	cr_assert_eq(atomic_load(&ev.copied), r.records_copied);
	cr_assert_eq(atomic_load(&ev.segments), r.segments_compacted);
	cr_assert_eq(atomic_load(&ev.complete), 1);
	cr_assert_gt(r.records_copied, 0);
	cr_assert_eq(atomic_load(&ev.errors), 0);
	cr_assert_eq(atomic_load(&ev.bad), 0);
	cr_assert_eq(atomic_load(&ev.syncs), 0, "SYNC_NONE: no background syncs");

	/* A pass with nothing to do is still a pass. */
	OK(cellar_compact(s.db, NULL));
	cr_assert_eq(atomic_load(&ev.compacts), 2);
	tc_store_free(&s);
}

Test(compact, periodic_sync_sends_sync_events)
{
	tc_store s;
	events ev;

	memset(&ev, 0, sizeof ev);
	tc_store_new(&s, SEG_64K);
	s.o.sync_mode = CELLAR_SYNC_PERIODIC;
	s.o.sync_interval_ms = 5;
	s.o.on_event = on_event;
	s.o.event_ctx = &ev;
	tc_store_reopen(&s);
	put_num(s.db, 1, 1);
	cr_assert(wait_for(&ev.syncs, 3), "only %d sync events",
	          atomic_load(&ev.syncs));
	put_num(s.db, 2, 1);
	int seen = atomic_load(&ev.syncs);
	cr_assert(wait_for(&ev.syncs, seen + 2), "sync events stopped");
	cr_assert_eq(atomic_load(&ev.errors), 0);
	cr_assert_eq(atomic_load(&ev.bad), 0);
	cr_assert_eq(atomic_load(&ev.compacts), 0, "no compaction was asked for");
	cr_assert_geq(stats_of(s.db).syncs, 3);
	tc_store_close(&s);
	/* No events once the handle is closed. */
	seen = atomic_load(&ev.syncs);
	sleep_ms(20);
	cr_assert_eq(atomic_load(&ev.syncs), seen);
	tc_store_free(&s);
}

/* ---- arguments ----------------------------------------------------------- */

Test(compact, percentages_over_100_are_rejected)
{
	tc_store s;
	cellar_db *db = (cellar_db *)&s; /* must be overwritten with NULL */

	tc_store_new(&s, SEG_64K);
	tc_store_close(&s);
	s.o.compact_dead_pct = 101;
	ERR(CELLAR_EINVAL, cellar_open(&db, s.dir, &s.o));
	cr_assert_null(db);
	s.o.compact_dead_pct = 100;
	s.o.auto_compact_pct = 101;
	db = (cellar_db *)&s;
	ERR(CELLAR_EINVAL, cellar_open(&db, s.dir, &s.o));
	cr_assert_null(db);
	s.o.auto_compact_pct = 100;
	tc_store_open(&s); /* 100 is in range */
	tc_store_free(&s);
}

Test(compact, compact_on_read_only_handle_fails)
{
	tc_store s;
	long ver[CHURN_KEYS];
	cellar_compact_result r;

	tc_store_new(&s, SEG_64K);
	churn(s.db, ver, CHURN_KEYS, 2);
	tc_store_close(&s);
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	cellar_db_stats before = stats_of(s.db);
	ERR(CELLAR_EREADONLY, cellar_compact(s.db, &r));
	ERR(CELLAR_EREADONLY, cellar_compact(s.db, NULL));
	cellar_db_stats after = stats_of(s.db);
	cr_assert_eq(after.segments, before.segments);
	cr_assert_eq(after.dead_bytes, before.dead_bytes);
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

Test(compact, null_db_is_invalid_and_result_is_optional)
{
	tc_store s;
	cellar_compact_result r;
	long ver[CHURN_KEYS];

	ERR(CELLAR_EINVAL, cellar_compact(NULL, &r));
	ERR(CELLAR_EINVAL, cellar_compact(NULL, NULL));
	tc_store_new(&s, SEG_64K);
	OK(cellar_compact(s.db, NULL)); /* empty store */
	churn(s.db, ver, CHURN_KEYS, 2);
	OK(cellar_compact(s.db, NULL));
	expect_model(s.db, ver, CHURN_KEYS);
	tc_store_free(&s);
}

Test(compact, empty_store_pass_does_nothing)
{
	tc_store s;
	cellar_compact_result r;

	tc_store_new(&s, SEG_64K);
	memset(&r, 0xee, sizeof r);
	OK(cellar_compact(s.db, &r));
	cr_assert_eq(r.segments_compacted, 0);
	cr_assert_eq(r.records_copied, 0);
	cr_assert_eq(r.bytes_copied, 0);
	cr_assert_eq(r.tombstones_dropped, 0);
	cr_assert_eq(r.bytes_reclaimed, 0);
	cr_assert_eq(r.complete, 1);
	cr_assert_eq(count_of(s.db), 0);
	tc_store_free(&s);
}

/* ---- a failing background pass ----------------------------------------- */

/*
 * A background compaction that fails is never silent: the event callback
 * hears of it, later puts return its error, and a successful cellar_compact
 * clears it.  Runs on the fault fs over the mem fs (whatever the suite's fs).
 */
Test(compact, background_failure_is_reported_and_returned_until_compacted)
{
	cellar_fs *base, *ff;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_compact_result r;
	events ev = { 0 };
	cellar_db *db;
	char key[32], val[100];
	int rc;

	OK(cellar_fs_mem_new(&base));
	OK(fault_fs_new(&ff, base));
	o.flags = CELLAR_CREATE;
	o.fs = ff;
	o.auto_compact_pct = 1;
	o.compact_dead_pct = 1;
	o.sync_interval_ms = 2;
	o.on_event = on_event;
	o.event_ctx = &ev;
	OK(cellar_open(&db, "/bgfail", &o));
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof key, "key-%d", i);
		memset(val, 'a', sizeof val);
		OK(cellar_put(db, key, strlen(key), val, sizeof val));
	}
	OK(cellar_sync(db));
	/* Now the disk is full.  Overwrites still land in the append
	 * buffer, and leave dead records for the background pass, which has
	 * to write (close the newest segment, copy records) and fails. */
	fault_fs_fail(ff, FAULT_WRITE, fault_fs_count(ff, FAULT_WRITE) + 1,
	              CELLAR_ENOSPC, 1);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof key, "key-%d", i);
		memset(val, 'b', sizeof val);
		if (cellar_put(db, key, strlen(key), val, sizeof val) != CELLAR_OK)
			break; /* the failed pass already refuses writes */
	}
	/* Bounded wait for the background thread (it wakes every 2 ms). */
	for (int i = 0; i < 20000 && atomic_load(&ev.errors) == 0; i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	cr_assert_gt(atomic_load(&ev.errors), 0,
	             "the failed background pass was reported");
	fault_fs_fail(ff, FAULT_WRITE, 0, 0, 0); /* space again */
	/* Until a compaction succeeds, puts return the background error. */
	rc = cellar_put(db, "after", 5, "x", 1);
	cr_assert_eq(rc, CELLAR_ENOSPC, "put after a failed background pass: %s",
	             cellar_strerror(rc));
	OK(cellar_compact(db, &r));
	OK(cellar_put(db, "after", 5, "x", 1));
	cr_assert_eq(atomic_load(&ev.bad), 0, "malformed events");
	OK(cellar_close(db));
	cellar_fs_free(ff);
	cellar_fs_free(base);
}

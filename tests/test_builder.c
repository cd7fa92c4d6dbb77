/*
 * test_builder.c - bulk loading: the builder's calls and their errors, the
 * built store (contents, geometry, an ordinary checkpoint that later writes
 * update), duplicates, the spill path, publication over a store, stale
 * build directories, and crashes at every mutation of a build.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"
#include "index.h"

/* ---- helpers ------------------------------------------------------------- */

static void key_of(char *k, uint64_t i)
{
	snprintf(k, 17, "key%013llu", (unsigned long long)i);
}

static size_t val_of(char *v, uint64_t i, unsigned gen)
{
	return (size_t)snprintf(v, 64, "value-%llu-gen%u-%s",
	                        (unsigned long long)i, gen,
	                        i % 3 ? "x" : "xxxxxxxxxxxxxxxxxxxx");
}

static cellar_build_options bopts(cellar_fs *fs)
{
	cellar_build_options o = CELLAR_BUILD_OPTIONS_INIT;

	o.fs = fs;
	o.hash_seed = 42;
	return o;
}

/* Build keys [0, n) with generation gen at dir. */
static int build(cellar_fs *fs, const char *dir, uint64_t n, unsigned gen,
                 uint64_t budget)
{
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	char k[17], v[64];
	int rc;

	o.memory_budget = budget;
	if ((rc = cellar_builder_open(&b, dir, &o)) < 0)
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		if ((rc = cellar_builder_add(b, k, 16, v, val_of(v, i, gen))) < 0)
			goto done;
	}
	rc = cellar_builder_finish(b);
done:
	cellar_builder_abort(b);
	return rc;
}

static cellar_db *open_db(cellar_fs *fs, const char *dir, unsigned flags)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;

	o.fs = fs;
	o.flags = flags;
	o.hash_seed = 42;
	OK(cellar_open(&db, dir, &o));
	return db;
}

/* Every key [0, n) has generation gen's value, and there is nothing else. */
static void check_contents(cellar_db *db, uint64_t n, unsigned gen)
{
	char k[17], v[64], got[64];
	uint64_t count;
	size_t len;

	OK(cellar_count(db, &count));
	cr_assert_eq(count, n, "count %llu, want %llu",
	             (unsigned long long)count, (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		size_t vl = val_of(v, i, gen);
		OK(cellar_get(db, k, 16, got, sizeof got, &len));
		cr_assert(len == vl && memcmp(got, v, vl) == 0, "key %llu",
		          (unsigned long long)i);
	}
	key_of(k, n);
	ERR(CELLAR_ENOTFOUND, cellar_get(db, k, 16, got, sizeof got, &len));
}

static void check_dir(cellar_fs *fs, const char *dir, uint64_t n, unsigned gen)
{
	cellar_db *db = open_db(fs, dir, 0);
	cellar_db_stats st;

	OK(cellar_stats(db, &st));
	cr_assert_eq(st.rebuilt_index, 0, "the built index was not loaded");
	check_contents(db, n, gen);
	OK(cellar_close(db));
}

static int count_builds(const char *name, void *ctx)
{
	if (strstr(name, ".build-"))
		++*(int *)ctx;
	return 0;
}

/* Build directories beside dir. */
static int builds_beside(cellar_fs *fs, const char *dir)
{
	char parent[4096];
	const char *slash = strrchr(dir, '/');
	int n = 0;

	if (slash && slash != dir) {
		memcpy(parent, dir, (size_t)(slash - dir));
		parent[slash - dir] = '\0';
	} else {
		strcpy(parent, slash ? "/" : ".");
	}
	OK(fs->list(fs, parent, count_builds, &n));
	return n;
}

/* ---- geometry ------------------------------------------------------------ */

Test(builder, geometry_matches_presize)
{
	uint64_t ns[] = { 0, 1, 5, 6, 7, 100, 1000, 4095, 4096, 12345, 100000,
	                  262143, 1000003 };

	for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
		cellar_index *ix;
		uint32_t level;
		uint64_t split, buckets;
		OK(index_new(&ix, 1));
		OK(index_presize(ix, ns[i]));
		index_geometry_for(ns[i], &level, &split);
		index_sizes(ix, &buckets, NULL);
		cr_assert_eq(buckets, (1ull << level) + split, "n=%llu",
		             (unsigned long long)ns[i]);
		index_free(ix);
	}
}

Test(builder, geometry_matches_a_put_loaded_store)
{
	cellar_fs *fs = tc_fs_new();
	char *a = tc_dir_new(), *b = tc_dir_new();
	uint64_t n = 20011;
	char k[17], v[64];
	cellar_db_stats sa, sb;

	OK(build(fs, a, n, 0, 0));
	cellar_db *db = open_db(fs, b, CELLAR_CREATE);
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		OK(cellar_put(db, k, 16, v, val_of(v, i, 0)));
	}
	OK(cellar_stats(db, &sb));
	OK(cellar_close(db));
	db = open_db(fs, a, 0);
	OK(cellar_stats(db, &sa));
	OK(cellar_close(db));
	cr_assert_eq(sa.buckets, sb.buckets, "built %llu buckets, put %llu",
	             (unsigned long long)sa.buckets,
	             (unsigned long long)sb.buckets);
	cr_assert_eq(sa.keys, sb.keys);
	cr_assert_eq(sa.live_bytes, sb.live_bytes);
	tc_dir_free(a);
	tc_dir_free(b);
	cellar_fs_free(fs);
}

/* ---- building ------------------------------------------------------------ */

Test(builder, builds_a_store_that_later_writes_update)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	char k[17], got[64];
	size_t len;

	OK(build(fs, dir, 5000, 0, 0));
	check_dir(fs, dir, 5000, 0);
	cr_assert_eq(builds_beside(fs, dir), 0);
	cellar_db *db = open_db(fs, dir, 0);
	key_of(k, 7);
	OK(cellar_put(db, k, 16, "new", 3));
	key_of(k, 8);
	OK(cellar_delete(db, k, 16));
	key_of(k, 99999);
	OK(cellar_put(db, k, 16, "added", 5));
	OK(cellar_close(db));
	db = open_db(fs, dir, 0);
	key_of(k, 7);
	OK(cellar_get(db, k, 16, got, sizeof got, &len));
	cr_assert(len == 3 && memcmp(got, "new", 3) == 0);
	key_of(k, 8);
	ERR(CELLAR_ENOTFOUND, cellar_get(db, k, 16, got, sizeof got, &len));
	key_of(k, 99999);
	OK(cellar_get(db, k, 16, got, sizeof got, &len));
	uint64_t count;
	OK(cellar_count(db, &count));
	cr_assert_eq(count, 5000);
	OK(cellar_close(db));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, a_trailing_slash_names_the_same_directory)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new(), slashed[4200];

	snprintf(slashed, sizeof slashed, "%s//", dir);
	OK(build(fs, slashed, 100, 0, 0));
	check_dir(fs, dir, 100, 0);
	cr_assert_eq(builds_beside(fs, dir), 0);
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, empty_build)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();

	OK(build(fs, dir, 0, 0, 0));
	check_dir(fs, dir, 0, 0);
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, spill_path_gives_the_same_store)
{
	cellar_fs *fs = tc_fs_new();
	char *a = tc_dir_new(), *b = tc_dir_new();
	uint64_t n = 200000; /* 3.2 MB of pairs: three spills of 1 MiB */
	cellar_db_stats sa, sb;

	OK(build(fs, a, n, 1, 1ull << 20));
	OK(build(fs, b, n, 1, 0));
	check_dir(fs, a, n, 1);
	cellar_db *da = open_db(fs, a, CELLAR_READONLY);
	cellar_db *db = open_db(fs, b, CELLAR_READONLY);
	OK(cellar_stats(da, &sa));
	OK(cellar_stats(db, &sb));
	cr_assert_eq(sa.buckets, sb.buckets);
	cr_assert_eq(sa.overflow_buckets, sb.overflow_buckets);
	cr_assert_eq(sa.index_bytes, sb.index_bytes);
	cr_assert_eq(sa.segment_bytes, sb.segment_bytes);
	OK(cellar_close(da));
	OK(cellar_close(db));
	cr_assert_eq(builds_beside(fs, a), 0);
	tc_dir_free(a);
	tc_dir_free(b);
	cellar_fs_free(fs);
}

/* Keys [0, n) twice (generations 0 then 1), plus key n once. */
static int build_dups(cellar_fs *fs, const char *dir, uint64_t n,
                      unsigned flags, uint64_t budget)
{
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	char k[17], v[64];
	int rc;

	o.flags = flags;
	o.memory_budget = budget;
	OK(cellar_builder_open(&b, dir, &o));
	for (unsigned gen = 0; gen < 2; gen++)
		for (uint64_t i = 0; i < n + gen; i++) {
			key_of(k, i);
			OK(cellar_builder_add(b, k, 16, v, val_of(v, i, gen)));
		}
	rc = cellar_builder_finish(b);
	cellar_builder_abort(b);
	return rc;
}

Test(builder, duplicates_last_wins)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	char k[17], got[64];
	size_t len;
	cellar_db_stats st;

	OK(cellar_builder_open(&b, dir, &o));
	OK(cellar_builder_add(b, "apple", 5, "red", 3));
	OK(cellar_builder_add(b, "pear", 4, "green", 5));
	OK(cellar_builder_add(b, "apple", 5, "yellow", 6));
	OK(cellar_builder_finish(b));
	cellar_builder_abort(b);
	cellar_db *db = open_db(fs, dir, 0);
	OK(cellar_get(db, "apple", 5, got, sizeof got, &len));
	cr_assert(len == 6 && memcmp(got, "yellow", 6) == 0);
	OK(cellar_stats(db, &st));
	cr_assert_eq(st.keys, 2);
	cr_assert_gt(st.dead_bytes, 0, "the replaced record counts as dead");
	OK(cellar_close(db));
	/* Many duplicates: the geometry is the one for the distinct keys,
	 * in memory and spilled alike. */
	char *d2 = tc_dir_new(), *d3 = tc_dir_new();
	OK(build_dups(fs, d2, 30000, 0, 0));
	OK(build_dups(fs, d3, 100000, 0, 1ull << 20));
	check_dir(fs, d2, 30001, 1);
	check_dir(fs, d3, 100001, 1);
	cellar_index *ix;
	uint64_t want;
	OK(index_new(&ix, 1));
	OK(index_presize(ix, 30001));
	index_sizes(ix, &want, NULL);
	index_free(ix);
	db = open_db(fs, d2, 0);
	OK(cellar_stats(db, &st));
	cr_assert_eq(st.buckets, want);
	OK(cellar_close(db));
	(void)k;
	tc_dir_free(d2);
	tc_dir_free(d3);
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

/*
 * One key added 70,000 times beside 60,000 distinct ones, with a 1 MiB
 * budget: its pairs all have one address, so their partition is far
 * bigger than the half budget a partition gets (src/build_index.c); it is
 * sorted over the budget, and every key still comes out right.
 */
Test(builder, a_skewed_partition_is_sorted_over_the_budget)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	char k[17], v[64], got[64];
	size_t len;
	uint64_t count;

	o.memory_budget = 1ull << 20;
	OK(cellar_builder_open(&b, dir, &o));
	for (uint64_t i = 0; i < 130000; i++) {
		if (i % 13 < 7) { /* 70,000 times the hot key */
			int n = snprintf(v, sizeof v, "hot %llu", (unsigned long long)i);
			OK(cellar_builder_add(b, "hot-key", 7, v, (size_t)n));
		} else {
			key_of(k, i);
			OK(cellar_builder_add(b, k, 16, v, val_of(v, i, 3)));
		}
	}
	OK(cellar_builder_finish(b));
	cellar_builder_abort(b);
	cellar_db *db = open_db(fs, dir, CELLAR_READONLY);
	OK(cellar_count(db, &count));
	cr_assert_eq(count, 60001);
	OK(cellar_get(db, "hot-key", 7, got, sizeof got, &len));
	int n = snprintf(v, sizeof v, "hot %llu", 129999ull - 129999ull % 13 + 6);
	cr_assert(len == (size_t)n && memcmp(got, v, len) == 0, "%.*s",
	          (int)len, got);
	for (uint64_t i = 0; i < 130000; i++) {
		if (i % 13 < 7)
			continue;
		key_of(k, i);
		size_t want = val_of(v, i, 3);
		OK(cellar_get(db, k, 16, got, sizeof got, &len));
		cr_assert(len == want && memcmp(got, v, len) == 0);
	}
	OK(cellar_close(db));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, duplicates_refused_with_unique)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();

	ERR(CELLAR_EEXIST, build_dups(fs, dir, 1000, CELLAR_BUILD_UNIQUE, 0));
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	o.fs = fs;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cr_assert_eq(builds_beside(fs, dir), 0);
	/* Distinct keys pass. */
	OK(build(fs, dir, 1000, 0, 0));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

/* ---- errors -------------------------------------------------------------- */

Test(builder, error_paths)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_build_options o = bopts(fs);
	cellar_builder *b = (cellar_builder *)&o;

	ERR(CELLAR_EINVAL, cellar_builder_open(NULL, dir, &o));
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, NULL, &o));
	cr_assert_null(b);
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, "", &o));
	o.memory_budget = (1ull << 20) - 1;
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, dir, &o));
	cr_assert_null(b);
	o.memory_budget = 0;
	o.version = 99;
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, dir, &o));
	o.version = CELLAR_BUILD_OPTIONS_VERSION;
	o.flags = 0x100;
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, dir, &o));
	o.flags = 0;
	o.max_segment_size = 100;
	ERR(CELLAR_EINVAL, cellar_builder_open(&b, dir, &o));
	o.max_segment_size = 0;
	ERR(CELLAR_EINVAL, cellar_builder_add(NULL, "k", 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_builder_finish(NULL));
	cellar_builder_abort(NULL);

	OK(cellar_builder_open(&b, dir, &o));
	ERR(CELLAR_EINVAL, cellar_builder_add(b, NULL, 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_builder_add(b, "k", 1, NULL, 1));
	ERR(CELLAR_EKEYLEN, cellar_builder_add(b, "k", 0, "v", 1));
	ERR(CELLAR_EKEYLEN, cellar_builder_add(b, "k", 70000, "v", 1));
	OK(cellar_builder_add(b, "k", 1, NULL, 0));
	OK(cellar_builder_finish(b));
	ERR(CELLAR_EINVAL, cellar_builder_add(b, "k", 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_builder_finish(b));
	cellar_builder_abort(b); /* after finish: only frees */
	cellar_db *db = open_db(fs, dir, 0);
	uint64_t count;
	OK(cellar_count(db, &count));
	cr_assert_eq(count, 1);
	OK(cellar_close(db));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, abort_before_finish_leaves_nothing)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	cellar_db *db;
	cellar_options oo = CELLAR_OPTIONS_INIT;

	o.memory_budget = 1ull << 20;
	OK(cellar_builder_open(&b, dir, &o));
	for (int i = 0; i < 100000; i++)
		OK(cellar_builder_add(b, &i, sizeof i, "v", 1));
	cr_assert_eq(builds_beside(fs, dir), 1);
	cellar_builder_abort(b);
	cr_assert_eq(builds_beside(fs, dir), 0);
	oo.fs = fs;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &oo));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, target_that_is_not_a_store_is_refused)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new(), path[4200];
	cellar_build_options o = bopts(fs);
	cellar_builder *b;
	cellar_file *f;

	OK(fs->mkdir(fs, dir));
	snprintf(path, sizeof path, "%s/precious", dir);
	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->close(fs, f));
	ERR(CELLAR_EEXIST, cellar_builder_open(&b, dir, &o));
	cr_assert_null(b);
	cr_assert_eq(builds_beside(fs, dir), 0);
	OK(fs->remove(fs, path));
	if (fs->rmdir)
		OK(fs->rmdir(fs, dir));
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

/* ---- over an existing store ------------------------------------------------ */

Test(builder, replaces_a_store_and_old_readers_keep_reading)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();

	OK(build(fs, dir, 3000, 0, 0));
	cellar_db *old = open_db(fs, dir, CELLAR_READONLY);
	OK(build(fs, dir, 2000, 1, 0));
	check_dir(fs, dir, 2000, 1);
	check_contents(old, 3000, 0); /* the old files are unlinked, not cut */
	OK(cellar_close(old));
	cr_assert_eq(builds_beside(fs, dir), 0);
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

Test(builder, a_writer_on_the_store_makes_finish_fail)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();

	OK(build(fs, dir, 100, 0, 0));
	cellar_db *w = open_db(fs, dir, 0);
	ERR(CELLAR_ELOCKED, build(fs, dir, 50, 1, 0));
	check_contents(w, 100, 0);
	OK(cellar_close(w));
	cr_assert_eq(builds_beside(fs, dir), 0);
	check_dir(fs, dir, 100, 0);
	tc_dir_free(dir);
	cellar_fs_free(fs);
}

/*
 * The segments are written by the builder's writer thread while adds go
 * on (src/builder.c).  Fail each write of a build in turn, once or from
 * then on: a build either succeeds whole, or fails with the error and
 * leaves no store and no build directory; it never hangs.  Writes the
 * thread made and failed are made again by the adds, so a write failed
 * once may still give a whole store.
 */
Test(builder, failed_writes_fail_the_build_or_are_made_again)
{
	const char *dir = "/s/store";
	const uint64_t n = 200000; /* about 9 MB: several append buffers */
	cellar_fs *base, *fs;
	uint64_t writes;

	OK(cellar_fs_mem_new(&base));
	OK(base->mkdir(base, "/s"));
	OK(fault_fs_new(&fs, base));
	OK(build(fs, dir, n, 1, 0));
	writes = fault_fs_count(fs, FAULT_WRITE);
	cr_assert_gt(writes, 4, "writes %llu", (unsigned long long)writes);
	cellar_fs_free(fs);
	cellar_fs_free(base);
	for (int persistent = 0; persistent < 2; persistent++) {
		unsigned ok = 0;
		for (uint64_t k = 1; k <= writes; k++) {
			OK(cellar_fs_mem_new(&base));
			OK(base->mkdir(base, "/s"));
			OK(fault_fs_new(&fs, base));
			fault_fs_fail(fs, FAULT_WRITE, k, CELLAR_EIO, persistent);
			int rc = build(fs, dir, n, 1, 0);
			cellar_fs_free(fs);
			if (rc == CELLAR_OK) {
				cr_assert(!persistent, "k=%llu", (unsigned long long)k);
				ok++;
				check_dir(base, dir, n, 1);
			} else {
				cr_assert_eq(rc, CELLAR_EIO, "k=%llu: %s",
				             (unsigned long long)k, cellar_strerror(rc));
				cellar_options o = CELLAR_OPTIONS_INIT;
				cellar_db *db;
				o.fs = base;
				o.flags = CELLAR_READONLY;
				ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
			}
			cr_assert_eq(builds_beside(base, dir), 0, "k=%llu: debris",
			             (unsigned long long)k);
			cellar_fs_free(base);
		}
		fprintf(stderr, "%s failures of %llu writes: %u builds whole\n",
		        persistent ? "persistent" : "single",
		        (unsigned long long)writes, ok);
	}
}

/* ---- crashes --------------------------------------------------------------- */

/*
 * Crash a build at every mutation, on fault(mem), over no store (old == 0)
 * or over a store of old keys; then the target must open with the old state
 * (or be absent) or, once the publication has happened, the new one, whole.
 * Before the publication, a power cut is also simulated.  A second build
 * must then succeed and leave no build directory behind.
 */
static void crash_loop(uint64_t old, uint64_t n)
{
	const char *dir = "/s/store";
	uint64_t total = 0, renames = 0;

	for (uint64_t k = 0;; k++) {
		cellar_fs *base, *fs;
		OK(cellar_fs_mem_new(&base));
		OK(base->mkdir(base, "/s"));
		if (old)
			OK(build(base, dir, old, 0, 0));
		OK(fault_fs_new(&fs, base));
		if (k)
			fault_fs_crash_at(fs, k);
		int rc = build(fs, dir, n, 1, 1ull << 20);
		if (!k) {
			OK(rc);
			total = fault_fs_mutations(fs);
			renames = fault_fs_count(fs, FAULT_RENAME);
			cr_assert_gt(total, 20, "mutations %llu", (unsigned long long)total);
			fprintf(stderr, "crash loop over %llu keys: %llu mutations\n", (unsigned long long)old, (unsigned long long)total);
			cellar_fs_free(fs);
			cellar_fs_free(base);
			continue;
		}
		cr_assert(fault_fs_crashed(fs), "k=%llu", (unsigned long long)k);
		int published = fault_fs_count(fs, FAULT_RENAME) >= renames;
		if (!published)
			cr_assert_eq(fault_fs_power_cut(fs, k), CELLAR_OK, "k=%llu: power cut: %s", (unsigned long long)k, cellar_errmsg());
		cellar_fs_free(fs);
		/* The target: old or absent, or new whole once published. */
		cellar_options o = CELLAR_OPTIONS_INIT;
		cellar_db *db;
		o.fs = base;
		o.flags = CELLAR_READONLY;
		rc = cellar_open(&db, dir, &o);
		if (rc == CELLAR_ENOENT) {
			cr_assert(!old, "k=%llu: the old store is gone",
			          (unsigned long long)k);
		} else {
			cr_assert_eq(rc, CELLAR_OK, "k=%llu: %s", (unsigned long long)k,
			             cellar_errmsg());
			uint64_t c;
			OK(cellar_count(db, &c));
			if (c == n && published)
				check_contents(db, n, 1);
			else
				check_contents(db, old, 0);
			OK(cellar_close(db));
		}
		OK(build(base, dir, n, 2, 0));
		check_dir(base, dir, n, 2);
		cr_assert_eq(builds_beside(base, dir), 0, "k=%llu: debris",
		             (unsigned long long)k);
		cellar_fs_free(base);
		if (k >= total)
			break;
	}
}

Test(builder, crash_at_every_mutation_of_a_new_build, .timeout = 600)
{
	crash_loop(0, 3000);
}

Test(builder, crash_at_every_mutation_of_a_build_over_a_store, .timeout = 600)
{
	crash_loop(500, 3000);
}

/* 80,000 pairs with a 1 MiB budget: a spill file and partitions. */
Test(builder, crash_at_every_mutation_of_a_spilling_build, .timeout = 600)
{
	crash_loop(500, 80000);
}

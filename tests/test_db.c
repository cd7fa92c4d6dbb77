/*
 * test_db.c - the public database API: open/close, put/get/get_alloc/has/
 * delete/count/sync, their error paths, reopen round trips, and the linear
 * hash index under forced collisions and growth.  Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"
#include "files.h"
#include "testhook.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define SANITIZED 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
      __has_feature(memory_sanitizer)
#    define SANITIZED 1
#  endif
#endif
#ifndef SANITIZED
#  define SANITIZED 0
#endif

/* tc_store_free(), then the test hooks back to their defaults. */
static void store_free(tc_store *s)
{
	tc_store_free(s);
	cellar__test_set_hash(NULL);
	cellar__test_set_max_buckets(0);
}

static uint64_t count_of(cellar_db *db)
{
	uint64_t n = UINT64_MAX;

	OK(cellar_count(db, &n));
	return n;
}

static cellar__debug_info debug_of(cellar_db *db)
{
	cellar__debug_info d;

	memset(&d, 0xff, sizeof d);
	OK(cellar__debug(db, &d));
	return d;
}

/* Assert that key holds exactly val, through cellar_get and cellar_get_alloc. */
static void expect_value(cellar_db *db, const void *key, size_t key_len,
                         const void *val, size_t val_len)
{
	void *got = NULL;
	size_t n = SIZE_MAX;

	OK(cellar_get_alloc(db, key, key_len, &got, &n));
	cr_assert_not_null(got);
	cr_assert_eq(n, val_len, "value length %zu, want %zu", n, val_len);
	cr_assert(val_len == 0 || memcmp(got, val, val_len) == 0, "value differs");
	cellar_free(got);
}

static void expect_absent(cellar_db *db, const void *key, size_t key_len)
{
	char buf[8];
	size_t n = 12345;

	ERR(CELLAR_ENOTFOUND, cellar_get(db, key, key_len, buf, sizeof buf, &n));
	ERR(CELLAR_ENOTFOUND, cellar_has(db, key, key_len));
}

/* Numbered test data: key i is 16 hex digits, its value 0..40 bytes from i. */
static size_t key_of(uint64_t i, char key[17])
{
	snprintf(key, 17, "%016llx", (unsigned long long)(i * 0x9e3779b97f4a7c15ull));
	return 16;
}

static size_t val_of(uint64_t i, unsigned gen, char *val)
{
	size_t n = (size_t)((i * 7 + gen) % 41);

	for (size_t j = 0; j < n; j++)
		val[j] = (char)(i + j * 31 + gen * 101);
	return n;
}

static void put_numbered(cellar_db *db, uint64_t i, unsigned gen)
{
	char k[17], v[64];
	size_t kn = key_of(i, k), vn = val_of(i, gen, v);

	OK(cellar_put(db, k, kn, v, vn));
}

static void expect_numbered(cellar_db *db, uint64_t i, unsigned gen)
{
	char k[17], v[64], got[64];
	size_t kn = key_of(i, k), vn = val_of(i, gen, v), n = SIZE_MAX;
	int rc = cellar_get(db, k, kn, got, sizeof got, &n);

	cr_assert_eq(rc, CELLAR_OK, "key %llu: %s (%s)", (unsigned long long)i,
	             cellar_strerror(rc), cellar_errmsg());
	cr_assert_eq(n, vn, "key %llu: length %zu, want %zu",
	             (unsigned long long)i, n, vn);
	cr_assert(memcmp(got, v, vn) == 0, "key %llu: value differs",
	          (unsigned long long)i);
}

static void expect_numbered_absent(cellar_db *db, uint64_t i)
{
	char k[17], got[64];
	size_t kn = key_of(i, k), n;
	int rc = cellar_get(db, k, kn, got, sizeof got, &n);

	cr_assert_eq(rc, CELLAR_ENOTFOUND, "key %llu: want ENOTFOUND, got %s",
	             (unsigned long long)i, cellar_strerror(rc));
}

/* How many times iteration returns key, and with which value (last seen). */
static unsigned iter_occurrences(cellar_db *db, const void *key, size_t key_len,
                                 uint64_t *total)
{
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	unsigned hits = 0;
	int rc;

	*total = 0;
	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		++*total;
		if (kn == key_len && memcmp(k, key, kn) == 0)
			hits++;
	}
	ERR(CELLAR_EDONE, rc);
	cellar_iter_free(it);
	return hits;
}

/* --- open and close ----------------------------------------------------- */

Test(db, open_with_null_out_is_einval)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;

	o.fs = fs;
	o.flags = CELLAR_CREATE;
	ERR(CELLAR_EINVAL, cellar_open(NULL, dir, &o));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, open_with_null_dir_is_einval_and_sets_out_null)
{
	cellar_fs *fs = tc_fs_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = (cellar_db *)&o; /* a non-NULL sentinel */

	o.fs = fs;
	o.flags = CELLAR_CREATE;
	ERR(CELLAR_EINVAL, cellar_open(&db, NULL, &o));
	cr_assert_null(db, "*out is NULL on failure");
	cellar_fs_free(fs);
}

Test(db, open_missing_store_without_create_is_enoent)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = (cellar_db *)&o;

	o.fs = fs;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cr_assert_null(db);
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, open_with_null_options_uses_defaults)
{
	/* NULL options: the default (mmap) file system and no CREATE. */
	char tmpl[] = "/tmp/cellar-nullopts-XXXXXX";
	char path[64];
	cellar_db *db = (cellar_db *)&db;

	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(path, sizeof path, "%s/store", tmpl);
	ERR(CELLAR_ENOENT, cellar_open(&db, path, NULL));
	cr_assert_null(db);
	rmdir(tmpl);
}

Test(db, open_empty_directory_without_create_is_enoent)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;

	OK(fs->mkdir(fs, dir));
	o.fs = fs;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cr_assert_null(db);
	o.flags = CELLAR_CREATE;
	OK(cellar_open(&db, dir, &o));
	OK(cellar_put(db, "k", 1, "v", 1));
	OK(cellar_close(db));
	o.flags = 0;
	OK(cellar_open(&db, dir, &o));
	expect_value(db, "k", 1, "v", 1);
	OK(cellar_close(db));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, create_then_reopen_without_create)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "apple", 5, "red", 3));
	OK(cellar_close(s.db));
	s.o.flags = 0;
	tc_store_open(&s);
	expect_value(s.db, "apple", 5, "red", 3);
	cr_assert_eq(count_of(s.db), 1);
	store_free(&s);
}

Test(db, create_on_an_existing_store_keeps_its_data)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "apple", 5, "red", 3));
	tc_store_reopen(&s); /* still with CELLAR_CREATE */
	expect_value(s.db, "apple", 5, "red", 3);
	cr_assert_eq(count_of(s.db), 1);
	store_free(&s);
}

static void expect_bad_option(const cellar_options *bad, const char *what)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = *bad;
	cellar_db *db = (cellar_db *)&o;
	int rc;

	o.fs = fs;
	rc = cellar_open(&db, dir, &o);
	cr_assert_eq(rc, CELLAR_EINVAL, "%s: want EINVAL, got %s", what,
	             cellar_strerror(rc));
	cr_assert_null(db, "%s: *out is NULL on failure", what);
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

static void expect_good_option(const cellar_options *good, const char *what)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = *good;
	cellar_db *db = NULL;
	int rc;

	o.fs = fs;
	rc = cellar_open(&db, dir, &o);
	cr_assert_eq(rc, CELLAR_OK, "%s: %s (%s)", what, cellar_strerror(rc),
	             cellar_errmsg());
	OK(cellar_put(db, "k", 1, "v", 1));
	OK(cellar_close(db));
	o.flags &= ~(unsigned)CELLAR_CREATE;
	OK(cellar_open(&db, dir, &o));
	expect_value(db, "k", 1, "v", 1);
	OK(cellar_close(db));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

/* Write a small file at path through fs. */
static void put_file(cellar_fs *fs, const char *path, const char *text)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->write_at(fs, f, 0, text, strlen(text)));
	OK(fs->close(fs, f));
}

static int count_name(const char *name, void *ctx)
{
	(void)name;
	++*(int *)ctx;
	return CELLAR_OK;
}

Test(db, create_refuses_a_directory_of_other_files)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new(), path[4200];
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = (cellar_db *)&o;
	int n = 0;

	OK(fs->mkdir(fs, dir));
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	put_file(fs, path, "mine");
	o.fs = fs;
	o.flags = CELLAR_CREATE;
	ERR(CELLAR_EEXIST, cellar_open(&db, dir, &o));
	cr_assert_null(db);
	cr_assert(strstr(cellar_errmsg(), "no cellar store"), "%s", cellar_errmsg());
	OK(fs->list(fs, dir, count_name, &n));
	cr_assert_eq(n, 1, "files were added beside notes.txt");
	OK(fs->remove(fs, path));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, create_goes_on_after_a_creation_cut_short)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new(), path[4200];
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;

	/* A crash after the lock file was made, before meta was renamed. */
	OK(fs->mkdir(fs, dir));
	snprintf(path, sizeof path, "%s/LOCK", dir);
	put_file(fs, path, "");
	snprintf(path, sizeof path, "%s/meta.tmp", dir);
	put_file(fs, path, "half");
	o.fs = fs;
	o.flags = CELLAR_CREATE;
	OK(cellar_open(&db, dir, &o));
	OK(cellar_put(db, "k", 1, "v", 1));
	OK(cellar_close(db));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, a_file_in_the_path_is_not_a_directory)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new(), path[4200];
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;

	OK(fs->mkdir(fs, dir));
	snprintf(path, sizeof path, "%s/plain", dir);
	put_file(fs, path, "a file, not a store");
	o.fs = fs;
	o.flags = CELLAR_CREATE;
	int rc = cellar_open(&db, path, &o);
	cr_assert(rc == CELLAR_ENOENT || rc == CELLAR_EEXIST, "%s (%s)",
	          cellar_strerror(rc), cellar_errmsg());
	if (strcmp(tc_fs_name(), "mem") != 0) {
		ERR(CELLAR_ENOENT, rc);
		cr_assert(strstr(cellar_errmsg(), "Not a directory"), "%s",
		          cellar_errmsg());
	}
	OK(fs->remove(fs, path));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, permission_denied_has_its_own_code)
{
	if (strcmp(tc_fs_name(), "mem") == 0)
		cr_skip_test("the mem file system has no permissions");
	tc_store s;
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	tc_store_close(&s);
	/* As root every permission is granted: try as nobody, in a child. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(geteuid() == 0 ? 10 : 11);
		cellar_options o = s.o;
		cellar_db *db;
		o.flags = 0;
		int rc = cellar_open(&db, s.dir, &o);
		_exit(rc == CELLAR_EACCES && strstr(cellar_errmsg(), "Permission denied")
		          ? 0 : 20 + (rc < 0 ? -rc : 0));
	}
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 11) {
		store_free(&s);
		cr_skip_test("not root: cannot become another user");
	}
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit %d",
	          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	store_free(&s);
}

Test(db, open_rejects_bad_options)
{
	cellar_options init = CELLAR_OPTIONS_INIT, o;

	init.flags = CELLAR_CREATE;

	o = init, o.version = 0;
	expect_bad_option(&o, "version 0");
	o = init, o.version = CELLAR_OPTIONS_VERSION + 1;
	expect_bad_option(&o, "version too new");
	o = init, o.version = ~0u;
	expect_bad_option(&o, "version ~0");
	o = init, o.flags |= 0x8;
	expect_bad_option(&o, "flag 0x8");
	o = init, o.flags |= 0x80000000u;
	expect_bad_option(&o, "flag 0x80000000");
	o = init, o.max_segment_size = 64 * 1024 - 1;
	expect_bad_option(&o, "max_segment_size 64 KiB - 1");
	o = init, o.max_segment_size = 1;
	expect_bad_option(&o, "max_segment_size 1");
	o = init, o.max_segment_size = (2ull << 30) + 1;
	expect_bad_option(&o, "max_segment_size 2 GiB + 1");
	o = init, o.max_segment_size = UINT64_MAX;
	expect_bad_option(&o, "max_segment_size UINT64_MAX");
	o = init, o.sync_mode = 3;
	expect_bad_option(&o, "sync_mode 3");
	o = init, o.sync_mode = -1;
	expect_bad_option(&o, "sync_mode -1");
	o = init, o.segment_access = CELLAR_ACCESS_WILLNEED + 1;
	expect_bad_option(&o, "segment_access 5");
}

Test(db, open_accepts_boundary_options)
{
	cellar_options init = CELLAR_OPTIONS_INIT, o;

	init.flags = CELLAR_CREATE;

	o = init, o.max_segment_size = 64 * 1024;
	expect_good_option(&o, "max_segment_size 64 KiB");
	o = init, o.max_segment_size = 2ull << 30;
	expect_good_option(&o, "max_segment_size 2 GiB");
	o = init, o.sync_mode = CELLAR_SYNC_NONE;
	expect_good_option(&o, "sync_mode NONE");
	o = init, o.sync_mode = CELLAR_SYNC_PERIODIC, o.sync_interval_ms = 1;
	expect_good_option(&o, "sync_mode PERIODIC, 1 ms");
	o = init, o.sync_mode = CELLAR_SYNC_ALWAYS;
	expect_good_option(&o, "sync_mode ALWAYS");
	o = init, o.hash_seed = 0x0123456789abcdefull;
	expect_good_option(&o, "hash_seed");
}

Test(db, hash_seed_is_kept_from_creation)
{
	tc_store s;

	/* Create with one seed, reopen with another: the first one sticks. */
	tc_store_init(&s);
	s.o.hash_seed = 42;
	tc_store_open(&s);
	for (uint64_t i = 0; i < 2000; i++)
		put_numbered(s.db, i, 0);
	OK(cellar_close(s.db));
	s.o.hash_seed = 7;
	tc_store_open(&s);
	for (uint64_t i = 0; i < 2000; i++)
		expect_numbered(s.db, i, 0);
	cr_assert_eq(count_of(s.db), 2000);
	store_free(&s);
}

Test(db, second_writer_is_elocked_until_the_first_closes)
{
	tc_store s;
	cellar_db *db2 = (cellar_db *)&s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v1", 2));
	ERR(CELLAR_ELOCKED, cellar_open(&db2, s.dir, &s.o));
	cr_assert_null(db2);
	s.o.flags = 0;
	ERR(CELLAR_ELOCKED, cellar_open(&db2, s.dir, &s.o));
	cr_assert_null(db2);
	/* The failed opens did not disturb the first handle. */
	OK(cellar_put(s.db, "k", 1, "v2", 2));
	expect_value(s.db, "k", 1, "v2", 2);
	OK(cellar_close(s.db));
	s.db = NULL;

	OK(cellar_open(&db2, s.dir, &s.o));
	expect_value(db2, "k", 1, "v2", 2);
	OK(cellar_put(db2, "k", 1, "v3", 2));
	OK(cellar_close(db2));
	tc_store_open(&s);
	expect_value(s.db, "k", 1, "v3", 2);
	store_free(&s);
}

Test(db, second_writer_through_another_fs_is_elocked)
{
	if (strcmp(tc_fs_name(), "mem") == 0)
		cr_skip_test("two mem file systems are two disjoint worlds");
	tc_store s;
	cellar_fs *fs2 = tc_fs_new();
	cellar_options o2;
	cellar_db *db2 = (cellar_db *)&s;

	tc_store_new(&s, 0);
	o2 = s.o;
	o2.fs = fs2;
	o2.flags = 0;
	ERR(CELLAR_ELOCKED, cellar_open(&db2, s.dir, &o2));
	cr_assert_null(db2);
	OK(cellar_close(s.db));
	s.db = NULL;
	OK(cellar_open(&db2, s.dir, &o2));
	OK(cellar_close(db2));
	cellar_fs_free(fs2);
	store_free(&s);
}

Test(db, readonly_open_works_while_a_writer_has_the_store)
{
	tc_store s;
	cellar_options ro;
	cellar_db *r1 = NULL, *r2 = NULL;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "a", 1, "one", 3));
	OK(cellar_put(s.db, "gone", 4, "x", 1));
	OK(cellar_delete(s.db, "gone", 4));
	OK(cellar_sync(s.db));

	ro = s.o;
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&r1, s.dir, &ro));
	OK(cellar_open(&r2, s.dir, &ro)); /* readers take no lock */
	expect_value(r1, "a", 1, "one", 3);
	expect_value(r2, "a", 1, "one", 3);
	expect_absent(r1, "gone", 4);
	cr_assert_eq(count_of(r1), 1);

	/* A read-only handle sees the store as it was when it opened. */
	OK(cellar_put(s.db, "a", 1, "two", 3));
	OK(cellar_put(s.db, "b", 1, "bee", 3));
	OK(cellar_sync(s.db));
	expect_value(r1, "a", 1, "one", 3);
	expect_absent(r1, "b", 1);
	cr_assert_eq(count_of(r1), 1);
	expect_value(s.db, "a", 1, "two", 3);
	OK(cellar_close(r1));
	OK(cellar_close(r2));
	store_free(&s);
}

Test(db, readonly_handle_does_not_block_a_writer)
{
	tc_store s;
	cellar_options ro;
	cellar_db *r = NULL;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "a", 1, "one", 3));
	OK(cellar_close(s.db));
	s.db = NULL;
	ro = s.o;
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&r, s.dir, &ro));
	tc_store_open(&s);
	OK(cellar_put(s.db, "a", 1, "two", 3));
	expect_value(s.db, "a", 1, "two", 3);
	expect_value(r, "a", 1, "one", 3);
	OK(cellar_close(r));
	store_free(&s);
}

Test(db, readonly_open_of_missing_store_is_enoent_even_with_create)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = (cellar_db *)&o;

	o.fs = fs;
	o.flags = CELLAR_READONLY;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cr_assert_null(db);
	o.flags = CELLAR_READONLY | CELLAR_CREATE;
	db = (cellar_db *)&o;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cr_assert_null(db);
	/* And nothing was created by the attempt. */
	o.flags = 0;
	ERR(CELLAR_ENOENT, cellar_open(&db, dir, &o));
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(db, writes_on_a_readonly_handle_are_ereadonly)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));
	OK(cellar_close(s.db));
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	ERR(CELLAR_EREADONLY, cellar_put(s.db, "k", 1, "w", 1));
	ERR(CELLAR_EREADONLY, cellar_put(s.db, "new", 3, "w", 1));
	ERR(CELLAR_EREADONLY, cellar_delete(s.db, "k", 1));
	ERR(CELLAR_EREADONLY, cellar_sync(s.db));
	expect_value(s.db, "k", 1, "v", 1);
	expect_absent(s.db, "new", 3);
	cr_assert_eq(count_of(s.db), 1);
	OK(cellar_close(s.db));
	s.o.flags = 0;
	tc_store_open(&s);
	expect_value(s.db, "k", 1, "v", 1);
	cr_assert_eq(count_of(s.db), 1);
	store_free(&s);
}

Test(db, close_and_free_accept_null)
{
	OK(cellar_close(NULL));
	cellar_free(NULL);
	cellar_iter_free(NULL);
	cellar_fs_free(NULL);
}

Test(db, fresh_store_counts_zero)
{
	tc_store s;

	tc_store_new(&s, 0);
	cr_assert_eq(count_of(s.db), 0);
	expect_absent(s.db, "k", 1);
	tc_store_reopen(&s);
	cr_assert_eq(count_of(s.db), 0);
	store_free(&s);
}

/* --- put, get, has, delete, count --------------------------------------- */

Test(db, put_then_get_returns_value)
{
	tc_store s;
	char buf[16];
	size_t n = 0;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "apple", 5, "red", 3));
	OK(cellar_get(s.db, "apple", 5, buf, sizeof buf, &n));
	cr_assert_eq(n, 3);
	cr_assert(memcmp(buf, "red", 3) == 0);
	OK(cellar_has(s.db, "apple", 5));
	cr_assert_eq(count_of(s.db), 1);
	/* val_len may be NULL. */
	memset(buf, 0, sizeof buf);
	OK(cellar_get(s.db, "apple", 5, buf, sizeof buf, NULL));
	cr_assert(memcmp(buf, "red", 3) == 0);
	/* Exactly the right capacity is enough. */
	OK(cellar_get(s.db, "apple", 5, buf, 3, &n));
	cr_assert_eq(n, 3);
	store_free(&s);
}

Test(db, keys_are_compared_as_bytes)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "a", 1, "1", 1));
	OK(cellar_put(s.db, "a\0", 2, "2", 1));
	OK(cellar_put(s.db, "a\0b", 3, "3", 1));
	OK(cellar_put(s.db, "a\0c", 3, "4", 1));
	OK(cellar_put(s.db, "ab", 2, "5", 1));
	OK(cellar_put(s.db, "A", 1, "6", 1));
	OK(cellar_put(s.db, "\xff", 1, "7", 1));
	OK(cellar_put(s.db, "\0", 1, "8", 1));
	cr_assert_eq(count_of(s.db), 8);
	for (int pass = 0; pass < 2; pass++) {
		expect_value(s.db, "a", 1, "1", 1);
		expect_value(s.db, "a\0", 2, "2", 1);
		expect_value(s.db, "a\0b", 3, "3", 1);
		expect_value(s.db, "a\0c", 3, "4", 1);
		expect_value(s.db, "ab", 2, "5", 1);
		expect_value(s.db, "A", 1, "6", 1);
		expect_value(s.db, "\xff", 1, "7", 1);
		expect_value(s.db, "\0", 1, "8", 1);
		expect_absent(s.db, "a\0d", 3);
		expect_absent(s.db, "abc", 3);
		tc_store_reopen(&s);
	}
	store_free(&s);
}

Test(db, overwrite_replaces_value_and_keeps_count)
{
	tc_store s;
	char big[1000];

	memset(big, 'b', sizeof big);
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "first", 5));
	OK(cellar_put(s.db, "other", 5, "o", 1));
	OK(cellar_put(s.db, "k", 1, "second!", 7));
	expect_value(s.db, "k", 1, "second!", 7);
	cr_assert_eq(count_of(s.db), 2);
	OK(cellar_put(s.db, "k", 1, big, sizeof big));
	expect_value(s.db, "k", 1, big, sizeof big);
	OK(cellar_put(s.db, "k", 1, "s", 1));
	expect_value(s.db, "k", 1, "s", 1);
	OK(cellar_put(s.db, "k", 1, "", 0));
	expect_value(s.db, "k", 1, "", 0);
	cr_assert_eq(count_of(s.db), 2);
	tc_store_reopen(&s);
	expect_value(s.db, "k", 1, "", 0);
	expect_value(s.db, "other", 5, "o", 1);
	cr_assert_eq(count_of(s.db), 2);
	store_free(&s);
}

Test(db, zero_length_value_round_trips)
{
	tc_store s;
	char buf[4];
	size_t n = 99;
	void *p = NULL;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "empty", 5, "ignored", 0));
	OK(cellar_put(s.db, "null", 4, NULL, 0));
	for (int pass = 0; pass < 2; pass++) {
		OK(cellar_get(s.db, "empty", 5, buf, sizeof buf, &n));
		cr_assert_eq(n, 0);
		n = 99;
		OK(cellar_get(s.db, "null", 4, NULL, 0, &n));
		cr_assert_eq(n, 0);
		OK(cellar_has(s.db, "empty", 5));
		OK(cellar_has(s.db, "null", 4));
		n = 99;
		OK(cellar_get_alloc(s.db, "null", 4, &p, &n));
		cr_assert_not_null(p, "a zero-length value gives a non-NULL buffer");
		cr_assert_eq(n, 0);
		cellar_free(p);
		cr_assert_eq(count_of(s.db), 2);
		tc_store_reopen(&s);
	}
	store_free(&s);
}

Test(db, one_byte_key_round_trips)
{
	tc_store s;

	tc_store_new(&s, 0);
	for (int c = 0; c < 256; c++) {
		unsigned char k = (unsigned char)c;
		OK(cellar_put(s.db, &k, 1, &k, 1));
	}
	cr_assert_eq(count_of(s.db), 256);
	tc_store_reopen(&s);
	for (int c = 0; c < 256; c++) {
		unsigned char k = (unsigned char)c;
		expect_value(s.db, &k, 1, &k, 1);
	}
	store_free(&s);
}

Test(db, longest_key_works_and_one_more_is_ekeylen)
{
	tc_store s;
	size_t max = CELLAR_MAX_KEY_LEN;
	unsigned char *key = malloc(max + 1);
	uint64_t total;

	cr_assert_eq(max, 65535);
	cr_assert_not_null(key);
	for (size_t i = 0; i <= max; i++)
		key[i] = (unsigned char)(i * 13 + 5);
	tc_store_new(&s, 0);
	OK(cellar_put(s.db, key, max, "long", 4));
	ERR(CELLAR_EKEYLEN, cellar_put(s.db, key, max + 1, "long", 4));
	ERR(CELLAR_EKEYLEN, cellar_get(s.db, key, max + 1, NULL, 0, NULL));
	ERR(CELLAR_EKEYLEN, cellar_has(s.db, key, max + 1));
	ERR(CELLAR_EKEYLEN, cellar_delete(s.db, key, max + 1));
	void *p = (void *)key;
	ERR(CELLAR_EKEYLEN, cellar_get_alloc(s.db, key, max + 1, &p, NULL));
	cr_assert_null(p);
	/* A key one byte shorter is a different key. */
	expect_absent(s.db, key, max - 1);
	cr_assert_eq(count_of(s.db), 1);
	tc_store_reopen(&s);
	expect_value(s.db, key, max, "long", 4);
	cr_assert_eq(iter_occurrences(s.db, key, max, &total), 1);
	cr_assert_eq(total, 1);
	OK(cellar_delete(s.db, key, max));
	expect_absent(s.db, key, max);
	tc_store_reopen(&s);
	expect_absent(s.db, key, max);
	cr_assert_eq(count_of(s.db), 0);
	store_free(&s);
	free(key);
}

Test(db, empty_key_is_ekeylen)
{
	tc_store s;
	void *p = (void *)&s;

	tc_store_new(&s, 0);
	ERR(CELLAR_EKEYLEN, cellar_put(s.db, "k", 0, "v", 1));
	ERR(CELLAR_EKEYLEN, cellar_get(s.db, "k", 0, NULL, 0, NULL));
	ERR(CELLAR_EKEYLEN, cellar_get_alloc(s.db, "k", 0, &p, NULL));
	cr_assert_null(p);
	ERR(CELLAR_EKEYLEN, cellar_has(s.db, "k", 0));
	ERR(CELLAR_EKEYLEN, cellar_delete(s.db, "k", 0));
	cr_assert_eq(count_of(s.db), 0);
	store_free(&s);
}

Test(db, value_over_the_limit_is_evallen_before_reading_it)
{
	tc_store s;
	char one = 'x'; /* only one byte: the length must be checked first */

	tc_store_new(&s, 0);
	ERR(CELLAR_EVALLEN, cellar_put(s.db, "k", 1, &one, (size_t)CELLAR_MAX_VALUE_LEN + 1));
	ERR(CELLAR_EVALLEN, cellar_put(s.db, "k", 1, &one, SIZE_MAX));
	expect_absent(s.db, "k", 1);
	cr_assert_eq(count_of(s.db), 0);
	/* The store still works afterwards. */
	OK(cellar_put(s.db, "k", 1, &one, 1));
	expect_value(s.db, "k", 1, "x", 1);
	store_free(&s);
}

Test(db, null_arguments_are_einval)
{
	tc_store s;
	char buf[8];
	size_t n;
	uint64_t c;
	void *p;
	cellar_iter *it;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "v", 1));

	ERR(CELLAR_EINVAL, cellar_put(s.db, NULL, 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_put(s.db, "k", 1, NULL, 1));
	ERR(CELLAR_EINVAL, cellar_get(s.db, NULL, 1, buf, sizeof buf, &n));
	ERR(CELLAR_EINVAL, cellar_get(s.db, "k", 1, NULL, 8, &n));
	p = (void *)&s;
	ERR(CELLAR_EINVAL, cellar_get_alloc(s.db, NULL, 1, &p, &n));
	cr_assert_null(p);
	ERR(CELLAR_EINVAL, cellar_get_alloc(s.db, "k", 1, NULL, &n));
	ERR(CELLAR_EINVAL, cellar_has(s.db, NULL, 1));
	ERR(CELLAR_EINVAL, cellar_delete(s.db, NULL, 1));
	ERR(CELLAR_EINVAL, cellar_count(s.db, NULL));

	ERR(CELLAR_EINVAL, cellar_put(NULL, "k", 1, "v", 1));
	ERR(CELLAR_EINVAL, cellar_get(NULL, "k", 1, buf, sizeof buf, &n));
	p = (void *)&s;
	ERR(CELLAR_EINVAL, cellar_get_alloc(NULL, "k", 1, &p, &n));
	cr_assert_null(p);
	ERR(CELLAR_EINVAL, cellar_has(NULL, "k", 1));
	ERR(CELLAR_EINVAL, cellar_delete(NULL, "k", 1));
	ERR(CELLAR_EINVAL, cellar_count(NULL, &c));
	ERR(CELLAR_EINVAL, cellar_sync(NULL));
	it = (cellar_iter *)&s;
	ERR(CELLAR_EINVAL, cellar_iter_new(NULL, &it));
	cr_assert_null(it);
	ERR(CELLAR_EINVAL, cellar_iter_new(s.db, NULL));

	/* Nothing above changed the store. */
	expect_value(s.db, "k", 1, "v", 1);
	cr_assert_eq(count_of(s.db), 1);
	store_free(&s);
}

Test(db, get_with_small_buffer_is_ebufs_and_tells_length)
{
	tc_store s;
	char buf[8];
	size_t n = 0;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "0123456789", 10));
	ERR(CELLAR_EBUFS, cellar_get(s.db, "k", 1, buf, sizeof buf, &n));
	cr_assert_eq(n, 10, "*val_len is the length needed");
	n = 0;
	ERR(CELLAR_EBUFS, cellar_get(s.db, "k", 1, buf, 9, &n));
	cr_assert_eq(n, 10);
	n = 0;
	ERR(CELLAR_EBUFS, cellar_get(s.db, "k", 1, NULL, 0, &n));
	cr_assert_eq(n, 10, "cap 0 with a NULL buffer asks for the length");
	ERR(CELLAR_EBUFS, cellar_get(s.db, "k", 1, NULL, 0, NULL));
	/* And the needed length then works. */
	char big[10];
	n = 0;
	OK(cellar_get(s.db, "k", 1, big, sizeof big, &n));
	cr_assert_eq(n, 10);
	cr_assert(memcmp(big, "0123456789", 10) == 0);
	store_free(&s);
}

Test(db, get_of_absent_key_is_enotfound)
{
	tc_store s;
	void *p = (void *)&s;
	size_t n;

	tc_store_new(&s, 0);
	expect_absent(s.db, "nope", 4);
	ERR(CELLAR_ENOTFOUND, cellar_get(s.db, "nope", 4, NULL, 0, &n));
	ERR(CELLAR_ENOTFOUND, cellar_get_alloc(s.db, "nope", 4, &p, &n));
	cr_assert_null(p, "get_alloc sets *out to NULL on failure");
	OK(cellar_put(s.db, "nope!", 5, "v", 1));
	OK(cellar_put(s.db, "nop", 3, "v", 1));
	expect_absent(s.db, "nope", 4);
	store_free(&s);
}

Test(db, get_alloc_returns_a_copy_the_caller_frees)
{
	tc_store s;
	void *p = NULL;
	size_t n = 0;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "k", 1, "hello", 5));
	OK(cellar_get_alloc(s.db, "k", 1, &p, &n));
	cr_assert_eq(n, 5);
	cr_assert(memcmp(p, "hello", 5) == 0);
	/* It is the caller's copy: later writes do not change it. */
	OK(cellar_put(s.db, "k", 1, "world", 5));
	cr_assert(memcmp(p, "hello", 5) == 0);
	memset(p, 'z', 5);
	expect_value(s.db, "k", 1, "world", 5);
	cellar_free(p);
	p = NULL;
	OK(cellar_get_alloc(s.db, "k", 1, &p, NULL)); /* val_len may be NULL */
	cr_assert(memcmp(p, "world", 5) == 0);
	cellar_free(p);
	store_free(&s);
}

Test(db, delete_removes_key_and_drops_count)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_put(s.db, "a", 1, "1", 1));
	OK(cellar_put(s.db, "b", 1, "2", 1));
	cr_assert_eq(count_of(s.db), 2);
	OK(cellar_delete(s.db, "a", 1));
	expect_absent(s.db, "a", 1);
	expect_value(s.db, "b", 1, "2", 1);
	cr_assert_eq(count_of(s.db), 1);
	ERR(CELLAR_ENOTFOUND, cellar_delete(s.db, "a", 1));
	ERR(CELLAR_ENOTFOUND, cellar_delete(s.db, "never", 5));
	cr_assert_eq(count_of(s.db), 1);
	/* Re-put after delete. */
	OK(cellar_put(s.db, "a", 1, "3", 1));
	expect_value(s.db, "a", 1, "3", 1);
	cr_assert_eq(count_of(s.db), 2);
	store_free(&s);
}

/* --- large values --------------------------------------------------------- */

static void big_value_round_trip(size_t len, uint64_t max_segment_size,
                                 int sync_mode)
{
	tc_store s;
	unsigned char *v = malloc(len);
	uint64_t seed = len;
	void *p = NULL;
	size_t n = 0;

	cr_assert_not_null(v);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = tc_rand(&seed);
		memcpy(v + i, &r, len - i < 8 ? len - i : 8);
	}
	tc_store_init(&s);
	s.o.max_segment_size = max_segment_size;
	s.o.sync_mode = sync_mode;
	tc_store_open(&s);
	OK(cellar_put(s.db, "before", 6, "b", 1));
	OK(cellar_put(s.db, "big", 3, v, len));
	OK(cellar_put(s.db, "after", 5, "a", 1));
	if (max_segment_size && len > max_segment_size)
		cr_assert_geq(debug_of(s.db).segments, 2,
		              "a record larger than a segment gets one of its own");
	for (int pass = 0; pass < 2; pass++) {
		OK(cellar_get_alloc(s.db, "big", 3, &p, &n));
		cr_assert_eq(n, len);
		cr_assert(memcmp(p, v, len) == 0, "big value differs");
		/* cellar_get into an exact-size buffer, too. */
		memset(p, 0, len);
		OK(cellar_get(s.db, "big", 3, p, len, &n));
		cr_assert_eq(n, len);
		cr_assert(memcmp(p, v, len) == 0, "big value differs");
		cellar_free(p);
		p = NULL;
		ERR(CELLAR_EBUFS, cellar_get(s.db, "big", 3, v, len - 1, &n));
		cr_assert_eq(n, len);
		expect_value(s.db, "before", 6, "b", 1);
		expect_value(s.db, "after", 5, "a", 1);
		tc_store_reopen(&s);
	}
	/* Overwriting it with a small value frees nothing we can see but must
	 * replace it. */
	OK(cellar_put(s.db, "big", 3, "small", 5));
	expect_value(s.db, "big", 3, "small", 5);
	store_free(&s);
	free(v);
}

Test(db, value_of_a_few_mib_round_trips)
{
	big_value_round_trip(4u << 20, 0, CELLAR_SYNC_NONE);
}

/*
 * With CELLAR_SYNC_ALWAYS the sync comes between a record written in place
 * (larger than the append buffer) and its publication; the flush inside
 * must not move the file's end back over it (the fuzzer found that).
 */
Test(db, value_larger_than_the_buffer_survives_sync_always)
{
	big_value_round_trip(4u << 20, 0, CELLAR_SYNC_ALWAYS);
}

Test(db, value_of_64_mib_round_trips)
{
	big_value_round_trip(64u << 20, 0, CELLAR_SYNC_NONE);
}

Test(db, value_larger_than_a_segment_gets_its_own_segment)
{
	big_value_round_trip(200u << 10, 64u << 10, CELLAR_SYNC_NONE);
}

Test(db, value_of_the_maximum_length_round_trips)
{
	/* 1 GiB in, 1 GiB stored, 1 GiB out: only in memory, unsanitized. */
	if (SANITIZED || strcmp(tc_fs_name(), "mem") != 0)
		cr_skip_test("needs ~3 GiB of memory; run on the mem fs unsanitized");
	big_value_round_trip(CELLAR_MAX_VALUE_LEN, 0, CELLAR_SYNC_NONE);
}

/* --- reopen --------------------------------------------------------------- */

Test(db, reopen_keeps_every_value)
{
	tc_store s;
	const uint64_t n = 10000;

	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < n; i++)
		put_numbered(s.db, i, 0);
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	cr_assert_eq(count_of(s.db), n);
	/* Overwrite half, reopen: the newest value wins. */
	for (uint64_t i = 0; i < n; i += 2)
		put_numbered(s.db, i, 1);
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, i % 2 == 0 ? 1 : 0);
	cr_assert_eq(count_of(s.db), n);
	store_free(&s);
}

Test(db, deletes_and_count_survive_reopen)
{
	tc_store s;
	const uint64_t n = 3000;
	uint64_t live = n;

	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < n; i++)
		put_numbered(s.db, i, 0);
	for (uint64_t i = 0; i < n; i += 3, live--) {
		char k[17];
		OK(cellar_delete(s.db, k, key_of(i, k)));
	}
	cr_assert_eq(count_of(s.db), live);
	for (int pass = 0; pass < 2; pass++) {
		tc_store_reopen(&s);
		cr_assert_eq(count_of(s.db), live);
		for (uint64_t i = 0; i < n; i++) {
			if (i % 3 == 0)
				expect_numbered_absent(s.db, i);
			else
				expect_numbered(s.db, i, 0);
		}
	}
	/* A deleted key put again after reopen is back, once. */
	put_numbered(s.db, 0, 5);
	cr_assert_eq(count_of(s.db), live + 1);
	tc_store_reopen(&s);
	expect_numbered(s.db, 0, 5);
	cr_assert_eq(count_of(s.db), live + 1);
	store_free(&s);
}

/*
 * A store closed while its index is still tiny (empty, or one key) is
 * reopened from that index file and must then grow past it: splits and
 * overflow buckets in chunks that were loaded from disk.
 */
static void reopen_small_then_grow(uint64_t keys_before)
{
	tc_store s;
	const uint64_t n = 3000;

	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < keys_before; i++)
		put_numbered(s.db, n + i, 0);
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i++) {
		put_numbered(s.db, i, 0);
		expect_numbered(s.db, i, 0);
	}
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	for (uint64_t i = 0; i < keys_before; i++)
		expect_numbered(s.db, n + i, 0);
	cr_assert_eq(count_of(s.db), n + keys_before);
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	cr_assert_eq(count_of(s.db), n + keys_before);
	store_free(&s);
}

Test(db, reopened_empty_store_grows)
{
	reopen_small_then_grow(0);
}

Test(db, reopened_one_key_store_grows)
{
	reopen_small_then_grow(1);
}

Test(db, reopened_small_store_grows)
{
	reopen_small_then_grow(50);
}

Test(db, many_segments_read_back_after_reopen)
{
	tc_store s;
	const uint64_t n = 5000;
	char v[200];

	tc_store_init(&s);
	s.o.max_segment_size = 64u << 10;
	tc_store_open(&s);
	memset(v, 's', sizeof v);
	for (uint64_t i = 0; i < n; i++) {
		char k[17];
		size_t kn = key_of(i, k);
		v[0] = (char)i;
		OK(cellar_put(s.db, k, kn, v, sizeof v));
	}
	cr_assert_gt(debug_of(s.db).segments, 1, "5000 x 200 bytes fill many 64 KiB segments");
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < n; i++) {
			char k[17];
			size_t kn = key_of(i, k);
			v[0] = (char)i;
			expect_value(s.db, k, kn, v, sizeof v);
		}
		cr_assert_eq(count_of(s.db), n);
		cr_assert_gt(debug_of(s.db).segments, 10);
		tc_store_reopen(&s);
	}
	/* Reopening with the default segment size reads the same store. */
	s.o.max_segment_size = 0;
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i += 97) {
		char k[17];
		size_t kn = key_of(i, k);
		v[0] = (char)i;
		expect_value(s.db, k, kn, v, sizeof v);
	}
	store_free(&s);
}

/* --- the linear hash index ---------------------------------------------- */

static uint64_t hash_constant(const void *key, size_t len, uint64_t seed)
{
	(void)key, (void)len, (void)seed;
	return 0x5bd1e9955bd1e995ull;
}

/* Three distinct hashes, well mixed so that every bit the index uses differs. */
static uint64_t hash_first_byte_mod3(const void *key, size_t len, uint64_t seed)
{
	uint64_t x = len ? ((const unsigned char *)key)[0] % 3 : 0;

	(void)seed;
	return tc_rand(&x);
}

/* Short keys "c<number>" that all collide under hash_constant. */
static size_t chain_key(unsigned i, char k[16])
{
	return (size_t)snprintf(k, 16, "c%u", i);
}

static void chain_put(cellar_db *db, unsigned i, unsigned gen)
{
	char k[16], v[32];
	size_t kn = chain_key(i, k);
	size_t vn = (size_t)snprintf(v, sizeof v, "v%u.%u", i, gen);

	OK(cellar_put(db, k, kn, v, vn));
}

static void chain_expect(cellar_db *db, unsigned i, unsigned gen)
{
	char k[16], v[32];
	size_t kn = chain_key(i, k);
	size_t vn = (size_t)snprintf(v, sizeof v, "v%u.%u", i, gen);

	expect_value(db, k, kn, v, vn);
}

static void chain_expect_absent(cellar_db *db, unsigned i)
{
	char k[16];
	size_t kn = chain_key(i, k);

	expect_absent(db, k, kn);
}

static unsigned chain_occurrences(cellar_db *db, unsigned i, uint64_t *total)
{
	char k[16];
	size_t kn = chain_key(i, k);

	return iter_occurrences(db, k, kn, total);
}

/*
 * All keys in one overflow chain: delete in the middle, then re-put a key
 * that lives further down the chain.  The put must find and replace it, not
 * drop a second copy into the hole the deletes left.
 */
static void chain_replace_scenario(cellar__hash_fn fn, uint64_t max_buckets)
{
	tc_store s;
	const unsigned n = 300;
	uint64_t total;
	cellar__debug_info d;

	cellar__test_set_hash(fn);
	cellar__test_set_max_buckets(max_buckets);
	tc_store_new(&s, 0);
	for (unsigned i = 0; i < n; i++)
		chain_put(s.db, i, 0);
	for (unsigned i = 0; i < n; i++)
		chain_expect(s.db, i, 0);
	d = debug_of(s.db);
	cr_assert_eq(d.keys, n);
	cr_assert_gt(d.overflow_buckets, 0, "300 colliding keys need overflow buckets");
	cr_assert_gt(d.longest_chain, 4, "longest chain %llu",
	             (unsigned long long)d.longest_chain);

	/* Holes in the middle of the chain. */
	for (unsigned i = 100; i < 120; i++) {
		char k[16];
		size_t kn = chain_key(i, k);
		OK(cellar_delete(s.db, k, kn));
	}
	cr_assert_eq(count_of(s.db), n - 20);
	/* Keys further down the chain are replaced, never duplicated. */
	for (unsigned i = 200; i < 230; i++)
		chain_put(s.db, i, 1);
	chain_put(s.db, n - 1, 1);
	cr_assert_eq(count_of(s.db), n - 20);
	for (unsigned i = 200; i < 230; i++)
		chain_expect(s.db, i, 1);
	cr_assert_eq(chain_occurrences(s.db, 210, &total), 1);
	cr_assert_eq(chain_occurrences(s.db, n - 1, &total), 1);
	cr_assert_eq(total, n - 20, "iteration returns every live key once");
	/* Deleting a replaced key leaves no stale copy behind. */
	{
		char k[16];
		size_t kn = chain_key(220, k);
		OK(cellar_delete(s.db, k, kn));
		chain_expect_absent(s.db, 220);
		ERR(CELLAR_ENOTFOUND, cellar_delete(s.db, k, kn));
	}
	cr_assert_eq(count_of(s.db), n - 21);
	/* Delete then re-put fills the hole. */
	for (unsigned i = 100; i < 110; i++)
		chain_put(s.db, i, 2);
	cr_assert_eq(count_of(s.db), n - 11);
	/* A new key, too. */
	chain_put(s.db, n + 5, 0);
	cr_assert_eq(count_of(s.db), n - 10);

	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			if (i >= 110 && i < 120)
				chain_expect_absent(s.db, i);
			else if (i == 220)
				chain_expect_absent(s.db, i);
			else if (i >= 100 && i < 110)
				chain_expect(s.db, i, 2);
			else if ((i >= 200 && i < 230) || i == n - 1)
				chain_expect(s.db, i, 1);
			else
				chain_expect(s.db, i, 0);
		}
		chain_expect(s.db, n + 5, 0);
		cr_assert_eq(count_of(s.db), n - 10);
		cr_assert_eq(chain_occurrences(s.db, 105, &total), 1);
		cr_assert_eq(chain_occurrences(s.db, 225, &total), 1);
		cr_assert_eq(total, n - 10);
		/* Reopen with the same hooks: the index on disk has chains too. */
		tc_store_reopen(&s);
	}
	store_free(&s);
}

/*
 * Key and value lengths around the read path's special cases (keys of up
 * to 7, 8-16 and more bytes, one- and two-byte length fields, values
 * copied in 8- and 16-byte blocks), all under one hash so that every get
 * must tell its key from keys of other lengths and keys differing in one
 * byte at the start, middle or end.
 */
static size_t shape_key(unsigned klen, unsigned variant, uint8_t *k)
{
	for (unsigned i = 0; i < klen; i++)
		k[i] = (uint8_t)('a' + i % 26);
	if (variant == 1)
		k[0] ^= 0x20;
	else if (variant == 2)
		k[klen / 2] ^= 0x20;
	else if (variant == 3)
		k[klen - 1] ^= 0x20;
	return klen;
}

static size_t shape_value(unsigned klen, unsigned variant, uint8_t *v)
{
	static const unsigned lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 31, 32,
	                                 33, 100, 127, 128, 129, 255, 256,
	                                 257, 300 };
	size_t n = lens[(klen * 4 + variant) % (sizeof lens / sizeof *lens)];

	for (size_t i = 0; i < n; i++)
		v[i] = (uint8_t)(klen * 31 + variant * 7 + i);
	return n;
}

Test(db, key_and_value_lengths_across_the_fast_path_round_trip)
{
	static const unsigned klens[] = { 1, 2, 7, 8, 9, 15, 16, 17, 24, 127,
	                                  128, 129, 300 };
	const size_t nk = sizeof klens / sizeof *klens;
	uint8_t k[300], v[300], got[512];
	size_t n;
	tc_store s;

	cellar__test_set_hash(hash_constant);
	tc_store_new(&s, 0);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nk; i++)
			for (unsigned var = 0; var < 4; var++) {
				unsigned kl = klens[i];
				if ((var == 2 && kl / 2 == 0) ||
				    (var == 3 && (kl - 1 == kl / 2 || kl == 1)))
					continue; /* the same key as another variant */
				size_t kn = shape_key(klens[i], var, k);
				size_t vn = shape_value(klens[i], var, v);
				if (pass == 0) {
					OK(cellar_put(s.db, k, kn, v, vn));
					continue;
				}
				memset(got, 0xee, sizeof got);
				OK(cellar_get(s.db, k, kn, got, sizeof got, &n));
				cr_assert_eq(n, vn, "key %zu/%u", kn, var);
				cr_assert(memcmp(got, v, vn) == 0, "key %zu/%u", kn, var);
				cr_assert_eq(got[vn], 0xee, "wrote past the value");
			}
		if (pass == 1)
			break;
		/* A key of each length that was never stored is absent. */
		for (size_t i = 0; i < nk; i++) {
			shape_key(klens[i], 0, k);
			k[klens[i] - 1] ^= 0x01;
			ERR(CELLAR_ENOTFOUND,
			    cellar_get(s.db, k, klens[i], got, sizeof got, &n));
		}
		tc_store_reopen(&s);
	}
	store_free(&s);
}

Test(db, constant_hash_chain_replaces_never_duplicates)
{
	chain_replace_scenario(hash_constant, 0);
}

Test(db, one_bucket_chain_replaces_never_duplicates)
{
	chain_replace_scenario(NULL, 1);
}

Test(db, three_hashes_four_buckets_replace_never_duplicates)
{
	chain_replace_scenario(hash_first_byte_mod3, 4);
}

Test(db, capped_buckets_form_overflow_chains)
{
	tc_store s;
	const uint64_t n = 2000;
	cellar__debug_info d;

	cellar__test_set_max_buckets(4);
	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < n; i++)
		put_numbered(s.db, i, 0);
	d = debug_of(s.db);
	cr_assert_leq(d.buckets, 4, "the cap holds: %llu buckets",
	              (unsigned long long)d.buckets);
	cr_assert_gt(d.overflow_buckets, 0);
	cr_assert_gt(d.longest_chain, 10);
	cr_assert_eq(d.keys, n);
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	for (uint64_t i = 0; i < n; i += 2) {
		char k[17];
		OK(cellar_delete(s.db, k, key_of(i, k)));
	}
	for (uint64_t i = 1; i < n; i += 4)
		put_numbered(s.db, i, 1);
	cr_assert_eq(count_of(s.db), n / 2);
	tc_store_reopen(&s);
	for (uint64_t i = 0; i < n; i++) {
		if (i % 2 == 0)
			expect_numbered_absent(s.db, i);
		else
			expect_numbered(s.db, i, i % 4 == 1 ? 1 : 0);
	}
	cr_assert_eq(count_of(s.db), n / 2);

	/* Lift the cap: the index grows again and everything stays readable. */
	cellar__test_set_max_buckets(0);
	tc_store_reopen(&s);
	for (uint64_t i = n; i < 4 * n; i++)
		put_numbered(s.db, i, 0);
	d = debug_of(s.db);
	cr_assert_gt(d.buckets, 4, "splits resume once the cap is gone");
	for (uint64_t i = 1; i < n; i += 2)
		expect_numbered(s.db, i, i % 4 == 1 ? 1 : 0);
	for (uint64_t i = n; i < 4 * n; i++)
		expect_numbered(s.db, i, 0);
	store_free(&s);
}

Test(db, splits_grow_the_index)
{
	tc_store s;
	const uint64_t n = 100000;
	cellar__debug_info d0, d;

	tc_store_new(&s, 0);
	d0 = debug_of(s.db);
	cr_assert_eq(d0.keys, 0);
	for (uint64_t i = 0; i < n; i++)
		put_numbered(s.db, i, 0);
	d = debug_of(s.db);
	cr_assert_eq(d.keys, n);
	cr_assert_gt(d.buckets, d0.buckets, "buckets grew from %llu",
	             (unsigned long long)d0.buckets);
	/* A 64-byte bucket cannot hold 64 keys: the table kept up with them. */
	cr_assert_geq(d.buckets, n / 64, "%llu buckets for %llu keys",
	              (unsigned long long)d.buckets, (unsigned long long)n);
	cr_assert_leq(d.longest_chain, 16, "chains stay short with a real hash: %llu",
	              (unsigned long long)d.longest_chain);
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	tc_store_reopen(&s);
	cr_assert_eq(debug_of(s.db).buckets, d.buckets, "the index reloads as it was");
	for (uint64_t i = 0; i < n; i++)
		expect_numbered(s.db, i, 0);
	store_free(&s);
}

/* --- scale ---------------------------------------------------------------- */

Test(db, million_keys_put_get_delete_reopen)
{
	tc_store s;
	const uint64_t n = SANITIZED ? 200000 : 1000000;
	uint64_t deleted = 0;

	tc_store_new(&s, 0);
	for (uint64_t i = 0; i < n; i++) {
		char k[17];
		uint64_t v = i ^ 0xa5a5a5a5a5a5a5a5ull;
		OK(cellar_put(s.db, k, key_of(i, k), &v, sizeof v));
	}
	cr_assert_eq(count_of(s.db), n);
	for (uint64_t i = 0; i < n; i++) {
		char k[17];
		uint64_t v = 0;
		size_t vn = 0;
		int rc = cellar_get(s.db, k, key_of(i, k), &v, sizeof v, &vn);
		cr_assert_eq(rc, CELLAR_OK, "key %llu: %s", (unsigned long long)i,
		             cellar_strerror(rc));
		cr_assert_eq(vn, sizeof v);
		cr_assert_eq(v, i ^ 0xa5a5a5a5a5a5a5a5ull, "key %llu", (unsigned long long)i);
	}
	for (uint64_t i = 0; i < n; i += 3, deleted++) {
		char k[17];
		OK(cellar_delete(s.db, k, key_of(i, k)));
	}
	cr_assert_eq(count_of(s.db), n - deleted);
	tc_store_reopen(&s);
	cr_assert_eq(count_of(s.db), n - deleted);
	for (uint64_t i = 0; i < n; i++) {
		char k[17];
		uint64_t v = 0;
		size_t vn = 0;
		int rc = cellar_get(s.db, k, key_of(i, k), &v, sizeof v, &vn);
		if (i % 3 == 0) {
			cr_assert_eq(rc, CELLAR_ENOTFOUND, "key %llu: want ENOTFOUND, got %s",
			             (unsigned long long)i, cellar_strerror(rc));
		} else {
			cr_assert_eq(rc, CELLAR_OK, "key %llu: %s", (unsigned long long)i,
			             cellar_strerror(rc));
			cr_assert_eq(v, i ^ 0xa5a5a5a5a5a5a5a5ull);
		}
	}
	store_free(&s);
}

/* --- sync and durability modes --------------------------------------------- */

Test(db, sync_returns_ok)
{
	tc_store s;

	tc_store_new(&s, 0);
	OK(cellar_sync(s.db)); /* nothing written yet */
	for (uint64_t i = 0; i < 500; i++)
		put_numbered(s.db, i, 0);
	OK(cellar_sync(s.db));
	OK(cellar_sync(s.db)); /* nothing new */
	ERR(CELLAR_ENOTFOUND, cellar_delete(s.db, "x", 1));
	for (uint64_t i = 0; i < 500; i += 5) {
		char k[17];
		OK(cellar_delete(s.db, k, key_of(i, k)));
	}
	OK(cellar_sync(s.db));
	for (uint64_t i = 0; i < 500; i++) {
		if (i % 5 == 0)
			expect_numbered_absent(s.db, i);
		else
			expect_numbered(s.db, i, 0);
	}
	tc_store_reopen(&s);
	cr_assert_eq(count_of(s.db), 400);
	store_free(&s);
}

static void sync_mode_round_trip(int mode, unsigned interval_ms, uint64_t n)
{
	tc_store s;

	tc_store_init(&s);
	s.o.sync_mode = mode;
	s.o.sync_interval_ms = interval_ms;
	s.o.max_segment_size = 64u << 10;
	tc_store_open(&s);
	for (uint64_t i = 0; i < n; i++)
		put_numbered(s.db, i, 0);
	for (uint64_t i = 0; i < n; i += 4) {
		char k[17];
		OK(cellar_delete(s.db, k, key_of(i, k)));
	}
	for (uint64_t i = 1; i < n; i += 4)
		put_numbered(s.db, i, 1);
	OK(cellar_sync(s.db));
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = 0; i < n; i++) {
			if (i % 4 == 0)
				expect_numbered_absent(s.db, i);
			else
				expect_numbered(s.db, i, i % 4 == 1 ? 1 : 0);
		}
		cr_assert_eq(count_of(s.db), n - (n + 3) / 4);
		tc_store_reopen(&s);
	}
	store_free(&s);
}

Test(db, sync_mode_periodic_keeps_values)
{
	sync_mode_round_trip(CELLAR_SYNC_PERIODIC, 10, 20000);
}

Test(db, sync_mode_always_keeps_values)
{
	sync_mode_round_trip(CELLAR_SYNC_ALWAYS, 0, 600);
}

/* ---- cellar_warm ------------------------------------------------------- */

/* cellar_warm reads the store through, on either kind of handle, and
 * changes nothing: every value is still there and writes go on. */
Test(db, warm_reads_the_store_and_changes_nothing)
{
	tc_store s;
	cellar_options ro;
	cellar_db *r = NULL;
	enum { N = 3000 };

	tc_store_new(&s, 64 << 10);
	for (uint64_t i = 0; i < N; i++)
		put_numbered(s.db, i, 0);
	OK(cellar_sync(s.db));
	for (uint64_t i = 0; i < N / 2; i++)
		put_numbered(s.db, i, 1); /* some still in the append buffer */
	OK(cellar_warm(s.db));
	for (uint64_t i = 0; i < N; i++)
		expect_numbered(s.db, i, i < N / 2);
	cr_assert_eq(count_of(s.db), N);
	put_numbered(s.db, N, 0); /* the writer lock was let go */
	OK(cellar_sync(s.db));

	ro = s.o;
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&r, s.dir, &ro));
	OK(cellar_warm(r));
	OK(cellar_warm(r));
	for (uint64_t i = 0; i <= N; i++)
		expect_numbered(r, i, i < N / 2);
	OK(cellar_close(r));
	ERR(CELLAR_EINVAL, cellar_warm(NULL));
	tc_store_free(&s);
}

/*
 * A file system error while warming is returned, and the handle goes on
 * working: a failed map on the file systems that map, a failed read on
 * posix.
 */
Test(db, warm_returns_a_file_system_error)
{
	cellar_fs *base = tc_fs_new(), *ff;
	cellar_options o = CELLAR_OPTIONS_INIT;
	char *dir = tc_dir_new();
	fault_op kind = base->map ? FAULT_MAP : FAULT_READ;
	cellar_db *db;

	OK(fault_fs_new(&ff, base));
	o.flags = CELLAR_CREATE;
	o.fs = ff;
	OK(cellar_open(&db, dir, &o));
	for (uint64_t i = 0; i < 500; i++)
		put_numbered(db, i, 0);
	OK(cellar_sync(db));
	uint64_t before = fault_fs_count(ff, kind);
	fault_fs_fail(ff, kind, before + 1, CELLAR_EIO, 0);
	ERR(CELLAR_EIO, cellar_warm(db));
	cr_assert_eq(fault_fs_count(ff, kind), before + 1);
	for (uint64_t i = 0; i < 500; i++)
		expect_numbered(db, i, 0);
	put_numbered(db, 500, 0);
	OK(cellar_warm(db)); /* the fault fired once */
	cr_assert_gt(fault_fs_count(ff, kind), before + 1);
	OK(cellar_close(db));
	cellar_fs_free(ff);
	cellar_fs_free(base);
	tc_dir_free(dir);
}

/*
 * On a read-write handle, cellar_warm reads a version of the store and
 * holds no writer while it reads: the file system below stops the warming
 * thread at its first read, and a put, a sync and a get on another thread
 * must finish meanwhile (a time-out, not a hang, if they wait for it).
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t warmer;
	int armed, stopped, released, put_done;
	cellar_fs *base;
} wb;

static void warm_block_here(void)
{
	pthread_mutex_lock(&wb.mu);
	if (wb.armed && pthread_equal(pthread_self(), wb.warmer)) {
		wb.armed = 0;
		wb.stopped = 1;
		pthread_cond_broadcast(&wb.cv);
		while (!wb.released)
			pthread_cond_wait(&wb.cv, &wb.mu);
	}
	pthread_mutex_unlock(&wb.mu);
}

static int wb_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                  const void **out)
{
	warm_block_here();
	return wb.base->map(fs, f, len, hint, out);
}

static int wb_read_at(cellar_fs *fs, cellar_file *f, uint64_t off, void *buf,
                      size_t len, size_t *got)
{
	warm_block_here();
	return wb.base->read_at(fs, f, off, buf, len, got);
}

static void *warm_thread(void *arg)
{
	return (void *)(intptr_t)cellar_warm(arg);
}

static void *put_thread(void *arg)
{
	cellar_db *db = arg;
	char v[32];
	size_t len;

	put_numbered(db, 9999, 1);
	OK(cellar_sync(db));
	cr_assert_eq(cellar_get(db, "absent-key", 10, v, sizeof v, &len),
	             CELLAR_ENOTFOUND);
	pthread_mutex_lock(&wb.mu);
	wb.put_done = 1;
	pthread_cond_broadcast(&wb.cv);
	pthread_mutex_unlock(&wb.mu);
	return NULL;
}

Test(db, warm_on_a_read_write_handle_holds_no_writer)
{
	cellar_fs *base = tc_fs_new(), wrap;
	cellar_options o = CELLAR_OPTIONS_INIT;
	char *dir = tc_dir_new();
	pthread_t pt;
	cellar_db *db;
	void *ret;

	memset(&wb, 0, sizeof wb);
	pthread_mutex_init(&wb.mu, NULL);
	pthread_cond_init(&wb.cv, NULL);
	wrap = *base;
	wb.base = base;
	if (base->map)
		wrap.map = wb_map;
	wrap.read_at = wb_read_at;
	o.flags = CELLAR_CREATE;
	o.fs = &wrap;
	OK(cellar_open(&db, dir, &o));
	for (uint64_t i = 0; i < 2000; i++)
		put_numbered(db, i, 0);
	OK(cellar_sync(db));
	for (uint64_t i = 0; i < 100; i++)
		put_numbered(db, i, 1); /* in the append buffer: flushed first */

	pthread_mutex_lock(&wb.mu);
	wb.armed = 1;
	cr_assert_eq(pthread_create(&wb.warmer, NULL, warm_thread, db), 0);
	while (!wb.stopped)
		pthread_cond_wait(&wb.cv, &wb.mu);
	pthread_mutex_unlock(&wb.mu);

	/* The warm is stopped inside its reading: writers must go on. */
	cr_assert_eq(pthread_create(&pt, NULL, put_thread, db), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	pthread_mutex_lock(&wb.mu);
	while (!wb.put_done &&
	       pthread_cond_timedwait(&wb.cv, &wb.mu, &until) == 0)
		;
	int done = wb.put_done;
	wb.released = 1;
	pthread_cond_broadcast(&wb.cv);
	pthread_mutex_unlock(&wb.mu);
	cr_assert_eq(pthread_join(pt, NULL), 0);
	cr_assert_eq(pthread_join(wb.warmer, &ret), 0);
	cr_assert(done, "a put waited for cellar_warm on a read-write handle");
	cr_assert_eq((intptr_t)ret, CELLAR_OK);
	for (uint64_t i = 0; i < 2000; i++)
		expect_numbered(db, i, i < 100);
	expect_numbered(db, 9999, 1);
	cellar_db_stats st;
	OK(cellar_stats_sized(db, &st, sizeof st));
	cr_assert_eq(st.snapshots, 0, "the warm's version was let go");
	OK(cellar_close(db));
	cellar_fs_free(base);
	tc_dir_free(dir);
}

/* ---- expected_keys ------------------------------------------------------ */

/* expected_keys sizes the index at open to what a load of that many keys
 * grows it to, so the load itself never splits. */
Test(db, expected_keys_sizes_the_index_at_open)
{
	enum { N = 20000 };
	tc_store grown, sized;

	tc_store_new(&grown, 0);
	for (uint64_t i = 0; i < N; i++)
		put_numbered(grown.db, i, 0);

	tc_store_init(&sized);
	sized.o.expected_keys = N;
	tc_store_open(&sized);
	uint64_t at_open = debug_of(sized.db).buckets;
	cr_assert_eq(at_open, debug_of(grown.db).buckets, "%llu buckets at open",
	             (unsigned long long)at_open);
	for (uint64_t i = 0; i < N; i++)
		put_numbered(sized.db, i, 0);
	cr_assert_eq(debug_of(sized.db).buckets, at_open, "the load split buckets");
	for (uint64_t i = 0; i < N; i++)
		expect_numbered(sized.db, i, 0);

	/* A later open asking for fewer keys keeps the table; one asking for
	 * more grows it; a read-only open ignores it. */
	sized.o.expected_keys = N / 2;
	tc_store_reopen(&sized);
	cr_assert_eq(debug_of(sized.db).buckets, at_open);
	sized.o.expected_keys = 4 * N;
	tc_store_reopen(&sized);
	cr_assert_geq(debug_of(sized.db).buckets, 3 * at_open);
	for (uint64_t i = 0; i < N; i++)
		expect_numbered(sized.db, i, 0);
	OK(cellar_close(sized.db));
	sized.db = NULL;
	cellar_options ro = sized.o;
	ro.flags = CELLAR_READONLY;
	ro.expected_keys = 100 * N;
	cellar_db *r;
	OK(cellar_open(&r, sized.dir, &ro));
	uint64_t ro_buckets = debug_of(r).buckets;
	cr_assert_lt(ro_buckets, 10 * at_open, "read-only open grew the index");
	expect_numbered(r, 7, 0);
	OK(cellar_close(r));
	tc_store_free(&sized);
	tc_store_free(&grown);
}

/* Options of version 1 end before expected_keys: it is not read. */
Test(db, version_1_options_do_not_read_expected_keys)
{
	tc_store s;

	tc_store_init(&s);
	s.o.version = 1;
	s.o.expected_keys = 1000000; /* stands for bytes past a v1 struct */
	tc_store_open(&s);
	cr_assert_lt(debug_of(s.db).buckets, 1000, "%llu buckets",
	             (unsigned long long)debug_of(s.db).buckets);
	put_numbered(s.db, 1, 0);
	expect_numbered(s.db, 1, 0);
	tc_store_free(&s);
}

/* ---- a read-only open between two flushes ------------------------------ */

/*
 * A full append buffer is written up to a 2 MiB boundary (when the next
 * one fills, if no sync or compaction wrote it before: double buffering),
 * so between two flushes the newest segment's file usually ends inside a
 * record.  A read-only open then sees exactly the records wholly in the
 * file.
 */
Test(db, read_only_open_sees_whole_records_of_a_cut_buffer)
{
	enum { N = 120000 };
	tc_store s;
	cellar_options ro;
	cellar_db *r;
	uint64_t seen = 0, prev = 0, cuts = 0;

	tc_store_new(&s, 0);
	ro = s.o;
	ro.flags = CELLAR_READONLY;
	for (uint64_t i = 0; i < N; i++) {
		put_numbered(s.db, i, 0);
		if (i % 10000 != 9999)
			continue;
		char path[4200];
		cellar_file *f;
		uint64_t size;
		snprintf(path, sizeof path, "%s/0000000000000001.seg", s.dir);
		OK(s.fs->open(s.fs, path, CELLAR_FS_READ, &f));
		OK(s.fs->size(s.fs, f, &size));
		OK(s.fs->close(s.fs, f));
		cuts += size > 0 && size % FILE_WRITE_UNIT == 0;
		OK(cellar_open(&r, s.dir, &ro));
		seen = count_of(r);
		cr_assert_leq(seen, i + 1);
		cr_assert_geq(seen, prev, "a later open saw fewer records");
		/* Records go to the file in write order: the first seen ones. */
		for (uint64_t j = 0; j < seen; j++)
			expect_numbered(r, j, 0);
		if (seen < i + 1)
			expect_numbered_absent(r, seen);
		OK(cellar_close(r));
		prev = seen;
	}
	cr_assert_gt(cuts, 0, "no open found the file ending at a cut");
	cr_assert_gt(seen, 0, "a full buffer reached the file");
	cr_assert_lt(seen, N, "the last records were still buffered");
	tc_store_close(&s);
	OK(cellar_open(&r, s.dir, &ro));
	cr_assert_eq(count_of(r), N);
	OK(cellar_close(r));
	tc_store_free(&s);
}

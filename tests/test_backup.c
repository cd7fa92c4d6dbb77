/*
 * test_backup.c - cellar_backup(): the copy opens, passes cellar_verify()
 * and holds exactly the store's state at one moment, also while a writer
 * and compaction run; sealed segments are linked where the fs links and
 * copied where it does not; the error paths; and a crash at every mutation
 * of a backup (on the fault fs, then a power cut) leaves the source intact
 * and either no destination or a complete one.  Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"

#define SEG_64K (64u << 10)

static void key_of(char *k, size_t cap, unsigned i)
{
	snprintf(k, cap, "key-%06u", i);
}

static void put_kv(cellar_db *db, unsigned i, unsigned ver)
{
	char k[32], v[80];

	key_of(k, sizeof k, i);
	snprintf(v, sizeof v, "value-%u-of-%06u-padding-padding-padding", ver, i);
	OK(cellar_put(db, k, strlen(k), v, strlen(v)));
}

/* The version of key i in db, or -1 if absent. */
static int version_in(cellar_db *db, unsigned i)
{
	char k[32], v[80];
	size_t n = 0;
	int ver = -1, rc;

	key_of(k, sizeof k, i);
	rc = cellar_get(db, k, strlen(k), v, sizeof v - 1, &n);
	if (rc == CELLAR_ENOTFOUND)
		return -1;
	OK(rc);
	v[n] = '\0';
	cr_assert_eq(sscanf(v, "value-%d-", &ver), 1);
	return ver;
}

static char *dest_of(const tc_store *s)
{
	char *d = malloc(4200);

	cr_assert(d);
	snprintf(d, 4200, "%s-copy", s->dir);
	return d;
}

/* Open the copy at dest on fs, check it verifies clean; the handle. */
static cellar_db *open_copy(cellar_fs *fs, const char *dest)
{
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_verify_report rep;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;

	vo.fs = fs;
	OK(cellar_verify(dest, &vo, &rep));
	cr_assert_eq(rep.problems, 0, "the copy has %llu problems",
	             (unsigned long long)rep.problems);
	cr_assert(rep.index_checked);
	o.fs = fs;
	OK(cellar_open(&db, dest, &o));
	return db;
}

Test(backup, copy_opens_verifies_and_holds_every_key)
{
	enum { N = 3000 };
	tc_store s;
	cellar_backup_result r;
	char *dest;
	cellar_db *copy;
	uint64_t n;

	tc_store_new(&s, SEG_64K);
	for (unsigned i = 0; i < N; i++)
		put_kv(s.db, i, 1);
	for (unsigned i = 0; i < N; i += 5) {
		char k[32];
		key_of(k, sizeof k, i);
		OK(cellar_delete(s.db, k, strlen(k)));
	}
	dest = dest_of(&s);
	memset(&r, 0xff, sizeof r);
	OK(cellar_backup(s.db, dest, &r));
	/* Every fs under test links (mem in memory, posix with link(2)). */
	cr_assert_gt(r.linked_files, 0);
	cr_assert_gt(r.linked_bytes, 0);
	cr_assert_eq(r.copied_files, 2, "the newest segment and meta");
	cr_assert_gt(r.copied_bytes, 0);
	cr_assert_gt(r.index_bytes, 0);
	cr_assert_eq(r.keys, N - N / 5);
	put_kv(s.db, 0, 9); /* after the backup: not in it */
	copy = open_copy(s.fs, dest);
	OK(cellar_count(copy, &n));
	cr_assert_eq(n, N - N / 5);
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(version_in(copy, i), i % 5 ? 1 : -1, "key %u", i);
	/* The copy is a store of its own: writable, reopens. */
	put_kv(copy, 1, 7);
	OK(cellar_close(copy));
	copy = open_copy(s.fs, dest);
	cr_assert_eq(version_in(copy, 1), 7);
	cr_assert_eq(version_in(s.db, 1), 1);
	OK(cellar_close(copy));
	ERR(CELLAR_EEXIST, cellar_backup(s.db, dest, &r));
	free(dest);
	tc_store_free(&s);
}

/* A file system like base but without link: backups copy. */
static cellar_fs nolink_of(const cellar_fs *base)
{
	cellar_fs f = *base;

	f.link = NULL;
	f.destroy = NULL;
	return f;
}

Test(backup, copies_where_the_fs_cannot_link)
{
	tc_store s;
	cellar_backup_result r;
	cellar_fs nolink;
	cellar_db *copy;
	char *dest;

	tc_store_init(&s);
	nolink = nolink_of(s.fs);
	s.o.fs = &nolink;
	s.o.max_segment_size = SEG_64K;
	tc_store_open(&s);
	for (unsigned i = 0; i < 2000; i++)
		put_kv(s.db, i, 1);
	dest = dest_of(&s);
	OK(cellar_backup(s.db, dest, &r));
	size_t nsegs = 0;
	OK(cellar_segments(s.db, NULL, 0, &nsegs));
	cr_assert_gt(nsegs, 1);
	cr_assert_eq(r.linked_files, 0);
	cr_assert_eq(r.linked_bytes, 0);
	cr_assert_eq(r.copied_files, nsegs + 1, "every segment and meta");
	copy = open_copy(s.fs, dest);
	for (unsigned i = 0; i < 2000; i += 13)
		cr_assert_eq(version_in(copy, i), 1);
	OK(cellar_close(copy));
	free(dest);
	tc_store_close(&s);
	s.o.fs = s.fs;
	tc_store_free(&s);
}

Test(backup, error_paths)
{
	tc_store s;
	cellar_backup_result r;
	char *dest, bad[4300];

	tc_store_new(&s, 0);
	put_kv(s.db, 1, 1);
	dest = dest_of(&s);
	memset(&r, 0xff, sizeof r);
	ERR(CELLAR_EINVAL, cellar_backup(NULL, dest, &r));
	cr_assert_eq(r.keys, 0, "the result is zeroed on failure");
	ERR(CELLAR_EINVAL, cellar_backup(s.db, NULL, &r));
	ERR(CELLAR_EINVAL, cellar_backup(s.db, "", &r));
	memset(bad, 'x', sizeof bad - 1);
	bad[sizeof bad - 1] = '\0';
	ERR(CELLAR_EINVAL, cellar_backup(s.db, bad, &r));
	/* The store itself is a directory that exists. */
	ERR(CELLAR_EEXIST, cellar_backup(s.db, s.dir, &r));
	snprintf(bad, sizeof bad, "%s-none/copy", s.dir);
	ERR(CELLAR_ENOENT, cellar_backup(s.db, bad, &r));
	OK(cellar_backup(s.db, dest, NULL));
	tc_store_close(&s);
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	snprintf(bad, sizeof bad, "%s-2", dest);
	ERR(CELLAR_EREADONLY, cellar_backup(s.db, bad, &r));
	free(dest);
	tc_store_free(&s);
}

/* ---- a backup while a writer runs ---------------------------------------- */

typedef struct writer_arg {
	cellar_db *db;
	atomic_int stop;
	atomic_uint next; /* keys [0, next) were written */
} writer_arg;

static void *writer_main(void *p)
{
	writer_arg *a = p;

	for (unsigned i = 0; !atomic_load(&a->stop) && i < 200000; i++) {
		put_kv(a->db, i, 1);
		if (i % 3 == 0) /* and rewrite an older one: compaction has work */
			put_kv(a->db, i / 3, 2);
		atomic_store(&a->next, i + 1);
	}
	return NULL;
}

Test(backup, holds_one_moment_while_a_writer_runs)
{
	tc_store s;
	cellar_backup_result r;
	writer_arg a;
	pthread_t t;
	char *dest;
	cellar_db *copy;
	uint64_t n;
	unsigned before, after, i;

	tc_store_init(&s);
	s.o.max_segment_size = SEG_64K;
	s.o.auto_compact_pct = 30;
	tc_store_open(&s);
	a.db = s.db;
	atomic_init(&a.stop, 0);
	atomic_init(&a.next, 0);
	pthread_create(&t, NULL, writer_main, &a);
	while (atomic_load(&a.next) < 3000)
		;
	dest = dest_of(&s);
	before = atomic_load(&a.next);
	OK(cellar_backup(s.db, dest, &r));
	after = atomic_load(&a.next);
	atomic_store(&a.stop, 1);
	pthread_join(t, NULL);
	/* The copy holds keys [0, m) for one m between before and after, each
	 * key with the version the writer had given it when it wrote key m-1. */
	copy = open_copy(s.fs, dest);
	OK(cellar_count(copy, &n));
	cr_assert(n >= before && n <= after + 1, "%llu keys, not in [%u, %u]",
	          (unsigned long long)n, before, after);
	for (i = 0; i < n; i++) {
		unsigned last = (unsigned)n - 1;
		int want = i * 3 <= last ? 2 : 1, got = version_in(copy, i);
		if (i * 3 == last && got == 1)
			want = 1; /* the moment fell between the step's two puts */
		cr_assert_eq(got, want, "key %u of %llu", i, (unsigned long long)n);
	}
	cr_assert_eq(version_in(copy, i), -1);
	cr_assert_eq(r.keys, n);
	OK(cellar_close(copy));
	free(dest);
	tc_store_free(&s);
}

/* ---- crashes ------------------------------------------------------------- */

/* Does dir exist on fs? */
static int exists(cellar_fs *fs, const char *dir)
{
	char path[4300];
	cellar_file *f = NULL;

	snprintf(path, sizeof path, "%s/meta", dir);
	if (fs->open(fs, path, CELLAR_FS_READ, &f) != CELLAR_OK)
		return 0;
	fs->close(fs, f);
	return 1;
}

/* One crash at mutation n of a backup; 1 if the backup got that far. */
static int crash_once(uint64_t n, unsigned keys)
{
	cellar_fs *base = tc_fs_new_named("mem"), *ff;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	int rc, reached;

	o.fs = base;
	o.flags = CELLAR_CREATE;
	o.max_segment_size = SEG_64K;
	OK(cellar_open(&db, "/src", &o));
	for (unsigned i = 0; i < keys; i++)
		put_kv(db, i, 1);
	OK(cellar_close(db));
	OK(fault_fs_new(&ff, base));
	o.fs = ff;
	o.flags = 0;
	OK(cellar_open(&db, "/src", &o));
	fault_fs_crash_at(ff, fault_fs_mutations(ff) + n);
	rc = cellar_backup(db, "/copy", NULL);
	reached = fault_fs_crashed(ff);
	cr_assert(reached ? rc < 0 : rc == CELLAR_OK, "n %llu: %s",
	          (unsigned long long)n, cellar_strerror(rc));
	cellar_close(db); /* may fail: the machine is off */
	/* The wrapper models files, not a directory's rename (fault.h): once
	 * the copy was renamed, everything in it was synced already. */
	if (!exists(base, "/copy"))
		OK(fault_fs_power_cut(ff, n));
	cellar_fs_free(ff);
	/* The source is whole; the copy is absent or complete. */
	o.fs = base;
	OK(cellar_open(&db, "/src", &o));
	for (unsigned i = 0; i < keys; i++)
		cr_assert_eq(version_in(db, i), 1);
	OK(cellar_close(db));
	if (exists(base, "/copy")) {
		cellar_db *copy = open_copy(base, "/copy");
		for (unsigned i = 0; i < keys; i++)
			cr_assert_eq(version_in(copy, i), 1, "n %llu key %u",
			             (unsigned long long)n, i);
		OK(cellar_close(copy));
	} else {
		cr_assert(reached, "n %llu: a finished backup left no copy",
		          (unsigned long long)n);
	}
	cellar_fs_free(base);
	return reached;
}

Test(backup, crash_at_every_mutation_leaves_source_and_no_half_copy)
{
	uint64_t n;

	if (strcmp(tc_fs_name(), "mem") != 0)
		cr_skip_test("the fault fs wraps the mem fs: once is enough");
	for (n = 1; crash_once(n, 1500); n++)
		cr_assert_lt(n, 1000);
	cr_assert_gt(n, 10, "a backup makes more than %llu mutations",
	             (unsigned long long)n);
}

/* ---- I/O errors ---------------------------------------------------------- */

static int is_leftover(const char *name, void *ctx)
{
	(void)ctx;
	return strstr(name, "copy.backup-") != NULL;
}

/* Every failing operation of a kind in turn: an error, no copy, nothing
 * left behind; the source still opens and holds its keys. */
static void fail_each(fault_op kind)
{
	cellar_fs *base = tc_fs_new_named("mem"), *ff;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	uint64_t n;
	int rc;

	OK(fault_fs_new(&ff, base));
	o.fs = ff;
	o.flags = CELLAR_CREATE;
	o.max_segment_size = SEG_64K;
	OK(base->mkdir(base, "/p"));
	OK(cellar_open(&db, "/p/src", &o));
	for (unsigned i = 0; i < 1500; i++)
		put_kv(db, i, 1);
	OK(cellar_sync(db));
	for (n = 1;; n++) {
		cr_assert_lt(n, 1000);
		fault_fs_fail(ff, kind, fault_fs_count(ff, kind) + n, CELLAR_EIO, 0);
		rc = cellar_backup(db, "/p/copy", NULL);
		fault_fs_fail(ff, kind, 0, 0, 0);
		if (rc == CELLAR_OK)
			break;
		cr_assert_eq(rc, CELLAR_EIO, "n %llu: %s", (unsigned long long)n,
		             cellar_strerror(rc));
		cr_assert(!exists(base, "/p/copy"));
		cr_assert_eq(base->list(base, "/p", is_leftover, NULL), CELLAR_OK,
		             "n %llu: the temporary directory was left",
		             (unsigned long long)n);
	}
	cr_assert_gt(n, 1, "no operation of the kind failed the backup");
	OK(cellar_close(db));
	cellar_db *copy = open_copy(base, "/p/copy");
	for (unsigned i = 0; i < 1500; i += 7)
		cr_assert_eq(version_in(copy, i), 1);
	OK(cellar_close(copy));
	cellar_fs_free(ff);
	cellar_fs_free(base);
}

Test(backup, each_failed_write_sync_or_open_leaves_no_copy)
{
	if (strcmp(tc_fs_name(), "mem") != 0)
		cr_skip_test("the fault fs wraps the mem fs: once is enough");
	fail_each(FAULT_WRITE);
	fail_each(FAULT_SYNC);
	fail_each(FAULT_OPEN);
	fail_each(FAULT_READ);
	fail_each(FAULT_RENAME);
}

Test(backup, refused_after_a_failed_write)
{
	cellar_fs *base, *ff;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_snapshot *snap = NULL;
	cellar_db *db = NULL;

	if (strcmp(tc_fs_name(), "mem") != 0)
		cr_skip_test("the fault fs wraps the mem fs: once is enough");
	base = tc_fs_new_named("mem");
	OK(fault_fs_new(&ff, base));
	o.fs = ff;
	o.flags = CELLAR_CREATE;
	OK(cellar_open(&db, "/src", &o));
	put_kv(db, 1, 1);
	fault_fs_fail(ff, FAULT_SYNC, fault_fs_count(ff, FAULT_SYNC) + 1,
	              CELLAR_EIO, 1);
	ERR(CELLAR_EIO, cellar_sync(db));
	ERR(CELLAR_EFAILED, cellar_backup(db, "/copy", NULL));
	ERR(CELLAR_EFAILED, cellar_snapshot_new(db, &snap));
	cr_assert_null(snap);
	cellar_close(db);
	cellar_fs_free(ff);
	cellar_fs_free(base);
}

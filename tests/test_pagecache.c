/*
 * test_pagecache.c - the page-cache controls: cellar_residency, the
 * CELLAR_LOCK_INDEX option (and its refusal under RLIMIT_MEMLOCK), the
 * segment_access hint, and file-system tables of version 1 or without the
 * version-2 ops.  A database-level suite: it runs once per file system.
 *
 * The RLIMIT_MEMLOCK test forks a child that lowers the limit; as root the
 * limit does not bind while the process has CAP_IPC_LOCK, so the child
 * first drops that capability (capset, effective and permitted sets; the
 * uid stays 0 so the store's files stay readable).  If capset is not
 * allowed the test is skipped, and so it is under AddressSanitizer, whose
 * mlock does nothing.
 */
#include <criterion/criterion.h>
#include <linux/capability.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "handle.h"

#define KEYS 5000

/* AddressSanitizer's mlock interceptor does nothing (it would have to lock
 * the shadow memory too): what mlock does can't be seen under it. */
#if defined(__SANITIZE_ADDRESS__)
#  define MLOCK_IS_REAL 0
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define MLOCK_IS_REAL 0
#  endif
#endif
#ifndef MLOCK_IS_REAL
#  define MLOCK_IS_REAL 1
#endif

static int is_fs(const char *name)
{
	return strcmp(tc_fs_name(), name) == 0;
}

static void put_keys(cellar_db *db, int n)
{
	char k[32], v[100];

	memset(v, 'v', sizeof v);
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "key-%08d", i);
		OK(cellar_put(db, k, strlen(k), v, sizeof v));
	}
}

/* A closed store of KEYS keys (with its index file), opened with flags. */
static void store_with_keys(tc_store *s, unsigned flags)
{
	tc_store_new(s, 0);
	put_keys(s->db, KEYS);
	tc_store_close(s);
	s->o.flags = flags;
	tc_store_open(s);
}

static void check_get(cellar_db *db)
{
	char buf[128];
	size_t n;

	OK(cellar_get(db, "key-00000042", 12, buf, sizeof buf, &n));
	cr_assert_eq(n, 100);
}

/* ---- cellar_residency ------------------------------------------------ */

Test(pagecache, residency_reports_index_and_segments)
{
	tc_store s;
	cellar_residency_info r;
	cellar_db_stats st;

	store_with_keys(&s, CELLAR_READONLY);
	OK(cellar_stats(s.db, &st));
	OK(cellar_warm(s.db));
	OK(cellar_residency(s.db, &r));
	cr_assert_gt(r.index_bytes, 0);
	cr_assert_eq(r.index_bytes, st.index_bytes);
	cr_assert_eq(r.data_bytes, st.segment_bytes);
	cr_assert_eq(r.index_locked, 0);
	cr_assert_leq(r.index_resident, r.index_bytes);
	cr_assert_leq(r.data_resident, r.data_bytes);
	/* Just warmed: in memory, unless the machine is very short of it. */
	cr_assert_geq(r.index_resident, r.index_bytes / 2, "%llu of %llu",
	              (unsigned long long)r.index_resident,
	              (unsigned long long)r.index_bytes);
	cr_assert_geq(r.data_resident, r.data_bytes / 2, "%llu of %llu",
	              (unsigned long long)r.data_resident,
	              (unsigned long long)r.data_bytes);
	if (is_fs("mem")) {
		cr_assert_eq(r.index_resident, r.index_bytes);
		cr_assert_eq(r.data_resident, r.data_bytes);
	}
	check_get(s.db);
	tc_store_free(&s);
}

Test(pagecache, residency_on_a_writer_counts_the_append_buffer)
{
	tc_store s;
	cellar_residency_info r;
	cellar_db_stats st;

	tc_store_new(&s, 0);
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.index_bytes, 0); /* a new store: no index file yet */
	put_keys(s.db, 100);            /* still in the append buffer */
	OK(cellar_stats(s.db, &st));
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.data_bytes, st.segment_bytes);
	cr_assert_geq(r.data_resident, r.data_bytes - 32 /* header */);
	cr_assert_leq(r.data_resident, r.data_bytes);
	tc_store_free(&s);
}

Test(pagecache, residency_rejects_null_arguments)
{
	tc_store s;
	cellar_residency_info r;

	ERR(CELLAR_EINVAL, cellar_residency(NULL, &r));
	tc_store_new(&s, 0);
	ERR(CELLAR_EINVAL, cellar_residency(s.db, NULL));
	tc_store_free(&s);
}

/* ---- file systems without the version-2 ops -------------------------- */

/* The fs under test with its version-2 ops cleared (a version-2 table). */
static cellar_fs *without_v2_ops(cellar_fs *base)
{
	cellar_fs *fs = malloc(sizeof *fs);

	cr_assert_not_null(fs);
	*fs = *base;
	fs->resident = NULL;
	fs->lock_mem = NULL;
	fs->unlock_mem = NULL;
	fs->destroy = NULL; /* base is freed on its own */
	return fs;
}

/* The map hints a version-1 table was given. */
static int (*v1_base_map)(cellar_fs *, cellar_file *, uint64_t, int,
                          const void **);
static int v1_max_hint = -1;

static int v1_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                  const void **out)
{
	if (hint > v1_max_hint)
		v1_max_hint = hint;
	return v1_base_map(fs, f, len, hint, out);
}

/*
 * The fs under test as an old library's caller would build it: a table of
 * version 1 that ends at destroy, allocated exactly that long (under ASan a
 * read past it would be caught).  Its ctx is base's, so base's operations
 * work on it.
 */
static cellar_fs *as_version_1(cellar_fs *base)
{
	size_t len = offsetof(cellar_fs, resident);
	cellar_fs full = *base;
	void *fs = malloc(len);

	cr_assert_not_null(fs);
	full.version = 1;
	full.destroy = NULL;
	if (base->map) {
		v1_base_map = base->map;
		full.map = v1_map;
	}
	memcpy(fs, &full, len); /* through bytes: the table is short */
	return fs;
}

/* Set the version of a table that may be shorter than a cellar_fs. */
static void set_version(cellar_fs *fs, unsigned v)
{
	memcpy((char *)fs + offsetof(cellar_fs, version), &v, sizeof v);
}

Test(pagecache, residency_is_unknown_without_the_op)
{
	tc_store s;
	cellar_residency_info r;
	cellar_fs *bare;

	store_with_keys(&s, CELLAR_READONLY);
	tc_store_close(&s);
	bare = without_v2_ops(s.fs);
	s.o.fs = bare;
	tc_store_open(&s);
	OK(cellar_residency(s.db, &r));
	cr_assert_gt(r.index_bytes, 0);
	cr_assert_gt(r.data_bytes, 0);
	cr_assert_eq(r.index_resident, CELLAR_RESIDENT_UNKNOWN);
	cr_assert_eq(r.data_resident, CELLAR_RESIDENT_UNKNOWN);
	tc_store_close(&s);
	/* ... and locking the index can't be had there. */
	s.o.flags |= CELLAR_LOCK_INDEX;
	ERR(CELLAR_EINVAL, cellar_open(&s.db, s.dir, &s.o));
	cr_assert_null(s.db);
	cr_assert(strstr(cellar_errmsg(), "lock_mem"), "%s", cellar_errmsg());
	free(bare);
	tc_store_free(&s);
}

Test(pagecache, a_version_1_fs_table_still_opens)
{
	tc_store s;
	cellar_residency_info r;
	cellar_fs *old;

	tc_store_init(&s);
	old = as_version_1(s.fs);
	s.o.fs = old;
	s.o.segment_access = CELLAR_ACCESS_NORMAL;
	tc_store_open(&s);
	put_keys(s.db, KEYS);
	tc_store_reopen(&s); /* writes and maps the index file */
	check_get(s.db);
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.index_resident, CELLAR_RESIDENT_UNKNOWN);
	cr_assert_eq(r.data_resident, CELLAR_RESIDENT_UNKNOWN);
	/* It never sees a hint of version 2. */
	if (s.fs->map)
		cr_assert_leq(v1_max_hint, CELLAR_FS_MAP_HOT);
	tc_store_close(&s);
	s.o.flags = CELLAR_READONLY | CELLAR_LOCK_INDEX;
	ERR(CELLAR_EINVAL, cellar_open(&s.db, s.dir, &s.o));
	/* A table of an unknown version is refused. */
	set_version(old, CELLAR_FS_VERSION + 1);
	s.o.flags = CELLAR_READONLY;
	ERR(CELLAR_EINVAL, cellar_open(&s.db, s.dir, &s.o));
	set_version(old, 0);
	ERR(CELLAR_EINVAL, cellar_open(&s.db, s.dir, &s.o));
	free(old);
	tc_store_free(&s);
}

/* ---- CELLAR_LOCK_INDEX ----------------------------------------------- */

/* The VmFlags line of /proc/self/smaps for the mapping holding addr. */
static void vm_flags(const void *addr, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;

	cr_assert_not_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, cap, "%.200s", line + 8);
			break;
		}
	}
	fclose(f);
}

Test(pagecache, lock_index_locks_the_mapping_until_close)
{
	tc_store s;
	cellar_residency_info r;
	char flags[256];

	store_with_keys(&s, CELLAR_READONLY | CELLAR_LOCK_INDEX);
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.index_locked, 1);
	cr_assert_eq(r.index_resident, r.index_bytes);
	check_get(s.db);
	if (is_fs("mmap") && MLOCK_IS_REAL) {
		vm_flags(s.db->ix->map, flags, sizeof flags);
		cr_assert(strstr(flags, " lo"), "VmFlags%s", flags);
	}
	tc_store_close(&s);
	/* A read-write handle locks the index file it loaded, too. */
	s.o.flags = CELLAR_LOCK_INDEX;
	tc_store_open(&s);
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.index_locked, 1);
	put_keys(s.db, 10);
	tc_store_free(&s);
}

Test(pagecache, lock_index_on_a_new_store_locks_nothing)
{
	tc_store s;
	cellar_residency_info r;

	tc_store_init(&s);
	s.o.flags |= CELLAR_LOCK_INDEX;
	tc_store_open(&s);
	OK(cellar_residency(s.db, &r));
	cr_assert_eq(r.index_locked, 0);
	put_keys(s.db, 10);
	tc_store_free(&s);
}

/* Drop CAP_IPC_LOCK from this process: 0, or -1 if not allowed. */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, d) == 0 ? 0 : -1;
}

/* Child exit codes of the refusal test. */
enum { CHILD_REFUSED = 0, CHILD_SKIP = 10, CHILD_OPENED = 11,
       CHILD_OTHER = 12, CHILD_NO_MESSAGE = 13 };

Test(pagecache, lock_index_refused_by_rlimit_memlock_is_emlock)
{
	tc_store s;
	int status;
	pid_t pid;

	if (!MLOCK_IS_REAL)
		cr_skip_test("mlock is a no-op under AddressSanitizer");
	store_with_keys(&s, CELLAR_READONLY);
	tc_store_close(&s);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 4096, 4096 }; /* one page; the index is more */
		cellar_db *db = NULL;
		int rc;

		if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 ||
		    (geteuid() == 0 && drop_ipc_lock() != 0))
			_exit(CHILD_SKIP);
		s.o.flags = CELLAR_READONLY | CELLAR_LOCK_INDEX;
		rc = cellar_open(&db, s.dir, &s.o);
		if (rc == CELLAR_OK)
			_exit(CHILD_OPENED);
		if (rc != CELLAR_EMLOCK || db != NULL)
			_exit(CHILD_OTHER);
		if (!strstr(cellar_errmsg(), "RLIMIT_MEMLOCK") ||
		    !strstr(cellar_errmsg(), "4096 bytes"))
			_exit(CHILD_NO_MESSAGE);
		_exit(CHILD_REFUSED);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP) {
		tc_store_free(&s);
		cr_skip_test("cannot drop CAP_IPC_LOCK or lower RLIMIT_MEMLOCK");
	}
	if (is_fs("mem"))
		/* The mem fs's files are its memory: nothing to refuse. */
		cr_assert_eq(WEXITSTATUS(status), CHILD_OPENED);
	else
		cr_assert_eq(WEXITSTATUS(status), CHILD_REFUSED,
		             "child exit %d", WEXITSTATUS(status));
	/* The store is untouched and opens as before. */
	s.o.flags = CELLAR_READONLY;
	tc_store_open(&s);
	check_get(s.db);
	tc_store_free(&s);
}

/* ---- segment_access -------------------------------------------------- */

Test(pagecache, segment_access_becomes_the_segment_map_hint)
{
	static const unsigned access[] = {
		CELLAR_ACCESS_DEFAULT, CELLAR_ACCESS_RANDOM,
		CELLAR_ACCESS_SEQUENTIAL, CELLAR_ACCESS_NORMAL,
		CELLAR_ACCESS_WILLNEED,
	};
	/* The VmFlags each gives on the mmap fs; NULL: neither rr nor sr. */
	static const char *const want[] = { " rr", " rr", " sr", NULL, NULL };
	tc_store s;
	char flags[256];

	store_with_keys(&s, CELLAR_READONLY);
	for (size_t i = 0; i < sizeof access / sizeof access[0]; i++) {
		tc_store_close(&s);
		s.o.segment_access = access[i];
		tc_store_open(&s);
		check_get(s.db);
		if (!is_fs("mmap"))
			continue;
		cr_assert_gt(s.db->segs.n, 0);
		vm_flags(s.db->segs.list[0]->map, flags, sizeof flags);
		cr_assert_neq(flags[0], '\0', "segment mapping not in smaps");
		if (want[i]) {
			cr_assert(strstr(flags, want[i]), "access %u: VmFlags%s",
			          access[i], flags);
		} else {
			cr_assert_null(strstr(flags, " rr"), "access %u: VmFlags%s",
			               access[i], flags);
			cr_assert_null(strstr(flags, " sr"), "access %u: VmFlags%s",
			               access[i], flags);
		}
	}
	tc_store_free(&s);
}

Test(pagecache, options_before_version_3_ignore_segment_access)
{
	tc_store s;

	store_with_keys(&s, CELLAR_READONLY);
	tc_store_close(&s);
	s.o.version = 2;
	s.o.segment_access = 99; /* not part of a version-2 struct */
	tc_store_open(&s);
	check_get(s.db);
	tc_store_close(&s);
	s.o.version = 3;
	ERR(CELLAR_EINVAL, cellar_open(&s.db, s.dir, &s.o));
	tc_store_free(&s);
}

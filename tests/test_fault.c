/*
 * test_fault.c - the fault-injecting file system: counting, nth-operation
 * failures, torn writes, crashes and power cuts, over the mem and the posix
 * file systems.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "fault.h"

/* A fault fs over a base of some kind, with a fresh directory. */
struct fenv {
	const char *name;
	cellar_fs *base;
	cellar_fs *fs; /* the wrapper */
	char root[4096];
};

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fenv_open(struct fenv *e, const char *name)
{
	e->name = name;
	e->base = tc_fs_new_named(name);
	if (strcmp(name, "mem") == 0) {
		snprintf(e->root, sizeof e->root, "/t");
		cr_assert_eq(e->base->mkdir(e->base, e->root), CELLAR_OK);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(e->root, sizeof e->root, "%s/cellar-fault-XXXXXX",
		         tmp && *tmp ? tmp : "/tmp");
		cr_assert_not_null(mkdtemp(e->root), "mkdtemp");
	}
	cr_assert_eq(fault_fs_new(&e->fs, e->base), CELLAR_OK);
}

static void fenv_close(struct fenv *e)
{
	cellar_fs_free(e->fs);
	if (strcmp(e->name, "mem") != 0)
		nftw(e->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cellar_fs_free(e->base);
}

static const char *P(struct fenv *e, int slot, const char *name)
{
	static char bufs[4][4200];
	snprintf(bufs[slot], sizeof bufs[slot], "%s/%s", e->root, name);
	return bufs[slot];
}

static void each_base(void (*check)(struct fenv *e))
{
	const char *names[] = { "mem", "posix", "mmap" };

	for (size_t i = 0; i < 3; i++) {
		struct fenv e;
		fenv_open(&e, names[i]);
		check(&e);
		fenv_close(&e);
	}
}

static cellar_file *xopen(cellar_fs *fs, const char *path, int flags)
{
	cellar_file *f = NULL;
	int rc = fs->open(fs, path, flags, &f);
	cr_assert_eq(rc, CELLAR_OK, "open %s: %s", path, cellar_errmsg());
	return f;
}

#define RWC (CELLAR_FS_READ | CELLAR_FS_WRITE | CELLAR_FS_CREATE)

static void xwrite(cellar_fs *fs, cellar_file *f, uint64_t off, const char *s)
{
	int rc = fs->write_at(fs, f, off, s, strlen(s));
	cr_assert_eq(rc, CELLAR_OK, "write: %s", cellar_errmsg());
}

/* Write a whole file, sync it and its directory: durable. */
static void durable_file(struct fenv *e, const char *name, const char *s)
{
	cellar_file *f = xopen(e->fs, P(e, 0, name), RWC);
	xwrite(e->fs, f, 0, s);
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
}

/* Content of name read from the base; NULL if there is no such file. */
static const char *base_content(struct fenv *e, const char *name)
{
	static char buf[8192];
	cellar_file *f = NULL;
	size_t got = 0;

	if (e->base->open(e->base, P(e, 3, name), CELLAR_FS_READ, &f) ==
	    CELLAR_ENOENT)
		return NULL;
	cr_assert_not_null(f);
	cr_assert_eq(e->base->read_at(e->base, f, 0, buf, sizeof buf - 1, &got),
	             CELLAR_OK);
	buf[got] = '\0';
	e->base->close(e->base, f);
	return buf;
}

/* ---- counting and nth-operation faults ------------------------------------ */

static int noop_cb(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return 0;
}

/* Run one operation of kind; a-file handle f is open read-write. */
static int run_op(struct fenv *e, cellar_file *f, fault_op kind)
{
	cellar_fs *fs = e->fs;
	static unsigned dirs;
	char buf[8], dname[64];
	size_t got;
	uint64_t size;
	cellar_file *g = NULL;
	const void *p = NULL;
	int rc = CELLAR_EINVAL;

	switch (kind) {
	case FAULT_OPEN:
		rc = fs->open(fs, P(e, 0, "a"), CELLAR_FS_READ, &g);
		fs->close(fs, g);
		break;
	case FAULT_READ:
		rc = fs->read_at(fs, f, 0, buf, sizeof buf, &got);
		break;
	case FAULT_WRITE:
		rc = fs->write_at(fs, f, 0, "A", 1);
		break;
	case FAULT_SIZE:
		rc = fs->size(fs, f, &size);
		break;
	case FAULT_TRUNCATE:
		rc = fs->truncate(fs, f, 3);
		break;
	case FAULT_SYNC:
		rc = fs->sync(fs, f);
		break;
	case FAULT_MAP:
		rc = fs->map(fs, f, 3, CELLAR_FS_MAP_RANDOM, &p);
		if (rc == CELLAR_OK)
			cr_assert_eq(fs->unmap(fs, f, p, 3), CELLAR_OK);
		break;
	case FAULT_REMOVE:
		g = xopen(fs, P(e, 1, "victim"), RWC);
		fs->close(fs, g);
		rc = fs->remove(fs, P(e, 1, "victim"));
		break;
	case FAULT_RENAME:
		rc = fs->rename(fs, P(e, 0, "a"), P(e, 1, "a2"));
		if (rc == CELLAR_OK)
			cr_assert_eq(fs->rename(fs, P(e, 1, "a2"), P(e, 0, "a")),
			             CELLAR_OK);
		break;
	case FAULT_LIST:
		rc = fs->list(fs, e->root, noop_cb, NULL);
		break;
	case FAULT_MKDIR:
		snprintf(dname, sizeof dname, "d%u", ++dirs);
		rc = fs->mkdir(fs, P(e, 1, dname));
		break;
	case FAULT_SYNC_DIR:
		rc = fs->sync_dir(fs, e->root);
		break;
	case FAULT_LOCK:
		rc = fs->lock(fs, P(e, 1, "LOCK"), &g);
		if (rc == CELLAR_OK)
			cr_assert_eq(fs->unlock(fs, g), CELLAR_OK);
		break;
	case FAULT_NKINDS:
		break;
	}
	return rc;
}

static void check_nth_fails(struct fenv *e)
{
	cellar_file *f;

	durable_file(e, "a", "abc");
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	for (int k = 0; k < FAULT_NKINDS; k++) {
		uint64_t n;
		int err = k % 2 ? CELLAR_EIO : CELLAR_ENOSPC;

		if (k == FAULT_MAP && !e->fs->map)
			continue;
		cr_assert_eq(run_op(e, f, (fault_op)k), CELLAR_OK,
		             "[%s] kind %d before: %s", e->name, k, cellar_errmsg());
		n = fault_fs_count(e->fs, (fault_op)k);
		cr_assert_geq(n, 1, "[%s] kind %d not counted", e->name, k);
		fault_fs_fail(e->fs, (fault_op)k, n + 1, err, 0);
		cr_assert_eq(run_op(e, f, (fault_op)k), err, "[%s] kind %d",
		             e->name, k);
		cr_assert_eq(fault_fs_count(e->fs, (fault_op)k), n + 1,
		             "[%s] failed op not counted", e->name);
		cr_assert(strstr(cellar_errmsg(), "injected"), "%s",
		          cellar_errmsg());
		cr_assert_eq(run_op(e, f, (fault_op)k), CELLAR_OK,
		             "[%s] kind %d after: %s", e->name, k, cellar_errmsg());
	}
	e->fs->close(e->fs, f);
	cr_assert_eq(fault_fs_crashed(e->fs), 0);
}

Test(fault, nth_operation_of_each_kind_fails_once)
{
	each_base(check_nth_fails);
}

static void check_failed_ops_do_nothing(struct fenv *e)
{
	cellar_file *f;

	durable_file(e, "a", "abc");
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	fault_fs_fail(e->fs, FAULT_WRITE, fault_fs_count(e->fs, FAULT_WRITE) + 1,
	              CELLAR_EIO, 0);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "XYZW", 4), CELLAR_EIO);
	cr_assert_str_eq(base_content(e, "a"), "abc");
	fault_fs_fail(e->fs, FAULT_TRUNCATE, 1, CELLAR_EIO, 0);
	cr_assert_eq(e->fs->truncate(e->fs, f, 0), CELLAR_EIO);
	cr_assert_str_eq(base_content(e, "a"), "abc");
	e->fs->close(e->fs, f);
	fault_fs_fail(e->fs, FAULT_REMOVE, 1, CELLAR_EIO, 0);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_EIO);
	fault_fs_fail(e->fs, FAULT_RENAME, 1, CELLAR_EIO, 0);
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "a"), P(e, 1, "b")),
	             CELLAR_EIO);
	cr_assert_str_eq(base_content(e, "a"), "abc");
	cr_assert_null(base_content(e, "b"));
	fault_fs_fail(e->fs, FAULT_OPEN, fault_fs_count(e->fs, FAULT_OPEN) + 1,
	              CELLAR_EIO, 0);
	f = (cellar_file *)&f;
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "new"), RWC, &f), CELLAR_EIO);
	cr_assert_null(f);
	cr_assert_null(base_content(e, "new"));
}

Test(fault, failed_operation_changes_nothing)
{
	each_base(check_failed_ops_do_nothing);
}

static void check_counts(struct fenv *e)
{
	cellar_file *f, *g = NULL;
	char buf[4];
	size_t got;
	uint64_t m0 = fault_fs_mutations(e->fs);

	cr_assert_eq(m0, 0);
	f = xopen(e->fs, P(e, 0, "a"), RWC);                 /* mutation 1 */
	xwrite(e->fs, f, 0, "abc");                          /* 2 */
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, 3, &got), CELLAR_OK);
	cr_assert_eq(e->fs->truncate(e->fs, f, 2), CELLAR_OK); /* 3 */
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);        /* 4 */
	e->fs->close(e->fs, f);
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ);        /* not one */
	e->fs->close(e->fs, f);
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "d")), CELLAR_OK);  /* 5 */
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "a"), P(e, 1, "b")),
	             CELLAR_OK);                                     /* 6 */
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "b")), CELLAR_OK); /* 7 */
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);   /* 8 */
	cr_assert_eq(e->fs->list(e->fs, e->root, noop_cb, NULL), CELLAR_OK);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &g), CELLAR_OK);
	e->fs->unlock(e->fs, g);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "nope")), CELLAR_ENOENT);
	                                                             /* 9 */
	cr_assert_eq(fault_fs_mutations(e->fs), 9, "[%s] %llu", e->name,
	             (unsigned long long)fault_fs_mutations(e->fs));
	cr_assert_eq(fault_fs_count(e->fs, FAULT_OPEN), 2);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_WRITE), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_READ), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_TRUNCATE), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_SYNC), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_MKDIR), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_RENAME), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_REMOVE), 2);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_SYNC_DIR), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_LIST), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_LOCK), 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_SIZE), 0);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_NKINDS), 0);
	/* not a fault fs: zeros, no crash */
	cr_assert_eq(fault_fs_count(e->base, FAULT_OPEN), 0);
	cr_assert_eq(fault_fs_mutations(e->base), 0);
}

Test(fault, counts_operations_and_mutations)
{
	each_base(check_counts);
}

static void check_persistent(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "a"), RWC);

	xwrite(e->fs, f, 0, "one");
	fault_fs_fail(e->fs, FAULT_WRITE, 3, CELLAR_ENOSPC, 1);
	xwrite(e->fs, f, 3, "two");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(e->fs->write_at(e->fs, f, 6, "x", 1), CELLAR_ENOSPC);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_WRITE), 7);
	/* other kinds are unaffected */
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);
	fault_fs_fail(e->fs, FAULT_WRITE, 0, 0, 0);
	xwrite(e->fs, f, 6, "three");
	e->fs->close(e->fs, f);
	cr_assert_str_eq(base_content(e, "a"), "onetwothree");
}

Test(fault, persistent_enospc_fails_every_later_write)
{
	each_base(check_persistent);
}

static void check_tear(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "a"), RWC);

	xwrite(e->fs, f, 0, "0123456789");
	fault_fs_tear(e->fs, 2, 4);
	cr_assert_eq(e->fs->write_at(e->fs, f, 10, "abcdefgh", 8), CELLAR_EIO);
	cr_assert_str_eq(base_content(e, "a"), "0123456789abcd", "[%s]",
	                 e->name);
	/* keep >= len is clamped to len - 1 */
	fault_fs_tear(e->fs, 3, 100);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "XYZ", 3), CELLAR_EIO);
	cr_assert_str_eq(base_content(e, "a"), "XY23456789abcd");
	xwrite(e->fs, f, 0, "!");
	e->fs->close(e->fs, f);
	cr_assert_str_eq(base_content(e, "a"), "!Y23456789abcd");
}

Test(fault, torn_write_leaves_exactly_the_prefix)
{
	each_base(check_tear);
}

/* ---- crashes ------------------------------------------------------------------ */

static void check_crash(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "a"), RWC);  /* mutation 1 */
	cellar_file *l = NULL, *g = NULL;
	const void *p = NULL;
	char buf[4];
	size_t got;
	uint64_t size;

	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &l), CELLAR_OK);
	if (e->fs->map)
		cr_assert_eq(e->fs->map(e->fs, f, 8, 0, &p), CELLAR_OK);
	xwrite(e->fs, f, 0, "abc");                          /* 2 */
	fault_fs_crash_at(e->fs, 4);
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);      /* 3 */
	cr_assert_eq(fault_fs_crashed(e->fs), 0);
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "a"), P(e, 1, "b")),
	             CELLAR_EIO);                            /* 4: crash */
	cr_assert_eq(fault_fs_crashed(e->fs), 1);
	cr_assert_str_eq(base_content(e, "a"), "abc", "rename happened");
	cr_assert_null(base_content(e, "b"));
	/* the machine is off */
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, 3, &got), CELLAR_EIO);
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_EIO);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "x", 1), CELLAR_EIO);
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_EIO);
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "a"), CELLAR_FS_READ, &g),
	             CELLAR_EIO);
	cr_assert_eq(e->fs->list(e->fs, e->root, noop_cb, NULL), CELLAR_EIO);
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "d")), CELLAR_EIO);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_EIO);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_EIO);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK2"), &g), CELLAR_EIO);
	if (e->fs->map) {
		const void *q = NULL;
		cr_assert_eq(e->fs->map(e->fs, f, 8, 0, &q), CELLAR_EIO);
		cr_assert_eq(e->fs->unmap(e->fs, f, p, 8), CELLAR_OK);
	}
	cr_assert_str_eq(base_content(e, "a"), "abc");
	/* releasing still works (and the base's lock is really released) */
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	cr_assert_eq(e->fs->unlock(e->fs, l), CELLAR_OK);
	cr_assert_eq(e->base->lock(e->base, P(e, 0, "LOCK"), &l), CELLAR_OK);
	e->base->unlock(e->base, l);
}

Test(fault, crash_at_makes_every_later_operation_fail)
{
	each_base(check_crash);
}

static void check_crash_write(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "a"), RWC);  /* mutation 1 */
	const char *s;

	xwrite(e->fs, f, 0, "base:");                        /* 2 */
	fault_fs_crash_at(e->fs, 3);
	cr_assert_eq(e->fs->write_at(e->fs, f, 5, "0123456789", 10),
	             CELLAR_EIO);
	cr_assert(fault_fs_crashed(e->fs));
	s = base_content(e, "a");
	cr_assert_lt(strlen(s), 15, "the whole write landed");
	cr_assert_eq(strncmp(s, "base:0123456789", strlen(s)), 0,
	             "not a prefix: %s", s);
	e->fs->close(e->fs, f);
}

Test(fault, crash_at_write_lands_only_a_prefix)
{
	each_base(check_crash_write);
}

/* ---- power cuts -------------------------------------------------------------- */

static void check_cut_drops_unsynced(struct fenv *e)
{
	cellar_file *f;

	durable_file(e, "a", "synced");
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	xwrite(e->fs, f, 6, "+more");
	xwrite(e->fs, f, 0, "S");
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "a"), "Synced+more");
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK, "%s",
	             cellar_errmsg());
	cr_assert_str_eq(base_content(e, "a"), "synced", "[%s]", e->name);
}

Test(fault, power_cut_drops_unsynced_data)
{
	each_base(check_cut_drops_unsynced);
}

static void check_cut_keeps_synced(struct fenv *e)
{
	cellar_file *f;

	durable_file(e, "a", "first");
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	xwrite(e->fs, f, 5, "+second");
	cr_assert_eq(e->fs->truncate(e->fs, f, 9), CELLAR_OK);
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);
	xwrite(e->fs, f, 9, "lost");
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "a"), "first+sec", "[%s]", e->name);
	/* the wrapper goes on working, from the new durable state */
	f = xopen(e->fs, P(e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	xwrite(e->fs, f, 0, "F");
	e->fs->close(e->fs, f);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "a"), "first+sec");
}

Test(fault, power_cut_keeps_synced_data)
{
	each_base(check_cut_keeps_synced);
}

static void check_cut_uncreates(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "new"), RWC);

	xwrite(e->fs, f, 0, "data");
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK); /* file, not its dir */
	e->fs->close(e->fs, f);
	cr_assert_str_eq(base_content(e, "new"), "data");
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_null(base_content(e, "new"), "[%s] file survived", e->name);
	/* created and dir synced, file never synced: there but empty */
	f = xopen(e->fs, P(e, 0, "new2"), RWC);
	xwrite(e->fs, f, 0, "data");
	e->fs->close(e->fs, f);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "new2"), "", "[%s]", e->name);
}

Test(fault, power_cut_uncreates_file_whose_directory_was_not_synced)
{
	each_base(check_cut_uncreates);
}

static void check_cut_rename(struct fenv *e)
{
	durable_file(e, "tmp", "new index");
	durable_file(e, "index", "old index");
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "tmp"), P(e, 1, "index")),
	             CELLAR_OK);
	cr_assert_null(base_content(e, "tmp"));
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "index"), "old index", "[%s]", e->name);
	cr_assert_str_eq(base_content(e, "tmp"), "new index", "[%s]", e->name);
	/* the same rename made durable */
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "tmp"), P(e, 1, "index")),
	             CELLAR_OK);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "index"), "new index");
	cr_assert_null(base_content(e, "tmp"));
}

Test(fault, power_cut_reverts_unsynced_rename)
{
	each_base(check_cut_rename);
}

static void check_cut_remove(struct fenv *e)
{
	cellar_file *f;

	durable_file(e, "seg", "durable bytes");
	f = xopen(e->fs, P(e, 0, "seg"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	xwrite(e->fs, f, 0, "DURABLE");
	e->fs->close(e->fs, f);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "seg")), CELLAR_OK);
	cr_assert_null(base_content(e, "seg"));
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "seg"), "durable bytes", "[%s]",
	                 e->name);
	/* a synced remove sticks */
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "seg")), CELLAR_OK);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_null(base_content(e, "seg"));
}

Test(fault, power_cut_reverts_unsynced_remove)
{
	each_base(check_cut_remove);
}

static void check_cut_preexisting(struct fenv *e)
{
	cellar_file *f = NULL;

	/* written to the base before the wrapper knew of it: durable */
	cr_assert_eq(e->base->open(e->base, P(e, 0, "old"), RWC, &f), CELLAR_OK);
	cr_assert_eq(e->base->write_at(e->base, f, 0, "was here", 8), CELLAR_OK);
	e->base->close(e->base, f);
	f = xopen(e->fs, P(e, 0, "old"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	cr_assert_eq(e->fs->truncate(e->fs, f, 0), CELLAR_OK);
	xwrite(e->fs, f, 0, "changed");
	e->fs->close(e->fs, f);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "old"), "was here");
}

Test(fault, power_cut_treats_preexisting_files_as_durable)
{
	each_base(check_cut_preexisting);
}

static void check_cut_refuses_open(struct fenv *e)
{
	cellar_file *f = xopen(e->fs, P(e, 0, "a"), RWC);
	cellar_file *l = NULL;

	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_EINVAL);
	e->fs->close(e->fs, f);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &l), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_EINVAL);
	e->fs->unlock(e->fs, l);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_eq(fault_fs_power_cut(e->base, 0), CELLAR_EINVAL);
}

Test(fault, power_cut_refuses_while_files_are_open)
{
	each_base(check_cut_refuses_open);
}

static void check_cut_after_crash(struct fenv *e)
{
	cellar_file *f;
	uint64_t m, writes;

	durable_file(e, "log", "committed;");
	f = xopen(e->fs, P(e, 0, "log"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	fault_fs_crash_at(e->fs, fault_fs_mutations(e->fs) + 2);
	fault_fs_fail(e->fs, FAULT_SYNC_DIR, 1, CELLAR_EIO, 1);
	xwrite(e->fs, f, 10, "pending;");
	cr_assert_eq(e->fs->write_at(e->fs, f, 18, "torn-by-crash", 13),
	             CELLAR_EIO);
	cr_assert(fault_fs_crashed(e->fs));
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	m = fault_fs_mutations(e->fs);
	writes = fault_fs_count(e->fs, FAULT_WRITE);
	cr_assert_eq(fault_fs_power_cut(e->fs, 0), CELLAR_OK);
	cr_assert_str_eq(base_content(e, "log"), "committed;");
	/* healthy again; faults cleared; counts go on */
	cr_assert_eq(fault_fs_crashed(e->fs), 0);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
	cr_assert_eq(fault_fs_mutations(e->fs), m + 1);
	cr_assert_eq(fault_fs_count(e->fs, FAULT_WRITE), writes);
}

Test(fault, power_cut_after_crash_restores_a_healthy_fs)
{
	each_base(check_cut_after_crash);
}

/* A workload of unsynced writes, then a seeded power cut; the result. */
static char *seeded_outcome(const char *base_name, uint64_t seed)
{
	struct fenv e;
	cellar_file *f;
	char block[2048];
	char *out;

	fenv_open(&e, base_name);
	durable_file(&e, "a", "0123456789");
	f = xopen(e.fs, P(&e, 0, "a"), CELLAR_FS_READ | CELLAR_FS_WRITE);
	for (int i = 0; i < 8; i++) {
		memset(block, 'a' + i, sizeof block - 1);
		block[sizeof block - 1] = '\0';
		xwrite(e.fs, f, 10 + (uint64_t)i * 1000, block);
	}
	e.fs->close(e.fs, f);
	cr_assert_eq(fault_fs_power_cut(e.fs, seed), CELLAR_OK);
	{
		cellar_file *g = NULL;
		uint64_t size;
		size_t got;

		cr_assert_eq(e.base->open(e.base, P(&e, 0, "a"), CELLAR_FS_READ, &g),
		             CELLAR_OK);
		cr_assert_eq(e.base->size(e.base, g, &size), CELLAR_OK);
		out = calloc(1, (size_t)size + 1);
		cr_assert_not_null(out);
		cr_assert_eq(e.base->read_at(e.base, g, 0, out, (size_t)size, &got),
		             CELLAR_OK);
		cr_assert_eq(got, size);
		e.base->close(e.base, g);
		/* a hole left by a dropped write reads as zeros: make it visible */
		for (size_t i = 0; i < got; i++)
			if (out[i] == '\0')
				out[i] = '.';
	}
	fenv_close(&e);
	return out;
}

Test(fault, seeded_power_cut_is_deterministic_and_varies_with_seed)
{
	const char *bases[] = { "mem", "posix" };
	int kept_some = 0, distinct = 0;

	for (int b = 0; b < 2; b++) {
		char *first = NULL;
		for (uint64_t seed = 1; seed <= 12; seed++) {
			char *x = seeded_outcome(bases[b], seed);
			char *y = seeded_outcome(bases[b], seed);
			cr_assert_str_eq(x, y, "seed %llu differs between runs",
			                 (unsigned long long)seed);
			cr_assert_eq(strncmp(x, "0123456789", 10), 0,
			             "synced bytes lost");
			if (strlen(x) > 10)
				kept_some = 1;
			if (!first)
				first = x;
			else if (strcmp(first, x) != 0)
				distinct = 1, free(x);
			else
				free(x);
			free(y);
		}
		/* seed 0 keeps nothing unsynced */
		char *z = seeded_outcome(bases[b], 0);
		cr_assert_str_eq(z, "0123456789");
		free(z);
		free(first);
	}
	cr_assert(kept_some, "no seed kept any unsynced write");
	cr_assert(distinct, "every seed gave the same outcome");
}

Test(fault, seeded_power_cut_tears_only_at_sector_boundaries)
{
	for (uint64_t seed = 1; seed <= 30; seed++) {
		char *x = seeded_outcome("mem", seed);
		size_t n = strlen(x);

		/* each 2047-byte block at 10 + 1000 i: its bytes are either the
		 * block's letter, a later block's letter, or a hole */
		for (size_t i = 10; i < n; i++) {
			char c = x[i];
			cr_assert(c == '.' || (c >= 'a' && c <= 'h'),
			          "seed %llu: byte %zu is %c",
			          (unsigned long long)seed, i, c);
		}
		/* a file ending inside a write ends at a 512-byte boundary or at
		 * a write's end */
		cr_assert(n == 10 || n % 512 == 0 || (n - 10 - 2047) % 1000 == 0,
		          "seed %llu: odd length %zu", (unsigned long long)seed, n);
		free(x);
	}
}

Test(fault, mapping_passes_through_to_the_base)
{
	struct fenv e;
	cellar_file *f;
	const char *p = NULL;

	fenv_open(&e, "mem");
	f = xopen(e.fs, P(&e, 0, "m"), RWC);
	xwrite(e.fs, f, 0, "mapped");
	cr_assert_eq(e.fs->map(e.fs, f, 64, CELLAR_FS_MAP_RANDOM,
	             (const void **)&p), CELLAR_OK);
	xwrite(e.fs, f, 6, "+");
	cr_assert_eq(memcmp(p, "mapped+", 7), 0);
	cr_assert_eq(fault_fs_count(e.fs, FAULT_MAP), 1);
	cr_assert_eq(fault_fs_power_cut(e.fs, 0), CELLAR_EINVAL);
	e.fs->close(e.fs, f);
	cr_assert_eq(e.fs->unmap(e.fs, f, p, 64), CELLAR_OK);
	cr_assert_eq(e.fs->unmap(e.fs, f, p, 64), CELLAR_EINVAL);
	fenv_close(&e);
	/* a base without map gives a wrapper without map */
	fenv_open(&e, "posix");
	cr_assert_null(e.fs->map);
	fenv_close(&e);
}

Test(fault, new_rejects_bad_arguments)
{
	cellar_fs *fs = (cellar_fs *)&fs;

	cr_assert_eq(fault_fs_new(&fs, NULL), CELLAR_EINVAL);
	cr_assert_null(fs);
	cr_assert_eq(fault_fs_new(NULL, NULL), CELLAR_EINVAL);
}

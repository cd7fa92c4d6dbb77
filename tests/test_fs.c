/*
 * test_fs.c - the file systems: the same behavioural checks run against
 * posix, mmap and mem, plus what is particular to each (mappings, the mem
 * fs's limits) and the errno mapping helper.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "fs_util.h"

/* One file system under test, with a fresh, empty directory. */
struct env {
	const char *name;
	cellar_fs *fs;
	char root[4096];
};

static const char *const fs_names[] = { "mem", "posix", "mmap" };

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void env_open(struct env *e, const char *name)
{
	e->name = name;
	e->fs = tc_fs_new_named(name);
	if (strcmp(name, "mem") == 0) {
		snprintf(e->root, sizeof e->root, "/t");
		cr_assert_eq(e->fs->mkdir(e->fs, e->root), CELLAR_OK);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(e->root, sizeof e->root, "%s/cellar-fs-XXXXXX",
		         tmp && *tmp ? tmp : "/tmp");
		cr_assert_not_null(mkdtemp(e->root), "mkdtemp");
	}
}

static void env_close(struct env *e)
{
	if (strcmp(e->name, "mem") != 0)
		nftw(e->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cellar_fs_free(e->fs);
	e->fs = NULL;
}

/* path of name inside the env's directory (a static buffer per slot). */
static const char *P(struct env *e, int slot, const char *name)
{
	static char bufs[4][4200];
	snprintf(bufs[slot], sizeof bufs[slot], "%s/%s", e->root, name);
	return bufs[slot];
}

static void each_fs(void (*check)(struct env *e))
{
	for (size_t i = 0; i < sizeof fs_names / sizeof fs_names[0]; i++) {
		struct env e;
		env_open(&e, fs_names[i]);
		check(&e);
		env_close(&e);
	}
}

static cellar_file *create(struct env *e, const char *path)
{
	cellar_file *f = NULL;
	int rc = e->fs->open(e->fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE |
	                     CELLAR_FS_CREATE, &f);
	cr_assert_eq(rc, CELLAR_OK, "[%s] create %s: %s", e->name, path,
	             cellar_errmsg());
	return f;
}

static void put_file(struct env *e, const char *path, const char *s)
{
	cellar_file *f = create(e, path);
	cr_assert_eq(e->fs->truncate(e->fs, f, 0), CELLAR_OK);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, s, strlen(s)), CELLAR_OK);
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
}

/* The whole content of path as a string (at most 255 bytes). */
static const char *get_file(struct env *e, const char *path)
{
	static char buf[256];
	cellar_file *f = NULL;
	size_t got = 0;

	cr_assert_eq(e->fs->open(e->fs, path, CELLAR_FS_READ, &f), CELLAR_OK,
	             "[%s] open %s", e->name, path);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf - 1, &got),
	             CELLAR_OK);
	buf[got] = '\0';
	e->fs->close(e->fs, f);
	return buf;
}

/* ---- basic I/O ------------------------------------------------------------ */

static void check_round_trip(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "a"));
	char buf[16] = { 0 };
	size_t got = 99;
	uint64_t size = 0;

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "hello world", 11), CELLAR_OK);
	cr_assert_eq(e->fs->write_at(e->fs, f, 6, "WORLD", 5), CELLAR_OK);
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_OK);
	cr_assert_eq(size, 11, "[%s]", e->name);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, 11, &got), CELLAR_OK);
	cr_assert_eq(got, 11);
	cr_assert_str_eq(buf, "hello WORLD", "[%s]", e->name);
	cr_assert_eq(e->fs->sync(e->fs, f), CELLAR_OK);
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	/* and again through a new handle */
	cr_assert_str_eq(get_file(e, P(e, 0, "a")), "hello WORLD");
}

Test(fs, write_then_read_round_trips)
{
	each_fs(check_round_trip);
}

static void check_short_read(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "a"));
	char buf[16];
	size_t got = 99;

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "0123456789", 10), CELLAR_OK);
	cr_assert_eq(e->fs->read_at(e->fs, f, 6, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 4, "[%s] got %zu", e->name, got);
	cr_assert_eq(memcmp(buf, "6789", 4), 0);
	cr_assert_eq(e->fs->read_at(e->fs, f, 10, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 0);
	cr_assert_eq(e->fs->read_at(e->fs, f, 1000, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 0);
	e->fs->close(e->fs, f);
}

Test(fs, read_past_end_is_short)
{
	each_fs(check_short_read);
}

static void check_write_past_end(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "a"));
	unsigned char buf[8];
	size_t got;
	uint64_t size;

	cr_assert_eq(e->fs->write_at(e->fs, f, 4, "xy", 2), CELLAR_OK);
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_OK);
	cr_assert_eq(size, 6);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 6);
	cr_assert_eq(memcmp(buf, "\0\0\0\0xy", 6), 0, "[%s] hole not zero",
	             e->name);
	e->fs->close(e->fs, f);
}

Test(fs, write_past_end_leaves_zero_hole)
{
	each_fs(check_write_past_end);
}

static void check_truncate(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "a"));
	unsigned char buf[16];
	size_t got;
	uint64_t size;

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "abcdefgh", 8), CELLAR_OK);
	cr_assert_eq(e->fs->truncate(e->fs, f, 3), CELLAR_OK);
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_OK);
	cr_assert_eq(size, 3);
	cr_assert_eq(e->fs->truncate(e->fs, f, 8), CELLAR_OK);
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_OK);
	cr_assert_eq(size, 8);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 8);
	cr_assert_eq(memcmp(buf, "abc\0\0\0\0\0", 8), 0,
	             "[%s] extension is not zeros", e->name);
	e->fs->close(e->fs, f);
}

Test(fs, truncate_shrink_then_extend_reads_zeros)
{
	each_fs(check_truncate);
}

static void check_read_only(struct env *e)
{
	cellar_file *f = NULL;
	char buf[4];
	size_t got;

	put_file(e, P(e, 0, "a"), "abc");
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "a"), CELLAR_FS_READ, &f),
	             CELLAR_OK);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "x", 1), CELLAR_EINVAL,
	             "[%s]", e->name);
	cr_assert_eq(e->fs->truncate(e->fs, f, 0), CELLAR_EINVAL, "[%s]",
	             e->name);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, 3, &got), CELLAR_OK);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	e->fs->close(e->fs, f);
}

Test(fs, write_on_file_opened_read_only_is_einval)
{
	each_fs(check_read_only);
}

/* ---- open flags and error paths ------------------------------------------ */

static void check_open_errors(struct env *e)
{
	cellar_file *f = (cellar_file *)&f;

	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "nope"), CELLAR_FS_READ, &f),
	             CELLAR_ENOENT, "[%s]", e->name);
	cr_assert_null(f);
	cr_assert_str_neq(cellar_errmsg(), "");
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "nodir/x"), CELLAR_FS_READ |
	             CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f), CELLAR_ENOENT,
	             "[%s] create in a missing directory", e->name);
	put_file(e, P(e, 0, "a"), "abc");
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "a"), CELLAR_FS_WRITE |
	             CELLAR_FS_CREATE | CELLAR_FS_EXCL, &f), CELLAR_EEXIST,
	             "[%s]", e->name);
	cr_assert_null(f);
	/* CREATE without EXCL opens the existing file untouched */
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "a"), CELLAR_FS_WRITE |
	             CELLAR_FS_CREATE, &f), CELLAR_OK);
	e->fs->close(e->fs, f);
	cr_assert_str_eq(get_file(e, P(e, 0, "a")), "abc");
	/* EXCL on a new file creates it */
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "b"), CELLAR_FS_WRITE |
	             CELLAR_FS_CREATE | CELLAR_FS_EXCL, &f), CELLAR_OK);
	e->fs->close(e->fs, f);
	cr_assert_eq(e->fs->close(e->fs, NULL), CELLAR_OK);
}

Test(fs, open_honours_create_and_excl)
{
	each_fs(check_open_errors);
}

static void check_mkdir(struct env *e)
{
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "d")), CELLAR_OK);
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "d")), CELLAR_EEXIST,
	             "[%s]", e->name);
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "x/y")), CELLAR_ENOENT,
	             "[%s]", e->name);
	put_file(e, P(e, 0, "d/f"), "in d");
	cr_assert_str_eq(get_file(e, P(e, 0, "d/f")), "in d");
	cr_assert_eq(e->fs->sync_dir(e->fs, P(e, 0, "d")), CELLAR_OK);
	cr_assert_eq(e->fs->sync_dir(e->fs, e->root), CELLAR_OK);
	cr_assert_eq(e->fs->sync_dir(e->fs, P(e, 0, "missing")), CELLAR_ENOENT,
	             "[%s]", e->name);
}

Test(fs, mkdir_creates_once_then_eexist)
{
	each_fs(check_mkdir);
}

static void check_remove(struct env *e)
{
	cellar_file *f = NULL;

	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "nope")), CELLAR_ENOENT,
	             "[%s]", e->name);
	put_file(e, P(e, 0, "a"), "abc");
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_OK);
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "a"), CELLAR_FS_READ, &f),
	             CELLAR_ENOENT);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_ENOENT);
}

Test(fs, remove_deletes_and_missing_is_enoent)
{
	each_fs(check_remove);
}

static void check_unlinked_handle(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "a"));
	char buf[8];
	size_t got;

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "abc", 3), CELLAR_OK);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_OK);
	cr_assert_eq(e->fs->write_at(e->fs, f, 3, "de", 2), CELLAR_OK);
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 5);
	cr_assert_eq(memcmp(buf, "abcde", 5), 0, "[%s]", e->name);
	/* a new file of that name is a different file */
	put_file(e, P(e, 0, "a"), "new");
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 5);
	e->fs->close(e->fs, f);
	cr_assert_str_eq(get_file(e, P(e, 0, "a")), "new");
}

Test(fs, removed_file_stays_usable_through_open_handle)
{
	each_fs(check_unlinked_handle);
}

static void check_link(struct env *e)
{
	cr_assert_not_null(e->fs->link, "[%s] has no link", e->name);
	put_file(e, P(e, 0, "a"), "shared");
	cr_assert_eq(e->fs->link(e->fs, P(e, 0, "a"), P(e, 1, "b")), CELLAR_OK,
	             "[%s] %s", e->name, cellar_errmsg());
	cr_assert_str_eq(get_file(e, P(e, 0, "b")), "shared");
	/* one file, two names: a write through one shows through the other */
	put_file(e, P(e, 0, "a"), "SHARED");
	cr_assert_str_eq(get_file(e, P(e, 0, "b")), "SHARED", "[%s]", e->name);
	/* removing one name leaves the other */
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_OK);
	cr_assert_str_eq(get_file(e, P(e, 0, "b")), "SHARED");
	/* errors */
	cr_assert_eq(e->fs->link(e->fs, P(e, 0, "nope"), P(e, 1, "c")),
	             CELLAR_ENOENT, "[%s]", e->name);
	put_file(e, P(e, 0, "d"), "x");
	cr_assert_eq(e->fs->link(e->fs, P(e, 0, "b"), P(e, 1, "d")),
	             CELLAR_EEXIST, "[%s]", e->name);
	cr_assert_eq(e->fs->link(e->fs, P(e, 0, "b"), P(e, 1, "no/dir/e")),
	             CELLAR_ENOENT, "[%s]", e->name);
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "sub")), CELLAR_OK);
	cr_assert_neq(e->fs->link(e->fs, P(e, 0, "sub"), P(e, 1, "sub2")),
	              CELLAR_OK, "[%s] linked a directory", e->name);
}

Test(fs, link_shares_the_file_and_reports_errors)
{
	each_fs(check_link);
}

static void check_rename(struct env *e)
{
	cellar_file *f = NULL;
	char buf[8];
	size_t got;

	put_file(e, P(e, 0, "a"), "aaa");
	put_file(e, P(e, 0, "b"), "bbbbb");
	cr_assert_eq(e->fs->open(e->fs, P(e, 0, "b"), CELLAR_FS_READ, &f),
	             CELLAR_OK);
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "a"), P(e, 1, "b")),
	             CELLAR_OK, "[%s] %s", e->name, cellar_errmsg());
	cr_assert_str_eq(get_file(e, P(e, 0, "b")), "aaa", "[%s]", e->name);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "a")), CELLAR_ENOENT);
	/* the replaced file lives on for its open handle */
	cr_assert_eq(e->fs->read_at(e->fs, f, 0, buf, sizeof buf, &got),
	             CELLAR_OK);
	cr_assert_eq(got, 5);
	e->fs->close(e->fs, f);
	/* to a new name */
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "b"), P(e, 1, "c")),
	             CELLAR_OK);
	cr_assert_str_eq(get_file(e, P(e, 0, "c")), "aaa");
	/* errors */
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "nope"), P(e, 1, "d")),
	             CELLAR_ENOENT, "[%s]", e->name);
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "c"), P(e, 1, "nodir/d")),
	             CELLAR_ENOENT, "[%s]", e->name);
	/* onto itself: nothing happens */
	cr_assert_eq(e->fs->rename(e->fs, P(e, 0, "c"), P(e, 1, "c")),
	             CELLAR_OK);
	cr_assert_str_eq(get_file(e, P(e, 0, "c")), "aaa");
}

Test(fs, rename_replaces_target_atomically)
{
	each_fs(check_rename);
}

struct names {
	char seen[16][32];
	int n;
	int stop_after;
};

static int collect(const char *name, void *ctx)
{
	struct names *ns = ctx;

	cr_assert_lt(ns->n, 16);
	snprintf(ns->seen[ns->n++], sizeof ns->seen[0], "%s", name);
	return ns->stop_after && ns->n == ns->stop_after ? 42 : 0;
}

static int has_name(const struct names *ns, const char *name)
{
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->seen[i], name) == 0)
			return 1;
	return 0;
}

static void check_list(struct env *e)
{
	struct names ns = { .n = 0 };

	cr_assert_eq(e->fs->list(e->fs, e->root, collect, &ns), CELLAR_OK);
	cr_assert_eq(ns.n, 0, "[%s] new dir not empty", e->name);
	put_file(e, P(e, 0, "one"), "1");
	put_file(e, P(e, 0, "two.seg"), "2");
	cr_assert_eq(e->fs->mkdir(e->fs, P(e, 0, "sub")), CELLAR_OK);
	put_file(e, P(e, 0, "sub/inner"), "3");
	cr_assert_eq(e->fs->list(e->fs, e->root, collect, &ns), CELLAR_OK);
	cr_assert_eq(ns.n, 3, "[%s] listed %d", e->name, ns.n);
	cr_assert(has_name(&ns, "one"));
	cr_assert(has_name(&ns, "two.seg"));
	cr_assert(has_name(&ns, "sub"));
	ns.n = 0;
	cr_assert_eq(e->fs->list(e->fs, P(e, 0, "sub"), collect, &ns),
	             CELLAR_OK);
	cr_assert_eq(ns.n, 1);
	cr_assert_str_eq(ns.seen[0], "inner");
	/* a non-zero callback result stops the listing and comes back */
	ns.n = 0;
	ns.stop_after = 1;
	cr_assert_eq(e->fs->list(e->fs, e->root, collect, &ns), 42);
	cr_assert_eq(ns.n, 1);
	cr_assert_eq(e->fs->list(e->fs, P(e, 0, "missing"), collect, &ns),
	             CELLAR_ENOENT, "[%s]", e->name);
}

Test(fs, list_gives_direct_children_only)
{
	each_fs(check_list);
}

/* ---- locks ----------------------------------------------------------------- */

static void check_lock(struct env *e)
{
	cellar_file *l1 = NULL, *l2 = (cellar_file *)&l2;

	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &l1), CELLAR_OK,
	             "[%s] %s", e->name, cellar_errmsg());
	cr_assert_not_null(l1);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &l2), CELLAR_ELOCKED,
	             "[%s] second lock in the same process", e->name);
	cr_assert_null(l2);
	cr_assert_eq(e->fs->unlock(e->fs, l1), CELLAR_OK);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "LOCK"), &l2), CELLAR_OK,
	             "[%s] lock after unlock", e->name);
	cr_assert_eq(e->fs->unlock(e->fs, l2), CELLAR_OK);
	cr_assert_eq(e->fs->unlock(e->fs, NULL), CELLAR_OK);
	cr_assert_eq(e->fs->lock(e->fs, P(e, 0, "nodir/LOCK"), &l1),
	             CELLAR_ENOENT, "[%s]", e->name);
}

Test(fs, lock_is_exclusive_until_unlock)
{
	each_fs(check_lock);
}

/* ---- mappings (mmap and mem) ------------------------------------------------ */

static void each_mapping_fs(void (*check)(struct env *e))
{
	const char *names[] = { "mem", "mmap" };

	for (size_t i = 0; i < 2; i++) {
		struct env e;
		env_open(&e, names[i]);
		check(&e);
		env_close(&e);
	}
}

Test(fs, posix_offers_no_mapping)
{
	cellar_fs *fs = tc_fs_new_named("posix");

	cr_assert_null(fs->map);
	cr_assert_null(fs->unmap);
	cellar_fs_free(fs);
}

static void check_map_visibility(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "seg"));
	const unsigned char *p = NULL;
	const uint64_t len = 1 << 16;
	char big[5000];

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "head", 4), CELLAR_OK);
	cr_assert_eq(e->fs->map(e->fs, f, len, CELLAR_FS_MAP_RANDOM,
	             (const void **)&p), CELLAR_OK, "[%s] %s", e->name,
	             cellar_errmsg());
	cr_assert_not_null(p);
	cr_assert_eq(memcmp(p, "head", 4), 0);
	/* written after the map, below its length: visible at once */
	cr_assert_eq(e->fs->write_at(e->fs, f, 4, "tail", 4), CELLAR_OK);
	cr_assert_eq(memcmp(p, "headtail", 8), 0, "[%s]", e->name);
	memset(big, 'z', sizeof big);
	cr_assert_eq(e->fs->write_at(e->fs, f, 60000, big, sizeof big),
	             CELLAR_OK);
	cr_assert_eq(memcmp(p + 60000, big, sizeof big), 0, "[%s]", e->name);
	cr_assert_eq(p[59999], 0);
	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "HEAD", 4), CELLAR_OK);
	cr_assert_eq(memcmp(p, "HEADtail", 8), 0);
	cr_assert_eq(e->fs->unmap(e->fs, f, p, len), CELLAR_OK);
	e->fs->close(e->fs, f);
}

Test(fs, map_sees_later_writes)
{
	each_mapping_fs(check_map_visibility);
}

static void check_map_survives(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "seg"));
	const char *p = NULL, *q = NULL;

	cr_assert_eq(e->fs->write_at(e->fs, f, 0, "durable", 7), CELLAR_OK);
	cr_assert_eq(e->fs->map(e->fs, f, 7, CELLAR_FS_MAP_SEQUENTIAL,
	             (const void **)&p), CELLAR_OK);
	cr_assert_eq(e->fs->map(e->fs, f, 7, CELLAR_FS_MAP_RANDOM,
	             (const void **)&q), CELLAR_OK);
	cr_assert_eq(e->fs->close(e->fs, f), CELLAR_OK);
	cr_assert_eq(e->fs->remove(e->fs, P(e, 0, "seg")), CELLAR_OK);
	put_file(e, P(e, 0, "seg"), "another");
	cr_assert_eq(memcmp(p, "durable", 7), 0, "[%s]", e->name);
	cr_assert_eq(memcmp(q, "durable", 7), 0, "[%s]", e->name);
	/* unmap after close: the file argument is not used */
	cr_assert_eq(e->fs->unmap(e->fs, NULL, p, 7), CELLAR_OK);
	cr_assert_eq(memcmp(q, "durable", 7), 0, "[%s]", e->name);
	cr_assert_eq(e->fs->unmap(e->fs, NULL, q, 7), CELLAR_OK);
}

Test(fs, map_survives_close_and_remove)
{
	each_mapping_fs(check_map_survives);
}

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

/* The mmap fs turns each hint into madvise() advice the kernel keeps. */
Test(fs, mmap_hints_become_madvise_flags)
{
	struct env e;
	char flags[256];
	const void *p[3];
	static const int hints[3] = { CELLAR_FS_MAP_RANDOM,
	                              CELLAR_FS_MAP_SEQUENTIAL,
	                              CELLAR_FS_MAP_HOT };
	static const char *const want[3] = { " rr", " sr", " hg" };
	static const int plain[2] = { CELLAR_FS_MAP_NORMAL,
	                              CELLAR_FS_MAP_WILLNEED };
	FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char mode[128] = "";

	if (thp) {
		if (!fgets(mode, sizeof mode, thp))
			mode[0] = '\0';
		fclose(thp);
	}
	env_open(&e, "mmap");
	cellar_file *f = create(&e, P(&e, 0, "index"));
	cr_assert_eq(e.fs->write_at(e.fs, f, 0, "x", 1), CELLAR_OK);
	for (int i = 0; i < 3; i++) {
		OK(e.fs->map(e.fs, f, 4u << 20, hints[i], &p[i]));
		vm_flags(p[i], flags, sizeof flags);
		cr_assert_neq(flags[0], '\0', "mapping %d not in smaps", i);
		if (i == 2 && (!mode[0] || strstr(mode, "[never]")))
			continue; /* no transparent huge pages here */
		cr_assert(strstr(flags, want[i]), "hint %d: VmFlags%s", i, flags);
		if (i != 2)
			cr_assert_null(strstr(flags, " hg"), "hint %d: VmFlags%s",
			               i, flags);
	}
	for (int i = 0; i < 3; i++)
		OK(e.fs->unmap(e.fs, f, p[i], 4u << 20));
	/* NORMAL and WILLNEED leave the kernel's default read-ahead. */
	for (int i = 0; i < 2; i++) {
		const void *q;
		OK(e.fs->map(e.fs, f, 4u << 20, plain[i], &q));
		vm_flags(q, flags, sizeof flags);
		cr_assert_neq(flags[0], '\0', "mapping not in smaps");
		cr_assert_null(strstr(flags, " rr"), "hint %d: VmFlags%s",
		               plain[i], flags);
		cr_assert_null(strstr(flags, " sr"), "hint %d: VmFlags%s",
		               plain[i], flags);
		OK(e.fs->unmap(e.fs, f, q, 4u << 20));
	}
	e.fs->close(e.fs, f);
	env_close(&e);
}

/* ---- version 2: resident, lock_mem, unlock_mem ---------------------- */

#define MEMFILE (1u << 20)

/* A file of MEMFILE bytes, all written (so all in the page cache). */
static cellar_file *filled_file(struct env *e, unsigned char *buf)
{
	cellar_file *f = create(e, P(e, 0, "data"));

	memset(buf, 0xab, MEMFILE);
	OK(e->fs->write_at(e->fs, f, 0, buf, MEMFILE));
	return f;
}

static void check_resident(struct env *e)
{
	unsigned char *buf = malloc(MEMFILE);
	cellar_file *f;
	const void *p = NULL;
	uint64_t r = 1;

	cr_assert_not_null(buf);
	cr_assert_eq(e->fs->version, 2, "[%s]", e->name);
	cr_assert_not_null(e->fs->resident, "[%s]", e->name);
	f = filled_file(e, buf);
	/* The file itself (posix: through a temporary mapping). */
	if (strcmp(e->name, "mem") != 0) {
		OK(e->fs->resident(e->fs, f, NULL, MEMFILE, &r));
		cr_assert_leq(r, MEMFILE, "[%s]", e->name);
	}
	/* Through a mapping, after reading every page of it. */
	if (e->fs->map) {
		OK(e->fs->map(e->fs, f, MEMFILE, CELLAR_FS_MAP_RANDOM, &p));
		for (size_t i = 0; i < MEMFILE; i += 4096)
			cr_assert_eq(((const unsigned char *)p)[i], 0xab);
		OK(e->fs->resident(e->fs, f, p, MEMFILE, &r));
		cr_assert_eq(r, MEMFILE, "[%s] %llu resident", e->name,
		             (unsigned long long)r);
		/* An odd sub-range counts only its own bytes. */
		OK(e->fs->resident(e->fs, f, (const char *)p + 100, 5000, &r));
		cr_assert_eq(r, 5000, "[%s]", e->name);
		OK(e->fs->unmap(e->fs, f, p, MEMFILE));
	}
	/* A private copy: any memory of the process. */
	OK(e->fs->resident(e->fs, f, buf, MEMFILE, &r));
	cr_assert_eq(r, MEMFILE, "[%s]", e->name);
	OK(e->fs->resident(e->fs, f, buf, 0, &r));
	cr_assert_eq(r, 0, "[%s]", e->name);
	e->fs->close(e->fs, f);
	free(buf);
}

Test(fs, resident_counts_bytes_in_memory)
{
	each_fs(check_resident);
}

static void check_lock_mem(struct env *e)
{
	unsigned char *buf = malloc(MEMFILE);
	cellar_file *f;
	const void *p = NULL;

	cr_assert_not_null(buf);
	cr_assert_not_null(e->fs->lock_mem, "[%s]", e->name);
	cr_assert_not_null(e->fs->unlock_mem, "[%s]", e->name);
	f = filled_file(e, buf);
	if (e->fs->map) {
		OK(e->fs->map(e->fs, f, MEMFILE, CELLAR_FS_MAP_HOT, &p));
		OK(e->fs->lock_mem(e->fs, f, p, MEMFILE));
		OK(e->fs->unlock_mem(e->fs, f, p, MEMFILE));
		OK(e->fs->unmap(e->fs, f, p, MEMFILE));
	}
	OK(e->fs->lock_mem(e->fs, f, buf + 7, 10000));
	OK(e->fs->unlock_mem(e->fs, NULL, buf + 7, 10000));
	ERR(CELLAR_EINVAL, e->fs->lock_mem(e->fs, f, NULL, 10));
	ERR(CELLAR_EINVAL, e->fs->lock_mem(e->fs, f, buf, 0));
	ERR(CELLAR_EINVAL, e->fs->unlock_mem(e->fs, f, NULL, 10));
	e->fs->close(e->fs, f);
	free(buf);
}

Test(fs, lock_mem_then_unlock_mem)
{
	each_fs(check_lock_mem);
}

Test(fs, mlock_refusal_names_rlimit_memlock)
{
	/* The errno mapping alone: the real refusal is in test_pagecache. */
	ERR(CELLAR_EMLOCK, fs__mlock_errno(ENOMEM, "/x/index", 123456));
	cr_assert(strstr(cellar_errmsg(), "RLIMIT_MEMLOCK"), "%s",
	          cellar_errmsg());
	cr_assert(strstr(cellar_errmsg(), "123456 bytes needed"), "%s",
	          cellar_errmsg());
	cr_assert(strstr(cellar_errmsg(), "/x/index"), "%s", cellar_errmsg());
	ERR(CELLAR_EMLOCK, fs__mlock_errno(EPERM, "/x/index", 1));
	ERR(CELLAR_EMLOCK, fs__mlock_errno(EAGAIN, "/x/index", 1));
	ERR(CELLAR_EIO, fs__mlock_errno(EINVAL, "/x/index", 1));
}

static void check_map_zero(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "seg"));
	const void *p = (const void *)&p;

	cr_assert_eq(e->fs->map(e->fs, f, 0, CELLAR_FS_MAP_RANDOM, &p),
	             CELLAR_EINVAL, "[%s]", e->name);
	cr_assert_null(p);
	e->fs->close(e->fs, f);
}

Test(fs, map_of_length_zero_is_einval)
{
	each_mapping_fs(check_map_zero);
}

Test(fs, mem_map_past_size_reads_zeros_after_shrink)
{
	cellar_fs *fs = tc_fs_new_named("mem");
	cellar_file *f = NULL;
	const unsigned char *p = NULL;

	cr_assert_eq(fs->open(fs, "/f", CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f),
	             CELLAR_OK);
	cr_assert_eq(fs->write_at(fs, f, 0, "abcdef", 6), CELLAR_OK);
	cr_assert_eq(fs->map(fs, f, 100, 0, (const void **)&p), CELLAR_OK);
	for (int i = 6; i < 100; i++)
		cr_assert_eq(p[i], 0);
	cr_assert_eq(fs->truncate(fs, f, 2), CELLAR_OK);
	cr_assert_eq(memcmp(p, "ab\0\0\0\0", 6), 0);
	cr_assert_eq(fs->unmap(fs, f, p, 100), CELLAR_OK);
	fs->close(fs, f);
	cellar_fs_free(fs);
}

Test(fs, mem_growth_past_mapped_capacity_is_enomem)
{
	cellar_fs *fs = tc_fs_new_named("mem");
	cellar_file *f = NULL;
	const void *p = NULL, *q = NULL;
	static char big[1 << 16];

	cr_assert_eq(fs->open(fs, "/f", CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f),
	             CELLAR_OK);
	cr_assert_eq(fs->map(fs, f, 4096, 0, &p), CELLAR_OK);
	cr_assert_eq(fs->write_at(fs, f, 0, big, 4096), CELLAR_OK);
	cr_assert_eq(fs->write_at(fs, f, 0, big, sizeof big), CELLAR_ENOMEM);
	cr_assert(strstr(cellar_errmsg(), "mapped"), "%s", cellar_errmsg());
	cr_assert_eq(fs->map(fs, f, sizeof big, 0, &q), CELLAR_ENOMEM);
	cr_assert_eq(fs->unmap(fs, f, p, 4096), CELLAR_OK);
	/* unmapped: free to grow again */
	cr_assert_eq(fs->write_at(fs, f, 0, big, sizeof big), CELLAR_OK);
	cr_assert_eq(fs->unmap(fs, f, p, 4096), CELLAR_EINVAL);
	fs->close(fs, f);
	cellar_fs_free(fs);
}

Test(fs, mem_files_persist_until_free)
{
	cellar_fs *fs = tc_fs_new_named("mem");
	cellar_file *f = NULL;
	char buf[4];
	size_t got;

	cr_assert_eq(fs->mkdir(fs, "/s"), CELLAR_OK);
	cr_assert_eq(fs->open(fs, "/s/f", CELLAR_FS_WRITE | CELLAR_FS_CREATE,
	             &f), CELLAR_OK);
	cr_assert_eq(fs->write_at(fs, f, 0, "abc", 3), CELLAR_OK);
	cr_assert_eq(fs->close(fs, f), CELLAR_OK);
	cr_assert_eq(fs->open(fs, "/s/f", CELLAR_FS_READ, &f), CELLAR_OK);
	cr_assert_eq(fs->read_at(fs, f, 0, buf, 3, &got), CELLAR_OK);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	fs->close(fs, f);
	/* directories are not files */
	cr_assert_eq(fs->open(fs, "/s", CELLAR_FS_READ, &f), CELLAR_EIO);
	cr_assert_eq(fs->remove(fs, "/s"), CELLAR_EIO);
	cr_assert_eq(fs->mkdir(fs, "/"), CELLAR_EEXIST);
	cellar_fs_free(fs);
	cellar_fs_free(NULL);
}

Test(fs, mem_leaked_handles_and_mappings_are_freed_with_the_fs)
{
	cellar_fs *fs = tc_fs_new_named("mem");
	cellar_file *f = NULL;
	const void *p;

	cr_assert_eq(fs->open(fs, "/f", CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f),
	             CELLAR_OK);
	cr_assert_eq(fs->map(fs, f, 10, 0, &p), CELLAR_OK);
	cr_assert_eq(fs->close(fs, f), CELLAR_OK);
	cellar_fs_free(fs); /* the mapping goes too: no leak under ASan */
}

/* ---- threads ---------------------------------------------------------------- */

#define NTHREADS 4
#define PER_THREAD 500
#define REC 64

struct worker {
	struct env *e;
	cellar_file *f;
	int id;
	int bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	cellar_fs *fs = w->e->fs;
	unsigned char rec[REC], back[REC];

	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t off = ((uint64_t)i * NTHREADS + (uint64_t)w->id) * REC;
		size_t got;

		memset(rec, (w->id * 31 + i) & 0xff, sizeof rec);
		if (fs->write_at(fs, w->f, off, rec, REC) != CELLAR_OK)
			w->bad++;
		if (fs->read_at(fs, w->f, off, back, REC, &got) != CELLAR_OK ||
		    got != REC || memcmp(rec, back, REC) != 0)
			w->bad++;
		if (i > 0) {
			uint64_t prev = off - (uint64_t)NTHREADS * REC;
			if (fs->read_at(fs, w->f, prev, back, REC, &got) != CELLAR_OK ||
			    got != REC || back[0] != ((w->id * 31 + i - 1) & 0xff))
				w->bad++;
		}
	}
	return NULL;
}

static void check_threads(struct env *e)
{
	cellar_file *f = create(e, P(e, 0, "shared"));
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	uint64_t size;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ e, f, i, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(w[i].bad, 0, "[%s] thread %d saw %d errors", e->name, i,
		             w[i].bad);
	}
	cr_assert_eq(e->fs->size(e->fs, f, &size), CELLAR_OK);
	cr_assert_eq(size, (uint64_t)NTHREADS * PER_THREAD * REC);
	e->fs->close(e->fs, f);
}

Test(fs, concurrent_read_and_write_from_threads)
{
	each_fs(check_threads);
}

/* ---- the errno helper ------------------------------------------------------ */

Test(fs, errno_maps_to_cellar_codes_with_a_message)
{
	cr_assert_eq(fs__errno(ENOSPC, "write", "/x/0001.seg"), CELLAR_ENOSPC);
	cr_assert_str_eq(cellar_errmsg(),
	                 "write /x/0001.seg: No space left on device");
	cr_assert_eq(fs__errno(EDQUOT, "write", "/x"), CELLAR_ENOSPC);
	cr_assert_eq(fs__errno(ENOENT, "open", "/x"), CELLAR_ENOENT);
	cr_assert_eq(fs__errno(EEXIST, "mkdir", "/x"), CELLAR_EEXIST);
	cr_assert_eq(fs__errno(ENOMEM, "map", "/x"), CELLAR_ENOMEM);
	cr_assert_eq(fs__errno(EACCES, "open", "/x/LOCK"), CELLAR_EACCES);
	cr_assert_str_eq(cellar_errmsg(), "open /x/LOCK: Permission denied");
	cr_assert_eq(fs__errno(EPERM, "open", "/x"), CELLAR_EACCES);
	cr_assert_eq(fs__errno(EROFS, "open", "/x"), CELLAR_EACCES);
	cr_assert_eq(fs__errno(ENOTDIR, "open", "/etc/passwd/meta"), CELLAR_ENOENT);
	cr_assert_str_eq(cellar_errmsg(), "open /etc/passwd/meta: Not a directory");
	cr_assert_eq(fs__errno(EIO, "read", "/x"), CELLAR_EIO);
	cr_assert_eq(fs__errno(EWOULDBLOCK, "read", "/x"), CELLAR_EIO);
	cr_assert_eq(fs__lock_errno(EWOULDBLOCK, "/x/LOCK"), CELLAR_ELOCKED);
	cr_assert_eq(fs__lock_errno(EAGAIN, "/x/LOCK"), CELLAR_ELOCKED);
	cr_assert_eq(fs__lock_errno(EBADF, "/x/LOCK"), CELLAR_EIO);
}

Test(fs, constructors_reject_null_out)
{
	cr_assert_eq(cellar_fs_posix_new(NULL), CELLAR_EINVAL);
	cr_assert_eq(cellar_fs_mmap_new(NULL), CELLAR_EINVAL);
	cr_assert_eq(cellar_fs_mem_new(NULL), CELLAR_EINVAL);
}

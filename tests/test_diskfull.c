/*
 * test_diskfull.c - a real file system that fills up: an 8 MiB tmpfs
 * mounted for the test (root only; skipped, with the reason, elsewhere).
 *
 * Puts until the disk is full must fail with CELLAR_ENOSPC (or, once a
 * flush failed, CELLAR_EFAILED), never lose what was synced, and keep the
 * handle readable; the store reopens on the full disk with every synced
 * key; deletes there fail cleanly or succeed, and after another reopen
 * every synced key that was not deleted is there with its value.
 * Not yet covered: deleting and compacting to free space on a disk that
 * is full (a delete needs room for its tombstone).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "cellar.h"
#include "common.h"

#define VLEN 1000
#define MAXK 20000

static char mnt[64];
static char dir[128];
static int mounted;

static void setup(void)
{
	snprintf(mnt, sizeof mnt, "/tmp/cellar-full-XXXXXX");
	cr_assert_not_null(mkdtemp(mnt));
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
		rmdir(mnt);
		cr_skip_test("cannot mount a size-limited tmpfs here (%s): the "
		             "disk-full test needs root", strerror(errno));
	}
	mounted = 1;
	snprintf(dir, sizeof dir, "%s/store", mnt);
}

static void teardown(void)
{
	if (!mounted)
		return;
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

static size_t key_of(unsigned i, char *out)
{
	return (size_t)snprintf(out, 16, "key%06u", i);
}

static void val_of(unsigned i, unsigned char *out)
{
	for (unsigned j = 0; j < VLEN; j++)
		out[j] = (unsigned char)(i * 13 + j);
}

static cellar_db *open_rw(void)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;

	o.flags = CELLAR_CREATE;
	o.max_segment_size = 1u << 20;
	OK(cellar_open(&db, dir, &o));
	return db;
}

/* Every key below n not deleted[] reads back whole. */
static void check_keys(cellar_db *db, unsigned n, const char *deleted)
{
	unsigned char want[VLEN], got[VLEN];
	char k[16];

	for (unsigned i = 0; i < n; i++) {
		size_t len = 0;
		int rc = cellar_get(db, k, key_of(i, k), got, sizeof got, &len);
		if (deleted && deleted[i]) {
			cr_assert_eq(rc, CELLAR_ENOTFOUND, "deleted key %u: %s", i,
			             cellar_strerror(rc));
			continue;
		}
		cr_assert_eq(rc, CELLAR_OK, "synced key %u: %s (%s)", i,
		             cellar_strerror(rc), cellar_errmsg());
		val_of(i, want);
		cr_assert(len == VLEN && memcmp(got, want, VLEN) == 0, "key %u", i);
	}
}

Test(diskfull, full_disk_fails_puts_and_loses_nothing_synced,
     .init = setup, .fini = teardown)
{
	static char deleted[MAXK];
	unsigned char v[VLEN];
	unsigned synced = 0, i;
	char k[16];
	int rc = CELLAR_OK;
	cellar_db *db = open_rw();

	for (i = 0; i < MAXK; i++) {
		val_of(i, v);
		if ((rc = cellar_put(db, k, key_of(i, k), v, VLEN)) < 0)
			break;
		if (i % 50 == 49) {
			if ((rc = cellar_sync(db)) < 0)
				break;
			synced = i + 1;
		}
	}
	cr_assert_lt(i, MAXK, "8 MiB never filled up");
	cr_assert(rc == CELLAR_ENOSPC || rc == CELLAR_EFAILED, "a full disk "
	          "gives %s (%s)", cellar_strerror(rc), cellar_errmsg());
	cr_assert_gt(synced, 0);
	/* Reads go on. */
	check_keys(db, synced, NULL);
	val_of(0, v);
	rc = cellar_put(db, "more", 4, v, VLEN);
	cr_assert(rc == CELLAR_ENOSPC || rc == CELLAR_EFAILED, "%s",
	          cellar_strerror(rc));
	cellar_close(db); /* may fail: what was not synced may be lost */

	/*
	 * Reopen.  A delete writes a tombstone, so on a disk that is still
	 * full it fails too (CELLAR_ENOSPC, the store unchanged): deleting
	 * cannot drain a full disk (see the README's durability section).
	 * Whatever was deleted stays deleted, the rest stays.
	 */
	db = open_rw();
	check_keys(db, synced, NULL);
	for (i = 0; i < synced; i += 2) {
		rc = cellar_delete(db, k, key_of(i, k));
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOSPC ||
		          rc == CELLAR_EFAILED, "delete on a full disk: %s",
		          cellar_strerror(rc));
		if (rc < 0)
			break;
		deleted[i] = 1;
	}
	if (cellar_sync(db) < 0) /* unsynced deletes may be lost or not */
		for (i = 0; i < synced; i++)
			deleted[i] = 0;
	cellar_close(db);

	db = open_rw();
	for (i = 0; i < synced; i++) {
		unsigned char got[VLEN], want[VLEN];
		size_t len = 0;
		rc = cellar_get(db, k, key_of(i, k), got, sizeof got, &len);
		if (rc == CELLAR_ENOTFOUND && !deleted[i] && i % 2 == 0)
			continue; /* a delete that was written, but not synced */
		cr_assert_eq(rc, deleted[i] ? CELLAR_ENOTFOUND : CELLAR_OK,
		             "key %u: %s", i, cellar_strerror(rc));
		val_of(i, want);
		cr_assert(rc != CELLAR_OK || memcmp(got, want, VLEN) == 0);
	}
	cellar_close(db);
}

/* Take all but the last room bytes of the tmpfs with a file of the test's
 * own, beside the store, to be removed when space is to come back. */
static void fill_beside(const char *name, size_t bytes)
{
	static const char zeros[65536];
	char path[160];
	int fd;

	snprintf(path, sizeof path, "%s/%s", mnt, name);
	cr_assert((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	for (size_t done = 0; done < bytes; done += sizeof zeros)
		cr_assert_eq(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros,
		             "filler: %s", strerror(errno));
	close(fd);
}

static void unfill(const char *name)
{
	char path[160];

	snprintf(path, sizeof path, "%s/%s", mnt, name);
	cr_assert_eq(unlink(path), 0);
}

/* Put keys from *i on, syncing every 50, until a call fails: its code. */
static int put_until_full(cellar_db *db, unsigned *i, unsigned *synced)
{
	unsigned char v[VLEN];
	char k[16];
	int rc = CELLAR_OK;

	for (; *i < MAXK; ++*i) {
		val_of(*i, v);
		if ((rc = cellar_put(db, k, key_of(*i, k), v, VLEN)) < 0)
			return rc;
		if (*i % 50 == 49) {
			if ((rc = cellar_sync(db)) < 0) {
				++*i; /* this one's put returned CELLAR_OK */
				return rc;
			}
			*synced = *i + 1;
		}
	}
	cr_assert_fail("the disk never filled up");
	return rc;
}

/*
 * A write refused for lack of space leaves the handle writable: once space
 * is back (here: another file on the disk is removed), the sync that
 * failed succeeds, every put that returned CELLAR_OK is kept, and puts go
 * on.  Before, the failed flush refused every later write (CELLAR_EFAILED)
 * until the store was reopened.
 */
Test(diskfull, enospc_leaves_the_handle_writable_once_space_is_back,
     .init = setup, .fini = teardown)
{
	unsigned char v[VLEN];
	unsigned n = 0, synced = 0;
	char k[16];
	int rc;
	cellar_db *db;

	fill_beside("filler", 5u << 20);
	db = open_rw();
	rc = put_until_full(db, &n, &synced);
	cr_assert_eq(rc, CELLAR_ENOSPC, "a full disk gives %s (%s)",
	             cellar_strerror(rc), cellar_errmsg());
	ERR(CELLAR_ENOSPC, cellar_sync(db));
	check_keys(db, n, NULL); /* accepted puts read back, synced or not */
	unfill("filler");
	OK(cellar_sync(db));
	for (unsigned i = n; i < n + 100; i++) {
		val_of(i, v);
		OK(cellar_put(db, k, key_of(i, k), v, VLEN));
	}
	OK(cellar_close(db));
	db = open_rw();
	check_keys(db, n + 100, NULL);
	cellar_close(db);
}

/*
 * test_diskfull.c - a real file system that fills up: an 8 MiB tmpfs
 * mounted for the test (root only; skipped, with the reason, elsewhere).
 *
 * Puts until the disk is full must fail with CELLAR_ENOSPC (never
 * CELLAR_EFAILED: a full disk does not fail the handle), never lose what
 * was synced, and keep the handle readable; the store reopens on the full disk with every synced
 * key; deletes there fail cleanly or succeed, and after another reopen
 * every synced key that was not deleted is there with its value.
 * A write refused for lack of space no longer poisons the handle: once
 * space is back, the failed sync succeeds and puts go on.  With a reserve
 * (cellar_options.reserve_bytes), deletes and a compaction pass drain a
 * full disk and let puts in again.  The same on fault(mem) with a
 * capacity, crashing at every mutation (no root needed).
 *
 * Root: the tmpfs tests are skipped with the reason elsewhere; with
 * CELLAR_DISKFULL_REQUIRED set (CI does) they fail instead.
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
#include "fault.h"

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
		int err = errno;
		rmdir(mnt);
		/* CI (.ci/run, as root) sets this: there, a skip would hide
		 * that the real disk was never filled. */
		cr_assert(!getenv("CELLAR_DISKFULL_REQUIRED"), "cannot mount a "
		          "size-limited tmpfs (%s), and CELLAR_DISKFULL_REQUIRED "
		          "is set", strerror(err));
		cr_skip_test("cannot mount a size-limited tmpfs here (%s): the "
		             "disk-full test needs root", strerror(err));
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

static cellar_db *open_reserved(uint64_t reserve)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;

	o.flags = CELLAR_CREATE;
	o.max_segment_size = 1u << 20;
	o.reserve_bytes = reserve;
	OK(cellar_open(&db, dir, &o));
	return db;
}

static cellar_db *open_rw(void)
{
	return open_reserved(0);
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
	cr_assert(rc == CELLAR_ENOSPC, "a full disk gives %s (%s)",
	          cellar_strerror(rc), cellar_errmsg());
	cr_assert_gt(synced, 0);
	/* Reads go on. */
	check_keys(db, synced, NULL);
	val_of(0, v);
	ERR(CELLAR_ENOSPC, cellar_put(db, "more", 4, v, VLEN));
	cellar_close(db); /* may fail: what was not synced may be lost */

	/*
	 * Reopen.  A delete writes a tombstone, so on a disk that is still
	 * full it fails too (CELLAR_ENOSPC, the store unchanged): deleting
	 * cannot drain a full disk without a reserve (README, "A full disk").
	 * Whatever was deleted stays deleted, the rest stays.
	 */
	db = open_rw();
	check_keys(db, synced, NULL);
	for (i = 0; i < synced; i += 2) {
		rc = cellar_delete(db, k, key_of(i, k));
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOSPC,
		          "delete on a full disk: %s", cellar_strerror(rc));
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

/*
 * With a reserve, a full disk drains: the first put that meets it fails
 * with CELLAR_ENOSPC and gives the reserve's 2 MiB back, so that close
 * syncs every accepted put; after a reopen on the full disk (no room for
 * the reserve) puts still fail, deletes succeed and are synced, and a
 * compaction pass (one segment at a time) frees their space, makes the
 * reserve again and lets puts in.  Every step is checked after a reopen.
 * Without the reserve, that compaction had no room for its copies.
 */
Test(diskfull, reserve_lets_deletes_and_compaction_drain_a_full_disk,
     .init = setup, .fini = teardown)
{
	static char deleted[MAXK];
	cellar_compact_result res;
	unsigned char v[VLEN];
	unsigned n = 0, synced = 0, i;
	char k[16];
	int rc;
	cellar_db *db = open_reserved(2u << 20);

	rc = put_until_full(db, &n, &synced);
	cr_assert_eq(rc, CELLAR_ENOSPC, "%s (%s)", cellar_strerror(rc),
	             cellar_errmsg());
	val_of(0, v);
	ERR(CELLAR_ENOSPC, cellar_put(db, "more", 4, v, VLEN));
	check_keys(db, n, NULL);
	OK(cellar_close(db)); /* in the reserve's space: nothing is lost */

	db = open_reserved(2u << 20); /* no room for the reserve now */
	check_keys(db, n, NULL);
	val_of(0, v);
	ERR(CELLAR_ENOSPC, cellar_put(db, "more", 4, v, VLEN));
	for (i = 0; i < n; i += 2) {
		OK(cellar_delete(db, k, key_of(i, k)));
		deleted[i] = 1;
	}
	OK(cellar_sync(db));
	check_keys(db, n, deleted);
	OK(cellar_close(db));

	db = open_reserved(2u << 20);
	check_keys(db, n, deleted);
	OK(cellar_compact(db, &res));
	cr_assert_gt(res.segments_compacted, 0);
	cr_assert_gt(res.bytes_reclaimed, 2u << 20, "reclaimed %llu",
	             (unsigned long long)res.bytes_reclaimed);
	check_keys(db, n, deleted);
	for (i = 0; i < n; i += 2) { /* the deleted keys come back */
		val_of(i, v);
		OK(cellar_put(db, k, key_of(i, k), v, VLEN));
		deleted[i] = 0;
	}
	OK(cellar_sync(db));
	OK(cellar_close(db));

	db = open_reserved(2u << 20);
	check_keys(db, n, NULL);
	cellar_close(db);
}

/* ---- crash at every mutation while a full disk is drained ---------------- *
 *
 * On fault(mem) with a capacity (no root needed): puts fill the disk with a
 * reserve, deletes and a sync drain it, a compaction pass (one segment at a
 * time) frees the space, the reserve is made again and puts go on.  The
 * run is repeated with a crash at each mutation in turn, then a power cut;
 * the store must reopen with every key as the last successful sync left it
 * or as a later acknowledged write made it, never torn or resurrected.
 */

#define CK 240            /* keys */
#define CV 700            /* value bytes */
#define CCAP (900u << 10) /* the disk */
#define CRES (160u << 10) /* the reserve */

typedef struct cmodel {
	int synced[CK];          /* version as of the last sync, -1: absent */
	int latest[CK];          /* version of the last acknowledged write */
	unsigned char moved[CK]; /* written since the last sync */
	unsigned char gone[CK];  /* deleted since the last sync */
	int top[CK];             /* the highest version ever written */
} cmodel;

static void cval(unsigned k, int ver, unsigned char *out)
{
	uint64_t st = (uint64_t)k << 32 | (unsigned)ver;

	for (unsigned j = 0; j < CV; j += 8) {
		uint64_t r = tc_rand(&st);
		memcpy(out + j, &r, CV - j < 8 ? CV - j : 8);
	}
	out[0] = (unsigned char)k;
	out[1] = (unsigned char)(k >> 8);
	memcpy(out + 2, &ver, sizeof ver);
}

static void cm_synced(cmodel *m)
{
	for (unsigned k = 0; k < CK; k++) {
		m->synced[k] = m->latest[k];
		m->moved[k] = m->gone[k] = 0;
	}
}

static cellar_db *c_open(cellar_fs *fs, uint64_t reserve, int *rc)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;

	o.flags = CELLAR_CREATE;
	o.fs = fs;
	o.max_segment_size = 64u << 10;
	o.reserve_bytes = reserve;
	*rc = cellar_open(&db, "/df", &o);
	return db;
}

/* One step's result: go on, or stop (the machine is off).  In the run
 * without a crash every step must do what it is meant to. */
#define STEP(expr, want_ok)                                                   \
	do {                                                                  \
		int r_ = (expr);                                              \
		if (r_ < 0 && crashing)                                       \
			goto stop;                                            \
		if (want_ok)                                                  \
			cr_assert_eq(r_, CELLAR_OK, "%s: %s (%s)", #expr,     \
			             cellar_strerror(r_), cellar_errmsg());   \
	} while (0)

static int c_put(cellar_db *db, cmodel *m, unsigned k)
{
	unsigned char v[CV];
	char key[16];
	int ver = m->latest[k] + 1 > m->synced[k] + 1 ? m->latest[k] + 1
	                                              : m->synced[k] + 1;
	int rc;

	if (ver < 1)
		ver = 1;
	snprintf(key, sizeof key, "k%05u", k);
	cval(k, ver, v);
	if (ver > m->top[k])
		m->top[k] = ver; /* a failed put may be in the log (crash) */
	if ((rc = cellar_put(db, key, strlen(key), v, CV)) == CELLAR_OK) {
		m->latest[k] = ver;
		m->moved[k] = 1;
	}
	return rc;
}

static int c_del(cellar_db *db, cmodel *m, unsigned k)
{
	char key[16];
	int rc;

	snprintf(key, sizeof key, "k%05u", k);
	if ((rc = cellar_delete(db, key, strlen(key))) == CELLAR_OK) {
		m->latest[k] = -1;
		m->gone[k] = 1;
	}
	return rc == CELLAR_ENOTFOUND ? CELLAR_OK : rc;
}

/* The size of the store's reserve file now. */
static uint64_t reserve_size(cellar_fs *fs)
{
	cellar_file *f;
	uint64_t size = 0;

	OK(fs->open(fs, "/df/reserve", CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	fs->close(fs, f);
	return size;
}

/* The workload; with crashing, stop at the first failure. */
static void c_run(cellar_fs *fs, cmodel *m, int crashing)
{
	cellar_compact_result res;
	unsigned i = 0, k;
	int rc;
	cellar_db *db = c_open(fs, CRES, &rc);

	STEP(rc, 1);
	for (;; i++) { /* fill the disk */
		rc = c_put(db, m, i % CK);
		if (rc == CELLAR_ENOSPC)
			break;
		STEP(rc, 1);
		if (i % 40 == 39) {
			STEP(rc = cellar_sync(db), 1);
			cm_synced(m);
		}
		cr_assert_lt(i, 100000u, "the disk never filled");
	}
	if (!crashing) /* given up for the deletes and syncs to come */
		cr_assert_eq(reserve_size(fs), 0);
	for (k = 0; k < CK; k++)
		if (k % 3)
			STEP(c_del(db, m, k), 1);
	STEP(cellar_sync(db), 1);
	cm_synced(m);
	STEP(cellar_compact(db, &res), 1);
	if (!crashing) {
		cr_assert_gt(res.segments_compacted, 0);
		cr_assert_eq(reserve_size(fs), CRES, "made again");
	}
	for (k = 0; k < CK; k += 3)
		STEP(c_put(db, m, k), 1);
	STEP(cellar_sync(db), 1);
	cm_synced(m);
	for (k = 1; k < CK; k += 3) /* unsynced: any of them may survive */
		STEP(c_put(db, m, k), 1);
	rc = cellar_close(db);
	db = NULL;
	STEP(rc, 1);
	cm_synced(m);
stop:
	cellar_close(db);
}

/* After a power cut: each key as synced, or as a later acknowledged write. */
static void c_check_db(cellar_db *db, const cmodel *m, uint64_t at)
{
	unsigned char got[CV], want[CV];
	char key[16];
	int rc;

	for (unsigned k = 0; k < CK; k++) {
		size_t len = 0;
		int ver = -1;
		snprintf(key, sizeof key, "k%05u", k);
		rc = cellar_get(db, key, strlen(key), got, sizeof got, &len);
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOTFOUND,
		          "crash at %llu: key %u: %s", (unsigned long long)at, k,
		          cellar_strerror(rc));
		if (rc == CELLAR_OK) {
			cr_assert_eq(len, CV);
			memcpy(&ver, got + 2, sizeof ver);
			cval(k, ver, want);
			cr_assert(ver > 0 && memcmp(got, want, CV) == 0,
			          "crash at %llu: key %u: a value never written",
			          (unsigned long long)at, k);
		}
		int ok = ver == m->synced[k] ||
		         (m->moved[k] && ver > m->synced[k] && ver <= m->top[k]) ||
		         (ver == -1 && m->gone[k]);
		cr_assert(ok, "crash at %llu: key %u has version %d, synced %d",
		          (unsigned long long)at, k, ver, m->synced[k]);
	}
}

static void c_check(cellar_fs *fs, const cmodel *m, uint64_t at)
{
	int rc;
	cellar_db *db = c_open(fs, 0, &rc);

	cr_assert_eq(rc, CELLAR_OK, "crash at %llu: reopen: %s (%s)",
	             (unsigned long long)at, cellar_strerror(rc), cellar_errmsg());
	c_check_db(db, m, at);
	OK(cellar_close(db));
}

static void c_model_init(cmodel *m)
{
	for (unsigned k = 0; k < CK; k++) {
		m->synced[k] = m->latest[k] = m->top[k] = -1;
		m->moved[k] = m->gone[k] = 0;
	}
}

Test(diskfull, crash_at_every_mutation_while_a_full_disk_drains)
{
	cellar_fs *base, *fs;
	uint64_t total, step = 1;
	cmodel m;

	/* A run without a crash: every step does what it should, and how
	 * many mutations it makes. */
	OK(cellar_fs_mem_new(&base));
	OK(fault_fs_new(&fs, base));
	fault_fs_set_capacity(fs, CCAP);
	c_model_init(&m);
	c_run(fs, &m, 0);
	total = fault_fs_mutations(fs);
	c_check(fs, &m, 0);
	cellar_fs_free(fs);
	cellar_fs_free(base);
	if (total > 1500)
		step = total / 1500 + 1;
	for (uint64_t at = 1; at <= total; at += step) {
		OK(cellar_fs_mem_new(&base));
		OK(fault_fs_new(&fs, base));
		fault_fs_set_capacity(fs, CCAP);
		fault_fs_crash_at(fs, at);
		c_model_init(&m);
		c_run(fs, &m, 1);
		OK(fault_fs_power_cut(fs, at));
		fault_fs_set_capacity(fs, 0);
		c_check(fs, &m, at);
		cellar_fs_free(fs);
		cellar_fs_free(base);
	}
}

/*
 * A reopen on a full disk that must rebuild the index (its file is gone)
 * opens all the same, with every synced key: the checkpoint it would
 * write waits for the next one (close's, here, once there is room).
 * Before, the open failed with CELLAR_ENOSPC.
 */
Test(diskfull, reopen_on_a_full_disk_rebuilds_without_a_checkpoint)
{
	static const unsigned char chunk[4096];
	cellar_db_stats st;
	cellar_fs *base, *fs;
	cellar_file *f;
	cmodel m;
	int rc;
	cellar_db *db;

	OK(cellar_fs_mem_new(&base));
	OK(fault_fs_new(&fs, base));
	fault_fs_set_capacity(fs, CCAP);
	c_model_init(&m);
	db = c_open(fs, 0, &rc);
	OK(rc);
	for (unsigned i = 0; (rc = c_put(db, &m, i % CK)) == CELLAR_OK; i++)
		if (i % 40 == 39) {
			if ((rc = cellar_sync(db)) < 0)
				break;
			cm_synced(&m);
		}
	ERR(CELLAR_ENOSPC, rc);
	cellar_close(db); /* may fail: the disk is full */
	OK(fs->remove(fs, "/df/index"));
	OK(fs->open(fs, "/filler", CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	for (uint64_t off = 0; fs->write_at(fs, f, off, chunk, sizeof chunk) ==
	                       CELLAR_OK; off += sizeof chunk)
		;
	fs->close(fs, f);
	db = c_open(fs, 0, &rc);
	OK(rc);
	OK(cellar_stats(db, &st));
	cr_assert_eq(st.rebuilt_index, 1);
	c_check_db(db, &m, 0);
	OK(fs->remove(fs, "/filler"));
	fault_fs_set_capacity(fs, CCAP + (256u << 10)); /* and a larger disk */
	OK(cellar_close(db)); /* its checkpoint, in the room there is now */
	fault_fs_set_capacity(fs, 0);
	c_check(fs, &m, 0);
	cellar_fs_free(fs);
	cellar_fs_free(base);
}

/*
 * A record larger than the append buffer is written in place; refused for
 * lack of space, its part is cut off the file again: the records written
 * next follow the log directly, and the store verifies clean.
 */
Test(diskfull, a_large_record_refused_for_space_leaves_no_remains)
{
	size_t big = 3u << 20;
	unsigned char *v = calloc(1, big);
	cellar_verify_options vo = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_verify_report rep;
	cellar_fs *base, *fs;
	cmodel m;
	int rc;
	cellar_db *db;

	cr_assert_not_null(v);
	OK(cellar_fs_mem_new(&base));
	OK(fault_fs_new(&fs, base));
	c_model_init(&m);
	db = c_open(fs, 0, &rc);
	OK(rc);
	for (unsigned k = 0; k < 50; k++)
		OK(c_put(db, &m, k));
	OK(cellar_sync(db));
	cm_synced(&m);
	fault_fs_set_capacity(fs, 2u << 20);
	ERR(CELLAR_ENOSPC, cellar_put(db, "big", 3, v, big));
	fault_fs_set_capacity(fs, 0); /* room again */
	for (unsigned k = 50; k < 100; k++)
		OK(c_put(db, &m, k));
	OK(cellar_close(db));
	cm_synced(&m);
	vo.fs = fs;
	OK(cellar_verify("/df", &vo, &rep));
	cr_assert_eq(rep.problems, 0, "%llu problems after the refused record",
	             (unsigned long long)rep.problems);
	cr_assert_eq(rep.puts, 100);
	c_check(fs, &m, 0);
	db = c_open(fs, 0, &rc);
	OK(rc);
	ERR(CELLAR_ENOTFOUND, cellar_has(db, "big", 3));
	OK(cellar_close(db));
	cellar_fs_free(fs);
	cellar_fs_free(base);
	free(v);
}

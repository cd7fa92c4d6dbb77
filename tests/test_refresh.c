/*
 * test_refresh.c - cellar_refresh: a read-only handle following its
 * store's writer (appends, roll-overs, compaction) and builds published in
 * its place, and the read-only open's atomicity against both.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define KEYS 2048

static tc_store w;  /* the writer */
static cellar_db *r; /* a read-only handle on the same store */

static void key_of(char k[17], uint64_t i)
{
	snprintf(k, 17, "key%013llu", (unsigned long long)i);
}

/* A value that names its key and its version, of a length that varies. */
static size_t val_of(char *v, uint64_t i, unsigned ver)
{
	int n = snprintf(v, 96, "v%u-%llu-", ver, (unsigned long long)i);

	for (; n < (int)(20 + (i * 7 + ver) % 60); n++)
		v[n] = (char)('a' + (i + ver + (unsigned)n) % 26);
	return (size_t)n;
}

static cellar_db *open_ro(void)
{
	cellar_options o = w.o;
	cellar_db *db;

	o.flags = CELLAR_READONLY;
	OK(cellar_open(&db, w.dir, &o));
	return db;
}

static void setup(void)
{
	tc_store_new(&w, 64 << 10); /* small segments: roll-overs */
	r = NULL;
}

static void teardown(void)
{
	cellar_close(r);
	tc_store_free(&w);
}

static void put_all(unsigned ver, uint64_t from, uint64_t to)
{
	char k[17], v[96];

	for (uint64_t i = from; i < to; i++) {
		key_of(k, i);
		OK(cellar_put(w.db, k, 16, v, val_of(v, i, ver)));
	}
}

/* db holds key i with version ver (0: absent). */
static void expect(cellar_db *db, uint64_t i, unsigned ver)
{
	char k[17], want[96], got[96];
	size_t len = 0;

	key_of(k, i);
	if (!ver) {
		ERR(CELLAR_ENOTFOUND, cellar_get(db, k, 16, got, sizeof got, &len));
		return;
	}
	size_t wl = val_of(want, i, ver);
	OK(cellar_get(db, k, 16, got, sizeof got, &len));
	cr_assert_eq(len, wl, "key %llu: length %zu, want %zu",
	             (unsigned long long)i, len, wl);
	cr_assert_arr_eq(got, want, wl, "key %llu: wrong bytes (want version %u)",
	                 (unsigned long long)i, ver);
}

static uint64_t stat_of(cellar_db *db, size_t field)
{
	cellar_db_stats st;

	OK(cellar_stats_sized(db, &st, sizeof st));
	return *(uint64_t *)((char *)&st + field);
}

#define STAT(db, f) stat_of(db, offsetof(cellar_db_stats, f))

TestSuite(refresh, .init = setup, .fini = teardown);

Test(refresh, errors)
{
	ERR(CELLAR_EINVAL, cellar_refresh(NULL));
	ERR(CELLAR_EINVAL, cellar_refresh(w.db));
	cr_assert_str_neq(cellar_errmsg(), "");
}

Test(refresh, sees_what_the_writer_appended_since)
{
	put_all(1, 0, KEYS / 2);
	OK(cellar_sync(w.db));
	r = open_ro();
	put_all(2, KEYS / 4, KEYS); /* overwrite some, add more */
	char k[17];
	key_of(k, 3);
	OK(cellar_delete(w.db, k, 16));
	OK(cellar_sync(w.db));

	/* Before: the handle still reads what it opened. */
	expect(r, 3, 1);
	expect(r, KEYS / 4, 1);
	expect(r, KEYS - 1, 0);
	OK(cellar_refresh(r));
	for (uint64_t i = 0; i < KEYS; i++)
		expect(r, i, i == 3 ? 0 : i < KEYS / 4 ? 1 : 2);
	uint64_t n;
	OK(cellar_count(r, &n));
	cr_assert_eq(n, KEYS - 1);
	cr_assert_eq(STAT(r, refreshes), 1);
	cr_assert_eq(STAT(r, refresh_reloads), 0, "appends need no reload");
	cr_assert_geq(STAT(r, refreshed_records), KEYS - KEYS / 4 + 1);
	cr_assert_gt(STAT(r, segments), 1, "small segments rolled over");

	/* Nothing new: a refresh changes nothing. */
	OK(cellar_refresh(r));
	expect(r, KEYS - 1, 2);
	cr_assert_eq(STAT(r, refresh_reloads), 0);
}

Test(refresh, from_an_empty_store)
{
	OK(cellar_sync(w.db));
	r = open_ro();
	expect(r, 0, 0);
	put_all(1, 0, KEYS);
	OK(cellar_sync(w.db));
	OK(cellar_refresh(r));
	for (uint64_t i = 0; i < KEYS; i++)
		expect(r, i, 1);
}

Test(refresh, leaves_unsynced_bytes_in_the_writers_buffer_alone)
{
	put_all(1, 0, 8);
	OK(cellar_sync(w.db));
	r = open_ro();
	put_all(2, 0, 8); /* in the append buffer, not the file */
	OK(cellar_refresh(r));
	expect(r, 0, 1);
	OK(cellar_sync(w.db));
	OK(cellar_refresh(r));
	expect(r, 0, 2);
}

Test(refresh, reloads_after_a_compaction_and_old_handles_keep_reading)
{
	put_all(1, 0, KEYS);
	put_all(2, 0, KEYS / 2);
	OK(cellar_sync(w.db));
	r = open_ro();
	cellar_db *old = open_ro();
	put_all(3, KEYS / 2, KEYS);
	char k[17];
	for (uint64_t i = 0; i < KEYS; i += 10) {
		key_of(k, i); /* tombstones the pass may drop with their puts */
		OK(cellar_delete(w.db, k, 16));
	}
	cellar_compact_result res;
	OK(cellar_compact(w.db, &res));
	cr_assert_gt(res.segments_compacted, 0, "the pass removed segments");

	OK(cellar_refresh(r));
	cr_assert_eq(STAT(r, refresh_reloads), 1, "removed segments: a reload");
	for (uint64_t i = 0; i < KEYS; i++) {
		expect(r, i, i % 10 == 0 ? 0 : i < KEYS / 2 ? 2 : 3);
		expect(old, i, i < KEYS / 2 ? 2 : 1); /* the version it opened */
	}
	OK(cellar_close(old));
}

Test(refresh, with_an_iterator_open)
{
	put_all(1, 0, 16);
	OK(cellar_sync(w.db));
	r = open_ro();
	cellar_iter *it;
	OK(cellar_iter_new(r, &it));
	put_all(2, 16, 32);
	OK(cellar_sync(w.db));
	OK(cellar_refresh(r)); /* appends: the iterator goes on */
	size_t seen = 0;
	while (cellar_iter_next(it, NULL, NULL, NULL, NULL) == CELLAR_OK)
		seen++;
	cr_assert_eq(seen, 32, "the iterator also meets what the refresh added");

	cellar_compact_result res;
	put_all(3, 0, 32);
	OK(cellar_compact(w.db, &res));
	ERR(CELLAR_EBUSY, cellar_refresh(r)); /* a reload waits for iterators */
	expect(r, 0, 1);
	cellar_iter_free(it);
	OK(cellar_refresh(r));
	expect(r, 0, 3);
}

Test(refresh, a_record_still_being_written_waits)
{
	put_all(1, 0, 3);
	tc_store_close(&w); /* a checkpoint covering keys 0..2 */
	tc_store_open(&w);
	put_all(1, 3, 4); /* in the log only, past the checkpoint */
	OK(cellar_sync(w.db));
	uint64_t seg = STAT(w.db, segments);

	/* Cut the newest segment inside its last record, as a reader may find
	 * it while the writer's write is under way. */
	char path[512];
	cellar_file *f;
	uint64_t size;
	snprintf(path, sizeof path, "%s/%016llx.seg", w.dir,
	         (unsigned long long)seg);
	OK(w.fs->open(w.fs, path, CELLAR_FS_WRITE, &f));
	OK(w.fs->size(w.fs, f, &size));
	uint8_t tail[10];
	size_t got;
	OK(w.fs->read_at(w.fs, f, size - sizeof tail, tail, sizeof tail, &got));
	OK(w.fs->truncate(w.fs, f, size - sizeof tail));

	r = open_ro();
	expect(r, 2, 1);
	expect(r, 3, 0);
	OK(cellar_refresh(r));
	expect(r, 3, 0);
	cr_assert_eq(STAT(r, damaged_bytes), 0, "not damage");
	OK(w.fs->write_at(w.fs, f, size - sizeof tail, tail, sizeof tail));
	OK(w.fs->close(w.fs, f));
	OK(cellar_refresh(r));
	expect(r, 3, 1);
}

/* ---- builds published in the store's place -------------------------------- */

static void build(unsigned ver, uint64_t n)
{
	cellar_build_options o = CELLAR_BUILD_OPTIONS_INIT;
	cellar_builder *b;
	char k[17], v[96];

	o.fs = w.fs;
	OK(cellar_builder_open(&b, w.dir, &o));
	for (uint64_t i = 0; i < n; i++) {
		key_of(k, i);
		OK(cellar_builder_add(b, k, 16, v, val_of(v, i, ver)));
	}
	OK(cellar_builder_finish(b));
	cellar_builder_abort(b);
}

Test(refresh, moves_to_a_published_build)
{
	put_all(1, 0, KEYS);
	tc_store_close(&w);
	r = open_ro();
	cellar_db *old = open_ro();
	build(2, KEYS / 2);

	expect(r, 0, 1);
	OK(cellar_refresh(r));
	cr_assert_eq(STAT(r, refresh_reloads), 1);
	for (uint64_t i = 0; i < KEYS; i++) {
		expect(r, i, i < KEYS / 2 ? 2 : 0);
		expect(old, i, 1);
	}
	build(3, KEYS);
	OK(cellar_refresh(r));
	OK(cellar_refresh(old)); /* two publications at once */
	for (uint64_t i = 0; i < KEYS; i++) {
		expect(r, i, 3);
		expect(old, i, 3);
	}
	OK(cellar_close(old));
}

/* Mappings of deleted segment files this process still has. */
static int deleted_segment_maps(void)
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[1024];
	int n = 0;

	cr_assert_not_null(m);
	while (fgets(line, sizeof line, m))
		if (strstr(line, ".seg (deleted)"))
			n++;
	fclose(m);
	return n;
}

Test(refresh, frees_the_old_version_when_it_lets_go)
{
	if (strcmp(tc_fs_name(), "mmap") != 0)
		cr_skip_test("only the mmap file system maps files");
	put_all(1, 0, KEYS);
	tc_store_close(&w);
	r = open_ro();
	int before = deleted_segment_maps();
	build(2, KEYS);
	cr_assert_gt(deleted_segment_maps(), before,
	             "the old store's files are removed but still mapped");
	expect(r, 5, 1);
	OK(cellar_refresh(r));
	cr_assert_eq(deleted_segment_maps(), before, "and let go at the refresh");
	expect(r, 5, 2);
}

/* ---- opening while builds are published --------------------------------- */

static atomic_int publishing;

static void *publisher(void *arg)
{
	(void)arg;
	for (unsigned ver = 2; ver < 12; ver++)
		build(ver, 64);
	atomic_store(&publishing, 0);
	return NULL;
}

/* Every key of the handle has the same version; return it. */
static unsigned one_version(cellar_db *db)
{
	char k[17], got[96];
	unsigned ver = 0;
	size_t len;

	for (uint64_t i = 0; i < 64; i++) {
		unsigned v;
		key_of(k, i);
		OK(cellar_get(db, k, 16, got, sizeof got - 1, &len));
		got[len] = '\0';
		cr_assert_eq(sscanf(got, "v%u-", &v), 1);
		cr_assert(ver == 0 || v == ver, "a mix: versions %u and %u", ver, v);
		ver = v;
		expect(db, i, v);
	}
	return ver;
}

Test(refresh, open_and_refresh_see_one_build_whole_while_builds_land)
{
	pthread_t t;

	put_all(1, 0, 64);
	tc_store_close(&w);
	r = open_ro();
	atomic_store(&publishing, 1);
	cr_assert_eq(pthread_create(&t, NULL, publisher, NULL), 0);
	unsigned last = 1, opens = 0;
	while (atomic_load(&publishing)) {
		cellar_db *db = open_ro();
		one_version(db);
		OK(cellar_close(db));
		OK(cellar_refresh(r));
		unsigned v = one_version(r);
		cr_assert_geq(v, last, "a refresh never goes back");
		last = v;
		opens++;
	}
	pthread_join(t, NULL);
	OK(cellar_refresh(r));
	cr_assert_eq(one_version(r), 11);
	cr_assert_gt(opens, 0);
}

/* ---- reader processes following a writer -------------------------------- */

#define PKEYS 400
#define NPROCS 3

/* A reader process: refresh every period ms until <dir>.done exists, check
 * every value it reads, then check the final state <dir>.model names. */
static int reader_process(const char *dir, int id)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	unsigned seen[PKEYS] = { 0 };
	char done[600], k[17], got[96], want[96];
	uint64_t s = (uint64_t)id + 1;
	cellar_db *db;
	size_t len;

	snprintf(done, sizeof done, "%s.done", dir);
	o.flags = CELLAR_READONLY;
	o.fs = tc_fs_new();
	if (cellar_open(&db, dir, &o) != CELLAR_OK)
		return 10;
	for (int round = 0;; round++) {
		int finished = access(done, F_OK) == 0;
		if (cellar_refresh(db) != CELLAR_OK)
			return 11;
		for (int n = 0; n < 200; n++) {
			uint64_t i = tc_rand(&s) % PKEYS;
			unsigned ver;
			key_of(k, i);
			int rc = cellar_get(db, k, 16, got, sizeof got - 1, &len);
			if (rc == CELLAR_ENOTFOUND)
				continue; /* deleted, or not yet written */
			if (rc != CELLAR_OK)
				return 12;
			got[len] = '\0';
			if (sscanf(got, "v%u-", &ver) != 1 ||
			    len != val_of(want, i, ver) || memcmp(got, want, len) != 0)
				return 13; /* a wrong value */
			if (ver < seen[i])
				return 14; /* went back in time */
			seen[i] = ver;
		}
		if (finished)
			break;
		usleep((useconds_t)(2000 + 3000 * id));
	}
	/* The writer closed before done appeared: the last refresh saw all. */
	char mpath[600];
	unsigned model[PKEYS];
	snprintf(mpath, sizeof mpath, "%s.model", dir);
	FILE *m = fopen(mpath, "rb");
	if (!m || fread(model, sizeof model, 1, m) != 1)
		return 15;
	fclose(m);
	for (uint64_t i = 0; i < PKEYS; i++) {
		key_of(k, i);
		int rc = cellar_get(db, k, 16, got, sizeof got, &len);
		if (model[i] == 0 ? rc != CELLAR_ENOTFOUND
		                  : rc != CELLAR_OK || len != val_of(want, i, model[i]) ||
		                        memcmp(got, want, len) != 0)
			return 16;
	}
	cellar_close(db);
	cellar_fs_free(o.fs);
	return 0;
}

Test(refresh, reader_processes_follow_a_writer_that_compacts)
{
	if (strcmp(tc_fs_name(), "mem") == 0)
		cr_skip_test("processes share files only on a real file system");
	unsigned model[PKEYS] = { 0 }, ver = 1;
	pid_t pid[NPROCS];
	uint64_t s = 99;
	char k[17], v[96], path[600];

	put_all(ver, 0, PKEYS / 2);
	for (uint64_t i = 0; i < PKEYS / 2; i++)
		model[i] = ver;
	OK(cellar_sync(w.db));
	for (int p = 0; p < NPROCS; p++) {
		fflush(NULL);
		if ((pid[p] = fork()) == 0)
			_exit(reader_process(w.dir, p));
		cr_assert_gt(pid[p], 0);
	}
	unsigned compactions = 0;
	for (int op = 1; op <= 20000; op++) {
		uint64_t i = tc_rand(&s) % PKEYS;
		key_of(k, i);
		if (tc_rand(&s) % 5 == 0) {
			int rc = cellar_delete(w.db, k, 16);
			cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOTFOUND);
			model[i] = 0;
		} else {
			OK(cellar_put(w.db, k, 16, v, val_of(v, i, ++ver)));
			model[i] = ver;
		}
		if (op % 200 == 0)
			OK(cellar_sync(w.db));
		if (op % 4000 == 0) {
			OK(cellar_compact(w.db, NULL));
			compactions++;
		}
	}
	tc_store_close(&w);
	snprintf(path, sizeof path, "%s.model", w.dir);
	FILE *m = fopen(path, "wb");
	cr_assert_not_null(m);
	cr_assert_eq(fwrite(model, sizeof model, 1, m), 1);
	fclose(m);
	snprintf(path, sizeof path, "%s.done", w.dir);
	fclose(fopen(path, "w"));
	for (int p = 0; p < NPROCS; p++) {
		int st = 0;
		cr_assert_eq(waitpid(pid[p], &st, 0), pid[p]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		          "reader process %d: exit status %d", p,
		          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	cr_assert_eq(compactions, 5);
	remove(path);
	snprintf(path, sizeof path, "%s.model", w.dir);
	remove(path);
}

Test(refresh, a_store_gone_is_an_error_and_the_handle_keeps_serving)
{
	char path[600];

	put_all(1, 0, 16);
	tc_store_close(&w);
	r = open_ro();
	snprintf(path, sizeof path, "%s/meta", w.dir);
	OK(w.fs->remove(w.fs, path));
	ERR(CELLAR_ENOENT, cellar_refresh(r));
	expect(r, 7, 1);
	cr_assert_eq(STAT(r, refreshes), 0);
}

/*
 * test_writer.c - the write engine (src/writer.h) through a store's own
 * writer: puts and deletes and their counters, what compaction asks of it
 * (copy-if-still-at, carrying a tombstone, batches, dropping segments), the
 * failure state and the checkpoint schedule.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "fault.h"
#include "handle.h"
#include "testhook.h"
#include "writer.h"

static tc_store S;

static void setup(void)
{
	tc_store_new(&S, 0);
}

static void teardown(void)
{
	tc_store_free(&S);
}

static writer *W(void)
{
	return &S.db->w;
}

/* Where the index says key's record is. */
static void where(const char *key_, uint16_t *seg, uint32_t *off)
{
	/* Through a volatile: gcc 12 warns about XXH3's long-input path when
	 * it specialises the hash for a constant one-byte key. */
	const char *volatile keyv = key_;
	const char *key = keyv;
	seg_key k = { &S.db->segs, key, strlen(key), 0, 0 };
	index_ref ref;

	OK(index_find(S.db->ix, db_hash(S.db, key, strlen(key)), segset_match_key,
	              &k, &ref));
	cr_assert(ref.found, "%s is not in the index", key);
	*seg = ref.old_seg;
	*off = ref.old_off;
}

static void expect_value(const char *key, const char *want)
{
	char buf[64];
	size_t n = 0;

	OK(cellar_get(S.db, key, strlen(key), buf, sizeof buf, &n));
	cr_assert_eq(n, strlen(want));
	cr_assert_arr_eq(buf, want, n);
}

Test(writer, put_and_delete_count_only_what_they_did, .init = setup,
     .fini = teardown)
{
	writer_lock(W());
	OK(writer_put(W(), "a", 1, "1", 1));
	OK(writer_put(W(), "a", 1, "2", 1));
	ERR(CELLAR_ENOTFOUND, writer_delete(W(), "b", 1));
	OK(writer_delete(W(), "a", 1));
	writer_unlock(W());
	cr_assert_eq(atomic_load(&W()->puts), 2);
	cr_assert_eq(atomic_load(&W()->deletes), 1);
	ERR(CELLAR_ENOTFOUND, cellar_get(S.db, "a", 1, NULL, 0, NULL));
}

Test(writer, copy_if_at_copies_only_the_current_record, .init = setup,
     .fini = teardown)
{
	uint16_t seg, seg2;
	uint32_t off, off2;
	int copied = -1;

	OK(cellar_put(S.db, "k", 1, "old", 3));
	where("k", &seg, &off);
	writer_lock(W());
	OK(writer_copy_if_at(W(), "k", 1, "old", 3, 0, seg, off, &copied));
	writer_unlock(W());
	cr_assert_eq(copied, 1);
	where("k", &seg2, &off2);
	cr_assert(seg2 != seg || off2 != off, "the index still names the original");
	expect_value("k", "old");
	/* The original is no longer current: nothing is written. */
	uint64_t before = S.db->segs.list[S.db->segs.n - 1]->size;
	writer_lock(W());
	OK(writer_copy_if_at(W(), "k", 1, "old", 3, 0, seg, off, &copied));
	writer_unlock(W());
	cr_assert_eq(copied, 0);
	cr_assert_eq(S.db->segs.list[S.db->segs.n - 1]->size, before);
	/* Neither is a key that is gone. */
	OK(cellar_delete(S.db, "k", 1));
	writer_lock(W());
	OK(writer_copy_if_at(W(), "k", 1, "old", 3, 0, seg2, off2, &copied));
	writer_unlock(W());
	cr_assert_eq(copied, 0);
	cr_assert_eq(atomic_load(&W()->puts), 1, "copies are not puts");
}

Test(writer, tombstone_is_carried_only_for_an_absent_key, .init = setup,
     .fini = teardown)
{
	int carried = -1;
	segment *g;

	OK(cellar_put(S.db, "here", 4, "v", 1));
	writer_lock(W());
	OK(writer_carry_tombstone(W(), "here", 4, &carried));
	cr_assert_eq(carried, 0);
	OK(writer_carry_tombstone(W(), "gone", 4, &carried));
	writer_unlock(W());
	cr_assert_eq(carried, 1);
	g = S.db->segs.list[S.db->segs.n - 1];
	/* Dead weight that stays: counted dead and kept, the index untouched. */
	cr_assert_gt(g->kept, 0);
	cr_assert_geq(g->dead, g->kept);
	uint64_t n;
	OK(cellar_count(S.db, &n));
	cr_assert_eq(n, 1);
	expect_value("here", "v");
}

Test(writer, a_batch_holds_the_mutex, .init = setup, .fini = teardown)
{
	writer_batch_begin(W());
	cr_assert_eq(pthread_mutex_trylock(&W()->mutex), EBUSY);
	writer_batch_end(W());
	cr_assert_eq(pthread_mutex_trylock(&W()->mutex), 0);
	pthread_mutex_unlock(&W()->mutex);
}

Test(writer, dropped_segments_are_removed_after_a_checkpoint, .init = setup,
     .fini = teardown)
{
	cellar_db_stats st;

	OK(cellar_put(S.db, "a", 1, "1", 1));
	writer_lock(W());
	OK(writer_roll(W()));
	cr_assert_eq(S.db->segs.n, 2);
	OK(writer_put(W(), "a", 1, "2", 1));
	segment *old = S.db->segs.list[0];
	uint64_t seq = old->seq;
	writer_drop_segment(W(), old);
	OK(writer_sync(W(), 1));
	writer_unlock(W());
	OK(writer_remove_dropped(W(), &seq, 1)); /* takes the mutex itself */
	OK(cellar_stats(S.db, &st));
	cr_assert_eq(st.segments, 1);
	tc_store_reopen(&S);
	expect_value("a", "2");
	OK(cellar_stats(S.db, &st));
	cr_assert_eq(st.segments, 1);
}

Test(writer, background_error_refuses_writes_until_cleared, .init = setup,
     .fini = teardown)
{
	OK(writer_refused(W()));
	writer_set_bg_error(W(), CELLAR_ENOSPC);
	ERR(CELLAR_ENOSPC, writer_refused(W()));
	cr_assert(strstr(cellar_errmsg(), "background compaction failed"),
	          "message: %s", cellar_errmsg());
	ERR(CELLAR_ENOSPC, cellar_put(S.db, "a", 1, "1", 1));
	OK(writer_failed(W()));
	writer_clear_bg_error(W());
	OK(cellar_put(S.db, "a", 1, "1", 1));
}

Test(writer, failed_fsync_poisons_every_later_write)
{
	cellar_fs *base = tc_fs_new_named("mem"), *fs;
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;

	OK(fault_fs_new(&fs, base));
	o.flags = CELLAR_CREATE;
	o.fs = fs;
	OK(cellar_open(&db, dir, &o));
	OK(cellar_put(db, "a", 1, "1", 1));
	fault_fs_fail(fs, FAULT_SYNC, fault_fs_count(fs, FAULT_SYNC) + 1,
	              CELLAR_EIO, 0);
	writer_lock(&db->w);
	ERR(CELLAR_EIO, writer_sync(&db->w, 0));
	ERR(CELLAR_EFAILED, writer_failed(&db->w));
	cr_assert(strstr(cellar_errmsg(), "an earlier write failed"),
	          "message: %s", cellar_errmsg());
	ERR(CELLAR_EFAILED, writer_refused(&db->w));
	ERR(CELLAR_EFAILED, writer_sync(&db->w, 1));
	writer_unlock(&db->w);
	ERR(CELLAR_EFAILED, cellar_put(db, "b", 1, "2", 1));
	ERR(CELLAR_EFAILED, cellar_close(db));
	cellar_fs_free(fs);
	cellar_fs_free(base);
	tc_dir_free(dir);
}

Test(writer, checkpoint_falls_due_as_the_log_grows, .init = setup,
     .fini = teardown)
{
	char key[16], val[100];

	memset(val, 'v', sizeof val);
	writer_lock(W());
	OK(writer_sync(W(), 1));
	cr_assert_not(writer_ckpt_due(W()));
	/* The smallest schedule is 8 MiB of log past the checkpoint. */
	for (int i = 0; !writer_ckpt_due(W()); i++) {
		snprintf(key, sizeof key, "k%08d", i);
		OK(writer_put(W(), key, strlen(key), val, sizeof val));
		cr_assert_lt(i, 200000, "never due");
	}
	cr_assert_geq(W()->log_since_ckpt, 8u << 20);
	OK(writer_sync(W(), 0));
	cr_assert_eq(W()->log_since_ckpt, 0, "the due checkpoint was not written");
	cr_assert_not(writer_ckpt_due(W()));
	writer_unlock(W());
}

/* ---- checkpoints off the writer's path ------------------------------------ */

/* What the checkpoint hook does while a checkpoint is being written. */
static struct {
	cellar_db *db;
	int puts;          /* keys "d0".."d<puts-1>" put from inside */
	cellar_fs *fault;  /* arm a failed write of the checkpoint file */
	unsigned sleep_ms; /* then wait this long */
	atomic_int inside; /* the hook has run (and is running) */
} hook;

static void ckpt_hook(void *ctx)
{
	(void)ctx;
	atomic_store(&hook.inside, 1);
	for (int i = 0; i < hook.puts; i++) {
		char key[16];
		snprintf(key, sizeof key, "d%d", i);
		OK(cellar_put(hook.db, key, strlen(key), "during", 6));
	}
	if (hook.fault)
		fault_fs_fail(hook.fault, FAULT_WRITE,
		              fault_fs_count(hook.fault, FAULT_WRITE) + 1,
		              CELLAR_EIO, 0);
	if (hook.sleep_ms) {
		struct timespec ts = { 0, (long)hook.sleep_ms * 1000000L };
		nanosleep(&ts, NULL);
	}
	atomic_store(&hook.inside, 2);
}

static void hook_set(cellar_db *db, int puts, cellar_fs *fault,
                     unsigned sleep_ms)
{
	hook.db = db;
	hook.puts = puts;
	hook.fault = fault;
	hook.sleep_ms = sleep_ms;
	atomic_store(&hook.inside, 0);
	cellar__test_set_ckpt_hook(ckpt_hook, NULL);
}

/* Put enough to make a checkpoint due at the next sync. */
static void make_ckpt_due(cellar_db *db, const char *prefix)
{
	char key[32], val[100];

	memset(val, 'v', sizeof val);
	for (int i = 0; !writer_ckpt_due(&db->w); i++) {
		snprintf(key, sizeof key, "%s%08d", prefix, i);
		OK(cellar_put(db, key, strlen(key), val, sizeof val));
	}
}

static uint64_t stat_checkpoints(cellar_db *db, uint64_t *failures,
                                 uint64_t *copied)
{
	cellar_db_stats st;

	OK(cellar_stats_sized(db, &st, sizeof st));
	if (failures)
		*failures = st.checkpoint_failures;
	if (copied)
		*copied = st.ckpt_chunks_copied;
	return st.checkpoints;
}

Test(writer, writes_during_a_checkpoint_land_in_the_next_one, .init = setup,
     .fini = teardown)
{
	cellar__debug_info d;
	uint64_t copied, before = stat_checkpoints(S.db, NULL, NULL);

	make_ckpt_due(S.db, "k");
	hook_set(S.db, 50, NULL, 0);
	OK(cellar_sync(S.db)); /* the hook puts d0..d49 mid-checkpoint */
	cellar__test_set_ckpt_hook(NULL, NULL);
	cr_assert_eq(atomic_load(&hook.inside), 2, "no checkpoint was written");
	cr_assert_eq(stat_checkpoints(S.db, NULL, &copied), before + 1);
	cr_assert_gt(copied, 0, "the puts changed no frozen chunk");
	/* Only what the frozen version covered stopped counting. */
	cr_assert_gt(W()->log_since_ckpt, 0, "the puts during it were counted "
	             "as checkpointed");
	expect_value("d7", "during");
	/* The published checkpoint does not hold them: a reader replays
	 * them past it (once they are in the file). */
	OK(cellar_sync(S.db)); /* not due: no checkpoint */
	cr_assert_eq(stat_checkpoints(S.db, NULL, NULL), before + 1);
	cellar_options ro = S.o;
	cellar_db *rdb;
	char buf[128];
	size_t n = 0;
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&rdb, S.dir, &ro));
	OK(cellar__debug(rdb, &d));
	cr_assert_geq(d.replayed_records, 50, "replayed %llu",
	              (unsigned long long)d.replayed_records);
	OK(cellar_get(rdb, "d7", 2, buf, sizeof buf, &n));
	cr_assert_eq(n, 6);
	OK(cellar_close(rdb));
	/* The next checkpoint holds them. */
	OK(cellar_close(S.db));
	S.db = NULL;
	OK(cellar_open(&rdb, S.dir, &ro));
	OK(cellar__debug(rdb, &d));
	cr_assert_eq(d.replayed_records, 0);
	OK(cellar_get(rdb, "d49", 3, buf, sizeof buf, &n));
	OK(cellar_close(rdb));
	tc_store_open(&S);
}

Test(writer, a_failed_checkpoint_write_keeps_the_last_and_is_retried)
{
	cellar_fs *base = tc_fs_new_named("mem"), *fs;
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar__debug_info d;
	uint64_t failures, before;
	cellar_db *db;
	char buf[128];
	size_t n = 0;

	OK(fault_fs_new(&fs, base));
	o.flags = CELLAR_CREATE;
	o.fs = fs;
	OK(cellar_open(&db, dir, &o));
	make_ckpt_due(db, "a");
	before = stat_checkpoints(db, NULL, NULL);
	OK(cellar_sync(db)); /* a checkpoint */
	cr_assert_eq(stat_checkpoints(db, NULL, NULL), before + 1);
	make_ckpt_due(db, "b");
	hook_set(db, 5, fs, 0); /* the checkpoint file's first write fails */
	ERR(CELLAR_EIO, cellar_sync(db));
	cellar__test_set_ckpt_hook(NULL, NULL);
	cr_assert_eq(stat_checkpoints(db, &failures, NULL), before + 1);
	cr_assert_eq(failures, 1);
	/* Not a failed fsync: writes go on, and the next sync retries. */
	OK(writer_failed(&db->w));
	OK(cellar_put(db, "after", 5, "x", 1));
	cr_assert(writer_ckpt_due(&db->w), "the failed one is still due");
	/* Meanwhile the previous checkpoint is what a reader loads. */
	cellar_options ro = o;
	cellar_db *rdb;
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&rdb, dir, &ro));
	OK(cellar__debug(rdb, &d));
	cr_assert_gt(d.replayed_records, 0, "the b keys are replayed");
	OK(cellar_get(rdb, "b00000000", 9, buf, sizeof buf, &n));
	OK(cellar_close(rdb));
	OK(cellar_sync(db)); /* the retry */
	cr_assert_eq(stat_checkpoints(db, &failures, NULL), before + 2);
	cr_assert_not(writer_ckpt_due(&db->w));
	OK(cellar_close(db));
	OK(cellar_open(&db, dir, &o));
	OK(cellar_get(db, "d4", 2, buf, sizeof buf, &n));
	OK(cellar_get(db, "after", 5, buf, sizeof buf, &n));
	OK(cellar_close(db));
	cellar_fs_free(fs);
	cellar_fs_free(base);
	tc_dir_free(dir);
}

/* A background sync is in its checkpoint (the hook waits) when close comes. */
Test(writer, close_waits_for_a_background_checkpoint)
{
	tc_store s;
	char buf[128];
	size_t n = 0;

	tc_store_init(&s);
	s.o.sync_mode = CELLAR_SYNC_PERIODIC;
	s.o.sync_interval_ms = 5;
	tc_store_open(&s);
	make_ckpt_due(s.db, "k");
	hook_set(s.db, 3, NULL, 100);
	for (int i = 0; i < 2000 && atomic_load(&hook.inside) == 0; i++) {
		struct timespec ts = { 0, 1000000L };
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(atomic_load(&hook.inside), 1, "no background checkpoint");
	OK(cellar_close(s.db)); /* while the hook sleeps */
	s.db = NULL;
	cellar__test_set_ckpt_hook(NULL, NULL);
	cr_assert_eq(atomic_load(&hook.inside), 2);
	tc_store_open(&s);
	OK(cellar_get(s.db, "d2", 2, buf, sizeof buf, &n));
	OK(cellar_get(s.db, "k00000000", 9, buf, sizeof buf, &n));
	tc_store_free(&s);
}

/*
 * test_expiry.c - expiring keys (cellar_put_ex, cellar_batch_put_ex, the
 * injected clock): absent from get, has, get_many, pins, update, delete,
 * iteration and snapshots from the moment they expire; the expiry survives
 * reopening (read-write and read-only); compaction drops expired keys,
 * reclaims their space and tells watchers; no-overwrite; a damaged expiry
 * is damage, never absence; and the error paths.  Runs once per file
 * system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"
#include "common.h"

static tc_store st;

/* The injected clock: ms since the epoch, advanced by hand. */
static _Atomic uint64_t clock_now;

static uint64_t test_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&clock_now);
}

static void advance(uint64_t ms)
{
	atomic_fetch_add(&clock_now, ms);
}

#define T0 1700000000000ull /* 2023-11-14, in ms */

static void setup_with(uint64_t max_segment_size)
{
	atomic_store(&clock_now, T0);
	tc_store_init(&st);
	st.o.clock = test_clock;
	if (max_segment_size)
		st.o.max_segment_size = max_segment_size;
	tc_store_open(&st);
}

static void setup(void) { setup_with(0); }
static void teardown(void) { tc_store_free(&st); }

static void setup_small(void) { setup_with(64 << 10); }

/* Each test names its setup: setup, or setup_small (64 KiB segments). */
TestSuite(expiry, .fini = teardown);

static int put_ttl(const char *k, const char *v, uint64_t ttl_ms)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.ttl_ms = ttl_ms;
	return cellar_put_ex(st.db, k, strlen(k), v, strlen(v), &po);
}

static int put_at(const char *k, const char *v, uint64_t at)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.expire_at = at;
	return cellar_put_ex(st.db, k, strlen(k), v, strlen(v), &po);
}

static int has(const char *k)
{
	return cellar_has(st.db, k, strlen(k));
}

/* The value of k, or ENOTFOUND / an error, checked the same way by get,
 * get_alloc, get_pinned and get_many. */
static int get_all_ways(const char *k, const char *want)
{
	char buf[256];
	size_t n = 0;
	void *p = NULL;
	cellar_pin pin;
	cellar_get_item it = { k, strlen(k), buf, sizeof buf, 0, CELLAR_OK };
	int rc = cellar_get(st.db, k, strlen(k), buf, sizeof buf, &n);

	if (rc == CELLAR_OK)
		cr_assert(n == strlen(want) && memcmp(buf, want, n) == 0);
	cr_assert_eq(cellar_get_alloc(st.db, k, strlen(k), &p, &n), rc);
	cellar_free(p);
	const void *pv;
	size_t pn;
	int prc = cellar_get_pinned(st.db, k, strlen(k), &pv, &pn, &pin);
	cr_assert_eq(prc, rc, "pinned: %d vs %d", prc, rc);
	if (prc == CELLAR_OK)
		OK(cellar_pin_release(&pin));
	OK(cellar_get_many(st.db, &it, 1));
	cr_assert_eq(it.status, rc, "get_many: %d vs %d", it.status, rc);
	cr_assert_eq(has(k), rc);
	return rc;
}

/* Keys an iterator returns. */
static size_t iter_count(void)
{
	cellar_iter *it;
	size_t n = 0;
	int rc;

	OK(cellar_iter_new(st.db, &it));
	while ((rc = cellar_iter_next(it, NULL, NULL, NULL, NULL)) == CELLAR_OK)
		n++;
	cr_assert_eq(rc, CELLAR_EDONE);
	cellar_iter_free(it);
	return n;
}

static size_t snap_iter_count(cellar_snapshot *s)
{
	cellar_snapshot_iter *it;
	size_t n = 0;
	int rc;

	OK(cellar_snapshot_iter_new(s, &it));
	while ((rc = cellar_snapshot_iter_next(it, NULL, NULL, NULL, NULL)) ==
	       CELLAR_OK)
		n++;
	cr_assert_eq(rc, CELLAR_EDONE);
	cellar_snapshot_iter_free(it);
	return n;
}

static cellar_db_stats stats(void)
{
	cellar_db_stats s;

	OK(cellar_stats_sized(st.db, &s, sizeof s));
	return s;
}

/* ---- expiry by ttl and by absolute time --------------------------------- */

Test(expiry, ttl_key_is_absent_from_the_moment_it_expires, .init = setup)
{
	OK(put_ttl("k", "v", 1000));
	OK(get_all_ways("k", "v"));
	advance(999);
	OK(get_all_ways("k", "v"));
	advance(1);
	ERR(CELLAR_ENOTFOUND, get_all_ways("k", "v"));
	advance(1000000);
	ERR(CELLAR_ENOTFOUND, get_all_ways("k", "v"));
}

Test(expiry, absolute_expiry_is_absent_from_that_time, .init = setup)
{
	OK(put_at("k", "v", T0 + 50));
	OK(put_at("big", "a value longer than one hundred and twenty-eight "
	          "bytes, so that the record's lengths take more than one byte "
	          "each and the general decoder reads it......", T0 + 60));
	advance(49);
	OK(get_all_ways("k", "v"));
	cr_assert_eq(has("big"), CELLAR_OK);
	advance(1);
	ERR(CELLAR_ENOTFOUND, get_all_ways("k", "v"));
	cr_assert_eq(has("big"), CELLAR_OK);
	advance(10);
	ERR(CELLAR_ENOTFOUND, has("big"));
}

Test(expiry, plain_put_replaces_an_expiring_value_for_good, .init = setup)
{
	OK(put_ttl("k", "old", 10));
	OK(cellar_put(st.db, "k", 1, "new", 3));
	advance(1000000);
	OK(get_all_ways("k", "new"));
	/* And the other way round: an expiring put over a plain one. */
	OK(put_ttl("k", "short", 10));
	advance(10);
	ERR(CELLAR_ENOTFOUND, has("k"));
}

Test(expiry, null_options_is_a_plain_put, .init = setup)
{
	OK(cellar_put_ex(st.db, "k", 1, "v", 1, NULL));
	advance(UINT64_MAX / 2);
	OK(get_all_ways("k", "v"));
}

Test(expiry, iteration_skips_expired_keys, .init = setup)
{
	OK(cellar_put(st.db, "plain", 5, "p", 1));
	OK(put_ttl("soon", "s", 10));
	OK(put_ttl("later", "l", 100));
	cr_assert_eq(iter_count(), 3);
	advance(10);
	cr_assert_eq(iter_count(), 2);
	advance(90);
	cr_assert_eq(iter_count(), 1);
}

Test(expiry, delete_update_and_cas_treat_an_expired_key_as_absent,
     .init = setup)
{
	OK(put_ttl("k", "v", 10));
	advance(10);
	ERR(CELLAR_ENOTFOUND, cellar_delete(st.db, "k", 1));
	/* As for a key that was never there: the expected value is not held. */
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "n", 1, "v", 1, "w", 1, 0));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "v", 1, "w", 1, 0));
	OK(cellar_cas(st.db, "k", 1, NULL, 0, "w", 1, CELLAR_CAS_ABSENT));
	OK(get_all_ways("k", "w"));
	advance(1000000);
	OK(get_all_ways("k", "w")); /* cas wrote a value that never expires */
}

/* cellar_update's callback: note whether the key was found, store "u". */
static int update_cb(const void *val, size_t val_len, int found,
                     const void **new_val, size_t *new_len, void *ctx)
{
	(void)val;
	(void)val_len;
	*(int *)ctx = found;
	*new_val = "u";
	*new_len = 1;
	return CELLAR_UPDATE_STORE;
}

Test(expiry, update_is_told_an_expired_key_is_absent, .init = setup)
{
	int found = -1;

	OK(put_ttl("k", "v", 10));
	OK(cellar_update(st.db, "k", 1, update_cb, &found));
	cr_assert_eq(found, 1);
	OK(put_ttl("k", "v", 10));
	advance(10);
	OK(cellar_update(st.db, "k", 1, update_cb, &found));
	cr_assert_eq(found, 0);
	advance(1000000);
	OK(get_all_ways("k", "u")); /* stored without expiry */
}

/* ---- snapshots ------------------------------------------------------------ */

Test(expiry, snapshot_judges_expiry_by_the_time_it_was_taken, .init = setup)
{
	cellar_snapshot *s, *s2;
	char buf[16];
	size_t n;

	OK(put_ttl("a", "1", 10));
	OK(put_ttl("b", "2", 100));
	OK(cellar_put(st.db, "c", 1, "3", 1));
	advance(10); /* a has expired before the snapshot */
	OK(cellar_snapshot_new(st.db, &s));
	ERR(CELLAR_ENOTFOUND, cellar_snapshot_has(s, "a", 1));
	OK(cellar_snapshot_has(s, "b", 1));
	cr_assert_eq(snap_iter_count(s), 2);
	advance(1000); /* b expires in the store, not in the snapshot */
	ERR(CELLAR_ENOTFOUND, has("b"));
	OK(cellar_snapshot_get(s, "b", 1, buf, sizeof buf, &n));
	cr_assert(n == 1 && buf[0] == '2');
	cr_assert_eq(snap_iter_count(s), 2);
	uint64_t c;
	OK(cellar_snapshot_count(s, &c));
	cr_assert_eq(c, 3, "count includes expired keys not yet dropped");
	OK(cellar_snapshot_new(st.db, &s2));
	ERR(CELLAR_ENOTFOUND, cellar_snapshot_has(s2, "b", 1));
	cr_assert_eq(snap_iter_count(s2), 1);
	cellar_snapshot_release(s2);
	cellar_snapshot_release(s);
}

/* ---- reopen --------------------------------------------------------------- */

Test(expiry, expiry_survives_reopen_read_write_and_read_only, .init = setup)
{
	OK(put_ttl("k", "v", 100));
	OK(put_at("j", "w", T0 + 1000));
	tc_store_reopen(&st);
	OK(get_all_ways("k", "v"));
	advance(100);
	ERR(CELLAR_ENOTFOUND, has("k"));
	OK(has("j"));
	tc_store_close(&st);
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_ENOTFOUND, get_all_ways("k", "v"));
	OK(get_all_ways("j", "w"));
	cr_assert_eq(iter_count(), 1);
	advance(900);
	ERR(CELLAR_ENOTFOUND, has("j"));
	cr_assert_eq(iter_count(), 0);
}

Test(expiry, expiry_survives_an_index_rebuild, .init = setup)
{
	/* The index removed: open rebuilds it from the records alone. */
	OK(put_ttl("k", "v", 100));
	OK(cellar_put(st.db, "p", 1, "q", 1));
	tc_store_close(&st);
	char path[4096];
	snprintf(path, sizeof path, "%s/index", st.dir);
	OK(st.fs->remove(st.fs, path));
	tc_store_open(&st);
	OK(has("k"));
	advance(100);
	ERR(CELLAR_ENOTFOUND, has("k"));
	OK(has("p"));
}

/* ---- count ---------------------------------------------------------------- */

Test(expiry, count_includes_expired_keys_until_compaction_drops_them,
     .init = setup)
{
	uint64_t n;

	OK(put_ttl("a", "1", 10));
	OK(cellar_put(st.db, "b", 1, "2", 1));
	advance(10);
	OK(cellar_count(st.db, &n));
	cr_assert_eq(n, 2);
	OK(cellar_compact(st.db, NULL));
	OK(cellar_count(st.db, &n));
	cr_assert_eq(n, 1);
	cr_assert_eq(stats().expired_dropped, 1);
}

/* ---- compaction ----------------------------------------------------------- */

Test(expiry, compaction_reclaims_expired_space, .init = setup_small)
{
	static char val[2000];
	char key[32];
	cellar_compact_result res;

	memset(val, 'x', sizeof val - 1);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof key, "exp-%03d", i);
		OK(put_ttl(key, val, 1000));
	}
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "keep-%03d", i);
		OK(cellar_put(st.db, key, strlen(key), "kept", 4));
	}
	OK(cellar_sync(st.db));
	cellar_db_stats before = stats();
	/* Nothing has expired yet: nothing is dead, nothing to do. */
	OK(cellar_compact(st.db, &res));
	cr_assert_eq(res.segments_compacted, 0);
	advance(1000);
	OK(cellar_compact(st.db, &res));
	cellar_db_stats after = stats();
	cr_assert_gt(res.segments_compacted, 0);
	cr_assert_gt(res.bytes_reclaimed, 200u * 1000);
	cr_assert_eq(after.expired_dropped, 200);
	cr_assert_lt(after.segment_bytes, before.segment_bytes / 4,
	             "%llu vs %llu", (unsigned long long)after.segment_bytes,
	             (unsigned long long)before.segment_bytes);
	cr_assert_eq(after.keys, 20);
	cr_assert_eq(iter_count(), 20);
	tc_store_reopen(&st);
	cr_assert_eq(iter_count(), 20);
	ERR(CELLAR_ENOTFOUND, has("exp-000"));
}

Test(expiry, compaction_keeps_an_unexpired_expiry, .init = setup_small)
{
	static char val[2000];
	char key[32];

	memset(val, 'y', sizeof val - 1);
	OK(put_ttl("survivor", "s", 5000));
	/* Make the survivor's segment dead enough to be rewritten. */
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < 60; i++) {
			snprintf(key, sizeof key, "filler-%02d", i);
			OK(cellar_put(st.db, key, strlen(key), val, sizeof val));
		}
	cellar_compact_result res;
	OK(cellar_compact(st.db, &res));
	cr_assert_gt(res.records_copied, 0);
	OK(has("survivor"));
	tc_store_reopen(&st);
	OK(has("survivor"));
	advance(5000);
	ERR(CELLAR_ENOTFOUND, has("survivor"));
}

Test(expiry, expired_key_never_comes_back_after_compaction_and_rebuild,
     .init = setup_small)
{
	static char val[4000];
	char key[32], path[4096];

	memset(val, 'z', sizeof val - 1);
	OK(cellar_put(st.db, "k", 1, "old plain value", 15));
	/* Fill a few segments, so that k's first record stays in an old
	 * segment compaction does not rewrite (nothing in it is dead). */
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "fill-%02d", i);
		OK(cellar_put(st.db, key, strlen(key), val, sizeof val));
	}
	OK(put_ttl("k", "expiring", 10));
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "more-%02d", i);
		OK(cellar_put(st.db, key, strlen(key), val, sizeof val));
	}
	advance(10);
	OK(cellar_compact(st.db, NULL));
	ERR(CELLAR_ENOTFOUND, has("k"));
	tc_store_close(&st);
	snprintf(path, sizeof path, "%s/index", st.dir);
	OK(st.fs->remove(st.fs, path)); /* rebuild from every segment */
	tc_store_open(&st);
	ERR(CELLAR_ENOTFOUND, has("k"));
}

Test(expiry, compaction_after_reopen_finds_expired_keys, .init = setup)
{
	OK(put_ttl("k", "v", 10));
	OK(cellar_put(st.db, "p", 1, "q", 1));
	tc_store_reopen(&st); /* the checkpoint flags the segment */
	advance(10);
	OK(cellar_compact(st.db, NULL));
	cr_assert_eq(stats().expired_dropped, 1);
	uint64_t n;
	OK(cellar_count(st.db, &n));
	cr_assert_eq(n, 1);
}

/* ---- watch ---------------------------------------------------------------- */

typedef struct expire_seen {
	pthread_mutex_t mu;
	int expires, puts;
	char key[32];
} expire_seen;

static void on_change(const cellar_change *c, void *ctx)
{
	expire_seen *s = ctx;

	pthread_mutex_lock(&s->mu);
	if (c->kind == CELLAR_CHANGE_EXPIRE) {
		s->expires++;
		snprintf(s->key, sizeof s->key, "%.*s", (int)c->key_len,
		         (const char *)c->key);
		cr_assert_null(c->val);
		cr_assert(c->last);
	} else if (c->kind == CELLAR_CHANGE_PUT) {
		s->puts++;
	}
	pthread_mutex_unlock(&s->mu);
}

Test(expiry, watchers_get_an_expire_event_when_compaction_drops_the_key,
     .init = setup)
{
	expire_seen s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, "" };
	cellar_sub *sub;

	OK(cellar_watch(st.db, "w", 1, 0, on_change, &s, &sub));
	OK(put_ttl("wk", "v", 10));
	OK(put_ttl("other", "v", 10)); /* not under the prefix */
	advance(10);
	OK(cellar_compact(st.db, NULL));
	tc_store_close(&st); /* delivers what is queued */
	cr_assert_eq(s.puts, 1);
	cr_assert_eq(s.expires, 1);
	cr_assert_str_eq(s.key, "wk");
}

/* ---- no-overwrite --------------------------------------------------------- */

Test(expiry, no_overwrite_fails_on_a_present_key_and_succeeds_over_expired,
     .init = setup)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.flags = CELLAR_PUT_NOOVERWRITE;
	OK(cellar_put_ex(st.db, "k", 1, "first", 5, &po));
	ERR(CELLAR_EEXIST, cellar_put_ex(st.db, "k", 1, "second", 6, &po));
	OK(get_all_ways("k", "first"));
	po.ttl_ms = 10;
	OK(cellar_put_ex(st.db, "e", 1, "one", 3, &po));
	ERR(CELLAR_EEXIST, cellar_put_ex(st.db, "e", 1, "two", 3, &po));
	advance(10);
	OK(cellar_put_ex(st.db, "e", 1, "three", 5, &po));
	OK(get_all_ways("e", "three"));
}

/* ---- batches -------------------------------------------------------------- */

Test(expiry, batch_expiry_counts_from_the_commit, .init = setup)
{
	cellar_batch *b;
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	OK(cellar_batch_new(&b));
	po.ttl_ms = 100;
	OK(cellar_batch_put_ex(b, "t", 1, "1", 1, &po));
	po.ttl_ms = 0;
	po.expire_at = T0 + 500;
	OK(cellar_batch_put_ex(b, "a", 1, "2", 1, &po));
	OK(cellar_batch_put_ex(b, "p", 1, "3", 1, NULL));
	advance(50); /* the ttl starts at the commit, not at the add */
	OK(cellar_batch_commit(st.db, b));
	advance(99);
	OK(has("t"));
	advance(1);
	ERR(CELLAR_ENOTFOUND, has("t"));
	OK(has("a"));
	advance(350);
	ERR(CELLAR_ENOTFOUND, has("a"));
	OK(has("p"));
	/* A delete of an expired key in a batch writes nothing. */
	cellar_batch_clear(b);
	OK(cellar_batch_delete(b, "a", 1));
	OK(cellar_batch_commit(st.db, b));
	cellar_batch_free(b);
	tc_store_reopen(&st);
	ERR(CELLAR_ENOTFOUND, has("t"));
	ERR(CELLAR_ENOTFOUND, has("a"));
	OK(has("p"));
}

Test(expiry, batch_with_an_expiry_in_the_past_at_commit_writes_nothing,
     .init = setup)
{
	cellar_batch *b;
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	OK(cellar_batch_new(&b));
	OK(cellar_batch_put(b, "x", 1, "1", 1));
	po.expire_at = T0 + 10;
	OK(cellar_batch_put_ex(b, "y", 1, "2", 1, &po));
	advance(10);
	ERR(CELLAR_EINVAL, cellar_batch_commit(st.db, b));
	ERR(CELLAR_ENOTFOUND, has("x"));
	ERR(CELLAR_ENOTFOUND, has("y"));
	cellar_batch_free(b);
}

/* ---- error paths ---------------------------------------------------------- */

Test(expiry, put_ex_error_paths, .init = setup)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.ttl_ms = 10;
	ERR(CELLAR_EINVAL, cellar_put_ex(NULL, "k", 1, "v", 1, &po));
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, NULL, 1, "v", 1, &po));
	ERR(CELLAR_EKEYLEN, cellar_put_ex(st.db, "k", 0, "v", 1, &po));
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, NULL, 1, &po));
	ERR(CELLAR_EVALLEN,
	    cellar_put_ex(st.db, "k", 1, "v", CELLAR_MAX_VALUE_LEN + 1u, &po));
	po.version = 0;
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.version = CELLAR_PUT_OPTIONS_VERSION + 1;
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.version = CELLAR_PUT_OPTIONS_VERSION;
	po.flags = 0x80;
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.flags = 0;
	po.expire_at = T0 + 100; /* and ttl_ms */
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.ttl_ms = 0;
	po.expire_at = T0; /* now is not in the future */
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.expire_at = T0 - 1;
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.expire_at = 0;
	po.ttl_ms = UINT64_MAX - T0 + 1; /* now + ttl overflows */
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	po.ttl_ms = UINT64_MAX - T0; /* the last time there is */
	OK(cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	OK(has("k"));
	ERR(CELLAR_ENOTFOUND, has("nothing was written by the failures"));
	uint64_t n;
	OK(cellar_count(st.db, &n));
	cr_assert_eq(n, 1);
}

Test(expiry, put_ex_on_a_read_only_handle_is_refused, .init = setup)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.ttl_ms = 10;
	tc_store_close(&st);
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_EREADONLY, cellar_put_ex(st.db, "k", 1, "v", 1, &po));
	ERR(CELLAR_EREADONLY, cellar_put_ex(st.db, "k", 1, "v", 1, NULL));
}

Test(expiry, batch_put_ex_error_paths, .init = setup)
{
	cellar_batch *b;
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	OK(cellar_batch_new(&b));
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(NULL, "k", 1, "v", 1, &po));
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(b, NULL, 1, "v", 1, &po));
	ERR(CELLAR_EKEYLEN, cellar_batch_put_ex(b, "k", 0, "v", 1, &po));
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(b, "k", 1, NULL, 1, &po));
	po.flags = CELLAR_PUT_NOOVERWRITE;
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(b, "k", 1, "v", 1, &po));
	po.flags = 0;
	po.version = 0;
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(b, "k", 1, "v", 1, &po));
	po.version = CELLAR_PUT_OPTIONS_VERSION;
	po.ttl_ms = 1;
	po.expire_at = T0 + 1;
	ERR(CELLAR_EINVAL, cellar_batch_put_ex(b, "k", 1, "v", 1, &po));
	cr_assert_eq(cellar_batch_count(b), 0, "nothing was added");
	po.expire_at = 0;
	po.ttl_ms = UINT64_MAX; /* overflows at commit */
	OK(cellar_batch_put_ex(b, "k", 1, "v", 1, &po));
	ERR(CELLAR_EINVAL, cellar_batch_commit(st.db, b));
	cellar_batch_free(b);
}

Test(expiry, options_of_version_3_are_still_accepted, .init = setup)
{
	tc_store_close(&st);
	cellar_options o3 = st.o;
	o3.version = 3; /* its struct ends before clock: ignored */
	o3.clock = NULL;
	OK(cellar_open(&st.db, st.dir, &o3));
	OK(put_ttl("k", "v", 60000)); /* by the wall clock */
	OK(has("k"));
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
	po.expire_at = T0; /* in 2023: the past by the wall clock */
	ERR(CELLAR_EINVAL, cellar_put_ex(st.db, "j", 1, "v", 1, &po));
}

/* ---- damage --------------------------------------------------------------- */

/* The one record of a new store: flip a byte of its expiry field. */
static void damage_expiry(size_t at)
{
	char path[4096];
	cellar_file *f;
	uint8_t b;
	size_t got;

	snprintf(path, sizeof path, "%s/0000000000000001.seg", st.dir);
	OK(st.fs->open(st.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	/* Header 32, checksum 4, kind 1, lengths 1 + 1, extension length 1. */
	uint64_t off = 32 + 4 + 1 + 1 + 1 + 1 + at;
	OK(st.fs->read_at(st.fs, f, off, &b, 1, &got));
	b ^= 0x40;
	OK(st.fs->write_at(st.fs, f, off, &b, 1));
	OK(st.fs->close(st.fs, f));
}

Test(expiry, damaged_expiry_is_corruption_never_absence, .init = setup)
{
	char buf[16];
	size_t n;

	OK(put_ttl("k", "v", 1000));
	tc_store_close(&st);
	damage_expiry(5); /* far in the future or past: the checksum says */
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_ECORRUPT, cellar_get(st.db, "k", 1, buf, sizeof buf, &n));
	ERR(CELLAR_ECORRUPT, has("k"));
	advance(1000);
	ERR(CELLAR_ECORRUPT, has("k"));
}

/*
 * test_read.c - the read path's batch call, cellar_get_many (src/read.c):
 * every item gets exactly what cellar_get would give it, whatever the
 * batch size, the record's shape and place (mapped file, append buffer,
 * values too long for the inline decoder), the table's shape (overflow
 * chains, colliding hashes) and the item's own errors; and zero-copy reads
 * (cellar_get_pinned): the bytes, the errors, and what a pin holds off.
 * Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "endian.h"
#include "hash.h"
#include "index_file.h"
#include "testhook.h"

#define NKEYS 3000

static tc_store S;

static void setup(void)
{
	tc_store_init(&S);
	S.o.max_segment_size = 256u << 10; /* several segments */
	tc_store_open(&S);
}

static void teardown(void)
{
	tc_store_free(&S);
	cellar__test_set_hash(NULL);
	cellar__test_set_max_buckets(0);
}

static size_t key_of(unsigned i, char *out)
{
	return (size_t)snprintf(out, 32, "rk%06u", i);
}

/* Value of key i: short (inline decoder), 200 bytes, or 5,000 bytes. */
static size_t val_of(unsigned i, unsigned char *out)
{
	size_t len = i % 3 == 0 ? 1 + i % 100 : i % 3 == 1 ? 200 : 5000;
	/* Seeds 2^32 apart: splitmix64 steps its state by a constant, so
	 * seeds a few steps apart would give overlapping values. */
	uint64_t s = (uint64_t)i << 32;

	for (size_t j = 0; j < len; j++)
		out[j] = (unsigned char)tc_rand(&s);
	return len;
}

static void load(unsigned n)
{
	unsigned char val[5000];
	char key[32];

	for (unsigned i = 0; i < n; i++)
		OK(cellar_put(S.db, key, key_of(i, key), val, val_of(i, val)));
}

/*
 * Look up keys first..first+n-1 (even numbers past NKEYS are absent) both
 * ways and compare every item with cellar_get.
 */
static void compare_batch(unsigned first, size_t n, size_t cap)
{
	cellar_get_item *items = calloc(n ? n : 1, sizeof *items);
	char (*keys)[32] = calloc(n ? n : 1, 32);
	unsigned char *bufs = malloc((n ? n : 1) * cap + 1), *one = malloc(cap + 1);

	cr_assert(items && keys && bufs && one);
	for (size_t i = 0; i < n; i++) {
		unsigned k = first + (unsigned)i;
		items[i].key = keys[i];
		items[i].key_len = key_of(k % 2 ? k : k % (2 * NKEYS), keys[i]);
		items[i].buf = bufs + i * cap;
		items[i].cap = cap;
		items[i].status = 12345;
		items[i].val_len = 777;
	}
	OK(cellar_get_many(S.db, items, n));
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		int rc = cellar_get(S.db, items[i].key, items[i].key_len, one, cap,
		                    &len);
		cr_assert_eq(items[i].status, rc, "item %zu (%.*s): %s, get says %s",
		             i, (int)items[i].key_len, (const char *)items[i].key,
		             cellar_strerror(items[i].status), cellar_strerror(rc));
		if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
			cr_assert_eq(items[i].val_len, len, "item %zu length", i);
		if (rc == CELLAR_OK)
			cr_assert_arr_eq(items[i].buf, one, len, "item %zu bytes", i);
	}
	free(items);
	free(keys);
	free(bufs);
	free(one);
}

static void compare_all_sizes(void)
{
	const size_t sizes[] = { 0, 1, 2, 7, 16, 17, 100, 1000, 2 * NKEYS };

	for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
		compare_batch((unsigned)(s * 37), sizes[s], 5000);
}

Test(read, get_many_matches_get_in_the_append_buffer_and_files,
     .init = setup, .fini = teardown)
{
	load(NKEYS);
	compare_all_sizes(); /* read-write: the newest records are buffered */
	tc_store_close(&S);
	S.o.flags = CELLAR_READONLY;
	tc_store_open(&S);
	compare_all_sizes();
}

Test(read, get_many_small_buffers_give_ebufs_per_item, .init = setup,
     .fini = teardown)
{
	load(300);
	compare_batch(0, 300, 150); /* 5,000 and 200 bytes don't fit, short do */
	compare_batch(0, 300, 0);
}

Test(read, get_many_follows_overflow_chains, .fini = teardown)
{
	cellar__test_set_max_buckets(4); /* long overflow chains */
	setup();
	load(NKEYS / 3);
	compare_batch(0, NKEYS, 5000);
}

/* Keys that differ only in their last digit collide: same hash, same tag. */
static uint64_t hash_by_tens(const void *key, size_t len, uint64_t seed)
{
	(void)seed;
	uint64_t h = 0;
	for (size_t i = 0; i + 1 < len; i++) /* the last digit is left out */
		h = h * 131 + ((const unsigned char *)key)[i];
	return h * 0x9e3779b97f4a7c15ull;
}

/* About 6 keys a bucket over 160 buckets: most chains are two buckets,
 * which get_many settles in its overflow pass (pass 2b, src/read.c). */
Test(read, get_many_settles_keys_in_the_first_overflow_bucket,
     .fini = teardown)
{
	cellar__test_set_max_buckets(160);
	setup();
	load(NKEYS / 3);
	compare_batch(0, NKEYS, 5000);
	compare_batch(7, 333, 5000); /* groups that start mid-way */
}

Test(read, get_many_tells_colliding_keys_apart, .fini = teardown)
{
	cellar__test_set_hash(hash_by_tens);
	setup();
	load(500);
	compare_batch(0, 1000, 5000);
}

Test(read, get_many_item_errors_stay_with_their_item, .init = setup,
     .fini = teardown)
{
	char buf[16];
	cellar_get_item items[6] = {
		{ "rk000003", 8, buf, sizeof buf, 0, 0 },
		{ NULL, 3, buf, sizeof buf, 0, 0 },
		{ "rk000003", 0, buf, sizeof buf, 0, 0 },
		{ "rk000003", 8, NULL, 4, 0, 0 },
		{ "rk000003", 8, NULL, 0, 0, 0 },
		{ "absent", 6, buf, sizeof buf, 0, 0 },
	};
	unsigned char want[5000];
	size_t want_len = val_of(3, want);

	load(10);
	OK(cellar_get_many(S.db, items, 6));
	cr_assert_eq(items[0].status, CELLAR_OK);
	cr_assert_eq(items[0].val_len, want_len);
	cr_assert_arr_eq(buf, want, want_len);
	cr_assert_eq(items[1].status, CELLAR_EINVAL);
	cr_assert_eq(items[2].status, CELLAR_EKEYLEN);
	cr_assert_eq(items[3].status, CELLAR_EINVAL);
	cr_assert_eq(items[4].status, CELLAR_EBUFS);
	cr_assert_eq(items[4].val_len, want_len);
	cr_assert_eq(items[5].status, CELLAR_ENOTFOUND);
}

Test(read, get_many_bad_arguments, .init = setup, .fini = teardown)
{
	cellar_get_item it = { "k", 1, NULL, 0, 99, 99 };

	ERR(CELLAR_EINVAL, cellar_get_many(NULL, &it, 1));
	cr_assert_eq(it.status, 99, "an item was touched");
	ERR(CELLAR_EINVAL, cellar_get_many(S.db, NULL, 1));
	OK(cellar_get_many(S.db, NULL, 0));
}

/* Flip one byte of the only occurrence of pat in the store's segments. */
static void flip_in_segments(const unsigned char *pat, size_t len)
{
	char path[4096];
	int flipped = 0;

	for (unsigned seq = 1; seq < 64 && !flipped; seq++) {
		cellar_file *f;
		uint64_t size;
		size_t got;
		snprintf(path, sizeof path, "%s/%016x.seg", S.dir, seq);
		if (S.fs->open(S.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f) < 0)
			continue;
		OK(S.fs->size(S.fs, f, &size));
		unsigned char *b = malloc((size_t)size);
		cr_assert_not_null(b);
		OK(S.fs->read_at(S.fs, f, 0, b, (size_t)size, &got));
		for (size_t i = 0; i + len <= got && !flipped; i++)
			if (memcmp(b + i, pat, len) == 0) {
				unsigned char x = (unsigned char)(b[i + len / 2] ^ 0x40);
				OK(S.fs->write_at(S.fs, f, i + len / 2, &x, 1));

				flipped = 1;
			}
		free(b);
		OK(S.fs->close(S.fs, f));
	}
	cr_assert(flipped, "pattern not found");
}

Test(read, get_many_reports_a_damaged_record_as_corrupt, .init = setup,
     .fini = teardown)
{
	unsigned char v[5000];
	size_t vn;

	load(30);
	tc_store_close(&S);
	vn = val_of(12, v); /* a short value: the inline decoder's case */
	flip_in_segments(v, vn);
	vn = val_of(13, v); /* 200 bytes: the general decoder's case */
	flip_in_segments(v, vn);
	S.o.flags = CELLAR_READONLY;
	tc_store_open(&S);
	char buf[5000];
	cellar_get_item items[3] = {
		{ "rk000012", 8, buf, sizeof buf, 0, 0 },
		{ "rk000013", 8, buf, sizeof buf, 0, 0 },
		{ "rk000014", 8, buf, sizeof buf, 0, 0 },
	};
	OK(cellar_get_many(S.db, items, 3));
	cr_assert_eq(items[0].status, CELLAR_ECORRUPT);
	cr_assert_eq(items[1].status, CELLAR_ECORRUPT);
	cr_assert_eq(items[2].status, CELLAR_OK);
	compare_batch(0, 60, 5000);
}

/* ---- zero-copy reads (cellar_get_pinned) ---------------------------------- */

static void compare_pinned(unsigned n)
{
	unsigned char want[5000];
	char key[32];

	for (unsigned i = 0; i < n; i++) {
		cellar_pin pin;
		const void *v = NULL;
		size_t len = 0, klen = key_of(i, key), wlen = val_of(i, want);
		OK(cellar_get_pinned(S.db, key, klen, &v, &len, &pin));
		cr_assert_eq(len, wlen, "key %u", i);
		cr_assert_arr_eq(v, want, len, "key %u", i);
		OK(cellar_pin_release(&pin));
	}
}

Test(read, pinned_values_are_the_stored_values, .init = setup,
     .fini = teardown)
{
	load(NKEYS);
	compare_pinned(NKEYS); /* read-write: the newest are in the buffer */
	tc_store_close(&S);
	S.o.flags = CELLAR_READONLY;
	tc_store_open(&S);
	compare_pinned(NKEYS);
}

Test(read, pin_errors, .init = setup, .fini = teardown)
{
	cellar_pin pin;
	const void *v = (const void *)1;
	size_t len = 7;

	load(10);
	ERR(CELLAR_ENOTFOUND, cellar_get_pinned(S.db, "nope", 4, &v, &len, &pin));
	cr_assert_null(v);
	ERR(CELLAR_EINVAL, cellar_pin_release(&pin)); /* nothing is held */
	ERR(CELLAR_EINVAL, cellar_get_pinned(S.db, "rk000001", 8, NULL, &len, &pin));
	ERR(CELLAR_EINVAL, cellar_get_pinned(S.db, "rk000001", 8, &v, &len, NULL));
	ERR(CELLAR_EINVAL, cellar_get_pinned(NULL, "rk000001", 8, &v, &len, &pin));
	ERR(CELLAR_EKEYLEN, cellar_get_pinned(S.db, "rk000001", 0, &v, &len, &pin));
	OK(cellar_get_pinned(S.db, "rk000001", 8, &v, NULL, &pin));
	OK(cellar_pin_release(&pin));
	ERR(CELLAR_EINVAL, cellar_pin_release(&pin)); /* released twice */
	ERR(CELLAR_EINVAL, cellar_pin_release(NULL));
}

typedef struct overwriter {
	cellar_db *db;
	atomic_int done;
} overwriter;

static void *overwrite_and_compact(void *arg)
{
	overwriter *o = arg;
	cellar_compact_result res;

	OK(cellar_put(o->db, "rk000005", 8, "new", 3));
	OK(cellar_compact(o->db, &res));
	atomic_store(&o->done, 1);
	return NULL;
}

Test(read, a_pin_holds_writers_and_compaction_off_its_value, .init = setup,
     .fini = teardown)
{
	unsigned char want[5000], copy[5000];
	size_t wlen = val_of(5, want), len;
	overwriter o = { S.db, 0 };
	const void *v;
	cellar_pin pin;
	pthread_t t;

	load(NKEYS);
	for (unsigned i = 0; i < NKEYS; i += 2) { /* make compaction worth it */
		char key[32];
		OK(cellar_delete(S.db, key, key_of(i, key)));
	}
	OK(cellar_sync(S.db));
	OK(cellar_get_pinned(S.db, "rk000005", 8, &v, &len, &pin));
	cr_assert_eq(len, wlen);
	memcpy(copy, v, len);
	cr_assert_eq(pthread_create(&t, NULL, overwrite_and_compact, &o), 0);
	struct timespec ts = { 0, 100 * 1000000L };
	nanosleep(&ts, NULL);
	cr_assert_eq(atomic_load(&o.done), 0, "the writer went past a pin");
	cr_assert_arr_eq(v, copy, len, "a pinned value changed");
	cr_assert_arr_eq(v, want, len);
	OK(cellar_pin_release(&pin));
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(atomic_load(&o.done), 1);
	char buf[8];
	OK(cellar_get(S.db, "rk000005", 8, buf, sizeof buf, &len));
	cr_assert_eq(len, 3);
}

Test(read, a_read_only_pin_outlives_the_writers_compaction, .init = setup,
     .fini = teardown)
{
	unsigned char want[5000];
	size_t wlen = val_of(7, want), len;
	cellar_options ro = S.o;
	cellar_compact_result res;
	cellar_db *rdb;
	const void *v;
	cellar_pin pin;
	char key[32];

	load(NKEYS);
	OK(cellar_sync(S.db));
	ro.flags = CELLAR_READONLY;
	OK(cellar_open(&rdb, S.dir, &ro));
	OK(cellar_get_pinned(rdb, "rk000007", 8, &v, &len, &pin));
	/* The writer rewrites every key and compacts the old segments away. */
	for (unsigned i = 0; i < NKEYS; i++)
		OK(cellar_put(S.db, key, key_of(i, key), "x", 1));
	OK(cellar_compact(S.db, &res));
	cr_assert_gt(res.segments_compacted, 0);
	cr_assert_eq(len, wlen);
	cr_assert_arr_eq(v, want, len, "the pinned value changed");
	OK(cellar_pin_release(&pin));
	OK(cellar_close(rdb));
}

Test(read, a_damaged_key_is_corrupt_not_absent, .init = setup,
     .fini = teardown)
{
	char buf[5000];
	size_t len;
	const void *v;
	cellar_pin pin;

	load(30);
	tc_store_close(&S);
	flip_in_segments((const unsigned char *)"rk000020", 8);
	S.o.flags = CELLAR_READONLY;
	tc_store_open(&S);
	/* The slot's tag is the key's; its record's key bytes no longer match
	 * and its checksum fails: damage, never "not found". */
	ERR(CELLAR_ECORRUPT, cellar_get(S.db, "rk000020", 8, buf, sizeof buf, &len));
	cr_assert(strstr(cellar_errmsg(), "may hold this key"), "%s",
	          cellar_errmsg());
	ERR(CELLAR_ECORRUPT, cellar_has(S.db, "rk000020", 8));
	ERR(CELLAR_ECORRUPT, cellar_get_pinned(S.db, "rk000020", 8, &v, &len, &pin));
	cellar_get_item it = { "rk000020", 8, buf, sizeof buf, 0, 0 };
	OK(cellar_get_many(S.db, &it, 1));
	cr_assert_eq(it.status, CELLAR_ECORRUPT);
	OK(cellar_get(S.db, "rk000021", 8, buf, sizeof buf, &len));
	ERR(CELLAR_ENOTFOUND, cellar_get(S.db, "rk000099", 8, buf, sizeof buf, &len));
}

/*
 * Give the index file's header the key count claimed and seal it again
 * (docs/format.md: the count at byte 24, the header's checksum in its last
 * 8 bytes): every checksum passes, but the counter contradicts the chains.
 */
static void forge_index_count(uint64_t claimed)
{
	unsigned char hdr[INDEX_HEADER_SIZE];
	char path[4096];
	cellar_file *f;
	size_t got;

	snprintf(path, sizeof path, "%s/index", S.dir);
	OK(S.fs->open(S.fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE, &f));
	OK(S.fs->read_at(S.fs, f, 0, hdr, sizeof hdr, &got));
	cr_assert_eq(got, sizeof hdr);
	le64_store(hdr + 24, claimed);
	le64_store(hdr + INDEX_HEADER_SIZE - 8,
	           hash_checksum(hdr, INDEX_HEADER_SIZE - 8));
	OK(S.fs->write_at(S.fs, f, 0, hdr, sizeof hdr));
	OK(S.fs->close(S.fs, f));
}

/* Fuzz finding 9: count, stats, iteration and gets agree on every key. */
static void expect_every_key(unsigned n)
{
	unsigned char want[5000], buf[5000];
	cellar_db_stats st;
	cellar_iter *it;
	uint64_t count, items = 0;
	char key[32];
	size_t len;

	OK(cellar_count(S.db, &count));
	cr_assert_eq(count, n, "count %llu", (unsigned long long)count);
	OK(cellar_stats(S.db, &st));
	cr_assert_eq(st.keys, n);
	OK(cellar_iter_new(S.db, &it));
	const void *k, *v;
	size_t kl, vl;
	int rc;
	while ((rc = cellar_iter_next(it, &k, &kl, &v, &vl)) == CELLAR_OK)
		items++;
	cellar_iter_free(it);
	ERR(CELLAR_EDONE, rc);
	cr_assert_eq(items, n);
	for (unsigned i = 0; i < n; i++) {
		OK(cellar_get(S.db, key, key_of(i, key), buf, sizeof buf, &len));
		cr_assert(len == val_of(i, want) && memcmp(buf, want, len) == 0);
	}
}

Test(read, a_read_only_handle_distrusts_an_index_at_odds_with_itself,
     .init = setup, .fini = teardown)
{
	uint64_t claims[2] = { 121, 3 }; /* one key too many; too few */

	load(120);
	tc_store_close(&S);
	for (int c = 0; c < 2; c++) {
		forge_index_count(claims[c]);
		S.o.flags = CELLAR_READONLY;
		tc_store_open(&S);
		expect_every_key(120);
		/* The check runs once per table; a second call answers alike. */
		expect_every_key(120);
		tc_store_close(&S);
	}
	S.o.flags = 0; /* a writable open rebuilds the table */
	tc_store_open(&S);
	expect_every_key(120);
}

Test(read, a_colliding_intact_key_is_not_damage, .fini = teardown)
{
	char buf[5000];
	size_t len;

	cellar__test_set_hash(hash_by_tens);
	setup();
	load(25); /* rk000020..24 present: rk000025..29 share their hash */
	ERR(CELLAR_ENOTFOUND, cellar_get(S.db, "rk000027", 8, buf, sizeof buf, &len));
	cellar_get_item it = { "rk000027", 8, buf, sizeof buf, 0, 0 };
	OK(cellar_get_many(S.db, &it, 1));
	cr_assert_eq(it.status, CELLAR_ENOTFOUND);
}

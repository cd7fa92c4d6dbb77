/*
 * test_concurrency.c - readers and iterators running while writers put,
 * overwrite, delete and sync, with the background sync thread on.
 *
 * Every value encodes its key and a version: (version, check, body) where
 * check = mix(key, version) and the body repeats the key's bytes shifted by
 * the version.  A reader that sees a torn value, another key's value, or a
 * version nobody has written yet fails.  ENOTFOUND is fine: keys come and go.
 *
 * The worker threads never call cr_assert (Criterion's assertions are for
 * the test's own thread): they record the first failure, and the main thread
 * asserts after joining them.  Shared test state is C11 atomics only, so a
 * ThreadSanitizer report can only come from the library.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "cellar.h"
#include "common.h"
#include "testhook.h"

#define NREADERS 3
#define MAX_WRITERS 2
#define READ_BUF 2048
#define MAX_VAL (16 + 100000)
/* Give up waiting for the threads to make progress after this long. */
#define HARD_LIMIT_SECONDS 120.0

typedef struct config {
	unsigned nkeys;      /* key space */
	unsigned prefill;    /* keys 0..prefill-1 are written before the threads start */
	unsigned writers;    /* 1 or 2; writer w owns keys with i % writers == w */
	unsigned put_pct;    /* share of puts among writes; the rest delete */
	uint64_t max_buckets;
	uint64_t max_segment_size;
	int sync_mode;
	unsigned sync_interval_ms;
} config;

typedef struct shared {
	const config *c;
	cellar_db *db;
	atomic_bool stop;
	atomic_uint_fast64_t next_version;
	_Atomic uint64_t *written; /* per key: highest version a put has begun */
	atomic_uint_fast64_t reader_ops[NREADERS];
	atomic_uint_fast64_t reader_hits[NREADERS];
	atomic_uint_fast64_t iter_passes, iter_items;
	atomic_uint_fast64_t writer_ops[MAX_WRITERS];
	atomic_int failed;
	char failmsg[512]; /* written once, by the thread that set failed */
} shared;

/* Per-writer view of its own keys at the end. */
typedef struct writer_state {
	shared *sh;
	unsigned id;
	uint64_t *final_version; /* 0 = deleted / never written */
} writer_state;

typedef struct reader_state {
	shared *sh;
	unsigned id;
} reader_state;

static void fail(shared *sh, const char *fmt, ...) CR_FORMAT(printf, 2, 3);
static void fail(shared *sh, const char *fmt, ...)
{
	int expected = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&sh->failed, &expected, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(sh->failmsg, sizeof sh->failmsg, fmt, ap);
	va_end(ap);
	atomic_store(&sh->stop, true);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t key, uint64_t version)
{
	uint64_t s = key * 0x9e3779b97f4a7c15ull ^ version;
	return tc_rand(&s);
}

static size_t key_of(unsigned i, char k[16])
{
	return (size_t)snprintf(k, 16, "key-%u", i);
}

static size_t body_len(unsigned i, uint64_t version)
{
	uint64_t h = mix(i, version);

	if ((h & 63) == 0)
		return 20000 + (size_t)(h >> 8) % (MAX_VAL - 16 - 20000); /* > READ_BUF */
	return (size_t)(h >> 8) % 1500;
}

static unsigned char body_byte(const char *k, size_t kn, uint64_t version, size_t j)
{
	return (unsigned char)(k[j % kn] + version * 7 + j / kn);
}

static void store_le64(unsigned char *p, uint64_t x)
{
	for (int b = 0; b < 8; b++)
		p[b] = (unsigned char)(x >> (8 * b));
}

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t x = 0;

	for (int b = 0; b < 8; b++)
		x |= (uint64_t)p[b] << (8 * b);
	return x;
}

static size_t encode(unsigned i, uint64_t version, unsigned char *v)
{
	char k[16];
	size_t kn = key_of(i, k), n = body_len(i, version);

	store_le64(v, version);
	store_le64(v + 8, mix(i, version));
	for (size_t j = 0; j < n; j++)
		v[16 + j] = body_byte(k, kn, version, j);
	return 16 + n;
}

/*
 * Check that v (n bytes) is a value written for key i; return its version,
 * or 0 after recording a failure.
 */
static uint64_t verify(shared *sh, const char *who, unsigned i, const unsigned char *v,
                       size_t n)
{
	char k[16];
	size_t kn = key_of(i, k);

	if (n < 16) {
		fail(sh, "%s: key %u: %zu-byte value", who, i, n);
		return 0;
	}
	uint64_t version = load_le64(v);
	if (version == 0 || load_le64(v + 8) != mix(i, version)) {
		fail(sh, "%s: key %u: value of another key or torn header (version %llu)",
		     who, i, (unsigned long long)version);
		return 0;
	}
	if (n != 16 + body_len(i, version)) {
		fail(sh, "%s: key %u version %llu: %zu bytes, want %zu", who, i,
		     (unsigned long long)version, n, 16 + body_len(i, version));
		return 0;
	}
	for (size_t j = 0; j < n - 16; j++) {
		if (v[16 + j] != body_byte(k, kn, version, j)) {
			fail(sh, "%s: key %u version %llu: torn body at byte %zu", who, i,
			     (unsigned long long)version, j);
			return 0;
		}
	}
	if (version > atomic_load(&sh->written[i])) {
		fail(sh, "%s: key %u: version %llu was never written (newest %llu)", who, i,
		     (unsigned long long)version,
		     (unsigned long long)atomic_load(&sh->written[i]));
		return 0;
	}
	return version;
}

static void *reader_main(void *arg)
{
	reader_state *rs = arg;
	shared *sh = rs->sh;
	const unsigned nkeys = sh->c->nkeys;
	uint64_t rng = 1000 + rs->id;
	uint64_t *last = calloc(nkeys, sizeof *last); /* newest version seen */
	unsigned char *buf = malloc(READ_BUF);
	char who[32];

	snprintf(who, sizeof who, "reader %u", rs->id);
	if (!last || !buf) {
		fail(sh, "%s: out of memory", who);
		goto out;
	}
	while (!atomic_load(&sh->stop)) {
		uint64_t r = tc_rand(&rng);
		unsigned i = (unsigned)((r >> 8) % nkeys);
		char k[16];
		size_t kn = key_of(i, k), n = 0;
		uint64_t version = 0;
		int rc;

		switch (r % 8) {
		case 0: {
			rc = cellar_has(sh->db, k, kn);
			if (rc != CELLAR_OK && rc != CELLAR_ENOTFOUND)
				fail(sh, "%s: has key %u: %s", who, i, cellar_strerror(rc));
			break;
		}
		case 1: {
			uint64_t count = 0;
			rc = cellar_count(sh->db, &count);
			if (rc != CELLAR_OK || count > nkeys)
				fail(sh, "%s: count %llu of %u keys: %s", who,
				     (unsigned long long)count, nkeys, cellar_strerror(rc));
			break;
		}
		case 2: {
			void *p = NULL;
			rc = cellar_get_alloc(sh->db, k, kn, &p, &n);
			if (rc == CELLAR_OK)
				version = verify(sh, who, i, p, n);
			else if (rc != CELLAR_ENOTFOUND)
				fail(sh, "%s: get_alloc key %u: %s", who, i, cellar_strerror(rc));
			cellar_free(p);
			break;
		}
		default: {
			rc = cellar_get(sh->db, k, kn, buf, READ_BUF, &n);
			if (rc == CELLAR_EBUFS) {
				/* Large value: its length must be one of a large value. */
				void *p = NULL;
				if (n <= READ_BUF)
					fail(sh, "%s: key %u: EBUFS for %zu bytes", who, i, n);
				rc = cellar_get_alloc(sh->db, k, kn, &p, &n);
				if (rc == CELLAR_OK)
					version = verify(sh, who, i, p, n);
				cellar_free(p);
			} else if (rc == CELLAR_OK) {
				version = verify(sh, who, i, buf, n);
			}
			if (rc != CELLAR_OK && rc != CELLAR_ENOTFOUND)
				fail(sh, "%s: get key %u: %s", who, i, cellar_strerror(rc));
			break;
		}
		}
		if (version) {
			if (version < last[i])
				fail(sh, "%s: key %u went back from version %llu to %llu", who,
				     i, (unsigned long long)last[i], (unsigned long long)version);
			last[i] = version;
			atomic_fetch_add(&sh->reader_hits[rs->id], 1);
		}
		atomic_fetch_add(&sh->reader_ops[rs->id], 1);
	}
out:
	free(last);
	free(buf);
	return NULL;
}

static unsigned parse_key(const void *key, size_t kn)
{
	char buf[16];
	char *end;
	unsigned long i;

	if (kn < 5 || kn >= sizeof buf)
		return UINT32_MAX;
	memcpy(buf, key, kn);
	buf[kn] = '\0';
	if (memcmp(buf, "key-", 4) != 0)
		return UINT32_MAX;
	i = strtoul(buf + 4, &end, 10);
	return *end == '\0' ? (unsigned)i : UINT32_MAX;
}

static void *iterator_main(void *arg)
{
	shared *sh = arg;

	while (!atomic_load(&sh->stop)) {
		cellar_iter *it = NULL;
		const void *k, *v;
		size_t kn, vn;
		uint64_t items = 0;
		int rc = cellar_iter_new(sh->db, &it);

		if (rc != CELLAR_OK) {
			fail(sh, "iterator: iter_new: %s", cellar_strerror(rc));
			break;
		}
		while (!atomic_load(&sh->stop) &&
		       (rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
			unsigned i = parse_key(k, kn);
			if (i >= sh->c->nkeys) {
				fail(sh, "iterator: foreign key of %zu bytes", kn);
				break;
			}
			verify(sh, "iterator", i, v, vn);
			items++;
		}
		if (rc == CELLAR_EDONE) {
			atomic_fetch_add(&sh->iter_passes, 1);
			atomic_fetch_add(&sh->iter_items, items);
		} else if (rc != CELLAR_OK) {
			fail(sh, "iterator: iter_next: %s", cellar_strerror(rc));
		}
		cellar_iter_free(it);
	}
	return NULL;
}

/* Whether every reader and the iterator have done some real work. */
static bool everyone_worked(shared *sh)
{
	for (int r = 0; r < NREADERS; r++)
		if (atomic_load(&sh->reader_hits[r]) == 0)
			return false;
	return atomic_load(&sh->iter_passes) > 0 && atomic_load(&sh->iter_items) > 0;
}

static int writer_put(shared *sh, unsigned i, unsigned char *v, uint64_t *final_version)
{
	char k[16];
	size_t kn = key_of(i, k);
	uint64_t version = atomic_fetch_add(&sh->next_version, 1);
	size_t n = encode(i, version, v);

	atomic_store(&sh->written[i], version); /* before any reader can see it */
	int rc = cellar_put(sh->db, k, kn, v, n);
	if (rc == CELLAR_OK)
		final_version[i] = version;
	return rc;
}

static void *writer_main(void *arg)
{
	writer_state *ws = arg;
	shared *sh = ws->sh;
	const config *c = sh->c;
	unsigned char *v = malloc(MAX_VAL);
	uint64_t rng = 77 + ws->id;
	double start = now_seconds(), limit = tc_stress_seconds();
	uint64_t ops = 0;

	if (!v) {
		fail(sh, "writer: out of memory");
		return NULL;
	}
	while (!atomic_load(&sh->stop)) {
		uint64_t r = tc_rand(&rng);
		unsigned i = (unsigned)((r >> 8) % c->nkeys);
		unsigned op = (unsigned)(r % 100);
		char k[16];
		size_t kn;
		int rc;

		i -= i % c->writers;
		i += ws->id;
		if (i >= c->nkeys)
			continue;
		kn = key_of(i, k);
		if (op < c->put_pct) {
			rc = writer_put(sh, i, v, ws->final_version);
			if (rc != CELLAR_OK)
				fail(sh, "writer %u: put key %u: %s", ws->id, i, cellar_strerror(rc));
		} else if (op == 99) {
			rc = cellar_sync(sh->db);
			if (rc != CELLAR_OK)
				fail(sh, "writer %u: sync: %s", ws->id, cellar_strerror(rc));
		} else {
			rc = cellar_delete(sh->db, k, kn);
			int want = ws->final_version[i] ? CELLAR_OK : CELLAR_ENOTFOUND;
			if (rc != want)
				fail(sh, "writer %u: delete key %u: want %s, got %s", ws->id, i,
				     cellar_strerror(want), cellar_strerror(rc));
			ws->final_version[i] = 0;
		}
		atomic_fetch_add(&sh->writer_ops[ws->id], 1);
		/* The run lasts at least the stress time, and until everyone has
		 * done some work: the checks below must not depend on scheduling. */
		if ((++ops & 63) == 0) {
			double t = now_seconds() - start;
			if (t >= limit && (ws->id != 0 || everyone_worked(sh)))
				break;
			if (t >= HARD_LIMIT_SECONDS)
				break;
		}
	}
	free(v);
	return NULL;
}

static void check_final(cellar_db *db, const config *c, uint64_t *const final_version[],
                        const char *when)
{
	unsigned char *want = malloc(MAX_VAL);
	uint64_t live = 0, count = 0;

	cr_assert_not_null(want);
	for (unsigned i = 0; i < c->nkeys; i++) {
		char k[16];
		size_t kn = key_of(i, k), n = 0;
		uint64_t version = final_version[i % c->writers][i];
		void *p = NULL;
		int rc = cellar_get_alloc(db, k, kn, &p, &n);

		if (version == 0) {
			cr_assert_eq(rc, CELLAR_ENOTFOUND, "%s: key %u should be gone: %s", when,
			             i, cellar_strerror(rc));
			continue;
		}
		live++;
		cr_assert_eq(rc, CELLAR_OK, "%s: key %u: %s", when, i, cellar_strerror(rc));
		size_t wn = encode(i, version, want);
		cr_assert_eq(n, wn, "%s: key %u: %zu bytes, want %zu", when, i, n, wn);
		cr_assert(memcmp(p, want, n) == 0, "%s: key %u: not the last value written",
		          when, i);
		cellar_free(p);
	}
	OK(cellar_count(db, &count));
	cr_assert_eq(count, live, "%s: count %llu, want %llu", when,
	             (unsigned long long)count, (unsigned long long)live);
	free(want);
}

static void run_stress(const config *c)
{
	cellar_fs *fs = tc_fs_new();
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	shared *sh = calloc(1, sizeof *sh);
	uint64_t *final_version[MAX_WRITERS] = { NULL, NULL };
	writer_state ws[MAX_WRITERS];
	reader_state rs[NREADERS];
	pthread_t wt[MAX_WRITERS], rt[NREADERS], it;
	unsigned char *v = malloc(MAX_VAL);

	cr_assert(sh && v);
	cr_assert(c->writers >= 1 && c->writers <= MAX_WRITERS);
	cellar__test_set_max_buckets(c->max_buckets);
	sh->c = c;
	sh->written = calloc(c->nkeys, sizeof *sh->written);
	cr_assert_not_null(sh->written);
	atomic_init(&sh->stop, false);
	atomic_init(&sh->next_version, 1);
	atomic_init(&sh->failed, 0);
	for (unsigned i = 0; i < c->nkeys; i++)
		atomic_init(&sh->written[i], 0);
	for (unsigned w = 0; w < c->writers; w++) {
		final_version[w] = calloc(c->nkeys, sizeof *final_version[w]);
		cr_assert_not_null(final_version[w]);
		ws[w].sh = sh;
		ws[w].id = w;
		ws[w].final_version = final_version[w];
	}

	o.fs = fs;
	o.flags = CELLAR_CREATE;
	o.sync_mode = c->sync_mode;
	o.sync_interval_ms = c->sync_interval_ms;
	o.max_segment_size = c->max_segment_size;
	OK(cellar_open(&sh->db, dir, &o));
	for (unsigned i = 0; i < c->prefill; i++)
		OK(writer_put(sh, i, v, final_version[i % c->writers]));

	for (unsigned r = 0; r < NREADERS; r++) {
		rs[r].sh = sh;
		rs[r].id = r;
		cr_assert_eq(pthread_create(&rt[r], NULL, reader_main, &rs[r]), 0);
	}
	cr_assert_eq(pthread_create(&it, NULL, iterator_main, sh), 0);
	for (unsigned w = 0; w < c->writers; w++)
		cr_assert_eq(pthread_create(&wt[w], NULL, writer_main, &ws[w]), 0);

	for (unsigned w = 0; w < c->writers; w++)
		pthread_join(wt[w], NULL);
	atomic_store(&sh->stop, true);
	for (unsigned r = 0; r < NREADERS; r++)
		pthread_join(rt[r], NULL);
	pthread_join(it, NULL);

	cr_assert_eq(atomic_load(&sh->failed), 0, "%s", sh->failmsg);
	for (unsigned w = 0; w < c->writers; w++)
		cr_assert_gt(atomic_load(&sh->writer_ops[w]), 0, "writer %u did nothing", w);
	for (unsigned r = 0; r < NREADERS; r++) {
		cr_assert_gt(atomic_load(&sh->reader_ops[r]), 0, "reader %u did nothing", r);
		cr_assert_gt(atomic_load(&sh->reader_hits[r]), 0, "reader %u found nothing", r);
	}
	cr_assert_gt(atomic_load(&sh->iter_passes), 0, "no iteration finished");
	cr_assert_gt(atomic_load(&sh->iter_items), 0, "iterations returned nothing");

	check_final(sh->db, c, final_version, "after the run");
	OK(cellar_close(sh->db));
	OK(cellar_open(&sh->db, dir, &o));
	check_final(sh->db, c, final_version, "after reopen");
	OK(cellar_close(sh->db));

	cellar__test_set_max_buckets(0);
	for (unsigned w = 0; w < c->writers; w++)
		free(final_version[w]);
	free(sh->written);
	free(sh);
	free(v);
	cellar_fs_free(fs);
	tc_dir_free(dir);
}

Test(concurrency, readers_see_only_written_values)
{
	config c = { .nkeys = 512, .prefill = 512, .writers = 1, .put_pct = 75,
	             .max_segment_size = 64u << 10,
	             .sync_mode = CELLAR_SYNC_PERIODIC, .sync_interval_ms = 5 };
	run_stress(&c);
}

Test(concurrency, readers_during_index_splits)
{
	/* Start empty and mostly insert, so the table splits under the readers. */
	config c = { .nkeys = 60000, .prefill = 64, .writers = 1, .put_pct = 95,
	             .sync_mode = CELLAR_SYNC_PERIODIC, .sync_interval_ms = 5 };
	run_stress(&c);
}

Test(concurrency, readers_walk_overflow_chains_while_they_change)
{
	config c = { .nkeys = 400, .prefill = 400, .writers = 1, .put_pct = 60,
	             .max_buckets = 4, .max_segment_size = 64u << 10,
	             .sync_mode = CELLAR_SYNC_PERIODIC, .sync_interval_ms = 5 };
	run_stress(&c);
}

Test(concurrency, two_writers_are_serialized)
{
	config c = { .nkeys = 1000, .prefill = 1000, .writers = 2, .put_pct = 75,
	             .max_segment_size = 64u << 10,
	             .sync_mode = CELLAR_SYNC_PERIODIC, .sync_interval_ms = 5 };
	run_stress(&c);
}

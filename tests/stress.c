/*
 * stress.c - readers, an iterator and a writer on one handle, for
 * CELLAR_STRESS_SECONDS, checking that no reader ever sees a torn value or
 * another key's value.  Plain C and pthreads, no Criterion, so that it runs
 * under ThreadSanitizer (meson setup -Db_sanitize=thread).
 *
 * Every value is  key || version (8 bytes) || padding || checksum (8 bytes)
 * where the checksum covers everything before it and the padding length
 * depends on key and version; a reader decodes each value it gets and checks
 * it names its own key.  On top of that:
 *   - the first STABLE keys are written once before the threads start and
 *     never touched again: get and has must always find them, and every
 *     iteration must return each of them exactly once;
 *   - per key, versions only grow: a reader never sees an older version
 *     after a newer one;
 *   - at the end the store is closed, reopened, and must hold exactly what
 *     the writer last wrote.
 * The writer puts, overwrites and deletes (now and then a value larger than
 * the append buffer), syncs and compacts, with small segments so that
 * they roll over, and sync_mode PERIODIC (5 ms) with background compaction,
 * so that the background thread runs too.  Compaction waits while an
 * iterator is open (CELLAR_EBUSY), so the iterator pauses between passes.
 *
 * Beside it, a read-only handle on the same store has readers of its own
 * (the same checks) and a thread that refreshes it all the time
 * (cellar_refresh: replaying appends, reopening after compactions); after
 * the run its last refresh must also hold exactly what the writer wrote.
 * A snapshot thread takes snapshots while all this runs and checks each is
 * one state: every key read twice (before and after a pause full of
 * writes and compactions) gives the same answer, its iteration returns
 * each key once with that same version, its count matches, and the stable
 * keys are there.  Now and then it takes a backup instead and checks that
 * the copy opens and holds every stable key and no torn value.
 * A second phase (issue 10) reopens the store for write batches, update,
 * compare-and-set and change events side by side: a thread commits batches
 * that set every key of a group to the batch's number while readers check
 * that once one key shows batch n every key shows n or later; threads
 * increment shared counters through cellar_update and cellar_cas (no
 * increment may be lost); a subscription counts the batches' changes.
 * A third builds a store beside it with cellar_builder, whose writer
 * thread writes segments while the adds go on, and reads every key back.
 *
 * CELLAR_TEST_FS picks the file system (mem or mmap; default mem).  Prints
 * "stress: N reads, M writes, K iterations" and "1 passed, 0 failed", or
 * what went wrong and exits 1.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cellar.h"
#include "segment.h" /* SEG_BUFFER_SIZE */

#define NKEYS 2000
#define STABLE 100
#define NREADERS 3
#define NRO_READERS 2 /* on the read-only handle */
#define KEY_LEN 12
#define MAX_PAD 3000
#define BIG_PAD (SEG_BUFFER_SIZE + 100) /* written in place, not buffered */
#define MAX_VAL (KEY_LEN + 8 + BIG_PAD + 8)

static atomic_int stop;
static atomic_int failed;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong n_reads, n_writes, n_iters, n_compactions, n_refreshes;
static atomic_ullong n_snaps, n_backups;

/* The writer's view: the newest version of each key, 0 if absent. */
static uint64_t model[NKEYS];

static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_mu);
	if (!atomic_load(&failed)) {
		fprintf(stderr, "stress: FAILED: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, " (%s)\n", cellar_errmsg());
	}
	atomic_store(&failed, 1);
	atomic_store(&stop, 1);
	pthread_mutex_unlock(&fail_mu);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* FNV-1a, 64 bits: independent of the engine's own checksums. */
static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void key_of(unsigned i, char out[KEY_LEN])
{
	char buf[KEY_LEN + 1];

	snprintf(buf, sizeof buf, "stress%06u", i);
	memcpy(out, buf, KEY_LEN);
}

static size_t pad_len(unsigned i, uint64_t ver)
{
	uint64_t s = (uint64_t)i << 32 ^ ver;
	uint64_t r = rnd(&s);

	return r % 997 == 0 ? BIG_PAD - (size_t)(r % 50) : (size_t)(r % MAX_PAD);
}

static size_t encode(unsigned i, uint64_t ver, unsigned char *out)
{
	size_t pad = pad_len(i, ver), n = KEY_LEN;

	key_of(i, (char *)out);
	for (int b = 0; b < 8; b++)
		out[n++] = (unsigned char)(ver >> (8 * b));
	for (size_t j = 0; j < pad; j++)
		out[n++] = (unsigned char)(i * 31 + ver * 7 + j);
	uint64_t h = fnv(out, n);
	for (int b = 0; b < 8; b++)
		out[n++] = (unsigned char)(h >> (8 * b));
	return n;
}

/* Check a value read for key i; returns its version (0 after a failure). */
static uint64_t decode(unsigned i, const unsigned char *v, size_t n,
                       const char *who)
{
	char key[KEY_LEN];
	uint64_t ver = 0, h = 0;

	key_of(i, key);
	if (n < KEY_LEN + 16) {
		fail("%s: key %u: value of %zu bytes is too short", who, i, n);
		return 0;
	}
	for (int b = 0; b < 8; b++) {
		ver |= (uint64_t)v[KEY_LEN + b] << (8 * b);
		h |= (uint64_t)v[n - 8 + b] << (8 * b);
	}
	if (h != fnv(v, n - 8)) {
		fail("%s: key %u: value of %zu bytes is torn (bad checksum)", who,
		     i, n);
		return 0;
	}
	if (memcmp(v, key, KEY_LEN) != 0) {
		fail("%s: key %u: got the value of key '%.*s'", who, i, KEY_LEN,
		     (const char *)v);
		return 0;
	}
	if (n != KEY_LEN + 16 + pad_len(i, ver)) {
		fail("%s: key %u v%llu: length %zu, written %zu", who, i,
		     (unsigned long long)ver, n, KEY_LEN + 16 + pad_len(i, ver));
		return 0;
	}
	return ver;
}

/* ---- the threads -------------------------------------------------------- */

typedef struct reader {
	cellar_db *db;
	int id;
	uint64_t seen[NKEYS]; /* newest version seen per key */
} reader;

/* A value read for key i: its version never goes back (per reader). */
static void saw(reader *r, unsigned i, const void *p, size_t n,
                const char *who)
{
	uint64_t ver = decode(i, p, n, who);

	if (ver && ver < r->seen[i])
		fail("%s: key %u: v%llu after v%llu", who, i, (unsigned long long)ver,
		     (unsigned long long)r->seen[i]);
	if (ver > r->seen[i])
		r->seen[i] = ver;
}

/* What a get of key i returned: a value, or absent (never a stable key). */
static void got(reader *r, unsigned i, int rc, const void *p, size_t n,
                const char *who, const char *call)
{
	if (rc == CELLAR_OK)
		saw(r, i, p, n, who);
	else if (rc != CELLAR_ENOTFOUND || i < STABLE)
		fail("%s: %s of key %u: %s", who, call, i, cellar_strerror(rc));
}

#define BATCH 8

/* cellar_get_many of BATCH random keys (buf holds BATCH values), each
 * checked as a get. */
static void read_batch(reader *r, uint64_t *s, unsigned char *buf,
                       const char *who)
{
	char keys[BATCH][KEY_LEN];
	cellar_get_item items[BATCH];
	unsigned idx[BATCH];
	size_t cap = MAX_VAL;
	int rc;

	for (int k = 0; k < BATCH; k++) {
		idx[k] = (unsigned)(rnd(s) % NKEYS);
		key_of(idx[k], keys[k]);
		items[k] = (cellar_get_item){ keys[k], KEY_LEN, buf + k * cap, cap,
		                              0, 0 };
	}
	if ((rc = cellar_get_many(r->db, items, BATCH)) != CELLAR_OK) {
		fail("%s: get_many: %s", who, cellar_strerror(rc));
		return;
	}
	for (int k = 0; k < BATCH; k++)
		got(r, idx[k], items[k].status, items[k].buf, items[k].val_len, who,
		    "get_many");
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	unsigned char *buf = malloc(MAX_VAL), *bbuf = malloc(BATCH * MAX_VAL);
	uint64_t s = 1000 + (uint64_t)r->id, reads = 0;
	char who[32], key[KEY_LEN];

	snprintf(who, sizeof who, "reader %d", r->id);
	if (!buf || !bbuf) {
		free(buf);
		free(bbuf);
		fail("%s: out of memory", who);
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned i = (unsigned)(rnd(&s) % NKEYS);
		size_t n = 0;
		int rc;

		key_of(i, key);
		if (rnd(&s) % 4 == 0) {
			rc = cellar_has(r->db, key, KEY_LEN);
			if (rc == CELLAR_ENOTFOUND && i < STABLE)
				fail("%s: has: stable key %u not found", who, i);
			else if (rc != CELLAR_OK && rc != CELLAR_ENOTFOUND)
				fail("%s: has of key %u: %s", who, i, cellar_strerror(rc));
		} else if (rnd(&s) % 8 == 0) {
			void *p = NULL;
			rc = cellar_get_alloc(r->db, key, KEY_LEN, &p, &n);
			got(r, i, rc, p, n, who, "get_alloc");
			cellar_free(p);
		} else if (rnd(&s) % 8 == 0) {
			read_batch(r, &s, bbuf, who);
		} else if (rnd(&s) % 8 == 0) {
			/* Zero-copy: the pinned bytes are checked in place. */
			cellar_pin pin;
			const void *v = NULL;
			rc = cellar_get_pinned(r->db, key, KEY_LEN, &v, &n, &pin);
			got(r, i, rc, v, n, who, "get_pinned");
			if (rc == CELLAR_OK && (rc = cellar_pin_release(&pin)) != CELLAR_OK)
				fail("%s: pin_release: %s", who, cellar_strerror(rc));
		} else {
			rc = cellar_get(r->db, key, KEY_LEN, buf, MAX_VAL, &n);
			got(r, i, rc, buf, n, who, "get");
		}
		reads++;
	}
	atomic_fetch_add(&n_reads, reads);
	free(buf);
	free(bbuf);
	return NULL;
}

static void *iter_main(void *arg)
{
	cellar_db *db = arg;
	unsigned char *stable_seen = calloc(STABLE, 1);
	uint64_t iters = 0;

	if (!stable_seen) {
		fail("iterator: out of memory");
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		cellar_iter *it = NULL;
		const void *k, *v;
		size_t kn, vn;
		int rc;

		if ((rc = cellar_iter_new(db, &it)) != CELLAR_OK) {
			fail("iterator: iter_new: %s", cellar_strerror(rc));
			break;
		}
		memset(stable_seen, 0, STABLE);
		while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
			char num[8];
			if (kn != KEY_LEN || memcmp(k, "stress", 6) != 0) {
				fail("iterator: foreign key of %zu bytes", kn);
				break;
			}
			memcpy(num, (const char *)k + 6, 6);
			num[6] = '\0';
			unsigned i = (unsigned)strtoul(num, NULL, 10);
			if (i >= NKEYS) {
				fail("iterator: foreign key %u", i);
				break;
			}
			if (!decode(i, v, vn, "iterator"))
				break;
			/* keys written meanwhile may come twice or more, or not
			 * at all; keys nobody writes come exactly once */
			if (i < STABLE && stable_seen[i]++)
				fail("iterator: stable key %u returned twice", i);
		}
		cellar_iter_free(it);
		if (rc != CELLAR_EDONE && rc != CELLAR_OK) {
			fail("iterator: iter_next: %s", cellar_strerror(rc));
			break;
		}
		if (atomic_load(&failed))
			break;
		for (unsigned i = 0; i < STABLE; i++)
			if (!stable_seen[i]) {
				fail("iterator: stable key %u missing", i);
				break;
			}
		uint64_t c = 0;
		if (cellar_count(db, &c) != CELLAR_OK || c < STABLE || c > NKEYS)
			fail("count %llu out of range", (unsigned long long)c);
		iters++;
		/* a pause between iterations, so that compaction gets to run */
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	atomic_fetch_add(&n_iters, iters);
	free(stable_seen);
	return NULL;
}

/* Refresh the read-only handle over and over until the writer is done. */
static void *refresher_main(void *arg)
{
	cellar_db *ro = arg;
	uint64_t n = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int rc = cellar_refresh(ro);
		if (rc != CELLAR_OK)
			fail("refresher: refresh: %s (%s)", cellar_strerror(rc),
			     cellar_errmsg());
		n++;
		usleep(200);
	}
	atomic_fetch_add(&n_refreshes, n);
	return NULL;
}

/* ---- snapshots and backups ------------------------------------------------ */

/* The version of key i in snap (0: absent), checked; UINT64_MAX: failed. */
static uint64_t snap_version(cellar_snapshot *snap, unsigned i,
                             unsigned char *buf)
{
	char key[KEY_LEN];
	size_t n = 0;
	int rc;

	key_of(i, key);
	rc = cellar_snapshot_get(snap, key, KEY_LEN, buf, MAX_VAL, &n);
	if (rc == CELLAR_ENOTFOUND)
		return 0;
	if (rc != CELLAR_OK) {
		fail("snapshot: get of key %u: %s", i, cellar_strerror(rc));
		return UINT64_MAX;
	}
	uint64_t v = decode(i, buf, n, "snapshot");
	return v ? v : UINT64_MAX;
}

/* Iterate snap: each key once, with the version vers[] says. */
static void snap_iterate(cellar_snapshot *snap, const uint64_t *vers)
{
	cellar_snapshot_iter *it = NULL;
	unsigned char *seen = calloc(NKEYS, 1);
	const void *k, *v;
	size_t kn, vn;
	uint64_t n = 0, want = 0, count = 0;
	int rc;

	if (!seen || cellar_snapshot_iter_new(snap, &it) != CELLAR_OK) {
		fail("snapshot: iter_new failed");
		free(seen);
		return;
	}
	while ((rc = cellar_snapshot_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		char num[8];
		memcpy(num, (const char *)k + 6, 6);
		num[6] = '\0';
		unsigned i = (unsigned)strtoul(num, NULL, 10);
		if (kn != KEY_LEN || i >= NKEYS || seen[i]++) {
			fail("snapshot: iteration: key %u twice or foreign", i);
			break;
		}
		if (decode(i, v, vn, "snapshot iteration") != vers[i])
			fail("snapshot: iteration: key %u has another version", i);
		n++;
	}
	if (rc != CELLAR_EDONE && rc != CELLAR_OK)
		fail("snapshot: iter_next: %s", cellar_strerror(rc));
	for (unsigned i = 0; i < NKEYS; i++)
		want += vers[i] != 0;
	if (n != want)
		fail("snapshot: iteration gave %llu keys, gets %llu",
		     (unsigned long long)n, (unsigned long long)want);
	if (cellar_snapshot_count(snap, &count) != CELLAR_OK || count != want)
		fail("snapshot: count %llu, gets %llu", (unsigned long long)count,
		     (unsigned long long)want);
	cellar_snapshot_iter_free(it);
	free(seen);
}

static void one_snapshot(cellar_db *db, uint64_t *vers, unsigned char *buf)
{
	cellar_snapshot *snap = NULL;
	int rc;

	if ((rc = cellar_snapshot_new(db, &snap)) != CELLAR_OK) {
		fail("snapshot: new: %s", cellar_strerror(rc));
		return;
	}
	for (unsigned i = 0; i < NKEYS; i++)
		vers[i] = snap_version(snap, i, buf);
	for (unsigned i = 0; i < STABLE; i++)
		if (vers[i] != 1)
			fail("snapshot: stable key %u missing", i);
	nanosleep(&(struct timespec){ 0, 3000000 }, NULL); /* writes go on */
	for (unsigned i = 0; i < NKEYS; i++)
		if (snap_version(snap, i, buf) != vers[i]) {
			fail("snapshot: key %u changed under it", i);
			break;
		}
	snap_iterate(snap, vers);
	cellar_snapshot_release(snap);
}

typedef struct snap_arg {
	cellar_db *db;
	cellar_fs *fs;
	const char *dir;
} snap_arg;

/* A backup of the live store: the copy opens, and holds the stable keys. */
static void one_backup(const snap_arg *a, unsigned nth, unsigned char *buf)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *copy = NULL;
	char dest[4300], key[KEY_LEN];
	size_t n;
	int rc;

	snprintf(dest, sizeof dest, "%s-copy%u", a->dir, nth);
	if ((rc = cellar_backup(a->db, dest, NULL)) != CELLAR_OK) {
		fail("backup: %s (%s)", cellar_strerror(rc), cellar_errmsg());
		return;
	}
	o.fs = a->fs;
	if ((rc = cellar_open(&copy, dest, &o)) != CELLAR_OK) {
		fail("backup: open the copy: %s", cellar_strerror(rc));
		return;
	}
	for (unsigned i = 0; i < NKEYS; i++) {
		key_of(i, key);
		rc = cellar_get(copy, key, KEY_LEN, buf, MAX_VAL, &n);
		if (rc == CELLAR_OK)
			decode(i, buf, n, "backup");
		else if (rc != CELLAR_ENOTFOUND || i < STABLE)
			fail("backup: key %u: %s", i, cellar_strerror(rc));
	}
	cellar_close(copy);
}

static void *snap_main(void *arg)
{
	const snap_arg *a = arg;
	uint64_t *vers = calloc(NKEYS, sizeof *vers), snaps = 0, backups = 0;
	unsigned char *buf = malloc(MAX_VAL);

	if (!vers || !buf) {
		fail("snapshot: out of memory");
		free(vers);
		free(buf);
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed) &&
	       !atomic_load(&failed)) {
		if (snaps % 6 == 2 && backups < 3)
			one_backup(a, (unsigned)++backups, buf);
		else
			one_snapshot(a->db, vers, buf);
		snaps++;
	}
	atomic_fetch_add(&n_snaps, snaps);
	atomic_fetch_add(&n_backups, backups);
	free(vers);
	free(buf);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The writer runs on the main thread until the time is up. */
static void writer(cellar_db *db, double seconds)
{
	unsigned char *val = malloc(MAX_VAL);
	uint64_t s = 42, writes = 0, next_ver = 1;
	double end = now_s() + seconds;
	char key[KEY_LEN];

	if (!val) {
		fail("writer: out of memory");
		return;
	}
	while (!atomic_load(&stop) && now_s() < end) {
		unsigned i = STABLE + (unsigned)(rnd(&s) % (NKEYS - STABLE));
		unsigned what = (unsigned)(rnd(&s) % 100);
		int rc;

		key_of(i, key);
		if (what < 70) {
			uint64_t ver = next_ver++;
			rc = cellar_put(db, key, KEY_LEN, val, encode(i, ver, val));
			if (rc != CELLAR_OK)
				fail("writer: put of key %u: %s", i, cellar_strerror(rc));
			model[i] = ver;
		} else if (what < 95) {
			rc = cellar_delete(db, key, KEY_LEN);
			if (rc != (model[i] ? CELLAR_OK : CELLAR_ENOTFOUND))
				fail("writer: delete of key %u: %s", i,
				     cellar_strerror(rc));
			model[i] = 0;
		} else if (what < 99) {
			if ((rc = cellar_sync(db)) != CELLAR_OK)
				fail("writer: sync: %s", cellar_strerror(rc));
		} else {
			/* EBUSY: an iterator is open, compaction waits */
			rc = cellar_compact(db, NULL);
			if (rc == CELLAR_OK)
				atomic_fetch_add(&n_compactions, 1);
			else if (rc != CELLAR_EBUSY)
				fail("writer: compact: %s", cellar_strerror(rc));
		}
		writes++;
	}
	atomic_fetch_add(&n_writes, writes);
	free(val);
}

/* ---- setup -------------------------------------------------------------- */

static char tmp_root[4096];

static void remove_tree(const char *root)
{
	char path[4200];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof path, "%s/store", root);
	if ((d = opendir(path))) {
		while ((e = readdir(d))) {
			char f[4200 + 260];
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(f, sizeof f, "%s/%s", path, e->d_name);
			unlink(f);
		}
		closedir(d);
		rmdir(path);
	}
	rmdir(root);
}

static int open_store(cellar_fs *fs, const char *dir, int create,
                      cellar_db **db)
{
	cellar_options o = CELLAR_OPTIONS_INIT;

	o.flags = create ? CELLAR_CREATE : 0;
	o.fs = fs;
	o.sync_mode = CELLAR_SYNC_PERIODIC;
	o.sync_interval_ms = 5;
	o.max_segment_size = 1u << 20;
	o.auto_compact_pct = 30;
	*db = NULL;
	return cellar_open(db, dir, &o);
}

static int open_readonly(cellar_fs *fs, const char *dir, cellar_db **db)
{
	cellar_options o = CELLAR_OPTIONS_INIT;

	o.flags = CELLAR_READONLY;
	o.fs = fs;
	o.max_segment_size = 1u << 20;
	*db = NULL;
	return cellar_open(db, dir, &o);
}

/* After the run: the reopened store holds what the writer last wrote. */
static void check_final(cellar_db *db, const char *who)
{
	unsigned char *buf = malloc(MAX_VAL);
	char key[KEY_LEN];

	if (!buf) {
		fail("out of memory");
		return;
	}
	for (unsigned i = 0; i < NKEYS && !atomic_load(&failed); i++) {
		size_t n = 0;
		key_of(i, key);
		int rc = cellar_get(db, key, KEY_LEN, buf, MAX_VAL, &n);
		if (!model[i]) {
			if (rc != CELLAR_ENOTFOUND)
				fail("%s: key %u: %s, want ENOTFOUND", who, i,
				     cellar_strerror(rc));
			continue;
		}
		if (rc != CELLAR_OK) {
			fail("%s: key %u: %s, want v%llu", who, i,
			     cellar_strerror(rc), (unsigned long long)model[i]);
			continue;
		}
		uint64_t ver = decode(i, buf, n, who);
		if (ver && ver != model[i])
			fail("%s: key %u: v%llu, want v%llu", who, i,
			     (unsigned long long)ver, (unsigned long long)model[i]);
	}
	free(buf);
}

/* ---- phase 2: batches, update, cas, events ---------------------------- */

#define GROUP 32
#define BATCHES 300
#define COUNTER_THREADS 4
#define INCREMENTS 2000

static atomic_int batches_done;
static atomic_ullong changes_seen;

static unsigned group_num(cellar_db *db, unsigned i)
{
	char k[16], v[16];
	size_t n = 0;

	snprintf(k, sizeof k, "grp-%03u", i);
	if (cellar_get(db, k, strlen(k), v, sizeof v - 1, &n) != CELLAR_OK)
		return 0;
	v[n] = 0;
	return (unsigned)strtoul(v, NULL, 10);
}

static void *group_reader(void *arg)
{
	cellar_db *db = arg;

	while (!atomic_load(&batches_done)) {
		unsigned first = group_num(db, 0);
		for (unsigned i = 1; i < GROUP; i++)
			if (group_num(db, i) < first)
				fail("batch: key %u older than key 0 (batch %u)", i, first);
	}
	return NULL;
}

static int incr_fn(const void *val, size_t len, int found, const void **nv,
                   size_t *nl, void *ctx)
{
	char *out = ctx, tmp[24] = { 0 };

	if (found && len < sizeof tmp)
		memcpy(tmp, val, len);
	*nl = (size_t)snprintf(out, 24, "%lu", strtoul(tmp, NULL, 10) + 1);
	*nv = out;
	return CELLAR_UPDATE_STORE;
}

static void *counter_main(void *arg)
{
	cellar_db *db = arg;
	char buf[24], cur[24], next[24];

	for (int i = 0; i < INCREMENTS; i++) {
		if (cellar_update(db, "ctr-u", 5, incr_fn, buf) != CELLAR_OK)
			fail("update: %s", cellar_errmsg());
		int rc;
		do {
			size_t n = 0;
			rc = cellar_get(db, "ctr-c", 5, cur, sizeof cur - 1, &n);
			cur[rc == CELLAR_OK ? n : 0] = 0;
			int m = snprintf(next, sizeof next, "%lu",
			                 strtoul(cur, NULL, 10) + 1);
			rc = cellar_cas(db, "ctr-c", 5, cur, n, next, (size_t)m,
			                rc == CELLAR_OK ? 0 : CELLAR_CAS_ABSENT);
		} while (rc == CELLAR_ECHANGED);
		if (rc != CELLAR_OK)
			fail("cas: %s", cellar_strerror(rc));
	}
	return NULL;
}

static void on_change(const cellar_change *c, void *ctx)
{
	(void)ctx;
	if (c->kind == CELLAR_CHANGE_PUT)
		atomic_fetch_add(&changes_seen, 1);
}

static void commit_batches(cellar_db *db)
{
	cellar_batch *b = NULL;
	char k[16], v[16];

	if (cellar_batch_new(&b) != CELLAR_OK)
		fail("batch_new");
	for (unsigned n = 1; n <= BATCHES && b; n++) {
		cellar_batch_clear(b);
		snprintf(v, sizeof v, "%u", n);
		for (unsigned i = 0; i < GROUP; i++) {
			snprintf(k, sizeof k, "grp-%03u", i);
			cellar_batch_put(b, k, strlen(k), v, strlen(v));
		}
		if (cellar_batch_commit(db, b) != CELLAR_OK)
			fail("batch commit: %s", cellar_errmsg());
	}
	cellar_batch_free(b);
}

static void phase2(cellar_db *db)
{
	pthread_t rd[2], ct[COUNTER_THREADS];
	cellar_sub *sub = NULL;
	char buf[24];
	size_t n = 0;

	if (cellar_watch(db, "grp-", 4, 0, on_change, NULL, &sub) != CELLAR_OK)
		fail("watch: %s", cellar_errmsg());
	for (int t = 0; t < 2; t++)
		pthread_create(&rd[t], NULL, group_reader, db);
	for (int t = 0; t < COUNTER_THREADS; t++)
		pthread_create(&ct[t], NULL, counter_main, db);
	commit_batches(db);
	atomic_store(&batches_done, 1);
	for (int t = 0; t < 2; t++)
		pthread_join(rd[t], NULL);
	for (int t = 0; t < COUNTER_THREADS; t++)
		pthread_join(ct[t], NULL);
	for (const char *k = "ctr-u"; k; k = k[4] == 'u' ? "ctr-c" : NULL) {
		if (cellar_get(db, k, 5, buf, sizeof buf - 1, &n) != CELLAR_OK)
			fail("%s missing", k);
		buf[n] = 0;
		if (strtoul(buf, NULL, 10) != COUNTER_THREADS * INCREMENTS)
			fail("%s: %s increments, want %d", k, buf,
			     COUNTER_THREADS * INCREMENTS);
	}
	if (group_num(db, GROUP - 1) != BATCHES)
		fail("batch: last key shows %u", group_num(db, GROUP - 1));
	cellar_close(db); /* delivers every queued change */
	if (atomic_load(&changes_seen) != (unsigned long long)GROUP * BATCHES)
		fail("watch: %llu changes, want %u",
		     (unsigned long long)atomic_load(&changes_seen), GROUP * BATCHES);
}

/*
 * Phase 3: a bulk build beside the store.  The builder's writer thread
 * writes the segments while the adds go on (src/builder.c); small segments
 * roll over, and a small budget spills.  Every key must then read back.
 */
#define BUILD_KEYS 200000
static void phase3(cellar_fs *fs, const char *dir)
{
	cellar_build_options bo = CELLAR_BUILD_OPTIONS_INIT;
	cellar_options o = CELLAR_OPTIONS_INIT;
	char path[4300], key[32], val[64], got[64];
	cellar_builder *b;
	cellar_db *db;
	size_t len;
	int rc;

	snprintf(path, sizeof path, "%s.built", dir);
	bo.fs = fs;
	bo.memory_budget = 1u << 20;
	bo.max_segment_size = 1u << 20;
	if ((rc = cellar_builder_open(&b, path, &bo)) != CELLAR_OK) {
		fail("builder_open: %s", cellar_strerror(rc));
		return;
	}
	for (unsigned i = 0; i < BUILD_KEYS && rc == CELLAR_OK; i++) {
		int kl = snprintf(key, sizeof key, "built%08u", i);
		int vl = snprintf(val, sizeof val, "value of %u, %s", i,
		                  i % 5 ? "short" : "somewhat longer than that");
		rc = cellar_builder_add(b, key, (size_t)kl, val, (size_t)vl);
	}
	if (rc == CELLAR_OK)
		rc = cellar_builder_finish(b);
	cellar_builder_abort(b);
	if (rc != CELLAR_OK) {
		fail("build: %s (%s)", cellar_strerror(rc), cellar_errmsg());
		return;
	}
	o.fs = fs;
	o.flags = CELLAR_READONLY;
	if ((rc = cellar_open(&db, path, &o)) != CELLAR_OK) {
		fail("open the built store: %s", cellar_strerror(rc));
		return;
	}
	for (unsigned i = 0; i < BUILD_KEYS; i++) {
		int kl = snprintf(key, sizeof key, "built%08u", i);
		int vl = snprintf(val, sizeof val, "value of %u, %s", i,
		                  i % 5 ? "short" : "somewhat longer than that");
		rc = cellar_get(db, key, (size_t)kl, got, sizeof got, &len);
		if (rc != CELLAR_OK || len != (size_t)vl || memcmp(got, val, len)) {
			fail("built key %u: %s", i, cellar_strerror(rc));
			break;
		}
	}
	cellar_close(db);
}

int main(void)
{
	const char *fsname = getenv("CELLAR_TEST_FS");
	const char *sec = getenv("CELLAR_STRESS_SECONDS");
	double seconds = sec && atof(sec) > 0 ? atof(sec) : 2.0;
	pthread_t rt[NREADERS + NRO_READERS], itt, reft, snt;
	snap_arg sa;
	reader *readers = calloc(NREADERS + NRO_READERS, sizeof *readers);
	cellar_db *ro = NULL;
	unsigned char *val = malloc(MAX_VAL);
	cellar_fs *fs = NULL;
	cellar_db *db = NULL;
	char dir[4200], key[KEY_LEN];
	int rc;

	if (!fsname || !*fsname)
		fsname = "mem";
	if (!readers || !val) {
		fprintf(stderr, "stress: out of memory\n");
		return 1;
	}
	if (strcmp(fsname, "mem") == 0) {
		rc = cellar_fs_mem_new(&fs);
		snprintf(dir, sizeof dir, "/stress");
	} else if (strcmp(fsname, "mmap") == 0 || strcmp(fsname, "posix") == 0) {
		const char *t = getenv("TMPDIR");
		rc = strcmp(fsname, "mmap") == 0 ? cellar_fs_mmap_new(&fs)
		                                 : cellar_fs_posix_new(&fs);
		snprintf(tmp_root, sizeof tmp_root, "%s/cellar-stress-XXXXXX",
		         t && *t ? t : "/tmp");
		if (!mkdtemp(tmp_root)) {
			perror("stress: mkdtemp");
			return 1;
		}
		snprintf(dir, sizeof dir, "%s/store", tmp_root);
	} else {
		fprintf(stderr, "stress: unknown CELLAR_TEST_FS '%s'\n", fsname);
		return 1;
	}
	if (rc != CELLAR_OK) {
		fprintf(stderr, "stress: cannot make the %s file system\n", fsname);
		return 1;
	}
	if ((rc = open_store(fs, dir, 1, &db)) != CELLAR_OK) {
		fprintf(stderr, "stress: open: %s (%s)\n", cellar_strerror(rc),
		        cellar_errmsg());
		return 1;
	}
	/* The stable keys, written before anyone reads. */
	for (unsigned i = 0; i < STABLE; i++) {
		key_of(i, key);
		model[i] = 1;
		if ((rc = cellar_put(db, key, KEY_LEN, val, encode(i, 1, val))) != 0)
			fail("put of stable key %u: %s", i, cellar_strerror(rc));
	}
	if ((rc = cellar_sync(db)) != CELLAR_OK ||
	    (rc = open_readonly(fs, dir, &ro)) != CELLAR_OK) {
		fprintf(stderr, "stress: read-only open: %s (%s)\n",
		        cellar_strerror(rc), cellar_errmsg());
		return 1;
	}
	for (int t = 0; t < NREADERS + NRO_READERS; t++) {
		readers[t].db = t < NREADERS ? db : ro;
		readers[t].id = t;
		if (pthread_create(&rt[t], NULL, reader_main, &readers[t]) != 0) {
			fprintf(stderr, "stress: pthread_create failed\n");
			return 1;
		}
	}
	if (pthread_create(&itt, NULL, iter_main, db) != 0 ||
	    pthread_create(&reft, NULL, refresher_main, ro) != 0) {
		fprintf(stderr, "stress: pthread_create failed\n");
		return 1;
	}
	sa.db = db;
	sa.fs = fs;
	sa.dir = dir;
	if (pthread_create(&snt, NULL, snap_main, &sa) != 0) {
		fprintf(stderr, "stress: pthread_create failed\n");
		return 1;
	}
	writer(db, seconds);
	atomic_store(&stop, 1);
	for (int t = 0; t < NREADERS + NRO_READERS; t++)
		pthread_join(rt[t], NULL);
	pthread_join(itt, NULL);
	pthread_join(reft, NULL);
	pthread_join(snt, NULL);
	if ((rc = cellar_close(db)) != CELLAR_OK)
		fail("close: %s", cellar_strerror(rc));
	if ((rc = cellar_refresh(ro)) != CELLAR_OK)
		fail("last refresh: %s", cellar_strerror(rc));
	else
		check_final(ro, "read-only handle, refreshed");
	if ((rc = cellar_close(ro)) != CELLAR_OK)
		fail("read-only close: %s", cellar_strerror(rc));
	if (!atomic_load(&failed)) {
		if ((rc = open_store(fs, dir, 0, &db)) != CELLAR_OK) {
			fail("reopen: %s", cellar_strerror(rc));
		} else {
			check_final(db, "after reopen");
			if ((rc = cellar_close(db)) != CELLAR_OK)
				fail("final close: %s", cellar_strerror(rc));
		}
		if ((rc = open_store(fs, dir, 0, &db)) != CELLAR_OK)
			fail("reopen for phase 2: %s", cellar_strerror(rc));
		else
			phase2(db);
		phase3(fs, dir);
	}
	cellar_fs_free(fs);
	if (tmp_root[0])
		remove_tree(tmp_root);
	free(readers);
	free(val);
	printf("stress: %llu reads, %llu writes, %llu iterations, %llu refreshes "
	       "(%s, %.1f s, %llu compactions by the writer), %llu snapshots, "
	       "%llu backups\n",
	       (unsigned long long)atomic_load(&n_reads),
	       (unsigned long long)atomic_load(&n_writes),
	       (unsigned long long)atomic_load(&n_iters),
	       (unsigned long long)atomic_load(&n_refreshes), fsname, seconds,
	       (unsigned long long)atomic_load(&n_compactions),
	       (unsigned long long)atomic_load(&n_snaps),
	       (unsigned long long)atomic_load(&n_backups));
	if (atomic_load(&failed)) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	printf("1 passed, 0 failed\n");
	return 0;
}

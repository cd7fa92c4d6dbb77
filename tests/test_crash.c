/*
 * test_crash.c - crash safety on the fault file system.
 *
 * Each workload (a fixed script of puts, deletes, syncs and reopens) runs
 * once on fault(mem) to count its mutations N.  Then, for every k in 1..N
 * (all of them up to a cap, a sample beyond), it runs again on a fresh store
 * with a crash at mutation k, the file system is power-cut (seed 0: every
 * file back to its last sync; a nonzero seed: a random subset of the
 * unsynced writes kept, whole, torn or dropped), and the store is reopened on
 * the bare file system.  The durability contract is then checked:
 *
 *   a. it opens (it must repair whatever the crash left);
 *   b. a write acknowledged before the last successful sync (or close, or,
 *      with CELLAR_SYNC_ALWAYS, any acknowledged write) is there with exactly
 *      its value, unless later writes to that key may have replaced it;
 *   c. no key has a value that was never written for it, and no torn value;
 *   d. count equals the number of items iteration gives, and every item
 *      has a value the model allows and agrees with get.
 *
 * The model keeps, per key, its durable state (as of the last successful
 * sync) and the states of every write attempted since; any of those may be
 * what survives.  Runs on the mem file system through the fault wrapper
 * whatever CELLAR_TEST_FS says.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"

#define DIR "/store"
#define HASH_SEED 0x5eed5eedull
/* Crash points tried per workload before sampling, and the sample size. */
#define K_ALL 400
#define K_SAMPLE 250
/* Wall-clock budget of one workload's crash loop, in seconds. */
#define BUDGET_S 25.0
/* Values: up to MAX_VAL; "big" workloads make some larger than the
 * engine's 1 MiB append buffer, which are written in place. */
#define BIG_VAL ((1u << 20) + 4000)
#define MAX_VAL (BIG_VAL + 4096)

/* Where we are, for every failure message. */
static char where[200];
static char msgbuf[512];

static const char *msg(const char *fmt, ...) CR_FORMAT(printf, 1, 2);
static const char *msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
	va_end(ap);
	return msgbuf;
}

#define CHECK(cond, ...) cr_assert((cond), "%s: %s", where, msg(__VA_ARGS__))

/* ---- keys and values ---------------------------------------------------- */

/* Key i: "ck" and five digits, then i % 7 letters (lengths vary). */
static size_t key_of(unsigned i, char *out)
{
	int n = snprintf(out, 32, "ck%05u", i);
	size_t pad = i % 7;

	memset(out + n, 'a' + (int)(i % 26), pad);
	return (size_t)n + pad;
}

/* The key number of an encoded key, or -1 if it is not one of ours. */
static long key_num(const void *k, size_t kn)
{
	char buf[32], want[32];
	unsigned i;

	if (kn < 7 || kn >= sizeof buf)
		return -1;
	memcpy(buf, k, kn);
	buf[kn] = '\0';
	if (sscanf(buf, "ck%5u", &i) != 1)
		return -1;
	if (key_of(i, want) != kn || memcmp(want, k, kn) != 0)
		return -1;
	return (long)i;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t s = a * 0x9e3779b97f4a7c15ull ^ b;
	return tc_rand(&s);
}

/*
 * Version v (>= 1) of key i's value: "k<i>.v<v>|" then bytes that depend on
 * both, of a length in [vmin, vmax] (never shorter than the prefix); with
 * big, one value in eight is over 1 MiB.
 */
static size_t val_of(unsigned i, unsigned v, unsigned vmin, unsigned vmax,
                     bool big, unsigned char *out)
{
	uint64_t s = mix(i, v);
	size_t len = vmin + (size_t)(tc_rand(&s) % (vmax - vmin + 1));
	if (big && tc_rand(&s) % 8 == 0)
		len = BIG_VAL - (size_t)(tc_rand(&s) % 4000);
	int n = snprintf((char *)out, 32, "k%u.v%u|", i, v);

	if (len < (size_t)n)
		len = (size_t)n;
	/* 4 KiB of noise, then copies of it, each block stamped with its
	 * number so that a block landing in the wrong place shows */
	size_t head = len < 4096 ? len : 4096;
	for (size_t j = (size_t)n; j < head; j += 8) {
		uint64_t r = tc_rand(&s);
		memcpy(out + j, &r, head - j < 8 ? head - j : 8);
	}
	for (size_t j = 4096; j < len; j += 4096) {
		size_t m = len - j < 4096 ? len - j : 4096;
		uint32_t stamp = (uint32_t)(j / 4096);
		memcpy(out + j, out, m);
		memcpy(out + j, &stamp, m < 4 ? m : 4);
	}
	return len;
}

/* The version a value claims to be of key i, or 0 if it claims none. */
static unsigned val_version(unsigned i, const void *v, size_t vn)
{
	char buf[40];
	unsigned ki, ver;
	size_t n = vn < sizeof buf - 1 ? vn : sizeof buf - 1;

	memcpy(buf, v, n);
	buf[n] = '\0';
	if (sscanf(buf, "k%u.v%u|", &ki, &ver) != 2 || ki != i)
		return 0;
	return ver;
}

/* ---- workloads ---------------------------------------------------------- */

enum { OP_PUT, OP_DEL, OP_SYNC, OP_REOPEN, OP_COMPACT };

typedef struct op {
	int kind;
	unsigned key, ver;
} op;

typedef struct workload {
	const char *name;
	int sync_mode;
	uint64_t max_segment_size;
	unsigned compact_dead_pct;
	unsigned nkeys, vmin, vmax;
	bool big;
	op *ops;
	size_t nops, cap;
	unsigned *next_ver; /* per key, while building */
} workload;

static void wl_init(workload *w, const char *name, int sync_mode,
                    uint64_t seg, unsigned nkeys, unsigned vmin, unsigned vmax)
{
	memset(w, 0, sizeof *w);
	w->name = name;
	w->sync_mode = sync_mode;
	w->max_segment_size = seg;
	w->nkeys = nkeys;
	w->vmin = vmin;
	w->vmax = vmax;
	w->next_ver = calloc(nkeys, sizeof *w->next_ver);
	cr_assert_not_null(w->next_ver);
}

static void wl_add(workload *w, int kind, unsigned key)
{
	if (w->nops == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		w->ops = realloc(w->ops, w->cap * sizeof *w->ops);
		cr_assert_not_null(w->ops);
	}
	op *o = &w->ops[w->nops++];
	o->kind = kind;
	o->key = key;
	o->ver = kind == OP_PUT ? ++w->next_ver[key] : 0;
}

static void wl_free(workload *w)
{
	free(w->ops);
	free(w->next_ver);
}

/* A random mix: put with probability put_pct, else delete; sync every. */
static void wl_mix(workload *w, uint64_t *rng, size_t n, unsigned put_pct,
                   size_t every)
{
	for (size_t j = 1; j <= n; j++) {
		unsigned k = (unsigned)(tc_rand(rng) % w->nkeys);
		wl_add(w, tc_rand(rng) % 100 < put_pct ? OP_PUT : OP_DEL, k);
		if (every && j % every == 0)
			wl_add(w, OP_SYNC, 0);
	}
}

static void wl_puts(workload *w)
{
	wl_init(w, "puts", CELLAR_SYNC_NONE, 1 << 20, 300, 16, 200);
	for (unsigned i = 0; i < w->nkeys; i++) {
		wl_add(w, OP_PUT, i);
		if (i % 60 == 59)
			wl_add(w, OP_SYNC, 0);
	}
	for (unsigned i = 0; i < 20; i++)
		wl_add(w, OP_PUT, 300 - 1 - i); /* unsynced overwrites at the end */
}

static void wl_overwrites(workload *w)
{
	uint64_t rng = 11;

	wl_init(w, "overwrites", CELLAR_SYNC_NONE, 1 << 20, 40, 8, 300);
	wl_mix(w, &rng, 400, 100, 70);
}

static void wl_deletes(workload *w)
{
	uint64_t rng = 22;

	wl_init(w, "deletes", CELLAR_SYNC_NONE, 1 << 20, 150, 8, 120);
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 300, 45, 50);
}

static void wl_rollover(workload *w)
{
	uint64_t rng = 33;

	wl_init(w, "segment_rollover", CELLAR_SYNC_NONE, 64 << 10, 120, 500, 1500);
	wl_mix(w, &rng, 260, 80, 40);
}

static void wl_splits(workload *w)
{
	uint64_t rng = 44;

	wl_init(w, "index_splits", CELLAR_SYNC_NONE, 64 << 10, 1500, 1, 24);
	for (unsigned i = 0; i < w->nkeys; i++) {
		wl_add(w, OP_PUT, i);
		if (i == 700)
			wl_add(w, OP_SYNC, 0);
	}
	wl_add(w, OP_REOPEN, 0); /* a checkpoint of a many-bucket table */
	wl_mix(w, &rng, 400, 50, 150);
	for (unsigned i = 0; i < 100; i++)
		wl_add(w, OP_PUT, i); /* unsynced, replayed past the checkpoint */
}

static void wl_always(workload *w)
{
	uint64_t rng = 55;

	wl_init(w, "sync_always", CELLAR_SYNC_ALWAYS, 64 << 10, 60, 200, 900);
	wl_mix(w, &rng, 200, 75, 0);
}

static void wl_many_syncs(workload *w)
{
	uint64_t rng = 77;

	wl_init(w, "many_syncs", CELLAR_SYNC_NONE, 64 << 10, 100, 200, 2000);
	wl_mix(w, &rng, 300, 75, 3);
}

static void wl_big(workload *w)
{
	uint64_t rng = 88;

	wl_init(w, "big_values", CELLAR_SYNC_NONE, 64 << 10, 16, 10, 3000);
	w->big = true;
	wl_mix(w, &rng, 36, 80, 5);
}

/* Overwrites and deletes leave dead records; compaction rewrites them. */
static void wl_compact(workload *w)
{
	uint64_t rng = 111;

	wl_init(w, "compaction", CELLAR_SYNC_NONE, 64 << 10, 150, 200, 800);
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 150, 60, 50);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 100, 50, 0);
	wl_add(w, OP_COMPACT, 0); /* with unsynced writes */
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 60, 40, 30);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 30, 50, 0);
	wl_add(w, OP_COMPACT, 0);
}

/* The same in CELLAR_SYNC_ALWAYS mode, mostly deletes: tombstones. */
static void wl_compact_always(workload *w)
{
	uint64_t rng = 222;

	wl_init(w, "compaction_sync_always", CELLAR_SYNC_ALWAYS, 64 << 10, 80,
	        300, 900);
	w->compact_dead_pct = 5;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 80, 30, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 40, 50, 0);
	wl_add(w, OP_COMPACT, 0);
}

static void wl_reopen(workload *w)
{
	uint64_t rng = 66;

	wl_init(w, "reopen_midway", CELLAR_SYNC_NONE, 64 << 10, 200, 100, 600);
	wl_mix(w, &rng, 120, 85, 50);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 120, 70, 0);
	wl_add(w, OP_REOPEN, 0); /* the close writes a checkpoint over unsynced data */
	wl_mix(w, &rng, 60, 70, 25);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 40, 70, 0);
}

/* ---- the model ---------------------------------------------------------- */

#define ABSENT 0u /* version 0: no value */

typedef struct kstate {
	unsigned durable; /* as of the last successful sync */
	unsigned acked;   /* after every acknowledged write */
	unsigned *pend;   /* states of every write attempted since */
	size_t npend, cap;
} kstate;

typedef struct model {
	unsigned nkeys;
	kstate *k;
	bool opened;  /* an open succeeded: the store exists durably */
} model;

static void model_init(model *m, unsigned nkeys)
{
	m->nkeys = nkeys;
	m->k = calloc(nkeys, sizeof *m->k);
	m->opened = false;
	cr_assert_not_null(m->k);
}

static void model_free(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		free(m->k[i].pend);
	free(m->k);
}

static void pend_add(kstate *s, unsigned state)
{
	if (s->npend == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 4;
		s->pend = realloc(s->pend, s->cap * sizeof *s->pend);
		cr_assert_not_null(s->pend);
	}
	s->pend[s->npend++] = state;
}

static void make_durable(kstate *s)
{
	s->durable = s->acked;
	s->npend = 0;
}

static void model_synced(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		make_durable(&m->k[i]);
}

static bool allowed(const kstate *s, unsigned state)
{
	if (s->durable == state)
		return true;
	for (size_t j = 0; j < s->npend; j++)
		if (s->pend[j] == state)
			return true;
	return false;
}

static const char *allowed_str(const kstate *s)
{
	static char buf[256];
	size_t n = (size_t)snprintf(buf, sizeof buf, "durable v%u, then",
	                            s->durable);

	for (size_t j = 0; j < s->npend && n < sizeof buf - 16; j++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, " v%u", s->pend[j]);
	if (!s->npend)
		snprintf(buf + n, sizeof buf - n, " nothing");
	return buf;
}

/* ---- running a workload ------------------------------------------------- */

static void options_for(cellar_options *o, const workload *w, cellar_fs *fs,
                        unsigned flags)
{
	cellar_options d = CELLAR_OPTIONS_INIT;

	*o = d;
	o->flags = flags;
	o->fs = fs;
	o->sync_mode = w->sync_mode;
	o->max_segment_size = w->max_segment_size;
	o->compact_dead_pct = w->compact_dead_pct;
	o->hash_seed = HASH_SEED;
}

/* An error a call may return once the machine is off. */
static bool crash_error(int rc)
{
	return rc == CELLAR_EIO || rc == CELLAR_EFAILED;
}

/* A call returned rc: fine if OK, or if it failed after the crash. */
static void check_call(cellar_fs *fs, int rc, const char *what, size_t step)
{
	if (rc == CELLAR_OK)
		return;
	CHECK(fault_fs_crashed(fs), "step %zu: %s failed with %s (%s) before "
	      "any crash", step, what, cellar_strerror(rc), cellar_errmsg());
	CHECK(crash_error(rc), "step %zu: %s failed with %s (%s), want EIO or "
	      "EFAILED after the crash", step, what, cellar_strerror(rc),
	      cellar_errmsg());
}

static cellar_db *wl_open(const workload *w, cellar_fs *fs, model *m,
                          size_t step)
{
	cellar_options o;
	cellar_db *db = NULL;

	options_for(&o, w, fs, CELLAR_CREATE);
	int rc = cellar_open(&db, DIR, &o);
	check_call(fs, rc, "open", step);
	CHECK((rc == CELLAR_OK) == (db != NULL), "open: handle and result differ");
	if (db)
		m->opened = true;
	return db;
}

/* Compaction passes run and segments they rewrote, for the dry run. */
static uint64_t compactions, compacted;

/* Run w on fs (the fault wrapper), recording what was acknowledged. */
static void wl_run(const workload *w, cellar_fs *fs, model *m)
{
	static unsigned char val[MAX_VAL];
	char key[32];
	cellar_db *db = wl_open(w, fs, m, 0);
	int rc;

	for (size_t j = 0; j < w->nops; j++) {
		const op *o = &w->ops[j];
		kstate *s = &m->k[o->key];
		size_t kn = key_of(o->key, key);

		if (o->kind == OP_REOPEN) {
			if (db) {
				rc = cellar_close(db);
				check_call(fs, rc, "close", j);
				if (rc == CELLAR_OK)
					model_synced(m);
			}
			db = wl_open(w, fs, m, j);
			continue;
		}
		if (!db)
			continue;
		switch (o->kind) {
		case OP_PUT: {
			size_t vn = val_of(o->key, o->ver, w->vmin, w->vmax, w->big, val);
			rc = cellar_put(db, key, kn, val, vn);
			check_call(fs, rc, "put", j);
			pend_add(s, o->ver);
			if (rc == CELLAR_OK) {
				s->acked = o->ver;
				if (w->sync_mode == CELLAR_SYNC_ALWAYS)
					make_durable(s);
			}
			break;
		}
		case OP_DEL:
			rc = cellar_delete(db, key, kn);
			if (rc == CELLAR_ENOTFOUND) {
				CHECK(s->acked == ABSENT, "step %zu: delete of key %u "
				      "(v%u) gave ENOTFOUND", j, o->key, s->acked);
				break;
			}
			check_call(fs, rc, "delete", j);
			pend_add(s, ABSENT);
			if (rc == CELLAR_OK) {
				CHECK(s->acked != ABSENT, "step %zu: delete of absent "
				      "key %u succeeded", j, o->key);
				s->acked = ABSENT;
				if (w->sync_mode == CELLAR_SYNC_ALWAYS)
					make_durable(s);
			}
			break;
		case OP_SYNC:
			rc = cellar_sync(db);
			check_call(fs, rc, "sync", j);
			if (rc == CELLAR_OK)
				model_synced(m);
			break;
		case OP_COMPACT: {
			/* changes no key: the model stays as it is */
			cellar_compact_result res;
			rc = cellar_compact(db, &res);
			check_call(fs, rc, "compact", j);
			if (rc == CELLAR_OK) {
				compactions++;
				compacted += res.segments_compacted;
			}
			break;
		}
		}
	}
	if (db) {
		rc = cellar_close(db);
		check_call(fs, rc, "close", w->nops);
		if (rc == CELLAR_OK)
			model_synced(m);
	}
}

/* ---- checking the store after the power cut ----------------------------- */

/* Check key i's value (or absence) against the model; returns its state. */
static unsigned check_value(const workload *w, const model *m, unsigned i,
                            int rc, const void *v, size_t vn, const char *how)
{
	const kstate *s = &m->k[i];
	static unsigned char want[MAX_VAL];

	if (rc == CELLAR_ENOTFOUND) {
		CHECK(allowed(s, ABSENT), "key %u: %s gives ENOTFOUND; allowed: %s",
		      i, how, allowed_str(s));
		return ABSENT;
	}
	CHECK(rc == CELLAR_OK, "key %u: %s gives %s (%s)", i, how,
	      cellar_strerror(rc), cellar_errmsg());
	unsigned ver = val_version(i, v, vn);
	CHECK(ver != ABSENT, "key %u: %s gives a value that is not one of this "
	      "key's (%zu bytes: '%.*s')", i, how, vn, (int)(vn < 24 ? vn : 24),
	      (const char *)v);
	CHECK(allowed(s, ver), "key %u: %s gives v%u; allowed: %s", i, how, ver,
	      allowed_str(s));
	size_t wn = val_of(i, ver, w->vmin, w->vmax, w->big, want);
	CHECK(vn == wn && memcmp(v, want, vn) == 0, "key %u: %s gives v%u torn "
	      "or altered (%zu bytes, written %zu)", i, how, ver, vn, wn);
	return ver;
}

/* Open the store on the bare fs and check it against m; returns live keys. */
static uint64_t check_store(const workload *w, cellar_fs *base, const model *m,
                            unsigned *state)
{
	static unsigned char buf[MAX_VAL];
	cellar_options o;
	cellar_db *db = NULL;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	char key[32];
	uint64_t live = 0, items = 0, count = 0;
	bool *seen;
	int rc;

	options_for(&o, w, base, m->opened ? 0 : CELLAR_CREATE);
	o.sync_mode = CELLAR_SYNC_NONE;
	rc = cellar_open(&db, DIR, &o);
	CHECK(rc == CELLAR_OK, "reopen after the power cut: %s (%s)",
	      cellar_strerror(rc), cellar_errmsg());
	for (unsigned i = 0; i < m->nkeys; i++) {
		size_t n = 0;
		kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		state[i] = check_value(w, m, i, rc, buf, n, "get");
		live += state[i] != ABSENT;
		rc = cellar_has(db, key, kn);
		CHECK(rc == (state[i] == ABSENT ? CELLAR_ENOTFOUND : CELLAR_OK),
		      "key %u: has gives %s, get gave %s", i, cellar_strerror(rc),
		      state[i] == ABSENT ? "ENOTFOUND" : "a value");
	}
	CHECK(cellar_count(db, &count) == CELLAR_OK, "count failed");
	seen = calloc(m->nkeys, sizeof *seen);
	cr_assert_not_null(seen);
	CHECK(cellar_iter_new(db, &it) == CELLAR_OK, "iter_new failed");
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		long i = key_num(k, kn);
		CHECK(i >= 0 && (unsigned long)i < m->nkeys,
		      "iteration gives a foreign key '%.*s'", (int)kn,
		      (const char *)k);
		CHECK(!seen[i], "iteration gives key %ld twice", i);
		seen[i] = true;
		unsigned ver = check_value(w, m, (unsigned)i, CELLAR_OK, v, vn,
		                           "iteration");
		CHECK(ver == state[i], "key %ld: iteration gives v%u, get gave v%u",
		      i, ver, state[i]);
		items++;
	}
	CHECK(rc == CELLAR_EDONE, "iteration ends with %s (%s)",
	      cellar_strerror(rc), cellar_errmsg());
	cellar_iter_free(it);
	free(seen);
	CHECK(items == live, "iteration gives %llu items, get finds %llu keys",
	      (unsigned long long)items, (unsigned long long)live);
	CHECK(count == items, "count %llu, iteration gives %llu items",
	      (unsigned long long)count, (unsigned long long)items);
	rc = cellar_close(db);
	CHECK(rc == CELLAR_OK, "close after the check: %s (%s)",
	      cellar_strerror(rc), cellar_errmsg());
	return live;
}

/* The repaired store, opened once more, must hold exactly the same. */
static void check_stable(const workload *w, cellar_fs *base, const model *m,
                         const unsigned *state)
{
	static unsigned char buf[MAX_VAL];
	cellar_options o;
	cellar_db *db = NULL;
	char key[32];
	int rc;

	options_for(&o, w, base, 0);
	rc = cellar_open(&db, DIR, &o);
	CHECK(rc == CELLAR_OK, "second reopen: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	for (unsigned i = 0; i < m->nkeys; i++) {
		size_t n = 0;
		size_t kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		unsigned ver = rc == CELLAR_OK ? val_version(i, buf, n) : ABSENT;
		CHECK((rc == CELLAR_OK || rc == CELLAR_ENOTFOUND) && ver == state[i],
		      "second reopen: key %u is %s v%u, the first gave v%u", i,
		      cellar_strerror(rc), ver, state[i]);
	}
	CHECK(cellar_close(db) == CELLAR_OK, "close after the second reopen");
}

/* ---- the crash loop ----------------------------------------------------- */

static void new_fs(cellar_fs **base, cellar_fs **ff)
{
	*base = tc_fs_new_named("mem");
	cr_assert_eq(fault_fs_new(ff, *base), CELLAR_OK);
}

/* One crash at mutation k, then a power cut with seed, then the checks. */
static void crash_once(const workload *w, uint64_t k, uint64_t seed,
                       unsigned *state)
{
	cellar_fs *base, *ff;
	model m;

	snprintf(where, sizeof where, "workload %s, crash at mutation %llu, "
	         "power cut seed %llu", w->name, (unsigned long long)k,
	         (unsigned long long)seed);
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	fault_fs_crash_at(ff, k);
	wl_run(w, ff, &m);
	CHECK(fault_fs_crashed(ff), "the crash did not happen (the workload "
	      "is not deterministic?)");
	int rc = fault_fs_power_cut(ff, seed);
	CHECK(rc == CELLAR_OK, "power cut: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	cellar_fs_free(ff);
	check_store(w, base, &m, state);
	if (seed)
		check_stable(w, base, &m, state);
	model_free(&m);
	cellar_fs_free(base);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void crash_all(workload *w)
{
	cellar_fs *base, *ff;
	unsigned *state = calloc(w->nkeys, sizeof *state);
	model m;
	uint64_t n, rng = 99, tried = 0;
	double start = now_s();

	cr_assert_not_null(state);
	/* The dry run: no crash; everything must be there after close. */
	snprintf(where, sizeof where, "workload %s, dry run", w->name);
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	compactions = compacted = 0;
	wl_run(w, ff, &m);
	n = fault_fs_mutations(ff);
	CHECK(compactions == 0 || compacted > 0, "%llu compaction passes "
	      "rewrote no segment", (unsigned long long)compactions);
	CHECK(!fault_fs_crashed(ff), "crashed without a crash point");
	for (unsigned i = 0; i < w->nkeys; i++)
		CHECK(m.k[i].npend == 0 && m.k[i].durable == m.k[i].acked,
		      "key %u not durable after a clean close", i);
	cellar_fs_free(ff);
	check_store(w, base, &m, state);
	model_free(&m);
	cellar_fs_free(base);
	CHECK(n > 0, "no mutations");

	for (uint64_t k = 1; k <= n; k++) {
		/* every k up to K_ALL and the last 40; a sample in between */
		if (n > K_ALL + 40 && k > K_ALL && k <= n - 40 &&
		    tc_rand(&rng) % (n - K_ALL - 40) >= K_SAMPLE)
			continue;
		if (now_s() - start > BUDGET_S) {
			cr_log_info("crash %s: time budget spent after %llu of %llu "
			            "crash points", w->name, (unsigned long long)tried,
			            (unsigned long long)n);
			break;
		}
		crash_once(w, k, 0, state);
		crash_once(w, k, k * 0x2545f4914f6cdd1dull | 1, state);
		tried++;
	}
	cr_log_info("crash %s: %llu mutations, %llu crash points, %.1f s",
	            w->name, (unsigned long long)n, (unsigned long long)tried,
	            now_s() - start);
	free(state);
	wl_free(w);
}

Test(crash, puts_with_syncs)
{
	workload w;
	wl_puts(&w);
	crash_all(&w);
}

Test(crash, overwrites)
{
	workload w;
	wl_overwrites(&w);
	crash_all(&w);
}

Test(crash, deletes)
{
	workload w;
	wl_deletes(&w);
	crash_all(&w);
}

Test(crash, segment_rollover)
{
	workload w;
	wl_rollover(&w);
	crash_all(&w);
}

Test(crash, index_splits_and_checkpoint)
{
	workload w;
	wl_splits(&w);
	crash_all(&w);
}

Test(crash, sync_always)
{
	workload w;
	wl_always(&w);
	crash_all(&w);
}

Test(crash, many_syncs)
{
	workload w;
	wl_many_syncs(&w);
	crash_all(&w);
}

Test(crash, values_larger_than_the_append_buffer)
{
	workload w;
	wl_big(&w);
	crash_all(&w);
}

Test(crash, compaction)
{
	workload w;
	wl_compact(&w);
	crash_all(&w);
}

Test(crash, compaction_sync_always)
{
	workload w;
	wl_compact_always(&w);
	crash_all(&w);
}

Test(crash, reopen_midway)
{
	workload w;
	wl_reopen(&w);
	crash_all(&w);
}

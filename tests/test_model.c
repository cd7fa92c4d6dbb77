/*
 * test_model.c - a seeded random walk of puts, deletes, gets, counts,
 * iterations and reopens, checked after every step against a plain array
 * that holds what the store should contain.  A failure names the seed and
 * the step, so it replays exactly.  With expiring keys on, some puts (and
 * batch puts) expire, some are no-overwrite, an injected clock advances
 * and compaction passes drop what expired: the model keeps each key's
 * expiry and tells what is visible (not expired) from what the index
 * still holds (what cellar_count counts).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "files.h"
#include "testhook.h"

#define MAX_KEY 400
#define SMALL_VAL 300
#define LARGE_VAL 70000 /* larger than a 64 KiB segment */

/* What the store should hold for key i: live means the index holds it
 * (counted), visible (entry_visible) that it has not expired either. */
typedef struct entry {
	bool live;
	unsigned char *val;
	size_t len;
	uint64_t expire; /* ms since the epoch on model_clock; 0: never */
} entry;

/* The stores' injected clock (expiring keys). */
static uint64_t model_now = 1700000000000ull;

static uint64_t model_clock(void *ctx)
{
	(void)ctx;
	return model_now;
}

static bool entry_visible(const entry *e)
{
	return e->live && !(e->expire && model_now >= e->expire);
}

typedef struct model {
	unsigned nkeys;
	entry *e;
	uint64_t live;
} model;

typedef struct config {
	uint64_t seed;
	unsigned steps;
	unsigned nkeys;
	uint64_t max_segment_size;
	uint64_t max_buckets;
	cellar__hash_fn hash;
	unsigned min_val;       /* added to every put's value length */
	unsigned reopen_one_in; /* > 1: reopen only at 1 in this many of the
	                         * reopen steps, iterate at the others */
	bool log_writes;        /* check that full buffers were cut at 2 MiB
	                         * boundaries */
	unsigned ckpt_every;    /* > 0: every this many steps a compaction
	                         * pass, whose checkpoint runs puts and deletes
	                         * between its freeze and its write */
	unsigned follow_every;  /* > 0: a read-only handle follows the store;
	                         * every this many steps the writer syncs, the
	                         * follower refreshes and is checked whole */
	bool flush_overlap;     /* ...and its writes of full append buffers
	                         * (without the writer mutex) run them too */
	bool expiring;          /* expiring and no-overwrite puts, clock
	                         * advances and compaction passes */
} config;

/* Where we are, for every failure message: "seed 3 step 1234 (put k17)". */
static char where[160];

#define CHECK(cond, ...)                                                     \
	cr_assert((cond), "%s: %s", where, check_msg(__VA_ARGS__))

#define CHECK_RC(rc, want)                                                   \
	cr_assert_eq((rc), (want), "%s: want %s, got %s (%s)", where,        \
	             cellar_strerror(want), cellar_strerror(rc), cellar_errmsg())

static char msgbuf[256];

static const char *check_msg(const char *fmt, ...) CR_FORMAT(printf, 1, 2);
static const char *check_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
	va_end(ap);
	return msgbuf;
}

/*
 * Key i: its decimal number, then i % 23 dots; every 97th key is long.
 * The dots keep keys distinct ("1." is key 1 with one dot, never key 1x).
 */
static size_t key_of(unsigned i, unsigned char k[MAX_KEY])
{
	size_t n = (size_t)snprintf((char *)k, MAX_KEY, "%u", i);
	size_t dots = i % 97 == 5 ? 300 : i % 23;

	memset(k + n, '.', dots);
	return n + dots;
}

static void model_init(model *m, unsigned nkeys)
{
	m->nkeys = nkeys;
	m->e = calloc(nkeys, sizeof *m->e);
	m->live = 0;
	cr_assert_not_null(m->e);
}

static void model_free(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		free(m->e[i].val);
	free(m->e);
}

static void model_put_exp(model *m, unsigned i, const unsigned char *v,
                          size_t n, uint64_t expire)
{
	entry *e = &m->e[i];

	free(e->val);
	e->val = malloc(n ? n : 1);
	cr_assert_not_null(e->val);
	memcpy(e->val, v, n);
	e->len = n;
	if (!e->live)
		m->live++;
	e->live = true;
	e->expire = expire;
}

static void model_put(model *m, unsigned i, const unsigned char *v, size_t n)
{
	model_put_exp(m, i, v, n, 0);
}

static void model_delete(model *m, unsigned i)
{
	entry *e = &m->e[i];

	free(e->val);
	e->val = NULL;
	e->len = 0;
	if (e->live)
		m->live--;
	e->live = false;
	e->expire = 0;
}

/* A delete as the store does it: an expired key is absent, and nothing is
 * written (its entry stays until compaction drops it). */
static int model_delete_visible(model *m, unsigned i)
{
	if (!entry_visible(&m->e[i]))
		return CELLAR_ENOTFOUND;
	model_delete(m, i);
	return CELLAR_OK;
}

/* A compaction pass ran: every expired key is dropped. */
static void model_compacted(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		if (m->e[i].live && !entry_visible(&m->e[i]))
			model_delete(m, i);
}

static uint64_t model_visible(const model *m)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < m->nkeys; i++)
		n += entry_visible(&m->e[i]);
	return n;
}

static void check_count(const model *m, cellar_db *db)
{
	uint64_t n = UINT64_MAX;

	CHECK_RC(cellar_count(db, &n), CELLAR_OK);
	CHECK(n == m->live, "count %llu, model %llu", (unsigned long long)n,
	      (unsigned long long)m->live);
}

static void check_key(const model *m, cellar_db *db, unsigned i)
{
	static unsigned char buf[LARGE_VAL];
	unsigned char k[MAX_KEY];
	size_t kn = key_of(i, k), n = SIZE_MAX;
	const entry *e = &m->e[i];
	int rc = cellar_get(db, k, kn, buf, sizeof buf, &n);

	if (!entry_visible(e)) {
		CHECK_RC(rc, CELLAR_ENOTFOUND);
		CHECK_RC(cellar_has(db, k, kn), CELLAR_ENOTFOUND);
		return;
	}
	CHECK_RC(rc, CELLAR_OK);
	CHECK(n == e->len, "key %u: length %zu, model %zu", i, n, e->len);
	CHECK(memcmp(buf, e->val, n) == 0, "key %u: value differs", i);
	CHECK_RC(cellar_has(db, k, kn), CELLAR_OK);
}

/* Every key by lookup, then the whole store by iteration. */
static void check_all(const model *m, cellar_db *db)
{
	bool *seen = calloc(m->nkeys, sizeof *seen);
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	uint64_t items = 0;
	int rc;

	cr_assert_not_null(seen);
	for (unsigned i = 0; i < m->nkeys; i++)
		check_key(m, db, i);
	check_count(m, db);
	CHECK_RC(cellar_iter_new(db, &it), CELLAR_OK);
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		char num[16];
		size_t d = 0;
		while (d < kn && d < sizeof num - 1 && ((const char *)k)[d] != '.') {
			num[d] = ((const char *)k)[d];
			d++;
		}
		num[d] = '\0';
		unsigned i = (unsigned)strtoul(num, NULL, 10);
		unsigned char want[MAX_KEY];
		CHECK(i < m->nkeys, "iteration gave foreign key '%s'", num);
		CHECK(key_of(i, want) == kn && memcmp(want, k, kn) == 0,
		      "iteration gave foreign key '%s'", num);
		CHECK(entry_visible(&m->e[i]), "iteration gave deleted key %u", i);
		CHECK(!seen[i], "iteration gave key %u twice", i);
		seen[i] = true;
		CHECK(vn == m->e[i].len && memcmp(v, m->e[i].val, vn) == 0,
		      "iteration gave key %u a wrong value (%zu bytes, model %zu)", i,
		      vn, m->e[i].len);
		items++;
	}
	CHECK_RC(rc, CELLAR_EDONE);
	cellar_iter_free(it);
	CHECK(items == model_visible(m), "iteration gave %llu items, model has "
	      "%llu", (unsigned long long)items,
	      (unsigned long long)model_visible(m));
	free(seen);
}

/* Writes a checkpoint runs while it is being written (ckpt_every). */
static struct {
	cellar_db *db;
	model *m;
	uint64_t *rng;
	unsigned nkeys;
	unsigned ran; /* checkpoints that ran the writes */
	unsigned flushes; /* of those, buffer writes (flush_overlap) */
} ov;

static void overlap_hook(void *ctx)
{
	unsigned char k[MAX_KEY], v[64];

	(void)ctx;
	ov.ran++;
	for (int n = 0; n < 20; n++) {
		uint64_t r = tc_rand(ov.rng);
		unsigned i = (unsigned)((r >> 8) % ov.nkeys);
		size_t kn = key_of(i, k), vn = (size_t)(r >> 40) % sizeof v;
		if (r % 4 == 0) {
			int rc = cellar_delete(ov.db, k, kn);
			CHECK_RC(rc, model_delete_visible(ov.m, i));
			continue;
		}
		for (size_t j = 0; j < vn; j++)
			v[j] = (unsigned char)(r >> (j % 8));
		CHECK_RC(cellar_put(ov.db, k, kn, v, vn), CELLAR_OK);
		model_put(ov.m, i, v, vn);
	}
}

/*
 * A write batch of 1..16 puts and deletes of random keys (a key may recur:
 * the last wins), committed, then each key's last op applied to the model
 * (a delete of an expired key changes nothing, as in the store).  With
 * expiring, a put in five has a ttl, counted from the commit.
 */
static void model_batch(model *m, cellar_db *db, uint64_t *rng,
                        unsigned nkeys, bool expiring)
{
	unsigned char k[MAX_KEY], v[SMALL_VAL + 1];
	unsigned n = 1 + (unsigned)(tc_rand(rng) % 16), ids[16];
	struct {
		unsigned char v[SMALL_VAL + 1];
		size_t len;
		int del;
		uint64_t ttl;
	} ops[16];
	cellar_batch *b = NULL;
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	CHECK_RC(cellar_batch_new(&b), CELLAR_OK);
	for (unsigned j = 0; j < n; j++) {
		uint64_t r = tc_rand(rng);
		ids[j] = (unsigned)((r >> 8) % nkeys);
		size_t kn = key_of(ids[j], k);
		ops[j].del = r % 4 == 0;
		ops[j].len = (size_t)(r >> 32) % (SMALL_VAL + 1);
		for (size_t x = 0; x < ops[j].len; x++)
			v[x] = (unsigned char)(r >> (x % 8) ^ x);
		memcpy(ops[j].v, v, ops[j].len);
		ops[j].ttl = expiring && (r >> 20) % 5 == 1 ? 1 + (r >> 24) % 300 : 0;
		po.ttl_ms = ops[j].ttl;
		CHECK_RC(ops[j].del ? cellar_batch_delete(b, k, kn)
		                    : cellar_batch_put_ex(b, k, kn, v, ops[j].len,
		                                          &po),
		         CELLAR_OK);
	}
	CHECK_RC(cellar_batch_commit(db, b), CELLAR_OK);
	cellar_batch_free(b);
	for (unsigned j = 0; j < n; j++) {
		bool last = true;
		for (unsigned x = j + 1; x < n; x++)
			last &= ids[x] != ids[j];
		if (!last)
			continue;
		if (ops[j].del)
			(void)model_delete_visible(m, ids[j]);
		else
			model_put_exp(m, ids[j], ops[j].v, ops[j].len,
			              ops[j].ttl ? model_now + ops[j].ttl : 0);
	}
	for (unsigned j = 0; j < n; j++)
		check_key(m, db, ids[j]);
}

static void flush_hook(void *ctx)
{
	ov.flushes++;
	overlap_hook(ctx);
}

/*
 * A put with options, chosen by r: a ttl (1..400 ms) or an absolute
 * expiry, or no expiry; one in four no-overwrite (CELLAR_EEXIST while the
 * key is visible).
 */
static void model_put_ex(model *m, cellar_db *db, unsigned i,
                         const unsigned char *v, size_t n, uint64_t r)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
	unsigned char k[MAX_KEY];
	size_t kn = key_of(i, k);
	uint64_t expire = 0;

	switch ((r >> 8) % 3) {
	case 0:
		po.ttl_ms = 1 + (r >> 12) % 400;
		expire = model_now + po.ttl_ms;
		break;
	case 1:
		expire = po.expire_at = model_now + 1 + (r >> 12) % 400;
		break;
	}
	if ((r >> 24) % 4 == 0) {
		po.flags = CELLAR_PUT_NOOVERWRITE;
		int want = entry_visible(&m->e[i]) ? CELLAR_EEXIST : CELLAR_OK;
		CHECK_RC(cellar_put_ex(db, k, kn, v, n, &po), want);
		if (want == CELLAR_EEXIST)
			return;
	} else {
		CHECK_RC(cellar_put_ex(db, k, kn, v, n, &po), CELLAR_OK);
	}
	model_put_exp(m, i, v, n, expire);
}

/* The clock moves (by r); now and then a pass drops what expired. */
static void model_advance(model *m, cellar_db *db, unsigned i, uint64_t r)
{
	model_now += (r >> 32) % 120;
	check_key(m, db, i);
	if ((r >> 48) % 8 == 0) {
		CHECK_RC(cellar_compact(db, NULL), CELLAR_OK);
		model_compacted(m);
		check_all(m, db);
	}
}

static void open_db(cellar_db **db, const char *dir, const cellar_options *o)
{
	*db = NULL;
	CHECK_RC(cellar_open(db, dir, o), CELLAR_OK);
}

static void run_model(const config *c)
{
	cellar_fs *fs = tc_fs_new();
	tc_wlog *log = c->log_writes ? tc_wlog_new(fs) : NULL;
	char *dir = tc_dir_new();
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	model m;
	uint64_t rng = c->seed;
	unsigned char *val = malloc(LARGE_VAL);
	unsigned char *buf = malloc(LARGE_VAL);
	unsigned reopens = 0, ro_looks = 0, large = 0, follows = 0;
	cellar_db *follower = NULL;
	/* CELLAR_MODEL_TRACE=1 prints every step, to turn a failure into a
	 * reproducer. */
	bool trace = getenv("CELLAR_MODEL_TRACE") != NULL;

	cr_assert(val && buf);
	cellar__test_set_hash(c->hash);
	cellar__test_set_max_buckets(c->max_buckets);
	o.fs = log ? &log->fs : fs;
	o.flags = CELLAR_CREATE;
	o.max_segment_size = c->max_segment_size;
	o.hash_seed = c->seed * 0x9e3779b97f4a7c15ull | 1; /* replayable */
	o.clock = model_clock;
	model_init(&m, c->nkeys);
	snprintf(where, sizeof where, "seed %llu open", (unsigned long long)c->seed);
	open_db(&db, dir, &o);

	for (unsigned step = 0; step < c->steps; step++) {
		uint64_t r = tc_rand(&rng);
		unsigned i = (unsigned)((r >> 8) % c->nkeys);
		unsigned op = (unsigned)(r % 100);
		unsigned char k[MAX_KEY];
		size_t kn = key_of(i, k), n;
		const entry *e = &m.e[i];
		int rc;

#define WHERE(name)                                                          \
	snprintf(where, sizeof where, "seed %llu step %u (%s key %u)",        \
	         (unsigned long long)c->seed, step, (name), i)

		if (c->follow_every && step % c->follow_every == 0) {
			cellar_options ro = o;
			ro.flags = CELLAR_READONLY;
			WHERE("sync, then refresh the follower");
			CHECK_RC(cellar_sync(db), CELLAR_OK);
			if (!follower)
				open_db(&follower, dir, &ro);
			else
				CHECK_RC(cellar_refresh(follower), CELLAR_OK);
			check_all(&m, follower);
			follows++;
		}
		if (c->ckpt_every && step % c->ckpt_every == c->ckpt_every - 1) {
			cellar_compact_result res;
			WHERE("compact with writes during its checkpoint");
			ov.db = db;
			ov.m = &m;
			ov.rng = &rng;
			ov.nkeys = c->nkeys;
			cellar__test_set_ckpt_hook(overlap_hook, NULL);
			if (c->flush_overlap)
				cellar__test_set_flush_hook(flush_hook, NULL);
			CHECK_RC(cellar_compact(db, &res), CELLAR_OK);
			cellar__test_set_ckpt_hook(NULL, NULL);
			cellar__test_set_flush_hook(NULL, NULL);
			model_compacted(&m);
			check_all(&m, db);
		}

		if (op < 45) {
			uint64_t r2 = tc_rand(&rng);
			n = r2 % 50 == 0 ? 1000 + (size_t)(r2 >> 16) % (LARGE_VAL - 1000)
			                 : (size_t)(r2 >> 16) % (SMALL_VAL + 1);
			n = n + c->min_val < LARGE_VAL ? n + c->min_val : LARGE_VAL;
			large += n > SMALL_VAL;
			for (size_t j = 0; j < n; j += 8) {
				uint64_t x = tc_rand(&rng);
				memcpy(val + j, &x, n - j < 8 ? n - j : 8);
			}
			if (c->expiring && r2 % 3 != 2) {
				model_put_ex(&m, db, i, val, n, r2);
			} else {
				WHERE("put");
				CHECK_RC(cellar_put(db, k, kn, val, n), CELLAR_OK);
				model_put(&m, i, val, n);
			}
			check_key(&m, db, i);
		} else if (op < 60) {
			WHERE("delete");
			rc = cellar_delete(db, k, kn);
			CHECK_RC(rc, model_delete_visible(&m, i));
			check_key(&m, db, i);
		} else if (op < 72) {
			WHERE("get");
			check_key(&m, db, i);
		} else if (op < 78) {
			/* A buffer half the value's size. */
			WHERE("get-small");
			bool vis = entry_visible(e);
			size_t cap = vis ? e->len / 2 : 0;
			n = SIZE_MAX;
			rc = cellar_get(db, k, kn, cap ? buf : NULL, cap, &n);
			if (!vis)
				CHECK_RC(rc, CELLAR_ENOTFOUND);
			else if (e->len == 0)
				CHECK_RC(rc, CELLAR_OK);
			else
				CHECK_RC(rc, CELLAR_EBUFS);
			if (vis)
				CHECK(n == e->len, "length %zu, model %zu", n, e->len);
		} else if (op < 84) {
			WHERE("get_alloc");
			void *p = (void *)buf;
			n = SIZE_MAX;
			rc = cellar_get_alloc(db, k, kn, &p, &n);
			if (!entry_visible(e)) {
				CHECK_RC(rc, CELLAR_ENOTFOUND);
				CHECK(p == NULL, "*out not NULL on failure");
			} else {
				CHECK_RC(rc, CELLAR_OK);
				CHECK(p != NULL, "NULL buffer");
				CHECK(n == e->len && memcmp(p, e->val, n) == 0,
				      "get_alloc: %zu bytes, model %zu", n, e->len);
			}
			cellar_free(p);
		} else if (op < 88) {
			WHERE("batch");
			model_batch(&m, db, &rng, c->nkeys, c->expiring);
		} else if (op < 94) {
			WHERE("has");
			CHECK_RC(cellar_has(db, k, kn),
			         entry_visible(e) ? CELLAR_OK : CELLAR_ENOTFOUND);
		} else if (c->expiring && op < 96) {
			WHERE("advance the clock");
			model_advance(&m, db, i, r);
		} else if (op < 98) {
			WHERE("count");
			check_count(&m, db);
		} else if (op < 99 ||
		           (c->reopen_one_in > 1 &&
		            (r >> 32) % c->reopen_one_in != 0)) {
			WHERE("iterate");
			check_all(&m, db);
		} else {
			WHERE("reopen");
			reopens++;
			CHECK_RC(cellar_close(db), CELLAR_OK);
			/* (Not r % 5: this branch runs only when r % 100 is 99.) */
			if ((r >> 40) % 5 == 0) {
				/* Look at it read-only first. */
				ro_looks++;
				cellar_options ro = o;
				ro.flags = CELLAR_READONLY;
				open_db(&db, dir, &ro);
				check_all(&m, db);
				CHECK_RC(cellar_put(db, "x", 1, "y", 1), CELLAR_EREADONLY);
				CHECK_RC(cellar_close(db), CELLAR_OK);
			}
			open_db(&db, dir, &o);
			check_all(&m, db);
		}
		check_count(&m, db);
		if (trace)
			fprintf(stderr, "%s: %s, %zu bytes\n", where,
			        m.e[i].live ? "live" : "absent", m.e[i].len);
#undef WHERE
	}

	snprintf(where, sizeof where, "seed %llu end", (unsigned long long)c->seed);
	check_all(&m, db);
	CHECK_RC(cellar_close(db), CELLAR_OK);
	if (follower) {
		cellar_db_stats st;
		CHECK_RC(cellar_refresh(follower), CELLAR_OK);
		check_all(&m, follower);
		CHECK_RC(cellar_stats_sized(follower, &st, sizeof st), CELLAR_OK);
		if (c->ckpt_every)
			CHECK(st.refresh_reloads > 0, "compactions made the follower "
			      "reload");
		CHECK(st.refreshed_records > 0, "the follower replayed appends");
		CHECK_RC(cellar_close(follower), CELLAR_OK);
	}
	snprintf(where, sizeof where, "seed %llu final reopen", (unsigned long long)c->seed);
	open_db(&db, dir, &o);
	check_all(&m, db);
	cellar__debug_info d;
	CHECK_RC(cellar__debug(db, &d), CELLAR_OK);
	if (c->max_segment_size)
		CHECK(d.segments > 1, "a tiny segment size rolls over: %llu segments",
		      (unsigned long long)d.segments);
	if (c->max_buckets || c->hash)
		CHECK(d.overflow_buckets > 0 || d.longest_chain > 1,
		      "the hooks formed overflow chains");
	CHECK_RC(cellar_close(db), CELLAR_OK);

	cr_assert_gt(reopens, 0, "the walk reopened the store");
	if (c->steps >= 20000)
		cr_assert_gt(ro_looks, 0, "the walk opened the store read-only");
	cr_assert_gt(large, 0, "the walk wrote large values");
	if (c->ckpt_every)
		cr_assert_gt(ov.ran, 0, "no checkpoint ran writes inside it");
	if (c->follow_every)
		cr_assert_gt(follows, 2, "the follower refreshed");
	if (c->flush_overlap)
		cr_assert_gt(ov.flushes, 0, "no buffer write ran writes beside it");
	if (log) {
		size_t cuts = 0;
		for (size_t w = 0; w < log->n; w++)
			cuts += strstr(log->w[w].path, ".seg") &&
			        (log->w[w].off + log->w[w].len) % FILE_WRITE_UNIT == 0;
		cr_assert_geq(cuts, 3, "the buffer was cut %zu times", cuts);
		tc_wlog_free(log);
	}
	model_free(&m);
	free(val);
	free(buf);
	cellar_fs_free(fs);
	tc_dir_free(dir);
	cellar__test_set_hash(NULL);
	cellar__test_set_max_buckets(0);
}

/*
 * Only 61 distinct hashes, each a well-mixed 64-bit value so that it does not
 * matter which bits the index takes its address and tag from: ~8 keys share
 * every hash, and lookups must compare keys.
 */
static uint64_t hash_weak(const void *key, size_t len, uint64_t seed)
{
	const unsigned char *p = key;
	uint64_t h = seed;

	for (size_t j = 0; j < len; j++)
		h = h * 31 + p[j];
	h %= 61;
	return tc_rand(&h);
}

Test(model, random_walk_checkpoints_overlap_writes)
{
	config c = { .seed = 5, .steps = 20000, .nkeys = 300,
	             .max_segment_size = 64 << 10, .ckpt_every = 500 };
	run_model(&c);
}

Test(model, random_walk_followed_by_a_refreshing_reader)
{
	config c = { .seed = 11, .steps = 20000, .nkeys = 300,
	             .max_segment_size = 64 << 10, .ckpt_every = 2000,
	             .follow_every = 97 };
	run_model(&c);
}

Test(model, random_walk_followed_weak_hash)
{
	config c = { .seed = 12, .steps = 8000, .nkeys = 200,
	             .max_segment_size = 64 << 10, .ckpt_every = 1500,
	             .follow_every = 53, .hash = hash_weak };
	run_model(&c);
}

Test(model, random_walk_seed_1)
{
	config c = { .seed = 1, .steps = 20000, .nkeys = 500 };
	run_model(&c);
}

Test(model, random_walk_seed_2)
{
	config c = { .seed = 2, .steps = 20000, .nkeys = 2000 };
	run_model(&c);
}

Test(model, random_walk_seed_3)
{
	config c = { .seed = 0xdeadbeef, .steps = 20000, .nkeys = 64 };
	run_model(&c);
}

Test(model, random_walk_tiny_segments_capped_buckets)
{
	config c = { .seed = 4, .steps = 20000, .nkeys = 800,
	             .max_segment_size = 64u << 10, .max_buckets = 4 };
	run_model(&c);
}

Test(model, random_walk_tiny_segments_one_bucket)
{
	config c = { .seed = 5, .steps = 20000, .nkeys = 300,
	             .max_segment_size = 64u << 10, .max_buckets = 1 };
	run_model(&c);
}

/*
 * Values of 4 KiB and more, and few reopens: the append buffer fills again
 * and again, so records cross the 2 MiB cuts of partial flushes and are
 * read back from the buffer and then from the file.
 */
Test(model, random_walk_full_buffers)
{
	config c = { .seed = 7, .steps = 6000, .nkeys = 300, .min_val = 4000,
	             .reopen_one_in = 20, .log_writes = true };
	run_model(&c);
}

/*
 * Full buffers and compaction passes whose checkpoints, and whose writes
 * of full append buffers between batches (without the writer mutex), run
 * puts and deletes while they are written.
 */
Test(model, random_walk_full_buffers_written_beside_writes)
{
	config c = { .seed = 8, .steps = 6000, .nkeys = 300, .min_val = 4000,
	             .reopen_one_in = 20, .ckpt_every = 400,
	             .flush_overlap = true };
	run_model(&c);
}

Test(model, random_walk_weak_hash)
{
	/* Every lookup reads a chain of colliding records (one pread each on
	 * the posix fs), so fewer steps cover the same ground. */
	config c = { .seed = 6, .steps = 8000, .nkeys = 500,
	             .max_segment_size = 64u << 10, .hash = hash_weak };
	run_model(&c);
}

/*
 * Expiring keys: ttl, absolute and no-overwrite puts, batch puts with a
 * ttl, a clock that moves and compaction passes that drop what expired,
 * with reopens (read-only too) and tiny segments.
 */
Test(model, random_walk_expiring_keys)
{
	config c = { .seed = 21, .steps = 20000, .nkeys = 300,
	             .max_segment_size = 64 << 10, .expiring = true };
	run_model(&c);
}

/* ...with compactions whose checkpoints run writes, and a follower. */
Test(model, random_walk_expiring_keys_followed_and_compacted)
{
	config c = { .seed = 22, .steps = 12000, .nkeys = 200,
	             .max_segment_size = 64 << 10, .ckpt_every = 700,
	             .follow_every = 89, .expiring = true };
	run_model(&c);
}

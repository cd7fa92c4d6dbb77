/*
 * fuzz_ops.c - sequences of operations on a store, checked against a
 * simple model (an array of the keys' current values).
 *
 * Input: one configuration byte, then operations, each an opcode byte
 * followed by the argument bytes it needs (missing bytes read as 0).
 *   config bits 0-1: key hash: xxhash / every key the same hash / only 4
 *                    tags / the tag is the key's first byte (collisions
 *                    force long overflow chains and key comparisons)
 *          bit 2:    stop the table at 2 primary buckets (overflow chains)
 *          bit 3:    CELLAR_SYNC_ALWAYS
 *          bit 4:    the file system has no map(): reads use read_at
 *          bit 5:    compact_dead_pct 1 (compaction rewrites nearly every
 *                    segment) instead of the default
 * Keys are one of 24: "a", "b", "c", "d", "aa", ... "dddd" (prefixes of each
 * other), two-byte binary keys, and 300-byte keys that differ only at the
 * end.  Values are generated from a counter, so every put writes new bytes.
 *
 * Operations: put (small, or up to 4 KiB so that segments roll, and at most
 * once per input a value larger than the append buffer), a write batch of
 * up to 8 puts (some expiring) and deletes, delete, get (with a buffer that
 * may be too small), get_alloc, has, sync, reopen, reopen read-only and
 * back, a full iteration, an iterator kept open across writes (and
 * compactions), compaction, statistics, expiring and no-overwrite puts
 * (cellar_put_ex), moving the injected clock on, cellar_get_many over a
 * run of keys (buffers big or too small), and a snapshot kept open
 * across writes, compactions and clock moves (checked whole: gets, has,
 * count and iteration, as of the moment it was taken).  Every result, and
 * the count after every operation, must match the model; any mismatch is
 * an abort().
 *
 * Expiry in the model: a slot is present while the index holds the key
 * (what cellar_count counts) and visible while, moreover, it has not
 * expired by the clock; compaction drops every present slot that is not
 * visible.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "fuzz.h"
#include "hash.h"
#include "segment.h" /* SEG_BUFFER_SIZE */
#include "testhook.h"

#define DIR "/db"
#define NKEYS 24
#define BIG_VALUE (SEG_BUFFER_SIZE + 100) /* written in place, not buffered */

struct slot {
	int present;
	uint8_t *val;
	size_t len;
	uint64_t expire; /* ms on the injected clock; 0: never */
};

struct live_iter {
	cellar_iter *it;
	struct slot snap[NKEYS]; /* values when the iterator was created */
	int touched[NKEYS];      /* written or deleted since */
	int seen[NKEYS];
};

/* A snapshot kept open: the model as it stood, and its count then. */
struct live_snap {
	cellar_snapshot *s;
	struct slot snap[NKEYS]; /* visible values when it was taken */
	uint64_t count;          /* present keys then */
};

struct state {
	cellar_fs *fs, nomap;
	cellar_db *db;
	cellar_options opts;
	struct slot model[NKEYS];
	uint64_t count;
	struct live_iter li;
	struct live_snap ls;
	uint64_t vseed;
	int big_done;
	uint64_t now; /* the injected clock */
};

#define CLOCK_START 1700000000000ull

static uint64_t fz_clock(void *ctx)
{
	return *(const uint64_t *)ctx;
}

/* Is the slot there for readers at time now (present, not expired)? */
static int visible(const struct slot *s, uint64_t now)
{
	return s->present && !(s->expire && now >= s->expire);
}

static const uint8_t *in_p;
static size_t in_len, in_pos;

static unsigned next_byte(void)
{
	return in_pos < in_len ? in_p[in_pos++] : 0;
}

/* ---- keys and hashes ----------------------------------------------------- */

static size_t key_of(unsigned id, uint8_t out[300])
{
	if (id < 16) {
		size_t n = id / 4 + 1;
		memset(out, 'a' + (int)(id % 4), n);
		return n;
	}
	if (id < 20) {
		out[0] = 0;
		out[1] = (uint8_t)id;
		return 2;
	}
	memset(out, 'k', 300);
	out[299] = (uint8_t)id;
	return 300;
}

static int id_of(const void *key, size_t len)
{
	uint8_t k[300];

	for (unsigned id = 0; id < NKEYS; id++)
		if (key_of(id, k) == len && memcmp(k, key, len) == 0)
			return (int)id;
	return -1;
}

static uint64_t hash_same(const void *key, size_t len, uint64_t seed)
{
	(void)key;
	(void)len;
	(void)seed;
	return 0x5eed5eed00000001ull;
}

static uint64_t hash_four(const void *key, size_t len, uint64_t seed)
{
	return hash_key(key, len, seed) & 0x00000003ffffffffull;
}

static uint64_t hash_first(const void *key, size_t len, uint64_t seed)
{
	(void)seed;
	return (uint64_t)((const uint8_t *)key)[0] << 32 | len;
}

/* ---- the model ----------------------------------------------------------- */

static void slot_set(struct slot *s, const uint8_t *val, size_t len)
{
	free(s->val);
	s->val = malloc(len ? len : 1);
	FZ_CHECK(s->val != NULL, "out of memory", CELLAR_ENOMEM);
	if (len)
		memcpy(s->val, val, len);
	s->len = len;
	s->present = 1;
	s->expire = 0;
}

static void slot_clear(struct slot *s)
{
	free(s->val);
	s->val = NULL;
	s->len = 0;
	s->present = 0;
	s->expire = 0;
}

static void iter_drop(struct state *st)
{
	cellar_iter_free(st->li.it);
	st->li.it = NULL;
	for (int i = 0; i < NKEYS; i++)
		slot_clear(&st->li.snap[i]);
}

static void touch(struct state *st, unsigned id)
{
	st->li.touched[id] = 1;
}

/* ---- checks ---------------------------------------------------------------- */

static void check_get(struct state *st, unsigned id, size_t cap)
{
	const struct slot *s = &st->model[id];
	uint8_t key[300], *buf = malloc(cap ? cap : 1);
	size_t klen = key_of(id, key), n = 12345;
	int rc;

	FZ_CHECK(buf != NULL, "out of memory", CELLAR_ENOMEM);
	rc = cellar_get(st->db, key, klen, buf, cap, &n);
	if (!visible(s, st->now)) {
		FZ_CHECK(rc == CELLAR_ENOTFOUND, "get: a deleted key is found", rc);
	} else if (s->len > cap) {
		FZ_CHECK(rc == CELLAR_EBUFS && n == s->len,
		         "get: expected EBUFS and the length", rc);
	} else {
		FZ_CHECK(rc == CELLAR_OK, "get: a present key is not found", rc);
		FZ_CHECK(n == s->len && (n == 0 || memcmp(buf, s->val, n) == 0),
		         "get: wrong value", rc);
	}
	free(buf);
}

/* cellar_get_many over n keys from id on (wrapping), buffers of cap. */
static void check_get_many(struct state *st, unsigned id, unsigned n,
                           size_t cap)
{
	cellar_get_item items[NKEYS * 2];
	uint8_t keys[NKEYS * 2][300], *bufs = malloc((size_t)n * cap + 1);

	FZ_CHECK(bufs != NULL, "out of memory", CELLAR_ENOMEM);
	for (unsigned i = 0; i < n; i++) {
		items[i].key = keys[i];
		items[i].key_len = key_of((id + i) % NKEYS, keys[i]);
		items[i].buf = bufs + (size_t)i * cap;
		items[i].cap = cap;
	}
	int rc = cellar_get_many(st->db, items, n);
	FZ_CHECK(rc == CELLAR_OK, "get_many failed", rc);
	for (unsigned i = 0; i < n; i++) {
		const struct slot *s = &st->model[(id + i) % NKEYS];
		rc = items[i].status;
		if (!visible(s, st->now)) {
			FZ_CHECK(rc == CELLAR_ENOTFOUND,
			         "get_many: a deleted key is found", rc);
		} else if (s->len > cap) {
			FZ_CHECK(rc == CELLAR_EBUFS && items[i].val_len == s->len,
			         "get_many: expected EBUFS and the length", rc);
		} else {
			FZ_CHECK(rc == CELLAR_OK && items[i].val_len == s->len &&
			             (s->len == 0 ||
			              memcmp(items[i].buf, s->val, s->len) == 0),
			         "get_many: wrong value", rc);
		}
	}
	free(bufs);
}

static void check_get_alloc(struct state *st, unsigned id)
{
	const struct slot *s = &st->model[id];
	uint8_t key[300];
	size_t klen = key_of(id, key), n = 0;
	void *p = NULL;
	int rc = cellar_get_alloc(st->db, key, klen, &p, &n);

	if (!visible(s, st->now)) {
		FZ_CHECK(rc == CELLAR_ENOTFOUND && p == NULL,
		         "get_alloc: a deleted key is found", rc);
	} else {
		FZ_CHECK(rc == CELLAR_OK && p != NULL,
		         "get_alloc: a present key is not found", rc);
		FZ_CHECK(n == s->len && (n == 0 || memcmp(p, s->val, n) == 0),
		         "get_alloc: wrong value", rc);
	}
	cellar_free(p);
}

static void check_has(struct state *st, unsigned id)
{
	uint8_t key[300];
	size_t klen = key_of(id, key);
	int rc = cellar_has(st->db, key, klen);

	FZ_CHECK(rc == (visible(&st->model[id], st->now) ? CELLAR_OK
	                                                 : CELLAR_ENOTFOUND),
	         "has: wrong answer", rc);
}

static void check_count(struct state *st)
{
	uint64_t n = 0;
	int rc = cellar_count(st->db, &n);

	FZ_CHECK(rc == CELLAR_OK && n == st->count, "count differs from the model",
	         rc);
}

static void check_all(struct state *st)
{
	for (unsigned id = 0; id < NKEYS; id++)
		check_get(st, id, st->model[id].len); /* an exact fit */
	check_count(st);
}

static void check_iteration(struct state *st)
{
	int seen[NKEYS] = { 0 };
	cellar_iter *it = NULL;
	uint64_t items = 0, want = 0;
	int rc = cellar_iter_new(st->db, &it);

	for (unsigned id = 0; id < NKEYS; id++)
		want += (uint64_t)visible(&st->model[id], st->now);
	FZ_CHECK(rc == CELLAR_OK, "iter_new", rc);
	for (;;) {
		const void *k, *v;
		size_t kl, vl;
		rc = cellar_iter_next(it, &k, &kl, &v, &vl);
		if (rc == CELLAR_EDONE)
			break;
		FZ_CHECK(rc == CELLAR_OK, "iter_next: error on a healthy store", rc);
		int id = id_of(k, kl);
		FZ_CHECK(id >= 0, "iter_next: a key never written", rc);
		FZ_CHECK(!seen[id], "iter_next: a key returned twice", rc);
		seen[id] = 1;
		items++;
		const struct slot *s = &st->model[id];
		FZ_CHECK(visible(s, st->now), "iter_next: a deleted or expired key",
		         rc);
		FZ_CHECK(vl == s->len && (vl == 0 || memcmp(v, s->val, vl) == 0),
		         "iter_next: wrong value", rc);
	}
	cellar_iter_free(it);
	FZ_CHECK(items == want, "iteration misses keys", 0);
}

/* The iterator kept open across writes. */
static void live_iter_begin(struct state *st)
{
	iter_drop(st);
	int rc = cellar_iter_new(st->db, &st->li.it);
	FZ_CHECK(rc == CELLAR_OK, "iter_new", rc);
	for (int i = 0; i < NKEYS; i++) {
		if (visible(&st->model[i], st->now)) /* its time is now */
			slot_set(&st->li.snap[i], st->model[i].val, st->model[i].len);
		st->li.touched[i] = 0;
		st->li.seen[i] = 0;
	}
}

static void live_iter_step(struct state *st, unsigned steps)
{
	struct live_iter *li = &st->li;

	if (!li->it)
		return;
	while (steps--) {
		const void *k, *v;
		size_t kl, vl;
		int rc = cellar_iter_next(li->it, &k, &kl, &v, &vl);
		if (rc == CELLAR_EDONE) {
			for (int i = 0; i < NKEYS; i++)
				FZ_CHECK(li->touched[i] || !li->snap[i].present || li->seen[i],
				         "live iterator: an untouched key was missed", 0);
			iter_drop(st);
			return;
		}
		FZ_CHECK(rc == CELLAR_OK, "live iterator: error on a healthy store", rc);
		int id = id_of(k, kl);
		FZ_CHECK(id >= 0, "live iterator: a key never written", rc);
		if (li->touched[id])
			continue; /* may come twice, old or new: no promise */
		const struct slot *s = &li->snap[id];
		FZ_CHECK(!li->seen[id], "live iterator: an untouched key twice", rc);
		FZ_CHECK(s->present, "live iterator: a key absent all along", rc);
		FZ_CHECK(vl == s->len && (vl == 0 || memcmp(v, s->val, vl) == 0),
		         "live iterator: wrong value", rc);
		li->seen[id] = 1;
	}
}

/* ---- operations ------------------------------------------------------------ */

static void do_put(struct state *st, unsigned id, size_t len)
{
	uint8_t key[300], *val = malloc(len ? len : 1);
	size_t klen = key_of(id, key);
	uint64_t r = ++st->vseed * 0x9e3779b97f4a7c15ull;

	FZ_CHECK(val != NULL, "out of memory", CELLAR_ENOMEM);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = fz_rand(&r);
		memcpy(val + i, &x, len - i < 8 ? len - i : 8);
	}
	int rc = cellar_put(st->db, key, klen, val, len);
	FZ_CHECK(rc == CELLAR_OK, "put failed", rc);
	if (!st->model[id].present)
		st->count++;
	slot_set(&st->model[id], val, len);
	touch(st, id);
	free(val);
}

static void do_delete(struct state *st, unsigned id)
{
	uint8_t key[300];
	size_t klen = key_of(id, key);
	int rc = cellar_delete(st->db, key, klen);

	/* An expired key is absent: nothing written, its entry stays. */
	if (visible(&st->model[id], st->now)) {
		FZ_CHECK(rc == CELLAR_OK, "delete of a present key failed", rc);
		slot_clear(&st->model[id]);
		st->count--;
		touch(st, id);
	} else {
		FZ_CHECK(rc == CELLAR_ENOTFOUND, "delete of an absent key", rc);
	}
}

/* A write batch of 1..8 puts and deletes (the same key may recur: the
 * last wins; bit 6 of a put's key byte: it expires, a ttl byte follows),
 * each key's last op applied to the model once committed. */
static void do_batch(struct state *st)
{
	unsigned n = 1 + next_byte() % 8;
	uint8_t key[300], val[256];
	struct {
		unsigned id, del;
		size_t len;
		uint64_t ttl;
		uint8_t val[256];
	} op[8];
	cellar_batch *b = NULL;
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
	int rc = cellar_batch_new(&b);

	FZ_CHECK(rc == CELLAR_OK, "batch_new failed", rc);
	for (unsigned i = 0; i < n; i++) {
		unsigned x = next_byte();
		size_t klen = key_of(x % NKEYS, key);
		uint64_t r = ++st->vseed * 0x9e3779b97f4a7c15ull;
		op[i].id = x % NKEYS;
		op[i].del = x & 0x80;
		op[i].len = op[i].del ? 0 : next_byte();
		op[i].ttl = !op[i].del && (x & 0x40) ? 1 + next_byte() : 0;
		for (size_t j = 0; j < op[i].len; j++)
			val[j] = (uint8_t)fz_rand(&r);
		memcpy(op[i].val, val, op[i].len);
		po.ttl_ms = op[i].ttl;
		rc = op[i].del ? cellar_batch_delete(b, key, klen)
		               : cellar_batch_put_ex(b, key, klen, val, op[i].len, &po);
		FZ_CHECK(rc == CELLAR_OK, "batch put/delete failed", rc);
	}
	rc = cellar_batch_commit(st->db, b);
	FZ_CHECK(rc == CELLAR_OK, "batch commit failed", rc);
	cellar_batch_free(b);
	for (unsigned i = 0; i < n; i++) {
		struct slot *s = &st->model[op[i].id];
		int last = 1;
		for (unsigned j = i + 1; j < n; j++)
			last &= op[j].id != op[i].id;
		if (!last)
			continue; /* the writer keeps each key's last op */
		if (op[i].del && visible(s, st->now)) {
			slot_clear(s);
			st->count--;
		} else if (!op[i].del) {
			if (!s->present)
				st->count++;
			slot_set(s, op[i].val, op[i].len);
			s->expire = op[i].ttl ? st->now + op[i].ttl : 0;
		}
		touch(st, op[i].id);
	}
}

/*
 * cellar_put_ex: mode bit 0 no-overwrite, bit 1 an absolute expiry instead
 * of a ttl, bit 2 no expiry at all; t: the expiry is 1 + t ms from now.
 */
static void do_put_ex(struct state *st, unsigned id, size_t len,
                      unsigned mode, unsigned t)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
	uint8_t key[300], val[256];
	size_t klen = key_of(id, key);
	uint64_t r = ++st->vseed * 0x9e3779b97f4a7c15ull;
	struct slot *s = &st->model[id];

	for (size_t i = 0; i < len; i++)
		val[i] = (uint8_t)fz_rand(&r);
	po.flags = mode & 1 ? CELLAR_PUT_NOOVERWRITE : 0;
	if (!(mode & 4) && (mode & 2))
		po.expire_at = st->now + 1 + t;
	else if (!(mode & 4))
		po.ttl_ms = 1 + t;
	int rc = cellar_put_ex(st->db, key, klen, val, len, &po);
	if ((mode & 1) && visible(s, st->now)) {
		FZ_CHECK(rc == CELLAR_EEXIST, "no-overwrite put over a present key",
		         rc);
		return;
	}
	FZ_CHECK(rc == CELLAR_OK, "put_ex failed", rc);
	if (!s->present)
		st->count++;
	slot_set(s, val, len);
	s->expire = mode & 4 ? 0 : st->now + 1 + t;
	touch(st, id);
}

/* ---- snapshots ------------------------------------------------------------- */

static void snap_drop(struct state *st)
{
	cellar_snapshot_release(st->ls.s);
	st->ls.s = NULL;
	for (int i = 0; i < NKEYS; i++)
		slot_clear(&st->ls.snap[i]);
}

static void snap_begin(struct state *st)
{
	snap_drop(st);
	int rc = cellar_snapshot_new(st->db, &st->ls.s);
	FZ_CHECK(rc == CELLAR_OK, "snapshot_new", rc);
	for (int i = 0; i < NKEYS; i++)
		if (visible(&st->model[i], st->now)) /* its time is now */
			slot_set(&st->ls.snap[i], st->model[i].val, st->model[i].len);
	st->ls.count = st->count;
}

/* The snapshot reads as the store did when it was taken, whatever came
 * since (writes, compactions, the clock moving on). */
static void snap_check(struct state *st)
{
	int seen[NKEYS] = { 0 };
	uint8_t key[300], buf[256];
	cellar_snapshot_iter *it = NULL;
	uint64_t n = 0;
	int rc;

	if (!st->ls.s)
		return;
	for (unsigned id = 0; id < NKEYS; id++) {
		const struct slot *s = &st->ls.snap[id];
		size_t klen = key_of(id, key), vl = 0;
		rc = cellar_snapshot_get(st->ls.s, key, klen, buf, sizeof buf, &vl);
		if (!s->present) {
			FZ_CHECK(rc == CELLAR_ENOTFOUND, "snapshot: a key it lacks", rc);
		} else if (s->len > sizeof buf) {
			FZ_CHECK(rc == CELLAR_EBUFS && vl == s->len, "snapshot: EBUFS", rc);
		} else {
			FZ_CHECK(rc == CELLAR_OK && vl == s->len &&
			             (vl == 0 || memcmp(buf, s->val, vl) == 0),
			         "snapshot: wrong value", rc);
		}
		rc = cellar_snapshot_has(st->ls.s, key, klen);
		FZ_CHECK(rc == (s->present ? CELLAR_OK : CELLAR_ENOTFOUND),
		         "snapshot: has", rc);
	}
	rc = cellar_snapshot_count(st->ls.s, &n);
	FZ_CHECK(rc == CELLAR_OK && n == st->ls.count, "snapshot: count", rc);
	rc = cellar_snapshot_iter_new(st->ls.s, &it);
	FZ_CHECK(rc == CELLAR_OK, "snapshot_iter_new", rc);
	for (;;) {
		const void *k, *v;
		size_t kl, vl;
		rc = cellar_snapshot_iter_next(it, &k, &kl, &v, &vl);
		if (rc == CELLAR_EDONE)
			break;
		FZ_CHECK(rc == CELLAR_OK, "snapshot iteration: error", rc);
		int id = id_of(k, kl);
		FZ_CHECK(id >= 0 && !seen[id] && st->ls.snap[id].present,
		         "snapshot iteration: a key it lacks, or twice", rc);
		seen[id] = 1;
		FZ_CHECK(vl == st->ls.snap[id].len &&
		             (vl == 0 || memcmp(v, st->ls.snap[id].val, vl) == 0),
		         "snapshot iteration: wrong value", rc);
	}
	cellar_snapshot_iter_free(it);
	for (unsigned id = 0; id < NKEYS; id++)
		FZ_CHECK(seen[id] == st->ls.snap[id].present,
		         "snapshot iteration misses a key", 0);
}

static void do_compact(struct state *st)
{
	cellar_compact_result res;
	int rc = cellar_compact(st->db, &res);

	/* Compaction never moves records while an iterator is open: EBUSY,
	 * or OK when no segment was worth compacting. */
	if (st->li.it) {
		FZ_CHECK(rc == CELLAR_EBUSY ||
		             (rc == CELLAR_OK && res.records_copied == 0 &&
		              res.segments_compacted == 0),
		         "compact with an iterator open", rc);
		return;
	}
	FZ_CHECK(rc == CELLAR_OK, "compact failed", rc);
	FZ_CHECK(res.complete, "compact pass incomplete without a close", 0);
	/* Every expired key is dropped: cellar_count no longer counts it. */
	for (unsigned id = 0; id < NKEYS; id++)
		if (st->model[id].present && !visible(&st->model[id], st->now)) {
			slot_clear(&st->model[id]);
			st->count--;
		}
}

static void check_stats(struct state *st)
{
	cellar_segment_info seg[64];
	cellar_db_stats sst;
	uint64_t bytes = 0, live = 0, dead = 0;
	size_t n = 0;
	int rc = cellar_stats(st->db, &sst);

	FZ_CHECK(rc == CELLAR_OK, "stats failed", rc);
	FZ_CHECK(sst.keys == st->count, "stats: keys differ from the model", 0);
	rc = cellar_segments(st->db, NULL, 0, &n);
	FZ_CHECK(rc == CELLAR_OK && n == sst.segments,
	         "segments: count differs from stats", rc);
	if (n > 64)
		return;
	rc = cellar_segments(st->db, seg, 64, &n);
	FZ_CHECK(rc == CELLAR_OK && n == sst.segments, "segments failed", rc);
	for (size_t i = 0; i < n; i++) {
		FZ_CHECK(i == 0 || seg[i].seq > seg[i - 1].seq,
		         "segments: not in sequence order", 0);
		FZ_CHECK(seg[i].live_bytes + seg[i].dead_bytes <= seg[i].bytes,
		         "segments: live + dead bytes exceed the size", 0);
		bytes += seg[i].bytes;
		live += seg[i].live_bytes;
		dead += seg[i].dead_bytes;
	}
	FZ_CHECK(bytes == sst.segment_bytes,
	         "stats: segment bytes differ from the segments", 0);
	FZ_CHECK(live == sst.live_bytes, "stats: live bytes differ", 0);
	FZ_CHECK(dead == sst.dead_bytes, "stats: dead bytes differ", 0);
}

static void do_open(struct state *st, unsigned flags)
{
	cellar_options o = st->opts;

	o.flags |= flags;
	int rc = cellar_open(&st->db, DIR, &o);
	FZ_CHECK(rc == CELLAR_OK, "open failed", rc);
}

static void do_close(struct state *st)
{
	iter_drop(st);
	snap_drop(st);
	int rc = cellar_close(st->db);
	st->db = NULL;
	FZ_CHECK(rc == CELLAR_OK, "close failed", rc);
}

/* Reopen read-only, check everything, then read-write again. */
static void look_read_only(struct state *st)
{
	do_close(st);
	do_open(st, CELLAR_READONLY);
	check_all(st);
	check_iteration(st);
	FZ_CHECK(cellar_put(st->db, "a", 1, "", 0) == CELLAR_EREADONLY,
	         "put on a read-only handle", 0);
	do_close(st);
	do_open(st, 0);
}

/* One operation of the input (its opcode and key id already read). */
static void run_op(struct state *st, unsigned op, unsigned id)
{
	int rc;

	switch (op) {
	case 0: case 1: case 2:
		do_put(st, id, next_byte());
		break;
	case 3:
		in_pos--; /* the id byte starts the batch */
		do_batch(st);
		break;
	case 4:
		do_put(st, id, (size_t)next_byte() << 4 | next_byte());
		break;
	case 5: case 6:
		do_delete(st, id);
		break;
	case 7:
		check_get(st, id, next_byte() & 1 ? next_byte() : 1u << 16);
		break;
	case 8:
		check_get_alloc(st, id);
		check_has(st, id);
		break;
	case 9:
		rc = cellar_sync(st->db);
		FZ_CHECK(rc == CELLAR_OK, "sync failed", rc);
		break;
	case 10:
		do_close(st);
		do_open(st, 0);
		check_all(st);
		break;
	case 11:
		look_read_only(st);
		break;
	case 12:
		check_iteration(st);
		break;
	case 13:
		live_iter_begin(st);
		break;
	case 14:
		live_iter_step(st, id + 1);
		break;
	case 15:
		/* Rare: hashing 1 MiB is slow under the sanitizers. */
		if (!st->big_done && next_byte() == 0xb1) {
			st->big_done = 1;
			do_put(st, id, BIG_VALUE);
		} else {
			do_put(st, id, 0);
		}
		break;
	case 16:
		do_compact(st);
		break;
	case 17:
		check_stats(st);
		break;
	case 18: case 19: {
		size_t len = next_byte();
		unsigned mode = next_byte();
		do_put_ex(st, id, len, mode, next_byte());
		break;
	}
	case 20:
		st->now += (uint64_t)next_byte() * 2; /* the clock moves on */
		check_get(st, id, 1u << 16);
		break;
	case 21:
		snap_begin(st);
		break;
	case 22:
		snap_check(st);
		break;
	case 23: {
		unsigned n = 1 + next_byte() % (NKEYS * 2);
		check_get_many(st, id, n, next_byte() & 1 ? 1u << 16 : 16);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const cellar__hash_fn hashes[4] = { NULL, hash_same, hash_four,
		                                   hash_first };
	struct state st;
	unsigned config;

	if (size < 1)
		return 0;
	memset(&st, 0, sizeof st);
	in_p = data;
	in_len = size;
	in_pos = 0;
	config = next_byte();
	cellar__test_set_hash(hashes[config & 3]);
	cellar__test_set_max_buckets(config & 4 ? 2 : 0);

	st.fs = fz_mem_fs(NULL);
	st.opts = (cellar_options)CELLAR_OPTIONS_INIT;
	fz_nomap(st.fs, &st.nomap);
	st.opts.fs = config & 16 ? &st.nomap : st.fs;
	st.opts.max_segment_size = 64 << 10;
	st.opts.hash_seed = 0x1234;
	st.opts.sync_mode = config & 8 ? CELLAR_SYNC_ALWAYS : CELLAR_SYNC_NONE;
	st.opts.compact_dead_pct = config & 32 ? 1 : 0;
	st.now = CLOCK_START;
	st.opts.clock = fz_clock;
	st.opts.clock_ctx = &st.now;
	do_open(&st, CELLAR_CREATE);

	while (in_pos < in_len) {
		unsigned op = next_byte() % 24, id = next_byte() % NKEYS;
		run_op(&st, op, id);
		check_count(&st);
	}
	check_all(&st);
	check_iteration(&st);
	do_close(&st);
	do_open(&st, CELLAR_READONLY);
	check_all(&st);
	do_close(&st);

	for (int i = 0; i < NKEYS; i++)
		slot_clear(&st.model[i]);
	cellar_fs_free(st.fs);
	cellar__test_set_hash(NULL);
	cellar__test_set_max_buckets(0);
	return 0;
}

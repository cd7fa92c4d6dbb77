/*
 * read.c - the read path: a key's lookup, from its hash to its value in the
 * caller's hands.
 *
 * Owns matching a candidate slot's record against the key, the inline
 * decode of the common record shape (through record.h's short-put calls),
 * delivering the value (copy, allocate, or only say it is there) and the
 * per-thread read counters.  Must not: change anything but those counters,
 * take the writer mutex, or decode record bytes itself beyond what
 * record.h offers.
 *
 * A get is index_lookup_inline (index.h) with match_get inlined into its
 * probe loop; match_get finds the record's bytes with segset_locate
 * (segment.h) and falls back to the general decoder (segset_record) for
 * anything but a short put in memory.  An expiring put is never a short
 * put, so only the general path reads the clock (db_now): a key that has
 * expired is answered CELLAR_ENOTFOUND.
 */
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "error.h"
#include "index_file.h"
#include "read.h"
#include "record.h"
#include "sigbus.h"

/*
 * Copy a small value inline, sixteen bytes at a time, the last block
 * overlapping the one before: a 100-byte value is seven loads and seven
 * stores, far fewer instructions than a call to memcpy.  Fewer
 * instructions waiting on the record's cache lines let the processor start
 * the caller's next lookup sooner.
 */
static inline void copy_small(uint8_t *d, const uint8_t *s, size_t len)
{
	uint64_t a, b;

	if (len >= 16) {
		size_t i = 0;
		for (; i + 16 < len; i += 16)
			memcpy(d + i, s + i, 16);
		memcpy(d + len - 16, s + len - 16, 16);
	} else if (len >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + len - 8, &b, 8);
	} else {
		for (size_t i = 0; i < len; i++)
			d[i] = s[i];
	}
}

/* Are two keys of len bytes equal?  Inline for keys of up to 16 bytes. */
static inline int key_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint64_t a0, a1, b0, b1;

	if (len < 8 || len > 16)
		return memcmp(a, b, len) == 0;
	memcpy(&a0, a, 8);
	memcpy(&b0, b, 8);
	memcpy(&a1, a + len - 8, 8);
	memcpy(&b1, b + len - 8, 8);
	return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/* What match_get needs: the handle and the request. */
typedef struct get_ctx {
	cellar_db *db;
	read_req *r;
	/* A candidate whose key differed and whose checksum failed: its key
	 * bytes may be the damaged ones of the key looked up (mismatched). */
	int damaged;
	uint64_t damaged_seq, damaged_off;
} get_ctx;

/* Hand the value of a matching, verified record to the caller. */
static int deliver(read_req *r, const uint8_t *val, size_t len)
{
	r->len = len;
	if (r->mode == READ_COPY) {
		if (len > r->cap)
			return CELLAR_EBUFS;
		if (len <= 256)
			copy_small(r->buf, val, len);
		else
			memcpy(r->buf, val, len);
	} else if (r->mode == READ_ALLOC) {
		if (!(*r->out = malloc(len ? len : 1)))
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		if (len)
			memcpy(*r->out, val, len);
	} else if (r->mode == READ_PIN) {
		r->view = val;
	}
	return CELLAR_OK;
}

/* Any record: the general decoder, and read_at when there is no mapping. */
static int match_get_slow(get_ctx *c, uint16_t seg, uint32_t off, int *hit)
{
	read_req *r = c->r;
	record_view v;
	int rc = segset_record(&c->db->segs, seg, off, &v);

	if (rc < 0)
		return rc;
	if (v.h.key_len != r->key_len ||
	    memcmp(record_key(&v), r->key, r->key_len) != 0) {
		/* The tag matched: is the key different, or damaged? */
		uint64_t seq = c->db->segs.by_id[seg]->seq;
		if (!c->damaged && record_verify(&v, seq, off) < 0) {
			c->damaged = 1;
			c->damaged_seq = seq;
			c->damaged_off = off;
		}
		record_release(&v);
		return CELLAR_OK;
	}
	*hit = 1;
	if ((rc = record_verify(&v, c->db->segs.by_id[seg]->seq, off)) ==
	    CELLAR_OK) {
		if (v.h.kind != RECORD_PUT)
			rc = cellar__error(CELLAR_ECORRUPT, "index points at a tombstone");
		else if (v.h.expire && record_expired(v.h.expire, db_now(c->db)))
			rc = CELLAR_ENOTFOUND; /* expired: absent, as if not there */
		else
			rc = deliver(r, record_val(&v), v.h.val_len);
	}
	if (rc == CELLAR_OK && r->mode == READ_PIN) {
		r->owned = v.owned; /* the pin keeps the copy the view is in */
		v.owned = NULL;
	}
	record_release(&v);
	return rc;
}

/*
 * The common case inline: a short put in memory (mapped or in the append
 * buffer).  Anything else goes the general way.
 */
static inline int match_get(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	get_ctx *c = ctx;
	const segset *s = &c->db->segs;
	const segment *g = s->by_id[seg];
	const uint8_t *p;
	uint64_t avail;

	if (__builtin_expect(!g || off < SEG_HEADER_SIZE || off >= g->size, 0))
		return match_get_slow(c, seg, off, hit);
	segset_locate(s, g, off, g->size, &p, &avail);
	if (__builtin_expect(!p, 0))
		return match_get_slow(c, seg, off, hit);
	/*
	 * A small record spans two or three cache lines: ask for all of them
	 * at once, so that the checksum and the copy do not wait for each
	 * line in turn.
	 */
	if (avail > 64)
		__builtin_prefetch(p + 64);
	if (avail > 128)
		__builtin_prefetch(p + 128);
	if (__builtin_expect(!record_is_short_put(p, avail), 0))
		return match_get_slow(c, seg, off, hit);
	size_t klen = record_short_key_len(p), vlen = record_short_val_len(p);
	uint64_t total = RECORD_SHORT_HEADER + (uint64_t)klen + vlen;
	/* A tag that matches a different key is rare (six slots of 32-bit
	 * tags): the general path then tells a damaged key from another key. */
	if (__builtin_expect(klen != c->r->key_len || total > avail, 0))
		return match_get_slow(c, seg, off, hit);
	if (__builtin_expect(!key_equal(p + RECORD_SHORT_HEADER, c->r->key, klen),
	                     0))
		return match_get_slow(c, seg, off, hit);
	*hit = 1;
	if (!record_checksum_ok(p, total))
		return record_bad_checksum(g->seq, off);
	return deliver(c->r, p + RECORD_SHORT_HEADER + klen, vlen);
}

/*
 * No intact record holds the key, but one whose tag matched failed its
 * checksum: the key may be the one damaged, so never call it absent.
 */
static int damaged_key(const get_ctx *c)
{
	return cellar__error(CELLAR_ECORRUPT,
	                     "segment %016llx.seg: bad checksum at offset %llu, "
	                     "in a record that may hold this key",
	                     (unsigned long long)c->damaged_seq,
	                     (unsigned long long)c->damaged_off);
}

/*
 * No slot names the key.  If the index file was cut short under its
 * mapping (another program cut it; past the cut the mapping reads as
 * zeros), the bucket that would have named it may be lost: never call it
 * absent.
 */
static int miss(const cellar_db *db)
{
	if (__builtin_expect(index_map_cut(db->ix), 0))
		return cellar__error(CELLAR_ECORRUPT,
		                     "the index file was cut short under its "
		                     "mapping: the key may be in a lost bucket");
	return CELLAR_ENOTFOUND;
}

/*
 * A read-only handle whose index has a chunk that fails its checksum asks
 * the table rebuilt in memory from the segments (shadow.h): every key
 * whose record is intact is served.  rc is the first lookup's answer.
 */
static int from_shadow(cellar_db *db, read_req *r, uint64_t h, int rc)
{
	cellar_index *sx;
	unsigned probes;
	int lossy;

	if (!db->readonly || !index_has_bad_chunk(db->ix))
		return rc;
	if ((rc = shadow_get(&db->shadow, &db->segs, &db->kh, &sx, &lossy)) < 0)
		return rc;
	get_ctx c = { db, r, 0, 0, 0 };
	rc = index_lookup_inline(sx, h, match_get, &c, &probes);
	if (rc == CELLAR_ENOTFOUND && c.damaged)
		return damaged_key(&c);
	if (rc == CELLAR_ENOTFOUND && lossy)
		return cellar__error(CELLAR_ECORRUPT,
		                     "the index is damaged and the log has damaged "
		                     "records: the key may be in one of them");
	return rc;
}

/* Bump a per-thread counter: plain loads and stores, no locked RMW. */
static inline void bump(atomic_uint_fast64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
	                      memory_order_relaxed);
}

/*
 * A value was delivered, but the SIGBUS guard rescued a fault since the
 * lookup began (rescued: the count then): a file may have been cut between
 * the checksum and the copy, and the copy may hold zeros.  Never hand them
 * out.  (A fault on another mapping meanwhile costs a spurious error; the
 * guard rescues only while files are being cut under their mappings.)
 */
static int cut_while_read(int rc, uint64_t rescued)
{
	if (__builtin_expect(fs_sigbus_rescues() == rescued, 1) ||
	    (rc != CELLAR_OK && rc != CELLAR_EBUFS))
		return rc;
	return cellar__error(CELLAR_ECORRUPT, "a file was cut short under its "
	                     "mapping while the value was read");
}

/* The lookup under the latch, counted; the caller holds slot. */
static inline int lookup_held(cellar_db *db, read_req *r, unsigned slot)
{
	uint64_t h = db_hash(db, r->key, r->key_len);
	uint64_t rescued = fs_sigbus_rescues();
	get_ctx c = { db, r, 0, 0, 0 };
	unsigned probes;
	int rc = index_lookup_inline(db->ix, h, match_get, &c, &probes);

	if (rc == CELLAR_ENOTFOUND)
		rc = c.damaged ? damaged_key(&c) : miss(db);
	else if (__builtin_expect(rc == CELLAR_ECORRUPT, 0))
		rc = from_shadow(db, r, h, rc);
	else
		rc = cut_while_read(rc, rescued);
	read_counters *cnt = &db->reads[slot];

	bump(&cnt->gets, 1);
	bump(&cnt->probes, probes);
	if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
		bump(&cnt->hits, 1);
	return rc;
}

int read_lookup(cellar_db *db, read_req *r)
{
	unsigned slot = db_read_lock(db);
	int rc = lookup_held(db, r, slot);

	db_read_unlock(db, slot);
	return rc;
}

int read_pinned(cellar_db *db, read_req *r, unsigned *slot)
{
	int rc;

	r->owned = NULL;
	*slot = db_read_lock(db);
	if ((rc = lookup_held(db, r, *slot)) < 0) {
		db_read_unlock(db, *slot);
		free(r->owned);
		r->owned = NULL;
	}
	return rc;
}

void read_unpin(cellar_db *db, unsigned slot, void *owned)
{
	db_read_unlock(db, slot);
	free(owned);
}

/* ---- batches ------------------------------------------------------------ */

/*
 * cellar_get_many runs its lookups in groups of GROUP, each in passes over
 * the group, so that the cache misses of one key overlap with the others'
 * (group prefetching):
 *   1. hash every key and prefetch its primary bucket;
 *   2. find the first slot of the bucket whose tag matches, locate that
 *      record's bytes and prefetch them; or, if the key can only be further
 *      down the bucket's chain, prefetch the first overflow bucket;
 *   2b. the same for those overflow buckets (about one key in eight at the
 *      table's usual load);
 *   3. compare the key, verify and copy: first the keys settled in the
 *      primary bucket, then those of 2b, whose records were asked for last.
 * What the passes cannot settle on their own (a candidate whose key
 * differs, a chain longer than two buckets, a record that is not a short
 * put in memory) goes the single-key way, read_lookup's, so every answer is
 * the one cellar_get gives.  A group's passes 2 to 3 run under one hold of
 * the shared latch.
 */
#define GROUP 16

enum {
	PROBE_FULL,      /* take the single-key path */
	PROBE_ABSENT,    /* the chain says the key is not there */
	PROBE_CANDIDATE, /* a record to check is located (and prefetched) */
	PROBE_CHAIN      /* the first overflow bucket is prefetched (q->c) */
};

typedef struct probe {
	cellar_get_item *it;
	uint64_t hash;
	const segment *g;
	const uint8_t *p; /* the candidate's bytes */
	uint64_t avail;
	uint32_t off;
	int state;
	int chained;      /* settled in an overflow bucket (pass 2b) */
	index_chain c;    /* PROBE_CHAIN: the cursor at the primary bucket */
} probe;

/*
 * Bucket b's first slot whose tag matches: locate its record and prefetch
 * it (PROBE_CANDIDATE).  Returns 1 if the bucket settled the probe's state
 * that way or as PROBE_FULL, 0 if no slot matched.
 */
static int probe_slots(cellar_db *db, probe *q, const uint8_t *b, uint32_t tag)
{
	const segset *s = &db->segs;

	for (unsigned m = bucket_match(b, tag); m; m &= m - 1) {
		int i = __builtin_ctz(m);
		if (!bucket_slot_used(b, i))
			continue;
		const segment *g = s->by_id[bucket_seg(b, i)];
		uint32_t off = bucket_off(b, i);
		q->state = PROBE_FULL;
		if (!g || off < SEG_HEADER_SIZE || off >= g->size)
			return 1;
		segset_locate(s, g, off, g->size, &q->p, &q->avail);
		if (!q->p)
			return 1;
		__builtin_prefetch(q->p);
		if (q->avail > 64)
			__builtin_prefetch(q->p + 64);
		if (q->avail > 128)
			__builtin_prefetch(q->p + 128);
		q->g = g;
		q->off = off;
		q->state = PROBE_CANDIDATE;
		return 1;
	}
	return 0;
}

/* Pass 2 for one key: its primary bucket. */
static void probe_bucket(cellar_db *db, probe *q)
{
	cellar_index *ix = db->ix;
	uint32_t tag = index_tag(q->hash), next;

	q->state = PROBE_FULL;
	q->chained = 0;
	if (index_chain_first(&q->c, ix, index_addr(ix, tag),
	                      INDEX_CHAIN_CHECKED) < 0)
		return; /* the single-key path reports the damage */
	const uint8_t *b = q->c.b;
	if (probe_slots(db, q, b, tag))
		return;
	if (!(next = bucket_next(b)) || !bucket_chain_may_hold(b, tag)) {
		q->state = PROBE_ABSENT;
		return;
	}
	if (next < ix->ovf.n) { /* else the single-key path reports it */
		__builtin_prefetch(index_bucket_addr(&ix->ovf, next));
		q->state = PROBE_CHAIN;
	}
}

/* Pass 2b for one key: the first overflow bucket of its chain. */
static void probe_chain(cellar_db *db, probe *q)
{
	uint32_t tag = index_tag(q->hash);

	q->state = PROBE_FULL;
	q->chained = 1;
	if (index_chain_next(&q->c) < 0 || !q->c.b)
		return;
	if (!probe_slots(db, q, q->c.b, tag) && !bucket_next(q->c.b))
		q->state = PROBE_ABSENT;
}

/*
 * Pass 3 for one key: settle a candidate that is a short put with the
 * key; *done is 0 when the single-key path must decide.
 */
static int settle(probe *q, read_req *r, int *done)
{
	const uint8_t *p = q->p;

	*done = 0;
	if (!record_is_short_put(p, q->avail))
		return CELLAR_OK;
	size_t klen = record_short_key_len(p), vlen = record_short_val_len(p);
	uint64_t total = RECORD_SHORT_HEADER + (uint64_t)klen + vlen;
	if (klen != r->key_len || total > q->avail ||
	    !key_equal(p + RECORD_SHORT_HEADER, r->key, klen))
		return CELLAR_OK;
	*done = 1;
	if (!record_checksum_ok(p, total))
		return record_bad_checksum(q->g->seq, q->off);
	return deliver(r, p + RECORD_SHORT_HEADER + klen, vlen);
}

/* Pass 3 for one key, and its counters. */
static void finish_one(cellar_db *db, probe *q, read_counters *cnt)
{
	cellar_get_item *it = q->it;
	read_req r = { it->key, it->key_len, READ_COPY, it->buf, it->cap, NULL, 0,
		       NULL, NULL };
	unsigned probes = 1 + (unsigned)q->chained; /* buckets read */
	uint64_t rescued = fs_sigbus_rescues();
	int rc = CELLAR_ENOTFOUND, done = q->state == PROBE_ABSENT;

	if (q->state == PROBE_CANDIDATE)
		rc = settle(q, &r, &done);
	if (!done) {
		get_ctx c = { db, &r, 0, 0, 0 };
		rc = index_lookup_inline(db->ix, q->hash, match_get, &c, &probes);
		if (rc == CELLAR_ENOTFOUND && c.damaged)
			rc = damaged_key(&c);
	}
	if (rc == CELLAR_ENOTFOUND)
		rc = miss(db);
	else if (rc == CELLAR_ECORRUPT)
		rc = from_shadow(db, &r, q->hash, rc);
	else
		rc = cut_while_read(rc, rescued);
	it->status = rc;
	if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
		it->val_len = r.len;
	bump(&cnt->gets, 1);
	bump(&cnt->probes, probes);
	if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
		bump(&cnt->hits, 1);
}

/*
 * Pass 1 for the next group: the items from *i on that are still to be
 * looked up, at most GROUP; returns how many.
 */
static size_t prepare(cellar_db *db, cellar_get_item *items, size_t n,
                      size_t *i, probe *group)
{
	size_t k = 0;

	for (; *i < n && k < GROUP; ++*i) {
		if (items[*i].status != CELLAR_OK)
			continue;
		group[k].it = &items[*i];
		group[k].hash = db_hash(db, items[*i].key, items[*i].key_len);
		index_prefetch(db->ix, group[k].hash);
		k++;
	}
	return k;
}

void read_many(cellar_db *db, cellar_get_item *items, size_t n)
{
	probe groups[2][GROUP];
	size_t i = 0, cur = 0, k;
	unsigned slot = db_read_lock(db);

	/*
	 * While one group's records are on their way (pass 2 prefetched
	 * them), the next group is hashed and its buckets asked for.  A
	 * group's passes 2 and 3 run under one hold of the latch (its
	 * pointers into the mappings and the append buffer stay valid); a
	 * writer may get in between two groups.
	 */
	k = prepare(db, items, n, &i, groups[0]);
	while (k) {
		probe *g = groups[cur];
		int chains = 0;
		for (size_t j = 0; j < k; j++) {
			probe_bucket(db, &g[j]);
			chains |= g[j].state == PROBE_CHAIN;
		}
		size_t next = prepare(db, items, n, &i, groups[cur ^ 1]);
		if (chains)
			for (size_t j = 0; j < k; j++)
				if (g[j].state == PROBE_CHAIN)
					probe_chain(db, &g[j]);
		for (size_t j = 0; j < k; j++)
			if (!g[j].chained)
				finish_one(db, &g[j], &db->reads[slot]);
		if (chains)
			for (size_t j = 0; j < k; j++)
				if (g[j].chained)
					finish_one(db, &g[j], &db->reads[slot]);
		db_read_unlock(db, slot);
		slot = db_read_lock(db);
		cur ^= 1;
		k = next;
	}
	db_read_unlock(db, slot);
}

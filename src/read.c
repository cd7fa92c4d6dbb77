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
 * anything but a short put in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "read.h"
#include "record.h"

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
		record_release(&v);
		return CELLAR_OK;
	}
	*hit = 1;
	if ((rc = record_verify(&v, c->db->segs.by_id[seg]->seq, off)) ==
	    CELLAR_OK) {
		rc = v.h.kind == RECORD_PUT
		         ? deliver(r, record_val(&v), v.h.val_len)
		         : cellar__error(CELLAR_ECORRUPT, "index points at a tombstone");
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
	if (klen != c->r->key_len)
		return CELLAR_OK;
	if (__builtin_expect(total > avail, 0))
		return match_get_slow(c, seg, off, hit);
	if (!key_equal(p + RECORD_SHORT_HEADER, c->r->key, klen))
		return CELLAR_OK;
	*hit = 1;
	if (!record_checksum_ok(p, total))
		return record_bad_checksum(g->seq, off);
	return deliver(c->r, p + RECORD_SHORT_HEADER + klen, vlen);
}

/* Bump a per-thread counter: plain loads and stores, no locked RMW. */
static inline void bump(atomic_uint_fast64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
	                      memory_order_relaxed);
}

int read_lookup(cellar_db *db, read_req *r)
{
	uint64_t h = db_hash(db, r->key, r->key_len);
	get_ctx c = { db, r };
	unsigned slot = db_read_lock(db), probes;
	int rc = index_lookup_inline(db->ix, h, match_get, &c, &probes);
	read_counters *rc_ = &db->reads[slot];

	db_read_unlock(db, slot);
	bump(&rc_->gets, 1);
	bump(&rc_->probes, probes);
	if (rc == CELLAR_OK || rc == CELLAR_EBUFS)
		bump(&rc_->hits, 1);
	return rc;
}

void read_many(cellar_db *db, cellar_get_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cellar_get_item *it = &items[i];
		if (it->status != CELLAR_OK)
			continue;
		read_req r = { it->key, it->key_len, READ_COPY, it->buf, it->cap,
		               NULL, 0 };
		it->status = read_lookup(db, &r);
		if (it->status == CELLAR_OK || it->status == CELLAR_EBUFS)
			it->val_len = r.len;
	}
}

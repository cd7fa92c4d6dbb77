/*
 * bucket.h - the bucket codec: one 64-byte, cache-line-aligned bucket of the
 * index holds six slots.
 *
 *   off  size
 *    0    24   u32 tag[6]   high 32 bits of the key hash (0 in empty slots)
 *   24     4   u32 next     overflow bucket number of the next bucket, 0 = end
 *                           (in a primary bucket, with a filter of the
 *                           chain's tags: see bucket_chain_may_hold)
 *   28    12   u16 seg[6]   segment id of the record
 *   40    24   u32 off[6]   offset of the record in that segment; 0 = empty
 *
 * The tags are packed at the front so a lookup compares them in one pass and
 * reads seg/off only on a match.  The tag doubles as the split key of linear
 * hashing (its low bits address the bucket), so splits never read records.
 * All fields are little-endian; the accessors compile to plain moves on
 * little-endian hosts.
 */
#ifndef CELLAR_BUCKET_H
#define CELLAR_BUCKET_H

#include <stdint.h>

#include "endian.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define BUCKET_SIZE 64
#define BUCKET_SLOTS 6

static inline uint32_t bucket_tag(const uint8_t *b, int i)
{
	return le32_load(b + 4 * i);
}

/*
 * The next field of a primary bucket with a chain of overflow buckets also
 * says which tags the chain may hold, so that most lookups of an absent key
 * stop at the primary bucket instead of reading the chain:
 *   bit 31 set:   bits 23-30 are a filter: bit 23 + (tag >> 29) is set for
 *                 every tag stored in the chain (a bit may stay set after
 *                 its tag left); bits 0-22 are the first overflow bucket.
 *   bit 31 clear: bits 0-30 are the bucket; no filter, walk the chain.
 * Overflow and free buckets always use the second form.
 */
#define BUCKET_NEXT_FILTERED 0x80000000u
#define BUCKET_NEXT_FILTER_MASK 0x7f800000u
#define BUCKET_NEXT_FILTER_LIMIT 0x800000u /* first buckets below get one */
#define BUCKET_NEXT_MAX 0x7fffffffu        /* overflow buckets per table */

static inline uint32_t bucket_next(const uint8_t *b)
{
	uint32_t v = le32_load(b + 24);

	return v & BUCKET_NEXT_FILTERED ? v & (BUCKET_NEXT_FILTER_LIMIT - 1) : v;
}

/** The filter bit of a tag. */
static inline uint32_t bucket_filter_bit(uint32_t tag)
{
	return 1u << (23 + (tag >> 29));
}

/** Primary bucket b: may its overflow chain hold tag? */
static inline int bucket_chain_may_hold(const uint8_t *b, uint32_t tag)
{
	uint32_t v = le32_load(b + 24);

	return !(v & BUCKET_NEXT_FILTERED) || (v & bucket_filter_bit(tag));
}

/** Primary bucket b: its filter bits (0 if it has none). */
static inline uint32_t bucket_chain_filter(const uint8_t *b)
{
	uint32_t v = le32_load(b + 24);

	return v & BUCKET_NEXT_FILTERED ? v & BUCKET_NEXT_FILTER_MASK : 0;
}

/**
 * Primary bucket b: link it to overflow bucket next (0: no chain) with the
 * given filter bits, which must cover every tag in the chain.
 */
static inline void bucket_set_chain(uint8_t *b, uint32_t next, uint32_t filter)
{
	if (next && next < BUCKET_NEXT_FILTER_LIMIT)
		next |= BUCKET_NEXT_FILTERED | (filter & BUCKET_NEXT_FILTER_MASK);
	le32_store(b + 24, next);
}

/** Primary bucket b: note that its chain now holds tag. */
static inline void bucket_filter_add(uint8_t *b, uint32_t tag)
{
	uint32_t v = le32_load(b + 24);

	if (v & BUCKET_NEXT_FILTERED)
		le32_store(b + 24, v | bucket_filter_bit(tag));
}

static inline uint16_t bucket_seg(const uint8_t *b, int i)
{
	return le16_load(b + 28 + 2 * i);
}

static inline uint32_t bucket_off(const uint8_t *b, int i)
{
	return le32_load(b + 40 + 4 * i);
}

/** Overflow or free bucket b: link it to next (at most BUCKET_NEXT_MAX). */
static inline void bucket_set_next(uint8_t *b, uint32_t next)
{
	le32_store(b + 24, next);
}

static inline void bucket_set(uint8_t *b, int i, uint32_t tag, uint16_t seg,
                              uint32_t off)
{
	le32_store(b + 4 * i, tag);
	le16_store(b + 28 + 2 * i, seg);
	le32_store(b + 40 + 4 * i, off);
}

static inline void bucket_clear_slot(uint8_t *b, int i)
{
	bucket_set(b, i, 0, 0, 0);
}

static inline int bucket_slot_used(const uint8_t *b, int i)
{
	return bucket_off(b, i) != 0;
}

/**
 * Bitmask of the slots whose tag equals tag.  Empty slots have tag 0 and
 * match a zero tag: callers check bucket_slot_used.
 */
static inline unsigned bucket_match(const uint8_t *b, uint32_t tag)
{
#if defined(__SSE2__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Two 16-byte compares cover tags 0-3 and 4-5 (plus next, masked). */
	__m128i t = _mm_set1_epi32((int)tag);
	__m128i lo = _mm_loadu_si128((const __m128i *)(const void *)b);
	__m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(b + 16));
	unsigned m = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(lo, t))) |
	             (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(hi, t))) << 4;
	return m & 0x3f;
#else
	unsigned m = 0;

	for (int i = 0; i < BUCKET_SLOTS; i++)
		m |= (unsigned)(bucket_tag(b, i) == tag) << i;
	return m;
#endif
}

/** Index of the first empty slot, or -1 if the bucket is full. */
int bucket_free_slot(const uint8_t *b);

/** Number of used slots. */
int bucket_used(const uint8_t *b);

#endif

/*
 * test_bucket.c - the bucket codec (src/bucket.h): the byte layout of a
 * 64-byte bucket, tag matching, free slots and the used count.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "bucket.h"

/* A 64-byte aligned bucket, zeroed (all slots empty, no next). */
typedef struct bkt {
	_Alignas(64) uint8_t b[BUCKET_SIZE];
} bkt;

Test(bucket, empty_bucket_is_all_zero_and_free)
{
	bkt k;

	memset(&k, 0, sizeof k);
	cr_assert_eq(bucket_used(k.b), 0);
	cr_assert_eq(bucket_free_slot(k.b), 0);
	cr_assert_eq(bucket_next(k.b), 0);
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		cr_assert_eq(bucket_slot_used(k.b, i), 0);
		cr_assert_eq(bucket_tag(k.b, i), 0);
		cr_assert_eq(bucket_seg(k.b, i), 0);
		cr_assert_eq(bucket_off(k.b, i), 0);
	}
}

Test(bucket, layout_offsets_and_little_endian_bytes)
{
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		bkt k, want;

		memset(&k, 0, sizeof k);
		memset(&want, 0, sizeof want);
		bucket_set(k.b, i, 0x11223344u, 0x5566u, 0x778899aau);
		/* tag at 4*i, seg at 28+2*i, off at 40+4*i, all little-endian */
		want.b[4 * i + 0] = 0x44;
		want.b[4 * i + 1] = 0x33;
		want.b[4 * i + 2] = 0x22;
		want.b[4 * i + 3] = 0x11;
		want.b[28 + 2 * i + 0] = 0x66;
		want.b[28 + 2 * i + 1] = 0x55;
		want.b[40 + 4 * i + 0] = 0xaa;
		want.b[40 + 4 * i + 1] = 0x99;
		want.b[40 + 4 * i + 2] = 0x88;
		want.b[40 + 4 * i + 3] = 0x77;
		cr_assert_arr_eq(k.b, want.b, BUCKET_SIZE, "slot %d", i);
		cr_assert_eq(bucket_tag(k.b, i), 0x11223344u);
		cr_assert_eq(bucket_seg(k.b, i), 0x5566u);
		cr_assert_eq(bucket_off(k.b, i), 0x778899aau);
	}
}

Test(bucket, next_is_at_24_little_endian)
{
	bkt k;

	memset(&k, 0, sizeof k);
	bucket_set_next(k.b, 0x5eadbeefu);
	cr_assert_eq(k.b[24], 0xef);
	cr_assert_eq(k.b[25], 0xbe);
	cr_assert_eq(k.b[26], 0xad);
	cr_assert_eq(k.b[27], 0x5e);
	for (int i = 0; i < BUCKET_SIZE; i++)
		if (i < 24 || i > 27)
			cr_assert_eq(k.b[i], 0, "byte %d", i);
	cr_assert_eq(bucket_next(k.b), 0x5eadbeefu);
	cr_assert_eq(bucket_chain_filter(k.b), 0, "a plain link has no filter");
	cr_assert(bucket_chain_may_hold(k.b, 0x12345678u));
	/* next does not make any slot used */
	cr_assert_eq(bucket_used(k.b), 0);
}

Test(bucket, accessors_read_hand_written_bytes)
{
	bkt k;

	memset(&k, 0, sizeof k);
	/* slot 5: tag 0x01020304, seg 0xfffe, off 0x80000001 */
	memcpy(k.b + 20, "\x04\x03\x02\x01", 4);
	memcpy(k.b + 38, "\xfe\xff", 2);
	memcpy(k.b + 60, "\x01\x00\x00\x80", 4);
	memcpy(k.b + 24, "\x07\x00\x00\x00", 4);
	cr_assert_eq(bucket_tag(k.b, 5), 0x01020304u);
	cr_assert_eq(bucket_seg(k.b, 5), 0xfffeu);
	cr_assert_eq(bucket_off(k.b, 5), 0x80000001u);
	cr_assert_eq(bucket_next(k.b), 7);
	cr_assert_eq(bucket_used(k.b), 1);
	cr_assert_eq(bucket_slot_used(k.b, 5), 1);
}

Test(bucket, set_does_not_touch_other_slots_or_next)
{
	bkt k;

	memset(&k, 0, sizeof k);
	bucket_set_next(k.b, 42);
	for (int i = 0; i < BUCKET_SLOTS; i++)
		bucket_set(k.b, i, 100u + (uint32_t)i, (uint16_t)(200 + i),
		           300u + (uint32_t)i);
	bucket_set(k.b, 3, 0xffffffffu, 0xffff, 0xffffffffu);
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		if (i == 3)
			continue;
		cr_assert_eq(bucket_tag(k.b, i), 100u + (uint32_t)i);
		cr_assert_eq(bucket_seg(k.b, i), 200 + i);
		cr_assert_eq(bucket_off(k.b, i), 300u + (uint32_t)i);
	}
	cr_assert_eq(bucket_next(k.b), 42);
	bucket_clear_slot(k.b, 3);
	cr_assert_eq(bucket_tag(k.b, 3), 0);
	cr_assert_eq(bucket_seg(k.b, 3), 0);
	cr_assert_eq(bucket_off(k.b, 3), 0);
	cr_assert_eq(bucket_next(k.b), 42);
	cr_assert_eq(bucket_used(k.b), 5);
}

Test(bucket, match_returns_mask_of_equal_tags)
{
	bkt k;

	memset(&k, 0, sizeof k);
	bucket_set(k.b, 0, 0xabcd0001u, 1, 100);
	bucket_set(k.b, 1, 0x12345678u, 1, 200);
	bucket_set(k.b, 3, 0xabcd0001u, 2, 300);
	bucket_set(k.b, 5, 0xabcd0001u, 3, 400);
	cr_assert_eq(bucket_match(k.b, 0xabcd0001u), 0x29u); /* slots 0, 3, 5 */
	cr_assert_eq(bucket_match(k.b, 0x12345678u), 0x02u);
	cr_assert_eq(bucket_match(k.b, 0xabcd0002u), 0u);
	cr_assert_eq(bucket_match(k.b, 0x00000001u), 0u);
	/* all six equal */
	for (int i = 0; i < BUCKET_SLOTS; i++)
		bucket_set(k.b, i, 7, 0, 1u + (uint32_t)i);
	cr_assert_eq(bucket_match(k.b, 7), 0x3fu);
}

Test(bucket, match_of_zero_tag_includes_used_slots_with_zero_tag)
{
	bkt k;
	unsigned used = 0;

	memset(&k, 0, sizeof k);
	bucket_set(k.b, 2, 0, 9, 1000); /* a key whose hash has high bits 0 */
	bucket_set(k.b, 4, 5, 9, 2000);
	for (int i = 0; i < BUCKET_SLOTS; i++)
		used |= (unsigned)bucket_slot_used(k.b, i) << i;
	cr_assert_eq(used, 0x14u);
	/*
	 * Empty slots also hold tag 0; only the used ones are promised (the
	 * index filters with bucket_slot_used), so look at used slots only.
	 */
	cr_assert_eq(bucket_match(k.b, 0) & used, 0x04u);
	cr_assert_eq(bucket_match(k.b, 5) & used, 0x10u);
	cr_assert_eq(bucket_match(k.b, 5), 0x10u);
}

Test(bucket, free_slot_finds_first_empty)
{
	bkt k;

	memset(&k, 0, sizeof k);
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		cr_assert_eq(bucket_free_slot(k.b), i);
		cr_assert_eq(bucket_used(k.b), i);
		bucket_set(k.b, i, 0x1000u + (uint32_t)i, 0, 32u + (uint32_t)i);
	}
	cr_assert_eq(bucket_free_slot(k.b), -1);
	cr_assert_eq(bucket_used(k.b), BUCKET_SLOTS);
	bucket_clear_slot(k.b, 4);
	cr_assert_eq(bucket_free_slot(k.b), 4);
	bucket_clear_slot(k.b, 1);
	cr_assert_eq(bucket_free_slot(k.b), 1);
	cr_assert_eq(bucket_used(k.b), 4);
}

Test(bucket, slot_is_used_iff_offset_nonzero)
{
	bkt k;

	memset(&k, 0, sizeof k);
	/* A tag and segment without an offset do not make a slot used. */
	bucket_set(k.b, 0, 0xffffffffu, 0xffff, 0);
	cr_assert_eq(bucket_slot_used(k.b, 0), 0);
	cr_assert_eq(bucket_free_slot(k.b), 0);
	cr_assert_eq(bucket_used(k.b), 0);
	/* Offset alone, with tag 0 and segment 0, does. */
	bucket_set(k.b, 0, 0, 0, 1);
	cr_assert_eq(bucket_slot_used(k.b, 0), 1);
	cr_assert_eq(bucket_free_slot(k.b), 1);
	cr_assert_eq(bucket_used(k.b), 1);
	/* The next field never counts. */
	bucket_set_next(k.b, 0xffffffffu);
	cr_assert_eq(bucket_used(k.b), 1);
}

Test(bucket, chain_filter_encodes_next_and_tags)
{
	bkt k;
	const uint32_t in = 0x20000001u, out = 0xe0000001u; /* filter bits 24, 30 */

	memset(&k, 0, sizeof k);
	bucket_set_chain(k.b, 0x7abcde, bucket_filter_bit(in));
	cr_assert_eq(bucket_next(k.b), 0x7abcde);
	cr_assert_eq(le32_load(k.b + 24), 0x80000000u | 1u << 24 | 0x7abcde);
	cr_assert(bucket_chain_may_hold(k.b, in));
	cr_assert(!bucket_chain_may_hold(k.b, out));
	/* Only the tag's top three bits choose its filter bit. */
	cr_assert(bucket_chain_may_hold(k.b, in ^ 0x1fffffffu));
	bucket_filter_add(k.b, out);
	cr_assert(bucket_chain_may_hold(k.b, out));
	cr_assert_eq(bucket_next(k.b), 0x7abcde, "adding keeps the link");
	cr_assert_eq(bucket_chain_filter(k.b), 1u << 24 | 1u << 30);
	/* Relinking keeps what it is given; no chain clears the filter. */
	bucket_set_chain(k.b, 5, bucket_chain_filter(k.b));
	cr_assert_eq(bucket_next(k.b), 5);
	cr_assert(bucket_chain_may_hold(k.b, in) && bucket_chain_may_hold(k.b, out));
	bucket_set_chain(k.b, 0, bucket_chain_filter(k.b));
	cr_assert_eq(le32_load(k.b + 24), 0);
	/* No slot became used, and the tags are untouched. */
	cr_assert_eq(bucket_used(k.b), 0);
	cr_assert_eq(bucket_match(k.b, 0) & 0x3f, 0x3f);
}

Test(bucket, first_buckets_past_the_filter_limit_get_no_filter)
{
	bkt k;

	memset(&k, 0, sizeof k);
	bucket_set_chain(k.b, BUCKET_NEXT_FILTER_LIMIT, 0);
	cr_assert_eq(bucket_next(k.b), BUCKET_NEXT_FILTER_LIMIT);
	cr_assert_eq(bucket_chain_filter(k.b), 0);
	/* Without a filter every tag may be in the chain. */
	for (uint32_t t = 0; t < 8; t++)
		cr_assert(bucket_chain_may_hold(k.b, t << 29));
	bucket_filter_add(k.b, 0);
	cr_assert_eq(le32_load(k.b + 24), BUCKET_NEXT_FILTER_LIMIT,
	             "no filter to add to");
	bucket_set_chain(k.b, BUCKET_NEXT_MAX, 0);
	cr_assert_eq(bucket_next(k.b), BUCKET_NEXT_MAX);
	/* Just below the limit, an empty filter hides every tag. */
	bucket_set_chain(k.b, BUCKET_NEXT_FILTER_LIMIT - 1, 0);
	cr_assert_eq(bucket_next(k.b), BUCKET_NEXT_FILTER_LIMIT - 1);
	for (uint32_t t = 0; t < 8; t++)
		cr_assert(!bucket_chain_may_hold(k.b, t << 29));
}

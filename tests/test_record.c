/*
 * test_record.c - the record codec (src/record.h): encode, seal, decode and
 * every way decode must refuse a header.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "endian.h"
#include "record.h"

/* Bytes of the LEB128 encoding of v, computed independently of record.c. */
static size_t leb_len(uint64_t v)
{
	size_t n = 1;

	for (; v >= 128; v /= 128)
		n++;
	return n;
}

/* A sealed record of kind with key bytes 'k'+i and value bytes 'v'+i. */
static uint8_t *make_record(unsigned kind, size_t key_len, size_t val_len,
                            uint64_t *total)
{
	uint64_t t = record_size(key_len, val_len);
	uint8_t *p = malloc((size_t)t);

	cr_assert_not_null(p);
	size_t h = record_encode_header(p, kind, key_len, val_len);
	for (size_t i = 0; i < key_len; i++)
		p[h + i] = (uint8_t)('k' + i);
	for (size_t i = 0; i < val_len; i++)
		p[h + key_len + i] = (uint8_t)('v' + 3 * i);
	record_seal(p, t);
	*total = t;
	return p;
}

/* Seal a hand-made record of total bytes and decode it with limit total. */
static int decode_sealed(uint8_t *p, size_t total, record_header *h)
{
	record_seal(p, total);
	return record_decode_header(p, total, total, h);
}

Test(record, round_trip_many_lengths)
{
	static const size_t keys[] = { 1, 2, 127, 128, 129, 16383, 16384, 65535 };
	static const size_t vals[] = { 0, 1, 127, 128, 16383, 16384, 70000 };

	for (size_t ki = 0; ki < sizeof keys / sizeof *keys; ki++) {
		for (size_t vi = 0; vi < sizeof vals / sizeof *vals; vi++) {
			size_t kl = keys[ki], vl = vals[vi];
			uint64_t total;
			uint8_t *p = make_record(RECORD_PUT, kl, vl, &total);
			size_t hl = 5 + leb_len(kl) + leb_len(vl);
			record_header h;

			cr_assert_eq(total, hl + kl + vl, "k=%zu v=%zu", kl, vl);
			cr_assert_eq(record_decode_header(p, (size_t)total, total, &h), 0,
			             "k=%zu v=%zu", kl, vl);
			cr_assert_eq(h.kind, RECORD_PUT);
			cr_assert_eq(h.header_len, hl, "k=%zu v=%zu", kl, vl);
			cr_assert_eq(h.key_len, kl);
			cr_assert_eq(h.val_len, vl);
			cr_assert_eq(h.total, total);
			cr_assert_eq(h.checksum, le32_load(p));
			cr_assert_eq(record_checksum(p, total), h.checksum);
			for (size_t i = 0; i < kl; i++)
				cr_assert_eq(p[h.header_len + i], (uint8_t)('k' + i));
			for (size_t i = 0; i < vl; i++)
				cr_assert_eq(p[h.header_len + kl + i], (uint8_t)('v' + 3 * i));
			/* Only the header needs to be readable to decode it. */
			cr_assert_eq(record_decode_header(p, hl < 7 ? 7 : hl, total, &h), 0);
			cr_assert_eq(h.total, total);
			free(p);
		}
	}
}

Test(record, delete_round_trip)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_DELETE, 10, 0, &total);
	record_header h;

	cr_assert_eq(total, 4 + 1 + 1 + 1 + 10);
	cr_assert_eq(record_decode_header(p, (size_t)total, total, &h), 0);
	cr_assert_eq(h.kind, RECORD_DELETE);
	cr_assert_eq(h.key_len, 10);
	cr_assert_eq(h.val_len, 0);
	cr_assert_eq(record_checksum(p, total), h.checksum);
	free(p);
}

Test(record, varint_bytes_at_boundaries)
{
	static const struct {
		size_t v;
		size_t n;
		uint8_t b[5];
	} cases[] = {
		{ 0, 1, { 0x00 } },
		{ 127, 1, { 0x7f } },
		{ 128, 2, { 0x80, 0x01 } },
		{ 16383, 2, { 0xff, 0x7f } },
		{ 16384, 3, { 0x80, 0x80, 0x01 } },
		{ 65535, 3, { 0xff, 0xff, 0x03 } },
		{ (size_t)1 << 30, 5, { 0x80, 0x80, 0x80, 0x80, 0x04 } },
	};
	uint8_t out[RECORD_MAX_HEADER];

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		memset(out, 0xee, sizeof out);
		size_t n = record_encode_header(out, RECORD_PUT, 1, cases[i].v);
		cr_assert_eq(n, 6 + cases[i].n, "v=%zu", cases[i].v);
		cr_assert_eq(le32_load(out), 0, "checksum field left zero");
		cr_assert_eq(out[4], RECORD_PUT);
		cr_assert_eq(out[5], 1);
		cr_assert_arr_eq(out + 6, cases[i].b, cases[i].n, "v=%zu", cases[i].v);
		if (cases[i].v && cases[i].v <= CELLAR_MAX_KEY_LEN) {
			n = record_encode_header(out, RECORD_DELETE, cases[i].v, 0);
			cr_assert_eq(n, 5 + cases[i].n + 1);
			cr_assert_eq(out[4], RECORD_DELETE);
			cr_assert_arr_eq(out + 5, cases[i].b, cases[i].n);
			cr_assert_eq(out[5 + cases[i].n], 0);
		}
	}
}

Test(record, one_gib_value_header_only)
{
	size_t vl = CELLAR_MAX_VALUE_LEN;
	uint8_t hdr[RECORD_MAX_HEADER + 8];
	record_header h;
	uint64_t total = record_size(1, vl);

	cr_assert_eq(total, 4 + 1 + 1 + 5 + 1 + (uint64_t)vl);
	size_t n = record_encode_header(hdr, RECORD_PUT, 1, vl);
	cr_assert_eq(n, 11);
	cr_assert_eq(record_decode_header(hdr, n, total, &h), 0);
	cr_assert_eq(h.val_len, vl);
	cr_assert_eq(h.key_len, 1);
	cr_assert_eq(h.header_len, 11);
	cr_assert_eq(h.total, total);
	cr_assert_eq(record_decode_header(hdr, n, total - 1, &h), CELLAR_ECORRUPT);

	/* The longest header this version writes. */
	total = record_size(CELLAR_MAX_KEY_LEN, vl);
	n = record_encode_header(hdr, RECORD_PUT, CELLAR_MAX_KEY_LEN, vl);
	cr_assert_eq(n, RECORD_MAX_HEADER);
	cr_assert_eq(total, RECORD_MAX_HEADER + (uint64_t)CELLAR_MAX_KEY_LEN + vl);
	cr_assert_eq(record_decode_header(hdr, n, total, &h), 0);
	cr_assert_eq(h.key_len, CELLAR_MAX_KEY_LEN);
	cr_assert_eq(h.val_len, vl);
}

Test(record, checksum_detects_every_single_bit_flip)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_PUT, 5, 9, &total);
	uint32_t stored = le32_load(p);

	cr_assert_eq(record_checksum(p, total), stored);
	for (size_t byte = 0; byte < total; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			p[byte] ^= (uint8_t)(1u << bit);
			cr_assert_neq(record_checksum(p, total), le32_load(p),
			              "flip of byte %zu bit %d not detected", byte, bit);
			p[byte] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert_eq(record_checksum(p, total), stored);
	free(p);
}

Test(record, seal_writes_checksum_little_endian)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_PUT, 3, 4, &total);
	uint32_t sum = record_checksum(p, total);

	cr_assert_eq(p[0], (uint8_t)sum);
	cr_assert_eq(p[1], (uint8_t)(sum >> 8));
	cr_assert_eq(p[2], (uint8_t)(sum >> 16));
	cr_assert_eq(p[3], (uint8_t)(sum >> 24));
	free(p);
}

Test(record, decode_rejects_short_avail)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_PUT, 1, 0, &total);
	record_header h;

	cr_assert_eq(total, 8);
	for (size_t avail = 0; avail < 7; avail++)
		cr_assert_eq(record_decode_header(p, avail, total, &h), CELLAR_ECORRUPT,
		             "avail %zu", avail);
	cr_assert_eq(record_decode_header(p, 7, total, &h), 0);
	free(p);
}

Test(record, decode_rejects_zero_key_length)
{
	uint8_t p[16] = { 0, 0, 0, 0, RECORD_PUT, 0x00, 0x01, 'x' };
	record_header h;

	cr_assert_eq(decode_sealed(p, 8, &h), CELLAR_ECORRUPT);
	p[4] = RECORD_DELETE;
	p[6] = 0;
	cr_assert_eq(decode_sealed(p, 7, &h), CELLAR_ECORRUPT);
}

Test(record, decode_rejects_key_longer_than_65535)
{
	/* 65536 = 0x80 0x80 0x04 */
	uint8_t p[16] = { 0, 0, 0, 0, RECORD_PUT, 0x80, 0x80, 0x04, 0x00 };
	record_header h;

	cr_assert_eq(record_decode_header(p, sizeof p, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	/* 65535 passes the same checks. */
	p[7] = 0x03;
	p[5] = p[6] = 0xff;
	cr_assert_eq(record_decode_header(p, sizeof p, UINT64_MAX, &h), 0);
	cr_assert_eq(h.key_len, 65535);
	/* A key length needing four varint bytes is malformed. */
	uint8_t q[16] = { 0, 0, 0, 0, RECORD_PUT, 0x81, 0x80, 0x80, 0x00, 0x00 };
	cr_assert_eq(record_decode_header(q, sizeof q, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
}

Test(record, decode_rejects_value_longer_than_1_gib)
{
	/* 2^30 + 1 = 0x81 0x80 0x80 0x80 0x04 */
	uint8_t p[16] = { 0, 0, 0, 0, RECORD_PUT, 0x01, 0x81, 0x80, 0x80, 0x80,
	                  0x04 };
	record_header h;

	cr_assert_eq(record_decode_header(p, sizeof p, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	p[6] = 0x80; /* exactly 2^30 */
	cr_assert_eq(record_decode_header(p, sizeof p, UINT64_MAX, &h), 0);
	cr_assert_eq(h.val_len, (size_t)1 << 30);
	/* Six varint bytes are malformed whatever they encode. */
	uint8_t q[16] = { 0, 0, 0, 0, RECORD_PUT, 0x01, 0x80, 0x80, 0x80, 0x80,
	                  0x80, 0x00 };
	cr_assert_eq(record_decode_header(q, sizeof q, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
}

Test(record, decode_rejects_truncated_varints)
{
	record_header h;
	/* Key length varint runs into the end of what is readable. */
	uint8_t k[7] = { 0, 0, 0, 0, RECORD_PUT, 0x80, 0x80 };
	cr_assert_eq(record_decode_header(k, sizeof k, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	/* Value length varint does. */
	uint8_t v[8] = { 0, 0, 0, 0, RECORD_PUT, 0x01, 0x80, 0x80 };
	cr_assert_eq(record_decode_header(v, sizeof v, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	/* The same bytes with the varint completed decode. */
	uint8_t ok[9] = { 0, 0, 0, 0, RECORD_PUT, 0x01, 0x80, 0x01, 'x' };
	cr_assert_eq(record_decode_header(ok, sizeof ok, UINT64_MAX, &h), 0);
	cr_assert_eq(h.val_len, 128);
	cr_assert_eq(h.header_len, 8);
	/* Extension length varint does. */
	uint8_t e[8] = { 0, 0, 0, 0, RECORD_PUT | RECORD_FLAG_EXT, 0x01, 0x00,
	                 0x80 };
	cr_assert_eq(record_decode_header(e, sizeof e, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
}

Test(record, decode_rejects_unknown_flag_bits)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_PUT, 2, 2, &total);
	record_header h;

	for (unsigned bit = 6; bit < 8; bit++) {
		p[4] = (uint8_t)(RECORD_PUT | 1u << bit);
		record_seal(p, total);
		cr_assert_eq(record_decode_header(p, (size_t)total, total, &h),
		             CELLAR_ECORRUPT, "flag bit %u", bit);
	}
	/* Bit 5 marks a batch body's record (read as a put or delete). */
	p[4] = RECORD_PUT | RECORD_FLAG_BATCH;
	record_seal(p, total);
	cr_assert_eq(record_decode_header(p, (size_t)total, total, &h), 0);
	cr_assert_eq(h.kind, RECORD_PUT);
	cr_assert_eq(h.in_batch, 1);
	cr_assert(record_is_short_put(p, total), "the read path's inline shape");
	p[4] = RECORD_PUT;
	record_seal(p, total);
	cr_assert_eq(record_decode_header(p, (size_t)total, total, &h), 0);
	free(p);
}

Test(record, decode_rejects_record_past_limit)
{
	uint64_t total;
	uint8_t *p = make_record(RECORD_PUT, 4, 20, &total);
	record_header h;

	cr_assert_eq(record_decode_header(p, (size_t)total, total, &h), 0);
	for (uint64_t lim = 0; lim < total; lim++)
		cr_assert_eq(record_decode_header(p, (size_t)total, lim, &h),
		             CELLAR_ECORRUPT, "limit %llu", (unsigned long long)lim);
	cr_assert_eq(record_decode_header(p, (size_t)total, total + 100, &h), 0);
	free(p);
}

Test(record, decode_rejects_delete_with_value)
{
	uint8_t p[16] = { 0, 0, 0, 0, RECORD_DELETE, 0x01, 0x01, 'k', 'v' };
	record_header h;

	cr_assert_eq(decode_sealed(p, 9, &h), CELLAR_ECORRUPT);
	p[6] = 0x00;
	cr_assert_eq(decode_sealed(p, 8, &h), 0);
	cr_assert_eq(h.kind, RECORD_DELETE);
}

Test(record, decode_rejects_kind_zero_as_corrupt)
{
	uint8_t p[16] = { 0, 0, 0, 0, 0x00, 0x01, 0x01, 'k', 'v' };
	record_header h;

	cr_assert_eq(decode_sealed(p, 9, &h), CELLAR_ECORRUPT);
	/* kind 0 with an (empty) extension area */
	uint8_t q[16] = { 0, 0, 0, 0, RECORD_FLAG_EXT, 0x01, 0x01, 0x00, 'k', 'v' };
	cr_assert_eq(decode_sealed(q, 10, &h), CELLAR_ECORRUPT);
}

Test(record, batch_header_round_trips_and_is_checked)
{
	uint8_t body[64], rec[RECORD_BATCH_SIZE];
	record_header h;
	record_batch b;

	memset(body, 0x5a, sizeof body);
	record_encode_batch(rec, body, sizeof body, 3);
	cr_assert_eq(record_decode_header(rec, sizeof rec, sizeof rec, &h), CELLAR_OK);
	cr_assert_eq(h.kind, RECORD_BATCH);
	cr_assert_eq(h.total, RECORD_BATCH_SIZE);
	cr_assert_eq(record_checksum(rec, h.total), h.checksum);
	record_batch_info(rec, &h, &b);
	cr_assert_eq(b.body_len, sizeof body);
	cr_assert_eq(b.count, 3);
	cr_assert(record_batch_body_ok(&b, body));
	body[63] ^= 1;
	cr_assert(!record_batch_body_ok(&b, body), "a changed body fails");
	/* A batch header with another field size, or a value, is damage. */
	uint8_t p[16] = { 0, 0, 0, 0, RECORD_BATCH, 0x01, 0x01, 'k', 'v' };
	cr_assert_eq(decode_sealed(p, 9, &h), CELLAR_ECORRUPT);
	p[6] = 0;
	cr_assert_eq(decode_sealed(p, 8, &h), CELLAR_ECORRUPT);
}

Test(record, decode_reports_unknown_kinds_as_version)
{
	/* 4 is an expiring put (test_record's expiring_put_* tests). */
	for (unsigned kind = 5; kind <= 15; kind++) {
		uint8_t p[16] = { 0, 0, 0, 0, (uint8_t)kind, 0x01, 0x01, 'k', 'v' };
		record_header h;

		cr_assert_eq(decode_sealed(p, 9, &h), CELLAR_EVERSION, "kind %u", kind);
		cr_assert_eq(h.kind, kind);
		cr_assert_eq(h.total, 9, "lengths decoded so the record can be skipped");
		/* Still refused as damage when it runs past the limit. */
		cr_assert_eq(record_decode_header(p, 9, 8, &h), CELLAR_ECORRUPT,
		             "kind %u", kind);
	}
}

Test(record, extension_area_is_accepted_and_skipped)
{
	/* kind PUT|EXT, key 3, val 2, ext 4 bytes, then key and value. */
	uint8_t p[32] = { 0, 0, 0, 0, RECORD_PUT | RECORD_FLAG_EXT, 3, 2, 4,
	                  0xe1, 0xe2, 0xe3, 0xe4, 'a', 'b', 'c', 'x', 'y' };
	record_header h;

	cr_assert_eq(decode_sealed(p, 17, &h), 0);
	cr_assert_eq(h.kind, RECORD_PUT);
	cr_assert_eq(h.header_len, 12);
	cr_assert_eq(h.key_len, 3);
	cr_assert_eq(h.val_len, 2);
	cr_assert_eq(h.total, 17);
	cr_assert_arr_eq(p + h.header_len, "abc", 3);
	cr_assert_arr_eq(p + h.header_len + h.key_len, "xy", 2);
	cr_assert_eq(record_checksum(p, h.total), h.checksum);

	/* An empty extension area. */
	uint8_t q[16] = { 0, 0, 0, 0, RECORD_DELETE | RECORD_FLAG_EXT, 1, 0, 0,
	                  'z' };
	cr_assert_eq(decode_sealed(q, 9, &h), 0);
	cr_assert_eq(h.kind, RECORD_DELETE);
	cr_assert_eq(h.header_len, 8);
	cr_assert_eq(h.total, 9);
}

Test(record, extension_area_of_255_bytes_is_the_longest)
{
	uint8_t *p = calloc(1, RECORD_MAX_HEADER_EXT + 16);
	record_header h;
	size_t n;

	cr_assert_not_null(p);
	/* Longest header of all: 3-byte key len, 5-byte val len, 255 ext. */
	n = record_encode_header(p, RECORD_PUT | RECORD_FLAG_EXT,
	                         CELLAR_MAX_KEY_LEN, CELLAR_MAX_VALUE_LEN);
	cr_assert_eq(n, RECORD_MAX_HEADER);
	p[n] = 0xff;
	p[n + 1] = 0x01;
	cr_assert_eq(record_decode_header(p, RECORD_MAX_HEADER_EXT, UINT64_MAX, &h),
	             0);
	cr_assert_eq(h.header_len, RECORD_MAX_HEADER_EXT);
	cr_assert_eq(h.total, RECORD_MAX_HEADER_EXT + (uint64_t)CELLAR_MAX_KEY_LEN +
	                          CELLAR_MAX_VALUE_LEN);
	/* 256 bytes: damage. */
	p[n] = 0x80;
	p[n + 1] = 0x02;
	cr_assert_eq(record_decode_header(p, RECORD_MAX_HEADER_EXT, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	/* A larger value in a two-byte varint, too. */
	p[n] = 0xff;
	p[n + 1] = 0x7f;
	cr_assert_eq(record_decode_header(p, RECORD_MAX_HEADER_EXT, UINT64_MAX, &h),
	             CELLAR_ECORRUPT);
	free(p);
}

Test(record, size_matches_encoded_header)
{
	static const size_t lens[] = { 0, 1, 127, 128, 16383, 16384, 2097151,
	                               2097152, (size_t)1 << 30 };
	uint8_t hdr[RECORD_MAX_HEADER];

	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		size_t vl = lens[i];
		size_t kl = vl == 0 ? 1 : vl > CELLAR_MAX_KEY_LEN ? CELLAR_MAX_KEY_LEN : vl;
		size_t n = record_encode_header(hdr, RECORD_PUT, kl, vl);
		cr_assert_eq(record_size(kl, vl), n + (uint64_t)kl + vl, "v=%zu", vl);
		cr_assert_eq(n, 5 + leb_len(kl) + leb_len(vl));
	}
}

/* ---- expiring puts (type 4) -------------------------------------------- */

Test(record, expiring_put_round_trips_with_its_expiry)
{
	static const size_t keys[] = { 1, 127, 128, 65535 };
	static const size_t vals[] = { 0, 127, 128, 70000 };
	const uint64_t at = 0x0123456789abcdefull;

	for (size_t ki = 0; ki < 4; ki++)
		for (size_t vi = 0; vi < 4; vi++) {
			size_t kl = keys[ki], vl = vals[vi];
			uint64_t t = record_size_exp(kl, vl, at);
			uint8_t *p = calloc(1, (size_t)t);
			uint8_t *k = malloc(kl), *v = malloc(vl ? vl : 1);
			record_header h;

			memset(k, 'k', kl);
			memset(v, 'v', vl ? vl : 1);
			cr_assert_eq(t, record_size(kl, vl) + 9);
			cr_assert_eq(record_encode_exp(p, RECORD_PUT, k, kl, v, vl, at), t);
			cr_assert_eq(p[4], RECORD_PUT_EXP | RECORD_FLAG_EXT);
			cr_assert_eq(record_decode_header(p, (size_t)t, t, &h), CELLAR_OK);
			cr_assert_eq(h.kind, RECORD_PUT, "decoded as a put");
			cr_assert_eq(h.expire, at);
			cr_assert_eq(h.key_len, kl);
			cr_assert_eq(h.val_len, vl);
			cr_assert_eq(h.total, t);
			cr_assert_eq(record_checksum(p, t), h.checksum);
			cr_assert(!record_is_short_put(p, t), "never the inline shape");
			free(p);
			free(k);
			free(v);
		}
}

Test(record, expiry_zero_encodes_a_plain_record)
{
	uint8_t a[64], b[64];
	record_header h;

	cr_assert_eq(record_size_exp(3, 2, 0), record_size(3, 2));
	uint64_t t = record_encode_exp(a, RECORD_PUT, "key", 3, "vv", 2, 0);
	cr_assert_eq(t, record_encode(b, RECORD_PUT, "key", 3, "vv", 2));
	cr_assert_eq(memcmp(a, b, (size_t)t), 0);
	cr_assert_eq(record_decode_header(a, (size_t)t, t, &h), CELLAR_OK);
	cr_assert_eq(h.expire, 0);
	cr_assert_eq(record_encode_header_exp(a, RECORD_DELETE, 3, 0, 0), 7);
}

Test(record, expiring_put_with_a_longer_extension_is_read)
{
	/* Later fields may follow the expiry: this version skips them. */
	uint8_t p[32] = { 0, 0, 0, 0, RECORD_PUT_EXP | RECORD_FLAG_EXT, 1, 1, 10,
		          1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0xbb, 'k', 'v' };
	record_header h;

	cr_assert_eq(decode_sealed(p, 20, &h), CELLAR_OK);
	cr_assert_eq(h.kind, RECORD_PUT);
	cr_assert_eq(h.expire, 0x0807060504030201ull);
	cr_assert_eq(h.header_len, 18);
	cr_assert_eq(h.total, 20);
}

Test(record, malformed_expiring_put_is_damage)
{
	record_header h;
	/* No extension area. */
	uint8_t a[16] = { 0, 0, 0, 0, RECORD_PUT_EXP, 1, 1, 'k', 'v' };
	cr_assert_eq(decode_sealed(a, 9, &h), CELLAR_ECORRUPT);
	/* An extension shorter than the expiry. */
	uint8_t b[24] = { 0, 0, 0, 0, RECORD_PUT_EXP | RECORD_FLAG_EXT, 1, 1, 7,
		          1, 2, 3, 4, 5, 6, 7, 'k', 'v' };
	cr_assert_eq(decode_sealed(b, 17, &h), CELLAR_ECORRUPT);
	/* An expiry of 0. */
	uint8_t c[24] = { 0, 0, 0, 0, RECORD_PUT_EXP | RECORD_FLAG_EXT, 1, 1, 8,
		          0, 0, 0, 0, 0, 0, 0, 0, 'k', 'v' };
	cr_assert_eq(decode_sealed(c, 18, &h), CELLAR_ECORRUPT);
	/* The header cut before the end of the expiry. */
	c[8] = 1;
	cr_assert_eq(record_decode_header(c, 12, 18, &h), CELLAR_ECORRUPT);
	cr_assert_eq(decode_sealed(c, 18, &h), CELLAR_OK);
	/* A flipped byte of the expiry: the checksum tells. */
	c[10] ^= 0x10;
	cr_assert_eq(record_decode_header(c, 18, 18, &h), CELLAR_OK);
	cr_assert_neq(record_checksum(c, 18), h.checksum);
}

Test(record, expiry_is_judged_from_the_moment_it_is_reached)
{
	cr_assert(!record_expired(0, UINT64_MAX), "0 never expires");
	cr_assert(!record_expired(100, 99));
	cr_assert(record_expired(100, 100));
	cr_assert(record_expired(100, 101));
}

/* A batch body's expiring put keeps both marks: type 4 with its expiry, and
 * bit 5 (docs/format.md). */
Test(record, an_expiring_put_in_a_batch_body_keeps_both_marks)
{
	static uint8_t buf[256];
	record_header h;
	uint64_t t = record_encode_exp(buf, RECORD_PUT | RECORD_FLAG_BATCH, "key",
	                               3, "vals", 4, 123456789);

	cr_assert_eq(t, record_size_exp(3, 4, 123456789));
	cr_assert_eq(buf[4], RECORD_PUT_EXP | RECORD_FLAG_EXT | RECORD_FLAG_BATCH);
	cr_assert_eq(record_decode_header(buf, (size_t)t, t, &h), CELLAR_OK);
	cr_assert_eq(h.kind, RECORD_PUT);
	cr_assert_eq(h.in_batch, 1);
	cr_assert_eq(h.expire, 123456789);
	cr_assert(record_checksum_ok(buf, t));
	cr_assert_not(record_is_short_put(buf, t), "not the inline shape");
}

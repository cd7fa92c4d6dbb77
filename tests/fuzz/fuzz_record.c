/*
 * fuzz_record.c - the record codec on arbitrary bytes.
 *
 * The input is the start of a segment region: record_decode_header() must
 * never read outside it, and a header it accepts must describe a record
 * that fits, so that record_checksum() over the reported total stays in
 * bounds.  Decoding from a short prefix (as segment.c does when it reads a
 * header with read_at) must give the same answer.  Encoding the decoded
 * lengths must decode back to them.
 */
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "fuzz.h"
#include "record.h"

static void check_header(const record_header *h, int rc, uint64_t limit)
{
	FZ_CHECK(h->header_len >= 7 && h->header_len <= RECORD_MAX_HEADER_EXT,
	         "header length out of range", rc);
	FZ_CHECK(h->key_len >= 1 && h->key_len <= CELLAR_MAX_KEY_LEN,
	         "key length out of range", rc);
	FZ_CHECK(h->val_len <= CELLAR_MAX_VALUE_LEN, "value length out of range",
	         rc);
	FZ_CHECK(h->total == h->header_len + h->key_len + h->val_len,
	         "total is not the sum of its parts", rc);
	FZ_CHECK(h->total <= limit, "record runs past the limit", rc);
	if (rc == CELLAR_OK) {
		FZ_CHECK(h->kind == RECORD_PUT || h->kind == RECORD_DELETE ||
		             h->kind == RECORD_BATCH,
		         "accepted an unknown kind", rc);
		FZ_CHECK(h->kind == RECORD_PUT || h->val_len == 0,
		         "accepted a delete with a value", rc);
		FZ_CHECK(h->kind != RECORD_BATCH || h->key_len == RECORD_BATCH_INFO,
		         "accepted a batch header of the wrong size", rc);
		FZ_CHECK(h->kind == RECORD_PUT || h->expire == 0,
		         "an expiry on a record that is not a put", rc);
	} else {
		FZ_CHECK(h->kind != RECORD_PUT && h->kind != RECORD_DELETE &&
		             h->kind != RECORD_BATCH,
		         "EVERSION for a known kind", rc);
	}
}

static void roundtrip(unsigned kind, size_t key_len, size_t val_len,
                      uint64_t expire)
{
	uint8_t buf[RECORD_MAX_HEADER_EXP + 7];
	record_header h;
	size_t n = record_encode_header_exp(buf, kind, key_len, val_len, expire);

	FZ_CHECK(n <= (expire ? RECORD_MAX_HEADER_EXP : RECORD_MAX_HEADER),
	         "encoded header too long", 0);
	FZ_CHECK(record_size_exp(key_len, val_len, expire) ==
	             n + key_len + val_len,
	         "record_size disagrees with the encoder", 0);
	int rc = record_decode_header(buf, n, UINT64_MAX, &h);
	FZ_CHECK(rc == CELLAR_OK, "cannot decode an encoded header", rc);
	FZ_CHECK(h.kind == kind && h.header_len == n && h.key_len == key_len &&
	             h.val_len == val_len && h.expire == expire,
	         "encoded header decodes differently", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	record_header h, h2;
	uint8_t *copy;
	size_t avail;
	int rc, rc2;

	/* The whole input is readable; the record must fit in it. */
	memset(&h, 0, sizeof h);
	rc = record_decode_header(data, size, size, &h);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT ||
	             rc == CELLAR_EVERSION,
	         "unexpected error code", rc);
	if (rc == CELLAR_OK || rc == CELLAR_EVERSION) {
		check_header(&h, rc, size);
		uint32_t sum = record_checksum(data, h.total);
		/* Sealing a copy makes the checksum match. */
		if (!(copy = malloc(size)))
			return 0;
		memcpy(copy, data, size);
		record_seal(copy, h.total);
		FZ_CHECK(record_decode_header(copy, size, size, &h2) == rc &&
		             h2.checksum == record_checksum(copy, h.total),
		         "sealed record does not verify", rc);
		(void)sum;
		free(copy);
	}

	/*
	 * Only a header-sized prefix is readable but the record may extend to
	 * the end of the input (segment.c's read_at path).  Copy the prefix so
	 * that a read past it is caught.
	 */
	avail = size < RECORD_MAX_HEADER_EXT ? size : RECORD_MAX_HEADER_EXT;
	if ((copy = malloc(avail ? avail : 1)) != NULL) {
		memcpy(copy, data, avail);
		memset(&h2, 0, sizeof h2);
		rc2 = record_decode_header(copy, avail, size, &h2);
		free(copy);
		FZ_CHECK(rc2 == rc, "prefix decode disagrees with full decode", rc2);
		if (rc == CELLAR_OK || rc == CELLAR_EVERSION)
			FZ_CHECK(h2.total == h.total && h2.header_len == h.header_len &&
			             h2.kind == h.kind && h2.checksum == h.checksum,
			         "prefix decode gives another header", rc2);
	}

	/* A limit below the input must be respected too. */
	if (size > 0) {
		rc2 = record_decode_header(data, size, size / 2, &h2);
		if (rc2 == CELLAR_OK || rc2 == CELLAR_EVERSION)
			FZ_CHECK(h2.total <= size / 2, "record runs past the limit", rc2);
	}

	/* Encode lengths taken from the input and decode them back. */
	if (size >= 8) {
		size_t key_len = (size_t)(data[0] | data[1] << 8);
		size_t val_len = (size_t)(data[2] | data[3] << 8 | data[4] << 16 |
		                          (data[5] & 0x7f) << 24) &
		                 (CELLAR_MAX_VALUE_LEN | (CELLAR_MAX_VALUE_LEN - 1));
		if (val_len > CELLAR_MAX_VALUE_LEN)
			val_len = CELLAR_MAX_VALUE_LEN;
		if (key_len == 0)
			key_len = 1;
		uint64_t expire = 0;
		for (int i = 0; i < 8 && (size_t)i + 6 < size; i++)
			expire |= (uint64_t)data[6 + i] << (8 * i);
		roundtrip(RECORD_PUT, key_len, val_len, 0);
		roundtrip(RECORD_DELETE, key_len, 0, 0);
		if (expire)
			roundtrip(RECORD_PUT, key_len, val_len, expire);
	}
	return 0;
}

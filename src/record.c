/*
 * record.c - encoding, decoding and checking segment records (see
 * record.h).  Owns the record's bytes; must not do I/O.
 */
#include <string.h>

#include "error.h"

#include "cellar.h"
#include "endian.h"
#include "hash.h"
#include "record.h"

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Decode at most max bytes; returns the length used, or 0 if malformed. */
static size_t varint_get(const uint8_t *p, size_t avail, size_t max,
                         uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < max && i < avail; i++) {
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*out = v;
			return i + 1;
		}
	}
	return 0;
}

uint64_t record_size(size_t key_len, size_t val_len)
{
	return 5 + varint_len(key_len) + varint_len(val_len) + (uint64_t)key_len +
	       val_len;
}

size_t record_encode_header(uint8_t *out, unsigned kind, size_t key_len,
                            size_t val_len)
{
	size_t n = 4;

	memset(out, 0, 4);
	out[n++] = (uint8_t)kind;
	n += varint_put(out + n, key_len);
	n += varint_put(out + n, val_len);
	return n;
}

size_t record_encode_header_exp(uint8_t *out, unsigned kind, size_t key_len,
                                size_t val_len, uint64_t expire)
{
	size_t n;

	if (!expire)
		return record_encode_header(out, kind, key_len, val_len);
	n = record_encode_header(out, RECORD_PUT_EXP | RECORD_FLAG_EXT |
	                                  (kind & RECORD_FLAG_BATCH),
	                         key_len, val_len);
	out[n++] = RECORD_EXPIRE_LEN;
	le64_store(out + n, expire);
	return n + RECORD_EXPIRE_LEN;
}

uint32_t record_checksum(const uint8_t *rec, uint64_t total)
{
	return (uint32_t)hash_checksum(rec + 4, (size_t)(total - 4));
}

uint32_t record_checksum_parts(const uint8_t *hdr, size_t hdr_len,
                               const void *key, size_t key_len,
                               const void *val, size_t val_len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr + 4, hdr_len - 4);
	XXH3_64bits_update(&st, key, key_len);
	XXH3_64bits_update(&st, val, val_len);
	return (uint32_t)XXH3_64bits_digest(&st);
}

int record_bad_checksum(uint64_t seq, uint64_t off)
{
	return cellar__error(CELLAR_ECORRUPT,
	                     "segment %016llx.seg: bad checksum at offset %llu",
	                     (unsigned long long)seq, (unsigned long long)off);
}

int record_verify(const record_view *v, uint64_t seq, uint64_t off)
{
	if (record_checksum(v->p, v->h.total) != v->h.checksum)
		return record_bad_checksum(seq, off);
	return CELLAR_OK;
}

void record_seal(uint8_t *rec, uint64_t total)
{
	le32_store(rec, record_checksum(rec, total));
}

uint64_t record_encode(uint8_t *out, unsigned kind, const void *key,
                       size_t key_len, const void *val, size_t val_len)
{
	uint64_t t = record_size(key_len, val_len);
	size_t h = record_encode_header(out, kind, key_len, val_len);

	memcpy(out + h, key, key_len);
	if (val_len)
		memcpy(out + h + key_len, val, val_len);
	record_seal(out, t);
	return t;
}

uint64_t record_encode_exp(uint8_t *out, unsigned kind, const void *key,
                           size_t key_len, const void *val, size_t val_len,
                           uint64_t expire)
{
	uint64_t t = record_size_exp(key_len, val_len, expire);
	size_t h = record_encode_header_exp(out, kind, key_len, val_len, expire);

	memcpy(out + h, key, key_len);
	if (val_len)
		memcpy(out + h + key_len, val, val_len);
	record_seal(out, t);
	return t;
}

void record_encode_batch(uint8_t *out, const uint8_t *body, uint64_t body_len,
                         uint32_t count)
{
	size_t h = record_encode_header(out, RECORD_BATCH, RECORD_BATCH_INFO, 0);

	le64_store(out + h, body_len);
	le32_store(out + h + 8, count);
	le64_store(out + h + 12, hash_checksum(body, (size_t)body_len));
	record_seal(out, RECORD_BATCH_SIZE);
}

void record_batch_info(const uint8_t *rec, const record_header *h,
                       record_batch *b)
{
	const uint8_t *p = rec + h->header_len;

	b->body_len = le64_load(p);
	b->count = le32_load(p + 8);
	b->body_sum = le64_load(p + 12);
}

int record_batch_body_ok(const record_batch *b, const uint8_t *p)
{
	return hash_checksum(p, (size_t)b->body_len) == b->body_sum;
}

int record_decode_header(const uint8_t *p, size_t avail, uint64_t limit,
                         record_header *h)
{
	uint64_t klen, vlen, ext = 0;
	size_t n = 5, used, ext_at = 0;

	if (avail < 7)
		return CELLAR_ECORRUPT;
	h->checksum = le32_load(p);
	h->kind = p[4] & RECORD_KIND_MASK;
	h->in_batch = (p[4] & RECORD_FLAG_BATCH) != 0;
	h->expire = 0;
	if (p[4] & ~(RECORD_KIND_MASK | RECORD_FLAG_EXT | RECORD_FLAG_BATCH))
		return CELLAR_ECORRUPT;
	if (!(used = varint_get(p + n, avail - n, 3, &klen)))
		return CELLAR_ECORRUPT;
	n += used;
	if (!(used = varint_get(p + n, avail - n, 5, &vlen)))
		return CELLAR_ECORRUPT;
	n += used;
	if (p[4] & RECORD_FLAG_EXT) {
		if (!(used = varint_get(p + n, avail - n, 2, &ext)) ||
		    ext > RECORD_MAX_EXT)
			return CELLAR_ECORRUPT;
		ext_at = n + used;
		n += used + (size_t)ext;
	}
	if (h->kind == RECORD_PUT_EXP) {
		/* The expiry leads the extension area, which must hold it. */
		if (!ext_at || ext < RECORD_EXPIRE_LEN || n > avail ||
		    !(h->expire = le64_load(p + ext_at)))
			return CELLAR_ECORRUPT;
		h->kind = RECORD_PUT;
	}
	if (klen == 0 || klen > CELLAR_MAX_KEY_LEN ||
	    vlen > CELLAR_MAX_VALUE_LEN)
		return CELLAR_ECORRUPT;
	h->header_len = n;
	h->key_len = (size_t)klen;
	h->val_len = (size_t)vlen;
	h->total = n + klen + vlen;
	if (h->total > limit)
		return CELLAR_ECORRUPT;
	if (h->kind == 0)
		return CELLAR_ECORRUPT;
	if ((h->kind == RECORD_DELETE || h->kind == RECORD_BATCH) && vlen != 0)
		return CELLAR_ECORRUPT;
	if (h->kind == RECORD_BATCH && (klen != RECORD_BATCH_INFO || h->in_batch))
		return CELLAR_ECORRUPT;
	if (h->kind != RECORD_PUT && h->kind != RECORD_DELETE &&
	    h->kind != RECORD_BATCH)
		return CELLAR_EVERSION;
	return CELLAR_OK;
}

/*
 * record.h - the record codec: how one put or delete is laid out in a
 * segment.  The one place that knows a record's bytes: layout, decoding
 * (the general decoder and the inline one the read path uses for the
 * common shape), verification and the checksum, whole or streamed.
 *
 * Must not: do I/O, know the index, or know where a record is stored
 * (segment.h finds the bytes; this only reads them).
 *
 * A write batch starts with a batch header record (RECORD_BATCH), whose
 * 20-byte key field gives the byte length, record count and checksum of
 * the put and delete records that follow it (the body).
 *
 * An expiring put (RECORD_PUT_EXP, type 4) is a put whose extension area
 * (mandatory for it) starts with its absolute expiry time, u64 ms since
 * the Unix epoch.  The decoder reports it as RECORD_PUT with h.expire set,
 * so that everything that handles puts handles it; only the places that
 * deliver or re-encode a value look at h.expire.  A plain put has
 * h.expire == 0 and costs nothing more than before.
 *
 * Layout (docs/format.md has the full description):
 *   u32  checksum   low 32 bits of XXH3-64 over every byte after this field
 *   u8   kind       low nibble: RECORD_PUT / RECORD_DELETE / RECORD_PUT_EXP;
 *                   bit 4: extension
 *   var  key_len    LEB128, 1..65535
 *   var  val_len    LEB128, 0..2^30 (0 for deletes)
 *   [var ext_len, ext bytes]   only when bit 4 of kind is set; for
 *                   RECORD_PUT_EXP ext_len >= 8, the first 8 bytes the
 *                   expiry (u64 LE, non-zero)
 *   key bytes, value bytes
 */
#ifndef CELLAR_RECORD_H
#define CELLAR_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "endian.h"
#include "hash.h"

#define RECORD_PUT 1
#define RECORD_DELETE 2
/** A write batch's header: its body follows (record_batch_*). */
#define RECORD_BATCH 3
/** An expiring put, as stored; decoded as RECORD_PUT with h.expire set. */
#define RECORD_PUT_EXP 4
/** Bytes of the expiry field in an expiring put's extension area. */
#define RECORD_EXPIRE_LEN 8
#define RECORD_KIND_MASK 0x0f
#define RECORD_FLAG_EXT 0x10
/** Kind bit 5: a put or delete of a batch body, valid only inside the body
 *  of an intact batch header (a scan that meets one elsewhere treats it as
 *  damage: a batch whose header was lost applies none of its records). */
#define RECORD_FLAG_BATCH 0x20
/** Extension areas longer than this are treated as damage. */
#define RECORD_MAX_EXT 255
/** Longest header this version writes (4 + 1 + 3 + 5). */
#define RECORD_MAX_HEADER 13
/** Longest header of an expiring put this version writes (+ ext 1 + 8). */
#define RECORD_MAX_HEADER_EXP (RECORD_MAX_HEADER + 1 + RECORD_EXPIRE_LEN)
/** Longest header any valid record has (with an extension area). */
#define RECORD_MAX_HEADER_EXT (RECORD_MAX_HEADER + 2 + RECORD_MAX_EXT)

typedef struct record_header {
	unsigned kind;     /* RECORD_PUT (also an expiring put), _DELETE, _BATCH */
	unsigned in_batch; /* RECORD_FLAG_BATCH was set */
	uint64_t expire;   /* an expiring put: its expiry (ms since the epoch);
	                    * 0: never expires */
	uint32_t checksum; /* as stored */
	size_t header_len; /* bytes before the key */
	size_t key_len;
	size_t val_len;
	uint64_t total;    /* header_len + key_len + val_len */
} record_header;

/* The batch header's key field: body length (8), record count (4), XXH3-64
 * of the body (8); no value. */
#define RECORD_BATCH_INFO 20
/** Size of a batch header record. */
#define RECORD_BATCH_SIZE (7 + RECORD_BATCH_INFO)

/** Encoded size of a record (without extension area). */
uint64_t record_size(size_t key_len, size_t val_len);

/** Encoded size of a put expiring at expire (0: a plain record). */
static inline uint64_t record_size_exp(size_t key_len, size_t val_len,
                                       uint64_t expire)
{
	return record_size(key_len, val_len) +
	       (expire ? 1 + RECORD_EXPIRE_LEN : 0);
}

/** Has a record that expires at expire (0: never) expired at now? */
static inline int record_expired(uint64_t expire, uint64_t now)
{
	return expire != 0 && now >= expire;
}

/**
 * Write the header of a record of kind with these lengths into out (room for
 * RECORD_MAX_HEADER bytes); the checksum field is left zero.  Returns the
 * header length.
 */
size_t record_encode_header(uint8_t *out, unsigned kind, size_t key_len,
                            size_t val_len);

/**
 * record_encode_header for a record that expires at expire: with expire
 * != 0, kind must be RECORD_PUT and an expiring put's header is written
 * (room for RECORD_MAX_HEADER_EXP bytes); with 0, a plain header.
 */
size_t record_encode_header_exp(uint8_t *out, unsigned kind, size_t key_len,
                                size_t val_len, uint64_t expire);

/** Checksum of a complete encoded record of total bytes. */
uint32_t record_checksum(const uint8_t *rec, uint64_t total);

/**
 * Checksum of a record given in parts, for one written in place without
 * ever being whole in memory: its header (hdr_len bytes, checksum field
 * included but not covered), key and value.
 */
uint32_t record_checksum_parts(const uint8_t *hdr, size_t hdr_len,
                               const void *key, size_t key_len,
                               const void *val, size_t val_len);

/** Compute and store the checksum of a complete encoded record. */
void record_seal(uint8_t *rec, uint64_t total);

/**
 * Encode and seal a whole record at out (room for record_size bytes);
 * returns its size.
 */
uint64_t record_encode(uint8_t *out, unsigned kind, const void *key,
                       size_t key_len, const void *val, size_t val_len);

/** record_encode of a record expiring at expire (0: never; see
 *  record_encode_header_exp); room for record_size_exp bytes. */
uint64_t record_encode_exp(uint8_t *out, unsigned kind, const void *key,
                           size_t key_len, const void *val, size_t val_len,
                           uint64_t expire);

/** What a batch header says about the body that follows it. */
typedef struct record_batch {
	uint64_t body_len;  /* bytes of records after the header */
	uint32_t count;     /* records in the body */
	uint64_t body_sum;  /* XXH3-64 of the body */
} record_batch;

/**
 * Encode and seal a batch header (RECORD_BATCH_SIZE bytes at out) for the
 * body of body_len bytes at body holding count records.
 */
void record_encode_batch(uint8_t *out, const uint8_t *body, uint64_t body_len,
                         uint32_t count);

/** The fields of a decoded batch header record. */
void record_batch_info(const uint8_t *rec, const record_header *h,
                       record_batch *b);

/** Does the body at p (b->body_len bytes) match its header's checksum? */
int record_batch_body_ok(const record_batch *b, const uint8_t *p);

/**
 * Decode the header at p, of which avail bytes are readable, and check that
 * the whole record (total) fits in limit bytes.  Checks lengths and kind but
 * not the checksum.  Returns 0, CELLAR_ECORRUPT (impossible header, or the
 * record would run past limit) or CELLAR_EVERSION (a kind this version does
 * not know; only meaningful once the checksum has been verified).  An
 * expiring put comes back as RECORD_PUT with h->expire set; its header
 * must lie within avail (CELLAR_ECORRUPT if not, as when its extension
 * is shorter than the expiry or the expiry is 0).
 */
int record_decode_header(const uint8_t *p, size_t avail, uint64_t limit,
                         record_header *h);

/** A record found and decoded in memory. */
typedef struct record_view {
	const uint8_t *p;  /* the whole record */
	record_header h;
	uint8_t *owned;    /* heap copy when the bytes could not be mapped */
} record_view;

static inline const uint8_t *record_key(const record_view *v)
{
	return v->p + v->h.header_len;
}

static inline const uint8_t *record_val(const record_view *v)
{
	return v->p + v->h.header_len + v->h.key_len;
}

/**
 * CELLAR_OK if the record's checksum matches, else CELLAR_ECORRUPT with a
 * message naming segment seq's file and offset off.
 */
int record_verify(const record_view *v, uint64_t seq, uint64_t off);

/** CELLAR_ECORRUPT: "segment <seq's file>: bad checksum at offset <off>". */
int record_bad_checksum(uint64_t seq, uint64_t off);

/** Free the heap copy, if any. */
static inline void record_release(record_view *v)
{
	free(v->owned);
	v->owned = NULL;
}

/*
 * The shape of most small records, which the read path decodes inline: a
 * put whose key and value lengths take one byte each (both under 128), so
 * the key starts at RECORD_SHORT_HEADER.
 */
#define RECORD_SHORT_HEADER 7

/** Do the avail bytes at p start with a short put's header? */
static inline int record_is_short_put(const uint8_t *p, uint64_t avail)
{
	return avail >= RECORD_SHORT_HEADER &&
	       (p[4] & ~RECORD_FLAG_BATCH) == RECORD_PUT &&
	       !((p[5] | p[6]) & 0x80);
}

static inline size_t record_short_key_len(const uint8_t *p)
{
	return p[5];
}

static inline size_t record_short_val_len(const uint8_t *p)
{
	return p[6];
}

/** Does the complete record of total bytes at p match its checksum? */
static inline int record_checksum_ok(const uint8_t *p, uint64_t total)
{
	return (uint32_t)hash_checksum(p + 4, (size_t)total - 4) == le32_load(p);
}

#endif

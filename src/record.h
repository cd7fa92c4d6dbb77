/*
 * record.h - the record codec: how one put or delete is laid out in a
 * segment.  Pure functions over byte buffers; no I/O, no index.
 *
 * Layout (docs/format.md has the full description):
 *   u32  checksum   low 32 bits of XXH3-64 over every byte after this field
 *   u8   kind       low nibble: RECORD_PUT / RECORD_DELETE; bit 4: extension
 *   var  key_len    LEB128, 1..65535
 *   var  val_len    LEB128, 0..2^30 (0 for deletes)
 *   [var ext_len, ext bytes]   only when bit 4 of kind is set
 *   key bytes, value bytes
 */
#ifndef CELLAR_RECORD_H
#define CELLAR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define RECORD_PUT 1
#define RECORD_DELETE 2
#define RECORD_KIND_MASK 0x0f
#define RECORD_FLAG_EXT 0x10
/** Extension areas longer than this are treated as damage. */
#define RECORD_MAX_EXT 255
/** Longest header this version writes (4 + 1 + 3 + 5). */
#define RECORD_MAX_HEADER 13
/** Longest header any valid record has (with an extension area). */
#define RECORD_MAX_HEADER_EXT (RECORD_MAX_HEADER + 2 + RECORD_MAX_EXT)

typedef struct record_header {
	unsigned kind;     /* RECORD_PUT or RECORD_DELETE */
	uint32_t checksum; /* as stored */
	size_t header_len; /* bytes before the key */
	size_t key_len;
	size_t val_len;
	uint64_t total;    /* header_len + key_len + val_len */
} record_header;

/** Encoded size of a record (without extension area). */
uint64_t record_size(size_t key_len, size_t val_len);

/**
 * Write the header of a record of kind with these lengths into out (room for
 * RECORD_MAX_HEADER bytes); the checksum field is left zero.  Returns the
 * header length.
 */
size_t record_encode_header(uint8_t *out, unsigned kind, size_t key_len,
                            size_t val_len);

/** Checksum of a complete encoded record of total bytes. */
uint32_t record_checksum(const uint8_t *rec, uint64_t total);

/** Compute and store the checksum of a complete encoded record. */
void record_seal(uint8_t *rec, uint64_t total);

/**
 * Decode the header at p, of which avail bytes are readable, and check that
 * the whole record (total) fits in limit bytes.  Checks lengths and kind but
 * not the checksum.  Returns 0, CELLAR_ECORRUPT (impossible header, or the
 * record would run past limit) or CELLAR_EVERSION (a kind this version does
 * not know; only meaningful once the checksum has been verified).
 */
int record_decode_header(const uint8_t *p, size_t avail, uint64_t limit,
                         record_header *h);

#endif

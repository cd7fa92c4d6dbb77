/*
 * meta.h - the meta file: the store's identity (magic, format version, hash
 * seed, creation time).  Written once when the store is created, atomically
 * (temporary file, sync, rename, directory sync); only read afterwards.
 *
 * Layout (64 bytes, little-endian):
 *    0  8  magic "CELLARMT"
 *    8  4  format version
 *   12  4  flags (0)
 *   16  8  hash seed
 *   24  8  creation time (seconds since the epoch)
 *   32  8  store id: random, new for every store created or built (0 in
 *          stores made before it existed); a read-only handle's refresh
 *          tells a store published over the old one by it
 *   40 16  reserved (0)
 *   56  8  XXH3-64 of bytes 0..55
 */
#ifndef CELLAR_META_H
#define CELLAR_META_H

#include <stdint.h>

#include "cellar_fs.h"

#define META_SIZE 64

typedef struct meta {
	uint32_t version;
	uint64_t seed;
	uint64_t created;
	uint64_t id; /* 0: a store made before the field existed */
} meta;

void meta_encode(const meta *m, uint8_t out[META_SIZE]);
/** CELLAR_OK, CELLAR_ECORRUPT (not a meta file, damaged) or CELLAR_EVERSION. */
int meta_decode(const uint8_t *p, uint64_t len, meta *m);

/**
 * A new store's hash seed: never 0, different from one call to the next
 * (the clock, an address and salt, mixed by XXH3).
 */
uint64_t meta_random_seed(const void *salt);

/**
 * Fill m for a new store: this format version, the seed given (or a random
 * one if 0), the time now and a fresh random id.
 */
void meta_init(meta *m, uint64_t seed);

/**
 * Whether a and b are the same store: the same id, or for stores without
 * one, the same seed and creation time.
 */
int meta_same_store(const meta *a, const meta *b);

/** Read and decode <dir>/meta; CELLAR_ENOENT if there is none. */
int meta_read(cellar_fs *fs, const char *dir, meta *m);
/** Write <dir>/meta atomically and durably. */
int meta_write(cellar_fs *fs, const char *dir, const meta *m);

#endif

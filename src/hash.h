/*
 * hash.h - the two uses of xxhash: the seeded 64-bit key hash that places a
 * key in the index, and the unseeded checksum that protects every record,
 * bucket chunk and header on disk.
 */
#ifndef CELLAR_HASH_H
#define CELLAR_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t hash_key(const void *key, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(key, len, seed);
}

static inline uint64_t hash_checksum(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

#endif

/*
 * hash.h - the two uses of xxhash: the seeded 64-bit key hash that places a
 * key in the index, and the unseeded checksum that protects every record,
 * bucket chunk and header on disk.
 *
 * Owns the choice of hash functions; must not know where hashes are used.
 */
#ifndef CELLAR_HASH_H
#define CELLAR_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "testhook.h"

static inline uint64_t hash_key(const void *key, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(key, len, seed);
}

static inline uint64_t hash_checksum(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

/*
 * A store's key hash: its seed, and in test builds (CELLAR_TEST_HOOKS) a
 * replacement function that forces collisions.  The shipped library has
 * no such field and no branch.
 */
typedef struct keyhash {
	uint64_t seed;
#ifdef CELLAR_TEST_HOOKS
	cellar__hash_fn fn; /* NULL: xxhash */
#endif
} keyhash;

static inline uint64_t keyhash_of(const keyhash *k, const void *key, size_t len)
{
#ifdef CELLAR_TEST_HOOKS
	if (k->fn)
		return k->fn(key, len, k->seed);
#endif
	return hash_key(key, len, k->seed);
}

#endif

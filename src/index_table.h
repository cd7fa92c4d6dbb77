/*
 * index_table.h - the hash table's state: its geometry, counters, the two
 * arrays of bucket chunks, and the checkpoint file its clean chunks point
 * into.  A header alone, shared by the table's logic (index.c) and its
 * file codec (index_file.c), so that neither includes the other's header
 * for it.  Other modules read it only through index.h's accessors.
 */
#ifndef CELLAR_INDEX_TABLE_H
#define CELLAR_INDEX_TABLE_H

#include <stdint.h>

#include "cellar_fs.h"
#include "index_chunk.h"

/* Linear hashing addresses buckets with the 32-bit tag: at most 2^32. */
#define INDEX_MAX_LEVEL 32

typedef struct cellar_index cellar_index;

struct cellar_index {
	uint64_t seed;
	uint32_t level;
	uint64_t split;
	index_array prim, ovf;
	uint32_t free_head;  /* overflow free list, 0 = empty */
	uint64_t ovf_used;   /* overflow buckets in chains */
	uint64_t count;      /* keys */
	uint64_t max_buckets; /* test hook; 0 = no limit */
	/* the checkpoint file the clean chunks point into (index_file.c) */
	cellar_fs *fs;
	cellar_file *file;
	const void *map;
	uint64_t map_len;
	uint64_t map_nsegs;  /* entries in the mapped file's segment table */
	uint8_t *loaded;     /* whole file read into memory (no map) */
};

#endif

/*
 * read.h - the read path (read.c): a key's lookup, from its hash to its
 * value in the caller's hands.
 */
#ifndef CELLAR_READ_H
#define CELLAR_READ_H

#include "handle.h"

/* What a lookup hands back. */
enum { READ_COPY, READ_ALLOC, READ_HAS };

typedef struct read_req {
	const void *key;
	size_t key_len;
	int mode;    /* READ_* */
	void *buf;   /* READ_COPY: the caller's buffer of cap bytes */
	size_t cap;
	void **out;  /* READ_ALLOC: receives a malloc'd copy */
	size_t len;  /* out: the value's length (also when EBUFS) */
} read_req;

/**
 * Look the key up and deliver its value as r->mode says: CELLAR_OK,
 * CELLAR_ENOTFOUND, CELLAR_EBUFS (r->len says how much is needed), or an
 * error (CELLAR_ECORRUPT for a damaged record or index).
 */
int read_lookup(cellar_db *db, read_req *r);

/**
 * cellar_get_many's lookups: every item whose status is CELLAR_OK (its
 * arguments checked) is looked up as read_lookup would in READ_COPY mode,
 * its result in status and val_len; the others are left alone.
 */
void read_many(cellar_db *db, cellar_get_item *items, size_t n);

#endif

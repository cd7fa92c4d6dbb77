/*
 * read.h - the read path (read.c): a key's lookup, from its hash to its
 * value in the caller's hands.
 */
#ifndef CELLAR_READ_H
#define CELLAR_READ_H

#include "handle.h"

/* What a lookup hands back. */
enum { READ_COPY, READ_ALLOC, READ_HAS, READ_PIN };

typedef struct read_req {
	const void *key;
	size_t key_len;
	int mode;    /* READ_* */
	void *buf;   /* READ_COPY: the caller's buffer of cap bytes */
	size_t cap;
	void **out;  /* READ_ALLOC: receives a malloc'd copy */
	size_t len;  /* out: the value's length (also when EBUFS) */
	const void *view;  /* READ_PIN out: the value where it is stored */
	void *owned;       /* READ_PIN out: a heap copy holding it, or NULL */
} read_req;

/**
 * Look the key up and deliver its value as r->mode says: CELLAR_OK,
 * CELLAR_ENOTFOUND, CELLAR_EBUFS (r->len says how much is needed), or an
 * error (CELLAR_ECORRUPT for a damaged record or index).
 */
int read_lookup(cellar_db *db, read_req *r);

/**
 * Look up in READ_PIN mode and, on success, keep the latch slot held:
 * *slot is what read_unpin needs.  On failure nothing is held.
 */
int read_pinned(cellar_db *db, read_req *r, unsigned *slot);

/** Release what read_pinned holds: the latch slot and any heap copy. */
void read_unpin(cellar_db *db, unsigned slot, void *owned);

/**
 * cellar_get_many's lookups: every item whose status is CELLAR_OK (its
 * arguments checked) is looked up as read_lookup would in READ_COPY mode,
 * its result in status and val_len; the others are left alone.
 */
void read_many(cellar_db *db, cellar_get_item *items, size_t n);

#endif

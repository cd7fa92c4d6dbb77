/*
 * item.h - the copy of the current item an iterator hands out (iter.c and
 * snapshot.c): a key and its value in one growable buffer, valid until the
 * next step.  A header alone.
 *
 * Owns: the buffer and handing its pointers out.  Must not: know where
 * the record came from.
 */
#ifndef CELLAR_ITEM_H
#define CELLAR_ITEM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "record.h"

typedef struct item_buf {
	uint8_t *buf;
	size_t cap, key_len, val_len;
} item_buf;

/** Copy v's key and value into b: CELLAR_OK or CELLAR_ENOMEM. */
static inline int item_keep(item_buf *b, const record_view *v)
{
	size_t need = v->h.key_len + v->h.val_len;

	if (need > b->cap || !b->buf) {
		uint8_t *p = realloc(b->buf, need ? need : 1);
		if (!p)
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		b->buf = p;
		b->cap = need;
	}
	memcpy(b->buf, record_key(v), need);
	b->key_len = v->h.key_len;
	b->val_len = v->h.val_len;
	return CELLAR_OK;
}

/** Hand b's key and value out; any output pointer may be NULL. */
static inline void item_give(const item_buf *b, const void **key,
                             size_t *key_len, const void **val,
                             size_t *val_len)
{
	if (key)
		*key = b->buf;
	if (key_len)
		*key_len = b->key_len;
	if (val)
		*val = b->buf + b->key_len;
	if (val_len)
		*val_len = b->val_len;
}

#endif

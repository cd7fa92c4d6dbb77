/*
 * rmw.c - read-modify-write: cellar_update() and cellar_cas().
 *
 * Owns running a caller's decision on a key's current value under the
 * writer mutex: the read (through read.c), the callback, and the write it
 * asks for (through writer.c), with nothing able to change the key in
 * between.  Compare-and-set is an update with a fixed callback.
 *
 * Must not: read or write records itself, or hold the reader latch while
 * the callback runs (it may read the store).
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "handle.h"
#include "read.h"
#include "watch.h"

/* The writer mutex held: read, decide, write. */
static int update_locked(cellar_db *db, const void *key, size_t key_len,
                         cellar_update_fn fn, void *ctx)
{
	void *cur = NULL;
	read_req r = { key, key_len, READ_ALLOC, NULL, 0, &cur, 0, NULL, NULL };
	const void *nv = NULL;
	size_t nl = 0;
	writer_op op = { RECORD_PUT, key, NULL, key_len, 0, 0 };
	int rc = read_lookup(db, &r), found = rc == CELLAR_OK, act;

	if (rc < 0 && rc != CELLAR_ENOTFOUND)
		goto out;
	act = fn(found ? cur : NULL, found ? r.len : 0, found, &nv, &nl, ctx);
	cellar__error_clear();
	if (act < 0) {
		rc = act;
	} else if (act == CELLAR_UPDATE_KEEP ||
	           (act == CELLAR_UPDATE_DELETE && !found)) {
		rc = CELLAR_OK;
	} else if (act == CELLAR_UPDATE_DELETE) {
		op.kind = RECORD_DELETE;
		rc = writer_delete(&db->w, key, key_len);
	} else if (act != CELLAR_UPDATE_STORE) {
		rc = cellar__error(CELLAR_EINVAL, "update: the callback returned "
		                   "%d, not a cellar_update_action", act);
	} else if (nl > CELLAR_MAX_VALUE_LEN) {
		rc = cellar__error(CELLAR_EVALLEN, "value length %zu > %u", nl,
		                   CELLAR_MAX_VALUE_LEN);
	} else if (!nv && nl) {
		rc = cellar__error(CELLAR_EINVAL, "update: new value is NULL");
	} else {
		op.val = nv ? nv : "";
		op.val_len = nl;
		rc = writer_put(&db->w, key, key_len, op.val, nl);
	}
	if (rc == CELLAR_OK && act != CELLAR_UPDATE_KEEP &&
	    (act != CELLAR_UPDATE_DELETE || found))
		watch_note(db, &op, NULL, 1);
out:
	free(cur);
	return rc;
}

int cellar_update(cellar_db *db, const void *key, size_t key_len,
                  cellar_update_fn fn, void *ctx)
{
	int rc;

	if ((rc = db_enter(db, 1, NULL, 0)) < 0 ||
	    (rc = db_check_key(key, key_len)) < 0)
		return rc;
	if (!fn)
		return cellar__error(CELLAR_EINVAL, "update: fn is NULL");
	writer_lock(&db->w);
	if ((rc = writer_refused(&db->w)) == CELLAR_OK)
		rc = update_locked(db, key, key_len, fn, ctx);
	writer_unlock(&db->w);
	return rc;
}

/* cellar_cas as an update. */
typedef struct cas_ctx {
	const void *expected, *val;
	size_t expected_len, val_len;
	unsigned flags;
	int changed;
} cas_ctx;

static int cas_fn(const void *cur, size_t cur_len, int found,
                  const void **new_val, size_t *new_len, void *ctx)
{
	cas_ctx *c = ctx;
	int want_absent = (c->flags & CELLAR_CAS_ABSENT) != 0;

	if (want_absent ? found
	                : !found || cur_len != c->expected_len ||
	                      (cur_len && memcmp(cur, c->expected, cur_len))) {
		c->changed = 1;
		return CELLAR_UPDATE_KEEP;
	}
	if (c->flags & CELLAR_CAS_DELETE)
		return CELLAR_UPDATE_DELETE;
	*new_val = c->val;
	*new_len = c->val_len;
	return CELLAR_UPDATE_STORE;
}

int cellar_cas(cellar_db *db, const void *key, size_t key_len,
               const void *expected, size_t expected_len, const void *val,
               size_t val_len, unsigned flags)
{
	cas_ctx c = { expected, val, expected_len, val_len, flags, 0 };
	int rc;

	cellar__error_clear();
	if (flags & ~(unsigned)(CELLAR_CAS_ABSENT | CELLAR_CAS_DELETE))
		return cellar__error(CELLAR_EINVAL, "cas: unknown flags 0x%x", flags);
	if (!(flags & CELLAR_CAS_ABSENT) && !expected && expected_len)
		return cellar__error(CELLAR_EINVAL, "cas: expected is NULL");
	if (!(flags & CELLAR_CAS_DELETE) && !val && val_len)
		return cellar__error(CELLAR_EINVAL, "cas: value is NULL");
	if (!(flags & CELLAR_CAS_DELETE) && val_len > CELLAR_MAX_VALUE_LEN)
		return cellar__error(CELLAR_EVALLEN, "value length %zu > %u",
		                     val_len, CELLAR_MAX_VALUE_LEN);
	if ((rc = cellar_update(db, key, key_len, cas_fn, &c)) == CELLAR_OK &&
	    c.changed)
		rc = cellar__error(CELLAR_ECHANGED, "cas: the key does not hold "
		                   "the expected value");
	return rc;
}

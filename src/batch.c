/*
 * batch.c - atomic write batches: the cellar_batch_* calls.
 *
 * Owns the batch object (the puts and deletes collected, with copies of
 * their keys and values in one arena) and the commit's front: argument
 * checks, the writer mutex, handing the ops to writer_commit_ops.  The
 * writer owns how a batch is laid down and published (writer.c), the
 * record codec its bytes (record.c), recovery how it is replayed.
 *
 * Must not: encode records, touch the index or the log, or keep a handle.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "handle.h"
#include "watch.h"

/* One op: its kind, where its key and value are in the arena, and a put's
 * expiry as asked (resolved against the clock at commit). */
typedef struct batch_op {
	unsigned kind;
	size_t key_off, key_len, val_off, val_len;
	uint64_t ttl_ms, expire_at;
} batch_op;

struct cellar_batch {
	batch_op *ops;
	size_t n, cap;
	uint8_t *arena;
	size_t used, arena_cap;
	uint64_t bytes; /* encoded size of every op so far */
	size_t nexpiring; /* ops with an expiry */
};

/* A batch must fit in one segment, whose offsets are 32-bit. */
#define BATCH_MAX_BYTES ((uint64_t)UINT32_MAX - 4096)

int cellar_batch_new(cellar_batch **out)
{
	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	if (!(*out = calloc(1, sizeof **out)))
		return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
	(*out)->bytes = RECORD_BATCH_SIZE;
	return CELLAR_OK;
}

void cellar_batch_free(cellar_batch *b)
{
	if (!b)
		return;
	free(b->ops);
	free(b->arena);
	free(b);
}

void cellar_batch_clear(cellar_batch *b)
{
	if (!b)
		return;
	b->n = b->used = b->nexpiring = 0;
	b->bytes = RECORD_BATCH_SIZE;
}

size_t cellar_batch_count(const cellar_batch *b)
{
	return b ? b->n : 0;
}

/* Room for one more op and len more arena bytes. */
static int grow(cellar_batch *b, size_t len)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		batch_op *v = realloc(b->ops, cap * sizeof *v);
		if (!v)
			return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
		b->ops = v;
		b->cap = cap;
	}
	if (b->used + len > b->arena_cap) {
		size_t cap = b->arena_cap ? 2 * b->arena_cap : 4096;
		while (cap < b->used + len)
			cap *= 2;
		uint8_t *a = realloc(b->arena, cap);
		if (!a)
			return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
		b->arena = a;
		b->arena_cap = cap;
	}
	return CELLAR_OK;
}

static int add(cellar_batch *b, unsigned kind, const void *key, size_t key_len,
               const void *val, size_t val_len, const cellar_put_options *po)
{
	int expiring = po && (po->ttl_ms || po->expire_at);
	/* The expiry's size, whatever time it resolves to. */
	uint64_t t = record_size_exp(key_len, val_len, expiring);
	batch_op *op;
	int rc;

	if (b->bytes + t > BATCH_MAX_BYTES || b->n >= UINT32_MAX - 1)
		return cellar__error(CELLAR_ELIMIT, "batch: larger than a segment "
		                     "(4 GiB) can hold");
	if ((rc = grow(b, key_len + val_len)) < 0)
		return rc;
	op = &b->ops[b->n++];
	*op = (batch_op){ kind, b->used, key_len, b->used + key_len, val_len,
		          po ? po->ttl_ms : 0, po ? po->expire_at : 0 };
	b->nexpiring += expiring;
	memcpy(b->arena + b->used, key, key_len);
	if (val_len)
		memcpy(b->arena + b->used + key_len, val, val_len);
	b->used += key_len + val_len;
	b->bytes += t;
	return CELLAR_OK;
}

/* The checks of an op: the batch, the key and (for a put) the value. */
static int check_op(const cellar_batch *b, const void *key, size_t key_len,
                    unsigned kind, const void *val, size_t val_len)
{
	int rc;

	cellar__error_clear();
	if (!b)
		return cellar__error(CELLAR_EINVAL, "batch is NULL");
	if ((rc = db_check_key(key, key_len)) < 0)
		return rc;
	return kind == RECORD_PUT ? db_check_value(val, val_len) : CELLAR_OK;
}

int cellar_batch_put(cellar_batch *b, const void *key, size_t key_len,
                     const void *val, size_t val_len)
{
	int rc = check_op(b, key, key_len, RECORD_PUT, val, val_len);

	return rc < 0 ? rc : add(b, RECORD_PUT, key, key_len, val, val_len, NULL);
}

int cellar_batch_put_ex(cellar_batch *b, const void *key, size_t key_len,
                        const void *val, size_t val_len,
                        const cellar_put_options *opts)
{
	int rc = check_op(b, key, key_len, RECORD_PUT, val, val_len);

	if (rc == CELLAR_OK && opts)
		rc = db_check_put_options(opts, 0); /* no NOOVERWRITE here */
	return rc < 0 ? rc
	              : add(b, RECORD_PUT, key, key_len, val, val_len, opts);
}

int cellar_batch_delete(cellar_batch *b, const void *key, size_t key_len)
{
	int rc = check_op(b, key, key_len, RECORD_DELETE, NULL, 0);

	return rc < 0 ? rc : add(b, RECORD_DELETE, key, key_len, NULL, 0, NULL);
}

/* The ops' expiries at the clock's time now, read once (writer mutex
 * held): CELLAR_OK, or CELLAR_EINVAL for one in the past or overflowing. */
static int resolve_expiries(cellar_db *db, const cellar_batch *b,
                            writer_op *ops)
{
	uint64_t now;
	int rc;

	if (!b->nexpiring)
		return CELLAR_OK;
	now = db_now(db);
	for (size_t i = 0; i < b->n; i++) {
		const batch_op *op = &b->ops[i];
		if ((op->ttl_ms || op->expire_at) &&
		    (rc = db_expiry(op->ttl_ms, op->expire_at, now,
		                    &ops[i].expire)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

int cellar_batch_commit(cellar_db *db, const cellar_batch *b)
{
	writer_op *ops;
	unsigned char *skip;
	int rc;

	if ((rc = db_enter(db, 1, NULL, 0)) < 0)
		return rc;
	if (!b)
		return cellar__error(CELLAR_EINVAL, "batch is NULL");
	if (b->n == 0)
		return CELLAR_OK;
	ops = malloc(b->n * sizeof *ops);
	skip = malloc(b->n);
	if (!ops || !skip) {
		free(ops);
		free(skip);
		return cellar__error(CELLAR_ENOMEM, "batch: out of memory");
	}
	for (size_t i = 0; i < b->n; i++) {
		const batch_op *op = &b->ops[i];
		ops[i] = (writer_op){ op->kind, b->arena + op->key_off,
		                      b->arena + op->val_off, op->key_len,
		                      op->val_len, 0 };
	}
	writer_lock(&db->w);
	if ((rc = writer_refused(&db->w)) == CELLAR_OK &&
	    (rc = resolve_expiries(db, b, ops)) == CELLAR_OK &&
	    (rc = writer_commit_ops(&db->w, ops, b->n, skip)) == CELLAR_OK)
		watch_note(db, ops, skip, b->n);
	writer_unlock(&db->w);
	free(ops);
	free(skip);
	return rc;
}

/*
 * engine_lmdb.c - LMDB (liblmdb) adapter for cellar-bench.
 *
 * Settings (LMDB in its usual fast-but-durable-at-checkpoints mode):
 * - One environment per store, the unnamed main database, default page size.
 * - Map size: 3 x n x (key + value + 64 bytes) + 64 MiB, at least 1 GiB (it
 *   is only address space; the file grows as pages are written).
 * - Flags: MDB_NOSYNC (commits write pages but do not fsync; the one
 *   mdb_env_sync(force) at the end of the load, or of the mixed phase, makes
 *   everything durable) and MDB_NOTLS (read transactions belong to the
 *   reader object, not to the thread).  Read phases open with MDB_RDONLY.
 * - Deletes (space phase): one write transaction each, like puts on a
 *   read-write handle.  LMDB reuses freed pages itself: no compaction.
 * - Load: all puts in one write transaction when the tree should fit in
 *   LMDB's dirty-page list (about 128k pages; up to ~2M records of 100
 *   bytes), else in transactions of up to 90,000 puts (fewer for values
 *   that need overflow pages); then mdb_env_sync.  Each extra commit
 *   copies the pages it touches, so batched loads leave a larger file.
 * - Reads: each reader keeps one read transaction for the whole read-only
 *   phase (the snapshot never changes).  On a read-write handle (mixed
 *   phase) every get renews and resets it so it sees the newest puts, and
 *   every put is its own write transaction (MDB_NOSYNC).
 * - Values are copied out of the map into the caller's buffer, as for every
 *   engine.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Dirty pages one write transaction may safely hold (LMDB's cap: 131071). */
#define DIRTY_BUDGET 90000u

struct lmdb_store {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *load_txn; /* open write transaction during the load */
	uint64_t in_batch, batch;
	int writable;
	int loading;
};

struct lmdb_reader {
	MDB_txn *txn;
};

static int fail(const char *what, int rc)
{
	bench_error("%s: %s", what, mdb_strerror(rc));
	return -1;
}

static int lmdb_close(void *vh)
{
	struct lmdb_store *h = vh;
	if (h == NULL)
		return 0;
	if (h->load_txn != NULL)
		mdb_txn_abort(h->load_txn);
	if (h->env != NULL)
		mdb_env_close(h->env);
	free(h);
	return 0;
}

static int open_env(void **out, const char *dir, unsigned flags, uint64_t n,
                    size_t key_max, size_t val_max)
{
	struct lmdb_store *h = calloc(1, sizeof *h);
	MDB_txn *txn = NULL;
	int rc;
	double want = 3.0 * (double)n * (double)(key_max + val_max + 64) +
	              64.0 * 1024 * 1024;
	size_t map = (size_t)1 << 30;

	*out = NULL;
	if (h == NULL) {
		bench_error("out of memory");
		return -1;
	}
	while ((double)map < want)
		map *= 2;
	if ((rc = mdb_env_create(&h->env)) != 0) {
		fail("mdb_env_create", rc);
		goto fail;
	}
	if ((rc = mdb_env_set_mapsize(h->env, map)) != 0) {
		fail("mdb_env_set_mapsize", rc);
		goto fail;
	}
	if ((rc = mdb_env_open(h->env, dir, flags | MDB_NOTLS, 0644)) != 0) {
		fail("mdb_env_open", rc);
		goto fail;
	}
	rc = mdb_txn_begin(h->env, NULL, flags & MDB_RDONLY, &txn);
	if (rc != 0) {
		fail("mdb_txn_begin", rc);
		goto fail;
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &h->dbi)) != 0) {
		mdb_txn_abort(txn);
		fail("mdb_dbi_open", rc);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		fail("mdb_txn_commit", rc);
		goto fail;
	}
	h->writable = !(flags & MDB_RDONLY);
	*out = h;
	return 0;
fail:
	lmdb_close(h);
	return -1;
}

static int lmdb_load_open(void **out, const char *dir, uint64_t n,
                          size_t key_max, size_t val_max)
{
	int rc = open_env(out, dir, MDB_NOSYNC, n, key_max, val_max);
	struct lmdb_store *h = *out;
	uint64_t rec = key_max + val_max + 16, overflow = 0, pages;

	if (rc != 0)
		return rc;
	h->loading = 1;
	/* Pages the finished tree needs, with leaves half full at worst. */
	if (rec > 2000) { /* a value that big goes to overflow pages */
		overflow = (rec + 4095) / 4096;
		pages = n * (overflow + 1);
	} else {
		pages = n * rec / 2048 + 1;
	}
	h->batch = pages < DIRTY_BUDGET ? n : DIRTY_BUDGET / (1 + overflow);
	return 0;
}

static int lmdb_open(void **out, const char *dir, int writable, uint64_t n,
                     size_t key_max, size_t val_max)
{
	return open_env(out, dir, writable ? MDB_NOSYNC : MDB_RDONLY, n,
	                key_max, val_max);
}

static int lmdb_put(void *vh, const void *key, size_t key_len,
                    const void *val, size_t val_len)
{
	struct lmdb_store *h = vh;
	MDB_val k = { key_len, (void *)key }, v = { val_len, (void *)val };
	MDB_txn *txn;
	int rc;

	if (h->loading) {
		if (h->load_txn == NULL &&
		    (rc = mdb_txn_begin(h->env, NULL, 0, &h->load_txn)) != 0)
			return fail("mdb_txn_begin", rc);
		if ((rc = mdb_put(h->load_txn, h->dbi, &k, &v, 0)) != 0)
			return fail("mdb_put", rc);
		if (++h->in_batch == h->batch) {
			rc = mdb_txn_commit(h->load_txn);
			h->load_txn = NULL;
			h->in_batch = 0;
			if (rc != 0)
				return fail("mdb_txn_commit", rc);
		}
		return 0;
	}
	if ((rc = mdb_txn_begin(h->env, NULL, 0, &txn)) != 0)
		return fail("mdb_txn_begin", rc);
	if ((rc = mdb_put(txn, h->dbi, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return fail("mdb_put", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return fail("mdb_txn_commit", rc);
	return 0;
}

static int lmdb_del(void *vh, const void *key, size_t key_len)
{
	struct lmdb_store *h = vh;
	MDB_val k = { key_len, (void *)key };
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(h->env, NULL, 0, &txn)) != 0)
		return fail("mdb_txn_begin", rc);
	rc = mdb_del(txn, h->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 1;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return fail("mdb_del", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return fail("mdb_txn_commit", rc);
	return 0;
}

static int lmdb_sync(void *vh)
{
	struct lmdb_store *h = vh;
	int rc;

	if (h->load_txn != NULL) {
		rc = mdb_txn_commit(h->load_txn);
		h->load_txn = NULL;
		h->in_batch = 0;
		if (rc != 0)
			return fail("mdb_txn_commit", rc);
	}
	if ((rc = mdb_env_sync(h->env, 1)) != 0)
		return fail("mdb_env_sync", rc);
	return 0;
}

static int lmdb_reader_new(void *vh, void **out)
{
	struct lmdb_store *h = vh;
	struct lmdb_reader *r = calloc(1, sizeof *r);
	int rc;

	*out = NULL;
	if (r == NULL) {
		bench_error("out of memory");
		return -1;
	}
	if ((rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &r->txn)) != 0) {
		free(r);
		return fail("mdb_txn_begin(read)", rc);
	}
	if (h->writable)
		mdb_txn_reset(r->txn); /* renewed around each get */
	*out = r;
	return 0;
}

static void lmdb_reader_free(void *vh, void *vr)
{
	struct lmdb_reader *r = vr;
	(void)vh;
	if (r == NULL)
		return;
	mdb_txn_abort(r->txn);
	free(r);
}

static int lmdb_get(void *vh, void *vr, const void *key, size_t key_len,
                    void *buf, size_t cap, size_t *val_len)
{
	struct lmdb_store *h = vh;
	struct lmdb_reader *r = vr;
	MDB_val k = { key_len, (void *)key }, v;
	int rc, ret = 0;

	if (h->writable && (rc = mdb_txn_renew(r->txn)) != 0)
		return fail("mdb_txn_renew", rc);
	rc = mdb_get(r->txn, h->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		ret = 1;
	} else if (rc != 0) {
		ret = fail("mdb_get", rc);
	} else if (v.mv_size > cap) {
		bench_error("value of %zu bytes > buffer", v.mv_size);
		ret = -1;
	} else {
		memcpy(buf, v.mv_data, v.mv_size);
		*val_len = v.mv_size;
	}
	if (h->writable)
		mdb_txn_reset(r->txn);
	return ret;
}

static int lmdb_iterate(void *vh, uint64_t *count, uint64_t *touch)
{
	struct lmdb_store *h = vh;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0, t = 0;
	int rc;

	if ((rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn)) != 0)
		return fail("mdb_txn_begin(read)", rc);
	if ((rc = mdb_cursor_open(txn, h->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		return fail("mdb_cursor_open", rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		t += bench_touch(k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		n++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return fail("mdb_cursor_get", rc);
	*count = n;
	*touch = t;
	return 0;
}

const struct engine engine_lmdb = {
	.name = "lmdb",
	.settings = "B+tree, MDB_NOSYNC|MDB_NOTLS, load in one write txn "
	            "(90k-put txns if too big), mdb_env_sync at end",
	.can_update = 1,
	.load_open = lmdb_load_open,
	.put = lmdb_put,
	.sync = lmdb_sync,
	.close = lmdb_close,
	.open = lmdb_open,
	.reader_new = lmdb_reader_new,
	.reader_free = lmdb_reader_free,
	.get = lmdb_get,
	.iterate = lmdb_iterate,
	.del = lmdb_del,
};

/*
 * engine_cellar.c - cellar adapter for cellar-bench.
 *
 * Settings (cellar's defaults, but for the size hint):
 * - Load: cellar_open(CELLAR_CREATE) with CELLAR_OPTIONS_INIT, i.e. the mmap
 *   file system, CELLAR_SYNC_NONE, 256 MiB segments, plus expected_keys = n
 *   (the index is sized for n keys at open, as tkrzw gets num_buckets and
 *   LMDB a map size); one cellar_put per key and one cellar_sync at the
 *   end.
 * - Read phases: cellar_close, then cellar_open(CELLAR_READONLY): a read-only
 *   serving handle, shared by every reader thread (cellar_db is thread-safe;
 *   there is no per-thread state).  The mixed phase opens read-write.
 * - get: cellar_get into the caller's buffer; iterate: cellar_iter_next.
 * - build phase: cellar_builder_open (CELLAR_BUILD_OPTIONS_INIT: a 64 MiB
 *   pair budget, last value wins), cellar_builder_add per record,
 *   cellar_builder_finish (fsync and publish) and cellar_builder_abort
 *   (which only frees after a finish).
 * - space and compact phases: cellar_delete, cellar_compact (default
 *   compact_dead_pct, 20%) and cellar_stats for the key count and the
 *   size of the index file.
 * - cold phase: cellar_warm on the freshly opened read-only handle.
 * - batch phase: cellar_batch_put into one cellar_batch per handle,
 *   cellar_batch_commit every 1,000 puts, then cellar_batch_clear.
 * - --segment-access sets segment_access (default: the default, random).
 */
#include <cellar.h>

#include "engine.h"

static int fail(const char *what, int rc)
{
	bench_error("%s: %s: %s", what, cellar_strerror(rc),
	            cellar_errmsg());
	return -1;
}

static int open_db(void **out, const char *dir, unsigned flags,
                   uint64_t expected_keys)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	int rc;

	o.flags = flags;
	o.expected_keys = expected_keys;
	o.segment_access = bench_cellar_access;
	rc = cellar_open(&db, dir, &o);
	*out = rc == CELLAR_OK ? db : NULL;
	return rc == CELLAR_OK ? 0 : fail("cellar_open", rc);
}

static int ce_load_open(void **out, const char *dir, uint64_t n,
                        size_t key_max, size_t val_max)
{
	(void)key_max, (void)val_max;
	return open_db(out, dir, CELLAR_CREATE, n);
}

static int ce_open(void **out, const char *dir, int writable, uint64_t n,
                   size_t key_max, size_t val_max)
{
	(void)n, (void)key_max, (void)val_max;
	return open_db(out, dir, writable ? 0 : CELLAR_READONLY, 0);
}

static int ce_put(void *h, const void *key, size_t key_len, const void *val,
                  size_t val_len)
{
	int rc = cellar_put(h, key, key_len, val, val_len);
	return rc == CELLAR_OK ? 0 : fail("cellar_put", rc);
}

/* One pending batch, for the loading handle of the batch phase. */
static _Thread_local cellar_batch *pending;

static int ce_batch_add(void *h, const void *key, size_t key_len,
                        const void *val, size_t val_len)
{
	int rc;

	(void)h;
	if (!pending && (rc = cellar_batch_new(&pending)) != CELLAR_OK)
		return fail("cellar_batch_new", rc);
	rc = cellar_batch_put(pending, key, key_len, val, val_len);
	return rc == CELLAR_OK ? 0 : fail("cellar_batch_put", rc);
}

static int ce_batch_commit(void *h)
{
	int rc = cellar_batch_commit(h, pending);

	cellar_batch_clear(pending);
	return rc == CELLAR_OK ? 0 : fail("cellar_batch_commit", rc);
}

static int ce_sync(void *h)
{
	int rc = cellar_sync(h);
	return rc == CELLAR_OK ? 0 : fail("cellar_sync", rc);
}

static int ce_close(void *h)
{
	int rc;

	cellar_batch_free(pending);
	pending = NULL;
	rc = cellar_close(h);
	return rc == CELLAR_OK ? 0 : fail("cellar_close", rc);
}

static int ce_reader_new(void *h, void **out)
{
	(void)h;
	*out = NULL;
	return 0;
}

static void ce_reader_free(void *h, void *r)
{
	(void)h, (void)r;
}

static int ce_get(void *h, void *r, const void *key, size_t key_len,
                  void *buf, size_t cap, size_t *val_len)
{
	int rc = cellar_get(h, key, key_len, buf, cap, val_len);

	(void)r;
	if (rc == CELLAR_OK)
		return 0;
	if (rc == CELLAR_ENOTFOUND)
		return 1;
	return fail("cellar_get", rc);
}

/* The largest batch the multiget phase passes (bench.c's MAX_BATCH). */
#define CE_MAX_BATCH 1024

static int ce_get_many(void *h, void *r, const unsigned char *const *keys,
                       size_t key_len, unsigned char *bufs, size_t cap,
                       size_t *lens, int *rcs, size_t n)
{
	cellar_get_item items[CE_MAX_BATCH];
	int rc;

	(void)r;
	if (n > CE_MAX_BATCH)
		return fail("cellar_get_many", CELLAR_EINVAL);
	for (size_t i = 0; i < n; i++) {
		items[i].key = keys[i];
		items[i].key_len = key_len;
		items[i].buf = bufs + i * cap;
		items[i].cap = cap;
	}
	if ((rc = cellar_get_many(h, items, n)) != CELLAR_OK)
		return fail("cellar_get_many", rc);
	for (size_t i = 0; i < n; i++) {
		lens[i] = items[i].val_len;
		if (items[i].status == CELLAR_OK)
			rcs[i] = 0;
		else if (items[i].status == CELLAR_ENOTFOUND)
			rcs[i] = 1;
		else
			rcs[i] = fail("cellar_get_many", items[i].status);
	}
	return 0;
}

/* One pin per thread: the pinned phase releases each before the next get. */
static _Thread_local cellar_pin ce_pin;

static int ce_get_view(void *h, void *r, const void *key, size_t key_len,
                       const void **val, size_t *val_len, void **token)
{
	int rc = cellar_get_pinned(h, key, key_len, val, val_len, &ce_pin);

	(void)r;
	*token = rc == CELLAR_OK ? &ce_pin : NULL;
	if (rc == CELLAR_OK)
		return 0;
	if (rc == CELLAR_ENOTFOUND)
		return 1;
	return fail("cellar_get_pinned", rc);
}

static void ce_view_release(void *h, void *token)
{
	(void)h;
	if (token)
		cellar_pin_release(token);
}

static int ce_iterate(void *h, uint64_t *count, uint64_t *touch)
{
	cellar_iter *it;
	const void *k, *v;
	size_t kn, vn;
	uint64_t n = 0, t = 0;
	int rc;

	if ((rc = cellar_iter_new(h, &it)) != CELLAR_OK)
		return fail("cellar_iter_new", rc);
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		t += bench_touch(k, kn, v, vn);
		n++;
	}
	cellar_iter_free(it);
	if (rc != CELLAR_EDONE)
		return fail("cellar_iter_next", rc);
	*count = n;
	*touch = t;
	return 0;
}

static int ce_del(void *h, const void *key, size_t key_len)
{
	int rc = cellar_delete(h, key, key_len);

	if (rc == CELLAR_OK)
		return 0;
	if (rc == CELLAR_ENOTFOUND)
		return 1;
	return fail("cellar_delete", rc);
}

static int ce_refresh(void *h)
{
	int rc = cellar_refresh(h);
	return rc == CELLAR_OK ? 0 : fail("cellar_refresh", rc);
}

static int ce_compact(void *h, struct bench_compact *out)
{
	cellar_compact_result r;
	int rc = cellar_compact(h, &r);

	if (rc != CELLAR_OK)
		return fail("cellar_compact", rc);
	out->segments = r.segments_compacted;
	out->records = r.records_copied;
	out->bytes_reclaimed = r.bytes_reclaimed;
	out->seconds = r.seconds;
	out->longest_pause_ms = r.longest_pause_ms;
	out->complete = r.complete;
	return 0;
}

static int ce_space(void *h, struct bench_space *out)
{
	cellar_db_stats st;
	int rc = cellar_stats(h, &st);

	if (rc != CELLAR_OK)
		return fail("cellar_stats", rc);
	out->keys = st.keys;
	out->index_bytes = st.index_bytes;
	return 0;
}

static int ce_warm(void *h)
{
	int rc = cellar_warm(h);
	return rc == CELLAR_OK ? 0 : fail("cellar_warm", rc);
}

static int ce_build_open(void **out, const char *dir, uint64_t n,
                         size_t key_max, size_t val_max)
{
	cellar_builder *b;
	int rc;

	(void)n, (void)key_max, (void)val_max;
	rc = cellar_builder_open(&b, dir, NULL);
	*out = rc == CELLAR_OK ? b : NULL;
	return rc == CELLAR_OK ? 0 : fail("cellar_builder_open", rc);
}

static int ce_build_add(void *b, const void *key, size_t key_len,
                        const void *val, size_t val_len)
{
	int rc = cellar_builder_add(b, key, key_len, val, val_len);
	return rc == CELLAR_OK ? 0 : fail("cellar_builder_add", rc);
}

static int ce_build_finish(void *b)
{
	int rc = cellar_builder_finish(b);

	if (rc != CELLAR_OK)
		fail("cellar_builder_finish", rc);
	cellar_builder_abort(b);
	return rc == CELLAR_OK ? 0 : -1;
}

const struct engine engine_cellar = {
	.name = "cellar",
	.settings = "defaults (mmap fs, SYNC_NONE) + expected_keys=n for the "
	            "load, cellar_sync at end; reads "
	            "on a shared CELLAR_READONLY handle",
	.can_update = 1,
	.load_open = ce_load_open,
	.put = ce_put,
	.sync = ce_sync,
	.close = ce_close,
	.open = ce_open,
	.reader_new = ce_reader_new,
	.reader_free = ce_reader_free,
	.get = ce_get,
	.get_many = ce_get_many,
	.get_view = ce_get_view,
	.view_release = ce_view_release,
	.iterate = ce_iterate,
	.del = ce_del,
	.compact = ce_compact,
	.refresh = ce_refresh,
	.space = ce_space,
	.warm = ce_warm,
	.build_open = ce_build_open,
	.build_add = ce_build_add,
	.build_finish = ce_build_finish,
	.batch_add = ce_batch_add,
	.batch_commit = ce_batch_commit,
};

/*
 * engine_tkrzw.c - Tkrzw HashDBM (libtkrzw, C API tkrzw_langc.h) adapter for
 * cellar-bench.
 *
 * Settings (HashDBM, tkrzw's on-disk hash table):
 * - One file, <dir>/data.tkh, opened through the C API with
 *   "dbm=HashDBM,truncate=true,num_buckets=<2 x n>" for the load, so the
 *   bucket array never has to be rebuilt; every other option is tkrzw's
 *   default (in-place updates, memory-mapped parallel file, no compression).
 * - No per-write sync: tkrzw_dbm_synchronize(hard) once at the end of the
 *   load (and of the mixed phase) makes it durable.
 * - Reads: tkrzw_dbm_process with a read-only callback that copies the value
 *   into the caller's buffer (no allocation per get); the handle is shared
 *   by all threads (HashDBM locks internally).  Read phases open read-only.
 * - Iteration: tkrzw_dbm_process_each with a read-only callback.
 * - Deletes (space phase): tkrzw_dbm_remove.  No rebuild is run (the
 *   compaction part of the space phase is cellar's alone).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <tkrzw_langc.h>

#include "engine.h"

static int fail(const char *what)
{
	bench_error("%s: %s", what, tkrzw_get_last_status_message());
	return -1;
}

static int open_dbm(void **out, const char *dir, bool writable,
                    const char *params)
{
	char path[4096];
	TkrzwDBM *dbm;

	snprintf(path, sizeof path, "%s/data.tkh", dir);
	dbm = tkrzw_dbm_open(path, writable, params);
	*out = dbm;
	if (dbm == NULL)
		return fail(path);
	return 0;
}

static int tk_load_open(void **out, const char *dir, uint64_t n,
                        size_t key_max, size_t val_max)
{
	char params[128];

	(void)key_max, (void)val_max;
	snprintf(params, sizeof params,
	         "dbm=HashDBM,truncate=true,num_buckets=%llu",
	         (unsigned long long)(2 * n + 1));
	return open_dbm(out, dir, true, params);
}

static int tk_open(void **out, const char *dir, int writable, uint64_t n,
                   size_t key_max, size_t val_max)
{
	(void)n, (void)key_max, (void)val_max;
	return open_dbm(out, dir, writable != 0, "dbm=HashDBM");
}

static int tk_put(void *h, const void *key, size_t key_len, const void *val,
                  size_t val_len)
{
	if (!tkrzw_dbm_set(h, key, (int32_t)key_len, val, (int32_t)val_len,
	                   true))
		return fail("tkrzw_dbm_set");
	return 0;
}

static int tk_del(void *h, const void *key, size_t key_len)
{
	if (tkrzw_dbm_remove(h, key, (int32_t)key_len))
		return 0;
	if (tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR)
		return 1;
	return fail("tkrzw_dbm_remove");
}

static int tk_sync(void *h)
{
	if (!tkrzw_dbm_synchronize(h, true, NULL, NULL, ""))
		return fail("tkrzw_dbm_synchronize");
	return 0;
}

static int tk_close(void *h)
{
	if (h != NULL && !tkrzw_dbm_close(h))
		return fail("tkrzw_dbm_close");
	return 0;
}

static int tk_reader_new(void *h, void **out)
{
	(void)h;
	*out = NULL;
	return 0;
}

static void tk_reader_free(void *h, void *r)
{
	(void)h, (void)r;
}

struct copy_out {
	char *buf;
	size_t cap;
	int32_t len; /* -1: absent; -2: did not fit */
};

static const char *copy_value(void *arg, const char *key, int32_t key_len,
                              const char *val, int32_t val_len,
                              int32_t *ret_len)
{
	struct copy_out *c = arg;
	(void)key, (void)key_len, (void)ret_len;
	if (val == NULL) {
		c->len = -1;
	} else if ((size_t)val_len > c->cap) {
		c->len = -2;
	} else {
		memcpy(c->buf, val, (size_t)val_len);
		c->len = val_len;
	}
	return TKRZW_REC_PROC_NOOP;
}

static int tk_get(void *h, void *r, const void *key, size_t key_len,
                  void *buf, size_t cap, size_t *val_len)
{
	struct copy_out c = { buf, cap, -1 };

	(void)r;
	if (!tkrzw_dbm_process(h, key, (int32_t)key_len, copy_value, &c, false))
		return fail("tkrzw_dbm_process");
	if (c.len == -1)
		return 1;
	if (c.len == -2) {
		bench_error("value larger than the buffer");
		return -1;
	}
	*val_len = (size_t)c.len;
	return 0;
}

struct tally {
	uint64_t count, touch;
};

static const char *count_one(void *arg, const char *key, int32_t key_len,
                             const char *val, int32_t val_len,
                             int32_t *ret_len)
{
	struct tally *t = arg;
	(void)ret_len;
	if (val != NULL) { /* called with NULL before and after the records */
		t->count++;
		t->touch += bench_touch(key, (size_t)key_len, val,
		                        (size_t)val_len);
	}
	return TKRZW_REC_PROC_NOOP;
}

static int tk_iterate(void *h, uint64_t *count, uint64_t *touch)
{
	struct tally t = { 0, 0 };
	if (!tkrzw_dbm_process_each(h, count_one, &t, false))
		return fail("tkrzw_dbm_process_each");
	*count = t.count;
	*touch = t.touch;
	return 0;
}

const struct engine engine_tkrzw = {
	.name = "tkrzw",
	.settings = "HashDBM, num_buckets=2n, defaults otherwise; "
	            "synchronize(hard) at end; gets via tkrzw_dbm_process",
	.can_update = 1,
	.load_open = tk_load_open,
	.put = tk_put,
	.sync = tk_sync,
	.close = tk_close,
	.open = tk_open,
	.reader_new = tk_reader_new,
	.reader_free = tk_reader_free,
	.get = tk_get,
	.iterate = tk_iterate,
	.del = tk_del,
};

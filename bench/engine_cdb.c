/*
 * engine_cdb.c - tinycdb (libcdb) adapter for cellar-bench.
 *
 * Settings (a constant database: built once, then only read):
 * - One file, <dir>/data.cdb, built with cdb_make_start / cdb_make_add (no
 *   duplicate check: the benchmark's keys are unique) / cdb_make_finish,
 *   then one fsync.  cdb_make keeps a small record list in memory until
 *   finish writes the hash tables.
 * - Reads: cdb_init maps the whole file; each reader has its own copy of
 *   the struct cdb (cdb_find keeps its result in the struct), sharing the
 *   mapping.  cdb_find, then the value is copied out of the map.
 * - Iteration: cdb_seqinit / cdb_seqnext.
 * - No updates after the build, so the mixed phase does not apply; files
 *   are limited to 4 GiB.
 * - Build phase: the load itself (cdb_make into a fresh directory), cdb's
 *   one way of making a store.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

struct cdb_store {
	int fd;
	int making; /* cdb_make started and not finished */
	int mapped; /* cdb_init done */
	struct cdb_make mk;
	struct cdb db;
};

static int fail_errno(const char *what)
{
	bench_error("%s: %s", what, strerror(errno));
	return -1;
}

static int cdbe_close(void *vh)
{
	struct cdb_store *h = vh;
	if (h == NULL)
		return 0;
	if (h->mapped)
		cdb_free(&h->db);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return 0;
}

static struct cdb_store *new_store(void)
{
	struct cdb_store *h = calloc(1, sizeof *h);
	if (h == NULL)
		bench_error("out of memory");
	else
		h->fd = -1;
	return h;
}

static int cdbe_load_open(void **out, const char *dir, uint64_t n,
                          size_t key_max, size_t val_max)
{
	struct cdb_store *h = new_store();
	char path[4096];

	(void)n, (void)key_max, (void)val_max;
	*out = NULL;
	if (h == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/data.cdb", dir);
	h->fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (h->fd < 0) {
		fail_errno(path);
		goto fail;
	}
	if (cdb_make_start(&h->mk, h->fd) < 0) {
		fail_errno("cdb_make_start");
		goto fail;
	}
	h->making = 1;
	*out = h;
	return 0;
fail:
	cdbe_close(h);
	return -1;
}

static int cdbe_put(void *vh, const void *key, size_t key_len,
                    const void *val, size_t val_len)
{
	struct cdb_store *h = vh;
	if (!h->making) {
		bench_error("a constant database cannot be updated");
		return -1;
	}
	if (cdb_make_add(&h->mk, key, (unsigned)key_len, val,
	                 (unsigned)val_len) < 0)
		return fail_errno("cdb_make_add");
	return 0;
}

static int cdbe_sync(void *vh)
{
	struct cdb_store *h = vh;
	if (h->making) {
		h->making = 0;
		if (cdb_make_finish(&h->mk) < 0)
			return fail_errno("cdb_make_finish");
	}
	if (fsync(h->fd) < 0)
		return fail_errno("fsync");
	return 0;
}

static int cdbe_open(void **out, const char *dir, int writable, uint64_t n,
                     size_t key_max, size_t val_max)
{
	struct cdb_store *h;
	char path[4096];

	(void)n, (void)key_max, (void)val_max;
	*out = NULL;
	if (writable) {
		bench_error("a constant database cannot be updated");
		return -1;
	}
	if ((h = new_store()) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/data.cdb", dir);
	if ((h->fd = open(path, O_RDONLY)) < 0) {
		fail_errno(path);
		goto fail;
	}
	if (cdb_init(&h->db, h->fd) < 0) {
		fail_errno("cdb_init");
		goto fail;
	}
	h->mapped = 1;
	*out = h;
	return 0;
fail:
	cdbe_close(h);
	return -1;
}

static int cdbe_reader_new(void *vh, void **out)
{
	struct cdb_store *h = vh;
	struct cdb *r = malloc(sizeof *r);

	*out = NULL;
	if (r == NULL) {
		bench_error("out of memory");
		return -1;
	}
	*r = h->db; /* shares the mapping; cdb_free only on the original */
	*out = r;
	return 0;
}

static void cdbe_reader_free(void *vh, void *r)
{
	(void)vh;
	free(r);
}

static int cdbe_get(void *vh, void *vr, const void *key, size_t key_len,
                    void *buf, size_t cap, size_t *val_len)
{
	struct cdb *r = vr;
	unsigned len;
	const void *p;
	int rc;

	(void)vh;
	rc = cdb_find(r, key, (unsigned)key_len);
	if (rc == 0)
		return 1;
	if (rc < 0)
		return fail_errno("cdb_find");
	len = cdb_datalen(r);
	if (len > cap) {
		bench_error("value of %u bytes > buffer", len);
		return -1;
	}
	if ((p = cdb_getdata(r)) == NULL)
		return fail_errno("cdb_get");
	memcpy(buf, p, len);
	*val_len = len;
	return 0;
}

static int cdbe_iterate(void *vh, uint64_t *count, uint64_t *touch)
{
	struct cdb_store *h = vh;
	struct cdb db = h->db;
	unsigned pos;
	uint64_t n = 0, t = 0;
	int rc;

	cdb_seqinit(&pos, &db);
	while ((rc = cdb_seqnext(&pos, &db)) > 0) {
		t += bench_touch(cdb_getkey(&db), cdb_keylen(&db),
		                 cdb_getdata(&db), cdb_datalen(&db));
		n++;
	}
	if (rc < 0)
		return fail_errno("cdb_seqnext");
	*count = n;
	*touch = t;
	return 0;
}

/* The build phase is cdb_make, exactly as the load does it. */
static int cdbe_build_open(void **out, const char *dir, uint64_t n,
                           size_t key_max, size_t val_max)
{
	*out = NULL;
	if (mkdir(dir, 0755) != 0)
		return fail_errno("mkdir");
	return cdbe_load_open(out, dir, n, key_max, val_max);
}

static int cdbe_build_finish(void *h)
{
	int rc = cdbe_sync(h);

	if (cdbe_close(h) != 0)
		rc = -1;
	return rc;
}

const struct engine engine_cdb = {
	.name = "cdb",
	.settings = "tinycdb constant db: cdb_make_add + cdb_make_finish + "
	            "fsync; cdb_find on the mmap; no updates (mixed n/a)",
	.can_update = 0,
	.load_open = cdbe_load_open,
	.put = cdbe_put,
	.sync = cdbe_sync,
	.close = cdbe_close,
	.open = cdbe_open,
	.reader_new = cdbe_reader_new,
	.reader_free = cdbe_reader_free,
	.get = cdbe_get,
	.iterate = cdbe_iterate,
	.build_open = cdbe_build_open,
	.build_add = cdbe_put,
	.build_finish = cdbe_build_finish,
};

/* common.c - see common.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

const char *tc_fs_name(void)
{
	const char *s = getenv("CELLAR_TEST_FS");
	return s && *s ? s : "mem";
}

cellar_fs *tc_fs_new_named(const char *name)
{
	cellar_fs *fs = NULL;
	int rc;

	if (strcmp(name, "mem") == 0)
		rc = cellar_fs_mem_new(&fs);
	else if (strcmp(name, "posix") == 0)
		rc = cellar_fs_posix_new(&fs);
	else if (strcmp(name, "mmap") == 0)
		rc = cellar_fs_mmap_new(&fs);
	else
		cr_assert_fail("unknown CELLAR_TEST_FS '%s'", name);
	cr_assert_eq(rc, CELLAR_OK, "creating the %s file system", name);
	return fs;
}

cellar_fs *tc_fs_new(void)
{
	return tc_fs_new_named(tc_fs_name());
}

char *tc_dir_new(void)
{
	static unsigned counter;
	char *out = malloc(4096);

	cr_assert(out);
	if (strcmp(tc_fs_name(), "mem") == 0) {
		snprintf(out, 4096, "/store%u", ++counter);
		return out;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(out, 4096, "%s/cellar-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert(mkdtemp(out), "mkdtemp");
	strcat(out, "/store");
	return out;
}

void tc_dir_free(char *dir)
{
	if (!dir)
		return;
	if (strcmp(tc_fs_name(), "mem") != 0) {
		char *slash = strrchr(dir, '/');
		*slash = '\0';
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	free(dir);
}

double tc_stress_seconds(void)
{
	const char *s = getenv("CELLAR_STRESS_SECONDS");
	double v = s ? atof(s) : 0;
	return v > 0 ? v : 2.0;
}

uint64_t tc_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void tc_store_init(tc_store *s)
{
	cellar_options init = CELLAR_OPTIONS_INIT;

	s->fs = tc_fs_new();
	s->dir = tc_dir_new();
	s->db = NULL;
	s->o = init;
	s->o.fs = s->fs;
	s->o.flags = CELLAR_CREATE;
}

void tc_store_open(tc_store *s)
{
	s->db = NULL;
	OK(cellar_open(&s->db, s->dir, &s->o));
	cr_assert_not_null(s->db);
}

void tc_store_new(tc_store *s, uint64_t max_segment_size)
{
	tc_store_init(s);
	s->o.max_segment_size = max_segment_size;
	tc_store_open(s);
}

void tc_store_close(tc_store *s)
{
	OK(cellar_close(s->db));
	s->db = NULL;
}

void tc_store_reopen(tc_store *s)
{
	tc_store_close(s);
	tc_store_open(s);
}

void tc_store_free(tc_store *s)
{
	if (s->db)
		OK(cellar_close(s->db));
	s->db = NULL;
	cellar_fs_free(s->fs);
	tc_dir_free(s->dir);
}

/* ---- the write log ------------------------------------------------------ */

/* The log's own file: the base file and the path it was opened with. */
typedef struct wlog_file {
	cellar_file *base;
	char path[256];
} wlog_file;

#define WLOG(fs) ((tc_wlog *)(fs)->ctx)
#define WBASE(fs) (WLOG(fs)->base)
#define WFILE(f) (((wlog_file *)(void *)(f))->base)

static int wlog_open(cellar_fs *fs, const char *path, int flags,
                     cellar_file **out)
{
	wlog_file *w = calloc(1, sizeof *w);
	int rc;

	cr_assert_not_null(w);
	snprintf(w->path, sizeof w->path, "%s", path);
	rc = WBASE(fs)->open(WBASE(fs), path, flags, &w->base);
	if (rc < 0) {
		free(w);
		*out = NULL;
		return rc;
	}
	*out = (cellar_file *)(void *)w;
	return rc;
}

static int wlog_close(cellar_fs *fs, cellar_file *f)
{
	int rc = f ? WBASE(fs)->close(WBASE(fs), WFILE(f)) : CELLAR_OK;

	free(f);
	return rc;
}

static int wlog_read_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                        void *buf, size_t len, size_t *got)
{
	return WBASE(fs)->read_at(WBASE(fs), WFILE(f), off, buf, len, got);
}

static int wlog_write_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                         const void *buf, size_t len)
{
	tc_wlog *log = WLOG(fs);

	if (log->n == log->cap) {
		log->cap = log->cap ? 2 * log->cap : 64;
		log->w = realloc(log->w, log->cap * sizeof *log->w);
		cr_assert_not_null(log->w);
	}
	tc_write *w = &log->w[log->n++];
	snprintf(w->path, sizeof w->path, "%s", ((wlog_file *)(void *)f)->path);
	w->off = off;
	w->len = len;
	return WBASE(fs)->write_at(WBASE(fs), WFILE(f), off, buf, len);
}

static int wlog_size(cellar_fs *fs, cellar_file *f, uint64_t *out)
{
	return WBASE(fs)->size(WBASE(fs), WFILE(f), out);
}

static int wlog_truncate(cellar_fs *fs, cellar_file *f, uint64_t size)
{
	return WBASE(fs)->truncate(WBASE(fs), WFILE(f), size);
}

static int wlog_sync(cellar_fs *fs, cellar_file *f)
{
	return WBASE(fs)->sync(WBASE(fs), WFILE(f));
}

static int wlog_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                    const void **out)
{
	return WBASE(fs)->map(WBASE(fs), WFILE(f), len, hint, out);
}

static int wlog_unmap(cellar_fs *fs, cellar_file *f, const void *addr,
                      uint64_t len)
{
	return WBASE(fs)->unmap(WBASE(fs), f ? WFILE(f) : NULL, addr, len);
}

static int wlog_remove(cellar_fs *fs, const char *path)
{
	return WBASE(fs)->remove(WBASE(fs), path);
}

static int wlog_rename(cellar_fs *fs, const char *from, const char *to)
{
	return WBASE(fs)->rename(WBASE(fs), from, to);
}

static int wlog_list(cellar_fs *fs, const char *dir,
                     int (*cb)(const char *name, void *ctx), void *ctx)
{
	return WBASE(fs)->list(WBASE(fs), dir, cb, ctx);
}

static int wlog_mkdir(cellar_fs *fs, const char *path)
{
	return WBASE(fs)->mkdir(WBASE(fs), path);
}

static int wlog_sync_dir(cellar_fs *fs, const char *path)
{
	return WBASE(fs)->sync_dir(WBASE(fs), path);
}

static int wlog_lock(cellar_fs *fs, const char *path, cellar_file **out)
{
	return WBASE(fs)->lock(WBASE(fs), path, out);
}

static int wlog_unlock(cellar_fs *fs, cellar_file *lock)
{
	return WBASE(fs)->unlock(WBASE(fs), lock);
}

tc_wlog *tc_wlog_new(cellar_fs *base)
{
	tc_wlog *log = calloc(1, sizeof *log);

	cr_assert_not_null(log);
	log->base = base;
	log->fs = (cellar_fs){
		.version = CELLAR_FS_VERSION,
		.ctx = log,
		.open = wlog_open,
		.close = wlog_close,
		.read_at = wlog_read_at,
		.write_at = wlog_write_at,
		.size = wlog_size,
		.truncate = wlog_truncate,
		.sync = wlog_sync,
		.map = base->map ? wlog_map : NULL,
		.unmap = base->map ? wlog_unmap : NULL,
		.remove = wlog_remove,
		.rename = wlog_rename,
		.list = wlog_list,
		.mkdir = wlog_mkdir,
		.sync_dir = wlog_sync_dir,
		.lock = wlog_lock,
		.unlock = wlog_unlock,
	};
	return log;
}

void tc_wlog_free(tc_wlog *log)
{
	if (log) {
		free(log->w);
		free(log);
	}
}

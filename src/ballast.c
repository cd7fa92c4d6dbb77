/* ballast.c - the store's reserve of disk space (see ballast.h). */
#include <stdlib.h>

#include "ballast.h"
#include "error.h"
#include "files.h"

void ballast_init(ballast *b, cellar_fs *fs, const char *dir, uint64_t size)
{
	b->fs = fs;
	b->dir = dir;
	b->size = size;
	b->held = 0;
}

/* Write zeros into f from its size up to want bytes; fsync. */
static int fill(cellar_fs *fs, cellar_file *f, uint64_t want)
{
	uint64_t at;
	uint8_t *zeros;
	int rc;

	if ((rc = fs->size(fs, f, &at)) < 0)
		return rc;
	if (at > want)
		return fs->truncate(fs, f, want);
	if (at == want)
		return CELLAR_OK;
	if (!(zeros = calloc(1, FILE_WRITE_UNIT)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (rc = CELLAR_OK; at < want && rc == CELLAR_OK;) {
		uint64_t n = want - at < FILE_WRITE_UNIT ? want - at : FILE_WRITE_UNIT;
		if ((rc = fs->write_at(fs, f, at, zeros, (size_t)n)) == CELLAR_OK)
			at += n;
	}
	free(zeros);
	return rc < 0 ? rc : fs->sync(fs, f);
}

/* The reserve file, opened for writing (created if absent); b->held is 0
 * from here until the caller knows better. */
static int open_reserve(ballast *b, cellar_file **f)
{
	char path[FILE_PATH_MAX];
	int rc;

	b->held = 0;
	if ((rc = files_path(path, sizeof path, b->dir, FILE_RESERVE)) < 0)
		return rc;
	return b->fs->open(b->fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, f);
}

int ballast_make(ballast *b)
{
	cellar_file *f;
	int rc;

	if ((rc = open_reserve(b, &f)) < 0)
		return rc;
	rc = fill(b->fs, f, b->size);
	if (rc == CELLAR_ENOSPC) {
		/* Take nothing rather than part: what is free stays free for
		 * the writes the reserve is there for. */
		(void)b->fs->truncate(b->fs, f, 0);
		cellar__error(rc, "no room for the store's reserve of %llu bytes",
		              (unsigned long long)b->size);
	}
	b->fs->close(b->fs, f);
	b->held = rc == CELLAR_OK;
	return rc;
}

int ballast_release(ballast *b)
{
	cellar_file *f;
	int rc;

	if ((rc = open_reserve(b, &f)) < 0)
		return rc;
	rc = b->fs->truncate(b->fs, f, 0);
	b->fs->close(b->fs, f);
	return rc;
}

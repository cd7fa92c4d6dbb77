/*
 * files.c - names, paths and durable file replacement (see files.h).
 *
 * Owns the order of the file-system calls that make a change to a store's
 * set of files durable.  Must not interpret file contents.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "files.h"

int files_path(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= cap)
		return cellar__error(CELLAR_EINVAL, "path too long: %s/%s", dir, name);
	return CELLAR_OK;
}

void files_segment_name(char *out, uint64_t seq)
{
	snprintf(out, FILE_SEG_NAME_LEN + 1, "%016llx%s", (unsigned long long)seq,
	         FILE_SEG_SUFFIX);
}

int files_segment_path(char *out, size_t cap, const char *dir, uint64_t seq)
{
	char name[FILE_SEG_NAME_LEN + 1];

	files_segment_name(name, seq);
	return files_path(out, cap, dir, name);
}

int files_parse_segment_name(const char *name, int *is_seg, uint64_t *seq)
{
	uint64_t v = 0;

	*is_seg = 0;
	if (strlen(name) != FILE_SEG_NAME_LEN ||
	    strcmp(name + 16, FILE_SEG_SUFFIX) != 0)
		return CELLAR_OK;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		                               : -1;
		if (d < 0)
			return CELLAR_OK;
		v = v << 4 | (uint64_t)d;
	}
	*is_seg = 1;
	*seq = v;
	return CELLAR_OK;
}

int files_replace(cellar_fs *fs, const char *dir, const char *tmp_name,
                  const char *name, files_write_fn write, void *ctx)
{
	char tmp[FILE_PATH_MAX], path[FILE_PATH_MAX];
	cellar_file *f = NULL;
	int rc;

	if ((rc = files_path(tmp, sizeof tmp, dir, tmp_name)) < 0 ||
	    (rc = files_path(path, sizeof path, dir, name)) < 0)
		return rc;
	if ((rc = fs->open(fs, tmp, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f)) < 0)
		return rc;
	if ((rc = fs->truncate(fs, f, 0)) < 0 || (rc = write(ctx, fs, f)) < 0 ||
	    (rc = fs->sync(fs, f)) < 0)
		goto fail;
	rc = fs->close(fs, f);
	f = NULL;
	if (rc < 0 || (rc = fs->rename(fs, tmp, path)) < 0)
		goto fail;
	return fs->sync_dir(fs, dir);
fail:
	if (f)
		fs->close(fs, f);
	/* Give the space back at once (a full disk needs it for the next
	 * try); on a crash instead, its owner removes it on open. */
	if (rc == CELLAR_ENOSPC)
		(void)fs->remove(fs, tmp);
	return rc;
}

int files_remove_segments(cellar_fs *fs, const char *dir, const uint64_t *seqs,
                          size_t n)
{
	char path[FILE_PATH_MAX];
	int rc;

	if (n == 0)
		return CELLAR_OK;
	for (size_t i = 0; i < n; i++)
		if ((rc = files_segment_path(path, sizeof path, dir, seqs[i])) < 0 ||
		    (rc = fs->remove(fs, path)) < 0)
			return rc;
	return fs->sync_dir(fs, dir);
}

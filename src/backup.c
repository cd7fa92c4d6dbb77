/*
 * backup.c - cellar_backup: a consistent copy of a live store at one
 * moment, published atomically.
 *
 * The moment is a writer version taken with the append buffer flushed
 * (writer_version_take): a frozen index and the pinned segments, whose
 * bytes up to the version's log position all lie in their files.  Without
 * the writer mutex the copy is then built in <dest>.backup-<hex>: sealed
 * segments hard-linked (fs->link) or copied from their open handles, the
 * newest copied up to the position, the meta file copied, the frozen
 * index written as the copy's checkpoint (index_write); every file and the
 * directory fsynced, then renamed to <dest> and the parent fsynced.
 *
 * Owns: the temporary directory, the order of the publication, the result
 * counts.  Must not: change the source store (it only reads its files), or
 * hold the writer mutex beyond taking and releasing the version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "handle.h"

#define COPY_CHUNK (1u << 20)

typedef struct backup {
	cellar_db *db;
	cellar_fs *fs;
	char tmp[FILE_PATH_MAX];
	char dest[FILE_PATH_MAX];
	uint8_t *buf;          /* COPY_CHUNK bytes */
	char **made;           /* files created in tmp, to remove on failure */
	size_t nmade, made_cap;
	cellar_backup_result r;
} backup;

/* Note a file made in the temporary directory.  CELLAR_ENOMEM. */
static int note_made(backup *b, const char *path)
{
	if (b->nmade == b->made_cap) {
		size_t cap = b->made_cap ? 2 * b->made_cap : 16;
		char **v = realloc(b->made, cap * sizeof *v);
		if (!v)
			return cellar__error(CELLAR_ENOMEM, "out of memory");
		b->made = v;
		b->made_cap = cap;
	}
	if (!(b->made[b->nmade] = strdup(path)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	b->nmade++;
	return CELLAR_OK;
}

/* Copy the first len bytes of src into the new file to, and fsync it. */
static int copy_bytes(backup *b, cellar_file *src, uint64_t len,
                      const char *to)
{
	cellar_file *f = NULL;
	uint64_t off = 0;
	size_t got;
	int rc;

	if ((rc = b->fs->open(b->fs, to, CELLAR_FS_CREATE | CELLAR_FS_WRITE | CELLAR_FS_EXCL,
	                      &f)) < 0)
		return rc;
	if ((rc = note_made(b, to)) < 0)
		goto out;
	while (off < len) {
		size_t want = len - off < COPY_CHUNK ? (size_t)(len - off)
		                                     : COPY_CHUNK;
		if ((rc = b->fs->read_at(b->fs, src, off, b->buf, want, &got)) < 0)
			goto out;
		if (got != want) {
			rc = cellar__error(CELLAR_EIO, "backup: %s: short read", to);
			goto out;
		}
		if ((rc = b->fs->write_at(b->fs, f, off, b->buf, want)) < 0)
			goto out;
		off += want;
	}
	rc = b->fs->sync(b->fs, f);
	if (rc == CELLAR_OK) {
		b->r.copied_files++;
		b->r.copied_bytes += len;
	}
out:
	b->fs->close(b->fs, f);
	return rc;
}

/* A sealed segment: a hard link where the fs allows it, else a copy. */
static int put_segment(backup *b, const segment *g, uint64_t size, int sealed)
{
	char from[FILE_PATH_MAX], to[FILE_PATH_MAX];
	int rc;

	if ((rc = files_segment_path(from, sizeof from, b->db->dir, g->seq)) < 0 ||
	    (rc = files_segment_path(to, sizeof to, b->tmp, g->seq)) < 0)
		return rc;
	if (sealed && b->fs->version >= 2 && b->fs->link &&
	    b->fs->link(b->fs, from, to) == CELLAR_OK) {
		b->r.linked_files++;
		b->r.linked_bytes += size;
		return note_made(b, to);
	}
	cellar__error_clear(); /* a failed link is not the backup's error */
	return copy_bytes(b, g->file, size, to);
}

static int put_meta(backup *b)
{
	char from[FILE_PATH_MAX], to[FILE_PATH_MAX];
	cellar_file *f = NULL;
	uint64_t len;
	int rc;

	if ((rc = files_path(from, sizeof from, b->db->dir, FILE_META)) < 0 ||
	    (rc = files_path(to, sizeof to, b->tmp, FILE_META)) < 0 ||
	    (rc = b->fs->open(b->fs, from, CELLAR_FS_READ, &f)) < 0)
		return rc;
	if ((rc = b->fs->size(b->fs, f, &len)) == CELLAR_OK)
		rc = copy_bytes(b, f, len, to);
	b->fs->close(b->fs, f);
	return rc;
}

static int put_index(backup *b, writer_version *v)
{
	char path[FILE_PATH_MAX];
	int rc;

	if ((rc = files_path(path, sizeof path, b->tmp, FILE_INDEX)) < 0 ||
	    (rc = note_made(b, path)) < 0)
		return rc;
	if ((rc = index_write(v->ix, b->fs, b->tmp, &v->ck)) < 0)
		return rc;
	b->r.index_bytes = index_file_size(v->ix, v->ck.nsegs);
	b->r.keys = index_count(v->ix);
	return CELLAR_OK;
}

/* Every file of the version into the temporary directory, synced. */
static int build(backup *b)
{
	writer_version *v;
	int rc;

	if ((rc = writer_version_take(&b->db->w, 1, &v)) < 0)
		return rc;
	for (size_t i = 0; i < v->nsegs && rc == CELLAR_OK; i++)
		rc = put_segment(b, v->segs[i], v->ck.segs[i].size,
		                 i + 1 < v->nsegs);
	if (rc == CELLAR_OK)
		rc = put_meta(b);
	if (rc == CELLAR_OK)
		rc = put_index(b, v);
	writer_version_release(&b->db->w, v);
	if (rc == CELLAR_OK)
		rc = b->fs->sync_dir(b->fs, b->tmp);
	return rc;
}

/* The parent directory of path into out ("." for a bare name). */
static void parent_of(const char *path, char *out, size_t cap)
{
	const char *s = strrchr(path, '/');
	size_t n = s ? (size_t)(s - path) : 0;

	if (s && n == 0)
		n = 1; /* "/name": the root */
	if (!s || n >= cap) {
		snprintf(out, cap, ".");
		return;
	}
	memcpy(out, path, n);
	out[n] = '\0';
}

static int exists_cb(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return 1;
}

/* Make the temporary directory beside dest (after checking dest is free). */
static int make_tmp(backup *b)
{
	uint64_t r = (uint64_t)(clock_seconds() * 1e9) ^ (uintptr_t)b;
	int rc = b->fs->list(b->fs, b->dest, exists_cb, NULL);

	if (rc != CELLAR_ENOENT)
		return rc < 0 ? rc : cellar__error(CELLAR_EEXIST, "backup: %s exists",
		                                   b->dest);
	for (int tries = 0; tries < 8; tries++, r = r * 6364136223846793005ull + 1) {
		if (snprintf(b->tmp, sizeof b->tmp, "%s.backup-%016llx", b->dest,
		             (unsigned long long)r) >= (int)sizeof b->tmp)
			return cellar__error(CELLAR_EINVAL, "backup: path too long");
		rc = b->fs->mkdir(b->fs, b->tmp);
		if (rc != CELLAR_EEXIST)
			return rc;
	}
	return rc;
}

/* Note a file found in the temporary directory (undo). */
static int found_cb(const char *name, void *ctx)
{
	backup *b = ctx;
	char path[FILE_PATH_MAX];

	if (files_path(path, sizeof path, b->tmp, name) < 0)
		return 0;
	return note_made(b, path) < 0;
}

/* After a failure: remove the temporary directory and what is in it (also
 * a half-written index.tmp), best effort. */
static void undo(backup *b)
{
	b->fs->list(b->fs, b->tmp, found_cb, b);
	for (size_t i = 0; i < b->nmade; i++)
		b->fs->remove(b->fs, b->made[i]);
	if (b->fs->version >= 2 && b->fs->rmdir)
		b->fs->rmdir(b->fs, b->tmp);
}

static int check(cellar_db *db, const char *dest)
{
	cellar__error_clear();
	if (!db)
		return cellar__error(CELLAR_EINVAL, "db is NULL");
	if (!dest || !*dest)
		return cellar__error(CELLAR_EINVAL, "dest_dir is NULL or empty");
	if (db->readonly)
		return cellar__error(CELLAR_EREADONLY, "store is open read-only");
	if (strlen(dest) + 32 >= FILE_PATH_MAX)
		return cellar__error(CELLAR_EINVAL, "dest_dir is too long");
	return CELLAR_OK;
}

int cellar_backup(cellar_db *db, const char *dest_dir,
                  cellar_backup_result *result)
{
	backup b;
	char parent[FILE_PATH_MAX];
	int rc;

	if (result)
		memset(result, 0, sizeof *result);
	if ((rc = check(db, dest_dir)) < 0)
		return rc;
	memset(&b, 0, sizeof b);
	b.db = db;
	b.fs = db->fs;
	snprintf(b.dest, sizeof b.dest, "%s", dest_dir);
	if (!(b.buf = malloc(COPY_CHUNK)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	if ((rc = make_tmp(&b)) < 0)
		goto out;
	parent_of(b.dest, parent, sizeof parent);
	if ((rc = build(&b)) < 0 ||
	    (rc = b.fs->rename(b.fs, b.tmp, b.dest)) < 0) {
		undo(&b);
		goto out;
	}
	/* Renamed: dest is complete; the parent's sync makes that durable. */
	rc = b.fs->sync_dir(b.fs, parent);
	if (result)
		*result = b.r;
out:
	for (size_t i = 0; i < b.nmade; i++)
		free(b.made[i]);
	free(b.made);
	free(b.buf);
	return rc;
}

/*
 * posix.c - the POSIX file system: open/pread/pwrite/fsync/flock and the
 * directory operations.  mmap.c reuses all of it (see posix_impl.h).
 *
 * write_at and truncate on a file opened without CELLAR_FS_WRITE fail with
 * CELLAR_EINVAL (as in the mem file system) rather than the OS's EBADF.
 *
 * Owns the file descriptors and every system call on them.  It must not
 * know cellar's files or formats (it moves bytes at offsets, nothing
 * more), must not let errno out (each failure goes through fs__errno()),
 * and, like all of fs/, includes nothing from src/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"
#include "fs_util.h"
#include "posix_impl.h"

/* Largest byte offset a file may reach (off_t is 64-bit here). */
#define POSIX_MAX_OFF ((uint64_t)INT64_MAX)

static int posix_open_fd(const char *path, int oflags, mode_t mode, int flags,
                         cellar_file **out)
{
	size_t n = strlen(path) + 1;
	struct posix_file *pf = malloc(sizeof *pf + n);
	int fd;

	*out = NULL;
	if (!pf)
		return cellar__error(CELLAR_ENOMEM, "open %s: out of memory", path);
	do {
		fd = open(path, oflags | O_CLOEXEC, mode);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int rc = fs__errno(errno, "open", path);
		free(pf);
		return rc;
	}
	pf->fd = fd;
	pf->flags = flags;
	memcpy(pf->path, path, n);
	*out = (cellar_file *)(void *)pf;
	return CELLAR_OK;
}

static int posix_open(cellar_fs *fs, const char *path, int flags,
                      cellar_file **out)
{
	int oflags = (flags & CELLAR_FS_WRITE) ? O_RDWR : O_RDONLY;

	(void)fs;
	if (flags & CELLAR_FS_CREATE)
		oflags |= O_CREAT;
	if ((flags & CELLAR_FS_CREATE) && (flags & CELLAR_FS_EXCL))
		oflags |= O_EXCL;
	return posix_open_fd(path, oflags, 0644, flags, out);
}

static int posix_close(cellar_fs *fs, cellar_file *f)
{
	struct posix_file *pf = posix_file_of(f);
	int rc = CELLAR_OK;

	(void)fs;
	if (!pf)
		return CELLAR_OK;
	/* Linux always releases the descriptor, even on EINTR: never retry. */
	if (close(pf->fd) < 0 && errno != EINTR)
		rc = fs__errno(errno, "close", pf->path);
	free(pf);
	return rc;
}

static int posix_read_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                         void *buf, size_t len, size_t *got)
{
	struct posix_file *pf = posix_file_of(f);
	size_t done = 0;

	(void)fs;
	*got = 0;
	if (off > POSIX_MAX_OFF || len > POSIX_MAX_OFF - off)
		return cellar__error(CELLAR_EINVAL, "read %s: offset out of range",
		                     pf->path);
	while (done < len) {
		ssize_t n = pread(pf->fd, (char *)buf + done, len - done,
		                  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fs__errno(errno, "read", pf->path);
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	*got = done;
	return CELLAR_OK;
}

static int posix_write_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                          const void *buf, size_t len)
{
	struct posix_file *pf = posix_file_of(f);
	size_t done = 0;

	(void)fs;
	if (!(pf->flags & CELLAR_FS_WRITE))
		return cellar__error(CELLAR_EINVAL,
		                     "write %s: file not opened for writing", pf->path);
	if (off > POSIX_MAX_OFF || len > POSIX_MAX_OFF - off)
		return cellar__error(CELLAR_EINVAL, "write %s: offset out of range",
		                     pf->path);
	while (done < len) {
		ssize_t n = pwrite(pf->fd, (const char *)buf + done, len - done,
		                   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fs__errno(errno, "write", pf->path);
		if (n == 0)
			return fs__errno(EIO, "write", pf->path);
		done += (size_t)n;
	}
	return CELLAR_OK;
}

static int posix_size(cellar_fs *fs, cellar_file *f, uint64_t *out)
{
	struct posix_file *pf = posix_file_of(f);
	struct stat st;

	(void)fs;
	*out = 0;
	if (fstat(pf->fd, &st) < 0)
		return fs__errno(errno, "stat", pf->path);
	*out = (uint64_t)st.st_size;
	return CELLAR_OK;
}

static int posix_truncate(cellar_fs *fs, cellar_file *f, uint64_t size)
{
	struct posix_file *pf = posix_file_of(f);
	int r;

	(void)fs;
	if (!(pf->flags & CELLAR_FS_WRITE))
		return cellar__error(CELLAR_EINVAL,
		                     "truncate %s: file not opened for writing",
		                     pf->path);
	if (size > POSIX_MAX_OFF)
		return cellar__error(CELLAR_EINVAL, "truncate %s: size out of range",
		                     pf->path);
	do {
		r = ftruncate(pf->fd, (off_t)size);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return fs__errno(errno, "truncate", pf->path);
	return CELLAR_OK;
}

static int posix_sync(cellar_fs *fs, cellar_file *f)
{
	struct posix_file *pf = posix_file_of(f);
	int r;

	(void)fs;
	/* fsync, not fdatasync: the size must be durable too. */
	do {
		r = fsync(pf->fd);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return fs__errno(errno, "sync", pf->path);
	return CELLAR_OK;
}

static int posix_remove(cellar_fs *fs, const char *path)
{
	(void)fs;
	if (unlink(path) < 0)
		return fs__errno(errno, "remove", path);
	return CELLAR_OK;
}

static int posix_rename(cellar_fs *fs, const char *from, const char *to)
{
	(void)fs;
	if (rename(from, to) < 0)
		return fs__errno(errno, "rename", from);
	return CELLAR_OK;
}

static int posix_list(cellar_fs *fs, const char *dir,
                      int (*cb)(const char *name, void *ctx), void *ctx)
{
	DIR *d;
	int rc = CELLAR_OK;

	(void)fs;
	d = opendir(dir);
	if (!d)
		return fs__errno(errno, "list", dir);
	for (;;) {
		struct dirent *e;

		errno = 0;
		e = readdir(d);
		if (!e) {
			if (errno != 0)
				rc = fs__errno(errno, "list", dir);
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = cb(e->d_name, ctx);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

static int posix_mkdir(cellar_fs *fs, const char *path)
{
	(void)fs;
	if (mkdir(path, 0755) < 0)
		return fs__errno(errno, "mkdir", path);
	return CELLAR_OK;
}

static int posix_sync_dir(cellar_fs *fs, const char *path)
{
	int fd, r, rc = CELLAR_OK;

	(void)fs;
	do {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return fs__errno(errno, "sync_dir", path);
	do {
		r = fsync(fd);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		rc = fs__errno(errno, "sync_dir", path);
	close(fd);
	return rc;
}

/*
 * flock() locks belong to an open file description, so a second lock() on
 * the same path, even from this process, opens a new description and gets
 * CELLAR_ELOCKED.
 */
static int posix_lock(cellar_fs *fs, const char *path, cellar_file **out)
{
	cellar_file *f = NULL;
	int rc, r;

	(void)fs;
	*out = NULL;
	rc = posix_open_fd(path, O_RDWR | O_CREAT, 0644,
	                   CELLAR_FS_READ | CELLAR_FS_WRITE, &f);
	if (rc != CELLAR_OK)
		goto fail;
	do {
		r = flock(posix_file_of(f)->fd, LOCK_EX | LOCK_NB);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		rc = fs__lock_errno(errno, path);
		goto fail;
	}
	*out = f;
	return CELLAR_OK;
fail:
	posix_close(fs, f);
	return rc;
}

static int posix_unlock(cellar_fs *fs, cellar_file *lock)
{
	/* Closing the only descriptor of the description drops the lock. */
	return posix_close(fs, lock);
}

/* renameat2(RENAME_EXCHANGE), through syscall() so that an older libc
 * without the wrapper still builds; kernels before 3.15 give ENOSYS. */
static int posix_exchange(cellar_fs *fs, const char *a, const char *b)
{
	(void)fs;
#if defined(SYS_renameat2)
	if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* EXCHANGE */) < 0)
		return fs__errno(errno, "exchange", a);
	return CELLAR_OK;
#else
	(void)b;
	return fs__errno(ENOSYS, "exchange", a);
#endif
}

static int posix_writeback(cellar_fs *fs, cellar_file *f, uint64_t off,
                           uint64_t len)
{
	struct posix_file *pf = posix_file_of(f);

	(void)fs;
	if (sync_file_range(pf->fd, (off_t)off, (off_t)len,
	                    SYNC_FILE_RANGE_WRITE) < 0)
		return fs__errno(errno, "writeback", pf->path);
	return CELLAR_OK;
}

static int posix_link(cellar_fs *fs, const char *from, const char *to)
{
	(void)fs;
	if (link(from, to) < 0)
		return fs__errno(errno, "link", to);
	return CELLAR_OK;
}

static int posix_rmdir(cellar_fs *fs, const char *path)
{
	(void)fs;
	if (rmdir(path) < 0)
		return fs__errno(errno, "rmdir", path);
	return CELLAR_OK;
}

static void posix_destroy(cellar_fs *fs)
{
	free(fs);
}

int fs__posix_alloc(cellar_fs **out)
{
	cellar_fs *fs = calloc(1, sizeof *fs);

	*out = NULL;
	if (!fs)
		return cellar__error(CELLAR_ENOMEM, "posix fs: out of memory");
	fs->version = CELLAR_FS_VERSION;
	fs->open = posix_open;
	fs->close = posix_close;
	fs->read_at = posix_read_at;
	fs->write_at = posix_write_at;
	fs->size = posix_size;
	fs->truncate = posix_truncate;
	fs->sync = posix_sync;
	fs->map = NULL;
	fs->unmap = NULL;
	fs->remove = posix_remove;
	fs->rename = posix_rename;
	fs->list = posix_list;
	fs->mkdir = posix_mkdir;
	fs->sync_dir = posix_sync_dir;
	fs->lock = posix_lock;
	fs->unlock = posix_unlock;
	fs->destroy = posix_destroy;
	/* mmap.c's memory calls: they work on any memory, and on a file
	 * through a temporary mapping, so posix has them too. */
	fs->resident = fs__resident;
	fs->lock_mem = fs__lock_mem;
	fs->unlock_mem = fs__unlock_mem;
	fs->exchange = posix_exchange;
	fs->rmdir = posix_rmdir;
	fs->writeback = posix_writeback;
	fs->link = posix_link;
	*out = fs;
	return CELLAR_OK;
}

int cellar_fs_posix_new(cellar_fs **out)
{
	if (!out)
		return cellar__error(CELLAR_EINVAL, "cellar_fs_posix_new: out is NULL");
	return fs__posix_alloc(out);
}

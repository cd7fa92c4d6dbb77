/*
 * posix_impl.h - the POSIX file system shared by posix.c and mmap.c.
 *
 * posix.c owns every operation on POSIX files except mapping; mmap.c takes
 * a table from fs__posix_alloc() and adds map/unmap.  mmap.c also owns the
 * memory calls below, which fs__posix_alloc() puts in both tables.
 */
#ifndef CELLAR_POSIX_IMPL_H
#define CELLAR_POSIX_IMPL_H

#include "cellar_fs.h"

/** An open POSIX file (or lock); what a cellar_file points at. */
struct posix_file {
	int fd;
	int flags;   /* CELLAR_FS_* open flags */
	char path[]; /* for error messages */
};

/** The posix_file behind f. */
static inline struct posix_file *posix_file_of(cellar_file *f)
{
	return (struct posix_file *)(void *)f;
}

/**
 * A new table with every POSIX operation and the memory calls below; map
 * and unmap are NULL.
 */
int fs__posix_alloc(cellar_fs **out);

/**
 * The resident op: mincore on [addr, addr + len) when addr is given (a
 * mapping, or a private copy: any memory of the process), else on a
 * temporary mapping of f.  Partial pages at the ends count their share.
 */
int fs__resident(cellar_fs *fs, cellar_file *f, const void *addr,
                 uint64_t len, uint64_t *bytes);

/**
 * The lock_mem / unlock_mem ops: mlock / munlock of the pages covering
 * [addr, addr + len).  A refusal (ENOMEM, EPERM, EAGAIN) gives
 * CELLAR_EMLOCK through fs__mlock_errno().
 */
int fs__lock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                 uint64_t len);
int fs__unlock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                   uint64_t len);

#endif

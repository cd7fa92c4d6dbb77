/*
 * posix_impl.h - the POSIX file system shared by posix.c and mmap.c.
 *
 * posix.c owns every operation on POSIX files except mapping; mmap.c takes
 * a table from fs__posix_alloc() and adds map/unmap.
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

/** A new table with every POSIX operation; map and unmap are NULL. */
int fs__posix_alloc(cellar_fs **out);

#endif

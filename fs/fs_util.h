/*
 * fs_util.h - helpers shared by the file systems in fs/.
 *
 * Only fs/ reads errno: every system-call failure goes through fs__errno(),
 * which maps it to a cellar error code and records a detail message such as
 * "write /x/0001.seg: No space left on device".
 *
 * fs/ is the bottom layer: its files include only the public headers
 * (cellar.h, cellar_fs.h) and each other (this one, error.h for
 * cellar__error(), posix_impl.h), never anything from src/.
 */
#ifndef CELLAR_FS_UTIL_H
#define CELLAR_FS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/**
 * Map errno value err, from operation op on path, to a cellar code:
 * ENOENT and ENOTDIR -> CELLAR_ENOENT, EACCES, EPERM and EROFS ->
 * CELLAR_EACCES, EEXIST -> CELLAR_EEXIST, ENOSPC and EDQUOT ->
 * CELLAR_ENOSPC, ENOMEM -> CELLAR_ENOMEM, anything else -> CELLAR_EIO; and
 * record "<op> <path>: <strerror(err)>" as the detail message.
 */
int fs__errno(int err, const char *op, const char *path);

/**
 * As fs__errno() for a failed flock(): EWOULDBLOCK/EAGAIN mean another
 * holder has the lock and give CELLAR_ELOCKED.
 */
int fs__lock_errno(int err, const char *path);

/**
 * As fs__errno() for a failed mlock() of len bytes of path: a refusal
 * (ENOMEM, EPERM, EAGAIN) gives CELLAR_EMLOCK with a message naming the
 * bytes asked for and RLIMIT_MEMLOCK's soft limit.
 */
int fs__mlock_errno(int err, const char *path, uint64_t len);

/**
 * Length of the parent-directory part of path: the bytes before its last
 * '/', or 0 when the parent is the root ("/x", "x").
 */
size_t fs__parent_len(const char *path);

/** Non-zero when dir names the root directory ("", "/" or "."). */
int fs__is_root(const char *dir);

#endif

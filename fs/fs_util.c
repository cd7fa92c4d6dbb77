/*
 * fs_util.c - errno mapping and path helpers for fs/ (see fs_util.h), and
 * cellar_fs_free().
 *
 * Owns the one errno -> CELLAR_E* mapping of the library.  Its one system
 * call is getrlimit(), for the message of a refused mlock; it keeps no state; like all of fs/ it includes
 * only the public headers and fs/ headers, nothing from src/.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "cellar_fs.h"
#include "error.h"
#include "fs_util.h"

int fs__errno(int err, const char *op, const char *path)
{
	int code;

	switch (err) {
	case ENOENT:
	case ENOTDIR: /* a path component is a file: there is no store there */
		code = CELLAR_ENOENT;
		break;
	case EACCES:
	case EPERM:
	case EROFS:
		code = CELLAR_EACCES;
		break;
	case EEXIST:
		code = CELLAR_EEXIST;
		break;
	case ENOSPC:
#ifdef EDQUOT
	case EDQUOT:
#endif
		code = CELLAR_ENOSPC;
		break;
	case ENOMEM:
		code = CELLAR_ENOMEM;
		break;
	default:
		code = CELLAR_EIO;
		break;
	}
	return cellar__error(code, "%s %s: %s", op, path ? path : "(file)",
	                     strerror(err));
}

int fs__lock_errno(int err, const char *path)
{
	if (err == EWOULDBLOCK || err == EAGAIN)
		return cellar__error(CELLAR_ELOCKED,
		                     "lock %s: held by another owner", path);
	return fs__errno(err, "lock", path);
}

int fs__mlock_errno(int err, const char *path, uint64_t len)
{
	struct rlimit rl;
	char limit[32] = "unknown";

	if (err != ENOMEM && err != EPERM && err != EAGAIN)
		return fs__errno(err, "mlock", path);
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			snprintf(limit, sizeof limit, "unlimited");
		else
			snprintf(limit, sizeof limit, "%llu bytes",
			         (unsigned long long)rl.rlim_cur);
	}
	return cellar__error(CELLAR_EMLOCK,
	                     "lock %s in memory: %llu bytes needed, "
	                     "RLIMIT_MEMLOCK is %s (%s); raise it (ulimit -l, "
	                     "systemd LimitMEMLOCK=) or grant CAP_IPC_LOCK",
	                     path, (unsigned long long)len, limit, strerror(err));
}

size_t fs__parent_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

int fs__is_root(const char *dir)
{
	return strcmp(dir, "") == 0 || strcmp(dir, "/") == 0 ||
	       strcmp(dir, ".") == 0;
}

void cellar_fs_free(cellar_fs *fs)
{
	if (fs && fs->destroy)
		fs->destroy(fs);
}

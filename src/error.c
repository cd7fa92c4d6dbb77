/* error.c - cellar_strerror() and the per-thread detail message. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

_Thread_local char cellar__errmsg[256];

int cellar__error(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cellar__errmsg, sizeof cellar__errmsg, fmt, ap);
	va_end(ap);
	return code;
}

const char *cellar_errmsg(void)
{
	return cellar__errmsg;
}

const char *cellar_strerror(int err)
{
	switch (err) {
	case CELLAR_OK: return "success";
	case CELLAR_ENOTFOUND: return "key not found";
	case CELLAR_EDONE: return "iteration finished";
	case CELLAR_EBUFS: return "buffer too small";
	case CELLAR_ELOCKED: return "store is locked by another writer";
	case CELLAR_EINVAL: return "invalid argument";
	case CELLAR_ENOMEM: return "out of memory";
	case CELLAR_EIO: return "I/O error";
	case CELLAR_ENOSPC: return "no space left on device";
	case CELLAR_ECORRUPT: return "file is damaged or not a cellar file";
	case CELLAR_EVERSION: return "file written by a newer format version";
	case CELLAR_EREADONLY: return "store is open read-only";
	case CELLAR_EKEYLEN: return "key is empty or longer than 65535 bytes";
	case CELLAR_EVALLEN: return "value is longer than 1 GiB";
	case CELLAR_ENOENT: return "no such store or file";
	case CELLAR_EEXIST: return "file already exists";
	case CELLAR_ELIMIT: return "a store limit was reached";
	case CELLAR_EFAILED: return "an earlier write failed; reopen the store";
	case CELLAR_EBUSY: return "an iterator is open; compaction must wait";
	}
	return "unknown error";
}

/*
 * error.c - cellar_strerror(), cellar_errmsg() and cellar__error() with the
 * per-thread message buffer (see error.h).
 *
 * The bottom of the library, used by fs/ and src/ alike: it must include
 * nothing from src/ and do no I/O (it formats a message into a buffer; it
 * never prints, logs or calls into a file system).  The buffer is made with
 * malloc on a thread's first error and freed by a pthread key destructor at
 * thread exit.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"

_Thread_local char *cellar__errbuf CELLAR_TLS_IE;

static pthread_key_t errbuf_key;
static pthread_once_t errbuf_once = PTHREAD_ONCE_INIT;
static int errbuf_key_ok;

/* At thread exit: free the buffer, and forget it in case a later
 * destructor of the same thread calls into cellar. */
static void errbuf_free(void *p)
{
	if (cellar__errbuf == p)
		cellar__errbuf = NULL;
	free(p);
}

static void errbuf_make_key(void)
{
	errbuf_key_ok = pthread_key_create(&errbuf_key, errbuf_free) == 0;
}

int cellar__error(int code, const char *fmt, ...)
{
	va_list ap;

	if (!cellar__errbuf) {
		/* Without the key the buffer could not be freed at thread
		 * exit: then go without a message rather than leak. */
		pthread_once(&errbuf_once, errbuf_make_key);
		char *b = errbuf_key_ok ? malloc(CELLAR_ERRMSG_SIZE) : NULL;
		if (!b)
			return code;
		if (pthread_setspecific(errbuf_key, b) != 0) {
			free(b);
			return code;
		}
		cellar__errbuf = b;
	}
	va_start(ap, fmt);
	vsnprintf(cellar__errbuf, CELLAR_ERRMSG_SIZE, fmt, ap);
	va_end(ap);
	return code;
}

const char *cellar_errmsg(void)
{
	return cellar__errbuf ? cellar__errbuf : "";
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
	case CELLAR_EACCES: return "permission denied";
	case CELLAR_EMLOCK:
		return "memory could not be locked (RLIMIT_MEMLOCK too small)";
	case CELLAR_ECHANGED:
		return "the key does not hold the expected value";
	}
	return "unknown error";
}

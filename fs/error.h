/*
 * error.h - error codes and the per-thread detail message: the bottom of
 * the library.
 *
 * Every module reports failure by returning a negative cellar_error; where a
 * detail helps ("segment 3: bad checksum at offset 1234") it also records a
 * message with cellar__error(), which cellar_errmsg() hands to the user.
 *
 * Owns the code messages (cellar_strerror), cellar__error() and the
 * per-thread message buffer behind cellar_errmsg().  Both fs/ and src/ use
 * it, so it lives in fs/, the lowest layer: it includes only cellar.h and
 * standard headers, never anything from src/, and does no I/O (it formats
 * into its buffer; it never prints or logs, and reads no errno: fs/ maps
 * errno with fs__errno() in fs_util.h).
 */
#ifndef CELLAR_ERROR_H
#define CELLAR_ERROR_H

#include "cellar.h"

#if defined(__GNUC__) || defined(__clang__)
#  define CELLAR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define CELLAR_PRINTF(a, b)
#endif

/*
 * Thread-locals on the read path use the initial-exec model: in the shared
 * library the default model calls __tls_get_addr on every access (about 25
 * instructions a get).  They are kept small (12 bytes in all), since a
 * library loaded with dlopen takes them from the process's small reserve
 * of static TLS.
 */
#if defined(__GNUC__) || defined(__clang__)
#  define CELLAR_TLS_IE __attribute__((tls_model("initial-exec")))
#else
#  define CELLAR_TLS_IE
#endif

#define CELLAR_ERRMSG_SIZE 256

/** Record a detail message for this thread and return code. */
int cellar__error(int code, const char *fmt, ...) CELLAR_PRINTF(2, 3);

/* This thread's message buffer: made on its first error, freed at exit. */
extern _Thread_local char *cellar__errbuf CELLAR_TLS_IE;

/** Forget this thread's detail message (public calls do this on entry). */
static inline void cellar__error_clear(void)
{
	if (cellar__errbuf)
		cellar__errbuf[0] = '\0';
}

#endif

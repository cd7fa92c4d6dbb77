/*
 * error.h - error codes and the per-thread detail message.
 *
 * Every module reports failure by returning a negative cellar_error; where a
 * detail helps ("segment 3: bad checksum at offset 1234") it also records a
 * message with cellar__error(), which cellar_errmsg() hands to the user.
 */
#ifndef CELLAR_ERROR_H
#define CELLAR_ERROR_H

#include "cellar.h"

#if defined(__GNUC__) || defined(__clang__)
#  define CELLAR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define CELLAR_PRINTF(a, b)
#endif

/** Record a detail message for this thread and return code. */
int cellar__error(int code, const char *fmt, ...) CELLAR_PRINTF(2, 3);

extern _Thread_local char cellar__errmsg[256];

/** Forget this thread's detail message (public calls do this on entry). */
static inline void cellar__error_clear(void)
{
	cellar__errmsg[0] = '\0';
}

#endif

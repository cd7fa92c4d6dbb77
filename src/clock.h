/*
 * clock.h - the library's one reading of the monotonic clock, for
 * durations (pause times, sync times).  Owns nothing else.
 */
#ifndef CELLAR_CLOCK_H
#define CELLAR_CLOCK_H

#include <time.h>

/** Seconds on the monotonic clock, for differences only. */
static inline double clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif

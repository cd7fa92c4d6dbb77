/*
 * clock.h - the library's readings of the clocks: the monotonic clock, for
 * durations (pause times, sync times), and the wall clock, the default
 * time of expiring keys (cellar_options.clock replaces it).  Owns nothing
 * else.
 */
#ifndef CELLAR_CLOCK_H
#define CELLAR_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Seconds on the monotonic clock, for differences only. */
static inline double clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/** Milliseconds since the Unix epoch on the wall clock (expiry times). */
static inline uint64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif

/*
 * snapshot_cost.c - cellar-snapshot-cost: what a snapshot costs at a size.
 *
 *   cellar-snapshot-cost [-n KEYS] [--runs R] [--puts P[,P...]] DIR
 *
 * Loads KEYS keys (16-byte keys, 16-byte values) into a new store at DIR
 * through cellar_put, syncs, then per run:
 *   - take: the time cellar_snapshot_new takes (median of 101 takes, each
 *     released before the next);
 *   - hold: with one snapshot held, overwrite random keys and print, after
 *     each total in --puts, the bytes it pins (snapshot_index_bytes) and the
 *     put rate, beside the put rate of the same puts with none held;
 *   - release: the time cellar_snapshot_release takes after the most puts.
 * One parseable line per figure ("snapcost keys=... what=... value=..."),
 * medians over the runs at the end.  Not installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"

#define MAX_RUNS 15
#define MAX_POINTS 8

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "cellar-snapshot-cost: %s: %s (%s)\n", what,
	        cellar_strerror(rc), cellar_errmsg());
	exit(1);
}

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void put_key(cellar_db *db, uint64_t i, uint64_t ver)
{
	char k[24], v[24];
	int rc;

	/* 16 bytes each: the numbers stay below 10^15 */
	snprintf(k, sizeof k, "k%015llu", (unsigned long long)(i % 1000000000000000ull));
	snprintf(v, sizeof v, "v%015llu", (unsigned long long)(ver % 1000000000000000ull));
	if ((rc = cellar_put(db, k, 16, v, 16)) < 0)
		die("put", rc);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return v[n / 2];
}

/* Overwrite puts random keys; the rate in puts/s. */
static double overwrite(cellar_db *db, uint64_t keys, uint64_t puts,
                        uint64_t *seed)
{
	double t0 = now();

	for (uint64_t j = 0; j < puts; j++)
		put_key(db, rng(seed) % keys, j);
	return (double)puts / (now() - t0);
}

int main(int argc, char **argv)
{
	uint64_t keys = 1000000, points[MAX_POINTS] = { 10000, 100000, 1000000 };
	int npoints = 3, runs = 3;
	const char *dir = NULL;
	double take[MAX_RUNS], rel[MAX_RUNS], pinned[MAX_POINTS][MAX_RUNS],
	       held_rate[MAX_POINTS][MAX_RUNS], free_rate[MAX_POINTS][MAX_RUNS];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			keys = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--puts") && i + 1 < argc) {
			char *p = argv[++i];
			for (npoints = 0; *p && npoints < MAX_POINTS; npoints++) {
				points[npoints] = strtoull(p, &p, 10);
				if (*p == ',')
					p++;
			}
		} else
			dir = argv[i];
	}
	if (!dir || runs < 1 || runs > MAX_RUNS || npoints < 1) {
		fprintf(stderr, "usage: cellar-snapshot-cost [-n KEYS] [--runs R] "
		        "[--puts P,...] DIR\n");
		return 2;
	}
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	cellar_db_stats st;
	uint64_t seed = 1;
	int rc;

	o.flags = CELLAR_CREATE;
	o.expected_keys = keys;
	if ((rc = cellar_open(&db, dir, &o)) < 0)
		die("open", rc);
	for (uint64_t i = 0; i < keys; i++)
		put_key(db, i, 0);
	if ((rc = cellar_sync(db)) < 0)
		die("sync", rc);
	for (int r = 0; r < runs; r++) {
		double t[101];
		for (int j = 0; j < 101; j++) {
			cellar_snapshot *s;
			double t0 = now();
			if ((rc = cellar_snapshot_new(db, &s)) < 0)
				die("snapshot", rc);
			t[j] = now() - t0;
			cellar_snapshot_release(s);
		}
		take[r] = median(t, 101);
		/* The same puts with no snapshot held, then with one. */
		uint64_t done = 0, s0 = seed;
		for (int p = 0; p < npoints; p++) {
			free_rate[p][r] = overwrite(db, keys, points[p] - done, &seed);
			done = points[p];
		}
		cellar_sync(db); /* a checkpoint: its chunks are not the snapshot's */
		cellar_snapshot *s;
		if ((rc = cellar_snapshot_new(db, &s)) < 0)
			die("snapshot", rc);
		seed = s0;
		done = 0;
		for (int p = 0; p < npoints; p++) {
			held_rate[p][r] = overwrite(db, keys, points[p] - done, &seed);
			done = points[p];
			if ((rc = cellar_stats_sized(db, &st, sizeof st)) < 0)
				die("stats", rc);
			pinned[p][r] = (double)st.snapshot_index_bytes;
		}
		double t0 = now();
		cellar_snapshot_release(s);
		rel[r] = now() - t0;
		printf("snapcost keys=%llu run=%d take_us=%.1f release_us=%.1f\n",
		       (unsigned long long)keys, r, take[r] * 1e6, rel[r] * 1e6);
	}
	if ((rc = cellar_stats_sized(db, &st, sizeof st)) < 0)
		die("stats", rc);
	printf("snapcost keys=%llu index_bytes=%llu buckets=%llu\n",
	       (unsigned long long)keys, (unsigned long long)st.index_bytes,
	       (unsigned long long)st.buckets);
	printf("snapcost keys=%llu what=take_us median=%.1f\n",
	       (unsigned long long)keys, median(take, runs) * 1e6);
	printf("snapcost keys=%llu what=release_us median=%.1f\n",
	       (unsigned long long)keys, median(rel, runs) * 1e6);
	for (int p = 0; p < npoints; p++)
		printf("snapcost keys=%llu puts=%llu pinned_bytes=%.0f "
		       "puts_per_s_held=%.0f puts_per_s_none=%.0f\n",
		       (unsigned long long)keys, (unsigned long long)points[p],
		       median(pinned[p], runs), median(held_rate[p], runs),
		       median(free_rate[p], runs));
	cellar_close(db);
	return 0;
}

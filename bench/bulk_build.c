/*
 * bulk_build.c - cellar-bulk-build: time one cellar_builder run of N
 * records (16-byte keys, 100-byte values, as cellar-bench makes them: the
 * first 8 bytes a bijection of the index) into DIR, for sizes where
 * cellar-bench's other phases would take too long (100M keys).
 *
 *   cellar-bulk-build DIR N [BUDGET_MIB]
 *
 * Prints the add and finish times and the process's peak RSS (VmHWM).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cellar.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static long vm_hwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	cellar_build_options o = CELLAR_BUILD_OPTIONS_INIT;
	unsigned char key[16], val[100];
	cellar_builder *b;
	double t0, t1, t2;
	uint64_t n;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: cellar-bulk-build DIR N [BUDGET_MIB]\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 10);
	if (argc > 3)
		o.memory_budget = strtoull(argv[3], NULL, 10) << 20;
	t0 = now();
	if ((rc = cellar_builder_open(&b, argv[1], &o)) != CELLAR_OK) {
		fprintf(stderr, "cellar-bulk-build: %s\n", cellar_errmsg());
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t h = mix64(i), v = mix64(~i);
		memcpy(key, &h, 8);
		memcpy(key + 8, &v, 8);
		for (int j = 0; j < 100; j += 8)
			memcpy(val + j, &v, 100 - j < 8 ? 100 - j : 8);
		if ((rc = cellar_builder_add(b, key, 16, val, 100)) != CELLAR_OK) {
			fprintf(stderr, "cellar-bulk-build: add: %s\n", cellar_errmsg());
			cellar_builder_abort(b);
			return 1;
		}
	}
	t1 = now();
	rc = cellar_builder_finish(b);
	t2 = now();
	if (rc != CELLAR_OK)
		fprintf(stderr, "cellar-bulk-build: finish: %s\n", cellar_errmsg());
	cellar_builder_abort(b);
	printf("bulk-build n=%" PRIu64 " add_seconds=%.2f finish_seconds=%.2f "
	       "seconds=%.2f keys_per_sec=%.0f peak_rss_kb=%ld\n", n, t1 - t0,
	       t2 - t1, t2 - t0, (double)n / (t2 - t0), vm_hwm_kb());
	return rc == CELLAR_OK ? 0 : 1;
}

/* common.c - see common.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

const char *tc_fs_name(void)
{
	const char *s = getenv("CELLAR_TEST_FS");
	return s && *s ? s : "mem";
}

cellar_fs *tc_fs_new_named(const char *name)
{
	cellar_fs *fs = NULL;
	int rc;

	if (strcmp(name, "mem") == 0)
		rc = cellar_fs_mem_new(&fs);
	else if (strcmp(name, "posix") == 0)
		rc = cellar_fs_posix_new(&fs);
	else if (strcmp(name, "mmap") == 0)
		rc = cellar_fs_mmap_new(&fs);
	else
		cr_assert_fail("unknown CELLAR_TEST_FS '%s'", name);
	cr_assert_eq(rc, CELLAR_OK, "creating the %s file system", name);
	return fs;
}

cellar_fs *tc_fs_new(void)
{
	return tc_fs_new_named(tc_fs_name());
}

char *tc_dir_new(void)
{
	static unsigned counter;
	char *out = malloc(4096);

	cr_assert(out);
	if (strcmp(tc_fs_name(), "mem") == 0) {
		snprintf(out, 4096, "/store%u", ++counter);
		return out;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(out, 4096, "%s/cellar-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert(mkdtemp(out), "mkdtemp");
	strcat(out, "/store");
	return out;
}

void tc_dir_free(char *dir)
{
	if (!dir)
		return;
	if (strcmp(tc_fs_name(), "mem") != 0) {
		char *slash = strrchr(dir, '/');
		*slash = '\0';
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	free(dir);
}

double tc_stress_seconds(void)
{
	const char *s = getenv("CELLAR_STRESS_SECONDS");
	double v = s ? atof(s) : 0;
	return v > 0 ? v : 2.0;
}

uint64_t tc_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

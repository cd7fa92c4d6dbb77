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

void tc_store_init(tc_store *s)
{
	cellar_options init = CELLAR_OPTIONS_INIT;

	s->fs = tc_fs_new();
	s->dir = tc_dir_new();
	s->db = NULL;
	s->o = init;
	s->o.fs = s->fs;
	s->o.flags = CELLAR_CREATE;
}

void tc_store_open(tc_store *s)
{
	s->db = NULL;
	OK(cellar_open(&s->db, s->dir, &s->o));
	cr_assert_not_null(s->db);
}

void tc_store_new(tc_store *s, uint64_t max_segment_size)
{
	tc_store_init(s);
	s->o.max_segment_size = max_segment_size;
	tc_store_open(s);
}

void tc_store_close(tc_store *s)
{
	OK(cellar_close(s->db));
	s->db = NULL;
}

void tc_store_reopen(tc_store *s)
{
	tc_store_close(s);
	tc_store_open(s);
}

void tc_store_free(tc_store *s)
{
	if (s->db)
		OK(cellar_close(s->db));
	s->db = NULL;
	cellar_fs_free(s->fs);
	tc_dir_free(s->dir);
}

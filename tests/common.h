/*
 * common.h - helpers shared by the test suites.
 *
 * Database-level suites run once per file system: meson sets CELLAR_TEST_FS
 * to mem, posix or mmap for each registration (default: mem).
 */
#ifndef CELLAR_TEST_COMMON_H
#define CELLAR_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "cellar.h"
#include "cellar_fs.h"

/** Name of the file system under test: "mem", "posix" or "mmap". */
const char *tc_fs_name(void);

/** A new file system of the kind under test; the test fails if it can't. */
cellar_fs *tc_fs_new(void);

/** A new file system of the named kind. */
cellar_fs *tc_fs_new_named(const char *name);

/**
 * A path for a new store that does not exist yet: a fresh temporary
 * directory's child for posix/mmap, a unique absolute path for mem.
 * Free with tc_dir_free(), which also removes it from disk.
 */
char *tc_dir_new(void);
void tc_dir_free(char *dir);

/** Stress-test duration from CELLAR_STRESS_SECONDS (default 2). */
double tc_stress_seconds(void);

/** splitmix64: a tiny deterministic PRNG for test data. */
uint64_t tc_rand(uint64_t *state);

#endif

/*
 * common.h - helpers shared by the test suites.
 *
 * Database-level suites run once per file system: meson sets CELLAR_TEST_FS
 * to mem, posix or mmap for each registration (default: mem).  OK, ERR and
 * the tc_store helpers assert with Criterion: include it before this.
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

/* Assert that call returns CELLAR_OK, naming the error if not. */
#define OK(call)                                                             \
	do {                                                                 \
		int rc_ = (call);                                            \
		cr_assert_eq(rc_, CELLAR_OK, "%s: %s (%s)", #call,           \
		             cellar_strerror(rc_), cellar_errmsg());         \
	} while (0)

/* Assert that call returns the error code want. */
#define ERR(want, call)                                                      \
	do {                                                                 \
		int rc_ = (call);                                            \
		cr_assert_eq(rc_, (want), "%s: want %s, got %s (%s)", #call, \
		             cellar_strerror(want), cellar_strerror(rc_),    \
		             cellar_errmsg());                               \
	} while (0)

/* One store under test: its file system, directory, options and handle. */
typedef struct tc_store {
	cellar_fs *fs;
	char *dir;
	cellar_db *db;
	cellar_options o;
} tc_store;

/**
 * A file system of the kind under test and a path for a new store, with
 * default options and CELLAR_CREATE, not open: set more options in s->o,
 * then tc_store_open().
 */
void tc_store_init(tc_store *s);

/** Open s->dir with s->o; the test fails if it can't. */
void tc_store_open(tc_store *s);

/** tc_store_init() with max_segment_size (0: the default), then open. */
void tc_store_new(tc_store *s, uint64_t max_segment_size);

/** Close the handle (the test fails if that fails). */
void tc_store_close(tc_store *s);

/** Close and open again. */
void tc_store_reopen(tc_store *s);

/** Close the handle if open, free the file system and remove the store. */
void tc_store_free(tc_store *s);

/* One write_at seen by a write log. */
typedef struct tc_write {
	char path[256]; /* the file's path as it was opened */
	uint64_t off;
	size_t len;
} tc_write;

/*
 * A file system that passes every call on to base and logs each write_at,
 * for tests of write patterns.  Free it with tc_wlog_free() (not
 * cellar_fs_free()); base stays the caller's.
 */
typedef struct tc_wlog {
	cellar_fs fs; /* hand &log->fs to the code under test */
	cellar_fs *base;
	tc_write *w;
	size_t n, cap;
} tc_wlog;

tc_wlog *tc_wlog_new(cellar_fs *base);
void tc_wlog_free(tc_wlog *log);

#endif

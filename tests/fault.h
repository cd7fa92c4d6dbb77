/*
 * fault.h - a test-only file system that wraps another and misbehaves on
 * request: fails the nth operation of a kind (once, or from then on, like a
 * full disk), tears a write, "crashes" at the nth mutation (after which
 * every operation fails), and simulates a power cut on the wrapped file
 * system by putting every file back to its last synced state.
 *
 * Test-only: it lives in tests/, is never installed and is not part of the
 * library; tests/meson.build links it into the test suites.
 *
 * Durability model used by fault_fs_power_cut():
 * - A file's content and size are durable as of its last successful sync.
 * - A name (create, rename, remove of a file) is durable once the directory
 *   holding it has had a successful sync_dir; a rename touches two names.
 * - mkdir is durable at once.  Directory renames, exchange and rmdir (a
 *   build's publication) are counted as mutations (rename, rename, remove)
 *   and crash like the others, but a power cut does not undo them.
 * - Files that existed before the wrapper first touched them count as
 *   durable.  Only files are tracked: do not rename or remove directories
 *   through the wrapper.
 * The wrapper keeps this state in memory (a copy of a file's durable bytes
 * once it is changed or removed, plus every write since), which is fine for
 * test-sized data.  It assumes nobody changes the base file system behind
 * its back.
 */
#ifndef CELLAR_FAULT_H
#define CELLAR_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"

/** Kinds of operation, for counting and failing. */
typedef enum fault_op {
	FAULT_OPEN,
	FAULT_READ,
	FAULT_WRITE,
	FAULT_SIZE,
	FAULT_TRUNCATE,
	FAULT_SYNC,
	FAULT_MAP,
	FAULT_REMOVE,
	FAULT_RENAME,
	FAULT_LIST,
	FAULT_MKDIR,
	FAULT_SYNC_DIR,
	FAULT_LOCK,
	FAULT_NKINDS
} fault_op;

/**
 * Wrap base (not owned; it must outlive the wrapper).  cellar_fs_free()
 * frees the wrapper only.  map/unmap are offered when base has them.
 * @return CELLAR_OK, CELLAR_EINVAL, CELLAR_ENOMEM.
 */
int fault_fs_new(cellar_fs **out, cellar_fs *base);

/** Operations of kind seen so far, failed ones included. */
uint64_t fault_fs_count(cellar_fs *fs, fault_op kind);

/**
 * Operations seen so far that change durable state: write, truncate, sync,
 * remove, rename, mkdir, sync_dir, and open with CELLAR_FS_CREATE (whether
 * or not the file existed), failed ones included.
 */
uint64_t fault_fs_mutations(cellar_fs *fs);

/**
 * Make the nth operation of kind (1-based, counted from the wrapper's
 * creation, so compare with fault_fs_count()) fail with err (usually
 * CELLAR_EIO or CELLAR_ENOSPC) without doing anything.  With persistent, it
 * and every later operation of that kind fail.  nth 0 clears the fault of
 * that kind.  One fault per kind; a new call replaces the old one.
 */
void fault_fs_fail(cellar_fs *fs, fault_op kind, uint64_t nth, int err,
                   int persistent);

/**
 * Make the nth write_at write only its first keep bytes (clamped to len-1)
 * and return CELLAR_EIO.  nth 0 clears.
 */
void fault_fs_tear(cellar_fs *fs, uint64_t nth_write, size_t keep);

/**
 * Crash at the nth mutation (see fault_fs_mutations(); 1-based, counted from
 * creation; 0 clears): if it is a write_at, a prefix of it, of a length in
 * [0, len) drawn from a generator seeded with nth, lands; any other
 * mutation does not happen.  That operation and every later one of every
 * kind then fail with CELLAR_EIO ("the machine is off").  close, unmap and
 * unlock still release what they hold and return CELLAR_OK.
 */
void fault_fs_crash_at(cellar_fs *fs, uint64_t nth_mutation);

/**
 * Give the file system a capacity, like a small disk: a write_at that
 * would take the bytes of the files known to the wrapper (as the base
 * holds them now) past capacity writes only the part that fits and fails
 * with CELLAR_ENOSPC (a size grows by what is written past it; removing
 * or truncating a file frees its bytes).  0 (the default) = no limit.
 * Mutations are counted and crash as usual.
 */
void fault_fs_set_capacity(cellar_fs *fs, uint64_t capacity);

/** 1 once a crash set by fault_fs_crash_at() has happened, else 0. */
int fault_fs_crashed(cellar_fs *fs);

/**
 * Simulate a power cut on the base file system now.  Every file goes back
 * to its content and size at its last successful sync; with seed != 0, a
 * random (determined by seed) choice of the writes and truncates since then
 * is kept, in order, each whole, torn at a 512-byte boundary, or dropped.
 * Names not made durable by sync_dir are undone: such files are un-created,
 * un-renamed or un-removed (a removed file comes back with its durable
 * content).  Afterwards the wrapper is healthy: the crash state and every
 * fault are cleared; counts go on.
 * @return CELLAR_OK; CELLAR_EINVAL if a file (or lock) is open or a mapping
 *   live; or an error of the base file system while rewriting files.
 */
int fault_fs_power_cut(cellar_fs *fs, uint64_t seed);

#endif

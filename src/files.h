/*
 * files.h - the store's files: their names on disk (defined once, here),
 * path building, the atomic replacement of a small file, and the removal
 * of segment files.
 *
 *   <dir>/meta             identity of the store: format version, hash seed
 *   <dir>/LOCK             the writer's OS lock
 *   <dir>/index            the last index checkpoint
 *   <dir>/index.tmp        a checkpoint being written (removed on open)
 *   <dir>/<16 hex>.seg     segments, named by sequence number
 *   <dir>/reserve          zeros: disk space held back for a full disk
 *                          (ballast.h; only with cellar_options.reserve_bytes)
 *   <dir>.build-<16 hex>/  a bulk build in progress (builder.c), beside
 *                          the store; inside it, besides a store's files,
 *                          the builder's scratch files build.pairs,
 *                          build.ovf, build.part.<n>
 *
 * Owns: names and paths, and the sequences of file-system calls that make a
 * replacement or a removal durable.  Must not: know what is inside a file
 * (meta.c, index_file.c and segment.c do), or call the OS other than
 * through the cellar_fs vtable.
 */
#ifndef CELLAR_FILES_H
#define CELLAR_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"

#define FILE_META "meta"
#define FILE_META_TMP "meta.tmp"
#define FILE_LOCK "LOCK"
#define FILE_INDEX "index"
#define FILE_INDEX_TMP "index.tmp"
#define FILE_SEG_SUFFIX ".seg"
#define FILE_RESERVE "reserve"
/* A build directory: the target's path, this, 16 hex digits. */
#define FILE_BUILD_INFIX ".build-"
#define FILE_BUILD_PAIRS "build.pairs"
#define FILE_BUILD_OVF "build.ovf"
#define FILE_BUILD_PART_PREFIX "build.part."
/* "%016llx.seg": the sequence number in fixed-width hex sorts in log order. */
#define FILE_SEG_NAME_LEN 20
/* Room for any path the library builds (files_path refuses longer ones). */
#define FILE_PATH_MAX 4096

/*
 * Bulk writes go out in 2 MiB pieces at 2 MiB-aligned file offsets.  Linux
 * (ext4 and xfs since 6.x) then caches each piece as one large folio, and a
 * mapping of the file maps it with one huge-page TLB entry instead of 512
 * small ones: a random lookup then takes no TLB miss to reach the index or
 * a record.  It is only a write pattern; the format does not depend on it.
 */
#define FILE_WRITE_UNIT (2u << 20)

/** The on-disk format version this build writes and reads. */
#define FORMAT_VERSION 1

/** Build "<dir>/<name>" into out (size cap); CELLAR_EINVAL if too long. */
int files_path(char *out, size_t cap, const char *dir, const char *name);

/** The file name of segment seq into out (FILE_SEG_NAME_LEN + 1 bytes). */
void files_segment_name(char *out, uint64_t seq);

/** "<dir>/<segment seq's name>" into out; CELLAR_EINVAL if too long. */
int files_segment_path(char *out, size_t cap, const char *dir, uint64_t seq);

/**
 * Is name a segment file's name?  *is_seg receives 1 and *seq its sequence
 * number if so, 0 if not.  Always CELLAR_OK.
 */
int files_parse_segment_name(const char *name, int *is_seg, uint64_t *seq);

/**
 * Writes a replacement file's whole content into f (opened empty, for
 * writing); CELLAR_OK or an error, which abandons the replacement.
 */
typedef int (*files_write_fn)(void *ctx, cellar_fs *fs, cellar_file *f);

/**
 * Replace <dir>/<name> atomically and durably: write <dir>/<tmp_name>
 * through write, sync it, close it, rename it over name, sync dir.  After a
 * crash at any point the old file or the new one is there, whole (a stale
 * tmp_name may be left; its owner removes it on open).  On failure the old
 * file is untouched.
 */
int files_replace(cellar_fs *fs, const char *dir, const char *tmp_name,
                  const char *name, files_write_fn write, void *ctx);

/**
 * Remove the n segment files named by seqs from dir, then sync dir once.
 * Stops at the first failure and returns it: what is left is removed by a
 * later open's recovery, which recognises compacted or empty leftovers.
 */
int files_remove_segments(cellar_fs *fs, const char *dir, const uint64_t *seqs,
                          size_t n);

#endif

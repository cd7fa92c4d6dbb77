/*
 * fuzz.h - what the fuzz targets share: the libFuzzer entry point and small
 * helpers to put fuzzer bytes on an in-memory file system.
 *
 * Every target defines LLVMFuzzerTestOneInput().  Built with
 * -Dfuzzing=libfuzzer it is linked with libFuzzer's main(); built with
 * -Dfuzzing=replay (the default) with replay.c, which runs a corpus through
 * it as an ordinary test.  A target calls abort() when it sees the engine
 * break a promise (a wrong answer, an impossible error code), so both
 * drivers report that as a crash.
 */
#ifndef CELLAR_FUZZ_H
#define CELLAR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/** Print "fuzz: <what>" to stderr and abort(): a broken promise. */
void fz_fail(const char *what, int rc);

/** abort() with what unless cond holds. */
#define FZ_CHECK(cond, what, rc)                                              \
	do {                                                                  \
		if (!(cond))                                                  \
			fz_fail(what, rc);                                    \
	} while (0)

/** A new mem file system, with directory dir unless NULL (abort on failure). */
cellar_fs *fz_mem_fs(const char *dir);

/**
 * A view of fs without map/unmap, so the engine takes its read_at paths
 * (as with cellar_fs_posix_new()).  *out shares fs's state: free only fs.
 */
void fz_nomap(cellar_fs *fs, cellar_fs *out);

/** Create or replace path with len bytes (abort on failure). */
void fz_put_file(cellar_fs *fs, const char *path, const void *data,
                 size_t len);

/**
 * Read path whole into a malloc'd buffer; NULL (and *len 0) if it does not
 * exist.  Free with free().
 */
uint8_t *fz_get_file(cellar_fs *fs, const char *path, size_t *len);

/**
 * Checksum fix-ups, so that mutated inputs get past the checksums and reach
 * the code behind them.  Each is a no-op on bytes too short to hold the
 * field it fixes.
 */
void fz_fix_meta(uint8_t *p, size_t len);
void fz_fix_segment_header(uint8_t *p, size_t len);
/** Walk the records after the segment header and seal each one. */
void fz_fix_segment_records(uint8_t *p, size_t len);
/**
 * Recompute the bucket chunk sums and the checksum of the tail (chunk sums
 * and segment table), if the size fits the header; then fix the header
 * checksum with fz_fix_index_header().
 */
void fz_fix_index_chunks(uint8_t *p, size_t len);
void fz_fix_index_header(uint8_t *p, size_t len);


/** A valid meta file with this seed. */
void fz_meta_bytes(uint8_t out[64], uint64_t seed);

/** splitmix64. */
uint64_t fz_rand(uint64_t *state);

#endif

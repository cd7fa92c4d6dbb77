/*
 * fuzz_meta.c - the meta codec on arbitrary bytes.
 *
 * meta_decode() runs on the input as it is, then (when the input is long
 * enough) on a copy whose checksum has been fixed, so that the version
 * checks behind the checksum are reached too; a meta it accepts must encode
 * and decode back to itself.  meta_read() then reads the input as the file
 * <dir>/meta of a mem file system.
 */
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "files.h"
#include "fuzz.h"
#include "meta.h"

static void decode(const uint8_t *p, size_t len)
{
	meta m, m2;
	uint8_t enc[META_SIZE];
	int rc = meta_decode(p, len, &m);

	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION,
	         "meta_decode: unexpected error code", rc);
	if (rc != CELLAR_OK)
		return;
	FZ_CHECK(len >= META_SIZE, "meta_decode accepted a short meta", rc);
	FZ_CHECK(m.version >= 1 && m.version <= FORMAT_VERSION,
	         "meta_decode accepted a bad version", rc);
	meta_encode(&m, enc);
	rc = meta_decode(enc, sizeof enc, &m2);
	FZ_CHECK(rc == CELLAR_OK && m2.version == m.version &&
	             m2.seed == m.seed && m2.created == m.created,
	         "meta does not round-trip", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cellar_fs *fs;
	meta m;
	int rc;

	decode(data, size);
	if (size >= META_SIZE) {
		uint8_t *copy = malloc(size);
		if (!copy)
			return 0;
		memcpy(copy, data, size);
		fz_fix_meta(copy, size);
		decode(copy, size);
		free(copy);
	}

	fs = fz_mem_fs("/db");
	fz_put_file(fs, "/db/" FILE_META, data, size);
	rc = meta_read(fs, "/db", &m);
	FZ_CHECK(rc == CELLAR_OK || rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION,
	         "meta_read: unexpected error code", rc);
	FZ_CHECK(rc != CELLAR_OK || size == META_SIZE,
	         "meta_read accepted a file of the wrong size", rc);
	cellar_fs_free(fs);
	return 0;
}

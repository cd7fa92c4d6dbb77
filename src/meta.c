/*
 * meta.c - the meta file codec, and reading and writing the file (see
 * meta.h).  Owns the meta file's bytes; must not know any other file.
 */
#include <string.h>
#include <time.h>

#include "endian.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "meta.h"

static const char meta_magic[8] = { 'C', 'E', 'L', 'L', 'A', 'R', 'M', 'T' };

void meta_encode(const meta *m, uint8_t out[META_SIZE])
{
	memset(out, 0, META_SIZE);
	memcpy(out, meta_magic, 8);
	le32_store(out + 8, m->version);
	le64_store(out + 16, m->seed);
	le64_store(out + 24, m->created);
	le64_store(out + 32, m->id);
	le64_store(out + 56, hash_checksum(out, 56));
}

int meta_decode(const uint8_t *p, uint64_t len, meta *m)
{
	if (len < META_SIZE || memcmp(p, meta_magic, 8) != 0)
		return cellar__error(CELLAR_ECORRUPT, "meta: not a cellar store");
	if (le64_load(p + 56) != hash_checksum(p, 56))
		return cellar__error(CELLAR_ECORRUPT, "meta: bad checksum");
	m->version = le32_load(p + 8);
	if (m->version > FORMAT_VERSION)
		return cellar__error(CELLAR_EVERSION,
		                     "meta: format version %u, this build reads %u",
		                     (unsigned)m->version, FORMAT_VERSION);
	if (m->version == 0)
		return cellar__error(CELLAR_ECORRUPT, "meta: format version 0");
	m->seed = le64_load(p + 16);
	m->created = le64_load(p + 24);
	m->id = le64_load(p + 32);
	return CELLAR_OK;
}

uint64_t meta_random_seed(const void *salt)
{
	struct timespec ts = { 0, 0 };
	uint64_t mix[4];

	timespec_get(&ts, TIME_UTC);
	mix[0] = (uint64_t)ts.tv_sec;
	mix[1] = (uint64_t)ts.tv_nsec;
	mix[2] = (uint64_t)(uintptr_t)salt;
	mix[3] = (uint64_t)(uintptr_t)&ts;
	uint64_t s = hash_checksum(mix, sizeof mix);
	return s ? s : 1;
}

void meta_init(meta *m, uint64_t seed)
{
	m->version = FORMAT_VERSION;
	m->seed = seed ? seed : meta_random_seed(m);
	m->created = (uint64_t)time(NULL);
	/* Another draw: the clock has moved on since the seed's. */
	m->id = meta_random_seed(&m->id) ^ m->seed;
	if (!m->id)
		m->id = 1;
}

int meta_same_store(const meta *a, const meta *b)
{
	if (a->id || b->id)
		return a->id == b->id;
	return a->seed == b->seed && a->created == b->created;
}

int meta_read(cellar_fs *fs, const char *dir, meta *m)
{
	char path[FILE_PATH_MAX];
	uint8_t buf[META_SIZE];
	cellar_file *f = NULL;
	uint64_t size;
	size_t got = 0;
	int rc;

	if ((rc = files_path(path, sizeof path, dir, FILE_META)) < 0)
		return rc;
	if ((rc = fs->open(fs, path, CELLAR_FS_READ, &f)) < 0)
		return rc;
	if ((rc = fs->size(fs, f, &size)) < 0)
		goto done;
	if (size != META_SIZE) {
		rc = cellar__error(CELLAR_ECORRUPT,
		                   "meta: size %llu, expected %d",
		                   (unsigned long long)size, META_SIZE);
		goto done;
	}
	if ((rc = fs->read_at(fs, f, 0, buf, META_SIZE, &got)) < 0)
		goto done;
	rc = meta_decode(buf, got, m);
done:
	fs->close(fs, f);
	return rc;
}

static int write_encoded(void *ctx, cellar_fs *fs, cellar_file *f)
{
	return fs->write_at(fs, f, 0, ctx, META_SIZE);
}

int meta_write(cellar_fs *fs, const char *dir, const meta *m)
{
	uint8_t buf[META_SIZE];

	meta_encode(m, buf);
	return files_replace(fs, dir, FILE_META_TMP, FILE_META, write_encoded, buf);
}

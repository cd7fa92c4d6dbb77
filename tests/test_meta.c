/*
 * test_meta.c - the meta file (src/meta.h): its codec, its atomic write and
 * read on the in-memory file system, and files_path.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "endian.h"
#include "files.h"
#include "hash.h"
#include "meta.h"

static cellar_fs *fs;

static void setup(void)
{
	OK(cellar_fs_mem_new(&fs));
	OK(fs->mkdir(fs, "/s"));
}

static void teardown(void)
{
	cellar_fs_free(fs);
	fs = NULL;
}

static void write_file(const char *path, const void *p, size_t len)
{
	cellar_file *f;

	OK(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f));
	OK(fs->truncate(fs, f, 0));
	if (len)
		OK(fs->write_at(fs, f, 0, p, len));
	OK(fs->close(fs, f));
}

static int count_entry(const char *name, void *ctx)
{
	char *names = ctx;

	strcat(names, name);
	strcat(names, ";");
	return 0;
}

static const meta sample = { FORMAT_VERSION, 0x0123456789abcdefull,
	                     1700000000ull, 0xfedcba9876543210ull };

Test(meta, encode_layout_is_byte_exact)
{
	uint8_t b[META_SIZE];

	memset(b, 0xee, sizeof b);
	meta_encode(&sample, b);
	cr_assert_arr_eq(b, "CELLARMT", 8);
	cr_assert_eq(le32_load(b + 8), FORMAT_VERSION);
	cr_assert_eq(le32_load(b + 12), 0, "flags");
	cr_assert_eq(b[16], 0xef, "seed little-endian");
	cr_assert_eq(b[23], 0x01);
	cr_assert_eq(le64_load(b + 16), sample.seed);
	cr_assert_eq(le64_load(b + 24), sample.created);
	cr_assert_eq(le64_load(b + 32), sample.id, "store id");
	for (int i = 40; i < 56; i++)
		cr_assert_eq(b[i], 0, "reserved byte %d", i);
	cr_assert_eq(le64_load(b + 56), XXH3_64bits(b, 56));
}

Test(meta, decode_round_trip)
{
	uint8_t b[META_SIZE];
	meta m;

	meta_encode(&sample, b);
	memset(&m, 0, sizeof m);
	OK(meta_decode(b, sizeof b, &m));
	cr_assert_eq(m.version, FORMAT_VERSION);
	cr_assert_eq(m.seed, sample.seed);
	cr_assert_eq(m.created, sample.created);
	cr_assert_eq(m.id, sample.id);

	/* Extremes survive too. */
	meta e = { FORMAT_VERSION, UINT64_MAX, 0, 0 };
	meta_encode(&e, b);
	OK(meta_decode(b, sizeof b, &m));
	cr_assert_eq(m.seed, UINT64_MAX);
	cr_assert_eq(m.created, 0);
}

Test(meta, decode_rejects_bad_magic)
{
	uint8_t b[META_SIZE];
	meta m;

	for (int i = 0; i < 8; i++) {
		meta_encode(&sample, b);
		b[i] ^= 0x20;
		/* re-seal so only the magic is wrong */
		le64_store(b + 56, XXH3_64bits(b, 56));
		cr_assert_eq(meta_decode(b, sizeof b, &m), CELLAR_ECORRUPT, "byte %d", i);
	}
}

Test(meta, decode_rejects_any_flipped_byte)
{
	uint8_t b[META_SIZE];
	meta m;

	for (int i = 0; i < META_SIZE; i++) {
		meta_encode(&sample, b);
		b[i] ^= 0x01;
		cr_assert_eq(meta_decode(b, sizeof b, &m), CELLAR_ECORRUPT, "byte %d", i);
	}
}

Test(meta, decode_rejects_short_input)
{
	uint8_t b[META_SIZE];
	meta m;

	meta_encode(&sample, b);
	for (uint64_t len = 0; len < META_SIZE; len++)
		cr_assert_eq(meta_decode(b, len, &m), CELLAR_ECORRUPT, "len %llu",
		             (unsigned long long)len);
	OK(meta_decode(b, META_SIZE, &m));
}

Test(meta, decode_reports_newer_version)
{
	uint8_t b[META_SIZE];
	meta m, newer = sample;

	newer.version = FORMAT_VERSION + 1;
	meta_encode(&newer, b);
	cr_assert_eq(meta_decode(b, sizeof b, &m), CELLAR_EVERSION);
	newer.version = UINT32_MAX;
	meta_encode(&newer, b);
	cr_assert_eq(meta_decode(b, sizeof b, &m), CELLAR_EVERSION);
	cr_assert_neq(strstr(cellar_errmsg(), "version"), NULL, "%s",
	              cellar_errmsg());
}

Test(meta, decode_rejects_version_zero)
{
	uint8_t b[META_SIZE];
	meta m, zero = sample;

	zero.version = 0;
	meta_encode(&zero, b);
	cr_assert_eq(meta_decode(b, sizeof b, &m), CELLAR_ECORRUPT);
}

Test(meta, write_then_read_round_trip, .init = setup, .fini = teardown)
{
	meta m;

	OK(meta_write(fs, "/s", &sample));
	memset(&m, 0, sizeof m);
	OK(meta_read(fs, "/s", &m));
	cr_assert_eq(m.version, sample.version);
	cr_assert_eq(m.seed, sample.seed);
	cr_assert_eq(m.created, sample.created);

	/* The file holds exactly the encoding. */
	cellar_file *f;
	uint8_t want[META_SIZE], got[META_SIZE + 8];
	uint64_t size;
	size_t n;
	meta_encode(&sample, want);
	OK(fs->open(fs, "/s/meta", CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	cr_assert_eq(size, META_SIZE);
	OK(fs->read_at(fs, f, 0, got, sizeof got, &n));
	cr_assert_eq(n, META_SIZE);
	cr_assert_arr_eq(got, want, META_SIZE);
	OK(fs->close(fs, f));
}

Test(meta, write_leaves_no_temporary_file, .init = setup, .fini = teardown)
{
	char names[256] = "";
	cellar_file *f = NULL;

	OK(meta_write(fs, "/s", &sample));
	OK(fs->list(fs, "/s", count_entry, names));
	cr_assert_str_eq(names, "meta;");
	cr_assert_eq(fs->open(fs, "/s/" FILE_META_TMP, CELLAR_FS_READ, &f),
	             CELLAR_ENOENT);
}

Test(meta, write_replaces_existing_and_stale_tmp, .init = setup,
     .fini = teardown)
{
	meta m, other = { FORMAT_VERSION, 99, 12345, 7 };
	char names[256] = "";

	OK(meta_write(fs, "/s", &sample));
	write_file("/s/meta.tmp", "junk that is longer than sixty-four bytes ...."
	                          "...................................", 80);
	OK(meta_write(fs, "/s", &other));
	OK(meta_read(fs, "/s", &m));
	cr_assert_eq(m.seed, 99);
	cr_assert_eq(m.created, 12345);
	OK(fs->list(fs, "/s", count_entry, names));
	cr_assert_str_eq(names, "meta;");
}

Test(meta, read_missing_is_enoent, .init = setup, .fini = teardown)
{
	meta m;

	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_ENOENT);
	cr_assert_eq(meta_read(fs, "/nowhere", &m), CELLAR_ENOENT);
}

Test(meta, write_into_missing_directory_fails, .init = setup,
     .fini = teardown)
{
	cr_assert_eq(meta_write(fs, "/nowhere", &sample), CELLAR_ENOENT);
}

Test(meta, read_rejects_wrong_size_and_damage, .init = setup,
     .fini = teardown)
{
	uint8_t b[META_SIZE + 1];
	meta m;

	meta_encode(&sample, b);
	b[META_SIZE] = 0;
	write_file("/s/meta", b, META_SIZE + 1);
	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_ECORRUPT);
	write_file("/s/meta", b, META_SIZE - 1);
	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_ECORRUPT);
	write_file("/s/meta", b, 0);
	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_ECORRUPT);
	b[30] ^= 0x80;
	write_file("/s/meta", b, META_SIZE);
	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_ECORRUPT);
	b[30] ^= 0x80;
	write_file("/s/meta", b, META_SIZE);
	OK(meta_read(fs, "/s", &m));
	cr_assert_eq(m.seed, sample.seed);
}

Test(meta, read_reports_newer_version, .init = setup, .fini = teardown)
{
	uint8_t b[META_SIZE];
	meta m, newer = sample;

	newer.version = FORMAT_VERSION + 1;
	meta_encode(&newer, b);
	write_file("/s/meta", b, META_SIZE);
	cr_assert_eq(meta_read(fs, "/s", &m), CELLAR_EVERSION);
}

Test(meta, files_path_builds_dir_slash_name)
{
	char out[16];

	OK(files_path(out, sizeof out, "/a/b", "meta"));
	cr_assert_str_eq(out, "/a/b/meta");
	/* exactly fits: 15 characters and the terminator */
	OK(files_path(out, sizeof out, "/abcdefghi", "wxyz"));
	cr_assert_str_eq(out, "/abcdefghi/wxyz");
}

Test(meta, files_path_too_long_is_einval)
{
	char out[16];

	cr_assert_eq(files_path(out, sizeof out, "/abcdefghij", "wxyz"),
	             CELLAR_EINVAL);
	cr_assert_eq(files_path(out, 1, "", ""), CELLAR_EINVAL);

	char *dir = malloc(5000);
	char big[4096];
	meta m;
	cellar_fs *mfs;
	cr_assert_not_null(dir);
	memset(dir, 'd', 4999);
	dir[0] = '/';
	dir[4999] = '\0';
	cr_assert_eq(files_path(big, sizeof big, dir, "meta"), CELLAR_EINVAL);
	OK(cellar_fs_mem_new(&mfs));
	cr_assert_eq(meta_read(mfs, dir, &m), CELLAR_EINVAL);
	cr_assert_eq(meta_write(mfs, dir, &sample), CELLAR_EINVAL);
	cellar_fs_free(mfs);
	free(dir);
}

Test(meta, random_seeds_are_never_zero_and_differ)
{
	int salt_a = 1, salt_b = 2;
	uint64_t a = meta_random_seed(&salt_a), b = meta_random_seed(&salt_b);

	cr_assert_neq(a, 0);
	cr_assert_neq(b, 0);
	cr_assert_neq(a, b, "two seeds in a row are the same");
}

Test(meta, init_gives_each_store_its_own_id)
{
	meta a, b;

	meta_init(&a, 42);
	meta_init(&b, 42);
	cr_assert_eq(a.version, FORMAT_VERSION);
	cr_assert_eq(a.seed, 42, "the seed asked for");
	cr_assert_neq(a.id, 0);
	cr_assert_neq(a.id, b.id, "two stores, same seed: different ids");
	cr_assert(!meta_same_store(&a, &b));
	cr_assert(meta_same_store(&a, &a));
	meta_init(&a, 0);
	cr_assert_neq(a.seed, 0, "a random seed when none is asked for");
}

Test(meta, same_store_without_ids_compares_seed_and_time)
{
	meta a = { FORMAT_VERSION, 5, 100, 0 }, b = a;

	cr_assert(meta_same_store(&a, &b));
	b.created = 101;
	cr_assert(!meta_same_store(&a, &b));
	b = a;
	b.seed = 6;
	cr_assert(!meta_same_store(&a, &b));
	b = a;
	b.id = 9; /* one has an id, the other not: different stores */
	cr_assert(!meta_same_store(&a, &b));
}

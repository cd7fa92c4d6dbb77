/*
 * test_files.c - the store's files (src/files.h): segment names, atomic
 * replacement and segment-file removal, on the in-memory file system.
 * files_path is tested with meta in test_meta.c.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cellar.h"
#include "cellar_fs.h"
#include "common.h"
#include "files.h"

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

/* The whole content of path into buf (cap bytes); its length. */
static size_t read_all(const char *path, char *buf, size_t cap)
{
	cellar_file *f;
	uint64_t size;
	size_t got = 0;

	OK(fs->open(fs, path, CELLAR_FS_READ, &f));
	OK(fs->size(fs, f, &size));
	cr_assert_leq(size, cap);
	if (size)
		OK(fs->read_at(fs, f, 0, buf, (size_t)size, &got));
	OK(fs->close(fs, f));
	return got;
}

static int exists(const char *path)
{
	cellar_file *f;
	int rc = fs->open(fs, path, CELLAR_FS_READ, &f);

	if (rc == CELLAR_OK)
		fs->close(fs, f);
	cr_assert(rc == CELLAR_OK || rc == CELLAR_ENOENT, "open: %d", rc);
	return rc == CELLAR_OK;
}

static int write_text(void *ctx, cellar_fs *f_, cellar_file *f)
{
	return f_->write_at(f_, f, 0, ctx, strlen(ctx));
}

static int write_then_fail(void *ctx, cellar_fs *f_, cellar_file *f)
{
	int rc = f_->write_at(f_, f, 0, ctx, strlen(ctx));

	return rc < 0 ? rc : CELLAR_EIO;
}

Test(files, segment_name_round_trips)
{
	char name[FILE_SEG_NAME_LEN + 1];
	uint64_t seq = 0;
	int is_seg = 0;

	files_segment_name(name, 0x1234abcdull);
	cr_assert_str_eq(name, "000000001234abcd.seg");
	OK(files_parse_segment_name(name, &is_seg, &seq));
	cr_assert_eq(is_seg, 1);
	cr_assert_eq(seq, 0x1234abcdull);
	files_segment_name(name, UINT64_MAX);
	OK(files_parse_segment_name(name, &is_seg, &seq));
	cr_assert_eq(seq, UINT64_MAX);
}

Test(files, other_names_are_not_segments)
{
	const char *names[] = { "meta", "index", "LOCK", "0000000000000001.se",
	                        "000000000000001.seg", "000000000000000G.seg",
	                        "000000000000000A.seg", "0000000000000001.segx",
	                        "" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		int is_seg = 1;
		uint64_t seq = 7;
		OK(files_parse_segment_name(names[i], &is_seg, &seq));
		cr_assert_eq(is_seg, 0, "%s taken for a segment", names[i]);
		cr_assert_eq(seq, 7, "seq changed for %s", names[i]);
	}
}

Test(files, segment_path_joins_dir_and_name)
{
	char path[64];

	OK(files_segment_path(path, sizeof path, "/s", 2));
	cr_assert_str_eq(path, "/s/0000000000000002.seg");
	cr_assert_eq(files_segment_path(path, 10, "/s", 2), CELLAR_EINVAL);
}

Test(files, replace_creates_then_replaces, .init = setup, .fini = teardown)
{
	char buf[64];

	OK(files_replace(fs, "/s", "x.tmp", "x", write_text, "first"));
	cr_assert_eq(read_all("/s/x", buf, sizeof buf), 5);
	cr_assert_arr_eq(buf, "first", 5);
	OK(files_replace(fs, "/s", "x.tmp", "x", write_text, "2nd"));
	/* Truncated first: nothing of the longer old content is left. */
	cr_assert_eq(read_all("/s/x", buf, sizeof buf), 3);
	cr_assert_arr_eq(buf, "2nd", 3);
	cr_assert_not(exists("/s/x.tmp"));
}

Test(files, failed_write_leaves_the_old_file, .init = setup, .fini = teardown)
{
	char buf[64];

	OK(files_replace(fs, "/s", "x.tmp", "x", write_text, "old"));
	cr_assert_eq(files_replace(fs, "/s", "x.tmp", "x", write_then_fail, "new!"),
	             CELLAR_EIO);
	cr_assert_eq(read_all("/s/x", buf, sizeof buf), 3);
	cr_assert_arr_eq(buf, "old", 3);
}

Test(files, replace_in_a_missing_dir_fails, .init = setup, .fini = teardown)
{
	cr_assert_eq(files_replace(fs, "/none", "x.tmp", "x", write_text, "a"),
	             CELLAR_ENOENT);
}

Test(files, remove_segments_removes_each, .init = setup, .fini = teardown)
{
	uint64_t seqs[] = { 1, 3 };
	char path[64];

	for (uint64_t q = 1; q <= 3; q++) {
		OK(files_segment_path(path, sizeof path, "/s", q));
		OK(files_replace(fs, "/s", "t", path + 3, write_text, "x"));
	}
	OK(files_remove_segments(fs, "/s", seqs, 2));
	cr_assert_not(exists("/s/0000000000000001.seg"));
	cr_assert(exists("/s/0000000000000002.seg"));
	cr_assert_not(exists("/s/0000000000000003.seg"));
	OK(files_remove_segments(fs, "/s", NULL, 0));
	/* A file that is already gone is an error the caller sees. */
	cr_assert_eq(files_remove_segments(fs, "/s", seqs, 1), CELLAR_ENOENT);
}

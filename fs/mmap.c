/*
 * mmap.c - the default file system: posix.c's operations plus map/unmap
 * with mmap(PROT_READ, MAP_SHARED) and madvise() for the hint.
 *
 * A mapping may be longer than the file: pages past the end become readable
 * as the file grows (MAP_SHARED shares the page cache with pwrite), and
 * cellar never touches bytes past the size (that would raise SIGBUS).
 * map() of length 0 fails with CELLAR_EINVAL.
 *
 * Owns only the mappings; every other operation is posix.c's and must not
 * be copied here.  As in posix.c, errno goes through fs__errno(), cellar's
 * formats are unknown here, and nothing from src/ is included.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "error.h"
#include "fs_util.h"
#include "posix_impl.h"

static int mmap_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                    const void **out)
{
	struct posix_file *pf = posix_file_of(f);
	void *p;

	(void)fs;
	*out = NULL;
	if (len == 0 || len > SIZE_MAX || len > (uint64_t)INT64_MAX)
		return cellar__error(CELLAR_EINVAL, "map %s: bad length %llu",
		                     pf->path, (unsigned long long)len);
	p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, pf->fd, 0);
	if (p == MAP_FAILED)
		return fs__errno(errno, "map", pf->path);
	/* Advice only: a failure here changes nothing that matters. */
	(void)madvise(p, (size_t)len, hint == CELLAR_FS_MAP_SEQUENTIAL ?
	                                  MADV_SEQUENTIAL : MADV_RANDOM);
#ifdef MADV_HUGEPAGE
	/*
	 * A fault in a hot mapping reads the whole 2 MiB around it into one
	 * huge page-cache folio (Linux 6.x, file systems with large folios),
	 * mapped with one TLB entry.  Pages already cached keep their size:
	 * cellar writes its files in 2 MiB units so that they are huge too.
	 */
	if (hint == CELLAR_FS_MAP_HOT)
		(void)madvise(p, (size_t)len, MADV_HUGEPAGE);
#endif
	*out = p;
	return CELLAR_OK;
}

/* f is not used: a mapping outlives the file's close. */
static int mmap_unmap(cellar_fs *fs, cellar_file *f, const void *addr,
                      uint64_t len)
{
	(void)fs;
	(void)f;
	if (!addr || len == 0 || len > SIZE_MAX)
		return cellar__error(CELLAR_EINVAL, "unmap: bad mapping");
	if (munmap((void *)(uintptr_t)addr, (size_t)len) < 0)
		return fs__errno(errno, "unmap", "(mapping)");
	return CELLAR_OK;
}

int cellar_fs_mmap_new(cellar_fs **out)
{
	int rc;

	if (!out)
		return cellar__error(CELLAR_EINVAL, "cellar_fs_mmap_new: out is NULL");
	rc = fs__posix_alloc(out);
	if (rc != CELLAR_OK)
		return rc;
	(*out)->map = mmap_map;
	(*out)->unmap = mmap_unmap;
	return CELLAR_OK;
}

/*
 * mmap.c - the default file system: posix.c's operations plus map/unmap
 * with mmap(PROT_READ, MAP_SHARED) and madvise() for the hint; and the
 * memory calls on mappings and private copies that both POSIX tables use
 * (posix_impl.h): resident (mincore, through a temporary mapping for a file
 * cellar holds no copy of), lock_mem and unlock_mem (mlock, munlock).
 *
 * A mapping may be longer than the file: pages past the end become readable
 * as the file grows (MAP_SHARED shares the page cache with pwrite), and
 * cellar never touches bytes past the size (that would raise SIGBUS).
 * Every mapping is registered with the SIGBUS guard (sigbus.h), so a reader
 * survives another program cutting a mapped file: it reads zeros there.
 * map() of length 0 fails with CELLAR_EINVAL.
 *
 * Owns only the mappings and these memory calls; every other operation is posix.c's and must not
 * be copied here.  As in posix.c, errno goes through fs__errno(), cellar's
 * formats are unknown here, and nothing from src/ is included.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "fs_util.h"
#include "posix_impl.h"
#include "sigbus.h"

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
	switch (hint) {
	case CELLAR_FS_MAP_SEQUENTIAL:
		(void)madvise(p, (size_t)len, MADV_SEQUENTIAL);
		break;
	case CELLAR_FS_MAP_NORMAL:
		break; /* the kernel's default read-ahead */
	case CELLAR_FS_MAP_WILLNEED:
		/* Starts reading the file in; pages past its end are skipped. */
		(void)madvise(p, (size_t)len, MADV_WILLNEED);
		break;
	default: /* RANDOM, HOT, and hints of later versions */
		(void)madvise(p, (size_t)len, MADV_RANDOM);
		break;
	}
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
	/* Guarded: a reader survives another program cutting the file. */
	fs_sigbus_add(p, (size_t)len);
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
	fs_sigbus_remove(addr);
	if (munmap((void *)(uintptr_t)addr, (size_t)len) < 0)
		return fs__errno(errno, "unmap", "(mapping)");
	return CELLAR_OK;
}

/* ---- memory calls (posix_impl.h) ------------------------------------- */

static size_t page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	return ps > 0 ? (size_t)ps : 4096;
}

/* Resident bytes of [addr, addr + len), by mincore on the pages around it. */
static int count_resident(const char *path, const void *addr, uint64_t len,
                          uint64_t *bytes)
{
	enum { BATCH = 4096 }; /* pages per mincore call */
	const size_t ps = page_size();
	const uintptr_t lo = (uintptr_t)addr, hi = lo + (uintptr_t)len;
	uintptr_t page = lo & ~(uintptr_t)(ps - 1);
	unsigned char vec[BATCH];
	uint64_t n = 0;

	while (page < hi) {
		size_t pages = (size_t)((hi - page + ps - 1) / ps);
		if (pages > BATCH)
			pages = BATCH;
		if (mincore((void *)page, pages * ps, vec) < 0)
			return fs__errno(errno, "mincore", path);
		for (size_t i = 0; i < pages; i++, page += ps) {
			if (!(vec[i] & 1))
				continue;
			uintptr_t a = page < lo ? lo : page;
			uintptr_t b = page + ps > hi ? hi : page + ps;
			n += b - a;
		}
	}
	*bytes = n;
	return CELLAR_OK;
}

int fs__resident(cellar_fs *fs, cellar_file *f, const void *addr,
                 uint64_t len, uint64_t *bytes)
{
	struct posix_file *pf = posix_file_of(f);
	const char *path = pf ? pf->path : "(memory)";
	void *p;
	int rc;

	(void)fs;
	*bytes = 0;
	if (len == 0)
		return CELLAR_OK;
	if (len > SIZE_MAX || (!addr && !pf))
		return cellar__error(CELLAR_EINVAL, "resident %s: bad range", path);
	if (addr)
		return count_resident(path, addr, len, bytes);
	/*
	 * No copy of ours: map the file for a moment.  mincore looks at the
	 * page cache without reading anything in, so this costs one mapping
	 * and no I/O.
	 */
	p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, pf->fd, 0);
	if (p == MAP_FAILED)
		return fs__errno(errno, "resident", path);
	rc = count_resident(path, p, len, bytes);
	munmap(p, (size_t)len);
	return rc;
}

/* [addr, addr + len) widened to whole pages: what mlock works on. */
static void page_range(const void *addr, uint64_t len, void **start,
                       size_t *n)
{
	const size_t ps = page_size();
	uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
	uintptr_t hi = ((uintptr_t)addr + (uintptr_t)len + ps - 1) &
	               ~(uintptr_t)(ps - 1);

	*start = (void *)lo;
	*n = (size_t)(hi - lo);
}

int fs__lock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                 uint64_t len)
{
	struct posix_file *pf = posix_file_of(f);
	const char *path = pf ? pf->path : "(memory)";
	void *start;
	size_t n;

	(void)fs;
	if (!addr || len == 0 || len > SIZE_MAX)
		return cellar__error(CELLAR_EINVAL, "lock %s: bad range", path);
	page_range(addr, len, &start, &n);
	if (mlock(start, n) < 0)
		return fs__mlock_errno(errno, path, (uint64_t)n);
	return CELLAR_OK;
}

int fs__unlock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                   uint64_t len)
{
	struct posix_file *pf = posix_file_of(f);
	const char *path = pf ? pf->path : "(memory)";
	void *start;
	size_t n;

	(void)fs;
	if (!addr || len == 0 || len > SIZE_MAX)
		return cellar__error(CELLAR_EINVAL, "unlock %s: bad range", path);
	page_range(addr, len, &start, &n);
	if (munlock(start, n) < 0)
		return fs__errno(errno, "munlock", path);
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

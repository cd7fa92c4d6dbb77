/*
 * pagecache.c - the residency report, the index lock and the segment map
 * hint (see pagecache.h).
 *
 * It reads the index's checkpoint through the table's fields (map, map_len,
 * loaded, file: index_table.h) until index.h offers an accessor for them.
 * Every question goes to the file system: resident (mincore with the mmap
 * and posix file systems), lock_mem and unlock_mem (mlock, munlock).  This
 * file only decides which bytes to ask about and adds up the answers.  It
 * must not make system calls, change the index or the segments, or know a
 * record's bytes.
 */
#include <string.h>

#include "error.h"
#include "pagecache.h"

int pagecache_segment_hint(const cellar_fs *fs, unsigned access)
{
	switch (access) {
	case CELLAR_ACCESS_SEQUENTIAL:
		return CELLAR_FS_MAP_SEQUENTIAL;
	case CELLAR_ACCESS_NORMAL:
		return fs->version >= 2 ? CELLAR_FS_MAP_NORMAL
		                        : CELLAR_FS_MAP_RANDOM;
	case CELLAR_ACCESS_WILLNEED:
		return fs->version >= 2 ? CELLAR_FS_MAP_WILLNEED
		                        : CELLAR_FS_MAP_RANDOM;
	default: /* DEFAULT, RANDOM */
		return CELLAR_FS_MAP_RANDOM;
	}
}

/*
 * Where ix holds the index file's bytes, and how many: its mapping, or the
 * private copy read at open (whose length is the file's size).  *addr is
 * NULL when there is no index file.
 */
static int index_bytes(cellar_fs *fs, cellar_index *ix, const void **addr,
                       uint64_t *len)
{
	*addr = NULL;
	*len = 0;
	if (ix->map) {
		*addr = ix->map;
		*len = ix->map_len;
		return CELLAR_OK;
	}
	if (ix->loaded && ix->file) {
		*addr = ix->loaded;
		return fs->size(fs, ix->file, len);
	}
	return CELLAR_OK;
}

int pagecache_lock_index(pagecache *pc, cellar_fs *fs, cellar_index *ix)
{
	int (*lock)(cellar_fs *, cellar_file *, const void *, uint64_t) =
		PAGECACHE_FS_OP(fs, lock_mem);
	const void *addr;
	uint64_t len;
	int rc;

	memset(pc, 0, sizeof *pc);
	if (!lock || !PAGECACHE_FS_OP(fs, unlock_mem))
		return cellar__error(CELLAR_EINVAL, "CELLAR_LOCK_INDEX: the file "
		                     "system cannot lock memory (no lock_mem)");
	if ((rc = index_bytes(fs, ix, &addr, &len)) < 0)
		return rc;
	if (!addr || len == 0)
		return CELLAR_OK; /* a new store: no index file to lock */
	if ((rc = lock(fs, ix->file, addr, len)) < 0)
		return rc;
	pc->fs = fs;
	pc->file = ix->file;
	pc->addr = addr;
	pc->len = len;
	return CELLAR_OK;
}

void pagecache_unlock(pagecache *pc)
{
	if (!pc->addr)
		return;
	/* A failed unlock leaves pages locked that the unmap or free right
	 * after releases anyway: nothing to report. */
	(void)pc->fs->unlock_mem(pc->fs, pc->file, pc->addr, pc->len);
	pc->addr = NULL;
}

int pagecache_residency(const pagecache *pc, cellar_fs *fs,
                        cellar_index *ix, const segset *s,
                        cellar_residency_info *out)
{
	int (*resident)(cellar_fs *, cellar_file *, const void *, uint64_t,
	                uint64_t *) = PAGECACHE_FS_OP(fs, resident);
	const void *addr;
	uint64_t len, r;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = index_bytes(fs, ix, &addr, &len)) < 0)
		goto fail;
	out->index_bytes = len;
	out->index_locked = pc->addr != NULL;
	if (!resident)
		out->index_resident = CELLAR_RESIDENT_UNKNOWN;
	else if (addr && (rc = resident(fs, ix->file, addr, len,
	                                &out->index_resident)) < 0)
		goto fail;
	if (!resident)
		out->data_resident = CELLAR_RESIDENT_UNKNOWN;
	for (size_t i = 0; i < s->n; i++) {
		const segment *g = s->list[i];
		/* The file holds [0, wend); the newest segment's bytes past it
		 * are only in the append buffer, which is memory. */
		uint64_t in_file = g->wend < g->size ? g->wend : g->size;

		out->data_bytes += g->size;
		if (!resident)
			continue;
		const void *map = g->map && g->map_len >= in_file ? g->map : NULL;
		if ((rc = resident(fs, g->file, map, in_file, &r)) < 0)
			goto fail;
		out->data_resident += r + (g->size - in_file);
	}
	return CELLAR_OK;
fail:
	memset(out, 0, sizeof *out);
	return rc;
}

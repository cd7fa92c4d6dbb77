/*
 * pages.c - huge-page slabs (see pages.h).  Owns the mmap/munmap/madvise
 * of anonymous memory; must not include anything from src/.
 */
#include <sys/mman.h>

#include "pages.h"

uint8_t *pages_slab_new(void)
{
	size_t sz = PAGES_SLAB_BYTES;
	uint8_t *p = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t at;

	if (p == MAP_FAILED)
		return NULL;
	/* Keep the aligned middle; the kernel maps huge pages only there. */
	at = ((uintptr_t)p + sz - 1) & ~(uintptr_t)(sz - 1);
	if (at > (uintptr_t)p)
		munmap(p, at - (uintptr_t)p);
	if ((uintptr_t)p + 2 * sz > at + sz)
		munmap((uint8_t *)at + sz, (uintptr_t)p + 2 * sz - (at + sz));
#ifdef MADV_HUGEPAGE
	(void)madvise((void *)at, sz, MADV_HUGEPAGE); /* advice only */
#endif
	return (uint8_t *)at;
}

uint8_t *pages_slab_new_faulted(void)
{
	uint8_t *p = pages_slab_new();

	if (p)
		for (size_t at = 0; at < PAGES_SLAB_BYTES; at += 4096)
			((volatile uint8_t *)p)[at] = 0;
	return p;
}

void pages_slab_free(uint8_t *slab)
{
	if (slab)
		munmap(slab, PAGES_SLAB_BYTES);
}

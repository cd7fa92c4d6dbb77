/*
 * pages.h - memory by the page, for the engine: anonymous 2 MiB slabs that
 * ask for transparent huge pages, and faulting a mapping's pages in.
 *
 * Owns the engine's only memory-mapping system calls outside the file
 * systems (STYLE: only fs/ calls the OS).  Must not: include anything from
 * src/, or know what the memory holds.
 */
#ifndef CELLAR_PAGES_H
#define CELLAR_PAGES_H

#include <stddef.h>
#include <stdint.h>

/** Size and alignment of a slab: one huge page. */
#define PAGES_SLAB_BYTES (2u << 20)

/**
 * A zeroed, PAGES_SLAB_BYTES-aligned slab of PAGES_SLAB_BYTES, advised to
 * be backed by a huge page (advice only); NULL when out of memory.
 */
uint8_t *pages_slab_new(void);

/**
 * pages_slab_new() with every page faulted in already (written with the
 * zeros it holds): the fault, which can take milliseconds for a huge page
 * on a virtual machine, is paid here and not by the first real write.
 */
uint8_t *pages_slab_new_faulted(void);

/** Give a slab from pages_slab_new() back. */
void pages_slab_free(uint8_t *slab);

/** Read one byte of every 4 KiB page of [p, p + len): fault it all in. */
static inline void pages_touch(const void *p, uint64_t len)
{
	const volatile uint8_t *b = p;

	for (uint64_t off = 0; off < len; off += 4096)
		(void)b[off];
}

#endif

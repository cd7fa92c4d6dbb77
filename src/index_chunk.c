/*
 * index_chunk.c - the index's chunk memory (see index_chunk.h): slabs,
 * chunk allocation, copy-on-write of checkpoint chunks, the first-touch
 * checksum check.  Knows nothing of chains, the table or the file layout.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "index_chunk.h"
#include "pages.h"

int index_chunk_check(index_chunk *c)
{
	unsigned char st = atomic_load_explicit(&c->state, memory_order_acquire);

	if (st == CHUNK_UNCHECKED) {
		uint64_t sum = hash_checksum(c->base, (size_t)c->nvalid * BUCKET_SIZE);
		st = sum == c->checksum ? CHUNK_OK : CHUNK_BAD;
		atomic_store_explicit(&c->state, st, memory_order_release);
	}
	if (st == CHUNK_BAD)
		return cellar__error(CELLAR_ECORRUPT,
		                     "index: bucket chunk failed its checksum; "
		                     "remove the index file to rebuild it");
	return CELLAR_OK;
}

int index_array_check(index_array *a)
{
	for (size_t c = 0; c < a->nchunks; c++) {
		int rc = index_chunk_check(&a->chunks[c]);
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

void index_array_distrust(index_array *a)
{
	for (size_t c = 0; c < a->nchunks; c++)
		atomic_store_explicit(&a->chunks[c].state, CHUNK_BAD,
		                      memory_order_release);
}

/*
 * A large table's private chunks are cut from 2 MiB slabs that ask for
 * transparent huge pages: a write touches a random bucket, and with 4 KiB
 * pages nearly every one would also miss the TLB.  Small tables (under one
 * slab's worth of chunks) use the heap, so that a small store does not
 * take 2 MiB per array.  Slabs live as long as the table.
 */

/* INDEX_CHUNK_BYTES of zeroed private buckets for a (NULL: out of memory);
 * *how gets CHUNK_HEAP or CHUNK_SLAB. */
static uint8_t *chunk_alloc(index_array *a, uint8_t *how)
{
	uint8_t *p;

	if (a->nchunks < INDEX_SLAB_CHUNKS) {
		if ((p = aligned_alloc(64, INDEX_CHUNK_BYTES)))
			memset(p, 0, INDEX_CHUNK_BYTES);
		*how = CHUNK_HEAP;
		return p;
	}
	if (a->nslab_free) { /* a thawed original: reuse it before a new slab */
		p = a->slab_free[--a->nslab_free];
		memset(p, 0, INDEX_CHUNK_BYTES);
		*how = CHUNK_SLAB;
		return p;
	}
	if (!a->nslabs || a->slab_used == INDEX_SLAB_BYTES) {
		uint8_t **v = realloc(a->slabs, (a->nslabs + 1) * sizeof *v);
		if (!v)
			return NULL;
		a->slabs = v;
		if (a->nspare)
			v[a->nslabs] = a->spare[--a->nspare]; /* faulted already */
		else if (!(v[a->nslabs] = pages_slab_new()))
			return NULL;
		a->nslabs++;
		a->slab_used = 0;
	}
	p = a->slabs[a->nslabs - 1] + a->slab_used;
	a->slab_used += INDEX_CHUNK_BYTES; /* fresh anonymous memory: zero */
	*how = CHUNK_SLAB;
	return p;
}

size_t index_array_spare_wanted(const index_array *a, size_t n)
{
	size_t have = a->nslab_free + a->nspare * INDEX_SLAB_CHUNKS;

	if (a->nchunks < INDEX_SLAB_CHUNKS)
		return 0; /* chunks come from the heap */
	if (a->nslabs)
		have += (INDEX_SLAB_BYTES - a->slab_used) / INDEX_CHUNK_BYTES;
	return n > have ? (n - have + INDEX_SLAB_CHUNKS - 1) / INDEX_SLAB_CHUNKS
	                : 0;
}

void index_array_spare_add(index_array *a, uint8_t *const *v, size_t n)
{
	if (a->nspare + n > a->spare_cap) {
		size_t cap = a->nspare + n;
		uint8_t **p = realloc(a->spare, cap * sizeof *p);
		if (p) {
			a->spare = p;
			a->spare_cap = cap;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (a->nspare < a->spare_cap)
			a->spare[a->nspare++] = v[i];
		else
			pages_slab_free(v[i]);
	}
}

/* A frozen chunk's copy: the whole chunk, the original left as it is. */
static int chunk_unfreeze_copy(index_array *a, index_chunk *c)
{
	uint8_t *p, how;

	if (!(p = chunk_alloc(a, &how)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	memcpy(p, c->base, INDEX_CHUNK_BYTES);
	c->base = p; /* the exclusive latch is held: no reader sees it move */
	c->owned = how;
	a->frozen_copies++;
	a->held++; /* the original stays for the versions that hold it */
	return CELLAR_OK;
}

/* Make chunk ci of a a private copy the writer may change. */
static int chunk_own(index_array *a, size_t ci)
{
	index_chunk *c = &a->chunks[ci];
	size_t valid = (size_t)c->nvalid * BUCKET_SIZE;
	uint8_t *p, how;
	int rc;

	if (c->owned & CHUNK_FROZEN)
		return chunk_unfreeze_copy(a, c);
	if (c->owned)
		return CELLAR_OK;
	if ((rc = index_chunk_check(c)) < 0)
		return rc;
	if (!(p = chunk_alloc(a, &how)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	memcpy(p, c->base, valid);
	memset(p + valid, 0, INDEX_CHUNK_BYTES - valid);
	c->base = p;
	c->owned = how;
	return CELLAR_OK;
}

int index_bucket_own(index_array *a, uint64_t i, uint8_t **out)
{
	int rc = chunk_own(a, (size_t)(i >> INDEX_CHUNK_SHIFT));

	if (rc < 0)
		return rc;
	*out = index_bucket_addr(a, i);
	return CELLAR_OK;
}

int index_array_reserve(index_array *a, uint64_t nbuckets)
{
	size_t need = index_chunks_for(nbuckets);

	if (need > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4;
		while (cap < need)
			cap *= 2;
		index_chunk *c = realloc(a->chunks, cap * sizeof *c);
		if (!c)
			return cellar__error(CELLAR_ENOMEM, "index: out of memory");
		a->chunks = c;
		a->cap = cap;
	}
	while (a->nchunks < need) {
		index_chunk *c = &a->chunks[a->nchunks];
		if (!(c->base = chunk_alloc(a, &c->owned)))
			return cellar__error(CELLAR_ENOMEM, "index: out of memory");
		c->nvalid = 0;
		c->checksum = 0;
		atomic_init(&c->state, CHUNK_OK);
		a->nchunks++;
	}
	return CELLAR_OK;
}

int index_array_alloc_chunks(index_array *a, size_t nchunks)
{
	size_t cap = nchunks ? nchunks : 1;

	if (!(a->chunks = calloc(cap, sizeof *a->chunks)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	a->cap = cap;
	a->nchunks = nchunks;
	return CELLAR_OK;
}

void index_chunk_share(index_array *a, size_t ci, const uint8_t *base,
                       uint32_t nvalid, uint64_t checksum)
{
	index_chunk *c = &a->chunks[ci];

	c->base = (uint8_t *)base; /* never written while shared */
	c->owned = CHUNK_SHARED;
	c->nvalid = nvalid;
	c->checksum = checksum;
	atomic_init(&c->state, CHUNK_UNCHECKED);
}

/*
 * Frozen versions: a checkpoint or a snapshot reads a copy of the
 * descriptors, whose private bases the writer never changes while they are
 * frozen (it copies them first, chunk_unfreeze_copy).  Each frozen base
 * counts the versions holding it (a->pins, by chunk number); when the last
 * one thaws, a base the writer replaced is freed and one it still uses is
 * unfrozen.  Slab chunks go to a free list for the next allocation.
 */

/* The entry of base at chunk number ci, or NULL. */
static index_pin *pin_find(index_array *a, size_t ci, const uint8_t *base)
{
	index_pins *p;

	if (ci >= a->npins)
		return NULL;
	p = &a->pins[ci];
	for (uint32_t i = 0; i < p->n; i++)
		if (p->v[i].base == base)
			return &p->v[i];
	return NULL;
}

/* Room for one more entry at each private chunk number of a, so that the
 * freeze that follows cannot fail half-way.  CELLAR_ENOMEM. */
static int pins_reserve(index_array *a)
{
	if (a->npins < a->nchunks) {
		index_pins *v = realloc(a->pins, a->nchunks * sizeof *v);
		if (!v)
			return cellar__error(CELLAR_ENOMEM, "index: out of memory");
		memset(v + a->npins, 0, (a->nchunks - a->npins) * sizeof *v);
		a->pins = v;
		a->npins = a->nchunks;
	}
	for (size_t i = 0; i < a->nchunks; i++) {
		index_pins *p = &a->pins[i];
		if (a->chunks[i].owned == CHUNK_SHARED || p->n < p->cap)
			continue;
		uint32_t cap = p->cap ? 2 * p->cap : 2;
		index_pin *e = realloc(p->v, cap * sizeof *e);
		if (!e)
			return cellar__error(CELLAR_ENOMEM, "index: out of memory");
		p->v = e;
		p->cap = cap;
	}
	return CELLAR_OK;
}

/* One more version holds chunk ci's base (room was reserved). */
static void pin_add(index_array *a, size_t ci)
{
	index_chunk *c = &a->chunks[ci];
	index_pin *e = pin_find(a, ci, c->base);
	index_pins *p = &a->pins[ci];

	if (!e) {
		e = &p->v[p->n++];
		e->base = c->base;
		e->refs = 0;
		e->how = c->owned & (uint8_t)~CHUNK_FROZEN;
	}
	e->refs++;
	c->owned |= CHUNK_FROZEN;
}

int index_array_freeze(index_array *a, index_array *out)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = pins_reserve(a)) < 0)
		return rc;
	if (!(out->chunks = calloc(a->nchunks ? a->nchunks : 1,
	                           sizeof *out->chunks)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	out->nchunks = out->cap = a->nchunks;
	out->n = a->n;
	for (size_t i = 0; i < a->nchunks; i++) {
		index_chunk *c = &a->chunks[i], *f = &out->chunks[i];
		f->base = c->base;
		f->owned = c->owned;
		f->nvalid = c->nvalid;
		f->checksum = c->checksum;
		/* Readers may be checking the chunk on first touch. */
		atomic_init(&f->state, atomic_load_explicit(&c->state,
		                                            memory_order_acquire));
		if (c->owned != CHUNK_SHARED)
			pin_add(a, i);
	}
	return CELLAR_OK;
}

/* Give back a replaced frozen original; a full free list just keeps it
 * (the slab is freed with the array). */
static void chunk_release(index_array *a, uint8_t *base, uint8_t how)
{
	if (how == CHUNK_HEAP) {
		free(base);
		return;
	}
	if (a->nslab_free == a->slab_free_cap) {
		size_t cap = a->slab_free_cap ? 2 * a->slab_free_cap : 16;
		uint8_t **v = realloc(a->slab_free, cap * sizeof *v);
		if (!v)
			return;
		a->slab_free = v;
		a->slab_free_cap = cap;
	}
	a->slab_free[a->nslab_free++] = base;
}

/* A version no longer holds chunk ci's base f: the last holder frees or
 * unfreezes it. */
static void pin_drop(index_array *a, size_t ci, const index_chunk *f)
{
	index_chunk *c = &a->chunks[ci];
	index_pin *e = pin_find(a, ci, f->base);
	index_pins *p = &a->pins[ci];

	if (!e || --e->refs > 0)
		return;
	if (c->base == f->base) {
		c->owned &= (uint8_t)~CHUNK_FROZEN;
	} else {
		chunk_release(a, e->base, e->how);
		a->held--;
	}
	*e = p->v[--p->n];
}

void index_array_thaw(index_array *a, index_array *frozen, uint64_t *copied)
{
	uint64_t n = 0;

	for (size_t i = 0; i < frozen->nchunks; i++) {
		index_chunk *f = &frozen->chunks[i];
		if (f->owned == CHUNK_SHARED)
			continue;
		if (a->chunks[i].base != f->base)
			n++;
		pin_drop(a, i, f);
	}
	free(frozen->chunks);
	memset(frozen, 0, sizeof *frozen);
	if (copied)
		*copied = n;
}

/* Free what frozen versions still held when the array goes (their
 * handles were not thawed first). */
static void pins_free(index_array *a)
{
	for (size_t ci = 0; ci < a->npins; ci++) {
		index_pins *p = &a->pins[ci];
		for (uint32_t i = 0; i < p->n; i++)
			if (p->v[i].how == CHUNK_HEAP &&
			    (ci >= a->nchunks || a->chunks[ci].base != p->v[i].base))
				free(p->v[i].base);
		free(p->v);
	}
	free(a->pins);
}

void index_array_free(index_array *a)
{
	for (size_t i = 0; i < a->nchunks; i++)
		if ((a->chunks[i].owned & (uint8_t)~CHUNK_FROZEN) == CHUNK_HEAP)
			free(a->chunks[i].base);
	pins_free(a);
	for (size_t i = 0; i < a->nslabs; i++)
		pages_slab_free(a->slabs[i]);
	for (size_t i = 0; i < a->nspare; i++)
		pages_slab_free(a->spare[i]);
	free(a->spare);
	free(a->slabs);
	free(a->slab_free);
	free(a->chunks);
	memset(a, 0, sizeof *a);
}

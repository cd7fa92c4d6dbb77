/* index.c - the linear-hash index and its checkpoint file (see index.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bucket.h"
#include "endian.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "index.h"


#define CHUNK_MASK (INDEX_CHUNK_BUCKETS - 1)
#define CHUNK_BYTES ((size_t)INDEX_CHUNK_BUCKETS * BUCKET_SIZE)
#define SEG_ENTRY_SIZE 40

/* Header fields (offsets into the first INDEX_HEADER_SIZE bytes). */
#define H_VERSION 8
#define H_SEED 16
#define H_COUNT 24
#define H_LEVEL 32
#define H_SPLIT 40
#define H_NPRIM 48
#define H_NOVF 56
#define H_FREE 64
#define H_OVF_USED 72
#define H_CKPT_SEQ 80
#define H_CKPT_OFF 88
#define H_NSEGS 96
#define H_CHUNK_SHIFT 104
#define H_TAIL_SUM 112
#define H_SUM (INDEX_HEADER_SIZE - 8)

static const char index_magic[8] = { 'C', 'E', 'L', 'L', 'A', 'R', 'I', 'X' };

/* ---- chunks ------------------------------------------------------------ */

int index__bad_chain(void)
{
	return cellar__error(CELLAR_ECORRUPT, "index: broken overflow chain");
}

int index__chunk_check(index_chunk *c)
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

static inline int bucket_at(index_array *a, uint64_t i, uint8_t **out)
{
	return index__bucket_at(a, i, out);
}

/*
 * A large table's private chunks are cut from 2 MiB slabs that ask for
 * transparent huge pages: a write touches a random bucket, and with 4 KiB
 * pages nearly every one would also miss the TLB.  Small tables (under one
 * slab's worth of chunks) use the heap, so that a small store does not
 * take 2 MiB per array.  Slabs live as long as the table.
 */

static uint8_t *slab_new(void)
{
	size_t sz = INDEX_SLAB_BYTES;
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

/* CHUNK_BYTES of zeroed private buckets for a; *how gets CHUNK_HEAP/SLAB. */
static uint8_t *chunk_alloc(index_array *a, uint8_t *how)
{
	uint8_t *p;

	if (a->nchunks < INDEX_SLAB_CHUNKS) {
		if ((p = aligned_alloc(64, CHUNK_BYTES)))
			memset(p, 0, CHUNK_BYTES);
		*how = CHUNK_HEAP;
		return p;
	}
	if (!a->nslabs || a->slab_used == INDEX_SLAB_BYTES) {
		uint8_t **v = realloc(a->slabs, (a->nslabs + 1) * sizeof *v);
		if (!v)
			return NULL;
		a->slabs = v;
		if (!(v[a->nslabs] = slab_new()))
			return NULL;
		a->nslabs++;
		a->slab_used = 0;
	}
	p = a->slabs[a->nslabs - 1] + a->slab_used;
	a->slab_used += CHUNK_BYTES; /* fresh anonymous memory: already zero */
	*how = CHUNK_SLAB;
	return p;
}

/* Make chunk ci of a a private copy the writer may change. */
static int chunk_own(index_array *a, size_t ci)
{
	index_chunk *c = &a->chunks[ci];
	uint8_t *p, how;
	int rc;

	if (c->owned)
		return CELLAR_OK;
	if ((rc = index__chunk_check(c)) < 0)
		return rc;
	if (!(p = chunk_alloc(a, &how)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	memcpy(p, c->base, (size_t)c->nvalid * BUCKET_SIZE);
	memset(p + (size_t)c->nvalid * BUCKET_SIZE, 0,
	       CHUNK_BYTES - (size_t)c->nvalid * BUCKET_SIZE);
	c->base = p;
	c->owned = how;
	return CELLAR_OK;
}

static int bucket_own(index_array *a, uint64_t i, uint8_t **out)
{
	int rc = chunk_own(a, (size_t)(i >> INDEX_CHUNK_SHIFT));

	if (rc < 0)
		return rc;
	*out = a->chunks[i >> INDEX_CHUNK_SHIFT].base +
	       ((i & CHUNK_MASK) * BUCKET_SIZE);
	return CELLAR_OK;
}

/* Make sure chunks exist for buckets [0, nbuckets). */
static int array_reserve(index_array *a, uint64_t nbuckets)
{
	size_t need = (size_t)((nbuckets + CHUNK_MASK) >> INDEX_CHUNK_SHIFT);

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

static void array_free(index_array *a)
{
	for (size_t i = 0; i < a->nchunks; i++)
		if (a->chunks[i].owned == CHUNK_HEAP)
			free(a->chunks[i].base);
	for (size_t i = 0; i < a->nslabs; i++)
		munmap(a->slabs[i], INDEX_SLAB_BYTES);
	free(a->slabs);
	free(a->chunks);
	memset(a, 0, sizeof *a);
}

int index_verify_all(cellar_index *ix)
{
	uint8_t *seen = NULL, *b;
	uint64_t used = 0, ovf = 0;
	int rc;

	for (size_t c = 0; c < ix->prim.nchunks; c++)
		if ((rc = index__chunk_check(&ix->prim.chunks[c])) < 0)
			return rc;
	for (size_t c = 0; c < ix->ovf.nchunks; c++)
		if ((rc = index__chunk_check(&ix->ovf.chunks[c])) < 0)
			return rc;
	/* Checksums match, but is the table whole?  Every overflow bucket in
	 * at most one chain or the free list, once; counters that agree. */
	if (!(seen = calloc((size_t)ix->ovf.n, 1)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	rc = CELLAR_ECORRUPT;
	for (uint64_t a = 0; a < ix->prim.n; a++) {
		b = ix->prim.chunks[a >> INDEX_CHUNK_SHIFT].base +
		    ((a & CHUNK_MASK) * BUCKET_SIZE);
		const uint8_t *head = b;
		for (;;) {
			used += (uint64_t)bucket_used(b);
			if (b != head)
				for (int i = 0; i < BUCKET_SLOTS; i++)
					if (bucket_slot_used(b, i) &&
					    !bucket_chain_may_hold(head, bucket_tag(b, i)))
						goto done; /* a filter hides a key */
			uint32_t next = bucket_next(b);
			if (!next)
				break;
			if (next >= ix->ovf.n || seen[next])
				goto done;
			seen[next] = 1;
			ovf++;
			b = ix->ovf.chunks[next >> INDEX_CHUNK_SHIFT].base +
			    ((next & CHUNK_MASK) * BUCKET_SIZE);
		}
	}
	for (uint32_t k = ix->free_head; k;) {
		if (k >= ix->ovf.n || seen[k])
			goto done;
		seen[k] = 1;
		b = ix->ovf.chunks[k >> INDEX_CHUNK_SHIFT].base +
		    ((k & CHUNK_MASK) * BUCKET_SIZE);
		k = bucket_next(b);
	}
	if (used == ix->count && ovf == ix->ovf_used)
		rc = CELLAR_OK;
done:
	free(seen);
	if (rc == CELLAR_ECORRUPT)
		cellar__error(rc, "index: chains or counters are inconsistent");
	return rc;
}

/* ---- overflow buckets -------------------------------------------------- */

static int ovf_alloc(cellar_index *ix, uint32_t *out)
{
	uint8_t *b;
	int rc;

	if (ix->free_head) {
		uint32_t k = ix->free_head;
		if ((rc = bucket_own(&ix->ovf, k, &b)) < 0)
			return rc;
		uint32_t next = bucket_next(b);
		if (next >= ix->ovf.n)
			return cellar__error(CELLAR_ECORRUPT, "index: bad free list");
		ix->free_head = next;
		memset(b, 0, BUCKET_SIZE);
		*out = k;
	} else {
		if (ix->ovf.n >= BUCKET_NEXT_MAX)
			return cellar__error(CELLAR_ELIMIT, "index: 2^31 overflow buckets");
		/* The last chunk may still be the checkpoint's: copy it first. */
		if ((rc = array_reserve(&ix->ovf, ix->ovf.n + 1)) < 0 ||
		    (rc = bucket_own(&ix->ovf, ix->ovf.n, &b)) < 0)
			return rc;
		memset(b, 0, BUCKET_SIZE);
		*out = (uint32_t)ix->ovf.n++;
	}
	ix->ovf_used++;
	return CELLAR_OK;
}

/* The bucket must already be owned. */
static void ovf_release(cellar_index *ix, uint32_t k)
{
	uint8_t *b = ix->ovf.chunks[k >> INDEX_CHUNK_SHIFT].base +
	             ((k & CHUNK_MASK) * BUCKET_SIZE);

	memset(b, 0, BUCKET_SIZE);
	bucket_set_next(b, ix->free_head);
	ix->free_head = k;
	ix->ovf_used--;
}

/* ---- construction ------------------------------------------------------ */

int index_new(cellar_index **out, uint64_t seed)
{
	cellar_index *ix = calloc(1, sizeof *ix);

	*out = NULL;
	if (!ix)
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	ix->seed = seed;
	if (array_reserve(&ix->prim, 1) < 0 || array_reserve(&ix->ovf, 1) < 0) {
		index_free(ix);
		return CELLAR_ENOMEM;
	}
	ix->prim.n = 1;
	ix->ovf.n = 1; /* overflow bucket 0 means "none" and is never used */
	*out = ix;
	return CELLAR_OK;
}

void index_free(cellar_index *ix)
{
	if (!ix)
		return;
	array_free(&ix->prim);
	array_free(&ix->ovf);
	if (ix->map)
		ix->fs->unmap(ix->fs, ix->file, ix->map, ix->map_len);
	if (ix->file)
		ix->fs->close(ix->fs, ix->file);
	free(ix->loaded);
	free(ix);
}

/* ---- lookups ----------------------------------------------------------- */

/* Follow a chain link, with bounds and cycle checks. */
static int chain_next(cellar_index *ix, const uint8_t *b, uint64_t *steps,
                      uint32_t *next)
{
	*next = bucket_next(b);
	if (*next == 0)
		return CELLAR_OK;
	if (*next >= ix->ovf.n || ++*steps > ix->ovf.n)
		return cellar__error(CELLAR_ECORRUPT, "index: broken overflow chain");
	return CELLAR_OK;
}

int index_lookup(cellar_index *ix, uint64_t hash, index_match_fn match,
                 void *ctx, unsigned *probes)
{
	unsigned n;
	int rc = index_lookup_inline(ix, hash, match, ctx, &n);

	if (probes)
		*probes = n;
	return rc;
}

struct loc_ctx {
	uint16_t seg;
	uint32_t off;
};

static int match_loc(void *ctx, uint16_t seg, uint32_t off, int *hit)
{
	const struct loc_ctx *l = ctx;

	*hit = l->seg == seg && l->off == off;
	return CELLAR_OK;
}

int index_has_loc(cellar_index *ix, uint64_t hash, uint16_t seg, uint32_t off,
                  int *found)
{
	struct loc_ctx l = { seg, off };
	int rc = index_lookup(ix, hash, match_loc, &l, NULL);

	*found = rc == CELLAR_OK;
	return rc == CELLAR_ENOTFOUND ? CELLAR_OK : rc;
}

int index_find(cellar_index *ix, uint64_t hash, index_match_fn match,
               void *ctx, index_ref *ref)
{
	uint32_t tag = index_tag(hash), next;
	uint64_t steps = 0, cur;
	int cur_ovf = 0, have_free = 0, rc;
	index_ref damaged = { 0 };
	uint8_t *b;

	memset(ref, 0, sizeof *ref);
	ref->addr = cur = index_addr(ix, tag);
	if ((rc = bucket_at(&ix->prim, cur, &b)) < 0)
		return rc;
	for (;;) {
		for (int i = 0; i < BUCKET_SLOTS; i++) {
			if (!bucket_slot_used(b, i)) {
				if (!have_free) {
					have_free = 1;
					ref->in_ovf = cur_ovf;
					ref->bucket = cur;
					ref->slot = i;
				}
				continue;
			}
			if (bucket_tag(b, i) != tag)
				continue;
			int hit = 0;
			rc = match(ctx, bucket_seg(b, i), bucket_off(b, i), &hit);
			if (rc == CELLAR_ECORRUPT && !damaged.found) {
				/* Its record can't be read: if no intact record
				 * holds the key, this slot is the one to replace. */
				damaged.found = 1;
				damaged.in_ovf = cur_ovf;
				damaged.bucket = cur;
				damaged.slot = i;
				damaged.has_prev = ref->has_prev;
				damaged.prev_in_ovf = ref->prev_in_ovf;
				damaged.prev = ref->prev;
				damaged.old_seg = bucket_seg(b, i);
				damaged.old_off = bucket_off(b, i);
				continue;
			}
			if (rc < 0)
				return rc;
			if (hit) {
				ref->found = 1;
				ref->in_ovf = cur_ovf;
				ref->bucket = cur;
				ref->slot = i;
				ref->old_seg = bucket_seg(b, i);
				ref->old_off = bucket_off(b, i);
				return CELLAR_OK;
			}
		}
		if ((rc = chain_next(ix, b, &steps, &next)) < 0)
			return rc;
		if (!next)
			break;
		ref->has_prev = 1;
		ref->prev_in_ovf = cur_ovf;
		ref->prev = cur;
		cur = next;
		cur_ovf = 1;
		if ((rc = bucket_at(&ix->ovf, cur, &b)) < 0)
			return rc;
	}
	if (damaged.found) {
		damaged.addr = ref->addr;
		*ref = damaged;
		return CELLAR_OK;
	}
	if (!have_free) {
		/* Chain full: a new overflow bucket goes after the last one. */
		ref->in_ovf = cur_ovf;
		ref->bucket = cur;
		ref->slot = -1;
	}
	return CELLAR_OK;
}

static index_array *ref_array(cellar_index *ix, int in_ovf)
{
	return in_ovf ? &ix->ovf : &ix->prim;
}

/* Does a write through ref change the primary bucket's chain filter? */
static int ref_touches_filter(const index_ref *ref)
{
	return ref->in_ovf || ref->slot < 0;
}

/* Does a write through ref need a new overflow bucket? */
static int ref_needs_ovf(const index_ref *ref)
{
	return !ref->found && ref->slot < 0;
}

typedef struct bucket_loc {
	index_array *a;
	uint64_t i;
} bucket_loc;

/*
 * The buckets a write through ref changes, which index_reserve makes
 * private: the target, the one before it (a delete may unlink the
 * target) and the primary bucket (whose chain filter may change).
 */
static size_t reserve_targets(cellar_index *ix, const index_ref *ref,
                              bucket_loc out[3])
{
	size_t n = 0;

	out[n++] = (bucket_loc){ ref_array(ix, ref->in_ovf), ref->bucket };
	if (ref->found && ref->has_prev)
		out[n++] = (bucket_loc){ ref_array(ix, ref->prev_in_ovf), ref->prev };
	if (ref_touches_filter(ref))
		out[n++] = (bucket_loc){ &ix->prim, ref->addr };
	return n;
}

int index_reserve_is_noop(cellar_index *ix, const index_ref *ref)
{
	bucket_loc t[3];
	size_t n = reserve_targets(ix, ref, t);

	for (size_t k = 0; k < n; k++)
		if (!t[k].a->chunks[t[k].i >> INDEX_CHUNK_SHIFT].owned)
			return 0;
	return !ref_needs_ovf(ref);
}

int index_reserve(cellar_index *ix, index_ref *ref)
{
	bucket_loc t[3];
	size_t n = reserve_targets(ix, ref, t);
	uint8_t *b;
	int rc;

	for (size_t k = 0; k < n; k++)
		if ((rc = bucket_own(t[k].a, t[k].i, &b)) < 0)
			return rc;
	return ref_needs_ovf(ref) ? ovf_alloc(ix, &ref->new_ovf) : CELLAR_OK;
}

void index_unreserve(cellar_index *ix, index_ref *ref)
{
	if (ref_needs_ovf(ref) && ref->new_ovf) {
		ovf_release(ix, ref->new_ovf);
		ref->new_ovf = 0;
	}
}

static uint8_t *owned_bucket(index_array *a, uint64_t i)
{
	return a->chunks[i >> INDEX_CHUNK_SHIFT].base +
	       ((i & CHUNK_MASK) * BUCKET_SIZE);
}

void index_set(cellar_index *ix, const index_ref *ref, uint64_t hash,
               uint16_t seg, uint32_t off)
{
	uint8_t *b = owned_bucket(ref_array(ix, ref->in_ovf), ref->bucket);
	uint32_t tag = index_tag(hash);

	if (ref->found || ref->slot >= 0) {
		bucket_set(b, ref->slot, tag, seg, off);
	} else {
		uint8_t *nb = owned_bucket(&ix->ovf, ref->new_ovf);
		bucket_set(nb, 0, tag, seg, off);
		if (ref->in_ovf)
			bucket_set_next(b, ref->new_ovf);
		else
			bucket_set_chain(b, ref->new_ovf, 0);
	}
	if (ref_touches_filter(ref))
		bucket_filter_add(owned_bucket(&ix->prim, ref->addr), tag);
	if (!ref->found)
		ix->count++;
}

void index_remove(cellar_index *ix, const index_ref *ref)
{
	uint8_t *b = owned_bucket(ref_array(ix, ref->in_ovf), ref->bucket);

	bucket_clear_slot(b, ref->slot);
	if (ix->count)
		ix->count--;
	if (ref->in_ovf && ref->has_prev && bucket_used(b) == 0) {
		uint8_t *p = owned_bucket(ref_array(ix, ref->prev_in_ovf), ref->prev);
		if (ref->prev_in_ovf)
			bucket_set_next(p, bucket_next(b));
		else
			bucket_set_chain(p, bucket_next(b), bucket_chain_filter(p));
		ovf_release(ix, (uint32_t)ref->bucket);
	}
}

/* ---- splits ------------------------------------------------------------ */

typedef struct entry {
	uint32_t tag;
	uint16_t seg;
	uint32_t off;
} entry;

/* Lay entries out from head along pool[*used..]; link and clear as we go. */
static void chain_fill(cellar_index *ix, uint8_t *head, const entry *e,
                       size_t n, const uint32_t *pool, size_t *used)
{
	uint8_t *b = head;
	uint32_t first = 0, filter = 0;
	int slot = 0;

	memset(b, 0, BUCKET_SIZE);
	for (size_t i = 0; i < n; i++) {
		if (slot == BUCKET_SLOTS) {
			uint32_t k = pool[(*used)++];
			uint8_t *nb = owned_bucket(&ix->ovf, k);
			memset(nb, 0, BUCKET_SIZE);
			if (b == head)
				first = k;
			else
				bucket_set_next(b, k);
			b = nb;
			slot = 0;
		}
		if (b != head)
			filter |= bucket_filter_bit(e[i].tag);
		bucket_set(b, slot++, e[i].tag, e[i].seg, e[i].off);
	}
	bucket_set_chain(head, first, filter);
}

/* Split the bucket at the split pointer.  Returns <0 if it could not. */
static int split_one(cellar_index *ix)
{
	uint64_t half = 1ull << ix->level, s = ix->split, nb = half + s;
	entry stack_e[8 * BUCKET_SLOTS], *e = stack_e;
	uint32_t stack_pool[8], *pool = stack_pool;
	size_t ne = 0, ecap = 8 * BUCKET_SLOTS, np = 0, pcap = 8, used = 0;
	uint64_t steps = 0;
	uint32_t next;
	uint8_t *b;
	int rc;

	if ((rc = bucket_own(&ix->prim, s, &b)) < 0)
		return rc;
	/* Gather the chain's entries and its overflow buckets. */
	for (;;) {
		for (int i = 0; i < BUCKET_SLOTS; i++) {
			if (!bucket_slot_used(b, i))
				continue;
			if (ne == ecap) {
				entry *ne_ = malloc(2 * ecap * sizeof *e);
				if (!ne_) {
					rc = CELLAR_ENOMEM;
					goto done;
				}
				memcpy(ne_, e, ne * sizeof *e);
				if (e != stack_e)
					free(e);
				e = ne_;
				ecap *= 2;
			}
			e[ne].tag = bucket_tag(b, i);
			e[ne].seg = bucket_seg(b, i);
			e[ne].off = bucket_off(b, i);
			ne++;
		}
		if ((rc = chain_next(ix, b, &steps, &next)) < 0)
			goto done;
		if (!next)
			break;
		if (np == pcap) {
			uint32_t *p = malloc(2 * pcap * sizeof *p);
			if (!p) {
				rc = CELLAR_ENOMEM;
				goto done;
			}
			memcpy(p, pool, np * sizeof *p);
			if (pool != stack_pool)
				free(pool);
			pool = p;
			pcap *= 2;
		}
		pool[np++] = next;
		if ((rc = bucket_own(&ix->ovf, next, &b)) < 0)
			goto done;
	}
	if ((rc = array_reserve(&ix->prim, nb + 1)) < 0 ||
	    (rc = chunk_own(&ix->prim, (size_t)(nb >> INDEX_CHUNK_SHIFT))) < 0)
		goto done;

	/* Partition in place: entries staying at s first. */
	uint64_t mask = 2 * half - 1;
	size_t stay = 0;
	for (size_t i = 0; i < ne; i++) {
		if ((e[i].tag & mask) == s) {
			entry t = e[stay];
			e[stay++] = e[i];
			e[i] = t;
		}
	}
	/* ceil(a/6) + ceil(b/6) <= chain length + 1, so the pool suffices. */
	chain_fill(ix, owned_bucket(&ix->prim, s), e, stay, pool, &used);
	chain_fill(ix, owned_bucket(&ix->prim, nb), e + stay, ne - stay, pool,
	           &used);
	for (size_t i = used; i < np; i++)
		ovf_release(ix, pool[i]);
	ix->prim.n = nb + 1;
	if (++ix->split == half) {
		ix->level++;
		ix->split = 0;
	}
	rc = CELLAR_OK;
done:
	if (e != stack_e)
		free(e);
	if (pool != stack_pool)
		free(pool);
	return rc;
}

int index_presize(cellar_index *ix, uint64_t keys)
{
	int rc;

	while (keys > ix->prim.n * BUCKET_SLOTS * INDEX_LOAD_NUM / INDEX_LOAD_DEN) {
		if (ix->level >= INDEX_MAX_LEVEL ||
		    (ix->max_buckets && ix->prim.n >= ix->max_buckets))
			return CELLAR_OK;
		if ((rc = split_one(ix)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

void index_grow(cellar_index *ix)
{
	(void)index_presize(ix, ix->count); /* a failed split: stay fuller */
}

/* ---- the checkpoint file ----------------------------------------------- */

static size_t chunks_for(uint64_t n)
{
	return (size_t)((n + CHUNK_MASK) >> INDEX_CHUNK_SHIFT);
}

uint64_t index_file_size(const cellar_index *ix, size_t nsegs)
{
	return INDEX_HEADER_SIZE + (ix->prim.n + ix->ovf.n) * BUCKET_SIZE +
	       (chunks_for(ix->prim.n) + chunks_for(ix->ovf.n)) * 8 +
	       (uint64_t)nsegs * SEG_ENTRY_SIZE;
}

/*
 * The checkpoint goes out through one FILE_WRITE_UNIT buffer, so that every
 * write but the last covers one whole aligned unit (files.h): the mapping
 * readers use then gets huge pages.
 */
typedef struct unit_writer {
	cellar_fs *fs;
	cellar_file *f;
	uint64_t pos; /* file offset of buf[0] */
	uint8_t *buf;
	size_t len;
} unit_writer;

static int unit_flush(unit_writer *w)
{
	int rc = w->len ? w->fs->write_at(w->fs, w->f, w->pos, w->buf, w->len)
	                : CELLAR_OK;

	w->pos += w->len;
	w->len = 0;
	return rc;
}

static int unit_put(unit_writer *w, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t k = FILE_WRITE_UNIT - w->len < n ? FILE_WRITE_UNIT - w->len : n;
		int rc;

		memcpy(w->buf + w->len, b, k);
		w->len += k;
		b += k;
		n -= k;
		if (w->len == FILE_WRITE_UNIT && (rc = unit_flush(w)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* Write an array's buckets, appending their chunk sums to sums. */
static int write_array(unit_writer *w, index_array *a, uint8_t *sums)
{
	for (size_t c = 0; c < chunks_for(a->n); c++) {
		uint64_t first = (uint64_t)c << INDEX_CHUNK_SHIFT;
		size_t len = (size_t)((a->n - first < INDEX_CHUNK_BUCKETS
		                           ? a->n - first
		                           : INDEX_CHUNK_BUCKETS) *
		                      BUCKET_SIZE);
		int rc = index__chunk_check(&a->chunks[c]);
		if (rc < 0)
			return rc;
		le64_store(sums + 8 * c, hash_checksum(a->chunks[c].base, len));
		if ((rc = unit_put(w, a->chunks[c].base, len)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* What index_write hands files_replace to write the file's content. */
typedef struct ckpt_out {
	cellar_index *ix;
	const index_ckpt *ck;
	uint8_t *hdr, *tail;
	size_t tail_len;
	unit_writer w;
} ckpt_out;

static void encode_tail_segs(uint8_t *se, const index_ckpt *ck)
{
	for (size_t i = 0; i < ck->nsegs; i++, se += SEG_ENTRY_SIZE) {
		le16_store(se, ck->segs[i].id);
		le32_store(se + 4, ck->segs[i].kept);
		le64_store(se + 8, ck->segs[i].seq);
		le64_store(se + 16, ck->segs[i].size);
		le64_store(se + 24, ck->segs[i].live);
		le64_store(se + 32, ck->segs[i].dead);
	}
}

static void encode_header(uint8_t *hdr, const cellar_index *ix,
                          const index_ckpt *ck, const uint8_t *tail,
                          size_t tail_len)
{
	memcpy(hdr, index_magic, 8);
	le32_store(hdr + H_VERSION, FORMAT_VERSION);
	le64_store(hdr + H_SEED, ix->seed);
	le64_store(hdr + H_COUNT, ix->count);
	le64_store(hdr + H_LEVEL, ix->level);
	le64_store(hdr + H_SPLIT, ix->split);
	le64_store(hdr + H_NPRIM, ix->prim.n);
	le64_store(hdr + H_NOVF, ix->ovf.n);
	le64_store(hdr + H_FREE, ix->free_head);
	le64_store(hdr + H_OVF_USED, ix->ovf_used);
	le64_store(hdr + H_CKPT_SEQ, ck->seq);
	le64_store(hdr + H_CKPT_OFF, ck->off);
	le64_store(hdr + H_NSEGS, ck->nsegs);
	le64_store(hdr + H_CHUNK_SHIFT, INDEX_CHUNK_SHIFT);
	le64_store(hdr + H_TAIL_SUM, hash_checksum(tail, tail_len));
	le64_store(hdr + H_SUM, hash_checksum(hdr, H_SUM));
}

/* files_write_fn: the whole checkpoint, its header last. */
static int write_ckpt(void *ctx, cellar_fs *fs, cellar_file *f)
{
	ckpt_out *o = ctx;
	size_t cp = chunks_for(o->ix->prim.n), co = chunks_for(o->ix->ovf.n);
	int rc;

	o->w.fs = fs;
	o->w.f = f;
	/* A zero header holds the place of the real one, written last. */
	if ((rc = unit_put(&o->w, o->hdr, INDEX_HEADER_SIZE)) < 0 ||
	    (rc = write_array(&o->w, &o->ix->prim, o->tail)) < 0 ||
	    (rc = write_array(&o->w, &o->ix->ovf, o->tail + 8 * cp)) < 0)
		return rc;
	encode_tail_segs(o->tail + 8 * (cp + co), o->ck);
	if ((rc = unit_put(&o->w, o->tail, o->tail_len)) < 0 ||
	    (rc = unit_flush(&o->w)) < 0)
		return rc;
	encode_header(o->hdr, o->ix, o->ck, o->tail, o->tail_len);
	return fs->write_at(fs, f, 0, o->hdr, INDEX_HEADER_SIZE);
}

int index_write(cellar_index *ix, cellar_fs *fs, const char *dir,
                const index_ckpt *ck)
{
	size_t cp = chunks_for(ix->prim.n), co = chunks_for(ix->ovf.n);
	ckpt_out o = { ix, ck, NULL, NULL, 0, { 0 } };
	int rc;

	o.tail_len = (cp + co) * 8 + ck->nsegs * SEG_ENTRY_SIZE;
	o.hdr = calloc(1, INDEX_HEADER_SIZE);
	o.tail = calloc(1, o.tail_len);
	o.w.buf = malloc(FILE_WRITE_UNIT);
	if (!o.hdr || !o.tail || !o.w.buf)
		rc = cellar__error(CELLAR_ENOMEM, "index: out of memory");
	else
		rc = files_replace(fs, dir, FILE_INDEX_TMP, FILE_INDEX, write_ckpt,
		                   &o);
	free(o.hdr);
	free(o.tail);
	free(o.w.buf);
	return rc;
}

static int load_array(index_array *a, const uint8_t *data, uint64_t pos,
                      uint64_t n, const uint8_t *sums)
{
	size_t nc = chunks_for(n);

	if (!(a->chunks = calloc(nc ? nc : 1, sizeof *a->chunks)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	a->cap = nc ? nc : 1;
	for (size_t c = 0; c < nc; c++) {
		uint64_t first = (uint64_t)c << INDEX_CHUNK_SHIFT;
		index_chunk *k = &a->chunks[c];
		k->base = (uint8_t *)data + pos + first * BUCKET_SIZE;
		k->owned = 0;
		k->nvalid = (uint32_t)(n - first < INDEX_CHUNK_BUCKETS
		                           ? n - first
		                           : INDEX_CHUNK_BUCKETS);
		k->checksum = le64_load(sums + 8 * c);
		atomic_init(&k->state, CHUNK_UNCHECKED);
	}
	a->nchunks = nc;
	a->n = n;
	return CELLAR_OK;
}

int index_load(cellar_index **out, cellar_fs *fs, const char *dir,
               index_ckpt *ck)
{
	char path[FILE_PATH_MAX];
	uint8_t hdr[INDEX_HEADER_SIZE];
	cellar_index *ix = NULL;
	const uint8_t *data;
	uint64_t size, n, m, nsegs;
	size_t got;
	int rc;

	*out = NULL;
	memset(ck, 0, sizeof *ck);
	if ((rc = files_path(path, sizeof path, dir, FILE_INDEX)) < 0)
		return rc;
	if (!(ix = calloc(1, sizeof *ix)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	ix->fs = fs;
	if ((rc = fs->open(fs, path, CELLAR_FS_READ, &ix->file)) < 0)
		goto fail;
	if ((rc = fs->size(fs, ix->file, &size)) < 0)
		goto fail;
	if (size < INDEX_HEADER_SIZE) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: file too short");
		goto fail;
	}
	if ((rc = fs->read_at(fs, ix->file, 0, hdr, sizeof hdr, &got)) < 0)
		goto fail;
	if (got != sizeof hdr || memcmp(hdr, index_magic, 8) != 0) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: not a cellar index");
		goto fail;
	}
	if (le64_load(hdr + H_SUM) != hash_checksum(hdr, H_SUM)) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: header checksum");
		goto fail;
	}
	if (le32_load(hdr + H_VERSION) != FORMAT_VERSION) {
		rc = le32_load(hdr + H_VERSION) > FORMAT_VERSION
		         ? cellar__error(CELLAR_EVERSION, "index: newer format")
		         : cellar__error(CELLAR_ECORRUPT, "index: bad version");
		goto fail;
	}
	ix->seed = le64_load(hdr + H_SEED);
	ix->count = le64_load(hdr + H_COUNT);
	uint64_t level = le64_load(hdr + H_LEVEL);
	ix->split = le64_load(hdr + H_SPLIT);
	n = le64_load(hdr + H_NPRIM);
	m = le64_load(hdr + H_NOVF);
	uint64_t free_head = le64_load(hdr + H_FREE);
	ix->ovf_used = le64_load(hdr + H_OVF_USED);
	nsegs = le64_load(hdr + H_NSEGS);
	if (level > INDEX_MAX_LEVEL || ix->split >= (1ull << level) ||
	    n != (1ull << level) + ix->split || m < 1 || m > UINT32_MAX ||
	    free_head >= m || ix->ovf_used >= m ||
	    le64_load(hdr + H_CHUNK_SHIFT) != INDEX_CHUNK_SHIFT ||
	    nsegs > 65536 ||
	    ix->count > (n + m) * BUCKET_SLOTS) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: impossible header");
		goto fail;
	}
	ix->level = (uint32_t)level;
	ix->free_head = (uint32_t)free_head;
	ix->prim.n = n;
	ix->ovf.n = m;
	if (index_file_size(ix, (size_t)nsegs) != size) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: file size %llu does not "
		                   "match its header", (unsigned long long)size);
		goto fail;
	}
	if (fs->map) {
		if ((rc = fs->map(fs, ix->file, size, CELLAR_FS_MAP_HOT,
		                  &ix->map)) < 0)
			goto fail;
		ix->map_len = size;
		data = ix->map;
	} else {
		if (!(ix->loaded = aligned_alloc(64, (size_t)((size + 63) & ~63ull)))) {
			rc = cellar__error(CELLAR_ENOMEM, "index: out of memory");
			goto fail;
		}
		if ((rc = fs->read_at(fs, ix->file, 0, ix->loaded, (size_t)size,
		                      &got)) < 0)
			goto fail;
		if (got != size) {
			rc = cellar__error(CELLAR_ECORRUPT, "index: short read");
			goto fail;
		}
		data = ix->loaded;
	}
	const uint8_t *sums = data + INDEX_HEADER_SIZE + (n + m) * BUCKET_SIZE;
	if (hash_checksum(sums, (size_t)(data + size - sums)) !=
	    le64_load(hdr + H_TAIL_SUM)) {
		rc = cellar__error(CELLAR_ECORRUPT, "index: checksum of the chunk "
		                   "sums and segment table");
		goto fail;
	}
	if ((rc = load_array(&ix->prim, data, INDEX_HEADER_SIZE, n, sums)) < 0 ||
	    (rc = load_array(&ix->ovf, data, INDEX_HEADER_SIZE + n * BUCKET_SIZE,
	                     m, sums + 8 * chunks_for(n))) < 0)
		goto fail;
	const uint8_t *se = sums + 8 * (chunks_for(n) + chunks_for(m));
	ck->seq = le64_load(hdr + H_CKPT_SEQ);
	ck->off = le64_load(hdr + H_CKPT_OFF);
	ck->nsegs = (size_t)nsegs;
	if (nsegs && !(ck->segs = calloc((size_t)nsegs, sizeof *ck->segs))) {
		rc = cellar__error(CELLAR_ENOMEM, "index: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nsegs; i++, se += SEG_ENTRY_SIZE) {
		ck->segs[i].id = le16_load(se);
		ck->segs[i].kept = le32_load(se + 4);
		ck->segs[i].seq = le64_load(se + 8);
		ck->segs[i].size = le64_load(se + 16);
		ck->segs[i].live = le64_load(se + 24);
		ck->segs[i].dead = le64_load(se + 32);
	}
	*out = ix;
	return CELLAR_OK;
fail:
	free(ck->segs);
	ck->segs = NULL;
	index_free(ix);
	return rc;
}

/* ---- shape ------------------------------------------------------------- */

int index_shape_of(cellar_index *ix, index_shape *out)
{
	memset(out, 0, sizeof *out);
	out->buckets = ix->prim.n;
	out->overflow_buckets = ix->ovf_used;
	for (uint64_t a = 0; a < ix->prim.n; a++) {
		uint64_t len = 1, steps = 0;
		uint32_t next;
		uint8_t *b;
		int rc = bucket_at(&ix->prim, a, &b);
		while (rc == CELLAR_OK) {
			out->used_slots += (uint64_t)bucket_used(b);
			if ((rc = chain_next(ix, b, &steps, &next)) < 0 || !next)
				break;
			len++;
			rc = bucket_at(&ix->ovf, next, &b);
		}
		if (rc < 0)
			return rc;
		if (len > out->longest_chain)
			out->longest_chain = len;
	}
	return CELLAR_OK;
}

/*
 * index.c - the linear-hash table (see index.h): chain addresses, lookups,
 * find / reserve / set / remove, overflow buckets and their free list,
 * splits, grow / presize, the structural check, the shape and the
 * accessors.  Bucket memory is index_chunk.c's, the checkpoint file
 * index_file.c's; this file calls both and neither calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "error.h"
#include "index.h"
#include "index_chunk.h"
#include "index_file.h"

int index_chain_broken(void)
{
	return cellar__error(CELLAR_ECORRUPT, "index: broken overflow chain");
}

/* ---- construction and accessors ------------------------------------------ */

int index_new(cellar_index **out, uint64_t seed)
{
	cellar_index *ix = calloc(1, sizeof *ix);

	*out = NULL;
	if (!ix)
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	ix->seed = seed;
	if (index_array_reserve(&ix->prim, 1) < 0 ||
	    index_array_reserve(&ix->ovf, 1) < 0) {
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
	index_array_free(&ix->prim);
	index_array_free(&ix->ovf);
	index_file_release(ix);
	free(ix);
}

uint64_t index_count(const cellar_index *ix)
{
	return ix->count;
}

void index_sizes(const cellar_index *ix, uint64_t *buckets,
                 uint64_t *overflow)
{
	if (buckets)
		*buckets = ix->prim.n;
	if (overflow)
		*overflow = ix->ovf_used;
}

uint64_t index_seed(const cellar_index *ix)
{
	return ix->seed;
}

void index_set_max_buckets(cellar_index *ix, uint64_t max)
{
	ix->max_buckets = max;
}

/* ---- the structural check -------------------------------------------------- */

/*
 * Walk every chain with its chunks already checked, marking its overflow
 * buckets in seen; *used gets the slots in use, *ovf the overflow buckets.
 * CELLAR_ECORRUPT for a broken link, a bucket in two chains, or a filter
 * that hides a key.
 */
static int verify_chains(cellar_index *ix, uint8_t *seen, uint64_t *used,
                         uint64_t *ovf)
{
	index_chain c;
	int rc;

	for (uint64_t a = 0; a < ix->prim.n; a++) {
		const uint8_t *head = index_bucket_addr(&ix->prim, a);
		for (rc = index_chain_first(&c, ix, a, INDEX_CHAIN_RAW);
		     rc == CELLAR_OK && c.b; rc = index_chain_next(&c)) {
			*used += (uint64_t)bucket_used(c.b);
			if (c.steps == 0)
				continue;
			if (seen[c.at])
				return CELLAR_ECORRUPT; /* in two chains, or a cycle */
			seen[c.at] = 1;
			++*ovf;
			for (int i = 0; i < BUCKET_SLOTS; i++)
				if (bucket_slot_used(c.b, i) &&
				    !bucket_chain_may_hold(head, bucket_tag(c.b, i)))
					return CELLAR_ECORRUPT; /* a filter hides a key */
		}
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* The free list: each bucket in range and in no chain, once. */
static int verify_free_list(cellar_index *ix, uint8_t *seen)
{
	for (uint32_t k = ix->free_head; k;) {
		if (k >= ix->ovf.n || seen[k])
			return CELLAR_ECORRUPT;
		seen[k] = 1;
		k = bucket_next(index_bucket_addr(&ix->ovf, k));
	}
	return CELLAR_OK;
}

int index_verify_all(cellar_index *ix)
{
	uint64_t used = 0, ovf = 0;
	uint8_t *seen;
	int rc;

	if ((rc = index_array_check(&ix->prim)) < 0 ||
	    (rc = index_array_check(&ix->ovf)) < 0)
		return rc;
	/* Checksums match, but is the table whole?  Every overflow bucket in
	 * at most one chain or the free list, once; counters that agree. */
	if (!(seen = calloc((size_t)ix->ovf.n, 1)))
		return cellar__error(CELLAR_ENOMEM, "index: out of memory");
	if ((rc = verify_chains(ix, seen, &used, &ovf)) == CELLAR_OK &&
	    (rc = verify_free_list(ix, seen)) == CELLAR_OK &&
	    (used != ix->count || ovf != ix->ovf_used))
		rc = CELLAR_ECORRUPT;
	free(seen);
	if (rc == CELLAR_ECORRUPT)
		cellar__error(rc, "index: chains or counters are inconsistent");
	return rc;
}

/* ---- overflow buckets ------------------------------------------------------ */

static int ovf_alloc(cellar_index *ix, uint32_t *out)
{
	uint8_t *b;
	int rc;

	if (ix->free_head) {
		uint32_t k = ix->free_head;
		if ((rc = index_bucket_own(&ix->ovf, k, &b)) < 0)
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
		if ((rc = index_array_reserve(&ix->ovf, ix->ovf.n + 1)) < 0 ||
		    (rc = index_bucket_own(&ix->ovf, ix->ovf.n, &b)) < 0)
			return rc;
		memset(b, 0, BUCKET_SIZE);
		*out = (uint32_t)ix->ovf.n++;
	}
	ix->ovf_used++;
	return CELLAR_OK;
}

/* The bucket must already be private. */
static void ovf_release(cellar_index *ix, uint32_t k)
{
	uint8_t *b = index_bucket_addr(&ix->ovf, k);

	memset(b, 0, BUCKET_SIZE);
	bucket_set_next(b, ix->free_head);
	ix->free_head = k;
	ix->ovf_used--;
}

/* ---- lookups --------------------------------------------------------------- */

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

int index_has_bad_chunk(const cellar_index *ix)
{
	const index_array *arrays[2] = { &ix->prim, &ix->ovf };

	for (int a = 0; a < 2; a++)
		for (size_t c = 0; c < arrays[a]->nchunks; c++)
			if (atomic_load_explicit(&arrays[a]->chunks[c].state,
			                         memory_order_relaxed) == CHUNK_BAD)
				return 1;
	return 0;
}

void index_distrust(cellar_index *ix)
{
	index_array_distrust(&ix->prim);
	index_array_distrust(&ix->ovf);
}

int index_has_loc(cellar_index *ix, uint64_t hash, uint16_t seg, uint32_t off,
                  int *found)
{
	struct loc_ctx l = { seg, off };
	int rc = index_lookup(ix, hash, match_loc, &l, NULL);

	*found = rc == CELLAR_OK;
	return rc == CELLAR_ENOTFOUND ? CELLAR_OK : rc;
}

/* ---- index_find ------------------------------------------------------------ */

/* What index_find has learned of a chain so far. */
typedef struct find_walk {
	uint32_t tag;
	index_match_fn match;
	void *ctx;
	int have_free;     /* ref names the first free slot */
	index_ref damaged; /* found: the first slot of tag whose record is damaged */
} find_walk;

/* Point ref at slot of bucket at (in the overflow array if in_ovf). */
static void ref_point(index_ref *ref, int in_ovf, uint64_t at, int slot)
{
	ref->in_ovf = in_ovf;
	ref->bucket = at;
	ref->slot = slot;
}

/* Remember slot i of b, whose record can't be read: if no intact record
 * holds the key, this slot is the one to replace. */
static void note_damaged(find_walk *w, const uint8_t *b, int in_ovf,
                         uint64_t at, int i, const index_ref *ref)
{
	index_ref *d = &w->damaged;

	d->found = 1;
	ref_point(d, in_ovf, at, i);
	d->has_prev = ref->has_prev;
	d->prev_in_ovf = ref->prev_in_ovf;
	d->prev = ref->prev;
	d->old_seg = bucket_seg(b, i);
	d->old_off = bucket_off(b, i);
}

/*
 * Look through bucket b (number at, in the overflow array if in_ovf) of the
 * chain: *hit = 1 with ref filled when a slot holds the key; note the first
 * free slot and the first damaged candidate on the way.
 */
static int find_in_bucket(find_walk *w, const uint8_t *b, int in_ovf,
                          uint64_t at, index_ref *ref, int *hit)
{
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		if (!bucket_slot_used(b, i)) {
			if (!w->have_free) {
				w->have_free = 1;
				ref_point(ref, in_ovf, at, i);
			}
			continue;
		}
		if (bucket_tag(b, i) != w->tag)
			continue;
		int h = 0, rc = w->match(w->ctx, bucket_seg(b, i), bucket_off(b, i),
		                         &h);
		if (rc == CELLAR_ECORRUPT && !w->damaged.found) {
			note_damaged(w, b, in_ovf, at, i, ref);
			continue;
		}
		if (rc < 0)
			return rc;
		if (h) {
			ref->found = 1;
			ref_point(ref, in_ovf, at, i);
			ref->old_seg = bucket_seg(b, i);
			ref->old_off = bucket_off(b, i);
			*hit = 1;
			return CELLAR_OK;
		}
	}
	return CELLAR_OK;
}

int index_find(cellar_index *ix, uint64_t hash, index_match_fn match,
               void *ctx, index_ref *ref)
{
	find_walk w = { index_tag(hash), match, ctx, 0, { 0 } };
	index_chain c;
	int hit = 0, rc;

	memset(ref, 0, sizeof *ref);
	ref->addr = index_addr(ix, w.tag);
	rc = index_chain_first(&c, ix, ref->addr, INDEX_CHAIN_CHECKED);
	while (rc == CELLAR_OK && c.b) {
		int in_ovf = c.steps > 0;
		uint64_t at = c.at;
		if ((rc = find_in_bucket(&w, c.b, in_ovf, at, ref, &hit)) < 0 || hit)
			return rc;
		if ((rc = index_chain_next(&c)) == CELLAR_OK && c.b) {
			ref->has_prev = 1;
			ref->prev_in_ovf = in_ovf;
			ref->prev = at;
		}
	}
	if (rc < 0)
		return rc;
	if (w.damaged.found) {
		w.damaged.addr = ref->addr;
		*ref = w.damaged;
		return CELLAR_OK;
	}
	/* Chain full: a new overflow bucket goes after the last one, which
	 * the cursor still names. */
	if (!w.have_free)
		ref_point(ref, c.steps > 0, c.at, -1);
	return CELLAR_OK;
}

/* ---- reserve, set, remove -------------------------------------------------- */

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
		if (!index_bucket_is_private(t[k].a, t[k].i))
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
		if ((rc = index_bucket_own(t[k].a, t[k].i, &b)) < 0)
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

void index_set(cellar_index *ix, const index_ref *ref, uint64_t hash,
               uint16_t seg, uint32_t off)
{
	uint8_t *b = index_bucket_addr(ref_array(ix, ref->in_ovf), ref->bucket);
	uint32_t tag = index_tag(hash);

	if (ref->found || ref->slot >= 0) {
		bucket_set(b, ref->slot, tag, seg, off);
	} else {
		uint8_t *nb = index_bucket_addr(&ix->ovf, ref->new_ovf);
		bucket_set(nb, 0, tag, seg, off);
		if (ref->in_ovf)
			bucket_set_next(b, ref->new_ovf);
		else
			bucket_set_chain(b, ref->new_ovf, 0);
	}
	if (ref_touches_filter(ref))
		bucket_filter_add(index_bucket_addr(&ix->prim, ref->addr), tag);
	if (!ref->found)
		ix->count++;
}

void index_remove(cellar_index *ix, const index_ref *ref)
{
	uint8_t *b = index_bucket_addr(ref_array(ix, ref->in_ovf), ref->bucket);

	bucket_clear_slot(b, ref->slot);
	if (ix->count)
		ix->count--;
	if (ref->in_ovf && ref->has_prev && bucket_used(b) == 0) {
		uint8_t *p = index_bucket_addr(ref_array(ix, ref->prev_in_ovf), ref->prev);
		if (ref->prev_in_ovf)
			bucket_set_next(p, bucket_next(b));
		else
			bucket_set_chain(p, bucket_next(b), bucket_chain_filter(p));
		ovf_release(ix, (uint32_t)ref->bucket);
	}
}

/* ---- splits ---------------------------------------------------------------- */

typedef struct entry {
	uint32_t tag;
	uint16_t seg;
	uint32_t off;
} entry;

/* A chain being split: its entries and its overflow buckets (the pool the
 * two new chains are laid out along).  Small chains stay on the stack. */
typedef struct split_set {
	entry *e;
	size_t ne, ecap;
	uint32_t *pool;
	size_t np, pcap;
	entry stack_e[8 * BUCKET_SLOTS];
	uint32_t stack_pool[8];
} split_set;

static void split_set_init(split_set *s)
{
	s->e = s->stack_e;
	s->ne = 0;
	s->ecap = sizeof s->stack_e / sizeof *s->stack_e;
	s->pool = s->stack_pool;
	s->np = 0;
	s->pcap = sizeof s->stack_pool / sizeof *s->stack_pool;
}

static void split_set_free(split_set *s)
{
	if (s->e != s->stack_e)
		free(s->e);
	if (s->pool != s->stack_pool)
		free(s->pool);
}

/* Add the used slots of bucket b to s->e. */
static int split_add_slots(split_set *s, const uint8_t *b)
{
	for (int i = 0; i < BUCKET_SLOTS; i++) {
		if (!bucket_slot_used(b, i))
			continue;
		if (s->ne == s->ecap) {
			entry *e = malloc(2 * s->ecap * sizeof *e);
			if (!e)
				return CELLAR_ENOMEM;
			memcpy(e, s->e, s->ne * sizeof *e);
			if (s->e != s->stack_e)
				free(s->e);
			s->e = e;
			s->ecap *= 2;
		}
		s->e[s->ne].tag = bucket_tag(b, i);
		s->e[s->ne].seg = bucket_seg(b, i);
		s->e[s->ne].off = bucket_off(b, i);
		s->ne++;
	}
	return CELLAR_OK;
}

/* Add overflow bucket k to s->pool. */
static int split_add_bucket(split_set *s, uint32_t k)
{
	if (s->np == s->pcap) {
		uint32_t *p = malloc(2 * s->pcap * sizeof *p);
		if (!p)
			return CELLAR_ENOMEM;
		memcpy(p, s->pool, s->np * sizeof *p);
		if (s->pool != s->stack_pool)
			free(s->pool);
		s->pool = p;
		s->pcap *= 2;
	}
	s->pool[s->np++] = k;
	return CELLAR_OK;
}

/* Make every bucket of the chain at primary bucket a private and gather
 * its entries and overflow buckets into s. */
static int split_gather(cellar_index *ix, uint64_t a, split_set *s)
{
	index_chain c;
	int rc;

	if ((rc = index_chain_first(&c, ix, a, INDEX_CHAIN_CHECKED)) < 0 ||
	    (rc = index_bucket_own(&ix->prim, a, &c.b)) < 0)
		return rc;
	for (;;) {
		if ((rc = split_add_slots(s, c.b)) < 0 ||
		    (rc = index_chain_next(&c)) < 0)
			return rc;
		if (!c.b)
			return CELLAR_OK;
		if ((rc = split_add_bucket(s, (uint32_t)c.at)) < 0 ||
		    (rc = index_bucket_own(&ix->ovf, c.at, &c.b)) < 0)
			return rc;
	}
}

/* Reorder e[0, n) so that the entries whose tag & mask is s come first;
 * returns how many those are. */
static size_t split_partition(entry *e, size_t n, uint64_t mask, uint64_t s)
{
	size_t stay = 0;

	for (size_t i = 0; i < n; i++) {
		if ((e[i].tag & mask) == s) {
			entry t = e[stay];
			e[stay++] = e[i];
			e[i] = t;
		}
	}
	return stay;
}

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
			uint8_t *nb = index_bucket_addr(&ix->ovf, k);
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

/* Split the bucket at the split pointer: CELLAR_OK, or an error (the table
 * as it was: ENOMEM, ECORRUPT for a damaged chunk or chain). */
static int split_one(cellar_index *ix)
{
	uint64_t half = 1ull << ix->level, s = ix->split, nb = half + s;
	split_set set;
	size_t used = 0, stay;
	uint8_t *b;
	int rc;

	split_set_init(&set);
	if ((rc = split_gather(ix, s, &set)) < 0 ||
	    (rc = index_array_reserve(&ix->prim, nb + 1)) < 0 ||
	    (rc = index_bucket_own(&ix->prim, nb, &b)) < 0)
		goto done;
	stay = split_partition(set.e, set.ne, 2 * half - 1, s);
	/* ceil(a/6) + ceil(b/6) <= chain length + 1, so the pool suffices. */
	chain_fill(ix, index_bucket_addr(&ix->prim, s), set.e, stay, set.pool,
	           &used);
	chain_fill(ix, b, set.e + stay, set.ne - stay, set.pool, &used);
	for (size_t i = used; i < set.np; i++)
		ovf_release(ix, set.pool[i]);
	ix->prim.n = nb + 1;
	if (++ix->split == half) {
		ix->level++;
		ix->split = 0;
	}
done:
	split_set_free(&set);
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

/* Does a table of n primary buckets hold keys without a split? */
static int holds(uint64_t n, uint64_t keys)
{
	return !(keys > n * BUCKET_SLOTS * INDEX_LOAD_NUM / INDEX_LOAD_DEN);
}

void index_geometry_for(uint64_t keys, uint32_t *level, uint64_t *split)
{
	uint64_t max = 1ull << INDEX_MAX_LEVEL, n;

	/* index_presize splits one bucket at a time from n = 1 until n holds
	 * keys or the level reaches INDEX_MAX_LEVEL: the least such n. */
	n = keys / (BUCKET_SLOTS * INDEX_LOAD_NUM / INDEX_LOAD_DEN + 1);
	if (n < 1)
		n = 1;
	if (n > max)
		n = max;
	while (n > 1 && holds(n - 1, keys))
		n--;
	while (n < max && !holds(n, keys))
		n++;
	*level = 63 - (uint32_t)__builtin_clzll(n);
	*split = n - (1ull << *level);
}

void index_grow(cellar_index *ix)
{
	(void)index_presize(ix, ix->count); /* a failed split: stay fuller */
}

/* ---- shape ----------------------------------------------------------------- */

int index_shape_of(cellar_index *ix, index_shape *out)
{
	index_chain c;
	int rc;

	memset(out, 0, sizeof *out);
	out->buckets = ix->prim.n;
	out->overflow_buckets = ix->ovf_used;
	for (uint64_t a = 0; a < ix->prim.n; a++) {
		uint64_t len = 0;
		for (rc = index_chain_first(&c, ix, a, INDEX_CHAIN_CHECKED);
		     rc == CELLAR_OK && c.b; rc = index_chain_next(&c)) {
			out->used_slots += (uint64_t)bucket_used(c.b);
			len++;
		}
		if (rc < 0)
			return rc;
		if (len > out->longest_chain)
			out->longest_chain = len;
	}
	return CELLAR_OK;
}

/* shadow.c - a read-only handle's rebuilt table (see shadow.h). */
#include "error.h"
#include "recovery.h"
#include "shadow.h"

void shadow_init(shadow *sh)
{
	pthread_mutex_init(&sh->mu, NULL);
	atomic_init(&sh->ix, NULL);
	sh->lossy = sh->failed = 0;
	sh->rc = CELLAR_OK;
	atomic_init(&sh->checked, 0);
}

void shadow_free(shadow *sh)
{
	index_free(atomic_load(&sh->ix));
	pthread_mutex_destroy(&sh->mu);
}

int shadow_get(shadow *sh, const segset *segs, const keyhash *kh,
               cellar_index **out, int *lossy)
{
	cellar_index *ix = atomic_load_explicit(&sh->ix, memory_order_acquire);
	int rc = CELLAR_OK;

	if (!ix) {
		pthread_mutex_lock(&sh->mu);
		ix = atomic_load_explicit(&sh->ix, memory_order_relaxed);
		if (!ix && !sh->failed) {
			rc = recovery_shadow(&ix, segs, kh, &sh->lossy);
			if (rc < 0) {
				sh->failed = 1;
				sh->rc = rc;
			} else {
				atomic_store_explicit(&sh->ix, ix, memory_order_release);
			}
		}
		rc = sh->failed ? sh->rc : CELLAR_OK;
		pthread_mutex_unlock(&sh->mu);
	}
	*out = ix;
	*lossy = sh->lossy;
	if (rc < 0)
		return cellar__error(rc, "the index is damaged and rebuilding it "
		                         "in memory failed: %s", cellar_strerror(rc));
	return CELLAR_OK;
}

int shadow_check(shadow *sh, cellar_index *ix)
{
	int rc = CELLAR_OK;

	if (atomic_load_explicit(&sh->checked, memory_order_acquire))
		return CELLAR_OK;
	pthread_mutex_lock(&sh->mu);
	if (!atomic_load_explicit(&sh->checked, memory_order_relaxed)) {
		rc = index_verify_all(ix);
		if (rc == CELLAR_ECORRUPT) { /* a damaged chunk, or a table at odds
		                              * with itself: serve from the shadow */
			cellar__error_clear();
			if (!index_has_bad_chunk(ix))
				index_distrust(ix);
			rc = CELLAR_OK;
		}
		if (rc == CELLAR_OK)
			atomic_store_explicit(&sh->checked, 1, memory_order_release);
	}
	pthread_mutex_unlock(&sh->mu);
	return rc;
}

int shadow_count(shadow *sh, cellar_index *ix, const segset *segs,
                 const keyhash *kh, uint64_t *out)
{
	cellar_index *sx;
	int lossy, rc;

	if (!index_has_bad_chunk(ix)) {
		*out = index_count(ix);
		return CELLAR_OK;
	}
	if ((rc = shadow_get(sh, segs, kh, &sx, &lossy)) < 0)
		return rc;
	*out = index_count(sx);
	return CELLAR_OK;
}

cellar_index *shadow_take(shadow *sh)
{
	cellar_index *ix = atomic_exchange(&sh->ix, NULL);

	sh->lossy = sh->failed = 0;
	sh->rc = CELLAR_OK;
	atomic_store(&sh->checked, 0);
	return ix;
}

void shadow_swap(shadow *a, shadow *b)
{
	cellar_index *ix = atomic_load(&a->ix);
	int lossy = a->lossy, failed = a->failed, rc = a->rc;
	int checked = atomic_load(&a->checked);

	atomic_store(&a->ix, atomic_load(&b->ix));
	a->lossy = b->lossy;
	a->failed = b->failed;
	a->rc = b->rc;
	atomic_store(&b->ix, ix);
	b->lossy = lossy;
	b->failed = failed;
	b->rc = rc;
	atomic_store(&a->checked, atomic_load(&b->checked));
	atomic_store(&b->checked, checked);
}

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

cellar_index *shadow_take(shadow *sh)
{
	cellar_index *ix = atomic_exchange(&sh->ix, NULL);

	sh->lossy = sh->failed = 0;
	sh->rc = CELLAR_OK;
	return ix;
}

void shadow_swap(shadow *a, shadow *b)
{
	cellar_index *ix = atomic_load(&a->ix);
	int lossy = a->lossy, failed = a->failed, rc = a->rc;

	atomic_store(&a->ix, atomic_load(&b->ix));
	a->lossy = b->lossy;
	a->failed = b->failed;
	a->rc = b->rc;
	atomic_store(&b->ix, ix);
	b->lossy = lossy;
	b->failed = failed;
	b->rc = rc;
}

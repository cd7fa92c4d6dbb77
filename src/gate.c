/* gate.c - iterators and compaction batches never overlap (see gate.h). */
#include "gate.h"

void gate_init(gate *g)
{
	pthread_mutex_init(&g->mutex, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->iters = 0;
	g->batches = 0;
}

void gate_destroy(gate *g)
{
	pthread_mutex_destroy(&g->mutex);
	pthread_cond_destroy(&g->cond);
}

void gate_iter_enter(gate *g)
{
	pthread_mutex_lock(&g->mutex);
	while (g->batches)
		pthread_cond_wait(&g->cond, &g->mutex);
	g->iters++;
	pthread_mutex_unlock(&g->mutex);
}

void gate_iter_leave(gate *g)
{
	pthread_mutex_lock(&g->mutex);
	g->iters--;
	pthread_mutex_unlock(&g->mutex);
}

void gate_batch_enter(gate *g, int *entered)
{
	pthread_mutex_lock(&g->mutex);
	*entered = g->iters == 0;
	g->batches += (unsigned)*entered;
	pthread_mutex_unlock(&g->mutex);
}

void gate_batch_leave(gate *g)
{
	pthread_mutex_lock(&g->mutex);
	g->batches--;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mutex);
}

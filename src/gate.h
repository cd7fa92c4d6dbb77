/*
 * gate.h - the gate between iterators and compaction batches.
 *
 * An iterator walks the log in write order; a compaction batch moves
 * records to the log's end, where an open iterator would meet them a
 * second time.  So the two never overlap: a batch starts only while no
 * iterator is open (else the pass stops with CELLAR_EBUSY), and a new
 * iterator waits for running batches to end.  Batches may overlap each
 * other (a background pass and cellar_compact), so they are counted.
 *
 * Owns that rule and its mutex; must not know what iterators or batches do.
 */
#ifndef CELLAR_GATE_H
#define CELLAR_GATE_H

#include <pthread.h>

typedef struct gate {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	unsigned iters;   /* iterators open */
	unsigned batches; /* compaction batches running */
} gate;

void gate_init(gate *g);
void gate_destroy(gate *g);

/** An iterator opens: wait until no batch runs, then count it. */
void gate_iter_enter(gate *g);
void gate_iter_leave(gate *g);

/** A batch wants to start: *entered is 0 if an iterator is open. */
void gate_batch_enter(gate *g, int *entered);
void gate_batch_leave(gate *g);

#endif

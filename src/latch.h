/*
 * latch.h - the reader/writer latch that guards the in-memory index and the
 * segment table.
 *
 * Readers are many and frequent, writers are one at a time (the db's writer
 * mutex orders them) and hold the latch only while they change memory, never
 * across file I/O.  A reader touches only its own cache line (one of
 * LATCH_SLOTS counters, picked per thread), so readers on different cores
 * never contend; the writer raises a flag and waits for the counters of the
 * slots that have ever been used to drain.
 */
#ifndef CELLAR_LATCH_H
#define CELLAR_LATCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "error.h" /* CELLAR_TLS_IE */

#define LATCH_SLOTS 64

typedef struct latch_slot {
	_Alignas(64) atomic_uint readers;
} latch_slot;

typedef struct latch {
	_Alignas(64) atomic_uint writer;   /* 1 while a writer holds or wants it */
	atomic_uint_fast64_t used;        /* bit i: slot i has been used */
	latch_slot slot[LATCH_SLOTS];
} latch;

void latch_init(latch *l);

/** Back off in a wait loop: spin a little, then yield the CPU. */
void latch_relax(unsigned *spins);

extern _Thread_local unsigned latch__thread_slot CELLAR_TLS_IE;
unsigned latch__assign_slot(void);

/** This thread's slot (also used for per-thread counters). */
static inline unsigned latch_thread_slot(void)
{
	unsigned s = latch__thread_slot;

	return __builtin_expect(s != ~0u, 1) ? s : latch__assign_slot();
}

/** Take the latch shared; returns the slot to pass to latch_read_unlock. */
unsigned latch_read_lock(latch *l);
void latch_read_unlock(latch *l, unsigned slot);

/** Take the latch exclusive.  Callers must already be the only writer. */
void latch_write_lock(latch *l);
void latch_write_unlock(latch *l);

#endif

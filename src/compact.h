/*
 * compact.h - reclaiming the space of dead records (see compact.c).
 *
 * A client of the writer: every change it makes to the log and the index
 * goes through writer.h's calls, and it never sees the public handle.
 */
#ifndef CELLAR_COMPACT_H
#define CELLAR_COMPACT_H

#include <stdatomic.h>

#include "cellar.h"
#include "gate.h"
#include "writer.h"

/**
 * A compaction pass over the segments whose dead share is at least
 * dead_pct percent.  Stops between batches once *stop (if not NULL) is
 * set (res->complete is then 0).  CELLAR_EBUSY when an iterator is open
 * and the pass has a batch to run; CELLAR_EFAILED after a failed write.
 * *res is filled in every case.
 */
int compact_run(writer *w, gate *gt, unsigned dead_pct, const atomic_int *stop,
                cellar_compact_result *res);

#endif

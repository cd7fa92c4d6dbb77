/*
 * bg.h - the background thread and events (bg.c).
 */
#ifndef CELLAR_BG_H
#define CELLAR_BG_H

#include <stdatomic.h>

#include "handle.h"

/** Report an event to the user's callback, if any. */
void bg_event(cellar_db *db, const cellar_event *ev);

/**
 * A compaction pass (compact.h) on the handle's writer; stops between
 * batches once *stop (if not NULL) is set.  Counted in the statistics and
 * reported as CELLAR_EVENT_COMPACT when it succeeds.
 */
int bg_compact_pass(cellar_db *db, cellar_compact_result *res,
                    const atomic_int *stop);

/** Start the background thread if the options ask for it. */
int bg_start(cellar_db *db);
/** Stop it (between two compaction batches) and wait; accepts a stopped one. */
void bg_stop(cellar_db *db);

#endif

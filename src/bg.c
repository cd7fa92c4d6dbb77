/*
 * bg.c - the background thread (periodic sync and automatic compaction)
 * and the events it and compaction report to the user's callback.
 *
 * Owns the thread's life (start, wake every sync_interval_ms, stop between
 * two compaction batches) and event delivery.  Must not: write or compact
 * itself (the writer and compact.c do), or hold the writer mutex beyond
 * one writer call.  Checkpoints it writes (writer_sync_offpath) run on
 * this thread without the writer mutex; bg_stop waits for one in progress.
 */
#include <time.h>

#include "bg.h"
#include "clock.h"
#include "compact.h"
#include "error.h"

void bg_event(cellar_db *db, const cellar_event *ev)
{
	if (db->opts.on_event)
		db->opts.on_event(ev, db->opts.event_ctx);
}

static void event_error(cellar_db *db, int rc)
{
	cellar_event ev = { CELLAR_EVENT_ERROR, rc, cellar_errmsg(), 0, NULL };

	bg_event(db, &ev);
}

int bg_compact_pass(cellar_db *db, cellar_compact_result *res,
                    const atomic_int *stop)
{
	int rc = compact_run(&db->w, &db->gate, db->opts.compact_dead_pct, stop,
	                     res);

	atomic_fetch_add_explicit(&db->compactions, 1, memory_order_relaxed);
	if (rc == CELLAR_OK) {
		cellar_event ev = { CELLAR_EVENT_COMPACT, 0, "", res->seconds, res };
		bg_event(db, &ev);
	}
	return rc;
}

/* Dead share of all segment bytes, in percent. */
static unsigned dead_pct(cellar_db *db)
{
	uint64_t live = 0, dead = 0;

	writer_lock(&db->w);
	for (size_t i = 0; i < db->segs.n; i++) {
		live += db->segs.list[i]->live;
		dead += db->segs.list[i]->dead;
	}
	writer_unlock(&db->w);
	return live + dead ? (unsigned)(dead * 100 / (live + dead)) : 0;
}

static void bg_sync(cellar_db *db)
{
	double t0 = clock_seconds();
	int rc;

	/* A due checkpoint is written on this thread, writers going on. */
	rc = writer_sync_offpath(&db->w, 0, NULL, NULL, NULL);
	if (rc < 0) {
		event_error(db, rc); /* writes now fail with CELLAR_EFAILED */
	} else {
		cellar_event ev = { CELLAR_EVENT_SYNC, 0, "", clock_seconds() - t0,
		                    NULL };
		bg_event(db, &ev);
	}
}

static void bg_compact(cellar_db *db)
{
	cellar_compact_result res;
	int rc = bg_compact_pass(db, &res, &db->bg.stop);

	if (rc == CELLAR_EBUSY)
		return; /* an iterator is open: try again next time */
	if (rc < 0) {
		writer_set_bg_error(&db->w, rc); /* later writes return it */
		event_error(db, rc);
	}
}

/* Wait one interval or until told to stop (bg.mutex held). */
static void bg_wait(cellar_db *db)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	uint64_t ns = (uint64_t)until.tv_nsec +
	              (uint64_t)db->opts.sync_interval_ms * 1000000ull;
	until.tv_sec += (time_t)(ns / 1000000000ull);
	until.tv_nsec = (long)(ns % 1000000000ull);
	pthread_cond_timedwait(&db->bg.cond, &db->bg.mutex, &until);
}

static void *bg_main(void *arg)
{
	cellar_db *db = arg;

	pthread_mutex_lock(&db->bg.mutex);
	while (!atomic_load(&db->bg.stop)) {
		bg_wait(db);
		if (atomic_load(&db->bg.stop))
			break;
		pthread_mutex_unlock(&db->bg.mutex);
		if (db->opts.sync_mode == CELLAR_SYNC_PERIODIC)
			bg_sync(db);
		if (db->opts.auto_compact_pct && !atomic_load(&db->bg.stop) &&
		    dead_pct(db) >= db->opts.auto_compact_pct)
			bg_compact(db);
		pthread_mutex_lock(&db->bg.mutex);
	}
	pthread_mutex_unlock(&db->bg.mutex);
	return NULL;
}

int bg_start(cellar_db *db)
{
	if (db->readonly || (db->opts.sync_mode != CELLAR_SYNC_PERIODIC &&
	                     !db->opts.auto_compact_pct))
		return CELLAR_OK;
	if (pthread_create(&db->bg.thread, NULL, bg_main, db) != 0)
		return cellar__error(CELLAR_ENOMEM, "cannot start the sync thread");
	db->bg.running = 1;
	return CELLAR_OK;
}

void bg_stop(cellar_db *db)
{
	if (!db->bg.running)
		return;
	pthread_mutex_lock(&db->bg.mutex);
	atomic_store(&db->bg.stop, 1);
	pthread_cond_signal(&db->bg.cond);
	pthread_mutex_unlock(&db->bg.mutex);
	pthread_join(db->bg.thread, NULL);
	db->bg.running = 0;
}

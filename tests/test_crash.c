/*
 * test_crash.c - crash safety on the fault file system.
 *
 * Each workload (a fixed script of puts, deletes, syncs and reopens) runs
 * once on fault(mem) to count its mutations N.  Then, for every k in 1..N
 * (all of them up to a cap, a sample beyond), it runs again on a fresh store
 * with a crash at mutation k, the file system is power-cut (seed 0: every
 * file back to its last sync; a nonzero seed: a random subset of the
 * unsynced writes kept, whole, torn or dropped), and the store is reopened on
 * the bare file system.  The durability contract is then checked:
 *
 *   a. it opens (it must repair whatever the crash left);
 *   b. a write acknowledged before the last successful sync (or close, or,
 *      with CELLAR_SYNC_ALWAYS, any acknowledged write) is there with exactly
 *      its value, unless later writes to that key may have replaced it;
 *   c. no key has a value that was never written for it, and no torn value;
 *   d. count equals the number of items iteration gives, and every item
 *      has a value the model allows and agrees with get.
 *
 * The model keeps, per key, its durable state (as of the last successful
 * sync) and the states of every write attempted since; any of those may be
 * what survives.  Runs on the mem file system through the fault wrapper
 * whatever CELLAR_TEST_FS says.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"
#include "common.h"
#include "fault.h"
#include "testhook.h"
#include "workload.h"

/* Crash points tried per workload before sampling, and the sample size. */
#define K_ALL 400
#define K_SAMPLE 250
/* Puts a checkpoint runs between its freeze and its write (ov.on). */
#define OVERLAP_PUTS 8
/* Wall-clock budget of one workload's crash loop, in seconds. */
#define BUDGET_S 25.0

/* ---- workloads ---------------------------------------------------------- */

static void wl_puts(workload *w)
{
	wl_init(w, "puts", CELLAR_SYNC_NONE, 1 << 20, 300, 16, 200);
	for (unsigned i = 0; i < w->nkeys; i++) {
		wl_add(w, OP_PUT, i);
		if (i % 60 == 59)
			wl_add(w, OP_SYNC, 0);
	}
	for (unsigned i = 0; i < 20; i++)
		wl_add(w, OP_PUT, 300 - 1 - i); /* unsynced overwrites at the end */
}

static void wl_overwrites(workload *w)
{
	uint64_t rng = 11;

	wl_init(w, "overwrites", CELLAR_SYNC_NONE, 1 << 20, 40, 8, 300);
	wl_mix(w, &rng, 400, 100, 70);
}

static void wl_deletes(workload *w)
{
	uint64_t rng = 22;

	wl_init(w, "deletes", CELLAR_SYNC_NONE, 1 << 20, 150, 8, 120);
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 300, 45, 50);
}

static void wl_rollover(workload *w)
{
	uint64_t rng = 33;

	wl_init(w, "segment_rollover", CELLAR_SYNC_NONE, 64 << 10, 120, 500, 1500);
	wl_mix(w, &rng, 260, 80, 40);
}

static void wl_splits(workload *w)
{
	uint64_t rng = 44;

	wl_init(w, "index_splits", CELLAR_SYNC_NONE, 64 << 10, 1500, 1, 24);
	for (unsigned i = 0; i < w->nkeys; i++) {
		wl_add(w, OP_PUT, i);
		if (i == 700)
			wl_add(w, OP_SYNC, 0);
	}
	wl_add(w, OP_REOPEN, 0); /* a checkpoint of a many-bucket table */
	wl_mix(w, &rng, 400, 50, 150);
	for (unsigned i = 0; i < 100; i++)
		wl_add(w, OP_PUT, i); /* unsynced, replayed past the checkpoint */
}

static void wl_always(workload *w)
{
	uint64_t rng = 55;

	wl_init(w, "sync_always", CELLAR_SYNC_ALWAYS, 64 << 10, 60, 200, 900);
	wl_mix(w, &rng, 200, 75, 0);
}

static void wl_many_syncs(workload *w)
{
	uint64_t rng = 77;

	wl_init(w, "many_syncs", CELLAR_SYNC_NONE, 64 << 10, 100, 200, 2000);
	wl_mix(w, &rng, 300, 75, 3);
}

static void wl_big(workload *w)
{
	uint64_t rng = 88;

	wl_init(w, "big_values", CELLAR_SYNC_NONE, 64 << 10, 16, 10, 3000);
	w->big = true;
	wl_mix(w, &rng, 36, 80, 5);
}

/* Overwrites and deletes leave dead records; compaction rewrites them. */
static void wl_compact(workload *w)
{
	uint64_t rng = 111;

	wl_init(w, "compaction", CELLAR_SYNC_NONE, 64 << 10, 150, 200, 800);
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 150, 60, 50);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 100, 50, 0);
	wl_add(w, OP_COMPACT, 0); /* with unsynced writes */
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 60, 40, 30);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 30, 50, 0);
	wl_add(w, OP_COMPACT, 0);
}

/*
 * Compaction whose checkpoints overlap puts (run with ov.on: the puts
 * after each OP_COMPACT run inside its checkpoint), small enough that
 * every mutation is a crash point.
 */
static void wl_compact_overlap(workload *w)
{
	uint64_t rng = 333;

	wl_init(w, "compaction_overlapping_puts", CELLAR_SYNC_NONE, 64 << 10,
	        40, 800, 1600);
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 60, 100, 20); /* ~ 2 segments' worth */
	wl_add(w, OP_COMPACT, 0);
	for (unsigned i = 0; i < OVERLAP_PUTS; i++)
		wl_add(w, OP_PUT, i); /* inside the pass's checkpoint */
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 40, 100, 0);
	wl_add(w, OP_COMPACT, 0);
	for (unsigned i = 0; i < OVERLAP_PUTS; i++)
		wl_add(w, OP_PUT, 20 + i); /* unsynced, inside it */
}

/*
 * Append buffers that fill (16 MiB segments, values of 6-9 KB): a full
 * buffer is set aside and written later, by a sync or between compaction
 * batches, without the writer mutex.  Run with ov.on, so that puts run
 * while a buffer set aside is being written, and inside checkpoints.
 */
static void wl_double_buffer(workload *w)
{
	uint64_t rng = 444;

	wl_init(w, "double_buffered_flushes", CELLAR_SYNC_NONE, 16 << 20, 300,
	        6000, 9000);
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 700, 85, 170); /* ~ 5 MB, a sync every ~1.2 MB */
	wl_add(w, OP_COMPACT, 0);
	for (unsigned i = 0; i < OVERLAP_PUTS; i++)
		wl_add(w, OP_PUT, i);
	wl_add(w, OP_SYNC, 0);
	wl_mix(w, &rng, 400, 80, 0); /* unsynced: buffers set aside unwritten */
}

/* The same in CELLAR_SYNC_ALWAYS mode, mostly deletes: tombstones. */
static void wl_compact_always(workload *w)
{
	uint64_t rng = 222;

	wl_init(w, "compaction_sync_always", CELLAR_SYNC_ALWAYS, 64 << 10, 80,
	        300, 900);
	w->compact_dead_pct = 5;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 80, 30, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 40, 50, 0);
	wl_add(w, OP_COMPACT, 0);
}

static void wl_reopen(workload *w)
{
	uint64_t rng = 66;

	wl_init(w, "reopen_midway", CELLAR_SYNC_NONE, 64 << 10, 200, 100, 600);
	wl_mix(w, &rng, 120, 85, 50);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 120, 70, 0);
	wl_add(w, OP_REOPEN, 0); /* the close writes a checkpoint over unsynced data */
	wl_mix(w, &rng, 60, 70, 25);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 40, 70, 0);
}

/*
 * Expiring puts (record type 4): a third of the versions expire soon and
 * a third far off; compaction copies the far ones with their expiry, the
 * clock moves past the soon ones and compaction drops them (tombstones,
 * or removal from the oldest segment), all of it crashed at every write.
 */
static void wl_expiring(workload *w)
{
	uint64_t rng = 555;

	wl_init(w, "expiring_puts", CELLAR_SYNC_NONE, 64 << 10, 120, 300, 1500);
	w->expire_every = 3;
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 150, 80, 40);
	wl_add(w, OP_COMPACT, 0); /* copies expiring puts forward */
	wl_add(w, OP_SYNC, 0);
	wl_add(w, OP_ADVANCE, 0);
	wl_add(w, OP_COMPACT, 0); /* drops the expired ones */
	wl_mix(w, &rng, 60, 60, 30);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_COMPACT, 0); /* after a reopen: flagged segments */
	wl_mix(w, &rng, 30, 70, 0);
}

/* ---- running a workload ------------------------------------------------- */

/* An error a call may return once the machine is off. */
static bool crash_error(int rc)
{
	return rc == CELLAR_EIO || rc == CELLAR_EFAILED;
}

/* A call returned rc: fine if OK, or if it failed after the crash. */
static void check_call(cellar_fs *fs, int rc, const char *what, size_t step)
{
	if (rc == CELLAR_OK)
		return;
	CHECK(fault_fs_crashed(fs), "step %zu: %s failed with %s (%s) before "
	      "any crash", step, what, cellar_strerror(rc), cellar_errmsg());
	CHECK(crash_error(rc), "step %zu: %s failed with %s (%s), want EIO or "
	      "EFAILED after the crash", step, what, cellar_strerror(rc),
	      cellar_errmsg());
}

static cellar_db *wl_open(const workload *w, cellar_fs *fs, model *m,
                          size_t step)
{
	cellar_options o;
	cellar_db *db = NULL;

	options_for(&o, w, fs, CELLAR_CREATE);
	int rc = cellar_open(&db, DIR, &o);
	check_call(fs, rc, "open", step);
	CHECK((rc == CELLAR_OK) == (db != NULL), "open: handle and result differ");
	if (db)
		m->opened = true;
	return db;
}

/* Compaction passes run, segments they rewrote and expired keys they
 * dropped, for the dry run. */
static uint64_t compactions, compacted, expired_dropped;

/* One acknowledged-or-not put of step j, into the model. */
static void do_put(const workload *w, cellar_fs *fs, model *m, cellar_db *db,
                   size_t j)
{
	static unsigned char val[WL_MAX_VAL];
	const op *o = &w->ops[j];
	kstate *s = &m->k[o->key];
	char key[32];
	size_t kn = key_of(o->key, key);
	size_t vn = val_of(o->key, o->ver, w->vmin, w->vmax, w->big, val);
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.expire_at = wl_expiry(w, o->ver);
	int rc = cellar_put_ex(db, key, kn, val, vn, &po);

	check_call(fs, rc, "put", j);
	pend_add(s, o->ver);
	if (rc == CELLAR_OK) {
		s->acked = o->ver;
		if (w->sync_mode == CELLAR_SYNC_ALWAYS)
			make_durable(s);
	}
}

/* One acknowledged-or-not delete of step j, into the model. */
static void do_del(const workload *w, cellar_fs *fs, model *m, cellar_db *db,
                   size_t j)
{
	const op *o = &w->ops[j];
	kstate *s = &m->k[o->key];
	char key[32];
	size_t kn = key_of(o->key, key);
	int rc = cellar_delete(db, key, kn);

	if (rc == CELLAR_ENOTFOUND) {
		/* An expired key is absent too: nothing was written. */
		CHECK(wl_absent(w, s->acked, wl_now), "step %zu: delete of key %u "
		      "(v%u) gave ENOTFOUND", j, o->key, s->acked);
		return;
	}
	check_call(fs, rc, "delete", j);
	pend_add(s, ABSENT);
	if (rc == CELLAR_OK) {
		CHECK(!wl_absent(w, s->acked, wl_now), "step %zu: delete of absent "
		      "key %u succeeded", j, o->key);
		s->acked = ABSENT;
		if (w->sync_mode == CELLAR_SYNC_ALWAYS)
			make_durable(s);
	}
}

/*
 * Checkpoints overlapping puts: with overlap on, every checkpoint written
 * off the writer's path (compaction's, a due one at sync) runs the next
 * puts of the script (up to OVERLAP_PUTS) between its freeze and its
 * write, as a concurrent writer would.
 */
static struct {
	bool on;
	const workload *w;
	cellar_fs *fs;
	model *m;
	cellar_db *db;
	size_t *j;
	uint64_t puts; /* puts run inside checkpoints, for the dry run */
} ov;

static void overlap_hook(void *ctx)
{
	(void)ctx;
	for (int n = 0; n < OVERLAP_PUTS && *ov.j + 1 < ov.w->nops &&
	                ov.w->ops[*ov.j + 1].kind == OP_PUT; n++) {
		(*ov.j)++;
		do_put(ov.w, ov.fs, ov.m, ov.db, *ov.j);
		ov.puts++;
	}
}

/* Run w on fs (the fault wrapper), recording what was acknowledged. */
static void wl_run(const workload *w, cellar_fs *fs, model *m)
{
	cellar_db *db;
	int rc;
	size_t j;

	wl_now = WL_T_RUN;
	db = wl_open(w, fs, m, 0);

	ov.w = w;
	ov.fs = fs;
	ov.m = m;
	ov.j = &j;
	if (ov.on)
		cellar__test_set_ckpt_hook(overlap_hook, NULL);
	ov.db = db;
	for (j = 0; j < w->nops; j++) {
		const op *o = &w->ops[j];

		if (o->kind == OP_ADVANCE) {
			wl_now = WL_T_LATE;
			continue;
		}
		if (o->kind == OP_REOPEN) {
			if (db) {
				rc = cellar_close(db);
				check_call(fs, rc, "close", j);
				if (rc == CELLAR_OK)
					model_synced(m);
			}
			db = wl_open(w, fs, m, j);
			ov.db = db;
			continue;
		}
		if (!db)
			continue;
		switch (o->kind) {
		case OP_PUT:
			do_put(w, fs, m, db, j);
			break;
		case OP_DEL:
			do_del(w, fs, m, db, j);
			break;
		case OP_SYNC:
			rc = cellar_sync(db);
			check_call(fs, rc, "sync", j);
			if (rc == CELLAR_OK)
				model_synced(m);
			break;
		case OP_COMPACT: {
			/* changes no key: the model stays as it is */
			cellar_compact_result res;
			rc = cellar_compact(db, &res);
			check_call(fs, rc, "compact", j);
			if (rc == CELLAR_OK) {
				cellar_db_stats st;
				compactions++;
				compacted += res.segments_compacted;
				if (cellar_stats_sized(db, &st, sizeof st) == CELLAR_OK)
					expired_dropped += st.expired_dropped;
			}
			break;
		}
		}
	}
	if (db) {
		rc = cellar_close(db);
		check_call(fs, rc, "close", w->nops);
		if (rc == CELLAR_OK)
			model_synced(m);
	}
}

/* ---- checking the store after the power cut ----------------------------- */

/* The repaired store, opened once more, must hold exactly the same. */
static void check_stable(const workload *w, cellar_fs *base, const model *m,
                         const unsigned *state)
{
	static unsigned char buf[WL_MAX_VAL];
	cellar_options o;
	cellar_db *db = NULL;
	char key[32];
	int rc;

	options_for(&o, w, base, 0);
	rc = cellar_open(&db, DIR, &o);
	CHECK(rc == CELLAR_OK, "second reopen: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	for (unsigned i = 0; i < m->nkeys; i++) {
		size_t n = 0;
		size_t kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		unsigned ver = rc == CELLAR_OK ? val_version(i, buf, n) : ABSENT;
		CHECK((rc == CELLAR_OK || rc == CELLAR_ENOTFOUND) && ver == state[i],
		      "second reopen: key %u is %s v%u, the first gave v%u", i,
		      cellar_strerror(rc), ver, state[i]);
	}
	CHECK(cellar_close(db) == CELLAR_OK, "close after the second reopen");
}

/* ---- the crash loop ----------------------------------------------------- */

/* One crash at mutation k, then a power cut with seed, then the checks. */
static void crash_once(const workload *w, uint64_t k, uint64_t seed,
                       unsigned *state)
{
	cellar_fs *base, *ff;
	model m;

	snprintf(wl_where, sizeof wl_where, "workload %s, crash at mutation %llu, "
	         "power cut seed %llu", w->name, (unsigned long long)k,
	         (unsigned long long)seed);
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	fault_fs_crash_at(ff, k);
	wl_run(w, ff, &m);
	CHECK(fault_fs_crashed(ff), "the crash did not happen (the workload "
	      "is not deterministic?)");
	int rc = fault_fs_power_cut(ff, seed);
	CHECK(rc == CELLAR_OK, "power cut: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	cellar_fs_free(ff);
	check_store(w, base, &m, state, "reopen after the power cut");
	if (seed)
		check_stable(w, base, &m, state);
	model_free(&m);
	cellar_fs_free(base);
}

static void crash_all(workload *w)
{
	cellar_fs *base, *ff;
	unsigned *state = calloc(w->nkeys, sizeof *state);
	model m;
	uint64_t n, rng = 99, tried = 0;
	double start = now_s();

	cr_assert_not_null(state);
	/* The dry run: no crash; everything must be there after close. */
	snprintf(wl_where, sizeof wl_where, "workload %s, dry run", w->name);
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	compactions = compacted = expired_dropped = 0;
	ov.puts = 0;
	wl_run(w, ff, &m);
	n = fault_fs_mutations(ff);
	CHECK(!ov.on || ov.puts > 0, "no put ran inside a checkpoint");
	CHECK(compactions == 0 || compacted > 0, "%llu compaction passes "
	      "rewrote no segment", (unsigned long long)compactions);
	CHECK(!w->expire_every || expired_dropped > 0, "compaction dropped no "
	      "expired key");
	CHECK(!fault_fs_crashed(ff), "crashed without a crash point");
	for (unsigned i = 0; i < w->nkeys; i++)
		CHECK(m.k[i].npend == 0 && m.k[i].durable == m.k[i].acked,
		      "key %u not durable after a clean close", i);
	cellar_fs_free(ff);
	check_store(w, base, &m, state, "reopen after the power cut");
	model_free(&m);
	cellar_fs_free(base);
	CHECK(n > 0, "no mutations");

	for (uint64_t k = 1; k <= n; k++) {
		/* every k up to K_ALL and the last 40; a sample in between */
		if (n > K_ALL + 40 && k > K_ALL && k <= n - 40 &&
		    tc_rand(&rng) % (n - K_ALL - 40) >= K_SAMPLE)
			continue;
		if (now_s() - start > BUDGET_S) {
			cr_log_info("crash %s: time budget spent after %llu of %llu "
			            "crash points", w->name, (unsigned long long)tried,
			            (unsigned long long)n);
			break;
		}
		crash_once(w, k, 0, state);
		crash_once(w, k, k * 0x2545f4914f6cdd1dull | 1, state);
		tried++;
	}
	cr_log_info("crash %s: %llu mutations, %llu crash points, %.1f s",
	            w->name, (unsigned long long)n, (unsigned long long)tried,
	            now_s() - start);
	free(state);
	wl_free(w);
}

Test(crash, puts_with_syncs)
{
	workload w;
	wl_puts(&w);
	crash_all(&w);
}

Test(crash, overwrites)
{
	workload w;
	wl_overwrites(&w);
	crash_all(&w);
}

Test(crash, deletes)
{
	workload w;
	wl_deletes(&w);
	crash_all(&w);
}

Test(crash, segment_rollover)
{
	workload w;
	wl_rollover(&w);
	crash_all(&w);
}

Test(crash, index_splits_and_checkpoint)
{
	workload w;
	wl_splits(&w);
	crash_all(&w);
}

Test(crash, sync_always)
{
	workload w;
	wl_always(&w);
	crash_all(&w);
}

Test(crash, many_syncs)
{
	workload w;
	wl_many_syncs(&w);
	crash_all(&w);
}

Test(crash, values_larger_than_the_append_buffer)
{
	workload w;
	wl_big(&w);
	crash_all(&w);
}

Test(crash, compaction)
{
	workload w;
	wl_compact(&w);
	crash_all(&w);
}

Test(crash, compaction_with_puts_during_its_checkpoints)
{
	workload w;
	wl_compact_overlap(&w);
	ov.on = true;
	crash_all(&w);
	ov.on = false;
	cellar__test_set_ckpt_hook(NULL, NULL);
}

Test(crash, double_buffered_flushes_with_puts_overlapping)
{
	workload w;
	wl_double_buffer(&w);
	ov.on = true;
	cellar__test_set_flush_hook(overlap_hook, NULL);
	crash_all(&w);
	ov.on = false;
	cellar__test_set_flush_hook(NULL, NULL);
	cellar__test_set_ckpt_hook(NULL, NULL);
}

Test(crash, compaction_sync_always)
{
	workload w;
	wl_compact_always(&w);
	crash_all(&w);
}

Test(crash, reopen_midway)
{
	workload w;
	wl_reopen(&w);
	crash_all(&w);
}

Test(crash, expiring_puts_and_their_compaction)
{
	workload w;
	wl_expiring(&w);
	crash_all(&w);
}

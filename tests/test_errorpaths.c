/*
 * test_errorpaths.c - errors in the middle of a workload.
 *
 * Each workload (puts, overwrites, deletes, syncs, a reopen; segments of
 * 64 KiB so that they roll over) runs once on fault(mem) to count the
 * operations of each kind.  Then, for every k, it runs again with the kth
 * operation of one kind (write, sync, open, truncate, rename, sync_dir, map,
 * remove, lock, mkdir, list) failing once with CELLAR_EIO or CELLAR_ENOSPC,
 * or with the kth write torn, or with the disk full from the kth write on.
 * Checked throughout:
 *
 *   - a call that fails returns the injected error or CELLAR_EFAILED (never
 *     another code, never a crash), and only once the fault has fired;
 *   - after an error the handle either goes on working or refuses every
 *     later write with CELLAR_EFAILED, until it is reopened; an open that
 *     failed succeeds when tried again;
 *   - after an error, every read gives exactly what was acknowledged;
 *   - at the end, after close (and, for EIO, a power cut), the store
 *     reopens on the bare file system with everything synced (by a
 *     successful cellar_sync, cellar_close, or CELLAR_SYNC_ALWAYS write)
 *     intact, and no value that was never written.
 *
 * Runs on the mem file system through the fault wrapper whatever
 * CELLAR_TEST_FS says.
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
#include "workload.h"

/* Values: short ones (big is never set here), at most MAX_VAL bytes. */
#define MAX_VAL 8192u
/* Fault points tried per workload and kind before sampling. */
#define K_ALL 300
/* Wall-clock budget of one test, in seconds. */
#define BUDGET_S 20.0

/* ---- workloads ---------------------------------------------------------- */

static void wl_buffered(workload *w)
{
	uint64_t rng = 101;

	wl_init(w, "buffered", CELLAR_SYNC_NONE, 64 << 10, 120, 200, 1500);
	wl_mix(w, &rng, 150, 80, 20);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 100, 70, 25);
}

static void wl_always(workload *w)
{
	uint64_t rng = 202;

	wl_init(w, "sync_always", CELLAR_SYNC_ALWAYS, 64 << 10, 40, 300, 900);
	wl_mix(w, &rng, 80, 75, 0);
	wl_add(w, OP_REOPEN, 0);
	wl_mix(w, &rng, 50, 75, 0);
}

/* A failure near the end, then reopens with no new writes to sync. */
static void wl_reopen_idle(workload *w)
{
	uint64_t rng = 303;

	wl_init(w, "reopen_idle", CELLAR_SYNC_NONE, 64 << 10, 60, 100, 700);
	wl_mix(w, &rng, 60, 80, 15);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_SYNC, 0);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_SYNC, 0);
}

/* Dead records, then compaction passes with the fault somewhere inside. */
static void wl_compact(workload *w)
{
	uint64_t rng = 404;

	wl_init(w, "compaction", CELLAR_SYNC_NONE, 64 << 10, 100, 200, 900);
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 150, 55, 40);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 60, 50, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 20, 50, 10);
}

/* Expiring puts, the clock past some of them, and compactions that drop
 * them (writer_expire_if_at's tombstones) with the fault inside. */
static void wl_expiring(workload *w)
{
	uint64_t rng = 505;

	wl_init(w, "expiring", CELLAR_SYNC_NONE, 64 << 10, 80, 200, 900);
	w->expire_every = 3;
	w->compact_dead_pct = 10;
	for (unsigned i = 0; i < w->nkeys; i++)
		wl_add(w, OP_PUT, i);
	wl_mix(w, &rng, 100, 70, 40);
	wl_add(w, OP_COMPACT, 0);
	wl_add(w, OP_ADVANCE, 0);
	wl_add(w, OP_COMPACT, 0);
	wl_mix(w, &rng, 40, 60, 20);
	wl_add(w, OP_REOPEN, 0);
	wl_add(w, OP_COMPACT, 0);
}

typedef void (*wl_builder)(workload *w);
static const wl_builder builders[] = { wl_buffered, wl_always,
                                       wl_reopen_idle, wl_compact,
                                       wl_expiring };

/* ---- running a workload with a fault ------------------------------------ */

/* The fault under test. */
typedef struct fault {
	fault_op kind;  /* FAULT_NKINDS: a torn write */
	uint64_t nth;
	int err;        /* what the failing call should give */
	int persistent; /* disk full: from nth on */
	size_t keep;    /* torn write: bytes that land */
} fault;

static const char *const kind_names[FAULT_NKINDS + 1] = {
	"open", "read", "write", "size", "truncate", "sync", "map", "remove",
	"rename", "list", "mkdir", "sync_dir", "lock", "torn write",
};

static void fault_arm(cellar_fs *ff, const fault *f)
{
	if (f->kind == FAULT_NKINDS)
		fault_fs_tear(ff, f->nth, f->keep);
	else
		fault_fs_fail(ff, f->kind, f->nth, f->err, f->persistent);
}

/* Has the fault fired (is the nth operation behind us)? */
static bool fault_fired(cellar_fs *ff, const fault *f)
{
	fault_op kind = f->kind == FAULT_NKINDS ? FAULT_WRITE : f->kind;
	return f->nth && fault_fs_count(ff, kind) >= f->nth;
}

typedef struct runner {
	const workload *w;
	cellar_fs *ff;
	const fault *f;
	model *m;
	cellar_db *db;
	bool refusing;  /* the handle answered EFAILED: it must go on so */
	unsigned errors; /* calls that failed */
	unsigned injected; /* of which with the injected error */
} runner;

/* Every key reads as acknowledged (the failed call changed nothing). */
static void check_reads(runner *r, size_t step)
{
	static unsigned char buf[MAX_VAL], want[MAX_VAL];
	char key[32];

	for (unsigned i = 0; i < r->m->nkeys; i++) {
		const kstate *s = &r->m->k[i];
		size_t kn = key_of(i, key), n = 0;
		int rc = cellar_get(r->db, key, kn, buf, sizeof buf, &n);
		if (wl_absent(r->w, s->acked, wl_now)) {
			CHECK(rc == CELLAR_ENOTFOUND, "step %zu: after the error key "
			      "%u reads %s, want ENOTFOUND", step, i,
			      cellar_strerror(rc));
			continue;
		}
		size_t wn = val_of(i, s->acked, r->w->vmin, r->w->vmax, false,
		                   want);
		CHECK(rc == CELLAR_OK, "step %zu: after the error key %u reads "
		      "%s (%s), want v%u", step, i, cellar_strerror(rc),
		      cellar_errmsg(), s->acked);
		CHECK(n == wn && memcmp(buf, want, n) == 0, "step %zu: after the "
		      "error key %u reads v%u, want v%u", step, i,
		      val_version(i, buf, n), s->acked);
	}
}

/*
 * A call on the handle returned rc.  Returns true if it succeeded.  Checks
 * that a failure comes from the fault, with the injected error or EFAILED,
 * and that a refusing handle keeps refusing.
 */
static bool check_call(runner *r, int rc, const char *what, size_t step,
                       bool writes)
{
	if (writes && r->refusing)
		CHECK(rc == CELLAR_EFAILED, "step %zu: %s gives %s (%s) after the "
		      "handle answered EFAILED", step, what, cellar_strerror(rc),
		      cellar_errmsg());
	if (rc == CELLAR_OK)
		return true;
	CHECK(fault_fired(r->ff, r->f), "step %zu: %s fails with %s (%s) "
	      "before the fault", step, what, cellar_strerror(rc),
	      cellar_errmsg());
	CHECK(rc == r->f->err || rc == CELLAR_EFAILED, "step %zu: %s fails "
	      "with %s (%s), want %s or EFAILED", step, what,
	      cellar_strerror(rc), cellar_errmsg(), cellar_strerror(r->f->err));
	if (!r->errors) {
		/* Name the first failure in every later message. */
		size_t n = strlen(wl_where);
		snprintf(wl_where + n, sizeof wl_where - n, "; first failure: step %zu, "
		         "%s gave %s (%s)", step, what, cellar_strerror(rc),
		         cellar_errmsg());
	}
	r->errors++;
	if (rc == r->f->err)
		r->injected++;
	if (rc == CELLAR_EFAILED && writes)
		r->refusing = true;
	return false;
}

/*
 * After an open: what each key holds must be allowed, and is what later
 * reads are checked against.  (Writes acknowledged by a handle whose sync
 * then failed may or may not be there; the model's durable state and
 * pending writes stay as they are.)
 */
static void observe(runner *r)
{
	static unsigned char buf[MAX_VAL];
	char key[32];

	for (unsigned i = 0; i < r->m->nkeys; i++) {
		size_t kn = key_of(i, key), n = 0;
		int rc = cellar_get(r->db, key, kn, buf, sizeof buf, &n);
		r->m->k[i].acked = check_value(r->w, r->m, i, rc, buf, n,
		                               "get after open");
	}
}

static void run_open(runner *r, size_t step)
{
	cellar_options o;
	int rc;

	options_for(&o, r->w, r->ff, CELLAR_CREATE);
	r->refusing = false;
	for (int attempt = 0; attempt < 2; attempt++) {
		r->db = NULL;
		rc = cellar_open(&r->db, DIR, &o);
		CHECK((rc == CELLAR_OK) == (r->db != NULL), "open: handle and "
		      "result differ");
		if (check_call(r, rc, "open", step, false)) {
			r->m->opened = true;
			observe(r);
			return;
		}
		/* A full disk may keep a store that needs repair from opening
		 * for writing; a one-off failure must not. */
		if (r->f->persistent)
			return;
	}
	CHECK(false, "step %zu: open fails again after a one-off %s failure "
	      "(%s)", step, kind_names[r->f->kind], cellar_errmsg());
}

static void run_close(runner *r, size_t step)
{
	int rc = cellar_close(r->db);

	r->db = NULL;
	if (r->refusing)
		CHECK(rc == CELLAR_EFAILED, "step %zu: close of a refusing handle "
		      "gives %s", step, cellar_strerror(rc));
	else if (check_call(r, rc, "close", step, false))
		model_synced(r->m);
}

static void wl_run(runner *r)
{
	static unsigned char val[MAX_VAL];
	const workload *w = r->w;
	char key[32];
	int rc;

	wl_now = WL_T_RUN;
	run_open(r, 0);
	for (size_t j = 0; j < w->nops; j++) {
		const op *o = &w->ops[j];
		kstate *s = &r->m->k[o->key];
		size_t kn = key_of(o->key, key);
		bool ok = true;

		if (o->kind == OP_ADVANCE) {
			wl_now = WL_T_LATE;
			continue;
		}
		if (o->kind == OP_REOPEN) {
			if (r->db)
				run_close(r, j);
			run_open(r, j);
			continue;
		}
		if (!r->db)
			continue;
		switch (o->kind) {
		case OP_PUT: {
			size_t vn = val_of(o->key, o->ver, w->vmin, w->vmax, false,
			                   val);
			cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
			po.expire_at = wl_expiry(w, o->ver);
			rc = cellar_put_ex(r->db, key, kn, val, vn, &po);
			ok = check_call(r, rc, "put", j, true);
			if (rc != CELLAR_EFAILED)
				pend_add(s, o->ver);
			if (ok) {
				s->acked = o->ver;
				if (w->sync_mode == CELLAR_SYNC_ALWAYS)
					make_durable(s);
			}
			break;
		}
		case OP_DEL:
			rc = cellar_delete(r->db, key, kn);
			if (rc == CELLAR_ENOTFOUND && !r->refusing) {
				CHECK(wl_absent(w, s->acked, wl_now), "step %zu: delete "
				      "of key %u (v%u) gives ENOTFOUND", j, o->key,
				      s->acked);
				break;
			}
			ok = check_call(r, rc, "delete", j, true);
			if (rc != CELLAR_EFAILED)
				pend_add(s, ABSENT);
			if (ok) {
				CHECK(!wl_absent(w, s->acked, wl_now), "step %zu: "
				      "delete of absent key %u succeeds", j, o->key);
				s->acked = ABSENT;
				if (w->sync_mode == CELLAR_SYNC_ALWAYS)
					make_durable(s);
			}
			break;
		case OP_SYNC:
			rc = cellar_sync(r->db);
			ok = check_call(r, rc, "sync", j, true);
			if (ok)
				model_synced(r->m);
			break;
		case OP_COMPACT:
			/* changes no key: the model stays as it is */
			rc = cellar_compact(r->db, NULL);
			ok = check_call(r, rc, "compact", j, true);
			break;
		}
		if (!ok)
			check_reads(r, j);
	}
	if (r->db)
		run_close(r, w->nops);
}

/* ---- the loops ---------------------------------------------------------- */

/* Run w with fault f, then check the store. */
static void run_with(const workload *w, const fault *f, unsigned *state,
                     unsigned *errors, unsigned *injected)
{
	cellar_fs *base, *ff;
	model m;
	runner r = { 0 };
	int rc;

	snprintf(wl_where, sizeof wl_where, "workload %s, %s #%llu fails with %s%s",
	         w->name, kind_names[f->kind], (unsigned long long)f->nth,
	         cellar_strerror(f->err), f->persistent ? " from then on" : "");
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	fault_arm(ff, f);
	r.w = w;
	r.ff = ff;
	r.f = f;
	r.m = &m;
	wl_run(&r);
	*errors += r.errors;
	*injected += r.injected;
	if (f->err == CELLAR_EIO) {
		/* Then the power goes: only what was synced may be relied on. */
		rc = fault_fs_power_cut(ff, 0);
		CHECK(rc == CELLAR_OK, "power cut: %s (%s)", cellar_strerror(rc),
		      cellar_errmsg());
	}
	cellar_fs_free(ff);
	check_store(w, base, &m, state, "reopen");
	model_free(&m);
	cellar_fs_free(base);
}

/* Count the operations of kind a clean run of w makes (and check it). */
static uint64_t dry_run(const workload *w, fault_op kind, unsigned *state)
{
	cellar_fs *base, *ff;
	model m;
	fault none = { FAULT_WRITE, 0, CELLAR_EIO, 0, 0 };
	runner r = { 0 };
	uint64_t n;

	snprintf(wl_where, sizeof wl_where, "workload %s, dry run", w->name);
	new_fs(&base, &ff);
	model_init(&m, w->nkeys);
	r.w = w;
	r.ff = ff;
	r.f = &none;
	r.m = &m;
	wl_run(&r);
	n = fault_fs_count(ff, kind == FAULT_NKINDS ? FAULT_WRITE : kind);
	cellar_fs_free(ff);
	check_store(w, base, &m, state, "reopen");
	model_free(&m);
	cellar_fs_free(base);
	return n;
}

/*
 * For every workload and every k: the kth operation of kind fails with err
 * (torn when kind is FAULT_NKINDS; from then on when persistent).
 */
static void fail_each(fault_op kind, int err, int persistent)
{
	double start = now_s();
	uint64_t tried = 0, total = 0, rng = 7;
	unsigned errors = 0, injected = 0;

	for (size_t b = 0; b < sizeof builders / sizeof *builders; b++) {
		workload w;
		builders[b](&w);
		unsigned *state = calloc(w.nkeys, sizeof *state);
		cr_assert_not_null(state);
		uint64_t n = dry_run(&w, kind, state);
		total += n;
		for (uint64_t k = 1; k <= n; k++) {
			if (n > K_ALL && tc_rand(&rng) % n >= K_ALL)
				continue;
			if (now_s() - start > BUDGET_S) {
				cr_log_info("errorpaths %s: time budget spent",
				            kind_names[kind]);
				break;
			}
			for (size_t keep = 0; keep < (kind == FAULT_NKINDS ? 2 : 1);
			     keep++) {
				fault f = { kind, k, err, persistent, keep ? 100 : 5 };
				run_with(&w, &f, state, &errors, &injected);
			}
			tried++;
		}
		free(state);
		wl_free(&w);
	}
	cr_log_info("errorpaths %s %s%s: %llu of %llu fault points, %u calls "
	            "failed, %u with the injected error, %.1f s",
	            kind_names[kind], cellar_strerror(err),
	            persistent ? " (persistent)" : "", (unsigned long long)tried,
	            (unsigned long long)total, errors, injected, now_s() - start);
	/* These faults must have reached the API at least once (a failed map
	 * or remove may rightly be absorbed: reads fall back to read_at, a
	 * stale index.tmp stays). */
	if (kind != FAULT_MAP && kind != FAULT_REMOVE)
		cr_expect(total == 0 || errors > 0, "no %s fault made any call "
		          "fail", kind_names[kind]);
}

Test(errorpaths, write_fails_eio) { fail_each(FAULT_WRITE, CELLAR_EIO, 0); }
Test(errorpaths, write_fails_enospc) { fail_each(FAULT_WRITE, CELLAR_ENOSPC, 0); }
Test(errorpaths, sync_fails_eio) { fail_each(FAULT_SYNC, CELLAR_EIO, 0); }
Test(errorpaths, sync_fails_enospc) { fail_each(FAULT_SYNC, CELLAR_ENOSPC, 0); }
Test(errorpaths, open_fails_eio) { fail_each(FAULT_OPEN, CELLAR_EIO, 0); }
Test(errorpaths, open_fails_enospc) { fail_each(FAULT_OPEN, CELLAR_ENOSPC, 0); }
Test(errorpaths, truncate_fails_eio) { fail_each(FAULT_TRUNCATE, CELLAR_EIO, 0); }
Test(errorpaths, truncate_fails_enospc) { fail_each(FAULT_TRUNCATE, CELLAR_ENOSPC, 0); }
Test(errorpaths, rename_fails_eio) { fail_each(FAULT_RENAME, CELLAR_EIO, 0); }
Test(errorpaths, rename_fails_enospc) { fail_each(FAULT_RENAME, CELLAR_ENOSPC, 0); }
Test(errorpaths, sync_dir_fails_eio) { fail_each(FAULT_SYNC_DIR, CELLAR_EIO, 0); }
Test(errorpaths, sync_dir_fails_enospc) { fail_each(FAULT_SYNC_DIR, CELLAR_ENOSPC, 0); }
Test(errorpaths, map_fails_eio) { fail_each(FAULT_MAP, CELLAR_EIO, 0); }
Test(errorpaths, map_fails_enospc) { fail_each(FAULT_MAP, CELLAR_ENOSPC, 0); }
Test(errorpaths, remove_fails_eio) { fail_each(FAULT_REMOVE, CELLAR_EIO, 0); }
Test(errorpaths, lock_fails_eio) { fail_each(FAULT_LOCK, CELLAR_EIO, 0); }
Test(errorpaths, mkdir_fails_eio) { fail_each(FAULT_MKDIR, CELLAR_EIO, 0); }
Test(errorpaths, list_fails_eio) { fail_each(FAULT_LIST, CELLAR_EIO, 0); }
Test(errorpaths, torn_write) { fail_each(FAULT_NKINDS, CELLAR_EIO, 0); }
Test(errorpaths, disk_full) { fail_each(FAULT_WRITE, CELLAR_ENOSPC, 1); }

/*
 * The smallest case of the reopen_idle failure: a sync whose fsync fails
 * leaves a write in the file but not on disk; the next handle reads it back
 * (recovery replays it), syncs successfully and closes cleanly, yet a power
 * cut then takes the write away.  What a handle has shown and then synced
 * must be durable.
 */
Test(errorpaths, write_replayed_after_failed_fsync_is_durable_after_sync)
{
	cellar_fs *base, *ff;
	cellar_db *db = NULL;
	cellar_options o = CELLAR_OPTIONS_INIT;
	char buf[16];
	size_t n = 0;
	int rc;

	snprintf(wl_where, sizeof wl_where, "replayed write");
	new_fs(&base, &ff);
	o.flags = CELLAR_CREATE;
	o.fs = ff;
	cr_assert_eq(cellar_open(&db, DIR, &o), CELLAR_OK);
	cr_assert_eq(cellar_put(db, "k", 1, "v", 1), CELLAR_OK);
	fault_fs_fail(ff, FAULT_SYNC, fault_fs_count(ff, FAULT_SYNC) + 1,
	              CELLAR_EIO, 0);
	cr_assert_eq(cellar_sync(db), CELLAR_EIO);
	cr_assert_eq(cellar_close(db), CELLAR_EFAILED);

	o.flags = 0;
	cr_assert_eq(cellar_open(&db, DIR, &o), CELLAR_OK);
	rc = cellar_get(db, "k", 1, buf, sizeof buf, &n);
	cr_assert_eq(rc, CELLAR_OK, "the write is not replayed: %s",
	             cellar_strerror(rc));
	cr_assert_eq(cellar_sync(db), CELLAR_OK);
	cr_assert_eq(cellar_close(db), CELLAR_OK);

	cr_assert_eq(fault_fs_power_cut(ff, 0), CELLAR_OK);
	cellar_fs_free(ff);
	o.fs = base;
	cr_assert_eq(cellar_open(&db, DIR, &o), CELLAR_OK);
	rc = cellar_get(db, "k", 1, buf, sizeof buf, &n);
	cr_expect_eq(rc, CELLAR_OK, "k was read, synced and closed cleanly, "
	             "then lost in a power cut (%s): data replayed at open is "
	             "taken as synced and never fsynced", cellar_strerror(rc));
	cr_assert_eq(cellar_close(db), CELLAR_OK);
	cellar_fs_free(base);
}

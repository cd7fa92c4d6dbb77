/*
 * workload.h - the workload model and harness shared by the fault file
 * system suites (test_crash.c, test_errorpaths.c).  It owns: the failure
 * context and CHECK, the encoding of keys and versioned values, workload
 * scripts and their builders' primitives, the per-key model of what a store
 * may hold, and the check of a reopened store against that model.  Each
 * suite keeps its own workloads, its way of running them and its loops.
 */
#ifndef CELLAR_TEST_WORKLOAD_H
#define CELLAR_TEST_WORKLOAD_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellar.h"
#include "cellar_fs.h"

/* Where the stores live, and the hash seed they are opened with. */
#define DIR "/store"
#define HASH_SEED 0x5eed5eedull
/* Values are up to WL_MAX_VAL bytes; those of a "big" workload are
 * sometimes WL_BIG_VAL-ish, larger than the engine's 1 MiB append buffer,
 * which are written in place. */
#define WL_BIG_VAL ((1u << 20) + 4000)
#define WL_MAX_VAL (WL_BIG_VAL + 4096)

/* Where we are, for every failure message: set it before each run. */
#define WL_WHERE_SIZE 400
extern char wl_where[WL_WHERE_SIZE];

/* printf into a static buffer (for CHECK's message). */
const char *wl_msg(const char *fmt, ...) CR_FORMAT(printf, 1, 2);

#define CHECK(cond, ...) \
	cr_assert((cond), "%s: %s", wl_where, wl_msg(__VA_ARGS__))

/* ---- keys and values ---------------------------------------------------- */

/* Key i: "ck" and five digits, then i % 7 letters; out holds 32 bytes. */
size_t key_of(unsigned i, char *out);
/* The key number of an encoded key, or -1 if it is not one of ours. */
long key_num(const void *k, size_t kn);
/* Version v (>= 1) of key i's value, of a length in [vmin, vmax]; with big,
 * one in eight is over 1 MiB.  out holds WL_MAX_VAL bytes. */
size_t val_of(unsigned i, unsigned v, unsigned vmin, unsigned vmax,
              bool big, unsigned char *out);
/* The version a value claims to be of key i, or 0 if it claims none. */
unsigned val_version(unsigned i, const void *v, size_t vn);

/* ---- workloads ---------------------------------------------------------- */

/* OP_ADVANCE: the clock moves from WL_T_RUN to WL_T_LATE (once). */
enum { OP_PUT, OP_DEL, OP_SYNC, OP_REOPEN, OP_COMPACT, OP_ADVANCE };

typedef struct op {
	int kind;
	unsigned key, ver;
} op;

typedef struct workload {
	const char *name;
	int sync_mode;
	uint64_t max_segment_size;
	unsigned compact_dead_pct;
	unsigned nkeys, vmin, vmax;
	bool big;
	op *ops;
	size_t nops, cap;
	unsigned *next_ver; /* per key, while building */
	/* Expiring puts: with expire_every > 0, version v of a key is put
	 * expiring at WL_EXPIRE_SOON when v % expire_every == 0 (only before
	 * OP_ADVANCE: later puts skip those versions) and at WL_EXPIRE_FAR
	 * when v % expire_every == 1; the others never expire. */
	unsigned expire_every;
	bool advanced; /* while building: OP_ADVANCE was added */
} workload;

/* The injected clock of every store the harness opens (options_for):
 * WL_T_RUN while a workload runs, WL_T_LATE after OP_ADVANCE and while a
 * store is checked, when the "soon" versions have expired. */
#define WL_T_RUN 1800000000000ull
#define WL_EXPIRE_SOON (WL_T_RUN + 1000)
#define WL_T_LATE WL_EXPIRE_SOON
#define WL_EXPIRE_FAR (WL_T_RUN + 1000000000ull)
extern uint64_t wl_now;

/* The expiry version ver of a put is written with (0: none). */
uint64_t wl_expiry(const workload *w, unsigned ver);
/* Is a key in state (a version, or ABSENT) absent at time now? */
bool wl_absent(const workload *w, unsigned state, uint64_t now);

void wl_init(workload *w, const char *name, int sync_mode,
             uint64_t seg, unsigned nkeys, unsigned vmin, unsigned vmax);
/* Append an operation; a put gets the key's next version. */
void wl_add(workload *w, int kind, unsigned key);
void wl_free(workload *w);
/* A random mix: put with probability put_pct, else delete; sync every. */
void wl_mix(workload *w, uint64_t *rng, size_t n, unsigned put_pct,
            size_t every);

/* ---- the model ---------------------------------------------------------- */

#define ABSENT 0u /* version 0: no value */

typedef struct kstate {
	unsigned durable; /* as of the last successful sync */
	unsigned acked;   /* after every acknowledged write */
	unsigned *pend;   /* states of every write attempted since */
	size_t npend, cap;
} kstate;

typedef struct model {
	unsigned nkeys;
	kstate *k;
	bool opened;  /* an open succeeded: the store exists durably */
} model;

void model_init(model *m, unsigned nkeys);
void model_free(model *m);
/* A write of state was attempted on the key. */
void pend_add(kstate *s, unsigned state);
/* What was acknowledged is now durable (one key, or all of them). */
void make_durable(kstate *s);
void model_synced(model *m);
/* May the key hold state?  And the states it may hold, for messages. */
bool allowed(const kstate *s, unsigned state);
/* May the key read as absent at wl_now (ABSENT, or an expired version)? */
bool allowed_absent(const workload *w, const kstate *s);
const char *allowed_str(const kstate *s);

/* ---- running and checking ----------------------------------------------- */

/* The options w runs with on fs. */
void options_for(cellar_options *o, const workload *w, cellar_fs *fs,
                 unsigned flags);
/* Check key i's value (or absence) against the model; returns its state. */
unsigned check_value(const workload *w, const model *m, unsigned i,
                     int rc, const void *v, size_t vn, const char *how);
/* Open the store on the bare fs and check it against m (state: each key's
 * version, out); returns live keys.  what names the reopen in messages. */
uint64_t check_store(const workload *w, cellar_fs *base, const model *m,
                     unsigned *state, const char *what);
/* A bare mem file system and the fault wrapper over it. */
void new_fs(cellar_fs **base, cellar_fs **ff);
/* Monotonic clock, in seconds. */
double now_s(void);

#endif

/*
 * workload.c - the workload model and harness shared by test_crash.c and
 * test_errorpaths.c: encoded keys and versioned values, scripted workloads
 * (puts, deletes, syncs, reopens, compactions), the per-key model of what
 * may survive, and the check of a reopened store against that model.
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

char wl_where[WL_WHERE_SIZE];
uint64_t wl_now = WL_T_RUN;

static uint64_t wl_clock(void *ctx)
{
	(void)ctx;
	return wl_now;
}

uint64_t wl_expiry(const workload *w, unsigned ver)
{
	if (!w->expire_every || ver == ABSENT)
		return 0;
	if (ver % w->expire_every == 0)
		return WL_EXPIRE_SOON;
	return ver % w->expire_every == 1 ? WL_EXPIRE_FAR : 0;
}

bool wl_absent(const workload *w, unsigned state, uint64_t now)
{
	uint64_t at = wl_expiry(w, state);

	return state == ABSENT || (at && now >= at);
}
static char msgbuf[512];

const char *wl_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
	va_end(ap);
	return msgbuf;
}

/* ---- keys and values ---------------------------------------------------- */

/* Key i: "ck" and five digits, then i % 7 letters (lengths vary). */
size_t key_of(unsigned i, char *out)
{
	int n = snprintf(out, 32, "ck%05u", i);
	size_t pad = i % 7;

	memset(out + n, 'a' + (int)(i % 26), pad);
	return (size_t)n + pad;
}

/* The key number of an encoded key, or -1 if it is not one of ours. */
long key_num(const void *k, size_t kn)
{
	char buf[32], want[32];
	unsigned i;

	if (kn < 7 || kn >= sizeof buf)
		return -1;
	memcpy(buf, k, kn);
	buf[kn] = '\0';
	if (sscanf(buf, "ck%5u", &i) != 1)
		return -1;
	if (key_of(i, want) != kn || memcmp(want, k, kn) != 0)
		return -1;
	return (long)i;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t s = a * 0x9e3779b97f4a7c15ull ^ b;
	return tc_rand(&s);
}

/*
 * Version v (>= 1) of key i's value: "k<i>.v<v>|" then bytes that depend on
 * both, of a length in [vmin, vmax] (never shorter than the prefix); with
 * big, one value in eight is over 1 MiB.
 */
size_t val_of(unsigned i, unsigned v, unsigned vmin, unsigned vmax,
              bool big, unsigned char *out)
{
	uint64_t s = mix(i, v);
	size_t len = vmin + (size_t)(tc_rand(&s) % (vmax - vmin + 1));
	if (big && tc_rand(&s) % 8 == 0)
		len = WL_BIG_VAL - (size_t)(tc_rand(&s) % 4000);
	int n = snprintf((char *)out, 32, "k%u.v%u|", i, v);

	if (len < (size_t)n)
		len = (size_t)n;
	/* 4 KiB of noise, then copies of it, each block stamped with its
	 * number so that a block landing in the wrong place shows */
	size_t head = len < 4096 ? len : 4096;
	for (size_t j = (size_t)n; j < head; j += 8) {
		uint64_t r = tc_rand(&s);
		memcpy(out + j, &r, head - j < 8 ? head - j : 8);
	}
	for (size_t j = 4096; j < len; j += 4096) {
		size_t m = len - j < 4096 ? len - j : 4096;
		uint32_t stamp = (uint32_t)(j / 4096);
		memcpy(out + j, out, m);
		memcpy(out + j, &stamp, m < 4 ? m : 4);
	}
	return len;
}

/* The version a value claims to be of key i, or 0 if it claims none. */
unsigned val_version(unsigned i, const void *v, size_t vn)
{
	char buf[40];
	unsigned ki, ver;
	size_t n = vn < sizeof buf - 1 ? vn : sizeof buf - 1;

	memcpy(buf, v, n);
	buf[n] = '\0';
	if (sscanf(buf, "k%u.v%u|", &ki, &ver) != 2 || ki != i)
		return 0;
	return ver;
}

/* ---- workloads ---------------------------------------------------------- */

void wl_init(workload *w, const char *name, int sync_mode,
             uint64_t seg, unsigned nkeys, unsigned vmin, unsigned vmax)
{
	memset(w, 0, sizeof *w);
	w->name = name;
	w->sync_mode = sync_mode;
	w->max_segment_size = seg;
	w->nkeys = nkeys;
	w->vmin = vmin;
	w->vmax = vmax;
	w->next_ver = calloc(nkeys, sizeof *w->next_ver);
	cr_assert_not_null(w->next_ver);
}

void wl_add(workload *w, int kind, unsigned key)
{
	if (w->nops == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 256;
		w->ops = realloc(w->ops, w->cap * sizeof *w->ops);
		cr_assert_not_null(w->ops);
	}
	op *o = &w->ops[w->nops++];
	o->kind = kind;
	o->key = key;
	o->ver = kind == OP_PUT ? ++w->next_ver[key] : 0;
	/* After the clock moved, a "soon" version could only be put expired. */
	if (kind == OP_PUT && w->advanced &&
	    wl_expiry(w, o->ver) == WL_EXPIRE_SOON)
		o->ver = ++w->next_ver[key];
	if (kind == OP_ADVANCE)
		w->advanced = true;
}

void wl_free(workload *w)
{
	free(w->ops);
	free(w->next_ver);
}

/* A random mix: put with probability put_pct, else delete; sync every. */
void wl_mix(workload *w, uint64_t *rng, size_t n, unsigned put_pct,
            size_t every)
{
	for (size_t j = 1; j <= n; j++) {
		unsigned k = (unsigned)(tc_rand(rng) % w->nkeys);
		wl_add(w, tc_rand(rng) % 100 < put_pct ? OP_PUT : OP_DEL, k);
		if (every && j % every == 0)
			wl_add(w, OP_SYNC, 0);
	}
}

/* ---- the model ---------------------------------------------------------- */

void model_init(model *m, unsigned nkeys)
{
	m->nkeys = nkeys;
	m->k = calloc(nkeys, sizeof *m->k);
	m->opened = false;
	cr_assert_not_null(m->k);
}

void model_free(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		free(m->k[i].pend);
	free(m->k);
}

void pend_add(kstate *s, unsigned state)
{
	if (s->npend == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 4;
		s->pend = realloc(s->pend, s->cap * sizeof *s->pend);
		cr_assert_not_null(s->pend);
	}
	s->pend[s->npend++] = state;
}

void make_durable(kstate *s)
{
	s->durable = s->acked;
	s->npend = 0;
}

void model_synced(model *m)
{
	for (unsigned i = 0; i < m->nkeys; i++)
		make_durable(&m->k[i]);
}

bool allowed(const kstate *s, unsigned state)
{
	if (s->durable == state)
		return true;
	for (size_t j = 0; j < s->npend; j++)
		if (s->pend[j] == state)
			return true;
	return false;
}

bool allowed_absent(const workload *w, const kstate *s)
{
	if (wl_absent(w, s->durable, wl_now))
		return true;
	for (size_t j = 0; j < s->npend; j++)
		if (wl_absent(w, s->pend[j], wl_now))
			return true;
	return false;
}

const char *allowed_str(const kstate *s)
{
	static char buf[256];
	size_t n = (size_t)snprintf(buf, sizeof buf, "durable v%u, then",
	                            s->durable);

	for (size_t j = 0; j < s->npend && n < sizeof buf - 16; j++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, " v%u", s->pend[j]);
	if (!s->npend)
		snprintf(buf + n, sizeof buf - n, " nothing");
	return buf;
}

/* ---- running and checking ----------------------------------------------- */

void options_for(cellar_options *o, const workload *w, cellar_fs *fs,
                 unsigned flags)
{
	cellar_options d = CELLAR_OPTIONS_INIT;

	*o = d;
	o->flags = flags;
	o->fs = fs;
	o->sync_mode = w->sync_mode;
	o->max_segment_size = w->max_segment_size;
	o->compact_dead_pct = w->compact_dead_pct;
	o->hash_seed = HASH_SEED;
	o->clock = wl_clock;
}

/* Check key i's value (or absence) against the model; returns its state. */
unsigned check_value(const workload *w, const model *m, unsigned i,
                     int rc, const void *v, size_t vn, const char *how)
{
	const kstate *s = &m->k[i];
	static unsigned char want[WL_MAX_VAL];

	if (rc == CELLAR_ENOTFOUND) {
		CHECK(allowed_absent(w, s), "key %u: %s gives ENOTFOUND; allowed: "
		      "%s", i, how, allowed_str(s));
		return ABSENT;
	}
	CHECK(rc == CELLAR_OK, "key %u: %s gives %s (%s)", i, how,
	      cellar_strerror(rc), cellar_errmsg());
	unsigned ver = val_version(i, v, vn);
	CHECK(ver != ABSENT, "key %u: %s gives a value that is not one of this "
	      "key's (%zu bytes: '%.*s')", i, how, vn, (int)(vn < 24 ? vn : 24),
	      (const char *)v);
	CHECK(allowed(s, ver), "key %u: %s gives v%u; allowed: %s", i, how, ver,
	      allowed_str(s));
	CHECK(!wl_absent(w, ver, wl_now), "key %u: %s gives v%u, which has "
	      "expired", i, how, ver);
	size_t wn = val_of(i, ver, w->vmin, w->vmax, w->big, want);
	CHECK(vn == wn && memcmp(v, want, vn) == 0, "key %u: %s gives v%u torn "
	      "or altered (%zu bytes, written %zu)", i, how, ver, vn, wn);
	return ver;
}

/*
 * Open the store on the bare fs and check it against m; returns live keys.
 * what names the reopen in the message if it fails.
 */
uint64_t check_store(const workload *w, cellar_fs *base, const model *m,
                     unsigned *state, const char *what)
{
	static unsigned char buf[WL_MAX_VAL];
	cellar_options o;
	cellar_db *db = NULL;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	char key[32];
	uint64_t live = 0, items = 0, count = 0;
	bool *seen;
	int rc;

	options_for(&o, w, base, m->opened ? 0 : CELLAR_CREATE);
	o.sync_mode = CELLAR_SYNC_NONE;
	if (w->expire_every)
		wl_now = WL_T_LATE; /* the "soon" versions have expired */
	rc = cellar_open(&db, DIR, &o);
	CHECK(rc == CELLAR_OK, "%s: %s (%s)", what,
	      cellar_strerror(rc), cellar_errmsg());
	for (unsigned i = 0; i < m->nkeys; i++) {
		size_t n = 0;
		kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		state[i] = check_value(w, m, i, rc, buf, n, "get");
		live += state[i] != ABSENT;
		rc = cellar_has(db, key, kn);
		CHECK(rc == (state[i] == ABSENT ? CELLAR_ENOTFOUND : CELLAR_OK),
		      "key %u: has gives %s, get gave %s", i, cellar_strerror(rc),
		      state[i] == ABSENT ? "ENOTFOUND" : "a value");
	}
	CHECK(cellar_count(db, &count) == CELLAR_OK, "count failed");
	seen = calloc(m->nkeys, sizeof *seen);
	cr_assert_not_null(seen);
	CHECK(cellar_iter_new(db, &it) == CELLAR_OK, "iter_new failed");
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_OK) {
		long i = key_num(k, kn);
		CHECK(i >= 0 && (unsigned long)i < m->nkeys,
		      "iteration gives a foreign key '%.*s'", (int)kn,
		      (const char *)k);
		CHECK(!seen[i], "iteration gives key %ld twice", i);
		seen[i] = true;
		unsigned ver = check_value(w, m, (unsigned)i, CELLAR_OK, v, vn,
		                           "iteration");
		CHECK(ver == state[i], "key %ld: iteration gives v%u, get gave v%u",
		      i, ver, state[i]);
		items++;
	}
	CHECK(rc == CELLAR_EDONE, "iteration ends with %s (%s)",
	      cellar_strerror(rc), cellar_errmsg());
	cellar_iter_free(it);
	free(seen);
	CHECK(items == live, "iteration gives %llu items, get finds %llu keys",
	      (unsigned long long)items, (unsigned long long)live);
	/* Expired keys count until compaction drops them. */
	CHECK(w->expire_every ? count >= items : count == items,
	      "count %llu, iteration gives %llu items",
	      (unsigned long long)count, (unsigned long long)items);
	rc = cellar_close(db);
	CHECK(rc == CELLAR_OK, "close after the check: %s (%s)",
	      cellar_strerror(rc), cellar_errmsg());
	return live;
}

void new_fs(cellar_fs **base, cellar_fs **ff)
{
	*base = tc_fs_new_named("mem");
	cr_assert_eq(fault_fs_new(ff, *base), CELLAR_OK);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

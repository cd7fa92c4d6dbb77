/*
 * test_rmw.c - read-modify-write (src/rmw.c): cellar_update() and
 * cellar_cas(), their error paths, and 8 threads incrementing shared
 * counters through each with no update lost.  Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellar.h"
#include "common.h"

static tc_store st;

static void setup(void) { tc_store_new(&st, 0); }
static void teardown(void) { tc_store_free(&st); }

TestSuite(rmw, .init = setup, .fini = teardown);

/* The value of key as a number (0 when absent). */
static uint64_t num(cellar_db *db, const char *key)
{
	char buf[32];
	size_t n = 0;

	if (cellar_get(db, key, strlen(key), buf, sizeof buf - 1, &n) != CELLAR_OK)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

/* Increment the counter (absent = 0) into the caller's buffer. */
static int incr(const void *val, size_t len, int found, const void **nv,
                size_t *nl, void *ctx)
{
	char *out = ctx, tmp[32];
	uint64_t x = 0;

	if (found) {
		cr_assert(len < sizeof tmp);
		memcpy(tmp, val, len);
		tmp[len] = 0;
		x = strtoull(tmp, NULL, 10);
	}
	*nl = (size_t)snprintf(out, 32, "%llu", (unsigned long long)x + 1);
	*nv = out;
	return CELLAR_UPDATE_STORE;
}

static int ret_action(const void *val, size_t len, int found, const void **nv,
                      size_t *nl, void *ctx)
{
	(void)val;
	(void)len;
	(void)found;
	*nv = NULL;
	*nl = 5; /* ignored unless STORE */
	return *(int *)ctx;
}

Test(rmw, update_stores_deletes_and_keeps)
{
	char buf[32];
	int act;

	OK(cellar_update(st.db, "c", 1, incr, buf)); /* absent: created */
	OK(cellar_update(st.db, "c", 1, incr, buf));
	cr_assert_eq(num(st.db, "c"), 2);
	act = CELLAR_UPDATE_KEEP;
	OK(cellar_update(st.db, "c", 1, ret_action, &act));
	cr_assert_eq(num(st.db, "c"), 2);
	act = CELLAR_UPDATE_DELETE;
	OK(cellar_update(st.db, "c", 1, ret_action, &act));
	ERR(CELLAR_ENOTFOUND, cellar_has(st.db, "c", 1));
	OK(cellar_update(st.db, "c", 1, ret_action, &act)); /* absent: nothing */
	OK(cellar_update(st.db, "c", 1, incr, buf));
	tc_store_reopen(&st);
	cr_assert_eq(num(st.db, "c"), 1);
}

static int read_other(const void *val, size_t len, int found, const void **nv,
                      size_t *nl, void *ctx)
{
	cellar_db *db = ctx;
	static char out[32];

	(void)val;
	(void)len;
	cr_assert(!found);
	/* The callback may read the store. */
	*nl = (size_t)snprintf(out, sizeof out, "%llu",
	                       (unsigned long long)num(db, "other") * 10);
	*nv = out;
	return CELLAR_UPDATE_STORE;
}

Test(rmw, the_callback_may_read_the_store)
{
	OK(cellar_put(st.db, "other", 5, "7", 1));
	OK(cellar_update(st.db, "k", 1, read_other, st.db));
	cr_assert_eq(num(st.db, "k"), 70);
}

Test(rmw, update_error_paths)
{
	char buf[32];
	int act;

	OK(cellar_put(st.db, "k", 1, "v", 1));
	act = -12345; /* the callback's own error: returned, nothing changed */
	ERR(-12345, cellar_update(st.db, "k", 1, ret_action, &act));
	act = CELLAR_ENOMEM;
	ERR(CELLAR_ENOMEM, cellar_update(st.db, "k", 1, ret_action, &act));
	act = 7; /* not an action */
	ERR(CELLAR_EINVAL, cellar_update(st.db, "k", 1, ret_action, &act));
	act = CELLAR_UPDATE_STORE; /* NULL value of length 5 */
	ERR(CELLAR_EINVAL, cellar_update(st.db, "k", 1, ret_action, &act));
	cr_assert_eq(cellar_get(st.db, "k", 1, buf, sizeof buf, NULL), CELLAR_OK);
	cr_assert_eq(buf[0], 'v');
	ERR(CELLAR_EINVAL, cellar_update(NULL, "k", 1, incr, buf));
	ERR(CELLAR_EINVAL, cellar_update(st.db, NULL, 1, incr, buf));
	ERR(CELLAR_EKEYLEN, cellar_update(st.db, "k", 0, incr, buf));
	ERR(CELLAR_EINVAL, cellar_update(st.db, "k", 1, NULL, buf));
	tc_store_close(&st);
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_EREADONLY, cellar_update(st.db, "k", 1, incr, buf));
	ERR(CELLAR_EREADONLY, cellar_cas(st.db, "k", 1, "v", 1, "w", 1, 0));
}

Test(rmw, cas_sets_only_on_a_match)
{
	char buf[8];
	size_t n;

	OK(cellar_cas(st.db, "k", 1, NULL, 0, "a", 1, CELLAR_CAS_ABSENT));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, NULL, 0, "b", 1,
	                                CELLAR_CAS_ABSENT));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "x", 1, "b", 1, 0));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "aa", 2, "b", 1, 0));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "", 0, "b", 1, 0));
	OK(cellar_get(st.db, "k", 1, buf, sizeof buf, &n));
	cr_assert(n == 1 && buf[0] == 'a', "unchanged after a failed cas");
	OK(cellar_cas(st.db, "k", 1, "a", 1, "", 0, 0)); /* to an empty value */
	OK(cellar_get(st.db, "k", 1, buf, sizeof buf, &n));
	cr_assert_eq(n, 0);
	OK(cellar_cas(st.db, "k", 1, NULL, 0, "c", 1, 0)); /* "" matches "" */
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "b", 1, NULL, 0,
	                                CELLAR_CAS_DELETE));
	OK(cellar_cas(st.db, "k", 1, "c", 1, NULL, 0, CELLAR_CAS_DELETE));
	ERR(CELLAR_ENOTFOUND, cellar_has(st.db, "k", 1));
	ERR(CELLAR_ECHANGED, cellar_cas(st.db, "k", 1, "c", 1, "d", 1, 0));
	/* errors */
	ERR(CELLAR_EINVAL, cellar_cas(st.db, "k", 1, "c", 1, "d", 1, 0x80));
	ERR(CELLAR_EINVAL, cellar_cas(st.db, "k", 1, NULL, 1, "d", 1, 0));
	ERR(CELLAR_EINVAL, cellar_cas(st.db, "k", 1, "c", 1, NULL, 1, 0));
	ERR(CELLAR_EVALLEN, cellar_cas(st.db, "k", 1, "c", 1, buf,
	                               (size_t)CELLAR_MAX_VALUE_LEN + 1, 0));
	ERR(CELLAR_EINVAL, cellar_cas(NULL, "k", 1, "c", 1, "d", 1, 0));
	ERR(CELLAR_EINVAL, cellar_cas(st.db, NULL, 1, "c", 1, "d", 1, 0));
	ERR(CELLAR_EKEYLEN, cellar_cas(st.db, "k", 0, "c", 1, "d", 1, 0));
}

/* ---- no lost update ---------------------------------------------------- */

#define THREADS 8
#define INCREMENTS 10000
#define COUNTERS 2

typedef struct worker {
	cellar_db *db;
	int use_cas;
	int failures;
} worker;

static void cas_incr(worker *w, const char *key)
{
	char cur[32], next[32];

	for (;;) {
		size_t n = 0;
		int rc = cellar_get(w->db, key, strlen(key), cur, sizeof cur, &n);
		uint64_t x = 0;
		if (rc == CELLAR_OK) {
			cur[n] = 0;
			x = strtoull(cur, NULL, 10);
		}
		int m = snprintf(next, sizeof next, "%llu", (unsigned long long)x + 1);
		rc = cellar_cas(w->db, key, strlen(key), cur, n, next, (size_t)m,
		                rc == CELLAR_OK ? 0 : CELLAR_CAS_ABSENT);
		if (rc == CELLAR_OK)
			return;
		if (rc != CELLAR_ECHANGED) {
			w->failures++;
			return;
		}
	}
}

static void *work(void *arg)
{
	worker *w = arg;
	char buf[32];

	for (int i = 0; i < INCREMENTS; i++)
		for (int c = 0; c < COUNTERS; c++) {
			const char *key = c ? "counter-1" : "counter-0";
			if (w->use_cas)
				cas_incr(w, key);
			else if (cellar_update(w->db, key, strlen(key), incr, buf) < 0)
				w->failures++;
		}
	return NULL;
}

static void run_counters(int use_cas)
{
	pthread_t t[THREADS];
	worker w[THREADS];

	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){ st.db, use_cas, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].failures, 0);
	}
	cr_assert_eq(num(st.db, "counter-0"), THREADS * INCREMENTS);
	cr_assert_eq(num(st.db, "counter-1"), THREADS * INCREMENTS);
	tc_store_reopen(&st);
	cr_assert_eq(num(st.db, "counter-1"), THREADS * INCREMENTS);
}

Test(rmw, eight_threads_lose_no_update_through_update, .timeout = 300)
{
	run_counters(0);
}

Test(rmw, eight_threads_lose_no_update_through_cas, .timeout = 300)
{
	run_counters(1);
}

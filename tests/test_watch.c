/*
 * test_watch.c - change events (src/watch.c): what is delivered and in
 * which order, prefixes, batches marked as one commit, a slow subscriber
 * that loses events without holding writers up, unsubscribing from the
 * callback and from another thread, delivery at close, and error paths.
 * Runs once per file system.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellar.h"
#include "common.h"

static tc_store st;

static void setup(void) { tc_store_new(&st, 0); }
static void teardown(void) { tc_store_free(&st); }

TestSuite(watch, .init = setup, .fini = teardown);

#define MAXEV 4096

typedef struct seen {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t n;
	struct {
		cellar_change_kind kind;
		char key[64], val[64];
		uint64_t commit, lost;
		int last;
	} ev[MAXEV];
	atomic_int block;     /* the callback waits while set */
	atomic_int in_cb;
	cellar_sub *self;      /* unwatch itself at event unwatch_at */
	size_t unwatch_at;
} seen;

static seen *seen_new(void)
{
	seen *s = calloc(1, sizeof *s);

	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	return s;
}

static void seen_free(seen *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

static void on_change(const cellar_change *c, void *ctx)
{
	seen *s = ctx;

	atomic_store(&s->in_cb, 1);
	while (atomic_load(&s->block)) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&s->mu);
	if (s->n < MAXEV) {
		s->ev[s->n].kind = c->kind;
		snprintf(s->ev[s->n].key, 64, "%.*s", (int)c->key_len,
		         c->key ? (const char *)c->key : "");
		snprintf(s->ev[s->n].val, 64, "%.*s", (int)c->val_len,
		         c->val ? (const char *)c->val : "");
		s->ev[s->n].commit = c->commit;
		s->ev[s->n].lost = c->lost;
		s->ev[s->n].last = c->last;
	}
	s->n++;
	size_t n = s->n;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->self && n == s->unwatch_at)
		OK(cellar_unwatch(s->self));
	atomic_store(&s->in_cb, 0);
}

/* Wait (up to 10 s) until n events arrived. */
static void wait_for(seen *s, size_t n)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&s->mu);
	while (s->n < n &&
	       pthread_cond_timedwait(&s->cv, &s->mu, &dl) == 0)
		;
	size_t got = s->n;
	pthread_mutex_unlock(&s->mu);
	cr_assert(got >= n, "%zu events, want %zu", got, n);
}

static void settle(void)
{
	struct timespec ts = { 0, 50000000 };
	nanosleep(&ts, NULL);
}

Test(watch, changes_arrive_in_commit_order_with_batches_as_one_commit)
{
	seen *s = seen_new();
	cellar_sub *w;
	cellar_batch *b;

	OK(cellar_watch(st.db, NULL, 0, 0, on_change, s, &w));
	OK(cellar_put(st.db, "a", 1, "1", 1));
	OK(cellar_put(st.db, "b", 1, "2", 1));
	OK(cellar_delete(st.db, "a", 1));
	ERR(CELLAR_ENOTFOUND, cellar_delete(st.db, "a", 1)); /* no event */
	OK(cellar_batch_new(&b));
	OK(cellar_batch_put(b, "c", 1, "3", 1));
	OK(cellar_batch_put(b, "d", 1, "4", 1));
	OK(cellar_batch_put(b, "c", 1, "5", 1)); /* superseded: c=5 once */
	OK(cellar_batch_delete(b, "zz", 2));      /* absent: no event */
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_cas(st.db, "d", 1, "4", 1, "6", 1, 0));
	wait_for(s, 6);
	settle();
	cr_assert_eq(s->n, 6);
	const char *keys[] = { "a", "b", "a", "d", "c", "d" };
	cellar_change_kind kinds[] = { CELLAR_CHANGE_PUT, CELLAR_CHANGE_PUT,
	                               CELLAR_CHANGE_DELETE, CELLAR_CHANGE_PUT,
	                               CELLAR_CHANGE_PUT, CELLAR_CHANGE_PUT };
	const char *vals[] = { "1", "2", "", "4", "5", "6" };
	for (size_t i = 0; i < 6; i++) {
		/* The batch's two changes may come in either order. */
		size_t j = i;
		if ((i == 3 || i == 4) && strcmp(s->ev[3].key, "c") == 0)
			j = i == 3 ? 4 : 3;
		cr_assert_str_eq(s->ev[i].key, keys[j], "event %zu", i);
		cr_assert_eq(s->ev[i].kind, kinds[j], "event %zu", i);
		cr_assert_str_eq(s->ev[i].val, vals[j], "event %zu", i);
	}
	cr_assert(s->ev[0].commit < s->ev[1].commit &&
	          s->ev[1].commit < s->ev[2].commit &&
	          s->ev[2].commit < s->ev[3].commit);
	cr_assert_eq(s->ev[3].commit, s->ev[4].commit, "one commit");
	cr_assert(!s->ev[3].last && s->ev[4].last);
	cr_assert(s->ev[0].last && s->ev[5].last);
	cr_assert(s->ev[5].commit > s->ev[4].commit);
	OK(cellar_unwatch(w));
	OK(cellar_put(st.db, "e", 1, "7", 1));
	settle();
	cr_assert_eq(s->n, 6, "nothing after unwatch");
	cellar_batch_free(b);
	seen_free(s);
}

Test(watch, a_prefix_selects_keys)
{
	seen *s = seen_new(), *all = seen_new();
	cellar_sub *w, *w2;

	OK(cellar_watch(st.db, "user:", 5, 0, on_change, s, &w));
	OK(cellar_watch(st.db, NULL, 0, 0, on_change, all, &w2));
	OK(cellar_put(st.db, "user:1", 6, "x", 1));
	OK(cellar_put(st.db, "item:1", 6, "y", 1));
	OK(cellar_put(st.db, "user", 4, "z", 1));
	OK(cellar_put(st.db, "user:2", 6, "w", 1));
	wait_for(all, 4);
	wait_for(s, 2);
	settle();
	cr_assert_eq(s->n, 2);
	cr_assert_str_eq(s->ev[0].key, "user:1");
	cr_assert_str_eq(s->ev[1].key, "user:2");
	OK(cellar_unwatch(w));
	OK(cellar_unwatch(w2));
	seen_free(s);
	seen_free(all);
}

Test(watch, a_slow_subscriber_loses_events_and_is_told)
{
	seen *s = seen_new();
	cellar_sub *w;
	char k[16];

	atomic_store(&s->block, 1);
	OK(cellar_watch(st.db, NULL, 0, 10, on_change, s, &w));
	OK(cellar_put(st.db, "first", 5, "x", 1));
	while (!atomic_load(&s->in_cb))
		settle(); /* the callback is stuck in its first event */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof k, "k%d", i);
		OK(cellar_put(st.db, k, strlen(k), "v", 1));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s_taken = (double)(t1.tv_sec - t0.tv_sec) +
	                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert(s_taken < 5.0, "writers were held up: %.2f s", s_taken);
	atomic_store(&s->block, 0);
	wait_for(s, 12); /* first, 10 queued, the loss */
	settle();
	cr_assert_eq(s->n, 12);
	cr_assert_str_eq(s->ev[10].key, "k9");
	cr_assert_eq(s->ev[11].kind, CELLAR_CHANGE_LOST);
	cr_assert_eq(s->ev[11].lost, 990);
	/* Delivery goes on after the loss. */
	OK(cellar_put(st.db, "after", 5, "y", 1));
	wait_for(s, 13);
	cr_assert_str_eq(s->ev[12].key, "after");
	OK(cellar_unwatch(w));
	seen_free(s);
}

Test(watch, a_batch_that_does_not_fit_is_lost_whole)
{
	seen *s = seen_new();
	cellar_sub *w;
	cellar_batch *b;
	char k[16];

	OK(cellar_watch(st.db, NULL, 0, 5, on_change, s, &w));
	OK(cellar_batch_new(&b));
	for (int i = 0; i < 6; i++) {
		snprintf(k, sizeof k, "k%d", i);
		OK(cellar_batch_put(b, k, strlen(k), "v", 1));
	}
	OK(cellar_batch_commit(st.db, b));
	OK(cellar_put(st.db, "x", 1, "v", 1));
	wait_for(s, 2);
	settle();
	cr_assert_eq(s->n, 2);
	cr_assert_eq(s->ev[0].kind, CELLAR_CHANGE_LOST);
	cr_assert_eq(s->ev[0].lost, 6);
	cr_assert_str_eq(s->ev[1].key, "x");
	OK(cellar_unwatch(w));
	cellar_batch_free(b);
	seen_free(s);
}

Test(watch, unwatch_from_inside_the_callback)
{
	seen *s = seen_new();
	char k[16];

	s->unwatch_at = 3;
	OK(cellar_watch(st.db, NULL, 0, 0, on_change, s, &s->self));
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof k, "k%d", i);
		OK(cellar_put(st.db, k, strlen(k), "v", 1));
	}
	wait_for(s, 3);
	settle();
	cr_assert_eq(s->n, 3, "no call after unwatch in the callback");
	seen_free(s);
}

typedef struct unw {
	cellar_sub *w;
	seen *s;
	int cb_running_after;
} unw;

static void *unwatch_thread(void *arg)
{
	unw *u = arg;

	OK(cellar_unwatch(u->w));
	u->cb_running_after = atomic_load(&u->s->in_cb);
	return NULL;
}

Test(watch, unwatch_from_another_thread_waits_for_the_callback)
{
	seen *s = seen_new();
	unw u = { NULL, s, 1 };
	pthread_t t;

	atomic_store(&s->block, 1);
	OK(cellar_watch(st.db, NULL, 0, 0, on_change, s, &u.w));
	OK(cellar_put(st.db, "a", 1, "v", 1));
	OK(cellar_put(st.db, "b", 1, "v", 1));
	while (!atomic_load(&s->in_cb))
		settle();
	cr_assert_eq(pthread_create(&t, NULL, unwatch_thread, &u), 0);
	settle();
	atomic_store(&s->block, 0);
	pthread_join(t, NULL);
	cr_assert_eq(u.cb_running_after, 0, "unwatch returned during a call");
	settle();
	cr_assert_eq(s->n, 1, "the queued event was dropped");
	seen_free(s);
}

Test(watch, close_delivers_what_is_queued)
{
	seen *s = seen_new();
	cellar_sub *w;
	char k[16];

	OK(cellar_watch(st.db, NULL, 0, 0, on_change, s, &w));
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof k, "k%d", i);
		OK(cellar_put(st.db, k, strlen(k), "v", 1));
	}
	tc_store_close(&st);
	cr_assert_eq(s->n, 100);
	seen_free(s);
}

Test(watch, error_paths)
{
	seen *s = seen_new();
	cellar_sub *w = (cellar_sub *)1;

	ERR(CELLAR_EINVAL, cellar_watch(st.db, NULL, 0, 0, on_change, s, NULL));
	ERR(CELLAR_EINVAL, cellar_watch(NULL, NULL, 0, 0, on_change, s, &w));
	cr_assert_null(w);
	ERR(CELLAR_EINVAL, cellar_watch(st.db, NULL, 0, 0, NULL, s, &w));
	ERR(CELLAR_EINVAL, cellar_watch(st.db, NULL, 3, 0, on_change, s, &w));
	ERR(CELLAR_EINVAL, cellar_watch(st.db, "k", CELLAR_MAX_KEY_LEN + 1, 0,
	                                on_change, s, &w));
	OK(cellar_unwatch(NULL));
	/* A failed write reports nothing. */
	OK(cellar_watch(st.db, NULL, 0, 0, on_change, s, &w));
	ERR(CELLAR_EKEYLEN, cellar_put(st.db, "k", 0, "v", 1));
	settle();
	cr_assert_eq(s->n, 0);
	OK(cellar_unwatch(w));
	tc_store_close(&st);
	st.o.flags = CELLAR_READONLY;
	tc_store_open(&st);
	ERR(CELLAR_EREADONLY, cellar_watch(st.db, NULL, 0, 0, on_change, s, &w));
	seen_free(s);
}

/*
 * watch.c - change events: cellar_watch(), cellar_unwatch() and the
 * delivery thread (see watch.h).
 *
 * Each subscription has a FIFO of copied changes, bounded by max_pending;
 * a commit whose changes do not all fit is dropped whole and counted in a
 * "lost" marker at the queue's end, which becomes a CELLAR_CHANGE_LOST
 * event in its place in the order.  One delivery thread per handle pops
 * one event at a time, releases the hub mutex and calls the callback; the
 * subscription it is calling is noted, so that cellar_unwatch can wait for
 * that call (or, from inside it, leave the freeing to the thread).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "watch.h"

#define WATCH_DEFAULT_PENDING 65536

typedef struct watch_event {
	struct watch_event *next;
	cellar_change_kind kind;
	uint64_t commit, lost;
	int last;
	size_t key_len, val_len;
	uint8_t bytes[]; /* key, then value */
} watch_event;

struct cellar_sub {
	struct watch_hub *hub;
	struct cellar_sub *next;
	uint8_t *prefix;
	size_t prefix_len, max_pending, pending;
	watch_event *head, *tail;
	cellar_watch_fn fn;
	void *ctx;
	int dead; /* unwatched from inside its own callback */
};

typedef struct watch_hub {
	pthread_mutex_t mutex;
	pthread_cond_t work;  /* events queued, or stop */
	pthread_cond_t idle;  /* a callback returned */
	pthread_t thread;
	int stop;
	cellar_sub *list;
	cellar_sub *calling; /* whose callback runs now */
	atomic_uint active;    /* subscriptions */
	uint64_t commits;      /* writer mutex */
} watch_hub;

static int matches(const cellar_sub *w, const writer_op *op)
{
	return op->key_len >= w->prefix_len &&
	       memcmp(op->key, w->prefix, w->prefix_len) == 0;
}

static void enqueue(cellar_sub *w, watch_event *e)
{
	e->next = NULL;
	if (w->tail)
		w->tail->next = e;
	else
		w->head = e;
	w->tail = e;
}

/* n changes of a commit did not fit: count them in the marker at the end. */
static void lose(cellar_sub *w, uint64_t n)
{
	watch_event *e = w->tail;

	if (!e || e->kind != CELLAR_CHANGE_LOST) {
		if (!(e = calloc(1, sizeof *e)))
			return; /* out of memory: the loss goes unreported */
		e->kind = CELLAR_CHANGE_LOST;
		enqueue(w, e);
	}
	e->lost += n;
}

static watch_event *event_of(const writer_op *op, uint64_t commit)
{
	size_t vl = op->kind == RECORD_PUT ? op->val_len : 0;
	watch_event *e = malloc(sizeof *e + op->key_len + vl);

	if (!e)
		return NULL;
	e->kind = op->kind == RECORD_PUT         ? CELLAR_CHANGE_PUT
	          : op->kind == WRITER_OP_EXPIRE ? CELLAR_CHANGE_EXPIRE
	                                         : CELLAR_CHANGE_DELETE;
	e->commit = commit;
	e->lost = 0;
	e->last = 0;
	e->key_len = op->key_len;
	e->val_len = vl;
	memcpy(e->bytes, op->key, op->key_len);
	if (vl)
		memcpy(e->bytes + op->key_len, op->val, vl);
	return e;
}

/* Hub mutex held: queue the commit's matching changes for w, or lose them. */
static void note_one(cellar_sub *w, const writer_op *ops,
                     const unsigned char *skip, size_t n, uint64_t commit)
{
	size_t m = 0, done = 0;
	watch_event *e = NULL;

	for (size_t i = 0; i < n; i++)
		m += (!skip || !skip[i]) && matches(w, &ops[i]);
	if (m == 0)
		return;
	if (w->pending + m > w->max_pending) {
		lose(w, m);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if ((skip && skip[i]) || !matches(w, &ops[i]))
			continue;
		if (!(e = event_of(&ops[i], commit))) {
			lose(w, m - done);
			return;
		}
		e->last = ++done == m;
		enqueue(w, e);
		w->pending++;
	}
}

void watch_note(cellar_db *db, const writer_op *ops, const unsigned char *skip,
                size_t n)
{
	watch_hub *h = db->watch;

	if (!h)
		return;
	h->commits++;
	if (!atomic_load_explicit(&h->active, memory_order_relaxed))
		return;
	pthread_mutex_lock(&h->mutex);
	for (cellar_sub *w = h->list; w; w = w->next)
		note_one(w, ops, skip, n, h->commits);
	pthread_cond_signal(&h->work);
	pthread_mutex_unlock(&h->mutex);
}

static void drop_events(cellar_sub *w)
{
	while (w->head) {
		watch_event *e = w->head;
		w->head = e->next;
		free(e);
	}
	w->tail = NULL;
	w->pending = 0;
}

static void watch_free(cellar_sub *w)
{
	drop_events(w);
	free(w->prefix);
	free(w);
}

/* Hub mutex held: the first subscription with an event, and pop it. */
static watch_event *next_event(watch_hub *h, cellar_sub **wp)
{
	for (cellar_sub *w = h->list; w; w = w->next) {
		watch_event *e = w->head;
		if (!e)
			continue;
		if (!(w->head = e->next))
			w->tail = NULL;
		if (e->kind != CELLAR_CHANGE_LOST)
			w->pending--;
		*wp = w;
		return e;
	}
	return NULL;
}

static void *deliver_main(void *arg)
{
	watch_hub *h = arg;
	cellar_sub *w;
	watch_event *e;

	pthread_mutex_lock(&h->mutex);
	for (;;) {
		if (!(e = next_event(h, &w))) {
			if (h->stop)
				break;
			pthread_cond_wait(&h->work, &h->mutex);
			continue;
		}
		cellar_change c = { e->kind, NULL, e->key_len, NULL, e->val_len,
		                    e->commit, e->last, e->lost };
		if (e->kind != CELLAR_CHANGE_LOST)
			c.key = e->bytes;
		if (e->kind == CELLAR_CHANGE_PUT)
			c.val = e->bytes + e->key_len;
		h->calling = w;
		pthread_mutex_unlock(&h->mutex);
		w->fn(&c, w->ctx);
		free(e);
		pthread_mutex_lock(&h->mutex);
		h->calling = NULL;
		if (w->dead)
			watch_free(w);
		pthread_cond_broadcast(&h->idle);
	}
	pthread_mutex_unlock(&h->mutex);
	return NULL;
}

/* Writer mutex held: the handle's hub, started on first use. */
static int hub_get(cellar_db *db, watch_hub **out)
{
	watch_hub *h = db->watch;

	if (h) {
		*out = h;
		return CELLAR_OK;
	}
	if (!(h = calloc(1, sizeof *h)))
		return cellar__error(CELLAR_ENOMEM, "watch: out of memory");
	pthread_mutex_init(&h->mutex, NULL);
	pthread_cond_init(&h->work, NULL);
	pthread_cond_init(&h->idle, NULL);
	if (pthread_create(&h->thread, NULL, deliver_main, h) != 0) {
		pthread_cond_destroy(&h->idle);
		pthread_cond_destroy(&h->work);
		pthread_mutex_destroy(&h->mutex);
		free(h);
		return cellar__error(CELLAR_EIO, "watch: cannot start the delivery "
		                     "thread");
	}
	*out = db->watch = h;
	return CELLAR_OK;
}

int cellar_watch(cellar_db *db, const void *prefix, size_t prefix_len,
                 size_t max_pending, cellar_watch_fn fn, void *ctx,
                 cellar_sub **out)
{
	cellar_sub *w;
	watch_hub *h = NULL;
	int rc;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if ((rc = db_enter(db, 1, NULL, 0)) < 0)
		return rc;
	if (!fn || (!prefix && prefix_len) || prefix_len > CELLAR_MAX_KEY_LEN)
		return cellar__error(CELLAR_EINVAL, "watch: fn NULL, or a bad prefix");
	if (!(w = calloc(1, sizeof *w)) ||
	    !(w->prefix = malloc(prefix_len ? prefix_len : 1))) {
		free(w);
		return cellar__error(CELLAR_ENOMEM, "watch: out of memory");
	}
	if (prefix_len)
		memcpy(w->prefix, prefix, prefix_len);
	w->prefix_len = prefix_len;
	w->max_pending = max_pending ? max_pending : WATCH_DEFAULT_PENDING;
	w->fn = fn;
	w->ctx = ctx;
	writer_lock(&db->w); /* no commit is half-noted meanwhile */
	if ((rc = hub_get(db, &h)) == CELLAR_OK) {
		pthread_mutex_lock(&h->mutex);
		w->hub = h;
		w->next = h->list;
		h->list = w;
		atomic_fetch_add(&h->active, 1);
		pthread_mutex_unlock(&h->mutex);
	}
	writer_unlock(&db->w);
	if (rc < 0) {
		watch_free(w);
		return rc;
	}
	*out = w;
	return CELLAR_OK;
}

int cellar_unwatch(cellar_sub *w)
{
	watch_hub *h;

	cellar__error_clear();
	if (!w)
		return CELLAR_OK;
	h = w->hub;
	pthread_mutex_lock(&h->mutex);
	for (cellar_sub **p = &h->list; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	atomic_fetch_sub(&h->active, 1);
	drop_events(w);
	if (h->calling == w && pthread_equal(pthread_self(), h->thread)) {
		w->dead = 1; /* from its own callback: the thread frees it */
		pthread_mutex_unlock(&h->mutex);
		return CELLAR_OK;
	}
	while (h->calling == w)
		pthread_cond_wait(&h->idle, &h->mutex);
	pthread_mutex_unlock(&h->mutex);
	watch_free(w);
	return CELLAR_OK;
}

void watch_stop(cellar_db *db)
{
	watch_hub *h = db->watch;

	if (!h)
		return;
	pthread_mutex_lock(&h->mutex);
	h->stop = 1;
	pthread_cond_signal(&h->work);
	pthread_mutex_unlock(&h->mutex);
	pthread_join(h->thread, NULL);
	/* A background compaction may still note expiries (watch_expired,
	 * under the writer mutex) until bg_stop: detach the hub under it. */
	if (!db->readonly)
		writer_lock(&db->w);
	db->watch = NULL;
	if (!db->readonly)
		writer_unlock(&db->w);
	while (h->list) {
		cellar_sub *w = h->list;
		h->list = w->next;
		watch_free(w);
	}
	pthread_cond_destroy(&h->idle);
	pthread_cond_destroy(&h->work);
	pthread_mutex_destroy(&h->mutex);
	free(h);
}

void watch_expired(const void *key, size_t key_len, void *ctx)
{
	cellar_db *db = ctx;
	writer_op op = { WRITER_OP_EXPIRE, key, NULL, key_len, 0, 0 };

	watch_note(db, &op, NULL, 1);
}

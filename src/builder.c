/*
 * builder.c - bulk loading (see builder.h): the public builder calls, the
 * records and their pairs, the build directory and the publication.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build_index.h"
#include "builder.h"
#include "error.h"
#include "files.h"
#include "hash.h"
#include "latch.h"
#include "meta.h"
#include "record.h"
#include "segment.h"

#define DEFAULT_BUDGET (64ull << 20)
#define DEFAULT_SEGMENT_SIZE (256ull << 20)
#define MIN_SEGMENT_SIZE (64ull << 10)
#define MAX_SEGMENT_SIZE (2ull << 30)
/* Segment bytes appended between two writeback hints (see add). */
#define KICK_BYTES (32ull << 20)

enum { B_OPEN = 0, B_FINISHED = 1, B_FAILED = 2 };

/* The segment writer thread (see "the segment writer" below). */
typedef struct bwriter {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	segset_flush_job job;
	int has_job;  /* job is for the thread to run */
	int stop;     /* finish, abort: end once no job is left */
	int running;  /* the thread exists and has not been joined */
} bwriter;

struct cellar_builder {
	cellar_fs *fs;
	int own_fs;
	char *dir;          /* the target */
	char *tmp;          /* the build directory */
	char *parent;       /* the directory holding both */
	cellar_file *lock;  /* <tmp>/LOCK while the build lives */
	latch latch;
	segset segs;
	int segs_open;
	uint64_t seed;
	int unique;
	int state;
	build_pair *mem;
	size_t nmem, cap;
	cellar_file *spill;
	uint64_t nspill;
	uint64_t *dead;     /* finish: dead bytes per segment id */
	segment *kick_seg;  /* the segment of the last writeback hint */
	uint64_t kicked;    /* its bytes hinted so far */
	bwriter w;
};

/* ---- names ---------------------------------------------------------------- */

/* The directory holding path ("." for a bare name). */
static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *p;

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	if (!(p = malloc((size_t)(slash - path) + 1)))
		return NULL;
	memcpy(p, path, (size_t)(slash - path));
	p[slash - path] = '\0';
	return p;
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* ---- removing a directory's files ------------------------------------------ */

typedef struct rm_ctx {
	cellar_fs *fs;
	const char *dir;
} rm_ctx;

static int rm_one(const char *name, void *ctx)
{
	rm_ctx *r = ctx;
	char path[FILE_PATH_MAX];

	if (files_path(path, sizeof path, r->dir, name) == CELLAR_OK)
		(void)r->fs->remove(r->fs, path);
	return 0;
}

/* Remove every file in dir, then dir (if the fs can); best effort. */
static void remove_tree(cellar_fs *fs, const char *dir)
{
	rm_ctx r = { fs, dir };

	(void)fs->list(fs, dir, rm_one, &r);
	if (fs->rmdir)
		(void)fs->rmdir(fs, dir);
}

/* ---- what is at the target ------------------------------------------------ */

enum { T_ABSENT = 0, T_STORE = 1 };

static int any_entry(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return 1;
}

/* *kind: T_ABSENT or T_STORE; CELLAR_EEXIST when dir is something else. */
static int target_kind(cellar_fs *fs, const char *dir, int *kind)
{
	meta m;
	int rc = meta_read(fs, dir, &m);

	if (rc == CELLAR_OK) {
		*kind = T_STORE;
		return CELLAR_OK;
	}
	if (rc != CELLAR_ENOENT)
		return rc;
	rc = fs->list(fs, dir, any_entry, NULL);
	if (rc == CELLAR_ENOENT) {
		*kind = T_ABSENT;
		return CELLAR_OK;
	}
	if (rc < 0)
		return rc;
	return cellar__error(CELLAR_EEXIST, "%s exists and is not a cellar store",
	                     dir);
}

/* ---- stale build directories ---------------------------------------------- */

typedef struct stale_ctx {
	cellar_fs *fs;
	const char *dir, *base;
	size_t dlen, blen;
} stale_ctx;

/* A build directory of this target whose lock is free: its builder died
 * (or it holds a store that a publication swapped out): remove it. */
static int stale_one(const char *name, void *ctx)
{
	stale_ctx *c = ctx;
	char path[FILE_PATH_MAX], lpath[FILE_PATH_MAX];
	size_t ilen = strlen(FILE_BUILD_INFIX);
	cellar_file *lock = NULL;

	if (strncmp(name, c->base, c->blen) != 0 ||
	    strncmp(name + c->blen, FILE_BUILD_INFIX, ilen) != 0 ||
	    strlen(name + c->blen + ilen) != 16)
		return 0;
	if (c->dlen + strlen(name + c->blen) >= sizeof path)
		return 0;
	memcpy(path, c->dir, c->dlen);
	strcpy(path + c->dlen, name + c->blen);
	if (files_path(lpath, sizeof lpath, path, FILE_LOCK) < 0 ||
	    c->fs->lock(c->fs, lpath, &lock) < 0)
		return 0; /* alive (or unreadable): leave it */
	remove_tree(c->fs, path);
	c->fs->unlock(c->fs, lock);
	return 0;
}

static void remove_stale(cellar_builder *b)
{
	stale_ctx c = { b->fs, b->dir, base_of(b->dir), strlen(b->dir),
	                strlen(base_of(b->dir)) };

	(void)b->fs->list(b->fs, b->parent, stale_one, &c);
	cellar__error_clear();
}

/* ---- the segment writer ------------------------------------------------- */

/*
 * A build writes its segments from a thread of its own.  When the append
 * buffer fills, the segment set sets it aside and appends go on in a
 * second buffer (segment.h, double buffering); add hands the buffer set
 * aside to the writer thread, which writes it meanwhile, without fsync
 * (finish fsyncs every file).  The copy into the page cache, about a
 * third of the adds' time, then runs on another core.  If the next buffer
 * fills before that write is done, the append waits for it (segset does);
 * if it failed, the append writes the buffer again itself and returns what
 * that gives.  Without the thread (pthread_create failed) every write is
 * made by add, as before.
 */
static void *writer_main(void *arg)
{
	cellar_builder *b = arg;
	bwriter *w = &b->w;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->has_job && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->has_job)
			break;
		segset_flush_job job = w->job;
		w->has_job = 0;
		pthread_mutex_unlock(&w->mu);
		(void)segset_flush_run(&b->segs, &job); /* see above: retried */
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void writer_start(cellar_builder *b)
{
	bwriter *w = &b->w;

	if (pthread_mutex_init(&w->mu, NULL) != 0)
		return;
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->mu);
		return;
	}
	if (pthread_create(&w->tid, NULL, writer_main, b) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		return;
	}
	w->running = 1;
}

/* Let the thread finish the write it has, then end it (idempotent). */
static void writer_stop(cellar_builder *b)
{
	bwriter *w = &b->w;

	if (!w->running)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->tid, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	w->running = 0;
}

/* A buffer was set aside and no one writes it: give it to the thread. */
static void writer_hand_off(cellar_builder *b)
{
	bwriter *w = &b->w;
	segset_flush_job job;
	int claimed;

	if (!w->running || segset_flush_begin(&b->segs, 0, &job, &claimed) < 0 ||
	    !claimed)
		return;
	job.nosync = 1;
	pthread_mutex_lock(&w->mu);
	w->job = job;
	w->has_job = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* ---- open ---------------------------------------------------------------- */

static int check_options(const cellar_build_options *o)
{
	if (o->version == 0 || o->version > CELLAR_BUILD_OPTIONS_VERSION)
		return cellar__error(CELLAR_EINVAL, "build options version %u "
		                     "unknown", o->version);
	if (o->flags & ~(unsigned)CELLAR_BUILD_UNIQUE)
		return cellar__error(CELLAR_EINVAL, "unknown build flags 0x%x",
		                     o->flags);
	if (o->memory_budget && o->memory_budget < CELLAR_BUILD_MIN_BUDGET)
		return cellar__error(CELLAR_EINVAL, "memory budget %llu is below "
		                     "1 MiB", (unsigned long long)o->memory_budget);
	if (o->memory_budget / sizeof(build_pair) > SIZE_MAX / 2)
		return cellar__error(CELLAR_EINVAL, "memory budget too large");
	if (o->max_segment_size && (o->max_segment_size < MIN_SEGMENT_SIZE ||
	                            o->max_segment_size > MAX_SEGMENT_SIZE))
		return cellar__error(CELLAR_EINVAL,
		                     "max_segment_size must be 64 KiB..2 GiB");
	return CELLAR_OK;
}

static void builder_free(cellar_builder *b)
{
	writer_stop(b);
	if (b->segs_open)
		segset_close(&b->segs);
	if (b->spill)
		b->fs->close(b->fs, b->spill);
	if (b->lock)
		b->fs->unlock(b->fs, b->lock);
	if (b->own_fs)
		cellar_fs_free(b->fs);
	free(b->mem);
	free(b->dead);
	free(b->dir);
	free(b->tmp);
	free(b->parent);
	free(b);
}

/* Make the build directory, lock it and give it its meta and segments. */
static int make_build_dir(cellar_builder *b, uint64_t max_seg)
{
	char lpath[FILE_PATH_MAX];
	size_t dl = strlen(b->dir);
	meta m;
	int rc = CELLAR_EEXIST;

	if (!(b->tmp = malloc(dl + strlen(FILE_BUILD_INFIX) + 17)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	for (int tries = 0; rc == CELLAR_EEXIST && tries < 8; tries++) {
		uint64_t r = meta_random_seed(b) ^ (uint64_t)tries;
		memcpy(b->tmp, b->dir, dl);
		strcpy(b->tmp + dl, FILE_BUILD_INFIX);
		for (int i = 0; i < 16; i++)
			b->tmp[dl + strlen(FILE_BUILD_INFIX) + (size_t)i] =
			    "0123456789abcdef"[(r >> (60 - 4 * i)) & 15];
		b->tmp[dl + strlen(FILE_BUILD_INFIX) + 16] = '\0';
		rc = b->fs->mkdir(b->fs, b->tmp);
	}
	if (rc < 0)
		return rc;
	meta_init(&m, b->seed);
	if ((rc = files_path(lpath, sizeof lpath, b->tmp, FILE_LOCK)) < 0 ||
	    (rc = b->fs->lock(b->fs, lpath, &b->lock)) < 0 ||
	    (rc = meta_write(b->fs, b->tmp, &m)) < 0 ||
	    (rc = segset_open(&b->segs, b->fs, b->tmp, max_seg, 0, &b->latch)) < 0)
		return rc;
	b->segs_open = 1;
	return CELLAR_OK;
}

int cellar_builder_open(cellar_builder **out, const char *dir,
                        const cellar_build_options *opts)
{
	cellar_build_options defaults = CELLAR_BUILD_OPTIONS_INIT;
	cellar_builder *b = NULL;
	uint64_t budget;
	int rc, kind;

	cellar__error_clear();
	if (!out)
		return cellar__error(CELLAR_EINVAL, "out is NULL");
	*out = NULL;
	if (!dir || !*dir)
		return cellar__error(CELLAR_EINVAL, "dir is NULL or empty");
	if (!opts)
		opts = &defaults;
	if ((rc = check_options(opts)) < 0)
		return rc;
	if (!(b = calloc(1, sizeof *b)))
		return cellar__error(CELLAR_ENOMEM, "out of memory");
	latch_init(&b->latch);
	b->unique = !!(opts->flags & CELLAR_BUILD_UNIQUE);
	b->seed = opts->hash_seed ? opts->hash_seed : meta_random_seed(b);
	budget = opts->memory_budget ? opts->memory_budget : DEFAULT_BUDGET;
	b->cap = (size_t)(budget / sizeof(build_pair));
	if (!(b->dir = strdup(dir))) {
		rc = cellar__error(CELLAR_ENOMEM, "out of memory");
		goto fail;
	}
	/* "x/" names x: the build directory goes beside it, not inside. */
	for (size_t n = strlen(b->dir); n > 1 && b->dir[n - 1] == '/'; n--)
		b->dir[n - 1] = '\0';
	if (!(b->parent = parent_of(b->dir)) ||
	    !(b->mem = malloc(b->cap * sizeof *b->mem))) {
		rc = cellar__error(CELLAR_ENOMEM, "out of memory");
		goto fail;
	}
	if (opts->fs) {
		b->fs = opts->fs;
	} else if ((rc = cellar_fs_mmap_new(&b->fs)) < 0) {
		goto fail;
	} else {
		b->own_fs = 1;
	}
	if (b->fs->version != CELLAR_FS_VERSION) {
		rc = cellar__error(CELLAR_EINVAL, "file system version %u unknown",
		                   b->fs->version);
		goto fail;
	}
	if ((rc = target_kind(b->fs, dir, &kind)) < 0)
		goto fail;
	remove_stale(b);
	if ((rc = make_build_dir(b, opts->max_segment_size
	                                ? opts->max_segment_size
	                                : DEFAULT_SEGMENT_SIZE)) < 0)
		goto fail;
	writer_start(b);
	*out = b;
	return CELLAR_OK;
fail:
	if (b->tmp && b->fs)
		remove_tree(b->fs, b->tmp);
	builder_free(b);
	return rc;
}

/* ---- add ----------------------------------------------------------------- */

/* The pairs in memory go to the end of the spill file. */
static int spill(cellar_builder *b)
{
	char path[FILE_PATH_MAX];
	int rc;

	if (!b->spill &&
	    ((rc = files_path(path, sizeof path, b->tmp, FILE_BUILD_PAIRS)) < 0 ||
	     (rc = b->fs->open(b->fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE,
	                       &b->spill)) < 0))
		return rc;
	if ((rc = b->fs->write_at(b->fs, b->spill, b->nspill * sizeof *b->mem,
	                          b->mem, b->nmem * sizeof *b->mem)) < 0)
		return rc;
	b->nspill += b->nmem;
	b->nmem = 0;
	return CELLAR_OK;
}

/*
 * Ask the OS to start writing what the segments hold so far (fs
 * writeback, a hint), every KICK_BYTES and when a segment is full: the
 * disk then works while records are added, and finish's fsync has only the
 * tail left to wait for, instead of the whole build.
 */
static void kick_writeback(cellar_builder *b, segment *g)
{
	cellar_fs *fs = b->fs;

	if (g != b->kick_seg) {
		if (b->kick_seg && b->kick_seg->wend > b->kicked)
			(void)fs->writeback(fs, b->kick_seg->file, b->kicked,
			                    b->kick_seg->wend - b->kicked);
		b->kick_seg = g;
		b->kicked = 0;
	}
	if (g->wend - b->kicked >= KICK_BYTES) {
		(void)fs->writeback(fs, g->file, b->kicked, g->wend - b->kicked);
		b->kicked = g->wend;
	}
}

int cellar_builder_add(cellar_builder *b, const void *key, size_t key_len,
                       const void *val, size_t val_len)
{
	segment *g;
	uint64_t off, total;
	build_pair *p;
	int rc;

	if (!b || !key || (!val && val_len))
		return cellar__error(CELLAR_EINVAL, "builder, key or value is NULL");
	if (b->state != B_OPEN)
		return cellar__error(CELLAR_EINVAL, b->state == B_FINISHED
		                     ? "the builder is finished"
		                     : "the builder has failed");
	if (key_len == 0 || key_len > CELLAR_MAX_KEY_LEN)
		return cellar__error(CELLAR_EKEYLEN, "key length %zu", key_len);
	if (val_len > CELLAR_MAX_VALUE_LEN)
		return cellar__error(CELLAR_EVALLEN, "value length %zu", val_len);
	if (b->nmem == b->cap && (rc = spill(b)) < 0)
		goto fail;
	if ((rc = segset_append(&b->segs, RECORD_PUT, key, key_len, val, val_len,
	                        &g, &off, &total)) < 0)
		goto fail;
	/* No readers: publishing is bookkeeping (segset_record's bounds). */
	segset_publish(&b->segs, g, off + total);
	g->live += total;
	if (segset_flush_waiting(&b->segs))
		writer_hand_off(b);
	if (b->fs->writeback)
		kick_writeback(b, g);
	p = &b->mem[b->nmem++];
	p->hash = hash_key(key, key_len, b->seed);
	p->off = (uint32_t)off;
	p->seg = g->id;
	p->pad = 0;
	return CELLAR_OK;
fail:
	if (rc != CELLAR_ELIMIT)
		b->state = B_FAILED;
	return rc;
}

/* ---- finish: the callbacks build_index.c calls ------------------------------ */

static int same_key(void *ctx, const build_pair *x, const build_pair *y,
                    int *same)
{
	cellar_builder *b = ctx;
	record_view a, c;
	int rc;

	if ((rc = segset_record(&b->segs, x->seg, x->off, &a)) < 0)
		return rc;
	if ((rc = segset_record(&b->segs, y->seg, y->off, &c)) < 0) {
		record_release(&a);
		return rc;
	}
	*same = a.h.key_len == c.h.key_len &&
	        memcmp(record_key(&a), record_key(&c), a.h.key_len) == 0;
	record_release(&a);
	record_release(&c);
	return CELLAR_OK;
}

static void begin_pass(void *ctx)
{
	cellar_builder *b = ctx;

	memset(b->dead, 0, SEG_MAX_SEGMENTS * sizeof *b->dead);
}

static int dropped(void *ctx, const build_pair *p)
{
	cellar_builder *b = ctx;
	record_view v;
	int rc = segset_record(&b->segs, p->seg, p->off, &v);

	if (rc < 0)
		return rc;
	b->dead[p->seg] += v.h.total;
	record_release(&v);
	return CELLAR_OK;
}

/* The checkpoint covers every segment whole, with replaced records dead. */
static int checkpoint(void *ctx, index_ckpt *ck)
{
	cellar_builder *b = ctx;
	segset *s = &b->segs;
	segment *last = segset_last(s);

	for (size_t id = 0; id < SEG_MAX_SEGMENTS; id++)
		if (b->dead[id])
			segset_mark_dead(s, (uint16_t)id, b->dead[id]);
	if (s->n && !(ck->segs = calloc(s->n, sizeof *ck->segs)))
		return cellar__error(CELLAR_ENOMEM, "build: out of memory");
	ck->nsegs = s->n;
	for (size_t i = 0; i < s->n; i++) {
		segment *g = s->list[i];
		ck->segs[i].id = g->id;
		ck->segs[i].seq = g->seq;
		ck->segs[i].size = g->wend;
		ck->segs[i].live = g->live;
		ck->segs[i].dead = g->dead;
		ck->segs[i].kept = 0;
	}
	ck->seq = last ? last->seq : 0;
	ck->off = last ? last->wend : 0;
	return CELLAR_OK;
}

/* ---- finish: publication ---------------------------------------------------- */

/* dir is absent: the build directory becomes it. */
static int publish_new(cellar_builder *b)
{
	int rc;

	if ((rc = b->fs->rename(b->fs, b->tmp, b->dir)) < 0)
		return rc;
	return b->fs->sync_dir(b->fs, b->parent);
}

/*
 * dir holds a store: under its write lock, exchange the two directories
 * (one atomic step), make it durable, then remove the old store, which the
 * build directory's name now holds.
 */
static int publish_over(cellar_builder *b)
{
	char lpath[FILE_PATH_MAX];
	cellar_file *lock = NULL;
	int rc, kind;

	if (!b->fs->exchange)
		return cellar__error(CELLAR_EINVAL, "%s holds a store and the file "
		                     "system cannot exchange directories", b->dir);
	if ((rc = files_path(lpath, sizeof lpath, b->dir, FILE_LOCK)) < 0)
		return rc;
	if ((rc = b->fs->lock(b->fs, lpath, &lock)) < 0) {
		if (rc == CELLAR_ELOCKED)
			cellar__error(rc, "%s is open for writing elsewhere", b->dir);
		return rc;
	}
	if ((rc = target_kind(b->fs, b->dir, &kind)) < 0 ||
	    (rc = b->fs->exchange(b->fs, b->tmp, b->dir)) < 0 ||
	    (rc = b->fs->sync_dir(b->fs, b->parent)) < 0)
		goto done;
	/* Published.  What is left is cleanup: a failure (or a crash) leaves
	 * a build directory whose lock is free, removed by a later builder. */
	remove_tree(b->fs, b->tmp);
	(void)b->fs->sync_dir(b->fs, b->parent);
	cellar__error_clear();
done:
	b->fs->unlock(b->fs, lock);
	return rc;
}

int cellar_builder_finish(cellar_builder *b)
{
	build_source src;
	char path[FILE_PATH_MAX];
	uint64_t keys;
	int rc, kind;

	cellar__error_clear();
	if (!b)
		return cellar__error(CELLAR_EINVAL, "builder is NULL");
	if (b->state != B_OPEN)
		return cellar__error(CELLAR_EINVAL, b->state == B_FINISHED
		                     ? "the builder is finished already"
		                     : "the builder has failed");
	b->state = B_FAILED; /* until it has worked */
	writer_stop(b); /* segset_flush below writes what it left */
	if (!(b->dead = calloc(SEG_MAX_SEGMENTS, sizeof *b->dead)))
		return cellar__error(CELLAR_ENOMEM, "build: out of memory");
	memset(&src, 0, sizeof src);
	src.fs = b->fs;
	src.dir = b->tmp;
	src.seed = b->seed;
	src.unique = b->unique;
	src.spill = b->spill;
	src.nspill = b->nspill;
	src.mem = b->mem;
	src.nmem = b->nmem;
	src.cap = b->cap;
	src.same_key = same_key;
	src.begin_pass = begin_pass;
	src.dropped = dropped;
	src.checkpoint = checkpoint;
	src.ctx = b;
	/* The segments' bytes go to the files now and are fsynced after the
	 * index is written: nothing in the build directory is visible before
	 * the publication, so the order of the two fsyncs does not matter, and
	 * the disk writes the segments back while the index is being made. */
	if ((rc = segset_flush(&b->segs)) < 0)
		return rc;
	rc = build_index_write(&src, FILE_INDEX, &keys);
	b->mem = src.mem; /* it may have grown */
	b->cap = src.cap;
	b->spill = src.spill; /* it may have made one */
	if (rc < 0)
		return rc;
	if (b->spill) {
		b->fs->close(b->fs, b->spill);
		b->spill = NULL;
		if ((rc = files_path(path, sizeof path, b->tmp, FILE_BUILD_PAIRS)) < 0 ||
		    (rc = b->fs->remove(b->fs, path)) < 0)
			return rc;
	}
	if ((rc = segset_sync(&b->segs)) < 0)
		return rc;
	segset_close(&b->segs);
	b->segs_open = 0;
	free(b->mem);
	b->mem = NULL;
	if ((rc = b->fs->sync_dir(b->fs, b->tmp)) < 0 ||
	    (rc = target_kind(b->fs, b->dir, &kind)) < 0)
		return rc;
	rc = kind == T_ABSENT ? publish_new(b) : publish_over(b);
	if (rc < 0)
		return rc;
	b->state = B_FINISHED;
	b->fs->unlock(b->fs, b->lock);
	b->lock = NULL;
	return CELLAR_OK;
}

void cellar_builder_abort(cellar_builder *b)
{
	if (!b)
		return;
	writer_stop(b);
	if (b->state != B_FINISHED) {
		if (b->segs_open) {
			segset_close(&b->segs);
			b->segs_open = 0;
		}
		if (b->spill) {
			b->fs->close(b->fs, b->spill);
			b->spill = NULL;
		}
		remove_tree(b->fs, b->tmp);
		cellar__error_clear();
	}
	builder_free(b);
}

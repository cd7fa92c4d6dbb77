/*
 * engine.h - what cellar-bench needs from a key-value store.
 *
 * Each store the benchmark drives (cellar and its peers) is an adapter: a
 * table of functions in engine_<name>.c.  The driver (bench.c) owns keys,
 * values, timing and verification; an adapter only translates calls.
 *
 * Life of a store in one run:
 *
 *   load_open(dir, n)   create a fresh, empty store in the empty directory dir
 *   put() x n           insert; durability is deferred ...
 *   sync()              ... to this one sync/commit at the end of the load
 *   close()             the loading handle
 *   open(dir, writable) reopen: read-only for the read phases, read-write
 *                       for the mixed phase
 *   reader_new()        one per thread doing gets; reader_free() after
 *   get() / put()       point reads and (mixed phase) overwrites
 *   get_many()          (multiget phase; optional) a batch of point reads
 *   get_view()          (pinned phase; optional) a point read without a copy
 *   iterate()           visit every item once, count them, and read the
 *                       first and last byte of each key and value
 *   del()               (space phase) delete keys on a read-write handle
 *   compact()           (space, compact phases; optional) reclaim the
 *                       space of overwritten and deleted records
 *   space()             (space phase; optional) the store's own accounting
 *   warm()              (cold phase; optional) load the store into memory
 *
 * Every function returns 0 on success and -1 on failure, after saying why
 * with bench_error().  get() returns 1 when the key is absent.  Everything a
 * store writes lives under its directory, so the driver measures bytes on
 * disk itself (allocated blocks of every file under dir).
 */
#ifndef BENCH_ENGINE_H
#define BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/** What one compaction pass did (engine.compact). */
struct bench_compact {
	uint64_t segments;        /* files rewritten and removed */
	uint64_t records;         /* live records copied forward */
	uint64_t bytes_reclaimed; /* bytes of files removed minus copied */
	double seconds;           /* wall time of the pass, as the store says */
	double longest_pause_ms;  /* longest time the pass held writers up */
	int complete;             /* 0 if the pass was cut short */
};

/** A store's own view of its size (engine.space). */
struct bench_space {
	uint64_t keys;        /* live keys, as the store counts them */
	uint64_t index_bytes; /* size of a separate index file (0: none) */
};

struct engine {
	/** Short name used on the command line and in the output. */
	const char *name;
	/** The settings the adapter uses, one line, for --help. */
	const char *settings;
	/** Nonzero if the store can update after the load (mixed phase). */
	int can_update;

	/**
	 * Create an empty store in dir (which exists and is empty), ready for
	 * n puts of keys up to key_max and values up to val_max bytes.
	 */
	int (*load_open)(void **h, const char *dir, uint64_t n, size_t key_max,
	                 size_t val_max);
	/** Insert or overwrite key. */
	int (*put)(void *h, const void *key, size_t key_len, const void *val,
	           size_t val_len);
	/** Make everything put so far durable (one fsync/commit). */
	int (*sync)(void *h);
	/** Close any handle; must accept NULL. */
	int (*close)(void *h);

	/** Open the store in dir read-only (writable == 0) or read-write. */
	int (*open)(void **h, const char *dir, int writable, uint64_t n,
	            size_t key_max, size_t val_max);
	/**
	 * Per-thread read state (a read transaction, a private cursor, ...),
	 * or NULL where the handle itself is enough.  *r is set either way.
	 */
	int (*reader_new)(void *h, void **r);
	void (*reader_free)(void *h, void *r);
	/**
	 * Copy the value of key into buf (capacity cap); *val_len = its length.
	 * @return 0 found, 1 absent, -1 error (including a value > cap).
	 */
	int (*get)(void *h, void *r, const void *key, size_t key_len, void *buf,
	           size_t cap, size_t *val_len);
	/**
	 * Optional (NULL: the multiget phase does one get() per key): look up
	 * n keys of key_len bytes at once.  Value i goes to bufs + i * cap,
	 * its length to lens[i]; rcs[i] is what get() would return.
	 * @return 0, or -1 if the call as a whole failed.
	 */
	int (*get_many)(void *h, void *r, const unsigned char *const *keys,
	                size_t key_len, unsigned char *bufs, size_t cap,
	                size_t *lens, int *rcs, size_t n);
	/**
	 * Optional (NULL: the pinned phase does get()): point *val at key's
	 * value where the store holds it, without a copy, until
	 * view_release(h, *token).  Returns as get().
	 */
	int (*get_view)(void *h, void *r, const void *key, size_t key_len,
	                const void **val, size_t *val_len, void **token);
	void (*view_release)(void *h, void *token);
	/**
	 * Visit every item; *count = how many, *touch = the sum of
	 * bench_touch() over them (so lazily mapped data is really read).
	 */
	int (*iterate)(void *h, uint64_t *count, uint64_t *touch);

	/**
	 * Delete key on a read-write handle: 0 deleted, 1 absent, -1 error.
	 * NULL if the store cannot delete (then it has no space phase).
	 */
	int (*del)(void *h, const void *key, size_t key_len);
	/**
	 * Optional (NULL: the store has no such operation): one pass that
	 * reclaims the space of dead records, on a read-write handle; may run
	 * while another thread calls put().  Fills *out.
	 */
	int (*compact)(void *h, struct bench_compact *out);
	/** Optional: the store's own key count and index size. */
	int (*space)(void *h, struct bench_space *out);
	/**
	 * Optional (cold phase): bring the store read by h into memory before
	 * it serves (cellar_warm).  NULL: the store has no such call.
	 */
	int (*warm)(void *h);
	/**
	 * Optional (refresh phase): move the read-only handle h to the store's
	 * newest state without closing it (cellar_refresh).  NULL: none.
	 */
	int (*refresh)(void *h);

	/**
	 * Optional (build phase; NULL: the store has no bulk build): build a
	 * store of n records at dir, which does not exist yet, in one go:
	 * build_open, build_add per record, build_finish (durable, published,
	 * and the builder freed, also on failure).  open() reads it after.
	 */
	int (*build_open)(void **b, const char *dir, uint64_t n, size_t key_max,
	                  size_t val_max);
	int (*build_add)(void *b, const void *key, size_t key_len,
	                 const void *val, size_t val_len);
	int (*build_finish)(void *b);
	/**
	 * (batch phase; optional) Add a put to the handle's pending write
	 * batch; batch_commit applies the pending puts atomically.
	 */
	int (*batch_add)(void *h, const void *key, size_t key_len,
	                 const void *val, size_t val_len);
	int (*batch_commit)(void *h);
};

/* First and last byte of key and value: cheap, but faults in their pages. */
static inline uint64_t bench_touch(const void *key, size_t key_len,
                                   const void *val, size_t val_len)
{
	const unsigned char *k = key, *v = val;
	uint64_t t = key_len ? (uint64_t)k[0] + k[key_len - 1] : 0;
	return t + (val_len ? (uint64_t)v[0] + v[val_len - 1] : 0);
}

/** Record why the current call failed (per thread; printf-style). */
void bench_error(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/** --segment-access: cellar's segment_access option (a cellar_access). */
extern unsigned bench_cellar_access;

extern const struct engine engine_cellar;
#ifdef HAVE_LMDB
extern const struct engine engine_lmdb;
#endif
#ifdef HAVE_CDB
extern const struct engine engine_cdb;
#endif
#ifdef HAVE_TKRZW
extern const struct engine engine_tkrzw;
#endif

#endif /* BENCH_ENGINE_H */

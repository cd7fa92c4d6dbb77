/*
 * cellar.h - an embedded, read-optimized key-value store.
 *
 * cellar keeps key-value pairs in a directory: records are appended to
 * segment files, and an index of 64-byte buckets, grown by linear hashing,
 * maps each key to its newest record.  Lookups read the index through memory
 * and touch one bucket cache line plus the record itself.
 *
 * Example
 * -------
 *     cellar_db *db;
 *     cellar_options o = CELLAR_OPTIONS_INIT;
 *     o.flags = CELLAR_CREATE;
 *     if (cellar_open(&db, "/tmp/store", &o) != CELLAR_OK)
 *         return fprintf(stderr, "%s\n", cellar_errmsg()), 1;
 *     cellar_put(db, "apple", 5, "red", 3);
 *     char buf[64]; size_t n;
 *     if (cellar_get(db, "apple", 5, buf, sizeof buf, &n) == CELLAR_OK)
 *         printf("%.*s\n", (int)n, buf);
 *     cellar_iter *it; const void *k, *v; size_t kn, vn;
 *     cellar_iter_new(db, &it);
 *     while (cellar_iter_next(it, &k, &kn, &v, &vn) == CELLAR_OK)
 *         printf("%.*s=%.*s\n", (int)kn, (const char *)k, (int)vn, (const char *)v);
 *     cellar_iter_free(it);
 *     cellar_close(db);
 *
 * Threads
 * -------
 * - cellar_db: safe to share.  Any number of threads may call cellar_get,
 *   cellar_get_alloc, cellar_has, cellar_count and iterate while other threads
 *   write; writes (put, delete, sync) are serialized by an internal mutex.
 *   Readers wait for a writer only while it changes the in-memory index
 *   (microseconds), never while it writes or syncs files.  cellar_close must
 *   not race with any other call on the handle.
 * - cellar_iter: belongs to one thread at a time.
 * - cellar_builder: belongs to one thread at a time; builders of different
 *   targets are independent.
 * - cellar_errmsg() is per thread.
 *
 * Caveats
 * -------
 * - One writer per store.  A handle opened for writing holds an OS lock on
 *   <dir>/LOCK; a second writer (another process, or another handle in this
 *   one) gets CELLAR_ELOCKED.  Read-only handles take no lock and see the
 *   store as it was when they opened it.
 * - Durability depends on cellar_options.sync_mode; the README states what
 *   survives a crash for each mode.  In short: everything written before a
 *   successful cellar_sync() or cellar_close() survives a power cut;
 *   CELLAR_SYNC_ALWAYS makes each write durable before it returns.
 * - A full disk: a write refused for lack of space fails with
 *   CELLAR_ENOSPC and changes nothing; the handle stays usable (reads go
 *   on, and writes succeed again once there is room).  Only a failed fsync
 *   or another failed write makes it refuse writes (CELLAR_EFAILED).  To
 *   drain a full disk from inside (delete, then compact), give the store a
 *   reserve (cellar_options.reserve_bytes); see "a full disk" at the end.
 * - Pointers returned by cellar_iter_next() stay valid only until the next
 *   call on that iterator or cellar_iter_free().
 * - Expiring keys (cellar_put_ex) are judged by cellar_options.clock (the
 *   wall clock by default) at the moment of each read; an iterator reads
 *   the clock once when created, a snapshot once when taken.  An expired
 *   key stays on disk, and in cellar_count, until compaction drops it.
 * - Limits: keys are 1 to CELLAR_MAX_KEY_LEN (65,535) bytes, values 0 to
 *   CELLAR_MAX_VALUE_LEN (1 GiB) bytes; at most 65,536 segment files are live
 *   at once.  Counts and sizes are 64-bit.
 */
#ifndef CELLAR_H
#define CELLAR_H

#include <stddef.h>
#include <stdint.h>

#include "cellar_fs.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Library version: the one place it is written (meson.build reads it from
 * here, and cellar_version() returns CELLAR_VERSION_STRING).
 */
#define CELLAR_VERSION_MAJOR 0
#define CELLAR_VERSION_MINOR 1
#define CELLAR_VERSION_PATCH 0
#define CELLAR_VERSION_STRING_(a, b, c) #a "." #b "." #c
#define CELLAR_VERSION_STRING_X(a, b, c) CELLAR_VERSION_STRING_(a, b, c)
/** "MAJOR.MINOR.PATCH" */
#define CELLAR_VERSION_STRING                                                   \
	CELLAR_VERSION_STRING_X(CELLAR_VERSION_MAJOR, CELLAR_VERSION_MINOR,         \
	                        CELLAR_VERSION_PATCH)

/** Longest key, in bytes.  Keys are at least one byte long. */
#define CELLAR_MAX_KEY_LEN 65535u
/** Longest value, in bytes (1 GiB). */
#define CELLAR_MAX_VALUE_LEN (1u << 30)

/**
 * Error codes.  Every fallible function returns CELLAR_OK or one of these.
 * The numbers are stable and never reused.
 */
typedef enum cellar_error {
	CELLAR_OK = 0,
	CELLAR_ENOTFOUND = -1, /**< the key is not in the store */
	CELLAR_EDONE = -2,     /**< the iterator has returned every item */
	CELLAR_EBUFS = -3,     /**< the caller's buffer is too small */
	CELLAR_ELOCKED = -4,   /**< another writer holds the store */
	CELLAR_EINVAL = -5,    /**< an argument is invalid (NULL, bad option) */
	CELLAR_ENOMEM = -6,    /**< out of memory */
	CELLAR_EIO = -7,       /**< the operating system reported an I/O error */
	CELLAR_ENOSPC = -8,    /**< no space left on the device */
	CELLAR_ECORRUPT = -9,  /**< a file is damaged or is not a cellar file */
	CELLAR_EVERSION = -10, /**< a file was written by a newer format version */
	CELLAR_EREADONLY = -11, /**< a write on a read-only handle */
	CELLAR_EKEYLEN = -12,  /**< key empty or longer than CELLAR_MAX_KEY_LEN */
	CELLAR_EVALLEN = -13,  /**< value longer than CELLAR_MAX_VALUE_LEN */
	CELLAR_ENOENT = -14,   /**< no store (or file) at that path */
	CELLAR_EEXIST = -15,   /**< the file or directory already exists */
	CELLAR_ELIMIT = -16,   /**< a store-wide limit was reached (see Caveats) */
	CELLAR_EFAILED = -17,  /**< an earlier write failed; reopen the store */
	CELLAR_EBUSY = -18,    /**< compaction waits: an iterator is open */
	CELLAR_EACCES = -19,   /**< the OS refused: permission denied, read-only file system */
	CELLAR_EMLOCK = -20,   /**< memory could not be locked (RLIMIT_MEMLOCK) */
	CELLAR_ECHANGED = -21  /**< cellar_cas(): the key did not hold the expected value */
} cellar_error;

/** Opaque database handle. */
typedef struct cellar_db cellar_db;
/** Opaque iterator over the items of a store. */
typedef struct cellar_iter cellar_iter;

/** cellar_options.flags */
#define CELLAR_CREATE 0x1   /**< create the store if it does not exist */
#define CELLAR_READONLY 0x2 /**< open read-only; writes fail with EREADONLY */
/**
 * Lock the index in memory at open (mlock through the file system's
 * lock_mem), so that no lookup ever waits for the index to be read from
 * disk, and keep it locked until cellar_close.  What is locked is the index
 * file as open found it (its mapping, or with the posix file system the
 * private copy read from it): the whole index of a read-only handle.
 * Buckets a read-write handle changes or adds later are private memory and
 * not locked; a new store has no index file yet and locks nothing.  The
 * open fails with CELLAR_EMLOCK when the OS refuses (RLIMIT_MEMLOCK, see
 * `ulimit -l`, is smaller than the index and no CAP_IPC_LOCK; the message
 * gives both numbers), and with CELLAR_EINVAL when the file system has no
 * lock_mem.
 */
#define CELLAR_LOCK_INDEX 0x4

/** cellar_options.sync_mode */
typedef enum cellar_sync_mode {
	/** Never sync by itself; only cellar_sync() and cellar_close() do. */
	CELLAR_SYNC_NONE = 0,
	/** A background thread syncs every sync_interval_ms. */
	CELLAR_SYNC_PERIODIC = 1,
	/** Every put and delete is durable before it returns (slow). */
	CELLAR_SYNC_ALWAYS = 2
} cellar_sync_mode;

/** Version of cellar_options described by this header. */
#define CELLAR_OPTIONS_VERSION 4

/**
 * cellar_options.segment_access: how lookups are expected to read the
 * segment files, passed to the file system as the hint of each segment's
 * mapping (the mmap file system turns it into madvise advice).
 */
typedef enum cellar_access {
	/** The default: CELLAR_ACCESS_RANDOM. */
	CELLAR_ACCESS_DEFAULT = 0,
	/** Point reads all over the files: no read-ahead (MADV_RANDOM). */
	CELLAR_ACCESS_RANDOM = 1,
	/** Mostly front to back, as a scan: aggressive read-ahead
	 *  (MADV_SEQUENTIAL). */
	CELLAR_ACCESS_SEQUENTIAL = 2,
	/** The OS's default read-ahead (no advice). */
	CELLAR_ACCESS_NORMAL = 3,
	/** As NORMAL, and ask the OS to start reading every segment in at
	 *  open, in the background (MADV_WILLNEED): a lighter cellar_warm. */
	CELLAR_ACCESS_WILLNEED = 4
} cellar_access;

/** Kinds of cellar_event. */
typedef enum cellar_event_kind {
	CELLAR_EVENT_SYNC = 1,    /**< the background thread synced the store */
	CELLAR_EVENT_COMPACT = 2, /**< a compaction pass finished (any thread) */
	CELLAR_EVENT_ERROR = 3,   /**< a background sync or compaction failed */
	/**
	 * cellar_open recovered from damage: it cut (read-write) or ignored
	 * (read-only) a torn tail at the end of the newest segment, or
	 * skipped damaged records.  message says what and where; the bytes
	 * are in cellar_stats_sized (torn_bytes, damaged_bytes).
	 */
	CELLAR_EVENT_RECOVERED = 4
} cellar_event_kind;

/** Counts of one compaction pass, from cellar_compact() or an event. */
typedef struct cellar_compact_result {
	uint64_t segments_compacted; /**< segments rewritten and removed */
	uint64_t records_copied;     /**< live records copied forward */
	uint64_t bytes_copied;
	uint64_t tombstones_dropped; /**< deletes nothing older can undo */
	uint64_t bytes_reclaimed;    /**< segment bytes removed minus copied */
	double seconds;              /**< wall time of the pass */
	double longest_pause_ms;     /**< longest time writers were held up */
	int complete;                /**< 0 if the pass was cut short by close */
} cellar_compact_result;

/** What the event callback is told.  Valid only during the call. */
typedef struct cellar_event {
	cellar_event_kind kind;
	int error;           /**< ERROR: the cellar_error */
	const char *message; /**< ERROR: the detail message; else "" */
	double seconds;      /**< how long the sync or pass took */
	const cellar_compact_result *compact; /**< COMPACT: the counts */
} cellar_event;

/**
 * Options for cellar_open().  Start from CELLAR_OPTIONS_INIT: a zero field
 * means "the default".  New fields are only ever added at the end.
 */
typedef struct cellar_options {
	/** Must be CELLAR_OPTIONS_VERSION. */
	unsigned version;
	/** CELLAR_CREATE, CELLAR_READONLY. */
	unsigned flags;
	/** File system; NULL means a private mmap file system. Not owned. */
	cellar_fs *fs;
	/** A cellar_sync_mode; default CELLAR_SYNC_NONE. */
	int sync_mode;
	/** Period of CELLAR_SYNC_PERIODIC in milliseconds; default 1000. */
	unsigned sync_interval_ms;
	/**
	 * Size at which a segment file is closed and a new one started, in
	 * bytes; default 256 MiB, minimum 64 KiB, maximum 2 GiB.  A record
	 * larger than this gets a segment of its own.
	 */
	uint64_t max_segment_size;
	/** Seed of the key hash, used when the store is created; 0 = random. */
	uint64_t hash_seed;
	/**
	 * cellar_compact() rewrites a segment once dead records make up at
	 * least this percentage of it; default 20, range 1..100.  After a
	 * pass, segments hold at most 1 / (1 - pct/100) times the live bytes
	 * (1.25 times by default).
	 */
	unsigned compact_dead_pct;
	/**
	 * Background compaction: when dead records make up at least this
	 * percentage of all segment bytes, the background thread (woken every
	 * sync_interval_ms) runs a compaction pass.  0 (default) = off.
	 */
	unsigned auto_compact_pct;
	/**
	 * Called after each background sync and each compaction pass, and for
	 * every error in a background thread (a background failure is never
	 * silent).  May run on the background thread; must not call into the
	 * same handle.  NULL = no events.
	 */
	void (*on_event)(const cellar_event *ev, void *ctx);
	/** Passed to on_event. */
	void *event_ctx;
	/**
	 * Since version 2.  The number of keys the store is expected to hold.
	 * A read-write open whose index is sized for fewer keys grows it to
	 * that size at once (about 12.5 bytes of primary buckets per key), so
	 * that a bulk load never splits a bucket: the index ends up the size
	 * the load would have grown it to.  0 (default) = grow as keys come.
	 * Read-only opens ignore it.  The memory is taken at open; where it
	 * can't be had, the open fails with CELLAR_ENOMEM.
	 */
	uint64_t expected_keys;
	/**
	 * Since version 3.  A cellar_access: the access hint of the segment
	 * mappings; default CELLAR_ACCESS_RANDOM.  Advice only: file systems
	 * without mappings, and those of table version 1 for NORMAL and
	 * WILLNEED, ignore it.  cellar_warm maps with its own hint and is not
	 * affected.
	 */
	unsigned segment_access;
	/**
	 * Since version 4.  Bytes of disk space a read-write handle holds
	 * back in the file <dir>/reserve (zeros, written and fsynced at open),
	 * so that a full disk can be drained; 0 (default) = none, at most
	 * 1 TiB.  When a write meets a full disk, the reserve's space goes
	 * back to the file system: from then on puts (and batches with a put)
	 * fail with CELLAR_ENOSPC at once, while deletes, cellar_sync,
	 * checkpoints and cellar_compact() go on in the space it freed
	 * (compaction then rewrites one segment at a time, removing each
	 * before it copies the next).  The reserve is made again after each
	 * compaction pass, and by syncs and puts at most once a second; puts
	 * are taken again once it is whole.  Size it to what draining needs:
	 * what the append buffers may hold unwritten (up to 4.5 MiB, or one
	 * segment if smaller), the live bytes of the segment compaction
	 * rewrites first, and the index file (a checkpoint writes a new one
	 * beside the old).  The file may be removed by hand while no writer
	 * has the store open; read-only handles ignore it.  README,
	 * Durability, "A full disk", says what happens step by step.
	 */
	uint64_t reserve_bytes;
	/**
	 * Since version 4.  The clock expiring keys are judged by
	 * (cellar_put_ex): returns the time now in milliseconds since the Unix
	 * epoch, and should never go back.  Called with clock_ctx, from any
	 * thread that reads or writes (with or without the handle's locks
	 * held), so it must be thread-safe and must not call into cellar.
	 * NULL (default) = the wall clock (CLOCK_REALTIME).  Tests inject a
	 * clock they advance by hand.
	 */
	uint64_t (*clock)(void *ctx);
	/** Since version 4.  Passed to clock. */
	void *clock_ctx;
} cellar_options;

/** Initializer giving every option its default. */
#define CELLAR_OPTIONS_INIT                                                      \
	{ CELLAR_OPTIONS_VERSION, 0, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0,   \
	  NULL, NULL }

/**
 * Open (and with CELLAR_CREATE create) the store in directory dir.
 *
 * A store opened for writing that was not closed cleanly is recovered: the
 * index is brought up to date from the segments, and a record torn by the
 * crash at the end of the newest segment is cut off.  A read-only handle
 * recovers in memory and changes no file.
 *
 * A read-only open is atomic against the store's writer and against a
 * build published in dir's place (cellar_builder_finish): the handle reads
 * one store whole, the old one or the new one.  If dir held another store
 * by the time its files were open, or a file it listed was removed by a
 * compaction meanwhile, it opens again (up to 8 times).
 *
 * @param[out] out  the new handle; NULL on failure.
 * @param dir       the store's directory; created with CELLAR_CREATE.
 * @param opts      options, or NULL for all defaults.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: out or dir NULL, an option out of range, a file system
 *     table of an unknown version, or CELLAR_LOCK_INDEX on a file system
 *     without lock_mem;
 *   - CELLAR_EMLOCK: CELLAR_LOCK_INDEX, and the OS refused to lock the
 *     index (RLIMIT_MEMLOCK);
 *   - CELLAR_ENOENT: no store in dir and CELLAR_CREATE not given (or a
 *     component of dir is a file: "Not a directory");
 *   - CELLAR_EEXIST: CELLAR_CREATE, and dir holds other files but no store
 *     (nothing is written into it);
 *   - CELLAR_EACCES: the OS refused access (permission, read-only file
 *     system); the message names the file;
 *   - CELLAR_ELOCKED: another writer has the store open;
 *   - CELLAR_ECORRUPT: a file is damaged beyond repair, or is not cellar's;
 *   - CELLAR_EVERSION: the store was written by a newer cellar;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM.  (With reserve_bytes, a
 *     full disk that leaves no room for the reserve is no error: the
 *     handle opens with its puts waiting for room, see "a full disk".)
 */
CELLAR_API int cellar_open(cellar_db **out, const char *dir,
                           const cellar_options *opts);

/**
 * Close the handle: sync (unless read-only), write the index, stop the
 * background thread, release the lock and free everything.  Accepts NULL.
 * The handle is freed even when an error is returned.
 * @return CELLAR_OK, or the error of the final sync (CELLAR_EIO,
 *   CELLAR_ENOSPC): writes since the last successful sync may then be lost
 *   (each whole or not at all).  With a reserve that is still held, a
 *   full disk gives it up for the final sync first.
 */
CELLAR_API int cellar_close(cellar_db *db);

/**
 * Move a read-only handle to the newest state of its store without closing
 * it: what the writer wrote since the handle opened or last refreshed, or
 * a new build published in the directory's place.
 *
 * "Newest" is what the store's files hold when the call looks: every
 * record the writer has handed to the OS (at least everything synced;
 * records still in the writer's append buffer are not in the files yet).
 * A record still being written is left for the next refresh.
 *
 * How it gets there:
 *   - the same store, and no segment the handle holds was removed: the
 *     handle replays the new records into its table (cost proportional to
 *     what was written since), 1,024 at a time under its exclusive latch,
 *     so gets on other threads wait at most for one such step (about
 *     0.2 ms) and see the log's records applied in order;
 *   - a compaction removed segments the handle holds, or another store
 *     (a new build) is in the directory: the handle opens the store afresh
 *     (mapping the newest checkpoint and replaying the log after it, as
 *     cellar_open does) beside the old one, then swaps the two; gets wait
 *     only for the swap.  The old files are closed then, which is when the
 *     OS frees a replaced or compacted store's space, if no other handle
 *     or process still has them open.
 *
 * Handles that do not refresh keep reading the version they have, whole,
 * until they refresh or close, whatever the writer, compaction or a
 * publication do to the directory.
 *
 * Thread safety: any thread may call it while others get, multi-get or
 * iterate on the handle; refreshes of one handle run one at a time.  A
 * thread holding a pin (cellar_get_pinned) must not call it: the refresh
 * waits for pins to be released.
 *
 * @return CELLAR_OK (also when nothing was new), or
 *   - CELLAR_EINVAL: db is NULL, or a read-write handle (always current);
 *   - CELLAR_EBUSY: the handle had to be reopened (see above) while an
 *     iterator is open on it; nothing changed: free the iterator and call
 *     again;
 *   - CELLAR_ENOENT: the directory no longer holds a store;
 *   - CELLAR_ECORRUPT, CELLAR_EVERSION, CELLAR_EIO, CELLAR_ENOMEM: the
 *     new state could not be read; the handle keeps serving what it had
 *     (possibly part of the way to the new state, in log order).
 */
CELLAR_API int cellar_refresh(cellar_db *db);

/**
 * Store value under key, replacing any value the key had.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: db NULL, key NULL, or value NULL with val_len > 0;
 *   - CELLAR_EKEYLEN, CELLAR_EVALLEN: see the limits;
 *   - CELLAR_EREADONLY: the handle is read-only;
 *   - CELLAR_ELIMIT: the store has too many segment files;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM: the write failed and the
 *     store is unchanged;
 *   - CELLAR_ENOSPC also: the disk is full.  The handle goes on: puts
 *     already acknowledged stay (in the append buffer until a flush finds
 *     room), reads go on, and puts succeed again once there is room.  With
 *     a reserve (reserve_bytes), the first put that meets the full disk
 *     gives the reserve back, and every put then fails with CELLAR_ENOSPC
 *     at once ("the disk is full: puts wait until the store's reserve ...
 *     can be made again") until the reserve is whole again: delete and
 *     cellar_compact() (which makes it again), or free space elsewhere
 *     (the next sync, or a put a second later, makes it again);
 *   - CELLAR_EFAILED: an earlier write failed in a way that left the
 *     handle unable to write (a failed fsync, an I/O error in a sync's
 *     flush, or under CELLAR_SYNC_ALWAYS any failed write of a record,
 *     lack of space included); close and reopen.
 */
CELLAR_API int cellar_put(cellar_db *db, const void *key, size_t key_len,
                          const void *val, size_t val_len);

/* ---- expiring keys and put options ------------------------------------ */

/** Version of cellar_put_options described by this header. */
#define CELLAR_PUT_OPTIONS_VERSION 1

/** cellar_put_options.flags: fail with CELLAR_EEXIST if the key is
 *  present (and not expired); an expired key counts as absent. */
#define CELLAR_PUT_NOOVERWRITE 0x1

/**
 * Options of one put (cellar_put_ex, cellar_batch_put_ex).  Start from
 * CELLAR_PUT_OPTIONS_INIT: a zero field means "no such option".  New
 * fields are only ever added at the end, with a new version.
 *
 * Times are milliseconds since the Unix epoch on the handle's clock
 * (cellar_options.clock; by default the wall clock).  A key that expires
 * at time T is present while now < T and absent from the moment now >= T:
 * get, get_alloc, get_pinned, get_many, has, update, cas, delete (which
 * then returns CELLAR_ENOTFOUND), iteration and snapshots all treat it as
 * absent.  Its record stays on disk, with its expiry, until compaction
 * drops it (cellar_compact) or a later write of the key replaces it.
 */
typedef struct cellar_put_options {
	/** Must be CELLAR_PUT_OPTIONS_VERSION. */
	unsigned version;
	/** CELLAR_PUT_NOOVERWRITE. */
	unsigned flags;
	/** Time to live: the key expires this many ms after the put (for a
	 *  batch, after the commit reads the clock).  0 = no ttl. */
	uint64_t ttl_ms;
	/** Absolute expiry, ms since the epoch; must be in the future when the
	 *  put (or the batch's commit) happens.  0 = none.  At most one of
	 *  ttl_ms and expire_at may be set; neither: the key never expires. */
	uint64_t expire_at;
} cellar_put_options;

/** Initializer: no flags, no expiry. */
#define CELLAR_PUT_OPTIONS_INIT { CELLAR_PUT_OPTIONS_VERSION, 0, 0, 0 }

/**
 * cellar_put() with options: an expiry (ttl_ms or expire_at) and flags
 * (CELLAR_PUT_NOOVERWRITE).  opts NULL: exactly cellar_put().  A put with
 * an expiry writes an expiring record (docs/format.md, record type 4):
 * stores that hold one cannot be opened by cellar versions that predate
 * expiring keys (CELLAR_EVERSION) until compaction has dropped it.  The expiry is as
 * durable as the put itself (see cellar_options.sync_mode) and survives
 * reopening; a put without expiry replaces an expiring value with one
 * that never expires.
 *
 * NOOVERWRITE looks the key up and writes under the writer mutex, so no
 * other write comes in between.
 * @return CELLAR_OK, or
 *   - CELLAR_EEXIST: CELLAR_PUT_NOOVERWRITE and the key is present (an
 *     expired key is absent: the put succeeds);
 *   - CELLAR_EINVAL: as cellar_put(), or opts of an unknown version, an
 *     unknown flag, both ttl_ms and expire_at set, expire_at not after the
 *     clock's now, or now + ttl_ms past UINT64_MAX;
 *   - the errors of cellar_put() (CELLAR_EREADONLY, CELLAR_EKEYLEN,
 *     CELLAR_EVALLEN, CELLAR_ELIMIT, CELLAR_EIO, CELLAR_ENOSPC,
 *     CELLAR_ENOMEM, CELLAR_EFAILED), and for NOOVERWRITE those of
 *     cellar_has() (CELLAR_ECORRUPT, CELLAR_EVERSION, CELLAR_EIO).
 */
CELLAR_API int cellar_put_ex(cellar_db *db, const void *key, size_t key_len,
                             const void *val, size_t val_len,
                             const cellar_put_options *opts);

/**
 * Copy the value of key into buf.
 * @param buf      where the value goes; may be NULL when cap is 0.
 * @param cap      capacity of buf in bytes.
 * @param[out] val_len  the value's length (also on CELLAR_EBUFS); may be NULL.
 * @return CELLAR_OK, or
 *   - CELLAR_ENOTFOUND: no such key (or it has expired: see
 *     cellar_put_ex);
 *   - CELLAR_EBUFS: cap < value length; *val_len tells the length needed;
 *   - CELLAR_EINVAL, CELLAR_EKEYLEN: bad arguments;
 *   - CELLAR_ECORRUPT: the record failed its checksum (no bytes are given),
 *     or the index is damaged;
 *   - CELLAR_EVERSION: the record is of a kind a newer cellar wrote;
 *   - CELLAR_EIO: a read failed (file systems without mappings).
 */
CELLAR_API int cellar_get(cellar_db *db, const void *key, size_t key_len,
                          void *buf, size_t cap, size_t *val_len);

/**
 * Like cellar_get(), but into a buffer allocated for the value, which the
 * caller releases with cellar_free().  A zero-length value gives a non-NULL
 * buffer.  On failure *out is NULL.
 * @return as cellar_get(), plus CELLAR_ENOMEM; never CELLAR_EBUFS.
 */
CELLAR_API int cellar_get_alloc(cellar_db *db, const void *key,
                                size_t key_len, void **out, size_t *val_len);

/** Free a buffer returned by cellar_get_alloc().  Accepts NULL. */
CELLAR_API void cellar_free(void *p);

/**
 * A pin on a value handed out by cellar_get_pinned().  Declare one (on the
 * stack is fine) and pass it in; its fields are private.
 */
typedef struct cellar_pin {
	cellar_db *db_;     /**< private */
	void *owned_;       /**< private: a copy made where nothing is mapped */
	unsigned slot_;     /**< private */
	int held_;          /**< private: 1 between get_pinned and release */
} cellar_pin;

/**
 * Zero-copy get: point *val at key's value where the store holds it (the
 * file's mapping or the writer's append buffer) instead of copying it, and
 * keep it there until cellar_pin_release(pin).
 *
 * Lifetime: *val stays valid and unchanged until the pin is released, or
 * until cellar_close(), whichever comes first; no put, delete, compaction,
 * checkpoint or refresh of this handle moves or unmaps it meanwhile.  The
 * pin holds the handle's reader latch: on a read-write handle writers (and
 * compaction batches) of this handle wait until it is released, and on a
 * read-only handle cellar_refresh() does.  So hold pins briefly, and while
 * a thread holds one it must not call cellar on the same handle (other
 * than cellar_pin_release), or it may deadlock with a waiting writer or
 * refresh; other threads may.  Another process's writer, compaction or
 * build never waits for a pin, and never invalidates it either: the
 * handle's mappings stay until it refreshes or closes.
 * On a file system without mappings the value is copied into memory the
 * pin owns.  The bytes were verified against the record's checksum.
 * @param[out] val      the value (not NUL-terminated); NULL on failure.
 * @param[out] val_len  its length; may be NULL.
 * @param pin           receives the pin on success (release it); on failure
 *                      it holds nothing and need not be released.  It must
 *                      not be a pin still held (that one would never be
 *                      released).
 * @return as cellar_get(), never CELLAR_EBUFS; CELLAR_EINVAL also when val
 *   or pin is NULL.
 */
CELLAR_API int cellar_get_pinned(cellar_db *db, const void *key,
                                 size_t key_len, const void **val,
                                 size_t *val_len, cellar_pin *pin);

/**
 * Release a pin from cellar_get_pinned(); the value's pointer is invalid
 * from then on.
 * @return CELLAR_OK, or CELLAR_EINVAL when pin is NULL or was already
 *   released (only pass pins that cellar_get_pinned() filled).
 */
CELLAR_API int cellar_pin_release(cellar_pin *pin);

/** One lookup of a cellar_get_many() batch. */
typedef struct cellar_get_item {
	const void *key; /**< in: the key */
	size_t key_len;  /**< in: its length */
	void *buf;       /**< in: where the value goes; may be NULL if cap is 0 */
	size_t cap;      /**< in: capacity of buf in bytes */
	size_t val_len;  /**< out: the value's length (also on CELLAR_EBUFS) */
	int status;      /**< out: what cellar_get() would have returned */
} cellar_get_item;

/**
 * Look up a batch of keys at once: for each item, exactly what cellar_get()
 * would do with its key, buf and cap, its result in item->status and
 * item->val_len.  The lookups are pipelined (hash every key of a group,
 * prefetch every bucket, match the tags, prefetch every record, then compare,
 * verify and copy), so that the memory latency of one key overlaps with the
 * others'; any batch size works, and from about 16 keys on the throughput no
 * longer grows (README, Performance).  Items are independent: a bad key or a
 * small buffer affects only its own item.  Values are consistent per key;
 * a batch is not a snapshot (a writer may change keys between two items).
 * @param items  n items; key, key_len, buf and cap are read, val_len and
 *               status written.
 * @return CELLAR_OK once every item has its status (which may be
 *   CELLAR_ENOTFOUND, CELLAR_EBUFS, CELLAR_EINVAL for a NULL key or buffer,
 *   CELLAR_EKEYLEN, CELLAR_ECORRUPT, CELLAR_EVERSION, CELLAR_EIO), or
 *   CELLAR_EINVAL when db is NULL or items is NULL with n > 0 (no item is
 *   touched).  cellar_errmsg() describes the last item that failed.
 */
CELLAR_API int cellar_get_many(cellar_db *db, cellar_get_item *items,
                               size_t n);

/**
 * Tell whether key is present (an expired key is not).
 * @return CELLAR_OK if it is, CELLAR_ENOTFOUND if not, or an error as for
 *   cellar_get().
 */
CELLAR_API int cellar_has(cellar_db *db, const void *key, size_t key_len);

/**
 * Delete key.  A tombstone record is appended so the delete survives
 * recovery.  It needs room for the tombstone (a few bytes, in the append
 * buffer, but a full buffer must be flushed first): on a full disk it
 * fails with CELLAR_ENOSPC (the store unchanged) unless the store keeps a
 * reserve (reserve_bytes).  With one, a delete is taken while the reserve
 * is given up (it writes into the space the reserve gave back), and one
 * that meets the full disk while the reserve is held gives it up and is
 * tried again at once.  A delete frees no space itself: cellar_compact()
 * does.
 * @return CELLAR_OK, CELLAR_ENOTFOUND if the key was absent or has expired
 *   (nothing is written; compaction drops an expired key), an error of
 *   reading the key's record as for cellar_get() (CELLAR_ECORRUPT,
 *   CELLAR_EVERSION, CELLAR_EIO: nothing is written), or an error as for
 *   cellar_put() (CELLAR_ENOSPC: not even the reserve's space was enough,
 *   or there is no reserve; free space outside the store, then call again).
 */
CELLAR_API int cellar_delete(cellar_db *db, const void *key, size_t key_len);

/**
 * Number of keys in the store's index: every key present, plus the keys
 * that have expired but whose records have not been dropped yet (by
 * cellar_compact, or by a write of the key).  So with expiring keys it is
 * an upper bound of what get and iteration find, exact once a compaction
 * pass has dropped the expired ones; without them it is exact.  It costs
 * no scan, except once on a read-only handle: its first cellar_count,
 * cellar_stats or cellar_iter_new checks the index's structure (one pass
 * over the index file), and an index whose counters contradict its chains
 * is then served, count included, from a table rebuilt in memory from the
 * segments (one pass over the log).  (Count exactly by iterating.)
 * @param[out] out  the count.
 * @return CELLAR_OK, CELLAR_EINVAL, or on a read-only handle CELLAR_ENOMEM
 *   (the check or the rebuild could not get memory) or CELLAR_EIO (the
 *   rebuild could not read the log).
 */
CELLAR_API int cellar_count(cellar_db *db, uint64_t *out);

/**
 * Make every write that returned before this call durable: flush the write
 * buffer and fsync the segment files; from time to time (when the log has
 * grown by half the index file's size, and at least 8 MiB, since the last
 * one) also write a new index checkpoint, which bounds the work of recovery
 * after a crash.  Readers are not blocked.  Writers wait only for short
 * steps: flushing the write buffer (at most 2 MiB) and freezing a version
 * of the index for the checkpoint (time that grows with the number of
 * 64 KiB index chunks, microseconds per thousand); the fsyncs and the
 * checkpoint itself are written in the calling thread while other writers
 * go on (a writer that changes an index chunk the checkpoint is reading
 * copies it first: see cellar_db_stats.ckpt_copy_bytes).  One checkpoint
 * at a time: a second caller waits for the first.  If writing the
 * checkpoint fails, the previous one stays valid, the error is returned,
 * and the next sync that finds one due tries again.
 * A full disk: the sync fails with CELLAR_ENOSPC and nothing is lost or
 * refused: what was not written stays buffered and the next sync writes it
 * (with a reserve, the sync first gives the reserve up and tries again in
 * its space; a successful sync also makes a given-up reserve again, at
 * most once a second, when there is room for it).  A checkpoint that finds
 * no room leaves the previous one in place (its temporary file removed).
 * @return CELLAR_OK, CELLAR_EINVAL (db NULL), CELLAR_EREADONLY, CELLAR_EIO,
 *   CELLAR_ENOSPC, or CELLAR_EFAILED (an fsync failed, now or before, or a
 *   write failed other than for lack of space: reopen the store).
 */
CELLAR_API int cellar_sync(cellar_db *db);

/**
 * Bring the store's files into the OS page cache now, rather than a page at
 * a time as lookups fault them in: for a service starting on a cold cache
 * (after a reboot), before it serves.  Nothing on disk changes.
 *
 * With the default mmap file system each segment is mapped with the
 * CELLAR_FS_MAP_HOT hint and read once per 4 KiB page, as is the index's
 * own mapping.  On Linux 6.x with a file system that has large folios
 * (ext4, xfs) and transparent huge pages in "madvise" or "always" mode,
 * pages not yet cached then come in as 2 MiB huge pages, and later lookups
 * take no TLB misses; pages already cached keep their size.  A file system
 * without mappings has its files read through instead.
 *
 * It reads every byte of the store once: on a store larger than memory it
 * only evicts itself.  On a read-write handle it reads the store as it was
 * when the call began, holding it as a snapshot does (cellar_snapshot):
 * writers wait only while the append buffer is written to the file and the
 * version is taken, then go on, copying each index chunk they change
 * (64 KiB) once; records written meanwhile are not read.  A read-only
 * handle's refresh waits for the warm.
 * @return CELLAR_OK, CELLAR_EINVAL (db NULL), CELLAR_EFAILED (a read-write
 *   handle after a failed write), or an error of the file system
 *   (CELLAR_EIO, CELLAR_ENOMEM, ...).
 */
CELLAR_API int cellar_warm(cellar_db *db);

/** A cellar_residency field the file system could not tell. */
#define CELLAR_RESIDENT_UNKNOWN UINT64_MAX

/** How much of a store is in memory, from cellar_residency(). */
typedef struct cellar_residency_info {
	/** Bytes of the index file as the handle reads it (its mapping, or
	 *  the private copy read at open); 0 when there is none yet. */
	uint64_t index_bytes;
	/** Of those, bytes in memory now; CELLAR_RESIDENT_UNKNOWN if the file
	 *  system can't tell. */
	uint64_t index_resident;
	/** Bytes of the segment files (the records). */
	uint64_t data_bytes;
	/** Of those, bytes in memory now (the writer's unwritten append buffer
	 *  counts as resident); CELLAR_RESIDENT_UNKNOWN if the file system
	 *  can't tell. */
	uint64_t data_resident;
	/** 1 if CELLAR_LOCK_INDEX holds index_bytes locked in memory. */
	int index_locked;
} cellar_residency_info;

/**
 * Tell how much of the store is in memory: of the index and of the
 * segments, the bytes there are and the bytes resident now (in the OS page
 * cache, for the default mmap file system: mincore() on the mappings).  For
 * watching a service warm up, or a cache being evicted under it.
 *
 * The file system's resident op answers: with the posix file system
 * through a temporary mapping of each segment file (the index is its
 * private copy, resident unless swapped out), with the mem file system
 * everything is resident, and a file system without the op (or of table
 * version 1) gives CELLAR_RESIDENT_UNKNOWN in the resident fields, with the
 * sizes still filled in.  The answer may be stale by the time it returns.
 * On a read-write handle writers wait while it runs (one system call per
 * segment with the mmap file system).  Works on read-only handles.
 * @param[out] out  the figures; zeroed on failure.
 * @return CELLAR_OK, CELLAR_EINVAL (db or out NULL), or an error of the
 *   file system (CELLAR_EIO, CELLAR_ENOMEM).
 */
CELLAR_API int cellar_residency(cellar_db *db, cellar_residency_info *out);

/** Statistics of an open store, from cellar_stats(). */
typedef struct cellar_db_stats {
	uint64_t keys;             /**< same as cellar_count() */
	uint64_t live_bytes;       /**< bytes of the records holding values */
	uint64_t dead_bytes;       /**< overwritten, deleted, tombstones, damage */
	uint64_t segments;         /**< segment files */
	uint64_t segment_bytes;    /**< their total size */
	uint64_t index_bytes;      /**< size of the index file of the table */
	uint64_t bytes_on_disk;    /**< segments + index + meta */
	uint64_t buckets;          /**< primary buckets of the hash table */
	uint64_t overflow_buckets; /**< overflow buckets in chains */
	double load_factor;        /**< keys / slots of the primary buckets */
	double avg_probe;          /**< buckets read per lookup since open */
	uint64_t puts, deletes;    /**< successful writes since open */
	uint64_t gets, hits, misses; /**< lookups since open (get, get_alloc, has) */
	uint64_t syncs;            /**< syncs since open (all threads) */
	uint64_t compactions;      /**< compaction passes since open */
	uint64_t recovered_records; /**< records open replayed past the checkpoint */
	int rebuilt_index;         /**< 1 if open rebuilt the index from segments */
	/* Since 0.2, filled by cellar_stats_sized only (see there). */
	/** Bytes of a torn write that open cut from (read-write) or ignored at
	 *  (read-only) the end of the newest segment; 0 after a clean close. */
	uint64_t torn_bytes;
	/** Bytes open skipped as damaged records while replaying the log. */
	uint64_t damaged_bytes;
	uint64_t checkpoints;      /**< index checkpoints written since open */
	uint64_t checkpoint_failures; /**< checkpoint writes that failed */
	/**
	 * Index chunks (64 KiB each) writers copied since open because a
	 * checkpoint being written had them frozen, and their bytes: the
	 * memory cost of writing checkpoints off the writer's path.  A chunk
	 * is copied at most once per checkpoint, so one checkpoint costs at
	 * most the table's private chunks again (about index_bytes).
	 */
	uint64_t ckpt_chunks_copied;
	uint64_t ckpt_copy_bytes;
	uint64_t ckpt_copy_bytes_max; /**< the most copied during one checkpoint */
	/** Longest time one step of a sync or checkpoint held writers, ms. */
	double ckpt_longest_hold_ms;
	/* Read-only handles (0 on read-write ones): cellar_refresh. */
	uint64_t refreshes;         /**< calls that succeeded */
	uint64_t refresh_reloads;   /**< of those, how many reopened the store */
	uint64_t refreshed_records; /**< records replayed by the others */
	/* Since 0.3 (snapshots), filled by cellar_stats_sized only; reading
	 * them takes the writer mutex briefly (it may wait for a compaction
	 * batch). */
	/** Snapshots (and backups in progress) held now. */
	uint64_t snapshots;
	/**
	 * Memory they pin: bytes of index chunks (64 KiB each) writers have
	 * replaced since a snapshot was taken, kept for it (this includes a
	 * checkpoint being written, which holds a version the same way).
	 */
	uint64_t snapshot_index_bytes;
	/** Bytes of segments compaction dropped that they keep open (and on
	 *  disk, for the file systems that keep a removed file's bytes while
	 *  it is open). */
	uint64_t snapshot_segment_bytes;
	/**
	 * Since 0.3 (hardening): bytes of segments the loaded checkpoint
	 * covered that their files no longer hold, because another program
	 * cut them short.  The records there are lost: gets of their keys
	 * fail with CELLAR_ECORRUPT and iteration reports the cut.  0 after a
	 * clean close or a crash; stays nonzero, checkpoint after checkpoint,
	 * until cellar_repair() accepts the loss.
	 */
	uint64_t lost_bytes;
	/**
	 * Since 0.3 (hardening): mappings of this handle (segments, index)
	 * whose file another program cut short while it was mapped: the SIGBUS
	 * guard mapped zeros over the missing pages (see "the SIGBUS guard" at
	 * the end of this header), and reads of them fail with CELLAR_ECORRUPT.
	 * Reopen the store once the file is restored.
	 */
	uint64_t faulted_mappings;
	/** Since 0.4 (expiring keys): expired keys compaction dropped since
	 *  open (their bytes are in the passes' bytes_reclaimed). */
	uint64_t expired_dropped;
} cellar_db_stats;

/* The size of cellar_db_stats before the fields since 0.2 (cellar_stats). */
#define CELLAR_DB_STATS_V1_SIZE \
	(offsetof(cellar_db_stats, rebuilt_index) + sizeof(int))

/**
 * Fill *out with statistics.  Cheap (no scan); safe to call often and from
 * any thread.  Counters of reads kept per thread may be approximate while
 * more than 64 threads read at once.
 *
 * For programs built against an older cellar.h, whose cellar_db_stats ends
 * at rebuilt_index, it writes only CELLAR_DB_STATS_V1_SIZE bytes: the
 * fields after rebuilt_index are left as they are.  New code should call
 * cellar_stats_sized.
 * @return CELLAR_OK or CELLAR_EINVAL.
 */
CELLAR_API int cellar_stats(cellar_db *db, cellar_db_stats *out);

/**
 * cellar_stats for a struct of size bytes, normally sizeof *out: fills as
 * many fields as fit (a size from an older header gets the older fields,
 * a larger one gets the rest zeroed).
 * @return CELLAR_OK or CELLAR_EINVAL (db or out NULL, size smaller than
 *   CELLAR_DB_STATS_V1_SIZE).
 */
CELLAR_API int cellar_stats_sized(cellar_db *db, cellar_db_stats *out,
                                  size_t size);

/** One segment file, from cellar_segments(). */
typedef struct cellar_segment_info {
	uint64_t seq;        /**< sequence number: the file is %016llx.seg */
	uint64_t bytes;      /**< size */
	uint64_t live_bytes; /**< bytes of live records */
	uint64_t dead_bytes; /**< bytes of dead records and tombstones */
} cellar_segment_info;

/**
 * Describe the segments, oldest first: up to cap of them into out, and the
 * total number into *count (so a call with cap 0 asks how many there are).
 * @return CELLAR_OK or CELLAR_EINVAL.
 */
CELLAR_API int cellar_segments(cellar_db *db, cellar_segment_info *out,
                               size_t cap, size_t *count);

/**
 * Reclaim space: rewrite every segment whose dead share is at least
 * compact_dead_pct, copying its live records to the end of the log,
 * repointing the index, dropping tombstones that nothing older can undo, and
 * removing the old segment once a checkpoint no longer needs it.  Segments
 * below the threshold are never touched, except that a segment holding an
 * expiring put that is due by now is always rewritten and its expired keys
 * dropped (cellar_put_ex; watchers get CELLAR_CHANGE_EXPIRE).  Readers are never blocked; writers
 * wait at most one batch of 256 records at a time, and, at the end, for
 * the segments to leave the set and the index to be frozen and thawed: the
 * final sync and checkpoint are written without holding writers (see
 * cellar_sync).  result->longest_pause_ms is the longest of these waits.
 * A crash at any point loses nothing.
 *
 * Compaction moves records, which would make an iteration in progress
 * return some keys twice, so no batch runs while an iterator of this handle
 * is open: a pass with a segment to rewrite then returns CELLAR_EBUSY (one
 * with nothing over the threshold returns CELLAR_OK, having done nothing),
 * and a pass that meets a new iterator stops between two batches
 * (result->complete is 0).
 * On a full disk: compaction needs room for its copies and a checkpoint
 * (the index file again) before it can remove a segment.  While the
 * store's reserve is given up (reserve_bytes), or once the disk fills
 * during the pass, it rewrites one segment at a time, each followed by its
 * sync, checkpoint and removal, so that it needs room for one segment's
 * live records at a time; a write that meets the full disk while the
 * reserve is held gives the reserve up and is tried again.  Every pass
 * ends by trying to make a given-up reserve again, which lets puts in.
 * @param[out] result  counts of the pass; may be NULL.
 * @return CELLAR_OK, CELLAR_EBUSY, CELLAR_EREADONLY, CELLAR_EINVAL,
 *   CELLAR_EFAILED, CELLAR_ECORRUPT or CELLAR_EVERSION (the index or a record
 *   it points at is damaged or newer: the pass stops), or an I/O error
 *   (CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM); the store stays consistent.
 *   CELLAR_ENOSPC: not even one segment could be rewritten in the room
 *   there is (the segments it did finish are removed); free space outside
 *   the store, or delete more so that some segment has fewer live bytes.
 */
CELLAR_API int cellar_compact(cellar_db *db, cellar_compact_result *result);

/**
 * Create an iterator over every key and its value, in the order the records
 * were written.  Keys that have expired by the clock's time read here are
 * skipped.  Keys that are neither written nor deleted while the
 * iteration runs are returned exactly once; a key written during the
 * iteration may be missed, or returned with its old and its new value.
 * While an iterator is open, compaction waits (see cellar_compact()); if a
 * compaction batch is running, this call waits for it to end.
 * @param[out] out  the new iterator; NULL on failure.
 * @return CELLAR_OK, CELLAR_EINVAL, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_iter_new(cellar_db *db, cellar_iter **out);

/**
 * Advance to the next item.  The pointers stay valid until the next call on
 * it or cellar_iter_free().  Any output pointer may be NULL.
 * @return CELLAR_OK, CELLAR_EDONE when there are no more items, or
 *   CELLAR_ECORRUPT (a record or the index is damaged; the next call goes
 *   on after the damage), CELLAR_EVERSION (a record of a kind a newer
 *   cellar wrote; skipped likewise), CELLAR_EIO or CELLAR_ENOMEM.
 */
CELLAR_API int cellar_iter_next(cellar_iter *it, const void **key,
                                size_t *key_len, const void **val,
                                size_t *val_len);

/** Free an iterator.  Accepts NULL.  Must happen before cellar_close(). */
CELLAR_API void cellar_iter_free(cellar_iter *it);

/* ---- Verification and repair --------------------------------------------
 *
 * cellar_verify() checks a store without opening it as a database: it reads
 * every record of every segment, checks every checksum, and cross-checks the
 * index file against the log in both directions.  cellar_repair() rebuilds
 * what a writable open would rebuild, on purpose.  These are the `cellar
 * verify` and `cellar repair` commands.
 */

/** The kinds of damage cellar_verify() tells apart. */
typedef enum cellar_damage_kind {
	/** A record fails its checksum or has an impossible header; replay
	 * skips it and resumes at the next valid record.  Where: the
	 * segment's sequence number and the record's offset in it. */
	CELLAR_DAMAGE_RECORD = 0,
	/** A segment ends in bytes that are no whole record: the file was cut
	 * short, or (in the newest segment) a write was torn by a crash.
	 * Where: the segment and the offset at which the bad tail starts. */
	CELLAR_DAMAGE_TAIL = 1,
	/** A record with a valid checksum of a kind a newer cellar wrote. */
	CELLAR_DAMAGE_NEWER_RECORD = 2,
	/** The index file is missing, not an index, damaged in its header or
	 * segment table, or of a newer format. */
	CELLAR_DAMAGE_INDEX_FILE = 3,
	/** The index file is intact but does not match the store (another
	 * hash seed, or segments it lists are missing or shorter). */
	CELLAR_DAMAGE_INDEX_STALE = 4,
	/** A chunk of 1024 buckets fails its checksum.  Where: seq 0 and the
	 * chunk's byte offset in the index file. */
	CELLAR_DAMAGE_INDEX_CHUNK = 5,
	/** The table's structure is inconsistent: a broken or shared chain,
	 * or counters that disagree with the chains. */
	CELLAR_DAMAGE_INDEX_TABLE = 6,
	/** A key whose newest record is a put is not found through the index
	 * (plus the log after its checkpoint), or is found at another record.
	 * Where: that newest record. */
	CELLAR_DAMAGE_KEY_MISSING = 7,
	/** An index slot points at no valid record, at a tombstone, or at a
	 * record whose key does not hash to the slot.  Where: the slot's
	 * segment (0 if the id names none) and offset. */
	CELLAR_DAMAGE_SLOT_BAD = 8,
	/** An index slot points at a valid record that is not its key's
	 * newest (an overwritten value, or a deleted key). */
	CELLAR_DAMAGE_SLOT_STALE = 9,
	/** The index's key count differs from the number of live keys in the
	 * log. */
	CELLAR_DAMAGE_COUNT = 10
} cellar_damage_kind;

/** Number of cellar_damage_kind values. */
#define CELLAR_DAMAGE_KINDS 11

/** One kind of damage, summed over a cellar_verify() run. */
typedef struct cellar_damage {
	uint64_t count;     /**< occurrences */
	uint64_t bytes;     /**< segment bytes skipped (RECORD, TAIL, NEWER) */
	uint64_t first_seq; /**< where the first occurrence is: segment seq */
	uint64_t first_off; /**< ... and offset (see each kind) */
} cellar_damage;

/** One problem, as cellar_verify_options.on_problem is told it. */
typedef struct cellar_problem {
	cellar_damage_kind kind;
	uint64_t seq, off;   /**< where, as in cellar_damage */
	uint64_t bytes;      /**< segment bytes skipped, or 0 */
	const void *key;     /**< the key concerned, or NULL if none is known */
	size_t key_len;
	const char *message; /**< a sentence of detail; never NULL */
} cellar_problem;

/** Version of cellar_verify_options described by this header. */
#define CELLAR_VERIFY_OPTIONS_VERSION 1

/** Options of cellar_verify() and cellar_repair(); zero fields are defaults. */
typedef struct cellar_verify_options {
	/** Must be CELLAR_VERIFY_OPTIONS_VERSION. */
	unsigned version;
	/** File system; NULL means a private mmap file system.  Not owned. */
	cellar_fs *fs;
	/** Called once per problem found, in the order found; NULL = none.
	 * The problem and what it points to are valid only during the call. */
	void (*on_problem)(const cellar_problem *p, void *ctx);
	/** Called now and then with the segment bytes scanned so far and the
	 * total; NULL = none. */
	void (*on_progress)(uint64_t done, uint64_t total, void *ctx);
	/** Passed to the callbacks. */
	void *ctx;
} cellar_verify_options;

/** Initializer giving every verify option its default. */
#define CELLAR_VERIFY_OPTIONS_INIT \
	{ CELLAR_VERIFY_OPTIONS_VERSION, NULL, NULL, NULL, NULL }

/** What cellar_verify() found. */
typedef struct cellar_verify_report {
	uint64_t segments;      /**< segment files scanned */
	uint64_t segment_bytes; /**< their total size */
	uint64_t records;       /**< valid records read (puts and deletes) */
	uint64_t puts, deletes;
	uint64_t keys;          /**< live keys according to the log */
	int index_checked;      /**< 1 if the index could be cross-checked */
	uint64_t index_keys;    /**< keys the index counts (if it loaded) */
	uint64_t index_slots;   /**< index slots checked */
	uint64_t problems;      /**< sum of the counts below; 0 = no damage */
	cellar_damage damage[CELLAR_DAMAGE_KINDS]; /**< by cellar_damage_kind */
} cellar_verify_report;

/**
 * Check the store in dir from end to end, without changing anything.
 *
 * Every segment is read record by record and every checksum checked; a
 * damaged stretch is skipped to the next valid record, so one bad byte
 * never hides the rest.  From the valid records it builds, in memory, the
 * table a rebuild would produce (each key's newest record).  It then loads
 * the index file, checks every bucket chunk's checksum and the table's
 * structure, replays the log written after the checkpoint into it as an
 * open would, and compares both ways: every live key must be found at its
 * newest record, and every slot must point at a valid record that is its
 * key's newest.  A damaged index is reported and skips the comparison; the
 * segment scan still runs to the end.
 *
 * It takes no lock and opens everything read-only.  A writer appending
 * meanwhile may make the newest segment's end look torn
 * (CELLAR_DAMAGE_TAIL): verify a store nobody writes.  Memory: the table
 * of live keys, about 13 bytes per key.
 *
 * @param dir       the store's directory.
 * @param opts      options, or NULL for the defaults.
 * @param[out] out  the report; filled as far as the scan got, also on error.
 *   out->problems is 0 exactly when nothing is damaged.
 * @return CELLAR_OK when the check ran (damage is in the report, not the
 *   return code), or
 *   - CELLAR_EINVAL: dir or out NULL, dir empty, or opts->version unknown;
 *   - CELLAR_ENOENT: no store in dir (no meta file);
 *   - CELLAR_ECORRUPT, CELLAR_EVERSION: the store cannot be scanned at all:
 *     its meta file or a segment's header is damaged, foreign or newer
 *     (cellar_errmsg() names the file);
 *   - CELLAR_EIO, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_verify(const char *dir, const cellar_verify_options *opts,
                             cellar_verify_report *out);

/** What cellar_repair() did. */
typedef struct cellar_repair_result {
	/** 1 if the index was rebuilt from the segments, 0 if it was kept. */
	int index_rebuilt;
	/** Why: the first cellar_damage_kind of the index kinds found
	 * (INDEX_FILE .. COUNT), or -1 when it was kept. */
	int rebuild_reason;
	uint64_t records_replayed; /**< records the open replayed */
	uint64_t tail_bytes_cut;   /**< torn tail cut off the newest segment */
	uint64_t keys;             /**< keys in the store afterwards */
	/** Damaged records left in the log as dead bytes (cellar_compact()
	 * drops them once their segment is rewritten). */
	uint64_t damaged_records;
	uint64_t damaged_bytes;
} cellar_repair_result;

/**
 * Repair the store in dir: what a writable cellar_open() does to a damaged
 * store, done on purpose and reported.
 *
 * It verifies the store (as cellar_verify()); if the index disagrees with
 * the log in any way, it removes the index file, so that the writable open
 * that follows rebuilds the index from the segments and checkpoints it.
 * That open also cuts a torn tail off the newest segment.  Damaged records
 * elsewhere cannot be mended: they stay, counted as dead bytes, and their
 * keys keep the newest intact value (or are gone, if none survives).
 * Takes the store's write lock for the open.
 *
 * @param dir       the store's directory (it must hold a store).
 * @param opts      options (only fs is used), or NULL.
 * @param[out] out  what was done; may be NULL.
 * @return CELLAR_OK, or as cellar_verify() and cellar_open() (among them
 *   CELLAR_ELOCKED when another writer has the store open).
 */
CELLAR_API int cellar_repair(const char *dir, const cellar_verify_options *opts,
                             cellar_repair_result *out);

/* ---- bulk loading -------------------------------------------------------- */

/** Opaque bulk builder (cellar_builder_open). */
typedef struct cellar_builder cellar_builder;

/** cellar_build_options.flags: a key added twice makes finish fail. */
#define CELLAR_BUILD_UNIQUE 0x1

/** Version of cellar_build_options described by this header. */
#define CELLAR_BUILD_OPTIONS_VERSION 1

/** Smallest memory budget a builder accepts (1 MiB). */
#define CELLAR_BUILD_MIN_BUDGET (1ull << 20)

/**
 * Options for cellar_builder_open().  Start from CELLAR_BUILD_OPTIONS_INIT:
 * a zero field means "the default".  New fields are only added at the end.
 */
typedef struct cellar_build_options {
	/** Must be CELLAR_BUILD_OPTIONS_VERSION. */
	unsigned version;
	/** CELLAR_BUILD_UNIQUE, or 0: a key added twice keeps its last value. */
	unsigned flags;
	/** File system; NULL means a private mmap file system.  Not owned. */
	cellar_fs *fs;
	/**
	 * Memory for the (hash, location) pairs the builder collects, 16 bytes
	 * per key, in bytes; default 64 MiB, at least CELLAR_BUILD_MIN_BUDGET.
	 * Past it, pairs spill to temporary files and finish sorts them in
	 * pieces of this size.  The builder's peak memory is about the budget
	 * plus 5 MiB of buffers.
	 */
	uint64_t memory_budget;
	/** Seed of the new store's key hash; 0 = random. */
	uint64_t hash_seed;
	/** As cellar_options.max_segment_size; default 256 MiB. */
	uint64_t max_segment_size;
} cellar_build_options;

/** Initializer giving every build option its default. */
#define CELLAR_BUILD_OPTIONS_INIT \
	{ CELLAR_BUILD_OPTIONS_VERSION, 0, NULL, 0, 0, 0 }

/**
 * Start building a new store for directory dir from scratch, much faster
 * than a put per key: records are appended in input order without index
 * updates or fsyncs, and finish writes the index in one pass.
 *
 * Everything is written to a temporary directory beside dir, named
 * "<dir>.build-<16 hex digits>"; dir itself is untouched until
 * cellar_builder_finish() publishes the build, atomically.  dir may be
 * absent (it is then created by the publication) or hold a store, which
 * the build replaces; anything else is refused.  A temporary directory left
 * by a build that crashed is never looked at by cellar_open(); this call
 * removes the ones whose builder is dead (each holds a lock file while its
 * builder lives).
 *
 * The builder belongs to one thread at a time.  It starts one thread of
 * its own, which writes the segments' full 2 MiB buffers to their files
 * while add fills the next buffer (if the thread cannot be started, add
 * writes them itself); finish and abort end it.  A write that thread could
 * not make is made again by the next add (or by finish), which returns
 * the error if it fails again.
 *
 * @param[out] out  the new builder; NULL on failure.
 * @param dir       where the store is to be published.
 * @param opts      options, or NULL for all defaults.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: out or dir NULL or empty, an option out of range (a
 *     memory budget below CELLAR_BUILD_MIN_BUDGET, unknown flags);
 *   - CELLAR_EEXIST: dir exists but is not a cellar store;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_builder_open(cellar_builder **out, const char *dir,
                                   const cellar_build_options *opts);

/**
 * Add a key and its value.  The bytes are copied; the store gets them in
 * the order added.  A key added twice keeps its last value (the earlier
 * record is dead weight that compaction reclaims), or with
 * CELLAR_BUILD_UNIQUE makes finish fail; duplicates are found at finish,
 * not here.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: b NULL, key NULL, value NULL with val_len > 0, or the
 *     builder is finished or failed;
 *   - CELLAR_EKEYLEN, CELLAR_EVALLEN: see the limits;
 *   - CELLAR_ELIMIT: too many segment files (raise max_segment_size);
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM: the builder has failed;
 *     only cellar_builder_abort() is left.
 */
CELLAR_API int cellar_builder_add(cellar_builder *b, const void *key,
                                  size_t key_len, const void *val,
                                  size_t val_len);

/**
 * Finish the build and publish it at dir: write the index, fsync every
 * file, then move the temporary directory onto dir (a rename when dir is
 * absent; over an existing store, an atomic exchange of the two
 * directories under the store's write lock, after which the old store's
 * files are removed - read-only handles still open on it keep reading it).
 * Until this returns CELLAR_OK, dir is absent or still the previous store;
 * after a crash at any point, it is one or the other, whole.  The result is
 * an ordinary store: cellar_open() it to read, or to write more.
 *
 * Finish does not free the builder: call cellar_builder_abort() after it,
 * whatever it returned.  A failed finish leaves dir as it was.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: b NULL, finished or failed already; or dir holds a
 *     store and the file system cannot exchange directories;
 *   - CELLAR_EEXIST: with CELLAR_BUILD_UNIQUE, a key was added twice (the
 *     message names its length); or dir has become something other than a
 *     store;
 *   - CELLAR_ELOCKED: a writer has the store at dir open;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_builder_finish(cellar_builder *b);

/**
 * Free the builder.  Before a successful finish it discards the build (the
 * temporary directory is removed; dir is untouched); after one it only
 * frees.  Accepts NULL.
 */
CELLAR_API void cellar_builder_abort(cellar_builder *b);

/**
 * A static, human-readable message for an error code; never NULL (unknown
 * codes give "unknown error").
 */
CELLAR_API const char *cellar_strerror(int err);

/**
 * Details of the last error on this thread ("segment 0000000000000003.seg:
 * bad checksum at offset 1234"), or "" if there are none.  Never NULL.
 * Valid until the next cellar call on this thread.
 */
CELLAR_API const char *cellar_errmsg(void);

/** The library version as "MAJOR.MINOR.PATCH". */
CELLAR_API const char *cellar_version(void);

/* ---- Snapshots and backup ----------------------------------------------
 *
 * A snapshot is the store as it stood when it was taken: get, has, count
 * and iterate on it see exactly that state, whatever writers, compaction
 * and checkpoints do meanwhile.  Taking one holds writers for a pass over
 * the index's chunk descriptors (about 2,000 at 10M keys: microseconds) and
 * allocates 24 bytes per chunk; it never waits for I/O.  Before that, and
 * holding no lock, it makes and faults in the memory writers would need to
 * copy every chunk once (huge-page slabs, up to about the index's size,
 * less what earlier versions left free), so that writers never fault fresh
 * memory in under their locks; the first snapshot or checkpoint of a large
 * store pays for that once (milliseconds per 2 MiB on some virtual
 * machines).  Holding one does not block writers or compaction; what it
 * costs them:
 *   - memory: the first change a writer makes to a 64 KiB index chunk after
 *     the snapshot was taken copies that chunk, and the original is kept
 *     for the snapshot; so a snapshot pins at most the table's private
 *     chunks again (about the index file's size), and usually far less;
 *   - disk: segments compaction drops while the snapshot holds them stay
 *     open (their files are removed as usual, but the file system keeps
 *     their bytes while they are open) until it is released.
 * cellar_stats_sized reports both (snapshot_index_bytes,
 * snapshot_segment_bytes); releasing the last snapshot that holds them
 * frees them.  A snapshot lives in memory only: it does not survive
 * cellar_close or a crash.
 *
 * Threads: a snapshot may be read by many threads at once
 * (cellar_snapshot_get, _get_alloc, _has, _count, _iter_new); its iterators
 * belong to one thread each.  Release every iterator before its snapshot,
 * and every snapshot before cellar_close() (close releases those left,
 * after which their handles must not be used).
 */

typedef struct cellar_snapshot cellar_snapshot;
typedef struct cellar_snapshot_iter cellar_snapshot_iter;

/**
 * Take a snapshot of the store now.  Every write that returned before this
 * call is in it; none that starts after it returns is.  Its time is now
 * too: the clock is read once, here, and the snapshot's reads and
 * iteration judge expiring keys by that time, so a key live when the
 * snapshot was taken stays visible in it, and the snapshot reads the
 * same whenever it is read.
 * @param[out] out  the snapshot; NULL on failure.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: db or out NULL;
 *   - CELLAR_EREADONLY: the handle is read-only (nothing changes its view:
 *     read it directly);
 *   - CELLAR_EFAILED: an earlier write failed; reopen the store;
 *   - CELLAR_ENOMEM.
 */
CELLAR_API int cellar_snapshot_new(cellar_db *db, cellar_snapshot **out);

/** Release a snapshot and what it pins.  Accepts NULL.  Takes the writer
 *  mutex briefly (a pass over the chunks it froze). */
CELLAR_API void cellar_snapshot_release(cellar_snapshot *snap);

/**
 * cellar_get() on the snapshot: the value key had when it was taken.
 * @return as cellar_get(): CELLAR_OK, CELLAR_ENOTFOUND, CELLAR_EBUFS (with
 *   *val_len), CELLAR_EINVAL (snap or key NULL, buf NULL with cap > 0),
 *   CELLAR_EKEYLEN, CELLAR_ECORRUPT, CELLAR_EVERSION, CELLAR_EIO.
 */
CELLAR_API int cellar_snapshot_get(cellar_snapshot *snap, const void *key,
                                   size_t key_len, void *buf, size_t cap,
                                   size_t *val_len);

/** cellar_get_alloc() on the snapshot; free *out with cellar_free().
 *  @return as cellar_snapshot_get(), plus CELLAR_ENOMEM; never
 *  CELLAR_EBUFS. */
CELLAR_API int cellar_snapshot_get_alloc(cellar_snapshot *snap,
                                         const void *key, size_t key_len,
                                         void **out, size_t *val_len);

/** Was key in the store when the snapshot was taken?
 *  @return CELLAR_OK (yes), CELLAR_ENOTFOUND, or as cellar_snapshot_get(). */
CELLAR_API int cellar_snapshot_has(cellar_snapshot *snap, const void *key,
                                   size_t key_len);

/** The number of keys the snapshot holds (cellar_count() then: expired
 *  keys not yet dropped included).
 *  @return CELLAR_OK or CELLAR_EINVAL. */
CELLAR_API int cellar_snapshot_count(cellar_snapshot *snap, uint64_t *out);

/**
 * An iterator over the snapshot's keys and values, in no particular order
 * (the index's): each key the snapshot holds comes out exactly once, with
 * its value then.  Unlike cellar_iter_new() it never holds compaction up.
 * @return CELLAR_OK, CELLAR_EINVAL, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_snapshot_iter_new(cellar_snapshot *snap,
                                        cellar_snapshot_iter **out);

/**
 * Advance to the next item; the pointers stay valid until the next call on
 * it or cellar_snapshot_iter_free().  Any output pointer may be NULL.
 * @return CELLAR_OK, CELLAR_EDONE after the last item, CELLAR_EINVAL, or
 *   CELLAR_ECORRUPT / CELLAR_EVERSION (a damaged or newer record or index
 *   chain: the next call goes on after it), CELLAR_EIO, CELLAR_ENOMEM.
 */
CELLAR_API int cellar_snapshot_iter_next(cellar_snapshot_iter *it,
                                         const void **key, size_t *key_len,
                                         const void **val, size_t *val_len);

/** Free a snapshot iterator.  Accepts NULL. */
CELLAR_API void cellar_snapshot_iter_free(cellar_snapshot_iter *it);

/** What cellar_backup() wrote, and how. */
typedef struct cellar_backup_result {
	/** Sealed segment files hard-linked into the copy (the file system's
	 *  link operation), and their bytes (shared with the store). */
	uint64_t linked_files, linked_bytes;
	/** Files copied: the newest segment up to the backup's point, the
	 *  sealed segments that could not be linked, the meta file. */
	uint64_t copied_files, copied_bytes;
	/** The index checkpoint written for the copy, in bytes. */
	uint64_t index_bytes;
	/** Keys in the copy. */
	uint64_t keys;
} cellar_backup_result;

/**
 * Write a consistent copy of the store, as it stood at one moment during
 * the call, into the new directory dest_dir, while reads and writes go on.
 *
 * The moment is a snapshot's (see above): the append buffer is written to
 * the newest segment's file, the index frozen and the segments pinned,
 * under the writer mutex; everything else runs without it.  Sealed
 * segments are hard-linked where the file system allows it (the
 * cellar_fs link operation; POSIX link(2) on the same file system) and
 * copied where it does not (no link operation, EXDEV, EPERM, or any other
 * failure, such as a file compaction removed meanwhile: it is read from
 * the still open handle); the newest segment is copied up to the moment;
 * the index is written as a checkpoint of that moment, so the copy opens
 * with nothing to replay.  A linked segment shares its bytes with the
 * store: they never change (segments are append-only and sealed), but a
 * tool that rewrites a sealed segment in place would change both.
 *
 * The copy is built in a temporary directory beside dest_dir
 * (dest_dir.backup-<hex>), every file and the directory fsynced, then
 * renamed to dest_dir and the parent directory fsynced.  A crash or error
 * before the rename leaves the source untouched and no dest_dir (a
 * temporary directory may be left behind; an error removes it); after it,
 * dest_dir is complete.  The copy opens with cellar_open() and passes
 * cellar_verify().
 *
 * Thread-safe; writers wait only while the moment is taken (flushing up to
 * 2 MiB of append buffer and freezing the index, as for a checkpoint).
 * @param dest_dir  a directory that must not exist; its parent must.
 * @param[out] result  what was linked and copied; may be NULL.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: db or dest_dir NULL or empty;
 *   - CELLAR_EREADONLY: the handle is read-only;
 *   - CELLAR_EEXIST: dest_dir exists;
 *   - CELLAR_ENOENT: its parent does not exist;
 *   - CELLAR_EFAILED: an earlier write failed; reopen the store;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_EACCES, CELLAR_ENOMEM: writing the
 *     copy failed (the store is untouched; a failed flush of the append
 *     buffer refuses later writes, as a failed put would).
 */
CELLAR_API int cellar_backup(cellar_db *db, const char *dest_dir,
                             cellar_backup_result *result);

/* ---- Write batches, read-modify-write, change events --------------------- */

/**
 * A write batch: puts and deletes collected in memory, then committed to a
 * store at once with cellar_batch_commit().  It copies every key and value
 * it is given, belongs to no store (commit it to any), and is not changed
 * by a commit, so it can be committed again or cleared and reused.
 * Threads: one thread at a time per batch.
 */
typedef struct cellar_batch cellar_batch;

/**
 * A new, empty batch.
 * @param[out] out  the batch; NULL on failure.  Free it with
 *                  cellar_batch_free().
 * @return CELLAR_OK, CELLAR_EINVAL (out NULL) or CELLAR_ENOMEM.
 */
CELLAR_API int cellar_batch_new(cellar_batch **out);

/**
 * Add a put of key to the batch.  A key may appear several times in a
 * batch, as a put or a delete: the last one wins.
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: b or key NULL, or value NULL with val_len > 0;
 *   - CELLAR_EKEYLEN, CELLAR_EVALLEN: as cellar_put();
 *   - CELLAR_ELIMIT: the batch would not fit in one segment file (its
 *     records take more than 4 GiB - 4 KiB, or it has 2^32 - 1 ops);
 *   - CELLAR_ENOMEM.
 * On error the batch is as it was.
 */
CELLAR_API int cellar_batch_put(cellar_batch *b, const void *key,
                                size_t key_len, const void *val,
                                size_t val_len);

/**
 * cellar_batch_put() with options (opts NULL: exactly cellar_batch_put()).
 * An expiry is resolved when the batch is committed: ttl_ms counts from
 * the clock's time read by cellar_batch_commit(), once for the whole
 * batch, and an expire_at that is not after that time makes the commit
 * fail with CELLAR_EINVAL (nothing written).  CELLAR_PUT_NOOVERWRITE is not
 * offered in batches (CELLAR_EINVAL): use cellar_cas(CELLAR_CAS_ABSENT).
 * @return as cellar_batch_put(), and CELLAR_EINVAL for opts of an unknown
 *   version, an unknown flag or NOOVERWRITE, or both ttl_ms and expire_at.
 */
CELLAR_API int cellar_batch_put_ex(cellar_batch *b, const void *key,
                                   size_t key_len, const void *val,
                                   size_t val_len,
                                   const cellar_put_options *opts);

/**
 * Add a delete of key to the batch.  Deleting a key that is absent when
 * the batch is committed is no error; it writes nothing.
 * @return as cellar_batch_put() (CELLAR_EINVAL: b or key NULL).
 */
CELLAR_API int cellar_batch_delete(cellar_batch *b, const void *key,
                                   size_t key_len);

/** The number of puts and deletes added since the batch was new or
 *  cleared (0 for NULL). */
CELLAR_API size_t cellar_batch_count(const cellar_batch *b);

/** Empty the batch, keeping its memory for reuse.  Accepts NULL. */
CELLAR_API void cellar_batch_clear(cellar_batch *b);

/** Free the batch.  Accepts NULL. */
CELLAR_API void cellar_batch_free(cellar_batch *b);

/**
 * Apply every put and delete of b to the store, atomically.
 *
 * Atomicity: the batch is written as one piece, a batch header record
 * followed by its records (docs/format.md), into one segment file.  After
 * a crash at any point, reopening shows either the whole batch or none of
 * it: recovery applies a batch only when all of it is on disk and its
 * checksum holds.  Readers in other threads of this handle never see part
 * of a batch: its index changes are published under one hold of the
 * reader latch (readers wait for that, about a microsecond per key, never
 * for I/O), so once any read sees one of its new values, every later read
 * sees all of them.  Read-only handles see it whole when they open.
 *
 * Cost: one write and one checksum pass for the batch instead of one per
 * record, one writer-mutex hold, and the index lookups of its keys
 * pipelined; the batch is copied once into memory as its encoded records.
 * Durability as cellar_put()'s: the batch is durable after the next
 * cellar_sync() (or at once under CELLAR_SYNC_ALWAYS).
 *
 * A batch that changes nothing (empty, or only deletes of absent keys)
 * writes nothing.  The batch itself is unchanged by the call.
 * Threads: as cellar_put() (commits of one handle are serialized).
 * @return CELLAR_OK, or
 *   - CELLAR_EINVAL: db or b NULL;
 *   - CELLAR_EREADONLY: the handle is read-only;
 *   - CELLAR_ELIMIT: the encoded batch would not fit in one segment, or
 *     the store has too many segment files;
 *   - CELLAR_EIO, CELLAR_ENOSPC, CELLAR_ENOMEM: the batch failed and the
 *     store is unchanged (a full disk: as cellar_put(); with a reserve, a
 *     batch with a put is refused while the reserve is given up, one of
 *     deletes only is taken, and a batch that meets the full disk gives
 *     the reserve up and fails: commit a batch of deletes again);
 *   - CELLAR_EFAILED: an earlier write failed; or (CELLAR_ENOMEM, then
 *     CELLAR_EFAILED for later writes) memory ran out while the index was
 *     being updated: the batch is in the log whole and a reopen shows it
 *     whole, but this handle's readers may have seen part of it.
 */
CELLAR_API int cellar_batch_commit(cellar_db *db, const cellar_batch *b);

/**
 * What a cellar_update() callback asks for (or a negative error of its
 * own, which cellar_update() returns, changing nothing).
 */
typedef enum cellar_update_action {
	CELLAR_UPDATE_KEEP = 0,   /**< leave the key as it is */
	CELLAR_UPDATE_STORE = 1,  /**< store *new_val (*new_len bytes) */
	CELLAR_UPDATE_DELETE = 2  /**< delete the key (nothing if absent) */
} cellar_update_action;

/**
 * A cellar_update() callback: decide from key's current value.
 * @param val      the current value, or NULL when the key is absent; valid
 *                 only during the call.
 * @param val_len  its length (0 when absent).
 * @param found    1 if the key is present, 0 if not (or expired).
 * @param[out] new_val, new_len  for CELLAR_UPDATE_STORE: the value to
 *                 store; it must stay valid until the callback returns
 *                 (cellar_update() copies it before returning).  It is
 *                 stored without expiry, whatever the old value had.
 * @return a cellar_update_action, or a negative error to abort.
 */
typedef int (*cellar_update_fn)(const void *val, size_t val_len, int found,
                                const void **new_val, size_t *new_len,
                                void *ctx);

/**
 * Read-modify-write: run fn on key's current value (or on its absence)
 * and store, delete or leave alone what it returns, with no other write
 * of this handle in between.  fn runs under the handle's writer mutex:
 * every other writer of the handle (put, delete, batch, update, compaction
 * batch, sync) waits meanwhile, so keep it short.  It may read the store
 * (cellar_get sees the state it was given), but must not write to the same
 * handle (that deadlocks).  Readers do not wait for it.
 * Durability and events as cellar_put() / cellar_delete().
 * @return CELLAR_OK (also when fn kept the key, or deleted an absent one),
 *   or
 *   - fn's own negative return, nothing changed;
 *   - CELLAR_EINVAL: db, key or fn NULL, fn returned an unknown action, or
 *     CELLAR_UPDATE_STORE with *new_val NULL and *new_len > 0;
 *   - CELLAR_EKEYLEN; CELLAR_EVALLEN: *new_len too long;
 *   - CELLAR_EREADONLY;
 *   - CELLAR_ECORRUPT, CELLAR_EVERSION: the current record could not be
 *     read (fn is not called);
 *   - the errors of cellar_put() for the write.
 */
CELLAR_API int cellar_update(cellar_db *db, const void *key, size_t key_len,
                             cellar_update_fn fn, void *ctx);

/** cellar_cas() flags. */
#define CELLAR_CAS_ABSENT 0x1 /**< expect the key to be absent (expected ignored) */
#define CELLAR_CAS_DELETE 0x2 /**< on a match, delete the key (val ignored) */

/**
 * Compare-and-set: if key holds exactly expected (expected_len bytes; with
 * CELLAR_CAS_ABSENT: if key is absent), store val under it (with
 * CELLAR_CAS_DELETE: delete it); otherwise change nothing.  Atomic with
 * respect to every other write of this handle (it is a cellar_update()).
 * @return CELLAR_OK (the comparison held and the write was done), or
 *   - CELLAR_ECHANGED: the key held another value, or was absent (or, with
 *     CELLAR_CAS_ABSENT, present); nothing was written;
 *   - CELLAR_EINVAL: db or key NULL, unknown flags, expected NULL with
 *     expected_len > 0 (without CELLAR_CAS_ABSENT), val NULL with
 *     val_len > 0 (without CELLAR_CAS_DELETE);
 *   - as cellar_update() otherwise.
 */
CELLAR_API int cellar_cas(cellar_db *db, const void *key, size_t key_len,
                          const void *expected, size_t expected_len,
                          const void *val, size_t val_len, unsigned flags);

/** What a cellar_change reports. */
typedef enum cellar_change_kind {
	CELLAR_CHANGE_PUT = 0,    /**< key now holds val */
	CELLAR_CHANGE_DELETE = 1, /**< key was deleted */
	/** key had expired and its record was dropped: by compaction (see
	 *  cellar_watch for when; val NULL) */
	CELLAR_CHANGE_EXPIRE = 2,
	CELLAR_CHANGE_LOST = 3    /**< lost changes were dropped (no key) */
} cellar_change_kind;

/** One committed change, given to a cellar_watch() callback. */
typedef struct cellar_change {
	cellar_change_kind kind;
	const void *key;   /**< the key (NULL for CELLAR_CHANGE_LOST) */
	size_t key_len;
	const void *val;   /**< CELLAR_CHANGE_PUT: the new value, else NULL */
	size_t val_len;
	/** The commit's number, counted per handle from 1: the changes of one
	 * cellar_batch_commit() share it, and commits are numbered in the
	 * order they happened. */
	uint64_t commit;
	/** 1 on the last change of its commit that this subscription gets. */
	int last;
	/** CELLAR_CHANGE_LOST: how many changes were dropped since the last
	 * delivery because the subscription fell max_pending behind. */
	uint64_t lost;
} cellar_change;

/** A cellar_watch() callback; the change is valid only during the call. */
typedef void (*cellar_watch_fn)(const cellar_change *c, void *ctx);

/** A subscription to a handle's changes, from cellar_watch(). */
typedef struct cellar_sub cellar_sub;

/**
 * Subscribe to the committed changes of this handle (puts, deletes,
 * batches, updates) to keys that start with prefix (prefix_len 0: every
 * key).  fn is called once per change, in commit order, after the commit,
 * on the handle's delivery thread (one per handle, started by its first
 * subscription), never on the writer's thread: a writer only copies each
 * matching change into the subscription's queue.  The changes of one batch
 * arrive one after the other, with one commit number, the last marked.
 * When a subscription has max_pending changes waiting (0: 65536), the
 * changes of later commits are dropped whole, counted, and reported by a
 * CELLAR_CHANGE_LOST before the next delivered change: a slow subscriber
 * never holds a writer up.  Changes made by other handles or processes,
 * and compaction's copies, are not reported.
 *
 * Expiry: a key's expiry is reported as CELLAR_CHANGE_EXPIRE when this
 * handle's compaction (cellar_compact, or the background one) drops the
 * expired record, not at the moment the key expires: nothing runs then.
 * Each such event is a commit of its own.  A key that expired and is then
 * written again (put, batch) before compaction reaches it gets only that
 * write's event; a delete of an expired key is CELLAR_ENOTFOUND and no
 * event.  A key whose expired record is still in the store when the handle
 * closes is reported by the compaction of a later handle, if that one has
 * a subscriber.  fn may call cellar on this
 * handle (reads, writes, cellar_unwatch), though a write from fn is itself
 * reported later.
 * @param[out] out  the subscription; NULL on failure.
 * @return CELLAR_OK, or CELLAR_EINVAL (db, fn or out NULL, prefix NULL with
 *   prefix_len > 0, prefix_len > CELLAR_MAX_KEY_LEN), CELLAR_EREADONLY (a
 *   read-only handle has no changes), CELLAR_ENOMEM, CELLAR_EIO (the
 *   delivery thread could not be started).
 */
CELLAR_API int cellar_watch(cellar_db *db, const void *prefix,
                            size_t prefix_len, size_t max_pending,
                            cellar_watch_fn fn, void *ctx,
                            cellar_sub **out);

/**
 * End a subscription.  From any thread, including from inside its own
 * callback: once it returns, fn is not called again for it (called from
 * another callback of the same handle, or from a thread other than the
 * delivery thread, it waits for a call of fn in progress to return).
 * Changes still queued for it are dropped.  Accepts NULL.  cellar_close()
 * ends every subscription left, after delivering what is queued; their
 * handles must not be used afterwards.
 * @return CELLAR_OK.
 */
CELLAR_API int cellar_unwatch(cellar_sub *sub);
/* ---- hardening: what damage each call reports ---------------------------
 *
 * A segment file cut short.  The index file records, for each segment it
 * covers, how long the segment was when the checkpoint was written, and a
 * checkpoint is written only after those bytes are durable; so a segment
 * now shorter than that was cut by another program (or a failing disk),
 * not torn by a crash.  Then:
 *   - cellar_open() (read-only or read-write) succeeds and keeps the
 *     checkpoint; cellar_stats_sized() reports the missing bytes in
 *     lost_bytes, and the on_event callback gets CELLAR_EVENT_RECOVERED
 *     naming the segment.  A read-write open writes on in a new segment,
 *     never after the cut, and every later checkpoint keeps the old size,
 *     so the loss stays reported across reopens;
 *   - cellar_get() and its variants (cellar_has, cellar_get_alloc,
 *     cellar_get_many, cellar_get_pinned) return CELLAR_ECORRUPT for a key
 *     whose newest record was past the cut (or across it), never
 *     CELLAR_ENOTFOUND; every other key reads as before;
 *   - cellar_iter_next() returns CELLAR_ECORRUPT once at the end of the
 *     segment that was cut ("segment ... was cut short"), then goes on with
 *     the next segment: every intact live key still comes out once;
 *   - cellar_compact() never drops such a segment: its index slots still
 *     name the lost records;
 *   - cellar_verify() (`cellar check`) reports CELLAR_DAMAGE_INDEX_STALE
 *     with the segment and the bytes missing, and cellar_repair() accepts
 *     the loss: it rebuilds the index from what is left, after which the
 *     lost keys are absent (or show an older value the log still holds).
 * A crash never does this: a write torn by a crash lies past the
 * checkpoint and is cut (read-write) or ignored (read-only), reported in
 * torn_bytes.  Removing the index file also removes this knowledge: the
 * next writable open rebuilds from the segments and cannot tell a cut.
 *
 * A damaged index chunk.  A read-write open checks every chunk and
 * rebuilds the index from the segments if one fails.  A read-only handle
 * checks each chunk when a lookup first touches it; when one fails, the
 * lookup (cellar_get and its variants, and the iterator's "is this record
 * live" step) is answered from a table the handle rebuilds in memory from
 * the segments, once, on the first such lookup: that call reads every
 * record of every segment (the same pass a rebuilding read-write open
 * makes, and as long) and the table costs about the index file's
 * size in memory, until the handle closes.  Every key whose record is
 * intact is served; a key the rebuilt table lacks while the log has
 * damaged records reads as CELLAR_ECORRUPT.  Concurrent lookups wait for
 * the rebuild.
 *
 * A full disk.  A write the file system refuses for lack of space
 * (CELLAR_ENOSPC) changes nothing the store depends on: the bytes of
 * acknowledged writes stay in the append buffer and a later flush writes
 * them (again) at the same offsets, a record larger than the buffer that
 * was written in place is cut off the file again, and a checkpoint's
 * temporary file is removed.  So the handle is never failed by it: reads
 * go on, cellar_sync() and puts succeed again once there is room, and a
 * reopen (or a crash) loses nothing that a successful sync covered.  Only
 * a failed fsync (whatever its errno), a sync whose write failed for
 * another reason, or, under CELLAR_SYNC_ALWAYS, a record whose write
 * failed, make the handle refuse writes with CELLAR_EFAILED.
 *   With reserve_bytes, the store holds that much space in <dir>/reserve
 *   (zeros, written and fsynced at open).  The first write that meets the
 *   full disk gives it back to the file system (the file is cut to 0
 *   bytes).  From then on: puts, and batches with a put, fail with
 *   CELLAR_ENOSPC at once; deletes, syncs, checkpoints, cellar_close and
 *   compaction write into the space the reserve freed (one of them that
 *   meets the full disk while the reserve is held gives it up and is
 *   tried once more); cellar_compact() rewrites one segment at a time,
 *   removing each before copying the next, and at its end makes the
 *   reserve again if there is room, after which puts are taken.  A sync
 *   (and a put) tries to make it again at most once a second, for space
 *   freed outside the store.  A background compaction that fails for lack
 *   of space refuses writes with CELLAR_ENOSPC until cellar_compact()
 *   succeeds (as any failed background pass).  Reopening on a full disk
 *   works: the reserve that cannot be made leaves the handle with puts
 *   waiting, the rest as above.  The reserve file carries no data: it may
 *   be removed while no writer has the store open (a way out when even the
 *   reserve was not enough), and a handle without reserve_bytes leaves it
 *   as it is.
 *
 * The SIGBUS guard.  With the default mmap file system, another program
 * truncating a store file that a handle has mapped would kill the reader
 * with SIGBUS at its next touch of a lost page.  cellar installs a SIGBUS
 * handler (SA_SIGINFO | SA_ONSTACK) when it makes its first mapping in the
 * process, and registers every mapping it makes.  On a fault inside one of
 * them the handler maps zero-filled pages over the rest of that mapping
 * and returns: the read then fails its checksum and the call returns
 * CELLAR_ECORRUPT (a lookup that finds no slot in a faulted index mapping
 * returns CELLAR_ECORRUPT rather than CELLAR_ENOTFOUND, and an iteration
 * over one ends with one CELLAR_ECORRUPT).  cellar_stats_sized() counts the
 * faulted mappings in faulted_mappings; reopen the store once its files
 * are restored.  What was already read is unaffected, except a value held
 * through cellar_get_pinned(), whose bytes may turn to zeros.  A file cut
 * between a read's checksum check and its copy is caught too: gets,
 * multi-gets, pinned gets and iteration compare the guard's count of
 * rescued faults before and after, and return CELLAR_ECORRUPT if it moved
 * (a fault on any cellar mapping of the process meanwhile, so a spurious
 * error is possible while files are being cut, never zeros).  The hot path
 * pays two loads of that count; only mapping and unmapping touch the
 * registry.
 *   Interplay with the application's handlers: a SIGBUS that is not a
 *   fault in a cellar mapping (another mapping of the application's, or a
 *   SIGBUS sent with kill()) goes to the handler that was installed before
 *   cellar's (called as SA_SIGINFO or plain, as it was installed), or, if
 *   there was none or it was SIG_IGN, gets the default action: the process
 *   dies of SIGBUS as it would have without cellar.  An application that
 *   installs its own SIGBUS handler after opening a store replaces
 *   cellar's; to keep the guard, save the previous action sigaction()
 *   returns and call it for faults it does not handle itself (their
 *   si_addr lies in cellar's mappings).  Where SIGBUS must stay the
 *   application's alone, use cellar_fs_posix_new(), which maps nothing.
 *   The handler calls only mmap() and atomic loads and stores.
 */

#ifdef __cplusplus
}
#endif

#endif /* CELLAR_H */

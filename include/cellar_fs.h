/*
 * cellar_fs.h - the file-system layer of cellar.
 *
 * cellar never calls the operating system directly: every file operation goes
 * through a cellar_fs, a table of positional operations.  Three
 * implementations ship with the library:
 *
 *   cellar_fs_mmap_new()   POSIX files, reads through memory mappings (default)
 *   cellar_fs_posix_new()  POSIX files, reads with pread(); no mappings
 *   cellar_fs_mem_new()    an in-memory file system, for tests and fuzzing
 *
 * Most users never include this header: cellar_open() uses the mmap file
 * system when cellar_options.fs is NULL.  Include it to pick another
 * implementation, or to plug in your own.
 *
 * Contract for implementers
 * -------------------------
 * - Every operation returns CELLAR_OK (0) or a negative cellar error code
 *   (see cellar.h); the usual mapping is ENOENT -> CELLAR_ENOENT,
 *   ENOSPC/EDQUOT -> CELLAR_ENOSPC, ENOMEM -> CELLAR_ENOMEM,
 *   EWOULDBLOCK on a lock -> CELLAR_ELOCKED, anything else -> CELLAR_EIO.
 * - Paths are byte strings built by cellar as "<dir>/<name>"; cellar never
 *   passes "..", never a trailing slash, and names only [A-Za-z0-9._-].
 * - read_at, write_at, size, map and unmap may be called from several threads
 *   at once on the same file, as long as no two calls write the same bytes.
 *   All other operations are called by one thread at a time per store.
 * - map is optional (NULL means "not supported"; cellar then reads with
 *   read_at).  A mapping of length len covers bytes [0, len) of the file even
 *   where the file is still shorter; cellar never touches mapped bytes at or
 *   beyond the file's size.  Bytes written with write_at below len must be
 *   visible through every live mapping as soon as write_at returns, and a
 *   mapping stays valid until unmap, whatever happens to the file (truncate,
 *   remove, rename).
 * - resident, lock_mem and unlock_mem (version 2) are optional and called
 *   only from the thread that opens and closes the store, or under the
 *   store's writer; they may run beside read_at and map on other threads.
 */
#ifndef CELLAR_FS_H
#define CELLAR_FS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CELLAR_API
#  if defined(__GNUC__) || defined(__clang__)
#    define CELLAR_API __attribute__((visibility("default")))
#  else
#    define CELLAR_API
#  endif
#endif

/** Version of the cellar_fs table described by this header. */
#define CELLAR_FS_VERSION 2
/*
 * Version history: 1, the table up to destroy; 2 appends resident, lock_mem,
 * unlock_mem, exchange, rmdir and writeback, and the map hints NORMAL and
 * WILLNEED.  cellar accepts
 * tables of either version: it reads the version-2 members only of a table
 * whose version is 2 (a version-1 table may end at destroy), treats them as
 * absent otherwise, and passes a version-1 table no hint above
 * CELLAR_FS_MAP_HOT.
 */

/** An open file of some cellar_fs; its layout belongs to the implementation. */
typedef struct cellar_file cellar_file;

/** open() flags. */
#define CELLAR_FS_READ 0x1   /**< open for reading */
#define CELLAR_FS_WRITE 0x2  /**< open for reading and writing */
#define CELLAR_FS_CREATE 0x4 /**< create the file if it does not exist */
#define CELLAR_FS_EXCL 0x8   /**< with CREATE: fail with CELLAR_EEXIST if it exists */

/** map() access hints (advice only; an implementation may ignore them). */
#define CELLAR_FS_MAP_RANDOM 0     /**< point reads at random offsets */
#define CELLAR_FS_MAP_SEQUENTIAL 1 /**< read front to back once */
/** point reads at random offsets all over the mapping, all the time (the
 *  index): worth keeping in memory in huge pages where the OS has them */
#define CELLAR_FS_MAP_HOT 2
/** since version 2: no advice; the OS's default read-ahead */
#define CELLAR_FS_MAP_NORMAL 3
/** since version 2: as NORMAL, and start reading the whole mapping in now */
#define CELLAR_FS_MAP_WILLNEED 4

typedef struct cellar_fs cellar_fs;

/**
 * The file-system table.  Fill every member except those marked optional.
 * ctx is for the implementation; cellar only passes the table back.
 */
struct cellar_fs {
	/** Must be CELLAR_FS_VERSION. */
	unsigned version;
	/** Implementation state. */
	void *ctx;

	/** Open (and with CELLAR_FS_CREATE create) the file at path. */
	int (*open)(cellar_fs *fs, const char *path, int flags, cellar_file **out);
	/** Close a file.  Accepts NULL.  Live mappings stay valid. */
	int (*close)(cellar_fs *fs, cellar_file *f);
	/**
	 * Read up to len bytes at offset off into buf; *got receives the number
	 * read, which is less than len only at end of file.
	 */
	int (*read_at)(cellar_fs *fs, cellar_file *f, uint64_t off, void *buf,
	               size_t len, size_t *got);
	/** Write all len bytes at offset off, extending the file if needed. */
	int (*write_at)(cellar_fs *fs, cellar_file *f, uint64_t off,
	                const void *buf, size_t len);
	/** The file's current size in bytes. */
	int (*size)(cellar_fs *fs, cellar_file *f, uint64_t *out);
	/** Cut or extend (with zeros) the file to size bytes. */
	int (*truncate)(cellar_fs *fs, cellar_file *f, uint64_t size);
	/** Make the file's contents and size durable (fsync). */
	int (*sync)(cellar_fs *fs, cellar_file *f);
	/**
	 * Optional.  Map bytes [0, len) of the file read-only; see the contract
	 * above.  hint is one of the CELLAR_FS_MAP_ values above.
	 */
	int (*map)(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
	           const void **out);
	/** Optional (with map).  Release a mapping made by map. */
	int (*unmap)(cellar_fs *fs, cellar_file *f, const void *addr, uint64_t len);
	/** Remove the file at path (CELLAR_ENOENT if there is none). */
	int (*remove)(cellar_fs *fs, const char *path);
	/**
	 * Atomically rename from to to, replacing to if it exists.  from may
	 * also be a directory, renamed onto a name that does not exist.
	 */
	int (*rename)(cellar_fs *fs, const char *from, const char *to);
	/**
	 * Call cb once for each entry name in directory dir (not "." or "..").
	 * A non-zero return from cb stops the listing and is returned.
	 */
	int (*list)(cellar_fs *fs, const char *dir,
	            int (*cb)(const char *name, void *ctx), void *ctx);
	/** Create directory path; CELLAR_EEXIST if it exists. */
	int (*mkdir)(cellar_fs *fs, const char *path);
	/** Make the directory's entries (creates, renames, removes) durable. */
	int (*sync_dir)(cellar_fs *fs, const char *path);
	/**
	 * Take an exclusive advisory lock on the file at path (created if
	 * missing) without waiting: CELLAR_ELOCKED if another holder has it.  The
	 * lock is released by unlock, or by the OS if the process dies.
	 */
	int (*lock)(cellar_fs *fs, const char *path, cellar_file **out);
	/** Release a lock taken with lock.  Accepts NULL. */
	int (*unlock)(cellar_fs *fs, cellar_file *lock);
	/** Free the table and its state.  Called by cellar_fs_free(). */
	void (*destroy)(cellar_fs *fs);

	/* ---- since version 2 (read only when version >= 2) ---- */

	/**
	 * Optional.  How many of the bytes [0, len) of file f are in memory
	 * right now (for POSIX files: in the OS page cache), into *bytes (at
	 * most len).  addr is where cellar holds those bytes, when it does: a
	 * live mapping of f from map, or a private copy it read from f; NULL
	 * asks about the file itself.  Advice only: the answer may be stale by
	 * the time it returns.  NULL member: cellar reports "unknown".
	 */
	int (*resident)(cellar_fs *fs, cellar_file *f, const void *addr,
	                uint64_t len, uint64_t *bytes);
	/**
	 * Optional (with unlock_mem).  Keep the len bytes at addr (a mapping of
	 * f from map, or a private copy of f's bytes) in memory until
	 * unlock_mem, reading them in now (mlock).  f is for messages and may be
	 * NULL.  When the OS refuses for want of locked-memory allowance, return
	 * CELLAR_EMLOCK with a message naming the bytes asked for and the limit
	 * (RLIMIT_MEMLOCK).  NULL member: cellar cannot lock memory on this file
	 * system, and CELLAR_LOCK_INDEX gives CELLAR_EINVAL.
	 */
	int (*lock_mem)(cellar_fs *fs, cellar_file *f, const void *addr,
	                uint64_t len);
	/** Optional (with lock_mem).  Undo lock_mem of the same range. */
	int (*unlock_mem)(cellar_fs *fs, cellar_file *f, const void *addr,
	                  uint64_t len);
	/**
	 * Optional.  Atomically exchange the directories (or files) at a and
	 * b, both of which must exist (Linux renameat2(RENAME_EXCHANGE)): the
	 * name a then holds what b held and the other way round, with no
	 * moment at which either name is missing.  Open files and mappings
	 * under either are unaffected.  The builder needs it to publish a
	 * build over an existing store; NULL means "not supported".
	 */
	int (*exchange)(cellar_fs *fs, const char *a, const char *b);
	/**
	 * Optional.  Remove the empty directory at path (CELLAR_ENOENT if there
	 * is none, CELLAR_EIO if it is not empty).  NULL: directories are
	 * left behind.
	 */
	int (*rmdir)(cellar_fs *fs, const char *path);
	/**
	 * Optional.  Start writing bytes [off, off + len) of f to stable
	 * storage without waiting for it (Linux sync_file_range with
	 * SYNC_FILE_RANGE_WRITE): a hint that makes a later sync quicker.
	 * Guarantees nothing; NULL means "no such hint".
	 */
	int (*writeback)(cellar_fs *fs, cellar_file *f, uint64_t off,
	                 uint64_t len);
	/**
	 * Optional.  Make to a new name (a hard link) of the existing file
	 * from, sharing its bytes; to must not exist (CELLAR_EEXIST).  A file
	 * system that cannot (another device, no hard links) returns an
	 * error, and the caller copies instead.  cellar_backup() links sealed
	 * segments with it; NULL means "copy".
	 */
	int (*link)(cellar_fs *fs, const char *from, const char *to);
};

/**
 * Create a POSIX file system that reads with pread().  It has no map, but
 * has resident (for a file: through a temporary mapping and mincore; for a
 * private copy: mincore on it) and lock_mem/unlock_mem (mlock on cellar's
 * private copy of the index).
 * @param[out] out  the new file system; NULL on failure.
 * @return CELLAR_OK or CELLAR_ENOMEM.
 */
CELLAR_API int cellar_fs_posix_new(cellar_fs **out);

/**
 * Create a POSIX file system whose map() uses mmap(); this is the default.
 * A mapped file truncated by another program while mapped would raise
 * SIGBUS in the reading process; every mapping is registered with cellar's
 * SIGBUS guard, which turns that into CELLAR_ECORRUPT (see "The SIGBUS
 * guard" in cellar.h).  cellar itself never truncates a mapped file.
 * @param[out] out  the new file system; NULL on failure.
 * @return CELLAR_OK or CELLAR_ENOMEM.
 */
CELLAR_API int cellar_fs_mmap_new(cellar_fs **out);

/**
 * Create an empty in-memory file system.  Its files live until
 * cellar_fs_free(), so a store can be closed and reopened on the same
 * cellar_fs.  Safe to share between threads.
 * @param[out] out  the new file system; NULL on failure.
 * @return CELLAR_OK or CELLAR_ENOMEM.
 */
CELLAR_API int cellar_fs_mem_new(cellar_fs **out);

/**
 * Free a file system made by one of the constructors above (or any table
 * with a destroy member).  Accepts NULL.  No store may still use it.
 */
CELLAR_API void cellar_fs_free(cellar_fs *fs);

#ifdef __cplusplus
}
#endif

#endif /* CELLAR_FS_H */

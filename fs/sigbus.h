/*
 * sigbus.h - the SIGBUS guard: a process-wide registry of the mappings
 * cellar's mmap file system made, and a SIGBUS handler that rescues a
 * reader whose mapped file another program cut short.
 *
 * When a mapped file shrinks, touching a page past its new end raises
 * SIGBUS, which kills the process by default.  The handler recognises a
 * fault inside a registered mapping, maps zero-filled pages over the
 * mapping from the faulting page to its end (MAP_FIXED, anonymous,
 * read-only) and returns: the access is retried, reads zeros, and the
 * record's or the index chunk's checksum then fails, so the call returns
 * CELLAR_ECORRUPT.  The mapping is marked faulted (fs_sigbus_faulted).
 * Every other SIGBUS goes to the handler that was installed before
 * cellar's (SA_SIGINFO or plain), or gets the default action (the process
 * dies of SIGBUS, as it would have without cellar).
 *
 * The handler is installed when the first mapping is registered.  The hot
 * path pays nothing: only map and unmap touch the registry, and the handler
 * runs only on a fault.
 *
 * Owns: the registry, the handler and the previous handler it chains to.
 * Must not: include anything from src/, allocate or lock in the handler, or
 * know what the mapped bytes hold.
 */
#ifndef CELLAR_SIGBUS_H
#define CELLAR_SIGBUS_H

#include <stddef.h>
#include <stdint.h>

/**
 * Register [addr, addr + len) as a mapping of cellar's (installing the
 * handler on the first call).  When the registry is full (262,144 live
 * mappings) the mapping is simply not guarded.
 */
void fs_sigbus_add(const void *addr, size_t len);

/** Forget the mapping at addr; call before unmapping it. */
void fs_sigbus_remove(const void *addr);

/** Faults the guard has rescued, in this process, since it started. */
uint64_t fs_sigbus_rescues(void);

/**
 * Did the mapping at addr (registered with fs_sigbus_add) lose pages under
 * it, now read as zeros?  Cheap when no fault ever happened (one load).
 */
int fs_sigbus_faulted(const void *addr);

#endif

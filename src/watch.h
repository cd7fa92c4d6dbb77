/*
 * watch.h - change events (watch.c): subscriptions to a handle's committed
 * changes, their queues and the delivery thread.
 *
 * Owns: the hub of a handle's subscriptions (created by the first
 * cellar_watch, freed by watch_stop at close), each subscription's bounded
 * queue of copied changes and its count of lost ones, the commit counter,
 * and the delivery thread that calls the callbacks.
 *
 * Must not: write to the store, or make a writer wait for a subscriber: a
 * writer only copies the matching changes into the queues under the hub's
 * mutex, which no callback ever holds.
 *
 * Locking: watch_note runs under the writer mutex (so the queues are in
 * commit order) and takes the hub mutex inside it; nothing takes the
 * writer mutex while holding the hub mutex.
 */
#ifndef CELLAR_WATCH_H
#define CELLAR_WATCH_H

#include <stddef.h>

#include "handle.h"

/**
 * Writer mutex held: the n ops (skip[i] set: not written; skip may be
 * NULL) were committed as one commit.  Copies each to the subscriptions
 * whose prefix it matches; costs one atomic load when there are none.
 */
void watch_note(cellar_db *db, const writer_op *ops, const unsigned char *skip,
                size_t n);

/**
 * writer_config.on_expire (ctx: the handle; writer mutex held):
 * compaction dropped key's expired record; one CELLAR_CHANGE_EXPIRE
 * commit.
 */
void watch_expired(const void *key, size_t key_len, void *ctx);

/**
 * At close, before the writer goes: deliver what is queued, stop the
 * delivery thread and free every subscription left.
 */
void watch_stop(cellar_db *db);

#endif

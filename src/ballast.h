/*
 * ballast.h - the store's reserve of disk space: the file "reserve"
 * (files.h), kept at the size the writer asks for, whose space goes back
 * to the file system when the disk is full, so that deletes, syncs and
 * compaction can still write, and is taken again once there is room.
 *
 * Owns: making the file its size (zeros written and fsynced, so that the
 * space is really taken, on every file system, sparse or not) and giving
 * it up (the file cut to 0 bytes).  Must not: decide when either happens
 * (the writer does), or know any other file.
 */
#ifndef CELLAR_BALLAST_H
#define CELLAR_BALLAST_H

#include <stdint.h>

#include "cellar_fs.h"

typedef struct ballast {
	cellar_fs *fs;
	const char *dir;
	uint64_t size; /* bytes wanted; 0: the store keeps no reserve */
	int held;      /* the file holds size bytes */
} ballast;

/** A ballast of size bytes for dir, not yet made (nothing is done). */
void ballast_init(ballast *b, cellar_fs *fs, const char *dir, uint64_t size);

/**
 * Make the file hold exactly b->size bytes (created if absent; only what
 * is missing is written).  CELLAR_OK (b->held is 1); CELLAR_ENOSPC when
 * the disk has no room for it: the file is cut back to 0 bytes, so that
 * the attempt takes nothing, and b->held is 0; or another error of the
 * file system (b->held 0).
 */
int ballast_make(ballast *b);

/** Give the space back: cut the file to 0 bytes (b->held becomes 0). */
int ballast_release(ballast *b);

#endif

/*
 * refresh.h - a read-only handle catching up with the writer (see
 * refresh.c).  The caller holds the handle's refresh mutex.
 */
#ifndef CELLAR_REFRESH_H
#define CELLAR_REFRESH_H

#include "handle.h"

/* refresh_follow's answer when only a reload will do (not an error). */
#define REFRESH_RELOAD 1

/**
 * Bring db (read-only) up to what the store's files hold now, adding what
 * was replayed, skipped or found damaged to res.  CELLAR_OK; REFRESH_RELOAD
 * if the log no longer continues the handle's (segments removed, or a gap),
 * having changed nothing the reload does not replace; or an error, with
 * the handle still consistent (at some earlier point of the log).
 */
int refresh_follow(cellar_db *db, recovery_result *res);

#endif

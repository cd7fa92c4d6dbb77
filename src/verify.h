/*
 * verify.h - checking a store from end to end (cellar_verify) and repairing
 * what a writable open can repair (cellar_repair); both declared in cellar.h.
 *
 * It owns no on-disk format: it reads the segments and the index through
 * their modules' read-only calls (segset_open, segment_record, rec_verify,
 * segment_resync, index_load, index__chunk_check, index_verify_all,
 * index_lookup) and replays records with recovery_apply, as recovery does.
 * It never writes a store file, except that cellar_repair removes the index
 * file it has found wrong before a writable cellar_open rebuilds it.  Every
 * use of another module's internals is in verify.c.
 */
#ifndef CELLAR_VERIFY_H
#define CELLAR_VERIFY_H

#include "cellar.h"

/** Damage kinds that concern the index (a rebuild cures them). */
static inline int verify_kind_is_index(int kind)
{
	return kind >= CELLAR_DAMAGE_INDEX_FILE && kind <= CELLAR_DAMAGE_COUNT;
}

#endif

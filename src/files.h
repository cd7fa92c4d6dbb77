/*
 * files.h - the names of a store's files, defined once.
 *
 *   <dir>/meta             identity of the store: format version, hash seed
 *   <dir>/LOCK             the writer's OS lock
 *   <dir>/index            the last index checkpoint
 *   <dir>/index.tmp        a checkpoint being written (removed on open)
 *   <dir>/<16 hex>.seg     segments, named by sequence number
 */
#ifndef CELLAR_FILES_H
#define CELLAR_FILES_H

#define FILE_META "meta"
#define FILE_META_TMP "meta.tmp"
#define FILE_LOCK "LOCK"
#define FILE_INDEX "index"
#define FILE_INDEX_TMP "index.tmp"
#define FILE_SEG_SUFFIX ".seg"
/* "%016llx.seg": the sequence number in fixed-width hex sorts in log order. */
#define FILE_SEG_NAME_LEN 20

/*
 * Bulk writes go out in 2 MiB pieces at 2 MiB-aligned file offsets.  Linux
 * (ext4 and xfs since 6.x) then caches each piece as one large folio, and a
 * mapping of the file maps it with one huge-page TLB entry instead of 512
 * small ones: a random lookup then takes no TLB miss to reach the index or
 * a record.  It is only a write pattern; the format does not depend on it.
 */
#define FILE_WRITE_UNIT (2u << 20)

/** The on-disk format version this build writes and reads. */
#define FORMAT_VERSION 1

#endif

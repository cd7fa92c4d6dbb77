/*
 * builder.h - bulk loading: cellar_builder_open / add / finish / abort
 * (declared in cellar.h).
 *
 * Owns: the builder's life, its build directory "<dir>.build-<16 hex>"
 * beside the target (its lock file, meta, segments, scratch files), the
 * records' append through the segment set (no index, no fsync per record),
 * its writer thread (which writes each full append buffer while the adds
 * fill the next), the (hash, location) pairs and their spill file, resolving duplicate keys
 * for build_index.c (it reads records, build_index does not), and the
 * publication: rename onto an absent target, or an exchange with an
 * existing store under the store's write lock, then the old store's
 * removal; and removing the build directories of dead builders.
 * Must not: lay out the index file (build_index.c does), decode record
 * bytes other than through segment.h / record.h, or call the OS other than
 * through the cellar_fs vtable.
 */
#ifndef CELLAR_BUILDER_H
#define CELLAR_BUILDER_H

#include "cellar.h"

#endif

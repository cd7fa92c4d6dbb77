/*
 * fault.c - the fault-injecting file system for tests (see fault.h).
 *
 * Owns the operation counters, the fault settings and the durable-state
 * model used by fault_fs_power_cut():
 * - an ino is one file, followed across renames and removes.  It is clean
 *   when its durable content equals what the base holds now; otherwise it
 *   keeps a snapshot of its durable bytes plus the log of writes and
 *   truncates since (taken before its first change after a sync, or when it
 *   loses its name).
 * - a path record tells, for one name the wrapper has touched, which ino
 *   the name holds now (cur) and durably (dur); NULL means no file.  Names
 *   never touched are whatever the base holds, taken as durable.
 * One mutex guards everything, base calls included, so the log order is the
 * order in which the base saw the writes.
 *
 * Test-only: not part of the library.  It may use fs/ helpers (fs_util.h,
 * error.h) but nothing in the library may depend on it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "fs_util.h"

struct fault_wop {
	int is_trunc;
	uint64_t off; /* write offset, or the new size of a truncate */
	size_t len;
	unsigned char *data;
};

struct fault_ino {
	struct fault_ino *next; /* every ino, in creation order */
	int has_snap;
	unsigned char *snap;
	uint64_t snap_len;
	struct fault_wop *ops;
	size_t nops, cap_ops;
};

struct fault_path {
	char *path;
	struct fault_ino *cur, *dur;
};

struct fault_mapping {
	const void *addr;
	uint64_t len;
	cellar_file *base;
};

struct fault_file {
	cellar_file *base;
	struct fault_ino *ino;
};

struct fault_spec {
	uint64_t nth;
	int err;
	int persistent;
};

struct fault_fs {
	cellar_fs *base;
	pthread_mutex_t mu;
	uint64_t count[FAULT_NKINDS];
	uint64_t mutations;
	struct fault_spec fail[FAULT_NKINDS];
	uint64_t tear_nth;
	size_t tear_keep;
	uint64_t crash_nth;
	int crashed;
	uint64_t capacity; /* fault_fs_set_capacity; 0 = none */
	struct fault_path **paths;
	size_t npaths, cap_paths;
	struct fault_ino *inos, **inos_tail;
	struct fault_mapping *maps;
	size_t nmaps, cap_maps;
	size_t open_files; /* files and locks */
};

static const char *const op_names[FAULT_NKINDS] = {
	"open", "read", "write", "size", "truncate", "sync", "map", "remove",
	"rename", "list", "mkdir", "sync_dir", "lock",
};

static void fault_destroy(cellar_fs *fs);

static struct fault_fs *fault_of(cellar_fs *fs)
{
	if (!fs || fs->destroy != fault_destroy)
		return NULL;
	return fs->ctx;
}

static struct fault_file *ffile_of(cellar_file *f)
{
	return (struct fault_file *)(void *)f;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Count an operation and decide whether it may run: CELLAR_OK, or the error
 * to return (with its message).  *crash_now is set when this is the crash
 * point; the caller of a write then lands a prefix of it.
 */
static int gate(struct fault_fs *ff, fault_op kind, int mutation,
                int *crash_now)
{
	uint64_t n = ++ff->count[kind];
	struct fault_spec *sp = &ff->fail[kind];

	*crash_now = 0;
	if (mutation)
		ff->mutations++;
	if (ff->crashed)
		return cellar__error(CELLAR_EIO, "fault fs: %s after the crash",
		                     op_names[kind]);
	if (mutation && ff->crash_nth && ff->mutations == ff->crash_nth) {
		ff->crashed = 1;
		*crash_now = 1;
		return cellar__error(CELLAR_EIO, "fault fs: crash at mutation %llu "
		                     "(%s)", (unsigned long long)ff->mutations,
		                     op_names[kind]);
	}
	if (sp->nth && (n == sp->nth || (sp->persistent && n > sp->nth)))
		return cellar__error(sp->err, "fault fs: injected failure of %s "
		                     "#%llu", op_names[kind], (unsigned long long)n);
	return CELLAR_OK;
}

/* ---- the durable-state model ------------------------------------------ */

static void ino_clean(struct fault_ino *ino)
{
	for (size_t i = 0; i < ino->nops; i++)
		free(ino->ops[i].data);
	free(ino->ops);
	free(ino->snap);
	ino->ops = NULL;
	ino->nops = ino->cap_ops = 0;
	ino->snap = NULL;
	ino->snap_len = 0;
	ino->has_snap = 0;
}

/* A new ino; a file created now has an empty durable content. */
static struct fault_ino *ino_new(struct fault_fs *ff, int created)
{
	struct fault_ino *ino = calloc(1, sizeof *ino);

	if (!ino)
		return NULL;
	ino->has_snap = created;
	*ff->inos_tail = ino;
	ff->inos_tail = &ino->next;
	return ino;
}

static void model_clear(struct fault_fs *ff)
{
	struct fault_ino *ino = ff->inos;

	while (ino) {
		struct fault_ino *next = ino->next;
		ino_clean(ino);
		free(ino);
		ino = next;
	}
	ff->inos = NULL;
	ff->inos_tail = &ff->inos;
	for (size_t i = 0; i < ff->npaths; i++) {
		free(ff->paths[i]->path);
		free(ff->paths[i]);
	}
	free(ff->paths);
	ff->paths = NULL;
	ff->npaths = ff->cap_paths = 0;
}

/* Read the whole of base file f into a new buffer. */
static int read_all(cellar_fs *base, cellar_file *f, unsigned char **out,
                    uint64_t *len)
{
	unsigned char *buf = NULL;
	uint64_t size, done = 0;
	int rc;

	*out = NULL;
	*len = 0;
	rc = base->size(base, f, &size);
	if (rc != CELLAR_OK)
		goto fail;
	if (size > SIZE_MAX - 1) {
		rc = cellar__error(CELLAR_ENOMEM, "fault fs: file too large");
		goto fail;
	}
	buf = malloc((size_t)size + 1);
	if (!buf) {
		rc = cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		goto fail;
	}
	while (done < size) {
		size_t got;
		rc = base->read_at(base, f, done, buf + done, (size_t)(size - done),
		                   &got);
		if (rc != CELLAR_OK)
			goto fail;
		if (got == 0)
			break;
		done += got;
	}
	*out = buf;
	*len = done;
	return CELLAR_OK;
fail:
	free(buf);
	return rc;
}

static int read_path(cellar_fs *base, const char *path, unsigned char **out,
                     uint64_t *len)
{
	cellar_file *f = NULL;
	int rc;

	*out = NULL;
	*len = 0;
	rc = base->open(base, path, CELLAR_FS_READ, &f);
	if (rc != CELLAR_OK)
		return rc;
	rc = read_all(base, f, out, len);
	base->close(base, f);
	return rc;
}

static struct fault_path *path_find(struct fault_fs *ff, const char *path)
{
	for (size_t i = 0; i < ff->npaths; i++)
		if (strcmp(ff->paths[i]->path, path) == 0)
			return ff->paths[i];
	return NULL;
}

/*
 * The record of path, made on first touch by asking the base whether a file
 * is there (if so it is durable as it stands).
 */
static int path_track(struct fault_fs *ff, const char *path,
                      struct fault_path **out)
{
	struct fault_path *fp = path_find(ff, path);
	cellar_file *f = NULL;
	int rc;

	*out = fp;
	if (fp)
		return CELLAR_OK;
	if (ff->npaths == ff->cap_paths) {
		size_t ncap = ff->cap_paths ? 2 * ff->cap_paths : 16;
		struct fault_path **np = realloc(ff->paths, ncap * sizeof *np);
		if (!np)
			return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		ff->paths = np;
		ff->cap_paths = ncap;
	}
	fp = calloc(1, sizeof *fp);
	if (!fp)
		goto nomem;
	fp->path = strdup(path);
	if (!fp->path)
		goto nomem;
	rc = ff->base->open(ff->base, path, CELLAR_FS_READ, &f);
	if (rc == CELLAR_OK) {
		ff->base->close(ff->base, f);
		fp->cur = fp->dur = ino_new(ff, 0);
		if (!fp->cur)
			goto nomem;
	} else if (rc != CELLAR_ENOENT) {
		free(fp->path);
		free(fp);
		return rc;
	}
	ff->paths[ff->npaths++] = fp;
	*out = fp;
	return CELLAR_OK;
nomem:
	if (fp)
		free(fp->path);
	free(fp);
	return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
}

static int ino_linked(struct fault_fs *ff, struct fault_ino *ino)
{
	for (size_t i = 0; i < ff->npaths; i++)
		if (ff->paths[i]->cur == ino)
			return 1;
	return 0;
}

static int ino_durable(struct fault_fs *ff, struct fault_ino *ino)
{
	for (size_t i = 0; i < ff->npaths; i++)
		if (ff->paths[i]->dur == ino)
			return 1;
	return 0;
}

/* Before ino's content changes or its name goes: keep its durable bytes. */
static int snap_from_file(struct fault_fs *ff, struct fault_ino *ino,
                          cellar_file *base_f)
{
	if (ino->has_snap)
		return CELLAR_OK;
	int rc = read_all(ff->base, base_f, &ino->snap, &ino->snap_len);
	if (rc == CELLAR_OK)
		ino->has_snap = 1;
	return rc;
}

static int snap_from_path(struct fault_fs *ff, struct fault_ino *ino,
                          const char *path)
{
	if (ino->has_snap || !ino_durable(ff, ino))
		return CELLAR_OK;
	int rc = read_path(ff->base, path, &ino->snap, &ino->snap_len);
	if (rc == CELLAR_OK)
		ino->has_snap = 1;
	return rc;
}

static int ino_log(struct fault_ino *ino, int is_trunc, uint64_t off,
                   const void *data, size_t len)
{
	struct fault_wop *w;

	if (ino->nops == ino->cap_ops) {
		size_t ncap = ino->cap_ops ? 2 * ino->cap_ops : 16;
		struct fault_wop *no = realloc(ino->ops, ncap * sizeof *no);
		if (!no)
			return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		ino->ops = no;
		ino->cap_ops = ncap;
	}
	w = &ino->ops[ino->nops];
	w->is_trunc = is_trunc;
	w->off = off;
	w->len = len;
	w->data = NULL;
	if (len) {
		w->data = malloc(len);
		if (!w->data)
			return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		memcpy(w->data, data, len);
	}
	ino->nops++;
	return CELLAR_OK;
}

/* ---- the operations ------------------------------------------------------ */

static int fault_open(cellar_fs *fs, const char *path, int flags,
                      cellar_file **out)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = NULL;
	struct fault_path *fp;
	struct fault_ino *created = NULL;
	int crash, rc;

	*out = NULL;
	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_OPEN, (flags & CELLAR_FS_CREATE) != 0, &crash);
	if (rc != CELLAR_OK)
		goto fail;
	rc = path_track(ff, path, &fp);
	if (rc != CELLAR_OK)
		goto fail;
	file = calloc(1, sizeof *file);
	if (!file) {
		rc = cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		goto fail;
	}
	if (!fp->cur && (flags & CELLAR_FS_CREATE)) {
		created = ino_new(ff, 1);
		if (!created) {
			rc = cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
			goto fail;
		}
	}
	rc = ff->base->open(ff->base, path, flags, &file->base);
	if (rc != CELLAR_OK)
		goto fail; /* an unused created ino stays on the list, harmless */
	if (!fp->cur)
		fp->cur = created;
	file->ino = fp->cur;
	ff->open_files++;
	pthread_mutex_unlock(&ff->mu);
	*out = (cellar_file *)(void *)file;
	return CELLAR_OK;
fail:
	pthread_mutex_unlock(&ff->mu);
	free(file);
	return rc;
}

static int fault_close(cellar_fs *fs, cellar_file *f)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = ffile_of(f);
	int rc;

	if (!file)
		return CELLAR_OK;
	pthread_mutex_lock(&ff->mu);
	rc = ff->base->close(ff->base, file->base);
	ff->open_files--;
	if (ff->crashed)
		rc = CELLAR_OK;
	pthread_mutex_unlock(&ff->mu);
	free(file);
	return rc;
}

static int fault_read_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                         void *buf, size_t len, size_t *got)
{
	struct fault_fs *ff = fs->ctx;
	int crash, rc;

	*got = 0;
	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_READ, 0, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->read_at(ff->base, ffile_of(f)->base, off, buf, len,
		                       got);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

/* Bytes the files the wrapper knows hold on the base now. */
static uint64_t used_bytes(struct fault_fs *ff)
{
	uint64_t used = 0, size;

	for (size_t i = 0; i < ff->npaths; i++) {
		cellar_file *f;
		if (!ff->paths[i]->cur ||
		    ff->base->open(ff->base, ff->paths[i]->path, CELLAR_FS_READ,
		                   &f) != CELLAR_OK)
			continue;
		if (ff->base->size(ff->base, f, &size) == CELLAR_OK)
			used += size;
		ff->base->close(ff->base, f);
	}
	return used;
}

/* With a capacity: how much of a write of len at off fits (*n), and
 * whether it all does (*full is 0). */
static void fit_capacity(struct fault_fs *ff, cellar_file *base, uint64_t off,
                         size_t len, size_t *n, int *full)
{
	uint64_t cur = 0, used, room;

	*full = 0;
	if (!ff->capacity || ff->base->size(ff->base, base, &cur) != CELLAR_OK ||
	    off + len <= cur)
		return;
	used = used_bytes(ff);
	if (used + (off + len - cur) <= ff->capacity)
		return;
	room = ff->capacity > used ? ff->capacity - used : 0;
	*n = cur + room > off ? (size_t)(cur + room - off) : 0;
	if (*n > len)
		*n = len;
	*full = 1;
}

static int fault_write_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                          const void *buf, size_t len)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = ffile_of(f);
	size_t n = len;
	int crash, rc, torn = 0, full = 0;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_WRITE, 1, &crash);
	if (rc == CELLAR_OK)
		fit_capacity(ff, file->base, off, len, &n, &full);
	if (crash) {
		uint64_t s = ff->crash_nth;
		n = len ? (size_t)(splitmix(&s) % len) : 0;
	} else if (rc != CELLAR_OK) {
		goto out;
	} else if (ff->tear_nth && ff->count[FAULT_WRITE] == ff->tear_nth) {
		torn = 1;
		n = ff->tear_keep < len ? ff->tear_keep : (len ? len - 1 : 0);
	}
	if (n > 0) {
		int wrc = snap_from_file(ff, file->ino, file->base);
		if (wrc == CELLAR_OK)
			wrc = ff->base->write_at(ff->base, file->base, off, buf, n);
		if (wrc == CELLAR_OK)
			wrc = ino_log(file->ino, 0, off, buf, n);
		if (!crash)
			rc = wrc;
	}
	if (torn && rc == CELLAR_OK)
		rc = cellar__error(CELLAR_EIO, "fault fs: write #%llu torn after "
		                   "%zu of %zu bytes",
		                   (unsigned long long)ff->tear_nth, n, len);
	else if (full && rc == CELLAR_OK)
		rc = cellar__error(CELLAR_ENOSPC, "fault fs: no space left (capacity "
		                   "%llu bytes; %zu of %zu written)",
		                   (unsigned long long)ff->capacity, n, len);
out:
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_size(cellar_fs *fs, cellar_file *f, uint64_t *out)
{
	struct fault_fs *ff = fs->ctx;
	int crash, rc;

	*out = 0;
	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_SIZE, 0, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->size(ff->base, ffile_of(f)->base, out);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_truncate(cellar_fs *fs, cellar_file *f, uint64_t size)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = ffile_of(f);
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_TRUNCATE, 1, &crash);
	if (rc == CELLAR_OK)
		rc = snap_from_file(ff, file->ino, file->base);
	if (rc == CELLAR_OK)
		rc = ff->base->truncate(ff->base, file->base, size);
	if (rc == CELLAR_OK)
		rc = ino_log(file->ino, 1, size, NULL, 0);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_sync(cellar_fs *fs, cellar_file *f)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = ffile_of(f);
	struct fault_ino *ino = file->ino;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_SYNC, 1, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->sync(ff->base, file->base);
	if (rc == CELLAR_OK) {
		/* What the base holds now is durable. */
		ino_clean(ino);
		if (!ino_linked(ff, ino) && ino_durable(ff, ino)) {
			/* Nameless now, but its old name may come back. */
			rc = read_all(ff->base, file->base, &ino->snap,
			              &ino->snap_len);
			ino->has_snap = rc == CELLAR_OK;
		}
	}
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                     const void **out)
{
	struct fault_fs *ff = fs->ctx;
	cellar_file *bf = ffile_of(f)->base;
	int crash, rc;

	*out = NULL;
	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_MAP, 0, &crash);
	if (rc != CELLAR_OK)
		goto fail;
	if (ff->nmaps == ff->cap_maps) {
		size_t ncap = ff->cap_maps ? 2 * ff->cap_maps : 16;
		struct fault_mapping *nm = realloc(ff->maps, ncap * sizeof *nm);
		if (!nm) {
			rc = cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
			goto fail;
		}
		ff->maps = nm;
		ff->cap_maps = ncap;
	}
	rc = ff->base->map(ff->base, bf, len, hint, out);
	if (rc != CELLAR_OK)
		goto fail;
	ff->maps[ff->nmaps].addr = *out;
	ff->maps[ff->nmaps].len = len;
	ff->maps[ff->nmaps].base = bf;
	ff->nmaps++;
	pthread_mutex_unlock(&ff->mu);
	return CELLAR_OK;
fail:
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

/* f may be closed already: the base file comes from the mapping table. */
static int fault_unmap(cellar_fs *fs, cellar_file *f, const void *addr,
                       uint64_t len)
{
	struct fault_fs *ff = fs->ctx;
	int rc = CELLAR_EINVAL, found = 0;

	(void)f;
	pthread_mutex_lock(&ff->mu);
	for (size_t i = 0; i < ff->nmaps; i++) {
		struct fault_mapping *mp = &ff->maps[i];
		if (mp->addr == addr && mp->len == len) {
			rc = ff->base->unmap(ff->base, mp->base, addr, len);
			ff->maps[i] = ff->maps[--ff->nmaps];
			found = 1;
			break;
		}
	}
	if (found && ff->crashed)
		rc = CELLAR_OK;
	pthread_mutex_unlock(&ff->mu);
	if (!found)
		return cellar__error(CELLAR_EINVAL, "fault fs: unmap of an unknown "
		                     "mapping");
	return rc;
}

static int fault_remove(cellar_fs *fs, const char *path)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_path *fp;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_REMOVE, 1, &crash);
	if (rc == CELLAR_OK)
		rc = path_track(ff, path, &fp);
	if (rc == CELLAR_OK && fp->cur)
		rc = snap_from_path(ff, fp->cur, path);
	if (rc == CELLAR_OK)
		rc = ff->base->remove(ff->base, path);
	if (rc == CELLAR_OK)
		fp->cur = NULL;
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int stop_listing(const char *name, void *ctx)
{
	(void)name;
	(void)ctx;
	return 1;
}

/* Is path a directory of the base (empty or not)? */
static int base_is_dir(struct fault_fs *ff, const char *path)
{
	int rc = ff->base->list(ff->base, path, stop_listing, NULL);

	return rc == CELLAR_OK || rc == 1;
}

static int fault_rename(cellar_fs *fs, const char *from, const char *to)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_path *src, *dst;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_RENAME, 1, &crash);
	if (rc == CELLAR_OK && base_is_dir(ff, from)) {
		/* A directory (a build's publication): not modelled (fault.h). */
		rc = ff->base->rename(ff->base, from, to);
		pthread_mutex_unlock(&ff->mu);
		return rc;
	}
	if (rc == CELLAR_OK)
		rc = path_track(ff, from, &src);
	if (rc == CELLAR_OK)
		rc = path_track(ff, to, &dst);
	if (rc == CELLAR_OK && dst->cur && dst->cur != src->cur && src->cur)
		rc = snap_from_path(ff, dst->cur, to);
	if (rc == CELLAR_OK)
		rc = ff->base->rename(ff->base, from, to);
	if (rc == CELLAR_OK && src != dst) {
		dst->cur = src->cur;
		src->cur = NULL;
	}
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

struct name_list {
	char **names;
	size_t n, cap;
};

static int collect_name(const char *name, void *ctx)
{
	struct name_list *nl = ctx;

	if (nl->n == nl->cap) {
		size_t ncap = nl->cap ? 2 * nl->cap : 16;
		char **nn = realloc(nl->names, ncap * sizeof *nn);
		if (!nn)
			return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		nl->names = nn;
		nl->cap = ncap;
	}
	nl->names[nl->n] = strdup(name);
	if (!nl->names[nl->n])
		return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
	nl->n++;
	return 0;
}

static int fault_list(cellar_fs *fs, const char *dir,
                      int (*cb)(const char *name, void *ctx), void *ctx)
{
	struct fault_fs *ff = fs->ctx;
	struct name_list nl = { NULL, 0, 0 };
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_LIST, 0, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->list(ff->base, dir, collect_name, &nl);
	pthread_mutex_unlock(&ff->mu);
	/* Call back without the lock: cb may use the file system. */
	for (size_t i = 0; i < nl.n && rc == CELLAR_OK; i++)
		rc = cb(nl.names[i], ctx);
	for (size_t i = 0; i < nl.n; i++)
		free(nl.names[i]);
	free(nl.names);
	return rc;
}

static int fault_mkdir(cellar_fs *fs, const char *path)
{
	struct fault_fs *ff = fs->ctx;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_MKDIR, 1, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->mkdir(ff->base, path);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_sync_dir(cellar_fs *fs, const char *path)
{
	struct fault_fs *ff = fs->ctx;
	size_t dlen = fs__is_root(path) ? 0 : strlen(path);
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_SYNC_DIR, 1, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->sync_dir(ff->base, path);
	if (rc == CELLAR_OK) {
		for (size_t i = 0; i < ff->npaths; i++) {
			struct fault_path *fp = ff->paths[i];
			if (fs__parent_len(fp->path) == dlen &&
			    memcmp(fp->path, path, dlen) == 0)
				fp->dur = fp->cur;
		}
	}
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

/* Directory operations (version 2): counted and crashed like the file
 * operations, but not modelled by the power cut (see fault.h). */
static int fault_exchange(cellar_fs *fs, const char *a, const char *b)
{
	struct fault_fs *ff = fs->ctx;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_RENAME, 1, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->exchange(ff->base, a, b);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_rmdir(cellar_fs *fs, const char *path)
{
	struct fault_fs *ff = fs->ctx;
	int crash, rc;

	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_REMOVE, 1, &crash);
	if (rc == CELLAR_OK)
		rc = ff->base->rmdir(ff->base, path);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

static int fault_lock(cellar_fs *fs, const char *path, cellar_file **out)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = NULL;
	struct fault_path *fp;
	struct fault_ino *created = NULL;
	int crash, rc;

	*out = NULL;
	pthread_mutex_lock(&ff->mu);
	rc = gate(ff, FAULT_LOCK, 0, &crash);
	if (rc != CELLAR_OK)
		goto fail;
	rc = path_track(ff, path, &fp);
	if (rc != CELLAR_OK)
		goto fail;
	file = calloc(1, sizeof *file);
	if (!file || (!fp->cur && !(created = ino_new(ff, 1)))) {
		rc = cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
		goto fail;
	}
	rc = ff->base->lock(ff->base, path, &file->base);
	if (rc != CELLAR_OK)
		goto fail;
	if (!fp->cur)
		fp->cur = created;
	file->ino = fp->cur;
	ff->open_files++;
	pthread_mutex_unlock(&ff->mu);
	*out = (cellar_file *)(void *)file;
	return CELLAR_OK;
fail:
	pthread_mutex_unlock(&ff->mu);
	free(file);
	return rc;
}

static int fault_unlock(cellar_fs *fs, cellar_file *lock)
{
	struct fault_fs *ff = fs->ctx;
	struct fault_file *file = ffile_of(lock);
	int rc;

	if (!file)
		return CELLAR_OK;
	pthread_mutex_lock(&ff->mu);
	rc = ff->base->unlock(ff->base, file->base);
	ff->open_files--;
	if (ff->crashed)
		rc = CELLAR_OK;
	pthread_mutex_unlock(&ff->mu);
	free(file);
	return rc;
}

static void fault_destroy(cellar_fs *fs)
{
	struct fault_fs *ff = fs->ctx;

	if (ff) {
		model_clear(ff);
		free(ff->maps);
		pthread_mutex_destroy(&ff->mu);
		free(ff);
	}
	free(fs);
}

int fault_fs_new(cellar_fs **out, cellar_fs *base)
{
	cellar_fs *fs = NULL;
	struct fault_fs *ff = NULL;

	if (!out)
		return cellar__error(CELLAR_EINVAL, "fault_fs_new: out is NULL");
	*out = NULL;
	if (!base)
		return cellar__error(CELLAR_EINVAL, "fault_fs_new: base is NULL");
	fs = calloc(1, sizeof *fs);
	ff = calloc(1, sizeof *ff);
	if (!fs || !ff)
		goto fail;
	if (pthread_mutex_init(&ff->mu, NULL) != 0)
		goto fail;
	ff->base = base;
	ff->inos_tail = &ff->inos;
	fs->version = CELLAR_FS_VERSION;
	fs->ctx = ff;
	fs->open = fault_open;
	fs->close = fault_close;
	fs->read_at = fault_read_at;
	fs->write_at = fault_write_at;
	fs->size = fault_size;
	fs->truncate = fault_truncate;
	fs->sync = fault_sync;
	fs->map = base->map ? fault_map : NULL;
	fs->unmap = base->map ? fault_unmap : NULL;
	fs->remove = fault_remove;
	fs->rename = fault_rename;
	fs->list = fault_list;
	fs->mkdir = fault_mkdir;
	fs->sync_dir = fault_sync_dir;
	fs->lock = fault_lock;
	fs->unlock = fault_unlock;
	fs->destroy = fault_destroy;
	fs->exchange = base->exchange ? fault_exchange : NULL;
	fs->rmdir = base->rmdir ? fault_rmdir : NULL;
	*out = fs;
	return CELLAR_OK;
fail:
	free(ff);
	free(fs);
	return cellar__error(CELLAR_ENOMEM, "fault_fs_new: out of memory");
}

/* ---- the test controls --------------------------------------------------- */

uint64_t fault_fs_count(cellar_fs *fs, fault_op kind)
{
	struct fault_fs *ff = fault_of(fs);
	uint64_t n;

	if (!ff || (unsigned)kind >= FAULT_NKINDS)
		return 0;
	pthread_mutex_lock(&ff->mu);
	n = ff->count[kind];
	pthread_mutex_unlock(&ff->mu);
	return n;
}

uint64_t fault_fs_mutations(cellar_fs *fs)
{
	struct fault_fs *ff = fault_of(fs);
	uint64_t n;

	if (!ff)
		return 0;
	pthread_mutex_lock(&ff->mu);
	n = ff->mutations;
	pthread_mutex_unlock(&ff->mu);
	return n;
}

void fault_fs_fail(cellar_fs *fs, fault_op kind, uint64_t nth, int err,
                   int persistent)
{
	struct fault_fs *ff = fault_of(fs);

	if (!ff || (unsigned)kind >= FAULT_NKINDS)
		return;
	pthread_mutex_lock(&ff->mu);
	ff->fail[kind].nth = nth;
	ff->fail[kind].err = err;
	ff->fail[kind].persistent = persistent;
	pthread_mutex_unlock(&ff->mu);
}

void fault_fs_tear(cellar_fs *fs, uint64_t nth_write, size_t keep)
{
	struct fault_fs *ff = fault_of(fs);

	if (!ff)
		return;
	pthread_mutex_lock(&ff->mu);
	ff->tear_nth = nth_write;
	ff->tear_keep = keep;
	pthread_mutex_unlock(&ff->mu);
}

void fault_fs_crash_at(cellar_fs *fs, uint64_t nth_mutation)
{
	struct fault_fs *ff = fault_of(fs);

	if (!ff)
		return;
	pthread_mutex_lock(&ff->mu);
	ff->crash_nth = nth_mutation;
	pthread_mutex_unlock(&ff->mu);
}

void fault_fs_set_capacity(cellar_fs *fs, uint64_t capacity)
{
	struct fault_fs *ff = fault_of(fs);

	if (!ff)
		return;
	pthread_mutex_lock(&ff->mu);
	ff->capacity = capacity;
	pthread_mutex_unlock(&ff->mu);
}

int fault_fs_crashed(cellar_fs *fs)
{
	struct fault_fs *ff = fault_of(fs);
	int c;

	if (!ff)
		return 0;
	pthread_mutex_lock(&ff->mu);
	c = ff->crashed;
	pthread_mutex_unlock(&ff->mu);
	return c;
}

/* A file's content after the power cut, being built. */
struct cut_file {
	struct fault_ino *ino;
	unsigned char *data;
	uint64_t len, cap;
};

static int cut_reserve(struct cut_file *c, uint64_t need)
{
	unsigned char *d;
	uint64_t ncap;

	if (need <= c->cap)
		return CELLAR_OK;
	ncap = c->cap * 2 > need ? c->cap * 2 : need;
	if (ncap > SIZE_MAX)
		return cellar__error(CELLAR_ENOMEM, "fault fs: file too large");
	d = realloc(c->data, (size_t)ncap ? (size_t)ncap : 1);
	if (!d)
		return cellar__error(CELLAR_ENOMEM, "fault fs: out of memory");
	c->data = d;
	c->cap = ncap;
	return CELLAR_OK;
}

/* Apply one logged write or truncate to c. */
static int cut_apply(struct cut_file *c, const struct fault_wop *w, size_t n)
{
	uint64_t end = w->is_trunc ? w->off : w->off + n;
	int rc;

	if (w->is_trunc || end > c->len) {
		rc = cut_reserve(c, end);
		if (rc != CELLAR_OK)
			return rc;
		if (end > c->len)
			memset(c->data + c->len, 0, (size_t)(end - c->len));
		if (w->is_trunc || end > c->len)
			c->len = end;
	}
	if (!w->is_trunc && n)
		memcpy(c->data + w->off, w->data, n);
	return CELLAR_OK;
}

/*
 * The durable content of c->ino: its snapshot plus a seeded choice of the
 * logged changes (none with seed 0), or, for a clean ino, what the base
 * holds under its current name.
 */
static int cut_build(struct fault_fs *ff, struct cut_file *c, uint64_t *rng,
                     int keep_some)
{
	struct fault_ino *ino = c->ino;
	int rc;

	if (!ino->has_snap) {
		for (size_t i = 0; i < ff->npaths; i++)
			if (ff->paths[i]->cur == ino) {
				rc = read_path(ff->base, ff->paths[i]->path, &c->data,
				               &c->len);
				c->cap = c->len;
				return rc;
			}
		return cellar__error(CELLAR_EIO, "fault fs: lost track of a file");
	}
	rc = cut_reserve(c, ino->snap_len);
	if (rc != CELLAR_OK)
		return rc;
	if (ino->snap_len)
		memcpy(c->data, ino->snap, (size_t)ino->snap_len);
	c->len = ino->snap_len;
	for (size_t i = 0; keep_some && i < ino->nops; i++) {
		const struct fault_wop *w = &ino->ops[i];
		uint64_t pick = splitmix(rng) % 3;
		size_t n = w->len;

		if (pick == 2)
			continue; /* dropped */
		if (pick == 1 && !w->is_trunc) {
			/* torn at a sector boundary strictly inside the write */
			uint64_t first = (w->off / 512 + 1) * 512;
			uint64_t last = w->len ? (w->off + w->len - 1) / 512 * 512 : 0;
			if (!w->len || first > last)
				continue;
			uint64_t b = first + splitmix(rng) % ((last - first) / 512 + 1) *
			                     512;
			n = (size_t)(b - w->off);
		}
		rc = cut_apply(c, w, n);
		if (rc != CELLAR_OK)
			return rc;
	}
	return CELLAR_OK;
}

static int cut_write(struct fault_fs *ff, const char *path,
                     const struct cut_file *c)
{
	cellar_fs *b = ff->base;
	cellar_file *f = NULL;
	int rc;

	rc = b->open(b, path, CELLAR_FS_READ | CELLAR_FS_WRITE | CELLAR_FS_CREATE,
	             &f);
	if (rc != CELLAR_OK)
		goto fail;
	if (c->len)
		rc = b->write_at(b, f, 0, c->data, (size_t)c->len);
	if (rc == CELLAR_OK)
		rc = b->truncate(b, f, c->len);
fail:
	if (f) {
		int crc = b->close(b, f);
		if (rc == CELLAR_OK)
			rc = crc;
	}
	return rc;
}

int fault_fs_power_cut(cellar_fs *fs, uint64_t seed)
{
	struct fault_fs *ff = fault_of(fs);
	struct cut_file *cuts = NULL;
	size_t ncuts = 0;
	uint64_t rng = seed;
	int rc = CELLAR_OK;

	if (!ff)
		return cellar__error(CELLAR_EINVAL, "power cut: not a fault fs");
	pthread_mutex_lock(&ff->mu);
	if (ff->open_files || ff->nmaps) {
		rc = cellar__error(CELLAR_EINVAL, "power cut: %zu files and %zu "
		                   "mappings still open", ff->open_files, ff->nmaps);
		goto fail;
	}
	/* 1. Build every durable content before touching the base. */
	for (struct fault_ino *ino = ff->inos; ino; ino = ino->next) {
		if (!ino_durable(ff, ino))
			continue;
		ncuts++;
	}
	cuts = calloc(ncuts + 1, sizeof *cuts);
	if (!cuts) {
		rc = cellar__error(CELLAR_ENOMEM, "power cut: out of memory");
		goto fail;
	}
	ncuts = 0;
	for (struct fault_ino *ino = ff->inos; ino; ino = ino->next) {
		if (!ino_durable(ff, ino))
			continue;
		cuts[ncuts].ino = ino;
		rc = cut_build(ff, &cuts[ncuts++], &rng, seed != 0);
		if (rc != CELLAR_OK)
			goto fail;
	}
	/* 2. Put every touched name back to its durable state. */
	for (size_t i = 0; i < ff->npaths; i++) {
		struct fault_path *fp = ff->paths[i];

		if (!fp->dur) {
			if (fp->cur) {
				rc = ff->base->remove(ff->base, fp->path);
				if (rc != CELLAR_OK)
					goto fail;
			}
			continue;
		}
		if (fp->dur == fp->cur && !fp->dur->has_snap)
			continue; /* clean and in place */
		for (size_t j = 0; j < ncuts; j++)
			if (cuts[j].ino == fp->dur) {
				rc = cut_write(ff, fp->path, &cuts[j]);
				break;
			}
		if (rc != CELLAR_OK)
			goto fail;
	}
	/* 3. The base now is the durable state: start afresh. */
	model_clear(ff);
	ff->crashed = 0;
	ff->crash_nth = 0;
	ff->tear_nth = 0;
	memset(ff->fail, 0, sizeof ff->fail);
fail:
	for (size_t i = 0; cuts && i < ncuts; i++)
		free(cuts[i].data);
	free(cuts);
	pthread_mutex_unlock(&ff->mu);
	return rc;
}

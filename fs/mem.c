/*
 * mem.c - the in-memory file system, for tests and fuzzing.
 *
 * Owns a flat table of entries (path -> directory or file node) guarded by
 * one mutex; every operation, including read_at and write_at, takes it, so
 * the table and file contents are safe to use from several threads.
 *
 * Behaviour worth knowing:
 * - Directories are real: a file needs its parent directory (mkdir), else
 *   CELLAR_ENOENT.  The root ("/", "" or ".") always exists.  list() gives
 *   direct children only.  A directory can be renamed onto a name that does
 *   not exist, exchanged with another (exchange) and removed when empty
 *   (rmdir); remove() on one gives CELLAR_EIO (as unlink() would).
 * - write_at and truncate on a file opened without CELLAR_FS_WRITE give
 *   CELLAR_EINVAL.  Opening a directory gives CELLAR_EIO.
 * - A removed or replaced file lives on for handles and mappings still open
 *   to it, like an unlinked POSIX file.
 * - Files grow up to MEM_MAX_SIZE (1 TiB); beyond that CELLAR_EIO.
 * - map(len) reserves a buffer of at least len bytes and returns it: later
 *   write_at below len is visible at once, and the buffer never moves while
 *   a mapping of the file is live.  Hence, while mapped, a write_at or
 *   truncate that needs more than the reserved capacity fails with
 *   CELLAR_ENOMEM, and so does a second, longer map().  A map of 64 KiB or
 *   more reserves 5 GiB of address space (more than a segment file can
 *   hold), so that a segment keeps growing while several handles map it.  Bytes past the size read as zeros.
 *   map(len 0) gives CELLAR_EINVAL.  unmap() finds the mapping by address
 *   and length; its file argument is ignored and may be closed.
 * - resident reports every byte as in memory, and lock_mem/unlock_mem
 *   succeed without doing anything: the files are this process's memory.
 * - sync and sync_dir do nothing.  lock() uses an in-process flag on the
 *   file: a second lock() gives CELLAR_ELOCKED until unlock().
 *
 * It must not touch the disk: its only direct system calls are the
 * anonymous mmap/munmap behind large file buffers (zalloc).  It knows nothing of cellar's files
 * or formats and, like all of fs/, includes nothing from src/.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "error.h"
#include "fs_util.h"

#define MEM_MAX_SIZE ((uint64_t)1 << 40)
/* Mappings of at least MEM_MAP_GROW_MIN reserve MEM_MAP_ROOM (see map). */
#define MEM_MAP_GROW_MIN ((uint64_t)64 << 10)
#define MEM_MAP_ROOM ((uint64_t)5 << 30)


/*
 * Zeroed file buffers.  Large ones (a mapped segment reserves its whole
 * maximum size) come straight from anonymous mmap: the pages stay untouched
 * until written, whatever malloc does (glibc fills large calloc blocks when
 * MALLOC_PERTURB_ is set, as meson's test runner sets it).
 */
#define ZALLOC_MMAP_MIN (1u << 20)

static void *zalloc(size_t n)
{
	if (n < ZALLOC_MMAP_MIN)
		return calloc(1, n);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void zfree(void *p, size_t n)
{
	if (!p)
		return;
	if (n < ZALLOC_MMAP_MIN)
		free(p);
	else
		munmap(p, n);
}

/* A file's contents; shared by its entry, open handles and mappings. */
struct mem_node {
	unsigned char *data; /* cap bytes; [size, cap) are always zero */
	uint64_t size;
	size_t cap;
	unsigned refs; /* entry + handles + mappings */
	unsigned maps; /* live mappings: data must not move */
	int locked;
};

struct mem_entry {
	char *path;
	struct mem_node *node; /* NULL for a directory */
};

struct mem_mapping {
	const void *addr;
	uint64_t len;
	struct mem_node *node;
};

struct mem_fs {
	pthread_mutex_t mu;
	struct mem_entry *ents;
	size_t nents, cap_ents;
	struct mem_mapping *maps;
	size_t nmaps, cap_maps;
};

struct mem_file {
	struct mem_node *node;
	int flags;
};

static struct mem_fs *mem_of(cellar_fs *fs)
{
	return fs->ctx;
}

static struct mem_file *mem_file_of(cellar_file *f)
{
	return (struct mem_file *)(void *)f;
}

static void node_unref(struct mem_node *n)
{
	if (n && --n->refs == 0) {
		zfree(n->data, n->cap);
		free(n);
	}
}

static struct mem_entry *find(struct mem_fs *m, const char *path)
{
	for (size_t i = 0; i < m->nents; i++)
		if (strcmp(m->ents[i].path, path) == 0)
			return &m->ents[i];
	return NULL;
}

/* Is there a directory dir (given as len bytes of a path)? */
static int dir_exists(struct mem_fs *m, const char *dir, size_t len)
{
	if (len == 0)
		return 1; /* the root */
	for (size_t i = 0; i < m->nents; i++) {
		struct mem_entry *e = &m->ents[i];
		if (!e->node && strlen(e->path) == len &&
		    memcmp(e->path, dir, len) == 0)
			return 1;
	}
	return 0;
}

static int parent_exists(struct mem_fs *m, const char *path)
{
	return dir_exists(m, path, fs__parent_len(path));
}

/* Add an entry; takes ownership of node's entry reference on success. */
static int add_entry(struct mem_fs *m, const char *path, struct mem_node *node)
{
	char *p;

	if (m->nents == m->cap_ents) {
		size_t ncap = m->cap_ents ? 2 * m->cap_ents : 16;
		struct mem_entry *ne = realloc(m->ents, ncap * sizeof *ne);
		if (!ne)
			return cellar__error(CELLAR_ENOMEM, "mem fs: out of memory");
		m->ents = ne;
		m->cap_ents = ncap;
	}
	p = strdup(path);
	if (!p)
		return cellar__error(CELLAR_ENOMEM, "mem fs: out of memory");
	m->ents[m->nents].path = p;
	m->ents[m->nents].node = node;
	m->nents++;
	return CELLAR_OK;
}

/* Drop entry e (keeps the others in creation order). */
static void del_entry(struct mem_fs *m, struct mem_entry *e)
{
	size_t i = (size_t)(e - m->ents);

	free(e->path);
	node_unref(e->node);
	memmove(&m->ents[i], &m->ents[i + 1],
	        (m->nents - i - 1) * sizeof m->ents[0]);
	m->nents--;
}

/*
 * Make n's buffer hold at least need bytes.  The buffer moves only when no
 * mapping is live; fresh memory comes from calloc so that a large
 * reservation costs no memory until it is written.
 */
static int reserve(struct mem_node *n, uint64_t need, const char *op)
{
	unsigned char *d;
	uint64_t ncap;

	if (need <= n->cap)
		return CELLAR_OK;
	if (need > MEM_MAX_SIZE)
		return cellar__error(CELLAR_EIO, "%s: file would exceed the mem fs "
		                     "limit of 1 TiB", op);
	if (n->maps > 0)
		return cellar__error(CELLAR_ENOMEM, "%s: mem fs file is mapped and "
		                     "would have to grow past the mapped length "
		                     "(%zu bytes)", op, n->cap);
	ncap = (uint64_t)n->cap * 2;
	if (ncap < need)
		ncap = need;
	if (ncap < 64)
		ncap = 64;
	if (ncap > MEM_MAX_SIZE)
		ncap = MEM_MAX_SIZE;
	if (ncap > SIZE_MAX)
		return cellar__error(CELLAR_ENOMEM, "%s: out of memory", op);
	d = zalloc((size_t)ncap);
	if (!d && ncap > need) {
		ncap = need;
		d = zalloc((size_t)ncap);
	}
	if (!d)
		return cellar__error(CELLAR_ENOMEM, "%s: out of memory", op);
	if (n->size)
		memcpy(d, n->data, (size_t)n->size);
	zfree(n->data, n->cap);
	n->data = d;
	n->cap = (size_t)ncap;
	return CELLAR_OK;
}

static int mem_open(cellar_fs *fs, const char *path, int flags,
                    cellar_file **out)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_file *mf = malloc(sizeof *mf);
	struct mem_node *node = NULL;
	struct mem_entry *e;
	int rc;

	*out = NULL;
	if (!mf)
		return cellar__error(CELLAR_ENOMEM, "open %s: out of memory", path);
	pthread_mutex_lock(&m->mu);
	e = find(m, path);
	if (e && !e->node) {
		rc = cellar__error(CELLAR_EIO, "open %s: is a directory", path);
		goto fail;
	}
	if (e && (flags & CELLAR_FS_CREATE) && (flags & CELLAR_FS_EXCL)) {
		rc = cellar__error(CELLAR_EEXIST, "open %s: file exists", path);
		goto fail;
	}
	if (!e) {
		if (!(flags & CELLAR_FS_CREATE)) {
			rc = cellar__error(CELLAR_ENOENT, "open %s: no such file", path);
			goto fail;
		}
		if (!parent_exists(m, path)) {
			rc = cellar__error(CELLAR_ENOENT,
			                   "open %s: no such directory", path);
			goto fail;
		}
		node = calloc(1, sizeof *node);
		if (!node) {
			rc = cellar__error(CELLAR_ENOMEM, "open %s: out of memory", path);
			goto fail;
		}
		node->refs = 1;
		rc = add_entry(m, path, node);
		if (rc != CELLAR_OK)
			goto fail;
		e = &m->ents[m->nents - 1];
		node = NULL;
	}
	e->node->refs++;
	mf->node = e->node;
	mf->flags = flags;
	pthread_mutex_unlock(&m->mu);
	*out = (cellar_file *)(void *)mf;
	return CELLAR_OK;
fail:
	pthread_mutex_unlock(&m->mu);
	free(node);
	free(mf);
	return rc;
}

static int mem_close(cellar_fs *fs, cellar_file *f)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_file *mf = mem_file_of(f);

	if (!mf)
		return CELLAR_OK;
	pthread_mutex_lock(&m->mu);
	node_unref(mf->node);
	pthread_mutex_unlock(&m->mu);
	free(mf);
	return CELLAR_OK;
}

static int mem_read_at(cellar_fs *fs, cellar_file *f, uint64_t off, void *buf,
                       size_t len, size_t *got)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_node *n = mem_file_of(f)->node;
	size_t k = 0;

	pthread_mutex_lock(&m->mu);
	if (off < n->size) {
		uint64_t avail = n->size - off;
		k = avail < len ? (size_t)avail : len;
		memcpy(buf, n->data + off, k);
	}
	pthread_mutex_unlock(&m->mu);
	*got = k;
	return CELLAR_OK;
}

static int mem_write_at(cellar_fs *fs, cellar_file *f, uint64_t off,
                        const void *buf, size_t len)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_file *mf = mem_file_of(f);
	struct mem_node *n = mf->node;
	int rc;

	if (!(mf->flags & CELLAR_FS_WRITE))
		return cellar__error(CELLAR_EINVAL,
		                     "write: mem fs file not opened for writing");
	if (off > MEM_MAX_SIZE || len > MEM_MAX_SIZE - off)
		return cellar__error(CELLAR_EIO, "write: file would exceed the mem "
		                     "fs limit of 1 TiB");
	if (len == 0)
		return CELLAR_OK;
	pthread_mutex_lock(&m->mu);
	rc = reserve(n, off + len, "write");
	if (rc == CELLAR_OK) {
		memcpy(n->data + off, buf, len);
		if (off + len > n->size)
			n->size = off + len;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_size(cellar_fs *fs, cellar_file *f, uint64_t *out)
{
	struct mem_fs *m = mem_of(fs);

	pthread_mutex_lock(&m->mu);
	*out = mem_file_of(f)->node->size;
	pthread_mutex_unlock(&m->mu);
	return CELLAR_OK;
}

static int mem_truncate(cellar_fs *fs, cellar_file *f, uint64_t size)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_file *mf = mem_file_of(f);
	struct mem_node *n = mf->node;
	int rc = CELLAR_OK;

	if (!(mf->flags & CELLAR_FS_WRITE))
		return cellar__error(CELLAR_EINVAL,
		                     "truncate: mem fs file not opened for writing");
	pthread_mutex_lock(&m->mu);
	if (size < n->size)
		memset(n->data + size, 0, (size_t)(n->size - size));
	else
		rc = reserve(n, size, "truncate");
	if (rc == CELLAR_OK)
		n->size = size;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_sync(cellar_fs *fs, cellar_file *f)
{
	(void)fs;
	(void)f;
	return CELLAR_OK;
}

static int mem_map(cellar_fs *fs, cellar_file *f, uint64_t len, int hint,
                   const void **out)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_node *n = mem_file_of(f)->node;
	int rc;

	(void)hint;
	*out = NULL;
	if (len == 0)
		return cellar__error(CELLAR_EINVAL, "map: length 0");
	pthread_mutex_lock(&m->mu);
	/* A file mapped at segment sizes may still grow (a writer appends,
	 * while a read-only handle maps it too): reserve address space for
	 * the largest segment file at once, so that the buffer never has to
	 * move under a live mapping.  Untouched, it costs no memory. */
	rc = reserve(n, len >= MEM_MAP_GROW_MIN && len < MEM_MAP_ROOM
	                    ? MEM_MAP_ROOM : len, "map");
	if (rc != CELLAR_OK)
		goto fail;
	if (m->nmaps == m->cap_maps) {
		size_t ncap = m->cap_maps ? 2 * m->cap_maps : 16;
		struct mem_mapping *nm = realloc(m->maps, ncap * sizeof *nm);
		if (!nm) {
			rc = cellar__error(CELLAR_ENOMEM, "map: out of memory");
			goto fail;
		}
		m->maps = nm;
		m->cap_maps = ncap;
	}
	m->maps[m->nmaps].addr = n->data;
	m->maps[m->nmaps].len = len;
	m->maps[m->nmaps].node = n;
	m->nmaps++;
	n->maps++;
	n->refs++;
	*out = n->data;
	pthread_mutex_unlock(&m->mu);
	return CELLAR_OK;
fail:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_unmap(cellar_fs *fs, cellar_file *f, const void *addr,
                     uint64_t len)
{
	struct mem_fs *m = mem_of(fs);
	int found = 0;

	(void)f;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nmaps; i++) {
		struct mem_mapping *mp = &m->maps[i];
		if (mp->addr == addr && mp->len == len) {
			mp->node->maps--;
			node_unref(mp->node);
			m->maps[i] = m->maps[--m->nmaps];
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	if (!found)
		return cellar__error(CELLAR_EINVAL, "unmap: no such mapping");
	return CELLAR_OK;
}

static int mem_resident(cellar_fs *fs, cellar_file *f, const void *addr,
                        uint64_t len, uint64_t *bytes)
{
	(void)fs, (void)f, (void)addr;
	*bytes = len;
	return CELLAR_OK;
}

static int mem_lock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                        uint64_t len)
{
	(void)fs, (void)f;
	if (!addr || len == 0)
		return cellar__error(CELLAR_EINVAL, "lock: bad range");
	return CELLAR_OK;
}

static int mem_unlock_mem(cellar_fs *fs, cellar_file *f, const void *addr,
                          uint64_t len)
{
	return mem_lock_mem(fs, f, addr, len);
}

static int mem_remove(cellar_fs *fs, const char *path)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_entry *e;
	int rc = CELLAR_OK;

	pthread_mutex_lock(&m->mu);
	e = find(m, path);
	if (!e)
		rc = cellar__error(CELLAR_ENOENT, "remove %s: no such file", path);
	else if (!e->node)
		rc = cellar__error(CELLAR_EIO, "remove %s: is a directory", path);
	else
		del_entry(m, e);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int move_trees(struct mem_fs *m, const char *a, const char *b,
                      const char *c, const char *d);

static int mem_rename(cellar_fs *fs, const char *from, const char *to)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_entry *src, *dst;
	char *p = NULL;
	int rc = CELLAR_OK;

	pthread_mutex_lock(&m->mu);
	src = find(m, from);
	dst = find(m, to);
	if (!src) {
		rc = cellar__error(CELLAR_ENOENT, "rename %s: no such file", from);
	} else if (!src->node) {
		rc = dst ? cellar__error(CELLAR_EEXIST, "rename %s: %s exists", from,
		                         to)
		         : !parent_exists(m, to)
		               ? cellar__error(CELLAR_ENOENT,
		                               "rename %s: no such directory", to)
		               : move_trees(m, from, to, NULL, NULL);
	} else if (!parent_exists(m, to)) {
		rc = cellar__error(CELLAR_ENOENT, "rename %s: no such directory",
		                   to);
	} else if (dst && !dst->node) {
		rc = cellar__error(CELLAR_EIO, "rename %s: is a directory", to);
	} else if (dst == src) {
		/* same name: nothing to do */
	} else if (dst) {
		/* Replace: the old target's node loses its entry. */
		node_unref(dst->node);
		dst->node = src->node;
		src->node = NULL;
		free(src->path);
		src->path = NULL;
		memmove(src, src + 1, (size_t)(m->ents + m->nents - src - 1) *
		        sizeof *src);
		m->nents--;
	} else {
		p = strdup(to);
		if (!p) {
			rc = cellar__error(CELLAR_ENOMEM, "rename: out of memory");
		} else {
			free(src->path);
			src->path = p;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* Is path the tree root or inside it? */
static int in_tree(const char *path, const char *root)
{
	size_t n = strlen(root);

	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * Move every entry of the tree at a to b and, if c is not NULL, every
 * entry of the tree at c to d, all at once (new names are made first, so
 * that running out of memory changes nothing).  Caller holds the mutex.
 */
static int move_trees(struct mem_fs *m, const char *a, const char *b,
                      const char *c, const char *d)
{
	char **np = calloc(m->nents + 1, sizeof *np);

	if (!np)
		return cellar__error(CELLAR_ENOMEM, "mem fs: out of memory");
	for (size_t i = 0; i < m->nents; i++) {
		const char *p = m->ents[i].path, *from = NULL, *to = NULL;
		if (in_tree(p, a))
			from = a, to = b;
		else if (c && in_tree(p, c))
			from = c, to = d;
		if (!from)
			continue;
		size_t fl = strlen(from), tl = strlen(to), rest = strlen(p) - fl;
		if (!(np[i] = malloc(tl + rest + 1))) {
			for (size_t j = 0; j <= i; j++)
				free(np[j]);
			free(np);
			return cellar__error(CELLAR_ENOMEM, "mem fs: out of memory");
		}
		memcpy(np[i], to, tl);
		memcpy(np[i] + tl, p + fl, rest + 1);
	}
	for (size_t i = 0; i < m->nents; i++) {
		if (np[i]) {
			free(m->ents[i].path);
			m->ents[i].path = np[i];
		}
	}
	free(np);
	return CELLAR_OK;
}

static int mem_exchange(cellar_fs *fs, const char *a, const char *b)
{
	struct mem_fs *m = mem_of(fs);
	int rc;

	pthread_mutex_lock(&m->mu);
	if (!find(m, a) || !find(m, b))
		rc = cellar__error(CELLAR_ENOENT, "exchange %s %s: no such file", a,
		                   b);
	else if (in_tree(a, b) || in_tree(b, a))
		rc = cellar__error(CELLAR_EINVAL, "exchange %s %s: nested", a, b);
	else
		rc = move_trees(m, a, b, b, a);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_link(cellar_fs *fs, const char *from, const char *to)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_entry *e;
	int rc;

	pthread_mutex_lock(&m->mu);
	e = find(m, from);
	if (!e)
		rc = cellar__error(CELLAR_ENOENT, "link %s: no such file", from);
	else if (!e->node)
		rc = cellar__error(CELLAR_EACCES, "link %s: is a directory", from);
	else if (find(m, to))
		rc = cellar__error(CELLAR_EEXIST, "link %s: file exists", to);
	else if (!parent_exists(m, to))
		rc = cellar__error(CELLAR_ENOENT, "link %s: no such directory", to);
	else {
		struct mem_node *node = e->node; /* add_entry may move e */
		if ((rc = add_entry(m, to, node)) == CELLAR_OK)
			node->refs++;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_rmdir(cellar_fs *fs, const char *path)
{
	struct mem_fs *m = mem_of(fs);
	struct mem_entry *e;
	int rc = CELLAR_OK;

	pthread_mutex_lock(&m->mu);
	e = find(m, path);
	if (!e)
		rc = cellar__error(CELLAR_ENOENT, "rmdir %s: no such directory", path);
	else if (e->node)
		rc = cellar__error(CELLAR_EIO, "rmdir %s: not a directory", path);
	for (size_t i = 0; rc == CELLAR_OK && i < m->nents; i++)
		if (&m->ents[i] != e && in_tree(m->ents[i].path, path))
			rc = cellar__error(CELLAR_EIO, "rmdir %s: not empty", path);
	if (rc == CELLAR_OK)
		del_entry(m, e);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int mem_list(cellar_fs *fs, const char *dir,
                    int (*cb)(const char *name, void *ctx), void *ctx)
{
	struct mem_fs *m = mem_of(fs);
	size_t dlen = fs__is_root(dir) ? 0 : strlen(dir);
	char **names = NULL;
	size_t n = 0;
	int rc = CELLAR_OK;

	pthread_mutex_lock(&m->mu);
	if (!dir_exists(m, dir, dlen)) {
		rc = cellar__error(CELLAR_ENOENT, "list %s: no such directory", dir);
		goto fail;
	}
	names = calloc(m->nents + 1, sizeof *names);
	if (!names) {
		rc = cellar__error(CELLAR_ENOMEM, "list %s: out of memory", dir);
		goto fail;
	}
	for (size_t i = 0; i < m->nents; i++) {
		const char *p = m->ents[i].path;
		size_t pl = fs__parent_len(p);
		if (pl != dlen || memcmp(p, dir, dlen) != 0)
			continue;
		names[n] = strdup(p + pl + (p[pl] == '/'));
		if (!names[n]) {
			rc = cellar__error(CELLAR_ENOMEM, "list %s: out of memory", dir);
			goto fail;
		}
		n++;
	}
	pthread_mutex_unlock(&m->mu);
	/* Call back without the lock: cb may use the file system. */
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cb(names[i], ctx);
	free_names(names, n);
	return rc;
fail:
	pthread_mutex_unlock(&m->mu);
	free_names(names, n);
	return rc;
}

static int mem_mkdir(cellar_fs *fs, const char *path)
{
	struct mem_fs *m = mem_of(fs);
	int rc;

	pthread_mutex_lock(&m->mu);
	if (fs__is_root(path) || find(m, path))
		rc = cellar__error(CELLAR_EEXIST, "mkdir %s: file exists", path);
	else if (!parent_exists(m, path))
		rc = cellar__error(CELLAR_ENOENT, "mkdir %s: no such directory",
		                   path);
	else
		rc = add_entry(m, path, NULL);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int mem_sync_dir(cellar_fs *fs, const char *path)
{
	struct mem_fs *m = mem_of(fs);
	int ok;

	pthread_mutex_lock(&m->mu);
	ok = fs__is_root(path) || dir_exists(m, path, strlen(path));
	pthread_mutex_unlock(&m->mu);
	if (!ok)
		return cellar__error(CELLAR_ENOENT, "sync_dir %s: no such directory",
		                     path);
	return CELLAR_OK;
}

static int mem_lock(cellar_fs *fs, const char *path, cellar_file **out)
{
	struct mem_fs *m = mem_of(fs);
	cellar_file *f = NULL;
	int rc, held;

	*out = NULL;
	rc = mem_open(fs, path, CELLAR_FS_READ | CELLAR_FS_WRITE |
	              CELLAR_FS_CREATE, &f);
	if (rc != CELLAR_OK)
		goto fail;
	pthread_mutex_lock(&m->mu);
	held = mem_file_of(f)->node->locked;
	mem_file_of(f)->node->locked = 1;
	pthread_mutex_unlock(&m->mu);
	if (held) {
		rc = cellar__error(CELLAR_ELOCKED, "lock %s: held by another owner",
		                   path);
		goto fail;
	}
	*out = f;
	return CELLAR_OK;
fail:
	mem_close(fs, f);
	return rc;
}

static int mem_unlock(cellar_fs *fs, cellar_file *lock)
{
	struct mem_fs *m = mem_of(fs);

	if (!lock)
		return CELLAR_OK;
	pthread_mutex_lock(&m->mu);
	mem_file_of(lock)->node->locked = 0;
	pthread_mutex_unlock(&m->mu);
	return mem_close(fs, lock);
}

static void mem_destroy(cellar_fs *fs)
{
	struct mem_fs *m = mem_of(fs);

	if (m) {
		for (size_t i = 0; i < m->nents; i++) {
			free(m->ents[i].path);
			node_unref(m->ents[i].node);
		}
		/* Mappings the user forgot: their nodes go with them. */
		for (size_t i = 0; i < m->nmaps; i++)
			node_unref(m->maps[i].node);
		free(m->ents);
		free(m->maps);
		pthread_mutex_destroy(&m->mu);
		free(m);
	}
	free(fs);
}

int cellar_fs_mem_new(cellar_fs **out)
{
	cellar_fs *fs = NULL;
	struct mem_fs *m = NULL;

	if (!out)
		return cellar__error(CELLAR_EINVAL, "cellar_fs_mem_new: out is NULL");
	*out = NULL;
	fs = calloc(1, sizeof *fs);
	m = calloc(1, sizeof *m);
	if (!fs || !m)
		goto fail;
	if (pthread_mutex_init(&m->mu, NULL) != 0)
		goto fail;
	fs->version = CELLAR_FS_VERSION;
	fs->ctx = m;
	fs->open = mem_open;
	fs->close = mem_close;
	fs->read_at = mem_read_at;
	fs->write_at = mem_write_at;
	fs->size = mem_size;
	fs->truncate = mem_truncate;
	fs->sync = mem_sync;
	fs->map = mem_map;
	fs->unmap = mem_unmap;
	fs->remove = mem_remove;
	fs->rename = mem_rename;
	fs->list = mem_list;
	fs->mkdir = mem_mkdir;
	fs->sync_dir = mem_sync_dir;
	fs->lock = mem_lock;
	fs->unlock = mem_unlock;
	fs->destroy = mem_destroy;
	fs->resident = mem_resident;
	fs->lock_mem = mem_lock_mem;
	fs->unlock_mem = mem_unlock_mem;
	fs->exchange = mem_exchange;
	fs->rmdir = mem_rmdir;
	fs->link = mem_link;
	*out = fs;
	return CELLAR_OK;
fail:
	free(m);
	free(fs);
	return cellar__error(CELLAR_ENOMEM, "mem fs: out of memory");
}

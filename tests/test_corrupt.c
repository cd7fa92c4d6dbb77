/*
 * test_corrupt.c - damaged files: a store opens or refuses cleanly, and
 * never gives wrong bytes.
 *
 * A store of a few thousand keys (puts, overwrites, deletes; segments of
 * 64 KiB, so several of them; a third of the puts expiring, in 2100, so
 * that expiring records and their expiry bytes are damaged too) is built
 * and closed cleanly, and its files are kept.  Then, for many positions of every file - meta, index (header
 * fields, buckets, chunk checksums, segment table, last bytes), each segment
 * (header, record headers, keys, values, last bytes) - one byte is flipped,
 * or 16 bytes zeroed, or the file truncated there; the store is restored
 * between cases.  posix and mmap stores are edited with stdio, mem stores
 * through the file-system table.  Then:
 *
 *   - cellar_open succeeds, or fails with CELLAR_ECORRUPT or CELLAR_EVERSION;
 *   - if it opens: every get gives the key's exact final value (or
 *     ENOTFOUND for a deleted key), except that a key whose final record was
 *     damaged may give ENOTFOUND, CELLAR_ECORRUPT or an older value of its
 *     own, and damage to the index may give CELLAR_ECORRUPT - never bytes
 *     that were not written for that key;
 *   - a damaged record does not hide the records after it in its segment
 *     (the cases run with the index intact and with the index removed, so
 *     that recovery has to step over the damage);
 *   - iteration ends, gives every key get found with the same value, and
 *     count equals the items when nothing reported damage;
 *   - the store takes new writes, and a second open gives the same answers.
 *
 * Runs once per file system, each test within a time budget.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cellar.h"
#include "common.h"
#include "endian.h"
#include "record.h"

#define NKEYS 3000
#define VMIN 40
#define VMAX 160
#define SEG_SIZE (64u << 10)
#define HASH_SEED 0xc0ffeeull
/* Wall-clock budget of each test, in seconds. */
#define BUDGET_S 12.0

static char where[300];
static char msgbuf[512];

static const char *msg(const char *fmt, ...) CR_FORMAT(printf, 1, 2);
static const char *msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
	va_end(ap);
	return msgbuf;
}

#define CHECK(cond, ...) cr_assert((cond), "%s: %s", where, msg(__VA_ARGS__))

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- keys and values ---------------------------------------------------- */

static size_t key_of(unsigned i, char *out)
{
	int n = snprintf(out, 32, "ck%05u", i);
	size_t pad = i % 7;

	memset(out + n, 'a' + (int)(i % 26), pad);
	return (size_t)n + pad;
}

static long key_num(const void *k, size_t kn)
{
	char buf[32], want[32];
	unsigned i;

	if (kn < 7 || kn >= sizeof buf)
		return -1;
	memcpy(buf, k, kn);
	buf[kn] = '\0';
	if (sscanf(buf, "ck%5u", &i) != 1 || i >= NKEYS)
		return -1;
	if (key_of(i, want) != kn || memcmp(want, k, kn) != 0)
		return -1;
	return (long)i;
}

/* Version v (>= 1) of key i: "k<i>.v<v>|" then bytes depending on both. */
static size_t val_of(unsigned i, unsigned v, unsigned char *out)
{
	uint64_t s = (uint64_t)i * 0x9e3779b97f4a7c15ull ^ v;
	size_t len = VMIN + (size_t)(tc_rand(&s) % (VMAX - VMIN + 1));
	int n = snprintf((char *)out, 32, "k%u.v%u|", i, v);

	for (size_t j = (size_t)n; j < len; j++)
		out[j] = (unsigned char)tc_rand(&s);
	return len;
}

static unsigned val_version(unsigned i, const void *v, size_t vn)
{
	char buf[40];
	unsigned ki, ver;
	size_t n = vn < sizeof buf - 1 ? vn : sizeof buf - 1;

	memcpy(buf, v, n);
	buf[n] = '\0';
	if (sscanf(buf, "k%u.v%u|", &ki, &ver) != 2 || ki != i)
		return 0;
	return ver;
}

/* ---- the pristine store ------------------------------------------------- */

enum { F_META, F_INDEX, F_SEG, F_OTHER };

typedef struct sfile {
	char name[64];
	int kind;
	unsigned char *data;
	size_t len;
} sfile;

typedef struct rec {
	size_t file;
	uint64_t off, total;
	unsigned key, ver; /* ver 0: a tombstone */
} rec;

#define ABSENT 0u
#define POST_VER 100000u /* versions written after the damage */

typedef struct pristine {
	cellar_fs *fs;
	char *dir;
	bool direct; /* posix/mmap: edit the files with stdio */
	sfile *files;
	size_t nfiles;
	rec *recs;
	size_t nrecs;
	unsigned nver[NKEYS];   /* versions written: 1..nver */
	unsigned final[NKEYS];  /* final version, or ABSENT */
	long last_rec[NKEYS];   /* the key's newest record, or -1 */
	size_t newest_seg;      /* file index of the newest segment */
} pristine;

static int collect(const char *name, void *ctx)
{
	pristine *p = ctx;

	p->files = realloc(p->files, (p->nfiles + 1) * sizeof *p->files);
	cr_assert_not_null(p->files);
	sfile *f = &p->files[p->nfiles++];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	size_t n = strlen(name);
	f->kind = strcmp(name, "meta") == 0    ? F_META
	          : strcmp(name, "index") == 0 ? F_INDEX
	          : n > 4 && strcmp(name + n - 4, ".seg") == 0 ? F_SEG
	                                                        : F_OTHER;
	return 0;
}

static int cmp_files(const void *a, const void *b)
{
	return strcmp(((const sfile *)a)->name, ((const sfile *)b)->name);
}

static void path_of(const pristine *p, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", p->dir, name);
}

static void read_file(pristine *p, sfile *f)
{
	char path[4200];
	cellar_file *fh = NULL;
	uint64_t size = 0;
	size_t got = 0;

	path_of(p, f->name, path, sizeof path);
	cr_assert_eq(p->fs->open(p->fs, path, CELLAR_FS_READ, &fh), CELLAR_OK);
	cr_assert_eq(p->fs->size(p->fs, fh, &size), CELLAR_OK);
	f->len = (size_t)size;
	f->data = malloc(f->len ? f->len : 1);
	cr_assert_not_null(f->data);
	if (f->len)
		cr_assert_eq(p->fs->read_at(p->fs, fh, 0, f->data, f->len, &got),
		             CELLAR_OK);
	cr_assert_eq(got, f->len);
	p->fs->close(p->fs, fh);
}

/* Find every record of every segment, and each key's newest one. */
static void parse_segments(pristine *p)
{
	for (unsigned i = 0; i < NKEYS; i++)
		p->last_rec[i] = -1;
	for (size_t fi = 0; fi < p->nfiles; fi++) {
		const sfile *f = &p->files[fi];
		if (f->kind != F_SEG)
			continue;
		p->newest_seg = fi;
		for (uint64_t off = 32; off < f->len;) {
			record_header h;
			int rc = record_decode_header(f->data + off, f->len - off,
			                              f->len - off, &h);
			cr_assert_eq(rc, 0, "%s: no record at %llu", f->name,
			             (unsigned long long)off);
			const unsigned char *k = f->data + off + h.header_len;
			long key = key_num(k, h.key_len);
			cr_assert(key >= 0, "%s: foreign key at %llu", f->name,
			          (unsigned long long)off);
			p->recs = realloc(p->recs, (p->nrecs + 1) * sizeof *p->recs);
			cr_assert_not_null(p->recs);
			rec *r = &p->recs[p->nrecs];
			r->file = fi;
			r->off = off;
			r->total = h.total;
			r->key = (unsigned)key;
			r->ver = h.kind == RECORD_PUT
			             ? val_version((unsigned)key, k + h.key_len,
			                           h.val_len)
			             : 0;
			p->last_rec[key] = (long)p->nrecs++;
			off += h.total;
		}
	}
}

/* A put; expiring (in 2100, on the wall clock) when expiring is set. */
static int put_maybe_expiring(cellar_db *db, const char *key, size_t kn,
                              const unsigned char *val, size_t vn,
                              bool expiring)
{
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;

	po.expire_at = expiring ? 4102444800000ull : 0;
	return cellar_put_ex(db, key, kn, val, vn, &po);
}

static void build(pristine *p)
{
	static unsigned char val[VMAX + 1];
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	uint64_t rng = 1234;
	char key[32];

	memset(p, 0, sizeof *p);
	p->fs = tc_fs_new();
	p->dir = tc_dir_new();
	p->direct = strcmp(tc_fs_name(), "mem") != 0;
	o.flags = CELLAR_CREATE;
	o.fs = p->fs;
	o.max_segment_size = SEG_SIZE;
	o.hash_seed = HASH_SEED;
	cr_assert_eq(cellar_open(&db, p->dir, &o), CELLAR_OK);
	for (unsigned i = 0; i < NKEYS; i++) {
		p->final[i] = p->nver[i] = 1;
		cr_assert_eq(put_maybe_expiring(db, key, key_of(i, key), val,
		                                val_of(i, 1, val), i % 3 == 0),
		             CELLAR_OK);
	}
	for (int j = 0; j < 500; j++) { /* overwrites */
		unsigned i = (unsigned)(tc_rand(&rng) % NKEYS);
		unsigned v = ++p->nver[i];
		p->final[i] = v;
		cr_assert_eq(put_maybe_expiring(db, key, key_of(i, key), val,
		                                val_of(i, v, val), j % 3 == 1),
		             CELLAR_OK);
	}
	for (int j = 0; j < 300; j++) { /* deletes, some put again */
		unsigned i = (unsigned)(tc_rand(&rng) % NKEYS);
		if (p->final[i] == ABSENT)
			continue;
		p->final[i] = ABSENT;
		cr_assert_eq(cellar_delete(db, key, key_of(i, key)), CELLAR_OK);
		if (j % 5 == 0) {
			unsigned v = ++p->nver[i];
			p->final[i] = v;
			cr_assert_eq(cellar_put(db, key, key_of(i, key), val,
			                        val_of(i, v, val)), CELLAR_OK);
		}
	}
	cr_assert_eq(cellar_close(db), CELLAR_OK);

	cr_assert_eq(p->fs->list(p->fs, p->dir, collect, p), CELLAR_OK);
	qsort(p->files, p->nfiles, sizeof *p->files, cmp_files);
	size_t nseg = 0, nindex = 0, nmeta = 0;
	for (size_t i = 0; i < p->nfiles; i++) {
		read_file(p, &p->files[i]);
		nseg += p->files[i].kind == F_SEG;
		nindex += p->files[i].kind == F_INDEX;
		nmeta += p->files[i].kind == F_META;
	}
	cr_assert(nseg >= 4, "only %zu segments", nseg);
	cr_assert(nindex == 1 && nmeta == 1, "no index or meta file");
	parse_segments(p);
}

static void pristine_free(pristine *p)
{
	for (size_t i = 0; i < p->nfiles; i++)
		free(p->files[i].data);
	free(p->files);
	free(p->recs);
	cellar_fs_free(p->fs);
	tc_dir_free(p->dir);
}

/* ---- writing the damaged store ------------------------------------------ */

enum { D_FLIP, D_ZERO, D_TRUNC };
static const char *const damage_names[] = { "flip", "zero 16 bytes", "truncate" };

#define C_NO_INDEX 0x1 /* also remove the index: recovery must rebuild */
#define C_READONLY 0x2 /* open read-only */

typedef struct dcase {
	size_t file;
	int mode;
	uint64_t pos;
	unsigned flags;
} dcase;

/* Names in the store directory now. */
struct names {
	char (*v)[64];
	size_t n;
};

static int collect_name(const char *name, void *ctx)
{
	struct names *nl = ctx;

	nl->v = realloc(nl->v, (nl->n + 1) * sizeof *nl->v);
	cr_assert_not_null(nl->v);
	snprintf(nl->v[nl->n++], 64, "%s", name);
	return 0;
}

static void remove_file(const pristine *p, const char *name)
{
	char path[4200];

	path_of(p, name, path, sizeof path);
	if (p->direct)
		cr_assert_eq(unlink(path), 0, "unlink %s", path);
	else
		cr_assert_eq(p->fs->remove(p->fs, path), CELLAR_OK);
}

static void write_file(const pristine *p, const char *name,
                       const unsigned char *data, size_t len)
{
	char path[4200];

	path_of(p, name, path, sizeof path);
	if (p->direct) {
		FILE *fp = fopen(path, "wb");
		cr_assert_not_null(fp, "fopen %s", path);
		cr_assert_eq(fwrite(data, 1, len, fp), len);
		cr_assert_eq(fclose(fp), 0);
		return;
	}
	cellar_fs *fs = p->fs;
	cellar_file *f = NULL;
	cr_assert_eq(fs->open(fs, path, CELLAR_FS_WRITE | CELLAR_FS_CREATE, &f),
	             CELLAR_OK);
	cr_assert_eq(fs->truncate(fs, f, 0), CELLAR_OK);
	if (len)
		cr_assert_eq(fs->write_at(fs, f, 0, data, len), CELLAR_OK);
	fs->close(fs, f);
}

/* Put the pristine store back, with the damage of c. */
static void restore(const pristine *p, const dcase *c)
{
	static unsigned char *buf;
	static size_t cap;
	struct names now = { NULL, 0 };

	cr_assert_eq(p->fs->list(p->fs, p->dir, collect_name, &now), CELLAR_OK);
	for (size_t i = 0; i < now.n; i++) {
		bool keep = false;
		for (size_t j = 0; j < p->nfiles && !keep; j++)
			keep = strcmp(now.v[i], p->files[j].name) == 0;
		if (!keep)
			remove_file(p, now.v[i]);
	}
	free(now.v);
	for (size_t j = 0; j < p->nfiles; j++) {
		const sfile *f = &p->files[j];
		if (j != c->file) {
			if (f->kind == F_INDEX && (c->flags & C_NO_INDEX)) {
				char path[4200];
				path_of(p, f->name, path, sizeof path);
				if (p->direct)
					unlink(path);
				else
					p->fs->remove(p->fs, path);
				continue;
			}
			write_file(p, f->name, f->data, f->len);
			continue;
		}
		if (cap < f->len + 16) {
			cap = f->len + 16;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		memcpy(buf, f->data, f->len);
		size_t len = f->len;
		if (c->mode == D_FLIP) {
			buf[c->pos] ^= 0x5a;
		} else if (c->mode == D_ZERO) {
			size_t n = len - c->pos < 16 ? len - (size_t)c->pos : 16;
			memset(buf + c->pos, 0, n);
		} else {
			len = (size_t)c->pos;
		}
		write_file(p, f->name, buf, len);
	}
}

/* ---- checking ----------------------------------------------------------- */

#define GOT_CORRUPT (~0u)

/* Is key i's final record touched by the damage? */
static bool affected(const pristine *p, const dcase *c, unsigned i)
{
	long r = p->last_rec[i];

	if (r < 0 || p->files[c->file].kind != F_SEG)
		return false;
	const rec *x = &p->recs[r];
	if (x->file != c->file)
		return false;
	uint64_t lo = c->pos, hi = c->mode == D_FLIP   ? c->pos + 1
	                           : c->mode == D_ZERO ? c->pos + 16
	                                               : UINT64_MAX;
	return x->off < hi && lo < x->off + x->total;
}

/*
 * Check what the store gives for key i (rc, and the value if OK) against
 * the rules; returns the version, ABSENT or GOT_CORRUPT.
 */
static unsigned check_key(const pristine *p, const dcase *c, unsigned i,
                          int rc, const void *v, size_t vn, unsigned post,
                          const char *how)
{
	static unsigned char want[VMAX + 1];
	bool hit = affected(p, c, i);
	bool index_damage = p->files[c->file].kind == F_INDEX;
	unsigned fin = post ? post : p->final[i];

	(void)index_damage;
	if (rc == CELLAR_ECORRUPT) {
		/* Index damage is rebuilt by a writable open and served from a
		 * table rebuilt in memory by a read-only handle. */
		CHECK(hit, "key %u: %s gives ECORRUPT (%s), but its record is "
		      "intact", i, how, cellar_errmsg());
		return GOT_CORRUPT;
	}
	if (rc == CELLAR_ENOTFOUND) {
		/* With the checkpoint intact, a lost record is an error, never
		 * an absent key; without it the log alone cannot tell. */
		CHECK(fin == ABSENT || (hit && (c->flags & C_NO_INDEX)),
		      "key %u: %s gives ENOTFOUND, want v%u", i, how, fin);
		return ABSENT;
	}
	CHECK(rc == CELLAR_OK, "key %u: %s gives %s (%s)", i, how,
	      cellar_strerror(rc), cellar_errmsg());
	unsigned ver = val_version(i, v, vn);
	CHECK(ver != 0, "key %u: %s gives a value that is not this key's "
	      "(%zu bytes)", i, how, vn);
	size_t wn = val_of(i, ver, want);
	CHECK(vn == wn && memcmp(v, want, vn) == 0, "key %u: %s gives v%u with "
	      "wrong bytes", i, how, ver);
	if (!hit || post)
		CHECK(ver == fin, "key %u: %s gives v%u, want %s%u%s", i, how,
		      ver, fin == ABSENT ? "ENOTFOUND (deleted after v" : "v",
		      fin == ABSENT ? p->nver[i] : fin, fin == ABSENT ? ")" : "");
	else
		CHECK(ver <= p->nver[i], "key %u: %s gives v%u, never written",
		      i, how, ver);
	return ver;
}

/*
 * Check an open store; got[i] receives what get gave.  post[i] is a version
 * written after the damage (0: none).
 */
static void check_db(const pristine *p, const dcase *c, cellar_db *db,
                     unsigned *got, const unsigned *post, const char *when)
{
	static unsigned char buf[VMAX + 1];
	bool *seen = calloc(NKEYS, sizeof *seen);
	bool damage = false;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn, calls = 0;
	uint64_t items = 0, found = 0, count = 0;
	char key[32], how[64];
	int rc;

	cr_assert_not_null(seen);
	snprintf(how, sizeof how, "iteration (%s)", when);
	for (unsigned i = 0; i < NKEYS; i++) {
		size_t n = 0;
		kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		got[i] = check_key(p, c, i, rc, buf, n, post[i], when);
		damage |= got[i] == GOT_CORRUPT;
		found += got[i] != ABSENT && got[i] != GOT_CORRUPT;
		int hrc = cellar_has(db, key, kn);
		CHECK(hrc == (got[i] == ABSENT        ? CELLAR_ENOTFOUND
		              : got[i] == GOT_CORRUPT ? CELLAR_ECORRUPT
		                                      : CELLAR_OK),
		      "key %u: %s: has gives %s, get gave v%u", i, when,
		      cellar_strerror(hrc), got[i]);
	}
	CHECK(cellar_iter_new(db, &it) == CELLAR_OK, "iter_new");
	for (;;) {
		rc = cellar_iter_next(it, &k, &kn, &v, &vn);
		CHECK(++calls < p->nrecs + 1000, "%s: iteration does not end", when);
		if (rc == CELLAR_EDONE)
			break;
		if (rc == CELLAR_ECORRUPT) {
			damage = true;
			continue;
		}
		CHECK(rc == CELLAR_OK, "%s: iteration gives %s (%s)", when,
		      cellar_strerror(rc), cellar_errmsg());
		long i = key_num(k, kn);
		CHECK(i >= 0, "%s: iteration gives a foreign key", when);
		CHECK(!seen[i], "%s: iteration gives key %ld twice", when, i);
		seen[i] = true;
		unsigned ver = check_key(p, c, (unsigned)i, CELLAR_OK, v, vn,
		                         post[i], how);
		CHECK(got[i] == GOT_CORRUPT || ver == got[i], "key %ld: %s: "
		      "iteration gives v%u, get gave v%u", i, when, ver, got[i]);
		items++;
	}
	cellar_iter_free(it);
	for (unsigned i = 0; i < NKEYS; i++)
		CHECK(seen[i] || got[i] == ABSENT || got[i] == GOT_CORRUPT,
		      "key %u: %s: get finds v%u, iteration misses it", i, when,
		      got[i]);
	free(seen);
	CHECK(cellar_count(db, &count) == CELLAR_OK, "count");
	if (!damage)
		CHECK(count == items && items == found, "%s: count %llu, "
		      "iteration %llu items, get finds %llu keys", when,
		      (unsigned long long)count, (unsigned long long)items,
		      (unsigned long long)found);
}

static int open_store(const pristine *p, unsigned flags, cellar_db **db)
{
	cellar_options o = CELLAR_OPTIONS_INIT;

	o.flags = flags & C_READONLY ? CELLAR_READONLY : 0;
	o.fs = p->fs;
	o.max_segment_size = SEG_SIZE;
	*db = NULL;
	return cellar_open(db, p->dir, &o);
}

static unsigned opened, refused;

static void run_case(const pristine *p, const dcase *c, size_t no)
{
	static unsigned char val[VMAX + 1];
	static unsigned got[NKEYS], got2[NKEYS], post[NKEYS];
	cellar_db *db = NULL;
	char key[32];
	int rc;

	snprintf(where, sizeof where, "case %zu: %s %s at %llu of %zu%s%s", no,
	         damage_names[c->mode], p->files[c->file].name,
	         (unsigned long long)c->pos, p->files[c->file].len,
	         c->flags & C_NO_INDEX ? ", index removed" : "",
	         c->flags & C_READONLY ? ", read-only" : "");
	restore(p, c);
	rc = open_store(p, c->flags, &db);
	if (rc != CELLAR_OK) {
		CHECK(rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION, "open gives "
		      "%s (%s)", cellar_strerror(rc), cellar_errmsg());
		CHECK(db == NULL, "failed open leaves a handle");
		refused++;
		return;
	}
	opened++;
	memset(post, 0, sizeof post);
	check_db(p, c, db, got, post, "first open");
	if (!(c->flags & C_READONLY) && p->files[c->file].kind == F_SEG) {
		/* The repaired store takes writes (keys whose record is damaged
		 * have a test of their own below). */
		unsigned n = 0;
		for (unsigned i = 0; i < NKEYS && n < 8; i++) {
			if (affected(p, c, i) || i % 397 != 0)
				continue;
			unsigned v = POST_VER + i;
			size_t vn = val_of(i, v, val);
			rc = cellar_put(db, key, key_of(i, key), val, vn);
			CHECK(rc == CELLAR_OK, "put of key %u after the damage: %s "
			      "(%s)", i, cellar_strerror(rc), cellar_errmsg());
			post[i] = v;
			n++;
		}
	}
	rc = cellar_close(db);
	CHECK(rc == CELLAR_OK, "close: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	/* Again: the repair (if any) must not lose what the first open gave. */
	rc = open_store(p, c->flags, &db);
	CHECK(rc == CELLAR_OK, "second open: %s (%s)", cellar_strerror(rc),
	      cellar_errmsg());
	check_db(p, c, db, got2, post, "second open");
	for (unsigned i = 0; i < NKEYS; i++)
		CHECK(post[i] || got[i] == GOT_CORRUPT || got2[i] == got[i],
		      "key %u: first open gave v%u, the second v%u", i, got[i],
		      got2[i]);
	CHECK(cellar_close(db) == CELLAR_OK, "second close");
}

/* ---- the cases ---------------------------------------------------------- */

typedef struct caselist {
	dcase *v;
	size_t n, cap;
} caselist;

static void add(caselist *l, const pristine *p, size_t file, int mode,
                uint64_t pos, unsigned flags)
{
	if (pos >= p->files[file].len && !(mode == D_TRUNC && pos == 0))
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		cr_assert_not_null(l->v);
	}
	l->v[l->n++] = (dcase){ file, mode, pos, flags };
}

static void add3(caselist *l, const pristine *p, size_t file, uint64_t pos,
                 unsigned flags)
{
	add(l, p, file, D_FLIP, pos, flags);
	add(l, p, file, D_ZERO, pos, flags);
	add(l, p, file, D_TRUNC, pos, flags);
}

static void meta_cases(caselist *l, const pristine *p, size_t fi)
{
	for (uint64_t pos = 0; pos < p->files[fi].len; pos++)
		add(l, p, fi, D_FLIP, pos, 0);
	for (uint64_t pos = 0; pos < p->files[fi].len; pos += 16)
		add(l, p, fi, D_ZERO, pos, 0);
	add(l, p, fi, D_TRUNC, 0, 0);
	add(l, p, fi, D_TRUNC, 1, 0);
	add(l, p, fi, D_TRUNC, 32, 0);
	add(l, p, fi, D_TRUNC, p->files[fi].len - 1, 0);
}

static void index_cases(caselist *l, const pristine *p, size_t fi, uint64_t *rng,
                        unsigned flags)
{
	const sfile *f = &p->files[fi];
	uint64_t n = le64_load(f->data + 48), m = le64_load(f->data + 56);
	uint64_t tail = 4096 + (n + m) * 64;

	for (uint64_t pos = 0; pos < 128; pos += pos < 16 ? 1 : 4)
		add(l, p, fi, D_FLIP, pos, flags);
	for (uint64_t pos = 4080; pos < 4096; pos++)
		add(l, p, fi, D_FLIP, pos, flags);
	add3(l, p, fi, 0, flags);
	add3(l, p, fi, 1000, flags);
	add3(l, p, fi, 4096, flags);
	for (int j = 0; j < 24; j++) /* buckets */
		add3(l, p, fi, 4096 + tc_rand(rng) % (tail - 4096), flags);
	for (uint64_t pos = tail; pos < f->len; pos += 4) /* sums, segment table */
		add(l, p, fi, D_FLIP, pos, flags);
	add3(l, p, fi, tail, flags);
	add3(l, p, fi, f->len - 16, flags);
	add3(l, p, fi, f->len - 1, flags);
}

static void segment_cases(caselist *l, const pristine *p, size_t fi,
                          unsigned flags, uint64_t *rng)
{
	const sfile *f = &p->files[fi];
	size_t first = SIZE_MAX, last = 0;

	for (uint64_t pos = 0; pos < 32; pos++)
		add(l, p, fi, D_FLIP, pos, flags);
	add(l, p, fi, D_ZERO, 0, flags);
	add(l, p, fi, D_ZERO, 16, flags);
	add(l, p, fi, D_TRUNC, 0, flags);
	add(l, p, fi, D_TRUNC, 20, flags);
	add(l, p, fi, D_TRUNC, 32, flags);
	for (size_t r = 0; r < p->nrecs; r++) {
		if (p->recs[r].file != fi)
			continue;
		if (first == SIZE_MAX)
			first = r;
		last = r;
	}
	if (first == SIZE_MAX)
		return;
	/* first records, some in the middle, the last ones */
	size_t pick[9] = { first, first + 1, first + 2 };
	for (int j = 3; j < 6; j++)
		pick[j] = first + tc_rand(rng) % (last - first + 1);
	pick[6] = last > first + 1 ? last - 2 : first;
	pick[7] = last > first ? last - 1 : first;
	pick[8] = last;
	for (int j = 0; j < 9; j++) {
		const rec *x = &p->recs[pick[j]];
		add(l, p, fi, D_FLIP, x->off, flags);      /* checksum */
		add(l, p, fi, D_FLIP, x->off + 4, flags);  /* kind */
		add(l, p, fi, D_FLIP, x->off + 5, flags);  /* key length */
		add(l, p, fi, D_FLIP, x->off + 6, flags);  /* value length */
		add(l, p, fi, D_FLIP, x->off + 9, flags);  /* key */
		add(l, p, fi, D_FLIP, x->off + x->total - 1, flags); /* value */
		add(l, p, fi, D_ZERO, x->off, flags);
		add(l, p, fi, D_ZERO, x->off + x->total - 8, flags); /* straddles */
		add(l, p, fi, D_TRUNC, x->off, flags);
		add(l, p, fi, D_TRUNC, x->off + x->total / 2, flags);
	}
	add3(l, p, fi, f->len - 16, flags);
	add3(l, p, fi, f->len - 1, flags);
}

/* Run the cases in a shuffled order until the time budget is spent. */
static void run_cases(const pristine *p, caselist *l, const char *what)
{
	double start = now_s();
	uint64_t rng = 4321;
	size_t done = 0;

	for (size_t i = l->n; i > 1; i--) {
		size_t j = (size_t)(tc_rand(&rng) % i);
		dcase t = l->v[i - 1];
		l->v[i - 1] = l->v[j];
		l->v[j] = t;
	}
	opened = refused = 0;
	for (; done < l->n && now_s() - start < BUDGET_S; done++)
		run_case(p, &l->v[done], done);
	if (done < l->n)
		cr_log_info("corrupt %s (%s): time budget spent after %zu of %zu "
		            "cases", what, tc_fs_name(), done, l->n);
	cr_log_info("corrupt %s (%s): %zu cases, %u opened, %u refused, %.1f s",
	            what, tc_fs_name(), done, opened, refused, now_s() - start);
	free(l->v);
}

static size_t file_of_kind(const pristine *p, int kind)
{
	for (size_t i = 0; i < p->nfiles; i++)
		if (p->files[i].kind == kind)
			return i;
	cr_assert_fail("no file of kind %d", kind);
	return 0;
}

Test(corrupt, damaged_meta_is_refused_or_harmless)
{
	pristine p;
	caselist l = { 0 };

	build(&p);
	meta_cases(&l, &p, file_of_kind(&p, F_META));
	run_cases(&p, &l, "meta");
	pristine_free(&p);
}

Test(corrupt, damaged_index_never_gives_wrong_values)
{
	pristine p;
	caselist l = { 0 };
	uint64_t rng = 5;

	build(&p);
	index_cases(&l, &p, file_of_kind(&p, F_INDEX), &rng, 0);
	run_cases(&p, &l, "index");
	pristine_free(&p);
}

/* A read-only handle cannot rebuild the index file: it serves every key
 * from a table rebuilt in memory when a chunk is damaged. */
Test(corrupt, damaged_index_read_only_serves_every_intact_key)
{
	pristine p;
	caselist l = { 0 };
	uint64_t rng = 5;

	build(&p);
	index_cases(&l, &p, file_of_kind(&p, F_INDEX), &rng, C_READONLY);
	run_cases(&p, &l, "index, read-only");
	pristine_free(&p);
}

Test(corrupt, damaged_segment_with_index)
{
	pristine p;
	caselist l = { 0 };
	uint64_t rng = 6;

	build(&p);
	for (size_t i = 0; i < p.nfiles; i++)
		if (p.files[i].kind == F_SEG)
			segment_cases(&l, &p, i, 0, &rng);
	run_cases(&p, &l, "segments");
	pristine_free(&p);
}

Test(corrupt, damaged_segment_rebuilt_without_index)
{
	pristine p;
	caselist l = { 0 };
	uint64_t rng = 7;

	build(&p);
	for (size_t i = 0; i < p.nfiles; i++)
		if (p.files[i].kind == F_SEG)
			segment_cases(&l, &p, i, C_NO_INDEX, &rng);
	run_cases(&p, &l, "segments, index removed");
	pristine_free(&p);
}

Test(corrupt, damaged_segment_read_only)
{
	pristine p;
	caselist l = { 0 };
	uint64_t rng = 8;

	build(&p);
	for (size_t i = 0; i < p.nfiles; i++)
		if (p.files[i].kind == F_SEG)
			segment_cases(&l, &p, i, C_READONLY | (i % 2 ? C_NO_INDEX : 0),
			              &rng);
	run_cases(&p, &l, "segments, read-only");
	pristine_free(&p);
}

/*
 * A damaged record in an older segment: the records after it in that
 * segment must all still be found after a rebuild.
 */
Test(corrupt, damage_in_older_segment_keeps_later_records)
{
	pristine p;
	cellar_db *db = NULL;
	static unsigned got[NKEYS], post[NKEYS];

	double start = now_s();

	build(&p);
	size_t fi = file_of_kind(&p, F_SEG); /* the oldest */
	for (size_t r = 0; r < p.nrecs && now_s() - start < BUDGET_S; r++) {
		const rec *x = &p.recs[r];
		if (x->file != fi || r % 5)
			continue;
		for (int mode = D_FLIP; mode <= D_ZERO; mode++) {
			dcase c = { fi, mode, x->off + 5, C_NO_INDEX };
			snprintf(where, sizeof where, "%s of record %zu (key %u) in %s, "
			         "index removed", damage_names[mode], r, x->key,
			         p.files[fi].name);
			restore(&p, &c);
			CHECK(open_store(&p, 0, &db) == CELLAR_OK, "open: %s",
			      cellar_errmsg());
			memset(post, 0, sizeof post);
			check_db(&p, &c, db, got, post, "open");
			for (size_t q = r + 1; q < p.nrecs && p.recs[q].file == fi; q++) {
				unsigned k = p.recs[q].key;
				if (p.last_rec[k] == (long)q)
					CHECK(got[k] == p.final[k], "key %u, written after "
					      "the damage, is lost (%u)", k, got[k]);
			}
			CHECK(cellar_close(db) == CELLAR_OK, "close");
		}
	}
	pristine_free(&p);
}

/* Damage the final record of key `key` in place: zero its first 16 bytes. */
static dcase damage_record_of(const pristine *p, unsigned key)
{
	const rec *x = &p->recs[p->last_rec[key]];
	dcase c = { x->file, D_ZERO, x->off, 0 };
	return c;
}

/*
 * A key whose record is damaged (its header unreadable) can be given a new
 * value, and deleted, like any other: that is how a user repairs it.
 */
Test(corrupt, key_with_damaged_record_can_be_rewritten)
{
	static unsigned char val[VMAX + 1], buf[VMAX + 1];
	pristine p;
	cellar_db *db = NULL;
	char key[32];
	size_t n;
	int rc;

	build(&p);
	for (unsigned i = 0; i < NKEYS; i += 211) {
		if (p.final[i] == ABSENT)
			continue;
		dcase c = damage_record_of(&p, i);
		snprintf(where, sizeof where, "key %u, record zeroed at %llu of %s",
		         i, (unsigned long long)c.pos, p.files[c.file].name);
		restore(&p, &c);
		CHECK(open_store(&p, 0, &db) == CELLAR_OK, "open: %s",
		      cellar_errmsg());
		size_t kn = key_of(i, key);
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		CHECK(rc == CELLAR_ECORRUPT || rc == CELLAR_ENOTFOUND ||
		      (rc == CELLAR_OK && val_version(i, buf, n) != 0),
		      "get gives %s", cellar_strerror(rc));
		rc = cellar_put(db, key, kn, val, val_of(i, POST_VER, val));
		CHECK(rc == CELLAR_OK, "put of a new value gives %s (%s)",
		      cellar_strerror(rc), cellar_errmsg());
		rc = cellar_get(db, key, kn, buf, sizeof buf, &n);
		CHECK(rc == CELLAR_OK && val_version(i, buf, n) == POST_VER,
		      "get after the put gives %s", cellar_strerror(rc));
		rc = cellar_delete(db, key, kn);
		CHECK(rc == CELLAR_OK, "delete gives %s (%s)", cellar_strerror(rc),
		      cellar_errmsg());
		CHECK(cellar_has(db, key, kn) == CELLAR_ENOTFOUND, "has after "
		      "delete");
		rc = cellar_close(db);
		CHECK(rc == CELLAR_OK, "close: %s (%s)", cellar_strerror(rc),
		      cellar_errmsg());
	}
	pristine_free(&p);
}

/*
 * A damaged bucket chunk of the index: after writes, cellar_sync and
 * cellar_close still succeed (their errors are I/O errors, and the log is
 * intact, so the index can be rebuilt), and every key reads back right
 * after a reopen.
 */
Test(corrupt, writes_after_index_damage_sync_and_close)
{
	static unsigned char val[VMAX + 1];
	static unsigned got[NKEYS], post[NKEYS];
	pristine p;
	cellar_db *db = NULL;
	char key[32];
	int rc;

	build(&p);
	size_t fi = file_of_kind(&p, F_INDEX);
	for (uint64_t pos = 4096 + 64 * 5 + 3; pos < p.files[fi].len / 2;
	     pos += 64 * 100) {
		dcase c = { fi, D_FLIP, pos, 0 };
		snprintf(where, sizeof where, "index byte %llu flipped",
		         (unsigned long long)pos);
		restore(&p, &c);
		CHECK(open_store(&p, 0, &db) == CELLAR_OK, "open: %s",
		      cellar_errmsg());
		memset(post, 0, sizeof post);
		for (unsigned i = 0; i < NKEYS; i += 97) {
			post[i] = POST_VER + i;
			rc = cellar_put(db, key, key_of(i, key), val,
			                val_of(i, post[i], val));
			CHECK(rc == CELLAR_OK, "put of key %u: %s (%s)", i,
			      cellar_strerror(rc), cellar_errmsg());
		}
		rc = cellar_sync(db);
		CHECK(rc == CELLAR_OK, "sync: %s (%s)", cellar_strerror(rc),
		      cellar_errmsg());
		rc = cellar_close(db);
		CHECK(rc == CELLAR_OK, "close: %s (%s)", cellar_strerror(rc),
		      cellar_errmsg());
		CHECK(open_store(&p, 0, &db) == CELLAR_OK, "reopen: %s",
		      cellar_errmsg());
		dcase none = { fi, D_FLIP, pos, 0 };
		check_db(&p, &none, db, got, post, "reopen");
		CHECK(cellar_close(db) == CELLAR_OK, "second close");
	}
	pristine_free(&p);
}

/*
 * soak.c - the multi-process soak: one writer process and four reader
 * processes on one store, for a minute (the CI mode) or ten (the long
 * mode), counting wrong values, crashes and synced keys lost.
 *
 *   soak                 60 s (the meson test 'soak', suite 'soak')
 *   soak --long          600 s; CELLAR_SOAK=long does the same
 *   soak --seconds N     N seconds; CELLAR_SOAK_SECONDS=N does the same
 *   soak --dir DIR       the store and its work files go to DIR (default: a
 *                        new directory under $TMPDIR or /tmp, removed after)
 *
 * The writer opens the store read-write with CELLAR_SYNC_PERIODIC (the
 * background thread syncs every 50 ms) and 1 MiB segments, and puts,
 * overwrites and deletes keys at random, calls cellar_compact() every few
 * thousand writes and cellar_sync() every few hundred.  Every value is
 *     key id (4) | version (4) | pseudo-random bytes from (id, version) |
 *     checksum of all that (8)
 * with a length that depends on the version.  Versions grow per key, and a
 * delete takes a version too.  Before each write the writer notes in
 * shared memory the version it starts (started[]); after each successful
 * cellar_sync() it copies its whole state (version, and whether the key is
 * deleted) into synced[].
 *
 * Each reader opens the store read-only and, with its own seed, gets keys
 * (cellar_get, cellar_get_alloc, cellar_get_many), now and then iterates
 * the whole store, and calls cellar_refresh() at random intervals of 5 to
 * 400 ms.  A value is wrong when it fails to decode or its checksum, names
 * another key, has a version the writer had not started, or is older than
 * a version this reader already saw for the key.  At each refresh a reader
 * also checks a sample of keys against synced[] as it stood before the
 * refresh: a key synced with version v must read as v or later (or as
 * absent, if the writer started a later write, a delete, since).
 *
 * At the end the parent stops everyone, checks each child's exit status
 * (exit 0, no signal: a crash is counted, with its signal), reopens the
 * store and checks that every key the writer reported synced is present
 * with that version or a later one (or absent only if deleted later) and
 * that the store holds exactly the writer's final state (it closed
 * cleanly).  It prints one line of figures and exits 0 when there were 0
 * wrong values, 0 crashes and 0 synced keys lost, else 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cellar.h"

#define NKEYS 4096
#define NREADERS 4
#define HDR 8      /* id, version */
#define SUM 8      /* checksum */
#define MAX_PAD 900
#define MAX_VAL (HDR + MAX_PAD + SUM)
#define SAMPLE 64  /* keys checked against synced[] at each refresh */
#define DEL 1u     /* state: version << 1 | DEL */

/* What the processes share (one anonymous shared mapping). */
typedef struct shared {
	atomic_int stop;
	atomic_int ready;                 /* the store exists */
	_Atomic uint32_t started[NKEYS];  /* highest version the writer began */
	_Atomic uint32_t synced[NKEYS];   /* state as of the last cellar_sync */
	uint32_t final[NKEYS];            /* state when the writer closed */
	atomic_int writer_closed;
	/* figures */
	atomic_ullong puts, deletes, syncs, compactions, segments_compacted;
	atomic_ullong gets, hits, iterations, refreshes, reloads, checked;
	atomic_ullong wrong, lost, errors;
} shared;

static shared *sh;
static char store[4096];

static void note(atomic_ullong *counter, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Count a problem, and tell the first few. */
static void note(atomic_ullong *counter, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(counter, 1) >= 10)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "soak [%d]: ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t checksum(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static size_t key_of(uint32_t id, char *out)
{
	return (size_t)snprintf(out, 16, "soak-%05u", (unsigned)id);
}

static size_t val_len(uint32_t id, uint32_t ver)
{
	uint64_t s = (uint64_t)id << 32 | ver;

	return HDR + (size_t)(mix(&s) % MAX_PAD) + SUM;
}

static size_t val_of(uint32_t id, uint32_t ver, unsigned char *out)
{
	size_t n = val_len(id, ver);
	uint64_t s = (uint64_t)ver << 32 | id, sum;

	memcpy(out, &id, 4);
	memcpy(out + 4, &ver, 4);
	for (size_t i = HDR; i < n - SUM; i++)
		out[i] = (unsigned char)mix(&s);
	sum = checksum(out, n - SUM);
	memcpy(out + n - SUM, &sum, SUM);
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the writer ----------------------------------------------------------- */

static void publish_synced(const uint32_t *state)
{
	for (uint32_t k = 0; k < NKEYS; k++)
		atomic_store(&sh->synced[k], state[k]);
}

/* One put or delete of a random key; its state in state[]. */
static void write_one(cellar_db *db, uint32_t *state, uint64_t *rng)
{
	static unsigned char v[MAX_VAL];
	uint32_t k = (uint32_t)(mix(rng) % NKEYS), ver = (state[k] >> 1) + 1;
	int del = state[k] && !(state[k] & DEL) && mix(rng) % 5 == 0;
	char key[16];
	size_t kl = key_of(k, key);
	int rc;

	atomic_store(&sh->started[k], ver);
	if (del) {
		rc = cellar_delete(db, key, kl);
		if (rc == CELLAR_OK)
			atomic_fetch_add(&sh->deletes, 1);
	} else {
		rc = cellar_put(db, key, kl, v, val_of(k, ver, v));
		if (rc == CELLAR_OK)
			atomic_fetch_add(&sh->puts, 1);
	}
	if (rc != CELLAR_OK)
		note(&sh->errors, "writer: %s of key %u: %s (%s)",
		     del ? "delete" : "put", (unsigned)k, cellar_strerror(rc),
		     cellar_errmsg());
	else
		state[k] = ver << 1 | (del ? DEL : 0);
}

static void writer_steps(cellar_db *db, uint32_t *state, uint64_t *rng)
{
	cellar_compact_result res;
	uint64_t n = 0;
	int rc;

	while (!atomic_load(&sh->stop)) {
		write_one(db, state, rng);
		if (++n % 400 == 0) {
			if ((rc = cellar_sync(db)) == CELLAR_OK) {
				atomic_fetch_add(&sh->syncs, 1);
				publish_synced(state);
			} else {
				note(&sh->errors, "writer: sync: %s (%s)",
				     cellar_strerror(rc), cellar_errmsg());
			}
		}
		if (n % 5000 == 0) {
			if ((rc = cellar_compact(db, &res)) == CELLAR_OK) {
				atomic_fetch_add(&sh->compactions, 1);
				atomic_fetch_add(&sh->segments_compacted,
				                 res.segments_compacted);
			} else {
				note(&sh->errors, "writer: compact: %s (%s)",
				     cellar_strerror(rc), cellar_errmsg());
			}
		}
		if (n % 64 == 0)
			nap_ms(1); /* leave the readers some of a small machine */
	}
}

static int run_writer(void)
{
	static uint32_t state[NKEYS];
	cellar_options o = CELLAR_OPTIONS_INIT;
	uint64_t rng = 0x50a4;
	cellar_db *db;
	int rc;

	o.flags = CELLAR_CREATE;
	o.sync_mode = CELLAR_SYNC_PERIODIC;
	o.sync_interval_ms = 50;
	o.max_segment_size = 1u << 20;
	o.compact_dead_pct = 30;
	if ((rc = cellar_open(&db, store, &o)) != CELLAR_OK) {
		note(&sh->errors, "writer: open: %s (%s)", cellar_strerror(rc),
		     cellar_errmsg());
		return 1;
	}
	for (uint32_t i = 0; i < 64; i++) /* something to read at once */
		write_one(db, state, &rng);
	if (cellar_sync(db) == CELLAR_OK)
		publish_synced(state);
	atomic_store(&sh->ready, 1);
	writer_steps(db, state, &rng);
	if ((rc = cellar_close(db)) != CELLAR_OK) {
		note(&sh->errors, "writer: close: %s (%s)", cellar_strerror(rc),
		     cellar_errmsg());
		return 1;
	}
	memcpy(sh->final, state, sizeof state);
	publish_synced(state); /* close synced everything */
	atomic_store(&sh->writer_closed, 1);
	return 0;
}

/* ---- the readers ------------------------------------------------------------ */

typedef struct reader {
	cellar_db *db;
	uint64_t rng;
	uint32_t seen[NKEYS]; /* the highest version this reader saw */
} reader;

/* Check one value read for key k: count it if it is wrong. */
static void check_value(reader *r, uint32_t k, const unsigned char *v,
                        size_t n)
{
	static unsigned char want[MAX_VAL];
	uint32_t id, ver;

	if (n < HDR + SUM) {
		note(&sh->wrong, "key %u: a value of %zu bytes", (unsigned)k, n);
		return;
	}
	memcpy(&id, v, 4);
	memcpy(&ver, v + 4, 4);
	if (id != k || ver == 0 || ver > atomic_load(&sh->started[k]) ||
	    n != val_of(id, ver, want) || memcmp(v, want, n) != 0) {
		note(&sh->wrong, "key %u: a value the writer never wrote (id %u, "
		     "version %u, %zu bytes)", (unsigned)k, (unsigned)id,
		     (unsigned)ver, n);
		return;
	}
	if (ver < r->seen[k])
		note(&sh->wrong, "key %u: version %u after %u", (unsigned)k,
		     (unsigned)ver, (unsigned)r->seen[k]);
	else
		r->seen[k] = ver;
}

/* Get key k one way or another; its version (0: absent), or -1. */
static long get_one(reader *r, uint32_t k, unsigned how)
{
	static unsigned char buf[MAX_VAL];
	char key[16];
	size_t kl = key_of(k, key), n = 0;
	void *p = NULL;
	int rc;

	atomic_fetch_add(&sh->gets, 1);
	if (how == 0) {
		rc = cellar_get(r->db, key, kl, buf, sizeof buf, &n);
		p = buf;
	} else if (how == 1) {
		rc = cellar_get_alloc(r->db, key, kl, &p, &n);
	} else {
		cellar_get_item it = { key, kl, buf, sizeof buf, 0, 0 };
		rc = cellar_get_many(r->db, &it, 1);
		if (rc == CELLAR_OK)
			rc = it.status;
		n = it.val_len;
		p = buf;
	}
	if (rc == CELLAR_ENOTFOUND)
		return 0;
	if (rc != CELLAR_OK) {
		note(&sh->errors, "reader: get %s: %s (%s)", key, cellar_strerror(rc),
		     cellar_errmsg());
		return -1;
	}
	atomic_fetch_add(&sh->hits, 1);
	check_value(r, k, p, n);
	uint32_t ver = 0;
	if (n >= HDR)
		memcpy(&ver, (unsigned char *)p + 4, 4);
	if (how == 1)
		cellar_free(p);
	return ver;
}

/* Every item of the store, checked. */
static void iterate(reader *r)
{
	cellar_iter *it;
	const void *k, *v;
	size_t kl, vl;
	int rc;

	if ((rc = cellar_iter_new(r->db, &it)) != CELLAR_OK) {
		note(&sh->errors, "reader: iter_new: %s", cellar_strerror(rc));
		return;
	}
	while ((rc = cellar_iter_next(it, &k, &kl, &v, &vl)) == CELLAR_OK) {
		char name[16] = "";
		unsigned id = NKEYS;
		if (kl == 10)
			memcpy(name, k, kl);
		if (kl != 10 || sscanf(name, "soak-%5u", &id) != 1 || id >= NKEYS) {
			note(&sh->wrong, "iteration: a key of %zu bytes not the "
			     "writer's", kl);
			continue;
		}
		check_value(r, id, v, vl);
	}
	if (rc != CELLAR_EDONE)
		note(&sh->errors, "reader: iter_next: %s (%s)", cellar_strerror(rc),
		     cellar_errmsg());
	cellar_iter_free(it);
	atomic_fetch_add(&sh->iterations, 1);
}

/* Refresh, and check a sample of keys against what was synced before. */
static void refresh_checked(reader *r)
{
	uint32_t keys[SAMPLE], before[SAMPLE];
	int rc;

	for (unsigned i = 0; i < SAMPLE; i++) {
		keys[i] = (uint32_t)(mix(&r->rng) % NKEYS);
		before[i] = atomic_load(&sh->synced[keys[i]]);
	}
	if ((rc = cellar_refresh(r->db)) != CELLAR_OK) {
		note(&sh->errors, "reader: refresh: %s (%s)", cellar_strerror(rc),
		     cellar_errmsg());
		return;
	}
	atomic_fetch_add(&sh->refreshes, 1);
	for (unsigned i = 0; i < SAMPLE; i++) {
		uint32_t k = keys[i], v = before[i] >> 1;
		long got;
		if (!before[i] || (before[i] & DEL))
			continue;
		if ((got = get_one(r, k, 0)) < 0)
			continue;
		atomic_fetch_add(&sh->checked, 1);
		if (got == 0 && atomic_load(&sh->started[k]) > v)
			continue; /* deleted since */
		if (got < (long)v)
			note(&sh->lost, "key %u synced at version %u reads as %ld after "
			     "a refresh", (unsigned)k, (unsigned)v, got);
	}
}

static int run_reader(unsigned i)
{
	static reader r;
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db_stats st;
	double next_refresh, next_iter;
	int rc;

	r.rng = 0x7ead0000ull + i;
	o.flags = CELLAR_READONLY;
	if ((rc = cellar_open(&r.db, store, &o)) != CELLAR_OK) {
		note(&sh->errors, "reader %u: open: %s (%s)", i, cellar_strerror(rc),
		     cellar_errmsg());
		return 1;
	}
	next_refresh = now_s() + 0.005;
	next_iter = now_s() + 2.0 + i;
	while (!atomic_load(&sh->stop)) {
		for (unsigned j = 0; j < 256; j++)
			get_one(&r, (uint32_t)(mix(&r.rng) % NKEYS), j % 3);
		if (now_s() >= next_refresh) {
			refresh_checked(&r);
			next_refresh = now_s() + (5 + mix(&r.rng) % 396) / 1e3;
		}
		if (now_s() >= next_iter) {
			iterate(&r);
			next_iter = now_s() + 5.0 + (double)(mix(&r.rng) % 10);
		}
		nap_ms(1);
	}
	if (cellar_stats_sized(r.db, &st, sizeof st) == CELLAR_OK)
		atomic_fetch_add(&sh->reloads, st.refresh_reloads);
	cellar_close(r.db);
	return 0;
}

/* ---- the parent -------------------------------------------------------------- */

/* Reopen the store: every synced key there, and exactly the final state. */
static void check_end(uint64_t *keys_synced)
{
	static unsigned char buf[MAX_VAL];
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	int rc;

	*keys_synced = 0;
	if ((rc = cellar_open(&db, store, &o)) != CELLAR_OK) {
		note(&sh->errors, "reopen: %s (%s)", cellar_strerror(rc),
		     cellar_errmsg());
		return;
	}
	for (uint32_t k = 0; k < NKEYS; k++) {
		uint32_t s = atomic_load(&sh->synced[k]), f = sh->final[k], ver = 0;
		char key[16];
		size_t n = 0;
		rc = cellar_get(db, key, key_of(k, key), buf, sizeof buf, &n);
		if (rc == CELLAR_OK && n >= HDR)
			memcpy(&ver, buf + 4, 4);
		else if (rc != CELLAR_ENOTFOUND)
			note(&sh->errors, "reopen: get %s: %s", key, cellar_strerror(rc));
		if (s && !(s & DEL)) {
			++*keys_synced;
			if (ver < (s >> 1) && atomic_load(&sh->started[k]) <= (s >> 1))
				note(&sh->lost, "key %u synced at %u, at the end %u",
				     (unsigned)k, (unsigned)(s >> 1), (unsigned)ver);
		}
		if (atomic_load(&sh->writer_closed) &&
		    ver != ((f & DEL) ? 0 : f >> 1))
			note(&sh->lost, "key %u: %u at the end, the writer closed with "
			     "%u%s", (unsigned)k, (unsigned)ver, (unsigned)(f >> 1),
			     (f & DEL) ? " deleted" : "");
	}
	cellar_close(db);
}

static pid_t spawn(int (*fn)(unsigned), unsigned arg)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn(arg));
	if (pid < 0) {
		perror("soak: fork");
		exit(1);
	}
	return pid;
}

static int writer_main(unsigned unused)
{
	(void)unused;
	return run_writer();
}

/* Wait for every child; count the ones that crashed or failed. */
static unsigned reap(const pid_t *pids, unsigned n)
{
	unsigned crashes = 0;

	for (unsigned i = 0; i < n; i++) {
		int status;
		if (waitpid(pids[i], &status, 0) < 0) {
			perror("soak: waitpid");
			crashes++;
		} else if (WIFSIGNALED(status)) {
			fprintf(stderr, "soak: %s %u died of signal %d\n",
			        i ? "reader" : "writer", i, WTERMSIG(status));
			crashes++;
		} else if (WEXITSTATUS(status) != 0) {
			fprintf(stderr, "soak: %s %u exited with %d\n",
			        i ? "reader" : "writer", i, WEXITSTATUS(status));
			crashes++;
		}
	}
	return crashes;
}

static double seconds_wanted(int argc, char **argv, const char **dir)
{
	const char *mode = getenv("CELLAR_SOAK"), *secs = getenv("CELLAR_SOAK_SECONDS");
	double s = mode && strcmp(mode, "long") == 0 ? 600 : 60;

	if (secs)
		s = atof(secs);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--long") == 0) {
			s = 600;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			s = atof(argv[++i]);
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			*dir = argv[++i];
		} else {
			fprintf(stderr, "usage: soak [--long | --seconds N] [--dir DIR]\n");
			exit(2);
		}
	}
	return s > 0 ? s : 60;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *tmp = getenv("TMPDIR");
	char work[2048];
	pid_t pids[1 + NREADERS];
	uint64_t synced_keys = 0;
	double secs = seconds_wanted(argc, argv, &dir), t0;
	unsigned crashes;

	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
	          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return perror("soak: mmap"), 1;
	snprintf(work, sizeof work, "%s/cellar-soak-XXXXXX", dir ? dir : tmp ? tmp : "/tmp");
	if (!mkdtemp(work))
		return perror("soak: mkdtemp"), 1;
	snprintf(store, sizeof store, "%s/store", work);
	t0 = now_s();
	pids[0] = spawn(writer_main, 0);
	while (!atomic_load(&sh->ready) && now_s() - t0 < 30 &&
	       waitpid(pids[0], NULL, WNOHANG) == 0)
		nap_ms(10);
	for (unsigned i = 0; i < NREADERS; i++)
		pids[1 + i] = spawn(run_reader, i);
	while (now_s() - t0 < secs)
		nap_ms(100);
	atomic_store(&sh->stop, 1);
	crashes = reap(pids, 1 + NREADERS);
	check_end(&synced_keys);
	printf("soak: %.1f s, 1 writer and %d readers; writer: %llu puts, %llu "
	       "deletes, %llu syncs, %llu compactions (%llu segments); readers: "
	       "%llu gets (%llu hits), %llu refreshes (%llu reloads), %llu "
	       "iterations, %llu synced keys checked after refreshes; at the "
	       "end %llu synced keys checked\n",
	       now_s() - t0, NREADERS, (unsigned long long)sh->puts,
	       (unsigned long long)sh->deletes, (unsigned long long)sh->syncs,
	       (unsigned long long)sh->compactions,
	       (unsigned long long)sh->segments_compacted,
	       (unsigned long long)sh->gets, (unsigned long long)sh->hits,
	       (unsigned long long)sh->refreshes, (unsigned long long)sh->reloads,
	       (unsigned long long)sh->iterations,
	       (unsigned long long)sh->checked, (unsigned long long)synced_keys);
	printf("soak: %llu wrong values, %u crashes, %llu synced keys lost, %llu "
	       "errors\n", (unsigned long long)sh->wrong, crashes,
	       (unsigned long long)sh->lost, (unsigned long long)sh->errors);
	{
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
		if (system(cmd) != 0)
			fprintf(stderr, "soak: could not remove %s\n", work);
	}
	return sh->wrong || crashes || sh->lost || sh->errors ? 1 : 0;
}

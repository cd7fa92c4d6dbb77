/*
 * damage_sweep.c - damaged copies of a cleanly closed store, opened
 * read-only and read-write (issue 11's sweep).
 *
 * A store of K keys (overwrites, deletes, several segments) is built on the
 * default file system and closed cleanly; every key's final state is known.
 * Then, N times: copy the store, damage one file of the copy in one way -
 * flip one byte, zero 512 bytes, truncate, append random bytes, or replace
 * the whole file with random bytes of its length - chosen at random among
 * the meta, the index and every segment, and in a child process (so that a
 * crash or a hang is seen and counted, not fatal):
 *   - open it read-only, then read-write, then read-only again;
 *   - read every key, iterate to the end, look at the statistics.
 * The rules, per open:
 *   - an open that fails must fail with a clear error (ECORRUPT, EVERSION);
 *   - a get that returns a value returns exactly the key's final value:
 *     any other bytes are a wrong value, and a deleted key's old value, or
 *     an older value of a live key, counts as stale;
 *   - a live key read as absent, or a stale value, is a lost record: it
 *     must be an error somewhere - the open, a get, the iteration, the
 *     statistics (torn, damaged or lost bytes), or cellar_verify() on the
 *     copy.  A loss nothing reports is a silent loss.
 * 0 crashes, 0 hangs, 0 wrong values and 0 silent losses, or it exits 1.
 *
 *   damage_sweep [COPIES [KEYS [SEED]]]   defaults 1000, 20000, 1
 *   (CELLAR_SWEEP_COPIES overrides COPIES)
 *
 * Plain C and the public API only.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cellar.h"

#define MAXFILES 256
#define MAXV 220
#define CHILD_SECONDS 60

static unsigned nkeys;
static uint8_t *final_ver; /* 0 = deleted, else the version last put */
static char base[256], work[300];
static char files[MAXFILES][256];
static size_t nfiles;

static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "damage_sweep: %s: %s (%s)\n", what, cellar_strerror(rc),
	        cellar_errmsg());
	exit(2);
}

static size_t key_of(unsigned i, char *k)
{
	return (size_t)snprintf(k, 16, "k%08u", i);
}

/* The value of key i at version ver (1..255): its length and bytes. */
static size_t val_of(unsigned i, unsigned ver, uint8_t *v)
{
	size_t len = 20 + (i * 7 + ver * 13) % (MAXV - 20);

	for (size_t j = 0; j < len; j++)
		v[j] = (uint8_t)(i * 31 + ver * 17 + j);
	v[0] = (uint8_t)ver;
	return len;
}

static void build(void)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	uint8_t v[MAXV];
	char k[16];
	int rc;

	o.flags = CELLAR_CREATE;
	o.max_segment_size = 256u << 10; /* several segments */
	if ((rc = cellar_open(&db, base, &o)) < 0)
		die("create", rc);
	for (unsigned round = 1; round <= 3; round++)
		for (unsigned i = 0; i < nkeys; i++) {
			if (round > 1 && (i % 3) != round - 2)
				continue; /* a third overwritten, a third twice */
			size_t kl = key_of(i, k), vl = val_of(i, round, v);
			if ((rc = cellar_put(db, k, kl, v, vl)) < 0)
				die("put", rc);
			final_ver[i] = (uint8_t)round;
		}
	for (unsigned i = 0; i < nkeys; i += 10) {
		size_t kl = key_of(i, k);
		if ((rc = cellar_delete(db, k, kl)) < 0)
			die("delete", rc);
		final_ver[i] = 0;
	}
	if ((rc = cellar_close(db)) < 0)
		die("close", rc);
}

static void list_files(void)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d) {
		perror(base);
		exit(2);
	}
	while ((e = readdir(d)) && nfiles < MAXFILES) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "LOCK"))
			continue;
		snprintf(files[nfiles++], sizeof files[0], "%.255s", e->d_name);
	}
	closedir(d);
}

static void copy_file(const char *from, const char *to)
{
	static uint8_t buf[1 << 16];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || out < 0) {
		perror("copy");
		exit(2);
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			perror("copy");
			exit(2);
		}
	close(in);
	close(out);
}

static void fresh_copy(void)
{
	char cmd[700];

	snprintf(cmd, sizeof cmd, "rm -rf '%.300s'", work);
	if (system(cmd) != 0 || mkdir(work, 0755) != 0) {
		perror(work);
		exit(2);
	}
	for (size_t i = 0; i < nfiles; i++) {
		char a[1024], b[1024];
		snprintf(a, sizeof a, "%.300s/%.255s", base, files[i]);
		snprintf(b, sizeof b, "%.300s/%.255s", work, files[i]);
		copy_file(a, b);
	}
}

enum { FLIP, ZERO, CUT, APPEND, REPLACE, MODES };
static const char *mode_name[MODES] = { "flip", "zero512", "truncate",
                                        "append", "replace" };

/* Damage file f of the copy in mode m; describes it into what. */
static void damage(size_t f, int m, char *what, size_t cap)
{
	char path[1024];
	struct stat st;
	uint8_t buf[4096];
	int fd;

	snprintf(path, sizeof path, "%.300s/%.255s", work, files[f]);
	if ((fd = open(path, O_RDWR)) < 0 || fstat(fd, &st) != 0) {
		perror(path);
		exit(2);
	}
	uint64_t len = (uint64_t)st.st_size, at = len ? rnd() % len : 0;
	switch (m) {
	case FLIP:
		if (len && pread(fd, buf, 1, (off_t)at) == 1) {
			buf[0] ^= (uint8_t)(1u << (rnd() % 8));
			if (pwrite(fd, buf, 1, (off_t)at) != 1)
				perror("pwrite");
		}
		break;
	case ZERO: {
		uint64_t n = len - at < 512 ? len - at : 512;
		memset(buf, 0, sizeof buf);
		if (n && pwrite(fd, buf, (size_t)n, (off_t)at) != (ssize_t)n)
			perror("pwrite");
		break;
	}
	case CUT:
		if (ftruncate(fd, (off_t)at) != 0)
			perror("ftruncate");
		break;
	case APPEND: {
		size_t n = 1 + rnd() % sizeof buf;
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)rnd();
		at = len;
		if (pwrite(fd, buf, n, (off_t)len) != (ssize_t)n)
			perror("pwrite");
		break;
	}
	default: /* REPLACE */
		for (uint64_t off = 0; off < len; off += sizeof buf) {
			size_t n = len - off < sizeof buf ? (size_t)(len - off)
			                                  : sizeof buf;
			for (size_t j = 0; j < n; j++)
				buf[j] = (uint8_t)rnd();
			if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
				perror("pwrite");
		}
		at = 0;
	}
	close(fd);
	snprintf(what, cap, "%s of %.255s at %llu (of %llu bytes)", mode_name[m],
	         files[f], (unsigned long long)at, (unsigned long long)len);
}

typedef struct tally {
	unsigned wrong, stale, absent, errors, refused;
} tally;

/* Read every key and iterate; what the handle reported goes to *reported. */
static void read_all(cellar_db *db, tally *t, int *reported)
{
	uint8_t v[MAXV], want[MAXV];
	cellar_db_stats st;
	cellar_iter *it;
	char k[16];
	size_t vl;
	int rc;

	for (unsigned i = 0; i < nkeys; i++) {
		size_t kl = key_of(i, k);
		rc = cellar_get(db, k, kl, v, sizeof v, &vl);
		if (rc == CELLAR_OK) {
			size_t wl = final_ver[i] ? val_of(i, final_ver[i], want) : 0;
			if (final_ver[i] && vl == wl && !memcmp(v, want, wl))
				continue;
			/* An older value of its own: stale; anything else: wrong. */
			int own = vl > 0 && v[0] >= 1 && v[0] <= 3 &&
			          vl == val_of(i, v[0], want) && !memcmp(v, want, vl);
			if (own)
				t->stale++;
			else
				t->wrong++;
		} else if (rc == CELLAR_ENOTFOUND) {
			t->absent += final_ver[i] != 0;
		} else {
			t->errors++;
			*reported = 1;
		}
	}
	if ((rc = cellar_iter_new(db, &it)) < 0) {
		*reported = 1;
	} else {
		unsigned guard = 0;
		while ((rc = cellar_iter_next(it, NULL, NULL, NULL, NULL)) !=
		       CELLAR_EDONE) {
			if (rc < 0)
				*reported = 1;
			if (++guard > 4 * nkeys + 1000) {
				fprintf(stderr, "iteration does not end\n");
				exit(3);
			}
		}
		cellar_iter_free(it);
	}
	if (cellar_stats_sized(db, &st, sizeof st) == CELLAR_OK &&
	    (st.torn_bytes || st.damaged_bytes || st.lost_bytes))
		*reported = 1;
}

/* One open of the damaged copy: 0 if it keeps the rules, else 1. */
static int check_open(unsigned flags, const char *what, tally *sum)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;
	tally t = { 0, 0, 0, 0, 0 };
	int rc, reported = 0;

	o.flags = flags;
	rc = cellar_open(&db, work, &o);
	if (rc < 0) {
		if (rc != CELLAR_ECORRUPT && rc != CELLAR_EVERSION) {
			fprintf(stderr, "%s: %s open: unexpected %s (%s)\n", what,
			        flags ? "read-only" : "read-write", cellar_strerror(rc),
			        cellar_errmsg());
			return 1;
		}
		sum->refused++;
		return 0; /* refused clearly: nothing served */
	}
	read_all(db, &t, &reported);
	(void)cellar_close(db);
	if ((t.absent || t.stale) && !reported) {
		cellar_verify_report rep;
		if (cellar_verify(work, NULL, &rep) != CELLAR_OK || rep.problems)
			reported = 1;
	}
	sum->wrong += t.wrong;
	sum->stale += t.stale;
	sum->absent += t.absent;
	sum->errors += t.errors;
	if (t.wrong) {
		fprintf(stderr, "%s: %u wrong values\n", what, t.wrong);
		return 1;
	}
	if ((t.absent || t.stale) && !reported) {
		fprintf(stderr, "%s: %s open: %u keys absent and %u stale, and "
		        "nothing reported damage\n", what,
		        flags ? "read-only" : "read-write", t.absent, t.stale);
		return 1;
	}
	return 0;
}

/* The child: the three opens; exit 0 if every rule held. */
static void child(const char *what)
{
	tally t = { 0, 0, 0, 0, 0 };
	int bad = 0;

	alarm(CHILD_SECONDS);
	bad |= check_open(CELLAR_READONLY, what, &t);
	bad |= check_open(0, what, &t);
	bad |= check_open(CELLAR_READONLY, what, &t);
	_exit(bad ? 1 : 0);
}

int main(int argc, char **argv)
{
	unsigned copies = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	unsigned crashes = 0, hangs = 0, broken = 0;
	unsigned by_mode[MODES] = { 0 };
	const char *env = getenv("CELLAR_SWEEP_COPIES");

	if (env && *env)
		copies = (unsigned)atoi(env);
	nkeys = argc > 2 ? (unsigned)atoi(argv[2]) : 20000;
	rng_state = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
	if (!(final_ver = calloc(nkeys, 1)))
		return 2;
	snprintf(base, sizeof base, "/tmp/cellar-sweep-XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(work, sizeof work, "%s/copy", base);
	strcat(base, "/store");
	build();
	list_files();
	for (unsigned c = 0; c < copies; c++) {
		char what[1024];
		size_t f = rnd() % nfiles;
		int m = (int)(rnd() % MODES), status;

		fresh_copy();
		damage(f, m, what, sizeof what);
		by_mode[m]++;
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0)
			child(what);
		if (pid < 0 || waitpid(pid, &status, 0) != pid) {
			perror("fork");
			return 2;
		}
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
			hangs++;
			fprintf(stderr, "copy %u, %s: hang\n", c, what);
		} else if (WIFSIGNALED(status)) {
			crashes++;
			fprintf(stderr, "copy %u, %s: killed by signal %d\n", c, what,
			        WTERMSIG(status));
		} else if (WEXITSTATUS(status) != 0) {
			broken++;
			fprintf(stderr, "copy %u, %s: a rule broken (above)\n", c, what);
		}
	}
	printf("damage_sweep: %u copies of a %u-key store (%zu files; flip %u, "
	       "zero512 %u, truncate %u, append %u, replace %u), each opened "
	       "read-only, read-write, read-only: %u crashes, %u hangs, %u "
	       "copies breaking a rule\n", copies, nkeys, nfiles, by_mode[FLIP],
	       by_mode[ZERO], by_mode[CUT], by_mode[APPEND], by_mode[REPLACE],
	       crashes, hangs, broken);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(base) - 6), base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", base);
	return crashes || hangs || broken ? 1 : 0;
}

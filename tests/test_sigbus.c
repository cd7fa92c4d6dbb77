/*
 * test_sigbus.c - the SIGBUS guard (fs/sigbus.h): readers survive another
 * program cutting a mapped file under them, on every read path, and
 * SIGBUS faults that are not cellar's reach the application's handler (or
 * kill the process, as they would have without cellar).
 *
 * Runs on the mmap file system only (the one that maps), with real files.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cellar.h"
#include "common.h"

#define NKEYS 20000
#define VLEN 100

static char *dir;

static void setup(void)
{
	setenv("CELLAR_TEST_FS", "mmap", 1);
	dir = tc_dir_new();
}

static void teardown(void)
{
	tc_dir_free(dir);
}

static size_t key_of(unsigned i, char *out)
{
	return (size_t)snprintf(out, 16, "k%07u", i);
}

static void val_of(unsigned i, unsigned char *out)
{
	for (unsigned j = 0; j < VLEN; j++)
		out[j] = (unsigned char)(i * 31 + j * 7 + 1);
}

/* A store of NKEYS keys in several 1 MiB segments, closed cleanly. */
static void build(void)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	unsigned char v[VLEN];
	cellar_db *db;
	char k[16];

	o.flags = CELLAR_CREATE;
	o.max_segment_size = 1u << 20;
	OK(cellar_open(&db, dir, &o));
	for (unsigned i = 0; i < NKEYS; i++) {
		val_of(i, v);
		OK(cellar_put(db, k, key_of(i, k), v, VLEN));
	}
	OK(cellar_close(db));
}

static cellar_db *open_store(int readonly)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db;

	o.flags = readonly ? CELLAR_READONLY : 0;
	o.max_segment_size = 1u << 20;
	OK(cellar_open(&db, dir, &o));
	return db;
}

/* Cut every file of dir whose name ends in suffix to a third of its size. */
static unsigned cut_files(const char *suffix)
{
	char path[4200];
	struct dirent *e;
	unsigned n = 0;
	DIR *d = opendir(dir);

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		if (l < sl || strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDWR);
		cr_assert_geq(fd, 0);
		off_t size = lseek(fd, 0, SEEK_END);
		cr_assert_eq(ftruncate(fd, size / 3), 0);
		close(fd);
		n++;
	}
	closedir(d);
	return n;
}

/* ---- readers ------------------------------------------------------------ */

typedef enum path { P_GET, P_MANY, P_PINNED, P_ITER, P_WARM, P_PATHS } rpath;
static const char *const path_names[] = { "get", "get_many", "get_pinned",
	                                      "iterate", "warm" };

typedef struct reader {
	cellar_db *db;
	rpath p;
	atomic_int *stop;
	unsigned long ok, corrupt, bad;
	char why[200];
} reader;

/* One answer: a right value, or CELLAR_ECORRUPT; anything else is bad. */
static void judge(reader *r, unsigned i, int rc, const void *v, size_t n)
{
	unsigned char want[VLEN];

	if (rc == CELLAR_ECORRUPT) {
		r->corrupt++;
		return;
	}
	val_of(i, want);
	if (rc == CELLAR_OK && n == VLEN && memcmp(v, want, VLEN) == 0) {
		r->ok++;
		return;
	}
	if (!r->bad++)
		snprintf(r->why, sizeof r->why, "%s: key %u gives %s (%zu bytes)",
		         path_names[r->p], i, cellar_strerror(rc), n);
}

static void read_batch(reader *r, unsigned from)
{
	static _Thread_local char keys[32][16];
	static _Thread_local unsigned char bufs[32][VLEN];
	cellar_get_item it[32];

	for (unsigned j = 0; j < 32; j++) {
		it[j].key = keys[j];
		it[j].key_len = key_of((from + j) % NKEYS, keys[j]);
		it[j].buf = bufs[j];
		it[j].cap = VLEN;
	}
	int rc = cellar_get_many(r->db, it, 32);
	if (rc != CELLAR_OK && rc != CELLAR_ECORRUPT) {
		judge(r, from, rc, NULL, 0);
		return;
	}
	for (unsigned j = 0; j < 32; j++)
		judge(r, (from + j) % NKEYS, it[j].status, bufs[j], it[j].val_len);
}

static void read_iter(reader *r)
{
	cellar_iter *it;
	const void *k, *v;
	size_t kn, vn;
	int rc;

	if (cellar_iter_new(r->db, &it) != CELLAR_OK) {
		r->bad++;
		return;
	}
	for (unsigned calls = 0; calls < 3 * NKEYS; calls++) {
		if ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) == CELLAR_EDONE)
			break;
		char d[8] = { 0 };
		memcpy(d, (const char *)k + 1, kn == 8 ? 7 : 0);
		judge(r, rc == CELLAR_OK ? (unsigned)atoi(d) : 0, rc, v, vn);
	}
	cellar_iter_free(it);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	unsigned char buf[VLEN];
	char k[16];
	unsigned i = (unsigned)r->p * 977;

	while (!atomic_load(r->stop)) {
		size_t n = 0, kn = key_of(i % NKEYS, k);
		const void *v;
		cellar_pin pin;
		int rc;
		switch (r->p) {
		case P_GET:
			rc = cellar_get(r->db, k, kn, buf, sizeof buf, &n);
			judge(r, i % NKEYS, rc, buf, n);
			break;
		case P_MANY:
			read_batch(r, i % NKEYS);
			i += 31;
			break;
		case P_PINNED: {
			cellar_db_stats st;
			rc = cellar_get_pinned(r->db, k, kn, &v, &n, &pin);
			/* The bytes were checked and may turn to zeros after (the
			 * documented rule for pins): compare at once, and if they
			 * changed, the guard must have rescued this mapping. */
			unsigned char got[VLEN];
			if (rc == CELLAR_OK) {
				unsigned char want[VLEN];
				val_of(i % NKEYS, want);
				/* Judge one copy, taken now: the pinned bytes may turn
				 * to zeros at any moment after, also between two
				 * reads of them. */
				memcpy(got, v, n < VLEN ? n : VLEN);
				v = got;
				if (n == VLEN && memcmp(got, want, VLEN) != 0) {
					/* The handler maps the zeros, then counts: the
					 * thread that faulted may still be between the
					 * two (on a loaded machine, for a while). */
					for (int w = 0; w < 300; w++) {
						if (cellar_stats_sized(r->db, &st, sizeof st) ==
						        CELLAR_OK && st.faulted_mappings > 0) {
							rc = CELLAR_ECORRUPT; /* zeroed while pinned */
							break;
						}
						sleep_ms(10);
					}
				}
			}
			judge(r, i % NKEYS, rc, v, n);
			if (pin.held_)
				cellar_pin_release(&pin);
			break;
		}
		case P_ITER:
			read_iter(r);
			break;
		default:
			rc = cellar_warm(r->db);
			if (rc != CELLAR_OK && rc != CELLAR_ECORRUPT && !r->bad++)
				snprintf(r->why, sizeof r->why, "warm gives %s",
				         cellar_strerror(rc));
			r->ok++;
			break;
		}
		i += 7919;
	}
	return NULL;
}


/*
 * Readers on every path run while the files ending in suffix are cut to a
 * third under them; none dies, none gets a wrong value or "not found", and
 * the get paths see CELLAR_ECORRUPT.
 */
static void readers_survive_cut(int readonly, const char *suffix)
{
	reader r[P_PATHS];
	pthread_t t[P_PATHS];
	atomic_int stop = 0;
	cellar_db_stats st;
	cellar_db *db;

	build();
	db = open_store(readonly);
	for (int p = 0; p < P_PATHS; p++) {
		r[p] = (reader){ db, (rpath)p, &stop, 0, 0, 0, "" };
		cr_assert_eq(pthread_create(&t[p], NULL, reader_main, &r[p]), 0);
	}
	sleep_ms(150);
	cr_assert_geq(cut_files(suffix), 1);
	sleep_ms(600);
	atomic_store(&stop, 1);
	unsigned long corrupt = 0;
	for (int p = 0; p < P_PATHS; p++) {
		pthread_join(t[p], NULL);
		cr_expect_eq(r[p].bad, 0, "%lu bad answers, the first: %s", r[p].bad,
		             r[p].why);
		cr_expect_gt(r[p].ok + r[p].corrupt, 0, "%s made no call",
		             path_names[p]);
		if (p != P_WARM && p != P_ITER)
			corrupt += r[p].corrupt;
	}
	cr_assert_gt(corrupt, 0, "no get path noticed the cut");
	OK(cellar_stats_sized(db, &st, sizeof st));
	cr_assert_geq(st.faulted_mappings, 1);
	cellar_close(db);
}

Test(sigbus, readers_survive_segments_cut_read_only, .init = setup,
     .fini = teardown)
{
	readers_survive_cut(1, ".seg");
}

Test(sigbus, readers_survive_segments_cut_read_write, .init = setup,
     .fini = teardown)
{
	readers_survive_cut(0, ".seg");
}

/*
 * The index cut under a read-only handle whose chunks were all checked:
 * a lost bucket reads as zeros, an empty bucket, and must not turn a key
 * into a miss.
 */
Test(sigbus, index_cut_never_turns_keys_into_misses, .init = setup,
     .fini = teardown)
{
	unsigned char buf[VLEN];
	unsigned ok = 0, corrupt = 0, errors = 0;
	cellar_iter *it;
	char k[16];
	int rc;

	build();
	cellar_db *db = open_store(1);
	for (unsigned i = 0; i < NKEYS; i++) {
		size_t n;
		OK(cellar_get(db, k, key_of(i, k), buf, sizeof buf, &n));
	}
	cr_assert_eq(cut_files("index"), 1);
	for (unsigned i = 0; i < NKEYS; i++) {
		size_t n = 0;
		rc = cellar_get(db, k, key_of(i, k), buf, sizeof buf, &n);
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT, "key %u: %s", i,
		          cellar_strerror(rc));
		ok += rc == CELLAR_OK;
		corrupt += rc == CELLAR_ECORRUPT;
	}
	cr_assert_gt(corrupt, 0);
	ERR(CELLAR_ECORRUPT, cellar_has(db, "absent", 6));
	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, NULL, NULL, NULL, NULL)) != CELLAR_EDONE) {
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT);
		errors += rc == CELLAR_ECORRUPT;
	}
	cellar_iter_free(it);
	cr_assert_eq(errors, 1, "the end reports the lost index once");
	OK(cellar_close(db));
}

/*
 * The index cut inside its last page, past its buckets: no page is lost,
 * so nothing faults, and the kernel zeroes the rest of that page.  No key
 * is lost either, but the cut must not go unseen: a miss may be a lost
 * bucket when the cut is inside an earlier page, and the handle cannot
 * tell the two apart without a system call.
 */
Test(sigbus, an_index_cut_inside_a_page_is_seen_without_a_fault,
     .init = setup, .fini = teardown)
{
	unsigned char buf[VLEN], want[VLEN];
	char path[4200], k[16];
	cellar_iter *it;
	unsigned errors = 0;
	int rc;

	build();
	cellar_db *db = open_store(1);
	ERR(CELLAR_ENOTFOUND, cellar_has(db, "absent", 6));
	snprintf(path, sizeof path, "%s/index", dir);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	off_t size = lseek(fd, 0, SEEK_END);
	off_t cut = size - 40; /* the last segment entry, from its seq on */
	cr_assert(cut % 4096 != 0, "index size %lld", (long long)size);
	cr_assert_eq(ftruncate(fd, cut), 0);
	close(fd);
	for (unsigned i = 0; i < NKEYS; i += 7) {
		size_t n = 0;
		OK(cellar_get(db, k, key_of(i, k), buf, sizeof buf, &n));
		val_of(i, want);
		cr_assert(n == VLEN && memcmp(buf, want, VLEN) == 0);
	}
	ERR(CELLAR_ECORRUPT, cellar_has(db, "absent", 6));
	cr_assert(strstr(cellar_errmsg(), "cut short"), "%s", cellar_errmsg());
	cellar_get_item item = { "absent", 6, buf, sizeof buf, 0, 0 };
	OK(cellar_get_many(db, &item, 1));
	cr_assert_eq(item.status, CELLAR_ECORRUPT);
	OK(cellar_iter_new(db, &it));
	while ((rc = cellar_iter_next(it, NULL, NULL, NULL, NULL)) != CELLAR_EDONE) {
		cr_assert(rc == CELLAR_OK || rc == CELLAR_ECORRUPT);
		errors += rc == CELLAR_ECORRUPT;
	}
	cellar_iter_free(it);
	cr_assert_eq(errors, 1, "the end reports the cut index once");
	OK(cellar_close(db));
}

/* ---- chaining to the application's handler ---------------------------- */

static sigjmp_buf jump;
static volatile sig_atomic_t app_calls;

static void app_siginfo(int sig, siginfo_t *info, void *uctx)
{
	(void)sig;
	(void)info;
	(void)uctx;
	app_calls++;
	siglongjmp(jump, 1);
}

static void app_plain(int sig)
{
	(void)sig;
	app_calls++;
	siglongjmp(jump, 1);
}

/* A SIGBUS of the application's own: touch a mapping of a file cut to 0. */
static void foreign_fault(void)
{
	char path[4200];

	snprintf(path, sizeof path, "%s.foreign", dir);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 8192), 0);
	volatile const char *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(p != MAP_FAILED);
	cr_assert_eq(ftruncate(fd, 0), 0);
	close(fd);
	(void)p[4096];
}

/* The application's handler was there first; the store installs cellar's. */
static void chain_test(int siginfo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	if (siginfo) {
		sa.sa_sigaction = app_siginfo;
		sa.sa_flags = SA_SIGINFO;
	} else {
		sa.sa_handler = app_plain;
	}
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
	build();
	cellar_db *db = open_store(1);
	struct sigaction now;
	sigaction(SIGBUS, NULL, &now);
	cr_assert(now.sa_sigaction != app_siginfo && now.sa_handler != app_plain,
	          "the store did not install its guard");
	app_calls = 0;
	if (sigsetjmp(jump, 1) == 0)
		foreign_fault();
	cr_assert_eq(app_calls, 1, "the application's handler was not called");
	OK(cellar_close(db));
}

Test(sigbus, foreign_fault_goes_to_siginfo_handler, .init = setup,
     .fini = teardown)
{
	chain_test(1);
}

Test(sigbus, foreign_fault_goes_to_plain_handler, .init = setup,
     .fini = teardown)
{
	chain_test(0);
}

/* With no handler of the application's, a foreign fault still kills. */
Test(sigbus, foreign_fault_kills_by_default, .init = setup, .fini = teardown,
     .signal = SIGBUS)
{
	build();
	cellar_db *db = open_store(1);
	foreign_fault();
	cellar_close(db);
}

/* So does a SIGBUS sent with kill(). */
Test(sigbus, sent_sigbus_kills_by_default, .init = setup, .fini = teardown,
     .signal = SIGBUS)
{
	build();
	cellar_db *db = open_store(1);
	raise(SIGBUS);
	cellar_close(db);
}

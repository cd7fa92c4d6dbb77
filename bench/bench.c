/*
 * bench.c - cellar-bench: cellar against its peers, phase by phase.
 *
 * For each engine (a table of functions, see engine.h) the driver forks a
 * child that builds a fresh store of n records and runs the phases on it:
 *
 *   load    create, put n records in random key order, one sync at the end
 *           (the load and build phases begin with an untimed sync(), so
 *           that neither pays for the writeback of earlier phases' files,
 *           and with --prefault, with an untimed touch of fresh memory)
 *   reopen  open a read-only handle on the cleanly closed store (ops = 1);
 *           closing the loading handle before it is not timed
 *   get     n gets of present keys in a shuffled order, values verified
 *   miss    n gets of keys never written; each must be reported absent
 *   iter    one full iteration, reading the first and last byte of every
 *           key and value; the count must be n
 *   mixed   n ops on a read-write handle: 90% verified gets, 10% overwrites
 *           with new values, then one sync (single thread)
 *   zipf    n gets, key popularity Zipf-distributed (s = 0.99)
 *   space   (only when asked for) on a read-write handle: overwrite every
 *           key 10 times, delete 10% of the keys, sync, one compaction
 *           pass where the store has one; then the size on disk against
 *           the live data, and every key verified (deleted ones absent)
 *   recovery (only when asked for; cellar) a child puts 1000 keys, syncs
 *           and dies; time the replaying reopen against a full rebuild
 *   compact (only when asked for; stores with a compaction) overwrite
 *           every live key once, then one compaction pass while a writer
 *           thread keeps putting; records copied per second, the pass's
 *           longest writer pause and the writer's slowest put
 *   cold    (only when asked for; root) drop the page cache, open
 *           read-only and time each of the first 10,000 gets (p50, p99);
 *           where the engine has warm(), again after dropping the cache
 *           and warming
 *   build   (only when asked for; stores with a bulk build: cellar's
 *           builder, cdb's cdb_make) the same n records as the load, built
 *           into a fresh DIR/<engine>.built, first thing in the child, in a
 *           process of its own: its peak RSS is that process's VmHWM after
 *           the inherited driver arrays are freed and the high-water mark
 *           is reset (/proc/self/clear_refs 5; ru_maxrss where that fails)
 *   built-get (with build) the get phase's gets on the built store, right
 *           after the get phase on the put-loaded one
 *   latency (only when asked for; stores with a compaction) overwrite
 *           every live key once; gets at a steady rate on an idle store,
 *           then one thread puts and another gets, each at a steady rate,
 *           while the store is synced every 50 ms and one compaction pass
 *           runs; latency percentiles of puts, gets and idle gets
 *   batch   (only when asked for; stores with write batches: cellar) the
 *           load again, into a fresh DIR/<engine>.batch, the same n records
 *           in the same order committed in batches of 1,000 puts, one sync
 *           at the end: compare its ops/s with the load's
 *
 * Keys and values are functions of (seed, index[, version]) so every value
 * a get returns is checked byte for byte; any mismatch, missing key or
 * engine error stops the run with exit status 1.  Results come back to the
 * parent through a pipe; running each engine in its own process keeps peak
 * RSS (a per-process high-water mark) and the heap separate per engine.
 *
 * Output: one parseable "bench engine=... phase=..." line per phase, then
 * a table of ops/s with the ratio to cellar, and optionally an SVG chart.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cellar.h"
#include "engine.h"
#include "svg.h"

/* ---------------------------------------------------------------- engines */

static const struct engine *const all_engines[] = {
	&engine_cellar,
#ifdef HAVE_LMDB
	&engine_lmdb,
#endif
#ifdef HAVE_CDB
	&engine_cdb,
#endif
#ifdef HAVE_TKRZW
	&engine_tkrzw,
#endif
};
#define N_ENGINES (sizeof all_engines / sizeof all_engines[0])

unsigned bench_cellar_access = CELLAR_ACCESS_DEFAULT;

static _Thread_local char err_buf[512];

void bench_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
}

/* ----------------------------------------------------------------- phases */

enum phase {
	P_LOAD, P_REOPEN, P_GET, P_MULTIGET, P_PINNED, P_MISS, P_ITER, P_MIXED,
	P_ZIPF, P_SPACE, P_COMPACT, P_RECOVERY, P_COLD, P_BUILD, P_BUILT_GET,
	P_LATENCY, P_REFRESH, P_BATCH, N_PHASES
};
static const char *const phase_names[N_PHASES] = {
	"load", "reopen", "get", "multiget", "pinned", "miss", "iter", "mixed",
	"zipf", "space", "compact", "recovery", "cold", "build", "built-get",
	"latency", "refresh", "batch",
};
/* space, compact and latency write ~n to ~11 n records: only when named. */
#define DEFAULT_PHASES ((1u << P_SPACE) - 1) /* load .. zipf */
#define SPACE_ROUNDS 10 /* overwrites of every key in the space phase */

/* Latency percentiles of one kind of operation, in microseconds. */
struct lat_summary {
	uint64_t ops;
	double p50, p99, p999, max;
};

/* What a child reports for one phase, through the pipe. */
struct result {
	int phase;
	int done; /* 0: does not apply to this engine (cdb mixed) */
	uint64_t ops;
	double seconds;
	uint64_t bytes;
	long rss_kb;
	long huge_kb; /* FilePmdMapped: file pages mapped as huge pages; -1 */
	/* space */
	uint64_t writes, deletes, live_keys, index_bytes;
	double record_bytes, compact_seconds;
	/* compact */
	struct bench_compact pass;
	uint64_t writer_puts;
	double writer_max_ms;
	/* recovery */
	uint64_t replayed;
	double rebuild_seconds;
	/* cold: open time, per-lookup latencies; warmed: after warm() */
	double cold_open_s, cold_p50, cold_p99, cold_max;
	int warmed; /* 1: the engine has warm() and the warmed figures are set */
	double warm_s, warm_p50, warm_p99, warm_max;
	/* latency */
	struct lat_summary lat_put, lat_get, lat_idle_get;
	uint64_t lat_syncs;
	/* refresh: the catching-up refresh is seconds/ops; then a reload */
	double reload_seconds;
};

/* ----------------------------------------------------------------- config */

#define MIN_KEY 8     /* the first 8 bytes make keys unique */
#define MAX_KEY 511   /* LMDB's default key limit */
#define MAX_VALUE (16u << 20)

static struct config {
	uint64_t n;
	size_t key_size, val_min, val_max;
	unsigned threads;
	unsigned batch; /* keys per get_many call in the multiget phase */
	unsigned procs; /* reader processes in get, multiget, pinned, miss, zipf */
	unsigned phases; /* bit per enum phase */
	uint64_t seed;
	const char *dir;
	int keep;
	unsigned runs; /* rounds of every engine; the table shows medians */
	double prefault; /* GiB touched and freed before each writing phase */
	const char *svg;
	const struct engine *engines[N_ENGINES];
	size_t n_engines;
} cfg = {
	.n = 1000000,
	.key_size = 16,
	.val_min = 100,
	.val_max = 100,
	.threads = 1,
	.batch = 32,
	.procs = 1,
	.runs = 1,
	.phases = DEFAULT_PHASES,
	.seed = 42,
};

static int want(enum phase p)
{
	return (cfg.phases >> p) & 1;
}

/* ------------------------------------------------------- keys and values */

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's output function: a bijection on 64-bit words. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Fill len bytes from state: the first word is mix64(state), the rest come
 * from a 64-bit LCG seeded by it, with its weak low bits folded away.  The
 * bytes only need to differ between keys and versions, and the generator
 * runs again for every verified get, so it is kept to a few instructions a
 * word: a heavier one adds the same time to every engine and hides how far
 * apart they are.
 */
static void fill(unsigned char *p, size_t len, uint64_t state)
{
	uint64_t x = mix64(state), w;

	for (;;) {
		w = x ^ (x >> 32);
		if (len < 8)
			break;
		memcpy(p, &w, 8);
		p += 8;
		len -= 8;
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	}
	if (len > 0)
		memcpy(p, &w, len);
}

/*
 * Key number i: 8 bytes of mix64(i ^ key seed), which differ for every i,
 * then pseudo-random bytes.  Present keys are i < n, absent ones i >= n.
 */
static void make_key(uint64_t i, unsigned char *key)
{
	uint64_t head = mix64(i ^ mix64(cfg.seed));
	memcpy(key, &head, 8);
	fill(key + 8, cfg.key_size - 8, head);
}

/* Value of key i after `version` overwrites; returns its length. */
static size_t make_value(uint64_t i, uint32_t version, unsigned char *val)
{
	uint64_t h = mix64(mix64(i + mix64(~cfg.seed)) ^ version);
	size_t len = cfg.val_min;
	if (cfg.val_max > cfg.val_min)
		len += h % (cfg.val_max - cfg.val_min + 1);
	fill(val, len, h);
	return len;
}

/* A small, fast generator for choices made inside timed loops. */
static uint64_t rng_next(uint64_t *s)
{
	return mix64((*s)++);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* -------------------------------------------------------------- helpers */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss; /* kilobytes on Linux */
}

/*
 * Kilobytes of file pages the child has mapped with huge-page (PMD)
 * entries, from /proc/self/smaps_rollup; -1 where the kernel doesn't say.
 */
static long file_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "FilePmdMapped: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static uint64_t tree_bytes;

static int add_bytes(const char *path, const struct stat *st, int type,
                     struct FTW *ftw)
{
	(void)path, (void)ftw;
	if (type == FTW_F)
		tree_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

/* Bytes allocated on disk to the files under dir (sparse holes excluded). */
static uint64_t dir_bytes(const char *dir)
{
	tree_bytes = 0;
	nftw(dir, add_bytes, 16, FTW_PHYS);
	return tree_bytes;
}

static int remove_one(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "cellar-bench: remove %s: %s\n", path,
		        strerror(errno));
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL) {
		fprintf(stderr, "cellar-bench: out of memory\n");
		exit(1);
	}
	return p;
}

/* ------------------------------------------------------ workload arrays */

/* A shuffled permutation of 0..n-1 (Fisher-Yates). */
static uint32_t *make_permutation(uint64_t n, uint64_t seed)
{
	uint32_t *p = xmalloc(n * sizeof *p);
	uint64_t i, s = seed;
	for (i = 0; i < n; i++)
		p[i] = (uint32_t)i;
	for (i = n - 1; i > 0; i--) {
		uint64_t j = rng_next(&s) % (i + 1);
		uint32_t t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

/*
 * n key indexes with Zipf-distributed popularity, s = 0.99 (the generator
 * of Gray et al., as in YCSB).  Rank r is key perm[r], so the hot keys are
 * scattered over the store rather than being the first ones loaded.
 */
static uint32_t *make_zipf(uint64_t n, const uint32_t *perm, uint64_t seed)
{
	const double theta = 0.99;
	uint32_t *z = xmalloc(n * sizeof *z);
	double zetan = 0, zeta2 = 1 + pow(0.5, theta), alpha, eta;
	uint64_t i, s = seed;

	for (i = n; i >= 1; i--) /* smallest terms first, for accuracy */
		zetan += pow((double)i, -theta);
	alpha = 1 / (1 - theta);
	eta = (1 - pow(2.0 / (double)n, 1 - theta)) / (1 - zeta2 / zetan);
	for (i = 0; i < n; i++) {
		double u = rng_unit(&s), uz = u * zetan;
		uint64_t r;
		if (uz < 1)
			r = 0;
		else if (uz < zeta2)
			r = 1;
		else
			r = (uint64_t)((double)n * pow(eta * u - eta + 1, alpha));
		if (r >= n)
			r = n - 1;
		z[i] = perm[r];
	}
	return z;
}

/* Filled in the parent before forking; shared copy-on-write. */
static uint32_t *perm, *zipf;

/* --------------------------------------------------------- one engine */

/* Per-child state. */
static const struct engine *eng;
static const char *store_dir; /* the engine's store, for reader processes */
static const char *phase_now = "load";
static uint32_t *versions; /* overwrites per key (mixed, space, compact) */
static unsigned char *deleted; /* keys the space phase deleted */
static int out_fd;

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cellar-bench: %s: %s: ", eng->name, phase_now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void send(struct result *r)
{
	r->rss_kb = peak_rss_kb();
	r->huge_kb = file_huge_kb();
	if (write(out_fd, r, sizeof *r) != (ssize_t)sizeof *r)
		die("writing to the parent: %s", strerror(errno));
}

static void emit(enum phase p, int done, uint64_t ops, double sec,
                 uint64_t bytes)
{
	struct result r;
	memset(&r, 0, sizeof r);
	r.phase = p;
	r.done = done;
	r.ops = ops;
	r.seconds = sec;
	r.bytes = bytes;
	send(&r);
}

/* Check one get's outcome against the key's expected value. */
static int verify(uint64_t idx, uint32_t version, int present, int rc,
                  const unsigned char *got, size_t got_len,
                  unsigned char *expect, char *msg, size_t msg_cap)
{
	size_t len;

	if (rc < 0) {
		snprintf(msg, msg_cap, "key #%" PRIu64 ": %s", idx, err_buf);
		return -1;
	}
	if (!present) {
		if (rc == 0) {
			snprintf(msg, msg_cap, "absent key #%" PRIu64
			         " was found (%zu bytes)", idx, got_len);
			return -1;
		}
		return 0;
	}
	if (rc == 1) {
		snprintf(msg, msg_cap, "key #%" PRIu64 " is missing", idx);
		return -1;
	}
	len = make_value(idx, version, expect);
	if (got_len != len || memcmp(got, expect, len) != 0) {
		snprintf(msg, msg_cap, "key #%" PRIu64 " (version %" PRIu32
		         "): wrong value: got %zu bytes, expected %zu%s", idx,
		         version, got_len, len,
		         got_len == len ? " (contents differ)" : "");
		return -1;
	}
	return 0;
}

struct worker {
	pthread_t tid;
	pthread_barrier_t *start;
	void *h;
	const uint32_t *list; /* key indexes, plus offset */
	uint64_t offset, count;
	int present;
	unsigned batch; /* > 0: get_many in batches of this many (multiget) */
	int pinned;     /* get_view instead of get (pinned) */
	int failed;
	double t_start, t_end; /* this thread's own clock readings */
	char msg[600];
};

#define MAX_BATCH 1024

/*
 * The multiget phase's loop: batches of w->batch keys through get_many
 * (or one get() per key for engines without it), every value verified.
 */
static void multiget_loop(struct worker *w, void *r, unsigned char *expect)
{
	unsigned b = w->batch;
	unsigned char *keys = xmalloc((size_t)b * MAX_KEY);
	unsigned char *bufs = xmalloc((size_t)b * (cfg.val_max + 8));
	const unsigned char *kp[MAX_BATCH];
	size_t lens[MAX_BATCH];
	int rcs[MAX_BATCH];
	uint32_t vers[MAX_BATCH];

	for (unsigned i = 0; i < b; i++)
		kp[i] = keys + (size_t)i * MAX_KEY;
	for (uint64_t j = 0; j < w->count && !w->failed; j += b) {
		size_t n = w->count - j < b ? (size_t)(w->count - j) : b;
		for (size_t i = 0; i < n; i++) {
			uint64_t idx = w->list[j + i] + w->offset;
			vers[i] = w->present ? versions[idx] : 0;
			make_key(idx, keys + i * MAX_KEY);
		}
		if (eng->get_many) {
			if (eng->get_many(w->h, r, kp, cfg.key_size, bufs,
			                  cfg.val_max + 8, lens, rcs, n) != 0)
				for (size_t i = 0; i < n; i++)
					rcs[i] = -1;
		} else {
			for (size_t i = 0; i < n; i++)
				rcs[i] = eng->get(w->h, r, kp[i], cfg.key_size,
				                  bufs + i * (cfg.val_max + 8),
				                  cfg.val_max + 8, &lens[i]);
		}
		for (size_t i = 0; i < n && !w->failed; i++)
			if (verify(w->list[j + i] + w->offset, vers[i], w->present,
			           rcs[i], bufs + i * (cfg.val_max + 8), lens[i],
			           expect, w->msg, sizeof w->msg) != 0)
				w->failed = 1;
	}
	free(keys);
	free(bufs);
}

/* The pinned phase's loop: every value verified where the store holds it. */
static void pinned_loop(struct worker *w, void *r, unsigned char *expect)
{
	unsigned char key[MAX_KEY];

	for (uint64_t j = 0; j < w->count && !w->failed; j++) {
		uint64_t idx = w->list[j] + w->offset;
		uint32_t version = versions[idx];
		const void *val = NULL;
		size_t len = 0;
		void *token = NULL;
		make_key(idx, key);
		int rc = eng->get_view(w->h, r, key, cfg.key_size, &val, &len, &token);
		if (verify(idx, version, 1, rc, val, len, expect, w->msg,
		           sizeof w->msg) != 0)
			w->failed = 1;
		if (rc == 0)
			eng->view_release(w->h, token);
	}
}

static void *get_worker(void *arg)
{
	struct worker *w = arg;
	unsigned char key[MAX_KEY];
	unsigned char *buf = xmalloc(cfg.val_max + 8);
	unsigned char *expect = xmalloc(cfg.val_max + 8);
	void *r = NULL;
	uint64_t j;
	size_t len = 0;
	int have_reader = eng->reader_new(w->h, &r) == 0;

	if (!have_reader) {
		snprintf(w->msg, sizeof w->msg, "%s", err_buf);
		w->failed = 1;
	}
	pthread_barrier_wait(w->start);
	w->t_start = now();
	if (w->batch)
		multiget_loop(w, r, expect);
	else if (w->pinned && eng->get_view)
		pinned_loop(w, r, expect);
	for (j = 0; j < w->count && !w->failed && !w->batch &&
	            !(w->pinned && eng->get_view); j++) {
		uint64_t idx = w->list[j] + w->offset;
		/* Read before the get, so this cache miss overlaps the engine's
		 * instead of adding to every engine's time. */
		uint32_t version = w->present ? versions[idx] : 0;
		int rc;
		make_key(idx, key);
		rc = eng->get(w->h, r, key, cfg.key_size, buf, cfg.val_max, &len);
		if (verify(idx, version, w->present, rc, buf, len, expect, w->msg,
		           sizeof w->msg) != 0)
			w->failed = 1;
	}
	w->t_end = now();
	if (have_reader)
		eng->reader_free(w->h, r);
	free(buf);
	free(expect);
	return NULL;
}

/* How a run of gets reads: plain gets, get_many batches, or pinned. */
struct gets_mode {
	unsigned batch; /* > 0: get_many in batches of this many */
	int pinned;
};

/*
 * count gets of list spread over cfg.threads threads on h, as mode says;
 * *t0, *t1: the first worker's start and the last one's end.  With
 * go_fd >= 0 (a reader process), the workers wait until a byte can be read
 * from go_fd, after one was written to ready_fd.  Returns 0, or -1 with msg
 * set.
 */
static int gets_on(void *h, const uint32_t *list, uint64_t count,
                   uint64_t offset, int present, struct gets_mode mode,
                   int ready_fd, int go_fd, double *t0_out, double *t1_out,
                   char *msg, size_t msg_cap)
{
	unsigned t, nt = cfg.threads;
	struct worker *w = calloc(nt, sizeof *w);
	pthread_barrier_t start;
	uint64_t done = 0;
	double t0, t1;
	int failed = 0;
	char c = 'r';

	if (w == NULL)
		die("out of memory");
	pthread_barrier_init(&start, NULL, nt + 1);
	for (t = 0; t < nt; t++) {
		uint64_t share = count / nt + (t < count % nt);
		w[t].start = &start;
		w[t].h = h;
		w[t].list = list + done;
		w[t].offset = offset;
		w[t].count = share;
		w[t].present = present;
		w[t].batch = mode.batch;
		w[t].pinned = mode.pinned;
		done += share;
		if (pthread_create(&w[t].tid, NULL, get_worker, &w[t]) != 0)
			die("pthread_create failed");
	}
	/*
	 * The wall time runs from the first worker's start to the last one's
	 * end, as the workers read the clock: a thread released by the barrier
	 * may be scheduled late (on a busy machine, after a worker finished),
	 * so the main thread's own reading would cut the phase short.
	 */
	if (go_fd >= 0 && (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1))
		die("reader process: lost the parent");
	pthread_barrier_wait(&start);
	for (t = 0; t < nt; t++)
		pthread_join(w[t].tid, NULL);
	t0 = w[0].t_start;
	t1 = w[0].t_end;
	for (t = 1; t < nt; t++) {
		if (w[t].t_start < t0)
			t0 = w[t].t_start;
		if (w[t].t_end > t1)
			t1 = w[t].t_end;
	}
	pthread_barrier_destroy(&start);
	for (t = 0; t < nt; t++)
		if (w[t].failed && !failed) {
			snprintf(msg, msg_cap, "%s", w[t].msg);
			failed = 1;
		}
	free(w);
	*t0_out = t0;
	*t1_out = t1;
	return failed ? -1 : 0;
}

/* What a reader process reports to the engine's process. */
struct proc_report {
	double t0, t1;
	int failed;
	char msg[600];
};

/*
 * --procs P: P reader processes, each opening the store read-only itself
 * and doing its share of the n gets with cfg.threads threads.  All of them
 * open first and start together; the wall time runs from the first start
 * to the last end (CLOCK_MONOTONIC is one clock for every process).
 */
static double run_gets_procs(const uint32_t *list, uint64_t offset,
                             int present, struct gets_mode mode)
{
	unsigned p, np = cfg.procs;
	int ready[2], go[2], rep[2], status;
	pid_t *pids = calloc(np, sizeof *pids);
	uint64_t done = 0;
	double t0 = 0, t1 = 0;
	char c = 'g', msg[600] = "";

	if (pids == NULL || pipe(ready) != 0 || pipe(go) != 0 || pipe(rep) != 0)
		die("reader processes: %s", strerror(errno));
	fflush(NULL);
	for (p = 0; p < np; p++) {
		uint64_t share = cfg.n / np + (p < cfg.n % np);
		if ((pids[p] = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (pids[p] == 0) {
			struct proc_report r;
			void *h = NULL;
			memset(&r, 0, sizeof r);
			close(ready[0]);
			close(go[1]);
			close(rep[0]);
			if (eng->open(&h, store_dir, 0, cfg.n, cfg.key_size,
			              cfg.val_max) != 0) {
				snprintf(r.msg, sizeof r.msg, "reader process: %s",
				         err_buf);
				r.failed = 1;
				if (write(ready[1], &c, 1) != 1)
					_exit(1);
			} else {
				r.failed = gets_on(h, list + done, share, offset,
				                   present, mode, ready[1], go[0], &r.t0,
				                   &r.t1, r.msg, sizeof r.msg) != 0;
			}
			if (write(rep[1], &r, sizeof r) != (ssize_t)sizeof r)
				_exit(1);
			_exit(0); /* the handle goes with the process */
		}
		done += share;
	}
	close(ready[1]);
	close(go[0]);
	close(rep[1]);
	for (p = 0; p < np; p++)
		if (read(ready[0], &c, 1) != 1)
			die("a reader process died before it was ready");
	for (p = 0; p < np; p++)
		if (write(go[1], &c, 1) != 1)
			die("starting the reader processes: %s", strerror(errno));
	for (p = 0; p < np; p++) {
		struct proc_report r;
		size_t got = 0;
		ssize_t k;
		while (got < sizeof r &&
		       ((k = read(rep[0], (char *)&r + got, sizeof r - got)) > 0 ||
		        (k < 0 && errno == EINTR)))
			got += k > 0 ? (size_t)k : 0;
		if (got < sizeof r)
			die("a reader process died");
		if (r.failed && msg[0] == '\0')
			snprintf(msg, sizeof msg, "%s", r.msg);
		if (p == 0 || r.t0 < t0)
			t0 = r.t0;
		if (p == 0 || r.t1 > t1)
			t1 = r.t1;
	}
	for (p = 0; p < np; p++)
		while (waitpid(pids[p], &status, 0) < 0 && errno == EINTR)
			;
	close(ready[0]);
	close(go[1]);
	close(rep[0]);
	free(pids);
	if (msg[0] != '\0')
		die("%s", msg);
	return t1 - t0;
}

/*
 * n gets spread over cfg.threads threads sharing h, or over cfg.procs
 * processes with a handle each, in batches of batch keys through get_many
 * when batch > 0; returns the wall time.
 */
static double run_gets(void *h, const uint32_t *list, uint64_t offset,
                       int present, unsigned batch, int pinned)
{
	struct gets_mode mode = { batch, pinned };
	double t0, t1;
	char msg[600];

	if (cfg.procs > 1)
		return run_gets_procs(list, offset, present, mode);
	if (gets_on(h, list, cfg.n, offset, present, mode, -1, -1, &t0, &t1,
	            msg, sizeof msg) != 0)
		die("%s", msg);
	return t1 - t0;
}

/* 90% verified gets, 10% overwrites, uniform over present keys; one sync. */
static double run_mixed(void *h)
{
	unsigned char key[MAX_KEY];
	unsigned char *buf = xmalloc(cfg.val_max + 8);
	unsigned char *expect = xmalloc(cfg.val_max + 8);
	char msg[600];
	uint64_t s = mix64(cfg.seed ^ 0x6d69786564ull), j;
	void *r;
	size_t len = 0;
	double t0, t1;

	if (eng->reader_new(h, &r) != 0)
		die("%s", err_buf);
	t0 = now();
	for (j = 0; j < cfg.n; j++) {
		uint64_t x = rng_next(&s), idx = (x >> 16) % cfg.n;
		make_key(idx, key);
		if ((x & 0xffff) < 6554) { /* 10% */
			versions[idx]++;
			len = make_value(idx, versions[idx], expect);
			if (eng->put(h, key, cfg.key_size, expect, len) != 0)
				die("put key #%" PRIu64 ": %s", idx, err_buf);
		} else {
			int rc = eng->get(h, r, key, cfg.key_size, buf,
			                  cfg.val_max, &len);
			if (verify(idx, versions[idx], 1, rc, buf, len, expect, msg,
			           sizeof msg) != 0)
				die("%s", msg);
		}
	}
	if (eng->sync(h) != 0)
		die("%s", err_buf);
	t1 = now();
	eng->reader_free(h, r);
	free(buf);
	free(expect);
	return t1 - t0;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Check every key against versions[] and deleted[] (and the iteration count
 * against the live keys); returns the number of live keys and, in *bytes,
 * the size of their records in cellar's format (checksum 4 + kind 1 +
 * varint key length + varint value length + key + value).
 */
static uint64_t verify_all(void *h, double *bytes)
{
	unsigned char key[MAX_KEY];
	unsigned char *buf = xmalloc(cfg.val_max + 8);
	unsigned char *expect = xmalloc(cfg.val_max + 8);
	uint64_t i, live = 0, count, touch;
	double rec = 0;
	char msg[600];
	size_t len = 0;
	void *r;

	if (eng->reader_new(h, &r) != 0)
		die("%s", err_buf);
	for (i = 0; i < cfg.n; i++) {
		int rc;
		make_key(i, key);
		rc = eng->get(h, r, key, cfg.key_size, buf, cfg.val_max, &len);
		if (verify(i, versions[i], !deleted[i], rc, buf, len, expect, msg,
		           sizeof msg) != 0)
			die("%s", msg);
		if (!deleted[i]) {
			live++;
			rec += (double)(5 + varint_size(cfg.key_size) +
			                varint_size(len) + cfg.key_size + len);
		}
	}
	eng->reader_free(h, r);
	if (eng->iterate(h, &count, &touch) != 0)
		die("%s", err_buf);
	if (count != live)
		die("iterated %" PRIu64 " items, expected %" PRIu64, count, live);
	free(buf);
	free(expect);
	*bytes = rec;
	return live;
}

/* Swap handle *h for one opened read-write (writable=1) or read-only. */
static void reopen(void **h, const char *dir, int writable)
{
	if (eng->close(*h) != 0)
		die("%s", err_buf);
	*h = NULL;
	if (eng->open(h, dir, writable, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
}

/* Put the next version of every key not deleted; returns how many. */
static uint64_t overwrite_live(void *h, unsigned char *key, unsigned char *val)
{
	uint64_t i, n = 0;

	for (i = 0; i < cfg.n; i++) {
		size_t len;
		if (deleted[i])
			continue;
		versions[i]++;
		len = make_value(i, versions[i], val);
		make_key(i, key);
		if (eng->put(h, key, cfg.key_size, val, len) != 0)
			die("put key #%" PRIu64 ": %s", i, err_buf);
		n++;
	}
	return n;
}

/* Overwrite every key SPACE_ROUNDS times, delete 10%, sync, compact. */
static void run_space(void **h, const char *dir)
{
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	struct bench_space sp = { 0, 0 };
	struct bench_compact pass;
	struct result r;
	uint64_t i, ndel = 0;
	double t0, tc;
	int round;

	memset(&r, 0, sizeof r);
	memset(&pass, 0, sizeof pass);
	reopen(h, dir, 1);
	t0 = now();
	for (round = 0; round < SPACE_ROUNDS; round++)
		r.writes += overwrite_live(*h, key, val);
	for (i = 9; i < cfg.n; i += 10) { /* keys are random: any 10% */
		int rc;
		if (deleted[i])
			continue;
		make_key(i, key);
		rc = eng->del(*h, key, cfg.key_size);
		if (rc != 0)
			die("delete key #%" PRIu64 ": %s", i,
			    rc < 0 ? err_buf : "reported absent");
		deleted[i] = 1;
		ndel++;
	}
	if (eng->sync(*h) != 0)
		die("%s", err_buf);
	tc = now();
	if (eng->compact != NULL && eng->compact(*h, &pass) != 0)
		die("%s", err_buf);
	r.compact_seconds = eng->compact != NULL ? now() - tc : 0;
	r.seconds = now() - t0;
	r.deletes = ndel;
	r.ops = r.writes + ndel;
	if (eng->compact != NULL && !pass.complete)
		die("the compaction pass did not complete");

	/* Size of the closed store, then everything read back. */
	reopen(h, dir, 0);
	r.bytes = dir_bytes(dir);
	r.live_keys = verify_all(*h, &r.record_bytes);
	if (eng->space != NULL) {
		if (eng->space(*h, &sp) != 0)
			die("%s", err_buf);
		if (sp.keys != r.live_keys)
			die("the store counts %" PRIu64 " keys, %" PRIu64
			    " are live", sp.keys, r.live_keys);
		r.index_bytes = sp.index_bytes;
	}
	r.phase = P_SPACE;
	r.done = 1;
	send(&r);
	free(val);
}

/*
 * recovery (cellar only): a child process opens the store for writing, puts
 * RECOVERY_WRITES keys, syncs them and dies without closing: a crash with
 * that many writes past the last index checkpoint.  Time a read-only open,
 * which replays them, then remove the index and time a read-only open that
 * rebuilds the whole index from the segments.  Read-only opens change no
 * file, so each measures the recovery work alone.
 */
#define RECOVERY_WRITES 1000

static double timed_open(const char *dir, uint64_t *replayed, int *rebuilt)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db_stats st;
	cellar_db *db;
	double t0 = now(), sec;

	o.flags = CELLAR_READONLY;
	if (cellar_open(&db, dir, &o) != CELLAR_OK)
		die("open: %s", cellar_errmsg());
	sec = now() - t0;
	if (cellar_stats(db, &st) != CELLAR_OK)
		die("stats: %s", cellar_errmsg());
	*replayed = st.recovered_records;
	*rebuilt = st.rebuilt_index;
	cellar_close(db);
	return sec;
}

static void run_recovery(void **h, const char *dir)
{
	struct result r = { 0 };
	char path[4200];
	int rebuilt, status;
	pid_t pid;

	if (eng->close(*h) != 0)
		die("%s", err_buf);
	*h = NULL;
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		cellar_options o = CELLAR_OPTIONS_INIT;
		unsigned char key[MAX_KEY], *val = xmalloc(cfg.val_max + 8);
		cellar_db *db;
		if (cellar_open(&db, dir, &o) != CELLAR_OK)
			_exit(2);
		/* New versions of keys 0, 1, ..., as the parent records below,
		 * so that later phases still know every key's value. */
		for (uint64_t i = 0; i < RECOVERY_WRITES; i++) {
			uint64_t idx = i % cfg.n;
			size_t len = make_value(idx, ++versions[idx], val);
			make_key(idx, key);
			if (cellar_put(db, key, cfg.key_size, val, len) != 0)
				_exit(3);
		}
		if (cellar_sync(db) != CELLAR_OK)
			_exit(4);
		_exit(0); /* the crash: no close, no checkpoint */
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("the crashing writer failed (status %d)", status);
	for (uint64_t i = 0; i < RECOVERY_WRITES; i++) {
		versions[i % cfg.n]++;
		deleted[i % cfg.n] = 0;
	}
	r.ops = RECOVERY_WRITES;
	r.seconds = timed_open(dir, &r.replayed, &rebuilt);
	if (rebuilt || r.replayed < RECOVERY_WRITES)
		die("reopen after the crash replayed %" PRIu64 " records%s",
		    r.replayed, rebuilt ? " and rebuilt the index" : "");
	snprintf(path, sizeof path, "%s/index", dir);
	if (unlink(path) != 0)
		die("unlink %s: %s", path, strerror(errno));
	r.rebuild_seconds = timed_open(dir, &r.replayed, &rebuilt);
	if (!rebuilt)
		die("no rebuild without the index file");
	r.replayed = RECOVERY_WRITES;
	r.bytes = dir_bytes(dir);
	r.phase = P_RECOVERY;
	r.done = 1;
	send(&r);
	reopen(h, dir, 0);
}

/*
 * cold: lookups on a cold page cache.  COLD_LOOKUPS gets of present keys
 * (the start of perm), each timed, right after dropping the page cache and
 * opening read-only; then, for engines with warm(), the same after dropping
 * the cache again, opening and warming.  Needs root (drop_caches).
 */
#define COLD_LOOKUPS 10000

/* Write back dirty pages, then drop the clean ones: 0, or -1 if not allowed. */
static int drop_page_cache(void)
{
	FILE *f;
	int ok;

	sync();
	if ((f = fopen("/proc/sys/vm/drop_caches", "w")) == NULL)
		return -1;
	ok = fputs("3\n", f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Time each of the lookups on h; sorted latencies in lat[]; total seconds. */
static double timed_lookups(void *h, double *lat, uint64_t count)
{
	unsigned char key[MAX_KEY];
	unsigned char *buf = xmalloc(cfg.val_max + 8);
	unsigned char *expect = xmalloc(cfg.val_max + 8);
	char msg[600];
	double total = 0;
	size_t len = 0;
	void *r;

	if (eng->reader_new(h, &r) != 0)
		die("%s", err_buf);
	for (uint64_t j = 0; j < count; j++) {
		uint64_t idx = perm[j];
		uint32_t version = versions[idx];
		double t0;
		int rc;
		make_key(idx, key);
		t0 = now();
		rc = eng->get(h, r, key, cfg.key_size, buf, cfg.val_max, &len);
		lat[j] = now() - t0;
		total += lat[j];
		if (verify(idx, version, 1, rc, buf, len, expect, msg,
		           sizeof msg) != 0)
			die("%s", msg);
	}
	eng->reader_free(h, r);
	qsort(lat, count, sizeof *lat, cmp_double);
	free(buf);
	free(expect);
	return total;
}

/* The q-quantile of count sorted values (nearest rank). */
static double quantile(const double *v, uint64_t count, double q)
{
	uint64_t i = (uint64_t)ceil(q * (double)count);
	return v[i > 0 ? i - 1 : 0];
}

/*
 * The refresh phase: a writer on the store overwrites n/3 random keys and
 * syncs; the read-only handle's refresh that replays them is timed.  Then
 * the writer compacts (removing segments the handle holds), and the
 * refresh that reopens the store is timed.  Both states are verified whole
 * on the read-only handle, untimed.
 */
static void run_refresh(void **h, const char *dir)
{
	uint64_t m = cfg.n / 3 ? cfg.n / 3 : 1, s = mix64(cfg.seed ^ 0x72656672ull);
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	struct bench_compact pass;
	struct result r;
	double t0, bytes;
	void *w = NULL;

	memset(&r, 0, sizeof r);
	if (eng->open(&w, dir, 1, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
	for (uint64_t j = 0; j < m; j++) {
		uint64_t idx = rng_next(&s) % cfg.n;
		if (deleted[idx])
			continue;
		make_key(idx, key);
		size_t len = make_value(idx, ++versions[idx], val);
		if (eng->put(w, key, cfg.key_size, val, len) != 0)
			die("%s", err_buf);
	}
	if (eng->sync(w) != 0)
		die("%s", err_buf);
	t0 = now();
	if (eng->refresh(*h) != 0)
		die("%s", err_buf);
	r.seconds = now() - t0;
	verify_all(*h, &bytes);
	if (eng->compact(w, &pass) != 0 || eng->sync(w) != 0)
		die("%s", err_buf);
	t0 = now();
	if (eng->refresh(*h) != 0)
		die("%s", err_buf);
	r.reload_seconds = now() - t0;
	verify_all(*h, &bytes);
	if (eng->close(w) != 0)
		die("%s", err_buf);
	r.phase = P_REFRESH;
	r.done = 1;
	r.ops = m;
	r.pass = pass;
	r.bytes = dir_bytes(dir);
	send(&r);
	free(val);
}

static void run_cold(void **h, const char *dir)
{
	uint64_t count = cfg.n < COLD_LOOKUPS ? cfg.n : COLD_LOOKUPS;
	double *lat = xmalloc(count * sizeof *lat), t0;
	struct result r;

	memset(&r, 0, sizeof r);
	if (eng->close(*h) != 0)
		die("%s", err_buf);
	*h = NULL;
	if (drop_page_cache() != 0) {
		printf("bench engine=%s phase=cold skipped: needs root "
		       "(/proc/sys/vm/drop_caches: %s)\n", eng->name,
		       strerror(errno));
		fflush(stdout);
		emit(P_COLD, 0, 0, 0, 0);
		reopen(h, dir, 0);
		free(lat);
		return;
	}
	t0 = now();
	if (eng->open(h, dir, 0, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
	r.cold_open_s = now() - t0;
	r.seconds = timed_lookups(*h, lat, count);
	r.cold_p50 = quantile(lat, count, 0.50);
	r.cold_p99 = quantile(lat, count, 0.99);
	r.cold_max = lat[count - 1];
	if (eng->warm != NULL) {
		if (eng->close(*h) != 0)
			die("%s", err_buf);
		*h = NULL;
		if (drop_page_cache() != 0)
			die("drop_caches: %s", strerror(errno));
		if (eng->open(h, dir, 0, cfg.n, cfg.key_size, cfg.val_max) != 0)
			die("%s", err_buf);
		t0 = now();
		if (eng->warm(*h) != 0)
			die("%s", err_buf);
		r.warm_s = now() - t0;
		timed_lookups(*h, lat, count);
		r.warmed = 1;
		r.warm_p50 = quantile(lat, count, 0.50);
		r.warm_p99 = quantile(lat, count, 0.99);
		r.warm_max = lat[count - 1];
	}
	r.phase = P_COLD;
	r.done = 1;
	r.ops = count;
	r.bytes = dir_bytes(dir);
	send(&r);
	free(lat);
}

/* The compact phase's writer: overwrites random live keys until told. */
struct pass_writer {
	pthread_t tid;
	void *h;
	atomic_int stop;
	pthread_barrier_t *start;
	uint64_t puts;
	double max_ms;
	char msg[600];
	int failed;
};

static void *pass_writer_main(void *arg)
{
	struct pass_writer *w = arg;
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	uint64_t s = mix64(cfg.seed ^ 0x77726974ull);

	pthread_barrier_wait(w->start);
	while (!atomic_load(&w->stop)) {
		uint64_t idx = rng_next(&s) % cfg.n;
		size_t len;
		double t0, ms;
		if (deleted[idx])
			continue;
		make_key(idx, key);
		len = make_value(idx, versions[idx] + 1, val);
		t0 = now();
		if (eng->put(w->h, key, cfg.key_size, val, len) != 0) {
			snprintf(w->msg, sizeof w->msg, "writer: put key #%"
			         PRIu64 ": %s", idx, err_buf);
			w->failed = 1;
			break;
		}
		ms = (now() - t0) * 1e3;
		versions[idx]++;
		if (ms > w->max_ms)
			w->max_ms = ms;
		w->puts++;
	}
	free(val);
	return NULL;
}

/* Make every live record dead once, then one pass beside a writer. */
static void run_compact(void **h, const char *dir)
{
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	struct pass_writer w;
	pthread_barrier_t start;
	struct result r;
	double dummy;

	memset(&r, 0, sizeof r);
	memset(&w, 0, sizeof w);
	reopen(h, dir, 1);
	overwrite_live(*h, key, val); /* untimed: dead data to reclaim */
	if (eng->sync(*h) != 0)
		die("%s", err_buf);

	pthread_barrier_init(&start, NULL, 2);
	w.h = *h;
	w.start = &start;
	if (pthread_create(&w.tid, NULL, pass_writer_main, &w) != 0)
		die("pthread_create failed");
	pthread_barrier_wait(&start);
	if (eng->compact(*h, &r.pass) != 0)
		die("%s", err_buf);
	atomic_store(&w.stop, 1);
	pthread_join(w.tid, NULL);
	pthread_barrier_destroy(&start);
	if (w.failed)
		die("%s", w.msg);
	if (!r.pass.complete)
		die("the compaction pass did not complete");
	if (eng->sync(*h) != 0)
		die("%s", err_buf);
	reopen(h, dir, 0);
	r.live_keys = verify_all(*h, &dummy);
	r.phase = P_COMPACT;
	r.done = 1;
	r.ops = r.pass.records;
	r.seconds = r.pass.seconds;
	r.bytes = dir_bytes(dir);
	r.writer_puts = w.puts;
	r.writer_max_ms = w.max_ms;
	send(&r);
	free(val);
}

static char built_dir[4200]; /* the build phase's store */

/* VmHWM of this process, in kB (-1 if unknown). */
static long vm_hwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * --prefault: touch cfg.prefault GiB of anonymous memory and give it back,
 * untimed, before a writing phase.  On a VM whose host backs guest memory
 * lazily (and takes freed memory back), the first touch of a page costs
 * microseconds, and a phase that fills the page cache with memory the guest
 * has not used lately pays that, more or less depending on what ran
 * before it.  Freed just now, the touched pages are what the kernel hands
 * the page cache next, so every engine's writing phase starts alike.
 */
static void prefault(void)
{
	size_t len = (size_t)(cfg.prefault * (double)(1ull << 30));
	int status;
	pid_t pid;

	if (len == 0)
		return;
	fflush(NULL);
	/* In a child, so that the phase's peak RSS does not count it. */
	if ((pid = fork()) < 0)
		die("--prefault: fork: %s", strerror(errno));
	if (pid == 0) {
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		for (size_t i = 0; i < len; i += 4096)
			p[i] = 1;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("--prefault: could not touch %zu bytes", len);
}

/* The batch phase: the load in batches of BATCH_PUTS (see the top). */
#define BATCH_PUTS 1000

static void run_batch(const char *dir)
{
	char bdir[4200];
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	void *h = NULL;
	double t0, sec;

	if (eng->batch_add == NULL) {
		emit(P_BATCH, 0, 0, 0, 0);
		free(val);
		return;
	}
	phase_now = "batch";
	snprintf(bdir, sizeof bdir, "%s.batch", dir);
	if (mkdir(bdir, 0755) != 0)
		die("mkdir %s: %s", bdir, strerror(errno));
	sync();
	prefault();
	t0 = now();
	if (eng->load_open(&h, bdir, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
	for (uint64_t i = 0; i < cfg.n; i++) {
		size_t len = make_value(i, 0, val);
		make_key(i, key);
		int last = (i + 1) % BATCH_PUTS == 0 || i + 1 == cfg.n;
		if (eng->batch_add(h, key, cfg.key_size, val, len) != 0 ||
		    (last && eng->batch_commit(h) != 0))
			die("batch at key #%" PRIu64 ": %s", i, err_buf);
	}
	if (eng->sync(h) != 0)
		die("%s", err_buf);
	sec = now() - t0;
	if (eng->close(h) != 0)
		die("%s", err_buf);
	emit(P_BATCH, 1, cfg.n, sec, dir_bytes(bdir));
	if (!cfg.keep)
		remove_tree(bdir);
	free(val);
}

/* The build phase, in a process of its own (see the top of the file). */
static void run_build(const char *dir)
{
	unsigned char key[MAX_KEY];
	struct result r;
	int fds[2], status, reset;
	size_t got = 0;
	ssize_t k;
	pid_t pid;

	snprintf(built_dir, sizeof built_dir, "%s.built", dir);
	if (eng->build_open == NULL) {
		emit(P_BUILD, 0, 0, 0, 0);
		return;
	}
	phase_now = "build";
	if (pipe(fds) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		unsigned char *val = xmalloc(cfg.val_max + 8);
		void *b;
		FILE *f;
		double t0;

		close(fds[0]);
		/* Only the build's own memory counts. */
		free(perm);
		free(zipf);
		perm = zipf = NULL;
		prefault();
		f = fopen("/proc/self/clear_refs", "w");
		reset = f != NULL && fputs("5", f) >= 0;
		if (f != NULL && fclose(f) != 0)
			reset = 0;
		t0 = now();
		if (eng->build_open(&b, built_dir, cfg.n, cfg.key_size,
		                    cfg.val_max) != 0)
			die("%s", err_buf);
		for (uint64_t i = 0; i < cfg.n; i++) {
			size_t len = make_value(i, 0, val);
			make_key(i, key);
			if (eng->build_add(b, key, cfg.key_size, val, len) != 0)
				die("build key #%" PRIu64 ": %s", i, err_buf);
		}
		if (eng->build_finish(b) != 0)
			die("%s", err_buf);
		memset(&r, 0, sizeof r);
		r.phase = P_BUILD;
		r.done = 1;
		r.ops = cfg.n;
		r.seconds = now() - t0;
		r.bytes = dir_bytes(built_dir);
		r.rss_kb = reset && vm_hwm_kb() > 0 ? vm_hwm_kb() : peak_rss_kb();
		r.huge_kb = -1;
		if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
			die("writing to the parent: %s", strerror(errno));
		free(val);
		_exit(0);
	}
	close(fds[1]);
	while ((k = read(fds[0], (char *)&r + got, sizeof r - got)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break;
		got += (size_t)k;
		if (got == sizeof r)
			break;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the build process failed");
	if (write(out_fd, &r, sizeof r) != (ssize_t)sizeof r)
		die("writing to the parent: %s", strerror(errno));
}

/* ---- the latency phase ---- */

#define LAT_PUT_RATE 20000   /* puts per second */
#define LAT_GET_RATE 50000   /* gets per second */
#define LAT_SYNC_MS 50       /* sync period */
#define LAT_IDLE_SECONDS 2.0 /* gets on the idle store */
#define LAT_MIN_SECONDS 4.0  /* the loaded part lasts at least this long */

/*
 * A log-linear histogram of nanoseconds: 64 sub-buckets per power of two
 * (under 1.6% error), so that every operation counts without keeping one
 * sample each.
 */
#define LAT_SUB 64
#define LAT_BUCKETS (LAT_SUB * 60)
struct lat_hist {
	uint64_t n[LAT_BUCKETS];
	uint64_t count, max_ns;
};

static unsigned lat_bucket(uint64_t ns)
{
	unsigned e;

	if (ns < LAT_SUB)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns); /* >= 6 */
	if (e >= 64)
		return LAT_BUCKETS - 1;
	unsigned b = (e - 5) * LAT_SUB + (unsigned)((ns >> (e - 6)) & (LAT_SUB - 1));
	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

/* The largest value in bucket b. */
static uint64_t lat_bucket_top(unsigned b)
{
	unsigned e;

	if (b < LAT_SUB)
		return b;
	e = b / LAT_SUB + 5;
	return (((uint64_t)LAT_SUB + (b % LAT_SUB) + 1) << (e - 6)) - 1;
}

static void lat_add(struct lat_hist *h, uint64_t ns)
{
	h->n[lat_bucket(ns)]++;
	h->count++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static double lat_pct(const struct lat_hist *h, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;

	if (!h->count)
		return 0;
	for (unsigned b = 0; b < LAT_BUCKETS; b++) {
		seen += h->n[b];
		if (seen >= want) {
			uint64_t top = lat_bucket_top(b);
			return (double)(top < h->max_ns ? top : h->max_ns) / 1e3;
		}
	}
	return (double)h->max_ns / 1e3;
}

static struct lat_summary lat_summarize(const struct lat_hist *h)
{
	struct lat_summary s;

	s.ops = h->count;
	s.p50 = lat_pct(h, 0.50);
	s.p99 = lat_pct(h, 0.99);
	s.p999 = lat_pct(h, 0.999);
	s.max = (double)h->max_ns / 1e3;
	return s;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until the monotonic clock reads at (ns). */
static void sleep_until(uint64_t at)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(at / 1000000000ull);
	ts.tv_nsec = (long)(at % 1000000000ull);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* A thread that puts or gets at a steady rate until told to stop. */
struct lat_worker {
	pthread_t tid;
	void *h;
	int puts;       /* 1: puts, 0: gets */
	unsigned rate;  /* operations per second */
	atomic_int stop;
	struct lat_hist *hist;
	char msg[600];
	int failed;
};

static void *lat_worker_main(void *arg)
{
	struct lat_worker *w = arg;
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	uint64_t s = mix64(cfg.seed ^ (w->puts ? 0x6c61747075ull : 0x6c61746765ull));
	uint64_t period = 1000000000ull / w->rate, next = now_ns();
	void *r = NULL;

	if (!w->puts && eng->reader_new(w->h, &r) != 0) {
		snprintf(w->msg, sizeof w->msg, "reader: %s", err_buf);
		w->failed = 1;
		free(val);
		return NULL;
	}
	while (!atomic_load(&w->stop)) {
		uint64_t idx = rng_next(&s) % cfg.n, t0, t1;
		size_t len;
		int rc;
		if (deleted[idx])
			continue;
		make_key(idx, key);
		if (w->puts) {
			/* versions[] is only the putter's during the phase */
			len = make_value(idx, versions[idx] + 1, val);
			t0 = now_ns();
			rc = eng->put(w->h, key, cfg.key_size, val, len);
			t1 = now_ns();
			versions[idx]++;
		} else {
			t0 = now_ns();
			rc = eng->get(w->h, r, key, cfg.key_size, val,
			              cfg.val_max + 8, &len);
			t1 = now_ns();
		}
		if (rc != 0) {
			snprintf(w->msg, sizeof w->msg, "%s key #%" PRIu64 ": %s",
			         w->puts ? "put" : "get", idx,
			         rc < 0 ? err_buf : "absent");
			w->failed = 1;
			break;
		}
		lat_add(w->hist, t1 - t0);
		next += period;
		if (next > t1)
			sleep_until(next);
		else if (t1 - next > 100 * period)
			next = t1; /* far behind (a stall): do not burst */
	}
	if (r)
		eng->reader_free(w->h, r);
	free(val);
	return NULL;
}

static void lat_start(struct lat_worker *w, void *h, int puts, unsigned rate,
                      struct lat_hist *hist)
{
	memset(w, 0, sizeof *w);
	w->h = h;
	w->puts = puts;
	w->rate = rate;
	w->hist = hist;
	if (pthread_create(&w->tid, NULL, lat_worker_main, w) != 0)
		die("pthread_create failed");
}

static void lat_stop(struct lat_worker *w)
{
	atomic_store(&w->stop, 1);
	pthread_join(w->tid, NULL);
	if (w->failed)
		die("%s", w->msg);
}

/* One compaction pass on a thread of its own. */
struct lat_compactor {
	pthread_t tid;
	void *h;
	struct bench_compact pass;
	atomic_int done;
	int failed;
	char msg[600];
};

static void *lat_compactor_main(void *arg)
{
	struct lat_compactor *c = arg;

	if (eng->compact(c->h, &c->pass) != 0) {
		snprintf(c->msg, sizeof c->msg, "compact: %s", err_buf);
		c->failed = 1;
	}
	atomic_store(&c->done, 1);
	return NULL;
}

static void run_latency(void **h, const char *dir)
{
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	struct lat_hist *hp = calloc(3, sizeof *hp);
	struct lat_worker pw, gw;
	struct lat_compactor c;
	struct result r;
	double t0, dummy;

	if (!hp)
		die("out of memory");
	memset(&r, 0, sizeof r);
	memset(&c, 0, sizeof c);
	reopen(h, dir, 1);
	overwrite_live(*h, key, val); /* untimed: dead data to reclaim */
	if (eng->sync(*h) != 0)
		die("%s", err_buf);
	/* Gets on the idle store, for comparison. */
	lat_start(&gw, *h, 0, LAT_GET_RATE, &hp[2]);
	t0 = now();
	while (now() - t0 < LAT_IDLE_SECONDS)
		sleep_until(now_ns() + 10000000ull);
	lat_stop(&gw);
	/* Then the same gets beside puts, periodic syncs and a pass. */
	lat_start(&pw, *h, 1, LAT_PUT_RATE, &hp[0]);
	lat_start(&gw, *h, 0, LAT_GET_RATE, &hp[1]);
	c.h = *h;
	if (pthread_create(&c.tid, NULL, lat_compactor_main, &c) != 0)
		die("pthread_create failed");
	t0 = now();
	uint64_t next = now_ns();
	while (!atomic_load(&c.done) || now() - t0 < LAT_MIN_SECONDS) {
		next += LAT_SYNC_MS * 1000000ull;
		sleep_until(next);
		if (eng->sync(*h) != 0)
			die("%s", err_buf);
		r.lat_syncs++;
	}
	r.seconds = now() - t0;
	pthread_join(c.tid, NULL);
	lat_stop(&pw);
	lat_stop(&gw);
	if (c.failed)
		die("%s", c.msg);
	if (eng->sync(*h) != 0)
		die("%s", err_buf);
	reopen(h, dir, 0);
	r.live_keys = verify_all(*h, &dummy);
	r.phase = P_LATENCY;
	r.done = 1;
	r.pass = c.pass;
	r.lat_put = lat_summarize(&hp[0]);
	r.lat_get = lat_summarize(&hp[1]);
	r.lat_idle_get = lat_summarize(&hp[2]);
	r.ops = r.lat_put.ops + r.lat_get.ops;
	r.bytes = dir_bytes(dir);
	send(&r);
	free(hp);
	free(val);
}

/* Everything for one engine, in the child process. */
static void run_engine(const char *dir)
{
	unsigned char key[MAX_KEY];
	unsigned char *val = xmalloc(cfg.val_max + 8);
	void *h = NULL;
	uint64_t i, count, touch, load_bytes;
	double t0, load_sec, sec;
	long load_rss;
	int reads = cfg.phases & ~((1u << P_LOAD) | (1u << P_REOPEN));

	store_dir = dir;
	/* The writing phases start on a quiet disk: an untimed sync() first,
	 * so that none pays for the writeback of what ran before it. */
	if (want(P_BUILD)) {
		sync();
		run_build(dir); /* first: the child is still small */
	}
	sync();
	versions = calloc(cfg.n, sizeof *versions);
	deleted = calloc(cfg.n, 1);
	if (versions == NULL || deleted == NULL)
		die("out of memory");

	phase_now = "load";
	prefault();
	t0 = now();
	if (eng->load_open(&h, dir, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
	for (i = 0; i < cfg.n; i++) {
		size_t len = make_value(i, 0, val);
		make_key(i, key);
		if (eng->put(h, key, cfg.key_size, val, len) != 0)
			die("put key #%" PRIu64 ": %s", i, err_buf);
	}
	if (eng->sync(h) != 0)
		die("%s", err_buf);
	load_sec = now() - t0;
	load_rss = peak_rss_kb();

	/* reopen = close the loader + open read-only; the size of the
	 * finished store is taken in between, outside the timing. */
	phase_now = "reopen";
	/* Untimed: the loader's close (for cellar it frees the index it
	 * built).  The phase measures opening a cleanly closed store. */
	if (eng->close(h) != 0)
		die("%s", err_buf);
	h = NULL;
	load_bytes = dir_bytes(dir);
	if (want(P_LOAD)) {
		struct result r;
		memset(&r, 0, sizeof r);
		r.phase = P_LOAD;
		r.done = 1;
		r.ops = cfg.n;
		r.seconds = load_sec;
		r.bytes = load_bytes;
		r.rss_kb = load_rss;
		r.huge_kb = -1; /* the loader is closed: nothing is mapped */
		if (write(out_fd, &r, sizeof r) != (ssize_t)sizeof r)
			die("writing to the parent: %s", strerror(errno));
	}
	if (want(P_BATCH))
		run_batch(dir);
	if (!reads && !want(P_REOPEN))
		return;
	t0 = now();
	if (eng->open(&h, dir, 0, cfg.n, cfg.key_size, cfg.val_max) != 0)
		die("%s", err_buf);
	sec = now() - t0;
	if (want(P_REOPEN))
		emit(P_REOPEN, 1, 1, sec, dir_bytes(dir));

	if (want(P_GET)) {
		phase_now = "get";
		sec = run_gets(h, perm, 0, 1, 0, 0);
		emit(P_GET, 1, cfg.n, sec, dir_bytes(dir));
	}
	if (want(P_BUILT_GET)) {
		void *hb = NULL;
		phase_now = "built-get";
		if (eng->build_open == NULL || !want(P_GET)) {
			emit(P_BUILT_GET, 0, 0, 0, 0);
		} else {
			if (eng->open(&hb, built_dir, 0, cfg.n, cfg.key_size,
			              cfg.val_max) != 0)
				die("%s", err_buf);
			sec = run_gets(hb, perm, 0, 1, 0, 0);
			emit(P_BUILT_GET, 1, cfg.n, sec, dir_bytes(built_dir));
			if (eng->close(hb) != 0)
				die("%s", err_buf);
		}
	}
	if (want(P_MULTIGET)) {
		phase_now = "multiget";
		sec = run_gets(h, perm, 0, 1, cfg.batch, 0);
		emit(P_MULTIGET, 1, cfg.n, sec, dir_bytes(dir));
	}
	if (want(P_PINNED)) {
		phase_now = "pinned";
		sec = run_gets(h, perm, 0, 1, 0, 1);
		emit(P_PINNED, 1, cfg.n, sec, dir_bytes(dir));
	}
	if (want(P_MISS)) {
		phase_now = "miss";
		sec = run_gets(h, perm, cfg.n, 0, 0, 0);
		emit(P_MISS, 1, cfg.n, sec, dir_bytes(dir));
	}
	if (want(P_ITER)) {
		phase_now = "iter";
		t0 = now();
		if (eng->iterate(h, &count, &touch) != 0)
			die("%s", err_buf);
		sec = now() - t0;
		if (count != cfg.n)
			die("iterated %" PRIu64 " items, expected %" PRIu64,
			    count, cfg.n);
		emit(P_ITER, 1, count, sec, dir_bytes(dir));
	}
	if (want(P_MIXED)) {
		phase_now = "mixed";
		if (!eng->can_update) {
			emit(P_MIXED, 0, 0, 0, 0);
		} else {
			/* Untimed: swap the read-only handle for a writer. */
			if (eng->close(h) != 0)
				die("%s", err_buf);
			h = NULL;
			if (eng->open(&h, dir, 1, cfg.n, cfg.key_size,
			              cfg.val_max) != 0)
				die("%s", err_buf);
			sec = run_mixed(h);
			emit(P_MIXED, 1, cfg.n, sec, dir_bytes(dir));
			if (eng->close(h) != 0)
				die("%s", err_buf);
			h = NULL;
			if (eng->open(&h, dir, 0, cfg.n, cfg.key_size,
			              cfg.val_max) != 0)
				die("%s", err_buf);
		}
	}
	if (want(P_ZIPF)) {
		phase_now = "zipf";
		sec = run_gets(h, zipf, 0, 1, 0, 0);
		emit(P_ZIPF, 1, cfg.n, sec, dir_bytes(dir));
	}
	if (want(P_COLD)) {
		phase_now = "cold";
		run_cold(&h, dir);
	}
	if (want(P_REFRESH)) {
		phase_now = "refresh";
		if (eng->refresh == NULL || eng->compact == NULL)
			emit(P_REFRESH, 0, 0, 0, 0);
		else
			run_refresh(&h, dir);
	}
	/* The writing phases come last: they delete keys. */
	if (want(P_SPACE)) {
		phase_now = "space";
		if (!eng->can_update || eng->del == NULL)
			emit(P_SPACE, 0, 0, 0, 0);
		else
			run_space(&h, dir);
	}
	if (want(P_RECOVERY)) {
		phase_now = "recovery";
		if (strcmp(eng->name, "cellar") != 0)
			emit(P_RECOVERY, 0, 0, 0, 0);
		else
			run_recovery(&h, dir);
	}
	if (want(P_COMPACT)) {
		phase_now = "compact";
		if (!eng->can_update || eng->compact == NULL)
			emit(P_COMPACT, 0, 0, 0, 0);
		else
			run_compact(&h, dir);
	}
	if (want(P_LATENCY)) {
		phase_now = "latency";
		if (!eng->can_update || eng->compact == NULL)
			emit(P_LATENCY, 0, 0, 0, 0);
		else
			run_latency(&h, dir);
	}
	phase_now = "close";
	if (eng->close(h) != 0)
		die("%s", err_buf);
	if (want(P_BUILD) && !cfg.keep)
		remove_tree(built_dir);
	free(val);
	free(versions);
	free(deleted);
}

/* --------------------------------------------------------------- output */

#define MAX_RUNS 25
static struct result results[N_ENGINES][N_PHASES]; /* .done = -1: none */
static struct result run_results[MAX_RUNS][N_ENGINES][N_PHASES];
static unsigned run_now; /* the round being run, for the lines printed */

static double rate(const struct result *r)
{
	return r->done == 1 && r->seconds > 0 ? (double)r->ops / r->seconds : 0;
}

/*
 * Bytes on disk outside the index per byte of live records (each counted
 * at its size in cellar's format); the bar is 1.25.
 */
static double space_ratio(const struct result *r)
{
	if (r->record_bytes <= 0)
		return 0;
	return ((double)r->bytes - (double)r->index_bytes) / r->record_bytes;
}

static void print_line(const char *name, const struct result *r)
{
	printf("bench engine=%s phase=%s ops=%" PRIu64 " seconds=%.6f "
	       "ops_per_sec=%.1f bytes_on_disk=%" PRIu64 " peak_rss_kb=%ld "
	       "huge_mapped_kb=%ld",
	       name, phase_names[r->phase], r->ops, r->seconds, rate(r),
	       r->bytes, r->rss_kb, r->huge_kb);
	if (cfg.runs > 1)
		printf(" run=%u", run_now + 1);
	printf("\n");
	if (r->phase == P_SPACE)
		printf("bench engine=%s phase=space writes=%" PRIu64
		       " deletes=%" PRIu64 " compact_seconds=%.6f live_keys=%"
		       PRIu64 " bytes_on_disk=%" PRIu64 " index_bytes=%" PRIu64
		       " ratio=%.3f\n", name, r->writes, r->deletes,
		       r->compact_seconds, r->live_keys, r->bytes,
		       r->index_bytes, space_ratio(r));
	if (r->phase == P_RECOVERY)
		printf("bench engine=%s phase=recovery writes_after_checkpoint=%"
		       PRIu64 " replayed=%" PRIu64 " crash_reopen_seconds=%.6f"
		       " rebuild_seconds=%.6f ratio=%.4f\n", name, r->ops,
		       r->replayed, r->seconds, r->rebuild_seconds,
		       r->rebuild_seconds > 0 ? r->seconds / r->rebuild_seconds : 0);
	if (r->phase == P_COLD) {
		printf("bench engine=%s phase=cold lookups=%" PRIu64
		       " open_ms=%.3f p50_us=%.2f p99_us=%.2f max_us=%.2f",
		       name, r->ops, r->cold_open_s * 1e3, r->cold_p50 * 1e6,
		       r->cold_p99 * 1e6, r->cold_max * 1e6);
		if (r->warmed)
			printf(" warm_ms=%.3f warm_p50_us=%.2f warm_p99_us=%.2f"
			       " warm_max_us=%.2f", r->warm_s * 1e3,
			       r->warm_p50 * 1e6, r->warm_p99 * 1e6,
			       r->warm_max * 1e6);
		else
			printf(" warm=none");
		printf("\n");
	}
	if (r->phase == P_COMPACT)
		printf("bench engine=%s phase=compact segments=%" PRIu64
		       " records_copied=%" PRIu64 " bytes_reclaimed=%" PRIu64
		       " seconds=%.6f records_per_sec=%.1f longest_pause_ms=%.3f"
		       " writer_puts=%" PRIu64 " writer_max_put_ms=%.3f\n",
		       name, r->pass.segments, r->pass.records,
		       r->pass.bytes_reclaimed, r->pass.seconds, rate(r),
		       r->pass.longest_pause_ms, r->writer_puts,
		       r->writer_max_ms);
	if (r->phase == P_REFRESH)
		printf("bench engine=%s phase=refresh records=%" PRIu64
		       " catchup_seconds=%.6f catchup_records_per_sec=%.1f"
		       " segments_compacted=%" PRIu64 " reload_seconds=%.6f\n",
		       name, r->ops, r->seconds, rate(r), r->pass.segments,
		       r->reload_seconds);
	if (r->phase == P_LATENCY)
		printf("bench engine=%s phase=latency puts=%" PRIu64
		       " put_p50_us=%.2f put_p99_us=%.2f put_p999_us=%.2f"
		       " put_max_us=%.1f gets=%" PRIu64 " get_p50_us=%.2f"
		       " get_p99_us=%.2f get_p999_us=%.2f get_max_us=%.1f"
		       " idle_get_p99_us=%.2f get_p99_ratio=%.3f syncs=%" PRIu64
		       " compact_seconds=%.3f longest_pause_ms=%.3f\n", name,
		       r->lat_put.ops, r->lat_put.p50, r->lat_put.p99,
		       r->lat_put.p999, r->lat_put.max, r->lat_get.ops,
		       r->lat_get.p50, r->lat_get.p99, r->lat_get.p999,
		       r->lat_get.max, r->lat_idle_get.p99,
		       r->lat_idle_get.p99 > 0 ? r->lat_get.p99 / r->lat_idle_get.p99
		                               : 0,
		       r->lat_syncs, r->pass.seconds, r->pass.longest_pause_ms);
	fflush(stdout);
}

static void fmt_rate(char *buf, size_t cap, double v)
{
	if (v >= 1e6)
		snprintf(buf, cap, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, cap, "%.1fk", v / 1e3);
	else
		snprintf(buf, cap, "%.1f", v);
}

/* Index of the engine ratios are taken against: cellar, else the first. */
static size_t base_engine(void)
{
	size_t e;
	for (e = 0; e < cfg.n_engines; e++)
		if (cfg.engines[e] == &engine_cellar)
			return e;
	return 0;
}

/* One row of the summary under the table: a number per engine, or "-". */
enum extra { X_MIB, X_PER_RECORD, X_MS, X_RATIO, X_PAUSE, X_PUT_MS, X_HUGE,
             X_COLD_P50, X_COLD_P99, X_WARM_MS, X_WARM_P50, X_WARM_P99,
             X_RELOAD_MS, X_PUT_P50, X_PUT_P99, X_PUT_P999, X_PUT_MAX, X_GET_P50, X_GET_P99,
             X_GET_P999, X_GET_MAX, X_IDLE_P99 };

static void print_extra(const char *label, enum phase p, enum extra x)
{
	size_t e;
	char cell[32];

	printf("%-14s", label);
	for (e = 0; e < cfg.n_engines; e++) {
		const struct result *r = &results[e][p];
		if (r->done != 1)
			snprintf(cell, sizeof cell, "-");
		else if (x == X_MIB)
			snprintf(cell, sizeof cell, "%.1f",
			         (double)r->bytes / 1048576.0);
		else if (x == X_PER_RECORD)
			snprintf(cell, sizeof cell, "%.1f",
			         (double)r->bytes / (double)cfg.n);
		else if (x == X_RATIO)
			snprintf(cell, sizeof cell, "%.3f", space_ratio(r));
		else if (x == X_PAUSE)
			snprintf(cell, sizeof cell, "%.3f",
			         r->pass.longest_pause_ms);
		else if (x == X_PUT_MS)
			snprintf(cell, sizeof cell, "%.3f", r->writer_max_ms);
		else if (x == X_COLD_P50)
			snprintf(cell, sizeof cell, "%.1f", r->cold_p50 * 1e6);
		else if (x == X_COLD_P99)
			snprintf(cell, sizeof cell, "%.1f", r->cold_p99 * 1e6);
		else if (x >= X_WARM_MS && x <= X_WARM_P99 && !r->warmed)
			snprintf(cell, sizeof cell, "n/a");
		else if (x == X_WARM_MS)
			snprintf(cell, sizeof cell, "%.1f", r->warm_s * 1e3);
		else if (x == X_WARM_P50)
			snprintf(cell, sizeof cell, "%.1f", r->warm_p50 * 1e6);
		else if (x == X_WARM_P99)
			snprintf(cell, sizeof cell, "%.1f", r->warm_p99 * 1e6);
		else if (x == X_RELOAD_MS)
			snprintf(cell, sizeof cell, "%.1f", r->reload_seconds * 1e3);
		else if (x >= X_PUT_P50) {
			const struct lat_summary *l =
			    x <= X_PUT_MAX ? &r->lat_put
			    : x <= X_GET_MAX ? &r->lat_get : &r->lat_idle_get;
			int k = x == X_IDLE_P99 ? 1
			        : (int)(x - (x <= X_PUT_MAX ? X_PUT_P50 : X_GET_P50));
			double v = k == 0 ? l->p50 : k == 1 ? l->p99
			           : k == 2 ? l->p999 : l->max;
			snprintf(cell, sizeof cell, "%.2f", v);
		} else if (x == X_HUGE && r->huge_kb < 0)
			snprintf(cell, sizeof cell, "?");
		else if (x == X_HUGE)
			snprintf(cell, sizeof cell, "%.1f", r->huge_kb / 1024.0);
		else
			snprintf(cell, sizeof cell, "%.3f", r->seconds * 1e3);
		printf(" %18s", cell);
	}
	printf("\n");
}

/*
 * Fill results[][] with each engine's and phase's median run by rate (of
 * an even number, the slower of the middle two).
 */
static void pick_medians(void)
{
	const struct result *by_rate[MAX_RUNS];
	size_t e, p;
	unsigned i, j, n;

	for (e = 0; e < cfg.n_engines; e++)
		for (p = 0; p < N_PHASES; p++) {
			for (n = 0, i = 0; i < cfg.runs; i++)
				if (run_results[i][e][p].done == 1)
					by_rate[n++] = &run_results[i][e][p];
			if (n == 0) {
				results[e][p] = run_results[0][e][p];
				continue;
			}
			for (i = 1; i < n; i++) /* insertion sort: n is small */
				for (j = i; j > 0 && rate(by_rate[j - 1]) >
				                         rate(by_rate[j]); j--) {
					const struct result *t = by_rate[j];
					by_rate[j] = by_rate[j - 1];
					by_rate[j - 1] = t;
				}
			results[e][p] = *by_rate[(n - 1) / 2];
		}
}

static void print_table(void)
{
	size_t e, b = base_engine();
	int p;
	char cell[64], num[32];

	printf("\nn=%" PRIu64 " key=%zu value=", cfg.n, cfg.key_size);
	if (cfg.val_min == cfg.val_max)
		printf("%zu", cfg.val_min);
	else
		printf("%zu-%zu", cfg.val_min, cfg.val_max);
	printf(" threads=%u batch=%u", cfg.threads, cfg.batch);
	if (cfg.procs > 1)
		printf(" procs=%u", cfg.procs);
	if (bench_cellar_access != CELLAR_ACCESS_DEFAULT)
		printf(" segment_access=%u", bench_cellar_access);
	printf(" seed=%" PRIu64, cfg.seed);
	if (cfg.runs > 1)
		printf(" runs=%u (medians)", cfg.runs);
	printf("\nops/s per phase; (x) = relative to %s, >1 is faster\n\n%-14s",
	       cfg.engines[b]->name, "phase");
	for (e = 0; e < cfg.n_engines; e++)
		printf(" %18s", cfg.engines[e]->name);
	printf("\n");
	for (p = 0; p < N_PHASES; p++) {
		if (!want((enum phase)p))
			continue;
		printf("%-14s", phase_names[p]);
		for (e = 0; e < cfg.n_engines; e++) {
			const struct result *r = &results[e][p];
			double v = rate(r), base = rate(&results[b][p]);
			if (r->done != 1) {
				snprintf(cell, sizeof cell, "%s",
				         r->done == 0 ? "n/a" : "-");
			} else {
				fmt_rate(num, sizeof num, v);
				if (base > 0)
					snprintf(cell, sizeof cell, "%s (%.2fx)",
					         num, v / base);
				else
					snprintf(cell, sizeof cell, "%s", num);
			}
			printf(" %18s", cell);
		}
		printf("\n");
	}
	printf("\n");
	if (want(P_LOAD)) {
		/* The finished store, measured after the loader closed. */
		print_extra("disk MiB", P_LOAD, X_MIB);
		print_extra("bytes/record", P_LOAD, X_PER_RECORD);
	}
	if (want(P_REOPEN))
		print_extra("reopen ms", P_REOPEN, X_MS);
	if (want(P_GET))
		print_extra("huge MiB", P_GET, X_HUGE);
	if (want(P_SPACE))
		print_extra("space ratio", P_SPACE, X_RATIO);
	if (want(P_COMPACT)) {
		print_extra("pause ms", P_COMPACT, X_PAUSE);
		print_extra("max put ms", P_COMPACT, X_PUT_MS);
	}
	if (want(P_COLD)) {
		print_extra("cold p50 us", P_COLD, X_COLD_P50);
		print_extra("cold p99 us", P_COLD, X_COLD_P99);
		print_extra("warm ms", P_COLD, X_WARM_MS);
		print_extra("warmed p50 us", P_COLD, X_WARM_P50);
		print_extra("warmed p99 us", P_COLD, X_WARM_P99);
	}
	if (want(P_REFRESH))
		print_extra("reload ms", P_REFRESH, X_RELOAD_MS);
	if (want(P_LATENCY)) {
		print_extra("put p50 us", P_LATENCY, X_PUT_P50);
		print_extra("put p99 us", P_LATENCY, X_PUT_P99);
		print_extra("put p99.9 us", P_LATENCY, X_PUT_P999);
		print_extra("put max us", P_LATENCY, X_PUT_MAX);
		print_extra("get p50 us", P_LATENCY, X_GET_P50);
		print_extra("get p99 us", P_LATENCY, X_GET_P99);
		print_extra("get p99.9 us", P_LATENCY, X_GET_P999);
		print_extra("get max us", P_LATENCY, X_GET_MAX);
		print_extra("idle get p99", P_LATENCY, X_IDLE_P99);
		print_extra("pause ms", P_LATENCY, X_PAUSE);
	}
}

static int write_svg(void)
{
	double values[N_PHASES * N_ENGINES];
	const char *groups[N_PHASES], *series[N_ENGINES];
	char subtitle[200], vsize[48];
	int p, g = 0;
	size_t e;
	struct svg_chart c;

	for (e = 0; e < cfg.n_engines; e++)
		series[e] = cfg.engines[e]->name;
	for (p = 0; p < N_PHASES; p++) {
		if (!want((enum phase)p))
			continue;
		groups[g] = phase_names[p];
		for (e = 0; e < cfg.n_engines; e++)
			values[g * (int)cfg.n_engines + (int)e] =
				rate(&results[e][p]);
		g++;
	}
	if (cfg.val_min == cfg.val_max)
		snprintf(vsize, sizeof vsize, "%zu", cfg.val_min);
	else
		snprintf(vsize, sizeof vsize, "%zu-%zu", cfg.val_min,
		         cfg.val_max);
	snprintf(subtitle, sizeof subtitle,
	         "n=%" PRIu64 ", key %zu B, value %s B, %u thread(s), "
	         "seed %" PRIu64 "; higher is better", cfg.n, cfg.key_size,
	         vsize, cfg.threads, cfg.seed);
	c.title = "cellar-bench: operations per second by phase";
	c.subtitle = subtitle;
	c.ngroups = g;
	c.groups = groups;
	c.nseries = (int)cfg.n_engines;
	c.series = series;
	c.values = values;
	c.unit = "ops/s";
	if (svg_write(cfg.svg, &c) != 0) {
		fprintf(stderr, "cellar-bench: %s: %s\n", cfg.svg,
		        strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ the parent */

/*
 * Fork a child for engine e; collect and print its results.  0 = success,
 * -1 = failure, -2 = dir could not be made (so it is not ours to remove).
 */
static int bench_engine(size_t e, const char *dir)
{
	const struct engine *en = cfg.engines[e];
	int fds[2], status;
	struct result r;
	size_t got = 0;
	ssize_t k;
	pid_t pid;

	if (mkdir(dir, 0755) != 0) {
		fprintf(stderr, "cellar-bench: mkdir %s: %s%s\n", dir,
		        strerror(errno), errno == EEXIST ?
		        " (remove it or choose another --dir)" : "");
		return -2;
	}
	if (pipe(fds) != 0) {
		perror("cellar-bench: pipe");
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("cellar-bench: fork");
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		out_fd = fds[1];
		eng = en;
		run_engine(dir);
		exit(0);
	}
	close(fds[1]);
	for (;;) {
		k = read(fds[0], (char *)&r + got, sizeof r - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
		if (got < sizeof r)
			continue;
		got = 0;
		if (r.phase < 0 || r.phase >= N_PHASES)
			break;
		run_results[run_now][e][r.phase] = r;
		if (r.done == 1)
			print_line(en->name, &r);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "cellar-bench: %s: killed by signal %d\n",
		        en->name, WTERMSIG(status));
		return -1;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* --------------------------------------------------------- command line */

/* "  name    text" with text wrapped at 76 columns under itself. */
static void print_wrapped(FILE *f, const char *name, const char *text)
{
	int col = fprintf(f, "  %-7s ", name), indent = col;
	const char *w = text;

	while (*w != '\0') {
		size_t len = strcspn(w, " ");
		if (col > indent && col + 1 + (int)len > 76) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		col += fprintf(f, "%.*s", (int)len, w);
		w += len;
		while (*w == ' ')
			w++;
	}
	fputc('\n', f);
}

static void usage(FILE *f)
{
	size_t e;
	fprintf(f,
"usage: cellar-bench [options]\n"
"\n"
"Compare cellar with other embedded key-value stores, phase by phase, on\n"
"the same deterministic data.  Each engine runs in its own child process\n"
"on a fresh store in DIR/<engine>.\n"
"\n"
"Options:\n"
"  --engines A,B,..    engines to run (default: all compiled in; see --list)\n"
"  -n N                records (default 1000000; suffixes k, M: 100k, 1M)\n"
"  --key-size B        key length in bytes, %d-%d (default 16)\n"
"  --value-size B      value length (default 100), or MIN-MAX for lengths\n"
"                      spread uniformly (up to %u)\n"
"  --threads T         reader threads in get, multiget, miss and zipf\n"
"                      (default 1)\n"
"  --batch B           keys per cellar_get_many call in multiget, 1-%d\n"
"                      (default 32)\n"
"  --procs P           reader processes in get, multiget, pinned, miss and\n"
"                      zipf (default 1), each opening the store read-only\n"
"                      itself and doing its share with T threads; ops/s =\n"
"                      all gets / wall time from first start to last end\n"
"  --segment-access A  cellar's segment_access: default (random), random,\n"
"                      sequential, normal or willneed\n"
"  --phases P,Q,..     among load,reopen,get,multiget,pinned,miss,iter,\n"
"                      mixed,zipf,space,\n"
"                      recovery,compact,cold,build,latency,refresh,batch\n"
"                      (default: load to zipf; space, recovery, compact,\n"
"                      cold, build, latency, refresh and batch only when\n"
"                      named; build adds\n"
"                      built-get); load and\n"
"                      the reopen always\n"
"                      happen, unreported unless chosen\n"
"  --seed S            seed of keys, values and orders (default 42)\n"
"  --dir DIR           where stores go (default: a new /tmp/cellar-bench-*,\n"
"                      removed at the end); DIR/<engine> must not exist\n"
"  --keep              keep the stores\n"
"  --prefault G        before each writing phase (load, build, batch),\n"
"                      untimed: touch G GiB of fresh memory and free it,\n"
"                      so that the page cache the phase fills comes from\n"
"                      memory the machine has backed already (on VMs\n"
"                      whose host backs guest memory on first touch)\n"
"  --runs R            run every engine R times (1-25, default 1), in a\n"
"                      rotated order each round; the table and chart show\n"
"                      each engine's median run per phase (the slower\n"
"                      middle one for even R), for noisy machines\n"
"  --svg FILE          also write the results as an SVG bar chart\n"
"  --list              print the engines compiled in and their settings\n"
"  -h, --help          this text\n"
"\n", MIN_KEY, MAX_KEY, MAX_VALUE, MAX_BATCH);
	/* In pieces: ISO C only promises string literals of 4,095 bytes. */
	fprintf(f,
"Phases (in this order):\n"
"  load    create the store, put N records in random key order, one\n"
"          sync/commit at the end (each engine defers durability to it)\n"
"  reopen  open read-only after the loading handle was closed (the\n"
"          close is not timed; ops=1)\n"
"  get     N gets of present keys in a shuffled order, T threads sharing\n"
"          one handle; every value is compared byte for byte\n"
"  multiget the get phase's keys in the same order, B at a time through\n"
"          the engine's batch call (cellar_get_many); engines without one\n"
"          do one get per key, as in get, so the row compares cellar's\n"
"          batches with each peer's one-at-a-time gets\n"
"  pinned  the get phase's keys in the same order, through the engine's\n"
"          zero-copy get (cellar_get_pinned: the value is verified where\n"
"          the store holds it, then released); engines without one do\n"
"          gets as in get\n"
"  miss    N gets of keys never written; each must be reported absent\n"
"  iter    iterate everything once, reading the first and last byte of\n"
"          each key and value; the count must be N\n"
"  mixed   on a read-write handle, N ops: 90%% gets (verified), 10%%\n"
"          overwrites with new values, then one sync; one thread\n"
"  zipf    N gets with Zipf popularity (s=0.99) over present keys\n"
	);
	fprintf(f,
"  space   not in the default list: it writes 10 N records (at N = 1M,\n"
"          space and compact take about three times as long as all the\n"
"          default phases together).  On a read-write handle overwrite\n"
"          every key 10 times, delete 10%% of the keys, sync, then one\n"
"          compaction pass (cellar; peers that can delete run without\n"
"          it); ops = puts + deletes, time includes the pass.  Then the\n"
"          closed store's size is compared with its live data and every\n"
"          key is read back (deleted ones must be absent).  Extra line:\n"
"            bench engine=E phase=space writes=W deletes=D\n"
"            compact_seconds=C live_keys=K bytes_on_disk=B index_bytes=I\n"
"            ratio=R\n"
"          R = (B - I) / (sum over live keys of key + value + record\n"
"          header), the header being cellar's (4 checksum + 1 kind + two\n"
"          varint lengths: 7 bytes for 16-byte keys and 100-byte values);\n"
"          I is the index file (0 for stores without a separate one), so\n"
"          the bar B <= 1.25 x live records + index is R <= 1.25\n"
"  recovery not in the default list; cellar only.  A child process\n"
"          puts 1000 keys, syncs and dies without closing (a crash with\n"
"          1000 writes past the last index checkpoint); then a read-only\n"
"          open is timed (it replays them), the index file is removed and\n"
"          a read-only open that rebuilds the index from all segments is\n"
"          timed.  ops = 1000, seconds = the reopen after the crash.\n"
"          Extra line:\n"
"            bench engine=cellar phase=recovery writes_after_checkpoint=W\n"
"            replayed=R crash_reopen_seconds=C rebuild_seconds=B ratio=C/B\n"
"  compact not in the default list; stores with a compaction (cellar)\n"
"          only.  Overwrite every live key once (untimed), then one\n"
"          compaction pass while a writer thread keeps overwriting random\n"
"          keys; ops = records copied, seconds = the pass.  Every key is\n"
"          verified afterwards.  Extra line:\n"
"            bench engine=E phase=compact segments=G records_copied=N\n"
"            bytes_reclaimed=B seconds=S records_per_sec=X\n"
"            longest_pause_ms=P writer_puts=W writer_max_put_ms=M\n"
"          P is the longest time the pass held writers up, as the store\n"
"          measures it; M the slowest single put the writer saw\n"
	);
	fprintf(f,
"  cold    not in the default list; needs root (else a \"skipped: needs\n"
"          root\" line).  Drop the page cache (sync, drop_caches), open\n"
"          read-only (timed) and time each of the first 10,000 gets of\n"
"          present keys; then, for engines with a warm call (cellar:\n"
"          cellar_warm; tinycdb and LMDB have none and show n/a), drop\n"
"          the cache again, open, warm (timed) and time the same gets.\n"
"          ops = the gets, seconds = their sum.  It drops the cache of\n"
"          the whole machine.  Extra line:\n"
"            bench engine=E phase=cold lookups=N open_ms=O p50_us=A\n"
"            p99_us=B max_us=M warm_ms=W warm_p50_us=C warm_p99_us=D\n"
"            warm_max_us=X   (or warm=none)\n"
"  Phases that write (mixed, space, compact) run after the read phases.\n"
"  latency not in the default list; stores with a compaction (cellar)\n"
"          only.  Overwrite every live key once (untimed); gets at 50000/s\n"
"          on the idle store for 2 s; then one thread puts at 20000/s and\n"
"          another gets at 50000/s while the store is synced every 50 ms\n"
"          (which writes checkpoints as they fall due) and one compaction\n"
"          pass runs, for the pass or 4 s, whichever is longer.  ops =\n"
"          puts + gets, seconds = that time.  Extra line (microseconds):\n"
"            bench engine=E phase=latency puts=N put_p50_us= put_p99_us=\n"
"            put_p999_us= put_max_us= gets=M get_p50_us= get_p99_us=\n"
"            get_p999_us= get_max_us= idle_get_p99_us=I get_p99_ratio=R\n"
"            syncs=S compact_seconds=C longest_pause_ms=P\n"
"          R is get p99 under load over I\n"
"  refresh not in the default list; engines with a refresh of read-only\n"
"          handles and a compaction (cellar) only.  A writer on the store\n"
"          overwrites n/3 random keys and syncs (untimed); the read-only\n"
"          handle's refresh, which replays them, is timed (ops = n/3).\n"
"          Then the writer compacts, and the refresh that reopens the\n"
"          store (its segments were removed) is timed.  Both states are\n"
"          verified whole, untimed.  Extra line:\n"
"            bench engine=E phase=refresh records=N catchup_seconds=S\n"
"            catchup_records_per_sec=R segments_compacted=C\n"
"            reload_seconds=L\n"
"  batch   not in the default list; stores with write batches (cellar)\n"
"          only.  Right after the load, the same n records in the same\n"
"          order into a fresh DIR/<engine>.batch, committed 1000 puts at a\n"
"          time, one sync at the end; compare its ops/s with the load's.\n"
"  Phases that write (mixed, space, compact, latency) run after the read\n"
"  phases.\n"
"\n"
"Output: per engine and phase one line\n"
"  bench engine=E phase=P ops=N seconds=S ops_per_sec=X bytes_on_disk=B"
" peak_rss_kb=K\n"
"  huge_mapped_kb=H\n"
"(plus the extra lines of space and compact above)\n"
"then a table of ops/s with the ratio to cellar, the store size after the\n"
"load (blocks allocated to its files, once closed), the reopen time, and\n"
"how much of the store the get phase had mapped in 2 MiB huge pages (H,\n"
"FilePmdMapped in /proc/self/smaps_rollup: -1 or ? where not reported).\n"
"Throughput with T threads is total ops / wall time.  peak_rss_kb is the\n"
"child's high-water mark so far (getrusage), so it only grows from phase\n"
"to phase; it includes pages of mapped files the engine touched, and the\n"
"driver's own arrays (about 12 bytes per record).  The stores are fresh,\n"
"so reads run against a warm page cache.  Quote numbers from a release\n"
"build (meson setup --buildtype=release).\n"
"\n"
"Engine settings:\n");
	for (e = 0; e < N_ENGINES; e++)
		print_wrapped(f, all_engines[e]->name, all_engines[e]->settings);
	fprintf(f,
"\n"
"Exit status: 0 on success, 1 if an engine failed or returned a wrong\n"
"value (the run stops there), 2 on a usage error.\n");
}

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cellar-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cellar-bench --help'.\n");
	exit(2);
}

/* A count with an optional k/M/G suffix (powers of 1000). */
static uint64_t parse_count(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno != 0 || *s == '-')
		usage_error("%s: not a number: '%s'", what, s);
	switch (*end) {
	case 'k': case 'K': v *= 1000ull; end++; break;
	case 'm': case 'M': v *= 1000000ull; end++; break;
	case 'g': case 'G': v *= 1000000000ull; end++; break;
	default: break;
	}
	if (*end != '\0')
		usage_error("%s: not a number: '%s'", what, s);
	return v;
}

static void parse_engines(const char *arg)
{
	char *list = strdup(arg), *save = NULL, *name;
	size_t e, k;

	if (list == NULL)
		usage_error("out of memory");
	cfg.n_engines = 0;
	for (name = strtok_r(list, ",", &save); name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		for (e = 0; e < N_ENGINES; e++)
			if (strcmp(all_engines[e]->name, name) == 0)
				break;
		if (e == N_ENGINES)
			usage_error("unknown engine '%s' (compiled in: see "
			            "--list)", name);
		for (k = 0; k < cfg.n_engines; k++)
			if (cfg.engines[k] == all_engines[e])
				usage_error("engine '%s' given twice", name);
		cfg.engines[cfg.n_engines++] = all_engines[e];
	}
	free(list);
	if (cfg.n_engines == 0)
		usage_error("--engines: no engine given");
}

static void parse_phases(const char *arg)
{
	char *list = strdup(arg), *save = NULL, *name;
	int p;

	if (list == NULL)
		usage_error("out of memory");
	cfg.phases = 0;
	for (name = strtok_r(list, ",", &save); name != NULL;
	     name = strtok_r(NULL, ",", &save)) {
		for (p = 0; p < N_PHASES; p++)
			if (strcmp(phase_names[p], name) == 0)
				break;
		if (p == N_PHASES)
			usage_error("unknown phase '%s'", name);
		cfg.phases |= 1u << p;
		if (p == P_BUILD) /* the build's gets come with it */
			cfg.phases |= 1u << P_BUILT_GET;
	}
	free(list);
	if (cfg.phases == 0)
		usage_error("--phases: no phase given");
}

static void parse_args(int argc, char **argv)
{
	enum { O_ENGINES = 256, O_KEY, O_VALUE, O_THREADS, O_BATCH, O_PHASES, O_SEED,
	       O_DIR, O_KEEP, O_RUNS, O_SVG, O_LIST, O_PROCS, O_ACCESS,
	       O_PREFAULT };
	static const char *const access_names[] = { "default", "random",
		"sequential", "normal", "willneed" };
	static const struct option opts[] = {
		{ "engines", required_argument, NULL, O_ENGINES },
		{ "key-size", required_argument, NULL, O_KEY },
		{ "value-size", required_argument, NULL, O_VALUE },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "procs", required_argument, NULL, O_PROCS },
		{ "segment-access", required_argument, NULL, O_ACCESS },
		{ "phases", required_argument, NULL, O_PHASES },
		{ "seed", required_argument, NULL, O_SEED },
		{ "dir", required_argument, NULL, O_DIR },
		{ "keep", no_argument, NULL, O_KEEP },
		{ "prefault", required_argument, NULL, O_PREFAULT },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "svg", required_argument, NULL, O_SVG },
		{ "list", no_argument, NULL, O_LIST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	size_t e;
	char *dash;
	int c;

	for (e = 0; e < N_ENGINES; e++)
		cfg.engines[e] = all_engines[e];
	cfg.n_engines = N_ENGINES;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			cfg.n = parse_count(optarg, "-n");
			if (cfg.n < 1 || cfg.n > UINT32_MAX)
				usage_error("-n: must be 1 to %" PRIu32,
				            UINT32_MAX);
			break;
		case O_ENGINES:
			parse_engines(optarg);
			break;
		case O_KEY:
			v = parse_count(optarg, "--key-size");
			if (v < MIN_KEY || v > MAX_KEY)
				usage_error("--key-size: must be %d to %d",
				            MIN_KEY, MAX_KEY);
			cfg.key_size = (size_t)v;
			break;
		case O_VALUE:
			dash = strchr(optarg, '-');
			if (dash != NULL) {
				*dash = '\0';
				cfg.val_min = (size_t)parse_count(optarg,
				                                  "--value-size");
				cfg.val_max = (size_t)parse_count(dash + 1,
				                                  "--value-size");
				*dash = '-';
			} else {
				cfg.val_min = cfg.val_max = (size_t)parse_count(
					optarg, "--value-size");
			}
			if (cfg.val_min > cfg.val_max || cfg.val_max > MAX_VALUE)
				usage_error("--value-size: need MIN <= MAX <= %u",
				            MAX_VALUE);
			break;
		case O_THREADS:
			v = parse_count(optarg, "--threads");
			if (v < 1 || v > 1024)
				usage_error("--threads: must be 1 to 1024");
			cfg.threads = (unsigned)v;
			break;
		case O_BATCH:
			v = parse_count(optarg, "--batch");
			if (v < 1 || v > MAX_BATCH)
				usage_error("--batch: must be 1 to %d", MAX_BATCH);
			cfg.batch = (unsigned)v;
			break;
		case O_PROCS:
			v = parse_count(optarg, "--procs");
			if (v < 1 || v > 256)
				usage_error("--procs: must be 1 to 256");
			cfg.procs = (unsigned)v;
			break;
		case O_ACCESS:
			for (v = 0; v < 5; v++)
				if (strcmp(optarg, access_names[v]) == 0)
					break;
			if (v == 5)
				usage_error("--segment-access: one of default, "
				            "random, sequential, normal, willneed");
			bench_cellar_access = (unsigned)v;
			break;
		case O_PHASES:
			parse_phases(optarg);
			break;
		case O_SEED:
			cfg.seed = parse_count(optarg, "--seed");
			break;
		case O_DIR:
			cfg.dir = optarg;
			break;
		case O_KEEP:
			cfg.keep = 1;
			break;
		case O_PREFAULT: {
			char *end;
			cfg.prefault = strtod(optarg, &end);
			if (*end || !(cfg.prefault >= 0 && cfg.prefault <= 64))
				usage_error("--prefault: 0 to 64 GiB");
			break;
		}
		case O_RUNS:
			v = parse_count(optarg, "--runs");
			if (v < 1 || v > MAX_RUNS)
				usage_error("--runs: must be 1 to %d", MAX_RUNS);
			cfg.runs = (unsigned)v;
			break;
		case O_SVG:
			cfg.svg = optarg;
			break;
		case O_LIST:
			for (e = 0; e < N_ENGINES; e++)
				print_wrapped(stdout, all_engines[e]->name,
				              all_engines[e]->settings);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'cellar-bench --help'.\n");
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/cellar-bench-XXXXXX", path[4096];
	const char *base;
	size_t e, p;
	int failed = 0;

	parse_args(argc, argv);
	for (unsigned i = 0; i < MAX_RUNS; i++)
		for (e = 0; e < N_ENGINES; e++)
			for (p = 0; p < N_PHASES; p++)
				run_results[i][e][p].done = -1;

	if (cfg.dir != NULL) {
		base = cfg.dir;
		if (mkdir(base, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "cellar-bench: mkdir %s: %s\n", base,
			        strerror(errno));
			return 1;
		}
	} else if ((base = mkdtemp(tmp)) == NULL) {
		perror("cellar-bench: mkdtemp");
		return 1;
	}

	if (want(P_COLD) && geteuid() != 0) {
		printf("cellar-bench: phase cold skipped: needs root (it drops "
		       "the page cache)\n");
		cfg.phases &= ~(1u << P_COLD);
		if (cfg.phases == 0)
			return 0;
	}
	if (cfg.phases & ((1u << P_GET) | (1u << P_MULTIGET) | (1u << P_PINNED) |
	                  (1u << P_MISS) | (1u << P_ZIPF) | (1u << P_COLD) |
	                  (1u << P_BUILT_GET)))
		perm = make_permutation(cfg.n, mix64(cfg.seed ^ 0x7065726dull));
	if (want(P_ZIPF))
		zipf = make_zipf(cfg.n, perm, mix64(cfg.seed ^ 0x7a697066ull));

	for (run_now = 0; run_now < cfg.runs && !failed; run_now++)
		for (size_t k = 0; k < cfg.n_engines && !failed; k++) {
			/* Rotate the order so no engine always goes first. */
			e = (k + run_now) % cfg.n_engines;
			if (run_now == 0)
				snprintf(path, sizeof path, "%s/%s", base,
				         cfg.engines[e]->name);
			else
				snprintf(path, sizeof path, "%s/%s.%u", base,
				         cfg.engines[e]->name, run_now + 1);
			int rc = bench_engine(e, path);
			if (rc != 0) {
				fprintf(stderr, "cellar-bench: %s failed; "
				        "stopping\n", cfg.engines[e]->name);
				failed = 1;
			}
			if (!cfg.keep && rc != -2)
				remove_tree(path);
		}
	run_now = 0;
	if (cfg.keep)
		fprintf(stderr, "cellar-bench: stores kept in %s\n", base);
	else if (cfg.dir == NULL)
		rmdir(base);

	if (!failed) {
		pick_medians();
		print_table();
		if (cfg.svg != NULL && write_svg() != 0)
			failed = 1;
	}
	free(perm);
	free(zipf);
	return failed ? 1 : 0;
}

/*
 * cellar.c - the cellar command-line tool: look into, check and edit a store.
 *
 *   cellar COMMAND [options] DIR [args]      (options go anywhere)
 *
 * One function per command; each opens the store the way the command needs
 * (read-only for get, count, list, dump, stats and warm; read-write for the
 * rest), does its work and closes.  Errors go to stderr as
 * "cellar: DIR: message", where the message carries the library's detail
 * (cellar_errmsg()) and the key, escaped, where there is one.  The exit
 * status says what happened: see EXIT_* and the help text, which stands in
 * for the man page (tools/cellar.1 says the same).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cellar.h>

/* Exit status. */
#define EXIT_NOTFOUND 1 /* an absent key (get, del, get --many) */
#define EXIT_USAGE 2    /* bad command line */
#define EXIT_DAMAGED 3  /* damage: CELLAR_ECORRUPT or CELLAR_EVERSION */
#define EXIT_ERROR 4    /* anything else */

/* The self-describing dump format (see the help text). */
#define DUMP_MAGIC "cellar-dump"
#define DUMP_VERSION 1
#define DUMP_END "end"

enum { FMT_CELLAR, FMT_TSV, FMT_CDB };
enum { DUPS_LAST, DUPS_FIRST, DUPS_ERROR };

/* Options, as parsed from anywhere on the command line. */
static struct {
	int escaped;      /* -x: \xHH in KEY and VALUE arguments */
	int json;         /* --json */
	int quiet;        /* -q: no progress */
	int format;       /* FMT_* for dump and load */
	int format_given;
	const char *file; /* -f FILE */
	int many;         /* get --many */
	int no_overwrite; /* load --no-overwrite */
	int dups;         /* load --dups */
	unsigned dead_pct; /* compact --dead-pct */
	int rewrite;      /* repair --rewrite */
	uint64_t ttl_ms;  /* put --ttl: the value expires after this long */
} opt;

/* Option bits: which command takes which option. */
enum {
	O_X = 1 << 0, O_JSON = 1 << 1, O_QUIET = 1 << 2, O_FMT = 1 << 3,
	O_FILE = 1 << 4, O_MANY = 1 << 5, O_LOAD = 1 << 6, O_PCT = 1 << 7,
	O_REWRITE = 1 << 8, O_TTL = 1 << 9
};

static const char *cmd_name = "cellar"; /* the command running */
static const char *cur_dir;             /* the store, for messages */

/* ---------------------------------------------------------- messages */

static void put_escaped(const void *p, size_t n, FILE *f)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
			putc(b[i], f);
		else
			fprintf(f, "\\x%02x", b[i]);
	}
}

/* "cellar: DIR: " (or "cellar: COMMAND: " before there is a DIR). */
static void msg_begin(void)
{
	fprintf(stderr, "cellar: %s: ", cur_dir ? cur_dir : cmd_name);
}

/* A free-form message; returns status. */
static int say(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int say(int status, const char *fmt, ...)
{
	va_list ap;

	msg_begin();
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* The exit status for a cellar error. */
static int status_of(int rc)
{
	if (rc == CELLAR_OK)
		return 0;
	if (rc == CELLAR_ENOTFOUND)
		return EXIT_NOTFOUND;
	if (rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION)
		return EXIT_DAMAGED;
	return EXIT_ERROR;
}

/*
 * Report a library error: "cellar: DIR: [WHAT: ][key 'K': ]strerror[: detail]".
 * what and key may be NULL.  Returns the exit status for rc.
 */
static int fail_key(int rc, const char *what, const void *key, size_t key_len)
{
	const char *detail = cellar_errmsg();

	msg_begin();
	if (what)
		fprintf(stderr, "%s: ", what);
	if (key) {
		fputs("key '", stderr);
		put_escaped(key, key_len, stderr);
		fputs("': ", stderr);
	}
	fputs(cellar_strerror(rc), stderr);
	if (detail[0] != '\0')
		fprintf(stderr, ": %s", detail);
	if (rc == CELLAR_ECORRUPT)
		fprintf(stderr, " (see 'cellar verify')");
	fputc('\n', stderr);
	return status_of(rc);
}

static int fail(int rc, const char *what)
{
	return fail_key(rc, what, NULL, 0);
}

/* A C library error (errno). */
static int fail_errno(const char *what, const char *path)
{
	return say(EXIT_ERROR, "%s %s: %s", what, path, strerror(errno));
}

/* Worst of two statuses: damage over other errors over not-found. */
static int worst(int a, int b)
{
	static const int rank[] = { 0, 1, 2, 4, 3 }; /* by status */
	if (a < 0 || a > 4)
		return a;
	if (b < 0 || b > 4)
		return b;
	return rank[b] > rank[a] ? b : a;
}

/* ---------------------------------------------------------- escaping */

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode \xHH escapes in place; any other byte, including a backslash not
 * followed by x and two hex digits, stays as it is.  Returns the new length.
 */
static size_t unescape(char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' &&
		    hex((unsigned char)s[i + 2]) >= 0 &&
		    hex((unsigned char)s[i + 3]) >= 0) {
			s[o++] = (char)(hex((unsigned char)s[i + 2]) * 16 +
			                hex((unsigned char)s[i + 3]));
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	return o;
}

/* A KEY or VALUE argument: literal bytes, or decoded with -x. */
static size_t arg_bytes(char *arg)
{
	size_t n = strlen(arg);
	return opt.escaped ? unescape(arg, n) : n;
}

/* ---------------------------------------------------------- numbers */

/* "1.5 MiB" into buf. */
static const char *human(uint64_t bytes, char *buf, size_t cap)
{
	static const char *unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;

	if (bytes < 1024) {
		snprintf(buf, cap, "%" PRIu64 " bytes", bytes);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, "%.1f %s", v, unit[u]);
	return buf;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------- progress */

/*
 * A progress bar on stderr, only when stderr is a terminal and -q is not
 * given: "load [#######.......]  45%  1.2M records/s  ETA 0:03".  total 0
 * means unknown: no bar and no ETA, just the count and the rate.
 */
typedef struct progress {
	int on;
	const char *what;
	int bytes;           /* count bytes (else records) */
	uint64_t total;
	double start, last;
	uint64_t done;
	int drawn;
	pthread_mutex_t mu;  /* progress_set may run on a helper thread */
} progress;

static void progress_begin(progress *p, const char *what, uint64_t total,
                           int bytes)
{
	memset(p, 0, sizeof *p);
	p->on = !opt.quiet && isatty(STDERR_FILENO);
	p->what = what;
	p->total = total;
	p->bytes = bytes;
	p->start = p->last = now();
	pthread_mutex_init(&p->mu, NULL);
}

static void rate_text(const progress *p, double per_s, char *buf, size_t cap)
{
	if (p->bytes) {
		char h[32];
		snprintf(buf, cap, "%s/s", human((uint64_t)per_s, h, sizeof h));
	} else if (per_s >= 1e6) {
		snprintf(buf, cap, "%.1fM records/s", per_s / 1e6);
	} else if (per_s >= 1e3) {
		snprintf(buf, cap, "%.1fk records/s", per_s / 1e3);
	} else {
		snprintf(buf, cap, "%.0f records/s", per_s);
	}
}

static void progress_draw(progress *p, uint64_t done, double t)
{
	double el = t - p->start, per_s = el > 0 ? (double)done / el : 0;
	char rate[48], eta[32] = "", bar[32];

	rate_text(p, per_s, rate, sizeof rate);
	if (p->total) {
		uint64_t d = done > p->total ? p->total : done;
		int width = 24, fill = (int)((double)d / (double)p->total * width);
		for (int i = 0; i < width; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[width] = '\0';
		if (per_s > 0) {
			unsigned left = (unsigned)((double)(p->total - d) / per_s + 0.5);
			snprintf(eta, sizeof eta, "  ETA %u:%02u", left / 60, left % 60);
		}
		fprintf(stderr, "\r%s [%s] %3d%%  %s%s\033[K", p->what, bar,
		        (int)((double)d * 100 / (double)p->total), rate, eta);
	} else {
		fprintf(stderr, "\r%s %" PRIu64 " %s  %s\033[K", p->what, done,
		        p->bytes ? "bytes" : "records", rate);
	}
	fflush(stderr);
}

/* Note progress; redraws at most ten times a second (the first time at
 * once, so that even a short run shows, and ends with, a whole bar). */
static void progress_set(progress *p, uint64_t done)
{
	if (!p->on)
		return;
	double t = now();
	p->done = done;
	if (p->drawn && t - p->last < 0.1)
		return;
	pthread_mutex_lock(&p->mu);
	p->last = t;
	p->drawn = 1;
	progress_draw(p, done, t);
	pthread_mutex_unlock(&p->mu);
}

/* Draw the final state, then erase the bar. */
static void progress_end(progress *p)
{
	if (p->on && p->drawn) {
		progress_draw(p, p->done, now());
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	pthread_mutex_destroy(&p->mu);
}

/* ---------------------------------------------------------- the store */

static int open_store(cellar_db **db, const char *dir, unsigned flags,
                      uint64_t expected)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = flags;
	o.expected_keys = expected;
	if (opt.dead_pct)
		o.compact_dead_pct = opt.dead_pct;
	int rc = cellar_open(db, dir, &o);
	if (rc != CELLAR_OK)
		fail(rc, NULL);
	return rc;
}

/* Close, reporting a failed final sync; returns the status. */
static int close_store(cellar_db *db, int status)
{
	int rc = cellar_close(db);
	if (rc != CELLAR_OK)
		return worst(status, fail(rc, "close"));
	return status;
}

/* Flush stdout (or the -f file); a failed write is an error. */
static int finish_output(FILE *f, const char *name, int status)
{
	if (fflush(f) != 0 || ferror(f))
		return worst(status, fail_errno("writing", name));
	return status;
}

/* ---------------------------------------------------------- commands */

static int cmd_create(char **argv, int argc)
{
	cellar_db *db;
	int rc;

	(void)argc;
	/* An existing store is left alone: create never opens it for
	 * writing (which would rebuild a damaged index: see repair). */
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = CELLAR_READONLY;
	rc = cellar_open(&db, argv[0], &o);
	if (rc == CELLAR_OK) {
		cellar_close(db);
		return say(EXIT_ERROR, "already holds a store; create changes nothing");
	}
	if (rc != CELLAR_ENOENT)
		return fail(rc, NULL);
	if ((rc = open_store(&db, argv[0], CELLAR_CREATE, 0)) != CELLAR_OK)
		return status_of(rc);
	return close_store(db, 0);
}

/* Read all of f into a new buffer. */
static int slurp(FILE *f, const char *name, char **out, size_t *len)
{
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);

	while (buf) {
		if (n == cap) {
			char *b = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				free(buf);
				return fail_errno("reading", name);
			}
			*out = buf;
			*len = n;
			return 0;
		}
	}
	free(buf);
	return say(EXIT_ERROR, "reading %s: out of memory", name);
}

static int cmd_put(char **argv, int argc)
{
	cellar_db *db;
	char *val = NULL;
	size_t kn = arg_bytes(argv[1]), vn;
	int rc, status;

	/* The value: an argument, stdin (-) or a file (-f). */
	if (opt.file) {
		if (argc != 2)
			return say(EXIT_USAGE, "give VALUE or --file, not both");
		FILE *f = fopen(opt.file, "rb");
		if (!f)
			return fail_errno("cannot open", opt.file);
		status = slurp(f, opt.file, &val, &vn);
		fclose(f);
		if (status)
			return status;
	} else if (argc != 3) {
		return say(EXIT_USAGE, "put needs a VALUE, '-' for stdin, or --file F");
	} else if (strcmp(argv[2], "-") == 0) {
		if ((status = slurp(stdin, "stdin", &val, &vn)))
			return status;
	} else {
		vn = arg_bytes(argv[2]);
	}
	if ((rc = open_store(&db, argv[0], 0, 0)) != CELLAR_OK) {
		free(val);
		return status_of(rc);
	}
	cellar_put_options po = CELLAR_PUT_OPTIONS_INIT;
	po.ttl_ms = opt.ttl_ms;
	rc = cellar_put_ex(db, argv[1], kn, val ? val : argv[2], vn, &po);
	status = rc == CELLAR_OK ? 0 : fail_key(rc, "put", argv[1], kn);
	free(val);
	return close_store(db, status);
}

/* get --many reads this many keys, then looks them up in one call. */
#define MANY_BATCH 64
/* Each key's value goes to a buffer of this size; longer ones are
 * fetched again with cellar_get_alloc. */
#define MANY_VALUE_CAP (64u << 10)

/* Print one item of a get --many batch; the status so far, worsened. */
static int many_item(cellar_db *db, cellar_get_item *it, int status, int *stop)
{
	void *val = it->buf;
	size_t vn = it->val_len;
	int rc = it->status;

	if (rc == CELLAR_EBUFS) /* longer than the batch's buffers */
		rc = cellar_get_alloc(db, it->key, it->key_len, &val, &vn);
	if (rc != CELLAR_OK) {
		status = worst(status, fail_key(rc, NULL, it->key, it->key_len));
		*stop = status_of(rc) != EXIT_NOTFOUND && status_of(rc) != EXIT_DAMAGED;
		return status;
	}
	put_escaped(it->key, it->key_len, stdout);
	putchar('\t');
	put_escaped(val, vn, stdout);
	putchar('\n');
	if (val != it->buf)
		cellar_free(val);
	return status;
}

/*
 * get --many: keys on stdin, one per line, escaped; KEY<TAB>VALUE out, in
 * the input's order.  Keys go to cellar_get_many MANY_BATCH at a time.
 */
static int get_many(cellar_db *db)
{
	cellar_get_item items[MANY_BATCH];
	char *keys[MANY_BATCH] = { 0 };
	size_t caps[MANY_BATCH] = { 0 }, n = 0;
	uint8_t *vals = malloc((size_t)MANY_BATCH * MANY_VALUE_CAP);
	int status = 0, stop = 0, eof = 0, rc;

	if (!vals)
		return say(EXIT_ERROR, "out of memory");
	while (!stop && !eof) {
		ssize_t len = getline(&keys[n], &caps[n], stdin);
		if (len >= 0) {
			if (len > 0 && keys[n][len - 1] == '\n')
				len--;
			if (len > 0 && keys[n][len - 1] == '\r')
				len--;
			items[n] = (cellar_get_item){ keys[n],
			                              unescape(keys[n], (size_t)len),
			                              vals + n * MANY_VALUE_CAP,
			                              MANY_VALUE_CAP, 0, 0 };
			n++;
		} else {
			eof = 1;
		}
		if (n == MANY_BATCH || (eof && n)) {
			if ((rc = cellar_get_many(db, items, n)) != CELLAR_OK) {
				status = worst(status, fail(rc, "get --many"));
				break;
			}
			for (size_t i = 0; i < n && !stop; i++)
				status = many_item(db, &items[i], status, &stop);
			n = 0;
		}
	}
	if (ferror(stdin))
		status = worst(status, fail_errno("reading", "stdin"));
	for (size_t i = 0; i < MANY_BATCH; i++)
		free(keys[i]);
	free(vals);
	return finish_output(stdout, "stdout", status);
}

static int cmd_get(char **argv, int argc)
{
	cellar_db *db;
	void *val;
	size_t kn, vn;
	int rc, status = 0;

	if (opt.many != (argc == 1))
		return say(EXIT_USAGE, opt.many ? "get --many takes no KEY"
		                                : "get needs a KEY (or --many)");
	if ((rc = open_store(&db, argv[0], CELLAR_READONLY, 0)) != CELLAR_OK)
		return status_of(rc);
	if (opt.many)
		return close_store(db, get_many(db));
	kn = arg_bytes(argv[1]);
	rc = cellar_get_alloc(db, argv[1], kn, &val, &vn);
	if (rc != CELLAR_OK) {
		status = fail_key(rc, NULL, argv[1], kn);
	} else {
		if (fwrite(val, 1, vn, stdout) != vn)
			status = fail_errno("writing", "stdout");
		status = finish_output(stdout, "stdout", status);
		cellar_free(val);
	}
	return close_store(db, status);
}

static int cmd_del(char **argv, int argc)
{
	cellar_db *db;
	size_t kn = arg_bytes(argv[1]);
	int rc;

	(void)argc;
	if ((rc = open_store(&db, argv[0], 0, 0)) != CELLAR_OK)
		return status_of(rc);
	rc = cellar_delete(db, argv[1], kn);
	return close_store(db, rc == CELLAR_OK ? 0 : fail_key(rc, NULL, argv[1], kn));
}

static int cmd_count(char **argv, int argc)
{
	cellar_db *db;
	uint64_t n;
	int rc;

	(void)argc;
	if ((rc = open_store(&db, argv[0], CELLAR_READONLY, 0)) != CELLAR_OK)
		return status_of(rc);
	rc = cellar_count(db, &n);
	if (rc == CELLAR_OK)
		printf("%" PRIu64 "\n", n);
	return close_store(db, rc == CELLAR_OK ? finish_output(stdout, "stdout", 0)
	                                       : fail(rc, NULL));
}

/* ---------------------------------------------------------- dump, list */

static void write_record(FILE *f, const void *k, size_t kn, const void *v,
                         size_t vn)
{
	if (opt.format == FMT_CDB) {
		fprintf(f, "+%zu,%zu:", kn, vn);
		fwrite(k, 1, kn, f);
		fputs("->", f);
		fwrite(v, 1, vn, f);
		putc('\n', f);
	} else {
		put_escaped(k, kn, f);
		putc('\t', f);
		put_escaped(v, vn, f);
		putc('\n', f);
	}
}

/* Iterate every item: dump (keys_only 0) or list (1). */
static int iterate(const char *dir, int keys_only)
{
	cellar_db *db;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	uint64_t count = 0, done = 0, damaged = 0;
	FILE *out = stdout;
	const char *out_name = "stdout";
	progress p;
	int rc, status = 0;

	if ((rc = open_store(&db, dir, CELLAR_READONLY, 0)) != CELLAR_OK)
		return status_of(rc);
	if ((rc = cellar_count(db, &count)) != CELLAR_OK ||
	    (rc = cellar_iter_new(db, &it)) != CELLAR_OK)
		return close_store(db, fail(rc, NULL));
	if (!keys_only && opt.file) {
		if (!(out = fopen(opt.file, "wb"))) {
			cellar_iter_free(it);
			return close_store(db, fail_errno("cannot create", opt.file));
		}
		out_name = opt.file;
	}
	if (!keys_only && opt.format == FMT_CELLAR)
		fprintf(out, "%s %d %" PRIu64 "\n", DUMP_MAGIC, DUMP_VERSION, count);
	progress_begin(&p, keys_only ? "list" : "dump", count, 0);
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) != CELLAR_EDONE) {
		if (rc != CELLAR_OK) {
			/* A damaged record is skipped: give what is readable. */
			if (damaged++ == 0 || status_of(rc) != EXIT_DAMAGED)
				status = worst(status, fail(rc, "skipped"));
			if (status_of(rc) == EXIT_DAMAGED)
				continue;
			break;
		}
		if (keys_only) {
			put_escaped(k, kn, out);
			putc('\n', out);
		} else {
			write_record(out, k, kn, v, vn);
		}
		progress_set(&p, ++done);
	}
	progress_end(&p);
	if (!keys_only && opt.format == FMT_CELLAR)
		fprintf(out, "%s\n", DUMP_END);
	else if (!keys_only && opt.format == FMT_CDB)
		putc('\n', out);
	if (damaged)
		say(status, "%" PRIu64 " damaged item%s skipped, %" PRIu64 " written; "
		    "'cellar verify %s' tells what is damaged, 'cellar repair %s' "
		    "rebuilds a damaged index", damaged, damaged == 1 ? "" : "s",
		    done, dir, dir);
	if (!keys_only && opt.format == FMT_CELLAR && done != count && !damaged)
		status = worst(status, say(EXIT_DAMAGED, "the store counts %" PRIu64
		                           " keys but %" PRIu64 " were read", count,
		                           done));
	status = finish_output(out, out_name, status);
	if (out != stdout && fclose(out) != 0)
		status = worst(status, fail_errno("writing", out_name));
	cellar_iter_free(it);
	return close_store(db, status);
}

static int cmd_dump(char **argv, int argc)
{
	(void)argc;
	return iterate(argv[0], 0);
}

static int cmd_list(char **argv, int argc)
{
	(void)argc;
	return iterate(argv[0], 1);
}

/* ---------------------------------------------------------- load */

/* The input of load, read twice: to validate, then to put. */
typedef struct reader {
	FILE *f;
	const char *name;  /* for messages: "stdin" or the file */
	int format;
	uint64_t line;     /* line (text) or record (cdb) number */
	uint64_t announced; /* the cellar format header's count */
	uint64_t records;
	int in_body;       /* past the header */
	char *buf;         /* text: the line; cdb: key then value */
	size_t cap;
	char *key, *val;
	size_t key_len, val_len;
	uint64_t bytes;    /* consumed so far, for progress */
} reader;

static int bad_input(reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "cellar: DIR: FILE line N: ..."; returns EXIT_ERROR. */
static int bad_input(reader *r, const char *fmt, ...)
{
	va_list ap;

	msg_begin();
	fprintf(stderr, "%s %s %" PRIu64 ": ", r->name,
	        r->format == FMT_CDB ? "record" : "line", r->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERROR;
}

/* One text line without its newline (CR of CRLF stripped too); 1 at EOF. */
static int text_line(reader *r, size_t *len_out)
{
	ssize_t len = getline(&r->buf, &r->cap, r->f);

	if (len < 0) {
		if (ferror(r->f))
			return fail_errno("reading", r->name);
		return 1;
	}
	r->line++;
	r->bytes += (uint64_t)len;
	if (r->buf[len - 1] != '\n')
		return bad_input(r, "the last line has no newline: the input is "
		                 "cut short");
	len--;
	if (len > 0 && r->buf[len - 1] == '\r')
		len--;
	r->buf[len] = '\0';
	*len_out = (size_t)len;
	return 0;
}

/* Check the lengths of a key and a value against the store's limits. */
static int check_lengths(reader *r)
{
	if (r->key_len == 0)
		return bad_input(r, "the key is empty");
	if (r->key_len > CELLAR_MAX_KEY_LEN)
		return bad_input(r, "the key is longer than %u bytes",
		                 CELLAR_MAX_KEY_LEN);
	if (r->val_len > CELLAR_MAX_VALUE_LEN)
		return bad_input(r, "the value is longer than 1 GiB");
	return 0;
}

static int text_record(reader *r)
{
	size_t len = 0;
	int st;

	for (;;) {
		if ((st = text_line(r, &len)) != 0) {
			if (st != 1)
				return -st;
			if (r->format == FMT_CELLAR)
				return -bad_input(r, r->in_body ? "no '%s' line: the input "
				                  "is cut short" : "empty input, not a "
				                  "cellar dump%s", r->in_body ? DUMP_END : "");
			return 0;
		}
		if (r->format == FMT_CELLAR && !r->in_body) {
			char magic[16];
			int version, n = 0;
			uint64_t count;
			if (sscanf(r->buf, "%15s %d %" SCNu64 "%n", magic, &version,
			           &count, &n) != 3 || (size_t)n != len ||
			    strcmp(magic, DUMP_MAGIC) != 0)
				return -bad_input(r, "not a cellar dump (no '%s VERSION "
				                  "COUNT' header; --tsv or --cdb read the "
				                  "other formats)", DUMP_MAGIC);
			if (version != DUMP_VERSION)
				return -bad_input(r, "dump format version %d; this cellar "
				                  "reads version %d", version, DUMP_VERSION);
			r->announced = count;
			r->in_body = 1;
			continue;
		}
		if (r->format == FMT_CELLAR && strcmp(r->buf, DUMP_END) == 0) {
			if (r->records != r->announced)
				return -bad_input(r, "the header announced %" PRIu64
				                  " records, but %" PRIu64 " came",
				                  r->announced, r->records);
			if (fgetc(r->f) != EOF)
				return -bad_input(r, "more input after '%s'", DUMP_END);
			return 0;
		}
		if (len == 0 && r->format == FMT_TSV)
			continue; /* empty lines are allowed in TSV */
		char *tab = memchr(r->buf, '\t', len);
		if (!tab)
			return -bad_input(r, "no TAB between key and value");
		r->key = r->buf;
		r->key_len = unescape(r->buf, (size_t)(tab - r->buf));
		r->val = tab + 1;
		r->val_len = unescape(tab + 1, (size_t)(r->buf + len - tab - 1));
		if ((st = check_lengths(r)))
			return -st;
		r->records++;
		return 1;
	}
}

/* A decimal length of cdb's "+klen,vlen:" ended by stop. */
static int cdb_number(reader *r, int stop, size_t *out)
{
	size_t n = 0;
	int c, digits = 0;

	while ((c = getc(r->f)) >= '0' && c <= '9') {
		r->bytes++;
		if (n > (SIZE_MAX - 9) / 10)
			return -1;
		n = n * 10 + (size_t)(c - '0');
		digits++;
	}
	r->bytes++;
	if (c != stop || digits == 0)
		return -1;
	*out = n;
	return 0;
}

static int cdb_bytes(reader *r, char *p, size_t n)
{
	if (fread(p, 1, n, r->f) != n)
		return -1;
	r->bytes += n;
	return 0;
}

/* cdb -d format: "+klen,vlen:key->value\n" records, then "\n". */
static int cdb_record(reader *r)
{
	int c = getc(r->f);
	size_t kn, vn;
	char arrow[2];

	r->line++;
	if (c == EOF)
		return ferror(r->f) ? -fail_errno("reading", r->name)
		                    : -bad_input(r, "no empty line at the end: the "
		                                 "input is cut short");
	r->bytes++;
	if (c == '\n') {
		if (getc(r->f) != EOF)
			return -bad_input(r, "more input after the empty line that "
			                  "ends a cdb dump");
		return 0;
	}
	if (c != '+' || cdb_number(r, ',', &kn) < 0 || cdb_number(r, ':', &vn) < 0)
		return -bad_input(r, "not a '+KLEN,VLEN:KEY->VALUE' record");
	r->key_len = kn;
	r->val_len = vn;
	if ((c = check_lengths(r)))
		return -c;
	if (kn + vn + 1 > r->cap) {
		char *b = realloc(r->buf, kn + vn + 1);
		if (!b)
			return -say(EXIT_ERROR, "out of memory");
		r->buf = b;
		r->cap = kn + vn + 1;
	}
	r->key = r->buf;
	r->val = r->buf + kn;
	if (cdb_bytes(r, r->key, kn) < 0 || cdb_bytes(r, arrow, 2) < 0 ||
	    memcmp(arrow, "->", 2) != 0 || cdb_bytes(r, r->val, vn) < 0 ||
	    (c = getc(r->f)) != '\n')
		return -bad_input(r, feof(r->f) ? "the record is cut short"
		                                : "not a '+KLEN,VLEN:KEY->VALUE' "
		                                  "record");
	r->bytes++;
	r->records++;
	return 1;
}

/* The next record: 1, 0 at a valid end, or minus an exit status. */
static int next_record(reader *r)
{
	return r->format == FMT_CDB ? cdb_record(r) : text_record(r);
}

static int reader_rewind(reader *r)
{
	if (fseeko(r->f, 0, SEEK_SET) != 0)
		return fail_errno("rewinding", r->name);
	r->line = r->records = r->bytes = 0;
	r->in_body = 0;
	return 0;
}

/* "DIR.TAG-PID": a directory beside dir (trailing slashes of dir dropped). */
static void sibling(char *out, size_t cap, const char *dir, const char *tag)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	snprintf(out, cap, "%.*s.%s-%ld", (int)n, dir, tag, (long)getpid());
}

/* Remove a directory this run made, and the store files in it. */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Seen keys (--dups=first|error): a scratch store mapping key -> record. */
typedef struct seen {
	cellar_db *db;
	char dir[4096];
} seen;

static int seen_open(seen *s, const char *dir)
{
	sibling(s->dir, sizeof s->dir, dir, "keys");
	remove_tree(s->dir);
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = CELLAR_CREATE;
	int rc = cellar_open(&s->db, s->dir, &o);
	if (rc != CELLAR_OK)
		return fail(rc, "scratch store for --dups");
	return 0;
}

static void seen_close(seen *s)
{
	if (s->db) {
		cellar_close(s->db);
		s->db = NULL;
		remove_tree(s->dir);
	}
}

/* The record number where r's key first came, or 0 if new (then noted). */
static int seen_check(seen *s, reader *r, uint64_t *first)
{
	unsigned char num[8];
	size_t n;
	int rc = cellar_get(s->db, r->key, r->key_len, num, sizeof num, &n);

	*first = 0;
	if (rc == CELLAR_OK && n == 8) {
		for (int i = 7; i >= 0; i--)
			*first = *first << 8 | num[i];
		return 0;
	}
	if (rc != CELLAR_ENOTFOUND)
		return fail(rc, "scratch store for --dups");
	for (int i = 0; i < 8; i++)
		num[i] = (unsigned char)(r->line >> (8 * i));
	if ((rc = cellar_put(s->db, r->key, r->key_len, num, 8)) != CELLAR_OK)
		return fail(rc, "scratch store for --dups");
	return 0;
}

/* Pass 1: read everything, check it, count it; nothing is written. */
static int validate(reader *r, seen *s)
{
	uint64_t first;
	int rc, st;
	progress p;

	struct stat sb;
	progress_begin(&p, "check input", 0, 1);
	if (fstat(fileno(r->f), &sb) == 0 && S_ISREG(sb.st_mode))
		p.total = (uint64_t)sb.st_size;
	while ((rc = next_record(r)) > 0) {
		if (s->db) {
			if ((st = seen_check(s, r, &first)))
				return progress_end(&p), st;
			if (first && opt.dups == DUPS_ERROR) {
				progress_end(&p);
				fprintf(stderr, "cellar: %s: %s %s %" PRIu64 ": key '",
				        cur_dir, r->name,
				        r->format == FMT_CDB ? "record" : "line", r->line);
				put_escaped(r->key, r->key_len, stderr);
				fprintf(stderr, "' again (first on %s %" PRIu64 "; "
				        "--dups=error)\n",
				        r->format == FMT_CDB ? "record" : "line", first);
				return EXIT_ERROR;
			}
		}
		progress_set(&p, r->bytes);
	}
	progress_end(&p);
	return rc < 0 ? -rc : 0;
}

/* Open the input: -f FILE, or stdin spooled to a temporary file. */
static int open_input(reader *r)
{
	struct stat st;

	if (opt.file && strcmp(opt.file, "-") != 0) {
		r->name = opt.file;
		if (!(r->f = fopen(opt.file, "rb")))
			return fail_errno("cannot open", opt.file);
		return 0;
	}
	r->name = "stdin";
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
	    fseeko(stdin, 0, SEEK_CUR) == 0) {
		r->f = stdin;
		return 0;
	}
	/* A pipe is read twice: keep a copy (removed when closed). */
	char buf[1 << 16];
	size_t n;
	if (!(r->f = tmpfile()))
		return fail_errno("cannot create", "a temporary file for stdin");
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
		if (fwrite(buf, 1, n, r->f) != n)
			return fail_errno("writing", "the temporary copy of stdin");
	if (ferror(stdin))
		return fail_errno("reading", "stdin");
	if (fflush(r->f) != 0)
		return fail_errno("writing", "the temporary copy of stdin");
	return reader_rewind(r);
}

/* Pass 2: put every record into db. */
static int put_all(reader *r, cellar_db *db, seen *s, uint64_t *loaded,
                   uint64_t *skipped)
{
	uint64_t first;
	progress p;
	int rc, st = 0;

	progress_begin(&p, "load", r->records, 0);
	uint64_t total = r->records;
	if ((st = reader_rewind(r)))
		return st;
	while ((rc = next_record(r)) > 0) {
		progress_set(&p, r->records);
		if (s->db && opt.dups == DUPS_FIRST) {
			if ((st = seen_check(s, r, &first)))
				break;
			if (first) {
				++*skipped;
				continue;
			}
		}
		if (opt.no_overwrite) {
			rc = cellar_has(db, r->key, r->key_len);
			if (rc == CELLAR_OK) {
				++*skipped;
				continue;
			}
			if (rc != CELLAR_ENOTFOUND) {
				st = fail_key(rc, NULL, r->key, r->key_len);
				break;
			}
		}
		if ((rc = cellar_put(db, r->key, r->key_len, r->val, r->val_len))) {
			st = fail_key(rc, "put", r->key, r->key_len);
			break;
		}
		++*loaded;
	}
	(void)total;
	progress_end(&p);
	if (rc < 0 && !st)
		st = -rc; /* the input changed under us */
	return st;
}

/*
 * Pass 2 for a new store, when every record is to be kept (last wins):
 * through the bulk builder, which writes the index once, in bucket order,
 * and publishes dir atomically at the end.  *keys gets the keys built.
 */
static int build_all(reader *r, const char *dir, uint64_t *loaded,
                     uint64_t *keys)
{
	cellar_build_options bo = CELLAR_BUILD_OPTIONS_INIT;
	cellar_builder *b = NULL;
	cellar_db *db = NULL;
	progress p;
	int rc, st;

	if ((rc = cellar_builder_open(&b, dir, &bo)) != CELLAR_OK)
		return fail(rc, "build");
	progress_begin(&p, "load", r->records, 0); /* the count pass 1 saw */
	if ((st = reader_rewind(r))) {
		progress_end(&p);
		cellar_builder_abort(b);
		return st;
	}
	while ((rc = next_record(r)) > 0) {
		progress_set(&p, r->records);
		if ((rc = cellar_builder_add(b, r->key, r->key_len, r->val,
		                             r->val_len)) != CELLAR_OK) {
			st = fail_key(rc, "build", r->key, r->key_len);
			break;
		}
		++*loaded;
	}
	progress_end(&p);
	if (rc < 0 && !st)
		st = -rc; /* the input changed under us */
	if (!st && (rc = cellar_builder_finish(b)) != CELLAR_OK)
		st = fail(rc, "build");
	cellar_builder_abort(b); /* frees; before a finish, discards */
	if (st)
		return st;
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = CELLAR_READONLY;
	if ((rc = cellar_open(&db, dir, &o)) != CELLAR_OK ||
	    (rc = cellar_count(db, keys)) != CELLAR_OK)
		st = fail(rc, NULL);
	cellar_close(db);
	return st;
}

static int cmd_load(char **argv, int argc)
{
	const char *dir = argv[0];
	reader r = { 0 };
	seen s = { 0 };
	cellar_db *db = NULL;
	uint64_t loaded = 0, skipped = 0, keys = 0;
	char tmp[4096];
	int rc, st, fresh;

	(void)argc;
	r.format = opt.format;
	sibling(tmp, sizeof tmp, dir, "load");
	/* Does DIR hold a store?  A new one is built beside it and renamed
	 * into place at the end, so a failed load leaves nothing behind. */
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = CELLAR_READONLY;
	rc = cellar_open(&db, dir, &o);
	if (rc != CELLAR_OK && rc != CELLAR_ENOENT)
		return fail(rc, NULL);
	fresh = rc == CELLAR_ENOENT;
	cellar_close(db);
	db = NULL;
	if ((st = open_input(&r)))
		goto done;
	if (opt.dups == DUPS_ERROR && (st = seen_open(&s, dir)))
		goto done;
	if ((st = validate(&r, &s)))
		goto done;
	seen_close(&s);
	if (fresh && !opt.no_overwrite && opt.dups != DUPS_FIRST) {
		/* A new store and last wins: the builder's job. */
		if ((st = build_all(&r, dir, &loaded, &keys)))
			goto done;
		goto report;
	}
	if (opt.dups == DUPS_FIRST && (st = seen_open(&s, dir)))
		goto done;
	if (fresh)
		remove_tree(tmp);
	if ((rc = open_store(&db, fresh ? tmp : dir, CELLAR_CREATE,
	                     r.records)) != CELLAR_OK) {
		st = status_of(rc);
		goto done;
	}
	if ((st = put_all(&r, db, &s, &loaded, &skipped)))
		goto done;
	if ((rc = cellar_count(db, &keys)) != CELLAR_OK) {
		st = fail(rc, NULL);
		goto done;
	}
	rc = cellar_close(db);
	db = NULL;
	if (rc != CELLAR_OK) {
		st = fail(rc, "close");
		goto done;
	}
	if (fresh && rename(tmp, dir) != 0) {
		st = say(EXIT_ERROR, "cannot rename %s to %s: %s", tmp, dir,
		         strerror(errno));
		goto done;
	}
report:
	printf("loaded %" PRIu64 " record%s", loaded, loaded == 1 ? "" : "s");
	if (skipped)
		printf(", skipped %" PRIu64 " (%s)", skipped,
		       opt.no_overwrite ? "--no-overwrite or --dups=first"
		                        : "--dups=first");
	printf("; %" PRIu64 " key%s in %s\n", keys, keys == 1 ? "" : "s", dir);
	st = finish_output(stdout, "stdout", 0);
done:
	seen_close(&s);
	if (db)
		cellar_close(db);
	if (st && fresh)
		remove_tree(tmp);
	if (st && !fresh && loaded)
		say(st, "%" PRIu64 " record%s put before the error stay in the store",
		    loaded, loaded == 1 ? "" : "s");
	if (r.f && r.f != stdin)
		fclose(r.f);
	free(r.buf);
	return st;
}

/*
 * build: a fresh store from a dump, published over DIR at once: readers
 * that open DIR get the old store or the new one, whole (the builder's
 * atomic publication); handles open on the old one go on reading it.
 */
static int cmd_build(char **argv, int argc)
{
	const char *dir = argv[0];
	reader r = { 0 };
	seen s = { 0 };
	uint64_t built = 0, keys = 0;
	int st;

	(void)argc;
	r.format = opt.format;
	if ((st = open_input(&r)) || (st = validate(&r, &s)) ||
	    (st = build_all(&r, dir, &built, &keys)))
		goto done;
	printf("built %" PRIu64 " record%s; %" PRIu64 " key%s in %s\n", built,
	       built == 1 ? "" : "s", keys, keys == 1 ? "" : "s", dir);
	st = finish_output(stdout, "stdout", 0);
done:
	seen_close(&s);
	if (r.f && r.f != stdin)
		fclose(r.f);
	free(r.buf);
	return st;
}

/* ---------------------------------------------------------- verify */

static const char *const damage_names[CELLAR_DAMAGE_KINDS] = {
	"record", "tail", "newer-record", "index-file", "index-stale",
	"index-chunk", "index-table", "key-missing", "slot-bad", "slot-stale",
	"count",
};

/* How many places of each kind of damage verify lists. */
#define VERIFY_PLACES 3

/* The first message and places of each kind, as on_problem told them. */
typedef struct verify_ctx {
	char first[CELLAR_DAMAGE_KINDS][384];
	struct { uint64_t seq, off; } at[CELLAR_DAMAGE_KINDS][VERIFY_PLACES];
	unsigned nat[CELLAR_DAMAGE_KINDS];
	progress p;
} verify_ctx;

static void on_problem(const cellar_problem *pr, void *ctx)
{
	verify_ctx *c = ctx;
	char *s = c->first[pr->kind];
	FILE *f;

	if (c->nat[pr->kind] < VERIFY_PLACES) {
		c->at[pr->kind][c->nat[pr->kind]].seq = pr->seq;
		c->at[pr->kind][c->nat[pr->kind]++].off = pr->off;
	}
	if (s[0])
		return;
	if (!(f = fmemopen(s, sizeof c->first[0] - 1, "w")))
		return;
	fputs(pr->message, f);
	if (pr->key) {
		fputs(" (key '", f);
		put_escaped(pr->key, pr->key_len > 64 ? 64 : pr->key_len, f);
		fputs(pr->key_len > 64 ? "...')" : "')", f);
	}
	fclose(f);
}

static void on_progress(uint64_t done, uint64_t total, void *ctx)
{
	verify_ctx *c = ctx;
	c->p.total = total;
	progress_set(&c->p, done);
}

static void json_string(const char *s, size_t n, FILE *f)
{
	putc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

static void verify_json(const char *dir, const cellar_verify_report *r,
                        const verify_ctx *c)
{
	printf("{\"dir\":");
	json_string(dir, strlen(dir), stdout);
	printf(",\"ok\":%s,\"segments\":%" PRIu64 ",\"segment_bytes\":%" PRIu64
	       ",\"records\":%" PRIu64 ",\"puts\":%" PRIu64 ",\"deletes\":%" PRIu64
	       ",\"keys\":%" PRIu64 ",\"index_checked\":%s,\"index_keys\":%" PRIu64
	       ",\"index_slots\":%" PRIu64 ",\"problems\":%" PRIu64 ",\"damage\":{",
	       r->problems ? "false" : "true", r->segments, r->segment_bytes,
	       r->records, r->puts, r->deletes, r->keys,
	       r->index_checked ? "true" : "false", r->index_keys, r->index_slots,
	       r->problems);
	int comma = 0;
	for (int k = 0; k < CELLAR_DAMAGE_KINDS; k++) {
		const cellar_damage *d = &r->damage[k];
		if (!d->count)
			continue;
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"first_segment\":", comma++ ? "," : "", damage_names[k],
		       d->count, d->bytes);
		if (d->first_seq)
			printf("\"%016" PRIx64 "\"", d->first_seq);
		else
			printf("null");
		printf(",\"first_offset\":%" PRIu64 ",\"places\":[", d->first_off);
		for (unsigned i = 0; i < c->nat[k]; i++) {
			printf("%s{\"segment\":", i ? "," : "");
			if (c->at[k][i].seq)
				printf("\"%016" PRIx64 "\"", c->at[k][i].seq);
			else
				printf("null");
			printf(",\"offset\":%" PRIu64 "}", c->at[k][i].off);
		}
		printf("],\"first\":");
		json_string(c->first[k], strlen(c->first[k]), stdout);
		putchar('}');
	}
	printf("}}\n");
}

static void verify_text(const char *dir, const cellar_verify_report *r,
                        const verify_ctx *c)
{
	char h[32];

	printf("%s: %" PRIu64 " segment%s (%s), %" PRIu64 " records (%" PRIu64
	       " puts, %" PRIu64 " deletes), %" PRIu64 " live keys\n", dir,
	       r->segments, r->segments == 1 ? "" : "s",
	       human(r->segment_bytes, h, sizeof h), r->records, r->puts,
	       r->deletes, r->keys);
	if (r->index_checked)
		printf("index: %" PRIu64 " keys, %" PRIu64 " slots checked against "
		       "the log\n", r->index_keys, r->index_slots);
	else
		printf("index: not cross-checked (it is damaged, see below)\n");
	for (int k = 0; k < CELLAR_DAMAGE_KINDS; k++) {
		const cellar_damage *d = &r->damage[k];
		if (!d->count)
			continue;
		printf("damage %s: %" PRIu64 " time%s", damage_names[k], d->count,
		       d->count == 1 ? "" : "s");
		if (d->bytes)
			printf(", %s", human(d->bytes, h, sizeof h));
		for (unsigned i = 0; i < c->nat[k]; i++) {
			const char *lead = i == 0 ? ", first" : ", then";
			if (c->at[k][i].seq)
				printf("%s in %016" PRIx64 ".seg at offset %" PRIu64, lead,
				       c->at[k][i].seq, c->at[k][i].off);
			else if (k == CELLAR_DAMAGE_INDEX_CHUNK)
				printf("%s at index offset %" PRIu64, lead,
				       c->at[k][i].off);
		}
		if (d->count > c->nat[k] && c->nat[k] > 1)
			printf(", ...");
		printf("\n  first: %s\n", c->first[k]);
	}
	if (r->problems == 0) {
		printf("ok\n");
		return;
	}
	printf("DAMAGED: %" PRIu64 " problem%s", r->problems,
	       r->problems == 1 ? "" : "s");
	int idx = 0;
	for (int k = CELLAR_DAMAGE_INDEX_FILE; k < CELLAR_DAMAGE_KINDS; k++)
		idx |= r->damage[k].count != 0;
	if (idx || r->damage[CELLAR_DAMAGE_TAIL].count)
		printf("; 'cellar repair %s' rebuilds the index from the log", dir);
	if (r->damage[CELLAR_DAMAGE_RECORD].count ||
	    r->damage[CELLAR_DAMAGE_NEWER_RECORD].count)
		printf("; 'cellar repair --rewrite %s' copies the store without "
		       "its damaged records", dir);
	printf("\n");
}

static int cmd_verify(char **argv, int argc)
{
	cellar_verify_options o = CELLAR_VERIFY_OPTIONS_INIT;
	cellar_verify_report r;
	verify_ctx *c = calloc(1, sizeof *c);
	int rc, status;

	(void)argc;
	if (!c)
		return say(EXIT_ERROR, "out of memory");
	progress_begin(&c->p, "verify", 0, 1);
	o.on_problem = on_problem;
	o.on_progress = on_progress;
	o.ctx = c;
	rc = cellar_verify(argv[0], &o, &r);
	progress_end(&c->p);
	if (rc != CELLAR_OK) {
		free(c);
		return fail(rc, NULL);
	}
	if (opt.json)
		verify_json(argv[0], &r, c);
	else
		verify_text(argv[0], &r, c);
	status = finish_output(stdout, "stdout", r.problems ? EXIT_DAMAGED : 0);
	free(c);
	return status;
}

/*
 * repair --rewrite: copy every live item into a new store beside dir and
 * swap the two directories, so that no damaged record is left in the log.
 * The old store's write lock is held throughout, which keeps writers out;
 * it is read through a read-only handle, so that closing it writes nothing
 * into the directory that by then holds the new store.
 */
static int rewrite_store(const char *dir)
{
	cellar_fs *fs = NULL;
	cellar_file *lock = NULL;
	cellar_db *src = NULL, *dst = NULL;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	uint64_t count = 0, copied = 0;
	char tmp[4096], old[4096];
	progress p;
	int rc, st = 0;

	sibling(tmp, sizeof tmp, dir, "rewrite");
	remove_tree(tmp);
	snprintf(old, sizeof old, "%s/LOCK", dir);
	if ((rc = cellar_fs_posix_new(&fs)) != CELLAR_OK ||
	    (rc = fs->lock(fs, old, &lock)) != CELLAR_OK) {
		st = fail(rc, "rewrite");
		goto done;
	}
	sibling(old, sizeof old, dir, "old");
	if ((rc = open_store(&src, dir, CELLAR_READONLY, 0)) != CELLAR_OK) {
		st = status_of(rc);
		goto done;
	}
	if ((rc = cellar_count(src, &count)) != CELLAR_OK ||
	    (rc = cellar_iter_new(src, &it)) != CELLAR_OK) {
		st = fail(rc, NULL);
		goto done;
	}
	if ((rc = open_store(&dst, tmp, CELLAR_CREATE, count)) != CELLAR_OK) {
		st = status_of(rc);
		goto done;
	}
	progress_begin(&p, "rewrite", count, 0);
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) != CELLAR_EDONE) {
		/* The iterator reports the damaged records it steps over; the
		 * index, just verified, leads to none of them. */
		if (rc == CELLAR_ECORRUPT || rc == CELLAR_EVERSION)
			continue;
		if (rc == CELLAR_OK)
			rc = cellar_put(dst, k, kn, v, vn);
		if (rc != CELLAR_OK)
			break;
		progress_set(&p, ++copied);
	}
	progress_end(&p);
	if (rc != CELLAR_EDONE) {
		st = fail(rc, "rewrite");
		goto done;
	}
	cellar_iter_free(it);
	it = NULL;
	rc = cellar_close(dst);
	dst = NULL;
	if (rc != CELLAR_OK) {
		st = fail(rc, "rewrite");
		goto done;
	}
	cellar_close(src);
	src = NULL;
	if (rename(dir, old) != 0) {
		st = fail_errno("cannot rename", dir);
		goto done;
	}
	if (rename(tmp, dir) != 0) {
		st = fail_errno("cannot rename", tmp);
		if (rename(old, dir) != 0) /* put the old store back */
			say(st, "the store is now in %s", old);
		goto done;
	}
	printf("%s: rewrote the store: %" PRIu64 " items copied, no damaged "
	       "record left\n", dir, copied);
done:
	cellar_iter_free(it);
	if (dst)
		cellar_close(dst);
	if (src)
		cellar_close(src);
	if (lock)
		fs->unlock(fs, lock);
	cellar_fs_free(fs);
	if (st)
		remove_tree(tmp);
	else
		remove_tree(old);
	return st;
}

static int cmd_repair(char **argv, int argc)
{
	cellar_repair_result res;
	const char *dir = argv[0];
	char h[32];
	int rc;

	(void)argc;
	rc = cellar_repair(dir, NULL, &res);
	if (rc != CELLAR_OK)
		return fail(rc, NULL);
	if (res.index_rebuilt)
		printf("%s: rebuilt the index from the segments (it had %s damage) "
		       "and checkpointed it: %" PRIu64 " records replayed, %" PRIu64
		       " keys\n", dir,
		       res.rebuild_reason >= 0 ? damage_names[res.rebuild_reason]
		                               : "no",
		       res.records_replayed, res.keys);
	else
		printf("%s: the index agrees with the log; kept it (%" PRIu64
		       " keys)\n", dir, res.keys);
	if (res.tail_bytes_cut)
		printf("%s: cut %" PRIu64 " bytes of torn tail off the newest "
		       "segment\n", dir, res.tail_bytes_cut);
	if (res.damaged_records && !opt.rewrite)
		printf("%s: %" PRIu64 " damaged record%s (%s) stay%s in the log as "
		       "dead bytes; 'cellar repair --rewrite %s' copies the store "
		       "without %s\n", dir, res.damaged_records,
		       res.damaged_records == 1 ? "" : "s",
		       human(res.damaged_bytes, h, sizeof h),
		       res.damaged_records == 1 ? "s" : "", dir,
		       res.damaged_records == 1 ? "it" : "them");
	if (opt.rewrite && res.damaged_records) {
		fflush(stdout);
		if ((rc = rewrite_store(dir)) != 0)
			return rc;
	}
	return finish_output(stdout, "stdout", 0);
}

/* ---------------------------------------------------------- compact */

/* Progress of a pass, polled from another thread: bytes appended. */
typedef struct compact_watch {
	cellar_db *db;
	progress p;
	uint64_t last_seq, last_bytes; /* the newest segment when it started */
	atomic_int stop;
} compact_watch;

/* Bytes the log has grown by since w started (what the pass copied). */
static uint64_t grown(compact_watch *w)
{
	cellar_segment_info s[64];
	size_t n = 0, cap = sizeof s / sizeof s[0];
	uint64_t g = 0;

	if (cellar_segments(w->db, s, cap, &n) != CELLAR_OK)
		return 0;
	for (size_t i = 0; i < n && i < cap; i++) {
		if (s[i].seq > w->last_seq)
			g += s[i].bytes;
		else if (s[i].seq == w->last_seq && s[i].bytes > w->last_bytes)
			g += s[i].bytes - w->last_bytes;
	}
	return g;
}

static void *compact_poll(void *arg)
{
	compact_watch *w = arg;

	/* At least once, and once more after the pass: its final state. */
	for (int last = 0; !last;) {
		last = atomic_load(&w->stop);
		progress_set(&w->p, grown(w));
		if (!last)
			usleep(100000);
	}
	return NULL;
}

static int cmd_compact(char **argv, int argc)
{
	cellar_compact_result res;
	cellar_segment_info *segs = NULL;
	compact_watch w;
	pthread_t t;
	cellar_db *db;
	size_t n = 0;
	char h1[32], h2[32];
	int rc, threaded = 0;

	(void)argc;
	if (opt.dead_pct > 100)
		return say(EXIT_USAGE, "--dead-pct must be 1..100");
	if ((rc = open_store(&db, argv[0], 0, 0)) != CELLAR_OK)
		return status_of(rc);
	memset(&w, 0, sizeof w);
	w.db = db;
	/* What will be copied: the live bytes of the segments the pass
	 * rewrites (dead share at or above the threshold). */
	uint64_t total = 0;
	unsigned pct = opt.dead_pct ? opt.dead_pct : 20;
	if (cellar_segments(db, NULL, 0, &n) == CELLAR_OK && n &&
	    (segs = calloc(n, sizeof *segs)) &&
	    cellar_segments(db, segs, n, &n) == CELLAR_OK) {
		for (size_t i = 0; i < n; i++) {
			uint64_t body = segs[i].live_bytes + segs[i].dead_bytes;
			if (body && segs[i].dead_bytes * 100 >= body * pct)
				total += segs[i].live_bytes;
		}
		w.last_seq = segs[n - 1].seq;
		w.last_bytes = segs[n - 1].bytes;
	}
	free(segs);
	progress_begin(&w.p, "compact", total, 1);
	if (w.p.on && pthread_create(&t, NULL, compact_poll, &w) == 0)
		threaded = 1;
	rc = cellar_compact(db, &res);
	atomic_store(&w.stop, 1);
	if (threaded)
		pthread_join(t, NULL);
	progress_end(&w.p);
	if (rc != CELLAR_OK)
		return close_store(db, fail(rc, "compact"));
	if (opt.json) {
		printf("{\"segments_compacted\":%" PRIu64 ",\"records_copied\":%" PRIu64
		       ",\"bytes_copied\":%" PRIu64 ",\"tombstones_dropped\":%" PRIu64
		       ",\"bytes_reclaimed\":%" PRIu64 ",\"seconds\":%.6f,"
		       "\"longest_pause_ms\":%.3f,\"complete\":%s}\n",
		       res.segments_compacted, res.records_copied, res.bytes_copied,
		       res.tombstones_dropped, res.bytes_reclaimed, res.seconds,
		       res.longest_pause_ms, res.complete ? "true" : "false");
	} else {
		printf("%s: compacted %" PRIu64 " segment%s: copied %" PRIu64
		       " records (%s), dropped %" PRIu64 " tombstones, reclaimed %s "
		       "in %.3f s (longest writer pause %.3f ms)%s\n", argv[0],
		       res.segments_compacted, res.segments_compacted == 1 ? "" : "s",
		       res.records_copied, human(res.bytes_copied, h1, sizeof h1),
		       res.tombstones_dropped,
		       human(res.bytes_reclaimed, h2, sizeof h2), res.seconds,
		       res.longest_pause_ms, res.complete ? "" : "; cut short");
	}
	return close_store(db, finish_output(stdout, "stdout", 0));
}

/* ---------------------------------------------------------- backup */

static int cmd_backup(char **argv, int argc)
{
	cellar_backup_result r;
	cellar_db *db;
	char h1[32], h2[32];
	int rc;

	(void)argc;
	if ((rc = open_store(&db, argv[0], 0, 0)) != CELLAR_OK)
		return status_of(rc);
	if ((rc = cellar_backup(db, argv[1], &r)) != CELLAR_OK)
		return close_store(db, fail(rc, "backup"));
	if (opt.json)
		printf("{\"keys\":%" PRIu64 ",\"linked_files\":%" PRIu64
		       ",\"linked_bytes\":%" PRIu64 ",\"copied_files\":%" PRIu64
		       ",\"copied_bytes\":%" PRIu64 ",\"index_bytes\":%" PRIu64 "}\n",
		       r.keys, r.linked_files, r.linked_bytes, r.copied_files,
		       r.copied_bytes, r.index_bytes);
	else
		printf("%s: backup of %" PRIu64 " keys to %s: linked %" PRIu64
		       " file%s (%s), copied %" PRIu64 " file%s (%s)\n", argv[0],
		       r.keys, argv[1], r.linked_files, r.linked_files == 1 ? "" : "s",
		       human(r.linked_bytes, h1, sizeof h1), r.copied_files,
		       r.copied_files == 1 ? "" : "s",
		       human(r.copied_bytes, h2, sizeof h2));
	return close_store(db, finish_output(stdout, "stdout", 0));
}

/* ---------------------------------------------------------- stats */

/* Name, value, unit for every cellar_stats() field. */
typedef struct stat_row {
	const char *name;
	double value;
	int is_int;
	const char *unit;
} stat_row;

static int cmd_stats(char **argv, int argc)
{
	cellar_db *db;
	cellar_db_stats st;
	cellar_segment_info *segs;
	size_t n, cap;
	char h[32];
	int rc;

	(void)argc;
	if ((rc = open_store(&db, argv[0], CELLAR_READONLY, 0)) != CELLAR_OK)
		return status_of(rc);
	if ((rc = cellar_stats_sized(db, &st, sizeof st)) != CELLAR_OK)
		return close_store(db, fail(rc, NULL));
	const stat_row rows[] = {
		{ "keys", (double)st.keys, 1, "keys" },
		{ "live_bytes", (double)st.live_bytes, 1, "bytes" },
		{ "dead_bytes", (double)st.dead_bytes, 1, "bytes" },
		{ "segments", (double)st.segments, 1, "files" },
		{ "segment_bytes", (double)st.segment_bytes, 1, "bytes" },
		{ "index_bytes", (double)st.index_bytes, 1, "bytes" },
		{ "bytes_on_disk", (double)st.bytes_on_disk, 1, "bytes" },
		{ "buckets", (double)st.buckets, 1, "buckets" },
		{ "overflow_buckets", (double)st.overflow_buckets, 1, "buckets" },
		{ "load_factor", st.load_factor, 0, "keys per slot" },
		{ "avg_probe", st.avg_probe, 0, "buckets per lookup" },
		{ "puts", (double)st.puts, 1, "since open" },
		{ "deletes", (double)st.deletes, 1, "since open" },
		{ "gets", (double)st.gets, 1, "since open" },
		{ "hits", (double)st.hits, 1, "since open" },
		{ "misses", (double)st.misses, 1, "since open" },
		{ "syncs", (double)st.syncs, 1, "since open" },
		{ "compactions", (double)st.compactions, 1, "since open" },
		{ "recovered_records", (double)st.recovered_records, 1, "records" },
		{ "rebuilt_index", (double)st.rebuilt_index, 1, "flag" },
		{ "torn_bytes", (double)st.torn_bytes, 1, "bytes" },
		{ "damaged_bytes", (double)st.damaged_bytes, 1, "bytes" },
		{ "checkpoints", (double)st.checkpoints, 1, "since open" },
		{ "checkpoint_failures", (double)st.checkpoint_failures, 1,
		  "since open" },
		{ "ckpt_chunks_copied", (double)st.ckpt_chunks_copied, 1,
		  "chunks" },
		{ "ckpt_copy_bytes", (double)st.ckpt_copy_bytes, 1, "bytes" },
		{ "ckpt_copy_bytes_max", (double)st.ckpt_copy_bytes_max, 1,
		  "bytes" },
		{ "ckpt_longest_hold_ms", st.ckpt_longest_hold_ms, 0, "ms" },
	};
	const size_t nrows = sizeof rows / sizeof rows[0];

	/* First ask how many segments there are, then fetch them. */
	if ((rc = cellar_segments(db, NULL, 0, &cap)) != CELLAR_OK)
		return close_store(db, fail(rc, NULL));
	segs = calloc(cap > 0 ? cap : 1, sizeof *segs);
	if (segs == NULL)
		return close_store(db, say(EXIT_ERROR, "out of memory"));
	if ((rc = cellar_segments(db, segs, cap, &n)) != CELLAR_OK) {
		free(segs);
		return close_store(db, fail(rc, NULL));
	}
	if (n > cap)
		n = cap;
	if (opt.json) {
		printf("{");
		for (size_t i = 0; i < nrows; i++) {
			if (rows[i].is_int)
				printf("\"%s\":%" PRIu64 ",", rows[i].name,
				       (uint64_t)rows[i].value);
			else
				printf("\"%s\":%.6f,", rows[i].name, rows[i].value);
		}
		printf("\"units\":{");
		for (size_t i = 0; i < nrows; i++)
			printf("%s\"%s\":\"%s\"", i ? "," : "", rows[i].name,
			       rows[i].unit);
		printf("},\"segment_list\":[");
		for (size_t i = 0; i < n; i++)
			printf("%s{\"seq\":\"%016" PRIx64 "\",\"bytes\":%" PRIu64
			       ",\"live_bytes\":%" PRIu64 ",\"dead_bytes\":%" PRIu64 "}",
			       i ? "," : "", segs[i].seq, segs[i].bytes,
			       segs[i].live_bytes, segs[i].dead_bytes);
		printf("]}\n");
	} else {
		for (size_t i = 0; i < nrows; i++) {
			if (!rows[i].is_int)
				printf("%s %.3f %s\n", rows[i].name, rows[i].value,
				       rows[i].unit);
			else if (strcmp(rows[i].unit, "bytes") == 0 &&
			         rows[i].value >= 1024)
				printf("%s %" PRIu64 " bytes (%s)\n", rows[i].name,
				       (uint64_t)rows[i].value,
				       human((uint64_t)rows[i].value, h, sizeof h));
			else
				printf("%s %" PRIu64 " %s\n", rows[i].name,
				       (uint64_t)rows[i].value, rows[i].unit);
		}
		for (size_t i = 0; i < n; i++)
			printf("segment %016" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64
			       "\n", segs[i].seq, segs[i].bytes, segs[i].live_bytes,
			       segs[i].dead_bytes);
	}
	free(segs);
	return close_store(db, finish_output(stdout, "stdout", 0));
}

/* ---------------------------------------------------------- warm */

/*
 * warm's progress: cellar_warm() is one call, so a helper thread watches
 * the store's files come into the page cache (mincore over read-only
 * mappings of them) while it runs.
 */
typedef struct warm_watch {
	progress p;
	struct { void *map; size_t len; } files[256];
	size_t nfiles;
	uint64_t pages, at_start;
	atomic_int stop;
} warm_watch;

static uint64_t resident(warm_watch *w)
{
	static unsigned char vec[1 << 16];
	uint64_t n = 0;
	long page = sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < w->nfiles; i++) {
		for (size_t off = 0; off < w->files[i].len;) {
			size_t len = w->files[i].len - off;
			if (len > sizeof vec * (size_t)page)
				len = sizeof vec * (size_t)page;
			if (mincore((char *)w->files[i].map + off, len, vec) != 0)
				break;
			for (size_t k = 0; k < (len + (size_t)page - 1) / (size_t)page; k++)
				n += vec[k] & 1;
			off += len;
		}
	}
	return n;
}

static void warm_watch_open(warm_watch *w, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	long page = sysconf(_SC_PAGESIZE);

	while (d && (e = readdir(d)) != NULL && w->nfiles < 256) {
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
			void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED,
			               fd, 0);
			if (m != MAP_FAILED) {
				w->files[w->nfiles].map = m;
				w->files[w->nfiles++].len = (size_t)st.st_size;
				w->pages += ((uint64_t)st.st_size + (uint64_t)page - 1) /
				            (uint64_t)page;
			}
		}
		close(fd);
	}
	if (d)
		closedir(d);
	w->at_start = resident(w);
}

static void *warm_poll(void *arg)
{
	warm_watch *w = arg;

	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	for (int last = 0; !last;) {
		last = atomic_load(&w->stop);
		uint64_t r = resident(w);
		progress_set(&w->p, (r > w->at_start ? r - w->at_start : 0) * page);
		if (!last)
			usleep(100000);
	}
	return NULL;
}

static int cmd_warm(char **argv, int argc)
{
	cellar_db *db;
	warm_watch *w = calloc(1, sizeof *w);
	pthread_t t;
	int rc, threaded = 0;

	(void)argc;
	if (!w)
		return say(EXIT_ERROR, "out of memory");
	if ((rc = open_store(&db, argv[0], CELLAR_READONLY, 0)) != CELLAR_OK) {
		free(w);
		return status_of(rc);
	}
	/* Counts the bytes that came into the page cache. */
	progress_begin(&w->p, "warm", 0, 1);
	if (w->p.on) {
		warm_watch_open(w, argv[0]);
		w->p.total = (w->pages - w->at_start) * (uint64_t)sysconf(_SC_PAGESIZE);
		if (pthread_create(&t, NULL, warm_poll, w) == 0)
			threaded = 1;
	}
	rc = cellar_warm(db);
	atomic_store(&w->stop, 1);
	if (threaded)
		pthread_join(t, NULL);
	progress_end(&w->p);
	for (size_t i = 0; i < w->nfiles; i++)
		munmap(w->files[i].map, w->files[i].len);
	free(w);
	if (rc != CELLAR_OK)
		return close_store(db, fail(rc, NULL));
	return close_store(db, 0);
}

static int cmd_version(char **argv, int argc)
{
	(void)argv;
	(void)argc;
	printf("cellar %s\n", cellar_version());
	return finish_output(stdout, "stdout", 0);
}

/* ---------------------------------------------------------- the table */

typedef struct command {
	const char *name;
	int min_args, max_args; /* after the command, DIR included */
	int (*run)(char **argv, int argc);
	unsigned options;       /* O_* it accepts */
	const char *synopsis;   /* after "cellar " */
	const char *help;       /* what it does */
} command;

static const command commands[] = {
	{ "create", 1, 1, cmd_create, 0, "create DIR",
	  "Create an empty store in DIR (the directory is made if missing).\n"
	  "If DIR already holds a store, create changes nothing and fails\n"
	  "(exit 4); it never opens an existing store for writing, so it\n"
	  "never rebuilds a damaged index: that is what repair does.\n" },
	{ "put", 2, 3, cmd_put, O_X | O_FILE | O_TTL,
	  "put DIR KEY VALUE|-|--file F [--ttl MS]",
	  "Store a value under KEY, replacing any old value.  The value is the\n"
	  "VALUE argument, standard input when VALUE is '-', or the contents\n"
	  "of file F with -f/--file F (any size up to 1 GiB).  A VALUE that\n"
	  "starts with '-' goes after '--'; the value '-' itself is -x '\\x2d'.\n"
	  "With --ttl MS the key expires MS milliseconds from now (wall clock):\n"
	  "from then on get, dump and list treat it as absent.\n" },
	{ "get", 1, 2, cmd_get, O_X | O_MANY, "get DIR KEY | get --many DIR",
	  "Write the value of KEY to stdout, raw, with no newline added; exit 1\n"
	  "if KEY is absent.\n"
	  "With --many, read keys from stdin, one per line, in the escaped form\n"
	  "of dump (\\xHH; a CR before the newline is dropped), and print one\n"
	  "line KEY<TAB>VALUE per key found, both escaped, in input order.  An\n"
	  "absent key prints nothing on stdout and a message on stderr; the\n"
	  "exit status is then 1.\n" },
	{ "del", 2, 2, cmd_del, O_X, "del DIR KEY",
	  "Delete KEY; exit 1 if it was absent.\n" },
	{ "count", 1, 1, cmd_count, 0, "count DIR",
	  "Print the number of keys.\n" },
	{ "list", 1, 1, cmd_list, O_QUIET, "list DIR",
	  "Print every key, escaped as in dump, one per line, in the order\n"
	  "written (like cdb -l).\n" },
	{ "dump", 1, 1, cmd_dump, O_FMT | O_FILE | O_QUIET,
	  "dump [--tsv|--cdb] [-f FILE] DIR",
	  "Write every item, in the order written, to stdout or FILE.  Formats:\n"
	  "  (default)  self-describing: a header line 'cellar-dump 1 COUNT',\n"
	  "             COUNT lines KEY<TAB>VALUE, and a last line 'end'.  Bytes\n"
	  "             outside printable ASCII, and the backslash, are written\n"
	  "             as \\xHH.\n"
	  "  --tsv      the KEY<TAB>VALUE lines alone.\n"
	  "  --cdb      tinycdb's 'cdb -d' format: +KLEN,VLEN:KEY->VALUE lines\n"
	  "             of raw bytes, then an empty line ('cdb -c' reads it).\n"
	  "A damaged record is reported on stderr and skipped; the exit status\n"
	  "is then 3, and the default format's count no longer matches, so\n"
	  "load refuses the dump.\n" },
	{ "build", 1, 1, cmd_build, O_FMT | O_FILE | O_QUIET,
	  "build [--tsv|--cdb] [-f FILE] DIR",
	  "Build a new store from a dump (stdin, or FILE; the formats and the\n"
	  "checks of load) with the bulk builder, and publish it as DIR in one\n"
	  "step, replacing the store DIR held: a process that opens DIR gets\n"
	  "the old store or the new one, whole, and handles already open on\n"
	  "the old one go on reading it until they close.  A key given twice\n"
	  "keeps its last value.  Until the build is published DIR is left as\n"
	  "it was, also when the build fails; a writer holding DIR makes it\n"
	  "fail (exit 4).\n" },
	{ "load", 1, 1, cmd_load, O_FMT | O_FILE | O_QUIET | O_LOAD,
	  "load [--tsv|--cdb] [-f FILE] [--no-overwrite] [--dups=last|first|error] DIR",
	  "Put every record of a dump (stdin, or FILE) into the store, sync\n"
	  "once, and print what was loaded.  The input is read in dump's\n"
	  "formats (default, --tsv, --cdb); in the text formats a CR before\n"
	  "the newline is dropped, and in --tsv empty lines are skipped.\n"
	  "The whole input is checked before the first put (stdin is first\n"
	  "copied to a temporary file): a truncated or malformed input, a last\n"
	  "line without a newline, a count that does not match the header, an\n"
	  "empty or too long key, are reported with their line (or record)\n"
	  "number and nothing is written (exit 4).  A new store is built in a\n"
	  "temporary directory beside DIR and renamed to DIR at the end, so a\n"
	  "failed load leaves no store behind (by the bulk builder, which\n"
	  "writes the index once, in bucket order, unless --no-overwrite or\n"
	  "--dups=first asks for puts); an existing store is only touched\n"
	  "once the input is known good.\n"
	  "  --no-overwrite  never replace a value: a record whose key is\n"
	  "                  already in the store (from before the load, or from\n"
	  "                  an earlier record) is skipped and counted\n"
	  "  --dups=last     a key that comes more than once gets its last value\n"
	  "                  (the default)\n"
	  "  --dups=first    ... its first value; later records are skipped\n"
	  "  --dups=error    ... is an error: nothing is loaded\n" },
	{ "verify", 1, 1, cmd_verify, O_JSON | O_QUIET, "verify [--json] DIR",
	  "Check the store from end to end without changing it: read every\n"
	  "record of every segment and check its checksum, then check the\n"
	  "index file (every bucket chunk's checksum, its chains) and compare\n"
	  "it with the log both ways: every live key must be found at its\n"
	  "newest record, every index slot must point at a valid record that\n"
	  "is its key's newest.  A damaged index does not stop the scan of the\n"
	  "segments.  Prints a summary: each kind of damage once, with its\n"
	  "count, bytes, where the first three are, and the first one's\n"
	  "message (--json: one JSON object).  Exit 3 if anything is damaged.\n"
	  "Kinds: record, tail\n"
	  "(a segment cut short, or torn by a crash), newer-record, index-file,\n"
	  "index-stale, index-chunk, index-table, key-missing, slot-bad,\n"
	  "slot-stale, count.  'check' is the same command.\n" },
	{ "check", 1, 1, cmd_verify, O_JSON | O_QUIET, "check [--json] DIR",
	  "Same as verify.\n" },
	{ "repair", 1, 1, cmd_repair, O_REWRITE | O_QUIET, "repair [--rewrite] DIR",
	  "Verify the store; if the index disagrees with the log in any way,\n"
	  "remove it and rebuild it from the segments, and checkpoint it; cut a\n"
	  "torn tail off the newest segment.  Print what was done.  This is\n"
	  "what any writable open does to a store whose index is damaged, done\n"
	  "on purpose.  Damaged records cannot be mended: their keys keep their\n"
	  "newest intact value, or are gone.  The damaged bytes stay in the\n"
	  "log (compaction keeps a segment it could not read whole), so verify\n"
	  "still reports them; with --rewrite, repair then copies every live\n"
	  "item into a new store beside DIR and renames it to DIR (the old one\n"
	  "is removed).  Takes the write lock; a sound store is left as it is.\n" },
	{ "compact", 1, 1, cmd_compact, O_JSON | O_QUIET | O_PCT,
	  "compact [--dead-pct N] [--json] DIR",
	  "Run one compaction pass: rewrite every segment whose dead share\n"
	  "(overwritten, deleted or damaged records) is at least N percent\n"
	  "(default 20, 1..100), and print what it did: segments rewritten,\n"
	  "records and bytes copied, tombstones dropped, bytes reclaimed, the\n"
	  "time taken and the longest writer pause.\n" },
	{ "backup", 2, 2, cmd_backup, O_JSON, "backup [--json] DIR DEST",
	  "Write a consistent copy of the store in DIR to the new directory\n"
	  "DEST (cellar_backup): sealed segments are hard-linked where the file\n"
	  "system allows it and copied otherwise, the newest segment is copied\n"
	  "up to the moment of the backup, and the copy gets an index\n"
	  "checkpoint of that moment.  DEST appears only once complete.  Prints\n"
	  "the keys copied and the files and bytes linked and copied.  Takes\n"
	  "the write lock (exit 4 if a writer holds the store: back a live\n"
	  "store up from the program that has it open, with cellar_backup).\n" },
	{ "stats", 1, 1, cmd_stats, O_JSON, "stats [--json] DIR",
	  "Print every cellar_stats() figure as NAME VALUE UNIT lines (bytes\n"
	  "also human-readable), in this order: keys, live_bytes, dead_bytes,\n"
	  "segments, segment_bytes, index_bytes, bytes_on_disk, buckets,\n"
	  "overflow_buckets, load_factor, avg_probe, puts, deletes, gets, hits,\n"
	  "misses, syncs, compactions (those seven count since this open),\n"
	  "recovered_records, rebuilt_index, torn_bytes, damaged_bytes (what\n"
	  "open cut or skipped), checkpoints, checkpoint_failures,\n"
	  "ckpt_chunks_copied, ckpt_copy_bytes, ckpt_copy_bytes_max,\n"
	  "ckpt_longest_hold_ms; then one line per segment, oldest\n"
	  "first: segment SEQ BYTES LIVE_BYTES DEAD_BYTES.  --json: one object\n"
	  "with the same names, a \"units\" object and a \"segment_list\".\n" },
	{ "info", 1, 1, cmd_stats, O_JSON, "info [--json] DIR",
	  "Same as stats.\n" },
	{ "warm", 1, 1, cmd_warm, O_QUIET, "warm DIR",
	  "Read the whole store once into the page cache (in huge pages where\n"
	  "the OS can), before a service starts serving it.\n" },
	{ "version", 0, 0, cmd_version, 0, "version",
	  "Print the version of the cellar library.\n" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The options, each with the commands it applies to (0: all of them). */
static const struct {
	unsigned mask;
	const char *text;
} option_help[] = {
	{ O_X, "  -x, --escaped       KEY and VALUE arguments use dump's \\xHH escapes\n" },
	{ O_FILE, "  -f, --file FILE     put: the value's file; dump: output; load: input\n" },
	{ O_FMT, "      --tsv, --cdb    dump and load formats (see dump)\n" },
	{ O_LOAD, "      --no-overwrite  load: keep the values already in the store\n"
	          "      --dups=last|first|error   load: a key given twice\n" },
	{ O_MANY, "      --many          get: keys from stdin\n" },
	{ O_PCT, "      --dead-pct N    compact: threshold in percent (1..100)\n" },
	{ O_REWRITE, "      --rewrite       repair: copy the store without its damaged records\n" },
	{ O_TTL, "      --ttl MS        put: the key expires MS milliseconds from now\n" },
	{ O_JSON, "      --json          verify, compact, stats, info: JSON output\n" },
	{ 0, "  -q, --quiet         no progress bar (load, dump, list, verify, compact,\n"
	     "                      warm draw one on stderr when it is a terminal)\n" },
	{ 0, "  -h, --help          help (after a command: that command's help)\n" },
	{ 0, "      --version       the version\n" },
};

static const char general_help[] =
"\n"
"Locking: put, del, load, create, compact and repair open the store for\n"
"writing and take its write lock (DIR/LOCK); while another process writes\n"
"the store they fail with \"store is locked\" instead of waiting.  The\n"
"others open it read-only, take no lock, and see the store as it was when\n"
"they opened it.  Writes are synced before the command exits.\n"
"\n"
"Exit status:\n"
"  0  success\n"
"  1  not found: an absent key (get, del, get --many)\n"
"  2  usage: unknown command or option, wrong arguments\n"
"  3  damaged store: a damaged or foreign file (CELLAR_ECORRUPT) or one of\n"
"     a newer format (CELLAR_EVERSION), anywhere; verify found damage\n"
"  4  any other error: no store, locked, I/O, malformed load input, ...\n"
"\n"
"Errors are printed as: cellar: DIR: message (with the library's detail\n"
"and the key, escaped, where there is one).\n";

/* The options that apply to commands with mask (all: ~0u), then the rest. */
static void options_help(FILE *f, unsigned mask)
{
	fputs("Options (anywhere on the line; '--' ends them):\n", f);
	for (size_t i = 0; i < sizeof option_help / sizeof option_help[0]; i++)
		if (option_help[i].mask == 0 || (option_help[i].mask & mask))
			fputs(option_help[i].text, f);
	fputs(general_help, f);
}

static void usage(FILE *f)
{
	fputs("usage: cellar COMMAND [options] DIR [args]\n\n"
	      "Inspect, check and edit the cellar store in directory DIR.\n\n"
	      "Commands:\n", f);
	for (size_t c = 0; c < NCOMMANDS; c++)
		fprintf(f, "  %s\n", commands[c].synopsis);
	fputs("\n'cellar COMMAND --help' tells what a command does.\n\n", f);
	options_help(f, ~0u);
}

static void command_help(const command *c)
{
	printf("usage: cellar %s\n\n%s\n", c->synopsis, c->help);
	options_help(stdout, c->options);
}

static int usage_error(const command *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cellar: %s: ", c ? c->name : "usage");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c)
		fprintf(stderr, "\nusage: cellar %s\n(options may go anywhere on "
		        "the line)\nTry 'cellar %s --help'.\n", c->synopsis,
		        c->name);
	else
		fprintf(stderr, "\nTry 'cellar --help'.\n");
	return EXIT_USAGE;
}

/* Does the option arg match name ("--name" or "--name=value")? */
static int long_opt(const char *arg, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) != 0)
		return 0;
	if (arg[n] == '\0') {
		*value = NULL;
		return 1;
	}
	if (arg[n] == '=') {
		*value = arg + n + 1;
		return 1;
	}
	return 0;
}

/* Parse the command line into pos (the words that are no options) and run. */
static int dispatch(int argc, char **argv, char **pos)
{
	const command *c = NULL;
	unsigned used = 0;
	int npos = 0, help = 0, version = 0, dashdash = 0;
	const char *bad = NULL, *val;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (dashdash || a[0] != '-' || strcmp(a, "-") == 0) {
			pos[npos++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help = 1;
		} else if (strcmp(a, "--version") == 0) {
			version = 1;
		} else if (strcmp(a, "-x") == 0 || strcmp(a, "--escaped") == 0) {
			opt.escaped = 1, used |= O_X;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			opt.quiet = 1, used |= O_QUIET;
		} else if (strcmp(a, "--json") == 0) {
			opt.json = 1, used |= O_JSON;
		} else if (strcmp(a, "--tsv") == 0 || strcmp(a, "--cdb") == 0) {
			int f = a[2] == 't' ? FMT_TSV : FMT_CDB;
			if (opt.format_given && opt.format != f)
				bad = bad ? bad : "--tsv and --cdb together";
			opt.format = f, opt.format_given = 1, used |= O_FMT;
		} else if (strcmp(a, "--many") == 0) {
			opt.many = 1, used |= O_MANY;
		} else if (strcmp(a, "--rewrite") == 0) {
			opt.rewrite = 1, used |= O_REWRITE;
		} else if (strcmp(a, "--no-overwrite") == 0) {
			opt.no_overwrite = 1, used |= O_LOAD;
		} else if (strcmp(a, "-f") == 0 || long_opt(a, "--file", &val)) {
			if (strcmp(a, "-f") == 0 || !val)
				val = i + 1 < argc ? argv[++i] : NULL;
			if (!val)
				bad = bad ? bad : "-f/--file needs a FILE";
			opt.file = val, used |= O_FILE;
		} else if (long_opt(a, "--dups", &val)) {
			if (!val)
				val = i + 1 < argc ? argv[++i] : "";
			if (strcmp(val, "last") == 0)
				opt.dups = DUPS_LAST;
			else if (strcmp(val, "first") == 0)
				opt.dups = DUPS_FIRST;
			else if (strcmp(val, "error") == 0)
				opt.dups = DUPS_ERROR;
			else
				bad = bad ? bad : "--dups takes last, first or error";
			used |= O_LOAD;
		} else if (long_opt(a, "--ttl", &val)) {
			char *end;
			if (!val)
				val = i + 1 < argc ? argv[++i] : "";
			unsigned long long t = strtoull(val, &end, 10);
			if (*val < '0' || *val > '9' || *end != '\0' || t == 0)
				bad = bad ? bad : "--ttl takes milliseconds, at least 1";
			opt.ttl_ms = (uint64_t)t, used |= O_TTL;
		} else if (long_opt(a, "--dead-pct", &val)) {
			char *end;
			if (!val)
				val = i + 1 < argc ? argv[++i] : "";
			unsigned long p = strtoul(val, &end, 10);
			if (*val == '\0' || *end != '\0' || p < 1 || p > 100)
				bad = bad ? bad : "--dead-pct takes a percentage, 1..100";
			opt.dead_pct = (unsigned)p, used |= O_PCT;
		} else {
			static char msg[128];
			snprintf(msg, sizeof msg, "unknown option '%.60s'", a);
			bad = bad ? bad : msg;
		}
	}
	if (npos > 0) {
		for (size_t k = 0; k < NCOMMANDS && !c; k++)
			if (strcmp(pos[0], commands[k].name) == 0)
				c = &commands[k];
		if (!c && strcmp(pos[0], "help") == 0) {
			if (npos > 1)
				for (size_t k = 0; k < NCOMMANDS && !c; k++)
					if (strcmp(pos[1], commands[k].name) == 0)
						c = &commands[k];
			if (c)
				command_help(c);
			else
				usage(stdout);
			return 0;
		}
		if (!c)
			return usage_error(NULL, "unknown command '%.60s'", pos[0]);
	}
	if (help) {
		if (c)
			command_help(c);
		else
			usage(stdout);
		return 0;
	}
	if (version)
		return cmd_version(NULL, 0);
	if (!c)
		return usage_error(NULL, bad ? bad : "no command given");
	cmd_name = c->name;
	if (bad)
		return usage_error(c, "%s", bad);
	if (used & ~c->options & ~(unsigned)O_QUIET) {
		static const char *names[] = { "-x", "--json", "--quiet", "--tsv/--cdb",
		                               "-f/--file", "--many",
		                               "--no-overwrite/--dups", "--dead-pct",
		                               "--rewrite", "--ttl" };
		for (int b = 0; b < 10; b++)
			if (used & ~c->options & (1u << b))
				return usage_error(c, "%s does not apply to %s", names[b],
				                   c->name);
	}
	if (npos - 1 < c->min_args || npos - 1 > c->max_args)
		return usage_error(c, "%s arguments", npos - 1 < c->min_args
		                                          ? "missing" : "too many");
	if (c->min_args > 0)
		cur_dir = pos[1];
	int st = c->run(pos + 1, npos - 1);
	if (st == EXIT_USAGE)
		fprintf(stderr, "usage: cellar %s\n(options may go anywhere on the "
		        "line)\nTry 'cellar %s --help'.\n", c->synopsis, c->name);
	return st;
}

int main(int argc, char **argv)
{
	char **pos = calloc((size_t)argc + 1, sizeof *pos);
	int st;

	if (!pos) {
		fputs("cellar: out of memory\n", stderr);
		return EXIT_ERROR;
	}
	st = dispatch(argc, argv, pos);
	free(pos);
	return st;
}

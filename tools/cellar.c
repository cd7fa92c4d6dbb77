/*
 * cellar.c - the cellar command-line tool: look into and edit a store.
 *
 *   cellar [options] <command> DIR [args]
 *
 * One function per command; each opens the store the way the command
 * needs (read-only for get/count/dump/check/stats, read-write for the
 * rest), does its work and closes.  Errors go to stderr as
 * "cellar: <command>: <cellar_strerror(rc)>: <cellar_errmsg()>".  The help
 * text below stands in for a man page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cellar.h>

#define EXIT_USAGE 2
/* How many damaged records dump and check report before they give up. */
#define MAX_ERRORS 100

static const char *command = "cellar"; /* for messages */
static int decode_args;                /* -x: decode \xHH in KEY/VALUE */

static void usage(FILE *f)
{
	fputs(
"usage: cellar [options] <command> DIR [args]\n"
"\n"
"Inspect and edit the cellar store in directory DIR.\n"
"\n"
"Commands:\n"
"  create DIR           create an empty store (nothing happens if DIR already\n"
"                       holds one)\n"
"  put DIR KEY VALUE    store VALUE under KEY, replacing any old value\n"
"  get DIR KEY          write the value of KEY to stdout, raw, with no\n"
"                       newline added; exit 1 if KEY is absent\n"
"  del DIR KEY          delete KEY; exit 1 if it was absent\n"
"  count DIR            print the number of keys\n"
"  dump DIR             print every item as KEY<TAB>VALUE<NEWLINE>, in the\n"
"                       order written; bytes outside printable ASCII, and\n"
"                       the backslash, are escaped as \\xHH.  A damaged\n"
"                       record is reported on stderr and skipped (exit 1)\n"
"  load DIR             read KEY<TAB>VALUE lines from stdin (the format of\n"
"                       dump: \\xHH escapes are decoded, the value is all\n"
"                       after the first TAB, empty lines are skipped), put\n"
"                       them, sync once at the end and print how many; the\n"
"                       store is created if missing.  A bad line stops the\n"
"                       load with exit 1; lines before it are kept\n"
"  check DIR            open read-only, read every item, look each one up\n"
"                       again, and compare with the key count; print the\n"
"                       number of items and every problem found; exit 1 if\n"
"                       anything is damaged (CELLAR_ECORRUPT) or disagrees\n"
"  stats DIR            print the store's statistics as NAME VALUE lines\n"
"                       (keys, live_bytes, dead_bytes, segments,\n"
"                       segment_bytes, index_bytes, bytes_on_disk, buckets,\n"
"                       overflow_buckets, load_factor, recovered_records,\n"
"                       rebuilt_index), then one line per segment, oldest\n"
"                       first: segment SEQ BYTES LIVE_BYTES DEAD_BYTES\n"
"  warm DIR             read the whole store once into the page cache (in\n"
"                       huge pages where the OS can), before serving it\n"
"  version              print the version of the cellar library\n"
"\n"
"Options:\n"
"  -x, --escaped        KEY and VALUE arguments use dump's \\xHH escapes\n"
"                       (for binary keys copied from dump output)\n"
"  -h, --help           this text\n"
"      --version        same as the version command\n"
"\n"
"Locking: put, del, load and create open the store for writing and take\n"
"its write lock (DIR/LOCK); while another process or handle writes the\n"
"store they fail with \"store is locked\" instead of waiting.  get, count,\n"
"dump, check, stats and warm open read-only, take no lock, and see the\n"
"store as it was when they opened it.  Writes are synced before the command exits.\n"
"\n"
"Exit status:\n"
"  0  success\n"
"  1  an error (message on stderr), an absent key for get or del, or\n"
"     damage found by check\n"
"  2  a usage error (unknown command, wrong arguments)\n"
"\n"
"Errors are printed as: cellar: <command>: <error>: <details>\n", f);
}

static void usage_error(const char *msg)
{
	fprintf(stderr, "cellar: %s\nTry 'cellar --help'.\n", msg);
	exit(EXIT_USAGE);
}

/* Start an error message: "cellar: <command>: ". */
static void err_begin(void)
{
	fprintf(stderr, "cellar: %s: ", command);
}

/* End it with "<cellar_strerror(rc)>: <cellar_errmsg()>" (if any detail). */
static int err_end(int rc)
{
	const char *detail = cellar_errmsg();
	fputs(cellar_strerror(rc), stderr);
	if (detail[0] != '\0')
		fprintf(stderr, ": %s", detail);
	fputc('\n', stderr);
	return 1;
}

/* Report a cellar error for the current command; returns the exit status. */
static int fail(int rc)
{
	err_begin();
	return err_end(rc);
}

static int open_store(cellar_db **db, const char *dir, unsigned flags)
{
	cellar_options o = CELLAR_OPTIONS_INIT;
	o.flags = flags;
	return cellar_open(db, dir, &o);
}

/* Close, reporting a failed final sync; returns the exit status. */
static int close_store(cellar_db *db, int status)
{
	int rc = cellar_close(db);
	if (rc != CELLAR_OK && status == 0)
		return fail(rc);
	return status;
}

/* ---------------------------------------------------------- escaping */

static void put_escaped(const unsigned char *p, size_t n, FILE *f)
{
	size_t i;
	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			putc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
}

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
	return decode_args ? unescape(arg, n) : n;
}

/* ---------------------------------------------------------- commands */

static int cmd_create(char **argv)
{
	cellar_db *db;
	int rc = open_store(&db, argv[0], CELLAR_CREATE);
	if (rc != CELLAR_OK)
		return fail(rc);
	return close_store(db, 0);
}

static int cmd_put(char **argv)
{
	cellar_db *db;
	size_t kn = arg_bytes(argv[1]), vn = arg_bytes(argv[2]);
	int rc = open_store(&db, argv[0], 0);
	if (rc != CELLAR_OK)
		return fail(rc);
	rc = cellar_put(db, argv[1], kn, argv[2], vn);
	return close_store(db, rc == CELLAR_OK ? 0 : fail(rc));
}

static int cmd_get(char **argv)
{
	cellar_db *db;
	void *val;
	size_t kn = arg_bytes(argv[1]), vn;
	int rc = open_store(&db, argv[0], CELLAR_READONLY), status = 0;

	if (rc != CELLAR_OK)
		return fail(rc);
	rc = cellar_get_alloc(db, argv[1], kn, &val, &vn);
	if (rc != CELLAR_OK) {
		status = fail(rc);
	} else {
		if (fwrite(val, 1, vn, stdout) != vn || fflush(stdout) != 0) {
			fprintf(stderr, "cellar: get: writing stdout: %s\n",
			        strerror(errno));
			status = 1;
		}
		cellar_free(val);
	}
	return close_store(db, status);
}

static int cmd_del(char **argv)
{
	cellar_db *db;
	size_t kn = arg_bytes(argv[1]);
	int rc = open_store(&db, argv[0], 0);
	if (rc != CELLAR_OK)
		return fail(rc);
	rc = cellar_delete(db, argv[1], kn);
	return close_store(db, rc == CELLAR_OK ? 0 : fail(rc));
}

static int cmd_count(char **argv)
{
	cellar_db *db;
	uint64_t n;
	int rc = open_store(&db, argv[0], CELLAR_READONLY);
	if (rc != CELLAR_OK)
		return fail(rc);
	rc = cellar_count(db, &n);
	if (rc == CELLAR_OK)
		printf("%" PRIu64 "\n", n);
	return close_store(db, rc == CELLAR_OK ? 0 : fail(rc));
}

static int cmd_dump(char **argv)
{
	cellar_db *db;
	cellar_iter *it = NULL;
	const void *k, *v;
	size_t kn, vn;
	unsigned damaged = 0;
	int rc = open_store(&db, argv[0], CELLAR_READONLY), status = 0;

	if (rc != CELLAR_OK)
		return fail(rc);
	if ((rc = cellar_iter_new(db, &it)) != CELLAR_OK)
		return close_store(db, fail(rc));
	while ((rc = cellar_iter_next(it, &k, &kn, &v, &vn)) != CELLAR_EDONE) {
		if (rc != CELLAR_OK) {
			/* A damaged record is skipped: dump what is readable. */
			status = fail(rc);
			if (rc == CELLAR_ECORRUPT && ++damaged < MAX_ERRORS)
				continue;
			break;
		}
		put_escaped(k, kn, stdout);
		putchar('\t');
		put_escaped(v, vn, stdout);
		putchar('\n');
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "cellar: dump: writing stdout: %s\n",
		        strerror(errno));
		status = 1;
	}
	cellar_iter_free(it);
	return close_store(db, status);
}

static int cmd_load(char **argv)
{
	cellar_db *db;
	char *line = NULL, *tab;
	size_t cap = 0, kn, vn;
	uint64_t lineno = 0, loaded = 0;
	ssize_t len;
	int rc = open_store(&db, argv[0], CELLAR_CREATE), status = 0;

	if (rc != CELLAR_OK)
		return fail(rc);
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len == 0)
			continue;
		tab = memchr(line, '\t', (size_t)len);
		if (tab == NULL) {
			fprintf(stderr, "cellar: load: stdin line %" PRIu64
			        ": no TAB between key and value\n", lineno);
			status = 1;
			break;
		}
		kn = unescape(line, (size_t)(tab - line));
		vn = unescape(tab + 1, (size_t)(line + len - tab - 1));
		if ((rc = cellar_put(db, line, kn, tab + 1, vn)) != CELLAR_OK) {
			err_begin();
			fprintf(stderr, "stdin line %" PRIu64 ": ", lineno);
			status = err_end(rc);
			break;
		}
		loaded++;
	}
	if (status == 0 && ferror(stdin)) {
		fprintf(stderr, "cellar: load: reading stdin: %s\n",
		        strerror(errno));
		status = 1;
	}
	free(line);
	if (status != 0)
		fprintf(stderr, "cellar: load: %" PRIu64 " record%s put before "
		        "the error %s kept\n", loaded, loaded == 1 ? "" : "s",
		        loaded == 1 ? "is" : "are");
	/* Keep what was put, even after a bad line: one sync for all. */
	if ((rc = cellar_sync(db)) != CELLAR_OK && status == 0)
		status = fail(rc);
	if (status == 0)
		printf("%" PRIu64 "\n", loaded);
	return close_store(db, status);
}


static int cmd_check(char **argv)
{
	cellar_db *db;
	cellar_iter *it = NULL;
	const void *k, *v;
	void *got;
	size_t kn, vn, gn;
	uint64_t items = 0, problems = 0, count;
	int rc = open_store(&db, argv[0], CELLAR_READONLY), grc;

	if (rc != CELLAR_OK)
		return fail(rc);
	if ((rc = cellar_iter_new(db, &it)) != CELLAR_OK)
		return close_store(db, fail(rc));
	while (problems < MAX_ERRORS &&
	       (rc = cellar_iter_next(it, &k, &kn, &v, &vn)) != CELLAR_EDONE) {
		if (rc == CELLAR_ECORRUPT) {
			problems++;
			fail(rc); /* the record is skipped; go on */
			continue;
		}
		if (rc != CELLAR_OK) {
			problems++;
			fail(rc);
			break;
		}
		items++;
		/* The index must lead to the same value the log holds. */
		grc = cellar_get_alloc(db, k, kn, &got, &gn);
		if (grc != CELLAR_OK) {
			problems++;
			err_begin();
			fprintf(stderr, "key ");
			put_escaped(k, kn, stderr);
			fprintf(stderr, ": lookup: ");
			err_end(grc);
		} else if (gn != vn || memcmp(got, v, vn) != 0) {
			problems++;
			fprintf(stderr, "cellar: check: key ");
			put_escaped(k, kn, stderr);
			fprintf(stderr, ": the lookup and the iteration give "
			        "different values\n");
		}
		cellar_free(got);
	}
	if (problems >= MAX_ERRORS)
		fprintf(stderr, "cellar: check: too many problems; stopped\n");
	cellar_iter_free(it);
	if ((rc = cellar_count(db, &count)) != CELLAR_OK) {
		problems++;
		fail(rc);
	} else if (count != items && problems == 0) {
		problems++;
		fprintf(stderr, "cellar: check: iterated %" PRIu64 " items "
		        "but the store counts %" PRIu64 "\n", items, count);
	}
	printf("%" PRIu64 " items, %s\n", items,
	       problems == 0 ? "ok" : "DAMAGED");
	if (problems != 0)
		printf("%" PRIu64 " problem%s (see stderr)\n", problems,
		       problems == 1 ? "" : "s");
	return close_store(db, problems == 0 ? 0 : 1);
}

static int cmd_stats(char **argv)
{
	cellar_db *db;
	cellar_db_stats st;
	cellar_segment_info *segs;
	size_t n, cap, i;
	int rc = open_store(&db, argv[0], CELLAR_READONLY);

	if (rc != CELLAR_OK)
		return fail(rc);
	if ((rc = cellar_stats(db, &st)) != CELLAR_OK)
		return close_store(db, fail(rc));
	printf("keys %" PRIu64 "\n", st.keys);
	printf("live_bytes %" PRIu64 "\n", st.live_bytes);
	printf("dead_bytes %" PRIu64 "\n", st.dead_bytes);
	printf("segments %" PRIu64 "\n", st.segments);
	printf("segment_bytes %" PRIu64 "\n", st.segment_bytes);
	printf("index_bytes %" PRIu64 "\n", st.index_bytes);
	printf("bytes_on_disk %" PRIu64 "\n", st.bytes_on_disk);
	printf("buckets %" PRIu64 "\n", st.buckets);
	printf("overflow_buckets %" PRIu64 "\n", st.overflow_buckets);
	printf("load_factor %.3f\n", st.load_factor);
	printf("recovered_records %" PRIu64 "\n", st.recovered_records);
	printf("rebuilt_index %d\n", st.rebuilt_index);

	/* First ask how many segments there are, then fetch them. */
	if ((rc = cellar_segments(db, NULL, 0, &cap)) != CELLAR_OK)
		return close_store(db, fail(rc));
	segs = calloc(cap > 0 ? cap : 1, sizeof *segs);
	if (segs == NULL)
		return close_store(db, fail(CELLAR_ENOMEM));
	if ((rc = cellar_segments(db, segs, cap, &n)) != CELLAR_OK) {
		free(segs);
		return close_store(db, fail(rc));
	}
	for (i = 0; i < n && i < cap; i++)
		printf("segment %016llx %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
		       (unsigned long long)segs[i].seq, segs[i].bytes,
		       segs[i].live_bytes, segs[i].dead_bytes);
	free(segs);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "cellar: stats: writing stdout: %s\n",
		        strerror(errno));
		return close_store(db, 1);
	}
	return close_store(db, 0);
}

static int cmd_warm(char **argv)
{
	cellar_db *db;
	int rc = open_store(&db, argv[0], CELLAR_READONLY);

	if (rc != CELLAR_OK)
		return fail(rc);
	if ((rc = cellar_warm(db)) != CELLAR_OK)
		return close_store(db, fail(rc));
	return close_store(db, 0);
}

static int cmd_version(char **argv)
{
	(void)argv;
	printf("cellar %s\n", cellar_version());
	return 0;
}

static const struct {
	const char *name;
	int nargs; /* after the command, DIR included */
	int (*run)(char **argv);
	const char *synopsis;
} commands[] = {
	{ "create", 1, cmd_create, "create DIR" },
	{ "put", 3, cmd_put, "put DIR KEY VALUE" },
	{ "get", 2, cmd_get, "get DIR KEY" },
	{ "del", 2, cmd_del, "del DIR KEY" },
	{ "count", 1, cmd_count, "count DIR" },
	{ "dump", 1, cmd_dump, "dump DIR" },
	{ "load", 1, cmd_load, "load DIR < lines" },
	{ "check", 1, cmd_check, "check DIR" },
	{ "stats", 1, cmd_stats, "stats DIR" },
	{ "warm", 1, cmd_warm, "warm DIR" },
	{ "version", 0, cmd_version, "version" },
};

int main(int argc, char **argv)
{
	char msg[128];
	size_t c;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			return cmd_version(NULL);
		} else if (strcmp(argv[i], "-x") == 0 ||
		           strcmp(argv[i], "--escaped") == 0) {
			decode_args = 1;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			snprintf(msg, sizeof msg, "unknown option '%.60s'",
			         argv[i]);
			usage_error(msg);
		}
	}
	if (i >= argc)
		usage_error("no command given");
	for (c = 0; c < sizeof commands / sizeof commands[0]; c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		command = commands[c].name;
		if (argc - i - 1 != commands[c].nargs) {
			snprintf(msg, sizeof msg, "%s: usage: cellar %s",
			         command, commands[c].synopsis);
			usage_error(msg);
		}
		return commands[c].run(argv + i + 1);
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	snprintf(msg, sizeof msg, "unknown command '%.60s'", argv[i]);
	usage_error(msg);
	return EXIT_USAGE;
}

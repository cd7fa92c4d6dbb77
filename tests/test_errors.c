/*
 * test_errors.c - error codes, their messages, the per-thread detail message
 * and the version string.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cellar.h"
#include "common.h"
#include "error.h"

#define FIRST_CODE CELLAR_OK
#define LAST_CODE CELLAR_ECHANGED

Test(errors, every_code_has_a_message)
{
	for (int c = FIRST_CODE; c >= LAST_CODE; c--) {
		const char *m = cellar_strerror(c);
		cr_assert_not_null(m, "code %d has no message", c);
		cr_assert_gt(strlen(m), 0, "code %d has an empty message", c);
		cr_assert_str_neq(m, "unknown error", "code %d is unknown", c);
	}
}

Test(errors, every_code_has_its_own_message)
{
	for (int a = FIRST_CODE; a >= LAST_CODE; a--)
		for (int b = a - 1; b >= LAST_CODE; b--)
			cr_assert_str_neq(cellar_strerror(a), cellar_strerror(b),
			                  "codes %d and %d share the message '%s'",
			                  a, b, cellar_strerror(a));
}

Test(errors, codes_are_contiguous_and_stable)
{
	/* The numbers are part of the ABI: never renumbered. */
	cr_assert_eq(CELLAR_OK, 0);
	cr_assert_eq(CELLAR_ENOTFOUND, -1);
	cr_assert_eq(CELLAR_EDONE, -2);
	cr_assert_eq(CELLAR_EBUFS, -3);
	cr_assert_eq(CELLAR_ELOCKED, -4);
	cr_assert_eq(CELLAR_EINVAL, -5);
	cr_assert_eq(CELLAR_ENOMEM, -6);
	cr_assert_eq(CELLAR_EIO, -7);
	cr_assert_eq(CELLAR_ENOSPC, -8);
	cr_assert_eq(CELLAR_ECORRUPT, -9);
	cr_assert_eq(CELLAR_EVERSION, -10);
	cr_assert_eq(CELLAR_EREADONLY, -11);
	cr_assert_eq(CELLAR_EKEYLEN, -12);
	cr_assert_eq(CELLAR_EVALLEN, -13);
	cr_assert_eq(CELLAR_ENOENT, -14);
	cr_assert_eq(CELLAR_EEXIST, -15);
	cr_assert_eq(CELLAR_ELIMIT, -16);
	cr_assert_eq(CELLAR_EFAILED, -17);
	cr_assert_eq(CELLAR_EBUSY, -18);
	cr_assert_eq(CELLAR_EACCES, -19);
	cr_assert_eq(CELLAR_EMLOCK, -20);
	cr_assert_eq(CELLAR_ECHANGED, -21);
}

Test(errors, unknown_codes_give_unknown_error)
{
	const int unknown[] = { 1, 2, LAST_CODE - 1, -100, 1000, INT_MAX, INT_MIN };

	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		const char *m = cellar_strerror(unknown[i]);
		cr_assert_not_null(m, "code %d", unknown[i]);
		cr_assert_str_eq(m, "unknown error", "code %d", unknown[i]);
	}
}

Test(errors, version_matches_the_macros)
{
	char want[64];

	snprintf(want, sizeof want, "%d.%d.%d", CELLAR_VERSION_MAJOR,
	         CELLAR_VERSION_MINOR, CELLAR_VERSION_PATCH);
	cr_assert_not_null(cellar_version());
	cr_assert_str_eq(cellar_version(), want);
}

Test(errors, errmsg_is_empty_before_any_error)
{
	cr_assert_not_null(cellar_errmsg());
	cr_assert_str_eq(cellar_errmsg(), "");
}

Test(errors, errmsg_holds_the_detail_of_the_last_error)
{
	int rc = cellar__error(CELLAR_ECORRUPT, "segment %d: bad checksum at offset %d",
	                       3, 1234);

	cr_assert_eq(rc, CELLAR_ECORRUPT, "cellar__error returns its code");
	cr_assert_str_eq(cellar_errmsg(), "segment 3: bad checksum at offset 1234");
	cellar__error(CELLAR_EIO, "second");
	cr_assert_str_eq(cellar_errmsg(), "second");
	cellar__error_clear();
	cr_assert_not_null(cellar_errmsg());
	cr_assert_str_eq(cellar_errmsg(), "");
}

Test(errors, errmsg_truncates_long_details)
{
	char big[4096];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cellar__error(CELLAR_EIO, "%s", big);
	const char *m = cellar_errmsg();
	cr_assert_not_null(m);
	size_t n = strlen(m);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, sizeof big - 1, "a 4 KiB detail is cut, not overflowed");
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(m[i], 'x');
}

static void *errmsg_in_thread(void *arg)
{
	char *seen = arg;
	const char *m = cellar_errmsg();

	snprintf(seen, 256, "%s", m ? m : "(null)");
	cellar__error(CELLAR_EIO, "from the other thread");
	return NULL;
}

Test(errors, errmsg_is_per_thread)
{
	char seen[256] = "unset";
	pthread_t t;

	cellar__error(CELLAR_ECORRUPT, "main thread detail");
	cr_assert_eq(pthread_create(&t, NULL, errmsg_in_thread, seen), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_str_eq(seen, "", "a new thread sees no detail of another thread");
	cr_assert_str_eq(cellar_errmsg(), "main thread detail",
	                 "another thread's error leaves this thread's detail alone");
}

static void *errmsg_then_exit(void *arg)
{
	int *ok = arg;

	cellar__error(CELLAR_EIO, "thread %d", *ok);
	char want[32];
	snprintf(want, sizeof want, "thread %d", *ok);
	*ok = strcmp(cellar_errmsg(), want) == 0;
	return NULL;
}

/* Each thread's buffer is freed when it exits (LeakSanitizer in CI). */
Test(errors, errmsg_buffers_of_exited_threads_are_freed)
{
	enum { N = 32 };
	pthread_t t[N];
	int ok[N];

	for (int i = 0; i < N; i++) {
		ok[i] = i + 1;
		cr_assert_eq(pthread_create(&t[i], NULL, errmsg_then_exit, &ok[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(ok[i], 1, "thread %d saw its own detail", i + 1);
	}
}

Test(errors, errmsg_is_never_null_after_failing_calls)
{
	cellar_db *db = (cellar_db *)&db;
	uint64_t n;

	cr_assert_eq(cellar_open(&db, NULL, NULL), CELLAR_EINVAL);
	cr_assert_not_null(cellar_errmsg());
	cr_assert_eq(cellar_count(NULL, &n), CELLAR_EINVAL);
	cr_assert_not_null(cellar_errmsg());
	cr_assert_eq(cellar_put(NULL, "k", 1, "v", 1), CELLAR_EINVAL);
	cr_assert_not_null(cellar_errmsg());
}

Test(errors, public_calls_clear_an_old_detail)
{
	cellar_fs *fs = tc_fs_new_named("mem");
	cellar_options o = CELLAR_OPTIONS_INIT;
	cellar_db *db = NULL;
	uint64_t n = 99;

	o.fs = fs;
	o.flags = CELLAR_CREATE;
	cellar__error(CELLAR_EIO, "stale detail");
	cr_assert_eq(cellar_open(&db, "/errors-store", &o), CELLAR_OK, "%s",
	             cellar_errmsg());
	cr_assert_str_eq(cellar_errmsg(), "", "a successful open leaves no detail");
	cellar__error(CELLAR_EIO, "stale detail");
	cr_assert_eq(cellar_count(db, &n), CELLAR_OK);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(cellar_errmsg(), "", "a successful count leaves no detail");
	cr_assert_eq(cellar_close(db), CELLAR_OK);
	cellar_fs_free(fs);
}

/*
 * refresh.c - a read-only handle catching up with the store's writer: the
 * incremental part of cellar_refresh (open.c has the call itself and the
 * reload).
 *
 * Owns: finding what the writer added since the handle last looked (more
 * bytes in the newest segment, new segment files after it) and replaying
 * those records into the handle's table in short holds of the exclusive
 * latch, so that gets on other threads go on in between and never see a
 * record half applied.
 *
 * Must not: write any file; follow a log that lost segments the handle
 * holds or skipped ones it never saw (compaction ran, or another store was
 * put in the directory): it says so, and open.c reloads the handle from
 * the newest checkpoint instead.
 */
#include <stdlib.h>

#include "error.h"
#include "refresh.h"

/* Records replayed per hold of the exclusive latch: about 0.2 ms. */
#define FOLLOW_BUDGET 1024

/*
 * Does the directory's list of segments (sorted) continue the handle's?
 * Every segment the handle holds must still be there, and what is new must
 * follow its newest without a gap (a gap is a segment created and removed
 * since).  Unknown files older than the newest held are compaction
 * leftovers that open set aside; the writer never writes to them.  *first
 * is the index in seqs of the first new one.
 */
static int continues(const segset *s, const uint64_t *seqs, size_t n,
                     size_t *first)
{
	uint64_t newest = s->n ? s->list[s->n - 1]->seq : 0;
	size_t j = 0;

	for (size_t i = 0; i < s->n; i++) {
		while (j < n && seqs[j] < s->list[i]->seq)
			j++;
		if (j == n || seqs[j] != s->list[i]->seq)
			return 0; /* removed: compaction ran */
		j++;
	}
	*first = j;
	for (size_t k = j; k < n && s->n; k++)
		if (seqs[k] != newest + 1 + (k - j))
			return 0;
	return 1;
}

/* Replay g's new records up to the file's length now, a budget at a time. */
static int follow_segment(cellar_db *db, segment *g, int newest,
                          recovery_result *res)
{
	uint64_t end;
	int more = 1, rc;

	if ((rc = segset_file_size(&db->segs, g, &end)) < 0)
		return rc;
	if (end <= g->size)
		return CELLAR_OK;
	while (more) {
		latch_write_lock(&db->latch);
		segset_reach(&db->segs, g, end);
		rc = recovery_follow(db->ix, &db->segs, g, end, &db->kh, newest,
		                     FOLLOW_BUDGET, res, &more);
		latch_write_unlock(&db->latch);
		if (rc < 0)
			return rc;
	}
	return CELLAR_OK;
}

/* Open the new segments seqs[0..n), add them and replay them in order. */
static int follow_new(cellar_db *db, const uint64_t *seqs, size_t n,
                      recovery_result *res)
{
	for (size_t i = 0; i < n; i++) {
		segment *g;
		int rc = segset_open_new(&db->segs, seqs[i], &g);
		if (rc == CELLAR_ENOENT)
			return REFRESH_RELOAD; /* removed since the listing */
		if (rc < 0)
			return rc;
		if (!g)
			return CELLAR_OK; /* being created: the next refresh */
		latch_write_lock(&db->latch);
		rc = segset_add_new(&db->segs, g);
		latch_write_unlock(&db->latch);
		if (rc < 0) {
			segset_discard_new(&db->segs, g);
			return REFRESH_RELOAD;
		}
		if ((rc = follow_segment(db, g, i + 1 == n, res)) < 0)
			return rc;
	}
	return CELLAR_OK;
}

int refresh_follow(cellar_db *db, recovery_result *res)
{
	uint64_t *seqs = NULL;
	size_t n = 0, first = 0;
	int rc;

	/* List first, then read lengths: a segment the writer rolled away from
	 * was written whole before the next one's file was created. */
	if ((rc = segset_list_dir(&db->segs, &seqs, &n)) < 0)
		return rc;
	if (!continues(&db->segs, seqs, n, &first)) {
		free(seqs);
		return REFRESH_RELOAD;
	}
	segment *last = segset_last(&db->segs);
	rc = last ? follow_segment(db, last, first == n, res) : CELLAR_OK;
	if (rc == CELLAR_OK)
		rc = follow_new(db, seqs + first, n - first, res);
	free(seqs);
	return rc;
}

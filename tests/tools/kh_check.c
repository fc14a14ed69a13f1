/* SPDX-License-Identifier: Apache-2.0 */
/* Block-history checker: see kh_check.h for the rules. */
#include "tests/tools/kh_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define KH_NEVER UINT64_MAX /* end time of a write that never completed */

/* One write of one block. */
struct kh_write {
	uint64_t wid, block, start, end; /* end KH_NEVER: failed or unfinished */
};

struct kh_ctx {
	struct kh_summary *s;
	FILE *report;
	unsigned int max_report, reported;
	struct kh_write *writes; /* sorted by (wid, block) */
	size_t nwrites;
};

static int cmp_rec(const void *a, const void *b)
{
	const struct kh_rec *x = a, *y = b;

	if (x->block != y->block) {
		return x->block < y->block ? -1 : 1;
	}
	if (x->op != y->op) {
		return x->op < y->op ? -1 : 1; /* writes first */
	}
	if (x->start_ns != y->start_ns) {
		return x->start_ns < y->start_ns ? -1 : 1;
	}
	return 0;
}

static int cmp_write(const void *a, const void *b)
{
	const struct kh_write *x = a, *y = b;

	if (x->wid != y->wid) {
		return x->wid < y->wid ? -1 : 1;
	}
	if (x->block != y->block) {
		return x->block < y->block ? -1 : 1;
	}
	return 0;
}

static int cmp_end(const void *a, const void *b)
{
	const struct kh_write *x = a, *y = b;

	if (x->end != y->end) {
		return x->end < y->end ? -1 : 1;
	}
	return 0;
}

static const struct kh_write *find_write(const struct kh_ctx *k, uint64_t wid, uint64_t block)
{
	struct kh_write key = {.wid = wid, .block = block};

	return bsearch(&key, k->writes, k->nwrites, sizeof(key), cmp_write);
}

static void violation(struct kh_ctx *k, const struct kh_rec *r, const char *what,
		      uint64_t want_wid)
{
	k->s->violations++;
	if (!k->report || k->reported >= k->max_report) {
		return;
	}
	k->reported++;
	fprintf(k->report,
		"VIOLATION %s: block %" PRIu64 " read [%" PRIu64 ", %" PRIu64 "] ns returned "
		"wid %#" PRIx64 " (found %u)",
		what, r->block, r->start_ns, r->end_ns, r->wid, r->found);
	if (want_wid) {
		fprintf(k->report, ", expected wid %#" PRIx64 " or newer", want_wid);
	}
	fprintf(k->report, "\n");
}

/* Check the reads of one block. @w: its successful writes sorted by end
 * with prefix maxima of start in @pmax/@pwid; @rd: its reads by start. */
static void check_block(struct kh_ctx *k, const struct kh_write *w, size_t nw,
			const uint64_t *pmax, const uint64_t *pwid, const struct kh_rec *rd,
			size_t nr, uint64_t *sufmax)
{
	uint64_t last_lost = 0;
	bool any_lost = false;

	/* sufmax[i]: newest write start seen by reads i..nr-1 (0: none). */
	sufmax[nr] = 0;
	for (size_t i = nr; i-- > 0;) {
		const struct kh_write *x = NULL;
		uint64_t v = 0;

		if (!rd[i].result && rd[i].found == KH_FOUND_DATA) {
			x = find_write(k, rd[i].wid, rd[i].block);
		}
		if (x) {
			v = x->start + 1;
		}
		sufmax[i] = v > sufmax[i + 1] ? v : sufmax[i + 1];
	}
	for (size_t i = 0; i < nr; i++) {
		const struct kh_rec *r = &rd[i];
		const struct kh_write *x = NULL;
		size_t lo = 0, hi = nw, j;
		uint64_t s_max = 0, s_wid = 0;
		bool done_before;

		if (r->result) {
			k->s->reads_failed++;
			continue;
		}
		switch (r->found) {
		case KH_FOUND_TORN:
			k->s->torn++;
			violation(k, r, "torn block", 0);
			continue;
		case KH_FOUND_MISPLACED:
			k->s->misplaced++;
			violation(k, r, "misplaced block", 0);
			continue;
		case KH_FOUND_GARBAGE:
			k->s->garbage++;
			violation(k, r, "garbage block", 0);
			continue;
		default:
			break;
		}
		/* Writes completed before the read started: w[0..lo). */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (w[mid].end < r->start_ns) {
				lo = mid + 1;
			} else {
				hi = mid;
			}
		}
		done_before = lo > 0;
		if (done_before) {
			s_max = pmax[lo - 1];
			s_wid = pwid[lo - 1];
		}
		if (r->found == KH_FOUND_DATA) {
			x = find_write(k, r->wid, r->block);
		}
		if (!x) {
			/* Zeroes or data from before this history. */
			if (!done_before) {
				k->s->reads_initial++;
				continue;
			}
		} else if (x->start > r->end_ns) {
			k->s->future_reads++;
			violation(k, r, "future read (write started after the read ended)", 0);
			continue;
		} else if (x->end == KH_NEVER || x->end >= r->start_ns) {
			k->s->reads_concurrent++;
			continue;
		} else if (x->end >= s_max) {
			k->s->reads_last++;
			continue;
		}
		/* An older value than the acknowledged one: does any later
		 * read see it (stale read) or never (lost write)? */
		for (j = i + 1; j < nr && rd[j].start_ns <= r->end_ns; j++) {
		}
		if (sufmax[j] > s_max) {
			k->s->stale_reads++;
			violation(k, r, "stale read", s_wid);
		} else {
			if (!any_lost || last_lost != s_wid) {
				k->s->lost_writes++;
			}
			any_lost = true;
			last_lost = s_wid;
			violation(k, r, "lost write", s_wid);
		}
	}
}

int kh_check(struct kh_rec *recs, size_t n, struct kh_summary *out, FILE *report,
	     unsigned int max_report)
{
	struct kh_ctx k = {.s = out, .report = report, .max_report = max_report};
	struct kh_write *bw = NULL;
	uint64_t *pmax = NULL, *pwid = NULL, *sufmax = NULL;
	size_t i, j, nw = 0;
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	out->records = n;
	k.writes = calloc(n + 1, sizeof(*k.writes));
	bw = calloc(n + 1, sizeof(*bw));
	pmax = calloc(n + 1, sizeof(*pmax));
	pwid = calloc(n + 1, sizeof(*pwid));
	sufmax = calloc(n + 1, sizeof(*sufmax));
	if (!k.writes || !bw || !pmax || !pwid || !sufmax) {
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (recs[i].op != KH_OP_WRITE) {
			continue;
		}
		k.writes[nw].wid = recs[i].wid;
		k.writes[nw].block = recs[i].block;
		k.writes[nw].start = recs[i].start_ns;
		k.writes[nw].end = recs[i].result ? KH_NEVER : recs[i].end_ns;
		out->writes++;
		if (recs[i].result) {
			out->writes_failed++;
		}
		nw++;
	}
	k.nwrites = nw;
	qsort(k.writes, nw, sizeof(*k.writes), cmp_write);
	qsort(recs, n, sizeof(*recs), cmp_rec);
	for (i = 0; i < n; i = j) {
		size_t nbw = 0, r0;

		out->blocks++;
		for (j = i; j < n && recs[j].block == recs[i].block && recs[j].op == KH_OP_WRITE;
		     j++) {
			if (!recs[j].result) {
				bw[nbw].wid = recs[j].wid;
				bw[nbw].block = recs[j].block;
				bw[nbw].start = recs[j].start_ns;
				bw[nbw].end = recs[j].end_ns;
				nbw++;
			}
		}
		qsort(bw, nbw, sizeof(*bw), cmp_end);
		for (size_t x = 0; x < nbw; x++) {
			bool newer = !x || bw[x].start >= pmax[x - 1];

			pmax[x] = newer ? bw[x].start : pmax[x - 1];
			pwid[x] = newer ? bw[x].wid : pwid[x - 1];
		}
		r0 = j;
		for (; j < n && recs[j].block == recs[i].block; j++) {
			out->reads++;
		}
		check_block(&k, bw, nbw, pmax, pwid, recs + r0, j - r0, sufmax);
	}
	ret = out->violations ? 1 : 0;
out_free:
	free(sufmax);
	free(pwid);
	free(pmax);
	free(bw);
	free(k.writes);
	return ret;
}

void kh_print_summary(const struct kh_summary *s, FILE *f)
{
	fprintf(f,
		"histcheck: %" PRIu64 " records, %" PRIu64 " blocks, %" PRIu64 " writes (%" PRIu64
		" failed), %" PRIu64 " reads (%" PRIu64 " failed)\n",
		s->records, s->blocks, s->writes, s->writes_failed, s->reads, s->reads_failed);
	fprintf(f,
		"histcheck: reads ok: %" PRIu64 " last write, %" PRIu64 " concurrent write, %" PRIu64
		" initial content\n",
		s->reads_last, s->reads_concurrent, s->reads_initial);
	fprintf(f,
		"histcheck: violations %" PRIu64 ": stale reads %" PRIu64 ", lost writes %" PRIu64
		", future reads %" PRIu64 ", torn %" PRIu64 ", misplaced %" PRIu64
		", garbage %" PRIu64 "\n",
		s->violations, s->stale_reads, s->lost_writes, s->future_reads, s->torn,
		s->misplaced, s->garbage);
	fprintf(f, "histcheck: %s\n", s->violations ? "FAILED" : "OK");
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keel-snapcheck's checker: see sc_check.h for the rules. */
#include "tests/tools/sc_check.h"

#include <inttypes.h>

static const char *const sc_verdict_names[] = {
	[SC_OK] = "ok",
	[SC_LOST] = "lost",
	[SC_FUTURE] = "future",
	[SC_BACKWARDS] = "backwards",
	[SC_UNKNOWN] = "unknown write",
	[SC_BAD_BLOCK] = "bad block",
};

static const char *const sc_found_names[] = {
	[SC_FOUND_ZERO] = "zeroes",
	[SC_FOUND_DATA] = "data",
	[SC_FOUND_TORN] = "torn",
	[SC_FOUND_MISPLACED] = "misplaced",
	[SC_FOUND_GARBAGE] = "garbage",
};

const char *sc_verdict_name(enum sc_verdict v)
{
	return (unsigned int)v < sizeof(sc_verdict_names) / sizeof(sc_verdict_names[0])
		       ? sc_verdict_names[v]
		       : "?";
}

const char *sc_found_name(enum sc_found f)
{
	return (unsigned int)f < sizeof(sc_found_names) / sizeof(sc_found_names[0])
		       ? sc_found_names[f]
		       : "?";
}

enum sc_verdict sc_check_block(const struct sc_write *w, size_t n, const struct sc_snap *s,
			       enum sc_found found, uint64_t seq, size_t floor,
			       struct sc_result *out)
{
	size_t j = 0;

	out->must = 0;
	out->visible = 0;
	/* Writes of a block complete in issue order: the last one that
	 * completed before Ts is the last with end < Ts. */
	for (size_t i = 0; i < n; i++) {
		if (w[i].end_ns != SC_NEVER && w[i].end_ns < s->ts_ns) {
			out->must = i + 1;
		}
	}
	if (found != SC_FOUND_ZERO && found != SC_FOUND_DATA) {
		out->verdict = SC_BAD_BLOCK;
		return out->verdict;
	}
	if (found == SC_FOUND_DATA) {
		for (j = 0; j < n && w[j].seq != seq; j++) {
		}
		if (j == n) {
			out->verdict = SC_UNKNOWN;
			return out->verdict;
		}
		out->visible = j + 1;
		if (w[j].start_ns >= s->te_ns) {
			out->verdict = SC_FUTURE;
			return out->verdict;
		}
	}
	if (out->visible < out->must) {
		out->verdict = SC_LOST;
	} else if (out->visible < floor) {
		out->verdict = SC_BACKWARDS;
	} else {
		out->verdict = SC_OK;
	}
	return out->verdict;
}

static double sc_ms(uint64_t t, uint64_t t0)
{
	if (t == SC_NEVER) {
		return -1;
	}
	return ((double)t - (double)t0) / 1e6;
}

void sc_report(FILE *f, uint64_t block, const char *name, const struct sc_snap *s,
	       const struct sc_write *w, size_t n, enum sc_found found, uint64_t seq,
	       const struct sc_result *r, uint64_t t0_ns)
{
	size_t lo = n, hi = 0;

	fprintf(f,
		"VIOLATION (%s): block %" PRIu64 " of snapshot %s (request %.3f..%.3f ms) holds %s",
		sc_verdict_name(r->verdict), block, name, sc_ms(s->ts_ns, t0_ns),
		sc_ms(s->te_ns, t0_ns), sc_found_name(found));
	if (found == SC_FOUND_DATA || found == SC_FOUND_TORN || found == SC_FOUND_MISPLACED) {
		fprintf(f, " (write seq %" PRIu64 ")", seq);
	}
	fprintf(f, "; %zu writes to the block, last completed before the request: %s%zu\n", n,
		r->must ? "#" : "none", r->must);
	/* The writes around the one that must be there and the one seen. */
	if (r->must) {
		lo = r->must - 1;
		hi = r->must - 1;
	}
	if (r->visible) {
		lo = r->visible - 1 < lo ? r->visible - 1 : lo;
		hi = r->visible - 1 > hi ? r->visible - 1 : hi;
	}
	if (lo == n) {
		lo = 0;
		hi = n ? n - 1 : 0;
	}
	lo = lo >= 3 ? lo - 3 : 0;
	hi = hi + 4 < n ? hi + 4 : n;
	if (hi - lo > 12) {
		hi = lo + 12;
	}
	for (size_t i = lo; i < hi; i++) {
		fprintf(f, "    #%zu seq %" PRIu64 " issued %.3f ms, completed ", i + 1, w[i].seq,
			sc_ms(w[i].start_ns, t0_ns));
		if (w[i].end_ns == SC_NEVER) {
			fprintf(f, "never");
		} else {
			fprintf(f, "%.3f ms", sc_ms(w[i].end_ns, t0_ns));
		}
		fprintf(f, "%s%s\n", i + 1 == r->visible ? "  <- visible" : "",
			i + 1 == r->must ? "  <- must be visible (or a later one)" : "");
	}
}

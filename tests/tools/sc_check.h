/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot checker (the logic of keel-snapcheck, a library so the unit
 * tests can feed it hand-made histories).
 *
 * A workload writes 4 KiB blocks with at most one write in flight per
 * block, so the writes of one block are totally ordered: w1..wk in issue
 * order, each issued (start) after the previous one completed (end).
 * A snapshot request starts at Ts and returns at Te. What one block of the
 * snapshot holds must be zero (no write) or exactly one w_j, with:
 *
 *   lost      every write completed before Ts is visible or superseded by
 *             the visible write: j >= L, L the last write with end < Ts
 *             (zero is lost when L exists);
 *   future    the visible write was issued before Te: start(w_j) < Te
 *             (a write issued after the snapshot returned goes to the new
 *             top, never into the snapshot);
 *   backwards an earlier snapshot of the same volume showed w_i: j >= i
 *             (a later snapshot reads through the earlier one, and a write
 *             visible in it was never undone);
 *   unknown   the block holds a valid pattern of this block whose write
 *             sequence number is not one of w1..wk;
 *   bad block torn (header parses, checksum does not), misplaced (a valid
 *             block of another block number or run) or garbage.
 *
 * Times are CLOCK_MONOTONIC nanoseconds taken by the workload: a write's
 * start before it is handed to libkeel, its end in its callback; Ts before
 * the REST request, Te after its reply. Each recorded interval contains the
 * real one, so the checks never flag a correct history.
 */
#ifndef KEEL_TESTS_TOOLS_SC_CHECK_H
#define KEEL_TESTS_TOOLS_SC_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* end_ns of a write that never completed (failed, or still in flight). */
#define SC_NEVER UINT64_MAX

struct sc_write {
	uint64_t seq;	   /* write sequence number (> 0), unique in the run */
	uint64_t start_ns; /* issued */
	uint64_t end_ns;   /* completed, or SC_NEVER */
};

struct sc_snap {
	uint64_t ts_ns; /* request started */
	uint64_t te_ns; /* reply received */
};

/* What a read of one block found. */
enum sc_found {
	SC_FOUND_ZERO = 0,	/* all zeroes */
	SC_FOUND_DATA = 1,	/* a valid block of this block number: seq is its write */
	SC_FOUND_TORN = 2,	/* header ok, checksum mismatch */
	SC_FOUND_MISPLACED = 3, /* a valid block of another block or run */
	SC_FOUND_GARBAGE = 4,	/* neither zero nor a workload block */
};

enum sc_verdict {
	SC_OK = 0,
	SC_LOST,
	SC_FUTURE,
	SC_BACKWARDS,
	SC_UNKNOWN,
	SC_BAD_BLOCK,
};

struct sc_result {
	enum sc_verdict verdict;
	size_t visible; /* 1 + index of the write seen, 0: zero (or a bad block) */
	size_t must;	/* 1 + index of the last write completed before Ts, 0: none */
};

/*
 * Check one block of one snapshot. @w: the block's @n writes in issue
 * order; @found/@seq: what the snapshot's block holds (@seq only for
 * SC_FOUND_DATA); @floor: result.visible of the previous snapshot of the
 * volume for this block (0 for the first). Fills @out and returns its
 * verdict. Pure: no I/O, no allocation.
 */
enum sc_verdict sc_check_block(const struct sc_write *w, size_t n, const struct sc_snap *s,
			       enum sc_found found, uint64_t seq, size_t floor,
			       struct sc_result *out);

/* "lost", "future", ... */
const char *sc_verdict_name(enum sc_verdict v);
const char *sc_found_name(enum sc_found f);

/*
 * Describe a violation on @f: the block, the snapshot (@name, index), what
 * was found, and the candidate writes (the ones around L and j, at most a
 * dozen) with their times relative to @t0_ns in milliseconds.
 */
void sc_report(FILE *f, uint64_t block, const char *name, const struct sc_snap *s,
	       const struct sc_write *w, size_t n, enum sc_found found, uint64_t seq,
	       const struct sc_result *r, uint64_t t0_ns);

#endif

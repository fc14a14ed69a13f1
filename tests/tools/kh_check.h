/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The block-history checker (the logic of keel-histcheck, a library so the
 * unit tests can feed it synthetic histories).
 *
 * Per 4 KiB block, a successful read must return
 *   - the value of a write concurrent with it: started before the read
 *     ended and not completed before the read started (a failed write
 *     counts as never completed: it may land at any time), or
 *   - the value of a write that completed before the read started and is
 *     not superseded: no other write to the block started after it
 *     completed and completed before the read started, or
 *   - the initial content (zeroes or data from before this history) when
 *     no write to the block completed before the read started.
 * Anything else is a violation:
 *   stale read   an older value, and a later read does see the newer one;
 *   lost write   an older value, and no later read sees the acknowledged
 *                write (or anything newer): counted once per write;
 *   future read  the value of a write that started after the read ended;
 *   torn/misplaced/garbage  the block itself is bad (see keel-history.h).
 */
#ifndef KEEL_TESTS_TOOLS_KH_CHECK_H
#define KEEL_TESTS_TOOLS_KH_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tests/tools/keel-history.h"

struct kh_summary {
	uint64_t records, writes, reads, blocks;
	uint64_t writes_failed, reads_failed;
	uint64_t reads_last, reads_concurrent, reads_initial;
	uint64_t stale_reads, lost_writes, future_reads;
	uint64_t torn, misplaced, garbage;
	uint64_t violations; /* sum of the violation counters */
};

/*
 * Check @n records (reordered in place). Up to @max_report violations are
 * described on @report (NULL: silent). Returns 0 (no violation), 1
 * (violations, counted in @out) or -ENOMEM.
 */
int kh_check(struct kh_rec *recs, size_t n, struct kh_summary *out, FILE *report,
	     unsigned int max_report);

void kh_print_summary(const struct kh_summary *s, FILE *f);

#endif

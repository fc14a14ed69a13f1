/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-histcheck: check a keel-bench --history log (rules: kh_check.h).
 * Exit 0: consistent; 1: violations; 2: usage or unreadable file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/tools/kh_check.h"

static const char usage[] =
	"usage: keel-histcheck [--max-report N] FILE...\n"
	"  Checks the block histories keel-bench --history FILE recorded: every read\n"
	"  returns the last write completed before it started or a concurrent one.\n"
	"  Several files (one per bench run over the same volume) are checked as one\n"
	"  history. Exit 0 OK, 1 violations, 2 usage or bad file.\n";

static int load(const char *path, struct kh_rec **recs, size_t *n)
{
	struct kh_file_hdr h;
	struct stat st;
	struct kh_rec *nr;
	size_t cnt;
	FILE *f = fopen(path, "r");

	if (!f || fstat(fileno(f), &st)) {
		fprintf(stderr, "keel-histcheck: %s: %s\n", path, strerror(errno));
		goto out_close;
	}
	if (fread(&h, sizeof(h), 1, f) != 1 || h.magic != KH_FILE_MAGIC ||
	    h.version != KH_VERSION || h.rec_size != sizeof(struct kh_rec)) {
		fprintf(stderr, "keel-histcheck: %s: not a keel-bench history (v%u)\n", path,
			KH_VERSION);
		goto out_close;
	}
	cnt = ((size_t)st.st_size - sizeof(h)) / sizeof(struct kh_rec);
	nr = realloc(*recs, (*n + cnt + 1) * sizeof(**recs));
	if (!nr) {
		fprintf(stderr, "keel-histcheck: out of memory\n");
		goto out_close;
	}
	*recs = nr;
	cnt = fread(nr + *n, sizeof(*nr), cnt, f);
	*n += cnt;
	fclose(f);
	return 0;
out_close:
	if (f) {
		fclose(f);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct kh_rec *recs = NULL;
	struct kh_summary s;
	unsigned int max_report = 20;
	size_t n = 0;
	int i = 1, ret;

	if (i < argc && !strcmp(argv[i], "--help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (i + 1 < argc && !strcmp(argv[i], "--max-report")) {
		max_report = (unsigned int)strtoul(argv[i + 1], NULL, 10);
		i += 2;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	for (; i < argc; i++) {
		if (load(argv[i], &recs, &n)) {
			free(recs);
			return 2;
		}
	}
	ret = kh_check(recs, n, &s, stdout, max_report);
	free(recs);
	if (ret < 0) {
		fprintf(stderr, "keel-histcheck: out of memory\n");
		return 2;
	}
	kh_print_summary(&s, stdout);
	return ret ? 1 : 0;
}

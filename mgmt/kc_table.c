/* SPDX-License-Identifier: Apache-2.0 */
/* keelctl: aligned text tables. */
#include "mgmt/kc_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kc_table {
	unsigned int ncols;
	unsigned int nrows; /* including the header */
	char **cells;	    /* nrows * ncols */
};

struct kc_table *kc_table_new(unsigned int ncols, const char *const *headers)
{
	struct kc_table *t = calloc(1, sizeof(*t));

	if (!t) {
		return NULL;
	}
	t->ncols = ncols;
	if (kc_table_add(t, headers)) {
		free(t);
		return NULL;
	}
	return t;
}

int kc_table_add(struct kc_table *t, const char *const *cells)
{
	char **n = realloc(t->cells, (size_t)(t->nrows + 1) * t->ncols * sizeof(*n));

	if (!n) {
		return -ENOMEM;
	}
	t->cells = n;
	for (unsigned int i = 0; i < t->ncols; i++) {
		n[(size_t)t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "-");
	}
	t->nrows++;
	return 0;
}

bool kc_table_values;

void kc_table_print(const struct kc_table *t, FILE *f)
{
	size_t *w;

	if (kc_table_values) {
		/* -f value: the cells of each row, space-separated, no header
		 * (for shell scripts: read a b c <<< "$(keelctl -f value ...)"). */
		for (unsigned int r = 1; r < t->nrows; r++) {
			for (unsigned int c = 0; c < t->ncols; c++) {
				const char *s = t->cells[(size_t)r * t->ncols + c];

				fprintf(f, "%s%s", s ? s : "", c + 1 == t->ncols ? "\n" : " ");
			}
		}
		return;
	}
	w = calloc(t->ncols, sizeof(*w));

	if (!w) {
		return;
	}
	for (unsigned int r = 0; r < t->nrows; r++) {
		for (unsigned int c = 0; c < t->ncols; c++) {
			const char *s = t->cells[(size_t)r * t->ncols + c];
			size_t len = s ? strlen(s) : 0;

			if (len > w[c]) {
				w[c] = len;
			}
		}
	}
	for (unsigned int r = 0; r < t->nrows; r++) {
		for (unsigned int c = 0; c < t->ncols; c++) {
			const char *s = t->cells[(size_t)r * t->ncols + c];

			if (c + 1 == t->ncols) {
				fprintf(f, "%s\n", s ? s : "");
			} else {
				fprintf(f, "%-*s  ", (int)w[c], s ? s : "");
			}
		}
	}
	free(w);
}

void kc_table_free(struct kc_table *t)
{
	if (!t) {
		return;
	}
	for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	free(t);
}

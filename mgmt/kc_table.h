/* SPDX-License-Identifier: Apache-2.0 */
/* kc_table: aligned text tables with a header row, for keelctl. */
#ifndef KEEL_MGMT_KC_TABLE_H
#define KEEL_MGMT_KC_TABLE_H

#include <stdbool.h>
#include <stdio.h>

struct kc_table;

/* A table with @ncols columns named by @headers (copied). NULL on ENOMEM. */
struct kc_table *kc_table_new(unsigned int ncols, const char *const *headers);
/* Append a row of ncols cells (copied; NULL prints as "-"). 0 or -ENOMEM. */
int kc_table_add(struct kc_table *t, const char *const *cells);
/* Print header and rows, columns padded to their widest cell; with
 * kc_table_values set (keelctl -f value), the rows' cells only,
 * space-separated. */
extern bool kc_table_values;
void kc_table_print(const struct kc_table *t, FILE *f);
void kc_table_free(struct kc_table *t);

#endif

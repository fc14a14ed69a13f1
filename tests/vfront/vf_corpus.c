/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "tests/vfront/vf.h"

int vf_cmd_corpus(const struct vf_cli *cli)
{
	fprintf(stderr, "keel-vfront: corpus not implemented yet\n");
	return 1;
}

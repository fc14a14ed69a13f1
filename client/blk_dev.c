/* SPDX-License-Identifier: Apache-2.0 */
/* blk_dev: what every implementation and export shares (see blk_dev.h). */
#include <errno.h>

#include "client/blk_dev.h"

int blk_dev_check_range(const struct blk_dev *d, uint64_t offset, uint64_t length)
{
	if (!length || offset % d->block_size || length % d->block_size) {
		return -EINVAL;
	}
	if (offset > d->size || length > d->size - offset) {
		return -ERANGE;
	}
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until the vhost-user backend lands: every call fails. */
#include <errno.h>

#include "client/vhost_blk.h"

int vhost_blk_create(struct reactor *r, struct blk_dev *dev, const struct vhost_blk_opts *opts,
		     struct vhost_blk **out)
{
	(void)r, (void)dev, (void)opts, (void)out;
	return -ENOSYS;
}

void vhost_blk_close(struct vhost_blk *vb, void (*cb)(void *arg), void *arg)
{
	(void)vb, (void)cb, (void)arg;
}

void vhost_blk_resize(struct vhost_blk *vb)
{
	(void)vb;
}

void vhost_blk_get_stats(const struct vhost_blk *vb, struct vhost_blk_stats *out)
{
	(void)vb, (void)out;
}

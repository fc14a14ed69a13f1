/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_keel: a Keel volume (libkeel) as a blk_dev. A thin mapping: libkeel
 * already splits requests across objects, retries across failover, checks
 * the end-to-end crcs and keeps the async rule blk_dev asks for. What is
 * added here is the read-only check and the geometry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/blk_dev.h"
#include "client/hc.h"
#include "client/libkeel.h"
#include "common/log.h"

#define BLK_KEEL_DEPTH 1024u /* libkeel's requests in flight per volume */

struct blk_keel {
	struct blk_dev dev;
	struct keel_volume *v;
};

static struct keel_volume *bk_vol(struct blk_dev *d)
{
	return container_of(d, struct blk_keel, dev)->v;
}

static int bk_readv(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		    blk_io_cb cb, void *arg)
{
	return keel_readv(bk_vol(d), iov, iovcnt, offset, cb, arg);
}

static int bk_writev(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		     blk_io_cb cb, void *arg)
{
	if (d->read_only) {
		return -EROFS;
	}
	return keel_writev(bk_vol(d), iov, iovcnt, offset, cb, arg);
}

static int bk_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	return keel_flush(bk_vol(d), cb, arg);
}

static int bk_discard(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
		      void *arg)
{
	if (d->read_only) {
		return -EROFS;
	}
	return keel_discard(bk_vol(d), offset, length, cb, arg);
}

static int bk_write_zeroes(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
			   void *arg)
{
	if (d->read_only) {
		return -EROFS;
	}
	return keel_write_zeroes(bk_vol(d), offset, length, cb, arg);
}

static void bk_destroy(struct blk_dev *d)
{
	free(container_of(d, struct blk_keel, dev));
}

static const struct blk_dev_ops blk_keel_ops = {
	.readv = bk_readv,
	.writev = bk_writev,
	.flush = bk_flush,
	.discard = bk_discard,
	.write_zeroes = bk_write_zeroes,
	.destroy = bk_destroy,
};

int blk_keel_create(struct keel_volume *v, bool read_only, struct blk_dev **out)
{
	const struct keel_volume_info *info = keel_volume_info(v);
	struct blk_keel *bk = calloc(1, sizeof(*bk));

	if (!bk) {
		return -ENOMEM;
	}
	bk->v = v;
	bk->dev.ops = &blk_keel_ops;
	bk->dev.size = info->size;
	bk->dev.block_size = BLK_DEV_BLOCK;
	bk->dev.queue_depth = BLK_KEEL_DEPTH;
	bk->dev.read_only = read_only;
	snprintf(bk->dev.name, sizeof(bk->dev.name), "%s", info->name);
	/* The serial a guest sees (/dev/disk/by-id/virtio-...): the volume id,
	 * stable across renames, unlike the name. */
	snprintf(bk->dev.serial, sizeof(bk->dev.serial), "keel-%llu",
		 (unsigned long long)info->id);
	*out = &bk->dev;
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "ram" backend: the device is one calloc'd image. Data is copied at
 * submission; the completion is queued with reactor_defer() so it runs on the
 * next loop turn, never inside the submit call. Nothing is volatile, so a
 * flush only has to order after earlier completions (which the FIFO defer
 * queue already does).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/bs_dev.h"

struct ram_dev {
	struct bs_dev dev;
	uint8_t *image;
};

static void ram_complete(struct reactor_defer *d)
{
	struct bs_io *io = container_of(d, struct bs_io, defer);

	io->cb(io, io->res);
}

static void ram_queue(struct bs_dev *dev, struct bs_io *io, int res)
{
	io->res = res;
	io->defer.fn = ram_complete;
	reactor_defer(dev->r, &io->defer);
}

static int ram_read(struct bs_dev *dev, void *buf, size_t len, uint64_t off, struct bs_io *io)
{
	struct ram_dev *rd = container_of(dev, struct ram_dev, dev);
	int ret;

	ret = bs_dev_check_io(dev, buf, len, off);
	if (ret) {
		return ret;
	}
	memcpy(buf, rd->image + off, len);
	ram_queue(dev, io, (int)len);
	return 0;
}

static int ram_write(struct bs_dev *dev, const void *buf, size_t len, uint64_t off,
		     struct bs_io *io)
{
	struct ram_dev *rd = container_of(dev, struct ram_dev, dev);
	int ret;

	ret = bs_dev_check_io(dev, buf, len, off);
	if (ret) {
		return ret;
	}
	memcpy(rd->image + off, buf, len);
	ram_queue(dev, io, (int)len);
	return 0;
}

static int ram_flush(struct bs_dev *dev, struct bs_io *io)
{
	ram_queue(dev, io, 0);
	return 0;
}

/* The caller must have drained its I/O: queued completions live in its
 * bs_io structs, not here, so nothing of ours is left in the reactor. */
static void ram_close(struct bs_dev *dev)
{
	struct ram_dev *rd = container_of(dev, struct ram_dev, dev);

	free(rd->image);
	free(rd);
}

static const struct bs_dev_ops ram_ops = {
	.name = "ram",
	.read = ram_read,
	.write = ram_write,
	.flush = ram_flush,
	.close = ram_close,
};

int bs_dev_ram_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out)
{
	struct ram_dev *rd;

	if (!size || size > SIZE_MAX) {
		return -EINVAL;
	}
	rd = calloc(1, sizeof(*rd));
	if (!rd) {
		return -ENOMEM;
	}
	rd->image = calloc(1, (size_t)size);
	if (!rd->image) {
		free(rd);
		return -ENOMEM;
	}
	rd->dev.ops = &ram_ops;
	rd->dev.r = r;
	rd->dev.size = size;
	rd->dev.volatile_cache = false;
	snprintf(rd->dev.path, sizeof(rd->dev.path), "%s", path);
	*out = &rd->dev;
	return 0;
}

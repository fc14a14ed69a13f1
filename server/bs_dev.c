/* SPDX-License-Identifier: Apache-2.0 */
/* bs_dev_open(): pick a backend by name from one explicit table. */
#include "server/bs_dev.h"

#include <errno.h>
#include <string.h>

struct bs_dev_backend {
	const char *name;
	int (*open)(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out);
};

static const struct bs_dev_backend bs_dev_backends[] = {
	{"uring", bs_dev_uring_open},
	{"ram", bs_dev_ram_open},
	{"sim", bs_dev_sim_open},
};

int bs_dev_check_io(const struct bs_dev *dev, const void *buf, size_t len, uint64_t off)
{
	if (!len || len > BS_DEV_MAX_IO || len % BS_DEV_BLOCK || off % BS_DEV_BLOCK) {
		return -EINVAL;
	}
	if ((uintptr_t)buf % BS_DEV_BLOCK) {
		return -EINVAL;
	}
	/* Written so that off + len cannot wrap. */
	if (off > dev->size || len > dev->size - off) {
		return -EINVAL;
	}
	return 0;
}

int bs_dev_open(struct reactor *r, const char *backend, const char *path, uint64_t size,
		struct bs_dev **out)
{
	size_t i;

	if (!r || !backend || !path || !out || size % BS_DEV_BLOCK) {
		return -EINVAL;
	}
	for (i = 0; i < sizeof(bs_dev_backends) / sizeof(bs_dev_backends[0]); i++) {
		if (!strcmp(bs_dev_backends[i].name, backend)) {
			return bs_dev_backends[i].open(r, path, size, out);
		}
	}
	return -EINVAL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until the NBD server lands: every call fails. */
#include <errno.h>

#include "client/nbd_server.h"

int nbd_server_create(struct reactor *r, struct blk_dev *dev, const struct nbd_server_opts *opts,
		      struct nbd_server **out)
{
	(void)r, (void)dev, (void)opts, (void)out;
	return -ENOSYS;
}

void nbd_server_close(struct nbd_server *s, void (*cb)(void *arg), void *arg)
{
	(void)s, (void)cb, (void)arg;
}

void nbd_server_get_stats(const struct nbd_server *s, struct nbd_server_stats *out)
{
	(void)s, (void)out;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel synchronous wrappers: a private reactor driven with
 * reactor_poll() until the one operation in progress completes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/kl_int.h"

#define KL_SYNC_RING 256

struct keel_sync {
	struct reactor *r;
	struct keel_cluster *c;
	struct keel_volume *v;
	bool done;
	int res;
};

static void sync_cluster_cb(struct keel_cluster *c, int res, void *arg)
{
	struct keel_sync *s = arg;

	s->done = true;
	s->res = res;
}

static void sync_volume_cb(struct keel_volume *v, int res, void *arg)
{
	struct keel_sync *s = arg;

	s->done = true;
	s->res = res;
}

static void sync_io_cb(void *arg, int res)
{
	struct keel_sync *s = arg;

	s->done = true;
	s->res = res;
}

/* Drive the reactor until the pending operation called back. */
static int sync_wait(struct keel_sync *s)
{
	while (!s->done) {
		int ret = reactor_poll(s->r, true);

		if (ret < 0) {
			return ret;
		}
	}
	return s->res;
}

/* Close the cluster and let its connections and timers wind down. */
static void sync_drain_close(struct keel_sync *s)
{
	bool freed = false;

	if (s->c) {
		s->c->freed_flag = &freed;
		keel_cluster_close(s->c);
		while (!freed) {
			if (reactor_poll(s->r, true) < 0) {
				break;
			}
		}
		s->c = NULL;
	}
}

int keel_sync_open(const struct keel_cluster_opts *opts, const char *volume,
		   struct keel_sync **out)
{
	struct keel_sync *s = calloc(1, sizeof(*s));
	bool freed = false;
	int ret;

	if (!s) {
		return -ENOMEM;
	}
	ret = reactor_create(KL_SYNC_RING, &s->r);
	if (ret) {
		goto out_free;
	}
	ret = keel_cluster_open(s->r, opts, sync_cluster_cb, s, &s->c);
	if (ret) {
		s->c = NULL;
		goto out_destroy;
	}
	s->c->freed_flag = &freed;
	ret = sync_wait(s);
	if (ret) {
		/* A failed open closes itself: wait until it is gone. */
		while (!freed && reactor_poll(s->r, true) >= 0) {
		}
		s->c = NULL;
		goto out_destroy;
	}
	s->c->freed_flag = NULL;
	s->done = false;
	ret = keel_volume_open(s->c, volume, sync_volume_cb, s, &s->v);
	if (!ret) {
		ret = sync_wait(s);
	}
	if (ret) {
		s->v = NULL;
		goto out_close;
	}
	*out = s;
	return 0;
out_close:
	sync_drain_close(s);
out_destroy:
	reactor_destroy(s->r);
out_free:
	free(s);
	return ret;
}

void keel_sync_close(struct keel_sync *s)
{
	if (!s) {
		return;
	}
	if (s->v) {
		keel_volume_close(s->v);
		s->v = NULL;
	}
	sync_drain_close(s);
	reactor_destroy(s->r);
	free(s);
}

const struct keel_volume_info *keel_sync_info(const struct keel_sync *s)
{
	return keel_volume_info(s->v);
}

static int sync_io(struct keel_sync *s, int ret)
{
	if (ret) {
		return ret;
	}
	return sync_wait(s);
}

int keel_sync_pread(struct keel_sync *s, void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = {buf, len};

	s->done = false;
	return sync_io(s, keel_readv(s->v, &iov, 1, offset, sync_io_cb, s));
}

int keel_sync_pwrite(struct keel_sync *s, const void *buf, size_t len, uint64_t offset)
{
	struct iovec iov = {(void *)buf, len};

	s->done = false;
	return sync_io(s, keel_writev(s->v, &iov, 1, offset, sync_io_cb, s));
}

int keel_sync_flush(struct keel_sync *s)
{
	s->done = false;
	return sync_io(s, keel_flush(s->v, sync_io_cb, s));
}

int keel_sync_discard(struct keel_sync *s, uint64_t offset, uint64_t length)
{
	s->done = false;
	return sync_io(s, keel_discard(s->v, offset, length, sync_io_cb, s));
}

int keel_sync_write_zeroes(struct keel_sync *s, uint64_t offset, uint64_t length)
{
	s->done = false;
	return sync_io(s, keel_write_zeroes(s->v, offset, length, sync_io_cb, s));
}

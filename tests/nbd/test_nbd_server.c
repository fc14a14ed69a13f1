/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_server on a RAM blk_dev with a tiny queue depth: the device answers
 * -EAGAIN often, so parked requests must be retried in order; a client
 * thread (blocking sockets) pipelines more requests than the connection
 * keeps in flight. Closing with requests held in the device: the close
 * callback waits for them, parked ones are answered ESHUTDOWN.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/blk_dev.h"
#include "client/nbd_proto.h"
#include "client/nbd_server.h"
#include "common/reactor.h"

#define RAM_SIZE  (16u << 20)
#define RAM_DEPTH 3u

struct ram_dev;

struct ram_req {
	struct reactor_defer d;
	struct ram_dev *rd;
	blk_io_cb cb;
	void *arg;
	int res;
	bool busy;
};

struct ram_dev {
	struct blk_dev dev;
	struct reactor *r;
	uint8_t *data;
	bool hold; /* keep completions until released */
	unsigned int inflight, held, eagain, ops, flushes;
	struct ram_req reqs[RAM_DEPTH];
};

static void ram_done(struct reactor_defer *d)
{
	struct ram_req *q = container_of(d, struct ram_req, d);

	q->busy = false;
	q->rd->inflight--;
	q->cb(q->arg, q->res);
}

static int ram_submit(struct ram_dev *rd, blk_io_cb cb, void *arg, int res)
{
	for (unsigned int i = 0; i < RAM_DEPTH; i++) {
		struct ram_req *q = &rd->reqs[i];

		if (q->busy) {
			continue;
		}
		q->busy = true;
		q->rd = rd;
		q->cb = cb;
		q->arg = arg;
		q->res = res;
		q->d.fn = ram_done;
		rd->inflight++;
		rd->ops++;
		if (rd->hold) {
			rd->held++;
		} else {
			reactor_defer(rd->r, &q->d);
		}
		return 0;
	}
	rd->eagain++;
	return -EAGAIN;
}

static void ram_release(struct ram_dev *rd)
{
	rd->hold = false;
	for (unsigned int i = 0; i < RAM_DEPTH; i++) {
		if (rd->reqs[i].busy) {
			reactor_defer(rd->r, &rd->reqs[i].d);
		}
	}
	rd->held = 0;
}

static bool ram_full(struct ram_dev *rd)
{
	for (unsigned int i = 0; i < RAM_DEPTH; i++) {
		if (!rd->reqs[i].busy) {
			return false;
		}
	}
	return true;
}

static int ram_rw(struct blk_dev *d, bool write, const struct iovec *iov, int iovcnt, uint64_t off,
		  blk_io_cb cb, void *arg)
{
	struct ram_dev *rd = container_of(d, struct ram_dev, dev);
	uint64_t len = 0;
	int rc;

	for (int i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
	}
	rc = blk_dev_check_range(d, off, len);
	assert_int_equal(rc, 0); /* the export validated it */
	if (ram_full(rd)) {
		rd->eagain++;
		return -EAGAIN;
	}
	for (int i = 0; i < iovcnt; i++) {
		if (write) {
			memcpy(rd->data + off, iov[i].iov_base, iov[i].iov_len);
		} else {
			memcpy(iov[i].iov_base, rd->data + off, iov[i].iov_len);
		}
		off += iov[i].iov_len;
	}
	return ram_submit(rd, cb, arg, 0);
}

static int ram_readv(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t off,
		     blk_io_cb cb, void *arg)
{
	return ram_rw(d, false, iov, iovcnt, off, cb, arg);
}

static int ram_writev(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t off,
		      blk_io_cb cb, void *arg)
{
	return ram_rw(d, true, iov, iovcnt, off, cb, arg);
}

static int ram_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	struct ram_dev *rd = container_of(d, struct ram_dev, dev);
	int rc = ram_submit(rd, cb, arg, 0);

	rd->flushes += rc == 0;
	return rc;
}

static int ram_zero(struct blk_dev *d, uint64_t off, uint64_t len, blk_io_cb cb, void *arg)
{
	struct ram_dev *rd = container_of(d, struct ram_dev, dev);

	assert_int_equal(blk_dev_check_range(d, off, len), 0);
	if (ram_full(rd)) {
		rd->eagain++;
		return -EAGAIN;
	}
	memset(rd->data + off, 0, len);
	return ram_submit(rd, cb, arg, 0);
}

static void ram_destroy(struct blk_dev *d)
{
	(void)d;
}

static const struct blk_dev_ops ram_ops = {
	.readv = ram_readv,
	.writev = ram_writev,
	.flush = ram_flush,
	.discard = ram_zero,
	.write_zeroes = ram_zero,
	.destroy = ram_destroy,
};

/* --- a blocking client on its own thread --- */

struct client {
	const char *path;
	int fd;
	int (*body)(struct client *cl);
	atomic_int done; /* 1 ok, -1 failed */
	char why[128];
};

static int cl_fail(struct client *cl, const char *why)
{
	snprintf(cl->why, sizeof(cl->why), "%s", why);
	return -1;
}

static int rd_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r <= 0) {
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int wr_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = write(fd, p, n);

		if (r <= 0) {
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Connect, fixed newstyle, NBD_OPT_GO "vol". */
static int cl_connect(struct client *cl)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct nbd_greeting g;
	struct nbd_opt_reply rep;
	uint8_t buf[256];
	uint32_t flags = htobe32(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	struct nbd_opt_hdr oh = {
		.magic = htobe64(NBD_OPTS_MAGIC),
		.option = htobe32(NBD_OPT_GO),
		.length = htobe32(4 + 3 + 2),
	};

	cl->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cl->path);
	if (connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		return cl_fail(cl, "connect");
	}
	if (rd_full(cl->fd, &g, sizeof(g)) || be64toh(g.init_magic) != NBD_INIT_MAGIC) {
		return cl_fail(cl, "greeting");
	}
	memcpy(buf, "\0\0\0\x03vol\0\0", 9);
	if (wr_full(cl->fd, &flags, 4) || wr_full(cl->fd, &oh, sizeof(oh)) ||
	    wr_full(cl->fd, buf, 9)) {
		return cl_fail(cl, "send GO");
	}
	for (;;) {
		uint32_t len;

		if (rd_full(cl->fd, &rep, sizeof(rep))) {
			return cl_fail(cl, "GO reply");
		}
		len = be32toh(rep.length);
		if (len > sizeof(buf) || rd_full(cl->fd, buf, len)) {
			return cl_fail(cl, "GO reply data");
		}
		if (be32toh(rep.type) == NBD_REP_ACK) {
			return 0;
		}
		if (be32toh(rep.type) != NBD_REP_INFO) {
			return cl_fail(cl, "GO refused");
		}
	}
}

static int cl_request(struct client *cl, uint16_t type, uint16_t flags, uint64_t handle,
		      uint64_t off, uint32_t len, const void *payload)
{
	struct nbd_request rq = {
		.magic = htobe32(NBD_REQUEST_MAGIC),
		.flags = htobe16(flags),
		.type = htobe16(type),
		.handle = handle,
		.offset = htobe64(off),
		.length = htobe32(len),
	};

	if (wr_full(cl->fd, &rq, sizeof(rq))) {
		return -1;
	}
	return payload ? wr_full(cl->fd, payload, len) : 0;
}

/* Reply header: the error (host order) or -1 when the connection ended. */
static int cl_reply(struct client *cl, uint64_t *handle)
{
	struct nbd_simple_reply r;

	if (rd_full(cl->fd, &r, sizeof(r)) || be32toh(r.magic) != NBD_SIMPLE_REPLY_MAGIC) {
		return -1;
	}
	*handle = r.handle;
	return (int)be32toh(r.error);
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	int rc = cl_connect(cl);

	if (!rc) {
		rc = cl->body(cl);
	}
	close(cl->fd);
	atomic_store(&cl->done, rc ? -1 : 1);
	return NULL;
}

#define NREQ 40u
#define BLK  8192u

static uint8_t pattern(unsigned int i, unsigned int j)
{
	return (uint8_t)(i * 31 + j / 4096 + 1);
}

/* 40 writes (every 4th FUA), 40 reads, a write-zeroes, a flush: all sent
 * before any reply is read. */
static int body_pipeline(struct client *cl)
{
	static uint8_t buf[BLK];
	bool seen[2 * NREQ + 2] = {0};
	unsigned int n = 0;

	for (unsigned int i = 0; i < NREQ; i++) {
		for (unsigned int j = 0; j < BLK; j++) {
			buf[j] = pattern(i, j);
		}
		if (cl_request(cl, NBD_CMD_WRITE, i % 4 ? 0 : NBD_CMD_FLAG_FUA, i, i * BLK, BLK,
			       buf)) {
			return cl_fail(cl, "send write");
		}
	}
	/* Reads of blocks already answered would race nothing: NBD gives no
	 * order between in-flight requests, so read a range nobody writes. */
	for (unsigned int i = 0; i < NREQ; i++) {
		if (cl_request(cl, NBD_CMD_READ, 0, NREQ + i, RAM_SIZE / 2 + i * BLK, BLK, NULL)) {
			return cl_fail(cl, "send read");
		}
	}
	if (cl_request(cl, NBD_CMD_WRITE_ZEROES, 0, 2 * NREQ, RAM_SIZE / 4, 1u << 20, NULL) ||
	    cl_request(cl, NBD_CMD_FLUSH, 0, 2 * NREQ + 1, 0, 0, NULL)) {
		return cl_fail(cl, "send zero/flush");
	}
	while (n < 2 * NREQ + 2) {
		uint64_t h;
		int err = cl_reply(cl, &h);

		if (err || h >= 2 * NREQ + 2 || seen[h]) {
			return cl_fail(cl, "bad reply");
		}
		seen[h] = true;
		n++;
		if (h >= NREQ && h < 2 * NREQ) {
			if (rd_full(cl->fd, buf, BLK)) {
				return cl_fail(cl, "read data");
			}
			for (unsigned int j = 0; j < BLK; j++) {
				if (buf[j] != (uint8_t)(0x70 + h - NREQ)) {
					return cl_fail(cl, "read data mismatch");
				}
			}
		}
	}
	/* Read the writes back, one at a time. */
	for (unsigned int i = 0; i < NREQ; i++) {
		uint64_t h;

		if (cl_request(cl, NBD_CMD_READ, 0, 500 + i, i * BLK, BLK, NULL) ||
		    cl_reply(cl, &h) || h != 500 + i || rd_full(cl->fd, buf, BLK)) {
			return cl_fail(cl, "read back");
		}
		for (unsigned int j = 0; j < BLK; j++) {
			if (buf[j] != pattern(i, j)) {
				return cl_fail(cl, "written data mismatch");
			}
		}
	}
	cl_request(cl, NBD_CMD_DISC, 0, 999, 0, 0, NULL);
	return rd_full(cl->fd, buf, 1) == -1 ? 0 : cl_fail(cl, "data after DISC");
}

static void sock_path(char *buf, size_t n)
{
	snprintf(buf, n, "/tmp/keel-nbd-ut-%d.sock", (int)getpid());
}

static void run_until(struct reactor *r, atomic_int *flag)
{
	for (int i = 0; i < 200000 && !atomic_load(flag); i++) {
		assert_true(reactor_poll(r, false) >= 0);
		if (!atomic_load(flag)) {
			usleep(50);
		}
	}
}

static struct ram_dev *ram_new(struct reactor *r)
{
	struct ram_dev *rd = calloc(1, sizeof(*rd));

	assert_non_null(rd);
	rd->data = calloc(1, RAM_SIZE);
	assert_non_null(rd->data);
	rd->r = r;
	rd->dev.ops = &ram_ops;
	rd->dev.size = RAM_SIZE;
	rd->dev.block_size = BLK_DEV_BLOCK;
	rd->dev.queue_depth = RAM_DEPTH;
	snprintf(rd->dev.name, sizeof(rd->dev.name), "vol");
	for (unsigned int i = 0; i < NREQ; i++) {
		memset(rd->data + RAM_SIZE / 2 + i * BLK, 0x70 + (int)i, BLK);
	}
	return rd;
}

static void closed_cb(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
}

static void test_pipeline_eagain(void **state)
{
	struct reactor *r;
	struct ram_dev *rd;
	struct nbd_server *s;
	struct nbd_server_stats st;
	char path[108];
	struct client cl = {.body = body_pipeline};
	struct nbd_server_opts o = {0};
	atomic_int closed = 0;
	pthread_t t;

	assert_int_equal(reactor_create(256, &r), 0);
	rd = ram_new(r);
	sock_path(path, sizeof(path));
	o.unix_path = path;
	cl.path = path;
	assert_int_equal(nbd_server_create(r, &rd->dev, &o, &s), 0);
	assert_int_equal(pthread_create(&t, NULL, client_main, &cl), 0);
	run_until(r, &cl.done);
	pthread_join(t, NULL);
	if (atomic_load(&cl.done) != 1) {
		fail_msg("client: %s", cl.why);
	}
	assert_true(rd->eagain > 0); /* the retry path ran */
	nbd_server_get_stats(s, &st);
	assert_true(st.parked > 0);
	/* The FLUSH, and one after each of the 10 FUA writes. */
	assert_int_equal(rd->flushes, 1 + NREQ / 4);
	assert_int_equal(st.writes, NREQ);
	assert_int_equal(st.reads, 2 * NREQ);
	assert_int_equal(st.write_zeroes, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.bad_requests, 0);
	assert_int_equal(st.io_errors, 0);
	for (unsigned int i = 0; i < (1u << 20); i += 4096) {
		assert_int_equal(rd->data[RAM_SIZE / 4 + i], 0);
	}
	nbd_server_close(s, closed_cb, &closed);
	assert_int_equal(atomic_load(&closed), 0); /* never inline */
	run_until(r, &closed);
	assert_int_equal(atomic_load(&closed), 1);
	assert_int_equal(access(path, F_OK), -1); /* socket unlinked */
	assert_int_equal(rd->inflight, 0);
	reactor_destroy(r);
	free(rd->data);
	free(rd);
}

/* 8 writes, then wait for the server to close: the ones the device held
 * succeed, the parked ones get ESHUTDOWN, then the connection ends. */
static int body_close(struct client *cl)
{
	static uint8_t buf[4096];
	unsigned int ok = 0, shut = 0;

	memset(buf, 0x5c, sizeof(buf));
	for (unsigned int i = 0; i < 8; i++) {
		if (cl_request(cl, NBD_CMD_WRITE, 0, i, i * 4096, 4096, buf)) {
			return cl_fail(cl, "send");
		}
	}
	for (;;) {
		uint64_t h;
		int err = cl_reply(cl, &h);

		if (err < 0) {
			break;
		}
		if (err == 0) {
			ok++;
		} else if (err == NBD_ESHUTDOWN) {
			shut++;
		} else {
			return cl_fail(cl, "unexpected error");
		}
	}
	if (ok != RAM_DEPTH || shut != 8 - RAM_DEPTH) {
		snprintf(cl->why, sizeof(cl->why), "ok %u shutdown %u", ok, shut);
		return -1;
	}
	return 0;
}

static void test_close_waits_for_device(void **state)
{
	struct reactor *r;
	struct ram_dev *rd;
	struct nbd_server *s;
	char path[108];
	struct client cl = {.body = body_close};
	struct nbd_server_opts o = {0};
	atomic_int closed = 0;
	pthread_t t;

	assert_int_equal(reactor_create(256, &r), 0);
	rd = ram_new(r);
	rd->hold = true;
	sock_path(path, sizeof(path));
	o.unix_path = path;
	cl.path = path;
	assert_int_equal(nbd_server_create(r, &rd->dev, &o, &s), 0);
	assert_int_equal(pthread_create(&t, NULL, client_main, &cl), 0);
	/* Until the device holds RAM_DEPTH requests and the rest are parked. */
	for (int i = 0; i < 100000; i++) {
		struct nbd_server_stats st;

		nbd_server_get_stats(s, &st);
		if (rd->held == RAM_DEPTH && st.parked == 8 - RAM_DEPTH) {
			break;
		}
		assert_true(reactor_poll(r, false) >= 0);
		usleep(50);
	}
	assert_int_equal(rd->held, RAM_DEPTH);
	nbd_server_close(s, closed_cb, &closed);
	for (int i = 0; i < 2000; i++) {
		assert_true(reactor_poll(r, false) >= 0);
	}
	assert_int_equal(atomic_load(&closed), 0); /* the device still holds requests */
	ram_release(rd);
	run_until(r, &closed);
	assert_int_equal(atomic_load(&closed), 1);
	assert_int_equal(rd->inflight, 0);
	pthread_join(t, NULL);
	if (atomic_load(&cl.done) != 1) {
		fail_msg("client: %s", cl.why);
	}
	reactor_destroy(r);
	free(rd->data);
	free(rd);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Poll the reactor until @fd has the 18-byte greeting (1) or EOF (0). */
static int greeting_or_eof(struct reactor *r, int fd)
{
	uint8_t buf[18];
	size_t got = 0;

	for (int i = 0; i < 100000; i++) {
		ssize_t n;

		assert_true(reactor_poll(r, false) >= 0);
		n = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
		if (n == 0) {
			return 0;
		}
		if (n > 0) {
			got += (size_t)n;
			if (got == sizeof(buf)) {
				return 1;
			}
		}
		usleep(50);
	}
	fail_msg("neither greeting nor EOF");
	return -1;
}

static void test_max_conns(void **state)
{
	struct reactor *r;
	struct ram_dev *rd;
	struct nbd_server *s;
	struct nbd_server_stats st;
	struct nbd_server_opts o = {.max_conns = 1};
	char path[108];
	atomic_int closed = 0;
	int fd1, fd2, fd3;

	assert_int_equal(reactor_create(64, &r), 0);
	rd = ram_new(r);
	sock_path(path, sizeof(path));
	o.unix_path = path;
	assert_int_equal(nbd_server_create(r, &rd->dev, &o, &s), 0);
	fd1 = connect_unix(path);
	assert_int_equal(greeting_or_eof(r, fd1), 1);
	fd2 = connect_unix(path);
	assert_int_equal(greeting_or_eof(r, fd2), 0); /* over the limit */
	close(fd2);
	close(fd1);
	/* The slot frees once the server notices fd1 is gone. */
	for (int i = 0; i < 100; i++) {
		fd3 = connect_unix(path);
		if (greeting_or_eof(r, fd3)) {
			break;
		}
		close(fd3);
		fd3 = -1;
	}
	assert_true(fd3 >= 0);
	nbd_server_get_stats(s, &st);
	assert_true(st.connections >= 2);
	nbd_server_close(s, closed_cb, &closed);
	run_until(r, &closed);
	assert_int_equal(atomic_load(&closed), 1);
	close(fd3);
	reactor_destroy(r);
	free(rd->data);
	free(rd);
}

static void test_create_errors(void **state)
{
	struct reactor *r;
	struct ram_dev *rd;
	struct nbd_server *s;
	struct nbd_server_opts o = {0};

	assert_int_equal(reactor_create(64, &r), 0);
	rd = ram_new(r);
	assert_int_equal(nbd_server_create(r, &rd->dev, &o, &s), -EINVAL);
	o.tcp_addr = "no-port";
	assert_int_equal(nbd_server_create(r, &rd->dev, &o, &s), -EINVAL);
	o.tcp_addr = NULL;
	o.unix_path = "/nonexistent-dir/x.sock";
	assert_true(nbd_server_create(r, &rd->dev, &o, &s) < 0);
	reactor_destroy(r);
	free(rd->data);
	free(rd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipeline_eagain),
		cmocka_unit_test(test_close_waits_for_device),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_create_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

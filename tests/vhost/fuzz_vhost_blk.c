/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the whole backend (vhost_blk.c and below) against a
 * hostile frontend. One real reactor and export for the process; each
 * input is one connection over the real socket.
 *
 * Input: byte 0 selects the opening. Even: the rest is a raw message
 * stream. Odd: the harness first negotiates a working queue 0 (memory
 * table on a memfd, rings at guest addresses 0 / 0x1000 / 0x2000), copies
 * the next 0x3000 input bytes over the start of guest memory (descriptor
 * table, avail ring and all) and kicks; the rest is the message stream.
 * Messages are cut at [12-byte header][payload of the header's size]; the
 * harness attaches descriptors the request calls for (memfds for a memory
 * table, eventfds for kick/call/err, a memfd for SET_INFLIGHT_FD, a socket
 * for SET_BACKEND_REQ_FD) so that the handlers behind the checks run too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/vhost_blk.h"
#include "client/vhost_user.h"
#include "client/vhost_vring.h"
#include "common/log.h"
#include "common/reactor.h"

#define FZ_DEV	(1u << 20)
#define FZ_MEM	(256u << 10)
#define FZ_POOL 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_io {
	struct reactor_defer d;
	blk_io_cb cb;
	void *arg;
	struct fz_io *next;
};

static struct {
	struct reactor *r;
	struct blk_dev dev;
	struct vhost_blk *vb;
	uint8_t *disk;
	struct fz_io pool[FZ_POOL], *free;
	char path[108];
	int memfd;
	uint8_t *mem;
	int sock;
} Z;

static void fz_io_run(struct reactor_defer *d)
{
	struct fz_io *io = container_of(d, struct fz_io, d);

	io->next = Z.free;
	Z.free = io;
	io->cb(io->arg, 0);
}

static int fz_io(blk_io_cb cb, void *arg)
{
	struct fz_io *io = Z.free;

	if (!io) {
		return -EAGAIN;
	}
	Z.free = io->next;
	io->cb = cb;
	io->arg = arg;
	io->d.fn = fz_io_run;
	reactor_defer(Z.r, &io->d);
	return 0;
}

static int fz_rw(bool wr, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb, void *arg)
{
	uint64_t len = 0;

	for (int i = 0; i < n; i++) {
		len += iov[i].iov_len;
	}
	if (n < 1 || n > BLK_DEV_IOV_MAX || blk_dev_check_range(&Z.dev, off, len)) {
		abort(); /* the export let a bad request through */
	}
	for (int i = 0; i < n; i++) {
		if (wr) {
			memcpy(Z.disk + off, iov[i].iov_base, iov[i].iov_len);
		} else {
			memcpy(iov[i].iov_base, Z.disk + off, iov[i].iov_len);
		}
		off += iov[i].iov_len;
	}
	return fz_io(cb, arg);
}

static int fz_readv(struct blk_dev *d, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb,
		    void *arg)
{
	return fz_rw(false, iov, n, off, cb, arg);
}

static int fz_writev(struct blk_dev *d, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb,
		     void *arg)
{
	return fz_rw(true, iov, n, off, cb, arg);
}

static int fz_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	return fz_io(cb, arg);
}

static int fz_zero(struct blk_dev *d, uint64_t off, uint64_t len, blk_io_cb cb, void *arg)
{
	if (blk_dev_check_range(&Z.dev, off, len)) {
		abort();
	}
	memset(Z.disk + off, 0, len);
	return fz_io(cb, arg);
}

static void fz_destroy(struct blk_dev *d)
{
}

static const struct blk_dev_ops fz_ops = {
	.readv = fz_readv,
	.writev = fz_writev,
	.flush = fz_flush,
	.discard = fz_zero,
	.write_zeroes = fz_zero,
	.destroy = fz_destroy,
};

static void fz_cleanup(void)
{
	unlink(Z.path);
}

static void fz_init(void)
{
	struct vhost_blk_opts o = {.num_queues = 2, .allow_uid = (uid_t)-1, .allow_gid = (gid_t)-1};

	klog_set_level(KLOG_FATAL);
	if (reactor_create(256, &Z.r)) {
		abort();
	}
	Z.disk = calloc(1, FZ_DEV);
	Z.dev = (struct blk_dev){.ops = &fz_ops,
				 .size = FZ_DEV,
				 .block_size = BLK_DEV_BLOCK,
				 .queue_depth = FZ_POOL,
				 .serial = "fuzz"};
	for (int i = 0; i < FZ_POOL; i++) {
		Z.pool[i].next = Z.free;
		Z.free = &Z.pool[i];
	}
	snprintf(Z.path, sizeof(Z.path), "/tmp/vh-fuzz-%d.sock", getpid());
	o.socket_path = Z.path;
	if (vhost_blk_create(Z.r, &Z.dev, &o, &Z.vb)) {
		abort();
	}
	atexit(fz_cleanup);
	Z.memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (Z.memfd < 0 || ftruncate(Z.memfd, FZ_MEM)) {
		abort();
	}
	Z.mem = mmap(NULL, FZ_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, Z.memfd, 0);
	if (Z.mem == MAP_FAILED) {
		abort();
	}
}

static void fz_pump(int turns)
{
	for (int i = 0; i < turns; i++) {
		reactor_poll(Z.r, false);
	}
}

static void fz_drain_replies(void)
{
	uint8_t buf[512];
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		size_t a;
	} cbuf;

	for (;;) {
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf.b,
				    .msg_controllen = sizeof(cbuf.b)};

		if (recvmsg(Z.sock, &mh, MSG_DONTWAIT) <= 0) {
			return;
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (int i = 0; i < n; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(fd);
			}
		}
	}
}

/* Send one message with @nfds descriptors; false once the backend hung up. */
static bool fz_send(const void *msg, size_t len, const int *fds, unsigned int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		size_t a;
	} cbuf;
	struct iovec iov = {(void *)msg, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	bool ok;

	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ok = sendmsg(Z.sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len;
	fz_pump(4);
	fz_drain_replies();
	return ok;
}

/* Descriptors a request calls for, made fresh (closed by the caller). */
static unsigned int fz_fds(const struct vhost_user_hdr *h, const uint8_t *p, size_t plen, int *fds)
{
	uint64_t u = 0;
	unsigned int n = 0;

	memcpy(&u, p, plen < 8 ? plen : 8);
	switch (h->request) {
	case VHOST_USER_SET_MEM_TABLE:
		for (n = 0; n < (u & 0xffffffff) && n < VHOST_USER_MAX_REGIONS; n++) {
			fds[n] = dup(Z.memfd);
		}
		return n;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		if (u & VHOST_USER_VRING_NOFD) {
			return 0;
		}
		fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return 1;
	case VHOST_USER_SET_INFLIGHT_FD:
		fds[0] = memfd_create("fuzz-inflight", MFD_CLOEXEC);
		if (ftruncate(fds[0], 64 << 10)) {
			abort();
		}
		return 1;
	case VHOST_USER_SET_BACKEND_REQ_FD: {
		int sp[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)) {
			abort();
		}
		close(sp[0]);
		fds[0] = sp[1];
		return 1;
	}
	default:
		return 0;
	}
}

static bool fz_msg(uint32_t req, const void *payload, uint32_t size, const int *fds,
		   unsigned int nfds)
{
	uint8_t buf[VHOST_USER_HDR_SIZE + 512];
	struct vhost_user_hdr h = {.request = req, .flags = VHOST_USER_VERSION, .size = size};

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, size);
	return fz_send(buf, sizeof(h) + size, fds, nfds);
}

/* A working queue 0 the input's guest memory then plays against. */
static void fz_opening(const uint8_t *guest, size_t glen)
{
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
		     (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX);
	struct vhost_user_mem mem = {.nregions = 1};
	struct vhost_user_vring_state st = {0, 16};
	struct vhost_user_vring_addr addr = {
		.desc_uva = 0x40000000, .avail_uva = 0x40001000, .used_uva = 0x40002000};
	int efd[2];
	uint64_t v = 0, one = 1;

	memset(Z.mem, 0, FZ_MEM);
	memcpy(Z.mem, guest, glen);
	mem.regions[0] = (struct vhost_user_region){.gpa = 0, .size = FZ_MEM, .uva = 0x40000000};
	fz_msg(VHOST_USER_SET_FEATURES, &f, 8, NULL, 0);
	efd[0] = dup(Z.memfd);
	fz_msg(VHOST_USER_SET_MEM_TABLE, &mem, 8 + sizeof(mem.regions[0]), efd, 1);
	close(efd[0]);
	fz_msg(VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0);
	st.num = 0;
	fz_msg(VHOST_USER_SET_VRING_BASE, &st, 8, NULL, 0);
	fz_msg(VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
	efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fz_msg(VHOST_USER_SET_VRING_CALL, &v, 8, &efd[1], 1);
	fz_msg(VHOST_USER_SET_VRING_KICK, &v, 8, &efd[0], 1);
	if (write(efd[0], &one, 8) != 8) {
		abort();
	}
	fz_pump(8);
	close(efd[0]);
	close(efd[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t pos = 1;

	if (!Z.r) {
		fz_init();
	}
	if (size < 1) {
		return 0;
	}
	strcpy(sa.sun_path, Z.path);
	Z.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (Z.sock < 0 || connect(Z.sock, (struct sockaddr *)&sa, sizeof(sa))) {
		abort();
	}
	fz_pump(4);
	if (data[0] & 1) {
		size_t glen = size - 1 < 0x3000 ? size - 1 : 0x3000;

		fz_opening(data + 1, glen);
		pos += glen;
	}
	while (pos + VHOST_USER_HDR_SIZE <= size) {
		struct vhost_user_hdr h;
		int fds[VHOST_USER_MAX_FDS];
		unsigned int nfds;
		size_t plen;
		bool ok;

		memcpy(&h, data + pos, sizeof(h));
		plen = h.size < 512 ? h.size : 512;
		if (plen > size - pos - VHOST_USER_HDR_SIZE) {
			plen = size - pos - VHOST_USER_HDR_SIZE;
		}
		nfds = fz_fds(&h, data + pos + VHOST_USER_HDR_SIZE, plen, fds);
		ok = fz_send(data + pos, VHOST_USER_HDR_SIZE + plen, fds, nfds);
		for (unsigned int i = 0; i < nfds; i++) {
			close(fds[i]);
		}
		pos += VHOST_USER_HDR_SIZE + plen;
		if (!ok) {
			break;
		}
	}
	close(Z.sock);
	fz_pump(16);
	if (getenv("FUZZ_VHOST_STATS")) { /* to see what a corpus reaches */
		struct vhost_blk_stats st;

		vhost_blk_get_stats(Z.vb, &st);
		fprintf(stderr,
			"stats: conn %lu rd %lu wr %lu fl %lu disc %lu wz %lu id %lu bad %lu "
			"proto %lu\n",
			st.connections, st.reads, st.writes, st.flushes, st.discards,
			st.write_zeroes, st.get_ids, st.bad_requests, st.protocol_errors);
	}
	return 0;
}

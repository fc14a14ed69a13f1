/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_blk end to end: an in-process fake frontend speaks vhost-user over
 * a real unix socket to the backend running on a real reactor, with guest
 * memory in a memfd and a RAM blk_dev whose completions the test can hold.
 * Covers negotiation, config, reads/writes/flush/discard/GET_ID through
 * the rings, bad requests, protocol errors, one-frontend-at-a-time,
 * disconnect with requests on the device, inflight resubmission after a
 * reconnect, and close.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/vhost_blk.h"
#include "client/vhost_user.h"
#include "client/vhost_vring.h"
#include "client/virtio_blk.h"
#include "common/reactor.h"

#define DEV_SIZE  (16u << 20)
#define MEM_SIZE  (1u << 20)
#define QSIZE	  16u
#define DESC_GPA  0x0u
#define AVAIL_GPA 0x1000u
#define USED_GPA  0x2000u
#define BUF_GPA	  0x10000u

/* ---- a RAM blk_dev whose completions can be held ---- */

struct t_io {
	struct reactor_defer d;
	blk_io_cb cb;
	void *arg;
	struct t_io *next;
};

struct t_dev {
	struct blk_dev dev;
	struct reactor *r;
	uint8_t *data;
	bool hold;
	struct t_io pool[64], *free, *held;
	unsigned int inflight;
} TD;

static void t_io_run(struct reactor_defer *d)
{
	struct t_io *io = container_of(d, struct t_io, d);
	blk_io_cb cb = io->cb;
	void *arg = io->arg;

	io->next = TD.free;
	TD.free = io;
	TD.inflight--;
	cb(arg, 0);
}

static int t_io_start(blk_io_cb cb, void *arg)
{
	struct t_io *io = TD.free;

	if (!io) {
		return -EAGAIN;
	}
	TD.free = io->next;
	TD.inflight++;
	io->cb = cb;
	io->arg = arg;
	io->d.fn = t_io_run;
	if (TD.hold) {
		io->next = TD.held;
		TD.held = io;
	} else {
		reactor_defer(TD.r, &io->d);
	}
	return 0;
}

static void t_release(void)
{
	while (TD.held) {
		struct t_io *io = TD.held;

		TD.held = io->next;
		reactor_defer(TD.r, &io->d);
	}
}

static int t_rw(bool wr, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb, void *arg)
{
	uint64_t len = 0;

	for (int i = 0; i < n; i++) {
		len += iov[i].iov_len;
	}
	assert_int_equal(blk_dev_check_range(&TD.dev, off, len), 0);
	for (int i = 0; i < n; i++) {
		if (wr) {
			memcpy(TD.data + off, iov[i].iov_base, iov[i].iov_len);
		} else {
			memcpy(iov[i].iov_base, TD.data + off, iov[i].iov_len);
		}
		off += iov[i].iov_len;
	}
	return t_io_start(cb, arg);
}

static int t_readv(struct blk_dev *d, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb,
		   void *arg)
{
	return t_rw(false, iov, n, off, cb, arg);
}

static int t_writev(struct blk_dev *d, const struct iovec *iov, int n, uint64_t off, blk_io_cb cb,
		    void *arg)
{
	return t_rw(true, iov, n, off, cb, arg);
}

static int t_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	return t_io_start(cb, arg);
}

static int t_zero(struct blk_dev *d, uint64_t off, uint64_t len, blk_io_cb cb, void *arg)
{
	assert_int_equal(blk_dev_check_range(&TD.dev, off, len), 0);
	memset(TD.data + off, 0, len);
	return t_io_start(cb, arg);
}

static void t_destroy(struct blk_dev *d)
{
}

static const struct blk_dev_ops t_ops = {
	.readv = t_readv,
	.writev = t_writev,
	.flush = t_flush,
	.discard = t_zero,
	.write_zeroes = t_zero,
	.destroy = t_destroy,
};

/* ---- the fake frontend ---- */

struct t_fe {
	struct reactor *r;
	struct vhost_blk *vb;
	char path[108];
	int sock;
	int memfd;
	uint8_t *mem;
	int kick, call;
	int inflight_fd;
	uint64_t inflight_size;
	struct vhost_vring vr; /* our (driver) view, pointers into mem */
	uint16_t avail_idx, used_seen;
} F;

static void pump(int turns)
{
	for (int i = 0; i < turns; i++) {
		reactor_poll(F.r, false);
		usleep(200);
	}
}

static bool sock_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) > 0;
}

/* Send one message; with @reply, pump the reactor until the reply came. */
static int fe_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
		  unsigned int nfds, void *reply, uint32_t *reply_size, int *reply_fd)
{
	uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct vhost_user_hdr h = {
		.request = req, .flags = VHOST_USER_VERSION | flags, .size = size};
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		size_t a;
	} cbuf;
	struct iovec iov = {buf, VHOST_USER_HDR_SIZE + size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	memcpy(buf, &h, sizeof(h));
	if (size) {
		memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
	}
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
	n = sendmsg(F.sock, &mh, MSG_NOSIGNAL);
	if (n != (ssize_t)iov.iov_len) {
		return -EPIPE;
	}
	if (!reply) {
		pump(5);
		return 0;
	}
	for (int i = 0; i < 2000 && !sock_readable(F.sock); i++) {
		pump(1);
	}
	iov.iov_len = sizeof(buf);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.b;
	mh.msg_controllen = sizeof(cbuf.b);
	n = recvmsg(F.sock, &mh, MSG_DONTWAIT);
	if (n <= 0) {
		return -ECONNRESET;
	}
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.request, req);
	assert_int_equal(h.flags, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);
	assert_int_equal((size_t)n, VHOST_USER_HDR_SIZE + h.size);
	memcpy(reply, buf + VHOST_USER_HDR_SIZE, h.size);
	if (reply_size) {
		*reply_size = h.size;
	}
	if (reply_fd) {
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		*reply_fd = -1;
		if (cm && cm->cmsg_type == SCM_RIGHTS) {
			memcpy(reply_fd, CMSG_DATA(cm), sizeof(int));
		}
	}
	return 0;
}

static uint64_t fe_get_u64(uint32_t req)
{
	uint64_t v = 0;

	assert_int_equal(fe_msg(req, 0, NULL, 0, NULL, 0, &v, NULL, NULL), 0);
	return v;
}

static void fe_set_u64(uint32_t req, uint64_t v)
{
	uint64_t ack = 1;

	assert_int_equal(fe_msg(req, VHOST_USER_NEED_REPLY, &v, 8, NULL, 0, &ack, NULL, NULL), 0);
	assert_int_equal(ack, 0);
}

static void fe_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	strcpy(sa.sun_path, F.path);
	F.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(F.sock >= 0);
	assert_int_equal(connect(F.sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump(5);
}

static bool fe_closed_by_backend(void)
{
	char c;

	for (int i = 0; i < 500 && !sock_readable(F.sock); i++) {
		pump(1);
	}
	/* EOF, or a reset when the backend closed with our bytes unread */
	ssize_t n = recv(F.sock, &c, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Negotiate and start queue 0 (with the inflight region when @inflight). */
static void fe_setup(bool inflight, bool event_idx)
{
	uint64_t f, pf;
	struct vhost_user_mem mem = {.nregions = 1};
	struct vhost_user_vring_state st;
	struct vhost_user_vring_addr addr = {0};
	struct vhost_user_config cfgm = {.size = 60};
	struct vhost_user_config *cfg = &cfgm;
	struct virtio_blk_config bc;
	uint64_t v;

	fe_connect();
	f = fe_get_u64(VHOST_USER_GET_FEATURES);
	assert_true(f & (1ull << VIRTIO_F_VERSION_1));
	assert_true(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_true(f & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(f & (1ull << VIRTIO_BLK_F_RO));
	assert_int_equal(fe_msg(VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0, NULL, NULL, NULL), 0);
	pf = fe_get_u64(VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_true(pf & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	assert_true(pf & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD));
	v = (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
	    (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHOST_USER_PROTOCOL_F_MQ) |
	    (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	assert_int_equal(
		fe_msg(VHOST_USER_SET_PROTOCOL_FEATURES, 0, &v, 8, NULL, 0, NULL, NULL, NULL), 0);
	assert_int_equal(fe_get_u64(VHOST_USER_GET_QUEUE_NUM), 2);
	assert_int_equal(
		fe_msg(VHOST_USER_GET_CONFIG, 0, &cfgm, 12 + 60, NULL, 0, &cfgm, NULL, NULL), 0);
	assert_int_equal(cfgm.size, 60);
	memcpy(&bc, cfg->data, sizeof(bc));
	assert_int_equal(bc.capacity, DEV_SIZE / 512);
	assert_int_equal(bc.blk_size, 4096);
	assert_int_equal(bc.num_queues, 2);
	fe_set_u64(VHOST_USER_SET_FEATURES,
		   (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
			   (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_BLK_F_FLUSH) |
			   (event_idx ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0));
	if (inflight) {
		struct vhost_user_inflight in = {.num_queues = 1, .queue_size = QSIZE};

		if (F.inflight_fd < 0) {
			assert_int_equal(fe_msg(VHOST_USER_GET_INFLIGHT_FD, 0, &in, sizeof(in),
						NULL, 0, &in, NULL, &F.inflight_fd),
					 0);
			assert_true(F.inflight_fd >= 0);
			assert_true(in.mmap_size >= 16 + 16 * QSIZE);
			F.inflight_size = in.mmap_size;
		}
		in.mmap_size = F.inflight_size;
		in.mmap_offset = 0;
		in.num_queues = 1;
		in.queue_size = QSIZE;
		assert_int_equal(fe_msg(VHOST_USER_SET_INFLIGHT_FD, 0, &in, sizeof(in),
					&F.inflight_fd, 1, NULL, NULL, NULL),
				 0);
	}
	mem.regions[0] = (struct vhost_user_region){
		.gpa = 0, .size = MEM_SIZE, .uva = (uintptr_t)F.mem, .mmap_offset = 0};
	v = 1;
	assert_int_equal(fe_msg(VHOST_USER_SET_MEM_TABLE, VHOST_USER_NEED_REPLY, &mem,
				8 + sizeof(mem.regions[0]), &F.memfd, 1, &v, NULL, NULL),
			 0);
	assert_int_equal(v, 0);
	st = (struct vhost_user_vring_state){0, QSIZE};
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_NUM, 0, &st, 8, NULL, 0, NULL, NULL, NULL), 0);
	st = (struct vhost_user_vring_state){0, F.vr.used->idx};
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_BASE, 0, &st, 8, NULL, 0, NULL, NULL, NULL),
			 0);
	addr.desc_uva = (uintptr_t)F.mem + DESC_GPA;
	addr.avail_uva = (uintptr_t)F.mem + AVAIL_GPA;
	addr.used_uva = (uintptr_t)F.mem + USED_GPA;
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_ADDR, 0, &addr, sizeof(addr), NULL, 0, NULL,
				NULL, NULL),
			 0);
	v = 0;
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_CALL, 0, &v, 8, &F.call, 1, NULL, NULL, NULL),
			 0);
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_KICK, 0, &v, 8, &F.kick, 1, NULL, NULL, NULL),
			 0);
	st = (struct vhost_user_vring_state){0, 1};
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_ENABLE, 0, &st, 8, NULL, 0, NULL, NULL, NULL),
			 0);
}

static void fe_disconnect(void)
{
	close(F.sock);
	F.sock = -1;
	pump(10);
}

/* Build a request in descriptors 3*slot.. and make it available. */
static uint8_t *fe_submit(unsigned int slot, uint32_t type, uint64_t sector, uint32_t len,
			  bool data_in, uint8_t fill)
{
	uint16_t h = (uint16_t)(slot * 3);
	uint64_t base = BUF_GPA + slot * 0x4000;
	struct virtio_blk_outhdr *hdr = (void *)(F.mem + base);
	uint8_t *data = F.mem + base + 0x1000;
	uint8_t *status = F.mem + base + 0x3000;
	struct vring_desc *d = F.vr.desc;

	*hdr = (struct virtio_blk_outhdr){.type = type, .sector = sector};
	memset(data, fill, len);
	*status = 0xff;
	d[h] = (struct vring_desc){base, 16, VRING_DESC_F_NEXT, (uint16_t)(h + 1)};
	if (len) {
		d[h + 1] = (struct vring_desc){
			base + 0x1000, len, VRING_DESC_F_NEXT | (data_in ? VRING_DESC_F_WRITE : 0),
			(uint16_t)(h + 2)};
		d[h + 2] = (struct vring_desc){base + 0x3000, 1, VRING_DESC_F_WRITE, 0};
	} else {
		d[h + 1] = (struct vring_desc){base + 0x3000, 1, VRING_DESC_F_WRITE, 0};
	}
	F.vr.avail->ring[F.avail_idx % QSIZE] = h;
	__atomic_store_n(&F.vr.avail->idx, ++F.avail_idx, __ATOMIC_RELEASE);
	return status;
}

static void fe_kick(void)
{
	uint64_t one = 1;

	assert_int_equal(write(F.kick, &one, 8), 8);
}

/* Pump until @n more used entries appeared; returns how many did. */
static int fe_wait_used(int n)
{
	for (int i = 0; i < 2000; i++) {
		uint16_t u = __atomic_load_n(&F.vr.used->idx, __ATOMIC_ACQUIRE);

		if ((uint16_t)(u - F.used_seen) >= n) {
			F.used_seen = (uint16_t)(F.used_seen + n);
			return n;
		}
		pump(1);
	}
	return (uint16_t)(__atomic_load_n(&F.vr.used->idx, __ATOMIC_ACQUIRE) - F.used_seen);
}

static void fe_reset_rings(void)
{
	memset(F.mem, 0, 0x3000 + VRING_USED_SIZE(QSIZE));
	F.avail_idx = 0;
	F.used_seen = 0;
}

static bool closed_flag;

static void on_closed(void *arg)
{
	closed_flag = true;
}

static int setup(void **state)
{
	struct vhost_blk_opts o = {.num_queues = 2, .allow_uid = (uid_t)-1, .allow_gid = (gid_t)-1};
	int rc;

	memset(&F, 0, sizeof(F));
	memset(&TD, 0, sizeof(TD));
	rc = reactor_create(256, &F.r);
	if (rc) {
		fprintf(stderr, "no io_uring: %s\n", strerror(-rc));
		exit(77);
	}
	TD.r = F.r;
	TD.data = calloc(1, DEV_SIZE);
	TD.dev = (struct blk_dev){.ops = &t_ops,
				  .size = DEV_SIZE,
				  .block_size = BLK_DEV_BLOCK,
				  .queue_depth = 64,
				  .serial = "test-serial"};
	for (int i = 0; i < 64; i++) {
		TD.pool[i].next = TD.free;
		TD.free = &TD.pool[i];
	}
	snprintf(F.path, sizeof(F.path), "/tmp/vhtest-%d.sock", getpid());
	o.socket_path = F.path;
	assert_int_equal(vhost_blk_create(F.r, &TD.dev, &o, &F.vb), 0);
	F.memfd = memfd_create("guest", MFD_CLOEXEC);
	assert_int_equal(ftruncate(F.memfd, MEM_SIZE), 0);
	F.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, F.memfd, 0);
	assert_true(F.mem != MAP_FAILED);
	F.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	F.call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	F.inflight_fd = -1;
	F.vr.num = QSIZE;
	F.vr.desc = (void *)(F.mem + DESC_GPA);
	F.vr.avail = (void *)(F.mem + AVAIL_GPA);
	F.vr.used = (void *)(F.mem + USED_GPA);
	F.sock = -1;
	return 0;
}

static int teardown(void **state)
{
	if (F.sock >= 0) {
		close(F.sock);
	}
	closed_flag = false;
	vhost_blk_close(F.vb, on_closed, NULL);
	for (int i = 0; i < 500 && !closed_flag; i++) {
		t_release();
		pump(1);
	}
	assert_true(closed_flag);
	assert_int_equal(access(F.path, F_OK), -1);
	munmap(F.mem, MEM_SIZE);
	close(F.memfd);
	close(F.kick);
	close(F.call);
	if (F.inflight_fd >= 0) {
		close(F.inflight_fd);
	}
	reactor_destroy(F.r);
	free(TD.data);
	return 0;
}

static void test_io(void **state)
{
	struct vhost_blk_stats st;
	uint8_t *status;
	uint64_t calls = 0;

	fe_reset_rings();
	fe_setup(false, false);
	status = fe_submit(0, VIRTIO_BLK_T_OUT, 16, 8192, false, 0xab);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_OK);
	assert_int_equal(TD.data[8192], 0xab);
	assert_int_equal(TD.data[8192 + 8191], 0xab);
	assert_int_equal(TD.data[8192 + 8192], 0);
	pump(5); /* the call write goes out on the next loop turns */
	assert_int_equal(read(F.call, &calls, 8), 8);
	assert_true(calls >= 1);
	/* read it back, two at once with a flush */
	status = fe_submit(1, VIRTIO_BLK_T_IN, 16, 4096, true, 0);
	fe_submit(2, VIRTIO_BLK_T_FLUSH, 0, 0, false, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(2), 2);
	assert_int_equal(*status, VIRTIO_BLK_S_OK);
	assert_int_equal(F.mem[BUF_GPA + 0x4000 + 0x1000], 0xab);
	/* bad requests: unaligned, past the end, unknown type */
	status = fe_submit(3, VIRTIO_BLK_T_IN, 3, 4096, true, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_IOERR);
	status = fe_submit(3, VIRTIO_BLK_T_OUT, DEV_SIZE / 512, 4096, false, 1);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_IOERR);
	status = fe_submit(3, 99, 0, 4096, true, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_UNSUPP);
	/* GET_ID and discard */
	status = fe_submit(0, VIRTIO_BLK_T_GET_ID, 0, 20, true, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_OK);
	assert_memory_equal(F.mem + BUF_GPA + 0x1000, "test-serial", 11);
	vhost_blk_get_stats(F.vb, &st);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.get_ids, 1);
	assert_int_equal(st.bad_requests, 3);
	assert_int_equal(st.connections, 1);
	assert_int_equal(st.protocol_errors, 0);
	/* a resize reaches the frontend on the backend channel */
	{
		int sp[2];
		struct vhost_user_hdr h;
		uint64_t ack = 1;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
		assert_int_equal(fe_msg(VHOST_USER_SET_BACKEND_REQ_FD, VHOST_USER_NEED_REPLY, NULL,
					0, &sp[1], 1, &ack, NULL, NULL),
				 0);
		assert_int_equal(ack, 0);
		close(sp[1]);
		TD.dev.size = DEV_SIZE - 4096;
		vhost_blk_resize(F.vb);
		pump(5);
		assert_int_equal(recv(sp[0], &h, sizeof(h), MSG_DONTWAIT), sizeof(h));
		assert_int_equal(h.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
		assert_int_equal(h.flags, VHOST_USER_VERSION);
		close(sp[0]);
		/* and a read of the old last block is refused now */
		status = fe_submit(1, VIRTIO_BLK_T_IN, DEV_SIZE / 512 - 8, 4096, true, 0);
		fe_kick();
		assert_int_equal(fe_wait_used(1), 1);
		assert_int_equal(*status, VIRTIO_BLK_S_IOERR);
		TD.dev.size = DEV_SIZE;
		vhost_blk_resize(F.vb);
	}
	/* SET_CONFIG is refused through REPLY_ACK, the connection stays */
	{
		struct vhost_user_config cfg = {.offset = 32, .size = 1};
		uint64_t ack = 0;

		assert_int_equal(fe_msg(VHOST_USER_SET_CONFIG, VHOST_USER_NEED_REPLY, &cfg, 13,
					NULL, 0, &ack, NULL, NULL),
				 0);
		assert_int_equal(ack, 1);
	}
	/* GET_VRING_BASE stops the ring and says where it stopped */
	{
		struct vhost_user_vring_state s = {0, 0};

		assert_int_equal(
			fe_msg(VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0, &s, NULL, NULL), 0);
		assert_int_equal(s.num, F.avail_idx);
	}
	fe_disconnect();
}

/* A chain the backend cannot answer with a status byte (a descriptor
 * outside guest memory) or an avail ring that jumps: the connection is
 * closed, nothing is pushed, and the next frontend is served. */
static void test_bad_ring_closes(void **state)
{
	struct vhost_blk_stats st;
	uint16_t used_before;
	uint8_t *status;

	fe_reset_rings();
	fe_setup(false, false);
	fe_submit(4, VIRTIO_BLK_T_IN, 0, 4096, true, 0);
	F.vr.desc[13].addr = MEM_SIZE;
	used_before = F.vr.used->idx;
	fe_kick();
	assert_true(fe_closed_by_backend());
	assert_int_equal(F.vr.used->idx, used_before);
	close(F.sock);
	F.sock = -1;
	pump(10);
	/* an avail index more than a ring ahead of the used index */
	fe_reset_rings();
	fe_setup(false, false);
	status = fe_submit(0, VIRTIO_BLK_T_IN, 0, 4096, true, 0);
	__atomic_store_n(&F.vr.avail->idx, (uint16_t)(F.avail_idx + QSIZE + 1), __ATOMIC_RELEASE);
	fe_kick();
	assert_true(fe_closed_by_backend());
	assert_int_equal(*status, 0xff);
	close(F.sock);
	F.sock = -1;
	pump(10);
	/* a good frontend afterwards */
	fe_reset_rings();
	fe_setup(false, false);
	status = fe_submit(0, VIRTIO_BLK_T_IN, 0, 4096, true, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*status, VIRTIO_BLK_S_OK);
	fe_disconnect();
	vhost_blk_get_stats(F.vb, &st);
	assert_int_equal(st.protocol_errors, 2);
	assert_int_equal(st.bad_requests, 2);
	assert_int_equal(st.connections, 3);
}

static void test_event_idx(void **state)
{
	uint8_t *status;

	fe_reset_rings();
	fe_setup(false, true);
	for (int round = 0; round < 3; round++) {
		status = fe_submit(round, VIRTIO_BLK_T_OUT, round * 8, 4096, false, (uint8_t)round);
		fe_kick();
		assert_int_equal(fe_wait_used(1), 1);
		assert_int_equal(*status, VIRTIO_BLK_S_OK);
		/* the backend asked for a kick at the next entry */
		assert_int_equal(*(uint16_t *)&F.vr.used->ring[QSIZE], F.avail_idx);
	}
	fe_disconnect();
}

static void test_protocol_errors(void **state)
{
	struct vhost_blk_stats st;
	uint64_t v = 0;
	int sock2;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	fe_connect();
	/* a second frontend is turned away while one is connected */
	strcpy(sa.sun_path, F.path);
	sock2 = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(sock2, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump(10);
	{
		char c;

		assert_int_equal(recv(sock2, &c, 1, MSG_DONTWAIT), 0);
	}
	close(sock2);
	/* an unknown request closes the connection */
	assert_int_equal(fe_msg(77, 0, &v, 8, NULL, 0, NULL, NULL, NULL), 0);
	assert_true(fe_closed_by_backend());
	close(F.sock);
	/* so does a stray descriptor, a wrong size, a bad version */
	fe_connect();
	assert_int_equal(fe_msg(VHOST_USER_GET_FEATURES, 0, NULL, 0, &F.kick, 1, NULL, NULL, NULL),
			 0);
	assert_true(fe_closed_by_backend());
	close(F.sock);
	fe_connect();
	assert_int_equal(fe_msg(VHOST_USER_SET_FEATURES, 0, &v, 4, NULL, 0, NULL, NULL, NULL), 0);
	assert_true(fe_closed_by_backend());
	close(F.sock);
	fe_connect();
	v = 1ull << 63; /* a feature we never offered */
	assert_int_equal(fe_msg(VHOST_USER_SET_FEATURES, 0, &v, 8, NULL, 0, NULL, NULL, NULL), 0);
	assert_true(fe_closed_by_backend());
	close(F.sock);
	/* a memory region larger than its file */
	fe_connect();
	{
		struct vhost_user_mem mem = {.nregions = 1};

		mem.regions[0] = (struct vhost_user_region){
			.gpa = 0, .size = 2 * MEM_SIZE, .uva = 0x1000000};
		assert_int_equal(fe_msg(VHOST_USER_SET_MEM_TABLE, 0, &mem,
					8 + sizeof(mem.regions[0]), &F.memfd, 1, NULL, NULL, NULL),
				 0);
	}
	assert_true(fe_closed_by_backend());
	close(F.sock);
	F.sock = -1;
	vhost_blk_get_stats(F.vb, &st);
	assert_int_equal(st.protocol_errors, 5);
	assert_int_equal(st.connections, 5);
}

static void test_disconnect_and_resubmit(void **state)
{
	struct vhost_blk_stats st;
	uint8_t *s1, *s2;

	fe_reset_rings();
	fe_setup(true, false);
	/* two writes reach the device, which holds them */
	TD.hold = true;
	s1 = fe_submit(0, VIRTIO_BLK_T_OUT, 64, 4096, false, 0x11);
	s2 = fe_submit(1, VIRTIO_BLK_T_OUT, 72, 4096, false, 0x22);
	fe_kick();
	pump(20);
	assert_int_equal(TD.inflight, 2);
	/* the frontend goes away; the device finishes; nothing reaches the ring */
	fe_disconnect();
	TD.hold = false;
	t_release();
	pump(20);
	assert_int_equal(TD.inflight, 0);
	assert_int_equal(F.vr.used->idx, 0);
	assert_int_equal(*s1, 0xff);
	/* the guest rewrote nothing; a new frontend brings the inflight fd back */
	memset(TD.data + 64 * 512, 0, 8192);
	fe_setup(true, false);
	assert_int_equal(fe_wait_used(2), 2);
	assert_int_equal(*s1, VIRTIO_BLK_S_OK);
	assert_int_equal(*s2, VIRTIO_BLK_S_OK);
	assert_int_equal(TD.data[64 * 512], 0x11);
	assert_int_equal(TD.data[72 * 512], 0x22);
	/* in submission order */
	assert_int_equal(F.vr.used->ring[0].id, 0);
	assert_int_equal(F.vr.used->ring[1].id, 3);
	vhost_blk_get_stats(F.vb, &st);
	assert_int_equal(st.resubmitted, 2);
	/* and new requests continue after them */
	s1 = fe_submit(2, VIRTIO_BLK_T_IN, 64, 4096, true, 0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	assert_int_equal(*s1, VIRTIO_BLK_S_OK);
	assert_int_equal(F.mem[BUF_GPA + 2 * 0x4000 + 0x1000], 0x11);
	fe_disconnect();
}

/* The device at its depth (-EAGAIN): requests wait and run in order. */
static void test_device_full(void **state)
{
	struct t_io *spare = NULL;
	uint8_t *st[5];

	/* leave the device two slots */
	for (int i = 0; i < 62; i++) {
		struct t_io *io = TD.free;

		TD.free = io->next;
		io->next = spare;
		spare = io;
	}
	fe_reset_rings();
	fe_setup(false, false);
	for (unsigned int i = 0; i < 5; i++) {
		st[i] = fe_submit(i, VIRTIO_BLK_T_OUT, 8 * i, 4096, false, (uint8_t)(0x40 + i));
	}
	fe_kick();
	assert_int_equal(fe_wait_used(5), 5);
	for (unsigned int i = 0; i < 5; i++) {
		assert_int_equal(*st[i], VIRTIO_BLK_S_OK);
		assert_int_equal(TD.data[4096 * i], 0x40 + i);
		assert_int_equal(F.vr.used->ring[i].id, 3 * i); /* device order kept */
	}
	while (spare) {
		struct t_io *io = spare;

		spare = io->next;
		io->next = TD.free;
		TD.free = io;
	}
	fe_disconnect();
}

/* Queue 1 next to queue 0: both take requests, each answers on its own
 * ring and call fd. */
static void test_two_queues(void **state)
{
	struct vhost_user_vring_state st = {1, QSIZE};
	struct vhost_user_vring_addr addr = {.index = 1};
	struct vhost_vring q0 = F.vr;
	uint16_t avail0, used0;
	int kick1 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int call1 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t v = 1, calls = 0;
	uint8_t *s0, *s1;

	fe_reset_rings();
	memset(F.mem + 0x3000, 0, 0x2000);
	fe_setup(false, false);
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_NUM, 0, &st, 8, NULL, 0, NULL, NULL, NULL), 0);
	st.num = 0;
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_BASE, 0, &st, 8, NULL, 0, NULL, NULL, NULL),
			 0);
	addr.desc_uva = (uintptr_t)F.mem + 0x3000;
	addr.avail_uva = (uintptr_t)F.mem + 0x3800;
	addr.used_uva = (uintptr_t)F.mem + 0x4000;
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_ADDR, 0, &addr, sizeof(addr), NULL, 0, NULL,
				NULL, NULL),
			 0);
	/* kick before call, as QEMU does */
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_KICK, 0, &v, 8, &kick1, 1, NULL, NULL, NULL),
			 0);
	assert_int_equal(fe_msg(VHOST_USER_SET_VRING_CALL, 0, &v, 8, &call1, 1, NULL, NULL, NULL),
			 0);
	/* one request on queue 0 */
	s0 = fe_submit(0, VIRTIO_BLK_T_OUT, 0, 4096, false, 0xa0);
	fe_kick();
	assert_int_equal(fe_wait_used(1), 1);
	avail0 = F.avail_idx;
	used0 = F.used_seen;
	/* and one on queue 1, through its own rings */
	F.vr.desc = (void *)(F.mem + 0x3000);
	F.vr.avail = (void *)(F.mem + 0x3800);
	F.vr.used = (void *)(F.mem + 0x4000);
	F.avail_idx = 0;
	F.used_seen = 0;
	pump(5);
	assert_int_equal(read(call1, &calls, 8), 8); /* the new call fd got its first interrupt */
	s1 = fe_submit(1, VIRTIO_BLK_T_OUT, 8, 4096, false, 0xa1);
	assert_int_equal(write(kick1, &v, 8), 8);
	assert_int_equal(fe_wait_used(1), 1);
	pump(5);
	assert_int_equal(read(call1, &calls, 8), 8);
	assert_int_equal(*s0, VIRTIO_BLK_S_OK);
	assert_int_equal(*s1, VIRTIO_BLK_S_OK);
	assert_int_equal(TD.data[0], 0xa0);
	assert_int_equal(TD.data[4096], 0xa1);
	assert_int_equal(q0.used->idx, used0); /* queue 0's ring untouched by queue 1 */
	assert_int_equal(q0.avail->idx, avail0);
	F.vr = q0;
	close(kick1);
	close(call1);
	fe_disconnect();
}

/* GET_VRING_BASE waits for a request the device holds; the frontend
 * hangs up meanwhile: the backend notices without reading, and the next
 * frontend gets in before the device lets go. */
static void test_hangup_while_draining(void **state)
{
	struct vhost_user_vring_state s = {0, 0};
	uint8_t *st;

	fe_reset_rings();
	fe_setup(false, false);
	TD.hold = true;
	st = fe_submit(0, VIRTIO_BLK_T_OUT, 0, 4096, false, 7);
	fe_kick();
	pump(20);
	assert_int_equal(TD.inflight, 1);
	assert_int_equal(fe_msg(VHOST_USER_GET_VRING_BASE, 0, &s, 8, NULL, 0, NULL, NULL, NULL), 0);
	pump(10);
	assert_false(sock_readable(F.sock)); /* no reply while the request runs */
	fe_disconnect();
	fe_connect();
	assert_true(fe_get_u64(VHOST_USER_GET_FEATURES) & (1ull << VIRTIO_F_VERSION_1));
	TD.hold = false;
	t_release();
	pump(20);
	assert_int_equal(*st, 0xff); /* the old ring heard nothing */
	fe_disconnect();
}

/* A child as uid/gid 65534 connects and asks GET_FEATURES; 0 when the
 * backend answered, 1 when it closed the connection. */
static int peer_child(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vhost_user_hdr h = {.request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION};
	struct pollfd p;
	char buf[64];
	int fd;

	if (setgid(65534) || setuid(65534)) {
		return 2;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		return 3;
	}
	if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h)) {
		return 1; /* already closed on us */
	}
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 15000) != 1) {
		return 4;
	}
	return recv(fd, buf, sizeof(buf), 0) > 0 ? 0 : 1;
}

static int peer_try(const char *path)
{
	pid_t pid = fork();
	int st = -1;

	assert_true(pid >= 0);
	if (!pid) {
		_exit(peer_child(path));
	}
	/* wall time, not loop turns: the child competes for the CPU */
	for (uint64_t end = reactor_now_ns() + 20000000000ull; reactor_now_ns() < end;) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			break;
		}
		pump(1);
	}
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_peer_credentials(void **state)
{
	struct vhost_blk_opts o = {.num_queues = 1, .allow_uid = (uid_t)-1, .allow_gid = (gid_t)-1};
	struct vhost_blk *vb2;
	struct stat sb;
	char path[108];

	if (geteuid() != 0) {
		fail_msg("test_peer_credentials needs root (it switches a child to uid 65534)");
	}
	/* the socket is created 0660 */
	assert_int_equal(stat(F.path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0660);
	/* opened up for the test: refused by SO_PEERCRED, not by the mode */
	assert_int_equal(chmod(F.path, 0666), 0);
	assert_int_equal(peer_try(F.path), 1);
	/* allowed by uid, then by gid */
	snprintf(path, sizeof(path), "/tmp/vhtest-%d-2.sock", getpid());
	o.socket_path = path;
	o.allow_uid = 65534;
	assert_int_equal(vhost_blk_create(F.r, &TD.dev, &o, &vb2), 0);
	/* the socket file is the allowed user's, still 0660: it can connect */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_uid, 65534);
	assert_int_equal(sb.st_mode & 0777, 0660);
	assert_int_equal(peer_try(path), 0);
	closed_flag = false;
	vhost_blk_close(vb2, on_closed, NULL);
	for (int i = 0; i < 500 && !closed_flag; i++) {
		pump(1);
	}
	assert_true(closed_flag);
	o.allow_uid = (uid_t)-1;
	o.allow_gid = 65534;
	assert_int_equal(vhost_blk_create(F.r, &TD.dev, &o, &vb2), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_gid, 65534);
	assert_int_equal(sb.st_uid, geteuid());
	assert_int_equal(peer_try(path), 0);
	closed_flag = false;
	vhost_blk_close(vb2, on_closed, NULL);
	for (int i = 0; i < 500 && !closed_flag; i++) {
		pump(1);
	}
	assert_true(closed_flag);
	/* bad options */
	o.socket_path = NULL;
	assert_int_equal(vhost_blk_create(F.r, &TD.dev, &o, &vb2), -EINVAL);
	o.socket_path = path;
	o.num_queues = VHOST_BLK_MAX_QUEUES + 1;
	assert_int_equal(vhost_blk_create(F.r, &TD.dev, &o, &vb2), -EINVAL);
}

static void test_close_with_requests(void **state)
{
	fe_reset_rings();
	fe_setup(false, false);
	TD.hold = true;
	fe_submit(0, VIRTIO_BLK_T_OUT, 0, 4096, false, 1);
	fe_kick();
	pump(20);
	assert_int_equal(TD.inflight, 1);
	TD.hold = false;
	/* teardown closes with the request on the device and releases it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ring_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_and_resubmit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_while_draining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_requests, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

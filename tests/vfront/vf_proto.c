/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vf_proto: the frontend side of the vhost-user protocol and the guest
 * memory it announces. Blocking I/O on the socket with poll() timeouts: a
 * backend that stops answering is reported as -ETIMEDOUT, never a hang.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/vfront/vf.h"

#define VF_MEM_ALIGN (2u << 20)

uint64_t vf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- guest memory ---- */

int vf_mem_init(struct vf_mem *m, uint64_t size, unsigned int nregions)
{
	uint64_t half;
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (size == 0 || size % VF_MEM_ALIGN || nregions < 1 || nregions > 2) {
		return -EINVAL;
	}
	m->fd = memfd_create("keel-vfront-guest", MFD_CLOEXEC);
	if (m->fd < 0) {
		return -errno;
	}
	if (ftruncate(m->fd, (off_t)size) < 0) {
		ret = -errno;
		goto out_close;
	}
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->base == MAP_FAILED) {
		ret = -errno;
		m->base = NULL;
		goto out_close;
	}
	m->size = size;
	m->nregions = nregions;
	half = nregions == 2 ? size / 2 : size;
	m->region[0] = (struct vf_mem_region){
		.gpa = 0, .size = half, .uaddr = (uintptr_t)m->base, .mmap_offset = 0};
	if (nregions == 2) {
		m->region[1] = (struct vf_mem_region){.gpa = VF_MEM_GPA_HIGH,
						      .size = size - half,
						      .uaddr = (uintptr_t)m->base + half,
						      .mmap_offset = half};
	}
	/* Keep the first page of region 0 unused: guest-physical 0 stays a
	 * valid address nobody hands out, so a NULL-ish descriptor is caught
	 * as "wrong data" rather than aliasing a ring. */
	m->next_free[0] = 4096;
	return 0;

out_close:
	close(m->fd);
	m->fd = -1;
	return ret;
}

void vf_mem_destroy(struct vf_mem *m)
{
	if (m->base) {
		munmap(m->base, m->size);
	}
	if (m->fd >= 0) {
		close(m->fd);
	}
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void *vf_mem_alloc(struct vf_mem *m, unsigned int region, uint64_t len, uint64_t align)
{
	struct vf_mem_region *r;
	uint64_t off;
	uint8_t *p;

	region %= m->nregions;
	r = &m->region[region];
	off = (m->next_free[region] + align - 1) & ~(align - 1);
	if (off > r->size || len > r->size - off) {
		return NULL;
	}
	m->next_free[region] = off + len;
	p = (uint8_t *)(uintptr_t)r->uaddr + off;
	memset(p, 0, len);
	return p;
}

uint64_t vf_mem_gpa(const struct vf_mem *m, const void *p)
{
	uintptr_t u = (uintptr_t)p;

	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vf_mem_region *r = &m->region[i];

		if (u >= r->uaddr && u - r->uaddr < r->size) {
			return r->gpa + (u - r->uaddr);
		}
	}
	/* Only ever called with our own allocations. */
	fprintf(stderr, "keel-vfront: internal error: %p is not guest memory\n", p);
	abort();
}

void *vf_mem_ptr(const struct vf_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vf_mem_region *r = &m->region[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa)) {
			return (uint8_t *)(uintptr_t)r->uaddr + (gpa - r->gpa);
		}
	}
	return NULL;
}

/* ---- messages ---- */

static const char *const vf_req_names[] = {
	[VF_GET_FEATURES] = "GET_FEATURES",
	[VF_SET_FEATURES] = "SET_FEATURES",
	[VF_SET_OWNER] = "SET_OWNER",
	[VF_RESET_OWNER] = "RESET_OWNER",
	[VF_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VF_SET_VRING_NUM] = "SET_VRING_NUM",
	[VF_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VF_SET_VRING_BASE] = "SET_VRING_BASE",
	[VF_GET_VRING_BASE] = "GET_VRING_BASE",
	[VF_SET_VRING_KICK] = "SET_VRING_KICK",
	[VF_SET_VRING_CALL] = "SET_VRING_CALL",
	[VF_SET_VRING_ERR] = "SET_VRING_ERR",
	[VF_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VF_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VF_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VF_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VF_GET_CONFIG] = "GET_CONFIG",
	[VF_SET_CONFIG] = "SET_CONFIG",
	[VF_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VF_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
	[VF_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
};

const char *vf_req_name(uint32_t request)
{
	if (request < sizeof(vf_req_names) / sizeof(vf_req_names[0]) && vf_req_names[request]) {
		return vf_req_names[request];
	}
	return "UNKNOWN";
}

int vf_msg_send_raw(struct vf_dev *d, uint32_t request, uint32_t flags, uint32_t size,
		    const void *payload, uint32_t len, const int *fds, unsigned int nfds)
{
	struct vf_msg_hdr hdr = {.request = request, .flags = flags, .size = size};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VF_MAX_FDS)];
	} cmsg_buf;
	struct iovec iov[2] = {
		{.iov_base = &hdr, .iov_len = sizeof(hdr)},
		{.iov_base = (void *)payload, .iov_len = len},
	};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	size_t total = sizeof(hdr) + len;
	ssize_t n;

	if (nfds > VF_MAX_FDS) {
		return -EINVAL;
	}
	if (nfds) {
		struct cmsghdr *c;

		memset(&cmsg_buf, 0, sizeof(cmsg_buf));
		msg.msg_control = cmsg_buf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(d->sock, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return errno == EPIPE ? -ECONNRESET : -errno;
	}
	/* Unix stream sockets take a message this small whole; a short send
	 * means the peer is going away. */
	if ((size_t)n != total) {
		return -ECONNRESET;
	}
	return 0;
}

/* Read exactly @len bytes, waiting at most until @deadline_ns. The first
 * read may carry descriptors (the header's ancillary data). */
static int vf_read_full(struct vf_dev *d, void *buf, size_t len, uint64_t deadline_ns, int *fd)
{
	size_t got = 0;

	while (got < len) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * VF_MAX_FDS)];
		} cmsg_buf;
		struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		struct pollfd pfd = {.fd = d->sock, .events = POLLIN};
		uint64_t now = vf_now_ns();
		ssize_t n;
		int ret;

		if (now >= deadline_ns) {
			return -ETIMEDOUT;
		}
		ret = poll(&pfd, 1, (int)((deadline_ns - now + 999999) / 1000000));
		if (ret < 0 && errno == EINTR) {
			continue;
		}
		if (ret < 0) {
			return -errno;
		}
		if (ret == 0) {
			return -ETIMEDOUT;
		}
		msg.msg_control = cmsg_buf.buf;
		msg.msg_controllen = sizeof(cmsg_buf.buf);
		n = recvmsg(d->sock, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (n < 0) {
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		}
		if (n == 0) {
			return -ECONNRESET;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			size_t nfds;
			int fds[VF_MAX_FDS];

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
				continue;
			}
			nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
			for (size_t i = 0; i < nfds; i++) {
				if (fd && *fd < 0) {
					*fd = fds[i];
				} else {
					close(fds[i]);
				}
			}
		}
		got += (size_t)n;
	}
	return 0;
}

int vf_msg_recv_reply(struct vf_dev *d, uint32_t request, void *payload, uint32_t cap,
		      uint32_t *len, int *fd)
{
	uint64_t deadline = vf_now_ns() + (uint64_t)d->timeout_ms * 1000000ull;
	struct vf_msg_hdr hdr;
	uint8_t discard[VF_MAX_MSG_PAYLOAD];
	int got_fd = -1;
	int ret;

	if (fd) {
		*fd = -1;
	}
	ret = vf_read_full(d, &hdr, sizeof(hdr), deadline, &got_fd);
	if (ret) {
		goto out_close_fd;
	}
	if (hdr.request != request || !(hdr.flags & VF_FLAG_REPLY) ||
	    (hdr.flags & VF_FLAG_VERSION_MASK) != VF_USER_VERSION) {
		fprintf(stderr, "keel-vfront: bad reply to %s: request %u flags %#x\n",
			vf_req_name(request), hdr.request, hdr.flags);
		ret = -EPROTO;
		goto out_close_fd;
	}
	if (hdr.size > VF_MAX_MSG_PAYLOAD) {
		fprintf(stderr, "keel-vfront: reply to %s too large (%u bytes)\n",
			vf_req_name(request), hdr.size);
		ret = -EPROTO;
		goto out_close_fd;
	}
	ret = vf_read_full(d, hdr.size <= cap ? payload : discard, hdr.size, deadline, &got_fd);
	if (ret) {
		goto out_close_fd;
	}
	if (hdr.size > cap) {
		fprintf(stderr, "keel-vfront: reply to %s has %u bytes, expected at most %u\n",
			vf_req_name(request), hdr.size, cap);
		ret = -EPROTO;
		goto out_close_fd;
	}
	if (len) {
		*len = hdr.size;
	}
	if (fd) {
		*fd = got_fd;
		got_fd = -1;
	}
	ret = 0;
out_close_fd:
	if (got_fd >= 0) {
		close(got_fd);
	}
	return ret;
}

int vf_msg_get_u64(struct vf_dev *d, uint32_t request, uint64_t *val)
{
	uint32_t len;
	int ret;

	ret = vf_msg_send_raw(d, request, VF_USER_VERSION, 0, NULL, 0, NULL, 0);
	if (ret) {
		return ret;
	}
	ret = vf_msg_recv_reply(d, request, val, sizeof(*val), &len, NULL);
	if (ret) {
		return ret;
	}
	if (len != sizeof(*val)) {
		fprintf(stderr, "keel-vfront: reply to %s has %u bytes, expected 8\n",
			vf_req_name(request), len);
		return -EPROTO;
	}
	return 0;
}

int vf_msg_set(struct vf_dev *d, uint32_t request, const void *payload, uint32_t len,
	       const int *fds, unsigned int nfds)
{
	bool ack = vf_has_pf(d, VF_PF_REPLY_ACK);
	uint64_t status;
	uint32_t got;
	int ret;

	ret = vf_msg_send_raw(d, request, VF_USER_VERSION | (ack ? VF_FLAG_NEED_REPLY : 0), len,
			      payload, len, fds, nfds);
	if (ret || !ack) {
		return ret;
	}
	ret = vf_msg_recv_reply(d, request, &status, sizeof(status), &got, NULL);
	if (ret) {
		return ret;
	}
	if (got != sizeof(status)) {
		fprintf(stderr, "keel-vfront: ack for %s has %u bytes\n", vf_req_name(request),
			got);
		return -EPROTO;
	}
	return status ? -EREMOTEIO : 0;
}

bool vf_dev_alive(struct vf_dev *d, int wait_ms)
{
	uint64_t deadline = vf_now_ns() + (uint64_t)wait_ms * 1000000ull;

	for (;;) {
		struct pollfd pfd = {.fd = d->sock, .events = POLLIN | POLLRDHUP};
		uint64_t now = vf_now_ns();
		char c;
		ssize_t n;
		int ret;

		if (d->sock < 0) {
			return false;
		}
		ret = poll(&pfd, 1, now >= deadline ? 0 : (int)((deadline - now) / 1000000));
		if (ret < 0 && errno == EINTR) {
			continue;
		}
		if (ret <= 0) {
			return true;
		}
		if (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP)) {
			return false;
		}
		/* Readable: an unsolicited message, or EOF. */
		n = recv(d->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			return false;
		}
		return true;
	}
}

/* ---- connection setup ---- */

static int vf_connect_socket(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	*out = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

int vf_dev_connect(struct vf_dev *d, const char *path, int timeout_ms)
{
	memset(d, 0, sizeof(*d));
	d->sock = -1;
	d->inflight_fd = -1;
	d->mem.fd = -1;
	d->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	for (unsigned int q = 0; q < VF_MAX_QUEUES; q++) {
		d->vq[q].kick_fd = -1;
		d->vq[q].call_fd = -1;
	}
	return vf_connect_socket(path, &d->sock);
}

static const uint64_t vf_wanted_features =
	(1ull << VF_F_BLK_SIZE_MAX) | (1ull << VF_F_BLK_SEG_MAX) | (1ull << VF_F_BLK_RO) |
	(1ull << VF_F_BLK_BLK_SIZE) | (1ull << VF_F_BLK_FLUSH) | (1ull << VF_F_BLK_TOPOLOGY) |
	(1ull << VF_F_BLK_CONFIG_WCE) | (1ull << VF_F_BLK_MQ) | (1ull << VF_F_BLK_DISCARD) |
	(1ull << VF_F_BLK_WRITE_ZEROES) | (1ull << VF_F_PROTOCOL_FEATURES) |
	(1ull << VF_F_VERSION_1);

int vf_dev_negotiate(struct vf_dev *d, uint64_t ring_features)
{
	uint64_t want = vf_wanted_features | ring_features;
	uint64_t pf;
	uint64_t nq = 1;
	int ret;

	d->protocol_features = 0; /* nothing negotiated on this connection yet */
	ret = vf_msg_set(d, VF_SET_OWNER, NULL, 0, NULL, 0);
	if (ret) {
		return ret;
	}
	ret = vf_msg_get_u64(d, VF_GET_FEATURES, &d->dev_features);
	if (ret) {
		return ret;
	}
	if (!(d->dev_features & (1ull << VF_F_VERSION_1)) ||
	    !(d->dev_features & (1ull << VF_F_PROTOCOL_FEATURES))) {
		fprintf(stderr,
			"keel-vfront: backend features %#llx lack VERSION_1 or "
			"PROTOCOL_FEATURES\n",
			(unsigned long long)d->dev_features);
		return -EPROTO;
	}
	d->features = d->dev_features & want;
	ret = vf_msg_get_u64(d, VF_GET_PROTOCOL_FEATURES, &d->dev_protocol_features);
	if (ret) {
		return ret;
	}
	/* REPLY_ACK is not in force before this message is through: no
	 * NEED_REPLY on it. */
	pf = d->dev_protocol_features & VF_PF_WANTED;
	ret = vf_msg_send_raw(d, VF_SET_PROTOCOL_FEATURES, VF_USER_VERSION, sizeof(pf), &pf,
			      sizeof(pf), NULL, 0);
	if (ret) {
		return ret;
	}
	d->protocol_features = pf;
	if (vf_has_pf(d, VF_PF_MQ)) {
		ret = vf_msg_get_u64(d, VF_GET_QUEUE_NUM, &nq);
		if (ret) {
			return ret;
		}
		if (nq == 0) {
			fprintf(stderr, "keel-vfront: backend reports 0 queues\n");
			return -EPROTO;
		}
	}
	d->max_queues = nq > VF_MAX_QUEUES ? VF_MAX_QUEUES : (unsigned int)nq;
	if (vf_has_pf(d, VF_PF_CONFIG)) {
		struct {
			struct vf_config_hdr h;
			struct vf_blk_config cfg;
		} __attribute__((packed)) msg = {.h = {.offset = 0, .size = sizeof(msg.cfg)}};
		uint32_t len;

		ret = vf_msg_send_raw(d, VF_GET_CONFIG, VF_USER_VERSION, sizeof(msg), &msg,
				      sizeof(msg), NULL, 0);
		if (ret) {
			return ret;
		}
		ret = vf_msg_recv_reply(d, VF_GET_CONFIG, &msg, sizeof(msg), &len, NULL);
		if (ret) {
			return ret;
		}
		if (len != sizeof(msg) || msg.h.size != sizeof(msg.cfg)) {
			fprintf(stderr, "keel-vfront: GET_CONFIG reply of %u bytes (config %u)\n",
				len, msg.h.size);
			return -EPROTO;
		}
		d->cfg = msg.cfg;
		d->have_config = true;
	}
	return vf_msg_set(d, VF_SET_FEATURES, &d->features, sizeof(d->features), NULL, 0);
}

int vf_dev_set_mem_table(struct vf_dev *d)
{
	struct {
		struct vf_mem_table_hdr h;
		struct vf_mem_region r[2];
	} msg = {.h = {.nregions = d->mem.nregions}};
	int fds[2] = {d->mem.fd, d->mem.fd};

	memcpy(msg.r, d->mem.region, sizeof(msg.r));
	return vf_msg_set(d, VF_SET_MEM_TABLE, &msg,
			  sizeof(msg.h) + d->mem.nregions * sizeof(struct vf_mem_region), fds,
			  d->mem.nregions);
}

int vf_dev_setup_inflight(struct vf_dev *d, unsigned int queues)
{
	struct vf_inflight_msg msg = {.num_queues = (uint16_t)queues, .queue_size = d->queue_size};
	uint32_t len;
	int fd = -1;
	int ret;

	if (!vf_has_pf(d, VF_PF_INFLIGHT_SHMFD)) {
		return 0;
	}
	ret = vf_msg_send_raw(d, VF_GET_INFLIGHT_FD, VF_USER_VERSION, sizeof(msg), &msg,
			      sizeof(msg), NULL, 0);
	if (ret) {
		return ret;
	}
	ret = vf_msg_recv_reply(d, VF_GET_INFLIGHT_FD, &msg, sizeof(msg), &len, &fd);
	if (ret) {
		return ret;
	}
	if (len != sizeof(msg) || fd < 0 || msg.mmap_size == 0 || msg.mmap_size > (1ull << 30)) {
		fprintf(stderr,
			"keel-vfront: bad GET_INFLIGHT_FD reply (%u bytes, fd %d, size "
			"%llu)\n",
			len, fd, (unsigned long long)msg.mmap_size);
		ret = -EPROTO;
		goto out_close_fd;
	}
	d->inflight = mmap(NULL, msg.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			   (off_t)msg.mmap_offset);
	if (d->inflight == MAP_FAILED) {
		ret = -errno;
		d->inflight = NULL;
		goto out_close_fd;
	}
	d->inflight_size = msg.mmap_size;
	d->inflight_offset = msg.mmap_offset;
	d->inflight_fd = fd;
	/* A fresh start: hand the region back as it came (zeroed by the
	 * backend); a restart test would keep it across connections. */
	return vf_msg_set(d, VF_SET_INFLIGHT_FD, &msg, sizeof(msg), &fd, 1);

out_close_fd:
	close(fd);
	return ret;
}

/* SET_VRING_NUM/BASE/ADDR/CALL/KICK/ENABLE for the ring laid out in vq. */
static int vf_dev_send_vring(struct vf_dev *d, unsigned int q, uint16_t base)
{
	struct vf_vq *vq = &d->vq[q];
	struct vf_vring_state st = {.index = q};
	struct vf_vring_addr addr = {.index = q};
	uint64_t fdarg = q;
	int ret;

	st.num = d->queue_size;
	ret = vf_msg_set(d, VF_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
	if (ret) {
		return ret;
	}
	st.num = base;
	ret = vf_msg_set(d, VF_SET_VRING_BASE, &st, sizeof(st), NULL, 0);
	if (ret) {
		return ret;
	}
	addr.desc_uaddr = (uintptr_t)vq->desc;
	addr.avail_uaddr = (uintptr_t)vq->avail;
	addr.used_uaddr = (uintptr_t)vq->used;
	ret = vf_msg_set(d, VF_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
	if (ret) {
		return ret;
	}
	ret = vf_msg_set(d, VF_SET_VRING_CALL, &fdarg, sizeof(fdarg), &vq->call_fd, 1);
	if (ret) {
		return ret;
	}
	ret = vf_msg_set(d, VF_SET_VRING_KICK, &fdarg, sizeof(fdarg), &vq->kick_fd, 1);
	if (ret) {
		return ret;
	}
	st.num = 1;
	return vf_msg_set(d, VF_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0);
}

int vf_dev_start_queue(struct vf_dev *d, unsigned int q)
{
	struct vf_vq *vq = &d->vq[q];
	int ret;

	if (q >= VF_MAX_QUEUES) {
		return -EINVAL;
	}
	ret = vf_vq_init(vq, &d->mem, q, d->queue_size);
	if (ret) {
		return ret;
	}
	vq->event_idx = vf_has_feature(d, VF_F_RING_EVENT_IDX);
	ret = vf_dev_send_vring(d, q, 0);
	if (ret) {
		return ret;
	}
	if (q + 1 > d->num_queues) {
		d->num_queues = q + 1;
	}
	return 0;
}

int vf_dev_reconnect(struct vf_dev *d, const char *path)
{
	uint64_t features = d->features;
	struct vf_inflight_msg msg = {.mmap_size = d->inflight_size,
				      .mmap_offset = d->inflight_offset,
				      .num_queues = (uint16_t)d->num_queues,
				      .queue_size = d->queue_size};
	int ret;

	if (!d->inflight) {
		return -EOPNOTSUPP;
	}
	close(d->sock);
	ret = vf_connect_socket(path, &d->sock);
	if (ret) {
		return ret;
	}
	ret = vf_dev_negotiate(
		d, features & ((1ull << VF_F_RING_INDIRECT_DESC) | (1ull << VF_F_RING_EVENT_IDX)));
	if (ret) {
		return ret;
	}
	if (d->features != features || !vf_has_pf(d, VF_PF_INFLIGHT_SHMFD)) {
		fprintf(stderr, "keel-vfront: the backend came back with other features\n");
		return -EPROTO;
	}
	ret = vf_msg_set(d, VF_SET_INFLIGHT_FD, &msg, sizeof(msg), &d->inflight_fd, 1);
	if (ret) {
		return ret;
	}
	ret = vf_dev_set_mem_table(d);
	if (ret) {
		return ret;
	}
	for (unsigned int q = 0; q < d->num_queues; q++) {
		struct vf_vq *vq = &d->vq[q];
		uint64_t one = 1;

		/* Where QEMU restarts a ring it lost: what the device has
		 * returned; the inflight region tells the backend the rest. */
		ret = vf_dev_send_vring(d, q, __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
		if (ret) {
			return ret;
		}
		/* Entries published while nobody listened need a kick. */
		if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one)) {
			return -errno;
		}
	}
	return 0;
}

int vf_dev_open(struct vf_dev *d, const struct vf_dev_opts *o)
{
	unsigned int queues;
	int ret;

	if (o->queue_size == 0 || o->queue_size > VF_MAX_QUEUE_SIZE ||
	    (o->queue_size & (o->queue_size - 1))) {
		return -EINVAL;
	}
	ret = vf_dev_negotiate(d, vf_ring_features(o));
	if (ret) {
		return ret;
	}
	d->queue_size = (uint16_t)o->queue_size;
	queues = o->queues ? o->queues : 1;
	if (queues > d->max_queues) {
		queues = d->max_queues;
	}
	ret = vf_mem_init(&d->mem, o->mem_size, o->regions);
	if (ret) {
		return ret;
	}
	ret = vf_dev_set_mem_table(d);
	if (ret) {
		return ret;
	}
	ret = vf_dev_setup_inflight(d, queues);
	if (ret) {
		return ret;
	}
	for (unsigned int q = 0; q < queues; q++) {
		ret = vf_dev_start_queue(d, q);
		if (ret) {
			return ret;
		}
	}
	return 0;
}

void vf_dev_close(struct vf_dev *d)
{
	if (d->sock >= 0) {
		close(d->sock);
		d->sock = -1;
	}
	for (unsigned int q = 0; q < VF_MAX_QUEUES; q++) {
		vf_vq_destroy(&d->vq[q]);
	}
	d->num_queues = 0;
	if (d->inflight) {
		munmap(d->inflight, d->inflight_size);
		d->inflight = NULL;
	}
	if (d->inflight_fd >= 0) {
		close(d->inflight_fd);
		d->inflight_fd = -1;
	}
	vf_mem_destroy(&d->mem);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-vfront corpus: the malicious-guest corpus, runnable against any
 * vhost-user-blk backend.
 *
 * Every case runs on its own connection and does one bad thing: a request
 * built from broken descriptors or a bad virtio-blk header (request cases,
 * on a fully set up connection, queue 0), or a bad vhost-user message
 * (message cases, after feature negotiation, before the memory table).
 * Its outcome must be one of the case's accepted outcomes:
 *
 *   IOERR, UNSUPP  the request completed with that status byte
 *   NOSTATUS       the request came back in the used ring without a status
 *                  byte (only where the chain has nowhere to put one)
 *   CLOSED         the backend closed the connection (protocol violation)
 *   REJECTED       the message was answered with a non-zero REPLY_ACK
 *
 * Never accepted: OK (a bad request "succeeded", or a bad message was
 * acked with 0: wrong success), HANG (nothing within --timeout), a status
 * byte written into a device-readable buffer, a bad used-ring entry.
 *
 * Then, for every case: if the connection survived, a good read on another
 * queue of it (queue 1 when there are two; message cases first finish the
 * setup properly) must succeed; the backend process (--pid) must still
 * run; a new connection must serve a good write and read; and the canary
 * (blocks written with a known pattern before the first case, the target
 * of every bad write, zeroing or discard) must be unchanged.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/vfront/vf_corpus.h"

static const char *const vf_oc_names[VF_OC__COUNT] = {
	[VF_OC_OK] = "OK",	   [VF_OC_IOERR] = "IOERR",
	[VF_OC_UNSUPP] = "UNSUPP", [VF_OC_NOSTATUS] = "NOSTATUS",
	[VF_OC_CLOSED] = "CLOSED", [VF_OC_REJECTED] = "REJECTED",
	[VF_OC_HANG] = "HANG",	   [VF_OC_BAD] = "HARM",
	[VF_OC_SKIP] = "SKIP",
};

void vf_corpus_note(struct vf_corpus *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->note, sizeof(c->note), fmt, ap);
	va_end(ap);
}

uint64_t vf_corpus_gpa(struct vf_corpus *c, const void *p)
{
	return vf_mem_gpa(&c->dev.mem, p);
}

/* ---- connection setup ---- */

/* Queues (two when offered) and the raw buffers, after the memory table. */
int vf_corpus_start_queues(struct vf_corpus *c)
{
	struct vf_dev *d = &c->dev;
	unsigned int queues = d->max_queues >= 2 ? 2 : 1;
	int ret;

	d->queue_size = VF_CORPUS_QSIZE;
	for (unsigned int q = 0; q < queues; q++) {
		ret = vf_dev_start_queue(d, q);
		if (ret) {
			return ret;
		}
	}
	c->hdr = vf_mem_alloc(&d->mem, 0, 4096, 4096);
	c->status = vf_mem_alloc(&d->mem, 1, 4096, 4096);
	c->itab = vf_mem_alloc(&d->mem, 0, 256 * sizeof(struct vf_desc), 4096);
	c->segs = vf_mem_alloc(&d->mem, 1, 4096, 4096);
	c->data = vf_mem_alloc(&d->mem, 1, VF_CORPUS_DATA, 4096);
	if (!c->hdr || !c->status || !c->itab || !c->segs || !c->data) {
		return -ENOMEM;
	}
	c->ready = true;
	return 0;
}

/* Memory table, queues and raw buffers. */
static int vf_corpus_setup(struct vf_corpus *c)
{
	struct vf_dev *d = &c->dev;
	int ret;

	if (!d->mem.base) {
		ret = vf_mem_init(&d->mem, VF_CORPUS_MEM, 2);
		if (ret) {
			return ret;
		}
	}
	ret = vf_dev_set_mem_table(d);
	if (ret) {
		return ret;
	}
	return vf_corpus_start_queues(c);
}

/* Connect and negotiate, retrying while the backend is still tearing the
 * previous connection down. */
static int vf_corpus_connect(struct vf_corpus *c)
{
	uint64_t deadline = vf_now_ns() + VF_RECONNECT_MS * 1000000ull;
	int ret;

	for (;;) {
		c->ready = false;
		ret = vf_dev_connect(&c->dev, c->cli->dev.socket, c->cli->dev.timeout_ms);
		if (!ret) {
			ret = vf_dev_negotiate(&c->dev, 1ull << VF_F_RING_INDIRECT_DESC);
		}
		if (!ret) {
			c->capacity = vf_capacity(&c->dev);
			c->blk_size =
				vf_has_feature(&c->dev, VF_F_BLK_BLK_SIZE) && c->dev.cfg.blk_size
					? c->dev.cfg.blk_size
					: VF_SECTOR;
			return 0;
		}
		vf_dev_close(&c->dev);
		if (vf_now_ns() > deadline || (ret != -ECONNRESET && ret != -ECONNREFUSED &&
					       ret != -ETIMEDOUT && ret != -EAGAIN)) {
			return ret;
		}
		usleep(100000);
	}
}

/* ---- raw requests ---- */

/* The well-formed chain for one request: header, data (@data_len bytes
 * from c->data, device-writable for reads), status. Returns 3, or 2 when
 * @data_len is 0. */
unsigned int vf_std_chain(struct vf_corpus *c, struct vf_rd *rd, uint32_t type, uint64_t sector,
			  uint32_t data_len)
{
	unsigned int n = 0;

	c->hdr->type = type;
	c->hdr->ioprio = 0;
	c->hdr->sector = sector;
	rd[n] = (struct vf_rd){.addr = vf_corpus_gpa(c, c->hdr),
			       .len = 16,
			       .flags = VF_DESC_F_NEXT,
			       .next = (uint16_t)(n + 1)};
	n++;
	if (data_len) {
		bool in = type == VF_BLK_T_IN || type == VF_BLK_T_GET_ID;

		rd[n] = (struct vf_rd){.addr = vf_corpus_gpa(c, c->data),
				       .len = data_len,
				       .flags = VF_DESC_F_NEXT | (in ? VF_DESC_F_WRITE : 0),
				       .next = (uint16_t)(n + 1)};
		n++;
	}
	rd[n] = (struct vf_rd){
		.addr = vf_corpus_gpa(c, c->status), .len = 1, .flags = VF_DESC_F_WRITE};
	return n + 1;
}

/* Put @n raw descriptors on queue @q as one chain and notify. */
static int vf_raw_submit(struct vf_corpus *c, unsigned int q, const struct vf_rd *rd,
			 unsigned int n)
{
	*c->status = VF_BLK_S_NONE;
	return vf_raw_submit_nowait(c, q, rd, n);
}

int vf_raw_submit_nowait(struct vf_corpus *c, unsigned int q, const struct vf_rd *rd,
			 unsigned int n)
{
	struct vf_vq *vq = &c->dev.vq[q];
	uint16_t ids[VF_CORPUS_QSIZE];

	if (vf_vq_alloc(vq, n, ids)) {
		return -ENOSPC;
	}
	for (unsigned int i = 0; i < n; i++) {
		vq->desc[ids[i]] = (struct vf_desc){
			.addr = rd[i].addr,
			.len = rd[i].len,
			.flags = rd[i].flags,
			.next = rd[i].abs_next ? rd[i].next
					       : (rd[i].next < n ? ids[rd[i].next] : rd[i].next)};
	}
	vf_vq_publish(vq, ids[0], c);
	return vf_vq_kick(vq);
}

/* Fill @n entries of the indirect table and return the one ring descriptor
 * pointing at it (@len bytes). */
struct vf_rd vf_indirect(struct vf_corpus *c, const struct vf_rd *rd, unsigned int n, uint32_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		c->itab[i] = (struct vf_desc){.addr = rd[i].addr,
					      .len = rd[i].len,
					      .flags = rd[i].flags,
					      .next = rd[i].next};
	}
	return (struct vf_rd){
		.addr = vf_corpus_gpa(c, c->itab), .len = len, .flags = VF_DESC_F_INDIRECT};
}

/* Wait for the one raw request in flight on @q: its status, CLOSED or HANG. */
enum vf_outcome vf_raw_wait(struct vf_corpus *c, unsigned int q)
{
	struct vf_vq *vq = &c->dev.vq[q];
	uint64_t deadline = vf_now_ns() + (uint64_t)c->cli->dev.timeout_ms * 1000000ull;
	bool closed = false;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = vq->call_fd, .events = POLLIN},
					{.fd = c->dev.sock, .events = POLLRDHUP}};
		void *token;
		uint32_t len;
		uint64_t now;
		int ret;

		vf_vq_clear_call(vq);
		ret = vf_vq_reap(vq, &token, &len);
		if (ret < 0) {
			vf_corpus_note(c, "the backend put a bad id in the used ring");
			return VF_OC_BAD;
		}
		if (ret > 0) {
			switch (*c->status) {
			case VF_BLK_S_OK:
				return VF_OC_OK;
			case VF_BLK_S_IOERR:
				return VF_OC_IOERR;
			case VF_BLK_S_UNSUPP:
				return VF_OC_UNSUPP;
			case VF_BLK_S_NONE:
				return VF_OC_NOSTATUS;
			}
			vf_corpus_note(c, "invalid status byte %#x", *c->status);
			return VF_OC_BAD;
		}
		if (closed) {
			return VF_OC_CLOSED;
		}
		now = vf_now_ns();
		if (now >= deadline) {
			return VF_OC_HANG;
		}
		ret = poll(pfd, 2, (int)((deadline - now) / 1000000) + 1);
		if (ret > 0 && pfd[1].revents) {
			closed = true; /* one more look at the used ring first */
		}
	}
}

enum vf_outcome vf_raw(struct vf_corpus *c, unsigned int q, const struct vf_rd *rd, unsigned int n)
{
	int ret = vf_raw_submit(c, q, rd, n);

	if (ret == -ECONNRESET) {
		return VF_OC_CLOSED;
	}
	if (ret) {
		vf_corpus_note(c, "submit: %s", strerror(-ret));
		return VF_OC_BAD;
	}
	return vf_raw_wait(c, q);
}

/* A bad write's data: a valid-looking block that must never land. */
void vf_bad_payload(struct vf_corpus *c, uint32_t len)
{
	for (uint32_t off = 0; off + VF_PAT_BLOCK <= len; off += VF_PAT_BLOCK) {
		vf_pattern_fill(c->data + off, off, VF_BAD_SEQ, c->cli->seed);
	}
}

/* ---- message helpers ---- */

/* Send one (possibly malformed) message and classify the answer: with
 * REPLY_ACK, the ack; without, whether the connection still answers
 * GET_FEATURES. */
enum vf_outcome vf_probe_msg(struct vf_corpus *c, uint32_t request, uint32_t flags, uint32_t size,
			     const void *payload, uint32_t len, const int *fds, unsigned int nfds)
{
	bool ack = vf_has_pf(&c->dev, VF_PF_REPLY_ACK);
	uint64_t v;
	uint32_t got;
	int ret;

	ret = vf_msg_send_raw(&c->dev, request, flags | (ack ? VF_FLAG_NEED_REPLY : 0), size,
			      payload, len, fds, nfds);
	if (ret == -ECONNRESET) {
		return VF_OC_CLOSED;
	}
	if (ret) {
		vf_corpus_note(c, "send: %s", strerror(-ret));
		return VF_OC_BAD;
	}
	if (ack) {
		ret = vf_msg_recv_reply(&c->dev, request, &v, sizeof(v), &got, NULL);
	} else {
		ret = vf_msg_get_u64(&c->dev, VF_GET_FEATURES, &v);
	}
	switch (ret) {
	case 0:
		if (ack && v) {
			return VF_OC_REJECTED;
		}
		/* Some backends ack 0 and then drop the connection. */
		return vf_dev_alive(&c->dev, VF_CLOSE_GRACE_MS) ? VF_OC_OK : VF_OC_CLOSED;
	case -ECONNRESET:
		return VF_OC_CLOSED;
	case -ETIMEDOUT:
		return VF_OC_HANG;
	default:
		/* A malformed answer to a malformed message: let the
		 * connection's fate decide. */
		return vf_dev_alive(&c->dev, VF_CLOSE_GRACE_MS) ? VF_OC_REJECTED : VF_OC_CLOSED;
	}
}

enum vf_outcome vf_probe(struct vf_corpus *c, uint32_t request, const void *payload, uint32_t len,
			 const int *fds, unsigned int nfds)
{
	return vf_probe_msg(c, request, VF_USER_VERSION, len, payload, len, fds, nfds);
}

/* Guest memory for message cases that need a valid table first. */
int vf_corpus_mem(struct vf_corpus *c)
{
	int ret;

	if (c->dev.mem.base) {
		return 0;
	}
	ret = vf_mem_init(&c->dev.mem, VF_CORPUS_MEM, 2);
	if (ret) {
		vf_corpus_note(c, "guest memory: %s", strerror(-ret));
	}
	return ret;
}

enum vf_outcome vf_probe_mem_table(struct vf_corpus *c, const struct vf_mem_region *r,
				   uint32_t nregions, unsigned int nfds)
{
	struct {
		struct vf_mem_table_hdr h;
		struct vf_mem_region r[VF_MAX_MSG_PAYLOAD / sizeof(struct vf_mem_region) - 1];
	} msg = {.h = {.nregions = nregions}};
	int fds[VF_MAX_FDS];
	uint32_t len = sizeof(msg.h) + nregions * sizeof(struct vf_mem_region);

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	for (unsigned int i = 0; i < VF_MAX_FDS; i++) {
		fds[i] = c->dev.mem.fd;
	}
	if (len > sizeof(msg)) {
		len = sizeof(msg);
	}
	if (nregions) {
		memcpy(msg.r, r, len - sizeof(msg.h));
	}
	return vf_probe(c, VF_SET_MEM_TABLE, &msg, len, fds, nfds);
}

/* ---- the harness ---- */

static void vf_print_accept(unsigned int mask, FILE *f)
{
	bool first = true;

	for (unsigned int i = 0; i < VF_OC__COUNT; i++) {
		if (mask & (1u << i)) {
			fprintf(f, "%s%s", first ? "" : "|", vf_oc_names[i]);
			first = false;
		}
	}
}

static bool vf_backend_alive(int pid)
{
	char path[64], buf[256];
	FILE *f;
	char *p;
	bool alive;

	if (!pid) {
		return true;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f) {
		return false;
	}
	alive = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	/* "pid (comm) S ...": a zombie has died. */
	p = alive ? strrchr(buf, ')') : NULL;
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* A good raw request on @q; 0 when it completed OK. */
static int vf_good_io(struct vf_corpus *c, unsigned int q, uint32_t type, uint64_t block,
		      uint32_t len)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, type, block * (VF_PAT_BLOCK / VF_SECTOR), len);
	enum vf_outcome oc = vf_raw(c, q, rd, n);

	if (oc != VF_OC_OK) {
		vf_corpus_note(c, "good %s of block %llu on queue %u: %s",
			       type == VF_BLK_T_IN ? "read" : "write", (unsigned long long)block, q,
			       vf_oc_names[oc]);
		return -EIO;
	}
	return 0;
}

/* Read the canary blocks [first, first + n) and check every one. */
static int vf_check_canary_range(struct vf_corpus *c, uint64_t first, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t chunk = n - done < 16 ? n - done : 16;

		memset(c->data, 0xa5, (size_t)chunk * VF_PAT_BLOCK);
		if (vf_good_io(c, 0, VF_BLK_T_IN, first + done, chunk * VF_PAT_BLOCK)) {
			return -EIO;
		}
		for (uint32_t i = 0; i < chunk; i++) {
			uint64_t blk = first + done + i;
			uint64_t seq = 0;
			enum vf_pat_result r = vf_pattern_check(
				c->data + i * VF_PAT_BLOCK, blk * VF_PAT_BLOCK, c->cli->seed, &seq);

			if (r != VF_PAT_OK || seq != VF_CANARY_SEQ) {
				vf_corpus_note(c, "canary block %llu damaged: %s%s",
					       (unsigned long long)blk, vf_pat_result_name(r),
					       r == VF_PAT_OK ? " but rewritten" : "");
				return -EIO;
			}
		}
		done += chunk;
	}
	return 0;
}

static int vf_write_canary_range(struct vf_corpus *c, uint64_t first, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t chunk = n - done < 16 ? n - done : 16;

		for (uint32_t i = 0; i < chunk; i++) {
			vf_pattern_fill(c->data + i * VF_PAT_BLOCK,
					(first + done + i) * VF_PAT_BLOCK, VF_CANARY_SEQ,
					c->cli->seed);
		}
		if (vf_good_io(c, 0, VF_BLK_T_OUT, first + done, chunk * VF_PAT_BLOCK)) {
			return -EIO;
		}
		done += chunk;
	}
	return 0;
}

static uint64_t vf_tail_first(struct vf_corpus *c)
{
	return c->capacity / VF_PAT_BLOCK - VF_CANARY_TAIL;
}

/* A fresh connection: good write and read of a scratch block, canary intact. */
static int vf_check_fresh(struct vf_corpus *c, bool write_canary)
{
	uint64_t scratch = VF_CANARY_HEAD + 1;
	int ret;

	ret = vf_corpus_connect(c);
	if (!ret) {
		ret = vf_corpus_setup(c);
	}
	if (ret) {
		vf_corpus_note(c, "new connection: %s", strerror(-ret));
		goto out_close;
	}
	if (c->capacity < (VF_CANARY_HEAD + VF_CANARY_TAIL + 8) * (uint64_t)VF_PAT_BLOCK) {
		vf_corpus_note(c, "device too small for the canary");
		ret = -EINVAL;
		goto out_close;
	}
	if (write_canary) {
		ret = vf_write_canary_range(c, 0, VF_CANARY_HEAD);
		if (!ret) {
			ret = vf_write_canary_range(c, vf_tail_first(c), VF_CANARY_TAIL);
		}
		if (ret) {
			goto out_close;
		}
	}
	vf_pattern_fill(c->data, scratch * VF_PAT_BLOCK, 2, c->cli->seed);
	ret = vf_good_io(c, 0, VF_BLK_T_OUT, scratch, VF_PAT_BLOCK);
	if (ret) {
		goto out_close;
	}
	memset(c->data, 0, VF_PAT_BLOCK);
	ret = vf_good_io(c, 0, VF_BLK_T_IN, scratch, VF_PAT_BLOCK);
	if (ret) {
		goto out_close;
	}
	{
		uint64_t seq = 0;

		if (vf_pattern_check(c->data, scratch * VF_PAT_BLOCK, c->cli->seed, &seq) !=
			    VF_PAT_OK ||
		    seq != 2) {
			vf_corpus_note(c, "scratch block read back wrong");
			ret = -EIO;
			goto out_close;
		}
	}
	ret = vf_check_canary_range(c, 0, VF_CANARY_HEAD);
	if (!ret) {
		ret = vf_check_canary_range(c, vf_tail_first(c), VF_CANARY_TAIL);
	}
out_close:
	vf_dev_close(&c->dev);
	return ret;
}

/* The connection survived the case: it must still serve a good read on
 * another queue (message cases first finish the setup). */
static int vf_check_same_connection(struct vf_corpus *c)
{
	unsigned int q;
	int ret;

	if (!c->ready) {
		ret = vf_corpus_setup(c);
		if (ret) {
			vf_corpus_note(c, "finishing the setup on the surviving connection: %s",
				       strerror(-ret));
			return ret;
		}
	}
	q = c->dev.num_queues > 1 ? 1 : 0;
	memset(c->data, 0, VF_PAT_BLOCK);
	ret = vf_good_io(c, q, VF_BLK_T_IN, 0, VF_PAT_BLOCK);
	if (ret) {
		return ret;
	}
	{
		uint64_t seq = 0;

		if (vf_pattern_check(c->data, 0, c->cli->seed, &seq) != VF_PAT_OK ||
		    seq != VF_CANARY_SEQ) {
			vf_corpus_note(
				c, "good read on queue %u after the case returned wrong data", q);
			return -EIO;
		}
	}
	return 0;
}

struct vf_case_result {
	enum vf_outcome outcome;
	bool pass;
	char note[256];
};

static void vf_run_case(struct vf_corpus *c, const struct vf_case *k, struct vf_case_result *res)
{
	enum vf_outcome oc;
	int ret;

	c->note[0] = 0;
	ret = vf_corpus_connect(c);
	if (!ret && !k->message) {
		ret = vf_corpus_setup(c);
	}
	if (ret) {
		vf_corpus_note(c, "case setup: %s", strerror(-ret));
		vf_dev_close(&c->dev);
		res->outcome = VF_OC_BAD;
		res->pass = false;
		goto out;
	}
	oc = k->run(c);
	res->outcome = oc;
	res->pass = oc == VF_OC_SKIP || (k->accept & (1u << oc));
	if (!res->pass && !c->note[0]) {
		vf_corpus_note(c, "%s",
			       oc == VF_OC_OK	  ? "wrong success"
			       : oc == VF_OC_HANG ? "no answer within the timeout"
						  : "outcome not accepted");
	}
	if (res->pass && oc != VF_OC_SKIP && oc != VF_OC_CLOSED && oc != VF_OC_HANG &&
	    vf_dev_alive(&c->dev, 50)) {
		if (vf_check_same_connection(c)) {
			res->pass = false;
		}
	}
	vf_dev_close(&c->dev);
	if (oc == VF_OC_SKIP) {
		goto out;
	}
	if (!vf_backend_alive(c->cli->pid)) {
		vf_corpus_note(c, "the backend process %d died", c->cli->pid);
		res->pass = false;
		goto out;
	}
	if (vf_check_fresh(c, false)) {
		res->pass = false;
	}
out:
	snprintf(res->note, sizeof(res->note), "%s", c->note);
}

static void vf_corpus_list(void)
{
	for (size_t i = 0; i < vf_corpus_ncases; i++) {
		printf("%-30s %-8s ", vf_corpus_cases[i].name,
		       vf_corpus_cases[i].message ? "message" : "request");
		vf_print_accept(vf_corpus_cases[i].accept, stdout);
		printf("\n    %s\n", vf_corpus_cases[i].what);
	}
}

int vf_cmd_corpus(const struct vf_cli *cli)
{
	struct vf_corpus *c;
	unsigned int ran = 0, failed = 0, skipped = 0;
	bool first_json = true;
	int ret;

	if (cli->list) {
		vf_corpus_list();
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		return 1;
	}
	c->cli = cli;
	if (cli->corpus_case) {
		bool found = false;

		for (size_t i = 0; i < vf_corpus_ncases; i++) {
			found |= !strcmp(vf_corpus_cases[i].name, cli->corpus_case);
		}
		if (!found) {
			fprintf(stderr, "keel-vfront: no corpus case %s (see --list)\n",
				cli->corpus_case);
			free(c);
			return 2;
		}
	}
	/* Write the canary once, through a good connection. */
	ret = vf_check_fresh(c, true);
	if (ret) {
		fprintf(stderr, "keel-vfront: corpus setup failed: %s\n", c->note);
		free(c);
		return 1;
	}
	if (cli->json) {
		printf("{\"cases\":[");
	}
	for (size_t i = 0; i < vf_corpus_ncases; i++) {
		const struct vf_case *k = &vf_corpus_cases[i];
		struct vf_case_result res;

		if (cli->corpus_case && strcmp(k->name, cli->corpus_case)) {
			continue;
		}
		vf_run_case(c, k, &res);
		if (res.outcome == VF_OC_SKIP) {
			skipped++;
		} else {
			ran++;
			failed += !res.pass;
		}
		if (cli->json) {
			printf("%s{\"name\":\"%s\",\"outcome\":\"%s\",\"pass\":%s,\"note\":\"",
			       first_json ? "" : ",", k->name, vf_oc_names[res.outcome],
			       res.pass ? "true" : "false");
			for (const char *p = res.note; *p; p++) {
				putchar(*p == '"' || *p == '\\' ? '\'' : *p);
			}
			printf("\"}");
			first_json = false;
		}
		fprintf(cli->json ? stderr : stdout, "%-6s %-30s %-9s (accepted: ",
			res.outcome == VF_OC_SKIP ? "SKIP"
			: res.pass		  ? "PASS"
						  : "FAIL",
			k->name, vf_oc_names[res.outcome]);
		vf_print_accept(k->accept, cli->json ? stderr : stdout);
		fprintf(cli->json ? stderr : stdout, ")%s%s\n", res.note[0] ? ": " : "", res.note);
		fflush(stdout);
		if (!vf_backend_alive(cli->pid)) {
			fprintf(stderr, "keel-vfront: backend process %d is gone; stopping\n",
				cli->pid);
			failed += res.pass; /* died after its case's own checks */
			break;
		}
	}
	if (cli->json) {
		printf("],\"ran\":%u,\"failed\":%u,\"skipped\":%u,\"ok\":%s}\n", ran, failed,
		       skipped, failed ? "false" : "true");
	} else {
		printf("corpus: %u cases run, %u failed, %u skipped\n", ran, failed, skipped);
	}
	free(c);
	return failed ? 1 : 0;
}

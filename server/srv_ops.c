/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The opcode table: every object request the server accepts, with the
 * shape it must have, dispatched from one place (sheepdog ops.c style).
 * kp_hdr_decode() already checked alignment, sizes and data_len against the
 * opcode; here we check what needs the store: extents against the object
 * size, meta messages, and inode 0 (reserved for STAT of the store).
 */
#include "server/srv.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "crcs go between the wire and the blockstore without conversion");

enum srv_op_flags {
	SRV_OP_EXTENT = 1u << 0,  /* offset/length address an extent of one object */
	SRV_OP_DATA = 1u << 1,	  /* request carries data (WRITE) */
	SRV_OP_META = 1u << 2,	  /* request may carry a meta message */
	SRV_OP_CLUSTER = 1u << 3, /* server-to-server: cluster mode only */
	SRV_OP_CLIENT = 1u << 4,  /* client data op: PG and epoch checks in cluster mode */
};

struct srv_op {
	const char *name;
	int (*handler)(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs);
	enum bs_op bs_op; /* 0: served without the blockstore */
	uint32_t flags;
};

static void srv_bs_done(struct bs_req *breq, int res)
{
	struct srv_req *req = breq->arg;

	if (!res && req->hdr.opcode == KP_OP_READ) {
		req->reply.data = req->buf;
		req->reply.crcs = req->crcs;
		req->reply.hdr.data_len = req->hdr.length;
	}
	req->reply.hdr.obj_ver = breq->version;
	srv_req_finish(req, res);
}

/* Hand req->bs to the blockstore; on a refused submit the caller replies. */
static int srv_bs_submit(struct srv_req *req, enum bs_op op)
{
	return srv_req_bs_submit(req, op, op == BS_OP_WRITE ? req->hdr.obj_ver : 0);
}

int srv_req_bs_submit(struct srv_req *req, enum bs_op op, uint64_t version)
{
	struct srv *s = req->conn->srv;
	struct bs_req *b = &req->bs;
	int ret;

	memset(b, 0, sizeof(*b));
	b->op = op;
	b->inode = req->hdr.inode;
	b->objno = req->hdr.objno;
	b->offset = req->hdr.offset;
	b->length = req->hdr.length;
	b->buf = req->buf;
	b->crcs = req->buf ? req->crcs : NULL;
	b->version = version;
	b->cb = srv_bs_done;
	b->arg = req;
	req->state = SRV_REQ_BS;
	s->bs_inflight++;
	ret = bs_submit(s->bs, b);
	if (ret) {
		s->bs_inflight--;
		req->state = SRV_REQ_FREE;
	}
	return ret;
}

/*
 * A READ's ReadChain meta (docs/wire-format.md): parents of the inode,
 * nearest first. Hostile input: anything but a well-formed chain of at
 * most KP_READ_CHAIN_MAX parents of the same family is EINVAL. Layers exist
 * only in cluster mode (a single server has no map to tell their states).
 */
static int srv_read_chain_parse(struct srv_req *req, const uint8_t *meta)
{
	struct srv_chain *c = &req->x.chain;
	Keel__ReadChain *rc;
	int ret;

	if (!req->conn->srv->cl) {
		return -ENOTSUP;
	}
	/* Control-sized message (64 KiB at most): protobuf-c's allocator. */
	rc = keel__read_chain__unpack(NULL, req->hdr.meta_len, meta);
	if (!rc) {
		return -EINVAL;
	}
	ret = layer_chain_check(req->hdr.inode, rc->parents, rc->n_parents);
	if (!ret) {
		c->nparents = (uint32_t)rc->n_parents;
		if (c->nparents) {
			memcpy(c->parents, rc->parents, c->nparents * sizeof(uint64_t));
		}
		req->r.chain = c->nparents > 0;
	}
	keel__read_chain__free_unpacked(rc, NULL);
	return ret;
}

static int srv_op_read(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs)
{
	int ret;

	req->r.chain = false;
	if (req->hdr.meta_len) {
		ret = srv_read_chain_parse(req, meta);
		if (ret) {
			return ret;
		}
	}
	ret = srv_req_get_buf(req, req->hdr.length);
	if (ret) {
		return ret;
	}
	if (req->conn->srv->cl) {
		srv_repl_client(req);
		return 0;
	}
	return srv_bs_submit(req, BS_OP_READ);
}

static int srv_op_write(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
			const uint32_t *crcs)
{
	uint32_t len = req->hdr.length;
	int ret;

	/* kp_hdr_decode() guarantees data_len == length for WRITE; the payload
	 * lives in the rx buffer only for this call, so copy it out now. The
	 * crcs may be unaligned in the rx buffer: memcpy. */
	if (!data || !crcs || req->hdr.data_len != len) {
		return -EINVAL;
	}
	ret = srv_req_get_buf(req, len);
	if (ret) {
		return ret;
	}
	memcpy(req->buf, data, len);
	memcpy(req->crcs, crcs, (len / BS_BLOCK) * sizeof(uint32_t));
	if (req->conn->srv->cl) {
		srv_repl_client(req);
		return 0;
	}
	return srv_bs_submit(req, BS_OP_WRITE);
}

static int srv_op_discard(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
			  const uint32_t *crcs)
{
	if (req->conn->srv->cl) {
		srv_repl_client(req);
		return 0;
	}
	return srv_bs_submit(req, BS_OP_DISCARD);
}

static int srv_op_write_zeroes(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
			       const uint32_t *crcs)
{
	if (req->conn->srv->cl) {
		srv_repl_client(req);
		return 0;
	}
	return srv_bs_submit(req, BS_OP_WRITE_ZEROES);
}

static int srv_op_sync(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs)
{
	if (req->conn->srv->cl) {
		/* cluster mode: writes are durable on every copy when acked */
		srv_req_finish(req, 0);
		return 0;
	}
	return srv_bs_submit(req, BS_OP_SYNC);
}

static int srv_op_ping(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs)
{
	srv_req_finish(req, 0);
	return 0;
}

/* Pack @msg into a pool buffer as the reply's meta. */
static int srv_reply_meta(struct srv_req *req, const ProtobufCMessage *msg)
{
	return srv_req_reply_meta(req, msg);
}

int srv_req_reply_meta(struct srv_req *req, const void *m)
{
	const ProtobufCMessage *msg = m;
	size_t len = protobuf_c_message_get_packed_size(msg);
	int ret;

	if (len > KP_MAX_META) {
		log_error("reply meta of %zu bytes exceeds KP_MAX_META", len);
		return -EIO;
	}
	ret = srv_req_get_buf(req, SRV_SMALL_BUF);
	if (ret) {
		return ret;
	}
	protobuf_c_message_pack(msg, req->buf);
	req->reply.meta = req->buf;
	req->reply.hdr.meta_len = (uint32_t)len;
	return 0;
}

static int srv_stat_store(struct srv_req *req)
{
	struct srv *s = req->conn->srv;
	Keel__StoreStat st = KEEL__STORE_STAT__INIT;
	struct bs_stat bst;
	uint8_t uuid[16];
	char uuid_hex[33];

	bs_stat(s->bs, &bst);
	st.object_size = bst.object_size;
	st.objects_total = bst.objects_total;
	st.objects_used = bst.objects_used;
	st.journal_size = bst.journal_size;
	st.journal_used = bst.journal_used;
	st.index_bytes = bst.index_bytes;
	st.reads = bst.reads;
	st.writes = bst.writes;
	st.crc_errors = bst.crc_errors;
	bs_uuid(s->bs, uuid);
	for (unsigned int i = 0; i < 16; i++) {
		snprintf(uuid_hex + 2 * i, 3, "%02x", uuid[i]);
	}
	st.uuid = uuid_hex;
	st.ops_read = s->ctr.ops[KP_OP_READ];
	st.ops_write = s->ctr.ops[KP_OP_WRITE];
	for (unsigned int i = 0; i < KP_OP__MAX; i++) {
		if (i != KP_OP_READ && i != KP_OP_WRITE) {
			st.ops_other += s->ctr.ops[i];
		}
		st.errors += s->ctr.errors[i];
	}
	st.bytes_read = s->ctr.bytes_read;
	st.bytes_written = s->ctr.bytes_written;
	st.connections = s->nconns;
	if (s->cl) {
		st.recovery_bytes_copied = s->cl->rec_bytes_copied;
		st.recovery_objects_copied = s->cl->rec_objects_copied;
		st.map_epoch = s->cl->epoch;
		st.server_id = s->cl->self;
		st.writes_coalesced = s->ctr.writes_coalesced;
	}
	st.msg_hdr_crc_errors = kp_conn_stats.hdr_crc_errors;
	st.msg_data_crc_errors = kp_conn_stats.data_crc_errors;
	if (s->fault) {
		st.fault_msgs_dropped = s->fault->dropped;
		st.fault_msgs_corrupted = s->fault->corrupted;
		st.fault_msgs_delayed = s->fault->delayed;
	}
	return srv_reply_meta(req, &st.base);
}

static int srv_op_stat(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs)
{
	Keel__ObjectStat os = KEEL__OBJECT_STAT__INIT;
	struct bs_obj_stat bos;
	int ret;

	if (req->hdr.inode == 0) {
		ret = srv_stat_store(req);
	} else {
		ret = bs_stat_object(req->conn->srv->bs, req->hdr.inode, req->hdr.objno, &bos);
		if (!ret) {
			os.inode = bos.inode;
			os.objno = bos.objno;
			os.version = bos.version;
			os.blocks_mapped = bos.blocks_mapped;
			req->reply.hdr.obj_ver = bos.version;
			ret = srv_reply_meta(req, &os.base);
		}
	}
	if (ret) {
		return ret;
	}
	srv_req_finish(req, 0);
	return 0;
}

int srv_req_reply_object_page(struct srv_req *req,
			      bool (*match)(uint64_t inode, uint64_t objno, void *arg), void *arg,
			      uint64_t ci, uint64_t co, unsigned int max)
{
	struct srv *s = req->conn->srv;
	struct bs_obj_stat st[SRV_LIST_PAGE_MAX];
	Keel__ObjectStat ents[SRV_LIST_PAGE_MAX];
	Keel__ObjectStat *ptrs[SRV_LIST_PAGE_MAX];
	Keel__ObjectList out = KEEL__OBJECT_LIST__INIT;
	unsigned int n, extra = 0;
	bool first = !ci && !co;
	int ret;

	if (!max || max > SRV_LIST_PAGE_MAX) {
		max = SRV_LIST_PAGE_MAX;
	}
	/* Ask for one more than we return to learn whether more follow. */
	n = bs_list_match(s->bs, match, arg, &first, &ci, &co, st, max);
	if (n == max) {
		struct bs_obj_stat probe;
		bool pf = first;
		uint64_t pi = ci, po = co;

		extra = bs_list_match(s->bs, match, arg, &pf, &pi, &po, &probe, 1);
	}
	for (unsigned int i = 0; i < n; i++) {
		keel__object_stat__init(&ents[i]);
		ents[i].inode = st[i].inode;
		ents[i].objno = st[i].objno;
		ents[i].version = st[i].version;
		ents[i].blocks_mapped = st[i].blocks_mapped;
		ptrs[i] = &ents[i];
	}
	out.n_objects = n;
	out.objects = ptrs;
	out.more = extra > 0;
	/* bs_list_match() left the cursor on the last object returned. */
	out.cursor_inode = ci;
	out.cursor_objno = co;
	ret = srv_reply_meta(req, &out.base);
	if (ret) {
		return ret;
	}
	srv_req_finish(req, 0);
	return 0;
}

static bool srv_list_inode_match(uint64_t inode, uint64_t objno, void *arg)
{
	const uint64_t *want = arg;

	return *want == UINT64_MAX || inode == *want;
}

static int srv_op_list(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		       const uint32_t *crcs)
{
	Keel__ListRequest *lr;
	uint64_t inode, ci, co;
	unsigned int max;

	/* Control path: protobuf-c's default allocator is acceptable here. */
	lr = keel__list_request__unpack(NULL, req->hdr.meta_len, meta);
	if (!lr) {
		return -EINVAL;
	}
	inode = lr->all_inodes ? UINT64_MAX : lr->inode;
	ci = lr->cursor_inode;
	co = lr->cursor_objno;
	max = lr->max;
	keel__list_request__free_unpacked(lr, NULL);
	if (inode == 0) {
		return -EINVAL;
	}
	return srv_req_reply_object_page(req, srv_list_inode_match, &inode, ci, co, max);
}

static int srv_op_replica(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
			  const uint32_t *crcs)
{
	srv_repl_replica(req, meta, data, crcs);
	return 0;
}

static const struct srv_op srv_ops[KP_OP__MAX] = {
	[KP_OP_READ] = {"READ", srv_op_read, BS_OP_READ,
			SRV_OP_EXTENT | SRV_OP_META | SRV_OP_CLIENT},
	[KP_OP_WRITE] = {"WRITE", srv_op_write, BS_OP_WRITE,
			 SRV_OP_EXTENT | SRV_OP_DATA | SRV_OP_CLIENT},
	[KP_OP_DISCARD] = {"DISCARD", srv_op_discard, BS_OP_DISCARD, SRV_OP_EXTENT | SRV_OP_CLIENT},
	[KP_OP_WRITE_ZEROES] = {"WRITE_ZEROES", srv_op_write_zeroes, BS_OP_WRITE_ZEROES,
				SRV_OP_EXTENT | SRV_OP_CLIENT},
	[KP_OP_SYNC] = {"SYNC", srv_op_sync, BS_OP_SYNC, SRV_OP_CLIENT},
	[KP_OP_LIST] = {"LIST", srv_op_list, 0, SRV_OP_META},
	[KP_OP_STAT] = {"STAT", srv_op_stat, 0, 0},
	[KP_OP_PING] = {"PING", srv_op_ping, 0, 0},
	/* cluster mode only: srv_repl.c validates and serves these */
	[KP_OP_REPLICA_WRITE] = {"REPLICA_WRITE", srv_op_replica, 0,
				 SRV_OP_EXTENT | SRV_OP_DATA | SRV_OP_CLUSTER},
	[KP_OP_REPLICA_DISCARD] = {"REPLICA_DISCARD", srv_op_replica, 0,
				   SRV_OP_EXTENT | SRV_OP_CLUSTER},
	[KP_OP_REPLICA_LIST] = {"REPLICA_LIST", srv_op_replica, 0, SRV_OP_META | SRV_OP_CLUSTER},
	[KP_OP_REPLICA_BVERS] = {"REPLICA_BVERS", srv_op_replica, 0, SRV_OP_CLUSTER},
	[KP_OP_REPLICA_PUSH] = {"REPLICA_PUSH", srv_op_replica, 0,
				SRV_OP_EXTENT | SRV_OP_DATA | SRV_OP_META | SRV_OP_CLUSTER},
	[KP_OP_REPLICA_DELETE] = {"REPLICA_DELETE", srv_op_replica, 0, SRV_OP_CLUSTER},
};

/* Checks that need the store's geometry. 0 or -errno for the reply. */
static int srv_validate(struct srv_req *req, const struct srv_op *op)
{
	const struct kp_hdr *h = &req->hdr;
	uint32_t osize = bs_object_size(req->conn->srv->bs);

	if (h->meta_len && !(op->flags & SRV_OP_META)) {
		return -EINVAL;
	}
	if ((op->flags & SRV_OP_CLUSTER) && !req->conn->srv->cl) {
		return -ENOTSUP;
	}
	if (!(op->flags & SRV_OP_DATA) && h->data_len) {
		return -EINVAL;
	}
	if (!(op->flags & SRV_OP_EXTENT)) {
		return 0;
	}
	if (h->inode == 0) {
		return -EINVAL;
	}
	if (!h->length || h->length > BS_MAX_IO) {
		return -EINVAL;
	}
	if ((uint64_t)h->offset + h->length > osize) {
		return -ERANGE;
	}
	return 0;
}

void srv_dispatch(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		  const uint32_t *crcs)
{
	struct srv *s = req->conn->srv;
	uint16_t opcode = req->hdr.opcode;
	const struct srv_op *op;
	int ret;

	op = opcode < KP_OP__MAX ? &srv_ops[opcode] : NULL;
	if (!op || !op->handler) {
		/* HELLO/AUTH after the handshake never reach us (kp_conn closes);
		 * anything else unknown was refused by kp_hdr_decode(). */
		srv_req_finish(req, -EPROTO);
		return;
	}
	s->ctr.ops[opcode]++;
	req->start_ns = reactor_now_ns();
	req->slow_logged = false;
	log_debug("%s %s req %llu inode %llu objno %llu off %u len %u", req->conn->peer, op->name,
		  (unsigned long long)req->hdr.req_id, (unsigned long long)req->hdr.inode,
		  (unsigned long long)req->hdr.objno, req->hdr.offset, req->hdr.length);
	ret = srv_validate(req, op);
	if (!ret && s->cl && (op->flags & SRV_OP_CLIENT)) {
		ret = srv_cluster_check_client(s->cl, req);
	}
	if (!ret) {
		ret = op->handler(req, meta, data, crcs);
	}
	if (ret) {
		srv_req_finish(req, ret);
	}
}

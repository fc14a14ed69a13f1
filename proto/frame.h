/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keel data-path framing (wire format version 1). Spec: docs/wire-format.md.
 *
 * Every message is a fixed 88-byte little-endian header followed by
 *   meta_len bytes of protobuf-c control message (proto/keel.proto), then
 *   data_len bytes of raw data (a multiple of 4096), then
 *   data_len / 4096 little-endian crc32c values, one per 4 KiB data block.
 * The header carries its own crc32c (computed with hdr_crc = 0).
 *
 * Requests and replies share the header; a reply sets KP_F_REPLY, echoes
 * req_id and opcode, and carries a wire status (enum kp_status).
 *
 * Pure functions, no allocation, callable from any thread.
 */
#ifndef KEEL_PROTO_FRAME_H
#define KEEL_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KP_MAGIC 0x4c45454bu /* "KEEL" in little-endian byte order */
#define KP_VERSION 1
#define KP_HDR_SIZE 88
#define KP_MAX_META (64u * 1024)     /* largest protobuf control message */
#define KP_MAX_DATA (1024u * 1024)   /* largest data payload per frame */
#define KP_BLOCK 4096u
#define KP_READ_CHAIN_MAX 64u        /* parents in one READ's ReadChain */

enum kp_opcode {
	/* handshake: the only opcodes accepted before authentication */
	KP_OP_HELLO = 1,     /* client -> server: AuthHello; reply: AuthChallenge */
	KP_OP_AUTH = 2,      /* client -> server: AuthProof; reply: status only */
	/* object operations (inode, objno, offset, length address the extent) */
	KP_OP_READ = 16,     /* reply: data + crcs, obj_ver = object version */
	KP_OP_WRITE = 17,    /* request: data + crcs; reply: obj_ver assigned */
	KP_OP_DISCARD = 18,  /* unmap extent; whole object frees its space */
	KP_OP_WRITE_ZEROES = 19,
	KP_OP_SYNC = 20,     /* everything acknowledged before is durable */
	KP_OP_LIST = 21,     /* reply meta: ObjectList (inode filter, cursor) */
	KP_OP_STAT = 22,     /* reply meta: ObjectStat or StoreStat (inode 0) */
	KP_OP_PING = 23,
	/* cluster control, on the cluster port of keel-mgmt (docs/cluster.md) */
	KP_OP_MG_REGISTER = 32,   /* server -> mgmt: RegisterRequest; reply RegisterReply */
	KP_OP_MG_HEARTBEAT = 33,  /* server -> mgmt: Heartbeat; reply status (epoch in hdr) */
	KP_OP_MG_SUBSCRIBE = 34,  /* client -> mgmt: Subscribe; reply ClusterMap */
	KP_OP_MG_MAP = 35,        /* mgmt -> server/client push: ClusterMap; reply status */
	KP_OP_MG_VOLUME_OPEN = 36, /* client -> mgmt: VolumeOpenRequest; reply VolumeInfo */
	KP_OP_MG_PG_REPORT = 37,  /* server -> mgmt: PgReportBatch; reply status */
	KP_OP_MG_USAGE = 38,      /* server -> mgmt: UsageReport; reply status */
	/* server to server: replication and recovery, epoch-fenced */
	KP_OP_REPLICA_WRITE = 48, /* like WRITE; obj_ver carries the version to store */
	KP_OP_REPLICA_DISCARD = 49, /* like DISCARD/WRITE_ZEROES; obj_ver = version */
	KP_OP_REPLICA_LIST = 50,  /* ListRequest (by PG) -> ObjectList */
	KP_OP_REPLICA_BVERS = 51, /* one object -> BlockVersions */
	KP_OP_REPLICA_PUSH = 52,  /* extent data + PushRequest (exact block versions) */
	KP_OP_REPLICA_DELETE = 53, /* drop one object entirely */
	KP_OP__MAX,
};

enum kp_flags {
	KP_F_REPLY = 1u << 0,
	KP_F_FUA = 1u << 1, /* write: durable before the reply (always true today) */
	/* READ of a snapshot view: the inode may be read-only. Without it, a
	 * READ whose inode is a read-only layer gets EROFS: the reader holds a
	 * volume's former top (a snapshot or revert replaced it) and must
	 * reopen the volume rather than read a past state of it. */
	KP_F_SNAP = 1u << 2,
	KP_F__ALL = KP_F_REPLY | KP_F_FUA | KP_F_SNAP,
};

/*
 * Wire status. The only mapping from errno is kp_status_from_errno(); the
 * only mapping back is kp_status_to_errno().
 */
enum kp_status {
	KP_S_OK = 0,
	KP_S_EIO = 1,        /* media error, checksum mismatch on disk */
	KP_S_ENOSPC = 2,
	KP_S_EINVAL = 3,     /* malformed request */
	KP_S_ENOENT = 4,
	KP_S_ESTALE = 5,     /* stale epoch: refresh map and retry */
	KP_S_EPERM = 6,      /* not authenticated / fenced generation */
	KP_S_EBADMSG = 7,    /* payload crc mismatch in transit */
	KP_S_EAGAIN = 8,
	KP_S_ENOTSUP = 9,
	KP_S_ERANGE = 10,    /* extent outside the object */
	KP_S_EPROTO = 11,
	KP_S_EBUSY = 12,
	KP_S_ETIMEDOUT = 13,
	KP_S_EROFS = 14,     /* layer read-only or deleted: reopen the volume */
	KP_S__MAX,
};

/* Host-order view of a header. */
struct kp_hdr {
	uint16_t version;
	uint16_t opcode;
	uint32_t flags;
	int32_t status;   /* enum kp_status, replies only */
	uint64_t req_id;
	uint64_t epoch;   /* cluster map epoch of the sender (0: none) */
	uint64_t inode;   /* layer id */
	uint64_t objno;   /* object index within the layer */
	uint64_t obj_ver; /* object version (write: expected/assigned) */
	uint64_t gen;     /* attachment generation (0: none) */
	uint32_t offset;  /* byte offset within the object, 4 KiB aligned */
	uint32_t length;  /* extent length in bytes, 4 KiB multiple */
	uint32_t meta_len;
	uint32_t data_len;
	uint32_t pgid;    /* placement group: pool << 20 | pg number (0: none) */
};

#define KP_PGID(pool, pg) ((uint32_t)(pool) << 20 | (uint32_t)(pg))
#define KP_PGID_POOL(id) ((id) >> 20)
#define KP_PGID_PG(id) ((id) & 0xfffffu)

/* Exact wire layout, little-endian. */
struct kp_wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t opcode;
	uint32_t flags;
	int32_t status;
	uint64_t req_id;
	uint64_t epoch;
	uint64_t inode;
	uint64_t objno;
	uint64_t obj_ver;
	uint64_t gen;
	uint32_t offset;
	uint32_t length;
	uint32_t meta_len;
	uint32_t data_len;
	uint32_t pgid;
	uint32_t hdr_crc;
} __attribute__((packed));
_Static_assert(sizeof(struct kp_wire_hdr) == KP_HDR_SIZE, "wire header size");

/* Encode @h into @wire (KP_HDR_SIZE bytes), filling magic and hdr_crc. */
void kp_hdr_encode(const struct kp_hdr *h, void *wire);

/*
 * Decode and validate a header. Returns 0, or a negative errno with a static
 * human-readable reason in *reason (if non-NULL):
 *   -EBADMSG  wrong magic, header crc mismatch
 *   -EPROTONOSUPPORT  version other than KP_VERSION
 *   -EPROTO   unknown opcode, unknown flags,
 *             status out of range, a request carrying a status
 *   -EMSGSIZE meta_len > KP_MAX_META, data_len > KP_MAX_DATA,
 *             data_len not a multiple of 4096
 *   -EINVAL   offset/length not 4 KiB aligned, offset + length overflows,
 *             data_len inconsistent with the opcode (e.g. WRITE with
 *             data_len != length, READ request with data), a zero-length
 *             READ/WRITE/DISCARD/WRITE_ZEROES request, a READ request
 *             longer than KP_MAX_DATA, a reply with an error status and data
 * Checks run in that order after the magic: version, then header crc.
 */
int kp_hdr_decode(const void *wire, struct kp_hdr *h, const char **reason);

/* Bytes that follow the header: meta + data + crcs. */
static inline size_t kp_payload_len(const struct kp_hdr *h)
{
	return (size_t)h->meta_len + h->data_len + (h->data_len / KP_BLOCK) * 4u;
}

/* True when every 4 KiB block of @data matches its crc. @crcs are the
 * little-endian wire values and need not be 4-byte aligned; false when
 * @data_len is not a multiple of 4096. */
bool kp_data_verify(const void *data, uint32_t data_len, const uint32_t *crcs);

/* Wire status for a negative errno (0 -> KP_S_OK; a positive value is read
 * as its negation). Aliases map to their canonical status (EWOULDBLOCK ->
 * EAGAIN, EOPNOTSUPP -> ENOTSUP, EACCES -> EPERM); any other errno -> KP_S_EIO. */
int kp_status_from_errno(int neg_errno);
/* Negative errno for a wire status (KP_S_OK -> 0); out of range -> -EPROTO.
 * kp_status_from_errno(kp_status_to_errno(s)) == s for every valid s. */
int kp_status_to_errno(int status);
/* "READ", "WRITE", ...; "UNKNOWN" for anything not in enum kp_opcode. */
const char *kp_opcode_name(uint16_t opcode);

#endif

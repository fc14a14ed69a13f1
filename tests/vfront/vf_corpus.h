/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The malicious-guest corpus, shared between its harness (vf_corpus.c:
 * connections, raw requests and messages, canary, liveness checks) and
 * its cases (vf_corpus_cases.c: one function and one table row each).
 * Outcomes and the pass rule: see vf_corpus.c.
 */
#ifndef KEEL_TESTS_VFRONT_VF_CORPUS_H
#define KEEL_TESTS_VFRONT_VF_CORPUS_H

#include <stddef.h>

#include "tests/vfront/vf.h"

#define VF_CORPUS_MEM	  (64ull << 20)
#define VF_CORPUS_QSIZE	  256u
#define VF_CORPUS_DATA	  (64u << 10)
#define VF_CANARY_HEAD	  64u /* blocks at the start of the device */
#define VF_CANARY_TAIL	  16u /* blocks at the end */
#define VF_CANARY_SEQ	  1u
#define VF_BAD_SEQ	  666u	       /* what bad writes carry */
#define VF_RO_MARKER	  0x5a	       /* fills device-readable buffers */
#define VF_FAR_GPA	  (1ull << 47) /* inside no region */
#define VF_RECONNECT_MS	  3000
#define VF_CLOSE_GRACE_MS 200 /* how long a close may lag behind an ack */

enum vf_outcome {
	VF_OC_OK,
	VF_OC_IOERR,
	VF_OC_UNSUPP,
	VF_OC_NOSTATUS,
	VF_OC_CLOSED,
	VF_OC_REJECTED,
	VF_OC_HANG,
	VF_OC_BAD,  /* harm seen by the frontend (see the note) */
	VF_OC_SKIP, /* not applicable to this backend */
	VF_OC__COUNT,
};

#define OC(x)	  (1u << VF_OC_##x)
#define OC_STATUS (OC(IOERR) | OC(UNSUPP))

struct vf_corpus {
	const struct vf_cli *cli;
	struct vf_dev dev; /* the current case's connection */
	bool ready;	   /* memory table and queues set up on dev */
	/* raw request buffers in guest memory, set up with the queues */
	struct vf_blk_req_hdr *hdr;
	uint8_t *data;
	uint8_t *status;
	struct vf_desc *itab; /* an indirect table (256 entries) */
	struct vf_blk_dwz_seg *segs;
	uint64_t capacity; /* bytes */
	uint32_t blk_size;
	char note[256];
};

struct vf_case {
	const char *name;
	unsigned int accept; /* OC() mask */
	bool message;	     /* a message case: runs before the memory table */
	enum vf_outcome (*run)(struct vf_corpus *c);
	const char *what;
};

/* Accepted-outcome sets used by the case table. */
#define OC_STATUS_OR_CLOSE (OC_STATUS | OC(CLOSED))
#define OC_NO_STATUS_SLOT  (OC(NOSTATUS) | OC(CLOSED))
#define OC_ANY_REFUSAL	   (OC_STATUS | OC(NOSTATUS) | OC(CLOSED))
#define OC_MSG_REFUSAL	   (OC(REJECTED) | OC(CLOSED))

/* A descriptor of a raw chain: @next is an index into the same chain
 * (mapped to the ring's ids) unless @abs_next. */
struct vf_rd {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
	bool abs_next;
};

/* Record why a case failed or was skipped (shown next to its outcome). */
void vf_corpus_note(struct vf_corpus *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Guest-physical address of a buffer of the current connection. */
uint64_t vf_corpus_gpa(struct vf_corpus *c, const void *p);

/* Queues (two when offered) and the raw request buffers, once the memory
 * table is through. 0 or -errno as vf_dev_start_queue(). */
int vf_corpus_start_queues(struct vf_corpus *c);

/* Guest memory for message cases (created once per connection). */
int vf_corpus_mem(struct vf_corpus *c);

/* The well-formed chain for one request: header, data (@data_len bytes of
 * c->data, device-writable for reads), status. Returns 3, or 2 when
 * @data_len is 0. */
unsigned int vf_std_chain(struct vf_corpus *c, struct vf_rd *rd, uint32_t type, uint64_t sector,
			  uint32_t data_len);

/* Copy @n descriptors to c->itab; returns the ring descriptor pointing at
 * the table with length @len. */
struct vf_rd vf_indirect(struct vf_corpus *c, const struct vf_rd *rd, unsigned int n, uint32_t len);

/* Submit @n raw descriptors as one chain on queue @q and wait for the
 * outcome (status byte, NOSTATUS, CLOSED, HANG, or BAD for a bad used
 * entry). vf_raw_wait() only waits (for cases that publish by hand). */
enum vf_outcome vf_raw(struct vf_corpus *c, unsigned int q, const struct vf_rd *rd, unsigned int n);
enum vf_outcome vf_raw_wait(struct vf_corpus *c, unsigned int q);

/* Publish @n raw descriptors as one chain on queue @q and notify, without
 * touching c->status or waiting. -ENOSPC, -ECONNRESET, -errno. */
int vf_raw_submit_nowait(struct vf_corpus *c, unsigned int q, const struct vf_rd *rd,
			 unsigned int n);

/* Fill @len bytes of c->data with blocks a bad write carries (they must
 * never land: the canary check finds them). */
void vf_bad_payload(struct vf_corpus *c, uint32_t len);

/* Send one (possibly malformed) message and classify the answer: REJECTED
 * (non-zero REPLY_ACK), OK (acked 0, or still answering without
 * REPLY_ACK, and not closed soon after), CLOSED, HANG. @size goes into
 * the header as given. vf_probe() is the well-framed form. */
enum vf_outcome vf_probe_msg(struct vf_corpus *c, uint32_t request, uint32_t flags, uint32_t size,
			     const void *payload, uint32_t len, const int *fds, unsigned int nfds);
enum vf_outcome vf_probe(struct vf_corpus *c, uint32_t request, const void *payload, uint32_t len,
			 const int *fds, unsigned int nfds);

/* SET_MEM_TABLE with @nregions regions from @r and @nfds copies of the
 * guest memfd, probed as vf_probe(). */
enum vf_outcome vf_probe_mem_table(struct vf_corpus *c, const struct vf_mem_region *r,
				   uint32_t nregions, unsigned int nfds);

extern const struct vf_case vf_corpus_cases[];
extern const size_t vf_corpus_ncases;

#endif

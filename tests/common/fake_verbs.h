/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_verbs: a software RDMA device for unit tests of common/xport_rdma.c.
 *
 * fake_verbs.c defines the libibverbs and librdmacm functions the transport
 * calls (the test binary does not link the real libraries) and the ops table
 * of its one struct ibv_context, through which verbs.h's inline
 * ibv_post_send/ibv_post_recv/ibv_poll_cq/ibv_req_notify_cq go.
 *
 * The model:
 *  - rdma_cm: an event channel is an eventfd, readable while it holds events.
 *    rdma_connect() to an address with a listener creates the passive id and
 *    queues CONNECT_REQUEST on the listener's channel; rdma_accept() joins
 *    the two queue pairs and queues ESTABLISHED on both sides (the accept's
 *    private data on the active side); no listener: REJECTED. rdma_disconnect()
 *    moves the QP to error (as librdmacm does) and queues DISCONNECTED on both
 *    sides. Scripts replace the events of address and route resolution and
 *    of the connect.
 *  - The wire: posted work requests wait until the test calls
 *    fake_wire_run(), which executes them, one at a time from a randomly
 *    chosen queue pair (seeded), in order within a queue pair. A SEND lands
 *    in the peer's oldest posted receive; none posted is an RNR. An RDMA READ
 *    copies from the peer's memory, which must lie inside a live memory
 *    region of the peer's PD registered with IBV_ACCESS_REMOTE_READ whose
 *    rkey matches. Every local scatter/gather entry must lie inside a live MR
 *    of the QP's PD with that lkey (receives and READ targets: with
 *    IBV_ACCESS_LOCAL_WRITE). Data is read and written when the request
 *    executes, not when it is posted. Work towards a peer whose QP is gone
 *    or in error waits (as retries would) until fake_expire_retries().
 *  - Completions go into the CQ (its size is what ibv_create_cq asked for:
 *    one more is an overrun); an armed CQ queues one event on its completion
 *    channel (an eventfd, readable while it holds events). A QP in error
 *    flushes its posted work requests (IBV_WC_WR_FLUSH_ERR) and every later
 *    post. A send or receive queue holds a work request from its post until
 *    its completion is polled.
 *
 * Every object is counted (created / destroyed) and kept until
 * fake_reset(): using or destroying a destroyed object, destroying in the
 * wrong order (a PD with MRs, a CQ with its QP, a channel with its CQ), an
 * RNR, a protection error, a CQ or work queue overrun, destroying an id or a
 * CQ with events taken and not acknowledged (the real library would wait
 * forever), or reading an empty blocking channel (it would block) is a
 * violation: logged and counted for the test to assert on.
 *
 * Thread-safe (one lock): the transport's accept thread calls in too.
 */
#ifndef KEEL_TESTS_FAKE_VERBS_H
#define KEEL_TESTS_FAKE_VERBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

enum fake_kind {
	FAKE_DEVLIST, /* ibv_get_device_list() results */
	FAKE_ECH,     /* rdma_cm event channels */
	FAKE_ID,      /* rdma_cm ids (a passive one from its CONNECT_REQUEST on) */
	FAKE_EVENT,   /* rdma_cm events taken (destroyed = acknowledged) */
	FAKE_PD,
	FAKE_CCH, /* completion channels */
	FAKE_CQ,
	FAKE_QP,
	FAKE_MR,
	FAKE_KINDS,
};

/* Which end of a connection: the one that called rdma_connect(), or the
 * one a listener accepted. */
enum fake_side {
	FAKE_ACTIVE,
	FAKE_PASSIVE,
};

/* What a script makes a step do instead of succeeding: deliver this event
 * (any enum rdma_cm_event_type), or nothing at all. */
#define FAKE_NORMAL (-1)
#define FAKE_SILENT (-2)

struct fake_stats {
	uint64_t sends, send_bytes; /* SENDs executed (landed in a receive) */
	uint64_t reads, read_bytes; /* RDMA READs executed */
	uint64_t flushed;	    /* work requests completed with IBV_WC_WR_FLUSH_ERR */
	uint64_t rejects;	    /* rdma_reject() calls */
	uint64_t sends_by[2];	    /* SENDs executed, by the sending side */
	int connect_rnr_retry;	    /* rnr_retry_count of the last rdma_connect(), -1: none */
	int accept_rnr_retry;	    /* and of the last rdma_accept() */
};

/* Forget every object (freeing them, closing their fds) and counter; one
 * device; no scripts; the wire runs; seed the queue pair choice. */
void fake_reset(uint64_t seed);

unsigned int fake_created(enum fake_kind k);
unsigned int fake_live(enum fake_kind k); /* created - destroyed */
const char *fake_kind_name(enum fake_kind k);
bool fake_all_released(void);
unsigned int fake_violations(void);
void fake_get_stats(struct fake_stats *out);

/* How many devices ibv_get_device_list() reports (0: librdmacm's
 * rdma_create_event_channel() fails with ENODEV as the real one does). */
void fake_set_devices(int n);
/* Scripts (FAKE_NORMAL, FAKE_SILENT or an event type) for every following
 * rdma_resolve_addr(), rdma_resolve_route() and rdma_connect(). */
void fake_script(int on_addr, int on_route, int on_connect);

/* Run the wire until nothing more can move; returns work requests executed. */
unsigned int fake_wire_run(void);
/* Hold the wire: fake_wire_run() executes nothing. */
void fake_wire_hold(bool hold);
/* Nothing executable is posted, and every CQ is empty. */
bool fake_quiet(void);
/* Work held because the peer's QP is gone or in error fails as retries
 * running out would: IBV_WC_RETRY_EXC_ERR, the QP goes to error. */
void fake_expire_retries(void);

/* Faults on the newest live QP / CQ / id of @side. */
/* Its next SEND, READ or WRITE executed completes with @status, and the QP
 * goes to error (the rest flushes). */
void fake_fail_next_wr(enum fake_side side, enum ibv_wc_status status);
/* The device moves the QP to error: everything posted flushes. */
void fake_qp_to_error(enum fake_side side);
/* The CQ overruns: from now on ibv_poll_cq() returns -1. */
void fake_cq_overrun(enum fake_side side);
/* No completion events (muted); unmuting raises one if the CQ is armed
 * and holds completions. */
void fake_cq_mute(enum fake_side side, bool mute);
/* Queue an rdma_cm event on the id of @side. */
void fake_cm_event(enum fake_side side, enum rdma_cm_event_type type);
/* The next ibv_post_send (@send) or ibv_post_recv on a QP of @side, made
 * now or later, returns @err (a positive errno, as the real ones). */
void fake_fail_post(enum fake_side side, bool send, int err);
/* rdma_cm events queued for the id of @side and not yet taken. */
unsigned int fake_cm_pending(enum fake_side side);
/* The next ibv_reg_mr() fails with errno @err (the memlock limit). */
void fake_fail_reg_mr(int err);
/* SENDs executed so far from the newest QP of @side, and receives it has
 * posted and not yet consumed. */
uint64_t fake_qp_sends(enum fake_side side);
unsigned int fake_qp_recvs_posted(enum fake_side side);

/* Hold the passive side's ESTABLISHED (the RTU not yet in): its
 * connections stay accepted and not established. */
void fake_hold_established(bool hold);
/* The newest passive id has moved off its listener's event channel
 * (rdma_migrate_id()): the accept thread is done with it. */
bool fake_passive_migrated(void);

/* A CONNECT_REQUEST with this private data, from no one, to the newest
 * listening id (accepting it establishes a QP with no peer). */
void fake_connect_request(const void *pdata, uint8_t len);

#endif

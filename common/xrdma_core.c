/* SPDX-License-Identifier: Apache-2.0 */
/* RDMA transport logic: credits, slots, framing (see xrdma_core.h). */
#include "xrdma_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define XRDMA_ALIGN 4096

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void xrdma_geom_default(struct xrdma_geom *g, size_t rx_size)
{
	g->slots = 32;
	g->slot_size = 8192;
	g->big_count = 4;
	g->big_size = 256 * 1024;
	g->read_min = 8192;
	g->rx_size = rx_size;
}

int xrdma_geom_check(const struct xrdma_geom *g)
{
	if (g->slots < 2 || g->slots > XRDMA_MAX_SLOTS || g->slot_size < XRDMA_MIN_SLOT_SIZE ||
	    g->slot_size > XRDMA_MAX_SLOT_SIZE || g->big_count < 1 ||
	    g->big_count > XRDMA_MAX_BIG || g->big_size < 4096 ||
	    g->big_size > XRDMA_MAX_BIG_SIZE || g->read_min < 1 || g->rx_size < g->slot_size) {
		return -EINVAL;
	}
	return 0;
}

void xrdma_cm_encode(const struct xrdma_cm_params *p, uint8_t out[XRDMA_CM_SIZE])
{
	put32(out, XRDMA_CM_MAGIC);
	put16(out + 4, p->version);
	put16(out + 6, p->slots);
	put32(out + 8, p->slot_size);
}

int xrdma_cm_decode(const uint8_t *buf, size_t len, struct xrdma_cm_params *p)
{
	if (!buf || len < XRDMA_CM_SIZE || get32(buf) != XRDMA_CM_MAGIC) {
		return -EPROTO;
	}
	p->version = get16(buf + 4);
	p->slots = get16(buf + 6);
	p->slot_size = get32(buf + 8);
	if (p->version != XRDMA_VERSION) {
		return -EPROTONOSUPPORT;
	}
	if (p->slots < 2 || p->slots > XRDMA_MAX_SLOTS || p->slot_size < XRDMA_MIN_SLOT_SIZE ||
	    p->slot_size > XRDMA_MAX_SLOT_SIZE) {
		return -EPROTO;
	}
	return 0;
}

static void *xrdma_alloc(size_t len)
{
	void *p;

	len = (len + XRDMA_ALIGN - 1) / XRDMA_ALIGN * XRDMA_ALIGN;
	p = aligned_alloc(XRDMA_ALIGN, len);
	if (p) {
		memset(p, 0, len);
	}
	return p;
}

int xrdma_core_init(struct xrdma_core *k, const struct xrdma_geom *g,
		    const struct xrdma_verbs *verbs, void *ctx)
{
	int ret = xrdma_geom_check(g);

	if (ret) {
		return ret;
	}
	memset(k, 0, sizeof(*k));
	k->verbs = verbs;
	k->ctx = ctx;
	k->g = *g;
	k->rx_slots = xrdma_alloc((size_t)g->slots * g->slot_size);
	k->tx_slots = xrdma_alloc((size_t)g->slots * g->slot_size);
	k->big = xrdma_alloc((size_t)g->big_count * g->big_size);
	k->rx_buf = xrdma_alloc(g->rx_size);
	k->rx_len = calloc(g->slots, sizeof(*k->rx_len));
	k->rx_type = calloc(g->slots, sizeof(*k->rx_type));
	k->rxq = calloc(g->slots, sizeof(*k->rxq));
	k->tx_free = calloc(g->slots, sizeof(*k->tx_free));
	k->tx_sends = calloc(g->slots, sizeof(*k->tx_sends));
	if (!k->rx_slots || !k->tx_slots || !k->big || !k->rx_buf || !k->rx_len || !k->rx_type ||
	    !k->rxq || !k->tx_free || !k->tx_sends) {
		xrdma_core_fini(k);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < g->slots; i++) {
		k->tx_free[i] = g->slots - 1 - i;
	}
	k->tx_nfree = g->slots;
	k->sq_tail = &k->sq_head;
	k->ready_tail = &k->ready;
	/* Until the peer says otherwise: our own sizes, no credits. */
	k->peer_slots = g->slots;
	k->peer_slot_size = g->slot_size;
	return 0;
}

void xrdma_core_set_peer(struct xrdma_core *k, const struct xrdma_cm_params *peer)
{
	k->peer_slots = peer->slots;
	k->peer_slot_size = peer->slot_size < k->g.slot_size ? peer->slot_size : k->g.slot_size;
	k->peer_credits = peer->slots;
}

void xrdma_core_fini(struct xrdma_core *k)
{
	free(k->rx_slots);
	free(k->tx_slots);
	free(k->big);
	free(k->rx_buf);
	free(k->rx_len);
	free(k->rx_type);
	free(k->rxq);
	free(k->tx_free);
	free(k->tx_sends);
	k->tx_sends = NULL;
	k->rx_slots = k->tx_slots = k->big = k->rx_buf = NULL;
	k->rx_len = k->rxq = k->tx_free = NULL;
	k->rx_type = NULL;
}

int xrdma_core_post_all_recvs(struct xrdma_core *k)
{
	for (uint32_t i = 0; i < k->g.slots; i++) {
		int ret = k->verbs->post_recv(k, i);

		if (ret) {
			return ret;
		}
		k->rx_posted++;
	}
	return 0;
}

/* --- receive --- */

static int xrdma_repost(struct xrdma_core *k, uint32_t slot)
{
	int ret = k->verbs->post_recv(k, slot);

	if (ret) {
		return ret;
	}
	k->rx_posted++;
	k->grant_pending++;
	return 0;
}

static int xrdma_add_credits(struct xrdma_core *k, uint32_t credits)
{
	if (credits > k->peer_slots || k->peer_credits + credits > k->peer_slots) {
		log_warn("rdma: peer granted %u credits on top of %u (it has %u slots)", credits,
			 k->peer_credits, k->peer_slots);
		return -EPROTO;
	}
	k->peer_credits += credits;
	return 0;
}

/* One thing @s awaited happened: when it was the last and the send is
 * fully queued (off the send queue), its callback is due. */
static void xrdma_release(struct xrdma_core *k, struct xport_send *s)
{
	kassert(s->held > 0);
	if (--s->held || s->done < s->total) {
		return;
	}
	s->next = NULL;
	*k->ready_tail = s;
	k->ready_tail = &s->next;
}

int xrdma_core_recv_done(struct xrdma_core *k, uint32_t slot, uint32_t byte_len)
{
	const uint8_t *m = k->rx_slots + (size_t)slot * k->g.slot_size;
	uint32_t len, id;
	int ret;

	kassert(slot < k->g.slots && k->rx_posted > 0);
	k->rx_posted--;
	if (k->stopped) {
		return 0;
	}
	if (byte_len < XRDMA_HDR_SIZE || byte_len > k->g.slot_size) {
		log_warn("rdma: message of %u bytes (slot %u)", byte_len, k->g.slot_size);
		return -EPROTO;
	}
	len = get32(m + 4);
	if (m[1] != XRDMA_VERSION || len != byte_len - XRDMA_HDR_SIZE) {
		log_warn("rdma: bad message header (version %u, length %u of %u)", m[1], len,
			 byte_len);
		return -EPROTO;
	}
	ret = xrdma_add_credits(k, get16(m + 2));
	if (ret) {
		return ret;
	}
	k->st.msgs_in++;
	switch (m[0]) {
	case XRDMA_MSG_DATA:
		if (!len) {
			return -EPROTO;
		}
		break;
	case XRDMA_MSG_READ_REQ:
		if (len != XRDMA_READ_REQ_BODY || !get32(m + XRDMA_HDR_SIZE + 12) ||
		    get32(m + XRDMA_HDR_SIZE + 12) > XRDMA_MAX_BIG_SIZE) {
			log_warn("rdma: bad READ_REQ");
			return -EPROTO;
		}
		break;
	case XRDMA_MSG_READ_DONE:
		id = len == XRDMA_READ_DONE_BODY ? get32(m + XRDMA_HDR_SIZE) : UINT32_MAX;
		if (id >= XRDMA_ZC_ID0 && id - XRDMA_ZC_ID0 < XRDMA_MAX_ZC &&
		    (k->zc_busy & (1u << (id - XRDMA_ZC_ID0)))) {
			id -= XRDMA_ZC_ID0;
			k->zc_busy &= ~(1u << id);
			xrdma_release(k, k->zc_send[id]);
			k->zc_send[id] = NULL;
			return xrdma_repost(k, slot);
		}
		if (id >= k->g.big_count || !(k->big_busy & (1u << id))) {
			log_warn("rdma: READ_DONE for buffer %u, not being read", id);
			return -EPROTO;
		}
		k->big_busy &= ~(1u << id);
		xrdma_release(k, k->big_send[id]);
		k->big_send[id] = NULL;
		return xrdma_repost(k, slot);
	case XRDMA_MSG_CREDIT:
		if (len) {
			return -EPROTO;
		}
		return xrdma_repost(k, slot);
	default:
		log_warn("rdma: unknown message type %u", m[0]);
		return -EPROTO;
	}
	kassert(k->rxq_count < k->g.slots);
	k->rx_len[slot] = len;
	k->rx_type[slot] = m[0];
	k->rxq[(k->rxq_head + k->rxq_count) % k->g.slots] = slot;
	k->rxq_count++;
	return 0;
}

static void xrdma_rxq_pop(struct xrdma_core *k)
{
	k->rxq_head = (k->rxq_head + 1) % k->g.slots;
	k->rxq_count--;
	k->rx_data_off = 0;
	k->rd_done = 0;
}

/* Free space at the end of the stream buffer, compacting when that helps.
 * Never while a READ writes into it. */
static size_t xrdma_rx_space(struct xrdma_core *k)
{
	if (k->rx_start == k->rx_end) {
		k->rx_start = k->rx_end = 0;
	} else if (k->rx_start && !k->rd_inflight && k->rx_end - k->rx_start <= k->rx_start) {
		/* Move the partial message at most once per half buffer. */
		memmove(k->rx_buf, k->rx_buf + k->rx_start, k->rx_end - k->rx_start);
		k->rx_end -= k->rx_start;
		k->rx_start = 0;
	} else if (k->rx_start && !k->rd_inflight && k->rx_end == k->g.rx_size) {
		memmove(k->rx_buf, k->rx_buf + k->rx_start, k->rx_end - k->rx_start);
		k->rx_end -= k->rx_start;
		k->rx_start = 0;
	}
	return k->g.rx_size - k->rx_end;
}

int xrdma_core_read_done(struct xrdma_core *k)
{
	uint32_t slot;

	kassert(k->rd_inflight && k->rxq_count);
	k->rd_inflight = false;
	if (k->stopped) {
		return 0;
	}
	slot = k->rxq[k->rxq_head];
	k->rx_end += k->rd_len;
	k->rd_done += k->rd_len;
	k->st.reads++;
	k->st.read_bytes_in += k->rd_len;
	k->st.bytes_in += k->rd_len;
	k->rx_fresh = true;
	if (k->rd_done ==
	    get32(k->rx_slots + (size_t)slot * k->g.slot_size + XRDMA_HDR_SIZE + 12)) {
		const uint8_t *b = k->rx_slots + (size_t)slot * k->g.slot_size + XRDMA_HDR_SIZE;

		if (k->done_count == XRDMA_MAX_READS) {
			/* A peer keeping to its own limits cannot get here. */
			log_warn("rdma: peer has more than %u RDMA READs outstanding",
				 XRDMA_MAX_READS);
			return -EPROTO;
		}
		k->done_ids[k->done_count++] = get32(b + 16);
		xrdma_rxq_pop(k);
		return xrdma_repost(k, slot);
	}
	return 0;
}

/* Move queued messages into the stream buffer. 0 or -errno; *moved set. */
static int xrdma_rx_fill(struct xrdma_core *k, bool *moved)
{
	while (k->rxq_count && !k->rd_inflight) {
		uint32_t slot = k->rxq[k->rxq_head];
		const uint8_t *m = k->rx_slots + (size_t)slot * k->g.slot_size;
		size_t space = xrdma_rx_space(k);
		size_t n;
		int ret;

		if (!space) {
			return 0;
		}
		if (k->rx_type[slot] == XRDMA_MSG_DATA) {
			n = k->rx_len[slot] - k->rx_data_off;
			n = n < space ? n : space;
			memcpy(k->rx_buf + k->rx_end, m + XRDMA_HDR_SIZE + k->rx_data_off, n);
			k->rx_end += n;
			k->rx_data_off += (uint32_t)n;
			k->st.bytes_in += n;
			k->rx_fresh = true;
			*moved = true;
			if (k->rx_data_off == k->rx_len[slot]) {
				xrdma_rxq_pop(k);
				ret = xrdma_repost(k, slot);
				if (ret) {
					return ret;
				}
			}
			continue;
		}
		/* READ_REQ: read what fits; the rest when the owner consumed. */
		n = get32(m + XRDMA_HDR_SIZE + 12) - k->rd_done;
		n = n < space ? n : space;
		ret = k->verbs->post_read(k, get64(m + XRDMA_HDR_SIZE) + k->rd_done,
					  get32(m + XRDMA_HDR_SIZE + 8), (uint32_t)n, k->rx_end);
		if (ret) {
			return ret;
		}
		k->rd_inflight = true;
		k->rd_len = (uint32_t)n;
		*moved = true;
	}
	return 0;
}

/* --- send --- */

int xrdma_core_send(struct xrdma_core *k, struct xport_send *s)
{
	size_t total = 0;

	if (k->stopped) {
		return -EPIPE;
	}
	if (s->iovcnt < 1 || s->iovcnt > XPORT_MAX_IOV || !s->cb) {
		return -EINVAL;
	}
	for (int i = 0; i < s->iovcnt; i++) {
		total += s->iov[i].iov_len;
	}
	if (!total) {
		return -EINVAL;
	}
	s->done = 0;
	s->total = total;
	s->held = 0;
	s->next = NULL;
	*k->sq_tail = s;
	k->sq_tail = &s->next;
	return 0;
}

int xrdma_core_send_done(struct xrdma_core *k, uint32_t slot)
{
	struct xport_send *s, *next;

	kassert(slot < k->g.slots && k->tx_nfree < k->g.slots);
	for (s = k->tx_sends[slot], k->tx_sends[slot] = NULL; s; s = next) {
		next = s->next;
		xrdma_release(k, s);
	}
	k->tx_free[k->tx_nfree++] = slot;
	return 0;
}

static uint8_t *xrdma_tx_slot(struct xrdma_core *k, uint32_t slot)
{
	return k->tx_slots + (size_t)slot * k->g.slot_size;
}

/* Post tx slot @slot as a message of @type with a body of @len bytes. */
static int xrdma_post(struct xrdma_core *k, uint32_t slot, uint8_t type, uint32_t len)
{
	uint8_t *m = xrdma_tx_slot(k, slot);
	uint32_t grant = k->grant_pending;
	int ret;

	kassert(k->peer_credits > 0);
	m[0] = type;
	m[1] = XRDMA_VERSION;
	put16(m + 2, (uint16_t)grant);
	put32(m + 4, len);
	ret = k->verbs->post_send(k, slot, XRDMA_HDR_SIZE + len);
	if (ret) {
		k->tx_free[k->tx_nfree++] = slot;
		return ret;
	}
	k->grant_pending -= grant;
	k->peer_credits--;
	k->st.msgs_out++;
	return 0;
}

/* Where byte s->done of @s is: iovec index and offset. */
static void xrdma_send_pos(const struct xport_send *s, int *iov, size_t *off)
{
	size_t skip = s->done;
	int i = 0;

	while (i < s->iovcnt && skip >= s->iov[i].iov_len) {
		skip -= s->iov[i].iov_len;
		i++;
	}
	*iov = i;
	*off = skip;
}

/* The head send once its last byte is in a message: off the queue. */
static struct xport_send *xrdma_sq_pop(struct xrdma_core *k)
{
	struct xport_send *s = k->sq_head;

	if (s->done < s->total) {
		return NULL;
	}
	k->sq_head = s->next;
	if (!k->sq_head) {
		k->sq_tail = &k->sq_head;
	}
	s->next = NULL;
	return s;
}

/* Announce the next @n bytes of @s, at the peer-readable @addr/@rkey, as
 * READ_REQ @id in tx slot @slot. Its READ_DONE is awaited, and covers the
 * whole send when this was its last piece. 1 (posted) or -errno. */
static int xrdma_post_read_req(struct xrdma_core *k, struct xport_send *s, uint32_t slot,
			       const uint8_t *addr, uint32_t rkey, size_t n, uint32_t id)
{
	uint8_t *body = xrdma_tx_slot(k, slot) + XRDMA_HDR_SIZE;

	put64(body, (uint64_t)(uintptr_t)addr);
	put32(body + 8, rkey);
	put32(body + 12, (uint32_t)n);
	put32(body + 16, id);
	s->done += n;
	s->held++;
	xrdma_sq_pop(k);
	k->st.bytes_out += n;
	k->st.read_bytes_out += n;
	return xrdma_post(k, slot, XRDMA_MSG_READ_REQ, XRDMA_READ_REQ_BODY) ?: 1;
}

_Static_assert(XRDMA_MAX_ZC == 32, "zc_busy is a 32-bit mask of zero-copy ids");

/* Send the next @n bytes of @s, at @p, straight from the caller's memory
 * if the verbs layer can let the peer read them. 1 when the READ_REQ was
 * posted, 0 when the bytes must be copied instead, -errno. */
static int xrdma_tx_zc(struct xrdma_core *k, struct xport_send *s, const uint8_t *p, size_t n,
		       uint32_t slot)
{
	uint32_t rkey, i;

	if (!k->verbs->mem_key || k->verbs->mem_key(k, p, n, &rkey)) {
		return 0;
	}
	if (k->zc_busy == UINT32_MAX) {
		k->st.zc_exhausted++;
		return 0;
	}
	i = (uint32_t)__builtin_ctz(~k->zc_busy);
	k->zc_busy |= 1u << i;
	k->zc_send[i] = s;
	k->st.zc_bytes_out += n;
	return xrdma_post_read_req(k, s, slot, p, rkey, n, XRDMA_ZC_ID0 + i);
}

static int xrdma_free_big(const struct xrdma_core *k)
{
	for (uint32_t i = 0; i < k->g.big_count; i++) {
		if (!(k->big_busy & (1u << i))) {
			return (int)i;
		}
	}
	return -1;
}

/* One message from the head of the send queue: DATA with as many small
 * pieces as fit, or a READ_REQ for one large piece. Returns 1 when a message
 * went out, 0 when it must wait, -errno. */
static int xrdma_tx_one(struct xrdma_core *k)
{
	uint32_t cap = k->peer_slot_size - XRDMA_HDR_SIZE, len = 0, slot;
	struct xport_send *fin = NULL;
	uint8_t *body;
	int i, big, ret;
	size_t off, n;

	if (k->peer_credits < 2 || !k->tx_nfree) {
		k->st.credit_stalls += k->peer_credits < 2;
		return 0;
	}
	slot = k->tx_free[--k->tx_nfree];
	body = xrdma_tx_slot(k, slot) + XRDMA_HDR_SIZE;
	while (k->sq_head && len < cap) {
		struct xport_send *s = k->sq_head;

		xrdma_send_pos(s, &i, &off);
		n = s->iov[i].iov_len - off;
		if (n >= k->g.read_min) {
			uint8_t *b;

			if (len) {
				break; /* this DATA goes first */
			}
			ret = xrdma_tx_zc(k, s, (const uint8_t *)s->iov[i].iov_base + off,
					  n < XRDMA_MAX_BIG_SIZE ? n : XRDMA_MAX_BIG_SIZE, slot);
			if (ret) {
				return ret;
			}
			big = xrdma_free_big(k);
			if (big < 0) {
				break;
			}
			n = n < k->g.big_size ? n : k->g.big_size;
			b = k->big + (size_t)big * k->g.big_size;
			memcpy(b, (uint8_t *)s->iov[i].iov_base + off, n);
			k->big_busy |= 1u << big;
			k->big_send[big] = s;
			return xrdma_post_read_req(k, s, slot, b, k->big_rkey, n, (uint32_t)big);
		}
		n = n < cap - len ? n : cap - len;
		memcpy(body + len, (uint8_t *)s->iov[i].iov_base + off, n);
		len += (uint32_t)n;
		s->done += n;
		if (xrdma_sq_pop(k)) {
			/* its last byte: done when this SEND completes */
			s->held++;
			s->next = fin;
			fin = s;
		}
	}
	if (!len) {
		k->tx_free[k->tx_nfree++] = slot;
		return 0;
	}
	k->st.bytes_out += len;
	k->st.inline_bytes_out += len;
	/* Even if the post fails: stop() then fails them from here. */
	kassert(!k->tx_sends[slot]);
	k->tx_sends[slot] = fin;
	return xrdma_post(k, slot, XRDMA_MSG_DATA, len) ?: 1;
}

/* READ_DONEs owed, then a CREDIT when the peer may be running short. */
static int xrdma_tx_control(struct xrdma_core *k, bool *moved)
{
	uint32_t slot, held = k->g.slots - k->rx_posted;
	int ret;

	while (k->done_count && k->peer_credits >= 2 && k->tx_nfree) {
		slot = k->tx_free[--k->tx_nfree];
		put32(xrdma_tx_slot(k, slot) + XRDMA_HDR_SIZE, k->done_ids[0]);
		ret = xrdma_post(k, slot, XRDMA_MSG_READ_DONE, XRDMA_READ_DONE_BODY);
		if (ret) {
			return ret;
		}
		memmove(k->done_ids, k->done_ids + 1, --k->done_count * sizeof(k->done_ids[0]));
		*moved = true;
	}
	/* The peer holds at most slots - held - grant_pending credits: when
	 * that is half or less, tell it about the reposted slots. */
	if (k->grant_pending && k->peer_credits && k->tx_nfree &&
	    k->g.slots - held - k->grant_pending <= k->g.slots / 2) {
		slot = k->tx_free[--k->tx_nfree];
		ret = xrdma_post(k, slot, XRDMA_MSG_CREDIT, 0);
		if (ret) {
			return ret;
		}
		k->st.credit_msgs_out++;
		*moved = true;
	}
	return 0;
}

int xrdma_core_process(struct xrdma_core *k)
{
	struct xport_send *s;
	bool moved;
	int ret = 0;

	/* Callbacks below may send or stop: a nested call only asks for
	 * another round. */
	if (k->in_process) {
		k->again = true;
		return 0;
	}
	k->in_process = true;
	do {
		moved = false;
		k->again = false;
		if (k->stopped) {
			break;
		}
		ret = xrdma_rx_fill(k, &moved);
		if (ret) {
			break;
		}
		if (k->rx_fresh && k->rx_end > k->rx_start) {
			size_t len = k->rx_end - k->rx_start;
			ssize_t n;

			k->rx_fresh = false;
			n = k->verbs->deliver(k, k->rx_buf + k->rx_start, len);
			if (n < 0) {
				ret = (int)n;
				break;
			}
			kassert((size_t)n <= len);
			if (k->stopped) {
				break;
			}
			if (n == 0 && k->rx_start == 0 && len == k->g.rx_size) {
				log_error("rdma: message larger than the %zu-byte receive buffer",
					  k->g.rx_size);
				ret = -EMSGSIZE;
				break;
			}
			k->rx_start += (size_t)n;
			moved |= n > 0;
		}
		while (k->sq_head && !k->tx_hold) {
			ret = xrdma_tx_one(k);
			if (ret <= 0) {
				break;
			}
			moved = true;
		}
		if (ret < 0) {
			break;
		}
		ret = xrdma_tx_control(k, &moved);
		if (ret) {
			break;
		}
		/* Sends the peer has whole: a callback may send (its queue
		 * goes on next round) or stop the core. */
		while ((s = k->ready) && !k->stopped) {
			k->ready = s->next;
			if (!k->ready) {
				k->ready_tail = &k->ready;
			}
			s->cb(s, 0);
			moved = true;
		}
	} while ((moved || k->again) && !k->stopped);
	k->in_process = false;
	return ret;
}

/* Drop one of the things @s awaited at stop: its callback once none is left
 * and it is off the send queue (the queue's loop fails the others). */
static void xrdma_stop_one(struct xport_send *s, int err)
{
	if (!--s->held && s->done == s->total) {
		s->cb(s, err);
	}
}

void xrdma_core_stop(struct xrdma_core *k, int err)
{
	struct xport_send *s, *next;

	k->stopped = true;
	/* What the peer has whole completes; the rest fails with @err: pieces
	 * still being read (the QP is in error: the device serves no more
	 * reads) and SENDs not completed. */
	while ((s = k->ready)) {
		k->ready = s->next;
		s->cb(s, 0);
	}
	k->ready_tail = &k->ready;
	for (uint32_t i = 0; i < XRDMA_MAX_ZC; i++) {
		if ((s = k->zc_send[i])) {
			k->zc_send[i] = NULL;
			xrdma_stop_one(s, err);
		}
	}
	k->zc_busy = 0;
	for (uint32_t i = 0; i < XRDMA_MAX_BIG; i++) {
		if ((s = k->big_send[i])) {
			k->big_send[i] = NULL;
			xrdma_stop_one(s, err);
		}
	}
	k->big_busy = 0;
	for (uint32_t i = 0; k->tx_sends && i < k->g.slots; i++) {
		for (s = k->tx_sends[i], k->tx_sends[i] = NULL; s; s = next) {
			next = s->next;
			xrdma_stop_one(s, err);
		}
	}
	while ((s = k->sq_head)) {
		k->sq_head = s->next;
		s->cb(s, err);
	}
	k->sq_tail = &k->sq_head;
}

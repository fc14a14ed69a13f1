/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_mgmt: a pretend keel-mgmt on the cluster port, for keel-server tests
 * that need maps keel-mgmt does not publish (yet): layer lists.
 *
 *   fake_mgmt LISTEN_ADDR KEY_FILE NSERVERS PG_COUNT MIN_REPLICAS
 *
 * Servers register (ids 1..NSERVERS in order of arrival, by uuid); once all
 * NSERVERS did, it builds epoch 1 (one pool, id 1, NSERVERS replicas,
 * PG_COUNT PGs, every member in sync) and pushes it. Heartbeats, PG
 * reports and usage reports are answered OK (no lease). Commands on stdin,
 * one a line:
 *   layers RO DEL [MERGES] new epoch with that layer list (comma-separated
 *                         inodes, decimal or 0x hex; "-" for none), pushed;
 *                         MERGES: comma-separated S:C (S in RO merges
 *                         into C, pool 1)
 *   usage_status ERRNO    answer MG_USAGE with that errno (0: OK)
 *   quit
 * Events on stdout (flushed), one a line:
 *   listening ADDR
 *   registered id=N addr=A
 *   map epoch=E primary=P            (primary of PG 0)
 *   reply id=N epoch=E status=S      (a server answered the push of epoch E)
 *   usage id=N epoch=E layers=I:OBJECTS:BYTES,... merges=S:C:DONE:TOTAL:D,...
 *                                    (D: 1 when the walk is done)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/reactor.h"
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/cmap.h"
#include "proto/conn.h"
#include "proto/keel.pb-c.h"

#define FM_MAX 8

struct fm_reply {
	struct kp_msg m;
	uint8_t *buf;
};

struct fm_peer {
	struct kp_conn *kc;
	uint32_t id;
	bool push_awaiting;
	uint64_t push_epoch, sent_epoch;
	struct kp_msg push;
};

struct fm_blob {
	uint64_t epoch;
	uint8_t *data;
	size_t len;
};

static struct {
	struct reactor *r;
	struct kp_key key;
	uint32_t nservers, pg_count, min_replicas;
	struct fm_peer peers[64];
	uint8_t uuids[FM_MAX][16];
	char addrs[FM_MAX][64];
	uint32_t nreg;
	struct cmap *map;
	struct fm_blob blob; /* current map, packed; old ones are leaked (a test tool) */
	int usage_status;
	struct reactor_timer stdin_timer;
	char line[65536];
	size_t linelen;
	uint64_t next_req;
} fm;

static void fm_reply_done(struct kp_msg *m, int res)
{
	struct fm_reply *r = container_of(m, struct fm_reply, m);

	free(r->buf);
	free(r);
}

static void fm_reply(struct fm_peer *p, const struct kp_hdr *h, int res, uint8_t *buf, size_t len)
{
	struct fm_reply *r = calloc(1, sizeof(*r));

	if (!r) {
		free(buf);
		return;
	}
	r->buf = buf;
	r->m.hdr.opcode = h->opcode;
	r->m.hdr.flags = KP_F_REPLY;
	r->m.hdr.status = kp_status_from_errno(res);
	r->m.hdr.req_id = h->req_id;
	r->m.hdr.epoch = fm.map ? fm.map->epoch : 0;
	r->m.hdr.meta_len = (uint32_t)len;
	r->m.meta = len ? buf : NULL;
	r->m.done = fm_reply_done;
	if (kp_conn_send(p->kc, &r->m)) {
		free(buf);
		free(r);
	}
}

static void fm_push(struct fm_peer *p);

static void fm_push_sent(struct kp_msg *m, int res)
{
	struct fm_peer *p = container_of(m, struct fm_peer, push);

	if (res) {
		p->push_awaiting = false;
	}
}

static void fm_push(struct fm_peer *p)
{
	if (!p->kc || !p->id || !fm.blob.data || p->push_awaiting ||
	    fm.blob.epoch <= p->sent_epoch) {
		return;
	}
	memset(&p->push, 0, sizeof(p->push));
	p->push.hdr.opcode = KP_OP_MG_MAP;
	p->push.hdr.req_id = ++fm.next_req;
	p->push.hdr.epoch = fm.blob.epoch;
	p->push.hdr.meta_len = (uint32_t)fm.blob.len;
	p->push.meta = fm.blob.data;
	p->push.done = fm_push_sent;
	p->push_awaiting = true;
	p->push_epoch = fm.blob.epoch;
	if (kp_conn_send(p->kc, &p->push)) {
		p->push_awaiting = false;
		return;
	}
	p->sent_epoch = fm.blob.epoch;
}

static void fm_publish(void)
{
	uint32_t primary = 0;

	if (cmap_pack(fm.map, &fm.blob.data, &fm.blob.len)) {
		fprintf(stderr, "fake_mgmt: cannot pack the map\n");
		exit(1);
	}
	fm.blob.epoch = fm.map->epoch;
	if (fm.map->npools) {
		primary = fm.map->pools[0].pgs[0].primary;
	}
	printf("map epoch=%llu primary=%u\n", (unsigned long long)fm.map->epoch, primary);
	fflush(stdout);
	for (unsigned int i = 0; i < 64; i++) {
		fm_push(&fm.peers[i]);
	}
}

static void fm_build_first_map(void)
{
	struct cmap_pool pool;
	uint32_t i;

	fm.map = cmap_new(1);
	for (i = 0; i < fm.nservers; i++) {
		struct cmap_server s;

		memset(&s, 0, sizeof(s));
		s.id = i + 1;
		snprintf(s.addr, sizeof(s.addr), "%s", fm.addrs[i]);
		snprintf(s.host, sizeof(s.host), "node%u", i + 1);
		snprintf(s.rack, sizeof(s.rack), "rack%u", i + 1);
		s.weight = 1;
		s.up = true;
		s.in = true;
		if (cmap_add_server(fm.map, &s)) {
			exit(1);
		}
	}
	memset(&pool, 0, sizeof(pool));
	pool.id = 1;
	snprintf(pool.name, sizeof(pool.name), "default");
	pool.replicas = fm.nservers;
	pool.min_replicas = fm.min_replicas;
	pool.failure_domain = CMAP_FD_HOST;
	pool.pg_count = fm.pg_count;
	if (cmap_add_pool(fm.map, &pool)) {
		exit(1);
	}
	cmap_place(fm.map);
	cmap_update_pgs(fm.map, NULL);
	fm_publish();
}

static int fm_parse_list(char *s, enum cmap_layer_state st, struct cmap_layer *out, uint32_t *n)
{
	char *save = NULL, *tok;

	if (!strcmp(s, "-")) {
		return 0;
	}
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n >= 1024) {
			return -EINVAL;
		}
		out[*n].inode = strtoull(tok, NULL, 0);
		out[*n].state = st;
		(*n)++;
	}
	return 0;
}

/* "S:C,...": set merge_into of the listed RO layers (pool 1). */
static int fm_parse_merges(char *s, struct cmap_layer *l, uint32_t n)
{
	char *save = NULL, *tok;

	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		uint64_t from = strtoull(tok, &end, 0), into;
		uint32_t i;

		if (*end != ':') {
			return -EINVAL;
		}
		into = strtoull(end + 1, NULL, 0);
		for (i = 0; i < n && l[i].inode != from; i++) {
			continue;
		}
		if (i == n) {
			return -EINVAL;
		}
		l[i].merge_into = into;
		l[i].merge_pool = 1;
	}
	return 0;
}

static void fm_command(char *line)
{
	static struct cmap_layer l[2048];
	char ro[32768], del[32768], mrg[32768];
	uint32_t n = 0;
	int v, nf;

	if (!strncmp(line, "layers ", 7)) {
		struct cmap *m;

		memset(l, 0, sizeof(l));
		nf = fm.map ? sscanf(line + 7, "%32767s %32767s %32767s", ro, del, mrg) : 0;
		if (nf < 2 || fm_parse_list(ro, CMAP_LAYER_RO, l, &n) ||
		    fm_parse_list(del, CMAP_LAYER_DELETING, l, &n) ||
		    (nf == 3 && fm_parse_merges(mrg, l, n))) {
			printf("error bad command\n");
			fflush(stdout);
			return;
		}
		m = cmap_dup(fm.map);
		if (!m || cmap_set_layers(m, l, n)) {
			printf("error bad layers\n");
			fflush(stdout);
			cmap_free(m);
			return;
		}
		m->epoch = fm.map->epoch + 1;
		cmap_free(fm.map);
		fm.map = m;
		fm_publish();
	} else if (sscanf(line, "usage_status %d", &v) == 1) {
		fm.usage_status = v > 0 ? -v : v;
	} else if (!strcmp(line, "quit")) {
		exit(0);
	}
}

static void fm_stdin(struct reactor_timer *t)
{
	ssize_t n;

	for (;;) {
		char *nl;

		n = read(0, fm.line + fm.linelen, sizeof(fm.line) - 1 - fm.linelen);
		if (n == 0) {
			exit(0); /* the test went away */
		}
		if (n < 0) {
			break;
		}
		fm.linelen += (size_t)n;
		fm.line[fm.linelen] = '\0';
		while ((nl = strchr(fm.line, '\n'))) {
			*nl = '\0';
			fm_command(fm.line);
			fm.linelen -= (size_t)(nl + 1 - fm.line);
			memmove(fm.line, nl + 1, fm.linelen + 1);
		}
		if (fm.linelen == sizeof(fm.line) - 1) {
			fm.linelen = 0; /* an absurd line */
		}
	}
	reactor_timer_start(fm.r, &fm.stdin_timer, 5000000, fm_stdin);
}

static void fm_register(struct fm_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__RegisterRequest *req = keel__register_request__unpack(NULL, h->meta_len, meta);
	Keel__RegisterReply rep = KEEL__REGISTER_REPLY__INIT;
	Keel__ClusterMap *map = NULL;
	uint32_t id = 0, i;
	uint8_t *buf;
	size_t len;

	if (!req || !req->info || req->info->uuid.len != 16) {
		fm_reply(p, h, -EINVAL, NULL, 0);
		goto out_free;
	}
	for (i = 0; i < fm.nreg; i++) {
		if (!memcmp(fm.uuids[i], req->info->uuid.data, 16)) {
			id = i + 1;
		}
	}
	if (!id) {
		if (fm.nreg == fm.nservers) {
			fm_reply(p, h, -ENOSPC, NULL, 0);
			goto out_free;
		}
		memcpy(fm.uuids[fm.nreg], req->info->uuid.data, 16);
		snprintf(fm.addrs[fm.nreg], sizeof(fm.addrs[0]), "%s", req->info->addr);
		id = ++fm.nreg;
		printf("registered id=%u addr=%s\n", id, req->info->addr);
		fflush(stdout);
	}
	p->id = id;
	p->sent_epoch = 0;
	rep.server_id = id;
	if (fm.blob.data) {
		map = keel__cluster_map__unpack(NULL, fm.blob.len, fm.blob.data);
		rep.map = map;
		p->sent_epoch = fm.blob.epoch;
	}
	len = keel__register_reply__get_packed_size(&rep);
	buf = malloc(len ? len : 1);
	if (buf) {
		keel__register_reply__pack(&rep, buf);
		fm_reply(p, h, 0, buf, len);
	}
	if (map) {
		keel__cluster_map__free_unpacked(map, NULL);
	}
	if (!fm.map && fm.nreg == fm.nservers) {
		fm_build_first_map();
	}
out_free:
	if (req) {
		keel__register_request__free_unpacked(req, NULL);
	}
}

static void fm_usage(struct fm_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__UsageReport *u = keel__usage_report__unpack(NULL, h->meta_len, meta);

	if (!u) {
		fm_reply(p, h, -EINVAL, NULL, 0);
		return;
	}
	printf("usage id=%u epoch=%llu layers=", u->server_id, (unsigned long long)u->epoch);
	for (size_t i = 0; i < u->n_layers; i++) {
		printf("%s%llu:%llu:%llu", i ? "," : "", (unsigned long long)u->layers[i]->inode,
		       (unsigned long long)u->layers[i]->objects,
		       (unsigned long long)u->layers[i]->bytes);
	}
	printf(" merges=");
	for (size_t i = 0; i < u->n_merges; i++) {
		const Keel__MergeProgress *g = u->merges[i];

		printf("%s%llu:%llu:%llu:%llu:%d", i ? "," : "", (unsigned long long)g->layer,
		       (unsigned long long)g->into, (unsigned long long)g->objects_done,
		       (unsigned long long)g->objects_total, g->done);
	}
	printf("\n");
	fflush(stdout);
	keel__usage_report__free_unpacked(u, NULL);
	fm_reply(p, h, fm.usage_status, NULL, 0);
}

static void fm_on_msg(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
		      const uint8_t *data, const uint32_t *crcs)
{
	struct fm_peer *p = kp_conn_arg(c);

	meta = meta ? meta : (const uint8_t *)"";
	if (h->flags & KP_F_REPLY) {
		if (h->opcode == KP_OP_MG_MAP && p->push_awaiting) {
			p->push_awaiting = false;
			printf("reply id=%u epoch=%llu status=%d\n", p->id,
			       (unsigned long long)p->push_epoch, h->status);
			fflush(stdout);
			fm_push(p);
		}
		return;
	}
	switch (h->opcode) {
	case KP_OP_MG_REGISTER:
		fm_register(p, h, meta);
		break;
	case KP_OP_MG_USAGE:
		fm_usage(p, h, meta);
		break;
	case KP_OP_MG_HEARTBEAT:
	case KP_OP_MG_PG_REPORT:
		fm_reply(p, h, 0, NULL, 0);
		break;
	default:
		fm_reply(p, h, -ENOTSUP, NULL, 0);
		break;
	}
}

static void fm_on_close(struct kp_conn *c, int err, const char *reason)
{
	struct fm_peer *p = kp_conn_arg(c);

	memset(p, 0, sizeof(*p));
}

static const struct kp_conn_cbs fm_cbs = {
	.on_msg = fm_on_msg,
	.on_close = fm_on_close,
};

static void fm_on_accept(struct xport_listener *l, struct xport_conn *xc, void *arg)
{
	for (unsigned int i = 0; i < 64; i++) {
		struct fm_peer *p = &fm.peers[i];

		if (!p->kc) {
			memset(p, 0, sizeof(*p));
			if (kp_conn_server(xc, &fm.key, &fm_cbs, p, &p->kc)) {
				p->kc = NULL;
				xc->ops->close(xc, -ENOMEM);
			}
			return;
		}
	}
	xc->ops->close(xc, -EMFILE);
}

int main(int argc, char **argv)
{
	struct xport_listener *l;
	char err[256];

	if (argc != 6) {
		fprintf(stderr, "usage: fake_mgmt LISTEN_ADDR KEY_FILE NSERVERS PG_COUNT "
				"MIN_REPLICAS\n");
		return 2;
	}
	fm.nservers = (uint32_t)atoi(argv[3]);
	fm.pg_count = (uint32_t)atoi(argv[4]);
	fm.min_replicas = (uint32_t)atoi(argv[5]);
	if (!fm.nservers || fm.nservers > FM_MAX || !fm.pg_count || !fm.min_replicas ||
	    fm.min_replicas > fm.nservers) {
		fprintf(stderr, "fake_mgmt: bad sizes\n");
		return 2;
	}
	klog_set_ident("fake_mgmt");
	klog_set_level(KLOG_WARN);
	if (kp_key_load(argv[2], &fm.key, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (reactor_create(256, &fm.r)) {
		return 1;
	}
	if (xport_tcp_ops.listen(fm.r, argv[1], &l) ||
	    xport_tcp_ops.accept_start(l, fm_on_accept, NULL)) {
		fprintf(stderr, "fake_mgmt: cannot listen on %s\n", argv[1]);
		return 1;
	}
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	reactor_timer_start(fm.r, &fm.stdin_timer, 5000000, fm_stdin);
	printf("listening %s\n",
	       xport_tcp_ops.listen_addr ? xport_tcp_ops.listen_addr(l) : argv[1]);
	fflush(stdout);
	return reactor_run(fm.r) ? 1 : 0;
}

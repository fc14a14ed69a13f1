/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake_server: a pretend keel-server on mgmt's cluster port, for tests.
 *
 *   fake_server MGMT_ADDR KEY_FILE UUID_HEX32 HOST [HB_MS] [RECOVER]
 *
 * Registers (MG_REGISTER), heartbeats every HB_MS (default 250), answers
 * map pushes (MG_MAP) with status OK after validating them with
 * cmap_unpack(). With RECOVER=1 it plays an instant recovery: every
 * heartbeat it reports (MG_PG_REPORT) every up member of the PGs it is
 * primary of as in sync. SIGUSR1 turns that off, SIGUSR2 on.
 * Prints one line per event on stdout (flushed):
 *   registered id=N epoch=E
 *   map epoch=E servers=N up=U
 *   closed err=E reason=R            (then exits 3)
 * Crash and hang are simulated from outside: SIGKILL and SIGSTOP.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/reactor.h"
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/cmap.h"
#include "proto/conn.h"
#include "proto/keel.pb-c.h"

#define FS_REPLY_SLOTS 16

struct fs_slot {
	struct kp_msg m;
	bool busy;
	uint8_t buf[512];
};

static struct {
	struct reactor *r;
	struct kp_conn *kc;
	uint8_t uuid[16];
	const char *host, *data_addr;
	uint64_t hb_ns;
	uint32_t id;
	uint64_t epoch;
	struct reactor_timer hb_timer;
	struct fs_slot reg, hb, replies[FS_REPLY_SLOTS];
	uint64_t next_req;
	struct cmap *map;
	struct kp_msg report;
	uint8_t *report_buf;
	bool report_busy;
} fs;

static volatile sig_atomic_t fs_recover;

static void fs_on_usr(int signo)
{
	fs_recover = signo == SIGUSR2;
}

static void fs_report_done(struct kp_msg *m, int res)
{
	free(fs.report_buf);
	fs.report_buf = NULL;
	fs.report_busy = false;
}

/* Instant recovery: report every up, not-in-sync member of my PGs. */
static void fs_report(void)
{
	Keel__PgReportBatch b = KEEL__PG_REPORT_BATCH__INIT;
	static Keel__PgReport reps[64], *repp[64];
	static uint32_t synced[64][CMAP_MAX_REPLICAS];
	size_t n = 0, len;

	if (!fs_recover || !fs.map || fs.report_busy) {
		return;
	}
	for (uint32_t i = 0; i < fs.map->npools && n < 64; i++) {
		const struct cmap_pool *p = &fs.map->pools[i];

		for (uint32_t pg = 0; pg < p->pg_count && n < 64; pg++) {
			const struct cmap_pg *g = &p->pgs[pg];
			size_t k = 0;

			if (g->primary != fs.id) {
				continue;
			}
			for (uint32_t j = 0; j < g->nmembers; j++) {
				const struct cmap_server *s = cmap_server(fs.map, g->members[j]);

				if (s && s->up && !(g->in_sync & (1u << j))) {
					synced[n][k++] = g->members[j];
				}
			}
			if (!k) {
				continue;
			}
			keel__pg_report__init(&reps[n]);
			reps[n].pool = p->id;
			reps[n].pg = pg;
			reps[n].epoch = g->interval;
			reps[n].n_synced = k;
			reps[n].synced = synced[n];
			reps[n].state = "recovering";
			repp[n] = &reps[n];
			n++;
		}
	}
	if (!n) {
		return;
	}
	b.n_pgs = n;
	b.pgs = repp;
	len = keel__pg_report_batch__get_packed_size(&b);
	fs.report_buf = malloc(len);
	if (!fs.report_buf) {
		return;
	}
	keel__pg_report_batch__pack(&b, fs.report_buf);
	memset(&fs.report, 0, sizeof(fs.report));
	fs.report.hdr.opcode = KP_OP_MG_PG_REPORT;
	fs.report.hdr.req_id = ++fs.next_req;
	fs.report.hdr.epoch = fs.epoch;
	fs.report.hdr.meta_len = (uint32_t)len;
	fs.report.meta = fs.report_buf;
	fs.report.done = fs_report_done;
	fs.report_busy = true;
	if (kp_conn_send(fs.kc, &fs.report)) {
		fs_report_done(&fs.report, -EIO);
		return;
	}
	printf("report pgs=%zu epoch=%llu\n", n, (unsigned long long)fs.epoch);
	fflush(stdout);
}

static void fs_slot_done(struct kp_msg *m, int res)
{
	struct fs_slot *s = container_of(m, struct fs_slot, m);

	s->busy = false;
}

static int fs_send(struct fs_slot *s, uint16_t op, uint32_t flags, uint64_t req_id, size_t len)
{
	memset(&s->m, 0, sizeof(s->m));
	s->m.hdr.opcode = op;
	s->m.hdr.flags = flags;
	s->m.hdr.req_id = req_id;
	s->m.hdr.epoch = fs.epoch;
	s->m.hdr.meta_len = (uint32_t)len;
	s->m.meta = len ? s->buf : NULL;
	s->m.done = fs_slot_done;
	s->busy = true;
	if (kp_conn_send(fs.kc, &s->m)) {
		s->busy = false;
		return -EIO;
	}
	return 0;
}

static void fs_heartbeat(struct reactor_timer *t)
{
	Keel__Heartbeat hb = KEEL__HEARTBEAT__INIT;

	if (!fs.kc) {
		return;
	}
	if (fs.id && !fs.hb.busy) {
		hb.server_id = fs.id;
		hb.epoch = fs.epoch;
		hb.used_bytes = 4096;
		fs_send(&fs.hb, KP_OP_MG_HEARTBEAT, 0, ++fs.next_req,
			keel__heartbeat__pack(&hb, fs.hb.buf));
		fs_report();
	}
	reactor_timer_start(fs.r, &fs.hb_timer, fs.hb_ns, fs_heartbeat);
}

static void fs_on_ready(struct kp_conn *c)
{
	Keel__RegisterRequest req = KEEL__REGISTER_REQUEST__INIT;
	Keel__ServerInfo info = KEEL__SERVER_INFO__INIT;

	info.uuid.data = fs.uuid;
	info.uuid.len = 16;
	info.addr = (char *)fs.data_addr;
	info.host = (char *)fs.host;
	info.rack = (char *)fs.host; /* one rack per host */
	info.weight = 10;
	info.capacity_bytes = 10ull << 30;
	req.info = &info;
	fs_send(&fs.reg, KP_OP_MG_REGISTER, 0, ++fs.next_req,
		keel__register_request__pack(&req, fs.reg.buf));
}

static void fs_print_map(const uint8_t *meta, uint32_t len, const char *what)
{
	struct cmap *m;
	char err[128];
	uint32_t up = 0;

	if (cmap_unpack(meta, len, &m, err, sizeof(err))) {
		printf("badmap %s: %s\n", what, err);
		fflush(stdout);
		return;
	}
	for (uint32_t i = 0; i < m->nservers; i++) {
		up += m->servers[i].up;
	}
	fs.epoch = m->epoch;
	printf("map epoch=%llu servers=%u up=%u\n", (unsigned long long)m->epoch, m->nservers, up);
	fflush(stdout);
	cmap_free(fs.map);
	fs.map = m;
}

static void fs_on_msg(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
		      const uint8_t *data, const uint32_t *crcs)
{
	if (h->flags & KP_F_REPLY) {
		if (h->opcode == KP_OP_MG_REGISTER) {
			Keel__RegisterReply *rep;

			if (h->status) {
				printf("register-failed status=%d\n", h->status);
				fflush(stdout);
				exit(4);
			}
			rep = keel__register_reply__unpack(NULL, h->meta_len, meta);
			if (!rep) {
				printf("register-failed malformed reply\n");
				fflush(stdout);
				exit(4);
			}
			fs.id = rep->server_id;
			fs.epoch = rep->map ? rep->map->epoch : h->epoch;
			if (rep->map) {
				struct cmap *m;
				char err[128];

				if (!cmap_from_pb(rep->map, &m, err, sizeof(err))) {
					cmap_free(fs.map);
					fs.map = m;
				}
			}
			printf("registered id=%u epoch=%llu\n", fs.id,
			       (unsigned long long)fs.epoch);
			fflush(stdout);
			keel__register_reply__free_unpacked(rep, NULL);
		} else if (h->opcode == KP_OP_MG_PG_REPORT && h->status) {
			printf("report-refused status=%d\n", h->status);
			fflush(stdout);
		} else if (h->opcode == KP_OP_MG_HEARTBEAT && h->status) {
			printf("heartbeat-refused status=%d\n", h->status);
			fflush(stdout);
		}
		return;
	}
	if (h->opcode == KP_OP_MG_MAP) {
		fs_print_map(meta, h->meta_len, "push");
		for (int i = 0; i < FS_REPLY_SLOTS; i++) {
			if (!fs.replies[i].busy) {
				fs_send(&fs.replies[i], KP_OP_MG_MAP, KP_F_REPLY, h->req_id, 0);
				return;
			}
		}
	}
}

static void fs_on_close(struct kp_conn *c, int err, const char *reason)
{
	printf("closed err=%d reason=%s\n", err, reason ? reason : "-");
	fflush(stdout);
	exit(3);
}

static const struct kp_conn_cbs fs_cbs = {
	.on_ready = fs_on_ready,
	.on_msg = fs_on_msg,
	.on_close = fs_on_close,
};

int main(int argc, char **argv)
{
	struct xport_conn *xc;
	struct kp_key key;
	char err[256];
	int ret;

	if (argc < 5 || strlen(argv[3]) != 32) {
		fprintf(stderr, "usage: fake_server MGMT_ADDR KEY_FILE UUID_HEX32 HOST [HB_MS] "
				"[RECOVER]\n");
		return 2;
	}
	for (int i = 0; i < 16; i++) {
		unsigned int b;

		if (sscanf(argv[3] + 2 * i, "%2x", &b) != 1) {
			fprintf(stderr, "bad uuid\n");
			return 2;
		}
		fs.uuid[i] = (uint8_t)b;
	}
	fs.host = argv[4];
	fs.hb_ns = (argc > 5 ? strtoull(argv[5], NULL, 10) : 250) * 1000000ull;
	fs_recover = argc > 6 && !strcmp(argv[6], "1");
	fs.data_addr = "127.0.0.1:7400";
	signal(SIGUSR1, fs_on_usr);
	signal(SIGUSR2, fs_on_usr);
	klog_set_ident("fake_server");
	klog_set_level(KLOG_WARN);
	if (kp_key_load(argv[2], &key, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (reactor_create(256, &fs.r)) {
		return 1;
	}
	ret = xport_tcp_ops.connect(fs.r, argv[1], &xc);
	if (ret) {
		fprintf(stderr, "connect %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	ret = kp_conn_client(xc, &key, "fake_server", &fs_cbs, NULL, &fs.kc);
	if (ret) {
		fprintf(stderr, "kp_conn_client: %s\n", strerror(-ret));
		return 1;
	}
	reactor_timer_start(fs.r, &fs.hb_timer, fs.hb_ns, fs_heartbeat);
	return reactor_run(fs.r) ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-vfront: command line, and the info subcommand.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "tests/vfront/vf.h"

static const char vf_usage_text[] =
	"usage: keel-vfront info   --socket S [common options]\n"
	"       keel-vfront verify --socket S [--queues N] [--iodepth D] [--bs SIZE]\n"
	"                          [--count N | --runtime SECS] [--seed S] [--span SIZE]\n"
	"                          [--reconnect N] [--json]\n"
	"       keel-vfront bench  --socket S --rw MODE [--bs SIZE] [--iodepth D]\n"
	"                          [--runtime SECS] [--queues N] [--rwmixread PCT] [--json]\n"
	"       keel-vfront corpus --socket S [--case NAME | --list] [--pid PID] [--json]\n"
	"\n"
	"A vhost-user-blk frontend playing QEMU's part against a backend listening\n"
	"on the unix socket S (keel-export --vhost, qemu-storage-daemon).\n"
	"\n"
	"  info     negotiate, print the features and the config space (JSON)\n"
	"  verify   random writes of self-describing 4 KiB blocks (offset, sequence,\n"
	"           seed, crc32c), reads checked while running and over the whole\n"
	"           device at the end, plus flush, discard, write-zeroes, GET_ID;\n"
	"           exits 1 at the first mismatch or error status; --span limits it to\n"
	"           the first SIZE bytes (default: the device, at most 1G); --reconnect N\n"
	"           drops the connection with requests in flight every N requests and\n"
	"           resumes it through the inflight region (INFLIGHT_SHMFD): every\n"
	"           request must still complete, once, and the data stay right\n"
	"  bench    fio-like load: IOPS, MiB/s, latency mean/p50/p99/p99.9 (us);\n"
	"           MODE is randread, randwrite, randrw, read or write\n"
	"  corpus   the malicious-guest corpus: each case does one bad thing, checks\n"
	"           the outcome, then checks the backend still serves good I/O and a\n"
	"           canary region is intact (--list: the cases and accepted outcomes)\n"
	"\n"
	"Common options:\n"
	"  --socket S        the backend's unix socket (required)\n"
	"  --queues N        queues to use (default 1, capped by the backend)\n"
	"  --queue-size N    descriptors per queue, power of two (default 256)\n"
	"  --mem SIZE        guest memory (default 64M, a multiple of 2M)\n"
	"  --regions 1|2     memory regions (default 2: the second at 4 GiB guest-physical)\n"
	"  --indirect        use indirect descriptor tables (needs INDIRECT_DESC)\n"
	"  --event-idx       negotiate EVENT_IDX when offered (notification suppression\n"
	"                    as Linux guests use it)\n"
	"  --timeout MS      reply and completion timeout (default 5000)\n"
	"  --spin            busy-poll the used rings instead of poll() on the call fds\n"
	"  --seed S          PRNG seed (default 1)\n"
	"\n"
	"Exit status: 0 success, 1 failure (mismatch, error status, timeout, protocol\n"
	"error, corpus case failed), 2 usage.\n";

static int vf_usage(const char *msg, const char *arg)
{
	if (msg) {
		fprintf(stderr, "keel-vfront: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	}
	fputs(vf_usage_text, msg ? stderr : stdout);
	return 2;
}

static const struct {
	const char *name;
	unsigned int bit;
} vf_feature_names[] = {
	{"size_max", VF_F_BLK_SIZE_MAX},
	{"seg_max", VF_F_BLK_SEG_MAX},
	{"ro", VF_F_BLK_RO},
	{"blk_size", VF_F_BLK_BLK_SIZE},
	{"flush", VF_F_BLK_FLUSH},
	{"topology", VF_F_BLK_TOPOLOGY},
	{"config_wce", VF_F_BLK_CONFIG_WCE},
	{"mq", VF_F_BLK_MQ},
	{"discard", VF_F_BLK_DISCARD},
	{"write_zeroes", VF_F_BLK_WRITE_ZEROES},
	{"indirect_desc", VF_F_RING_INDIRECT_DESC},
	{"event_idx", VF_F_RING_EVENT_IDX},
	{"protocol_features", VF_F_PROTOCOL_FEATURES},
	{"version_1", VF_F_VERSION_1},
};

static const struct {
	const char *name;
	unsigned int bit;
} vf_pf_names[] = {
	{"mq", VF_PF_MQ},
	{"reply_ack", VF_PF_REPLY_ACK},
	{"config", VF_PF_CONFIG},
	{"inflight_shmfd", VF_PF_INFLIGHT_SHMFD},
};

static void vf_print_names(const char *key, uint64_t bits, bool pf)
{
	size_t n = pf ? sizeof(vf_pf_names) / sizeof(vf_pf_names[0])
		      : sizeof(vf_feature_names) / sizeof(vf_feature_names[0]);
	bool first = true;

	printf("\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		unsigned int bit = pf ? vf_pf_names[i].bit : vf_feature_names[i].bit;

		if (bits & (1ull << bit)) {
			printf("%s\"%s\"", first ? "" : ",",
			       pf ? vf_pf_names[i].name : vf_feature_names[i].name);
			first = false;
		}
	}
	printf("],");
}

static int vf_cmd_info(const struct vf_cli *cli)
{
	const struct vf_blk_config *c;
	char id[VF_BLK_ID_BYTES + 1] = "";
	struct vf_dev d;
	struct vf_blk b;
	int ret;

	ret = vf_dev_connect(&d, cli->dev.socket, cli->dev.timeout_ms);
	if (ret) {
		fprintf(stderr, "keel-vfront: cannot connect to %s: %s\n", cli->dev.socket,
			strerror(-ret));
		return 1;
	}
	ret = vf_dev_open(&d, &cli->dev);
	if (ret) {
		fprintf(stderr, "keel-vfront: setup failed: %s\n", strerror(-ret));
		goto out_close;
	}
	ret = vf_blk_init(&b, &d, 1, 4096, false);
	if (ret) {
		fprintf(stderr, "keel-vfront: %s\n", strerror(-ret));
		goto out_close;
	}
	ret = vf_blk_sync(&b, 0, VF_BLK_T_GET_ID, 0, id, VF_BLK_ID_BYTES);
	vf_blk_destroy(&b);
	if (ret < 0) {
		fprintf(stderr, "keel-vfront: GET_ID failed: %s\n", strerror(-ret));
		goto out_close;
	}
	if (ret != VF_BLK_S_OK) {
		id[0] = 0; /* GET_ID is optional for a device: report no serial */
	}
	for (char *p = id; *p; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
			*p = '?';
		}
	}
	c = &d.cfg;
	printf("{\"socket\":\"%s\",\"device_features\":\"%#llx\",\"features\":\"%#llx\",",
	       cli->dev.socket, (unsigned long long)d.dev_features, (unsigned long long)d.features);
	vf_print_names("device_feature_names", d.dev_features, false);
	vf_print_names("feature_names", d.features, false);
	printf("\"device_protocol_features\":\"%#llx\",\"protocol_features\":\"%#llx\",",
	       (unsigned long long)d.dev_protocol_features,
	       (unsigned long long)d.protocol_features);
	vf_print_names("protocol_feature_names", d.protocol_features, true);
	printf("\"max_queues\":%u,\"queues\":%u,\"serial\":\"%s\",", d.max_queues, d.num_queues,
	       id);
	if (d.have_config) {
		printf("\"config\":{\"capacity\":%llu,\"size\":%llu,\"size_max\":%u,\"seg_max\":%u,"
		       "\"blk_size\":%u,\"physical_block_exp\":%u,\"min_io_size\":%u,"
		       "\"opt_io_size\":%u,\"writeback\":%u,\"num_queues\":%u,"
		       "\"max_discard_sectors\":%u,\"max_discard_seg\":%u,"
		       "\"discard_sector_alignment\":%u,\"max_write_zeroes_sectors\":%u,"
		       "\"max_write_zeroes_seg\":%u,\"write_zeroes_may_unmap\":%u}}\n",
		       (unsigned long long)c->capacity, (unsigned long long)vf_capacity(&d),
		       c->size_max, c->seg_max, c->blk_size, c->physical_block_exp, c->min_io_size,
		       c->opt_io_size, c->writeback, c->num_queues, c->max_discard_sectors,
		       c->max_discard_seg, c->discard_sector_alignment, c->max_write_zeroes_sectors,
		       c->max_write_zeroes_seg, c->write_zeroes_may_unmap);
	} else {
		printf("\"config\":null}\n");
	}
	ret = 0;
out_close:
	vf_dev_close(&d);
	return ret ? 1 : 0;
}

static int vf_parse_rw(const char *s, enum vf_rw *rw)
{
	static const char *const names[] = {
		[VF_RW_RANDREAD] = "randread", [VF_RW_RANDWRITE] = "randwrite",
		[VF_RW_RANDRW] = "randrw",     [VF_RW_READ] = "read",
		[VF_RW_WRITE] = "write",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*rw = (enum vf_rw)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool vf_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max || s[0] == '-') {
		return false;
	}
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"queues", required_argument, NULL, 'q'},
		{"queue-size", required_argument, NULL, 'Q'},
		{"mem", required_argument, NULL, 'm'},
		{"regions", required_argument, NULL, 'R'},
		{"indirect", no_argument, NULL, 'I'},
		{"event-idx", no_argument, NULL, 'E'},
		{"timeout", required_argument, NULL, 'T'},
		{"spin", no_argument, NULL, 'S'},
		{"iodepth", required_argument, NULL, 'd'},
		{"bs", required_argument, NULL, 'b'},
		{"count", required_argument, NULL, 'n'},
		{"runtime", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 'e'},
		{"rw", required_argument, NULL, 'w'},
		{"rwmixread", required_argument, NULL, 'M'},
		{"json", no_argument, NULL, 'j'},
		{"case", required_argument, NULL, 'c'},
		{"list", no_argument, NULL, 'l'},
		{"pid", required_argument, NULL, 'p'},
		{"span", required_argument, NULL, 'P'},
		{"reconnect", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vf_cli cli = {
		.dev = {.queues = 1,
			.queue_size = 256,
			.mem_size = 64ull << 20,
			.regions = 2,
			.timeout_ms = 5000},
		.iodepth = 1,
		.bs = 4096,
		.seed = 1,
		.rw = VF_RW_RANDREAD,
		.rwmixread = 50,
	};
	bool have_rw = false;
	const char *cmd;
	uint64_t v;
	int opt;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		return vf_usage(argc < 2 ? "missing subcommand" : NULL, NULL);
	}
	cmd = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			cli.dev.socket = optarg;
			break;
		case 'q':
			if (!vf_parse_uint(optarg, VF_MAX_QUEUES, &v) || v == 0) {
				return vf_usage("bad --queues", optarg);
			}
			cli.dev.queues = (unsigned int)v;
			break;
		case 'Q':
			if (!vf_parse_uint(optarg, VF_MAX_QUEUE_SIZE, &v) || v == 0 ||
			    (v & (v - 1))) {
				return vf_usage("bad --queue-size", optarg);
			}
			cli.dev.queue_size = (unsigned int)v;
			break;
		case 'm':
			if (cfg_parse_size(optarg, &v) || v == 0 || v % (2u << 20) ||
			    v > (64ull << 30)) {
				return vf_usage("bad --mem (a multiple of 2M)", optarg);
			}
			cli.dev.mem_size = v;
			break;
		case 'R':
			if (!vf_parse_uint(optarg, 2, &v) || v == 0) {
				return vf_usage("bad --regions", optarg);
			}
			cli.dev.regions = (unsigned int)v;
			break;
		case 'I':
			cli.dev.indirect = true;
			break;
		case 'E':
			cli.dev.event_idx = true;
			break;
		case 'T':
			if (!vf_parse_uint(optarg, 3600000, &v) || v == 0) {
				return vf_usage("bad --timeout", optarg);
			}
			cli.dev.timeout_ms = (int)v;
			break;
		case 'S':
			cli.spin = true;
			break;
		case 'd':
			if (!vf_parse_uint(optarg, VF_MAX_QUEUE_SIZE, &v) || v == 0) {
				return vf_usage("bad --iodepth", optarg);
			}
			cli.iodepth = (unsigned int)v;
			break;
		case 'b':
			if (cfg_parse_size(optarg, &v) || v == 0 || v % 4096 || v > (4u << 20)) {
				return vf_usage("bad --bs (a multiple of 4K, at most 4M)", optarg);
			}
			cli.bs = (uint32_t)v;
			break;
		case 'n':
			if (!vf_parse_uint(optarg, UINT64_MAX, &cli.count)) {
				return vf_usage("bad --count", optarg);
			}
			break;
		case 't': {
			char *end;

			cli.runtime_s = strtod(optarg, &end);
			if (*end || cli.runtime_s <= 0 || cli.runtime_s > 86400) {
				return vf_usage("bad --runtime", optarg);
			}
			break;
		}
		case 'e':
			if (!vf_parse_uint(optarg, UINT64_MAX, &cli.seed)) {
				return vf_usage("bad --seed", optarg);
			}
			break;
		case 'w':
			if (vf_parse_rw(optarg, &cli.rw)) {
				return vf_usage("bad --rw", optarg);
			}
			have_rw = true;
			break;
		case 'M':
			if (!vf_parse_uint(optarg, 100, &v)) {
				return vf_usage("bad --rwmixread", optarg);
			}
			cli.rwmixread = (unsigned int)v;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'c':
			cli.corpus_case = optarg;
			break;
		case 'l':
			cli.list = true;
			break;
		case 'p':
			if (!vf_parse_uint(optarg, 1u << 30, &v) || v == 0) {
				return vf_usage("bad --pid", optarg);
			}
			cli.pid = (int)v;
			break;
		case 'P':
			if (cfg_parse_size(optarg, &cli.span) || cli.span < (1u << 20) ||
			    cli.span % 4096) {
				return vf_usage("bad --span (at least 1M, a multiple of 4K)",
						optarg);
			}
			break;
		case 'r':
			if (!vf_parse_uint(optarg, UINT64_MAX, &cli.reconnect) || !cli.reconnect) {
				return vf_usage("bad --reconnect", optarg);
			}
			break;
		case 'h':
			return vf_usage(NULL, NULL);
		default:
			return vf_usage("bad option", NULL);
		}
	}
	if (optind != argc) {
		return vf_usage("unexpected argument", argv[optind]);
	}
	if (!cli.dev.socket && !(strcmp(cmd, "corpus") == 0 && cli.list)) {
		return vf_usage("--socket is required", NULL);
	}
	if (cli.iodepth >= cli.dev.queue_size) {
		return vf_usage("--iodepth must be below --queue-size", NULL);
	}
	if (!strcmp(cmd, "info")) {
		return vf_cmd_info(&cli);
	}
	if (!strcmp(cmd, "verify")) {
		if (!cli.count && !cli.runtime_s) {
			cli.count = 2000;
		}
		return vf_cmd_verify(&cli);
	}
	if (!strcmp(cmd, "bench")) {
		if (!have_rw) {
			return vf_usage("bench needs --rw", NULL);
		}
		if (!cli.runtime_s) {
			cli.runtime_s = 5;
		}
		return vf_cmd_bench(&cli);
	}
	if (!strcmp(cmd, "corpus")) {
		return vf_cmd_corpus(&cli);
	}
	return vf_usage("unknown subcommand", cmd);
}

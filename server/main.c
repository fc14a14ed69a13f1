/* SPDX-License-Identifier: Apache-2.0 */
/* keel-server: format a drive, serve it, make keys. See docs/operations.md. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/reactor.h"
#include "proto/auth.h"
#include "server/bs.h"
#include "server/bs_dev.h"
#include "server/srv.h"

/* Exit status: documented in every help page. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* I/O error, device problem, refused format */
	EXIT_USAGE = 2,	  /* bad command line, bad configuration, bad key file */
};

#define SRV_RING_ENTRIES 4096

static const char help_main[] =
	"NAME\n"
	"    keel-server - Keel storage server: one process per drive\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-server format --device PATH [--size SIZE] [--object-size SIZE]\n"
	"                       [--journal-size SIZE] [--backend NAME] [--force]\n"
	"    keel-server run [--config FILE] [--device PATH] [--listen HOST:PORT]\n"
	"                    [--key FILE] [--set SECTION.KEY=VALUE ...] [--log-level LEVEL]\n"
	"                    [--mgmt HOST:PORT [--host NAME] [--rack NAME] [--weight N]\n"
	"                     [--advertise HOST:PORT]]\n"
	"    keel-server keygen FILE\n"
	"    keel-server help [format|run|keygen]\n"
	"    keel-server --help\n"
	"\n"
	"DESCRIPTION\n"
	"    keel-server stores fixed-size objects on one drive (a file, partition or\n"
	"    NVMe namespace) and serves them to authenticated Keel clients over TCP.\n"
	"    Every 4 KiB block is stored with its crc32c; reads verify it and return\n"
	"    EIO instead of corrupt data. Writes are acknowledged once durable.\n"
	"\n"
	"    format   write an empty blockstore on a drive\n"
	"    run      serve a formatted drive until SIGTERM or SIGINT\n"
	"    keygen   create a new random cluster key file (mode 0600)\n"
	"    help     show the manual page of a subcommand\n"
	"\n"
	"FILES\n"
	"    Configuration file (run --config): INI, section [server]. Key file: one\n"
	"    line of hex, not readable by group or others.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success (run: clean shutdown on SIGTERM/SIGINT), 1 runtime error\n"
	"    (device, I/O, refused format), 2 usage or configuration error.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-server keygen /etc/keel/cluster.key\n"
	"    keel-server format --device /var/lib/keel/drive0 --size 100G\n"
	"    keel-server run --device /var/lib/keel/drive0 --key /etc/keel/cluster.key \\\n"
	"        --listen 0.0.0.0:7400\n";

static const char help_format[] =
	"NAME\n"
	"    keel-server format - write an empty Keel blockstore on a drive\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-server format --device PATH [--size SIZE] [--object-size SIZE]\n"
	"                       [--journal-size SIZE] [--backend NAME] [--force]\n"
	"\n"
	"DESCRIPTION\n"
	"    Writes a superblock, empty metadata and an empty journal; the rest of the\n"
	"    drive becomes object slots of --object-size bytes. Refuses a drive that\n"
	"    already holds a Keel blockstore unless --force is given (all its data is\n"
	"    then lost). SIZE takes the suffixes K, M, G, T (powers of 1024).\n"
	"    Never formats a drive another process has open: keel-server locks its\n"
	"    drive (flock; block devices also O_EXCL, as mounts and mkfs do), and\n"
	"    format waits up to 5 s for the drive and then fails.\n"
	"\n"
	"OPTIONS\n"
	"    --device PATH       file or block device (required); a file is created\n"
	"                        or extended to --size\n"
	"    --size SIZE         drive size to use; default: the whole file/device\n"
	"    --object-size SIZE  object size, power of two, 64K..64M (default 4M)\n"
	"    --journal-size SIZE journal size, >= 1M, 4K multiple (default 64M)\n"
	"    --backend NAME      uring (default), ram, sim (the last two for tests)\n"
	"    --force             format even if the drive holds a Keel blockstore\n"
	"\n"
	"FILES\n"
	"    PATH is overwritten from offset 0 on.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 formatted; 1 device error, drive in use or already formatted; 2 bad\n"
	"    options.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-server format --device /var/lib/keel/drive0 --size 1G\n"
	"    keel-server format --device /dev/nvme0n1p3 --object-size 1M --force\n";

static const char help_run[] =
	"NAME\n"
	"    keel-server run - serve a formatted drive\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-server run [--config FILE] [--device PATH] [--listen HOST:PORT]\n"
	"                    [--key FILE] [--backend NAME] [--flush-mode MODE]\n"
	"                    [--set SECTION.KEY=VALUE ...] [--log-level LEVEL]\n"
	"                    [--mgmt HOST:PORT [--host NAME] [--rack NAME] [--weight N]\n"
	"                     [--advertise HOST:PORT]]\n"
	"\n"
	"DESCRIPTION\n"
	"    Opens the blockstore (replaying its journal), listens, authenticates\n"
	"    every connection with the cluster key (mutual HMAC-SHA256), and serves\n"
	"    READ, WRITE, DISCARD, WRITE_ZEROES, SYNC, LIST, STAT and PING. Each\n"
	"    connection may have up to 128 requests in flight; requests beyond that\n"
	"    are answered EBUSY (retry later), and a client that keeps pushing is\n"
	"    disconnected. Malformed or unauthenticated input closes only the\n"
	"    connection it came on, with its reason logged.\n"
	"\n"
	"    Settings come from defaults, then --config FILE, then the command-line\n"
	"    options in order (later wins). On SIGTERM or SIGINT the server stops\n"
	"    accepting, waits for in-flight requests (up to 10 s), closes every\n"
	"    connection, checkpoints the blockstore and exits 0.\n"
	"\n"
	"OPTIONS\n"
	"    --config FILE       INI file with a [server] section (keys below)\n"
	"    --device PATH       same as --set server.device=PATH\n"
	"    --listen HOST:PORT  same as --set server.listen=HOST:PORT\n"
	"    --key FILE          same as --set server.key_file=FILE\n"
	"    --backend NAME      same as --set server.backend=NAME\n"
	"    --flush-mode MODE   same as --set server.flush_mode=MODE\n"
	"    --log-level LEVEL   same as --set server.log_level=LEVEL\n"
	"    --set S.KEY=VALUE   set any configuration key\n"
	"    --mgmt HOST:PORT    same as --set server.mgmt=HOST:PORT: cluster mode\n"
	"    --host NAME         same as --set server.host=NAME\n"
	"    --rack NAME         same as --set server.rack=NAME\n"
	"    --weight N          same as --set server.weight=N\n"
	"    --advertise ADDR    same as --set server.advertise=ADDR\n"
	"\n"
	"    Cluster mode (--mgmt): the server registers with keel-mgmt (identity:\n"
	"    the blockstore uuid), heartbeats every 250 ms, follows the cluster map,\n"
	"    serves the PGs it is primary of (client requests must carry the PG id\n"
	"    and map epoch; others get EINVAL/ESTALE), replicates writes to the\n"
	"    other members and recovers members that are not in sync. Without\n"
	"    --mgmt it serves requests alone, as a single server.\n"
	"\n"
	"    Fault injection (tests only, never in production): the [fault] keys\n"
	"    make the server drop, corrupt or delay every Nth frame on its client\n"
	"    and peer connections (not the mgmt one) to exercise the timeout,\n"
	"    checksum and resend paths; STAT and the exit log count what was\n"
	"    injected and what the checksums caught. recovery_hold_ms keeps a\n"
	"    recovering member out of sync for a while, as a large recovery does.\n"
	"\n"
	"    Configuration keys ([server] section; [fault] is for tests only) and\n"
	"    their defaults:\n"
	"%s"
	"\n"
	"FILES\n"
	"    The key file must be a regular file with mode 0600 or stricter; a key\n"
	"    readable by group or others is refused.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 clean shutdown; 1 runtime error (cannot open the device or listen,\n"
	"    device in use by another process, not formatted, I/O error); 2 bad\n"
	"    option, configuration or key file.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-server run --device drive0 --key cluster.key --listen 127.0.0.1:7400\n"
	"    keel-server run --config /etc/keel/server.conf --set server.flush_mode=always\n";

static const char help_keygen[] =
	"NAME\n"
	"    keel-server keygen - create a cluster key file\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-server keygen FILE\n"
	"\n"
	"DESCRIPTION\n"
	"    Writes 32 random bytes as one line of hex to FILE, created with mode 0600.\n"
	"    Servers and clients that share this key authenticate each other.\n"
	"\n"
	"OPTIONS\n"
	"    none\n"
	"\n"
	"FILES\n"
	"    FILE must not exist.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 created; 1 FILE exists or cannot be written; 2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-server keygen /etc/keel/cluster.key\n";

static void print_run_help(FILE *f)
{
	char *keys = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&keys, &len);

	if (m) {
		srv_settings_help(m);
		fclose(m);
	}
	fprintf(f, help_run, keys ? keys : "");
	free(keys);
}

static int cmd_help(const char *topic, FILE *f)
{
	if (!topic) {
		fputs(help_main, f);
	} else if (!strcmp(topic, "format")) {
		fputs(help_format, f);
	} else if (!strcmp(topic, "run")) {
		print_run_help(f);
	} else if (!strcmp(topic, "keygen")) {
		fputs(help_keygen, f);
	} else {
		fprintf(stderr, "keel-server: no help for '%s' (try format, run, keygen)\n", topic);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int usage_error(const char *cmd, const char *msg, const char *arg)
{
	fprintf(stderr, "keel-server%s%s: %s%s%s\n", cmd ? " " : "", cmd ? cmd : "", msg,
		arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "Try 'keel-server help%s%s'.\n", cmd ? " " : "", cmd ? cmd : "");
	return EXIT_USAGE;
}

/* ---- format ---- */

static int parse_size_arg(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	if (cfg_parse_size(s, out)) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s expects a size such as 64M", opt);
		return usage_error(cmd, msg, s);
	}
	return 0;
}

static int cmd_format(int argc, char **argv)
{
	static const struct option opts[] = {
		{"device", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},
		{"object-size", required_argument, NULL, 'o'},
		{"journal-size", required_argument, NULL, 'j'},
		{"backend", required_argument, NULL, 'b'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bs_format_opts fo = {
		.object_size = BS_DEFAULT_OBJECT_SIZE,
		.journal_size = BS_DEFAULT_JOURNAL_SIZE,
	};
	const char *device = NULL, *backend = "uring";
	uint64_t size = 0, v;
	struct reactor *r;
	struct bs_dev *dev;
	bool force = false;
	int c, ret, status = EXIT_RUNTIME;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 's':
			if (parse_size_arg("format", "--size", optarg, &size)) {
				return EXIT_USAGE;
			}
			break;
		case 'o':
			if (parse_size_arg("format", "--object-size", optarg, &v)) {
				return EXIT_USAGE;
			}
			if (v < BS_MIN_OBJECT_SIZE || v > BS_MAX_OBJECT_SIZE || (v & (v - 1))) {
				return usage_error("format",
						   "--object-size must be a power of two, 64K..64M",
						   optarg);
			}
			fo.object_size = (uint32_t)v;
			break;
		case 'j':
			if (parse_size_arg("format", "--journal-size", optarg, &v)) {
				return EXIT_USAGE;
			}
			if (v < (1u << 20) || v % BS_BLOCK) {
				return usage_error("format",
						   "--journal-size must be >= 1M and a 4K multiple",
						   optarg);
			}
			fo.journal_size = v;
			break;
		case 'b':
			backend = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			return cmd_help("format", stdout);
		default:
			return usage_error("format", "bad option", NULL);
		}
	}
	if (optind < argc) {
		return usage_error("format", "unexpected argument", argv[optind]);
	}
	if (!device) {
		return usage_error("format", "--device is required", NULL);
	}
	if (size % BS_BLOCK) {
		return usage_error("format", "--size must be a multiple of 4K", NULL);
	}
	ret = reactor_create(256, &r);
	if (ret) {
		fprintf(stderr, "keel-server format: cannot create io_uring: %s\n", strerror(-ret));
		return EXIT_RUNTIME;
	}
	ret = bs_dev_open(r, backend, device, size, &dev);
	if (ret) {
		fprintf(stderr, "keel-server format: cannot open %s (backend %s): %s\n", device,
			backend, strerror(-ret));
		status = ret == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
		goto out_destroy_reactor;
	}
	/* from the superblocks alone: a refused format writes nothing */
	if (!force && !bs_probe(dev)) {
		fprintf(stderr,
			"keel-server format: %s already holds a Keel blockstore; "
			"use --force to destroy it\n",
			device);
		goto out_close_dev;
	}
	ret = bs_format(dev, &fo);
	if (ret) {
		fprintf(stderr, "keel-server format: %s: %s\n", device,
			ret == -EINVAL ? "invalid options or device too small" : strerror(-ret));
		status = ret == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
		goto out_close_dev;
	}
	printf("formatted %s: %llu bytes, object size %u, journal %llu bytes\n", device,
	       (unsigned long long)dev->size, fo.object_size, (unsigned long long)fo.journal_size);
	status = EXIT_OK;
out_close_dev:
	bs_dev_close(dev);
out_destroy_reactor:
	reactor_destroy(r);
	return status;
}

/* ---- keygen ---- */

static int cmd_keygen(int argc, char **argv)
{
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		return cmd_help("keygen", stdout);
	}
	if (argc != 2) {
		return usage_error("keygen", "expects exactly one FILE", NULL);
	}
	ret = kp_key_generate(argv[1]);
	if (ret) {
		fprintf(stderr, "keel-server keygen: %s: %s\n", argv[1], strerror(-ret));
		return EXIT_RUNTIME;
	}
	printf("created key file %s (mode 0600)\n", argv[1]);
	return EXIT_OK;
}

/* ---- run ---- */

struct run_ctx {
	struct srv srv;
	struct rsignal sig;
	bool srv_started;
	struct kp_fault fault;
};

static void run_on_signal(struct rsignal *sig, int signo)
{
	struct run_ctx *ctx = container_of(sig, struct run_ctx, sig);

	log_info("received %s", strsignal(signo));
	if (signo == SIGHUP) {
		xport_stats_log();
		return;
	}
	if (ctx->srv_started) {
		srv_shutdown(&ctx->srv);
	} else {
		reactor_stop(ctx->srv.r);
	}
}

static int run_set(struct srv_settings *s, const char *key, const char *value)
{
	char err[CFG_ERR_LEN];

	if (srv_settings_set(s, key, value, err, sizeof(err))) {
		fprintf(stderr, "keel-server run: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* Parse the command line into @s. Returns 0 or an exit status. */
static int run_parse(int argc, char **argv, struct srv_settings *s)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"device", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"key", required_argument, NULL, 'k'},
		{"backend", required_argument, NULL, 'b'},
		{"flush-mode", required_argument, NULL, 'F'},
		{"log-level", required_argument, NULL, 'L'},
		{"set", required_argument, NULL, 'S'},
		{"mgmt", required_argument, NULL, 'M'},
		{"host", required_argument, NULL, 'H'},
		{"rack", required_argument, NULL, 'R'},
		{"weight", required_argument, NULL, 'W'},
		{"advertise", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		int opt;
		const char *key;
	} direct[] = {
		{'d', "server.device"},	 {'l', "server.listen"},     {'k', "server.key_file"},
		{'b', "server.backend"}, {'F', "server.flush_mode"}, {'L', "server.log_level"},
		{'M', "server.mgmt"},	 {'H', "server.host"},	     {'R', "server.rack"},
		{'W', "server.weight"},	 {'A', "server.advertise"},
	};
	char err[CFG_ERR_LEN];
	const char *config = NULL;
	int c, ret;

	ret = srv_settings_defaults(s, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "keel-server run: %s\n", err);
		return EXIT_USAGE;
	}
	/* The config file loads first whatever its position on the command
	 * line, so that every other option overrides it. */
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'c') {
			config = optarg;
		} else if (c == 'h') {
			cmd_help("run", stdout);
			return -1;
		} else if (c == '?') {
			return usage_error("run", "bad option", NULL);
		}
	}
	if (optind < argc) {
		return usage_error("run", "unexpected argument", argv[optind]);
	}
	if (config) {
		ret = srv_settings_load(s, config, err, sizeof(err));
		if (ret) {
			if (ret == -ENOENT || ret == -EACCES) {
				fprintf(stderr, "keel-server run: cannot read config %s: %s\n",
					config, strerror(-ret));
			} else {
				fprintf(stderr, "keel-server run: %s\n", err);
			}
			return EXIT_USAGE;
		}
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'S') {
			char key[128];
			const char *value;

			if (cfg_split_assignment(optarg, key, sizeof(key), &value)) {
				return usage_error("run", "--set expects SECTION.KEY=VALUE",
						   optarg);
			}
			if (run_set(s, key, value)) {
				return EXIT_USAGE;
			}
			continue;
		}
		for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++) {
			if (direct[i].opt == c && run_set(s, direct[i].key, optarg)) {
				return EXIT_USAGE;
			}
		}
	}
	if (!s->device[0]) {
		return usage_error("run", "no device: give --device or server.device", NULL);
	}
	if (!s->key_file[0]) {
		return usage_error("run", "no key: give --key or server.key_file", NULL);
	}
	return 0;
}

static void log_store(const struct srv_settings *s, struct bs *bs, struct bs_dev *dev)
{
	struct bs_stat st;

	bs_stat(bs, &st);
	log_info("device %s (%s): %llu bytes, volatile write cache: %s", s->device, s->backend,
		 (unsigned long long)dev->size, dev->volatile_cache ? "yes" : "no");
	log_info("format: object size %u, %llu/%llu objects used, journal %llu/%llu bytes",
		 st.object_size, (unsigned long long)st.objects_used,
		 (unsigned long long)st.objects_total, (unsigned long long)st.journal_used,
		 (unsigned long long)st.journal_size);
	log_info("flush mode %s: %s; index RAM %llu KiB, metadata cache %llu KiB",
		 srv_flush_mode_name(s->flush_mode),
		 st.flush_always ? "journal written through before every ack" : "no device flushes",
		 (unsigned long long)(st.index_bytes / 1024),
		 (unsigned long long)(st.meta_cache_bytes / 1024));
	if (st.flush_always) {
		log_info("in-place applies held until the next journal write, at most %u us "
			 "(journal flushes: apply_batch not used)",
			 s->apply_delay_us);
	} else if (st.apply_batch > 1) {
		log_info("in-place applies in batches of up to %u, held at most %u us",
			 st.apply_batch, s->apply_delay_us);
	} else {
		log_info("in-place applies one by one");
	}
}

static void log_counters(const struct srv *s)
{
	const struct srv_counters *c = &s->ctr;

	log_info("served: read %llu (%llu err, %llu MiB), write %llu (%llu err, %llu MiB, %llu "
		 "coalesced), discard %llu, write_zeroes %llu, sync %llu, list %llu, stat %llu, "
		 "ping %llu, busy %llu; connections %llu accepted, %llu refused",
		 (unsigned long long)c->ops[KP_OP_READ], (unsigned long long)c->errors[KP_OP_READ],
		 (unsigned long long)(c->bytes_read >> 20), (unsigned long long)c->ops[KP_OP_WRITE],
		 (unsigned long long)c->errors[KP_OP_WRITE],
		 (unsigned long long)(c->bytes_written >> 20),
		 (unsigned long long)c->writes_coalesced, (unsigned long long)c->ops[KP_OP_DISCARD],
		 (unsigned long long)c->ops[KP_OP_WRITE_ZEROES],
		 (unsigned long long)c->ops[KP_OP_SYNC], (unsigned long long)c->ops[KP_OP_LIST],
		 (unsigned long long)c->ops[KP_OP_STAT], (unsigned long long)c->ops[KP_OP_PING],
		 (unsigned long long)c->busy_rejects, (unsigned long long)c->conns_accepted,
		 (unsigned long long)c->conns_refused);
	if (s->slow_requests) {
		log_info("slow requests logged: %llu", (unsigned long long)s->slow_requests);
	}
	if (kp_conn_stats.hdr_crc_errors || kp_conn_stats.data_crc_errors) {
		log_info("frames refused for bad crc: %llu header, %llu payload",
			 (unsigned long long)kp_conn_stats.hdr_crc_errors,
			 (unsigned long long)kp_conn_stats.data_crc_errors);
	}
	if (s->fault) {
		log_info("message faults injected: %llu dropped, %llu corrupted, %llu delayed",
			 (unsigned long long)s->fault->dropped,
			 (unsigned long long)s->fault->corrupted,
			 (unsigned long long)s->fault->delayed);
	}
}

static int cmd_run(int argc, char **argv)
{
	static struct run_ctx ctx; /* large (pools are separate); outlives the reactor */
	struct srv_settings s;
	char err[256];
	struct kp_key key;
	const struct xport_ops *xops;
	struct bs_opts bo;
	struct reactor *r;
	struct bs_dev *dev;
	struct bs *bs;
	int ret, status = EXIT_RUNTIME;

	ret = run_parse(argc, argv, &s);
	if (ret) {
		return ret < 0 ? EXIT_OK : ret;
	}
	klog_set_level((enum klog_level)(KLOG_ERROR + s.log_level));
	klog_set_ident("keel-server");
	ret = kp_key_load(s.key_file, &key, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "keel-server run: %s\n", err);
		return EXIT_USAGE;
	}
	if (xport_select(s.transport, &xops, err, sizeof(err))) {
		fprintf(stderr, "keel-server run: server.transport: %s\n", err);
		status = EXIT_USAGE;
		goto out_wipe_key;
	}
	ret = reactor_create(SRV_RING_ENTRIES, &r);
	if (!ret) {
		reactor_set_poll_us(r, s.poll_us);
	}
	if (ret) {
		log_error("cannot create io_uring: %s", strerror(-ret));
		goto out_wipe_key;
	}
	ret = rsignal_start(&ctx.sig, r, run_on_signal);
	if (ret) {
		log_error("cannot set up signals: %s", strerror(-ret));
		goto out_destroy_reactor;
	}
	ret = bs_dev_open(r, s.backend, s.device, 0, &dev);
	if (ret) {
		log_error("cannot open device %s (backend %s): %s", s.device, s.backend,
			  strerror(-ret));
		status = ret == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
		goto out_stop_signals;
	}
	memset(&bo, 0, sizeof(bo));
	bo.flush_mode = (enum bs_flush_mode)s.flush_mode;
	bo.meta_cache_mb = s.meta_cache_mb;
	bo.apply_batch = s.apply_batch; /* not used with journal flushes (bs.h) */
	bo.apply_delay_us = s.apply_delay_us;
	ret = bs_open(dev, &bo, &bs);
	if (ret) {
		log_error("cannot open blockstore on %s: %s", s.device,
			  ret == -EUCLEAN ? "not a Keel blockstore (run keel-server format)"
			  : ret == -EPROTONOSUPPORT
				  ? "its format version is newer than this keel-server knows "
				    "(written by a newer Keel: run that one)"
				  : strerror(-ret));
		goto out_close_dev;
	}
	log_store(&s, bs, dev);
	ctx.srv.r = r;
	ret = srv_start(&ctx.srv, r, bs, &key, xops, s.listen, s.max_connections,
			s.auth_timeout_ms);
	if (ret) {
		goto out_close_bs;
	}
	ctx.srv_started = true;
	ctx.srv.slow_ns = (uint64_t)s.slow_request_ms * 1000000ull;
	ctx.fault.drop_every = s.fault_msg_drop_every;
	ctx.fault.corrupt_every = s.fault_msg_corrupt_every;
	ctx.fault.delay_every = s.fault_msg_delay_every;
	ctx.fault.delay_ms = s.fault_msg_delay_ms;
	if (ctx.fault.drop_every || ctx.fault.corrupt_every ||
	    (ctx.fault.delay_every && ctx.fault.delay_ms)) {
		log_warn("message fault injection on (tests only): drop every %u, corrupt every "
			 "%u, delay every %u by %u ms",
			 ctx.fault.drop_every, ctx.fault.corrupt_every, ctx.fault.delay_every,
			 ctx.fault.delay_ms);
		ctx.srv.fault = &ctx.fault;
	}
	if (s.fault_recovery_hold_ms) {
		log_warn("recovery held back (tests only): no object copied until %u ms after a "
			 "PG recovery starts",
			 s.fault_recovery_hold_ms);
	}
	if (s.mgmt[0]) {
		ret = srv_cluster_start(&ctx.srv, &s);
		if (ret) {
			log_error("cannot start cluster mode: %s", strerror(-ret));
			srv_destroy(&ctx.srv);
			goto out_close_bs;
		}
	}
	log_info("ready");
	ret = reactor_run(r);
	if (ret) {
		log_error("reactor failed: %s", strerror(-ret));
	} else {
		status = EXIT_OK;
	}
	log_counters(&ctx.srv);
	xport_stats_log();
	srv_destroy(&ctx.srv);
out_close_bs:
	bs_close(bs);
	log_info("blockstore closed");
out_close_dev:
	bs_dev_close(dev);
out_stop_signals:
	rsignal_stop(&ctx.sig);
out_destroy_reactor:
	reactor_destroy(r);
out_wipe_key:
	explicit_bzero(&key, sizeof(key));
	if (!status) {
		log_info("exiting cleanly");
	}
	return status;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		fputs(help_main, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		return cmd_help(NULL, stdout);
	}
	if (!strcmp(cmd, "help")) {
		return cmd_help(argc > 2 ? argv[2] : NULL, stdout);
	}
	if (!strcmp(cmd, "format")) {
		return cmd_format(argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "run")) {
		return cmd_run(argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "keygen")) {
		return cmd_keygen(argc - 1, argv + 1);
	}
	return usage_error(NULL, "unknown command", cmd);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-export: serve a local file through keel-client's export code
 * (vhost-user-blk and/or NBD) without a cluster. For the export tests, the
 * fuzz and malicious-guest corpus, and to compare the exports with
 * qemu-storage-daemon on the same file.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/blk_dev.h"
#include "client/nbd_server.h"
#include "client/vhost_blk.h"
#include "common/config.h"
#include "common/log.h"
#include "common/reactor.h"
#include "common/rsignal.h"

static const char export_usage_text[] =
	"usage: keel-export --file PATH [--size BYTES] [--ro] [--name NAME]\n"
	"                   [--vhost SOCKET [--queues N]] [--nbd-unix SOCKET]\n"
	"                   [--nbd-tcp HOST:PORT] [--log-level LEVEL]\n"
	"\n"
	"Serve the file PATH as a block device through keel-client's exports:\n"
	"vhost-user-blk on --vhost SOCKET (for QEMU's vhost-user-blk-pci or the\n"
	"test frontend) and NBD on --nbd-unix SOCKET and/or --nbd-tcp HOST:PORT,\n"
	"export name NAME (default: the file's base name). At least one export is\n"
	"required. The file is created when missing; --size extends it (suffixes\n"
	"K, M, G, T), default its current size rounded down to 4 KiB.\n"
	"Runs until SIGTERM or SIGINT, then closes the exports once in-flight\n"
	"requests have finished and prints the export counters.\n"
	"\n"
	"Exit status: 0 after a clean stop, 1 on a runtime error, 2 on usage.\n";

struct export_ctx {
	struct reactor *r;
	struct rsignal sig;
	struct blk_dev *dev;
	struct vhost_blk *vb;
	struct nbd_server *nbd;
	int closing;
};

static void export_print_stats(struct export_ctx *x)
{
	char line[512];

	if (x->vb) {
		struct vhost_blk_stats s;

		vhost_blk_get_stats(x->vb, &s);
		vhost_blk_format_stats(&s, line, sizeof(line));
		printf("vhost: %s\n", line);
	}
	if (x->nbd) {
		struct nbd_server_stats s;

		nbd_server_get_stats(x->nbd, &s);
		nbd_server_format_stats(&s, line, sizeof(line));
		printf("nbd: %s\n", line);
	}
	fflush(stdout);
}

static void export_closed(void *arg)
{
	struct export_ctx *x = arg;

	if (--x->closing == 0) {
		reactor_stop(x->r);
	}
}

static void export_on_signal(struct rsignal *sig, int signo)
{
	struct export_ctx *x = container_of(sig, struct export_ctx, sig);

	if (signo == SIGHUP || x->closing) {
		return;
	}
	log_info("received %s: closing exports", strsignal(signo));
	export_print_stats(x);
	x->closing = 1; /* held until both closes are issued */
	if (x->vb) {
		x->closing++;
		vhost_blk_close(x->vb, export_closed, x);
	}
	if (x->nbd) {
		x->closing++;
		nbd_server_close(x->nbd, export_closed, x);
	}
	export_closed(x);
}

static int export_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "keel-export: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "",
		export_usage_text);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"file", required_argument, NULL, 'f'},	   {"size", required_argument, NULL, 's'},
		{"ro", no_argument, NULL, 'r'},		   {"name", required_argument, NULL, 'n'},
		{"vhost", required_argument, NULL, 'v'},   {"queues", required_argument, NULL, 'q'},
		{"nbd-unix", required_argument, NULL, 'u'}, {"nbd-tcp", required_argument, NULL, 't'},
		{"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vhost_blk_opts vo = {.num_queues = 1, .allow_uid = (uid_t)-1, .allow_gid = (gid_t)-1};
	struct nbd_server_opts no = {0};
	struct export_ctx x = {0};
	const char *file = NULL, *name = NULL;
	uint64_t size = 0;
	bool ro = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 's':
			if (cfg_parse_size(optarg, &size) || !size) {
				return export_usage("--size expects a byte count (K/M/G/T)", optarg);
			}
			break;
		case 'r':
			ro = true;
			break;
		case 'n':
			name = optarg;
			break;
		case 'v':
			vo.socket_path = optarg;
			break;
		case 'q': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || n < 1 || n > VHOST_BLK_MAX_QUEUES) {
				return export_usage("--queues expects 1..16", optarg);
			}
			vo.num_queues = (unsigned int)n;
			break;
		}
		case 'u':
			no.unix_path = optarg;
			break;
		case 't':
			no.tcp_addr = optarg;
			break;
		case 'l': {
			enum klog_level lvl;

			if (klog_parse_level(optarg, &lvl)) {
				return export_usage("--log-level expects error|warn|info|debug",
						    optarg);
			}
			klog_set_level(lvl);
			break;
		}
		case 'h':
			fputs(export_usage_text, stdout);
			return 0;
		default:
			return export_usage("unknown option", NULL);
		}
	}
	if (optind < argc) {
		return export_usage("unexpected argument", argv[optind]);
	}
	if (!file) {
		return export_usage("--file is required", NULL);
	}
	if (!vo.socket_path && !no.unix_path && !no.tcp_addr) {
		return export_usage("give at least one of --vhost, --nbd-unix, --nbd-tcp", NULL);
	}
	klog_set_ident("keel-export");
	rc = reactor_create(256, &x.r);
	if (rc) {
		fprintf(stderr, "keel-export: io_uring: %s\n", strerror(-rc));
		return 1;
	}
	rc = rsignal_start(&x.sig, x.r, export_on_signal);
	if (rc) {
		fprintf(stderr, "keel-export: signals: %s\n", strerror(-rc));
		return 1;
	}
	rc = blk_file_open(x.r, file, size, ro, &x.dev);
	if (rc) {
		fprintf(stderr, "keel-export: %s: %s\n", file, strerror(-rc));
		return 1;
	}
	if (name) {
		snprintf(x.dev->name, sizeof(x.dev->name), "%s", name);
		snprintf(x.dev->serial, sizeof(x.dev->serial), "%s", name);
	}
	if (vo.socket_path) {
		rc = vhost_blk_create(x.r, x.dev, &vo, &x.vb);
		if (rc) {
			fprintf(stderr, "keel-export: vhost-user on %s: %s\n", vo.socket_path,
				strerror(-rc));
			return 1;
		}
	}
	if (no.unix_path || no.tcp_addr) {
		rc = nbd_server_create(x.r, x.dev, &no, &x.nbd);
		if (rc) {
			fprintf(stderr, "keel-export: nbd: %s\n", strerror(-rc));
			return 1;
		}
	}
	log_info("serving %s (%lu bytes%s) as \"%s\"%s%s%s%s%s%s", file, x.dev->size,
		 ro ? ", read-only" : "", x.dev->name, vo.socket_path ? ", vhost-user " : "",
		 vo.socket_path ? vo.socket_path : "", no.unix_path ? ", nbd unix " : "",
		 no.unix_path ? no.unix_path : "", no.tcp_addr ? ", nbd tcp " : "",
		 no.tcp_addr ? no.tcp_addr : "");
	rc = reactor_run(x.r);
	x.dev->ops->destroy(x.dev);
	rsignal_stop(&x.sig);
	reactor_destroy(x.r);
	return rc ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keel-client: serve this host's attached volumes to guests (see hc.h). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client/hc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/rest.h"

enum { HC_EXIT_OK = 0, HC_EXIT_RUNTIME = 1, HC_EXIT_USAGE = 2 };

#define HC_CLUSTER_RETRY_NS (1000ull * 1000 * 1000)

static const char *const hc_log_levels[] = {"error", "warn", "info", "debug", NULL};

#define HC_OPT(name_, type_, field_, min_, max_, def_, vals_, help_)                               \
	{                                                                                          \
		.section = "client", .name = name_, .type = type_,                                 \
		.offset = offsetof(struct hc_settings, field_),                                    \
		.size = sizeof(((struct hc_settings *)0)->field_), .min = min_, .max = max_,       \
		.def = def_, .enum_vals = vals_, .help = help_,                                    \
	}

static const struct cfg_opt hc_opts[] = {
	HC_OPT("mgmt_url", CFG_STR, mgmt_url, 0, 0, "", NULL,
	       "keel-mgmt REST URL (default $KEEL_MGMT_URL, else http://127.0.0.1:8776)"),
	HC_OPT("host", CFG_STR, host, 0, 0, "", NULL,
	       "this host's name in attachments (default: the hostname)"),
	HC_OPT("run_dir", CFG_STR, run_dir, 0, 0, "/run/keel", NULL,
	       "directory of the vhost-user and NBD sockets (created mode 0755)"),
	HC_OPT("key_file", CFG_STR, key_file, 0, 0, "", NULL,
	       "cluster key, mode 0600 (default $KEEL_KEY_FILE, else /etc/keel/keel.key)"),
	HC_OPT("poll_ms", CFG_U32, poll_ms, 100, 60000, "1000", NULL,
	       "how often mgmt is asked for this host's attachments"),
	HC_OPT("num_queues", CFG_U32, num_queues, 1, 16, "4", NULL,
	       "virtqueues offered per vhost-user-blk device (QEMU's num-queues <= this)"),
	HC_OPT("transport", CFG_STR, transport, 0, 0, "tcp", NULL,
	       "transport to the keel-servers: tcp or rdma, as their server.transport "
	       "(docs/rdma.md); mgmt is always reached over tcp"),
	HC_OPT("io_timeout_ms", CFG_U32, io_timeout_ms, 100, 600000, "5000", NULL,
	       "per-attempt I/O timeout before libkeel reconnects and retries"),
	HC_OPT("retry_ms", CFG_U32, retry_ms, 100, 3600000, "5000", NULL,
	       "wait before retrying an attachment that failed"),
	HC_OPT("vhost_user", CFG_STR, vhost_user, 0, 0, "", NULL,
	       "user (besides root and ours) allowed on the vhost sockets (their owner)"),
	HC_OPT("vhost_group", CFG_STR, vhost_group, 0, 0, "", NULL,
	       "group allowed on the vhost sockets (their group), e.g. kvm"),
	HC_OPT("log_level", CFG_ENUM, log_level, 0, 0, "info", hc_log_levels,
	       "error, warn, info or debug"),
	HC_OPT("token_file", CFG_STR, token_file, 0, 0, "", NULL,
	       "keel-mgmt API token file, mode 0600 (default $KEEL_TOKEN_FILE, else "
	       "/etc/keel/api.token if present; $KEEL_TOKEN overrides both)"),
	HC_OPT("stats_ms", CFG_U32, stats_ms, 0, 3600000, "10000", NULL,
	       "how often each attachment's I/O counters go to mgmt (/metrics); 0: never"),
};
static const size_t hc_nopts = sizeof(hc_opts) / sizeof(hc_opts[0]);

static const char hc_help[] =
	"NAME\n"
	"    keel-client - serve Keel volumes to the guests of this host\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-client [--config FILE] [--mgmt URL] [--host NAME] [--run-dir DIR]\n"
	"                [--key FILE] [--set client.KEY=VALUE ...] [--log-level LEVEL]\n"
	"\n"
	"DESCRIPTION\n"
	"    One keel-client runs on every hypervisor host. It asks keel-mgmt every\n"
	"    poll_ms which volumes are attached to this host (keelctl volume attach\n"
	"    NAME --host NAME) and serves each one as a vhost-user-blk socket,\n"
	"    RUN_DIR/VOLUME.vhost, for QEMU's vhost-user-blk-pci device, and, when\n"
	"    attached with --nbd, as an NBD export on RUN_DIR/VOLUME.nbd. It reports\n"
	"    the paths back to mgmt, where keelctl shows them. A detached volume's\n"
	"    sockets are closed once the requests in flight have finished.\n"
	"\n"
	"    I/O goes straight from keel-client to the storage servers (libkeel):\n"
	"    writes carry a crc32c per 4 KiB block that is checked end to end, and\n"
	"    requests are retried across server failures instead of failing the\n"
	"    guest. Restarting keel-client under a running guest costs a stall, not\n"
	"    an I/O error, when QEMU's chardev has reconnect=1: requests that were\n"
	"    in flight are resubmitted from QEMU's inflight region.\n"
	"\n"
	"    Only root, keel-client's own user, vhost_user and members of\n"
	"    vhost_group may connect to the vhost sockets (SO_PEERCRED); the sockets\n"
	"    are mode 0660, owned by vhost_user and vhost_group when set. With\n"
	"    libvirt on Debian, QEMU runs as libvirt-qemu in group kvm: set\n"
	"    vhost_group = kvm.\n"
	"\n"
	"OPTIONS\n"
	"    --config FILE      INI file with a [client] section (keys below)\n"
	"    --mgmt URL         same as --set client.mgmt_url=URL\n"
	"    --host NAME        same as --set client.host=NAME\n"
	"    --run-dir DIR      same as --set client.run_dir=DIR\n"
	"    --key FILE         same as --set client.key_file=FILE\n"
	"    --token-file FILE  same as --set client.token_file=FILE\n"
	"    --log-level LEVEL  same as --set client.log_level=LEVEL\n"
	"    --set S.KEY=VALUE  set any configuration key\n"
	"    -h, --help         this page\n"
	"\n"
	"CONFIGURATION KEYS\n"
	"%s"
	"\n"
	"SIGNALS\n"
	"    SIGTERM, SIGINT   close every export (in-flight requests finish) and exit 0\n"
	"    SIGHUP            log every attachment's state and its exports' counters\n"
	"\n"
	"EXIT STATUS\n"
	"    0 clean stop; 1 runtime error (cannot create RUN_DIR, key unreadable);\n"
	"    2 bad options or configuration.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-client --mgmt http://mgmt1:8776 --key /etc/keel/keel.key\n"
	"    keelctl volume attach vm-disk-1 --host $(hostname)\n"
	"    qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=4G,share=on \\\n"
	"        -numa node,memdev=mem -chardev socket,id=d0,path=/run/keel/vm-disk-1.vhost,\\\n"
	"        reconnect=1 -device vhost-user-blk-pci,chardev=d0,num-queues=4\n";

static int hc_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "keel-client: %s%s%s\nTry 'keel-client --help'.\n", msg, arg ? ": " : "",
		arg ? arg : "");
	return HC_EXIT_USAGE;
}

static void hc_print_help(void)
{
	char *keys = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&keys, &len);

	if (f) {
		cfg_print_help(hc_opts, hc_nopts, f);
		fclose(f);
	}
	printf(hc_help, keys ? keys : "");
	free(keys);
}

static int hc_set(struct hc_settings *s, const char *key, const char *value)
{
	char err[CFG_ERR_LEN];

	if (cfg_set(hc_opts, hc_nopts, s, key, value, err, sizeof(err))) {
		fprintf(stderr, "keel-client: %s\n", err);
		return HC_EXIT_USAGE;
	}
	return 0;
}

static int hc_parse(int argc, char **argv, struct hc_settings *s)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"mgmt", required_argument, NULL, 'M'},
		{"host", required_argument, NULL, 'H'},
		{"run-dir", required_argument, NULL, 'r'},
		{"key", required_argument, NULL, 'k'},
		{"set", required_argument, NULL, 'S'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"token-file", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		int opt;
		const char *key;
	} direct[] = {
		{'M', "client.mgmt_url"}, {'H', "client.host"},	     {'r', "client.run_dir"},
		{'k', "client.key_file"}, {'L', "client.log_level"}, {'t', "client.token_file"},
	};
	char err[CFG_ERR_LEN];
	const char *config = NULL;
	int c, ret;

	if (cfg_defaults(hc_opts, hc_nopts, s, err, sizeof(err))) {
		fprintf(stderr, "keel-client: %s\n", err);
		return HC_EXIT_USAGE;
	}
	/* The file first wherever it stands, so every option overrides it. */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'c') {
			config = optarg;
		} else if (c == 'h') {
			hc_print_help();
			return -1;
		} else if (c == '?') {
			return hc_usage("bad option", NULL);
		}
	}
	if (optind < argc) {
		return hc_usage("unexpected argument", argv[optind]);
	}
	if (config) {
		ret = cfg_load_file(hc_opts, hc_nopts, s, config, err, sizeof(err));
		if (ret == -ENOENT || ret == -EACCES) {
			fprintf(stderr, "keel-client: cannot read config %s: %s\n", config,
				strerror(-ret));
			return HC_EXIT_USAGE;
		}
		if (ret) {
			fprintf(stderr, "keel-client: %s\n", err);
			return HC_EXIT_USAGE;
		}
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'S') {
			char key[128];
			const char *value;

			if (cfg_split_assignment(optarg, key, sizeof(key), &value)) {
				return hc_usage("--set expects SECTION.KEY=VALUE", optarg);
			}
			if (hc_set(s, key, value)) {
				return HC_EXIT_USAGE;
			}
			continue;
		}
		for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++) {
			if (direct[i].opt == c && hc_set(s, direct[i].key, optarg)) {
				return HC_EXIT_USAGE;
			}
		}
	}
	return 0;
}

/* Fill what defaults to the environment, and resolve the peer credentials. */
static int hc_resolve(struct hc_daemon *d)
{
	struct hc_settings *s = &d->set;
	const char *env = getenv("KEEL_MGMT_URL");

	if (!s->mgmt_url[0]) {
		snprintf(s->mgmt_url, sizeof(s->mgmt_url), "%s",
			 env && env[0] ? env : "http://127.0.0.1:8776");
	}
	if (!s->key_file[0]) {
		env = getenv("KEEL_KEY_FILE");
		snprintf(s->key_file, sizeof(s->key_file), "%s",
			 env && env[0] ? env : "/etc/keel/keel.key");
	}
	if (!s->host[0] && (gethostname(s->host, sizeof(s->host)) || !s->host[0])) {
		snprintf(s->host, sizeof(s->host), "localhost");
	}
	s->host[sizeof(s->host) - 1] = '\0';
	d->allow_uid = (uid_t)-1;
	d->allow_gid = (gid_t)-1;
	if (s->vhost_user[0]) {
		struct passwd *pw = getpwnam(s->vhost_user);

		if (!pw) {
			return hc_usage("client.vhost_user: no such user", s->vhost_user);
		}
		d->allow_uid = pw->pw_uid;
	}
	if (s->vhost_group[0]) {
		struct group *gr = getgrnam(s->vhost_group);

		if (!gr) {
			return hc_usage("client.vhost_group: no such group", s->vhost_group);
		}
		d->allow_gid = gr->gr_gid;
	}
	return 0;
}

void hc_daemon_maybe_exit(struct hc_daemon *d)
{
	if (!d->stopping || d->attaches) {
		return;
	}
	if (d->cluster) {
		keel_cluster_close(d->cluster);
		d->cluster = NULL;
	}
	reactor_stop(d->r);
}

static void hc_on_list(void *arg, json_t *list, const char *err)
{
	struct hc_daemon *d = arg;

	if (d->stopping) {
		json_decref(list);
		return;
	}
	if (!list) {
		if (!d->mgmt_warned) {
			log_warn("cannot get this host's attachments from mgmt (%s); exports keep "
				 "running, retrying every %u ms",
				 err, d->set.poll_ms);
			d->mgmt_warned = true;
		}
		return;
	}
	if (d->mgmt_warned) {
		log_info("mgmt answers again");
		d->mgmt_warned = false;
	}
	hc_attach_sync(d, list);
	json_decref(list);
}

static void hc_cluster_connect(struct hc_daemon *d);

static void hc_cluster_retry(struct reactor_timer *t)
{
	hc_cluster_connect(container_of(t, struct hc_daemon, cluster_retry));
}

static void hc_cluster_opened(struct keel_cluster *c, int res, void *arg)
{
	struct hc_daemon *d = arg;

	d->cluster_opening = false;
	if (res) {
		if (!d->cluster_warned) {
			log_warn("cannot join the cluster through %s: %s (retrying every second)",
				 d->set.mgmt_url, strerror(-res));
			d->cluster_warned = true;
		}
		keel_cluster_close(c);
		d->cluster = NULL;
		if (d->stopping) {
			hc_daemon_maybe_exit(d);
			return;
		}
		reactor_timer_start(d->r, &d->cluster_retry, HC_CLUSTER_RETRY_NS, hc_cluster_retry);
		return;
	}
	log_info("joined the cluster (map epoch %llu)",
		 (unsigned long long)keel_cluster_epoch(c));
	d->cluster_ready = true;
	if (d->stopping) {
		hc_daemon_maybe_exit(d);
		return;
	}
	hc_attach_cluster_ready(d);
}

static void hc_cluster_connect(struct hc_daemon *d)
{
	struct keel_cluster_opts o = {
		.mgmt_url = d->set.mgmt_url,
		.key_file = d->set.key_file,
		.name = "keel-client",
		.io_timeout_ms = d->set.io_timeout_ms,
		.api_token = d->token,
		.transport = d->set.transport,
	};
	int rc;

	if (d->stopping) {
		return;
	}
	d->cluster_opening = true;
	rc = keel_cluster_open(d->r, &o, hc_cluster_opened, d, &d->cluster);
	if (rc) {
		d->cluster_opening = false;
		d->cluster = NULL;
		if (!d->cluster_warned) {
			log_warn("cannot join the cluster through %s: %s (retrying every second)",
				 d->set.mgmt_url, strerror(-rc));
			d->cluster_warned = true;
		}
		reactor_timer_start(d->r, &d->cluster_retry, HC_CLUSTER_RETRY_NS, hc_cluster_retry);
	}
}

static void hc_on_signal(struct rsignal *sig, int signo)
{
	struct hc_daemon *d = container_of(sig, struct hc_daemon, sig);

	if (signo == SIGHUP) {
		hc_attach_log_all(d);
		xport_stats_log();
		return;
	}
	if (d->stopping) {
		return;
	}
	log_info("received %s: closing every export", strsignal(signo));
	d->stopping = true;
	reactor_timer_cancel(d->r, &d->cluster_retry);
	if (d->mgmt) {
		hc_mgmt_stop(d->mgmt);
		d->mgmt = NULL;
	}
	hc_attach_close_all(d);
	if (!d->cluster_opening) {
		hc_daemon_maybe_exit(d);
	}
}

int main(int argc, char **argv)
{
	static struct hc_daemon d; /* outlives the reactor */
	int ret;

	ret = hc_parse(argc, argv, &d.set);
	if (ret) {
		return ret < 0 ? HC_EXIT_OK : ret;
	}
	ret = hc_resolve(&d);
	if (ret) {
		return ret;
	}
	klog_set_level((enum klog_level)(KLOG_ERROR + d.set.log_level));
	klog_set_ident("keel-client");
	/* A key that cannot be used is a setup error: say so now rather than
	 * on every connection attempt. */
	{
		struct kp_key key;
		char err[256];

		if (kp_key_load(d.set.key_file, &key, err, sizeof(err))) {
			fprintf(stderr, "keel-client: %s\n", err);
			return HC_EXIT_RUNTIME;
		}
		explicit_bzero(&key, sizeof(key));
	}
	{
		char err[512];

		/* $KEEL_TOKEN (if set) wins over the default file, not over a
		 * token_file given in the configuration. */
		if (rest_token_resolve(NULL, d.set.token_file, d.token, sizeof(d.token), err,
				       sizeof(err))) {
			fprintf(stderr, "keel-client: %s\n", err);
			return HC_EXIT_USAGE;
		}
	}
	/* 0755: QEMU's user must reach the sockets; each is 0660 and checked
	 * with SO_PEERCRED. */
	if (mkdir(d.set.run_dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "keel-client: cannot create run_dir %s: %s\n", d.set.run_dir,
			strerror(errno));
		return HC_EXIT_RUNTIME;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ret = reactor_create(1024, &d.r);
	if (ret) {
		fprintf(stderr, "keel-client: io_uring: %s\n", strerror(-ret));
		return HC_EXIT_RUNTIME;
	}
	ret = rsignal_start(&d.sig, d.r, hc_on_signal);
	if (ret) {
		fprintf(stderr, "keel-client: signals: %s\n", strerror(-ret));
		return HC_EXIT_RUNTIME;
	}
	log_info("host %s, mgmt %s, sockets in %s, %u queues per device", d.set.host,
		 d.set.mgmt_url, d.set.run_dir, d.set.num_queues);
	hc_cluster_connect(&d);
	ret = hc_mgmt_start(d.r, &d.set, d.token, hc_on_list, &d, &d.mgmt);
	if (ret) {
		fprintf(stderr, "keel-client: mgmt worker: %s\n", strerror(-ret));
		return HC_EXIT_RUNTIME;
	}
	ret = reactor_run(d.r);
	xport_stats_log();
	rsignal_stop(&d.sig);
	reactor_destroy(d.r);
	curl_global_cleanup();
	log_info("stopped");
	return ret ? HC_EXIT_RUNTIME : HC_EXIT_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keel-mgmt: the cluster's management service. See docs/operations.md. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/reactor.h"
#include "mgmt/mg_auth.h"
#include "mgmt/mg_cluster.h"
#include "mgmt/mg_http.h"
#include "mgmt/mg_settings.h"
#include "mgmt/mg_store.h"
#include "proto/auth.h"

enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* cannot open the database, listen, ... */
	EXIT_USAGE = 2,	  /* bad command line, configuration or key file */
};

#define MG_RING_ENTRIES 1024

static const char help_main[] =
	"NAME\n"
	"    keel-mgmt - Keel management service: cluster map, membership, volumes, REST API\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-mgmt run --db PATH --key FILE --token-file FILE\n"
	"                  [--listen-api HOST:PORT] [--listen-cluster HOST:PORT]\n"
	"                  [--config FILE] [--set SECTION.KEY=VALUE ...] [--log-level LEVEL]\n"
	"    keel-mgmt help [run]\n"
	"    keel-mgmt --help\n"
	"\n"
	"DESCRIPTION\n"
	"    keel-mgmt owns the cluster state in one SQLite database: servers, pools,\n"
	"    placement groups and their in-sync members, volumes and the map epoch.\n"
	"    Storage servers and clients connect to its cluster port (Keel wire\n"
	"    protocol, mutual HMAC authentication with the cluster key) to register,\n"
	"    heartbeat and receive the cluster map; operators use the REST API,\n"
	"    usually through keelctl. REST requests carry a token of the token\n"
	"    file (X-Auth-Token or Authorization: Bearer) unless mgmt.auth=noauth;\n"
	"    GET /metrics serves Prometheus metrics.\n"
	"\n"
	"    A server whose cluster connection closes is marked down at once; one\n"
	"    that stops heartbeating is marked down after heartbeat_timeout_ms; one\n"
	"    down for down_out_interval_s is marked out and its placement groups move\n"
	"    to other servers. Every change publishes a new map epoch to every server\n"
	"    and client.\n"
	"\n"
	"    run      serve until SIGTERM or SIGINT\n"
	"    help     show this page or the page of run\n"
	"\n"
	"FILES\n"
	"    The database (--db) is created on first start together with the pool\n"
	"    'default'. Key file: one line of hex, mode 0600 (keel-server keygen).\n"
	"    Token file: one token a line, mode 0600 (keel-server keygen makes one).\n"
	"\n"
	"EXIT STATUS\n"
	"    0 clean shutdown, 1 runtime error (database, listening), 2 usage or\n"
	"    configuration error.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-mgmt run --db /var/lib/keel/mgmt.db --key /etc/keel/cluster.key \\\n"
	"        --token-file /etc/keel/api.token\n"
	"    keel-mgmt run --config /etc/keel/mgmt.conf --set mgmt.heartbeat_timeout_ms=2000\n";

static const char help_run[] =
	"NAME\n"
	"    keel-mgmt run - serve the cluster port and the REST API\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-mgmt run --db PATH --key FILE --token-file FILE\n"
	"                  [--listen-api HOST:PORT] [--listen-cluster HOST:PORT]\n"
	"                  [--config FILE] [--set SECTION.KEY=VALUE ...] [--log-level LEVEL]\n"
	"\n"
	"DESCRIPTION\n"
	"    Opens (or creates) the database, listens on the cluster port and on\n"
	"    the REST port, and runs until SIGTERM or SIGINT: then it stops the REST\n"
	"    API (requests in progress complete), closes every cluster connection and\n"
	"    exits 0. Servers keep their last map while mgmt is away; on restart,\n"
	"    servers that were up get heartbeat_timeout_ms to reconnect.\n"
	"\n"
	"    Settings come from defaults, then --config FILE, then the command-line\n"
	"    options in order (later wins). Port 0 picks a free port; the bound\n"
	"    addresses are logged.\n"
	"\n"
	"OPTIONS\n"
	"    --db PATH                 same as --set mgmt.db=PATH\n"
	"    --key FILE                same as --set mgmt.key_file=FILE\n"
	"    --token-file FILE         same as --set mgmt.token_file=FILE\n"
	"    --listen-api HOST:PORT    same as --set mgmt.listen_api=HOST:PORT\n"
	"    --listen-cluster HOST:PORT same as --set mgmt.listen_cluster=HOST:PORT\n"
	"    --log-level LEVEL         same as --set mgmt.log_level=LEVEL\n"
	"    --config FILE             INI file with a [mgmt] section (keys below)\n"
	"    --set S.KEY=VALUE         set any configuration key\n"
	"\n"
	"    Configuration keys ([mgmt] section) and their defaults:\n"
	"%s"
	"\n"
	"FILES\n"
	"    PATH: SQLite database (WAL mode; PATH-wal and PATH-shm beside it).\n"
	"    The key file and the token file must be mode 0600 or stricter.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 clean shutdown; 1 cannot open the database or listen; 2 bad option,\n"
	"    configuration or key file.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-mgmt run --db mgmt.db --key cluster.key --token-file api.token \\\n"
	"        --listen-api 127.0.0.1:8776 --listen-cluster 127.0.0.1:7000\n";

static volatile sig_atomic_t mg_stop_signal;

static void mg_on_signal(int signo)
{
	mg_stop_signal = signo;
}

static void print_run_help(FILE *f)
{
	char *keys = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&keys, &len);

	if (m) {
		mg_settings_help(m);
		fclose(m);
	}
	fprintf(f, help_run, keys ? keys : "");
	free(keys);
}

static int cmd_help(const char *topic)
{
	if (!topic) {
		fputs(help_main, stdout);
	} else if (!strcmp(topic, "run")) {
		print_run_help(stdout);
	} else {
		fprintf(stderr, "keel-mgmt: no help for '%s' (try run)\n", topic);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "keel-mgmt run: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "Try 'keel-mgmt help run'.\n");
	return EXIT_USAGE;
}

/* Parse the command line into @s: 0, -1 (help printed) or an exit status. */
static int run_parse(int argc, char **argv, struct mg_settings *s)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"db", required_argument, NULL, 'd'},
		{"key", required_argument, NULL, 'k'},
		{"token-file", required_argument, NULL, 't'},
		{"listen-api", required_argument, NULL, 'a'},
		{"listen-cluster", required_argument, NULL, 'l'},
		{"log-level", required_argument, NULL, 'L'},
		{"set", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		int opt;
		const char *key;
	} direct[] = {
		{'d', "mgmt.db"},	  {'k', "mgmt.key_file"},
		{'a', "mgmt.listen_api"}, {'l', "mgmt.listen_cluster"},
		{'L', "mgmt.log_level"},  {'t', "mgmt.token_file"},
	};
	char err[256];
	const char *config = NULL;
	int c, ret;

	if (mg_settings_defaults(s, err, sizeof(err))) {
		fprintf(stderr, "keel-mgmt run: %s\n", err);
		return EXIT_USAGE;
	}
	/* The config file loads first wherever it is on the command line. */
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'c') {
			config = optarg;
		} else if (c == 'h') {
			print_run_help(stdout);
			return -1;
		} else if (c == '?') {
			return usage_error("bad option", NULL);
		}
	}
	if (optind < argc) {
		return usage_error("unexpected argument", argv[optind]);
	}
	if (config) {
		ret = mg_settings_load(s, config, err, sizeof(err));
		if (ret) {
			if (ret == -ENOENT || ret == -EACCES) {
				fprintf(stderr, "keel-mgmt run: cannot read config %s: %s\n",
					config, strerror(-ret));
			} else {
				fprintf(stderr, "keel-mgmt run: %s\n", err);
			}
			return EXIT_USAGE;
		}
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		const char *key = NULL, *value = optarg;
		char kbuf[128];

		if (c == 'S') {
			if (cfg_split_assignment(optarg, kbuf, sizeof(kbuf), &value)) {
				return usage_error("--set expects SECTION.KEY=VALUE", optarg);
			}
			key = kbuf;
		}
		for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++) {
			if (direct[i].opt == c) {
				key = direct[i].key;
			}
		}
		if (key && mg_settings_set(s, key, value, err, sizeof(err))) {
			fprintf(stderr, "keel-mgmt run: %s\n", err);
			return EXIT_USAGE;
		}
	}
	if (mg_settings_check(s, err, sizeof(err))) {
		return usage_error(err, NULL);
	}
	return 0;
}

/* ---- shutdown: HTTP first (its requests need the reactor), then the
 * cluster port, then the loop ---- */

struct run_ctx {
	struct mg_cluster c;
	struct mg_http *http;
	pthread_t http_stopper;
	bool stopper_started;
	bool http_stopped;
	struct reactor_msg http_stopped_msg;
};

static struct run_ctx ctx;

static void run_http_stopped(struct reactor_msg *m)
{
	ctx.http_stopped = true;
	ctx.http = NULL;
	log_info("REST API stopped; closing %u cluster connections", ctx.c.npeers);
	mg_cport_stop(&ctx.c);
	ctx.c.stop_deadline = reactor_now_ns() + MG_STOP_TIMEOUT_NS;
}

static void *run_http_stopper(void *arg)
{
	mg_http_stop(ctx.http);
	ctx.http_stopped_msg.fn = run_http_stopped;
	reactor_post(ctx.c.r, &ctx.http_stopped_msg);
	return NULL;
}

static void run_on_tick(struct mg_cluster *c)
{
	if (mg_stop_signal && !ctx.stopper_started) {
		log_info("received %s: shutting down", strsignal(mg_stop_signal));
		c->stopping = true;
		if (pthread_create(&ctx.http_stopper, NULL, run_http_stopper, NULL)) {
			log_error("cannot start the shutdown thread; exiting at once");
			reactor_stop(c->r);
			return;
		}
		ctx.stopper_started = true;
	}
	if (ctx.http_stopped && (!c->peers || reactor_now_ns() > c->stop_deadline)) {
		c->tick_stopped = true;
		reactor_stop(c->r);
	}
}

static int cmd_run(int argc, char **argv)
{
	struct mg_settings s;
	struct sigaction sa;
	char err[256];
	struct kp_key key;
	struct mg_auth auth;
	struct reactor *r;
	struct mg_store *st;
	int ret, status = EXIT_RUNTIME;

	ret = run_parse(argc, argv, &s);
	if (ret) {
		return ret < 0 ? EXIT_OK : ret;
	}
	klog_set_level((enum klog_level)(KLOG_ERROR + s.log_level));
	klog_set_ident("keel-mgmt");
	ret = kp_key_load(s.key_file, &key, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "keel-mgmt run: %s\n", err);
		return EXIT_USAGE;
	}
	ret = mg_auth_init(&auth, &s, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "keel-mgmt run: %s\n", err);
		status = EXIT_USAGE;
		goto out_wipe_key;
	}
	if (s.auth == MG_AUTH_NOAUTH) {
		log_warn("mgmt.auth = noauth: the REST API on %s accepts every request",
			 s.listen_api);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mg_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = reactor_create(MG_RING_ENTRIES, &r);
	if (ret) {
		log_error("cannot create io_uring: %s", strerror(-ret));
		goto out_wipe_key;
	}
	ret = mg_store_open(s.db, &st, err, sizeof(err));
	if (ret) {
		log_error("%s", err);
		goto out_destroy_reactor;
	}
	ret = mg_cluster_open(&ctx.c, r, st, &s, &key);
	if (ret) {
		log_error("cannot load the cluster state from %s: %s", s.db, strerror(-ret));
		goto out_close_store;
	}
	ctx.c.on_tick = run_on_tick;
	ret = mg_cport_start(&ctx.c, s.listen_cluster);
	if (ret) {
		goto out_close_cluster;
	}
	ret = mg_http_start(r, &ctx.c, &auth, s.listen_api, &ctx.http);
	if (ret) {
		goto out_stop_cport;
	}
	log_info("ready: epoch %llu, %u servers, %u pools, heartbeat timeout %u ms, "
		 "down -> out after %u s",
		 (unsigned long long)ctx.c.meta.epoch, ctx.c.nservers, ctx.c.npools,
		 s.heartbeat_timeout_ms, s.down_out_interval_s);
	ret = reactor_run(r);
	if (ret) {
		log_error("reactor failed: %s", strerror(-ret));
	} else {
		status = EXIT_OK;
	}
	if (ctx.stopper_started) {
		pthread_join(ctx.http_stopper, NULL);
	}
	mg_http_stop(ctx.http);
	ctx.http = NULL;
out_stop_cport:
	if (!ctx.c.stopping || !ctx.http_stopped) {
		mg_cport_stop(&ctx.c);
	}
	/* Let the closes complete so every connection is freed. */
	for (int i = 0; i < 100 && ctx.c.peers; i++) {
		reactor_poll(r, false);
	}
out_close_cluster:
	mg_cluster_close(&ctx.c);
out_close_store:
	mg_store_close(st);
out_destroy_reactor:
	reactor_destroy(r);
out_wipe_key:
	explicit_bzero(&key, sizeof(key));
	explicit_bzero(&auth, sizeof(auth));
	if (status == EXIT_OK) {
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
		return cmd_help(NULL);
	}
	if (!strcmp(cmd, "help")) {
		return cmd_help(argc > 2 ? argv[2] : NULL);
	}
	if (!strcmp(cmd, "run")) {
		return cmd_run(argc - 1, argv + 1);
	}
	fprintf(stderr, "keel-mgmt: unknown command '%s'\nTry 'keel-mgmt --help'.\n", cmd);
	return EXIT_USAGE;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keelctl: the operator's CLI over keel-mgmt's REST API (docs/api.md). */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/config.h"
#include "proto/rest.h"
#include "mgmt/kc.h"
#include "mgmt/kc_table.h"

static const char kc_help_main[] =
	"NAME\n"
	"    keelctl - manage a Keel cluster through keel-mgmt's REST API\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl [--mgmt URL] [--token TOKEN | --token-file FILE] [-f table|json|value]\n"
	"            COMMAND [ARGS...]\n"
	"    keelctl help [volume|snapshot|job|attachment|server|cluster|pool|template|pg]\n"
	"\n"
	"COMMANDS\n"
	"    volume create NAME --size SIZE [--pool POOL] [--object-size SIZE]\n"
	"                       [--iops N] [--bps RATE]\n"
	"    volume list\n"
	"    volume show NAME\n"
	"    volume delete NAME\n"
	"    volume qos NAME [--iops N|unlimited|pool] [--bps RATE|unlimited|pool]\n"
	"    volume attach NAME [--host HOST] [--ro] [--nbd] [--nbd-tcp ADDR:PORT]\n"
	"                       [--no-wait] [--timeout SEC]\n"
	"    volume detach NAME [--host HOST]\n"
	"    volume clone VOLUME@SNAP NEWNAME | copy VOLUME NEWNAME [--size SIZE]\n"
	"    volume revert VOLUME SNAP | flatten VOLUME | rename VOLUME NEWNAME\n"
	"    volume resize VOLUME SIZE [--allow-shrink]\n"
	"    volume import FILE VOLUME | export VOLUME[@SNAP] FILE\n"
	"    snapshot create VOLUME@SNAP | list [VOLUME] | show | delete VOLUME@SNAP\n"
	"             [--wait]\n"
	"    job list | show ID | wait ID\n"
	"    attachment list [--host HOST]\n"
	"    server list\n"
	"    cluster status\n"
	"    pool list\n"
	"    pool create NAME [--replicas N] [--min-replicas N] [--failure-domain D]\n"
	"                     [--pg-count N] [--tag TAG] [--iops N] [--bps RATE]\n"
	"                     [--max-overcommit PERCENT]\n"
	"    pool qos NAME [--iops N|unlimited] [--bps RATE|unlimited]\n"
	"    pool overcommit NAME PERCENT|none\n"
	"    pg list\n"
	"\n"
	"OPTIONS\n"
	"    --mgmt URL      keel-mgmt REST URL; default $KEEL_MGMT_URL, else\n"
	"                    " KC_DEFAULT_URL "\n"
	"    --token TOKEN   API token (sent as X-Auth-Token); default $KEEL_TOKEN\n"
	"    --token-file FILE\n"
	"                    read the token from FILE (mode 0600, first token line);\n"
	"                    default $KEEL_TOKEN_FILE, else " REST_TOKEN_FILE_DEFAULT "\n"
	"                    when it exists. No token at all: for a keel-mgmt with\n"
	"                    mgmt.auth = noauth.\n"
	"    -f, --format F  table (default: aligned columns with a header), json\n"
	"                    (the API's JSON as is, one document) or value (the\n"
	"                    table's cells without header, space-separated, for\n"
	"                    scripts)\n"
	"    -h, --help      this page\n"
	"\n"
	"    SIZE takes the suffixes K, M, G, T (powers of 1024), e.g. 10G.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success; 1 the request failed (one line on stderr says why; a\n"
	"    missing or wrong token is \"keel-mgmt ... refused the API token\");\n"
	"    2 usage error, or a token file that cannot be used.\n"
	"\n"
	"ENVIRONMENT\n"
	"    KEEL_MGMT_URL   default for --mgmt\n"
	"    KEEL_TOKEN      default for --token\n"
	"    KEEL_TOKEN_FILE default for --token-file\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl volume create db1 --size 100G\n"
	"    keelctl -f json volume show db1\n"
	"    keelctl --mgmt http://mgmt1:8776 cluster status\n";

static const char kc_help_volume[] =
	"NAME\n"
	"    keelctl volume - create, list, show, delete, attach and detach volumes,\n"
	"    set their QoS limits\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl volume create NAME --size SIZE [--pool POOL] [--object-size SIZE]\n"
	"                               [--iops N] [--bps RATE]\n"
	"    keelctl volume list\n"
	"    keelctl volume show NAME\n"
	"    keelctl volume delete NAME\n"
	"    keelctl volume qos NAME [--iops N|unlimited|pool] [--bps RATE|unlimited|pool]\n"
	"    keelctl volume attach NAME [--host HOST] [--ro] [--nbd] [--nbd-tcp A:P]\n"
	"                               [--no-wait] [--timeout SEC]\n"
	"    keelctl volume detach NAME [--host HOST]\n"
	"    keelctl volume clone|copy|revert|flatten|resize|rename|import|export ...\n"
	"\n"
	"    attach and detach are described in 'keelctl help attachment', the\n"
	"    others in 'keelctl help snapshot'.\n"
	"\n"
	"DESCRIPTION\n"
	"    A volume is a thin-provisioned block device of SIZE bytes, split into\n"
	"    objects of --object-size bytes placed in POOL's placement groups.\n"
	"    Names are 1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter\n"
	"    or digit. Deleting a volume removes it at once; the servers free its\n"
	"    data in the background. An attached volume, or one with snapshots,\n"
	"    cannot be deleted: detach it from every host (delete its snapshots)\n"
	"    first; clones made from its snapshots are independent volumes.\n"
	"\n"
	"    QoS: every host's keel-client limits the volume to IOPS_LIMIT\n"
	"    requests and BW_LIMIT bytes a second, summed over all its vhost-user\n"
	"    queues and NBD connections on that host. A volume without limits of\n"
	"    its own has its pool's (shown as \"(pool)\"); \"-\" is unlimited. A\n"
	"    read or write counts as one request and its bytes, a discard or\n"
	"    write-zeroes as one request, a flush not at all. Requests over the\n"
	"    limit wait (in order), they never fail; up to 100 ms worth may go at\n"
	"    once after an idle spell. 'volume qos' changes the limits of an\n"
	"    attached volume within a poll interval (1 s) and shows them when\n"
	"    given no option; 'pool' there goes back to the pool's limit.\n"
	"\n"
	"OPTIONS\n"
	"    --size SIZE         required; a multiple of 4K, at most 1P\n"
	"    --pool POOL         default: default (--template POOL: the same; a pool\n"
	"                        is Keel's volume template)\n"
	"    --object-size SIZE  a power of two, 64K..64M; default 4M\n"
	"    --iops N            requests a second, 1..10000000; 'unlimited' (0)\n"
	"                        or, for qos, 'pool'; default: the pool's\n"
	"    --bps RATE          bytes a second, 4K..1T, with the suffixes of SIZE\n"
	"                        (100M = 100 MiB/s); 'unlimited' or 'pool' as above\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 refused (exists, not found, invalid) or mgmt unreachable;\n"
	"    2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl volume create vm-disk-1 --size 20G --object-size 1M\n"
	"    keelctl volume create db1 --size 100G --iops 5000 --bps 200M\n"
	"    keelctl volume qos db1 --iops unlimited --bps pool\n"
	"    keelctl volume delete vm-disk-1\n";

static const char kc_help_server[] =
	"NAME\n"
	"    keelctl server list - storage servers known to mgmt\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl server list\n"
	"\n"
	"DESCRIPTION\n"
	"    One row per server: id, address, host, rack, weight, up/down (heart-\n"
	"    beating), in/out (part of placement), used and total capacity, time\n"
	"    since its last heartbeat.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 mgmt unreachable.\n";

static const char kc_help_cluster[] =
	"NAME\n"
	"    keelctl cluster status - health of the cluster\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl cluster status\n"
	"\n"
	"DESCRIPTION\n"
	"    Health (HEALTH_OK, HEALTH_WARN: something degraded, recovering or a\n"
	"    server down; HEALTH_ERR: some placement group has no up in-sync copy),\n"
	"    map epoch, servers up and in, PG counts per state, recovery progress,\n"
	"    space (the servers' raw object space and how much is used; the\n"
	"    volumes' provisioned size and the data they and their snapshots\n"
	"    hold, counted once, not per replica), and one sentence per problem.\n"
	"    A server past mgmt's nearfull_percent makes the cluster HEALTH_WARN;\n"
	"    one past full_percent makes the pools with PGs on it full\n"
	"    (HEALTH_ERR): writes that need new space wait or fail (full_policy)\n"
	"    until space is freed.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done (whatever the health); 1 mgmt unreachable.\n";

static const char kc_help_pool[] =
	"NAME\n"
	"    keelctl pool (or template) - list and create pools, set their QoS\n"
	"    and overcommit limits\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl pool list\n"
	"    keelctl pool create NAME [--replicas N] [--min-replicas N]\n"
	"                        [--failure-domain server|host|rack] [--pg-count N]\n"
	"                        [--tag TAG] [--iops N] [--bps RATE]\n"
	"                        [--max-overcommit PERCENT]\n"
	"    keelctl pool qos NAME [--iops N|unlimited] [--bps RATE|unlimited]\n"
	"    keelctl pool overcommit NAME PERCENT|none\n"
	"\n"
	"DESCRIPTION\n"
	"    A pool is a placement template: copies per object (replicas, 1..5),\n"
	"    the fewest in-sync copies that still accept writes (min-replicas),\n"
	"    the failure domain no two copies share, the number of placement\n"
	"    groups (1..4096) and an optional server tag.\n"
	"    Defaults: 3 replicas, min 2, host, 128 PGs, no tag.\n"
	"\n"
	"    --iops and --bps are the QoS limits of the pool's volumes that have\n"
	"    none of their own (requests and bytes a second per volume and host,\n"
	"    see 'keelctl help volume'); default unlimited. 'pool qos' changes\n"
	"    them; attached volumes follow within a poll interval (1 s).\n"
	"\n"
	"    pool list also shows each pool's space: PROVISIONED (the sum of its\n"
	"    volumes' sizes), ALLOCATED (the data its volumes and snapshots hold,\n"
	"    counted once), USABLE (the object space of the servers holding its\n"
	"    PGs, divided by replicas) and STATE (full while one of those servers\n"
	"    is past mgmt's full_percent).\n"
	"\n"
	"    --max-overcommit (and 'pool overcommit') caps thin provisioning: the\n"
	"    sizes of the pool's volumes may add up to at most PERCENT of USABLE\n"
	"    (10..100000; 300 allows three times the space there is). Creating,\n"
	"    cloning or growing a volume past it is refused (exit 1); volumes that\n"
	"    already exist stay. Default: none (thin volumes are not capped).\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 refused or mgmt unreachable; 2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl pool create fast --replicas 2 --min-replicas 1 --pg-count 64 --tag nvme\n"
	"    keelctl pool qos fast --iops 20000 --bps 1G\n"
	"    keelctl pool overcommit fast 300\n";

static const char kc_help_pg[] =
	"NAME\n"
	"    keelctl pg list - placement groups\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl pg list\n"
	"\n"
	"DESCRIPTION\n"
	"    One row per PG: pool.pg, state (active, degraded, recovering, peering,\n"
	"    inactive), members in placement order, the in-sync ones, the primary,\n"
	"    the interval epoch, and recovery left.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 mgmt unreachable.\n";

int kc_usage(const char *fmt, const char *arg)
{
	fputs("keelctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'keelctl --help'.\n", stderr);
	return KC_EXIT_USAGE;
}

int kc_fail(const char *msg)
{
	fprintf(stderr, "keelctl: %s\n", msg);
	return KC_EXIT_ERR;
}

/* Run a request; on success *out is the reply (caller frees). Prints the
 * error and returns KC_EXIT_ERR otherwise. */
int kc_call(const struct kc_ctx *k, const char *method, const char *path, json_t *body,
	    struct rest_resp *out)
{
	char err[512], buf[64];
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int ret;

	ret = rest_call(k->url, k->token, method, path, text, out, err, sizeof(err));
	free(text);
	if (ret) {
		return kc_fail(err);
	}
	if (out->status == 401) {
		snprintf(err, sizeof(err),
			 "keel-mgmt at %s refused the API token: %s (give --token, --token-file, "
			 "$KEEL_TOKEN or $KEEL_TOKEN_FILE; default file %s)",
			 k->url, k->token[0] ? "wrong token" : "no token given",
			 REST_TOKEN_FILE_DEFAULT);
		rest_resp_free(out);
		return kc_fail(err);
	}
	if (out->status >= 300) {
		kc_fail(rest_resp_error(out, buf, sizeof(buf)));
		rest_resp_free(out);
		return KC_EXIT_ERR;
	}
	return KC_EXIT_OK;
}

void kc_print_json(const struct rest_resp *r)
{
	if (r->json) {
		json_dumpf(r->json, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	}
}

const char *kc_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u == 0) {
		snprintf(buf, len, "%" PRIu64 " B", v);
	} else {
		snprintf(buf, len, "%.4g %s", d, units[u]);
	}
	return buf;
}

uint64_t kc_u64(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

const char *kc_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static const char *kc_id_list(json_t *a, char *buf, size_t len)
{
	size_t off = 0;
	size_t i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(a, i, v)
	{
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0,
					"%s%" JSON_INTEGER_FORMAT, i ? "," : "",
					json_integer_value(v));
	}
	return off ? buf : "-";
}

/* ---- volume ---- */

/* A QoS limit for a table: "-" (unlimited), "400", "8 MiB/s"; with
 * "(pool)" when the volume has none of its own (@own null). */
static const char *kc_qos_cell(json_t *own, uint64_t effective, bool bytes, char *buf, size_t len)
{
	char b[32];
	bool pool = own && json_is_null(own);

	if (!effective) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (bytes) {
		snprintf(buf, len, "%s/s%s", kc_bytes(effective, b, sizeof(b)),
			 pool ? " (pool)" : "");
	} else {
		snprintf(buf, len, "%" PRIu64 "%s", effective, pool ? " (pool)" : "");
	}
	return buf;
}

static int kc_volume_table(json_t *list)
{
	static const char *const hdr[] = {"ID",	     "NAME",	    "SIZE",
					  "POOL",    "OBJECT_SIZE", "INODE",
					  "CREATED", "IOPS_LIMIT",  "BW_LIMIT"};
	struct kc_table *t = kc_table_new(9, hdr);
	size_t i;
	json_t *v;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, v)
	{
		char id[24], size[32], os[32], inode[24], iops[48], bw[48];
		const char *row[9] = {id,
				      kc_str(v, "name"),
				      size,
				      kc_str(v, "pool"),
				      os,
				      inode,
				      kc_str(v, "created_at"),
				      iops,
				      bw};

		snprintf(id, sizeof(id), "%" PRIu64, kc_u64(v, "id"));
		kc_qos_cell(json_object_get(v, "qos_iops"), kc_u64(v, "effective_qos_iops"), false,
			    iops, sizeof(iops));
		kc_qos_cell(json_object_get(v, "qos_bps"), kc_u64(v, "effective_qos_bps"), true, bw,
			    sizeof(bw));
		kc_bytes(kc_u64(v, "size"), size, sizeof(size));
		kc_bytes(kc_u64(v, "object_size"), os, sizeof(os));
		snprintf(inode, sizeof(inode), "%#" PRIx64, kc_u64(v, "inode"));
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

static int kc_parse_size(const char *opt, const char *s, uint64_t *out)
{
	if (cfg_parse_size(s, out)) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s expects a size such as 10G, not '%%s'", opt);
		return kc_usage(msg, s);
	}
	return 0;
}

/* A QoS option's value: a number (--bps takes K, M, G, T), "unlimited"
 * (0) or, with @allow_pool, "pool" (null: the pool's). */
static int kc_parse_qos(const char *opt, const char *s, bool allow_pool, json_t **out)
{
	bool bytes = !strcmp(opt, "--bps");
	uint64_t v;

	if (!strcmp(s, "unlimited")) {
		*out = json_integer(0);
		return 0;
	}
	if (allow_pool && !strcmp(s, "pool")) {
		*out = json_null();
		return 0;
	}
	if (s[0] == '-' || (bytes ? cfg_parse_size(s, &v) : cfg_parse_u64(s, &v)) ||
	    v > (uint64_t)INT64_MAX) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%s expects %s, 'unlimited'%s, not '%%s'", opt,
			 bytes ? "bytes a second such as 100M" : "requests a second such as 500",
			 allow_pool ? " or 'pool'" : "");
		return kc_usage(msg, s);
	}
	*out = json_integer((json_int_t)v);
	return 0;
}

static int kc_volume_create(const struct kc_ctx *k, int argc, char **argv)
{
	const char *name = NULL, *pool = NULL;
	uint64_t size = 0, osize = 0;
	bool have_size = false;
	json_t *iops = NULL, *bps = NULL;
	struct rest_resp r;
	json_t *body;
	int ret;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if ((!strcmp(a, "--size") || !strcmp(a, "--pool") || !strcmp(a, "--template") ||
		     !strcmp(a, "--object-size") || !strcmp(a, "--iops") || !strcmp(a, "--bps")) &&
		    i + 1 >= argc) {
			ret = kc_usage("%s needs a value", a);
			goto out_usage;
		}
		if (!strcmp(a, "--iops") || !strcmp(a, "--bps")) {
			json_t **slot = a[2] == 'i' ? &iops : &bps;

			json_decref(*slot);
			*slot = NULL;
			if (kc_parse_qos(a, argv[++i], false, slot)) {
				ret = KC_EXIT_USAGE;
				goto out_usage;
			}
			continue;
		}
		if (!strcmp(a, "--size")) {
			if (kc_parse_size("--size", argv[++i], &size)) {
				ret = KC_EXIT_USAGE;
				goto out_usage;
			}
			have_size = true;
		} else if (!strcmp(a, "--pool") || !strcmp(a, "--template")) {
			pool = argv[++i];
		} else if (!strcmp(a, "--object-size")) {
			if (kc_parse_size("--object-size", argv[++i], &osize)) {
				ret = KC_EXIT_USAGE;
				goto out_usage;
			}
		} else if (a[0] == '-' && a[1]) {
			ret = kc_usage("volume create: unknown option %s", a);
			goto out_usage;
		} else if (!name) {
			name = a;
		} else {
			ret = kc_usage("volume create: unexpected argument '%s'", a);
			goto out_usage;
		}
	}
	if (!name) {
		ret = kc_usage("%s", "volume create: NAME is required");
		goto out_usage;
	}
	if (!have_size) {
		ret = kc_usage("%s", "volume create: --size is required");
		goto out_usage;
	}
	body = json_pack("{s:s,s:I}", "name", name, "size", (json_int_t)size);
	if (pool) {
		json_object_set_new(body, "pool", json_string(pool));
	}
	if (iops) {
		json_object_set_new(body, "qos_iops", iops);
	}
	if (bps) {
		json_object_set_new(body, "qos_bps", bps);
	}
	if (osize) {
		json_object_set_new(body, "object_size", json_integer((json_int_t)osize));
	}
	ret = kc_call(k, "POST", "/v1/volumes", body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	return kc_print_one(k, &r, kc_volume_table);

out_usage:
	json_decref(iops);
	json_decref(bps);
	return ret;
}

/*
 * The arguments of `volume qos` and `pool qos` (@noun): NAME into *@name,
 * --iops / --bps into @body ("iops", "bps"); @allow_pool takes "pool" as
 * a value. KC_EXIT_OK, or a usage error (printed).
 */
static int kc_qos_args(const char *noun, int argc, char **argv, bool allow_pool,
		       const char **name, json_t *body)
{
	char msg[96];

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		json_t *v;

		if (!strcmp(a, "--iops") || !strcmp(a, "--bps")) {
			if (i + 1 >= argc) {
				return kc_usage("%s needs a value", a);
			}
			if (kc_parse_qos(a, argv[++i], allow_pool, &v)) {
				return KC_EXIT_USAGE;
			}
			json_object_set_new(body, a + 2, v);
		} else if (a[0] == '-' && a[1]) {
			snprintf(msg, sizeof(msg), "%s qos: unknown option %%s", noun);
			return kc_usage(msg, a);
		} else if (!*name) {
			*name = a;
		} else {
			snprintf(msg, sizeof(msg), "%s qos: unexpected argument '%%s'", noun);
			return kc_usage(msg, a);
		}
	}
	return KC_EXIT_OK;
}

/* volume qos NAME [--iops N|unlimited|pool] [--bps N|unlimited|pool] */
static int kc_volume_qos(const struct kc_ctx *k, int argc, char **argv)
{
	json_t *body = json_object();
	const char *name = NULL;
	struct rest_resp r;
	char path[512];
	int ret;

	ret = kc_qos_args("volume", argc, argv, true, &name, body);
	if (ret) {
		json_decref(body);
		return ret;
	}
	if (!name) {
		json_decref(body);
		return kc_usage("%s", "volume qos: NAME is required");
	}
	if (kc_name_path("/v1/volumes/", name, path, sizeof(path))) {
		json_decref(body);
		return KC_EXIT_ERR;
	}
	/* No option: show the limits (the volume's row). */
	if (!json_object_size(body)) {
		ret = kc_call(k, "GET", path, NULL, &r);
	} else {
		strncat(path, "/qos", sizeof(path) - strlen(path) - 1);
		ret = kc_call(k, "POST", path, body, &r);
	}
	json_decref(body);
	if (ret) {
		return ret;
	}
	return kc_print_one(k, &r, kc_volume_table);
}

/* Path for a named resource; names are validated by mgmt, but a '/' or
 * '%' must not change the URL. */
int kc_name_path(const char *prefix, const char *name, char *buf, size_t len)
{
	char *esc = curl_easy_escape(NULL, name, 0);

	if (!esc) {
		return kc_fail("out of memory");
	}
	snprintf(buf, len, "%s%s", prefix, esc);
	curl_free(esc);
	return 0;
}

static int kc_volume(const struct kc_ctx *k, int argc, char **argv)
{
	struct rest_resp r;
	char path[512];
	int ret;

	if (argc < 1) {
		return kc_usage(
			"%s",
			"volume: expected create, list, show, delete, qos, attach, detach, clone, "
			"copy, revert, flatten, resize, rename, import or export");
	}
	if (!strcmp(argv[0], "attach")) {
		return kc_volume_attach(k, argc - 1, argv + 1);
	}
	if (!strcmp(argv[0], "detach")) {
		return kc_volume_detach(k, argc - 1, argv + 1);
	}
	if (!strcmp(argv[0], "create")) {
		return kc_volume_create(k, argc - 1, argv + 1);
	}
	if (!strcmp(argv[0], "qos")) {
		return kc_volume_qos(k, argc - 1, argv + 1);
	}
	ret = kc_volume_ops(k, argc, argv, kc_volume_table);
	if (ret >= 0) {
		return ret;
	}
	if (!strcmp(argv[0], "list")) {
		if (argc != 1) {
			return kc_usage("volume list: unexpected argument '%s'", argv[1]);
		}
		ret = kc_call(k, "GET", "/v1/volumes", NULL, &r);
		if (!ret) {
			k->json ? kc_print_json(&r) : (void)kc_volume_table(r.json);
			rest_resp_free(&r);
		}
		return ret;
	}
	if (!strcmp(argv[0], "show") || !strcmp(argv[0], "delete")) {
		bool del = argv[0][0] == 'd';

		if (argc != 2) {
			return kc_usage("volume %s: expects exactly one NAME", argv[0]);
		}
		if (kc_name_path("/v1/volumes/", argv[1], path, sizeof(path))) {
			return KC_EXIT_ERR;
		}
		ret = kc_call(k, del ? "DELETE" : "GET", path, NULL, &r);
		if (ret) {
			return ret;
		}
		if (del) {
			if (!k->json) {
				printf("volume '%s' deleted\n", argv[1]);
			}
		} else if (k->json) {
			kc_print_json(&r);
		} else {
			json_t *one = json_array();

			json_array_append(one, r.json);
			kc_volume_table(one);
			json_decref(one);
		}
		rest_resp_free(&r);
		return KC_EXIT_OK;
	}
	return kc_usage("volume: unknown subcommand '%s'", argv[0]);
}

/* ---- server, pool, pg, cluster ---- */

static int kc_server_table(json_t *list)
{
	static const char *const hdr[] = {"ID",	    "ADDR", "HOST",	"RACK",	    "WEIGHT",
					  "STATUS", "USED", "CAPACITY", "HEARTBEAT"};
	struct kc_table *t = kc_table_new(9, hdr);
	size_t i;
	json_t *v;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, v)
	{
		char id[16], w[16], st[16], used[32], cap[32], hb[32];
		const char *row[9] = {id,
				      kc_str(v, "addr"),
				      kc_str(v, "host"),
				      kc_str(v, "rack"),
				      w,
				      st,
				      used,
				      cap,
				      hb};
		json_t *lh = json_object_get(v, "last_heartbeat_ms");

		snprintf(id, sizeof(id), "%" PRIu64, kc_u64(v, "id"));
		snprintf(w, sizeof(w), "%" PRIu64, kc_u64(v, "weight"));
		snprintf(st, sizeof(st), "%s,%s",
			 json_is_true(json_object_get(v, "up")) ? "up" : "down",
			 json_is_true(json_object_get(v, "in")) ? "in" : "out");
		kc_bytes(kc_u64(v, "used_bytes"), used, sizeof(used));
		kc_bytes(kc_u64(v, "capacity_bytes"), cap, sizeof(cap));
		if (json_is_integer(lh)) {
			snprintf(hb, sizeof(hb), "%" JSON_INTEGER_FORMAT " ms ago",
				 json_integer_value(lh));
		} else {
			snprintf(hb, sizeof(hb), "never");
		}
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

static int kc_pool_table(json_t *list)
{
	static const char *const hdr[] = {"ID",		 "NAME",      "REPLICAS",
					  "MIN_REPLICAS", "FAILURE_DOMAIN", "PGS",
					  "TAG",	 "IOPS_LIMIT", "BW_LIMIT",
					  "PROVISIONED", "ALLOCATED", "USABLE",
					  "OVERCOMMIT",	 "STATE"};
	struct kc_table *t = kc_table_new(14, hdr);
	size_t i;
	json_t *v;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, v)
	{
		char id[16], rep[16], min[16], pgs[16], iops[48], bw[48], prov[32], alloc[32],
			usable[32], over[32];
		uint64_t maxo = kc_u64(v, "max_overcommit_percent");
		const char *tag = kc_str(v, "tag");
		json_t *sp = json_object_get(v, "space");
		const char *row[14] = {id,
				       kc_str(v, "name"),
				       rep,
				       min,
				       kc_str(v, "failure_domain"),
				       pgs,
				       tag[0] ? tag : "-",
				       iops,
				       bw,
				       prov,
				       alloc,
				       usable,
				       over,
				       json_is_true(json_object_get(v, "full")) ? "full" : "ok"};

		kc_qos_cell(NULL, kc_u64(v, "qos_iops"), false, iops, sizeof(iops));
		kc_qos_cell(NULL, kc_u64(v, "qos_bps"), true, bw, sizeof(bw));
		kc_bytes(kc_u64(sp, "provisioned_bytes"), prov, sizeof(prov));
		kc_bytes(kc_u64(sp, "allocated_bytes"), alloc, sizeof(alloc));
		kc_bytes(kc_u64(sp, "usable_bytes"), usable, sizeof(usable));
		/* provisioned / usable, and the limit when there is one */
		if (kc_u64(sp, "usable_bytes")) {
			snprintf(over, sizeof(over), "%.0f%%",
				 100.0 * (double)kc_u64(sp, "provisioned_bytes") /
					 (double)kc_u64(sp, "usable_bytes"));
		} else {
			snprintf(over, sizeof(over), "-");
		}
		if (maxo) {
			size_t n = strlen(over);

			snprintf(over + n, sizeof(over) - n, " (max %" PRIu64 "%%)", maxo);
		}

		snprintf(id, sizeof(id), "%" PRIu64, kc_u64(v, "id"));
		snprintf(rep, sizeof(rep), "%" PRIu64, kc_u64(v, "replicas"));
		snprintf(min, sizeof(min), "%" PRIu64, kc_u64(v, "min_replicas"));
		snprintf(pgs, sizeof(pgs), "%" PRIu64, kc_u64(v, "pg_count"));
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

static int kc_pg_table(json_t *list)
{
	static const char *const hdr[] = {"PG",	     "STATE",	 "MEMBERS",	 "IN_SYNC",
					  "PRIMARY", "INTERVAL", "OBJECTS_LEFT", "BYTES_LEFT"};
	struct kc_table *t = kc_table_new(8, hdr);
	size_t i;
	json_t *v;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, v)
	{
		char pg[24], mem[64], ins[64], prim[16], iv[24], ol[24], bl[32];
		const char *row[8] = {pg, kc_str(v, "state"), mem, ins, prim, iv, ol, bl};

		snprintf(pg, sizeof(pg), "%" PRIu64 ".%" PRIu64, kc_u64(v, "pool"),
			 kc_u64(v, "pg"));
		kc_id_list(json_object_get(v, "members"), mem, sizeof(mem));
		kc_id_list(json_object_get(v, "in_sync"), ins, sizeof(ins));
		if (kc_u64(v, "primary")) {
			snprintf(prim, sizeof(prim), "%" PRIu64, kc_u64(v, "primary"));
		} else {
			snprintf(prim, sizeof(prim), "-");
		}
		snprintf(iv, sizeof(iv), "%" PRIu64, kc_u64(v, "interval"));
		snprintf(ol, sizeof(ol), "%" PRIu64, kc_u64(v, "objects_left"));
		kc_bytes(kc_u64(v, "bytes_left"), bl, sizeof(bl));
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

static int kc_list(const struct kc_ctx *k, const char *what, int argc, char **argv,
		   const char *path, int (*table)(json_t *list))
{
	struct rest_resp r;
	int ret;

	if (argc != 1 || strcmp(argv[0], "list")) {
		return kc_usage("expected '%s list'", what);
	}
	ret = kc_call(k, "GET", path, NULL, &r);
	if (ret) {
		return ret;
	}
	ret = k->json ? (kc_print_json(&r), KC_EXIT_OK) : table(r.json);
	rest_resp_free(&r);
	return ret;
}

static int kc_pool_create(const struct kc_ctx *k, int argc, char **argv)
{
	static const char *const num_opts[] = {"--replicas", "--min-replicas", "--pg-count",
					       "--max-overcommit"};
	static const char *const num_keys[] = {"replicas", "min_replicas", "pg_count",
					       "max_overcommit_percent"};
	json_t *body = json_object();
	const char *name = NULL;
	struct rest_resp r;
	int ret;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool known = false;

		if (a[0] == '-' && a[1] && i + 1 >= argc) {
			json_decref(body);
			return kc_usage("%s needs a value", a);
		}
		for (int n = 0; n < 4; n++) {
			if (!strcmp(a, num_opts[n])) {
				uint64_t v;
				char *end;

				errno = 0;
				v = strtoull(argv[++i], &end, 10);
				if (errno || *end || end == argv[i] || argv[i][0] == '-') {
					json_decref(body);
					return kc_usage("%s expects a number", a);
				}
				json_object_set_new(body, num_keys[n], json_integer((json_int_t)v));
				known = true;
			}
		}
		if (known) {
			continue;
		}
		if (!strcmp(a, "--iops") || !strcmp(a, "--bps")) {
			json_t *q;

			if (kc_parse_qos(a, argv[++i], false, &q)) {
				json_decref(body);
				return KC_EXIT_USAGE;
			}
			json_object_set_new(body, a[2] == 'i' ? "qos_iops" : "qos_bps", q);
		} else if (!strcmp(a, "--failure-domain")) {
			json_object_set_new(body, "failure_domain", json_string(argv[++i]));
		} else if (!strcmp(a, "--tag")) {
			json_object_set_new(body, "tag", json_string(argv[++i]));
		} else if (a[0] == '-' && a[1]) {
			json_decref(body);
			return kc_usage("pool create: unknown option %s", a);
		} else if (!name) {
			name = a;
		} else {
			json_decref(body);
			return kc_usage("pool create: unexpected argument '%s'", a);
		}
	}
	if (!name) {
		json_decref(body);
		return kc_usage("%s", "pool create: NAME is required");
	}
	json_object_set_new(body, "name", json_string(name));
	ret = kc_call(k, "POST", "/v1/pools", body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	return kc_print_one(k, &r, kc_pool_table);
}

/* pool qos NAME [--iops N|unlimited] [--bps N|unlimited] */
static int kc_pool_qos(const struct kc_ctx *k, int argc, char **argv)
{
	json_t *body = json_object();
	const char *name = NULL;
	struct rest_resp r;
	char path[512];
	int ret;

	ret = kc_qos_args("pool", argc, argv, false, &name, body);
	if (ret) {
		json_decref(body);
		return ret;
	}
	if (!name || !json_object_size(body)) {
		json_decref(body);
		return kc_usage("%s", "pool qos: expects NAME and --iops and/or --bps");
	}
	if (kc_name_path("/v1/pools/", name, path, sizeof(path))) {
		json_decref(body);
		return KC_EXIT_ERR;
	}
	strncat(path, "/qos", sizeof(path) - strlen(path) - 1);
	ret = kc_call(k, "POST", path, body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	return kc_print_one(k, &r, kc_pool_table);
}

/* pool overcommit NAME PERCENT|none */
static int kc_pool_overcommit(const struct kc_ctx *k, int argc, char **argv)
{
	char path[160], *end;
	struct rest_resp r;
	uint64_t pct = 0;
	json_t *body;
	int ret;

	if (argc != 2) {
		return kc_usage("%s", "pool overcommit: expects NAME and PERCENT (or none)");
	}
	if (strcmp(argv[1], "none")) {
		errno = 0;
		pct = strtoull(argv[1], &end, 10);
		if (errno || end == argv[1] || (*end && strcmp(end, "%")) || argv[1][0] == '-') {
			return kc_usage("pool overcommit: PERCENT must be a number or none, not '%s'",
					argv[1]);
		}
	}
	if (kc_name_path("/v1/pools/", argv[0], path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	strncat(path, "/overcommit", sizeof(path) - strlen(path) - 1);
	body = json_pack("{s:I}", "max_percent", (json_int_t)pct);
	ret = kc_call(k, "POST", path, body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	return kc_print_one(k, &r, kc_pool_table);
}

static int kc_cluster_status(const struct kc_ctx *k, int argc, char **argv)
{
	json_t *s, *sv, *pg, *rec, *sp, *v;
	uint64_t raw, used;
	char a[32], b[32];
	struct rest_resp r;
	size_t i;
	int ret;

	if (argc != 1 || strcmp(argv[0], "status")) {
		return kc_usage("%s", "expected 'cluster status'");
	}
	ret = kc_call(k, "GET", "/v1/cluster/status", NULL, &r);
	if (ret) {
		return ret;
	}
	if (k->json) {
		kc_print_json(&r);
		rest_resp_free(&r);
		return KC_EXIT_OK;
	}
	s = r.json;
	sv = json_object_get(s, "servers");
	pg = json_object_get(s, "pgs");
	rec = json_object_get(s, "recovery");
	printf("health:   %s\n", kc_str(s, "health"));
	printf("epoch:    %" PRIu64 "\n", kc_u64(s, "epoch"));
	printf("servers:  %" PRIu64 " total, %" PRIu64 " up, %" PRIu64 " in\n", kc_u64(sv, "total"),
	       kc_u64(sv, "up"), kc_u64(sv, "in"));
	printf("pgs:      %" PRIu64 " total: %" PRIu64 " active, %" PRIu64 " degraded, %" PRIu64
	       " recovering, %" PRIu64 " peering, %" PRIu64 " inactive\n",
	       kc_u64(pg, "total"), kc_u64(pg, "active"), kc_u64(pg, "degraded"),
	       kc_u64(pg, "recovering"), kc_u64(pg, "peering"), kc_u64(pg, "inactive"));
	printf("recovery: %" PRIu64 " objects, %s left; %s copied\n", kc_u64(rec, "objects_left"),
	       kc_bytes(kc_u64(rec, "bytes_left"), a, sizeof(a)),
	       kc_bytes(kc_u64(rec, "bytes_copied"), b, sizeof(b)));
	sp = json_object_get(s, "space");
	raw = kc_u64(sp, "raw_capacity_bytes");
	used = kc_u64(sp, "raw_used_bytes");
	printf("space:    %s raw, %s used (%.0f%%)\n", kc_bytes(raw, a, sizeof(a)),
	       kc_bytes(used, b, sizeof(b)), raw ? 100.0 * (double)used / (double)raw : 0.0);
	printf("volumes:  %" PRIu64 ", %s provisioned, %s allocated", kc_u64(sp, "volumes"),
	       kc_bytes(kc_u64(sp, "provisioned_bytes"), a, sizeof(a)),
	       kc_bytes(kc_u64(sp, "allocated_bytes"), b, sizeof(b)));
	printf(" (snapshots %s)\n", kc_bytes(kc_u64(sp, "snapshot_bytes"), a, sizeof(a)));
	json_array_foreach(json_object_get(s, "checks"), i, v)
	{
		printf("%s  %s\n", i ? "         " : "checks:", json_string_value(v));
	}
	rest_resp_free(&r);
	return KC_EXIT_OK;
}

static int kc_help(const char *topic)
{
	static const struct {
		const char *name;
		const char *text;
	} pages[] = {
		{"volume", kc_help_volume},
		{"server", kc_help_server},
		{"cluster", kc_help_cluster},
		{"pool", kc_help_pool},
		{"template", kc_help_pool},
		{"pg", kc_help_pg},
		{"attachment", kc_help_attach},
		{"snapshot", kc_help_snapshot},
		{"job", kc_help_job},
	};

	if (!topic) {
		fputs(kc_help_main, stdout);
		return KC_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		if (!strcmp(topic, pages[i].name)) {
			fputs(pages[i].text, stdout);
			return KC_EXIT_OK;
		}
	}
	return kc_usage("no help for '%s' (try volume, snapshot, job, attachment, server, cluster, "
			"pool, template, pg)",
			topic);
}

/*
 * Global options may stand anywhere on the line (`keelctl -f json volume
 * list` and `keelctl volume list -f json` alike): take them out of argv in
 * place. Returns 0, or a usage exit status.
 */
static int kc_take_global(struct kc_ctx *k, int *argc, char **argv)
{
	int i, n = 0;

	for (i = 0; i < *argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--mgmt=", 7)) {
			k->url = a + 7;
			continue;
		}
		if (!strncmp(a, "--token=", 8)) {
			k->token_arg = a + 8;
			continue;
		}
		if (!strncmp(a, "--token-file=", 13)) {
			k->token_file = a + 13;
			continue;
		}
		if (strcmp(a, "--mgmt") && strcmp(a, "-f") && strcmp(a, "--format") &&
		    strcmp(a, "--token") && strcmp(a, "--token-file")) {
			argv[n++] = argv[i];
			continue;
		}
		if (i + 1 >= *argc) {
			return kc_usage("%s needs a value", a);
		}
		i++;
		if (!strcmp(a, "--mgmt")) {
			k->url = argv[i];
		} else if (!strcmp(a, "--token")) {
			k->token_arg = argv[i];
		} else if (!strcmp(a, "--token-file")) {
			k->token_file = argv[i];
		} else if (!strcmp(argv[i], "json")) {
			k->json = true;
		} else if (!strcmp(argv[i], "table")) {
			k->json = false;
			kc_table_values = false;
		} else if (!strcmp(argv[i], "value")) {
			k->json = false;
			kc_table_values = true;
		} else {
			return kc_usage("-f expects table, json or value, not '%s'", argv[i]);
		}
	}
	*argc = n;
	return 0;
}

int main(int argc, char **argv)
{
	struct kc_ctx k = {.url = getenv("KEEL_MGMT_URL")};
	const char *cmd;
	int i, ret;

	if (!k.url || !k.url[0]) {
		k.url = KC_DEFAULT_URL;
	}
	argc--;
	argv++;
	ret = kc_take_global(&k, &argc, argv);
	if (ret) {
		return ret;
	}
	for (i = 0; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			return kc_help(NULL);
		}
		return kc_usage("unknown option %s", a);
	}
	if (i >= argc) {
		fputs(kc_help_main, stderr);
		return KC_EXIT_USAGE;
	}
	cmd = argv[i++];
	if (!strcmp(cmd, "help")) {
		return kc_help(i < argc ? argv[i] : NULL);
	}
	if (i < argc && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
		return kc_help(cmd);
	}
	{
		char err[512];

		if (rest_token_resolve(k.token_arg, k.token_file, k.token, sizeof(k.token), err,
				       sizeof(err))) {
			fprintf(stderr, "keelctl: %s\n", err);
			return KC_EXIT_USAGE;
		}
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(cmd, "volume")) {
		ret = kc_volume(&k, argc - i, argv + i);
	} else if (!strcmp(cmd, "snapshot")) {
		ret = kc_snapshot(&k, argc - i, argv + i);
	} else if (!strcmp(cmd, "job")) {
		ret = kc_job(&k, argc - i, argv + i);
	} else if (!strcmp(cmd, "attachment")) {
		ret = kc_attachment(&k, argc - i, argv + i);
	} else if (!strcmp(cmd, "server")) {
		ret = kc_list(&k, "server", argc - i, argv + i, "/v1/servers", kc_server_table);
	} else if (!strcmp(cmd, "pool") || !strcmp(cmd, "template")) {
		if (i < argc && !strcmp(argv[i], "create")) {
			ret = kc_pool_create(&k, argc - i - 1, argv + i + 1);
		} else if (i < argc && !strcmp(argv[i], "qos")) {
			ret = kc_pool_qos(&k, argc - i - 1, argv + i + 1);
		} else if (i < argc && !strcmp(argv[i], "overcommit")) {
			ret = kc_pool_overcommit(&k, argc - i - 1, argv + i + 1);
		} else {
			ret = kc_list(&k, "pool", argc - i, argv + i, "/v1/pools", kc_pool_table);
		}
	} else if (!strcmp(cmd, "pg")) {
		ret = kc_list(&k, "pg", argc - i, argv + i, "/v1/pgs", kc_pg_table);
	} else if (!strcmp(cmd, "cluster")) {
		ret = kc_cluster_status(&k, argc - i, argv + i);
	} else {
		ret = kc_usage("unknown command '%s'", cmd);
	}
	curl_global_cleanup();
	return ret;
}

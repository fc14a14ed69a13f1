/* SPDX-License-Identifier: Apache-2.0 */
/* keelctl volume attach / detach, keelctl attachment list. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mgmt/kc.h"
#include "mgmt/kc_table.h"

#define KC_ATTACH_TIMEOUT_S 30

const char kc_help_attach[] =
	"NAME\n"
	"    keelctl volume attach, volume detach, attachment list - serve volumes\n"
	"    to a hypervisor host\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl volume attach NAME [--host HOST] [--ro] [--nbd]\n"
	"                               [--nbd-tcp ADDR:PORT] [--no-wait] [--timeout SEC]\n"
	"    keelctl volume detach NAME [--host HOST]\n"
	"    keelctl attachment list [--host HOST]\n"
	"\n"
	"DESCRIPTION\n"
	"    attach asks HOST's keel-client to serve volume NAME: as a vhost-user-blk\n"
	"    socket for QEMU (always) and, with --nbd, as an NBD export on a unix\n"
	"    socket. keel-client picks the attachment up within a second, opens the\n"
	"    volume and reports the paths; attach waits for that report and prints\n"
	"    the attachment: `vhost_socket` is the path for QEMU's\n"
	"      -chardev socket,id=c0,path=VHOST_SOCKET,reconnect=1\n"
	"      -device vhost-user-blk-pci,chardev=c0,num-queues=N\n"
	"    (guest memory must be shared: -object memory-backend-memfd,...,share=on\n"
	"    -numa node,memdev=...), and `nbd_uri` (with --nbd) is an NBD URI for\n"
	"    qemu-img, qemu-io, nbdinfo and fio's nbd engine; with --nbd-tcp the\n"
	"    export also listens on ADDR:PORT of that host (`nbd_tcp_uri`,\n"
	"    nbd://ADDR:PORT/NAME; no authentication on NBD: listen only where the\n"
	"    network is trusted). Attaching again with\n"
	"    the same options changes nothing; with other options it is refused\n"
	"    (detach first). A volume may be attached to several hosts at once (live\n"
	"    migration). Each attach gets a new generation number.\n"
	"\n"
	"    detach removes the attachment: keel-client closes the socket and the\n"
	"    export once requests in flight have finished. Detach a volume only\n"
	"    after the guest using it has stopped or released the disk.\n"
	"\n"
	"    attachment list shows every attachment (of HOST with --host) with its\n"
	"    state: attaching (keel-client has not reported yet), attached, or error\n"
	"    (the reason is in the error column / field).\n"
	"\n"
	"OPTIONS\n"
	"    --host HOST     the hypervisor host's name as its keel-client knows it\n"
	"                    (keel-client --host); default this machine's hostname\n"
	"    --ro            read-only: the guest sees a read-only disk\n"
	"    --nbd           also export the volume over NBD (a unix socket)\n"
	"    --nbd-tcp A:P   and over TCP on address A, port P (implies --nbd)\n"
	"    --no-wait       return once mgmt has recorded the attachment\n"
	"    --timeout SEC   how long to wait for keel-client's report (default 30)\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 refused, the host reported an error, no report within the\n"
	"    timeout (the attachment stays recorded), or mgmt unreachable;\n"
	"    2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl volume attach vm-disk-1 --host hv12\n"
	"    keelctl -f json volume attach scratch --nbd\n"
	"    keelctl volume detach vm-disk-1 --host hv12\n";

static int kc_attach_table(json_t *list)
{
	static const char *const hdr[] = {"VOLUME",	  "HOST",    "MODE",	    "GEN", "STATE",
					  "VHOST_SOCKET", "NBD_URI", "NBD_TCP_URI", "ERROR"};
	struct kc_table *t = kc_table_new(9, hdr);
	size_t i;
	json_t *a;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, a)
	{
		char gen[24];
		const char *row[9] = {kc_str(a, "volume"),
				      kc_str(a, "host"),
				      json_is_true(json_object_get(a, "read_only")) ? "ro" : "rw",
				      gen,
				      kc_str(a, "state"),
				      kc_str(a, "vhost_socket"),
				      kc_str(a, "nbd_uri"),
				      kc_str(a, "nbd_tcp_uri"),
				      kc_str(a, "error")};

		snprintf(gen, sizeof(gen), "%" PRIu64, kc_u64(a, "generation"));
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

static int kc_attach_print(const struct kc_ctx *k, struct rest_resp *r)
{
	json_t *one;

	if (k->json) {
		kc_print_json(r);
		return KC_EXIT_OK;
	}
	one = json_array();
	json_array_append(one, r->json);
	kc_attach_table(one);
	json_decref(one);
	return KC_EXIT_OK;
}

static const char *kc_default_host(char *buf, size_t len)
{
	if (gethostname(buf, len) || !buf[0]) {
		snprintf(buf, len, "localhost");
	}
	buf[len - 1] = '\0';
	return buf;
}

/* /v1/volumes/{name}/attachments[/{host}] */
static int kc_attach_path(const char *volume, const char *host, char *buf, size_t len)
{
	char vpath[320], hpath[320];

	if (kc_name_path("/v1/volumes/", volume, vpath, sizeof(vpath)) ||
	    (host && kc_name_path("/attachments/", host, hpath, sizeof(hpath)))) {
		return KC_EXIT_ERR;
	}
	snprintf(buf, len, "%s%s", vpath, host ? hpath : "/attachments");
	return 0;
}

struct kc_attach_args {
	const char *name;
	const char *host;
	const char *nbd_tcp;
	bool ro, nbd, no_wait;
	long timeout_s;
};

/* NAME [--host H], and for attach --ro --nbd --no-wait --timeout. */
static int kc_attach_parse(const char *cmd, bool attach, int argc, char **argv,
			   struct kc_attach_args *a)
{
	static char host_buf[256];
	char msg[96];

	a->timeout_s = KC_ATTACH_TIMEOUT_S;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];

		if ((!strcmp(s, "--host") || !strcmp(s, "--timeout") || !strcmp(s, "--nbd-tcp")) &&
		    i + 1 >= argc) {
			return kc_usage("%s needs a value", s);
		}
		if (!strcmp(s, "--host")) {
			a->host = argv[++i];
		} else if (attach && !strcmp(s, "--timeout")) {
			char *end;

			a->timeout_s = strtol(argv[++i], &end, 10);
			if (*end || a->timeout_s < 1 || a->timeout_s > 3600) {
				return kc_usage("--timeout expects seconds (1..3600), not '%s'",
						argv[i]);
			}
		} else if (attach && !strcmp(s, "--ro")) {
			a->ro = true;
		} else if (attach && !strcmp(s, "--nbd")) {
			a->nbd = true;
		} else if (attach && !strcmp(s, "--nbd-tcp")) {
			a->nbd_tcp = argv[++i];
			a->nbd = true;
		} else if (attach && !strcmp(s, "--no-wait")) {
			a->no_wait = true;
		} else if (s[0] == '-' && s[1]) {
			snprintf(msg, sizeof(msg), "volume %s: unknown option %%s", cmd);
			return kc_usage(msg, s);
		} else if (!a->name) {
			a->name = s;
		} else {
			snprintf(msg, sizeof(msg), "volume %s: unexpected argument '%%s'", cmd);
			return kc_usage(msg, s);
		}
	}
	if (!a->name) {
		snprintf(msg, sizeof(msg), "volume %s: NAME is required", cmd);
		return kc_usage("%s", msg);
	}
	if (!a->host) {
		a->host = kc_default_host(host_buf, sizeof(host_buf));
	}
	return 0;
}

/* Poll the attachment until keel-client has reported on it. */
static int kc_attach_wait(const struct kc_ctx *k, const struct kc_attach_args *a,
			  const char *path, struct rest_resp *r)
{
	struct timespec start, now;
	char msg[512];

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		const char *state;
		int ret = kc_call(k, "GET", path, NULL, r);

		if (ret) {
			return ret;
		}
		state = kc_str(r->json, "state");
		if (!strcmp(state, "attached")) {
			return KC_EXIT_OK;
		}
		if (!strcmp(state, "error")) {
			snprintf(msg, sizeof(msg),
				 "host '%s' could not attach volume '%s': %s (the attachment stays "
				 "recorded: fix the cause, or 'keelctl volume detach %s --host %s')",
				 a->host, a->name, kc_str(r->json, "error"), a->name, a->host);
			rest_resp_free(r);
			return kc_fail(msg);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= a->timeout_s) {
			snprintf(msg, sizeof(msg),
				 "host '%s' has not picked up the attachment of volume '%s' within "
				 "%ld s: is keel-client running there with --host %s? (the "
				 "attachment stays recorded)",
				 a->host, a->name, a->timeout_s, a->host);
			rest_resp_free(r);
			return kc_fail(msg);
		}
		rest_resp_free(r);
		usleep(100 * 1000);
	}
}

int kc_volume_attach(const struct kc_ctx *k, int argc, char **argv)
{
	struct kc_attach_args a = {0};
	char path[640];
	struct rest_resp r;
	json_t *body;
	int ret;

	ret = kc_attach_parse("attach", true, argc, argv, &a);
	if (ret) {
		return ret;
	}
	if (kc_attach_path(a.name, NULL, path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	body = json_pack("{s:s,s:b,s:b}", "host", a.host, "read_only", a.ro, "nbd", a.nbd);
	if (body && a.nbd_tcp) {
		json_object_set_new(body, "nbd_tcp", json_string(a.nbd_tcp));
	}
	ret = kc_call(k, "POST", path, body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	if (!a.no_wait && strcmp(kc_str(r.json, "state"), "attached")) {
		rest_resp_free(&r);
		if (kc_attach_path(a.name, a.host, path, sizeof(path))) {
			return KC_EXIT_ERR;
		}
		ret = kc_attach_wait(k, &a, path, &r);
		if (ret) {
			return ret;
		}
	}
	kc_attach_print(k, &r);
	rest_resp_free(&r);
	return KC_EXIT_OK;
}

int kc_volume_detach(const struct kc_ctx *k, int argc, char **argv)
{
	struct kc_attach_args a = {0};
	char path[640];
	struct rest_resp r;
	int ret;

	ret = kc_attach_parse("detach", false, argc, argv, &a);
	if (ret) {
		return ret;
	}
	if (kc_attach_path(a.name, a.host, path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	ret = kc_call(k, "DELETE", path, NULL, &r);
	if (ret) {
		return ret;
	}
	if (!k->json) {
		printf("volume '%s' detached from host '%s'\n", a.name, a.host);
	}
	rest_resp_free(&r);
	return KC_EXIT_OK;
}

int kc_attachment(const struct kc_ctx *k, int argc, char **argv)
{
	const char *host = NULL;
	struct rest_resp r;
	char path[384];
	int ret;

	if (argc < 1 || strcmp(argv[0], "list")) {
		return kc_usage("%s", "attachment: expected 'attachment list [--host HOST]'");
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			host = argv[++i];
		} else {
			return kc_usage("attachment list: unexpected argument '%s'", argv[i]);
		}
	}
	if (host) {
		if (kc_name_path("/v1/hosts/", host, path, sizeof(path))) {
			return KC_EXIT_ERR;
		}
		strncat(path, "/attachments", sizeof(path) - strlen(path) - 1);
	} else {
		snprintf(path, sizeof(path), "/v1/attachments");
	}
	ret = kc_call(k, "GET", path, NULL, &r);
	if (ret) {
		return ret;
	}
	k->json ? kc_print_json(&r) : (void)kc_attach_table(r.json);
	rest_resp_free(&r);
	return KC_EXIT_OK;
}

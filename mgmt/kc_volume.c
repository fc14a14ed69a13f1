/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelctl: snapshots, clones and the volume operations beyond create/list/
 * show/delete (docs/volumes.md). Data-moving commands (flatten, import,
 * export) run here, through libkeel, with a progress line on a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/libkeel.h"
#include "common/config.h"
#include "common/log.h"
#include "mgmt/kc.h"
#include "mgmt/kc_table.h"

#define KC_CHUNK (1024u * 1024) /* bytes per libkeel request */

const char kc_help_snapshot[] =
	"NAME\n"
	"    keelctl snapshot, volume clone/revert/flatten/resize/rename/import/\n"
	"    export - snapshots, clones and moving data\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl snapshot create VOLUME@SNAP [--description TEXT]\n"
	"    keelctl snapshot list [VOLUME]\n"
	"    keelctl snapshot show VOLUME@SNAP\n"
	"    keelctl snapshot delete VOLUME@SNAP [--wait]\n"
	"    keelctl volume clone VOLUME@SNAP NEWNAME [--size SIZE]\n"
	"    keelctl volume copy VOLUME NEWNAME [--size SIZE]\n"
	"    keelctl volume revert VOLUME SNAP\n"
	"    keelctl volume flatten VOLUME [--online]\n"
	"    keelctl volume resize VOLUME SIZE [--allow-shrink]\n"
	"    keelctl volume rename VOLUME NEWNAME\n"
	"    keelctl volume import FILE VOLUME [--size SIZE] [--pool POOL]\n"
	"    keelctl volume export VOLUME[@SNAP] FILE\n"
	"\n"
	"DESCRIPTION\n"
	"    A snapshot is a read-only, point-in-time image of a volume, taken in\n"
	"    constant time whatever the volume's size, while it is attached and in\n"
	"    use: it holds every write the volume acknowledged before the command\n"
	"    started and none issued after it returned. A clone is a new volume\n"
	"    that starts as a copy of a snapshot and shares its data until\n"
	"    either is written (copy-on-write); `volume copy` clones a live volume\n"
	"    the same way. Snapshots and clones never copy data.\n"
	"\n"
	"    revert makes VOLUME's content that of its snapshot SNAP again (the\n"
	"    volume must be detached); later snapshots stay. delete of a snapshot\n"
	"    removes it from the lists at once. When exactly one layer reads\n"
	"    through it (the volume, a later snapshot, or one clone), its data\n"
	"    is merged into that layer in the background and then freed, so\n"
	"    rotating snapshots does not lengthen the chain: delete prints the\n"
	"    merge's job, and --wait follows it to the end with a progress line\n"
	"    on a terminal (keelctl help job). A snapshot that several clones\n"
	"    depend on keeps its data until all but one are deleted or\n"
	"    flattened, then merges. flatten copies\n"
	"    into a clone every block it still reads from its snapshot, then cuts\n"
	"    it loose: through this command when the volume is detached; on the\n"
	"    servers, as a job followed with a progress line, when it is\n"
	"    attached (or with --online; keelctl help job). resize grows a\n"
	"    volume online (attached guests see the new capacity); shrinking needs\n"
	"    --allow-shrink and loses the data past the new end.\n"
	"\n"
	"    import writes a raw image FILE into VOLUME (created with the file's\n"
	"    size, or --size, if it does not exist), skipping zero blocks so the\n"
	"    volume stays thin. export writes VOLUME, or its snapshot, to FILE as\n"
	"    a raw image (sparse where the volume reads zeroes). Both show a\n"
	"    progress line when stderr is a terminal.\n"
	"\n"
	"OPTIONS\n"
	"    --wait           snapshot delete: wait for the merge to finish\n"
	"    --key-file PATH  the cluster key for the data commands (flatten,\n"
	"                     import, export); default $KEEL_KEY_FILE, else\n"
	"                     /etc/keel/keel.key\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl snapshot create db1@before-upgrade\n"
	"    keelctl volume clone db1@before-upgrade db1-test\n"
	"    keelctl volume revert db1 before-upgrade\n"
	"    keelctl volume import debian-12.raw vm-base\n";

/* ---- views ---- */

static int kc_snap_table(json_t *list)
{
	static const char *const hdr[] = {"SNAPSHOT", "ID", "SIZE", "ALLOCATED", "CREATED"};
	struct kc_table *t = kc_table_new(5, hdr);
	size_t i;
	json_t *s;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, s)
	{
		char size[32], alloc[32];
		const char *row[5] = {kc_str(s, "full_name"), kc_str(s, "id"), size, alloc,
				      kc_str(s, "created_at")};

		kc_bytes(kc_u64(s, "size"), size, sizeof(size));
		kc_bytes(kc_u64(s, "allocated_bytes"), alloc, sizeof(alloc));
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

/* Print one object reply as a table of one row, or the JSON. */
int kc_print_one(const struct kc_ctx *k, struct rest_resp *r, int (*table)(json_t *list))
{
	if (k->json) {
		kc_print_json(r);
	} else {
		json_t *one = json_array();

		json_array_append(one, r->json);
		table(one);
		json_decref(one);
	}
	rest_resp_free(r);
	return KC_EXIT_OK;
}

/* "VOLUME@SNAP" into its parts. */
static int kc_split_snap(const char *full, char *vol, size_t vlen, const char **snap)
{
	const char *at = strchr(full, '@');

	if (!at || at == full || !at[1] || (size_t)(at - full) >= vlen) {
		return kc_usage("expected VOLUME@SNAPSHOT, not '%s'", full);
	}
	snprintf(vol, vlen, "%.*s", (int)(at - full), full);
	*snap = at + 1;
	return 0;
}

/* ---- snapshot ---- */

static int kc_snapshot_create(const struct kc_ctx *k, int argc, char **argv)
{
	const char *full = NULL, *snap = NULL, *desc = NULL;
	char vol[128], path[512];
	struct rest_resp r;
	json_t *body;
	int ret;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--description")) {
			if (++i >= argc) {
				return kc_usage("%s needs a value", "--description");
			}
			desc = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return kc_usage("snapshot create: unknown option %s", argv[i]);
		} else if (!full) {
			full = argv[i];
		} else {
			return kc_usage("snapshot create: unexpected argument '%s'", argv[i]);
		}
	}
	if (!full) {
		return kc_usage("%s", "snapshot create: VOLUME@SNAPSHOT is required");
	}
	ret = kc_split_snap(full, vol, sizeof(vol), &snap);
	if (ret || kc_name_path("/v1/volumes/", vol, path, sizeof(path))) {
		return ret ? ret : KC_EXIT_ERR;
	}
	strncat(path, "/snapshots", sizeof(path) - strlen(path) - 1);
	body = json_pack("{s:s}", "name", snap);
	if (desc) {
		json_object_set_new(body, "description", json_string(desc));
	}
	ret = kc_call(k, "POST", path, body, &r);
	json_decref(body);
	return ret ? ret : kc_print_one(k, &r, kc_snap_table);
}

int kc_snapshot(const struct kc_ctx *k, int argc, char **argv)
{
	struct rest_resp r;
	char path[512];
	int ret;

	if (argc < 1) {
		return kc_usage("%s", "snapshot: expected create, list, show or delete");
	}
	if (!strcmp(argv[0], "create")) {
		return kc_snapshot_create(k, argc - 1, argv + 1);
	}
	if (!strcmp(argv[0], "list")) {
		if (argc > 2) {
			return kc_usage("snapshot list: unexpected argument '%s'", argv[2]);
		}
		if (argc == 2) {
			if (kc_name_path("/v1/volumes/", argv[1], path, sizeof(path))) {
				return KC_EXIT_ERR;
			}
			strncat(path, "/snapshots", sizeof(path) - strlen(path) - 1);
		} else {
			snprintf(path, sizeof(path), "/v1/snapshots");
		}
		ret = kc_call(k, "GET", path, NULL, &r);
		if (!ret) {
			k->json ? kc_print_json(&r) : (void)kc_snap_table(r.json);
			rest_resp_free(&r);
		}
		return ret;
	}
	if (!strcmp(argv[0], "show") || !strcmp(argv[0], "delete")) {
		bool del = argv[0][0] == 'd';
		bool wait = del && argc == 3 && !strcmp(argv[2], "--wait");

		if (wait) {
			argc--;
		}
		if (argc != 2) {
			return kc_usage("snapshot %s: expects exactly one VOLUME@SNAPSHOT", argv[0]);
		}
		if (kc_name_path("/v1/snapshots/", argv[1], path, sizeof(path))) {
			return KC_EXIT_ERR;
		}
		ret = kc_call(k, del ? "DELETE" : "GET", path, NULL, &r);
		if (ret) {
			return ret;
		}
		if (!del) {
			return kc_print_one(k, &r, kc_snap_table);
		}
		if (r.status == 202 && json_is_object(r.json)) {
			/* a merge into the layer's child started (keelctl help job) */
			char id[64], what[300];

			snprintf(id, sizeof(id), "%s", kc_str(r.json, "id"));
			if (k->json) {
				kc_print_json(&r);
			} else {
				printf("snapshot '%s' deleted; its data merges into the layer "
				       "above it: job %s\n",
				       argv[1], id);
			}
			rest_resp_free(&r);
			snprintf(what, sizeof(what), "merge of %s", argv[1]);
			return wait ? kc_job_wait(k, id, what) : KC_EXIT_OK;
		}
		if (!k->json) {
			printf("snapshot '%s' deleted\n", argv[1]);
		}
		rest_resp_free(&r);
		return KC_EXIT_OK;
	}
	return kc_usage("snapshot: unknown subcommand '%s'", argv[0]);
}

/* ---- volume operations through the API ---- */

/* POST @body to /v1/volumes/NAME/@op (@name NULL: to /v1/volumes, a new
 * volume) and print the volume. */
static int kc_volume_post(const struct kc_ctx *k, const char *name, const char *op, json_t *body,
			  int (*table)(json_t *list))
{
	struct rest_resp r;
	char path[512];
	int ret;

	if (name && kc_name_path("/v1/volumes/", name, path, sizeof(path))) {
		json_decref(body);
		return KC_EXIT_ERR;
	}
	if (name && op) {
		strncat(path, "/", sizeof(path) - strlen(path) - 1);
		strncat(path, op, sizeof(path) - strlen(path) - 1);
	}
	ret = kc_call(k, "POST", op ? path : "/v1/volumes", body, &r);
	json_decref(body);
	return ret ? ret : kc_print_one(k, &r, table);
}

/* volume clone VOLUME@SNAP NEW / volume copy VOLUME NEW [--size SIZE] */
static int kc_volume_clone(const struct kc_ctx *k, int argc, char **argv, bool copy,
			   int (*table)(json_t *list))
{
	const char *args[2] = {NULL, NULL};
	uint64_t size = 0;
	int n = 0;
	json_t *body;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--size")) {
			if (++i >= argc) {
				return kc_usage("%s needs a value", "--size");
			}
			if (cfg_parse_size(argv[i], &size)) {
				return kc_usage("--size expects a size such as 10G, not '%s'", argv[i]);
			}
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return kc_usage("volume clone: unknown option %s", argv[i]);
		} else if (n < 2) {
			args[n++] = argv[i];
		} else {
			return kc_usage("volume clone: unexpected argument '%s'", argv[i]);
		}
	}
	if (n != 2) {
		return kc_usage("%s", copy ? "volume copy: expects VOLUME NEWNAME"
					   : "volume clone: expects VOLUME@SNAPSHOT NEWNAME");
	}
	if (!copy && !strchr(args[0], '@')) {
		return kc_usage("volume clone: '%s' is not VOLUME@SNAPSHOT (use volume copy to "
				"clone a live volume)",
				args[0]);
	}
	body = json_pack("{s:s,s:s}", "name", args[1], copy ? "source_volume" : "snapshot",
			 args[0]);
	if (size) {
		json_object_set_new(body, "size", json_integer((json_int_t)size));
	}
	return kc_volume_post(k, NULL, NULL, body, table);
}

/* ---- data movement through libkeel ---- */

struct kc_progress {
	const char *what;
	uint64_t total, done;
	bool tty;
	time_t last;
};

static void kc_progress(struct kc_progress *p, uint64_t done, bool final)
{
	char a[32], b[32];
	time_t now = time(NULL);

	p->done = done;
	if (!p->tty || (!final && now == p->last)) {
		return;
	}
	p->last = now;
	fprintf(stderr, "\r%s: %3u%% (%s of %s)%s", p->what,
		(unsigned int)(p->total ? done * 100 / p->total : 100),
		kc_bytes(done, a, sizeof(a)), kc_bytes(p->total, b, sizeof(b)),
		final ? "\n" : "");
	fflush(stderr);
}

static int kc_keel_open(const struct kc_ctx *k, const char *key_file, const char *vol,
			struct keel_sync **out)
{
	struct keel_cluster_opts o = {
		.mgmt_url = k->url,
		.key_file = key_file,
		.name = "keelctl",
		.api_token = k->token,
	};
	char msg[256];
	int ret;

	klog_set_level(KLOG_WARN); /* libkeel's session notes are not for operators */
	ret = keel_sync_open(&o, vol, out);

	if (ret) {
		snprintf(msg, sizeof(msg), "cannot open volume '%s': %s", vol, strerror(-ret));
		return kc_fail(msg);
	}
	return 0;
}

static bool kc_zero_block(const uint8_t *p)
{
	static const uint8_t zero[4096];

	return !memcmp(p, zero, sizeof(zero));
}

/* Write the non-zero 4 KiB runs of buf[0..len) at @off. */
static int kc_write_nonzero(struct keel_sync *s, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t i = 0;

	while (i < len) {
		size_t j;
		int ret;

		if (kc_zero_block(buf + i)) {
			i += 4096;
			continue;
		}
		for (j = i; j < len && !kc_zero_block(buf + j); j += 4096) {
		}
		ret = keel_sync_pwrite(s, buf + i, j - i, off + i);
		if (ret) {
			return ret;
		}
		i = j;
	}
	return 0;
}

static int kc_take_key(int *argc, char **argv, const char **key_file)
{
	int n = 0;

	*key_file = NULL;
	for (int i = 0; i < *argc; i++) {
		if (!strcmp(argv[i], "--key-file")) {
			if (i + 1 >= *argc) {
				return kc_usage("%s needs a value", "--key-file");
			}
			*key_file = argv[++i];
			continue;
		}
		argv[n++] = argv[i];
	}
	*argc = n;
	return 0;
}

static int kc_get_volume(const struct kc_ctx *k, const char *name, struct rest_resp *r)
{
	char path[512];

	if (kc_name_path("/v1/volumes/", name, path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	return kc_call(k, "GET", path, NULL, r);
}

/* Like kc_get_volume() without the error line: KC_EXIT_ERR if absent. */
static int kc_volume_exists(const struct kc_ctx *k, const char *name, struct rest_resp *r)
{
	char path[512], err[256];

	if (kc_name_path("/v1/volumes/", name, path, sizeof(path)) ||
	    rest_call(k->url, k->token, "GET", path, NULL, r, err, sizeof(err))) {
		return KC_EXIT_ERR;
	}
	if (r->status != 200) {
		rest_resp_free(r);
		return KC_EXIT_ERR;
	}
	return KC_EXIT_OK;
}

/* flatten of an attached volume (or --online): the servers merge the
 * parents into the top, nearest first (a job, followed to its end). */
static int kc_volume_flatten_online(const struct kc_ctx *k, const char *name)
{
	struct rest_resp r;
	char path[512], id[64], what[300];
	json_t *body;
	int ret;

	if (kc_name_path("/v1/volumes/", name, path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	strncat(path, "/flatten", sizeof(path) - strlen(path) - 1);
	body = json_pack("{s:b}", "online", 1);
	ret = kc_call(k, "POST", path, body, &r);
	json_decref(body);
	if (ret) {
		return ret;
	}
	snprintf(id, sizeof(id), "%s", kc_str(r.json, "id"));
	rest_resp_free(&r);
	snprintf(what, sizeof(what), "flatten of %s", name);
	ret = kc_job_wait(k, id, what);
	if (!ret && !k->json) {
		printf("volume '%s' flattened online (job %s)\n", name, id);
	}
	return ret;
}

/*
 * flatten: every block the top reads from its parents is written into the
 * top (zero blocks are skipped: unmapped reads as zero too), then mgmt
 * drops the parent link. Offline: the volume must not be attached, so no
 * guest write can race a copy; an attached volume is flattened online.
 */
static int kc_volume_flatten(const struct kc_ctx *k, int argc, char **argv,
			     int (*table)(json_t *list))
{
	struct kc_progress p = {.what = "flatten", .tty = isatty(2)};
	const char *key_file;
	struct keel_sync *s = NULL;
	struct rest_resp r;
	uint64_t parent, size, top, now_top, now_parent;
	bool online = false;
	uint8_t *buf = NULL;
	char msg[256];
	json_t *par;
	int ret;

	if (kc_take_key(&argc, argv, &key_file)) {
		return KC_EXIT_USAGE;
	}
	if (argc == 2 && !strcmp(argv[1], "--online")) {
		online = true;
		argc--;
	}
	if (argc != 1) {
		return kc_usage("%s", "volume flatten: expects exactly one VOLUME");
	}
	ret = kc_get_volume(k, argv[0], &r);
	if (ret) {
		return ret;
	}
	par = json_object_get(r.json, "parents");
	parent = json_array_size(par) ? (uint64_t)json_integer_value(json_array_get(par, 0)) : 0;
	size = kc_u64(r.json, "size");
	top = kc_u64(r.json, "inode");
	online |= strcmp(kc_str(r.json, "status"), "available") != 0;
	rest_resp_free(&r);
	if (!parent) {
		if (!k->json) {
			printf("volume '%s' has no parent: nothing to do\n", argv[0]);
		}
		return KC_EXIT_OK;
	}
	if (online) {
		return kc_volume_flatten_online(k, argv[0]);
	}
	ret = kc_keel_open(k, key_file, argv[0], &s);
	if (ret) {
		return ret;
	}
	buf = aligned_alloc(4096, KC_CHUNK);
	if (!buf) {
		keel_sync_close(s);
		return kc_fail("out of memory");
	}
	p.total = size;
	for (uint64_t off = 0; off < size && !ret; off += KC_CHUNK) {
		size_t len = size - off < KC_CHUNK ? (size_t)(size - off) : KC_CHUNK;

		ret = keel_sync_pread(s, buf, len, off);
		if (!ret) {
			ret = kc_write_nonzero(s, buf, len, off);
		}
		kc_progress(&p, off + len, false);
	}
	if (!ret) {
		ret = keel_sync_flush(s);
	}
	kc_progress(&p, p.done, true);
	free(buf);
	keel_sync_close(s);
	if (ret) {
		snprintf(msg, sizeof(msg), "flatten of '%s' failed: %s (nothing changed; run it again)",
			 argv[0], strerror(-ret));
		return kc_fail(msg);
	}
	/* The top holds every block of its view now. A merge of a deleted
	 * snapshot may have shortened the chain meanwhile (the top's content
	 * is the same): drop the parent it has now. A new top (a revert) is
	 * a different volume content: refuse. */
	ret = kc_get_volume(k, argv[0], &r);
	if (ret) {
		return ret;
	}
	par = json_object_get(r.json, "parents");
	now_parent =
		json_array_size(par) ? (uint64_t)json_integer_value(json_array_get(par, 0)) : 0;
	now_top = kc_u64(r.json, "inode");
	rest_resp_free(&r);
	if (now_top != top) {
		snprintf(msg, sizeof(msg),
			 "volume '%s' changed (reverted?) while it was flattened: run it again",
			 argv[0]);
		return kc_fail(msg);
	}
	if (!now_parent) {
		if (!k->json) {
			printf("volume '%s' has no parent any more\n", argv[0]);
		}
		return KC_EXIT_OK;
	}
	return kc_volume_post(k, argv[0], "flatten",
			      json_pack("{s:I}", "parent", (json_int_t)now_parent), table);
}

static int kc_volume_import(const struct kc_ctx *k, int argc, char **argv,
			    int (*table)(json_t *list))
{
	struct kc_progress p = {.what = "import", .tty = isatty(2)};
	const char *key_file, *args[2] = {NULL, NULL}, *pool = NULL;
	struct keel_sync *s = NULL;
	struct rest_resp r;
	uint64_t size = 0, vsize;
	uint8_t *buf = NULL;
	struct stat st;
	char msg[512];
	int n = 0, fd, ret;

	if (kc_take_key(&argc, argv, &key_file)) {
		return KC_EXIT_USAGE;
	}
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--size") || !strcmp(argv[i], "--pool") ||
		    !strcmp(argv[i], "--template")) {
			if (i + 1 >= argc) {
				return kc_usage("%s needs a value", argv[i]);
			}
			if (argv[i][2] != 's') {
				pool = argv[++i];
			} else if (cfg_parse_size(argv[++i], &size)) {
				return kc_usage("--size expects a size such as 10G, not '%s'", argv[i]);
			}
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return kc_usage("volume import: unknown option %s", argv[i]);
		} else if (n < 2) {
			args[n++] = argv[i];
		} else {
			return kc_usage("volume import: unexpected argument '%s'", argv[i]);
		}
	}
	if (n != 2) {
		return kc_usage("%s", "volume import: expects FILE VOLUME");
	}
	fd = open(args[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(msg, sizeof(msg), "cannot open '%s': %s", args[0], strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return kc_fail(msg);
	}
	if (!size) {
		size = ((uint64_t)st.st_size + 4095) / 4096 * 4096;
	}
	ret = kc_volume_exists(k, args[1], &r);
	if (ret) {
		json_t *body = json_pack("{s:s,s:I}", "name", args[1], "size", (json_int_t)size);

		if (pool) {
			json_object_set_new(body, "pool", json_string(pool));
		}
		fprintf(stderr, "keelctl: creating volume '%s'\n", args[1]);
		ret = kc_call(k, "POST", "/v1/volumes", body, &r);
		json_decref(body);
		if (ret) {
			close(fd);
			return ret;
		}
	}
	vsize = kc_u64(r.json, "size");
	rest_resp_free(&r);
	if ((uint64_t)st.st_size > vsize) {
		close(fd);
		snprintf(msg, sizeof(msg), "'%s' (%llu bytes) does not fit in volume '%s' (%llu)",
			 args[0], (unsigned long long)st.st_size, args[1],
			 (unsigned long long)vsize);
		return kc_fail(msg);
	}
	ret = kc_keel_open(k, key_file, args[1], &s);
	if (ret) {
		close(fd);
		return ret;
	}
	buf = aligned_alloc(4096, KC_CHUNK);
	p.total = (uint64_t)st.st_size;
	for (uint64_t off = 0; buf && off < (uint64_t)st.st_size && !ret; off += KC_CHUNK) {
		ssize_t got = pread(fd, buf, KC_CHUNK, (off_t)off);
		size_t len;

		if (got <= 0) {
			ret = got < 0 ? -errno : -EIO;
			break;
		}
		len = ((size_t)got + 4095) / 4096 * 4096;
		memset(buf + got, 0, len - (size_t)got);
		ret = kc_write_nonzero(s, buf, len, off);
		kc_progress(&p, off + (uint64_t)got, false);
	}
	if (!buf) {
		ret = -ENOMEM;
	}
	if (!ret) {
		ret = keel_sync_flush(s);
	}
	kc_progress(&p, p.done, true);
	free(buf);
	close(fd);
	keel_sync_close(s);
	if (ret) {
		snprintf(msg, sizeof(msg), "import into '%s' failed: %s", args[1], strerror(-ret));
		return kc_fail(msg);
	}
	ret = kc_get_volume(k, args[1], &r);
	return ret ? ret : kc_print_one(k, &r, table);
}

static int kc_volume_export(const struct kc_ctx *k, int argc, char **argv)
{
	struct kc_progress p = {.what = "export", .tty = isatty(2)};
	const struct keel_volume_info *vi;
	struct keel_sync *s = NULL;
	const char *key_file;
	uint8_t *buf;
	char msg[512];
	int fd, ret = 0;

	if (kc_take_key(&argc, argv, &key_file)) {
		return KC_EXIT_USAGE;
	}
	if (argc != 2) {
		return kc_usage("%s", "volume export: expects VOLUME[@SNAPSHOT] FILE");
	}
	ret = kc_keel_open(k, key_file, argv[0], &s);
	if (ret) {
		return ret;
	}
	vi = keel_sync_info(s);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	buf = aligned_alloc(4096, KC_CHUNK);
	if (fd < 0 || !buf) {
		snprintf(msg, sizeof(msg), "cannot create '%s': %s", argv[1],
			 fd < 0 ? strerror(errno) : "out of memory");
		free(buf);
		if (fd >= 0) {
			close(fd);
		}
		keel_sync_close(s);
		return kc_fail(msg);
	}
	p.total = vi->size;
	for (uint64_t off = 0; off < vi->size && !ret; off += KC_CHUNK) {
		size_t len = vi->size - off < KC_CHUNK ? (size_t)(vi->size - off) : KC_CHUNK;

		ret = keel_sync_pread(s, buf, len, off);
		for (size_t i = 0; !ret && i < len; i += 4096) {
			/* Holes stay holes: the file is as sparse as the volume. */
			if (!kc_zero_block(buf + i) &&
			    pwrite(fd, buf + i, 4096, (off_t)(off + i)) != 4096) {
				ret = -errno;
			}
		}
		kc_progress(&p, off + len, false);
	}
	if (!ret && (ftruncate(fd, (off_t)vi->size) || fsync(fd))) {
		ret = -errno;
	}
	kc_progress(&p, p.done, true);
	free(buf);
	close(fd);
	keel_sync_close(s);
	if (ret) {
		snprintf(msg, sizeof(msg), "export of '%s' failed: %s", argv[0], strerror(-ret));
		return kc_fail(msg);
	}
	if (!k->json) {
		printf("exported '%s' to %s\n", argv[0], argv[1]);
	}
	return KC_EXIT_OK;
}

/* keelctl volume {clone,copy,revert,flatten,resize,rename,import,export};
 * -1 when @argv[0] is none of them. */
int kc_volume_ops(const struct kc_ctx *k, int argc, char **argv, int (*table)(json_t *list))
{
	const char *op = argv[0];
	json_t *body;
	uint64_t size;

	argc--;
	argv++;
	if (!strcmp(op, "clone") || !strcmp(op, "copy")) {
		return kc_volume_clone(k, argc, argv, op[1] == 'o' && op[2] == 'p', table);
	}
	if (!strcmp(op, "flatten")) {
		return kc_volume_flatten(k, argc, argv, table);
	}
	if (!strcmp(op, "import")) {
		return kc_volume_import(k, argc, argv, table);
	}
	if (!strcmp(op, "export")) {
		return kc_volume_export(k, argc, argv);
	}
	if (!strcmp(op, "revert") || !strcmp(op, "rename")) {
		if (argc != 2) {
			return kc_usage(op[2] == 'v' ? "volume %s: expects VOLUME SNAPSHOT"
						     : "volume %s: expects VOLUME NEWNAME",
					op);
		}
		body = json_pack("{s:s}", op[2] == 'v' ? "snapshot" : "name", argv[1]);
		return kc_volume_post(k, argv[0], op, body, table);
	}
	if (!strcmp(op, "resize")) {
		bool shrink = argc == 3 && !strcmp(argv[2], "--allow-shrink");

		if (argc != 2 && !shrink) {
			return kc_usage("%s", "volume resize: expects VOLUME SIZE [--allow-shrink]");
		}
		if (cfg_parse_size(argv[1], &size)) {
			return kc_usage("volume resize: expected a size such as 20G, not '%s'",
					argv[1]);
		}
		body = json_pack("{s:I,s:b}", "size", (json_int_t)size, "allow_shrink", shrink);
		return kc_volume_post(k, argv[0], "resize", body, table);
	}
	return -1;
}

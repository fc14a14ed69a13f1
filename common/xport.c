/* SPDX-License-Identifier: Apache-2.0 */
#include "xport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const struct xport_ops *const xport_table[] = {
	&xport_tcp_ops,
#ifdef WITH_RDMA
	&xport_rdma_ops,
#endif
};

const struct xport_ops *xport_find(const char *name)
{
	for (size_t i = 0; i < sizeof(xport_table) / sizeof(xport_table[0]); i++) {
		if (!strcmp(xport_table[i]->name, name))
			return xport_table[i];
	}
	return NULL;
}

int xport_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *hs = addr, *he;

	if (!addr || !*addr)
		return -EINVAL;
	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		he = colon;
	}
	if (he == hs || !colon[1] || (size_t)(he - hs) >= hostlen || strlen(colon + 1) >= portlen)
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
	}
	return 0;
}

void xport_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

int xport_resolve(const char *who, const char *addr, bool passive, struct addrinfo **res)
{
	char host[256], port[16];
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	int ret;

	ret = xport_parse_addr(addr, host, sizeof(host), port, sizeof(port));
	if (ret) {
		log_error("%s: bad address \"%s\": expected host:port or [v6]:port", who, addr);
		return ret;
	}
	ret = getaddrinfo(host, port, &hints, res);
	if (ret) {
		log_error("%s: cannot resolve \"%s\": %s", who, addr, gai_strerror(ret));
		switch (ret) {
		case EAI_SYSTEM:
			return -errno;
		case EAI_MEMORY:
			return -ENOMEM;
		case EAI_AGAIN:
			return -EAGAIN;
		default:
			return -EADDRNOTAVAIL;
		}
	}
	return 0;
}

int xport_select(const char *name, const struct xport_ops **out, char *err, size_t errlen)
{
	*out = xport_find(name);
	if (*out) {
		return 0;
	}
	if (!strcmp(name, "rdma")) {
		snprintf(err, errlen,
			 "transport rdma is not built in (configure with libibverbs-dev and "
			 "librdmacm-dev installed, or -DWITH_RDMA=ON)");
	} else {
		snprintf(err, errlen, "unknown transport \"%s\" (tcp or rdma)", name);
	}
	return -ENOPROTOOPT;
}

/* --- zero-copy memory registry --- */

/*
 * Writers (register, unregister: setup time) take the lock; readers (every
 * large RDMA send) take none: a sequence count, odd while a writer changes
 * the table, tells them to read again.
 */
static struct {
	pthread_mutex_t lock;
	struct xport_mem_region r[XPORT_MEM_MAX];
	unsigned int n;
	uint64_t next_id;
	uint64_t seq; /* atomic; odd: being changed */
} xport_mem = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};

static void xport_mem_write_begin(void)
{
	pthread_mutex_lock(&xport_mem.lock);
	__atomic_add_fetch(&xport_mem.seq, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void xport_mem_write_end(void)
{
	__atomic_add_fetch(&xport_mem.seq, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&xport_mem.lock);
}

/* The fields are read and written with relaxed atomics: a reader racing a
 * writer sees values it then throws away. */
static void xport_mem_set(unsigned int i, uintptr_t addr, size_t len, uint64_t id)
{
	__atomic_store_n(&xport_mem.r[i].addr, addr, __ATOMIC_RELAXED);
	__atomic_store_n(&xport_mem.r[i].len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&xport_mem.r[i].id, id, __ATOMIC_RELAXED);
}

static void xport_mem_get(unsigned int i, struct xport_mem_region *out)
{
	out->addr = __atomic_load_n(&xport_mem.r[i].addr, __ATOMIC_RELAXED);
	out->len = __atomic_load_n(&xport_mem.r[i].len, __ATOMIC_RELAXED);
	out->id = __atomic_load_n(&xport_mem.r[i].id, __ATOMIC_RELAXED);
}

int xport_mem_register(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	int ret = 0;

	if (!addr || !len || a + len < a) {
		return -EINVAL;
	}
	xport_mem_write_begin();
	for (unsigned int i = 0; i < xport_mem.n; i++) {
		const struct xport_mem_region *r = &xport_mem.r[i];

		if (a < r->addr + r->len && r->addr < a + len) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (xport_mem.n == XPORT_MEM_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	xport_mem_set(xport_mem.n, a, len, xport_mem.next_id++);
	__atomic_store_n(&xport_mem.n, xport_mem.n + 1, __ATOMIC_RELAXED);
out:
	xport_mem_write_end();
	return ret;
}

void xport_mem_unregister(void *addr)
{
	bool found = false;

	xport_mem_write_begin();
	for (unsigned int i = 0; i < xport_mem.n; i++) {
		if (xport_mem.r[i].addr == (uintptr_t)addr) {
			const struct xport_mem_region *last = &xport_mem.r[xport_mem.n - 1];

			xport_mem_set(i, last->addr, last->len, last->id);
			__atomic_store_n(&xport_mem.n, xport_mem.n - 1, __ATOMIC_RELAXED);
			found = true;
			break;
		}
	}
	xport_mem_write_end();
	for (size_t i = 0; found && i < sizeof(xport_table) / sizeof(xport_table[0]); i++) {
		if (xport_table[i]->mem_changed) {
			xport_table[i]->mem_changed();
		}
	}
}

/* Read the table consistently: 0 and the region @match accepts, or -ENOENT. */
static int xport_mem_scan(bool (*match)(const struct xport_mem_region *r, const void *ctx),
			  const void *ctx, struct xport_mem_region *out)
{
	struct xport_mem_region r;
	uint64_t seq;
	int ret;

	do {
		while ((seq = __atomic_load_n(&xport_mem.seq, __ATOMIC_ACQUIRE)) & 1) {
			__builtin_ia32_pause();
		}
		ret = -ENOENT;
		for (unsigned int i = 0, n = __atomic_load_n(&xport_mem.n, __ATOMIC_RELAXED);
		     i < n && i < XPORT_MEM_MAX; i++) {
			xport_mem_get(i, &r);
			if (match(&r, ctx)) {
				*out = r;
				ret = 0;
				break;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&xport_mem.seq, __ATOMIC_RELAXED) != seq);
	return ret;
}

struct xport_mem_range {
	uintptr_t addr;
	size_t len;
};

static bool xport_mem_holds(const struct xport_mem_region *r, const void *ctx)
{
	const struct xport_mem_range *q = ctx;

	return q->addr >= r->addr && q->len <= r->len && q->addr - r->addr <= r->len - q->len;
}

static bool xport_mem_is(const struct xport_mem_region *r, const void *ctx)
{
	return r->id == *(const uint64_t *)ctx;
}

int xport_mem_find(const void *addr, size_t len, struct xport_mem_region *out)
{
	struct xport_mem_range q = {(uintptr_t)addr, len};

	return xport_mem_scan(xport_mem_holds, &q, out);
}

bool xport_mem_live(uint64_t id)
{
	struct xport_mem_region r;

	return !xport_mem_scan(xport_mem_is, &id, &r);
}

uint64_t xport_mem_gen(void)
{
	return __atomic_load_n(&xport_mem.seq, __ATOMIC_ACQUIRE);
}

void xport_stats_log(void)
{
	for (size_t i = 0; i < sizeof(xport_table) / sizeof(xport_table[0]); i++) {
		const struct xport_stats *st = xport_table[i]->stats;
		uint64_t v[7];

		v[0] = __atomic_load_n(&st->conns, __ATOMIC_RELAXED);
		v[1] = __atomic_load_n(&st->bytes_in, __ATOMIC_RELAXED);
		v[2] = __atomic_load_n(&st->msgs_in, __ATOMIC_RELAXED);
		v[3] = __atomic_load_n(&st->bytes_out, __ATOMIC_RELAXED);
		v[4] = __atomic_load_n(&st->msgs_out, __ATOMIC_RELAXED);
		v[5] = __atomic_load_n(&st->rdma_read_bytes, __ATOMIC_RELAXED);
		v[6] = __atomic_load_n(&st->zero_copy_bytes, __ATOMIC_RELAXED);
		if (!v[0] && !v[1] && !v[3]) {
			continue;
		}
		log_info("transport %s: conns %llu, in %llu bytes / %llu msgs, out %llu bytes / "
			 "%llu msgs, rdma_read %llu bytes, zero_copy %llu bytes",
			 xport_table[i]->name, (unsigned long long)v[0], (unsigned long long)v[1],
			 (unsigned long long)v[2], (unsigned long long)v[3],
			 (unsigned long long)v[4], (unsigned long long)v[5],
			 (unsigned long long)v[6]);
	}
}

/* SPDX-License-Identifier: Apache-2.0 */
#include "xport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
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

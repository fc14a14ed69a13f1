/* SPDX-License-Identifier: Apache-2.0 */
#include "xport.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct xport_ops *const xport_table[] = {
	&xport_tcp_ops,
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

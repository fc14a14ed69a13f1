/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_space: thin-provisioning accounting (provisioned vs allocated bytes
 * per pool and cluster) and the full state of pools. See mg_space.c.
 */
#ifndef KEEL_MGMT_MG_SPACE_H
#define KEEL_MGMT_MG_SPACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mgmt/mg_cluster.h"

struct mg_space {
	uint32_t volumes;
	uint64_t provisioned;  /* sum of the volumes' sizes */
	uint64_t allocated;    /* logical bytes stored (volumes and snapshots) */
	uint64_t snapshots;    /* of which in read-only layers */
	uint64_t deleting;     /* raw bytes of deleted layers not freed yet */
	uint64_t raw_capacity; /* object space of the servers holding its PGs */
	uint64_t raw_used;
	uint64_t usable; /* raw_capacity / replicas */
};

/* Percent of @s's object space in use, rounded up (0: capacity unknown). */
unsigned int mg_server_fill_percent(const struct mg_server *s);

/* Fill @pools (c->npools entries, in c->pools order) and @total.
 * 0, -ENOMEM or a store error. */
int mg_space_collect(struct mg_cluster *c, struct mg_space *pools, struct mg_space *total);
json_t *mg_space_json(const struct mg_space *s);

/* May @more bytes of volume size be provisioned in pool @pool_id (a new
 * volume, a clone, a grow)? 0, or -ENOSPC with @err when the pool has a
 * max_overcommit_pct and its volumes' sizes would pass that percent of its
 * usable space; -ENOMEM or a store error. */
int mg_space_admit(struct mg_cluster *c, uint32_t pool_id, uint64_t more, char *err,
		   size_t errlen);

/* The tick: nearfull servers and full pools; publishes a map when a pool's
 * full state changes. */
void mg_space_tick(struct mg_cluster *c);

/* Health checks of space: @add(arg, error, text) for each nearfull server
 * (error false) and full pool (error true). */
void mg_space_checks(struct mg_cluster *c, void (*add)(void *arg, bool error, const char *text),
		     void *arg);

#endif

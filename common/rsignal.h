/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rsignal: SIGTERM, SIGINT and SIGHUP as reactor events. The signals are
 * blocked for the whole process and read from a signalfd with an io_uring
 * read, so the handler runs on the reactor thread like any completion and
 * may touch anything.
 */
#ifndef KEEL_COMMON_RSIGNAL_H
#define KEEL_COMMON_RSIGNAL_H

#include <stdbool.h>
#include <sys/signalfd.h>

#include "common/reactor.h"

struct rsignal {
	struct reactor *r;
	int fd;
	struct reactor_op op;
	struct signalfd_siginfo info;
	void (*on_signal)(struct rsignal *sig, int signo);
	bool armed;
};

/* Block SIGTERM/SIGINT/SIGHUP (ignore SIGPIPE) and read them via a signalfd
 * on @r. Call before any thread starts. 0 or -errno. */
int rsignal_start(struct rsignal *sig, struct reactor *r,
		  void (*on_signal)(struct rsignal *sig, int signo));

/* Close the signalfd; a read still queued completes into nothing. @sig must
 * outlive the reactor. */
void rsignal_stop(struct rsignal *sig);

#endif

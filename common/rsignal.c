/* SPDX-License-Identifier: Apache-2.0 */
/* rsignal: see rsignal.h. */
#include "common/rsignal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static void rsignal_arm(struct rsignal *sig);

static void rsignal_done(struct reactor_op *op, int res)
{
	struct rsignal *sig = container_of(op, struct rsignal, op);

	sig->armed = false;
	if (sig->fd < 0) {
		return;
	}
	if (res == (int)sizeof(sig->info)) {
		int signo = (int)sig->info.ssi_signo;

		rsignal_arm(sig);
		sig->on_signal(sig, signo);
		return;
	}
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		log_error("signalfd read failed: %s", strerror(-res));
		return;
	}
	rsignal_arm(sig);
}

static void rsignal_arm(struct rsignal *sig)
{
	struct io_uring_sqe *sqe = reactor_sqe(sig->r);

	io_uring_prep_read(sqe, sig->fd, &sig->info, sizeof(sig->info), 0);
	reactor_sqe_set_op(sqe, &sig->op, rsignal_done);
	sig->armed = true;
}

int rsignal_start(struct rsignal *sig, struct reactor *r,
		     void (*on_signal)(struct rsignal *sig, int signo))
{
	sigset_t set;

	memset(sig, 0, sizeof(*sig));
	sig->r = r;
	sig->on_signal = on_signal;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL)) {
		return -errno;
	}
	sig->fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sig->fd < 0) {
		return -errno;
	}
	rsignal_arm(sig);
	return 0;
}

/* The read may still be queued; with fd = -1 its completion is ignored. The
 * struct must outlive the reactor (it does: main owns both). */
void rsignal_stop(struct rsignal *sig)
{
	if (sig->fd >= 0) {
		close(sig->fd);
		sig->fd = -1;
	}
}

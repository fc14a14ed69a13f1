/* SPDX-License-Identifier: Apache-2.0 */
/* TCP transport: io_uring accept/recv/sendmsg on ordinary sockets. */
#include "xport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define TCP_BACKLOG 128
/* iovecs gathered into one sendmsg: many small queued messages, one syscall. */
#define TCP_TX_IOV 64
/* After EMFILE & co. the pending connection stays queued: retrying at once would spin. */
#define TCP_ACCEPT_BACKOFF_NS (100 * 1000 * 1000ull)
#define TCP_ADDR_LEN	      (INET6_ADDRSTRLEN + 8)

enum tcp_conn_state {
	TCP_CONN_IDLE,	  /* connected or accepted, not yet started */
	TCP_CONN_OPEN,	  /* receiving */
	TCP_CONN_CLOSING, /* close() called, waiting for in-flight SQEs */
	TCP_CONN_CLOSED,  /* finish queued: only on_close is left */
};

struct tcp_conn {
	struct xport_conn base;
	enum tcp_conn_state state;
	int fd;
	int close_err;
	/* In-flight SQEs plus a queued tx flush: the conn is freed at zero. */
	unsigned int refs;
	const struct xport_conn_cbs *cbs;

	uint8_t *rx_buf;
	size_t rx_size;
	size_t rx_start, rx_end; /* unconsumed bytes are rx_buf[rx_start..rx_end) */
	struct reactor_op recv_op;

	/* Queued sends, oldest first; the head may be partly sent. */
	struct xport_send *tx_head;
	struct xport_send **tx_tail;
	bool tx_armed;	  /* a sendmsg is in flight */
	bool tx_deferred; /* tx_defer is queued */
	struct msghdr tx_msg;
	struct iovec tx_iov[TCP_TX_IOV];
	struct reactor_op send_op;
	struct reactor_defer tx_defer;
	/* An injected delay (xport_send.delay_ms) holds output until
	 * tx_hold_until_ns; the armed timer owns a reference. */
	bool tx_holding;
	uint64_t tx_hold_until_ns;
	struct reactor_timer tx_hold;

	struct reactor_defer close_defer;
	char peer[TCP_ADDR_LEN];
};

struct tcp_listener {
	struct xport_listener base;
	int fd;
	bool closing;
	unsigned int refs; /* in-flight SQEs */
	bool accept_armed;
	bool backoff_armed;
	void (*cb)(struct xport_listener *l, struct xport_conn *c, void *arg);
	void *arg;
	struct sockaddr_storage peer_addr;
	socklen_t peer_len;
	struct reactor_op accept_op;
	struct reactor_op backoff_op;
	struct reactor_op cancel_op;
	struct __kernel_timespec backoff_ts;
	char addr[TCP_ADDR_LEN];
};

static struct xport_stats tcp_stats;
static void tcp_close(struct xport_conn *xc, int err);
static void tcp_recv_arm(struct tcp_conn *c);
static void tcp_send_done(struct reactor_op *op, int res);

static struct tcp_conn *tcp_conn(const struct xport_conn *xc)
{
	return container_of(xc, struct tcp_conn, base);
}

static struct tcp_conn *tcp_conn_new(struct reactor *r, int fd, const struct sockaddr *peer)
{
	struct tcp_conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (!c) {
		return NULL;
	}
	/* Requests and replies are small writes that must not wait for Nagle. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		log_warn("tcp: TCP_NODELAY: %s", strerror(errno));
	}
	c->base.ops = &xport_tcp_ops;
	c->base.r = r;
	c->state = TCP_CONN_IDLE;
	c->fd = fd;
	c->tx_tail = &c->tx_head;
	xport_addr_text(peer, c->peer, sizeof(c->peer));
	return c;
}

/* --- listener --- */

static void tcp_listener_put(struct tcp_listener *l)
{
	if (--l->refs == 0 && l->closing) {
		close(l->fd);
		free(l);
	}
}

static void tcp_accept_arm(struct tcp_listener *l);

static void tcp_backoff_done(struct reactor_op *op, int res)
{
	struct tcp_listener *l = container_of(op, struct tcp_listener, backoff_op);

	l->backoff_armed = false;
	if (!l->closing) {
		tcp_accept_arm(l);
	}
	tcp_listener_put(l);
}

static void tcp_accept_done(struct reactor_op *op, int res)
{
	struct tcp_listener *l = container_of(op, struct tcp_listener, accept_op);
	struct io_uring_sqe *sqe;
	struct tcp_conn *c;

	l->accept_armed = false;
	if (l->closing) {
		if (res >= 0) {
			close(res);
		}
		goto out_put;
	}
	if (res >= 0) {
		c = tcp_conn_new(l->base.r, res, (struct sockaddr *)&l->peer_addr);
		if (c) {
			__atomic_fetch_add(&tcp_stats.conns, 1, __ATOMIC_RELAXED);
			l->cb(&l->base, &c->base, l->arg);
		} else {
			log_error("tcp: %s: out of memory for a connection", l->addr);
			close(res);
		}
		if (!l->closing) { /* the callback may have closed the listener */
			tcp_accept_arm(l);
		}
		goto out_put;
	}
	switch (-res) {
	case EINTR:
	case EAGAIN:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
		tcp_accept_arm(l);
		break;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		log_error("tcp: %s: accept: %s; retrying in 100 ms", l->addr, strerror(-res));
		l->backoff_armed = true;
		l->refs++;
		l->backoff_ts.tv_sec = 0;
		l->backoff_ts.tv_nsec = TCP_ACCEPT_BACKOFF_NS;
		sqe = reactor_sqe(l->base.r);
		io_uring_prep_timeout(sqe, &l->backoff_ts, 0, 0);
		reactor_sqe_set_op(sqe, &l->backoff_op, tcp_backoff_done);
		break;
	default:
		log_error("tcp: %s: accept: %s; no longer accepting", l->addr, strerror(-res));
		break;
	}
out_put:
	tcp_listener_put(l);
}

static void tcp_accept_arm(struct tcp_listener *l)
{
	struct io_uring_sqe *sqe;

	l->accept_armed = true;
	l->refs++;
	l->peer_len = sizeof(l->peer_addr);
	sqe = reactor_sqe(l->base.r);
	io_uring_prep_accept(sqe, l->fd, (struct sockaddr *)&l->peer_addr, &l->peer_len,
			     SOCK_CLOEXEC);
	reactor_sqe_set_op(sqe, &l->accept_op, tcp_accept_done);
}

static int tcp_listen(struct reactor *r, const char *addr, struct xport_listener **out)
{
	struct addrinfo *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct tcp_listener *l;
	int fd = -1, one = 1;
	int ret;

	ret = xport_resolve("tcp", addr, true, &res);
	if (ret) {
		return ret;
	}
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		if (!setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
		    !bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, TCP_BACKLOG)) {
			break;
		}
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("tcp: cannot listen on %s: %s", addr, strerror(-ret));
		return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		ret = -ENOMEM;
		goto out_close_fd;
	}
	l->base.ops = &xport_tcp_ops;
	l->base.r = r;
	l->fd = fd;
	/* Port 0 picks a free port: report the one the kernel chose. */
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen)) {
		ret = -errno;
		goto out_free_listener;
	}
	xport_addr_text((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
	*out = &l->base;
	return 0;

out_free_listener:
	free(l);
out_close_fd:
	close(fd);
	return ret;
}

static int tcp_accept_start(struct xport_listener *xl,
			    void (*cb)(struct xport_listener *l, struct xport_conn *c, void *arg),
			    void *arg)
{
	struct tcp_listener *l = container_of(xl, struct tcp_listener, base);

	if (l->cb) {
		return -EBUSY;
	}
	l->cb = cb;
	l->arg = arg;
	tcp_accept_arm(l);
	return 0;
}

static void tcp_cancel_done(struct reactor_op *op, int res)
{
	struct tcp_listener *l = container_of(op, struct tcp_listener, cancel_op);

	tcp_listener_put(l);
}

static void tcp_listen_close(struct xport_listener *xl)
{
	struct tcp_listener *l = container_of(xl, struct tcp_listener, base);
	struct io_uring_sqe *sqe;

	if (l->closing) {
		return;
	}
	l->closing = true;
	/* Closing the fd would not stop an accept the kernel holds a reference
	 * to: cancel it (or the backoff timer; never both in flight). */
	if (l->accept_armed || l->backoff_armed) {
		l->refs++;
		sqe = reactor_sqe(l->base.r);
		if (l->accept_armed) {
			io_uring_prep_cancel(sqe, &l->accept_op, 0);
		} else {
			io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&l->backoff_op, 0);
		}
		reactor_sqe_set_op(sqe, &l->cancel_op, tcp_cancel_done);
	}
	/* Frees now unless an SQE (or the accept callback we are called from)
	 * still holds the listener. */
	l->refs++;
	tcp_listener_put(l);
}

static const char *tcp_listen_addr(const struct xport_listener *xl)
{
	return container_of(xl, struct tcp_listener, base)->addr;
}

/* --- connection lifetime --- */

static void tcp_conn_finish(struct reactor_defer *d)
{
	struct tcp_conn *c = container_of(d, struct tcp_conn, close_defer);
	int send_err = c->close_err < 0 ? c->close_err : -ECANCELED;
	struct xport_send *s;

	while ((s = c->tx_head)) {
		c->tx_head = s->next;
		s->cb(s, send_err);
	}
	if (c->cbs) {
		c->cbs->on_close(&c->base, c->close_err);
	}
	close(c->fd);
	free(c->rx_buf);
	free(c);
}

static void tcp_conn_put(struct tcp_conn *c)
{
	kassert(c->refs > 0);
	if (--c->refs == 0 && c->state == TCP_CONN_CLOSING) {
		c->state = TCP_CONN_CLOSED;
		reactor_defer(c->base.r, &c->close_defer);
	}
}

static void tcp_close(struct xport_conn *xc, int err)
{
	struct tcp_conn *c = tcp_conn(xc);

	if (c->state >= TCP_CONN_CLOSING) {
		return;
	}
	log_debug("tcp: %s: closing (%s)", c->peer, err ? strerror(-err) : "no error");
	c->state = TCP_CONN_CLOSING;
	c->close_err = err;
	c->close_defer.fn = tcp_conn_finish;
	/* shutdown(2) rather than IORING_OP_ASYNC_CANCEL: a sendmsg the kernel
	 * has started cannot be cancelled and would wait for a peer that may
	 * never read again. shutdown completes the recv (0) and the send
	 * (-EPIPE) at once, and the sends' buffers are only released to their
	 * owners after those completions. */
	shutdown(c->fd, SHUT_RDWR);
	c->refs++;
	tcp_conn_put(c);
}

/* --- receive --- */

static void tcp_recv_done(struct reactor_op *op, int res)
{
	struct tcp_conn *c = container_of(op, struct tcp_conn, recv_op);
	size_t len;
	ssize_t n;

	if (c->state != TCP_CONN_OPEN) {
		goto out_put;
	}
	if (res <= 0) {
		if (res == -EINTR || res == -EAGAIN) {
			tcp_recv_arm(c);
		} else {
			tcp_close(&c->base, res);
		}
		goto out_put;
	}
	c->base.bytes_in += (uint64_t)res;
	__atomic_fetch_add(&tcp_stats.bytes_in, (uint64_t)res, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tcp_stats.msgs_in, 1, __ATOMIC_RELAXED);
	c->rx_end += (size_t)res;
	len = c->rx_end - c->rx_start;
	n = c->cbs->on_recv(&c->base, c->rx_buf + c->rx_start, len);
	if (n < 0) {
		tcp_close(&c->base, (int)n);
		goto out_put;
	}
	kassert((size_t)n <= len);
	if (c->state != TCP_CONN_OPEN) {
		goto out_put; /* on_recv closed it */
	}
	if (n == 0 && len == c->rx_size) {
		log_error("tcp: %s: message larger than the %zu-byte receive buffer", c->peer,
			  c->rx_size);
		tcp_close(&c->base, -EMSGSIZE);
		goto out_put;
	}
	c->rx_start += (size_t)n;
	tcp_recv_arm(c);
out_put:
	tcp_conn_put(c);
}

static void tcp_recv_arm(struct tcp_conn *c)
{
	struct io_uring_sqe *sqe;
	size_t len = c->rx_end - c->rx_start;

	if (!len) {
		c->rx_start = c->rx_end = 0;
	} else if (c->rx_size - c->rx_end < c->rx_size / 2) {
		/* Compact only when the free tail is small: the partial message
		 * moves at most once per half buffer, and recvs stay large. */
		memmove(c->rx_buf, c->rx_buf + c->rx_start, len);
		c->rx_start = 0;
		c->rx_end = len;
	}
	c->refs++;
	sqe = reactor_sqe(c->base.r);
	io_uring_prep_recv(sqe, c->fd, c->rx_buf + c->rx_end, c->rx_size - c->rx_end, 0);
	reactor_sqe_set_op(sqe, &c->recv_op, tcp_recv_done);
}

static int tcp_start(struct xport_conn *xc, const struct xport_conn_cbs *cbs, size_t rx_size,
		     void *arg)
{
	struct tcp_conn *c = tcp_conn(xc);

	if (c->state != TCP_CONN_IDLE) {
		return c->state == TCP_CONN_OPEN ? -EALREADY : -EPIPE;
	}
	if (!rx_size || !cbs || !cbs->on_recv || !cbs->on_close) {
		return -EINVAL;
	}
	c->rx_buf = malloc(rx_size);
	if (!c->rx_buf) {
		return -ENOMEM;
	}
	c->rx_size = rx_size;
	c->cbs = cbs;
	c->base.arg = arg;
	c->state = TCP_CONN_OPEN;
	tcp_recv_arm(c);
	return 0;
}

/* --- send --- */

static void tcp_send_arm(struct tcp_conn *c)
{
	struct io_uring_sqe *sqe;
	unsigned int n = 0;

	for (struct xport_send *s = c->tx_head; s && n < TCP_TX_IOV; s = s->next) {
		size_t skip = s->done;

		for (int i = 0; i < s->iovcnt && n < TCP_TX_IOV; i++) {
			if (skip >= s->iov[i].iov_len) {
				skip -= s->iov[i].iov_len;
				continue;
			}
			c->tx_iov[n].iov_base = (uint8_t *)s->iov[i].iov_base + skip;
			c->tx_iov[n].iov_len = s->iov[i].iov_len - skip;
			skip = 0;
			n++;
		}
	}
	kassert(n > 0);
	memset(&c->tx_msg, 0, sizeof(c->tx_msg));
	c->tx_msg.msg_iov = c->tx_iov;
	c->tx_msg.msg_iovlen = n;
	c->tx_armed = true;
	c->refs++;
	sqe = reactor_sqe(c->base.r);
	io_uring_prep_sendmsg(sqe, c->fd, &c->tx_msg, MSG_NOSIGNAL);
	reactor_sqe_set_op(sqe, &c->send_op, tcp_send_done);
}

static void tcp_send_done(struct reactor_op *op, int res)
{
	struct tcp_conn *c = container_of(op, struct tcp_conn, send_op);
	struct xport_send *s, *done = NULL, **done_tail = &done;
	size_t left = res > 0 ? (size_t)res : 0;

	if (c->state >= TCP_CONN_CLOSING) {
		c->tx_armed = false;
		goto out_put;
	}
	if (res <= 0) {
		c->tx_armed = false;
		if (res == -EINTR || res == -EAGAIN) {
			tcp_send_arm(c);
		} else {
			tcp_close(&c->base, res ? res : -EPIPE);
		}
		goto out_put;
	}
	c->base.bytes_out += left;
	__atomic_fetch_add(&tcp_stats.bytes_out, left, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tcp_stats.msgs_out, 1, __ATOMIC_RELAXED);
	/* A short count (partial send) leaves the head partly done; the next
	 * tcp_send_arm() starts from its done offset. */
	while (left) {
		size_t take;

		s = c->tx_head;
		kassert(s);
		take = s->total - s->done < left ? s->total - s->done : left;
		s->done += take;
		left -= take;
		if (s->done < s->total) {
			break;
		}
		c->tx_head = s->next;
		if (!c->tx_head) {
			c->tx_tail = &c->tx_head;
		}
		s->next = NULL;
		*done_tail = s;
		done_tail = &s->next;
	}
	/* tx_armed stays set while the callbacks run, so sends they queue wait
	 * for the single sendmsg below instead of each scheduling a flush. */
	while ((s = done)) {
		done = s->next;
		s->cb(s, 0);
	}
	c->tx_armed = false;
	if (c->state <= TCP_CONN_OPEN && c->tx_head && !c->tx_holding) {
		tcp_send_arm(c);
	}
out_put:
	tcp_conn_put(c);
}

static void tcp_tx_flush(struct reactor_defer *d)
{
	struct tcp_conn *c = container_of(d, struct tcp_conn, tx_defer);

	c->tx_deferred = false;
	if (c->state <= TCP_CONN_OPEN && !c->tx_armed && c->tx_head && !c->tx_holding) {
		tcp_send_arm(c);
	}
	tcp_conn_put(c);
}

static void tcp_tx_hold_done(struct reactor_timer *t)
{
	struct tcp_conn *c = container_of(t, struct tcp_conn, tx_hold);
	uint64_t now = reactor_now_ns();

	if (c->state <= TCP_CONN_OPEN && now < c->tx_hold_until_ns) {
		/* extended by a later delayed send: the reference stays */
		reactor_timer_start(c->base.r, &c->tx_hold, c->tx_hold_until_ns - now,
				    tcp_tx_hold_done);
		return;
	}
	c->tx_holding = false;
	if (c->state <= TCP_CONN_OPEN && !c->tx_armed && c->tx_head) {
		tcp_send_arm(c);
	}
	tcp_conn_put(c);
}

static void tcp_tx_hold(struct tcp_conn *c, uint32_t delay_ms)
{
	uint64_t ns = (uint64_t)delay_ms * 1000000ull;
	uint64_t until = reactor_now_ns() + ns;

	if (until > c->tx_hold_until_ns) {
		c->tx_hold_until_ns = until;
	}
	if (c->tx_holding) {
		return;
	}
	c->tx_holding = true;
	c->refs++;
	reactor_timer_start(c->base.r, &c->tx_hold, ns, tcp_tx_hold_done);
}

static int tcp_send(struct xport_conn *xc, struct xport_send *s)
{
	struct tcp_conn *c = tcp_conn(xc);
	size_t total = 0;

	if (c->state >= TCP_CONN_CLOSING) {
		return -EPIPE;
	}
	if (s->iovcnt < 1 || s->iovcnt > XPORT_MAX_IOV || !s->cb) {
		return -EINVAL;
	}
	for (int i = 0; i < s->iovcnt; i++) {
		total += s->iov[i].iov_len;
	}
	if (!total) {
		return -EINVAL;
	}
	s->done = 0;
	s->total = total;
	s->next = NULL;
	*c->tx_tail = s;
	c->tx_tail = &s->next;
	if (s->delay_ms) {
		tcp_tx_hold(c, s->delay_ms);
	}
	/* Flush on the next loop turn: every send queued this turn goes out in
	 * one sendmsg. */
	if (!c->tx_armed && !c->tx_deferred) {
		c->tx_deferred = true;
		c->refs++;
		c->tx_defer.fn = tcp_tx_flush;
		reactor_defer(c->base.r, &c->tx_defer);
	}
	return 0;
}

/* --- connect and the ops table --- */

/*
 * connect(2) with a bound: the caller's reactor thread waits for the TCP
 * handshake, and a peer behind a dead link would otherwise hold it for the
 * kernel's SYN retry time (minutes), freezing every other connection and
 * timer on that thread (a healthy server would miss its heartbeats).
 */
static int tcp_connect_fd(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	socklen_t elen = sizeof(int);
	int flags, err = 0, n;

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		return -errno;
	}
	if (connect(fd, sa, len) && errno != EINPROGRESS) {
		return -errno;
	}
	do {
		n = poll(&pfd, 1, XPORT_TCP_CONNECT_TIMEOUT_MS);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return -errno;
	}
	if (!n) {
		return -ETIMEDOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
		return -errno;
	}
	if (err) {
		return -err;
	}
	/* The connection is driven by io_uring from here: blocking mode keeps
	 * the plain-syscall fallbacks simple. */
	if (fcntl(fd, F_SETFL, flags) < 0) {
		return -errno;
	}
	return 0;
}

static int tcp_connect(struct reactor *r, const char *addr, struct xport_conn **out)
{
	struct addrinfo *res, *ai;
	struct tcp_conn *c;
	int fd = -1;
	int ret;

	ret = xport_resolve("tcp", addr, false, &res);
	if (ret) {
		return ret;
	}
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = tcp_connect_fd(fd, ai->ai_addr, ai->ai_addrlen);
		if (!ret) {
			break;
		}
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		freeaddrinfo(res);
		/* the caller reports it (once per outage, not per retry) */
		log_debug("tcp: cannot connect to %s: %s", addr, strerror(-ret));
		return ret;
	}
	c = tcp_conn_new(r, fd, ai->ai_addr);
	freeaddrinfo(res);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	__atomic_fetch_add(&tcp_stats.conns, 1, __ATOMIC_RELAXED);
	*out = &c->base;
	return 0;
}

static const char *tcp_peer(const struct xport_conn *xc)
{
	return tcp_conn(xc)->peer;
}

const struct xport_ops xport_tcp_ops = {
	.name = "tcp",
	.listen = tcp_listen,
	.accept_start = tcp_accept_start,
	.listen_close = tcp_listen_close,
	.listen_addr = tcp_listen_addr,
	.connect = tcp_connect,
	.start = tcp_start,
	.send = tcp_send,
	.close = tcp_close,
	.peer = tcp_peer,
	.stats = &tcp_stats,
};

/* conn_tcp.c - the TCP transport: resolve, connect within one deadline,
 * non-blocking reads and writes that wait with poll() until a deadline. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <idn2.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static ssize_t tcp_read(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *e)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			err_set(e, ERR_TEMP, err_code_from_errno(errno), "reading from %s: %s", c->peer,
				strerror(errno));
			return -1;
		}
		if (conn_wait_fd(c, c->fd, POLLIN, deadline_ms, e) < 0)
			return -1;
	}
}

static ssize_t tcp_write(struct conn *c, const void *buf, size_t len, int64_t deadline_ms,
			 struct err *e)
{
	for (;;) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			err_set(e, ERR_TEMP, err_code_from_errno(errno), "writing to %s: %s", c->peer,
				strerror(errno));
			return -1;
		}
		if (conn_wait_fd(c, c->fd, POLLOUT, deadline_ms, e) < 0)
			return -1;
	}
}

static void tcp_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static const struct conn_ops tcp_ops = {
	.read = tcp_read,
	.write = tcp_write,
	.pending = NULL,
	.close = tcp_close,
};

static void addr_text(const struct sockaddr *sa, socklen_t len, char *buf, size_t bufsz)
{
	char h[NI_MAXHOST];
	if (getnameinfo(sa, len, h, sizeof h, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(h, sizeof h, "?");
	snprintf(buf, bufsz, "%s", h);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return in6->sin6_addr.s6_addr[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

/* Bind the socket to the LocalHost / LocalPort the user asked for.
 * Errors: ERR_CONFIG for a bad address, ERR_OS for bind failures. */
static int bind_source(int fd, int family, const struct tcp_opts *o, struct err *e)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[16];
	snprintf(port, sizeof port, "%d", o->source_port);
	int r = getaddrinfo(o->source && *o->source ? o->source : NULL, port, &hints, &res);
	if (r != 0) {
		err_set(e, ERR_CONFIG, 10049, "source address %s: %s", o->source ? o->source : "",
			gai_strerror(r));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
		err_set(e, ERR_OS, err_code_from_errno(errno), "cannot bind to source address %s port %d: %s",
			o->source ? o->source : "*", o->source_port, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return 0;
}

/* One non-blocking connect attempt, bounded by deadline_ms.
 * Returns the fd, or -1 with e set. */
static int try_connect(const struct addrinfo *ai, const struct tcp_opts *o, int64_t deadline_ms,
		       const char *shown, struct err *e)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		err_set(e, ERR_OS, err_code_from_errno(errno), "socket: %s", strerror(errno));
		return -1;
	}
	if ((o->source && *o->source) || o->source_port) {
		if (bind_source(fd, ai->ai_family, o, e) < 0) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		int en = errno;
		err_set(e, ERR_TEMP, err_code_from_errno(en), "cannot connect to %s: %s", shown,
			strerror(en));
		close(fd);
		return -1;
	}
	for (;;) {
		int ms = -1;
		if (deadline_ms) {
			int64_t left = deadline_ms - conn_now_ms();
			if (left <= 0) {
				err_set(e, ERR_TEMP, SEED_TIMEOUT, "connecting to %s timed out after %ld s",
					shown, o->connect_timeout_s);
				close(fd);
				return -1;
			}
			ms = (int)(left > 3600000 ? 3600000 : left);
		}
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0)
			break;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		err_set(e, ERR_TEMP, err_code_from_errno(soerr), "cannot connect to %s: %s", shown,
			strerror(soerr));
		close(fd);
		return -1;
	}
	return fd;
}

int conn_tcp_open(struct conn *c, const struct tcp_opts *o, struct err *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char port[16], *ahost = NULL;
	const char *host = o->host;
	size_t hl = strlen(host);

	/* "[::1]" is how an IPv6 literal is written next to a port. */
	char lit[INET6_ADDRSTRLEN + 2];
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof lit) {
		memcpy(lit, host + 1, hl - 2);
		lit[hl - 2] = '\0';
		host = lit;
	}
	/* Internationalised host names are looked up by their A-label. */
	for (const char *p = host; *p; p++) {
		if ((unsigned char)*p >= 0x80) {
			int r = idn2_to_ascii_8z(host, &ahost, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
			if (r != IDN2_OK) {
				err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "host name %s is not a valid IDN: %s",
					host, idn2_strerror(r));
				return -1;
			}
			host = ahost;
			break;
		}
	}

	snprintf(port, sizeof port, "%d", o->port);
	int r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		if (r == EAI_AGAIN)
			err_set(e, ERR_TEMP, 11002, "cannot resolve %s right now (temporary DNS failure)",
				o->host);
		else if (r == EAI_SYSTEM)
			err_set(e, ERR_OS, err_code_from_errno(errno), "resolving %s: %s", o->host,
				strerror(errno));
		else
			err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "unknown host %s: %s", o->host,
				gai_strerror(r));
		free(ahost);
		return -1;
	}

	/* One deadline for all addresses: a host with many dead addresses
	 * must not take N times the timeout. */
	long cto = o->connect_timeout_s ? o->connect_timeout_s : o->timeout_s;
	int64_t deadline = cto > 0 ? conn_now_ms() + (int64_t)cto * 1000 : 0;
	int fd = -1;
	bool loopback = false;
	char addr[NI_MAXHOST], shown[sizeof c->peer];
	for (ai = res; ai; ai = ai->ai_next) {
		addr_text(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr);
		snprintf(shown, sizeof shown, "%.200s [%.64s]:%d", o->host, addr, o->port);
		fd = try_connect(ai, o, deadline, shown, e);
		if (fd >= 0) {
			loopback = is_loopback(ai->ai_addr);
			break;
		}
		if (e->cls != ERR_TEMP)
			break;
	}
	freeaddrinfo(res);
	free(ahost);
	if (fd < 0)
		return -1;

	if (o->nodelay) {
		/* Commands are small and already batched in our own buffer:
		 * Nagle would only add a round trip of delay. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	conn_init(c, &tcp_ops, NULL, fd, o->timeout_s);
	c->loopback = loopback;
	snprintf(c->peer, sizeof c->peer, "%s", shown);
	return 0;
}

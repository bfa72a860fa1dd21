/* conn_tcp.c - the TCP transport: resolve, race the addresses (Happy
 * Eyeballs) within one deadline, set the socket options, and non-blocking
 * reads and writes that wait with poll() until a deadline. */
#include "conn.h"

#include <ctype.h>
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

#include "conn_proxy.h"
#include "log.h"
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

/* ---- the local end: LocalHost / LocalPort ---- */

/* The address to bind to, one per family: an attempt binds to the one of
 * its own family, and a family the source lacks is not tried at all. */
struct source {
	bool bind;
	struct sockaddr_storage v4, v6;
	socklen_t v4len, v6len; /* 0: no address of that family */
};

/* Resolve LocalHost / LocalPort once for all attempts.
 * Errors: ERR_CONFIG for an address that does not resolve. */
static int prepare_source(const struct tcp_opts *o, struct source *src, struct err *e)
{
	bool named = o->source && *o->source;
	memset(src, 0, sizeof *src);
	if (!named && !o->source_port)
		return 0;

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[16];
	snprintf(port, sizeof port, "%d", o->source_port);
	int r = getaddrinfo(named ? o->source : NULL, port, &hints, &res);
	if (r != 0) {
		err_set(e, ERR_CONFIG, 10049, "source address %s: %s", named ? o->source : "",
			gai_strerror(r));
		return -1;
	}
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && !src->v4len) {
			memcpy(&src->v4, ai->ai_addr, ai->ai_addrlen);
			src->v4len = ai->ai_addrlen;
		} else if (ai->ai_family == AF_INET6 && !src->v6len) {
			memcpy(&src->v6, ai->ai_addr, ai->ai_addrlen);
			src->v6len = ai->ai_addrlen;
		}
	}
	freeaddrinfo(res);
	src->bind = true;
	return 0;
}

/* Bind an attempt's socket to the source address of its family.
 * Errors: ERR_OS. */
static int bind_source(int fd, int family, const struct source *src, const struct tcp_opts *o,
		       struct err *e)
{
	const struct sockaddr_storage *sa = family == AF_INET ? &src->v4 : &src->v6;
	socklen_t len = family == AF_INET ? src->v4len : src->v6len;
	int one = 1;
	/* a fixed source port must be reusable by the attempts raced in
	 * parallel and by the next run while this one is in TIME_WAIT */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)sa, len) < 0) {
		err_set(e, ERR_OS, err_code_from_errno(errno), "cannot bind to source address %s port %d: %s",
			o->source && *o->source ? o->source : "*", o->source_port, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the race between the server's addresses ---- */

/* RFC 8305's recommended Connection Attempt Delay. */
#define ATTEMPT_DELAY_MS 250

enum cand_state { CAND_WAITING, CAND_RUNNING, CAND_FAILED, CAND_TIMEDOUT };

/* One address of the server and what became of the attempt on it. */
struct cand {
	const struct addrinfo *ai;
	enum cand_state state;
	int fd;
	int errnum;             /* CAND_FAILED: why */
	char addr[NI_MAXHOST];  /* numeric */
	char name[NI_MAXHOST + 2]; /* the same, in brackets for IPv6: for messages */
};

/* strerror() in lower case, to sit inside a sentence. */
static const char *why(int errnum, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s", strerror(errnum));
	buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4" : "IPv6";
}

/* The addresses to try, in order: those of the families UseIPv6 and the
 * source address allow; with both families, alternating and starting
 * with IPv6, so that a broken family costs one attempt delay and not a
 * timeout per address.  Returns a new array of *n candidates, or NULL
 * with e set.  Errors: ERR_NOHOST when no address is left. */
static struct cand *candidates(const struct addrinfo *res, const struct tcp_opts *o,
			       const struct source *src, const char *what, const char *host,
			       size_t *n, struct err *e)
{
	size_t total = 0, nv6 = 0, nv4 = 0;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
		total++;
	const struct addrinfo **v6 = xcalloc(total + 1, sizeof *v6);
	const struct addrinfo **v4 = xcalloc(total + 1, sizeof *v4);
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET6 && o->family != 0)
			v6[nv6++] = ai;
		else if (ai->ai_family == AF_INET && o->family != 1)
			v4[nv4++] = ai;
	}
	struct cand *v = NULL;
	if (nv6 + nv4 == 0) {
		if (o->family == 2)
			err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "no IPv4 or IPv6 address for %s%s",
				what, host);
		else
			err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "no %s address for %s%s (UseIPv6=%d)",
				family_name(o->family == 0 ? AF_INET : AF_INET6), what, host, o->family);
		goto out;
	}
	if (src->bind) {
		/* a socket bound to an address of one family cannot reach
		 * the other */
		if (!src->v6len)
			nv6 = 0;
		if (!src->v4len)
			nv4 = 0;
		if (nv6 + nv4 == 0) {
			err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND,
				"no %s address for %s%s to connect to from source address %s",
				src->v4len ? "IPv4" : "IPv6", what, host, o->source);
			goto out;
		}
	}
	*n = nv6 + nv4;
	v = xcalloc(*n, sizeof *v);
	for (size_t i = 0, i6 = 0, i4 = 0; i < *n; i++) {
		bool six = i4 == nv4 || (i6 < nv6 && i6 <= i4);
		v[i].ai = six ? v6[i6++] : v4[i4++];
		v[i].fd = -1;
		addr_text(v[i].ai->ai_addr, v[i].ai->ai_addrlen, v[i].addr, sizeof v[i].addr);
		snprintf(v[i].name, sizeof v[i].name, six ? "[%s]" : "%s", v[i].addr);
	}
out:
	free(v6);
	free(v4);
	return v;
}

/* Start connecting k.  Returns 1 when connected at once, 0 when under
 * way, -1 when it failed at once (k says why), -2 for a local fault that
 * ends the whole connect (e set: ERR_OS). */
static int start_attempt(struct cand *k, const struct source *src, const struct tcp_opts *o,
			 struct err *e)
{
	const struct addrinfo *ai = k->ai;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		if (errno == EAFNOSUPPORT) {
			/* a kernel without IPv6: the other family may do */
			k->state = CAND_FAILED;
			k->errnum = errno;
			return -1;
		}
		err_set(e, ERR_OS, err_code_from_errno(errno), "socket: %s", strerror(errno));
		return -2;
	}
	if (src->bind && bind_source(fd, ai->ai_family, src, o, e) < 0) {
		close(fd);
		return -2;
	}
	k->fd = fd;
	k->state = CAND_RUNNING;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 1;
	if (errno == EINPROGRESS || errno == EINTR)
		return 0;
	k->errnum = errno;
	k->state = CAND_FAILED;
	k->fd = -1;
	close(fd);
	return -1;
}

/* How long poll() may sleep: until the deadline or the next attempt is
 * due, whichever comes first (0 for either: none). */
static int poll_ms(int64_t now, int64_t deadline, int64_t next_at)
{
	int64_t until = deadline;
	if (next_at && (!until || next_at < until))
		until = next_at;
	if (!until)
		return -1;
	int64_t left = until - now;
	return left <= 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

/* Of the running attempts polled in pf, the first that connected, or -1;
 * the ones that failed are closed and recorded.  *failed is set when any
 * failed. */
static int reap(struct cand *v, const struct pollfd *pf, const size_t *who, size_t np,
		size_t *running, bool *failed)
{
	for (size_t j = 0; j < np; j++) {
		if (!pf[j].revents)
			continue;
		struct cand *k = &v[who[j]];
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (!soerr)
			return (int)who[j];
		close(k->fd);
		k->fd = -1;
		k->state = CAND_FAILED;
		k->errnum = soerr;
		(*running)--;
		*failed = true;
		char b[128];
		log_info("%s: %s", k->name, why(soerr, b, sizeof b));
	}
	return -1;
}

/* Race the candidates (RFC 8305 in spirit): start one, then the next as
 * soon as one fails or ATTEMPT_DELAY_MS pass without a connection,
 * keeping the earlier ones running; the first to connect wins and the
 * others are closed, all within deadline_ms.  Returns the winner's
 * index, -1 when every attempt failed or timed out (the candidates say
 * why), -2 with e set for a local fault (ERR_OS). */
static int race(struct cand *v, size_t n, const struct source *src, const struct tcp_opts *o,
		int64_t deadline, struct err *e)
{
	struct pollfd *pf = xcalloc(n, sizeof *pf);
	size_t *who = xcalloc(n, sizeof *who);
	size_t next = 0, running = 0;
	int64_t next_at = 0;
	int winner = -1;

	for (;;) {
		int64_t now = conn_now_ms();
		while (winner == -1 && next < n && (running == 0 || now >= next_at)) {
			if (n > 1)
				log_info("trying %s", v[next].name);
			int r = start_attempt(&v[next], src, o, e);
			if (r == 1) {
				winner = (int)next;
			} else if (r == -2) {
				winner = -2;
			} else if (r == 0) {
				running++;
				next_at = now + ATTEMPT_DELAY_MS;
			} else {
				/* failed at once: the next one starts at once too */
				char b[128];
				log_info("%s: %s", v[next].name, why(v[next].errnum, b, sizeof b));
				next_at = now;
			}
			next++;
		}
		if (winner != -1 || running == 0 || (deadline && now >= deadline))
			break;

		size_t np = 0;
		for (size_t i = 0; i < next; i++) {
			if (v[i].state == CAND_RUNNING) {
				pf[np] = (struct pollfd){ .fd = v[i].fd, .events = POLLOUT };
				who[np++] = i;
			}
		}
		int r = poll(pf, np, poll_ms(now, deadline, next < n ? next_at : 0));
		if (r < 0 && errno != EINTR) {
			err_set(e, ERR_OS, err_code_from_errno(errno), "poll: %s", strerror(errno));
			winner = -2;
			break;
		}
		bool failed = false;
		if (r > 0)
			winner = reap(v, pf, who, np, &running, &failed);
		if (failed)
			next_at = conn_now_ms(); /* a failure starts the next attempt at once */
	}

	/* the losers, and whatever was still under way at the deadline */
	for (size_t i = 0; i < next; i++) {
		if ((int)i != winner && v[i].state == CAND_RUNNING) {
			close(v[i].fd);
			v[i].fd = -1;
			v[i].state = CAND_TIMEDOUT;
		}
	}
	free(pf);
	free(who);
	return winner;
}

/* Say what became of every attempt: "cannot connect to HOST port 25:
 * [::1]: connection refused; 127.0.0.1: timed out (no connection within
 * 30 s)".  ERR_TEMP, with 201 when an attempt timed out, else the first
 * failure's socket error code. */
static void race_error(const struct cand *v, size_t n, const char *what, const char *host, int port,
		       long cto, int64_t deadline, const struct tcp_opts *o, struct err *e)
{
	struct strbuf sb = STRBUF_INIT;
	int code = 0;
	size_t untried = 0;
	bool timedout = false;

	for (size_t i = 0; i < n; i++) {
		const struct cand *k = &v[i];
		if (k->state == CAND_WAITING) {
			untried++;
			continue;
		}
		char b[128];
		sb_addf(&sb, "%s%s: %s", sb.len ? "; " : "", k->name,
			k->state == CAND_TIMEDOUT ? "timed out" : why(k->errnum, b, sizeof b));
		if (k->state == CAND_TIMEDOUT) {
			timedout = true;
			code = SEED_TIMEOUT;
		} else if (!code) {
			code = err_code_from_errno(k->errnum);
		}
	}
	if (untried)
		sb_addf(&sb, "; %zu more address%s not tried", untried, untried > 1 ? "es" : "");

	if (timedout && deadline && deadline == o->abs_deadline_ms)
		conn_abs_timeout_err(e, o->timeout_s, "connecting to %s%s port %d: %s", what, host, port,
				     sb.s);
	else if (timedout)
		err_set(e, ERR_TEMP, code, "cannot connect to %s%s port %d: %s (no connection within %ld s)",
			what, host, port, sb.s, cto);
	else
		err_set(e, ERR_TEMP, code, "cannot connect to %s%s port %d: %s", what, host, port, sb.s);
	sb_free(&sb);
}

/* ---- after the connect ---- */

/* Set an int socket option; one the system refuses is not worth failing
 * a delivery over, but is worth a word. */
static void set_int_option(int fd, int level, int name, int value, const char *what)
{
	if (setsockopt(fd, level, name, &value, sizeof value) < 0)
		log_warn("cannot set %s to %d: %s", what, value, strerror(errno));
}

/* Seconds from milliseconds, rounded up, within what Linux accepts. */
static int ms_to_s(long ms)
{
	long s = (ms + 999) / 1000;
	return s > 32767 ? 32767 : (int)s;
}

/* TCP_NODELAY, keep-alive and linger as configured; the system's
 * defaults for what is not. */
static void set_socket_options(int fd, const struct tcp_opts *o)
{
	if (o->nodelay) {
		/* Commands are small and already batched in our own buffer:
		 * Nagle would only add a round trip of delay. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (o->keepalive) {
		set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
#ifdef TCP_KEEPIDLE
		if (o->keepalive_time_ms)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, ms_to_s(o->keepalive_time_ms),
				       "TCP_KEEPIDLE");
		if (o->keepalive_interval_ms)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL,
				       ms_to_s(o->keepalive_interval_ms), "TCP_KEEPINTVL");
		if (o->keepalive_count)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)o->keepalive_count,
				       "TCP_KEEPCNT");
#endif
	}
	if (!o->linger || o->linger_time_s > 0) {
		/* Linger=false: close with a reset, dropping whatever is
		 * unsent; LingerTime: let close() wait that long for it */
		struct linger l = { .l_onoff = 1, .l_linger = o->linger ? (int)o->linger_time_s : 0 };
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0)
			log_warn("cannot set SO_LINGER: %s", strerror(errno));
	}
}

/* "[::1]" is how an IPv6 literal is written next to a port; an
 * internationalised name is looked up by its A-label (*ahost, to free).
 * Returns the name to resolve, or NULL with e set (ERR_NOHOST). */
static const char *lookup_name(const char *host, char *lit, size_t litsz, char **ahost,
			       struct err *e)
{
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < litsz) {
		memcpy(lit, host + 1, hl - 2);
		lit[hl - 2] = '\0';
		host = lit;
	}
	for (const char *p = host; *p; p++) {
		if ((unsigned char)*p >= 0x80) {
			int r = idn2_to_ascii_8z(host, ahost, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
			if (r != IDN2_OK) {
				err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "host name %s is not a valid IDN: %s",
					host, idn2_strerror(r));
				return NULL;
			}
			return *ahost;
		}
	}
	return host;
}

/* Resolve host:port, both families (UseIPv6 filters afterwards, so that
 * an address of the wrong family gets a clear message).  Errors:
 * ERR_TEMP (temporary DNS failure), ERR_NOHOST, ERR_OS. */
static int resolve(const char *host, int port, bool proxy, const char *shown, struct addrinfo **res,
		   struct err *e)
{
	const char *what = proxy ? "proxy host " : "host ";
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	char ports[16];
	snprintf(ports, sizeof ports, "%d", port);
	int r = getaddrinfo(host, ports, &hints, res);
	if (r == 0)
		return 0;
	if (r == EAI_AGAIN)
		err_set(e, ERR_TEMP, 11002, "cannot resolve %s%s right now (temporary DNS failure)", what,
			shown);
	else if (r == EAI_SYSTEM)
		err_set(e, ERR_OS, err_code_from_errno(errno), "resolving %s%s: %s", what, shown,
			strerror(errno));
	else
		err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "unknown %s%s: %s", what, shown,
			gai_strerror(r));
	return -1;
}

/* Resolve and race host:port as o says (family, source, deadline).
 * Returns the connected socket, or -1 with e set; *addr_out receives the
 * winner's address, *loopback whether it is this machine. */
static int connect_host(const char *host, int port, const char *what, const char *shown_host,
			const struct tcp_opts *o, int64_t deadline, long cto, char *addr_out,
			size_t addrsz, bool *loopback, struct err *e)
{
	struct addrinfo *res;
	struct source src;
	size_t n = 0;
	int fd = -1;

	if (prepare_source(o, &src, e) < 0 ||
	    resolve(host, port, o->proxy != NULL, shown_host, &res, e) < 0)
		return -1;
	struct cand *v = candidates(res, o, &src, what, shown_host, &n, e);
	if (v) {
		int w = race(v, n, &src, o, deadline, e);
		if (w == -1)
			race_error(v, n, what, shown_host, port, cto, deadline, o, e);
		if (w >= 0) {
			fd = v[w].fd;
			*loopback = is_loopback(v[w].ai->ai_addr);
			snprintf(addr_out, addrsz, "%s", v[w].addr);
		}
		free(v);
	}
	freeaddrinfo(res);
	return fd;
}

int conn_tcp_open(struct conn *c, const struct tcp_opts *o, struct err *e)
{
	char lit[INET6_ADDRSTRLEN + 2], *ahost = NULL;
	const char *host = lookup_name(o->host, lit, sizeof lit, &ahost, e);
	if (!host)
		return -1;

	/* Through a proxy the connection goes to the proxy; the mail
	 * server's name is the proxy's to reach (and, for socks4a, socks5h
	 * and http, to resolve). */
	const char *connect_host_name = host, *shown_host = o->host;
	int connect_port = o->port;
	if (o->proxy) {
		connect_host_name = o->proxy->host;
		shown_host = o->proxy->host;
		connect_port = o->proxy->port;
	}
	const char *what = o->proxy ? "proxy " : "";

	/* One deadline for all addresses: a host with many dead addresses
	 * must not take N times the timeout; and none past AbsoluteTimeout. */
	long cto = o->connect_timeout_s ? o->connect_timeout_s : o->timeout_s;
	int64_t deadline = cto > 0 ? conn_now_ms() + (int64_t)cto * 1000 : 0;
	if (o->abs_deadline_ms && (!deadline || deadline > o->abs_deadline_ms))
		deadline = o->abs_deadline_ms;
	bool loopback = false;
	char addr[NI_MAXHOST], shown[sizeof c->peer];
	int fd = connect_host(connect_host_name, connect_port, what, shown_host, o, deadline, cto, addr,
			      sizeof addr, &loopback, e);
	if (fd < 0) {
		free(ahost);
		return -1;
	}
	snprintf(shown, sizeof shown, "%s%.200s [%.64s]:%d", what, shown_host, addr, connect_port);
	set_socket_options(fd, o);
	conn_init(c, &tcp_ops, NULL, fd, o->timeout_s);
	c->abs_deadline_ms = o->abs_deadline_ms;
	c->max_rate = o->max_rate;
	c->loopback = loopback;
	snprintf(c->peer, sizeof c->peer, "%s", shown);
	if (o->proxy) {
		/* The tunnel: from here on the peer is the mail server. */
		char d[200];
		c->loopback = false; /* what is behind the proxy is not known to be local */
		/* the proxy's own connect to the server is part of connecting */
		int64_t pd = deadline ? deadline : conn_deadline(c);
		if (proxy_handshake(c, o->proxy, host, o->port, pd, e) < 0) {
			conn_close(c);
			free(ahost);
			return -1;
		}
		snprintf(c->peer, sizeof c->peer, "%.200s:%d via %s", o->host, o->port,
			 proxy_describe(o->proxy, d, sizeof d));
	}
	free(ahost);
	return 0;
}

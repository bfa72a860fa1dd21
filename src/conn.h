/* conn.h - a connection to the server: a transport behind a small ops
 * table (TCP now, TLS and proxies stacked the same way), with a bounded
 * buffered line reader, a buffered writer and deadlines.
 *
 * Protocol code never sees a file descriptor: deliver.c reads lines and
 * writes bytes through these functions, and a test can plug in its own
 * ops. */
#ifndef SMTPSEND_CONN_H
#define SMTPSEND_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"

#define CONN_RBUF_SIZE 16384
#define CONN_WBUF_SIZE 65536

struct conn;

struct conn_ops {
	/* Read up to len bytes, waiting until deadline_ms (monotonic clock;
	 * 0 = no deadline).  Returns the count, 0 at end of stream, -1 on
	 * error (ERR_TEMP for timeouts and resets). */
	ssize_t (*read)(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *e);
	/* Write up to len bytes (at least one unless an error). */
	ssize_t (*write)(struct conn *c, const void *buf, size_t len, int64_t deadline_ms,
			 struct err *e);
	/* Bytes the transport has already decoded but not handed out. */
	size_t (*pending)(struct conn *c);
	void (*close)(struct conn *c);
};

struct conn {
	const struct conn_ops *ops;
	void *ctx;              /* the transport's own state */
	int fd;                 /* the socket, for transports that need it */
	long timeout_s;         /* inactivity timeout per reply / per write */
	bool loopback;          /* the peer is this machine */
	char peer[300];           /* "host [addr]:port", for messages */

	char rbuf[CONN_RBUF_SIZE];
	char longline[1024];    /* start of a line too long for rbuf */
	size_t rstart, rend;
	char wbuf[CONN_WBUF_SIZE];
	size_t wlen;
	bool eof;

	uint64_t bytes_in, bytes_out;

	int64_t abs_deadline_ms; /* AbsoluteTimeout: nothing outlives this (0 = none) */
	long max_rate;          /* MaxTransferRate: bytes per second out, 0 = no limit */
	int64_t rate_start_ms;  /* start of the current rate window (0: none yet) */
	uint64_t rate_bytes;    /* bytes written since rate_start_ms */
};

int64_t conn_now_ms(void);

/* Initialise c around ops/ctx/fd. */
void conn_init(struct conn *c, const struct conn_ops *ops, void *ctx, int fd, long timeout_s);

/* Read one line (LF-terminated; a CR before the LF is dropped).  *line
 * points into the connection's buffer and stays valid until the next
 * read.  A line longer than the buffer is cut: *truncated is set and the
 * rest up to the LF is discarded.  deadline_ms bounds the whole line.
 * Errors: ERR_TEMP (timeout 201, connection closed 1120/162). */
int conn_read_line(struct conn *c, const char **line, size_t *len, bool *truncated,
		   int64_t deadline_ms, struct err *e);

/* Read exactly len bytes (for binary replies such as a SOCKS proxy's),
 * taking what is buffered first.  Errors: ERR_TEMP (timeout, closed). */
int conn_read_exact(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *e);

/* Bytes received but not yet consumed (buffered here or in the transport). */
size_t conn_unread(struct conn *c);

/* Buffered write; the buffer is flushed when full, and before any read
 * waits for the server.  Errors: ERR_TEMP. */
int conn_write(struct conn *c, const void *buf, size_t len, struct err *e);
/* Write out the buffer: every write of every transport passes here, so
 * this is where max_rate is enforced (in slices of 1/10 s, sleeping as
 * needed; the sleep does not count against the inactivity timeout).
 * Errors: ERR_TEMP (timeout, AbsoluteTimeout, reset). */
int conn_flush(struct conn *c, struct err *e);

/* Wait until fd is ready for events (POLLIN/POLLOUT) or deadline_ms
 * passes (0: no deadline; capped by AbsoluteTimeout), for transports.
 * Errors: ERR_TEMP (timeout, reference code 201), ERR_OS. */
int conn_wait_fd(struct conn *c, int fd, short events, int64_t deadline_ms, struct err *e);

/* Deadline for a reply starting now: Timeout from now, capped by
 * AbsoluteTimeout. */
int64_t conn_deadline(const struct conn *c);

/* deadline_ms (0: none) capped by the connection's AbsoluteTimeout. */
int64_t conn_cap_deadline(const struct conn *c, int64_t deadline_ms);

/* Has the connection's AbsoluteTimeout passed? */
bool conn_abs_expired(const struct conn *c);

/* Set e to the AbsoluteTimeout failure (ERR_TEMP, 201): "the whole run
 * exceeded Timeout (N s, AbsoluteTimeout) " followed by fmt, which says
 * what was going on ("waiting for PEER"). */
void conn_abs_timeout_err(struct err *e, long timeout_s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void conn_close(struct conn *c);

/* TCP transport (conn_tcp.c). */
struct proxy;
struct tcp_opts {
	const char *host;
	int port;
	const char *source;     /* LocalHost: bind to this address, or NULL */
	int source_port;        /* LocalPort */
	long connect_timeout_s; /* whole connect, all addresses */
	long timeout_s;
	bool nodelay;
	int family;             /* UseIPv6: 0 IPv4 only, 1 IPv6 only, 2 both */
	int64_t abs_deadline_ms; /* AbsoluteTimeout: end of the whole run, or 0 */
	bool keepalive;         /* TCPKeepAlive */
	long keepalive_time_ms, keepalive_interval_ms, keepalive_count; /* 0 = system's */
	bool linger;            /* false: reset the connection on close */
	long linger_time_s;
	long max_rate;          /* MaxTransferRate, bytes/s */
	const struct proxy *proxy; /* connect through this proxy, or NULL */
};
/* Resolve and connect, through the proxy when one is given: the
 * addresses of the families o->family allows (and the source address can
 * reach) are raced, IPv6 first and the families alternating, a new
 * attempt every 250 ms or on a failure, all within one deadline
 * (ConnectionTimeout, else Timeout, capped by abs_deadline_ms); then the
 * socket options.  Errors: ERR_NOHOST (unknown host, or no address of the
 * family asked for: 11001), ERR_TEMP (refused, timeout, temporary DNS
 * failure, proxy failures 118; the message names every address tried),
 * ERR_UNAVAILABLE (proxy refused us for good, e.g. bad proxy
 * credentials), ERR_CONFIG (a source address that does not resolve),
 * ERR_OS. */
int conn_tcp_open(struct conn *c, const struct tcp_opts *o, struct err *e);

#endif

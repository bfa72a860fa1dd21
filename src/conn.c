/* conn.c - buffered, bounded, deadline-driven I/O over a transport. */
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* MaxTransferRate: writes go out in slices of a tenth of a second's worth,
 * and a pause longer than this (waiting for a reply) earns no credit for
 * a later burst. */
#define RATE_SLICES_PER_S 10
#define RATE_CREDIT_MS 100

int64_t conn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void conn_init(struct conn *c, const struct conn_ops *ops, void *ctx, int fd, long timeout_s)
{
	memset(c, 0, sizeof *c);
	c->ops = ops;
	c->ctx = ctx;
	c->fd = fd;
	c->timeout_s = timeout_s;
}

int64_t conn_cap_deadline(const struct conn *c, int64_t deadline_ms)
{
	int64_t abs = c->abs_deadline_ms;
	if (abs && (!deadline_ms || deadline_ms > abs))
		return abs;
	return deadline_ms;
}

int64_t conn_deadline(const struct conn *c)
{
	int64_t d = c->timeout_s > 0 ? conn_now_ms() + (int64_t)c->timeout_s * 1000 : 0;
	return conn_cap_deadline(c, d);
}

bool conn_abs_expired(const struct conn *c)
{
	return c->abs_deadline_ms && conn_now_ms() >= c->abs_deadline_ms;
}

void conn_abs_timeout_err(struct err *e, long timeout_s, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	err_set(e, ERR_TEMP, SEED_TIMEOUT, "the whole run exceeded Timeout (%ld s, AbsoluteTimeout) %s",
		timeout_s, what);
}

/* Read more bytes into rbuf after compacting it.  Errors: ERR_TEMP. */
static int fill(struct conn *c, int64_t deadline_ms, struct err *e)
{
	/* never wait for a reply to bytes still in our own buffer */
	if (c->wlen && conn_flush(c, e) < 0)
		return -1;
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	ssize_t n = c->ops->read(c, c->rbuf + c->rend, sizeof c->rbuf - c->rend, deadline_ms, e);
	if (n < 0)
		return -1;
	if (n == 0) {
		c->eof = true;
		err_set(e, ERR_TEMP, 1120, "%s closed the connection", c->peer);
		return -1;
	}
	c->rend += (size_t)n;
	c->bytes_in += (uint64_t)n;
	return 0;
}

int conn_read_line(struct conn *c, const char **line, size_t *len, bool *truncated,
		   int64_t deadline_ms, struct err *e)
{
	size_t scanned = 0;     /* bytes after rstart known to hold no LF */
	size_t kept = 0;        /* > 0: in discard mode, longline holds the start */

	for (;;) {
		char *start = c->rbuf + c->rstart;
		size_t avail = c->rend - c->rstart;
		char *nl = memchr(start + scanned, '\n', avail - scanned);
		if (nl) {
			size_t l = (size_t)(nl - start);
			c->rstart += l + 1;
			if (kept) {
				*line = c->longline;
				*len = kept;
				*truncated = true;
				return 0;
			}
			if (l && start[l - 1] == '\r')
				l--;
			*line = start;
			*len = l;
			*truncated = false;
			return 0;
		}
		if (avail == sizeof c->rbuf) {
			/* A line longer than the whole buffer: keep its start
			 * for the message and discard the rest up to the LF. */
			if (!kept) {
				kept = sizeof c->longline;
				memcpy(c->longline, start, kept);
			}
			c->rstart = c->rend = 0;
			scanned = 0;
		} else {
			scanned = avail;
		}
		if (fill(c, deadline_ms, e) < 0)
			return -1;
	}
}

int conn_read_exact(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *e)
{
	char *p = buf;
	while (len) {
		if (c->rstart == c->rend && fill(c, deadline_ms, e) < 0)
			return -1;
		size_t n = c->rend - c->rstart;
		if (n > len)
			n = len;
		memcpy(p, c->rbuf + c->rstart, n);
		c->rstart += n;
		p += n;
		len -= n;
	}
	return 0;
}

size_t conn_unread(struct conn *c)
{
	return (c->rend - c->rstart) + (c->ops->pending ? c->ops->pending(c) : 0);
}

/* Sleep until the monotonic clock reads at_ms. */
static void sleep_until(int64_t at_ms)
{
	struct timespec ts = { .tv_sec = at_ms / 1000, .tv_nsec = (at_ms % 1000) * 1000000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* MaxTransferRate: cut *len to one slice, and wait until the bytes
 * already sent since the window started allow it to go out, so that the
 * average rate never exceeds max_rate.  Errors: ERR_TEMP when the wait
 * would outlast AbsoluteTimeout. */
static int rate_wait(struct conn *c, size_t *len, struct err *e)
{
	size_t slice = (size_t)c->max_rate / RATE_SLICES_PER_S;
	if (slice == 0)
		slice = 1;
	if (*len > slice)
		*len = slice;

	int64_t now = conn_now_ms();
	int64_t due = c->rate_start_ms + (int64_t)(c->rate_bytes * 1000 / (uint64_t)c->max_rate);
	if (c->rate_start_ms == 0 || now - due > RATE_CREDIT_MS) {
		/* first write, or idle for a while: a new window */
		c->rate_start_ms = now;
		c->rate_bytes = 0;
		return 0;
	}
	if (due <= now)
		return 0;
	if (c->abs_deadline_ms && due > c->abs_deadline_ms) {
		sleep_until(c->abs_deadline_ms);
		conn_abs_timeout_err(e, c->timeout_s, "sending to %s", c->peer);
		return -1;
	}
	sleep_until(due);
	return 0;
}

int conn_flush(struct conn *c, struct err *e)
{
	size_t off = 0;
	while (off < c->wlen) {
		size_t len = c->wlen - off;
		if (c->max_rate > 0 && rate_wait(c, &len, e) < 0)
			return -1;
		/* Set after the rate limiter's pause: our own sleeping is not
		 * the server's inactivity.  Each write that makes progress
		 * starts the inactivity timeout again. */
		int64_t deadline = conn_deadline(c);
		ssize_t n = c->ops->write(c, c->wbuf + off, len, deadline, e);
		if (n < 0)
			return -1;
		off += (size_t)n;
		c->bytes_out += (uint64_t)n;
		c->rate_bytes += (uint64_t)n;
	}
	c->wlen = 0;
	return 0;
}

int conn_write(struct conn *c, const void *buf, size_t len, struct err *e)
{
	const char *p = buf;
	while (len) {
		size_t room = sizeof c->wbuf - c->wlen;
		size_t n = len < room ? len : room;
		memcpy(c->wbuf + c->wlen, p, n);
		c->wlen += n;
		p += n;
		len -= n;
		if (c->wlen == sizeof c->wbuf && conn_flush(c, e) < 0)
			return -1;
	}
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->ops && c->ops->close)
		c->ops->close(c);
	c->ops = NULL;
}

int conn_wait_fd(struct conn *c, int fd, short events, int64_t deadline_ms, struct err *e)
{
	/* Every wait of every transport passes here: the one place where
	 * AbsoluteTimeout is sure to bound them all. */
	deadline_ms = conn_cap_deadline(c, deadline_ms);
	for (;;) {
		int ms = -1;
		if (deadline_ms) {
			int64_t left = deadline_ms - conn_now_ms();
			if (left <= 0) {
				if (deadline_ms == c->abs_deadline_ms)
					conn_abs_timeout_err(e, c->timeout_s, "waiting for %s", c->peer);
				else
					err_set(e, ERR_TEMP, SEED_TIMEOUT,
						"timed out after %ld s waiting for %s", c->timeout_s,
						c->peer);
				return -1;
			}
			ms = left > 3600000 ? 3600000 : (int)left;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			err_set(e, ERR_OS, err_code_from_errno(errno), "poll: %s", strerror(errno));
			return -1;
		}
	}
}

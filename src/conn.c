/* conn.c - buffered, bounded, deadline-driven I/O over a transport. */
#include "conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

int64_t conn_deadline(const struct conn *c)
{
	return c->timeout_s > 0 ? conn_now_ms() + (int64_t)c->timeout_s * 1000 : 0;
}

/* Read more bytes into rbuf after compacting it.  Errors: ERR_TEMP. */
static int fill(struct conn *c, int64_t deadline_ms, struct err *e)
{
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

size_t conn_unread(struct conn *c)
{
	return (c->rend - c->rstart) + (c->ops->pending ? c->ops->pending(c) : 0);
}

int conn_flush(struct conn *c, struct err *e)
{
	size_t off = 0;
	int64_t deadline = conn_deadline(c);
	while (off < c->wlen) {
		ssize_t n = c->ops->write(c, c->wbuf + off, c->wlen - off, deadline, e);
		if (n < 0)
			return -1;
		off += (size_t)n;
		c->bytes_out += (uint64_t)n;
		/* progress made: the inactivity timeout starts again */
		deadline = conn_deadline(c);
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
	for (;;) {
		int ms = -1;
		if (deadline_ms) {
			int64_t left = deadline_ms - conn_now_ms();
			if (left <= 0) {
				err_set(e, ERR_TEMP, SEED_TIMEOUT, "timed out after %ld s waiting for %s",
					c->timeout_s, c->peer);
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

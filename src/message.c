/* message.c - stream the outgoing message from the spool. */
#include "message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MESSAGE_BLOCK (256 * 1024)

void message_init(struct message *m)
{
	memset(m, 0, sizeof *m);
	m->sp.fd = -1;
}

void message_free(struct message *m)
{
	spool_free(&m->sp);
	sb_free(&m->prefix);
	free(m->skip_start);
	free(m->skip_end);
	memset(m, 0, sizeof *m);
	m->sp.fd = -1;
}

int message_skip_header(struct message *m, size_t i, struct err *e)
{
	off_t s = m->sp.hdr[i].start, end = m->sp.hdr[i].end;
	size_t len = (size_t)(end - s), at = m->nskip;

	/* -t and the raw message's own completion both leave Bcc out: a
	 * range counted twice would make SIZE= (and BDAT) too small */
	for (size_t k = 0; k < m->nskip; k++)
		if (m->skip_start[k] == s && m->skip_end[k] == end)
			return 0;
	char *buf = xmalloc(len ? len : 1);

	/* SIZE= counts CR LF line ends: a field written with bare LFs is
	 * longer on the wire than in the spool. */
	if (spool_pread(&m->sp, buf, len, s) != (ssize_t)len) {
		err_set(e, ERR_IO, SEED_FILE, "reading the spooled message: %s", strerror(errno));
		free(buf);
		return -1;
	}
	uint64_t wire = len;
	for (size_t k = 0; k < len; k++)
		if (buf[k] == '\n' && (k == 0 || buf[k - 1] != '\r'))
			wire++;
	/* the spool counts a CR LF for a last line without one */
	if (end == m->sp.size && len && buf[len - 1] != '\n')
		wire += 2;
	free(buf);
	m->skip_wire += wire;

	m->skip_start = xrealloc(m->skip_start, (m->nskip + 1) * sizeof *m->skip_start);
	m->skip_end = xrealloc(m->skip_end, (m->nskip + 1) * sizeof *m->skip_end);
	/* keep the ranges sorted: headers are few, insertion is fine */
	while (at > 0 && m->skip_start[at - 1] > s) {
		m->skip_start[at] = m->skip_start[at - 1];
		m->skip_end[at] = m->skip_end[at - 1];
		at--;
	}
	m->skip_start[at] = s;
	m->skip_end[at] = end;
	m->nskip++;
	return 0;
}

uint64_t message_size(const struct message *m)
{
	if (m->binary) {
		uint64_t n = m->prefix.len + (uint64_t)m->sp.size;
		for (size_t i = 0; i < m->nskip; i++)
			n -= (uint64_t)(m->skip_end[i] - m->skip_start[i]);
		return n;
	}
	uint64_t n = m->prefix.len + m->sp.wire_size;
	return m->skip_wire < n ? n - m->skip_wire : 0;
}

/* Stream spool bytes [from, to) through sink. */
static int stream_range(const struct message *m, char *buf, off_t from, off_t to,
			message_sink sink, void *ctx, struct err *e)
{
	while (from < to) {
		size_t want = (size_t)(to - from) < MESSAGE_BLOCK ? (size_t)(to - from) : MESSAGE_BLOCK;
		ssize_t n = spool_pread(&m->sp, buf, want, from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(e, ERR_IO, SEED_FILE, "reading the spooled message: %s",
				n < 0 ? strerror(errno) : "unexpected end of file");
			return -1;
		}
		if (sink(ctx, buf, (size_t)n, e) < 0)
			return -1;
		from += n;
	}
	return 0;
}

int message_stream(const struct message *m, message_sink sink, void *ctx, struct err *e)
{
	int rc = 0;
	if (m->prefix.len && sink(ctx, m->prefix.s, m->prefix.len, e) < 0)
		return -1;
	char *buf = xmalloc(MESSAGE_BLOCK);
	off_t pos = 0;
	for (size_t i = 0; i < m->nskip && rc == 0; i++) {
		if (m->skip_start[i] > pos)
			rc = stream_range(m, buf, pos, m->skip_start[i], sink, ctx, e);
		if (m->skip_end[i] > pos)
			pos = m->skip_end[i];
	}
	if (rc == 0)
		rc = stream_range(m, buf, pos, m->sp.size, sink, ctx, e);
	free(buf);
	return rc;
}

/* spool.c - copy the message to a temporary file, checking it on the way.
 *
 * The input is read in large blocks; each block is cut into pieces at LF
 * with memchr, and each piece is checked for NUL, CR and 8-bit bytes eight
 * bytes at a time.  Only what is needed to judge the current line is kept
 * between blocks (its length, its first byte, whether it ends in CR), so a
 * line, a CR LF pair or a lone "." may straddle blocks freely.  Header
 * lines are also collected in memory, up to the header block limits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_BUFSZ (256 * 1024)
#define MAX_LINE 998

struct scan {
	const struct spool_opts *o;
	struct spool *sp;
	struct err *e;
	off_t pos;             /* offset of the next input byte */
	off_t line_start;      /* offset of the current line */
	uint64_t lineno;       /* number of the current line, from 1 */
	uint64_t line_len;     /* bytes of the current line so far, LF excluded */
	bool last_cr;          /* the current line so far ends in CR */
	unsigned char first;   /* first byte of the current line */
	bool in_header;
	bool field_open;       /* sp->hdr[nhdr - 1] may still get continuations */
	bool done;             /* the lone "." was seen */
	off_t msg_end;         /* valid once done */
	uint64_t extra;        /* wire_size - size, so far */
	uint64_t bytes_or;     /* all checked bytes OR-ed together */
	size_t hcap;           /* room in sp->hdr */
	struct strbuf hline;   /* the current line, while in the header block */
	struct strbuf hval;    /* the value of the open field */
};

/* Length of the leading run of p[0..n) free of NUL and CR. */
static inline size_t plain_run(const unsigned char *p, size_t n, uint64_t *bytes_or)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t highs = ones << 7;
	const uint64_t crs = ones * '\r';
	uint64_t acc = 0;
	size_t i = 0;

	/* (v - 1) & ~v has the high bit of a byte set where that byte is
	 * zero (exact as to whether any byte is zero); v ^ crs turns CRs
	 * into zeros. */
	for (; i + 8 <= n; i += 8) {
		uint64_t v, x;
		memcpy(&v, p + i, 8);
		x = v ^ crs;
		acc |= v;
		if ((((v - ones) & ~v) | ((x - ones) & ~x)) & highs)
			break;
	}
	for (; i < n; i++) {
		if (p[i] == '\0' || p[i] == '\r')
			break;
		acc |= p[i];
	}
	*bytes_or |= acc;
	return i;
}

/* A line that cannot go out as it is: an error, or with tolerate_faults
 * the first one is noted and reading goes on. */
static int fault(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fault(struct scan *s, const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!s->o->tolerate_faults) {
		err_set(s->e, ERR_DATA, 0, "line %ju: %s", (uintmax_t)s->lineno, msg);
		return -1;
	}
	if (!s->sp->fault_line) {
		s->sp->fault_line = s->lineno;
		snprintf(s->sp->fault, sizeof s->sp->fault, "%s", msg);
	}
	return 0;
}

static int bare_cr(struct scan *s)
{
	if (!s->o->allow_bare_cr && fault(s, "bare CR (carriage return without line feed)") < 0)
		return -1;
	/* dotstuff.c sends it as a line break. */
	s->extra++;
	return 0;
}

static void close_field(struct scan *s)
{
	if (!s->field_open)
		return;
	s->sp->hdr[s->sp->nhdr - 1].value = s->hval.s ? s->hval.s : xstrdup("");
	s->hval = (struct strbuf)STRBUF_INIT;
	s->field_open = false;
}

static void end_header_block(struct scan *s, off_t fields_end, off_t header_end)
{
	close_field(s);
	s->in_header = false;
	s->sp->fields_end = fields_end;
	s->sp->header_end = header_end;
	sb_free(&s->hline);
}

/* Length of the field name at the start of line, with the index of its
 * colon in *colon; 0 when the line is no header field. */
static size_t field_name(const char *line, size_t len, size_t *colon)
{
	size_t n = 0, i;
	while (n < len && line[n] >= 33 && line[n] <= 126 && line[n] != ':')
		n++;
	/* Blanks before the colon are obsolete syntax (RFC 5322 4.5.3) but
	 * still met; such a line is meant as a field. */
	for (i = n; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (n == 0 || i == len || line[i] != ':')
		return 0;
	*colon = i;
	return n;
}

/* The current line, just ended, is inside the header block. */
static int header_line(struct scan *s)
{
	struct spool *sp = s->sp;
	const char *line = s->hline.s ? s->hline.s : "";
	size_t len = s->hline.len, colon = 0;

	if (s->last_cr)
		len--;
	if (len == 0) {
		end_header_block(s, s->line_start, s->pos);
		return 0;
	}
	bool cont = (line[0] == ' ' || line[0] == '\t') && s->field_open;
	size_t namelen = cont ? 0 : field_name(line, len, &colon);
	if (!cont && namelen == 0) {
		end_header_block(s, s->line_start, s->line_start);
		return 0;
	}
	if (s->pos > SPOOL_MAX_HEADER_BYTES) {
		err_set(s->e, ERR_DATA, 0, "line %ju: header block longer than %d octets",
			(uintmax_t)s->lineno, SPOOL_MAX_HEADER_BYTES);
		return -1;
	}
	if (cont) {
		sb_add(&s->hval, line, len);
		sp->hdr[sp->nhdr - 1].end = s->pos;
		return 0;
	}
	if (sp->nhdr == SPOOL_MAX_HEADER_FIELDS) {
		err_set(s->e, ERR_DATA, 0, "line %ju: more than %d header fields",
			(uintmax_t)s->lineno, SPOOL_MAX_HEADER_FIELDS);
		return -1;
	}
	close_field(s);
	if (sp->nhdr == s->hcap) {
		s->hcap = s->hcap ? 2 * s->hcap : 32;
		sp->hdr = xrealloc(sp->hdr, s->hcap * sizeof *sp->hdr);
	}
	struct spool_header *h = &sp->hdr[sp->nhdr++];
	h->name = xstrndup(line, namelen);
	h->value = NULL;
	h->start = s->line_start;
	h->end = s->pos;
	sb_add(&s->hval, line + colon + 1, len - colon - 1);
	s->field_open = true;
	return 0;
}

/* The current line has ended, by an LF (lf) or by the end of input. */
static int end_line(struct scan *s, bool lf)
{
	uint64_t len = s->line_len;

	if (lf && s->last_cr)
		len--;
	if (len > MAX_LINE) {
		if (fault(s, "line longer than %d octets (%ju)", MAX_LINE, (uintmax_t)len) < 0)
			return -1;
	}
	if (len == 1 && s->first == '.' && !s->o->ignore_dots) {
		s->done = true;
		s->msg_end = s->line_start;
		return 0;
	}
	if (s->in_header && header_line(s) < 0)
		return -1;
	if (lf)
		s->extra += !s->last_cr;
	else
		s->extra += s->last_cr ? 0 : 2;
	s->sp->lines++;
	s->lineno++;
	s->line_start = s->pos;
	s->line_len = 0;
	s->last_cr = false;
	if (s->in_header)
		sb_reset(&s->hline);
	return 0;
}

/* Bytes p[0..n) of the current line, none of them LF; lf says whether an
 * LF follows them. */
static int scan_piece(struct scan *s, const unsigned char *p, size_t n, bool lf)
{
	if (n) {
		if (s->last_cr && bare_cr(s) < 0)
			return -1;
		if (s->line_len == 0)
			s->first = p[0];
		/* A CR at the end is judged by what comes next. */
		bool cr_end = p[n - 1] == '\r';
		size_t m = n - cr_end, i = 0;
		while ((i += plain_run(p + i, m - i, &s->bytes_or)) < m) {
			if (p[i] == '\0') {
				if (fault(s, "NUL byte in message") < 0)
					return -1;
				i++;
				continue;
			}
			if (bare_cr(s) < 0)
				return -1;
			i++;
		}
		if (s->in_header && s->hline.len <= MAX_LINE + 2) {
			/* Longer lines are refused at their end anyway. */
			size_t room = MAX_LINE + 3 - s->hline.len;
			sb_add(&s->hline, p, n < room ? n : room);
		}
		s->line_len += n;
		s->last_cr = cr_end;
	}
	s->pos += (off_t)n + lf;
	return lf ? end_line(s, true) : 0;
}

static int scan_block(struct scan *s, const unsigned char *p, size_t n)
{
	const unsigned char *end = p + n;
	while (p < end && !s->done) {
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (scan_piece(s, p, k, nl != NULL) < 0)
			return -1;
		p += k + (nl != NULL);
	}
	return 0;
}

static int scan_eof(struct scan *s)
{
	if (s->done || s->line_len == 0)
		return 0;
	if (s->last_cr && bare_cr(s) < 0)
		return -1;
	return end_line(s, false);
}

static const char *temp_dir(const struct spool_opts *o)
{
	const char *dir = o->tmpdir;
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	return dir;
}

static int make_temp(const char *dir, struct err *e)
{
	char *path = xasprintf("%s/smtpsend.XXXXXX", dir);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot create a temporary file in %s: %s",
			dir, strerror(errno));
	} else if (unlink(path) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot unlink temporary file %s: %s",
			path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* A descriptor of its own on fd's file when fd is a regular file, so
 * that the caller's file offset is left alone, with *base set to where
 * fd's offset is (the message starts there); else -1. */
static int in_place(int fd, off_t *base)
{
	struct stat st;
	char path[64];

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (*base = lseek(fd, 0, SEEK_CUR)) < 0)
		return -1;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int own = open(path, O_RDONLY | O_CLOEXEC);
	return own >= 0 ? own : -1;
}

int spool_temp_fd(struct err *e)
{
	static const struct spool_opts none;
	return make_temp(temp_dir(&none), e);
}

ssize_t spool_pread(const struct spool *sp, void *buf, size_t len, off_t off)
{
	return pread(sp->fd, buf, len, sp->base + off);
}

int spool_read(int fd, const struct spool_opts *o, struct spool *sp, struct err *e)
{
	static const struct spool_opts defaults;
	struct scan s = {
		.o = o ? o : &defaults,
		.sp = sp,
		.e = e,
		.lineno = 1,
		.in_header = true,
		.hline = STRBUF_INIT,
		.hval = STRBUF_INIT,
	};
	const char *dir = temp_dir(s.o);
	unsigned char *buf = NULL;
	off_t written = 0;

	memset(sp, 0, sizeof *sp);
	/* A regular file read from its start is checked in place: copying
	 * 100 MB to a temporary file only to read it back costs as much as
	 * sending it. */
	sp->fd = s.o->in_place ? in_place(fd, &sp->base) : -1;
	bool copy = sp->fd < 0;
	if (copy) {
		sp->base = 0;
		sp->fd = make_temp(dir, e);
	}
	if (sp->fd < 0)
		return -1;
	buf = xmalloc(SPOOL_BUFSZ);
	for (;;) {
		ssize_t n = read(fd, buf, SPOOL_BUFSZ);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* stdin may have been left non-blocking by whoever
			 * started us; wait instead of failing. */
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd, .events = POLLIN };
				if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
					continue;
			}
			err_set(e, ERR_IO, 0, "cannot read the message: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (s.done)
			continue;
		off_t base = s.pos;
		if (scan_block(&s, buf, (size_t)n) < 0)
			goto fail;
		size_t keep = (size_t)n;
		if (s.done)
			keep = s.msg_end > base ? (size_t)(s.msg_end - base) : 0;
		if (copy && keep && write_all(sp->fd, buf, keep) < 0) {
			err_set(e, ERR_IO, 0, "cannot write the temporary file in %s: %s",
				dir, strerror(errno));
			goto fail;
		}
		written += (off_t)keep;
	}
	if (scan_eof(&s) < 0)
		goto fail;

	sp->size = s.done ? s.msg_end : s.pos;
	/* The lone "." may have begun in an earlier block, already written. */
	if (copy && written > sp->size && ftruncate(sp->fd, sp->size) < 0) {
		err_set(e, ERR_IO, 0, "cannot truncate the temporary file in %s: %s",
			dir, strerror(errno));
		goto fail;
	}
	if (s.in_header)
		end_header_block(&s, sp->size, sp->size);
	sp->has_8bit = (s.bytes_or & 0x8080808080808080ULL) != 0;
	sp->wire_size = (uint64_t)sp->size + s.extra;
	if (lseek(sp->fd, sp->base, SEEK_SET) < 0) {
		err_set(e, ERR_IO, 0, "cannot rewind the temporary file in %s: %s",
			dir, strerror(errno));
		goto fail;
	}
	free(buf);
	return 0;

fail:
	close_field(&s);
	sb_free(&s.hline);
	free(buf);
	spool_free(sp);
	return -1;
}

int spool_find_header(const struct spool *sp, const char *name)
{
	for (size_t i = 0; i < sp->nhdr; i++)
		if (ascii_casecmp(sp->hdr[i].name, name) == 0)
			return (int)i;
	return -1;
}

void spool_free(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	for (size_t i = 0; i < sp->nhdr; i++) {
		free(sp->hdr[i].name);
		free(sp->hdr[i].value);
	}
	free(sp->hdr);
	memset(sp, 0, sizeof *sp);
	sp->fd = -1;
}

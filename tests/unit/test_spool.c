/* test_spool.c - reading, checking and scanning the raw message.
 *
 * Inputs reach spool_read() through a regular file, a pipe, or a
 * SOCK_SEQPACKET socket; the latter hands over exactly one written chunk
 * per read(), which lets the tests put block boundaries anywhere: every
 * outcome must be the same however the input is cut.  (Threads: glibc
 * 2.34 and later need no -pthread; older ones do.) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dotstuff.h"
#include "err.h"
#include "spool.h"
#include "util.h"
#include "tap.h"

static unsigned rnd(unsigned *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s >> 1;
}

#define S(x) x, sizeof(x) - 1

/* ---- feeding the input ---- */

enum via { VIA_FILE, VIA_PIPE, VIA_PACKETS };

struct run {
	int rc;
	struct err e;
	struct spool sp;
	bool writer_ok;     /* the writer got rid of all its input */
};

/* Write in[0..len) into fd in chunks of cuts[] (the last one repeating). */
static bool write_chunks(int fd, const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
	size_t i = 0, k = 0;
	while (i < len) {
		size_t n = cuts[k < ncuts ? k : ncuts - 1];
		k++;
		if (n > len - i)
			n = len - i;
		if (write_all(fd, in + i, n) < 0)
			return false;
		i += n;
	}
	return true;
}

struct writer {
	int fd;
	const char *in;
	size_t len;
	const size_t *cuts;
	size_t ncuts;
	bool ok;
};

static bool nonblocking_reader;

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	w->ok = write_chunks(w->fd, w->in, w->len, w->cuts, w->ncuts);
	close(w->fd);
	return NULL;
}

static void spool_via(enum via via, const char *in, size_t len, const size_t *cuts, size_t ncuts,
		      const struct spool_opts *o, struct run *r)
{
	int fds[2];
	err_clear(&r->e);
	r->writer_ok = true;
	if (via == VIA_FILE) {
		FILE *f = tmpfile();
		if (!f || (len && fwrite(in, 1, len, f) != len) || fflush(f) || fseek(f, 0, SEEK_SET)) {
			perror("tmpfile");
			exit(2);
		}
		r->rc = spool_read(fileno(f), o, &r->sp, &r->e);
		fclose(f);
		return;
	}
	if (via == VIA_PIPE ? pipe(fds) : socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds)) {
		perror("pipe");
		exit(2);
	}
	/* A writer thread, so that a reader that stops early shows up as a
	 * failed write (EPIPE; SIGPIPE is ignored) instead of a hang. */
	if (nonblocking_reader)
		fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	struct writer w = { fds[1], in, len, cuts, ncuts, false };
	pthread_t t;
	if (pthread_create(&t, NULL, writer_main, &w)) {
		perror("pthread_create");
		exit(2);
	}
	r->rc = spool_read(fds[0], o, &r->sp, &r->e);
	close(fds[0]);
	pthread_join(t, NULL);
	r->writer_ok = w.ok;
}

static void spool_file(const char *in, size_t len, const struct spool_opts *o, struct run *r)
{
	spool_via(VIA_FILE, in, len, NULL, 0, o, r);
}

/* The whole spool, read back through its fd (which must be at 0). */
static char *slurp(const struct spool *sp, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	ssize_t n;
	while ((n = read(sp->fd, buf, sizeof buf)) > 0)
		sb_add(&sb, buf, (size_t)n);
	sb_add(&sb, "", 0);
	*len = sb.len;
	return sb.s;
}

/* s[0..n) with every byte outside printable ASCII, and '\\', as \xHH. */
static void add_escaped(struct strbuf *sb, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '\\')
			sb_addf(sb, "\\x%02x", c);
		else
			sb_addc(sb, (char)c);
	}
}

/* Everything spool_read() reported, as one comparable, printable line. */
static char *outcome(struct run *r)
{
	struct strbuf sb = STRBUF_INIT;
	if (r->rc < 0) {
		sb_addf(&sb, "error %d: %s", (int)r->e.cls, r->e.msg);
		return sb.s;
	}
	const struct spool *sp = &r->sp;
	size_t n;
	char *content = slurp(sp, &n);
	struct stat st;
	fstat(sp->fd, &st);
	sb_addf(&sb, "size %jd/%jd lines %ju 8bit %d wire %ju fields_end %jd header_end %jd;",
		(intmax_t)sp->size, (intmax_t)st.st_size, (uintmax_t)sp->lines, sp->has_8bit,
		(uintmax_t)sp->wire_size, (intmax_t)sp->fields_end, (intmax_t)sp->header_end);
	for (size_t i = 0; i < sp->nhdr; i++) {
		sb_adds(&sb, " [");
		add_escaped(&sb, sp->hdr[i].name, strlen(sp->hdr[i].name));
		sb_adds(&sb, "][");
		add_escaped(&sb, sp->hdr[i].value, strlen(sp->hdr[i].value));
		sb_addf(&sb, "] %jd-%jd;", (intmax_t)sp->hdr[i].start, (intmax_t)sp->hdr[i].end);
	}
	sb_adds(&sb, " content ");
	add_escaped(&sb, content, n);
	free(content);
	return sb.s;
}

/* ---- a plain reference for the line checks ---- */

struct ref {
	bool ok;
	char msg[128];
	size_t size;
	uint64_t lines, wire;
	bool has_8bit;
};

static void ref_spool(const char *in, size_t len, const struct spool_opts *o, struct ref *r)
{
	size_t i = 0;
	uint64_t lineno = 1, extra = 0;
	memset(r, 0, sizeof *r);
	r->ok = true;
	while (i < len) {
		size_t j = i;
		while (j < len && in[j] != '\n')
			j++;
		bool lf = j < len;
		size_t ll = j - i;
		bool crlf = lf && ll && in[j - 1] == '\r';
		for (size_t k = i; k < j; k++) {
			unsigned char c = (unsigned char)in[k];
			if (c == 0) {
				snprintf(r->msg, sizeof r->msg, "line %ju: NUL byte in message", (uintmax_t)lineno);
				r->ok = false;
				return;
			}
			if (c == '\r' && !(crlf && k == j - 1)) {
				if (!o->allow_bare_cr) {
					snprintf(r->msg, sizeof r->msg,
						 "line %ju: bare CR (carriage return without line feed)",
						 (uintmax_t)lineno);
					r->ok = false;
					return;
				}
				extra++;
			}
			if (c >= 0x80)
				r->has_8bit = true;
		}
		size_t eff = ll - crlf;
		if (eff > 998) {
			snprintf(r->msg, sizeof r->msg, "line %ju: line longer than 998 octets (%zu)",
				 (uintmax_t)lineno, eff);
			r->ok = false;
			return;
		}
		if (!o->ignore_dots && eff == 1 && in[i] == '.')
			break;
		r->lines++;
		if (lf)
			extra += !crlf;
		else if (in[j - 1] != '\r')
			extra += 2;
		lineno++;
		i = lf ? j + 1 : j;
	}
	r->size = i;
	r->wire = i + extra;
}

/* ---- checks ---- */

static void expect_error(const char *in, size_t len, const struct spool_opts *o, const char *msg)
{
	struct run r;
	spool_file(in, len, o, &r);
	TAP_EXPECT(r.rc == -1 && r.e.cls == ERR_DATA && strcmp(r.e.msg, msg) == 0,
	      "want \"%s\", got rc %d class %d \"%s\"", msg, r.rc, (int)r.e.cls, r.e.msg);
	TAP_EXPECT(r.sp.fd == -1 && r.sp.nhdr == 0, "spool not emptied after an error");
	spool_free(&r.sp);
}

/* Spool in and compare the content with want. */
static void expect_body(const char *in, size_t len, const struct spool_opts *o, const char *want,
			size_t wlen, uint64_t lines)
{
	struct run r;
	spool_file(in, len, o, &r);
	TAP_EXPECT(r.rc == 0, "refused: %s", r.e.msg);
	if (r.rc == 0) {
		size_t n;
		char *got = slurp(&r.sp, &n);
		TAP_EXPECT(n == wlen && memcmp(got, want, wlen) == 0 && (size_t)r.sp.size == wlen,
		      "content: got %zu bytes, size %jd, want %zu", n, (intmax_t)r.sp.size, wlen);
		TAP_EXPECT(r.sp.lines == lines, "lines %ju, want %ju", (uintmax_t)r.sp.lines, (uintmax_t)lines);
		free(got);
	}
	spool_free(&r.sp);
}

static const struct spool_opts plain, idots = { .ignore_dots = true },
	bare = { .allow_bare_cr = true };

static void test_empty(void)
{
	struct run r;
	tap_begin();
	spool_file("", 0, &plain, &r);
	TAP_EXPECT(r.rc == 0, "%s", r.e.msg);
	TAP_EXPECT(r.sp.size == 0 && r.sp.lines == 0 && r.sp.wire_size == 0 && r.sp.nhdr == 0 &&
	      r.sp.header_end == 0 && r.sp.fields_end == 0 && !r.sp.has_8bit, "empty spool");
	spool_free(&r.sp);
	spool_free(&r.sp);
	tap_end("empty input is an empty message");
}

static void test_refusals(void)
{
	char *big;

	tap_begin();
	expect_error(S("\0"), &plain, "line 1: NUL byte in message");
	expect_error(S("a\nb\nc\0d\n"), &plain, "line 3: NUL byte in message");
	expect_error(S("a\r\nb\r\n\r\nxyz\0\r\n"), &plain, "line 4: NUL byte in message");
	expect_error(S("0123456789abcdef0123\0"), &plain, "line 1: NUL byte in message");
	expect_error(S("a\n.\0\n"), &idots, "line 2: NUL byte in message");
	expect_error(S("a\nb\n\0"), &bare, "line 3: NUL byte in message");
	tap_end("NUL refused with its line number");

	tap_begin();
	expect_error(S("a\rb\n"), &plain, "line 1: bare CR (carriage return without line feed)");
	expect_error(S("a\r\nb\r\nc\rd\r\n"), &plain, "line 3: bare CR (carriage return without line feed)");
	expect_error(S("a\nb\n\r"), &plain, "line 3: bare CR (carriage return without line feed)");
	expect_error(S("a\nbc\r"), &plain, "line 2: bare CR (carriage return without line feed)");
	expect_error(S("a\r\r\n"), &plain, "line 1: bare CR (carriage return without line feed)");
	expect_error(S("0123456789abcdefghijk\r\rx\n"), &plain,
		     "line 1: bare CR (carriage return without line feed)");
	expect_error(S("a\n.\rb\n"), &plain, "line 2: bare CR (carriage return without line feed)");
	expect_body(S("a\rb\r\r\nc\r"), &bare, S("a\rb\r\r\nc\r"), 2);
	tap_end("bare CR refused with its line number, unless allowed");

	big = xmalloc(4000);
	tap_begin();
	memset(big, 'x', 4000);
	memcpy(big + 998, "\n", 1);
	expect_body(big, 999, &plain, big, 999, 1);
	expect_body(big, 998, &plain, big, 998, 1);
	memcpy(big + 998, "\r\n", 2);
	expect_body(big, 1000, &plain, big, 1000, 1);
	memset(big, 'x', 4000);
	memcpy(big + 999, "\n", 1);
	expect_error(big, 1000, &plain, "line 1: line longer than 998 octets (999)");
	expect_error(big, 999, &plain, "line 1: line longer than 998 octets (999)");
	memcpy(big + 999, "\r\n", 2);
	expect_error(big, 1001, &plain, "line 1: line longer than 998 octets (999)");
	memset(big, 'x', 4000);
	memcpy(big, "a\r\nb\r\n", 6);
	memcpy(big + 6 + 1203, "\r\nend\r\n", 7);
	expect_error(big, 6 + 1203 + 7, &plain, "line 3: line longer than 998 octets (1203)");
	memset(big, 'x', 4000);
	memcpy(big, "a\n\n", 3);
	expect_error(big, 3 + 3997, &plain, "line 3: line longer than 998 octets (3997)");
	/* 998 octets and a bare CR: the CR is part of the line. */
	memset(big, 'x', 4000);
	memcpy(big + 998, "\r", 1);
	expect_body(big, 998, &bare, big, 998, 1);
	expect_error(big, 999, &bare, "line 1: line longer than 998 octets (999)");
	tap_end("998 octets per line accepted, 999 refused (LF, CR LF, at EOF)");
	free(big);
}

/* A CR as the last byte of a read() block, then LF or not. */
static void test_block_edges(void)
{
	size_t len = 600000;
	char *in = xmalloc(len);
	static const size_t edges[] = { 65536, 131072, 262144, 524288 };
	tap_begin();
	for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
		size_t at = edges[k] - 1;
		size_t line = 0;
		for (size_t i = 0; i < len; i++)
			in[i] = i % 100 == 99 ? '\n' : 'x';
		/* Make the block end fall in the middle of line at / 100. */
		in[at] = '\r';
		in[at + 1] = 'y';
		line = at / 100 + 1;
		char want[128];
		snprintf(want, sizeof want, "line %zu: bare CR (carriage return without line feed)", line);
		expect_error(in, len, &plain, want);
		for (enum via via = VIA_PIPE; via <= VIA_PACKETS; via++) {
			struct run r;
			size_t chunk = via == VIA_PACKETS ? 65536 : 4096;
			spool_via(via, in, len, &chunk, 1, &plain, &r);
			TAP_EXPECT(r.rc == -1 && strcmp(r.e.msg, want) == 0, "via %d: %s", (int)via, r.e.msg);
			spool_free(&r.sp);
		}
		in[at + 1] = '\n';
		expect_body(in, len, &plain, in, len, len / 100 + 1);
		/* And a lone dot split over the edge. */
		in[at - 1] = '\n';
		in[at] = '.';
		in[at + 1] = '\n';
		expect_body(in, len, &plain, in, at, at / 100 + 1);
		expect_body(in, len, &idots, in, len, len / 100 + 2);
		struct run r;
		size_t chunk = 65536;
		spool_via(VIA_PACKETS, in, len, &chunk, 1, &plain, &r);
		TAP_EXPECT(r.rc == 0 && r.sp.size == (off_t)at && r.writer_ok, "packets: %s", r.e.msg);
		spool_free(&r.sp);
	}
	tap_end("bare CR, CR LF and a lone dot across read() block boundaries");
	free(in);
}

static void test_dot_rule(void)
{
	struct run r;

	tap_begin();
	expect_body(S("a\n.\nb\n"), &plain, S("a\n"), 1);
	expect_body(S("a\r\n.\r\nb\r\n"), &plain, S("a\r\n"), 1);
	expect_body(S("a\n."), &plain, S("a\n"), 1);
	expect_body(S(".\nb\n"), &plain, S(""), 0);
	expect_body(S("."), &plain, S(""), 0);
	expect_body(S("a\n..\nb\n"), &plain, S("a\n..\nb\n"), 3);
	expect_body(S("a\n.x\n. \n"), &plain, S("a\n.x\n. \n"), 3);
	expect_body(S("a\n.\r.\n"), &bare, S("a\n.\r.\n"), 2);
	expect_body(S("a\n.\r"), &bare, S("a\n.\r"), 2);
	/* What follows the dot is dropped unchecked. */
	expect_body(S("a\n.\n\0\rxx\n"), &plain, S("a\n"), 1);
	tap_end("a lone \".\" line ends the message (LF, CR LF, EOF); \"..\" and \".x\" are data");

	tap_begin();
	expect_body(S("a\n.\nb\n"), &idots, S("a\n.\nb\n"), 3);
	expect_body(S("a\r\n.\r\nb\r\n"), &idots, S("a\r\n.\r\nb\r\n"), 3);
	expect_body(S("a\n."), &idots, S("a\n."), 2);
	expect_body(S("."), &idots, S("."), 1);
	expect_error(S("a\n.\rb\n"), &idots, "line 2: bare CR (carriage return without line feed)");
	tap_end("with ignore_dots a lone \".\" is data");

	/* The writer must be able to write all of its input. */
	tap_begin();
	size_t len = 3 << 20;
	char *in = xmalloc(len);
	memset(in, 'z', len);
	memcpy(in, "Subject: x\n\nbody\n.\n", 19);
	for (size_t i = 100; i < len; i += 100)
		in[i] = '\n';
	size_t chunk = 8192;
	spool_via(VIA_PIPE, in, len, &chunk, 1, &plain, &r);
	TAP_EXPECT(r.rc == 0 && r.sp.size == 17 && r.writer_ok, "rc %d size %jd writer %d", r.rc,
	      (intmax_t)r.sp.size, r.writer_ok);
	spool_free(&r.sp);
	free(in);
	tap_end("input after the lone dot is drained: no SIGPIPE for the writer");
}

static void test_8bit_wire(void)
{
	struct run r;
	static const struct {
		const char *in;
		size_t len;
		const struct spool_opts *o;
		bool has_8bit;
		uint64_t wire;
	} cases[] = {
		{ S(""), &plain, false, 0 },
		{ S("a"), &plain, false, 3 },
		{ S("a\nb"), &plain, false, 6 },
		{ S("a\r\nb\r\n"), &plain, false, 6 },
		{ S("a\n\n\r\n"), &plain, false, 7 },
		{ S("caf\xc3\xa9\n"), &plain, true, 7 },
		{ S("Subject: \xff\n\nx\n"), &plain, true, 17 },
		{ S("a\n.\n\xe9\n"), &plain, false, 3 },
		{ S("a\n.\n\xe9\n"), &idots, true, 9 },
		{ S("0123456789abcdef\x80\n"), &plain, true, 19 },
		{ S("a\rb"), &bare, false, 6 },
		{ S("a\r"), &bare, false, 3 },
		{ S("a\r\r\n"), &bare, false, 5 },
	};
	tap_begin();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		spool_file(cases[i].in, cases[i].len, cases[i].o, &r);
		TAP_EXPECT(r.rc == 0 && r.sp.has_8bit == cases[i].has_8bit && r.sp.wire_size == cases[i].wire,
		      "case %zu: rc %d 8bit %d wire %ju", i, r.rc, r.sp.has_8bit,
		      (uintmax_t)r.sp.wire_size);
		spool_free(&r.sp);
	}
	tap_end("has_8bit and wire_size");
}

struct hexp {
	const char *name, *value;
	long start, end;
};

static void check_headers(const char *in, size_t len, const struct hexp *h, size_t nh,
			  long fields_end, long header_end)
{
	struct run r;
	spool_file(in, len, &plain, &r);
	TAP_EXPECT(r.rc == 0, "%s", r.e.msg);
	if (r.rc < 0)
		return;
	TAP_EXPECT(r.sp.nhdr == nh, "%zu fields, want %zu", r.sp.nhdr, nh);
	for (size_t i = 0; i < nh && i < r.sp.nhdr; i++) {
		const struct spool_header *g = &r.sp.hdr[i];
		TAP_EXPECT(strcmp(g->name, h[i].name) == 0 && strcmp(g->value, h[i].value) == 0 &&
		      g->start == h[i].start && g->end == h[i].end,
		      "field %zu: [%s][%s] %jd-%jd", i, g->name, g->value, (intmax_t)g->start,
		      (intmax_t)g->end);
	}
	TAP_EXPECT(r.sp.fields_end == fields_end && r.sp.header_end == header_end,
	      "fields_end %jd header_end %jd", (intmax_t)r.sp.fields_end, (intmax_t)r.sp.header_end);
	spool_free(&r.sp);
}

static void test_headers(void)
{
	static const char crlf[] =
		"From: a@example.org\r\n"
		"Subject: hello\r\n"
		"  world\r\n"
		"Bcc: x@example.org,\r\n"
		"\ty@example.org\r\n"
		"To : t@example.org\r\n"
		"X-Empty:\r\n"
		"\r\n"
		"body\r\n"
		"Not: a header\r\n";
	static const struct hexp crlf_h[] = {
		{ "From", " a@example.org", 0, 21 },
		{ "Subject", " hello  world", 21, 46 },
		{ "Bcc", " x@example.org,\ty@example.org", 46, 83 },
		{ "To", " t@example.org", 83, 103 },
		{ "X-Empty", "", 103, 113 },
	};
	struct run r;

	tap_begin();
	check_headers(S(crlf), crlf_h, 5, 113, 115);
	/* Leaving out the Bcc range leaves a well-formed message. */
	spool_file(S(crlf), &plain, &r);
	int b = spool_find_header(&r.sp, "bcc");
	TAP_EXPECT(b == 2 && spool_find_header(&r.sp, "SUBJECT") == 1 &&
	      spool_find_header(&r.sp, "Date") == -1 && spool_find_header(&r.sp, "Not") == -1,
	      "spool_find_header");
	if (b == 2) {
		size_t n;
		char *all = slurp(&r.sp, &n);
		struct strbuf sb = STRBUF_INIT;
		sb_add(&sb, all, (size_t)r.sp.hdr[b].start);
		sb_add(&sb, all + r.sp.hdr[b].end, n - (size_t)r.sp.hdr[b].end);
		static const char want[] =
			"From: a@example.org\r\n"
			"Subject: hello\r\n"
			"  world\r\n"
			"To : t@example.org\r\n"
			"X-Empty:\r\n"
			"\r\n"
			"body\r\n"
			"Not: a header\r\n";
		TAP_EXPECT(sb.len == sizeof want - 1 && memcmp(sb.s, want, sb.len) == 0,
		      "without Bcc: %s", sb.s);
		sb_free(&sb);
		free(all);
	}
	spool_free(&r.sp);
	tap_end("header fields: names, unfolded values, exact byte ranges (CR LF)");

	tap_begin();
	static const struct hexp lf_h[] = {
		{ "Subject", " a", 0, 11 },
		{ "Bcc", " b c", 11, 21 },
	};
	check_headers(S("Subject: a\nBcc: b\n c\n\nbody"), lf_h, 2, 21, 22);
	check_headers(S("Subject: a\nBcc: b\n c\n"), lf_h, 2, 21, 21);
	static const struct hexp lf_h2[] = {
		{ "Subject", " a", 0, 11 },
		{ "Bcc", " b c", 11, 20 },
	};
	check_headers(S("Subject: a\nBcc: b\n c"), lf_h2, 2, 20, 20);
	/* A line that is no field ends the block, and starts the body. */
	check_headers(S("Subject: a\nBcc: b\n c\nnot a field\n\nx\n"), lf_h, 2, 21, 21);
	check_headers(S("Subject: a\nBcc: b\n c\nX\x80: y\n"), lf_h, 2, 21, 21);
	/* The lone dot ends the header block too. */
	check_headers(S("Subject: a\nBcc: b\n c\n.\nTo: x\n"), lf_h, 2, 21, 21);
	tap_end("header fields with LF, without body, ended by a non-field line or a dot");

	tap_begin();
	check_headers(S("hello world\nFrom: a\n\nbody\n"), NULL, 0, 0, 0);
	check_headers(S(" From: a\nTo: b\n\n"), NULL, 0, 0, 0);
	check_headers(S(": a\n"), NULL, 0, 0, 0);
	check_headers(S("From a@b Mon Nov 23 11:30:07 2026\nFrom: a\n"), NULL, 0, 0, 0);
	check_headers(S("\nFrom: a\n"), NULL, 0, 0, 1);
	check_headers(S("\r\nFrom: a\n"), NULL, 0, 0, 2);
	tap_end("input without a header block");

	tap_begin();
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < 20000; i++)
		sb_addf(&sb, "X-Field-%d: %0*d\r\n", i, 180, i);
	sb_adds(&sb, "\r\nbody\r\n");
	expect_error(sb.s, sb.len, &plain, "line 5356: header block longer than 1048576 octets");
	sb_reset(&sb);
	for (int i = 0; i < 10001; i++)
		sb_adds(&sb, "A: b\n");
	expect_error(sb.s, sb.len, &plain, "line 10001: more than 10000 header fields");
	sb_reset(&sb);
	sb_adds(&sb, "Subject: x\n");
	for (int i = 0; i < 30000; i++)
		sb_adds(&sb, " continued, on and on and on and on and on and on\n");
	expect_error(sb.s, sb.len, &plain, "line 20973: header block longer than 1048576 octets");
	sb_reset(&sb);
	for (int i = 0; i < 10000; i++)
		sb_adds(&sb, "A: b\n");
	sb_adds(&sb, "\n");
	for (int i = 0; i < 100000; i++)
		sb_adds(&sb, "body body body body body body body body body body body\n");
	spool_file(sb.s, sb.len, &plain, &r);
	TAP_EXPECT(r.rc == 0 && r.sp.nhdr == 10000 && (size_t)r.sp.size == sb.len, "10000 fields: %s",
	      r.e.msg);
	spool_free(&r.sp);
	sb_free(&sb);
	tap_end("header block limits: 1 MB, 10000 fields");
}

static void test_files(void)
{
	struct run r;
	char dir[] = "/tmp/test_spool.XXXXXX";
	struct spool_opts o = { 0 };

	tap_begin();
	TAP_EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
	o.tmpdir = dir;
	spool_file(S("Subject: x\n\nhi\n"), &o, &r);
	TAP_EXPECT(r.rc == 0, "%s", r.e.msg);
	if (r.rc == 0) {
		struct stat st;
		int fl = fcntl(r.sp.fd, F_GETFD);
		TAP_EXPECT(fstat(r.sp.fd, &st) == 0 && st.st_nlink == 0, "spool file not unlinked");
		TAP_EXPECT(fl >= 0 && (fl & FD_CLOEXEC), "spool fd not close-on-exec");
		TAP_EXPECT(lseek(r.sp.fd, 0, SEEK_CUR) == 0, "spool fd not at offset 0");
	}
	spool_free(&r.sp);
	TAP_EXPECT(rmdir(dir) == 0, "temporary directory not left empty");

	o.tmpdir = "/nonexistent/dir";
	spool_file(S("x\n"), &o, &r);
	TAP_EXPECT(r.rc == -1 && r.e.cls == ERR_CANTCREAT && strstr(r.e.msg, "/nonexistent/dir"),
	      "%d %s", (int)r.e.cls, r.e.msg);
	spool_free(&r.sp);

	int dfd = open("/", O_RDONLY | O_DIRECTORY);
	r.rc = spool_read(dfd, &plain, &r.sp, &r.e);
	TAP_EXPECT(r.rc == -1 && r.e.cls == ERR_IO, "%d %s", (int)r.e.cls, r.e.msg);
	close(dfd);
	spool_free(&r.sp);
	tap_end("temporary file: unlinked, close-on-exec, rewound; ERR_CANTCREAT, ERR_IO");

	tap_begin();
	size_t len = 2 << 20, chunk = 1000;
	char *in = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		in[i] = i % 80 == 79 ? '\n' : 'n';
	nonblocking_reader = true;
	spool_via(VIA_PIPE, in, len, &chunk, 1, &plain, &r);
	nonblocking_reader = false;
	TAP_EXPECT(r.rc == 0 && (size_t)r.sp.size == len && r.writer_ok, "%s", r.e.msg);
	spool_free(&r.sp);
	free(in);
	tap_end("a non-blocking input is waited for, not refused");
}

/* The outcome for in[] must match the reference and must not depend on
 * how the input is cut into read() blocks. */
static void check_input(const char *in, size_t len, const struct spool_opts *o, unsigned *seed,
			int *mismatches, const char *label)
{
	struct run r;
	struct ref ref;

	ref_spool(in, len, o, &ref);
	spool_file(in, len, o, &r);
	char *want = outcome(&r);
	if (ref.ok) {
		TAP_EXPECT(r.rc == 0 && (size_t)r.sp.size == ref.size && r.sp.lines == ref.lines &&
		      r.sp.wire_size == ref.wire && r.sp.has_8bit == ref.has_8bit,
		      "%s: reference size %zu lines %ju wire %ju, got %s", label,
		      ref.size, (uintmax_t)ref.lines, (uintmax_t)ref.wire, want);
		if (r.rc == 0) {
			/* wire_size is what the BDAT encoder will send. */
			size_t n;
			lseek(r.sp.fd, 0, SEEK_SET);
			char *body = slurp(&r.sp, &n);
			char *out = xmalloc(DOTSTUFF_MAX_OUT(n) + DOTSTUFF_FINISH_MAX);
			struct dotstuff d;
			dotstuff_init(&d, true);
			size_t on = dotstuff_feed(&d, body, n, out);
			on += dotstuff_finish(&d, out + on);
			TAP_EXPECT(on == r.sp.wire_size, "%s: BDAT sends %zu, wire_size %ju",
			      label, on, (uintmax_t)r.sp.wire_size);
			free(out);
			free(body);
		}
	} else {
		TAP_EXPECT(r.rc == -1 && strcmp(r.e.msg, ref.msg) == 0, "%s: want \"%s\", got %s",
		      label, ref.msg, want);
	}
	spool_free(&r.sp);

	size_t one = 1;
	spool_via(VIA_PACKETS, in, len, &one, 1, o, &r);
	char *got = outcome(&r);
	if (strcmp(got, want) != 0 && (*mismatches)++ < 3)
		TAP_EXPECT(0, "%s, 1-byte blocks: %s\n#   versus %s", label, got, want);
	free(got);
	spool_free(&r.sp);
	/* Every split point of short inputs, 64 random ones of longer ones. */
	for (size_t j = 1; j < len && j <= 64; j++) {
		size_t k = len <= 65 ? j : 1 + (size_t)rnd(seed) % (len - 1);
		size_t two[2] = { k, len };
		spool_via(VIA_PACKETS, in, len, two, 2, o, &r);
		got = outcome(&r);
		if (strcmp(got, want) != 0 && (*mismatches)++ < 3)
			TAP_EXPECT(0, "%s, split at %zu: %s\n#   versus %s", label, k, got, want);
		free(got);
		spool_free(&r.sp);
	}
	free(want);
}

static void test_chunking(void)
{
	static const struct {
		const char *s;
		size_t n;
	} fixed[] = {
		{ S("a\r\n.\r\nb\r\n") },
		{ S(".\r\n") },
		{ S(".\r") },
		{ S(".\rx\n") },
		{ S("a\n.") },
		{ S("a\n..\n.\n") },
		{ S("X: y\r\n z\r\n\r\n.\r\n") },
		{ S("X: y\r\n z\r\nW: v\r\nbody\r\n") },
		{ S("Subject: a\r\n\tb\r\n\r\n\r\n.\r\n") },
		{ S("X: y\r\r\n") },
		{ S("X: y\r\n\r") },
		{ S("X: y\n\0\n") },
		{ S("ab\r\r\r\n\r\n") },
		{ S("caf\xc3\xa9: x\n") },
	};
	static const struct {
		const char *s;
		size_t n;
	} alphabets[] = {
		{ S("ab :.\n\n\n") },
		{ S("Ab:. \t\n\n\r\x80") },
		{ S(".\r\n\n\0xy: ") },
	};
	static const struct spool_opts *const opts[] = { &plain, &idots, &bare };
	unsigned seed = 99;
	char in[200], label[64];
	int mismatches = 0;

	tap_begin();
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		for (size_t k = 0; k < 3; k++) {
			snprintf(label, sizeof label, "fixed %zu, options %zu", i, k);
			check_input(fixed[i].s, fixed[i].n, opts[k], &seed, &mismatches, label);
		}
	}
	TAP_EXPECT(mismatches == 0, "%d outcomes depended on block boundaries", mismatches);
	tap_end("tricky inputs: as the reference, whatever the block boundaries");

	tap_begin();
	mismatches = 0;
	for (int round = 0; round < 240; round++) {
		const char *alpha = alphabets[round % 3].s;
		size_t na = alphabets[round % 3].n;
		size_t len = (size_t)rnd(&seed) % (round < 120 ? 24 : sizeof in);
		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rnd(&seed) % na];
		if (round % 5 == 0 && len > 3)
			memcpy(in, "X: ", 3);
		snprintf(label, sizeof label, "round %d", round);
		check_input(in, len, opts[(round / 3) % 3], &seed, &mismatches, label);
	}
	TAP_EXPECT(mismatches == 0, "%d outcomes depended on block boundaries", mismatches);
	tap_end("240 random inputs: as the reference, whatever the block boundaries");
}

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_large(void)
{
	size_t len = 50u << 20;
	char *in = xmalloc(len);
	unsigned seed = 5;
	size_t col = 0;
	tap_begin();
	memcpy(in, "From: a@example.org\nSubject: large\n\n", 36);
	for (size_t i = 36; i < len; i++) {
		unsigned x = rnd(&seed);
		if (col >= 998 || x % 64 == 0) {
			in[i] = '\n';
			col = 0;
		} else {
			in[i] = x % 4096 == 1 ? (char)0xe9 : (char)('a' + x % 26);
			col++;
		}
	}
	struct ref ref;
	ref_spool(in, len, &plain, &ref);

	long rss0 = maxrss_kb();
	struct run r;
	struct timespec t0, t1;
	size_t chunk = 1 << 20;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	spool_via(VIA_PIPE, in, len, &chunk, 1, &plain, &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long rss1 = maxrss_kb();
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	TAP_EXPECT(r.rc == 0 && ref.ok && (size_t)r.sp.size == len && r.sp.lines == ref.lines &&
	      r.sp.wire_size == ref.wire && r.sp.has_8bit && r.sp.nhdr == 2 && r.sp.header_end == 36,
	      "rc %d %s size %jd", r.rc, r.e.msg, (intmax_t)r.sp.size);
	TAP_EXPECT(rss1 - rss0 < 8 * 1024, "memory grew by %ld kB", rss1 - rss0);
	if (r.rc == 0) {
		size_t n;
		char *got = slurp(&r.sp, &n);
		TAP_EXPECT(n == len && memcmp(got, in, len) == 0, "spool content differs");
		free(got);
	}
	printf("# spool_read: %zu MB through a pipe in %.3f s: %.0f MB/s, memory +%ld kB\n",
	       len >> 20, s, (double)(len >> 20) / s, rss1 - rss0);
	spool_free(&r.sp);
	free(in);
	tap_end("50 MB through a pipe: streamed, bounded memory");
}

int main(void)
{
	/* The tests write into pipes whose reader may be gone. */
	signal(SIGPIPE, SIG_IGN);
	test_empty();
	test_refusals();
	test_block_edges();
	test_dot_rule();
	test_8bit_wire();
	test_headers();
	test_files();
	test_chunking();
	test_large();
	return tap_done();
}

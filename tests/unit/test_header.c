/* test_header.c - recipients from the header (-t), and Bcc removal.
 *
 * Each case is a raw message: it goes through spool_read() like real
 * input, then header_recipients(); the recipients found and the bytes
 * that would be transmitted are both compared with what is expected.
 * Prints TAP; exits non-zero when any test fails. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "header.h"
#include "message.h"
#include "spool.h"
#include "tap.h"
#include "util.h"

/* Spool msg into m. */
static bool load(struct message *m, const char *msg, size_t len)
{
	char path[] = "/tmp/test_header.XXXXXX";
	struct spool_opts o = { .ignore_dots = true };
	struct err e = { 0 };
	int fd = mkstemp(path);
	int rc;

	message_init(m);
	if (fd < 0)
		return false;
	unlink(path);
	if (write_all(fd, msg, len) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return false;
	}
	rc = spool_read(fd, &o, &m->sp, &e);
	close(fd);
	if (rc < 0)
		printf("#   spool_read: %s\n", e.msg);
	return rc == 0;
}

static int collect(void *ctx, const char *buf, size_t len, struct err *e)
{
	(void)e;
	sb_add(ctx, buf, len);
	return 0;
}

static void sent_bytes(const struct message *m, struct strbuf *sb)
{
	struct err e = { 0 };

	sb_reset(sb);
	if (message_stream(m, collect, sb, &e) < 0)
		sb_adds(sb, "<stream error>");
	if (!sb->s)
		sb_adds(sb, "");
}

/* "to a@x\n", "cc b@y utf8\n", ... */
static void render(const struct hdr_rcpts *r, struct strbuf *sb)
{
	static const char *const kinds[] = { "to", "cc", "bcc" };

	sb_reset(sb);
	sb_adds(sb, "");
	for (size_t i = 0; i < r->n; i++)
		sb_addf(sb, "%s %s%s\n", kinds[r->v[i].kind], r->v[i].addr,
			r->v[i].smtputf8 ? " utf8" : "");
}

static uint64_t wire_len(const struct strbuf *sb)
{
	uint64_t n = sb->len;

	for (size_t i = 0; i < sb->len; i++)
		if (sb->s[i] == '\n' && (i == 0 || sb->s[i - 1] != '\r'))
			n++;
	return n;
}

struct hcase {
	const char *name;
	const char *msg;
	const char *want;   /* recipients as render() shows them */
	const char *sent;   /* what is transmitted; NULL: msg unchanged */
	const char *err;    /* the error must start with this; NULL: success */
};

static const struct hcase cases[] = {
	{ "plain To",
	  "From: Alice <alice@example.org>\nTo: bob@example.com\nSubject: hi\n\nbody\n",
	  "to bob@example.com\n", NULL, NULL },
	{ "quoted display names with commas",
	  "From: a@example.org\n"
	  "To: \"Doe, John\" <john@example.com>, \"Smith, Jane Q.\" <jane@example.com>\n\nx\n",
	  "to john@example.com\nto jane@example.com\n", NULL, NULL },
	{ "undisclosed-recipients group and a Bcc",
	  "From: a@example.org\nTo: undisclosed-recipients:;\nBcc: hidden@example.com\n"
	  "Subject: s\n\nbody\n",
	  "bcc hidden@example.com\n",
	  "From: a@example.org\nTo: undisclosed-recipients:;\nSubject: s\n\nbody\n", NULL },
	{ "group with members, then a mailbox",
	  "To: team: a@example.com, b@example.com;, c@example.com\n\n",
	  "to a@example.com\nto b@example.com\nto c@example.com\n", NULL, NULL },
	{ "group with quoted commas and comments",
	  "Cc: Friends: \"Doe, J\" <j@example.net>, (a comment, with a comma) k@example.net;\n\n",
	  "cc j@example.net\ncc k@example.net\n", NULL, NULL },
	{ "encoded words in display names",
	  "To: =?UTF-8?B?SsO8cmdlbg==?= <juergen@example.de>,\n"
	  " =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>,\n"
	  " =?utf-8?q?Doe,_John?= <jd@example.com>\n\nb\n",
	  "to juergen@example.de\nto PIRARD@vm1.ulg.ac.be\nto jd@example.com\n", NULL, NULL },
	{ "comments with commas and parentheses",
	  "Cc: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>,\n"
	  "\tjdoe@example.org (John Doe, esq.), (x (nested, y)) z@example.org\n\n",
	  "cc pete@silly.test\ncc jdoe@example.org\ncc z@example.org\n", NULL, NULL },
	{ "list folded over several lines",
	  "To: a@example.com,\n  b@example.com,\n\tc@example.com\nSubject: x\n\n",
	  "to a@example.com\nto b@example.com\nto c@example.com\n", NULL, NULL },
	{ "folding inside an address",
	  "To: Mary Smith\n <mary@x.test>, \"Very\n Long\" <long@x.test>, jo\n @x.test\n\n",
	  "to mary@x.test\nto long@x.test\nto jo@x.test\n", NULL, NULL },
	{ "obsolete source route",
	  "To: Joe <@relay1.example,@relay2.example:joe@final.example>\n\n",
	  "to joe@final.example\n", NULL, NULL },
	{ "obsolete empty elements and CFWS around dots",
	  "To: , a@example.com,, b@example.com ,\nCc: john . doe @ example . com\n\n",
	  "to a@example.com\nto b@example.com\ncc john.doe@example.com\n", NULL, NULL },
	{ "two Resent blocks: only the newest counts, every Bcc goes",
	  "Resent-From: carol@example.org\n"
	  "Resent-Date: Tue, 2 Jan 2024 10:00:00 +0000\n"
	  "Resent-To: new1@example.com\n"
	  "Resent-Cc: new2@example.com\n"
	  "Resent-Bcc: newhidden@example.com\n"
	  "Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\n"
	  "Resent-From: bob@example.org\n"
	  "Resent-Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "Resent-To: old@example.com\n"
	  "Resent-Bcc: oldhidden@example.com,\n  oldhidden2@example.com\n"
	  "Received: from c by d; Sun, 31 Dec 2023 10:00:00 +0000\n"
	  "From: alice@example.org\n"
	  "To: orig@example.com\n"
	  "Bcc: origbcc@example.com\n"
	  "Subject: fwd\n\nbody\n",
	  "to new1@example.com\ncc new2@example.com\nbcc newhidden@example.com\n",
	  "Resent-From: carol@example.org\n"
	  "Resent-Date: Tue, 2 Jan 2024 10:00:00 +0000\n"
	  "Resent-To: new1@example.com\n"
	  "Resent-Cc: new2@example.com\n"
	  "Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\n"
	  "Resent-From: bob@example.org\n"
	  "Resent-Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "Resent-To: old@example.com\n"
	  "Received: from c by d; Sun, 31 Dec 2023 10:00:00 +0000\n"
	  "From: alice@example.org\n"
	  "To: orig@example.com\n"
	  "Subject: fwd\n\nbody\n", NULL },
	{ "adjacent Resent blocks split at a repeated field",
	  "Resent-Date: Tue, 2 Jan 2024 10:00:00 +0000\n"
	  "Resent-From: carol@example.org\n"
	  "Resent-To: newest@example.com\n"
	  "Resent-Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "Resent-From: bob@example.org\n"
	  "Resent-To: older@example.com\n"
	  "To: orig@example.com\n\n",
	  "to newest@example.com\n", NULL, NULL },
	{ "Resent block interleaved with trace fields",
	  "Resent-From: carol@example.org\n"
	  "Received: by host.example; Tue, 2 Jan 2024 10:00:00 +0000\n"
	  "Resent-To: r1@example.com\n"
	  "Return-Path: <carol@example.org>\n"
	  "Resent-Cc: r2@example.com\n"
	  "Resent-Date: Tue, 2 Jan 2024 10:00:00 +0000\n"
	  "From: alice@example.org\nTo: orig@example.com\n\n",
	  "to r1@example.com\ncc r2@example.com\n", NULL, NULL },
	{ "Resent block below trace fields, names in odd case",
	  "Return-Path: <bob@example.org>\n"
	  "Received: from x by y; Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "RESENT-FROM: bob@example.org\n"
	  "resent-to: r@example.com\n"
	  "Resent-bcc: rb@example.com\n"
	  "From: alice@example.org\nTo: orig@example.com\n\n",
	  "to r@example.com\nbcc rb@example.com\n",
	  "Return-Path: <bob@example.org>\n"
	  "Received: from x by y; Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "RESENT-FROM: bob@example.org\n"
	  "resent-to: r@example.com\n"
	  "From: alice@example.org\nTo: orig@example.com\n\n", NULL },
	{ "newest Resent block without destinations: no recipient",
	  "Resent-From: bob@example.org\nResent-Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
	  "X-Mailer: m\nResent-To: stale@example.com\nTo: orig@example.com\n\n",
	  "", NULL, NULL },
	{ "Bcc with continuation lines, first and last field",
	  "Bcc: a@example.com,\n b@example.com,\n\tc@example.com\n"
	  "To: t@example.com\n"
	  "BCC: d@example.com\n  , e@example.com\n\nbody\n",
	  "bcc a@example.com\nbcc b@example.com\nbcc c@example.com\nto t@example.com\n"
	  "bcc d@example.com\nbcc e@example.com\n",
	  "To: t@example.com\n\nbody\n", NULL },
	{ "duplicates across To, Cc and Bcc",
	  "To: a@example.com, B@Example.COM\nCc: b@example.com, c@example.com\n"
	  "Bcc: A@EXAMPLE.COM, \"Doe, J\" <c@example.com>\n\n",
	  "to a@example.com\nto B@Example.COM\ncc c@example.com\n",
	  "To: a@example.com, B@Example.COM\nCc: b@example.com, c@example.com\n\n", NULL },
	{ "duplicate keeps its first place and the most visible kind",
	  "Cc: d@example.com, e@example.com\nTo: D@example.com\n\n",
	  "to d@example.com\ncc e@example.com\n", NULL, NULL },
	{ "empty To and a whitespace-only To",
	  "To:\nTo:   \nCc: c@example.com\n\n",
	  "cc c@example.com\n", NULL, NULL },
	{ "UTF-8 local part needs SMTPUTF8",
	  "To: J\xc3\xb6rg <j\xc3\xb6rg@example.de>, plain@example.de\n\n",
	  "to j\xc3\xb6rg@example.de utf8\nto plain@example.de\n", NULL, NULL },
	{ "IDN domains come out as A-labels",
	  "To: user@b\xc3\xbc" "cher.example\n"
	  "Cc: \xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@"
	  "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1."
	  "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae\n\n",
	  "to user@xn--bcher-kva.example\n"
	  "cc \xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@xn--hxajbheg2az3al.xn--jxalpdlp utf8\n",
	  NULL, NULL },
	{ "bare local names",
	  "To: root, www-data\nCc: Charlie Root <root>, operator (the operator)\n\n",
	  "to root\nto www-data\ncc operator\n", NULL, NULL },
	{ "header names in any case, blanks before the colon",
	  "TO: a@example.com\ncc: b@example.com\nbCC: c@example.com\nTo : d@example.com\n\n",
	  "to a@example.com\ncc b@example.com\nbcc c@example.com\nto d@example.com\n",
	  "TO: a@example.com\ncc: b@example.com\nTo : d@example.com\n\n", NULL },
	{ "quoted local parts and a domain literal",
	  "To: \"john smith\"@example.com, \"john\"@example.com, postmaster@[192.0.2.1]\n\n",
	  "to \"john smith\"@example.com\nto john@example.com\nto postmaster@[192.0.2.1]\n",
	  NULL, NULL },
	{ "CRLF message",
	  "From: a@example.org\r\nTo: t@example.com\r\nBcc: b@example.com,\r\n c@example.com\r\n"
	  "Subject: s\r\n\r\nbody\r\n",
	  "to t@example.com\nbcc b@example.com\nbcc c@example.com\n",
	  "From: a@example.org\r\nTo: t@example.com\r\nSubject: s\r\n\r\nbody\r\n", NULL },
	{ "Bcc as the unterminated last line of a header-only message",
	  "To: a@example.com\nBcc: b@example.com",
	  "to a@example.com\nbcc b@example.com\n", "To: a@example.com\n", NULL },
	{ "empty Bcc group is removed too",
	  "To: a@example.com\nBcc: undisclosed:;\nSubject: s\n\n",
	  "to a@example.com\n", "To: a@example.com\nSubject: s\n\n", NULL },
	{ "fields other than To, Cc, Bcc are no recipients",
	  "Delivered-To: other@example.com\nX-Original-To: other@example.com\n"
	  "Reply-To: r@example.com\nSender: s@example.com\nFrom: f@example.com\n"
	  "To: a@example.com\n\n",
	  "to a@example.com\n", NULL, NULL },
	{ "no header block at all",
	  "just a body line\nand another\n", "", NULL, NULL },
	{ "malformed To names the field",
	  "From: a@example.org\nTo: \"unbalanced <a@example.com>\n\n",
	  NULL, NULL, "To: unbalanced '\"'" },
	{ "malformed Cc, as written",
	  "To: a@example.com\nCC: b@\n\n", NULL, NULL, "CC: missing domain" },
	{ "bad IDN names the field",
	  "To: a@example.com\nBcc: x@-bad-.example\n\n", NULL, NULL, "Bcc: " },
	{ "a malformed To is ignored when the Resent fields rule",
	  "Resent-From: b@example.org\nResent-To: r@example.com\n"
	  "To: \"broken <\n\n",
	  "to r@example.com\n", NULL, NULL },
	{ "malformed Resent-Cc in the newest block",
	  "Resent-From: b@example.org\nResent-Cc: a@b@c\nTo: t@example.com\n\n",
	  NULL, NULL, "Resent-Cc: " },
};

static void run_case(const struct hcase *c)
{
	struct message m;
	struct hdr_rcpts r = HDR_RCPTS_INIT;
	struct strbuf got = STRBUF_INIT, sent = STRBUF_INIT;
	struct err e = { 0 };
	const char *want_sent = c->sent ? c->sent : c->msg;
	int rc;

	if (!load(&m, c->msg, strlen(c->msg))) {
		ok(0, "%s: spooled", c->name);
		return;
	}
	rc = header_recipients(&m, &r, &e);
	if (c->err) {
		ok(rc < 0 && e.cls == ERR_DATA && !strncmp(e.msg, c->err, strlen(c->err)),
		   "%s: error", c->name);
		if (rc == 0 || strncmp(e.msg, c->err, strlen(c->err)))
			printf("#   rc %d, error \"%s\"\n", rc, e.msg);
		ok(r.n == 0, "%s: nothing collected on error", c->name);
	} else {
		render(&r, &got);
		ok(rc == 0 && !strcmp(got.s, c->want), "%s: recipients", c->name);
		if (rc != 0 || strcmp(got.s, c->want))
			printf("#   rc %d (%s), got:\n%s", rc, e.msg, got.s);
		sent_bytes(&m, &sent);
		ok(sent.len == strlen(want_sent) && !memcmp(sent.s, want_sent, sent.len),
		   "%s: transmitted bytes", c->name);
		if (sent.len != strlen(want_sent) || memcmp(sent.s, want_sent, sent.len))
			printf("#   sent:\n%s#   end\n", sent.s);
		ok(message_size(&m) == wire_len(&sent), "%s: SIZE= matches", c->name);
		if (message_size(&m) != wire_len(&sent))
			printf("#   message_size %ju, transmitted %ju\n", (uintmax_t)message_size(&m),
			       (uintmax_t)wire_len(&sent));
	}
	sb_free(&got);
	sb_free(&sent);
	hdr_rcpts_free(&r);
	message_free(&m);
}

/* The caller may have left Bcc out already (or call twice): the ranges
 * and SIZE= must not count it twice. */
static void test_idempotent(void)
{
	static const char msg[] = "To: a@example.com\nBcc: b@example.com,\n c@example.com\n\nx\n";
	static const char want[] = "To: a@example.com\n\nx\n";
	struct message m;
	struct hdr_rcpts r = HDR_RCPTS_INIT;
	struct strbuf sent = STRBUF_INIT;
	struct err e = { 0 };
	int rc;

	if (!load(&m, msg, sizeof msg - 1)) {
		ok(0, "idempotent: spooled");
		return;
	}
	rc = message_skip_header(&m, 1, &e);
	ok(rc == 0, "caller skipped Bcc first");
	rc = header_recipients(&m, &r, &e);
	ok(rc == 0 && r.n == 3, "recipients found");
	ok(m.nskip == 1, "Bcc range not added twice");
	rc = header_recipients(&m, &r, &e);
	ok(rc == 0 && r.n == 6, "second call appends again");
	ok(m.nskip == 1, "still one range");
	sent_bytes(&m, &sent);
	ok(!strcmp(sent.s, want), "transmitted without Bcc");
	ok(message_size(&m) == wire_len(&sent), "SIZE= counts the Bcc once");
	sb_free(&sent);
	hdr_rcpts_free(&r);
	ok(r.v == NULL && r.n == 0 && r.cap == 0, "hdr_rcpts_free leaves it empty");
	hdr_rcpts_free(&r);
	message_free(&m);
}

/* An error leaves out as it was, the caller's entries included. */
static void test_error_keeps_out(void)
{
	static const char msg[] = "To: a@example.com, b@example.com\nCc: c@\n\n";
	struct message m;
	struct hdr_rcpts r = HDR_RCPTS_INIT;
	struct err e = { 0 };
	int rc;

	if (!load(&m, msg, sizeof msg - 1)) {
		ok(0, "error: spooled");
		return;
	}
	r.v = xmalloc(sizeof *r.v);
	r.cap = 1;
	r.v[0].addr = xstrdup("before@example.com");
	r.v[0].kind = RCPT_TO;
	r.v[0].smtputf8 = false;
	r.n = 1;
	rc = header_recipients(&m, &r, &e);
	ok(rc < 0 && e.cls == ERR_DATA, "error reported");
	ok(r.n == 1 && !strcmp(r.v[0].addr, "before@example.com"), "earlier entries kept");
	hdr_rcpts_free(&r);
	message_free(&m);
}

/* A long list: dedupe must stay linear enough and exact. */
static void test_many(void)
{
	struct strbuf msg = STRBUF_INIT;
	struct message m;
	struct hdr_rcpts r = HDR_RCPTS_INIT;
	struct err e = { 0 };
	const size_t n = 20000;
	bool good = true;
	int rc;

	sb_adds(&msg, "To: ");
	for (size_t i = 0; i < n; i++)
		sb_addf(&msg, "%su%zu@example.com", i ? ",\n " : "", i);
	sb_adds(&msg, "\nCc: ");
	for (size_t i = 0; i < n; i += 2)
		sb_addf(&msg, "%sU%zu@EXAMPLE.com", i ? ",\n " : "", i);
	sb_adds(&msg, "\n\n");
	if (!load(&m, msg.s, msg.len)) {
		ok(0, "many: spooled");
		sb_free(&msg);
		return;
	}
	rc = header_recipients(&m, &r, &e);
	ok(rc == 0 && r.n == n, "%zu distinct of %zu", r.n, n + n / 2);
	for (size_t i = 0; i < r.n && good; i++) {
		char want[64];
		snprintf(want, sizeof want, "u%zu@example.com", i);
		good = !strcmp(r.v[i].addr, want) && r.v[i].kind == RCPT_TO;
	}
	ok(good, "in order, all To");
	hdr_rcpts_free(&r);
	message_free(&m);
	sb_free(&msg);
}

int main(void)
{
	ok(sizeof cases / sizeof cases[0] >= 25, "corpus holds %zu header blocks",
	   sizeof cases / sizeof cases[0]);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
	test_idempotent();
	test_error_keeps_out();
	test_many();
	return tap_done();
}

/* test_compose.c - unit tests for the message composer.
 * Prints TAP; exits non-zero when any test fails. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "compose.h"
#include "tap.h"

#define CHECK(cond, ...) ok(cond, __VA_ARGS__)
/* for helpers that report the line of their caller */
#define check(pass, line, ...) (tap_pass_ = !!(pass), tap_check(tap_pass_, __FILE__, (line), __VA_ARGS__))

static void show(const char *what, const char *s, size_t len)
{
	char buf[4096];

	printf("#   %s: %s\n", what, sanitize(buf, sizeof buf, s, len));
}

/* 2026-11-23 11:30:07 UTC, a Monday. */
#define NOW ((time_t)1795433407)

static struct strlist to_l, cc_l, oh_l;

static struct compose_input base(void)
{
	sl_clear(&to_l);
	sl_clear(&cc_l);
	sl_clear(&oh_l);
	return (struct compose_input){
		.from = "a@b.example",
		.to = &to_l,
		.cc = &cc_l,
		.date = "*",
		.message_id = "<id@host>",
		.msgid_alg = MSGID_SHA256,
		.other_headers = &oh_l,
		.max_header_length = 78,
		.fold_headers = true,
		.hostname = "host.example",
		.now = NOW,
	};
}

/* Build headers; returns rc, the block in *out (caller frees). */
static int build(const struct compose_input *in, bool b8, bool qp, char **out, struct err *e)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	err_clear(e);
	rc = compose_headers(in, b8, qp, &sb, e);
	*out = sb.s ? sb.s : xstrdup("");
	if (rc < 0 && sb.len)
		*out[0] = '!';  /* nothing may be appended on failure */
	return rc;
}

static void expect_exact(int line, const struct compose_input *in, bool b8, bool qp,
			 const char *want, const char *desc)
{
	struct err e;
	char *got;
	int rc = build(in, b8, qp, &got, &e);
	bool ok = rc == 0 && !strcmp(got, want);

	check(ok, line, "%s", desc);
	if (!ok) {
		show("error", e.msg, strlen(e.msg));
		show("got", got, strlen(got));
		show("want", want, strlen(want));
	}
	free(got);
}

#define EXPECT_EXACT(in, b8, qp, want, desc) expect_exact(__LINE__, in, b8, qp, want, desc)

static void expect_fail(int line, const struct compose_input *in, enum err_class cls,
			const char *msg, const char *desc)
{
	struct err e;
	char *got;
	int rc = build(in, false, false, &got, &e);
	bool ok = rc < 0 && e.cls == cls && strstr(e.msg, msg) && got[0] == '\0';

	check(ok, line, "%s", desc);
	if (!ok) {
		printf("#   rc %d class %d\n", rc, e.cls);
		show("error", e.msg, strlen(e.msg));
		show("got", got, strlen(got));
	}
	free(got);
}

#define EXPECT_FAIL(in, cls, msg, desc) expect_fail(__LINE__, in, cls, msg, desc)

/* ---- helpers to inspect a header block --------------------------------- */

/* The unfolded value of the first field called name, or NULL. */
static char *field(const char *block, const char *name)
{
	size_t n = strlen(name);
	const char *p = block;

	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			return NULL;
		if (!ascii_ncasecmp(p, name, n) && p[n] == ':') {
			struct strbuf v = STRBUF_INIT;
			const char *q = p + n + 1;

			if (*q == ' ')
				q++;
			for (;;) {
				sb_add(&v, q, (size_t)(eol - q));
				if (eol[2] != ' ' && eol[2] != '\t')
					break;
				q = eol + 2;
				eol = strstr(q, "\r\n");
			}
			sb_addc(&v, 0);
			return v.s;
		}
		p = eol + 2;
	}
	return NULL;
}

static size_t max_line(const char *s)
{
	size_t max = 0;

	while (*s) {
		const char *eol = strstr(s, "\r\n");
		size_t n = eol ? (size_t)(eol - s) : strlen(s);
		if (n > max)
			max = n;
		s += n + (eol ? 2 : 0);
	}
	return max;
}

/* Lines of the block that start a field, in order, as "A,B,C". */
static char *field_order(const char *block)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = block;

	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		if (*p != ' ' && *p != '\t') {
			if (sb.len)
				sb_addc(&sb, ',');
			sb_add(&sb, p, strcspn(p, ":"));
		}
		p = eol + 2;
	}
	sb_addc(&sb, 0);
	return sb.s;
}

static int b64v(int c)
{
	const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(t, c) : NULL;
	return p ? (int)(p - t) : -1;
}

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one "=?UTF-8?X?...?=" word; false when malformed. */
static bool decode_word(const char *w, size_t n, struct strbuf *out)
{
	const char *t;
	size_t tn;

	if (n < 12 || strncmp(w, "=?UTF-8?", 8) || w[9] != '?' || strncmp(w + n - 2, "?=", 2))
		return false;
	t = w + 10;
	tn = n - 12;
	if (w[8] == 'B') {
		uint32_t acc = 0;
		int bits = 0;

		if (tn % 4)
			return false;
		for (size_t i = 0; i < tn; i++) {
			int v;
			if (t[i] == '=')
				break;
			v = b64v(t[i]);
			if (v < 0)
				return false;
			acc = (acc << 6 | (uint32_t)v) & 0xffffff;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				sb_addc(out, (char)(acc >> bits & 0xff));
			}
		}
		return true;
	}
	if (w[8] != 'Q')
		return false;
	for (size_t i = 0; i < tn; i++) {
		if (t[i] == '_') {
			sb_addc(out, ' ');
		} else if (t[i] == '=') {
			if (i + 2 >= tn || hexv(t[i + 1]) < 0 || hexv(t[i + 2]) < 0)
				return false;
			sb_addc(out, (char)(hexv(t[i + 1]) << 4 | hexv(t[i + 2])));
			i += 2;
		} else if (t[i] == '?' || t[i] == ' ' || (unsigned char)t[i] >= 0x7f) {
			return false;
		} else {
			sb_addc(out, t[i]);
		}
	}
	return true;
}

/* Decode an unstructured value (unfolded): encoded words are decoded,
 * white space between two encoded words dropped.  Also checks that each
 * word is at most 75 characters and decodes to whole UTF-8 characters.
 * Returns NULL on any violation. */
static char *decode_unstructured(const char *v)
{
	struct strbuf out = STRBUF_INIT, ws = STRBUF_INIT;
	bool prev_ew = false;

	while (*v) {
		size_t wl = strspn(v, " \t"), n;
		bool ew;

		sb_reset(&ws);
		sb_add(&ws, v, wl);
		v += wl;
		if (!*v) {
			sb_add(&out, ws.s, ws.len);
			break;
		}
		n = strcspn(v, " \t");
		ew = n >= 2 && !strncmp(v, "=?", 2) && !strncmp(v + n - 2, "?=", 2);
		if (!(ew && prev_ew))
			sb_add(&out, ws.s ? ws.s : "", ws.len);
		if (ew) {
			struct strbuf w = STRBUF_INIT;
			bool ok = n <= 75 && decode_word(v, n, &w) && addr_utf8_valid(w.s, w.len);

			if (ok)
				sb_add(&out, w.s ? w.s : "", w.len);
			sb_free(&w);
			if (!ok) {
				sb_free(&out);
				sb_free(&ws);
				return NULL;
			}
		} else {
			sb_add(&out, v, n);
		}
		prev_ew = ew;
		v += n;
	}
	sb_free(&ws);
	sb_addc(&out, 0);
	return out.s;
}

/* Compose with the given subject and check the round trip and limits. */
static void subject_roundtrip(int line, const char *subject, int width, bool fold,
			      size_t want_max, const char *desc)
{
	struct compose_input in = base();
	struct err e;
	char *got, *v = NULL, *dec = NULL;
	size_t mx = 9999;
	int rc;

	in.subject = subject;
	in.max_header_length = width;
	in.fold_headers = fold;
	rc = build(&in, false, false, &got, &e);
	if (rc == 0)
		v = field(got, "Subject");
	if (v)
		dec = decode_unstructured(v);
	/* Only the Subject lines: a short field such as
	 * "Content-Transfer-Encoding: 7bit" may not fit a narrow width. */
	if (rc == 0) {
		char *sub = strstr(got, "Subject:"), *end = sub ? strstr(sub, "\r\nMessage-ID:") : NULL;
		if (end)
			end[2] = '\0';
		mx = sub ? max_line(sub) : 9999;
		if (end)
			end[2] = 'M';
	}
	check(rc == 0 && dec && !strcmp(dec, subject) && mx <= want_max && max_line(got) <= 998,
	      line, "%s", desc);
	if (!(rc == 0 && dec && !strcmp(dec, subject) && mx <= want_max)) {
		printf("#   rc %d, max line %zu (want <= %zu)\n", rc, mx, want_max);
		show("error", e.msg, strlen(e.msg));
		show("got", got, strlen(got));
	}
	free(dec);
	free(v);
	free(got);
}

#define SUBJECT_RT(s, w, f, max, desc) subject_roundtrip(__LINE__, s, w, f, max, desc)

/* ---- tests -------------------------------------------------------------- */

static void test_basic(void)
{
	struct compose_input in = base();

	sl_add(&to_l, "x@y.example");
	in.subject = "Hello";
	EXPECT_EXACT(&in, false, false,
		     "Date: Mon, 23 Nov 2026 11:30:07 +0000\r\n"
		     "From: a@b.example\r\n"
		     "To: x@y.example\r\n"
		     "Subject: Hello\r\n"
		     "Message-ID: <id@host>\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n"
		     "\r\n", "minimal message, 7-bit body");
	EXPECT_EXACT(&in, true, false,
		     "Date: Mon, 23 Nov 2026 11:30:07 +0000\r\n"
		     "From: a@b.example\r\n"
		     "To: x@y.example\r\n"
		     "Subject: Hello\r\n"
		     "Message-ID: <id@host>\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=UTF-8\r\n"
		     "Content-Transfer-Encoding: 8bit\r\n"
		     "\r\n", "8-bit body: UTF-8 and 8bit");
	in.charset = "utf-8";
	in.date = "";
	in.message_id = "";
	in.subject = NULL;
	EXPECT_EXACT(&in, true, true,
		     "From: a@b.example\r\n"
		     "To: x@y.example\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=UTF-8\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n", "no Date, no Message-ID, no Subject; quoted-printable");
	in.date = "Tue, 1 Dec 2026 08:00:00 -0500";
	in.charset = "UTF8";
	EXPECT_EXACT(&in, false, true,
		     "Date: Tue, 1 Dec 2026 08:00:00 -0500\r\n"
		     "From: a@b.example\r\n"
		     "To: x@y.example\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: quoted-printable\r\n"
		     "\r\n", "given Date kept; 7-bit quoted-printable");
}

static void test_order(void)
{
	struct compose_input in = base();
	struct err e;
	char *got, *order;
	int rc;

	sl_add(&to_l, "t@x");
	sl_add(&cc_l, "c@x");
	sl_add(&oh_l, "X-One: 1");
	sl_add(&oh_l, "X-Two: 2");
	in.reply_to = "r@x";
	in.subject = "s";
	in.importance = 1;
	in.priority = 2;
	in.sensitivity = 3;
	in.read_receipt_to = "d@x";
	in.delivery_notification_to = "n@x";
	rc = build(&in, false, false, &got, &e);
	order = field_order(got);
	CHECK(rc == 0 && !strcmp(order, "Date,From,Reply-To,To,Cc,Subject,Message-ID,Importance,"
				 "Priority,X-Priority,Sensitivity,Disposition-Notification-To,"
				 "Return-Receipt-To,X-One,X-Two,MIME-Version,Content-Type,"
				 "Content-Transfer-Encoding"), "field order: %s", order);
	CHECK(rc == 0 && strstr(got, "\r\nImportance: High\r\n") &&
	      strstr(got, "\r\nPriority: urgent\r\n") &&
	      strstr(got, "\r\nX-Priority: 1 (Highest)\r\n") &&
	      strstr(got, "\r\nSensitivity: Company-Confidential\r\n") &&
	      strstr(got, "\r\nDisposition-Notification-To: d@x\r\n") &&
	      strstr(got, "\r\nReturn-Receipt-To: n@x\r\n"), "option fields and their values");
	CHECK(!strstr(got, "Bcc"), "never a Bcc field");
	free(order);
	free(got);

	{
		static const char *const imp[] = { "High", "Normal", "Low" };
		static const char *const pri[] = { "normal", "urgent", "non-urgent" };
		static const char *const xpri[] = { "3 (Normal)", "1 (Highest)", "5 (Lowest)" };
		static const char *const sen[] = { "Personal", "Private", "Company-Confidential" };

		for (int i = 0; i < 3; i++) {
			char *v1, *v2, *v3, *v4;

			in.importance = in.priority = in.sensitivity = i + 1;
			rc = build(&in, false, false, &got, &e);
			v1 = field(got, "Importance");
			v2 = field(got, "Priority");
			v3 = field(got, "X-Priority");
			v4 = field(got, "Sensitivity");
			CHECK(rc == 0 && v1 && v2 && v3 && v4 && !strcmp(v1, imp[i]) &&
			      !strcmp(v2, pri[i]) && !strcmp(v3, xpri[i]) && !strcmp(v4, sen[i]),
			      "value %d: %s / %s / %s / %s", i + 1, imp[i], pri[i], xpri[i], sen[i]);
			free(v1);
			free(v2);
			free(v3);
			free(v4);
			free(got);
		}
		in.importance = 4;
		EXPECT_FAIL(&in, ERR_INTERNAL, "out of range", "importance out of range refused");
	}
}

static void test_from(void)
{
	struct compose_input in = base();

	in.date = "";
	in.message_id = "";
	in.from_name = "John Doe";
	EXPECT_EXACT(&in, false, false, "From: John Doe <a@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "From with a plain name");
	in.from_name = "Doe, John \"JD\"";
	EXPECT_EXACT(&in, false, false, "From: \"Doe, John \\\"JD\\\"\" <a@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "From name with specials is quoted");
	in.from_name = "J\xc3\xb6rg M\xc3\xbcller";
	EXPECT_EXACT(&in, false, false,
		     "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <a@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "non-ASCII From name is encoded");
	in.from_name = "=?not encoded?=";
	EXPECT_EXACT(&in, false, false, "From: \"=?not encoded?=\" <a@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n",
		     "a name that looks like an encoded word is quoted");
	in.from_name = NULL;
	in.from = "Someone <\"john doe\"@b.example>";
	EXPECT_EXACT(&in, false, false, "From: Someone <\"john doe\"@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "From with its own name");
	in.from_name = "Override";
	EXPECT_EXACT(&in, false, false, "From: Override <\"john doe\"@b.example>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "from_name replaces the parsed name");
	in.from_name = NULL;
	in.from = "root";
	EXPECT_EXACT(&in, false, false, "From: root\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "bare local From (sendmail style)");

	in.from = NULL;
	EXPECT_FAIL(&in, ERR_DATA, "no From", "missing From refused");
	in.from = "a@b, c@d";
	EXPECT_FAIL(&in, ERR_DATA, "exactly one", "two From addresses refused");
	in.from = "g: a@b;";
	EXPECT_FAIL(&in, ERR_DATA, "exactly one", "From group refused");
	in.from = "<a@b";
	EXPECT_FAIL(&in, ERR_DATA, "From: bad address: unbalanced '<'", "bad From refused");
}

static void test_recipients(void)
{
	struct compose_input in = base();
	struct err e;
	char *got, *v;
	int rc;

	in.date = "";
	in.message_id = "";
	in.fold_headers = false;
	sl_add(&to_l, "a@b, \"Last, First\" <c@d>");
	sl_add(&to_l, "team: e@f, G <g@h>;");
	sl_add(&to_l, "undisclosed-recipients:;");
	sl_add(&cc_l, "J\xc3\xb6rg <j@b\xc3\xbc" "cher.example>, \"x\"@y (comment)");
	sl_add(&cc_l, "");
	rc = build(&in, false, false, &got, &e);
	v = field(got, "To");
	CHECK(rc == 0 && v && !strcmp(v, "a@b, \"Last, First\" <c@d>, team: e@f, G <g@h>;, "
				   "undisclosed-recipients:;"), "To: lists and groups re-emitted");
	free(v);
	v = field(got, "Cc");
	CHECK(rc == 0 && v && !strcmp(v, "=?UTF-8?Q?J=C3=B6rg?= <j@b\xc3\xbc" "cher.example>, x@y"),
	      "Cc: name encoded, Unicode domain kept as written, quoting normalised");
	free(v);
	free(got);

	sl_clear(&to_l);
	sl_clear(&cc_l);
	sl_add(&to_l, "");
	sl_add(&to_l, " , ");
	rc = build(&in, false, false, &got, &e);
	CHECK(rc == 0 && !strstr(got, "To:") && !strstr(got, "Cc:"), "empty lists: no To/Cc");
	free(got);

	sl_clear(&to_l);
	sl_add(&to_l, "a@b, c@");
	EXPECT_FAIL(&in, ERR_DATA, "To: bad address: missing domain", "bad To address refused");
	sl_clear(&to_l);
	sl_add(&cc_l, "\"unbalanced <a@b>");
	EXPECT_FAIL(&in, ERR_DATA, "Cc: bad address: unbalanced '\"'", "bad Cc address refused");
	sl_clear(&cc_l);
	in.reply_to = "x@";
	EXPECT_FAIL(&in, ERR_DATA, "Reply-To: bad address", "bad Reply-To refused");
	in.reply_to = NULL;
	in.read_receipt_to = "<x";
	EXPECT_FAIL(&in, ERR_DATA, "Disposition-Notification-To: bad address",
		    "bad read-receipt address refused");
	in.read_receipt_to = NULL;
	in.delivery_notification_to = "x y";
	EXPECT_FAIL(&in, ERR_DATA, "Return-Receipt-To: bad address",
		    "bad delivery-notification address refused");
}

static void test_injection(void)
{
	struct compose_input in = base();

	in.subject = "Hi\r\nBcc: victim@example.com";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: CR or LF", "CRLF in Subject refused");
	in.subject = "Hi\nBcc: victim@example.com";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: CR or LF", "LF in Subject refused");
	in.subject = "Hi\r";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: CR or LF", "CR in Subject refused");
	in.subject = "Hi\r\n folded";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: CR or LF", "even folding in Subject refused");
	in.subject = NULL;
	in.from_name = "Name\r\nBcc: x@y";
	EXPECT_FAIL(&in, ERR_DATA, "From name: CR or LF", "CRLF in the From name refused");
	in.from_name = NULL;
	in.from = "a@b\r\nBcc: x@y";
	EXPECT_FAIL(&in, ERR_DATA, "From: CR or LF", "CRLF in From refused");
	in.from = "a@b,\r\n c@d";
	EXPECT_FAIL(&in, ERR_DATA, "From: CR or LF", "folded From refused too");
	in.from = "a@b";
	sl_add(&to_l, "x@y\r\nBcc: z@w");
	EXPECT_FAIL(&in, ERR_DATA, "To: CR or LF", "CRLF in To refused");
	sl_clear(&to_l);
	sl_add(&cc_l, "x@y\n");
	EXPECT_FAIL(&in, ERR_DATA, "Cc: CR or LF", "LF in Cc refused");
	sl_clear(&cc_l);
	in.reply_to = "x@y\r\n";
	EXPECT_FAIL(&in, ERR_DATA, "Reply-To: CR or LF", "CRLF in Reply-To refused");
	in.reply_to = NULL;
	in.read_receipt_to = "x@y\nX: y";
	EXPECT_FAIL(&in, ERR_DATA, "Disposition-Notification-To: CR or LF",
		    "LF in read_receipt_to refused");
	in.read_receipt_to = NULL;
	in.delivery_notification_to = "x@y\r";
	EXPECT_FAIL(&in, ERR_DATA, "Return-Receipt-To: CR or LF",
		    "CR in delivery_notification_to refused");
	in.delivery_notification_to = NULL;
	in.date = "Mon, 1 Jan 2026\r\nBcc: x@y";
	EXPECT_FAIL(&in, ERR_DATA, "Date: CR or LF", "CRLF in Date refused");
	in.date = "*";
	in.message_id = "<a@b>\r\nBcc: x@y";
	EXPECT_FAIL(&in, ERR_DATA, "Message-ID: CR or LF", "CRLF in Message-ID refused");
	in.message_id = "*";
	sl_add(&oh_l, "X-Test: a\r\nBcc: x@y");
	EXPECT_FAIL(&in, ERR_DATA, "OtherHeaders: CR or LF", "CRLF in other header refused");
	sl_clear(&oh_l);

	in.subject = "bad \xc3\x28 utf8";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: malformed UTF-8", "invalid UTF-8 Subject refused");
	in.subject = "overlong \xc0\xaf";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: malformed UTF-8", "overlong UTF-8 refused");
	in.subject = "cut \xe2\x82";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: malformed UTF-8", "truncated UTF-8 refused");
	in.subject = "esc \x1b[2J";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: control character", "ESC in Subject refused");
	in.subject = "c1 \xc2\x9b" "2J";
	EXPECT_FAIL(&in, ERR_DATA, "Subject: control character", "C1 control refused");
	in.subject = NULL;
	in.from_name = "\xff";
	EXPECT_FAIL(&in, ERR_DATA, "From name: malformed UTF-8", "invalid UTF-8 name refused");
	in.from_name = NULL;
	in.date = "Mon, 1 Jan 2026 \xc3\xa9";
	EXPECT_FAIL(&in, ERR_DATA, "Date: non-ASCII", "non-ASCII Date refused");
	in.date = "*";
	in.charset = "ISO-8859-1";
	EXPECT_FAIL(&in, ERR_DATA, "charset \"ISO-8859-1\" is not supported",
		    "unsupported charset refused");
}

static void test_other_headers(void)
{
	struct compose_input in = base();
	struct err e;
	char *got, *v;
	int rc;

	in.date = "";
	in.message_id = "";
	sl_add(&oh_l, "X-Mailer: smtpsend");
	sl_add(&oh_l, "X-Long: first");
	sl_add(&oh_l, "\tsecond");
	sl_add(&oh_l, "X-Note:   Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln  ");
	sl_add(&oh_l, "Sender: J\xc3\xb6rg <j@x.example>");
	sl_add(&oh_l, "In-Reply-To: <abc@x>");
	sl_add(&oh_l, "Content-Type: text/html; charset=\"UTF-8\"");
	sl_add(&oh_l, "");
	rc = build(&in, true, false, &got, &e);
	CHECK(rc == 0, "other headers accepted (%s)", e.msg);
	CHECK(rc == 0 && strstr(got, "\r\nX-Mailer: smtpsend\r\n"), "plain header kept");
	CHECK(rc == 0 && strstr(got, "\r\nX-Long: first\tsecond\r\n"),
	      "continuation line joined (and re-folded as needed)");
	CHECK(rc == 0 && strstr(got, "\r\nX-Note: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus "
				"=?UTF-8?Q?K=C3=B6ln?=\r\n"), "unstructured value encoded");
	CHECK(rc == 0 && strstr(got, "\r\nSender: =?UTF-8?Q?J=C3=B6rg?= <j@x.example>\r\n"),
	      "address header re-emitted with an encoded name");
	v = field(got, "Content-Type");
	CHECK(rc == 0 && v && !strcmp(v, "text/html; charset=\"UTF-8\"") &&
	      strstr(got, "Content-Type") == strstr(got, "Content-Type:") &&
	      !strstr(strstr(got, "Content-Type:") + 1, "Content-Type:"),
	      "a given Content-Type replaces the computed one");
	CHECK(rc == 0 && strstr(got, "\r\nMIME-Version: 1.0\r\n") &&
	      strstr(got, "\r\nContent-Transfer-Encoding: 8bit\r\n"),
	      "MIME-Version and the transfer encoding still computed");
	free(v);
	free(got);

	sl_clear(&oh_l);
	sl_add(&oh_l, "NoColon");
	EXPECT_FAIL(&in, ERR_DATA, "is not a \"Name: value\"", "entry without a colon refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "Bad Name: x");
	EXPECT_FAIL(&in, ERR_DATA, "is not a \"Name: value\"", "field name with a space refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, ": x");
	EXPECT_FAIL(&in, ERR_DATA, "is not a \"Name: value\"", "empty field name refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "X-\xc3\xa9: x");
	EXPECT_FAIL(&in, ERR_DATA, "is not a \"Name: value\"", "non-ASCII field name refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "bcc: x@y");
	EXPECT_FAIL(&in, ERR_DATA, "Bcc field is not allowed", "Bcc in other headers refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "Content-Transfer-Encoding: base64");
	EXPECT_FAIL(&in, ERR_DATA, "Content-Transfer-Encoding field is not allowed",
		    "Content-Transfer-Encoding in other headers refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, " continued");
	EXPECT_FAIL(&in, ERR_DATA, "continuation line", "leading continuation refused");
	sl_clear(&oh_l);
	in.subject = "s";
	sl_add(&oh_l, "subject: again");
	EXPECT_FAIL(&in, ERR_DATA, "given twice", "Subject given twice refused");
	in.subject = NULL;
	sl_clear(&oh_l);
	sl_add(&oh_l, "From: x@y");
	EXPECT_FAIL(&in, ERR_DATA, "given twice", "From in other headers refused");
	sl_clear(&oh_l);
	in.priority = 1;
	sl_add(&oh_l, "X-Priority: 1");
	EXPECT_FAIL(&in, ERR_DATA, "given twice", "X-Priority clash refused");
	in.priority = 0;
	sl_clear(&oh_l);
	sl_add(&oh_l, "References: <a@b>");
	sl_add(&oh_l, "References: <c@d>");
	EXPECT_FAIL(&in, ERR_DATA, "given twice", "single-instance field twice refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "Message-ID: <x@y>");
	EXPECT_EXACT(&in, false, false, "From: a@b.example\r\nMessage-ID: <x@y>\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n",
		     "Message-ID accepted from other headers when none is computed");
	sl_clear(&oh_l);
	sl_add(&oh_l, "References: <\xc3\xa9@x>");
	EXPECT_FAIL(&in, ERR_DATA, "non-ASCII text in a structured field",
		    "non-ASCII in a structured field refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "X-Ctl: a\x01");
	EXPECT_FAIL(&in, ERR_DATA, "control character", "control character refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "Resent-To: <broken");
	EXPECT_FAIL(&in, ERR_DATA, "bad address", "bad address in an address field refused");
	sl_clear(&oh_l);
	sl_add(&oh_l, "Content-Type: multipart/mixed; boundary=x");
	{
		char *g;
		int r = build(&in, false, true, &g, &e);

		CHECK(r < 0 && strstr(e.msg, "quoted-printable") && !*g,
		      "multipart type with a quoted-printable body refused");
		free(g);
	}
}

static void test_raw(void)
{
	struct compose_input in = base();

	sl_add(&oh_l, "");
	sl_add(&oh_l, "From: raw@x");
	sl_add(&oh_l, "Subject: raw");
	sl_add(&oh_l, " continued");
	sl_add(&oh_l, "X-Utf8: Gr\xc3\xbc\xc3\x9f" "e");
	in.subject = "ignored";
	sl_add(&to_l, "ignored@x");
	CHECK(compose_raw_headers(&in), "raw mode detected");
	EXPECT_EXACT(&in, true, true,
		     "From: raw@x\r\nSubject: raw\r\n continued\r\nX-Utf8: Gr\xc3\xbc\xc3\x9f" "e\r\n"
		     "\r\n", "raw mode writes the entries as given, nothing computed");
	sl_clear(&oh_l);
	sl_add(&oh_l, "");
	EXPECT_EXACT(&in, false, false, "\r\n", "raw mode with no entries");
	sl_add(&oh_l, "X: a\r\nBcc: b@c");
	EXPECT_FAIL(&in, ERR_DATA, "CR or LF", "raw mode refuses CR/LF");
	sl_clear(&oh_l);
	sl_add(&oh_l, "");
	sl_add(&oh_l, "Bcc: secret@x");
	EXPECT_FAIL(&in, ERR_DATA, "Bcc", "raw mode refuses Bcc");
	sl_clear(&oh_l);
	sl_add(&oh_l, "");
	sl_add(&oh_l, "not a header");
	EXPECT_FAIL(&in, ERR_DATA, "Name: value", "raw mode refuses a non-header line");
	sl_clear(&oh_l);
	sl_add(&oh_l, "X: y");
	CHECK(!compose_raw_headers(&in), "not raw when the first entry is a header");
}

static char *repeat(const char *s, int n)
{
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < n; i++)
		sb_adds(&sb, s);
	sb_addc(&sb, 0);
	return sb.s;
}

static void test_encoding_and_folding(void)
{
	struct compose_input in = base();
	struct err e;
	char *s, *got, *v;
	int rc;

	in.date = "";
	in.message_id = "";
	in.subject = "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln";
	EXPECT_EXACT(&in, false, false, "From: a@b.example\r\n"
		     "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?UTF-8?Q?K=C3=B6ln?=\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "Subject: only non-ASCII words encoded");
	in.subject = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
	EXPECT_EXACT(&in, false, false, "From: a@b.example\r\n"
		     "Subject: =?UTF-8?B?5pel5pys6Kqe?=\r\n"
		     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
		     "Content-Transfer-Encoding: 7bit\r\n\r\n", "Subject: B chosen for CJK text");

	SUBJECT_RT("plain ascii subject", 78, true, 78, "ASCII subject round trip");
	SUBJECT_RT("caf\xc3\xa9  au\tlait  cr\xc3\xa8me", 78, true, 78,
		   "inner blanks inside and between runs kept");
	SUBJECT_RT("looks =?like?= encoded", 78, true, 78, "an encoded-word lookalike is encoded");
	s = repeat("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 60);
	SUBJECT_RT(s, 78, true, 78, "long CJK subject: words <= 75, no split character");
	SUBJECT_RT(s, 30, true, 30, "long CJK subject at width 30");
	SUBJECT_RT(s, 0, false, 998, "long CJK subject unfolded stays under 998");
	free(s);
	s = repeat("\xf0\x9f\x98\x80", 100);
	SUBJECT_RT(s, 30, true, 30, "4-byte characters at width 30");
	SUBJECT_RT(s, 5, true, 30, "width below the minimum is raised to 30");
	free(s);
	s = repeat("a\xc3\xa9", 100);
	SUBJECT_RT(s, 78, true, 78, "mostly ASCII: Q words, 2-byte characters never split");
	free(s);
	s = repeat("word ", 200);
	s[strlen(s) - 1] = '\0';
	SUBJECT_RT(s, 78, true, 78, "long ASCII subject folded at 78");
	SUBJECT_RT(s, 40, true, 40, "long ASCII subject folded at 40");
	SUBJECT_RT(s, 2000, true, 998, "width above 998 is lowered to 998");
	SUBJECT_RT(s, 78, false, 998, "no folding: one line only as long as allowed");
	free(s);
	s = repeat("x", 200);
	SUBJECT_RT(s, 78, true, 9 + 200, "an unbreakable 200-octet word is left whole");
	free(s);
	s = repeat("y", 3000);
	SUBJECT_RT(s, 78, true, 78, "a 3000-octet word is encoded to stay under the limits");
	SUBJECT_RT(s, 78, false, 998, "the same without folding");
	free(s);

	in.subject = NULL;
	in.fold_headers = false;
	s = repeat("n", 1200);
	in.from_name = s;
	rc = build(&in, false, false, &got, &e);
	v = field(got, "From");
	CHECK(rc == 0 && max_line(got) <= 998 && v && strstr(v, "=?UTF-8?Q?nnn"),
	      "a 1200-octet display name is encoded, never a line over 998");
	if (rc || max_line(got) > 998 || !v || !strstr(v, "=?UTF-8?Q?nnn")) {
		printf("#   rc %d, max line %zu\n", rc, max_line(got));
		show("error", e.msg, strlen(e.msg));
		show("got", got, strlen(got));
	}
	free(v);
	free(got);
	free(s);
	in.from_name = NULL;

	/* Address lists fold after commas. */
	for (int i = 0; i < 20; i++) {
		char a[64];
		snprintf(a, sizeof a, "Person Number %d <person%d@example.com>", i, i);
		sl_add(&to_l, a);
	}
	in.fold_headers = true;
	rc = build(&in, false, false, &got, &e);
	v = field(got, "To");
	CHECK(rc == 0 && max_line(got) <= 78 && v && strstr(v, "Person Number 19 "
							    "<person19@example.com>") &&
	      strstr(got, ">,\r\n "), "To list folded at 78 after commas");
	{
		char *flat;
		struct strbuf want = STRBUF_INIT;

		for (int i = 0; i < 20; i++)
			sb_addf(&want, "%sPerson Number %d <person%d@example.com>", i ? ", " : "",
				i, i);
		in.fold_headers = false;
		free(got);
		rc = build(&in, false, false, &got, &e);
		flat = field(got, "To");
		CHECK(v && flat && !strcmp(v, want.s) && !strcmp(flat, want.s) &&
		      max_line(got) > 78, "folding changes nothing but line breaks");
		free(flat);
		sb_free(&want);
	}
	free(v);
	free(got);

	/* A quoted display name is never broken inside the quotes. */
	sl_clear(&to_l);
	sl_add(&to_l, "\"a very long name, with a comma, that does not fit on one line at all\" "
		      "<x@y>");
	in.fold_headers = true;
	in.max_header_length = 40;
	rc = build(&in, false, false, &got, &e);
	CHECK(rc == 0 && strstr(got, "\"a very long name, with a comma, that does not fit on one "
				"line at all\""), "quoted string kept whole when folding");
	free(got);
}

static void test_date_msgid(void)
{
	char buf[128];
	struct compose_input in = base();
	struct err e;
	char *got, *v;
	int rc;

	setenv("TZ", "UTC", 1);
	tzset();
	compose_date(NOW, buf, sizeof buf);
	CHECK(!strcmp(buf, "Mon, 23 Nov 2026 11:30:07 +0000"), "date in UTC: %s", buf);
	setenv("TZ", "IST-5:30", 1);
	tzset();
	compose_date(NOW, buf, sizeof buf);
	CHECK(!strcmp(buf, "Mon, 23 Nov 2026 17:00:07 +0530"), "date at +0530: %s", buf);
	setenv("TZ", "ABC3", 1);
	tzset();
	compose_date(NOW, buf, sizeof buf);
	CHECK(!strcmp(buf, "Mon, 23 Nov 2026 08:30:07 -0300"), "date at -0300: %s", buf);
	compose_date((time_t)0 + 3 * 3600, buf, sizeof buf);
	CHECK(!strcmp(buf, "Thu, 01 Jan 1970 00:00:00 -0300"), "epoch: %s", buf);
	compose_date(NOW, buf, 8);
	CHECK(strlen(buf) == 7, "date truncated to a small buffer");
	setenv("TZ", "UTC", 1);
	tzset();

	{
		static const struct { enum msgid_alg alg; size_t hex; } algs[] = {
			{ MSGID_MD5, 32 }, { MSGID_SHA1, 40 }, { MSGID_SHA256, 64 } };
		char other[128];

		for (size_t i = 0; i < 3; i++) {
			size_t n;
			bool ok;

			compose_message_id(algs[i].alg, "host.example", NOW, buf, sizeof buf);
			n = strspn(buf + 1, "0123456789ABCDEF");
			ok = buf[0] == '<' && n == algs[i].hex &&
			     !strcmp(buf + 1 + n, "@host.example>");
			CHECK(ok, "message-id with %zu hex digits: %s", algs[i].hex, buf);
		}
		compose_message_id(MSGID_SHA256, "host.example", NOW, other, sizeof other);
		CHECK(strcmp(buf, other) != 0, "two message-ids differ");
		compose_message_id(MSGID_MD5, "bad host>\r\n", NOW, buf, sizeof buf);
		CHECK(strstr(buf, "@localhost>") != NULL, "a bad host name is replaced: %s", buf);
		compose_message_id(MSGID_MD5, NULL, NOW, buf, sizeof buf);
		CHECK(strstr(buf, "@localhost>") != NULL, "no host name: localhost");
		compose_message_id(MSGID_SHA256, "h", NOW, buf, 20);
		CHECK(buf[0] == '\0', "too small a buffer gives an empty id, not a cut one");
	}

	in.message_id = "*";
	rc = build(&in, false, false, &got, &e);
	v = field(got, "Message-ID");
	CHECK(rc == 0 && v && strlen(v) == 1 + 64 + strlen("@host.example>") &&
	      strstr(v, "@host.example>"), "generated Message-ID in the header");
	free(v);
	free(got);
	in.message_id = NULL;
	rc = build(&in, false, false, &got, &e);
	v = field(got, "Message-ID");
	CHECK(rc == 0 && v && v[0] == '<', "NULL message_id generates one too");
	free(v);
	free(got);
	in.message_id = "abc.123@x.example";
	rc = build(&in, false, false, &got, &e);
	v = field(got, "Message-ID");
	CHECK(rc == 0 && v && !strcmp(v, "<abc.123@x.example>"), "angle brackets added");
	free(v);
	free(got);
	in.message_id = "<abc@x>";
	rc = build(&in, false, false, &got, &e);
	v = field(got, "Message-ID");
	CHECK(rc == 0 && v && !strcmp(v, "<abc@x>"), "bracketed id kept");
	free(v);
	free(got);
	in.message_id = "a b@x";
	EXPECT_FAIL(&in, ERR_DATA, "not a valid message identifier", "id with a space refused");
	in.message_id = "<a@x";
	EXPECT_FAIL(&in, ERR_DATA, "not a valid message identifier", "half-bracketed id refused");
	in.message_id = "<>";
	EXPECT_FAIL(&in, ERR_DATA, "empty identifier", "empty id refused");
	in.message_id = "\xc3\xa9@x";
	EXPECT_FAIL(&in, ERR_DATA, "non-ASCII", "non-ASCII id refused");
	in.message_id = "*";
	in.date = "*";
	rc = build(&in, false, false, &got, &e);
	v = field(got, "Date");
	CHECK(rc == 0 && v && !strcmp(v, "Mon, 23 Nov 2026 11:30:07 +0000"), "Date from now");
	free(v);
	free(got);
}

/* ---- body ---------------------------------------------------------------- */

static FILE *body_of(const void *data, size_t len)
{
	FILE *f = tmpfile();

	if (!f) {
		perror("tmpfile");
		exit(2);
	}
	if (len)
		fwrite(data, 1, len, f);
	rewind(f);
	return f;
}

static void scan_check(int line, const void *data, size_t len, bool want8, bool wantqp,
		       const char *desc)
{
	FILE *f = body_of(data, len);
	struct err e = { 0 };
	bool b8 = !want8, qp = !wantqp;
	int rc = compose_scan_body(f, &b8, &qp, &e);

	check(rc == 0 && b8 == want8 && qp == wantqp && ftello(f) == 0, line, "scan: %s", desc);
	if (!(rc == 0 && b8 == want8 && qp == wantqp))
		printf("#   rc %d 8bit %d qp %d (%s)\n", rc, b8, qp, e.msg);
	fclose(f);
}

#define SCAN(data, len, b8, qp, desc) scan_check(__LINE__, data, len, b8, qp, desc)

/* Run compose_write_body; the output in *out (caller frees). */
static int write_body(const void *data, size_t len, bool qp, char **out, size_t *outlen)
{
	FILE *f = body_of(data, len);
	FILE *o = open_memstream(out, outlen);
	struct err e = { 0 };
	int rc = compose_write_body(f, qp, o, &e);

	fclose(o);
	fclose(f);
	return rc;
}

static void body_exact(int line, const char *data, size_t len, bool qp, const char *want,
		       size_t wantlen, const char *desc)
{
	char *out = NULL;
	size_t n = 0;
	int rc = write_body(data, len, qp, &out, &n);
	bool ok = rc == 0 && n == wantlen && !memcmp(out, want, n);

	check(ok, line, "%s: %s", qp ? "qp" : "body", desc);
	if (!ok) {
		show("got", out, n);
		show("want", want, wantlen);
	}
	free(out);
}

#define BODY(data, qp, want, desc) \
	body_exact(__LINE__, data, sizeof data - 1, qp, want, sizeof want - 1, desc)

/* Decode quoted-printable with CRLF hard breaks; checks the line rules.
 * Returns false on a violation. */
static bool qp_decode(const char *s, size_t n, struct strbuf *out, char *why, size_t whysz)
{
	size_t i = 0;

	while (i < n) {
		const char *eol = memchr(s + i, '\r', n - i);
		size_t ll;

		if (!eol || (size_t)(eol - s) + 1 >= n || eol[1] != '\n') {
			snprintf(why, whysz, "line without CRLF at %zu", i);
			return false;
		}
		ll = (size_t)(eol - (s + i));
		if (ll > 76) {
			snprintf(why, whysz, "line of %zu at %zu", ll, i);
			return false;
		}
		if (ll && (s[i + ll - 1] == ' ' || s[i + ll - 1] == '\t')) {
			snprintf(why, whysz, "trailing blank at %zu", i);
			return false;
		}
		for (size_t k = i; k < i + ll; k++) {
			unsigned char c = (unsigned char)s[k];

			if (c == '=') {
				if (k + 1 == i + ll) {
					goto soft;
				}
				if (k + 2 >= i + ll || hexv(s[k + 1]) < 0 || hexv(s[k + 2]) < 0) {
					snprintf(why, whysz, "bad escape at %zu", k);
					return false;
				}
				sb_addc(out, (char)(hexv(s[k + 1]) << 4 | hexv(s[k + 2])));
				k += 2;
			} else if ((c < 33 || c > 126) && c != ' ' && c != '\t') {
				snprintf(why, whysz, "raw byte 0x%02x at %zu", c, k);
				return false;
			} else {
				sb_addc(out, (char)c);
			}
		}
		sb_add(out, "\r\n", 2);
soft:
		i += ll + 2;
	}
	return true;
}

/* The body as a reader should see it: every LF not after a CR becomes CRLF. */
static void crlf_normalise(const unsigned char *d, size_t n, struct strbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			sb_addc(out, '\r');
		sb_addc(out, (char)d[i]);
	}
}

static void qp_roundtrip(int line, const unsigned char *d, size_t n, const char *desc)
{
	char *out = NULL, why[128] = "";
	size_t on = 0;
	struct strbuf dec = STRBUF_INIT, want = STRBUF_INIT;
	int rc = write_body(d, n, true, &out, &on);
	bool ok = rc == 0 && qp_decode(out, on, &dec, why, sizeof why);

	crlf_normalise(d, n, &want);
	ok = ok && dec.len == want.len && (!dec.len || !memcmp(dec.s, want.s, dec.len));
	ok = ok && (n == 0 ? on == 0 : on >= 2 && out[on - 2] == '\r' && out[on - 1] == '\n');
	check(ok, line, "qp round trip: %s", desc);
	if (!ok)
		printf("#   rc %d, %s, decoded %zu want %zu\n", rc, why, dec.len, want.len);
	sb_free(&dec);
	sb_free(&want);
	free(out);
}

#define QP_RT(d, n, desc) qp_roundtrip(__LINE__, (const unsigned char *)(d), n, desc)

static void test_scan(void)
{
	char *s;

	SCAN("", 0, false, false, "empty body");
	SCAN("hello\n", 6, false, false, "ASCII");
	SCAN("h\xc3\xa9llo\r\n", 8, true, false, "8-bit");
	SCAN("a\0b\n", 4, false, true, "NUL needs qp");
	SCAN("a\rb\n", 4, false, true, "bare CR needs qp");
	SCAN("a\r\nb\r\n", 6, false, false, "CRLF is fine");
	SCAN("a\r", 2, false, true, "CR at the very end is bare");
	SCAN("\xff\0", 2, true, true, "8-bit and NUL");
	s = malloc(20000);
	memset(s, 'x', 998);
	memcpy(s + 998, "\r\n", 2);
	SCAN(s, 1000, false, false, "998-octet line with CRLF");
	memcpy(s + 998, "\n", 1);
	SCAN(s, 999, false, false, "998-octet line with LF");
	SCAN(s, 998, false, false, "998-octet last line without newline");
	memset(s, 'x', 999);
	SCAN(s, 999, false, true, "999-octet line needs qp");
	memcpy(s + 999, "\r\n", 2);
	SCAN(s, 1001, false, true, "999-octet line with CRLF needs qp");
	/* A CRLF split across the scanner's 16 KiB reads. */
	memset(s, 'x', 20000);
	for (size_t i = 500; i + 2 < 20000; i += 500) {
		s[i] = '\r';
		s[i + 1] = '\n';
	}
	s[16383] = '\r';
	s[16384] = '\n';
	SCAN(s, 20000, false, false, "CRLF across a buffer boundary");
	free(s);
	{
		struct err e = { 0 };
		bool b8, qp;
		FILE *p = popen("printf 'abc'", "r");
		int rc = p ? compose_scan_body(p, &b8, &qp, &e) : 0;

		if (!p)
			CHECK(true, "scan: an unseekable body is an I/O error # SKIP no popen");
		else
			CHECK(rc < 0 && e.cls == ERR_IO && strstr(e.msg, "rewind"),
			      "scan: an unseekable body is an I/O error");
		if (p)
			pclose(p);
	}
}

static void test_body(void)
{
	char *out = NULL;
	size_t on = 0;
	unsigned char *big;
	uint32_t x = 12345;

	BODY("", false, "", "empty body gives nothing");
	BODY("", true, "", "empty body gives nothing");
	BODY("a\nb\n", false, "a\r\nb\r\n", "LF becomes CRLF");
	BODY("a\r\nb\r\n", false, "a\r\nb\r\n", "CRLF kept");
	BODY("a\r\nb", false, "a\r\nb\r\n", "final CRLF added");
	BODY("a\rb", false, "a\r\nb\r\n", "bare CR becomes a line end");
	BODY("\n\n", false, "\r\n\r\n", "empty lines kept");
	BODY("h\xc3\xa9llo\n", false, "h\xc3\xa9llo\r\n", "8-bit passed through");

	BODY("a=b\n", true, "a=3Db\r\n", "qp: '=' encoded");
	BODY("trail \n", true, "trail=20\r\n", "qp: trailing space encoded");
	BODY("trail\t\r\n", true, "trail=09\r\n", "qp: trailing tab encoded");
	BODY("in side\n", true, "in side\r\n", "qp: inner space literal");
	BODY("a  \n", true, "a =20\r\n", "qp: only the last blank needs encoding");
	BODY("a\0b\n", true, "a=00b\r\n", "qp: NUL encoded");
	BODY("a\rb\n", true, "a=0Db\r\n", "qp: bare CR encoded");
	BODY("a \rb\n", true, "a =0Db\r\n", "qp: blank before a bare CR stays literal");
	BODY("a\r", true, "a=0D=\r\n", "qp: CR at the end is data");
	BODY("h\xc3\xa9llo\n", true, "h=C3=A9llo\r\n", "qp: 8-bit encoded");
	BODY("no newline", true, "no newline=\r\n", "qp: soft break ends an unterminated body");
	BODY("end ", true, "end=20=\r\n", "qp: trailing blank at the very end encoded");
	BODY("x\n\n", true, "x\r\n\r\n", "qp: hard breaks kept");
	BODY("x\r\n\r\n", true, "x\r\n\r\n", "qp: CRLF hard breaks kept");
	BODY("~\x7f\n", true, "~=7F\r\n", "qp: DEL encoded");
	BODY("0123456789012345678901234567890123456789012345678901234567890123456789"
	     "01234567\n", true,
	     "0123456789012345678901234567890123456789012345678901234567890123456789"
	     "01234=\r\n567\r\n", "qp: 78-octet line gets a soft break at 76");
	BODY("0123456789012345678901234567890123456789012345678901234567890123456789"
	     "0123=\n", true,
	     "0123456789012345678901234567890123456789012345678901234567890123456789"
	     "0123=\r\n=3D\r\n", "qp: an escape is never split by a soft break");

	{
		char *s = repeat("long line with spaces and = signs \xc3\xa9 ", 40);
		QP_RT(s, strlen(s), "long line");
		free(s);
		s = repeat(" ", 200);
		QP_RT(s, strlen(s), "200 blanks");
		free(s);
		s = repeat("\t \n", 50);
		QP_RT(s, strlen(s), "blank-only lines");
		free(s);
	}
	QP_RT("", 0, "empty");
	QP_RT("\r\r\n\r", 4, "CRs in a row");

	/* Random bytes across buffer boundaries, both modes. */
	big = malloc(100000);
	for (size_t i = 0; i < 100000; i++) {
		x = x * 1103515245u + 12345u;
		big[i] = (unsigned char)(x >> 16);
		if (big[i] % 7 == 0)
			big[i] = (x >> 8) & 1 ? '\n' : ' ';
	}
	QP_RT(big, 100000, "100000 random bytes");
	{
		struct strbuf want = STRBUF_INIT;
		unsigned char *t = malloc(100000);
		size_t n = 0;
		int rc;

		/* Non-QP: a body without bare CRs, as the scanner would pass. */
		for (size_t i = 0; i < 100000; i++)
			if (big[i] != '\r')
				t[n++] = big[i];
		crlf_normalise(t, n, &want);
		if (want.len && want.s[want.len - 1] != '\n')
			sb_add(&want, "\r\n", 2);
		rc = write_body(t, n, false, &out, &on);
		CHECK(rc == 0 && on == want.len && !memcmp(out, want.s, on),
		      "body: 100000 bytes across buffers");
		free(out);
		sb_free(&want);
		free(t);
	}
	free(big);

	{
		FILE *f = body_of("x\n", 2);
		FILE *full = fopen("/dev/full", "w");
		struct err e = { 0 };
		int rc = full ? compose_write_body(f, true, full, &e) : -1;

		if (!full)
			CHECK(true, "body: a write error is reported # SKIP no /dev/full");
		else
			CHECK(rc < 0 && e.cls == ERR_IO, "body: a write error is reported");
		if (full)
			fclose(full);
		fclose(f);
	}
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	test_basic();
	test_order();
	test_from();
	test_recipients();
	test_injection();
	test_other_headers();
	test_raw();
	test_encoding_and_folding();
	test_date_msgid();
	test_scan();
	test_body();
	sl_free(&to_l);
	sl_free(&cc_l);
	sl_free(&oh_l);
	return tap_done();
}

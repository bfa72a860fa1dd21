/* compose.c - build an RFC 5322 message from the property set.
 *
 * Header fields are laid out token by token by a small writer (struct
 * hdr) that knows where a field may be folded and encodes non-ASCII text
 * as RFC 2047 encoded words sized to the room left on the line, so the
 * folding width and the 998-octet line limit are enforced in one place.
 * Every user-given value is checked before it is written: CR or LF
 * (header injection), malformed UTF-8 and control characters are
 * refused. */
#include "compose.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "addr.h"

#define HDR_LINE_MAX 998   /* RFC 5322 2.1.1, octets without the CRLF */
#define FOLD_DEFAULT 78
#define FOLD_MIN 30        /* narrower leaves no room for an encoded word */
#define WS_RUN_MAX 100     /* a longer blank run is written as one space */
#define EW_MAX 75          /* RFC 2047 encoded-word length limit */
#define EW_OVERHEAD 12     /* "=?UTF-8?Q?" and "?=" */
#define EW_MIN 20          /* the smallest word holding any character (4 bytes in B) */
#define EW_SLIVER 30       /* less room than this left on a line: fold first */
#define QP_LINE 76         /* RFC 2045 encoded line length, "=" included */
#define IO_BUF 16384

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static bool is_empty(const char *s)
{
	return !s || !*s;
}

/* Check a user-given value before it goes into a header field: no CR or
 * LF (they would end the field and start another: header injection), no
 * other control character (C0, DEL or C1), well-formed UTF-8, and ASCII
 * only when allow_8bit is false.  field names the value in the error. */
static int check_text(const char *field, const char *s, bool allow_8bit, struct err *e)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			err_set(e, ERR_DATA, 0, "%s: CR or LF inside a header field is refused "
				"(header injection)", field);
			return -1;
		}
	}
	if (!addr_utf8_valid(s, len)) {
		err_set(e, ERR_DATA, 0, "%s: malformed UTF-8", field);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f ||
		    (c == 0xc2 && (unsigned char)s[i + 1] < 0xa0)) {
			err_set(e, ERR_DATA, 0, "%s: control character in a header field", field);
			return -1;
		}
		if (c >= 0x80 && !allow_8bit) {
			err_set(e, ERR_DATA, 0, "%s: non-ASCII text is not allowed in this field",
				field);
			return -1;
		}
	}
	return 0;
}

/* ---- the header writer ------------------------------------------------- */

struct hdr {
	struct strbuf *out;
	const char *name;    /* field being written, for errors */
	size_t col;          /* octets on the current physical line */
	size_t limit;        /* fold rather than go past this column */
	bool first;          /* no value token written yet */
	struct err *e;
	int rc;              /* sticky: -1 once an error is recorded */
};

static void hdr_begin(struct hdr *h, const char *name)
{
	h->name = name;
	h->first = true;
	sb_adds(h->out, name);
	sb_addc(h->out, ':');
	h->col = strlen(name) + 1;
}

static void hdr_end(struct hdr *h)
{
	sb_adds(h->out, "\r\n");
}

/* The white space actually written before the next token: the first
 * token of a value always gets one space after the colon. */
static size_t hdr_wslen(const struct hdr *h, size_t wsl)
{
	return h->first ? 1 : wsl;
}

static void hdr_newline(struct hdr *h)
{
	sb_adds(h->out, "\r\n");
	h->col = 0;
}

/* Write one token preceded by the white space ws[0..wsl).  A token after
 * white space may start a continuation line (folding is CRLF inserted
 * before the white space); one with wsl == 0 sticks to what precedes it.
 * The first token stays on the field name's line. */
static void hdr_tok(struct hdr *h, const char *ws, size_t wsl, const char *text, size_t len)
{
	if (h->rc)
		return;
	if (h->first) {
		ws = " ", wsl = 1;
		h->first = false;
	} else if (wsl && h->col + wsl + len > h->limit) {
		hdr_newline(h);
	}
	sb_add(h->out, ws, wsl);
	sb_add(h->out, text, len);
	h->col += wsl + len;
	if (h->col > HDR_LINE_MAX) {
		err_set(h->e, ERR_DATA, 0, "%s: a word too long for a header line (over %d "
			"octets)", h->name, HDR_LINE_MAX);
		h->rc = -1;
	}
}

static void hdr_toks(struct hdr *h, const char *ws, const char *text)
{
	hdr_tok(h, ws, strlen(ws), text, strlen(text));
}

/* Characters written as themselves in a Q-encoded word: the set RFC 2047
 * section 5 (3) allows in a phrase, safe in every context. */
static bool q_literal(unsigned char c)
{
	return is_alnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t u8_len(unsigned char c)
{
	return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

static size_t q_len(const char *s, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		len += q_literal(c) || c == ' ' ? 1 : 3;
	}
	return len;
}

static size_t b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* How many bytes of s[0..len), whole UTF-8 characters only, fit in one
 * encoded word of at most room characters. */
static size_t ew_fit(const char *s, size_t len, size_t room, bool b64)
{
	size_t payload = room > EW_OVERHEAD ? room - EW_OVERHEAD : 0;
	size_t n = 0, qlen = 0;

	while (n < len) {
		size_t cl = u8_len((unsigned char)s[n]), need;

		if (cl > len - n)
			cl = len - n;
		need = b64 ? b64_len(n + cl) : qlen + q_len(s + n, cl);
		if (need > payload)
			break;
		qlen = need;
		n += cl;
	}
	return n;
}

static void ew_write(struct strbuf *sb, const char *s, size_t n, bool b64)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char b64c[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)s;

	sb_adds(sb, b64 ? "=?UTF-8?B?" : "=?UTF-8?Q?");
	if (b64) {
		for (size_t i = 0; i < n; i += 3) {
			uint32_t v = (uint32_t)u[i] << 16;
			size_t left = n - i;

			if (left > 1)
				v |= (uint32_t)u[i + 1] << 8;
			if (left > 2)
				v |= u[i + 2];
			sb_addc(sb, b64c[v >> 18 & 63]);
			sb_addc(sb, b64c[v >> 12 & 63]);
			sb_addc(sb, left > 1 ? b64c[v >> 6 & 63] : '=');
			sb_addc(sb, left > 2 ? b64c[v & 63] : '=');
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (q_literal(u[i])) {
				sb_addc(sb, (char)u[i]);
			} else if (u[i] == ' ') {
				sb_addc(sb, '_');
			} else {
				sb_addc(sb, '=');
				sb_addc(sb, hex[u[i] >> 4]);
				sb_addc(sb, hex[u[i] & 15]);
			}
		}
	}
	sb_adds(sb, "?=");
}

/* Write s[0..len) (valid UTF-8) as a run of encoded words, the first
 * preceded by ws.  Each word is sized to the room left on the line
 * (never over 75 characters, never splitting a character) and chooses
 * its own encoding, Q or B. */
static void hdr_encoded(struct hdr *h, const char *ws, size_t wsl, const char *s, size_t len)
{
	struct strbuf w = STRBUF_INIT;
	bool firstword = true;

	while (len > 0 && !h->rc) {
		const char *sep = firstword ? ws : " ";
		size_t sepl = hdr_wslen(h, firstword ? wsl : 1);
		bool can_fold = !h->first && sepl > 0;
		size_t room = h->limit > h->col + sepl ? h->limit - h->col - sepl : 0;
		size_t nb, n;
		bool b64;

		if (room > EW_MAX)
			room = EW_MAX;
		if (can_fold && room < EW_SLIVER &&
		    (room < EW_MIN || (ew_fit(s, len, room, false) < len &&
				       ew_fit(s, len, room, true) < len))) {
			hdr_newline(h);
			room = h->limit > sepl ? h->limit - sepl : 0;
			if (room > EW_MAX)
				room = EW_MAX;
		}
		/* Where the line cannot be folded the width gives way; the
		 * 998 limit is still checked by hdr_tok(). */
		if (room < EW_MIN)
			room = EW_MAX;
		/* Q keeps mostly-Latin text readable; B wins once Q would
		 * be half as long again (CJK, emoji...). */
		nb = ew_fit(s, len, room, true);
		b64 = 2 * q_len(s, nb) > 3 * b64_len(nb);
		n = ew_fit(s, len, room, b64);
		sb_reset(&w);
		ew_write(&w, s, n, b64);
		hdr_tok(h, sep, firstword ? wsl : 1, w.s, w.len);
		s += n;
		len -= n;
		firstword = false;
	}
	sb_free(&w);
}

/* Must this word of unstructured text be encoded?  Non-ASCII, something
 * a reader would take for an encoded word, or too long for any line. */
static bool word_needs_ew(const struct hdr *h, const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)w[i] >= 0x80)
			return true;
		if (w[i] == '=' && i + 1 < n && w[i + 1] == '?')
			return true;
	}
	return strlen(h->name) + 2 + n > HDR_LINE_MAX;
}

static void ws_span(const char *v, size_t a, size_t b, const char **ws, size_t *wsl)
{
	*ws = v + a;
	*wsl = b - a;
	if (*wsl > WS_RUN_MAX)
		*ws = " ", *wsl = 1;
}

/* Write unstructured text (Subject, X-...): ASCII words as they are,
 * runs of words that need it as encoded words (the white space inside a
 * run is encoded with it, as RFC 2047 drops white space between encoded
 * words).  Leading and trailing blanks are dropped. */
static void hdr_unstructured(struct hdr *h, const char *v)
{
	size_t len = strlen(v), i = 0;

	while (len && is_wsp((unsigned char)v[len - 1]))
		len--;
	while (i < len && is_wsp((unsigned char)v[i]))
		i++;
	while (i < len && !h->rc) {
		size_t ws0 = i, w0, wsl;
		const char *ws;

		while (i < len && is_wsp((unsigned char)v[i]))
			i++;
		w0 = i;
		while (i < len && !is_wsp((unsigned char)v[i]))
			i++;
		ws_span(v, ws0, w0, &ws, &wsl);
		if (!word_needs_ew(h, v + w0, i - w0)) {
			hdr_tok(h, ws, wsl, v + w0, i - w0);
			continue;
		}
		for (;;) {
			size_t j = i, k;

			while (j < len && is_wsp((unsigned char)v[j]))
				j++;
			k = j;
			while (k < len && !is_wsp((unsigned char)v[k]))
				k++;
			if (k == j || !word_needs_ew(h, v + j, k - j))
				break;
			i = k;
		}
		hdr_encoded(h, ws, wsl, v + w0, i - w0);
	}
}

/* Write ASCII structured text split at blanks outside quoted strings and
 * comments, so folding never lands inside one. */
static void hdr_structured(struct hdr *h, const char *v)
{
	size_t len = strlen(v), i = 0;

	while (len && is_wsp((unsigned char)v[len - 1]))
		len--;
	while (i < len && is_wsp((unsigned char)v[i]))
		i++;
	while (i < len && !h->rc) {
		size_t ws0 = i, w0, wsl, depth = 0;
		bool inq = false;
		const char *ws;

		while (i < len && is_wsp((unsigned char)v[i]))
			i++;
		w0 = i;
		while (i < len && (inq || depth || !is_wsp((unsigned char)v[i]))) {
			char c = v[i];

			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"' && !depth)
				inq = !inq;
			else if (c == '(' && !inq)
				depth++;
			else if (c == ')' && !inq && depth)
				depth--;
			i++;
		}
		ws_span(v, ws0, w0, &ws, &wsl);
		hdr_tok(h, ws, wsl, v + w0, i - w0);
	}
}

/* Can an ASCII display name go out as a run of atoms (each short
 * enough for any line)? */
static bool phrase_is_atoms(const char *s)
{
	size_t word = 0;

	if (!*s || *s == ' ' || strstr(s, "  ") || strstr(s, "=?") || s[strlen(s) - 1] == ' ')
		return false;
	for (; *s; s++) {
		if (*s == ' ')
			word = 0;
		else if (!is_atext((unsigned char)*s) || ++word > HDR_LINE_MAX / 2)
			return false;
	}
	return true;
}

/* Write a display name (valid UTF-8, checked): atoms when possible, else
 * a quoted string, else (non-ASCII or very long) encoded words. */
static void hdr_phrase(struct hdr *h, const char *ws, const char *name)
{
	struct strbuf q = STRBUF_INIT;
	size_t len = strlen(name);

	if (!has_8bit(name) && phrase_is_atoms(name)) {
		const char *p = name;

		while (*p) {
			size_t n = strcspn(p, " ");
			hdr_tok(h, p == name ? ws : " ", p == name ? strlen(ws) : 1, p, n);
			p += n;
			if (*p)
				p++;
		}
		return;
	}
	if (!has_8bit(name)) {
		sb_addc(&q, '"');
		for (const char *p = name; *p; p++) {
			if (*p == '"' || *p == '\\')
				sb_addc(&q, '\\');
			sb_addc(&q, *p);
		}
		sb_addc(&q, '"');
	}
	/* A quoted string cannot be folded; a long one is encoded instead. */
	if (q.len && q.len <= HDR_LINE_MAX / 2)
		hdr_tok(h, ws, strlen(ws), q.s, q.len);
	else
		hdr_encoded(h, ws, strlen(ws), name, len);
	sb_free(&q);
}

static void hdr_mailbox(struct hdr *h, const char *ws, const char *display, const struct addr *a)
{
	struct strbuf spec = STRBUF_INIT;

	if (!is_empty(display)) {
		hdr_phrase(h, ws, display);
		sb_addc(&spec, '<');
		addr_append_spec(&spec, a);
		sb_addc(&spec, '>');
		hdr_toks(h, " ", spec.s);
	} else {
		addr_append_spec(&spec, a);
		hdr_toks(h, ws, spec.s);
	}
	sb_free(&spec);
}

/* Write an address list, groups included, as "a, b, team: c, d;". */
static void hdr_addr_list(struct hdr *h, const struct addr_list *l)
{
	size_t i = 0, gi = 0;
	bool first = true;

	while ((i < l->n || gi < l->ng) && !h->rc) {
		if (!first)
			hdr_toks(h, "", ",");
		first = false;
		if (gi < l->ng && l->g[gi].first <= i) {
			const struct addr_group *g = &l->g[gi++];

			hdr_phrase(h, " ", g->name);
			hdr_toks(h, "", ":");
			for (size_t k = 0; k < g->n && g->first + k < l->n; k++) {
				if (k)
					hdr_toks(h, "", ",");
				hdr_mailbox(h, " ", l->v[g->first + k].display, &l->v[g->first + k]);
			}
			hdr_toks(h, "", ";");
			i = g->first + g->n;
		} else {
			hdr_mailbox(h, " ", l->v[i].display, &l->v[i]);
			i++;
		}
	}
}

/* ---- inputs -------------------------------------------------------------- */

/* Parse the values of one address field (each entry a comma list) into l.
 * Errors name the field. */
static int parse_addrs(const char *field, const char *const *v, size_t n, struct addr_list *l,
		       struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		if (!v[i])
			continue;
		if (check_text(field, v[i], true, e) < 0)
			return -1;
		if (addr_parse_list(v[i], ADDR_ALLOW_LOCAL, l, e) < 0) {
			char msg[sizeof e->msg];
			memcpy(msg, e->msg, sizeof msg);
			err_set(e, ERR_DATA, 0, "%s: %s", field, msg);
			return -1;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].display && check_text(field, l->v[i].display, true, e) < 0)
			return -1;
	return 0;
}

static int parse_addr1(const char *field, const char *s, struct addr_list *l, struct err *e)
{
	return is_empty(s) ? 0 : parse_addrs(field, &s, 1, l, e);
}

static bool list_empty(const struct addr_list *l)
{
	return l->n == 0 && l->ng == 0;
}

/* A header line from OtherHeaders, continuation lines joined. */
struct ohdr {
	char *name;
	struct strbuf value;
};

struct ohdrs {
	struct ohdr *v;
	size_t n;
};

static void ohdrs_free(struct ohdrs *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].name);
		sb_free(&o->v[i].value);
	}
	free(o->v);
	o->v = NULL;
	o->n = 0;
}

/* A field name: printable ASCII except ':' (RFC 5322 ftext). */
static bool field_name_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == ':')
			return false;
	}
	return true;
}

/* Check OtherHeaders entries from index start on, joining continuation
 * lines (entries starting with a blank) to the field before; when o is
 * NULL only check (raw mode writes the lines as they are). */
static int parse_other(const struct strlist *sl, size_t start, struct ohdrs *o, struct err *e)
{
	bool have = false;

	for (size_t i = start; sl && i < sl->n; i++) {
		const char *s = sl->v[i];
		size_t n;

		/* A stray empty entry (a trailing newline in the option) is
		 * skipped: writing it would end the header block early. */
		if (is_empty(s))
			continue;
		if (check_text("OtherHeaders", s, true, e) < 0)
			return -1;
		if (strlen(s) > HDR_LINE_MAX) {
			err_set(e, ERR_DATA, 0, "OtherHeaders: line longer than %d octets",
				HDR_LINE_MAX);
			return -1;
		}
		if (is_wsp((unsigned char)s[0])) {
			if (!have) {
				err_set(e, ERR_DATA, 0, "OtherHeaders: continuation line \"%.40s\" "
					"without a header field before it", s);
				return -1;
			}
			if (o)
				sb_adds(&o->v[o->n - 1].value, s);
			continue;
		}
		n = strcspn(s, ":");
		if (!s[n] || !field_name_ok(s, n)) {
			err_set(e, ERR_DATA, 0, "OtherHeaders: \"%.60s\" is not a \"Name: value\" "
				"header field", s);
			return -1;
		}
		if (n == 3 && !ascii_ncasecmp(s, "Bcc", 3)) {
			err_set(e, ERR_DATA, 0, "OtherHeaders: a Bcc field is not allowed (blind "
				"copies must not be disclosed; use the bcc setting)");
			return -1;
		}
		if (n == 25 && !ascii_ncasecmp(s, "Content-Transfer-Encoding", 25)) {
			err_set(e, ERR_DATA, 0, "OtherHeaders: a Content-Transfer-Encoding field "
				"is not allowed (it follows from the body)");
			return -1;
		}
		have = true;
		if (o) {
			struct ohdr *h;

			o->v = xrealloc(o->v, (o->n + 1) * sizeof *o->v);
			h = &o->v[o->n++];
			h->name = xstrndup(s, n);
			h->value = (struct strbuf)STRBUF_INIT;
			s += n + 1;
			while (is_wsp((unsigned char)*s))
				s++;
			sb_adds(&h->value, s);
		}
	}
	return 0;
}

static const char *const addr_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Resent-From", "Resent-Sender",
	"Resent-Reply-To", "Resent-To", "Resent-Cc", "Disposition-Notification-To",
	"Return-Receipt-To", "Errors-To", "Mail-Followup-To", "Mail-Reply-To", NULL
};

static const char *const ascii_fields[] = {
	"Date", "Resent-Date", "Message-ID", "Resent-Message-ID", "In-Reply-To",
	"References", "Received", "Return-Path", "MIME-Version", "DKIM-Signature",
	"Authentication-Results", "Auto-Submitted", NULL
};

static const char *const ascii_prefixes[] = { "Content-", "List-", "ARC-", NULL };

/* Fields that may appear once (RFC 5322 3.6, RFC 2045, and the fields
 * this module computes). */
static const char *const single_fields[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Message-ID", "In-Reply-To",
	"References", "Subject", "MIME-Version", "Content-Type", "Importance", "Priority",
	"X-Priority", "Sensitivity", "Disposition-Notification-To", "Return-Receipt-To", NULL
};

static bool in_table(const char *const *t, const char *name)
{
	for (; *t; t++)
		if (!ascii_casecmp(*t, name))
			return true;
	return false;
}

static bool ascii_field(const char *name)
{
	if (in_table(ascii_fields, name))
		return true;
	for (const char *const *p = ascii_prefixes; *p; p++)
		if (!ascii_ncasecmp(name, *p, strlen(*p)))
			return true;
	return false;
}

static int write_other(struct hdr *h, const struct ohdr *o, struct err *e)
{
	const char *v = o->value.s ? o->value.s : "";
	char field[128];

	snprintf(field, sizeof field, "OtherHeaders %s", o->name);
	if (in_table(addr_fields, o->name)) {
		struct addr_list l = ADDR_LIST_INIT;
		int rc = parse_addr1(field, v, &l, e);

		if (rc == 0) {
			hdr_begin(h, o->name);
			hdr_addr_list(h, &l);
			hdr_end(h);
		}
		addr_list_free(&l);
		return rc;
	}
	hdr_begin(h, o->name);
	if (ascii_field(o->name)) {
		if (has_8bit(v)) {
			err_set(e, ERR_DATA, 0, "%s: non-ASCII text in a structured field", field);
			return -1;
		}
		hdr_structured(h, v);
	} else {
		hdr_unstructured(h, v);
	}
	hdr_end(h);
	return 0;
}

/* ---- date and message-id ----------------------------------------------- */

void compose_date(time_t t, char *buf, size_t bufsz)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off = 0;

	if (bufsz == 0)
		return;
	if (localtime_r(&t, &tm)) {
		off = tm.tm_gmtoff;
	} else if (!gmtime_r(&t, &tm)) {
		time_t zero = 0;
		gmtime_r(&zero, &tm);
	}
	if (tm.tm_wday < 0 || tm.tm_wday > 6)
		tm.tm_wday = 0;
	if (tm.tm_mon < 0 || tm.tm_mon > 11)
		tm.tm_mon = 0;
	if (off < -86399 || off > 86399)
		off = 0;
	snprintf(buf, bufsz, "%s, %02d %s %04ld %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
		 tm.tm_mday, mons[tm.tm_mon], (long)tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 3600, labs(off) / 60 % 60);
}

/* A host name usable as the right side of a Message-ID (dot-atom-text). */
static bool msgid_host_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.' || strstr(h, ".."))
		return false;
	for (; *h; h++)
		if (!is_atext((unsigned char)*h) && *h != '.')
			return false;
	return true;
}

void compose_message_id(enum msgid_alg alg, const char *host, time_t t, char *buf, size_t bufsz)
{
	static uint64_t seq;
	struct {
		unsigned char rnd[32];
		int64_t t;
		int64_t pid;
		uint64_t seq;
	} seed;
	unsigned char dig[32];
	size_t dlen;
	gnutls_digest_algorithm_t d;
	char hex[2 * sizeof dig + 1];

	if (bufsz == 0)
		return;
	memset(&seed, 0, sizeof seed);
	/* Uniqueness does not depend on the random part alone: time, pid
	 * and a counter are hashed with it. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, seed.rnd, sizeof seed.rnd) < 0 &&
	    getrandom(seed.rnd, sizeof seed.rnd, GRND_NONBLOCK) != (ssize_t)sizeof seed.rnd)
		memset(seed.rnd, 0, sizeof seed.rnd);
	seed.t = (int64_t)t;
	seed.pid = (int64_t)getpid();
	seed.seq = ++seq;
	switch (alg) {
	case MSGID_MD5:
		d = GNUTLS_DIG_MD5, dlen = 16;
		break;
	case MSGID_SHA1:
		d = GNUTLS_DIG_SHA1, dlen = 20;
		break;
	default:
		d = GNUTLS_DIG_SHA256, dlen = 32;
		break;
	}
	/* MD5 may be disabled by policy (FIPS): then SHA-256 serves. */
	if (gnutls_hash_fast(d, &seed, sizeof seed, dig) < 0) {
		dlen = 32;
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, &seed, sizeof seed, dig) < 0)
			memcpy(dig, seed.rnd, sizeof dig);
	}
	for (size_t i = 0; i < dlen; i++)
		snprintf(hex + 2 * i, 3, "%02X", dig[i]);
	if (is_empty(host) || !msgid_host_ok(host))
		host = "localhost";
	if ((size_t)snprintf(buf, bufsz, "<%s@%s>", hex, host) >= bufsz)
		buf[0] = '\0';
}

/* A user-given Message-ID: printable ASCII without blanks; angle
 * brackets are added when missing. */
static int user_msgid(const char *s, struct strbuf *out, struct err *e)
{
	size_t n = strlen(s);
	bool br = n >= 2 && s[0] == '<' && s[n - 1] == '>';
	const char *in = br ? s + 1 : s;
	size_t inn = br ? n - 2 : n;

	if (check_text("Message-ID", s, false, e) < 0)
		return -1;
	for (size_t i = 0; i < inn; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>') {
			err_set(e, ERR_DATA, 0, "Message-ID: \"%s\" is not a valid message "
				"identifier", s);
			return -1;
		}
	}
	if (inn == 0) {
		err_set(e, ERR_DATA, 0, "Message-ID: empty identifier");
		return -1;
	}
	sb_addc(out, '<');
	sb_add(out, in, inn);
	sb_addc(out, '>');
	return 0;
}

/* ---- the header block --------------------------------------------------- */

bool compose_raw_headers(const struct compose_input *in)
{
	return in->other_headers && in->other_headers->n && is_empty(in->other_headers->v[0]);
}

static int raw_headers(const struct compose_input *in, struct strbuf *out, struct err *e)
{
	const struct strlist *sl = in->other_headers;

	if (parse_other(sl, 1, NULL, e) < 0)
		return -1;
	for (size_t i = 1; i < sl->n; i++) {
		if (is_empty(sl->v[i]))
			continue;
		sb_adds(out, sl->v[i]);
		sb_adds(out, "\r\n");
	}
	sb_adds(out, "\r\n");
	return 0;
}

static bool charset_ok(const char *cs)
{
	return is_empty(cs) || !ascii_casecmp(cs, "UTF-8") || !ascii_casecmp(cs, "UTF8") ||
	       !ascii_casecmp(cs, "csUTF8");
}

struct build {
	const struct compose_input *in;
	struct addr_list from, reply_to, to, cc, dnt, rrt;
	struct ohdrs other;
	struct strlist names;        /* computed fields that will be written */
	struct strbuf msgid;
	char date[64];
};

static void build_free(struct build *b)
{
	addr_list_free(&b->from);
	addr_list_free(&b->reply_to);
	addr_list_free(&b->to);
	addr_list_free(&b->cc);
	addr_list_free(&b->dnt);
	addr_list_free(&b->rrt);
	ohdrs_free(&b->other);
	sl_free(&b->names);
	sb_free(&b->msgid);
}

static const char *const importance_v[] = { NULL, "High", "Normal", "Low" };
static const char *const priority_v[] = { NULL, "normal", "urgent", "non-urgent" };
static const char *const xpriority_v[] = { NULL, "3 (Normal)", "1 (Highest)", "5 (Lowest)" };
static const char *const sensitivity_v[] = { NULL, "Personal", "Private",
					     "Company-Confidential" };

/* Parse and check every input, and decide which fields will be written,
 * before anything is written. */
static int prepare(struct build *b, bool body_needs_qp, struct err *e)
{
	const struct compose_input *in = b->in;
	const struct strlist *to = in->to, *cc = in->cc;

	if (!charset_ok(in->charset)) {
		err_set(e, ERR_DATA, 0, "charset \"%s\" is not supported: header text is "
			"UTF-8 and only UTF-8 can be declared", in->charset);
		return -1;
	}
	if (in->importance < 0 || in->importance > 3 || in->priority < 0 || in->priority > 3 ||
	    in->sensitivity < 0 || in->sensitivity > 3) {
		err_set(e, ERR_INTERNAL, 0, "importance, priority or sensitivity out of range");
		return -1;
	}

	/* NULL or "*": now; "": no Date field; else the given text. */
	if (!in->date || !strcmp(in->date, "*")) {
		compose_date(in->now, b->date, sizeof b->date);
		sl_add(&b->names, "Date");
	} else if (!is_empty(in->date)) {
		if (check_text("Date", in->date, false, e) < 0)
			return -1;
		sl_add(&b->names, "Date");
	}

	if (is_empty(in->from)) {
		err_set(e, ERR_DATA, SEED_NO_FROM, "no From address");
		return -1;
	}
	if (parse_addr1("From", in->from, &b->from, e) < 0)
		return -1;
	if (b->from.ng || b->from.n != 1) {
		err_set(e, ERR_DATA, SEED_NO_FROM, "From: exactly one address is needed, not "
			"\"%.80s\"", in->from);
		return -1;
	}
	if (!is_empty(in->from_name)) {
		if (check_text("From name", in->from_name, true, e) < 0)
			return -1;
		free(b->from.v[0].display);
		b->from.v[0].display = xstrdup(in->from_name);
	}
	sl_add(&b->names, "From");

	if (parse_addr1("Reply-To", in->reply_to, &b->reply_to, e) < 0 ||
	    parse_addrs("To", to ? (const char *const *)to->v : NULL, to ? to->n : 0, &b->to, e) < 0 ||
	    parse_addrs("Cc", cc ? (const char *const *)cc->v : NULL, cc ? cc->n : 0, &b->cc, e) < 0 ||
	    parse_addr1("Disposition-Notification-To", in->read_receipt_to, &b->dnt, e) < 0 ||
	    parse_addr1("Return-Receipt-To", in->delivery_notification_to, &b->rrt, e) < 0)
		return -1;
	if (!list_empty(&b->reply_to))
		sl_add(&b->names, "Reply-To");
	if (!list_empty(&b->to))
		sl_add(&b->names, "To");
	if (!list_empty(&b->cc))
		sl_add(&b->names, "Cc");
	if (!list_empty(&b->dnt))
		sl_add(&b->names, "Disposition-Notification-To");
	if (!list_empty(&b->rrt))
		sl_add(&b->names, "Return-Receipt-To");

	if (!is_empty(in->subject)) {
		if (check_text("Subject", in->subject, true, e) < 0)
			return -1;
		sl_add(&b->names, "Subject");
	}

	if (!in->message_id || !strcmp(in->message_id, "*")) {
		char id[160];
		compose_message_id(in->msgid_alg, in->hostname, in->now, id, sizeof id);
		sb_adds(&b->msgid, id);
	} else if (*in->message_id && user_msgid(in->message_id, &b->msgid, e) < 0) {
		return -1;
	}
	if (b->msgid.len)
		sl_add(&b->names, "Message-ID");
	if (in->importance)
		sl_add(&b->names, "Importance");
	if (in->priority) {
		sl_add(&b->names, "Priority");
		sl_add(&b->names, "X-Priority");
	}
	if (in->sensitivity)
		sl_add(&b->names, "Sensitivity");

	if (parse_other(in->other_headers, 0, &b->other, e) < 0)
		return -1;
	for (size_t i = 0; i < b->other.n; i++) {
		const char *name = b->other.v[i].name;
		const char *v = b->other.v[i].value.s ? b->other.v[i].value.s : "";

		/* The caller may replace the MIME type (text/html...); every
		 * other computed field comes from its own setting. */
		if (!ascii_casecmp(name, "Content-Type")) {
			while (is_wsp((unsigned char)*v))
				v++;
			if (body_needs_qp && (!ascii_ncasecmp(v, "multipart/", 10) ||
					      !ascii_ncasecmp(v, "message/", 8))) {
				err_set(e, ERR_DATA, 0, "OtherHeaders: a %.40s body cannot be sent "
					"quoted-printable (RFC 2045 6.4)", v);
				return -1;
			}
		}
		if (in_table(single_fields, name) && sl_contains_ci(&b->names, name)) {
			err_set(e, ERR_DATA, 0, "OtherHeaders: the %s field is given twice (or is "
				"also set by its own option)", name);
			return -1;
		}
		sl_add(&b->names, name);
	}
	return 0;
}

static void simple_field(struct hdr *h, const char *name, const char *value)
{
	hdr_begin(h, name);
	hdr_structured(h, value);
	hdr_end(h);
}

static void addr_field(struct hdr *h, const char *name, const struct addr_list *l)
{
	if (list_empty(l))
		return;
	hdr_begin(h, name);
	hdr_addr_list(h, l);
	hdr_end(h);
}

int compose_headers(const struct compose_input *in, bool body_8bit, bool body_needs_qp,
		    struct strbuf *out, struct err *e)
{
	struct build b = { .in = in };
	struct strbuf hb = STRBUF_INIT;
	struct hdr h = { .out = &hb, .e = e };
	int rc = -1;

	if (compose_raw_headers(in)) {
		rc = raw_headers(in, &hb, e);
		goto done;
	}
	if (prepare(&b, body_needs_qp, e) < 0)
		goto done;

	if (!in->fold_headers)
		h.limit = HDR_LINE_MAX;
	else if (in->max_header_length <= 0)
		h.limit = FOLD_DEFAULT;
	else if (in->max_header_length < FOLD_MIN)
		h.limit = FOLD_MIN;
	else if (in->max_header_length > HDR_LINE_MAX)
		h.limit = HDR_LINE_MAX;
	else
		h.limit = (size_t)in->max_header_length;

	if (sl_contains_ci(&b.names, "Date"))
		simple_field(&h, "Date", b.date[0] ? b.date : in->date);
	addr_field(&h, "From", &b.from);
	addr_field(&h, "Reply-To", &b.reply_to);
	addr_field(&h, "To", &b.to);
	addr_field(&h, "Cc", &b.cc);
	if (!is_empty(in->subject)) {
		hdr_begin(&h, "Subject");
		hdr_unstructured(&h, in->subject);
		hdr_end(&h);
	}
	if (b.msgid.len)
		simple_field(&h, "Message-ID", b.msgid.s);
	if (in->importance)
		simple_field(&h, "Importance", importance_v[in->importance]);
	if (in->priority) {
		simple_field(&h, "Priority", priority_v[in->priority]);
		simple_field(&h, "X-Priority", xpriority_v[in->priority]);
	}
	if (in->sensitivity)
		simple_field(&h, "Sensitivity", sensitivity_v[in->sensitivity]);
	addr_field(&h, "Disposition-Notification-To", &b.dnt);
	addr_field(&h, "Return-Receipt-To", &b.rrt);
	for (size_t i = 0; i < b.other.n && !h.rc; i++)
		if (write_other(&h, &b.other.v[i], e) < 0)
			goto done;

	/* Every composed message declares its MIME type, so the reader
	 * never guesses.  A 7-bit body is labelled us-ascii, the exact
	 * truth (it is valid UTF-8 as well) and the label every reader
	 * knows; an 8-bit one is labelled UTF-8, the only input encoding
	 * accepted.  Quoted-printable keeps the same charset rule. */
	if (!sl_contains_ci(&b.names, "MIME-Version"))
		simple_field(&h, "MIME-Version", "1.0");
	if (!sl_contains_ci(&b.names, "Content-Type"))
		simple_field(&h, "Content-Type", body_8bit ? "text/plain; charset=UTF-8"
							   : "text/plain; charset=us-ascii");
	simple_field(&h, "Content-Transfer-Encoding",
		     body_needs_qp ? "quoted-printable" : body_8bit ? "8bit" : "7bit");
	if (h.rc)
		goto done;
	sb_adds(&hb, "\r\n");
	rc = 0;
done:
	if (rc == 0)
		sb_add(out, hb.s, hb.len);
	sb_free(&hb);
	build_free(&b);
	return rc;
}

/* ---- the body ---------------------------------------------------------- */

int compose_scan_body(FILE *body, bool *is_8bit, bool *needs_qp, struct err *e)
{
	unsigned char buf[IO_BUF];
	bool b8 = false, qp = false, cr = false;
	size_t line = 0, n;

	*is_8bit = *needs_qp = false;
	if (!body)
		return 0;
	while (!(b8 && qp) && (n = fread(buf, 1, sizeof buf, body)) > 0) {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = buf[i];

			if (cr) {
				cr = false;
				if (c == '\n') {
					line = 0;
					continue;
				}
				qp = true;      /* a bare CR */
				line++;
			}
			if (c == '\r') {
				cr = true;
				continue;
			}
			if (c == '\n') {
				line = 0;
				continue;
			}
			if (c == 0)
				qp = true;
			if (c >= 0x80)
				b8 = true;
			if (++line > HDR_LINE_MAX)
				qp = true;
		}
	}
	if (ferror(body)) {
		err_set(e, ERR_IO, SEED_FILE, "cannot read the message body: %s", strerror(errno));
		return -1;
	}
	if (cr)
		qp = true;
	if (fseeko(body, 0, SEEK_SET) != 0) {
		err_set(e, ERR_IO, SEED_FILE, "cannot rewind the message body: %s", strerror(errno));
		return -1;
	}
	clearerr(body);
	*is_8bit = b8;
	*needs_qp = qp;
	return 0;
}

struct obuf {
	FILE *f;
	size_t len;
	bool failed;
	char b[IO_BUF];
};

static void ob_flush(struct obuf *o)
{
	if (o->len && !o->failed && fwrite(o->b, 1, o->len, o->f) != o->len)
		o->failed = true;
	o->len = 0;
}

static void ob_put(struct obuf *o, const char *s, size_t n)
{
	if (o->len + n > sizeof o->b)
		ob_flush(o);
	memcpy(o->b + o->len, s, n);
	o->len += n;
}

struct qp {
	struct obuf *o;
	size_t col;      /* characters on the current encoded line */
	int ws;          /* a blank not yet written (it may end a line), or -1 */
};

static void qp_put(struct qp *q, const char *s, size_t n)
{
	/* Leave room for the "=" of a soft line break. */
	if (q->col + n > QP_LINE - 1) {
		ob_put(q->o, "=\r\n", 3);
		q->col = 0;
	}
	ob_put(q->o, s, n);
	q->col += n;
}

static void qp_byte(struct qp *q, unsigned char c, bool literal)
{
	static const char hex[] = "0123456789ABCDEF";
	char t[3] = { '=', hex[c >> 4], hex[c & 15] };

	if (literal)
		qp_put(q, (const char *)&c, 1);
	else
		qp_put(q, t, 3);
}

/* Write the pending blank: encoded when a line break follows (RFC 2045
 * rule 3), literal otherwise. */
static void qp_flush_ws(struct qp *q, bool at_eol)
{
	if (q->ws >= 0)
		qp_byte(q, (unsigned char)q->ws, !at_eol);
	q->ws = -1;
}

static void qp_hard_break(struct qp *q)
{
	qp_flush_ws(q, true);
	ob_put(q->o, "\r\n", 2);
	q->col = 0;
}

static void qp_data(struct qp *q, unsigned char c)
{
	if (c == ' ' || c == '\t') {
		qp_flush_ws(q, false);
		q->ws = c;
		return;
	}
	qp_flush_ws(q, false);
	qp_byte(q, c, c >= 33 && c <= 126 && c != '=');
}

int compose_write_body(FILE *body, bool qp, FILE *out, struct err *e)
{
	unsigned char buf[IO_BUF];
	struct obuf *o = xmalloc(sizeof *o);
	struct qp q = { .o = o, .col = 0, .ws = -1 };
	bool cr = false, at_bol = true, any = false;
	size_t n;
	int rc = 0;

	o->f = out;
	o->len = 0;
	o->failed = false;
	while (body && (n = fread(buf, 1, sizeof buf, body)) > 0) {
		any = true;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = buf[i];

			if (cr) {
				cr = false;
				if (c == '\n') {
					if (qp)
						qp_hard_break(&q);
					else
						ob_put(o, "\r\n", 2);
					at_bol = true;
					continue;
				}
				/* A bare CR: data in quoted-printable, a line
				 * end otherwise (as the DATA encoder does). */
				if (qp) {
					qp_flush_ws(&q, false);
					qp_byte(&q, '\r', false);
				} else {
					ob_put(o, "\r\n", 2);
					at_bol = true;
				}
			}
			if (c == '\r') {
				cr = true;
				continue;
			}
			if (c == '\n') {
				if (qp)
					qp_hard_break(&q);
				else
					ob_put(o, "\r\n", 2);
				at_bol = true;
				continue;
			}
			at_bol = false;
			if (qp)
				qp_data(&q, c);
			else
				ob_put(o, (const char *)&c, 1);
		}
	}
	if (body && ferror(body)) {
		err_set(e, ERR_IO, SEED_FILE, "cannot read the message body: %s", strerror(errno));
		rc = -1;
		goto out;
	}
	if (cr) {
		if (qp) {
			qp_flush_ws(&q, false);
			qp_byte(&q, '\r', false);
			at_bol = false;
		} else {
			ob_put(o, "\r\n", 2);
			at_bol = true;
		}
	}
	if (any && !at_bol) {
		if (qp) {
			/* A soft break ends the last line without adding a
			 * line break the body did not have. */
			qp_flush_ws(&q, true);
			ob_put(o, "=\r\n", 3);
		} else {
			ob_put(o, "\r\n", 2);
		}
	}
	ob_flush(o);
	if (o->failed || fflush(out) != 0 || ferror(out)) {
		err_set(e, ERR_IO, 0, "cannot write the message: %s", strerror(errno));
		rc = -1;
	}
out:
	free(o);
	return rc;
}

int compose_from_field(const char *display, const struct addr *a, int max_header_length,
		       struct strbuf *out, struct err *e)
{
	struct hdr h = { .out = out, .e = e };

	if (display && check_text("From", display, true, e) < 0)
		return -1;
	h.limit = max_header_length < FOLD_MIN ? FOLD_MIN
		  : max_header_length > HDR_LINE_MAX ? HDR_LINE_MAX : (size_t)max_header_length;
	hdr_begin(&h, "From");
	hdr_mailbox(&h, " ", display, a);
	hdr_end(&h);
	return h.rc;
}

/* addr.c - RFC 5322 address-list parser and the SMTP envelope form.
 *
 * Two passes over a private copy of the input: unfold and tokenize (the
 * lexical rules: comments, quoted strings, domain literals, atoms), then
 * a recursive-descent parse over the tokens.  Nesting is bounded by the
 * grammar (a group holds mailboxes only) and comments are tracked with a
 * counter, so no input can drive the recursion deep. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <iconv.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* atext, or a byte of a UTF-8 sequence (RFC 6532); the sequences are
 * checked for well-formedness once, on the whole input. */
static bool is_uatext(unsigned char c)
{
	return is_atext(c) || c >= 0x80;
}

static bool is_special(unsigned char c)
{
	return c != 0 && strchr("()<>[]:;@\\,.\"", c);
}

bool addr_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* ---- RFC 2047 encoded words ------------------------------------------ */

static bool is_charset_char(unsigned char c)
{
	/* RFC 2978 mime-charset characters, plus '*' for an RFC 2231
	 * language suffix.  No '/': iconv would read it as an option. */
	return is_alnum(c) || (c != 0 && strchr("!#$%&'+-^_`{}~*", c));
}

/* Length of the encoded word starting at s (len bytes available), or 0
 * when there is none.  The encoded text is matched loosely (senders
 * often leave ',' or '.' unencoded in a phrase), but never across white
 * space or a character that changes the structure of the field. */
static size_t ew_match(const char *s, size_t len)
{
	size_t i = 2, t;

	if (len < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < len && s[i] != '?') {
		if (!is_charset_char((unsigned char)s[i]) || i - 2 >= 64)
			return 0;
		i++;
	}
	if (i == 2 || len - i < 5)
		return 0;
	if (!strchr("BbQq", s[i + 1]) || s[i + 1] == 0 || s[i + 2] != '?')
		return 0;
	i += 3;
	t = i;
	while (i < len && s[i] != '?') {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("\"()<>[]\\", c))
			return 0;
		i++;
	}
	if (i == t || len - i < 2 || s[i + 1] != '=')
		return 0;
	i += 2;
	if (i < len && !is_wsp((unsigned char)s[i]) && !is_special((unsigned char)s[i]))
		return 0;
	return i;
}

static bool b64_decode(const char *s, size_t n, struct strbuf *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t pad = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == '=') {
			pad++;
			continue;
		}
		v = base64_digit(c);
		if (pad || v < 0)
			return false;
		acc = ((acc << 6) | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			sb_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
	return pad <= 2 && bits != 6;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool q_decode(const char *s, size_t n, struct strbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '_') {
			sb_addc(out, ' ');
		} else if (c == '=') {
			int hi, lo;
			if (n - i < 3)
				return false;
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			sb_addc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			sb_addc(out, (char)c);
		}
	}
	return true;
}

static bool iconv_to_utf8(const char *cs, const struct strbuf *raw, struct strbuf *out)
{
	iconv_t cd = iconv_open("UTF-8", cs);
	char *in = raw->s;
	size_t inleft = raw->len;
	bool ok = true;

	if (cd == (iconv_t)-1)
		return false;
	for (;;) {
		char *op;
		size_t outleft, r;

		sb_grow(out, inleft * 4 + 16);
		op = out->s + out->len;
		outleft = out->cap - out->len - 1;
		r = inleft ? iconv(cd, &in, &inleft, &op, &outleft)
			   : iconv(cd, NULL, NULL, &op, &outleft);
		out->len = (size_t)(op - out->s);
		out->s[out->len] = '\0';
		if (r != (size_t)-1 && inleft == 0) {
			if (in == NULL)
				break;
			in = NULL; /* now flush the shift state */
			continue;
		}
		if (r == (size_t)-1 && errno != E2BIG) {
			ok = false;
			break;
		}
	}
	iconv_close(cd);
	return ok;
}

/* Convert raw bytes in charset cs to UTF-8, appended to out. */
static bool to_utf8(const char *cs, const struct strbuf *raw, struct strbuf *out)
{
	if (raw->len == 0)
		return true;
	if (!ascii_casecmp(cs, "UTF-8") || !ascii_casecmp(cs, "UTF8")) {
		if (!addr_utf8_valid(raw->s, raw->len))
			return false;
		sb_add(out, raw->s, raw->len);
		return true;
	}
	if (!ascii_casecmp(cs, "US-ASCII") || !ascii_casecmp(cs, "ASCII")) {
		for (size_t i = 0; i < raw->len; i++)
			if ((unsigned char)raw->s[i] >= 0x80)
				return false;
		sb_add(out, raw->s, raw->len);
		return true;
	}
	if (!ascii_casecmp(cs, "ISO-8859-1") || !ascii_casecmp(cs, "ISO8859-1") ||
	    !ascii_casecmp(cs, "ISO_8859-1") || !ascii_casecmp(cs, "LATIN1") ||
	    !ascii_casecmp(cs, "LATIN-1") || !ascii_casecmp(cs, "L1")) {
		for (size_t i = 0; i < raw->len; i++) {
			unsigned char c = (unsigned char)raw->s[i];
			if (c < 0x80) {
				sb_addc(out, (char)c);
			} else {
				sb_addc(out, (char)(0xc0 | c >> 6));
				sb_addc(out, (char)(0x80 | (c & 0x3f)));
			}
		}
		return true;
	}
	return iconv_to_utf8(cs, raw, out);
}

/* True when UTF-8 text holds a C0 or C1 control or DEL (a tab is fine). */
static bool has_controls(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_ctl(c))
			return true;
		if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)
			return true;
	}
	return false;
}

/* Decode the encoded word s (as matched by ew_match) and append its text
 * to out.  False, with out untouched, when it cannot be decoded or would
 * smuggle control characters into a display name; the caller then keeps
 * the word as written (RFC 2047 section 6.3). */
static bool ew_decode(const char *s, size_t len, struct strbuf *out)
{
	const char *q = memchr(s + 2, '?', len - 2);
	struct strbuf raw = STRBUF_INIT, text = STRBUF_INIT;
	char cs[65];
	size_t cslen;
	const char *t;
	size_t tlen;
	bool ok;

	if (!q)
		return false;
	cslen = (size_t)(q - (s + 2));
	if (cslen >= sizeof cs)
		return false;
	memcpy(cs, s + 2, cslen);
	cs[cslen] = '\0';
	cs[strcspn(cs, "*")] = '\0';
	t = q + 3;
	tlen = len - (size_t)(t - s) - 2;
	if (q[1] == 'B' || q[1] == 'b')
		ok = b64_decode(t, tlen, &raw);
	else
		ok = q_decode(t, tlen, &raw);
	ok = ok && cs[0] && to_utf8(cs, &raw, &text);
	ok = ok && addr_utf8_valid(text.s, text.len) && !has_controls(text.s, text.len);
	if (ok && text.len)
		sb_add(out, text.s, text.len);
	sb_free(&raw);
	sb_free(&text);
	return ok;
}

/* ---- tokens ------------------------------------------------------------ */

enum tok_type { T_END, T_ATOM, T_QSTR, T_LIT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char c;           /* the character of a T_SPECIAL */
	bool ws;          /* white space or a comment came before it */
	bool ew;          /* a T_ATOM shaped like an encoded word */
	size_t pos;       /* offset in the unfolded input */
	size_t off, len;  /* text in parser.store: atom, unquoted string, literal */
};

struct parser {
	const char *u;    /* unfolded input, no NUL inside */
	size_t ulen;
	struct strbuf store;
	struct tok *t;
	size_t nt, tcap;
	size_t i;         /* next token; t[nt-1] is always T_END */
	unsigned flags;
	struct err *e;
};

static int perr(struct parser *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	int show = p->ulen > 80 ? 80 : (int)p->ulen;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	err_set(p->e, ERR_DATA, 0, "bad address: %s (at offset %zu of \"%.*s%s\")", what, pos,
		show, p->u, p->ulen > 80 ? "..." : "");
	return -1;
}

static void push_tok(struct parser *p, enum tok_type type, char c, bool ws, size_t pos,
		     size_t off, size_t len)
{
	if (p->nt == p->tcap) {
		if (p->tcap > SIZE_MAX / 2 / sizeof *p->t)
			util_die_nomem();
		p->tcap = p->tcap ? p->tcap * 2 : 16;
		p->t = xrealloc(p->t, p->tcap * sizeof *p->t);
	}
	p->t[p->nt++] = (struct tok){ .type = type, .c = c, .ws = ws, .pos = pos,
				      .off = off, .len = len };
}

static int lex_comment(struct parser *p, size_t *ip)
{
	const unsigned char *u = (const unsigned char *)p->u;
	size_t i = *ip, start = i, depth = 0;

	do {
		unsigned char c;

		if (i >= p->ulen)
			return perr(p, start, "unbalanced '(': comment not closed");
		c = u[i];
		if (is_ctl(c))
			return perr(p, i, "control character 0x%02x in a comment", c);
		if (c == '\\') {
			if (i + 1 >= p->ulen)
				return perr(p, start, "unbalanced '(': comment not closed");
			if (is_ctl(u[i + 1]))
				return perr(p, i + 1, "control character 0x%02x in a comment", u[i + 1]);
			i += 2;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')')
			depth--;
		i++;
	} while (depth > 0);
	*ip = i;
	return 0;
}

static int lex_quoted(struct parser *p, size_t *ip)
{
	const unsigned char *u = (const unsigned char *)p->u;
	size_t i = *ip + 1, start = *ip;

	for (;;) {
		unsigned char c;

		if (i >= p->ulen)
			return perr(p, start, "unbalanced '\"': quoted string not closed");
		c = u[i];
		if (c == '"')
			break;
		if (c == '\\') {
			if (i + 1 >= p->ulen)
				return perr(p, start, "unbalanced '\"': quoted string not closed");
			c = u[++i];
		}
		if (is_ctl(c))
			return perr(p, i, "control character 0x%02x in a quoted string", c);
		sb_addc(&p->store, (char)c);
		i++;
	}
	*ip = i + 1;
	return 0;
}

static int lex_literal(struct parser *p, size_t *ip)
{
	const unsigned char *u = (const unsigned char *)p->u;
	size_t i = *ip + 1, start = *ip;

	for (;;) {
		unsigned char c;

		if (i >= p->ulen)
			return perr(p, start, "unbalanced '[': domain literal not closed");
		c = u[i];
		if (c == ']')
			break;
		if (c == '[' || c == '\\')
			return perr(p, i, "'%c' inside a domain literal", c);
		if (is_ctl(c) || c >= 0x80)
			return perr(p, i, "invalid byte 0x%02x in a domain literal", c);
		/* FWS is allowed inside a literal but means nothing there. */
		if (!is_wsp(c))
			sb_addc(&p->store, (char)c);
		i++;
	}
	*ip = i + 1;
	return 0;
}

static int tokenize(struct parser *p)
{
	const unsigned char *u = (const unsigned char *)p->u;
	size_t i = 0, n = p->ulen;
	bool ws = false;

	while (i < n) {
		unsigned char c = u[i];
		size_t start = i, off = p->store.len;

		if (is_wsp(c)) {
			ws = true;
			i++;
			continue;
		}
		if (is_ctl(c))
			return perr(p, i, "control character 0x%02x", c);
		switch (c) {
		case '(':
			if (lex_comment(p, &i) < 0)
				return -1;
			ws = true;
			continue;
		case ')':
			return perr(p, i, "unbalanced ')'");
		case ']':
			return perr(p, i, "unbalanced ']'");
		case '\\':
			return perr(p, i, "'\\' outside a quoted string");
		case '"':
			if (lex_quoted(p, &i) < 0)
				return -1;
			push_tok(p, T_QSTR, 0, ws, start, off, p->store.len - off);
			break;
		case '[':
			if (lex_literal(p, &i) < 0)
				return -1;
			push_tok(p, T_LIT, 0, ws, start, off, p->store.len - off);
			break;
		case '<': case '>': case ':': case ';': case '@': case ',': case '.':
			push_tok(p, T_SPECIAL, (char)c, ws, start, 0, 0);
			i++;
			break;
		default: {
			size_t ew = c == '=' ? ew_match(p->u + i, n - i) : 0;

			if (ew) {
				i += ew;
			} else {
				while (i < n && is_uatext(u[i]))
					i++;
				if (i == start)
					return perr(p, i, "unexpected character '%c'", c);
			}
			sb_add(&p->store, p->u + start, i - start);
			push_tok(p, T_ATOM, 0, ws, start, off, i - start);
			p->t[p->nt - 1].ew = ew != 0;
			break;
		}
		}
		ws = false;
	}
	push_tok(p, T_END, 0, ws, n, 0, 0);
	return 0;
}

/* ---- grammar ----------------------------------------------------------- */

static struct tok *peek(struct parser *p)
{
	return &p->t[p->i];
}

static void advance(struct parser *p)
{
	if (p->t[p->i].type != T_END)
		p->i++;
}

static bool is_sp(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->c == c;
}

static const char *ttext(const struct parser *p, const struct tok *t)
{
	return p->store.s + t->off;
}

/* A short description of a token for error messages. */
static const char *tdesc(const struct parser *p, const struct tok *t, char *buf, size_t sz)
{
	switch (t->type) {
	case T_END:
		return "end of input";
	case T_SPECIAL:
		snprintf(buf, sz, "'%c'", t->c);
		return buf;
	case T_ATOM:
		snprintf(buf, sz, "'%.*s'", t->len > 40 ? 40 : (int)t->len, ttext(p, t));
		return buf;
	case T_QSTR:
		return "a quoted string";
	case T_LIT:
		return "a domain literal";
	}
	return "?";
}

/* Consume a run of words and dots (a phrase, or a local part). */
static size_t collect_words(struct parser *p)
{
	size_t start = p->i;

	for (;;) {
		struct tok *t = peek(p);
		if (t->type != T_ATOM && t->type != T_QSTR && !is_sp(t, '.'))
			break;
		advance(p);
	}
	return p->i - start;
}

/* The input text from token a up to (not including) token b, for errors. */
static int span_len(const struct parser *p, size_t a, size_t b)
{
	size_t len = p->t[b].pos - p->t[a].pos;

	while (len && is_wsp((unsigned char)p->u[p->t[a].pos + len - 1]))
		len--;
	return len > 60 ? 60 : (int)len;
}

/* Build a local part from tokens [a, b): word *("." word). */
static int make_local(struct parser *p, size_t a, size_t b, char **out)
{
	struct strbuf sb = STRBUF_INIT;
	bool want_word = true;

	for (size_t k = a; k < b; k++) {
		const struct tok *t = &p->t[k];

		if (is_sp(t, '.')) {
			if (want_word) {
				sb_free(&sb);
				return perr(p, t->pos, "empty part before '.' in a local part");
			}
			sb_addc(&sb, '.');
			want_word = true;
			continue;
		}
		if (!want_word) {
			sb_free(&sb);
			return perr(p, t->pos, "'%.*s' is not an address (words must be joined by "
				    "'.' or quoted)", span_len(p, a, b), p->u + p->t[a].pos);
		}
		if (t->type == T_ATOM) {
			for (size_t j = 0; j < t->len; j++) {
				unsigned char c = (unsigned char)ttext(p, t)[j];
				if (!is_uatext(c)) {
					sb_free(&sb);
					return perr(p, t->pos, "character '%c' in a local part must "
						    "be quoted", c);
				}
			}
		}
		sb_add(&sb, ttext(p, t), t->len);
		want_word = false;
	}
	if (want_word && sb.len) {
		sb_free(&sb);
		return perr(p, p->t[b].pos, "local part ends with '.'");
	}
	if (sb.len == 0) {
		sb_free(&sb);
		return perr(p, p->t[a < b ? a : b].pos, "empty local part");
	}
	if (sb.len > ADDR_LOCAL_MAX) {
		sb_free(&sb);
		return perr(p, p->t[a].pos, "local part longer than %d octets", ADDR_LOCAL_MAX);
	}
	*out = sb.s;
	return 0;
}

static int parse_domain(struct parser *p, char **out)
{
	struct strbuf sb = STRBUF_INIT;
	struct tok *t = peek(p);
	size_t pos = t->pos;

	if (t->type == T_LIT) {
		if (t->len == 0)
			return perr(p, t->pos, "empty domain literal");
		sb_addc(&sb, '[');
		sb_add(&sb, ttext(p, t), t->len);
		sb_addc(&sb, ']');
		advance(p);
	} else if (t->type != T_ATOM) {
		char buf[64];
		return perr(p, t->pos, "missing domain after '@' (found %s)",
			    tdesc(p, t, buf, sizeof buf));
	} else {
		for (;;) {
			t = peek(p);
			if (t->type != T_ATOM) {
				sb_free(&sb);
				return perr(p, t->pos, "empty label in a domain");
			}
			for (size_t j = 0; j < t->len; j++) {
				unsigned char c = (unsigned char)ttext(p, t)[j];
				if (!is_uatext(c)) {
					sb_free(&sb);
					return perr(p, t->pos, "invalid character '%c' in a domain", c);
				}
			}
			sb_add(&sb, ttext(p, t), t->len);
			advance(p);
			if (!is_sp(peek(p), '.'))
				break;
			advance(p);
			sb_addc(&sb, '.');
		}
	}
	if (sb.len > ADDR_DOMAIN_MAX) {
		sb_free(&sb);
		return perr(p, pos, "domain longer than %d octets", ADDR_DOMAIN_MAX);
	}
	*out = sb.s;
	return 0;
}

/* Build a display name from tokens [a, b), decoding encoded words.
 * Returns NULL for an empty phrase. */
static char *make_phrase(struct parser *p, size_t a, size_t b)
{
	struct strbuf sb = STRBUF_INIT;
	bool prev_ew = false;

	for (size_t k = a; k < b; k++) {
		const struct tok *t = &p->t[k];
		struct strbuf dec = STRBUF_INIT;
		bool ew = t->type == T_ATOM && t->ew && ew_decode(ttext(p, t), t->len, &dec);

		/* White space between two encoded words is not part of the
		 * text (RFC 2047 section 6.2). */
		if (k > a && t->ws && !(prev_ew && ew))
			sb_addc(&sb, ' ');
		if (ew)
			sb_add(&sb, dec.s ? dec.s : "", dec.len);
		else if (is_sp(t, '.'))
			sb_addc(&sb, '.');
		else
			sb_add(&sb, ttext(p, t), t->len);
		sb_free(&dec);
		prev_ew = ew;
	}
	if (!sb.len) {
		sb_free(&sb);
		return NULL;
	}
	return sb.s;
}

static void list_push(struct addr_list *l, struct addr *a)
{
	if (l->n == l->cap) {
		if (l->cap > SIZE_MAX / 2 / sizeof *l->v)
			util_die_nomem();
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = *a;
	*a = (struct addr){ NULL, NULL, NULL };
}

static void group_push(struct addr_list *l, struct addr_group *g)
{
	if (l->ng == l->gcap) {
		if (l->gcap > SIZE_MAX / 2 / sizeof *l->g)
			util_die_nomem();
		l->gcap = l->gcap ? l->gcap * 2 : 4;
		l->g = xrealloc(l->g, l->gcap * sizeof *l->g);
	}
	l->g[l->ng++] = *g;
}

static int parse_angle(struct parser *p, struct addr *ad)
{
	size_t lt = peek(p)->pos, a;
	struct tok *t;

	advance(p);
	t = peek(p);
	if (is_sp(t, '>'))
		return perr(p, t->pos, "empty address '<>'");
	if (is_sp(t, '@') || is_sp(t, ',')) {
		/* An obsolete source route: parsed, then dropped. */
		for (;;) {
			char *dom = NULL;

			t = peek(p);
			if (is_sp(t, ',')) {
				advance(p);
				continue;
			}
			if (!is_sp(t, '@'))
				break;
			advance(p);
			if (parse_domain(p, &dom) < 0)
				return -1;
			free(dom);
		}
		if (!is_sp(t, ':'))
			return perr(p, t->pos, "malformed route in '<...>' (expected ':')");
		advance(p);
	}
	a = p->i;
	if (collect_words(p) == 0) {
		t = peek(p);
		if (t->type == T_END)
			return perr(p, lt, "unbalanced '<': missing '>'");
		return perr(p, t->pos, "missing address inside '<...>'");
	}
	if (make_local(p, a, p->i, &ad->local) < 0)
		return -1;
	t = peek(p);
	if (is_sp(t, '@')) {
		advance(p);
		if (parse_domain(p, &ad->domain) < 0)
			return -1;
	} else if (!(p->flags & ADDR_ALLOW_LOCAL)) {
		return perr(p, t->pos, "'<%s>' has no '@domain'", ad->local);
	}
	t = peek(p);
	if (t->type == T_END)
		return perr(p, lt, "unbalanced '<': missing '>'");
	if (!is_sp(t, '>')) {
		char buf[64];
		return perr(p, t->pos, "expected '>', found %s", tdesc(p, t, buf, sizeof buf));
	}
	advance(p);
	return 0;
}

static int parse_address(struct parser *p, struct addr_list *out, bool in_group);

static int parse_group(struct parser *p, size_t a, size_t b, struct addr_list *out)
{
	struct addr_group g = { make_phrase(p, a, b), out->n, 0 };
	size_t colon = peek(p)->pos;

	if (!g.name)
		return perr(p, colon, "group without a name before ':'");
	advance(p);
	for (;;) {
		struct tok *t = peek(p);

		if (is_sp(t, ';')) {
			advance(p);
			break;
		}
		if (is_sp(t, ',')) {
			advance(p);
			continue;
		}
		if (t->type == T_END) {
			free(g.name);
			return perr(p, colon, "group not terminated by ';'");
		}
		if (parse_address(p, out, true) < 0) {
			free(g.name);
			return -1;
		}
		t = peek(p);
		if (!is_sp(t, ',') && !is_sp(t, ';')) {
			char buf[64];
			free(g.name);
			if (t->type == T_END)
				return perr(p, colon, "group not terminated by ';'");
			return perr(p, t->pos, "expected ',' or ';' in a group, found %s",
				    tdesc(p, t, buf, sizeof buf));
		}
	}
	g.n = out->n - g.first;
	group_push(out, &g);
	return 0;
}

static int parse_address(struct parser *p, struct addr_list *out, bool in_group)
{
	struct addr ad = { NULL, NULL, NULL };
	size_t a = p->i, nw = collect_words(p), b = p->i;
	struct tok *t = peek(p);
	char buf[64];

	if (is_sp(t, '<')) {
		ad.display = make_phrase(p, a, b);
		if (parse_angle(p, &ad) < 0)
			goto fail;
	} else if (is_sp(t, ':')) {
		if (in_group)
			return perr(p, t->pos, "a group inside a group");
		if (nw == 0)
			return perr(p, t->pos, "group without a name before ':'");
		return parse_group(p, a, b, out);
	} else if (is_sp(t, '@')) {
		if (nw == 0)
			return perr(p, t->pos, "missing local part before '@'");
		if (make_local(p, a, b, &ad.local) < 0)
			goto fail;
		advance(p);
		if (parse_domain(p, &ad.domain) < 0)
			goto fail;
	} else if (nw == 0) {
		return perr(p, t->pos, is_sp(t, '>') ? "unbalanced '>'" : "unexpected %s",
			    tdesc(p, t, buf, sizeof buf));
	} else if (!(p->flags & ADDR_ALLOW_LOCAL)) {
		return perr(p, p->t[a].pos, "'%.*s' is not an address: missing '@domain'",
			    span_len(p, a, b), p->u + p->t[a].pos);
	} else if (make_local(p, a, b, &ad.local) < 0) {
		goto fail;
	}
	list_push(out, &ad);
	return 0;
fail:
	addr_free(&ad);
	return -1;
}

static int parse_list(struct parser *p, struct addr_list *out)
{
	for (;;) {
		struct tok *t = peek(p);
		char buf[64];

		if (t->type == T_END)
			return 0;
		if (is_sp(t, ',')) {
			advance(p);
			continue;
		}
		if (parse_address(p, out, false) < 0)
			return -1;
		t = peek(p);
		if (t->type == T_END)
			return 0;
		if (!is_sp(t, ','))
			return perr(p, t->pos, is_sp(t, '>') ? "unbalanced '>'"
				    : "expected ',' between addresses, found %s",
				    tdesc(p, t, buf, sizeof buf));
		advance(p);
	}
}

/* Copy s to u with folding (CRLF followed by a blank) removed. */
static int unfold(const char *s, size_t len, struct strbuf *u, struct err *e)
{
	sb_grow(u, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' && len - i > 2 && s[i + 1] == '\n' && is_wsp((unsigned char)s[i + 2])) {
			i++;
			continue;
		}
		if (c == '\r' || c == '\n') {
			err_set(e, ERR_DATA, 0, "bad address: %s at offset %zu is not part of folding "
				"white space", c == '\r' ? "CR" : "LF", i);
			return -1;
		}
		if (c == '\0') {
			err_set(e, ERR_DATA, 0, "bad address: NUL byte at offset %zu", i);
			return -1;
		}
		sb_addc(u, (char)c);
	}
	return 0;
}

int addr_parse_listn(const char *s, size_t len, unsigned flags, struct addr_list *out,
		     struct err *e)
{
	struct strbuf u = STRBUF_INIT;
	struct parser p = { .flags = flags, .e = e };
	size_t n0 = out->n, g0 = out->ng;
	int rc = -1;

	if (!s)
		s = "", len = 0;
	if (unfold(s, len, &u, e) < 0)
		goto out;
	if (!addr_utf8_valid(u.s, u.len)) {
		err_set(e, ERR_DATA, 0, "bad address: malformed UTF-8 in \"%.*s\"",
			u.len > 80 ? 80 : (int)u.len, u.s);
		goto out;
	}
	p.u = u.s;
	p.ulen = u.len;
	sb_grow(&p.store, u.len);
	rc = tokenize(&p);
	if (rc == 0)
		rc = parse_list(&p, out);
	if (rc < 0) {
		while (out->n > n0)
			addr_free(&out->v[--out->n]);
		while (out->ng > g0)
			free(out->g[--out->ng].name);
		/* "as before" includes owning no memory when it was empty */
		if (n0 == 0 && g0 == 0)
			addr_list_free(out);
	}
out:
	free(p.t);
	sb_free(&p.store);
	sb_free(&u);
	return rc;
}

int addr_parse_list(const char *s, unsigned flags, struct addr_list *out, struct err *e)
{
	return addr_parse_listn(s, s ? strlen(s) : 0, flags, out, e);
}

int addr_parse_one(const char *s, unsigned flags, struct addr *out, struct err *e)
{
	struct addr_list l = ADDR_LIST_INIT;
	char shown[80];

	if (addr_parse_list(s, flags, &l, e) < 0)
		return -1;
	snprintf(shown, sizeof shown, "%s", s ? s : "");
	if (l.ng) {
		err_set(e, ERR_DATA, 0, "bad address: a group is not allowed here: \"%s\"", shown);
	} else if (l.n == 0) {
		err_set(e, ERR_DATA, 0, "bad address: no address in \"%s\"", shown);
	} else if (l.n > 1) {
		err_set(e, ERR_DATA, 0, "bad address: one address expected, %zu given in \"%s\"",
			l.n, shown);
	} else {
		*out = l.v[0];
		l.n = 0;
		addr_list_free(&l);
		return 0;
	}
	addr_list_free(&l);
	return -1;
}

/* ---- output forms ------------------------------------------------------ */

/* Dot-atom (RFC 5322) / Dot-string (RFC 5321, with RFC 6531 UTF-8). */
static bool is_dot_atom(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!is_uatext((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

static void append_local(struct strbuf *sb, const char *local)
{
	if (is_dot_atom(local)) {
		sb_adds(sb, local);
		return;
	}
	sb_addc(sb, '"');
	for (const char *c = local; *c; c++) {
		if (*c == '"' || *c == '\\')
			sb_addc(sb, '\\');
		sb_addc(sb, *c);
	}
	sb_addc(sb, '"');
}

void addr_append_spec(struct strbuf *sb, const struct addr *a)
{
	append_local(sb, a->local ? a->local : "");
	if (a->domain) {
		sb_addc(sb, '@');
		sb_adds(sb, a->domain);
	}
}

/* RFC 5321 Domain: sub-domain *("." sub-domain), LDH labels. */
static bool ldh_domain_ok(const char *d)
{
	size_t lab = 0;
	char prev = 0;

	for (const char *p = d;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.' || c == '\0') {
			if (lab == 0 || lab > 63 || prev == '-')
				return false;
			if (c == '\0')
				return true;
			lab = 0;
		} else if (is_alnum(c) || c == '-') {
			if (lab == 0 && c == '-')
				return false;
			lab++;
		} else {
			return false;
		}
		prev = (char)c;
	}
}

/* True when a label of d starts with the ACE prefix "xn--", which makes
 * the label subject to IDNA validation although it is ASCII. */
static bool has_ace_label(const char *d)
{
	for (const char *p = d; *p; p++)
		if ((p == d || p[-1] == '.') && ascii_ncasecmp(p, "xn--", 4) == 0)
			return true;
	return false;
}

/* RFC 5321 address-literal: IPv4, "IPv6:" or a General-address-literal. */
static bool literal_ok(const char *d)
{
	char buf[ADDR_DOMAIN_MAX + 1];
	unsigned char bin[16];
	size_t n = strlen(d);
	const char *colon;

	if (n < 3 || n - 2 >= sizeof buf || d[0] != '[' || d[n - 1] != ']')
		return false;
	memcpy(buf, d + 1, n - 2);
	buf[n - 2] = '\0';
	if (ascii_ncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, bin) == 1;
	colon = strchr(buf, ':');
	if (!colon)
		return inet_pton(AF_INET, buf, bin) == 1;
	if (colon == buf || colon[-1] == '-' || !colon[1])
		return false;
	for (const char *p = buf; p < colon; p++)
		if (!is_alnum((unsigned char)*p) && *p != '-')
			return false;
	for (const char *p = colon + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

int addr_envelope(const struct addr *a, char **out, bool *needs_smtputf8, struct err *e)
{
	struct strbuf sb = STRBUF_INIT;
	char *ace = NULL;
	const char *dom = NULL;
	bool utf8 = false;
	size_t llen;

	if (!a->local || !*a->local) {
		err_set(e, ERR_DATA, 0, "bad address: empty local part");
		return -1;
	}
	for (const char *c = a->local; *c; c++) {
		unsigned char u = (unsigned char)*c;
		/* SMTP quoted strings allow no tab or control (RFC 5321 qtextSMTP). */
		if (u < 0x20 || u == 0x7f) {
			err_set(e, ERR_DATA, 0, "bad address: control character 0x%02x in local "
				"part \"%s\"", u, a->local);
			return -1;
		}
		if (u >= 0x80)
			utf8 = true;
	}
	if (utf8 && !addr_utf8_valid(a->local, strlen(a->local))) {
		err_set(e, ERR_DATA, 0, "bad address: malformed UTF-8 in local part \"%s\"", a->local);
		return -1;
	}
	append_local(&sb, a->local);
	llen = sb.len;
	if (llen > ADDR_LOCAL_MAX) {
		err_set(e, ERR_DATA, 0, "bad address: local part \"%s\" longer than %d octets",
			a->local, ADDR_LOCAL_MAX);
		goto fail;
	}
	if (a->domain) {
		bool ascii = true;

		for (const char *c = a->domain; *c; c++)
			if ((unsigned char)*c >= 0x80)
				ascii = false;
		if (a->domain[0] == '[') {
			if (!literal_ok(a->domain)) {
				err_set(e, ERR_DATA, 0, "bad address: invalid address literal \"%s\"",
					a->domain);
				goto fail;
			}
			dom = a->domain;
		} else if (ascii && !has_ace_label(a->domain)) {
			dom = a->domain;
		} else {
			int rc;

			if (!addr_utf8_valid(a->domain, strlen(a->domain))) {
				err_set(e, ERR_DATA, 0, "bad address: malformed UTF-8 in domain \"%s\"",
					a->domain);
				goto fail;
			}
			rc = idn2_to_ascii_8z(a->domain, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
			if (rc != IDN2_OK) {
				err_set(e, ERR_DATA, 0, "bad address: domain \"%s\" is not a valid "
					"internationalised domain name: %s", a->domain,
					idn2_strerror(rc));
				goto fail;
			}
			/* An ASCII name with A-labels is only checked: the
			 * user's spelling is kept. */
			dom = ascii ? a->domain : ace;
		}
		if (dom[0] != '[' && (strlen(dom) > ADDR_DOMAIN_MAX || !ldh_domain_ok(dom))) {
			err_set(e, ERR_DATA, 0, "bad address: invalid domain \"%s\"", a->domain);
			goto fail;
		}
		sb_addc(&sb, '@');
		sb_adds(&sb, dom);
	}
	if (sb.len > ADDR_PATH_MAX) {
		err_set(e, ERR_DATA, 0, "bad address: \"%.80s...\" longer than %d octets", sb.s,
			ADDR_PATH_MAX);
		goto fail;
	}
	idn2_free(ace);
	*needs_smtputf8 = utf8;
	*out = sb.s;
	return 0;
fail:
	idn2_free(ace);
	sb_free(&sb);
	return -1;
}

void addr_free(struct addr *a)
{
	free(a->display);
	free(a->local);
	free(a->domain);
	a->display = a->local = a->domain = NULL;
}

void addr_list_free(struct addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		addr_free(&l->v[i]);
	for (size_t i = 0; i < l->ng; i++)
		free(l->g[i].name);
	free(l->v);
	free(l->g);
	*l = (struct addr_list)ADDR_LIST_INIT;
}

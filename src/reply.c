/* reply.c - parse SMTP replies line by line, bounded. */
#include "reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void reply_init(struct reply *r)
{
	memset(r, 0, sizeof *r);
}

void reply_reset(struct reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->textlen = 0;
	if (r->text)
		r->text[0] = '\0';
	r->nlines = 0;
	r->truncated = false;
	r->complete = false;
}

void reply_free(struct reply *r)
{
	free(r->text);
	memset(r, 0, sizeof *r);
}

static bool isdig(char c)
{
	return c >= '0' && c <= '9';
}

/* An enhanced status code (RFC 3463) at the start of text: class.subject.detail
 * with class 2, 4 or 5, subject 1-3 digits, detail 1-3 digits. */
static size_t enhanced_len(const char *s, size_t len)
{
	size_t i = 0, n;
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (n = 0; i < len && isdig(s[i]) && n < 3; i++, n++)
		;
	if (n == 0 || i >= len || s[i] != '.')
		return 0;
	i++;
	for (n = 0; i < len && isdig(s[i]) && n < 3; i++, n++)
		;
	if (n == 0 || (i < len && s[i] != ' '))
		return 0;
	return i;
}

static void store(struct reply *r, const char *s, size_t len)
{
	size_t room;
	size_t sep = r->nlines > 1 ? 1 : 0;

	if (r->textlen + sep >= REPLY_TEXT_MAX) {
		r->truncated = true;
		return;
	}
	room = REPLY_TEXT_MAX - r->textlen - sep;
	if (len > room) {
		len = room;
		r->truncated = true;
	}
	if (r->textlen + sep + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 256;
		while (cap < r->textlen + sep + len + 1)
			cap *= 2;
		r->text = xrealloc(r->text, cap);
		r->cap = cap;
	}
	if (sep)
		r->text[r->textlen++] = '\n';
	memcpy(r->text + r->textlen, s, len);
	r->textlen += len;
	r->text[r->textlen] = '\0';
}

int reply_add_line(struct reply *r, const char *line, size_t len, struct err *e)
{
	char shown[128];
	int code;
	bool last;

	if (r->complete)
		reply_reset(r);
	if (len < 3 || !isdig(line[0]) || !isdig(line[1]) || !isdig(line[2]) ||
	    (len > 3 && line[3] != ' ' && line[3] != '-')) {
		err_set(e, ERR_PROTOCOL, SEED_PROTOCOL, "malformed reply line from server: \"%s\"",
			sanitize(shown, sizeof shown, line, len > 80 ? 80 : len));
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599) {
		err_set(e, ERR_PROTOCOL, SEED_PROTOCOL, "reply code %d out of range: \"%s\"", code,
			sanitize(shown, sizeof shown, line, len > 80 ? 80 : len));
		return -1;
	}
	if (r->nlines && code != r->code) {
		err_set(e, ERR_PROTOCOL, SEED_PROTOCOL,
			"multi-line reply changes its code from %d to %d", r->code, code);
		return -1;
	}
	last = len == 3 || line[3] == ' ';
	r->code = code;
	r->nlines++;

	const char *text = len > 4 ? line + 4 : "";
	size_t tlen = len > 4 ? len - 4 : 0;
	if (r->nlines == 1) {
		size_t el = enhanced_len(text, tlen);
		/* The enhanced code must agree with the reply's class. */
		if (el && el < sizeof r->enhanced && text[0] == line[0]) {
			memcpy(r->enhanced, text, el);
			r->enhanced[el] = '\0';
		}
	}
	store(r, text, tlen);
	if (last)
		r->complete = true;
	return last ? 1 : 0;
}

const char *reply_first_line(const struct reply *r, char *buf, size_t bufsz)
{
	char raw[600];
	size_t n = 0;
	if (r->text) {
		const char *nl = memchr(r->text, '\n', r->textlen);
		n = nl ? (size_t)(nl - r->text) : r->textlen;
	}
	int k = snprintf(raw, sizeof raw, "%03d %.*s", r->code, (int)(n > 500 ? 500 : n),
			 r->text ? r->text : "");
	if (k > 0 && raw[k - 1] == ' ')
		raw[k - 1] = '\0';
	return sanitize(buf, bufsz, raw, strlen(raw));
}

bool reply_next_line(const struct reply *r, size_t *pos, const char **line, size_t *len)
{
	/* *pos is the offset of the next line, or SIZE_MAX when done. */
	if (r->nlines == 0 || *pos == SIZE_MAX || *pos > r->textlen)
		return false;
	const char *s = r->text ? r->text + *pos : "";
	size_t left = r->textlen - *pos;
	const char *nl = left ? memchr(s, '\n', left) : NULL;
	*line = s;
	*len = nl ? (size_t)(nl - s) : left;
	*pos = nl ? *pos + *len + 1 : SIZE_MAX;
	return true;
}

/* test_reply.c - the reply parser: well-formed, hostile and bounded. */
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "tap.h"
#include "util.h"

static int feed(struct reply *r, const char *lines, struct err *e)
{
	const char *s = lines;
	int k = 0;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		k = reply_add_line(r, s, len, e);
		if (k != 0)
			return k;
		s += len + (nl ? 1 : 0);
	}
	return k;
}

int main(void)
{
	struct reply r;
	struct err e;
	char buf[700];

	reply_init(&r);
	ok(feed(&r, "250 ok", &e) == 1 && r.code == 250 && strcmp(r.text, "ok") == 0,
	   "single line reply");
	ok(feed(&r, "250-a\n250-b\n250 c", &e) == 1 && r.nlines == 3 &&
		   strcmp(r.text, "a\nb\nc") == 0, "multi-line reply joined");
	ok(feed(&r, "550 5.1.1 no such user", &e) == 1 && strcmp(r.enhanced, "5.1.1") == 0,
	   "enhanced status code");
	ok(feed(&r, "550 4.1.1 odd", &e) == 1 && r.enhanced[0] == '\0',
	   "enhanced code of another class ignored");
	ok(feed(&r, "250", &e) == 1 && r.textlen == 0, "bare code is a complete reply");
	ok(strcmp(reply_first_line(&r, buf, sizeof buf), "250") == 0, "first line of bare code");
	ok(feed(&r, "25", &e) == -1 && e.cls == ERR_PROTOCOL, "too short refused");
	ok(feed(&r, "abc hello", &e) == -1, "non-digit code refused");
	ok(feed(&r, "250x", &e) == -1, "bad separator refused");
	ok(feed(&r, "199 hi", &e) == -1 && feed(&r, "600 hi", &e) == -1, "codes outside 2xx-5xx refused");
	reply_reset(&r);
	ok(feed(&r, "250-a\n251 b", &e) == -1, "code change inside a reply refused");
	reply_reset(&r);

	/* 10,000 continuation lines and a 100 KB line: bounded text. */
	int k = 0;
	for (int i = 0; i < 10000 && k == 0; i++)
		k = reply_add_line(&r, "250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 60, &e);
	k = reply_add_line(&r, "250 end", 7, &e);
	ok(k == 1 && r.nlines == 10001 && r.textlen <= REPLY_TEXT_MAX, "10,000 lines bounded (%zu bytes kept)",
	   r.textlen);
	char *big = xmalloc(100001);
	memset(big, 'y', 100000);
	memcpy(big, "554 ", 4);
	big[100000] = 0;
	ok(reply_add_line(&r, big, 100000, &e) == 1 && r.truncated && r.textlen <= REPLY_TEXT_MAX,
	   "100 KB line truncated");
	free(big);

	ok(feed(&r, "220 evil\x1b[31mred\x07", &e) == 1 &&
		   strstr(reply_first_line(&r, buf, sizeof buf), "\\x1b") != NULL,
	   "control characters escaped in first line");

	/* line iteration */
	feed(&r, "250-one\n250-\n250 three", &e);
	size_t pos = 0, len;
	const char *l;
	int n = 0;
	char seen[64] = "";
	while (reply_next_line(&r, &pos, &l, &len)) {
		strncat(seen, l, len);
		strcat(seen, "|");
		n++;
	}
	ok(n == 3 && strcmp(seen, "one||three|") == 0, "line iteration (%s)", seen);

	reply_free(&r);
	return tap_done();
}

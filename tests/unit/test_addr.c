/* test_addr.c - unit tests for the address-list parser and envelope form.
 * Prints TAP; exits non-zero when any test fails. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "tap.h"

#define CHECK(cond, ...) ok(cond, __VA_ARGS__)
/* for helpers that report the line of their caller */
#define check(pass, line, ...) (tap_pass_ = !!(pass), tap_check(tap_pass_, __FILE__, (line), __VA_ARGS__))

/* "display|local|domain" per address ("-" for NULL), "; " between, then
 * " {name:first+n}" per group. */
static void render(const struct addr_list *l, struct strbuf *sb)
{
	for (size_t i = 0; i < l->n; i++)
		sb_addf(sb, "%s%s|%s|%s", i ? "; " : "", l->v[i].display ? l->v[i].display : "-",
			l->v[i].local, l->v[i].domain ? l->v[i].domain : "-");
	for (size_t i = 0; i < l->ng; i++)
		sb_addf(sb, " {%s:%zu+%zu}", l->g[i].name, l->g[i].first, l->g[i].n);
}

static void parse_ok_n(int line, const char *in, size_t len, unsigned flags, const char *want)
{
	struct addr_list l = ADDR_LIST_INIT;
	struct strbuf got = STRBUF_INIT;
	struct err e = { 0 };
	int rc = addr_parse_listn(in, len, flags, &l, &e);

	char shown[200];

	render(&l, &got);
	sb_addc(&got, 0);
	check(rc == 0 && !strcmp(got.s, want), line, "parse %s -> %s",
	      sanitize(shown, sizeof shown, in, len), want);
	if (rc != 0 || strcmp(got.s, want))
		printf("#   rc %d, got \"%s\", error \"%s\"\n", rc, got.s, e.msg);
	sb_free(&got);
	addr_list_free(&l);
}

#define PARSE_OK(in, flags, want) parse_ok_n(__LINE__, in, strlen(in), flags, want)

static void parse_bad_n(int line, const char *in, size_t len, unsigned flags, const char *msg)
{
	struct addr_list l = ADDR_LIST_INIT;
	struct err e = { 0 };
	int rc = addr_parse_listn(in, len, flags, &l, &e);
	bool ok = rc < 0 && e.cls == ERR_DATA && strstr(e.msg, msg) && l.n == 0 && l.ng == 0;
	char shown[200];

	check(ok, line, "refuse %s (%s)", sanitize(shown, sizeof shown, in, len), msg);
	if (!ok)
		printf("#   rc %d, class %d, n %zu, error \"%s\"\n", rc, e.cls, l.n, e.msg);
	addr_list_free(&l);
}

#define PARSE_BAD(in, flags, msg) parse_bad_n(__LINE__, in, strlen(in), flags, msg)

static void env_check(int line, const char *in, const char *want, bool want_utf8)
{
	struct addr a;
	struct err e = { 0 };
	char *out = NULL;
	bool utf8 = !want_utf8;
	int rc = addr_parse_one(in, ADDR_ALLOW_LOCAL, &a, &e);

	if (rc == 0) {
		rc = addr_envelope(&a, &out, &utf8, &e);
		addr_free(&a);
	}
	if (want) {
		bool ok = rc == 0 && out && !strcmp(out, want) && utf8 == want_utf8;
		check(ok, line, "envelope %s -> %s%s", in, want, want_utf8 ? " (SMTPUTF8)" : "");
		if (!ok)
			printf("#   rc %d, got \"%s\" utf8 %d, error \"%s\"\n", rc, out ? out : "",
			       utf8, e.msg);
	}
	free(out);
}

#define ENV_OK(in, want, utf8) env_check(__LINE__, in, want, utf8)

static void env_bad(int line, const char *in, const char *msg)
{
	struct addr a;
	struct err e = { 0 };
	char *out = NULL;
	bool utf8;
	int rc = addr_parse_one(in, ADDR_ALLOW_LOCAL, &a, &e);
	bool ok;

	if (rc == 0) {
		rc = addr_envelope(&a, &out, &utf8, &e);
		addr_free(&a);
	}
	ok = rc < 0 && e.cls == ERR_DATA && strstr(e.msg, msg) && !out;
	check(ok, line, "envelope refuses %.60s (%s)", in, msg);
	if (!ok)
		printf("#   rc %d, out \"%s\", error \"%s\"\n", rc, out ? out : "", e.msg);
	free(out);
}

#define ENV_BAD(in, msg) env_bad(__LINE__, in, msg)

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_basic(void)
{
	PARSE_OK("a@b", 0, "-|a|b");
	PARSE_OK("  a@b  ", 0, "-|a|b");
	PARSE_OK("Name <a@b>", 0, "Name|a|b");
	PARSE_OK("John Q. Public <jqp@example.com>", 0, "John Q. Public|jqp|example.com");
	PARSE_OK("\"Last, First\" <a@b>", 0, "Last, First|a|b");
	PARSE_OK("\"quoted \\\"x\\\"\" <a@b>", 0, "quoted \"x\"|a|b");
	PARSE_OK("a@b (Comment, with comma)", 0, "-|a|b");
	PARSE_OK("(c) Name (c) <a@b>", 0, "Name|a|b");
	PARSE_OK("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 0,
		 "Pete|pete|silly.test");
	PARSE_OK("a@b (nested (comment) here), c@d", 0, "-|a|b; -|c|d");
	PARSE_OK("\"\" <a@b>", 0, "-|a|b");
	PARSE_OK("a@b, Name <c@d>, \"x, y\" <e@f>", 0, "-|a|b; Name|c|d; x, y|e|f");
}

static void test_groups(void)
{
	PARSE_OK("undisclosed-recipients:;", 0, " {undisclosed-recipients:0+0}");
	PARSE_OK("team: a@b, c@d;", 0, "-|a|b; -|c|d {team:0+2}");
	PARSE_OK("x@y, team: a@b;, empty:;, z@w", 0,
		 "-|x|y; -|a|b; -|z|w {team:1+1} {empty:2+0}");
	PARSE_OK("A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, "
		 "joe@example.org, John <jdoe@one.test> (my dear friend); (the end of the group)",
		 0, "Chris Jones|c|public.example; -|joe|example.org; John|jdoe|one.test "
		 "{A Group:0+3}");
	PARSE_OK("team: ,a@b,,;", 0, "-|a|b {team:0+1}");
	PARSE_BAD("team: a@b", 0, "not terminated by ';'");
	PARSE_BAD("team: a@b c@d;", 0, "expected ',' or ';'");
	PARSE_BAD("g: h: a@b;;", 0, "a group inside a group");
	PARSE_BAD(":;", 0, "group without a name");
	PARSE_BAD("\"\":;", 0, "group without a name");
	PARSE_BAD("a@b;", 0, "expected ','");
	PARSE_BAD(";", 0, "unexpected ';'");
}

static void test_local_and_domain(void)
{
	PARSE_OK("\"john doe\"@example.com", 0, "-|john doe|example.com");
	PARSE_OK("\"john\"@example.com", 0, "-|john|example.com");
	PARSE_OK("john.\"x y\".doe@example.com", 0, "-|john.x y.doe|example.com");
	PARSE_OK("\"a\\\\b\"@c", 0, "-|a\\b|c");
	PARSE_OK("user@[192.0.2.1]", 0, "-|user|[192.0.2.1]");
	PARSE_OK("user@[IPv6:2001:db8::1]", 0, "-|user|[IPv6:2001:db8::1]");
	PARSE_OK("j\xc3\xb6rg@b\xc3\xbc" "cher.example", 0,
		 "-|j\xc3\xb6rg|b\xc3\xbc" "cher.example");
	PARSE_OK("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", 0,
		 "-|\xe7\x94\xa8\xe6\x88\xb7|\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8");
	PARSE_OK("first.last+tag@sub.example.org", 0, "-|first.last+tag|sub.example.org");
	PARSE_BAD("a..b@c", 0, "empty part before '.'");
	PARSE_BAD(".a@b", 0, "empty part before '.'");
	PARSE_BAD("a.@b", 0, "local part ends with '.'");
	PARSE_BAD("a@b..c", 0, "empty label");
	PARSE_BAD("a@b.", 0, "empty label");
	PARSE_BAD("a@.b", 0, "missing domain");
	PARSE_BAD("@b", 0, "missing local part");
	PARSE_BAD("a@", 0, "missing domain");
	PARSE_BAD("\"\"@b", 0, "empty local part");
	PARSE_BAD("john doe@x", 0, "words must be joined");
	PARSE_BAD("a@b c@d", 0, "expected ','");
	PARSE_BAD("a@b@c", 0, "expected ','");
	PARSE_BAD("a@[1.2.3.4\\]", 0, "inside a domain literal");
	PARSE_BAD("a@[1.2.\xc3\xa9]", 0, "in a domain literal");
	PARSE_BAD("a@[]", 0, "empty domain literal");
}

static void test_bare_local(void)
{
	PARSE_OK("root", ADDR_ALLOW_LOCAL, "-|root|-");
	PARSE_OK("root, a@b", ADDR_ALLOW_LOCAL, "-|root|-; -|a|b");
	PARSE_OK("Admin <root>", ADDR_ALLOW_LOCAL, "Admin|root|-");
	PARSE_BAD("root", 0, "missing '@domain'");
	PARSE_BAD("Admin <root>", 0, "has no '@domain'");
	PARSE_BAD("John Doe", ADDR_ALLOW_LOCAL, "words must be joined");
	PARSE_BAD("John Doe", 0, "missing '@domain'");
}

static void test_obsolete(void)
{
	PARSE_OK("<@route:a@b>", 0, "-|a|b");
	PARSE_OK("Name <@r1.example,@r2.example:a@b>", 0, "Name|a|b");
	PARSE_OK("<,@r1,,@r2:a@b>", 0, "-|a|b");
	PARSE_OK("a@b,,c@d", 0, "-|a|b; -|c|d");
	PARSE_OK(",a@b,", 0, "-|a|b");
	PARSE_OK(",,,", 0, "");
	PARSE_OK("", 0, "");
	PARSE_OK("   ", 0, "");
	PARSE_OK("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example", 0,
		 "Mary Smith|mary|example.net; -|jdoe|test.example");
	PARSE_OK("a@b,\r\n c@d", 0, "-|a|b; -|c|d");
	PARSE_OK("Name\r\n\t<a@b>", 0, "Name|a|b");
	PARSE_OK("\"folded\r\n quoted\" <a@b>", 0, "folded quoted|a|b");
	PARSE_OK("a@b (folded\r\n comment)", 0, "-|a|b");
	PARSE_OK("a@b,\r\n \r\n c", ADDR_ALLOW_LOCAL, "-|a|b; -|c|-");
	PARSE_BAD("<@route a@b>", 0, "malformed route");
}

static void test_rfc2047(void)
{
	PARSE_OK("=?UTF-8?B?SsO2cmc=?= <a@b>", 0, "J\xc3\xb6rg|a|b");
	PARSE_OK("=?utf-8?q?Andr=C3=A9?= Pirard <PIRARD@vm1.ulg.ac.be>", 0,
		 "Andr\xc3\xa9 Pirard|PIRARD|vm1.ulg.ac.be");
	PARSE_OK("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>", 0,
		 "Keld J\xc3\xb8rn Simonsen|keld|dkuug.dk");
	PARSE_OK("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?= <a@b>", 0, "ab|a|b");
	PARSE_OK("=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?_b?= <a@b>", 0, "a b|a|b");
	PARSE_OK("=?ISO-8859-1?Q?a?= b <a@b>", 0, "a b|a|b");
	PARSE_OK("=?UTF-8*en?Q?x?= <a@b>", 0, "x|a|b");
	/* Split between the bytes of one character: joined before decoding
	 * is not required, each word must decode on its own, so the pair is
	 * left as written. */
	PARSE_OK("=?UTF-8?B?w6k=?==?UTF-8?B?w6k=?= <a@b>", 0,
		 "=?UTF-8?B?w6k=?==?UTF-8?B?w6k=?=|a|b");
	PARSE_OK("=?windows-1252?Q?=80?= <a@b>", 0, "\xe2\x82\xac|a|b");
	PARSE_OK("=?utf-8?q?Doe,_John?= <a@b>", 0, "Doe, John|a|b");
	/* Undecodable or dangerous words stay as written. */
	PARSE_OK("=?UTF-8?B?####?= <a@b>", 0, "=?UTF-8?B?####?=|a|b");
	PARSE_OK("=?UTF-8?Q?a=0D=0Ab?= <a@b>", 0, "=?UTF-8?Q?a=0D=0Ab?=|a|b");
	PARSE_OK("=?UTF-8?Q?a=00b?= <a@b>", 0, "=?UTF-8?Q?a=00b?=|a|b");
	PARSE_OK("=?UTF-8?Q?=C2=85?= <a@b>", 0, "=?UTF-8?Q?=C2=85?=|a|b");
	PARSE_OK("=?UTF-8?Q?=FF?= <a@b>", 0, "=?UTF-8?Q?=FF?=|a|b");
	PARSE_OK("=?x-no-such-charset?Q?a?= <a@b>", 0, "=?x-no-such-charset?Q?a?=|a|b");
	PARSE_OK("=?US-ASCII?Q?=E9?= <a@b>", 0, "=?US-ASCII?Q?=E9?=|a|b");
	/* Inside a quoted string an encoded word is text (RFC 2047 5). */
	PARSE_OK("\"=?UTF-8?Q?x?=\" <a@b>", 0, "=?UTF-8?Q?x?=|a|b");
	/* Not a display name: an encoded-word-looking local part is taken
	 * literally, and one with a comma inside is refused. */
	PARSE_OK("=?x?q?y?=@b", 0, "-|=?x?q?y?=|b");
	PARSE_BAD("=?x?q?y,z?=@b", 0, "must be quoted");
}

static void test_hostile(void)
{
	char *s;

	PARSE_BAD("\"abc <a@b>", 0, "unbalanced '\"'");
	PARSE_BAD("Name <a@b", 0, "unbalanced '<'");
	PARSE_BAD("Name <a@b, c@d", 0, "expected '>'");
	PARSE_BAD("a@b>", 0, "unbalanced '>'");
	PARSE_BAD(">", 0, "unbalanced '>'");
	PARSE_BAD("a@b (x", 0, "unbalanced '('");
	PARSE_BAD("a@b (x (y)", 0, "unbalanced '('");
	PARSE_BAD("a@b)", 0, "unbalanced ')'");
	PARSE_BAD("a@[1.2.3.4", 0, "unbalanced '['");
	PARSE_BAD("a@1.2.3.4]", 0, "unbalanced ']'");
	PARSE_BAD("<>", 0, "empty address '<>'");
	PARSE_BAD("Name <>", 0, "empty address '<>'");
	PARSE_BAD("a\\b@c", 0, "outside a quoted string");
	PARSE_BAD("\"a\\", 0, "unbalanced '\"'");
	PARSE_BAD("a@b\r\nBcc: x@y", 0, "CR at offset 3");
	PARSE_BAD("a@b\nc@d", 0, "LF at offset 3");
	PARSE_BAD("a@b\r\n", 0, "CR at offset 3");
	PARSE_BAD("a@b\rc", 0, "CR at offset 3");
	PARSE_BAD("\"a\r\nb\"@c", 0, "not part of folding");
	parse_bad_n(__LINE__, "a@b\0c@d", 7, 0, "NUL byte at offset 3");
	PARSE_BAD("a\x01@b", 0, "control character 0x01");
	PARSE_BAD("\"a\x7f\"@b", 0, "control character 0x7f");
	PARSE_BAD("a@b (\x1b[31m)", 0, "control character 0x1b");
	PARSE_BAD("\xc3(@b", 0, "malformed UTF-8");
	PARSE_BAD("\xc0\xaf@b", 0, "malformed UTF-8");
	PARSE_BAD("\xed\xa0\x80@b", 0, "malformed UTF-8");
	PARSE_BAD("\xf4\x90\x80\x80@b", 0, "malformed UTF-8");
	PARSE_BAD("a@\xe4\xbe", 0, "malformed UTF-8");
	PARSE_BAD("Name <@route a@b>", 0, "malformed route");

	s = xasprintf("%s@b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	PARSE_BAD(s, 0, "longer than 64");
	free(s);
	s = xasprintf("%s@b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	PARSE_OK(s, 0, "-|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|b");
	free(s);
	s = malloc(400);
	strcpy(s, "a@");
	for (int i = 0; i < 64; i++)
		strcat(s, "abc.");
	strcat(s, "com");
	PARSE_BAD(s, 0, "domain longer than 255");
	free(s);

	/* Deeply nested comments do not recurse. */
	s = malloc(200010);
	strcpy(s, "a@b ");
	memset(s + 4, '(', 100000);
	memset(s + 100004, ')', 100000);
	s[200004] = '\0';
	PARSE_OK(s, 0, "-|a|b");
	s[200003] = '\0';
	PARSE_BAD(s, 0, "unbalanced '('");
	free(s);
}

static void test_rollback_and_one(void)
{
	struct addr_list l = ADDR_LIST_INIT;
	struct addr a;
	struct err e = { 0 };
	int rc;

	rc = addr_parse_list("x@y, g: z@w;", 0, &l, &e);
	CHECK(rc == 0 && l.n == 2 && l.ng == 1, "list accumulates");
	rc = addr_parse_list("p@q, g2: r@s; t@", 0, &l, &e);
	CHECK(rc < 0 && l.n == 2 && l.ng == 1 && !strcmp(l.v[1].local, "z"),
	      "a failed parse leaves the list as it was");
	rc = addr_parse_list("p@q", 0, &l, &e);
	CHECK(rc == 0 && l.n == 3 && !strcmp(l.v[2].local, "p"), "appends after a failure");
	rc = addr_parse_list(NULL, 0, &l, &e);
	CHECK(rc == 0 && l.n == 3, "NULL is an empty list");
	addr_list_free(&l);
	CHECK(l.n == 0 && l.v == NULL && l.g == NULL, "free empties the list");

	rc = addr_parse_one("Name <a@b>", 0, &a, &e);
	CHECK(rc == 0 && !strcmp(a.display, "Name") && !strcmp(a.local, "a") &&
	      !strcmp(a.domain, "b"), "parse_one");
	if (rc == 0)
		addr_free(&a);
	rc = addr_parse_one("a@b, c@d", 0, &a, &e);
	CHECK(rc < 0 && strstr(e.msg, "one address expected"), "parse_one refuses a list");
	rc = addr_parse_one("", 0, &a, &e);
	CHECK(rc < 0 && strstr(e.msg, "no address"), "parse_one refuses nothing");
	rc = addr_parse_one("g: a@b;", 0, &a, &e);
	CHECK(rc < 0 && strstr(e.msg, "group is not allowed"), "parse_one refuses a group");
	rc = addr_parse_one("root", 0, &a, &e);
	CHECK(rc < 0 && e.cls == ERR_DATA, "parse_one honours flags");
}

static void test_envelope(void)
{
	char *s, *t;

	ENV_OK("a@b.example", "a@b.example", false);
	ENV_OK("Name <First.Last@Example.COM>", "First.Last@Example.COM", false);
	ENV_OK("\"john doe\"@example.com", "\"john doe\"@example.com", false);
	ENV_OK("\"john\"@example.com", "john@example.com", false);
	ENV_OK("\"a\\\"b\"@c.d", "\"a\\\"b\"@c.d", false);
	ENV_OK("\"a..b\"@c.d", "\"a..b\"@c.d", false);
	ENV_OK("a@b\xc3\xbc" "cher.example", "a@xn--bcher-kva.example", false);
	ENV_OK("a@B\xc3\x9c" "CHER.example", "a@xn--bcher-kva.example", false);
	ENV_OK("a@fa\xc3\x9f.de", "a@xn--fa-hia.de", false);
	ENV_OK("j\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com", true);
	ENV_OK("\"j\xc3\xb6rg x\"@example.com", "\"j\xc3\xb6rg x\"@example.com", true);
	ENV_OK("a@xn--bcher-kva.example", "a@xn--bcher-kva.example", false);
	ENV_OK("a@[192.0.2.1]", "a@[192.0.2.1]", false);
	ENV_OK("a@[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]", false);
	ENV_OK("a@[x-tag:some-thing]", "a@[x-tag:some-thing]", false);
	ENV_OK("root", "root", false);
	ENV_OK("a@localhost", "a@localhost", false);
	ENV_BAD("a@[300.1.1.1]", "invalid address literal");
	ENV_BAD("a@[IPv6:zz::1]", "invalid address literal");
	ENV_BAD("a@[1.2.3]", "invalid address literal");
	ENV_BAD("a@exa_mple.com", "invalid domain");
	ENV_BAD("a@-bad.example", "invalid domain");
	ENV_BAD("a@bad-.example", "invalid domain");
	ENV_BAD("a@b!c.example", "invalid domain");
	ENV_BAD("a@\xe2\x98\x83.com", "not a valid internationalised domain name");
	ENV_BAD("a@ex\xe2\x80\x8d" "ample.com", "not a valid internationalised domain name");
	ENV_BAD("a@xn--zz.com", "not a valid internationalised domain name");
	ENV_BAD("\"a\tb\"@c.d", "control character 0x09");

	s = repeat('l', 64);
	t = xasprintf("a@%s.example", s);
	ENV_BAD(t, "invalid domain");
	free(t);
	/* 63 + quotes: the quoted form is over 64 octets. */
	s[62] = ' ';
	s[63] = '\0';
	t = xasprintf("\"%s\"@c.d", s);
	ENV_BAD(t, "longer than 64");
	free(t);
	free(s);
	/* 64 + 1 + 189 = 254 is fine, one more is not. */
	{
		char *a = repeat('a', 64), *b = repeat('b', 63), *c = repeat('c', 63);
		char *d = repeat('d', 62);

		s = xasprintf("%s@%s.%s.%s", a, b, c, d + 1);
		CHECK(strlen(s) == 254, "path length fixture");
		ENV_OK(s, s, false);
		free(s);
		s = xasprintf("%s@%s.%s.%s", a, b, c, d);
		ENV_BAD(s, "longer than 254");
		free(s);
		free(a);
		free(b);
		free(c);
		free(d);
	}

	{
		struct addr a = { NULL, (char *)"x\r\ny", (char *)"b.c" };
		struct err e = { 0 };
		char *out = NULL;
		bool u;
		int rc = addr_envelope(&a, &out, &u, &e);

		CHECK(rc < 0 && !out && strstr(e.msg, "control character"),
		      "envelope refuses CR/LF in a hand-built address");
		a.local = (char *)"ok";
		a.domain = (char *)"b..c";
		rc = addr_envelope(&a, &out, &u, &e);
		CHECK(rc < 0 && !out, "envelope refuses a hand-built bad domain");
	}
}

static void test_header_form(void)
{
	struct addr_list l = ADDR_LIST_INIT;
	struct strbuf sb = STRBUF_INIT;
	struct err e = { 0 };

	addr_parse_list("\"john doe\"@b\xc3\xbc" "cher.example, \"x\"@y, a@[1.2.3.4], root",
			ADDR_ALLOW_LOCAL, &l, &e);
	for (size_t i = 0; i < l.n; i++) {
		if (i)
			sb_adds(&sb, ", ");
		addr_append_spec(&sb, &l.v[i]);
	}
	CHECK(sb.s && !strcmp(sb.s, "\"john doe\"@b\xc3\xbc" "cher.example, x@y, a@[1.2.3.4], root"),
	      "header form keeps the Unicode domain and quotes only when needed");
	sb_free(&sb);
	addr_list_free(&l);

	CHECK(addr_utf8_valid("", 0) && addr_utf8_valid("\xf0\x9f\x98\x80", 4) &&
	      !addr_utf8_valid("\xf0\x9f\x98", 3) && !addr_utf8_valid("\xe0\x80\x80", 3) &&
	      !addr_utf8_valid("\xff", 1), "utf8 validator");
}

int main(void)
{
	test_basic();
	test_groups();
	test_local_and_domain();
	test_bare_local();
	test_obsolete();
	test_rfc2047();
	test_hostile();
	test_rollback_and_one();
	test_envelope();
	test_header_form();
	return tap_done();
}

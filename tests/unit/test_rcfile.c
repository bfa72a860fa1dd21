/* test_rcfile.c - unit tests of the rc file reader (TAP output). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "rcfile.h"
#include "util.h"
#include "tap.h"

static char dir[] = "/tmp/test_rcfile.XXXXXX";

#define CHECK(cond, ...) ok(cond, __VA_ARGS__)

/* Write len bytes into dir/name with the given mode; returns the path. */
static char *put(const char *name, const char *data, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(99);
	}
	if (chmod(path, mode) != 0) {
		perror("chmod");
		exit(99);
	}
	return path;
}

static char *puts_file(const char *name, const char *text)
{
	return put(name, text, strlen(text), 0600);
}

/* Load text; on failure returns the error class and leaves e filled. */
static int load_text(const char *name, const char *text, struct rcfile *rc, struct err *e)
{
	char *path = puts_file(name, text);
	err_clear(e);
	int rv = rcfile_load(path, rc, e);
	free(path);
	return rv ? (int)e->cls : 0;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *setting(const struct rc_account *a, const char *key)
{
	const char *v = NULL;
	for (size_t i = 0; i < a->nset; i++)
		if (strcmp(a->set[i].key, key) == 0)
			v = a->set[i].value;
	return v;
}

struct rec {
	struct strbuf sb;
	const char *stop_at;
};

static int record(void *ctx, const char *key, const char *value,
		  const char *path, int line, struct err *e)
{
	struct rec *r = ctx;
	(void)path;
	if (r->stop_at && strcmp(key, r->stop_at) == 0) {
		err_set(e, ERR_CONFIG, 0, "stop at line %d", line);
		return -1;
	}
	sb_addf(&r->sb, "%s=%s;", key, value);
	return 0;
}

/* The apply order of account name ("defaults" for the section itself). */
static char *applied(const struct rcfile *rc, const char *name)
{
	const struct rc_account *a = strcmp(name, "defaults") == 0 ? &rc->acc[0]
							     : rcfile_find(rc, name);
	struct rec r = { STRBUF_INIT, NULL };
	struct err e;
	if (!a || rcfile_apply(rc, a, record, &r, &e) != 0) {
		sb_free(&r.sb);
		return xstrdup("<error>");
	}
	sb_adds(&r.sb, "");
	return r.sb.s;
}

static void check_applied(const struct rcfile *rc, const char *name, const char *want,
			  const char *desc)
{
	char *got = applied(rc, name);
	if (!CHECK(strcmp(got, want) == 0, "%s", desc))
		printf("#   got:  %s\n#   want: %s\n", got, want);
	free(got);
}

static const char *chosen(const struct rcfile *rc, const char *name, const char *from)
{
	const struct rc_account *a = NULL;
	struct err e;
	if (rcfile_choose(rc, name, from, &a, &e) != 0)
		return "<error>";
	return a->name;
}

/* Expect a syntax error whose message starts with "PATH:LINE: " and
 * contains what. */
static void expect_syntax(const char *name, const char *text, int line, const char *what)
{
	struct rcfile rc;
	struct err e;
	char *path = puts_file(name, text);
	err_clear(&e);
	int rv = rcfile_load(path, &rc, &e);
	char *prefix = xasprintf("%s:%d: ", path, line);
	bool ok = rv == -1 && e.cls == ERR_CONFIG && starts_with(e.msg, prefix) &&
		  strstr(e.msg, what) != NULL && rc.nacc == 0 && rc.path == NULL;
	if (!CHECK(ok, "%s: error at line %d mentions \"%s\"", name, line, what))
		printf("#   rv=%d cls=%d msg=%s\n", rv, (int)e.cls, e.msg);
	rcfile_free(&rc);
	free(prefix);
	free(path);
}

static void test_basic_syntax(void)
{
	struct rcfile rc;
	struct err e;

	int rv = load_text("basic",
			   "# a comment\n"
			   "\n"
			   "   \t\n"
			   "   # indented comment\n"
			   "host   smtp.example.org  \n"
			   "\tport\t587\n"
			   "tls\n"
			   "auth on # not a comment\n"
			   "Some-Key_2 x\n",
			   &rc, &e);
	CHECK(rv == 0, "comments, blank lines and blanks around keys load");
	CHECK(rc.nacc == 1 && strcmp(rc.acc[0].name, "defaults") == 0 && rc.acc[0].nset == 5,
	      "settings before any account belong to defaults");
	CHECK(strcmp(setting(&rc.acc[0], "host"), "smtp.example.org") == 0,
	      "value has surrounding blanks removed");
	CHECK(strcmp(setting(&rc.acc[0], "port"), "587") == 0, "tab separates key and value");
	CHECK(strcmp(setting(&rc.acc[0], "tls"), "") == 0, "a key alone has an empty value");
	CHECK(strcmp(setting(&rc.acc[0], "auth"), "on # not a comment") == 0,
	      "a '#' after the key is part of the value");
	CHECK(rc.acc[0].set[0].line == 5 && rc.acc[0].set[4].line == 9,
	      "settings remember their line numbers");
	CHECK(!rc.holds_secret, "no secret without a password key");
	rcfile_free(&rc);
	CHECK(rc.acc == NULL && rc.nacc == 0, "rcfile_free leaves an empty struct");
	rcfile_free(&rc);
}

static void test_quotes(void)
{
	struct rcfile rc;
	struct err e;

	int rv = load_text("quotes",
			   "user \"  spaced out  \"\n"
			   "password \"a#b \\\"q\\\" c\\\\d\\n\"\n"
			   "empty \"\"\n"
			   "inner a\"b\"c\n"
			   "path \"C:\\dir\"\n",
			   &rc, &e);
	CHECK(rv == 0, "quoted values load");
	if (rv == 0) {
		CHECK(strcmp(setting(&rc.acc[0], "user"), "  spaced out  ") == 0,
		      "quotes keep surrounding blanks");
		CHECK(strcmp(setting(&rc.acc[0], "password"), "a#b \"q\" c\\d\\n") == 0,
		      "\\\" and \\\\ are escapes, other backslashes are literal");
		CHECK(strcmp(setting(&rc.acc[0], "empty"), "") == 0, "\"\" is an empty value");
		CHECK(strcmp(setting(&rc.acc[0], "inner"), "a\"b\"c") == 0,
		      "quotes inside an unquoted value are literal");
		CHECK(strcmp(setting(&rc.acc[0], "path"), "C:\\dir") == 0,
		      "a lone backslash before a letter stays");
		CHECK(rc.holds_secret, "password makes holds_secret");
	}
	rcfile_free(&rc);

	expect_syntax("unterminated", "host x\nuser \"abc\n", 2, "missing closing quote");
	expect_syntax("unterminated2", "user \"abc\\\"\n", 1, "missing closing quote");
	expect_syntax("after", "a 1\nb 2\nuser \"abc\" def\n", 3, "text after closing quote");
}

static void test_crlf(void)
{
	struct rcfile rc;
	struct err e;
	int rv = load_text("crlf",
			   "# dos file\r\n"
			   "host smtp.example.org\r\n"
			   "user \"  me \"\r\n"
			   "\r\n"
			   "account a\r\n"
			   "from a@example.org\r\n"
			   "last noeol\r",
			   &rc, &e);
	CHECK(rv == 0, "CRLF file loads");
	if (rv == 0) {
		CHECK(strcmp(setting(&rc.acc[0], "host"), "smtp.example.org") == 0,
		      "CR stripped from values");
		CHECK(strcmp(setting(&rc.acc[0], "user"), "  me ") == 0,
		      "CR stripped after a quote");
		CHECK(rc.nacc == 2 && strcmp(rc.acc[1].name, "a") == 0,
		      "CR stripped from account name");
		CHECK(strcmp(setting(&rc.acc[1], "last"), "noeol") == 0,
		      "CR stripped on a last line without LF");
	}
	rcfile_free(&rc);
	expect_syntax("barecr", "host a\rb\n", 1, "control character");
	expect_syntax("esc", "a 1\nhost a\033[2Jb\n", 2, "control character");
}

static void test_long_line(void)
{
	size_t n = 100 * 1024;
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "defaults\npasswordeval_token ");
	for (size_t i = 0; i < n; i++)
		sb_addc(&sb, (char)('A' + i % 26));
	sb_adds(&sb, "   \nafter 1\n");
	sb_adds(&sb, "oauth \"");
	for (size_t i = 0; i < n; i++)
		sb_addc(&sb, (char)('a' + i % 26));
	sb_adds(&sb, "\"");    /* no final newline */

	struct rcfile rc;
	struct err e;
	char *path = put("long", sb.s, sb.len, 0600);
	err_clear(&e);
	int rv = rcfile_load(path, &rc, &e);
	CHECK(rv == 0, "100 KB value lines load");
	if (rv == 0) {
		const char *v = setting(&rc.acc[0], "passwordeval_token");
		CHECK(v && strlen(v) == n && v[0] == 'A' && v[n - 1] == (char)('A' + (n - 1) % 26),
		      "100 KB value kept whole, trailing blanks removed");
		CHECK(rc.acc[0].set[1].line == 3, "line after the long line is line 3");
		v = setting(&rc.acc[0], "oauth");
		CHECK(v && strlen(v) == n, "100 KB quoted value on a last line without newline");
	}
	rcfile_free(&rc);
	free(path);
	sb_free(&sb);
}

static void test_inheritance(void)
{
	struct rcfile rc;
	struct err e;
	int rv = load_text("inherit",
			   "host d\n"
			   "port 25\n"
			   "account a\n"
			   "host a\n"
			   "user ua\n"
			   "defaults\n"
			   "tls on\n"
			   "account b : a\n"
			   "port 2b\n"
			   "account c\n"
			   "host c\n"
			   "ACCOUNT d: b ,c\n"
			   "user ud\n"
			   "account e : b,a\n"
			   "account f : c, b\n"
			   "account default : f\n"
			   "from x@y\n",
			   &rc, &e);
	CHECK(rv == 0, "defaults and inheriting accounts load");
	if (rv != 0) {
		printf("#   %s\n", e.msg);
		return;
	}
	CHECK(rc.nacc == 8, "seven accounts plus defaults");
	CHECK(rc.acc[0].nset == 3, "a later \"defaults\" line reopens the defaults section");
	CHECK(rc.acc[4].nbases == 2 && strcmp(rc.acc[4].bases[0], "b") == 0 &&
	      strcmp(rc.acc[4].bases[1], "c") == 0 && rc.acc[4].line == 12,
	      "bases parsed with blanks around ':' and ','");
	check_applied(&rc, "defaults", "host=d;port=25;tls=on;", "defaults alone");
	check_applied(&rc, "a", "host=d;port=25;tls=on;host=a;user=ua;", "defaults then own");
	check_applied(&rc, "b", "host=d;port=25;tls=on;host=a;user=ua;port=2b;",
		      "base before own settings");
	check_applied(&rc, "d",
		      "host=d;port=25;tls=on;host=a;user=ua;port=2b;host=c;user=ud;",
		      "multi-level, multiple bases depth-first in declared order");
	check_applied(&rc, "e", "host=d;port=25;tls=on;host=a;user=ua;port=2b;",
		      "a base reached twice (diamond) is applied once");
	check_applied(&rc, "f", "host=d;port=25;tls=on;host=c;host=a;user=ua;port=2b;",
		      "base order decides who wins");
	check_applied(&rc, "default",
		      "host=d;port=25;tls=on;host=c;host=a;user=ua;port=2b;from=x@y;",
		      "account default : f inherits and may add settings");

	CHECK(strcmp(chosen(&rc, NULL, NULL), "default") == 0,
	      "nothing chosen: account default");
	CHECK(strcmp(chosen(&rc, "c", NULL), "c") == 0, "choose by name");
	CHECK(strcmp(chosen(&rc, "C", NULL), "<error>") == 0, "account names are case-sensitive");

	const struct rc_account *a = NULL;
	err_clear(&e);
	rv = rcfile_choose(&rc, "zz", NULL, &a, &e);
	char *want = xasprintf("%s/inherit: no account \"zz\"", dir);
	CHECK(rv == -1 && e.cls == ERR_CONFIG && strcmp(e.msg, want) == 0,
	      "unknown account name: FILE: no account \"zz\"");
	free(want);
	CHECK(strcmp(chosen(&rc, "defaults", NULL), "<error>") == 0,
	      "the defaults section is not an account name");

	/* The callback's error stops the walk. */
	struct rec r = { STRBUF_INIT, "user" };
	err_clear(&e);
	rv = rcfile_apply(&rc, rcfile_find(&rc, "d"), record, &r, &e);
	CHECK(rv == -1 && strcmp(e.msg, "stop at line 5") == 0 && r.sb.s &&
	      strcmp(r.sb.s, "host=d;port=25;tls=on;host=a;") == 0,
	      "apply stops at the first callback error with its line");
	sb_free(&r.sb);

	/* A foreign account pointer is refused rather than read. */
	struct rc_account stray = { 0 };
	err_clear(&e);
	rv = rcfile_apply(&rc, &stray, record, &r, &e);
	CHECK(rv == -1 && e.cls == ERR_INTERNAL, "apply refuses an account of another file");
	sb_free(&r.sb);
	rcfile_free(&rc);
}

/* Inheritance loops cannot be written in a file; build one by hand. */
static void test_cycle_guard(void)
{
	struct rcfile rc;
	struct err e;
	int rv = load_text("cycle", "account a\nhost a\naccount b : a\nhost b\n", &rc, &e);
	CHECK(rv == 0, "cycle fixture loads");
	if (rv)
		return;
	rc.acc[1].bases = xmalloc(sizeof *rc.acc[1].bases);
	rc.acc[1].bases[0] = xstrdup("b");
	rc.acc[1].nbases = 1;
	struct rec r = { STRBUF_INIT, NULL };
	err_clear(&e);
	rv = rcfile_apply(&rc, &rc.acc[2], record, &r, &e);
	CHECK(rv == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "inherits from itself"),
	      "an inheritance loop is refused");
	sb_free(&r.sb);
	CHECK(strcmp(chosen(&rc, NULL, "x@y"), "<error>") == 0,
	      "choose reports the loop too");
	rcfile_free(&rc);
}

static void test_choose_from(void)
{
	struct rcfile rc;
	struct err e;
	int rv = load_text("from",
			   "account nofrom\n"
			   "host h\n"
			   "account x\n"
			   "from *@Example.COM\n"
			   "account y\n"
			   "from bob@*\n"
			   "account p\n"
			   "from p@*\n"
			   "account q : p\n"
			   "from q@*\n"
			   "account r : p\n"
			   "host r\n"
			   "account default : nofrom\n",
			   &rc, &e);
	CHECK(rv == 0, "from fixture loads");
	if (rv)
		return;
	CHECK(strcmp(chosen(&rc, NULL, "BOB@example.com"), "x") == 0,
	      "from glob is case-insensitive and the first match wins");
	CHECK(strcmp(chosen(&rc, NULL, "bob@other.org"), "y") == 0, "second glob matches");
	CHECK(strcmp(chosen(&rc, NULL, "q@host"), "q") == 0, "own from overrides an inherited one");
	CHECK(strcmp(chosen(&rc, NULL, "p@host"), "p") == 0, "the earlier account wins over r");
	CHECK(strcmp(chosen(&rc, NULL, "nobody@nowhere"), "default") == 0,
	      "no match: account default");
	CHECK(strcmp(chosen(&rc, NULL, NULL), "default") == 0,
	      "no envelope sender: account default");
	CHECK(strcmp(chosen(&rc, "y", "p@host"), "y") == 0, "a name beats the from match");
	rcfile_free(&rc);

	rv = load_text("from2",
			   "from *@dflt.org\n"
			   "account first\n"
			   "host 1\n"
			   "account second\n"
			   "from *@other.org\n"
			   "account third : second\n"
			   "host 3\n",
			   &rc, &e);
	CHECK(rv == 0, "second from fixture loads");
	if (rv)
		return;
	CHECK(strcmp(chosen(&rc, NULL, "me@DFLT.org"), "first") == 0,
	      "a from inherited from defaults counts");
	CHECK(strcmp(chosen(&rc, NULL, "me@other.org"), "second") == 0,
	      "account override of from");
	const struct rc_account *a = NULL;
	CHECK(rcfile_choose(&rc, NULL, "me@nowhere.org", &a, &e) == 0 && a == &rc.acc[0],
	      "no match and no default account: defaults section alone");
	rcfile_free(&rc);

	rcfile_free(&rc);
}

static void test_syntax_errors(void)
{
	expect_syntax("unknownbase", "account a\nhost x\naccount b : a, zz\n", 3,
		      "unknown base account \"zz\"");
	expect_syntax("selfbase", "account a : a\n", 1, "unknown base account \"a\"");
	expect_syntax("laterbase", "account b : a\naccount a\n", 1, "unknown base account \"a\"");
	expect_syntax("dup", "account a\nhost 1\n\naccount a\n", 4,
		      "account \"a\" is defined twice (first on line 1)");
	expect_syntax("dupdefault", "account a\naccount default : a\naccount default : a\n", 3,
		      "defined twice");
	expect_syntax("badkey", "host x\n# c\nho$t y\n", 3, "invalid key");
	expect_syntax("badkey2", "p@ssw0rd!\n", 1, "invalid key");
	expect_syntax("badkeyquote", "\"host\" y\n", 1, "invalid key");
	expect_syntax("noname", "host x\naccount\n", 2, "account needs a name");
	expect_syntax("noname2", "account : a\n", 1, "account needs a name");
	expect_syntax("badname", "account a,b\n", 1, "invalid account name");
	expect_syntax("emptybase", "account a\naccount b :\n", 2, "empty base account name");
	expect_syntax("emptybase2", "account a\naccount b : a,,a\n", 2, "empty base account name");
	expect_syntax("emptybase3", "account a\naccount b : a,\n", 2, "empty base account name");
	expect_syntax("badbase", "account a\naccount b : a b\n", 2, "invalid base account name");
	expect_syntax("reserved", "account defaults\n", 1, "reserved");
	expect_syntax("defaultsval", "defaults x\n", 1, "takes no value");

	static const char nul[] = "host x\nuser a\0b\nport 1\n";
	char *path = put("nul", nul, sizeof nul - 1, 0600);
	struct rcfile rc;
	struct err e;
	err_clear(&e);
	int rv = rcfile_load(path, &rc, &e);
	char *want = xasprintf("%s:2: NUL byte in line", path);
	CHECK(rv == -1 && e.cls == ERR_CONFIG && strcmp(e.msg, want) == 0,
	      "NUL byte is a syntax error with its line");
	free(want);
	free(path);
	rcfile_free(&rc);

	static const char nulc[] = "# comment \0 here\n";
	path = put("nulcomment", nulc, sizeof nulc - 1, 0600);
	err_clear(&e);
	rv = rcfile_load(path, &rc, &e);
	CHECK(rv == -1 && strstr(e.msg, ":1: NUL byte"), "NUL byte in a comment is an error too");
	free(path);
	rcfile_free(&rc);
}

static void test_permissions(bool root)
{
	struct rcfile rc;
	struct err e;
	static const char secret[] = "account a\nhost h\npassword hunter2\n";
	static const char plain[] = "account a\nhost h\npassword_command pass show x\n";

	char *path = put("perm644", secret, sizeof secret - 1, 0644);
	err_clear(&e);
	int rv = rcfile_load(path, &rc, &e);
	char *want = xasprintf("%s: holds a password but is readable by others; run: chmod 600 %s",
			       path, path);
	if (!CHECK(rv == -1 && e.cls == ERR_CONFIG && strcmp(e.msg, want) == 0,
		   "0644 file with a password refused with a chmod hint"))
		printf("#   %s\n", e.msg);
	CHECK(strstr(e.msg, "hunter2") == NULL, "the refusal does not show the password");
	free(want);
	rcfile_free(&rc);

	CHECK(chmod(path, 0600) == 0, "chmod 600");
	err_clear(&e);
	rv = rcfile_load(path, &rc, &e);
	CHECK(rv == 0 && rc.holds_secret, "0600 file with a password accepted");
	rcfile_free(&rc);

	CHECK(chmod(path, 0620) == 0, "chmod 620");
	err_clear(&e);
	rv = rcfile_load(path, &rc, &e);
	CHECK(rv == -1 && strstr(e.msg, "writable by others") && strstr(e.msg, "chmod 600"),
	      "group-writable file with a password refused");
	rcfile_free(&rc);

	if (root) {
		CHECK(chmod(path, 0600) == 0 && chown(path, 12345, 12345) == 0,
		      "chown to uid 12345");
		err_clear(&e);
		rv = rcfile_load(path, &rc, &e);
		want = xasprintf("%s: holds a password but is owned by uid 12345, not by you",
				 path);
		CHECK(rv == -1 && e.cls == ERR_CONFIG && strcmp(e.msg, want) == 0,
		      "file with a password owned by someone else refused");
		free(want);
		rcfile_free(&rc);
	} else {
		tap_skip("chown needs root");
	}
	free(path);

	path = put("plain644", plain, sizeof plain - 1, 0644);
	err_clear(&e);
	rv = rcfile_load(path, &rc, &e);
	CHECK(rv == 0 && !rc.holds_secret,
	      "0644 file without secrets accepted (password_command is no secret)");
	rcfile_free(&rc);
	if (root) {
		CHECK(chown(path, 12345, 12345) == 0, "chown plain file");
		err_clear(&e);
		rv = rcfile_load(path, &rc, &e);
		CHECK(rv == 0, "file without secrets owned by someone else accepted");
		rcfile_free(&rc);
	}
	free(path);

	static const struct {
		const char *text;
		bool secret;
	} cases[] = {
		{ "PassWord x\n", true },
		{ "firewallpassword x\n", true },
		{ "Proxy_Password x\n", true },
		{ "tls_key_password x\n", true },
		{ "AuthorizationIdentity x\n", true },
		{ "account a\npassword \"\"\n", true },
		{ "proxy http://user:pw@proxy.example:8080\n", true },
		{ "proxy user:pw@proxy.example\n", true },
		{ "proxy http://proxy.example:8080\n", false },
		{ "proxy user@proxy.example:8080\n", false },
		{ "passwords x\n", false },
		{ "# password x\n", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err_clear(&e);
		path = put("secret", cases[i].text, strlen(cases[i].text), 0644);
		rv = rcfile_load(path, &rc, &e);
		char desc[128];
		snprintf(desc, sizeof desc, "%s", cases[i].text);
		for (char *c = desc; *c; c++)
			if (*c == '\n')
				*c = c[1] ? '|' : '\0';
		CHECK(cases[i].secret ? rv == -1 && strstr(e.msg, "chmod 600") : rv == 0,
		      "secret detection: %s -> %s", desc,
		      cases[i].secret ? "refused" : "accepted");
		rcfile_free(&rc);
		free(path);
	}

	/* The chmod hint is a valid shell word for awkward paths. */
	char *sub = xasprintf("%s/it's a dir", dir);
	CHECK(mkdir(sub, 0700) == 0, "mkdir awkward directory");
	path = put("it's a dir/rc", secret, sizeof secret - 1, 0604);
	err_clear(&e);
	rv = rcfile_load(path, &rc, &e);
	want = xasprintf("run: chmod 600 '%s/it'\\''s a dir/rc'", dir);
	CHECK(rv == -1 && strstr(e.msg, want), "chmod hint quotes the path for the shell");
	free(want);
	rcfile_free(&rc);
	unlink(path);
	free(path);
	rmdir(sub);
	free(sub);
}

static void test_file_kinds(void)
{
	struct rcfile rc;
	struct err e;

	err_clear(&e);
	int rv = rcfile_load(dir, &rc, &e);
	CHECK(rv == -1 && e.cls == ERR_CONFIG && starts_with(e.msg, dir) &&
	      strstr(e.msg, "not a regular file (a directory)"),
	      "a directory is refused");
	rcfile_free(&rc);

	char *fifo = xasprintf("%s/fifo", dir);
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
	err_clear(&e);
	rv = rcfile_load(fifo, &rc, &e);
	CHECK(rv == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "not a regular file (a FIFO)"),
	      "a FIFO is refused without blocking");
	rcfile_free(&rc);
	unlink(fifo);
	free(fifo);

	char *missing = xasprintf("%s/missing", dir);
	char *want = xasprintf("%s: No such file or directory", missing);
	err_clear(&e);
	rv = rcfile_load(missing, &rc, &e);
	CHECK(rv == -1 && e.cls == ERR_NOINPUT && strcmp(e.msg, want) == 0,
	      "a missing file is ERR_NOINPUT: FILE: No such file or directory");
	rcfile_free(&rc);
	free(want);
	free(missing);

	char *empty = put("empty", "", 0, 0644);
	err_clear(&e);
	rv = rcfile_load(empty, &rc, &e);
	CHECK(rv == 0 && rc.nacc == 1 && rc.acc[0].nset == 0, "an empty file is fine");
	CHECK(strcmp(chosen(&rc, NULL, "a@b"), "defaults") == 0,
	      "an empty file chooses the defaults section");
	rcfile_free(&rc);
	free(empty);
}

static void test_paths(void)
{
	char *home = xasprintf("%s/home", dir);
	char *xdg = xasprintf("%s/xdg", dir);
	CHECK(mkdir(home, 0700) == 0 && mkdir(xdg, 0700) == 0, "make home and xdg");
	setenv("HOME", home, 1);
	setenv("XDG_CONFIG_HOME", xdg, 1);

	char *want = xasprintf("%s/.smtpsendrc", home);
	char *got = rcfile_user_path();
	CHECK(got && strcmp(got, want) == 0, "no XDG file: ~/.smtpsendrc");
	free(got);
	free(want);

	char *sub = xasprintf("%s/smtpsend", xdg);
	char *cfg = xasprintf("%s/config", sub);
	CHECK(mkdir(sub, 0700) == 0, "make xdg/smtpsend");
	fclose(fopen(cfg, "w"));
	got = rcfile_user_path();
	CHECK(got && strcmp(got, cfg) == 0, "XDG_CONFIG_HOME/smtpsend/config when it exists");
	free(got);

	setenv("XDG_CONFIG_HOME", "relative/dir", 1);
	want = xasprintf("%s/.smtpsendrc", home);
	got = rcfile_user_path();
	CHECK(got && strcmp(got, want) == 0, "a relative XDG_CONFIG_HOME is ignored");
	free(got);
	free(want);

	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", dir, 1);
	char *dotcfg = xasprintf("%s/.config/smtpsend", dir);
	char *dotfile = xasprintf("%s/config", dotcfg);
	char *dotdir = xasprintf("%s/.config", dir);
	CHECK(mkdir(dotdir, 0700) == 0 && mkdir(dotcfg, 0700) == 0, "make ~/.config/smtpsend");
	fclose(fopen(dotfile, "w"));
	got = rcfile_user_path();
	CHECK(got && strcmp(got, dotfile) == 0, "XDG unset: ~/.config/smtpsend/config");
	free(got);
	unlink(dotfile);
	rmdir(dotcfg);
	rmdir(dotdir);
	free(dotfile);
	free(dotcfg);
	free(dotdir);

	unsetenv("HOME");
	got = rcfile_user_path();
	CHECK(got && got[0] == '/' && strstr(got, "/.smtpsendrc"),
	      "HOME unset: home from the password database");
	free(got);

	const char *sys = rcfile_system_path();
	size_t n = strlen(sys);
	CHECK(n > 11 && strcmp(sys + n - 11, "/smtpsendrc") == 0 && sys[0] == '/',
	      "system path ends in /smtpsendrc");

	unlink(cfg);
	rmdir(sub);
	rmdir(xdg);
	rmdir(home);
	free(cfg);
	free(sub);
	free(xdg);
	free(home);
}

static void cleanup(void)
{
	static const char *const names[] = {
		"basic", "quotes", "unterminated", "unterminated2", "after", "crlf", "barecr",
		"esc", "long", "inherit", "cycle", "from", "from2", "unknownbase",
		"selfbase", "laterbase", "dup", "dupdefault", "badkey", "badkey2", "badkeyquote",
		"noname", "noname2", "badname", "emptybase", "emptybase2", "emptybase3",
		"badbase", "reserved", "defaultsval", "nul", "nulcomment", "perm644",
		"plain644", "secret", "empty",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			perror(p);
		free(p);
	}
	if (rmdir(dir) != 0)
		perror(dir);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	test_basic_syntax();
	test_quotes();
	test_crlf();
	test_long_line();
	test_inheritance();
	test_cycle_guard();
	test_choose_from();
	test_syntax_errors();
	test_file_kinds();
	test_paths();
	test_permissions(geteuid() == 0);
	cleanup();
	return tap_done();
}

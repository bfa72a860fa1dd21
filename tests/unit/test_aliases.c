/* test_aliases.c - the aliases file and the expansion of local names.
 * Prints TAP; exits non-zero when any test fails. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "err.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/test_aliases.XXXXXX";
static int nfiles;

/* Write text to a new file in dir; returns its path (owned by caller). */
static char *write_file(const char *text)
{
	char *path = xasprintf("%s/aliases.%d", dir, nfiles++);
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("#   cannot write %s\n", path);
		exit(1);
	}
	return path;
}

static struct aliases *load_text(const char *text, char **path_out)
{
	struct aliases *a = NULL;
	struct err e = { 0 };
	char *path = write_file(text);

	if (aliases_load(path, &a, &e) < 0) {
		printf("#   aliases_load: %s\n", e.msg);
		a = NULL;
	}
	if (path_out)
		*path_out = path;
	else
		free(path);
	return a;
}

/* Resolve name; the result as "addr addr ..." or "ERROR <class>: <msg>". */
static void resolve(const struct aliases *a, const char *name, const char *dom, struct strbuf *sb)
{
	struct strlist out = STRLIST_INIT;
	struct err e = { 0 };

	sb_reset(sb);
	sb_adds(sb, "");
	if (aliases_resolve(a, name, dom, &out, &e) < 0) {
		sb_addf(sb, "ERROR %d: %s", e.cls, e.msg);
		if (out.n)
			sb_adds(sb, " (and out not empty)");
	} else {
		for (size_t i = 0; i < out.n; i++)
			sb_addf(sb, "%s%s", i ? " " : "", out.v[i]);
	}
	sl_free(&out);
}

#define RESOLVES(a, name, dom, want) do { \
	resolve((a), (name), (dom), &got); \
	ok(!strcmp(got.s, (want)), "%s -> %s", (name), (want)); \
	if (strcmp(got.s, (want))) \
		printf("#   got: %s\n", got.s); \
} while (0)

/* The error class and the start of the message. */
#define FAILS(a, name, dom, cls, prefix) do { \
	char want_[1200]; \
	snprintf(want_, sizeof want_, "ERROR %d: %s", (int)(cls), (prefix)); \
	resolve((a), (name), (dom), &got); \
	ok(!strncmp(got.s, want_, strlen(want_)), "%s fails: %s", (name), (prefix)); \
	if (strncmp(got.s, want_, strlen(want_))) \
		printf("#   got: %s\n", got.s); \
} while (0)

#define CONTAINS(hay, needle, ...) do { \
	ok(strstr((hay), (needle)) != NULL, __VA_ARGS__); \
	if (!strstr((hay), (needle))) \
		printf("#   \"%s\" not in \"%s\"\n", (needle), (hay)); \
} while (0)

static struct strbuf got = STRBUF_INIT;

static void test_etc_aliases(void)
{
	struct aliases *a = load_text(
		"# /etc/aliases\n"
		"\n"
		"mailer-daemon: postmaster\n"
		"postmaster: root\n"
		"nobody: root\n"
		"hostmaster:\troot\n"
		"webmaster : root\n"
		"root: admin@example.org\n"
		"   # an indented comment\n"
		"\t\n"
		"ops: alice@example.org,bob@example.org , carol@example.org\n"
		"boss: The Boss <boss@example.com>\n"
		"quoted: \"john smith\"@example.com, \"plain\"@example.com\n", NULL);

	ok(a != NULL, "Debian-style aliases load");
	if (!a)
		return;
	RESOLVES(a, "mailer-daemon", NULL, "admin@example.org");
	RESOLVES(a, "MAILER-DAEMON", NULL, "admin@example.org");
	RESOLVES(a, "Root", "", "admin@example.org");
	RESOLVES(a, "hostmaster", NULL, "admin@example.org");
	RESOLVES(a, "webmaster", NULL, "admin@example.org");
	RESOLVES(a, "ops", NULL, "alice@example.org bob@example.org carol@example.org");
	RESOLVES(a, "boss", NULL, "boss@example.com");
	RESOLVES(a, "quoted", NULL, "\"john smith\"@example.com plain@example.com");
	RESOLVES(a, "someone@example.net", NULL, "someone@example.net");
	RESOLVES(a, "root@b\xc3\xbc" "cher.example", NULL, "root@xn--bcher-kva.example");
	aliases_free(a);
}

static void test_continuation(void)
{
	struct aliases *a = load_text(
		"team: a@example.com,\n"
		"  b@example.com,\n"
		"\tc@example.com\n"
		"# a comment between continuation lines\n"
		"   # and an indented one\n"
		"\n"
		"  , d@example.com\n"
		"next: n@example.com\r\n"
		"crlf: x@example.com,\r\n"
		" y@example.com\r\n", NULL);

	ok(a != NULL, "continuation lines load");
	if (!a)
		return;
	RESOLVES(a, "team", NULL, "a@example.com b@example.com c@example.com d@example.com");
	RESOLVES(a, "next", NULL, "n@example.com");
	RESOLVES(a, "crlf", NULL, "x@example.com y@example.com");
	aliases_free(a);
}

static void test_quoted_names(void)
{
	struct aliases *a = load_text(
		"\"john doe\": jd@example.org\n"
		"\"odd\\\"name\" : odd@example.org\n"
		"list: \"john doe\", x@example.org\n", NULL);

	ok(a != NULL, "quoted names load");
	if (!a)
		return;
	RESOLVES(a, "\"john doe\"", NULL, "jd@example.org");
	RESOLVES(a, "john doe", NULL, "jd@example.org");
	RESOLVES(a, "JOHN DOE", NULL, "jd@example.org");
	RESOLVES(a, "\"odd\\\"name\"", NULL, "odd@example.org");
	RESOLVES(a, "list", NULL, "jd@example.org x@example.org");
	aliases_free(a);
}

static void test_default(void)
{
	struct aliases *a = load_text(
		"root: admin@example.org\n"
		"www: webmaster\n"
		"default: catch@example.org\n", NULL);
	struct aliases *b = load_text(
		"default: nobody, copy@example.org\n", NULL);

	ok(a && b, "catch-all files load");
	if (a) {
		RESOLVES(a, "root", NULL, "admin@example.org");
		RESOLVES(a, "daemon", NULL, "catch@example.org");
		RESOLVES(a, "daemon", "example.net", "catch@example.org");
		/* a name an alias leads to is a local name too */
		RESOLVES(a, "www", NULL, "catch@example.org");
		RESOLVES(a, "default", NULL, "catch@example.org");
		RESOLVES(a, "\\daemon", "example.net", "daemon@example.net");
	}
	if (b) {
		/* the catch-all's own unlisted names are not sent back to it */
		RESOLVES(b, "someone", "example.net", "nobody@example.net copy@example.org");
		FAILS(b, "someone", NULL, ERR_RCPT, "local recipient someone resolves to no address "
		      "(no alias, no default domain): nobody");
	}
	aliases_free(a);
	aliases_free(b);
}

static void test_recursion(void)
{
	struct aliases *a = load_text(
		"a: b, x@example.com\n"
		"b: c, B@EXAMPLE.COM\n"
		"c: y@example.com, b@example.com\n"
		"d: a, c\n"
		"root: root, admin@example.org\n"
		"kim: \\kim, kim@other.example\n"
		"l1: l2\n"
		"l2: l3\n"
		"l3: l1\n"
		"me: me\n", NULL);

	ok(a != NULL, "recursive aliases load");
	if (!a)
		return;
	RESOLVES(a, "a", NULL, "y@example.com b@example.com x@example.com");
	/* c is reached twice through d: each address once */
	RESOLVES(a, "d", NULL, "y@example.com b@example.com x@example.com");
	RESOLVES(a, "root", "host.example", "root@host.example admin@example.org");
	FAILS(a, "root", NULL, ERR_RCPT, "local recipient root resolves to no address "
	      "(no alias, no default domain): root, named by alias root");
	RESOLVES(a, "kim", "host.example", "kim@host.example kim@other.example");
	RESOLVES(a, "me", "host.example", "me@host.example");
	FAILS(a, "l1", "host.example", ERR_DATA, "local recipient l1: alias loop l1 -> l2 -> l3 -> l1");
	FAILS(a, "l2", "host.example", ERR_DATA, "local recipient l2: alias loop l2 -> l3 -> l1 -> l2");
	aliases_free(a);
}

static void test_depth(void)
{
	struct strbuf text = STRBUF_INIT;
	struct aliases *a;

	/* d0 -> d1 -> ... -> d10 -> final: d0 is 11 aliases deep. */
	for (int i = 0; i < 10; i++)
		sb_addf(&text, "d%d: d%d\n", i, i + 1);
	sb_adds(&text, "d10: final@example.com\n");
	a = load_text(text.s, NULL);
	ok(a != NULL, "a long chain loads");
	if (a) {
		RESOLVES(a, "d1", NULL, "final@example.com");
		FAILS(a, "d0", NULL, ERR_DATA, "local recipient d0: aliases nested more than 10 deep");
	}
	aliases_free(a);
	sb_free(&text);
}

static void test_undeliverable(void)
{
	char *path;
	struct aliases *a = load_text(
		"fine: ok@example.com\n"
		"cmd: |/usr/bin/procmail -a x\n"
		"qcmd: \"|/usr/bin/filter --opt=a,b\", copy@example.com\n"
		"file: /var/mail/archive\n"
		"inc: :include:/etc/mail/list\n"
		"INC2: :INCLUDE: /etc/mail/list2\n"
		"via: fine, cmd\n"
		"weird: error:nouser No such user\n"
		"badidn: x@-bad-.example\n", &path);
	char want[512];

	ok(a != NULL, "command, file and include targets load");
	if (!a) {
		free(path);
		return;
	}
	RESOLVES(a, "fine", NULL, "ok@example.com");
	FAILS(a, "cmd", NULL, ERR_DATA, "local recipient cmd: alias cmd");
	resolve(a, "cmd", NULL, &got);
	CONTAINS(got.s, "a command (\"|/usr/bin/procmail -a x\")", "the command is named");
	resolve(a, "qcmd", NULL, &got);
	CONTAINS(got.s, "a command (\"|/usr/bin/filter --opt=a,b\")",
		 "a quoted command keeps its comma");
	FAILS(a, "file", NULL, ERR_DATA, "local recipient file: alias file");
	resolve(a, "file", NULL, &got);
	CONTAINS(got.s, "a file", "a file target is named as such");
	FAILS(a, "inc", NULL, ERR_DATA, "local recipient inc: alias inc");
	resolve(a, "inc2", NULL, &got);
	CONTAINS(got.s, "an include file", ":INCLUDE: in capitals");
	FAILS(a, "via", NULL, ERR_DATA, "local recipient via: alias cmd");
	snprintf(want, sizeof want, "%s:8: alias weird: bad target \"error:nouser No such user\"",
		 path);
	FAILS(a, "weird", NULL, ERR_CONFIG, want);
	snprintf(want, sizeof want, "%s:9: alias badidn: bad target", path);
	FAILS(a, "badidn", NULL, ERR_CONFIG, want);
	aliases_free(a);
	free(path);
}

static void test_qualify(void)
{
	struct aliases *a = load_text(
		"ops: alice, bob@example.com\n"
		"intl: j\xc3\xb6rg, u@b\xc3\xbc" "cher.example\n", NULL);

	ok(a != NULL, "qualification file loads");
	if (!a)
		return;
	RESOLVES(a, "ops", "example.net", "alice@example.net bob@example.com");
	RESOLVES(a, "carol", "example.net", "carol@example.net");
	RESOLVES(a, "ops", "b\xc3\xbc" "cher.example", "alice@xn--bcher-kva.example bob@example.com");
	RESOLVES(a, "intl", "example.net", "j\xc3\xb6rg@example.net u@xn--bcher-kva.example");
	RESOLVES(NULL, "root", "example.net", "root@example.net");
	RESOLVES(NULL, "john doe", "example.net", "\"john doe\"@example.net");
	FAILS(NULL, "root", "-bad-", ERR_DATA, "local recipient root: root@-bad-: ");
	aliases_free(a);
}

static void test_unresolvable(void)
{
	struct aliases *a = load_text("ops: alice, bob@example.com\n", NULL);
	struct strlist out = STRLIST_INIT;
	struct err e = { 0 };
	int rc;

	FAILS(NULL, "root", NULL, ERR_RCPT,
	      "local recipient root resolves to no address (no alias, no default domain)");
	FAILS(NULL, "root", "", ERR_RCPT,
	      "local recipient root resolves to no address (no alias, no default domain)");
	if (a) {
		FAILS(a, "nobody", NULL, ERR_RCPT, "local recipient nobody resolves to no address");
		FAILS(a, "ops", NULL, ERR_RCPT, "local recipient ops resolves to no address "
		      "(no alias, no default domain): alice, named by alias ops at ");
		/* out keeps what it held, nothing of the failed call */
		sl_add(&out, "before@example.com");
		rc = aliases_resolve(a, "ops", NULL, &out, &e);
		ok(rc < 0 && e.cls == ERR_RCPT && out.n == 1 && !strcmp(out.v[0], "before@example.com"),
		   "a failed resolve leaves out as it was");
		/* dedupe is within one call: earlier entries are the caller's */
		sl_add(&out, "alice@example.net");
		rc = aliases_resolve(a, "ops", "example.net", &out, &e);
		ok(rc == 0 && out.n == 4, "appends after the caller's entries");
	}
	sl_free(&out);
	aliases_free(a);
}

static void test_load_errors(void)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *msg;
	} bad[] = {
		{ "root: a@example.com\n\nno colon here\n", 3, "expected ':' after alias name \"no\"" },
		{ "  starts: indented\n", 1, "continuation line without an entry" },
		{ "# c\n: a@example.com\n", 2, "missing alias name before ':'" },
		{ "\"open: a@example.com\n", 1, "unterminated quoted alias name" },
		{ "a: b@example.com\nempty:\n", 2, "alias \"empty\" has no target" },
		{ "a: b@example.com\nblank:  ,  ,\n", 2, "alias \"blank\" has no target" },
		{ "a: \"unterminated@example.com\n", 1, "unterminated quoted string" },
		{ "a: x@example.com (open comment\n", 1, "unbalanced '('" },
		{ "a: Name <x@example.com\n", 1, "unbalanced '<'" },
		{ "root: a@example.com\nx: y@example.com\nROOT: b@example.com\n", 3,
		  "alias \"ROOT\" listed again (first at line 1)" },
		{ "a\x01: b@example.com\n", 1, "control character in alias name" },
		{ "ok: a@example.com\nnext: b@example.com,\n  (unclosed\n", 2, "unbalanced '('" },
	};
	struct aliases *a;
	struct err e;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *path = write_file(bad[i].text);
		char want[600];
		int rc;

		a = (struct aliases *)1;
		err_clear(&e);
		snprintf(want, sizeof want, "%s:%u: %s", path, bad[i].line, bad[i].msg);
		rc = aliases_load(path, &a, &e);
		ok(rc < 0 && e.cls == ERR_CONFIG && !strncmp(e.msg, want, strlen(want)) &&
		   a == (struct aliases *)1, "syntax error: %s", bad[i].msg);
		if (rc == 0 || strncmp(e.msg, want, strlen(want)))
			printf("#   rc %d, got \"%s\"\n", rc, e.msg);
		if (rc == 0)
			aliases_free(a);
		free(path);
	}

	err_clear(&e);
	a = NULL;
	{
		char *missing = xasprintf("%s/no-such-file", dir);
		int rc = aliases_load(missing, &a, &e);

		ok(rc < 0 && e.cls == ERR_NOINPUT && a == NULL, "missing file: ERR_NOINPUT");
		CONTAINS(e.msg, missing, "the message names the file");
		free(missing);
	}
	{
		/* a NUL byte cannot come through fputs */
		char *path = xasprintf("%s/nul", dir);
		FILE *f = fopen(path, "w");
		int rc;

		fwrite("a: b@example.com\nc: d\0@example.com\n", 1, 35, f);
		fclose(f);
		err_clear(&e);
		rc = aliases_load(path, &a, &e);
		ok(rc < 0 && e.cls == ERR_CONFIG && strstr(e.msg, ":2: NUL byte"), "NUL byte refused");
		free(path);
	}
}

static void test_empty(void)
{
	struct aliases *a = load_text("# nothing but comments\n\n", NULL);

	ok(a != NULL, "a file with no entry loads");
	RESOLVES(a, "root", "example.net", "root@example.net");
	FAILS(a, "root", NULL, ERR_RCPT, "local recipient root resolves to no address");
	aliases_free(a);
	aliases_free(NULL);
	ok(1, "aliases_free(NULL) is harmless");
}

int main(void)
{
	char *cmd;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_etc_aliases();
	test_continuation();
	test_quoted_names();
	test_default();
	test_recursion();
	test_depth();
	test_undeliverable();
	test_qualify();
	test_unresolvable();
	test_load_errors();
	test_empty();
	sb_free(&got);

	cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(cmd);
	return tap_done();
}

/* aliases.c - the aliases file and the expansion of local names. */
#include "aliases.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

enum tkind {
	T_ADDR,      /* an address with a domain, in envelope form */
	T_NAME,      /* a local name, looked up again */
	T_SELF,      /* a local name that is not looked up ("\name") */
	T_COMMAND,
	T_FILE,
	T_INCLUDE,
	T_BAD,       /* not understood: reported when used */
};

struct target {
	enum tkind kind;
	char *text;          /* as written, for messages */
	char *val;           /* envelope form, local name, what is wrong, or
	                      * the command/file/include without quotes */
};

struct alias {
	char *name;
	unsigned long line;
	struct target *t;
	size_t nt;
};

struct aliases {
	char *path;
	struct alias *v;     /* sorted by name, ignoring case */
	size_t n, cap;
	const struct alias *deflt;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void free_alias(struct alias *al)
{
	for (size_t i = 0; i < al->nt; i++) {
		free(al->t[i].text);
		free(al->t[i].val);
	}
	free(al->t);
	free(al->name);
}

void aliases_free(struct aliases *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free_alias(&a->v[i]);
	free(a->v);
	free(a->path);
	free(a);
}

/* ---- reading the file ---- */

struct loader {
	struct aliases *a;
	unsigned long line;      /* line of the entry being parsed */
	struct err *e;
};

static int syntax(struct loader *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int syntax(struct loader *ld, const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	err_set(ld->e, ERR_CONFIG, 0, "%s:%lu: %s", ld->a->path, ld->line, what);
	return -1;
}

/* The text of e without the parser's generic prefix. */
static const char *bare_msg(const struct err *e)
{
	static const char prefix[] = "bad address: ";

	if (strncmp(e->msg, prefix, sizeof prefix - 1) == 0)
		return e->msg + sizeof prefix - 1;
	return e->msg;
}

static bool has_prefix_ci(const char *s, const char *p)
{
	return ascii_ncasecmp(s, p, strlen(p)) == 0;
}

/* The content of s if s is one quoted string, else NULL. */
static char *unquote_whole(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	if (*s != '"')
		return NULL;
	for (s++; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		sb_addc(&sb, *s);
	}
	if (*s != '"' || s[1] != '\0') {
		sb_free(&sb);
		return NULL;
	}
	if (!sb.s)
		sb_adds(&sb, "");
	return sb.s;
}

static void classify(struct target *t)
{
	char *q = unquote_whole(t->text);
	const char *s = q ? q : t->text;
	struct addr ad = { NULL, NULL, NULL };
	struct err e = { 0 };
	bool self = false;
	bool utf8;

	if (s[0] == '|' || s[0] == '/' || has_prefix_ci(s, ":include:")) {
		t->kind = s[0] == '|' ? T_COMMAND : s[0] == '/' ? T_FILE : T_INCLUDE;
		t->val = q ? q : xstrdup(s);
		return;
	}
	free(q);
	s = t->text;
	if (s[0] == '\\') {
		self = true;
		s++;
	}
	if (addr_parse_one(s, ADDR_ALLOW_LOCAL, &ad, &e) < 0) {
		t->kind = T_BAD;
		t->val = xstrdup(bare_msg(&e));
		return;
	}
	if (!ad.domain) {
		t->kind = self ? T_SELF : T_NAME;
		t->val = ad.local;
		ad.local = NULL;
	} else if (addr_envelope(&ad, &t->val, &utf8, &e) < 0) {
		t->kind = T_BAD;
		t->val = xstrdup(bare_msg(&e));
	} else {
		t->kind = T_ADDR;
	}
	addr_free(&ad);
}

/* Length of the target starting at s: up to a comma outside quotes,
 * comments and angle brackets.  -1 with an error if one is not closed. */
static int target_len(struct loader *ld, const char *s, size_t *len)
{
	size_t i = 0;
	int paren = 0, angle = 0;
	bool quote = false;

	/* A command, a file or an include is not an address: only a comma
	 * ends it (quote it to have a comma in it). */
	if (s[0] == '|' || s[0] == '/' || has_prefix_ci(s, ":include:")) {
		while (s[i] && s[i] != ',')
			i++;
		*len = i;
		return 0;
	}
	for (; s[i]; i++) {
		char c = s[i];

		if ((quote || paren) && c == '\\' && s[i + 1]) {
			i++;
		} else if (quote) {
			quote = c != '"';
		} else if (c == '(') {
			paren++;
		} else if (paren) {
			paren -= c == ')';
		} else if (c == '"') {
			quote = true;
		} else if (c == '<') {
			angle++;
		} else if (c == '>' && angle) {
			angle--;
		} else if (c == ',' && !angle) {
			break;
		}
	}
	if (quote)
		return syntax(ld, "unterminated quoted string in \"%s\"", s);
	if (paren)
		return syntax(ld, "unbalanced '(' in \"%s\"", s);
	if (angle)
		return syntax(ld, "unbalanced '<' in \"%s\"", s);
	*len = i;
	return 0;
}

static void add_target(struct alias *al, const char *s, size_t len)
{
	struct target *t;

	while (len && is_blank(s[len - 1]))
		len--;
	al->t = xrealloc(al->t, (al->nt + 1) * sizeof *al->t);
	t = &al->t[al->nt++];
	t->text = xstrndup(s, len);
	t->val = NULL;
	classify(t);
}

/* Parse one logical line "name: target, ..." into a new alias. */
static int parse_entry(struct loader *ld, const char *s)
{
	struct alias al = { NULL, ld->line, NULL, 0 };
	struct strbuf name = STRBUF_INIT;

	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			sb_addc(&name, *s);
		}
		if (*s != '"') {
			sb_free(&name);
			return syntax(ld, "unterminated quoted alias name");
		}
		s++;
	} else {
		while (*s && *s != ':' && !is_blank(*s))
			sb_addc(&name, *s++);
	}
	while (is_blank(*s))
		s++;
	if (!name.len) {
		sb_free(&name);
		return syntax(ld, "missing alias name before ':'");
	}
	if (*s != ':') {
		int rc = syntax(ld, "expected ':' after alias name \"%s\"", name.s);
		sb_free(&name);
		return rc;
	}
	for (size_t i = 0; i < name.len; i++) {
		if ((unsigned char)name.s[i] < 0x20 || name.s[i] == 0x7f) {
			int rc = syntax(ld, "control character in alias name \"%s\"", name.s);
			sb_free(&name);
			return rc;
		}
	}
	al.name = name.s;
	for (s++;;) {
		size_t len = 0;

		while (is_blank(*s) || *s == ',')
			s++;
		if (!*s)
			break;
		if (target_len(ld, s, &len) < 0) {
			free_alias(&al);
			return -1;
		}
		add_target(&al, s, len);
		s += len;
	}
	if (!al.nt) {
		int rc = syntax(ld, "alias \"%s\" has no target", al.name);
		free_alias(&al);
		return rc;
	}
	if (ld->a->n == ld->a->cap) {
		ld->a->cap = ld->a->cap ? ld->a->cap * 2 : 32;
		ld->a->v = xrealloc(ld->a->v, ld->a->cap * sizeof *ld->a->v);
	}
	ld->a->v[ld->a->n++] = al;
	return 0;
}

static int cmp_alias(const void *x, const void *y)
{
	const struct alias *a = x, *b = y;
	int c = ascii_casecmp(a->name, b->name);

	if (c)
		return c;
	return (a->line > b->line) - (a->line < b->line);
}

static const struct alias *find(const struct aliases *a, const char *name)
{
	size_t lo = 0, hi = a ? a->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ascii_casecmp(name, a->v[mid].name);

		if (c == 0)
			return &a->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int aliases_load(const char *path, struct aliases **out, struct err *e)
{
	struct aliases *a;
	struct loader ld = { NULL, 0, e };
	struct strbuf entry = STRBUF_INIT;
	bool have = false;
	unsigned long lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		err_set(e, ERR_NOINPUT, SEED_FILE, "cannot open aliases file %s: %s", path,
			strerror(errno));
		return -1;
	}
	a = xcalloc(1, sizeof *a);
	a->path = xstrdup(path);
	ld.a = a;
	errno = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n, k = 0;

		lineno++;
		if (memchr(line, '\0', len)) {
			ld.line = lineno;
			rc = syntax(&ld, "NUL byte");
			break;
		}
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		while (is_blank(line[k]))
			k++;
		if (!line[k] || line[k] == '#')
			continue;
		if (k > 0) {
			if (!have) {
				ld.line = lineno;
				rc = syntax(&ld, "continuation line without an entry before it");
				break;
			}
			sb_add(&entry, line, len);
			continue;
		}
		if (have)
			rc = parse_entry(&ld, entry.s);
		sb_reset(&entry);
		sb_add(&entry, line, len);
		ld.line = lineno;
		have = true;
	}
	if (rc == 0 && ferror(f)) {
		err_set(e, ERR_IO, SEED_FILE, "reading aliases file %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && have)
		rc = parse_entry(&ld, entry.s);
	free(line);
	sb_free(&entry);
	fclose(f);

	if (rc == 0 && a->n) {
		qsort(a->v, a->n, sizeof *a->v, cmp_alias);
		for (size_t i = 1; i < a->n && rc == 0; i++) {
			if (ascii_casecmp(a->v[i - 1].name, a->v[i].name) == 0) {
				ld.line = a->v[i].line;
				rc = syntax(&ld, "alias \"%s\" listed again (first at line %lu)",
					    a->v[i].name, a->v[i - 1].line);
			}
		}
	}
	if (rc < 0) {
		aliases_free(a);
		return -1;
	}
	a->deflt = find(a, "default");
	*out = a;
	return 0;
}

/* ---- resolving ---- */

struct rctx {
	const struct aliases *a;
	const char *dom;
	const char *top;         /* the name asked for, for messages */
	struct strlist *out;
	size_t base;
	const struct alias *path[ALIASES_MAX_DEPTH];
	size_t depth;
	struct err *e;
};

static void append(struct rctx *r, char *addr)
{
	for (size_t i = r->base; i < r->out->n; i++) {
		if (ascii_casecmp(r->out->v[i], addr) == 0) {
			free(addr);
			return;
		}
	}
	sl_add_owned(r->out, addr);
}

static void chain(const struct rctx *r, struct strbuf *sb)
{
	for (size_t k = 0; k < r->depth; k++)
		sb_addf(sb, "%s%s", k ? " -> " : "", r->path[k]->name);
}

/* A local name nothing more is known about: qualify it or give up.  via
 * is the alias that named it, NULL for the name asked for. */
static int qualify(struct rctx *r, const char *local, const struct alias *via)
{
	struct addr ad = { NULL, (char *)local, (char *)r->dom };
	char *env;
	bool utf8;

	if (!r->dom || !*r->dom) {
		if (!via)
			err_set(r->e, ERR_RCPT, 0, "local recipient %s resolves to no address "
				"(no alias, no default domain)", r->top);
		else
			err_set(r->e, ERR_RCPT, 0, "local recipient %s resolves to no address "
				"(no alias, no default domain): %s, named by alias %s at %s:%lu",
				r->top, local, via->name, r->a->path, via->line);
		return -1;
	}
	if (addr_envelope(&ad, &env, &utf8, r->e) < 0) {
		char why[sizeof r->e->msg];

		snprintf(why, sizeof why, "%s", bare_msg(r->e));
		err_set(r->e, ERR_DATA, 0, "local recipient %s: %s@%s: %s", r->top, local, r->dom,
			why);
		return -1;
	}
	append(r, env);
	return 0;
}

static int expand_alias(struct rctx *r, const struct alias *al, bool in_default);

static int expand_name(struct rctx *r, const char *local, bool in_default,
		       const struct alias *via)
{
	const struct alias *al = find(r->a, local);

	/* The catch-all takes names that are not listed, but not the ones
	 * its own targets name: those would come straight back to it. */
	if (!al && !in_default && r->a && r->a->deflt) {
		al = r->a->deflt;
		in_default = true;
	}
	if (!al)
		return qualify(r, local, via);
	return expand_alias(r, al, in_default);
}

static int undeliverable(struct rctx *r, const struct alias *al, const struct target *t)
{
	const char *what = t->kind == T_COMMAND ? "a command" :
			   t->kind == T_FILE ? "a file" : "an include file";

	err_set(r->e, ERR_DATA, 0, "local recipient %s: alias %s (%s:%lu) delivers to %s "
		"(\"%s\"), which a submission client cannot do", r->top, al->name, r->a->path,
		al->line, what, t->val);
	return -1;
}

static int expand_alias(struct rctx *r, const struct alias *al, bool in_default)
{
	struct strbuf sb = STRBUF_INIT;
	int rc = 0;

	for (size_t k = 0; k < r->depth; k++) {
		if (r->path[k] == al) {
			chain(r, &sb);
			err_set(r->e, ERR_DATA, 0, "local recipient %s: alias loop %s -> %s (%s:%lu)",
				r->top, sb.s, al->name, r->a->path, al->line);
			sb_free(&sb);
			return -1;
		}
	}
	if (r->depth == ALIASES_MAX_DEPTH) {
		chain(r, &sb);
		err_set(r->e, ERR_DATA, 0, "local recipient %s: aliases nested more than %d deep "
			"(%s -> %s ...)", r->top, ALIASES_MAX_DEPTH, sb.s, al->name);
		sb_free(&sb);
		return -1;
	}
	r->path[r->depth++] = al;
	for (size_t i = 0; i < al->nt && rc == 0; i++) {
		const struct target *t = &al->t[i];

		switch (t->kind) {
		case T_ADDR:
			append(r, xstrdup(t->val));
			break;
		case T_NAME:
			/* "root: root, admin@x" keeps a copy for the local
			 * user root: the usual idiom, not a loop. */
			if (ascii_casecmp(t->val, al->name) == 0)
				rc = qualify(r, t->val, al);
			else
				rc = expand_name(r, t->val, in_default, al);
			break;
		case T_SELF:
			rc = qualify(r, t->val, al);
			break;
		case T_COMMAND:
		case T_FILE:
		case T_INCLUDE:
			rc = undeliverable(r, al, t);
			break;
		case T_BAD:
			err_set(r->e, ERR_CONFIG, 0, "%s:%lu: alias %s: bad target \"%s\": %s",
				r->a->path, al->line, al->name, t->text, t->val);
			rc = -1;
			break;
		}
	}
	r->depth--;
	return rc;
}

int aliases_resolve(const struct aliases *a, const char *name, const char *default_domain,
		    struct strlist *out, struct err *e)
{
	struct rctx r = { a, default_domain, name, out, out->n, { NULL }, 0, e };
	struct addr ad = { NULL, NULL, NULL };
	const char *s = name;
	bool literal = false;
	int rc;

	if (s[0] == '\\') {
		literal = true;
		s++;
	}
	if (addr_parse_one(s, ADDR_ALLOW_LOCAL, &ad, e) < 0) {
		char why[sizeof e->msg];

		/* A name from the command line may be written as it is
		 * in the file ("john doe"), not as an address would be. */
		if (*s && !strchr(s, '@')) {
			ad.local = xstrdup(s);
			err_clear(e);
		} else {
			snprintf(why, sizeof why, "%s", bare_msg(e));
			err_set(e, ERR_DATA, 0, "recipient %s: %s", name, why);
			return -1;
		}
	}
	if (ad.domain) {
		char *env;
		bool utf8;

		rc = addr_envelope(&ad, &env, &utf8, e);
		if (rc == 0)
			append(&r, env);
	} else if (literal) {
		rc = qualify(&r, ad.local, NULL);
	} else {
		rc = expand_name(&r, ad.local, false, NULL);
	}
	addr_free(&ad);
	if (rc < 0) {
		while (out->n > r.base)
			free(out->v[--out->n]);
	}
	return rc;
}

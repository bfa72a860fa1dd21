/* rcfile.c - reading the rc file into sections, choosing an account and
 * replaying its settings in effect order. */
#include "rcfile.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define DEFAULTS_NAME "defaults"
#define DEFAULT_ALIAS "default"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Grow an array that holds n elements so that it can hold n + 1.  The
 * capacity is implicit: always the next power of two at or above n. */
static void *grow_array(void *p, size_t n, size_t elsz)
{
	if (n != 0 && (n & (n - 1)) != 0)
		return p;
	size_t cap = n ? n * 2 : 1;
	if (cap < n || cap > SIZE_MAX / elsz)
		util_die_nomem();
	return xrealloc(p, cap * elsz);
}

static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++) {
		char c = *k;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == ':' || c == ',')
			return false;
	}
	return true;
}

static bool is_secret(const char *key, const char *value)
{
	static const char *const keys[] = {
		"password", "firewallpassword", "proxy_password",
		"tls_key_password", "authorizationidentity", "authorization_identity",
		"tls_cert_password", "sslcertpassword",
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (ascii_casecmp(key, keys[i]) == 0)
			return true;
	if (ascii_casecmp(key, "proxy") == 0) {
		/* scheme://user:pass@host carries a password inline; the
		 * scheme's own colon does not count. */
		const char *p = strstr(value, "://");
		p = p ? p + 3 : value;
		const char *at = strchr(p, '@');
		const char *colon = strchr(p, ':');
		return at && colon && colon < at;
	}
	return false;
}

static ssize_t find_account(const struct rcfile *rc, const char *name, size_t n)
{
	/* acc[0] is the defaults section, never addressable by name. */
	for (size_t i = 1; i < rc->nacc; i++)
		if (strlen(rc->acc[i].name) == n && memcmp(rc->acc[i].name, name, n) == 0)
			return (ssize_t)i;
	return -1;
}

static void free_account(struct rc_account *a)
{
	for (size_t i = 0; i < a->nset; i++) {
		free(a->set[i].key);
		if (a->set[i].value) {
			/* Values may be passwords: do not leave them in freed heap. */
			explicit_bzero(a->set[i].value, strlen(a->set[i].value));
			free(a->set[i].value);
		}
	}
	free(a->set);
	for (size_t i = 0; i < a->nbases; i++)
		free(a->bases[i]);
	free(a->bases);
	free(a->base_idx);
	free(a->name);
}

/* Parse a double-quoted value in place: v starts with '"' and, having been
 * trimmed, must end with the closing quote.  Returns NULL on success or a
 * message. */
static const char *unquote(char *v)
{
	char *out = v;
	const char *p = v + 1;
	for (;;) {
		if (*p == '\0')
			return "missing closing quote";
		if (*p == '"')
			break;
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		*out++ = *p++;
	}
	if (p[1] != '\0')
		return "text after closing quote";
	*out = '\0';
	return NULL;
}

struct parser {
	struct rcfile *rc;
	size_t cur;     /* index of the section being filled */
	int line;
	struct err *e;
};

__attribute__((format(printf, 2, 3)))
static int syntax(struct parser *ps, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	err_set(ps->e, ERR_CONFIG, 0, "%s:%d: %s", ps->rc->path, ps->line, msg);
	return -1;
}

static int add_setting(struct parser *ps, const char *key, const char *value)
{
	struct rc_account *a = &ps->rc->acc[ps->cur];
	a->set = grow_array(a->set, a->nset, sizeof *a->set);
	struct rc_setting *s = &a->set[a->nset++];
	s->key = xstrdup(key);
	s->value = xstrdup(value);
	s->line = ps->line;
	if (is_secret(key, value))
		ps->rc->holds_secret = true;
	return 0;
}

/* "account NAME" or "account NAME : BASE[, BASE...]" */
static int start_account(struct parser *ps, const char *v)
{
	struct rcfile *rc = ps->rc;
	const char *colon = strchr(v, ':');
	size_t n = colon ? (size_t)(colon - v) : strlen(v);
	while (n && is_blank(v[n - 1]))
		n--;
	if (n == 0)
		return syntax(ps, "account needs a name");
	char *name = xstrndup(v, n);
	if (!valid_name(name, n)) {
		syntax(ps, "invalid account name \"%.200s\" (no blanks, ':' or ',')", name);
		free(name);
		return -1;
	}
	if (strcmp(name, DEFAULTS_NAME) == 0) {
		free(name);
		return syntax(ps, "\"%s\" is a reserved section name, not an account",
			      DEFAULTS_NAME);
	}
	ssize_t dup = find_account(rc, name, n);
	if (dup >= 0) {
		syntax(ps, "account \"%.200s\" is defined twice (first on line %d)",
		       name, rc->acc[dup].line);
		free(name);
		return -1;
	}

	struct rc_account a = { .name = name, .line = ps->line };
	if (colon) {
		const char *p = colon + 1;
		for (;;) {
			while (is_blank(*p))
				p++;
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			size_t blen = len;
			while (blen && is_blank(p[blen - 1]))
				blen--;
			if (blen == 0) {
				free_account(&a);
				return syntax(ps, "empty base account name");
			}
			if (!valid_name(p, blen)) {
				char *b = xstrndup(p, blen);
				syntax(ps, "invalid base account name \"%.200s\"", b);
				free(b);
				free_account(&a);
				return -1;
			}
			ssize_t bi = find_account(rc, p, blen);
			if (bi < 0) {
				char *b = xstrndup(p, blen);
				syntax(ps, "unknown base account \"%.200s\""
				       " (bases must be defined earlier)", b);
				free(b);
				free_account(&a);
				return -1;
			}
			a.bases = grow_array(a.bases, a.nbases, sizeof *a.bases);
			a.base_idx = grow_array(a.base_idx, a.nbases, sizeof *a.base_idx);
			a.bases[a.nbases] = xstrndup(p, blen);
			a.base_idx[a.nbases++] = (size_t)bi;
			if (!end)
				break;
			p = end + 1;
		}
	}
	rc->acc = grow_array(rc->acc, rc->nacc, sizeof *rc->acc);
	rc->acc[rc->nacc] = a;
	ps->cur = rc->nacc++;
	return 0;
}

/* One line without its line end, len bytes, NUL-terminated. */
static int parse_line(struct parser *ps, char *s, size_t len)
{
	if (memchr(s, '\0', len))
		return syntax(ps, "NUL byte in line");
	while (is_blank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		/* A CR or other control byte in a value would reach the
		 * protocol or the terminal; a file never needs one. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return syntax(ps, "control character in line");
	}

	char *key = s;
	while (*s && !is_blank(*s))
		s++;
	if (*s)
		*s++ = '\0';
	/* The key may be a mistyped secret: never echo it. */
	if (!valid_key(key))
		return syntax(ps, "invalid key (only letters, digits, '_' and '-' are allowed)");
	while (is_blank(*s))
		s++;
	char *value = s;
	size_t vlen = strlen(value);
	while (vlen && is_blank(value[vlen - 1]))
		value[--vlen] = '\0';

	if (ascii_casecmp(key, "account") == 0)
		return start_account(ps, value);
	if (ascii_casecmp(key, DEFAULTS_NAME) == 0) {
		if (*value)
			return syntax(ps, "\"defaults\" takes no value");
		ps->cur = 0;
		return 0;
	}
	if (value[0] == '"') {
		const char *msg = unquote(value);
		if (msg)
			return syntax(ps, "%s", msg);
	}
	return add_setting(ps, key, value);
}

static int parse_stream(struct parser *ps, FILE *f)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int rv = 0;

	errno = 0;
	while ((n = getline(&buf, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		if (ps->line == INT_MAX) {
			rv = syntax(ps, "too many lines");
			break;
		}
		ps->line++;
		if (len && buf[len - 1] == '\n')
			buf[--len] = '\0';
		if (len && buf[len - 1] == '\r')
			buf[--len] = '\0';
		rv = parse_line(ps, buf, len);
		if (rv)
			break;
		errno = 0;
	}
	if (rv == 0 && ferror(f)) {
		err_set(ps->e, ERR_IO, SEED_FILE, "%s: read error: %s", ps->rc->path,
			strerror(errno ? errno : EIO));
		rv = -1;
	}
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	return rv;
}

static int check_secret_perms(const struct rcfile *rc, const struct stat *st, struct err *e)
{
	/* Root owning the file is fine: a system rc is root's by design. */
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		err_set(e, ERR_CONFIG, 0,
			"%s: holds a password but is owned by uid %lu, not by you",
			rc->path, (unsigned long)st->st_uid);
		return -1;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		struct strbuf q = STRBUF_INIT;
		sb_add_shell_word(&q, rc->path);
		err_set(e, ERR_CONFIG, 0,
			"%s: holds a password but is %s by others; run: chmod 600 %s",
			rc->path, (st->st_mode & (S_IRGRP | S_IROTH)) ? "readable" : "writable",
			q.s);
		sb_free(&q);
		return -1;
	}
	return 0;
}

int rcfile_load(const char *path, struct rcfile *rc, struct err *e)
{
	memset(rc, 0, sizeof *rc);
	rc->path = xstrdup(path);
	rc->acc = grow_array(NULL, 0, sizeof *rc->acc);
	memset(&rc->acc[0], 0, sizeof rc->acc[0]);
	rc->acc[0].name = xstrdup(DEFAULTS_NAME);
	rc->nacc = 1;

	/* O_NONBLOCK so that a FIFO cannot hang us before the type check; it
	 * has no effect on reading a regular file. */
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* Only a file that is not there may be skipped by the caller; one
		 * that is there but unreadable is a configuration error. */
		err_set(e, errno == ENOENT ? ERR_NOINPUT : ERR_CONFIG, SEED_FILE, "%s: %s", path,
			strerror(errno));
		rcfile_free(rc);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err_set(e, ERR_IO, SEED_FILE, "%s: %s", path, strerror(errno));
		close(fd);
		rcfile_free(rc);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, ERR_CONFIG, 0, "%s: not a regular file (%s)", path,
			S_ISDIR(st.st_mode) ? "a directory" :
			S_ISFIFO(st.st_mode) ? "a FIFO" :
			S_ISSOCK(st.st_mode) ? "a socket" : "a device");
		close(fd);
		rcfile_free(rc);
		return -1;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		err_set(e, ERR_OS, 0, "%s: %s", path, strerror(errno));
		close(fd);
		rcfile_free(rc);
		return -1;
	}
	struct parser ps = { .rc = rc, .cur = 0, .line = 0, .e = e };
	int rv = parse_stream(&ps, f);
	fclose(f);
	if (rv == 0 && rc->holds_secret)
		rv = check_secret_perms(rc, &st, e);
	if (rv)
		rcfile_free(rc);
	return rv;
}

void rcfile_free(struct rcfile *rc)
{
	for (size_t i = 0; i < rc->nacc; i++)
		free_account(&rc->acc[i]);
	free(rc->acc);
	free(rc->path);
	memset(rc, 0, sizeof *rc);
}

const struct rc_account *rcfile_find(const struct rcfile *rc, const char *name)
{
	ssize_t i = find_account(rc, name, strlen(name));
	return i < 0 ? NULL : &rc->acc[i];
}

struct last_from {
	const char *value;
};

static int record_from(void *ctx, const char *key, const char *value,
		       const char *path, int line, struct err *e)
{
	(void)path;
	(void)line;
	(void)e;
	if (ascii_casecmp(key, "from") == 0)
		((struct last_from *)ctx)->value = value;
	return 0;
}

int rcfile_choose(const struct rcfile *rc, const char *name, const char *envelope_from,
		  const struct rc_account **out, struct err *e)
{
	if (name) {
		const struct rc_account *a = rcfile_find(rc, name);
		if (!a) {
			err_set(e, ERR_CONFIG, 0, "%s: no account \"%s\"", rc->path, name);
			return -1;
		}
		*out = a;
		return 0;
	}
	if (envelope_from) {
		for (size_t i = 1; i < rc->nacc; i++) {
			/* The effective value, so an inherited "from" counts
			 * exactly as it would when the account is applied. */
			struct last_from lf = { NULL };
			if (rcfile_apply(rc, &rc->acc[i], record_from, &lf, e))
				return -1;
			if (lf.value && fnmatch(lf.value, envelope_from, FNM_CASEFOLD) == 0) {
				*out = &rc->acc[i];
				return 0;
			}
		}
	}
	const struct rc_account *def = rcfile_find(rc, DEFAULT_ALIAS);
	*out = def ? def : &rc->acc[0];
	return 0;
}

static int apply_own(const struct rcfile *rc, const struct rc_account *a,
		     rc_apply_fn fn, void *ctx, struct err *e)
{
	for (size_t i = 0; i < a->nset; i++)
		if (fn(ctx, a->set[i].key, a->set[i].value, rc->path, a->set[i].line, e))
			return -1;
	return 0;
}

/* The names are the truth; the index saved at load time saves a search
 * per base, which matters when choose applies every account in turn. */
static ssize_t base_index(const struct rcfile *rc, const struct rc_account *a, size_t i)
{
	const char *name = a->bases[i];
	if (a->base_idx && a->base_idx[i] > 0 && a->base_idx[i] < rc->nacc &&
	    strcmp(rc->acc[a->base_idx[i]].name, name) == 0)
		return (ssize_t)a->base_idx[i];
	return find_account(rc, name, strlen(name));
}

enum visit { UNSEEN, ACTIVE, DONE };

int rcfile_apply(const struct rcfile *rc, const struct rc_account *acc,
		 rc_apply_fn fn, void *ctx, struct err *e)
{
	if (rc->nacc == 0 || acc < rc->acc || acc >= rc->acc + rc->nacc) {
		err_set(e, ERR_INTERNAL, 0, "rcfile_apply: account not from this file");
		return -1;
	}
	if (apply_own(rc, &rc->acc[0], fn, ctx, e))
		return -1;
	size_t start = (size_t)(acc - rc->acc);
	if (start == 0)
		return 0;

	/* Depth-first over the bases with an explicit stack: a long chain of
	 * accounts in a hostile file must not exhaust the C stack.  Each
	 * account is applied at most once, so a diamond stays bounded. */
	unsigned char *state = xcalloc(rc->nacc, 1);
	struct frame { size_t acc, next; } *stack = xmalloc(rc->nacc * sizeof *stack);
	size_t depth = 0;
	int rv = 0;

	stack[depth++] = (struct frame){ start, 0 };
	state[start] = ACTIVE;
	while (depth) {
		struct frame *fr = &stack[depth - 1];
		const struct rc_account *a = &rc->acc[fr->acc];
		if (fr->next < a->nbases) {
			size_t i = fr->next++;
			ssize_t b = base_index(rc, a, i);
			const char *bname = a->bases[i];
			if (b < 0) {
				err_set(e, ERR_CONFIG, 0, "%s:%d: unknown base account \"%s\"",
					rc->path, a->line, bname);
				rv = -1;
				break;
			}
			if (state[b] == ACTIVE) {
				err_set(e, ERR_CONFIG, 0,
					"%s:%d: account \"%s\" inherits from itself",
					rc->path, a->line, bname);
				rv = -1;
				break;
			}
			if (state[b] == DONE)
				continue;
			/* ACTIVE entries are on the stack, so depth < nacc here. */
			state[b] = ACTIVE;
			stack[depth++] = (struct frame){ (size_t)b, 0 };
			continue;
		}
		if (apply_own(rc, a, fn, ctx, e)) {
			rv = -1;
			break;
		}
		state[fr->acc] = DONE;
		depth--;
	}
	free(stack);
	free(state);
	return rv;
}

/* XDG_CONFIG_HOME counts only when absolute, as the XDG spec demands. */
static char *xdg_path(const char *home)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/smtpsend/config", xdg);
	if (home)
		return xasprintf("%s/.config/smtpsend/config", home);
	return NULL;
}

char *rcfile_user_path(void)
{
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = (pw && pw->pw_dir && *pw->pw_dir) ? pw->pw_dir : NULL;
	}
	char *xdg = xdg_path(home);
	struct stat st;
	if (xdg && stat(xdg, &st) == 0)
		return xdg;
	free(xdg);
	return home ? xasprintf("%s/.smtpsendrc", home) : NULL;
}

const char *rcfile_system_path(void)
{
	return SYSCONFDIR "/smtpsendrc";
}

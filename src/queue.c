/* queue.c - the on-disk queue: atomic writes, claims under flock, retries.
 *
 * Every file operation goes through a descriptor of the checked queue
 * directory (the *at() calls), so the directory cannot be swapped for a
 * symlink between the check and the use. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "smtpsend-queue 1"
#define MAGIC_ANY "smtpsend-queue "
#define TMP_PREFIX ".tmp-"
#define ID_MAX 128
#define MAX_ATTEMPTS 1000000u
#define MAX_TIME 253402300799LL        /* 9999-12-31T23:59:59Z */
#define STALE_TMP_AGE 3600
#define COPY_BLOCK (64 * 1024)
#define REASON_MAX 1000

static const char *const state_names[] = {
	[QSTATE_QUEUED] = "queued",
	[QSTATE_SENDING] = "sending",
	[QSTATE_SENT] = "sent",
	[QSTATE_FAILED] = "failed",
	[QSTATE_CORRUPT] = "corrupt",
};
#define NSTATES (sizeof state_names / sizeof state_names[0])

const char *queue_state_name(enum queue_state st)
{
	return (size_t)st < NSTATES ? state_names[st] : "?";
}

void queue_meta_free(struct queue_entry_meta *meta)
{
	free(meta->id);
	free(meta->last_error);
	free(meta->account);
	free(meta->from);
	sl_free(&meta->settings);
	sl_free(&meta->rcpts);
	memset(meta, 0, sizeof *meta);
}

/* ---- names ---- */

static bool is_alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool valid_id(const char *s, size_t n)
{
	if (n == 0 || n > ID_MAX || !is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (!is_alnum(c) && c != '.' && c != '-' && c != '_')
			return false;
	}
	return true;
}

/* Split "ID.state"; false for any other name. */
static bool parse_name(const char *name, char **id, enum queue_state *st)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return false;
	for (size_t i = 0; i < NSTATES; i++) {
		if (strcmp(dot + 1, state_names[i]) == 0 && valid_id(name, (size_t)(dot - name))) {
			*id = xstrndup(name, (size_t)(dot - name));
			*st = (enum queue_state)i;
			return true;
		}
	}
	return false;
}

static char *name_for(const char *id, enum queue_state st)
{
	return xasprintf("%s.%s", id, state_names[st]);
}

static char *new_id(void)
{
	static unsigned counter;
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	uint32_t r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
	/* Without the entropy pool, time, pid and a counter are still
	 * unique; the random part only guards against clock steps. */
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)ts.tv_nsec * 2654435761u + ++counter;
	return xasprintf("%s.%06ld-%ld-%08" PRIx32, stamp, ts.tv_nsec / 1000, (long)getpid(), r);
}

/* ---- header values ---- */

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool valid_rcpt(const char *s)
{
	const char *a;
	if (strncmp(s, "to:", 3) == 0 || strncmp(s, "cc:", 3) == 0)
		a = s + 3;
	else if (strncmp(s, "bcc:", 4) == 0)
		a = s + 4;
	else
		return false;
	return *a && !has_ctl(a);
}

static bool valid_setting(const char *s)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return false;
	for (const char *p = s; p < eq; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* What is wrong with meta as a queue entry, or NULL.  The writer and the
 * reader apply the same rules, so what is written can be read back. */
static const char *meta_problem(const struct queue_entry_meta *m)
{
	if (!m->id || !valid_id(m->id, strlen(m->id)))
		return "bad id";
	if (m->created < 0 || m->created > MAX_TIME || m->next_try < 0 || m->next_try > MAX_TIME)
		return "time out of range";
	if (m->attempts > MAX_ATTEMPTS)
		return "attempts out of range";
	if (has_ctl(str_or_empty(m->last_error)))
		return "control character in the last error";
	if (has_ctl(str_or_empty(m->account)))
		return "control character in the account name";
	if (has_ctl(str_or_empty(m->from)))
		return "control character in the sender";
	for (size_t i = 0; i < m->settings.n; i++)
		if (!valid_setting(m->settings.v[i]))
			return "setting not of the form Name=Value";
	if (m->rcpts.n == 0)
		return "no recipient";
	for (size_t i = 0; i < m->rcpts.n; i++)
		if (!valid_rcpt(m->rcpts.v[i]))
			return "recipient not of the form to:|cc:|bcc:address";
	return NULL;
}

static void put_value(struct strbuf *sb, const char *key, const char *v)
{
	sb_adds(sb, key);
	sb_addc(sb, ' ');
	for (const unsigned char *p = (const unsigned char *)str_or_empty(v); *p; p++) {
		if (*p == '\\')
			sb_adds(sb, "\\\\");
		else if (*p < 0x20 || *p == 0x7f)
			sb_addf(sb, "\\x%02x", *p);
		else
			sb_addc(sb, (char)*p);
	}
	sb_addc(sb, '\n');
}

/* The header of meta for size message bytes; NULL when a line or the
 * whole would be too long for the reader. */
static const char *build_header(struct strbuf *sb, const struct queue_entry_meta *m, off_t size)
{
	size_t line_start = 0;

	sb_adds(sb, MAGIC "\n");
	put_value(sb, "id", m->id);
	sb_addf(sb, "created %jd\n", (intmax_t)m->created);
	sb_addf(sb, "next-try %jd\n", (intmax_t)m->next_try);
	sb_addf(sb, "attempts %u\n", m->attempts);
	put_value(sb, "last-error", m->last_error);
	put_value(sb, "account", m->account);
	for (size_t i = 0; i < m->settings.n; i++)
		put_value(sb, "setting", m->settings.v[i]);
	put_value(sb, "from", m->from);
	for (size_t i = 0; i < m->rcpts.n; i++)
		put_value(sb, "rcpt", m->rcpts.v[i]);
	sb_addf(sb, "size %jd\nend\n", (intmax_t)size);

	if (sb->len > QUEUE_MAX_HEADER)
		return "envelope too large for a queue file";
	for (size_t i = 0; i < sb->len; i++) {
		if (sb->s[i] != '\n')
			continue;
		if (i - line_start > QUEUE_MAX_LINE)
			return "envelope line too long for a queue file";
		line_start = i + 1;
	}
	return NULL;
}

/* Undo put_value(); NULL with *why set on a bad value. */
static char *unescape(const char *s, size_t n, const char **why)
{
	struct strbuf out = STRBUF_INIT;

	sb_add(&out, "", 0);   /* an empty value is still a string */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "raw control character";
			goto bad;
		}
		if (c != '\\') {
			sb_addc(&out, (char)c);
			continue;
		}
		if (i + 1 < n && s[i + 1] == '\\') {
			sb_addc(&out, '\\');
			i++;
			continue;
		}
		if (i + 3 < n && s[i + 1] == 'x' && hex_digit(s[i + 2]) >= 0 && hex_digit(s[i + 3]) >= 0) {
			int v = hex_digit(s[i + 2]) * 16 + hex_digit(s[i + 3]);
			if (v == 0) {
				*why = "escaped NUL";
				goto bad;
			}
			sb_addc(&out, (char)v);
			i += 3;
			continue;
		}
		*why = "bad escape";
		goto bad;
	}
	return out.s;
bad:
	sb_free(&out);
	return NULL;
}

/* A decimal number of at most 19 digits in [0, max]; nothing else. */
static bool parse_num(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* ---- reading a header ---- */

struct hreader {
	int fd;
	off_t pos;             /* file offset of buf[0] */
	size_t len, off;       /* bytes in buf, bytes consumed */
	char buf[COPY_BLOCK];
};

/* The next line, without its LF, into line.  Returns 1, 0 at the end of
 * the file before an LF, -1 with *why set. */
static int next_line(struct hreader *r, struct strbuf *line, const char **why)
{
	sb_reset(line);
	for (;;) {
		if (r->off == r->len) {
			r->pos += (off_t)r->len;
			r->off = r->len = 0;
			ssize_t n = pread(r->fd, r->buf, sizeof r->buf, r->pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				*why = strerror(errno);
				return -1;
			}
			if (n == 0)
				return 0;
			r->len = (size_t)n;
		}
		const char *p = r->buf + r->off;
		size_t avail = r->len - r->off;
		const char *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) : avail;
		if (line->len + take > QUEUE_MAX_LINE) {
			*why = "line too long";
			return -1;
		}
		sb_add(line, p, take);
		r->off += take + (nl ? 1 : 0);
		if (nl)
			return 1;
	}
}

enum hkey { K_ID, K_CREATED, K_NEXT_TRY, K_ATTEMPTS, K_LAST_ERROR, K_ACCOUNT, K_FROM, K_SIZE,
	    K_SETTING, K_RCPT, NKEYS };
#define NSINGLE K_SETTING      /* keys before this one appear exactly once */

static const char *const key_names[NKEYS] = {
	"id", "created", "next-try", "attempts", "last-error", "account", "from", "size",
	"setting", "rcpt",
};

static char *bad_line(unsigned lineno, const char *what, const char *key)
{
	char k[64] = "";
	if (key)
		sanitize(k, sizeof k, key, strnlen(key, 40));
	return xasprintf("header line %u: %s%s%s", lineno, what, key ? ": " : "", k);
}

/* Store value v (unescaped, owned) of key k into m.  Returns NULL or what
 * is wrong with it. */
static const char *store_value(struct queue_entry_meta *m, enum hkey k, char *v, off_t *size)
{
	uint64_t n;

	switch (k) {
	case K_ID:
		m->id = v;
		return valid_id(v, strlen(v)) ? NULL : "bad id";
	case K_LAST_ERROR:
		m->last_error = v;
		return has_ctl(v) ? "control character" : NULL;
	case K_ACCOUNT:
		m->account = v;
		return has_ctl(v) ? "control character" : NULL;
	case K_FROM:
		m->from = v;
		return has_ctl(v) ? "control character" : NULL;
	case K_SETTING:
		sl_add_owned(&m->settings, v);
		return valid_setting(v) ? NULL : "not Name=Value";
	case K_RCPT:
		sl_add_owned(&m->rcpts, v);
		return valid_rcpt(v) ? NULL : "not to:|cc:|bcc:address";
	default:
		break;
	}
	bool good = false;
	switch (k) {
	case K_CREATED:
		if ((good = parse_num(v, MAX_TIME, &n)))
			m->created = (time_t)n;
		break;
	case K_NEXT_TRY:
		if ((good = parse_num(v, MAX_TIME, &n)))
			m->next_try = (time_t)n;
		break;
	case K_ATTEMPTS:
		if ((good = parse_num(v, MAX_ATTEMPTS, &n)))
			m->attempts = (unsigned)n;
		break;
	case K_SIZE:
		if ((good = parse_num(v, INT64_MAX, &n)))
			*size = (off_t)n;
		break;
	default:
		break;
	}
	free(v);
	return good ? NULL : "bad number";
}

/* Parse the header of the entry open on fd (fsize bytes long) into m,
 * checking it against the file: its id must be want_id and the message
 * must fill the rest of the file.  Returns NULL, or why the entry is
 * corrupt (allocated, sanitised) with m left empty. */
static char *parse_header(int fd, off_t fsize, const char *want_id, struct queue_entry_meta *m)
{
	/* not calloc: the buffer is large and never read before it is filled */
	struct hreader *r = xmalloc(sizeof *r);
	r->pos = 0;
	r->len = r->off = 0;
	struct strbuf line = STRBUF_INIT;
	bool seen[NSINGLE] = { false };
	unsigned lineno = 0;
	off_t size = -1;
	char *why = NULL;

	memset(m, 0, sizeof *m);
	r->fd = fd;
	if (fsize == 0) {
		why = xstrdup("empty file");
		goto out;
	}
	for (;;) {
		const char *rw = NULL;
		int rc = next_line(r, &line, &rw);
		lineno++;
		if (rc < 0) {
			why = bad_line(lineno, rw, NULL);
			goto out;
		}
		if (rc == 0) {
			why = xasprintf("truncated: the header has no end line (%u lines)", lineno - 1);
			goto out;
		}
		if (r->pos + (off_t)r->off > QUEUE_MAX_HEADER) {
			why = xstrdup("header too long");
			goto out;
		}
		if (memchr(line.s, '\0', line.len)) {
			why = bad_line(lineno, "NUL byte", NULL);
			goto out;
		}
		if (lineno == 1) {
			if (strcmp(line.s, MAGIC) == 0)
				continue;
			if (strncmp(line.s, MAGIC_ANY, strlen(MAGIC_ANY)) == 0)
				why = bad_line(1, "unsupported format version", line.s + strlen(MAGIC_ANY));
			else
				why = xstrdup("not a queue file (bad first line)");
			goto out;
		}
		if (strcmp(line.s, "end") == 0)
			break;

		char *sp = strchr(line.s, ' ');
		if (!sp) {
			why = bad_line(lineno, "no value", line.s);
			goto out;
		}
		*sp = '\0';
		size_t k = 0;
		while (k < NKEYS && strcmp(line.s, key_names[k]) != 0)
			k++;
		if (k == NKEYS) {
			why = bad_line(lineno, "unknown key", line.s);
			goto out;
		}
		if (k < NSINGLE) {
			if (seen[k]) {
				why = bad_line(lineno, "repeated key", line.s);
				goto out;
			}
			seen[k] = true;
		}
		const char *vwhy = NULL;
		char *v = unescape(sp + 1, line.len - (size_t)(sp + 1 - line.s), &vwhy);
		if (!v || (vwhy = store_value(m, (enum hkey)k, v, &size)) != NULL) {
			why = bad_line(lineno, vwhy, line.s);
			goto out;
		}
	}
	for (size_t k = 0; k < NSINGLE; k++) {
		if (!seen[k]) {
			why = xasprintf("header: missing key %s", key_names[k]);
			goto out;
		}
	}
	m->msg_offset = r->pos + (off_t)r->off;
	m->msg_size = size;
	if (fsize - m->msg_offset < size) {
		why = xasprintf("truncated: %jd message bytes, the header says %jd",
				(intmax_t)(fsize - m->msg_offset), (intmax_t)size);
		goto out;
	}
	if (fsize - m->msg_offset > size) {
		why = xasprintf("%jd bytes after the message (the header says %jd)",
				(intmax_t)(fsize - m->msg_offset - size), (intmax_t)size);
		goto out;
	}
	if (want_id && strcmp(m->id, want_id) != 0) {
		why = xstrdup("the id in the header differs from the file name");
		goto out;
	}
	const char *p = meta_problem(m);
	if (p)
		why = xasprintf("header: %s", p);
out:
	if (why)
		queue_meta_free(m);
	sb_free(&line);
	free(r);
	return why;
}

/* ---- directory ---- */

static char *strip_slashes(const char *dir)
{
	size_t n = strlen(dir);
	/* "queue/" would follow a symlink named queue */
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return xstrndup(dir, n);
}

static int make_dirs(const char *dir, struct err *e)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) == 0) {
			/* umask may have taken bits we rely on */
			if (chmod(p, 0700) < 0) {
				err_set(e, ERR_CANTCREAT, 0, "cannot set the mode of %s: %s", p, strerror(errno));
				rc = -1;
				break;
			}
		} else if (errno != EEXIST) {
			err_set(e, ERR_CANTCREAT, 0, "cannot create queue directory %s: %s", p,
				strerror(errno));
			rc = -1;
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

/* Open and check the queue directory.  Returns its descriptor, -2 when
 * it is missing and create is false, -1 with e set. */
static int open_dir(const char *path, bool create, struct err *e)
{
	struct stat st;
	char *dir;
	int fd = -1;
	uid_t me = geteuid();

	if (!path || !*path) {
		err_set(e, ERR_CONFIG, 0, "no queue directory");
		return -1;
	}
	dir = strip_slashes(path);
	if (lstat(dir, &st) < 0) {
		if (errno != ENOENT) {
			err_set(e, ERR_CONFIG, 0, "cannot access queue directory %s: %s", dir,
				strerror(errno));
			goto out;
		}
		if (!create) {
			fd = -2;
			goto out;
		}
		if (make_dirs(dir, e) < 0)
			goto out;
	} else if (S_ISLNK(st.st_mode)) {
		err_set(e, ERR_CONFIG, 0, "queue directory %s is a symbolic link: refused, "
			"name the real directory instead", dir);
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			err_set(e, ERR_CONFIG, 0, "queue directory %s is a symbolic link: refused, "
				"name the real directory instead", dir);
		else if (errno == ENOTDIR)
			err_set(e, ERR_CONFIG, 0, "queue directory %s is not a directory", dir);
		else
			err_set(e, create ? ERR_CANTCREAT : ERR_CONFIG, 0,
				"cannot open queue directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		err_set(e, ERR_CONFIG, 0, "cannot stat queue directory %s: %s", dir, strerror(errno));
	} else if (st.st_uid != me) {
		err_set(e, ERR_CONFIG, 0, "queue directory %s is owned by uid %ju, not by uid %ju: "
			"run \"chown %ju %s\" as root, or remove it", dir, (uintmax_t)st.st_uid,
			(uintmax_t)me, (uintmax_t)me, dir);
	} else if (st.st_mode & 022) {
		err_set(e, ERR_CONFIG, 0, "queue directory %s is writable by group or others "
			"(mode %03o): run \"chmod 700 %s\"", dir, (unsigned)(st.st_mode & 07777), dir);
	} else if ((st.st_mode & 0700) != 0700) {
		err_set(e, ERR_CONFIG, 0, "queue directory %s is not accessible to its owner "
			"(mode %03o): run \"chmod 700 %s\"", dir, (unsigned)(st.st_mode & 07777), dir);
	} else {
		goto out;
	}
	close(fd);
	fd = -1;
out:
	free(dir);
	return fd;
}

int queue_open_dir(const char *dir, bool create, struct err *e)
{
	int fd = open_dir(dir, create, e);
	if (fd == -2)
		return 0;
	if (fd < 0)
		return -1;
	close(fd);
	return 1;
}

char *queue_default_dir(void)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");

	if (geteuid() == 0)
		return xstrdup("/var/spool/smtpsend");
	/* the XDG spec says to ignore a relative path */
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/smtpsend/queue", xdg);
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());
		home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
	}
	return home ? xasprintf("%s/.local/share/smtpsend/queue", home) : NULL;
}

struct dirent_ent {
	char *name;
	char *id;
	enum queue_state st;
};

static void ents_free(struct dirent_ent *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].id);
	}
	free(v);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct dirent_ent *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (int)x->st - (int)y->st;
}

/* The entries of the directory, sorted; temporary names into tmps when
 * not NULL. */
static int scan_dir(int dirfd, const char *dir, struct dirent_ent **out, size_t *nout,
		    struct strlist *tmps, struct err *e)
{
	struct dirent_ent *v = NULL;
	size_t n = 0, cap = 0;
	int fd = dup(dirfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (!d) {
		err_set(e, ERR_IO, 0, "cannot read queue directory %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				err_set(e, ERR_IO, 0, "cannot read queue directory %s: %s", dir,
					strerror(errno));
				closedir(d);
				ents_free(v, n);
				return -1;
			}
			break;
		}
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			if (tmps)
				sl_add(tmps, de->d_name);
			continue;
		}
		struct dirent_ent ent;
		if (!parse_name(de->d_name, &ent.id, &ent.st))
			continue;
		ent.name = xstrdup(de->d_name);
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof *v);
		}
		v[n++] = ent;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, ent_cmp);
	*out = v;
	*nout = n;
	return 0;
}

/* ---- opening entries ---- */

enum open_res { OPEN_OK, OPEN_GONE, OPEN_BAD, OPEN_FAIL };

static char *stat_problem(const struct stat *st)
{
	uid_t me = geteuid();
	if (S_ISLNK(st->st_mode))
		return xstrdup("a symbolic link (not followed)");
	if (!S_ISREG(st->st_mode))
		return xstrdup("not a regular file");
	if (st->st_uid != me)
		return xasprintf("foreign: owned by uid %ju, not %ju", (uintmax_t)st->st_uid,
				 (uintmax_t)me);
	if (st->st_nlink != 1)
		return xasprintf("has %ju hard links", (uintmax_t)st->st_nlink);
	return NULL;
}

/* Open an entry for reading after checking what it is, without following
 * a symlink or blocking on a FIFO.  OPEN_BAD: it can never be a queue
 * entry; OPEN_FAIL: it could not be opened (*why says why); OPEN_GONE:
 * it vanished or was replaced meanwhile.  st gets what was found even
 * when it is refused. */
static enum open_res open_entry(int dirfd, const char *name, int *fdp, struct stat *st, char **why)
{
	struct stat now;
	int fd;

	*fdp = -1;
	*why = NULL;
	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return OPEN_GONE;
		*why = xasprintf("cannot stat: %s", strerror(errno));
		return OPEN_FAIL;
	}
	/* no link left: caught while a rename replaced it */
	if (st->st_nlink == 0)
		return OPEN_GONE;
	if ((*why = stat_problem(st)) != NULL)
		return OPEN_BAD;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return OPEN_GONE;
		if (errno == ELOOP) {
			*why = xstrdup("a symbolic link (not followed)");
			return OPEN_BAD;
		}
		*why = xasprintf("cannot open: %s", strerror(errno));
		return OPEN_FAIL;
	}
	if (fstat(fd, &now) < 0) {
		*why = xasprintf("cannot stat: %s", strerror(errno));
		close(fd);
		return OPEN_FAIL;
	}
	/* A flusher renamed or removed it meanwhile (what was opened is
	 * then an old file, maybe without a name): not ours to judge. */
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino || now.st_nlink == 0) {
		close(fd);
		return OPEN_GONE;
	}
	*st = now;
	*fdp = fd;
	return OPEN_OK;
}

/* The name still refers to the file st describes. */
static bool same_file(int dirfd, const char *name, const struct stat *st)
{
	struct stat now;
	return fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st->st_dev &&
	       now.st_ino == st->st_ino;
}

/* rename without replacing: two names for one id must never collapse. */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
	if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (faccessat(dirfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(dirfd, from, dirfd, to);
}

/* ---- writing entries ---- */

/* Where the message bytes of a new file come from: a message, or a range
 * of an open file (a rewrite). */
struct body_src {
	const struct message *m;
	int fd;
	off_t off, size;
};

/* Bytes message_stream() yields for m (it merges the skip ranges the
 * same way). */
static off_t stored_size(const struct message *m)
{
	off_t n = (off_t)m->prefix.len, pos = 0;
	for (size_t i = 0; i < m->nskip; i++) {
		if (m->skip_start[i] > pos)
			n += m->skip_start[i] - pos;
		if (m->skip_end[i] > pos)
			pos = m->skip_end[i];
	}
	if (m->sp.size > pos)
		n += m->sp.size - pos;
	return n;
}

struct fd_sink {
	int fd;
	off_t n;
};

static int sink_fd(void *ctx, const char *buf, size_t len, struct err *e)
{
	struct fd_sink *s = ctx;
	if (write_all(s->fd, buf, len) < 0) {
		err_set(e, ERR_IO, 0, "writing: %s", strerror(errno));
		return -1;
	}
	s->n += (off_t)len;
	return 0;
}

static int copy_range(const struct body_src *src, struct fd_sink *s, struct err *e)
{
	char *buf = xmalloc(COPY_BLOCK);
	off_t pos = src->off, end = src->off + src->size;
	int rc = 0;

	while (pos < end && rc == 0) {
		size_t want = end - pos < COPY_BLOCK ? (size_t)(end - pos) : COPY_BLOCK;
		ssize_t n = pread(src->fd, buf, want, pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(e, ERR_IO, 0, "reading the queued message: %s",
				n < 0 ? strerror(errno) : "unexpected end of file");
			rc = -1;
			break;
		}
		rc = sink_fd(s, buf, (size_t)n, e);
		pos += n;
	}
	free(buf);
	return rc;
}

/* Write the whole entry (header and message) to fd.  Errors: ERR_DATA
 * (meta), ERR_IO (reading or writing). */
static int write_entry(int fd, const struct queue_entry_meta *meta, const struct body_src *src,
		       struct err *e)
{
	struct strbuf hdr = STRBUF_INIT;
	struct fd_sink s = { .fd = fd };
	const char *why = meta_problem(meta);
	int rc;

	if (!why)
		why = build_header(&hdr, meta, src->size);
	if (why) {
		err_set(e, ERR_DATA, 0, "%s", why);
		sb_free(&hdr);
		return -1;
	}
	rc = sink_fd(&s, hdr.s, hdr.len, e);
	sb_free(&hdr);
	if (rc < 0)
		return -1;
	s.n = 0;
	rc = src->m ? message_stream(src->m, sink_fd, &s, e) : copy_range(src, &s, e);
	if (rc < 0)
		return -1;
	if (s.n != src->size) {
		err_set(e, ERR_IO, 0, "the message changed size while being queued");
		return -1;
	}
	return 0;
}

/* Create the temporary file for id, locked.  A rewrite holds the lock on
 * the entry, so a file already there is a leftover of a crashed rewrite. */
static int create_temp(int dirfd, const char *id, bool rewrite, char **tmpname)
{
	char *name = xasprintf(TMP_PREFIX "%s", id);
	int fd;

	for (int tries = 0;; tries++) {
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST || !rewrite || tries > 0)
			break;
		unlinkat(dirfd, name, 0);
	}
	if (fd < 0) {
		int saved = errno;
		free(name);
		errno = saved;
		return -1;
	}
	/* The lock tells the stale file cleaner that we are alive. */
	if (fchmod(fd, 0600) < 0 || flock(fd, LOCK_EX) < 0) {
		int saved = errno;
		unlinkat(dirfd, name, 0);
		close(fd);
		free(name);
		errno = saved;
		return -1;
	}
	*tmpname = name;
	return fd;
}

/* Write meta and src into a new complete temporary file, fsync'd and
 * locked.  Returns its descriptor, or -1 with e set (ERR_CANTCREAT, or
 * ERR_DATA) and no file left behind. */
static int write_temp(int dirfd, const char *dir, const struct queue_entry_meta *meta,
		      const struct body_src *src, bool rewrite, char **tmpname, struct err *e)
{
	/* The modification time is next_try: a flush passes over entries
	 * that are not due with a stat, without opening them.  Only a hint,
	 * so a failure to set it does not matter. */
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = meta->next_try } };
	int fd = create_temp(dirfd, meta->id, rewrite, tmpname);

	if (fd < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot create a queue file in %s: %s", dir,
			strerror(errno));
		return -1;
	}
	if (write_entry(fd, meta, src, e) < 0) {
		if (e->cls != ERR_DATA)
			err_set(e, ERR_CANTCREAT, 0, "cannot write queue file %s/%s: %s", dir,
				*tmpname, e->msg);
		goto fail;
	}
	(void)futimens(fd, times);
	if (fsync(fd) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot write queue file %s/%s: fsync: %s", dir,
			*tmpname, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlinkat(dirfd, *tmpname, 0);
	close(fd);
	free(*tmpname);
	*tmpname = NULL;
	return -1;
}

int queue_write(const char *dir, const struct queue_entry_meta *meta, const struct message *m,
		char **id_out, struct err *e)
{
	struct queue_entry_meta w = *meta;
	struct body_src src = { .m = m, .fd = -1, .size = stored_size(m) };
	time_t now = time(NULL);
	char *tmp = NULL, *final = NULL, *clean = NULL;
	const char *why;
	int dirfd = -1, fd = -1, rc = -1;

	w.id = new_id();
	if (!w.created)
		w.created = now;
	if (!w.next_try)
		w.next_try = w.created;
	if ((why = meta_problem(&w)) != NULL) {
		err_set(e, ERR_DATA, 0, "cannot queue the message: %s", why);
		goto out;
	}

	if (strcmp(dir, "-") == 0) {
		fflush(stdout);
		if (write_entry(STDOUT_FILENO, &w, &src, e) < 0) {
			if (e->cls != ERR_DATA)
				err_set(e, ERR_IO, 0, "cannot write the queue entry to standard output: %s",
					e->msg);
			goto out;
		}
		rc = 0;
		goto out;
	}

	dirfd = open_dir(dir, true, e);
	if (dirfd < 0)
		goto out;
	clean = strip_slashes(dir);
	fd = write_temp(dirfd, clean, &w, &src, false, &tmp, e);
	if (fd < 0)
		goto out;
	final = name_for(w.id, QSTATE_QUEUED);
	if (rename_noreplace(dirfd, tmp, final) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot rename queue file %s/%s to %s: %s", clean, tmp,
			final, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		goto out;
	}
	/* The caller reports failure when we do, so a file whose name may
	 * not survive a crash must not stay to be sent later. */
	if (fsync(dirfd) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot write queue directory %s: fsync: %s", clean,
			strerror(errno));
		unlinkat(dirfd, final, 0);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	if (rc == 0 && id_out)
		*id_out = w.id;
	else
		free(w.id);
	free(tmp);
	free(final);
	free(clean);
	return rc;
}

/* ---- listing ---- */

/* Fill it from the entry d; false when the entry vanished meanwhile. */
static bool inspect(int dirfd, const struct dirent_ent *d, struct queue_item *it)
{
	struct stat st;
	char *why = NULL;
	int fd = -1;

	memset(&st, 0, sizeof st);
	switch (open_entry(dirfd, d->name, &fd, &st, &why)) {
	case OPEN_OK:
		break;
	case OPEN_GONE:
		return false;
	default:
		it->state = QSTATE_CORRUPT;
		it->reason = why;
		it->file_size = st.st_size;
		it->mtime = st.st_mtime;
		it->meta.id = xstrdup(d->id);
		return true;
	}
	it->file_size = st.st_size;
	it->mtime = st.st_mtime;
	why = parse_header(fd, st.st_size, d->id, &it->meta);
	if (why) {
		it->state = QSTATE_CORRUPT;
		it->reason = why;
		it->meta.id = xstrdup(d->id);
	} else if (d->st == QSTATE_CORRUPT) {
		it->reason = xasprintf("set aside by a flush, but reads fine now: rename it to %s.queued "
				       "to send it", d->id);
	} else if (d->st == QSTATE_SENDING) {
		/* a shared lock is enough to know whether a flusher holds it */
		if (flock(fd, LOCK_SH | LOCK_NB) < 0)
			it->locked = errno == EWOULDBLOCK;
	}
	close(fd);
	return true;
}

int queue_list(const char *dir, struct queue_listing *out, struct err *e)
{
	struct dirent_ent *ents = NULL;
	size_t n = 0;
	int dirfd;

	memset(out, 0, sizeof *out);
	dirfd = open_dir(dir, false, e);
	if (dirfd == -2)
		return 0;
	if (dirfd < 0)
		return -1;
	if (scan_dir(dirfd, dir, &ents, &n, NULL, e) < 0) {
		close(dirfd);
		return -1;
	}
	out->v = xcalloc(n ? n : 1, sizeof *out->v);
	for (size_t i = 0; i < n; i++) {
		struct queue_item *it = &out->v[out->n];
		memset(it, 0, sizeof *it);
		it->state = ents[i].st;
		if (inspect(dirfd, &ents[i], it)) {
			it->name = xstrdup(ents[i].name);
			out->n++;
		}
	}
	ents_free(ents, n);
	close(dirfd);
	return 0;
}

void queue_listing_free(struct queue_listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].reason);
		queue_meta_free(&l->v[i].meta);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- claiming ---- */

static void report(struct queue_claimed *c, const char *name, const char *why)
{
	char buf[600];
	char *raw = xasprintf("%s: %s", name, why);
	sl_add(&c->problems, sanitize(buf, sizeof buf, raw, strlen(raw)));
	free(raw);
}

/* Rename a bad entry to ID.corrupt.  Safe without the lock only for what
 * no flusher ever produces (a symlink, a foreign file...): a well-formed
 * name changes only under the lock of the file it names. */
static void quarantine(struct queue_claimed *c, const struct dirent_ent *d, const char *why)
{
	char *to = name_for(d->id, QSTATE_CORRUPT);
	char *msg;

	if (rename_noreplace(c->dirfd, d->name, to) == 0) {
		msg = xasprintf("%s; set aside as %s", why, to);
	} else if (errno == ENOENT) {
		/* another flusher set it aside first */
		free(to);
		return;
	} else {
		msg = xasprintf("%s; left in place (cannot rename to %s: %s)", why, to,
				strerror(errno));
	}
	report(c, d->name, msg);
	free(msg);
	free(to);
}

/* Remove temporary files left by a writer that died: old, and unlocked. */
static void remove_stale(struct queue_claimed *c, const struct strlist *tmps, time_t now)
{
	for (size_t i = 0; i < tmps->n; i++) {
		struct stat st;
		int fd = openat(c->dirfd, tmps->v[i],
				O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		    now - st.st_mtime > STALE_TMP_AGE && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    same_file(c->dirfd, tmps->v[i], &st) && unlinkat(c->dirfd, tmps->v[i], 0) == 0)
			report(c, tmps->v[i], "stale temporary file removed");
		close(fd);
	}
}

/* Try to claim one entry: 1 when it is now ours. */
static int try_claim(struct queue_claimed *c, const struct dirent_ent *d, time_t now)
{
	struct queue_entry_meta meta;
	struct stat st;
	char *why = NULL;
	int fd;

	/* The mtime hint spares opening every deferred entry on every claim. */
	if (d->st == QSTATE_QUEUED && fstatat(c->dirfd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_mtime > now)
		return 0;
	switch (open_entry(c->dirfd, d->name, &fd, &st, &why)) {
	case OPEN_OK:
		break;
	case OPEN_GONE:
		return 0;
	case OPEN_BAD:
		quarantine(c, d, why);
		free(why);
		return 0;
	case OPEN_FAIL:
		report(c, d->name, why);
		free(why);
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			report(c, d->name, strerror(errno));
		close(fd);
		return 0;
	}
	/* Locked, but maybe after its owner moved it on (renamed or
	 * replaced it): then this file is not the entry any more. */
	if (!same_file(c->dirfd, d->name, &st)) {
		close(fd);
		return 0;
	}
	why = parse_header(fd, st.st_size, d->id, &meta);
	if (why) {
		quarantine(c, d, why);
		free(why);
		close(fd);
		return 0;
	}
	if (d->st == QSTATE_QUEUED) {
		char *to;
		if (meta.next_try > now) {
			queue_meta_free(&meta);
			close(fd);
			return 0;
		}
		to = name_for(d->id, QSTATE_SENDING);
		if (rename_noreplace(c->dirfd, d->name, to) < 0) {
			why = xasprintf("cannot rename to %s: %s", to, strerror(errno));
			report(c, d->name, why);
			free(why);
			free(to);
			queue_meta_free(&meta);
			close(fd);
			return 0;
		}
		free(to);
	} else {
		c->reclaimed = true;
	}
	c->fd = fd;
	c->meta = meta;
	return 1;
}

struct queue_scan {
	struct dirent_ent *ents; /* the last scan, in id order */
	size_t n, next;          /* next entry to try */
	bool scanned;
	int dirfd;               /* the directory as checked at the last scan */
};

struct queue_scan *queue_scan_new(void)
{
	struct queue_scan *scan = xcalloc(1, sizeof *scan);
	scan->dirfd = -1;
	return scan;
}

void queue_scan_free(struct queue_scan *scan)
{
	if (!scan)
		return;
	ents_free(scan->ents, scan->n);
	if (scan->dirfd >= 0)
		close(scan->dirfd);
	free(scan);
}

/* Try the scanned entries from scan->next on; 1 when one was claimed. */
static int claim_from_list(struct queue_claimed *c, struct queue_scan *scan, time_t now)
{
	while (scan->next < scan->n) {
		const struct dirent_ent *d = &scan->ents[scan->next++];
		if (d->st != QSTATE_QUEUED && d->st != QSTATE_SENDING)
			continue;
		int rc = try_claim(c, d, now);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int queue_claim_next(const char *dir, struct queue_scan *scan, struct queue_claimed *c,
		     struct err *e)
{
	time_t now = time(NULL);

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->batched = true;
	c->dir = strip_slashes(dir);
	/* What is left of the last scan first, in the directory checked
	 * then; then one fresh scan (and check) for what arrived, or was
	 * left by a dead flusher, since. */
	if (scan->scanned && scan->next < scan->n) {
		c->dirfd = fcntl(scan->dirfd, F_DUPFD_CLOEXEC, 0);
		if (c->dirfd < 0) {
			err_set(e, ERR_IO, 0, "queue directory %s: %s", c->dir, strerror(errno));
			return -1;
		}
		int rc = claim_from_list(c, scan, now);
		if (rc != 0)
			return rc;
		close(c->dirfd);
	}
	c->dirfd = open_dir(dir, false, e);
	if (c->dirfd == -2) {
		c->dirfd = -1;
		return 0;
	}
	if (c->dirfd < 0)
		return -1;
	if (scan->dirfd >= 0)
		close(scan->dirfd);
	scan->dirfd = fcntl(c->dirfd, F_DUPFD_CLOEXEC, 0);
	if (scan->dirfd < 0) {
		err_set(e, ERR_IO, 0, "queue directory %s: %s", c->dir, strerror(errno));
		return -1;
	}
	struct strlist tmps = STRLIST_INIT;
	ents_free(scan->ents, scan->n);
	scan->ents = NULL;
	scan->n = scan->next = 0;
	if (scan_dir(c->dirfd, c->dir, &scan->ents, &scan->n, &tmps, e) < 0) {
		sl_free(&tmps);
		return -1;
	}
	scan->scanned = true;
	remove_stale(c, &tmps, now);
	sl_free(&tmps);
	return claim_from_list(c, scan, now);
}

void queue_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int queue_claim(const char *dir, struct queue_claimed *c, struct err *e)
{
	/* a scan of its own, used once */
	struct queue_scan *scan = queue_scan_new();
	int rc = queue_claim_next(dir, scan, c, e);
	c->batched = false;
	queue_scan_free(scan);
	return rc;
}

int queue_claimed_read(struct queue_claimed *c, const char *tmpdir, struct message *m,
		       struct err *e)
{
	/* checked where it is, from the message's offset: no copy */
	struct spool_opts o = { .ignore_dots = true, .allow_bare_cr = true, .tmpdir = tmpdir,
				.in_place = true };

	message_init(m);
	if (c->fd < 0) {
		err_set(e, ERR_INTERNAL, 0, "no claimed queue entry");
		return -1;
	}
	if (lseek(c->fd, c->meta.msg_offset, SEEK_SET) < 0) {
		err_set(e, ERR_IO, 0, "cannot read queue file %s/%s.sending: %s", c->dir, c->meta.id,
			strerror(errno));
		return -1;
	}
	if (spool_read(c->fd, &o, &m->sp, e) < 0) {
		message_init(m);
		return -1;
	}
	if (m->sp.size != c->meta.msg_size) {
		err_set(e, ERR_IO, 0, "queue file %s/%s.sending changed while being read", c->dir,
			c->meta.id);
		message_free(m);
		return -1;
	}
	return 0;
}

long queue_backoff(unsigned attempts)
{
	long d = QUEUE_BACKOFF_FIRST;
	for (unsigned i = 1; i < attempts && d < QUEUE_BACKOFF_MAX; i++)
		d *= 2;
	return d < QUEUE_BACKOFF_MAX ? d : QUEUE_BACKOFF_MAX;
}

/* Rewrite the claimed entry with new meta into ID.<to>. */
static int rewrite(struct queue_claimed *c, const struct queue_entry_meta *w, enum queue_state to,
		   struct err *e)
{
	struct body_src src = { .fd = c->fd, .off = c->meta.msg_offset, .size = c->meta.msg_size };
	char *sending = name_for(w->id, QSTATE_SENDING);
	char *final = name_for(w->id, to);
	char *tmp = NULL;
	int fd, rc = -1;

	fd = write_temp(c->dirfd, c->dir, w, &src, true, &tmp, e);
	if (fd < 0)
		goto out;
	/* Replace the old file under its own name first, then move it on:
	 * at no moment do two names for the entry exist (one would be
	 * claimed while the other still waits to be removed), and the new
	 * file is locked until it has reached its final name. */
	if (renameat(c->dirfd, tmp, c->dirfd, sending) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot rename queue file %s/%s to %s: %s", c->dir, tmp,
			sending, strerror(errno));
		unlinkat(c->dirfd, tmp, 0);
		goto out;
	}
	if (rename_noreplace(c->dirfd, sending, final) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot rename queue file %s/%s to %s: %s", c->dir,
			sending, final, strerror(errno));
		goto out;
	}
	if (fsync(c->dirfd) < 0) {
		err_set(e, ERR_CANTCREAT, 0, "cannot write queue directory %s: fsync: %s", c->dir,
			strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(sending);
	free(final);
	return rc;
}

int queue_finish(struct queue_claimed *c, enum queue_outcome how, const char *reason, bool keep,
		 long max_age, struct err *e)
{
	struct queue_entry_meta w;
	char why[REASON_MAX + 1], *expired = NULL, *sending, *sent;
	time_t now = time(NULL);
	int rc = 0;

	if (c->fd < 0) {
		err_set(e, ERR_INTERNAL, 0, "no claimed queue entry");
		return -1;
	}
	sending = name_for(c->meta.id, QSTATE_SENDING);
	if (how == QUEUE_DONE) {
		sent = name_for(c->meta.id, QSTATE_SENT);
		if (keep ? renameat(c->dirfd, sending, c->dirfd, sent) : unlinkat(c->dirfd, sending, 0)) {
			err_set(e, ERR_CANTCREAT, 0, "cannot %s queue file %s/%s: %s",
				keep ? "rename" : "remove", c->dir, sending, strerror(errno));
			rc = -1;
		} else {
			/* a lost name change means the message goes out twice:
			 * tolerable, and nothing more can be done about it */
			if (!c->batched)
				(void)fsync(c->dirfd);
		}
		free(sent);
		goto out;
	}

	reason = reason ? reason : "";
	if (how == QUEUE_RETRY && max_age > 0 && now - c->meta.created >= max_age) {
		how = QUEUE_FAIL;
		expired = xasprintf("gave up after %u attempts in %ld seconds: %s",
				    c->meta.attempts + 1, (long)(now - c->meta.created), reason);
		reason = expired;
	}
	sanitize(why, sizeof why, reason, strlen(reason));
	w = c->meta;
	w.last_error = why;
	if (w.attempts < MAX_ATTEMPTS)
		w.attempts++;
	if (how == QUEUE_RETRY)
		w.next_try = now + queue_backoff(w.attempts);
	rc = rewrite(c, &w, how == QUEUE_RETRY ? QSTATE_QUEUED : QSTATE_FAILED, e);
out:
	/* closing the descriptor releases the lock */
	close(c->fd);
	c->fd = -1;
	free(expired);
	free(sending);
	return rc;
}

void queue_claimed_free(struct queue_claimed *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	queue_meta_free(&c->meta);
	sl_free(&c->problems);
	free(c->dir);
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->dirfd = -1;
}

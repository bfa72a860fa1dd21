/* bs.c - a small SMTP server on stdin/stdout for sendmail -bs. */
#include "bs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "deliver.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "spool.h"
#include "submit.h"
#include "util.h"

#define BS_LINE_MAX 4096     /* a command line; RFC 5321 asks for 512 */
#define BS_RCPT_MAX 1000

struct bs {
	struct props *p;
	const struct submit_opts *base; /* account and settings to replay */
	FILE *in, *out;
	struct envelope env;
	bool have_mail;
	bool greeted;
	/* the relay, kept open from one message to the next (RSET between) */
	struct deliver_channel *ch;
};

static int reply(struct bs *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply(struct bs *b, const char *fmt, ...)
{
	char raw[1100], clean[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	/* relay text quoted back must not break the reply framing */
	sanitize(clean, sizeof clean, raw, strlen(raw));
	fprintf(b->out, "%s\r\n", clean);
	return fflush(b->out) == 0 ? 0 : -1;
}

static void reset(struct bs *b)
{
	envelope_free(&b->env);
	b->have_mail = false;
}

/* The address between < and > of "FROM:<...>" / "TO:<...>", parameters
 * after it ignored.  Returns a new string or NULL. */
static char *path_arg(const char *arg)
{
	while (*arg == ' ')
		arg++;
	if (*arg != '<')
		return NULL;
	const char *end = strchr(arg, '>');
	if (!end)
		return NULL;
	return xstrndup(arg + 1, (size_t)(end - arg - 1));
}

static int cmd_mail(struct bs *b, const char *arg)
{
	struct err e;
	struct addr a;
	bool utf8;

	if (b->have_mail)
		return reply(b, "503 5.5.1 nested MAIL command");
	char *path = path_arg(arg);
	if (!path)
		return reply(b, "501 5.5.4 syntax: MAIL FROM:<address>");
	if (!*path) {
		b->env.from = path; /* the null sender */
	} else if (addr_parse_one(path, ADDR_ALLOW_LOCAL, &a, &e) < 0) {
		free(path);
		return reply(b, "553 5.1.7 %s", e.msg);
	} else {
		free(path);
		if (addr_envelope(&a, &b->env.from, &utf8, &e) < 0) {
			addr_free(&a);
			return reply(b, "553 5.1.7 %s", e.msg);
		}
		b->env.smtputf8 |= utf8;
		addr_free(&a);
	}
	b->have_mail = true;
	return reply(b, "250 2.1.0 sender ok");
}

static int cmd_rcpt(struct bs *b, const char *arg)
{
	struct err e;
	struct addr a;
	bool utf8;
	char *env_addr;

	if (!b->have_mail)
		return reply(b, "503 5.5.1 need MAIL first");
	if (b->env.nrcpt >= BS_RCPT_MAX)
		return reply(b, "452 4.5.3 too many recipients");
	char *path = path_arg(arg);
	if (!path || !*path) {
		free(path);
		return reply(b, "501 5.5.4 syntax: RCPT TO:<address>");
	}
	int r = addr_parse_one(path, ADDR_ALLOW_LOCAL, &a, &e);
	free(path);
	if (r < 0)
		return reply(b, "553 5.1.3 %s", e.msg);
	r = addr_envelope(&a, &env_addr, &utf8, &e);
	addr_free(&a);
	if (r < 0)
		return reply(b, "553 5.1.3 %s", e.msg);
	struct envelope *env = &b->env;
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
	memset(&env->rcpt[env->nrcpt], 0, sizeof *env->rcpt);
	env->rcpt[env->nrcpt].addr = env_addr;
	env->rcpt[env->nrcpt].kind = RCPT_TO;
	env->nrcpt++;
	env->smtputf8 |= utf8;
	return reply(b, "250 2.1.5 recipient ok");
}

/* Read the message up to the lone dot into a temporary file, undoing the
 * dot-stuffing.  Returns the fd, or -1 at end of input / error. */
static int read_data(struct bs *b)
{
	char tmpl[] = "/tmp/smtpsend-bs-XXXXXX";
	const char *dir = getenv("TMPDIR");
	char *path = dir && *dir ? xasprintf("%s/smtpsend-bs-XXXXXX", dir) : xstrdup(tmpl);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	free(path);
	FILE *f = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool ended = false;

	while ((n = getline(&line, &cap, b->in)) > 0) {
		size_t len = (size_t)n;
		size_t body = len;
		while (body && (line[body - 1] == '\n' || line[body - 1] == '\r'))
			body--;
		if (body == 1 && line[0] == '.') {
			ended = true;
			break;
		}
		const char *s = line;
		if (line[0] == '.')
			s++, len--; /* dot-stuffing */
		if (f && fwrite(s, 1, len, f) != len) {
			fclose(f);
			f = NULL;
		}
	}
	free(line);
	if (!f || fclose(f) != 0 || !ended) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static int cmd_data(struct bs *b)
{
	struct message m;
	struct err e = { 0 };
	struct spool_opts so = { .ignore_dots = true };
	struct submit_opts o = { .queue_dir = *b->p->queue_dir ? b->p->queue_dir : NULL };
	if (b->base) {
		/* a message queued after a temporary failure is flushed with
		 * the account and the command line of this run */
		o.account = b->base->account;
		o.replay_keys = b->base->replay_keys;
		o.replay_values = b->base->replay_values;
	}
	struct submit_report rep = { 0 };

	if (!b->have_mail)
		return reply(b, "503 5.5.1 need MAIL first");
	if (b->env.nrcpt == 0)
		return reply(b, "554 5.5.1 no valid recipients");
	if (reply(b, "354 end data with <CR><LF>.<CR><LF>") < 0)
		return -1;
	int fd = read_data(b);
	if (fd < 0)
		return reply(b, "451 4.3.0 message not received completely");
	message_init(&m);
	int r = spool_read(fd, &so, &m.sp, &e);
	close(fd);
	/* the envelope first: a From header added below uses the sender */
	if (r == 0)
		r = submit_finish_envelope(b->p, &b->env, &m, &e);
	if (r == 0)
		r = submit_complete_raw(b->p, &b->env, &m, &e);
	if (r < 0) {
		message_free(&m);
		reset(b);
		return reply(b, "554 5.6.0 %s", e.msg);
	}
	if (!b->ch && deliver_open(b->p, &b->ch, &e) < 0) {
		message_free(&m);
		reset(b);
		return e.cls == ERR_TEMP ? reply(b, "451 4.3.0 %s", e.msg) : reply(b, "554 5.3.5 %s", e.msg);
	}
	o.channel = b->ch;
	r = submit_prepared(b->p, &o, &b->env, &m, &rep);
	message_free(&m);
	int ret;
	bool delivered = rep.delivered;
	if (r == 0) {
		ret = reply(b, "250 2.0.0 message relayed");
	} else if (rep.queued_id && rep.worst == ERR_OK) {
		ret = reply(b, "250 2.0.0 queued as %s after a temporary failure", rep.queued_id);
	} else if (delivered && rep.worst != ERR_OK) {
		/* Relayed to some: a failure reply now would make the client
		 * send it again to those who have it.  The refusals go to
		 * stderr, where sendmail -bs callers log them. */
		for (size_t i = 0; i < rep.n; i++)
			log_warn("%s", rep.v[i].msg);
		ret = reply(b, "250 2.0.0 message relayed; %zu recipient(s) refused, see the log", rep.n);
	} else {
		const struct err *last = rep.n ? &rep.v[rep.n - 1] : &e;
		ret = rep.worst == ERR_TEMP ? reply(b, "451 4.3.0 %s", last->msg)
					    : reply(b, "554 5.0.0 %s", last->msg);
	}
	submit_report_free(&rep);
	reset(b);
	return ret;
}

int bs_serve(struct props *p, const struct submit_opts *base, FILE *in, FILE *out, struct err *e)
{
	struct bs b = { .p = p, .base = base, .in = in, .out = out };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = reply(&b, "220 %s smtpsend ESMTP ready", deliver_hello_name(p));

	while (r == 0 && (n = getline(&line, &cap, in)) > 0) {
		size_t len = (size_t)n;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len > BS_LINE_MAX) {
			r = reply(&b, "500 5.5.2 line too long");
			continue;
		}
		char verb[8] = "";
		size_t k = 0;
		while (k < len && k < 7 && line[k] != ' ') {
			verb[k] = line[k];
			k++;
		}
		verb[k] = '\0';
		const char *arg = line + k;
		if (ascii_casecmp(verb, "EHLO") == 0) {
			reset(&b);
			fprintf(out, "250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n",
				deliver_hello_name(p));
			r = reply(&b, "250 ENHANCEDSTATUSCODES");
		} else if (ascii_casecmp(verb, "HELO") == 0) {
			reset(&b);
			r = reply(&b, "250 %s", deliver_hello_name(p));
		} else if (ascii_casecmp(verb, "MAIL") == 0 && ascii_ncasecmp(arg, " FROM:", 6) == 0) {
			r = cmd_mail(&b, arg + 6);
		} else if (ascii_casecmp(verb, "RCPT") == 0 && ascii_ncasecmp(arg, " TO:", 4) == 0) {
			r = cmd_rcpt(&b, arg + 4);
		} else if (ascii_casecmp(verb, "DATA") == 0) {
			r = cmd_data(&b);
		} else if (ascii_casecmp(verb, "RSET") == 0) {
			reset(&b);
			r = reply(&b, "250 2.0.0 reset");
		} else if (ascii_casecmp(verb, "NOOP") == 0) {
			r = reply(&b, "250 2.0.0 ok");
		} else if (ascii_casecmp(verb, "VRFY") == 0) {
			r = reply(&b, "252 2.5.0 cannot verify, but will try");
		} else if (ascii_casecmp(verb, "QUIT") == 0) {
			reply(&b, "221 2.0.0 bye");
			break;
		} else {
			r = reply(&b, "502 5.5.1 command not implemented");
		}
	}
	free(line);
	reset(&b);
	deliver_close(b.ch);
	if (r < 0) {
		err_set(e, ERR_IO, 0, "-bs: writing a reply: %s", strerror(errno));
		return -1;
	}
	return 0;
}

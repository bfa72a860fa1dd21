/* submit.c - one submission: the envelope and the message built from the
 * properties (and standard input), then delivered, verified or printed,
 * with a report of every failure for main.c to print. */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "compose.h"
#include "deliver.h"
#include "dsn.h"
#include "dotstuff.h"
#include "header.h"
#include "log.h"
#include "queue.h"
#include "sasl.h"
#include "util.h"

const char *submit_account_from;

void envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].reply);
		free(env->rcpt[i].notify);
		free(env->rcpt[i].orcpt);
	}
	free(env->rcpt);
	free(env->from);
	memset(env, 0, sizeof *env);
}

/* Add a recipient (takes addr); each address gets one RCPT, and a repeated
 * one keeps the most visible kind (To before Cc before Bcc). */
static void envelope_add(struct envelope *env, char *addr, enum rcpt_kind kind, bool utf8)
{
	for (size_t j = 0; j < env->nrcpt; j++) {
		if (ascii_casecmp(env->rcpt[j].addr, addr) == 0) {
			if (kind < env->rcpt[j].kind)
				env->rcpt[j].kind = kind;
			free(addr);
			return;
		}
	}
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
	memset(&env->rcpt[env->nrcpt], 0, sizeof *env->rcpt);
	env->rcpt[env->nrcpt].addr = addr;
	env->rcpt[env->nrcpt].kind = kind;
	env->nrcpt++;
	env->smtputf8 |= utf8;
}

/* Parse a list of address arguments into envelope recipients. */
static int add_recipients(struct envelope *env, const struct strlist *l, enum rcpt_kind kind,
			  struct err *e)
{
	for (size_t i = 0; i < l->n; i++) {
		struct addr_list al = ADDR_LIST_INIT;
		if (addr_parse_list(l->v[i], ADDR_ALLOW_LOCAL, &al, e) < 0) {
			addr_list_free(&al);
			return -1;
		}
		for (size_t k = 0; k < al.n; k++) {
			char *a;
			bool utf8;
			if (addr_envelope(&al.v[k], &a, &utf8, e) < 0) {
				addr_list_free(&al);
				return -1;
			}
			envelope_add(env, a, kind, utf8);
		}
		addr_list_free(&al);
	}
	return 0;
}


/* The envelope sender from one address text ("Name <a@b>" allowed). */
static int sender_from(const char *text, struct envelope *env, struct err *e)
{
	struct addr a;
	bool utf8;
	if (!*text) {
		env->from = xstrdup("");
		return 0;
	}
	if (strcmp(text, "<>") == 0) {
		env->from = xstrdup(""); /* the null sender, for bounces */
		return 0;
	}
	if (addr_parse_one(text, ADDR_ALLOW_LOCAL, &a, e) < 0)
		return -1;
	int r = addr_envelope(&a, &env->from, &utf8, e);
	addr_free(&a);
	env->smtputf8 |= utf8;
	return r;
}

static char *login_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	const char *u = pw ? pw->pw_name : getenv("USER");
	return xstrdup(u && *u ? u : "root");
}

static bool compose_mode(const struct props *p)
{
	return *p->subject || *p->message_text || *p->body_file;
}

/* Header flags shape a composed message; a raw message is sent as the
 * caller wrote it, so silently dropping them would surprise.  Only the
 * command line counts: the same settings in an rc file are defaults for
 * composing and do not stop raw messages. */
static int compose_only_flags(const struct submit_opts *o, struct err *e)
{
	static const struct { const char *prop, *flag; } only[] = {
		{ "OtherHeaders", "--header" }, { "ReplyTo", "--reply-to" },
		{ "ReadReceiptTo", "--read-receipt-to" },
		{ "DeliveryNotificationTo", "--delivery-notification-to" },
		{ "Importance", "--importance" }, { "Priority", "--priority" },
		{ "Sensitivity", "--sensitivity" },
	};
	for (size_t i = 0; o->replay_keys && i < o->replay_keys->n; i++) {
		for (size_t k = 0; k < sizeof only / sizeof only[0]; k++) {
			if (ascii_casecmp(o->replay_keys->v[i], only[k].prop) != 0)
				continue;
			err_set(e, ERR_USAGE, 0,
				"%s applies when composing (--subject, --body or --body-file); a message "
				"read from standard input is sent as it is", only[k].flag);
			return -1;
		}
	}
	return 0;
}

/* A temporary stream in $TMPDIR like the spool's (tmpfile() ignores
 * TMPDIR).  Errors: ERR_CANTCREAT. */
static FILE *temp_stream(struct err *e)
{
	int fd = spool_temp_fd(e);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w+");
	if (!f) {
		err_set(e, ERR_CANTCREAT, 0, "cannot open a temporary file: %s", strerror(errno));
		close(fd);
	}
	return f;
}

static int compose_to_spool(const struct props *p, const struct strlist *to, struct message *m,
			    struct err *e)
{
	struct compose_input in = {
		.from = p->from,
		.from_name = *p->full_name ? p->full_name : NULL,
		.to = to,
		.cc = &p->cc,
		.subject = *p->subject ? p->subject : NULL,
		.reply_to = *p->reply_to ? p->reply_to : NULL,
		.read_receipt_to = *p->read_receipt_to ? p->read_receipt_to : NULL,
		.delivery_notification_to = *p->delivery_notification_to ? p->delivery_notification_to : NULL,
		.date = p->message_date,
		.message_id = p->message_id,
		.msgid_alg = (enum msgid_alg)p->message_id_algorithm,
		.importance = (int)p->importance,
		.priority = (int)p->priority,
		.sensitivity = (int)p->sensitivity,
		.other_headers = &p->other_headers,
		.charset = p->charset,
		.max_header_length = (int)p->max_header_length,
		.fold_headers = p->fold_headers,
		.hostname = deliver_hello_name(p),
		.now = time(NULL),
	};
	struct strbuf hdr = STRBUF_INIT;
	FILE *body, *out = NULL;
	bool is8, qp;
	int ret = -1;

	if (*p->body_file) {
		body = fopen(p->body_file, "rb");
		if (!body) {
			err_set(e, ERR_NOINPUT, SEED_FILE, "cannot open body file %s: %s", p->body_file,
				strerror(errno));
			return -1;
		}
	} else {
		size_t n = strlen(p->message_text);
		/* fmemopen cannot open an empty buffer */
		body = n ? fmemopen(p->message_text, n, "rb") : fopen("/dev/null", "rb");
		if (!body) {
			err_set(e, ERR_OS, 0, "fmemopen: %s", strerror(errno));
			return -1;
		}
	}
	if (compose_scan_body(body, &is8, &qp, e) < 0)
		goto done;
	/* With caller-supplied headers nothing may be added, not even a
	 * Content-Transfer-Encoding: the body must go as it is. */
	if (compose_raw_headers(&in))
		qp = false;
	if (compose_headers(&in, is8, qp, &hdr, e) < 0)
		goto done;
	out = temp_stream(e);
	if (!out)
		goto done;
	if (fwrite(hdr.s, 1, hdr.len, out) != hdr.len || compose_write_body(body, qp, out, e) < 0 ||
	    fflush(out) != 0 || fseeko(out, 0, SEEK_SET) != 0) {
		if (!e->cls)
			err_set(e, ERR_IO, 0, "writing the composed message: %s", strerror(errno));
		goto done;
	}
	struct spool_opts so = { .ignore_dots = true, .allow_bare_cr = false };
	ret = spool_read(fileno(out), &so, &m->sp, e);
done:
	if (out)
		fclose(out);
	fclose(body);
	sb_free(&hdr);
	return ret;
}

/* The value of header i without leading blanks. */
static const char *hvalue(const struct spool *sp, int i)
{
	const char *v = sp->hdr[i].value;
	while (*v == ' ' || *v == '\t')
		v++;
	return v;
}

/* A raw message whose body has lines that cannot go out as they are (a
 * NUL, a bare CR, a line over 998 octets: typical of a cron job's output)
 * is rewritten with a quoted-printable body, when it is a single text
 * part so that this changes nothing the reader sees.  Errors: ERR_DATA
 * naming the line when the message cannot be encoded that way. */
static int encode_body(const struct props *p, struct message *m, struct err *e)
{
	struct spool *sp = &m->sp;
	int ct = spool_find_header(sp, "Content-Type");
	int cte = spool_find_header(sp, "Content-Transfer-Encoding");
	const char *why = NULL;

	if (!p->encode_raw_body)
		why = "";
	else if (ct >= 0 && ascii_ncasecmp(hvalue(sp, ct), "text/", 5) != 0)
		why = " (not a single text part, so it cannot be re-encoded)";
	else if (cte >= 0 && ascii_ncasecmp(hvalue(sp, cte), "7bit", 4) != 0 &&
		 ascii_ncasecmp(hvalue(sp, cte), "8bit", 4) != 0 &&
		 ascii_ncasecmp(hvalue(sp, cte), "binary", 6) != 0)
		why = " (already transfer-encoded)";
	if (why) {
		err_set(e, ERR_DATA, 0, "line %ju: %s%s", (uintmax_t)sp->fault_line, sp->fault, why);
		return -1;
	}

	FILE *out = temp_stream(e);
	FILE *in = out ? temp_stream(e) : NULL;
	char *buf = NULL;
	int ret = -1;
	if (!out || !in)
		goto done;
	/* the body alone (the spool may hold bytes past its end) */
	for (off_t at = sp->header_end; at < sp->size;) {
		char chunk[65536];
		size_t want = (size_t)(sp->size - at) < sizeof chunk ? (size_t)(sp->size - at) : sizeof chunk;
		ssize_t n = spool_pread(sp, chunk, want, at);
		if (n <= 0 || fwrite(chunk, 1, (size_t)n, in) != (size_t)n) {
			err_set(e, ERR_IO, 0, "re-encoding the message: %s", strerror(errno));
			goto done;
		}
		at += n;
	}
	/* the header block, without its old Content-Transfer-Encoding */
	off_t pos = 0;
	size_t blen = (size_t)sp->fields_end;
	buf = xmalloc(blen ? blen : 1);
	if (spool_pread(sp, buf, blen, 0) != (ssize_t)blen) {
		err_set(e, ERR_IO, 0, "reading the spooled message: %s", strerror(errno));
		goto done;
	}
	for (size_t i = 0; i < sp->nhdr; i++) {
		if ((int)i != cte)
			continue;
		fwrite(buf + pos, 1, (size_t)(sp->hdr[i].start - pos), out);
		pos = sp->hdr[i].end;
	}
	fwrite(buf + pos, 1, blen - (size_t)pos, out);
	if (blen && buf[blen - 1] != '\n')
		fputs("\r\n", out);
	if (spool_find_header(sp, "MIME-Version") < 0)
		fputs("MIME-Version: 1.0\r\n", out);
	if (ct < 0)
		fprintf(out, "Content-Type: text/plain; charset=%s\r\n", *p->charset ? p->charset : "UTF-8");
	fputs("Content-Transfer-Encoding: quoted-printable\r\n\r\n", out);
	if (fseeko(in, 0, SEEK_SET) != 0 || compose_write_body(in, true, out, e) < 0 ||
	    fflush(out) != 0 || fseeko(out, 0, SEEK_SET) != 0) {
		if (!e->cls)
			err_set(e, ERR_IO, 0, "re-encoding the message: %s", strerror(errno));
		goto done;
	}
	log_info("line %ju: %s: the body goes out quoted-printable", (uintmax_t)sp->fault_line,
		 sp->fault);
	spool_free(sp);
	struct spool_opts so = { .ignore_dots = true };
	ret = spool_read(fileno(out), &so, sp, e);
done:
	free(buf);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	return ret;
}

static int read_raw(const struct props *p, struct message *m, struct err *e)
{
	int fd = 0;
	struct spool_opts so = { .ignore_dots = p->ignore_dots, .tolerate_faults = true,
				 .in_place = true };

	if (*p->message_file && strcmp(p->message_file, "-") != 0) {
		fd = open(p->message_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err_set(e, ERR_NOINPUT, SEED_FILE, "cannot open message file %s: %s",
				p->message_file, strerror(errno));
			return -1;
		}
	}
	int r = spool_read(fd, &so, &m->sp, e);
	if (fd != 0)
		close(fd);
	/* BINARYMIME carries any bytes as they are (RFC 3030) */
	if (r == 0 && m->sp.fault_line && p->body_type != 3)
		r = encode_body(p, m, e);
	return r;
}

/* A raw message gets what it lacks: Date, Message-ID, From; its Bcc and
 * Resent-Bcc fields are never transmitted. */
int submit_complete_raw(const struct props *p, const struct envelope *env, struct message *m,
			struct err *e)
{
	time_t now = time(NULL);
	char buf[512];

	for (size_t i = 0; i < m->sp.nhdr; i++) {
		const char *n = m->sp.hdr[i].name;
		if ((ascii_casecmp(n, "Bcc") == 0 || ascii_casecmp(n, "Resent-Bcc") == 0) &&
		    message_skip_header(m, i, e) < 0)
			return -1;
	}
	if (spool_find_header(&m->sp, "Date") < 0 && strcmp(p->message_date, "") != 0) {
		if (strcmp(p->message_date, "*") == 0)
			compose_date(now, buf, sizeof buf);
		else
			snprintf(buf, sizeof buf, "%s", p->message_date);
		sb_addf(&m->prefix, "Date: %s\r\n", buf);
	}
	if (spool_find_header(&m->sp, "From") < 0) {
		const char *from = *p->from ? p->from : env->from;
		struct addr a;
		if (addr_parse_one(from, ADDR_ALLOW_LOCAL, &a, e) < 0)
			return -1;
		int r = compose_from_field(*p->full_name ? p->full_name : NULL, &a,
					   (int)p->max_header_length, &m->prefix, e);
		if (r < 0) {
			addr_free(&a);
			return -1;
		}
		addr_free(&a);
	}
	if (spool_find_header(&m->sp, "Message-ID") < 0 && strcmp(p->message_id, "") != 0) {
		if (strcmp(p->message_id, "*") == 0)
			compose_message_id((enum msgid_alg)p->message_id_algorithm, deliver_hello_name(p),
					   now, buf, sizeof buf);
		else
			snprintf(buf, sizeof buf, "%s%s%s", p->message_id[0] == '<' ? "" : "<",
				 p->message_id, p->message_id[0] == '<' ? "" : ">");
		sb_addf(&m->prefix, "Message-ID: %s\r\n", buf);
	}
	/* A message without a header block: what we add becomes its header,
	 * so it needs the empty line that separates it from the body. */
	if (m->prefix.len && m->sp.header_end == 0 && m->sp.size > 0)
		sb_adds(&m->prefix, "\r\n");
	return 0;
}

static bool headers_8bit(const struct message *m)
{
	for (size_t i = 0; i < m->sp.nhdr; i++) {
		for (const unsigned char *c = (const unsigned char *)m->sp.hdr[i].value; *c; c++)
			if (*c >= 0x80)
				return true;
	}
	return false;
}

/* --print: the envelope, then the message exactly as the server will
 * store it (CR LF line ends, before dot-stuffing). */
static int print_sink(void *ctx, const char *buf, size_t len, struct err *e)
{
	struct dotstuff *ds = ctx;
	char *out = xmalloc(DOTSTUFF_MAX_OUT(len));
	size_t n = dotstuff_feed(ds, buf, len, out);
	size_t w = fwrite(out, 1, n, stdout);
	free(out);
	if (w != n) {
		err_set(e, ERR_IO, 0, "writing to standard output: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int print_message(const struct envelope *env, const struct message *m, struct err *e)
{
	struct dotstuff ds;
	char tail[DOTSTUFF_FINISH_MAX];

	printf("MAIL FROM:<%s>\n", env->from);
	for (size_t i = 0; i < env->nrcpt; i++)
		printf("RCPT TO:<%s>\n", env->rcpt[i].addr);
	printf("\n");
	dotstuff_init(&ds, true);
	if (message_stream(m, print_sink, &ds, e) < 0)
		return -1;
	if (m->prefix.len || m->sp.size) {
		size_t n = dotstuff_finish(&ds, tail);
		fwrite(tail, 1, n, stdout);
	}
	if (fflush(stdout) != 0) {
		err_set(e, ERR_IO, 0, "writing to standard output: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int submit_check_policy(const struct props *p, struct err *e)
{
	/* an unknown or unsupported mechanism name fails before connecting:
	 * ask the chooser as if the server offered exactly that one */
	const char *mech;
	if (deliver_auth_wanted(p) && ascii_casecmp(p->auth_mechanism, "auto") != 0 &&
	    sasl_choose(p->auth_mechanism, p->auth_mechanism, true, true, &mech, e) < 0 &&
	    e->cls == ERR_CONFIG)
		return -1;
	err_clear(e);
	/* A password with nobody to authenticate as would be silently
	 * unused; a user without a password source fails later anyway, but
	 * an explicit mechanism without a user is a mistake now. */
	if (!*p->user && (*p->password || *p->password_command)) {
		err_set(e, ERR_CONFIG, 0, "a password is configured but no user: set user too");
		return -1;
	}
	if (!*p->user && deliver_auth_wanted(p) && ascii_casecmp(p->auth_mechanism, "EXTERNAL") != 0 &&
	    ascii_casecmp(p->auth_mechanism, "GSSAPI") != 0 &&
	    ascii_casecmp(p->auth_mechanism, "GS2-KRB5") != 0) {
		err_set(e, ERR_CONFIG, 0, "--auth=%s needs a user (--user or user in the rc file)",
			p->auth_mechanism);
		return -1;
	}
	return 0;
}


void submit_report_free(struct submit_report *rep)
{
	free(rep->v);
	free(rep->queued_id);
	memset(rep, 0, sizeof *rep);
}

/* Record a failure; the worst class decides the exit status. */
static void report(struct submit_report *rep, const struct err *e)
{
	rep->v = xrealloc(rep->v, (rep->n + 1) * sizeof *rep->v);
	rep->v[rep->n++] = *e;
	if (err_severity(e->cls) >= err_severity(rep->worst))
		rep->worst = e->cls;
}

/* Local names ("root") become addresses through the aliases file, then
 * the default domain.  Errors: ERR_RCPT for a name that resolves nowhere,
 * ERR_CONFIG/ERR_DATA from the aliases file. */
static int resolve_local(const struct props *p, struct envelope *env, struct err *e)
{
	struct aliases *al = NULL;
	bool loaded = false;
	struct envelope out = *env;
	int ret = 0;

	out.rcpt = NULL;
	out.nrcpt = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct rcpt *r = &env->rcpt[i];
		if (strchr(r->addr, '@') || ret < 0) {
			envelope_add(&out, r->addr, r->kind, false);
			r->addr = NULL;
			continue;
		}
		if (!loaded && *p->aliases_file) {
			loaded = true;
			if (aliases_load(p->aliases_file, &al, e) < 0) {
				if (e->cls != ERR_NOINPUT) {
					ret = -1;
					continue;
				}
				err_clear(e); /* no aliases file: default domain only */
			}
		}
		struct strlist to = STRLIST_INIT;
		if (aliases_resolve(al, r->addr, p->default_domain, &to, e) < 0) {
			ret = -1;
			sl_free(&to);
			continue;
		}
		for (size_t k = 0; k < to.n; k++) {
			bool utf8 = false;
			for (const unsigned char *c = (const unsigned char *)to.v[k]; *c; c++)
				utf8 |= *c >= 0x80;
			envelope_add(&out, xstrdup(to.v[k]), r->kind, utf8);
		}
		sl_free(&to);
	}
	aliases_free(al);
	for (size_t i = 0; i < env->nrcpt; i++)
		free(env->rcpt[i].addr);
	free(env->rcpt);
	env->rcpt = out.rcpt;
	env->nrcpt = out.nrcpt;
	env->smtputf8 = out.smtputf8;
	return ret;
}

/* The domain of local names: DefaultDomain, else this host's name. */
static const char *local_domain(const struct props *p)
{
	return *p->default_domain ? p->default_domain : deliver_hello_name(p);
}

/* The envelope sender when none was given: the From header (unless
 * ReadEnvelopeFrom is off), else login@host. */
static void default_sender(const struct props *p, const struct message *m, struct envelope *env)
{
	struct err ignored;
	int h = p->read_envelope_from ? spool_find_header(&m->sp, "From") : -1;
	struct addr_list al = ADDR_LIST_INIT;
	if (h >= 0 && addr_parse_list(m->sp.hdr[h].value, 0, &al, &ignored) == 0 && al.n > 0) {
		bool utf8;
		if (addr_envelope(&al.v[0], &env->from, &utf8, &ignored) < 0)
			env->from = NULL;
		else
			env->smtputf8 |= utf8;
	}
	addr_list_free(&al);
	if (!env->from) {
		char *u = login_name();
		env->from = xasprintf("%s@%s", u, local_domain(p));
		free(u);
	}
}

/* Local names resolved, the sender settled and qualified: what every
 * submission needs before its message is completed and sent. */
int submit_finish_envelope(const struct props *p, struct envelope *env, const struct message *m,
			   struct err *e)
{
	if (resolve_local(p, env, e) < 0)
		return -1;

	if (p->rewrite_envelope_from && submit_account_from && *submit_account_from) {
		/* relays that insist on the authenticated address */
		free(env->from);
		env->from = NULL;
		if (sender_from(submit_account_from, env, e) < 0)
			return -1;
	}
	if (!env->from)
		default_sender(p, m, env);
	if (*env->from && !strchr(env->from, '@')) {
		/* RFC 5321 wants a domain in MAIL FROM: -f root is qualified
		 * like a local recipient */
		char *q = xasprintf("%s@%s", env->from, local_domain(p));
		free(env->from);
		env->from = q;
	}
	return 0;
}

/* Write env/m to the queue; with want (may be NULL) only the recipients
 * it selects.  Errors: those of queue_write. */
static int enqueue(const struct submit_opts *o, const struct envelope *env, const struct message *m,
		   const bool *want, char **id, struct err *e)
{
	static const char *const kinds[] = { [RCPT_TO] = "to", [RCPT_CC] = "cc", [RCPT_BCC] = "bcc" };
	struct queue_entry_meta meta = { 0 };
	int r;

	meta.account = xstrdup(o->account ? o->account : "");
	meta.from = xstrdup(env->from);
	meta.last_error = xstrdup("");
	for (size_t i = 0; o->replay_keys && i < o->replay_keys->n; i++) {
		const char *k = o->replay_keys->v[i];
		/* the envelope is stored on its own; the message is stored whole */
		if (ascii_casecmp(k, "SendTo") == 0 || ascii_casecmp(k, "Cc") == 0 ||
		    ascii_casecmp(k, "BCc") == 0 || ascii_casecmp(k, "QueueDir") == 0)
			continue;
		sl_add_owned(&meta.settings, xasprintf("%s=%s", k, o->replay_values->v[i]));
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!want || want[i])
			sl_add_owned(&meta.rcpts, xasprintf("%s:%s", kinds[env->rcpt[i].kind],
							     env->rcpt[i].addr));
	r = queue_write(o->queue_dir, &meta, m, id, e);
	queue_meta_free(&meta);
	return r;
}

/* After a temporary failure with a queue configured, the message is safe
 * in the queue for the recipients that did not get it and may yet: the
 * temporary failures leave the report, and the run succeeds unless
 * something failed for good. */
static void queue_on_failure(const struct submit_opts *o, const struct envelope *env,
			     const struct message *m, bool delivered, struct submit_report *rep)
{
	if (o->queue_partial_only && !delivered)
		return; /* a flush puts the entry itself back */
	bool *want = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof *want);
	size_t nwant = 0;
	bool temp_whole = !delivered && rep->n && rep->v[rep->n - 1].cls == ERR_TEMP;
	struct err e = { 0 };

	for (size_t i = 0; i < env->nrcpt; i++) {
		int code = env->rcpt[i].code;
		/* after a delivery, only the 4xx refusals; after a temporary
		 * failure of the whole transaction, all but the 5xx ones */
		want[i] = delivered ? (code >= 400 && code < 500) : (temp_whole && code < 500);
		nwant += want[i];
	}
	if (nwant && enqueue(o, env, m, want, &rep->queued_id, &e) == 0) {
		size_t k = 0;
		enum err_class worst = ERR_OK;
		for (size_t i = 0; i < rep->n; i++) {
			if (rep->v[i].cls == ERR_TEMP) {
				snprintf(rep->queued_why, sizeof rep->queued_why, "%.590s", rep->v[i].msg);
				continue;
			}
			rep->v[k++] = rep->v[i];
			if (err_severity(rep->v[i].cls) >= err_severity(worst))
				worst = rep->v[i].cls;
		}
		rep->n = k;
		rep->worst = worst;
	} else if (nwant) {
		report(rep, &e);
	}
	free(want);
}

int submit_begin(const struct props *p, const struct submit_opts *o, struct envelope *env,
		 struct message *m, struct submit_report *rep)
{
	struct err e = { 0 };

	if (submit_finish_envelope(p, env, m, &e) < 0 ||
	    dsn_recipient_options(&p->recipient_options, env, &e) < 0) {
		report(rep, &e);
		return -1;
	}
	env->body_8bit = m->sp.has_8bit;
	env->declared_8bit = p->body_type == 2;
	env->binary = m->binary = p->body_type == 3;
	env->size = message_size(m);
	if (p->body_type == 1 && m->sp.has_8bit) {
		err_set(&e, ERR_DATA, 0, "-B 7BIT was given but the message holds 8-bit data");
		report(rep, &e);
		return -1;
	}
	if (o->print_only) {
		if (print_message(env, m, &e) < 0) {
			report(rep, &e);
			return -1;
		}
		return 0;
	}
	if (!*p->mail_server) {
		err_set(&e, ERR_CONFIG, SEED_NO_SERVER,
			"no mail server: set host in ~/.smtpsendrc or give --host");
		report(rep, &e);
		return -1;
	}
	if (submit_check_policy(p, &e) < 0) {
		report(rep, &e);
		return -1;
	}

	if (o->queue_only && !o->verify_only) {
		/* the reference's Queue: to disk now, sent by a later flush */
		if (enqueue(o, env, m, NULL, &rep->queued_id, &e) < 0) {
			report(rep, &e);
			return -1;
		}
		return 0;
	}
	return 1;
}

int submit_end(const struct submit_opts *o, struct envelope *env, const struct message *m, int r,
	       const struct deliver_result *res, const struct err *te, struct submit_report *rep)
{
	struct err e = *te;
	rep->delivered = res->delivered;

	/* Every refused recipient, then the transaction's error: the most
	 * serious status of them all wins. */
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct rcpt *rc = &env->rcpt[i];
		if (rc->code < 400)
			continue;
		struct err re = { 0 };
		err_set(&re, rc->code < 500 ? ERR_TEMP : ERR_RCPT, SEED_PROTOCOL,
			"server refused RCPT <%s>: %s", rc->addr, rc->reply);
		/* the transaction error may be this same refusal: once */
		if (r < 0 && strcmp(re.msg, e.msg) == 0)
			continue;
		report(rep, &re);
	}
	if (r < 0)
		report(rep, &e);
	if (rep->worst != ERR_OK && o->queue_dir && !o->verify_only)
		queue_on_failure(o, env, m, res->delivered, rep);
	return r < 0 || rep->n ? -1 : 0;
}

int submit_prepared(struct props *p, const struct submit_opts *o, struct envelope *env,
		    struct message *m, struct submit_report *rep)
{
	struct deliver_result res;
	struct err e = { 0 };

	int b = submit_begin(p, o, env, m, rep);
	if (b <= 0)
		return b;
	int r = o->verify_only ? deliver_verify(p, env, &res, &e)
		: o->channel   ? deliver_send(o->channel, p, m, env, &res, &e)
			       : deliver_message(p, m, env, &res, &e);
	return submit_end(o, env, m, r, &res, &e, rep);
}

int submit_from_props(struct props *p, const struct submit_opts *o, struct submit_report *rep)
{
	struct envelope env = { 0 };
	struct message m;
	struct err e = { 0 };
	int ret = -1;

	message_init(&m);

	/* Recipients: SendTo (positional and --to), Cc, BCc. */
	if (add_recipients(&env, &p->send_to, RCPT_TO, &e) < 0 ||
	    add_recipients(&env, &p->cc, RCPT_CC, &e) < 0 ||
	    add_recipients(&env, &p->bcc, RCPT_BCC, &e) < 0)
		goto fail;
	if (!o->read_recipients && env.nrcpt == 0) {
		err_set(&e, ERR_USAGE, SEED_NO_RCPT,
			"no recipient given: name one as an argument or with --to, or use -t");
		goto fail;
	}

	/* The envelope sender: ReturnPath, else From. */
	if (*p->return_path) {
		if (sender_from(p->return_path, &env, &e) < 0)
			goto fail;
	} else if (*p->from) {
		if (sender_from(p->from, &env, &e) < 0)
			goto fail;
	}

	if (o->verify_only) {
		/* -bv asks about recipients: there is no message to read */
	} else if (compose_mode(p)) {
		if (!*p->from) {
			err_set(&e, ERR_USAGE, SEED_NO_FROM, "no sender: give --from (or from in the rc file)");
			goto fail;
		}
		if (compose_to_spool(p, &p->send_to, &m, &e) < 0)
			goto fail;
	} else if (compose_only_flags(o, &e) < 0 || read_raw(p, &m, &e) < 0) {
		goto fail;
	}

	if (o->read_recipients) {
		/* -t: the header's recipients, added to those of the command
		 * line (Postfix semantics). */
		struct hdr_rcpts hr = HDR_RCPTS_INIT;
		if (header_recipients(&m, &hr, &e) < 0) {
			hdr_rcpts_free(&hr);
			goto fail;
		}
		for (size_t i = 0; i < hr.n; i++) {
			envelope_add(&env, hr.v[i].addr, hr.v[i].kind, hr.v[i].smtputf8);
			hr.v[i].addr = NULL;
		}
		hdr_rcpts_free(&hr);
		if (env.nrcpt == 0) {
			err_set(&e, ERR_DATA, SEED_NO_RCPT,
				"-t: the message names no recipient in To, Cc or Bcc, and none was given");
			goto fail;
		}
	}
	size_t nto = 0;
	for (size_t i = 0; i < env.nrcpt; i++)
		nto += env.rcpt[i].kind == RCPT_TO;
	if (nto == 0 && !p->allow_empty_to && !o->read_recipients) {
		err_set(&e, ERR_USAGE, SEED_NO_RCPT,
			"no To recipient: name one as an argument or with --to "
			"(or set AllowEmptyTo for only --cc/--bcc)");
		goto fail;
	}
	if (submit_finish_envelope(p, &env, &m, &e) < 0)
		goto fail;
	if (!o->verify_only && !compose_mode(p) && submit_complete_raw(p, &env, &m, &e) < 0)
		goto fail;
	/* Composed headers keep addresses as the user wrote them: UTF-8 there
	 * is RFC 6532 and needs SMTPUTF8 end to end. */
	if (compose_mode(p) && headers_8bit(&m))
		env.smtputf8 = true;

	ret = submit_prepared(p, o, &env, &m, rep);
	goto out;
fail:
	report(rep, &e);
out:
	message_free(&m);
	envelope_free(&env);
	return ret;
}

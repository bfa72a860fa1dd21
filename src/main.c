/* main.c - the only exit(): command line -> rc files -> properties ->
 * compose or read the message -> deliver -> exit status.
 *
 * This is also the only place where an error class becomes an exit
 * status (sysexits) and where errors are printed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <idn2.h>
#include <popt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "cli.h"
#include "compose.h"
#include "deliver.h"
#include "dotstuff.h"
#include "err.h"
#include "log.h"
#include "message.h"
#include "props.h"
#include "rcfile.h"
#include "spool.h"
#include "util.h"

static int exit_status(enum err_class cls)
{
	switch (cls) {
	case ERR_OK: return EX_OK;
	case ERR_USAGE: return EX_USAGE;
	case ERR_DATA: return EX_DATAERR;
	case ERR_NOINPUT: return EX_NOINPUT;
	case ERR_RCPT: return EX_NOUSER;
	case ERR_NOHOST: return EX_NOHOST;
	case ERR_UNAVAILABLE: return EX_UNAVAILABLE;
	case ERR_INTERNAL: return EX_SOFTWARE;
	case ERR_OS: return EX_OSERR;
	case ERR_CANTCREAT: return EX_CANTCREAT;
	case ERR_IO: return EX_IOERR;
	case ERR_TEMP: return EX_TEMPFAIL;
	case ERR_PROTOCOL: return EX_PROTOCOL;
	case ERR_AUTH: return EX_NOPERM;
	case ERR_CONFIG: return EX_CONFIG;
	}
	return EX_SOFTWARE;
}

static void print_error(const struct err *e)
{
	if (e->code)
		fprintf(stderr, "smtpsend: error %d: %s\n", e->code, e->msg);
	else
		fprintf(stderr, "smtpsend: error: %s\n", e->msg);
}

static int fail(const struct err *e)
{
	print_error(e);
	return exit_status(e->cls);
}

/* SIGINT/SIGTERM (the reference's Interrupt, error 301): the caller still
 * has the message unless the final dot went out, so stop at once. */
static void on_signal(int sig)
{
	static const char not_sent[] = "smtpsend: error 301: interrupted; the message was not sent\n";
	static const char maybe[] = "smtpsend: error 301: interrupted after the message was sent "
				    "and before the server confirmed it: it may have been delivered\n";
	(void)sig;
	switch (deliver_progress) {
	case DELIVER_CONFIRMED:
		_exit(EX_OK); /* the server has the message; only QUIT was left */
	case DELIVER_UNCONFIRMED:
		(void)!write(2, maybe, sizeof maybe - 1);
		break;
	default:
		(void)!write(2, not_sent, sizeof not_sent - 1);
	}
	_exit(EX_TEMPFAIL);
}

static void print_version(void)
{
	printf("smtpsend %s\n", PACKAGE_VERSION);
	printf("features: smtp esmtp pipelining 8bitmime size smtputf8-envelope idn rc-accounts\n");
	printf("libraries: GnuTLS %s, libidn2 %s\n", gnutls_check_version(NULL),
	       idn2_check_version(NULL));
	printf("system rc file: %s\n", rcfile_system_path());
}

/* ---- rc files and the command line, layered ---- */

struct apply_ctx {
	struct props *p;
};

static int apply_rc_setting(void *ctx, const char *key, const char *value, const char *path,
			    int line, struct err *e)
{
	struct apply_ctx *a = ctx;
	/* An account's "from" is the sender address, unless it is a pattern
	 * ("*@example.org") that only chooses the account. */
	if (ascii_casecmp(key, "from") == 0 && strpbrk(value, "*?["))
		return 0;
	if (props_set(a->p, key, value, e) < 0) {
		char msg[sizeof e->msg];
		snprintf(msg, sizeof msg, "%.200s:%d: %.800s", path, line, e->msg);
		err_set(e, ERR_CONFIG, 0, "%s", msg);
		return -1;
	}
	return 0;
}

/* Apply one rc file (defaults + chosen account).  *found_account is set
 * when the named account exists in this file. */
static int apply_rc_file(const char *path, bool must_exist, const char *account,
			 const char *envelope_from, struct props *p, bool *found_account,
			 struct err *e)
{
	struct rcfile rc;
	const struct rc_account *acc;
	struct apply_ctx ctx = { p };
	int ret = 0;

	if (rcfile_load(path, &rc, e) < 0) {
		if (e->cls == ERR_NOINPUT && !must_exist) {
			err_clear(e);
			return 0;
		}
		if (e->cls == ERR_NOINPUT)
			e->cls = ERR_CONFIG;
		return -1;
	}
	if (account && !rcfile_find(&rc, account)) {
		/* the account may live in the other file */
		ret = rcfile_apply(&rc, &rc.acc[0], apply_rc_setting, &ctx, e);
	} else {
		if (account)
			*found_account = true;
		ret = rcfile_choose(&rc, account, envelope_from, &acc, e);
		if (ret == 0)
			ret = rcfile_apply(&rc, acc, apply_rc_setting, &ctx, e);
	}
	rcfile_free(&rc);
	return ret;
}

/* The bare address in a -f/--from value ("Name <a@b>" -> "a@b"), for
 * choosing the account; NULL when there is none. */
static char *bare_address(const char *text)
{
	struct addr a;
	struct err ignored;
	char *out = NULL;
	if (!text || addr_parse_one(text, ADDR_ALLOW_LOCAL, &a, &ignored) < 0)
		return NULL;
	out = a.domain ? xasprintf("%s@%s", a.local, a.domain) : xstrdup(a.local);
	addr_free(&a);
	return out;
}

static int load_settings(const struct cli *c, struct props *p, struct err *e)
{
	const char *given = cli_get(c, "ReturnPath");
	bool found = false;
	char *user_rc = NULL;
	int ret = 0;

	if (!given)
		given = cli_get(c, "From");
	char *from = bare_address(given);
	if (c->config_file) {
		ret = apply_rc_file(c->config_file, true, c->account, from, p, &found, e);
	} else {
		ret = apply_rc_file(rcfile_system_path(), false, c->account, from, p, &found, e);
		user_rc = rcfile_user_path();
		if (ret == 0 && user_rc)
			ret = apply_rc_file(user_rc, false, c->account, from, p, &found, e);
	}
	free(user_rc);
	free(from);
	if (ret == 0 && c->account && !found) {
		err_set(e, ERR_CONFIG, 0, "no account \"%s\" in %s", c->account,
			c->config_file ? c->config_file : "the rc files");
		ret = -1;
	}
	for (size_t i = 0; ret == 0 && i < c->keys.n; i++) {
		if (props_set(p, c->keys.v[i], c->values.v[i], e) < 0) {
			/* a bad value on the command line is a usage error */
			if (e->cls == ERR_CONFIG)
				e->cls = ERR_USAGE;
			ret = -1;
		}
	}
	return ret;
}

/* ---- the envelope ---- */

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
			bool dup = false;
			for (size_t j = 0; j < env->nrcpt && !dup; j++)
				dup = ascii_casecmp(env->rcpt[j].addr, a) == 0;
			if (dup) {
				free(a); /* each address gets one RCPT */
				continue;
			}
			env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
			memset(&env->rcpt[env->nrcpt], 0, sizeof *env->rcpt);
			env->rcpt[env->nrcpt].addr = a;
			env->rcpt[env->nrcpt].kind = kind;
			env->nrcpt++;
			env->smtputf8 |= utf8;
		}
		addr_list_free(&al);
	}
	return 0;
}

static void envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].reply);
	}
	free(env->rcpt);
	free(env->from);
	memset(env, 0, sizeof *env);
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

/* ---- the message ---- */

static bool compose_mode(const struct props *p)
{
	return *p->subject || *p->message_text || *p->body_file;
}

/* Header flags shape a composed message; a raw message is sent as the
 * caller wrote it, so silently dropping them would surprise. */
static int compose_only_flags(const struct props *p, struct err *e)
{
	const char *flag = NULL;
	if (p->other_headers.n)
		flag = "--header";
	else if (*p->reply_to)
		flag = "--reply-to";
	else if (*p->read_receipt_to)
		flag = "--read-receipt-to";
	else if (*p->delivery_notification_to)
		flag = "--delivery-notification-to";
	else if (p->importance)
		flag = "--importance";
	else if (p->priority)
		flag = "--priority";
	else if (p->sensitivity)
		flag = "--sensitivity";
	if (!flag)
		return 0;
	err_set(e, ERR_USAGE, 0,
		"%s applies when composing (--subject, --body or --body-file); a message read "
		"from standard input is sent as it is", flag);
	return -1;
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
		static const char empty[1];
		size_t n = strlen(p->message_text);
		body = fmemopen(n ? p->message_text : (char *)empty, n ? n : 1, "rb");
		if (body && !n)
			fseeko(body, 0, SEEK_END);
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
	out = tmpfile();
	if (!out) {
		err_set(e, ERR_CANTCREAT, 0, "cannot create a temporary file: %s", strerror(errno));
		goto done;
	}
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

static int read_raw(const struct props *p, struct message *m, struct err *e)
{
	int fd = 0;
	struct spool_opts so = { .ignore_dots = p->ignore_dots };

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
	return r;
}

/* A raw message gets what it lacks: Date, Message-ID, From; its Bcc and
 * Resent-Bcc fields are never transmitted. */
static int complete_raw(const struct props *p, const struct envelope *env, struct message *m,
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
		sb_adds(&m->prefix, "From: ");
		if (*p->full_name) {
			sb_adds(&m->prefix, "\"");
			for (const char *s = p->full_name; *s; s++) {
				if (*s == '"' || *s == '\\')
					sb_addc(&m->prefix, '\\');
				sb_addc(&m->prefix, *s);
			}
			sb_adds(&m->prefix, "\" <");
			addr_append_spec(&m->prefix, &a);
			sb_adds(&m->prefix, ">");
		} else {
			addr_append_spec(&m->prefix, &a);
		}
		sb_adds(&m->prefix, "\r\n");
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

/* ---- the run ---- */

static int check_policy(const struct props *p, struct err *e)
{
	/* Never send unauthenticated when the user asked for authentication. */
	if (*p->user || *p->password || *p->password_command ||
	    (ascii_casecmp(p->auth_mechanism, "auto") != 0 &&
	     ascii_casecmp(p->auth_mechanism, "none") != 0)) {
		err_set(e, ERR_CONFIG, 0,
			"authentication (user, password, auth) is not available in this version of "
			"smtpsend; remove those settings to send without it");
		return -1;
	}
	return 0;
}

static int run(struct props *p, bool print_only, struct err *e)
{
	struct envelope env = { 0 };
	struct message m;
	struct deliver_result res;
	int status = EX_OK;
	struct err worst = { 0 };

	message_init(&m);

	/* Recipients: SendTo (positional and --to), Cc, BCc. */
	if (add_recipients(&env, &p->send_to, RCPT_TO, e) < 0 ||
	    add_recipients(&env, &p->cc, RCPT_CC, e) < 0 ||
	    add_recipients(&env, &p->bcc, RCPT_BCC, e) < 0) {
		status = fail(e);
		goto out;
	}
	size_t nto = 0;
	for (size_t i = 0; i < env.nrcpt; i++)
		nto += env.rcpt[i].kind == RCPT_TO;
	if (env.nrcpt == 0 || (nto == 0 && !p->allow_empty_to)) {
		err_set(e, ERR_USAGE, SEED_NO_RCPT,
			"no recipient given: name one as an argument or with --to "
			"(or set AllowEmptyTo with --cc/--bcc)");
		status = fail(e);
		goto out;
	}

	/* The envelope sender: ReturnPath, else From, else the login name. */
	if (*p->return_path) {
		if (sender_from(p->return_path, &env, e) < 0) {
			status = fail(e);
			goto out;
		}
	} else if (*p->from) {
		if (sender_from(p->from, &env, e) < 0) {
			status = fail(e);
			goto out;
		}
	}

	if (compose_mode(p)) {
		if (!*p->from) {
			err_set(e, ERR_USAGE, SEED_NO_FROM, "no sender: give --from (or from in the rc file)");
			status = fail(e);
			goto out;
		}
		if (compose_to_spool(p, &p->send_to, &m, e) < 0) {
			status = fail(e);
			goto out;
		}
	} else if (compose_only_flags(p, e) < 0 || read_raw(p, &m, e) < 0) {
		status = fail(e);
		goto out;
	}

	if (!env.from) {
		/* no -f/--from: the message's own From, else login@host */
		int h = spool_find_header(&m.sp, "From");
		struct addr_list al = ADDR_LIST_INIT;
		if (h >= 0 && addr_parse_list(m.sp.hdr[h].value, 0, &al, e) == 0 && al.n > 0) {
			bool utf8;
			if (addr_envelope(&al.v[0], &env.from, &utf8, e) < 0)
				env.from = NULL;
			else
				env.smtputf8 |= utf8;
		}
		addr_list_free(&al);
		err_clear(e);
		if (!env.from) {
			char *u = login_name();
			env.from = xasprintf("%s@%s", u, deliver_hello_name(p));
			free(u);
		}
	}
	if (!compose_mode(p) && complete_raw(p, &env, &m, e) < 0) {
		status = fail(e);
		goto out;
	}
	env.body_8bit = m.sp.has_8bit;
	/* Composed headers keep addresses as the user wrote them: UTF-8 there
	 * is RFC 6532 and needs SMTPUTF8 end to end. */
	if (compose_mode(p) && headers_8bit(&m))
		env.smtputf8 = true;
	env.size = message_size(&m);

	if (print_only) {
		if (print_message(&env, &m, e) < 0)
			status = fail(e);
		goto out;
	}
	if (!*p->mail_server) {
		err_set(e, ERR_CONFIG, SEED_NO_SERVER,
			"no mail server: set host in ~/.smtpsendrc or give --host");
		status = fail(e);
		goto out;
	}
	if (check_policy(p, e) < 0) {
		status = fail(e);
		goto out;
	}

	int r = deliver_message(p, &m, &env, &res, e);

	/* Report every refused recipient, then the transaction's error; exit
	 * with the most serious status of them all. */
	for (size_t i = 0; i < env.nrcpt; i++) {
		const struct rcpt *rc = &env.rcpt[i];
		if (rc->code < 400)
			continue;
		struct err re = { 0 };
		err_set(&re, rc->code < 500 ? ERR_TEMP : ERR_RCPT, SEED_PROTOCOL,
			"server refused RCPT <%s>: %s", rc->addr, rc->reply);
		/* the transaction error may be this same refusal: print once */
		if (r < 0 && strcmp(re.msg, e->msg) == 0)
			continue;
		print_error(&re);
		if (err_severity(re.cls) > err_severity(worst.cls))
			worst = re;
	}
	if (r < 0) {
		print_error(e);
		if (err_severity(e->cls) >= err_severity(worst.cls))
			worst = *e;
	}
	status = exit_status(worst.cls);
out:
	message_free(&m);
	envelope_free(&env);
	return status;
}

int main(int argc, char **argv)
{
	struct cli c;
	struct props p;
	struct err e = { 0 };
	int status;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	log_setup(false, true, stderr);

	if (cli_parse(argc, (const char **)argv, &c, &e) < 0)
		return fail(&e);
	if (c.help) {
		cli_usage(stdout);
		cli_free(&c);
		return EX_OK;
	}
	if (c.version) {
		print_version();
		cli_free(&c);
		return EX_OK;
	}
	if (c.list_settings) {
		props_list(stdout);
		cli_free(&c);
		return EX_OK;
	}

	props_init(&p);
	/* Positional recipients are SendTo, after any --to. */
	for (size_t i = 0; i < c.recipients.n; i++) {
		sl_add(&c.keys, "SendTo");
		sl_add(&c.values, c.recipients.v[i]);
	}
	if (load_settings(&c, &p, &e) < 0) {
		status = fail(&e);
		goto out;
	}
	if (c.queries.n) {
		struct strbuf sb = STRBUF_INIT;
		status = EX_OK;
		for (size_t i = 0; i < c.queries.n; i++) {
			if (props_get(&p, c.queries.v[i], &sb, &e) < 0) {
				status = fail(&e);
				break;
			}
			printf("%s\n", sb.s);
		}
		sb_free(&sb);
		goto out;
	}
	log_setup(p.trace, p.mask_sensitive_data, stderr);
	if (c.serverinfo) {
		if (!*p.mail_server) {
			err_set(&e, ERR_CONFIG, SEED_NO_SERVER, "no mail server: give --host");
			status = fail(&e);
		} else {
			status = deliver_serverinfo(&p, stdout, &e) < 0 ? fail(&e) : EX_OK;
		}
		goto out;
	}
	status = run(&p, c.print, &e);
out:
	props_free(&p);
	cli_free(&c);
	return status;
}

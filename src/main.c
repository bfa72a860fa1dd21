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
#include "aliases.h"
#include "bs.h"
#include "cli.h"
#include "compose.h"
#include "deliver.h"
#include "dsn.h"
#include "dotstuff.h"
#include "err.h"
#include "log.h"
#include "message.h"
#include "props.h"
#include "queuecmd.h"
#include "rcfile.h"
#include "reply.h"
#include "settings.h"
#include "spool.h"
#include "submit.h"
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
	printf("features: esmtp pipelining size 8bitmime smtputf8 idn dsn tls(starttls,implicit,pinning,"
	       "client-certificates) sasl rc-accounts sendmail(-t,-bs,-bv,aliases)\n");
	printf("libraries: GnuTLS %s, libidn2 %s\n", gnutls_check_version(NULL),
	       idn2_check_version(NULL));
	printf("system rc file: %s\n", rcfile_system_path());
}

/* ---- modes ---- */

static int print_report(const struct submit_report *rep)
{
	for (size_t i = 0; i < rep->n; i++)
		print_error(&rep->v[i]);
	return exit_status(rep->worst);
}

/* DSN values are checked and put in the form the wire wants. */
static int normalize_dsn(struct props *p, struct err *e)
{
	if (*p->dsn_notify) {
		char *wire;
		if (dsn_notify_parse(p->dsn_notify, &wire, e) < 0)
			return -1;
		free(p->dsn_notify);
		p->dsn_notify = wire;
	}
	if (strlen(p->dsn_envid) > 100) {
		err_set(e, ERR_USAGE, 0, "-V: an envelope id has at most 100 characters (RFC 3461)");
		return -1;
	}
	if (*p->dsn_return) {
		if (ascii_casecmp(p->dsn_return, "full") != 0 && ascii_casecmp(p->dsn_return, "hdrs") != 0) {
			err_set(e, ERR_USAGE, 0, "-R %s: use full or hdrs", p->dsn_return);
			return -1;
		}
		for (char *c = p->dsn_return; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	}
	return 0;
}

static FILE *open_traffic_log(const char *path, struct err *e)
{
	/* the trace can hold addresses: readable by the user alone */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (!f) {
		err_set(e, ERR_CANTCREAT, SEED_FILE, "cannot open traffic log %s: %s", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return f;
}

/* Commands mode: every reply line on stdout, the worst answer decides
 * the status (a 5xx about an address is "no such user"). */
struct cmd_out {
	enum err_class worst;
};

static void on_command_reply(void *ctx, const char *command, const struct reply *r)
{
	struct cmd_out *o = ctx;
	size_t pos = 0, len;
	const char *l;
	char buf[1100];
	enum err_class cls = ERR_OK;

	(void)command;
	while (reply_next_line(r, &pos, &l, &len))
		printf("%03d %s\n", r->code, sanitize(buf, sizeof buf, l, len));
	if (reply_class(r) == 4)
		cls = ERR_TEMP;
	else if (r->code == 550 || r->code == 551 || r->code == 553)
		cls = ERR_RCPT;
	else if (reply_class(r) == 5)
		cls = ERR_UNAVAILABLE;
	if (err_severity(cls) > err_severity(o->worst))
		o->worst = cls;
}

static int run_commands(const struct cli *c, const struct props *p, struct err *e)
{
	struct cmd_out o = { ERR_OK };
	if (!*p->mail_server) {
		err_set(e, ERR_CONFIG, SEED_NO_SERVER, "no mail server: give --host");
		return fail(e);
	}
	if (deliver_commands(p, &c->commands, on_command_reply, &o, e) < 0)
		return fail(e);
	fflush(stdout);
	return exit_status(o.worst);
}

static int run_mode(const struct cli *c, struct props *p, struct err *e)
{
	struct submit_opts o = { .print_only = c->print, .read_recipients = c->read_recipients,
				 .queue_only = c->queue_only, .account = c->account,
				 .replay_keys = &c->keys, .replay_values = &c->values };
	struct submit_report rep = { 0 };
	char *qdir = queuecmd_dir(p);
	int status = EX_OK;

	switch (c->mode) {
	case 'p':
		/* mailq */
		if (!qdir || queuecmd_list(qdir, stdout, e) < 0)
			status = qdir ? fail(e) : EX_OK;
		if (!qdir)
			printf("Mail queue is empty\n");
		goto out;
	case 'i': {
		/* newaliases: check that the aliases file reads */
		struct aliases *al = NULL;
		if (aliases_load(p->aliases_file, &al, e) < 0 && e->cls != ERR_NOINPUT)
			status = fail(e);
		aliases_free(al);
		goto out;
	}
	case 's':
		status = bs_serve(p, &o, stdin, stdout, e) < 0 ? fail(e) : EX_OK;
		goto out;
	case 'v':
		o.verify_only = true;
		break;
	default:
		if (c->flush) {
			struct settings_layer flusher = { .config_file = c->config_file,
							  .account = c->account,
							  .keys = &c->keys, .values = &c->values };
			struct flush_counts n;
			if (p->send_to.n || p->cc.n || p->bcc.n) {
				err_set(e, ERR_USAGE, 0, "-q flushes the queue and takes no recipients");
				status = fail(e);
			} else if (qdir && queuecmd_flush(&flusher, qdir, &n, e) < 0) {
				status = fail(e);
			}
			goto out;
		}
		break;
	}
	/* --queue puts it in the queue; a configured QueueDir also catches
	 * temporary failures */
	if (c->queue_only)
		o.queue_dir = qdir;
	else if (*p->queue_dir)
		o.queue_dir = p->queue_dir;
	if (c->queue_only && !qdir) {
		err_set(e, ERR_CONFIG, 0, "no queue directory: set queue_dir or give --queue-dir");
		status = fail(e);
		goto out;
	}
	submit_from_props(p, &o, &rep);
	status = print_report(&rep);
	if (rep.queued_id) {
		if (c->queue_only) {
			if (strcmp(o.queue_dir, "-") != 0)
				printf("%s\n", rep.queued_id);
		} else {
			fprintf(stderr, "smtpsend: queued as %s after a temporary failure (%s); "
				"smtpsend -q sends it\n", rep.queued_id, rep.queued_why);
		}
	}
	if (c->mode == 'v' && status == EX_OK && !c->print)
		printf("all recipients deliverable\n");
	submit_report_free(&rep);
out:
	free(qdir);
	return status;
}

int main(int argc, char **argv)
{
	struct cli c;
	struct props p;
	struct err e = { 0 };
	FILE *traffic = NULL;
	int status;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	log_setup(false, true, stderr);

	if (cli_parse(argc, (const char **)argv, &c, &e) < 0) {
		cli_free(&c);
		return fail(&e);
	}
	/* Installed under sendmail's other names, behave as those. */
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(prog, "mailq") == 0)
		c.mode = 'p';
	else if (strcmp(prog, "newaliases") == 0)
		c.mode = 'i';
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
	/* Programs that call sendmail hand over whatever their jobs printed:
	 * as sendmail, a body that cannot go out as it is gets encoded
	 * rather than refused (the rc file may still say otherwise). */
	if (strcmp(prog, "sendmail") == 0)
		props_set(&p, "EncodeRawBody", "true", &e);
	/* Positional recipients are SendTo, after any --to. */
	for (size_t i = 0; i < c.recipients.n; i++) {
		sl_add(&c.keys, "SendTo");
		sl_add(&c.values, c.recipients.v[i]);
	}
	struct settings_layer layer = { .config_file = c.config_file, .account = c.account,
					.keys = &c.keys, .values = &c.values };
	if (settings_load(&layer, &p, &e) < 0) {
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
	if (*p.traffic_log) {
		traffic = open_traffic_log(p.traffic_log, &e);
		if (!traffic) {
			status = fail(&e);
			goto out;
		}
		log_traffic(traffic);
	}
	if (normalize_dsn(&p, &e) < 0) {
		status = fail(&e);
		goto out;
	}
	if (c.commands.n) {
		status = run_commands(&c, &p, &e);
		goto out;
	}
	if (c.serverinfo) {
		if (!*p.mail_server) {
			err_set(&e, ERR_CONFIG, SEED_NO_SERVER, "no mail server: give --host");
			status = fail(&e);
		} else {
			status = deliver_serverinfo(&p, stdout, &e) < 0 ? fail(&e) : EX_OK;
		}
		goto out;
	}
	status = run_mode(&c, &p, &e);
out:
	if (traffic)
		fclose(traffic);
	props_free(&p);
	cli_free(&c);
	return status;
}

/* cli.c - command-line flags mapped onto property names. */
#include "cli.h"

#include <popt.h>
#include <stdlib.h>
#include <string.h>

#include "props.h"

enum {
	OPT_BASE = 1000,   /* vals >= OPT_BASE index props_map[] */
	OPT_SET = 1,       /* -O Name=Value */
	OPT_CONFIG,
	OPT_ACCOUNT,
	OPT_PRINT,
	OPT_HELP,
	OPT_VERSION,
	OPT_LIST,
	OPT_SENDMAIL_O,    /* -oX sendmail option letters */
	OPT_SERVERINFO,
	OPT_READ_RCPTS,
	OPT_MODE,
	OPT_FLUSH,
	OPT_QUEUE,
	OPT_VERIFY,
	OPT_EXPAND,
	OPT_COMMAND,
	OPT_IGNORED,       /* sendmail flags without meaning for a submission client */
	OPT_IGNORED_ARG,
};

/* A flag that sets one property: (property, fixed value or NULL = the
 * flag's argument). */
struct flagmap {
	const char *prop;
	const char *fixed;
};

static const struct flagmap props_map[] = {
	{ "MailServer", NULL },          /* 0 --host */
	{ "MailPort", NULL },            /* 1 --port */
	{ "From", NULL },                /* 2 --from -f -r */
	{ "FullName", NULL },            /* 3 -F --full-name */
	{ "SendTo", NULL },              /* 4 --to */
	{ "Cc", NULL },                  /* 5 --cc */
	{ "BCc", NULL },                 /* 6 --bcc */
	{ "Subject", NULL },             /* 7 */
	{ "MessageText", NULL },         /* 8 --body */
	{ "BodyFile", NULL },            /* 9 --body-file */
	{ "OtherHeaders", NULL },        /* 10 --header */
	{ "Importance", NULL },          /* 11 */
	{ "Priority", NULL },            /* 12 */
	{ "Sensitivity", NULL },         /* 13 */
	{ "ReplyTo", NULL },             /* 14 */
	{ "ReadReceiptTo", NULL },       /* 15 */
	{ "DeliveryNotificationTo", NULL }, /* 16 */
	{ "ReturnPath", NULL },          /* 17 */
	{ "MessageDate", NULL },         /* 18 --date */
	{ "MessageId", NULL },           /* 19 --message-id */
	{ "Hello", NULL },               /* 20 */
	{ "Timeout", NULL },             /* 21 */
	{ "ConnectionTimeout", NULL },   /* 22 --connect-timeout */
	{ "AllowExtensions", "false" },  /* 23 --no-esmtp */
	{ "Trace", "true" },             /* 24 -v --trace */
	{ "LocalHost", NULL },           /* 25 --source-ip */
	{ "SSLStartMode", NULL },        /* 26 --tls */
	{ "Message", NULL },             /* 27 --message */
	{ "IgnoreDots", "true" },        /* 28 -i */
	{ "User", NULL },                /* 29 --user */
	{ "AuthMechanism", NULL },       /* 30 --auth */
	{ "PasswordCommand", NULL },     /* 31 --password-command */
	{ "LocalPort", NULL },           /* 32 --source-port */
	{ "SSLCACertFilePaths", NULL },  /* 33 --tls-ca-file */
	{ "SSLAcceptServerCert", NULL }, /* 34 --tls-fingerprint */
	{ "SSLCert", NULL },             /* 35 --tls-cert */
	{ "SSLCertKey", NULL },          /* 36 --tls-key */
	{ "SSLEnabledProtocols", NULL }, /* 37 --tls-protocols */
	{ "SSLEnabledCipherSuites", NULL }, /* 38 --tls-priority */
	{ "TLSHostOverride", NULL },     /* 39 --tls-host-override */
	{ "DsnNotify", NULL },           /* 40 -N --dsn-notify */
	{ "DsnReturn", NULL },           /* 41 -R --dsn-return */
	{ "DsnEnvid", NULL },            /* 42 -V --dsn-envid */
	{ "BodyType", NULL },            /* 43 -B */
	{ "TrafficLog", NULL },          /* 44 -X */
	{ "QueueDir", NULL },            /* 45 --queue-dir */
	{ "Firewall", NULL },            /* 46 --proxy */
	{ "UseIPv6", "0" },              /* 47 --ipv4 */
	{ "UseIPv6", "1" },              /* 48 --ipv6 */
	{ "MaxTransferRate", NULL },     /* 49 --max-rate */
	{ "SendToTerminal", NULL },      /* 50 --terminal */
	{ "Protocol", "lmtp" },          /* 51 --lmtp */
	{ "RecipientOptions", NULL },    /* 52 --recipient-options */
	{ "UseChunking", "false" },      /* 53 --no-chunking */
};

#define M(i) (OPT_BASE + (i))

static const struct poptOption table[] = {
	{ "host", 0, POPT_ARG_STRING, NULL, M(0), "mail server (MailServer)", "HOST" },
	{ "port", 0, POPT_ARG_STRING, NULL, M(1), "server port (MailPort, default 25)", "PORT" },
	{ "from", 'f', POPT_ARG_STRING, NULL, M(2), "sender address (From; envelope sender too)", "ADDR" },
	{ NULL, 'r', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN, NULL, M(2), "same as -f", "ADDR" },
	{ "full-name", 'F', POPT_ARG_STRING, NULL, M(3), "sender's full name for the From header", "NAME" },
	{ "to", 0, POPT_ARG_STRING, NULL, M(4), "To recipient(s), comma separated, repeatable (SendTo)", "ADDRS" },
	{ "cc", 0, POPT_ARG_STRING, NULL, M(5), "Cc recipient(s), repeatable", "ADDRS" },
	{ "bcc", 0, POPT_ARG_STRING, NULL, M(6), "Bcc recipient(s): envelope only, never a header", "ADDRS" },
	{ "subject", 0, POPT_ARG_STRING, NULL, M(7), "compose a message with this Subject", "TEXT" },
	{ "body", 0, POPT_ARG_STRING, NULL, M(8), "compose a message with this body (MessageText)", "TEXT" },
	{ "body-file", 0, POPT_ARG_STRING, NULL, M(9), "compose a message with the body read from FILE", "FILE" },
	{ "message", 0, POPT_ARG_STRING, NULL, M(27), "read the raw message from FILE instead of stdin", "FILE" },
	{ "header", 0, POPT_ARG_STRING, NULL, M(10), "extra header 'Name: value', repeatable (OtherHeaders)", "HEADER" },
	{ "importance", 0, POPT_ARG_STRING, NULL, M(11), "high, normal or low", "LEVEL" },
	{ "priority", 0, POPT_ARG_STRING, NULL, M(12), "normal, urgent or non-urgent", "LEVEL" },
	{ "sensitivity", 0, POPT_ARG_STRING, NULL, M(13), "personal, private or company-confidential", "LEVEL" },
	{ "reply-to", 0, POPT_ARG_STRING, NULL, M(14), "Reply-To header", "ADDR" },
	{ "read-receipt-to", 0, POPT_ARG_STRING, NULL, M(15), "Disposition-Notification-To header", "ADDR" },
	{ "delivery-notification-to", 0, POPT_ARG_STRING, NULL, M(16), "Return-Receipt-To header", "ADDR" },
	{ "return-path", 0, POPT_ARG_STRING, NULL, M(17), "envelope sender (MAIL FROM) if not From", "ADDR" },
	{ "date", 0, POPT_ARG_STRING, NULL, M(18), "Date header; * = now (default), empty = none", "DATE" },
	{ "message-id", 0, POPT_ARG_STRING, NULL, M(19), "Message-ID; * = generate (default), empty = none", "ID" },
	{ "hello", 0, POPT_ARG_STRING, NULL, M(20), "name sent with EHLO/HELO (default: this host)", "NAME" },
	{ "timeout", 0, POPT_ARG_STRING, NULL, M(21), "inactivity timeout in seconds (default 60)", "SECONDS" },
	{ "connect-timeout", 0, POPT_ARG_STRING, NULL, M(22), "timeout for connecting (default: --timeout)", "SECONDS" },
	{ "no-esmtp", 0, POPT_ARG_NONE, NULL, M(23), "send HELO, never EHLO (AllowExtensions=false)", NULL },
	{ "source-ip", 0, POPT_ARG_STRING, NULL, M(25), "connect from this local address (LocalHost)", "ADDR" },
	{ "source-port", 0, POPT_ARG_STRING, NULL, M(32), "connect from this local port (LocalPort)", "PORT" },
	{ "proxy", 0, POPT_ARG_STRING, NULL, M(46), "connect through this proxy: socks4://, socks4a://, socks5://, socks5h:// or http://[USER@]HOST[:PORT] (Firewall)", "URL" },
	{ "ipv4", '4', POPT_ARG_NONE, NULL, M(47), "connect over IPv4 only (UseIPv6=0)", NULL },
	{ "ipv6", '6', POPT_ARG_NONE, NULL, M(48), "connect over IPv6 only (UseIPv6=1)", NULL },
	{ "max-rate", 0, POPT_ARG_STRING, NULL, M(49), "send at most this many bytes per second (MaxTransferRate)", "BYTES" },
	{ "tls", 0, POPT_ARG_STRING, NULL, M(26), "auto, starttls, implicit or off (SSLStartMode)", "MODE" },
	{ "tls-ca-file", 0, POPT_ARG_STRING, NULL, M(33), "trust these CA certificates instead of the system store", "FILE" },
	{ "tls-fingerprint", 0, POPT_ARG_STRING, NULL, M(34), "accept exactly the certificate with this fingerprint", "SHA256:HEX" },
	{ "tls-cert", 0, POPT_ARG_STRING, NULL, M(35), "client certificate (PEM, or PKCS#12 .p12/.pfx)", "FILE" },
	{ "tls-key", 0, POPT_ARG_STRING, NULL, M(36), "key of the client certificate (PEM, mode 0600)", "FILE" },
	{ "tls-protocols", 0, POPT_ARG_STRING, NULL, M(37), "TLS versions, e.g. TLS1.2,TLS1.3 (default TLS 1.2 and up)", "LIST" },
	{ "tls-priority", 0, POPT_ARG_STRING, NULL, M(38), "a GnuTLS priority string", "STRING" },
	{ "tls-host-override", 0, POPT_ARG_STRING, NULL, M(39), "verify the certificate for this name (when --host is an address)", "NAME" },
	{ "serverinfo", 0, POPT_ARG_NONE, NULL, OPT_SERVERINFO, "show the server's greeting, capabilities and certificate; send nothing", NULL },
	{ "verify", 0, POPT_ARG_STRING, NULL, OPT_VERIFY, "ask the server about an address (VRFY); repeatable; sends no mail", "ADDR" },
	{ "expand", 0, POPT_ARG_STRING, NULL, OPT_EXPAND, "ask the server to expand a mailing list (EXPN); repeatable", "LIST" },
	{ "command", 0, POPT_ARG_STRING, NULL, OPT_COMMAND, "send this SMTP command after EHLO/TLS/AUTH and show the reply; repeatable", "CMD" },
	{ "user", 0, POPT_ARG_STRING, NULL, M(29), "user name for authentication", "USER" },
	{ "auth", 0, POPT_ARG_STRING, NULL, M(30), "authentication mechanism (auto, none, ...)", "MECH" },
	{ "password-command", 0, POPT_ARG_STRING, NULL, M(31), "command whose first output line is the password", "CMD" },
	{ NULL, 'i', POPT_ARG_NONE, NULL, M(28), "a line with a single dot does not end the message", NULL },
	{ "trace", 'v', POPT_ARG_NONE, NULL, M(24), "show the SMTP dialogue on stderr (secrets masked)", NULL },
	{ "set", 'O', POPT_ARG_STRING, NULL, OPT_SET, "set a setting by its name; -O Name alone prints it", "NAME=VALUE" },
	{ NULL, 'o', POPT_ARG_STRING, NULL, OPT_SENDMAIL_O, "sendmail option: -oi is -i; others are accepted and ignored", "X" },
	{ "config", 'C', POPT_ARG_STRING, NULL, OPT_CONFIG, "read only this rc file (not /etc/smtpsendrc, not ~/.smtpsendrc)", "FILE" },
	{ "account", 'a', POPT_ARG_STRING, NULL, OPT_ACCOUNT, "use this account of the rc file", "NAME" },
	{ "print", 0, POPT_ARG_NONE, NULL, OPT_PRINT, "show the envelope and the exact message, send nothing", NULL },
	{ "list-settings", 0, POPT_ARG_NONE, NULL, OPT_LIST, "list every setting with its type and default", NULL },
	{ "version", 0, POPT_ARG_NONE, NULL, OPT_VERSION, "show version and compiled-in features", NULL },
	{ "help", '?', POPT_ARG_NONE, NULL, OPT_HELP, "show this help", NULL },

	/* sendmail's interface (Postfix's sendmail(1) is the reference) */
	{ "read-recipients", 't', POPT_ARG_NONE, NULL, OPT_READ_RCPTS, "take recipients from To/Cc/Bcc (or the newest Resent-*) of the message", NULL },
	{ NULL, 'b', POPT_ARG_STRING, NULL, OPT_MODE, "mode: -bm send (default), -bp list queue, -bs SMTP on stdin/stdout, -bv verify recipients, -bi check aliases", "MODE" },
	{ "flush", 'q', POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL, NULL, OPT_FLUSH, "send what the queue holds (an interval after -q is ignored)", "INTERVAL" },
	{ "queue", 0, POPT_ARG_NONE, NULL, OPT_QUEUE, "put the message in the queue instead of sending it (as -odq)", NULL },
	{ "queue-dir", 0, POPT_ARG_STRING, NULL, M(45), "the queue directory (QueueDir; - writes the entry to stdout); setting it also queues on temporary failure", "DIR" },
	{ "dsn-notify", 'N', POPT_ARG_STRING, NULL, M(40), "delivery status notification: never, or success,failure,delay", "WHEN" },
	{ "dsn-return", 'R', POPT_ARG_STRING, NULL, M(41), "what a DSN returns: full or hdrs", "WHAT" },
	{ "recipient-options", 0, POPT_ARG_STRING, NULL, M(52), "DSN options for one recipient: 'ADDR:NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ADDR' (repeatable)", "ADDR:OPTIONS" },
	{ "terminal", 0, POPT_ARG_STRING, NULL, M(50), "deliver to the user's terminal: and (SAML), only (SEND) or or (SOML), RFC 821", "HOW" },
	{ "lmtp", 0, POPT_ARG_NONE, NULL, M(51), "speak LMTP (RFC 2033) to a local delivery agent (Protocol=lmtp; port 24)", NULL },
	{ "no-chunking", 0, POPT_ARG_NONE, NULL, M(53), "send with DATA even when the server offers CHUNKING (UseChunking=false)", NULL },
	{ "dsn-envid", 'V', POPT_ARG_STRING, NULL, M(42), "envelope id for DSNs (ENVID)", "ID" },
	{ NULL, 'B', POPT_ARG_STRING, NULL, M(43), "body type: 7BIT or 8BITMIME", "TYPE" },
	{ "traffic-log", 'X', POPT_ARG_STRING, NULL, M(44), "append the SMTP dialogue to FILE (secrets masked)", "FILE" },
	{ NULL, 'L', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED_ARG, "syslog tag: ignored", "TAG" },
	{ NULL, 'h', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED_ARG, "hop count: ignored", "N" },
	{ NULL, 'A', POPT_ARG_STRING | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED_ARG, "submit file choice: ignored", "X" },
	{ NULL, 'G', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED, "gateway submission: ignored", NULL },
	{ NULL, 'U', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED, "initial user submission: ignored", NULL },
	{ NULL, 'n', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED, "no aliasing: ignored", NULL },
	{ NULL, 'm', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_IGNORED, "me too: ignored", NULL },
	POPT_TABLEEND
};

static void add(struct cli *c, const char *key, const char *value)
{
	sl_add(&c->keys, key);
	sl_add(&c->values, value);
}

/* A proxy URL with "user:password@" carries a secret; on the command
 * line every user of the machine could read it in the process list. */
static bool proxy_url_has_password(const char *name, const char *url)
{
	if (ascii_casecmp(name, "Firewall") != 0 && ascii_casecmp(name, "proxy") != 0)
		return false;
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	const char *at = strchr(p, '@');
	const char *colon = strchr(p, ':');
	return at && colon && colon < at;
}

int cli_parse(int argc, const char **argv, struct cli *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	c->mode = 'm';
	poptContext pc = poptGetContext("smtpsend", argc, argv, table, 0);
	int rc, ret = 0;

	while ((rc = poptGetNextOpt(pc)) > 0) {
		char *arg = poptGetOptArg(pc);
		if (rc >= OPT_BASE) {
			const struct flagmap *m = &props_map[rc - OPT_BASE];
			const char *v = m->fixed ? m->fixed : (arg ? arg : "");
			if (proxy_url_has_password(m->prop, v)) {
				err_set(e, ERR_USAGE, 0,
					"the proxy password must not be given on the command line (other users "
					"can read it in the process list); put it in the rc file (proxy_password)");
				free(arg);
				ret = -1;
				break;
			}
			add(c, m->prop, v);
		} else if (rc == OPT_SET) {
			char *eq = strchr(arg, '=');
			if (!eq) {
				sl_add(&c->queries, arg);
			} else {
				*eq = '\0';
				if (props_is_secret(arg) || proxy_url_has_password(arg, eq + 1)) {
					err_set(e, ERR_USAGE, 0,
						"%s must not be given on the command line (other users can read it "
						"in the process list); put it in the rc file or use password_command",
						arg);
					free(arg);
					ret = -1;
					break;
				}
				add(c, arg, eq + 1);
			}
		} else if (rc == OPT_SENDMAIL_O) {
			/* -oi (and -oi written -o i) is "ignore dots"; -odq asks to
			 * queue; the other sendmail -o options (-oem, -oep, -odi,
			 * -odb, ...) have no meaning for a submission client and
			 * are accepted so callers keep working. */
			if (strcmp(arg, "i") == 0)
				add(c, "IgnoreDots", "true");
			else if (strcmp(arg, "dq") == 0)
				c->queue_only = true;
		} else if (rc == OPT_CONFIG) {
			free(c->config_file);
			c->config_file = xstrdup(arg);
		} else if (rc == OPT_ACCOUNT) {
			free(c->account);
			c->account = xstrdup(arg);
		} else if (rc == OPT_PRINT) {
			c->print = true;
		} else if (rc == OPT_HELP) {
			c->help = true;
		} else if (rc == OPT_VERSION) {
			c->version = true;
		} else if (rc == OPT_LIST) {
			c->list_settings = true;
		} else if (rc == OPT_SERVERINFO) {
			c->serverinfo = true;
		} else if (rc == OPT_READ_RCPTS) {
			c->read_recipients = true;
		} else if (rc == OPT_FLUSH) {
			c->flush = true;
			/* -q1h is an interval; "-q a@b" would make popt take the
			 * address as one: keep it a recipient, refused later */
			if (arg && arg[strspn(arg, "0123456789smhdw")] != '\0')
				sl_add(&c->recipients, arg);
		} else if (rc == OPT_VERIFY || rc == OPT_EXPAND || rc == OPT_COMMAND) {
			if (strpbrk(arg, "\r\n") || !*arg) {
				err_set(e, ERR_DATA, 0, "an SMTP command must be one non-empty line");
				free(arg);
				ret = -1;
				break;
			}
			sl_add_owned(&c->commands, rc == OPT_VERIFY   ? xasprintf("VRFY %s", arg)
						   : rc == OPT_EXPAND ? xasprintf("EXPN %s", arg)
								      : xstrdup(arg));
		} else if (rc == OPT_QUEUE) {
			c->queue_only = true;
		} else if (rc == OPT_MODE) {
			/* -bm is the default; -bp mailq; -bs SMTP on stdio; -bv
			 * verify; -bi newaliases.  Daemon and test modes do not
			 * exist in a submission client. */
			if (!arg || strlen(arg) != 1 || !strchr("mpsvi", arg[0])) {
				err_set(e, ERR_USAGE, 0,
					"-b%s: not supported (smtpsend knows -bm, -bp, -bs, -bv, -bi)",
					arg ? arg : "");
				free(arg);
				ret = -1;
				break;
			}
			c->mode = arg[0];
		} else if (rc == OPT_IGNORED || rc == OPT_IGNORED_ARG) {
			/* accepted so that callers keep working; see the man page */
		}
		free(arg);
	}
	if (ret == 0 && rc < -1) {
		err_set(e, ERR_USAGE, 0, "%s: %s (see smtpsend --help)",
			poptBadOption(pc, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
		ret = -1;
	}
	if (ret == 0) {
		const char *a;
		while ((a = poptGetArg(pc)) != NULL)
			sl_add(&c->recipients, a);
	}
	poptFreeContext(pc);
	return ret;
}

void cli_free(struct cli *c)
{
	sl_free(&c->keys);
	sl_free(&c->values);
	sl_free(&c->recipients);
	sl_free(&c->queries);
	sl_free(&c->commands);
	free(c->config_file);
	free(c->account);
	memset(c, 0, sizeof *c);
}

const char *cli_get(const struct cli *c, const char *name)
{
	for (size_t i = c->keys.n; i-- > 0;)
		if (ascii_casecmp(c->keys.v[i], name) == 0)
			return c->values.v[i];
	return NULL;
}

void cli_usage(FILE *out)
{
	const char *argv[] = { "smtpsend", NULL };
	poptContext pc = poptGetContext("smtpsend", 1, argv, table, 0);
	poptSetOtherOptionHelp(pc, "[OPTION...] [--] [RECIPIENT...]  < message");
	poptPrintHelp(pc, out, 0);
	poptFreeContext(pc);
}

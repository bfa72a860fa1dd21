/* props.h - the property set: every property and config setting of the
 * SMTP component reference that applies to a command-line tool.
 *
 * Every way of setting a property (the rc files, -O Name=Value, the
 * dedicated command-line flags) goes through props_set(), which finds the
 * property by its reference name or its rc name (case-insensitively),
 * checks the value against the property's type and stores it.  Layers are
 * applied in order, system rc < user rc < account < command line; each
 * layer only carries what it set, so a later layer overrides exactly the
 * properties it names. */
#ifndef SMTPSEND_PROPS_H
#define SMTPSEND_PROPS_H

#include <stdbool.h>
#include <stdio.h>
#include "err.h"
#include "util.h"

enum tls_mode { TLS_AUTO, TLS_IMPLICIT, TLS_STARTTLS, TLS_OFF };

struct props {
	/* Server and connection */
	char *mail_server;          /* MailServer (host) */
	long mail_port;             /* MailPort (port) */
	char *hello;                /* Hello; "" = local host name */
	long timeout;               /* Timeout, seconds, 0 = none */
	long connection_timeout;    /* ConnectionTimeout, 0 = Timeout */
	bool allow_extensions;      /* AllowExtensions (EHLO) */
	char *local_host;           /* LocalHost: source address */
	long local_port;            /* LocalPort */
	bool tcp_nodelay;           /* TcpNoDelay */
	long use_ipv6;              /* UseIPv6: 0 IPv4 only, 1 IPv6 only, 2 both */
	bool absolute_timeout;      /* AbsoluteTimeout: Timeout bounds the whole run */
	bool tcp_keepalive;         /* TCPKeepAlive */
	long keepalive_time;        /* KeepAliveTime, ms (sets TCPKeepAlive) */
	long keepalive_interval;    /* KeepAliveInterval, ms (sets TCPKeepAlive) */
	long keepalive_retry_count; /* KeepAliveRetryCount (sets TCPKeepAlive) */
	bool linger;                /* Linger: false = reset on close */
	long linger_time;           /* LingerTime, seconds, 0 = system default */
	long max_transfer_rate;     /* MaxTransferRate, bytes/s, 0 = no limit */
	char *proxy;                /* Firewall (proxy): scheme://[user[:pass]@]host[:port] */
	char *proxy_password;       /* FirewallPassword (proxy_password): rc only */
	char *proxy_exceptions;     /* ProxyExceptionsList: hosts that bypass the proxy */
	long ssl_start_mode;        /* SSLStartMode (tls): enum tls_mode */
	bool mail_port_set;         /* MailPort was given by some layer */

	/* TLS */
	char *ssl_ca_file;          /* SSLCACertFilePaths (tls_ca_file) */
	char *ssl_fingerprint;      /* SSLAcceptServerCert (tls_fingerprint) */
	char *ssl_cert_file;        /* SSLCert (tls_cert) */
	char *ssl_key_file;         /* tls_key */
	char *ssl_cert_password;    /* tls_cert_password: PKCS#12 password */
	char *ssl_protocols;        /* SSLEnabledProtocols (tls_protocols) */
	char *ssl_priority;         /* SSLEnabledCipherSuites (tls_priority): GnuTLS priority */
	char *ssl_keylog_file;      /* SSLKeyLogFile */
	char *ssl_host_override;    /* tls_host_override: name to verify */
	bool reuse_ssl_session;     /* ReuseSSLSession */

	/* Envelope */
	char *from;                 /* From */
	char *full_name;            /* -F: display name of From */
	char *return_path;          /* ReturnPath: envelope sender if set */
	struct strlist send_to;     /* SendTo */
	struct strlist cc;          /* Cc */
	struct strlist bcc;         /* BCc */

	/* Message given by flags */
	char *subject;              /* Subject */
	char *message_text;         /* MessageText (--body) */
	char *body_file;            /* --body-file */
	char *message_file;         /* Message: raw message file, "-" = stdin */
	struct strlist other_headers; /* OtherHeaders (--header) */
	long importance, priority, sensitivity;
	char *reply_to, *read_receipt_to, *delivery_notification_to;
	char *message_date;         /* MessageDate, "*" = now */
	char *message_id;           /* MessageId, "*" = generate */

	/* Authentication (stored; used by the SASL layer) */
	char *auth_mechanism;       /* AuthMechanism (auth) */
	char *user;                 /* User */
	char *password;             /* Password (rc only, never argv) */
	char *password_command;     /* password_command */
	char *authorization_identity;

	/* Config settings */
	bool allow_empty_to;
	char *charset;
	long max_header_length;
	bool fold_headers;
	long message_id_algorithm;  /* enum msgid_alg */
	bool send_rset;
	bool stop_on_to_errors, stop_on_cc_errors, stop_on_bcc_errors;
	bool mask_sensitive_data;
	long max_line_length;       /* MaxLineLength: longest server line kept */
	bool ignore_dots;           /* -i / -oi */

	/* Delivery status notifications (RFC 3461) and body type */
	char *dsn_notify;           /* -N: NEVER or SUCCESS,FAILURE,DELAY */
	char *dsn_return;           /* -R: FULL or HDRS */
	char *dsn_envid;            /* -V */
	bool dsn_optional;          /* send without DSN when not offered */
	long body_type;             /* -B: 0 auto, 1 7BIT, 2 8BITMIME, 3 BINARYMIME */
	bool use_chunking;          /* UseChunking: BDAT when offered */
	struct strlist recipient_options; /* "ADDR:OPTIONS", the MessageRecipient Options */
	long protocol;              /* 0 SMTP, 1 LMTP */
	long terminal;              /* SendToTerminal: 0 no, 1 and (SAML), 2 only (SEND), 3 or (SOML) */

	/* sendmail compatibility */
	char *aliases_file;         /* for local recipients ("root") */
	char *default_domain;       /* appended to local names without alias */
	bool read_envelope_from;    /* envelope sender from the From header */
	bool rewrite_envelope_from; /* always send as From (the account's) */
	bool encode_raw_body;       /* quoted-printable instead of refusing bad lines */

	/* The queue */
	char *queue_dir;            /* QueueDir: set = temporary failures are queued */
	bool keep_queue;            /* KeepQueue: sent entries become ID.sent */
	long queue_max_age;         /* seconds before a retried entry fails */

	/* Output */
	bool trace;                 /* -v: protocol trace on stderr */
	char *traffic_log;          /* -X FILE */
};

/* Fill p with the reference defaults.  Free with props_free(). */
void props_init(struct props *p);
void props_free(struct props *p);

/* Set property `name` (reference or rc name, any case) from text.  List
 * properties (SendTo, Cc, BCc, OtherHeaders) append.  Errors: ERR_USAGE
 * for an unknown name ("unknown setting") and ERR_CONFIG for a value of
 * the wrong type or range; the caller re-labels them with a file and line
 * when they come from an rc file. */
int props_set(struct props *p, const char *name, const char *value, struct err *e);

/* Write the current value of `name` as text into out (reset first).
 * Errors: ERR_USAGE for an unknown name. */
int props_get(const struct props *p, const char *name, struct strbuf *out, struct err *e);

/* Do a and b agree on every setting in names[0..n) (secrets included,
 * compared in place)?  Unknown names are ignored. */
bool props_equal(const struct props *a, const struct props *b, const char *const *names, size_t n);

/* Does name hold a secret (Password, ...)?  Such values come from the rc
 * file or a command, never from argv, and are masked in traces. */
bool props_is_secret(const char *name);

/* Print "Name (rc name) type default" for every setting, for --help-settings. */
void props_list(FILE *out);

#endif

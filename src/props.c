/* props.c - the property table: names, types, defaults, validation. */
#include "props.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"

enum ptype { PT_STR, PT_INT, PT_BOOL, PT_ENUM, PT_LIST, PT_NA };

struct propdef {
	const char *name;       /* as in the reference */
	const char *rcname;     /* rc file / long-option style name, or NULL */
	enum ptype type;
	size_t off;
	const char *def;        /* default as text */
	long min, max;          /* PT_INT range */
	const char *const *names; /* PT_ENUM value names, index = value */
	const char *why;        /* PT_NA: why it does not apply */
};

static const char *const importance_names[] = { "unspecified", "high", "normal", "low", NULL };
static const char *const priority_names[] = { "unspecified", "normal", "urgent", "non-urgent", NULL };
static const char *const sensitivity_names[] = { "unspecified", "personal", "private",
						 "company-confidential", NULL };
static const char *const msgid_names[] = { "MD5", "SHA1", "SHA256", NULL };
static const char *const tls_names[] = { "auto", "implicit", "starttls", "off", NULL };
static const char *const body_names[] = { "auto", "7BIT", "8BITMIME", "BINARYMIME", NULL };
static const char *const protocol_names[] = { "smtp", "lmtp", NULL };
static const char *const terminal_names[] = { "none", "and", "only", "or", NULL };

#define O(f) offsetof(struct props, f)
#define STR(n, rc, f, d) { n, rc, PT_STR, O(f), d, 0, 0, NULL, NULL }
#define INT(n, rc, f, d, lo, hi) { n, rc, PT_INT, O(f), d, lo, hi, NULL, NULL }
#define BOOL(n, rc, f, d) { n, rc, PT_BOOL, O(f), d, 0, 0, NULL, NULL }
#define ENUM(n, rc, f, d, nm) { n, rc, PT_ENUM, O(f), d, 0, 0, nm, NULL }
#define LIST(n, rc, f) { n, rc, PT_LIST, O(f), NULL, 0, 0, NULL, NULL }
#define NA(n, why) { n, NULL, PT_NA, 0, NULL, 0, 0, NULL, why }

static const struct propdef defs[] = {
	/* Server and connection */
	STR("MailServer", "host", mail_server, ""),
	INT("MailPort", "port", mail_port, "25", 1, 65535),
	STR("Hello", "hello", hello, ""),
	INT("Timeout", "timeout", timeout, "60", 0, 86400),
	INT("ConnectionTimeout", "connect_timeout", connection_timeout, "0", 0, 86400),
	BOOL("AllowExtensions", "esmtp", allow_extensions, "true"),
	STR("LocalHost", "source_ip", local_host, ""),
	INT("LocalPort", "local_port", local_port, "0", 0, 65535),
	BOOL("TcpNoDelay", "tcp_nodelay", tcp_nodelay, "true"),
	INT("UseIPv6", "ipv6", use_ipv6, "2", 0, 2),
	BOOL("AbsoluteTimeout", "absolute_timeout", absolute_timeout, "false"),
	BOOL("TCPKeepAlive", "tcp_keepalive", tcp_keepalive, "false"),
	INT("KeepAliveTime", "keepalive_time", keepalive_time, "0", 0, 86400000),
	INT("KeepAliveInterval", "keepalive_interval", keepalive_interval, "0", 0, 86400000),
	INT("KeepAliveRetryCount", "keepalive_retry_count", keepalive_retry_count, "0", 0, 127),
	BOOL("Linger", "linger", linger, "true"),
	INT("LingerTime", "linger_time", linger_time, "0", 0, 3600),
	INT("MaxTransferRate", "max_transfer_rate", max_transfer_rate, "0", 0, 2000000000),
	STR("Firewall", "proxy", proxy, ""),
	STR("FirewallPassword", "proxy_password", proxy_password, ""),
	STR("ProxyExceptionsList", "proxy_exceptions", proxy_exceptions, ""),
	ENUM("SSLStartMode", "tls", ssl_start_mode, "auto", tls_names),
	STR("SSLCACertFilePaths", "tls_ca_file", ssl_ca_file, ""),
	STR("SSLAcceptServerCert", "tls_fingerprint", ssl_fingerprint, ""),
	STR("SSLCert", "tls_cert", ssl_cert_file, ""),
	STR("SSLCertKey", "tls_key", ssl_key_file, ""),
	STR("SSLCertPassword", "tls_cert_password", ssl_cert_password, ""),
	STR("SSLEnabledProtocols", "tls_protocols", ssl_protocols, ""),
	STR("SSLEnabledCipherSuites", "tls_priority", ssl_priority, ""),
	STR("SSLKeyLogFile", "tls_keylog_file", ssl_keylog_file, ""),
	STR("TLSHostOverride", "tls_host_override", ssl_host_override, ""),
	BOOL("ReuseSSLSession", "tls_reuse_session", reuse_ssl_session, "true"),

	/* Envelope */
	STR("From", "from", from, ""),
	STR("FullName", "full_name", full_name, ""),
	STR("ReturnPath", "return_path", return_path, ""),
	LIST("SendTo", "to", send_to),
	LIST("Cc", "cc", cc),
	LIST("BCc", "bcc", bcc),

	/* Message */
	STR("Subject", "subject", subject, ""),
	STR("MessageText", "body", message_text, ""),
	STR("BodyFile", "body_file", body_file, ""),
	STR("Message", "message", message_file, ""),
	LIST("OtherHeaders", "header", other_headers),
	ENUM("Importance", "importance", importance, "unspecified", importance_names),
	ENUM("Priority", "priority", priority, "unspecified", priority_names),
	ENUM("Sensitivity", "sensitivity", sensitivity, "unspecified", sensitivity_names),
	STR("ReplyTo", "reply_to", reply_to, ""),
	STR("ReadReceiptTo", "read_receipt_to", read_receipt_to, ""),
	STR("DeliveryNotificationTo", "delivery_notification_to", delivery_notification_to, ""),
	STR("MessageDate", "date", message_date, "*"),
	STR("MessageId", "message_id", message_id, "*"),

	/* Authentication */
	STR("AuthMechanism", "auth", auth_mechanism, "auto"),
	STR("User", "user", user, ""),
	STR("Password", "password", password, ""),
	STR("PasswordCommand", "password_command", password_command, ""),
	STR("AuthorizationIdentity", "authorization_identity", authorization_identity, ""),

	/* Config settings */
	BOOL("AllowEmptyTo", "allow_empty_to", allow_empty_to, "false"),
	STR("Charset", "charset", charset, "UTF-8"),
	INT("MaxHeaderLength", "max_header_length", max_header_length, "80", 20, 998),
	BOOL("FoldHeaders", "fold_headers", fold_headers, "true"),
	ENUM("MessageIdAlgorithm", "message_id_algorithm", message_id_algorithm, "SHA1", msgid_names),
	BOOL("SendRSET", "send_rset", send_rset, "true"),
	BOOL("StopOnToErrors", "stop_on_to_errors", stop_on_to_errors, "true"),
	BOOL("StopOnCcErrors", "stop_on_cc_errors", stop_on_cc_errors, "true"),
	BOOL("StopOnBccErrors", "stop_on_bcc_errors", stop_on_bcc_errors, "false"),
	BOOL("MaskSensitiveData", "mask_sensitive_data", mask_sensitive_data, "true"),
	INT("MaxLineLength", "max_line_length", max_line_length, "2048", 256, 1048576),
	BOOL("IgnoreDots", "ignore_dots", ignore_dots, "false"),
	BOOL("Trace", "trace", trace, "false"),
	STR("TrafficLog", "traffic_log", traffic_log, ""),

	/* DSN and body type */
	STR("DsnNotify", "dsn_notify", dsn_notify, ""),
	STR("DsnReturn", "dsn_return", dsn_return, ""),
	STR("DsnEnvid", "dsn_envid", dsn_envid, ""),
	BOOL("DsnOptional", "dsn_optional", dsn_optional, "false"),
	ENUM("BodyType", "body_type", body_type, "auto", body_names),
	BOOL("UseChunking", "chunking", use_chunking, "true"),
	LIST("RecipientOptions", "recipient_options", recipient_options),

	/* Protocol and delivery method */
	ENUM("Protocol", "protocol", protocol, "smtp", protocol_names),
	ENUM("SendToTerminal", "terminal", terminal, "none", terminal_names),

	/* sendmail compatibility */
	STR("AliasesFile", "aliases", aliases_file, "/etc/aliases"),
	STR("DefaultDomain", "default_domain", default_domain, ""),
	BOOL("ReadEnvelopeFrom", "read_envelope_from", read_envelope_from, "true"),
	BOOL("RewriteEnvelopeFrom", "rewrite_envelope_from", rewrite_envelope_from, "false"),
	BOOL("EncodeRawBody", "encode_raw_body", encode_raw_body, "false"),

	/* The queue */
	STR("QueueDir", "queue_dir", queue_dir, ""),
	BOOL("KeepQueue", "keep_queue", keep_queue, "false"),
	INT("QueueMaxAge", "queue_max_age", queue_max_age, "432000", 60, 31536000),

	/* Reference settings that have no meaning for a command-line tool. */
	NA("DoEvents", "smtpsend runs one operation per process; there is no event loop to pump"),
	NA("ProcessIdleEvents", "smtpsend has no event loop"),
	NA("SelectWaitMillis", "smtpsend has no event loop"),
	NA("CodePage", "smtpsend works in UTF-8; set Charset for header encoding"),
	NA("SSLProvider", "smtpsend always uses GnuTLS"),
	NA("SSLCertStore", "Windows certificate stores do not exist on Linux: give tls_cert/tls_key PEM files or a PKCS#12 file"),
	NA("SSLCertStoreType", "give tls_cert as PEM or PKCS#12 (.p12/.pfx) file"),
	NA("UseInternalSecurityAPI", "smtpsend always uses GnuTLS"),
	NA("UseFIPSCompliantAPI", "FIPS mode is a GnuTLS/system setting (GNUTLS_FORCE_FIPS_MODE)"),
	NA("LicenseInfo", "smtpsend is free software; see COPYING"),
	NA("BuildInfo", "run smtpsend --version"),
	NA("FirewallAutoDetect", "there are no system firewall settings to detect on Linux"),
	NA("MessageHeadersString", "use --print to see the headers as they will be sent"),
	NA("TransferText", "use --print to see the message as it will be sent"),
};

#define NDEFS (sizeof defs / sizeof defs[0])

/* Names are looked up for every setting of every queued entry a flush
 * sends: a hash table over the reference and rc names (any case) built on
 * first use, instead of a walk through the whole table. */
#define NAME_SLOTS 1024

static size_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		h ^= (uint32_t)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		h *= 16777619u;
	}
	return h & (NAME_SLOTS - 1);
}

static const struct propdef *name_slot[NAME_SLOTS];
static const char *name_key[NAME_SLOTS];

static void name_insert(const char *key, const struct propdef *d)
{
	size_t i = name_hash(key);
	while (name_slot[i]) {
		if (ascii_casecmp(name_key[i], key) == 0)
			return; /* the first definition wins, as in a table walk */
		i = (i + 1) & (NAME_SLOTS - 1);
	}
	name_slot[i] = d;
	name_key[i] = key;
}

static const struct propdef *find(const char *name)
{
	static bool built;
	if (!built) {
		for (size_t i = 0; i < NDEFS; i++) {
			name_insert(defs[i].name, &defs[i]);
			if (defs[i].rcname)
				name_insert(defs[i].rcname, &defs[i]);
		}
		built = true;
	}
	for (size_t i = name_hash(name); name_slot[i]; i = (i + 1) & (NAME_SLOTS - 1))
		if (ascii_casecmp(name_key[i], name) == 0)
			return name_slot[i];
	return NULL;
}

bool props_equal(const struct props *a, const struct props *b, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct propdef *d = find(names[i]);
		if (!d || d->type == PT_NA)
			continue;
		const void *fa = (const char *)a + d->off, *fb = (const char *)b + d->off;
		switch (d->type) {
		case PT_STR:
			if (strcmp(*(char *const *)fa, *(char *const *)fb) != 0)
				return false;
			break;
		case PT_INT:
		case PT_ENUM:
			if (*(const long *)fa != *(const long *)fb)
				return false;
			break;
		case PT_BOOL:
			if (*(const bool *)fa != *(const bool *)fb)
				return false;
			break;
		case PT_LIST: {
			const struct strlist *la = fa, *lb = fb;
			if (la->n != lb->n)
				return false;
			for (size_t k = 0; k < la->n; k++)
				if (strcmp(la->v[k], lb->v[k]) != 0)
					return false;
			break;
		}
		case PT_NA:
			break;
		}
	}
	return true;
}

static int set_value(struct props *p, const struct propdef *d, const char *v, struct err *e)
{
	void *field = (char *)p + d->off;
	long n;
	bool b;

	switch (d->type) {
	case PT_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(v);
		return 0;
	case PT_LIST:
		/* Lists only grow.  An empty OtherHeaders entry first is the
		 * reference's "replace the computed headers" marker. */
		sl_add(field, v);
		return 0;
	case PT_INT:
		if (!parse_long(v, d->min, d->max, &n)) {
			err_set(e, ERR_CONFIG, 0, "%s: \"%s\" is not a whole number from %ld to %ld",
				d->name, v, d->min, d->max);
			return -1;
		}
		*(long *)field = n;
		return 0;
	case PT_BOOL:
		if (!parse_bool(v, &b)) {
			err_set(e, ERR_CONFIG, 0, "%s: \"%s\" is not true or false", d->name, v);
			return -1;
		}
		*(bool *)field = b;
		return 0;
	case PT_ENUM:
		for (long i = 0; d->names[i]; i++)
			if (ascii_casecmp(d->names[i], v) == 0)
				return *(long *)field = i, 0;
		/* The reference also sets enums by number. */
		for (n = 0; d->names[n]; n++)
			;
		if (parse_long(v, 0, n - 1, &n))
			return *(long *)field = n, 0;
		{
			struct strbuf sb = STRBUF_INIT;
			for (size_t i = 0; d->names[i]; i++)
				sb_addf(&sb, "%s%s", i ? ", " : "", d->names[i]);
			err_set(e, ERR_CONFIG, 0, "%s: \"%s\" is not one of %s", d->name, v, sb.s);
			sb_free(&sb);
		}
		return -1;
	case PT_NA:
		err_set(e, ERR_CONFIG, 0, "%s does not apply to smtpsend: %s", d->name, d->why);
		return -1;
	}
	return -1;
}

void props_init(struct props *p)
{
	memset(p, 0, sizeof *p);
	struct err e;
	for (size_t i = 0; i < NDEFS; i++)
		if (defs[i].def && set_value(p, &defs[i], defs[i].def, &e) < 0)
			abort(); /* a bad default is a bug in the table */
}

void props_free(struct props *p)
{
	for (size_t i = 0; i < NDEFS; i++) {
		void *field = (char *)p + defs[i].off;
		if (defs[i].type == PT_STR) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (defs[i].type == PT_LIST) {
			sl_free(field);
		}
	}
}

int props_set(struct props *p, const char *name, const char *value, struct err *e)
{
	const struct propdef *d = find(name);
	if (!d) {
		err_set(e, ERR_USAGE, 0, "unknown setting \"%s\" (smtpsend --list-settings shows them all)",
			name);
		return -1;
	}
	/* CR or LF in any setting but the body text would end up in a
	 * command or a header: header injection.  OtherHeaders may hold a leading empty line (the
	 * reference's "replace all headers" case) but that arrives as an empty
	 * list entry, not as a raw CR LF. */
	if (d->off != offsetof(struct props, message_text) && strpbrk(value, "\r\n")) {
		err_set(e, ERR_DATA, 0, "%s: line breaks are not allowed in a value", d->name);
		return -1;
	}
	if (set_value(p, d, value, e) < 0)
		return -1;
	/* The default port depends on the TLS mode unless one was given. */
	if (d->off == offsetof(struct props, mail_port))
		p->mail_port_set = true;
	return 0;
}

int props_get(const struct props *p, const char *name, struct strbuf *out, struct err *e)
{
	const struct propdef *d = find(name);
	if (!d) {
		err_set(e, ERR_USAGE, 0, "unknown setting \"%s\"", name);
		return -1;
	}
	const void *field = (const char *)p + d->off;
	sb_reset(out);
	switch (d->type) {
	case PT_STR:
		if (props_is_secret(d->name) && **(char *const *)field)
			sb_adds(out, "********");
		else
			sb_adds(out, *(char *const *)field);
		break;
	case PT_INT:
		sb_addf(out, "%ld", *(const long *)field);
		break;
	case PT_BOOL:
		sb_adds(out, *(const bool *)field ? "true" : "false");
		break;
	case PT_ENUM:
		sb_adds(out, d->names[*(const long *)field]);
		break;
	case PT_LIST: {
		const struct strlist *l = field;
		for (size_t i = 0; i < l->n; i++)
			sb_addf(out, "%s%s", i ? ", " : "", l->v[i]);
		break;
	}
	case PT_NA:
		err_set(e, ERR_CONFIG, 0, "%s does not apply to smtpsend: %s", d->name, d->why);
		return -1;
	}
	return 0;
}

bool props_is_secret(const char *name)
{
	return ascii_casecmp(name, "Password") == 0 || ascii_casecmp(name, "password") == 0 ||
	       ascii_casecmp(name, "SSLCertPassword") == 0 ||
	       ascii_casecmp(name, "tls_cert_password") == 0 ||
	       ascii_casecmp(name, "AuthorizationIdentity") == 0 ||
	       ascii_casecmp(name, "authorization_identity") == 0 ||
	       ascii_casecmp(name, "FirewallPassword") == 0 ||
	       ascii_casecmp(name, "proxy_password") == 0;
}

void props_list(FILE *out)
{
	static const char *const tname[] = { "string", "number", "boolean", "choice", "list", "n/a" };
	for (size_t i = 0; i < NDEFS; i++) {
		const struct propdef *d = &defs[i];
		if (d->type == PT_NA) {
			fprintf(out, "%-24s %-26s not applicable: %s\n", d->name, "", d->why);
			continue;
		}
		fprintf(out, "%-24s %-26s %-8s", d->name, d->rcname ? d->rcname : "", tname[d->type]);
		if (d->type == PT_INT)
			fprintf(out, " %ld..%ld", d->min, d->max);
		if (d->type == PT_ENUM) {
			fputs(" ", out);
			for (size_t k = 0; d->names[k]; k++)
				fprintf(out, "%s%s", k ? "|" : "", d->names[k]);
		}
		if (d->def)
			fprintf(out, " (default \"%s\")", d->def);
		fputc('\n', out);
	}
}

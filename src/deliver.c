/* deliver.c - drive one SMTP transaction over one connection. */
#include "deliver.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_tls.h"
#include "sasl.h"
#include "secret.h"
#include "dotstuff.h"
#include "log.h"
#include "reply.h"

volatile sig_atomic_t deliver_progress = DELIVER_NOT_SENT;

const char *deliver_hello_name(const struct props *p)
{
	static char name[256];
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res;

	if (p->hello && *p->hello)
		return p->hello;
	if (gethostname(name, sizeof name - 1) != 0 || !*name)
		return "localhost";
	name[sizeof name - 1] = '\0';
	if (!strchr(name, '.') && getaddrinfo(name, NULL, &hints, &res) == 0) {
		if (res->ai_canonname && strchr(res->ai_canonname, '.'))
			snprintf(name, sizeof name, "%s", res->ai_canonname);
		freeaddrinfo(res);
	}
	return name;
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

void deliver_tls_opts(const struct props *p, struct tls_opts *o)
{
	memset(o, 0, sizeof *o);
	o->host = p->mail_server;
	o->verify_host = nonempty(p->ssl_host_override);
	o->ca_file = nonempty(p->ssl_ca_file);
	o->fingerprint = nonempty(p->ssl_fingerprint);
	o->protocols = nonempty(p->ssl_protocols);
	o->priority = nonempty(p->ssl_priority);
	o->keylog_file = nonempty(p->ssl_keylog_file) ? p->ssl_keylog_file : nonempty(getenv("SSLKEYLOGFILE"));
	o->no_resume = !p->reuse_ssl_session;
	const char *cert = nonempty(p->ssl_cert_file);
	size_t n = cert ? strlen(cert) : 0;
	if (n > 4 && (ascii_casecmp(cert + n - 4, ".p12") == 0 || ascii_casecmp(cert + n - 4, ".pfx") == 0)) {
		o->p12_file = cert;
		o->p12_password = p->ssl_cert_password;
	} else {
		o->cert_file = cert;
	}
	/* a key without its certificate is a mistake conn_tls reports */
	o->key_file = nonempty(p->ssl_key_file);
}

enum tls_use deliver_tls_use(const struct props *p)
{
	switch (p->ssl_start_mode) {
	case TLS_OFF: return TLSUSE_NONE;
	case TLS_IMPLICIT: return TLSUSE_IMPLICIT;
	case TLS_STARTTLS: return TLSUSE_STARTTLS;
	default:
		/* auto: port 465 is implicit TLS (RFC 8314); anything else
		 * must STARTTLS, except a relay on this very machine. */
		return deliver_port(p) == 465 ? TLSUSE_IMPLICIT : TLSUSE_STARTTLS_UNLESS_LOCAL;
	}
}

int deliver_port(const struct props *p)
{
	if (p->mail_port_set)
		return (int)p->mail_port;
	return p->ssl_start_mode == TLS_IMPLICIT ? 465 : 25;
}

/* Run the handshake on c.  Errors: those of conn_tls_start. */
static int start_tls(struct conn *c, const struct props *p, struct tls_info *info, struct err *e)
{
	struct tls_opts o;
	deliver_tls_opts(p, &o);
	return conn_tls_start(c, &o, info, e);
}

/* Read one complete reply into r.  Errors: ERR_TEMP (timeout, closed),
 * ERR_PROTOCOL (malformed). */
static int read_reply(struct conn *c, struct reply *r, struct err *e)
{
	int64_t deadline = conn_deadline(c);
	reply_reset(r);
	for (;;) {
		const char *line;
		size_t len;
		bool cut;
		if (conn_read_line(c, &line, &len, &cut, deadline, e) < 0)
			return -1;
		log_server(line, len);
		int k = reply_add_line(r, line, len, e);
		if (k < 0)
			return -1;
		if (cut)
			r->truncated = true; /* the line was longer than we keep */
		if (k > 0)
			return 0;
	}
}

/* Write commands, one trace line each. */
static int send_commands(struct conn *c, const struct strbuf *out, size_t secret_from,
			 struct err *e)
{
	const char *s = out->s;
	const char *end = out->s + out->len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t l = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
		/* only the first line can be an AUTH line: it goes out alone */
		log_client(s, l >= 2 ? l - 2 : l, s == out->s ? secret_from : (size_t)-1);
		s += l;
	}
	if (conn_write(c, out->s, out->len, e) < 0)
		return -1;
	return conn_flush(c, e);
}

struct body_ctx {
	struct conn *c;
	struct dotstuff ds;
	char *out;
	size_t outcap;
};

static int body_sink(void *ctx, const char *buf, size_t len, struct err *e)
{
	struct body_ctx *b = ctx;
	size_t need = DOTSTUFF_MAX_OUT(len);
	if (need > b->outcap) {
		b->out = xrealloc(b->out, need);
		b->outcap = need;
	}
	size_t n = dotstuff_feed(&b->ds, buf, len, b->out);
	return conn_write(b->c, b->out, n, e);
}

static int send_body(struct conn *c, const struct message *m, struct err *e)
{
	struct body_ctx b = { .c = c };
	char tail[DOTSTUFF_FINISH_MAX];
	int rc;

	dotstuff_init(&b.ds, false);
	uint64_t before = c->bytes_out + c->wlen;
	rc = message_stream(m, body_sink, &b, e);
	if (rc == 0) {
		/* From here on the server may get the final dot. */
		deliver_progress = DELIVER_UNCONFIRMED;
		size_t n = dotstuff_finish(&b.ds, tail);
		rc = conn_write(c, tail, n, e);
	}
	if (rc == 0)
		rc = conn_flush(c, e);
	free(b.out);
	if (rc == 0) {
		log_info("message sent: %llu bytes", (unsigned long long)(c->bytes_out - before));
		log_client(".", 1, (size_t)-1);
	}
	return rc;
}

const char *deliver_auth_wanted(const struct props *p)
{
	const char *a = p->auth_mechanism;
	if (ascii_casecmp(a, "none") == 0)
		return NULL;
	if (ascii_casecmp(a, "auto") == 0 && !*p->user)
		return NULL; /* nothing to authenticate with */
	return a;
}

/* Channel binding data for SCRAM-*-PLUS from the TLS session; without it
 * the -PLUS mechanisms are simply not chosen. */
static void channel_binding(struct conn *c, struct sasl_creds *creds, unsigned char **cb)
{
	struct err ignored;
	size_t len = 0;
	const char *type = NULL;
	void *sess = conn_tls_session(c);

	free(*cb);
	*cb = NULL;
	creds->cb_data = NULL;
	if (sess && sasl_tls_channel_binding(sess, cb, &len, &type, &ignored) == 0) {
		creds->cb_data = *cb;
		creds->cb_len = len;
		creds->cb_type = type;
	}
}

struct cmd_mode {
	const struct strlist *commands;
	void (*on_reply)(void *ctx, const char *command, const struct reply *r);
	void *ctx;
};

static int run_session(const struct props *p, struct message *m, struct envelope *env,
		       bool verify, const struct cmd_mode *cm, struct deliver_result *res,
		       struct err *e);

int deliver_message(const struct props *p, struct message *m, struct envelope *env,
		    struct deliver_result *res, struct err *e)
{
	return run_session(p, m, env, false, NULL, res, e);
}

int deliver_commands(const struct props *p, const struct strlist *commands,
		     void (*on_reply)(void *ctx, const char *command, const struct reply *r),
		     void *ctx, struct err *e)
{
	struct envelope env = { .from = (char *)"" };
	struct deliver_result res;
	struct cmd_mode cm = { commands, on_reply, ctx };
	int r = run_session(p, NULL, &env, false, &cm, &res, e);
	/* commands mode ends with QUIT, never with a delivery */
	if (r < 0 && e->cls == ERR_OK)
		return 0;
	return r;
}

int deliver_verify(const struct props *p, struct envelope *env, struct deliver_result *res,
		   struct err *e)
{
	int r = run_session(p, NULL, env, true, NULL, res, e);
	/* verifying ends with QUIT, never with a delivery */
	if (r < 0 && e->cls == ERR_OK)
		return 0;
	return r;
}

static int run_session(const struct props *p, struct message *m, struct envelope *env,
		       bool verify, const struct cmd_mode *cm, struct deliver_result *res,
		       struct err *e)
{
	struct conn c;
	struct session s;
	struct session_cfg cfg = {
		.hello = deliver_hello_name(p),
		.allow_extensions = p->allow_extensions,
		.stop_on_to = p->stop_on_to_errors,
		.stop_on_cc = p->stop_on_cc_errors,
		.stop_on_bcc = p->stop_on_bcc_errors,
		.allow_empty_to = p->allow_empty_to,
		.verify_only = verify,
		.dsn_notify = nonempty(p->dsn_notify),
		.dsn_ret = nonempty(p->dsn_return),
		.dsn_envid = nonempty(p->dsn_envid),
		.dsn_optional = p->dsn_optional,
		.commands = cm ? cm->commands : NULL,
		.on_reply = cm ? cm->on_reply : NULL,
		.reply_ctx = cm ? cm->ctx : NULL,
	};
	struct tcp_opts to = {
		.host = p->mail_server,
		.port = deliver_port(p),
		.source = p->local_host,
		.source_port = (int)p->local_port,
		.connect_timeout_s = p->connection_timeout,
		.timeout_s = p->timeout,
		.nodelay = p->tcp_nodelay,
	};
	struct strbuf out = STRBUF_INIT;
	struct reply r;
	struct err ce;
	struct sasl_creds creds = { 0 };
	char *secret = NULL;
	unsigned char *cb = NULL;

	memset(res, 0, sizeof *res);
	deliver_progress = DELIVER_NOT_SENT;
	if (strpbrk(cfg.hello, " \t\r\n") || !*cfg.hello) {
		err_set(e, ERR_CONFIG, 0, "Hello name \"%s\" must be one word without spaces",
			cfg.hello);
		return -1;
	}
	enum tls_use use = deliver_tls_use(p);
	if (use != TLSUSE_NONE) {
		/* A bad TLS configuration fails before anything is sent. */
		struct tls_opts o;
		deliver_tls_opts(p, &o);
		if (conn_tls_check_opts(&o, e) < 0)
			return -1;
	}
	/* Credentials, and the secret from wherever it lives, before
	 * connecting: a prompt or a failing password_command must not hold
	 * a connection open. */
	cfg.auth = deliver_auth_wanted(p);
	if (cfg.auth) {
		bool needs_secret = ascii_casecmp(cfg.auth, "EXTERNAL") != 0 &&
				    ascii_casecmp(cfg.auth, "GSSAPI") != 0 &&
				    ascii_casecmp(cfg.auth, "GS2-KRB5") != 0;
		if (needs_secret && secret_get(p->user, p->mail_server, p->password,
					       p->password_command, &secret, e) < 0)
			return -1;
		creds.user = p->user;
		creds.password = secret;
		creds.authzid = nonempty(p->authorization_identity);
		creds.host = p->mail_server;
		creds.port = deliver_port(p);
		creds.service = "smtp";
		cfg.creds = &creds;
	}
	log_info("connecting to %s port %d", p->mail_server, to.port);
	if (conn_tcp_open(&c, &to, e) < 0) {
		secret_free(secret);
		return -1;
	}
	log_info("connected to %s", c.peer);
	if (use == TLSUSE_IMPLICIT) {
		cfg.tls_active = true;
		if (start_tls(&c, p, NULL, e) < 0) {
			conn_close(&c);
			secret_free(secret);
			return -1;
		}
		channel_binding(&c, &creds, &cb);
	}
	/* The loopback exception: traffic to a relay on this machine never
	 * crosses a network, so plaintext there is not a downgrade. */
	cfg.starttls = use == TLSUSE_STARTTLS || (use == TLSUSE_STARTTLS_UNLESS_LOCAL && !c.loopback);

	if (m)
		env->size = message_size(m);
	session_init(&s, &cfg, env);
	reply_init(&r);
	for (;;) {
		err_clear(&ce);
		sb_reset(&out);
		enum sess_action act = session_next(&s, &out);
		if (act == ACT_DONE)
			break;
		if (act == ACT_ABORT) {
			log_info("closing the connection without QUIT");
			break;
		}
		if (act == ACT_STARTTLS) {
			/* Bytes already here were sent before the handshake:
			 * answering them would execute injected commands. */
			if (conn_unread(&c) > 0) {
				err_set(&ce, ERR_PROTOCOL, SEED_PROTOCOL,
					"the server sent %zu bytes after its 220 to STARTTLS, before the TLS "
					"handshake; refusing them (possible command injection)",
					conn_unread(&c));
				session_conn_failed(&s, &ce);
				continue;
			}
			if (start_tls(&c, p, NULL, &ce) < 0) {
				session_conn_failed(&s, &ce);
				continue;
			}
			channel_binding(&c, &creds, &cb);
			session_tls_done(&s);
			continue;
		}
		if (act == ACT_SEND_BODY) {
			if (send_body(&c, m, &ce) < 0) {
				session_conn_failed(&s, &ce);
				continue;
			}
			session_body_sent(&s);
			continue;
		}
		if (out.len && send_commands(&c, &out, s.secret_from, &ce) < 0) {
			session_conn_failed(&s, &ce);
			continue;
		}
		while (session_expected(&s)) {
			if (read_reply(&c, &r, &ce) < 0) {
				/* A malformed reply ends the session like a lost
				 * connection: we can no longer tell which command
				 * a reply answers. */
				session_conn_failed(&s, &ce);
				break;
			}
			session_reply(&s, &r);
			if (s.delivered)
				deliver_progress = DELIVER_CONFIRMED;
		}
		/* A server that sends more than it was asked for would make us
		 * pair replies with the wrong commands.  (Before a TLS handshake
		 * the STARTTLS step says it more precisely.) */
		if (!session_expected(&s) && s.state != S_DONE && s.state != S_TLS &&
		    conn_unread(&c) > 0 && !c.eof) {
			err_set(&ce, ERR_PROTOCOL, SEED_PROTOCOL,
				"the server sent %zu unexpected bytes after its reply", conn_unread(&c));
			session_conn_failed(&s, &ce);
		}
	}
	conn_close(&c);
	reply_free(&r);
	sb_free(&out);
	session_free(&s);
	secret_free(secret);
	free(cb);

	res->delivered = s.delivered;
	res->possibly_delivered = !s.delivered && s.body_sent;
	res->caps = s.caps;
	if (s.delivered)
		return 0;
	*e = s.err;
	return -1;
}

/* ---- --serverinfo: the SSLServerAuthentication event made visible ---- */

static int info_command(struct conn *c, const char *cmd, struct reply *r, struct err *e)
{
	struct strbuf out = STRBUF_INIT;
	sb_addf(&out, "%s\r\n", cmd);
	int rc = send_commands(c, &out, (size_t)-1, e);
	sb_free(&out);
	return rc < 0 ? -1 : read_reply(c, r, e);
}

static void print_reply_lines(FILE *out, const char *label, const struct reply *r)
{
	size_t pos = 0, len;
	const char *l;
	char buf[1100];
	bool first = true;
	fprintf(out, "%s:\n", label);
	while (reply_next_line(r, &pos, &l, &len)) {
		if (first && r->nlines > 1) {
			first = false; /* the server's name line of EHLO */
			continue;
		}
		first = false;
		fprintf(out, "  %s\n", sanitize(buf, sizeof buf, l, len));
	}
}

static void print_tls(FILE *out, const struct tls_info *t)
{
	fprintf(out, "TLS: %s, %s%s\n", t->version, t->cipher, t->resumed ? " (resumed)" : "");
	for (size_t i = 0; i < t->nchain; i++) {
		const struct tls_cert_info *ci = &t->chain[i];
		fprintf(out, "certificate %zu:\n", i);
		fprintf(out, "  subject:     %s\n", ci->subject);
		fprintf(out, "  issuer:      %s\n", ci->issuer);
		fprintf(out, "  names:       %s\n", ci->sans[0] ? ci->sans : "(none)");
		fprintf(out, "  valid:       %s to %s\n", ci->not_before, ci->not_after);
		fprintf(out, "  SHA-256:     %s\n", ci->sha256);
		fprintf(out, "  key:         %s\n", ci->key_alg);
		fprintf(out, "  signature:   %s\n", ci->sig_alg);
	}
	fprintf(out, "verification: %s\n", t->verdict);
}

static enum err_class class_of_greeting(const struct reply *r)
{
	return reply_class(r) == 4 ? ERR_TEMP : ERR_UNAVAILABLE;
}

int deliver_serverinfo(const struct props *p, FILE *out, struct err *e)
{
	struct conn c;
	struct reply r;
	struct tls_info ti;
	struct tls_opts o;
	struct tcp_opts to = {
		.host = p->mail_server, .port = deliver_port(p), .source = p->local_host,
		.source_port = (int)p->local_port, .connect_timeout_s = p->connection_timeout,
		.timeout_s = p->timeout, .nodelay = p->tcp_nodelay,
	};
	enum tls_use use = deliver_tls_use(p);
	bool tls = false;
	int ret = -1;
	char cmd[300];

	memset(&ti, 0, sizeof ti);
	deliver_tls_opts(p, &o);
	o.no_verify = true; /* report the verdict rather than stop at it */
	o.no_resume = true;
	if (use != TLSUSE_NONE && conn_tls_check_opts(&o, e) < 0)
		return -1;
	if (conn_tcp_open(&c, &to, e) < 0)
		return -1;
	reply_init(&r);
	fprintf(out, "server: %s\n", c.peer);
	if (use == TLSUSE_IMPLICIT) {
		if (conn_tls_start(&c, &o, &ti, e) < 0)
			goto done;
		tls = true;
	}
	if (read_reply(&c, &r, e) < 0)
		goto done;
	char line[600];
	fprintf(out, "greeting: %s\n", reply_first_line(&r, line, sizeof line));
	if (reply_class(&r) != 2) {
		err_set(e, class_of_greeting(&r), SEED_PROTOCOL, "the server refused the connection: %s",
			line);
		goto done;
	}
	snprintf(cmd, sizeof cmd, "EHLO %s", deliver_hello_name(p));
	if (info_command(&c, cmd, &r, e) < 0)
		goto done;
	if (reply_class(&r) != 2) {
		fprintf(out, "EHLO refused: %s\n", reply_first_line(&r, line, sizeof line));
	} else {
		print_reply_lines(out, tls ? "capabilities (TLS)" : "capabilities", &r);
	}
	bool offers_starttls = false;
	{
		size_t pos = 0, len;
		const char *l;
		while (reply_class(&r) == 2 && reply_next_line(&r, &pos, &l, &len))
			offers_starttls |= len == 8 && ascii_ncasecmp(l, "STARTTLS", 8) == 0;
	}
	if (!tls && use != TLSUSE_NONE && offers_starttls) {
		if (info_command(&c, "STARTTLS", &r, e) < 0)
			goto done;
		if (r.code != 220) {
			fprintf(out, "STARTTLS refused: %s\n", reply_first_line(&r, line, sizeof line));
			err_set(e, reply_class(&r) == 4 ? ERR_TEMP : ERR_UNAVAILABLE, SEED_PROTOCOL,
				"the server refused STARTTLS: %s", line);
			goto done;
		} else if (conn_unread(&c) > 0) {
			err_set(e, ERR_PROTOCOL, SEED_PROTOCOL,
				"the server sent bytes after its 220 to STARTTLS, before the handshake");
			goto done;
		} else {
			if (conn_tls_start(&c, &o, &ti, e) < 0)
				goto done;
			tls = true;
			if (info_command(&c, cmd, &r, e) < 0)
				goto done;
			print_reply_lines(out, "capabilities after STARTTLS", &r);
		}
	}
	if (tls)
		print_tls(out, &ti);
	else
		fprintf(out, "TLS: not used%s\n", use == TLSUSE_NONE ? " (--tls=off)" : " (not offered)");
	{
		struct err qe;
		info_command(&c, "QUIT", &r, &qe);
	}
	if (tls && !ti.verified) {
		err_set(e, ERR_UNAVAILABLE, SEED_TLS_VERIFY, "the server's certificate is not trusted: %s",
			ti.verdict);
		goto done;
	}
	if (!tls && use != TLSUSE_NONE && !(use == TLSUSE_STARTTLS_UNLESS_LOCAL && c.loopback)) {
		err_set(e, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE, "the server offers no TLS");
		goto done;
	}
	ret = 0;
done:
	conn_close(&c);
	reply_free(&r);
	return ret;
}

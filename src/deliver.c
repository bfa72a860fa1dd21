/* deliver.c - drive one SMTP transaction over one connection. */
#include "deliver.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_proxy.h"
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

/* AbsoluteTimeout: Timeout bounds the whole run, from now. */
static int64_t abs_deadline(const struct props *p)
{
	return p->absolute_timeout && p->timeout > 0 ? conn_now_ms() + (int64_t)p->timeout * 1000 : 0;
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
	if (p->protocol == 1)
		return 24; /* LMTP has no assigned port; 24 is the one in use */
	return p->ssl_start_mode == TLS_IMPLICIT ? 465 : 25;
}

void deliver_tcp_opts(const struct props *p, const char *host, struct tcp_opts *o)
{
	memset(o, 0, sizeof *o);
	o->host = host;
	o->port = deliver_port(p);
	o->source = p->local_host;
	o->source_port = (int)p->local_port;
	o->connect_timeout_s = p->connection_timeout;
	o->timeout_s = p->timeout;
	o->nodelay = p->tcp_nodelay;
	o->family = (int)p->use_ipv6;
	/* Setting any keep-alive timing turns keep-alive on (as the
	 * reference says). */
	o->keepalive = p->tcp_keepalive || p->keepalive_time || p->keepalive_interval ||
		       p->keepalive_retry_count;
	o->keepalive_time_ms = p->keepalive_time;
	o->keepalive_interval_ms = p->keepalive_interval;
	o->keepalive_count = p->keepalive_retry_count;
	o->linger = p->linger;
	o->linger_time_s = p->linger_time;
	o->max_rate = p->max_transfer_rate;
}

/* Connect to host (one of MailServer's relays) as p says, through the
 * proxy that applies to it.  Errors: those of conn_tcp_open and
 * proxy_choose. */
static int open_connection(const struct props *p, const char *host, int64_t abs_deadline,
			   struct conn *c, struct err *e)
{
	struct tcp_opts to;
	struct proxy px;
	deliver_tcp_opts(p, host, &to);
	to.abs_deadline_ms = abs_deadline;
	int use = proxy_choose(p->proxy, nonempty(p->proxy_password), p->proxy_exceptions, host, &px, e);
	if (use < 0)
		return -1;
	if (use) {
		char d[400];
		log_info("connecting through %s", proxy_describe(&px, d, sizeof d));
		to.proxy = &px;
	}
	int r = conn_tcp_open(c, &to, e);
	if (use)
		proxy_free(&px);
	return r;
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

/* The message through the dot-stuffer, then the final dot.  With
 * hold_tail what is left in the write buffer stays there: the next
 * transaction's commands (or the next read) take it along. */
static int send_body(struct conn *c, const struct message *m, bool hold_tail, struct err *e)
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
	if (rc == 0 && !hold_tail)
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

/* ---- BDAT (RFC 3030): the message in chunks, no dot-stuffing ---- */

/* Largest chunk when the chunks are pipelined; without PIPELINING the
 * whole message is one chunk, so no reply has to be waited for between
 * chunks. */
#define BDAT_CHUNK (4u << 20)

struct bdat_ctx {
	struct conn *c;
	struct dotstuff ds;     /* CR LF normalisation only (bdat mode) */
	bool raw;               /* BINARYMIME: the bytes as they are */
	char *out;
	size_t outcap;
	uint64_t left;          /* bytes of the message still to send */
	uint64_t chunk_left;    /* bytes of the current chunk still to send */
	uint64_t chunk_max;
	size_t nchunks;
};

/* Start the next chunk; the last one says LAST. */
static int bdat_header(struct bdat_ctx *b, struct err *e)
{
	char hdr[64];
	uint64_t n = b->left < b->chunk_max ? b->left : b->chunk_max;
	bool last = n == b->left;
	int l = snprintf(hdr, sizeof hdr, "BDAT %llu%s\r\n", (unsigned long long)n, last ? " LAST" : "");
	log_client(hdr, (size_t)l - 2, (size_t)-1);
	if (last) {
		/* From here on the server may take the message. */
		deliver_progress = DELIVER_UNCONFIRMED;
	}
	b->chunk_left = n;
	b->nchunks++;
	return conn_write(b->c, hdr, (size_t)l, e);
}

/* Write encoded bytes, cutting them into the announced chunks.  The
 * sizes were announced from message_size(): a message that changed
 * under us must not go out with a wrong size. */
static int bdat_put(struct bdat_ctx *b, const char *p, size_t n, struct err *e)
{
	while (n) {
		if (b->chunk_left == 0) {
			if (b->left == 0) {
				err_set(e, ERR_IO, SEED_FILE, "the message grew while it was being sent");
				return -1;
			}
			if (bdat_header(b, e) < 0)
				return -1;
		}
		size_t k = n < b->chunk_left ? n : (size_t)b->chunk_left;
		if (conn_write(b->c, p, k, e) < 0)
			return -1;
		b->chunk_left -= k;
		b->left -= k;
		p += k;
		n -= k;
	}
	return 0;
}

static int bdat_sink(void *ctx, const char *buf, size_t len, struct err *e)
{
	struct bdat_ctx *b = ctx;
	if (b->raw)
		return bdat_put(b, buf, len, e);
	size_t need = DOTSTUFF_MAX_OUT(len);
	if (need > b->outcap) {
		b->out = xrealloc(b->out, need);
		b->outcap = need;
	}
	size_t n = dotstuff_feed(&b->ds, buf, len, b->out);
	return bdat_put(b, b->out, n, e);
}

/* Send m as BDAT chunks; *nchunks gets how many.  Errors: those of the
 * connection; ERR_IO when the message is not the size announced. */
static int send_body_bdat(struct conn *c, const struct message *m, bool binary, bool pipelined,
			  size_t *nchunks, struct err *e)
{
	uint64_t size = message_size(m);
	struct bdat_ctx b = { .c = c, .raw = binary, .left = size,
			      .chunk_max = pipelined ? BDAT_CHUNK : (size ? size : 1) };
	char tail[DOTSTUFF_FINISH_MAX];
	int rc;

	dotstuff_init(&b.ds, true);
	if (size == 0)
		rc = bdat_header(&b, e); /* "BDAT 0 LAST" */
	else
		rc = message_stream(m, bdat_sink, &b, e);
	if (rc == 0 && !binary) {
		size_t n = dotstuff_finish(&b.ds, tail);
		rc = bdat_put(&b, tail, n, e);
	}
	if (rc == 0 && (b.left || b.chunk_left)) {
		err_set(e, ERR_IO, SEED_FILE, "the message shrank while it was being sent");
		rc = -1;
	}
	if (rc == 0)
		rc = conn_flush(c, e);
	free(b.out);
	*nchunks = b.nchunks;
	if (rc == 0)
		log_info("message sent: %llu bytes in %zu BDAT chunk%s", (unsigned long long)size,
			 b.nchunks, b.nchunks == 1 ? "" : "s");
	return rc;
}

/* ---- the channel: one connection, any number of transactions ---- */

struct deliver_channel {
	const struct props *p;
	struct session_cfg cfg;
	struct sasl_creds creds;
	char *secret;
	unsigned char *cb;
	enum tls_use use;
	int64_t abs_deadline;
	struct strlist relays;   /* MailServer split at commas */
	const char *host;        /* the relay connected to */

	struct conn c;
	bool connected;
	struct session s;
	bool session_live;       /* s was initialised and not freed */
	struct reply r;
	struct strbuf out;
	const struct message *m; /* being sent */

	bool dead;               /* no relay could be reached: fatal repeats */
	struct err fatal;

	/* the message whose end is sent but not answered yet (async) */
	deliver_outcome_fn pending_fn;
	void *pending_ctx;

	deliver_idle_fn idle_fn;  /* see deliver_set_idle() */
	void *idle_ctx;
};

/* The relays of MailServer ("a, b, c"), in order. */
static void split_relays(const char *list, struct strlist *out)
{
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *end = s;
		while (*end && *end != ',')
			end++;
		const char *t = end;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if (t > s)
			sl_add_owned(out, xstrndup(s, (size_t)(t - s)));
		s = end;
	}
}

static void tls_opts_for(const struct deliver_channel *ch, struct tls_opts *o)
{
	deliver_tls_opts(ch->p, o);
	o->host = ch->host;
}

/* Pump the session until it is idle (ACT_IDLE) or over (ACT_DONE,
 * ACT_ABORT); the connection is closed when it is over.  With may_defer,
 * and a server that pipelines, it returns ACT_SEND_BODY right after the
 * end of the message went out, its reply unread: the next transaction's
 * commands then follow in the same group (RFC 2920), and its replies
 * come after that reply. */
static enum sess_action pump(struct deliver_channel *ch, bool may_defer)
{
	struct session *s = &ch->s;
	struct conn *c = &ch->c;
	struct err ce;
	enum sess_action act;

	for (;;) {
		err_clear(&ce);
		sb_reset(&ch->out);
		act = session_next(s, &ch->out);
		if (act == ACT_DONE || act == ACT_IDLE)
			break;
		if (act == ACT_ABORT) {
			log_info("closing the connection without QUIT");
			break;
		}
		if (act == ACT_STARTTLS) {
			/* Bytes already here were sent before the handshake:
			 * answering them would execute injected commands. */
			if (conn_unread(c) > 0) {
				err_set(&ce, ERR_PROTOCOL, SEED_PROTOCOL,
					"the server sent %zu bytes after its 220 to STARTTLS, before the TLS "
					"handshake; refusing them (possible command injection)",
					conn_unread(c));
				session_conn_failed(s, &ce);
				continue;
			}
			struct tls_opts o;
			tls_opts_for(ch, &o);
			if (conn_tls_start(c, &o, NULL, &ce) < 0) {
				session_conn_failed(s, &ce);
				continue;
			}
			channel_binding(c, &ch->creds, &ch->cb);
			session_tls_done(s);
			continue;
		}
		if (act == ACT_SEND_BODY) {
			if (s->bdat) {
				size_t n = 0;
				if (send_body_bdat(c, ch->m, s->env->binary, s->caps.pipelining, &n, &ce) < 0) {
					session_conn_failed(s, &ce);
					continue;
				}
				session_chunks_sent(s, n);
			} else {
				if (send_body(c, ch->m, may_defer && s->caps.pipelining && s->cfg->hold, &ce) < 0) {
					session_conn_failed(s, &ce);
					continue;
				}
				session_body_sent(s);
			}
			if (may_defer && s->caps.pipelining && s->cfg->hold)
				return ACT_SEND_BODY;
			continue;
		}
		if (ch->out.len && send_commands(c, &ch->out, s->secret_from, &ce) < 0) {
			session_conn_failed(s, &ce);
			continue;
		}
		if (ch->idle_fn && ch->out.len && session_expected(s) && conn_unread(c) == 0)
			ch->idle_fn(ch->idle_ctx);
		while (session_expected(s)) {
			if (read_reply(c, &ch->r, &ce) < 0) {
				/* A malformed reply ends the session like a lost
				 * connection: we can no longer tell which command
				 * a reply answers. */
				session_conn_failed(s, &ce);
				break;
			}
			session_reply(s, &ch->r);
			if (s->delivered && s->dot_answered)
				deliver_progress = DELIVER_CONFIRMED;
		}
		/* A server that sends more than it was asked for would make us
		 * pair replies with the wrong commands.  (Before a TLS handshake
		 * the STARTTLS step says it more precisely.) */
		if (!session_expected(s) && s->state != S_DONE && s->state != S_TLS &&
		    conn_unread(c) > 0 && !c->eof) {
			err_set(&ce, ERR_PROTOCOL, SEED_PROTOCOL,
				"the server sent %zu unexpected bytes after its reply", conn_unread(c));
			session_conn_failed(s, &ce);
		}
	}
	if (act != ACT_IDLE && ch->connected) {
		conn_close(c);
		ch->connected = false;
	}
	return act;
}

static void drop_session(struct deliver_channel *ch)
{
	if (ch->session_live)
		session_free(&ch->s);
	ch->session_live = false;
	if (ch->connected)
		conn_close(&ch->c);
	ch->connected = false;
}

/* Connect to one relay and run the greeting, EHLO, TLS and AUTH.
 * Errors: those of the connection and the session. */
static int connect_relay(struct deliver_channel *ch, const char *host, struct err *e)
{
	const struct props *p = ch->p;

	ch->host = host;
	ch->creds.host = host;
	log_info("connecting to %s port %d", host, deliver_port(p));
	if (open_connection(p, host, ch->abs_deadline, &ch->c, e) < 0)
		return -1;
	ch->connected = true;
	log_info("connected to %s", ch->c.peer);
	ch->cfg.tls_active = false;
	if (ch->use == TLSUSE_IMPLICIT) {
		struct tls_opts o;
		tls_opts_for(ch, &o);
		ch->cfg.tls_active = true;
		if (conn_tls_start(&ch->c, &o, NULL, e) < 0) {
			drop_session(ch);
			return -1;
		}
		channel_binding(&ch->c, &ch->creds, &ch->cb);
	}
	/* The loopback exception: traffic to a relay on this machine never
	 * crosses a network, so plaintext there is not a downgrade. */
	ch->cfg.starttls = ch->use == TLSUSE_STARTTLS ||
			   (ch->use == TLSUSE_STARTTLS_UNLESS_LOCAL && !ch->c.loopback);
	session_init(&ch->s, &ch->cfg, NULL);
	ch->session_live = true;
	if (pump(ch, false) == ACT_IDLE)
		return 0;
	*e = ch->s.err;
	if (e->cls == ERR_OK)
		err_set(e, ERR_TEMP, SEED_COMM, "%s closed the connection", host);
	drop_session(ch);
	return -1;
}

/* Connect to the first relay that answers (--host a,b,c): a relay that
 * cannot be reached, or says 4xx before a transaction, passes the turn to
 * the next.  Errors: the last relay's, with what every relay said. */
static int channel_connect(struct deliver_channel *ch, struct err *e)
{
	struct strbuf why = STRBUF_INIT;
	int r = -1;

	for (size_t i = 0; i < ch->relays.n; i++) {
		err_clear(e);
		if (connect_relay(ch, ch->relays.v[i], e) == 0) {
			r = 0;
			break;
		}
		if (ch->relays.n > 1)
			sb_addf(&why, "%s%s: %s", why.len ? "; " : "", ch->relays.v[i], e->msg);
		if (e->cls != ERR_TEMP && e->cls != ERR_NOHOST)
			break; /* a configuration, TLS or policy failure: the same everywhere */
		if (i + 1 < ch->relays.n)
			log_info("relay %s failed (%s); trying %s", ch->relays.v[i], e->msg,
				 ch->relays.v[i + 1]);
	}
	if (r < 0 && ch->relays.n > 1) {
		struct err last = *e;
		err_set(e, last.cls, last.code, "no relay took the connection: %s", why.s);
		e->reply = last.reply;
		snprintf(e->enhanced, sizeof e->enhanced, "%s", last.enhanced);
	}
	sb_free(&why);
	return r;
}

/* What a message's own properties decide about its transaction; the
 * rest of the session configuration belongs to the connection. */
static void transaction_cfg(struct session_cfg *cfg, const struct props *p)
{
	static const char terminals[] = { 0, 'A', 'S', 'O' };
	cfg->stop_on_to = p->stop_on_to_errors;
	cfg->stop_on_cc = p->stop_on_cc_errors;
	cfg->stop_on_bcc = p->stop_on_bcc_errors;
	cfg->allow_empty_to = p->allow_empty_to;
	cfg->dsn_notify = nonempty(p->dsn_notify);
	cfg->dsn_ret = nonempty(p->dsn_return);
	cfg->dsn_envid = nonempty(p->dsn_envid);
	cfg->dsn_optional = p->dsn_optional;
	cfg->chunking = p->use_chunking;
	cfg->terminal = p->terminal >= 0 && p->terminal <= 3 ? terminals[p->terminal] : 0;
}

static int channel_new(const struct props *p, bool verify, const struct cmd_mode *cm,
		       struct deliver_channel **out, struct err *e)
{
	struct deliver_channel *ch = xcalloc(1, sizeof *ch);

	ch->p = p;
	ch->cfg = (struct session_cfg){
		.hello = deliver_hello_name(p),
		.allow_extensions = p->allow_extensions,
		.verify_only = verify,
		.commands = cm ? cm->commands : NULL,
		.on_reply = cm ? cm->on_reply : NULL,
		.reply_ctx = cm ? cm->ctx : NULL,
		.hold = true,
		.send_rset = p->send_rset,
		.lmtp = p->protocol == 1,
	};
	transaction_cfg(&ch->cfg, p);
	reply_init(&ch->r);
	split_relays(p->mail_server, &ch->relays);
	*out = ch;
	if (ch->relays.n == 0) {
		err_set(e, ERR_CONFIG, SEED_NO_SERVER, "no mail server: set host in ~/.smtpsendrc or give --host");
		return -1;
	}
	if (strpbrk(ch->cfg.hello, " \t\r\n") || !*ch->cfg.hello) {
		err_set(e, ERR_CONFIG, 0, "Hello name \"%s\" must be one word without spaces",
			ch->cfg.hello);
		return -1;
	}
	ch->use = deliver_tls_use(p);
	if (ch->use != TLSUSE_NONE) {
		/* A bad TLS configuration fails before anything is sent. */
		struct tls_opts o;
		deliver_tls_opts(p, &o);
		o.host = ch->relays.v[0];
		if (conn_tls_check_opts(&o, e) < 0)
			return -1;
	}
	/* Credentials, and the secret from wherever it lives, before
	 * connecting: a prompt or a failing password_command must not hold
	 * a connection open. */
	ch->cfg.auth = deliver_auth_wanted(p);
	if (ch->cfg.auth) {
		bool needs_secret = ascii_casecmp(ch->cfg.auth, "EXTERNAL") != 0 &&
				    ascii_casecmp(ch->cfg.auth, "GSSAPI") != 0 &&
				    ascii_casecmp(ch->cfg.auth, "GS2-KRB5") != 0;
		if (needs_secret && secret_get(p->user, ch->relays.v[0], p->password,
					       p->password_command, &ch->secret, e) < 0)
			return -1;
		ch->creds.user = p->user;
		ch->creds.password = ch->secret;
		ch->creds.authzid = nonempty(p->authorization_identity);
		ch->creds.host = ch->relays.v[0];
		ch->creds.port = deliver_port(p);
		ch->creds.service = "smtp";
		ch->cfg.creds = &ch->creds;
	}
	ch->abs_deadline = abs_deadline(p);
	return 0;
}

int deliver_open(const struct props *p, struct deliver_channel **out, struct err *e)
{
	if (channel_new(p, false, NULL, out, e) < 0) {
		deliver_close(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

void deliver_close(struct deliver_channel *ch)
{
	if (!ch)
		return;
	deliver_settle(ch);
	if (ch->connected && ch->session_live && ch->s.state == S_READY) {
		session_end(&ch->s);
		pump(ch, false);
	}
	drop_session(ch);
	reply_free(&ch->r);
	sb_free(&ch->out);
	secret_free(ch->secret);
	free(ch->cb);
	sl_free(&ch->relays);
	free(ch);
}

/* The outcome of the current transaction (or, with prev, of the one set
 * aside) as deliver_send() reports it: 0 when the server took the
 * message, else -1 with e set. */
static int outcome(struct session *s, bool prev, struct deliver_result *res, struct err *e)
{
	struct txn_outcome t = prev ? s->prev
				    : (struct txn_outcome){ .delivered = s->delivered,
							     .failed = s->failed,
							     .body_sent = s->body_sent,
							     .dot_answered = s->dot_answered,
							     .err = s->err };
	memset(res, 0, sizeof *res);
	res->caps = s->caps;
	res->delivered = t.delivered;
	res->possibly_delivered = !t.delivered && t.body_sent && !t.dot_answered;
	if (t.delivered)
		return 0;
	if (!t.failed && t.body_sent) {
		/* never settled either way: treat it as unanswered, so that
		 * the caller keeps the message (a duplicate, not a loss) */
		err_set(e, ERR_TEMP, SEED_COMM, "no answer to the end of the message: it may have been "
			"delivered (possible duplicate if sent again)");
		return -1;
	}
	if (t.failed)
		*e = t.err;
	return -1;
}

/* Read what is still owed to the transaction set aside. */
static void settle_prev(struct deliver_channel *ch)
{
	struct err ce;
	while (ch->connected && !session_prev_settled(&ch->s)) {
		err_clear(&ce);
		if (read_reply(&ch->c, &ch->r, &ce) < 0) {
			session_conn_failed(&ch->s, &ce);
			drop_session(ch);
			break;
		}
		session_reply(&ch->s, &ch->r);
	}
}

/* Hand the outcome of the message whose end was left unanswered to its
 * caller: from s->prev once a later transaction began, else from the
 * session itself. */
static void fire_pending(struct deliver_channel *ch, bool from_prev)
{
	struct deliver_result res;
	struct err e = { 0 };
	deliver_outcome_fn fn = ch->pending_fn;
	if (!fn)
		return;
	ch->pending_fn = NULL;
	int r = outcome(&ch->s, from_prev, &res, &e);
	fn(ch->pending_ctx, r, &res, &e);
}

void deliver_set_idle(struct deliver_channel *ch, deliver_idle_fn fn, void *ctx)
{
	ch->idle_fn = fn;
	ch->idle_ctx = ctx;
}

void deliver_settle(struct deliver_channel *ch)
{
	if (!ch || !ch->pending_fn)
		return;
	if (ch->connected) {
		enum sess_action act = pump(ch, false);
		if (act != ACT_IDLE)
			drop_session(ch);
	}
	fire_pending(ch, false);
}

/* One transaction on the channel, connecting first when needed.  With
 * may_defer it may return 1: the message went out and the server's
 * answer to it is read later (deliver_send_async). */
static int channel_transaction(struct deliver_channel *ch, const struct props *mp,
			       struct message *m, struct envelope *env, bool may_defer,
			       struct deliver_result *res, struct err *e)
{
	memset(res, 0, sizeof *res);
	transaction_cfg(&ch->cfg, mp ? mp : ch->p);
	deliver_progress = DELIVER_NOT_SENT;
	if (ch->dead) {
		*e = ch->fatal;
		return -1;
	}
	if (m)
		env->size = message_size(m);
	ch->m = m;
	for (int attempt = 0;; attempt++) {
		bool reused = ch->connected;
		if (!ch->connected) {
			drop_session(ch);
			if (channel_connect(ch, e) < 0) {
				/* every relay failed: the next messages would only
				 * fail the same way, slowly */
				ch->dead = true;
				ch->fatal = *e;
				return -1;
			}
		}
		struct session *s = &ch->s;
		/* a message still waiting for its answer is set aside by
		 * session_begin() and answered among this one's replies */
		bool early = ch->pending_fn != NULL;
		session_begin(s, env);
		enum sess_action act = pump(ch, may_defer);
		bool deferred = act == ACT_SEND_BODY;
		if (early) {
			if (!deferred && act != ACT_IDLE)
				drop_session(ch);
			settle_prev(ch);
			fire_pending(ch, true);
		}
		if (deferred)
			return 1;
		res->caps = s->caps;
		res->delivered = s->delivered;
		res->possibly_delivered = !s->delivered && s->body_sent && !s->dot_answered;
		if (act != ACT_IDLE)
			drop_session(ch);
		if (s->delivered || (!s->failed && act == ACT_IDLE))
			return 0;
		/* A connection kept from an earlier message that turns out
		 * dead before the server took our MAIL (it closed the idle
		 * connection, maybe with a 421 for the timeout): connect
		 * again, once. */
		if (reused && attempt == 0 && act != ACT_IDLE && !s->mail_ok && !s->body_sent &&
		    (s->err.reply == 0 || s->err.reply == 421)) {
			log_info("the kept connection is gone (%s); connecting again", s->err.msg);
			continue;
		}
		*e = s->err;
		return -1;
	}
}

int deliver_send(struct deliver_channel *ch, const struct props *p, struct message *m,
		 struct envelope *env, struct deliver_result *res, struct err *e)
{
	return channel_transaction(ch, p, m, env, false, res, e);
}

void deliver_send_async(struct deliver_channel *ch, const struct props *p, struct message *m,
			struct envelope *env, deliver_outcome_fn done, void *ctx)
{
	struct deliver_result res;
	struct err e = { 0 };
	int r = channel_transaction(ch, p, m, env, true, &res, &e);
	if (r == 1) {
		ch->pending_fn = done;
		ch->pending_ctx = ctx;
		return;
	}
	done(ctx, r, &res, &e);
}

/* The settings that make a connection what it is: messages whose
 * settings agree on all of these can share one. */
static const char *const connection_settings[] = {
	"MailServer", "MailPort", "Hello", "Timeout", "ConnectionTimeout", "AllowExtensions",
	"LocalHost", "LocalPort", "TcpNoDelay", "UseIPv6", "AbsoluteTimeout", "TCPKeepAlive",
	"KeepAliveTime", "KeepAliveInterval", "KeepAliveRetryCount", "Linger", "LingerTime",
	"MaxTransferRate", "Firewall", "FirewallPassword", "ProxyExceptionsList", "SSLStartMode",
	"SSLCACertFilePaths", "SSLAcceptServerCert", "SSLCert", "SSLCertKey", "SSLCertPassword",
	"SSLEnabledProtocols", "SSLEnabledCipherSuites", "SSLKeyLogFile", "TLSHostOverride",
	"ReuseSSLSession", "AuthMechanism", "User", "Password", "PasswordCommand",
	"AuthorizationIdentity", "SendRSET", "Protocol", "Trace", "TrafficLog", "MaxLineLength",
	"MaskSensitiveData",
};

bool deliver_same_connection(const struct props *a, const struct props *b)
{
	return props_equal(a, b, connection_settings,
			   sizeof connection_settings / sizeof *connection_settings);
}

int deliver_message(const struct props *p, struct message *m, struct envelope *env,
		    struct deliver_result *res, struct err *e)
{
	struct deliver_channel *ch;
	memset(res, 0, sizeof *res);
	if (deliver_open(p, &ch, e) < 0)
		return -1;
	int r = channel_transaction(ch, NULL, m, env, false, res, e);
	deliver_close(ch);
	return r;
}

/* Verify and commands modes end with their own QUIT. */
static int run_once(const struct props *p, struct envelope *env, bool verify,
		    const struct cmd_mode *cm, struct deliver_result *res, struct err *e)
{
	struct deliver_channel *ch;
	memset(res, 0, sizeof *res);
	if (channel_new(p, verify, cm, &ch, e) < 0) {
		deliver_close(ch);
		return -1;
	}
	int r = channel_transaction(ch, NULL, NULL, env, false, res, e);
	deliver_close(ch);
	/* these modes end with QUIT, never with a delivery */
	if (r < 0 && e->cls == ERR_OK)
		return 0;
	return r;
}

int deliver_commands(const struct props *p, const struct strlist *commands,
		     void (*on_reply)(void *ctx, const char *command, const struct reply *r),
		     void *ctx, struct err *e)
{
	struct envelope env = { .from = (char *)"" };
	struct deliver_result res;
	struct cmd_mode cm = { commands, on_reply, ctx };
	return run_once(p, &env, false, &cm, &res, e);
}

int deliver_verify(const struct props *p, struct envelope *env, struct deliver_result *res,
		   struct err *e)
{
	return run_once(p, env, true, NULL, res, e);
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
	enum tls_use use = deliver_tls_use(p);
	bool tls = false;
	int ret = -1;
	char cmd[300];
	struct strlist relays = STRLIST_INIT;

	/* the first relay of a list: the one normally used */
	split_relays(p->mail_server, &relays);
	if (relays.n == 0) {
		err_set(e, ERR_CONFIG, SEED_NO_SERVER, "no mail server: give --host");
		return -1;
	}
	memset(&ti, 0, sizeof ti);
	deliver_tls_opts(p, &o);
	o.host = relays.v[0];
	o.no_verify = true; /* report the verdict rather than stop at it */
	o.no_resume = true;
	int opened = use != TLSUSE_NONE && conn_tls_check_opts(&o, e) < 0
			     ? -1 : open_connection(p, relays.v[0], abs_deadline(p), &c, e);
	if (opened < 0) {
		sl_free(&relays);
		return -1;
	}
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
	sl_free(&relays);
	return ret;
}

/* deliver.c - drive one SMTP transaction over one connection. */
#include "deliver.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		if (k > 0)
			return 0;
	}
}

/* Write commands, one trace line each. */
static int send_commands(struct conn *c, const struct strbuf *out, struct err *e)
{
	const char *s = out->s;
	const char *end = out->s + out->len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t l = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
		log_client(s, l >= 2 ? l - 2 : l, (size_t)-1);
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

int deliver_message(const struct props *p, struct message *m, struct envelope *env,
		    struct deliver_result *res, struct err *e)
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
	};
	struct tcp_opts to = {
		.host = p->mail_server,
		.port = (int)p->mail_port,
		.source = p->local_host,
		.source_port = (int)p->local_port,
		.connect_timeout_s = p->connection_timeout,
		.timeout_s = p->timeout,
		.nodelay = p->tcp_nodelay,
	};
	struct strbuf out = STRBUF_INIT;
	struct reply r;
	struct err ce;

	memset(res, 0, sizeof *res);
	if (strpbrk(cfg.hello, " \t\r\n") || !*cfg.hello) {
		err_set(e, ERR_CONFIG, 0, "Hello name \"%s\" must be one word without spaces",
			cfg.hello);
		return -1;
	}
	log_info("connecting to %s port %ld", p->mail_server, p->mail_port);
	if (conn_tcp_open(&c, &to, e) < 0)
		return -1;
	log_info("connected to %s", c.peer);
	if (p->ssl_start_mode == TLS_AUTO && !c.loopback) {
		/* The default never sends in plaintext to another machine. */
		err_set(e, ERR_UNAVAILABLE, 0,
			"%s is not on this machine and TLS is not available in this version; "
			"use --tls=off to send in plaintext anyway", c.peer);
		conn_close(&c);
		return -1;
	}

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
		if (act == ACT_SEND_BODY) {
			if (send_body(&c, m, &ce) < 0) {
				session_conn_failed(&s, &ce);
				continue;
			}
			session_body_sent(&s);
			continue;
		}
		if (out.len && send_commands(&c, &out, &ce) < 0) {
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
		 * pair replies with the wrong commands. */
		if (!session_expected(&s) && s.state != S_DONE && conn_unread(&c) > 0 &&
		    !c.eof) {
			err_set(&ce, ERR_PROTOCOL, SEED_PROTOCOL,
				"the server sent %zu unexpected bytes after its reply", conn_unread(&c));
			session_conn_failed(&s, &ce);
		}
	}
	conn_close(&c);
	reply_free(&r);
	sb_free(&out);

	res->delivered = s.delivered;
	res->possibly_delivered = !s.delivered && s.body_sent;
	res->caps = s.caps;
	if (s.delivered)
		return 0;
	*e = s.err;
	return -1;
}

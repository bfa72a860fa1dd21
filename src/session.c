/* session.c - the SMTP client state machine (RFC 5321, RFC 2920). */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "log.h"

static const char *const state_names[] = {
	[S_GREETING] = "GREETING", [S_EHLO] = "EHLO", [S_HELO] = "HELO",
	[S_STARTTLS] = "STARTTLS", [S_TLS] = "TLS", [S_AUTH] = "AUTH", [S_MAIL] = "MAIL",
	[S_DATA] = "DATA", [S_BODY] = "BODY", [S_DOT] = "DOT", [S_QUIT] = "QUIT", [S_DONE] = "DONE",
	[S_READY] = "READY",
};

const char *session_state_name(enum sess_state st)
{
	return state_names[st];
}

/* Every state change goes through here, so the trace shows them all. */
static void set_state(struct session *s, enum sess_state st)
{
	if (s->state != st)
		log_info("state %s -> %s", state_names[s->state], state_names[st]);
	s->state = st;
}

void session_init(struct session *s, const struct session_cfg *cfg, struct envelope *env)
{
	memset(s, 0, sizeof *s);
	s->cfg = cfg;
	s->env = env;
	s->state = S_GREETING;
	s->quit_ok = true;
	s->tls_active = cfg->tls_active;
	s->secret_from = (size_t)-1;
	if (env) {
		s->in_txn = true;
		s->transactions = 1;
	}
}

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

void session_free(struct session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
	wipe_free(s->auth_response);
	s->auth_response = NULL;
}

/* After a successful EHLO/HELO (and TLS when required): authenticate
 * when credentials are configured, else start the transaction. */
static void after_hello(struct session *s)
{
	set_state(s, s->cfg->auth ? S_AUTH : S_MAIL);
}

size_t session_expected(const struct session *s)
{
	return s->owed;
}

/* Expect n replies of kind k (idx: the recipient, the command). */
static void push_n(struct session *s, enum cmd_kind k, size_t idx, size_t n)
{
	if (n == 0)
		return;
	size_t at = (s->qhead + s->qlen) % SESSION_MAXQ;
	s->q[at].kind = k;
	s->q[at].idx = idx;
	s->q[at].count = n;
	s->qlen++;
	s->owed += n;
}

static void push(struct session *s, enum cmd_kind k, size_t idx)
{
	push_n(s, k, idx, 1);
}

/* Say QUIT; its reply ends the session. */
static enum sess_action say_quit(struct session *s, struct strbuf *out)
{
	set_state(s, S_QUIT);
	sb_adds(out, "QUIT\r\n");
	push(s, C_QUIT, 0);
	return ACT_SEND;
}

/* The transaction is over and the connection usable (hold mode). */
static enum sess_action go_idle(struct session *s)
{
	s->in_txn = false;
	set_state(s, S_READY);
	return ACT_IDLE;
}

/* Fail the transaction with the server's reply attached (error 161). */
static void fail_reply(struct session *s, enum err_class cls, const char *what,
		       const struct reply *r)
{
	char line[600];
	if (s->failed)
		return;
	s->failed = true;
	reply_first_line(r, line, sizeof line);
	err_set(&s->err, cls, SEED_PROTOCOL, "%s: %s", what, line);
	s->err.reply = r->code;
	snprintf(s->err.enhanced, sizeof s->err.enhanced, "%s", r->enhanced);
	if (r->code == 421) {
		/* The server is closing the channel: no QUIT. */
		s->quit_ok = false;
	}
}

static void fail(struct session *s, enum err_class cls, int code, const char *msg)
{
	if (s->failed)
		return;
	s->failed = true;
	err_set(&s->err, cls, code, "%s", msg);
}

/* A reply's class decides temporary versus permanent once, here.  Where
 * the basic code says neither (a 2xx or 3xx where a refusal was meant, a
 * code out of range), the enhanced status code decides (RFC 3463). */
static enum err_class class_of(const struct reply *r, enum err_class permanent)
{
	int cls = reply_class(r);
	if (cls == 4)
		return ERR_TEMP;
	if (cls == 5)
		return permanent;
	if (r->enhanced[0] == '4')
		return ERR_TEMP;
	if (r->enhanced[0] == '5')
		return permanent;
	return ERR_PROTOCOL;
}

static void parse_caps(struct session *s, const struct reply *r)
{
	struct caps *c = &s->caps;
	size_t pos = 0;
	const char *l;
	size_t len;
	bool first = true;

	memset(c, 0, sizeof *c);
	c->esmtp = true;
	while (reply_next_line(r, &pos, &l, &len)) {
		char kw[64];
		size_t k = 0;
		if (first) {
			/* the first line is the server's greeting text */
			first = false;
			continue;
		}
		while (k < len && k < sizeof kw - 1 && l[k] != ' ' && l[k] != '=') {
			kw[k] = l[k];
			k++;
		}
		kw[k] = '\0';
		const char *arg = k < len ? l + k + 1 : "";
		size_t alen = k < len ? len - k - 1 : 0;
		if (ascii_casecmp(kw, "PIPELINING") == 0)
			c->pipelining = true;
		else if (ascii_casecmp(kw, "8BITMIME") == 0)
			c->eightbitmime = true;
		else if (ascii_casecmp(kw, "SMTPUTF8") == 0)
			c->smtputf8 = true;
		else if (ascii_casecmp(kw, "DSN") == 0)
			c->dsn = true;
		else if (ascii_casecmp(kw, "CHUNKING") == 0)
			c->chunking = true;
		else if (ascii_casecmp(kw, "BINARYMIME") == 0)
			c->binarymime = true;
		else if (ascii_casecmp(kw, "STARTTLS") == 0)
			c->starttls = true;
		else if (ascii_casecmp(kw, "ENHANCEDSTATUSCODES") == 0)
			c->enhanced = true;
		else if (ascii_casecmp(kw, "SIZE") == 0) {
			c->size = true;
			c->size_max = 0;
			for (size_t i = 0; i < alen && arg[i] >= '0' && arg[i] <= '9'; i++) {
				if (c->size_max > (UINT64_MAX - 9) / 10)
					break;
				c->size_max = c->size_max * 10 + (uint64_t)(arg[i] - '0');
			}
		} else if (ascii_casecmp(kw, "AUTH") == 0) {
			size_t n = alen < sizeof c->auth - 1 ? alen : sizeof c->auth - 1;
			memcpy(c->auth, arg, n);
			c->auth[n] = '\0';
		}
	}
}

static bool wants_dsn(const struct session *s)
{
	if (s->cfg->dsn_notify || s->cfg->dsn_ret || s->cfg->dsn_envid)
		return true;
	for (size_t i = 0; i < s->env->nrcpt; i++)
		if (s->env->rcpt[i].notify || s->env->rcpt[i].orcpt)
			return true;
	return false;
}

/* BDAT for this transaction: offered, wanted, and never for -bv. */
static bool use_bdat(const struct session *s)
{
	return s->caps.chunking && (s->cfg->chunking || s->env->binary) && !s->cfg->verify_only;
}

static const char *mail_verb(const struct session *s)
{
	switch (s->cfg->terminal) {
	case 'A': return "SAML";
	case 'O': return "SOML";
	case 'S': return "SEND";
	default: return "MAIL";
	}
}

/* RCPT TO with its DSN parameters: the recipient's own NOTIFY/ORCPT,
 * else the run's NOTIFY with an ORCPT naming the address as given. */
static void add_rcpt(struct session *s, struct strbuf *out, const struct rcpt *rc)
{
	sb_addf(out, "RCPT TO:<%s>", rc->addr);
	if (s->caps.dsn) {
		const char *notify = rc->notify ? rc->notify : s->cfg->dsn_notify;
		if (notify)
			sb_addf(out, " NOTIFY=%s", notify);
		if (rc->orcpt) {
			sb_adds(out, " ORCPT=");
			sb_adds(out, rc->orcpt);
		} else if (notify) {
			sb_adds(out, " ORCPT=rfc822;");
			dsn_xtext(out, rc->addr);
		}
	}
	sb_adds(out, "\r\n");
}

/* Queue MAIL (first time), the next batch of RCPTs, and DATA when every
 * recipient has been asked for.  Without PIPELINING one command at a time. */
static void next_batch(struct session *s, struct strbuf *out)
{
	struct envelope *env = s->env;
	bool pipe = s->caps.pipelining;
	size_t batch = 0;

	if (s->next_rcpt == 0 && !s->mail_ok && s->owed == s->prev_owed && !s->got_354) {
		if (s->need_rset) {
			/* RFC 2920: RSET may lead a pipelined group */
			s->need_rset = false;
			sb_adds(out, "RSET\r\n");
			push(s, C_RSET, 0);
			if (!pipe)
				return;
		}
		sb_addf(out, "%s FROM:<%s>", mail_verb(s), env->from);
		if (s->caps.size && env->size)
			sb_addf(out, " SIZE=%llu", (unsigned long long)env->size);
		if (env->binary)
			sb_adds(out, " BODY=BINARYMIME");
		else if ((env->body_8bit || env->declared_8bit) && s->caps.eightbitmime)
			sb_adds(out, " BODY=8BITMIME");
		if (env->smtputf8 && s->caps.smtputf8)
			sb_adds(out, " SMTPUTF8");
		if (s->caps.dsn && s->cfg->dsn_ret)
			sb_addf(out, " RET=%s", s->cfg->dsn_ret);
		if (s->caps.dsn && s->cfg->dsn_envid) {
			sb_adds(out, " ENVID=");
			dsn_xtext(out, s->cfg->dsn_envid);
		}
		sb_adds(out, "\r\n");
		push(s, C_MAIL, 0);
		if (!pipe)
			return;
	}
	while (s->next_rcpt < env->nrcpt && batch < SESSION_RCPT_BATCH) {
		add_rcpt(s, out, &env->rcpt[s->next_rcpt]);
		push(s, C_RCPT, s->next_rcpt);
		s->next_rcpt++;
		batch++;
		if (!pipe)
			return;
	}
	if (s->next_rcpt == env->nrcpt && s->cfg->verify_only) {
		/* -bv: the RCPT replies are the answer; nothing is sent */
		if (!pipe && s->owed > s->prev_owed)
			return;
		say_quit(s, out);
		return;
	}
	if (s->next_rcpt == env->nrcpt && use_bdat(s)) {
		/* BDAT goes after the RCPT replies: never data for nobody */
		s->bdat = true;
		set_state(s, S_DATA);
	} else if (s->next_rcpt == env->nrcpt) {
		sb_adds(out, "DATA\r\n");
		push(s, C_DATA, 0);
		set_state(s, S_DATA);
	}
}

/* Before MAIL: can this server take this message at all? */
static bool check_server_fit(struct session *s)
{
	struct envelope *env = s->env;
	char msg[256];

	if (env->binary && !(s->caps.chunking && s->caps.binarymime)) {
		fail(s, ERR_UNAVAILABLE, SEED_PROTOCOL,
		     "BODY=BINARYMIME was asked for (-B BINARYMIME) but the server does not offer "
		     "CHUNKING and BINARYMIME");
		return false;
	}
	if (env->body_8bit && !s->caps.eightbitmime && !env->binary) {
		fail(s, ERR_DATA, SEED_PROTOCOL,
		     "the message holds 8-bit data but the server does not offer 8BITMIME; "
		     "encode it (quoted-printable or base64) or use a server that accepts 8-bit mail");
		return false;
	}
	if (env->smtputf8 && !s->caps.smtputf8) {
		fail(s, ERR_DATA, SEED_PROTOCOL,
		     "an address needs SMTPUTF8 (non-ASCII local part) but the server does not offer it");
		return false;
	}
	if (wants_dsn(s) && !s->caps.dsn && !s->cfg->dsn_optional) {
		fail(s, ERR_UNAVAILABLE, SEED_PROTOCOL,
		     "delivery status notifications were requested but the server does not offer DSN; "
		     "set DsnOptional=true to send without them");
		return false;
	}
	if (s->caps.size && s->caps.size_max && env->size > s->caps.size_max && !s->cfg->verify_only) {
		snprintf(msg, sizeof msg,
			 "the message is %llu bytes but the server accepts at most %llu (SIZE)",
			 (unsigned long long)env->size, (unsigned long long)s->caps.size_max);
		fail(s, ERR_DATA, SEED_PROTOCOL, msg);
		return false;
	}
	return true;
}

static enum err_class refusal_class(const struct session *s);

/* The AUTH command, or the next line of the SASL exchange. */
static void next_auth(struct session *s, struct strbuf *out)
{
	struct err e = { 0 };
	char *initial = NULL;

	if (s->auth_response) {
		s->secret_from = 0; /* the whole line is SASL data */
		sb_addf(out, "%s\r\n", s->auth_response);
		wipe_free(s->auth_response);
		s->auth_response = NULL;
		push(s, C_AUTH, 0);
		return;
	}
	if (!s->caps.auth[0]) {
		fail(s, ERR_UNAVAILABLE, SEED_PROTOCOL,
		     s->tls_active ? "credentials are configured but the server offers no AUTH"
				   : "credentials are configured but the server offers no AUTH without "
				     "TLS; use --tls=starttls or --tls=implicit");
		return;
	}
	if (sasl_choose(s->cfg->auth, s->caps.auth, s->tls_active, s->cfg->creds->cb_data != NULL,
			&s->mech, &e) < 0 ||
	    sasl_start(s->mech, s->cfg->creds, &s->sasl, &initial, &e) < 0) {
		s->failed = true;
		s->err = e;
		return;
	}
	log_info("authenticating as %s with %s", s->cfg->creds->user ? s->cfg->creds->user : "",
		 s->mech);
	sb_addf(out, "AUTH %s", s->mech);
	if (initial) {
		s->secret_from = out->len + 1;
		sb_addf(out, " %s", initial);
		wipe_free(initial);
	}
	sb_adds(out, "\r\n");
	push(s, C_AUTH, 0);
}

/* The server's answer to AUTH or to a SASL line. */
static int on_auth(struct session *s, const struct reply *r)
{
	char what[700];
	const char *user = s->cfg->creds->user ? s->cfg->creds->user : "";

	if (r->code == 235 && s->sasl && !sasl_finished(s->sasl)) {
		/* SCRAM and DIGEST-MD5 make the server prove it knows the
		 * password; a 235 before that proof is not to be trusted. */
		fail_reply(s, ERR_AUTH, "the server claimed success before proving its identity", r);
		return -1;
	}
	if (r->code == 235) {
		s->authenticated = true;
		sasl_free(s->sasl);
		s->sasl = NULL;
		set_state(s, S_MAIL);
		return 0;
	}
	if (r->code == 334 && !s->auth_cancelled) {
		struct err e = { 0 };
		if (r->truncated) {
			err_set(&e, ERR_PROTOCOL, SEED_PROTOCOL,
				"the server's SASL challenge is too long; authentication cancelled");
			s->auth_cancelled = true;
			s->auth_err = e;
			s->auth_response = xstrdup("*");
		} else if (sasl_step(s->sasl, r->text ? r->text : "", &s->auth_response, &e) < 0) {
			/* cancel the exchange (RFC 4954 section 4), report why */
			s->auth_cancelled = true;
			s->auth_err = e;
			s->auth_response = xstrdup("*");
		}
		return 0;
	}
	if (s->auth_cancelled) {
		s->failed = true;
		s->err = s->auth_err;
		return -1;
	}
	const char *detail = s->sasl ? sasl_error_detail(s->sasl) : NULL;
	if (reply_class(r) == 4) {
		fail_reply(s, ERR_TEMP, "authentication is not possible right now", r);
		return -1;
	}
	switch (r->code) {
	case 535:
		snprintf(what, sizeof what, "the server refused the credentials of %.200s (%s)%s%.200s",
			 user, s->mech, detail ? "; " : "", detail ? detail : "");
		fail_reply(s, ERR_AUTH, what, r);
		break;
	case 534:
		snprintf(what, sizeof what, "%s is not accepted for %.200s: the server may want an app "
			 "password or another mechanism (--auth)", s->mech, user);
		fail_reply(s, ERR_AUTH, what, r);
		break;
	case 538:
		snprintf(what, sizeof what, "the server wants TLS before %s (--tls=starttls)", s->mech);
		fail_reply(s, ERR_AUTH, what, r);
		break;
	case 504:
		snprintf(what, sizeof what, "the server does not support %s after all", s->mech);
		fail_reply(s, ERR_UNAVAILABLE, what, r);
		break;
	default:
		snprintf(what, sizeof what, "authentication of %.200s with %s failed", user, s->mech);
		fail_reply(s, ERR_AUTH, what, r);
	}
	return -1;
}

enum sess_action session_next(struct session *s, struct strbuf *out)
{
	s->secret_from = (size_t)-1;
	/* replies still owed to this transaction: read them first (those
	 * of the one before may follow its commands) */
	if (s->owed > s->prev_owed)
		return ACT_SEND;

	if (s->failed && s->state != S_QUIT && s->state != S_DONE && s->state != S_READY) {
		if (s->got_354 && !s->body_sent) {
			/* DATA was accepted but the message must not go out:
			 * the only safe way back is to drop the connection
			 * before the final dot, which aborts the transaction. */
			set_state(s, S_DONE);
			return ACT_ABORT;
		}
		if (!s->quit_ok) {
			set_state(s, S_DONE);
			return ACT_ABORT;
		}
		if (s->in_txn && s->cfg->hold) {
			/* only this transaction failed: the connection can
			 * carry the next one (after RSET) */
			return go_idle(s);
		}
		return say_quit(s, out);
	}

	switch (s->state) {
	case S_GREETING:
		push(s, C_GREETING, 0);
		return ACT_SEND;
	case S_EHLO:
		sb_addf(out, "%s %s\r\n", s->cfg->lmtp ? "LHLO" : "EHLO", s->cfg->hello);
		push(s, C_EHLO, 0);
		return ACT_SEND;
	case S_HELO:
		sb_addf(out, "HELO %s\r\n", s->cfg->hello);
		push(s, C_HELO, 0);
		return ACT_SEND;
	case S_STARTTLS:
		sb_adds(out, "STARTTLS\r\n");
		push(s, C_STARTTLS, 0);
		return ACT_SEND;
	case S_TLS:
		return ACT_STARTTLS;
	case S_AUTH:
		next_auth(s, out);
		if (s->failed && !out->len)
			return session_next(s, out);
		return ACT_SEND;
	case S_MAIL:
		if (!s->in_txn) {
			/* greeting, EHLO, TLS and AUTH are done */
			return go_idle(s);
		}
		if (s->cfg->commands) {
			/* one at a time: a raw command's reply can be anything */
			if (s->next_command < s->cfg->commands->n) {
				sb_addf(out, "%s\r\n", s->cfg->commands->v[s->next_command]);
				push(s, C_USER, s->next_command++);
			} else {
				say_quit(s, out);
			}
			return ACT_SEND;
		}
		if (s->next_rcpt == 0 && !s->mail_ok && !check_server_fit(s))
			return session_next(s, out);
		next_batch(s, out);
		return ACT_SEND;
	case S_DATA:
		/* DATA has been answered, or with BDAT every RCPT (owed == 0). */
		if (s->bdat && !s->failed && s->accepted == 0) {
			fail(s, refusal_class(s), SEED_NO_RCPT,
			     "the server accepted no recipient; nothing was sent");
			return session_next(s, out);
		}
		if (s->got_354 || (s->bdat && !s->failed)) {
			set_state(s, S_BODY);
			return ACT_SEND_BODY;
		}
		return session_next(s, out);
	case S_BODY:
		return ACT_SEND_BODY;
	case S_DOT:
		/* the end of the data has been answered */
		if (s->cfg->hold)
			return go_idle(s);
		return say_quit(s, out);
	case S_READY:
		if (!s->ending)
			return ACT_IDLE;
		return say_quit(s, out);
	case S_QUIT:
	case S_DONE:
		set_state(s, S_DONE);
		return ACT_DONE;
	}
	return ACT_DONE;
}

/* Exchange the current transaction's outcome with s->prev. */
static void swap_txn(struct session *s)
{
	struct txn_outcome cur = {
		.env = s->env, .delivered = s->delivered, .failed = s->failed,
		.body_sent = s->body_sent, .dot_answered = s->dot_answered, .err = s->err,
		.lmtp_next = s->lmtp_next, .lmtp_ok = s->lmtp_ok,
	};
	s->env = s->prev.env;
	s->delivered = s->prev.delivered;
	s->failed = s->prev.failed;
	s->body_sent = s->prev.body_sent;
	s->dot_answered = s->prev.dot_answered;
	s->err = s->prev.err;
	s->lmtp_next = s->prev.lmtp_next;
	s->lmtp_ok = s->prev.lmtp_ok;
	s->prev = cur;
}

bool session_prev_settled(const struct session *s)
{
	return s->prev_owed == 0;
}

void session_begin(struct session *s, struct envelope *env)
{
	/* after a transaction that did not end well the server may still
	 * hold its MAIL: RSET then whatever SendRSET says (unknown yet for
	 * one whose end is still unanswered: RSET) */
	bool prev_clean = s->delivered && !s->failed;
	if (s->owed && s->state == S_DOT && s->prev_owed == 0) {
		swap_txn(s);
		s->prev_owed = s->owed;
		prev_clean = false;
	}
	s->env = env;
	s->next_rcpt = 0;
	s->accepted = 0;
	s->mail_ok = false;
	s->got_354 = false;
	s->stop = false;
	s->failed = false;
	s->delivered = false;
	s->body_sent = false;
	s->dot_answered = false;
	s->bdat = false;
	s->lmtp_next = 0;
	s->lmtp_ok = 0;
	err_clear(&s->err);
	s->in_txn = true;
	s->need_rset = s->transactions++ > 0 && (s->cfg->send_rset || !prev_clean);
	set_state(s, S_MAIL);
}

void session_end(struct session *s)
{
	s->ending = true;
}

static bool stops_on(const struct session *s, enum rcpt_kind k)
{
	switch (k) {
	case RCPT_TO: return s->cfg->stop_on_to;
	case RCPT_CC: return s->cfg->stop_on_cc;
	case RCPT_BCC: return s->cfg->stop_on_bcc;
	}
	return true;
}

static void on_rcpt(struct session *s, size_t idx, const struct reply *r)
{
	struct rcpt *rc = &s->env->rcpt[idx];
	char line[600];

	rc->code = r->code;
	free(rc->reply);
	rc->reply = xstrdup(reply_first_line(r, line, sizeof line));
	if (!s->mail_ok) {
		/* pipelined after a refused MAIL: not this recipient's fault */
		rc->code = 0;
		return;
	}
	if (reply_class(r) == 2) {
		rc->accepted = true;
		s->accepted++;
		return;
	}
	log_info("recipient <%s> refused: %s", rc->addr, line);
	if (r->code == 421) {
		fail_reply(s, ERR_TEMP, "server closing the connection", r);
		return;
	}
	if (stops_on(s, rc->kind) && !s->stop && !s->cfg->verify_only) {
		s->stop = true;
		char what[400];
		snprintf(what, sizeof what, "server refused RCPT <%.300s>", rc->addr);
		fail_reply(s, class_of(r, ERR_RCPT), what, r);
	}
}

/* With no recipient accepted: temporary when every refusal was. */
static enum err_class refusal_class(const struct session *s)
{
	bool temp = false;
	for (size_t i = 0; i < s->env->nrcpt; i++) {
		int code = s->env->rcpt[i].code;
		if (code >= 500)
			return ERR_RCPT;
		temp |= code >= 400;
	}
	return temp ? ERR_TEMP : ERR_RCPT;
}

/* LMTP: the reply, after the data, for the next accepted recipient. */
static void on_lmtp_data(struct session *s, const struct reply *r)
{
	struct envelope *env = s->env;
	char line[600];

	while (s->lmtp_next < env->nrcpt && !env->rcpt[s->lmtp_next].accepted)
		s->lmtp_next++;
	if (s->lmtp_next == env->nrcpt)
		return; /* more replies than recipients: counted, never sent */
	struct rcpt *rc = &env->rcpt[s->lmtp_next++];
	if (reply_class(r) == 2) {
		s->lmtp_ok++;
		s->delivered = true;
		return;
	}
	/* this recipient did not get it: it reports like a refused RCPT */
	rc->accepted = false;
	rc->code = r->code;
	free(rc->reply);
	rc->reply = xstrdup(reply_first_line(r, line, sizeof line));
	log_info("recipient <%s> refused after the data: %s", rc->addr, line);
	if (r->code == 421)
		fail_reply(s, ERR_TEMP, "server closing the connection", r);
}

static int reply_to(struct session *s, enum cmd_kind k, size_t idx, const struct reply *r);

int session_reply(struct session *s, const struct reply *r)
{
	if (!s->owed)
		return -1;
	enum cmd_kind k = s->q[s->qhead].kind;
	size_t idx = s->q[s->qhead].idx;
	s->reply_last = s->q[s->qhead].count == 1;
	if (--s->q[s->qhead].count == 0) {
		s->qhead = (s->qhead + 1) % SESSION_MAXQ;
		s->qlen--;
	}
	s->owed--;
	if (s->prev_owed) {
		/* owed to the transaction set aside: it alone is settled
		 * (a 421 ends the connection for both, through quit_ok) */
		s->prev_owed--;
		swap_txn(s);
		reply_to(s, k, idx, r);
		swap_txn(s);
		return s->quit_ok ? 0 : -1;
	}
	return reply_to(s, k, idx, r);
}

/* The reply r to the command of kind k (idx: its recipient, command). */
static int reply_to(struct session *s, enum cmd_kind k, size_t idx, const struct reply *r)
{

	int cls = reply_class(r);
	switch (k) {
	case C_GREETING:
		if (cls == 2) {
			set_state(s, s->cfg->allow_extensions ? S_EHLO : S_HELO);
			return 0;
		}
		fail_reply(s, class_of(r, ERR_UNAVAILABLE), "server refused the connection", r);
		/* After a 554 greeting the server still expects QUIT (RFC 5321 3.1). */
		return -1;
	case C_EHLO:
		if (cls == 2) {
			parse_caps(s, r);
			if (s->cfg->starttls && !s->tls_active) {
				if (!s->caps.starttls) {
					fail(s, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE,
					     "the server does not offer STARTTLS and TLS is required; nothing "
					     "was sent in plaintext (use --tls=off to allow it)");
					return -1;
				}
				set_state(s, S_STARTTLS);
				return 0;
			}
			after_hello(s);
			return 0;
		}
		if ((r->code == 500 || r->code == 502) && !s->cfg->lmtp) {
			log_info("EHLO not understood; falling back to HELO");
			set_state(s, S_HELO);
			return 0;
		}
		fail_reply(s, class_of(r, ERR_UNAVAILABLE),
			   s->cfg->lmtp ? "server refused LHLO (is it an LMTP server?)" : "server refused EHLO", r);
		return -1;
	case C_HELO:
		if (cls == 2) {
			memset(&s->caps, 0, sizeof s->caps);
			if (s->cfg->starttls && !s->tls_active) {
				/* HELO means no extensions, so no STARTTLS. */
				fail(s, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE,
				     "the server does not speak ESMTP, so it cannot STARTTLS, and TLS is "
				     "required; nothing was sent in plaintext");
				return -1;
			}
			after_hello(s);
			return 0;
		}
		fail_reply(s, class_of(r, ERR_UNAVAILABLE), "server refused HELO", r);
		return -1;
	case C_STARTTLS:
		if (r->code == 220) {
			set_state(s, S_TLS);
			return 0;
		}
		fail_reply(s, class_of(r, ERR_UNAVAILABLE),
			   "the server refused STARTTLS and TLS is required; nothing was sent in plaintext",
			   r);
		return -1;
	case C_AUTH:
		return on_auth(s, r);
	case C_RSET:
		if (cls != 2) {
			/* the server cannot forget the last transaction:
			 * this one cannot be trusted on this connection */
			fail_reply(s, class_of(r, ERR_TEMP), "server refused RSET", r);
			s->quit_ok = s->quit_ok && r->code != 421;
			return -1;
		}
		return 0;
	case C_MAIL:
		if (cls == 2) {
			s->mail_ok = true;
			return 0;
		}
		if (s->cfg->terminal && (r->code == 500 || r->code == 502 || r->code == 504)) {
			char what[200];
			snprintf(what, sizeof what, "the server does not support %s (delivery to the user's "
				 "terminal, RFC 821; few servers still offer it)", mail_verb(s));
			fail_reply(s, ERR_UNAVAILABLE, what, r);
			return -1;
		}
		{
			char what[400];
			snprintf(what, sizeof what, "server refused sender <%.300s>", s->env->from);
			/* 5.7.x is policy (authentication, relaying): the
			 * service is not available to us as configured. */
			enum err_class perm = r->enhanced[0] == '5' && r->enhanced[2] == '7'
						      ? ERR_UNAVAILABLE : ERR_DATA;
			fail_reply(s, class_of(r, perm), what, r);
		}
		return -1;
	case C_RCPT:
		on_rcpt(s, idx, r);
		return s->failed ? -1 : 0;
	case C_DATA:
		if (r->code == 354) {
			s->got_354 = true;
			if (!s->failed && s->accepted == 0) {
				/* RFC 2920: DATA pipelined after refused
				 * recipients; never send a message to nobody. */
				fail(s, refusal_class(s), SEED_NO_RCPT,
				     "the server accepted no recipient; nothing was sent");
			}
			return s->failed ? -1 : 0;
		}
		if (s->failed)
			return -1; /* the DATA refusal only echoes the earlier error */
		if (s->accepted == 0) {
			/* the 554 to DATA only says nobody was accepted: the
			 * recipients' own answers say whether to try again */
			fail_reply(s, refusal_class(s), "no recipient accepted", r);
			return -1;
		}
		fail_reply(s, class_of(r, ERR_UNAVAILABLE), "server refused DATA", r);
		return -1;
	case C_BDAT:
		/* a chunk before the last: its refusal is the message's */
		if (cls == 2)
			return 0;
		fail_reply(s, class_of(r, ERR_DATA), "server refused a BDAT chunk of the message", r);
		return -1;
	case C_DOT:
		s->dot_answered = true;
		if (cls == 2) {
			if (!s->failed)
				s->delivered = true;
			return 0;
		}
		fail_reply(s, class_of(r, ERR_DATA), "server refused the message", r);
		return -1;
	case C_LMTP_DOT:
		s->dot_answered = true;
		on_lmtp_data(s, r);
		if (s->reply_last && !s->delivered && !s->failed) {
			/* every recipient refused the data */
			fail(s, refusal_class(s), SEED_PROTOCOL,
			     "the LMTP server refused the message for every recipient");
		}
		return s->failed ? -1 : 0;
	case C_USER:
		if (s->cfg->on_reply)
			s->cfg->on_reply(s->cfg->reply_ctx, s->cfg->commands->v[idx], r);
		s->command_failed |= cls == 4 || cls == 5;
		if (r->code == 421) {
			fail_reply(s, ERR_TEMP, "server closing the connection", r);
			return -1;
		}
		return 0;
	case C_QUIT:
		/* Whatever the server says to QUIT, we are done. */
		set_state(s, S_DONE);
		return 0;
	}
	return -1;
}

void session_tls_done(struct session *s)
{
	s->tls_active = true;
	memset(&s->caps, 0, sizeof s->caps);
	set_state(s, S_EHLO);
}

/* The replies owed for the end of the data: one, or in LMTP one per
 * accepted recipient. */
static void push_data_end(struct session *s)
{
	if (s->cfg->lmtp)
		push_n(s, C_LMTP_DOT, 0, s->accepted);
	else
		push(s, C_DOT, 0);
}

void session_body_sent(struct session *s)
{
	s->body_sent = true;
	push_data_end(s);
	set_state(s, S_DOT);
}

void session_chunks_sent(struct session *s, size_t nchunks)
{
	s->body_sent = true;
	if (nchunks > 1)
		push_n(s, C_BDAT, 0, nchunks - 1);
	push_data_end(s);
	set_state(s, S_DOT);
}

/* The connection broke while the transaction awaited replies. */
static void txn_lost(struct session *s, const struct err *e)
{
	if (s->failed)
		return;
	s->failed = true;
	s->err = *e;
	if (s->body_sent) {
		/* The final dot went out but no reply came back: the
		 * server may have accepted the message. */
		char msg[sizeof s->err.msg];
		snprintf(msg, sizeof msg, "%.700s after the message was sent: it may have been "
			 "delivered (possible duplicate if sent again)", e->msg);
		snprintf(s->err.msg, sizeof s->err.msg, "%s", msg);
	}
}

void session_conn_failed(struct session *s, const struct err *e)
{
	s->quit_ok = false;
	if (s->prev_owed) {
		/* the transaction set aside never got its answer */
		swap_txn(s);
		if (!s->delivered)
			txn_lost(s, e);
		swap_txn(s);
		s->prev_owed = 0;
	}
	if (s->state == S_QUIT || s->state == S_READY || (s->delivered && !s->owed)) {
		/* lost after delivery (waiting for 221): harmless */
		set_state(s, S_DONE);
		s->qlen = 0;
		s->owed = 0;
		return;
	}
	txn_lost(s, e);
	s->qlen = 0;
	s->owed = 0;
	set_state(s, S_DONE);
}

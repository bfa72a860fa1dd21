/* test_session.c - the SMTP state machine driven by scripted transcripts.
 *
 * A transcript is a list of lines: "S: ..." is a server line, "C: ..." a
 * command the session must yield at that point, "C: <BODY>" the message
 * body, "C: <ABORT>" a close without QUIT, "X: <LOST>" the connection
 * breaking while a reply is awaited, "C: <BDAT n>" the message sent in n
 * BDAT chunks, "C: <IDLE>" the session idle between transactions (hold
 * mode), after which "B: <BEGIN>" starts the next one and "B: <END>"
 * asks for QUIT. */
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "tap.h"
#include "util.h"

struct tcase {
	const char *name;
	bool pipelining_expected;
	const char *rcpts;       /* "t:a@x c:b@x b:c@x" */
	bool body_8bit;
	uint64_t size;
	bool stop_to, stop_cc, stop_bcc;
	const char *transcript;
	bool delivered;
	enum err_class cls;
	const char *mode;        /* words: hold lmtp nochunk saml */
};

static const char *EHLO_PIPE = "S: 220 hi\nC: EHLO me.test\nS: 250-srv\nS: 250-PIPELINING\nS: 250-SIZE 1000\nS: 250 8BITMIME\n";
static const char *EHLO_PLAIN = "S: 220 hi\nC: EHLO me.test\nS: 250 srv\n";

static const char *EHLO_CHUNK = "S: 220 hi\nC: EHLO me.test\nS: 250-srv\nS: 250-PIPELINING\nS: 250 CHUNKING\n";
static const char *LHLO_PIPE = "S: 220 hi\nC: LHLO me.test\nS: 250-srv\nS: 250 PIPELINING\n";

static const struct tcase cases[] = {
	{ "pipelined happy path", true, "t:a@x", false, 10, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x> SIZE=10\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 queued\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "no pipelining: one command at a time", false, "t:a@x t:b@x", false, 0, true, true, false,
	  "+N"
	  "C: MAIL FROM:<me@x>\nS: 250 ok\nC: RCPT TO:<a@x>\nS: 250 ok\nC: RCPT TO:<b@x>\nS: 250 ok\n"
	  "C: DATA\nS: 354 go\nC: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "EHLO 502 falls back to HELO", false, "t:a@x", false, 0, true, true, false,
	  "S: 220 hi\nC: EHLO me.test\nS: 502 no\nC: HELO me.test\nS: 250 ok\n"
	  "C: MAIL FROM:<me@x>\nS: 250 ok\nC: RCPT TO:<a@x>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <BODY>\n"
	  "S: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "EHLO 550 does not fall back", false, "t:a@x", false, 0, true, true, false,
	  "S: 220 hi\nC: EHLO me.test\nS: 550 go away\nC: QUIT\nS: 221 bye\n", false, ERR_UNAVAILABLE },
	{ "554 greeting: QUIT and fail", false, "t:a@x", false, 0, true, true, false,
	  "S: 554 no service\nC: QUIT\nS: 221 bye\n", false, ERR_UNAVAILABLE },
	{ "421 greeting: close, temporary", false, "t:a@x", false, 0, true, true, false,
	  "S: 421 busy\nC: <ABORT>\n", false, ERR_TEMP },
	{ "421 to MAIL: close, temporary", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 421 shutting down\nX: <LOST>\n",
	  false, ERR_TEMP },
	{ "mixed RCPT results, Bcc refusal tolerated", true, "t:a@x b:bad@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: RCPT TO:<bad@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 550 5.1.1 no such user\nS: 354 go\nC: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "refused To stops the message (StopOnToErrors)", true, "t:bad@x c:b@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<bad@x>\nC: RCPT TO:<b@x>\nC: DATA\n"
	  "S: 250 ok\nS: 550 no\nS: 250 ok\nS: 354 go\nC: <ABORT>\n",
	  false, ERR_RCPT },
	{ "refused To with StopOnToErrors off still delivers", true, "t:bad@x c:b@x", false, 0, false, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<bad@x>\nC: RCPT TO:<b@x>\nC: DATA\n"
	  "S: 250 ok\nS: 550 no\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "no recipient accepted, DATA 554", true, "b:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 550 no\nS: 554 no valid recipients\nC: QUIT\nS: 221 bye\n",
	  false, ERR_RCPT },
	{ "no recipient accepted, DATA 354 anyway: never send", true, "b:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 550 no\nS: 354 go\nC: <ABORT>\n",
	  false, ERR_RCPT },
	{ "temporary RCPT refusal is temporary", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 451 later\nS: 554 no valid recipients\nC: QUIT\nS: 221 bye\n",
	  false, ERR_TEMP },
	{ "sender refused", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 553 bad sender\nS: 503 need MAIL\nS: 503 need MAIL\nC: QUIT\nS: 221 bye\n",
	  false, ERR_DATA },
	{ "8-bit body without 8BITMIME refused before MAIL", false, "t:a@x", true, 0, true, true, false,
	  "+N"
	  "C: QUIT\nS: 221 bye\n", false, ERR_DATA },
	{ "message over SIZE refused before MAIL", true, "t:a@x", false, 5000, true, true, false,
	  "+P"
	  "C: QUIT\nS: 221 bye\n", false, ERR_DATA },
	{ "8-bit body with 8BITMIME", true, "t:a@x", true, 10, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x> SIZE=10 BODY=8BITMIME\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK },
	{ "message refused after the dot", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 554 5.7.1 spam\nC: QUIT\nS: 221 bye\n",
	  false, ERR_DATA },
	{ "connection lost after the dot: possibly delivered", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nX: <LOST>\n",
	  false, ERR_TEMP },
	{ "connection lost after 250 to the dot is harmless", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\nC: QUIT\nX: <LOST>\n",
	  true, ERR_OK },
	{ "hold: two transactions on one connection, RSET pipelined before the second", true, "t:a@x",
	  false, 0, true, true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "S: 250 ok\nC: <IDLE>\nB: <BEGIN>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 reset\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\n"
	  "C: <IDLE>\nB: <END>\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "hold" },
	{ "hold: a refused transaction leaves the connection usable", true, "t:a@x", false, 0, true,
	  true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 553 bad sender\nS: 503 need MAIL\nS: 503 need MAIL\nC: <IDLE>\nB: <BEGIN>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 reset\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\n"
	  "C: <IDLE>\nB: <END>\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "hold" },
	{ "hold: a 421 ends the connection, not just the transaction", true, "t:a@x", false, 0, true,
	  true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 421 closing\nX: <LOST>\n",
	  false, ERR_TEMP, "hold" },
	{ "hold: the next transaction begins before the end of the data is answered", true, "t:a@x",
	  false, 0, true, true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "B: <EARLY>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 250 first queued\nS: 250 reset\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\n"
	  "C: <IDLE>\nB: <END>\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "hold early" },
	{ "hold: the first message refused after the second began: only it fails", true, "t:a@x",
	  false, 0, true, true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "B: <EARLY>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 554 5.7.1 spam\nS: 250 reset\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\nS: 250 ok\n"
	  "C: <IDLE>\nB: <END>\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "hold early prevfail" },
	{ "hold: 421 to the first message's end fails both", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "B: <EARLY>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 421 4.3.2 shutting down\nX: <LOST>\n",
	  false, ERR_TEMP, "hold early prevfail" },
	{ "hold: RSET refused fails the transaction", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: <IDLE>\nB: <BEGIN>\n"
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "S: 250 ok\nC: <IDLE>\nB: <BEGIN>\n"
	  "C: RSET\nC: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\n"
	  "S: 454 cannot\nS: 250 ok\nS: 250 ok\nS: 354 go\nC: <ABORT>\n",
	  false, ERR_TEMP, "hold" },
	{ "CHUNKING: no DATA, BDAT after the RCPT replies, a reply per chunk", true, "t:a@x t:b@x",
	  false, 0, true, true, false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: RCPT TO:<b@x>\n"
	  "S: 250 ok\nS: 250 ok\nS: 250 ok\nC: <BDAT 3>\nS: 250 1\nS: 250 2\nS: 250 queued\n"
	  "C: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "chunk" },
	{ "CHUNKING: every recipient refused, no BDAT at all", true, "t:a@x", false, 0, true, true,
	  false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nS: 250 ok\nS: 550 no\nC: QUIT\nS: 221 bye\n",
	  false, ERR_RCPT, "chunk" },
	{ "CHUNKING: a refused middle chunk fails the message", true, "t:a@x", false, 0, true, true,
	  false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nS: 250 ok\nS: 250 ok\nC: <BDAT 2>\n"
	  "S: 552 5.3.4 too big\nS: 503 5.5.1 no\nC: QUIT\nS: 221 bye\n",
	  false, ERR_DATA, "chunk" },
	{ "CHUNKING offered but turned off: DATA", true, "t:a@x", false, 0, true, true, false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
	  "C: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "chunk nochunk" },
	{ "LMTP: a reply per accepted recipient after the data", true, "t:a@x t:b@x t:c@x", false, 0,
	  false, false, false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: RCPT TO:<b@x>\nC: RCPT TO:<c@x>\nC: DATA\n"
	  "S: 250 ok\nS: 250 ok\nS: 550 no\nS: 250 ok\nS: 354 go\nC: <BODY>\n"
	  "S: 250 a ok\nS: 452 c full\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "lmtp" },
	{ "LMTP: every recipient refused after the data", true, "t:a@x", false, 0, true, true, false,
	  "C: MAIL FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
	  "C: <BODY>\nS: 452 full\nC: QUIT\nS: 221 bye\n",
	  false, ERR_TEMP, "lmtp" },
	{ "SAML FROM instead of MAIL FROM", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: SAML FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 250 ok\nS: 250 ok\nS: 354 go\n"
	  "C: <BODY>\nS: 250 ok\nC: QUIT\nS: 221 bye\n",
	  true, ERR_OK, "saml" },
	{ "SAML unknown to the server", true, "t:a@x", false, 0, true, true, false,
	  "+P"
	  "C: SAML FROM:<me@x>\nC: RCPT TO:<a@x>\nC: DATA\nS: 502 5.5.1 unknown\nS: 503 no\n"
	  "S: 503 no\nC: QUIT\nS: 221 bye\n",
	  false, ERR_UNAVAILABLE, "saml" },
};

static bool has_mode(const struct tcase *t, const char *word)
{
	return t->mode && strstr(t->mode, word) != NULL;
}

static void make_env(struct envelope *env, const struct tcase *t)
{
	memset(env, 0, sizeof *env);
	env->from = xstrdup("me@x");
	env->size = t->size;
	env->body_8bit = t->body_8bit;
	char *spec = xstrdup(t->rcpts), *save = NULL;
	for (char *tok = strtok_r(spec, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
		struct rcpt *r = &env->rcpt[env->nrcpt++];
		memset(r, 0, sizeof *r);
		r->kind = tok[0] == 't' ? RCPT_TO : tok[0] == 'c' ? RCPT_CC : RCPT_BCC;
		r->addr = xstrdup(tok + 2);
	}
	free(spec);
}

static void free_env(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].reply);
	}
	free(env->rcpt);
	free(env->from);
}

/* Run one transcript; returns NULL or a description of the mismatch. */
static const char *run(const struct tcase *t, struct session *s, struct envelope *env, char *why,
		       size_t whysz)
{
	struct strbuf script = STRBUF_INIT, out = STRBUF_INIT;
	const char *tr = t->transcript;
	if (strncmp(tr, "+P", 2) == 0) {
		sb_adds(&script, EHLO_PIPE);
		tr += 2;
	} else if (strncmp(tr, "+N", 2) == 0) {
		sb_adds(&script, EHLO_PLAIN);
		tr += 2;
	} else if (has_mode(t, "lmtp")) {
		sb_adds(&script, LHLO_PIPE);
	} else if (has_mode(t, "chunk")) {
		sb_adds(&script, EHLO_CHUNK);
	}
	sb_adds(&script, tr);

	char *p = script.s;
	struct reply r;
	struct err e;
	reply_init(&r);
	why[0] = '\0';
	for (int guard = 0; guard < 1000; guard++) {
		sb_reset(&out);
		enum sess_action act = session_next(s, &out);
		if (act == ACT_DONE) {
			if (*p)
				snprintf(why, whysz, "session done but transcript has: %.60s", p);
			break;
		}
		if (act == ACT_IDLE) {
			if (strncmp(p, "C: <IDLE>\n", 10) != 0) {
				snprintf(why, whysz, "idle, transcript has: %.60s", p);
				break;
			}
			p += 10;
			if (strncmp(p, "B: <BEGIN>\n", 11) == 0) {
				for (size_t i = 0; i < env->nrcpt; i++) {
					env->rcpt[i].accepted = false;
					env->rcpt[i].code = 0;
				}
				session_begin(s, env);
			} else if (strncmp(p, "B: <END>\n", 9) == 0) {
				session_end(s);
			} else {
				snprintf(why, whysz, "idle: want B: <BEGIN> or <END>, have: %.60s", p);
				break;
			}
			p = strchr(p, '\n') + 1;
			continue;
		}
		if (act == ACT_SEND_BODY && s->bdat) {
			unsigned n;
			if (sscanf(p, "C: <BDAT %u>\n", &n) != 1) {
				snprintf(why, whysz, "BDAT, transcript has: %.60s", p);
				break;
			}
			p = strchr(p, '\n') + 1;
			session_chunks_sent(s, n);
			continue;
		}
		if (act == ACT_ABORT || act == ACT_SEND_BODY) {
			const char *want = act == ACT_ABORT ? "C: <ABORT>\n" : "C: <BODY>\n";
			if (strncmp(p, want, strlen(want)) != 0) {
				snprintf(why, whysz, "got %s, transcript has: %.60s", want, p);
				break;
			}
			p += strlen(want);
			if (act == ACT_ABORT)
				break;
			session_body_sent(s);
			if (strncmp(p, "B: <EARLY>\n", 11) == 0) {
				/* the next transaction before the dot's reply */
				p += 11;
				session_begin(s, env);
			}
			continue;
		}
		/* each command line must match a C: line */
		char *o = out.s ? out.s : (char *)"";
		while (*o) {
			char *crlf = strstr(o, "\r\n");
			size_t l = (size_t)(crlf - o);
			char *nl = strchr(p, '\n');
			if (strncmp(p, "C: ", 3) != 0 || (size_t)(nl - p - 3) != l || strncmp(p + 3, o, l) != 0) {
				snprintf(why, whysz, "sent \"%.*s\", transcript has: %.60s", (int)l, o, p);
				goto done;
			}
			p = nl + 1;
			o = crlf + 2;
		}
		while (session_expected(s)) {
			if (strncmp(p, "X: <LOST>\n", 10) == 0) {
				p += 10;
				err_set(&e, ERR_TEMP, 1120, "connection lost");
				session_conn_failed(s, &e);
				break;
			}
			if (strncmp(p, "S: ", 3) != 0) {
				snprintf(why, whysz, "session waits for a reply, transcript has: %.60s", p);
				goto done;
			}
			char *nl = strchr(p, '\n');
			int k = reply_add_line(&r, p + 3, (size_t)(nl - p - 3), &e);
			p = nl + 1;
			if (k < 0) {
				snprintf(why, whysz, "bad reply in transcript");
				goto done;
			}
			if (k == 1)
				session_reply(s, &r);
		}
	}
done:
	reply_free(&r);
	sb_free(&script);
	sb_free(&out);
	return why[0] ? why : NULL;
}

int main(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct tcase *t = &cases[i];
		struct envelope env;
		struct session s;
		struct session_cfg cfg = { .hello = "me.test", .allow_extensions = true,
					   .stop_on_to = t->stop_to, .stop_on_cc = t->stop_cc,
					   .stop_on_bcc = t->stop_bcc, .send_rset = true,
					   .hold = has_mode(t, "hold"), .lmtp = has_mode(t, "lmtp"),
					   .chunking = !has_mode(t, "nochunk"),
					   .terminal = has_mode(t, "saml") ? 'A' : 0 };
		char why[200];
		make_env(&env, t);
		session_init(&s, &cfg, cfg.hold ? NULL : &env);
		const char *bad = run(t, &s, &env, why, sizeof why);
		ok(!bad, "%s%s%s", t->name, bad ? ": " : "", bad ? bad : "");
		ok(s.delivered == t->delivered && (t->delivered ? true : s.err.cls == t->cls),
		   "%s: delivered=%d class=%d (want %d/%d) %s", t->name, s.delivered, s.err.cls,
		   t->delivered, t->cls, s.err.msg);
		if (has_mode(t, "early"))
			ok(session_prev_settled(&s) &&
			   s.prev.delivered == !has_mode(t, "prevfail") &&
			   s.prev.failed == has_mode(t, "prevfail"),
			   "%s: the first transaction settled, delivered=%d failed=%d (%s)", t->name,
			   s.prev.delivered, s.prev.failed, s.prev.err.msg);
		free_env(&env);
	}

	/* 250 recipients go out in batches of at most 100 RCPTs. */
	{
		struct envelope env = { 0 };
		struct session s;
		struct session_cfg cfg = { .hello = "h", .allow_extensions = true };
		struct strbuf out = STRBUF_INIT;
		struct reply r;
		struct err e;
		env.from = xstrdup("me@x");
		for (int i = 0; i < 250; i++) {
			env.rcpt = xrealloc(env.rcpt, (env.nrcpt + 1) * sizeof *env.rcpt);
			memset(&env.rcpt[env.nrcpt], 0, sizeof *env.rcpt);
			env.rcpt[env.nrcpt++].addr = xasprintf("u%d@x", i);
		}
		session_init(&s, &cfg, &env);
		reply_init(&r);
		int batches = 0;
		size_t maxbatch = 0;
		const char *ehlo[] = { "250-x", "250 PIPELINING" };
		for (int step = 0; step < 20 && s.state != S_BODY; step++) {
			sb_reset(&out);
			if (session_next(&s, &out) != ACT_SEND)
				break;
			size_t n = session_expected(&s);
			if (s.state == S_MAIL || s.state == S_DATA) {
				if (strstr(out.s ? out.s : "", "RCPT")) {
					batches++;
					if (n > maxbatch)
						maxbatch = n;
				}
			}
			while (session_expected(&s)) {
				if (s.state == S_EHLO) {
					reply_add_line(&r, ehlo[0], 5, &e);
					reply_add_line(&r, ehlo[1], 14, &e);
				} else if (s.q[s.qhead].kind == C_DATA) {
					reply_add_line(&r, "354 go", 6, &e);
				} else {
					reply_add_line(&r, "250 ok", 6, &e);
				}
				session_reply(&s, &r);
			}
		}
		ok(batches == 3 && maxbatch <= SESSION_RCPT_BATCH + 2 && s.accepted == 250,
		   "250 recipients in %d pipelined batches (largest %zu replies), all accepted", batches,
		   maxbatch);
		reply_free(&r);
		sb_free(&out);
		free_env(&env);
	}
	return tap_done();
}

/* session.h - the SMTP client state machine, without I/O.
 *
 * The session is fed server replies and yields the commands to send; it
 * never touches a socket, so a unit test can drive it with a scripted
 * transcript.  deliver.c pumps it:
 *
 *     while ((act = session_next(s, &out)) != ACT_DONE) {
 *             ACT_SEND:      write out (may be empty), then read
 *                            session_expected(s) replies into session_reply()
 *             ACT_SEND_BODY: stream the message, then session_body_sent()
 *             ACT_STARTTLS:  check no byte is pending, run the TLS
 *                            handshake, then session_tls_done()
 *             ACT_ABORT:     close the connection without another byte
 *             ACT_IDLE:      (cfg->hold) no transaction in progress and the
 *                            connection is sound: session_begin() the next
 *                            message, or session_end() to QUIT
 *     }
 *
 * Commands are pipelined when the server offers PIPELINING: MAIL, up to
 * 100 RCPTs and DATA go out in one write (RSET first when a transaction
 * came before on this connection).  With CHUNKING the message goes in
 * BDAT chunks instead of DATA: deliver.c writes them (all of them back to
 * back with PIPELINING, else the whole message as one chunk) and reports
 * how many with session_chunks_sent().  With cfg->lmtp the session speaks
 * LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the
 * message. */
#ifndef SMTPSEND_SESSION_H
#define SMTPSEND_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include "err.h"
#include "reply.h"
#include "sasl.h"
#include "util.h"

enum rcpt_kind { RCPT_TO, RCPT_CC, RCPT_BCC };

struct rcpt {
	char *addr;            /* envelope form, no angle brackets */
	enum rcpt_kind kind;
	int code;              /* reply code to RCPT, 0 = not sent */
	char *reply;           /* first line of the reply, sanitised */
	bool accepted;         /* accepted by RCPT (and, in LMTP, after the data) */
	char *notify;          /* per-recipient NOTIFY= (overrides the run's), or NULL */
	char *orcpt;           /* per-recipient ORCPT= value ("rfc822;addr"), or NULL */
};

struct envelope {
	char *from;            /* reverse path, "" for the null sender */
	struct rcpt *rcpt;
	size_t nrcpt;
	uint64_t size;         /* message size on the wire, for SIZE= */
	bool body_8bit;        /* needs BODY=8BITMIME */
	bool declared_8bit;    /* -B 8BITMIME: say so when the server listens */
	bool smtputf8;         /* needs SMTPUTF8 */
	bool binary;           /* BODY=BINARYMIME: sent with BDAT, byte for byte */
};

struct caps {
	bool esmtp, pipelining, eightbitmime, smtputf8, dsn, chunking, starttls, enhanced;
	bool binarymime;
	bool size;
	uint64_t size_max;     /* 0 = no limit announced */
	char auth[256];        /* mechanisms offered, space separated */
};

struct session_cfg {
	const char *hello;
	bool allow_extensions;
	bool starttls;         /* STARTTLS is required before anything else */
	bool tls_active;       /* the connection is TLS from the start (implicit) */
	bool stop_on_to, stop_on_cc, stop_on_bcc;
	bool allow_empty_to;
	bool verify_only;      /* -bv: RCPT every recipient, then QUIT */
	const char *dsn_notify; /* NOTIFY= for every RCPT, or NULL */
	const char *dsn_ret;   /* RET= on MAIL, or NULL */
	const char *dsn_envid; /* ENVID= on MAIL, or NULL */
	bool dsn_optional;     /* without DSN at the server, send anyway */
	const char *auth;      /* mechanism or "auto"; NULL = no AUTH */
	/* Commands mode (the reference's Expand, Verify, SendCommand): after
	 * the greeting, TLS and AUTH, send these one by one instead of a
	 * mail transaction; each reply goes to on_reply. */
	const struct strlist *commands;
	void (*on_reply)(void *ctx, const char *command, const struct reply *r);
	void *reply_ctx;
	const struct sasl_creds *creds; /* for AUTH */
	bool hold;             /* keep the connection between transactions (ACT_IDLE) */
	bool send_rset;        /* SendRSET: RSET before every transaction but the first */
	bool chunking;         /* UseChunking: BDAT when the server offers CHUNKING */
	bool lmtp;             /* speak LMTP: LHLO, a reply per recipient after the data */
	char terminal;         /* SendToTerminal*: 'A' SAML, 'O' SOML, 'S' SEND; 0 = MAIL */
};

enum sess_state {
	S_GREETING, S_EHLO, S_HELO, S_STARTTLS, S_TLS, S_AUTH, S_MAIL, S_DATA, S_BODY, S_DOT, S_QUIT,
	S_DONE, S_READY,
};

enum sess_action { ACT_SEND, ACT_SEND_BODY, ACT_STARTTLS, ACT_ABORT, ACT_DONE, ACT_IDLE };

enum cmd_kind {
	C_GREETING, C_EHLO, C_HELO, C_STARTTLS, C_AUTH, C_USER, C_RSET, C_MAIL, C_RCPT, C_DATA, C_DOT,
	C_BDAT,         /* a chunk before the last */
	C_LMTP_DOT,     /* LMTP: one reply per accepted recipient after the data */
	C_QUIT,
};

#define SESSION_RCPT_BATCH 100
#define SESSION_MAXQ (SESSION_RCPT_BATCH + 8)

/* What the replies to one transaction decide.  With cfg->hold the next
 * transaction may begin while the end of this one's data is still
 * unanswered (RFC 2920 lets MAIL follow the message content in one
 * group): session_begin() then sets it aside as session.prev, and the
 * replies owed to it, first in line, settle it there. */
struct txn_outcome {
	struct envelope *env;
	bool delivered, failed, body_sent, dot_answered;
	struct err err;
	size_t lmtp_next, lmtp_ok;
};

struct session {
	const struct session_cfg *cfg;
	struct envelope *env;
	enum sess_state state;
	struct caps caps;

	/* Replies owed, oldest first; one entry may stand for several
	 * replies of one kind (BDAT chunks, LMTP's per-recipient replies). */
	struct { enum cmd_kind kind; size_t idx; size_t count; } q[SESSION_MAXQ];
	size_t qhead, qlen;
	size_t owed;           /* replies owed in all */
	size_t prev_owed;      /* of which to the previous transaction (the first ones) */
	struct txn_outcome prev; /* that transaction, while prev_owed > 0 and after */
	bool reply_last;       /* the reply being handled is its entry's last */

	size_t next_rcpt;      /* next recipient to send RCPT for */
	size_t next_command;   /* commands mode: next one to send */
	bool command_failed;   /* commands mode: some reply was 4xx/5xx */
	size_t accepted;       /* recipients accepted */
	bool mail_ok;          /* MAIL FROM accepted */
	bool got_354;
	bool stop;             /* a StopOn*Errors recipient was refused */
	bool failed;           /* err is set; the transaction is over */
	bool quit_ok;          /* the connection is sound enough to QUIT */
	bool delivered;        /* 2xx after the final dot */
	bool body_sent;        /* the final dot went out: point of no return */
	bool tls_active;       /* commands now travel inside TLS */
	bool dot_answered;     /* the reply to the end of the data came */
	bool bdat;             /* this transaction sends BDAT chunks */
	size_t lmtp_next;      /* LMTP: next recipient to take a data reply */
	size_t lmtp_ok;        /* LMTP: recipients that took the message */
	bool in_txn;           /* a transaction was begun and not finished */
	bool need_rset;        /* RSET before this transaction's MAIL */
	bool ending;           /* session_end(): QUIT when idle */
	unsigned transactions; /* begun on this connection */

	struct sasl *sasl;     /* the AUTH exchange in progress */
	const char *mech;      /* its mechanism */
	char *auth_response;   /* next SASL line to send (base64), secret */
	bool auth_cancelled;   /* "*" sent after a bad challenge */
	struct err auth_err;   /* why it was cancelled */
	bool authenticated;
	/* Offset in the first line of the last yielded output from which it
	 * is secret (masked in traces), or (size_t)-1. */
	size_t secret_from;

	struct err err;        /* why the session failed, when failed */
};

/* env may be NULL with cfg->hold: the session then stops at ACT_IDLE once
 * it is ready for a transaction (greeting, EHLO, TLS and AUTH done). */
void session_init(struct session *s, const struct session_cfg *cfg, struct envelope *env);
/* Release what the session holds (SASL state, wiped). */
void session_free(struct session *s);

/* The next step; commands, if any, are appended to out (CR LF ended). */
enum sess_action session_next(struct session *s, struct strbuf *out);

/* Replies still owed by the server for commands already yielded. */
size_t session_expected(const struct session *s);

/* Feed the reply to the oldest outstanding command.  Returns -1 when the
 * reply ends the session (s->err says why; the caller still follows
 * session_next(), which may yield QUIT). */
int session_reply(struct session *s, const struct reply *r);

/* The TLS handshake after STARTTLS succeeded: capabilities are
 * forgotten and EHLO is sent again (RFC 3207 4.2). */
void session_tls_done(struct session *s);

/* The message body and its terminator have been written (DATA). */
void session_body_sent(struct session *s);

/* BDAT: nchunks chunks were written, the last with LAST. */
void session_chunks_sent(struct session *s, size_t nchunks);

/* cfg->hold, after ACT_IDLE: start a transaction for env.  Also right
 * after the end of the data went out (state DOT, its reply not read
 * yet), with PIPELINING: that transaction becomes s->prev, settled by the
 * first replies read from then on (session_prev_settled()). */
void session_begin(struct session *s, struct envelope *env);

/* Has the transaction set aside by an early session_begin() got all its
 * replies (or lost its connection)? */
bool session_prev_settled(const struct session *s);

/* cfg->hold, after ACT_IDLE: say QUIT. */
void session_end(struct session *s);

/* The connection broke (e is the transport error): record it, taking
 * the point of no return into account. */
void session_conn_failed(struct session *s, const struct err *e);

const char *session_state_name(enum sess_state st);

#endif

/* deliver.h - the pump between the session and the connection: the only
 * file that knows both.  Connects, feeds replies to the session, writes
 * its commands, streams the message body through the dot-stuffer. */
#ifndef SMTPSEND_DELIVER_H
#define SMTPSEND_DELIVER_H

#include <stdbool.h>
#include <stdio.h>
#include "conn.h"
#include "err.h"
#include "message.h"
#include "props.h"
#include "session.h"

#include <signal.h>

/* How far the current message got, for a signal handler: after the final
 * dot and before the reply the message may have been delivered. */
enum { DELIVER_NOT_SENT, DELIVER_UNCONFIRMED, DELIVER_CONFIRMED };
extern volatile sig_atomic_t deliver_progress;

struct deliver_result {
	bool delivered;        /* 2xx after the final dot */
	bool possibly_delivered; /* connection lost after the dot */
	struct caps caps;      /* what the server offered */
};

/* Send one message to the server described by p.  Per-recipient results
 * are left in env.  Returns 0 when the message was accepted (possibly for
 * only some recipients), -1 otherwise with e set.  Errors: every class
 * the connection and the session produce. */
int deliver_message(const struct props *p, struct message *m, struct envelope *env,
		    struct deliver_result *res, struct err *e);

/* A channel to the server p describes, for sending several messages over
 * one connection (one TLS handshake, one AUTH; RSET between messages),
 * the reference's Connect / Send / Disconnect.  MailServer may list
 * several relays ("a,b,c"): the first that answers is used.  The
 * connection is made at the first deliver_send(); a connection lost
 * between messages is made again.  When no relay can be reached, every
 * later deliver_send() fails at once with that same error. */
struct deliver_channel;

/* Check the settings and fetch the secret (no connection yet).  p must
 * outlive the channel.  Errors: ERR_CONFIG and the secret's errors. */
int deliver_open(const struct props *p, struct deliver_channel **ch, struct err *e);

/* Send one message over the channel, as deliver_message(); p, when not
 * NULL, is the message's own properties, which decide its transaction
 * (DSN, StopOn*Errors, UseChunking, SendToTerminal); the connection is
 * the channel's. */
int deliver_send(struct deliver_channel *ch, const struct props *p, struct message *m,
		 struct envelope *env, struct deliver_result *res, struct err *e);

/* Would a and b make the same connection (server, port, TLS,
 * credentials, proxy, ...)?  Then their messages can share a channel. */
bool deliver_same_connection(const struct props *a, const struct props *b);

/* The outcome of a message given to deliver_send_async(): rc, res and e
 * as deliver_send() would have returned them. */
typedef void (*deliver_outcome_fn)(void *ctx, int rc, const struct deliver_result *res,
				   const struct err *e);

/* As deliver_send(), but with a server that pipelines the call may
 * return once the end of the message is written, before the server
 * answered it: the next message's envelope then goes out at once, and
 * the answer is read with that message's replies (RFC 2920).  done is
 * called exactly once with the outcome: before this returns, or from the
 * next deliver_send_async(), deliver_send(), deliver_settle() or
 * deliver_close() on the channel.  m, env and p must stay valid until
 * then. */
void deliver_send_async(struct deliver_channel *ch, const struct props *p, struct message *m,
			struct envelope *env, deliver_outcome_fn done, void *ctx);

/* Work for the time the server is busy: fn(ctx) is called when the
 * channel has sent commands and waits for replies none of which has
 * arrived yet.  fn must not use the channel.  A flush moves answered
 * entries and claims the next one there, so that its file system work
 * overlaps the server's. */
typedef void (*deliver_idle_fn)(void *ctx);
void deliver_set_idle(struct deliver_channel *ch, deliver_idle_fn fn, void *ctx);

/* Read the answer to a message deliver_send_async() left pending, and
 * report it. */
void deliver_settle(struct deliver_channel *ch);

/* Settle, QUIT when connected, close, free.  NULL is fine. */
void deliver_close(struct deliver_channel *ch);

struct tls_opts;

/* How TLS is used for a run, from SSLStartMode and the port. */
enum tls_use { TLSUSE_NONE, TLSUSE_IMPLICIT, TLSUSE_STARTTLS, TLSUSE_STARTTLS_UNLESS_LOCAL };
enum tls_use deliver_tls_use(const struct props *p);
/* The port: MailPort when given, else 465 for implicit TLS, else 25. */
int deliver_port(const struct props *p);
/* The TCP options the properties describe, for connecting to host. */
void deliver_tcp_opts(const struct props *p, const char *host, struct tcp_opts *o);
/* The TLS options the properties describe. */
void deliver_tls_opts(const struct props *p, struct tls_opts *o);

/* --serverinfo: connect, show greeting, capabilities before and after
 * TLS and the certificate chain with the verification verdict on out;
 * send no mail.  Returns 0 when the server is verified (or TLS is off).
 * Errors: connection errors; ERR_UNAVAILABLE when the certificate is not
 * trusted or TLS is required but not offered. */
int deliver_serverinfo(const struct props *p, FILE *out, struct err *e);

/* -bv: ask the server about every recipient (MAIL, RCPT..., QUIT) and
 * send nothing; the per-recipient answers are left in env.  Returns 0
 * unless the session itself failed.  Errors: as deliver_message. */
int deliver_verify(const struct props *p, struct envelope *env, struct deliver_result *res,
		   struct err *e);

/* The reference's Expand, Verify and SendCommand: connect (TLS and AUTH
 * as configured), send each command alone, hand each reply to on_reply,
 * QUIT.  Returns 0 unless the session failed.  Errors: as
 * deliver_message. */
int deliver_commands(const struct props *p, const struct strlist *commands,
		     void (*on_reply)(void *ctx, const char *command, const struct reply *r),
		     void *ctx, struct err *e);

/* The SASL mechanism to use ("auto" or a name), or NULL for no AUTH:
 * AuthMechanism none, or auto without a user. */
const char *deliver_auth_wanted(const struct props *p);

/* The EHLO/HELO name: Hello if set, else this host's fully qualified
 * name, else "localhost".  Returned string is static. */
const char *deliver_hello_name(const struct props *p);

#endif

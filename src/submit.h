/* submit.h - one submission: build the envelope and the message from the
 * properties (composing, or reading standard input), then deliver, verify
 * or print it.  Failures are collected in a report rather than printed:
 * main.c prints them and turns the worst into the exit status; -bs turns
 * them into SMTP replies. */
#ifndef SMTPSEND_SUBMIT_H
#define SMTPSEND_SUBMIT_H

#include <stdbool.h>
#include "err.h"
#include "message.h"
#include "props.h"
#include "session.h"

struct submit_opts {
	bool print_only;       /* --print: show envelope and message */
	bool read_recipients;  /* -t */
	bool verify_only;      /* -bv: RCPT each recipient, send nothing */
	bool queue_only;       /* --queue, -odq: into the queue, not sent */
	bool queue_partial_only; /* queue only recipients 4xx-refused after a delivery */
	const char *queue_dir; /* queue here (and on temporary failure), or NULL */
	/* what a queued entry replays when it is flushed */
	const char *account;
	const struct strlist *replay_keys, *replay_values;
	/* send over this open channel instead of a connection of its own */
	struct deliver_channel *channel;
};

struct submit_report {
	struct err *v;         /* every failure, in order */
	size_t n;
	enum err_class worst;  /* ERR_OK when all went well */
	bool delivered;        /* the server took the message (maybe not for all) */
	char *queued_id;       /* put in the queue as this id, or NULL */
	char queued_why[600];  /* the temporary failure that made it so, or "" */
};

/* The "from" of the rc account in effect, for RewriteEnvelopeFrom (the
 * command line's -f may not override it then); NULL when none. */
extern const char *submit_account_from;

/* Build and send one message as the properties describe.  Returns 0 when
 * everything succeeded, -1 when rep holds at least one failure (a partial
 * delivery is -1 too: some recipients were refused). */
int submit_from_props(struct props *p, const struct submit_opts *o, struct submit_report *rep);

/* submit_prepared() in two halves, for a caller that sends in between
 * (a queue flush, with deliver_send_async): submit_begin() settles and
 * checks the envelope, and prints or queues when o says so; it returns 1
 * when the message is to be sent, else what submit_prepared() would.
 * submit_end() records the outcome of sending (rc, res, e as
 * deliver_send returned them) as submit_prepared() does. */
int submit_begin(const struct props *p, const struct submit_opts *o, struct envelope *env,
		 struct message *m, struct submit_report *rep);
struct deliver_result;
int submit_end(const struct submit_opts *o, struct envelope *env, const struct message *m, int rc,
	       const struct deliver_result *res, const struct err *e, struct submit_report *rep);

/* Send a message already spooled with its envelope (for -bs).  Fills in
 * the body type and size; same return as submit_from_props. */
int submit_prepared(struct props *p, const struct submit_opts *o, struct envelope *env,
		    struct message *m, struct submit_report *rep);

/* Resolve local names, settle and qualify the envelope sender (from the
 * account, -f, the From header, or login@host).  Errors: ERR_RCPT for a
 * local name that resolves nowhere, ERR_CONFIG/ERR_DATA (aliases). */
int submit_finish_envelope(const struct props *p, struct envelope *env, const struct message *m,
			   struct err *e);

/* Add a missing Date, Message-ID and From to a raw message and leave out
 * its Bcc/Resent-Bcc fields.  Errors: ERR_DATA, ERR_IO. */
int submit_complete_raw(const struct props *p, const struct envelope *env, struct message *m,
			struct err *e);

/* Refuse settings this version cannot honour.  Errors: ERR_CONFIG. */
int submit_check_policy(const struct props *p, struct err *e);

void envelope_free(struct envelope *env);
void submit_report_free(struct submit_report *rep);

#endif

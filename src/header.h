/* header.h - the recipients named in a message's own header (sendmail -t).
 *
 * Without Resent-* fields the recipients are those of To, Cc and Bcc.  A
 * message that has been resent (RFC 5322 3.6.6) goes to the recipients of
 * its newest resending only: the Resent-To, Resent-Cc and Resent-Bcc of
 * the topmost Resent block.  Blind copies are never disclosed: every Bcc
 * and Resent-Bcc field is left out of what is transmitted. */
#ifndef SMTPSEND_HEADER_H
#define SMTPSEND_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"
#include "message.h"
#include "session.h"

struct hdr_rcpt {
	char *addr;            /* envelope form from addr_envelope; a bare
	                        * local part ("root") is kept without '@' */
	enum rcpt_kind kind;
	bool smtputf8;         /* the local part is not ASCII */
};

struct hdr_rcpts {
	struct hdr_rcpt *v;
	size_t n, cap;
};
#define HDR_RCPTS_INIT { NULL, 0, 0 }

/* Collect the recipients of the spooled message m for -t and append them
 * to out, in header order, each address once (compared without regard to
 * case; an address named in more than one field keeps its first place and
 * the most visible kind: To before Cc before Bcc).  With Resent-* fields,
 * only the newest Resent block counts: it starts at the first Resent-*
 * field from the top and runs over the following Resent-* fields and any
 * Received/Return-Path among them, up to another kind of field or to a
 * Resent-* field already seen in the block (each occurs once per block,
 * so its repetition starts the next, older block).  Every Bcc and
 * Resent-Bcc field, of any block, is marked with message_skip_header()
 * unless already left out.  Empty lists and empty groups add nothing;
 * bare local names are accepted.
 * Errors: ERR_DATA "NAME: fault" naming the header field (out is then as
 * before the call, the skip marks stay); ERR_IO from message_skip_header.
 * The strings in out are owned by out: free with hdr_rcpts_free(). */
int header_recipients(struct message *m, struct hdr_rcpts *out, struct err *e);

/* Free everything in r and leave it empty (HDR_RCPTS_INIT). */
void hdr_rcpts_free(struct hdr_rcpts *r);

#endif

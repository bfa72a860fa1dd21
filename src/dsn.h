/* dsn.h - delivery status notification parameters (RFC 3461): NOTIFY
 * values, xtext, and the per-recipient options of the reference's
 * MessageRecipient Options ("NOTIFY SUCCESS,FAILURE,DELAY"). */
#ifndef SMTPSEND_DSN_H
#define SMTPSEND_DSN_H

#include "err.h"
#include "session.h"
#include "util.h"

/* Append s as RFC 3461 xtext: "+", "=" and bytes outside 33..126 as +HH. */
void dsn_xtext(struct strbuf *out, const char *s);

/* Check a NOTIFY value ("never", or any of success,failure,delay, comma
 * or space separated, any case) and give it in wire form ("SUCCESS,DELAY")
 * in *out (to free).  Errors: ERR_USAGE naming what is wrong. */
int dsn_notify_parse(const char *value, char **out, struct err *e);

/* Apply RecipientOptions entries "ADDR:OPTIONS" to the recipients of env.
 * OPTIONS are "NOTIFY=VALUE" (or the reference's "NOTIFY VALUE") and
 * "ORCPT=TYPE;ADDRESS", space separated.  ADDR matches a recipient's
 * envelope address without regard to case.  Errors: ERR_USAGE for an
 * entry without ":", an unknown option, a bad value, or an ADDR that is
 * not a recipient. */
int dsn_recipient_options(const struct strlist *opts, struct envelope *env, struct err *e);

#endif

/* bs.h - sendmail -bs: speak SMTP on standard input and output, and relay
 * each message accepted there through the configured server.
 *
 * Programs such as PHP mailers open "sendmail -bs" and talk SMTP to it
 * instead of piping a message.  The reply to the final dot is only given
 * once the relay has answered, so the caller learns the real outcome. */
#ifndef SMTPSEND_BS_H
#define SMTPSEND_BS_H

#include <stdio.h>
#include "err.h"
#include "props.h"

struct submit_opts;

/* Serve one SMTP session on in/out until QUIT or end of input.  base
 * (may be NULL) gives the account and command-line settings a message
 * queued after a temporary failure replays when it is flushed.
 * Errors: ERR_IO when writing a reply fails. */
int bs_serve(struct props *p, const struct submit_opts *base, FILE *in, FILE *out, struct err *e);

#endif

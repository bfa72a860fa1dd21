/* message.h - the outgoing message: header lines smtpsend adds (a missing
 * Date, Message-ID or From) in front of the spooled message, minus the
 * header fields that must not be transmitted (Bcc), streamed in blocks. */
#ifndef SMTPSEND_MESSAGE_H
#define SMTPSEND_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"
#include "spool.h"
#include "util.h"

struct message {
	struct spool sp;
	struct strbuf prefix;   /* CR LF ended header lines sent first */
	off_t *skip_start;      /* byte ranges of the spool left out, sorted */
	off_t *skip_end;
	size_t nskip;
	uint64_t skip_wire;     /* wire size (CR LF line ends) of the skipped ranges */
	bool binary;            /* BINARYMIME: sent byte for byte, no line end changes */
};

void message_init(struct message *m);
void message_free(struct message *m);

/* Leave out header i of the spool (e.g. Bcc).  Errors: ERR_IO. */
int message_skip_header(struct message *m, size_t i, struct err *e);

/* Bytes on the wire before dot-stuffing (CR LF line ends), for SIZE=;
 * for a binary message the bytes exactly as they are. */
uint64_t message_size(const struct message *m);

typedef int (*message_sink)(void *ctx, const char *buf, size_t len, struct err *e);
/* Call sink with the message in order, in blocks.  Errors: ERR_IO for
 * spool read errors, whatever sink returns. */
int message_stream(const struct message *m, message_sink sink, void *ctx, struct err *e);

#endif

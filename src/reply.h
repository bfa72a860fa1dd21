/* reply.h - the one SMTP reply parser.
 *
 * Every place that reads a server reply goes through reply_add_line().
 * It is pure (no I/O), bounded (text beyond REPLY_TEXT_MAX is counted, not
 * stored) and strict: anything that is not "DDD" followed by " ", "-" or
 * the end of the line, with the same code on every line, is an error
 * rather than a guess. */
#ifndef SMTPSEND_REPLY_H
#define SMTPSEND_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

#define REPLY_TEXT_MAX 65536

struct reply {
	int code;              /* 200..599 */
	char enhanced[16];     /* "5.1.1" when the first line carries one */
	char *text;            /* lines after the code, joined by '\n'; owned */
	size_t textlen;
	size_t cap;
	size_t nlines;
	bool truncated;        /* some text was not stored */
	bool complete;
};

void reply_init(struct reply *r);
void reply_reset(struct reply *r);
void reply_free(struct reply *r);

/* Add one line (without its CR LF) to r.  Returns 1 when the reply is
 * complete, 0 when more lines follow, -1 on a malformed line (e.g. no
 * code, a code outside 200-599, a continuation with another code).
 * Errors: ERR_PROTOCOL, naming the offending line (sanitised). */
int reply_add_line(struct reply *r, const char *line, size_t len, struct err *e);

/* The first line of text, for messages: "550 5.1.1 no such user". */
const char *reply_first_line(const struct reply *r, char *buf, size_t bufsz);

/* Iterate the lines of text: *pos starts at 0; returns false at the end. */
bool reply_next_line(const struct reply *r, size_t *pos, const char **line, size_t *len);

static inline int reply_class(const struct reply *r) { return r->code / 100; }

#endif

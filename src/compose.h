/* compose.h - build an RFC 5322 message from the property set.
 *
 * Used when the message is given by flags (--subject, --body, ...) rather
 * than as a whole message on stdin.  Headers are built in memory (they are
 * small); the body is streamed from a FILE so a large --body-file does not
 * grow memory. */
#ifndef SMTPSEND_COMPOSE_H
#define SMTPSEND_COMPOSE_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include "err.h"
#include "util.h"

enum msgid_alg { MSGID_MD5, MSGID_SHA1, MSGID_SHA256 };

struct compose_input {
	const char *from;                 /* address (required) */
	const char *from_name;            /* display name (-F), or NULL */
	const struct strlist *to;         /* each entry may hold a comma list */
	const struct strlist *cc;
	const char *subject;              /* UTF-8 or NULL */
	const char *reply_to;             /* NULL when unset */
	const char *read_receipt_to;      /* -> Disposition-Notification-To */
	const char *delivery_notification_to; /* -> Return-Receipt-To */
	const char *date;                 /* "*" = now, "" = none, else as given */
	const char *message_id;           /* "*" = generate, "" = none, else as given */
	enum msgid_alg msgid_alg;
	int importance;                   /* 0 unspecified, 1 high, 2 normal, 3 low */
	int priority;                     /* 0 unspecified, 1 normal, 2 urgent, 3 non-urgent */
	int sensitivity;                  /* 0 unspecified, 1 personal, 2 private, 3 company-confidential */
	const struct strlist *other_headers; /* "Name: value" each; see OtherHeaders */
	const char *charset;              /* for RFC 2047; "" or NULL means UTF-8 */
	int max_header_length;            /* fold at this width (MaxHeaderLength) */
	bool fold_headers;                /* FoldHeaders */
	const char *hostname;             /* right-hand side of a generated Message-ID */
	time_t now;                       /* for Date and Message-ID, testable */
};

/* Append the complete header block (ending with the empty line, CRLF line
 * ends) to out.  body_8bit / body_needs_qp come from compose_scan_body().
 * Errors: ERR_DATA for a CR or LF inside a user-given field, a bad
 * address, or an unknown charset. */
int compose_headers(const struct compose_input *in, bool body_8bit, bool body_needs_qp,
		    struct strbuf *out, struct err *e);

/* True when other_headers begins with an empty entry: compose_headers()
 * then writes the remaining entries as the whole header block, with no
 * computed field at all (no Date, no MIME fields), so the caller should
 * write the body with qp false. */
bool compose_raw_headers(const struct compose_input *in);

/* Scan a body (rewinds it afterwards): does it hold 8-bit bytes, and does
 * it need quoted-printable (a NUL, a bare CR, or a line over 998 octets)?
 * Errors: ERR_IO. */
int compose_scan_body(FILE *body, bool *is_8bit, bool *needs_qp, struct err *e);

/* Copy the body to out with CRLF line ends, quoted-printable encoded when
 * qp is true.  Errors: ERR_IO. */
int compose_write_body(FILE *body, bool qp, FILE *out, struct err *e);

struct addr;
/* Append "From: display <addr>\r\n" to out, the display name quoted or
 * RFC 2047 encoded as needed and folded at max_header_length (for a raw
 * message that lacks its From).  Errors: ERR_DATA for a bad name. */
int compose_from_field(const char *display, const struct addr *a, int max_header_length,
		       struct strbuf *out, struct err *e);

/* The generated values, exposed for tests and for raw messages that lack
 * them: "Mon, 23 Nov 2026 11:30:07 +0000" and "<hex@host>". */
void compose_date(time_t t, char *buf, size_t bufsz);
void compose_message_id(enum msgid_alg alg, const char *host, time_t t, char *buf, size_t bufsz);

#endif

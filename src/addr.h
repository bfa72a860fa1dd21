/* addr.h - RFC 5322 address lists, and their SMTP envelope form.
 *
 * The parser accepts what a header field or a command-line argument may
 * hold: mailboxes ("a@b", "Name <a@b>", "\"Last, First\" <a@b>"), groups
 * ("team: a@b, c@d;"), comments, quoted local parts, domain literals,
 * RFC 2047 encoded words in display names, UTF-8 (RFC 6532) and the
 * obsolete forms still found in the wild (routes, empty list elements,
 * CFWS around dots).  Folding (CRLF followed by a blank) is unfolded; any
 * other CR, LF or NUL is refused, as is malformed UTF-8.
 *
 * Parsed values are semantic: quoting is removed and reapplied on output
 * only where needed, so "\"john\"@x" and "john@x" come out the same. */
#ifndef SMTPSEND_ADDR_H
#define SMTPSEND_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"
#include "util.h"

/* RFC 5321 limits, in octets. */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 254     /* local@domain; 256 with the angle brackets */

/* Flags for the parser. */
#define ADDR_ALLOW_LOCAL 0x1u /* accept a bare local part ("root"), sendmail style */

struct addr {
	char *display;   /* display name, UTF-8, RFC 2047 decoded; NULL if none */
	char *local;     /* local part without quoting (UTF-8, never empty) */
	char *domain;    /* as written (UTF-8 allowed), a literal keeps its
			  * brackets; NULL for a bare local part */
};

/* A group of the list: members are v[first .. first+n), n may be 0. */
struct addr_group {
	char *name;      /* display name of the group, decoded */
	size_t first;
	size_t n;
};

struct addr_list {
	struct addr *v;
	size_t n, cap;
	struct addr_group *g;   /* in input order; for re-emitting groups */
	size_t ng, gcap;
};
#define ADDR_LIST_INIT { NULL, 0, 0, NULL, 0, 0 }

/* Parse an RFC 5322 address-list (a header field value, possibly folded,
 * or an argument) and append its mailboxes to out; group members are
 * appended like any mailbox and the group itself is recorded in out->g.
 * An empty list (or only empty groups) adds no address and is not an
 * error: the caller decides whether it needs one.  flags: ADDR_ALLOW_*.
 * Errors: ERR_DATA naming the fault and its offset; out is then left as
 * it was before the call.  The strings in out are owned by out. */
int addr_parse_list(const char *s, unsigned flags, struct addr_list *out, struct err *e);
/* The same for a buffer of len bytes (a NUL inside is refused). */
int addr_parse_listn(const char *s, size_t len, unsigned flags, struct addr_list *out,
		     struct err *e);

/* Parse exactly one mailbox (no group, no list) into *out, which the
 * caller frees with addr_free().  Errors: ERR_DATA, *out untouched. */
int addr_parse_one(const char *s, unsigned flags, struct addr *out, struct err *e);

/* The envelope form for MAIL FROM / RCPT TO, without angle brackets:
 * local@domain with the local part quoted only when it is not a
 * dot-string and the domain converted to an A-label (IDNA2008,
 * non-transitional); a domain literal is checked and kept.  A bare local
 * part gives just the local part (the caller qualifies it or not).
 * *needs_smtputf8 is set when the local part is not ASCII.  *out is
 * allocated and owned by the caller.  Errors: ERR_DATA for a bad IDN,
 * a control character, a malformed domain or literal, a local part over
 * 64 octets, a domain over 255 or a path over 254. */
int addr_envelope(const struct addr *a, char **out, bool *needs_smtputf8, struct err *e);

/* Append the addr-spec of a in header form to sb: the local part quoted
 * only when needed, the domain as written (no IDN conversion). */
void addr_append_spec(struct strbuf *sb, const struct addr *a);

/* True when s (len bytes) is well-formed UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF.  Shared with compose.c. */
bool addr_utf8_valid(const char *s, size_t len);

void addr_free(struct addr *a);
/* Free everything in l and leave it empty (ADDR_LIST_INIT). */
void addr_list_free(struct addr_list *l);

#endif

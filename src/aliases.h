/* aliases.h - turning local recipient names into deliverable addresses.
 *
 * A submission client hands every recipient to a relay, which cannot
 * know what "root" meant on this machine: local names are expanded here,
 * through an aliases file, before RCPT.  The file is the /etc/aliases
 * format, which also covers smtpsend's own "local: remote@domain" lines:
 *
 *     # comment
 *     postmaster: root
 *     root:       admin@example.org, \root
 *     "john doe": john@example.org
 *     team:       alice, bob@example.org,
 *                 carol@example.org          (continuation line)
 *     default:    catchall@example.org       (any name not listed)
 *
 * Targets starting with '|' (command), '/' (file) or ":include:" are
 * kept but cannot be delivered by a submission client: using such an
 * alias is an error, having it in the file is not (the file may be shared
 * with a local MTA).  "\name" is the local name itself, never expanded;
 * so is a name listed among its own targets ("root: root, admin@x"). */
#ifndef SMTPSEND_ALIASES_H
#define SMTPSEND_ALIASES_H

#include "err.h"
#include "util.h"

/* Expansion stops, with an error, beyond this many nested aliases. */
#define ALIASES_MAX_DEPTH 10

struct aliases;

/* Load the aliases file at path into a new *out (free with aliases_free).
 * Logical lines start at a non-blank; a line starting with a blank
 * continues the previous one; empty lines and lines whose first non-blank
 * is '#' are ignored (also between continuation lines).  An entry is
 * "name: target, target..."; the name may be quoted; a name listed twice
 * is an error.  A target that is no address (nor command, file, include)
 * is recorded and reported, with its line, only when used.
 * Errors: ERR_NOINPUT when the file cannot be opened (the caller decides
 * whether that matters); ERR_IO on a read error; ERR_CONFIG "FILE:LINE:
 * ..." for a malformed entry.  *out is untouched on error. */
int aliases_load(const char *path, struct aliases **out, struct err *e);

/* Free a (NULL is fine). */
void aliases_free(struct aliases *a);

/* Resolve the recipient name and append its addresses, in envelope form
 * (A-label domains; a non-ASCII byte means a UTF-8 local part, which
 * needs SMTPUTF8), to out, each once (ignoring case) among those this
 * call appends.  A name with a domain is no local name: its envelope form
 * is appended as it is.  A local name (looked up ignoring case; quoted
 * or "\name" forms accepted) listed in a is replaced by its targets,
 * recursively, at most ALIASES_MAX_DEPTH aliases deep; a name not listed
 * goes to the "default" entry when there is one.  A local name that
 * remains gets "@" default_domain when default_domain is neither NULL
 * nor empty.  a may be NULL (no aliases).
 * Errors (out is then as before the call): ERR_RCPT "local recipient
 * NAME resolves to no address (no alias, no default domain)"; ERR_DATA
 * for a command, file or include target, for an alias loop, for nesting
 * beyond the limit and for an address (or default_domain) that has no
 * valid envelope form; ERR_CONFIG "FILE:LINE: ..." for a malformed
 * target met on the way. */
int aliases_resolve(const struct aliases *a, const char *name, const char *default_domain,
		    struct strlist *out, struct err *e);

#endif

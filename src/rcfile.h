/* rcfile.h - the rc file: ~/.smtpsendrc, $XDG_CONFIG_HOME/smtpsend/config,
 * /etc/smtpsendrc, or -C FILE.
 *
 * Format (msmtp-like): one "key value" per line; "#" starts a comment
 * line; "defaults" starts the section inherited by every account;
 * "account NAME" or "account NAME : BASE[, BASE2]" starts an account that
 * inherits from earlier accounts; "account default : NAME" names the
 * default account.  Keys are the property names of props.h (rc names
 * such as "host" and seed names such as "MailServer", case-insensitive);
 * rcfile does not validate them, props_set() does, and the error names
 * the file and line.
 *
 * Details: the value is the rest of the line with surrounding blanks
 * removed; written in double quotes it keeps surrounding blanks, with \"
 * and \\ as escapes.  "#" is a comment only as the first non-blank of a
 * line (an unquoted "#" later in a line is part of the value, so a
 * password holding one is not silently cut).  CRLF line ends are fine;
 * NUL and other control bytes (except tab) are syntax errors.  Account
 * names are case-sensitive; "account default" (usually ": NAME") is the
 * account used when nothing else chooses one. */
#ifndef SMTPSEND_RCFILE_H
#define SMTPSEND_RCFILE_H

#include <stdbool.h>
#include "err.h"
#include "util.h"

struct rc_setting {
	char *key;
	char *value;
	int line;          /* line number in file, for error messages */
};

struct rc_account {
	char *name;                 /* "defaults" for the defaults section */
	struct rc_setting *set;     /* own settings, in file order */
	size_t nset;
	char **bases;               /* names of inherited accounts */
	size_t *base_idx;           /* their acc[] indexes, a lookup hint */
	size_t nbases;
	int line;                   /* line of the "account" line, 0 for defaults */
};

struct rcfile {
	char *path;
	struct rc_account *acc;     /* acc[0] is always "defaults" (maybe empty) */
	size_t nacc;
	bool holds_secret;          /* a password-like key appears somewhere */
};

/* Read and parse path; 0 on success, -1 with rc left empty (so
 * rcfile_free() is always safe).  Errors: ERR_NOINPUT if missing or
 * unopenable (caller decides whether that matters), ERR_CONFIG for syntax
 * errors ("FILE:LINE: ..."), for a path that is not a regular file, and
 * for a file holding a secret that is group/other-accessible (the message
 * gives the chmod to run) or owned by neither the user nor root; ERR_IO
 * for a read error. */
int rcfile_load(const char *path, struct rcfile *rc, struct err *e);
void rcfile_free(struct rcfile *rc);

/* Which account applies: the one named (NULL for none), else the first
 * account in file order whose effective "from" (its own, a base's or the
 * defaults') matches envelope_from as a glob (fnmatch, case-insensitive;
 * skipped when envelope_from is NULL), else "account default", else the
 * defaults section alone (rc->acc[0]).
 * Errors: ERR_CONFIG when a named account does not exist. */
int rcfile_choose(const struct rcfile *rc, const char *name, const char *envelope_from,
		  const struct rc_account **out, struct err *e);

/* The account called name (case-sensitive), or NULL.  Never the defaults
 * section. */
const struct rc_account *rcfile_find(const struct rcfile *rc, const char *name);

/* Call fn for every setting of acc (an element of rc->acc) in effect
 * order: defaults, then bases (depth-first, earlier first), then the
 * account's own settings, so later calls override earlier ones.  An
 * account reached twice (a diamond) is applied once, at its first place.
 * Stops at the first fn error (fn returns non-zero and sets e).  Errors:
 * ERR_CONFIG for inheritance loops, ERR_INTERNAL for an acc not in rc,
 * whatever fn sets. */
typedef int (*rc_apply_fn)(void *ctx, const char *key, const char *value,
			   const char *path, int line, struct err *e);
int rcfile_apply(const struct rcfile *rc, const struct rc_account *acc,
		 rc_apply_fn fn, void *ctx, struct err *e);

/* The default user rc path ($XDG_CONFIG_HOME/smtpsend/config, or
 * ~/.config/smtpsend/config, if it exists; else ~/.smtpsendrc), newly
 * allocated, or NULL when no home directory is known; and the system one
 * (SYSCONFDIR/smtpsendrc, static storage). */
char *rcfile_user_path(void);
const char *rcfile_system_path(void);

#endif

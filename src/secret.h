/* secret.h - where the password (or OAuth token) comes from.
 *
 * In order: the configured password, password_command, the environment
 * variable SMTPSEND_PASSWORD, ~/.netrc, and a prompt on the terminal.  The
 * first source that is configured decides: a failing password_command is
 * an error, not a reason to look further, so a broken setup is never
 * papered over by a stale password from elsewhere. */
#ifndef SMTPSEND_SECRET_H
#define SMTPSEND_SECRET_H

#include "err.h"

/* Get the secret for user at host into *out (allocated; release it with
 * secret_free()).  `password` and `password_command` come from the rc
 * file or the command line, NULL or "" when unset.
 *
 * password_command runs under /bin/sh -c with stdin from /dev/null and
 * stderr passed through; the first line of its output, without the line
 * end (LF or CR LF), is the secret.  It has 30 seconds.
 * ~/.netrc ($HOME, else the password database) is searched for
 * "machine HOST" (case-insensitive) whose login, if any, is user, then for
 * "default"; tokens may span lines, may be double-quoted with backslash
 * escapes, and macdef bodies are skipped.
 * The prompt ("Password for USER at HOST: ") is shown on /dev/tty with echo
 * off; a signal during it restores the terminal before it takes effect.
 *
 * Errors: ERR_CONFIG when password_command fails (its exit status or
 * signal, a timeout, no output or an empty first line: never an empty
 * secret), when a .netrc that would supply the password is readable or
 * writable by others or owned by someone else (with the chmod to run),
 * and when nothing supplies a password and there is no terminal;
 * ERR_OS when the command cannot be started or the terminal fails, and
 * (code SEED_INTERRUPTED) when a signal that does not end the process
 * interrupts the prompt; ERR_IO for an unreadable .netrc.  *out is NULL on
 * error. */
int secret_get(const char *user, const char *host, const char *password,
	       const char *password_command, char **out, struct err *e);

/* Wipe and free a secret from secret_get().  NULL is fine. */
void secret_free(char *s);

/* The password_command time limit in milliseconds (default 30000); for
 * tests. */
void secret_set_command_timeout(int ms);

#endif

/* log.h - the protocol trace (the reference's PITrail event) and info lines.
 *
 * With -v every command line smtpsend sends is shown as "--> ", every
 * server line as "<-- " and smtpsend's own notes as "*** ", on stderr.
 * Server text is sanitised (no control characters reach the terminal);
 * secrets are masked unless MaskSensitiveData is false; message content is
 * never traced, only its size. */
#ifndef SMTPSEND_LOG_H
#define SMTPSEND_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

void log_setup(bool trace, bool mask, FILE *out);
/* Also write the trace to f (sendmail -X); NULL stops it. */
void log_traffic(FILE *f);
bool log_tracing(void);
/* A command line as sent; `secret_from` is the offset from which the line
 * is a secret (e.g. after "AUTH PLAIN "), or (size_t)-1 when none. */
void log_client(const char *line, size_t len, size_t secret_from);
void log_server(const char *line, size_t len);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning that is always shown ("smtpsend: warning: ..."). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

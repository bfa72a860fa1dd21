/* settings.h - apply the rc files and the command line's settings to a
 * property set, in order: system rc < user rc (or -C FILE) < account <
 * command line.  Used for a run, and again for each queued message when
 * the queue is flushed, with the settings stored in the entry. */
#ifndef SMTPSEND_SETTINGS_H
#define SMTPSEND_SETTINGS_H

#include "err.h"
#include "props.h"
#include "util.h"

struct settings_layer {
	const char *config_file;     /* -C FILE, or NULL for the usual files */
	const char *account;         /* -a NAME, or NULL */
	const struct strlist *keys;  /* the command line's settings, in order */
	const struct strlist *values;
};

/* Errors: ERR_CONFIG (file:line) for the rc files, ERR_USAGE for a bad
 * command-line value. */
int settings_load(const struct settings_layer *c, struct props *p, struct err *e);

#endif

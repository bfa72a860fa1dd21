/* cli.h - the command line: popt table -> settings for props_set(), plus
 * the run mode.
 *
 * The parser does not touch the property set itself: it records each
 * setting as a (name, value) pair in command-line order, so main.c can
 * apply the rc files first and the command line last ("was set" layering
 * without a mask: a layer is just the list of what it set). */
#ifndef SMTPSEND_CLI_H
#define SMTPSEND_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include "err.h"
#include "util.h"

struct cli {
	struct strlist keys;        /* property names ... */
	struct strlist values;      /* ... and their values, in order */
	struct strlist recipients;  /* positional arguments */
	struct strlist queries;     /* -O Name without "=": print the value */
	char *config_file;          /* -C FILE */
	char *account;              /* -a NAME */
	bool print;                 /* --print: show, send nothing */
	bool serverinfo;            /* --serverinfo: show the server, send nothing */
	bool read_recipients;       /* -t */
	struct strlist commands;    /* --verify, --expand, --command, in order */
	bool flush;                 /* -q, --flush */
	bool queue_only;            /* -odq */
	char mode;                  /* -b: 'm' send, 'p' list queue, 's' SMTP on stdio,
				     * 'v' verify, 'i' check aliases */
	bool help, version, list_settings;
};

/* Parse argv.  Errors: ERR_USAGE with a one-line message (unknown flag,
 * missing argument, a secret given on the command line). */
int cli_parse(int argc, const char **argv, struct cli *c, struct err *e);
void cli_free(struct cli *c);
/* Value of the last setting of name given on the command line, or NULL. */
const char *cli_get(const struct cli *c, const char *name);
void cli_usage(FILE *out);

#endif

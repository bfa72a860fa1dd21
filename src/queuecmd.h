/* queuecmd.h - the queue as the command line uses it: flush it (-q,
 * --flush; the reference's ProcessQueue) and list it (-bp, mailq).
 * Putting a message in (the reference's Queue) happens in submit.c, at
 * the user's request (--queue, -odq) or after a temporary failure. */
#ifndef SMTPSEND_QUEUECMD_H
#define SMTPSEND_QUEUECMD_H

#include <stdio.h>
#include "err.h"
#include "props.h"
#include "settings.h"

/* The queue directory in effect: QueueDir, else the default one.
 * Returned string is allocated; NULL when there is none. */
char *queuecmd_dir(const struct props *p);

struct flush_counts {
	unsigned sent, retried, failed, problems;
};

/* Send every due entry of dir, each with the rc files (its own account),
 * the settings it was queued with, then the flusher's command line (so
 * -q -v traces).  Success removes the entry (or keeps it as ID.sent with
 * KeepQueue); a temporary failure puts it back with a later retry time;
 * a permanent one makes it ID.failed with the reason.  Concurrent
 * flushes never send one entry twice.  Errors: ERR_CONFIG / ERR_IO for the
 * queue directory itself; per-entry failures are counted and reported as
 * warnings, not returned. */
int queuecmd_flush(const struct settings_layer *flusher, const char *dir, struct flush_counts *n,
		   struct err *e);

/* Print the queue for mailq.  Errors: ERR_CONFIG, ERR_IO. */
int queuecmd_list(const char *dir, FILE *out, struct err *e);

#endif

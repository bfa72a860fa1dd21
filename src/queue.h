/* queue.h - the on-disk mail queue: nothing handed to us is lost.
 *
 * One entry is one file in the queue directory, named "ID.STATE":
 *
 *     ID.queued  --claim-->  ID.sending  --done-->   (deleted), or ID.sent (KeepQueue)
 *                               |        --fail-->   ID.failed (reason recorded)
 *                               |        --retry-->  ID.queued (attempts+1, next try later;
 *                               |                    past the maximum age: ID.failed)
 *                               +-- owner died: the lock is free, the next flush reclaims it
 *     ID.corrupt: set aside by a flush because it failed the checks; never sent,
 *                 listed with the reason, left for a human to look at.
 *
 * Every state change is a rename(2), so each entry exists under exactly one
 * of these names at any moment.  A new file or a rewritten one is written
 * under ".tmp-ID" in the same directory, fsync'd, renamed into place and the
 * directory fsync'd.
 *
 * Claiming is a rename under an exclusive flock(2): a flusher opens
 * ID.queued, locks it without blocking, checks that the name still refers
 * to the file it locked and renames it to ID.sending; it keeps the file open
 * (and locked) until it finishes.  A concurrent flusher either cannot lock
 * it or finds the name gone.  An ID.sending whose lock can be taken belongs
 * to a flusher that died, and is reclaimed.
 *
 * File format (version 1): a text header, then the message bytes exactly as
 * message_stream() yields them (the bytes to send, before dot-stuffing):
 *
 *     smtpsend-queue 1
 *     id 20261123T122800.123456-4242-9f86d081
 *     created 1763900880
 *     next-try 1763901480
 *     attempts 2
 *     last-error 451 4.7.1 Greylisted, try again later   ("last-error " when none)
 *     account work
 *     setting tls_starttls=on        (zero or more, in order)
 *     from alice@example.org
 *     rcpt to:bob@example.org        (one or more, in order)
 *     size 1234
 *     end
 *     <size bytes of message, up to the end of the file>
 *
 * Each line is "key", one space, the value, LF.  In values a backslash is
 * written "\\" and every control byte (below 0x20, and 0x7f) "\xHH", so no
 * CR or LF can break a line; other bytes (UTF-8) are written as they are.
 * Times are seconds since the epoch.  The reader refuses anything else:
 * a first line other than "smtpsend-queue 1", an unknown or repeated key,
 * a missing one, a line over QUEUE_MAX_LINE bytes, a header over
 * QUEUE_MAX_HEADER bytes, a bad escape, a value out of range, an id that
 * differs from the file name, a header without "end" (truncated), or a
 * size that does not match the bytes after the header.  Unknown keys are
 * refused rather than ignored so that an older reader never sends an entry
 * whose meaning it only partly understands.
 *
 * The modification time of an entry is set to its next_try, so that a
 * flush passes over entries that are not due without opening them (the
 * header stays authoritative: a due file is still parsed and checked).
 *
 * Files and directory belong to the user (0600 and 0700).  Entries are
 * opened with O_NOFOLLOW and must be regular files owned by the user with
 * a single link. */
#ifndef SMTPSEND_QUEUE_H
#define SMTPSEND_QUEUE_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include "err.h"
#include "message.h"
#include "util.h"

#define QUEUE_MAX_LINE (16 * 1024)
#define QUEUE_MAX_HEADER (8 * 1024 * 1024)
/* Retry delays: 5 min, 10 min, 20 min, ... at most 4 h. */
#define QUEUE_BACKOFF_FIRST 300
#define QUEUE_BACKOFF_MAX (4 * 3600)

struct queue_entry_meta {
	char *id;                 /* "20261123T122800.123456-PID-RAND": sorts by creation */
	time_t created, next_try;
	unsigned attempts;
	char *last_error;         /* one line, sanitised; "" when none */
	char *account;            /* rc file account name or "" */
	struct strlist settings;  /* "Name=Value" settings to replay when sending */
	char *from;               /* envelope sender, "" for the null sender */
	struct strlist rcpts;     /* "to:addr", "cc:addr" or "bcc:addr" */
	off_t msg_offset;         /* where the message bytes start in the file */
	off_t msg_size;           /* message bytes, up to the end of the file */
};

/* Free what meta holds and zero it; harmless on a zeroed meta. */
void queue_meta_free(struct queue_entry_meta *meta);

/* The default queue directory, newly allocated: /var/spool/smtpsend for
 * root, else $XDG_DATA_HOME/smtpsend/queue (when set and absolute), else
 * HOME/.local/share/smtpsend/queue.  NULL when no home directory is known. */
char *queue_default_dir(void);

/* Check the queue directory, creating it (and missing parents, all 0700)
 * when create is set.  It must be a real directory (not a symlink) owned
 * by the user, with rwx for the user and not writable by group or others.
 * Returns 1 when it is fine, 0 when it does not exist and create is false,
 * -1 with e set.  Errors: ERR_CONFIG naming the chmod/chown to run or the
 * symlink; ERR_CANTCREAT when it cannot be created. */
int queue_open_dir(const char *dir, bool create, struct err *e);

/* Queue message m with the envelope and settings of meta (its id is
 * ignored; created and next_try default to now when 0; attempts and
 * last_error are kept).  The directory is checked and created as by
 * queue_open_dir(); the entry appears as ID.queued complete or not at all.
 * Settings are stored as given, secrets included, in a 0600 file.
 * dir "-" writes the entry to standard output instead.  *id_out (when not
 * NULL) gets the new id, to free.  Memory does not grow with the message.
 * Returns 0 or -1 with e set.  Errors: ERR_DATA for an invalid meta (no
 * recipient, a control character in an address); ERR_CONFIG as
 * queue_open_dir(); ERR_CANTCREAT naming the directory and the cause for
 * any failure to write (no temporary file is left behind); ERR_IO when
 * writing to standard output fails. */
int queue_write(const char *dir, const struct queue_entry_meta *meta, const struct message *m,
		char **id_out, struct err *e);

enum queue_state { QSTATE_QUEUED, QSTATE_SENDING, QSTATE_SENT, QSTATE_FAILED, QSTATE_CORRUPT };

/* "queued", "sending", "sent", "failed" or "corrupt". */
const char *queue_state_name(enum queue_state st);

struct queue_item {
	char *name;               /* file name in the directory */
	enum queue_state state;   /* QSTATE_CORRUPT whenever the checks fail */
	char *reason;             /* corrupt: why, one sanitised line; else NULL */
	bool locked;              /* sending: a live flusher holds it */
	off_t file_size;
	time_t mtime;             /* next_try for a well-formed entry */
	struct queue_entry_meta meta; /* parsed header; only id is set when corrupt */
};

struct queue_listing {
	struct queue_item *v;     /* sorted by id */
	size_t n;
};

/* List every entry of dir for mailq (temporary files are left out).  A
 * corrupt entry (empty, truncated, a symlink, owned by someone else, not
 * a regular file, an unparsable header) is listed as QSTATE_CORRUPT with
 * the reason.  An ID.sending is locked (shared) for a moment to tell
 * whether a flusher holds it.  A missing directory is an empty queue.
 * out is initialised here; free it with queue_listing_free() whatever is
 * returned.  Returns 0 or -1 with e set.  Errors: ERR_CONFIG (directory checks), ERR_IO
 * (the directory cannot be read). */
int queue_list(const char *dir, struct queue_listing *out, struct err *e);
void queue_listing_free(struct queue_listing *l);

struct queue_claimed {
	struct queue_entry_meta meta; /* the parsed header */
	int fd;                   /* the entry, read-only, locked; -1 when none */
	bool reclaimed;           /* it was an ID.sending whose flusher died */
	struct strlist problems;  /* entries set aside or skipped by this call,
	                           * "NAME: reason" (sanitised), for warnings */
	bool batched;             /* from queue_claim_next(): a DONE does not fsync
	                           * the directory; queue_sync_dir() does, once */
	int dirfd;                /* private */
	char *dir;                /* private */
};

/* Claim the next due entry: in id order, the first ID.queued whose
 * next_try has come, or ID.sending left by a dead flusher.  An entry
 * that fails the checks is renamed ID.corrupt and reported in
 * c->problems; one that cannot be opened for another reason is reported
 * and left.  Stale temporary files (over an hour old, unlocked) are
 * removed.  c is initialised here; call queue_claimed_free() after every
 * call.  Returns 1 with an entry claimed (ID.sending, locked), 0 when
 * nothing is due, -1 with e set.  Errors: ERR_CONFIG (directory checks),
 * ERR_IO (the directory cannot be read). */
int queue_claim(const char *dir, struct queue_claimed *c, struct err *e);

/* A flush claims many entries: a scan lets it read the directory once
 * rather than once per entry. */
struct queue_scan;
struct queue_scan *queue_scan_new(void);
void queue_scan_free(struct queue_scan *scan);

/* As queue_claim(), trying the entries of the scan's last directory read
 * in order, and reading the directory again only when they are used up
 * (so entries queued meanwhile are found too).  The entry is claimed
 * "batched": call queue_sync_dir() when done.  Returns as queue_claim(). */
int queue_claim_next(const char *dir, struct queue_scan *scan, struct queue_claimed *c,
		     struct err *e);

/* fsync the queue directory: a flush calls it after its last entry, so
 * that removing many sent entries costs one directory sync rather than one
 * each (an unsynced removal lost in a crash only means a duplicate).
 * Errors are ignored: nothing more could be done. */
void queue_sync_dir(const char *dir);

/* Read the claimed message into m (initialised here) through spool_read()
 * (dots and bare CRs as stored: the bytes were checked when queued),
 * with temporary files in tmpdir (NULL: $TMPDIR or /tmp).  Returns 0 or
 * -1 with e set.  Errors: as spool_read(): ERR_DATA means the entry can
 * never be sent (fail it), the others are local and temporary. */
int queue_claimed_read(struct queue_claimed *c, const char *tmpdir, struct message *m,
		       struct err *e);

enum queue_outcome {
	QUEUE_DONE,   /* sent: delete it, or rename to ID.sent when keep */
	QUEUE_RETRY,  /* temporary failure: back to ID.queued, later */
	QUEUE_FAIL,   /* permanent failure: to ID.failed with the reason */
};

/* Retry delay after the given number of attempts (>= 1): 5 min doubling
 * at each attempt, capped at 4 h. */
long queue_backoff(unsigned attempts);

/* Finish a claimed entry.  RETRY and FAIL rewrite it (attempts+1, reason
 * as last_error, next_try = now + queue_backoff(attempts) for RETRY) to a
 * new file renamed into place; a RETRY of an entry created max_age
 * seconds ago or earlier becomes a FAIL (max_age <= 0: no limit).  The
 * lock is released and c->fd closed in every case; on error the entry is
 * left as ID.sending, complete, and the next flush reclaims it (after a
 * failed DONE it is then sent again: duplicated rather than lost).
 * Returns 0 or -1 with e set.  Errors: ERR_CANTCREAT (rewrite or rename
 * failed), ERR_INTERNAL (nothing claimed). */
int queue_finish(struct queue_claimed *c, enum queue_outcome how, const char *reason, bool keep,
		 long max_age, struct err *e);

/* Release c: close the entry (an unfinished one stays ID.sending and is
 * reclaimed by the next flush) and free what it holds. */
void queue_claimed_free(struct queue_claimed *c);

#endif

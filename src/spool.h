/* spool.h - the message as the caller handed it over.
 *
 * The input (stdin or a file) is read once, before connecting, into an
 * unlinked temporary file (always a copy, even of a regular file: what is
 * sent is then exactly what was checked), and checked on the way: a NUL,
 * a bare CR or a line over 998 octets is refused with the line number (a
 * raw message is never silently altered), 8-bit bytes are noted (they
 * need 8BITMIME), and the header block is scanned so that a missing Date,
 * Message-ID or From can be added and Bcc lines can be left out.  Memory
 * stays bounded: only header lines are held, the body is not.
 *
 * Sendmail semantics: unless ignore_dots (-i/-oi), a line holding just "."
 * (then LF, CR LF or the end of input) ends the message: neither it nor
 * anything after it is part of the message.  The rest of the input is
 * still read (and dropped, unchecked), so that a program writing into our
 * pipe does not die of SIGPIPE.
 *
 * The header block is the run of header fields ("name:" where name is
 * printable ASCII without ':', optionally followed by blanks before the
 * colon, and any continuation lines starting with space or tab) from the
 * start of the input.  It ends at the first empty line, which is then the
 * separator (fields_end < header_end), or at the first line that is no
 * field, which then starts the body (fields_end == header_end, no
 * separator; a caller adding fields must then add the empty line too).
 * If the very first line is no field, there is no header block at all:
 * fields_end == header_end == 0 and the whole input is body.  A message
 * of header fields only has fields_end == header_end == size. */
#ifndef SMTPSEND_SPOOL_H
#define SMTPSEND_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"
#include "util.h"

/* One header field of the message, with its place in the spool so that
 * it can be skipped when sending (Bcc). */
struct spool_header {
	char *name;          /* field name as written, without blanks before ':' */
	char *value;         /* everything after the ':', unfolded: line ends
	                      * removed, all other whitespace kept */
	off_t start, end;    /* byte range in the spool, continuation lines and
	                      * the last line end included */
};

struct spool {
	int fd;              /* readable, seekable; owned */
	off_t base;          /* where the message starts in fd (0 but for a
	                      * file checked in place from an offset): read it
	                      * with spool_pread(), which adds it */
	off_t size;          /* bytes in the spool */
	off_t fields_end;    /* end of the last header field (0 if none): where
	                      * added fields go, before any separator line */
	off_t header_end;    /* offset of the first body byte (after the empty
	                      * line if any); == size if there is no body */
	uint64_t lines;      /* lines in the message */
	bool has_8bit;
	uint64_t wire_size;  /* size after CRLF normalisation (every line end,
	                      * a final unterminated line and, when allowed, a
	                      * bare CR become CR LF), without dot-stuffing: the
	                      * SIZE= value of RFC 1870 */
	uint64_t fault_line;   /* with tolerate_faults: first bad line, 0 = none */
	char fault[160];       /* and what is wrong with it */
	struct spool_header *hdr;
	size_t nhdr;
};

struct spool_opts {
	bool ignore_dots;        /* -i / -oi: a lone "." is data */
	bool allow_bare_cr;      /* composed messages are already clean */
	bool in_place;           /* a regular file (from its current offset)
				  * may be used as it is instead of copied;
				  * sp->fd may then hold bytes after sp->size */
	bool tolerate_faults;    /* record the first NUL, bare CR or long line
				  * in fault/fault_line instead of failing, so
				  * the caller can encode the body instead */
	const char *tmpdir;      /* NULL: $TMPDIR or /tmp */
};

/* Limits on the header block, which is held in memory. */
#define SPOOL_MAX_HEADER_BYTES (1024 * 1024)
#define SPOOL_MAX_HEADER_FIELDS 10000

/* Read all of fd (not closed) into sp; sp->fd is left at offset 0.
 * Returns 0, or -1 with e set.  Errors: ERR_DATA ("line N: ...") for a NUL, a bare CR, a line over 998
 * octets (not counting its line end), a header block over the limits;
 * ERR_IO / ERR_CANTCREAT for read or temporary file failures.  On error
 * sp holds nothing (fd -1) and spool_free() is optional. */
int spool_read(int fd, const struct spool_opts *o, struct spool *sp, struct err *e);
/* An unlinked temporary file in $TMPDIR (else /tmp), open read-write.
 * Errors: ERR_CANTCREAT naming the directory. */
int spool_temp_fd(struct err *e);

/* pread() of the spooled message: off counts from its first byte.
 * Returns what pread() returns. */
ssize_t spool_pread(const struct spool *sp, void *buf, size_t len, off_t off);

/* Index of the first header named name (case-insensitive), or -1. */
int spool_find_header(const struct spool *sp, const char *name);
/* Close the spool and free the headers.  sp must have been through
 * spool_read(); calling it again is harmless. */
void spool_free(struct spool *sp);

#endif

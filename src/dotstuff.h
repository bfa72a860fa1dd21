/* dotstuff.h - the outgoing body encoder for DATA (and BDAT).
 *
 * A streaming transform, safe at any chunk boundary: LF, CR LF and a bare
 * CR all become CR LF; in DATA mode a "." at the start of a line is
 * doubled.  dotstuff_finish() ends the last line with CR LF if needed and,
 * in DATA mode, appends the ".\r\n" terminator.  NUL bytes are passed
 * through: refusing them is the job of spool.c, before connecting. */
#ifndef SMTPSEND_DOTSTUFF_H
#define SMTPSEND_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

struct dotstuff {
	bool bdat;        /* no dot-stuffing, no terminator */
	bool at_bol;      /* next byte starts a line */
	bool pending_cr;  /* last byte seen was CR (already sent as CR LF):
	                  * an LF right after it is swallowed */
};

/* Worst-case output size for n input bytes (every byte may double). */
#define DOTSTUFF_MAX_OUT(n) (2 * (n) + 2)
/* Output size of dotstuff_finish(), at most. */
#define DOTSTUFF_FINISH_MAX 5

void dotstuff_init(struct dotstuff *d, bool bdat);
/* Encode in[0..len) into out (room for DOTSTUFF_MAX_OUT(len) bytes);
 * returns the number of bytes written. */
size_t dotstuff_feed(struct dotstuff *d, const char *in, size_t len, char *out);
/* Flush state and terminate; out needs DOTSTUFF_FINISH_MAX bytes. */
size_t dotstuff_finish(struct dotstuff *d, char *out);

#endif

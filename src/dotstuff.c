/* dotstuff.c - the outgoing body encoder for DATA and BDAT.
 *
 * The input is copied in runs: between two line-break bytes (CR or LF)
 * nothing changes, so each run is one memcpy.  The positions of the next
 * CR and the next LF are found with memchr and kept until they are passed,
 * which keeps the work linear even when one of the two bytes is rare or
 * absent (LF-only text, or old Mac CR-only text).
 *
 * A CR is turned into CR LF as soon as it is seen; pending_cr then
 * remembers to swallow an LF that directly follows it, possibly at the
 * start of the next chunk. */
#include "dotstuff.h"

#include <string.h>

void dotstuff_init(struct dotstuff *d, bool bdat)
{
	d->bdat = bdat;
	d->at_bol = true;
	d->pending_cr = false;
}

static const char *next_byte(const char *p, const char *end, char c)
{
	const char *q = memchr(p, c, (size_t)(end - p));
	return q ? q : end;
}

size_t dotstuff_feed(struct dotstuff *d, const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len;
	char *o = out;

	if (len == 0)
		return 0;
	if (d->pending_cr) {
		d->pending_cr = false;
		if (*p == '\n' && ++p == end)
			return 0;
	}

	const char *cr = next_byte(p, end, '\r');
	const char *lf = next_byte(p, end, '\n');
	bool stuff = !d->bdat;
	bool bol = d->at_bol;

	while (p < end) {
		if (bol && stuff && *p == '.')
			*o++ = '.';
		if (cr < p)
			cr = next_byte(p, end, '\r');
		if (lf < p)
			lf = next_byte(p, end, '\n');
		const char *stop = cr < lf ? cr : lf;
		size_t n = (size_t)(stop - p);
		memcpy(o, p, n);
		o += n;
		p = stop;
		if (p == end) {
			/* n > 0 here: the chunk ends inside a line. */
			bol = false;
			break;
		}
		*o++ = '\r';
		*o++ = '\n';
		bol = true;
		if (*p++ == '\r') {
			if (p == end)
				d->pending_cr = true;
			else if (*p == '\n')
				p++;
		}
	}
	d->at_bol = bol;
	return (size_t)(o - out);
}

size_t dotstuff_finish(struct dotstuff *d, char *out)
{
	char *o = out;

	if (!d->at_bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	if (!d->bdat) {
		memcpy(o, ".\r\n", 3);
		o += 3;
	}
	d->at_bol = true;
	d->pending_cr = false;
	return (size_t)(o - out);
}

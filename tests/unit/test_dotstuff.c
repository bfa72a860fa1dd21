/* test_dotstuff.c - the DATA/BDAT body encoder, at every chunk boundary.
 *
 * Each input is encoded in one piece, in chunks of every size, split at
 * every single point and in random patterns, and each result must equal
 * the output of a reference encoder written here in the plainest way:
 * split the input into lines, stuff each line, join with CR LF. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dotstuff.h"
#include "tap.h"

static void show(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < dstsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

/* The reference: cut the input into lines at CR LF, CR or LF; double a
 * leading dot of each line (DATA only); end every line with CR LF; an
 * unterminated last line counts only when it is not empty. */
static size_t ref_encode(const char *in, size_t len, bool bdat, char *out)
{
	size_t o = 0, i = 0;
	while (i < len) {
		size_t s = i;
		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		if (!bdat && i > s && in[s] == '.')
			out[o++] = '.';
		memcpy(out + o, in + s, i - s);
		o += i - s;
		out[o++] = '\r';
		out[o++] = '\n';
		if (i < len) {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i += 2;
			else
				i++;
		}
	}
	if (!bdat) {
		memcpy(out + o, ".\r\n", 3);
		o += 3;
	}
	return o;
}

/* Encode with the chunk lengths in cuts[] (repeating the last one). */
static size_t encode_cuts(const char *in, size_t len, bool bdat, const size_t *cuts,
			  size_t ncuts, char *out)
{
	struct dotstuff d;
	size_t o = 0, i = 0, k = 0;
	dotstuff_init(&d, bdat);
	while (i < len) {
		size_t n = cuts[k < ncuts ? k : ncuts - 1];
		k++;
		if (n > len - i)
			n = len - i;
		/* Empty feeds must be harmless anywhere. */
		o += dotstuff_feed(&d, in + i, 0, out + o);
		o += dotstuff_feed(&d, in + i, n, out + o);
		i += n;
	}
	o += dotstuff_finish(&d, out + o);
	return o;
}

static void check_wire(const char *out, size_t n, bool bdat)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\r')
			TAP_EXPECT(i + 1 < n && out[i + 1] == '\n', "CR without LF at %zu", i);
		if (out[i] == '\n')
			TAP_EXPECT(i > 0 && out[i - 1] == '\r', "LF without CR at %zu", i);
	}
	if (n)
		TAP_EXPECT(n >= 2 && out[n - 2] == '\r' && out[n - 1] == '\n', "output does not end with CRLF");
	/* A line holding only "." may be the last one in DATA mode, and must
	 * not exist at all elsewhere. */
	size_t ls = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (out[i] != '\r' || out[i + 1] != '\n')
			continue;
		bool lone = i - ls == 1 && out[ls] == '.';
		bool last = i + 2 == n;
		if (!bdat && lone)
			TAP_EXPECT(last, "lone dot line at %zu", ls);
		if (!bdat && last)
			TAP_EXPECT(lone, "DATA output lacks the terminator");
		ls = i + 2;
	}
	if (bdat)
		return;
	TAP_EXPECT(n >= 3, "DATA output too short");
	/* Before the terminator, the wire never holds CR LF . CR LF. */
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(out + i, "\r\n.\r\n", 5) == 0)
			TAP_EXPECT(i + 5 == n, "early terminator at %zu", i);
}

/* A fixed-seed generator, the same on every libc. */
static unsigned rnd(unsigned *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s >> 1;
}

static char *xm(size_t n)
{
	char *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

/* Every way of cutting one input must give the reference output. */
static void check_all_splits(const char *in, size_t len, bool bdat, unsigned *seed)
{
	size_t cap = DOTSTUFF_MAX_OUT(len) + DOTSTUFF_FINISH_MAX;
	char *want = xm(cap), *got = xm(cap);
	char a[256], b[256];
	size_t wn = ref_encode(in, len, bdat, want);
	size_t whole = len ? len : 1;
	size_t gn = encode_cuts(in, len, bdat, &whole, 1, got);

	show(a, sizeof a, want, wn);
	show(b, sizeof b, got, gn);
	TAP_EXPECT(gn == wn && memcmp(got, want, wn) == 0, "one piece: want \"%s\" got \"%s\"", a, b);
	check_wire(got, gn, bdat);

	for (size_t k = 1; k <= len; k++) {
		gn = encode_cuts(in, len, bdat, &k, 1, got);
		show(b, sizeof b, got, gn);
		TAP_EXPECT(gn == wn && memcmp(got, want, wn) == 0, "chunks of %zu: got \"%s\"", k, b);
	}
	for (size_t k = 1; k < len; k++) {
		size_t two[2] = { k, len };
		gn = encode_cuts(in, len, bdat, two, 2, got);
		TAP_EXPECT(gn == wn && memcmp(got, want, wn) == 0, "split at %zu", k);
	}
	for (int r = 0; r < 20 && len > 1; r++) {
		size_t cuts[64];
		for (size_t j = 0; j < 64; j++)
			cuts[j] = 1 + (size_t)rnd(seed) % (len < 8 ? len : len / 4 + 1);
		gn = encode_cuts(in, len, bdat, cuts, 64, got);
		TAP_EXPECT(gn == wn && memcmp(got, want, wn) == 0, "random split pattern %d", r);
	}
	free(want);
	free(got);
}

struct fixed {
	const char *in;
	size_t len;
	const char *data;   /* expected DATA output */
	size_t data_len;
	const char *bdat;   /* expected BDAT output */
	size_t bdat_len;
};

#define S(x) x, sizeof(x) - 1

static const struct fixed fixed[] = {
	{ S(""), S(".\r\n"), S("") },
	{ S("."), S("..\r\n.\r\n"), S(".\r\n") },
	{ S("a"), S("a\r\n.\r\n"), S("a\r\n") },
	{ S("a\r"), S("a\r\n.\r\n"), S("a\r\n") },
	{ S("a\n"), S("a\r\n.\r\n"), S("a\r\n") },
	{ S("\n.\n"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r.\r"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r.\n"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\n.\r"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\n.\r\n"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r\n.\n"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r.\r\n"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r\n.\r"), S("\r\n..\r\n.\r\n"), S("\r\n.\r\n") },
	{ S("\r\n\0.\r\n"), S("\r\n\0.\r\n.\r\n"), S("\r\n\0.\r\n") },
	{ S("\r\n.\0\r\n"), S("\r\n..\0\r\n.\r\n"), S("\r\n.\0\r\n") },
	{ S("\r\n.\r\r\n"), S("\r\n..\r\n\r\n.\r\n"), S("\r\n.\r\n\r\n") },
	{ S("\r\r\n\n\r"), S("\r\n\r\n\r\n\r\n.\r\n"), S("\r\n\r\n\r\n\r\n") },
	{ S(".a\n..b\r\nc.\r."), S("..a\r\n...b\r\nc.\r\n..\r\n.\r\n"), S(".a\r\n..b\r\nc.\r\n.\r\n") },
	{ S("x.\n\n."), S("x.\r\n\r\n..\r\n.\r\n"), S("x.\r\n\r\n.\r\n") },
};

static void test_fixed(void)
{
	unsigned seed = 1;
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		const struct fixed *f = &fixed[i];
		char desc[128], in[64];
		show(in, sizeof in, f->in, f->len);
		for (int bdat = 0; bdat <= 1; bdat++) {
			const char *want = bdat ? f->bdat : f->data;
			size_t wn = bdat ? f->bdat_len : f->data_len;
			char *ref = xm(DOTSTUFF_MAX_OUT(f->len) + DOTSTUFF_FINISH_MAX);
			size_t rn = ref_encode(f->in, f->len, bdat, ref);
			tap_begin();
			TAP_EXPECT(rn == wn && memcmp(ref, want, wn) == 0, "reference disagrees with the table");
			free(ref);
			check_all_splits(f->in, f->len, bdat, &seed);
			snprintf(desc, sizeof desc, "%s \"%s\"", bdat ? "BDAT" : "DATA", in);
			tap_end(desc);
		}
	}
}

static void test_random(void)
{
	static const char alphabet[] = "..\r\r\n\n\n.a\0\xff b";
	unsigned seed = 20261123;
	char buf[400];
	for (int bdat = 0; bdat <= 1; bdat++) {
		tap_begin();
		for (int r = 0; r < 300; r++) {
			size_t len = (size_t)rnd(&seed) % (r < 200 ? 40 : sizeof buf);
			for (size_t i = 0; i < len; i++)
				buf[i] = alphabet[rnd(&seed) % (sizeof alphabet - 1)];
			check_all_splits(buf, len, bdat, &seed);
		}
		tap_end(bdat ? "BDAT: 300 random inputs, all chunkings" : "DATA: 300 random inputs, all chunkings");
	}
}

/* Chunk edges that fall right after a CR or a dot, with long runs. */
static void test_long_lines(void)
{
	unsigned seed = 7;
	size_t len = 20000;
	char *in = xm(len);
	tap_begin();
	for (size_t i = 0; i < len; i++) {
		unsigned x = (unsigned)rnd(&seed) % 1000;
		in[i] = x < 3 ? '\r' : x < 6 ? '\n' : x < 8 ? '.' : (char)('a' + x % 26);
	}
	size_t cap = DOTSTUFF_MAX_OUT(len) + DOTSTUFF_FINISH_MAX;
	char *want = xm(cap), *got = xm(cap);
	size_t wn = ref_encode(in, len, false, want);
	static const size_t sizes[] = { 1, 2, 3, 7, 64, 511, 4096, 8191, 65536 };
	for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
		size_t gn = encode_cuts(in, len, false, &sizes[j], 1, got);
		TAP_EXPECT(gn == wn && memcmp(got, want, wn) == 0, "chunks of %zu", sizes[j]);
	}
	check_wire(got, wn, false);
	tap_end("20000 bytes of long lines, assorted chunk sizes");
	free(in);
	free(want);
	free(got);
}

static void bench(void)
{
	size_t len = 64u << 20, chunk = 64u << 10;
	char *in = xm(len), *out = xm(DOTSTUFF_MAX_OUT(chunk));
	unsigned seed = 3;
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		if (col >= 40 && (unsigned)rnd(&seed) % 40 == 0) {
			in[i] = '\n';
			col = 0;
		} else {
			in[i] = (char)('a' + col % 26);
			col++;
		}
	}
	struct dotstuff d;
	struct timespec t0, t1;
	size_t total = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dotstuff_init(&d, false);
	for (size_t i = 0; i < len; i += chunk)
		total += dotstuff_feed(&d, in + i, chunk, out);
	total += dotstuff_finish(&d, out);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# dotstuff_feed: %zu MB of LF text (~60-byte lines) in %.3f s: %.0f MB/s (%zu bytes out)\n",
	       len >> 20, s, (double)(len >> 20) / s, total);
	free(in);
	free(out);
}

int main(void)
{
	test_fixed();
	test_random();
	test_long_lines();
	bench();
	return tap_done();
}

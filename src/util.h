/* util.h - small allocation helpers, growable strings and string lists.
 *
 * Allocation failure is not recoverable for a short-lived command-line tool:
 * the x* functions print one line and abort with EX_OSERR through
 * util_die_nomem(), the only place outside main.c that ends the process. */
#ifndef SMTPSEND_UTIL_H
#define SMTPSEND_UTIL_H

#include <stdbool.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void util_die_nomem(void);

/* A growable byte buffer, always NUL-terminated for convenience. */
struct strbuf {
	char *s;
	size_t len;
	size_t cap;
};
#define STRBUF_INIT { NULL, 0, 0 }
void sb_grow(struct strbuf *sb, size_t extra);
void sb_add(struct strbuf *sb, const void *p, size_t n);
void sb_adds(struct strbuf *sb, const char *s);
void sb_addc(struct strbuf *sb, char c);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_reset(struct strbuf *sb);
void sb_free(struct strbuf *sb);

/* A growable list of owned strings. */
struct strlist {
	char **v;
	size_t n;
	size_t cap;
};
#define STRLIST_INIT { NULL, 0, 0 }
void sl_add(struct strlist *l, const char *s);     /* copies s */
void sl_add_owned(struct strlist *l, char *s);     /* takes s */
bool sl_contains_ci(const struct strlist *l, const char *s);

/* A set of strings (exact comparison), for lookups that a list would make
 * quadratic.  Zero-initialised is empty. */
struct strset {
	char **slot;           /* open addressing; NULL = empty */
	size_t cap, n;         /* cap is 0 or a power of two */
};
/* Add s (copied); returns false when it was there already. */
bool strset_add(struct strset *set, const char *s);
bool strset_has(const struct strset *set, const char *s);
void strset_free(struct strset *set);
void sl_clear(struct strlist *l);
void sl_free(struct strlist *l);

/* Case-insensitive ASCII comparisons that do not depend on the locale. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);

/* Copy s into dst (size dstsz) with every byte outside printable ASCII
 * shown as \xHH, so text from a server or a file cannot drive the
 * terminal.  Returns dst. */
char *sanitize(char *dst, size_t dstsz, const char *s, size_t len);

/* Parse a decimal integer in [min,max]; false on any junk. */
bool parse_long(const char *s, long min, long max, long *out);
/* Parse true/false/yes/no/on/off/1/0 (case-insensitive). */
bool parse_bool(const char *s, bool *out);

/* Append s as one shell word (quoted when needed), for a command the
 * user can paste: "run: chmod 600 'my file'". */
void sb_add_shell_word(struct strbuf *sb, const char *s);

/* The value of a base64 digit (RFC 4648), or -1. */
int base64_digit(unsigned char c);

/* Room base64_encode() needs for len bytes, its NUL included. */
#define BASE64_SIZE(len) (((len) + 2) / 3 * 4 + 1)
/* Encode data[0..len) as base64 (RFC 4648, padded, no line breaks) into
 * out (BASE64_SIZE(len) bytes), NUL-terminated; returns the length. */
size_t base64_encode(const void *data, size_t len, char *out);

/* The value of a hexadecimal digit (either case), or -1. */
int hex_digit(int c);

/* Write all of buf to fd, retrying on EINTR and short writes. -1 on error. */
int write_all(int fd, const void *buf, size_t len);

#endif

/* err.h - the one error type of smtpsend.
 *
 * A failure is classified where it happens (a 4xx reply is temporary, a
 * refused connection is temporary, an unknown host is "no host", ...) and
 * carried up in a struct err.  Only main.c turns the class into an exit
 * status (sysexits), and only main.c prints it. */
#ifndef SMTPSEND_ERR_H
#define SMTPSEND_ERR_H

#include <stdarg.h>

enum err_class {
	ERR_OK = 0,
	ERR_USAGE,       /* bad command line                      -> 64 */
	ERR_DATA,        /* bad message or address, refused early -> 65 */
	ERR_NOINPUT,     /* input file missing/unreadable         -> 66 */
	ERR_RCPT,        /* recipient refused permanently (5xx)   -> 67 */
	ERR_NOHOST,      /* host name unknown                     -> 68 */
	ERR_UNAVAILABLE, /* service unavailable, 5xx, TLS policy  -> 69 */
	ERR_INTERNAL,    /* a bug                                 -> 70 */
	ERR_OS,          /* an OS call failed                     -> 71 */
	ERR_CANTCREAT,   /* cannot create an output/queue file    -> 73 */
	ERR_IO,          /* I/O error on a local file             -> 74 */
	ERR_TEMP,        /* 4xx, connection lost, timeout         -> 75 */
	ERR_PROTOCOL,    /* the server broke the protocol         -> 76 */
	ERR_AUTH,        /* authentication refused                -> 77 */
	ERR_CONFIG,      /* configuration error                   -> 78 */
};

/* Error codes of the SMTP component reference, carried in err.code. */
enum {
	SEED_FIREWALL = 118,
	SEED_PROTOCOL = 161,      /* server reply text attached */
	SEED_COMM = 162,          /* error communicating with server */
	SEED_NO_SERVER = 163,
	SEED_NO_FROM = 164,
	SEED_NO_RCPT = 165,
	SEED_TIMEOUT = 201,
	SEED_TLS_HANDSHAKE = 276,
	SEED_TLS_VERIFY = 280,
	SEED_INTERRUPTED = 301,
	SEED_FILE = 302,
	SEED_HOST_NOT_FOUND = 11001,
	SEED_ERRNO_BASE = 10000,  /* 10000 + errno-like socket code */
};

struct err {
	enum err_class cls;
	int code;           /* seed error code, 0 when none applies */
	int reply;          /* SMTP reply code, 0 when none */
	char enhanced[16];  /* enhanced status code "5.1.1", or "" */
	char msg[1024];     /* one line, already sanitised */
};

/* Record an error; a later call replaces an earlier one. */
void err_set(struct err *e, enum err_class cls, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void err_vset(struct err *e, enum err_class cls, int code, const char *fmt, va_list ap);
void err_clear(struct err *e);
/* How serious a class is, for "exit with the most serious status". */
int err_severity(enum err_class cls);
/* Seed error code for a socket errno (10000 + WinSock-style number). */
int err_code_from_errno(int errnum);

#endif

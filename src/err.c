/* err.c - recording errors; classification happens at the failure site. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void err_vset(struct err *e, enum err_class cls, int code, const char *fmt, va_list ap)
{
	char raw[sizeof e->msg];
	e->cls = cls;
	e->code = code;
	vsnprintf(raw, sizeof raw, fmt, ap);
	/* Messages often quote server or file text: never let a control
	 * character through to the terminal. */
	sanitize(e->msg, sizeof e->msg, raw, strlen(raw));
}

void err_set(struct err *e, enum err_class cls, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(e, cls, code, fmt, ap);
	va_end(ap);
}

void err_clear(struct err *e)
{
	memset(e, 0, sizeof *e);
}

int err_severity(enum err_class cls)
{
	/* Permanent and local faults outrank temporary ones: a caller that
	 * sees 75 will retry, which is wrong when part of the job can never
	 * succeed. */
	switch (cls) {
	case ERR_OK: return 0;
	case ERR_TEMP: return 1;
	case ERR_RCPT: return 2;
	case ERR_DATA: return 3;
	case ERR_PROTOCOL: return 4;
	case ERR_UNAVAILABLE: return 5;
	case ERR_AUTH: return 6;
	case ERR_NOHOST: return 7;
	default: return 8;
	}
}

int err_code_from_errno(int errnum)
{
	/* The reference reports socket errors as WinSock numbers. */
	switch (errnum) {
	case EINTR: return 10004;
	case EACCES: return 10013;
	case EADDRINUSE: return 10048;
	case EADDRNOTAVAIL: return 10049;
	case ENETDOWN: return 10050;
	case ENETUNREACH: return 10051;
	case ECONNABORTED: return 10053;
	case ECONNRESET: return 10054;
	case ETIMEDOUT: return 10060;
	case ECONNREFUSED: return 10061;
	case EHOSTDOWN: return 10064;
	case EHOSTUNREACH: return 10065;
	case EPIPE: return 10058;
	default: return SEED_COMM;
	}
}

/* log.c - trace and warnings on stderr. */
#include "log.h"

#include <stdarg.h>
#include <string.h>

#include "util.h"

static struct {
	bool trace;
	bool mask;
	FILE *out;
	FILE *traffic;  /* -X: a copy of the trace in a file */
} L = { false, true, NULL, NULL };

void log_setup(bool trace, bool mask, FILE *out)
{
	L.trace = trace;
	L.mask = mask;
	L.out = out;
}

void log_traffic(FILE *f)
{
	L.traffic = f;
}

bool log_tracing(void)
{
	return (L.trace && L.out) || L.traffic;
}

/* Print one finished trace line to the trace and the traffic log. */
static void emit(const char *text)
{
	if (L.trace && L.out)
		fprintf(L.out, "%s\n", text);
	if (L.traffic) {
		fprintf(L.traffic, "%s\n", text);
		fflush(L.traffic);
	}
}

static void line(const char *prefix, const char *s, size_t len)
{
	char buf[1100], full[1200];
	if (len > 1000)
		len = 1000;
	snprintf(full, sizeof full, "%s%s", prefix, sanitize(buf, sizeof buf, s, len));
	emit(full);
}

void log_client(const char *s, size_t len, size_t secret_from)
{
	if (!log_tracing())
		return;
	if (L.mask && secret_from != (size_t)-1 && secret_from <= len) {
		char buf[1100], full[1200];
		size_t keep = secret_from > 1000 ? 1000 : secret_from;
		snprintf(full, sizeof full, "--> %s%s", sanitize(buf, sizeof buf, s, keep),
			 secret_from < len ? "********" : "");
		emit(full);
		return;
	}
	line("--> ", s, len);
}

void log_server(const char *s, size_t len)
{
	if (log_tracing())
		line("<-- ", s, len);
}

void log_info(const char *fmt, ...)
{
	char raw[1024], buf[1100];
	va_list ap;
	if (!log_tracing())
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	char full[1200];
	snprintf(full, sizeof full, "*** %s", sanitize(buf, sizeof buf, raw, strlen(raw)));
	emit(full);
}

void log_warn(const char *fmt, ...)
{
	char raw[1024], buf[1100];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	fprintf(stderr, "smtpsend: warning: %s\n", sanitize(buf, sizeof buf, raw, strlen(raw)));
}

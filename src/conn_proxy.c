/* conn_proxy.c - the proxy URL, the choice of proxy for a host, and the
 * tunnel handshakes (SOCKS4, SOCKS4a, SOCKS5 with RFC 1929 user/password,
 * HTTP CONNECT with Basic authentication).
 *
 * Everything the proxy sends is hostile until proven otherwise: replies
 * are read with exact lengths (SOCKS) or as bounded lines (HTTP), and no
 * byte beyond the proxy's answer is consumed, so the mail server's
 * greeting stays buffered in the conn for the session. */
#include "conn_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

/* RFC 1929 carries each length in one byte; SOCKS4 user ids and SOCKS4a /
 * SOCKS5 names get the same bound so every request fits a fixed buffer. */
#define FIELD_MAX 255
/* An HTTP proxy's answer: enough for any real proxy, small enough that a
 * hostile one cannot keep us reading. */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_HEADER_BYTES 32768
#define HTTP_MAX_LINE 8192

static const struct {
	const char *name;
	enum proxy_type type;
	int port;
} schemes[] = {
	{ "socks4", PROXY_SOCKS4, 1080 },
	{ "socks4a", PROXY_SOCKS4A, 1080 },
	{ "socks5", PROXY_SOCKS5, 1080 },
	{ "socks5h", PROXY_SOCKS5H, 1080 },
	{ "http", PROXY_HTTP, 8080 },
};
#define NSCHEMES (sizeof schemes / sizeof schemes[0])
#define SCHEME_LIST "socks4, socks4a, socks5, socks5h or http"

static const char *type_name(enum proxy_type t)
{
	for (size_t i = 0; i < NSCHEMES; i++)
		if (schemes[i].type == t)
			return schemes[i].name;
	return "?";
}

static bool is_socks5(enum proxy_type t)
{
	return t == PROXY_SOCKS5 || t == PROXY_SOCKS5H;
}

/* ---- the URL ---- */

/* Percent-decode s[0..n) into a new string.  Errors: ERR_CONFIG for a
 * broken escape or %00 (the value is never shown: it may be a password). */
static int pct_decode(const char *s, size_t n, const char *src, const char *what, char **out,
		      struct err *e)
{
	char *d = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[o++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
		int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			explicit_bzero(d, n + 1);
			free(d);
			err_set(e, ERR_CONFIG, 0, "%s: the %s has a bad %%-escape (write %% as %%25; %%00 is "
				"not allowed)", src, what);
			return -1;
		}
		d[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[o] = '\0';
	*out = d;
	return 0;
}

/* Letters, digits, '-', '.', '_', and UTF-8 (an IDN, converted below). */
static bool host_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/* Store the host part: "[v6]" or a name/IPv4, A-label for an IDN.
 * Errors: ERR_CONFIG. */
static int parse_host(const char *s, size_t n, const char *src, struct proxy *px, struct err *e)
{
	if (n == 0) {
		err_set(e, ERR_CONFIG, 0, "%s has no proxy host", src);
		return -1;
	}
	if (s[0] == '[') {
		char lit[INET6_ADDRSTRLEN];
		struct in6_addr a;
		if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof lit)
			goto bad_v6;
		memcpy(lit, s + 1, n - 2);
		lit[n - 2] = '\0';
		if (inet_pton(AF_INET6, lit, &a) != 1)
			goto bad_v6;
		px->host = xstrdup(lit);
		return 0;
	}
	if (memchr(s, ':', n)) {
		err_set(e, ERR_CONFIG, 0, "%s: write an IPv6 proxy address in brackets, as "
			"socks5://[::1]:1080", src);
		return -1;
	}
	if (n > FIELD_MAX || !host_chars_ok(s, n)) {
		err_set(e, ERR_CONFIG, 0, "%s: the proxy host is not a valid host name or address", src);
		return -1;
	}
	char *h = xstrndup(s, n);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)h[i] >= 0x80) {
			/* conn_tcp looks the proxy up by this name as it is. */
			char *a = NULL;
			int r = idn2_to_ascii_8z(h, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
			free(h);
			if (r != IDN2_OK) {
				err_set(e, ERR_CONFIG, 0, "%s: the proxy host is not a valid IDN: %s", src,
					idn2_strerror(r));
				return -1;
			}
			h = xstrdup(a);
			idn2_free(a);
			break;
		}
	}
	px->host = h;
	return 0;
bad_v6:
	err_set(e, ERR_CONFIG, 0, "%s: the proxy host in brackets is not an IPv6 address", src);
	return -1;
}

/* "host[:port]" or "[v6][:port]".  Errors: ERR_CONFIG. */
static int parse_hostport(const char *s, size_t n, int defport, const char *src, struct proxy *px,
			  struct err *e)
{
	size_t hl = n;
	const char *colon = NULL;
	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb && (size_t)(rb - s) + 1 < n) {
			if (rb[1] != ':') {
				err_set(e, ERR_CONFIG, 0, "%s: only \":PORT\" may follow the bracketed "
					"proxy address", src);
				return -1;
			}
			colon = rb + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		/* two colons: an IPv6 address without brackets, refused there */
		if (colon && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1))
			colon = NULL;
	}
	px->port = defport;
	if (colon) {
		char digits[8];
		size_t pl = n - (size_t)(colon - s) - 1;
		long v;
		hl = (size_t)(colon - s);
		if (pl == 0 || pl >= sizeof digits) {
			err_set(e, ERR_CONFIG, 0, "%s: the proxy port must be a number from 1 to 65535", src);
			return -1;
		}
		memcpy(digits, colon + 1, pl);
		digits[pl] = '\0';
		if (strspn(digits, "0123456789") != pl || !parse_long(digits, 1, 65535, &v)) {
			err_set(e, ERR_CONFIG, 0, "%s: the proxy port must be a number from 1 to 65535", src);
			return -1;
		}
		px->port = (int)v;
	}
	return parse_host(s, hl, src, px, e);
}

/* "user[:password]" (percent-encoded).  Errors: ERR_CONFIG. */
static int parse_userinfo(const char *s, size_t n, const char *src, struct proxy *px,
			  struct err *e)
{
	const char *colon = memchr(s, ':', n);
	size_t ul = colon ? (size_t)(colon - s) : n;
	if (pct_decode(s, ul, src, "proxy user name", &px->user, e) < 0)
		return -1;
	if (colon && pct_decode(colon + 1, n - ul - 1, src, "proxy password", &px->password, e) < 0)
		return -1;
	if (!*px->user) {
		/* "@host" alone means no user at all; ":pass@host" is a mistake */
		free(px->user);
		px->user = NULL;
		if (px->password) {
			err_set(e, ERR_CONFIG, 0, "%s has a proxy password but no user name", src);
			return -1;
		}
	}
	return 0;
}

/* Checks that need the type and the final credentials.  Errors: ERR_CONFIG. */
static int check_credentials(const char *src, struct proxy *px, struct err *e)
{
	const char *t = type_name(px->type);
	if (px->password && !px->user) {
		err_set(e, ERR_CONFIG, 0, "%s: a proxy password is set but the URL has no user name "
			"(write %s://USER@HOST)", src, t);
		return -1;
	}
	if ((px->type == PROXY_SOCKS4 || px->type == PROXY_SOCKS4A) && px->password) {
		err_set(e, ERR_CONFIG, 0, "%s: %s has a user id but no password; remove the "
			"password or use socks5", src, t);
		return -1;
	}
	if (px->type != PROXY_HTTP && px->user && strlen(px->user) > FIELD_MAX) {
		err_set(e, ERR_CONFIG, 0, "%s: the proxy user name is longer than %d bytes, the "
			"limit of %s", src, FIELD_MAX, t);
		return -1;
	}
	if (is_socks5(px->type) && px->password && strlen(px->password) > FIELD_MAX) {
		err_set(e, ERR_CONFIG, 0, "%s: the proxy password is longer than %d bytes, the "
			"limit of SOCKS5 (RFC 1929)", src, FIELD_MAX);
		return -1;
	}
	return 0;
}

/* proxy_parse with src naming where the URL came from in messages.  No
 * message shows any part of the URL but its scheme: the rest may hold a
 * password, and a malformed URL does not say reliably where it is. */
static int parse_url(const char *url, const char *password, const char *src, struct proxy *px,
		     struct err *e)
{
	memset(px, 0, sizeof *px);
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			err_set(e, ERR_CONFIG, 0, "%s contains a space or a control character", src);
			return -1;
		}
	}
	const char *sep = strstr(url, "://");
	if (!sep) {
		err_set(e, ERR_CONFIG, 0, "%s has no scheme: write " SCHEME_LIST
			"://[USER@]HOST[:PORT]", src);
		return -1;
	}
	size_t sl = (size_t)(sep - url);
	size_t i;
	for (i = 0; i < NSCHEMES; i++)
		if (strlen(schemes[i].name) == sl && ascii_ncasecmp(url, schemes[i].name, sl) == 0)
			break;
	if (i == NSCHEMES) {
		err_set(e, ERR_CONFIG, 0, "%s: unknown proxy type \"%.*s\" (use " SCHEME_LIST ")", src,
			sl > 20 ? 20 : (int)sl, url);
		return -1;
	}
	px->type = schemes[i].type;

	const char *auth = sep + 3;
	size_t al = strcspn(auth, "/?#");
	if (auth[al] && strcmp(auth + al, "/") != 0) {
		err_set(e, ERR_CONFIG, 0, "%s: nothing may follow HOST[:PORT] but \"/\" (in a user "
			"name or password write / ? # @ as %%2F %%3F %%23 %%40)", src);
		goto fail;
	}
	const char *at = NULL;
	for (const char *p = auth; p < auth + al; p++)
		if (*p == '@')
			at = p;
	if (at && memchr(auth, '@', (size_t)(at - auth))) {
		err_set(e, ERR_CONFIG, 0, "%s: write @ in a proxy user name or password as %%40", src);
		goto fail;
	}
	if (at && parse_userinfo(auth, (size_t)(at - auth), src, px, e) < 0)
		goto fail;
	const char *hp = at ? at + 1 : auth;
	if (parse_hostport(hp, al - (size_t)(hp - auth), schemes[i].port, src, px, e) < 0)
		goto fail;
	if (!px->password && password && *password)
		px->password = xstrdup(password);
	if (check_credentials(src, px, e) < 0)
		goto fail;
	return 0;
fail:
	proxy_free(px);
	return -1;
}

int proxy_parse(const char *url, const char *password, struct proxy *px, struct err *e)
{
	return parse_url(url, password, "the proxy URL", px, e);
}

void proxy_free(struct proxy *px)
{
	if (px->password) {
		explicit_bzero(px->password, strlen(px->password));
		free(px->password);
	}
	if (px->user) {
		/* a user name next to a password is half a credential */
		explicit_bzero(px->user, strlen(px->user));
		free(px->user);
	}
	free(px->host);
	memset(px, 0, sizeof *px);
}

const char *proxy_describe(const struct proxy *px, char *buf, size_t bufsz)
{
	bool v6 = px->host && strchr(px->host, ':');
	snprintf(buf, bufsz, "%s proxy %s%.255s%s:%d", type_name(px->type), v6 ? "[" : "",
		 px->host ? px->host : "?", v6 ? "]" : "", px->port);
	return buf;
}

/* ---- which proxy, if any ---- */

/* host without brackets or a final dot, in lower case, into buf. */
static void normalize_host(const char *s, size_t n, char *buf, size_t bufsz)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n && s[n - 1] == '.')
		n--;
	if (n >= bufsz)
		n = bufsz - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	buf[n] = '\0';
}

/* Parse an IP address; returns its family or 0. */
static int parse_ip(const char *s, unsigned char a[16])
{
	if (inet_pton(AF_INET, s, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, a) == 1)
		return AF_INET6;
	return 0;
}

/* host is a name under domain (not domain itself). */
static bool under(const char *domain, const char *host)
{
	size_t dl = strlen(domain), hl = strlen(host);
	return hl > dl + 1 && host[hl - dl - 1] == '.' && strcmp(host + hl - dl, domain) == 0;
}

/* "10.0.0.0/8" or "fd00::/8" containing the address (fam, a). */
static bool cidr_match(const char *pat, int fam, const unsigned char a[16])
{
	char net[INET6_ADDRSTRLEN];
	const char *slash = strchr(pat, '/');
	long bits;
	unsigned char n[16];
	if (!slash || (size_t)(slash - pat) >= sizeof net)
		return false;
	memcpy(net, pat, (size_t)(slash - pat));
	net[slash - pat] = '\0';
	if (parse_ip(net, n) != fam || !parse_long(slash + 1, 0, fam == AF_INET ? 32 : 128, &bits))
		return false;
	for (long i = 0; i < bits; i++) {
		int mask = 0x80 >> (i % 8);
		if ((a[i / 8] & mask) != (n[i / 8] & mask))
			return false;
	}
	return true;
}

/* One entry of an exception list against host (normalised).  curl-style
 * (NO_PROXY): "example.com" and ".example.com" both cover the domain and
 * its subdomains, and CIDR ranges are understood; ProxyExceptionsList:
 * an exact name, "*.example.com" or ".example.com" for subdomains. */
static bool entry_match(const char *entry, size_t n, const char *host, bool curl_style)
{
	char pat[300];
	unsigned char ha[16], pa[16];
	normalize_host(entry, n, pat, sizeof pat);
	if (!*pat)
		return false;
	if (strcmp(pat, "*") == 0)
		return true;
	int hf = parse_ip(host, ha);
	if (hf) {
		/* addresses compare as addresses: "::1" is "0::1" */
		if (parse_ip(pat, pa) == hf)
			return memcmp(ha, pa, hf == AF_INET ? 4 : 16) == 0;
		return curl_style && cidr_match(pat, hf, ha);
	}
	if (strncmp(pat, "*.", 2) == 0)
		return under(pat + 2, host);
	if (pat[0] == '.')
		return under(pat + 1, host) || (curl_style && strcmp(pat + 1, host) == 0);
	return strcmp(pat, host) == 0 || (curl_style && under(pat, host));
}

static bool list_match(const char *list, const char *seps, const char *host, bool curl_style)
{
	while (list && *list) {
		size_t n = strcspn(list, seps);
		if (entry_match(list, n, host, curl_style))
			return true;
		list += n;
		if (*list)
			list++;
	}
	return false;
}

/* The first non-empty of the environment variables in names. */
static const char *first_env(const char *const names[], size_t n, const char **which)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = getenv(names[i]);
		if (v && *v) {
			*which = names[i];
			return v;
		}
	}
	return NULL;
}

int proxy_choose(const char *setting, const char *password, const char *exceptions,
		 const char *host, struct proxy *px, struct err *e)
{
	static const char *const proxy_vars[] = { "SMTP_PROXY", "smtp_proxy", "ALL_PROXY", "all_proxy" };
	static const char *const no_vars[] = { "NO_PROXY", "no_proxy" };
	const char *url = setting, *from = NULL;
	char src[64], h[300];

	memset(px, 0, sizeof *px);
	if (url && *url) {
		snprintf(src, sizeof src, "the proxy setting");
	} else {
		url = first_env(proxy_vars, sizeof proxy_vars / sizeof proxy_vars[0], &from);
		if (!url)
			return 0;
		snprintf(src, sizeof src, "%s in the environment", from);
		/* The rc's proxy_password belongs to the rc's proxy: never hand
		 * it to one that the environment chose. */
		password = NULL;
	}
	/* Checked even when the host bypasses it: a broken setting should
	 * not wait for the one host that uses it to be noticed. */
	if (parse_url(url, password, src, px, e) < 0)
		return -1;

	normalize_host(host, strlen(host), h, sizeof h);
	const char *novar = NULL;
	const char *no = from ? first_env(no_vars, sizeof no_vars / sizeof no_vars[0], &novar) : NULL;
	if (list_match(exceptions, ";,", h, false)) {
		log_info("%s is in proxy_exceptions: connecting directly", host);
	} else if (no && list_match(no, ", \t", h, true)) {
		log_info("%s is in %s: connecting directly", host, novar);
	} else {
		if (from)
			log_info("proxy from %s", from);
		return 1;
	}
	proxy_free(px);
	return 0;
}

/* ---- the handshakes ---- */

/* One handshake's state, so that the helpers need few arguments. */
struct hs {
	struct conn *c;
	const struct proxy *px;
	const char *host;       /* the mail server, as conn_tcp resolved it */
	int port;
	int64_t deadline;
	struct err *e;
	char desc[300];         /* "socks5 proxy 127.0.0.1:1080" */
	char target[300];       /* "mail.example.com:587", "[::1]:25" */
};

/* Fail with code 118 and a message that starts with the proxy's name
 * and names the target: "socks5 proxy HOST:PORT could not reach
 * TARGET: ...", "socks5 proxy HOST:PORT (tunnel to TARGET) sent ..."; a
 * detail starting with ':' follows the name directly. */
__attribute__((format(printf, 3, 4)))
static int hs_fail(struct hs *h, enum err_class cls, const char *fmt, ...)
{
	char detail[sizeof h->e->msg], tunnel[sizeof h->target + 16] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	/* every message says which tunnel was asked for */
	if (!strstr(detail, h->target))
		snprintf(tunnel, sizeof tunnel, " (tunnel to %s)", h->target);
	err_set(h->e, cls, SEED_FIREWALL, "%s%s%s%s", h->desc, tunnel, detail[0] == ':' ? "" : " ",
		detail);
	return -1;
}

/* Send one request.  A secret one is wiped from the write buffer after
 * it has gone (the buffer is empty before every request).  Errors:
 * ERR_TEMP. */
static int hs_send(struct hs *h, const void *buf, size_t len, bool secret)
{
	struct err we;
	err_clear(&we);
	int r = conn_write(h->c, buf, len, &we);
	if (r == 0)
		r = conn_flush(h->c, &we);
	if (secret)
		explicit_bzero(h->c->wbuf, sizeof h->c->wbuf);
	if (r < 0)
		return hs_fail(h, ERR_TEMP, "could not be sent our request: %s", we.msg);
	return 0;
}

/* Turn a failed read of the proxy's `what` into our error.  An end of
 * stream before any byte of it may be a proxy dropping an unwanted
 * client (try again later); one in the middle is a broken reply. */
static int hs_read_failed(struct hs *h, const struct err *re, const char *what, bool started)
{
	if (h->c->eof && started)
		return hs_fail(h, ERR_PROTOCOL, "closed the connection in the middle of its %s "
			       "(truncated reply)", what);
	if (h->c->eof)
		return hs_fail(h, ERR_TEMP, "closed the connection without sending its %s", what);
	if (re->code == SEED_TIMEOUT)
		return hs_fail(h, ERR_TEMP, "did not send its %s in time", what);
	return hs_fail(h, re->cls == ERR_OS ? ERR_OS : ERR_TEMP, "failed while we waited for its "
		       "%s: %s", what, re->msg);
}

/* Read exactly len bytes that continue a reply already started. */
static int hs_read(struct hs *h, void *buf, size_t len, const char *what)
{
	struct err re;
	err_clear(&re);
	if (conn_read_exact(h->c, buf, len, h->deadline, &re) < 0)
		return hs_read_failed(h, &re, what, true);
	return 0;
}

/* Read a whole fixed-size reply: the first byte tells "no answer" from
 * "a truncated answer". */
static int hs_reply(struct hs *h, unsigned char *buf, size_t len, const char *what)
{
	struct err re;
	err_clear(&re);
	if (conn_read_exact(h->c, buf, 1, h->deadline, &re) < 0)
		return hs_read_failed(h, &re, what, false);
	return len > 1 ? hs_read(h, buf + 1, len - 1, what) : 0;
}

/* Resolve the mail server here (socks4, socks5): one address, IPv4 when
 * there is one, because every proxy can reach IPv4 and we cannot know
 * whether this one has IPv6.  family is AF_INET or AF_UNSPEC.  Returns
 * the address length (4 or 16) into addr.  Errors: ERR_NOHOST, ERR_TEMP,
 * ERR_UNAVAILABLE (socks4 and an IPv6-only host), ERR_OS. */
static int resolve(struct hs *h, int family, unsigned char addr[16])
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai, *pick = NULL;
	int r = getaddrinfo(h->host, NULL, &hints, &res);
	if (r != 0 && family == AF_INET && r != EAI_AGAIN && r != EAI_SYSTEM) {
		/* Tell "no such host" from "no IPv4 address". */
		struct addrinfo h6 = { .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM };
		struct addrinfo *r6;
		if (getaddrinfo(h->host, NULL, &h6, &r6) == 0) {
			freeaddrinfo(r6);
			return hs_fail(h, ERR_UNAVAILABLE, "cannot reach %s: the host has only IPv6 "
				       "addresses and SOCKS4 carries only IPv4 (use socks4a, socks5 "
				       "or socks5h)", h->target);
		}
	}
	if (r == EAI_AGAIN)
		return hs_fail(h, ERR_TEMP, ": cannot resolve %s here right now (temporary DNS "
			       "failure)", h->host);
	if (r == EAI_SYSTEM)
		return hs_fail(h, ERR_OS, ": resolving %s here: %s", h->host, strerror(errno));
	if (r != 0)
		return hs_fail(h, ERR_NOHOST, ": unknown host %s (%s; with %s we resolve the name, "
			       "%s lets the proxy do it)", h->host, gai_strerror(r),
			       type_name(h->px->type),
			       h->px->type == PROXY_SOCKS4 ? "socks4a" : "socks5h");
	for (ai = res; ai && !pick; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			pick = ai;
	for (ai = res; ai && !pick; ai = ai->ai_next)
		if (ai->ai_family == AF_INET6)
			pick = ai;
	int n = 0;
	if (pick && pick->ai_family == AF_INET) {
		memcpy(addr, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, 4);
		n = 4;
	} else if (pick) {
		memcpy(addr, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, 16);
		n = 16;
	}
	freeaddrinfo(res);
	if (!n)
		return hs_fail(h, ERR_NOHOST, ": %s has no address", h->host);
	return n;
}

static const char *socks4_reason(int cd)
{
	switch (cd) {
	case 91: return "request rejected or failed";
	case 92: return "the proxy could not reach our identd";
	case 93: return "our identd reported a different user id";
	}
	return NULL;
}

/* SOCKS4 and SOCKS4a: VN=4 CD=1 DSTPORT DSTIP USERID NUL [HOST NUL]. */
static int socks4(struct hs *h)
{
	unsigned char req[8 + FIELD_MAX + 1 + FIELD_MAX + 1], ip[16], rep[8];
	size_t n = 8;
	bool by_name = false;
	struct in_addr v4;

	if (inet_pton(AF_INET, h->host, &v4) == 1) {
		memcpy(ip, &v4, 4);
	} else if (h->px->type == PROXY_SOCKS4A) {
		/* 0.0.0.x (x != 0): "the name follows" */
		by_name = true;
		memcpy(ip, "\0\0\0\1", 4);
	} else if (resolve(h, AF_INET, ip) < 0) {
		return -1;
	}
	req[0] = 4;
	req[1] = 1;
	req[2] = (unsigned char)(h->port >> 8);
	req[3] = (unsigned char)h->port;
	memcpy(req + 4, ip, 4);
	if (h->px->user) {
		size_t ul = strlen(h->px->user); /* <= FIELD_MAX: proxy_parse */
		memcpy(req + n, h->px->user, ul);
		n += ul;
	}
	req[n++] = 0;
	if (by_name) {
		size_t hl = strlen(h->host);
		memcpy(req + n, h->host, hl + 1);
		n += hl + 1;
	}
	log_info("%s: SOCKS4 CONNECT %s%s", h->desc, h->target, h->px->user ? " with a user id" : "");
	int r = hs_send(h, req, n, false);
	explicit_bzero(req, sizeof req);
	if (r < 0 || hs_reply(h, rep, sizeof rep, "SOCKS4 reply") < 0)
		return -1;
	if (rep[0] != 0)
		return hs_fail(h, ERR_PROTOCOL, "sent a reply that is not SOCKS4 (version byte %d, "
			       "not 0)", rep[0]);
	if (rep[1] == 90)
		return 0;
	const char *why = socks4_reason(rep[1]);
	if (!why)
		return hs_fail(h, ERR_PROTOCOL, "sent an unknown SOCKS4 reply code %d", rep[1]);
	/* 91 covers both "not allowed" and "could not connect": retrying is
	 * the safe reading. */
	return hs_fail(h, rep[1] == 91 ? ERR_TEMP : ERR_UNAVAILABLE, "could not reach %s: %s "
		       "(SOCKS4 reply %d)", h->target, why, rep[1]);
}

/* RFC 1928 method selection and RFC 1929 user/password. */
static int socks5_auth(struct hs *h)
{
	const struct proxy *px = h->px;
	unsigned char req[3 + 2 * FIELD_MAX], rep[2];
	size_t n;

	req[0] = 5;
	req[1] = px->user ? 2 : 1;
	req[2] = 0x00;          /* no authentication */
	req[3] = 0x02;          /* user name and password */
	if (hs_send(h, req, 2 + req[1], false) < 0 ||
	    hs_reply(h, rep, sizeof rep, "SOCKS5 method selection") < 0)
		return -1;
	if (rep[0] != 5)
		return hs_fail(h, ERR_PROTOCOL, "sent a reply that is not SOCKS5 (version byte %d, "
			       "not 5)", rep[0]);
	if (rep[1] == 0xff)
		return hs_fail(h, ERR_UNAVAILABLE, "accepts none of the authentication methods we "
			       "offered (%s)", px->user ? "none and user/password" :
			       "only none: no proxy user is configured");
	if (rep[1] == 0x00)
		return 0;
	if (rep[1] != 0x02 || !px->user)
		return hs_fail(h, ERR_PROTOCOL, "chose authentication method %d, which we did not "
			       "offer", rep[1]);

	size_t ul = strlen(px->user), pl = px->password ? strlen(px->password) : 0;
	req[0] = 1;
	req[1] = (unsigned char)ul;
	memcpy(req + 2, px->user, ul);
	n = 2 + ul;
	req[n++] = (unsigned char)pl;
	if (pl)
		memcpy(req + n, px->password, pl);
	n += pl;
	log_info("%s: SOCKS5 user/password authentication as %s", h->desc, px->user);
	int r = hs_send(h, req, n, true);
	explicit_bzero(req, sizeof req);
	if (r < 0 || hs_reply(h, rep, sizeof rep, "SOCKS5 authentication reply") < 0)
		return -1;
	/* RFC 1929 says version 1; some servers echo 5.  Only the status
	 * decides. */
	if (rep[0] != 1 && rep[0] != 5)
		return hs_fail(h, ERR_PROTOCOL, "sent an authentication reply of unknown version %d",
			       rep[0]);
	if (rep[1] != 0)
		return hs_fail(h, ERR_UNAVAILABLE, "refused the proxy user name or password "
			       "(status %d)", rep[1]);
	return 0;
}

static const char *socks5_reason(int rep, enum err_class *cls)
{
	static const struct {
		const char *text;
		enum err_class cls;
	} t[] = {
		[1] = { "general failure", ERR_UNAVAILABLE },
		[2] = { "not allowed by the proxy's rules", ERR_UNAVAILABLE },
		[3] = { "network unreachable", ERR_TEMP },
		[4] = { "host unreachable", ERR_TEMP },
		[5] = { "connection refused", ERR_TEMP },
		[6] = { "TTL expired", ERR_TEMP },
		[7] = { "command not supported", ERR_UNAVAILABLE },
		[8] = { "address type not supported", ERR_UNAVAILABLE },
	};
	if (rep < 1 || rep > 8)
		return NULL;
	*cls = t[rep].cls;
	return t[rep].text;
}

/* The CONNECT request and its reply, BND.ADDR included. */
static int socks5_connect(struct hs *h)
{
	unsigned char req[4 + 1 + FIELD_MAX + 2], rep[4], bnd[1 + FIELD_MAX + 2];
	unsigned char a[16];
	size_t n = 4;
	int fam = parse_ip(h->host, a);

	req[0] = 5;
	req[1] = 1;             /* CONNECT */
	req[2] = 0;
	if (!fam && h->px->type == PROXY_SOCKS5H) {
		size_t hl = strlen(h->host);
		req[3] = 3;
		req[n++] = (unsigned char)hl;
		memcpy(req + n, h->host, hl);
		n += hl;
	} else {
		int al = fam == AF_INET ? 4 : fam == AF_INET6 ? 16 : resolve(h, AF_UNSPEC, a);
		if (al < 0)
			return -1;
		req[3] = al == 4 ? 1 : 4;
		memcpy(req + n, a, (size_t)al);
		n += (size_t)al;
	}
	req[n++] = (unsigned char)(h->port >> 8);
	req[n++] = (unsigned char)h->port;
	log_info("%s: SOCKS5 CONNECT %s%s", h->desc, h->target,
		 req[3] == 3 ? " (the proxy resolves the name)" : "");
	if (hs_send(h, req, n, false) < 0 || hs_reply(h, rep, sizeof rep, "SOCKS5 reply") < 0)
		return -1;
	if (rep[0] != 5)
		return hs_fail(h, ERR_PROTOCOL, "sent a reply that is not SOCKS5 (version byte %d, "
			       "not 5)", rep[0]);
	if (rep[1] != 0) {
		enum err_class cls;
		const char *why = socks5_reason(rep[1], &cls);
		if (!why)
			return hs_fail(h, ERR_PROTOCOL, "sent an unknown SOCKS5 reply code %d", rep[1]);
		/* "general failure" and "host unreachable" are what proxies
		 * answer for a name they cannot resolve */
		bool named = req[3] == 3 && (rep[1] == 1 || rep[1] == 4);
		return hs_fail(h, cls, "could not reach %s: %s (SOCKS5 reply %d)%s", h->target, why,
			       rep[1], named ? "; the proxy resolves the name itself" : "");
	}
	/* BND.ADDR and BND.PORT are of no use to us, but they are part of
	 * the reply: the mail server's first byte comes after them. */
	size_t bl;
	switch (rep[3]) {
	case 1: bl = 4 + 2; break;
	case 4: bl = 16 + 2; break;
	case 3:
		if (hs_read(h, bnd, 1, "SOCKS5 reply") < 0)
			return -1;
		bl = bnd[0] + 2u;
		break;
	default:
		return hs_fail(h, ERR_PROTOCOL, "sent a SOCKS5 reply with unknown address type %d",
			       rep[3]);
	}
	return hs_read(h, bnd, bl, "SOCKS5 reply");
}

static int socks5(struct hs *h)
{
	if (socks5_auth(h) < 0)
		return -1;
	return socks5_connect(h);
}

/* Append one request line to sb and trace it; secret_from as log_client. */
static void http_line(struct strbuf *sb, size_t secret_from, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void http_line(struct strbuf *sb, size_t secret_from, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t l = n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	log_client(line, l, secret_from);
	sb_add(sb, line, l);
	sb_add(sb, "\r\n", 2);
	explicit_bzero(line, sizeof line);
}

/* The CONNECT request, with Basic credentials when a user is set. */
static int http_request(struct hs *h)
{
	struct strbuf sb = STRBUF_INIT;
	static const char auth[] = "Proxy-Authorization: Basic ";

	http_line(&sb, (size_t)-1, "CONNECT %s HTTP/1.1", h->target);
	http_line(&sb, (size_t)-1, "Host: %s", h->target);
	if (h->px->user) {
		const char *pw = h->px->password ? h->px->password : "";
		size_t ul = strlen(h->px->user), pl = strlen(pw);
		if (ul + pl > 1000) {
			sb_free(&sb);
			return hs_fail(h, ERR_CONFIG, "cannot be sent a user name and password of more "
				       "than 1000 bytes");
		}
		unsigned char cred[1002];
		char b64[1400];
		memcpy(cred, h->px->user, ul);
		cred[ul] = ':';
		memcpy(cred + ul + 1, pw, pl);
		base64_encode(cred, ul + 1 + pl, b64);
		http_line(&sb, sizeof auth - 1, "%s%s", auth, b64);
		explicit_bzero(cred, sizeof cred);
		explicit_bzero(b64, sizeof b64);
	}
	sb_add(&sb, "\r\n", 2);
	int r = hs_send(h, sb.s, sb.len, h->px->user != NULL);
	explicit_bzero(sb.s, sb.len);
	sb_free(&sb);
	return r;
}

/* "HTTP/1.x NNN[ reason]": the status code, or -1. */
static int http_status(const char *s, size_t n)
{
	if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' || s[6] != '.' ||
	    s[7] < '0' || s[7] > '9' || s[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	if (s[9] < '1' || s[9] > '5' || (n > 12 && s[12] != ' '))
		return -1;
	return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}

/* Read one line of the proxy's answer into buf (without CR LF, NUL-
 * terminated).  Byte by byte from the conn's buffer, so that a line
 * without an end is refused at the cap instead of read until the
 * deadline, and nothing after the proxy's empty line is consumed.
 * Errors: those of hs_read_failed, ERR_PROTOCOL for a line over cap. */
static int http_read_line(struct hs *h, char *buf, size_t cap, size_t *len, const char *what,
			  bool started)
{
	size_t n = 0;
	struct err re;
	err_clear(&re);
	for (;;) {
		char ch;
		if (conn_read_exact(h->c, &ch, 1, h->deadline, &re) < 0)
			return hs_read_failed(h, &re, what, started || n > 0);
		if (ch == '\n')
			break;
		if (n == cap - 1)
			return hs_fail(h, ERR_PROTOCOL, "sent an overlong %s (over %zu bytes)", what,
				       cap - 1);
		buf[n++] = ch;
	}
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	log_server(buf, n);
	return 0;
}

/* What a refusal means, by status code. */
static int http_refused(struct hs *h, int code, const char *status)
{
	/* 407 is the standard answer; some proxies (tinyproxy) send 401 */
	if (code == 407 || code == 401)
		return hs_fail(h, ERR_UNAVAILABLE, "%s (%s)", h->px->user ?
			       "refused the proxy user name or password" :
			       "requires proxy credentials: give a user in the proxy URL", status);
	if (code == 403)
		return hs_fail(h, ERR_UNAVAILABLE, "does not allow a tunnel to %s (%s)", h->target,
			       status);
	if (code >= 500)
		return hs_fail(h, ERR_TEMP, "could not reach %s (%s)", h->target, status);
	return hs_fail(h, ERR_UNAVAILABLE, "refused the tunnel to %s (%s)", h->target, status);
}

/* HTTP CONNECT (RFC 9110 section 9.3.6). */
static int http_connect(struct hs *h)
{
	char line[HTTP_MAX_LINE], status[200];
	size_t len, total = 0;

	if (http_request(h) < 0 ||
	    http_read_line(h, line, sizeof line, &len, "HTTP status line", false) < 0)
		return -1;
	sanitize(status, sizeof status, line, len > 150 ? 150 : len);
	int code = http_status(line, len);
	if (code < 0)
		return hs_fail(h, ERR_PROTOCOL, "did not answer in HTTP: \"%s\"", status);
	if (code < 200 || code > 299)
		return http_refused(h, code, status);
	/* A 2xx to CONNECT has no body (Content-Length and Transfer-Encoding
	 * do not apply): everything after the empty line is the tunnel. */
	for (int i = 0;; i++) {
		if (i > HTTP_MAX_HEADERS)
			return hs_fail(h, ERR_PROTOCOL, "sent more than %d header lines",
				       HTTP_MAX_HEADERS);
		if (http_read_line(h, line, sizeof line, &len, "HTTP header", true) < 0)
			return -1;
		if (len == 0)
			return 0;
		total += len;
		if (total > HTTP_MAX_HEADER_BYTES)
			return hs_fail(h, ERR_PROTOCOL, "sent more than %d bytes of header",
				       HTTP_MAX_HEADER_BYTES);
	}
}

/* Letters, digits, '-', '.', '_', and ':' (IPv6): what may go into a
 * request line or a SOCKS name field without changing its meaning. */
static bool target_ok(const char *host)
{
	size_t n = strlen(host);
	if (n == 0 || n > FIELD_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == ':'))
			return false;
	}
	return true;
}

int proxy_handshake(struct conn *c, const struct proxy *px, const char *host, int port,
		    int64_t deadline_ms, struct err *e)
{
	struct hs h = { .c = c, .px = px, .host = host, .port = port, .e = e };
	bool v6 = strchr(host, ':') != NULL;

	h.deadline = deadline_ms;
	if (c->abs_deadline_ms && (!h.deadline || c->abs_deadline_ms < h.deadline))
		h.deadline = c->abs_deadline_ms;
	proxy_describe(px, h.desc, sizeof h.desc);
	snprintf(h.target, sizeof h.target, "%s%.255s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
		 port);
	if (!target_ok(host))
		return hs_fail(&h, ERR_CONFIG, ": the mail server \"%.100s\" is not a host name or "
			       "address that can be sent to a proxy", host);

	int r;
	switch (px->type) {
	case PROXY_SOCKS4:
	case PROXY_SOCKS4A:
		r = socks4(&h);
		break;
	case PROXY_SOCKS5:
	case PROXY_SOCKS5H:
		r = socks5(&h);
		break;
	case PROXY_HTTP:
		r = http_connect(&h);
		break;
	default:
		r = hs_fail(&h, ERR_INTERNAL, "has an unknown type");
	}
	if (r == 0)
		log_info("%s: tunnel to %s open", h.desc, h.target);
	return r;
}

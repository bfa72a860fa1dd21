/* conn_proxy.h - reaching the mail server through a proxy: SOCKS4,
 * SOCKS4a, SOCKS5 (RFC 1928, user/password RFC 1929) and HTTP CONNECT
 * (with Basic authentication).
 *
 * conn_tcp.c connects to the proxy, then proxy_handshake() asks it for
 * a tunnel to the mail server over the same connection; everything after
 * (the greeting, STARTTLS, implicit TLS) runs through the tunnel. */
#ifndef SMTPSEND_CONN_PROXY_H
#define SMTPSEND_CONN_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include "conn.h"
#include "err.h"

enum proxy_type {
	PROXY_SOCKS4,   /* the client resolves the name, IPv4 only */
	PROXY_SOCKS4A,  /* the proxy resolves the name */
	PROXY_SOCKS5,   /* the client resolves the name */
	PROXY_SOCKS5H,  /* the proxy resolves the name (the reference's "*host") */
	PROXY_HTTP,     /* HTTP CONNECT tunnel */
};

struct proxy {
	enum proxy_type type;
	char *host;             /* brackets of an IPv6 literal removed */
	int port;               /* from the URL, else 1080 (SOCKS) or 8080 (HTTP) */
	char *user;             /* percent-decoded, or NULL */
	char *password;         /* percent-decoded, or NULL; wiped by proxy_free */
};

/* Parse "scheme://[user[:password]@]host[:port][/]": the scheme in any
 * case, user and password %-decoded, an IPv6 host in brackets, an IDN
 * host converted to its A-label.  password, when not NULL and the URL has
 * none, is used (the rc's proxy_password).  On success px owns its
 * strings (proxy_free); on failure it holds none.
 * Errors: ERR_CONFIG, naming what is wrong with the URL; the message
 * shows no part of the URL but the scheme (the rest may hold a password). */
int proxy_parse(const char *url, const char *password, struct proxy *px, struct err *e);
/* Free px's strings, the password (and user) wiped first. */
void proxy_free(struct proxy *px);

/* The proxy to use for host: setting (the Firewall property) when not
 * empty, with password; else the first non-empty of SMTP_PROXY,
 * smtp_proxy, ALL_PROXY, all_proxy from the environment, without
 * password (the rc's secret never goes to a proxy it did not name).
 * None when host matches exceptions (ProxyExceptionsList, ';' or ','
 * separated, case-insensitive: a name, "*.example.com" or ".example.com"
 * for subdomains, an address, "*") or, for an environment proxy only,
 * NO_PROXY / no_proxy (curl's form: "example.com" covers subdomains too,
 * CIDR ranges).  The URL is checked even when host is excepted.  Returns
 * 1 with px filled, 0 for a direct connection.  Errors: as proxy_parse,
 * the message naming the variable for an environment proxy. */
int proxy_choose(const char *setting, const char *password, const char *exceptions,
		 const char *host, struct proxy *px, struct err *e);

/* Ask the proxy, connected on c, for a tunnel to host:port (host already
 * an A-label or an address, without brackets), within deadline_ms (and
 * c's AbsoluteTimeout).  Reads exactly the proxy's answer: bytes the
 * mail server sends after it stay buffered in c for the SMTP session.
 * Errors (code 118, the message names the proxy, the target and what the
 * proxy said):
 * ERR_TEMP for a proxy or server that cannot be reached right now (also
 * a proxy that times out or closes without answering),
 * ERR_UNAVAILABLE for refused proxy credentials or a forbidden target,
 * and for an IPv6-only target through SOCKS4,
 * ERR_NOHOST when we cannot resolve host (SOCKS4, SOCKS5); a proxy that
 * cannot resolve it says so only as "host unreachable" or a 5xx (ERR_TEMP),
 * ERR_PROTOCOL for a malformed, truncated or oversized proxy reply,
 * ERR_CONFIG for a host that cannot be put in a request,
 * ERR_OS for a failed system call. */
int proxy_handshake(struct conn *c, const struct proxy *px, const char *host, int port,
		    int64_t deadline_ms, struct err *e);

/* "socks5 proxy host:port" ("[v6]:port"), never the credentials, for
 * messages and the trace.  Returns buf. */
const char *proxy_describe(const struct proxy *px, char *buf, size_t bufsz);

#endif

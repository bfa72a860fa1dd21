/* conn_tls.h - the TLS transport (GnuTLS), stacked on an established TCP
 * connection for STARTTLS or implicit TLS.
 *
 * The handshake verifies the server before a single byte of application
 * data is sent: chain to a trusted root, validity dates, key purpose and
 * the host name, or an exact certificate pin.  A failure names the precise
 * reason and the certificate, so the user can tell an expired certificate
 * from a man in the middle. */
#ifndef SMTPSEND_CONN_TLS_H
#define SMTPSEND_CONN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include "conn.h"
#include "err.h"

struct tls_opts {
	const char *host;           /* server name: SNI (unless an address) and the name check */
	const char *verify_host;    /* name to check and send as SNI instead, or NULL */
	const char *ca_file;        /* PEM CA bundle or directory; NULL/"" = system trust store */
	const char *fingerprint;    /* pin: "SHA256:AA:BB:..." or 64 hex digits; NULL = none */
	const char *cert_file;      /* client certificate (PEM), or NULL */
	const char *key_file;       /* its key (PEM; NULL = in cert_file); must be mode 0600 */
	const char *p12_file;       /* or a PKCS#12 file with both */
	const char *p12_password;
	const char *priority;       /* raw GnuTLS priority string, or NULL for "NORMAL" */
	const char *protocols;      /* "TLS1.2,TLS1.3", "tls1.2+" or a bit mask; NULL = TLS 1.2+ */
	const char *keylog_file;    /* NSS key log file, or NULL */
	bool no_verify;             /* inspect only: report the verdict, never fail on it */
	bool no_resume;             /* neither offer nor keep session data */
};

struct tls_cert_info {
	char subject[512], issuer[512];
	char sans[1024];            /* "DNS:a, IP:1.2.3.4, email:x@y" */
	char not_before[64], not_after[64];  /* "2025-01-31 12:00:00 UTC" */
	char sha256[100];           /* "AA:BB:..." */
	char key_alg[64], sig_alg[64];
};

struct tls_info {
	char version[32];           /* "TLS1.3" */
	char cipher[128];           /* "TLS_AES_256_GCM_SHA384" */
	bool verified;              /* chain and name verified, or the pin matched */
	char verdict[512];          /* "verified", or why not */
	struct tls_cert_info chain[8];  /* as sent by the server, end entity first */
	size_t nchain;
	bool resumed;
};

/* Start TLS on the established connection c (its TCP transport): the
 * handshake is bounded by c->timeout_s, the server is verified, and on
 * success c->ops/c->ctx become the TLS transport (same deadline semantics;
 * end of stream without close_notify reads as a normal end).  c's read and
 * write buffers must be empty: bytes that arrived before the handshake
 * would be an injection.  Session data of the last verified connection to
 * the same host:port (same client certificate and protocol settings) is
 * offered for resumption unless o->no_resume; a resumed session is
 * verified all the same.  With o->no_verify the handshake succeeds
 * whatever the verdict: info->verified tells.  Fills info if non-NULL,
 * also on a verification failure.
 * Errors: ERR_UNAVAILABLE 280/275 verification failed (e->msg names the
 * reason, subject, issuer and SHA-256 fingerprint); ERR_UNAVAILABLE 276
 * handshake failed; ERR_TEMP timeout or connection lost during the
 * handshake; ERR_CONFIG 270 bad priority/protocols, 271 unreadable CA
 * file or trust store, 272 bad fingerprint syntax, 281 unusable client
 * certificate, 273 unusable or group/world-readable key or PKCS#12 file;
 * ERR_PROTOCOL 276 unread bytes before the handshake.  On failure c keeps
 * its TCP transport; the caller closes it. */
int conn_tls_start(struct conn *c, const struct tls_opts *o, struct tls_info *info,
		   struct err *e);

/* Check the options without connecting: host name, pin syntax, CA file
 * or trust store, client certificate and key (with the mode check) and the
 * priority/protocol settings, so that a bad configuration fails before
 * anything is sent.  Errors: as conn_tls_start's ERR_CONFIG/ERR_NOHOST. */
int conn_tls_check_opts(const struct tls_opts *o, struct err *e);

/* The GnuTLS session of a TLS connection (a gnutls_session_t), for
 * channel binding; NULL when c is not TLS. */
void *conn_tls_session(const struct conn *c);

/* Forget the cached session data (ReuseSSLSession off, or the end of a
 * run).  Never fails. */
void conn_tls_forget_sessions(void);

#endif

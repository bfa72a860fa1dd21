/* sasl.h - the client side of SMTP AUTH (RFC 4954), without I/O.
 *
 * The session state machine chooses a mechanism with sasl_choose(), starts
 * it with sasl_start() and feeds every 334 challenge to sasl_step().  All
 * SASL data crosses this API as base64 text exactly as it appears in the
 * SMTP line: challenges as received after "334 ", responses ready to send
 * (an initial response of zero bytes is "=", RFC 4954 section 4; a later
 * empty response is "", sent as an empty line).  Decoding, size limits and
 * validation of server data happen here, so a hostile challenge is
 * refused before any mechanism parses it.
 *
 * libgsasl provides PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1,
 * SCRAM-SHA-256 (and -PLUS), NTLM, GSSAPI, GS2-KRB5 and EXTERNAL, each
 * offered only when gsasl_client_support_p() says this build has it.
 * XOAUTH2 and OAUTHBEARER (RFC 7628) are built in; both accept the token
 * either as the initial response or after an empty 334 challenge (the
 * two-step form some servers use), see sasl_step(). */
#ifndef SMTPSEND_SASL_H
#define SMTPSEND_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

/* Same type as <gnutls/gnutls.h> declares; repeated so that users of
 * this header need not include GnuTLS. */
typedef struct gnutls_session_int *gnutls_session_t;

struct sasl;

struct sasl_creds {
	const char *user;           /* authentication identity */
	const char *password;       /* secret, or the OAuth access token for XOAUTH2/OAUTHBEARER */
	const char *authzid;        /* authorization identity, or NULL */
	const char *host;           /* server host name (DIGEST-MD5, GSSAPI, OAUTHBEARER) */
	int port;                   /* OAUTHBEARER port, 0 = not sent */
	const char *service;        /* "smtp"; NULL means "smtp" */
	/* Channel binding for SCRAM-*-PLUS, from sasl_tls_channel_binding(),
	 * or NULL: the bytes and the type name ("tls-exporter" or "tls-unique"). */
	const unsigned char *cb_data;
	size_t cb_len;
	const char *cb_type;
};

/* Choose the mechanism.  `wanted` is "auto" (or NULL) or a mechanism name,
 * case-insensitive; `offered` is the server's AUTH capability (space
 * separated); `tls` says whether the connection is encrypted; `have_cb`
 * whether channel binding data is available.  *mech receives the canonical
 * (upper-case) name, a static string.
 *
 * auto takes the first offered and supported of SCRAM-SHA-256-PLUS,
 * SCRAM-SHA-1-PLUS (both only with channel binding), SCRAM-SHA-256,
 * SCRAM-SHA-1, PLAIN, LOGIN (both only over TLS), CRAM-MD5, DIGEST-MD5,
 * NTLM (only over TLS: its response is cheap to crack offline).  XOAUTH2,
 * OAUTHBEARER, GSSAPI, GS2-KRB5 and EXTERNAL need credentials of another
 * kind and are used only when asked for by name.
 *
 * Errors: ERR_CONFIG for an unknown name, for a mechanism that sends the
 * password or token in clear (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER) asked
 * for without TLS, and for -PLUS without TLS; ERR_UNAVAILABLE when the
 * named mechanism is not offered (the message lists what is), when this
 * libgsasl lacks it, when -PLUS has no channel binding, or when auto
 * finds nothing usable (saying why). */
int sasl_choose(const char *wanted, const char *offered, bool tls, bool have_cb,
		const char **mech, struct err *e);

/* Start a client for mech (a name from sasl_choose()).  The credentials
 * are copied; c may go away afterwards.  *initial receives the initial
 * response in base64 ("=" when empty), owned by the caller (a secret:
 * wipe it), or NULL when the mechanism waits for the server's first
 * challenge (LOGIN, CRAM-MD5, DIGEST-MD5).  Channel binding data is given
 * to -PLUS mechanisms only: a plain SCRAM client says "n" (no binding).
 * Errors: ERR_CONFIG for a missing user, password/token or host the
 * mechanism needs, or one SASLprep refuses; ERR_CONFIG for GSSAPI without
 * usable Kerberos credentials; ERR_UNAVAILABLE for an unsupported
 * mechanism; ERR_INTERNAL for other libgsasl failures.  On error *out is
 * NULL. */
int sasl_start(const char *mech, const struct sasl_creds *c, struct sasl **out,
	       char **initial, struct err *e);

/* Feed one 334 challenge: the base64 text as received, possibly empty
 * (surrounding blanks are ignored).  *response receives the base64 line
 * to send, "" for an empty one; owned by the caller, a secret.
 *
 * XOAUTH2/OAUTHBEARER: an empty first challenge asks for the token (the
 * two-step form, or a server that ignored the initial response): the
 * token message is sent then.  Any other challenge is the server's JSON
 * error; it is decoded and kept for sasl_error_detail(), and the response
 * is the one RFC 7628 prescribes so that the server sends its final 5xx:
 * "" for XOAUTH2, "AQ==" (%x01) for OAUTHBEARER.  SCRAM: a server-final
 * message "e=..." is kept as detail too.
 *
 * Errors: ERR_PROTOCOL for a challenge that is not base64, decodes to more
 * than 64 KiB, is malformed for the mechanism, or comes after the
 * exchange is complete (the caller cancels with "*"); ERR_AUTH when the
 * server fails to prove it knows the password (SCRAM server signature,
 * DIGEST-MD5 rspauth) or sends a SCRAM error; ERR_INTERNAL otherwise.
 * On error *response is NULL. */
int sasl_step(struct sasl *s, const char *challenge, char **response, struct err *e);

/* True once the mechanism has completed on the client side: for SCRAM
 * and DIGEST-MD5 that means the server has proved it knows the password.
 * A 235 before that skipped the server's proof: treat it as a failure
 * (ERR_AUTH), since a man in the middle could have sent it. */
bool sasl_finished(const struct sasl *s);

/* What the server said about a failure, decoded and sanitised (e.g.
 * "status 401, schemes bearer, scope https://mail.google.com/"), or NULL.
 * Owned by s. */
const char *sasl_error_detail(const struct sasl *s);

/* Wipe the secrets s holds (also libgsasl's copies) and free it.  NULL is
 * fine. */
void sasl_free(struct sasl *s);

/* Channel binding data of an established TLS session, for -PLUS:
 * "tls-exporter" (RFC 9266, 32 bytes) under TLS 1.3, "tls-unique" (RFC
 * 5929) under TLS 1.2 and below, but only with the extended master secret
 * (RFC 7627), without which tls-unique can be forged by a man in the
 * middle (triple handshake).  *data is allocated (free() it), *type is a
 * static string.  Errors: ERR_UNAVAILABLE when the session has no safe
 * binding (then simply do without -PLUS); ERR_INTERNAL on GnuTLS
 * failures. */
int sasl_tls_channel_binding(gnutls_session_t s, unsigned char **data, size_t *len,
			     const char **type, struct err *e);

#endif

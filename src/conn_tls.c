/* conn_tls.c - the TLS transport: a GnuTLS session over the connected,
 * non-blocking TCP socket, verified before any application data flows. */
#include "conn_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <idn2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

enum {
	TLS_NO_LIBRARY = 270,
	TLS_NO_STORE = 271,
	TLS_NO_CERT = 272,
	TLS_NO_CREDENTIALS = 273,
	TLS_CHAIN = 275,
	TLS_NO_CLIENT_CERT = 281,
	TLS_ENCRYPT = 283,
	TLS_DECRYPT = 284,
	CLOSED_BY_PEER = 1120,
};

#define MAX_FILE_SIZE (4 << 20)
#define BYE_TIMEOUT_MS 5000

struct tls_ctx {
	gnutls_session_t s;
	gnutls_certificate_credentials_t cred;
	int fd;
	int last_errno;         /* of the last failed recv/send */
	int keylog_fd;
	char *cache_key;        /* NULL: do not keep the session for resumption */
	bool offered;           /* cached session data was offered */

	/* What the server must prove, and what it did. */
	char name[256];         /* A-label host name or IP literal */
	unsigned char ip[16];
	size_t iplen;           /* 4 or 16 when name is an address */
	bool pinned;
	unsigned char pin[32];
	bool no_verify;
	bool checked;
	bool verified;
	int vcode;              /* 280 or 275 when verification failed */
	gnutls_alert_description_t alert;
	char verdict[512];
	char vmsg[1024];
	char log_line[900];
};

/* ---- session cache (ReuseSSLSession) ---- */

static struct {
	char *key;
	gnutls_datum_t data;
} cache;

void conn_tls_forget_sessions(void)
{
	if (cache.data.data) {
		/* resumption secrets */
		explicit_bzero(cache.data.data, cache.data.size);
		gnutls_free(cache.data.data);
	}
	free(cache.key);
	cache.key = NULL;
	cache.data.data = NULL;
	cache.data.size = 0;
}

static void cache_offer(struct tls_ctx *t)
{
	if (!t->cache_key || !cache.key || strcmp(cache.key, t->cache_key) != 0)
		return;
	if (gnutls_session_set_data(t->s, cache.data.data, cache.data.size) < 0)
		conn_tls_forget_sessions();
	else
		t->offered = true;
}

static void cache_store(struct tls_ctx *t)
{
	gnutls_datum_t d = { NULL, 0 };
	if (!t->cache_key || !t->verified)
		return;
	if (gnutls_session_get_data2(t->s, &d) < 0)
		return;
	/* Under TLS 1.3 a session without a ticket yields a 4-byte
	 * placeholder that cannot resume.  A ticket that was offered is
	 * spent either way (tickets are not to be reused, RFC 8446 C.4). */
	if (d.size <= 4) {
		gnutls_free(d.data);
		if (t->offered)
			conn_tls_forget_sessions();
		return;
	}
	conn_tls_forget_sessions();
	cache.key = xstrdup(t->cache_key);
	cache.data = d;
}

/* ---- small helpers ---- */

static void hex_colons(const unsigned char *p, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && o + 4 <= outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, i ? ":%02X" : "%02X", p[i]);
}

/* "SHA256:AA:BB:..", "sha-256:aabb..", or bare hex, colons optional. */
static int parse_pin(const char *s, unsigned char out[32], struct err *e)
{
	const char *p = s;
	size_t nd = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (ascii_ncasecmp(p, "SHA256:", 7) == 0)
		p += 7;
	else if (ascii_ncasecmp(p, "SHA-256:", 8) == 0)
		p += 8;
	for (; *p && *p != ' ' && *p != '\t'; p++) {
		if (*p == ':' && nd && nd % 2 == 0 && hex_digit(p[1]) >= 0)
			continue;
		int v = hex_digit((unsigned char)*p);
		if (v < 0 || nd >= 64)
			goto bad;
		out[nd / 2] = (unsigned char)(nd % 2 ? out[nd / 2] | v : v << 4);
		nd++;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (nd == 64 && !*p)
		return 0;
bad:
	err_set(e, ERR_CONFIG, TLS_NO_CERT,
		"bad certificate fingerprint \"%.100s\": expected SHA256: and 32 hex bytes%s", s,
		nd == 40 ? " (a SHA-1 fingerprint is not accepted)" : "");
	return -1;
}

static void fmt_time(time_t t, char *buf, size_t bufsz)
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
	    !strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, bufsz, "?");
}

static void dn_text(gnutls_x509_crt_t crt, bool issuer, char *buf, size_t bufsz)
{
	gnutls_datum_t d = { NULL, 0 };
	int r = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) : gnutls_x509_crt_get_dn3(crt, &d, 0);
	if (r < 0 || !d.data)
		snprintf(buf, bufsz, "(none)");
	else
		snprintf(buf, bufsz, "%.*s", (int)d.size, (const char *)d.data);
	gnutls_free(d.data);
}

/* The names a certificate is for: its DNS and IP SANs (with "DNS:" and
 * "IP:" prefixes when typed, which also adds e-mail and URI names), or its
 * CN when it has no DNS or IP SAN, as the name check does. */
static void cert_names(gnutls_x509_crt_t crt, bool typed, char *buf, size_t bufsz)
{
	size_t o = 0;
	unsigned shown = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < 256; i++) {
		char san[512], ipt[INET6_ADDRSTRLEN];
		size_t sz = sizeof san - 1;
		const char *kind = NULL, *val = san;
		int r = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &sz, NULL);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (r < 0)
			continue;
		switch (r) {
		case GNUTLS_SAN_DNSNAME:
			kind = "DNS";
			san[sz] = '\0';
			break;
		case GNUTLS_SAN_IPADDRESS:
			kind = "IP";
			if (!inet_ntop(sz == 4 ? AF_INET : AF_INET6, san, ipt, sizeof ipt) ||
			    (sz != 4 && sz != 16))
				continue;
			val = ipt;
			break;
		case GNUTLS_SAN_RFC822NAME:
			kind = "email";
			san[sz] = '\0';
			break;
		case GNUTLS_SAN_URI:
			kind = "URI";
			san[sz] = '\0';
			break;
		default:
			continue;
		}
		if (!typed && strcmp(kind, "DNS") != 0 && strcmp(kind, "IP") != 0)
			continue;
		if (o + 1 < bufsz) {
			int n;
			if (typed)
				n = snprintf(buf + o, bufsz - o, "%s%s:%s", shown ? ", " : "", kind, val);
			else
				n = snprintf(buf + o, bufsz - o, "%s%s", shown ? " or " : "", val);
			o += n > 0 ? (size_t)n : 0;
			if (o >= bufsz)
				o = bufsz - 1;
		}
		shown++;
	}
	if (!shown && !typed) {
		size_t sz = bufsz;
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &sz) < 0)
			snprintf(buf, bufsz, "no name at all");
	}
}

static void cert_info(const gnutls_datum_t *der, struct tls_cert_info *ci)
{
	gnutls_x509_crt_t crt;
	unsigned char md[32];

	memset(ci, 0, sizeof *ci);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, md) == 0)
		hex_colons(md, sizeof md, ci->sha256, sizeof ci->sha256);
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		snprintf(ci->subject, sizeof ci->subject, "(unparsable certificate)");
		gnutls_x509_crt_deinit(crt);
		return;
	}
	dn_text(crt, false, ci->subject, sizeof ci->subject);
	dn_text(crt, true, ci->issuer, sizeof ci->issuer);
	cert_names(crt, true, ci->sans, sizeof ci->sans);
	fmt_time(gnutls_x509_crt_get_activation_time(crt), ci->not_before, sizeof ci->not_before);
	fmt_time(gnutls_x509_crt_get_expiration_time(crt), ci->not_after, sizeof ci->not_after);
	unsigned bits = 0;
	int pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
	const char *pkn = pk >= 0 ? gnutls_pk_get_name((gnutls_pk_algorithm_t)pk) : NULL;
	snprintf(ci->key_alg, sizeof ci->key_alg, "%s %u-bit", pkn ? pkn : "unknown", bits);
	int sig = gnutls_x509_crt_get_signature_algorithm(crt);
	const char *sn = sig >= 0 ? gnutls_sign_get_name((gnutls_sign_algorithm_t)sig) : NULL;
	snprintf(ci->sig_alg, sizeof ci->sig_alg, "%s", sn ? sn : "unknown");
	gnutls_x509_crt_deinit(crt);
}

/* Append one reason to a "; "-separated list. */
static void add_reason(char *buf, size_t bufsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_reason(char *buf, size_t bufsz, const char *fmt, ...)
{
	size_t o = strlen(buf);
	va_list ap;
	if (o && o + 2 < bufsz) {
		memcpy(buf + o, "; ", 3);
		o += 2;
	}
	if (o + 1 >= bufsz)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, bufsz - o, fmt, ap);
	va_end(ap);
}

/* ---- verification ---- */

/* Decide whether the peer's certificate is acceptable, recording the
 * verdict in t.  Returns 0 when the handshake may go on. */
static int verify_peer(struct tls_ctx *t)
{
	unsigned n = 0, status = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
	gnutls_x509_crt_t ee = NULL;
	char why[600] = "", subj[512], iss[512], fp[100], names[512];
	unsigned char md[32];
	bool chain_bad = false;
	time_t now = time(NULL);

	t->checked = true;
	t->verified = false;
	t->alert = GNUTLS_A_BAD_CERTIFICATE;
	if (!certs || n == 0 || gnutls_x509_crt_init(&ee) < 0) {
		snprintf(t->verdict, sizeof t->verdict, "the server sent no certificate");
		snprintf(t->vmsg, sizeof t->vmsg, "%.100s sent no certificate", t->name);
		t->vcode = SEED_TLS_VERIFY;
		return t->no_verify ? 0 : -1;
	}
	if (gnutls_x509_crt_import(ee, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(ee);
		ee = NULL;
	}
	gnutls_hash_fast(GNUTLS_DIG_SHA256, certs[0].data, certs[0].size, md);
	hex_colons(md, sizeof md, fp, sizeof fp);
	if (ee) {
		dn_text(ee, false, subj, sizeof subj);
		dn_text(ee, true, iss, sizeof iss);
	} else {
		snprintf(subj, sizeof subj, "(unparsable certificate)");
		snprintf(iss, sizeof iss, "(unknown)");
	}

	/* Chain, dates and key purpose; the name is checked below so that the
	 * message can say which names the certificate does carry. */
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER,
	};
	int r = gnutls_certificate_verify_peers(t->s, &purpose, 1, &status);
	if (r < 0) {
		add_reason(why, sizeof why, "cannot be verified: %s", gnutls_strerror(r));
		chain_bad = true;
	}
	if (status & GNUTLS_CERT_EXPIRED) {
		char when[64];
		time_t exp = ee ? gnutls_x509_crt_get_expiration_time(ee) : (time_t)-1;
		fmt_time(exp, when, sizeof when);
		if (exp != (time_t)-1 && exp < now) {
			add_reason(why, sizeof why, "expired on %s", when);
		} else {
			add_reason(why, sizeof why, "a certificate of its chain expired");
			chain_bad = true;
		}
		t->alert = GNUTLS_A_CERTIFICATE_EXPIRED;
	}
	if (status & GNUTLS_CERT_NOT_ACTIVATED) {
		char when[64];
		time_t act = ee ? gnutls_x509_crt_get_activation_time(ee) : (time_t)-1;
		fmt_time(act, when, sizeof when);
		if (act != (time_t)-1 && act > now) {
			add_reason(why, sizeof why, "not yet valid (valid from %s)", when);
		} else {
			add_reason(why, sizeof why, "a certificate of its chain is not yet valid");
			chain_bad = true;
		}
		t->alert = GNUTLS_A_CERTIFICATE_EXPIRED;
	}
	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
		if (ee && n == 1 && gnutls_x509_crt_check_issuer(ee, ee))
			add_reason(why, sizeof why, "self-signed certificate");
		else
			add_reason(why, sizeof why, "unknown issuer");
		chain_bad = true;
		t->alert = GNUTLS_A_UNKNOWN_CA;
	}
	if (status & GNUTLS_CERT_SIGNER_NOT_CA) {
		add_reason(why, sizeof why, "issuer is not a CA");
		chain_bad = true;
	}
	if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
		add_reason(why, sizeof why, "bad signature");
		chain_bad = true;
	}
	if (status & GNUTLS_CERT_REVOKED) {
		add_reason(why, sizeof why, "revoked");
		t->alert = GNUTLS_A_CERTIFICATE_REVOKED;
	}
	if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
		add_reason(why, sizeof why, "insecure algorithm or weak key in the chain");
		chain_bad = true;
	}
	if (status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE) {
		add_reason(why, sizeof why, "issuer constraints violated");
		chain_bad = true;
	}
	if (status & GNUTLS_CERT_PURPOSE_MISMATCH) {
		add_reason(why, sizeof why,
			   "not valid for TLS server authentication (wrong key purpose)");
		t->alert = GNUTLS_A_UNSUPPORTED_CERTIFICATE;
	}
	if (status & GNUTLS_CERT_UNKNOWN_CRIT_EXTENSIONS)
		add_reason(why, sizeof why, "unknown critical extension");
	if (status & GNUTLS_CERT_MISSING_OCSP_STATUS)
		add_reason(why, sizeof why, "OCSP status required but missing");
	if (status & GNUTLS_CERT_INVALID_OCSP_STATUS)
		add_reason(why, sizeof why, "invalid OCSP status");
	if (status & (GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
		      GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE))
		add_reason(why, sizeof why, "invalid revocation data");
	if (status && !why[0]) {
		gnutls_datum_t d = { NULL, 0 };
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &d, 0) == 0)
			add_reason(why, sizeof why, "%.*s", (int)d.size, (const char *)d.data);
		else
			add_reason(why, sizeof why, "invalid (status 0x%x)", status);
		gnutls_free(d.data);
	}

	bool name_ok = false;
	if (ee)
		name_ok = t->iplen ? gnutls_x509_crt_check_ip(ee, t->ip, (unsigned)t->iplen, 0)
				   : gnutls_x509_crt_check_hostname2(ee, t->name, 0);
	if (!name_ok) {
		if (ee)
			cert_names(ee, false, names, sizeof names);
		else
			snprintf(names, sizeof names, "an unknown name");
		add_reason(why, sizeof why, "certificate is for %s, not %s", names, t->name);
	}
	if (ee)
		gnutls_x509_crt_deinit(ee);

	t->vcode = chain_bad ? TLS_CHAIN : SEED_TLS_VERIFY;
	if (t->pinned) {
		if (memcmp(md, t->pin, sizeof md) == 0) {
			t->verified = true;
			if (why[0])
				snprintf(t->verdict, sizeof t->verdict,
					 "pinned fingerprint matched (otherwise: %.400s)", why);
			else
				snprintf(t->verdict, sizeof t->verdict, "verified");
			snprintf(t->log_line, sizeof t->log_line,
				 "certificate accepted by its pinned fingerprint: subject %.200s, issuer %.200s",
				 subj, iss);
			return 0;
		}
		char want[100];
		hex_colons(t->pin, sizeof t->pin, want, sizeof want);
		snprintf(t->verdict, sizeof t->verdict, "fingerprint does not match the pin");
		snprintf(t->vmsg, sizeof t->vmsg,
			 "certificate of %.100s has fingerprint SHA256:%s, not the pinned SHA256:%s; subject %.160s; issuer %.160s",
			 t->name, fp, want, subj, iss);
		snprintf(t->log_line, sizeof t->log_line,
			 "certificate NOT accepted: fingerprint SHA256:%s is not the pinned one", fp);
		t->vcode = SEED_TLS_VERIFY;
		t->alert = GNUTLS_A_BAD_CERTIFICATE;
		return t->no_verify ? 0 : -1;
	}
	if (!why[0]) {
		t->verified = true;
		snprintf(t->verdict, sizeof t->verdict, "verified");
		snprintf(t->log_line, sizeof t->log_line,
			 "certificate verified: subject %.200s, issuer %.200s, SHA256:%s", subj, iss, fp);
		return 0;
	}
	snprintf(t->verdict, sizeof t->verdict, "%.500s", why);
	snprintf(t->vmsg, sizeof t->vmsg,
		 "certificate of %.100s not trusted: %.300s; subject %.160s; issuer %.160s; fingerprint SHA256:%s",
		 t->name, why, subj, iss, fp);
	snprintf(t->log_line, sizeof t->log_line,
		 "certificate NOT verified (%.300s): subject %.160s, issuer %.160s, SHA256:%s", why,
		 subj, iss, fp);
	return t->no_verify ? 0 : -1;
}

static int verify_cb(gnutls_session_t s)
{
	return verify_peer(gnutls_session_get_ptr(s));
}

/* ---- transport callbacks: the socket is non-blocking ---- */

static ssize_t pull_fn(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_ctx *t = p;
	ssize_t n;
	do
		n = recv(t->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		t->last_errno = errno;
		gnutls_transport_set_errno(t->s, errno);
	}
	return n;
}

static ssize_t vec_push_fn(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct tls_ctx *t = p;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;
	do
		n = sendmsg(t->fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		t->last_errno = errno;
		gnutls_transport_set_errno(t->s, errno);
	}
	return n;
}

static int pull_timeout_fn(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct tls_ctx *t = p;
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	int r;
	do
		r = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static int keylog_none(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
	(void)s, (void)label, (void)secret;
	return 0;
}

static int keylog_fn(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
	struct tls_ctx *t = gnutls_session_get_ptr(s);
	gnutls_datum_t crand = { NULL, 0 }, srand = { NULL, 0 };
	char line[400];
	size_t o;

	if (t->keylog_fd < 0)
		return 0;
	gnutls_session_get_random(s, &crand, &srand);
	if (strlen(label) > 64 || crand.size > 64 || secret->size > 96)
		return 0;
	o = (size_t)snprintf(line, sizeof line, "%s ", label);
	for (unsigned i = 0; i < crand.size && o + 3 < sizeof line; i++)
		o += (size_t)snprintf(line + o, sizeof line - o, "%02x", crand.data[i]);
	line[o++] = ' ';
	for (unsigned i = 0; i < secret->size && o + 3 < sizeof line; i++)
		o += (size_t)snprintf(line + o, sizeof line - o, "%02x", secret->data[i]);
	line[o++] = '\n';
	/* one write on an O_APPEND descriptor: lines of parallel runs do not
	 * interleave */
	if (write_all(t->keylog_fd, line, o) < 0) {
		close(t->keylog_fd);
		t->keylog_fd = -1;
	}
	explicit_bzero(line, sizeof line);
	return 0;
}

/* Wait until the session can make progress in the direction GnuTLS last
 * blocked on.  Errors: ERR_TEMP timeout, ERR_OS. */
static int wait_session(struct conn *c, struct tls_ctx *t, int64_t deadline_ms, struct err *e)
{
	short ev = gnutls_record_get_direction(t->s) ? POLLOUT : POLLIN;
	return conn_wait_fd(c, t->fd, ev, deadline_ms, e);
}

/* ---- the transport ---- */

static ssize_t tls_read(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *e)
{
	struct tls_ctx *t = c->ctx;
	for (;;) {
		ssize_t n = gnutls_record_recv(t->s, buf, len);
		if (n >= 0)
			return n;
		switch (n) {
		case GNUTLS_E_AGAIN:
			if (wait_session(c, t, deadline_ms, e) < 0)
				return -1;
			continue;
		case GNUTLS_E_INTERRUPTED:
		case GNUTLS_E_WARNING_ALERT_RECEIVED:
		case GNUTLS_E_REHANDSHAKE:
			/* a client may ignore a renegotiation request */
			continue;
		case GNUTLS_E_PREMATURE_TERMINATION:
			/* SMTP frames its own data, so a close without
			 * close_notify cannot truncate anything unnoticed, and
			 * servers often just drop the connection after QUIT. */
			return 0;
		case GNUTLS_E_PULL_ERROR:
			err_set(e, ERR_TEMP, err_code_from_errno(t->last_errno), "reading from %s: %s",
				c->peer, strerror(t->last_errno));
			return -1;
		case GNUTLS_E_FATAL_ALERT_RECEIVED:
			err_set(e, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE, "%s ended the TLS session: %s",
				c->peer, gnutls_alert_get_name(gnutls_alert_get(t->s)));
			return -1;
		default:
			err_set(e, ERR_TEMP, TLS_DECRYPT, "error decrypting data from %s: %s", c->peer,
				gnutls_strerror((int)n));
			return -1;
		}
	}
}

static ssize_t tls_write(struct conn *c, const void *buf, size_t len, int64_t deadline_ms,
			 struct err *e)
{
	struct tls_ctx *t = c->ctx;
	for (;;) {
		/* after GNUTLS_E_AGAIN the same call must be repeated */
		ssize_t n = gnutls_record_send(t->s, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_AGAIN) {
			if (wait_session(c, t, deadline_ms, e) < 0)
				return -1;
			continue;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_PUSH_ERROR)
			err_set(e, ERR_TEMP, err_code_from_errno(t->last_errno), "writing to %s: %s",
				c->peer, strerror(t->last_errno));
		else
			err_set(e, ERR_TEMP, TLS_ENCRYPT, "error encrypting data to %s: %s", c->peer,
				gnutls_strerror((int)n));
		return -1;
	}
}

static size_t tls_pending(struct conn *c)
{
	struct tls_ctx *t = c->ctx;
	return gnutls_record_check_pending(t->s);
}

static void tls_free(struct tls_ctx *t)
{
	if (t->s)
		gnutls_deinit(t->s);
	if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	if (t->keylog_fd >= 0)
		close(t->keylog_fd);
	free(t->cache_key);
	free(t);
}

static void tls_close(struct conn *c)
{
	struct tls_ctx *t = c->ctx;
	if (t) {
		cache_store(t);
		/* close_notify, bounded: a peer that stopped reading must not
		 * hold us */
		int64_t deadline = conn_now_ms() + BYE_TIMEOUT_MS;
		if (c->timeout_s > 0 && c->timeout_s * 1000 < BYE_TIMEOUT_MS)
			deadline = conn_now_ms() + c->timeout_s * 1000;
		struct err ignored;
		for (;;) {
			int r = gnutls_bye(t->s, GNUTLS_SHUT_WR);
			if (r == GNUTLS_E_AGAIN && wait_session(c, t, deadline, &ignored) == 0)
				continue;
			if (r == GNUTLS_E_INTERRUPTED)
				continue;
			break;
		}
		tls_free(t);
	}
	c->ctx = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static const struct conn_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.pending = tls_pending,
	.close = tls_close,
};

/* ---- setup ---- */

/* Read a whole file.  For a private key (secret), refuse a file that
 * group or others may access.  Errors: ERR_CONFIG with `code`. */
static int load_file(const char *path, const char *what, bool secret, int code,
		     gnutls_datum_t *out, struct err *e)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err_set(e, ERR_CONFIG, code, "cannot read %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
		err_set(e, ERR_CONFIG, code, "%s %s is not a regular file of reasonable size", what,
			path);
		close(fd);
		return -1;
	}
	if (secret && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		err_set(e, ERR_CONFIG, TLS_NO_CREDENTIALS,
			"%s %s is accessible by group or others (mode %04o): chmod 600 %s", what, path,
			(unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	size_t cap = (size_t)st.st_size + 1, len = 0;
	unsigned char *buf = xmalloc(cap);
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, ERR_CONFIG, code, "cannot read %s %s: %s", what, path, strerror(errno));
			explicit_bzero(buf, cap);
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			/* the file grew since fstat: take what fits */
			break;
		}
	}
	close(fd);
	out->data = buf;
	out->size = (unsigned)len;
	return 0;
}

static void free_file(gnutls_datum_t *d)
{
	if (d->data) {
		explicit_bzero(d->data, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

static int load_trust(struct tls_ctx *t, const struct tls_opts *o, struct err *e)
{
	struct stat st;
	int r;
	if (!o->ca_file || !*o->ca_file) {
		r = gnutls_certificate_set_x509_system_trust(t->cred);
		/* A pin or an inspection does not need the store. */
		if (r <= 0 && !t->pinned && !o->no_verify) {
			err_set(e, ERR_CONFIG, TLS_NO_STORE, "cannot open the system certificate store: %s",
				r < 0 ? gnutls_strerror(r) : "it holds no certificates");
			return -1;
		}
		return 0;
	}
	if (stat(o->ca_file, &st) == 0 && S_ISDIR(st.st_mode)) {
		r = gnutls_certificate_set_x509_trust_dir(t->cred, o->ca_file, GNUTLS_X509_FMT_PEM);
	} else {
		gnutls_datum_t d = { NULL, 0 };
		if (load_file(o->ca_file, "CA file", false, TLS_NO_STORE, &d, e) < 0)
			return -1;
		r = gnutls_certificate_set_x509_trust_mem(t->cred, &d, GNUTLS_X509_FMT_PEM);
		free_file(&d);
	}
	if (r <= 0) {
		err_set(e, ERR_CONFIG, TLS_NO_STORE, "no usable CA certificate in %s%s%s", o->ca_file,
			r < 0 ? ": " : "", r < 0 ? gnutls_strerror(r) : "");
		return -1;
	}
	return 0;
}

static int load_client_cert(struct tls_ctx *t, const struct tls_opts *o, struct err *e)
{
	gnutls_datum_t cert = { NULL, 0 }, key = { NULL, 0 };
	int r;

	if (o->p12_file && *o->p12_file) {
		if (load_file(o->p12_file, "PKCS#12 file", true, TLS_NO_CREDENTIALS, &key, e) < 0)
			return -1;
		bool pem = key.size > 10 && memcmp(key.data, "-----BEGIN", 10) == 0;
		r = gnutls_certificate_set_x509_simple_pkcs12_mem(t->cred, &key,
			pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER, o->p12_password);
		free_file(&key);
		if (r < 0) {
			bool pw = r == GNUTLS_E_MAC_VERIFY_FAILED || r == GNUTLS_E_DECRYPTION_FAILED;
			err_set(e, ERR_CONFIG, TLS_NO_CREDENTIALS, "cannot use PKCS#12 file %s: %s",
				o->p12_file, pw ? "wrong password" : gnutls_strerror(r));
			return -1;
		}
		return 0;
	}
	if (!o->cert_file || !*o->cert_file) {
		if (o->key_file && *o->key_file) {
			err_set(e, ERR_CONFIG, TLS_NO_CLIENT_CERT,
				"a client key %s is set but no client certificate", o->key_file);
			return -1;
		}
		return 0;
	}
	bool key_in_cert = !o->key_file || !*o->key_file;
	const char *keyname = key_in_cert ? o->cert_file : o->key_file;
	if (load_file(o->cert_file, "client certificate", key_in_cert,
		      key_in_cert ? TLS_NO_CREDENTIALS : TLS_NO_CLIENT_CERT, &cert, e) < 0)
		return -1;
	if (key_in_cert) {
		key = cert;
	} else if (load_file(o->key_file, "client key file", true, TLS_NO_CREDENTIALS, &key, e) < 0) {
		free_file(&cert);
		return -1;
	}
	r = gnutls_certificate_set_x509_key_mem2(t->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (!key_in_cert)
		free_file(&key);
	free_file(&cert);
	if (r < 0) {
		if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH || r == GNUTLS_E_DECRYPTION_FAILED ||
		    r == GNUTLS_E_PK_INVALID_PRIVKEY)
			err_set(e, ERR_CONFIG, TLS_NO_CREDENTIALS, "cannot use client key %s: %s",
				keyname, gnutls_strerror(r));
		else
			err_set(e, ERR_CONFIG, TLS_NO_CLIENT_CERT,
				"cannot use client certificate %s with key %s: %s", o->cert_file,
				keyname, gnutls_strerror(r));
		return -1;
	}
	return 0;
}

/* Versions as bits: 1 = TLS 1.0, 2 = 1.1, 4 = 1.2, 8 = 1.3.  Accepts
 * names ("TLS1.2", "TLSv1.3", "tls1.2+" for "and newer") separated by
 * commas or blanks, or the reference's numeric mask (0xC00 = TLS 1.2 ...).
 * Errors: ERR_CONFIG. */
static int parse_protocols(const char *s, unsigned *mask, struct err *e)
{
	char *end;
	*mask = 0;
	errno = 0;
	unsigned long num = strtoul(s, &end, 0);
	if (end != s && !*end && !errno) {
		if (num & 0xC0)
			*mask |= 1;
		if (num & 0x300)
			*mask |= 2;
		if (num & 0xC00)
			*mask |= 4;
		if (num & 0x3000)
			*mask |= 8;
	} else {
		const char *p = s;
		while (*p) {
			size_t n = strcspn(p, ", ;\t");
			char tok[32];
			if (n == 0) {
				p++;
				continue;
			}
			if (n >= sizeof tok)
				goto bad;
			memcpy(tok, p, n);
			tok[n] = '\0';
			p += n;
			bool plus = tok[n - 1] == '+';
			if (plus)
				tok[n - 1] = '\0';
			const char *v = tok;
			if (ascii_ncasecmp(v, "TLSv", 4) == 0)
				v += 4;
			else if (ascii_ncasecmp(v, "TLS", 3) == 0)
				v += 3;
			else if (ascii_ncasecmp(v, "SSL", 3) == 0) {
				err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "protocol %s is not supported", tok);
				return -1;
			} else
				goto bad;
			int bit;
			if (!strcmp(v, "1") || !strcmp(v, "1.0") || !strcmp(v, "10"))
				bit = 0;
			else if (!strcmp(v, "1.1") || !strcmp(v, "11"))
				bit = 1;
			else if (!strcmp(v, "1.2") || !strcmp(v, "12"))
				bit = 2;
			else if (!strcmp(v, "1.3") || !strcmp(v, "13"))
				bit = 3;
			else
				goto bad;
			*mask |= plus ? (0xfu << bit) & 0xfu : 1u << bit;
		}
	}
	if (*mask)
		return 0;
bad:
	err_set(e, ERR_CONFIG, TLS_NO_LIBRARY,
		"bad TLS protocol list \"%.100s\": expected e.g. TLS1.2,TLS1.3 or TLS1.2+", s);
	return -1;
}

static int set_priority(struct tls_ctx *t, const struct tls_opts *o, struct err *e)
{
	struct strbuf sb = STRBUF_INIT;
	const char *errpos = NULL;
	unsigned mask = 0x4 | 0x8;
	static const char *const vers[] = { "TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3" };

	if (o->protocols && *o->protocols && parse_protocols(o->protocols, &mask, e) < 0)
		return -1;
	sb_adds(&sb, o->priority && *o->priority ? o->priority : "NORMAL");
	/* A raw priority string alone decides the versions itself. */
	if (!(o->priority && *o->priority) || (o->protocols && *o->protocols)) {
		sb_adds(&sb, ":-VERS-ALL");
		for (int i = 3; i >= 0; i--)
			if (mask & (1u << i))
				sb_addf(&sb, ":+VERS-%s", vers[i]);
	}
	int r = gnutls_priority_set_direct(t->s, sb.s, &errpos);
	if (r < 0) {
		if (r == GNUTLS_E_INVALID_REQUEST && errpos)
			err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "bad TLS priority string \"%.200s\" at \"%.60s\"",
				sb.s, errpos);
		else
			err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "bad TLS priority string \"%.200s\": %s",
				sb.s, gnutls_strerror(r));
		sb_free(&sb);
		return -1;
	}
	sb_free(&sb);
	return 0;
}

/* The name to check, as an A-label or an address.  Errors: ERR_NOHOST. */
static int set_name(struct tls_ctx *t, const struct tls_opts *o, struct err *e)
{
	const char *h = o->verify_host && *o->verify_host ? o->verify_host : o->host;
	char buf[sizeof t->name];
	size_t len = h ? strlen(h) : 0;

	if (!len || len >= sizeof buf) {
		err_set(e, ERR_CONFIG, SEED_TLS_VERIFY, "no usable host name to verify the certificate");
		return -1;
	}
	memcpy(buf, h, len + 1);
	if (len > 2 && buf[0] == '[' && buf[len - 1] == ']') {
		memmove(buf, buf + 1, len - 2);
		buf[len -= 2] = '\0';
	}
	if (len > 1 && buf[len - 1] == '.')
		buf[--len] = '\0';
	if (inet_pton(AF_INET, buf, t->ip) == 1)
		t->iplen = 4;
	else if (inet_pton(AF_INET6, buf, t->ip) == 1)
		t->iplen = 16;
	for (const char *p = buf; !t->iplen && *p; p++) {
		if ((unsigned char)*p >= 0x80) {
			char *a = NULL;
			int r = idn2_to_ascii_8z(buf, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
			if (r != IDN2_OK || strlen(a) >= sizeof t->name) {
				err_set(e, ERR_NOHOST, SEED_HOST_NOT_FOUND, "host name %s is not a valid IDN: %s",
					buf, r != IDN2_OK ? idn2_strerror(r) : "too long");
				free(a);
				return -1;
			}
			snprintf(buf, sizeof buf, "%s", a);
			free(a);
			break;
		}
	}
	snprintf(t->name, sizeof t->name, "%s", buf);
	return 0;
}

static char *make_cache_key(const struct conn *c, const struct tls_opts *o, const char *name)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int port = -1;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
		return NULL;
	if (ss.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	/* The client identity is part of the key: a session must not carry
	 * one account's certificate over to another.  So are the version
	 * settings: a GnuTLS 3.7 server that picks TLS 1.3 breaks the
	 * handshake when offered a TLS 1.2 session. */
	return xasprintf("%s:%d|%s|%s|%s|%s", name, port, o->cert_file ? o->cert_file : "",
			 o->p12_file ? o->p12_file : "", o->priority ? o->priority : "",
			 o->protocols ? o->protocols : "");
}

static void fill_info(struct tls_ctx *t, struct tls_info *info)
{
	unsigned n = 0;
	const gnutls_datum_t *certs;
	const char *v;

	memset(info, 0, sizeof *info);
	v = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
	snprintf(info->version, sizeof info->version, "%s", v ? v : "");
#if GNUTLS_VERSION_NUMBER >= 0x030703
	v = gnutls_ciphersuite_get(t->s);
#else
	v = gnutls_cipher_suite_get_name(gnutls_kx_get(t->s), gnutls_cipher_get(t->s),
					 gnutls_mac_get(t->s));
#endif
	snprintf(info->cipher, sizeof info->cipher, "%s", v ? v : "");
	info->verified = t->verified;
	snprintf(info->verdict, sizeof info->verdict, "%s", t->verdict);
	info->resumed = gnutls_session_is_resumed(t->s) != 0;
	/* Before the server's certificate arrived, the peers are those of
	 * the offered session, not of this server. */
	if (!t->checked)
		return;
	certs = gnutls_certificate_get_peers(t->s, &n);
	for (unsigned i = 0; certs && i < n && i < sizeof info->chain / sizeof info->chain[0]; i++)
		cert_info(&certs[i], &info->chain[info->nchain++]);
}

static void handshake_error(struct conn *c, struct tls_ctx *t, int r, struct err *e)
{
	switch (r) {
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		if (t->checked && !t->verified) {
			err_set(e, ERR_UNAVAILABLE, t->vcode, "%s", t->vmsg);
			return;
		}
		break;
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		err_set(e, ERR_TEMP, err_code_from_errno(t->last_errno),
			"TLS handshake with %s: connection lost: %s", c->peer, strerror(t->last_errno));
		return;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
		err_set(e, ERR_TEMP, CLOSED_BY_PEER, "%s closed the connection during the TLS handshake",
			c->peer);
		return;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		err_set(e, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE,
			"TLS handshake with %s failed: the server sent the alert \"%s\"", c->peer,
			gnutls_alert_get_name(gnutls_alert_get(t->s)));
		return;
	}
	err_set(e, ERR_UNAVAILABLE, SEED_TLS_HANDSHAKE, "TLS handshake with %s failed: %s", c->peer,
		gnutls_strerror(r));
}

/* Everything that depends on the options only: names, pin, credentials,
 * priorities.  Errors: ERR_CONFIG, ERR_NOHOST. */
static int prepare(struct tls_ctx *t, const struct tls_opts *o, struct err *e)
{
	int r;

	t->no_verify = o->no_verify;
	if (set_name(t, o, e) < 0)
		return -1;
	if (o->fingerprint && *o->fingerprint) {
		if (parse_pin(o->fingerprint, t->pin, e) < 0)
			return -1;
		t->pinned = true;
	}
	r = gnutls_certificate_allocate_credentials(&t->cred);
	if (r < 0) {
		t->cred = NULL;
		err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "cannot set up TLS: %s", gnutls_strerror(r));
		return -1;
	}
	if (load_trust(t, o, e) < 0 || load_client_cert(t, o, e) < 0)
		return -1;

	unsigned flags = GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL;
	if (o->no_resume)
		flags |= GNUTLS_NO_TICKETS;
	r = gnutls_init(&t->s, flags);
	if (r < 0) {
		t->s = NULL;
		err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "cannot set up TLS: %s", gnutls_strerror(r));
		return -1;
	}
	if (set_priority(t, o, e) < 0)
		return -1;
	r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (r < 0) {
		err_set(e, ERR_CONFIG, TLS_NO_LIBRARY, "cannot set up TLS: %s", gnutls_strerror(r));
		return -1;
	}
	return 0;
}

int conn_tls_check_opts(const struct tls_opts *o, struct err *e)
{
	struct tls_ctx *t = xcalloc(1, sizeof *t);
	t->fd = -1;
	t->keylog_fd = -1;
	int r = prepare(t, o, e);
	tls_free(t);
	return r;
}

int conn_tls_start(struct conn *c, const struct tls_opts *o, struct tls_info *info,
		   struct err *e)
{
	struct tls_ctx *t;
	int r;

	if (info)
		memset(info, 0, sizeof *info);
	if (c->rend != c->rstart) {
		err_set(e, ERR_PROTOCOL, SEED_TLS_HANDSHAKE,
			"%s sent data before the TLS handshake (an injection attempt?)", c->peer);
		return -1;
	}
	if (c->wlen) {
		err_set(e, ERR_INTERNAL, SEED_TLS_HANDSHAKE, "unsent plain text before the TLS handshake");
		return -1;
	}

	t = xcalloc(1, sizeof *t);
	t->fd = c->fd;
	t->keylog_fd = -1;
	if (prepare(t, o, e) < 0)
		goto fail;
	if (!t->iplen)
		gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, t->name, strlen(t->name));
	gnutls_session_set_ptr(t->s, t);
	gnutls_session_set_verify_function(t->s, verify_cb);
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull_fn);
	gnutls_transport_set_vec_push_function(t->s, vec_push_fn);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout_fn);
	gnutls_handshake_set_timeout(t->s, GNUTLS_INDEFINITE_TIMEOUT);

	/* GnuTLS would honour SSLKEYLOGFILE from the environment on its own;
	 * secrets are written only where the caller asked. */
	gnutls_session_set_keylog_function(t->s, keylog_none);
	if (o->keylog_file && *o->keylog_file) {
		t->keylog_fd = open(o->keylog_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY,
				    0600);
		if (t->keylog_fd < 0)
			log_warn("cannot open the TLS key log file %s: %s", o->keylog_file,
				 strerror(errno));
		else
			gnutls_session_set_keylog_function(t->s, keylog_fn);
	}

	if (!o->no_resume) {
		t->cache_key = make_cache_key(c, o, t->name);
		cache_offer(t);
	}

	log_info("TLS handshake with %s", c->peer);
	int64_t deadline = conn_deadline(c);
	unsigned soft = 0;
	for (;;) {
		r = gnutls_handshake(t->s);
		if (r == 0)
			break;
		if (r == GNUTLS_E_AGAIN) {
			if (wait_session(c, t, deadline, e) < 0) {
				/* AbsoluteTimeout keeps its own message */
				if (e->cls == ERR_TEMP && !conn_abs_expired(c))
					err_set(e, ERR_TEMP, SEED_TIMEOUT,
						"TLS handshake with %s timed out after %ld s", c->peer,
						c->timeout_s);
				goto fail;
			}
			continue;
		}
		/* warning alerts and interruptions: go on, but not forever */
		if (!gnutls_error_is_fatal(r) && ++soft < 100 &&
		    (!deadline || conn_now_ms() < deadline))
			continue;
		handshake_error(c, t, r, e);
		if (t->checked && !t->verified && !t->no_verify)
			gnutls_alert_send(t->s, GNUTLS_AL_FATAL, t->alert);
		goto fail_info;
	}
	/* A resumed session skips the certificate exchange, hence the
	 * callback: check the certificate that the session data carries. */
	if (!t->checked && verify_peer(t) < 0) {
		err_set(e, ERR_UNAVAILABLE, t->vcode, "%s", t->vmsg);
		gnutls_alert_send(t->s, GNUTLS_AL_FATAL, t->alert);
		goto fail_info;
	}
	if (t->keylog_fd >= 0) {
		close(t->keylog_fd);
		t->keylog_fd = -1;
	}

	struct tls_info tmp, *ti = info ? info : &tmp;
	fill_info(t, ti);
	log_info("%s / %s%s", ti->version, ti->cipher, ti->resumed ? " (session resumed)" : "");
	if (t->log_line[0])
		log_info("%s", t->log_line);
	if (gnutls_certificate_get_ours(t->s))
		log_info("client certificate sent");
	c->ops = &tls_ops;
	c->ctx = t;
	return 0;

fail_info:
	if (info)
		fill_info(t, info);
	/* whatever went wrong, do not offer that session again */
	if (t->offered)
		conn_tls_forget_sessions();
fail:
	tls_free(t);
	return -1;
}

void *conn_tls_session(const struct conn *c)
{
	if (!c->ops || c->ops != &tls_ops || !c->ctx)
		return NULL;
	return ((const struct tls_ctx *)c->ctx)->s;
}

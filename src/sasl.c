/* sasl.c - SMTP AUTH client mechanisms: libgsasl plus XOAUTH2 and
 * OAUTHBEARER, behind one base64-in, base64-out interface. */
#include "sasl.h"

#include <gnutls/gnutls.h>
#include <gsasl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if GSASL_VERSION_NUMBER < 0x020100
#error "libgsasl 2.1.0 or later is needed (tls-exporter channel binding, RFC 9266)"
#endif

/* RFC 4954 puts no bound on a challenge; this one is far above anything a
 * real mechanism sends and keeps a hostile server from making us decode
 * and parse megabytes. */
#define MAX_CHALLENGE 65536
/* No mechanism needs more round trips; a server that keeps sending 334
 * would otherwise hold us in the exchange forever. */
#define MAX_STEPS 16

enum {
	F_AUTO = 1 << 0,        /* may be chosen by "auto" */
	F_CLEAR = 1 << 1,       /* sends the secret in clear: TLS only */
	F_TLS_AUTO = 1 << 2,    /* auto only over TLS */
	F_PLUS = 1 << 3,        /* needs channel binding */
	F_SERVER_FIRST = 1 << 4, /* no initial response */
	F_USER = 1 << 5,
	F_PASS = 1 << 6,
	F_HOST = 1 << 7,
	F_TOKEN = 1 << 8,       /* the "password" is an OAuth token */
};

enum mech_impl { IMPL_GSASL, IMPL_XOAUTH2, IMPL_OAUTHBEARER };

struct mech {
	const char *name;
	unsigned flags;
	enum mech_impl impl;
};

/* In the order auto prefers them. */
static const struct mech mechs[] = {
	{ "SCRAM-SHA-256-PLUS", F_AUTO | F_PLUS | F_USER | F_PASS, IMPL_GSASL },
	{ "SCRAM-SHA-1-PLUS", F_AUTO | F_PLUS | F_USER | F_PASS, IMPL_GSASL },
	{ "SCRAM-SHA-256", F_AUTO | F_USER | F_PASS, IMPL_GSASL },
	{ "SCRAM-SHA-1", F_AUTO | F_USER | F_PASS, IMPL_GSASL },
	{ "PLAIN", F_AUTO | F_CLEAR | F_USER | F_PASS, IMPL_GSASL },
	{ "LOGIN", F_AUTO | F_CLEAR | F_SERVER_FIRST | F_USER | F_PASS, IMPL_GSASL },
	{ "CRAM-MD5", F_AUTO | F_SERVER_FIRST | F_USER | F_PASS, IMPL_GSASL },
	{ "DIGEST-MD5", F_AUTO | F_SERVER_FIRST | F_USER | F_PASS | F_HOST, IMPL_GSASL },
	{ "NTLM", F_AUTO | F_TLS_AUTO | F_USER | F_PASS, IMPL_GSASL },
	{ "XOAUTH2", F_CLEAR | F_USER | F_PASS | F_TOKEN, IMPL_XOAUTH2 },
	{ "OAUTHBEARER", F_CLEAR | F_PASS | F_TOKEN, IMPL_OAUTHBEARER },
	{ "GSSAPI", F_HOST, IMPL_GSASL },
	{ "GS2-KRB5", F_HOST, IMPL_GSASL },
	{ "EXTERNAL", 0, IMPL_GSASL },
};
#define NMECHS (sizeof mechs / sizeof mechs[0])

enum cb_kind { CB_NONE, CB_EXPORTER, CB_UNIQUE };

struct sasl {
	const struct mech *m;
	Gsasl *ctx;
	Gsasl_session *gs;
	char *user, *password, *authzid, *host, *service;
	int port;
	char *cb64;             /* channel binding, base64, for -PLUS only */
	enum cb_kind cb;
	int steps;              /* challenges received */
	bool finished;          /* the mechanism has nothing more to check */
	char *detail;
};

static const struct mech *find_mech(const char *name)
{
	for (size_t i = 0; i < NMECHS; i++)
		if (ascii_casecmp(mechs[i].name, name) == 0)
			return &mechs[i];
	return NULL;
}

/* ---- base64 (RFC 4648, no line breaks, padding required) ---- */

static char *b64_encode(const void *data, size_t len)
{
	char *out = xmalloc(BASE64_SIZE(len));
	base64_encode(data, len, out);
	return out;
}

/* Decode strictly; *out is NUL-terminated for the mechanisms that want a
 * string.  Returns 0, -1 for invalid base64, -2 for too large (checked
 * before anything is allocated). */
static int b64_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	size_t pad = 0;
	if (len % 4)
		return -1;
	if (len && s[len - 1] == '=')
		pad = (len >= 2 && s[len - 2] == '=') ? 2 : 1;
	size_t n = len / 4 * 3 - pad;
	if (n > MAX_CHALLENGE)
		return -2;
	unsigned char *p = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		unsigned v = 0;
		size_t quad_pad = i + 4 == len ? pad : 0;
		for (size_t j = 0; j < 4; j++) {
			int d = j < 4 - quad_pad ? base64_digit((unsigned char)s[i + j]) : 0;
			if (d < 0) {
				free(p);
				return -1;
			}
			v = v << 6 | (unsigned)d;
		}
		p[o++] = (unsigned char)(v >> 16);
		if (quad_pad < 2)
			p[o++] = (unsigned char)(v >> 8);
		if (quad_pad < 1)
			p[o++] = (unsigned char)v;
	}
	p[o] = '\0';
	*out = p;
	*outlen = o;
	return 0;
}

/* ---- small helpers ---- */

static void wipe_str(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static bool offered_has(const char *offered, const char *name)
{
	size_t n = strlen(name);
	const char *p = offered ? offered : "";
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, " \t");
		if (len == n && ascii_ncasecmp(p, name, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static bool client_supports(Gsasl *ctx, const struct mech *m)
{
	if (m->impl != IMPL_GSASL)
		return true;
	return ctx && gsasl_client_support_p(ctx, m->name);
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* ---- choosing ---- */

int sasl_choose(const char *wanted, const char *offered, bool tls, bool have_cb,
		const char **mech, struct err *e)
{
	Gsasl *ctx = NULL;
	const char *shown = offered && *offered ? offered : "none";
	int rv = -1;

	*mech = NULL;
	if (gsasl_init(&ctx) != GSASL_OK)
		ctx = NULL;     /* then only the built-in mechanisms remain */

	if (wanted && *wanted && ascii_casecmp(wanted, "auto") != 0) {
		const struct mech *m = find_mech(wanted);
		if (!m) {
			struct strbuf known = STRBUF_INIT;
			for (size_t i = 0; i < NMECHS; i++)
				sb_addf(&known, "%s%s", i ? " " : "", mechs[i].name);
			err_set(e, ERR_CONFIG, 0, "unknown authentication mechanism %.100s (known: %s)",
				wanted, known.s);
			sb_free(&known);
		} else if ((m->flags & F_CLEAR) && !tls) {
			err_set(e, ERR_CONFIG, 0, "%s would send the %s in clear: use TLS", m->name,
				(m->flags & F_TOKEN) ? "access token" : "password");
		} else if ((m->flags & F_PLUS) && !tls) {
			err_set(e, ERR_CONFIG, 0, "%s binds to the TLS channel: use TLS", m->name);
		} else if (!client_supports(ctx, m)) {
			err_set(e, ERR_UNAVAILABLE, 0, "this libgsasl has no %s client", m->name);
		} else if (!offered_has(offered, m->name)) {
			err_set(e, ERR_UNAVAILABLE, 0,
				"the server does not offer %s (it offers: %.300s)", m->name, shown);
		} else if ((m->flags & F_PLUS) && !have_cb) {
			err_set(e, ERR_UNAVAILABLE, 0,
				"%s needs channel binding, which this TLS session does not provide "
				"(TLS 1.2 without extended master secret?)", m->name);
		} else {
			*mech = m->name;
			rv = 0;
		}
		goto out;
	}

	bool skipped_clear = false, skipped_named = false;
	for (size_t i = 0; i < NMECHS; i++) {
		const struct mech *m = &mechs[i];
		if (!offered_has(offered, m->name) || !client_supports(ctx, m))
			continue;
		if (!(m->flags & F_AUTO)) {
			skipped_named = true;
			continue;
		}
		if ((m->flags & (F_CLEAR | F_TLS_AUTO)) && !tls) {
			skipped_clear = true;
			continue;
		}
		if ((m->flags & F_PLUS) && !(tls && have_cb))
			continue;
		*mech = m->name;
		rv = 0;
		goto out;
	}
	if (skipped_clear)
		err_set(e, ERR_UNAVAILABLE, 0,
			"no authentication mechanism is safe without TLS: the server offers %.300s, "
			"which would expose the password; use TLS (--tls=starttls)", shown);
	else if (skipped_named)
		err_set(e, ERR_UNAVAILABLE, 0,
			"the server offers only %.300s: name the mechanism to use (--auth), "
			"as it needs a token, a ticket or a certificate rather than a password", shown);
	else
		err_set(e, ERR_UNAVAILABLE, 0,
			"no supported authentication mechanism among those the server offers (%.300s)",
			shown);
out:
	if (ctx)
		gsasl_done(ctx);
	return rv;
}

/* ---- libgsasl glue ---- */

static int gs_callback(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
	struct sasl *s = gsasl_callback_hook_get(ctx);
	const char *v = NULL;

	switch (prop) {
	case GSASL_AUTHID:
		v = s->user;
		break;
	case GSASL_AUTHZID:
		v = s->authzid;
		break;
	case GSASL_PASSWORD:
		v = s->password;
		break;
	case GSASL_SERVICE:
		v = s->service;
		break;
	case GSASL_HOSTNAME:
		v = s->host;
		break;
	case GSASL_QOP:
		/* no security layer: TLS protects the connection, and
		 * nothing here would wrap the SMTP stream */
		v = "qop-auth";
		break;
	case GSASL_CB_TLS_EXPORTER:
		v = s->cb == CB_EXPORTER ? s->cb64 : NULL;
		break;
	case GSASL_CB_TLS_UNIQUE:
		v = s->cb == CB_UNIQUE ? s->cb64 : NULL;
		break;
	default:
		break;
	}
	if (!v)
		return GSASL_NO_CALLBACK;
	return gsasl_property_set(gs, prop, v);
}

static bool gssapi_error(int rc)
{
	return (rc >= GSASL_GSSAPI_RELEASE_BUFFER_ERROR &&
		rc <= GSASL_GSSAPI_UNSUPPORTED_PROTECTION_ERROR) ||
	       (rc >= GSASL_GSSAPI_ENCAPSULATE_TOKEN_ERROR &&
		rc <= GSASL_GSSAPI_TEST_OID_SET_MEMBER_ERROR);
}

/* Classify a libgsasl failure; `starting` is true before anything was
 * received from the server, when a failure can only be ours. */
static void gs_error(const struct sasl *s, int rc, bool starting, struct err *e)
{
	const char *name = s->m->name;
	const char *why = gsasl_strerror(rc);

	if (gssapi_error(rc)) {
		if (starting)
			err_set(e, ERR_CONFIG, 0, "%s: %s (is there a Kerberos ticket? see klist)",
				name, why);
		else
			err_set(e, ERR_AUTH, 0, "%s: %s", name, why);
		return;
	}
	switch (rc) {
	case GSASL_MECHANISM_PARSE_ERROR:
	case GSASL_BASE64_ERROR:
	case GSASL_INTEGRITY_ERROR:
		err_set(e, ERR_PROTOCOL, 0, "malformed %s challenge from the server (%s)", name, why);
		break;
	case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
		err_set(e, ERR_PROTOCOL, 0, "the server sent a %s challenge after the exchange "
			"was complete", name);
		break;
	case GSASL_AUTHENTICATION_ERROR:
		if (starting)
			err_set(e, ERR_CONFIG, 0, "%s cannot start: %s", name, why);
		else
			err_set(e, ERR_AUTH, 0, "%s: the server failed to prove that it knows the "
				"password: refusing to go on (a man in the middle?)", name);
		break;
	case GSASL_SASLPREP_ERROR:
		err_set(e, ERR_CONFIG, 0, "%s: the user name or password is not valid "
			"(SASLprep refused it)", name);
		break;
	case GSASL_UNKNOWN_MECHANISM:
	case GSASL_NO_CLIENT_CODE:
		err_set(e, ERR_UNAVAILABLE, 0, "this libgsasl has no %s client", name);
		break;
	default:
		if (rc >= GSASL_NO_CALLBACK && rc <= GSASL_NO_CB_TLS_EXPORTER)
			err_set(e, ERR_CONFIG, 0, "%s: %s", name, why);
		else
			err_set(e, ERR_INTERNAL, 0, "libgsasl, %s: %s", name, why);
	}
}

/* Run one libgsasl step and encode its output; `initial` turns an empty
 * output into "=" as RFC 4954 wants for an initial response. */
static int gs_step(struct sasl *s, const unsigned char *in, size_t inlen, bool initial,
		   char **response, struct err *e)
{
	char *out = NULL;
	size_t outlen = 0;
	int rc = gsasl_step(s->gs, (const char *)in, inlen, &out, &outlen);

	if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
		if (out) {
			explicit_bzero(out, outlen);
			gsasl_free(out);
		}
		gs_error(s, rc, initial, e);
		return -1;
	}
	if (rc == GSASL_OK)
		s->finished = true;
	*response = outlen ? b64_encode(out, outlen) : xstrdup(initial ? "=" : "");
	if (out) {
		explicit_bzero(out, outlen);
		gsasl_free(out);
	}
	return 0;
}

/* libgsasl frees its property copies without wiping them. */
static void gs_wipe_property(Gsasl_session *gs, Gsasl_property prop)
{
	char *v = (char *)gsasl_property_fast(gs, prop);
	if (v)
		explicit_bzero(v, strlen(v));
}

/* ---- OAuth ---- */

/* RFC 7628 section 3.1: a=saslname with "," and "=" escaped (RFC 5801). */
static void add_saslname(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			sb_adds(sb, "=2C");
		else if (*s == '=')
			sb_adds(sb, "=3D");
		else
			sb_addc(sb, *s);
	}
}

static char *oauth_message(const struct sasl *s)
{
	struct strbuf sb = STRBUF_INIT;
	char *b64;

	if (s->m->impl == IMPL_XOAUTH2) {
		sb_addf(&sb, "user=%s\001auth=Bearer %s\001\001", s->user, s->password);
	} else {
		const char *a = s->authzid && *s->authzid ? s->authzid : s->user;
		sb_adds(&sb, "n,");
		if (a && *a) {
			sb_adds(&sb, "a=");
			add_saslname(&sb, a);
		}
		sb_addc(&sb, ',');
		if (s->host && *s->host)
			sb_addf(&sb, "\001host=%s", s->host);
		if (s->port > 0)
			sb_addf(&sb, "\001port=%d", s->port);
		sb_addf(&sb, "\001auth=Bearer %s\001\001", s->password);
	}
	b64 = b64_encode(sb.s, sb.len);
	explicit_bzero(sb.s, sb.len);
	sb_free(&sb);
	return b64;
}

/* A JSON string at *p (just after the opening quote) into sb; false on a
 * malformed one.  Non-ASCII escapes become "?": this only feeds a message. */
static bool json_string(const unsigned char **pp, const unsigned char *end, struct strbuf *sb)
{
	const unsigned char *p = *pp;
	while (p < end && *p != '"') {
		if (*p != '\\') {
			sb_addc(sb, (char)*p++);
			continue;
		}
		if (++p >= end)
			return false;
		switch (*p) {
		case '"': case '\\': case '/':
			sb_addc(sb, (char)*p);
			break;
		case 'b': case 'f': case 'n': case 'r': case 't':
			sb_addc(sb, ' ');
			break;
		case 'u': {
			unsigned v = 0;
			for (int i = 1; i <= 4; i++) {
				int c = p + i < end ? p[i] : 0;
				int d = (c >= '0' && c <= '9') ? c - '0' :
					(c >= 'a' && c <= 'f') ? c - 'a' + 10 :
					(c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
				if (d < 0)
					return false;
				v = v << 4 | (unsigned)d;
			}
			sb_addc(sb, v >= 0x20 && v < 0x7f ? (char)v : '?');
			p += 4;
			break;
		}
		default:
			return false;
		}
		p++;
	}
	if (p >= end)
		return false;
	*pp = p + 1;
	return true;
}

static const unsigned char *json_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* A flat JSON object such as {"status":"401","schemes":"bearer",...} as
 * "status 401, schemes bearer, ..."; NULL when it is anything else. */
static char *json_flat(const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	struct strbuf sb = STRBUF_INIT;
	bool first = true;

	p = json_ws(p, end);
	if (p >= end || *p++ != '{')
		goto bad;
	for (;;) {
		p = json_ws(p, end);
		if (p < end && *p == '}' && first)
			break;
		if (p >= end || *p++ != '"')
			goto bad;
		if (!first)
			sb_adds(&sb, ", ");
		if (!json_string(&p, end, &sb))
			goto bad;
		p = json_ws(p, end);
		if (p >= end || *p++ != ':')
			goto bad;
		p = json_ws(p, end);
		sb_addc(&sb, ' ');
		if (p < end && *p == '"') {
			p++;
			if (!json_string(&p, end, &sb))
				goto bad;
		} else {
			/* a number, true, false or null */
			const unsigned char *v = p;
			while (p < end && ((*p && strchr("+-.", *p)) || (*p >= '0' && *p <= '9') ||
					   (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
				p++;
			if (p == v)
				goto bad;
			sb_add(&sb, v, (size_t)(p - v));
		}
		first = false;
		p = json_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}')
			break;
		goto bad;
	}
	p = json_ws(p + 1, end);
	if (p != end)
		goto bad;
	return sb.s ? sb.s : xstrdup("");
bad:
	sb_free(&sb);
	return NULL;
}

/* Keep what the server said, readable and bounded. */
static void set_detail(struct sasl *s, const unsigned char *text, size_t len)
{
	char buf[400];
	char *flat = json_flat(text, len);
	const char *src = flat ? flat : (const char *)text;
	size_t n = flat ? strlen(flat) : len;

	sanitize(buf, sizeof buf, src, n);
	free(flat);
	free(s->detail);
	s->detail = xstrdup(buf);
}

static int oauth_step(struct sasl *s, const unsigned char *in, size_t inlen, char **response)
{
	if (inlen == 0 && s->steps == 1) {
		/* The two-step form: AUTH went out without the initial
		 * response and the server asks for the token now.  Were the
		 * initial response sent and ignored, sending it again is
		 * what the server asks for all the same. */
		*response = oauth_message(s);
		return 0;
	}
	if (inlen)
		set_detail(s, in, inlen);
	/* RFC 7628 section 3.2.3: answer the error with a lone %x01 so the
	 * server ends the exchange; XOAUTH2 servers want an empty line. */
	*response = xstrdup(s->m->impl == IMPL_OAUTHBEARER ? "AQ==" : "");
	return 0;
}

/* ---- the API ---- */

static int check_creds(const struct mech *m, const struct sasl_creds *c, struct err *e)
{
	const char *secret = (m->flags & F_TOKEN) ? "an access token" : "a password";

	if ((m->flags & F_USER) && (!c->user || !*c->user)) {
		err_set(e, ERR_CONFIG, 0, "%s needs a user name: set user", m->name);
		return -1;
	}
	if ((m->flags & F_PASS) && (!c->password || !*c->password)) {
		err_set(e, ERR_CONFIG, 0, "%s needs %s: set password or password_command",
			m->name, secret);
		return -1;
	}
	if ((m->flags & F_HOST) && (!c->host || !*c->host)) {
		err_set(e, ERR_CONFIG, 0, "%s needs the server's host name", m->name);
		return -1;
	}
	if (m->impl != IMPL_GSASL) {
		/* %x01 separates the fields: a control character would
		 * let the token or name forge or break them */
		if ((c->user && has_ctl(c->user)) || has_ctl(c->password) ||
		    (c->authzid && has_ctl(c->authzid)) || (c->host && has_ctl(c->host))) {
			err_set(e, ERR_CONFIG, 0, "%s: the user name, token or host name contains "
				"a control character", m->name);
			return -1;
		}
	}
	if (m->flags & F_PLUS) {
		bool known = c->cb_type && (strcmp(c->cb_type, "tls-exporter") == 0 ||
					    strcmp(c->cb_type, "tls-unique") == 0);
		if (!c->cb_data || !c->cb_len || !known) {
			err_set(e, ERR_UNAVAILABLE, 0, "%s needs channel binding data of type "
				"tls-exporter or tls-unique", m->name);
			return -1;
		}
	}
	return 0;
}

int sasl_start(const char *mech, const struct sasl_creds *c, struct sasl **out,
	       char **initial, struct err *e)
{
	const struct mech *m = mech ? find_mech(mech) : NULL;
	struct sasl *s;
	int rc;

	*out = NULL;
	*initial = NULL;
	if (!m) {
		err_set(e, ERR_UNAVAILABLE, 0, "unknown authentication mechanism %.100s",
			mech ? mech : "(none)");
		return -1;
	}
	if (check_creds(m, c, e) < 0)
		return -1;

	s = xcalloc(1, sizeof *s);
	s->m = m;
	s->user = dup_or_null(c->user);
	s->password = dup_or_null(c->password);
	s->authzid = c->authzid && *c->authzid ? xstrdup(c->authzid) : NULL;
	s->host = dup_or_null(c->host);
	s->port = c->port;
	s->service = xstrdup(c->service && *c->service ? c->service : "smtp");
	if (m->flags & F_PLUS) {
		s->cb = strcmp(c->cb_type, "tls-exporter") == 0 ? CB_EXPORTER : CB_UNIQUE;
		s->cb64 = b64_encode(c->cb_data, c->cb_len);
	}

	if (m->impl != IMPL_GSASL) {
		*initial = oauth_message(s);
		s->finished = true;
		*out = s;
		return 0;
	}

	rc = gsasl_init(&s->ctx);
	if (rc != GSASL_OK) {
		s->ctx = NULL;
		err_set(e, ERR_INTERNAL, 0, "libgsasl: %s", gsasl_strerror(rc));
		goto fail;
	}
	gsasl_callback_set(s->ctx, gs_callback);
	/* on the context, not the session: libgsasl asks for properties
	 * (channel binding) while the session is being created */
	gsasl_callback_hook_set(s->ctx, s);
	rc = gsasl_client_start(s->ctx, m->name, &s->gs);
	if (rc != GSASL_OK) {
		s->gs = NULL;
		gs_error(s, rc, true, e);
		goto fail;
	}
	if (!(m->flags & F_SERVER_FIRST) && gs_step(s, NULL, 0, true, initial, e) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	sasl_free(s);
	return -1;
}

int sasl_step(struct sasl *s, const char *challenge, char **response, struct err *e)
{
	const char *p = challenge ? challenge : "";
	size_t len;
	unsigned char *in = NULL;
	size_t inlen = 0;
	int rv;

	*response = NULL;
	if (!s) {
		err_set(e, ERR_INTERNAL, 0, "sasl_step without sasl_start");
		return -1;
	}
	if (++s->steps > MAX_STEPS) {
		err_set(e, ERR_PROTOCOL, 0, "the server sent more than %d %s challenges",
			MAX_STEPS, s->m->name);
		return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len && strchr(" \t\r\n", p[len - 1]))
		len--;
	if (len == 1 && p[0] == '=')
		len = 0;        /* the client's spelling of empty, accepted from servers too */

	switch (b64_decode(p, len, &in, &inlen)) {
	case -1:
		err_set(e, ERR_PROTOCOL, 0, "the server's %s challenge is not valid base64",
			s->m->name);
		return -1;
	case -2:
		err_set(e, ERR_PROTOCOL, 0, "the server's %s challenge is larger than %d KiB",
			s->m->name, MAX_CHALLENGE / 1024);
		return -1;
	}

	if (s->m->impl != IMPL_GSASL) {
		rv = oauth_step(s, in, inlen, response);
	} else if (s->finished) {
		err_set(e, ERR_PROTOCOL, 0, "the server sent a %s challenge after the exchange "
			"was complete", s->m->name);
		rv = -1;
	} else if (strncmp(s->m->name, "SCRAM-", 6) == 0 && inlen >= 2 && in[0] == 'e' &&
		   in[1] == '=') {
		/* RFC 5802 server-error: the server refuses, and says why */
		set_detail(s, in + 2, inlen - 2);
		err_set(e, ERR_AUTH, 0, "%s: the server reports an error: %s", s->m->name,
			s->detail);
		rv = -1;
	} else {
		rv = gs_step(s, in, inlen, false, response, e);
	}
	explicit_bzero(in, inlen);
	free(in);
	return rv;
}

bool sasl_finished(const struct sasl *s)
{
	return s && s->finished;
}

const char *sasl_error_detail(const struct sasl *s)
{
	return s ? s->detail : NULL;
}

void sasl_free(struct sasl *s)
{
	if (!s)
		return;
	if (s->gs) {
		gs_wipe_property(s->gs, GSASL_PASSWORD);
		gs_wipe_property(s->gs, GSASL_SCRAM_SALTED_PASSWORD);
		gs_wipe_property(s->gs, GSASL_SCRAM_SERVERKEY);
		gs_wipe_property(s->gs, GSASL_SCRAM_STOREDKEY);
		gs_wipe_property(s->gs, GSASL_DIGEST_MD5_HASHED_PASSWORD);
		gsasl_finish(s->gs);
	}
	if (s->ctx)
		gsasl_done(s->ctx);
	wipe_str(s->user);
	wipe_str(s->password);
	wipe_str(s->authzid);
	wipe_str(s->host);
	wipe_str(s->service);
	wipe_str(s->cb64);
	free(s->detail);
	explicit_bzero(s, sizeof *s);
	free(s);
}

/* ---- channel binding ---- */

int sasl_tls_channel_binding(gnutls_session_t s, unsigned char **data, size_t *len,
			     const char **type, struct err *e)
{
	gnutls_datum_t cb = { NULL, 0 };
	gnutls_channel_binding_t kind;
	int rc;

	*data = NULL;
	*len = 0;
	*type = NULL;
	if (gnutls_protocol_get_version(s) == GNUTLS_TLS1_3) {
		kind = GNUTLS_CB_TLS_EXPORTER;
		*type = "tls-exporter";
	} else {
		if (!gnutls_session_ext_master_secret_status(s)) {
			err_set(e, ERR_UNAVAILABLE, 0, "no channel binding: the TLS session has no "
				"extended master secret, so tls-unique would not be safe");
			return -1;
		}
		kind = GNUTLS_CB_TLS_UNIQUE;
		*type = "tls-unique";
	}
	rc = gnutls_session_channel_binding(s, kind, &cb);
	if (rc < 0) {
		err_set(e, rc == GNUTLS_E_UNIMPLEMENTED_FEATURE || rc == GNUTLS_E_INVALID_REQUEST
				   ? ERR_UNAVAILABLE : ERR_INTERNAL, 0,
			"no %s channel binding: %s", *type, gnutls_strerror(rc));
		*type = NULL;
		return -1;
	}
	*data = xmalloc(cb.size);
	memcpy(*data, cb.data, cb.size);
	*len = cb.size;
	gnutls_free(cb.data);
	return 0;
}

/* test_sasl.c - mechanism choice, the SASL client against known answers
 * and libgsasl's own server, channel binding over a real TLS session, and
 * every source of the password. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gsasl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sasl.h"
#include "secret.h"
#include "tap.h"
#include "util.h"

#define check ok

static char *b64(const void *data, size_t len)
{
	char *out = NULL;
	if (gsasl_base64_to(data, len, &out, NULL) != GSASL_OK)
		abort();
	char *copy = xstrdup(out);
	gsasl_free(out);
	return copy;
}

/* ---- sasl_choose ---- */

static void choose_ok(const char *wanted, const char *offered, bool tls, bool cb,
		      const char *want)
{
	struct err e = { 0 };
	const char *mech = NULL;
	int rv = sasl_choose(wanted, offered, tls, cb, &mech, &e);
	check(rv == 0 && mech && strcmp(mech, want) == 0,
	   "choose %s from [%s] tls=%d cb=%d -> %s (got %s%s%s)", wanted ? wanted : "NULL",
	   offered, tls, cb, want, mech ? mech : "error: ", mech ? "" : e.msg, "");
}

static void choose_err(const char *wanted, const char *offered, bool tls, bool cb,
		       enum err_class cls, const char *needle)
{
	struct err e = { 0 };
	const char *mech = "x";
	int rv = sasl_choose(wanted, offered, tls, cb, &mech, &e);
	check(rv < 0 && mech == NULL && e.cls == cls && strstr(e.msg, needle),
	   "choose %s from [%s] tls=%d cb=%d fails with class %d mentioning \"%s\" (%s)",
	   wanted ? wanted : "NULL", offered, tls, cb, cls, needle, e.msg);
}

static void t_choose(void)
{
	const char *all = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-1-PLUS "
			  "SCRAM-SHA-256 SCRAM-SHA-256-PLUS XOAUTH2 OAUTHBEARER GSSAPI NTLM";

	choose_ok("auto", all, true, true, "SCRAM-SHA-256-PLUS");
	choose_ok("auto", all, true, false, "SCRAM-SHA-256");
	choose_ok("auto", all, false, true, "SCRAM-SHA-256");
	choose_ok("auto", "SCRAM-SHA-1 SCRAM-SHA-1-PLUS PLAIN", true, true, "SCRAM-SHA-1-PLUS");
	choose_ok("auto", "SCRAM-SHA-1 SCRAM-SHA-1-PLUS PLAIN", true, false, "SCRAM-SHA-1");
	choose_ok("auto", "PLAIN SCRAM-SHA-1 SCRAM-SHA-256", false, false, "SCRAM-SHA-256");
	choose_ok("auto", "LOGIN CRAM-MD5 PLAIN DIGEST-MD5", true, false, "PLAIN");
	choose_ok("auto", "CRAM-MD5 LOGIN DIGEST-MD5", true, false, "LOGIN");
	choose_ok("auto", "PLAIN LOGIN CRAM-MD5 DIGEST-MD5", false, false, "CRAM-MD5");
	choose_ok("auto", "DIGEST-MD5 PLAIN", false, false, "DIGEST-MD5");
	choose_ok("auto", "NTLM XOAUTH2", true, false, "NTLM");
	choose_ok("auto", "GSSAPI PLAIN", true, false, "PLAIN");
	choose_ok(NULL, "CRAM-MD5", false, false, "CRAM-MD5");
	choose_ok("AUTO", "\tplain   login ", true, false, "PLAIN");
	choose_ok("auto", "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS", true, true, "SCRAM-SHA-256-PLUS");

	/* never a cleartext mechanism, nor a bearer token, without TLS */
	choose_err("auto", "PLAIN LOGIN", false, false, ERR_UNAVAILABLE, "TLS");
	choose_err("auto", "PLAIN LOGIN XOAUTH2 OAUTHBEARER NTLM", false, true, ERR_UNAVAILABLE,
		   "without TLS");
	/* tokens, tickets and certificates only when named */
	choose_err("auto", "XOAUTH2 OAUTHBEARER", true, false, ERR_UNAVAILABLE, "--auth");
	choose_err("auto", "GSSAPI EXTERNAL", true, false, ERR_UNAVAILABLE, "--auth");
	/* -PLUS only with channel binding; a name is matched whole */
	choose_err("auto", "SCRAM-SHA-256-PLUS", true, false, ERR_UNAVAILABLE, "SCRAM-SHA-256-PLUS");
	choose_err("auto", "", true, false, ERR_UNAVAILABLE, "none");
	choose_err("auto", "KERBEROS_V4 X-FOO", true, false, ERR_UNAVAILABLE, "X-FOO");

	choose_ok("login", "PLAIN LOGIN", true, false, "LOGIN");
	choose_ok("CRAM-MD5", "PLAIN CRAM-MD5", false, false, "CRAM-MD5");
	choose_ok("DIGEST-MD5", "DIGEST-MD5", false, false, "DIGEST-MD5");
	choose_ok("xoauth2", "XOAUTH2 PLAIN", true, false, "XOAUTH2");
	choose_ok("OAUTHBEARER", "OAUTHBEARER", true, false, "OAUTHBEARER");
	choose_ok("SCRAM-SHA-1-PLUS", all, true, true, "SCRAM-SHA-1-PLUS");
	choose_ok("SCRAM-SHA-1", all, true, true, "SCRAM-SHA-1");
	choose_ok("GSSAPI", all, false, false, "GSSAPI");
	choose_ok("NTLM", "NTLM", false, false, "NTLM");
	choose_err("CRAM-MD5", "PLAIN LOGIN", true, false, ERR_UNAVAILABLE,
		   "does not offer CRAM-MD5 (it offers: PLAIN LOGIN)");
	choose_err("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", true, true, ERR_UNAVAILABLE,
		   "does not offer");
	choose_err("PLAIN", "PLAIN LOGIN", false, false, ERR_CONFIG,
		   "PLAIN would send the password in clear: use TLS");
	choose_err("LOGIN", "CRAM-MD5", false, false, ERR_CONFIG, "in clear");
	choose_err("XOAUTH2", "XOAUTH2", false, false, ERR_CONFIG, "access token in clear");
	choose_err("OAUTHBEARER", "OAUTHBEARER", false, false, ERR_CONFIG, "in clear");
	choose_err("SCRAM-SHA-256-PLUS", all, true, false, ERR_UNAVAILABLE, "channel binding");
	choose_err("SCRAM-SHA-256-PLUS", all, false, true, ERR_CONFIG, "use TLS");
	choose_err("X-BOGUS", all, true, false, ERR_CONFIG, "unknown authentication mechanism");
}

/* ---- fixed answers ---- */

static struct sasl_creds creds(const char *user, const char *pass)
{
	struct sasl_creds c = { 0 };
	c.user = user;
	c.password = pass;
	c.host = "mail.example.com";
	c.port = 587;
	c.service = "smtp";
	return c;
}

/* One step; returns the response (to free) or NULL with *e set. */
static char *step(struct sasl *s, const char *challenge, struct err *e)
{
	char *resp = (char *)"x";
	if (sasl_step(s, challenge, &resp, e) < 0) {
		check(resp == NULL, "no response on error");
		return NULL;
	}
	return resp;
}

static void t_plain(void)
{
	struct sasl_creds c = creds("user", "pass");
	struct sasl *s;
	char *ir;
	struct err e = { 0 };

	check(sasl_start("PLAIN", &c, &s, &ir, &e) == 0 && ir && strcmp(ir, "AHVzZXIAcGFzcw==") == 0,
	   "PLAIN initial response is base64(\\0user\\0pass): %s", ir ? ir : e.msg);
	check(sasl_finished(s), "PLAIN is finished after its initial response");
	check(step(s, "", &e) == NULL && e.cls == ERR_PROTOCOL,
	   "a challenge after PLAIN completed is a protocol error (%s)", e.msg);
	free(ir);
	sasl_free(s);

	c.authzid = "authz";
	check(sasl_start("plain", &c, &s, &ir, &e) == 0 && ir &&
	   strcmp(ir, "YXV0aHoAdXNlcgBwYXNz") == 0,
	   "PLAIN with authzid is base64(authz\\0user\\0pass): %s", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);

	c = creds("user", NULL);
	s = (struct sasl *)&c;
	ir = (char *)"x";
	check(sasl_start("PLAIN", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG && !s && !ir &&
	   strstr(e.msg, "password"), "PLAIN without password: ERR_CONFIG (%s)", e.msg);
	c = creds("user", "");
	check(sasl_start("PLAIN", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG,
	   "PLAIN with an empty password: ERR_CONFIG");
	c = creds(NULL, "pass");
	check(sasl_start("SCRAM-SHA-256", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG &&
	   strstr(e.msg, "user"), "SCRAM without user: ERR_CONFIG (%s)", e.msg);
	c = creds("user", "pass");
	c.host = NULL;
	check(sasl_start("DIGEST-MD5", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG &&
	   strstr(e.msg, "host"), "DIGEST-MD5 without host: ERR_CONFIG (%s)", e.msg);
	c = creds("user", "pass");
	check(sasl_start("SCRAM-SHA-256-PLUS", &c, &s, &ir, &e) < 0 && e.cls == ERR_UNAVAILABLE,
	   "-PLUS without channel binding data refuses to start (%s)", e.msg);
	check(sasl_start("X-BOGUS", &c, &s, &ir, &e) < 0, "unknown mechanism refuses to start");
	sasl_free(NULL);
}

static void t_external(void)
{
	struct sasl_creds c = creds(NULL, NULL);
	struct sasl *s;
	char *ir;
	struct err e = { 0 };

	check(sasl_start("EXTERNAL", &c, &s, &ir, &e) == 0 && ir && strcmp(ir, "=") == 0,
	   "EXTERNAL without authzid: empty initial response \"=\" (%s)", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);
	c.authzid = "boss";
	check(sasl_start("EXTERNAL", &c, &s, &ir, &e) == 0 && ir && strcmp(ir, "Ym9zcw==") == 0,
	   "EXTERNAL sends the authzid (%s)", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);
}

static void t_login(void)
{
	struct sasl_creds c = creds("user", "pass");
	struct sasl *s;
	char *ir = (char *)"x", *r;
	struct err e = { 0 };

	check(sasl_start("LOGIN", &c, &s, &ir, &e) == 0 && ir == NULL,
	   "LOGIN waits for the server's first challenge");
	r = step(s, "VXNlcm5hbWU6", &e);
	check(r && strcmp(r, "dXNlcg==") == 0, "LOGIN answers Username: with base64(user): %s",
	   r ? r : e.msg);
	check(!sasl_finished(s), "LOGIN is not finished after the user name");
	free(r);
	r = step(s, " UGFzc3dvcmQ6\r\n", &e);
	check(r && strcmp(r, "cGFzcw==") == 0, "LOGIN answers Password: with base64(pass): %s",
	   r ? r : e.msg);
	check(sasl_finished(s), "LOGIN is finished after the password");
	free(r);
	check(step(s, "UGFzc3dvcmQ6", &e) == NULL && e.cls == ERR_PROTOCOL,
	   "a third LOGIN challenge is a protocol error (%s)", e.msg);
	sasl_free(s);
}

static void t_cram(void)
{
	struct sasl_creds c = creds("tim", "tanstaaftanstaaf");
	struct sasl *s;
	char *ir = (char *)"x", *r;
	struct err e = { 0 };

	check(sasl_start("CRAM-MD5", &c, &s, &ir, &e) == 0 && ir == NULL,
	   "CRAM-MD5 waits for the challenge");
	r = step(s, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", &e);
	check(r && strcmp(r, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw") == 0,
	   "CRAM-MD5 answers the RFC 2195 example: %s", r ? r : e.msg);
	free(r);
	sasl_free(s);
}

static void t_hostile(void)
{
	struct sasl_creds c = creds("tim", "tanstaaftanstaaf");
	static const char *const bad[] = {
		"!!!!", "abc", "ab=c", "a===", "====", "PDE4OTYu*jk3", "AAAA AAAA", "AA\001A",
	};
	struct sasl *s;
	char *ir, *r;
	struct err e = { 0 };

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char shown[64];
		sasl_start("CRAM-MD5", &c, &s, &ir, &e);
		err_clear(&e);
		r = step(s, bad[i], &e);
		check(!r && e.cls == ERR_PROTOCOL && strstr(e.msg, "base64"),
		   "challenge \"%s\" is refused as invalid base64 (%s)",
		   sanitize(shown, sizeof shown, bad[i], strlen(bad[i])), e.msg);
		free(r);
		sasl_free(s);
	}

	/* 87384 characters decode to exactly 64 KiB: accepted; four more
	 * are too many */
	size_t n = 87384;
	char *big = xmalloc(n + 8 + 1);
	memset(big, 'A', n + 8);
	memcpy(big + n - 4, "AQ==", 4);
	big[n] = '\0';
	sasl_start("CRAM-MD5", &c, &s, &ir, &e);
	r = step(s, big, &e);
	check(r != NULL, "a challenge of exactly 64 KiB is accepted (%s)", r ? "" : e.msg);
	free(r);
	sasl_free(s);
	memset(big, 'A', n + 8);
	big[n + 8] = '\0';
	sasl_start("CRAM-MD5", &c, &s, &ir, &e);
	err_clear(&e);
	r = step(s, big, &e);
	check(!r && e.cls == ERR_PROTOCOL && strstr(e.msg, "64 KiB"),
	   "a challenge above 64 KiB is a protocol error (%s)", e.msg);
	sasl_free(s);
	free(big);

	/* a server that never stops asking */
	c = creds("user", "token");
	sasl_start("XOAUTH2", &c, &s, &ir, &e);
	free(ir);
	int i;
	for (i = 0; i < 100; i++) {
		r = NULL;
		if (sasl_step(s, "e30=", &r, &e) < 0)
			break;
		free(r);
	}
	check(i == 16 && e.cls == ERR_PROTOCOL, "the exchange ends after 16 challenges (%d, %s)",
	   i, e.msg);
	sasl_free(s);
}

/* ---- against libgsasl's server ---- */

static const char *srv_password;
static const char *srv_cb64;
static Gsasl_property srv_cbprop;
static char srv_authid[64];

static int srv_callback(Gsasl *ctx, Gsasl_session *ss, Gsasl_property prop)
{
	(void)ctx;
	switch (prop) {
	case GSASL_PASSWORD: {
		const char *id = gsasl_property_fast(ss, GSASL_AUTHID);
		snprintf(srv_authid, sizeof srv_authid, "%s", id ? id : "");
		return gsasl_property_set(ss, prop, srv_password);
	}
	case GSASL_CB_TLS_EXPORTER:
	case GSASL_CB_TLS_UNIQUE:
		if (srv_cb64 && prop == srv_cbprop)
			return gsasl_property_set(ss, prop, srv_cb64);
		return GSASL_NO_CALLBACK;
	case GSASL_SERVICE:
		return gsasl_property_set(ss, prop, "smtp");
	case GSASL_HOSTNAME:
		return gsasl_property_set(ss, prop, "mail.example.com");
	default:
		return GSASL_NO_CALLBACK;
	}
}

enum outcome { OK_BOTH, SERVER_REFUSED, CLIENT_REFUSED, CLIENT_UNFINISHED };

/* Run mech between our client and libgsasl's server.  tamper: replace the
 * server's final message with a forged one. */
static enum outcome exchange(const char *mech, const struct sasl_creds *c, bool tamper,
			     struct err *e)
{
	Gsasl *ctx;
	Gsasl_session *ss;
	struct sasl *s;
	char *to_server = NULL;
	enum outcome res = SERVER_REFUSED;

	err_clear(e);
	if (gsasl_init(&ctx) != GSASL_OK)
		return SERVER_REFUSED;
	gsasl_callback_set(ctx, srv_callback);
	if (gsasl_server_start(ctx, mech, &ss) != GSASL_OK) {
		gsasl_done(ctx);
		return SERVER_REFUSED;
	}
	srv_authid[0] = '\0';
	if (sasl_start(mech, c, &s, &to_server, e) < 0) {
		gsasl_finish(ss);
		gsasl_done(ctx);
		return CLIENT_REFUSED;
	}
	for (int round = 0; round < 10; round++) {
		char *out = NULL;
		const char *in = to_server ? to_server : "";
		int rc = gsasl_step64(ss, strcmp(in, "=") == 0 ? "" : in, &out);
		free(to_server);
		to_server = NULL;
		if (rc != GSASL_OK && rc != GSASL_NEEDS_MORE) {
			gsasl_free(out);
			res = SERVER_REFUSED;
			break;
		}
		if (rc == GSASL_OK && tamper) {
			static const char forged[] = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
			gsasl_free(out);
			out = NULL;
			gsasl_base64_to(forged, strlen(forged), &out, NULL);
		}
		if (rc == GSASL_OK && (!out || !*out)) {
			gsasl_free(out);
			res = sasl_finished(s) ? OK_BOTH : CLIENT_UNFINISHED;
			break;
		}
		/* a 334 challenge, also for the server's final data */
		if (sasl_step(s, out, &to_server, e) < 0) {
			gsasl_free(out);
			res = CLIENT_REFUSED;
			break;
		}
		gsasl_free(out);
		if (rc == GSASL_OK) {
			check(strcmp(to_server, "") == 0, "%s: empty response to the final data", mech);
			res = sasl_finished(s) ? OK_BOTH : CLIENT_UNFINISHED;
			break;
		}
	}
	free(to_server);
	sasl_free(s);
	gsasl_finish(ss);
	gsasl_done(ctx);
	return res;
}

static void t_server(void)
{
	static const char *const m[] = { "SCRAM-SHA-1", "SCRAM-SHA-256", "DIGEST-MD5", "CRAM-MD5",
					 "PLAIN", "LOGIN" };
	struct sasl_creds c = creds("user", "pencil");
	struct err e = { 0 };
	enum outcome o;

	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		srv_password = "pencil";
		err_clear(&e);
		o = exchange(m[i], &c, false, &e);
		check(o == OK_BOTH && strcmp(srv_authid, "user") == 0,
		   "%s against libgsasl's server succeeds (%d %s)", m[i], o, e.msg);
		srv_password = "wrong";
		o = exchange(m[i], &c, false, &e);
		check(o == SERVER_REFUSED || (o == CLIENT_REFUSED && e.cls == ERR_AUTH),
		   "%s with the wrong password fails (%d %s)", m[i], o, e.msg);
	}

	srv_password = "pencil";
	c.authzid = "admin";
	o = exchange("SCRAM-SHA-256", &c, false, &e);
	check(o == OK_BOTH, "SCRAM-SHA-256 with authzid succeeds (%d %s)", o, e.msg);
	c.authzid = NULL;

	err_clear(&e);
	o = exchange("SCRAM-SHA-256", &c, true, &e);
	check(o == CLIENT_REFUSED && e.cls == ERR_AUTH && strstr(e.msg, "prove"),
	   "a forged SCRAM server signature is refused (%s)", e.msg);

	/* RFC 5802 server-error */
	struct sasl *s;
	char *ir, *r = NULL;
	sasl_start("SCRAM-SHA-1", &c, &s, &ir, &e);
	free(ir);
	char *challenge = b64("e=invalid-proof", 15);
	check(sasl_step(s, challenge, &r, &e) < 0 && e.cls == ERR_AUTH &&
	   strstr(e.msg, "invalid-proof") && sasl_error_detail(s) &&
	   strcmp(sasl_error_detail(s), "invalid-proof") == 0,
	   "a SCRAM e= message is an authentication error with detail (%s)", e.msg);
	free(challenge);
	sasl_free(s);

	/* garbage instead of server-first */
	sasl_start("SCRAM-SHA-1", &c, &s, &ir, &e);
	free(ir);
	challenge = b64("hello", 5);
	check(sasl_step(s, challenge, &r, &e) < 0 && e.cls == ERR_PROTOCOL,
	   "a malformed SCRAM challenge is a protocol error (%s)", e.msg);
	free(challenge);
	sasl_free(s);

	/* channel binding with fixed data */
	unsigned char cb[32], other[32];
	memset(cb, 0x5a, sizeof cb);
	memset(other, 0xa5, sizeof other);
	char *cb64 = b64(cb, sizeof cb);
	c.cb_data = cb;
	c.cb_len = sizeof cb;
	c.cb_type = "tls-exporter";
	srv_cb64 = cb64;
	srv_cbprop = GSASL_CB_TLS_EXPORTER;
	o = exchange("SCRAM-SHA-256-PLUS", &c, false, &e);
	check(o == OK_BOTH, "SCRAM-SHA-256-PLUS with tls-exporter succeeds (%d %s)", o, e.msg);
	o = exchange("SCRAM-SHA-1-PLUS", &c, false, &e);
	check(o == OK_BOTH, "SCRAM-SHA-1-PLUS with tls-exporter succeeds (%d %s)", o, e.msg);
	c.cb_type = "tls-unique";
	srv_cbprop = GSASL_CB_TLS_UNIQUE;
	o = exchange("SCRAM-SHA-256-PLUS", &c, false, &e);
	check(o == OK_BOTH, "SCRAM-SHA-256-PLUS with tls-unique succeeds (%d %s)", o, e.msg);
	c.cb_data = other;
	o = exchange("SCRAM-SHA-256-PLUS", &c, false, &e);
	check(o == SERVER_REFUSED, "a different channel (a man in the middle) is refused (%d)", o);
	/* a plain SCRAM client says "n" even when binding data exists */
	c.cb_data = cb;
	o = exchange("SCRAM-SHA-256", &c, false, &e);
	check(o == OK_BOTH, "SCRAM-SHA-256 with binding data available still succeeds (%d %s)", o,
	   e.msg);
	sasl_start("SCRAM-SHA-256", &c, &s, &ir, &e);
	check(ir && strncmp(ir, "biws", 4) == 0, "its gs2 header is \"n,,\" (%s)", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);
	srv_cb64 = NULL;
	free(cb64);
}

/* ---- OAuth ---- */

static void t_oauth(void)
{
	struct sasl_creds c = creds("someuser@example.com",
				    "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
	const char *xo = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRj"
			 "Mk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
	const char *json = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwu"
			   "Z29vZ2xlLmNvbS8ifQ==";
	struct sasl *s;
	char *ir, *r;
	struct err e = { 0 };

	check(sasl_start("XOAUTH2", &c, &s, &ir, &e) == 0 && ir && strcmp(ir, xo) == 0,
	   "XOAUTH2 initial response is exact (%s)", ir ? ir : e.msg);
	check(sasl_error_detail(s) == NULL, "no detail before an error");
	r = step(s, json, &e);
	check(r && strcmp(r, "") == 0, "XOAUTH2 answers the JSON error with an empty line");
	check(sasl_error_detail(s) && strstr(sasl_error_detail(s), "status 401") &&
	   strstr(sasl_error_detail(s), "scope https://mail.google.com/"),
	   "the detail is the decoded error: %s", sasl_error_detail(s));
	free(r);
	free(ir);
	sasl_free(s);

	/* the two-step form: AUTH XOAUTH2 alone, then an empty 334 */
	sasl_start("XOAUTH2", &c, &s, &ir, &e);
	r = step(s, "", &e);
	check(r && strcmp(r, xo) == 0, "XOAUTH2 sends the token after an empty challenge");
	free(r);
	r = step(s, json, &e);
	check(r && strcmp(r, "") == 0 && sasl_error_detail(s), "... and handles the error after it");
	free(r);
	free(ir);
	sasl_free(s);

	/* RFC 7628 section 4.1 */
	c = creds("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	c.host = "server.example.com";
	c.port = 143;
	check(sasl_start("OAUTHBEARER", &c, &s, &ir, &e) == 0 && ir &&
	   strcmp(ir, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1"
		  "dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB") == 0,
	   "OAUTHBEARER initial response matches RFC 7628 (%s)", ir ? ir : e.msg);
	r = step(s, json, &e);
	check(r && strcmp(r, "AQ==") == 0, "OAUTHBEARER answers the error with %%x01");
	check(sasl_error_detail(s) && strstr(sasl_error_detail(s), "status 401"),
	   "OAUTHBEARER keeps the error: %s", sasl_error_detail(s));
	free(r);
	free(ir);
	sasl_free(s);

	c = creds("user", "T");
	c.authzid = "a,b=c";
	c.host = "h";
	check(sasl_start("OAUTHBEARER", &c, &s, &ir, &e) == 0 && ir &&
	   strcmp(ir, "bixhPWE9MkNiPTNEYywBaG9zdD1oAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIFQBAQ==") == 0,
	   "OAUTHBEARER escapes , and = in the authzid (%s)", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);

	c = creds(NULL, "T");
	c.host = NULL;
	c.port = 0;
	check(sasl_start("OAUTHBEARER", &c, &s, &ir, &e) == 0 && ir &&
	   strcmp(ir, "biwsAWF1dGg9QmVhcmVyIFQBAQ==") == 0,
	   "OAUTHBEARER without user, host and port (%s)", ir ? ir : e.msg);
	free(ir);
	sasl_free(s);

	c = creds("user", "tok\001en");
	check(sasl_start("XOAUTH2", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG,
	   "a control character in the token is refused (%s)", e.msg);
	c = creds("user", NULL);
	check(sasl_start("OAUTHBEARER", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG &&
	   strstr(e.msg, "access token"), "OAUTHBEARER without a token (%s)", e.msg);
	c = creds(NULL, "tok");
	check(sasl_start("XOAUTH2", &c, &s, &ir, &e) < 0 && e.cls == ERR_CONFIG,
	   "XOAUTH2 without a user (%s)", e.msg);

	/* an error that is not JSON is shown as text, sanitised */
	c = creds("user", "tok");
	sasl_start("XOAUTH2", &c, &s, &ir, &e);
	char *text = b64("bad \033[31mthing", 14);
	r = step(s, text, &e);
	check(r && sasl_error_detail(s) && strcmp(sasl_error_detail(s), "bad \\x1b[31mthing") == 0,
	   "non-JSON error text is kept sanitised: %s", sasl_error_detail(s));
	free(r);
	free(text);
	text = b64("{\"status\":\"400\",\"nested\":{\"a\":1}}", 33);
	r = step(s, text, &e);
	check(r && sasl_error_detail(s) && strstr(sasl_error_detail(s), "{\"status\""),
	   "JSON that is not flat is shown raw: %s", sasl_error_detail(s));
	free(r);
	free(text);
	free(ir);
	sasl_free(s);
}

/* ---- channel binding over real TLS ---- */

static gnutls_certificate_credentials_t srv_cred, cli_cred;

static int make_creds(void)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	time_t now = time(NULL);

	if (gnutls_x509_privkey_init(&key) < 0 ||
	    gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0)
		return -1;
	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, "\x01", 1);
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 3600);
	gnutls_x509_crt_set_dn(crt, "CN=localhost", NULL);
	gnutls_x509_crt_set_key(crt, key);
	if (gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
		return -1;
	gnutls_certificate_allocate_credentials(&srv_cred);
	gnutls_certificate_allocate_credentials(&cli_cred);
	int rc = gnutls_certificate_set_x509_key(srv_cred, &crt, 1, key);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc < 0 ? -1 : 0;
}

/* A handshake between two sessions in this process over a socketpair. */
static int tls_pair(const char *priority, gnutls_session_t *cli, gnutls_session_t *srv,
		    int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	gnutls_init(cli, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	gnutls_init(srv, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	gnutls_priority_set_direct(*cli, priority, NULL);
	gnutls_priority_set_direct(*srv, priority, NULL);
	gnutls_credentials_set(*cli, GNUTLS_CRD_CERTIFICATE, cli_cred);
	gnutls_credentials_set(*srv, GNUTLS_CRD_CERTIFICATE, srv_cred);
	gnutls_transport_set_int(*cli, sv[0]);
	gnutls_transport_set_int(*srv, sv[1]);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 10000 && !(cdone && sdone); i++) {
		if (!cdone) {
			int rc = gnutls_handshake(*cli);
			if (rc == 0)
				cdone = true;
			else if (gnutls_error_is_fatal(rc))
				return -1;
		}
		if (!sdone) {
			int rc = gnutls_handshake(*srv);
			if (rc == 0)
				sdone = true;
			else if (gnutls_error_is_fatal(rc))
				return -1;
		}
	}
	return cdone && sdone ? 0 : -1;
}

static void tls_unpair(gnutls_session_t cli, gnutls_session_t srv, int sv[2])
{
	gnutls_deinit(cli);
	gnutls_deinit(srv);
	close(sv[0]);
	close(sv[1]);
}

static void t_channel_binding(void)
{
	static const struct {
		const char *priority, *type;
		gnutls_channel_binding_t kind;
		size_t len;
	} v[] = {
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.3", "tls-exporter", GNUTLS_CB_TLS_EXPORTER, 32 },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2", "tls-unique", GNUTLS_CB_TLS_UNIQUE, 12 },
	};
	gnutls_session_t cli, srv;
	int sv[2];

	if (make_creds() < 0) {
		check(0, "cannot make a test certificate");
		return;
	}
	for (size_t i = 0; i < 2; i++) {
		unsigned char *data = NULL;
		size_t len = 0;
		const char *type = NULL;
		struct err e = { 0 };
		gnutls_datum_t peer = { NULL, 0 };

		if (tls_pair(v[i].priority, &cli, &srv, sv) < 0) {
			check(0, "TLS handshake for %s", v[i].type);
			continue;
		}
		int rv = sasl_tls_channel_binding(cli, &data, &len, &type, &e);
		gnutls_session_channel_binding(srv, v[i].kind, &peer);
		check(rv == 0 && type && strcmp(type, v[i].type) == 0 && len == v[i].len &&
		   peer.size == len && memcmp(peer.data, data, len) == 0,
		   "%s: %s of %zu bytes, the same on both ends (%s)", v[i].priority, v[i].type,
		   len, rv ? e.msg : "");

		/* the whole point: SCRAM-*-PLUS bound to this very channel */
		char *peer64 = b64(peer.data, peer.size);
		struct sasl_creds c = creds("user", "pencil");
		c.cb_data = data;
		c.cb_len = len;
		c.cb_type = type;
		srv_password = "pencil";
		srv_cb64 = peer64;
		srv_cbprop = v[i].kind == GNUTLS_CB_TLS_EXPORTER ? GSASL_CB_TLS_EXPORTER
								 : GSASL_CB_TLS_UNIQUE;
		enum outcome o = exchange("SCRAM-SHA-256-PLUS", &c, false, &e);
		check(o == OK_BOTH, "SCRAM-SHA-256-PLUS over %s succeeds (%d %s)", v[i].type, o,
		   e.msg);
		srv_cb64 = NULL;
		free(peer64);
		gnutls_free(peer.data);
		free(data);
		tls_unpair(cli, srv, sv);
	}

	/* TLS 1.2 without the extended master secret: no binding */
	if (tls_pair("NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH", &cli, &srv, sv) == 0) {
		unsigned char *data = (unsigned char *)"x";
		size_t len = 1;
		const char *type = "x";
		struct err e = { 0 };
		int rv = sasl_tls_channel_binding(cli, &data, &len, &type, &e);
		check(rv < 0 && e.cls == ERR_UNAVAILABLE && !data && !len && !type &&
		   strstr(e.msg, "extended master secret"),
		   "TLS 1.2 without extended master secret gives no binding (%s)", e.msg);
		tls_unpair(cli, srv, sv);
	} else {
		check(0, "TLS 1.2 handshake without extended master secret");
	}
	gnutls_certificate_free_credentials(srv_cred);
	gnutls_certificate_free_credentials(cli_cred);
}

/* ---- secret_get ---- */

static char tmpdir[] = "/tmp/test_sasl.XXXXXX";

struct got {
	int rv;
	enum err_class cls;
	char msg[1024];
	char out[256];
};

static void collect(struct got *g, int rv, const struct err *e, char *out)
{
	memset(g, 0, sizeof *g);
	g->rv = rv;
	g->cls = e->cls;
	snprintf(g->msg, sizeof g->msg, "%s", e->msg);
	snprintf(g->out, sizeof g->out, "%s", out ? out : "(null)");
	secret_free(out);
}

static void get(const char *user, const char *host, const char *pw, const char *cmd,
		struct got *g)
{
	struct err e = { 0 };
	char *out = (char *)"junk";
	int rv = secret_get(user, host, pw, cmd, &out, &e);
	if (rv < 0 && out)
		strcpy(g->out, "out was not NULL on error");
	collect(g, rv, &e, rv == 0 ? out : NULL);
}

/* The same in a child without a controlling terminal, so that reaching
 * the prompt cannot block the test. */
static void get_notty(const char *user, const char *host, const char *pw, const char *cmd,
		      struct got *g)
{
	int p[2];
	memset(g, 0, sizeof *g);
	g->rv = 99;
	if (pipe(p) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		setsid();
		get(user, host, pw, cmd, g);
		(void)!write(p[1], g, sizeof *g);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], g, sizeof *g) != (ssize_t)sizeof *g)
		g->rv = 99;
	close(p[0]);
	waitpid(pid, NULL, 0);
}

static void write_netrc(const char *text, mode_t mode)
{
	char path[256];
	snprintf(path, sizeof path, "%s/.netrc", tmpdir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void t_secret(void)
{
	struct got g;

	unsetenv("SMTPSEND_PASSWORD");
	setenv("HOME", tmpdir, 1);

	get("u", "h", "rcpw", "echo other", &g);
	check(g.rv == 0 && strcmp(g.out, "rcpw") == 0, "the configured password wins (%s)", g.out);
	get("u", "h", "", "printf 'first\\nsecond\\n'", &g);
	check(g.rv == 0 && strcmp(g.out, "first") == 0, "password_command: the first line (%s)",
	   g.out);
	get("u", "h", NULL, "printf 'tok en\\r\\n'", &g);
	check(g.rv == 0 && strcmp(g.out, "tok en") == 0, "password_command: CR LF removed (%s)",
	   g.out);
	get("u", "h", NULL, "printf 'no newline'", &g);
	check(g.rv == 0 && strcmp(g.out, "no newline") == 0, "password_command: no line end (%s)",
	   g.out);
	get("u", "h", NULL, "yes secret | head -n 200000", &g);
	check(g.rv == 0 && strcmp(g.out, "secret") == 0, "password_command: long output drained");
	get("u", "h", NULL, "exit 3", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strcmp(g.msg, "password_command exited 3") == 0,
	   "password_command exit 3: ERR_CONFIG (%s)", g.msg);
	get("u", "h", NULL, "echo pw; exit 1", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "exited 1"),
	   "output with a failure status is still a failure (%s)", g.msg);
	get("u", "h", NULL, "true", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strcmp(g.msg, "password_command printed nothing") == 0,
	   "password_command printing nothing: ERR_CONFIG (%s)", g.msg);
	get("u", "h", NULL, "cat", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "printed nothing"),
	   "password_command reads /dev/null, not our stdin (%s)", g.msg);
	get("u", "h", NULL, "echo; echo second", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "empty first line"),
	   "an empty first line is no password (%s)", g.msg);
	get("u", "h", NULL, "kill -9 $$", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "signal 9"),
	   "password_command killed: ERR_CONFIG (%s)", g.msg);
	secret_set_command_timeout(300);
	time_t t0 = time(NULL);
	get("u", "h", NULL, "exec sleep 10", &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "did not finish") &&
	   time(NULL) - t0 < 5, "password_command timeout: ERR_CONFIG (%s)", g.msg);
	secret_set_command_timeout(0);

	setenv("SMTPSEND_PASSWORD", "envpw", 1);
	get("u", "h", NULL, "echo cmdpw", &g);
	check(g.rv == 0 && strcmp(g.out, "cmdpw") == 0, "password_command before the environment");
	get("u", "h", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "envpw") == 0, "SMTPSEND_PASSWORD (%s)", g.out);
	write_netrc("machine h login u password netrcpw\n", 0600);
	get("u", "h", NULL, "", &g);
	check(g.rv == 0 && strcmp(g.out, "envpw") == 0, "the environment before ~/.netrc");
	unsetenv("SMTPSEND_PASSWORD");

	write_netrc("# a comment\n"
		    "machine other.example login alice password wrong\n"
		    "machine mail.example.com\n"
		    "\tlogin alice\n"
		    "\tpassword \"s3cr et\\\"x\"\n"
		    "machine mail.example.com login bob account acct password\n"
		    "  #hash\n"
		    "macdef init\n"
		    "machine mail.example.com login carol password frommacro\n"
		    "\n"
		    "default login carol password defpw\n", 0600);
	get("alice", "mail.example.com", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "s3cr et\"x") == 0,
	   "netrc: machine and login across lines, quoted (%s %s)", g.out, g.msg);
	get("alice", "MAIL.Example.COM.", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "s3cr et\"x") == 0, "netrc: host case-insensitive");
	get("bob", "mail.example.com", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "#hash") == 0,
	   "netrc: account skipped, a password may start with # (%s)", g.out);
	get("carol", "mail.example.com", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "defpw") == 0, "netrc: macdef skipped, default used (%s)",
	   g.out);
	get_notty("dave", "mail.example.com", NULL, NULL, &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "no password for dave at "
							    "mail.example.com: set password_command"),
	   "netrc: nothing for another login, no terminal: ERR_CONFIG (%s)", g.msg);

	write_netrc("machine x password one\ndefault\npassword anyuser\n", 0600);
	get("whoever", "elsewhere", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "anyuser") == 0, "netrc: default without login (%s)",
	   g.out);
	get("whoever", "x", NULL, NULL, &g);
	check(g.rv == 0 && strcmp(g.out, "one") == 0, "netrc: machine without login (%s)", g.out);

	write_netrc("machine h login u password pw\n", 0644);
	get("u", "h", NULL, NULL, &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "readable by others") &&
	   strstr(g.msg, "chmod 600"), "netrc 0644 refused with the chmod to run (%s)", g.msg);
	write_netrc("machine h login u password pw\n", 0620);
	get("u", "h", NULL, NULL, &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "writable by others"),
	   "netrc 0620 refused (%s)", g.msg);
	get_notty("u", "other", NULL, NULL, &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "no password for u at other"),
	   "a 0644 netrc without our entry is not an error of its own (%s)", g.msg);

	char path[256];
	snprintf(path, sizeof path, "%s/.netrc", tmpdir);
	unlink(path);
	get_notty("u", "h", NULL, NULL, &g);
	check(g.rv < 0 && g.cls == ERR_CONFIG && strstr(g.msg, "no password for u at h: set "
							    "password_command"),
	   "nothing configured and no terminal: ERR_CONFIG (%s)", g.msg);
	unsetenv("HOME");
}

/* The prompt, on a pseudo-terminal that is the child's controlling tty. */
static int pty_child(int *master, int *res)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return -1;
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct got g;
		close(p[0]);
		setsid();
		int sl = open(ptsname(m), O_RDWR); /* becomes the controlling tty */
		close(m);
		get("user", "host", NULL, NULL, &g);
		struct termios t;
		tcgetattr(sl, &t);
		g.cls = (t.c_lflag & ECHO) ? g.cls : (enum err_class)-1;
		(void)!write(p[1], &g, sizeof g);
		_exit(0);
	}
	close(p[1]);
	*master = m;
	*res = p[0];
	return pid;
}

/* Read what the child shows until `want` appears (or 5 s pass). */
static bool pty_wait(int m, const char *want, char *seen, size_t seensz)
{
	size_t n = strlen(seen);
	for (int i = 0; i < 50 && !strstr(seen, want); i++) {
		struct pollfd p = { m, POLLIN, 0 };
		if (poll(&p, 1, 100) > 0) {
			ssize_t r = read(m, seen + n, seensz - n - 1);
			if (r > 0)
				n += (size_t)r;
			seen[n] = '\0';
		}
	}
	return strstr(seen, want) != NULL;
}

static void t_prompt(void)
{
	char seen[4096] = "";
	int m, res, status;
	struct got g;

	unsetenv("SMTPSEND_PASSWORD");
	setenv("HOME", tmpdir, 1);
	pid_t pid = pty_child(&m, &res);
	if (pid < 0) {
		check(0, "no pseudo-terminal");
		return;
	}
	check(pty_wait(m, "Password for user at host: ", seen, sizeof seen), "the prompt is shown");
	(void)!write(m, "typed secret\n", 13);
	memset(&g, 0, sizeof g);
	check(read(res, &g, sizeof g) == (ssize_t)sizeof g && g.rv == 0 &&
	   strcmp(g.out, "typed secret") == 0, "the typed password is returned (%s %s)", g.out,
	   g.msg);
	check(g.cls != (enum err_class)-1, "echo is on again afterwards");
	pty_wait(m, "\n", seen, sizeof seen);
	check(!strstr(seen, "typed"), "the password was not echoed");
	waitpid(pid, NULL, 0);
	close(res);
	close(m);

	/* Ctrl-C: the terminal is restored, then the signal acts */
	seen[0] = '\0';
	pid = pty_child(&m, &res);
	pty_wait(m, "Password for", seen, sizeof seen);
	(void)!write(m, "\003", 1);
	waitpid(pid, &status, 0);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "Ctrl-C ends the prompt by SIGINT");
	struct termios t;
	check(tcgetattr(m, &t) == 0 && (t.c_lflag & ECHO), "... with echo restored");
	close(res);
	close(m);

	/* end of input at the prompt */
	seen[0] = '\0';
	pid = pty_child(&m, &res);
	pty_wait(m, "Password for", seen, sizeof seen);
	(void)!write(m, "\004", 1);
	memset(&g, 0, sizeof g);
	check(read(res, &g, sizeof g) == (ssize_t)sizeof g && g.rv < 0 && g.cls == ERR_CONFIG &&
	   strstr(g.msg, "no password entered"), "Ctrl-D at the prompt: ERR_CONFIG (%s)", g.msg);
	waitpid(pid, NULL, 0);
	close(res);
	close(m);
	unsetenv("HOME");
}

int main(void)
{
	/* a password_command that dies must not take us along */
	signal(SIGPIPE, SIG_IGN);
	/* a prompt test gone wrong must not hang the suite */
	alarm(120);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	t_choose();
	t_plain();
	t_external();
	t_login();
	t_cram();
	t_hostile();
	t_server();
	t_oauth();
	t_channel_binding();
	t_secret();
	t_prompt();

	char path[300];
	snprintf(path, sizeof path, "%s/.netrc", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return tap_done();
}

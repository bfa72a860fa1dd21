/* test_proxy.c - the proxy layer: URL parsing, the choice of proxy
 * (setting, environment, exceptions) and every handshake, driven over a
 * socketpair.
 *
 * The proxy's answer is written into the other end of the pair before
 * the handshake runs (the socket buffer holds it), then the bytes
 * smtpsend sent are read back and compared exactly. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "conn_proxy.h"
#include "tap.h"
#include "util.h"

static struct conn conn;        /* large: keep it off the stack */
static struct err e;
static int peer = -1;           /* the proxy's end of the pair */

/* ---- a transport over one end of a socketpair ---- */

static ssize_t pair_read(struct conn *c, void *buf, size_t len, int64_t deadline_ms, struct err *err)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EINTR) {
			err_set(err, ERR_TEMP, 0, "recv: %s", strerror(errno));
			return -1;
		}
		if (conn_wait_fd(c, c->fd, POLLIN, deadline_ms, err) < 0)
			return -1;
	}
}

static ssize_t pair_write(struct conn *c, const void *buf, size_t len, int64_t deadline_ms,
			  struct err *err)
{
	(void)deadline_ms;
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0)
		err_set(err, ERR_TEMP, 0, "send: %s", strerror(errno));
	return n;
}

static void pair_close(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
}

static const struct conn_ops pair_ops = {
	.read = pair_read,
	.write = pair_write,
	.close = pair_close,
};

static void pair_open(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(2);
	}
	conn_init(&conn, &pair_ops, NULL, sv[0], 5);
	snprintf(conn.peer, sizeof conn.peer, "proxy");
	peer = sv[1];
	err_clear(&e);
}

static void pair_done(void)
{
	if (conn.ops)
		conn_close(&conn);
	if (peer >= 0)
		close(peer);
	peer = -1;
}

/* The proxy's answer (and, with close, its end of stream after it). */
static void proxy_says(const void *buf, size_t len, bool close_after)
{
	if (len && write_all(peer, buf, len) < 0) {
		perror("write");
		exit(2);
	}
	if (close_after)
		shutdown(peer, SHUT_WR);
}

/* Everything smtpsend has sent to the proxy so far. */
static size_t proxy_got(unsigned char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = recv(peer, buf + n, cap - n, MSG_DONTWAIT);
		if (r <= 0 || (n += (size_t)r) == cap)
			return n;
	}
}

/* Run one handshake against the prepared pair.  Returns its result. */
static int shake(const char *url, const char *host, int port, int64_t ms)
{
	struct proxy px;
	struct err pe;
	if (proxy_parse(url, NULL, &px, &pe) < 0) {
		printf("# bad test URL %s: %s\n", url, pe.msg);
		return -2;
	}
	int r = proxy_handshake(&conn, &px, host, port, conn_now_ms() + ms, &e);
	proxy_free(&px);
	return r;
}

/* One case: the proxy answers `reply` (len bytes, then closes when asked),
 * the handshake runs; the result, class and what was sent are returned. */
struct result {
	int r;
	enum err_class cls;
	int code;
	char msg[1024];
	unsigned char sent[4096];
	size_t nsent;
	char next[256];         /* the line after the handshake, if any */
};

static struct result res;

static void run_case(const char *url, const char *host, int port, const void *reply, size_t len,
		     bool close_after)
{
	memset(&res, 0, sizeof res);
	pair_open();
	proxy_says(reply, len, close_after);
	res.r = shake(url, host, port, 2000);
	res.cls = e.cls;
	res.code = e.code;
	snprintf(res.msg, sizeof res.msg, "%s", e.msg);
	res.nsent = proxy_got(res.sent, sizeof res.sent);
	if (res.r == 0 && conn_unread(&conn)) {
		const char *line;
		size_t l;
		bool t;
		struct err le;
		if (conn_read_line(&conn, &line, &l, &t, conn_now_ms() + 500, &le) == 0)
			snprintf(res.next, sizeof res.next, "%.*s", (int)l, line);
	}
	pair_done();
}

#define CASE(url, host, port, reply, close_after) \
	run_case(url, host, port, reply, sizeof reply - 1, close_after)

static bool sent_is(const void *want, size_t n)
{
	return res.nsent == n && memcmp(res.sent, want, n) == 0;
}

static bool msg_has(const char *s)
{
	return strstr(res.msg, s) != NULL;
}

/* ---- URLs ---- */

static void test_parse_good(void)
{
	struct proxy px;

	tap_begin();
	TAP_EXPECT(proxy_parse("socks5://proxy.example:1081", NULL, &px, &e) == 0, "%s", e.msg);
	TAP_EXPECT(px.type == PROXY_SOCKS5 && strcmp(px.host, "proxy.example") == 0 &&
		   px.port == 1081 && !px.user && !px.password, "socks5 fields");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("SOCKS5H://u%40x:p%3Aw%25@h", NULL, &px, &e) == 0, "%s", e.msg);
	TAP_EXPECT(px.type == PROXY_SOCKS5H && px.port == 1080 && strcmp(px.user, "u@x") == 0 &&
		   strcmp(px.password, "p:w%") == 0, "decoded %s", px.user ? px.user : "-");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("http://h", NULL, &px, &e) == 0 && px.type == PROXY_HTTP &&
		   px.port == 8080, "http default port %d", px.port);
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("Http://h:3128/", NULL, &px, &e) == 0 && px.port == 3128,
		   "trailing slash");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks4://alice@h:1", NULL, &px, &e) == 0 &&
		   px.type == PROXY_SOCKS4 && strcmp(px.user, "alice") == 0 && px.port == 1,
		   "socks4 user id");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks4a://h", NULL, &px, &e) == 0 && px.type == PROXY_SOCKS4A &&
		   px.port == 1080, "socks4a");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://[::1]:1090", NULL, &px, &e) == 0 &&
		   strcmp(px.host, "::1") == 0 && px.port == 1090, "IPv6 literal");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://[2001:db8::1]", NULL, &px, &e) == 0 &&
		   strcmp(px.host, "2001:db8::1") == 0 && px.port == 1080, "IPv6 default port");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://bob@h", "fromrc", &px, &e) == 0 &&
		   strcmp(px.password, "fromrc") == 0, "rc password used");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://bob:inurl@h", "fromrc", &px, &e) == 0 &&
		   strcmp(px.password, "inurl") == 0, "URL password wins");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://@h", NULL, &px, &e) == 0 && !px.user, "empty user");
	proxy_free(&px);
	TAP_EXPECT(proxy_parse("socks5://b\xc3\xbc" "cher.example", NULL, &px, &e) == 0 &&
		   strcmp(px.host, "xn--bcher-kva.example") == 0, "IDN proxy host: %s", e.msg);
	proxy_free(&px);
	tap_end("good proxy URLs: schemes, default ports, %-decoding, IPv6, IDN, rc password");

	char u[300], p[300], url[700];
	memset(u, 'u', 255);
	u[255] = '\0';
	memset(p, 'p', 255);
	p[255] = '\0';
	snprintf(url, sizeof url, "socks5://%s:%s@h", u, p);
	ok(proxy_parse(url, NULL, &px, &e) == 0, "socks5 user and password of 255 bytes: %s", e.msg);
	proxy_free(&px);
}

static void test_parse_bad(void)
{
	static const struct {
		const char *url, *pw, *want;
	} bad[] = {
		{ "ftp://h", NULL, "socks4, socks4a, socks5, socks5h or http" },
		{ "https://h", NULL, "unknown proxy type \"https\"" },
		{ "h:1080", NULL, "no scheme" },
		{ "user:Secr3t@h:1080", NULL, "no scheme" },
		{ "socks5://", NULL, "no proxy host" },
		{ "socks5://:1080", NULL, "no proxy host" },
		{ "socks5://u:Secr3t@", NULL, "no proxy host" },
		{ "socks5://h:0", NULL, "1 to 65535" },
		{ "socks5://h:65536", NULL, "1 to 65535" },
		{ "socks5://h:x", NULL, "1 to 65535" },
		{ "socks5://h:", NULL, "1 to 65535" },
		{ "socks5://h:+1", NULL, "1 to 65535" },
		{ "socks5://h:-1", NULL, "1 to 65535" },
		{ "socks5://h:99999999999", NULL, "1 to 65535" },
		{ "socks5://h/path", NULL, "nothing may follow" },
		{ "socks5://h?x=1", NULL, "nothing may follow" },
		{ "socks5://h#frag", NULL, "nothing may follow" },
		{ "socks5://u:Sec/r3t@h", NULL, "nothing may follow" },
		{ "socks5://h\x01", NULL, "control character" },
		{ "socks5://u:Secr3t@h x", NULL, "control character" },
		{ "socks5://h\n", NULL, "control character" },
		{ "socks4://u:Secr3t@h", NULL, "socks4 has a user id but no password" },
		{ "socks4a://u@h", "Secr3t", "socks4a has a user id but no password" },
		{ "socks5://h", "Secr3t", "no user name" },
		{ "http://:Secr3t@h", NULL, "password but no user name" },
		{ "socks5://u:%zzSecr3t@h", NULL, "bad %-escape" },
		{ "socks5://u:Secr3t%4@h", NULL, "bad %-escape" },
		{ "socks5://u:Secr3t%00@h", NULL, "%00" },
		{ "socks5://::1:1080", NULL, "in brackets" },
		{ "socks5://[::1", NULL, "not an IPv6 address" },
		{ "socks5://[nothex]:1", NULL, "not an IPv6 address" },
		{ "socks5://[::1]x", NULL, "only \":PORT\"" },
		{ "socks5://a@b:Secr3t@h", NULL, "%40" },
		{ "socks5://h;rm", NULL, "not a valid host" },
		{ "socks5://h%41", NULL, "not a valid host" },
	};
	struct proxy px;

	tap_begin();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err_clear(&e);
		int r = proxy_parse(bad[i].url, bad[i].pw, &px, &e);
		TAP_EXPECT(r < 0 && e.cls == ERR_CONFIG, "%s accepted", bad[i].url);
		TAP_EXPECT(strstr(e.msg, bad[i].want) != NULL, "%s: \"%s\" lacks \"%s\"", bad[i].url,
			   e.msg, bad[i].want);
		TAP_EXPECT(strstr(e.msg, "Secr3t") == NULL, "%s: message shows the password: %s",
			   bad[i].url, e.msg);
		TAP_EXPECT(px.host == NULL && px.user == NULL && px.password == NULL,
			   "%s: fields left allocated", bad[i].url);
	}
	tap_end("bad proxy URLs: each refused (78) with its reason, the password never shown");

	char long256[257], url[700];
	memset(long256, 'x', 256);
	long256[256] = '\0';
	tap_begin();
	snprintf(url, sizeof url, "socks5://%s@h", long256);
	TAP_EXPECT(proxy_parse(url, NULL, &px, &e) < 0 && strstr(e.msg, "255"), "user: %s", e.msg);
	snprintf(url, sizeof url, "socks5h://u:%s@h", long256);
	TAP_EXPECT(proxy_parse(url, NULL, &px, &e) < 0 && strstr(e.msg, "RFC 1929"), "pw: %s", e.msg);
	TAP_EXPECT(proxy_parse("socks5://u@h", long256, &px, &e) < 0, "rc pw: %s", e.msg);
	snprintf(url, sizeof url, "socks4://%s@h", long256);
	TAP_EXPECT(proxy_parse(url, NULL, &px, &e) < 0, "socks4 user id: %s", e.msg);
	snprintf(url, sizeof url, "http://u:%s@h", long256);
	TAP_EXPECT(proxy_parse(url, NULL, &px, &e) == 0, "http has no 255 limit: %s", e.msg);
	proxy_free(&px);
	tap_end("user names and passwords over 255 bytes refused for SOCKS");
}

static void test_describe(void)
{
	struct proxy px;
	char d[200];
	proxy_parse("socks5h://alice:Secr3t@[::1]:1081", NULL, &px, &e);
	proxy_describe(&px, d, sizeof d);
	ok(strcmp(d, "socks5h proxy [::1]:1081") == 0, "describe: %s", d);
	proxy_free(&px);
	ok(px.host == NULL && px.password == NULL, "proxy_free clears the struct");
	proxy_parse("http://proxy.example", NULL, &px, &e);
	proxy_describe(&px, d, sizeof d);
	ok(strcmp(d, "http proxy proxy.example:8080") == 0, "describe: %s", d);
	proxy_free(&px);
}

/* ---- the choice ---- */

static void clear_env(void)
{
	static const char *const vars[] = { "SMTP_PROXY", "smtp_proxy", "ALL_PROXY", "all_proxy",
					    "NO_PROXY", "no_proxy" };
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

/* proxy_choose's answer, and the chosen proxy's host in *host. */
static int choose(const char *setting, const char *pw, const char *exc, const char *target,
		  char *host, size_t hsz, bool *has_pw)
{
	struct proxy px;
	int r = proxy_choose(setting, pw, exc, target, &px, &e);
	if (host)
		snprintf(host, hsz, "%s", r == 1 ? px.host : "");
	if (has_pw)
		*has_pw = r == 1 && px.password;
	if (r == 1)
		proxy_free(&px);
	return r;
}

static void test_choose(void)
{
	char h[100];
	bool pw;

	clear_env();
	tap_begin();
	TAP_EXPECT(choose("", NULL, "", "mail.example", h, sizeof h, NULL) == 0, "no proxy");
	TAP_EXPECT(choose(NULL, NULL, NULL, "mail.example", h, sizeof h, NULL) == 0, "NULLs");
	TAP_EXPECT(choose("socks5://set", NULL, "", "mail.example", h, sizeof h, NULL) == 1 &&
		   strcmp(h, "set") == 0, "setting: %s", h);
	setenv("all_proxy", "socks5://all-lower", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) == 1 && strcmp(h, "all-lower") == 0,
		   "all_proxy: %s", h);
	setenv("ALL_PROXY", "socks5://all-upper", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) == 1 && strcmp(h, "all-upper") == 0,
		   "ALL_PROXY before all_proxy: %s", h);
	setenv("smtp_proxy", "socks5://smtp-lower", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) == 1 && strcmp(h, "smtp-lower") == 0,
		   "smtp_proxy before ALL_PROXY: %s", h);
	setenv("SMTP_PROXY", "socks5://smtp-upper", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) == 1 && strcmp(h, "smtp-upper") == 0,
		   "SMTP_PROXY first: %s", h);
	TAP_EXPECT(choose("socks5://set", NULL, "", "m", h, sizeof h, NULL) == 1 &&
		   strcmp(h, "set") == 0, "the setting before the environment: %s", h);
	setenv("SMTP_PROXY", "", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) == 1 && strcmp(h, "smtp-lower") == 0,
		   "an empty variable is skipped: %s", h);
	setenv("SMTP_PROXY", "socks5://alice@env", 1);
	TAP_EXPECT(choose("", "rcpass", "", "m", h, sizeof h, &pw) == 1 && !pw,
		   "the rc's proxy_password is not given to an environment proxy");
	TAP_EXPECT(choose("socks5://alice@set", "rcpass", "", "m", h, sizeof h, &pw) == 1 && pw,
		   "the rc's proxy_password goes with the setting");
	setenv("SMTP_PROXY", "gopher://x", 1);
	TAP_EXPECT(choose("", NULL, "", "m", h, sizeof h, NULL) < 0 && e.cls == ERR_CONFIG &&
		   strstr(e.msg, "SMTP_PROXY"), "a bad variable is named: %s", e.msg);
	TAP_EXPECT(choose("gopher://x", NULL, "m", "m", h, sizeof h, NULL) < 0,
		   "a bad setting is an error even for an excepted host");
	tap_end("proxy_choose: the setting, then SMTP_PROXY, smtp_proxy, ALL_PROXY, all_proxy");
	clear_env();

	static const struct {
		const char *list, *host;
		int want;
	} exc[] = {
		{ "mail.example", "mail.example", 0 },
		{ "MAIL.Example", "mail.EXAMPLE", 0 },
		{ "mail.example", "mail.example.", 0 },
		{ "mail.example", "other.example", 1 },
		{ "mail.example", "x.mail.example", 1 },
		{ "a.test; mail.example ,b.test", "mail.example", 0 },
		{ "a.test,b.test", "mail.example", 1 },
		{ "*.corp.example", "smtp.corp.example", 0 },
		{ "*.corp.example", "a.b.corp.example", 0 },
		{ "*.corp.example", "corp.example", 1 },
		{ "*.corp.example", "xcorp.example", 1 },
		{ ".lan", "mail.lan", 0 },
		{ ".lan", "lan", 1 },
		{ "*", "anything", 0 },
		{ "127.0.0.1", "127.0.0.1", 0 },
		{ "127.0.0.1", "127.0.0.2", 1 },
		{ "::1", "[::1]", 0 },
		{ "[0::1]", "::1", 0 },
		{ "10.0.0.0/8", "10.1.2.3", 1 },  /* CIDR is NO_PROXY's, not ours */
		{ ";;", "mail.example", 1 },
	};
	tap_begin();
	for (size_t i = 0; i < sizeof exc / sizeof exc[0]; i++) {
		int r = choose("socks5://p", NULL, exc[i].list, exc[i].host, NULL, 0, NULL);
		TAP_EXPECT(r == exc[i].want, "exceptions \"%s\", host %s: %d", exc[i].list,
			   exc[i].host, r);
	}
	tap_end("ProxyExceptionsList: exact names, *.domain and .domain, *, addresses");

	static const struct {
		const char *list, *host;
		int want;
	} no[] = {
		{ "example.com", "example.com", 0 },
		{ "example.com", "mail.example.com", 0 },
		{ ".example.com", "mail.example.com", 0 },
		{ ".example.com", "example.com", 0 },
		{ "example.com", "badexample.com", 1 },
		{ "localhost, example.com", "mail.example.com", 0 },
		{ "a.test b.test", "b.test", 0 },
		{ "*", "x", 0 },
		{ "10.0.0.0/8", "10.1.2.3", 0 },
		{ "10.0.0.0/8", "11.1.2.3", 1 },
		{ "fd00::/8", "fd12::1", 0 },
		{ "fd00::/8", "fe80::1", 1 },
		{ "127.0.0.1", "127.0.0.1", 0 },
		{ "other.test", "mail.example", 1 },
	};
	tap_begin();
	setenv("ALL_PROXY", "socks5://envproxy", 1);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		setenv("NO_PROXY", no[i].list, 1);
		int r = choose("", NULL, "", no[i].host, NULL, 0, NULL);
		TAP_EXPECT(r == no[i].want, "NO_PROXY \"%s\", host %s: %d", no[i].list, no[i].host, r);
	}
	unsetenv("NO_PROXY");
	setenv("no_proxy", "mail.example", 1);
	TAP_EXPECT(choose("", NULL, "", "mail.example", NULL, 0, NULL) == 0, "no_proxy");
	TAP_EXPECT(choose("socks5://set", NULL, "", "mail.example", NULL, 0, NULL) == 1,
		   "NO_PROXY does not apply to the setting");
	TAP_EXPECT(choose("", NULL, "mail.example", "mail.example", NULL, 0, NULL) == 0,
		   "proxy_exceptions applies to an environment proxy too");
	tap_end("NO_PROXY / no_proxy (curl-style) for a proxy from the environment only");
	clear_env();
}

/* ---- SOCKS4 and SOCKS4a ---- */


static void test_socks4(void)
{
	/* 587 = 0x024b */
	static const unsigned char want_ip[] = "\x04\x01\x02\x4b\x7f\x00\x00\x01" "alice\0";
	CASE("socks4://alice@p", "127.0.0.1", 587, "\x00\x5a\x00\x00\x00\x00\x00\x00" "220 hi\r\n",
	     false);
	ok(res.r == 0 && sent_is(want_ip, sizeof want_ip - 1) && strcmp(res.next, "220 hi") == 0,
	   "socks4: exact request with the user id; the greeting stays buffered (%s)", res.msg);

	static const unsigned char want_local[] = "\x04\x01\x00\x19\x7f\x00\x00\x01\0";
	CASE("socks4://p", "localhost", 25, "\x00\x5a\x00\x00\x00\x00\x00\x00", false);
	ok(res.r == 0 && sent_is(want_local, sizeof want_local - 1),
	   "socks4: a name is resolved here to IPv4 (%s)", res.msg);

	CASE("socks4://p", "::1", 25, "", false);
	ok(res.r < 0 && res.cls == ERR_UNAVAILABLE && res.code == SEED_FIREWALL &&
	   msg_has("only IPv6") && res.nsent == 0, "socks4: an IPv6-only target: %s", res.msg);

	CASE("socks4://p", "nosuch.invalid", 25, "", false);
	ok(res.r < 0 && res.cls == ERR_NOHOST && res.code == SEED_FIREWALL && res.nsent == 0 &&
	   msg_has("nosuch.invalid"), "socks4: an unknown host is 68: %s", res.msg);

	static const unsigned char want_4a[] = "\x04\x01\x00\x19\x00\x00\x00\x01" "bob\0"
					       "mail.example\0";
	CASE("socks4a://bob@p", "mail.example", 25, "\x00\x5a\x00\x00\x00\x00\x00\x00", false);
	ok(res.r == 0 && sent_is(want_4a, sizeof want_4a - 1),
	   "socks4a: 0.0.0.1 and the name for the proxy to resolve (%s)", res.msg);

	static const unsigned char want_4a_ip[] = "\x04\x01\x00\x19\x0a\x00\x00\x07\0";
	CASE("socks4a://p", "10.0.0.7", 25, "\x00\x5a\x00\x00\x00\x00\x00\x00", false);
	ok(res.r == 0 && sent_is(want_4a_ip, sizeof want_4a_ip - 1),
	   "socks4a: an IPv4 address is sent as one (%s)", res.msg);

	static const struct {
		unsigned char cd;
		enum err_class cls;
		const char *text;
	} codes[] = {
		{ 91, ERR_TEMP, "rejected or failed (SOCKS4 reply 91)" },
		{ 92, ERR_UNAVAILABLE, "identd (SOCKS4 reply 92)" },
		{ 93, ERR_UNAVAILABLE, "different user id (SOCKS4 reply 93)" },
		{ 42, ERR_PROTOCOL, "unknown SOCKS4 reply code 42" },
	};
	tap_begin();
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		unsigned char rep[8] = { 0, codes[i].cd };
		run_case("socks4://p", "10.0.0.7", 25, rep, 8, false);
		TAP_EXPECT(res.r < 0 && res.cls == codes[i].cls && res.code == SEED_FIREWALL,
			   "code %d: class %d", codes[i].cd, res.cls);
		TAP_EXPECT(msg_has(codes[i].text) && msg_has("socks4 proxy p:1080") &&
			   msg_has("10.0.0.7:25"), "code %d: %s", codes[i].cd, res.msg);
	}
	tap_end("socks4: refusals 91 (75), 92 and 93 (69) and unknown codes (76), named");

	CASE("socks4://p", "10.0.0.7", 25, "\x04\x5a\x00\x00\x00\x00\x00\x00", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("version byte 4"),
	   "socks4: a reply whose version is not 0: %s", res.msg);
	CASE("socks4://p", "10.0.0.7", 25, "\x00\x5a\x00", true);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && res.code == SEED_FIREWALL && msg_has("truncated"),
	   "socks4: a truncated reply is 76: %s", res.msg);
	CASE("socks4://p", "10.0.0.7", 25, "", true);
	ok(res.r < 0 && res.cls == ERR_TEMP && res.code == SEED_FIREWALL &&
	   msg_has("without sending"), "socks4: no reply at all is 75: %s", res.msg);
}

/* ---- SOCKS5 ---- */

#define OK5_V4 "\x05\x00\x00\x01\x0a\x00\x00\x01\x04\x00"

static void test_socks5(void)
{
	static const unsigned char want_h[] = "\x05\x01\x00"
					      "\x05\x01\x00\x03\x0c" "mail.example" "\x02\x4b";
	CASE("socks5h://p", "mail.example", 587, "\x05\x00" OK5_V4 "220 mail.example ESMTP\r\n",
	     false);
	ok(res.r == 0 && sent_is(want_h, sizeof want_h - 1) &&
	   strcmp(res.next, "220 mail.example ESMTP") == 0,
	   "socks5h: no-auth offer, CONNECT by name; the greeting stays buffered (%s)", res.msg);

	static const unsigned char want_v4[] = "\x05\x01\x00" "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19";
	CASE("socks5://p", "localhost", 25, "\x05\x00" OK5_V4, false);
	ok(res.r == 0 && sent_is(want_v4, sizeof want_v4 - 1),
	   "socks5: a name is resolved here, IPv4 preferred (%s)", res.msg);

	static const unsigned char want_v6[] = "\x05\x01\x00" "\x05\x01\x00\x04"
					       "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x19";
	CASE("socks5h://p", "::1", 25, "\x05\x00" OK5_V4, false);
	ok(res.r == 0 && sent_is(want_v6, sizeof want_v6 - 1),
	   "socks5h: an IPv6 address is sent as ATYP 4 (%s)", res.msg);

	CASE("socks5://p", "nosuch.invalid", 25, "\x05\x00", false);
	ok(res.r < 0 && res.cls == ERR_NOHOST && res.code == SEED_FIREWALL && msg_has("socks5h"),
	   "socks5: an unknown host is 68, suggesting socks5h: %s", res.msg);

	static const unsigned char want_auth[] = "\x05\x02\x00\x02"
						 "\x01\x05" "alice" "\x08" "S3cret!x"
						 "\x05\x01\x00\x03\x01" "m" "\x00\x19";
	CASE("socks5h://alice:S3cret%21x@p", "m", 25, "\x05\x02" "\x01\x00" OK5_V4 "220 x\r\n",
	     false);
	ok(res.r == 0 && sent_is(want_auth, sizeof want_auth - 1) && strcmp(res.next, "220 x") == 0,
	   "socks5: RFC 1929 user/password (%s)", res.msg);

	/* the write buffer does not keep the password after the handshake */
	pair_open();
	proxy_says("\x05\x02\x01\x00" OK5_V4, 14, false);
	shake("socks5h://alice:S3cretPW@p", "m", 25, 2000);
	ok(memmem(conn.wbuf, sizeof conn.wbuf, "S3cretPW", 8) == NULL,
	   "socks5: the password is wiped from the write buffer");
	pair_done();

	static const unsigned char want_noauth[] = "\x05\x02\x00\x02" "\x05\x01\x00\x03\x01" "m"
						   "\x00\x19";
	CASE("socks5h://alice:pw@p", "m", 25, "\x05\x00" OK5_V4, false);
	ok(res.r == 0 && sent_is(want_noauth, sizeof want_noauth - 1),
	   "socks5: credentials are not sent when the proxy chooses no authentication");

	CASE("socks5h://alice:pw@p", "m", 25, "\x05\x02" "\x05\x00" OK5_V4, false);
	ok(res.r == 0, "socks5: an authentication reply of version 5 is accepted (%s)", res.msg);

	CASE("socks5h://alice:pw@p", "m", 25, "\x05\x02" "\x01\x01", false);
	ok(res.r < 0 && res.cls == ERR_UNAVAILABLE && res.code == SEED_FIREWALL &&
	   msg_has("refused the proxy user name or password") && !msg_has("pw"),
	   "socks5: refused credentials are 69: %s", res.msg);

	CASE("socks5h://p", "m", 25, "\x05\xff", false);
	ok(res.r < 0 && res.cls == ERR_UNAVAILABLE && msg_has("no proxy user is configured"),
	   "socks5: method 0xff without a user: %s", res.msg);
	CASE("socks5h://u:pw@p", "m", 25, "\x05\xff", false);
	ok(res.r < 0 && res.cls == ERR_UNAVAILABLE && msg_has("none and user/password"),
	   "socks5: method 0xff with a user: %s", res.msg);
	CASE("socks5h://p", "m", 25, "\x05\x02", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("did not offer"),
	   "socks5: a method we did not offer: %s", res.msg);
	CASE("socks5h://p", "m", 25, "\x05\x03", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL, "socks5: method 3 (%s)", res.msg);

	static const struct {
		enum err_class cls;
		const char *text;
	} codes[] = {
		[1] = { ERR_UNAVAILABLE, "general failure (SOCKS5 reply 1)" },
		[2] = { ERR_UNAVAILABLE, "not allowed by the proxy's rules (SOCKS5 reply 2)" },
		[3] = { ERR_TEMP, "network unreachable (SOCKS5 reply 3)" },
		[4] = { ERR_TEMP, "host unreachable (SOCKS5 reply 4)" },
		[5] = { ERR_TEMP, "connection refused (SOCKS5 reply 5)" },
		[6] = { ERR_TEMP, "TTL expired (SOCKS5 reply 6)" },
		[7] = { ERR_UNAVAILABLE, "command not supported (SOCKS5 reply 7)" },
		[8] = { ERR_UNAVAILABLE, "address type not supported (SOCKS5 reply 8)" },
	};
	tap_begin();
	for (int i = 1; i <= 8; i++) {
		unsigned char rep[] = { 5, 0, 5, (unsigned char)i, 0, 1, 0, 0, 0, 0, 0, 0 };
		run_case("socks5://p", "10.0.0.7", 587, rep, sizeof rep, false);
		TAP_EXPECT(res.r < 0 && res.cls == codes[i].cls && res.code == SEED_FIREWALL,
			   "reply %d: class %d", i, res.cls);
		TAP_EXPECT(msg_has(codes[i].text) && msg_has("socks5 proxy p:1080 could not reach "
							     "10.0.0.7:587: "),
			   "reply %d: %s", i, res.msg);
	}
	tap_end("socks5: REP 1-8 each named, with the proxy, the target and the class");

	CASE("socks5h://p", "nosuch.example", 25, "\x05\x00" "\x05\x04\x00\x01", false);
	ok(res.r < 0 && msg_has("the proxy resolves the name itself"),
	   "socks5h: host unreachable for a name hints at the proxy's resolution: %s", res.msg);

	CASE("socks5://p", "10.0.0.7", 25, "\x05\x00" "\x05\x09\x00\x01", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("unknown SOCKS5 reply code 9"),
	   "socks5: an unknown REP: %s", res.msg);
	CASE("socks5://p", "10.0.0.7", 25, "\x04\x00", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && res.code == SEED_FIREWALL &&
	   msg_has("not SOCKS5"), "socks5: a method reply of version 4: %s", res.msg);
	CASE("socks5://p", "10.0.0.7", 25, "\x05\x00" "\x04\x00\x00\x01", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("not SOCKS5"),
	   "socks5: a CONNECT reply of version 4: %s", res.msg);
	CASE("socks5://p", "10.0.0.7", 25, "\x05\x00" "\x05\x00\x00\x09" "220 x\r\n", false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("unknown address type 9"),
	   "socks5: an unknown ATYP: %s", res.msg);

	CASE("socks5://p", "10.0.0.7", 25,
	     "\x05\x00" "\x05\x00\x00\x03\x07" "bnd.foo" "\x00\x19" "220 after name\r\n", false);
	ok(res.r == 0 && strcmp(res.next, "220 after name") == 0,
	   "socks5: a BND.ADDR name is read exactly (%s)", res.msg);
	CASE("socks5://p", "10.0.0.7", 25,
	     "\x05\x00" "\x05\x00\x00\x04" "0123456789abcdef" "\x00\x19" "220 after v6\r\n", false);
	ok(res.r == 0 && strcmp(res.next, "220 after v6") == 0,
	   "socks5: a BND.ADDR IPv6 address is read exactly (%s)", res.msg);

	CASE("socks5://p", "10.0.0.7", 25, "\x05\x00" "\x05\x00\x00\x01\x7f\x00", true);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && res.code == SEED_FIREWALL && msg_has("truncated"),
	   "socks5: a reply cut in BND.ADDR is 76: %s", res.msg);
	CASE("socks5://p", "10.0.0.7", 25, "\x05", true);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("truncated"),
	   "socks5: a method reply cut after one byte is 76: %s", res.msg);
	CASE("socks5://p", "10.0.0.7", 25, "\x05\x00", true);
	ok(res.r < 0 && res.cls == ERR_TEMP && msg_has("without sending its SOCKS5 reply"),
	   "socks5: a proxy that closes instead of answering CONNECT is 75: %s", res.msg);

	int64_t t0 = conn_now_ms();
	memset(&res, 0, sizeof res);
	pair_open();
	res.r = shake("socks5://p", "10.0.0.7", 25, 300);
	int64_t took = conn_now_ms() - t0;
	ok(res.r < 0 && e.cls == ERR_TEMP && e.code == SEED_FIREWALL && strstr(e.msg, "in time") &&
	   took >= 250 && took < 2000, "socks5: a silent proxy times out at the deadline (%lld ms): %s",
	   (long long)took, e.msg);
	pair_done();
}

/* ---- HTTP CONNECT ---- */

static void test_http(void)
{
	static const char want[] = "CONNECT mail.example:587 HTTP/1.1\r\n"
				   "Host: mail.example:587\r\n\r\n";
	CASE("http://p", "mail.example", 587,
	     "HTTP/1.1 200 Connection established\r\nProxy-agent: x\r\n\r\n220 mail.example\r\n",
	     false);
	ok(res.r == 0 && sent_is(want, sizeof want - 1) && strcmp(res.next, "220 mail.example") == 0,
	   "http: exact CONNECT request; the greeting stays buffered (%s)", res.msg);

	static const char want6[] = "CONNECT [::1]:25 HTTP/1.1\r\nHost: [::1]:25\r\n\r\n";
	CASE("http://p", "::1", 25, "HTTP/1.0 200 OK\r\n\r\n", false);
	ok(res.r == 0 && sent_is(want6, sizeof want6 - 1), "http: an IPv6 target in brackets");

	/* "alice:pw" */
	static const char wanta[] = "CONNECT m:25 HTTP/1.1\r\nHost: m:25\r\n"
				    "Proxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n";
	CASE("http://alice:pw@p", "m", 25, "HTTP/1.1 200 OK\r\n\r\n", false);
	ok(res.r == 0 && sent_is(wanta, sizeof wanta - 1), "http: Basic credentials (%s)", res.msg);

	pair_open();
	proxy_says("HTTP/1.1 200 OK\r\n\r\n", 19, false);
	shake("http://alice:pw@p", "m", 25, 2000);
	ok(memmem(conn.wbuf, sizeof conn.wbuf, "YWxpY2U6cHc=", 12) == NULL,
	   "http: the credentials are wiped from the write buffer");
	pair_done();

	CASE("http://p", "m", 25, "HTTP/1.1 204 No Content\r\n\r\n220 x\r\n", false);
	ok(res.r == 0 && strcmp(res.next, "220 x") == 0, "http: any 2xx opens the tunnel");

	static const struct {
		const char *url, *reply;
		enum err_class cls;
		const char *text;
	} refusals[] = {
		{ "http://p", "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", ERR_UNAVAILABLE,
		  "requires proxy credentials: give a user in the proxy URL (HTTP/1.1 407 Proxy "
		  "Authentication Required)" },
		{ "http://u:pw@p", "HTTP/1.1 407 Nope\r\n\r\n", ERR_UNAVAILABLE,
		  "refused the proxy user name or password (HTTP/1.1 407 Nope)" },
		{ "http://u:pw@p", "HTTP/1.0 401 Unauthorized\r\n\r\n", ERR_UNAVAILABLE,
		  "refused the proxy user name or password" },
		{ "http://p", "HTTP/1.1 403 Forbidden\r\n\r\n", ERR_UNAVAILABLE,
		  "does not allow a tunnel to m:25 (HTTP/1.1 403 Forbidden)" },
		{ "http://p", "HTTP/1.1 405 Method Not Allowed\r\n\r\n", ERR_UNAVAILABLE,
		  "refused the tunnel to m:25" },
		{ "http://p", "HTTP/1.1 502 Bad Gateway\r\n\r\n", ERR_TEMP,
		  "could not reach m:25 (HTTP/1.1 502 Bad Gateway)" },
		{ "http://p", "HTTP/1.1 503 Service Unavailable\r\n\r\n", ERR_TEMP, "503" },
		{ "http://p", "HTTP/1.1 504 Gateway Timeout\r\n\r\n", ERR_TEMP, "504" },
		{ "http://p", "HTTP/1.0 500 Unable to connect\r\n\r\n", ERR_TEMP, "500" },
		{ "http://p", "SSH-2.0-OpenSSH_9.2\r\n", ERR_PROTOCOL,
		  "did not answer in HTTP: \"SSH-2.0-OpenSSH_9.2\"" },
		{ "http://p", "\x05\x01garbage\r\n", ERR_PROTOCOL, "\\x05\\x01garbage" },
		{ "http://p", "HTTP/1.1 2000 OK\r\n\r\n", ERR_PROTOCOL, "did not answer in HTTP" },
		{ "http://p", "HTTP/1.1 20 OK\r\n\r\n", ERR_PROTOCOL, "did not answer in HTTP" },
		{ "http://p", "HTTP/1.1 600 What\r\n\r\n", ERR_PROTOCOL, "did not answer in HTTP" },
		{ "http://p", "HTTP/1.1 100 Continue\r\n\r\n", ERR_UNAVAILABLE, "100 Continue" },
		{ "http://p", "HTTP/1.1 200 OK\r\nX: y", ERR_PROTOCOL, "truncated" },
		{ "http://p", "HTTP/1.1 20", ERR_PROTOCOL, "truncated" },
		{ "http://p", "", ERR_TEMP, "without sending its HTTP status line" },
	};
	tap_begin();
	for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
		run_case(refusals[i].url, "m", 25, refusals[i].reply, strlen(refusals[i].reply), true);
		TAP_EXPECT(res.r < 0 && res.cls == refusals[i].cls && res.code == SEED_FIREWALL,
			   "case %zu: class %d, code %d: %s", i, res.cls, res.code, res.msg);
		TAP_EXPECT(msg_has(refusals[i].text) && msg_has("http proxy p:8080"),
			   "case %zu: \"%s\" lacks \"%s\"", i, res.msg, refusals[i].text);
	}
	tap_end("http: 407/401, 403, other 4xx (69), 5xx (75), non-HTTP and truncated (76), named");

	/* a status line from a hostile proxy: control characters shown,
	 * length bounded */
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "HTTP/1.1 403 \x1b[31mred");
	for (int i = 0; i < 500; i++)
		sb_addc(&sb, 'z');
	sb_adds(&sb, "\r\n\r\n");
	run_case("http://p", "m", 25, sb.s, sb.len, true);
	ok(res.r < 0 && !strchr(res.msg, '\x1b') && msg_has("\\x1b[31mred") && strlen(res.msg) < 400,
	   "http: the status line in the message is sanitised and bounded: %s", res.msg);

	sb_reset(&sb);
	sb_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 100; i++)
		sb_addf(&sb, "X-%d: y\r\n", i);
	sb_adds(&sb, "\r\n220 x\r\n");
	run_case("http://p", "m", 25, sb.s, sb.len, false);
	ok(res.r == 0 && strcmp(res.next, "220 x") == 0, "http: 100 header lines are accepted (%s)",
	   res.msg);

	sb_reset(&sb);
	sb_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 101; i++)
		sb_addf(&sb, "X-%d: y\r\n", i);
	sb_adds(&sb, "\r\n");
	run_case("http://p", "m", 25, sb.s, sb.len, false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && res.code == SEED_FIREWALL &&
	   msg_has("more than 100 header lines"), "http: 101 header lines are refused: %s", res.msg);

	sb_reset(&sb);
	sb_adds(&sb, "HTTP/1.1 200 OK\r\nX-Big: ");
	for (int i = 0; i < 20000; i++)
		sb_addc(&sb, 'x');
	sb_adds(&sb, "\r\n\r\n");
	run_case("http://p", "m", 25, sb.s, sb.len, false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("overlong HTTP header (over 8191 bytes)"),
	   "http: a header line over 8 KiB is refused: %s", res.msg);

	sb_reset(&sb);
	sb_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 40; i++) {
		sb_addf(&sb, "X-%d: ", i);
		for (int j = 0; j < 1000; j++)
			sb_addc(&sb, 'x');
		sb_adds(&sb, "\r\n");
	}
	sb_adds(&sb, "\r\n");
	run_case("http://p", "m", 25, sb.s, sb.len, false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("bytes of header"),
	   "http: more than 32 KiB of header is refused: %s", res.msg);

	sb_reset(&sb);
	for (int i = 0; i < 20000; i++)
		sb_addc(&sb, 'H');
	run_case("http://p", "m", 25, sb.s, sb.len, false);
	ok(res.r < 0 && res.cls == ERR_PROTOCOL && msg_has("overlong HTTP status line"),
	   "http: an endless status line is refused: %s", res.msg);
	sb_free(&sb);
}

static void test_target_check(void)
{
	CASE("http://p", "m x\r\nEvil: 1", 25, "", false);
	ok(res.r < 0 && res.cls == ERR_CONFIG && res.nsent == 0,
	   "a target name that would change the request is refused before sending: %s", res.msg);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	test_parse_good();
	test_parse_bad();
	test_describe();
	test_choose();
	test_socks4();
	test_socks5();
	test_http();
	test_target_check();
	return tap_done();
}

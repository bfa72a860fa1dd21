/* test_tls.c - the TLS transport against gnutls-serv with the certificates
 * of tests/certs.bash.
 *
 * Usage: test_tls CERTDIR [GNUTLS-SERV]   (or TLS_CERT_DIR, GNUTLS_SERV)
 *
 * Every case starts its own gnutls-serv on a free port and stops it by
 * PID; a watchdog and an exit handler make sure none survives a crash. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "conn_tls.h"
#include "log.h"
#include "tap.h"
#include "util.h"

static const char *dir;
static const char *serv_path;
static pid_t server_pid = -1;
static int port;
static struct conn conn;        /* large: keep it off the stack */
static struct tls_info info;
static struct err e;
static char *trace_buf;
static size_t trace_len;
static FILE *trace;

/* DIR/name; the strings live until exit, as option structs keep them. */
static const char *path(const char *name)
{
	static char buf[32][1024];
	static int n;
	for (int i = 0; i < n; i++)
		if (strcmp(strrchr(buf[i], '/') + 1, name) == 0)
			return buf[i];
	if (n == 32)
		return "/nonexistent";
	snprintf(buf[n], sizeof buf[0], "%s/%s", dir, name);
	return buf[n++];
}

static void stop_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = -1;
}

static void on_alarm(int sig)
{
	(void)sig;
	if (server_pid > 0)
		kill(server_pid, SIGKILL);
	static const char msg[] = "Bail out! test_tls timed out\n";
	if (write(1, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(2);
}

static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
		p = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

static bool probe(int p)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool up = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	if (fd >= 0)
		close(fd);
	return up;
}

/* Start gnutls-serv with certificate NAME.pem/NAME.key and extra
 * arguments (NULL-terminated); true once it accepts connections. */
static bool start_server(const char *name, ...)
{
	const char *argv[32];
	char portarg[32], certarg[1100], keyarg[1100];
	int argc = 0;
	va_list ap;

	stop_server();
	conn_tls_forget_sessions();
	for (int attempt = 0; attempt < 3; attempt++) {
		port = free_port();
		snprintf(portarg, sizeof portarg, "--port=%d", port);
		snprintf(certarg, sizeof certarg, "--x509certfile=%s/%s.pem", dir, name);
		snprintf(keyarg, sizeof keyarg, "--x509keyfile=%s/%s.key", dir, name);
		argc = 0;
		argv[argc++] = serv_path;
		argv[argc++] = "--echo";
		argv[argc++] = "--quiet";
		argv[argc++] = portarg;
		argv[argc++] = certarg;
		argv[argc++] = keyarg;
		va_start(ap, name);
		for (const char *a; argc < 30 && (a = va_arg(ap, const char *));)
			argv[argc++] = a;
		va_end(ap);
		argv[argc] = NULL;

		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0)
			return false;
		if (pid == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			if (!getenv("TEST_TLS_DEBUG"))
				dup2(null, 2);
			unsetenv("SSLKEYLOGFILE");
			execvp(serv_path, (char *const *)argv);
			_exit(127);
		}
		server_pid = pid;
		for (int i = 0; i < 500; i++) {
			if (waitpid(pid, NULL, WNOHANG) == pid) {
				server_pid = -1;
				break;  /* port taken meanwhile, or bad arguments */
			}
			if (probe(port))
				return true;
			usleep(10000);
		}
		stop_server();
	}
	return false;
}

/* Connect to the running server and start TLS. */
static int tls_connect(const char *host, struct tls_opts *o)
{
	struct tcp_opts to = { .host = host, .port = port, .connect_timeout_s = 5, .timeout_s = 10 };
	err_clear(&e);
	if (conn_tcp_open(&conn, &to, &e) < 0)
		return -2;
	if (conn_tls_start(&conn, o, &info, &e) < 0) {
		conn_close(&conn);
		return -1;
	}
	return 0;
}

/* One line through the echo server. */
static bool echo(const char *text)
{
	const char *line;
	size_t len;
	bool trunc;
	if (conn_write(&conn, text, strlen(text), &e) < 0 || conn_write(&conn, "\r\n", 2, &e) < 0 ||
	    conn_flush(&conn, &e) < 0)
		return false;
	if (conn_read_line(&conn, &line, &len, &trunc, conn_deadline(&conn), &e) < 0)
		return false;
	return len == strlen(text) && memcmp(line, text, len) == 0;
}

/* The SHA-256 fingerprint of a PEM certificate, "AA:BB:..." */
static void fingerprint(const char *name, char *out, size_t outsz, bool colons)
{
	gnutls_datum_t pem = { NULL, 0 };
	gnutls_x509_crt_t crt;
	unsigned char md[32];
	size_t mdlen = sizeof md, o = 0;

	out[0] = '\0';
	if (gnutls_load_file(path(name), &pem) < 0)
		return;
	if (gnutls_x509_crt_init(&crt) == 0) {
		if (gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) == 0 &&
		    gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, md, &mdlen) == 0) {
			for (size_t i = 0; i < mdlen && o + 4 < outsz; i++)
				o += (size_t)snprintf(out + o, outsz - o, colons ? (i ? ":%02X" : "%02X") : "%02x",
						      md[i]);
		}
		gnutls_x509_crt_deinit(crt);
	}
	gnutls_free(pem.data);
}

static bool traced(const char *what)
{
	fflush(trace);
	return trace_buf && strstr(trace_buf, what) != NULL;
}

static void t_good(void)
{
	struct tls_opts o = { .host = "localhost", .ca_file = path("ca.pem") };
	char fp[100];
	int r;

	fingerprint("good.pem", fp, sizeof fp, true);
	if (!start_server("good", NULL)) {
		ok(0, "gnutls-serv with good.pem starts");
		return;
	}
	r = tls_connect("localhost", &o);
	ok(r == 0, "good certificate for localhost accepted (%s)", e.msg);
	ok(r == 0 && info.verified && strcmp(info.verdict, "verified") == 0, "info says verified: %s",
	   info.verdict);
	ok(r == 0 && info.nchain >= 1 && strcmp(info.chain[0].sha256, fp) == 0 &&
	   strstr(info.chain[0].subject, "CN=localhost") &&
	   strstr(info.chain[0].issuer, "smtpsend test CA") &&
	   strstr(info.chain[0].sans, "DNS:localhost") && strstr(info.chain[0].sans, "IP:127.0.0.1") &&
	   strstr(info.chain[0].not_after, "UTC") && info.chain[0].key_alg[0] &&
	   info.chain[0].sig_alg[0], "certificate details: %s / %s / %s / %s / %s", info.chain[0].subject,
	   info.chain[0].sans, info.chain[0].not_after, info.chain[0].key_alg, info.chain[0].sig_alg);
	ok(r == 0 && strncmp(info.version, "TLS1.", 5) == 0 && info.cipher[0], "version %s, cipher %s",
	   info.version, info.cipher);
	ok(traced("*** TLS handshake with localhost") && traced("*** certificate verified: subject"),
	   "handshake and verdict traced");
	if (r == 0) {
		ok(echo("EHLO client.test"), "a line goes through and comes back");
		/* several records' worth, in lines the echo server sends back one by one */
		char big[4001];
		memset(big, 'x', sizeof big - 1);
		big[sizeof big - 1] = '\0';
		bool all = true;
		for (int i = 0; i < 10 && all; i++) {
			big[0] = (char)('a' + i);
			all = echo(big);
		}
		ok(all, "40 KB echoed intact (%s)", e.msg);
		conn_close(&conn);
	}

	r = tls_connect("127.0.0.1", &o);
	ok(r == 0 && info.verified, "connecting by IP address 127.0.0.1: IP SAN accepted (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);

	struct tls_opts sys = { .host = "localhost" };
	conn_tls_forget_sessions();
	r = tls_connect("localhost", &sys);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && strstr(e.msg, "unknown issuer") && strstr(e.msg, fp),
	   "system trust store refuses the test CA: %s", e.msg);

	struct tls_opts wrongpin = o;
	char other[100];
	fingerprint("selfsigned.pem", other, sizeof other, true);
	wrongpin.fingerprint = other;
	r = tls_connect("localhost", &wrongpin);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && strstr(e.msg, fp) && strstr(e.msg, other),
	   "a valid certificate that is not the pinned one is refused, naming both: %s", e.msg);

	struct tls_opts badpin = o;
	badpin.fingerprint = "SHA256:12:34";
	r = tls_connect("localhost", &badpin);
	ok(r == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "fingerprint"), "bad pin syntax: %s", e.msg);

	struct tls_opts badprio = o;
	badprio.priority = "NORMAL:+NOSUCHTHING";
	r = tls_connect("localhost", &badprio);
	ok(r == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "priority"), "bad priority string: %s", e.msg);

	struct tls_opts badproto = o;
	badproto.protocols = "TLS1.9";
	r = tls_connect("localhost", &badproto);
	ok(r == -1 && e.cls == ERR_CONFIG, "bad protocol list: %s", e.msg);

	struct tls_opts noca = o;
	noca.ca_file = path("no-such-ca.pem");
	r = tls_connect("localhost", &noca);
	ok(r == -1 && e.cls == ERR_CONFIG && e.code == 271, "missing CA file: %s", e.msg);

	struct tls_opts v12 = o;
	v12.protocols = "tls1.2";
	r = tls_connect("localhost", &v12);
	ok(r == 0 && strcmp(info.version, "TLS1.2") == 0, "protocols tls1.2 gives TLS1.2 (%s %s)",
	   info.version, e.msg);
	if (r == 0) {
		ok(echo("over TLS 1.2"), "echo over TLS 1.2");
		conn_close(&conn);
	}
	/* GnuTLS servers fail a TLS 1.3 handshake that offers a TLS 1.2
	 * session: sessions are kept per protocol setting */
	r = tls_connect("localhost", &o);
	ok(r == 0 && !info.resumed && strcmp(info.version, "TLS1.3") == 0,
	   "a session made with other protocol settings is not offered (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);

	/* key log */
	char klog[] = "/tmp/test_tls_keylog.XXXXXX";
	int kfd = mkstemp(klog);
	struct tls_opts kl = o;
	kl.keylog_file = klog;
	r = tls_connect("localhost", &kl);
	if (r == 0)
		conn_close(&conn);
	char kbuf[4096] = "";
	ssize_t kn = kfd >= 0 ? read(kfd, kbuf, sizeof kbuf - 1) : -1;
	if (kn > 0)
		kbuf[kn] = '\0';
	ok(r == 0 && strstr(kbuf, "_TRAFFIC_SECRET") != NULL, "key log written (%s)", e.msg);
	if (kfd >= 0) {
		close(kfd);
		unlink(klog);
	}

	/* IPv6, when this machine has it */
	struct tls_opts v6 = o;
	v6.host = "::1";
	struct tcp_opts to = { .host = "::1", .port = port, .connect_timeout_s = 2, .timeout_s = 10 };
	err_clear(&e);
	if (conn_tcp_open(&conn, &to, &e) == 0) {
		r = conn_tls_start(&conn, &v6, &info, &e);
		ok(r == 0 && info.verified, "connecting by IPv6 address ::1: IP SAN accepted (%s)", e.msg);
		conn_close(&conn);
	}

	/* session resumption, and the check of a resumed session */
	conn_tls_forget_sessions();
	r = tls_connect("localhost", &o);
	bool first = r == 0 && !info.resumed;
	if (r == 0) {
		echo("first");  /* a TLS 1.3 ticket arrives with the data */
		conn_close(&conn);
	}
	r = tls_connect("localhost", &o);
	ok(first && r == 0 && info.resumed && info.verified, "second connection resumes the session");
	ok(!(r == 0) || traced("(session resumed)"), "resumption traced");
	if (r == 0) {
		ok(echo("resumed"), "echo over the resumed session");
		conn_close(&conn);
	}
	struct tls_opts nr = o;
	nr.no_resume = true;
	r = tls_connect("localhost", &nr);
	ok(r == 0 && !info.resumed, "no_resume: a full handshake");
	if (r == 0)
		conn_close(&conn);
	r = tls_connect("localhost", &sys);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && info.resumed && strstr(e.msg, "unknown issuer"),
	   "a resumed session is verified all the same: %s", e.msg);
	conn_tls_forget_sessions();
	stop_server();
}

struct bad_case {
	const char *cert;
	const char *host;
	const char *reason;
	int code;
};

static const struct bad_case bad_cases[] = {
	{ "expired", "localhost", "expired on 2021-01-01", 280 },
	{ "future", "localhost", "not yet valid (valid from 2090-01-01", 280 },
	{ "wronghost", "localhost", "certificate is for other.example, not localhost", 280 },
	{ "wronghost", "127.0.0.1", "certificate is for other.example, not 127.0.0.1", 280 },
	{ "cnonly", "localhost", "certificate is for other.example, not localhost", 280 },
	{ "selfsigned", "localhost", "self-signed", 275 },
	{ "unknownca", "localhost", "unknown issuer", 275 },
	{ "clientonly", "localhost", "wrong key purpose", 280 },
};

static void t_bad(void)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *b = &bad_cases[i];
		struct tls_opts o = { .host = b->host, .ca_file = path("ca.pem") };
		char pem[64], fp[100];
		snprintf(pem, sizeof pem, "%s.pem", b->cert);
		fingerprint(pem, fp, sizeof fp, true);
		if (!start_server(b->cert, NULL)) {
			ok(0, "gnutls-serv with %s starts", pem);
			continue;
		}
		int r = tls_connect(b->host, &o);
		ok(r == -1 && e.cls == ERR_UNAVAILABLE && e.code == b->code && strstr(e.msg, b->reason) &&
		   strstr(e.msg, fp) && strstr(e.msg, "subject CN=") && strstr(e.msg, "issuer CN="),
		   "%s via %s refused: %s", b->cert, b->host, e.msg);
		ok(r == -1 && !info.verified && info.nchain >= 1 && strcmp(info.chain[0].sha256, fp) == 0 &&
		   strstr(info.verdict, b->reason), "%s: info filled on failure: %s", b->cert, info.verdict);

		struct tls_opts inspect = o;
		inspect.no_verify = true;
		r = tls_connect(b->host, &inspect);
		ok(r == 0 && !info.verified && strstr(info.verdict, b->reason),
		   "%s: no_verify completes and reports \"%s\"", b->cert, info.verdict);
		if (r == 0)
			conn_close(&conn);
		if (strcmp(b->cert, "selfsigned") == 0) {
			char bare[100];
			struct tls_opts pin = o;
			char pinned[120];
			snprintf(pinned, sizeof pinned, "SHA256:%s", fp);
			pin.fingerprint = pinned;
			r = tls_connect("localhost", &pin);
			ok(r == 0 && info.verified && strstr(info.verdict, "pinned"),
			   "self-signed accepted with its pin (%s)", e.msg);
			if (r == 0) {
				ok(echo("pinned"), "echo over the pinned session");
				conn_close(&conn);
			}
			fingerprint(pem, bare, sizeof bare, false);
			pin.fingerprint = bare;
			r = tls_connect("localhost", &pin);
			ok(r == 0, "pin as lowercase hex without colons (%s)", e.msg);
			if (r == 0)
				conn_close(&conn);
			char wrong[100];
			fingerprint("good.pem", wrong, sizeof wrong, true);
			pin.fingerprint = wrong;
			r = tls_connect("localhost", &pin);
			ok(r == -1 && e.cls == ERR_UNAVAILABLE && strstr(e.msg, wrong) && strstr(e.msg, fp),
			   "self-signed refused with a wrong pin: %s", e.msg);
		}
		if (strcmp(b->cert, "wronghost") == 0 && strcmp(b->host, "127.0.0.1") == 0) {
			struct tls_opts vh = o;
			vh.verify_host = "other.example";
			r = tls_connect("127.0.0.1", &vh);
			ok(r == 0 && info.verified, "verify_host other.example accepts it (%s)", e.msg);
			if (r == 0)
				conn_close(&conn);
		}
	}
	stop_server();
}

static void t_client_cert(void)
{
	struct tls_opts o = { .host = "localhost", .ca_file = path("ca.pem") };
	char cafile[1100];
	int r;

	snprintf(cafile, sizeof cafile, "--x509cafile=%s/ca.pem", dir);
	if (!start_server("good", "--require-client-cert", "--verify-client-cert", cafile, NULL)) {
		ok(0, "gnutls-serv requiring client certificates starts");
		return;
	}
	/* Under TLS 1.3 the server judges the client after the client has
	 * finished its handshake, so the refusal may surface on first read. */
	r = tls_connect("localhost", &o);
	ok(r == -1 || !echo("no cert"), "without a client certificate: refused (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);
	struct tls_opts o12 = o;
	o12.protocols = "TLS1.2";
	r = tls_connect("localhost", &o12);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && e.code == 276,
	   "without a client certificate under TLS 1.2: handshake fails: %s", e.msg);

	struct tls_opts pem = o;
	pem.cert_file = path("client.pem");
	pem.key_file = path("client.key");
	r = tls_connect("localhost", &pem);
	ok(r == 0 && echo("with cert"), "client.pem + client.key accepted (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);

	struct tls_opts p12 = o;
	p12.p12_file = path("client.p12");
	p12.p12_password = "p12pass";
	r = tls_connect("localhost", &p12);
	ok(r == 0 && echo("with p12"), "client.p12 accepted (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);
	p12.p12_password = "wrong";
	r = tls_connect("localhost", &p12);
	ok(r == -1 && e.cls == ERR_CONFIG && e.code == 273 && strstr(e.msg, "password"),
	   "wrong PKCS#12 password: %s", e.msg);

	/* a private key readable by others is refused */
	char key[] = "/tmp/test_tls_key.XXXXXX";
	int fd = mkstemp(key);
	gnutls_datum_t k = { NULL, 0 };
	bool made = fd >= 0 && gnutls_load_file(path("client.key"), &k) == 0 &&
		    write_all(fd, k.data, k.size) == 0 && fchmod(fd, 0644) == 0;
	gnutls_free(k.data);
	if (fd >= 0)
		close(fd);
	struct tls_opts loose = pem;
	loose.key_file = key;
	r = tls_connect("localhost", &loose);
	ok(made && r == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "chmod 600") && strstr(e.msg, key),
	   "key file mode 0644 refused: %s", e.msg);
	err_clear(&e);
	ok(conn_tls_check_opts(&loose, &e) == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "chmod 600"),
	   "conn_tls_check_opts finds it without connecting");
	err_clear(&e);
	ok(conn_tls_check_opts(&pem, &e) == 0, "conn_tls_check_opts accepts good options (%s)", e.msg);
	chmod(key, 0600);
	r = tls_connect("localhost", &loose);
	ok(r == 0, "the same key with mode 0600 works (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);
	unlink(key);

	struct tls_opts nocert = o;
	nocert.cert_file = path("no-such.pem");
	nocert.key_file = path("client.key");
	r = tls_connect("localhost", &nocert);
	ok(r == -1 && e.cls == ERR_CONFIG && e.code == 281, "missing client certificate: %s", e.msg);
	struct tls_opts mismatch = o;
	mismatch.cert_file = path("client.pem");
	mismatch.key_file = path("good.key");
	r = tls_connect("localhost", &mismatch);
	ok(r == -1 && e.cls == ERR_CONFIG, "key of another certificate: %s", e.msg);
	stop_server();
}

static void t_protocols(void)
{
	struct tls_opts o = { .host = "localhost", .ca_file = path("ca.pem"), .protocols = "TLS1.3" };
	int r;

	if (!start_server("good", "--priority=NORMAL:-VERS-TLS1.3", NULL)) {
		ok(0, "gnutls-serv limited to TLS 1.2 starts");
		return;
	}
	r = tls_connect("localhost", &o);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && e.code == 276, "TLS1.3 only vs a TLS 1.2 server: %s",
	   e.msg);
	o.protocols = "12288";
	r = tls_connect("localhost", &o);
	ok(r == -1 && e.cls == ERR_UNAVAILABLE && e.code == 276, "mask 12288 (TLS 1.3) likewise");
	o.protocols = "TLS1.2+";
	r = tls_connect("localhost", &o);
	ok(r == 0 && strcmp(info.version, "TLS1.2") == 0, "TLS1.2+ negotiates TLS1.2 (%s)", e.msg);
	if (r == 0)
		conn_close(&conn);
	stop_server();
}

/* A listener that accepts and then says nothing, or hangs up at once. */
static void t_silent_and_reset(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof sin;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0) {
		ok(0, "listener");
		return;
	}
	struct tcp_opts to = { .host = "127.0.0.1", .port = ntohs(sin.sin_port), .timeout_s = 1 };
	struct tls_opts o = { .host = "localhost", .ca_file = path("ca.pem") };

	int r = conn_tcp_open(&conn, &to, &e);
	int afd = accept(lfd, NULL, NULL);
	int64_t t0 = conn_now_ms();
	if (r == 0) {
		r = conn_tls_start(&conn, &o, &info, &e);
		conn_close(&conn);
	}
	int64_t took = conn_now_ms() - t0;
	ok(r == -1 && e.cls == ERR_TEMP && e.code == SEED_TIMEOUT && took >= 900 && took < 3000,
	   "silent server: handshake times out in %lld ms: %s", (long long)took, e.msg);
	if (afd >= 0)
		close(afd);

	r = conn_tcp_open(&conn, &to, &e);
	afd = accept(lfd, NULL, NULL);
	if (afd >= 0)
		close(afd);
	if (r == 0) {
		r = conn_tls_start(&conn, &o, &info, &e);
		conn_close(&conn);
	}
	ok(r == -1 && e.cls == ERR_TEMP, "server hanging up: temporary failure: %s", e.msg);

	/* plain text already buffered before the handshake */
	r = conn_tcp_open(&conn, &to, &e);
	afd = accept(lfd, NULL, NULL);
	if (r == 0) {
		memcpy(conn.rbuf, "250 injected\r\n", 14);
		conn.rend = 14;
		r = conn_tls_start(&conn, &o, &info, &e);
		conn_close(&conn);
	}
	ok(r == -1 && e.cls == ERR_PROTOCOL, "bytes before the handshake refused: %s", e.msg);
	if (afd >= 0)
		close(afd);
	close(lfd);
}

static int no_keylog(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
	(void)s, (void)label, (void)secret;
	return 0;
}

/* A TLS server in a child process that sends one line and drops the
 * connection without close_notify, as many SMTP servers do after QUIT. */
static void t_unclean_close(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof sin;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0) {
		ok(0, "listener");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		gnutls_certificate_credentials_t cred;
		gnutls_session_t s;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0 || gnutls_certificate_allocate_credentials(&cred) < 0 ||
		    gnutls_certificate_set_x509_key_file(cred, path("good.pem"), path("good.key"),
							 GNUTLS_X509_FMT_PEM) < 0 ||
		    gnutls_init(&s, GNUTLS_SERVER) < 0)
			_exit(1);
		gnutls_set_default_priority(s);
		gnutls_session_set_keylog_function(s, no_keylog);
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
		gnutls_transport_set_int(s, fd);
		int r;
		do
			r = gnutls_handshake(s);
		while (r < 0 && !gnutls_error_is_fatal(r));
		if (r == 0)
			gnutls_record_send(s, "220 hello\r\n", 11);
		close(fd);
		_exit(0);
	}
	struct tcp_opts to = { .host = "localhost", .port = ntohs(sin.sin_port), .timeout_s = 5 };
	struct tls_opts o = { .host = "localhost", .ca_file = path("ca.pem") };
	const char *line = NULL;
	size_t len = 0;
	bool trunc;
	int r = conn_tcp_open(&conn, &to, &e);
	if (r == 0)
		r = conn_tls_start(&conn, &o, &info, &e);
	bool got = r == 0 && conn_read_line(&conn, &line, &len, &trunc, conn_deadline(&conn), &e) == 0 &&
		   len == 9 && memcmp(line, "220 hello", 9) == 0;
	ok(got, "line read before the unclean close (%s)", e.msg);
	if (r == 0) {
		r = conn_read_line(&conn, &line, &len, &trunc, conn_deadline(&conn), &e);
		ok(r == -1 && e.cls == ERR_TEMP && e.code == 1120 && conn.eof,
		   "close without close_notify reads as end of stream: %s", e.msg);
		conn_close(&conn);
	}
	close(lfd);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void cleanup(void)
{
	stop_server();
	conn_tls_forget_sessions();
	if (trace)
		fclose(trace);
	free(trace_buf);
}

int main(int argc, char **argv)
{
	struct stat st;
	char probe_path[1100];

	dir = argc > 1 ? argv[1] : getenv("TLS_CERT_DIR");
	serv_path = argc > 2 ? argv[2] : getenv("GNUTLS_SERV");
	if (!serv_path || !*serv_path)
		serv_path = "gnutls-serv";
	if (!dir) {
		printf("Bail out! usage: test_tls CERTDIR [GNUTLS-SERV]\n");
		return 2;
	}
	snprintf(probe_path, sizeof probe_path, "%s/client.p12", dir);
	if (stat(probe_path, &st) < 0) {
		printf("Bail out! no test certificates in %s (tests/certs.bash makes them)\n", dir);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(120);
	atexit(cleanup);
	/* GnuTLS would write session secrets there on its own */
	char envlog[128];
	snprintf(envlog, sizeof envlog, "/tmp/test_tls_envkeylog.%ld", (long)getpid());
	setenv("SSLKEYLOGFILE", envlog, 1);
	trace = open_memstream(&trace_buf, &trace_len);
	log_setup(true, true, trace);

	t_good();
	t_bad();
	t_client_cert();
	t_protocols();
	t_silent_and_reset();
	t_unclean_close();
	stop_server();
	ok(stat(envlog, &st) < 0, "SSLKEYLOGFILE in the environment alone writes nothing");
	unlink(envlog);
	return tap_done();
}

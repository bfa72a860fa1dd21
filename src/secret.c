/* secret.c - the password: configured, from a command, the environment,
 * ~/.netrc or the terminal. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#define MAX_SECRET 65536        /* an OAuth token can be a few KiB, never this */
#define MAX_NETRC (1024 * 1024)

static int command_timeout_ms = 30000;

void secret_set_command_timeout(int ms)
{
	command_timeout_ms = ms > 0 ? ms : 30000;
}

void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void sb_wipe_free(struct strbuf *sb)
{
	if (sb->s)
		explicit_bzero(sb->s, sb->cap);
	sb_free(sb);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- password_command ---- */

static int spawn_command(const char *cmd, int outfd, pid_t *pid, struct err *e)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outfd, 1);
	/* The command gets a normal process: no signal blocked, and
	 * SIGPIPE and friends back to their defaults even if we ignore
	 * them, or "cmd | head -1" would misbehave. */
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		err_set(e, ERR_OS, 0, "cannot run password_command: /bin/sh: %s", strerror(rc));
		return -1;
	}
	return 0;
}

/* Wait for pid until the deadline; -1 on timeout (the child is killed). */
static int reap(pid_t pid, long long deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR) {
			int saved = errno;
			kill(pid, SIGKILL);
			errno = saved;
			return -2;
		}
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static int run_command(const char *cmd, char **out, struct err *e)
{
	struct strbuf line = STRBUF_INIT;
	bool got_nl = false, any = false, timed_out = false;
	long long deadline = now_ms() + command_timeout_ms;
	int pfd[2], status = 0, rv = -1;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err_set(e, ERR_OS, 0, "cannot run password_command: pipe: %s", strerror(errno));
		return -1;
	}
	if (spawn_command(cmd, pfd[1], &pid, e) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);

	/* Read to the end, so the command never dies of SIGPIPE for
	 * printing more than one line; only the first line is kept. */
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int n = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;       /* the deadline check above ends it */
		char buf[4096];
		ssize_t r = read(pfd[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		any = true;
		if (!got_nl) {
			char *nl = memchr(buf, '\n', (size_t)r);
			size_t keep = nl ? (size_t)(nl - buf) : (size_t)r;
			if (line.len + keep <= MAX_SECRET)
				sb_add(&line, buf, keep);
			else
				line.len = MAX_SECRET + 1;      /* remember: too long */
			got_nl = nl != NULL;
		}
		explicit_bzero(buf, sizeof buf);
	}
	close(pfd[0]);

	int w = timed_out ? reap(pid, 0, &status) : reap(pid, deadline, &status);
	if (timed_out || w == -1) {
		err_set(e, ERR_CONFIG, 0, "password_command did not finish within %d s",
			(command_timeout_ms + 999) / 1000);
	} else if (w < 0) {
		err_set(e, ERR_OS, 0, "password_command: waitpid: %s", strerror(errno));
	} else if (WIFSIGNALED(status)) {
		err_set(e, ERR_CONFIG, 0, "password_command was killed by signal %d (%s)",
			WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (WEXITSTATUS(status) != 0) {
		err_set(e, ERR_CONFIG, 0, "password_command exited %d", WEXITSTATUS(status));
	} else if (!any) {
		err_set(e, ERR_CONFIG, 0, "password_command printed nothing");
	} else if (line.len > MAX_SECRET) {
		err_set(e, ERR_CONFIG, 0, "password_command printed a first line longer than %d "
			"bytes", MAX_SECRET);
	} else {
		if (line.len && line.s[line.len - 1] == '\r')
			line.len--;
		if (line.len == 0) {
			err_set(e, ERR_CONFIG, 0, "password_command printed an empty first line");
		} else if (memchr(line.s, '\0', line.len)) {
			err_set(e, ERR_CONFIG, 0, "password_command printed a NUL byte");
		} else {
			*out = xstrndup(line.s, line.len);
			rv = 0;
		}
	}
	if (line.len > MAX_SECRET)
		line.len = 0;
	sb_wipe_free(&line);
	return rv;
}

/* ---- ~/.netrc ---- */

struct netrc_lex {
	const char *p, *end;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The next token into tok; false at the end.  `keyword` allows a "#"
 * comment: only where a keyword is expected, as a password may well begin
 * with "#". */
static bool netrc_token(struct netrc_lex *lx, struct strbuf *tok, bool keyword)
{
	sb_reset(tok);
	for (;;) {
		while (lx->p < lx->end && is_space(*lx->p))
			lx->p++;
		if (lx->p >= lx->end)
			return false;
		if (keyword && *lx->p == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
			continue;
		}
		break;
	}
	if (*lx->p == '"') {
		lx->p++;
		while (lx->p < lx->end && *lx->p != '"') {
			if (*lx->p == '\\' && lx->p + 1 < lx->end)
				lx->p++;
			sb_addc(tok, *lx->p++);
		}
		if (lx->p < lx->end)
			lx->p++;
	} else {
		while (lx->p < lx->end && !is_space(*lx->p))
			sb_addc(tok, *lx->p++);
	}
	return true;
}

/* A macdef body runs to the first empty line. */
static void netrc_skip_macdef(struct netrc_lex *lx)
{
	while (lx->p < lx->end && *lx->p != '\n')
		lx->p++;        /* the rest of the macdef line */
	while (lx->p < lx->end) {
		const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
		if (!nl) {
			lx->p = lx->end;
			return;
		}
		lx->p = nl + 1;
		if (lx->p < lx->end && *lx->p == '\n')
			return;
	}
}

static bool host_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && ascii_ncasecmp(a, b, la) == 0;
}

struct netrc_entry {
	bool active, is_default, host_ok;
	char *login, *password;
};

static void entry_clear(struct netrc_entry *en)
{
	secret_free(en->login);
	secret_free(en->password);
	memset(en, 0, sizeof *en);
}

/* Close the entry being read; keep its password in *machine or *def when
 * it is the first to fit. */
static void entry_end(struct netrc_entry *en, const char *user, char **machine, char **def)
{
	bool login_ok = !en->login || !user || strcmp(en->login, user) == 0;
	if (en->active && en->password && login_ok) {
		char **slot = en->is_default ? def : en->host_ok ? machine : NULL;
		if (slot && !*slot) {
			*slot = en->password;
			en->password = NULL;
		}
	}
	entry_clear(en);
}

/* Find the password in the netrc text; NULL when none fits. */
static char *netrc_find(const char *text, size_t len, const char *user, const char *host)
{
	struct netrc_lex lx = { text, text + len };
	struct strbuf tok = STRBUF_INIT;
	struct netrc_entry en = { 0 };
	char *machine = NULL, *def = NULL;

	while (!machine && netrc_token(&lx, &tok, true)) {
		if (strcmp(tok.s, "machine") == 0 || strcmp(tok.s, "default") == 0) {
			bool is_default = tok.s[0] == 'd';
			entry_end(&en, user, &machine, &def);
			en.active = true;
			en.is_default = is_default;
			if (!is_default) {
				if (!netrc_token(&lx, &tok, false))
					break;
				en.host_ok = host_eq(tok.s, host);
			}
		} else if (strcmp(tok.s, "login") == 0 || strcmp(tok.s, "password") == 0) {
			bool is_login = tok.s[0] == 'l';
			if (!netrc_token(&lx, &tok, false))
				break;
			char **dst = is_login ? &en.login : &en.password;
			secret_free(*dst);
			*dst = xstrdup(tok.s);
		} else if (strcmp(tok.s, "account") == 0) {
			netrc_token(&lx, &tok, false);
		} else if (strcmp(tok.s, "macdef") == 0) {
			entry_end(&en, user, &machine, &def);
			netrc_skip_macdef(&lx);
		}
		/* anything else: an unknown keyword, ignored */
	}
	entry_end(&en, user, &machine, &def);
	sb_wipe_free(&tok);
	if (machine) {
		secret_free(def);
		return machine;
	}
	return def;
}

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	struct passwd *pw = getpwuid(geteuid());
	return pw && pw->pw_dir ? pw->pw_dir : NULL;
}

/* 1 when the netrc has nothing for us (or there is no netrc). */
static int netrc_get(const char *user, const char *host, char **out, struct err *e)
{
	const char *home = home_dir();
	struct strbuf text = STRBUF_INIT;
	struct stat st;
	char *path, *pw;
	int fd, rv = 1;

	if (!home || !host)
		return 1;
	path = xasprintf("%s/.netrc", home);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT && errno != ENOTDIR) {
			err_set(e, ERR_IO, SEED_FILE, "%s: %s", path, strerror(errno));
			rv = -1;
		}
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, ERR_IO, SEED_FILE, "%s: not a regular file", path);
		rv = -1;
		goto out;
	}
	if (st.st_size > MAX_NETRC) {
		err_set(e, ERR_CONFIG, 0, "%s: larger than %d bytes", path, MAX_NETRC);
		rv = -1;
		goto out;
	}
	for (;;) {
		sb_grow(&text, 4096);
		ssize_t n = read(fd, text.s + text.len, text.cap - text.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, ERR_IO, SEED_FILE, "%s: %s", path, strerror(errno));
			rv = -1;
			goto out;
		}
		if (n == 0)
			break;
		text.len += (size_t)n;
		if (text.len > MAX_NETRC) {
			err_set(e, ERR_CONFIG, 0, "%s: larger than %d bytes", path, MAX_NETRC);
			rv = -1;
			goto out;
		}
	}
	pw = netrc_find(text.s ? text.s : "", text.len, user, host);
	if (!pw)
		goto out;
	/* Checked only now: a netrc without our password is none of our
	 * business, but one that gives it to us must be private. */
	if (st.st_uid != geteuid()) {
		err_set(e, ERR_CONFIG, 0, "%s: holds the password but is owned by uid %lu, "
			"not by you", path, (unsigned long)st.st_uid);
		secret_free(pw);
		rv = -1;
	} else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		struct strbuf q = STRBUF_INIT;
		sb_add_shell_word(&q, path);
		err_set(e, ERR_CONFIG, 0, "%s: holds the password but is %s by others; "
			"run: chmod 600 %s", path,
			(st.st_mode & (S_IRGRP | S_IROTH)) ? "readable" : "writable", q.s);
		sb_free(&q);
		secret_free(pw);
		rv = -1;
	} else if (!*pw) {
		secret_free(pw);
	} else {
		*out = pw;
		rv = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	sb_wipe_free(&text);
	free(path);
	return rv;
}

/* ---- the terminal ---- */

static volatile sig_atomic_t tty_sig;
static int tty_fd = -1;
static struct termios tty_saved;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define NSIGS (sizeof tty_signals / sizeof tty_signals[0])

static void on_tty_signal(int sig)
{
	/* tcsetattr is async-signal-safe: the echo comes back before
	 * anything else can happen to the process */
	tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	tty_sig = sig;
}

static void catch_signals(struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_tty_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: read() must return so the signal can be handled */
	for (size_t i = 0; i < NSIGS; i++) {
		sigaction(tty_signals[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN)
			sigaction(tty_signals[i], &sa, NULL);
	}
}

static void restore_signals(const struct sigaction *old)
{
	for (size_t i = 0; i < NSIGS; i++)
		sigaction(tty_signals[i], &old[i], NULL);
}

static void tty_puts(const char *s)
{
	(void)!write_all(tty_fd, s, strlen(s));
}

/* 1 when there is no terminal. */
static int prompt(const char *user, const char *host, char **out, struct err *e)
{
	struct sigaction old[NSIGS];
	char buf[8192];
	size_t n = 0;
	bool eof = false, too_long = false;
	char *text;
	int rv = -1;

	tty_fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty_fd < 0)
		return 1;
	if (tcgetattr(tty_fd, &tty_saved) < 0) {
		close(tty_fd);
		tty_fd = -1;
		return 1;
	}
	char su[256], sh[256];
	sanitize(su, sizeof su, user ? user : "(no user)", strlen(user ? user : "(no user)"));
	sanitize(sh, sizeof sh, host ? host : "?", strlen(host ? host : "?"));
	text = xasprintf("Password for %s at %s: ", su, sh);
	catch_signals(old);
	for (;;) {
		struct termios t = tty_saved;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		tty_sig = 0;
		/* Echo off first, dropping what was typed before, then the
		 * prompt: whatever is typed once it shows is kept. */
		if (tcsetattr(tty_fd, TCSAFLUSH, &t) < 0) {
			err_set(e, ERR_OS, 0, "/dev/tty: %s", strerror(errno));
			goto out;
		}
		tty_puts(text);
		for (;;) {
			char c;
			ssize_t r = tty_sig ? -1 : read(tty_fd, &c, 1);
			if (r < 0 && (tty_sig || errno == EINTR)) {
				if (tty_sig)
					break;
				continue;
			}
			if (r < 0) {
				err_set(e, ERR_OS, 0, "/dev/tty: %s", strerror(errno));
				goto out;
			}
			if (r == 0) {
				eof = true;
				break;
			}
			if (c == '\n')
				break;
			if (n + 1 < sizeof buf)
				buf[n++] = c;
			else
				too_long = true;
		}
		if (!tty_sig)
			break;
		tcsetattr(tty_fd, TCSANOW, &tty_saved);
		if (tty_sig == SIGTSTP) {
			/* stop for real, with the echo back on; ask again
			 * after "fg" */
			struct sigaction dfl;
			memset(&dfl, 0, sizeof dfl);
			dfl.sa_handler = SIG_DFL;
			sigemptyset(&dfl.sa_mask);
			sigaction(SIGTSTP, &dfl, NULL);
			raise(SIGTSTP);
			catch_signals(old);
			explicit_bzero(buf, sizeof buf);
			n = 0;
			too_long = false;
			tty_puts("\n");
			continue;
		}
		/* let the signal do what it would have done without us */
		int sig = tty_sig;
		tty_puts("\n");
		restore_signals(old);
		raise(sig);
		err_set(e, ERR_OS, SEED_INTERRUPTED, "interrupted while reading the password");
		goto done;
	}
	tcsetattr(tty_fd, TCSANOW, &tty_saved);
	tty_puts("\n");
	if (n && buf[n - 1] == '\r')
		n--;
	if (too_long)
		err_set(e, ERR_CONFIG, 0, "the password typed is longer than %zu bytes",
			sizeof buf - 1);
	else if (n == 0)
		err_set(e, ERR_CONFIG, 0, "no password %s for %s at %s",
			eof ? "entered (end of input)" : "entered", user ? user : "(no user)",
			host ? host : "?");
	else {
		*out = xstrndup(buf, n);
		rv = 0;
	}
out:
	tcsetattr(tty_fd, TCSANOW, &tty_saved);
	restore_signals(old);
done:
	explicit_bzero(buf, sizeof buf);
	free(text);
	close(tty_fd);
	tty_fd = -1;
	return rv;
}

/* ---- the API ---- */

int secret_get(const char *user, const char *host, const char *password,
	       const char *password_command, char **out, struct err *e)
{
	const char *env;
	int rv;

	*out = NULL;
	if (password && *password) {
		*out = xstrdup(password);
		return 0;
	}
	if (password_command && *password_command)
		return run_command(password_command, out, e);
	env = getenv("SMTPSEND_PASSWORD");
	if (env && *env) {
		*out = xstrdup(env);
		return 0;
	}
	rv = netrc_get(user, host, out, e);
	if (rv <= 0)
		return rv;
	rv = prompt(user, host, out, e);
	if (rv <= 0)
		return rv;
	err_set(e, ERR_CONFIG, 0,
		"no password for %.200s at %.200s: set password_command, password, "
		"SMTPSEND_PASSWORD or a ~/.netrc entry (there is no terminal to ask on)",
		user ? user : "(no user)", host ? host : "(no host)");
	return -1;
}

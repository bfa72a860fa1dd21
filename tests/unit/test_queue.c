/* test_queue.c - the on-disk queue: format, hostile files, atomic writes,
 * concurrent flushers, retries.
 *
 * Some checks need root (chown to a foreign uid, dropping to another uid);
 * they are skipped otherwise.  Write failures are made real with
 * RLIMIT_FSIZE in a child process: the write fails half-way, as it would
 * on a full disk. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "message.h"
#include "queue.h"
#include "spool.h"
#include "util.h"
#include "tap.h"

#define T ok

#define MAGIC "smtpsend-queue 1\n"

static char base[64];
static int ndirs;

/* ---- helpers ---- */

static char *new_dir(void)
{
	return xasprintf("%s/q%d", base, ++ndirs);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void msg_from(struct message *m, const char *text, bool ignore_dots)
{
	struct spool_opts o = { .ignore_dots = ignore_dots };
	struct err e = { 0 };
	char path[] = "/tmp/tqmsg.XXXXXX";
	int fd = mkstemp(path);

	unlink(path);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		abort();
	message_init(m);
	if (spool_read(fd, &o, &m->sp, &e) < 0) {
		printf("# spool_read: %s\n", e.msg);
		abort();
	}
	close(fd);
}

static int sb_sink(void *ctx, const char *buf, size_t len, struct err *e)
{
	(void)e;
	sb_add(ctx, buf, len);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	sb_grow(&sb, 0);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		sb_add(&sb, buf, (size_t)n);
	close(fd);
	*len = sb.len;
	return sb.s;
}

static void put_file(const char *dir, const char *name, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write_all(fd, data, len) < 0)
		abort();
	close(fd);
	free(path);
}

/* Files in dir whose name ends in suffix ("" for all). */
static size_t count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, sl = strlen(suffix);

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static bool exists(const char *dir, const char *id, const char *state)
{
	struct stat st;
	char *path = xasprintf("%s/%s.%s", dir, id, state);
	bool r = lstat(path, &st) == 0;
	free(path);
	return r;
}

static void meta_basic(struct queue_entry_meta *m)
{
	memset(m, 0, sizeof *m);
	m->from = xstrdup("alice@example.org");
	m->account = xstrdup("");
	m->last_error = xstrdup("");
	sl_add(&m->rcpts, "to:bob@example.org");
}

static char *write_one(const char *dir, const struct queue_entry_meta *meta, const char *text)
{
	struct message m;
	struct err e = { 0 };
	char *id = NULL;

	msg_from(&m, text, false);
	if (queue_write(dir, meta, &m, &id, &e) < 0) {
		printf("# queue_write: %s\n", e.msg);
		id = NULL;
	}
	message_free(&m);
	return id;
}

static char *write_basic(const char *dir, time_t created, time_t next_try, unsigned attempts)
{
	struct queue_entry_meta meta;
	char *id;

	meta_basic(&meta);
	meta.created = created;
	meta.next_try = next_try;
	meta.attempts = attempts;
	id = write_one(dir, &meta, "Subject: hi\n\nbody\n");
	queue_meta_free(&meta);
	return id;
}

/* The one listed entry (or NULL) of dir. */
static struct queue_item *list_one(const char *dir, struct queue_listing *l)
{
	struct err e = { 0 };
	if (queue_list(dir, l, &e) < 0) {
		printf("# queue_list: %s\n", e.msg);
		return NULL;
	}
	return l->n == 1 ? &l->v[0] : NULL;
}

static double since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int wait_child(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* ---- default directory ---- */

static void test_default_dir(void)
{
	char *d = queue_default_dir();
	pid_t pid;

	if (geteuid() != 0) {
		T(d && strstr(d, "/smtpsend/queue"), "default dir for a user: %s", d ? d : "(null)");
		free(d);
		return;
	}
	T(d && strcmp(d, "/var/spool/smtpsend") == 0, "default dir for root: %s", d ? d : "(null)");
	free(d);

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int code = 0;
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		setenv("XDG_DATA_HOME", "/x/data", 1);
		setenv("HOME", "/home/h", 1);
		d = queue_default_dir();
		code |= !d || strcmp(d, "/x/data/smtpsend/queue") != 0;
		free(d);
		setenv("XDG_DATA_HOME", "relative", 1);
		d = queue_default_dir();
		code |= (!d || strcmp(d, "/home/h/.local/share/smtpsend/queue") != 0) << 1;
		free(d);
		unsetenv("XDG_DATA_HOME");
		d = queue_default_dir();
		code |= (!d || strcmp(d, "/home/h/.local/share/smtpsend/queue") != 0) << 2;
		free(d);
		_exit(code);
	}
	T(wait_child(pid) == 0, "default dir for a user: XDG_DATA_HOME if absolute, else HOME");
}

/* ---- directory checks ---- */

static void test_dirs(void)
{
	struct err e = { 0 };
	struct stat st;
	char *top = new_dir();
	char *q = xasprintf("%s/a/b/queue", top);
	char *p;
	mode_t old = umask(022);

	T(queue_open_dir(q, false, &e) == 0, "missing dir without create: 0");
	T(queue_open_dir(q, true, &e) == 1, "missing dir with create: created");
	umask(old);
	bool all700 = true;
	for (int i = 0; i < 3; i++) {
		p = xasprintf(i == 0 ? "%s/a" : i == 1 ? "%s/a/b" : "%s/a/b/queue", top);
		all700 &= stat(p, &st) == 0 && (st.st_mode & 07777) == 0700 && S_ISDIR(st.st_mode);
		free(p);
	}
	T(all700, "created dir and the parents we created are 0700");
	T(queue_open_dir(q, false, &e) == 1, "existing good dir: 1");

	chmod(q, 0777);
	err_clear(&e);
	T(queue_open_dir(q, true, &e) == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "chmod 700"),
	   "0777 dir refused with the chmod to run: %s", e.msg);
	chmod(q, 0720);
	err_clear(&e);
	T(queue_open_dir(q, false, &e) == -1 && e.cls == ERR_CONFIG, "group-writable dir refused");
	{
		struct queue_entry_meta meta;
		struct message m;
		char *id = NULL;
		meta_basic(&meta);
		msg_from(&m, "x\n", false);
		err_clear(&e);
		T(queue_write(q, &meta, &m, &id, &e) == -1 && e.cls == ERR_CONFIG &&
		   count_files(q, "") == 0, "queue_write into a group-writable dir refused, nothing written");
		message_free(&m);
		queue_meta_free(&meta);
	}
	chmod(q, 0500);
	err_clear(&e);
	T(queue_open_dir(q, false, &e) == -1 && e.cls == ERR_CONFIG,
	   "dir without owner write refused: %s", e.msg);
	chmod(q, 0700);

	p = xasprintf("%s/link", top);
	if (symlink(q, p) < 0)
		abort();
	err_clear(&e);
	T(queue_open_dir(p, false, &e) == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "symbolic link"),
	   "symlinked dir refused: %s", e.msg);
	char *p2 = xasprintf("%s/link//", top);
	err_clear(&e);
	T(queue_open_dir(p2, true, &e) == -1 && e.cls == ERR_CONFIG,
	   "symlinked dir refused with trailing slashes");
	free(p2);
	free(p);

	p = xasprintf("%s/file", top);
	put_file(top, "file", "x", 1);
	err_clear(&e);
	T(queue_open_dir(p, true, &e) == -1 && e.cls == ERR_CONFIG, "a file as queue dir refused: %s",
	   e.msg);
	free(p);

	if (geteuid() == 0) {
		if (chown(q, 12345, 12345) < 0)
			abort();
		err_clear(&e);
		T(queue_open_dir(q, false, &e) == -1 && e.cls == ERR_CONFIG && strstr(e.msg, "chown"),
		   "dir owned by another uid refused: %s", e.msg);
		if (chown(q, 0, 0) < 0)
			abort();
	} else {
		T(1, "# SKIP not root: foreign-owned dir");
	}

	struct queue_listing l;
	struct queue_claimed c;
	p = xasprintf("%s/none", top);
	err_clear(&e);
	T(queue_list(p, &l, &e) == 0 && l.n == 0, "listing a missing queue: empty");
	queue_listing_free(&l);
	T(queue_claim(p, &c, &e) == 0, "claiming from a missing queue: nothing");
	queue_claimed_free(&c);
	free(p);
	free(q);
	free(top);
}

/* ---- round trip ---- */

static void test_roundtrip(void)
{
	struct queue_entry_meta meta;
	struct queue_listing l;
	struct queue_claimed c;
	struct message m, back;
	struct strbuf want = STRBUF_INIT, got = STRBUF_INIT;
	struct err e = { 0 };
	struct stat st;
	char *dir = new_dir(), *id = NULL, *path, *raw;
	size_t rawlen;
	const char *text = "From: a@example.org\nBcc: secret@example.org\nSubject: t\n\nline\n.\nlast";

	meta_basic(&meta);
	free(meta.account);
	meta.account = xstrdup("work");
	sl_add(&meta.settings, "Password=a\\b\r\nc\td");
	sl_add(&meta.settings, "Name=caf\xc3\xa9 \\x41");
	sl_add(&meta.rcpts, "cc:carol@example.org");
	sl_add(&meta.rcpts, "bcc:dave@example.org");

	msg_from(&m, text, true);
	sb_adds(&m.prefix, "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n");
	if (message_skip_header(&m, (size_t)spool_find_header(&m.sp, "Bcc"), &e) < 0)
		abort();
	message_stream(&m, sb_sink, &want, &e);

	time_t before = time(NULL);
	T(queue_write(dir, &meta, &m, &id, &e) == 0 && id, "queue_write: %s", e.msg);
	T(id && strlen(id) > 22 && id[8] == 'T' && id[15] == '.', "id looks like a timestamp: %s",
	   id ? id : "");
	T(count_files(dir, ".queued") == 1 && count_files(dir, "") == 1, "exactly one file: ID.queued");

	path = xasprintf("%s/%s.queued", dir, id);
	T(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "queue file is 0600");
	raw = slurp(path, &rawlen);
	T(raw && rawlen > strlen(MAGIC) && memcmp(raw, MAGIC, strlen(MAGIC)) == 0,
	   "file starts with the version line");
	const char *endp = raw ? strstr(raw, "\nend\n") : NULL;
	T(endp && !memchr(raw, '\r', (size_t)(endp - raw)), "no raw CR in the header");
	T(raw && strstr(raw, "\nsetting Password=a\\\\b\\x0d\\x0ac\\x09d\n"),
	   "CR, LF, tab and backslash are escaped in values");
	T(endp && rawlen - (size_t)(endp + 5 - raw) == want.len &&
	   memcmp(endp + 5, want.s, want.len) == 0, "message bytes follow the header verbatim");
	free(raw);

	struct queue_item *it = list_one(dir, &l);
	T(it && it->state == QSTATE_QUEUED && !it->reason, "listed as queued");
	if (it) {
		struct queue_entry_meta *g = &it->meta;
		T(!strcmp(g->id, id) && !strcmp(g->from, meta.from) && !strcmp(g->account, "work") &&
		   !strcmp(g->last_error, "") && g->attempts == 0, "listing: id, sender, account");
		T(g->created >= before && g->created <= time(NULL) && g->next_try == g->created,
		   "listing: created now, due now");
		T(g->settings.n == 2 && !strcmp(g->settings.v[0], meta.settings.v[0]) &&
		   !strcmp(g->settings.v[1], meta.settings.v[1]), "settings round-trip byte for byte");
		T(g->rcpts.n == 3 && !strcmp(g->rcpts.v[0], "to:bob@example.org") &&
		   !strcmp(g->rcpts.v[2], "bcc:dave@example.org"), "recipients round-trip in order");
		T(g->msg_size == (off_t)want.len && it->file_size == g->msg_offset + g->msg_size,
		   "msg_size %jd, offset %jd", (intmax_t)g->msg_size, (intmax_t)g->msg_offset);
	}
	queue_listing_free(&l);

	T(queue_claim(dir, &c, &e) == 1 && c.fd >= 0 && !c.reclaimed && c.problems.n == 0,
	   "claimed");
	T(exists(dir, id, "sending") && !exists(dir, id, "queued"), "claim renamed it to ID.sending");
	T(queue_claimed_read(&c, NULL, &back, &e) == 0, "claimed message read back: %s", e.msg);
	message_stream(&back, sb_sink, &got, &e);
	T(got.len == want.len && memcmp(got.s, want.s, got.len) == 0,
	   "the bytes to send are those queued (lone dot kept, Bcc gone, Date added)");
	T(back.sp.wire_size == message_size(&m), "same SIZE= as the original message");
	message_free(&back);
	{
		struct queue_listing l2;
		struct queue_item *i2 = list_one(dir, &l2);
		T(i2 && i2->state == QSTATE_SENDING && i2->locked, "listed as sending, locked");
		queue_listing_free(&l2);
	}
	T(queue_finish(&c, QUEUE_DONE, NULL, false, 0, &e) == 0 && count_files(dir, "") == 0,
	   "done: the entry is deleted");
	T(queue_finish(&c, QUEUE_DONE, NULL, false, 0, &e) == -1 && e.cls == ERR_INTERNAL,
	   "finishing twice is refused");
	queue_claimed_free(&c);

	/* the order of the listing is the order of creation */
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = write_basic(dir, 0, 0, 0);
	T(queue_list(dir, &l, &e) == 0 && l.n == 3 && !strcmp(l.v[0].meta.id, ids[0]) &&
	   !strcmp(l.v[1].meta.id, ids[1]) && !strcmp(l.v[2].meta.id, ids[2]),
	   "ids sort by creation");
	queue_listing_free(&l);
	for (int i = 0; i < 3; i++)
		free(ids[i]);

	/* invalid envelopes are refused before anything is written */
	char *d2 = new_dir();
	struct queue_entry_meta bad;
	meta_basic(&bad);
	sl_clear(&bad.rcpts);
	err_clear(&e);
	T(queue_write(d2, &bad, &m, NULL, &e) == -1 && e.cls == ERR_DATA && access(d2, F_OK) < 0,
	   "no recipient: ERR_DATA, nothing created (%s)", e.msg);
	sl_add(&bad.rcpts, "to:x@y\r\nRCPT TO:<evil@example.org>");
	err_clear(&e);
	T(queue_write(d2, &bad, &m, NULL, &e) == -1 && e.cls == ERR_DATA,
	   "CR LF in a recipient: ERR_DATA");
	sl_clear(&bad.rcpts);
	sl_add(&bad.rcpts, "x@y");
	err_clear(&e);
	T(queue_write(d2, &bad, &m, NULL, &e) == -1 && e.cls == ERR_DATA,
	   "recipient without kind: ERR_DATA");
	queue_meta_free(&bad);
	free(d2);

	message_free(&m);
	queue_meta_free(&meta);
	sb_free(&want);
	sb_free(&got);
	free(path);
	free(id);
	free(dir);
}

/* ---- hostile files ---- */

#define GOOD_ID "20240101T000000.000001-1-00000000"
#define HDR_START MAGIC "id " GOOD_ID "\ncreated 100\nnext-try 100\nattempts 0\n"
#define HDR_MID "last-error \naccount \nfrom a@example.org\nrcpt to:b@example.org\n"

static struct {
	const char *data;
	const char *reason;
	const char *what;
} hostile[] = {
	{ "", "empty", "zero-length file" },
	{ "hello world\n", "not a queue file", "not a queue file" },
	{ "smtpsend-queue 2\n", "unsupported", "future version" },
	{ HDR_START HDR_MID "size 3\n", "truncated", "header without end line" },
	{ HDR_START HDR_MID, "truncated", "header cut at a line end" },
	{ HDR_START "last-err", "truncated", "header cut in a line" },
	{ HDR_START HDR_MID "size 3\nend\nab", "truncated", "message shorter than size" },
	{ HDR_START HDR_MID "size 3\nend\nabcd", "after the message", "message longer than size" },
	{ HDR_START HDR_MID "size 3\nend\n", "truncated", "message missing" },
	{ HDR_START HDR_MID "colour blue\nsize 3\nend\nabc", "unknown key", "unknown key" },
	{ HDR_START HDR_MID "from x@y\nsize 3\nend\nabc", "repeated", "repeated key" },
	{ HDR_START "last-error \nfrom a@b\nrcpt to:b@c\nsize 3\nend\nabc", "missing key account",
	  "missing key" },
	{ HDR_START "last-error \naccount \nfrom a@b\nsize 3\nend\nabc", "no recipient",
	  "no recipient" },
	{ HDR_START HDR_MID "rcpt b@example.org\nsize 3\nend\nabc", "to:", "recipient without kind" },
	{ HDR_START HDR_MID "rcpt to:\nsize 3\nend\nabc", "to:", "empty recipient" },
	{ HDR_START HDR_MID "setting =x\nsize 3\nend\nabc", "Name=Value", "setting without name" },
	{ HDR_START HDR_MID "setting novalue\nsize 3\nend\nabc", "Name=Value", "setting without =" },
	{ MAGIC "id " GOOD_ID "\ncreated 100\nnext-try 100\nattempts 0\nlast-error \naccount \n"
	  "from a@b\\x0d\\x0aRSET\nrcpt to:b@c\nsize 3\nend\nabc", "control", "escaped CR LF in from" },
	{ MAGIC "id " GOOD_ID "\ncreated 100\nnext-try 100\nattempts 0\nlast-error \naccount \n"
	  "from a@b\r\nrcpt to:b@c\nsize 3\nend\nabc", "raw control", "raw CR in a value" },
	{ HDR_START HDR_MID "setting a=\\q\nsize 3\nend\nabc", "bad escape", "bad escape" },
	{ HDR_START HDR_MID "setting a=\\x4\nsize 3\nend\nabc", "bad escape", "short hex escape" },
	{ HDR_START HDR_MID "setting a=\\\nsize 3\nend\nabc", "bad escape", "backslash at the end" },
	{ HDR_START HDR_MID "setting a=\\x00\nsize 3\nend\nabc", "NUL", "escaped NUL" },
	{ HDR_START HDR_MID "size -3\nend\nabc", "bad number", "negative size" },
	{ HDR_START HDR_MID "size 3x\nend\nabc", "bad number", "junk after a number" },
	{ HDR_START HDR_MID "size \nend\nabc", "bad number", "empty number" },
	{ HDR_START HDR_MID "size 99999999999999999999\nend\nabc", "bad number", "huge size" },
	{ MAGIC "id " GOOD_ID "\ncreated 100\nnext-try 100\nattempts 4294967297\n" HDR_MID
	  "size 3\nend\nabc", "bad number", "attempts overflow" },
	{ MAGIC "id " GOOD_ID "\ncreated 99999999999999\nnext-try 100\nattempts 0\n" HDR_MID
	  "size 3\nend\nabc", "bad number", "time out of range" },
	{ MAGIC "id 20240101T000000.000002-1-00000000\ncreated 100\nnext-try 100\nattempts 0\n"
	  HDR_MID "size 3\nend\nabc", "differs", "id differs from the file name" },
	{ MAGIC "id ../../etc\ncreated 100\nnext-try 100\nattempts 0\n" HDR_MID "size 3\nend\nabc",
	  "bad id", "id with a slash" },
	{ HDR_START HDR_MID "sizе 3\nend\nabc", "unknown key", "lookalike key" },
	{ HDR_START HDR_MID "size 3\nend \nabc", "unknown key", "end line with a space is no end" },
	{ HDR_START HDR_MID "size\t3\nend\nabc", "no value", "tab instead of space" },
};

static void check_corrupt(const char *dir, const char *data, size_t len, const char *reason,
			  const char *what)
{
	struct queue_listing l;
	struct queue_item *it;

	put_file(dir, GOOD_ID ".queued", data, len);
	it = list_one(dir, &l);
	T(it && it->state == QSTATE_CORRUPT && it->reason && strstr(it->reason, reason) &&
	   !strcmp(it->meta.id, GOOD_ID) && !it->meta.from, "corrupt: %s (%s)", what,
	   it && it->reason ? it->reason : "not corrupt");
	queue_listing_free(&l);
}

static unsigned rnd(unsigned *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void test_hostile(void)
{
	struct err e = { 0 };
	char *dir = new_dir();
	struct queue_listing l;

	if (queue_open_dir(dir, true, &e) != 1)
		abort();
	/* the good base really is good */
	const char *good = HDR_START HDR_MID "size 3\nend\nabc";
	put_file(dir, GOOD_ID ".queued", good, strlen(good));
	struct queue_item *it = list_one(dir, &l);
	T(it && it->state == QSTATE_QUEUED && it->meta.msg_size == 3, "hand-written entry parses: %s",
	   it && it->reason ? it->reason : "");
	queue_listing_free(&l);

	for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
		check_corrupt(dir, hostile[i].data, strlen(hostile[i].data), hostile[i].reason,
			      hostile[i].what);

	/* bounded lines and header */
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, HDR_START HDR_MID "setting a=");
	for (int i = 0; i < QUEUE_MAX_LINE; i++)
		sb_addc(&sb, 'x');
	sb_adds(&sb, "\nsize 3\nend\nabc");
	check_corrupt(dir, sb.s, sb.len, "too long", "line over the limit");
	sb_reset(&sb);
	sb_adds(&sb, HDR_START HDR_MID);
	while (sb.len <= QUEUE_MAX_HEADER)
		sb_adds(&sb, "setting a=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n");
	sb_adds(&sb, "size 3\nend\nabc");
	check_corrupt(dir, sb.s, sb.len, "header too long", "header over the limit");
	sb_reset(&sb);
	sb_adds(&sb, HDR_START HDR_MID "setting a=b");
	sb_addc(&sb, '\0');
	sb_adds(&sb, "c\nsize 3\nend\nabc");
	check_corrupt(dir, sb.s, sb.len, "NUL", "NUL byte in a line");

	/* every truncation of a real entry is caught */
	{
		char *d2 = new_dir(), *id = write_basic(d2, 0, 0, 0), *path, *raw;
		size_t len, bad = 0;
		path = xasprintf("%s/%s.queued", d2, id);
		raw = slurp(path, &len);
		for (size_t cut = 0; cut < len; cut++) {
			put_file(dir, GOOD_ID ".queued", raw, cut);
			if (queue_list(dir, &l, &e) < 0 || l.n != 1 || l.v[0].state != QSTATE_CORRUPT)
				bad++;
			queue_listing_free(&l);
		}
		T(bad == 0, "each of the %zu truncations of an entry is corrupt", len);
		/* random damage: never a crash, and what parses is consistent */
		unsigned seed = 12345, parsed = 0, incons = 0;
		for (int round = 0; round < 3000; round++) {
			char *copy = xstrndup(raw, len);
			int flips = 1 + (int)(rnd(&seed) % 3);
			size_t hdr = (size_t)(strstr(raw, "\nend\n") - raw) + 5;
			for (int f = 0; f < flips; f++)
				copy[rnd(&seed) % hdr] = (char)(rnd(&seed) & 0xff);
			put_file(dir, GOOD_ID ".queued", copy, len);
			free(copy);
			if (queue_list(dir, &l, &e) == 0 && l.n == 1 && l.v[0].state != QSTATE_CORRUPT) {
				parsed++;
				const struct queue_entry_meta *g = &l.v[0].meta;
				if (g->msg_offset + g->msg_size != l.v[0].file_size || !g->from ||
				    g->rcpts.n == 0)
					incons++;
			}
			queue_listing_free(&l);
		}
		T(incons == 0, "3000 damaged headers: no crash, the %u that parse are consistent", parsed);
		free(raw);
		free(path);
		free(id);
		free(d2);
	}
	sb_free(&sb);
	free(dir);
}

/* ---- files that are not what they seem ---- */

static void test_strange_files(void)
{
	struct err e = { 0 };
	struct queue_listing l;
	struct queue_claimed c;
	char *dir = new_dir(), *outside = new_dir();
	char *foreign_id = write_basic(dir, 0, 0, 0);
	char *good_id = write_basic(dir, 0, 0, 0);
	char *decoy_id = write_basic(outside, 0, 0, 0);
	char *target = xasprintf("%s/%s.queued", outside, decoy_id);
	char *link = xasprintf("%s/20000101T000000.000000-1-aaaaaaaa.queued", dir);
	char *fifo = xasprintf("%s/20000101T000000.000000-2-bbbbbbbb.queued", dir);
	char *hard = xasprintf("%s/20000101T000000.000000-3-cccccccc.queued", dir);
	char *foreign = xasprintf("%s/%s.queued", dir, foreign_id);
	char *hard_src = xasprintf("%s/hardlink-source", outside);

	/* a symlink to a perfectly valid entry elsewhere must not be followed */
	if (symlink(target, link) < 0 || mkfifo(fifo, 0600) < 0)
		abort();
	put_file(outside, "hardlink-source", "x", 1);
	if (linkat(AT_FDCWD, hard_src, AT_FDCWD, hard, 0) < 0)
		abort();
	bool root = geteuid() == 0;
	if (root && chown(foreign, 12345, 12345) < 0)
		abort();
	/* ids of the year 2000 sort first: the flush meets the strange ones,
	 * then (as root) the foreign one, before the good one */

	T(queue_list(dir, &l, &e) == 0 && l.n == 5, "five entries listed: %zu", l.n);
	int seen = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_item *it = &l.v[i];
		const char *r = it->reason ? it->reason : "";
		if (strstr(it->name, "-1-aaaa"))
			seen += it->state == QSTATE_CORRUPT && strstr(r, "symbolic link") ? 1 : 100;
		else if (strstr(it->name, "-2-bbbb"))
			seen += it->state == QSTATE_CORRUPT && strstr(r, "not a regular file") ? 1 : 100;
		else if (strstr(it->name, "-3-cccc"))
			seen += it->state == QSTATE_CORRUPT && strstr(r, "hard links") ? 1 : 100;
		else if (!strcmp(it->meta.id, foreign_id))
			seen += !root || (it->state == QSTATE_CORRUPT && strstr(r, "foreign")) ? 1 : 100;
		else if (!strcmp(it->meta.id, good_id))
			seen += it->state == QSTATE_QUEUED ? 1 : 100;
		printf("#   %s: %s %s\n", it->name, queue_state_name(it->state), r);
	}
	T(seen == 5, "symlink, FIFO, hard link%s reported corrupt, the good one queued",
	   root ? ", foreign owner" : "");
	queue_listing_free(&l);

	int rc = queue_claim(dir, &c, &e);
	T(rc == 1 && strcmp(c.meta.id, root ? good_id : foreign_id) == 0,
	   "the rest of the queue still goes out: the good entry is claimed, not the decoy");
	T(c.problems.n == (root ? 4u : 3u), "%zu problems reported", c.problems.n);
	for (size_t i = 0; i < c.problems.n; i++)
		printf("#   problem: %s\n", c.problems.v[i]);
	T(exists(dir, "20000101T000000.000000-1-aaaaaaaa", "corrupt") &&
	   exists(dir, "20000101T000000.000000-2-bbbbbbbb", "corrupt") &&
	   exists(dir, "20000101T000000.000000-3-cccccccc", "corrupt") &&
	   (!root || exists(dir, foreign_id, "corrupt")), "bad entries set aside as ID.corrupt");
	size_t len;
	char *still = slurp(target, &len);
	T(still && exists(outside, decoy_id, "queued"), "the symlink target is untouched");
	free(still);
	T(queue_finish(&c, QUEUE_DONE, NULL, false, 0, &e) == 0, "good entry done");
	queue_claimed_free(&c);

	/* set aside entries are listed as corrupt and not claimed again */
	T(queue_list(dir, &l, &e) == 0, "listing after the flush");
	size_t ncorrupt = 0;
	for (size_t i = 0; i < l.n; i++)
		ncorrupt += l.v[i].state == QSTATE_CORRUPT;
	T(ncorrupt == (root ? 4u : 3u), "set-aside entries listed as corrupt");
	queue_listing_free(&l);
	T(queue_claim(dir, &c, &e) == (root ? 0 : 1) && c.problems.n == 0,
	   "next flush: nothing set aside is claimed or reported again");
	queue_claimed_free(&c);

	free(good_id);
	free(decoy_id);
	free(foreign_id);
	free(target);
	free(link);
	free(fifo);
	free(hard);
	free(hard_src);
	free(foreign);
	free(dir);
	free(outside);
}


/* ---- no partial files ---- */

static char *big_text(size_t size)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "Subject: big\n\n");
	while (sb.len < size)
		sb_adds(&sb, "0123456789012345678901234567890123456789012345678901234567890123456789\n");
	return sb.s;
}

static void test_no_partial(void)
{
	struct queue_entry_meta meta;
	struct message m;
	struct err e = { 0 };
	char *dir = new_dir(), *id = NULL;
	pid_t pid;

	meta_basic(&meta);
	if (queue_open_dir(dir, true, &e) != 1)
		abort();

	/* the message cannot be read half-way through */
	msg_from(&m, "Subject: x\n\nbody\n", false);
	int saved = m.sp.fd;
	m.sp.fd = open("/dev/null", O_RDONLY);
	sb_adds(&m.prefix, "Date: now\r\n");
	T(queue_write(dir, &meta, &m, &id, &e) == -1 && e.cls == ERR_CANTCREAT &&
	   strstr(e.msg, dir) && !id, "unreadable message: ERR_CANTCREAT naming the dir (%s)", e.msg);
	T(count_files(dir, "") == 0, "nothing left in the queue dir");
	close(m.sp.fd);
	m.sp.fd = saved;
	message_free(&m);

	/* the disk fills up half-way: RLIMIT_FSIZE makes write() fail for real */
	char *text = big_text(1024 * 1024);
	msg_from(&m, text, false);
	free(text);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 64 * 1024, 64 * 1024 };
		int code = 0;
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		err_clear(&e);
		code |= queue_write(dir, &meta, &m, &id, &e) != -1;
		code |= (e.cls != ERR_CANTCREAT) << 1;
		code |= (!strstr(e.msg, "File too large")) << 2;
		code |= (!strstr(e.msg, dir)) << 3;
		dprintf(1, "#   child: %s\n", e.msg);
		_exit(code);
	}
	T(wait_child(pid) == 0, "write fails half-way (EFBIG): -1, ERR_CANTCREAT naming dir and errno");
	T(count_files(dir, "") == 0, "... and nothing is left in the queue dir");

	/* a rewrite that fails leaves the entry as it was */
	T((id = write_one(dir, &meta, "Subject: retry me\n\nbody\n")) != NULL, "small entry queued");
	char *path = xasprintf("%s/%s.sending", dir, id), *before = NULL, *after = NULL;
	size_t blen = 0, alen = 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct queue_claimed c;
		struct rlimit rl = { 100, 100 };
		int code = 0;
		signal(SIGXFSZ, SIG_IGN);
		if (queue_claim(dir, &c, &e) != 1)
			_exit(64);
		setrlimit(RLIMIT_FSIZE, &rl);
		code |= queue_finish(&c, QUEUE_RETRY, "451 later", false, 0, &e) != -1;
		code |= (e.cls != ERR_CANTCREAT) << 1;
		code |= (c.fd != -1) << 2;
		dprintf(1, "#   child: %s\n", e.msg);
		queue_claimed_free(&c);
		_exit(code);
	}
	T(wait_child(pid) == 0, "rewrite for a retry fails half-way: -1, ERR_CANTCREAT");
	T(count_files(dir, "") == 1 && exists(dir, id, "sending"),
	   "... the entry is still there as ID.sending, no temporary file");
	before = slurp(path, &blen);
	struct queue_claimed c;
	T(queue_claim(dir, &c, &e) == 1 && c.reclaimed && !strcmp(c.meta.id, id) &&
	   c.meta.attempts == 0, "... and the next flush reclaims it unchanged");
	queue_claimed_free(&c);
	after = slurp(path, &alen);
	T(before && after && blen == alen && !memcmp(before, after, blen),
	   "reclaiming and releasing changes nothing");
	free(before);
	free(after);
	free(path);
	free(id);
	id = NULL;

	/* temporary files of dead writers are removed once old; live ones stay */
	char *old_tmp = xasprintf("%s/.tmp-20000101T000000.000000-9-00000001", dir);
	char *new_tmp = xasprintf("%s/.tmp-20000101T000000.000000-9-00000002", dir);
	char *held_tmp = xasprintf("%s/.tmp-20000101T000000.000000-9-00000003", dir);
	struct timespec ago[2] = { { time(NULL) - 7200, 0 }, { time(NULL) - 7200, 0 } };
	put_file(dir, old_tmp + strlen(dir) + 1, "partial", 7);
	put_file(dir, new_tmp + strlen(dir) + 1, "partial", 7);
	put_file(dir, held_tmp + strlen(dir) + 1, "partial", 7);
	utimensat(AT_FDCWD, old_tmp, ago, 0);
	utimensat(AT_FDCWD, held_tmp, ago, 0);
	int hfd = open(held_tmp, O_RDONLY);
	flock(hfd, LOCK_EX);
	struct queue_listing l;
	T(queue_list(dir, &l, &e) == 0 && l.n == 1, "temporary files are not listed");
	queue_listing_free(&l);
	T(queue_claim(dir, &c, &e) == 1 && c.problems.n == 1 &&
	   strstr(c.problems.v[0], "stale temporary file removed"),
	   "flush removes a stale temporary file");
	queue_claimed_free(&c);
	T(access(old_tmp, F_OK) < 0 && access(new_tmp, F_OK) == 0 && access(held_tmp, F_OK) == 0,
	   "old unlocked one removed; recent one and locked one kept");
	close(hfd);
	free(old_tmp);
	free(new_tmp);
	free(held_tmp);

	message_free(&m);
	queue_meta_free(&meta);
	free(dir);
}

/* ---- concurrent flushers ---- */

#define FLUSHERS 8
#define ENTRIES 200

static void test_concurrency(void)
{
	struct strbuf got = STRBUF_INIT;
	struct timespec t0;
	struct err e = { 0 };
	char *dir = new_dir(), *ids[ENTRIES];
	pid_t pids[FLUSHERS];
	int fds[2], bad_children = 0;
	char buf[4096];
	ssize_t n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < ENTRIES; i++)
		ids[i] = write_basic(dir, 0, 0, 0);
	printf("# %d entries written in %.3f s\n", ENTRIES, since(&t0));
	T(count_files(dir, ".queued") == ENTRIES, "%d entries queued", ENTRIES);

	if (pipe(fds) < 0)
		abort();
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < FLUSHERS; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			struct queue_claimed c;
			int rc, code = 0;
			close(fds[0]);
			while ((rc = queue_claim(dir, &c, &e)) == 1) {
				char *line = xasprintf("%s\n", c.meta.id);
				/* one write up to PIPE_BUF is atomic */
				if (write_all(fds[1], line, strlen(line)) < 0)
					code = 2;
				free(line);
				if (queue_finish(&c, QUEUE_DONE, NULL, true, 0, &e) < 0)
					code = 3;
				code |= c.problems.n ? 4 : 0;
				queue_claimed_free(&c);
			}
			code |= rc < 0 ? 8 : 0;
			queue_claimed_free(&c);
			close(fds[1]);
			_exit(code);
		}
	}
	close(fds[1]);
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		sb_add(&got, buf, (size_t)n);
	close(fds[0]);
	for (int k = 0; k < FLUSHERS; k++)
		bad_children += wait_child(pids[k]) != 0;
	double secs = since(&t0);

	size_t total = 0, once = 0, twice = 0;
	for (char *p = got.s; p && *p; p = strchr(p, '\n') + 1)
		total++;
	for (int i = 0; i < ENTRIES; i++) {
		size_t hits = 0, l = strlen(ids[i]);
		for (char *p = got.s; p && (p = strstr(p, ids[i])) != NULL; p += l)
			hits++;
		once += hits == 1;
		twice += hits > 1;
	}
	printf("# %d flushers x %d entries: %zu claims in %.3f s\n", FLUSHERS, ENTRIES, total, secs);
	T(bad_children == 0, "every flusher ran without error");
	T(total == ENTRIES && once == ENTRIES && twice == 0,
	   "%d flushers: each of %d ids claimed exactly once (%zu claims, %zu twice)", FLUSHERS,
	   ENTRIES, total, twice);
	T(count_files(dir, ".sent") == ENTRIES && count_files(dir, "") == ENTRIES,
	   "all %d entries ended as ID.sent (KeepQueue), nothing else left", ENTRIES);
	for (int i = 0; i < ENTRIES; i++)
		free(ids[i]);
	sb_free(&got);
	free(dir);
}

/* ---- dead and live flushers ---- */

static void test_reclaim(void)
{
	struct queue_claimed c;
	struct queue_listing l;
	struct err e = { 0 };
	char *dir = new_dir(), *id = write_basic(dir, 0, 0, 0);
	char *from = xasprintf("%s/%s.queued", dir, id), *to = xasprintf("%s/%s.sending", dir, id);

	/* a flusher that died: ID.sending, nobody holds the lock */
	if (rename(from, to) < 0)
		abort();
	int fd = open(to, O_RDONLY);
	flock(fd, LOCK_EX);
	T(queue_claim(dir, &c, &e) == 0 && c.problems.n == 0,
	   "ID.sending whose lock is held (a live flusher): not claimed");
	queue_claimed_free(&c);
	struct queue_item *it = list_one(dir, &l);
	T(it && it->state == QSTATE_SENDING && it->locked, "listed as sending, locked");
	queue_listing_free(&l);
	close(fd);
	it = list_one(dir, &l);
	T(it && it->state == QSTATE_SENDING && !it->locked, "lock gone: listed as sending, unlocked");
	queue_listing_free(&l);
	T(queue_claim(dir, &c, &e) == 1 && c.reclaimed && !strcmp(c.meta.id, id),
	   "ID.sending without a lock holder (its flusher died): reclaimed");
	T(exists(dir, id, "sending"), "reclaimed entry stays ID.sending");
	struct queue_claimed c2;
	T(queue_claim(dir, &c2, &e) == 0, "while reclaimed, another flusher cannot take it");
	queue_claimed_free(&c2);
	queue_claimed_free(&c);

	/* an entry not due yet is passed over for a later one that is */
	char *later = write_basic(dir, 0, time(NULL) + 1000, 0);
	T(queue_claim(dir, &c, &e) == 1 && !strcmp(c.meta.id, id), "dead flusher's entry again");
	T(queue_finish(&c, QUEUE_DONE, NULL, false, 0, &e) == 0, "done");
	queue_claimed_free(&c);
	T(queue_claim(dir, &c, &e) == 0 && exists(dir, later, "queued"), "entry not due: not claimed");
	queue_claimed_free(&c);
	char *due = write_basic(dir, 0, 0, 0);
	T(queue_claim(dir, &c, &e) == 1 && !strcmp(c.meta.id, due), "a later due entry is claimed");
	queue_claimed_free(&c);

	free(due);
	free(later);
	free(from);
	free(to);
	free(id);
	free(dir);
}

/* ---- retries ---- */

static char *message_part(const char *dir, const char *id, const char *state, size_t *len)
{
	char *path = xasprintf("%s/%s.%s", dir, id, state), *raw, *end, *r = NULL;
	size_t n;
	raw = slurp(path, &n);
	if (raw && (end = strstr(raw, "\nend\n")) != NULL) {
		*len = n - (size_t)(end + 5 - raw);
		r = xstrndup(end + 5, *len);
	}
	free(raw);
	free(path);
	return r;
}

static void test_retry(void)
{
	struct queue_claimed c;
	struct queue_listing l;
	struct queue_item *it;
	struct err e = { 0 };
	char *dir = new_dir(), *id;
	time_t now = time(NULL);

	T(queue_backoff(1) == 300 && queue_backoff(2) == 600 && queue_backoff(3) == 1200 &&
	   queue_backoff(4) == 2400 && queue_backoff(5) == 4800 && queue_backoff(6) == 9600,
	   "backoff doubles from 5 minutes");
	T(queue_backoff(7) == 14400 && queue_backoff(8) == 14400 && queue_backoff(1000) == 14400 &&
	   queue_backoff(~0u) == 14400, "backoff is capped at 4 hours");

	id = write_basic(dir, 0, 0, 0);
	size_t l0 = 0, l1 = 0;
	char *msg0 = message_part(dir, id, "queued", &l0);
	T(queue_claim(dir, &c, &e) == 1, "claimed");
	now = time(NULL);
	T(queue_finish(&c, QUEUE_RETRY, "451 4.3.0 try\r\nlater", false, 86400, &e) == 0 && c.fd == -1,
	   "retry: %s", e.msg);
	queue_claimed_free(&c);
	T(exists(dir, id, "queued") && count_files(dir, "") == 1, "back to ID.queued, nothing else");
	it = list_one(dir, &l);
	T(it && it->meta.attempts == 1 && it->meta.next_try >= now + 300 &&
	   it->meta.next_try <= time(NULL) + 300, "attempts 1, next try in 5 minutes");
	T(it && !strcmp(it->meta.last_error, "451 4.3.0 try\\x0d\\x0alater"),
	   "last error recorded on one line: %s", it ? it->meta.last_error : "");
	T(it && it->mtime == it->meta.next_try, "the file's mtime is next_try (the hint)");
	queue_listing_free(&l);
	char *msg1 = message_part(dir, id, "queued", &l1);
	T(msg0 && msg1 && l0 == l1 && !memcmp(msg0, msg1, l0), "the rewrite keeps the message bytes");
	free(msg0);
	free(msg1);
	T(queue_claim(dir, &c, &e) == 0, "not due again yet");
	queue_claimed_free(&c);
	char *qpath = xasprintf("%s/%s.queued", dir, id);
	struct timespec epoch[2] = { { 0, 0 }, { 0, 0 } };
	utimensat(AT_FDCWD, qpath, epoch, 0);
	T(queue_claim(dir, &c, &e) == 0, "an old mtime does not make it due: the header decides");
	queue_claimed_free(&c);
	free(qpath);
	free(id);

	/* doubling and cap, through the files */
	for (unsigned a = 3; a <= 9; a += 6) {
		id = write_basic(dir, 0, 0, a);
		if (queue_claim(dir, &c, &e) != 1 || strcmp(c.meta.id, id) != 0)
			abort();
		now = time(NULL);
		queue_finish(&c, QUEUE_RETRY, "451 again", false, 0, &e);
		queue_claimed_free(&c);
		struct queue_listing all;
		long want = queue_backoff(a + 1);
		bool good = false;
		queue_list(dir, &all, &e);
		for (size_t i = 0; i < all.n; i++)
			if (!strcmp(all.v[i].meta.id, id))
				good = all.v[i].meta.attempts == a + 1 &&
				       all.v[i].meta.next_try >= now + want &&
				       all.v[i].meta.next_try <= time(NULL) + want;
		T(good, "after attempt %u the next try is in %ld s", a + 1, want);
		queue_listing_free(&all);
		free(id);
	}

	/* too old: a retry becomes a failure */
	char *d2 = new_dir();
	id = write_basic(d2, now - 100000, 0, 4);
	T(queue_claim(d2, &c, &e) == 1, "old entry claimed");
	T(queue_finish(&c, QUEUE_RETRY, "451 still not", false, 86400, &e) == 0, "retry past max age");
	queue_claimed_free(&c);
	T(exists(d2, id, "failed") && count_files(d2, "") == 1, "max age: ID.failed");
	it = list_one(d2, &l);
	T(it && it->state == QSTATE_FAILED && it->meta.attempts == 5 &&
	   strstr(it->meta.last_error, "gave up") && strstr(it->meta.last_error, "451 still not"),
	   "failed entry keeps the reason: %s", it ? it->meta.last_error : "");
	queue_listing_free(&l);
	T(queue_claim(d2, &c, &e) == 0, "failed entries are never claimed");
	queue_claimed_free(&c);
	free(id);

	/* no maximum age */
	id = write_basic(d2, now - 10000000, 0, 0);
	queue_claim(d2, &c, &e);
	T(queue_finish(&c, QUEUE_RETRY, "451", false, 0, &e) == 0 && exists(d2, id, "queued"),
	   "max_age 0: no limit");
	queue_claimed_free(&c);
	free(id);

	/* permanent failure */
	id = write_basic(d2, 0, 0, 0);
	T(queue_claim(d2, &c, &e) == 1 && !strcmp(c.meta.id, id), "claimed");
	T(queue_finish(&c, QUEUE_FAIL, "550 5.1.1 no such user", true, 0, &e) == 0 &&
	   exists(d2, id, "failed") && !exists(d2, id, "sending"), "fail: ID.failed");
	queue_claimed_free(&c);
	T(queue_list(d2, &l, &e) == 0, "listing");
	bool found = false;
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.v[i].meta.id, id))
			found = l.v[i].state == QSTATE_FAILED && l.v[i].meta.attempts == 1 &&
				!strcmp(l.v[i].meta.last_error, "550 5.1.1 no such user");
	T(found, "ID.failed keeps the reason");
	queue_listing_free(&l);
	free(id);

	/* KeepQueue */
	id = write_basic(d2, 0, 0, 0);
	queue_claim(d2, &c, &e);
	T(queue_finish(&c, QUEUE_DONE, NULL, true, 0, &e) == 0 && exists(d2, id, "sent") &&
	   !exists(d2, id, "sending"), "done with keep: ID.sent");
	queue_claimed_free(&c);
	T(queue_list(d2, &l, &e) == 0 && l.n == 4 && l.v[3].state == QSTATE_SENT,
	   "listed as sent");
	queue_listing_free(&l);
	free(id);
	free(d2);
	free(dir);
}

/* ---- standard output ---- */

static void test_stdout(void)
{
	struct queue_entry_meta meta;
	struct message m;
	struct err e = { 0 };
	char *dir = new_dir(), *out = xasprintf("%s/stdout", base), *raw, *idline, *name;
	const char *text = "Subject: to stdout\n\nhello\n";
	size_t len;
	pid_t pid;

	meta_basic(&meta);
	msg_from(&m, text, false);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *id = NULL;
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(64);
		close(fd);
		int rc = queue_write("-", &meta, &m, &id, &e);
		free(id);
		_exit(rc == 0 ? 0 : 1);
	}
	T(wait_child(pid) == 0, "queue_write to \"-\" succeeds");
	raw = slurp(out, &len);
	T(raw && len > strlen(MAGIC) && !memcmp(raw, MAGIC, strlen(MAGIC)) &&
	   len > strlen(text) && !memcmp(raw + len - strlen(text), text, strlen(text)),
	   "standard output got the header and the message");
	T(access(dir, F_OK) < 0, "no queue directory was touched");
	idline = raw ? strstr(raw, "\nid ") : NULL;
	if (idline) {
		struct queue_listing l;
		struct queue_item *it;
		char *id = xstrndup(idline + 4, strcspn(idline + 4, "\n"));
		name = xasprintf("%s.queued", id);
		queue_open_dir(dir, true, &e);
		put_file(dir, name, raw, len);
		it = list_one(dir, &l);
		T(it && it->state == QSTATE_QUEUED && it->meta.msg_size == (off_t)strlen(text),
		   "what went to standard output is a valid entry");
		queue_listing_free(&l);
		free(name);
		free(id);
	} else {
		T(0, "id line in the output");
	}
	free(raw);
	message_free(&m);
	queue_meta_free(&meta);
	free(out);
	free(dir);
}

int main(void)
{
	char tmpl[] = "/tmp/test_queue.XXXXXX";

	if (!mkdtemp(tmpl))
		return 1;
	snprintf(base, sizeof base, "%s", tmpl);
	test_default_dir();
	test_dirs();
	test_roundtrip();
	test_hostile();
	test_strange_files();
	test_no_partial();
	test_concurrency();
	test_reclaim();
	test_retry();
	test_stdout();
	rm_rf(base);
	return tap_done();
}

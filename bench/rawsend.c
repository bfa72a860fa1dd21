/* rawsend.c - the floor of the benchmark.
 *
 * Sends one message over plain TCP the cheapest way a client can: the
 * body file is the message exactly as it goes on the wire (CR LF line
 * ends, dot-stuffed, ending with the "." line), prepared in advance, so
 * this program does no conversion at all.  It reads the greeting, sends
 * EHLO and waits for its reply, sends MAIL, RCPT and DATA in one write
 * (pipelined), waits for the three replies, copies the body file to the
 * socket with large read()/write() calls, waits for the reply to the
 * final dot, then sends QUIT and waits for its reply.
 *
 *   rawsend HOST PORT HELO FROM RCPT BODYFILE [BUFSIZE]
 *
 * Exit status: 0 when the message was accepted, 1 otherwise.  This is a
 * measuring tool for bench/run, not a mail client: it checks only the
 * first digit of each reply. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

static char rbuf[8192];
static size_t rlen;

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("rawsend: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one whole reply (the last line has a space after the code) and
 * returns its first digit; bytes after it stay in rbuf for the next
 * call, as pipelined replies may arrive together. */
static int read_reply(int fd)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(rbuf + start, '\n', rlen - start);

		if (nl == NULL) {
			ssize_t n;

			if (rlen == sizeof rbuf) {
				if (start == 0)
					die("reply line too long");
				memmove(rbuf, rbuf + start, rlen - start);
				rlen -= start;
				start = 0;
			}
			n = read(fd, rbuf + rlen, sizeof rbuf - rlen);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die("connection closed while waiting for a reply");
			rlen += (size_t)n;
			continue;
		}
		size_t linelen = (size_t)(nl - (rbuf + start)) + 1;
		int last = linelen < 4 || rbuf[start + 3] != '-';
		int digit = rbuf[start];

		start += linelen;
		if (last) {
			memmove(rbuf, rbuf + start, rlen - start);
			rlen -= start;
			return digit;
		}
	}
}

static void expect(int fd, int digit, const char *what)
{
	int got = read_reply(fd);

	if (got != digit)
		die("unexpected %cxx reply to %s", got, what);
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	size_t bufsize = 1 << 20;
	char cmd[2048];
	char *buf;
	int fd = -1, in, one = 1, rc;

	if (argc < 7 || argc > 8) {
		fprintf(stderr, "usage: rawsend HOST PORT HELO FROM RCPT BODYFILE [BUFSIZE]\n");
		return 2;
	}
	if (argc == 8)
		bufsize = strtoul(argv[7], NULL, 10);
	if (bufsize < 512)
		die("BUFSIZE too small");
	in = open(argv[6], O_RDONLY);
	if (in < 0)
		die("%s: %s", argv[6], strerror(errno));
	buf = malloc(bufsize);
	if (buf == NULL)
		die("out of memory");

	rc = getaddrinfo(argv[1], argv[2], &hints, &res);
	if (rc != 0)
		die("%s: %s", argv[1], gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die("cannot connect to %s port %s", argv[1], argv[2]);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	expect(fd, '2', "the connection");
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", argv[3]);
	write_all(fd, cmd, strlen(cmd));
	expect(fd, '2', "EHLO");
	snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", argv[4], argv[5]);
	write_all(fd, cmd, strlen(cmd));
	expect(fd, '2', "MAIL");
	expect(fd, '2', "RCPT");
	expect(fd, '3', "DATA");
	for (;;) {
		ssize_t n = read(in, buf, bufsize);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: %s", argv[6], strerror(errno));
		if (n == 0)
			break;
		write_all(fd, buf, (size_t)n);
	}
	expect(fd, '2', "the end of the data");
	write_all(fd, "QUIT\r\n", 6);
	expect(fd, '2', "QUIT");
	close(fd);
	close(in);
	free(buf);
	return 0;
}

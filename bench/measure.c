/* measure.c - run a command and report what it cost, for bench/run.
 *
 *   measure COUNT STDIN_FILE COMMAND [ARG...]
 *
 * Runs COMMAND COUNT times, one after the other, each with its standard
 * input opened afresh from STDIN_FILE ("-" for /dev/null), its standard
 * output sent to /dev/null and its standard error inherited.  A STDIN_FILE
 * written "|PATH" is fed through a pipe instead, as in "cat PATH | COMMAND":
 * each run starts its own cat(1) writing PATH into the pipe.  The cat is
 * waited for (its time is part of WALL_NS) but its CPU and memory are not
 * counted: they are the feeder's, not the command's.  Prints one line on
 * standard output:
 *
 *   STATUS WALL_NS CPU_US MAXRSS_KB
 *
 * STATUS is 0 when every run exited 0, else the exit status of the first
 * run that did not (128+N for a signal N), after which no further run is
 * started.  WALL_NS is the wall time from the first fork to the last
 * wait, CPU_US the user+system time of all runs added up, MAXRSS_KB the
 * largest peak resident set size of one run.
 *
 * Why a separate program: a child's peak RSS (ru_maxrss) includes the
 * memory of the process it was forked from up to the exec, so children
 * forked from a Python interpreter would all report its 15-20 MB.  This
 * program is small, so the figure it gets is the command's own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long tv_us(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
}

int main(int argc, char **argv)
{
	long count, i;
	long long t0, cpu = 0;
	long maxrss = 0;
	int status = 0, piped;

	if (argc < 4) {
		fprintf(stderr, "usage: measure COUNT STDIN_FILE COMMAND [ARG...]\n");
		return 2;
	}
	count = strtol(argv[1], NULL, 10);
	if (count < 1) {
		fprintf(stderr, "measure: bad COUNT\n");
		return 2;
	}
	piped = argv[2][0] == '|';
	t0 = now_ns();
	for (i = 0; i < count && status == 0; i++) {
		struct rusage ru;
		int ws, pfd[2] = { -1, -1 };
		pid_t feeder = -1, pid;

		if (piped) {
			if (pipe(pfd) < 0) {
				perror("measure: pipe");
				return 2;
			}
			feeder = fork();
			if (feeder < 0) {
				perror("measure: fork");
				return 2;
			}
			if (feeder == 0) {
				int null = open("/dev/null", O_RDONLY);

				if (null < 0) {
					perror("measure: /dev/null");
					_exit(127);
				}
				dup2(null, 0);
				dup2(pfd[1], 1);
				close(pfd[0]);
				close(pfd[1]);
				if (null > 2)
					close(null);
				execlp("cat", "cat", "--", argv[2] + 1, (char *)NULL);
				fprintf(stderr, "measure: cat: %s\n", strerror(errno));
				_exit(127);
			}
			close(pfd[1]);
		}
		pid = fork();
		if (pid < 0) {
			perror("measure: fork");
			return 2;
		}
		if (pid == 0) {
			const char *in = strcmp(argv[2], "-") == 0 ? "/dev/null" : argv[2];
			int fd = piped ? pfd[0] : open(in, O_RDONLY);
			int null = open("/dev/null", O_WRONLY);

			if (fd < 0 || null < 0) {
				fprintf(stderr, "measure: %s: %s\n", in, strerror(errno));
				_exit(127);
			}
			dup2(fd, 0);
			dup2(null, 1);
			if (fd > 2)
				close(fd);
			if (null > 2)
				close(null);
			execvp(argv[3], argv + 3);
			fprintf(stderr, "measure: %s: %s\n", argv[3], strerror(errno));
			_exit(127);
		}
		if (piped)
			close(pfd[0]);
		while (wait4(pid, &ws, 0, &ru) < 0) {
			if (errno != EINTR) {
				perror("measure: wait4");
				return 2;
			}
		}
		cpu += tv_us(ru.ru_utime) + tv_us(ru.ru_stime);
		if (ru.ru_maxrss > maxrss)
			maxrss = ru.ru_maxrss;
		if (WIFEXITED(ws))
			status = WEXITSTATUS(ws);
		else if (WIFSIGNALED(ws))
			status = 128 + WTERMSIG(ws);
		if (piped) {
			int fs;

			while (waitpid(feeder, &fs, 0) < 0) {
				if (errno != EINTR) {
					perror("measure: waitpid");
					return 2;
				}
			}
			/* cat killed by SIGPIPE: the command stopped reading early,
			 * which its own status reports; any other cat failure is ours. */
			if (!(WIFSIGNALED(fs) && WTERMSIG(fs) == SIGPIPE) &&
			    !(WIFEXITED(fs) && WEXITSTATUS(fs) == 0) &&
			    status == 0)
				status = 126;
		}
	}
	printf("%d %lld %lld %ld\n", status, now_ns() - t0, cpu, maxrss);
	return 0;
}

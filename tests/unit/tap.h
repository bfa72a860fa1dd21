/* tap.h - the TAP producer every unit test program uses.
 *
 * Two styles:
 *   ok(cond, "desc %d", x)       one check is one test line
 *   tap_begin(); TAP_EXPECT(cond, "why %d", x); ...; tap_end("desc")
 *                                many checks make one test line, with at
 *                                most five diagnostics for the failures
 * Conditions are evaluated exactly once: they may call the code under
 * test.  main() ends with "return tap_done();". */
#ifndef SMTPSEND_TAP_H
#define SMTPSEND_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int tap_n, tap_failed;
static bool tap_group_ok;
static int tap_group_diags;

__attribute__((format(printf, 4, 5), unused))
static bool tap_check(bool pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%s %d - ", pass ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	return pass;
}

/* The comma operator evaluates cond before the description's arguments,
 * which often show what cond has just computed. */
__attribute__((unused)) static bool tap_pass_;
#define ok(cond, ...) (tap_pass_ = !!(cond), tap_check(tap_pass_, __FILE__, __LINE__, __VA_ARGS__))

__attribute__((unused))
static void tap_skip(const char *why)
{
	printf("ok %d # SKIP %s\n", ++tap_n, why);
}

__attribute__((unused))
static void tap_begin(void)
{
	tap_group_ok = true;
	tap_group_diags = 0;
}

#define TAP_EXPECT(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			tap_group_ok = false;                                   \
			if (tap_group_diags++ < 5) {                            \
				printf("#   %s:%d: %s: ", __FILE__, __LINE__, #cond); \
				printf(__VA_ARGS__);                            \
				printf("\n");                                   \
			}                                                       \
		}                                                               \
	} while (0)

__attribute__((unused))
static void tap_end(const char *desc)
{
	tap_n++;
	if (!tap_group_ok)
		tap_failed++;
	printf("%sok %d - %s\n", tap_group_ok ? "" : "not ", tap_n, desc);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif

/* dsn.c - DSN parameter values (RFC 3461). */
#include "dsn.h"

#include <stdlib.h>
#include <string.h>

void dsn_xtext(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c < 33 || *c > 126 || *c == '+' || *c == '=') {
			sb_addc(out, '+');
			sb_addc(out, hex[*c >> 4]);
			sb_addc(out, hex[*c & 15]);
		} else {
			sb_addc(out, (char)*c);
		}
	}
}

int dsn_notify_parse(const char *value, char **out, struct err *e)
{
	char *v = xstrdup(value), *save = NULL;
	struct strbuf sb = STRBUF_INIT;
	bool never = false, other = false;

	for (char *t = strtok_r(v, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		if (ascii_casecmp(t, "never") == 0) {
			never = true;
		} else if (ascii_casecmp(t, "success") == 0 || ascii_casecmp(t, "failure") == 0 ||
			   ascii_casecmp(t, "delay") == 0) {
			other = true;
		} else {
			err_set(e, ERR_USAGE, 0, "NOTIFY %s: use never, or any of success,failure,delay",
				value);
			goto bad;
		}
		for (char *c = t; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		sb_addf(&sb, "%s%s", sb.len ? "," : "", t);
	}
	if (never && other) {
		err_set(e, ERR_USAGE, 0, "NOTIFY %s: never cannot be combined with other values", value);
		goto bad;
	}
	if (!sb.len) {
		err_set(e, ERR_USAGE, 0, "NOTIFY needs a value: never, or any of success,failure,delay");
		goto bad;
	}
	free(v);
	*out = sb.s;
	return 0;
bad:
	free(v);
	sb_free(&sb);
	return -1;
}

/* "TYPE;ADDRESS" as the wire wants it: TYPE checked, ADDRESS as xtext. */
static int orcpt_value(const char *v, char **out, struct err *e)
{
	const char *semi = strchr(v, ';');
	if (!semi || semi == v || !semi[1]) {
		err_set(e, ERR_USAGE, 0, "ORCPT=%s: give TYPE;ADDRESS, e.g. rfc822;bob@example.org", v);
		return -1;
	}
	for (const char *c = v; c < semi; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '-';
		if (!ok) {
			err_set(e, ERR_USAGE, 0, "ORCPT=%s: the address type is one word (rfc822, utf-8)", v);
			return -1;
		}
	}
	struct strbuf sb = STRBUF_INIT;
	sb_add(&sb, v, (size_t)(semi - v + 1));
	dsn_xtext(&sb, semi + 1);
	*out = sb.s;
	return 0;
}

/* Parse one OPTIONS string into rc's notify/orcpt. */
static int apply_options(const char *opts, struct rcpt *rc, struct err *e)
{
	char *v = xstrdup(opts), *save = NULL;
	int r = 0;
	bool want_notify_value = false;

	for (char *t = strtok_r(v, " \t", &save); t && r == 0; t = strtok_r(NULL, " \t", &save)) {
		char *notify = NULL;
		if (want_notify_value) {
			/* the reference's "NOTIFY SUCCESS,FAILURE" */
			want_notify_value = false;
			r = dsn_notify_parse(t, &notify, e);
		} else if (ascii_casecmp(t, "NOTIFY") == 0) {
			want_notify_value = true;
			continue;
		} else if (ascii_ncasecmp(t, "NOTIFY=", 7) == 0) {
			r = dsn_notify_parse(t + 7, &notify, e);
		} else if (ascii_ncasecmp(t, "ORCPT=", 6) == 0) {
			free(rc->orcpt);
			rc->orcpt = NULL;
			r = orcpt_value(t + 6, &rc->orcpt, e);
			continue;
		} else {
			err_set(e, ERR_USAGE, 0, "recipient option \"%s\" for <%s>: only NOTIFY and ORCPT "
				"are recipient options", t, rc->addr);
			r = -1;
		}
		if (notify) {
			free(rc->notify);
			rc->notify = notify;
		}
	}
	if (r == 0 && want_notify_value) {
		err_set(e, ERR_USAGE, 0, "recipient options for <%s>: NOTIFY without a value", rc->addr);
		r = -1;
	}
	free(v);
	return r;
}

int dsn_recipient_options(const struct strlist *opts, struct envelope *env, struct err *e)
{
	for (size_t i = 0; i < opts->n; i++) {
		const char *entry = opts->v[i];
		/* The first ':' followed by an option keyword ends the address
		 * (a quoted local part may hold ':' too). */
		const char *sep = NULL;
		for (const char *c = strchr(entry, ':'); c; c = strchr(c + 1, ':')) {
			const char *o = c + 1;
			while (*o == ' ')
				o++;
			if (ascii_ncasecmp(o, "NOTIFY", 6) == 0 || ascii_ncasecmp(o, "ORCPT", 5) == 0) {
				sep = c;
				break;
			}
		}
		if (!sep)
			sep = strrchr(entry, ':'); /* then the options say what is wrong */
		if (!sep || sep == entry) {
			err_set(e, ERR_USAGE, 0, "recipient options \"%s\": write ADDRESS:NOTIFY=... or "
				"ADDRESS:ORCPT=...", entry);
			return -1;
		}
		char *addr = xstrndup(entry, (size_t)(sep - entry));
		struct rcpt *rc = NULL;
		for (size_t k = 0; k < env->nrcpt; k++)
			if (ascii_casecmp(env->rcpt[k].addr, addr) == 0)
				rc = &env->rcpt[k];
		if (!rc) {
			err_set(e, ERR_USAGE, 0, "recipient options for <%s>, which is not a recipient", addr);
			free(addr);
			return -1;
		}
		free(addr);
		if (apply_options(sep + 1, rc, e) < 0)
			return -1;
	}
	return 0;
}

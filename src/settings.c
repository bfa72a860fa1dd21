/* settings.c - the layers of settings: the system rc file, the user's rc
 * file (or -C FILE), each with its defaults and the chosen account, then
 * the command line's own settings, each layer overriding only what it
 * names. */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "rcfile.h"
#include "submit.h"
#include "util.h"

struct apply_ctx {
	struct props *p;
};

static int apply_rc_setting(void *ctx, const char *key, const char *value, const char *path,
			    int line, struct err *e)
{
	struct apply_ctx *a = ctx;
	/* An account's "from" is the sender address, unless it is a pattern
	 * ("*@example.org") that only chooses the account. */
	if (ascii_casecmp(key, "from") == 0 && strpbrk(value, "*?["))
		return 0;
	if (ascii_casecmp(key, "from") == 0) {
		/* kept apart for RewriteEnvelopeFrom, which -f cannot override */
		static char *account_from;
		free(account_from);
		account_from = xstrdup(value);
		submit_account_from = account_from;
	}
	if (props_set(a->p, key, value, e) < 0) {
		char msg[sizeof e->msg];
		snprintf(msg, sizeof msg, "%.200s:%d: %.800s", path, line, e->msg);
		err_set(e, ERR_CONFIG, 0, "%s", msg);
		return -1;
	}
	return 0;
}

/* Apply one rc file (defaults + chosen account).  *found_account is set
 * when the named account exists in this file. */
static int apply_rc_file(const char *path, bool must_exist, const char *account,
			 const char *envelope_from, struct props *p, bool *found_account,
			 struct err *e)
{
	struct rcfile rc;
	const struct rc_account *acc;
	struct apply_ctx ctx = { p };
	int ret = 0;

	if (rcfile_load(path, &rc, e) < 0) {
		if (e->cls == ERR_NOINPUT && !must_exist) {
			err_clear(e);
			return 0;
		}
		if (e->cls == ERR_NOINPUT)
			e->cls = ERR_CONFIG;
		return -1;
	}
	if (account && !rcfile_find(&rc, account)) {
		/* the account may live in the other file */
		ret = rcfile_apply(&rc, &rc.acc[0], apply_rc_setting, &ctx, e);
	} else {
		if (account)
			*found_account = true;
		ret = rcfile_choose(&rc, account, envelope_from, &acc, e);
		if (ret == 0)
			ret = rcfile_apply(&rc, acc, apply_rc_setting, &ctx, e);
	}
	rcfile_free(&rc);
	return ret;
}

/* The bare address in a -f/--from value ("Name <a@b>" -> "a@b"), for
 * choosing the account; NULL when there is none. */
static char *bare_address(const char *text)
{
	struct addr a;
	struct err ignored;
	char *out = NULL;
	if (!text || addr_parse_one(text, ADDR_ALLOW_LOCAL, &a, &ignored) < 0)
		return NULL;
	out = a.domain ? xasprintf("%s@%s", a.local, a.domain) : xstrdup(a.local);
	addr_free(&a);
	return out;
}

/* The last value of name (canonical property name) among the layer's
 * settings, or NULL. */
static const char *layer_get(const struct settings_layer *c, const char *name)
{
	for (size_t i = c->keys->n; i-- > 0;)
		if (ascii_casecmp(c->keys->v[i], name) == 0)
			return c->values->v[i];
	return NULL;
}

int settings_load(const struct settings_layer *c, struct props *p, struct err *e)
{
	const char *given = layer_get(c, "ReturnPath");
	bool found = false;
	char *user_rc = NULL;
	int ret = 0;

	if (!given)
		given = layer_get(c, "From");
	char *from = bare_address(given);
	if (c->config_file) {
		ret = apply_rc_file(c->config_file, true, c->account, from, p, &found, e);
	} else {
		ret = apply_rc_file(rcfile_system_path(), false, c->account, from, p, &found, e);
		user_rc = rcfile_user_path();
		if (ret == 0 && user_rc)
			ret = apply_rc_file(user_rc, false, c->account, from, p, &found, e);
	}
	free(user_rc);
	free(from);
	if (ret == 0 && c->account && !found) {
		err_set(e, ERR_CONFIG, 0, "no account \"%s\" in %s", c->account,
			c->config_file ? c->config_file : "the rc files");
		ret = -1;
	}
	for (size_t i = 0; ret == 0 && i < c->keys->n; i++) {
		if (props_set(p, c->keys->v[i], c->values->v[i], e) < 0) {
			/* a bad value on the command line is a usage error */
			if (e->cls == ERR_CONFIG)
				e->cls = ERR_USAGE;
			ret = -1;
		}
	}
	return ret;
}


/* header.c - recipients from the message header, for sendmail -t. */
#include "header.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "util.h"

static bool is_resent(const char *name)
{
	return ascii_ncasecmp(name, "Resent-", 7) == 0;
}

static bool is_trace(const char *name)
{
	return ascii_casecmp(name, "Received") == 0 || ascii_casecmp(name, "Return-Path") == 0;
}

/* ---- a set of the addresses already collected ---- */

struct seen {
	size_t *slot;   /* 1 + index into the result, 0 when free */
	size_t mask;    /* slots - 1, slots a power of two */
	size_t n;
};

static uint64_t hash_ci(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 0x100000001b3ULL;
	}
	return h;
}

static void seen_put(struct seen *st, const struct hdr_rcpts *r, size_t idx)
{
	size_t k = (size_t)hash_ci(r->v[idx].addr) & st->mask;

	while (st->slot[k])
		k = (k + 1) & st->mask;
	st->slot[k] = idx + 1;
	st->n++;
}

/* Index of the collected entry equal to addr (ignoring case), or SIZE_MAX. */
static size_t seen_find(const struct seen *st, const struct hdr_rcpts *r, const char *addr)
{
	size_t k = (size_t)hash_ci(addr) & st->mask;

	for (; st->slot[k]; k = (k + 1) & st->mask)
		if (ascii_casecmp(r->v[st->slot[k] - 1].addr, addr) == 0)
			return st->slot[k] - 1;
	return SIZE_MAX;
}

static void seen_grow(struct seen *st, const struct hdr_rcpts *r, size_t base)
{
	size_t slots = st->mask ? (st->mask + 1) * 2 : 64;

	free(st->slot);
	st->slot = xcalloc(slots, sizeof *st->slot);
	st->mask = slots - 1;
	st->n = 0;
	for (size_t i = base; i < r->n; i++)
		seen_put(st, r, i);
}

/* ---- collecting ---- */

static void rcpts_push(struct hdr_rcpts *r, char *addr, enum rcpt_kind kind, bool utf8)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, r->cap * sizeof *r->v);
	}
	r->v[r->n].addr = addr;
	r->v[r->n].kind = kind;
	r->v[r->n].smtputf8 = utf8;
	r->n++;
}

/* Report a fault of field h: the parser's text without its generic
 * prefix, since the field name says what was being parsed. */
static int field_error(const struct spool_header *h, struct err *e)
{
	static const char prefix[] = "bad address: ";
	const char *msg = e->msg;
	char buf[sizeof e->msg];

	if (strncmp(msg, prefix, sizeof prefix - 1) == 0)
		msg += sizeof prefix - 1;
	snprintf(buf, sizeof buf, "%s", msg);
	err_set(e, ERR_DATA, 0, "%s: %s", h->name, buf);
	return -1;
}

static int add_field(const struct spool_header *h, enum rcpt_kind kind, struct hdr_rcpts *out,
		     size_t base, struct seen *st, struct err *e)
{
	struct addr_list al = ADDR_LIST_INIT;
	int rc = 0;

	if (addr_parse_listn(h->value, strlen(h->value), ADDR_ALLOW_LOCAL, &al, e) < 0) {
		addr_list_free(&al);
		return field_error(h, e);
	}
	for (size_t i = 0; i < al.n; i++) {
		char *env;
		bool utf8;
		size_t dup;

		if (addr_envelope(&al.v[i], &env, &utf8, e) < 0) {
			rc = field_error(h, e);
			break;
		}
		dup = seen_find(st, out, env);
		if (dup != SIZE_MAX) {
			/* Named twice: one RCPT, as the most visible kind, so
			 * that StopOnToErrors and the like still apply. */
			if (kind < out->v[dup].kind)
				out->v[dup].kind = kind;
			free(env);
			continue;
		}
		rcpts_push(out, env, kind, utf8);
		if ((st->n + 1) * 2 > st->mask + 1)
			seen_grow(st, out, base);
		else
			seen_put(st, out, out->n - 1);
	}
	addr_list_free(&al);
	return rc;
}

static bool already_skipped(const struct message *m, const struct spool_header *h)
{
	for (size_t k = 0; k < m->nskip; k++)
		if (m->skip_start[k] <= h->start && h->end <= m->skip_end[k])
			return true;
	return false;
}

/* The kind of recipient field a field name is, for the set in use. */
static int rcpt_field(const char *name, bool resent)
{
	if (resent) {
		if (!is_resent(name))
			return -1;
		name += 7;
	}
	if (ascii_casecmp(name, "To") == 0)
		return RCPT_TO;
	if (ascii_casecmp(name, "Cc") == 0)
		return RCPT_CC;
	if (ascii_casecmp(name, "Bcc") == 0)
		return RCPT_BCC;
	return -1;
}

/* Mark the fields of the newest Resent block in in_block[]; false when
 * the message has no Resent-* field. */
static bool newest_resent_block(const struct spool *sp, bool *in_block)
{
	size_t first = 0, nseen = 0;
	const char **seen;

	while (first < sp->nhdr && !is_resent(sp->hdr[first].name))
		first++;
	if (first == sp->nhdr)
		return false;
	seen = xmalloc((sp->nhdr - first) * sizeof *seen);
	for (size_t i = first; i < sp->nhdr; i++) {
		const char *n = sp->hdr[i].name;
		bool again = false;

		if (is_trace(n))
			continue;
		if (!is_resent(n))
			break;
		for (size_t k = 0; k < nseen && !again; k++)
			again = ascii_casecmp(seen[k], n) == 0;
		if (again)
			break;
		seen[nseen++] = n;
		in_block[i] = true;
	}
	free(seen);
	return true;
}

int header_recipients(struct message *m, struct hdr_rcpts *out, struct err *e)
{
	const struct spool *sp = &m->sp;
	size_t base = out->n;
	struct seen st = { NULL, 0, 0 };
	bool *in_block, resent;
	int rc = 0;

	for (size_t i = 0; i < sp->nhdr; i++) {
		const struct spool_header *h = &sp->hdr[i];

		if ((ascii_casecmp(h->name, "Bcc") == 0 || ascii_casecmp(h->name, "Resent-Bcc") == 0) &&
		    !already_skipped(m, h) && message_skip_header(m, i, e) < 0)
			return -1;
	}

	in_block = xcalloc(sp->nhdr ? sp->nhdr : 1, sizeof *in_block);
	resent = newest_resent_block(sp, in_block);
	seen_grow(&st, out, base);
	for (size_t i = 0; i < sp->nhdr && rc == 0; i++) {
		int kind = rcpt_field(sp->hdr[i].name, resent);

		if (kind < 0 || (resent && !in_block[i]))
			continue;
		rc = add_field(&sp->hdr[i], (enum rcpt_kind)kind, out, base, &st, e);
	}
	if (rc < 0) {
		while (out->n > base)
			free(out->v[--out->n].addr);
	}
	free(st.slot);
	free(in_block);
	return rc;
}

void hdr_rcpts_free(struct hdr_rcpts *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].addr);
	free(r->v);
	*r = (struct hdr_rcpts)HDR_RCPTS_INIT;
}

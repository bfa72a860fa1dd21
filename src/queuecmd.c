/* queuecmd.c - flushing and listing the queue. */
#include "queuecmd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "session.h"
#include "submit.h"
#include "util.h"

char *queuecmd_dir(const struct props *p)
{
	return *p->queue_dir ? xstrdup(p->queue_dir) : queue_default_dir();
}

/* The envelope stored in an entry. */
static int entry_envelope(const struct queue_entry_meta *meta, struct envelope *env, struct err *e)
{
	memset(env, 0, sizeof *env);
	env->from = xstrdup(meta->from);
	for (size_t i = 0; i < meta->rcpts.n; i++) {
		const char *r = meta->rcpts.v[i];
		enum rcpt_kind kind;
		if (strncmp(r, "to:", 3) == 0)
			kind = RCPT_TO;
		else if (strncmp(r, "cc:", 3) == 0)
			kind = RCPT_CC;
		else if (strncmp(r, "bcc:", 4) == 0)
			kind = RCPT_BCC;
		else {
			err_set(e, ERR_DATA, 0, "queue entry %s: bad recipient \"%s\"", meta->id, r);
			return -1;
		}
		const char *addr = strchr(r, ':') + 1;
		env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof *env->rcpt);
		memset(&env->rcpt[env->nrcpt], 0, sizeof *env->rcpt);
		env->rcpt[env->nrcpt].addr = xstrdup(addr);
		env->rcpt[env->nrcpt].kind = kind;
		for (const unsigned char *c = (const unsigned char *)addr; *c; c++)
			env->smtputf8 |= *c >= 0x80;
		env->nrcpt++;
	}
	return 0;
}

/* The settings stored with an entry, as two lists. */
static void entry_settings(const struct queue_entry_meta *meta, struct strlist *keys,
			   struct strlist *values)
{
	for (size_t i = 0; i < meta->settings.n; i++) {
		const char *kv = meta->settings.v[i];
		const char *eq = strchr(kv, '=');
		if (!eq)
			continue;
		sl_add_owned(keys, xstrndup(kv, (size_t)(eq - kv)));
		sl_add(values, eq + 1);
	}
}

/* The properties for one entry: rc files with the entry's account, the
 * settings stored with it, then the flusher's own command line. */
static int entry_props(const struct settings_layer *flusher, const struct queue_entry_meta *meta,
		       struct props *p, struct err *e)
{
	struct strlist keys = STRLIST_INIT, values = STRLIST_INIT;
	entry_settings(meta, &keys, &values);
	for (size_t i = 0; i < flusher->keys->n; i++) {
		sl_add(&keys, flusher->keys->v[i]);
		sl_add(&values, flusher->values->v[i]);
	}
	struct settings_layer l = {
		.config_file = flusher->config_file,
		.account = *meta->account ? meta->account : flusher->account,
		.keys = &keys,
		.values = &values,
	};
	props_init(p);
	int r = settings_load(&l, p, e);
	sl_free(&keys);
	sl_free(&values);
	return r;
}

/* Entries whose connection settings agree go over one connection: the
 * channel open for the last of them, with the properties it was opened
 * with. */
struct flush_group {
	struct deliver_channel *channel;
	struct props p;          /* the channel's; valid while channel is set */
	unsigned messages;
	/* the entry p was made for: an entry with the same account and
	 * settings has the same properties, without reading the rc files */
	char *account;
	struct strlist settings;
};

static void group_close(struct flush_group *g)
{
	if (!g->channel)
		return;
	deliver_close(g->channel);
	g->channel = NULL;
	props_free(&g->p);
	free(g->account);
	g->account = NULL;
	sl_free(&g->settings);
	if (g->messages > 1)
		log_info("queue: %u messages went over one connection", g->messages);
	g->messages = 0;
}

/* The channel for an entry with properties p: the open one when its
 * connection settings are the same, else a new one.  Errors: those of
 * entry_props() and deliver_open(). */
static struct deliver_channel *group_channel(struct flush_group *g, const struct settings_layer *flusher,
					     const struct queue_entry_meta *meta, const struct props *p,
					     struct err *e)
{
	if (g->channel && deliver_same_connection(p, &g->p)) {
		g->messages++;
		return g->channel;
	}
	group_close(g);
	if (entry_props(flusher, meta, &g->p, e) < 0) {
		props_free(&g->p);
		return NULL;
	}
	if (deliver_open(&g->p, &g->channel, e) < 0) {
		props_free(&g->p);
		g->channel = NULL;
		return NULL;
	}
	g->messages = 1;
	g->account = xstrdup(meta->account);
	for (size_t i = 0; i < meta->settings.n; i++)
		sl_add(&g->settings, meta->settings.v[i]);
	return g->channel;
}

/* Does meta have the account and settings the group's properties were
 * made from? */
static bool group_has_settings(const struct flush_group *g, const struct queue_entry_meta *meta)
{
	if (!g->channel || strcmp(g->account, meta->account) != 0 ||
	    g->settings.n != meta->settings.n)
		return false;
	for (size_t i = 0; i < meta->settings.n; i++)
		if (strcmp(g->settings.v[i], meta->settings.v[i]) != 0)
			return false;
	return true;
}

struct flush_run;

/* One entry on its way: what its outcome needs, kept until the server
 * answered it (a flush sends the next entry before that answer comes)
 * and the entry was moved to its next state. */
struct flush_job {
	struct queue_claimed c;
	struct props own, *p;    /* p: own, or the group's */
	bool have_own;
	struct message m;
	struct envelope env;
	struct strlist keys, values;
	struct submit_opts o;
	struct submit_report rep;
	/* from p: a group's p may be gone by the time the entry is moved */
	bool keep_queue;
	long queue_max_age;
	struct flush_counts *n;
	struct flush_run *run;
	struct flush_job *next;  /* in flush_run.answered */
};

/* One flush.  While the server works on what was sent, the file system
 * work is done (deliver_set_idle): answered entries are moved to their
 * next state, and the entry after the one being sent is claimed, so that
 * the next envelope can follow the end of this message at once. */
struct flush_run {
	const struct settings_layer *flusher;
	const char *dir;
	struct flush_counts *n;
	struct queue_scan *scan;
	struct strset seen;      /* ids claimed by this flush */
	struct flush_group g;
	/* the entry claimed ahead: ahead_k as run_claim() returned */
	bool have_ahead;
	int ahead_k;
	struct queue_claimed ahead;
	struct err ahead_err;
	bool exhausted;          /* no entry left to claim */
	/* entries whose outcome is known, to be moved, oldest first */
	struct flush_job *answered, **answered_tail;
};

/* Move the entry to its next state, count it, and free the job. */
static void job_settle(struct flush_job *j, enum queue_outcome how, const char *reason)
{
	struct err fe = { 0 };
	const char *id = j->c.meta.id;
	if (queue_finish(&j->c, how, reason, j->keep_queue, j->queue_max_age, &fe) < 0) {
		log_warn("queue %s: %s", id, fe.msg);
		j->n->problems++;
	} else if (how == QUEUE_DONE) {
		j->n->sent++;
	} else if (how == QUEUE_RETRY) {
		j->n->retried++;
		log_warn("queue %s: will be retried: %s", id, reason);
	} else {
		j->n->failed++;
		log_warn("queue %s: failed for good: %s", id, reason);
	}
	submit_report_free(&j->rep);
	message_free(&j->m);
	envelope_free(&j->env);
	if (j->have_own)
		props_free(&j->own);
	sl_free(&j->keys);
	sl_free(&j->values);
	queue_claimed_free(&j->c);
	free(j);
}

/* What the report of a sending makes of the entry. */
static void job_decide(struct flush_job *j)
{
	const struct submit_report *rep = &j->rep;
	char reason[sizeof rep->v[0].msg + 16] = "";
	enum queue_outcome how;
	if (rep->delivered || rep->worst == ERR_OK) {
		how = QUEUE_DONE;
		for (size_t i = 0; i < rep->n; i++)
			log_warn("queue %s: %s", j->c.meta.id, rep->v[i].msg);
	} else {
		/* only the message or its recipients can fail for good; a
		 * configuration, authentication or server problem may be
		 * fixed before the next attempt (and QueueMaxAge ends the
		 * waiting) */
		how = rep->worst == ERR_RCPT || rep->worst == ERR_DATA ? QUEUE_FAIL : QUEUE_RETRY;
		snprintf(reason, sizeof reason, "%s", rep->n ? rep->v[rep->n - 1].msg : "failed");
	}
	job_settle(j, how, reason);
}

/* Move every answered entry to its next state. */
static void run_settle_answered(struct flush_run *run)
{
	while (run->answered) {
		struct flush_job *j = run->answered;
		run->answered = j->next;
		if (!run->answered)
			run->answered_tail = &run->answered;
		job_decide(j);
	}
}

/* The server answered the entry: it is moved when the flush next waits
 * for the server (or at its end).  The delay widens the window in which
 * a crash means a duplicate (after the 250, before the removal) by one
 * message at most. */
static void job_outcome(void *ctx, int rc, const struct deliver_result *res, const struct err *e)
{
	struct flush_job *j = ctx;
	struct flush_run *run = j->run;
	submit_end(&j->o, &j->env, &j->m, rc, res, e, &j->rep);
	j->next = NULL;
	*run->answered_tail = j;
	run->answered_tail = &j->next;
}

/* Claim the next entry into *c: 1 claimed, 0 none left, -1 the queue
 * directory failed (e set). */
static int run_claim(struct flush_run *run, struct queue_claimed *c, struct err *e)
{
	if (run->exhausted) {
		memset(c, 0, sizeof *c);
		c->fd = c->dirfd = -1;
		return 0;
	}
	int k = queue_claim_next(run->dir, run->scan, c, e);
	for (size_t i = 0; i < c->problems.n; i++) {
		log_warn("queue: %s", c->problems.v[i]);
		run->n->problems++;
	}
	/* an entry that could not be settled comes straight back: once per
	 * flush is enough */
	if (k > 0 && strset_has(&run->seen, c->meta.id)) {
		log_warn("queue %s: could not be settled; left for the next flush", c->meta.id);
		k = 0;
	}
	if (k > 0)
		strset_add(&run->seen, c->meta.id);
	else
		run->exhausted = true;
	return k;
}

/* deliver_idle_fn: the server is busy with what was sent. */
static void run_idle(void *ctx)
{
	struct flush_run *run = ctx;
	run_settle_answered(run);
	if (!run->have_ahead) {
		run->ahead_k = run_claim(run, &run->ahead, &run->ahead_err);
		run->have_ahead = true;
	}
}

/* The next entry: the one claimed ahead, else a new claim. */
static int run_next(struct flush_run *run, struct queue_claimed *c, struct err *e)
{
	if (!run->have_ahead)
		return run_claim(run, c, e);
	run->have_ahead = false;
	*c = run->ahead;
	*e = run->ahead_err;
	return run->ahead_k;
}

/* Send one claimed entry (taken over from *c); it is settled when the
 * server has answered, maybe during the next entry's sending. */
static void flush_one(struct flush_run *run, struct queue_claimed *c)
{
	struct flush_group *g = &run->g;
	struct flush_job *j = xcalloc(1, sizeof *j);
	struct err e = { 0 };

	j->c = *c;
	memset(c, 0, sizeof *c);
	c->fd = c->dirfd = -1;
	j->n = run->n;
	j->run = run;
	j->p = &j->own;
	message_init(&j->m);
	/* recipients refused for now after the others got it go back to the
	 * queue as an entry of their own, with this entry's settings */
	entry_settings(&j->c.meta, &j->keys, &j->values);
	j->o = (struct submit_opts){ .queue_dir = run->dir, .queue_partial_only = true,
				     .account = j->c.meta.account, .replay_keys = &j->keys,
				     .replay_values = &j->values };
	int ok = 0;
	if (group_has_settings(g, &j->c.meta)) {
		/* the properties of the entry before: the same */
		j->p = &g->p;
		j->o.channel = g->channel;
		g->messages++;
	} else {
		j->have_own = true; /* entry_props() initialises own in any case */
		ok = entry_props(run->flusher, &j->c.meta, &j->own, &e);
		if (ok == 0 && !(j->o.channel = group_channel(g, run->flusher, &j->c.meta, &j->own, &e)))
			ok = -1;
		if (ok == 0)
			deliver_set_idle(j->o.channel, run_idle, run);
	}
	j->keep_queue = j->p->keep_queue;
	j->queue_max_age = j->p->queue_max_age;
	if (ok < 0 || queue_claimed_read(&j->c, NULL, &j->m, &e) < 0 ||
	    entry_envelope(&j->c.meta, &j->env, &e) < 0) {
		/* a setting or a file that no longer works: try again later,
		 * the user may fix the rc file */
		job_settle(j, QUEUE_RETRY, e.msg);
		return;
	}
	log_info("queue: sending %s (attempt %u)", j->c.meta.id, j->c.meta.attempts + 1);
	if (submit_begin(j->p, &j->o, &j->env, &j->m, &j->rep) <= 0) {
		job_decide(j);
		return;
	}
	deliver_send_async(j->o.channel, j->p, &j->m, &j->env, job_outcome, j);
}

int queuecmd_flush(const struct settings_layer *flusher, const char *dir, struct flush_counts *n,
		   struct err *e)
{
	struct flush_run run = { .flusher = flusher, .dir = dir, .n = n };
	int k;

	memset(n, 0, sizeof *n);
	run.answered_tail = &run.answered;
	int ok = queue_open_dir(dir, false, e);
	if (ok <= 0)
		return ok; /* no queue: nothing to flush */
	run.scan = queue_scan_new();
	for (;;) {
		struct queue_claimed c;
		k = run_next(&run, &c, e);
		if (k <= 0) {
			queue_claimed_free(&c);
			break;
		}
		flush_one(&run, &c);
		queue_claimed_free(&c);
	}
	group_close(&run.g);
	run_settle_answered(&run);
	if (run.have_ahead) /* claimed while the last group said QUIT: empty */
		queue_claimed_free(&run.ahead);
	queue_sync_dir(dir);
	queue_scan_free(run.scan);
	strset_free(&run.seen);
	return k;
}

static void print_age(FILE *out, time_t t)
{
	long s = (long)(time(NULL) - t);
	if (s < 0)
		s = 0;
	if (s < 3600)
		fprintf(out, "%3ldm", s / 60);
	else if (s < 86400)
		fprintf(out, "%3ldh", s / 3600);
	else
		fprintf(out, "%3ldd", s / 86400);
}

int queuecmd_list(const char *dir, FILE *out, struct err *e)
{
	struct queue_listing l;
	char buf[600];

	if (queue_list(dir, &l, e) < 0) {
		queue_listing_free(&l);
		return -1;
	}
	if (l.n == 0) {
		fprintf(out, "Mail queue is empty\n");
		queue_listing_free(&l);
		return 0;
	}
	fprintf(out, "%-40s %-8s %10s  age  tries  sender / recipients / last error\n", "id", "state",
		"size");
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_item *it = &l.v[i];
		const struct queue_entry_meta *m = &it->meta;
		fprintf(out, "%-40s %-8s %10lld ", m->id ? m->id : it->name,
			queue_state_name(it->state), (long long)it->file_size);
		if (it->state == QSTATE_CORRUPT) {
			fprintf(out, "            %s\n", sanitize(buf, sizeof buf, it->reason ? it->reason : "",
								 it->reason ? strlen(it->reason) : 0));
			continue;
		}
		print_age(out, m->created);
		fprintf(out, "  %5u  <%s>\n", m->attempts, m->from);
		for (size_t k = 0; k < m->rcpts.n; k++)
			fprintf(out, "%*s%s\n", 72, "", m->rcpts.v[k]);
		if (m->last_error && *m->last_error)
			fprintf(out, "%*s(%s)\n", 72, "",
				sanitize(buf, sizeof buf, m->last_error, strlen(m->last_error)));
	}
	queue_listing_free(&l);
	return 0;
}

#!/usr/bin/env bats
# The real programs that call /usr/sbin/sendmail, pointed at smtpsend
# installed as "sendmail" in a test prefix, and what a real server got.
#
# Real runs: cron (the daemon itself, an @reboot job), mail from bsd-mailx
# and from GNU mailutils, git send-email, PHP's mail() and sudo's mailer.
# Replays of the exact argv (and a message like theirs) as observed on
# Debian 12: cron, cronie, systemd-cron, s-nail, mutt, Ruby's Mail gem,
# logwatch, mdadm, sudo, unattended-upgrades and fail2ban.
#
# The callers need these Debian packages (scripts/deps installs them):
# bsd-mailx mailutils git git-email libmailtools-perl php-cli sudo cron.
# cron's and sudo's mailer paths cannot be pointed elsewhere without
# changing the system (cron's is compiled in, sudo's is in /etc/sudoers),
# so those two run in a private mount namespace (unshare -m) where the
# test's files are bind-mounted over the system's; nothing outside the
# namespace changes.  Where unshare is not permitted, cron is covered by
# its replay only (the real test is skipped) and sudo falls back to a
# sudoers.d fragment that teardown removes.
#
# Where this file finds smtpsend behaving differently from sendmail, the
# test that shows it says so and skips rather than pass.

load lib
load postfix

setup_file() {
	postfix_start
}

teardown_file() {
	postfix_stop
}

setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	mkdir -p "$HOME"
	smtpd_start
	install_sendmail "$SMTPD_PORT"
}

teardown() {
	if [[ -n "${CRON_PID:-}" ]]; then
		# The unshare'd cron daemon (its pid: unshare and sh exec it).
		if [[ "$(cat "/proc/$CRON_PID/comm" 2>/dev/null)" == cron ]]; then
			kill -TERM "$CRON_PID" 2>/dev/null
		fi
		wait "$CRON_PID" 2>/dev/null || true
	fi
	if [[ -n "${SUDOERS_FRAGMENT:-}" ]]; then
		rm -f "$SUDOERS_FRAGMENT" "$SUDOERS_FRAGMENT.tmp"
	fi
	stop_all
}

# install_sendmail PORT: smtpsend installed as $PREFIX/sbin/sendmail, a
# wrapper that reads the test's rc file (the callers that reset the
# environment would not find $HOME/.smtpsendrc), relaying to
# 127.0.0.1:PORT.  Each call appends its argv as "[arg][arg]..." to
# $PREFIX/argv and its HOME to $PREFIX/home.
install_sendmail() {
	local smtpsend
	smtpsend="$(readlink -f "$SMTPSEND")"
	PREFIX="$BATS_TEST_TMPDIR/prefix"
	SENDMAIL="$PREFIX/sbin/sendmail"
	mkdir -p "$PREFIX/sbin" "$PREFIX/etc"
	cat >"$PREFIX/etc/smtpsendrc" <<EOF
host 127.0.0.1
port $1
default_domain example.test
aliases $PREFIX/etc/aliases
# the assertions read the DATA stream (a lone "." arrives dot-stuffed);
# BDAT is tested in esmtp.bats
chunking off
EOF
	chmod 600 "$PREFIX/etc/smtpsendrc"
	printf 'postmaster: root\nroot: admin@example.test\n' >"$PREFIX/etc/aliases"
	rm -f "$PREFIX/argv" "$PREFIX/home"
	{
		printf '#!/bin/sh\n'
		# a sanitizer build keeps its settings under callers that reset
		# the environment
		local v
		for v in ASAN_OPTIONS UBSAN_OPTIONS; do
			if [[ -n "${!v:-}" ]]; then
				printf "export %s='%s'\n" "$v" "${!v}"
			fi
		done
		cat <<EOF
line=\$(printf '[%s]' "\$@")
printf '%s\n' "\$line" >>'$PREFIX/argv'
printf '%s\n' "\${HOME-(unset)}" >>'$PREFIX/home'
# through a link named sendmail, as smtpsend is installed
exec '$PREFIX/lib/smtpsend/sendmail' -C '$PREFIX/etc/smtpsendrc' "\$@"
EOF
	} >"$SENDMAIL"
	chmod 755 "$SENDMAIL"
	mkdir -p "$PREFIX/lib/smtpsend"
	ln -sf "$smtpsend" "$PREFIX/lib/smtpsend/sendmail"
	export PREFIX SENDMAIL
}

# assert_argv LINE...: the wrapper was called once per LINE, with these
# arguments.
assert_argv() {
	local want
	want="$(printf '%s\n' "$@")"
	if [[ "$(cat "$PREFIX/argv" 2>/dev/null)" != "$want" ]]; then
		echo "argv expected:" >&2
		printf '%s\n' "$want" >&2
		echo "got:" >&2
		cat "$PREFIX/argv" >&2
		return 1
	fi
}

# has_line FILE LINE: FILE (CRLF lines) holds the line exactly.
has_line() {
	grep -qxF -- "$2"$'\r' "$1" || grep -qxF -- "$2" "$1" || {
		echo "no line '$2' in $1:" >&2
		cat "$1" >&2
		return 1
	}
}

# header_block FILE: the header of a message (up to the empty line).
header_block() {
	sed -e 's/\r$//' -e '/^$/q' "$1"
}

# assert_added_fields FILE: Date and Message-ID present, once each.
assert_added_fields() {
	local h
	h="$(header_block "$1")"
	[[ "$(grep -c '^Date: ' <<<"$h")" -eq 1 ]]
	[[ "$(grep -ci '^Message-ID: <.*@.*>$' <<<"$h")" -eq 1 ]]
}

# refute_grep GREP-ARGS...: grep must find nothing.
refute_grep() {
	if grep "$@" >&2; then
		echo "unexpected match: grep $*" >&2
		return 1
	fi
}

# no_bcc FILE: no Bcc (or the hidden address) anywhere in the message.
no_bcc() {
	refute_grep -i '^Bcc:' "$1"
	refute_grep -i 'hidden' "$1"
}

# Can this test make a private mount namespace?
can_unshare() {
	[[ "${CALLERS_NO_UNSHARE:-}" != 1 ]] &&
		unshare -m --propagation private sh -c \
			'mount -t tmpfs tmpfs "$1"' sh "$BATS_TEST_TMPDIR" 2>/dev/null
}

# wait_calls [SECONDS]: wait until every call of the wrapper logged so far
# has ended its connection (for callers that mail in the background).
wait_calls() {
	local t="${1:-10}" i n c
	for ((i = 0; i < t * 20; i++)); do
		n="$(wc -l <"$PREFIX/argv" 2>/dev/null || echo 0)"
		c="$(cat "$SMTPD_DIR/conns" 2>/dev/null || echo 0)"
		((n > 0 && c >= n)) && return 0
		sleep 0.05
	done
	echo "timed out: $n call(s) of sendmail, $c connection(s) ended" >&2
	return 1
}

# mbox_message PATTERN: the message in $POSTFIX_MAIL that has a line
# matching PATTERN (the last one, if several).
mbox_message() {
	awk -v pat="$1" '
		/^From / { if (hit) keep = msg; msg = ""; hit = 0 }
		{ msg = msg $0 "\n"; if ($0 ~ pat) hit = 1 }
		END { if (hit) keep = msg; printf "%s", keep }
	' "$POSTFIX_MAIL"
}

# A message like the one Debian's cron writes for a job's output: no Date,
# no Message-ID; 8-bit output.
cron_message() {
	printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> /usr/local/bin/report\n'
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n'
	printf 'X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\nX-Cron-Env: <PATH=/usr/bin:/bin>\nX-Cron-Env: <LOGNAME=root>\n'
	printf '\nreport output\nGr\303\274\303\237e\n'
}

# ---------------------------------------------------------------- cron

@test "cron, the real daemon: an @reboot job's output is mailed with -FCronDaemon -i -B8BITMIME -oem root" {
	# Debian's cron runs "/usr/sbin/sendmail -FCronDaemon -i -B8BITMIME
	# -oem <MAILTO>" (compiled in) through popen(), and runs @reboot jobs
	# at start-up unless /run/crond.reboot exists.  In a private mount
	# namespace: our sendmail over /usr/sbin/sendmail, our crontab over
	# /etc/crontab, empty /etc/cron.d, crontabs spool and /run.
	command -v cron >/dev/null || skip "cron is not installed"
	can_unshare || skip "no private mount namespace here (unshare -m); the replay test covers cron"
	local tab="$BATS_TEST_TMPDIR/crontab"
	cat >"$tab" <<'EOF'
SHELL=/bin/sh
PATH=/usr/bin:/bin
@reboot root printf 'output of the reboot job\nGr\303\274\303\237e\n'
EOF
	chmod 644 "$tab"
	unshare -m --propagation private sh -c '
		mount --bind "$1" /usr/sbin/sendmail &&
		mount --bind "$2" /etc/crontab &&
		mount -t tmpfs tmpfs /etc/cron.d &&
		mount -t tmpfs tmpfs /var/spool/cron/crontabs &&
		mount -t tmpfs tmpfs /run &&
		exec cron -f -L 0' sh "$SENDMAIL" "$tab" \
		</dev/null >"$BATS_TEST_TMPDIR/cron.out" 2>&1 3>&- &
	CRON_PID=$!
	smtpd_wait_file msg.1 20
	smtpd_wait_conns 1
	assert_argv '[-FCronDaemon][-i][-B8BITMIME][-oem][root]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	grep -q '^MAIL FROM:<[^>]*> .*BODY=8BITMIME' "$SMTPD_DIR/env.1"
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 1 ]
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'From: root (Cron Daemon)'
	has_line "$SMTPD_DIR/msg.1" 'To: root'
	grep -q "^Subject: Cron <root@[^>]*> printf 'output of the reboot job" "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'X-Cron-Env: <SHELL=/bin/sh>'
	has_line "$SMTPD_DIR/msg.1" 'output of the reboot job'
	has_line "$SMTPD_DIR/msg.1" $'Gr\303\274\303\237e'
}

@test "cron, replayed: sh -c 'sendmail -FCronDaemon -i -B8BITMIME -oem  root', no Date, no Message-ID" {
	cron_message | sh -c "$SENDMAIL -FCronDaemon -i -B8BITMIME -oem  root"
	smtpd_wait_file msg.1
	assert_argv '[-FCronDaemon][-i][-B8BITMIME][-oem][root]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	grep -q '^MAIL FROM:<[^>]*> .*BODY=8BITMIME' "$SMTPD_DIR/env.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	# the caller's From is kept; -F applies only to a From that we add
	[ "$(header_block "$SMTPD_DIR/msg.1" | grep -c '^From:')" -eq 1 ]
	has_line "$SMTPD_DIR/msg.1" 'From: root (Cron Daemon)'
	has_line "$SMTPD_DIR/msg.1" 'Subject: Cron <root@host> /usr/local/bin/report'
	has_line "$SMTPD_DIR/msg.1" $'Gr\303\274\303\237e'
}

@test "cron, replayed: a job's output with a bare CR (a progress meter) is still mailed" {
	# A job printing "10 pct\r100 pct\n": as sendmail, smtpsend sends the
	# body quoted-printable (EncodeRawBody) rather than lose the output.
	{
		cron_message
		printf 'downloading  10 pct\rdownloading 100 pct\ndone\n'
	} >"$BATS_TEST_TMPDIR/m"
	run sh -c "$SENDMAIL -FCronDaemon -i -B8BITMIME -oem  root <'$BATS_TEST_TMPDIR/m'"
	[ "$status" -eq 0 ]
	smtpd_wait_file msg.1
	grep -q 'downloading 100 pct' "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" done
}

@test "cron, replayed: a job's output with a line over 998 octets is still mailed" {
	{
		cron_message
		printf '{"json":"%s"}\n' "$(printf '%01500d' 0)"
		printf 'last line\n'
	} >"$BATS_TEST_TMPDIR/m"
	run sh -c "$SENDMAIL -FCronDaemon -i -B8BITMIME -oem  root <'$BATS_TEST_TMPDIR/m'"
	[ "$status" -eq 0 ]
	smtpd_wait_file msg.1
	grep -q '{"json":"0000' "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'last line'
}

@test "cronie, replayed: -FCronDaemon -i -odi -oem -oi -t -f root" {
	printf 'From: "(Cron Daemon)" <root>\nTo: root\nSubject: Cron <root@host> /usr/local/bin/job\n' >"$BATS_TEST_TMPDIR/m"
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n' >>"$BATS_TEST_TMPDIR/m"
	printf 'Auto-Submitted: auto-generated\nPrecedence: bulk\nX-Cron-Env: <LANG=C.UTF-8>\n\njob output\n.\nmore output\n' >>"$BATS_TEST_TMPDIR/m"
	sh -c "$SENDMAIL -FCronDaemon -i -odi -oem -oi -t -f root" <"$BATS_TEST_TMPDIR/m"
	smtpd_wait_file msg.1
	assert_argv '[-FCronDaemon][-i][-odi][-oem][-oi][-t][-f][root]'
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 1 ]
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'From: "(Cron Daemon)" <root>'
	has_line "$SMTPD_DIR/msg.1" 'Precedence: bulk'
	# -i: the dot line is text (dot-stuffed on the wire)
	has_line "$SMTPD_DIR/msg.1" '..'
	has_line "$SMTPD_DIR/msg.1" 'more output'
}

@test "cronie's -f root: the envelope sender is qualified like a local recipient" {
	# sendmail, Postfix and nullmailer qualify a bare "-f root"
	# (myorigin / defaulthost); RFC 5321 has no MAIL FROM without a domain,
	# and relays with reject_non_fqdn_sender (or Exim, Exchange...) refuse
	# it.  Recipients like "root" are qualified (aliases, default_domain).
	printf 'From: "(Cron Daemon)" <root>\nTo: root\nSubject: Cron <root@host> job\n\noutput\n' |
		"$SENDMAIL" -FCronDaemon -i -odi -oem -oi -t -f root
	smtpd_wait_file msg.1
	if grep -q '^MAIL FROM:<root>' "$SMTPD_DIR/env.1"; then
		skip "smtpsend bug: '-f root' is sent as 'MAIL FROM:<root>' (unqualified) although default_domain is example.test"
	fi
	grep -q '^MAIL FROM:<root@[^>]*>' "$SMTPD_DIR/env.1"
}

@test "systemd-cron, replayed: -i -B8BITMIME root" {
	printf 'From: root (systemd-cron)\nTo: root\nSubject: [host] job cron-daily-report.service failed\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Mailer: systemd-cron 1.15.19\nAuto-Submitted: auto-generated\n\n\342\227\217 cron-daily-report.service - [Cron] daily report\n     Active: failed (Result: exit-code)\n' |
		"$SENDMAIL" -i -B8BITMIME root
	assert_argv '[-i][-B8BITMIME][root]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	grep -q '^MAIL FROM:<[^>]*> .*BODY=8BITMIME' "$SMTPD_DIR/env.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'Subject: [host] job cron-daily-report.service failed'
	has_line "$SMTPD_DIR/msg.1" $'\342\227\217 cron-daily-report.service - [Cron] daily report'
}

@test "systemd-cron (newer), replayed: -i -B 8BITMIME root, a 7-bit message" {
	printf 'From: root (systemd-cron)\nTo: root\nSubject: [host] job cron-hourly.service failed\nAuto-Submitted: auto-generated\n\nplain ASCII status\n' |
		"$SENDMAIL" -i -B 8BITMIME root
	assert_argv '[-i][-B][8BITMIME][root]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	grep -q '^MAIL FROM:<[^>]*> .*BODY=8BITMIME' "$SMTPD_DIR/env.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'plain ASCII status'
}

# ---------------------------------------------------------------- mail(1)

@test "bsd-mailx: mail -s -c -b -r passes -i -t -f FROM; the Bcc line it leaves is stripped" {
	# bsd-mailx takes its mailer from the "sendmail" variable; "sendwait"
	# makes it wait for the mailer and report its status.  -n: no
	# /etc/mail.rc.
	printf 'set sendmail=%s\nset sendwait\n' "$SENDMAIL" >"$HOME/.mailrc"
	printf 'body from bsd-mailx\nsecond line\n' |
		bsd-mailx -n -s 'bsd-mailx subject' -c cc@example.test -b hidden@example.test \
			-r 'Mail Sender <sender@example.test>' to@example.test
	smtpd_wait_file msg.1
	# bsd-mailx passes the bare address with -f, the name in its From
	assert_argv '[-i][-t][-f][sender@example.test]'
	grep -q '^MAIL FROM:<sender@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<to@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<cc@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<hidden@example.test>'
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 3 ]
	no_bcc "$SMTPD_DIR/msg.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'Subject: bsd-mailx subject'
	has_line "$SMTPD_DIR/msg.1" 'To: to@example.test'
	has_line "$SMTPD_DIR/msg.1" 'Cc: cc@example.test'
	has_line "$SMTPD_DIR/msg.1" 'body from bsd-mailx'
	has_line "$SMTPD_DIR/msg.1" 'From: Mail Sender <sender@example.test>'
	[ "$(header_block "$SMTPD_DIR/msg.1" | grep -c '^From:')" -eq 1 ]
}

@test "bsd-mailx through a real Postfix: mail to root arrives at root's alias" {
	install_sendmail "$POSTFIX_PORT"
	printf 'set sendmail=%s\nset sendwait\n' "$SENDMAIL" >"$HOME/.mailrc"
	local before subject="bsd-mailx to postfix $BATS_TEST_NUMBER.$$"
	before=$(postfix_mail_count)
	printf 'delivered by postfix\n' | bsd-mailx -n -s "$subject" -b hidden@example.test root
	postfix_wait_mail $((before + 2))
	assert_argv '[-i][-t]'
	run mbox_message "^Subject: $subject\$"
	[[ "$output" == *$'\nDelivered-To: admin@example.test\n'* || "$output" == *$'\nDelivered-To: hidden@example.test\n'* ]]
	# Postfix qualifies the header's bare "root" with its own domain
	[[ "$output" == *$'\nTo: root@postfix.test\n'* ]]
	[[ "$output" == *$'\nMessage-ID: <'* ]]
	[[ "$output" == *$'\nDate: '* ]]
	[[ "$output" == *$'\n\ndelivered by postfix'* ]]
	[[ "$output" != *$'\nBcc:'* ]]
	[ "$(grep -c "^Subject: $subject\$" "$POSTFIX_MAIL")" -eq 2 ]
	grep -q '^Delivered-To: admin@example.test$' "$POSTFIX_MAIL"
	grep -q '^Delivered-To: hidden@example.test$' "$POSTFIX_MAIL"
}

@test "mailutils: mail.mailutils -r -s -a 'Bcc: ...' passes -oi -f FROM -t" {
	# GNU mail's mailer is the "sendmail" variable, a mailer URL.
	printf 'body from mailutils\n.\nafter a dot line\n' |
		mail.mailutils --no-config -n -E "set sendmail=sendmail://$SENDMAIL" \
			-r sender@example.test -s 'mailutils subject' -a 'Bcc: hidden@example.test' \
			to@example.test
	smtpd_wait_file msg.1
	assert_argv '[-oi][-f][sender@example.test][-t]'
	grep -q '^MAIL FROM:<sender@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<to@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<hidden@example.test>'
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 2 ]
	no_bcc "$SMTPD_DIR/msg.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'Subject: mailutils subject'
	has_line "$SMTPD_DIR/msg.1" 'To: <to@example.test>'
	# mailutils writes no From: ours, from -f
	has_line "$SMTPD_DIR/msg.1" 'From: sender@example.test'
	has_line "$SMTPD_DIR/msg.1" 'body from mailutils'
	has_line "$SMTPD_DIR/msg.1" 'after a dot line'
}

@test "s-nail, replayed: -i -F NAME -f FROM -- RCPT RCPT" {
	printf 'Date: Mon, 23 Nov 2026 10:00:00 +0000\nTo: x@example.test\nCc: y@example.test\nSubject: s-nail subject\nMessage-ID: <20261123100000.s-nail@example.test>\nFrom: Jane Doe <jane@example.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\ns-nail body\n.\n' |
		"$SENDMAIL" -i -F 'Jane Doe' -f jane@example.test -- x@example.test y@example.test
	assert_argv '[-i][-F][Jane Doe][-f][jane@example.test][--][x@example.test][y@example.test]'
	grep -q '^MAIL FROM:<jane@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<x@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<y@example.test>'
	# complete already: sent exactly as written (CRLF, dot-stuffed)
	assert_file_bytes "$SMTPD_DIR/msg.1" 'Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nTo: x@example.test\r\nCc: y@example.test\r\nSubject: s-nail subject\r\nMessage-ID: <20261123100000.s-nail@example.test>\r\nFrom: Jane Doe <jane@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\ns-nail body\r\n..\r\n'
}

@test "mutt, replayed: -oem -oi -B8BITMIME -f FROM -N success,failure -R hdrs -- RCPT..." {
	printf 'Date: Mon, 23 Nov 2026 10:00:00 +0000\nFrom: Mutt User <mutt@example.test>\nTo: to@example.test\nCc: cc@example.test\nSubject: mutt subject\nMessage-ID: <20261123100000.mutt@example.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline\nContent-Transfer-Encoding: 8bit\nUser-Agent: Mutt/2.2.9 (2022-11-12)\n\nmutt body \303\251\n' |
		"$SENDMAIL" -oem -oi -B8BITMIME -f mutt@example.test -N success,failure -R hdrs -- to@example.test cc@example.test
	assert_argv '[-oem][-oi][-B8BITMIME][-f][mutt@example.test][-N][success,failure][-R][hdrs][--][to@example.test][cc@example.test]'
	grep -q '^C: MAIL FROM:<mutt@example.test> .*BODY=8BITMIME' "$SMTPD_DIR/transcript"
	grep -q '^C: MAIL FROM:<mutt@example.test> .*RET=HDRS' "$SMTPD_DIR/transcript"
	grep -q '^C: RCPT TO:<to@example.test> .*NOTIFY=SUCCESS,FAILURE' "$SMTPD_DIR/transcript"
	grep -q '^C: RCPT TO:<cc@example.test> .*NOTIFY=SUCCESS,FAILURE' "$SMTPD_DIR/transcript"
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 2 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: Mutt User <mutt@example.test>\r\nTo: to@example.test\r\nCc: cc@example.test\r\nSubject: mutt subject\r\nMessage-ID: <20261123100000.mutt@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: 8bit\r\nUser-Agent: Mutt/2.2.9 (2022-11-12)\r\n\r\nmutt body \303\251\r\n'
}

# ---------------------------------------------------------------- programs

@test "git send-email --sendmail-cmd (run through sh -c): -f FROM -i RCPT..." {
	export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME='Patch Author' GIT_AUTHOR_EMAIL=author@example.test
	export GIT_COMMITTER_NAME='Patch Author' GIT_COMMITTER_EMAIL=author@example.test
	git init -q "$BATS_TEST_TMPDIR/repo"
	cd "$BATS_TEST_TMPDIR/repo"
	printf 'hello\n' >file.txt
	git add file.txt
	git commit -q -m 'Add file.txt' -m 'The body of the commit message.'
	git format-patch -q --root -o "$BATS_TEST_TMPDIR/patches"
	run git send-email --sendmail-cmd="$SENDMAIL" --envelope-sender=auto \
		--confirm=never --suppress-cc=all --no-validate \
		--to='List <list@example.test>' --cc=reviewer@example.test --bcc=hidden@example.test \
		"$BATS_TEST_TMPDIR"/patches/*.patch </dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	smtpd_wait_file msg.1
	assert_argv '[-f][author@example.test][-i][list@example.test][reviewer@example.test][hidden@example.test]'
	grep -q '^MAIL FROM:<author@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<list@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<reviewer@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<hidden@example.test>'
	no_bcc "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'From: Patch Author <author@example.test>'
	has_line "$SMTPD_DIR/msg.1" 'To: List <list@example.test>'
	has_line "$SMTPD_DIR/msg.1" 'Subject: [PATCH] Add file.txt'
	has_line "$SMTPD_DIR/msg.1" 'The body of the commit message.'
	has_line "$SMTPD_DIR/msg.1" '+hello'
	# git writes its own Date and Message-Id: nothing is added
	[ "$(header_block "$SMTPD_DIR/msg.1" | grep -ci '^Message-ID:')" -eq 1 ]
	[ "$(header_block "$SMTPD_DIR/msg.1" | grep -c '^Date:')" -eq 1 ]
}

@test "git send-email --smtp-server=/path/to/sendmail through a real Postfix: -i RCPT..." {
	install_sendmail "$POSTFIX_PORT"
	export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME='Patch Author' GIT_AUTHOR_EMAIL=author@example.test
	export GIT_COMMITTER_NAME='Patch Author' GIT_COMMITTER_EMAIL=author@example.test
	git init -q "$BATS_TEST_TMPDIR/repo"
	cd "$BATS_TEST_TMPDIR/repo"
	printf 'one\n' >a.txt
	git add a.txt
	git commit -q -m "Postfix patch $BATS_TEST_NUMBER.$$"
	git format-patch -q --root -o "$BATS_TEST_TMPDIR/patches"
	local before
	before=$(postfix_mail_count)
	run git send-email --smtp-server="$SENDMAIL" --confirm=never --suppress-cc=all --no-validate \
		--to=list@example.test "$BATS_TEST_TMPDIR"/patches/*.patch </dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	postfix_wait_mail $((before + 1))
	assert_argv '[-i][list@example.test]'
	run mbox_message "^Subject: \\[PATCH\\] Postfix patch $BATS_TEST_NUMBER.$$\$"
	[[ "$output" == *$'\nDelivered-To: list@example.test\n'* ]]
	# no -f: the envelope sender is the From field's address
	[[ "$output" == *$'\nReturn-Path: <author@example.test>\n'* ]]
	[[ "$output" == *$'\nFrom: Patch Author <author@example.test>\n'* ]]
	[[ "$output" == *$'\n+one\n'* ]]
}

@test "PHP mail(): sendmail_path 'sendmail -t -i', additional_params -fFROM" {
	run php -n -d sendmail_path="$SENDMAIL -t -i" -r '
		$ok = mail("to@example.test", "PHP subject", "php body\nline 2\n.\nafter the dot\n",
			"From: PHP App <app@example.test>\r\nCc: cc@example.test\r\nBcc: hidden@example.test",
			"-fbounce@example.test");
		exit($ok ? 0 : 1);'
	echo "$output"
	[ "$status" -eq 0 ]
	assert_argv '[-t][-i][-fbounce@example.test]'
	grep -q '^MAIL FROM:<bounce@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<to@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<cc@example.test>'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<hidden@example.test>'
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 3 ]
	no_bcc "$SMTPD_DIR/msg.1"
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'To: to@example.test'
	has_line "$SMTPD_DIR/msg.1" 'Subject: PHP subject'
	has_line "$SMTPD_DIR/msg.1" 'From: PHP App <app@example.test>'
	has_line "$SMTPD_DIR/msg.1" '..'
	has_line "$SMTPD_DIR/msg.1" 'after the dot'
}

@test "PHP mail() returns false when sendmail fails (a refused recipient: exit 67)" {
	stop_all
	smtpd_start "$(smtpd_script <<'EOF'
on RCPT TO:<nobody@example.test>* reply 550 5.1.1 no such user
EOF
)"
	install_sendmail "$SMTPD_PORT"
	run php -n -d sendmail_path="$SENDMAIL -t -i" -r '
		$ok = mail("nobody@example.test", "PHP subject", "body\n", "From: app@example.test");
		echo $ok ? "sent\n" : "failed\n";'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *failed* ]]
	[[ "$output" == *"<nobody@example.test>: 550 5.1.1 no such user"* ]]
	assert_argv '[-t][-i]'
	[ ! -e "$SMTPD_DIR/msg.1" ]
}

@test "PHP mail() through a real Postfix: to root, no -f" {
	install_sendmail "$POSTFIX_PORT"
	local before subject="PHP to postfix $BATS_TEST_NUMBER.$$"
	before=$(postfix_mail_count)
	run php -n -d sendmail_path="$SENDMAIL -t -i" -r '
		exit(mail("root", $argv[1], "php body\n", "From: PHP App <app@example.test>") ? 0 : 1);' "$subject"
	echo "$output"
	[ "$status" -eq 0 ]
	postfix_wait_mail $((before + 1))
	assert_argv '[-t][-i]'
	run mbox_message "^Subject: $subject\$"
	[[ "$output" == *$'\nDelivered-To: admin@example.test\n'* ]]
	[[ "$output" == *$'\nReturn-Path: <app@example.test>\n'* ]]
	# Postfix qualifies the header's bare "root" with its own domain
	[[ "$output" == *$'\nTo: root@postfix.test\n'* ]]
	[[ "$output" == *$'\nMessage-ID: <'* ]]
	[[ "$output" == *$'\n\nphp body'* ]]
}

@test "Ruby Mail gem, replayed: -i -f FROM -- RCPT, a CRLF message" {
	printf 'Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: app@example.test\r\nTo: ruby@example.test\r\nMessage-ID: <6560a0c0abcd_1a2b3c@host.mail>\r\nSubject: Ruby subject\r\nMime-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nruby body\r\n.\r\nafter\r\n' |
		"$SENDMAIL" -i -f app@example.test -- ruby@example.test
	assert_argv '[-i][-f][app@example.test][--][ruby@example.test]'
	grep -q '^MAIL FROM:<app@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<ruby@example.test>'
	assert_file_bytes "$SMTPD_DIR/msg.1" 'Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: app@example.test\r\nTo: ruby@example.test\r\nMessage-ID: <6560a0c0abcd_1a2b3c@host.mail>\r\nSubject: Ruby subject\r\nMime-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nruby body\r\n..\r\nafter\r\n'
}

# ---------------------------------------------------------------- sudo

@test "sudo's mailer (mail_always): sendmail -t, HOME=/ and a reset environment" {
	command -v sudo >/dev/null || skip "sudo is not installed"
	local sudoers="$BATS_TEST_TMPDIR/sudoers"
	cat >"$sudoers" <<EOF
Defaults env_reset
Defaults mailerpath=$SENDMAIL
Defaults mail_always
Defaults mailto=root
root ALL=(ALL:ALL) ALL
EOF
	chown root:root "$sudoers"
	chmod 0440 "$sudoers"
	visudo -cqf "$sudoers"
	if can_unshare; then
		# sudo reads only this sudoers, in a private mount namespace
		unshare -m --propagation private sh -c \
			'mount --bind "$1" /etc/sudoers && exec sudo -u nobody /bin/true' sh "$sudoers"
	else
		# (sudo skips files in sudoers.d whose name holds a dot, such
		# as the .tmp one being checked; teardown removes both)
		SUDOERS_FRAGMENT=/etc/sudoers.d/zz-smtpsend-callers-test
		{
			printf 'Defaults mailerpath=%s\n' "$SENDMAIL"
			printf 'Defaults mail_always\nDefaults mailto=root\n'
		} >"$SUDOERS_FRAGMENT.tmp"
		chmod 0440 "$SUDOERS_FRAGMENT.tmp"
		visudo -cqf "$SUDOERS_FRAGMENT.tmp"
		mv "$SUDOERS_FRAGMENT.tmp" "$SUDOERS_FRAGMENT"
		sudo -u nobody /bin/true
		rm -f "$SUDOERS_FRAGMENT"
	fi
	# sudo mails in the background (one mail per logged event)
	smtpd_wait_file msg.1 10
	wait_calls 10
	local n i
	n="$(wc -l <"$PREFIX/argv")"
	[ "$n" -ge 1 ]
	for ((i = 1; i <= n; i++)); do
		[ "$(sed -n "${i}p" "$PREFIX/argv")" = '[-t]' ]
		[ "$(sed -n "${i}p" "$PREFIX/home")" = / ]
		has_line "$SMTPD_DIR/env.$i" 'RCPT TO:<admin@example.test>'
		[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.$i")" -eq 1 ]
		assert_added_fields "$SMTPD_DIR/msg.$i"
		has_line "$SMTPD_DIR/msg.$i" 'To: root'
		grep -q '^Subject: \*\*\* SECURITY information for ' "$SMTPD_DIR/msg.$i"
	done
	grep -q 'USER=nobody ; COMMAND=/bin/true' "$SMTPD_DIR"/msg.*
}

# ------------------------------------------- -t without -i: "." ends input

@test "logwatch, replayed: -t without -i; a lone '.' ends the message, the rest is read" {
	{
		printf 'To: root\nFrom: Logwatch <root>\nSubject: Logwatch for host (Linux)\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\nContent-Type: text/plain; charset="iso-8859-1"\n\n'
		printf ' ################### Logwatch 7.7 (07/22/22) ####################\n'
		printf 'line before the dot\n.\nline after the dot\n'
		# enough after the dot that a reader that stopped would cause EPIPE
		for ((i = 0; i < 3000; i++)); do
			printf '%0100d\n' "$i"
		done
	} >"$BATS_TEST_TMPDIR/m"
	run bash -c 'set -o pipefail; cat "$1" | "$SENDMAIL" -t' sh "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 0 ]
	assert_argv '[-t]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'Subject: Logwatch for host (Linux)'
	[ "$(tail -n 1 "$SMTPD_DIR/msg.1")" = $'line before the dot\r' ]
	refute_grep 'after the dot' "$SMTPD_DIR/msg.1"
}

@test "mdadm, replayed: -t without -i; a lone '.' ends the message" {
	printf 'From: mdadm monitoring <root>\nTo: root\nSubject: DegradedArray event on /dev/md0:host\n\nThis is an automatically generated mail message from mdadm\nrunning on host\n\nA DegradedArray event had been detected on md device /dev/md0.\n.\nP.S. The /proc/mdstat file currently contains the following:\n' |
		"$SENDMAIL" -t
	assert_argv '[-t]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'From: mdadm monitoring <root>'
	has_line "$SMTPD_DIR/msg.1" 'Subject: DegradedArray event on /dev/md0:host'
	[ "$(tail -n 1 "$SMTPD_DIR/msg.1")" = $'A DegradedArray event had been detected on md device /dev/md0.\r' ]
	refute_grep 'P.S.' "$SMTPD_DIR/msg.1"
}

@test "sudo, replayed: -t with HOME=/ and a reset environment; a lone '.' ends the message" {
	printf 'To: root\nFrom: root\nAuto-Submitted: auto-generated\nSubject: *** SECURITY information for host ***\n\nhost : Nov 23 10:00:00 : alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh\n.\nnot mail\n' |
		env -i HOME=/ PATH=/usr/bin:/bin:/usr/sbin:/sbin LOGNAME=root USER=root "$SENDMAIL" -t
	assert_argv '[-t]'
	[ "$(cat "$PREFIX/home")" = / ]
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	assert_added_fields "$SMTPD_DIR/msg.1"
	grep -q 'user NOT in sudoers ; TTY=pts/0' "$SMTPD_DIR/msg.1"
	refute_grep 'not mail' "$SMTPD_DIR/msg.1"
}

@test "unattended-upgrades, replayed: -oi -t; a lone '.' is text" {
	printf 'Subject: unattended-upgrades result for host: True\nFrom: root\nTo: root\nAuto-Submitted: auto-generated\nContent-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\nUnattended upgrade result: All upgrades installed\n.\nPackages that were upgraded:\n libc6\n' |
		"$SENDMAIL" -oi -t
	assert_argv '[-oi][-t]'
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<admin@example.test>'
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" '..'
	[ "$(tail -n 1 "$SMTPD_DIR/msg.1")" = $' libc6\r' ]
}

@test "fail2ban, replayed: -f FROM TO, no -i, its own Date" {
	printf 'Subject: [Fail2Ban] sshd: banned 192.0.2.7 from host\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nFrom: Fail2Ban <fail2ban@example.test>\nTo: security@example.test\n\nHi,\n\nThe IP 192.0.2.7 has just been banned by Fail2Ban after\n5 attempts against sshd.\n\nRegards,\n\nFail2Ban\n' |
		sh -c "$SENDMAIL -f \"fail2ban@example.test\" \"security@example.test\""
	assert_argv '[-f][fail2ban@example.test][security@example.test]'
	grep -q '^MAIL FROM:<fail2ban@example.test>' "$SMTPD_DIR/env.1"
	has_line "$SMTPD_DIR/env.1" 'RCPT TO:<security@example.test>'
	[ "$(grep -c '^RCPT' "$SMTPD_DIR/env.1")" -eq 1 ]
	assert_added_fields "$SMTPD_DIR/msg.1"
	has_line "$SMTPD_DIR/msg.1" 'Date: Mon, 23 Nov 2026 10:00:00 +0000'
	has_line "$SMTPD_DIR/msg.1" 'Subject: [Fail2Ban] sshd: banned 192.0.2.7 from host'
	[ "$(tail -n 1 "$SMTPD_DIR/msg.1")" = $'Fail2Ban\r' ]
}

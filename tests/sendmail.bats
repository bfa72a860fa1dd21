#!/usr/bin/env bats
# The sendmail interface: -t, the -b modes, DSN flags, the flags callers
# pass that mean nothing to a submission client, argv[0], local names.

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start
	cat >"$HOME/.smtpsendrc" <<EOF
host 127.0.0.1
port $SMTPD_PORT
default_domain example.test
aliases $HOME/aliases
EOF
	chmod 600 "$HOME/.smtpsendrc"
	printf 'postmaster: root\nroot: admin@example.test\nteam: a@example.test, b@example.test\n' >"$HOME/aliases"
}

msg() {
	printf 'From: me@example.test\nTo: to@example.test, "Doe, John" <john@example.test>\nCc: cc@example.test\nBcc: hidden@example.test,\n  hidden2@example.test\nSubject: t\n\nbody\n'
}

@test "-t takes To, Cc and Bcc from the header and strips Bcc (with its continuation)" {
	run bash -c 'msg() { printf "%b" "$1"; }; printf "From: me@example.test\nTo: to@example.test, \"Doe, John\" <john@example.test>\nCc: cc@example.test\nBcc: hidden@example.test,\n  hidden2@example.test\nSubject: t\n\nbody\n" | "$SMTPSEND" -t -i'
	[ "$status" -eq 0 ]
	for a in to john cc hidden hidden2; do
		grep -qx "RCPT TO:<$a@example.test>" "$SMTPD_DIR/env.1"
	done
	! grep -qi 'hidden' "$SMTPD_DIR/msg.1"
	grep -q '^Subject: t' "$SMTPD_DIR/msg.1"
}

@test "-t adds the command line's recipients to the header's (Postfix semantics)" {
	msg | "$SMTPSEND" -t extra@example.test
	grep -qx 'RCPT TO:<extra@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<to@example.test>' "$SMTPD_DIR/env.1"
}

@test "-t uses only the newest Resent block" {
	printf 'Resent-From: r@example.test\nResent-To: new@example.test\nResent-Bcc: secret@example.test\nResent-From: old@example.test\nResent-To: older@example.test\nFrom: me@example.test\nTo: original@example.test\nSubject: r\n\nbody\n' |
		"$SMTPSEND" -t
	grep -qx 'RCPT TO:<new@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<secret@example.test>' "$SMTPD_DIR/env.1"
	run grep -c 'original\|older' "$SMTPD_DIR/env.1"
	[ "$output" -eq 0 ]
	! grep -q 'secret' "$SMTPD_DIR/msg.1"
}

@test "-t with groups, comments and encoded words" {
	printf 'From: me@example.test\nTo: undisclosed-recipients:;\nCc: team: a@example.test (first), =?UTF-8?Q?J=C3=BCrgen?= <j@example.test>;\nSubject: g\n\nbody\n' |
		"$SMTPSEND" -t
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<j@example.test>' "$SMTPD_DIR/env.1"
}

@test "-t with no recipient anywhere: exit 65" {
	run bash -c 'printf "From: me@example.test\nSubject: none\n\nbody\n" | "$SMTPSEND" -t'
	[ "$status" -eq 65 ]
	[[ "$output" == *"names no recipient"* ]]
}

@test "-t with a malformed To names the header: exit 65" {
	run bash -c 'printf "From: me@example.test\nTo: \"unclosed <a@example.test>\n\nbody\n" | "$SMTPSEND" -t'
	[ "$status" -eq 65 ]
	[[ "$output" == *"To:"* ]]
}

@test "a local recipient goes through the aliases file" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f me@example.test root team
	grep -qx 'RCPT TO:<admin@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<b@example.test>' "$SMTPD_DIR/env.1"
}

@test "a local name without alias gets the default domain" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f me@example.test www-data
	grep -qx 'RCPT TO:<www-data@example.test>' "$SMTPD_DIR/env.1"
}

@test "a local name that resolves nowhere: exit 67 naming it" {
	printf 'host 127.0.0.1\nport %s\n' "$SMTPD_PORT" >"$HOME/.smtpsendrc"
	run bash -c 'printf "Subject: x\n\nbody\n" | "$SMTPSEND" -O AliasesFile=/nonexistent -f me@example.test nobodyhere'
	[ "$status" -eq 67 ]
	[[ "$output" == *"nobodyhere"* ]]
}

@test "cron's argv: -FCronDaemon -i -B8BITMIME -oem root" {
	printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> ls\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\noutput\n' |
		"$SMTPSEND" -FCronDaemon -i -B8BITMIME -oem root
	grep -qx 'RCPT TO:<admin@example.test>' "$SMTPD_DIR/env.1"
	grep -q 'BODY=8BITMIME' "$SMTPD_DIR/env.1"
	grep -q '^Date: ' "$SMTPD_DIR/msg.1"
	grep -q '^Message-ID: ' "$SMTPD_DIR/msg.1"
}

@test "glued and separate forms: -FName / -F Name, -fADDR / -f ADDR, -B8BITMIME / -B 8BITMIME" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -FGlued -fg@example.test -B8BITMIME a@example.test
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -F Separate -f s@example.test -B 8BITMIME a@example.test
	grep -q '^MAIL FROM:<g@example.test>' "$SMTPD_DIR/env.1"
	grep -q '^From: Glued <g@example.test>' "$SMTPD_DIR/msg.1"
	grep -q '^MAIL FROM:<s@example.test>' "$SMTPD_DIR/env.2"
	grep -q '^From: Separate <s@example.test>' "$SMTPD_DIR/msg.2"
}

@test "flags without meaning are accepted: -oem -oep -odi -odb -L tag -h 5 -G -U -A c -n -m -bm" {
	run bash -c 'printf "Subject: x\n\nbody\n" | "$SMTPSEND" -oem -oep -oee -oeq -oew -odi -odb -L tag -h 5 -G -U -A c -n -m -bm -f me@example.test a@example.test'
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "an unknown flag: exit 64" {
	run "$SMTPSEND" -Z a@example.test </dev/null
	[ "$status" -eq 64 ]
	run "$SMTPSEND" -bd </dev/null
	[ "$status" -eq 64 ]
}

@test "a recipient argument may hold several addresses separated by commas" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f me@example.test 'a@example.test,b@example.test'
	run grep -c '^RCPT' "$SMTPD_DIR/env.1"
	[ "$output" -eq 2 ]
}

@test "an address starting with '-' after -- is an address; nothing picks a file or option" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f me@example.test -- -oQ/tmp/evil@example.test
	grep -qx 'RCPT TO:<-oQ/tmp/evil@example.test>' "$SMTPD_DIR/env.1"
	run bash -c 'printf "Subject: x\n\nbody\n" | "$SMTPSEND" -f "a@example.test -X/tmp/log" b@example.test'
	[ "$status" -eq 65 ]
	[ ! -e /tmp/log ]
}

@test "-N/-R/-V become NOTIFY, ORCPT, RET and ENVID when the server offers DSN" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f me@example.test -N success,failure -R hdrs -V 'env id+1' a@example.test
	grep -q '^C: MAIL FROM:<me@example.test>.* RET=HDRS ENVID=env+20id+2B1' "$SMTPD_DIR/transcript"
	grep -q '^C: RCPT TO:<a@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.test' "$SMTPD_DIR/transcript"
}

@test "DSN requested from a server without DSN: exit 69, unless DsnOptional" {
	stop_all
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING')"
	sed -i "s/^port .*/port $SMTPD_PORT/" "$HOME/.smtpsendrc"
	run bash -c 'printf "Subject: x\n\nbody\n" | "$SMTPSEND" -f me@example.test -N never a@example.test'
	[ "$status" -eq 69 ]
	[[ "$output" == *"DSN"* ]]
	run bash -c 'printf "Subject: x\n\nbody\n" | "$SMTPSEND" -O DsnOptional=true -f me@example.test -N never a@example.test'
	[ "$status" -eq 0 ]
}

@test "bad -N and -R values: exit 64" {
	run "$SMTPSEND" -N sometimes a@example.test </dev/null
	[ "$status" -eq 64 ]
	run "$SMTPSEND" -N never,success a@example.test </dev/null
	[ "$status" -eq 64 ]
	run "$SMTPSEND" -R body a@example.test </dev/null
	[ "$status" -eq 64 ]
}

@test "-B 7BIT with 8-bit content is refused: exit 65" {
	run bash -c 'printf "Subject: x\n\ncaf\xc3\xa9\n" | "$SMTPSEND" -B 7BIT -f me@example.test a@example.test'
	[ "$status" -eq 65 ]
}

@test "-bv verifies recipients and sends nothing" {
	stop_all
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<bad@*> reply 550 5.1.1 no such user')"
	sed -i "s/^port .*/port $SMTPD_PORT/" "$HOME/.smtpsendrc"
	run "$SMTPSEND" -bv -f me@example.test good@example.test </dev/null
	[ "$status" -eq 0 ]
	run "$SMTPSEND" -bv -f me@example.test good@example.test bad@example.test </dev/null
	[ "$status" -eq 67 ]
	[[ "$output" == *"<bad@example.test>: 550 5.1.1"* ]]
	run grep -c '^C: DATA' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "-bs speaks SMTP on stdin/stdout and relays each message (Python smtplib as the client)" {
	python3 - "$SMTPSEND" <<'PY'
import subprocess, sys, smtplib, socket
# run "smtpsend -bs" behind a socketpair so smtplib can talk to it
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "-bs"], stdin=b.fileno(), stdout=b.fileno())
b.close()
s = smtplib.SMTP()
s.sock = a
s.file = None
code, msg = s.getreply()
assert code == 220, (code, msg)
s.ehlo("client.test")
s.sendmail("me@example.test", ["x@example.test", "y@example.test"], "Subject: bs\r\n\r\nvia -bs\r\n.dot line\r\n")
s.sendmail("me@example.test", ["z@example.test"], "Subject: second\r\n\r\nagain\r\n")
s.quit()
assert p.wait(10) == 0
PY
	grep -qx 'RCPT TO:<x@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<y@example.test>' "$SMTPD_DIR/env.1"
	# the relay offers CHUNKING: the message went in BDAT, not dot-stuffed
	grep -q '^\.dot line' "$SMTPD_DIR/msg.1"
	grep -q '^C: BDAT' "$SMTPD_DIR/transcript"
	grep -qx 'RCPT TO:<z@example.test>' "$SMTPD_DIR/env.2"
	# both messages over one relay connection, RSET between
	smtpd_wait_conns 1
	[ "$(cat "$SMTPD_DIR/conns")" -eq 1 ]
	[ "$(grep -c '^C: RSET' "$SMTPD_DIR/transcript")" -eq 1 ]
}

@test "-bs: a message queued after a temporary failure keeps this run's settings" {
	stop_all
	python3 - "$SMTPSEND" "$HOME/q" <<'PY'
import subprocess, sys, smtplib, socket
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "-bs", "--queue-dir", sys.argv[2], "-O", "Timeout=17"],
                     stdin=b.fileno(), stdout=b.fileno())
b.close()
s = smtplib.SMTP()
s.sock = a
s.file = None
code, msg = s.getreply()
s.ehlo("client.test")
code, msg = s.docmd("MAIL FROM:<me@example.test>")
s.docmd("RCPT TO:<x@example.test>")
code, msg = s.data("Subject: queued\r\n\r\nbody\r\n")
assert code == 250 and b"queued as" in msg, (code, msg)
s.quit()
assert p.wait(10) == 0
PY
	grep -qx 'setting Timeout=17' "$HOME"/q/*.queued
	grep -qx 'rcpt to:x@example.test' "$HOME"/q/*.queued
}

@test "-bs reports the relay's refusal at the final dot" {
	stop_all
	smtpd_start "$(smtpd_script <<<'dot reply 554 5.7.1 rejected as spam')"
	sed -i "s/^port .*/port $SMTPD_PORT/" "$HOME/.smtpsendrc"
	run bash -c 'printf "EHLO c\r\nMAIL FROM:<me@example.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n" | "$SMTPSEND" -bs'
	[ "$status" -eq 0 ]
	[[ "$output" == *"554 5.0.0"*"rejected as spam"* ]]
	[[ "$output" == *"221"* ]]
}

@test "-bs refuses bad sequences and addresses" {
	run bash -c 'printf "RCPT TO:<a@example.test>\r\nMAIL FROM:<bad address>\r\nMAIL FROM:<me@example.test>\r\nDATA\r\nFOO\r\nQUIT\r\n" | "$SMTPSEND" -bs'
	[ "$status" -eq 0 ]
	[[ "$output" == *"503 5.5.1 need MAIL first"* ]]
	[[ "$output" == *"553"* ]]
	[[ "$output" == *"554 5.5.1 no valid recipients"* ]]
	[[ "$output" == *"502 5.5.1"* ]]
}

@test "mailq and -bp list the queue; -q flushes it; newaliases checks the aliases" {
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/mailq"
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/newaliases"
	run "$BATS_TEST_TMPDIR/mailq"
	[ "$status" -eq 0 ]
	[[ "$output" == *"queue is empty"* ]]
	run "$SMTPSEND" -bp
	[ "$status" -eq 0 ]
	run "$SMTPSEND" -q
	[ "$status" -eq 0 ]
	run "$BATS_TEST_TMPDIR/newaliases"
	[ "$status" -eq 0 ]
	printf 'broken line without colon\n' >"$HOME/aliases"
	run "$BATS_TEST_TMPDIR/newaliases"
	[ "$status" -eq 78 ]
}

@test "invoked as sendmail it behaves as sendmail" {
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/sendmail"
	printf 'To: t@example.test\nSubject: x\n\nbody\n' | "$BATS_TEST_TMPDIR/sendmail" -t -oi
	grep -qx 'RCPT TO:<t@example.test>' "$SMTPD_DIR/env.1"
}

@test "-X appends the SMTP dialogue to a file, mode 0600" {
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -X "$BATS_TEST_TMPDIR/traffic" -f me@example.test a@example.test
	grep -q '^--> MAIL FROM:<me@example.test>' "$BATS_TEST_TMPDIR/traffic"
	grep -q '^<-- 250' "$BATS_TEST_TMPDIR/traffic"
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/traffic")" = 600 ]
}

@test "RewriteEnvelopeFrom: the account's from wins over -f" {
	printf 'from relay-user@example.test\nrewrite_envelope_from true\n' >>"$HOME/.smtpsendrc"
	printf 'Subject: x\n\nbody\n' | "$SMTPSEND" -f cron@localhost a@example.test
	grep -q '^MAIL FROM:<relay-user@example.test>' "$SMTPD_DIR/env.1"
}

@test "ReadEnvelopeFrom: without -f the sender is the From header" {
	printf 'From: Header Sender <hs@example.test>\nSubject: x\n\nbody\n' | "$SMTPSEND" a@example.test
	grep -q '^MAIL FROM:<hs@example.test>' "$SMTPD_DIR/env.1"
}

@test "as sendmail, a body with a bare CR or a long line is sent quoted-printable, not refused" {
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/sendmail"
	long=$(head -c 1500 /dev/zero | tr '\0' 'x')
	printf 'Subject: cron\n\n10 pct\r100 pct\n%s\n.\nafter the dot\n' "$long" >"$BATS_TEST_TMPDIR/m"
	"$BATS_TEST_TMPDIR/sendmail" -f me@example.test a@example.test <"$BATS_TEST_TMPDIR/m"
	grep -q '^Content-Transfer-Encoding: quoted-printable' "$SMTPD_DIR/msg.1"
	grep -q '10 pct=0D100 pct' "$SMTPD_DIR/msg.1"
	! grep -q 'after the dot' "$SMTPD_DIR/msg.1"
	run awk 'length($0) > 1000' "$SMTPD_DIR/msg.1"
	[ -z "$output" ]
	# as smtpsend the same message is refused, naming the line
	run "$SMTPSEND" -f me@example.test a@example.test <"$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 65 ]
	[[ "$output" == *"line 3: bare CR"* ]]
}

@test "a multipart message with a bad line is refused even as sendmail (it cannot be re-encoded)" {
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/sendmail"
	run "$BATS_TEST_TMPDIR/sendmail" -f me@example.test a@example.test < <(printf 'Subject: m\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nbad\rline\n--b--\n')
	[ "$status" -eq 65 ]
	[[ "$output" == *"not a single text part"* ]]
}

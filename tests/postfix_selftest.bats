#!/usr/bin/env bats
# Self-tests of tests/postfix.bash: a private Postfix instance receives
# mail into one mbox and refuses the agreed test recipients.

load postfix

# send_py PORT FROM RCPT... < MESSAGE: send with smtplib; print one line
# "RCPT CODE" per recipient; exit 0 only when the message was accepted.
SEND_PY='
import smtplib, sys
port, sender, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
msg = sys.stdin.read()
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("client.example.test")
code, text = s.mail(sender)
assert code == 250, (code, text)
ok = 0
for r in rcpts:
    code, text = s.rcpt(r)
    print(r, code, text.decode())
    ok += code == 250
if ok:
    code, text = s.data(msg.encode())
    print("DATA", code, text.decode())
    s.quit()
    sys.exit(0 if code == 250 else 1)
s.quit()
sys.exit(3)
'

send_mail() {
	python3 -c "$SEND_PY" "$POSTFIX_PORT" "$@"
}

setup_file() {
	local t0 ms
	t0=$(date +%s%N)
	postfix_start
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "# postfix_start took ${ms} ms (port $POSTFIX_PORT)" >&3
}

teardown_file() {
	local conf=$POSTFIX_DIR pid=$POSTFIX_PID mpid
	mpid=$(_postfix_master_pid "$POSTFIX_ROOT")
	postfix_stop
	postfix_stop # a second call must be harmless
	# Nothing of the instance is left, and the default main.cf is clean.
	# (Zombies are dead: init reaps the master's orphans when it likes.)
	if ps -o stat= -p "$pid" -p "$mpid" -s "$mpid" | grep -qv '^Z'; then
		echo "postfix processes are left over" >&2
		ps -o pid,ppid,sid,stat,args -p "$pid" -p "$mpid" -s "$mpid" >&2
		return 1
	fi
	if postconf -h alternate_config_directories | grep -qF "$conf"; then
		echo "$conf is still listed in /etc/postfix/main.cf" >&2
		return 1
	fi
}

@test "postfix_start exports the instance's variables" {
	[[ $POSTFIX_PORT =~ ^[0-9]+$ ]]
	[[ -f $POSTFIX_DIR/main.cf && -f $POSTFIX_DIR/master.cf ]]
	[[ $POSTFIX_MAIL == "$POSTFIX_ROOT/mail/inbox" ]]
	kill -0 "$POSTFIX_PID"
	[[ $(postconf -c "$POSTFIX_DIR" -h myhostname) == postfix.test ]]
	postconf -h alternate_config_directories | grep -qF "$POSTFIX_DIR"
}

@test "a message to user@example.test lands in POSTFIX_MAIL" {
	local before tag=$RANDOM$RANDOM
	before=$(postfix_mail_count)
	run send_mail sender@example.test user@example.test <<EOF
From: Sender <sender@example.test>
To: User <user@example.test>
Subject: selftest $tag

first line $tag
.a line that starts with a dot
last line
EOF
	echo "$output"
	[[ $status -eq 0 ]]
	[[ ${lines[0]} == "user@example.test 250 "* ]]
	postfix_wait_mail $((before + 1))
	grep -q "^Subject: selftest $tag\$" "$POSTFIX_MAIL"
	grep -q "^first line $tag\$" "$POSTFIX_MAIL"
	grep -q '^\.a line that starts with a dot$' "$POSTFIX_MAIL"
	grep -q '^Delivered-To: user@example.test$' "$POSTFIX_MAIL"
	grep -q '^Return-Path: <sender@example.test>$' "$POSTFIX_MAIL"
}

@test "any local part and localhost land in the same mailbox" {
	local before
	before=$(postfix_mail_count)
	run send_mail "" someone@example.test other@localhost <<<"Subject: two"
	echo "$output"
	[[ $status -eq 0 ]]
	postfix_wait_mail $((before + 2))
	grep -q '^Delivered-To: someone@example.test$' "$POSTFIX_MAIL"
	grep -q '^Delivered-To: other@localhost$' "$POSTFIX_MAIL"
}

@test "reject@example.test gets 550, later@example.test 450 at RCPT" {
	run send_mail sender@example.test reject@example.test later@example.test \
		somebody@elsewhere.test <<<"Subject: refused"
	echo "$output"
	[[ $status -eq 3 ]]
	[[ ${lines[0]} == "reject@example.test 550 5.1.1 "*"no such user" ]]
	[[ ${lines[1]} == "later@example.test 450 4.2.0 "*"try later" ]]
	[[ ${lines[2]} == "somebody@elsewhere.test 554 5.7.1 "*"Relay access denied" ]]
}

@test "postfix_wait_mail times out and shows the maillog" {
	run postfix_wait_mail 1000 1
	[[ $status -ne 0 ]]
	[[ $output == *"timed out"* ]]
	[[ $output == *"daemon started"* ]]
}

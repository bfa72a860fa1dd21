#!/usr/bin/env bats
# Against a real Postfix (a private instance on a free loopback port):
# what a sysadmin's relay actually does with smtpsend's mail.

load lib
load postfix

setup_file() {
	postfix_start
}

teardown_file() {
	postfix_stop
}

teardown() {
	stop_all
}

ps_send() {
	"$SMTPSEND" --host 127.0.0.1 --port "$POSTFIX_PORT" "$@"
}

@test "postfix: a composed message is delivered with its headers" {
	before=$(postfix_mail_count)
	run ps_send --from 'Sender Name <sender@example.test>' --subject 'Grüße from smtpsend' \
		--body $'line one\n.line with a dot\n' --cc cc@example.test --bcc hidden@example.test \
		user@example.test
	[ "$status" -eq 0 ]
	postfix_wait_mail $((before + 3))
	grep -q '^Subject: =?UTF-8?' "$POSTFIX_MAIL"
	grep -q '^From: Sender Name <sender@example.test>' "$POSTFIX_MAIL"
	grep -q '^\.line with a dot' "$POSTFIX_MAIL"
	! grep -qi '^Bcc:' "$POSTFIX_MAIL"
}

@test "postfix: a raw message from stdin arrives unchanged, with Date and Message-ID added" {
	before=$(postfix_mail_count)
	printf 'From: raw@example.test\nTo: user@example.test\nSubject: raw %s\n\nraw body\n' "$BATS_TEST_NUMBER" |
		ps_send user@example.test
	postfix_wait_mail $((before + 1))
	grep -q "^Subject: raw $BATS_TEST_NUMBER" "$POSTFIX_MAIL"
	grep -q '^Message-ID: <' "$POSTFIX_MAIL"
}

@test "postfix: a refused recipient (550) is exit 67 naming the recipient and the reply" {
	run ps_send --from s@example.test reject@example.test <<<"Subject: x"
	[ "$status" -eq 67 ]
	[[ "$output" == *"<reject@example.test>: 550 5.1.1"* ]]
}

@test "postfix: a temporarily refused recipient (450) is exit 75" {
	run ps_send --from s@example.test later@example.test <<<"Subject: x"
	[ "$status" -eq 75 ]
	[[ "$output" == *"450 4.2.0"* ]]
}

@test "postfix: relay denied for another domain is exit 67" {
	run ps_send --from s@example.test someone@elsewhere.example <<<"Subject: x"
	[ "$status" -eq 67 ]
	[[ "$output" == *"Relay access denied"* ]]
}

@test "postfix: partial delivery reaches the good recipients and reports the bad one" {
	before=$(postfix_mail_count)
	run ps_send --from s@example.test -O StopOnToErrors=false good@example.test reject@example.test \
		<<<"Subject: partial"
	[ "$status" -eq 67 ]
	postfix_wait_mail $((before + 1))
}

@test "postfix: 8-bit mail goes with BODY=8BITMIME and arrives intact" {
	before=$(postfix_mail_count)
	printf 'Subject: eight\n\ncaf\xc3\xa9 %s\n' "$BATS_TEST_NUMBER" | ps_send -f s@example.test user@example.test
	postfix_wait_mail $((before + 1))
	grep -q "café $BATS_TEST_NUMBER" "$POSTFIX_MAIL"
}

@test "postfix: a 5 MB message is delivered whole" {
	before=$(postfix_mail_count)
	python3 -c 'import sys
sys.stdout.write("Subject: big\n\n")
for i in range(70000): sys.stdout.write("%07d %s\n" % (i, "z" * 64))' >"$BATS_TEST_TMPDIR/big"
	run ps_send -f s@example.test --message "$BATS_TEST_TMPDIR/big" user@example.test
	[ "$status" -eq 0 ]
	postfix_wait_mail $((before + 1))
	grep -q '^0069999 z' "$POSTFIX_MAIL"
}

@test "postfix: 120 recipients in one transaction" {
	before=$(postfix_mail_count)
	args=()
	for i in $(seq 1 120); do args+=("u$i@example.test"); done
	run ps_send -f s@example.test "${args[@]}" <<<"Subject: many"
	[ "$status" -eq 0 ]
	postfix_wait_mail $((before + 120))
}

@test "postfix: CHUNKING: the message goes in BDAT and arrives with its dots unstuffed" {
	before=$(postfix_mail_count)
	run ps_send -v -f s@example.test --subject "bdat $BATS_TEST_NUMBER" \
		--body $'.one dot\n..two dots\n.' user@example.test
	[ "$status" -eq 0 ]
	[[ "$output" == *"--> BDAT "*" LAST"* ]]
	[[ "$output" != *"--> DATA"* ]]
	postfix_wait_mail $((before + 1))
	grep -q '^\.one dot$' "$POSTFIX_MAIL"
	grep -q '^\.\.two dots$' "$POSTFIX_MAIL"
}

@test "postfix: DSN: NOTIFY=SUCCESS brings a real delivery report with ENVID; per-recipient NEVER is honoured" {
	before=$(postfix_mail_count)
	run ps_send -f dsn-sender@example.test -N success -V "envid-$BATS_TEST_NUMBER" -R hdrs \
		--recipient-options 'quiet@example.test:NOTIFY=NEVER' \
		--subject dsn --body b loud@example.test quiet@example.test
	[ "$status" -eq 0 ]
	# the two deliveries, then the report for the one that asked
	postfix_wait_mail $((before + 3))
	grep -q '^Subject: Successful Mail Delivery Report' "$POSTFIX_MAIL"
	grep -q "^Original-Envelope-Id: envid-$BATS_TEST_NUMBER" "$POSTFIX_MAIL"
	grep -q '^Final-Recipient: rfc822; loud@example.test' "$POSTFIX_MAIL"
	! grep -q '^Final-Recipient: rfc822; quiet@example.test' "$POSTFIX_MAIL"
}

@test "postfix: a flush of 20 queued messages goes over one connection" {
	export HOME="$BATS_TEST_TMPDIR"
	before=$(postfix_mail_count)
	for i in $(seq 1 20); do
		printf 'Subject: queued %s\n\nbody\n' "$i" |
			ps_send --queue --queue-dir "$HOME/q" -f s@example.test "q$i@example.test" >/dev/null
	done
	run "$SMTPSEND" -v -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^\*\*\* connected to' <<<"$output")" -eq 1 ]
	[ "$(grep -c '^--> RSET' <<<"$output")" -eq 19 ]
	postfix_wait_mail $((before + 20))
	[ -z "$(ls -A "$HOME/q")" ]
}

@test "postfix: SMTPUTF8: a UTF-8 local part goes with the SMTPUTF8 keyword and arrives" {
	before=$(postfix_mail_count)
	run ps_send -v -f s@example.test --subject "utf8 $BATS_TEST_NUMBER" --body b 'jösé@example.test'
	[ "$status" -eq 0 ]
	[[ "$output" == *"--> MAIL FROM:<s@example.test>"*" SMTPUTF8"* ]]
	# (the trace shows bytes outside ASCII escaped)
	[[ "$output" == *'--> RCPT TO:<j\xc3\xb6s\xc3\xa9@example.test>'* ]]
	postfix_wait_mail $((before + 1))
	grep -q "utf8 $BATS_TEST_NUMBER" "$POSTFIX_MAIL"
}

@test "postfix: SIZE: a message over the server's limit is refused before it is sent" {
	limit=$(postconf -c "$POSTFIX_DIR" -h message_size_limit)
	head -c $((limit + 1000)) /dev/zero | tr '\0' 'x' | fold -w 76 >"$BATS_TEST_TMPDIR/big"
	run ps_send -v -f s@example.test --subject big --body-file "$BATS_TEST_TMPDIR/big" user@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"accepts at most $limit"* ]]
	[[ "$output" != *"--> MAIL FROM"* ]]
}

#!/usr/bin/env bats
# The SMTP session against the scriptable server: greeting, EHLO/HELO,
# pipelining, 421 at every phase, timeouts, malformed and hostile replies.

load lib

send() {
	# send [smtpsend args...]: a small raw message to the scripted server
	printf 'Subject: hi\r\n\r\nhello\r\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@"
}

@test "a raw message is delivered with its envelope; only what is missing is added" {
	smtpd_start
	run send rcpt@example.test
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	grep -q '^MAIL FROM:<me@example.test> SIZE=' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<rcpt@example.test>' "$SMTPD_DIR/env.1"
	grep -q '^Date: ' "$SMTPD_DIR/msg.1"
	grep -q '^Message-ID: <' "$SMTPD_DIR/msg.1"
	grep -q '^From: me@example.test' "$SMTPD_DIR/msg.1"
	# the caller's message follows unchanged
	[ "$(tail -c 22 "$SMTPD_DIR/msg.1" | od -An -c | tr -s ' ')" = \
	  "$(printf 'Subject: hi\r\n\r\nhello\r\n' | tail -c 22 | od -An -c | tr -s ' ')" ]
}

@test "MAIL, RCPT and DATA go out in one pipelined write when PIPELINING is offered" {
	smtpd_start
	run send -v --no-chunking a@example.test b@example.test
	[ "$status" -eq 0 ]
	# the trace shows all four commands sent before the first reply to them
	run awk '/^--> MAIL/{m=1} m&&/^<--/{exit} m&&/^-->/{print}' <<<"$output"
	[ "${#lines[@]}" -eq 4 ]
	[[ "${lines[3]}" == "--> DATA" ]]
}

@test "without PIPELINING each command waits for its reply" {
	smtpd_start "$(smtpd_script <<<'ehlo 8BITMIME')"
	run send a@example.test
	[ "$status" -eq 0 ]
	run awk '/^C: MAIL/{getline; print; exit}' "$SMTPD_DIR/transcript"
	[[ "$output" == S:* ]]
}

@test "EHLO refused with 502 falls back to HELO" {
	smtpd_start "$(smtpd_script <<<'noehlo')"
	run send a@example.test
	[ "$status" -eq 0 ]
	grep -q '^C: HELO ' "$SMTPD_DIR/transcript"
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "EHLO refused with 550 does not fall back: exit 69" {
	smtpd_start "$(smtpd_script <<<'on EHLO* reply 550 5.7.1 go away')"
	run send a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"550 5.7.1 go away"* ]]
	run grep -c '^C: HELO' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "--no-esmtp sends HELO and never EHLO" {
	smtpd_start
	run send --no-esmtp a@example.test
	[ "$status" -eq 0 ]
	grep -q '^C: HELO ' "$SMTPD_DIR/transcript"
	run grep -c '^C: EHLO' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "554 greeting: QUIT, exit 69, one line naming the reply" {
	smtpd_start "$(smtpd_script <<<'greeting 554 no service for you')"
	run send a@example.test
	[ "$status" -eq 69 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "smtpsend: error 161: "*"554 no service for you"* ]]
	grep -q '^C: QUIT' "$SMTPD_DIR/transcript"
}

@test "421 at the greeting: exit 75" {
	smtpd_start "$(smtpd_script <<<'greeting 421 4.3.2 busy')"
	run send a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"421 4.3.2 busy"* ]]
}

@test "421 to EHLO: exit 75" {
	smtpd_start "$(smtpd_script <<<'on EHLO* reply 421 4.3.2 closing')"
	run send a@example.test
	[ "$status" -eq 75 ]
}

@test "421 to MAIL: exit 75, nothing delivered" {
	smtpd_start "$(smtpd_script <<<'on MAIL* reply 421 4.3.2 closing')"
	run send a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"421 4.3.2 closing"* ]]
	[ ! -f "$SMTPD_DIR/env.1" ]
}

@test "421 to RCPT: exit 75" {
	smtpd_start "$(smtpd_script <<<'on RCPT* reply 421 4.3.2 closing')"
	run send a@example.test
	[ "$status" -eq 75 ]
}

@test "421 to DATA: exit 75" {
	smtpd_start "$(smtpd_script <<<'on DATA reply 421 4.3.2 closing')"
	run send --no-chunking a@example.test
	[ "$status" -eq 75 ]
}

@test "421 after the final dot: exit 75" {
	smtpd_start "$(smtpd_script <<<'dot reply 421 4.3.2 closing')"
	run send a@example.test
	[ "$status" -eq 75 ]
}

@test "connection closed after the final dot: exit 75, possible duplicate said" {
	smtpd_start "$(smtpd_script <<<'dot close')"
	run send a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"may have been delivered"* ]]
}

@test "message refused after the dot (554): exit 65" {
	smtpd_start "$(smtpd_script <<<'dot reply 554 5.7.1 looks like spam')"
	run send a@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"554 5.7.1 looks like spam"* ]]
}

@test "a silent server is given up after --timeout: exit 75 with error 201" {
	smtpd_start "$(smtpd_script <<<'on MAIL* silence')"
	SECONDS=0
	run send --timeout 2 a@example.test
	[ "$status" -eq 75 ]
	[ "$SECONDS" -lt 6 ]
	[[ "$output" == *"error 201"* ]]
}

@test "a server that trickles one byte per second cannot hold smtpsend past the timeout" {
	smtpd_start "$(smtpd_script <<<'trickle 1000')"
	SECONDS=0
	run send --timeout 3 a@example.test
	[ "$status" -eq 75 ]
	[ "$SECONDS" -lt 8 ]
}

@test "replies split into 1-byte segments are reassembled" {
	smtpd_start "$(smtpd_script <<<'split 1 2')"
	run send a@example.test
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "an EHLO reply of 10,000 lines is read with bounded memory" {
	smtpd_start "$(smtpd_script <<<'on EHLO* multi 250 10000 capability-number-{i}')"
	run send a@example.test
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "reply lines of 600 and 20,000 bytes are accepted" {
	smtpd_start "$(smtpd_script <<<'on MAIL* reply 250 {{x*600}}
on RCPT* reply 250 {{y*20000}}')"
	run send a@example.test
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "a malformed reply is a protocol violation: exit 76" {
	smtpd_start "$(smtpd_script <<<'on MAIL* reply hello there')"
	run send a@example.test
	[ "$status" -eq 76 ]
	[[ "$output" == *"malformed reply"* ]]
}

@test "a multi-line reply that changes its code is a protocol violation" {
	smtpd_start "$(smtpd_script <<<'on MAIL* raw 250-ok\r\n550 no\r\n')"
	run send a@example.test
	[ "$status" -eq 76 ]
}

@test "garbage instead of a greeting: exit 76, no control bytes on the terminal" {
	smtpd_start "$(smtpd_script <<<'connect raw \x1b[31m\xff garbage\r\n')"
	run send a@example.test
	[ "$status" -eq 76 ]
	[[ "$output" != *$'\x1b'* ]]
	[[ "$output" == *'\x1b'* ]]
}

@test "a server that answers more than it was asked is a protocol violation" {
	smtpd_start "$(smtpd_script <<<'on MAIL* raw 250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n')"
	run send --no-esmtp a@example.test
	[ "$status" -eq 76 ]
}

@test "SIZE: a message over the server's limit is refused before MAIL" {
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING
ehlo SIZE 100')"
	head -c 500 /dev/zero | tr '\0' 'a' | fold -w 70 >"$BATS_TEST_TMPDIR/big"
	run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		--message "$BATS_TEST_TMPDIR/big" a@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"accepts at most 100"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "connection refused: exit 75 with the reference's socket error code" {
	port=$(free_port)
	run "$SMTPSEND" --host 127.0.0.1 --port "$port" --from me@example.test a@example.test </dev/null
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 10061"* ]]
}

@test "unknown host: exit 68" {
	run "$SMTPSEND" --host no-such-host.invalid --from me@example.test a@example.test </dev/null
	[ "$status" -eq 68 ]
	[[ "$output" == *"unknown host"* ]]
}

@test "--hello sets the EHLO name; a name with spaces is refused" {
	smtpd_start
	run send --hello client.example.test a@example.test
	[ "$status" -eq 0 ]
	grep -q '^C: EHLO client.example.test' "$SMTPD_DIR/transcript"
	run send --hello 'two words' a@example.test
	[ "$status" -eq 78 ]
}

@test "SIGTERM before the message went out: exit 75, 'not sent'" {
	smtpd_start "$(smtpd_script <<<'on MAIL* silence')"
	printf 'Subject: hi\n\nhello\n' >"$BATS_TEST_TMPDIR/m"
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		<"$BATS_TEST_TMPDIR/m" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	sleep 1
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 75 ]
	grep -q 'error 301: interrupted; the message was not sent' "$BATS_TEST_TMPDIR/out"
}

@test "SIGINT after the final dot, before the reply: exit 75, 'may have been delivered'" {
	smtpd_start "$(smtpd_script <<<'dot silence')"
	printf 'Subject: hi\n\nhello\n' >"$BATS_TEST_TMPDIR/m"
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		<"$BATS_TEST_TMPDIR/m" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	smtpd_wait_file msg.1
	sleep 0.5
	kill -INT "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 75 ]
	grep -q 'may have been delivered' "$BATS_TEST_TMPDIR/out"
}

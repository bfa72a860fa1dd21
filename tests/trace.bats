#!/usr/bin/env bats
# The protocol trace (-v, the reference's PITrail): direction marks,
# sanitised server text, secrets masked, message content never traced.

load lib

send() {
	printf 'Subject: hi\n\nSECRET-BODY-TEXT\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@"
}

@test "-v shows client lines, server lines and notes, marked by direction" {
	smtpd_start
	run send -v a@example.test
	[ "$status" -eq 0 ]
	[[ "$output" == *"<-- 220 smtpd.test ESMTP"* ]]
	[[ "$output" == *"--> EHLO "* ]]
	[[ "$output" == *"--> MAIL FROM:<me@example.test>"* ]]
	[[ "$output" == *"--> RCPT TO:<a@example.test>"* ]]
	[[ "$output" == *"*** message sent: "*" bytes"* ]]
	[[ "$output" == *"--> QUIT"* ]]
}

@test "without -v nothing is printed on success" {
	smtpd_start
	run send a@example.test
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "message content is never traced" {
	smtpd_start
	run send -v a@example.test
	[ "$status" -eq 0 ]
	[[ "$output" != *SECRET-BODY-TEXT* ]]
}

@test "control characters from the server are escaped in the trace" {
	smtpd_start "$(smtpd_script <<<'greeting 220 evil\x1b]0;owned\x07 server')"
	run send -v a@example.test
	[ "$status" -eq 0 ]
	[[ "$output" != *$'\x1b'* ]]
	[[ "$output" != *$'\x07'* ]]
	[[ "$output" == *'evil\x1b]0;owned\x07 server'* ]]
}

@test "a password from the rc file never appears in the trace or in -O output" {
	smtpd_start
	export HOME="$BATS_TEST_TMPDIR"
	printf 'password hunter2-secret\n' >"$HOME/.smtpsendrc"
	chmod 600 "$HOME/.smtpsendrc"
	run send -v a@example.test
	[[ "$output" != *hunter2-secret* ]]
	run "$SMTPSEND" -O Password
	[ "$status" -eq 0 ]
	[[ "$output" != *hunter2-secret* ]]
	[ "$output" = "********" ]
}

@test "-O Trace=true is the same as -v" {
	smtpd_start
	run send -O Trace=true a@example.test
	[[ "$output" == *"--> MAIL FROM"* ]]
}

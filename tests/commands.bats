#!/usr/bin/env bats
# The reference's Verify, Expand and SendCommand: --verify, --expand and
# --command, after EHLO (and TLS and AUTH when configured), no mail sent.

load lib

cmd() {
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" "$@"
}

@test "--verify sends VRFY and shows the reply; no mail transaction" {
	smtpd_start "$(smtpd_script <<<'on VRFY alice reply 250 2.1.5 Alice <alice@example.test>')"
	run cmd --verify alice
	[ "$status" -eq 0 ]
	[ "$output" = "250 2.1.5 Alice <alice@example.test>" ]
	grep -q '^C: VRFY alice' "$SMTPD_DIR/transcript"
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "--expand prints each address of a multi-line EXPN reply (the Expand event)" {
	smtpd_start "$(smtpd_script <<<'on EXPN staff raw 250-Ann <ann@example.test>\r\n250-Bob <bob@example.test>\r\n250 Cy <cy@example.test>\r\n')"
	run cmd --expand staff
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[1]}" = "250 Bob <bob@example.test>" ]
}

@test "an unknown user is exit 67; a refused command 69; a temporary answer 75" {
	smtpd_start "$(smtpd_script <<<'on VRFY nobody reply 550 5.1.1 no such user
on EXPN secret reply 502 5.5.1 EXPN disabled
on VRFY later reply 450 4.3.0 try later')"
	run cmd --verify nobody
	[ "$status" -eq 67 ]
	run cmd --expand secret
	[ "$status" -eq 69 ]
	run cmd --verify later
	[ "$status" -eq 75 ]
}

@test "--command sends a raw command, in order with the others, and refuses line breaks" {
	smtpd_start
	run cmd --command NOOP --verify bob --command 'HELP'
	[ "$status" -eq 0 ]
	run grep -E '^C: (NOOP|VRFY|HELP)' "$SMTPD_DIR/transcript"
	[ "${lines[0]}" = 'C: NOOP\r\n' ]
	[ "${lines[1]}" = 'C: VRFY bob\r\n' ]
	[ "${lines[2]}" = 'C: HELP\r\n' ]
	run cmd --command $'NOOP\r\nMAIL FROM:<x@y>'
	[ "$status" -eq 65 ]
}

@test "control characters in a reply never reach the terminal" {
	smtpd_start "$(smtpd_script <<<'on VRFY x reply 250 evil\x1b[2J')"
	run cmd --verify x
	[[ "$output" != *$'\x1b'* ]]
	[[ "$output" == *'\x1b'* ]]
}

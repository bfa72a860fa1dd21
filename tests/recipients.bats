#!/usr/bin/env bats
# Recipients: per-recipient results, StopOn*Errors, AllowEmptyTo,
# duplicates, batches, and the final report.

load lib

send() {
	printf 'Subject: hi\n\nhello\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@"
}

REFUSE='on RCPT TO:<bad@*> reply 550 5.1.1 no such user
on RCPT TO:<later@*> reply 451 4.2.0 mailbox busy'

@test "a refused To stops the message (StopOnToErrors): exit 67, nothing delivered" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send good@example.test bad@example.test
	[ "$status" -eq 67 ]
	[[ "$output" == *"error 161: server refused RCPT <bad@example.test>: 550 5.1.1 no such user"* ]]
	[ "${#lines[@]}" -eq 1 ]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

@test "with StopOnToErrors=false the others get it; the refusal is reported, exit 67" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send -O StopOnToErrors=false good@example.test bad@example.test
	[ "$status" -eq 67 ]
	[[ "$output" == *"<bad@example.test>: 550 5.1.1"* ]]
	[ -f "$SMTPD_DIR/msg.1" ]
	grep -qx 'RCPT TO:<good@example.test>' "$SMTPD_DIR/env.1"
	run grep -c 'bad@' "$SMTPD_DIR/env.1"
	[ "$output" -eq 0 ]
}

@test "a refused Cc stops the message by default" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send --cc bad@example.test good@example.test
	[ "$status" -eq 67 ]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

@test "a refused Bcc does not stop the message (StopOnBccErrors=false), but is reported" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send --bcc bad@example.test good@example.test
	[ "$status" -eq 67 ]
	[[ "$output" == *"<bad@example.test>"* ]]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "StopOnBccErrors=true stops on a refused Bcc" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send -O StopOnBccErrors=true --bcc bad@example.test good@example.test
	[ "$status" -eq 67 ]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

@test "a temporary refusal of the only recipient: exit 75" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send later@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"451 4.2.0 mailbox busy"* ]]
}

@test "mixed permanent and temporary refusals: every one reported, the most serious status wins" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send -O StopOnToErrors=false good@example.test later@example.test bad@example.test
	[ "$status" -eq 67 ]
	[[ "$output" == *"<later@example.test>: 451"* ]]
	[[ "$output" == *"<bad@example.test>: 550"* ]]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "no recipient accepted: no data is sent" {
	smtpd_start "$(smtpd_script <<<"$REFUSE")"
	run send -O StopOnToErrors=false bad@example.test
	[ "$status" -eq 67 ]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

@test "no recipient accepted even though the server says 354: the message is not sent" {
	smtpd_start "$(smtpd_script <<<"$REFUSE
on DATA reply 354 go ahead anyway")"
	run send -O StopOnToErrors=false bad@example.test
	[ "$status" -eq 67 ]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

@test "duplicates are sent once; comma lists and display names are parsed" {
	smtpd_start
	run send 'a@example.test, "Last, First" <b@example.test>' --to A@example.test --cc b@example.test
	[ "$status" -eq 0 ]
	run grep -c '^RCPT' "$SMTPD_DIR/env.1"
	[ "$output" -eq 2 ]
}

@test "250 recipients go out in pipelined batches of at most 100" {
	smtpd_start
	args=()
	for i in $(seq 1 250); do args+=("u$i@example.test"); done
	run send -v "${args[@]}"
	[ "$status" -eq 0 ]
	trace=$output
	run grep -c '^RCPT' "$SMTPD_DIR/env.1"
	[ "$output" -eq 250 ]
	# count RCPT commands sent between replies: no run longer than 100
	run awk '/^--> RCPT/{n++; if(n>max)max=n; next} /^<--/{n=0} END{print max}' <<<"$trace"
	[ "$output" -eq 100 ]
}

@test "no recipient at all: error 165, exit 64, before connecting" {
	run "$SMTPSEND" --host 127.0.0.1 --port 1 --from me@example.test </dev/null
	[ "$status" -eq 64 ]
	[[ "$output" == *"error 165"* ]]
}

@test "only Cc/Bcc needs AllowEmptyTo" {
	smtpd_start
	run send --cc c@example.test
	[ "$status" -eq 64 ]
	run send -O AllowEmptyTo=true --cc c@example.test
	[ "$status" -eq 0 ]
}

@test "an address with CR/LF or bad syntax is refused before connecting: exit 65" {
	run "$SMTPSEND" --host 127.0.0.1 --port 1 --from me@example.test 'a@example.test>' </dev/null
	[ "$status" -eq 65 ]
	run "$SMTPSEND" --host 127.0.0.1 --port 1 --from me@example.test $'a@x\r\nRCPT TO:<b@y>' </dev/null
	[ "$status" -eq 65 ]
	run "$SMTPSEND" --host 127.0.0.1 --port 1 --from $'me@x\nRSET' a@example.test </dev/null
	[ "$status" -eq 65 ]
}

@test "an internationalised domain goes out as an A-label" {
	smtpd_start
	run send 'user@bücher.example'
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<user@xn--bcher-kva.example>' "$SMTPD_DIR/env.1"
}

@test "a UTF-8 local part needs SMTPUTF8, and is refused without it" {
	smtpd_start
	run send 'jösé@example.test'
	[ "$status" -eq 0 ]
	grep -q 'SMTPUTF8' "$SMTPD_DIR/env.1"
	stop_all
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING')"
	run send 'jösé@example.test'
	[ "$status" -eq 65 ]
	[[ "$output" == *SMTPUTF8* ]]
}

@test "a sender refused by the server: exit 65 naming the sender" {
	smtpd_start "$(smtpd_script <<<'on MAIL* reply 553 5.1.8 bad sender domain')"
	run send a@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"sender <me@example.test>"*"553 5.1.8"* ]]
}

@test "the envelope sender is ReturnPath, else From, else the message's From" {
	smtpd_start
	run send --return-path bounce@example.test a@example.test
	grep -q '^MAIL FROM:<bounce@example.test>' "$SMTPD_DIR/env.1"
	printf 'From: Someone <someone@example.test>\n\nhi\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" a@example.test
	grep -q '^MAIL FROM:<someone@example.test>' "$SMTPD_DIR/env.2"
	printf 'From: Someone <someone@example.test>\n\nhi\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" -f '<>' a@example.test
	grep -q '^MAIL FROM:<>' "$SMTPD_DIR/env.3"
}

#!/usr/bin/env bats
# Composing a message from flags (and completing a raw one): every header
# flag, RFC 2047, folding, Message-ID, OtherHeaders, Bcc never in headers.

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR"
}

compose() {
	"$SMTPSEND" --print --from me@example.test "$@"
}

@test "each header flag becomes its header" {
	run compose --to to@example.test --cc cc@example.test --subject 'Hello' --body 'hi' \
		--reply-to reply@example.test --read-receipt-to rr@example.test \
		--delivery-notification-to dn@example.test --importance low --priority non-urgent \
		--sensitivity company-confidential --header 'X-Tag: one' --header 'X-Other: two' -F 'Me Myself'
	[ "$status" -eq 0 ]
	[[ "$output" == *$'\nDate: '* ]]
	[[ "$output" == *'From: Me Myself <me@example.test>'* ]]
	[[ "$output" == *'To: to@example.test'* ]]
	[[ "$output" == *'Cc: cc@example.test'* ]]
	[[ "$output" == *'Subject: Hello'* ]]
	[[ "$output" == *'Reply-To: reply@example.test'* ]]
	[[ "$output" == *'Disposition-Notification-To: rr@example.test'* ]]
	[[ "$output" == *'Return-Receipt-To: dn@example.test'* ]]
	[[ "$output" == *'Importance: Low'* ]]
	[[ "$output" == *'Priority: non-urgent'* ]]
	[[ "$output" == *'Sensitivity: Company-Confidential'* ]]
	[[ "$output" == *'X-Tag: one'*'X-Other: two'* ]]
	[[ "$output" == *'Message-ID: <'* ]]
	[[ "$output" == *'MIME-Version: 1.0'* ]]
}

@test "Bcc recipients get RCPT but never a header" {
	run compose --to to@example.test --bcc hidden@example.test --subject s --body b
	[ "$status" -eq 0 ]
	[[ "$output" == *'RCPT TO:<hidden@example.test>'* ]]
	run grep -ci '^bcc' <<<"$output"
	[ "$output" -eq 0 ]
	run compose --to to@example.test --subject s --body b --header 'Bcc: x@example.test'
	[ "$status" -eq 65 ]
}

@test "lines are CRLF in what the server receives" {
	smtpd_start
	run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test --no-chunking \
		--subject s --body $'one\ntwo\n.three' to@example.test
	[ "$status" -eq 0 ]
	grep -q $'^one\r$' "$SMTPD_DIR/msg.1"
	grep -q $'^\\.\\.three\r$' "$SMTPD_DIR/msg.1"
	run grep -c $'[^\r]$' "$SMTPD_DIR/msg.1"
	[ "$output" -eq 0 ]
}

@test "a non-ASCII subject is RFC 2047 encoded and folded at MaxHeaderLength" {
	run compose --to t@example.test --body b \
		--subject 'Grüße aus Köln, ein ziemlich langer Betreff, der gefaltet werden muss, weil er so lang ist'
	[ "$status" -eq 0 ]
	[[ "$output" == *'Subject: =?UTF-8?'* ]]
	# every header line fits in 80 columns (+CR)
	run awk '/^$|^\r$/{exit} length($0) > 81 {print}' <<<"$output"
	[ -z "$output" ]
}

@test "FoldHeaders=false keeps a long header on one line; MaxHeaderLength changes the width" {
	long='word word word word word word word word word word word word word word word word word word word'
	run compose --to t@example.test --body b --subject "$long" -O FoldHeaders=false
	[[ "$output" == *"Subject: $long"* ]]
	run compose --to t@example.test --body b --subject "$long" -O MaxHeaderLength=40
	run awk '/^Subject:/{p=1} p&&/^[^ ]/&&!/^Subject:/{exit} p{ if (length($0) > 41) print }' <<<"$output"
	[ -z "$output" ]
}

@test "MessageIdAlgorithm picks the hash: MD5, SHA1, SHA256" {
	for pair in MD5:32 SHA1:40 SHA256:64; do
		run compose --to t@example.test --subject s --body b -O MessageIdAlgorithm="${pair%%:*}"
		id=$(grep -o 'Message-ID: <[^@]*' <<<"$output" | cut -d'<' -f2 | tr -d '\r')
		[ "${#id}" -eq "${pair##*:}" ]
	done
}

@test "--message-id and --date are used as given; empty means none" {
	run compose --to t@example.test --subject s --body b --message-id 'abc@example.test' \
		--date 'Fri, 1 Mar 1996 21:24:52 -0500'
	[[ "$output" == *'Message-ID: <abc@example.test>'* ]]
	[[ "$output" == *'Date: Fri, 1 Mar 1996 21:24:52 -0500'* ]]
	run compose --to t@example.test --subject s --body b --message-id '' --date ''
	[[ "$output" != *'Message-ID:'* ]]
	[[ "$output" != *$'\nDate:'* ]]
}

@test "OtherHeaders starting with an empty entry replaces the computed headers" {
	run compose --to t@example.test --body 'the body' --header '' --header 'From: x@example.test' \
		--header 'Subject: mine'
	[ "$status" -eq 0 ]
	[[ "$output" == *'From: x@example.test'* ]]
	[[ "$output" == *'Subject: mine'* ]]
	[[ "$output" != *'Message-ID'* ]]
	[[ "$output" != *'MIME-Version'* ]]
}

@test "header injection through any field is refused: exit 65" {
	run compose --to t@example.test --body b --subject $'x\r\nBcc: victim@example.test'
	[ "$status" -eq 65 ]
	run compose --to t@example.test --body b --header $'X-A: 1\nBcc: victim@example.test'
	[ "$status" -eq 65 ]
	run compose --to t@example.test --body b -F $'Name\nBcc: v@example.test'
	[ "$status" -eq 65 ]
	run compose --to t@example.test --body b --header 'Not a header'
	[ "$status" -eq 65 ]
}

@test "a body with long lines or a bare CR is quoted-printable encoded" {
	python3 -c 'import sys; sys.stdout.write("x" * 2000 + "\nline with bare\rCR\n")' >"$BATS_TEST_TMPDIR/body"
	run compose --to t@example.test --subject s --body-file "$BATS_TEST_TMPDIR/body"
	[ "$status" -eq 0 ]
	[[ "$output" == *'Content-Transfer-Encoding: quoted-printable'* ]]
	[[ "$output" == *'=0D'* ]]
	run awk 'length($0) > 78' <<<"$output"
	[ -z "$output" ]
}

@test "an 8-bit body is labelled 8bit and needs 8BITMIME" {
	run compose --to t@example.test --subject s --body 'café'
	[[ "$output" == *'Content-Transfer-Encoding: 8bit'* ]]
	[[ "$output" == *'charset=UTF-8'* ]]
	run compose --to t@example.test --subject s --body 'plain'
	[[ "$output" == *'Content-Transfer-Encoding: 7bit'* ]]
}

@test "composing needs a sender: error 164" {
	run "$SMTPSEND" --print --subject s --body b t@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *'error 164'* ]]
}

@test "a raw message gets a missing From with -F, a Date and a Message-ID; Bcc is stripped" {
	printf 'To: t@example.test\nBcc: hidden@example.test,\n  other@example.test\nSubject: raw\n\nbody\n' >"$BATS_TEST_TMPDIR/m"
	run "$SMTPSEND" --print -f me@example.test -F 'Cron Daemon' t@example.test <"$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 0 ]
	[[ "$output" == *'From: Cron Daemon <me@example.test>'* ]]
	[[ "$output" == *$'\nDate: '* ]]
	[[ "$output" == *'Message-ID: <'* ]]
	[[ "$output" != *hidden@* ]]
	[[ "$output" != *other@* ]]
	[[ "$output" == *'Subject: raw'* ]]
}

@test "a raw message that has Date, Message-ID and From is sent unchanged" {
	printf 'From: a@example.test\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <x@y>\n\nbody\n' >"$BATS_TEST_TMPDIR/m"
	run "$SMTPSEND" --print t@example.test <"$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | tail -n +4 | tr -d '\r')" = "$(cat "$BATS_TEST_TMPDIR/m")" ]
}

@test "a raw message without any header gets its added headers separated from the body" {
	run "$SMTPSEND" --print -f me@example.test t@example.test <<<"just a body line"
	[ "$status" -eq 0 ]
	[[ "$output" == *$'Message-ID: <'*$'>\r\n\r\njust a body line'* ]]
}

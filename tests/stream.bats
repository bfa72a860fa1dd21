#!/usr/bin/env bats
# The outgoing stream: CRLF only, dot-stuffed, no bare CR/LF/NUL, lines of
# at most 998 octets, 8-bit only with 8BITMIME -- asserted on the bytes
# the server received.

load lib

HDR='From: me@example.test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <fixed@example.test>\n\n'
WHDR='From: me@example.test\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <fixed@example.test>\r\n\r\n'

# These tests are about DATA (dot-stuffing, the terminator): the server
# offers CHUNKING, so BDAT is turned off; tests/esmtp.bats sends the same
# sequences with BDAT.
CHUNKING=--no-chunking

# sendbody FORMAT [args]: the fixed headers + printf FORMAT as the body
sendbody() {
	local body=$1
	shift
	# shellcheck disable=SC2059
	{ printf "$HDR"; printf "$body"; } >"$BATS_TEST_TMPDIR/in"
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test $CHUNKING "$@" \
		a@example.test <"$BATS_TEST_TMPDIR/in"
}

setup() {
	smtpd_start
}

@test "bare LF line ends become CRLF" {
	run sendbody 'one\ntwo\n' -i
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}one\r\ntwo\r\n"
}

@test "a last line without a newline is ended with CRLF" {
	run sendbody 'one\ntwo' -i
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}one\r\ntwo\r\n"
}

@test "leading dots are doubled" {
	run sendbody '.\n..\n.x\nx.\n' -i
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}..\r\n...\r\n..x\r\nx.\r\n"
}

@test "LF.LF with -i is data, dot-stuffed" {
	run sendbody 'a\n.\nb\n' -i
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}a\r\n..\r\nb\r\n"
}

@test "LF.CRLF and CRLF.LF with -i are dot-stuffed clean lines" {
	run sendbody 'a\n.\r\nb\r\n.\nc\n' -i
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}a\r\n..\r\nb\r\n..\r\nc\r\n"
}

@test "without -i a line holding a single dot ends the message (sendmail)" {
	run sendbody 'a\n.\nnot sent\n'
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}a\r\n"
}

@test "without -i: '..' is data, '.' at end of file ends, '.\\r\\n' ends" {
	run sendbody 'a\n..\nb\n.'
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}a\r\n...\r\nb\r\n"
	run sendbody 'a\n.\r\nnot sent\n'
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.2" "${WHDR}a\r\n"
}

@test "-oi is the same as -i" {
	run sendbody 'a\n.\nb\n' -oi
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}a\r\n..\r\nb\r\n"
}

# Every hostile sequence either reaches the wire as clean CRLF lines or is
# refused before connecting with the line number (exit 65).
@test "hostile byte sequences with a bare CR or NUL are refused before connecting" {
	for seq in '\r.\r' '\r.\n' '\n.\r' '\r.\r\n' '\r\n.\r' '\r\n\0.\r\n' '\r\n.\0\r\n' '\r\n.\r\r\n'; do
		run sendbody "a${seq}b\n" -i
		echo "sequence $seq: status $status: $output"
		[ "$status" -eq 65 ]
		[[ "$output" == *"line "[0-9]* ]]
	done
	# nothing reached the server: not even a connection
	[ ! -f "$SMTPD_DIR/transcript" ] || ! grep -q '^C:' "$SMTPD_DIR/transcript"
}

@test "the refusal names the line of a bare CR" {
	run sendbody 'ok\nok\nbad\rline\n' -i
	[ "$status" -eq 65 ]
	[[ "$output" == *"line 7"* ]]
	[[ "$output" == *"bare CR"* ]]
}

@test "hostile sequences that are clean lines go out dot-stuffed" {
	n=0
	for seq in '\n.\n' '\n.\r\n' '\r\n.\n'; do
		n=$((n + 1))
		run sendbody "a${seq}b\n" -i
		[ "$status" -eq 0 ]
		assert_file_bytes "$SMTPD_DIR/msg.$n" "${WHDR}a\r\n..\r\nb\r\n"
	done
}

@test "dot-stuffing is right across the 64 KB read boundary" {
	n=0
	for off in 65533 65534 65535 65536 65537 262143 262144 262145; do
		n=$((n + 1))
		python3 - "$off" "$BATS_TEST_TMPDIR/in" <<'PY'
import sys
off, path = int(sys.argv[1]), sys.argv[2]
hdr = b'From: me@example.test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <fixed@example.test>\n\n'
body = bytearray()
while len(hdr) + len(body) < off - 80:
    body += b'x' * 70 + b'\n'
body += b'y' * (off - len(hdr) - len(body) - 1) + b'\n'
body += b'.\r\n.\n..\nend\n'
open(path, 'wb').write(hdr + bytes(body))
PY
		run "$SMTPSEND" -i --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test $CHUNKING \
			a@example.test <"$BATS_TEST_TMPDIR/in"
		[ "$status" -eq 0 ]
		[ "$(tail -c 21 "$SMTPD_DIR/msg.$n" | od -An -c | tr -s ' ')" = \
		  "$(printf 'y\r\n..\r\n..\r\n...\r\nend\r\n' | od -An -c | tr -s ' ')" ]
	done
}

@test "a line of 998 octets is sent, 999 is refused with its line number" {
	line998=$(head -c 998 /dev/zero | tr '\0' 'a')
	run sendbody "${line998}\n" -i
	[ "$status" -eq 0 ]
	run sendbody "x\n${line998}b\n" -i
	[ "$status" -eq 65 ]
	[[ "$output" == *"line 6"* ]]
	[[ "$output" == *"998"* ]]
}

@test "8-bit content goes out with BODY=8BITMIME when the server offers it" {
	run sendbody 'caf\xc3\xa9\n' -i
	[ "$status" -eq 0 ]
	grep -q 'BODY=8BITMIME' "$SMTPD_DIR/env.1"
}

@test "8-bit content to a server without 8BITMIME is refused with a clear error" {
	stop_all
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING')"
	run sendbody 'caf\xc3\xa9\n' -i
	[ "$status" -eq 65 ]
	[[ "$output" == *"8BITMIME"* ]]
	[ ! -f "$SMTPD_DIR/env.1" ]
}

@test "7-bit content never claims BODY=8BITMIME" {
	run sendbody 'plain\n' -i
	[ "$status" -eq 0 ]
	! grep -q 'BODY=' "$SMTPD_DIR/env.1"
}

@test "an empty message is sent as an empty body" {
	: >"$BATS_TEST_TMPDIR/empty"
	run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		--date '' --message-id '' a@example.test <"$BATS_TEST_TMPDIR/empty"
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'From: me@example.test\r\n'
}

@test "a 30 MB message streams through with every byte intact" {
	python3 - "$BATS_TEST_TMPDIR/big" <<'PY'
import sys, random
random.seed(7)
hdr = b'From: me@example.test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <big@example.test>\n\n'
lines = []
for i in range(400000):
    n = random.randrange(0, 140)
    lines.append(b'.' * (i % 3 == 0) + bytes(random.choice(b'abc .xyz') for _ in range(n % 20)) + b'q' * n)
open(sys.argv[1], 'wb').write(hdr + b'\n'.join(lines) + b'\n')
PY
	stop_all
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING
ehlo SIZE 100000000')"
	run "$SMTPSEND" -i --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		--message "$BATS_TEST_TMPDIR/big" a@example.test
	[ "$status" -eq 0 ]
	python3 - "$BATS_TEST_TMPDIR/big" "$SMTPD_DIR/msg.1" <<'PY'
import sys
src = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
want = b''.join((b'.' + l if l.startswith(b'.') else l) + b'\r\n' for l in src)
got = open(sys.argv[2], 'rb').read()
assert got == want, (len(got), len(want))
PY
}

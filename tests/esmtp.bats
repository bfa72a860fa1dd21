#!/usr/bin/env bats
# Extended SMTP against the scriptable server: CHUNKING (BDAT), BINARYMIME,
# per-recipient DSN options, LMTP, SAML/SOML/SEND, several messages over
# one connection, and relays tried in turn.

load lib

HDR='From: me@example.test\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <fixed@example.test>\n\n'
WHDR='From: me@example.test\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <fixed@example.test>\r\n\r\n'

# sendbody FORMAT [args]: the fixed headers + printf FORMAT as the body
sendbody() {
	local body=$1
	shift
	# shellcheck disable=SC2059
	{ printf "$HDR"; printf "$body"; } >"$BATS_TEST_TMPDIR/in"
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@" \
		<"$BATS_TEST_TMPDIR/in"
}

send() {
	printf 'Subject: hi\r\n\r\nhello\r\n' |
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@"
}

# ---- CHUNKING (RFC 3030) ----

@test "CHUNKING offered: BDAT, line ends made CRLF, no dot-stuffing, no terminator" {
	smtpd_start
	run sendbody '.\n..\n.x\nx.\nlast' -i a@example.test
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" "${WHDR}.\r\n..\r\n.x\r\nx.\r\nlast\r\n"
	size=$(stat -c %s "$SMTPD_DIR/msg.1")
	grep -qx "C: BDAT $size LAST\\\\r\\\\n" "$SMTPD_DIR/transcript"
	! grep -q '^C: DATA' "$SMTPD_DIR/transcript"
	# SIZE= announced the same number of bytes
	grep -q "SIZE=$size\$" "$SMTPD_DIR/env.1"
}

@test "a message bigger than a chunk goes in several BDAT chunks, pipelined" {
	smtpd_start
	python3 -c '
import sys
sys.stdout.write("Subject: big\n\n")
for i in range(290000):
    sys.stdout.write(".line %06d of a long message\n" % i)
' >"$BATS_TEST_TMPDIR/big"
	run "$SMTPSEND" -v --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		<"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 0 ]
	# 4 MiB chunks: two full ones and the LAST
	[ "$(grep -c '^C: BDAT 4194304\\r\\n$' "$SMTPD_DIR/transcript")" -eq 2 ]
	[ "$(grep -c '^C: BDAT [0-9]* LAST' "$SMTPD_DIR/transcript")" -eq 1 ]
	# every chunk went out before the first reply to one came back
	run awk '/^--> BDAT/{b++} /^<-- 250 2.0.0 [0-9]* bytes received/{print b; exit}' <<<"$output"
	[ "$output" -eq 3 ]
	# the content arrived whole and unstuffed
	[ "$(grep -c $'^\\.line' "$SMTPD_DIR/msg.1")" -eq 290000 ]
}

@test "without PIPELINING the whole message is one BDAT chunk" {
	smtpd_start "$(smtpd_script <<'EOF'
ehlo CHUNKING
ehlo 8BITMIME
EOF
)"
	head -c 5000000 /dev/zero | tr '\0' 'x' | fold -w 100 >"$BATS_TEST_TMPDIR/body"
	run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test --subject s \
		--body-file "$BATS_TEST_TMPDIR/body" a@example.test
	[ "$status" -eq 0 ]
	[ "$(grep -c '^C: BDAT' "$SMTPD_DIR/transcript")" -eq 1 ]
	grep -q '^C: BDAT [0-9]* LAST' "$SMTPD_DIR/transcript"
}

@test "--no-chunking, UseChunking=false and the rc's chunking off use DATA" {
	smtpd_start
	run send --no-chunking a@example.test
	[ "$status" -eq 0 ]
	run send -O UseChunking=false a@example.test
	[ "$status" -eq 0 ]
	[ "$(grep -c '^C: DATA' "$SMTPD_DIR/transcript")" -eq 2 ]
	! grep -q '^C: BDAT' "$SMTPD_DIR/transcript"
}

@test "a BDAT chunk refused: 5xx is exit 65, 4xx is exit 75, the reply is in the error" {
	smtpd_start "$(smtpd_script <<<'on BDAT* reply 552 5.3.4 message too big for policy')"
	run send a@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"552 5.3.4 message too big for policy"* ]]
	stop_all
	smtpd_start "$(smtpd_script <<<'on BDAT* reply 452 4.3.1 out of space')"
	run send a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"4.3.1"* ]]
}

@test "BDAT after every recipient was refused: nothing is sent" {
	smtpd_start "$(smtpd_script <<<'on RCPT* reply 550 5.1.1 no such user')"
	run send a@example.test
	[ "$status" -eq 67 ]
	! grep -q '^C: BDAT' "$SMTPD_DIR/transcript"
	[ ! -e "$SMTPD_DIR/msg.1" ]
}

# ---- BINARYMIME ----

@test "-B BINARYMIME: NULs, bare CRs and long lines go out byte for byte with BDAT" {
	smtpd_start "$(smtpd_script <<'EOF'
ehlo PIPELINING
ehlo CHUNKING
ehlo BINARYMIME
ehlo 8BITMIME
EOF
)"
	python3 -c '
import sys
sys.stdout.buffer.write(b"From: me@example.test\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <bin@example.test>\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n" + bytes(range(256)) * 20 + b"x" * 3000 + b"\r\n.\r\n")
' >"$BATS_TEST_TMPDIR/bin"
	run "$SMTPSEND" -B BINARYMIME -i --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		a@example.test <"$BATS_TEST_TMPDIR/bin"
	[ "$status" -eq 0 ]
	cmp "$BATS_TEST_TMPDIR/bin" "$SMTPD_DIR/msg.1"
	grep -q 'BODY=BINARYMIME' "$SMTPD_DIR/env.1"
}

@test "-B BINARYMIME to a server without BINARYMIME: exit 69, nothing sent" {
	smtpd_start
	run send -B BINARYMIME a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *BINARYMIME* ]]
	! grep -q '^C: MAIL' "$SMTPD_DIR/transcript"
}

# ---- per-recipient DSN options (the reference's MessageRecipient Options) ----

@test "--recipient-options: NOTIFY and ORCPT per recipient, the run's -N for the others" {
	smtpd_start
	run send -N failure --recipient-options 'a@example.test:NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A+list@example.test' \
		--recipient-options 'b@example.test:NOTIFY NEVER' a@example.test b@example.test c@example.test
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<a@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A+2Blist@example.test' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<b@example.test> NOTIFY=NEVER ORCPT=rfc822;b@example.test' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<c@example.test> NOTIFY=FAILURE ORCPT=rfc822;c@example.test' "$SMTPD_DIR/env.1"
}

@test "recipient options that cannot be right: exit 64 before connecting" {
	smtpd_start
	run send --recipient-options 'x@example.test:NOTIFY=SUCCESS' a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *"not a recipient"* ]]
	run send --recipient-options 'a@example.test:NOTIFY=SOMETIMES' a@example.test
	[ "$status" -eq 64 ]
	run send --recipient-options 'a@example.test:NOTIFY=NEVER,SUCCESS' a@example.test
	[ "$status" -eq 64 ]
	run send --recipient-options 'a@example.test:RET=FULL' a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *"only NOTIFY and ORCPT"* ]]
	run send --recipient-options 'a@example.test' a@example.test
	[ "$status" -eq 64 ]
	[ ! -e "$SMTPD_DIR/transcript" ] || ! grep -q '^C: MAIL' "$SMTPD_DIR/transcript"
}

@test "recipient options to a server without DSN: exit 69 unless DsnOptional" {
	smtpd_start "$(smtpd_script <<<'ehlo PIPELINING')"
	run send --recipient-options 'a@example.test:NOTIFY=SUCCESS' a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *DsnOptional* ]]
	run send -O DsnOptional=true --recipient-options 'a@example.test:NOTIFY=SUCCESS' a@example.test
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
}

# ---- ENHANCEDSTATUSCODES ----

@test "the enhanced status code of a refusal is in the error" {
	smtpd_start "$(smtpd_script <<<'on MAIL* reply 550 5.7.1 sender rejected by policy')"
	run send a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"550 5.7.1 sender rejected by policy"* ]]
}

# ---- LMTP (RFC 2033) ----

@test "--lmtp: LHLO, and each recipient's own reply after the data" {
	smtpd_start "$(smtpd_script <<'EOF'
lmtp
lmtp-rcpt RCPT TO:<b@*> 550 5.1.1 no such mailbox
EOF
)"
	run send --lmtp a@example.test b@example.test c@example.test
	# b was refused for good after the data; a and c have it
	[ "$status" -eq 67 ]
	[[ "$output" == *"<b@example.test>"*"550 5.1.1 no such mailbox"* ]]
	[[ "$output" != *"<a@example.test>"* ]]
	grep -q '^C: LHLO ' "$SMTPD_DIR/transcript"
	! grep -q '^C: EHLO' "$SMTPD_DIR/transcript"
	[ -e "$SMTPD_DIR/msg.1" ]
	# three replies after the data, then QUIT
	[ "$(grep -c '^S: 250 2.0.0 delivered\|^S: 550 5.1.1 no such mailbox' "$SMTPD_DIR/transcript")" -eq 3 ]
}

@test "LMTP with DATA: the same per-recipient replies after the final dot" {
	smtpd_start "$(smtpd_script <<'EOF'
lmtp
ehlo PIPELINING
lmtp-rcpt RCPT TO:<b@*> 452 4.2.2 mailbox full
EOF
)"
	run send -O Protocol=lmtp a@example.test b@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"<b@example.test>"*"452 4.2.2 mailbox full"* ]]
	grep -q '^C: DATA' "$SMTPD_DIR/transcript"
}

@test "LMTP, with a queue: only the recipient refused for now is queued" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<'EOF'
lmtp
lmtp-rcpt RCPT TO:<b@*> 452 4.2.2 mailbox full
EOF
)"
	run send --lmtp --queue-dir "$HOME/q" a@example.test b@example.test
	[ "$status" -eq 0 ]
	[[ "$output" == *queued* ]]
	grep -q '^rcpt to:b@example.test$' "$HOME"/q/*.queued
	! grep -q '^rcpt to:a@example.test$' "$HOME"/q/*.queued
}

@test "LMTP refused for every recipient after the data: not delivered" {
	smtpd_start "$(smtpd_script <<'EOF'
lmtp
lmtp-rcpt RCPT* 550 5.1.1 no such mailbox
EOF
)"
	run send --lmtp a@example.test b@example.test
	[ "$status" -eq 67 ]
}

@test "--lmtp to an SMTP server: LHLO refused, a clear error" {
	smtpd_start
	run send --lmtp a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"LHLO"* ]]
}

# ---- SAML, SOML, SEND (RFC 821) ----

@test "--terminal=and|or|only send SAML, SOML and SEND FROM" {
	smtpd_start "$(smtpd_script <<<'terminal')"
	run send --terminal=and a@example.test
	[ "$status" -eq 0 ]
	run send --terminal=or a@example.test
	[ "$status" -eq 0 ]
	run send --terminal=only a@example.test
	[ "$status" -eq 0 ]
	grep -q '^SAML FROM:<me@example.test>' "$SMTPD_DIR/env.1"
	grep -q '^SOML FROM:<me@example.test>' "$SMTPD_DIR/env.2"
	grep -q '^SEND FROM:<me@example.test>' "$SMTPD_DIR/env.3"
}

@test "a server that does not know SAML: a clear error, exit 69, no hang" {
	smtpd_start
	run timeout 20 "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		--terminal=and a@example.test < <(printf 'Subject: x\n\ny\n')
	[ "$status" -eq 69 ]
	[[ "$output" == *"does not support SAML"* ]]
	run send --terminal=sometimes a@example.test
	[ "$status" -ne 0 ]
	[[ "$output" == *"none, and, only, or"* || "$output" == *"and"*"only"*"or"* ]]
}

# ---- several messages over one connection (Connect / Send / Disconnect) ----

queue_n() {
	# queue_n N [args]: queue N small messages in $HOME/q
	local n=$1 i
	shift
	for ((i = 1; i <= n; i++)); do
		printf 'Subject: m%d\n\nbody %d\n' "$i" "$i" |
			"$SMTPSEND" --queue --queue-dir "$HOME/q" --host 127.0.0.1 --port "$SMTPD_PORT" \
				--from me@example.test "$@" "r$i@example.test" >/dev/null
	done
}

@test "a flush sends every queued message over one connection, RSET between, one EHLO" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start
	queue_n 5
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	smtpd_wait_conns 1
	[ "$(cat "$SMTPD_DIR/conns")" -eq 1 ]
	[ "$(grep -c '^C: EHLO' "$SMTPD_DIR/transcript")" -eq 1 ]
	[ "$(grep -c '^C: RSET' "$SMTPD_DIR/transcript")" -eq 4 ]
	for i in 1 2 3 4 5; do grep -q "^Subject: m" "$SMTPD_DIR/msg.$i"; done
	[ -z "$(ls -A "$HOME/q")" ]
}

@test "one message refused for good does not stop the others on the connection" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<r2@*> reply 550 5.1.1 no such user')"
	queue_n 3
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	smtpd_wait_conns 1
	[ "$(cat "$SMTPD_DIR/conns")" -eq 1 ]
	[ -e "$SMTPD_DIR/msg.2" ] && [ ! -e "$SMTPD_DIR/msg.3" ]
	[ "$(ls "$HOME/q" | grep -c '\.failed$')" -eq 1 ]
	[ "$(ls "$HOME/q" | grep -c '\.queued$')" -eq 0 ]
}

@test "a connection the server drops between messages is made again" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<'EOF'
dot#1 reply 250 2.0.0 ok
then close
EOF
)"
	queue_n 3 --no-chunking
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	smtpd_wait_conns 2
	[ "$(cat "$SMTPD_DIR/conns")" -eq 2 ]
	[ -e "$SMTPD_DIR/msg.3" ] && [ ! -e "$SMTPD_DIR/msg.4" ]
	[ -z "$(ls -A "$HOME/q")" ]
}

@test "messages for different servers go over a connection each" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start
	smtpd_start_named OTHER
	queue_n 2
	printf 'Subject: other\n\nx\n' | "$SMTPSEND" --queue --queue-dir "$HOME/q" --host 127.0.0.1 \
		--port "$OTHER_PORT" --from me@example.test o@example.test >/dev/null
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	[ -e "$SMTPD_DIR/msg.2" ] && [ -e "$OTHER_DIR/msg.1" ]
}

@test "the server unreachable: every entry stays queued, one connection attempt" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start
	queue_n 3
	stop_all
	run "$SMTPSEND" -v -q --queue-dir "$HOME/q"
	[ "$(grep -c 'connecting to 127.0.0.1 port' <<<"$output")" -eq 1 ]
	[ "$(ls "$HOME/q" | grep -c '\.queued$')" -eq 3 ]
}

# ---- relays tried in turn (--host a,b,c) ----

@test "--host a,b,c: a dead relay and a 421 greeting are passed over; the trace says why" {
	port=$(free_port)
	smtpd_start_named BUSY "$(smtpd_script <<<'connect reply 421 4.3.2 too busy')" --listen 127.0.0.2 --port "$port"
	smtpd_start_named LIVE "" --listen 127.0.0.3 --port "$port"
	run "$SMTPSEND" -v --host 127.0.0.1,127.0.0.2,127.0.0.3 --port "$port" --from me@example.test \
		--subject s --body b a@example.test
	[ "$status" -eq 0 ]
	[ -e "$LIVE_DIR/msg.1" ]
	[[ "$output" == *"relay 127.0.0.1 failed"*"trying 127.0.0.2"* ]]
	[[ "$output" == *"relay 127.0.0.2 failed"*"421 4.3.2 too busy"*"trying 127.0.0.3"* ]]
}

@test "--host a,b: every relay failing is exit 75 and the error names each" {
	port=$(free_port)
	smtpd_start_named BUSY "$(smtpd_script <<<'connect reply 421 4.3.2 too busy')" --listen 127.0.0.2 --port "$port"
	run "$SMTPSEND" --host '127.0.0.1, 127.0.0.2' --port "$port" --from me@example.test \
		--subject s --body b a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"127.0.0.1: "*"127.0.0.2: "*"421 4.3.2 too busy"* ]]
}

@test "--host a,b: a 5xx greeting is final, the next relay is not tried" {
	port=$(free_port)
	smtpd_start_named NO "$(smtpd_script <<<'connect reply 554 5.7.1 go away')" --listen 127.0.0.2 --port "$port"
	smtpd_start_named LIVE "" --listen 127.0.0.3 --port "$port"
	run "$SMTPSEND" --host 127.0.0.2,127.0.0.3 --port "$port" --from me@example.test \
		--subject s --body b a@example.test
	[ "$status" -eq 69 ]
	[ ! -e "$LIVE_DIR/msg.1" ]
}

@test "a kept connection answered with 421 (the server's idle timeout) is made again" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<<'on#1 RSET reply 421 4.4.2 idle timeout')"
	queue_n 2
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	smtpd_wait_conns 2
	[ -e "$SMTPD_DIR/msg.2" ]
	[ -z "$(ls -A "$HOME/q")" ]
}

@test "a flush pipelines the next envelope behind the end of a message; a refusal there fails that message alone" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<'EOF2'
dot#2 reply 554 5.7.1 message 2 looks like spam
EOF2
)"
	queue_n 3 --no-chunking
	run "$SMTPSEND" -v -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	# the second envelope went out before the answer to the first dot
	run awk '/^--> \.$/{d=1; next} d && /^--> RSET/{print "early"; exit} d && /^<-- /{print "late"; exit}' <<<"$output"
	[ "$output" = early ]
	smtpd_wait_conns 1
	[ "$(cat "$SMTPD_DIR/conns")" -eq 1 ]
	[ "$(ls "$HOME/q" | grep -c '\.failed$')" -eq 1 ]
	grep -q 'Subject: m2' "$HOME"/q/*.failed
	grep -q 'message 2 looks like spam' "$HOME"/q/*.failed
	[ "$(ls "$HOME/q" | grep -c '\.queued$')" -eq 0 ]
}

@test "a 421 in answer to a pipelined message's end: it is retried later, the next one goes on a new connection" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start "$(smtpd_script <<'EOF2'
dot#2 reply 421 4.3.2 shutting down
EOF2
)"
	queue_n 3 --no-chunking
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	smtpd_wait_conns 2
	# message 1 and 3 delivered, 2 back in the queue for a later try
	[ "$(ls "$HOME/q" | grep -c '\.queued$')" -eq 1 ]
	grep -q 'Subject: m2' "$HOME"/q/*.queued
	grep -q 'Subject: m3' "$SMTPD_DIR"/msg.*
}

@test "entries answered before the flush moves on to another server keep their own KeepQueue" {
	export HOME="$BATS_TEST_TMPDIR"
	smtpd_start
	smtpd_start_named OTHER
	queue_n 2 -O KeepQueue=true
	printf 'Subject: other\n\nx\n' | "$SMTPSEND" --queue --queue-dir "$HOME/q" --host 127.0.0.1 \
		--port "$OTHER_PORT" --from me@example.test o@example.test >/dev/null
	run "$SMTPSEND" -q --queue-dir "$HOME/q"
	[ "$status" -eq 0 ]
	[ -e "$SMTPD_DIR/msg.2" ] && [ -e "$OTHER_DIR/msg.1" ]
	[ "$(ls "$HOME/q" | grep -c '\.sent$')" -eq 2 ]
	[ "$(ls -A "$HOME/q" | wc -l)" -eq 2 ]
}

#!/usr/bin/env bats
# Self-tests of tests/smtpd.py and tests/lib.bash.

load lib

# A small raw SMTP client.  Arguments: PORT then operations:
#   send:TEXT    send TEXT (Python escapes: \r \n \x00 ...) in one write
#   drip:TEXT    send TEXT one byte per write
#   reply[:N]    read N (default 1) complete replies; print each on a line
#                (escaped)
#   eof          read until the server closes; print "EOF" and any bytes
#   sleep:MS
CLIENT_PY='
import socket, sys, time
port = int(sys.argv[1])
fam = socket.AF_INET6 if sys.argv[2:3] == ["-6"] else socket.AF_INET
ops = sys.argv[3:] if fam == socket.AF_INET6 else sys.argv[2:]
s = socket.socket(fam)
s.settimeout(10)
s.connect(("::1" if fam == socket.AF_INET6 else "127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def unesc(t):
    return t.encode("latin-1").decode("unicode_escape").encode("latin-1")
def show(b):
    return repr(b)[2:-1]
def reply():
    global buf
    pos = 0
    while True:
        i = buf.find(b"\n", pos)
        if i < 0:
            data = s.recv(65536)
            if not data:
                raise SystemExit("EOF inside reply: " + show(buf))
            buf += data
            continue
        line = buf[pos:i + 1]
        pos = i + 1
        if line[3:4] != b"-":
            r, buf = buf[:pos], buf[pos:]
            return r
for op in ops:
    kind, _, arg = op.partition(":")
    if kind == "send":
        s.sendall(unesc(arg))
    elif kind == "drip":
        for b in unesc(arg):
            s.sendall(bytes([b]))
            time.sleep(0.001)
    elif kind == "reply":
        for _ in range(int(arg or 1)):
            print(show(reply()))
    elif kind == "eof":
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        print("EOF" + show(buf))
    elif kind == "sleep":
        time.sleep(int(arg) / 1000)
'
client() {
	python3 -c "$CLIENT_PY" "$@"
}

# smtplib sends one message: PORT FROM RCPT... < message
smtplib_send() {
	python3 -c '
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
s.ehlo("client.test")
refused = s.sendmail(sys.argv[2], sys.argv[3:], sys.stdin.buffer.read())
print("refused:", sorted(refused.items()))
s.quit()
' "$@"
}

@test "default dialogue: msg.1 and env.1 are exact" {
	smtpd_start
	run smtplib_send "$SMTPD_PORT" a@x.test b@y.test c@z.test \
		< <(printf 'Subject: hi\r\n\r\nbody\r\n.leading dot\r\nlast')
	[ "$status" -eq 0 ]
	[ "$output" = "refused: []" ]
	smtpd_wait_file msg.1
	assert_file_bytes "$SMTPD_DIR/msg.1" \
		'Subject: hi\r\n\r\nbody\r\n..leading dot\r\nlast\r\n'
	assert_file_bytes "$SMTPD_DIR/env.1" \
		'mail FROM:<a@x.test> size=39\nrcpt TO:<b@y.test>\nrcpt TO:<c@z.test>\n'
	grep -qxF 'S: 220 smtpd.test ESMTP\r\n' "$SMTPD_DIR/transcript"
	grep -qxF 'C: <data 42 bytes>' "$SMTPD_DIR/transcript"
	grep -qxF 'S: 250 2.0.0 queued as 1\r\n' "$SMTPD_DIR/transcript"
	grep -qxF 'S: 221 2.0.0 bye\r\n' "$SMTPD_DIR/transcript"
	[ ! -e "$SMTPD_DIR/errors" ]
}

@test "EHLO capabilities and the default replies" {
	smtpd_start
	run client "$SMTPD_PORT" reply send:'EHLO c\r\n' reply \
		send:'HELO c\r\nVRFY x\r\nFOO\r\nNOOP\r\nRSET\r\nQUIT\r\n' reply:6
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '220 smtpd.test ESMTP\r\n' ]
	[ "${lines[1]}" = '250-smtpd.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-DSN\r\n250 CHUNKING\r\n' ]
	[ "${lines[2]}" = '250 smtpd.test\r\n' ]
	[ "${lines[3]}" = '252 2.1.5 cannot verify\r\n' ]
	[ "${lines[4]}" = '500 5.5.2 unknown command\r\n' ]
	[ "${lines[5]:0:4}" = '250 ' ]
	[ "${lines[6]:0:4}" = '250 ' ]
	[ "${lines[7]}" = '221 2.0.0 bye\r\n' ]
}

@test "message bytes are exact when sent one byte per segment" {
	smtpd_start
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n' reply:4 \
		drip:'A: b\r\n\r\n..\r\n.x\r\n\x00\xff\r\nend\r\n.\r\n' reply \
		send:'QUIT\r\n' eof
	[ "$status" -eq 0 ]
	[ "${lines[4]}" = '354 go ahead\r\n' ]
	[ "${lines[5]}" = '250 2.0.0 queued as 1\r\n' ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'A: b\r\n\r\n..\r\n.x\r\n\000\377\r\nend\r\n'
	assert_file_bytes "$SMTPD_DIR/env.1" 'MAIL FROM:<a@x>\nRCPT TO:<b@y>\n'
}

@test "empty message, and a message whose terminator spans segments" {
	smtpd_start
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n' reply:5 \
		send:'MAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n' reply:3 \
		send:'x\r' sleep:50 send:'\n.' sleep:50 send:'\r' sleep:50 \
		send:'\nQUIT\r\n' reply:2
	[ "$status" -eq 0 ]
	[ "${lines[5]}" = '250 2.0.0 queued as 1\r\n' ]
	[ "${lines[9]}" = '250 2.0.0 queued as 2\r\n' ]
	[ "${lines[10]}" = '221 2.0.0 bye\r\n' ]
	assert_file_bytes "$SMTPD_DIR/msg.1" ''
	assert_file_bytes "$SMTPD_DIR/msg.2" 'x\r\n'
}

@test "pipelined commands in one segment are answered in order" {
	smtpd_start
	run client "$SMTPD_PORT" reply send:'EHLO c\r\n' reply \
		send:'MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n' \
		reply:4 send:'hello\r\n.\r\nRSET\r\nNOOP\r\nQU' sleep:100 send:'IT\r\n' \
		reply:4
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = '250 2.1.0 ok\r\n' ]
	[ "${lines[3]}" = '250 2.1.5 ok\r\n' ]
	[ "${lines[4]}" = '250 2.1.5 ok\r\n' ]
	[ "${lines[5]}" = '354 go ahead\r\n' ]
	[ "${lines[6]}" = '250 2.0.0 queued as 1\r\n' ]
	[ "${lines[9]}" = '221 2.0.0 bye\r\n' ]
	grep -qxF 'C: QUIT\r\n' "$SMTPD_DIR/transcript"
}

@test "transaction state: RCPT before MAIL, DATA without recipients" {
	smtpd_start
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nRCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:<a>\r\nMAIL FROM:<a>\r\nDATA\r\n' \
		reply:6
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = '503 5.5.1 need MAIL command\r\n' ]
	[ "${lines[3]}" = '503 5.5.1 need MAIL command\r\n' ]
	[ "${lines[4]}" = '250 2.1.0 ok\r\n' ]
	[ "${lines[5]}" = '503 5.5.1 nested MAIL command\r\n' ]
	[ "${lines[6]}" = '554 5.5.1 no valid recipients\r\n' ]
}

@test "a rule replaces a reply and rejected recipients stay out of env" {
	script="$(smtpd_script <<'EOF'
# reject one user
on RCPT TO:<bad@*> reply 550 5.1.1 no such user
EOF
)"
	smtpd_start "$script"
	run smtplib_send "$SMTPD_PORT" a@x good@y bad@z <<<'Subject: x'
	[ "$status" -eq 0 ]
	[ "$output" = "refused: [('bad@z', (550, b'5.1.1 no such user'))]" ]
	assert_file_bytes "$SMTPD_DIR/env.1" 'mail FROM:<a@x> size=11\nrcpt TO:<good@y>\n'
	grep -qxF 'S: 550 5.1.1 no such user\r\n' "$SMTPD_DIR/transcript"
}

@test "nth-occurrence rules, dot rules and then-steps" {
	script="$(smtpd_script <<'EOF'
on#2 RCPT* reply 452 4.5.3 too many
on#3+ RCPT* reply 451 4.3.0 later
dot#1 reply 451 4.3.0 try later
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<1>\r\nRCPT TO:<2>\r\nRCPT TO:<3>\r\nDATA\r\nx\r\n.\r\n' \
		reply:7 send:'MAIL FROM:<a>\r\nRCPT TO:<4>\r\nRSET\r\nDATA\r\n' reply:4 \
		send:'MAIL FROM:<a>\r\nRCPT TO:<5>\r\n' reply:2
	[ "$status" -eq 0 ]
	[ "${lines[3]}" = '250 2.1.5 ok\r\n' ]
	[ "${lines[4]}" = '452 4.5.3 too many\r\n' ]
	[ "${lines[5]}" = '451 4.3.0 later\r\n' ]
	[ "${lines[6]}" = '354 go ahead\r\n' ]
	[ "${lines[7]}" = '451 4.3.0 try later\r\n' ]
	[ "${lines[9]}" = '451 4.3.0 later\r\n' ]
	[ "${lines[11]}" = '503 5.5.1 need MAIL command\r\n' ]
	assert_file_bytes "$SMTPD_DIR/env.1" 'MAIL FROM:<a>\nRCPT TO:<1>\n'
}

@test "dot rule with several steps" {
	script="$(smtpd_script <<'EOF'
dot reply 250 fine
then sleep 10
then raw extra\r\n
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n' \
		reply:6
	[ "$status" -eq 0 ]
	[ "${lines[5]}" = '250 fine\r\n' ]
	[ "${lines[6]}" = 'extra\r\n' ]
}

@test "split 1 still gives correct replies at the client" {
	script="$(smtpd_script <<'EOF'
split 1 2
greeting 220-first line
greeting 220 second line
EOF
)"
	smtpd_start "$script"
	run smtplib_send "$SMTPD_PORT" a@x b@y <<<'Subject: x'
	[ "$status" -eq 0 ]
	[ "$output" = "refused: []" ]
	[ -f "$SMTPD_DIR/msg.1" ]
	grep -qxF 'S: 220-first line\r\n' "$SMTPD_DIR/transcript"
	grep -qxF 'S: 220 second line\r\n' "$SMTPD_DIR/transcript"
	run client "$SMTPD_PORT" reply send:'EHLO c\r\n' reply
	[ "${lines[0]}" = '220-first line\r\n220 second line\r\n' ]
	[ "${lines[1]:0:18}" = '250-smtpd.test\r\n' ]
}

@test "multi-line greeting separators are fixed up" {
	script="$(smtpd_script <<'EOF'
greeting 220 one
greeting 220 two
greeting 220-three
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply
	[ "$output" = '220-one\r\n220-two\r\n220 three\r\n' ]
}

@test "a 10,000-line reply from one script line" {
	script="$(smtpd_script <<'EOF'
on EHLO* multi 250 10000 line {i}
on NOOP raw {{250-x\r\n*9999}}250 end\r\n
on VRFY* reply 252 {{y*1000}}
EOF
)"
	smtpd_start "$script"
	client "$SMTPD_PORT" reply send:'EHLO c\r\nNOOP\r\nVRFY z\r\n' reply:3 \
		>"$BATS_TEST_TMPDIR/out"
	run python3 - "$BATS_TEST_TMPDIR/out" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
ehlo = lines[1].split("\\r\\n")[:-1]
assert len(ehlo) == 10000, len(ehlo)
assert ehlo[0] == "250-line 1" and ehlo[9998] == "250-line 9999"
assert ehlo[9999] == "250 line 10000", ehlo[9999]
noop = lines[2].split("\\r\\n")[:-1]
assert len(noop) == 10000 and noop[-1] == "250 end", noop[-1]
assert lines[3] == "252 " + "y" * 1000 + "\\r\\n"
EOF
	[ "$status" -eq 0 ]
	[ "$(grep -c '^S: 250-line' "$SMTPD_DIR/transcript")" -eq 9999 ]
}

@test "raw replies: escapes, no CRLF appended, split mid-line" {
	script="$(smtpd_script <<'EOF'
on NOOP raw 250 a\x00b\tc\\d\r\n
on HELP raw 214-one\r\n214
then sleep 200
then raw  two\r\n
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply send:'NOOP\r\nHELP\r\n' reply:2
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = '250 a\x00b\tc\\d\r\n' ]
	[ "${lines[2]}" = '214-one\r\n214 two\r\n' ]
	grep -qxF 'S: 250 a\x00b\tc\\d\r\n' "$SMTPD_DIR/transcript"
	grep -qxF 'S: 214' "$SMTPD_DIR/transcript"
	grep -qxF 'S:  two\r\n' "$SMTPD_DIR/transcript"
}

@test "close closes the connection without a reply" {
	script="$(smtpd_script <<'EOF'
on MAIL* close
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply send:'EHLO c\r\n' reply \
		send:'MAIL FROM:<a>\r\n' eof
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = 'EOF' ]
	smtpd_wait_conns 1
	grep -qxF '# end of connection 1: closed by rule' "$SMTPD_DIR/transcript"
}

@test "a 421 reply closes, and the server serves the next connection" {
	script="$(smtpd_script <<'EOF'
connect#1 reply 421 4.3.2 busy
on#1 MAIL* reply 421 4.3.2 shutting down
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" eof
	[ "$output" = 'EOF421 4.3.2 busy\r\n' ]
	run client "$SMTPD_PORT" reply send:'MAIL FROM:<a>\r\nRCPT TO:<b>\r\n' eof
	[ "${lines[0]}" = '220 smtpd.test ESMTP\r\n' ]
	[ "${lines[1]}" = 'EOF421 4.3.2 shutting down\r\n' ]
	smtpd_wait_conns 2
	run grep -qxF 'C: RCPT TO:<b>\r\n' "$SMTPD_DIR/transcript"
	[ "$status" -eq 1 ]
	run client "$SMTPD_PORT" reply send:'MAIL FROM:<a>\r\n' reply
	[ "${lines[1]}" = '250 2.1.0 ok\r\n' ]
}

@test "silence keeps reading, and does not stop the server from exiting" {
	script="$(smtpd_script <<'EOF'
on DATA silence
EOF
)"
	smtpd_start "$script"
	python3 -c "$CLIENT_PY" "$SMTPD_PORT" reply \
		send:'MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhello\r\n' \
		sleep:20000 3>&- &
	cpid=$!
	for _ in $(seq 50); do
		grep -qxF 'C: hello\r\n' "$SMTPD_DIR/transcript" && break
		sleep 0.1
	done
	grep -qxF '# silence' "$SMTPD_DIR/transcript"
	grep -qxF 'C: hello\r\n' "$SMTPD_DIR/transcript"
	start=$SECONDS
	stop_all
	[ $((SECONDS - start)) -le 1 ]
	run ! kill -0 "$SMTPD_PID"
	kill "$cpid"
	wait "$cpid" || true
	stop_all
}

@test "SASL responses after 334 are logged and matched" {
	script="$(smtpd_script <<'EOF'
ehlo AUTH LOGIN PLAIN
on AUTH LOGIN reply 334 VXNlcm5hbWU6
on dXNlcg== reply 334 UGFzc3dvcmQ6
on cGFzcw== reply 235 2.7.0 ok
on AUTH PLAIN AHUAcA== reply 535 5.7.8 no
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply send:'EHLO c\r\nAUTH LOGIN\r\n' reply:2 \
		send:'dXNlcg==\r\n' reply send:'cGFzcw==\r\nAUTH PLAIN AHUAcA==\r\n' reply:2 \
		send:'AUTH LOGIN\r\n' reply send:'*\r\n' reply \
		send:'AUTH LOGIN\r\n' reply send:'eA==\r\n' reply
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = '250-smtpd.test\r\n250 AUTH LOGIN PLAIN\r\n' ]
	[ "${lines[2]}" = '334 VXNlcm5hbWU6\r\n' ]
	[ "${lines[3]}" = '334 UGFzc3dvcmQ6\r\n' ]
	[ "${lines[4]}" = '235 2.7.0 ok\r\n' ]
	[ "${lines[5]}" = '535 5.7.8 no\r\n' ]
	[ "${lines[7]}" = '501 5.7.0 authentication canceled\r\n' ]
	[ "${lines[9]}" = '535 5.7.8 authentication failed\r\n' ]
	grep -qxF 'C: cGFzcw==\r\n' "$SMTPD_DIR/transcript"
}

@test "BDAT chunks are concatenated into msg.N" {
	smtpd_start
	run client "$SMTPD_PORT" reply \
		send:'EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 7\r\nab\r\n.\r\nBDAT 3 LAST\r\n' \
		drip:'xyzQUIT\r\n' reply:6
	[ "$status" -eq 0 ]
	[ "${lines[4]}" = '250 2.0.0 7 bytes received\r\n' ]
	[ "${lines[5]}" = '250 2.0.0 queued as 1\r\n' ]
	[ "${lines[6]}" = '221 2.0.0 bye\r\n' ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'ab\r\n.\r\nxyz'
	assert_file_bytes "$SMTPD_DIR/env.1" 'MAIL FROM:<a>\nRCPT TO:<b>\n'
}

@test "ehlo, noehlo and hostname settings" {
	script="$(smtpd_script <<'EOF'
hostname mx.example
ehlo SIZE 1000
ehlo 8BITMIME
EOF
)"
	smtpd_start "$script"
	run client "$SMTPD_PORT" reply send:'EHLO c\r\n' reply
	[ "${lines[0]}" = '220 mx.example ESMTP\r\n' ]
	[ "${lines[1]}" = '250-mx.example\r\n250-SIZE 1000\r\n250 8BITMIME\r\n' ]
	printf 'noehlo\n' >"$BATS_TEST_TMPDIR/s2"
	printf 'ehlo\n' >"$BATS_TEST_TMPDIR/s3"
	smtpd_start_named B "$BATS_TEST_TMPDIR/s2"
	smtpd_start_named C "$BATS_TEST_TMPDIR/s3"
	[ "$B_PORT" != "$SMTPD_PORT" ]
	run client "$B_PORT" reply send:'EHLO c\r\nHELO c\r\n' reply:2
	[ "${lines[1]}" = '502 5.5.1 EHLO not implemented\r\n' ]
	[ "${lines[2]}" = '250 smtpd.test\r\n' ]
	run client "$C_PORT" reply send:'EHLO c\r\n' reply
	[ "${lines[1]}" = '250 smtpd.test\r\n' ]
	[ -f "$B_DIR/transcript" ]
	[ "$(cat "$C_DIR/pid")" = "$C_PID" ]
}

@test "bare LF line endings are accepted and visible" {
	smtpd_start
	run client "$SMTPD_PORT" reply send:'NOOP\nNOOP\r\n' reply:2
	[ "$status" -eq 0 ]
	grep -qxF 'C: NOOP\n' "$SMTPD_DIR/transcript"
	grep -qxF 'C: NOOP\r\n' "$SMTPD_DIR/transcript"
}

@test "IPv6 listener" {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 loopback"
	smtpd_start --ipv6
	run client "$SMTPD_PORT" -6 reply
	[ "$output" = '220 smtpd.test ESMTP\r\n' ]
}

@test "--once exits after the first connection" {
	smtpd_start --once
	run client "$SMTPD_PORT" reply send:'QUIT\r\n' reply
	for _ in $(seq 50); do
		_lib_dead "$SMTPD_PID" && break
		sleep 0.1
	done
	_lib_dead "$SMTPD_PID"
}

@test "a bad script makes smtpd_start fail with the reason" {
	script="$(smtpd_script <<'EOF'
on RCPT TO:<x>
EOF
)"
	run smtpd_start "$script"
	[ "$status" -ne 0 ]
	[[ "$output" == *"line 1: on PATTERN ACTION"* ]]
}

@test "STARTTLS, ehlo-tls and injected bytes" {
	command -v openssl >/dev/null || skip "no openssl"
	make_cert "$BATS_TEST_TMPDIR/tls"
	script="$(smtpd_script <<EOF
starttls $BATS_TEST_TMPDIR/tls/cert.pem $BATS_TEST_TMPDIR/tls/key.pem
ehlo PIPELINING
ehlo-tls PIPELINING
ehlo-tls AUTH PLAIN
EOF
)"
	smtpd_start "$script"
	run python3 -c '
import smtplib, ssl, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
print(s.ehlo()[1].decode().split("\n"))
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
print(s.starttls(context=ctx)[0])
print(s.ehlo()[1].decode().split("\n"))
s.sendmail("a@x", ["b@y"], b"Subject: tls\r\n\r\nsecret\r\n")
s.quit()
' "$SMTPD_PORT" "$BATS_TEST_TMPDIR/tls/cert.pem"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "['smtpd.test', 'PIPELINING', 'STARTTLS']" ]
	[ "${lines[1]}" = "220" ]
	[ "${lines[2]}" = "['smtpd.test', 'PIPELINING', 'AUTH PLAIN']" ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'Subject: tls\r\n\r\nsecret\r\n'
	grep -q '^# TLS established: TLS' "$SMTPD_DIR/transcript"

	# Bytes injected after the 220 arrive in the same segment.
	script="$(smtpd_script inject <<EOF
starttls $BATS_TEST_TMPDIR/tls/cert.pem $BATS_TEST_TMPDIR/tls/key.pem
starttls-inject 250 injected\r\n
EOF
)"
	smtpd_start_named INJ "$script"
	run client "$INJ_PORT" reply send:'STARTTLS\r\n' reply:2
	[ "${lines[1]}" = '220 2.0.0 ready to start TLS\r\n' ]
	[ "${lines[2]}" = '250 injected\r\n' ]
	# A client that sends a command right after STARTTLS: it is discarded.
	run client "$INJ_PORT" reply send:'STARTTLS\r\nNOOP\r\n' reply sleep:200
	[ "${lines[1]}" = '220 2.0.0 ready to start TLS\r\n' ]
	smtpd_wait_conns 2 5 "$INJ_DIR"
	grep -qF '# discarding 6 plaintext bytes' "$INJ_DIR/transcript"
}

@test "implicit TLS" {
	command -v openssl >/dev/null || skip "no openssl"
	make_cert "$BATS_TEST_TMPDIR/tls"
	script="$(smtpd_script <<EOF
implicit-tls $BATS_TEST_TMPDIR/tls/cert.pem $BATS_TEST_TMPDIR/tls/key.pem
EOF
)"
	smtpd_start "$script"
	run python3 -c '
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP_SSL("localhost", int(sys.argv[1]), context=ctx, timeout=10)
s.sendmail("a@x", ["b@y"], b"x\r\n")
s.quit()
' "$SMTPD_PORT" "$BATS_TEST_TMPDIR/tls/cert.pem"
	[ "$status" -eq 0 ]
	assert_file_bytes "$SMTPD_DIR/msg.1" 'x\r\n'
}

@test "trickle and delay slow replies down" {
	printf 'trickle 100\n' >"$BATS_TEST_TMPDIR/s"
	smtpd_start "$BATS_TEST_TMPDIR/s"
	start=$(date +%s%N)
	run client "$SMTPD_PORT" reply
	[ "$output" = '220 smtpd.test ESMTP\r\n' ]
	# 22 bytes, 100 ms apart
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 2000 ]
	printf 'delay 500\n' >"$BATS_TEST_TMPDIR/s2"
	smtpd_start_named D "$BATS_TEST_TMPDIR/s2"
	start=$(date +%s%N)
	run client "$D_PORT" reply send:'NOOP\r\n' reply
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 1000 ]
}

@test "sink_start: smtp-sink accepts a message and dumps it" {
	sink_start
	run smtplib_send "$SINK_PORT" a@x.test b@y.test \
		< <(printf 'Subject: sink\r\n\r\nline\r\n.dot\r\n')
	[ "$status" -eq 0 ]
	run sink_messages
	[ "${#lines[@]}" -eq 1 ]
	f="${lines[0]}"
	grep -qxF 'X-Mail-Args: <a@x.test>' "$f"
	grep -qxF 'X-Rcpt-Args: <b@y.test>' "$f"
	grep -qxF 'Subject: sink' "$f"
	grep -qxF '.dot' "$f"
}

@test "assert_file_bytes shows both sides on a mismatch; stop_all twice" {
	printf 'ab\r\n' >"$BATS_TEST_TMPDIR/f"
	assert_file_bytes "$BATS_TEST_TMPDIR/f" 'ab\r\n'
	run assert_file_bytes "$BATS_TEST_TMPDIR/f" 'ab\n'
	[ "$status" -eq 1 ]
	[[ "$output" == *'a   b  \r  \n'* ]]
	[[ "$output" == *'a   b  \n'* ]]
	smtpd_start
	stop_all
	stop_all
	run ! kill -0 "$SMTPD_PID"
}

@test "SMTPSEND: taken from the environment, else ../src/smtpsend" {
	[ "$SMTPSEND" = "$(smtpsend_bin)" ]
	# shellcheck disable=SC2016
	run env -u SMTPSEND BATS_TEST_DIRNAME=/x/tests \
		bash -c 'source "$1"; echo "$SMTPSEND"' _ "$BATS_TEST_DIRNAME/lib.bash"
	[ "$output" = /x/tests/../src/smtpsend ]
	# shellcheck disable=SC2016
	run env SMTPSEND=/bin/true \
		bash -c 'source "$1"; echo "$SMTPSEND"' _ "$BATS_TEST_DIRNAME/lib.bash"
	[ "$output" = /bin/true ]
}

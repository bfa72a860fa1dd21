#!/usr/bin/env bats
# SMTP AUTH against the scriptable server: the exact initial responses
# the RFCs define, every error answer, hostile challenges, masking, and
# where the secret comes from.  (Real Postfix + Cyrus SASL mechanisms are
# in postfix_tls.bats.)

load lib
load certs

setup_file() {
	export CERTS="$BATS_FILE_TMPDIR/certs"
	make_test_certs "$CERTS"
}

setup() {
	export HOME="$BATS_TEST_TMPDIR"
}

# server [rule lines...]: STARTTLS, AUTH offered only inside TLS
server() {
	smtpd_start "$(smtpd_script <<EOF
starttls $CERTS/good.pem $CERTS/good.key
ehlo PIPELINING
ehlo-tls PIPELINING
ehlo-tls 8BITMIME
ehlo-tls AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER
$1
EOF
)"
}

send() {
	printf 'Subject: auth\n\nbody\n' |
		"$SMTPSEND" --host localhost --port "$SMTPD_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
			--from me@example.test "$@" a@example.test
}

@test "PLAIN: the exact initial response (RFC 4616) inside TLS, then the mail" {
	server 'on AUTH PLAIN * reply 235 2.7.0 authenticated'
	run send --user alice --password-command 'echo s3cret'
	[ "$status" -eq 0 ]
	grep -q '^C: AUTH PLAIN AGFsaWNlAHMzY3JldA==' "$SMTPD_DIR/transcript"
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "the trace masks the AUTH payload and never shows the password" {
	server 'on AUTH PLAIN * reply 235 2.7.0 authenticated'
	run send -v --user alice --password-command 'echo s3cret'
	[ "$status" -eq 0 ]
	[[ "$output" == *"--> AUTH PLAIN ********"* ]]
	[[ "$output" != *AGFsaWNl* ]]
	[[ "$output" != *s3cret* ]]
}

@test "LOGIN: user and password answer the two challenges; both lines masked" {
	server 'on AUTH LOGIN reply 334 VXNlcm5hbWU6
on YWxpY2U= reply 334 UGFzc3dvcmQ6
on czNjcmV0 reply 235 2.7.0 ok'
	run send -v --auth LOGIN --user alice --password-command 'echo s3cret'
	[ "$status" -eq 0 ]
	[[ "$output" != *YWxpY2U=* ]]
	[[ "$output" != *czNjcmV0* ]]
	run grep -c '^--> \*\*\*\*\*\*\*\*' <<<"$output"
	[ "$output" -eq 2 ]
}

@test "535: exit 77 naming the user and the mechanism, nothing sent" {
	server 'on AUTH PLAIN * reply 535 5.7.8 bad credentials'
	run send --user alice --password-command 'echo wrong'
	[ "$status" -eq 77 ]
	[[ "$output" == *"alice"*"PLAIN"*"535 5.7.8"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "454: temporary, exit 75" {
	server 'on AUTH PLAIN * reply 454 4.7.0 temporary authentication failure'
	run send --user alice --password-command 'echo s3cret'
	[ "$status" -eq 75 ]
}

@test "534 and 538: exit 77 with a hint" {
	server 'on AUTH PLAIN * reply 534 5.7.9 application-specific password required'
	run send --user alice --password-command 'echo s3cret'
	[ "$status" -eq 77 ]
	[[ "$output" == *"app password"* ]]
	stop_all
	server 'on AUTH PLAIN * reply 538 5.7.11 encryption required'
	run send --user alice --password-command 'echo s3cret'
	[ "$status" -eq 77 ]
	[[ "$output" == *"TLS"* ]]
}

@test "a challenge that is not base64 is cancelled with '*': exit 76" {
	server 'on AUTH LOGIN reply 334 !!not~base64!!
on \* reply 501 5.7.0 cancelled'
	run send --auth LOGIN --user alice --password-command 'echo s3cret'
	[ "$status" -eq 76 ]
	grep -q '^C: \*' "$SMTPD_DIR/transcript"
}

@test "an oversized challenge is cancelled: exit 76" {
	server 'on AUTH LOGIN reply 334 {{QUFB*30000}}
on \* reply 501 5.7.0 cancelled'
	run send --auth LOGIN --user alice --password-command 'echo s3cret'
	[ "$status" -eq 76 ]
}

@test "no AUTH offered after TLS while credentials are set: exit 69, no mail" {
	smtpd_start "$(smtpd_script <<EOF
starttls $CERTS/good.pem $CERTS/good.key
EOF
)"
	run send --user alice --password-command 'echo s3cret'
	[ "$status" -eq 69 ]
	[[ "$output" == *"offers no AUTH"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "auto never picks a cleartext mechanism without TLS" {
	smtpd_start "$(smtpd_script <<<'ehlo AUTH PLAIN LOGIN')"
	run bash -c 'printf "Subject: x\n\nb\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --user alice --password-command "echo s3cret" --from me@example.test a@example.test'
	[ "$status" -eq 69 ]
	run grep -c '^C: AUTH' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
	# and an explicit PLAIN without TLS is a configuration error
	run bash -c 'printf "Subject: x\n\nb\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --auth PLAIN --user alice --password-command "echo s3cret" --from me@example.test a@example.test'
	[ "$status" -eq 78 ]
}

@test "XOAUTH2: the exact initial response, the token from the password sources" {
	server 'on AUTH XOAUTH2 * reply 235 2.7.0 accepted'
	run send --auth XOAUTH2 --user alice --password-command 'echo tok123'
	[ "$status" -eq 0 ]
	grep -q '^C: AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sxMjMBAQ==' "$SMTPD_DIR/transcript"
}

@test "XOAUTH2, Microsoft's two-step form: an empty 334 gets the token again" {
	server 'on AUTH XOAUTH2* reply 334 
on dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sxMjMBAQ== reply 235 2.7.0 accepted'
	run send --auth XOAUTH2 --user alice --password-command 'echo tok123'
	[ "$status" -eq 0 ]
}

@test "XOAUTH2 error: the JSON challenge is answered empty and reported, exit 77" {
	json=$(printf '{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}' | base64 -w0)
	server "on AUTH XOAUTH2 * reply 334 $json
on  reply 535 5.7.8 Username and Password not accepted"
	run send --auth XOAUTH2 --user alice --password-command 'echo expired'
	[ "$status" -eq 77 ]
	[[ "$output" == *"401"* ]]
}

@test "OAUTHBEARER: the exact RFC 7628 initial response" {
	server 'on AUTH OAUTHBEARER * reply 235 2.7.0 accepted'
	run send --auth OAUTHBEARER --user alice --password-command 'echo tok123'
	[ "$status" -eq 0 ]
	want=$(printf 'n,a=alice,\001host=localhost\001port=%s\001auth=Bearer tok123\001\001' "$SMTPD_PORT" | base64 -w0)
	grep -qF "C: AUTH OAUTHBEARER $want" "$SMTPD_DIR/transcript"
}

@test "a failing password_command: exit 78 before connecting; never an empty password" {
	server 'on AUTH PLAIN * reply 235 ok'
	run send --user alice --password-command 'exit 3'
	[ "$status" -eq 78 ]
	[[ "$output" == *"exited 3"* ]]
	run send --user alice --password-command 'true'
	[ "$status" -eq 78 ]
	[ ! -s "$SMTPD_DIR/transcript" ] || ! grep -q '^C: AUTH' "$SMTPD_DIR/transcript"
}

@test "a user without any password source (no terminal): exit 78" {
	server 'on AUTH PLAIN * reply 235 ok'
	run bash -c "setsid $(printf %q "$SMTPSEND") --host localhost --port $SMTPD_PORT --tls=starttls --tls-ca-file $CERTS/ca.pem --user alice --from me@example.test a@example.test </dev/null"
	[ "$status" -eq 78 ]
	[[ "$output" == *"no password"* ]]
}

@test "the password from the rc file, and from ~/.netrc" {
	server 'on AUTH PLAIN AGFsaWNlAHMzY3JldA== reply 235 ok'
	printf 'password s3cret\n' >"$HOME/.smtpsendrc"
	chmod 600 "$HOME/.smtpsendrc"
	run send --user alice
	[ "$status" -eq 0 ]
	rm "$HOME/.smtpsendrc"
	printf 'machine localhost login alice password s3cret\n' >"$HOME/.netrc"
	chmod 600 "$HOME/.netrc"
	run send --user alice
	[ "$status" -eq 0 ]
	chmod 644 "$HOME/.netrc"
	run send --user alice
	[ "$status" -eq 78 ]
	[[ "$output" == *"chmod 600"* ]]
}

@test "--auth none sends no AUTH even with a user configured" {
	server ''
	run send --auth none --user alice
	[ "$status" -eq 0 ]
	run grep -c '^C: AUTH' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "a 235 before SCRAM's server proof is not trusted" {
	server 'ehlo-tls AUTH SCRAM-SHA-256
on AUTH SCRAM-SHA-256 * reply 235 2.7.0 trust me'
	run send --auth SCRAM-SHA-256 --user alice --password-command 'echo s3cret'
	[ "$status" -eq 77 ]
	[[ "$output" == *"before proving"* ]]
}

@test "the password is in neither the process list nor the trace" {
	server 'on AUTH PLAIN * reply 235 2.7.0 authenticated
on MAIL* silence'
	printf 'pw-Zq81x\n' >"$BATS_TEST_TMPDIR/pw"
	printf 'Subject: auth\n\nbody\n' >"$BATS_TEST_TMPDIR/m"
	"$SMTPSEND" -v --host localhost --port "$SMTPD_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--from me@example.test --user alice --password-command "cat $BATS_TEST_TMPDIR/pw" \
		--timeout 5 a@example.test <"$BATS_TEST_TMPDIR/m" >"$BATS_TEST_TMPDIR/trace" 2>&1 &
	pid=$!
	for _ in $(seq 1 50); do
		grep -q '^C: MAIL' "$SMTPD_DIR/transcript" 2>/dev/null && break
		sleep 0.1
	done
	# the bracket keeps this very command from matching itself
	run bash -c 'ps -eo args | grep -c "[p]w-Zq81x" || true'
	[ "$output" -eq 0 ]
	wait "$pid" || true
	run grep -c 'pw-Zq81x' "$BATS_TEST_TMPDIR/trace"
	[ "$output" -eq 0 ]
	grep -q -- '--> AUTH PLAIN \*\*\*\*\*\*\*\*' "$BATS_TEST_TMPDIR/trace"
}

@test "a password_command's trailing newline (and CR) is not part of the password" {
	server 'on AUTH PLAIN AGFsaWNlAHMzY3JldA== reply 235 ok'
	run send --user alice --password-command "printf 's3cret\r\n'"
	[ "$status" -eq 0 ]
}

@test "an unknown --auth mechanism is refused before connecting: exit 78" {
	server ''
	run send --auth NOSUCH --user alice --password-command 'echo s3cret'
	[ "$status" -eq 78 ]
	[[ "$output" == *"unknown authentication mechanism NOSUCH"* ]]
	[ ! -s "$SMTPD_DIR/transcript" ] || ! grep -q '^C:' "$SMTPD_DIR/transcript"
}

#!/usr/bin/env bats
# TLS: STARTTLS and implicit TLS against the scriptable server with
# certificates made at test time; verification failures named precisely;
# pinning; the STARTTLS holes (injection, downgrade, stale capabilities).

load lib
load certs

setup_file() {
	export CERTS="$BATS_FILE_TMPDIR/certs"
	make_test_certs "$CERTS"
}

MSG='Subject: tls\n\nover TLS\n'

send() {
	printf "$MSG" | "$SMTPSEND" --host localhost --port "$SMTPD_PORT" --from me@example.test "$@"
}

starttls_server() {
	# starttls_server CERTNAME [extra script lines]
	smtpd_start "$(smtpd_script <<EOF
starttls $CERTS/$1.pem $CERTS/$1.key
$2
EOF
)"
}

@test "unit: the GnuTLS transport against gnutls-serv (verification, pins, client certificates)" {
	run "${UNIT_DIR:-$BATS_TEST_DIRNAME/unit}/test_tls" "$CERTS"
	echo "$output" | grep -v '^ok ' || true
	[ "$status" -eq 0 ]
}

@test "STARTTLS with a valid certificate: delivered, EHLO sent again inside TLS" {
	starttls_server good
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
	run grep -c '^C: EHLO' "$SMTPD_DIR/transcript"
	[ "$output" -eq 2 ]
	# MAIL came only after the handshake
	run awk '/TLS/{t=1} /^C: MAIL/{print t+0; exit}' "$SMTPD_DIR/transcript"
	[ "$output" = 1 ]
}

@test "-v shows the TLS steps and the certificate, no secrets" {
	starttls_server good
	run send -v --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 0 ]
	[[ "$output" == *"*** TLS"* ]]
	[[ "$output" == *"certificate verified"* ]]
}

@test "the system trust store does not trust the test CA: exit 69 'unknown issuer'" {
	starttls_server good
	run send --tls=starttls a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"unknown issuer"* ]]
	[[ "$output" == *"SHA256:"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "an expired certificate: exit 69 naming it, nothing sent" {
	starttls_server expired
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"expired"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "a not yet valid certificate: exit 69" {
	starttls_server future
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"not yet valid"* ]]
}

@test "a certificate for another host: exit 69 naming both names" {
	starttls_server wronghost
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"other.example"*"localhost"* ]]
}

@test "a CN that matches but a SAN that does not: refused" {
	starttls_server cnonly
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
}

@test "--tls-host-override checks another name when connecting by address" {
	starttls_server wronghost
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" --tls-host-override other.example a@example.test
	[ "$status" -eq 0 ]
}

@test "a self-signed certificate: refused; accepted with its pinned fingerprint" {
	starttls_server selfsigned
	run send --tls=starttls a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"self-signed"* ]]
	fp=$(certtool --fingerprint --hash sha256 --infile "$CERTS/selfsigned.pem")
	run send --tls=starttls --tls-fingerprint "SHA256:$fp" a@example.test
	[ "$status" -eq 0 ]
	run send --tls=starttls --tls-fingerprint "SHA256:$(printf '%064d' 0)" a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"pinned"* ]]
}

@test "a certificate from an unknown CA: exit 69" {
	starttls_server unknownca
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"unknown issuer"* ]]
}

@test "STARTTLS required but not offered: exit 69, nothing in plaintext" {
	smtpd_start
	run send --tls=starttls a@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"does not offer STARTTLS"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "STARTTLS refused with 454: exit 75, nothing in plaintext" {
	starttls_server good 'on STARTTLS reply 454 4.7.0 TLS not available'
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 75 ]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "STARTTLS refused with 5xx: exit 69" {
	starttls_server good 'on STARTTLS reply 554 5.7.0 no'
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
}

@test "bytes injected with the 220 to STARTTLS are a protocol violation: exit 76" {
	starttls_server good 'starttls-inject 250-injected\r\n250 ok\r\n'
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 76 ]
	[[ "$output" == *"after its 220 to STARTTLS"* ]]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "bytes injected in a separate segment after the 220 are not taken as replies" {
	starttls_server good 'on STARTTLS reply 220 go ahead
then sleep 100
then raw 250 injected\r\n'
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -ne 0 ]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "a server that is not ESMTP cannot STARTTLS: exit 69" {
	starttls_server good 'noehlo'
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 69 ]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "only the capabilities after the handshake count" {
	# plaintext offers 8BITMIME, TLS does not: an 8-bit message is refused
	starttls_server good 'ehlo PIPELINING
ehlo 8BITMIME
ehlo-tls PIPELINING'
	MSG='Subject: x\n\ncaf\xc3\xa9\n' run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 65 ]
	[[ "$output" == *"8BITMIME"* ]]
	stop_all
	# and the other way round: only TLS offers it, and it is used
	starttls_server good 'ehlo PIPELINING
ehlo-tls PIPELINING
ehlo-tls 8BITMIME'
	MSG='Subject: x\n\ncaf\xc3\xa9\n' run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 0 ]
	grep -q 'BODY=8BITMIME' "$SMTPD_DIR/env.1"
}

@test "implicit TLS: delivered; the default port for --tls=implicit is 465" {
	smtpd_start "$(smtpd_script <<<"implicit-tls $CERTS/good.pem $CERTS/good.key")"
	run send --tls=implicit --tls-ca-file "$CERTS/ca.pem" a@example.test
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.1" ]
	run "$SMTPSEND" --tls=implicit -O MailPort
	[ "$output" = 25 ]
}

@test "implicit TLS with an untrusted certificate: exit 69 before any SMTP" {
	smtpd_start "$(smtpd_script <<<"implicit-tls $CERTS/selfsigned.pem $CERTS/selfsigned.key")"
	run send --tls=implicit a@example.test
	[ "$status" -eq 69 ]
	run grep -c '^C: ' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "auto mode: a relay on this machine may stay plaintext" {
	starttls_server good
	run send a@example.test
	[ "$status" -eq 0 ]
	run grep -c '^C: STARTTLS' "$SMTPD_DIR/transcript"
	[ "$output" -eq 0 ]
}

@test "--tls-protocols TLS1.3 against a TLS 1.2-only client setting fails cleanly" {
	starttls_server good
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" --tls-protocols TLS1.3 a@example.test
	[ "$status" -eq 0 ]
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" --tls-protocols nonsense a@example.test
	[ "$status" -eq 78 ]
}

@test "a client key readable by others is refused before connecting: exit 78" {
	cp "$CERTS/client.key" "$BATS_TEST_TMPDIR/k.pem"
	chmod 644 "$BATS_TEST_TMPDIR/k.pem"
	starttls_server good
	run send --tls=starttls --tls-ca-file "$CERTS/ca.pem" --tls-cert "$CERTS/client.pem" \
		--tls-key "$BATS_TEST_TMPDIR/k.pem" a@example.test
	[ "$status" -eq 78 ]
	[[ "$output" == *"chmod 600"* ]]
}

@test "--serverinfo shows capabilities before and after TLS and the certificate" {
	starttls_server good
	run "$SMTPSEND" --serverinfo --host localhost --port "$SMTPD_PORT" --tls=starttls \
		--tls-ca-file "$CERTS/ca.pem"
	[ "$status" -eq 0 ]
	[[ "$output" == *"greeting: 220"* ]]
	[[ "$output" == *"capabilities:"*"STARTTLS"* ]]
	[[ "$output" == *"capabilities after STARTTLS:"* ]]
	[[ "$output" == *"SHA-256:"* ]]
	[[ "$output" == *"verification: verified"* ]]
	run "$SMTPSEND" --serverinfo --host localhost --port "$SMTPD_PORT" --tls=starttls
	[ "$status" -eq 69 ]
	[[ "$output" == *"unknown issuer"* ]]
	[ ! -f "$SMTPD_DIR/msg.1" ]
}

#!/usr/bin/env bats
# smtpsend over TLS against a real Postfix (a private instance on free
# loopback ports, see postfix.bash): STARTTLS on POSTFIX_PORT, implicit TLS
# on POSTFIX_TLS_PORT, both with tests/certs.bash's good.pem (CN=localhost,
# signed by ca.pem), and Cyrus SASL AUTH inside TLS.
#
# For AUTH tests: log in as $POSTFIX_SASL_USER ("alice") with
# $POSTFIX_SASL_PASS ("wonderland"); AUTH is offered only inside TLS, with
# PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256.  Mail to
# anything@$POSTFIX_AUTH_DOMAIN (auth.example.test) is accepted only from
# an authenticated client (554 5.7.1 otherwise); the Received header of
# authenticated mail says "with ESMTPSA" and "(Authenticated sender: ...)".

load lib
load certs
load postfix

setup_file() {
	export CERTS="$BATS_FILE_TMPDIR/certs"
	make_test_certs "$CERTS"
	export POSTFIX_TLS_CERT="$CERTS/good.pem" POSTFIX_TLS_KEY="$CERTS/good.key"
	export POSTFIX_SASL=1
	postfix_start
}

teardown_file() {
	postfix_stop
}

# tls_send ARGS...: smtpsend to the instance by name, so that the name check
# has something to match.  Give --port (and --tls) yourself.
tls_send() {
	"$SMTPSEND" --host localhost "$@"
}

# A subject that no other message of this run has.
tag() {
	printf 'tls-test-%s-%s' "$BATS_TEST_NUMBER" "$RANDOM$RANDOM"
}

# mail_with SUBJECT: print the delivered message (its mbox entry, up to the
# next "From " line) whose Subject is SUBJECT; fail when there is none.
# (Lines are kept in an array: appending to one string would copy it for
# every line, which takes minutes for a 10 MB message.)
mail_with() {
	awk -v subj="Subject: $1" '
		/^From / { if (found) exit; n = 0 }
		{ line[n++] = $0 }
		$0 == subj { found = 1 }
		END {
			if (!found) exit 1
			for (i = 0; i < n; i++) print line[i]
		}
	' "$POSTFIX_MAIL"
}

# wait_for SUBJECT: wait until that message has been delivered, print it.
# The virtual agent holds the mailbox's dotlock while it appends: once the
# Subject is there and the lock is gone, the message is complete.
wait_for() {
	local subject=$1 i
	for ((i = 0; i < 200; i++)); do
		if grep -qxF "Subject: $subject" "$POSTFIX_MAIL" &&
			[[ ! -e $POSTFIX_MAIL.lock ]]; then
			mail_with "$subject"
			return
		fi
		sleep 0.1
	done
	echo "no message with Subject: $subject after 20 s" >&2
	postfix_show_log
	return 1
}

# The SHA-256 fingerprint of a PEM certificate, as SHA256:hex.
fingerprint() {
	python3 -c '
import hashlib, ssl, sys
der = ssl.PEM_cert_to_DER_cert(open(sys.argv[1]).read())
print("SHA256:" + hashlib.sha256(der).hexdigest())' "$1"
}

# What the instance offers, checked with python's smtplib rather than with
# smtpsend: STARTTLS without AUTH before it, AUTH inside TLS, logins with
# PLAIN, LOGIN and CRAM-MD5, a wrong password refused, the auth-only domain,
# and implicit TLS.  Prints "ok" lines; any failure raises.
CHECK_PY='
import smtplib, ssl, sys
port, tls_port, ca, user, password, domain = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)

def starttls():
    s = smtplib.SMTP("localhost", int(port), timeout=20)
    s.ehlo("client.example.test")
    assert s.has_extn("starttls"), s.esmtp_features
    assert not s.has_extn("auth"), "AUTH offered before STARTTLS"
    s.starttls(context=ctx)
    s.ehlo("client.example.test")
    return s

s = starttls()
mechs = s.esmtp_features["auth"].split()
print("ok AUTH inside TLS:", " ".join(mechs))
for m in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"):
    assert m in mechs, m
code, text = s.mail("sender@example.test")
code, text = s.rcpt("anyone@" + domain)
assert code == 554 and text.startswith(b"5.7.1"), (code, text)
print("ok unauthenticated RCPT to", domain + ":", code, text.decode())
s.quit()

for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
    s = starttls()
    s.user, s.password = user, password
    code, text = s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
    assert code == 235, (mech, code, text)
    print("ok AUTH", mech, code, text.decode())
    s.quit()

s = starttls()
try:
    s.login(user, password + "x")
    raise AssertionError("a wrong password was accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
    print("ok wrong password:", e.smtp_code, e.smtp_error.decode())
s.quit()

s = smtplib.SMTP_SSL("localhost", int(tls_port), context=ctx, timeout=20)
s.ehlo("client.example.test")
assert not s.has_extn("starttls")
s.login(user, password)
s.sendmail("sender@example.test", ["someone@" + domain],
            "Subject: " + sys.argv[7] + "\r\n\r\nauthenticated\r\n")
s.quit()
print("ok implicit TLS, login, mail to", domain)
'

@test "postfix.bash: the TLS and SASL instance works (python smtplib)" {
	[[ $POSTFIX_TLS_PORT =~ ^[0-9]+$ && $POSTFIX_TLS_PORT != "$POSTFIX_PORT" ]]
	[[ $POSTFIX_SASL_USER == alice && $POSTFIX_SASL_PASS == wonderland ]]
	[[ $POSTFIX_AUTH_DOMAIN == auth.example.test ]]
	local subject
	subject=$(tag)
	run python3 -c "$CHECK_PY" "$POSTFIX_PORT" "$POSTFIX_TLS_PORT" "$CERTS/ca.pem" \
		"$POSTFIX_SASL_USER" "$POSTFIX_SASL_PASS" "$POSTFIX_AUTH_DOMAIN" "$subject"
	echo "$output"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"with ESMTPSA id"* ]]
	[[ $output == *"(Authenticated sender: alice"* ]]
	[[ $output == *"Delivered-To: someone@auth.example.test"* ]]
}

@test "STARTTLS with the test CA: delivered, and the Received header shows TLS" {
	local subject
	subject=$(tag)
	run tls_send --port "$POSTFIX_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--from sender@example.test user@example.test <<<"Subject: $subject"
	echo "$output"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"(using TLSv1."*" with cipher "* ]]
	[[ $output == *"with ESMTPS id"* ]]
}

@test "implicit TLS on the wrapper-mode port: delivered over TLS" {
	local subject
	subject=$(tag)
	run tls_send --port "$POSTFIX_TLS_PORT" --tls=implicit --tls-ca-file "$CERTS/ca.pem" \
		--from sender@example.test user@example.test <<<"Subject: $subject"
	echo "$output"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"(using TLSv1."*" with cipher "* ]]
	[[ $output == *"with ESMTPS id"* ]]
}

@test "--tls=auto to localhost: delivered (the loopback exception: no STARTTLS needed)" {
	local subject
	subject=$(tag)
	run tls_send --port "$POSTFIX_PORT" --tls=auto \
		--from sender@example.test user@example.test <<<"Subject: $subject"
	echo "$output"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	[ "$status" -eq 0 ]
}

@test "the system trust store does not know the test CA: exit 69, nothing delivered" {
	local sender="untrusted-$BATS_TEST_NUMBER-$RANDOM@example.test"
	run tls_send --port "$POSTFIX_PORT" --tls=starttls \
		--from "$sender" user@example.test <<<"Subject: $(tag)"
	echo "$output"
	[ "$status" -eq 69 ]
	[[ $output == *"unknown issuer"* ]]
	# smtpsend gave up before MAIL FROM: Postfix never saw the sender.
	run ! grep -qF "<$sender>" "$POSTFIX_LOG" "$POSTFIX_MAIL"
	run tls_send --port "$POSTFIX_TLS_PORT" --tls=implicit \
		--from "$sender" user@example.test <<<"Subject: $(tag)"
	[ "$status" -eq 69 ]
	run ! grep -qF "<$sender>" "$POSTFIX_LOG" "$POSTFIX_MAIL"
}

@test "--tls-fingerprint of good.pem without a CA file: delivered; another pin: exit 69" {
	local subject pin
	pin=$(fingerprint "$CERTS/good.pem")
	subject=$(tag)
	run tls_send --port "$POSTFIX_PORT" --tls=starttls --tls-fingerprint "$pin" \
		--from sender@example.test user@example.test <<<"Subject: $subject"
	echo "$output"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	[ "$status" -eq 0 ]
	[[ $output == *"with ESMTPS id"* ]]

	run tls_send --port "$POSTFIX_TLS_PORT" --tls=implicit \
		--tls-fingerprint "$(fingerprint "$CERTS/selfsigned.pem")" \
		--from sender@example.test user@example.test <<<"Subject: $(tag)"
	echo "$output"
	[ "$status" -eq 69 ]
	[[ $output == *"not the pinned"* ]]
}

@test "--serverinfo over STARTTLS: capabilities before and after, the certificate, verified" {
	run tls_send --serverinfo --port "$POSTFIX_PORT" --tls=starttls \
		--tls-ca-file "$CERTS/ca.pem"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"greeting: 220 postfix.test ESMTP"* ]]
	[[ $output == *"subject:     CN=localhost"* ]]
	[[ $output == *"issuer:      CN=smtpsend test CA"* ]]
	[[ $output == *"verification: verified"* ]]
	local before after
	before=$(awk '/^capabilities:/ {on = 1; next} /^[^ ]/ {on = 0} on' <<<"$output")
	after=$(awk '/^capabilities after STARTTLS:/ {on = 1; next} /^[^ ]/ {on = 0} on' <<<"$output")
	# STARTTLS only outside TLS; AUTH (smtpd_tls_auth_only) only inside.
	grep -qx '  STARTTLS' <<<"$before"
	grep -qx '  AUTH .*PLAIN.*' <<<"$after"
	run ! grep -q '^  AUTH' <<<"$before"
	run ! grep -qx '  STARTTLS' <<<"$after"
}

@test "a 10 MB message over STARTTLS arrives whole" {
	local subject body="$BATS_TEST_TMPDIR/body" got="$BATS_TEST_TMPDIR/got"
	subject=$(tag)
	# 100000 different lines of 100 bytes: 10,000,000 bytes of body, under
	# Postfix's default message_size_limit (10240000) with the headers.
	awk 'BEGIN {
		for (i = 0; i < 10; i++) s = s "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
		for (i = 1; i <= 100000; i++) printf "%06d %s\n", i, substr(s, i % 100 + 1, 92)
	}' >"$body"
	[ "$(wc -c <"$body")" -eq 10000000 ]
	{
		printf 'Subject: %s\n\n' "$subject"
		cat "$body"
	} >"$BATS_TEST_TMPDIR/msg"
	run tls_send --port "$POSTFIX_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--from sender@example.test user@example.test <"$BATS_TEST_TMPDIR/msg"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for "$subject" >"$got"
	grep -q '(using TLSv1\.' "$got"
	# The body: after the header's empty line, without the empty line that
	# ends each mbox entry.
	awk 'b {print} !b && /^$/ {b = 1}' "$got" >"$got.body"
	[ -z "$(tail -n 1 "$got.body")" ]
	sed -i '$d' "$got.body"
	[ "$(wc -l <"$got.body")" -eq 100000 ]
	[ "$(sha256sum <"$got.body")" = "$(sha256sum <"$body")" ]
}

# auth_send MECH PASSWORD: authenticate with MECH (password from
# password_command) and mail a recipient that needs authentication.
auth_send() {
	local subject=$3
	tls_send --port "$POSTFIX_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--auth "$1" --user "$POSTFIX_SASL_USER" --password-command "printf '%s\n' '$2'" \
		--from sender@example.test "someone@$POSTFIX_AUTH_DOMAIN" <<<"Subject: $subject"
}

@test "AUTH against Cyrus SASL: every mechanism Postfix offers, a good password delivers" {
	for mech in PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256; do
		local subject
		subject=$(tag)-$mech
		run auth_send "$mech" "$POSTFIX_SASL_PASS" "$subject"
		echo "$mech: $output"
		[ "$status" -eq 0 ]
		run wait_for "$subject"
		[ "$status" -eq 0 ]
		[[ $output == *"with ESMTPSA"* ]]
	done
}

@test "AUTH against Cyrus SASL: a bad password is exit 77 for every mechanism" {
	for mech in PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256; do
		run auth_send "$mech" not-the-password "$(tag)"
		echo "$mech: $output"
		[ "$status" -eq 77 ]
		[[ $output == *"$POSTFIX_SASL_USER"* ]]
	done
}

@test "AUTH auto picks the strongest mechanism (SCRAM-SHA-256) and delivers" {
	local subject
	subject=$(tag)
	run tls_send -v --port "$POSTFIX_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--user "$POSTFIX_SASL_USER" --password-command "echo $POSTFIX_SASL_PASS" \
		--from sender@example.test "someone@$POSTFIX_AUTH_DOMAIN" <<<"Subject: $subject"
	[ "$status" -eq 0 ]
	[[ $output == *"--> AUTH SCRAM-SHA-256 ********"* ]]
	[[ $output != *"$POSTFIX_SASL_PASS"* ]]
	run wait_for "$subject"
	[ "$status" -eq 0 ]
}

@test "AUTH over implicit TLS delivers" {
	local subject
	subject=$(tag)
	run tls_send --port "$POSTFIX_TLS_PORT" --tls=implicit --tls-ca-file "$CERTS/ca.pem" \
		--user "$POSTFIX_SASL_USER" --password-command "echo $POSTFIX_SASL_PASS" \
		--from sender@example.test "someone@$POSTFIX_AUTH_DOMAIN" <<<"Subject: $subject"
	[ "$status" -eq 0 ]
	run wait_for "$subject"
	[ "$status" -eq 0 ]
}

@test "without AUTH the authenticated-only domain is refused: exit 67" {
	run tls_send --port "$POSTFIX_PORT" --tls=starttls --tls-ca-file "$CERTS/ca.pem" \
		--from sender@example.test "someone@$POSTFIX_AUTH_DOMAIN" <<<"Subject: x"
	[ "$status" -eq 67 ]
}

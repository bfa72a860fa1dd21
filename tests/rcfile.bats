#!/usr/bin/env bats
# The rc file: locations, layering, accounts, inheritance, choice by
# sender, the permission check, and errors naming the file and line.

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	unset XDG_CONFIG_HOME
	mkdir -p "$HOME"
}

rc() {
	# rc FILE: write stdin to FILE with mode 0600
	cat >"$1"
	chmod 600 "$1"
}

@test "~/.smtpsendrc provides defaults" {
	rc "$HOME/.smtpsendrc" <<'EOF'
# comment
host mx.example.test
port 2525
timeout 9
EOF
	run "$SMTPSEND" -O host -O MailPort -O Timeout
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = mx.example.test ]
	[ "${lines[1]}" = 2525 ]
	[ "${lines[2]}" = 9 ]
}

@test "\$XDG_CONFIG_HOME/smtpsend/config is used when it exists" {
	export XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/xdg"
	mkdir -p "$XDG_CONFIG_HOME/smtpsend"
	rc "$XDG_CONFIG_HOME/smtpsend/config" <<<'host xdg.example.test'
	rc "$HOME/.smtpsendrc" <<<'host home.example.test'
	run "$SMTPSEND" -O MailServer
	[ "$output" = xdg.example.test ]
}

@test "the command line overrides the rc file, only for what it sets" {
	rc "$HOME/.smtpsendrc" <<'EOF'
host mx.example.test
port 2525
EOF
	run "$SMTPSEND" --port 26 -O MailServer -O MailPort
	[ "${lines[0]}" = mx.example.test ]
	[ "${lines[1]}" = 26 ]
}

@test "accounts inherit defaults and bases; -a picks one" {
	rc "$HOME/.smtpsendrc" <<'EOF'
defaults
timeout 30
port 587

account base
host base.example.test
max_header_length 100

account work : base
from me@work.example.test
port 2526

account default : work
EOF
	run "$SMTPSEND" -a work -O host -O port -O timeout -O MaxHeaderLength -O From
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = base.example.test ]
	[ "${lines[1]}" = 2526 ]
	[ "${lines[2]}" = 30 ]
	[ "${lines[3]}" = 100 ]
	[ "${lines[4]}" = me@work.example.test ]
	# the default account
	run "$SMTPSEND" -O port
	[ "$output" = 2526 ]
}

@test "the account is chosen by the envelope sender (glob, case-insensitive)" {
	rc "$HOME/.smtpsendrc" <<'EOF'
account home
from *@home.example.test
host smtp.home.example.test

account work
from *@work.example.test
host smtp.work.example.test
EOF
	run "$SMTPSEND" -f Me@WORK.example.test -O host
	[ "$output" = smtp.work.example.test ]
	run "$SMTPSEND" -f me@home.example.test -O host
	[ "$output" = smtp.home.example.test ]
	# the full "Name <addr>" form chooses by its address
	run "$SMTPSEND" -f 'Me <me@home.example.test>' -O host
	[ "$output" = smtp.home.example.test ]
	# a pattern chooses the account but is never used as the sender
	run "$SMTPSEND" -a work -O From
	[ "$output" = "" ]
}

@test "an rc file that exists but cannot be read is an error, not skipped" {
	printf 'host x\n' >"$HOME/.smtpsendrc"
	chmod 000 "$HOME/.smtpsendrc"
	if [ "$(id -u)" -eq 0 ]; then
		skip "root reads any file"
	fi
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
}

@test "a world-readable file holding an OAuth token is refused" {
	printf 'host x\nauthorization_identity Bearer abc\n' >"$HOME/.smtpsendrc"
	chmod 644 "$HOME/.smtpsendrc"
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
}

@test "an unknown account: exit 78" {
	rc "$HOME/.smtpsendrc" <<<'host x'
	run "$SMTPSEND" -a nosuch -O host
	[ "$status" -eq 78 ]
	[[ "$output" == *'no account "nosuch"'* ]]
}

@test "a bad value names the file and line: exit 78" {
	rc "$HOME/.smtpsendrc" <<'EOF'
host x

port nineteen
EOF
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
	[[ "$output" == *".smtpsendrc:3: MailPort"* ]]
}

@test "an unknown key names the file and line: exit 78" {
	rc "$HOME/.smtpsendrc" <<<'hots x'
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
	[[ "$output" == *".smtpsendrc:1: unknown setting"* ]]
}

@test "a file holding a password and readable by others is refused with the chmod to run" {
	printf 'host x\npassword secret123\n' >"$HOME/.smtpsendrc"
	chmod 644 "$HOME/.smtpsendrc"
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
	[[ "$output" == *"chmod 600"* ]]
	[[ "$output" != *secret123* ]]
	chmod 600 "$HOME/.smtpsendrc"
	run "$SMTPSEND" -O host
	[ "$status" -eq 0 ]
}

@test "a file holding a password owned by someone else is refused" {
	printf 'host x\npassword secret123\n' >"$HOME/.smtpsendrc"
	chmod 600 "$HOME/.smtpsendrc"
	chown 12345 "$HOME/.smtpsendrc"
	run "$SMTPSEND" -O host
	[ "$status" -eq 78 ]
	[[ "$output" == *"owned by"* ]]
}

@test "-C FILE replaces the user rc; a missing -C file is exit 78" {
	rc "$HOME/.smtpsendrc" <<<'host home.example.test'
	rc "$BATS_TEST_TMPDIR/other" <<<'host other.example.test'
	run "$SMTPSEND" -C "$BATS_TEST_TMPDIR/other" -O host
	[ "$output" = other.example.test ]
	run "$SMTPSEND" -C "$BATS_TEST_TMPDIR/missing" -O host
	[ "$status" -eq 78 ]
}

@test "a 64 KB token line is read whole" {
	tok=$(head -c 65536 /dev/zero | tr '\0' 'k')
	printf 'host x\nuser %s\n' "$tok" >"$HOME/.smtpsendrc"
	chmod 600 "$HOME/.smtpsendrc"
	run "$SMTPSEND" -O User
	[ "$status" -eq 0 ]
	[ "${#output}" -eq 65536 ]
}

@test "settings from the rc file are used for sending" {
	smtpd_start
	rc "$HOME/.smtpsendrc" <<EOF
host 127.0.0.1
port $SMTPD_PORT
from rc@example.test
hello rc.example.test
EOF
	run "$SMTPSEND" a@example.test <<<"Subject: x"
	[ "$status" -eq 0 ]
	grep -q '^MAIL FROM:<rc@example.test>' "$SMTPD_DIR/env.1"
	grep -q '^C: EHLO rc.example.test' "$SMTPD_DIR/transcript"
}

@test "header settings in the rc file are defaults for composing and do not stop raw messages" {
	smtpd_start
	printf 'host 127.0.0.1\nport %s\nheader X-Team: ops\nimportance high\n' "$SMTPD_PORT" >"$HOME/.smtpsendrc"
	chmod 600 "$HOME/.smtpsendrc"
	run bash -c 'printf "Subject: raw\n\nbody\n" | "$SMTPSEND" -f me@example.test a@example.test'
	[ "$status" -eq 0 ]
	run "$SMTPSEND" --print -f me@example.test --subject s --body b a@example.test
	[[ "$output" == *"X-Team: ops"* ]]
	[[ "$output" == *"Importance: High"* ]]
}

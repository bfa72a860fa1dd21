#!/usr/bin/env bats
# The command line: help, version, settings, bad flags, "--".

load lib

setup() {
	# no rc file of the machine's user may leak into these tests
	export HOME="$BATS_TEST_TMPDIR" XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/.config"
}

@test "--help lists the options and exits 0" {
	run "$SMTPSEND" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--host"* ]]
	[[ "$output" == *"--print"* ]]
	[[ "$output" == *"--body-file"* ]]
}

@test "--version names the version, libraries and features" {
	run "$SMTPSEND" --version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "smtpsend "[0-9]* ]]
	[[ "$output" == *"GnuTLS"* ]]
	[[ "$output" == *"features:"* ]]
}

@test "an unknown flag: exit 64 with one line" {
	run "$SMTPSEND" --no-such-flag a@example.test
	[ "$status" -eq 64 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "smtpsend: error: --no-such-flag: unknown option"* ]]
}

@test "a flag missing its argument: exit 64" {
	run "$SMTPSEND" --host
	[ "$status" -eq 64 ]
}

@test "-O Name prints a setting's value, case-insensitively, with the reference default" {
	run "$SMTPSEND" -O Timeout -O maxheaderlength -O StopOnBccErrors -O MessageIdAlgorithm -O MessageDate
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 60 ]
	[ "${lines[1]}" = 80 ]
	[ "${lines[2]}" = false ]
	[ "${lines[3]}" = SHA1 ]
	[ "${lines[4]}" = "*" ]
}

@test "-O Name=Value sets a setting, and a later flag overrides an earlier one" {
	run "$SMTPSEND" -O Timeout=5 --timeout 7 -O Timeout
	[ "$status" -eq 0 ]
	[ "$output" = 7 ]
}

@test "-O with an unknown name: exit 64" {
	run "$SMTPSEND" -O NoSuchSetting=1 a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *'unknown setting "NoSuchSetting"'* ]]
}

@test "-O with a bad value: exit 64 naming the expected type" {
	run "$SMTPSEND" -O MailPort=seventy a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *"MailPort"*"whole number"* ]]
	run "$SMTPSEND" -O FoldHeaders=perhaps a@example.test
	[ "$status" -eq 64 ]
	run "$SMTPSEND" --importance urgent a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *"high, normal, low"* ]]
}

@test "a setting that does not apply says why" {
	run "$SMTPSEND" -O CodePage=1252 a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" == *"does not apply"* ]]
}

@test "a password is never accepted on the command line" {
	run "$SMTPSEND" -O Password=hunter2 a@example.test
	[ "$status" -eq 64 ]
	[[ "$output" != *hunter2* ]]
}

@test "--list-settings lists every setting with its default" {
	run "$SMTPSEND" --list-settings
	[ "$status" -eq 0 ]
	[[ "$output" == *"StopOnToErrors"*"true"* ]]
	[[ "$output" == *"MaxHeaderLength"* ]]
	[[ "$output" == *"DoEvents"*"not applicable"* ]]
}

@test "-- ends options: a recipient that looks like a flag stays a recipient" {
	run "$SMTPSEND" --print --from me@example.test -- --weird@example.test <<<"hi"
	[ "$status" -eq 0 ]
	[[ "$output" == *"RCPT TO:<--weird@example.test>"* ]]
}

@test "no mail server configured: error 163, exit 78" {
	run "$SMTPSEND" --from me@example.test a@example.test <<<"hi"
	[ "$status" -eq 78 ]
	[[ "$output" == *"error 163"* ]]
}

@test "a missing --message file: exit 66" {
	run "$SMTPSEND" --host 127.0.0.1 --message /nonexistent/file a@example.test
	[ "$status" -eq 66 ]
	[[ "$output" == *"/nonexistent/file"* ]]
}

@test "a missing --body-file: exit 66" {
	run "$SMTPSEND" --host 127.0.0.1 --from me@example.test --subject s --body-file /nonexistent/b a@example.test
	[ "$status" -eq 66 ]
}

@test "--print shows the envelope and the message and sends nothing" {
	run "$SMTPSEND" --print --host 127.0.0.1 --port 1 --from me@example.test a@example.test <<<"Subject: x"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "MAIL FROM:<me@example.test>" ]
	[ "${lines[1]}" = "RCPT TO:<a@example.test>" ]
	[[ "$output" == *"Subject: x"* ]]
}

@test "a password without a user is a configuration error" {
	run "$SMTPSEND" --host 127.0.0.1 --password-command 'echo x' --from me@example.test a@example.test <<<"hi"
	[ "$status" -eq 78 ]
	[[ "$output" == *"no user"* ]]
}

@test "an empty --to does not count as a To recipient" {
	run "$SMTPSEND" --print --from me@example.test --to '' --cc c@example.test <<<"hi"
	[ "$status" -eq 64 ]
	[[ "$output" == *"error 165"* ]]
}

@test "header flags with a raw message on stdin are refused, not dropped" {
	run "$SMTPSEND" --print --from me@example.test --header 'X-A: b' a@example.test <<<"hi"
	[ "$status" -eq 64 ]
	[[ "$output" == *"--header applies when composing"* ]]
	run "$SMTPSEND" --print --from me@example.test --importance high a@example.test <<<"hi"
	[ "$status" -eq 64 ]
}

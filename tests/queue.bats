#!/usr/bin/env bats
# The queue (the reference's Queue, ProcessQueue and KeepQueue): entries
# written whole or not at all, flushed once however many flushers run,
# retried after 4xx, failed after 5xx, listed by mailq, corrupt ones set
# aside while the rest goes out.

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR"
	export Q="$BATS_TEST_TMPDIR/q"
}

msg() {
	printf 'Subject: %s\n\nqueued body\n' "${1:-queued}"
}

# ss ARGS: smtpsend to the scripted server
ss() {
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test "$@"
}

@test "--queue writes one complete 0600 entry in a 0700 directory, prints its id, sends nothing" {
	smtpd_start
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue --queue-dir "$Q" a@example.test'
	[ "$status" -eq 0 ]
	id=$output
	[ -f "$Q/$id.queued" ]
	[ "$(stat -c %a "$Q")" = 700 ]
	[ "$(stat -c %a "$Q/$id.queued")" = 600 ]
	[ ! -s "$SMTPD_DIR/transcript" ] || ! grep -q '^C:' "$SMTPD_DIR/transcript"
	run ls -A "$Q"
	[ "${#lines[@]}" -eq 1 ]
}

@test "-odq queues like --queue" {
	smtpd_start
	msg | ss -odq --queue-dir "$Q" a@example.test
	run ls "$Q"
	[[ "$output" == *.queued ]]
}

@test "-q sends what is queued, with the settings it was queued with, and empties the queue" {
	smtpd_start
	msg first | ss --queue --queue-dir "$Q" a@example.test
	msg second | ss --queue --queue-dir "$Q" b@example.test c@example.test
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	grep -qx 'RCPT TO:<c@example.test>' "$SMTPD_DIR/env.2"
	grep -q '^Subject: second' "$SMTPD_DIR/msg.2"
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "KeepQueue keeps sent entries as ID.sent" {
	smtpd_start
	msg | ss --queue --queue-dir "$Q" a@example.test
	"$SMTPSEND" -q --queue-dir "$Q" -O KeepQueue=true
	run ls "$Q"
	[[ "$output" == *.sent ]]
}

@test "--queue-dir - writes the entry to standard output" {
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --from me@example.test --queue --queue-dir - a@example.test'
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "smtpsend-queue 1" ]]
	[[ "$output" == *"rcpt to:a@example.test"* ]]
}

@test "with a queue configured, a temporary failure queues the message and exits 0" {
	smtpd_start "$(smtpd_script <<<'on RCPT* reply 451 4.7.1 greylisted, try later')"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue-dir "$Q" a@example.test'
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "smtpsend: queued as "*"451 4.7.1 greylisted"* ]]
	run "$SMTPSEND" -bp --queue-dir "$Q"
	[[ "$output" == *"queued"*"<me@example.test>"* ]]
	[[ "$output" == *"to:a@example.test"* ]]
}

@test "a refused connection queues too; the flush delivers once the server is back" {
	port=$(free_port)
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$port"' --from me@example.test --queue-dir "$Q" a@example.test'
	[ "$status" -eq 0 ]
	[[ "$output" == *"queued as"* ]]
	smtpd_start
	run "$SMTPSEND" -q --queue-dir "$Q" --port "$SMTPD_PORT"
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "a permanent failure is never queued: exit 67" {
	smtpd_start "$(smtpd_script <<<'on RCPT* reply 550 5.1.1 no such user')"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue-dir "$Q" a@example.test'
	[ "$status" -eq 67 ]
	[ ! -e "$Q" ] || [ -z "$(ls -A "$Q")" ]
}

@test "partial delivery: only the temporarily refused recipient is queued" {
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<later@*> reply 451 4.2.0 mailbox busy')"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue-dir "$Q" -O StopOnToErrors=false now@example.test later@example.test'
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<now@example.test>' "$SMTPD_DIR/env.1"
	run cat "$Q"/*.queued
	[[ "$output" == *"rcpt to:later@example.test"* ]]
	[[ "$output" != *"rcpt to:now@example.test"* ]]
}

@test "a flush that meets a 4xx puts the entry back with a later retry; 5xx makes it failed" {
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<later@*> reply 451 4.2.0 busy
on RCPT TO:<never@*> reply 550 5.1.1 no such user')"
	msg | ss --queue --queue-dir "$Q" later@example.test
	msg | ss --queue --queue-dir "$Q" never@example.test
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	run ls "$Q"
	[[ "$output" == *.queued* ]]
	[[ "$output" == *.failed* ]]
	grep -q '^attempts 1' "$Q"/*.queued
	grep -q '550 5.1.1' "$Q"/*.failed
	# not due yet: a second flush right away does not connect again
	conns=$(grep -c '^# connection' "$SMTPD_DIR/transcript")
	"$SMTPSEND" -q --queue-dir "$Q"
	[ "$(grep -c '^# connection' "$SMTPD_DIR/transcript")" -eq "$conns" ]
	run "$SMTPSEND" -bp --queue-dir "$Q"
	[[ "$output" == *failed* ]]
	[[ "$output" == *"451 4.2.0 busy"* ]]
}

@test "ten concurrent flushes over 60 messages deliver each exactly once" {
	smtpd_start
	for i in $(seq 1 60); do
		msg "m$i" | ss --queue --queue-dir "$Q" "u$i@example.test" >/dev/null
	done
	pids=()
	for i in $(seq 1 10); do
		"$SMTPSEND" -q --queue-dir "$Q" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	smtpd_wait_conns 60 20 || true
	run bash -c "cat '$SMTPD_DIR'/env.* | grep -c '^RCPT'"
	[ "$output" -eq 60 ]
	run bash -c "grep -h '^Subject:' '$SMTPD_DIR'/msg.* | sort | uniq -d"
	[ -z "$output" ]
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "corrupt entries are set aside and reported; the rest of the queue still goes out" {
	smtpd_start
	msg good | ss --queue --queue-dir "$Q" a@example.test
	: >"$Q/20200101T000000.000000-1-deadbeef.queued"
	ln -s /etc/passwd "$Q/20200101T000000.000001-1-deadbeef.queued"
	printf 'smtpsend-queue 1\nid x\n' >"$Q/20200101T000000.000002-1-deadbeef.queued"
	chmod 600 "$Q"/*.queued
	run "$SMTPSEND" -bp --queue-dir "$Q"
	[[ "$output" == *corrupt* ]]
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	[[ "$output" == *"warning"* ]]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
}

@test "a queue directory writable by others is refused: exit 78" {
	mkdir -p "$Q"
	chmod 777 "$Q"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --from me@example.test --queue --queue-dir "$Q" a@example.test'
	[ "$status" -eq 78 ]
	[[ "$output" == *chmod* ]]
}

@test "a flusher killed after the final dot leaves the entry to the next flush (a duplicate only there)" {
	smtpd_start "$(smtpd_script <<<'dot silence')"
	msg | ss --queue --queue-dir "$Q" a@example.test
	"$SMTPSEND" -q --queue-dir "$Q" &
	pid=$!
	smtpd_wait_file msg.1
	kill -KILL "$pid"
	wait "$pid" || true
	run ls "$Q"
	[[ "$output" == *.sending ]]
	stop_all
	smtpd_start
	run "$SMTPSEND" -q --queue-dir "$Q" --port "$SMTPD_PORT"
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "mailq lists an empty queue" {
	ln -s "$SMTPSEND" "$BATS_TEST_TMPDIR/mailq"
	run "$BATS_TEST_TMPDIR/mailq" --queue-dir "$Q"
	[ "$status" -eq 0 ]
	[[ "$output" == *"queue is empty"* ]]
}

@test "SIGKILL while queueing from a slow pipe leaves no entry, partial or whole" {
	( printf 'Subject: slow\n\n'; sleep 3; printf 'late\n' ) |
		"$SMTPSEND" --host 127.0.0.1 --from me@example.test --queue --queue-dir "$Q" a@example.test &
	pid=$!
	sleep 1
	kill -KILL "$pid"
	wait "$pid" || true
	run bash -c "ls '$Q' 2>/dev/null | grep -v '^\.tmp-' || true"
	[ -z "$output" ]
	run "$SMTPSEND" -bp --queue-dir "$Q"
	[[ "$output" == *"queue is empty"* ]]
}

@test "SIGKILL of a flusher after MAIL: the next flush sends the message, once" {
	smtpd_start "$(smtpd_script <<<'on#1 MAIL* silence')"
	msg | ss --queue --queue-dir "$Q" a@example.test
	"$SMTPSEND" -q --queue-dir "$Q" &
	pid=$!
	for _ in $(seq 1 50); do
		grep -q '^C: MAIL' "$SMTPD_DIR/transcript" 2>/dev/null && break
		sleep 0.1
	done
	kill -KILL "$pid"
	wait "$pid" || true
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	run bash -c "cat '$SMTPD_DIR'/env.* | grep -c '^RCPT'"
	[ "$output" -eq 1 ]
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "retry scheduling: 451 twice, then 250 (next_try moved back by hand)" {
	smtpd_start "$(smtpd_script <<<'on#1 RCPT* reply 451 4.7.1 greylisted
on#2 RCPT* reply 451 4.7.1 greylisted')"
	msg | ss --queue --queue-dir "$Q" a@example.test
	for attempt in 1 2 3; do
		# make the entry due now (its mtime carries next_try)
		touch -d '2000-01-01' "$Q"/*.queued 2>/dev/null || true
		sed -i 's/^next-try .*/next-try 0/' "$Q"/*.queued 2>/dev/null || true
		"$SMTPSEND" -q --queue-dir "$Q"
	done
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	run ls -A "$Q"
	[ -z "$output" ]
}

@test "a flush that delivers to some and meets 4xx for others queues the others alone" {
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<later@*> reply 451 4.2.0 busy')"
	msg | ss --queue --queue-dir "$Q" -O StopOnToErrors=false now@example.test later@example.test
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	grep -qx 'RCPT TO:<now@example.test>' "$SMTPD_DIR/env.1"
	run cat "$Q"/*.queued
	[[ "$output" == *"rcpt to:later@example.test"* ]]
	[[ "$output" != *"rcpt to:now@example.test"* ]]
}

@test "every recipient refused for now (and DATA answered 554): temporary, queued, not failed" {
	smtpd_start "$(smtpd_script <<<'on RCPT* reply 450 4.2.0 busy')"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue-dir "$Q" --bcc b@example.test -O AllowEmptyTo=true'
	[ "$status" -eq 0 ]
	[[ "$output" == *"queued as"* ]]
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --bcc b@example.test -O AllowEmptyTo=true'
	[ "$status" -eq 75 ]
}

@test "-bv with --queue verifies and queues nothing; -q with a recipient is a usage error" {
	smtpd_start
	run "$SMTPSEND" -bv --queue --queue-dir "$Q" --host 127.0.0.1 --port "$SMTPD_PORT" -f me@example.test a@example.test </dev/null
	[ "$status" -eq 0 ]
	[ ! -e "$Q" ] || [ -z "$(ls -A "$Q")" ]
	run "$SMTPSEND" -q a@example.test
	[ "$status" -eq 64 ]
}

#!/usr/bin/env bats
# The queue (the reference's Queue, ProcessQueue and KeepQueue): entries
# written whole or not at all, flushed once however many flushers run,
# retried after 4xx, failed after 5xx, listed by mailq, corrupt ones set
# aside while the rest goes out.

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR"
	export Q="$BATS_TEST_TMPDIR/q"
	NS_PID=
}

teardown() {
	if [[ -n "$NS_PID" ]]; then
		kill -KILL "$NS_PID" 2>/dev/null
		wait "$NS_PID" 2>/dev/null
	fi
	stop_all
}

# ns_start: a private mount namespace, held by a sleeping process of ours
# (NS_PID), so that a tmpfs mounted in it goes away with it whatever
# happens to the test: nothing is ever mounted in the test's own namespace.
ns_start() {
	local i
	unshare -m --propagation private sleep 600 </dev/null >/dev/null 2>&1 3>&- &
	NS_PID=$!
	for ((i = 0; i < 100; i++)); do
		[[ "$(readlink "/proc/$NS_PID/ns/mnt" 2>/dev/null)" != "$(readlink /proc/self/ns/mnt)" ]] &&
			[[ "$(readlink "/proc/$NS_PID/exe" 2>/dev/null)" == */sleep ]] && return 0
		kill -0 "$NS_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# inns CMD...: run CMD in that namespace
inns() {
	nsenter -t "$NS_PID" -m -- "$@"
}

# full_queue_fs: the queue directory as a 64 KiB tmpfs in a private mount
# namespace (skips when that is not possible here).
full_queue_fs() {
	[[ "$(id -u)" == 0 ]] || skip "needs root to mount a tmpfs"
	command -v unshare >/dev/null && command -v nsenter >/dev/null ||
		skip "needs unshare and nsenter (util-linux)"
	ns_start || skip "cannot create a private mount namespace (unshare -m)"
	mkdir -p "$Q"
	inns mount -t tmpfs -o size=64k,mode=0700 tmpfs "$Q" ||
		skip "cannot mount a tmpfs in a private mount namespace"
	[ "$(inns stat -f -c %T "$Q")" = tmpfs ]
	# the test's own namespace never sees the mount
	[ "$(stat -f -c %T "$Q")" != tmpfs ] || [ "$(stat -f -c %T "$BATS_TEST_TMPDIR")" = tmpfs ]
}

# server_unread: octets received but not yet read on the scripted server's
# established connection(s) (/proc/net/tcp, rx_queue)
server_unread() {
	local port hex total=0
	port=$(printf '0100007F:%04X' "$SMTPD_PORT")
	for hex in $(awk -v p="$port" '$2 == p && $4 == "01" { split($5, q, ":"); print q[2] }' /proc/net/tcp); do
		total=$((total + 16#$hex))
	done
	echo "$total"
}

# kill_stuck_flusher PID PATTERN [SKIP]: once the transcript shows
# PATTERN and body octets wait unread on the server's side, SIGKILL the
# flusher PID and check that its entry is left as the one ID.sending.  When
# the transcript shows SKIP instead, the test is skipped.
kill_stuck_flusher() {
	local pid=$1 pattern=$2 skip_pattern=${3:-}
	for _ in $(seq 1 200); do
		grep -q "$pattern" "$SMTPD_DIR/transcript" 2>/dev/null &&
			[ "$(server_unread)" -gt 0 ] && break
		[[ -n "$skip_pattern" ]] && grep -q "$skip_pattern" "$SMTPD_DIR/transcript" 2>/dev/null && break
		sleep 0.05
	done
	if [[ -n "$skip_pattern" ]] && grep -q "$skip_pattern" "$SMTPD_DIR/transcript"; then
		kill -KILL "$pid"
		wait "$pid" || true
		skip "this build sends with DATA although CHUNKING is offered"
	fi
	grep -q "$pattern" "$SMTPD_DIR/transcript"
	[ "$(server_unread)" -gt 0 ]
	kill -KILL "$pid"
	wait "$pid" || true
	run ls "$Q"
	[[ "$output" == *.sending ]]
	[ "${#lines[@]}" -eq 1 ]
}

# delivered_once MINSIZE: the server holds one complete message of more
# than MINSIZE octets for a@example.test, and the queue is empty.
delivered_once() {
	[ -f "$SMTPD_DIR/msg.1" ]
	[ ! -e "$SMTPD_DIR/msg.2" ]
	[ "$(stat -c %s "$SMTPD_DIR/msg.1")" -gt "$1" ]
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.1"
	run ls -A "$Q"
	[ -z "$output" ]
}

# bigmsg LINES: a message of LINES lines of 77 octets (with the newline)
bigmsg() {
	printf 'Subject: big\n\n'
	yes "$(printf '%076d' 0)" | head -n "$1"
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

# now@ was delivered and later@ alone waits in the queue
only_later_queued() {
	grep -qx 'RCPT TO:<now@example.test>' "$SMTPD_DIR/env.1"
	run cat "$Q"/*.queued
	[[ "$output" == *"rcpt to:later@example.test"* ]]
	[[ "$output" != *"rcpt to:now@example.test"* ]]
}

@test "partial delivery: only the temporarily refused recipient is queued" {
	smtpd_start "$(smtpd_script <<<'on RCPT TO:<later@*> reply 451 4.2.0 mailbox busy')"
	run bash -c 'printf "Subject: q\n\nbody\n" | "$SMTPSEND" --host 127.0.0.1 --port '"$SMTPD_PORT"' --from me@example.test --queue-dir "$Q" -O StopOnToErrors=false now@example.test later@example.test'
	[ "$status" -eq 0 ]
	only_later_queued
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

@test "ten concurrent flushes over 200 messages deliver each exactly once (counted by the server)" {
	smtpd_start
	for i in $(seq 1 200); do
		msg "m$i" | ss --queue --queue-dir "$Q" "u$i@example.test" >/dev/null
	done
	[ "$(find "$Q" -name '*.queued' | wc -l)" -eq 200 ]
	pids=()
	for i in $(seq 1 10); do
		"$SMTPSEND" -q --queue-dir "$Q" 2>"$BATS_TEST_TMPDIR/flush.$i" &
		pids+=($!)
	done
	fails=0
	for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
	cat "$BATS_TEST_TMPDIR"/flush.* >&2
	[ "$fails" -eq 0 ]
	# every message the server took: 200 complete ones, one recipient each,
	# every recipient and every subject exactly once
	[ "$(find "$SMTPD_DIR" -name 'msg.[0-9]*' ! -name '*.tmp' | wc -l)" -eq 200 ]
	[ "$(cat "$SMTPD_DIR"/env.* | grep -c '^RCPT')" -eq 200 ]
	[ "$(cat "$SMTPD_DIR"/env.* | grep '^RCPT' | sort -u | wc -l)" -eq 200 ]
	[ "$(grep -h '^Subject:' "$SMTPD_DIR"/msg.* | sort -u | wc -l)" -eq 200 ]
	for i in 1 77 200; do
		[ "$(cat "$SMTPD_DIR"/env.* | grep -cx "RCPT TO:<u$i@example.test>")" -eq 1 ]
	done
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
	only_later_queued
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

@test "SIGKILL of a flusher during DATA: no message on the server, the next flush sends it once" {
	# no CHUNKING offered, so the body goes with DATA; the server answers 354
	# and then reads nothing for 3 s: the 8.5 MB body cannot fit in the
	# socket buffers, so the flusher is stuck mid-body
	smtpd_start "$(smtpd_script <<'EOF'
ehlo PIPELINING
ehlo 8BITMIME
ehlo SIZE 10485760
on#1 DATA reply 354 go ahead
then sleep 3000
EOF
)"
	bigmsg 110000 | ss --queue --queue-dir "$Q" a@example.test >/dev/null
	"$SMTPSEND" -q --queue-dir "$Q" &
	pid=$!
	# kill once the 354 went out and body octets wait, unread, on the
	# server's side of the connection
	kill_stuck_flusher "$pid" '^S: 354'
	# the server is still asleep on the first connection; this flush waits
	# for it, and its connection comes second
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	# the killed attempt: part of the body, no final dot, nothing saved
	run grep -E '^C: <data [0-9]+ bytes, unterminated>' "$SMTPD_DIR/transcript"
	[ "${#lines[@]}" -eq 1 ]
	n=$(sed -E 's/^C: <data ([0-9]+) bytes.*/\1/' <<<"${lines[0]}")
	[ "$n" -gt 0 ]
	[ "$n" -lt 8470000 ]
	sed -n '/^# connection 1 /,/^# connection 2 /p' "$SMTPD_DIR/transcript" >"$BATS_TEST_TMPDIR/conn1"
	run ! grep -q '^# saved message' "$BATS_TEST_TMPDIR/conn1"
	# the retry: one complete message, once
	delivered_once 8470000
}

@test "SIGKILL of a flusher between BDAT chunks: no message on the server, the next flush sends it once" {
	# CHUNKING and no SIZE: the 16 MB body goes in several chunks; after
	# the first one the server answers and then reads nothing for 3 s
	smtpd_start "$(smtpd_script <<'EOF'
ehlo PIPELINING
ehlo 8BITMIME
ehlo CHUNKING
on#1 BDAT* default
then sleep 3000
EOF
)"
	bigmsg 210000 | ss --queue --queue-dir "$Q" a@example.test >/dev/null
	"$SMTPSEND" -q --queue-dir "$Q" &
	pid=$!
	kill_stuck_flusher "$pid" '^S: 250 2.0.0 [0-9]* bytes received' '^C: DATA'
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	# the killed attempt: not all chunks, nothing saved
	sed -n '/^# connection 1 /,/^# connection 2 /p' "$SMTPD_DIR/transcript" >"$BATS_TEST_TMPDIR/conn1"
	# (a reset when the flusher died with a chunk's reply unread)
	grep -Eq '^# end of connection 1: (.*during BDAT|ConnectionResetError)' "$BATS_TEST_TMPDIR/conn1"
	run ! grep -q '^# saved message' "$BATS_TEST_TMPDIR/conn1"
	run ! grep -q '^C: BDAT [0-9]* LAST' "$BATS_TEST_TMPDIR/conn1"
	# the retry: one complete message, once
	delivered_once 16000000
}

@test "SIGKILL of a flusher after the 250 to the final dot, before the unlink: one duplicate, then an empty queue" {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -f -qq -o /dev/null true 2>/dev/null || skip "strace cannot trace here (ptrace not permitted)"
	smtpd_start
	msg dup | ss --queue --queue-dir "$Q" a@example.test >/dev/null
	id=$(ls "$Q")
	id=${id%.queued}
	qdir=$(realpath "$Q")
	# A delivered entry is removed with unlinkat(dirfd, "ID.sending"); the
	# claim before it is a renameat2 and the spool's temporary file is
	# removed with unlink on a path outside the queue.  So the first
	# unlinkat on the queue directory (-P) is the finishing one: it gets
	# SIGKILL instead of running.
	run strace -f -qq -o "$BATS_TEST_TMPDIR/strace" -P "$qdir" -e trace=unlinkat \
		-e inject=unlinkat:signal=KILL:when=1 "$SMTPSEND" -q --queue-dir "$Q"
	cat "$BATS_TEST_TMPDIR/strace" >&2
	[ "$status" -eq 137 ]
	grep -q "unlinkat([0-9]*, \"$id.sending\", 0) = ?" "$BATS_TEST_TMPDIR/strace"
	grep -q 'killed by SIGKILL' "$BATS_TEST_TMPDIR/strace"
	# the server has the message and answered 250; the entry is still
	# there, claimed
	[ -f "$SMTPD_DIR/msg.1" ]
	grep -q '^S: 250 2.0.0 queued as 1' "$SMTPD_DIR/transcript"
	run ls -A "$Q"
	[ "$output" = "$id.sending" ]
	# the next flush sends it again: the one duplicate RFC 5321 6.1 allows
	run "$SMTPSEND" -q --queue-dir "$Q"
	[ "$status" -eq 0 ]
	[ -f "$SMTPD_DIR/msg.2" ]
	[ ! -e "$SMTPD_DIR/msg.3" ]
	cmp "$SMTPD_DIR/msg.1" "$SMTPD_DIR/msg.2"
	cmp "$SMTPD_DIR/env.1" "$SMTPD_DIR/env.2"
	grep -qx 'RCPT TO:<a@example.test>' "$SMTPD_DIR/env.2"
	run ls -A "$Q"
	[ -z "$output" ]
	# and no third copy
	"$SMTPSEND" -q --queue-dir "$Q"
	[ ! -e "$SMTPD_DIR/msg.3" ]
}

@test "a full queue file system: --queue of a 200 KB message exits 73, no partial or temporary file; a small one still fits" {
	full_queue_fs
	bigmsg 2600 >"$BATS_TEST_TMPDIR/big"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/big")" -gt 200000 ]
	run inns "$SMTPSEND" --host 127.0.0.1 --from me@example.test --queue --queue-dir "$Q" \
		a@example.test <"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 73 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "smtpsend: error: cannot write queue file $Q/"*": No space left on device" ]]
	run inns ls -A "$Q"
	[ -z "$output" ]
	run inns "$SMTPSEND" -bp --queue-dir "$Q"
	[[ "$output" == *"queue is empty"* ]]
	# the space was given back: a message that fits is queued
	run inns "$SMTPSEND" --host 127.0.0.1 --from me@example.test --queue --queue-dir "$Q" \
		a@example.test < <(msg small)
	[ "$status" -eq 0 ]
	id=$output
	run inns ls -A "$Q"
	[ "$output" = "$id.queued" ]
	inns grep -q '^Subject: small' "$Q/$id.queued"
}

@test "a full queue file system after a temporary failure: not reported as queued, exit 73, nothing left" {
	full_queue_fs
	bigmsg 2600 >"$BATS_TEST_TMPDIR/big"
	printf 'queue_dir %s\n' "$Q" >"$HOME/.smtpsendrc"
	port=$(free_port)
	run inns "$SMTPSEND" --host 127.0.0.1 --port "$port" --from me@example.test \
		a@example.test <"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 73 ]
	[[ "$output" != *"queued as"* ]]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == *"cannot connect to 127.0.0.1"*[Rr]efused* ]]
	[[ "${lines[1]}" == "smtpsend: error: cannot write queue file $Q/"*": No space left on device" ]]
	run inns ls -A "$Q"
	[ -z "$output" ]
	# the same path with a message that fits: queued, exit 0
	run inns "$SMTPSEND" --host 127.0.0.1 --port "$port" --from me@example.test \
		a@example.test < <(msg small)
	[ "$status" -eq 0 ]
	[[ "$output" == "smtpsend: queued as "* ]]
	run inns ls -A "$Q"
	[[ "$output" == *.queued ]]
	[ "${#lines[@]}" -eq 1 ]
}

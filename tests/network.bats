#!/usr/bin/env bats
# The TCP layer: address families (UseIPv6, -4, -6), Happy Eyeballs, the
# connect timeout against a black hole, AbsoluteTimeout, keep-alive and
# linger, MaxTransferRate, LocalHost / LocalPort.
#
# A "black hole" here is a listener whose accept queue is full and never
# drained: the kernel then drops the SYNs sent to it, so a connect to it
# times out, exactly like an address that does not answer.  A name with
# several addresses comes from a private /etc/hosts, bind-mounted over the
# real one in a mount namespace of smtpsend's own (unshare -m).

load lib

setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	unset XDG_CONFIG_HOME
	mkdir -p "$HOME"
}

teardown() {
	local p
	if [[ -f "$BATS_TEST_TMPDIR/holes" ]]; then
		while read -r p; do
			kill "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		done <"$BATS_TEST_TMPDIR/holes"
	fi
	stop_all
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# timed_run CMD...: bats' run, and elapsed set to its wall time in ms;
# both are shown when the test fails
timed_run() {
	local t0
	t0=$(now_ms)
	run "$@"
	elapsed=$(($(now_ms) - t0))
	echo "$output"
	echo "elapsed ${elapsed} ms"
}

# a message to localhost as the private hosts file resolves it
send_localhost() {
	with_hosts "$SMTPSEND" -v --host localhost --port "$SMTPD_PORT" --timeout 20 \
		--from me@example.test a@example.test </dev/null
}

# send HOST [smtpsend args...]: a small raw message to HOST
send() {
	local host=$1
	shift
	printf 'Subject: hi\r\n\r\nhello\r\n' |
		"$SMTPSEND" --host "$host" --from me@example.test "$@"
}

# hosts LINE...: a private hosts file for with_hosts; skips the test when
# smtpsend cannot be given one.
hosts() {
	printf '%s\n' "$@" >"$BATS_TEST_TMPDIR/hosts"
	if [[ "$(id -u)" == 0 ]]; then
		UNSHARE=(unshare -m)
	else
		UNSHARE=(unshare -rm)
	fi
	"${UNSHARE[@]}" sh -c 'mount --bind "$0" /etc/hosts' "$BATS_TEST_TMPDIR/hosts" 2>/dev/null ||
		skip "cannot give smtpsend a private /etc/hosts (unshare -m, mount --bind)"
}

# with_hosts CMD...: run CMD with the hosts file written by hosts()
with_hosts() {
	"${UNSHARE[@]}" sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
		"$BATS_TEST_TMPDIR/hosts" "$@"
}

# blackhole ADDR PORT: make ADDR:PORT (PORT 0: any) a black hole; sets
# HOLE_PORT.  It goes away at teardown, or by itself after 2 minutes.
blackhole() {
	local out i
	out="$(mktemp "$BATS_TEST_TMPDIR/hole.XXXXXX")"
	python3 -c '
import socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
l = socket.socket(fam)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, port))
l.listen(0)
# one connection fills an accept queue of length 0 (+1): the kernel drops
# every SYN after it
fill = socket.create_connection((addr, l.getsockname()[1]))
print(l.getsockname()[1], flush=True)
time.sleep(120)
' "$1" "$2" >"$out" 2>&1 3>&- &
	echo $! >>"$BATS_TEST_TMPDIR/holes"
	for ((i = 0; i < 100; i++)); do
		[[ -s "$out" ]] && break
		sleep 0.05
	done
	HOLE_PORT="$(cat "$out")"
	[[ "$HOLE_PORT" =~ ^[0-9]+$ ]] || { echo "black hole failed: $HOLE_PORT" >&2; return 1; }
}

# ---- address families ----

@test "an IPv6 literal, bare or in brackets, reaches a server on ::1" {
	smtpd_start "" --ipv6
	run send ::1 --port "$SMTPD_PORT" a@example.test
	[ "$status" -eq 0 ]
	run send '[::1]' --port "$SMTPD_PORT" a@example.test
	[ "$status" -eq 0 ]
	[ "$(grep -c '^# connection [0-9]* from ::1:' "$SMTPD_DIR/transcript")" -eq 2 ]
	[ -f "$SMTPD_DIR/msg.2" ]
}

@test "-6 and -4 choose the address of localhost (::1 and 127.0.0.1) by family" {
	hosts '::1 localhost' '127.0.0.1 localhost'
	smtpd_start_named V6 "" --ipv6
	smtpd_start_named V4 ""
	run with_hosts "$SMTPSEND" --host localhost --port "$V6_PORT" -6 --from me@example.test \
		a@example.test </dev/null
	[ "$status" -eq 0 ]
	grep -q '^# connection 1 from ::1:' "$V6_DIR/transcript"
	run with_hosts "$SMTPSEND" --host localhost --port "$V4_PORT" --ipv4 --from me@example.test \
		a@example.test </dev/null
	[ "$status" -eq 0 ]
	grep -q '^# connection 1 from 127.0.0.1:' "$V4_DIR/transcript"
	# -4 does not even try ::1, where the IPv6 server listens
	run with_hosts "$SMTPSEND" -v --host localhost --port "$V6_PORT" -4 --from me@example.test \
		a@example.test </dev/null
	[ "$status" -eq 75 ]
	[[ "$output" == *"127.0.0.1: connection refused"* ]]
	[[ "$output" != *"::1"* ]]
}

@test "UseIPv6=0 with an IPv6 address, or -6 with only IPv4 ones: a clear error, exit 68" {
	run send ::1 -O UseIPv6=0 a@example.test
	[ "$status" -eq 68 ]
	[[ "$output" == *"no IPv4 address for ::1 (UseIPv6=0)"* ]]
	run send 127.0.0.1 --ipv6 a@example.test
	[ "$status" -eq 68 ]
	[[ "$output" == *"no IPv6 address for 127.0.0.1 (UseIPv6=1)"* ]]
	hosts '127.0.0.1 v4only.test'
	run with_hosts "$SMTPSEND" --host v4only.test -6 --from me@example.test a@example.test </dev/null
	[ "$status" -eq 68 ]
	[[ "$output" == *"no IPv6 address for v4only.test (UseIPv6=1)"* ]]
	# the rc file's name for it
	printf 'ipv6 0\n' >"$HOME/.smtpsendrc"
	run send '[::1]' a@example.test
	[ "$status" -eq 68 ]
	[[ "$output" == *"no IPv4 address for [::1] (UseIPv6=0)"* ]]
}

# ---- Happy Eyeballs ----

@test "both families, IPv6 refused: IPv4 delivers at once, and the trace shows the race" {
	hosts '::1 localhost' '127.0.0.1 localhost'
	smtpd_start
	timed_run send_localhost
	[ "$status" -eq 0 ]
	[ "$elapsed" -lt 5000 ]
	[[ "$output" == *"*** trying [::1]"*"*** [::1]: connection refused"*"*** trying 127.0.0.1"* ]]
	[[ "$output" == *"connected to localhost [127.0.0.1]:$SMTPD_PORT"* ]]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "both families, IPv6 a black hole: IPv4 wins after the attempt delay, not the timeout" {
	hosts '::1 localhost' '127.0.0.1 localhost'
	smtpd_start
	blackhole ::1 "$SMTPD_PORT"
	timed_run send_localhost
	[ "$status" -eq 0 ]
	# 250 ms of attempt delay; far from the 20 s timeout even on a busy machine
	[ "$elapsed" -ge 240 ]
	[ "$elapsed" -lt 5000 ]
	[[ "$output" == *"*** trying [::1]"*"*** trying 127.0.0.1"*"connected to localhost [127.0.0.1]"* ]]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "both families, only IPv6 listening (IPv4 a black hole): delivered over IPv6" {
	hosts '127.0.0.1 localhost' '::1 localhost'
	smtpd_start "" --ipv6
	blackhole 127.0.0.1 "$SMTPD_PORT"
	timed_run send_localhost
	[ "$status" -eq 0 ]
	[ "$elapsed" -lt 5000 ]
	# IPv6 is tried first, whatever the order of the hosts file
	[[ "$output" == *"connected to localhost [::1]:$SMTPD_PORT"* ]]
	grep -q '^# connection 1 from ::1:' "$SMTPD_DIR/transcript"
}

@test "nothing listening on either family: exit 75, the error names every attempt" {
	hosts '::1 localhost' '127.0.0.1 localhost'
	port=$(free_port)
	run with_hosts "$SMTPSEND" --host localhost --port "$port" --from me@example.test \
		a@example.test </dev/null
	echo "$output"
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 10061: cannot connect to localhost port $port: [::1]: connection refused; 127.0.0.1: connection refused"* ]]
}

# ---- the connect timeout ----

@test "a black hole: exit 75 after the connect timeout, saying it timed out" {
	blackhole 127.0.0.1 0
	timed_run send 127.0.0.1 --port "$HOLE_PORT" --connect-timeout 2 --timeout 30 a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 201: cannot connect to 127.0.0.1 port $HOLE_PORT: 127.0.0.1: timed out (no connection within 2 s)"* ]]
	[ "$elapsed" -ge 1900 ]
	[ "$elapsed" -lt 4000 ]
}

@test "two dead addresses of one name still take one connect timeout, not two" {
	hosts '127.0.0.2 dead.test' '127.0.0.3 dead.test'
	blackhole 127.0.0.2 0
	blackhole 127.0.0.3 "$HOLE_PORT"
	timed_run with_hosts "$SMTPSEND" --host dead.test --port "$HOLE_PORT" --connect-timeout 2 \
		--from me@example.test a@example.test </dev/null
	[ "$status" -eq 75 ]
	[[ "$output" == *"127.0.0."[23]": timed out; 127.0.0."[23]": timed out (no connection within 2 s)"* ]]
	[ "$elapsed" -ge 1900 ]
	[ "$elapsed" -lt 3800 ]
}

# ---- AbsoluteTimeout ----

trickler() {
	# every reply one byte per 100 ms: each reply well within Timeout=2,
	# the whole session (7 replies) about 5.5 s
	smtpd_script <<'EOF'
hostname h
greeting 220 h
ehlo
trickle 100
on MAIL* reply 250 ok
on RCPT* reply 250 ok
on DATA reply 354 go
dot reply 250 ok
on QUIT reply 221 bye
EOF
}

@test "a trickling server: the inactivity timeout alone lets the session go on past Timeout" {
	smtpd_start "$(trickler)"
	timed_run send 127.0.0.1 --port "$SMTPD_PORT" --timeout 2 a@example.test
	[ "$status" -eq 0 ]
	[ "$elapsed" -ge 4000 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "a trickling server: AbsoluteTimeout ends the run at Timeout, exit 75" {
	smtpd_start "$(trickler)"
	timed_run send 127.0.0.1 --port "$SMTPD_PORT" --timeout 2 -O AbsoluteTimeout=true a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 201: the whole run exceeded Timeout (2 s, AbsoluteTimeout) waiting for 127.0.0.1 [127.0.0.1]:$SMTPD_PORT"* ]]
	[ "$elapsed" -ge 1900 ]
	[ "$elapsed" -lt 3500 ]
	[ ! -e "$SMTPD_DIR/msg.1" ]
}

@test "AbsoluteTimeout also bounds the connect and the TLS handshake" {
	printf 'absolute_timeout true\n' >"$HOME/.smtpsendrc"
	blackhole 127.0.0.1 0
	timed_run send 127.0.0.1 --port "$HOLE_PORT" --timeout 2 --connect-timeout 30 a@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 201: the whole run exceeded Timeout (2 s, AbsoluteTimeout) connecting to 127.0.0.1 port $HOLE_PORT: 127.0.0.1: timed out"* ]]
	[ "$elapsed" -lt 3500 ]

	# a server that never answers the ClientHello
	smtpd_start "$(smtpd_script <<<'connect silence')"
	run send 127.0.0.1 --port "$SMTPD_PORT" --timeout 2 --tls=implicit a@example.test
	echo "$output"
	[ "$status" -eq 75 ]
	[[ "$output" == *"the whole run exceeded Timeout (2 s, AbsoluteTimeout)"* ]]
	# without it, the handshake's own timeout message
	rm "$HOME/.smtpsendrc"
	run send 127.0.0.1 --port "$SMTPD_PORT" --timeout 2 --tls=implicit a@example.test
	echo "$output"
	[ "$status" -eq 75 ]
	[[ "$output" == *"TLS handshake with 127.0.0.1 [127.0.0.1]:$SMTPD_PORT timed out after 2 s"* ]]
}

# ---- MaxTransferRate ----

# bigmsg FILE LINES: a message of LINES lines of 100 bytes each as sent
# (98 characters and a LF, which goes out as CRLF)
bigmsg() {
	{
		printf 'Subject: big\n\n'
		yes "$(printf '%098d' 0)" | head -n "$2"
	} >"$1"
}

@test "MaxTransferRate: 3 MB at 1000000 bytes/s take 3 s (within 10%); without it, far less" {
	smtpd_start
	bigmsg "$BATS_TEST_TMPDIR/big" 30000
	printf 'max_transfer_rate 1000000\n' >"$HOME/.smtpsendrc"
	timed_run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		<"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 0 ]
	size=$(stat -c %s "$SMTPD_DIR/msg.1")
	[ "$size" -ge 3000000 ]
	[ "$elapsed" -ge 2700 ]
	[ "$elapsed" -le 3300 ]

	rm "$HOME/.smtpsendrc"
	timed_run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		<"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 0 ]
	# the same body either way (the added Date and Message-ID differ)
	cmp <(tail -c 3000000 "$SMTPD_DIR/msg.1") <(tail -c 3000000 "$SMTPD_DIR/msg.2")
	[ "$elapsed" -lt 1500 ]
}

@test "MaxTransferRate: our own pauses do not count as the server's inactivity" {
	smtpd_start
	# 200 kB at 50 kB/s is 4 s; one 64 KiB buffer alone takes 1.3 s
	bigmsg "$BATS_TEST_TMPDIR/big" 2000
	timed_run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test --timeout 1 \
		--max-rate 50000 a@example.test <"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 0 ]
	[ "$elapsed" -ge 3600 ]
	[ -f "$SMTPD_DIR/msg.1" ]
}

@test "MaxTransferRate with AbsoluteTimeout: the body stops at Timeout, exit 75" {
	smtpd_start
	bigmsg "$BATS_TEST_TMPDIR/big" 2000
	timed_run "$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test --timeout 2 \
		-O AbsoluteTimeout=true -O MaxTransferRate=20000 a@example.test <"$BATS_TEST_TMPDIR/big"
	[ "$status" -eq 75 ]
	[[ "$output" == *"the whole run exceeded Timeout (2 s, AbsoluteTimeout) sending to 127.0.0.1"* ]]
	[ "$elapsed" -ge 1900 ]
	[ "$elapsed" -lt 3500 ]
	[ ! -e "$SMTPD_DIR/msg.1" ]
}

# ---- socket options ----

strace_or_skip() {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -o /dev/null true 2>/dev/null || skip "strace cannot trace here"
	# LeakSanitizer cannot work under ptrace; the other tests check leaks
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
}

@test "keep-alive and linger settings reach the socket (setsockopt)" {
	strace_or_skip
	smtpd_start
	cat >"$HOME/.smtpsendrc" <<'EOF'
tcp_keepalive true
keepalive_time 1500
keepalive_interval 1000
keepalive_retry_count 3
linger false
EOF
	run strace -f -e trace=setsockopt -o "$BATS_TEST_TMPDIR/st" \
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		</dev/null
	[ "$status" -eq 0 ]
	cat "$BATS_TEST_TMPDIR/st"
	grep -q 'SOL_SOCKET, SO_KEEPALIVE, \[1\]' "$BATS_TEST_TMPDIR/st"
	# milliseconds rounded up to seconds
	grep -q 'SOL_TCP, TCP_KEEPIDLE, \[2\]' "$BATS_TEST_TMPDIR/st"
	grep -q 'SOL_TCP, TCP_KEEPINTVL, \[1\]' "$BATS_TEST_TMPDIR/st"
	grep -q 'SOL_TCP, TCP_KEEPCNT, \[3\]' "$BATS_TEST_TMPDIR/st"
	grep -q 'SO_LINGER, {l_onoff=1, l_linger=0}' "$BATS_TEST_TMPDIR/st"

	# LingerTime: close waits that long
	printf 'linger_time 7\n' >"$HOME/.smtpsendrc"
	run strace -f -e trace=setsockopt -o "$BATS_TEST_TMPDIR/st" \
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		</dev/null
	[ "$status" -eq 0 ]
	grep -q 'SO_LINGER, {l_onoff=1, l_linger=7}' "$BATS_TEST_TMPDIR/st"
	! grep -q 'SO_KEEPALIVE' "$BATS_TEST_TMPDIR/st"

	# by default, the system's defaults
	rm "$HOME/.smtpsendrc"
	run strace -f -e trace=setsockopt -o "$BATS_TEST_TMPDIR/st" \
		"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test a@example.test \
		</dev/null
	[ "$status" -eq 0 ]
	! grep -q 'SO_KEEPALIVE\|SO_LINGER' "$BATS_TEST_TMPDIR/st"
}

@test "keep-alive takes effect: the kernel runs a keep-alive timer on the connection" {
	command -v ss >/dev/null || skip "ss is not installed"
	# hold the client for 3 s before the greeting
	smtpd_start "$(smtpd_script <<<'connect sleep 3000
then default')"
	"$SMTPSEND" --host 127.0.0.1 --port "$SMTPD_PORT" --from me@example.test \
		-O KeepAliveTime=60000 a@example.test </dev/null 3>&- &
	pid=$!
	found=
	for ((i = 0; i < 40; i++)); do
		if ss -tnoH state established "( dport = :$SMTPD_PORT )" | grep -q 'timer:(keepalive'; then
			found=1
			break
		fi
		sleep 0.05
	done
	ss -tno state established "( dport = :$SMTPD_PORT )"
	wait "$pid"
	[ -n "$found" ]
}

# ---- LocalHost / LocalPort ----

@test "--source-ip and --source-port: the server sees the connection come from there" {
	smtpd_start
	port=$(free_port)
	run send 127.0.0.1 --port "$SMTPD_PORT" --source-ip 127.0.0.1 --source-port "$port" a@example.test
	[ "$status" -eq 0 ]
	grep -qx "# connection 1 from 127.0.0.1:$port" "$SMTPD_DIR/transcript"
}

@test "a source address of one family: the other family's addresses are skipped" {
	hosts '::1 localhost' '127.0.0.1 localhost'
	smtpd_start
	# ::1 would be tried first (and refused) without the IPv4 source
	run with_hosts "$SMTPSEND" -v --host localhost --port "$SMTPD_PORT" -O LocalHost=127.0.0.1 \
		--from me@example.test a@example.test </dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"::1"* ]]
	[[ "$output" == *"connected to localhost [127.0.0.1]"* ]]
	# and nothing left to try: exit 68
	run send 127.0.0.1 --port "$SMTPD_PORT" --source-ip ::1 a@example.test
	[ "$status" -eq 68 ]
	[[ "$output" == *"no IPv6 address for 127.0.0.1 to connect to from source address ::1"* ]]
}

#!/usr/bin/env bats
# Proxies end to end: real SOCKS4/5 (dante, microsocks) and HTTP CONNECT
# (tinyproxy) proxies on loopback in front of the scriptable SMTP server,
# TLS through the tunnel, the choice of proxy (setting, environment,
# exceptions), and a hostile fake proxy (tests/fakeproxy.py) whose broken
# answers must end the run before anything reaches the mail server.
#
# Every proxy is started by its test with its own configuration in the
# test's temporary directory and stopped in teardown, by pid.  dante does
# not implement SOCKS4a, so SOCKS4a runs against fakeproxy.py's relay.

load lib
load certs

FAKEPROXY="$BATS_TEST_DIRNAME/fakeproxy.py"
MSG='Subject: proxy\n\nthrough the tunnel\n'

setup_file() {
	export CERTS="$BATS_FILE_TMPDIR/certs"
	make_test_certs "$CERTS"
}

setup() {
	PX_PIDS="$BATS_TEST_TMPDIR/.proxy_pids"
	PX_USER=
	unset SMTP_PROXY smtp_proxy ALL_PROXY all_proxy NO_PROXY no_proxy
}

# Stop one proxy we started, and the workers it forked (dante): TERM,
# then KILL whatever is left after 3 s.  Only our own proxies are
# signalled, in case a pid was recycled.
_px_ours() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null |
		grep -qE 'danted|microsocks|tinyproxy|fakeproxy\.py'
}

_px_stop() {
	local pid=$1 kids p i
	_px_ours "$pid" || return 0
	kids="$(ps -o pid= --ppid "$pid" 2>/dev/null)"
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 60; i++)); do
		_lib_dead "$pid" && break
		sleep 0.05
	done
	for p in $pid $kids; do
		for ((i = 0; i < 20; i++)); do
			_lib_dead "$p" && break
			sleep 0.05
		done
		if ! _lib_dead "$p" && _px_ours "$p"; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
	wait "$pid" 2>/dev/null
	return 0
}

teardown() {
	local pid
	if [[ -f "$PX_PIDS" ]]; then
		while read -r pid; do
			[[ -n "$pid" ]] && _px_stop "$pid"
		done <"$PX_PIDS"
		rm -f "$PX_PIDS"
	fi
	stop_all
	if [[ -n "$PX_USER" ]]; then
		userdel "$PX_USER" 2>/dev/null || true
	fi
}

# _px_wait PID PORT LOG: record PID, wait until PORT listens.
_px_wait() {
	local pid=$1 port=$2 log=$3 i
	echo "$pid" >>"$PX_PIDS"
	for ((i = 0; i < 100; i++)); do
		_lib_listening "$port" && return 0
		if _lib_dead "$pid"; then
			echo "the proxy failed to start:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "the proxy did not listen on $port within 5 s:" >&2
	cat "$log" >&2
	return 1
}

need_root() {
	[[ "$(id -u)" == 0 ]] || skip "needs root (dante's privileged user, useradd)"
}

# dante_start none|username: danted on PROXY_PORT, logging to PROXY_LOG.
dante_start() {
	need_root
	local d="$BATS_TEST_TMPDIR/dante"
	mkdir -p "$d"
	PROXY_PORT="$(free_port)"
	PROXY_LOG="$d/danted.log"
	cat >"$d/danted.conf" <<EOF
logoutput: $PROXY_LOG
internal: 127.0.0.1 port = $PROXY_PORT
external: 127.0.0.1
socksmethod: $1
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: error }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 log: connect error }
EOF
	danted -f "$d/danted.conf" -p "$d/danted.pid" </dev/null >"$d/out" 2>&1 3>&- &
	_px_wait $! "$PROXY_PORT" "$d/out"
}

# microsocks_start [USER PASSWORD]
microsocks_start() {
	local d="$BATS_TEST_TMPDIR/microsocks" auth=()
	mkdir -p "$d"
	PROXY_PORT="$(free_port)"
	PROXY_LOG="$d/out"
	if [[ $# -eq 2 ]]; then
		auth=(-u "$1" -P "$2")
	fi
	microsocks -i 127.0.0.1 -p "$PROXY_PORT" "${auth[@]}" </dev/null >"$PROXY_LOG" 2>&1 3>&- &
	_px_wait $! "$PROXY_PORT" "$PROXY_LOG"
}

# tinyproxy_start [USER PASSWORD]: CONNECT allowed to $SMTPD_PORT and
# to $EXTRA_PORT when set.
tinyproxy_start() {
	local d="$BATS_TEST_TMPDIR/tinyproxy"
	mkdir -p "$d"
	PROXY_PORT="$(free_port)"
	PROXY_LOG="$d/out"
	{
		echo "Port $PROXY_PORT"
		echo "Listen 127.0.0.1"
		echo "Timeout 30"
		echo "Allow 127.0.0.1"
		echo "MaxClients 20"
		echo "LogLevel Info"
		echo "ConnectPort $SMTPD_PORT"
		[[ -n "${EXTRA_PORT:-}" ]] && echo "ConnectPort $EXTRA_PORT"
		[[ $# -eq 2 ]] && echo "BasicAuth $1 $2"
	} >"$d/tinyproxy.conf"
	tinyproxy -d -c "$d/tinyproxy.conf" </dev/null >"$PROXY_LOG" 2>&1 3>&- &
	_px_wait $! "$PROXY_PORT" "$PROXY_LOG"
}

# fake_start: fakeproxy.py with the script on stdin; FAKE_PORT, FAKE_DIR.
fake_start() {
	local i
	FAKE_DIR="$(mktemp -d "$BATS_TEST_TMPDIR/fake.XXXXXX")"
	cat >"$FAKE_DIR/script"
	python3 "$FAKEPROXY" --dir "$FAKE_DIR" --script "$FAKE_DIR/script" \
		</dev/null >"$FAKE_DIR/out" 2>&1 3>&- &
	echo "$!" >>"$PX_PIDS"
	for ((i = 0; i < 100; i++)); do
		[[ -s "$FAKE_DIR/port" ]] && break
		sleep 0.05
	done
	FAKE_PORT="$(cat "$FAKE_DIR/port")"
}

# dante_user: a throwaway system user for dante's username method,
# removed in teardown.  Sets PX_USER and PX_PASS.
dante_user() {
	need_root
	command -v useradd >/dev/null || skip "no useradd"
	PX_USER="smtpsendpx$$"
	PX_PASS='S3cr:t@pw'
	useradd -M -N -s /usr/sbin/nologin "$PX_USER"
	echo "$PX_USER:$PX_PASS" | chpasswd
}

# rc FILE LINES...: an rc file of mode 0600.
rc() {
	local f="$BATS_TEST_TMPDIR/$1"
	shift
	printf '%s\n' "$@" >"$f"
	chmod 600 "$f"
	printf '%s\n' "$f"
}

send_plain() {
	printf "$MSG" | "$SMTPSEND" --host localhost --port "$SMTPD_PORT" --from me@example.test \
		--tls=off "$@" rcpt@example.test
}

send_tls() {
	printf "$MSG" | "$SMTPSEND" --host localhost --port "$SMTPD_PORT" --from me@example.test \
		--tls-ca-file "$CERTS/ca.pem" "$@" rcpt@example.test
}

delivered() {
	[ -f "$SMTPD_DIR/msg.1" ]
	grep -q 'through the tunnel' "$SMTPD_DIR/msg.1"
}

# Nothing reached the mail server: no client line in its transcript.
nothing_sent() {
	run grep -c '^C:' "$SMTPD_DIR/transcript"
	[ "$output" = 0 ]
}

# ---- each kind of proxy ----

@test "socks4 through dante: delivered, the trace shows the tunnel" {
	smtpd_start
	dante_start none
	run send_plain -v --proxy "socks4://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"connecting through socks4 proxy 127.0.0.1:$PROXY_PORT"* ]]
	[[ "$output" == *"socks4 proxy 127.0.0.1:$PROXY_PORT: tunnel to localhost:$SMTPD_PORT open"* ]]
	delivered
	grep -q "tcp/connect.*127.0.0.1.$SMTPD_PORT" "$PROXY_LOG"
}

@test "socks4 with a user id: the id goes in the request, delivered (fake SOCKS4 relay)" {
	smtpd_start
	fake_start <<'EOF'
socks4-request
connect
send \x00\x5a\x00\x00\x00\x00\x00\x00
relay
EOF
	run send_plain --proxy "socks4://alice@127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 0 ]
	delivered
	# VN 4, CD 1, the port, 127.0.0.1, "alice", NUL
	run python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); print(d[:14].hex())' \
		"$FAKE_DIR/received"
	[ "$output" = "$(printf '0401%04x7f000001616c69636500' "$SMTPD_PORT")" ]
}

@test "socks4a: the proxy gets the name and resolves it, delivered (fake SOCKS4a relay; dante has no 4a)" {
	smtpd_start
	fake_start <<'EOF'
socks4-request
connect
send \x00\x5a\x00\x00\x00\x00\x00\x00
relay
EOF
	run send_plain -v --proxy "socks4a://127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 0 ]
	delivered
	run python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); print(d[:19].hex())' \
		"$FAKE_DIR/received"
	[ "$output" = "$(printf '0401%04x0000000100%s00' "$SMTPD_PORT" "$(printf localhost | od -An -tx1 | tr -d ' \n')")" ]
}

@test "socks5 through dante without authentication: delivered" {
	smtpd_start
	dante_start none
	run send_plain -v --proxy "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"SOCKS5 CONNECT localhost:$SMTPD_PORT"* ]]
	[[ "$output" != *"the proxy resolves the name"* ]]
	delivered
	grep -q "tcp/connect.*127.0.0.1.$SMTPD_PORT" "$PROXY_LOG"
}

@test "socks5h through dante: the proxy resolves the name, delivered" {
	smtpd_start
	dante_start none
	run send_plain -v --proxy "socks5h://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"SOCKS5 CONNECT localhost:$SMTPD_PORT (the proxy resolves the name)"* ]]
	delivered
}

@test "socks5 with user and password through dante (a throwaway system user): delivered from the rc file" {
	dante_user
	smtpd_start
	dante_start username
	run send_plain -v -C "$(rc rc "proxy socks5://$PX_USER@127.0.0.1:$PROXY_PORT" \
		"proxy_password $PX_PASS")"
	[ "$status" -eq 0 ]
	[[ "$output" == *"SOCKS5 user/password authentication as $PX_USER"* ]]
	[[ "$output" != *"$PX_PASS"* ]]
	delivered
}

@test "socks5 through dante with a wrong password: 69, the proxy named, the password not shown" {
	dante_user
	smtpd_start
	dante_start username
	run send_plain -C "$(rc rc "proxy socks5://$PX_USER:Wr0ngPass@127.0.0.1:$PROXY_PORT")"
	[ "$status" -eq 69 ]
	[[ "$output" == *"error 118: socks5 proxy 127.0.0.1:$PROXY_PORT"* ]]
	[[ "$output" == *"refused the proxy user name or password"* ]]
	[[ "$output" != *"Wr0ngPass"* ]]
	nothing_sent
}

@test "socks5 with user and password through microsocks, %-encoded in the rc URL: delivered" {
	smtpd_start
	microsocks_start bob 'p@ss:w%rd'
	run send_plain -C "$(rc rc "proxy socks5h://bob:p%40ss%3Aw%25rd@127.0.0.1:$PROXY_PORT")"
	[ "$status" -eq 0 ]
	delivered
	grep -q "connected to localhost:$SMTPD_PORT" "$PROXY_LOG"
}

@test "microsocks with a wrong password: 69" {
	smtpd_start
	microsocks_start bob secret
	run send_plain -C "$(rc rc "proxy socks5://bob:Wr0ngPass@127.0.0.1:$PROXY_PORT")"
	[ "$status" -eq 69 ]
	[[ "$output" == *"refused the proxy user name or password"* ]]
	[[ "$output" != *"Wr0ngPass"* ]]
}

@test "microsocks requiring authentication and no proxy user configured: 69, saying so" {
	smtpd_start
	microsocks_start bob secret
	run send_plain --proxy "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 69 ]
	[[ "$output" == *"accepts none of the authentication methods we offered"* ]]
	[[ "$output" == *"no proxy user is configured"* ]]
}

@test "http CONNECT through tinyproxy: delivered, the CONNECT in the trace" {
	smtpd_start
	tinyproxy_start
	run send_plain -v --proxy "http://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"--> CONNECT localhost:$SMTPD_PORT HTTP/1.1"* ]]
	[[ "$output" == *"<-- HTTP/1.0 200 Connection established"* ]]
	[[ "$output" != *"Proxy-Authorization"* ]]
	delivered
}

@test "http CONNECT through tinyproxy with Basic authentication from the rc file: delivered, the trace masks it" {
	smtpd_start
	tinyproxy_start bob s3cret
	run send_plain -v -C "$(rc rc "proxy http://bob@127.0.0.1:$PROXY_PORT" "proxy_password s3cret")"
	[ "$status" -eq 0 ]
	[[ "$output" == *"--> Proxy-Authorization: Basic ********"* ]]
	[[ "$output" != *"Ym9iOnMzY3JldA"* ]]
	delivered
}

@test "tinyproxy with Basic authentication: none given or a wrong one is 69" {
	smtpd_start
	tinyproxy_start bob s3cret
	run send_plain --proxy "http://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 69 ]
	[[ "$output" == *"error 118: http proxy 127.0.0.1:$PROXY_PORT"* ]]
	[[ "$output" == *"requires proxy credentials"*"407"* ]]
	run send_plain -C "$(rc rc "proxy http://bob:Wr0ngPass@127.0.0.1:$PROXY_PORT")"
	[ "$status" -eq 69 ]
	[[ "$output" == *"refused the proxy user name or password"* ]]
	[[ "$output" != *"Wr0ngPass"* ]]
	nothing_sent
}

# ---- TLS through the tunnel ----

# tls_server starttls|implicit: the scriptable server with a trusted
# certificate, for STARTTLS or from the first byte.
tls_server() {
	local how=starttls
	[[ $1 == implicit ]] && how=implicit-tls
	smtpd_start "$(smtpd_script <<<"$how $CERTS/good.pem $CERTS/good.key")"
}

# tls_delivered starttls|implicit ARGS...: sent with that TLS mode and
# ARGS (naming the proxy), the certificate verified, the message delivered.
tls_delivered() {
	local mode=$1
	shift
	run send_tls -v --tls="$mode" "$@"
	[ "$status" -eq 0 ]
	[[ "$output" == *"certificate verified"* ]]
	delivered
}

@test "STARTTLS through socks5 (dante): verified, delivered" {
	tls_server starttls
	dante_start none
	tls_delivered starttls --proxy "socks5://127.0.0.1:$PROXY_PORT"
	run awk '/TLS/{t=1} /^C: MAIL/{print t+0; exit}' "$SMTPD_DIR/transcript"
	[ "$output" = 1 ]
}

@test "implicit TLS through http CONNECT (tinyproxy): verified, delivered" {
	tls_server implicit
	tinyproxy_start
	tls_delivered implicit --proxy "http://127.0.0.1:$PROXY_PORT"
}

@test "STARTTLS through socks4 (dante): verified, delivered" {
	tls_server starttls
	dante_start none
	tls_delivered starttls --proxy "socks4://127.0.0.1:$PROXY_PORT"
}

@test "STARTTLS through socks5h with user and password (dante): verified, delivered" {
	dante_user
	tls_server starttls
	dante_start username
	tls_delivered starttls -C "$(rc rc "proxy socks5h://$PX_USER@127.0.0.1:$PROXY_PORT" \
		"proxy_password $PX_PASS")"
}

@test "implicit TLS through socks5 with user and password (microsocks): verified, delivered" {
	tls_server implicit
	microsocks_start bob secret
	tls_delivered implicit -C "$(rc rc "proxy socks5://bob@127.0.0.1:$PROXY_PORT" "proxy_password secret")"
}

@test "STARTTLS through http CONNECT with Basic authentication (tinyproxy): verified, delivered" {
	tls_server starttls
	tinyproxy_start bob s3cret
	tls_delivered starttls -C "$(rc rc "proxy http://bob@127.0.0.1:$PROXY_PORT" "proxy_password s3cret")"
}

@test "STARTTLS through socks4a (fake SOCKS4a relay): verified, delivered" {
	tls_server starttls
	fake_start <<'EOF'
socks4-request
connect
send \x00\x5a\x00\x00\x00\x00\x00\x00
relay
EOF
	tls_delivered starttls --proxy "socks4a://127.0.0.1:$FAKE_PORT"
}

@test "an untrusted certificate through a proxy is still refused (69)" {
	smtpd_start "$(smtpd_script <<<"implicit-tls $CERTS/selfsigned.pem $CERTS/selfsigned.key")"
	microsocks_start
	run send_tls --tls=implicit --proxy "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 69 ]
	nothing_sent
}

@test "through a proxy the loopback exception does not apply: --tls=auto needs STARTTLS" {
	smtpd_start
	microsocks_start
	run send_tls --proxy "socks5://127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 69 ]
	run grep -c '^C: MAIL' "$SMTPD_DIR/transcript"
	[ "$output" = 0 ]
}

# ---- failures ----

@test "a proxy that is not listening: 75, naming the proxy" {
	smtpd_start
	local port
	port="$(free_port)"
	run send_plain --proxy "socks5://127.0.0.1:$port"
	[ "$status" -eq 75 ]
	[[ "$output" == *"proxy"*"$port"* ]]
	nothing_sent
}

@test "the proxy cannot reach the server (port closed): 75 naming the target, for each proxy type" {
	smtpd_start
	local closed
	closed="$(free_port)"
	dante_start none
	local u
	for u in socks4 socks5 socks5h; do
		run "$SMTPSEND" --host localhost --port "$closed" --from me@example.test --tls=off \
			--body x --proxy "$u://127.0.0.1:$PROXY_PORT" rcpt@example.test
		echo "$u: $output"
		[ "$status" -eq 75 ]
		[[ "$output" == *"error 118: $u proxy 127.0.0.1:$PROXY_PORT could not reach localhost:$closed"* ]]
	done
	[[ "$output" == *"connection refused (SOCKS5 reply 5)"* ]]
	EXTRA_PORT="$closed" tinyproxy_start
	run "$SMTPSEND" --host localhost --port "$closed" --from me@example.test --tls=off \
		--body x --proxy "http://127.0.0.1:$PROXY_PORT" rcpt@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 118: http proxy 127.0.0.1:$PROXY_PORT could not reach localhost:$closed"* ]]
}

@test "an unresolvable name: socks5h reports the proxy's answer, socks5 fails here (68) before asking" {
	dante_start none
	run "$SMTPSEND" --host nosuch.invalid --port 25 --from me@example.test --tls=off --body x \
		--proxy "socks5h://127.0.0.1:$PROXY_PORT" rcpt@example.test
	[ "$status" -eq 75 ]
	[[ "$output" == *"could not reach nosuch.invalid:25: host unreachable (SOCKS5 reply 4); the proxy resolves the name itself"* ]]
	run "$SMTPSEND" --host nosuch.invalid --port 25 --from me@example.test --tls=off --body x \
		--proxy "socks5://127.0.0.1:$PROXY_PORT" rcpt@example.test
	[ "$status" -eq 68 ]
	[[ "$output" == *"unknown host nosuch.invalid"*"socks5h lets the proxy do it"* ]]
}

@test "socks4 and an IPv6-only target: 69 before anything is sent to the proxy" {
	fake_start <<<'close'
	run "$SMTPSEND" --host ::1 --port 25 --from me@example.test --tls=off --body x \
		--proxy "socks4://127.0.0.1:$FAKE_PORT" rcpt@example.test
	[ "$status" -eq 69 ]
	[[ "$output" == *"only IPv6"*"socks4a, socks5 or socks5h"* ]]
	[ ! -s "$FAKE_DIR/received" ]
}

@test "a proxy that never answers: 75 after the connect timeout" {
	smtpd_start
	fake_start <<<'sleep 20000'
	SECONDS=0
	run send_plain --connect-timeout 1 --proxy "socks5://127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 75 ]
	[[ "$output" == *"error 118"*"did not send its SOCKS5 method selection in time"* ]]
	((SECONDS < 10))
}

# ---- a hostile proxy: 76, code 118, and not a byte to the mail server ----

# hostile TYPE: fakeproxy.py runs the script on stdin after connecting to
# the mail server, and relays after its broken answer, so anything
# smtpsend wrongly sent on would reach the server's transcript.  The
# error output is left in $said.
hostile() {
	local script
	script="$(cat)"
	smtpd_start
	fake_start <<<"connect $SMTPD_PORT
$script"
	run send_plain --proxy "$1://127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 76 ]
	[[ "$output" == *"error 118: $1 proxy 127.0.0.1:$FAKE_PORT"* ]]
	said="$output"
	smtpd_wait_conns 1
	nothing_sent
}

@test "hostile socks5: a CONNECT reply cut short (76)" {
	hostile socks5 <<'EOF'
socks5-greeting
send \x05\x00
socks5-request
send \x05\x00\x00\x01\x7f
close
EOF
	[[ "$said" == *"truncated"* ]]
}

@test "hostile socks5: a reply of the wrong version (76)" {
	hostile socks5 <<'EOF'
socks5-greeting
send \x04\x5a
relay
EOF
	[[ "$said" == *"not SOCKS5 (version byte 4"* ]]
}

@test "hostile socks5: an unknown address type in the reply (76)" {
	hostile socks5 <<'EOF'
socks5-greeting
send \x05\x00
socks5-request
send \x05\x00\x00\x07\x7f\x00\x00\x01\x00\x19
relay
EOF
	[[ "$said" == *"unknown address type 7"* ]]
}

@test "hostile socks4: a reply of the wrong version (76)" {
	hostile socks4 <<'EOF'
socks4-request
send \x05\x5a\x00\x00\x00\x00\x00\x00
relay
EOF
	[[ "$said" == *"not SOCKS4"* ]]
}

@test "hostile http: an oversized header line (76)" {
	hostile http <<'EOF'
http-request
send HTTP/1.1 200 OK\r\nX-Big: {{x*9000}}\r\n\r\n
relay
EOF
	[[ "$said" == *"overlong HTTP header"* ]]
}

@test "hostile http: endless header lines (76)" {
	hostile http <<'EOF'
http-request
send HTTP/1.1 200 OK\r\n{{X-Many: y\r\n*500}}\r\n
relay
EOF
	[[ "$said" == *"more than 100 header lines"* ]]
}

@test "hostile http: a reply that is not HTTP, shown escaped (76)" {
	hostile http <<'EOF'
http-request
send \x1b[2JSSH-2.0-OpenSSH_9.2\r\n
relay
EOF
	[[ "$said" == *'did not answer in HTTP: "\x1b[2JSSH-2.0-OpenSSH_9.2"'* ]]
}

@test "hostile http: headers cut short by the proxy closing (76)" {
	hostile http <<'EOF'
http-request
send HTTP/1.1 200 OK\r\nX-Partial: y
close
EOF
	[[ "$said" == *"truncated"* ]]
}

@test "http: a greeting sent in the same write as the 200 is not lost" {
	smtpd_start
	fake_start <<EOF
http-request
connect $SMTPD_PORT
send HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\n
target-first
relay
EOF
	run send_plain -v --proxy "http://127.0.0.1:$FAKE_PORT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"<-- 220 smtpd.test ESMTP"* ]]
	delivered
}

# ---- the proxy setting: command line, rc file, environment, exceptions ----

@test "--proxy with a password on the command line is refused (64); the rc file form works" {
	smtpd_start
	microsocks_start bob secret
	run send_plain --proxy "socks5://bob:secret@127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 64 ]
	[[ "$output" == *"proxy_password"* ]]
	run send_plain -O "Firewall=socks5://bob:secret@127.0.0.1:$PROXY_PORT"
	[ "$status" -eq 64 ]
	[ ! -e "$SMTPD_DIR/msg.1" ]
	run send_plain -C "$(rc rc "proxy socks5://bob:secret@127.0.0.1:$PROXY_PORT")"
	[ "$status" -eq 0 ]
	delivered
}

@test "an rc file holding a proxy password must not be readable by others" {
	smtpd_start
	local f
	f="$(rc rc "proxy socks5://bob@127.0.0.1:1" "proxy_password secret")"
	chmod 644 "$f"
	run send_plain -C "$f"
	[ "$status" -eq 78 ]
	[[ "$output" == *"chmod"* ]]
	[[ "$output" != *"secret"* ]]
}

@test "a malformed proxy URL is a configuration error (78) that never shows the password" {
	smtpd_start
	run send_plain -C "$(rc rc "proxy ftp://bob:Secr3t@127.0.0.1")"
	[ "$status" -eq 78 ]
	[[ "$output" == *'unknown proxy type "ftp" (use socks4, socks4a, socks5, socks5h or http)'* ]]
	[[ "$output" != *"Secr3t"* ]]
	run send_plain -C "$(rc rc "proxy socks5://bob:Secr3t@127.0.0.1:99999")"
	[ "$status" -eq 78 ]
	[[ "$output" == *"1 to 65535"* ]]
	[[ "$output" != *"Secr3t"* ]]
	nothing_sent
}

@test "SMTP_PROXY from the environment is used, and wins over ALL_PROXY" {
	smtpd_start
	microsocks_start
	local dead
	dead="$(free_port)"
	SMTP_PROXY="socks5://127.0.0.1:$PROXY_PORT" ALL_PROXY="socks5://127.0.0.1:$dead" \
		run send_plain -v
	[ "$status" -eq 0 ]
	[[ "$output" == *"proxy from SMTP_PROXY"* ]]
	[[ "$output" == *"tunnel to localhost:$SMTPD_PORT open"* ]]
	delivered
	grep -q "connected to" "$PROXY_LOG"
}

@test "ALL_PROXY is used when SMTP_PROXY is not set" {
	smtpd_start
	tinyproxy_start
	all_proxy="http://127.0.0.1:$PROXY_PORT" run send_plain -v
	[ "$status" -eq 0 ]
	[[ "$output" == *"proxy from all_proxy"* ]]
	[[ "$output" == *"--> CONNECT localhost:$SMTPD_PORT HTTP/1.1"* ]]
	delivered
}

@test "NO_PROXY bypasses a proxy from the environment, not --proxy" {
	smtpd_start
	local dead
	dead="$(free_port)"
	ALL_PROXY="socks5://127.0.0.1:$dead" NO_PROXY="example.com,localhost" run send_plain -v
	[ "$status" -eq 0 ]
	[[ "$output" == *"localhost is in NO_PROXY: connecting directly"* ]]
	delivered
	NO_PROXY="localhost" run send_plain --proxy "socks5://127.0.0.1:$dead"
	[ "$status" -eq 75 ]
}

@test "proxy_exceptions bypasses the configured proxy" {
	smtpd_start
	local dead
	dead="$(free_port)"
	run send_plain -v -C "$(rc rc "proxy socks5://127.0.0.1:$dead" \
		"proxy_exceptions *.example.test; LOCALHOST")"
	[ "$status" -eq 0 ]
	[[ "$output" == *"localhost is in proxy_exceptions: connecting directly"* ]]
	delivered
	run send_plain -O "ProxyExceptionsList=*.example.test" --proxy "socks5://127.0.0.1:$dead"
	[ "$status" -eq 75 ]
}

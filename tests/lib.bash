# lib.bash - helpers for the end-to-end bats tests (load with "load lib").
#
#   smtpd_script [NAME] <<'EOF' ... EOF
#                       write a server script from stdin, print its path
#   smtpd_start [SCRIPT|""] [smtpd.py args...]
#                       start tests/smtpd.py; exports SMTPD_PORT, SMTPD_DIR,
#                       SMTPD_PID
#   smtpd_start_named NAME [SCRIPT|""] [args...]
#                       the same, exporting NAME_PORT, NAME_DIR, NAME_PID
#   smtpd_wait_file FILE [SECONDS]   wait for $SMTPD_DIR/FILE (or a path)
#   smtpd_wait_conns N [SECONDS]     wait until N connections have ended
#   sink_start [NAME] [smtp-sink args...]
#                       start Postfix smtp-sink dumping messages; exports
#                       SINK_PORT, SINK_DIR, SINK_PID (NAME_* with a NAME)
#   sink_messages [DIR]  print the dump files, oldest first, one per line
#   free_port           print a free TCP port on 127.0.0.1
#   make_cert DIR       self-signed cert for localhost: DIR/cert.pem,
#                       DIR/key.pem
#   stop_all            stop everything started here (TERM, then KILL)
#   smtpsend_bin        print the path of the binary under test ($SMTPSEND)
#   assert_file_bytes FILE FORMAT    FILE must equal `printf FORMAT`
#   assert_bytes FORMAT              $output must equal `printf FORMAT`
#
# teardown() calls stop_all; a test file that defines its own teardown must
# call stop_all itself.  Call the *_start helpers directly (in setup or the
# test), not through bats "run": run is a subshell, so the exported
# variables would be lost.  Started processes get fd 3 closed so that bats
# does not wait for them.
#
# smtp-sink notes: as root it refuses to start without "-u USER" and opens
# its dump files only after switching to that user (and a failure to create
# one is fatal to the whole process), while bats' temporary directories are
# mode 0700; so as root sink_start passes "-u root".  A dump file is complete
# once the client has the reply to the final dot.  It holds X-Client-Addr,
# X-Client-Proto, X-Helo-Args, X-Mail-Args (without "FROM:"), one
# X-Rcpt-Args per RCPT, a Received: header, then the message with CRLF
# turned into LF and dot-stuffing undone, then an empty line.  smtp-sink
# offers PIPELINING 8BITMIME AUTH XCLIENT XFORWARD ENHANCEDSTATUSCODES DSN,
# but no SIZE, SMTPUTF8, CHUNKING or STARTTLS.

# Tests may use "run !" and "run -N".
if declare -F bats_require_minimum_version >/dev/null; then
	bats_require_minimum_version 1.5.0
fi

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SMTPD_PY="$LIB_DIR/smtpd.py"

smtpsend_bin() {
	if [[ -n "${SMTPSEND:-}" ]]; then
		printf '%s\n' "$SMTPSEND"
	elif [[ -n "${BATS_TEST_DIRNAME:-}" ]]; then
		printf '%s\n' "$BATS_TEST_DIRNAME/../src/smtpsend"
	else
		printf '%s\n' "$LIB_DIR/../src/smtpsend"
	fi
}
SMTPSEND="$(smtpsend_bin)"
export SMTPSEND

# A per-test scratch directory.
_lib_tmp() {
	if [[ -n "${BATS_TEST_TMPDIR:-}" ]]; then
		printf '%s\n' "$BATS_TEST_TMPDIR"
		return
	fi
	if [[ -z "${LIB_TMPDIR:-}" ]]; then
		LIB_TMPDIR="$(mktemp -d)"
		export LIB_TMPDIR
	fi
	printf '%s\n' "$LIB_TMPDIR"
}

# The file listing "PID" lines of processes to stop.
_lib_pidfile() {
	printf '%s/.lib_pids\n' "$(_lib_tmp)"
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# smtpd_script [NAME]: copy stdin to a script file, print the path.
smtpd_script() {
	local f
	f="$(_lib_tmp)/${1:-script}"
	cat >"$f"
	printf '%s\n' "$f"
}

# Is process PID gone (or a zombie)?
_lib_dead() {
	local state
	[[ -r /proc/$1/stat ]] || return 0
	state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
	[[ -z "$state" || "$state" == Z || "$state" == X ]]
}

smtpd_start_named() {
	local name="$1" script="" dir pid i
	shift
	if [[ $# -gt 0 && "$1" != -* ]]; then
		script="$1"
		shift
	fi
	dir="$(mktemp -d "$(_lib_tmp)/smtpd.XXXXXX")"
	local args=(--dir "$dir")
	if [[ -n "$script" ]]; then
		args+=(--script "$script")
	fi
	python3 "$SMTPD_PY" "${args[@]}" "$@" \
		</dev/null >"$dir/stdout" 2>"$dir/stderr" 3>&- &
	pid=$!
	echo "$pid" >>"$(_lib_pidfile)"
	for ((i = 0; i < 100; i++)); do
		[[ -s "$dir/port" ]] && break
		if _lib_dead "$pid"; then
			echo "smtpd.py failed to start:" >&2
			cat "$dir/stderr" >&2
			return 1
		fi
		sleep 0.05
	done
	if [[ ! -s "$dir/port" ]]; then
		echo "smtpd.py did not write $dir/port within 5 s" >&2
		cat "$dir/stderr" >&2
		return 1
	fi
	printf -v "${name}_PORT" '%s' "$(cat "$dir/port")"
	printf -v "${name}_DIR" '%s' "$dir"
	printf -v "${name}_PID" '%s' "$pid"
	export "${name}_PORT" "${name}_DIR" "${name}_PID"
}

smtpd_start() {
	smtpd_start_named SMTPD "$@"
}

# smtpd_wait_file FILE [SECONDS]: FILE is relative to $SMTPD_DIR unless it
# contains a slash.
smtpd_wait_file() {
	local f="$1" t="${2:-5}" i
	[[ "$f" == */* ]] || f="$SMTPD_DIR/$f"
	for ((i = 0; i < t * 20; i++)); do
		[[ -e "$f" ]] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $f" >&2
	return 1
}

# smtpd_wait_conns N [SECONDS] [DIR]
smtpd_wait_conns() {
	local n="$1" t="${2:-5}" d="${3:-$SMTPD_DIR}" i c
	for ((i = 0; i < t * 20; i++)); do
		c="$(cat "$d/conns" 2>/dev/null || echo 0)"
		((c >= n)) && return 0
		sleep 0.05
	done
	echo "timed out waiting for $n connection(s) to end in $d" >&2
	return 1
}

# Is something listening on 127.0.0.1:PORT? (without connecting to it)
_lib_listening() {
	python3 - "$1" <<'EOF'
import sys
port = "%04X" % int(sys.argv[1])
with open("/proc/net/tcp") as f:
    for line in f.readlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if local == "0100007F:" + port and state == "0A":
            sys.exit(0)
sys.exit(1)
EOF
}

# sink_start [NAME] [smtp-sink args...]: NAME defaults to SINK.
sink_start() {
	local name=SINK
	if [[ $# -gt 0 && "$1" != -* ]]; then
		name="$1"
		shift
	fi
	local dir port pid try i user=()
	dir="$(mktemp -d "$(_lib_tmp)/sink.XXXXXX")"
	mkdir "$dir/msgs"
	# smtp-sink refuses to run as root without -u, and opens its dump files
	# after switching to that user.  As root, "-u root" keeps the dumps
	# writable in a private temporary directory.
	if [[ "$(id -u)" == 0 ]]; then
		user=(-u root)
	fi
	for ((try = 0; try < 5; try++)); do
		port="$(free_port)"
		smtp-sink "${user[@]}" -d "$dir/msgs/%Y%m%d%H%M%S." "$@" \
			"127.0.0.1:$port" 64 \
			</dev/null >"$dir/stdout" 2>"$dir/stderr" 3>&- &
		pid=$!
		echo "$pid" >>"$(_lib_pidfile)"
		for ((i = 0; i < 100; i++)); do
			if _lib_listening "$port"; then
				printf -v "${name}_PORT" '%s' "$port"
				printf -v "${name}_DIR" '%s' "$dir/msgs"
				printf -v "${name}_PID" '%s' "$pid"
				export "${name}_PORT" "${name}_DIR" "${name}_PID"
				return 0
			fi
			_lib_dead "$pid" && break
			sleep 0.05
		done
		_lib_stop "$pid"
	done
	echo "smtp-sink failed to start:" >&2
	cat "$dir/stderr" >&2
	return 1
}

# sink_messages [DIR]: the dump files in order of arrival.
sink_messages() {
	local d="${1:-$SINK_DIR}"
	find "$d" -type f -printf '%T@ %p\n' | sort -n | cut -d' ' -f2-
}

make_cert() {
	local d="$1"
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
		-keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1
}

# Stop one recorded process: TERM, wait up to 2 s, then KILL.
_lib_stop() {
	local pid="$1" i
	kill -0 "$pid" 2>/dev/null || return 0
	# Guard against a recycled pid: only ever signal our own servers.
	if ! _lib_dead "$pid" &&
		! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
		grep -qE 'smtpd\.py|smtp-sink'; then
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 40; i++)); do
		_lib_dead "$pid" && break
		sleep 0.05
	done
	_lib_dead "$pid" || kill -KILL "$pid" 2>/dev/null
	# Reap it if it is our child; harmless otherwise.
	wait "$pid" 2>/dev/null
	return 0
}

stop_all() {
	local pf pid
	pf="$(_lib_pidfile)"
	[[ -f "$pf" ]] || return 0
	while read -r pid; do
		[[ -n "$pid" ]] && _lib_stop "$pid"
	done <"$pf"
	rm -f "$pf"
	return 0
}

teardown() {
	stop_all
}

# Compare bytes; show both sides with od -c on a mismatch.
_lib_cmp() {
	local got="$1" want="$2"
	if ! cmp -s "$got" "$want"; then
		echo "bytes differ; expected:" >&2
		od -c "$want" >&2
		echo "got:" >&2
		od -c "$got" >&2
		return 1
	fi
}

# assert_file_bytes FILE FORMAT: FILE must hold exactly `printf FORMAT`.
assert_file_bytes() {
	local want
	want="$(_lib_tmp)/.expected.$$"
	# shellcheck disable=SC2059
	printf "$2" >"$want"
	if [[ ! -f "$1" ]]; then
		echo "no such file: $1" >&2
		return 1
	fi
	_lib_cmp "$1" "$want"
}

# assert_bytes FORMAT: $output (from bats "run") must equal `printf FORMAT`
# (bats strips trailing newlines from $output).
assert_bytes() {
	local got
	got="$(_lib_tmp)/.output.$$"
	# shellcheck disable=SC2154  # set by bats "run"
	printf '%s' "$output" >"$got"
	assert_file_bytes "$got" "$1"
}

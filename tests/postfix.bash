# postfix.bash - a throwaway private Postfix instance for tests and demos.
#
# Source this file (bats: "load postfix"; plain bash: ". tests/postfix.bash").
# Works under bats and under "bash -e".  Needs root and the Debian postfix
# package.
#
#   postfix_start       create and start a private instance listening for
#                       SMTP on 127.0.0.1 on a free port; exports
#                         POSTFIX_PORT  the SMTP port
#                         POSTFIX_DIR   the instance's config directory
#                         POSTFIX_MAIL  the mbox file that receives ALL mail
#                         POSTFIX_PID   pid of the "postfix start-fg" process
#                         POSTFIX_ROOT  the instance's top directory
#                         POSTFIX_LOG   the instance's maillog
#   postfix_wait_mail N [SECONDS]
#                       wait (default 20 s) until POSTFIX_MAIL holds at least
#                       N complete messages; on time-out show the maillog
#                       and fail
#   postfix_mail_count  print the number of messages in POSTFIX_MAIL
#   postfix_show_log    print the maillog (to stderr)
#   postfix_stop        stop the instance, make sure none of its processes
#                       is left, and drop it from the default instance's
#                       alternate_config_directories.  Safe to call twice,
#                       or after a failed postfix_start.  Outside bats it
#                       also removes POSTFIX_ROOT, unless POSTFIX_KEEP=1
#                       (under bats, bats removes its temporary directories).
#
# What the instance does:
#   - mail to ANY address @example.test or @localhost is accepted and
#     delivered by the virtual(8) agent, in mbox format, to POSTFIX_MAIL
#     ($POSTFIX_ROOT/mail/inbox), except:
#       reject@example.test  RCPT gets "550 5.1.1 no such user"
#       later@example.test   RCPT gets "450 4.2.0 try later"
#   - any other recipient domain: RCPT gets "554 5.7.1 Relay access denied"
#   - no DNS, no TLS, no AUTH; myhostname is postfix.test; nothing ever
#     leaves the machine (default_transport is error:).
#
# Layout under POSTFIX_ROOT (a fresh directory under $BATS_FILE_TMPDIR or
# $BATS_TEST_TMPDIR under bats, else from mktemp -d): conf/ (main.cf,
# master.cf, recipient_access), queue/, data/, mail/inbox, maillog.
#
# Notes:
#   - "postfix -c DIR" insists that DIR be listed in the default instance's
#     alternate_config_directories, so postfix_start appends it there
#     (under a lock) and postfix_stop removes it again.
#   - the virtual agent writes the mailbox as nobody, so the directories
#     above POSTFIX_ROOT that bats creates with mode 0700 get o+x.
#   - maillog_file is /dev/stdout, and the start-fg process's stdout is a
#     pipe to a "cat >> maillog", not the regular file itself.  Errors
#     before start-up would go to syslog, which is absent, so on failure
#     the output of "postfix check" is shown along with the maillog.
#   - Postfix will not read main.cf or a table file whose mtime is within
#     the last second or so (it sleeps until the file "cools down"), so
#     freshly written files get their mtime set 2 s back; this keeps
#     postfix_start well under a second.
#   - Call postfix_start directly (setup_file, setup, or the script), not
#     through bats "run", or the exported variables are lost.  Background
#     processes get fd 3 closed, so bats does not wait for them.

POSTFIX_TEST_DOMAIN=example.test
POSTFIX_START_TIMEOUT=${POSTFIX_START_TIMEOUT:-20}
_POSTFIX_DEF_CONF=/etc/postfix
# Marks our directories, so that stale alternate_config_directories
# entries left by killed runs can be recognised and pruned.
_POSTFIX_MARK=postfix-instance

_postfix_err() {
	echo "postfix.bash: $*" >&2
}

# Print a free TCP port on 127.0.0.1.
_postfix_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Set the modification time of freshly written files 2 s into the past.
# Postfix refuses to read a table or main.cf whose mtime is within the
# last second or so ("let the file cool down": it waits in 300 ms steps),
# which would add up to ~2 s per rewritten file to every start.  The files
# are complete (written by us, or renamed into place by postconf -e).
_postfix_cool() {
	touch -d "@$(($(date +%s) - 2))" "$@"
}

# Run "postconf -e" on the default main.cf with a lock held, so that two
# instances started at the same time do not lose each other's entries.
# $1: add|remove, $2: directory.
_postfix_alt_dirs() {
	local op=$1 dir=$2 lock=/run/lock/smtpsend-postfix-test.lock
	[[ -d /run/lock ]] || lock=/tmp/smtpsend-postfix-test.lock
	(
		flock -w 30 9 || { _postfix_err "cannot lock $lock"; exit 1; }
		local old entry keep=()
		old=$(postconf -c "$_POSTFIX_DEF_CONF" -h alternate_config_directories) || exit 1
		for entry in ${old//,/ }; do
			[[ $entry == "$dir" ]] && continue
			# Prune leftovers of earlier runs that were killed.
			if [[ $entry == */$_POSTFIX_MARK.*/conf && ! -d $entry ]]; then
				continue
			fi
			keep+=("$entry")
		done
		[[ $op == add ]] && keep+=("$dir")
		local IFS=,
		local new="${keep[*]}"
		new=${new//,/, }
		if [[ $new == "$old" ]]; then
			:
		elif [[ -z $new ]]; then
			# Drop the line: main.cf is as it was before (the
			# default value is empty).
			postconf -c "$_POSTFIX_DEF_CONF" -X alternate_config_directories || exit 1
			_postfix_cool "$_POSTFIX_DEF_CONF/main.cf"
		else
			postconf -c "$_POSTFIX_DEF_CONF" -e "alternate_config_directories = $new" || exit 1
			_postfix_cool "$_POSTFIX_DEF_CONF/main.cf"
		fi
	) 9>>"$lock"
}

# Make every directory from POSTFIX_ROOT up to the bats run directory (or
# the mktemp directory itself) searchable by others, then check that nobody
# can actually write to $1.
_postfix_open_path() {
	local root=$1 target=$2 top=${BATS_RUN_TMPDIR:-} d
	chmod 755 "$root" || return 1
	if [[ -n $top ]]; then
		d=$(dirname "$root")
		while [[ $d == "$top" || $d == "$top"/* ]]; do
			chmod o+x "$d" || return 1
			d=$(dirname "$d")
		done
	fi
	if ! setpriv --reuid=nobody --regid=nogroup --clear-groups \
		test -w "$target" -a -x "$target"; then
		_postfix_err "user nobody cannot write to $target (check the permissions of its parent directories)"
		return 1
	fi
}

_postfix_write_config() {
	local root=$1 port=$2 conf=$1/conf
	local uid gid
	uid=$(id -u nobody) && gid=$(id -g nobody) || return 1

	cat >"$conf/main.cf" <<EOF || return 1
# Private test instance (tests/postfix.bash); thrown away after the test.
compatibility_level = 3.6
queue_directory = $root/queue
data_directory = $root/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = /dev/stdout

myhostname = postfix.test
mydomain = postfix.test
myorigin = \$myhostname
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_banner = \$myhostname ESMTP Postfix test instance ($(basename "$root"))

# No DNS, no outside network, nothing leaves the machine.
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
default_transport = error:5.7.1 test instance delivers nowhere else
relay_transport = \$default_transport

alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_sasl_auth_enable = no

# Everything for the test domains goes to one mbox file.
virtual_mailbox_domains = $POSTFIX_TEST_DOMAIN, localhost
virtual_mailbox_base = $root/mail
virtual_mailbox_maps = static:inbox
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_mailbox_limit = 0
virtual_minimum_uid = 100
# postfix_wait_mail relies on the dotlock.
virtual_mailbox_lock = fcntl, dotlock

# Relaying is denied even from mynetworks; a few recipients are refused.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
    check_recipient_access texthash:$conf/recipient_access,
    permit_mynetworks, reject_unauth_destination

# Keep the tests fast.
smtpd_error_sleep_time = 0
in_flow_delay = 0
delay_warning_time = 0
EOF

	cat >"$conf/recipient_access" <<EOF || return 1
reject@$POSTFIX_TEST_DOMAIN	550 5.1.1 no such user
later@$POSTFIX_TEST_DOMAIN	450 4.2.0 try later
EOF

	# No chroot, so that the instance needs nothing but its own tree.
	cat >"$conf/master.cf" <<EOF || return 1
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$port inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	_postfix_cool "$conf/main.cf" "$conf/master.cf" "$conf/recipient_access"
}

# Print the pid in the instance's master.pid, if any.
_postfix_master_pid() {
	local f=$1/queue/pid/master.pid pid
	[[ -r $f ]] || return 1
	read -r pid <"$f" || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# Wait until 127.0.0.1:$1 answers with a 220 greeting that contains $4
# (so that some other server that got the port is not mistaken for ours);
# give up after $2 seconds, or as soon as process $3 has exited (exit 2).
_postfix_wait_banner() {
	python3 - "$@" <<'EOF'
import socket, sys, time
port, timeout, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
token = sys.argv[4].encode()
end = time.monotonic() + timeout
def alive():
    # The start-fg process is the caller's child: once it has exited it is
    # a zombie until reaped, and kill(pid, 0) would still succeed.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while time.monotonic() < end:
    if not alive():
        sys.exit(2)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(2)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(512)
                if not chunk:
                    break
                buf += chunk
            if buf.startswith(b"220 ") and token in buf:
                s.sendall(b"QUIT\r\n")
                sys.exit(0)
            print("postfix.bash: port %d: unexpected greeting %r" % (port, buf),
                  file=sys.stderr)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

postfix_show_log() {
	local log=${POSTFIX_LOG:-}
	if [[ -n $log && -s $log ]]; then
		echo "----- $log -----" >&2
		cat "$log" >&2
		echo "----- end of maillog -----" >&2
	else
		echo "(the maillog is empty)" >&2
	fi
}

# Diagnostics after a failed start.
_postfix_diagnose() {
	local conf=$1
	postfix_show_log
	echo "----- postfix -c $conf check -----" >&2
	postfix -c "$conf" check 2>&1 | cat >&2
	echo "----- end of check -----" >&2
}

postfix_start() {
	local rc=0
	if [[ -n ${POSTFIX_PID:-} ]] && kill -0 "$POSTFIX_PID" 2>/dev/null; then
		_postfix_err "an instance is already running (pid $POSTFIX_PID); call postfix_stop first"
		return 1
	fi
	_postfix_start || rc=$?
	if [[ $rc != 0 ]]; then
		postfix_stop
		return "$rc"
	fi
}

_postfix_start() {
	local base root conf attempt port rc

	POSTFIX_DIR= POSTFIX_ROOT= POSTFIX_PID=
	if [[ $(id -u) != 0 ]]; then
		_postfix_err "must run as root"
		return 1
	fi
	command -v postfix >/dev/null && command -v postconf >/dev/null || {
		_postfix_err "postfix is not installed"
		return 1
	}

	base=${BATS_FILE_TMPDIR:-${BATS_TEST_TMPDIR:-}}
	if [[ -n $base ]]; then
		root=$(mktemp -d "$base/$_POSTFIX_MARK.XXXXXX") || return 1
		_POSTFIX_REMOVE=
	else
		root=$(mktemp -d "${TMPDIR:-/tmp}/$_POSTFIX_MARK.XXXXXX") || return 1
		_POSTFIX_REMOVE=$root
	fi
	conf=$root/conf
	export POSTFIX_ROOT=$root
	export POSTFIX_DIR=$conf
	export POSTFIX_MAIL=$root/mail/inbox
	export POSTFIX_LOG=$root/maillog
	export POSTFIX_PORT=
	export POSTFIX_PID=

	mkdir -m 755 "$conf" "$root/queue" && mkdir -m 700 "$root/data" &&
		mkdir -m 755 "$root/mail" && : >"$POSTFIX_LOG" || return 1
	# The mailbox exists from the start (empty), owned by its writer.
	install -m 600 -o nobody -g nogroup /dev/null "$POSTFIX_MAIL" || return 1
	chown postfix:postfix "$root/data" && chown nobody:nogroup "$root/mail" || return 1
	_postfix_open_path "$root" "$root/mail" || return 1

	_postfix_alt_dirs add "$conf" || return 1

	for attempt in 1 2 3 4 5; do
		port=$(_postfix_free_port) || return 1
		_postfix_write_config "$root" "$port" || return 1
		if [[ $attempt == 1 ]]; then
			# Catch syntax errors early; the table must answer.
			if [[ $(postmap -c "$conf" -q "reject@$POSTFIX_TEST_DOMAIN" "texthash:$conf/recipient_access") != "550 5.1.1 no such user" ]]; then
				_postfix_err "recipient_access table does not work"
				return 1
			fi
		fi
		rm -f "$root/queue/pid/master.pid"
		echo "=== postfix_start attempt $attempt, port $port ===" >>"$POSTFIX_LOG"

		# start-fg keeps the master in the foreground (a child of the
		# postfix-script shell, which is $!).  stdout must be a pipe.
		# Nothing started here may keep the caller's stdout, stderr or
		# fd 3 open, or bats (or a pipe reader) would wait for it.
		(
			exec 3>&- </dev/null
			exec postfix -c "$conf" start-fg \
				> >(exec cat >>"$POSTFIX_LOG" 2>/dev/null) 2>&1
		) &
		POSTFIX_PID=$!
		POSTFIX_PORT=$port

		rc=0
		_postfix_wait_banner "$port" "$POSTFIX_START_TIMEOUT" "$POSTFIX_PID" \
			"($(basename "$root"))" || rc=$?
		if [[ $rc == 0 ]]; then
			return 0
		fi
		# The start-fg process is gone (or hung): was it the port?
		sleep 0.2
		if [[ $rc == 2 ]] && grep -q "bind 127.0.0.1 port $port: Address already in use" "$POSTFIX_LOG"; then
			_postfix_err "port $port was taken; retrying with another one"
			_postfix_kill_instance
			continue
		fi
		break
	done

	_postfix_err "could not start the Postfix instance in $conf"
	_postfix_diagnose "$conf"
	return 1
}

# Print field $2 (1-based, after the command name) of /proc/$1/stat:
# 1 = state, 4 = session id.  Fails when there is no such process.
_postfix_stat() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	local f=($st)
	echo "${f[$(($2 - 1))]}"
}

# True when process $1 is still of this instance (started by us, or in
# the session $2 of its master) and not yet a zombie.
_postfix_ours() {
	local pid=$1 sid=$2 state
	state=$(_postfix_stat "$pid" 1) || return 1
	[[ $state != Z && $state != X ]] || return 1
	[[ $pid == "${POSTFIX_PID:-}" ]] && return 0
	[[ -n $sid && $(_postfix_stat "$pid" 4) == "$sid" ]]
}

# Print the master's pid (it is also its session id: the master calls
# setsid()) if it is running.  Only trust the pid file when that process
# really is a master.
_postfix_live_master() {
	local mpid
	[[ -n ${POSTFIX_ROOT:-} ]] || return 1
	mpid=$(_postfix_master_pid "$POSTFIX_ROOT") || return 1
	[[ $(cat "/proc/$mpid/comm" 2>/dev/null) == master ]] || return 1
	echo "$mpid"
}

# Print the processes of this instance: the start-fg process, the master
# and everything in the master's session.
_postfix_instance_pids() {
	local sid
	[[ -n ${POSTFIX_PID:-} ]] && echo "$POSTFIX_PID"
	if sid=$(_postfix_live_master); then
		ps -o pid= -s "$sid" 2>/dev/null || true
	fi
	return 0
}

# _postfix_kill_pids SID PID...: wait a moment for the processes to go
# away by themselves, then TERM, then KILL whatever of them is left.
_postfix_kill_pids() {
	local sid=$1 pids p round
	shift
	pids=("$@")
	for round in wait TERM KILL; do
		local i
		for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
			local alive=()
			for p in ${pids[@]+"${pids[@]}"}; do
				if _postfix_ours "$p" "$sid"; then
					alive+=("$p")
				fi
			done
			pids=(${alive[@]+"${alive[@]}"})
			[[ ${#pids[@]} -eq 0 ]] && break 2
			if [[ $i == 1 && $round != wait ]]; then
				kill -s "$round" "${pids[@]}" 2>/dev/null || true
			fi
			sleep 0.1
		done
	done
	# Reap the start-fg process (our child).
	if [[ -n ${POSTFIX_PID:-} ]]; then
		wait "$POSTFIX_PID" 2>/dev/null || true
	fi
	return 0
}

# Kill every process of this instance that is still there.
_postfix_kill_instance() {
	local sid=
	sid=$(_postfix_live_master) || sid=
	_postfix_kill_pids "$sid" $(_postfix_instance_pids)
}

postfix_stop() {
	local conf=${POSTFIX_DIR:-} root=${POSTFIX_ROOT:-} sid pids=()
	[[ -n $conf ]] || return 0
	[[ -n $root ]] || root=$(dirname "$conf")
	POSTFIX_ROOT=$root

	# Note the processes first: once the master is gone, its children
	# (which may take a moment to exit) can only be found by session.
	sid=$(_postfix_live_master) || sid=
	pids=($(_postfix_instance_pids))
	if [[ -n $sid && -f $conf/main.cf ]]; then
		postfix -c "$conf" stop >>"${POSTFIX_LOG:-/dev/null}" 2>&1 || true
	fi
	_postfix_kill_pids "$sid" ${pids[@]+"${pids[@]}"}
	_postfix_alt_dirs remove "$conf" || true
	POSTFIX_PID=
	if [[ -n ${_POSTFIX_REMOVE:-} && $_POSTFIX_REMOVE == "$root" &&
		${POSTFIX_KEEP:-} != 1 ]]; then
		rm -rf -- "$root"
		_POSTFIX_REMOVE=
	fi
	return 0
}

# Print the number of messages in the mbox.
postfix_mail_count() {
	local f=${POSTFIX_MAIL:?postfix_start was not called} n=0
	if [[ -f $f ]]; then
		n=$(grep -c '^From ' "$f" || true)
	fi
	echo "${n:-0}"
}

postfix_wait_mail() {
	local want=${1:?usage: postfix_wait_mail N [SECONDS]} timeout=${2:-20}
	local end=$((SECONDS + timeout)) n
	while :; do
		n=$(postfix_mail_count)
		# The virtual agent holds a dotlock (and an fcntl lock) while
		# it appends: a message is complete once the .lock is gone.
		if [[ $n -ge $want && ! -e $POSTFIX_MAIL.lock ]]; then
			return 0
		fi
		[[ $SECONDS -ge $end ]] && break
		sleep 0.1
	done
	_postfix_err "timed out after ${timeout}s waiting for $want message(s) in $POSTFIX_MAIL (have $n)"
	postfix_show_log
	return 1
}

# postfix.bash - a throwaway private Postfix instance for tests and demos.
#
# Source this file (bats: "load postfix"; plain bash: ". tests/postfix.bash").
# Works under bats and under "bash -e".  Needs root and the Debian postfix
# package; the optional SASL feature also needs sasl2-bin (saslpasswd2) and
# libsasl2-modules.
#
#   postfix_start [--tls-cert FILE] [--tls-key FILE] [--sasl]
#                       create and start a private instance listening for
#                       SMTP on 127.0.0.1 on a free port; exports
#                         POSTFIX_PORT  the SMTP port
#                         POSTFIX_DIR   the instance's config directory
#                         POSTFIX_MAIL  the mbox file that receives ALL mail
#                         POSTFIX_PID   pid of the "postfix start-fg" process
#                         POSTFIX_ROOT  the instance's top directory
#                         POSTFIX_LOG   the instance's maillog
#                       and, for the optional features below,
#                         POSTFIX_TLS_PORT   the implicit TLS port (empty
#                                            without TLS)
#                         POSTFIX_SASL_USER  "alice" (empty without SASL)
#                         POSTFIX_SASL_PASS  "wonderland"
#                         POSTFIX_SASL_REALM "example.test"
#                         POSTFIX_AUTH_DOMAIN "auth.example.test" (see below)
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
# Optional features, off by default; postfix_start reads these variables
# (the flags above override them):
#   POSTFIX_TLS_CERT=FILE POSTFIX_TLS_KEY=FILE     (--tls-cert, --tls-key)
#       PEM server certificate (with its chain, if any) and unencrypted
#       key; POSTFIX_TLS_KEY defaults to POSTFIX_TLS_CERT (one file holding
#       both).  Both are copied into the instance (conf/tls/, mode 0600,
#       owned by root: smtpd reads them as root, before dropping its
#       privileges), so the originals may be anywhere root can read.
#       Enables
#         - STARTTLS on POSTFIX_PORT (smtpd_tls_security_level = may);
#         - a second listener, POSTFIX_TLS_PORT, with implicit TLS
#           ("465-style", smtpd_tls_wrappermode = yes), TLS required;
#         - smtpd_tls_received_header = yes: the Received header of mail
#           that came over TLS says "(using TLSv1.3 with cipher ...)" and
#           "with ESMTPS" (ESMTPSA when authenticated as well).
#       postfix_start checks that a TLS handshake on POSTFIX_TLS_PORT
#       works (without verifying the certificate) before it returns.
#   POSTFIX_SASL=1                                 (--sasl)
#       SMTP AUTH with Cyrus SASL (smtpd_sasl_type = cyrus) against a
#       private sasldb (sasl/sasldb2 under POSTFIX_ROOT, made with
#       saslpasswd2) holding one user: "alice" in the realm "example.test"
#       (smtpd_sasl_local_domain), password "wonderland".  Log in as
#       "alice"; "alice@example.test" names the same user.
#       Mechanisms (Cyrus smtpd.conf in conf/sasl/): PLAIN LOGIN CRAM-MD5
#       DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256.  With TLS on as well, AUTH is
#       offered only inside TLS (smtpd_tls_auth_only = yes: after STARTTLS
#       on POSTFIX_PORT, at once on POSTFIX_TLS_PORT); without TLS it is
#       offered in plaintext.  smtpd_sasl_authenticated_header = yes: the
#       Received header of authenticated mail says "(Authenticated sender:
#       alice@example.test)" and "with ESMTPSA" (the maillog has
#       "sasl_method=PLAIN, sasl_username=alice@example.test").
#       Mail to anything@auth.example.test (POSTFIX_AUTH_DOMAIN) is
#       accepted only from an authenticated client, and then delivered to
#       POSTFIX_MAIL like the rest; an unauthenticated client gets "554
#       5.7.1 <rcpt>: Recipient address rejected: Access denied" at RCPT.
#       Everything else is as without SASL (mail for example.test is
#       accepted with or without AUTH).  A wrong password gets "535 5.7.8
#       Error: authentication failed: authentication failure"; a sasldb
#       that smtpd cannot read shows up as "454 4.7.0 Temporary
#       authentication failure" and "unable to open Berkeley db" in the
#       maillog.
#
# What the instance does:
#   - mail to ANY address @example.test or @localhost is accepted and
#     delivered by the virtual(8) agent, in mbox format, to POSTFIX_MAIL
#     ($POSTFIX_ROOT/mail/inbox), except:
#       reject@example.test  RCPT gets "550 5.1.1 no such user"
#       later@example.test   RCPT gets "450 4.2.0 try later"
#   - any other recipient domain: RCPT gets "554 5.7.1 Relay access denied"
#     (also for an authenticated client)
#   - no DNS, and no TLS or AUTH unless asked for (above); myhostname is
#     postfix.test; nothing ever leaves the machine (default_transport is
#     error:).
#
# Layout under POSTFIX_ROOT (a fresh directory under $BATS_FILE_TMPDIR or
# $BATS_TEST_TMPDIR under bats, else from mktemp -d): conf/ (main.cf,
# master.cf, recipient_access; tls/ and sasl/smtpd.conf when enabled),
# queue/, data/, mail/inbox, maillog, and sasl/sasldb2 with SASL.
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
#   - every service runs with chroot n, so smtpd needs nothing outside
#     the instance's tree.  The TLS key is read by smtpd as root; the
#     sasldb, though, is opened by Cyrus for each AUTH after smtpd has
#     become "postfix", so it is root:postfix 0640 in a root:postfix 0750
#     directory (the path above it is searchable, as for the mailbox).
#   - Cyrus's sasldb keys users by user@realm.  smtpd passes
#     smtpd_sasl_local_domain as the realm for a login name without "@",
#     so the user is created with "saslpasswd2 -u example.test"; a
#     client may log in as "alice" or "alice@example.test".  On Debian 12
#     the file is a Berkeley DB that Cyrus opens read-only: no lock files.
#   - Cyrus finds smtpd.conf through cyrus_sasl_config_path (the Debian
#     default, /etc/postfix/sasl, is not used); its messages go to the
#     maillog.
#   - tlsmgr is in master.cf only with TLS; there is no TLS session cache.
#   - the implicit TLS listener is a second smtpd line in master.cf with
#     "-o smtpd_tls_wrappermode=yes"; the two ports are picked together
#     and picked again together when one of them turns out to be taken.
#   - a certificate that does not match its key only makes smtpd log
#     "disabling TLS support" (the main port then just stops offering
#     STARTTLS), so postfix_start's handshake on the TLS port is what
#     catches it; the maillog is shown.
#   - postfix_stop sends the master TERM itself rather than running
#     "postfix stop", whose first check comes right after the signal and
#     whose next one a whole second later: with TLS, the master often
#     misses the first.

POSTFIX_TEST_DOMAIN=example.test
POSTFIX_AUTH_DOMAIN=auth.$POSTFIX_TEST_DOMAIN
POSTFIX_START_TIMEOUT=${POSTFIX_START_TIMEOUT:-20}
_POSTFIX_SASL_MECHS="PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"
_POSTFIX_DEF_CONF=/etc/postfix
# Marks our directories, so that stale alternate_config_directories
# entries left by killed runs can be recognised and pruned.
_POSTFIX_MARK=postfix-instance

_postfix_err() {
	echo "postfix.bash: $*" >&2
}

# Print a free TCP port on 127.0.0.1 (with N, N different ones on one
# line: one python3 start costs ~0.1 s on a slow machine).
_postfix_free_port() {
	python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "${1:-1}"
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

# _postfix_write_config ROOT PORT [TLSPORT]: write main.cf, master.cf and
# the tables.  TLS and SASL follow _POSTFIX_TLS and _POSTFIX_SASL (set by
# _postfix_start; the files they need are already in place).
_postfix_write_config() {
	local root=$1 port=$2 tlsport=${3:-} conf=$1/conf
	local uid gid domains=$POSTFIX_TEST_DOMAIN
	uid=$(id -u nobody) && gid=$(id -g nobody) || return 1
	local tls_level=none sasl=no
	[[ -n ${_POSTFIX_TLS:-} ]] && tls_level=may
	if [[ -n ${_POSTFIX_SASL:-} ]]; then
		sasl=yes
		domains+=", $POSTFIX_AUTH_DOMAIN"
	fi

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
smtpd_tls_security_level = $tls_level
smtp_tls_security_level = none
smtpd_sasl_auth_enable = $sasl

# Everything for the test domains goes to one mbox file.
virtual_mailbox_domains = $domains, localhost
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

	# A parameter must not be set twice: Postfix warns about that.
	if [[ -n ${_POSTFIX_TLS:-} ]]; then
		cat >>"$conf/main.cf" <<EOF || return 1

# TLS: STARTTLS offered on the main port (smtpd_tls_security_level
# above); the wrapper-mode port is in master.cf.
smtpd_tls_cert_file = $conf/tls/cert.pem
smtpd_tls_key_file = $conf/tls/key.pem
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
EOF
	fi
	if [[ -n ${_POSTFIX_SASL:-} ]]; then
		local tls_only=no
		[[ -n ${_POSTFIX_TLS:-} ]] && tls_only=yes
		cat >>"$conf/main.cf" <<EOF || return 1

# SMTP AUTH: Cyrus SASL with the private sasldb named in sasl/smtpd.conf.
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $conf/sasl
smtpd_sasl_local_domain = $POSTFIX_SASL_REALM
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
smtpd_tls_auth_only = $tls_only
# $POSTFIX_AUTH_DOMAIN: only for authenticated clients (recipient_access).
smtpd_restriction_classes = need_auth
need_auth = permit_sasl_authenticated, reject
EOF
	fi

	cat >"$conf/recipient_access" <<EOF || return 1
reject@$POSTFIX_TEST_DOMAIN	550 5.1.1 no such user
later@$POSTFIX_TEST_DOMAIN	450 4.2.0 try later
EOF
	if [[ -n ${_POSTFIX_SASL:-} ]]; then
		printf '%s\tneed_auth\n' "$POSTFIX_AUTH_DOMAIN" >>"$conf/recipient_access" || return 1
	fi

	# No chroot, so that the instance needs nothing but its own tree.
	cat >"$conf/master.cf" <<EOF || return 1
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$port inet n  -       n       -       -       smtpd
EOF
	# The listeners come first: once the master has set up postlog, it
	# logs through postlogd, which does not run yet if a later bind fails,
	# and the "Address already in use" would be lost.
	if [[ -n ${_POSTFIX_TLS:-} ]]; then
		cat >>"$conf/master.cf" <<EOF || return 1
# Implicit TLS (RFC 8314, "port 465"): TLS from the first byte.
127.0.0.1:$tlsport inet n -       n       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
EOF
	fi
	cat >>"$conf/master.cf" <<EOF || return 1
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
# With a TLS port $5, then wait for the greeting there too, after a TLS
# handshake (implicit TLS; the certificate is not verified), and fail at
# once (exit 3) when the handshake fails.  The master binds all its
# listeners before it runs any smtpd, so the TLS port is there as soon as
# the first one answers.
_postfix_wait_banner() {
	python3 - "$@" <<'EOF'
import socket, sys, time
port, timeout, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
token = sys.argv[4].encode()
tls_port = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else None
ctx = None
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
            if ctx:
                try:
                    s = ctx.wrap_socket(s)
                except (ssl.SSLError, ConnectionResetError) as e:
                    print("postfix.bash: port %d: TLS handshake failed: %s" % (port, e),
                          file=sys.stderr)
                    sys.exit(3)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(512)
                if not chunk:
                    break
                buf += chunk
            if buf.startswith(b"220 ") and token in buf:
                s.sendall(b"QUIT\r\n")
                if ctx or not tls_port:
                    sys.exit(0)
                import ssl
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                port = tls_port
                continue
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
	_postfix_start "$@" || rc=$?
	if [[ $rc != 0 ]]; then
		postfix_stop
		return "$rc"
	fi
}

# _postfix_options ARGS...: set _POSTFIX_TLS, _POSTFIX_TLS_CERT,
# _POSTFIX_TLS_KEY and _POSTFIX_SASL from the environment and the flags.
_postfix_options() {
	_POSTFIX_TLS_CERT=${POSTFIX_TLS_CERT:-}
	_POSTFIX_TLS_KEY=${POSTFIX_TLS_KEY:-}
	_POSTFIX_SASL=
	case ${POSTFIX_SASL:-} in
	'' | 0 | no) ;;
	*) _POSTFIX_SASL=1 ;;
	esac
	while [[ $# -gt 0 ]]; do
		case $1 in
		--tls-cert | --tls-key)
			if [[ $# -lt 2 ]]; then
				_postfix_err "postfix_start: $1 needs a file"
				return 1
			fi
			if [[ $1 == --tls-cert ]]; then
				_POSTFIX_TLS_CERT=$2
			else
				_POSTFIX_TLS_KEY=$2
			fi
			shift 2
			;;
		--sasl)
			_POSTFIX_SASL=1
			shift
			;;
		*)
			_postfix_err "postfix_start: unknown argument '$1'"
			return 1
			;;
		esac
	done
	_POSTFIX_TLS=
	if [[ -n $_POSTFIX_TLS_CERT ]]; then
		_POSTFIX_TLS=1
		[[ -n $_POSTFIX_TLS_KEY ]] || _POSTFIX_TLS_KEY=$_POSTFIX_TLS_CERT
	elif [[ -n $_POSTFIX_TLS_KEY ]]; then
		_postfix_err "postfix_start: a TLS key without a certificate (POSTFIX_TLS_CERT)"
		return 1
	fi
	return 0
}

# Copy the certificate and key into conf/tls, readable by root only.
_postfix_setup_tls() {
	local conf=$1 f
	for f in "$_POSTFIX_TLS_CERT" "$_POSTFIX_TLS_KEY"; do
		if [[ ! -r $f ]]; then
			_postfix_err "cannot read $f"
			return 1
		fi
	done
	mkdir -m 700 "$conf/tls" &&
		install -m 600 -o root -g root "$_POSTFIX_TLS_CERT" "$conf/tls/cert.pem" &&
		install -m 600 -o root -g root "$_POSTFIX_TLS_KEY" "$conf/tls/key.pem" ||
		return 1
	if ! grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$conf/tls/key.pem"; then
		_postfix_err "$_POSTFIX_TLS_KEY holds no PEM private key"
		return 1
	fi
}

# The Cyrus SASL configuration and the sasldb with the one test user.
_postfix_setup_sasl() {
	local root=$1 conf=$1/conf db=$1/sasl/sasldb2
	if ! command -v saslpasswd2 >/dev/null; then
		_postfix_err "saslpasswd2 not found (install sasl2-bin and libsasl2-modules)"
		return 1
	fi
	# Without libsasl2-modules smtpd would just offer no AUTH at all.
	local have m
	have=$(saslpluginviewer -s 2>/dev/null | sed -n 2p) || have=
	for m in $_POSTFIX_SASL_MECHS; do
		if [[ " $have " != *" $m "* ]]; then
			_postfix_err "Cyrus SASL has no $m mechanism (install libsasl2-modules)"
			return 1
		fi
	done
	mkdir -m 755 "$conf/sasl" && mkdir -m 750 "$root/sasl" &&
		chown root:postfix "$root/sasl" || return 1
	cat >"$conf/sasl/smtpd.conf" <<EOF || return 1
# Cyrus SASL configuration of the test instance's smtpd (smtpd_sasl_path).
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $db
mech_list: $_POSTFIX_SASL_MECHS
EOF
	printf '%s' "$POSTFIX_SASL_PASS" |
		saslpasswd2 -p -c -f "$db" -u "$POSTFIX_SASL_REALM" "$POSTFIX_SASL_USER" ||
		{
			_postfix_err "saslpasswd2 failed"
			return 1
		}
	chown root:postfix "$db" && chmod 640 "$db" || return 1
	_postfix_cool "$conf/sasl/smtpd.conf" "$db"
}

# _postfix_port_taken PORT...: did the master fail to bind one of them?
_postfix_port_taken() {
	local p
	for p in "$@"; do
		grep -q "bind 127.0.0.1 port $p: Address already in use" "$POSTFIX_LOG" && return 0
	done
	return 1
}

_postfix_start() {
	local base root conf attempt port tlsport rc token

	POSTFIX_DIR= POSTFIX_ROOT= POSTFIX_PID=
	_postfix_options "$@" || return 1
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
	export POSTFIX_TLS_PORT=
	export POSTFIX_SASL_USER='' POSTFIX_SASL_PASS='' POSTFIX_SASL_REALM=''
	export POSTFIX_AUTH_DOMAIN

	mkdir -m 755 "$conf" "$root/queue" && mkdir -m 700 "$root/data" &&
		mkdir -m 755 "$root/mail" && : >"$POSTFIX_LOG" || return 1
	# The mailbox exists from the start (empty), owned by its writer.
	install -m 600 -o nobody -g nogroup /dev/null "$POSTFIX_MAIL" || return 1
	if [[ -n $_POSTFIX_TLS ]]; then
		_postfix_setup_tls "$conf" || return 1
	fi
	if [[ -n $_POSTFIX_SASL ]]; then
		POSTFIX_SASL_USER=alice
		POSTFIX_SASL_PASS=wonderland
		POSTFIX_SASL_REALM=$POSTFIX_TEST_DOMAIN
		_postfix_setup_sasl "$root" || return 1
	fi
	chown postfix:postfix "$root/data" && chown nobody:nogroup "$root/mail" || return 1
	_postfix_open_path "$root" "$root/mail" || return 1

	_postfix_alt_dirs add "$conf" || return 1

	token="($(basename "$root"))"
	for attempt in 1 2 3 4 5; do
		tlsport=
		if [[ -n $_POSTFIX_TLS ]]; then
			read -r port tlsport < <(_postfix_free_port 2) || return 1
		else
			port=$(_postfix_free_port) || return 1
		fi
		if [[ -z $port || ( -n $_POSTFIX_TLS && -z $tlsport ) ]]; then
			_postfix_err "could not find a free port"
			return 1
		fi
		_postfix_write_config "$root" "$port" "$tlsport" || return 1
		if [[ $attempt == 1 ]]; then
			# Catch syntax errors early; the table must answer.
			if [[ $(postmap -c "$conf" -q "reject@$POSTFIX_TEST_DOMAIN" "texthash:$conf/recipient_access") != "550 5.1.1 no such user" ]]; then
				_postfix_err "recipient_access table does not work"
				return 1
			fi
		fi
		rm -f "$root/queue/pid/master.pid"
		echo "=== postfix_start attempt $attempt, port $port${tlsport:+, TLS port $tlsport} ===" >>"$POSTFIX_LOG"

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
		POSTFIX_TLS_PORT=$tlsport

		rc=0
		_postfix_wait_banner "$port" "$POSTFIX_START_TIMEOUT" "$POSTFIX_PID" \
			"$token" "$tlsport" || rc=$?
		if [[ $rc == 0 ]]; then
			return 0
		fi
		# The start-fg process is gone (or hung): was it a port?
		sleep 0.2
		if [[ $rc == 2 ]] && _postfix_port_taken "$port" ${tlsport:+"$tlsport"}; then
			_postfix_err "port $port${tlsport:+ or $tlsport} was taken; retrying with others"
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
	# What "postfix stop" does, but without its 1 s polling: it checks
	# once right after the TERM and then sleeps a whole second, and a
	# master with TLS services often needs a little longer than that
	# first check.  On TERM the master stops its children and exits;
	# _postfix_kill_pids waits for them in 0.1 s steps.
	if [[ -n $sid ]]; then
		echo "=== postfix_stop: TERM to the master, pid $sid ===" \
			2>/dev/null >>"${POSTFIX_LOG:-/dev/null}" || true
		kill -TERM "$sid" 2>/dev/null || true
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

# certs.bash - test certificates for the TLS tests, made with certtool.
#
# make_test_certs DIR creates (once; later calls reuse them):
#   ca.pem ca.key                 the test CA the client trusts
#   ca2.pem ca2.key               a second CA the client does not know
#   good.*                        server: SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   expired.*                     server, valid 2020-01-01 .. 2021-01-01
#   future.*                      server, valid only from 2090
#   wronghost.*                   server, SAN DNS:other.example only
#   cnonly.*                      CN=localhost, SAN DNS:other.example (SAN wins)
#   selfsigned.*                  self-signed server certificate for localhost
#   unknownca.*                   server signed by ca2
#   clientonly.*                  extended key usage: client authentication only
#   client.*  client.p12          client certificate; the PKCS#12 password is
#                                 "p12pass"
# Keys are ECDSA P-256: generating them takes milliseconds.

_cert_key() {
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--outfile "$1" 2>/dev/null
}

# _cert_tmpl FILE CN [LINE...]: a certificate template with extra lines.
_cert_tmpl() {
	local f=$1 cn=$2
	shift 2
	{
		printf 'cn = "%s"\n' "$cn"
		printf 'organization = "smtpsend tests"\n'
		printf 'serial = %d\n' "$((RANDOM * 32768 + RANDOM + 1))"
		local l
		for l in "$@"; do
			printf '%s\n' "$l"
		done
	} >"$f"
}

# _cert_signed DIR NAME CA CN [LINE...]: NAME.key and NAME.pem signed by CA.
_cert_signed() {
	local dir=$1 name=$2 ca=$3 cn=$4
	shift 4
	_cert_key "$dir/$name.key" || return 1
	_cert_tmpl "$dir/$name.tmpl" "$cn" "$@"
	certtool --generate-certificate --load-privkey "$dir/$name.key" \
		--load-ca-certificate "$dir/$ca.pem" --load-ca-privkey "$dir/$ca.key" \
		--template "$dir/$name.tmpl" --outfile "$dir/$name.pem" 2>/dev/null
}

# _cert_ca DIR NAME CN: a self-signed CA.
_cert_ca() {
	local dir=$1 name=$2
	_cert_key "$dir/$name.key" || return 1
	_cert_tmpl "$dir/$name.tmpl" "$3" "ca" "cert_signing_key" "crl_signing_key" \
		"expiration_days = 3650"
	certtool --generate-self-signed --load-privkey "$dir/$name.key" \
		--template "$dir/$name.tmpl" --outfile "$dir/$name.pem" 2>/dev/null
}

make_test_certs() {
	local dir=${1:?make_test_certs DIR}
	[ -f "$dir/.complete" ] && return 0
	command -v certtool >/dev/null || { echo "certtool not found" >&2; return 1; }
	mkdir -p "$dir" || return 1
	# Not "set -e": it is silently ignored when the caller tests our status.
	# The lock keeps parallel test jobs from mixing keys of two runs.
	(
		umask 077
		if command -v flock >/dev/null; then
			flock 9 || exit 1
			[ -f "$dir/.complete" ] && exit 0
		fi
		local server=("tls_www_server" "signing_key" "expiration_days = 365")
		_cert_ca "$dir" ca "smtpsend test CA" || exit 1
		_cert_ca "$dir" ca2 "smtpsend other CA" || exit 1
		_cert_signed "$dir" good ca localhost "${server[@]}" \
			'dns_name = "localhost"' 'ip_address = "127.0.0.1"' \
			'ip_address = "::1"' || exit 1
		_cert_signed "$dir" expired ca localhost "tls_www_server" "signing_key" \
			'dns_name = "localhost"' 'ip_address = "127.0.0.1"' \
			'activation_date = "2020-01-01 00:00:00"' \
			'expiration_date = "2021-01-01 00:00:00"' || exit 1
		_cert_signed "$dir" future ca localhost "tls_www_server" "signing_key" \
			'dns_name = "localhost"' 'ip_address = "127.0.0.1"' \
			'activation_date = "2090-01-01 00:00:00"' \
			'expiration_date = "2091-01-01 00:00:00"' || exit 1
		_cert_signed "$dir" wronghost ca other.example "${server[@]}" \
			'dns_name = "other.example"' || exit 1
		_cert_signed "$dir" cnonly ca localhost "${server[@]}" \
			'dns_name = "other.example"' || exit 1
		_cert_signed "$dir" unknownca ca2 localhost "${server[@]}" \
			'dns_name = "localhost"' 'ip_address = "127.0.0.1"' || exit 1
		_cert_signed "$dir" clientonly ca localhost "tls_www_client" "signing_key" \
			"expiration_days = 365" 'dns_name = "localhost"' \
			'ip_address = "127.0.0.1"' || exit 1
		_cert_signed "$dir" client ca "smtpsend test client" "tls_www_client" \
			"signing_key" "expiration_days = 365" \
			'email = "client@example.org"' || exit 1

		_cert_key "$dir/selfsigned.key" || exit 1
		_cert_tmpl "$dir/selfsigned.tmpl" localhost "${server[@]}" \
			'dns_name = "localhost"' 'ip_address = "127.0.0.1"'
		certtool --generate-self-signed --load-privkey "$dir/selfsigned.key" \
			--template "$dir/selfsigned.tmpl" --outfile "$dir/selfsigned.pem" \
			2>/dev/null || exit 1

		certtool --to-p12 --load-certificate "$dir/client.pem" \
			--load-privkey "$dir/client.key" --p12-name client \
			--password p12pass --outder --outfile "$dir/client.p12" \
			2>/dev/null || exit 1

		rm -f "$dir"/*.tmpl
		: >"$dir/.complete"
	) 9>"$dir/.lock"
}

# Run as a script: make_test_certs DIR.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	make_test_certs "$@"
fi

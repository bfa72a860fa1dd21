#!/bin/sh
# Make smtpsend the system's sendmail, mailq and newaliases with
# update-alternatives, Debian style.
#
# Debian's MTA packages ship /usr/sbin/sendmail themselves rather than
# through alternatives, so this refuses to touch a name that another
# package owns; on a host without an MTA (the usual case for a relay-only
# client) it registers smtpsend for all three names:
#
#   sh contrib/sendmail-alternatives.sh install [PREFIX]
#   sh contrib/sendmail-alternatives.sh remove
#
# PREFIX is where smtpsend is installed (default /usr/local).
set -eu
prefix=${2:-/usr/local}
bin="$prefix/bin/smtpsend"

case "${1:-}" in
install)
	[ -x "$bin" ] || { echo "no $bin: install smtpsend first" >&2; exit 1; }
	for name in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do
		if [ -e "$name" ] && [ ! -L "$name" ]; then
			echo "$name belongs to another package (dpkg -S $name); remove that MTA first" >&2
			exit 1
		fi
	done
	update-alternatives --install /usr/sbin/sendmail sendmail "$bin" 50 \
		--slave /usr/lib/sendmail sendmail-lib "$bin" \
		--slave /usr/bin/mailq mailq "$bin" \
		--slave /usr/bin/newaliases newaliases "$bin"
	;;
remove)
	update-alternatives --remove sendmail "$bin"
	;;
*)
	echo "usage: $0 install|remove [PREFIX]" >&2
	exit 64
	;;
esac

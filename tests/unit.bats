#!/usr/bin/env bats
# The unit tests of the pure parts (reply parser, session transcripts,
# dot-stuffer, spool, addresses, composer, rc parser, properties), run as
# one bats test each.

load lib

unit() {
	local dir="${UNIT_DIR:-$BATS_TEST_DIRNAME/unit}"
	# a bound on each program: a hang must fail, not stall the suite
	run timeout 300 "$dir/$1"
	echo "$output" | grep -v '^ok ' || true
	[ "$status" -eq 0 ]
}

@test "unit: reply parser" { unit test_reply; }
@test "unit: session state machine transcripts" { unit test_session; }
@test "unit: dot-stuffer at every chunk size" { unit test_dotstuff; }
@test "unit: spool checks and header scan" { unit test_spool; }
@test "unit: RFC 5322 addresses" { unit test_addr; }
@test "unit: message composer" { unit test_compose; }
@test "unit: rc file parser" { unit test_rcfile; }
@test "unit: property set" { unit test_props; }
@test "unit: -t recipients from the header" { unit test_header; }
@test "unit: aliases for local recipients" { unit test_aliases; }
@test "unit: SASL mechanisms and secret sources" { unit test_sasl; }
@test "unit: the on-disk queue (format, claims, concurrency)" { unit test_queue; }
@test "unit: proxy URLs and handshakes" { unit test_proxy; }

#!/usr/bin/env python3
r"""smtpd.py - a scriptable SMTP server for end-to-end tests of smtpsend.

Usage: smtpd.py --dir DIR [--script FILE] [--ipv6] [--listen ADDR] [--port N]
                [--once] [--timeout SEC]

--once exits after the first connection; --timeout (default 300) ends a
connection on which the client has sent nothing for that many seconds.

Listens on 127.0.0.1 (::1 with --ipv6, or --listen ADDR) on a port chosen
by the kernel (or --port N) and
serves connections one after another.  Files written into DIR:

  pid          the server's process id (written first)
  port         the port number (written atomically once listening)
  transcript   one line per event, appended and flushed as it happens:
                 "C: <line>"            a line from the client, ending shown
                 "C: <data N bytes>"    the body of DATA / one BDAT chunk
                 "S: <line>"            one line written by the server
                 "# ..."                a note (connection start/end, TLS, ...)
               Bytes are shown with escapes: \r \n \t \\ and \xHH for
               anything else outside printable ASCII.
  msg.N        exact bytes of message N (1, 2, ... across connections): for
               DATA, everything after the DATA line up to but excluding the
               final ".\r\n" line (still dot-stuffed, CRLF kept); for BDAT,
               the concatenated chunks.  Written for every complete message,
               whatever reply it then gets.
  env.N        the MAIL command line, then each RCPT command line that got a
               2xx reply, one per line (no CRLF).  Written just before msg.N.
  conns        number of connections that have ended so far (atomic)
  errors       tracebacks of unexpected server-side failures (absent if none)

Without a script the server is a well-behaved ESMTP server (greeting
"220 smtpd.test ESMTP"; EHLO offers PIPELINING, 8BITMIME, SIZE 10485760,
ENHANCEDSTATUSCODES, SMTPUTF8, DSN, CHUNKING).  It keeps minimal state:
RCPT before MAIL gets 503, a second MAIL gets 503, DATA (or BDAT) without
an accepted RCPT gets 554 (503 without MAIL).

SCRIPT FORMAT
-------------
One directive per line.  Blank lines and lines starting with "#" are
ignored.  Leading whitespace is ignored; the rest of the line is taken
exactly (trailing spaces count).

TEXT escapes (in reply/raw/multi/repeat/greeting/starttls-inject text):
  \r \n \t \0 \\ \xHH       as in Python (\xHH is one raw byte)
  {{STRING*N}}              STRING repeated N times, e.g. {{x*1000}}
Other characters are sent as UTF-8.

Settings:
  hostname NAME             name in greeting/EHLO/HELO (default smtpd.test)
  greeting TEXT             a greeting line with its code, e.g.
                            "greeting 220 hi" or "greeting 554 go away".
                            Several lines make a multi-line greeting; the
                            separator after the code is fixed up ("-" on
                            all lines but the last).  A 421 greeting closes.
  ehlo CAP                  the first "ehlo" line replaces the default
                            capability list, each adds one capability;
                            "ehlo" alone gives an empty list
  ehlo-tls CAP              capability list used after STARTTLS (default:
                            the "ehlo" list)
  noehlo                    EHLO gets "502 5.5.1 EHLO not implemented"
  lmtp                      speak LMTP (RFC 2033): LHLO is answered like
                            EHLO (EHLO and HELO get 500), and the end of a
                            message (final dot, BDAT LAST) gets one reply
                            per accepted recipient; "lmtp-rcpt PATTERN
                            CODE TEXT" sets the reply for recipients whose
                            RCPT line matches PATTERN (default 250)
  terminal                  SAML, SOML and SEND FROM are taken like MAIL
                            FROM (without it they get 500, as on most
                            servers)
  split N [MS]              write every reply in chunks of N bytes with a
                            pause of MS milliseconds (default 20) between
  delay MS                  wait MS milliseconds before every reply
  trickle [MS]              write replies one byte at a time, MS (default
                            1000) milliseconds apart
  starttls CERT KEY         offer STARTTLS (added to the "ehlo" list) and
                            do the TLS handshake after replying 220 to it;
                            relative paths are relative to the script
  starttls-inject TEXT      raw bytes sent in the same write right after the
                            220 reply to STARTTLS, before the handshake
  implicit-tls CERT KEY     speak TLS from the first byte

Rules (tried in file order, first match wins):
  on PATTERN ACTION         for a client command line (without its line
                            ending) matching PATTERN: an fnmatch glob,
                            case-insensitive ("*", "?", "[abc]"; write "[[]"
                            for a literal "["), e.g.
                              on RCPT TO:<bad@*> reply 550 5.1.1 no user
                            The pattern ends before the first word that is a
                            lowercase action keyword (below), so write
                            patterns in capitals.  After a reply whose code
                            is 334, the next client line is a SASL response;
                            it is logged and matched against "on" rules too
                            (default reply 535, or 501 for "*").
  dot ACTION                what to do after the final dot of DATA, or after
                            BDAT ... LAST when no "on" rule matches that line
                            (default "250 2.0.0 queued as N")
  connect ACTION            what to do when a client connects (default: the
                            greeting)
  then ACTION               add another step to the rule above

  A count limits a rule to the Nth line matching its pattern (or the Nth
  message for "dot", the Nth connection for "connect"), or with "+" to the
  Nth and later ones.  Counts run over the server's whole life, across
  connections, and include lines that an earlier rule answered:
    on#2 RCPT* ...     dot#1 ...     connect#2+ ...

Actions (steps of a rule, run in order; output is gathered and written in
one go at the end of the rule, or before a "sleep"):
  reply TEXT                TEXT with CRLF appended
  raw TEXT                  TEXT exactly, nothing appended
  multi CODE N TEXT         N lines "CODE-TEXT"... "CODE TEXT" (CRLF each);
                            "{i}" in TEXT becomes the line number
  repeat N TEXT             TEXT N times, nothing appended
  default                   what the server would have replied without rule
  sleep MS                  write what is gathered, then wait MS ms
  close                     close the connection (nothing more is written;
                            the server sends FIN, then drops client input
                            for up to 1 s so that the kernel sends no RST)
  silence                   never write again on this connection; keep
                            reading and logging until the client closes
  noclose                   do not close after a 421 reply

State follows the code of the first line written: 2xx to MAIL starts a
transaction, 2xx to RCPT adds a recipient, 3xx to DATA reads a message,
220 to STARTTLS starts TLS, 334 makes the next line a SASL response, 2xx to
EHLO/HELO/RSET clears the transaction, any 421 closes the connection (unless
"noclose"), and QUIT always closes after its reply.  BDAT chunk bytes are
always read before the reply.

Example:
  ehlo PIPELINING
  ehlo 8BITMIME
  on RCPT TO:<bad@*> reply 550 5.1.1 no such user
  on#1 MAIL* reply 421 4.3.2 shutting down
  on NOOP multi 250 10000 line {i}
  on VRFY* reply 252 {{x*600}}
  on HELP raw 214-half a
  then sleep 100
  then raw  reply\r\n214 end\r\n
  connect#1 reply 421 4.3.2 come back later
  dot reply 451 4.3.0 try later
  then close
"""

import argparse
import fnmatch
import os
import re
import signal
import socket
import ssl
import sys
import time
import traceback

DEFAULT_CAPS = ["PIPELINING", "8BITMIME", "SIZE 10485760",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"]

ACTION_WORDS = ("reply", "raw", "multi", "repeat", "default", "sleep",
                "close", "silence", "noclose")


class ScriptError(Exception):
    pass


class ConnEnd(Exception):
    """Ends the current connection; the message says why."""


# ---------------------------------------------------------------- escapes

def show(data):
    """Render bytes for the transcript: printable ASCII as is, escapes
    for everything else."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


_REPEAT_RE = re.compile(r"\{\{(.*?)\*(\d+)\}\}", re.S)
_ESC_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.S)
_ESC_MAP = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def unescape(text):
    """Turn script TEXT into bytes (see TEXT escapes above)."""
    text = _REPEAT_RE.sub(lambda m: m.group(1) * int(m.group(2)), text)
    out = bytearray()
    pos = 0
    for m in _ESC_RE.finditer(text):
        out += text[pos:m.start()].encode("utf-8", "surrogateescape")
        esc = m.group(1)
        if esc[0] == "x" and len(esc) == 3:
            out.append(int(esc[1:], 16))
        elif esc in _ESC_MAP:
            out += _ESC_MAP[esc]
        else:
            out += m.group(0).encode("utf-8", "surrogateescape")
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return bytes(out)


def split_lines(data):
    """Split bytes after each LF, keeping the endings."""
    parts = []
    start = 0
    while start < len(data):
        i = data.find(b"\n", start)
        if i < 0:
            parts.append(data[start:])
            break
        parts.append(data[start:i + 1])
        start = i + 1
    return parts


def reply_code(data):
    """The 3-digit code at the start of the bytes, or None."""
    m = re.match(rb"(\d{3})", data)
    return m.group(1).decode() if m else None


# ---------------------------------------------------------------- script

class Step:
    def __init__(self, kind, data=None, ms=0):
        self.kind = kind      # send, default, sleep, close, silence, noclose
        self.data = data
        self.ms = ms


class Rule:
    def __init__(self, kind, pattern, nth, plus, steps, lineno):
        self.kind = kind      # on, dot, connect
        self.pattern = pattern
        self.nth = nth
        self.plus = plus
        self.steps = steps
        self.lineno = lineno
        self.hits = 0


class Script:
    def __init__(self):
        self.hostname = "smtpd.test"
        self.greeting = []
        self.caps = None
        self.caps_tls = None
        self.noehlo = False
        self.lmtp = False
        self.lmtp_rcpt = []           # (pattern, reply bytes)
        self.terminal = False
        self.split = 0
        self.split_ms = 20
        self.delay_ms = 0
        self.trickle_ms = 0
        self.starttls = None          # (cert, key)
        self.inject = b""
        self.implicit = None          # (cert, key)
        self.rules = []


def parse_step(text, lineno):
    word, _, rest = text.partition(" ")
    if word == "reply":
        return Step("send", unescape(rest) + b"\r\n")
    if word == "raw":
        return Step("send", unescape(rest))
    if word == "multi":
        parts = rest.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise ScriptError("line %d: multi CODE N TEXT" % lineno)
        code, n = parts[0], int(parts[1])
        body = unescape(parts[2] if len(parts) > 2 else "")
        out = bytearray()
        for i in range(1, n + 1):
            sep = b"-" if i < n else b" "
            out += (code.encode() + sep +
                    body.replace(b"{i}", str(i).encode()) + b"\r\n")
        return Step("send", bytes(out))
    if word == "repeat":
        n, _, body = rest.partition(" ")
        if not n.isdigit():
            raise ScriptError("line %d: repeat N TEXT" % lineno)
        return Step("send", unescape(body) * int(n))
    if word == "sleep":
        if not rest.strip().isdigit():
            raise ScriptError("line %d: sleep MS" % lineno)
        return Step("sleep", ms=int(rest))
    if word in ("default", "close", "silence", "noclose"):
        if rest.strip():
            raise ScriptError("line %d: %s takes no argument" % (lineno, word))
        return Step(word)
    raise ScriptError("line %d: unknown action %r" % (lineno, word))


_TRIGGER_RE = re.compile(r"^(on|dot|connect)(?:#(\d+)(\+?))?$")


def parse_script(path):
    sc = Script()
    base = os.path.dirname(os.path.abspath(path))

    def fpath(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().split("\n")
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r").lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        m = _TRIGGER_RE.match(word)
        if m:
            kind = m.group(1)
            nth = int(m.group(2)) if m.group(2) else None
            if nth == 0:
                raise ScriptError("line %d: counts start at 1" % lineno)
            pattern = None
            action = rest
            if kind == "on":
                tokens = rest.split(" ")
                for i in range(1, len(tokens)):
                    if tokens[i] in ACTION_WORDS:
                        pattern = " ".join(tokens[:i])
                        action = " ".join(tokens[i:])
                        break
                else:
                    raise ScriptError("line %d: on PATTERN ACTION" % lineno)
            sc.rules.append(Rule(kind, pattern, nth, m.group(3) == "+",
                                 [parse_step(action, lineno)], lineno))
        elif word == "then":
            if not sc.rules:
                raise ScriptError("line %d: 'then' without a rule" % lineno)
            sc.rules[-1].steps.append(parse_step(rest, lineno))
        elif word == "hostname":
            sc.hostname = rest.strip()
        elif word == "greeting":
            sc.greeting.append(unescape(rest))
        elif word == "ehlo":
            if sc.caps is None:
                sc.caps = []
            if rest.strip():
                sc.caps.append(rest)
        elif word == "ehlo-tls":
            if sc.caps_tls is None:
                sc.caps_tls = []
            if rest.strip():
                sc.caps_tls.append(rest)
        elif word == "noehlo":
            sc.noehlo = True
        elif word == "lmtp":
            sc.lmtp = True
        elif word == "lmtp-rcpt":
            # the pattern may hold spaces: the reply starts at " DDD "
            m = re.search(r" (\d{3} .*)$", rest)
            if not m or m.start() == 0:
                raise ScriptError("line %d: lmtp-rcpt PATTERN CODE TEXT" % lineno)
            sc.lmtp_rcpt.append((rest[:m.start()], unescape(m.group(1)) + b"\r\n"))
        elif word == "terminal":
            sc.terminal = True
        elif word == "split":
            args = rest.split()
            if not args or not all(a.isdigit() for a in args) or \
                    int(args[0]) < 1 or len(args) > 2:
                raise ScriptError("line %d: split N [MS]" % lineno)
            sc.split = int(args[0])
            if len(args) > 1:
                sc.split_ms = int(args[1])
        elif word == "delay":
            if not rest.strip().isdigit():
                raise ScriptError("line %d: delay MS" % lineno)
            sc.delay_ms = int(rest)
        elif word == "trickle":
            if rest.strip() and not rest.strip().isdigit():
                raise ScriptError("line %d: trickle [MS]" % lineno)
            sc.trickle_ms = int(rest) if rest.strip() else 1000
        elif word in ("starttls", "implicit-tls"):
            args = rest.split()
            if len(args) != 2:
                raise ScriptError("line %d: %s CERT KEY" % (lineno, word))
            pair = (fpath(args[0]), fpath(args[1]))
            if word == "starttls":
                sc.starttls = pair
            else:
                sc.implicit = pair
        elif word == "starttls-inject":
            sc.inject = unescape(rest)
        else:
            raise ScriptError("line %d: unknown directive %r" % (lineno, word))
    return sc


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, args, script):
        self.dir = args.dir
        self.sc = script
        self.timeout = args.timeout
        self.msgs = 0
        self.conns_done = 0
        self.log_f = open(os.path.join(self.dir, "transcript"), "a",
                          encoding="ascii", errors="backslashreplace")
        self.starttls_ctx = self._ctx(script.starttls)
        self.implicit_ctx = self._ctx(script.implicit)

    @staticmethod
    def _ctx(pair):
        if not pair:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair[0], pair[1])
        return ctx

    def log(self, text):
        self.log_f.write(text + "\n")
        self.log_f.flush()

    def error(self, text):
        with open(os.path.join(self.dir, "errors"), "a") as f:
            f.write(text)
            f.flush()

    def write_atomic(self, name, data):
        path = os.path.join(self.dir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def find_rule(self, kind, text=None):
        """The first rule of this kind that matches.  Every rule whose
        pattern matches counts the line, even when an earlier rule wins, so
        "on#2 RCPT*" means the second RCPT line whatever other rules say."""
        found = None
        for r in self.sc.rules:
            if r.kind != kind:
                continue
            if kind == "on" and not fnmatch.fnmatchcase(text.lower(),
                                                        r.pattern.lower()):
                continue
            r.hits += 1
            if found is None and (r.nth is None or r.hits == r.nth or
                                  (r.plus and r.hits >= r.nth)):
                found = r
        return found

    def save_message(self, txn, body):
        self.msgs += 1
        n = self.msgs
        env = []
        if txn is not None:
            if txn.mail is not None:
                env.append(txn.mail)
            env.extend(txn.rcpts)
        self.write_atomic("env.%d" % n,
                          b"".join(e + b"\n" for e in env))
        self.write_atomic("msg.%d" % n, bytes(body))
        self.log("# saved message %d (%d bytes)" % (n, len(body)))
        return n


class Txn:
    def __init__(self, mail):
        self.mail = mail      # bytes or None
        self.rcpts = []
        self.chunks = bytearray()


class Conn:
    def __init__(self, server, sock, peer, num):
        self.srv = server
        self.sc = server.sc
        self.sock = sock
        self.peer = peer
        self.num = num
        self.buf = bytearray()
        self.tls = False
        self.silent = False
        self.sasl = False
        self.txn = None

    # -- I/O

    def log(self, text):
        self.srv.log(text)

    def recv_more(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ConnEnd("idle timeout")
        if not data:
            raise ConnEnd("client closed")
        self.buf += data

    def read_line(self):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            try:
                self.recv_more()
            except ConnEnd:
                if self.buf:
                    self.log("C: %s" % show(self.buf))
                    self.log("# unterminated line at end of input")
                    self.buf.clear()
                raise

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def write(self, data):
        if not data:
            return
        for part in split_lines(data):
            self.log("S: %s" % show(part))
        sc = self.sc
        if sc.delay_ms:
            time.sleep(sc.delay_ms / 1000.0)
        if sc.trickle_ms:
            step, pause = 1, sc.trickle_ms
        elif sc.split:
            step, pause = sc.split, sc.split_ms
        else:
            step, pause = len(data), 0
        for off in range(0, len(data), step):
            if off:
                time.sleep(pause / 1000.0)
            self.sock.sendall(data[off:off + step])

    # -- replies

    def respond(self, rule, default):
        """Run a rule's steps (or just the default reply).  Returns the
        code of the first line written, or None.  May raise ConnEnd or set
        self.silent."""
        steps = rule.steps if rule else [Step("default")]
        out = bytearray()
        first = None
        end = None
        noclose = False
        for st in steps:
            if st.kind == "send":
                out += st.data
            elif st.kind == "default":
                out += default() if callable(default) else default
            elif st.kind == "noclose":
                noclose = True
            elif st.kind == "sleep":
                if first is None and out:
                    first = bytes(out)
                self.write(bytes(out))
                out.clear()
                time.sleep(st.ms / 1000.0)
            else:
                end = st.kind
                break
        if first is None and out:
            first = bytes(out)
        self.write(bytes(out))
        if end == "close":
            raise ConnEnd("closed by rule")
        if end == "silence":
            self.log("# silence")
            self.silent = True
            return None
        code = reply_code(first) if first else None
        if code == "421" and not noclose:
            raise ConnEnd("closed after 421")
        if code == "334":
            self.sasl = True
        return code

    def ehlo_reply(self):
        sc = self.sc
        if sc.noehlo:
            return b"502 5.5.1 EHLO not implemented\r\n"
        if self.tls and sc.caps_tls is not None:
            caps = list(sc.caps_tls)
        else:
            caps = list(DEFAULT_CAPS if sc.caps is None else sc.caps)
            if sc.starttls and not self.tls and "STARTTLS" not in \
                    [c.upper() for c in caps]:
                caps.append("STARTTLS")
        lines = [sc.hostname] + caps
        out = bytearray()
        for i, l in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            out += ("250" + sep + l + "\r\n").encode("utf-8",
                                                    "surrogateescape")
        return bytes(out)

    def default_reply(self, verb):
        host = self.sc.hostname
        txn = self.txn
        if self.sc.lmtp and verb in ("EHLO", "HELO"):
            return b"500 5.5.1 this is an LMTP server: LHLO\r\n"
        if verb == "EHLO" or (verb == "LHLO" and self.sc.lmtp):
            return self.ehlo_reply()
        if verb in ("SAML", "SOML", "SEND") and self.sc.terminal:
            verb = "MAIL"
        if verb == "HELO":
            return ("250 %s\r\n" % host).encode()
        if verb == "MAIL":
            if txn is not None:
                return b"503 5.5.1 nested MAIL command\r\n"
            return b"250 2.1.0 ok\r\n"
        if verb == "RCPT":
            if txn is None:
                return b"503 5.5.1 need MAIL command\r\n"
            return b"250 2.1.5 ok\r\n"
        if verb == "DATA":
            if txn is None:
                return b"503 5.5.1 need MAIL command\r\n"
            if not txn.rcpts:
                return b"554 5.5.1 no valid recipients\r\n"
            return b"354 go ahead\r\n"
        if verb in ("RSET", "NOOP"):
            return b"250 2.0.0 ok\r\n"
        if verb == "QUIT":
            return b"221 2.0.0 bye\r\n"
        if verb in ("VRFY", "EXPN"):
            return b"252 2.1.5 cannot verify\r\n"
        if verb == "HELP":
            return b"214 2.0.0 see RFC 5321\r\n"
        if verb == "STARTTLS":
            if self.tls:
                return b"503 5.5.1 TLS already active\r\n"
            if not self.srv.starttls_ctx:
                return b"454 4.7.0 TLS not available\r\n"
            return b"220 2.0.0 ready to start TLS\r\n" + self.sc.inject
        return b"500 5.5.2 unknown command\r\n"

    # -- dialogue

    def run(self):
        self.log("# connection %d from %s" % (self.num, self.peer))
        try:
            if self.srv.implicit_ctx:
                self.start_tls(self.srv.implicit_ctx)
            self.respond(self.srv.find_rule("connect"), self.greeting())
            while True:
                line = self.read_line()
                if self.silent:
                    self.log("C: %s" % show(line))
                    continue
                self.handle(line)
        except ConnEnd as e:
            self.log("# end of connection %d: %s" % (self.num, e))
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError) as e:
            self.log("# end of connection %d: %s: %s"
                     % (self.num, type(e).__name__, e))

    def greeting(self):
        lines = self.sc.greeting or \
            [("220 %s ESMTP" % self.sc.hostname).encode()]
        out = bytearray()
        for i, l in enumerate(lines):
            if re.match(rb"\d{3}[ -]", l) or re.fullmatch(rb"\d{3}", l):
                sep = b"-" if i < len(lines) - 1 else b" "
                l = l[:3] + sep + l[4:]
            out += l + b"\r\n"
        return bytes(out)

    def handle(self, line):
        self.log("C: %s" % show(line))
        cmd = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        text = cmd.decode("utf-8", "surrogateescape")
        if self.sasl:
            self.sasl = False
            default = (b"501 5.7.0 authentication canceled\r\n"
                       if text.strip() == "*" else
                       b"535 5.7.8 authentication failed\r\n")
            self.respond(self.srv.find_rule("on", text), default)
            return
        verb = text.split(" ", 1)[0].upper()
        if verb == "BDAT":
            self.bdat(text)
            return
        rule = self.srv.find_rule("on", text)
        code = self.respond(rule, lambda: self.default_reply(verb))
        if self.silent:
            return
        ok = code is not None and code.startswith("2")
        if verb in ("SAML", "SOML", "SEND") and self.sc.terminal:
            verb = "MAIL"
        if verb in ("EHLO", "HELO", "RSET", "LHLO"):
            if ok:
                self.txn = None
        elif verb == "MAIL":
            if ok:
                self.txn = Txn(cmd)
        elif verb == "RCPT":
            if ok:
                if self.txn is None:
                    self.txn = Txn(None)
                self.txn.rcpts.append(cmd)
        elif verb == "DATA":
            if code is not None and code.startswith("3"):
                self.data()
        elif verb == "QUIT":
            raise ConnEnd("QUIT")
        elif verb == "STARTTLS":
            if code == "220" and self.srv.starttls_ctx and not self.tls:
                self.start_tls(self.srv.starttls_ctx)

    def data(self):
        scan = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 0
                break
            i = self.buf.find(b"\r\n.\r\n", scan)
            if i >= 0:
                end = i + 2
                break
            scan = max(0, len(self.buf) - 4)
            try:
                self.recv_more()
            except ConnEnd as e:
                self.log("C: <data %d bytes, unterminated>" % len(self.buf))
                raise ConnEnd("%s during DATA" % e)
        body = bytes(self.buf[:end])
        del self.buf[:end + 3]
        self.log("C: <data %d bytes>" % len(body))
        self.log("C: .\\r\\n")
        txn, self.txn = self.txn, None
        n = self.srv.save_message(txn, body)
        self.respond(self.srv.find_rule("dot"), self.end_reply(txn, n))

    def end_reply(self, txn, n):
        """The reply to the end of a message: one line, or in LMTP one per
        accepted recipient."""
        if not self.sc.lmtp:
            return ("250 2.0.0 queued as %d\r\n" % n).encode()
        out = bytearray()
        for r in txn.rcpts:
            text = r.decode("utf-8", "surrogateescape")
            reply = ("250 2.0.0 delivered (%d)\r\n" % n).encode()
            for pattern, rb in self.sc.lmtp_rcpt:
                if fnmatch.fnmatch(text.upper(), pattern.upper()):
                    reply = rb
                    break
            out += reply
        return bytes(out)

    def bdat(self, text):
        parts = text.split()
        if len(parts) < 2 or not parts[1].isdigit() or len(parts) > 3 or \
                (len(parts) == 3 and parts[2].upper() != "LAST"):
            # The chunk size is unknown, so nothing more can be read.
            self.respond(self.srv.find_rule("on", text),
                         b"501 5.5.4 syntax: BDAT size [LAST]\r\n")
            return
        size = int(parts[1])
        last = len(parts) == 3
        try:
            chunk = self.read_exact(size)
        except ConnEnd as e:
            self.log("C: <data %d of %d bytes, unterminated>"
                     % (len(self.buf), size))
            raise ConnEnd("%s during BDAT" % e)
        self.log("C: <data %d bytes>" % size)
        txn = self.txn
        if txn is None:
            default = b"503 5.5.1 need MAIL command\r\n"
            txn = self.txn = Txn(None)
        elif not txn.rcpts:
            default = b"554 5.5.1 no valid recipients\r\n"
        else:
            default = None
        txn.chunks += chunk
        rule = self.srv.find_rule("on", text)
        if not last:
            if default is None:
                default = ("250 2.0.0 %d bytes received\r\n"
                           % size).encode()
            self.respond(rule, default)
            return
        self.txn = None
        n = self.srv.save_message(txn, txn.chunks)
        if default is None:
            default = self.end_reply(txn, n)
        if rule is None:
            rule = self.srv.find_rule("dot")
        self.respond(rule, default)

    def start_tls(self, ctx):
        if self.buf:
            self.log("# discarding %d plaintext bytes sent before the TLS "
                     "handshake: %s" % (len(self.buf), show(self.buf)))
            self.buf.clear()
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            raise ConnEnd("TLS handshake failed: %s" % e)
        self.tls = True
        self.txn = None
        self.log("# TLS established: %s %s"
                 % (self.sock.version(), self.sock.cipher()[0]))


def finish(sock):
    """Close a plain connection with a FIN rather than a reset: stop
    writing, then drop what the client still sends until it closes too (a
    close with unread input would make the kernel send RST)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and sock.recv(65536):
            pass
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description="scriptable test SMTP server")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--script")
    ap.add_argument("--ipv6", action="store_true")
    ap.add_argument("--listen", help="address to listen on (default "
                    "127.0.0.1, or ::1 with --ipv6)")
    ap.add_argument("--port", type=int, default=0,
                    help="port to listen on (default: chosen by the kernel)")
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--timeout", type=float, default=300,
                    help="idle timeout per connection in seconds")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    os.makedirs(args.dir, exist_ok=True)
    try:
        script = parse_script(args.script) if args.script else Script()
        server = Server(args, script)
    except (ScriptError, OSError, ssl.SSLError) as e:
        sys.stderr.write("smtpd.py: %s\n" % e)
        return 2

    addr = args.listen or ("::1" if args.ipv6 else "127.0.0.1")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    lsock = socket.socket(fam, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, args.port))
    lsock.listen(16)
    server.write_atomic("pid", b"%d\n" % os.getpid())
    server.write_atomic("port", b"%d\n" % lsock.getsockname()[1])

    num = 0
    while True:
        sock, addr = lsock.accept()
        num += 1
        conn = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(args.timeout)
            conn = Conn(server, sock, "%s:%d" % (addr[0], addr[1]), num)
            conn.run()
        except Exception:
            server.error("connection %d:\n%s" % (num, traceback.format_exc()))
            server.log("# end of connection %d: server error (see errors)"
                       % num)
        finally:
            if conn is not None and conn.sock is not sock:
                try:
                    conn.sock.close()
                except OSError:
                    pass
            else:
                finish(sock)
            try:
                sock.close()
            except OSError:
                pass
            server.conns_done += 1
            server.write_atomic("conns", b"%d\n" % server.conns_done)
        if args.once:
            return 0


if __name__ == "__main__":
    sys.exit(main())

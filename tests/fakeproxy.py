#!/usr/bin/env python3
r"""fakeproxy.py - a scriptable proxy for the end-to-end tests of smtpsend's
proxy layer: well-behaved (a working SOCKS4a relay, which dante lacks, or
an HTTP proxy that sends the mail server's greeting in the same write as
its 200) or hostile (truncated, wrong version, garbage, endless headers).

Usage: fakeproxy.py --dir DIR --script FILE

Listens on 127.0.0.1 on a port chosen by the kernel, serves connections
one after another, and runs the whole script for each.  Files in DIR:

  pid        the process id
  port       the port (written atomically once listening)
  received   every byte any client sent, appended as it arrives
  conns      the number of connections that have ended
  errors     tracebacks of unexpected failures (absent if none)

SCRIPT: one step per line, run in order; blank lines and "#" lines are
ignored.  Output is gathered and written in one go before the next read,
sleep, close or relay, so "send" steps and "target-first" in a row make
one write.

  read N          read exactly N bytes from the client
  http-request    read up to and including the empty line after the headers
  socks4-request  read a SOCKS4/4a request (8 bytes, user id, [host]) and
                  remember its target
  socks5-greeting read a SOCKS5 method offer (2 bytes + methods)
  socks5-auth     read an RFC 1929 user/password request
  socks5-request  read a SOCKS5 CONNECT request and remember its target
  connect [PORT]  connect to the remembered target (or 127.0.0.1:PORT)
  target-first    add the target's first bytes (its greeting) to the output
  send TEXT       add TEXT to the output (escapes \r \n \t \0 \\ \xHH and
                  {{STRING*N}} as in smtpd.py)
  sleep MS        write what is gathered, wait MS milliseconds
  relay           write what is gathered, then copy bytes both ways until
                  one side closes
  close           write what is gathered and close the connection
"""

import argparse
import os
import re
import select
import signal
import socket
import struct
import sys
import time
import traceback

_REPEAT_RE = re.compile(r"\{\{(.*?)\*(\d+)\}\}", re.S)
_ESC_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.S)
_ESC_MAP = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def unescape(text):
    text = _REPEAT_RE.sub(lambda m: m.group(1) * int(m.group(2)), text)
    out = bytearray()
    pos = 0
    for m in _ESC_RE.finditer(text):
        out += text[pos:m.start()].encode()
        esc = m.group(1)
        if esc[0] == "x" and len(esc) == 3:
            out.append(int(esc[1:], 16))
        elif esc in _ESC_MAP:
            out += _ESC_MAP[esc]
        else:
            out += m.group(0).encode()
        pos = m.end()
    out += text[pos:].encode()
    return bytes(out)


class Closed(Exception):
    pass


class Conn:
    def __init__(self, args, sock):
        self.dir = args.dir
        self.sock = sock
        self.out = b""
        self.target = None      # (host, port)
        self.tsock = None

    def log(self, data):
        with open(os.path.join(self.dir, "received"), "ab") as f:
            f.write(data)

    def flush(self):
        if self.out:
            self.sock.sendall(self.out)
            self.out = b""

    def read(self, n):
        self.flush()
        buf = b""
        while len(buf) < n:
            d = self.sock.recv(n - len(buf))
            if not d:
                raise Closed()
            self.log(d)
            buf += d
        return buf

    def read_until_nul(self):
        buf = b""
        while not buf.endswith(b"\0"):
            buf += self.read(1)
        return buf[:-1]

    def socks4_request(self):
        vn, cd, port, ip = struct.unpack("!BBH4s", self.read(8))
        self.read_until_nul()                   # user id
        host = socket.inet_ntoa(ip)
        if ip[:3] == b"\0\0\0" and ip[3]:
            host = self.read_until_nul().decode()
        self.target = (host, port)

    def socks5_request(self):
        _, _, _, atyp = self.read(4)
        if atyp == 1:
            host = socket.inet_ntoa(self.read(4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, self.read(16))
        else:
            host = self.read(self.read(1)[0]).decode()
        port = struct.unpack("!H", self.read(2))[0]
        self.target = (host, port)

    def relay(self):
        self.flush()
        socks = [self.sock, self.tsock]
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                return
            for s in r:
                d = s.recv(65536)
                if not d:
                    return
                if s is self.sock:
                    self.log(d)
                    self.tsock.sendall(d)
                else:
                    self.sock.sendall(d)

    def step(self, word, arg):
        if word == "read":
            self.read(int(arg))
        elif word == "http-request":
            buf = b""
            while not buf.endswith(b"\r\n\r\n"):
                buf += self.read(1)
        elif word == "socks4-request":
            self.socks4_request()
        elif word == "socks5-greeting":
            self.read(self.read(2)[1])
        elif word == "socks5-auth":
            self.read(self.read(2)[1])
            self.read(self.read(1)[0])
        elif word == "socks5-request":
            self.socks5_request()
        elif word == "connect":
            addr = ("127.0.0.1", int(arg)) if arg else self.target
            self.tsock = socket.create_connection(addr, timeout=10)
        elif word == "target-first":
            self.out += self.tsock.recv(65536)
        elif word == "send":
            self.out += unescape(arg)
        elif word == "sleep":
            self.flush()
            time.sleep(int(arg) / 1000)
        elif word == "relay":
            self.relay()
        elif word == "close":
            raise Closed()
        else:
            raise ValueError("unknown step %r" % word)

    def run(self, steps):
        try:
            for word, arg in steps:
                self.step(word, arg)
            self.flush()
        except (Closed, ConnectionError):
            pass
        finally:
            try:
                self.flush()
            except OSError:
                pass
            for s in (self.sock, self.tsock):
                if s:
                    s.close()


def parse(path):
    steps = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n").lstrip()
            if not line or line.startswith("#"):
                continue
            word, _, arg = line.partition(" ")
            steps.append((word, arg))
    return steps


def write_atomic(d, name, data):
    tmp = os.path.join(d, "." + name)
    with open(tmp, "w") as f:
        f.write(data)
    os.rename(tmp, os.path.join(d, name))


def main():
    ap = argparse.ArgumentParser(description="scriptable test proxy")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--script", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    steps = parse(args.script)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    write_atomic(args.dir, "pid", "%d\n" % os.getpid())
    write_atomic(args.dir, "port", "%d\n" % lsock.getsockname()[1])
    conns = 0
    while True:
        sock, _ = lsock.accept()
        sock.settimeout(30)
        try:
            Conn(args, sock).run(steps)
        except Exception:
            with open(os.path.join(args.dir, "errors"), "a") as f:
                f.write(traceback.format_exc())
        conns += 1
        write_atomic(args.dir, "conns", "%d\n" % conns)


if __name__ == "__main__":
    sys.exit(main())

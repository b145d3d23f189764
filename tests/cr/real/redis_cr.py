#!/usr/bin/env python3
"""
cr_real_redis: a real redis-server (Debian's) holding 100,000 keys is dumped (killed),
restored, and its own client, redis-cli, reads every key back and writes new ones.

usage: redis_cr.py HACTL [--keys N] [--leave-running] [--bench]

Redis holds what a typical event-loop server holds: an epoll set over a TCP listener and
a pipe of its own, /dev/null, a log file, and three background threads. It listens on a
free loopback port with --save '' --appendonly no (nothing on disk: what comes back
comes from the checkpoint alone), daemonize no.

Checks after restore: the same pid answers PING; DBSIZE is N; redis-cli GETs every key
and the SHA-256 of all answers equals that of the values written; SET/INCR of new keys
work and read back; INFO's run_id is the one from before (same process, not a restart).
--bench prints the dump and restore times and the image size (tests/bench reports them).
Exit 0 pass, 1 fail, 77 skip (redis-server or redis-cli missing).
"""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crreal import Scenario, free_port, kill_and_reap  # noqa: E402

# Its log is set once the scenario has a directory.
t = Scenario("redis", os.devnull)


def value(i):
    return hashlib.sha256(b"v%d" % i).hexdigest()[: 8 + i % 50]


class Redis:
    def __init__(self, port):
        self.port = port

    def conn(self):
        for _ in range(200):
            try:
                return socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                time.sleep(0.05)
        t.fail("redis-server does not accept connections on port %d" % self.port)

    def load(self, n):
        """SET key:i value(i) for i < n, pipelined over one connection (RESP)."""
        s = self.conn()
        batch = 5000
        for b in range(0, n, batch):
            out = []
            for i in range(b, min(n, b + batch)):
                k, v = b"key:%d" % i, value(i).encode()
                out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
            s.sendall(b"".join(out))
            want, got = b"+OK\r\n" * (min(n, b + batch) - b), b""
            while len(got) < len(want):
                chunk = s.recv(65536)
                if not chunk:
                    t.fail("connection closed while loading")
                got += chunk
            if got != want:
                t.fail("unexpected replies while loading: %r" % got[:100])
        s.close()


def cli(port, *args, stdin=None):
    r = subprocess.run(["redis-cli", "-p", str(port)] + list(args), input=stdin, capture_output=True,
                       timeout=300)
    if r.returncode:
        t.fail("redis-cli %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.decode()[:300]))
    return r.stdout


def check_all(port, n):
    """redis-cli reads every key back (MGET, 5000 keys a call); the SHA-256 of its answers
    must equal that of the values written."""
    if cli(port, "DBSIZE").strip() != str(n).encode():
        t.fail("DBSIZE is %r, want %d" % (cli(port, "DBSIZE").strip(), n))
    want, got = hashlib.sha256(), hashlib.sha256()
    for b in range(0, n, 5000):
        keys = ["key:%d" % i for i in range(b, min(n, b + 5000))]
        out = cli(port, "MGET", *keys)
        exp = b"".join(value(i).encode() + b"\n" for i in range(b, min(n, b + 5000)))
        if out != exp:
            lines = out.split(b"\n")
            bad = next((i for i in range(len(keys)) if i >= len(lines) or lines[i] != value(b + i).encode()))
            t.fail("key:%d reads back %r, want %r" % (b + bad, lines[bad] if bad < len(lines) else None,
                                                     value(b + bad)))
        want.update(exp)
        got.update(out)
    if want.digest() != got.digest():
        t.fail("checksum of all values differs")


def writes_work(port, tag):
    for i in range(100):
        cli(port, "SET", "new:%s:%d" % (tag, i), "x%d" % i)
    for i in range(0, 100, 7):
        if cli(port, "GET", "new:%s:%d" % (tag, i)).strip() != b"x%d" % i:
            t.fail("new key new:%s:%d does not read back" % (tag, i))
    if cli(port, "INCRBY", "counter:" + tag, "5").strip() != b"5":
        t.fail("INCRBY on a new key")
    for i in range(100):
        cli(port, "DEL", "new:%s:%d" % (tag, i))
    cli(port, "DEL", "counter:" + tag)


def run_id(port):
    for line in cli(port, "INFO", "server").decode().splitlines():
        if line.startswith("run_id:"):
            return line.split(":", 1)[1].strip()
    t.fail("no run_id in INFO")


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    hactl, n, leave, bench = os.path.abspath(args[0]), 100000, "--leave-running" in args, "--bench" in args
    if "--keys" in args:
        n = int(args[args.index("--keys") + 1])
    server, client = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not client:
        print("SKIP redis: redis-server or redis-cli is not installed (apt-get install redis-server)")
        sys.exit(77)
    t.subreaper()
    top = tempfile.mkdtemp(prefix="hacd-cr-redis-")
    img, t.log = os.path.join(top, "img"), os.path.join(top, "hactl.log")
    port = free_port()
    # close_fds (the default) leaves redis with what it opens itself: fds we inherited
    # (pipes of the test harness) would otherwise be dumped along with it.
    with open(os.path.join(top, "redis.log"), "wb") as out:
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--daemonize", "no", "--dir", top],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=top)
    pid = proc.pid
    try:
        r = Redis(port)
        t0 = time.monotonic()
        r.load(n)
        load_s = time.monotonic() - t0
        check_all(port, n)  # proves the reading side before it matters
        rid = run_id(port)
        dump_s, dump_out = t.hactl(hactl, ["dump", "-t", str(pid), "-D", img] +
                                   (["--leave-running"] if leave else []))
        if leave:
            check_all(port, n)
            writes_work(port, "orig")
            proc.send_signal(signal.SIGKILL)  # the copy restored next needs its pid and port
        if proc.wait(timeout=30) != -signal.SIGKILL:
            t.fail("redis-server did not die of the dump's SIGKILL (status %r)" % proc.returncode)
        size = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img))
        rst_s, _ = t.hactl(hactl, ["restore", "-D", img, "--detach"])
        if cli(port, "PING").strip() != b"PONG":
            t.fail("no PONG after restore")
        if run_id(port) != rid:
            t.fail("run_id changed: not the same process")
        check_all(port, n)
        writes_work(port, "restored")
        if bench:
            print("redis %d keys: load %.2f s, dump %.1f ms, restore %.1f ms, image %.1f MiB" %
                  (n, load_s, dump_s * 1000, rst_s * 1000, size / 1048576.0))
            print("  hactl dump: " + dump_out.strip().splitlines()[-1])
        print("PASS redis (%d keys)" % n, flush=True)
    finally:
        kill_and_reap([pid])
    shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

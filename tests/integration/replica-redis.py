#!/usr/bin/env python3
"""
replica-redis.py: the redis side of the failover scenario (replica-redis.sh), speaking
RESP over a plain socket (no client library needed).

  load PORT N            SET k:0..k:N-1 (pipelined); exits once redis acknowledged all
  write PORT LOG         SET w:0, w:1, ... one at a time until killed; after each +OK,
                         appends "I ACK_US" (CLOCK_REALTIME microseconds) to LOG
  check PORT N LOG CUT   every k:* and every w:I acknowledged before CUT (microseconds)
                         must be there: prints what was found and lost, exit 1 if any
                         key acknowledged before CUT is missing
  started DB GEN         started_us of generation GEN in catalog DB (read-only)
  ping PORT              exit 0 once redis answers PONG (one try)
  waitping PORT SECONDS  try every 5 ms; prints when PONG came (CLOCK_REALTIME
                         microseconds), exit 1 if none within SECONDS
"""
import socket
import sqlite3
import sys
import time


def conn(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self):
        ln = self.line()
        if ln[:1] in (b"+", b":"):
            return ln[1:]
        if ln[:1] == b"-":
            raise RuntimeError(ln.decode())
        raise RuntimeError("unexpected reply %r" % ln)


def load(port, n):
    s = conn(port)
    r = Reader(s)
    batch = 5000
    for base in range(0, n, batch):
        s.sendall(b"".join(cmd("SET", "k:%d" % i, "v%d" % i)
                           for i in range(base, min(n, base + batch))))
        for _ in range(base, min(n, base + batch)):
            r.reply()


def write(port, log):
    s = conn(port)
    r = Reader(s)
    with open(log, "ab", buffering=0) as f:
        i = 0
        while True:
            s.sendall(cmd("SET", "w:%d" % i, "x%d" % i))
            r.reply()
            f.write(b"%d %d\n" % (i, time.time_ns() // 1000))
            i += 1


def exists_all(s, r, keys):
    found = 0
    for base in range(0, len(keys), 2000):
        part = keys[base:base + 2000]
        s.sendall(b"".join(cmd("EXISTS", k) for k in part))
        found += sum(int(r.reply()) for _ in part)
    return found


def check(port, n, log, cut):
    acked = []
    for ln in open(log, "rb"):
        f = ln.split()
        if len(f) == 2 and ln.endswith(b"\n"):	# a kill -9 can cut the last line
            acked.append((int(f[0]), int(f[1])))
    before = ["w:%d" % i for i, t in acked if t < cut]
    after = ["w:%d" % i for i, t in acked if t >= cut]
    s = conn(port)
    r = Reader(s)
    k = exists_all(s, r, ["k:%d" % i for i in range(n)])
    b = exists_all(s, r, before)
    a = exists_all(s, r, after)
    print("keys: preloaded %d/%d, written before the generation's freeze %d/%d, "
          "acknowledged after it %d (of them %d present: lost with node A)"
          % (k, n, b, len(before), len(after), a), flush=True)
    return 0 if k == n and b == len(before) and before else 1


def started(db, gen):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    row = c.execute("SELECT started_us FROM generation WHERE id = ?", (gen,)).fetchone()
    print(row[0])


def ping(port):
    try:
        s = conn(port, 1.0)
        s.sendall(cmd("PING"))
        return 0 if Reader(s).reply() == b"PONG" else 1
    except (OSError, EOFError, RuntimeError):
        return 1


def waitping(port, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            s = conn(port, 0.2)
            s.sendall(cmd("PING"))
            if Reader(s).reply() == b"PONG":
                print(time.time_ns() // 1000)
                return 0
        except (OSError, EOFError, RuntimeError):
            pass
        time.sleep(0.005)
    return 1


def main(a):
    if a[0] == "load":
        load(int(a[1]), int(a[2]))
    elif a[0] == "write":
        write(int(a[1]), a[2])
    elif a[0] == "check":
        return check(int(a[1]), int(a[2]), a[3], int(a[4]))
    elif a[0] == "started":
        started(a[1], int(a[2]))
    elif a[0] == "ping":
        return ping(int(a[1]))
    elif a[0] == "waitping":
        return waitping(int(a[1]), float(a[2]))
    else:
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

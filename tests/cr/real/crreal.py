"""
Helpers shared by the real-service scenarios (tests/cr/real/*_cr.py): the test is the
subreaper of what it starts (PID 1 here reaps late), hactl runs are logged, and every
child is reaped at the end.
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


class Scenario:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def fail(self, msg):
        print("FAIL %s: %s" % (self.name, msg), flush=True)
        sys.exit(1)

    def subreaper(self):
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0):
            self.fail("PR_SET_CHILD_SUBREAPER")

    def hactl(self, hactl, args):
        """Runs hactl, logs its output; returns (seconds, output); fails on exit != 0."""
        t0 = time.monotonic()
        r = subprocess.run([hactl] + args, capture_output=True, timeout=300)
        dt = time.monotonic() - t0
        with open(self.log, "ab") as f:
            f.write(b"$ hactl " + " ".join(args).encode() + b"\n" + r.stdout + r.stderr)
        if r.returncode:
            self.fail("hactl %s: exit %d: %s" % (args[0], r.returncode, (r.stdout + r.stderr).decode()[-800:]))
        return dt, (r.stdout + r.stderr).decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(pid):
    """The pids whose parent is pid, from /proc (a process may exit while we look)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def kill_and_reap(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        while True:
            os.waitpid(-1, 0)
    except ChildProcessError:
        pass

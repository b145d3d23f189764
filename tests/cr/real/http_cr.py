#!/usr/bin/env python3
"""
cr_real_http: `python3 -m http.server` (the distribution's python) serving a directory
is dumped (killed), restored, and keeps serving: curl (or urllib when curl is missing)
fetches a page and a 1 MiB file before and after, byte for byte, from the same pid.

usage: http_cr.py HACTL PYTHON [--leave-running]

The server holds a listening TCP socket and polls it (selectors); what comes back is
the interpreter's whole state, including the socket with its address and options.
Exit 0 pass, 1 fail.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crreal import Scenario, free_port, kill_and_reap  # noqa: E402

# Its log is set once the scenario has a directory.
t = Scenario("http", os.devnull)


def fetch(port, name):
    url = "http://127.0.0.1:%d/%s" % (port, name)
    curl = shutil.which("curl")
    for _ in range(100):
        try:
            if curl:
                r = subprocess.run([curl, "-sf", "--max-time", "10", url], capture_output=True, timeout=20)
                if r.returncode == 0:
                    return r.stdout
            else:
                with urllib.request.urlopen(url, timeout=10) as f:
                    return f.read()
        except OSError:
            pass
        time.sleep(0.05)
    t.fail("cannot fetch %s" % url)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    path, python, leave = os.path.abspath(sys.argv[1]), sys.argv[2], "--leave-running" in sys.argv
    t.subreaper()
    top = tempfile.mkdtemp(prefix="hacd-cr-http-")
    www, img, t.log = os.path.join(top, "www"), os.path.join(top, "img"), os.path.join(top, "hactl.log")
    os.mkdir(www)
    page = b"<html><body>hacd was here</body></html>\n"
    big = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(32768))
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(page)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(big)
    port = free_port()
    with open(os.path.join(top, "server.log"), "wb") as out:
        proc = subprocess.Popen([python, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", www], stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=top)
    pid = proc.pid
    try:
        if fetch(port, "index.html") != page or fetch(port, "big.bin") != big:
            t.fail("the server does not serve the files before the dump")
        t.hactl(path, ["dump", "-t", str(pid), "-D", img] + (["--leave-running"] if leave else []))
        if leave:
            if fetch(port, "index.html") != page:
                t.fail("the original stopped serving after dump --leave-running")
            proc.send_signal(signal.SIGKILL)  # the copy restored next needs its pid and port
        if proc.wait(timeout=30) != -signal.SIGKILL:
            t.fail("the server did not die of SIGKILL (status %r)" % proc.returncode)
        t.hactl(path, ["restore", "-D", img, "--detach"])
        if not os.path.exists("/proc/%d" % pid):
            t.fail("no process %d after restore" % pid)
        for _ in range(3):
            if fetch(port, "index.html") != page:
                t.fail("index.html differs after restore")
            if fetch(port, "big.bin") != big:
                t.fail("big.bin differs after restore")
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if b"http.server" not in f.read():
                t.fail("pid %d is not the server" % pid)
        print("PASS http (pid %d, port %d)" % (pid, port), flush=True)
    finally:
        kill_and_reap([pid])
    shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

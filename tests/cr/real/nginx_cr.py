#!/usr/bin/env python3
"""
cr_real_nginx: Debian's nginx, a master and two workers (`daemon off; master_process
on;`, its own prefix and config in a temp dir, a loopback port), serving a static page,
is dumped (killed), restored, and keeps serving: curl gets the page from the same
master pid and the same workers. Then SIGHUP: the restored master starts two new
workers (over new socketpairs, telling the others over the restored ones), the old
ones leave, and curl gets the page again from the new workers.

usage: nginx_cr.py HACTL [--leave-running]

nginx holds what a pre-forking server holds: a TCP listener shared by the tree,
master<->worker channels (unix stream socketpairs, one per worker, each end in several
processes), epoll sets in the workers, log files, workers running as another user.
Exit 0 pass, 1 fail, 77 skip (nginx or curl missing).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crreal import Scenario, children, free_port, kill_and_reap  # noqa: E402

CONF = """daemon off;
master_process on;
worker_processes 2;
pid {top}/nginx.pid;
error_log {top}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {top}/access.log;
    client_body_temp_path {top}/tmp/body;
    proxy_temp_path {top}/tmp/proxy;
    fastcgi_temp_path {top}/tmp/fastcgi;
    uwsgi_temp_path {top}/tmp/uwsgi;
    scgi_temp_path {top}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {top}/www;
        location / {{ }}
    }}
}}
"""
PAGE = b"<html><body>hacd checkpointed this nginx</body></html>\n"


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    hactl, leave = os.path.abspath(args[0]), "--leave-running" in args
    nginx, curl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("curl")
    if not os.access(nginx, os.X_OK) or not curl:
        print("SKIP nginx: nginx or curl is not installed (apt-get install nginx-light curl)")
        sys.exit(77)
    top = tempfile.mkdtemp(prefix="hacd-cr-nginx-")
    os.chmod(top, 0o755)  # the workers run as nobody: they read www/ below it
    t = Scenario("nginx", os.path.join(top, "hactl.log"))
    t.subreaper()
    img, port = os.path.join(top, "img"), free_port()
    for d in ("www", "tmp"):
        os.mkdir(os.path.join(top, d))
    with open(os.path.join(top, "www", "index.html"), "wb") as f:
        f.write(PAGE)
    with open(os.path.join(top, "nginx.conf"), "w") as f:
        f.write(CONF.format(top=top, port=port))

    def get(what):
        r = subprocess.run([curl, "-sS", "--max-time", "20", "http://127.0.0.1:%d/" % port],
                           capture_output=True, timeout=60)
        if r.returncode or r.stdout != PAGE:
            t.fail("%s: curl exit %d, %r %s" % (what, r.returncode, r.stdout[:200], r.stderr.decode()[:300]))

    def workers(master, n, what):
        for _ in range(600):
            w = children(master)
            if len(w) == n:
                return w
            time.sleep(0.05)
        t.fail("%s: master %d has workers %r, want %d" % (what, master, children(master), n))

    with open(os.path.join(top, "nginx.out"), "wb") as out:
        proc = subprocess.Popen([nginx, "-p", top, "-c", os.path.join(top, "nginx.conf"), "-e",
                                 os.path.join(top, "error.log")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=top)
    pid = proc.pid
    try:
        old = workers(pid, 2, "start")
        for _ in range(200):
            if subprocess.run([curl, "-s", "-o", "/dev/null", "http://127.0.0.1:%d/" % port]).returncode == 0:
                break
            time.sleep(0.05)
        get("before the dump")
        dump_s, dump_out = t.hactl(hactl, ["dump", "-t", str(pid), "-D", img] +
                                   (["--leave-running"] if leave else []))
        if leave:
            get("left running")
            proc.send_signal(signal.SIGKILL)  # the copy restored next needs its pids and port
            for w in old:
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if proc.wait(timeout=30) != -signal.SIGKILL:
            t.fail("nginx did not die of SIGKILL (status %r)" % proc.returncode)
        # The workers were reparented to us (subreaper): reap them, their pids are needed.
        kill_and_reap(old)
        size = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img))
        rst_s, _ = t.hactl(hactl, ["restore", "-D", img, "--detach"])
        if workers(pid, 2, "restored") != old:
            t.fail("restored workers %r, were %r" % (children(pid), old))
        for i in range(5):
            get("after restore, request %d" % i)
        os.kill(pid, signal.SIGHUP)
        for _ in range(600):
            now = children(pid)
            if len(now) == 2 and not set(now) & set(old):
                break
            time.sleep(0.05)
        else:
            t.fail("after SIGHUP: workers %r (old %r): no reload" % (children(pid), old))
        for i in range(5):
            get("after the reload, request %d" % i)
        print("nginx: dump %.1f ms, restore %.1f ms, image %.1f MiB; hactl dump: %s" %
              (dump_s * 1000, rst_s * 1000, size / 1048576.0, dump_out.strip().splitlines()[-1]))
        print("PASS nginx (master %d, workers %r, then %r)" % (pid, old, children(pid)), flush=True)
    finally:
        kill_and_reap([pid] + children(pid))
    shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

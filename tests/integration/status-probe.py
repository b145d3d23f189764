#!/usr/bin/env python3
# status-probe.py STOP OUT NAME=SOCKET...: hacd's status latency as a client sees it.
#
# One long-lived process (timing a fork and exec of hactl under load measures the
# scheduler, not hacd) sends a status request on each control socket every 100 ms,
# timed from connect to reply, until the file STOP exists; then writes the latencies
# in microseconds, one a line, to OUT.NAME for each socket.
import os
import socket
import sys
import time

stop, out = sys.argv[1:3]
socks = [a.split("=", 1) for a in sys.argv[3:]]
req = bytes([0x08, 1, 0x10, 1])  # CtlRequest{version: 1, type: STATUS}
lat = [[] for _ in socks]
while not os.path.exists(stop):
    for i, (_, path) in enumerate(socks):
        t0 = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(10)
        s.connect(path)
        s.send(req)
        if len(s.recv(1 << 20)) < 2:
            sys.exit("status %s: empty reply" % path)
        s.close()
        lat[i].append(int((time.monotonic() - t0) * 1e6))
    time.sleep(0.1)
for (name, _), v in zip(socks, lat):
    with open("%s.%s" % (out, name), "w") as f:
        f.write("\n".join(map(str, v)) + "\n")

#!/usr/bin/python3
# heap.py PORT [MIB]: a service with a sizeable heap for hacd's incremental tests.
# MIB (default 64) MiB of random bytes (incompressible: what the page store keeps of it
# is measurable), changed only on request, so that a checkpoint taken between requests
# holds exactly one known state. A client on 127.0.0.1:PORT sends one line, gets one:
#   touch N -> VERSION   rewrites N pages (4 KiB each) spread over the heap
#   sum     -> VERSION:SHA256 of the whole heap
# One connection at a time, closed after the reply (an established connection is closed
# by policy at restore; the listening socket comes back).
import hashlib
import os
import select
import socket
import sys

PAGE = 4096
heap = bytearray(os.urandom((int(sys.argv[2]) if len(sys.argv) > 2 else 64) << 20))
npages = len(heap) // PAGE
version = 0
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
print("listening", flush=True)
while True:
    ready, _, _ = select.select([srv], [], [], 0.2)
    if not ready:
        continue
    c, _ = srv.accept()
    c.settimeout(5)
    try:
        line = b""
        while not line.endswith(b"\n"):
            b = c.recv(4096)
            if not b:
                break
            line += b
        w = line.decode().split()
        if len(w) == 2 and w[0] == "touch" and w[1].isdigit():
            for i in range(int(w[1])):
                p = (version * 7919 + i * 104729) % npages
                heap[p * PAGE:(p + 1) * PAGE] = os.urandom(PAGE)
            version += 1
            out = str(version)
        elif w == ["sum"]:
            out = "%d:%s" % (version, hashlib.sha256(heap).hexdigest())
        else:
            out = "error"
        c.sendall((out + "\n").encode())
    except OSError:
        pass
    finally:
        c.close()

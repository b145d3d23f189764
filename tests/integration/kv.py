#!/usr/bin/python3
# kv.py PORT: a stateful python service for hacd's tests. Its state (a dict, and a
# tick counter that keeps its memory changing) lives only in memory; a client on
# 127.0.0.1:PORT sends one line and gets one line back:
#   set KEY VALUE -> ok        get KEY -> VALUE or (nil)        dump -> JSON of the dict
# One connection at a time, closed after the reply: an established connection is
# closed by policy at restore, a listening socket comes back.
# kv.py client PORT LINE: the tests' client: one request, the answer on stdout.
import json
import select
import socket
import sys

if len(sys.argv) == 4 and sys.argv[1] == "client":
    c = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    c.sendall((sys.argv[3] + "\n").encode())
    out = b""
    while not out.endswith(b"\n"):
        b = c.recv(65536)
        if not b:
            break
        out += b
    print(out.decode().strip())
    sys.exit(0)

data, ticks = {}, 0
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
print("listening", flush=True)
while True:
    ready, _, _ = select.select([srv], [], [], 0.05)
    ticks += 1
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
        if len(w) == 3 and w[0] == "set":
            data[w[1]] = w[2]
            out = "ok"
        elif len(w) == 2 and w[0] == "get":
            out = data.get(w[1], "(nil)")
        elif w == ["dump"]:
            out = json.dumps(data, sort_keys=True)
        else:
            out = "error"
        c.sendall((out + "\n").encode())
    except OSError:
        pass
    c.close()

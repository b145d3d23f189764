#!/usr/bin/python3
# kv.py PORT: a stateful python service for hacd's tests. Its state (a dict, and a
# tick counter that keeps its memory changing) lives only in memory; a client on
# 127.0.0.1:PORT sends one line and gets one line back (linesrv.py):
#   set KEY VALUE -> ok        get KEY -> VALUE or (nil)        dump -> JSON of the dict
# kv.py client PORT LINE: the tests' client: one request, the answer on stdout.
import json
import sys

# Nothing written into the source tree (__pycache__) by the import below.
sys.dont_write_bytecode = True
import linesrv  # noqa: E402

if len(sys.argv) == 4 and sys.argv[1] == "client":
    print(linesrv.request(int(sys.argv[2]), sys.argv[3], 10))
    sys.exit(0)

data, ticks = {}, 0


def tick():
    global ticks
    ticks += 1


def answer(w):
    if len(w) == 3 and w[0] == "set":
        data[w[1]] = w[2]
        return "ok"
    if len(w) == 2 and w[0] == "get":
        return data.get(w[1], "(nil)")
    if w == ["dump"]:
        return json.dumps(data, sort_keys=True)
    return "error"


linesrv.serve(int(sys.argv[1]), answer, 0.05, tick)

#!/usr/bin/python3
# heap.py PORT [MIB]: a service with a sizeable heap for hacd's incremental tests.
# MIB (default 64) MiB of random bytes (incompressible: what the page store keeps of it
# is measurable), changed only on request, so that a checkpoint taken between requests
# holds exactly one known state. A client on 127.0.0.1:PORT sends one line, gets one
# (linesrv.py):
#   touch N -> VERSION   rewrites N pages (4 KiB each) spread over the heap
#   sum     -> VERSION:SHA256 of the whole heap
import hashlib
import os
import sys

# Nothing written into the source tree (__pycache__) by the import below.
sys.dont_write_bytecode = True
import linesrv  # noqa: E402

PAGE = 4096
heap = bytearray(os.urandom((int(sys.argv[2]) if len(sys.argv) > 2 else 64) << 20))
npages = len(heap) // PAGE
version = 0


def answer(w):
    global version
    if len(w) == 2 and w[0] == "touch" and w[1].isdigit():
        for i in range(int(w[1])):
            p = (version * 7919 + i * 104729) % npages
            heap[p * PAGE:(p + 1) * PAGE] = os.urandom(PAGE)
        version += 1
        return str(version)
    if w == ["sum"]:
        return "%d:%s" % (version, hashlib.sha256(heap).hexdigest())
    return "error"


linesrv.serve(int(sys.argv[1]), answer, 0.2)

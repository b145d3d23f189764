#!/usr/bin/env python3
"""A real program for the checkpoint/restore tests: a SHA-256 chain whose state lives in
the interpreter's memory (the current digest, a list of one byte per step, the step
count) and an open progress file.

Under cr_real: writes "STEP DIGEST" to $HA_DIR/progress every 1000 steps, says ready on
$HA_READY_FD after the first, stops once $HA_DIR/stop exists and writes
"STEPS LISTLEN DIGEST LISTSUM" to $HA_DIR/result. `sha_chain.py --fresh N` prints what
an uninterrupted run of N steps must end with.
"""
import hashlib
import os
import sys
import time

SEED = b"hacd"


def fresh(n):
    h, total = SEED, 0
    for _ in range(n):
        h = hashlib.sha256(h).digest()
        total += h[0]
    return f"{n} {n} {h.hex()} {total}"


def run():
    d = os.environ["HA_DIR"]
    ready_fd = int(os.environ["HA_READY_FD"])
    stop = os.path.join(d, "stop")
    progress = open(os.path.join(d, "progress"), "a")
    h, lst, i = SEED, [], 0
    while True:
        h = hashlib.sha256(h).digest()
        lst.append(h[0])
        i += 1
        if i % 1000 == 0:
            progress.write(f"{i} {h.hex()}\n")
            progress.flush()
            if ready_fd >= 0:
                os.write(ready_fd, b"ready pid=%d\n" % os.getpid())
                os.close(ready_fd)
                ready_fd = -1
            if os.path.exists(stop):
                break
            time.sleep(0.005)
    tmp = os.path.join(d, "result.tmp")
    with open(tmp, "w") as f:
        f.write(f"{i} {len(lst)} {h.hex()} {sum(lst)}\n")
    os.rename(tmp, os.path.join(d, "result"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--fresh":
        print(fresh(int(sys.argv[2])))
        sys.exit(0)
    sys.exit(run())

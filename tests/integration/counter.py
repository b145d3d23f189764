#!/usr/bin/python3
# A stateful service for hacd's tests: its state is only in memory (n), and it prints
# each value, so a restore shows where it resumed.
import time

n = 0
while True:
    n += 1
    print(n, flush=True)
    time.sleep(0.05)

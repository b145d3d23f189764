#!/usr/bin/env python3
"""hactl check: text and --json agree, and the exit code follows the required items.

Usage: check_hactl.py HACTL. Holds for any user and kernel: it checks consistency, not
which features are present (kerndat_hactl_check_json wants exit 0 as root).
"""
import json
import subprocess
import sys

API_VERSION = 1
ITEMS = ["dirty-tracking", "userfaultfd", "clone3-set-tid", "pr-set-mm-map", "pidfd-getfd",
         "cgroup2", "cgroup2-freezer", "tcp-repair", "time-namespace", "rseq", "vdso",
         "xstate", "cap-sys-resource"]
REQUIRED = {"dirty-tracking", "clone3-set-tid", "pr-set-mm-map", "rseq", "vdso", "xstate"}


def fail(msg):
    print("check_hactl: " + msg, file=sys.stderr)
    sys.exit(1)


def run(*args):
    return subprocess.run([sys.argv[1], *args], capture_output=True, text=True, timeout=60)


def check_json(p):
    doc = json.loads(p.stdout)
    if doc.get("api_version") != API_VERSION:
        fail("api_version %r" % doc.get("api_version"))
    names = [it["name"] for it in doc["items"]]
    if names != ITEMS:
        fail("items %r" % names)
    for it in doc["items"]:
        if it["required"] != (it["name"] in REQUIRED):
            fail("%s: required is %r" % (it["name"], it["required"]))
        if it["ok"] != (it["errno"] is None) or not it["value"]:
            fail("%s: ok/errno/value disagree: %r" % (it["name"], it))
    missing = [it["name"] for it in doc["items"] if it["required"] and not it["ok"]]
    if doc["missing"] != missing or doc["ok"] != (not missing):
        fail("missing %r, ok %r; items say %r" % (doc["missing"], doc["ok"], missing))
    if (p.returncode == 0) != (not missing):
        fail("exit %d with missing %r" % (p.returncode, missing))
    if missing and ("missing: " + ", ".join(missing)) not in p.stderr:
        fail("stderr does not name %r: %r" % (missing, p.stderr))
    dirty = doc["items"][0]
    if not dirty["ok"] or dirty["value"] != doc["dirty_method"]:
        fail("dirty-tracking %r vs %r" % (dirty, doc["dirty_method"]))
    return doc


def check_text(p, doc):
    lines = p.stdout.splitlines()
    if [ln.split()[0] for ln in lines] != ITEMS:
        fail("text lines %r" % lines)
    for ln, it in zip(lines, doc["items"]):
        if ln.split()[1] != it["value"].split()[0]:
            fail("text %r vs json value %r" % (ln, it["value"]))
    if p.returncode != (0 if doc["ok"] else 1):
        fail("text exit %d, json ok %r" % (p.returncode, doc["ok"]))


def main():
    pj = run("check", "--json")
    doc = check_json(pj)
    check_text(run("check"), doc)
    if run("check", "--bogus").returncode != 64:
        fail("usage error must exit 64")
    cap = doc["items"][ITEMS.index("cap-sys-resource")]
    if not cap["ok"] and "prlimit" not in cap["detail"]:
        fail("cap-sys-resource missing without saying what that means: %r" % cap)


if __name__ == "__main__":
    main()

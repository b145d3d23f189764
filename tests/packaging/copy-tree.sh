#!/bin/sh
# copy-tree.sh SRC DEST: the source tree as a package build sees it, in DEST (made
# here): in a git checkout what git tracks plus what is not committed yet (no build
# directories), else every file but build*/ and obj-*/. Used by deb.sh and rpm-build.sh.
set -eu
SRC=$1
DEST=$2
mkdir -p "$DEST"
if git -C "$SRC" rev-parse --git-dir > /dev/null 2>&1; then
	git -C "$SRC" ls-files -co --exclude-standard -z |
		(cd "$SRC" && xargs -0 cp --parents -t "$DEST" 2>/dev/null) || true
else
	(cd "$SRC" && tar cf - --exclude='./build*' --exclude=./obj-* .) | tar xf - -C "$DEST"
fi
[ -f "$DEST/CMakeLists.txt" ] || { echo "copy-tree.sh: copying $SRC to $DEST failed" >&2; exit 1; }

#!/bin/sh
# rootfs.sh BINARY DIR: lay out the agent's runtime file system in DIR — the
# binary as DIR/usr/bin/aion-agent and exactly the shared objects that ldd
# says it loads (the dynamic loader included), at the same paths. Used by
# deploy/Containerfile's build stage, and by `make deploy-check` and
# tests/integration/test_deploy.py, which run the agent from such a tree.
set -eu
[ $# -eq 2 ] || { echo "usage: rootfs.sh BINARY DIR" >&2; exit 2; }
bin=$1
root=$2
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "rootfs.sh: ldd lists no shared objects for $bin (a static binary needs no rootfs.sh)" >&2; exit 1; }
mkdir -p "$root/usr/bin" "$root/etc/aion"
install -m 0755 "$bin" "$root/usr/bin/aion-agent"
for lib in $libs; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done

#!/bin/sh
# deploy-check.sh BUILD: every shipped file under deploy/ checked by a real
# tool, offline (`make deploy-check`, part of `make test`). BUILD holds the
# agent (BUILD/aion-agent) and gets BUILD/deploy-check/ (npm packages,
# rendered configs, the image tree).
# deploy-check.sh BUILD gen: rewrite the PrometheusRule from the rule files
# (`make deploy-gen`).
set -eu
build=${1:?usage: deploy-check.sh BUILD [gen]}
mode=${2:-check}
out=$build/deploy-check
agent=$build/aion-agent
cd "$(dirname "$0")/../.."
mkdir -p "$out"
need() { command -v "$1" >/dev/null || { echo "deploy-check: $1 is missing ($2)"; exit 1; }; }
need promtool "Debian package prometheus, make deps"
need systemd-analyze "Debian package systemd, make deps"
need node "Node.js, Debian package nodejs, make deps"
need npm "npm comes with the machine's Node.js"
need setpriv "Debian package util-linux"

# the packages pinned by deploy/check/package-lock.json, installed once
if ! cmp -s deploy/check/package-lock.json "$out/package-lock.json" || [ ! -d "$out/node_modules" ]; then
	rm -rf "$out/node_modules"
	cp deploy/check/package.json deploy/check/package-lock.json "$out/"
	npm ci --prefix "$out" --no-audit --no-fund --loglevel=error >"$out/npm.log" 2>&1 ||
		{ cat "$out/npm.log"; echo "deploy-check: npm ci of deploy/check/package-lock.json failed"; exit 1; }
fi
if [ "$mode" = gen ]; then
	exec node deploy/check/validate.mjs --modules "$out/node_modules" --gen-prometheusrule
fi
[ -x "$agent" ] || { echo "deploy-check: $agent is missing (make all)"; exit 1; }

echo "== promtool"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.test.yml

echo "== Kubernetes manifests (OpenAPI and CRD schemas, offline)"
rm -rf "$out/conf" && mkdir -p "$out/conf"
node deploy/check/validate.mjs --modules "$out/node_modules" --out "$out/conf"

echo "== config files, by the agent's own parser"
# Unprivileged, the agent parses its config and stops at the privilege
# check: exit 1 with a message that does not name the file means the file
# was accepted (a config error exits 2 naming FILE:LINE).
# (A copy in a folder of its own under /tmp: the user nobody may not reach
# the work tree.)
tmp=$(mktemp -d /tmp/aion-deploy-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
cp "$agent" "$tmp/aion-agent"
# First a file with an unknown setting, which must be refused: proof that
# the agent parses the file before it looks at its privileges.
printf 'no_such_setting = 1\n[target]\nall = 1\n' >"$tmp/check.conf" && chmod 0644 "$tmp/check.conf"
rc=0
msg=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/aion-agent" --config "$tmp/check.conf" 2>&1) || rc=$?
case "$rc:$msg" in
2:*check.conf:1:*) echo "a bad setting is refused: $msg" ;;
*) echo "deploy-check: a config with an unknown setting was not refused with exit 2 and FILE:LINE (rc $rc: $msg): this check cannot work"; exit 1 ;;
esac
for f in "$out"/conf/* deploy/systemd/aion.conf; do
	cp "$f" "$tmp/check.conf" && chmod 0644 "$tmp/check.conf"
	rc=0
	msg=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/aion-agent" --config "$tmp/check.conf" 2>&1) || rc=$?
	case "$rc:$msg" in
	*check.conf*|0:*|2:*) echo "deploy-check: $f: rc $rc: $msg"; exit 1 ;;
	1:*) echo "$f: accepted (then: $(echo "$msg" | head -1))" ;;
	*) echo "deploy-check: $f: rc $rc: $msg"; exit 1 ;;
	esac
done

echo "== systemd unit"
# The unit's ExecStart names the installed path; verify a copy that names
# the built binary (systemd-analyze checks that it is executable). Any
# message (an unknown key is only a warning) fails.
sed "s#/usr/local/bin/aion-agent#$(realpath "$agent")#" deploy/systemd/aion-agent.service >"$out/aion-agent.service"
msg=$(systemd-analyze verify "$out/aion-agent.service" 2>&1) || { echo "$msg"; echo "deploy-check: systemd-analyze verify failed"; exit 1; }
[ -z "$msg" ] || { echo "$msg"; echo "deploy-check: systemd-analyze verify printed the above"; exit 1; }
echo "deploy/systemd/aion-agent.service: systemd-analyze verify: no message"

echo "== container image (deploy/Containerfile; no registry here to build it)"
# Its build-stage COPY sources exist, its packages exist in Debian 12, and
# the runtime stage's tree (rootfs.sh) is the agent plus exactly the shared
# objects ldd lists, and runs from a chroot.
for src in $(awk '$1 == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) print $i }' deploy/Containerfile); do
	[ -e "$src" ] || { echo "deploy-check: deploy/Containerfile copies $src, which does not exist"; exit 1; }
done
pkgs=$(sed -n '/apt-get install/,/rm -rf/p' deploy/Containerfile | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
	grep -vE '^(apt-get|install|rm|update|y|no|rf|var)$' || true)
for p in $pkgs; do
	apt-cache show "$p" >/dev/null 2>&1 || { echo "deploy-check: deploy/Containerfile installs $p, unknown to apt (apt-get update?)"; exit 1; }
done
echo "deploy/Containerfile: COPY sources exist; packages known to apt: $(echo $pkgs)"
rm -rf "$out/rootfs"
sh deploy/container/rootfs.sh "$agent" "$out/rootfs"
want=$( (echo usr/bin/aion-agent; ldd "$agent" | awk '$2 == "=>" && $3 ~ /^\// { print substr($3, 2) } $1 ~ /^\// { print substr($1, 2) }') | sort)
got=$(cd "$out/rootfs" && find . -type f | sed 's#^\./##' | sort)
[ "$want" = "$got" ] || { echo "deploy-check: image tree differs from the agent + ldd's list:"; echo "want: $want"; echo "got: $got"; exit 1; }
v=$(chroot "$out/rootfs" /usr/bin/aion-agent --version) || { echo "deploy-check: the agent does not run from the image tree"; exit 1; }
echo "image tree: $(echo "$got" | wc -l) files (the agent and ldd's $(($(echo "$got" | wc -l) - 1)) shared objects); chroot runs: $v"

echo "deploy-check: all passed"

#!/usr/bin/python3
"""Seed corpora for the fuzz harnesses of agent/ modules, from real inputs.

  /usr/bin/python3 tests/fuzz/seeds.py DIR

writes DIR/corpus_NAME/ for NAME in route, config, config_file, identity,
procinfo, expo and tlsplace (the input format of each is described at the top of
tests/fuzz/fuzz_NAME.c):
  route     the request targets of the real captures (tests/unit/captures)
  config    README.md's config file example, whole and line by line (as
            settings, AION_* values and selector values); config_file: whole
  identity  /proc/*/cgroup of this machine's processes, the cgroup path
            formats README.md's Identity section lists, kubelet log names
  procinfo  /proc/*/stat of this machine's processes, their exe links and
            comm
  expo      README.md's listen values, Accept-Encoding values of real
            clients (curl, browsers, Prometheus)
  tlsplace  the smallest ELF files of this machine's library directories
            (the Makefile adds tiny OpenSSL- and GnuTLS-shaped libraries)
Stdlib only; files already there are kept (libFuzzer adds its own).
"""
import glob
import hashlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CID = "3f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f10"
UID = "0b9a8f7e-6d5c-4b3a-2f10-3f1c2e9d8b7a"


def put(d, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path, n=65536):
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return None


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def route(d):
    for p in glob.glob(os.path.join(ROOT, "tests/unit/captures/req_*.bin")):
        for m in re.finditer(rb"(?m)^[A-Z]+ (\S+) HTTP/1\.[01]\r$", read(p)):
            t = m.group(1)
            put(d, b"\x80" + t)        # whole, out buffer of 64
            put(d, b"\x01" + t[:64])   # cut as the kernel cuts it
    for t in (b"http://example.com:8080/users/42?x=1", b"*", b"/a/" + UID.encode() + b"/b",
              b"/s/" + CID.encode()[:40], b"/v1/tok_9f8a7b6c5d4e3f2a1b0c/x#frag"):
        put(d, b"\x20" + t)


def config(d):
    text = readme()
    m = re.search(r"### Config file and environment\n\n```ini\n(.*?)```", text, re.S)
    if not m:
        sys.exit("seeds: README.md has no ```ini block under 'Config file and environment'")
    ini = m.group(1).encode()
    put(d, b"\x00" + ini)
    put(d, b"\x04" + ini.replace(b"\n", b"\r\n"))
    put(d + "_file", ini)
    put(d + "_file", ini.rstrip(b"\n"))
    for line in ini.splitlines():
        line = line.split(b"#")[0].strip()
        if b"=" not in line:
            continue
        k, v = [x.strip() for x in line.split(b"=", 1)]
        put(d, b"\x01" + k + b"=" + v)
        for i, name in enumerate((b"listen", b"service_name", b"max_routes", b"max_connections",
                                  b"body_size_buckets", b"k8s_log_dir", b"tls", b"pid", b"exe",
                                  b"port", b"all")):
            if k == name:
                put(d, b"\x02" + bytes([i]) + v)
        for i, name in enumerate((b"pid", b"exe", b"port", b"all")):
            if k == name:
                put(d, b"\x03" + bytes([i]) + v)


def identity(d):
    seen = set()
    for p in glob.glob("/proc/[0-9]*/cgroup"):
        t = read(p)
        if t and t not in seen and len(seen) < 16:
            seen.add(t)
            put(d, b"\x00" + t)
    u_ = UID.replace("-", "_")
    for path in ("/system.slice/docker-%s.scope" % CID, "/docker/%s" % CID,
                 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/"
                 "cri-containerd-%s.scope" % (u_, CID),
                 "/kubepods.slice/kubepods-pod%s.slice/crio-%s.scope" % (u_, CID),
                 "/kubepods/besteffort/pod%s/%s" % (UID, CID),
                 "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-%s.scope" % CID):
        put(d, b"\x00" + ("0::%s\n" % path).encode())
        put(d, b"\x00" + ("12:memory:%s\n11:cpu,cpuacct:%s\n" % (path, path)).encode())
    for name in ("web-7d9f8b6c5-x2x9k_shop_nginx-%s.log" % CID, "api-0_prod_app-%s.log" % CID):
        put(d, b"\x01" + name.encode())


def procinfo(d):
    for p in sorted(glob.glob("/proc/[0-9]*"))[:40]:
        st = read(p + "/stat")
        if st:
            put(d, b"\x00" + st)
        try:
            link = os.readlink(p + "/exe").encode()
        except OSError:
            link = b""
        comm = read(p + "/comm")
        if comm is not None:
            put(d, b"\x81" + link + b"\x00" + comm)
    put(d, b"\x81/usr/bin/redis-server (deleted)\x00redis-check-rdb\n")
    put(d, b"\x00" + b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 "
        b"1000 10000000 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")


def expo(d):
    for v in ("0.0.0.0:9090", "[::1]:9090", ":9090", "127.0.0.1:9191"):
        put(d, b"\x00" + v.encode())
    for v in ("gzip, deflate, br", "gzip", "identity, GZIP;q=0.5", "deflate,x-gzip",
              "gzip;q=0", "gzip; q=0.000 , x-gzip;q=1", "*;q=0.1"):
        put(d, b"\x01" + v.encode())


def tlsplace(d):
    small = []
    for p in glob.glob("/usr/lib/x86_64-linux-gnu/*.so*") + glob.glob("/usr/bin/*"):
        try:
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            size = os.path.getsize(p)
        except OSError:
            continue
        if size <= 16384 and read(p, 4) == b"\x7fELF":
            small.append((size, p))
    small.sort()
    if not small:
        sys.exit("seeds: no ELF file of at most 16 KB under /usr/lib/x86_64-linux-gnu or /usr/bin")
    for _, p in small[:6]:
        put(d, read(p))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seeds.py DIR")
    out = sys.argv[1]
    for name, fn in (("route", route), ("config", config), ("identity", identity),
                     ("procinfo", procinfo), ("expo", expo), ("tlsplace", tlsplace)):
        fn(os.path.join(out, "corpus_" + name))


main()

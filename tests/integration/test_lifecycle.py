"""Shutdown and crash (`-k lifecycle`): what the agent leaves behind when it
is stopped (SIGTERM) or killed (SIGKILL) while it works, and a restart.

Other agents (other tests, other people) may run at the same time, so what
is "the agent's" is found by ownership, not by a global before/after diff:
while it runs, the BPF program, link and map ids it holds (the prog_id,
link_id, map_id lines of /proc/PID/fdinfo/*) and the uprobes it holds
(`bpftool perf show`: pid, file, offset). bpftool 7.1 (Debian 12) is built
without the `pids` feature, so an orphan (a program nobody holds) is an
aion_* program that no process's fd, no link held by a process, and no
process's perf event refers to.

The traced nginx maps a private copy of libssl.so.3 (LD_LIBRARY_PATH), so
that the int3 bytes (0xcc) the agent's uprobes write into its code can be
told from other agents' probes on the system's libssl: they must be there
while the agent runs and gone once it is gone (the worker's code pages equal
the file's bytes again).

  lifecycle_sigterm   wrk on https and on http against the traced nginx,
                      SIGTERM mid-load: exit 0 within 2 s (the figure is
                      logged); then nothing left (programs, links, maps,
                      uprobes, int3 bytes, pins, orphans); nginx still
                      serves; a restarted agent counts exactly what follows
  lifecycle_sigkill   the same with SIGKILL (the kernel releases what the
                      agent held: a bounded wait)
"""
import json
import os
import shutil
import signal
import subprocess
import time

import lib
from lib import fail, wait_for

LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
WRK = "/usr/bin/wrk"
STOP_BOUND_S = 2.0      # the bound for SIGTERM -> exit
RELEASE_S = 15.0        # the kernel frees programs of syscall tracepoints after an RCU grace period
READY_S = 60.0          # loading takes ~5 s alone, up to 40 s while other agents load on 2 cores
NGINX_CONF = r"""
location = /ok { return 200 "ok\n"; }
"""


def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


# ---------------------------------------------------------------------------
# what a process holds, what the kernel has

def _bpftool(*args):
    lib.need_tool("bpftool")
    r = subprocess.run(["bpftool", "-j"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        fail("bpftool %s failed: %s" % (" ".join(args), r.stderr.decode("utf-8", "replace")))
    try:
        return json.loads(r.stdout.decode() or "[]")
    except ValueError as e:
        fail("bpftool %s: not JSON (%s)" % (" ".join(args), e))


def uprobes_of(pid):
    """[(filename, offset, prog_id)] of the uprobes with a BPF program that
    process pid holds."""
    return sorted((x.get("filename"), x.get("offset"), x.get("prog_id")) for x in _bpftool("perf", "show")
                  if x.get("pid") == pid and x.get("fd_type") in ("uprobe", "uretprobe"))


def file_id(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def kernel_ids():
    """(program ids, link ids, map ids, {prog id: name}) loaded now."""
    progs = _bpftool("prog", "show")
    return ({p["id"] for p in progs}, {l["id"] for l in _bpftool("link", "show")},
            {m["id"] for m in _bpftool("map", "show")}, {p["id"]: p.get("name", "") for p in progs})


def orphans():
    """{id: name} of aion_* programs that nothing running holds: no fd of
    any process, no link that a process holds, no perf event of a process."""
    _, _, _, names = kernel_ids()
    held, links = set(), set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            ids = lib.bpf_fd_ids(int(p))
            held |= ids["prog_id"]
            links |= ids["link_id"]
    held |= {l.get("prog_id") for l in _bpftool("link", "show") if l["id"] in links}
    held |= {x.get("prog_id") for x in _bpftool("perf", "show")}
    return {i: n for i, n in names.items() if n.startswith("aion_") and i not in held}


def pinned_aion():
    out = []
    for root, dirs, files in os.walk("/sys/fs/bpf"):
        out += [os.path.join(root, n) for n in dirs + files if "aion" in n]
    return sorted(out)


# ---------------------------------------------------------------------------
# int3 bytes in a process's copy of a file's code

def _exec_rows(pid, path):
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for l in f:
            p = l.split(None, 5)
            if len(p) == 6 and p[5].strip() == path and "x" in p[1]:
                a, b = (int(x, 16) for x in p[0].split("-"))
                out.append((a, b, int(p[2], 16)))
    if not out:
        fail("precondition: pid %d has no executable mapping of %s" % (pid, path))
    return out


def code_diff(pid, path):
    """{file offset: byte in memory} where pid's executable mappings of path
    differ from the file (a uprobe is an int3, 0xcc, in the process's copy)."""
    with open(path, "rb") as f:
        contents = f.read()
    out = {}
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as m:
        for start, end, off in _exec_rows(pid, path):
            m.seek(start)
            mem = m.read(end - start)
            want = contents[off:off + len(mem)]
            for i in range(0, len(want), 4096):
                if mem[i:i + 4096] != want[i:i + 4096]:
                    out.update({off + j: mem[j] for j in range(i, min(i + 4096, len(want))) if mem[j] != want[j]})
    return out


# ---------------------------------------------------------------------------
# servers, load, counts

class CopyNginx(lib.TlsNginx):
    """TLS nginx (plus a clear-text port) whose libssl.so.3 is a private
    copy (LD_LIBRARY_PATH), a file no other agent has probed."""

    def __init__(self):
        self.libdir = lib.mkdtemp("libssl")
        self.libssl = os.path.join(self.libdir, "libssl.so.3")
        shutil.copyfile(os.path.realpath(LIBSSL), self.libssl)
        os.chmod(self.libssl, 0o755)
        old = os.environ.get("LD_LIBRARY_PATH")
        os.environ["LD_LIBRARY_PATH"] = self.libdir
        try:
            super().__init__(NGINX_CONF, plain=True)
        finally:
            if old is None:
                del os.environ["LD_LIBRARY_PATH"]
            else:
                os.environ["LD_LIBRARY_PATH"] = old
        libs = lib.tls_libs_of(self.pids())
        _eq("precondition: TLS libraries nginx maps", sorted(libs.values()), [self.libssl])

    def pids(self):
        return [self.pid] + lib.children(self.pid)





def start_wrk(url, seconds):
    lib.need_tool(WRK)
    return subprocess.Popen([WRK, "-t1", "-c4", "-d%ds" % seconds, url], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=lib.clean_env())


def finish_wrk(p, what):
    try:
        out = p.communicate(timeout=60)[0].decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        fail("wrk (%s) did not finish" % what)
    if p.returncode != 0 or " requests in " not in out:
        fail("wrk (%s) failed (rc %d): %s" % (what, p.returncode, out[-1500:]))
    if "Non-2xx" in out:
        fail("wrk (%s) saw non-2xx responses (did nginx suffer from the detach?): %s" % (what, out[-1500:]))
    return int(out.split(" requests in ")[0].split()[-1])


# ---------------------------------------------------------------------------

def _stop_under_load(sig):
    ng = CopyNginx()
    args = ["--pid", str(ng.pid)]
    agent = lib.start_agent(args, READY_S)
    apid = agent.proc.pid
    held = lib.bpf_fd_ids(apid)
    ups = uprobes_of(apid)
    if not held["prog_id"] or not held["link_id"] or not held["map_id"]:
        fail("precondition: the agent holds no BPF program/link/map fds: %r" % held)
    _eq("files of the agent's uprobes (as /proc/PID/root paths)", sorted({file_id(u[0]) for u in ups}),
        [file_id(ng.libssl)])
    worker = lib.children(ng.pid)[0]
    offs = {u[1] for u in ups}
    bp = code_diff(worker, ng.libssl)
    _eq("int3 bytes in worker %d's libssl copy == the agent's uprobe offsets" % worker,
        (sorted(bp), sorted(set(bp.values()))), (sorted(offs), [0xcc]))
    lib.log("agent %d holds %d programs, %d links, %d maps, %d uprobes on %s"
            % (apid, len(held["prog_id"]), len(held["link_id"]), len(held["map_id"]), len(ups), ng.libssl))

    loads = [start_wrk(ng.url("/ok"), 5), start_wrk(ng.plain_url("/ok"), 5)]
    time.sleep(2.0)
    s = agent.scrape()
    busy = sum(lib.server_table(s, p).get(("GET", "200", "/ok", sc, ""), 0)
               for p, sc in ((ng.port, "https"), (ng.plain_port, "http")))
    if busy < 50:
        fail("precondition: the agent counted only %d requests under wrk before the signal" % busy)
    t0 = time.monotonic()
    os.kill(apid, sig)
    try:
        rc = agent.proc.wait(10.0)
    except subprocess.TimeoutExpired:
        lib.stop_proc(agent.proc, signal.SIGKILL)
        fail("agent did not exit within 10 s of %s" % signal.Signals(sig).name)
    took = time.monotonic() - t0
    lib.log("%s under load (%d requests counted): exit status %d after %.3f s"
            % (signal.Signals(sig).name, busy, rc, took))
    if sig == signal.SIGTERM:
        _eq("exit status after SIGTERM", rc, 0)
        if took > STOP_BOUND_S:
            fail("agent took %.2f s to exit after SIGTERM (bound %.1f s)" % (took, STOP_BOUND_S))
        tail = agent.stderr_text().strip().split("\n")[-1]
        _eq("last log line", tail, "aion-agent: stopping: programs detached")
    else:
        _eq("exit status after SIGKILL", rc, -signal.SIGKILL)

    # Nothing of it survives: the kernel may take an RCU grace period (or
    # several) to free what the agent held.
    t1 = time.monotonic()
    left = {}

    def released():
        progs, links, maps, names = kernel_ids()
        left.clear()
        left.update(progs={i: names[i] for i in held["prog_id"] & progs}, links=sorted(held["link_id"] & links),
                    maps=sorted(held["map_id"] & maps), int3=code_diff(worker, ng.libssl))
        return not any(left.values())
    wait_for(released, RELEASE_S, interval=0.2,
             what=lambda: "%.0f s after the agent exited, still there: %r" % (RELEASE_S, left))
    lib.log("programs, links, maps, int3s released %.2f s after exit" % (time.monotonic() - t1))
    _eq("uprobes held by the agent's pid", uprobes_of(apid), [])
    _eq("pins under /sys/fs/bpf named aion", pinned_aion(), [])
    orph = {}

    def no_orphans():
        orph.clear()
        orph.update(orphans())
        return not orph
    wait_for(no_orphans, RELEASE_S, interval=0.5,
             what=lambda: "aion_* programs held by nobody %.0f s after exit: %r" % (RELEASE_S, orph))

    n = [finish_wrk(p, w) for p, w in zip(loads, ("https", "http"))]
    lib.log("wrk during the %s: https %d, http %d requests" % (signal.Signals(sig).name, n[0], n[1]))
    _eq("nginx workers after the detach (none died)", sorted(lib.children(ng.pid)), sorted(ng.workers))
    lib.curl_ok_n(ng.url("/ok"), 1)

    # A restarted agent starts clean: only what follows its start is counted.
    again = lib.start_agent(args, READY_S)
    _eq("uprobes of the restarted agent (same file, same offsets)",
        sorted((file_id(f), o) for f, o, _ in uprobes_of(again.proc.pid)),
        sorted((file_id(f), o) for f, o, _ in ups))
    s = again.scrape()
    _eq("series of the nginx ports right after the restart",
        (lib.server_table(s, ng.port), lib.server_table(s, ng.plain_port)), ({}, {}))
    lib.curl_ok_n(ng.url("/ok"), 6)
    lib.curl_ok_n(ng.plain_url("/ok"), 4)
    lib.expect_server_tables(again, {ng.port: {("GET", "200", "/ok", "https", ""): 6},
                          ng.plain_port: {("GET", "200", "/ok", "http", ""): 4}})
    again.stop()


def test_lifecycle_sigterm():
    """SIGTERM while wrk loads the traced nginx over https (uprobes on its
    libssl copy) and http: exit 0 within 2 s, last line `stopping: programs
    detached`; within 15 s none of the program, link and map ids it held is
    loaded, no int3 left in a worker's libssl code, no uprobe of its pid, no
    aion pin, no aion_* orphan; nginx served wrk without a non-2xx; a
    restarted agent (same flags) counts exactly the 6 https + 4 http
    requests that follow."""
    _stop_under_load(signal.SIGTERM)


def test_lifecycle_sigkill():
    """The same with SIGKILL: the kernel releases everything the agent held
    (bounded wait); the restarted agent counts exactly."""
    _stop_under_load(signal.SIGKILL)

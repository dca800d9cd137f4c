"""Privileges (`-k privs`): the capability set the agent needs to start, and
what --drop-caps keeps (README "Privileges").

The sets are written here from the README's table, not taken from the
agent: start-up = CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE
CAP_DAC_READ_SEARCH (+ CAP_SETPCAP with --drop-caps); kept after the drop =
CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH (without CAP_SYS_ADMIN with
--no-tls; + CAP_BPF on kernels before 6.5). The agent runs as uid 0 under
`setpriv --bounding-set=-all,+...` (so its effective set is exactly the
list) or as full root; the traced servers run as `nobody` (another uid:
their /proc/PID/maps, root, exe and fd need the capabilities).

  privs_drop_caps        --drop-caps as root: every thread's CapEff, CapPrm,
                         CapBnd == the kept set, CapInh == CapAmb == 0,
                         NoNewPrivs 1; exact http counts of a nobody server;
                         a nobody process that imports ssl after the drop
                         gets its libssl attached, its https requests counted
  privs_drop_caps_no_tls --no-tls --drop-caps: the kept set without
                         CAP_SYS_ADMIN; exact http counts, also of a nobody
                         server exec'd from an --exe file after the drop
  privs_startup_set      under setpriv with exactly the start-up set:
                         --pid (https), --port, --exe (a copy of python)
                         servers of nobody, exact counts, with --drop-caps;
                         then --all without CAP_SETPCAP and --drop-caps
  privs_one_cap_less     each capability of the set left out in turn: exit 1
                         with one line `privs: missing CAP_X (to ...)`;
                         CAP_SYS_ADMIN is not needed with --no-tls
"""
import os
import re
import subprocess

import lib
from lib import fail, start_agent, wait_for, TLS_LIBRARIES

CAP_BITS = {"CAP_DAC_READ_SEARCH": 2, "CAP_SETPCAP": 8, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21,
            "CAP_PERFMON": 38, "CAP_BPF": 39}
STARTUP = ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
STARTUP_DROP = STARTUP + ["CAP_SETPCAP"]
TLS_SERVER = os.path.join(lib.SERVERS, "tls_http_server.py")
HTTP_SERVER = os.path.join(lib.SERVERS, "http_server.py")
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
READY_S = 60.0   # loading takes ~5 s alone, up to 15 s while other agents load on 2 cores

# A process of nobody with no TLS library until told "go" (so no http.server
# either: http.client imports ssl): it answers GETs in clear text with a
# socket of its own (`STARTED <port>`), then on "go" imports ssl (dlopen of
# _ssl -> libssl.so.3) and serves tls_http_server.py (`READY <port>`).
LATE_TLS = r'''
import runpy, socket, sys, threading

def conn(c):
    buf = b""
    with c:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf.split(b"\r\n\r\n", 1)[1]
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")

def serve(ls):
    while True:
        threading.Thread(target=conn, args=(ls.accept()[0],), daemon=True).start()

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
threading.Thread(target=serve, args=(ls,), daemon=True).start()
print("STARTED %d" % ls.getsockname()[1], flush=True)
sys.stdin.readline()
import ssl
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def kernel_before(major, minor):
    rel = os.uname().release.split(".")
    return (int(rel[0]), int(re.match(r"\d+", rel[1]).group(0))) < (major, minor)


def kept_set(tls=True):
    names = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"] + (["CAP_SYS_ADMIN"] if tls else [])
    if kernel_before(6, 5):
        names.append("CAP_BPF")
    return names


def mask(names):
    m = 0
    for n in names:
        m |= 1 << CAP_BITS[n]
    return m


def setpriv(names):
    lib.need_tool("setpriv")
    caps = ",".join("+" + n[4:].lower() for n in names)
    return ["setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all", "--"]


def task_status(pid):
    """{tid: {field: value}} of the Cap* and NoNewPrivs lines of every
    thread of pid."""
    out = {}
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            d = dict(l.split(":\t", 1) for l in f.read().split("\n") if ":\t" in l)
        out[int(tid)] = {k: d[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs")}
    return out


def check_dropped(agent, names):
    """Every thread of the agent holds exactly `names`; the log line says so."""
    want = "%016x" % mask(names)
    st = task_status(agent.proc.pid)
    exp = {tid: {"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": "%016x" % 0, "CapAmb": "%016x" % 0,
                 "NoNewPrivs": "1"} for tid in st}
    _eq("agent threads' capabilities after --drop-caps (want %s)" % " ".join(names), st, exp)
    lines = [l for l in agent.stderr_text().split("\n") if l.startswith("privs: capabilities dropped")]
    if len(lines) != 1:
        fail("expected one `privs: capabilities dropped` line, got %r" % lines)
    m = re.match(r"privs: capabilities dropped in (\d+) threads?: kept (\S+) \(", lines[0])
    if not m:
        fail("unexpected drop line %r" % lines[0])
    _eq("threads in the drop line", int(m.group(1)), len(st))
    _eq("kept capabilities in the drop line", sorted(m.group(2).split(",")), sorted(names))
    lib.log("after --drop-caps: %d threads with CapEff %s (%s)" % (len(st), want, m.group(2)))


def nobody_http():
    return lib.CmdServer(AS_NOBODY + [lib.PYTHON, HTTP_SERVER, "--port", "0"])


def nobody_tls():
    cert, key = lib.tls_cert(lib.mkdtemp("cert"))
    os.chmod(key, 0o644)  # nobody reads it
    return lib.CmdServer(AS_NOBODY + [lib.PYTHON, TLS_SERVER, "--cert", cert, "--key", key, "--port", "0"])





def ok(n, scheme):
    return {("GET", "200", "/ok", scheme, ""): n}


def attached_lines(agent):
    return [(os.path.basename(p), k) for p, k, _ in lib.tls_attached(agent)]


def gauge(agent, name):
    return lib.total(agent.scrape(), name)


# ---------------------------------------------------------------------------

def test_privs_drop_caps():
    """--drop-caps (agent as root): all threads keep exactly CAP_SYS_ADMIN,
    CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH (effective, permitted, bounding),
    nothing inheritable or ambient, NoNewPrivs 1. A python process of
    nobody (--pid) with no TLS library: 7 clear-text requests, 7 counted;
    told to import ssl after the drop: its libssl gets attached (`tls:
    attached`, aion_agent_tls_libraries 0 -> 1) and its 6 https requests
    are counted with url_scheme="https"."""
    cert, key = lib.tls_cert(lib.mkdtemp("cert"))
    os.chmod(key, 0o644)  # nobody reads it
    late = lib.StdioProc(AS_NOBODY + [lib.PYTHON, "-c", LATE_TLS, TLS_SERVER, "--cert", cert, "--key", key,
                                      "--port", "0"], "nobody python (import ssl later)")
    plain_port = int(late.expect("STARTED").split()[1])
    _eq("precondition: the process runs as nobody", os.stat("/proc/%d" % late.pid).st_uid, 65534)
    _eq("precondition: TLS libraries mapped before `import ssl`", lib.tls_libs_of([late.pid]), {})
    agent = start_agent(["--pid", str(late.pid), "--drop-caps"], READY_S)
    check_dropped(agent, kept_set(tls=True))
    _eq("%s before `import ssl`" % TLS_LIBRARIES, gauge(agent, TLS_LIBRARIES), 0)
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % plain_port, 7)
    lib.expect_server_tables(agent, {plain_port: ok(7, "http")})
    # now it loads libssl: attached with the kept capabilities
    late.send("go")
    port = int(late.expect("READY").split()[1])
    _eq("precondition: TLS libraries after `import ssl`",
        sorted(os.path.basename(p) for p in lib.tls_libs_of([late.pid]).values()), ["libssl.so.3"])
    wait_for(lambda: ("libssl.so.3", "openssl") in attached_lines(agent), 10.0,
             what=lambda: "no `tls: attached to .../libssl.so.3` after the drop: %s" % lib.tls_lines_text(agent))
    _eq("%s after `import ssl`" % TLS_LIBRARIES, gauge(agent, TLS_LIBRARIES), 1)
    lib.curl_ok_n("https://127.0.0.1:%d/ok" % port, 6)
    lib.expect_server_tables(agent, {plain_port: ok(7, "http"), port: ok(6, "https")})
    check_dropped(agent, kept_set(tls=True))
    agent.stop()


def test_privs_drop_caps_no_tls():
    """--no-tls --drop-caps: every thread keeps CAP_SYS_PTRACE and
    CAP_DAC_READ_SEARCH only (no CAP_SYS_ADMIN: no uprobe comes later). A
    nobody http server (--port) is counted exactly (5), and so is one of
    nobody started after the drop from an --exe file (a copy of python:
    matched at exec through /proc/PID/exe, which needs CAP_SYS_PTRACE):
    4 requests, 4 counted."""
    plain = nobody_http()
    tmp = lib.mkdtemp("py")
    py = lib.copy_binary(lib.PYTHON, os.path.join(tmp, "python3"))
    agent = start_agent(["--port", str(plain.port), "--exe", py, "--no-tls", "--drop-caps"], READY_S)
    check_dropped(agent, kept_set(tls=False))
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % plain.port, 5)
    late = lib.CmdServer(AS_NOBODY + [py, HTTP_SERVER, "--port", "0"])
    lib.wait_target_event(agent, late.pid, "instrumented")
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % late.port, 4)
    lib.expect_server_tables(agent, {plain.port: ok(5, "http"), late.port: ok(4, "http")})
    agent.stop()


def test_privs_startup_set():
    """The documented start-up set is enough (setpriv, agent uid 0 with
    exactly those capabilities): nobody servers selected by --pid (https,
    libssl attached at start), --port and --exe (a copy of python), with
    --drop-caps: exact counts on the three ports. Then --all with the set
    minus CAP_SETPCAP and no --drop-caps: exact counts again."""
    tls = nobody_tls()
    plain = nobody_http()
    tmp = lib.mkdtemp("py")
    py = lib.copy_binary(lib.PYTHON, os.path.join(tmp, "python3"))
    byexe = lib.CmdServer(AS_NOBODY + [py, HTTP_SERVER, "--port", "0"])
    _eq("precondition: the servers run as nobody",
        sorted({os.stat("/proc/%d" % p.pid).st_uid for p in (tls, plain, byexe)}), [65534])
    agent = lib.Agent(["--pid", str(tls.pid), "--port", str(plain.port), "--exe", py, "--drop-caps"],
                      READY_S, prefix=setpriv(STARTUP_DROP))
    check_dropped(agent, kept_set(tls=True))
    _eq("`tls: attached to` lines", attached_lines(agent), [("libssl.so.3", "openssl")])
    lib.curl_ok_n("https://127.0.0.1:%d/ok" % tls.port, 4)
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % plain.port, 3)
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % byexe.port, 2)
    lib.expect_server_tables(agent, {tls.port: ok(4, "https"), plain.port: ok(3, "http"), byexe.port: ok(2, "http")})
    agent.stop()

    agent = lib.Agent(["--all"], READY_S, prefix=setpriv(STARTUP))
    st = task_status(agent.proc.pid)[agent.proc.pid]
    _eq("--all agent's effective set (no --drop-caps)", st["CapEff"], "%016x" % mask(STARTUP))
    lib.curl_ok_n("https://127.0.0.1:%d/ok" % tls.port, 5)
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % plain.port, 2)
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % byexe.port, 3)
    lib.expect_server_tables(agent, {tls.port: ok(5, "https"), plain.port: ok(2, "http"), byexe.port: ok(3, "http")})
    agent.stop()


def _run_expect_exit(prefix, args, timeout=20.0):
    try:
        r = subprocess.run(prefix + [lib.AGENT] + args + ["--listen", "127.0.0.1:%d" % lib.free_port()],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           start_new_session=True, stdin=subprocess.DEVNULL, env=lib.clean_env())
    except subprocess.TimeoutExpired:
        fail("aion-agent %s under %s did not exit within %.0fs" % (args, prefix, timeout))
    return r.returncode, r.stderr.decode("utf-8", "replace")


def test_privs_one_cap_less():
    """Each capability of the start-up set (with --drop-caps) left out in
    turn: the agent exits 1 before loading anything, with exactly one line
    on stderr, `privs: missing CAP_X (to ...): grant it ...`. And with
    --no-tls, CAP_SYS_ADMIN is not needed: ready, and an http request is
    counted."""
    plain = nobody_http()
    for cap in STARTUP_DROP:
        rest = [c for c in STARTUP_DROP if c != cap]
        rc, err = _run_expect_exit(setpriv(rest), ["--pid", str(plain.pid), "--drop-caps"])
        lines = [l for l in err.split("\n") if l.strip()]
        if rc != 1 or len(lines) != 1 or not re.match(r"privs: missing %s \(to [^)]+\): grant it " % cap, lines[0]):
            fail("without %s: expected exit 1 and one line `privs: missing %s (to ...): grant it ...`, "
                 "got rc %d and %r" % (cap, cap, rc, lines))
        lib.log("without %s: %s" % (cap, lines[0]))
    no_admin = [c for c in STARTUP if c != "CAP_SYS_ADMIN"]
    agent = lib.Agent(["--pid", str(plain.pid), "--no-tls"], READY_S, prefix=setpriv(no_admin))
    lib.curl_ok_n("http://127.0.0.1:%d/ok" % plain.port, 3)
    lib.expect_server_tables(agent, {plain.port: ok(3, "http")})
    agent.stop()

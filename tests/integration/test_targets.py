"""Target selection: which processes the agent instruments (--exe, --pid,
--port, --config, AION_* environment), what it logs about them
(`targets: pid N (NAME) instrumented|dropped: REASON`), its gauges, the
process_* metrics and the container / Kubernetes identity labels.

Real nginx, PostgreSQL 15, Python servers (also inside PID + mount
namespaces, a chroot, and real cgroup v2 directories). Request counts are
exact per server_port; log lines are checked per pid; gauges are compared
with what /proc says at the same moment (polled, bounded).
"""
import os
import signal
import tempfile
import time
import uuid

import lib
from lib import (HIST, INSTRUMENTED, MAP_ENTRIES, NGINX, POSTGRES, fail, count, select_series, fmt_series,
                 wait_for, curl, start_agent, start_python_server, target_events, wait_target_event,
                 wait_metric, metric)

NGINX_BODY = r"""
location = /ok { return 200 "ok\n"; }
location = /pid { return 200 "$pid\n"; }
"""

PY_SERVER = os.path.join(lib.SERVERS, "http_server.py")


def _eq(what, got, want, samples=None, **labels):
    if got != want:
        msg = "%s: expected %r, got %r" % (what, want, got)
        if samples is not None:
            msg += "\n" + fmt_series(samples, HIST + "_count", **labels)
        fail(msg)


def _single_requests(url, n):
    """n requests, each on its own curl connection."""
    codes = []
    for _ in range(n):
        codes += curl(url)
    return codes


def _pid_request(port):
    """GET /pid on a new connection; returns the pid of the nginx worker
    that served it."""
    st, _, body = lib.http_get("127.0.0.1", port, "/pid")
    _eq("GET /pid status", st, 200)
    return int(body.decode().strip())


def _one_event(agent, pid, kind, reason=None):
    """Exactly one `kind` line for pid (with that reason, if given)."""
    evs = [e for e in target_events(agent, pid, kind) if reason is None or e.reason == reason]
    if len(evs) != 1:
        fail("expected exactly one `targets: pid %d (...) %s: %s` line, got %d:\n%s"
             % (pid, kind, reason or "*", len(evs), lib._target_lines(agent, pid)))
    return evs[0]


def _wait_live_gauge(agent, exe, extra=0, timeout=5.0):
    """aion_agent_instrumented_processes == number of live processes running
    `exe` (+ extra), recomputed from /proc at every poll."""
    return wait_metric(agent, INSTRUMENTED, lambda _v: len(lib.pids_with_exe(exe)) + extra, timeout)


def _live_tree(pid):
    """pid and its descendants that are not zombies."""
    out = []
    for p in [pid] + lib.descendants(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rfind(")") + 2:].split()[0] != "Z":
            out.append(p)
    return out


def _wait_dropped(agent, pids, timeout=5.0):
    for p in pids:
        inst = wait_target_event(agent, p, "instrumented", timeout=timeout)
        d = wait_target_event(agent, p, "dropped", "exited", timeout=timeout)
        if d.line < inst.line:
            fail("pid %d: `dropped: exited` logged before `instrumented`:\n%s" % (p, lib._target_lines(agent, p)))
        _one_event(agent, p, "dropped")


def _proc_threads(pids):
    n = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for l in f:
                    if l.startswith("Threads:"):
                        n += int(l.split()[1])
        except OSError:
            pass
    return n


def _proc_fds(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir("/proc/%d/fd" % p))
        except OSError:
            pass
    return n


def _proc_rss_bytes(pids):
    n = 0
    for p in pids:
        try:
            n += lib.vm_rss_kb(p) * 1024
        except (OSError, lib.TestFailure):
            pass
    return n


def _cpu_total(samples, **labels):
    """user + system process_cpu_time_seconds_total; fails if either mode is
    missing."""
    tot = 0.0
    for mode in ("user", "system"):
        v = metric(samples, "process_cpu_time_seconds_total", cpu_mode=mode, **labels)
        if v is None:
            fail("no process_cpu_time_seconds_total%s{cpu_mode=%s}; have: %s"
                 % (lib._lfmt(labels), mode, select_series(samples, "process_cpu_time_seconds_total")))
        if v < 0:
            fail("process_cpu_time_seconds_total{cpu_mode=%s} is negative: %g" % (mode, v))
        tot += v
    return tot


def _check_process_metrics(agent, timeout=5.0, **labels):
    """process_* series for labels exist: threads >= 1, memory > 0,
    open_fds >= 1, cpu for both modes. Returns the samples."""
    def ok():
        s = agent.scrape()
        th = metric(s, "process_threads", **labels)
        mem = metric(s, "process_memory_usage_bytes", **labels)
        fds = metric(s, "process_open_fds", **labels)
        cpu = [metric(s, "process_cpu_time_seconds_total", cpu_mode=m, **labels) for m in ("user", "system")]
        return (th is not None and th >= 1 and mem is not None and mem > 0 and fds is not None and fds >= 1
                and None not in cpu and min(cpu) >= 0) and s

    def why():
        s = agent.scrape()
        return "process_* series for %s missing or implausible: %s" % (
            lib._lfmt(labels), {n: select_series(s, n, **labels) for n in (
                "process_threads", "process_memory_usage_bytes", "process_open_fds",
                "process_cpu_time_seconds_total")})
    return wait_for(ok, timeout, interval=0.1, what=why)


# ---------------------------------------------------------------------------
# nginx by --exe

def test_targets_exe_nginx_started_after_agent():
    """nginx exec'd after the agent: the very first request (sent as soon as
    the port accepts, the workers possibly still forking) is counted; master
    logged as `exec of`, workers as `fork of pid <master>`; the gauge counts
    master + workers."""
    agent = start_agent(["--exe", NGINX])
    ng = lib.NginxAt(NGINX, NGINX_BODY, wait_workers=False)
    _eq("first request", curl(ng.url("/ok")), [200])
    workers = ng.wait_workers()
    port = str(ng.port)
    agent.wait_count(1, server_port=port, service_name="nginx", http_route="/ok",
                     http_response_status_code="200", error_type="")
    agent.wait_count(1, server_port=port, settle=0)
    m = wait_target_event(agent, ng.pid, "instrumented", "exec of " + NGINX)
    _eq("name of the master in its log line", m.name, "nginx")
    _one_event(agent, ng.pid, "instrumented")
    for w in workers:
        e = wait_target_event(agent, w, "instrumented", "fork of pid %d" % ng.pid)
        _eq("name of worker %d in its log line" % w, e.name, "nginx")
        _one_event(agent, w, "instrumented")
    others = sorted(set(lib.pids_with_exe(NGINX)) - {ng.pid} - set(workers))
    if others:
        lib.log("other nginx processes on the host (also targets): %s" % others)
    s = _wait_live_gauge(agent, NGINX)
    _eq(INSTRUMENTED, metric(s, INSTRUMENTED), 1 + len(workers) + len(others))
    agent.stop()


def test_targets_exe_nginx_restart_same_port():
    """nginx stopped and started again on the same port under one agent:
    requests to both incarnations counted; old pids dropped; the gauge goes
    back to 0 (no nginx) and then to master + workers."""
    agent = start_agent(["--exe", NGINX])
    ng1 = lib.NginxAt(NGINX, NGINX_BODY)
    port = ng1.port
    old = [ng1.pid] + ng1.workers
    _eq("requests to the first nginx", _single_requests(ng1.url("/ok"), 3) + curl([ng1.url("/ok")] * 2),
        [200] * 5)
    agent.wait_count(5, server_port=str(port), service_name="nginx", http_route="/ok")
    wait_target_event(agent, ng1.pid, "instrumented", "exec of " + NGINX)
    for w in ng1.workers:
        wait_target_event(agent, w, "instrumented", "fork of pid %d" % ng1.pid)
    _wait_live_gauge(agent, NGINX)

    ng1.stop()
    if lib.port_open(port):
        fail("port %d still open after stopping nginx %d" % (port, ng1.pid))
    _wait_dropped(agent, old)
    s = _wait_live_gauge(agent, NGINX)
    lib.log("gauge after stop: %g" % metric(s, INSTRUMENTED))

    ng2 = lib.NginxAt(NGINX, NGINX_BODY, port=port, wait_workers=False)
    codes = curl(ng2.url("/ok"))                       # at once
    new = [ng2.pid] + ng2.wait_workers()
    if set(new) & set(old):
        fail("pid reuse between incarnations (%s / %s): cannot tell them apart" % (old, new))
    codes += _single_requests(ng2.url("/ok"), 3) + curl([ng2.url("/ok")] * 3)
    _eq("requests to the second nginx", codes, [200] * 7)
    agent.wait_count(12, server_port=str(port), service_name="nginx", http_route="/ok",
                     http_response_status_code="200", error_type="")
    agent.wait_count(12, server_port=str(port), settle=0)
    wait_target_event(agent, ng2.pid, "instrumented", "exec of " + NGINX)
    for w in ng2.workers:
        wait_target_event(agent, w, "instrumented", "fork of pid %d" % ng2.pid)
    for p in new:
        _one_event(agent, p, "instrumented")
        if target_events(agent, p, "dropped"):
            fail("live pid %d logged as dropped:\n%s" % (p, lib._target_lines(agent, p)))
    s = _wait_live_gauge(agent, NGINX)
    lib.log("gauge with the second nginx: %g" % metric(s, INSTRUMENTED))
    if metric(s, INSTRUMENTED) < 3:
        fail("%s %g < 3 (master + 2 workers)" % (INSTRUMENTED, metric(s, INSTRUMENTED)))
    agent.stop()


def test_targets_exe_nginx_killed_worker_replaced():
    """nginx running before the agent (startup scan: `--exe /usr/sbin/nginx`).
    A worker is SIGKILLed; the master forks a replacement, which is logged as
    `fork of pid <master>` and serves counted requests; the killed one is
    dropped; the nginx CPU counter does not go down; process_threads and
    process_open_fds equal /proc's sums."""
    ng = lib.NginxAt(NGINX, NGINX_BODY)
    agent = start_agent(["--exe", NGINX])
    port = ng.port
    for p in [ng.pid] + ng.workers:
        wait_target_event(agent, p, "instrumented", "--exe " + NGINX)
    _wait_live_gauge(agent, NGINX)
    # some CPU time in the workers, so the counter has something to lose
    codes = lib.parallel_keepalive(port, "/ok", threads=4, per_thread=250)
    _eq("keep-alive requests", len([c for c in codes if c == 200]), 1000)
    s = agent.wait_count(1000, server_port=str(port), service_name="nginx")

    def ticks(pid):
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        rest = st[st.rfind(")") + 2:].split()
        return int(rest[11]) + int(rest[12])
    victim = max(ng.workers, key=ticks)
    lib.log("victim worker %d (%d ticks)" % (victim, ticks(victim)))
    s = agent.scrape()
    cpu0 = _cpu_total(s, service_name="nginx")
    os.kill(victim, signal.SIGKILL)

    def replaced():
        kids = lib.children(ng.pid)
        return victim not in kids and len(kids) >= 2 and sorted(kids)
    kids = wait_for(replaced, 10, what=lambda: "nginx master %d did not replace worker %d: children %s"
                    % (ng.pid, victim, lib.children(ng.pid)))
    new = sorted(set(kids) - set(ng.workers))
    _eq("new workers", len(new), 1)
    new = new[0]
    e = wait_target_event(agent, new, "instrumented", "fork of pid %d" % ng.pid)
    _eq("name of the new worker", e.name, "nginx")
    _wait_dropped(agent, [victim])
    _wait_live_gauge(agent, NGINX)
    cpu1 = _cpu_total(agent.scrape(), service_name="nginx")
    if cpu1 < cpu0:
        fail("process_cpu_time_seconds_total{service_name=nginx} went down after worker %d exited: %g -> %g"
             % (victim, cpu0, cpu1))

    served = {}
    n = 0
    while n < 50 or served.get(new, 0) < 2:
        w = _pid_request(port)
        served[w] = served.get(w, 0) + 1
        n += 1
        if n >= 600:
            fail("the new worker %d served %d of %d requests on new connections (by worker: %s)"
                 % (new, served.get(new, 0), n, served))
    lib.log("%d requests on separate connections, by worker: %s" % (n, served))
    if set(served) - set(kids):
        fail("requests served by unknown pids: %s (workers %s)" % (served, kids))
    agent.wait_count(n, server_port=str(port), service_name="nginx", http_route="/pid",
                     http_response_status_code="200", error_type="")
    agent.wait_count(1000 + n, server_port=str(port), settle=0)
    cpu2 = _cpu_total(agent.scrape(), service_name="nginx")
    if cpu2 < cpu1:
        fail("process_cpu_time_seconds_total{service_name=nginx} went down: %g -> %g" % (cpu1, cpu2))
    wait_metric(agent, "process_threads", lambda _v: _proc_threads(lib.pids_with_exe(NGINX)),
                service_name="nginx")
    wait_metric(agent, "process_open_fds", lambda _v: _proc_fds(lib.pids_with_exe(NGINX)),
                service_name="nginx")
    s = agent.scrape()
    mem = metric(s, "process_memory_usage_bytes", service_name="nginx")
    rss = _proc_rss_bytes(lib.pids_with_exe(NGINX))
    if mem is None or not (rss / 2 <= mem <= rss * 2):
        fail("process_memory_usage_bytes{service_name=nginx} %s, /proc VmRSS sum %d bytes" % (mem, rss))
    agent.stop()


# ---------------------------------------------------------------------------
# PostgreSQL 15: backends are forks of the postmaster, never exec'd

def _pg_backends(agent, pg, k=5):
    """K psql connections one after the other; each backend (its pid printed
    by psql) is logged exactly once as `fork of pid <postmaster>` and later
    as `dropped: exited`."""
    pids = [pg.backend_pid() for _ in range(k)]
    lib.log("backend pids %s" % pids)
    _eq("distinct backend pids", len(set(pids)), k)
    for b in pids:
        wait_target_event(agent, b, "instrumented", "fork of pid %d" % pg.pid)
        _one_event(agent, b, "instrumented")
    _wait_dropped(agent, pids)
    forks = [e for e in target_events(agent, kind="instrumented")
             if e.reason == "fork of pid %d" % pg.pid and e.pid in pids]
    _eq("`fork of pid %d` lines for the %d backends" % (pg.pid, k), len(forks), k)
    return pids


def test_targets_postgres_exe():
    pg = lib.Postgres()
    agent = start_agent(["--exe", POSTGRES])
    wait_target_event(agent, pg.pid, "instrumented", "--exe " + POSTGRES)
    _pg_backends(agent, pg)
    _wait_live_gauge(agent, POSTGRES)
    _check_process_metrics(agent, service_name="postgres")
    wait_metric(agent, "process_threads", lambda _v: _proc_threads(lib.pids_with_exe(POSTGRES)),
                service_name="postgres")
    agent.stop()


def test_targets_postgres_port_before_agent():
    """The postmaster selected by the port it already listens on."""
    pg = lib.Postgres()
    agent = start_agent(["--port", str(pg.port)])
    e = wait_target_event(agent, pg.pid, "instrumented")
    if e.reason not in ("--port %d" % pg.port, "listens on port %d" % pg.port):
        fail("postmaster %d instrumented with reason %r, expected '--port %d'" % (pg.pid, e.reason, pg.port))
    _one_event(agent, pg.pid, "instrumented")
    _pg_backends(agent, pg)
    _check_process_metrics(agent, service_name="postgres")
    agent.stop()


def test_targets_postgres_port_after_agent():
    """Agent first; the postmaster becomes a target when it listens on the
    port, and so does everything it forks from then on (all its auxiliary
    processes: the gauge equals the postmaster + its live children)."""
    port = lib.free_port()
    agent = start_agent(["--port", str(port)])
    pg = lib.Postgres(port=port)
    wait_target_event(agent, pg.pid, "instrumented", "listens on port %d" % port)
    _one_event(agent, pg.pid, "instrumented")
    aux = lib.children(pg.pid)
    for a in aux:
        wait_target_event(agent, a, "instrumented", "fork of pid %d" % pg.pid)
    _pg_backends(agent, pg)
    # only this cluster is selected (not other postgres on the host): the
    # postmaster and its live children
    wait_metric(agent, INSTRUMENTED, lambda _v: len(_live_tree(pg.pid)))
    _check_process_metrics(agent, service_name="postgres")
    agent.stop()


def test_targets_postgres_config_port_service_name():
    pg = lib.Postgres()
    cfgdir = lib.mkdtemp("cfg")
    cfg = lib.write_file(os.path.join(cfgdir, "aion.conf"),
                         "# postgres by port\n[target]\nport = %d\nservice_name = db\n" % pg.port)
    agent = start_agent(["--config", cfg])
    wait_target_event(agent, pg.pid, "instrumented")
    pids = [pg.backend_pid() for _ in range(2)]
    for b in pids:
        wait_target_event(agent, b, "instrumented", "fork of pid %d" % pg.pid)
    s = _check_process_metrics(agent, service_name="db")
    wrong = [(n, l) for (n, l), _ in s.items()
             if n.startswith("process_") and dict(l).get("service_name") == "postgres"]
    if wrong:
        fail("process_* series with service_name=postgres although the target is named db: %s" % wrong[:4])
    agent.stop()


# ---------------------------------------------------------------------------
# namespaces

def test_targets_exe_python_pid_mount_namespace_bind_mount():
    """The server runs in a new PID + mount namespace from a bind mount of
    python3.11 at another path: same inode, so --exe /usr/bin/python3.11
    matches it. Started after the agent."""
    unshare = lib.need_tool("unshare")
    py = os.path.realpath(lib.PYTHON)
    agent = start_agent(["--exe", py])
    tmp = lib.mkdtemp("ns")
    os.mkdir(os.path.join(tmp, "bin"))
    app = lib.write_file(os.path.join(tmp, "bin", "app-python"), "", 0o755)
    script = ("set -e; mount --make-rprivate /; mount --bind %s %s; exec %s %s --port 0"
              % (py, app, app, PY_SERVER))
    srv = lib.CmdServer([unshare, "--pid", "--mount", "--fork", "--kill-child", "sh", "-c", script],
                        stop_signal=signal.SIGKILL)
    lp = srv.listener_pid()
    if lib.file_id("/proc/%d/exe" % lp) != lib.file_id(py):
        fail("server %d does not run %s's inode (exe %s)" % (lp, py, os.readlink("/proc/%d/exe" % lp)))
    with open("/proc/%d/status" % lp) as f:
        nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")]
    if not nspid or len(nspid[0]) != 2:
        fail("server %d is not in a child PID namespace (NSpid %s)" % (lp, nspid))
    lib.log("server host pid %d, pid %s in its namespace, exe %s" % (lp, nspid[0][1], os.readlink("/proc/%d/exe" % lp)))
    # (the runner itself is a python3.11 target, so lp may also have been
    # logged earlier as a fork of a traced process; its exec is what counts)
    wait_target_event(agent, lp, "instrumented", "exec of " + py)
    codes = lib.keepalive_requests(srv.port, ["/ok"] * 3) + [
        lib.http_get("127.0.0.1", srv.port, "/users/%d" % i)[0] for i in range(3)]
    _eq("statuses", codes, [200] * 6)
    port = str(srv.port)
    s = agent.wait_count(6, server_port=port)
    names = sorted({l.get("service_name") for l, _ in select_series(s, HIST + "_count", server_port=port)})
    lib.log("service_name of the bind-mounted python: %s" % names)
    if len(names) != 1 or names[0] not in ("app-python", os.path.basename(py)):
        fail("service_name %s, expected one of app-python / %s\n%s"
             % (names, os.path.basename(py), fmt_series(s, server_port=port)))
    agent.wait_count(3, server_port=port, http_route="/ok", http_response_status_code="200", settle=0)
    agent.wait_count(3, server_port=port, http_route="/users/{id}", http_response_status_code="200", settle=0)
    srv.stop()
    _wait_dropped(agent, [lp])
    agent.stop()


def _make_root(root, exe_in):
    """A minimal root: /usr and /etc bind-mounted read-only at start (see the
    script), the host's /bin, /lib... symlinks, a private copy of python3.11
    at exe_in and servers/http_server.py at /srv."""
    binds = []
    for d in ("usr", "etc", "bin", "sbin", "lib", "lib64", "lib32"):
        host = "/" + d
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(root, d))
        elif os.path.isdir(host):
            os.mkdir(os.path.join(root, d))
            binds.append(d)
    for d in ("proc", "srv", "tmp"):
        os.mkdir(os.path.join(root, d))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.makedirs(os.path.dirname(root + exe_in))
    lib.copy_binary(lib.PYTHON, root + exe_in)
    lib.copy_binary(PY_SERVER, os.path.join(root, "srv", "http_server.py"))
    return binds


def test_targets_exe_path_only_inside_container_root():
    """--exe of a path that exists only inside a container's root
    (/opt/aion-test-<random>/python, a copy: a different inode than the
    host's python). The agent warns and keeps running; a server exec'd from
    that path in a new PID + mount namespace chrooted there, started after
    the agent, is matched through /proc/PID/root and counted as
    service_name=python."""
    unshare = lib.need_tool("unshare")
    chroot = lib.need_tool("chroot")
    exe_in = "/opt/aion-test-%s/python" % lib.rand_hex(12)
    if os.path.exists(exe_in):
        fail("%s exists on the host" % exe_in)
    # not a lib.mkdtemp dir: removed here, after the namespace is gone, by a
    # rmtree that refuses to run while anything is mounted below it
    root = tempfile.mkdtemp(prefix="aion-it-root-")
    os.chmod(root, 0o755)
    srv = None
    try:
        binds = _make_root(root, exe_in)
        agent = start_agent(["--exe", exe_in])
        warn = [l for l in agent.stderr_text().split("\n") if exe_in in l]
        if not warn:
            fail("agent started with --exe %s (missing on the host) printed no warning naming it; stderr: %s"
                 % (exe_in, agent.stderr_text()[-1000:] or "(empty)"))
        lib.log("agent warning: %s" % warn[0])
        mounts = "".join("mount --bind /%s %s/%s; mount -o remount,bind,ro %s/%s; " % (d, root, d, root, d)
                         for d in binds)
        script = ("set -e; mount --make-rprivate /; %smount -t proc proc %s/proc; "
                  "exec %s %s %s /srv/http_server.py --port 0" % (mounts, root, chroot, root, exe_in))
        srv = lib.CmdServer([unshare, "--pid", "--mount", "--fork", "--kill-child", "sh", "-c", script],
                        stop_signal=signal.SIGKILL)
        lp = srv.listener_pid()
        if lib.file_id("/proc/%d/exe" % lp) != lib.file_id(root + exe_in):
            fail("server %d does not run the copy %s (exe %s)" % (lp, root + exe_in, os.readlink("/proc/%d/exe" % lp)))
        _eq("server's root", os.readlink("/proc/%d/root" % lp), root)
        e = wait_target_event(agent, lp, "instrumented")
        lib.log("instrumented: %s" % (e,))
        codes = lib.keepalive_requests(srv.port, ["/ok"] * 4) + [lib.http_get("127.0.0.1", srv.port, "/ok")[0]]
        _eq("statuses", codes, [200] * 5)
        port = str(srv.port)
        s = agent.wait_count(5, server_port=port, service_name="python", http_route="/ok",
                             http_response_status_code="200", error_type="")
        _eq("all requests for the port", count(s, server_port=port), 5, s, server_port=port)
        agent.stop()
    finally:
        if srv is not None:
            srv.stop()
        lib.safe_rmtree(root)


# ---------------------------------------------------------------------------
# --pid lifecycle and churn

def test_targets_pid_exits_agent_stays_up():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    wait_target_event(agent, srv.pid, "instrumented", "--pid")
    wait_metric(agent, INSTRUMENTED, 1)
    _eq("statuses", lib.keepalive_requests(srv.port, ["/ok", "/users/1", "/ok", "/status/404"]), [200, 200, 200, 404])
    port = str(srv.port)
    s = agent.wait_count(4, server_port=port)
    before = {tuple(sorted(l.items())): v for l, v in select_series(s, HIST + "_count", server_port=port)}
    srv.stop()
    _wait_dropped(agent, [srv.pid])
    st, _, body = agent.get("/healthz")
    _eq("/healthz after the only target exited", st, 200)
    wait_metric(agent, INSTRUMENTED, 0)
    for _ in range(2):
        s = agent.scrape()
        after = {tuple(sorted(l.items())): v for l, v in select_series(s, HIST + "_count", server_port=port)}
        if after != before:
            fail("series of the exited process changed:\nbefore %s\nafter  %s" % (before, after))
        time.sleep(0.3)
    if agent.proc.poll() is not None:
        fail("agent exited (%s) after its only target exited" % agent.proc.returncode)
    agent.stop()


def test_targets_exe_churn_1000_short_processes():
    """1,000 short-lived processes of a matching binary in a row: each logged
    once as instrumented and once as dropped; the targets map, the gauge
    and the agent's RSS (+2 MB) come back to their values before."""
    tmp = lib.mkdtemp("churn")
    exe = lib.copy_binary("/bin/true", os.path.join(tmp, "churn-true"))
    agent = start_agent(["--exe", exe])

    def stable():
        # More than a second apart: two walks of the agent's tables.
        a = agent.scrape()
        time.sleep(1.2)
        b = agent.scrape()
        va = (metric(a, MAP_ENTRIES, map="targets"), metric(a, INSTRUMENTED))
        vb = (metric(b, MAP_ENTRIES, map="targets"), metric(b, INSTRUMENTED))
        return va == vb and None not in va and vb
    maps0, gauge0 = wait_for(stable, 5, what=lambda: "%s{map=targets} / %s missing or not stable: %s %s"
                             % (MAP_ENTRIES, INSTRUMENTED, select_series(agent.scrape(), MAP_ENTRIES),
                                select_series(agent.scrape(), INSTRUMENTED)))
    rss0 = lib.vm_rss_kb(agent.proc.pid)
    lib.log("before: targets map %g, gauge %g, agent RSS %d kB" % (maps0, gauge0, rss0))
    t0 = time.monotonic()
    loop = lib.spawn(["/bin/sh", "-c", 'i=0; while [ $i -lt 1000 ]; do "$0" || exit 1; i=$((i+1)); done', exe])
    rc = loop.wait(60)
    _eq("churn loop exit status", rc, 0)
    lib.log("1000 processes in %.2fs" % (time.monotonic() - t0))

    reason = "exec of " + exe

    def logged():
        inst = [e for e in target_events(agent, kind="instrumented") if e.reason == reason]
        pids = {e.pid for e in inst}
        drop = [e for e in target_events(agent, kind="dropped") if e.pid in pids]
        return len(inst) >= 1000 and len(drop) >= 1000 and (inst, drop)
    got = wait_for(logged, 20, interval=0.2, what=lambda: "after 1000 runs of %s: %d `instrumented: %s` lines, "
                   "%d `dropped` lines for them; stderr tail:\n%s" % (
                       exe, len([e for e in target_events(agent, kind="instrumented") if e.reason == reason]),
                       reason, len(target_events(agent, kind="dropped")), agent.stderr_text()[-1500:]))
    inst, drop = got
    _eq("instrumented lines for the churn", len(inst), 1000)
    _eq("dropped lines for the churn", len(drop), 1000)
    _eq("distinct pids instrumented", len({e.pid for e in inst}), 1000)
    _eq("dropped pids == instrumented pids", {e.pid for e in drop}, {e.pid for e in inst})
    _eq("dropped reasons", sorted({e.reason for e in drop}), ["exited"])
    wait_metric(agent, MAP_ENTRIES, maps0, map="targets")
    wait_metric(agent, INSTRUMENTED, gauge0)
    rss1 = lib.vm_rss_kb(agent.proc.pid)
    lib.log("after: agent RSS %d kB (%+d kB)" % (rss1, rss1 - rss0))
    if rss1 > rss0 + 2048:
        fail("agent RSS grew from %d kB to %d kB (+%d kB > 2 MB) over 1000 short processes"
             % (rss0, rss1, rss1 - rss0))
    names = {}
    for e in inst:
        names[e.name] = names.get(e.name, 0) + 1
    _eq("process names in the instrumented lines (name: lines)", names, {"churn-true": 1000})
    agent.stop()


# ---------------------------------------------------------------------------
# container identity

def test_targets_container_identity_labels():
    """Three Python servers in real cgroup v2 directories named like
    containers: (a) systemd/containerd kubepods layout with a kubelet log
    file -> container_id, k8s_pod_uid, k8s_namespace_name, k8s_pod_name,
    k8s_container_name; (b) cgroupfs kubepods layout, no log file ->
    container_id and k8s_pod_uid only; (c) a docker scope -> container_id
    only. A fourth server outside any container gets none of them."""
    tag = lib.rand_hex(10)
    cid = {k: lib.rand_hex(64) for k in "abc"}
    uid = {k: str(uuid.uuid4()) for k in "ab"}
    top = "aion-test-%s.slice" % tag
    rel = {
        "a": "%s/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/cri-containerd-%s.scope"
             % (top, uid["a"].replace("-", "_"), cid["a"]),
        "b": "%s/kubepods/besteffort/pod%s/%s" % (top, uid["b"], cid["b"]),
        "c": "%s/docker-%s.scope" % (top, cid["c"]),
    }
    cgs = []
    ok = False
    try:
        srv = {k: start_python_server() for k in "abcd"}
        for k in "abc":
            cg = lib.Cgroup(rel[k])
            cgs.append(cg)
            cg.add(srv[k].pid)
            lib.log("server %s pid %d in %s" % (k, srv[k].pid, cg.path))
        logdir = lib.mkdtemp("k8slog")
        lib.write_file(os.path.join(logdir, "mypod_myns_app-%s.log" % cid["a"]), "")
        lib.write_file(os.path.join(logdir, "otherpod_otherns_other-%s.log" % lib.rand_hex(64)), "")
        args = []
        for k in "abcd":
            args += ["--pid", str(srv[k].pid)]
        agent = start_agent(args + ["--k8s-log-dir", logdir])
        n = {"a": 3, "b": 4, "c": 2, "d": 1}
        for k in "abcd":
            _eq("statuses %s" % k, lib.keepalive_requests(srv[k].port, ["/ok"] * n[k]), [200] * n[k])
        want = {
            "a": dict(container_id=cid["a"], k8s_pod_uid=uid["a"], k8s_namespace_name="myns",
                      k8s_pod_name="mypod", k8s_container_name="app"),
            "b": dict(container_id=cid["b"], k8s_pod_uid=uid["b"]),
            "c": dict(container_id=cid["c"]),
            "d": dict(),
        }
        ident = ("container_id", "k8s_pod_uid", "k8s_namespace_name", "k8s_pod_name", "k8s_container_name")
        for k in "abcd":
            port = str(srv[k].port)
            svc = lib.exe_basename(srv[k].pid)
            labels = {i: want[k].get(i, "") for i in ident}
            s = agent.wait_count(n[k], server_port=port, service_name=svc, **labels)
            agent.wait_count(n[k], server_port=port, settle=0)
            for name in (HIST + "_count", "process_threads"):
                ss = select_series(s, name, server_port=port) if name.startswith(HIST) else \
                    [(l, v) for l, v in select_series(s, name, service_name=svc)
                     if all(l.get(i, "") == labels[i] for i in ident)]
                if not ss:
                    fail("server %s: no %s series with %s; have: %s" % (k, name, labels, select_series(s, name)))
                for l, v in ss:
                    got = {i: l[i] for i in ident if l.get(i, "") != ""}
                    if got != want[k]:
                        fail("server %s (%s): %s identity labels %s, expected %s" % (k, rel.get(k, "no cgroup"),
                                                                                    name, got, want[k]))
                    if name == "process_threads" and not v >= 1:
                        fail("process_threads for server %s: %g" % (k, v))
        # identity labels come after service_name in each line
        text = agent.scrape_text()
        for line in text.split("\n"):
            if 'container_id="' in line and not line.startswith("#"):
                i_svc = line.find('service_name="')
                if i_svc < 0 or any(0 <= line.find(i + '="') < i_svc for i in ident):
                    fail("identity label before service_name: %s" % line)
        agent.stop()
        ok = True
    finally:
        errs = []
        for cg in reversed(cgs):
            errs += cg.remove()
        if errs and ok:
            fail("cannot remove test cgroups: %s" % errs)


# ---------------------------------------------------------------------------
# configuration file and environment

def test_targets_config_file_and_environment():
    srv = {k: start_python_server() for k in "abc"}
    tmp = lib.mkdtemp("cfg")
    p1, p2, p3 = lib.free_port(), lib.free_port(), lib.free_port()
    cfg = lib.write_file(os.path.join(tmp, "aion.conf"), (
        "# aion test configuration\n"
        "listen = 127.0.0.1:%d\n"
        "service_name = default-name      # global default\n"
        "max_routes = 100\n"
        "\n"
        "[target]\n"
        "pid = %d\n"
        "service_name = a\n"
        "[target]\n"
        "pid = %d\n"
        "service_name = b\n"
        "[target]\n"
        "pid = %d\n") % (p1, srv["a"].pid, srv["b"].pid, srv["c"].pid))
    ports = {k: str(s.port) for k, s in srv.items()}

    def send(counts):
        for k, n in counts.items():
            _eq("statuses %s" % k, lib.keepalive_requests(srv[k].port, ["/ok"] * n), [200] * n)

    def no_series(agent, k):
        s = agent.scrape()
        if select_series(s, HIST + "_count", server_port=ports[k]):
            fail("server %s (not selected) has series:\n%s" % (k, fmt_series(s, server_port=ports[k])))

    # 1. the file alone: its listen address, three targets, two named + the global default
    agent = lib.start_agent_env(["--config", cfg], port=p1, add_listen=False)
    send({"a": 3, "b": 5, "c": 2})
    for k, svc, n in (("a", "a", 3), ("b", "b", 5), ("c", "default-name", 2)):
        s = agent.wait_count(n, server_port=ports[k], service_name=svc)
        agent.wait_count(n, server_port=ports[k], settle=0)
        for l, _ in select_series(s, HIST + "_count", server_port=ports[k]):
            for i in ("container_id", "k8s_pod_uid", "k8s_namespace_name", "k8s_pod_name", "k8s_container_name"):
                if i in l:
                    fail("server %s outside any container has %s=%r" % (k, i, l[i]))
    agent.stop()

    # 2. the file named by AION_CONFIG; AION_LISTEN wins over the file's
    # address, AION_PID replaces the file's targets, AION_SERVICE_NAME its
    # default service name
    agent = lib.start_agent_env([], env={"AION_CONFIG": cfg, "AION_LISTEN": "127.0.0.1:%d" % p2,
                                         "AION_PID": str(srv["c"].pid), "AION_SERVICE_NAME": "from-env"},
                                port=p2, add_listen=False)
    if lib.port_open(p1):
        fail("agent with AION_LISTEN=127.0.0.1:%d also listens on the file's port %d" % (p2, p1))
    send({"a": 2, "c": 3})
    agent.wait_count(3, server_port=ports["c"], service_name="from-env")
    agent.wait_count(3, server_port=ports["c"], settle=0)
    no_series(agent, "a")
    agent.stop()

    # 3. flags beat both: --listen over AION_LISTEN and the file, --pid
    # replaces AION_PID and the file's targets
    agent = lib.start_agent_env(["--config", cfg, "--listen", "127.0.0.1:%d" % p3, "--pid", str(srv["b"].pid)],
                                env={"AION_LISTEN": "127.0.0.1:%d" % p2,
                                     "AION_PID": "%d,%d" % (srv["a"].pid, srv["c"].pid)},
                                port=p3, add_listen=False)
    for p in (p1, p2):
        if lib.port_open(p):
            fail("agent with --listen 127.0.0.1:%d also listens on %d" % (p3, p))
    send({"a": 1, "b": 2, "c": 1})
    agent.wait_count(2, server_port=ports["b"])
    agent.wait_count(2, server_port=ports["b"], settle=0)
    no_series(agent, "a")
    no_series(agent, "c")
    agent.stop()


def test_targets_config_bad_line_exits_with_file_and_line():
    tmp = lib.mkdtemp("cfg")
    cases = [
        ("# comment\n[target]\nbogus = 1\n", 3),
        ("listen = 127.0.0.1:%d\nmax_routes = lots\n" % lib.free_port(), 2),
        ("[target]\nservice_name = x\nport = 70000\n", 3),
    ]
    for i, (text, line) in enumerate(cases):
        cfg = lib.write_file(os.path.join(tmp, "bad%d.conf" % i), text)
        for how, args, env in (("--config", ["--config", cfg, "--listen", "127.0.0.1:%d" % lib.free_port()], None),
                               ("AION_CONFIG", ["--listen", "127.0.0.1:%d" % lib.free_port()], {"AION_CONFIG": cfg})):
            rc, err = lib.run_agent_expect_exit(args, env)
            what = "config %r via %s" % (text, how)
            if rc == 0:
                fail("%s: agent exited 0 (stderr %r)" % (what, err))
            if rc < 0:
                fail("%s: agent died from signal %d" % (what, -rc))
            lines = err.rstrip("\n").split("\n")
            if not err.strip() or len(lines) != 1:
                fail("%s: expected one line on stderr, got %d: %r" % (what, len(lines), err))
            if "%s:%d" % (cfg, line) not in err:
                fail("%s: stderr does not name %s:%d: %r" % (what, cfg, line, err))


# ---------------------------------------------------------------------------
# negative

def test_targets_unselected_processes_never_counted():
    """--exe /usr/sbin/nginx --pid <python A>: an nginx run from a copy of
    the binary (another inode), a Python server that is not A nor a child of
    A, and a Python server run by a copy of python3.11 are never counted (no
    series for their ports, no `instrumented` line for their pids); the
    selected nginx and A are counted exactly."""
    tmp = lib.mkdtemp("neg")
    nginx_copy = lib.copy_binary(NGINX, os.path.join(tmp, "nginx"))
    py_a = start_python_server()
    agent = start_agent(["--exe", NGINX, "--pid", str(py_a.pid)])
    ng = lib.NginxAt(NGINX, NGINX_BODY)
    ng_copy = lib.NginxAt(nginx_copy, NGINX_BODY)
    py_b = start_python_server()
    py_copy = lib.start_python_server_with(lib.copy_binary(lib.PYTHON, os.path.join(tmp, "python3")))
    for obj, n in ((ng, 3), (ng_copy, 3)):
        _eq("nginx statuses", _single_requests(obj.url("/ok"), n), [200] * n)
    for obj, n in ((py_a, 2), (py_b, 2), (py_copy, 2)):
        _eq("python statuses", lib.keepalive_requests(obj.port, ["/ok"] * n), [200] * n)
    agent.wait_count(3, server_port=str(ng.port), service_name="nginx")
    agent.wait_count(2, server_port=str(py_a.port))
    time.sleep(0.5)   # two agent polls: a wrongly traced server would show by now
    s = agent.scrape()
    for what, port in (("nginx from a copy of the binary", ng_copy.port), ("python not under --pid", py_b.port),
                       ("python from a copy", py_copy.port)):
        if select_series(s, HIST + "_count", server_port=str(port)):
            fail("%s (port %d) was counted:\n%s" % (what, port, fmt_series(s, server_port=str(port))))
    for pid in [ng_copy.pid] + ng_copy.workers + [py_b.pid, py_copy.pid]:
        if target_events(agent, pid, "instrumented"):
            fail("unselected pid %d was instrumented:\n%s" % (pid, lib._target_lines(agent, pid)))
    _eq("counts still exact", (count(s, server_port=str(ng.port)), count(s, server_port=str(py_a.port))), (3, 2))
    agent.stop()


def test_targets_exe_binary_replaced_on_disk_followed_by_path():
    """--exe PATH, then PATH is replaced by a new file (a new inode, as a
    package upgrade does with rename): a server started from PATH after the
    replacement is matched by path and its requests are counted; one started
    from the old file before the replacement was counted too."""
    d = lib.mkdtemp("replace")
    path = os.path.join(d, "app-python")
    lib.copy_binary("/usr/bin/python3.11", path)
    agent = start_agent(["--exe", path])
    old = lib.start_python_server_with(path)
    old_pid = old.listener_pid()
    wait_target_event(agent, old_pid, "instrumented")
    _eq("statuses (old file)", lib.keepalive_requests(old.port, ["/ok"] * 3), [200] * 3)
    # Replace: a new copy renamed over the path.
    tmp = os.path.join(d, ".app-python.new")
    lib.copy_binary("/usr/bin/python3.11", tmp)
    os.rename(tmp, path)
    if lib.file_id(path) == lib.file_id("/proc/%d/exe" % old_pid):
        fail("the replacement kept the inode")
    new = lib.start_python_server_with(path)
    new_pid = new.listener_pid()
    e = wait_target_event(agent, new_pid, "instrumented")
    lib.log("new server instrumented: %s" % (e,))
    _eq("statuses (new file)", lib.keepalive_requests(new.port, ["/ok"] * 4), [200] * 4)
    agent.wait_count(3, server_port=str(old.port), service_name="app-python", http_route="/ok")
    agent.wait_count(4, server_port=str(new.port), service_name="app-python", http_route="/ok")
    new.stop()
    old.stop()
    agent.stop()

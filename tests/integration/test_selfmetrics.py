"""The agent's own metrics (aion_agent_*): build info, process usage,
scrape duration, kernel BPF statistics (--bpf-stats), every hash table's
fill, and the per-family series budget (--max-series).

Figures are checked against what the kernel and the tools report on their
own: /proc/PID/stat and /proc/PID/fd of the agent, `bpftool map show`,
`aion-agent --version`, git, uname.
"""
import json
import os
import subprocess

import lib
from lib import HIST, OVERFLOW, fail, count, select_series, start_agent, start_python_server

MAP_ENTRIES = "aion_agent_map_entries"
MAP_MAX = "aion_agent_map_max_entries"


def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def _one(samples, name, **labels):
    ss = select_series(samples, name, **labels)
    if len(ss) != 1:
        fail("%s%s: expected one series, got %s" % (name, labels, ss))
    return ss[0][1]


def _labels(samples, name):
    ss = [k for k in samples if k[0] == name]
    if len(ss) != 1:
        fail("%s: expected one series, got %d" % (name, len(ss)))
    return dict(ss[0][1])


def _bpf_objects(pid, kind):
    """{id: info} of the BPF programs (kind "prog") or maps ("map") the
    process holds open, from its /proc fd table, with bpftool's view of
    each (this bpftool cannot list owner pids itself)."""
    ids = lib.bpf_fd_ids(pid)[kind + "_id"]
    out = subprocess.run(["bpftool", kind, "show", "-j"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        fail("bpftool %s show: %s" % (kind, out.stderr.strip()))
    return {o["id"]: o for o in json.loads(out.stdout) if o["id"] in ids}


def _proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def _proc_rss_bytes(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def test_selfmetrics_build_and_process():
    """build_info carries the version `--version` prints, the git revision
    the tree is at, the kernel release; the agent's CPU, RSS and fds lie
    between what /proc said just before and just after the scrape."""
    py = start_python_server()
    agent = start_agent(["--pid", str(py.pid)])
    pid = agent.proc.pid

    out = subprocess.run([lib.AGENT, "--version"], capture_output=True, text=True, timeout=10)
    version = out.stdout.split()[-1]
    rev = subprocess.run(["git", "-C", lib.HERE, "describe", "--always", "--dirty"],
                         capture_output=True, text=True, timeout=10)
    if rev.returncode != 0:
        fail("git describe failed in %s: %s" % (lib.HERE, rev.stderr.strip()))
    s = agent.scrape()
    labels = _labels(s, "aion_agent_build_info")
    _eq("build_info value", _one(s, "aion_agent_build_info"), 1)
    _eq("build_info version", labels.get("version"), version)
    _eq("build_info kernel_release", labels.get("kernel_release"), os.uname().release)
    # The binary was built from this tree; --dirty may differ if files
    # changed since the build, the commit may not.
    if labels.get("revision", "").split("-dirty")[0] != rev.stdout.strip().split("-dirty")[0]:
        fail("build_info revision %r, git describe says %r" % (labels.get("revision"), rev.stdout.strip()))
    if not labels.get("libbpf_version", "").startswith("1."):
        fail("build_info libbpf_version %r" % labels.get("libbpf_version"))

    for _ in range(3):
        cpu0, rss0 = _proc_cpu_seconds(pid), _proc_rss_bytes(pid)
        fds0 = len(os.listdir("/proc/%d/fd" % pid))
        s = agent.scrape()
        cpu1, rss1 = _proc_cpu_seconds(pid), _proc_rss_bytes(pid)
        fds1 = len(os.listdir("/proc/%d/fd" % pid))
        cpu = _one(s, "aion_agent_process_cpu_seconds_total")
        if not cpu0 - 0.01 <= cpu <= cpu1 + 0.01:
            fail("agent CPU %g s outside /proc's %g..%g" % (cpu, cpu0, cpu1))
        rss = _one(s, "aion_agent_process_resident_memory_bytes")
        lo, hi = min(rss0, rss1), max(rss0, rss1)
        # A scrape builds its body in memory: allow what one scrape allocates.
        if not lo - (1 << 20) <= rss <= hi + (1 << 20):
            fail("agent RSS %d outside /proc's %d..%d (+-1 MiB)" % (rss, lo, hi))
        fds = _one(s, "aion_agent_process_open_fds")
        # Open while the agent counts: the scrape's connection and the
        # directory it reads /proc/self/fd through.
        if not min(fds0, fds1) <= fds <= max(fds0, fds1) + 2:
            fail("agent open fds %g outside /proc's %d..%d (+2: the scrape's socket and "
                 "the /proc/self/fd handle)" % (fds, fds0, fds1))
    with open("/proc/%d/limits" % pid) as f:
        soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
    _eq("process_max_fds", _one(s, "aion_agent_process_max_fds"), float(soft))
    with open("/proc/%d/stat" % pid) as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = [int(l.split()[1]) for l in f if l.startswith("btime ")][0]
    started = btime + start_ticks / os.sysconf("SC_CLK_TCK")
    st = _one(s, "aion_agent_process_start_time_seconds")
    if abs(st - started) > 2:
        fail("process_start_time_seconds %f, /proc says the agent started at %f" % (st, started))
    dur = _one(s, "aion_agent_scrape_duration_seconds")
    if not 0 < dur < 5:
        fail("aion_agent_scrape_duration_seconds %g" % dur)
    for name in ("aion_agent_bpf_program_runs_total", "aion_agent_bpf_program_run_seconds_total"):
        if select_series(s, name):
            fail("%s exported without --bpf-stats" % name)
    agent.stop()


def test_selfmetrics_bpf_stats():
    """--bpf-stats: every loaded program has a run counter and a run time;
    N requests to a traced server run the receive-exit programs at least N
    more times (the server reads each request), and their time grows."""
    py = start_python_server()
    agent = start_agent(["--pid", str(py.pid), "--bpf-stats", "--no-tls"])
    s0 = agent.scrape()
    progs = {dict(k[1])["program"] for k in s0 if k[0] == "aion_agent_bpf_program_runs_total"}
    mine = {p["name"] for p in _bpf_objects(agent.proc.pid, "prog").values()}
    _eq("programs with statistics vs the agent's programs in bpftool", sorted(progs), sorted(mine))
    n = 200
    codes = lib.curl([py.url("/ok")] * n)
    _eq("statuses", codes, [200] * n)
    agent.wait_count(n, server_port=str(py.port))
    s1 = agent.scrape()
    # The server reads each request with some receive call (Python's
    # sockets use recvfrom, others read, readv or recvmsg).
    recv = ("aion_exit_read", "aion_exit_readv", "aion_exit_recvfrom", "aion_exit_recvmsg")
    runs = [sum(_one(x, "aion_agent_bpf_program_runs_total", program=p) for p in recv) for x in (s0, s1)]
    secs = [sum(_one(x, "aion_agent_bpf_program_run_seconds_total", program=p) for p in recv) for x in (s0, s1)]
    if runs[1] - runs[0] < n:
        fail("the receive-exit programs %s ran %d times over %d requests read by a traced server"
             % (recv, runs[1] - runs[0], n))
    if not secs[1] > secs[0]:
        fail("the receive-exit programs' run time did not grow: %s" % secs)
    agent.stop()


def test_selfmetrics_map_fill_matches_bpftool():
    """aion_agent_map_entries / map_max_entries cover every hash table the
    agent loaded (as bpftool lists them for its pid), with bpftool's
    capacities; `ports` holds one entry per --port."""
    py = start_python_server()
    py2 = start_python_server()
    agent = start_agent(["--port", str(py.port), "--port", str(py2.port)])
    s = agent.scrape()
    maps = {m["name"]: m for m in _bpf_objects(agent.proc.pid, "map").values()
            if m.get("type") in ("hash", "lru_hash")}
    got = {dict(k[1])["map"]: v for k, v in s.items() if k[0] == MAP_MAX}
    _eq("hash tables reported vs bpftool", sorted(got), sorted(maps))
    for name, cap in got.items():
        _eq("capacity of %s" % name, cap, float(maps[name]["max_entries"]))
    _eq("entries of ports", _one(s, MAP_ENTRIES, map="ports"), 2)
    for name in got:
        e = _one(s, MAP_ENTRIES, map=name)
        if not 0 <= e <= got[name]:
            fail("%s entries %g outside 0..%g" % (name, e, got[name]))
    agent.stop()


def test_selfmetrics_max_series_budget():
    """--max-series 100: of 150 distinct routes (route budget raised to
    1000), 100 label sets are kept with their exact counts, and the other
    50 requests are counted in aion_agent_series_overflow_total."""
    py = start_python_server()
    agent = start_agent(["--pid", str(py.pid), "--max-series", "100", "--max-routes", "1000"])
    paths = ["/ok/r%03d" % i for i in range(150)]
    codes = lib.keepalive_requests(py.port, paths)
    if len(codes) != 150:
        fail("expected 150 responses, got %d" % len(codes))
    port = str(py.port)

    def settled():
        s = agent.scrape()
        kept = count(s, HIST, server_port=port)
        over = sum(v for k, v in s.items() if k[0] == OVERFLOW and dict(k[1]).get("metric") == HIST)
        return kept + over == 150 and s
    s = lib.wait_for(settled, 10, what="kept + overflow never reached 150 requests")
    series = select_series(s, HIST + "_count", server_port=port)
    _eq("label sets kept", len(series), 100)
    _eq("requests counted in kept series", count(s, HIST, server_port=port), 100)
    _eq("overflow counted", sum(v for k, v in s.items()
                               if k[0] == OVERFLOW and dict(k[1]).get("metric") == HIST), 50)
    agent.stop()


def test_selfmetrics_service_budget():
    """--max-series 100 also bounds the services (names and container
    identities) the agent keeps: a traced shell running 150 programs of 150
    different names gives 99 named services plus service_name="_other"
    (the 100th place), and the processes beyond are counted."""
    tmp = lib.mkdtemp("names")
    names = ["prog%03d" % i for i in range(150)]
    for n in names:
        lib.copy_binary("/bin/true", os.path.join(tmp, n))
    script = os.path.join(tmp, "run.sh")
    lib.write_file(script, "#!/bin/sh\nread go\nfor n in %s; do \"%s/$n\" || exit 1; done\necho done\n"
                   % (" ".join(names), tmp), mode=0o755)
    sh = lib.spawn(["/bin/sh", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    agent = start_agent(["--pid", str(sh.pid), "--max-series", "100"])
    sh.stdin.write(b"go\n")
    sh.stdin.flush()
    out = sh.stdout.readline()
    _eq("script output", out, b"done\n")
    _eq("script exit status", sh.wait(30), 0)

    def services():
        s = agent.scrape()
        svc = {dict(k[1])["service_name"] for k in s if k[0] == "process_cpu_time_seconds_total"}
        return len(svc) >= 100 and (s, svc)
    s, svc = lib.wait_for(services, 10, what="fewer than 100 services in process_cpu_time_seconds_total")
    _eq("services kept", len(svc), 100)
    if "_other" not in svc or "sh" not in svc:
        fail("expected sh and _other among the services, got %s" % sorted(svc))
    kept = sorted(svc - {"_other", "sh"})
    _eq("named programs kept (the first 98)", kept, names[:98])
    # Counted per incarnation the agent adds: each exec of the 52 programs
    # beyond, and the fork before it when the fork's notice is handled after
    # the exec (the agent names a process from /proc/PID/exe then).
    over = _one(s, "aion_agent_service_overflow_total")
    if not 150 - 98 <= over <= 2 * (150 - 98):
        fail("aion_agent_service_overflow_total %g: expected 52 execs (+ up to 52 forks)" % over)
    if "raise --max-series" not in agent.stderr_text():
        fail("no log line about the service budget; stderr:\n%s" % agent.stderr_text()[-1500:])
    agent.stop()

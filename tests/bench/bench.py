#!/usr/bin/python3
"""aion benchmark suite (Python 3 stdlib; run as root on loopback).

    /usr/bin/python3 tests/bench/bench.py [--quick] [--rounds N] [--seconds S] ...

Workloads (each as interleaved rounds baseline, floor, agent, baseline, ...;
the figures are medians of per-round ratios, so drift of the machine cancels):

  nginx-tiny   nginx, worker_processes 1, `return 200 "ok\\n"`, keep-alive, wrk
  nginx-20k    nginx, worker_processes 1, a 20 KB static file, sendfile on
  nginx-https  nginx-tiny over TLS: `listen ... ssl` with a self-signed RSA 2048
               certificate, wrk against https:// (keep-alive); counted: the
               agent's series with url_scheme="https"
  go-nethttp   Go net/http server (GOMAXPROCS=1), "ok\\n"
  http-client  the traced process is the client: wrk (--exe <wrk>) against an
               untraced nginx (the nginx-tiny config); CPU per request is wrk's
  pgbench      PostgreSQL 15, pgbench -n -S -c 4 -j 2 -M prepared (select only)
  redis        redis-server 7, redis-benchmark -c 50 -P 16 -t get,set

  baseline: no BPF program attached; floor: build/bench/aion-floor (empty
  programs on exactly the agent's tracepoints, and empty uprobes on the TLS
  functions of the libssl the traced processes map); agent: build/aion-agent --exe
  <server binary> (pgbench: --port <postgres port> --exe <pgbench>; redis:
  --exe redis-server --exe redis-benchmark; http-client: --exe <wrk>). The
  floor and the agent are started before their round and stopped (SIGTERM)
  after it; the server runs across the workload's rounds.

Scaling (agent only, plus a baseline for throughput where it makes sense):
  series       1k / 10k / 100k distinct routes /r/<letters> (wrk + lua)
  conns        wrk -c 10 / 1000 / 10000 against nginx (worker_connections 20000)
  procs        nginx worker_processes 1 / 100, same load

Output: one table on stdout, build/bench/results.csv, budget lines and
`bench: N within budget, M over budget`. The exit status is 0 when the
benchmark ran (even if the budget fails); 1 when it could not run.
"""
import argparse
import csv
import datetime
import http.client
import json
import os
import platform
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True     # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import lib  # noqa: E402  (free_port, spawn/stop_proc/cleanup, exposition parser, Agent)

NGINX = "/usr/sbin/nginx"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HIST_COUNT = "http_server_request_duration_seconds_count"
HTTP_CLIENT_COUNT = "http_client_request_duration_seconds_count"
LOST = "aion_agent_events_lost_total"
PARSE_ERRORS = "aion_agent_parse_errors_total"
SERIES = "aion_agent_series"   # histogram label sets held
# Sample lines per HTTP server label set with the default buckets: the
# duration histogram (14 buckets, +Inf, _sum, _count) and its two body-size
# histograms (10 buckets, +Inf, _sum, _count each).
SERIES_PER_SET = 17 + 2 * 13
HISTS_PER_SET = 3                # aion_agent_series counts each histogram
OVERFLOW = "aion_agent_series_overflow_total"
DB_SERVER_COUNT = "db_server_operation_duration_seconds_count"
DB_CLIENT_COUNT = "db_client_operation_duration_seconds_count"

PG_BIN = "/usr/lib/postgresql/15/bin"
PGBENCH = PG_BIN + "/pgbench"       # not /usr/bin/pgbench (Debian's Perl wrapper)
REDIS_SERVER = "/usr/bin/redis-server"      # on Debian a symlink to redis-check-rdb
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"

VERBOSE = False
NOFILE = [1024]      # RLIMIT_NOFILE in force (set in main)


def say(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def vlog(msg):
    if VERBOSE:
        say("  " + msg)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# /proc

def cpu_seconds(pids):
    """utime+stime (s) summed over pids (each counts all its threads)."""
    tot = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        tot += int(rest[11]) + int(rest[12])     # fields 14, 15: utime, stime
    return tot / CLK_TCK


def proc_table():
    """{pid: (ppid, utime+stime, cutime+cstime) in ticks} of every process
    (one pass over /proc)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
    return out


def tree_cpu(root):
    """(CPU seconds, pids of the tree below root) of the process tree under
    root: utime+stime of root and of every live descendant, plus their
    cutime+cstime, the CPU of the children they have already reaped. This
    sum only grows and counts every process of the tree exactly once as long
    as each exited process is reaped by its parent (a PostgreSQL backend by
    the postmaster), so the difference of two samples is the tree's CPU in
    between, including backends that started and exited meanwhile, to one
    tick (1/CLK_TCK s) per process alive at either sample."""
    tab = proc_table()
    kids = {}
    for pid, (ppid, _, _) in tab.items():
        kids.setdefault(ppid, []).append(pid)
    tot, todo, below = 0, [root], []
    while todo:
        pid = todo.pop()
        if pid not in tab:
            continue
        tot += tab[pid][1] + tab[pid][2]
        for c in kids.get(pid, ()):
            below.append(c)
            todo.append(c)
    return tot / CLK_TCK, below


def status_kb(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def busy_seconds():
    """Non-idle CPU seconds of the whole machine (all CPUs) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is inside user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bpf_tracing_links():
    """Ids of the tracepoint/tracing BPF links attached on the host (anyone's);
    None when bpftool fails."""
    try:
        r = subprocess.run(["bpftool", "-j", "link", "show"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
        links = json.loads(r.stdout.decode() or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return {l["id"] for l in links if l.get("type") in ("perf_event", "tracing", "raw_tracepoint")}


def own_link_ids(pid):
    """Ids of the BPF links held open by process pid."""
    return lib.bpf_fd_ids(pid)["link_id"]


def prog_runs(pid):
    """{program name: (run_cnt, run_time_ns)} of the programs pid holds
    (kernel.bpf_stats_enabled must be 1 for the counts to move)."""
    out = {}
    for i in lib.bpf_fd_ids(pid)["prog_id"]:
        r = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(i)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
        if r.returncode != 0:
            continue
        j = json.loads(r.stdout.decode() or "{}")
        n, t = out.get(j.get("name", "?"), (0, 0))
        out[j.get("name", "?")] = (n + j.get("run_cnt", 0), t + j.get("run_time_ns", 0))
    return out


BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"

# nginx-tiny: the syscalls nginx makes per request (it reads the request
# with recvfrom, answers with writev); wrk's read and write run hooks too,
# in a process no program traces.
NGINX_DATA_PROGS = ("exit_recvfrom", "exit_writev")
# ... and in the lean variant the socket tracepoints' programs, which run
# for wrk's socket reads and writes as well (stopping at the bit test).
LEAN_PROGS = ("lean_recv", "lean_send")


def attach_points(pid):
    """The set of tracepoints process pid has BPF programs attached to:
    `bpftool perf show` names the tracepoint of each perf-event and
    raw-tracepoint (tp_btf) attachment held by pid; `bpftool link show` the
    target of its tracing (fentry/fexit) links. None when bpftool fails."""
    try:
        r = subprocess.run(["bpftool", "-j", "perf", "show"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
        perf = json.loads(r.stdout.decode() or "[]")
        r = subprocess.run(["bpftool", "-j", "link", "show"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
        links = json.loads(r.stdout.decode() or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    out = set()
    for e in perf:
        if e.get("pid") != pid:
            continue
        if e.get("filename"):
            # A uprobe: the library file and the offset of the function. The
            # agent reaches a file as /proc/PID/root/<path> (the process's
            # mount namespace; the process may be gone by now); the real path
            # of the rest (/lib and /usr/lib are one directory on Debian).
            f = re.sub(r"^/proc/\d+/root(?=/)", "", e["filename"])
            out.add("%s/%s+0x%x" % (e.get("fd_type", "?"), os.path.realpath(f), e.get("offset", 0)))
        else:
            out.add("%s/%s" % (e.get("fd_type", "?"), e.get("tracepoint") or e.get("func") or e.get("prog_id")))
    own = own_link_ids(pid)
    for l in links:
        if l.get("id") in own and l.get("type") == "tracing":
            out.add("tracing/%s:%s" % (l.get("attach_type"), l.get("target_btf_id")))
    return out


def is_uprobe(point):
    return point.startswith(("uprobe/", "uretprobe/"))


def mapped_files(pids=(), exes=()):
    """The files the traced processes map executable, where the agent looks
    for TLS libraries (it probes a file that defines SSL_read/SSL_write or
    gnutls_record_recv/send, once per file): from /proc/PID/maps of the
    running processes, and for the clients the script starts in each round
    (wrk, pgbench, redis-benchmark; not running yet) the executable and what
    the dynamic loader maps for it (ldd). The floor is given all of them
    (`--file`) and puts its empty uprobes where the agent would."""
    paths = []
    for pid in pids:
        try:
            with open("/proc/%d/maps" % pid) as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                        p = parts[5].rstrip("\n")
                        if not p.endswith(" (deleted)"):
                            paths.append(p)
        except OSError:
            continue
    for exe in exes:
        paths.append(exe)
        try:
            r = subprocess.run(["ldd", exe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            raise BenchError("ldd %s failed" % exe)
        paths += re.findall(r"(?:=> |^\s*)(/\S+) \(0x", r.stdout.decode("utf-8", "replace"), re.M)
    out, seen = [], set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(p)
    return out


def foreign_links(variant):
    """Tracing links attached by anything but our floor/agent: another agent
    or tracer on the host makes the baseline not a baseline (-1: unknown)."""
    ids = bpf_tracing_links()
    if ids is None:
        return -1
    if variant:
        ids -= own_link_ids(variant.pid)
    return len(ids)


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "cpu": model,
    }


def raise_nofile(n):
    """Raise the soft RLIMIT_NOFILE (inherited by wrk, nginx, the agent) to
    n, or to the hard limit when n is above it (no CAP_SYS_RESOURCE).
    Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, n)
    if hard != resource.RLIM_INFINITY and want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# --------------------------------------------------------------------------
# servers

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {rlimit};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
events {{ worker_connections {wconns}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port}{ssl} backlog=4096;
        server_name localhost;
{tls}        root {tmp}/www;
        location = /f20k.bin {{ }}
{extra}        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


class Server:
    name = "?"
    exe = None
    pids = ()
    scheme = "http"   # url_scheme of the requests (nginx-https: "https")
    client_exes = ()  # traced clients the script starts per round (what they map: mapped_files)
    db = False        # a database server driven by its own client (DbServer), not wrk
    driven = False    # the load is the object's own prepare_round/load/finish_round (DbServer, WrkClient)
    client = False    # the traced process is the HTTP client, wrk (WrkClient); the server is not traced

    def selectors(self):
        """The agent's target selectors for this workload."""
        return ["--exe", self.exe]

    def cpu(self):
        return cpu_seconds(self.pids)

    def tls_pids(self):
        """The traced processes running across the rounds (their maps name
        the files where the agent looks for TLS libraries)."""
        return list(self.pids)

    def url(self, path="/"):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)


# stub_status for WrkClient: nginx's own count of the requests it received.
NGINX_STATUS_PATH = "/aion-bench-status"
NGINX_STATUS_LOC = "        location = %s { stub_status; }\n" % NGINX_STATUS_PATH


# nginx-https: the server's certificate and key (made by make_cert).
NGINX_TLS = """\
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
"""


def make_cert(tmp):
    """A self-signed RSA 2048 certificate for CN=localhost, valid 2 days, and
    its unencrypted key: tmp/cert.pem, tmp/key.pem."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise BenchError("openssl is not installed (apt-get install openssl)")
    argv = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "2",
            "-keyout", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem")]
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=120)
    except subprocess.TimeoutExpired:
        raise BenchError("openssl req did not finish within 120 s")
    if r.returncode != 0:
        raise BenchError("%s failed (rc %d): %s" % (" ".join(argv), r.returncode,
                                                    r.stdout.decode("utf-8", "replace")[-1500:]))


class NginxServer(Server):
    def __init__(self, workers=1, wconns=1024, start_timeout=20.0, status=False, tls=False):
        self.exe = NGINX
        self.tmp = lib.mkdtemp("bench-nginx")
        self.port = lib.free_port()
        if tls:
            self.scheme = "https"
            make_cert(self.tmp)
        os.makedirs(os.path.join(self.tmp, "www"))
        os.chmod(os.path.join(self.tmp, "www"), 0o755)
        with open(os.path.join(self.tmp, "www", "f20k.bin"), "wb") as f:
            f.write(os.urandom(20 * 1024))
        os.chmod(os.path.join(self.tmp, "www", "f20k.bin"), 0o644)
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port, workers=workers,
                                      wconns=wconns, rlimit=min(NOFILE[0], max(4096, 2 * wconns + 64)),
                                      extra=NGINX_STATUS_LOC if status else "",
                                      ssl=" ssl" if tls else "", tls=NGINX_TLS.format(tmp=self.tmp) if tls else ""))
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = lib.spawn([NGINX, "-p", self.tmp + "/", "-c", conf, "-e", self.tmp + "/error.log"],
                              stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("nginx exited with %d: %s" % (self.proc.returncode, self.errors()))
            if len(lib.children(self.proc.pid)) >= workers and lib.port_open(self.port):
                break
            if time.monotonic() > deadline:
                raise BenchError("nginx (%d workers) not up within %.0fs: %s"
                                 % (workers, start_timeout, self.errors()))
            time.sleep(0.05)
        self.workers = lib.children(self.proc.pid)
        self.pids = [self.proc.pid] + self.workers
        if PIN:
            for w in self.workers:
                os.sched_setaffinity(w, {PIN[1]})
        vlog("nginx master %d, %d workers, port %d%s" % (self.proc.pid, len(self.workers), self.port,
                                                         ", https" if tls else ""))

    def errors(self):
        return lib.log_tail(self.tmp, ("stderr", "error.log"), 1500)

    def requests_received(self):
        """nginx's stub_status `requests`: every request it has read, this
        query included (needs status=True)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", NGINX_STATUS_PATH)
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
        finally:
            c.close()
        m = re.search(r"server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)", body)
        if r.status != 200 or not m:
            raise BenchError("nginx stub_status: %d %r" % (r.status, body[:300]))
        return int(m.group(3))

    def stop(self):
        lib.stop_proc(self.proc, signal.SIGTERM, timeout=10.0)


class GoServer(Server):
    def __init__(self, binary, start_timeout=20.0):
        self.exe = binary
        self.tmp = lib.mkdtemp("bench-go")
        env = dict(os.environ, GOMAXPROCS="1")
        self._err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = lib.spawn([binary, "-addr", "127.0.0.1:%d" % lib.free_port()],
                              stdout=subprocess.PIPE, stderr=self._err, cwd=self.tmp, env=env)
        r, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("READY "):
            raise BenchError("go server did not start: %r" % line)
        self.port = int(line.split()[1])
        self.pids = [self.proc.pid]
        vlog("go server pid %d port %d" % (self.proc.pid, self.port))

    def stop(self):
        lib.stop_proc(self.proc, signal.SIGTERM, timeout=10.0)


class DbServer(Server):
    """A database server and its benchmark client. measure() calls
    prepare_round(), then samples CPU, load(seconds), samples CPU again, then
    finish_round(w), which may replace w["requests"] with the server's own
    exact count of the operations it executed."""
    db = True
    driven = True
    system = "?"           # db_system_name
    count_ops = ()         # (db_operation_name, db_collection_name) counted
    load_text = "?"

    def warm_up(self, seconds, round_seconds):
        raise NotImplementedError

    def prepare_round(self):
        pass

    def load(self, seconds):
        raise NotImplementedError

    def finish_round(self, w):
        pass

    def agent_counts(self, s):
        """The agent's counters for this server's port: server side and
        client side counts of count_ops, server-side operations (any) with
        an error_type, events lost."""
        srv = cli = 0
        for op, coll in self.count_ops:
            labels = dict(server_port=self.port, db_system_name=self.system,
                          db_operation_name=op, db_collection_name=coll)
            srv += lib.total(s, DB_SERVER_COUNT, **labels)
            cli += lib.total(s, DB_CLIENT_COUNT, **labels)
        errs = sum(v for l, v in lib.select_series(s, DB_SERVER_COUNT, server_port=self.port)
                   if l.get("error_type"))
        return {"counted": srv, "client_counted": cli, "db_errors": errs, "events_lost": lib.total(s, LOST)}


def run_client(argv, timeout, env=None, what=None):
    """Run a benchmark client to completion; (stdout text, wall seconds)."""
    t0 = time.monotonic()
    p = lib.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        lib.stop_proc(p, signal.SIGKILL)
        raise BenchError("%s did not finish within %.0fs" % (what or argv[0], timeout))
    out = out.decode("utf-8", "replace")
    if p.returncode != 0:
        raise BenchError("%s failed (rc %d): %s" % (" ".join(argv), p.returncode, out[-1500:]))
    return out, time.monotonic() - t0


class PgServer(DbServer):
    """PostgreSQL 15 in a temp dir (initdb --auth=trust, fsync and autovacuum
    off), the postmaster run as user postgres (setpriv execs, so the spawned
    pid is the postmaster) on 127.0.0.1:port; `pgbench -i -s 1` once. CPU is
    that of the postmaster's whole process tree (tree_cpu): the backends of a
    round are reaped by the postmaster before the round's CPU is sampled, so
    their whole CPU lands in the postmaster's cutime/cstime."""
    system = "postgresql"
    count_ops = (("SELECT", "pgbench_accounts"),)
    clients, threads = 4, 2

    def __init__(self, start_timeout=30.0):
        for b in ("initdb", "postgres", "psql", "pgbench"):
            if not os.access(os.path.join(PG_BIN, b), os.X_OK):
                raise BenchError("%s/%s is missing (apt-get install postgresql-15)" % (PG_BIN, b))
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise BenchError("setpriv is not installed (util-linux)")
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise BenchError("user postgres does not exist (package postgresql-15)")
        self.exe = PG_BIN + "/postgres"
        self.load_text = ("pgbench -n -S -c %d -j %d -M prepared (select only, -T per round)"
                          % (self.clients, self.threads))
        self.tmp = lib.mkdtemp("bench-pg")
        self.data = os.path.join(self.tmp, "data")
        sock = os.path.join(self.tmp, "sock")
        os.mkdir(sock)
        for d in (self.tmp, sock):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.port = lib.free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env.update(LC_ALL="C", LANG="C", HOME=self.tmp, PGCONNECT_TIMEOUT="10")
        as_pg = [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        r = subprocess.run(as_pg + [PG_BIN + "/initdb", "-D", self.data, "--auth=trust", "-U", "postgres",
                                    "--no-sync", "-E", "UTF8", "--locale=C"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.tmp, env=self.env,
                           stdin=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            raise BenchError("initdb failed (rc %d): %s" % (r.returncode, r.stdout.decode("utf-8", "replace")[-1500:]))
        self._log = open(os.path.join(self.tmp, "postgres.log"), "wb")
        self.proc = lib.spawn(as_pg + [self.exe, "-D", self.data, "-p", str(self.port), "-k", sock,
                                       "-c", "listen_addresses=127.0.0.1", "-c", "autovacuum=off",
                                       "-c", "fsync=off"],
                              stdout=self._log, stderr=self._log, cwd=self.tmp, env=self.env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("postgres exited with %d: %s" % (self.proc.returncode, self.errors()))
            if lib.port_open(self.port) and self.psql("select 1", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError("postgres not accepting queries within %.0fs: %s" % (start_timeout, self.errors()))
            time.sleep(0.1)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            if int(f.readline()) != self.pid:
                raise BenchError("postmaster.pid is not the spawned pid %d" % self.pid)
        run_client(self.pgbench_argv("-i", "-s", "1", "-q"), 300, self.env, "pgbench -i")
        self.aux = set()
        vlog("postgres postmaster %d port %d" % (self.pid, self.port))

    def errors(self):
        return lib.log_tail(self.tmp, ("postgres.log",), 1500)

    def psql(self, sql, check=True):
        r = subprocess.run([PG_BIN + "/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-X", "-A", "-t", "-q", "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=self.env, timeout=30, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise BenchError("psql -c %r failed: %s" % (sql, r.stderr.decode("utf-8", "replace")))
        return r

    def selectors(self):
        return ["--port", str(self.port), "--exe", PGBENCH]

    client_exes = (PGBENCH,)

    def tls_pids(self):
        return [self.pid]

    def pgbench_argv(self, *args):
        return [PGBENCH, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"] + list(args) + ["postgres"]

    def cpu(self):
        return tree_cpu(self.pid)[0]

    def wait_reaped(self, timeout=15.0):
        """Wait until the postmaster has reaped every backend (only the
        auxiliary processes seen at start are left below it)."""
        deadline = time.monotonic() + timeout
        while True:
            left = set(tree_cpu(self.pid)[1]) - self.aux
            if not left:
                return
            if time.monotonic() > deadline:
                raise BenchError("postgres backends %s still there %.0fs after pgbench exited"
                                 % (sorted(left), timeout))
            time.sleep(0.01)

    def warm_up(self, seconds, round_seconds):
        # The auxiliary processes (checkpointer, background writer, WAL
        # writer, ...) are the postmaster's children while no client is on.
        self.aux = set(tree_cpu(self.pid)[1])
        self.load(seconds)
        vlog("postgres auxiliary processes %s" % sorted(self.aux))

    def load(self, seconds):
        t0 = time.monotonic()
        out, _ = run_client(self.pgbench_argv("-n", "-S", "-c", str(self.clients), "-j", str(self.threads),
                                              "-M", "prepared", "-T", str(seconds)),
                            seconds + 120, self.env, "pgbench")
        self.wait_reaped()
        wall = time.monotonic() - t0
        n = re.search(r"number of transactions actually processed: (\d+)", out)
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if not n or not tps:
            raise BenchError("cannot parse pgbench's output: %s" % out[-1500:])
        nf = int(failed.group(1)) if failed else 0
        return {"requests": int(n.group(1)), "duration": wall, "rps": float(tps.group(1)),
                "socket_errors": nf, "socket_errors_text": "pgbench: %d failed transactions" % nf if nf else "",
                "non2xx": 0}

    def stop(self):
        lib.stop_proc(self.proc, signal.SIGINT, timeout=20.0)     # fast shutdown


def resp_command(port, *args, timeout=10.0):
    """One Redis command over RESP; the reply as text (simple or bulk string,
    integer); BenchError on an error reply."""
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(msg)
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                raise BenchError("redis closed the connection on %s" % " ".join(args))
            buf += d
            if b"\r\n" not in buf:
                continue
            head, rest = buf.split(b"\r\n", 1)
            if head[:1] in (b"+", b":"):
                return head[1:].decode()
            if head[:1] == b"-":
                raise BenchError("redis: %s: %s" % (" ".join(args), head[1:].decode()))
            if head[:1] == b"$":
                n = int(head[1:])
                if n < 0:
                    return None
                if len(rest) >= n + 2:
                    return rest[:n].decode()
                continue
            raise BenchError("redis: unexpected reply %r" % head[:40])


class RedisServer(DbServer):
    """redis-server on 127.0.0.1:port without persistence, driven by
    redis-benchmark with a fixed number of requests per round (sized in the
    warm-up to take about --seconds). Operations sent = the server's
    commandstats calls of GET and SET in the round (CONFIG RESETSTAT before)."""
    system = "redis"
    count_ops = (("GET", ""), ("SET", ""))
    clients, pipeline = 50, 16

    def __init__(self, start_timeout=20.0):
        for b in (REDIS_SERVER, REDIS_BENCHMARK):
            if not os.access(b, os.X_OK):
                raise BenchError("%s is missing (apt-get install redis-server redis-tools)" % b)
        self.exe = REDIS_SERVER
        self.n = 0
        self.tmp = lib.mkdtemp("bench-redis")
        self.port = lib.free_port()
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = lib.spawn([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--daemonize", "no", "--dir", self.tmp,
                               "--logfile", os.path.join(self.tmp, "redis.log")],
                              stdout=self._log, stderr=self._log, cwd=self.tmp)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("redis-server exited with %d: %s" % (self.proc.returncode, self.errors()))
            if lib.port_open(self.port):
                try:
                    if resp_command(self.port, "PING") == "PONG":
                        break
                except (OSError, BenchError):
                    pass
            if time.monotonic() > deadline:
                raise BenchError("redis-server not answering within %.0fs: %s" % (start_timeout, self.errors()))
            time.sleep(0.05)
        self.pid = self.proc.pid
        self.pids = [self.pid]
        vlog("redis-server pid %d port %d" % (self.pid, self.port))

    def errors(self):
        return lib.log_tail(self.tmp, ("stderr", "redis.log"), 1500)

    def selectors(self):
        return ["--exe", REDIS_SERVER, "--exe", REDIS_BENCHMARK]

    client_exes = (REDIS_BENCHMARK,)

    def set_load_text(self):
        self.load_text = ("redis-benchmark -c %d -P %d -t get,set -n %d (per test)"
                          % (self.clients, self.pipeline, self.n))

    def run_benchmark(self, n):
        out, wall = run_client([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(self.port), "-c", str(self.clients),
                                "-P", str(self.pipeline), "-t", "get,set", "-n", str(n), "-q", "--csv"],
                               600, None, "redis-benchmark")
        rps = dict((m.group(1), float(m.group(2)))
                   for m in re.finditer(r'^"(SET|GET)","([\d.]+)"', out, re.M))
        if set(rps) != {"SET", "GET"} or not all(rps.values()):
            raise BenchError("cannot parse redis-benchmark's output: %s" % out[-1500:])
        # Both tests run n requests one after the other: the combined rate.
        return 2 * n / (n / rps["SET"] + n / rps["GET"]), wall

    def warm_up(self, seconds, round_seconds):
        rps, _ = self.run_benchmark(100000)                        # calibration
        rps, _ = self.run_benchmark(max(10000, int(rps * seconds / 2)))    # warm-up proper
        self.n = max(10000, int(rps * round_seconds / 2))
        self.set_load_text()
        vlog("redis-benchmark: %.0f req/s in the warm-up: -n %d per test" % (rps, self.n))

    def prepare_round(self):
        resp_command(self.port, "CONFIG", "RESETSTAT")

    def load(self, seconds):
        rps, wall = self.run_benchmark(self.n)
        return {"requests": 2 * self.n, "duration": wall, "rps": rps, "socket_errors": 0,
                "socket_errors_text": "", "non2xx": 0}

    def finish_round(self, w):
        st = resp_command(self.port, "INFO", "commandstats") or ""
        calls = failed = 0
        seen = set()
        for m in re.finditer(r"^cmdstat_(get|set):(\S+)", st, re.M):
            seen.add(m.group(1))
            f = dict(kv.split("=", 1) for kv in m.group(2).split(","))
            calls += int(f["calls"])
            failed += int(f.get("failed_calls", 0)) + int(f.get("rejected_calls", 0))
        if seen != {"get", "set"}:
            raise BenchError("INFO commandstats has no get/set calls: %s" % st[-800:])
        w["client_requests"] = w["requests"]
        w["requests"] = calls
        w["socket_errors"] = failed
        w["socket_errors_text"] = "redis: %d failed/rejected get+set" % failed if failed else ""

    def stop(self):
        lib.stop_proc(self.proc, signal.SIGTERM, timeout=20.0)


class WrkClient(Server):
    """http-client: the traced process is the client. wrk (`--exe` its path
    from shutil.which) drives an untraced nginx (NginxServer, its config:
    `return 200 "ok\\n"`, plus a stub_status location the script queries
    outside the measured interval). The traced CPU is wrk's own utime+stime
    (/proc/PID/stat once wrk has exited, before it is reaped: its whole life
    is the round); cpu() is nginx's, the untraced peer (CSV peer_us).
    Sent = wrk's completed requests; counted = the agent's 200s of
    http_client_request_duration_seconds for nginx's port; received = the
    requests nginx read in the round (stub_status), so received - sent are
    the requests wrk wrote but whose responses it never read before exiting
    at its deadline (in_flight)."""
    driven = True
    client = True

    def __init__(self, conns, threads):
        wrk = shutil.which("wrk")
        if not wrk:
            raise BenchError("wrk is not installed")
        self.exe = wrk
        self.client_exes = (wrk,)
        self.conns, self.threads = conns, threads
        self.nginx = NginxServer(workers=1, status=True)
        self.port = self.nginx.port
        self.pids = self.nginx.pids
        self.load_text = ("wrk -t%d -c%d traced (--exe %s) against an untraced nginx `return 200`"
                          % (threads, conns, wrk))
        self.recv0 = None

    def warm_up(self, seconds, round_seconds):
        run_wrk(self.url("/"), seconds, self.conns, self.threads)

    def prepare_round(self):
        self.recv0 = self.nginx.requests_received()

    def load(self, seconds):
        return run_wrk(self.url("/"), seconds, self.conns, self.threads, own_cpu=True)

    def finish_round(self, w):
        # wrk has exited: nginx reads what it had not read yet of wrk's last
        # requests. Query until the count is stable (it grows by the query
        # itself only); every query counts itself.
        prev, n = self.nginx.requests_received(), 1
        deadline = time.monotonic() + 2.0
        while True:
            time.sleep(0.02)
            cur = self.nginx.requests_received()
            n += 1
            if cur == prev + 1 or time.monotonic() > deadline:
                break
            prev = cur
        w["received"] = cur - self.recv0 - n

    def tls_pids(self):
        return []     # nginx is not traced

    def agent_counts(self, s):
        port = self.port
        ok = lib.total(s, HTTP_CLIENT_COUNT, server_port=port, http_response_status_code="200")
        unanswered = lib.total(s, HTTP_CLIENT_COUNT, server_port=port, http_response_status_code="0")
        return {"counted": ok, "closed": unanswered, "events_lost": lib.total(s, LOST)}

    def stop(self):
        self.nginx.stop()


# --------------------------------------------------------------------------
# the agent and the floor

def fetch_metrics(port, timeout=60.0):
    """(seconds, body bytes) of one uncompressed GET /metrics."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise BenchError("/metrics returned %d" % r.status)
    finally:
        c.close()
    return time.perf_counter() - t0, body


def curl_scrape(port, timeout=120):
    """(seconds, bytes) to fetch the full, uncompressed /metrics body with curl
    (a C client, so that the figure is the agent's, not Python's)."""
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(timeout), "-o", "/dev/null",
                        "-w", "%{http_code} %{time_total} %{size_download}",
                        "http://127.0.0.1:%d/metrics" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 10)
    f = r.stdout.decode().split()
    if r.returncode != 0 or len(f) != 3 or f[0] != "200":
        raise BenchError("curl /metrics failed (rc %d): %s %s" % (r.returncode, r.stdout.decode(), r.stderr.decode()))
    return float(f[1]), int(f[2])


_GAUGE_RE = re.compile(rb"^(aion_agent_[a-z_]+)(?:\{[^}\n]*\})? (\S+)$", re.M)


class AgentRun:
    """The agent for one round (or one scaling point)."""

    def __init__(self, agent_bin, server, extra=()):
        lib.AGENT = agent_bin
        try:
            self.a = lib.start_agent(server.selectors() + list(extra), ready_timeout=30.0)
        except lib.TestFailure as e:
            raise BenchError("agent: %s" % e)
        self.pid = self.a.proc.pid
        self.server = server

    def cpu(self):
        return cpu_seconds([self.pid])

    def rss_mb(self):
        return status_kb(self.pid, "VmRSS") / 1024.0

    def samples(self, timeout=60.0):
        if self.a.proc.poll() is not None:
            raise BenchError("agent died (status %s): %s"
                             % (self.a.proc.returncode, self.a.stderr_text()[-1500:]))
        _, body = fetch_metrics(self.a.port, timeout)
        try:
            return lib.parse_exposition(body.decode("utf-8"))
        except lib.ParseError as e:
            raise BenchError("cannot parse /metrics: %s" % e)

    def gauges(self):
        """{name: value summed over labels} of the aion_agent_* families,
        without parsing the (possibly huge) histogram part."""
        _, body = fetch_metrics(self.a.port, timeout=120)
        out = {}
        for m in _GAUGE_RE.finditer(body):
            k = m.group(1).decode()
            out[k] = out.get(k, 0.0) + float(m.group(2))
        # Series as Prometheus counts them: every sample line.
        out["__lines__"] = body.count(b"\n") - body.count(b"\n#") - (1 if body.startswith(b"#") else 0)
        return out

    def counts(self, s=None):
        """{counted, closed, events_lost, parse_errors}: the 200 count and
        the connection_closed count for the server's port and url_scheme
        (nginx-https: "https"), events lost, parse errors (any protocol; a
        database server: DbServer.agent_counts; http-client:
        WrkClient.agent_counts)."""
        s = s if s is not None else self.samples()
        if self.server.driven:
            c = self.server.agent_counts(s)
        else:
            port, scheme = self.server.port, self.server.scheme
            c = {"counted": lib.total(s, HIST_COUNT, server_port=port, url_scheme=scheme,
                                      http_response_status_code="200"),
                 "closed": lib.total(s, HIST_COUNT, server_port=port, url_scheme=scheme,
                                     error_type="connection_closed"),
                 "events_lost": lib.total(s, LOST)}
        c["parse_errors"] = lib.total(s, PARSE_ERRORS)
        return c

    def settled_counts(self, timeout=5.0):
        """Counts once two scrapes 0.15 s apart agree (the agent drains its
        ring buffer every 50 ms)."""
        prev = self.counts()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.15)
            cur = self.counts()
            if cur == prev:
                return cur
            prev = cur
        return prev

    def stop(self):
        try:
            self.a.stop(timeout=20.0)
        except lib.TestFailure as e:
            raise BenchError("agent: %s" % e)


class FloorRun:
    def __init__(self, floor_bin, files=(), timeout=30.0, min_pids=(), mode="min"):
        """files: the files the traced processes map (mapped_files); the
        floor puts its empty uprobes on the TLS libraries among them.
        min_pids: the "min" variant (mode "min", aion-floor --min) for these
        processes: about the least work of a per-request timing on the data
        hooks instead of empty programs; or its "lean" twin (mode "lean",
        aion-floor --lean) on the socket tracepoints; stop() then sets hits
        (hook runs in them) and timed (writes timed)."""
        tmp = lib.mkdtemp("bench-floor")
        self._err = open(os.path.join(tmp, "stderr"), "wb")
        self.min = bool(min_pids)
        self.hits = self.timed = None
        argv = [floor_bin]
        if min_pids:
            argv.append("--" + mode)
            for pid in min_pids:
                argv += ["--pid", str(pid)]
        for f in files:
            argv += ["--file", f]
        self.proc = lib.spawn(argv, stdout=subprocess.PIPE, stderr=self._err)
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("READY "):
            self._err.flush()
            with open(os.path.join(tmp, "stderr"), "rb") as f:
                err = f.read().decode("utf-8", "replace")
            raise BenchError("floor did not attach: %r %s" % (line, err[-1500:]))
        self.programs = int(line.split()[1])
        self.pid = self.proc.pid

    def cpu(self):
        return cpu_seconds([self.pid])

    def rss_mb(self):
        return status_kb(self.pid, "VmRSS") / 1024.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            lib.stop_proc(self.proc, signal.SIGKILL)
            raise BenchError("floor did not exit on SIGTERM")
        if rc != 0:
            raise BenchError("floor exited with %d" % rc)
        if self.min:
            line = self.proc.stdout.read().decode("utf-8", "replace")
            m = re.search(r"HITS (\d+) TIMED (\d+)", line)
            if not m:
                raise BenchError("floor --min did not report its counts: %r" % line[-300:])
            self.hits, self.timed = int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------
# wrk

ROUTES_LUA = """\
-- distinct routes /r/<4 letters> (letters only: the route normaliser keeps
-- them apart), cycling through the first N; N is the script argument.
local n, i = 1000, 0
function init(args) n = tonumber(args[1]) or n end
local function name(k)
  local s = ""
  for _ = 1, 4 do
    s = string.char(97 + k % 26) .. s
    k = math.floor(k / 26)
  end
  return s
end
function request()
  local p = "/r/" .. name(i % n)
  i = i + 1
  return wrk.format("GET", p)
end
"""


# --pin: (wrk's CPU, the nginx workers' CPU), or None: nothing pinned.
PIN = None


def run_wrk(url, seconds, conns, threads=1, script=None, script_args=(), timeout_s=10, own_cpu=False):
    """Run wrk to completion; its figures. own_cpu: also "traced_cpu", wrk's
    own utime+stime (all threads) from /proc/PID/stat, read once it has
    exited but before it is reaped (a zombie keeps its counters)."""
    threads = max(1, min(threads, conns))
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
            "--timeout", "%ds" % timeout_s]
    if script:
        if not os.path.exists(script):          # wrk would silently run without it
            raise BenchError("wrk script %s is missing" % script)
        argv += ["-s", script]
    argv.append(url)
    if script_args:
        argv += ["--"] + [str(a) for a in script_args]
    if PIN:
        argv = ["taskset", "-c", str(PIN[0])] + argv
    p = lib.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    own = None
    try:
        if own_cpu:
            # wrk's output (a few hundred bytes) fits the pipes: wait for its
            # exit without reaping it (WNOWAIT), read its counters, then reap.
            deadline = time.monotonic() + seconds + 60
            while os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, seconds + 60)
                time.sleep(0.01)
            own = cpu_seconds([p.pid])
        out, err = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        lib.stop_proc(p, signal.SIGKILL)
        raise BenchError("wrk did not finish: %s" % " ".join(argv))
    out = out.decode("utf-8", "replace")
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if p.returncode != 0 or not m:
        raise BenchError("wrk failed (rc %s): %s %s" % (p.returncode, out, err.decode("utf-8", "replace")))
    dur = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    w = {
        "requests": int(m.group(1)),
        "duration": dur,
        "rps": int(m.group(1)) / dur if dur else 0.0,
        "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0,
        "socket_errors_text": errs.group(0) if errs else "",
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }
    if own is not None:
        w["traced_cpu"] = own
    return w


# --------------------------------------------------------------------------
# one measured round

def measure(server, url, seconds, conns, threads, variant=None, script=None, script_args=(), count=True):
    """Run wrk once against server (server.driven, a DbServer or the
    WrkClient: its own load()); variant is None (baseline), a FloorRun or an
    AgentRun already started. Returns a dict of raw figures ("requests":
    wrk's completed requests, or the operations the database client / server
    reports). "cpu_per_req_us" is the traced process's CPU per request: the
    server's, or with WrkClient wrk's own ("traced_cpu" from load()), nginx's
    then being "peer_cpu_per_req_us"."""
    r = {}
    fl0 = foreign_links(variant)
    counting = count and isinstance(variant, AgentRun)
    if counting:
        c0 = variant.counts()
    if server.driven:
        server.prepare_round()
    b0, k0 = busy_seconds(), children_cpu()
    s0 = server.cpu()
    v0 = variant.cpu() if variant else 0.0
    if server.driven:
        w = server.load(seconds)
    else:
        w = run_wrk(url, seconds, conns, threads, script, script_args)
    s1 = server.cpu()
    v1 = variant.cpu() if variant else 0.0
    b1, k1 = busy_seconds(), children_cpu()
    if server.driven:
        server.finish_round(w)      # may set w["requests"] from the server's own count
    r.update(w)
    traced = w.get("traced_cpu", s1 - s0)     # the traced process: the server, or wrk (http-client)
    r["server_cpu"] = traced
    r["server_util"] = traced / w["duration"] if w["duration"] else float("nan")
    r["cpu_per_req_us"] = traced / w["requests"] * 1e6 if w["requests"] else float("nan")
    if "traced_cpu" in w:
        r["peer_cpu_per_req_us"] = (s1 - s0) / w["requests"] * 1e6 if w["requests"] else float("nan")
    r["wrk_cpu"] = k1 - k0
    # Whatever else kept the machine busy meanwhile (other tenants, kworkers),
    # in CPUs: the noise indicator.
    r["other_cpus"] = max(0.0, (b1 - b0) - (s1 - s0) - (k1 - k0) - (v1 - v0)) / max(w["duration"], 1e-3)
    if variant:
        time.sleep(0.2)                       # let the agent drain its ring buffer
        v2 = variant.cpu()
        r["variant_cpu"] = v2 - v0
        r["variant_cpu_per_req_us"] = (v2 - v0) / w["requests"] * 1e6 if w["requests"] else float("nan")
        r["variant_rss_mb"] = variant.rss_mb()
    if counting:
        c1 = variant.settled_counts()
        for k in ("counted", "closed", "client_counted", "db_errors", "parse_errors"):
            if k in c1:
                r[k] = int(c1[k] - c0[k])
        r["events_lost"] = int(c1["events_lost"])
        r["lost"] = max(0, w["requests"] - r["counted"])
        if server.client:
            # A client: the agent counts a response when wrk reads it, as wrk
            # does, so counted must equal sent; what wrk wrote but never read
            # (nginx received it) is counted by neither.
            r["over"] = max(0, r["counted"] - w["requests"])
            r["in_flight"] = w["received"] - w["requests"]
        else:
            r["in_flight"] = max(0, r["counted"] - w["requests"])
        if "client_counted" in r:
            r["client_lost"] = max(0, w["requests"] - r["client_counted"])
    fl1 = foreign_links(variant)
    r["foreign_links"] = max(fl0, fl1) if min(fl0, fl1) >= 0 else -1
    return r


# --------------------------------------------------------------------------
# reporting

COLS = [
    # key, header, width, format
    ("section", "section", 8, "s"),
    ("workload", "workload", 11, "s"),
    ("variant", "variant", 8, "s"),
    ("param", "param", 11, "s"),
    ("rps", "req/s", 8, ".0f"),
    ("srv_util", "srv cpu", 7, ".2f"),
    ("thr_ratio", "thr x", 6, ".3f"),
    ("cpu_us", "srv us/req", 10, ".3f"),
    ("cpu_ratio", "cpu x", 6, ".3f"),
    ("agent_us", "agt us/req", 10, ".3f"),
    ("rss_mb", "RSS MB", 7, ".1f"),
    ("sent", "sent", 9, "d"),
    ("counted", "counted", 9, "d"),
    ("lost", "lost", 5, "d"),
    ("in_flight", "inflt", 5, "d"),
    ("events_lost", "evlost", 6, "d"),
    ("series", "series", 7, "d"),
    ("scrape_ms", "scrape ms", 9, ".1f"),
    ("other_cpus", "other", 5, ".2f"),
    ("foreign_links", "fgn", 3, "d"),
]

CSV_COLS = ["section", "workload", "variant", "param", "round", "rounds", "rps",
            "thr_ratio", "thr_ratio_min", "thr_ratio_max",
            "cpu_us", "cpu_ratio", "cpu_ratio_min", "cpu_ratio_max",
            "agent_us", "rss_mb", "sent", "counted", "lost", "in_flight", "over", "received", "closed",
            "client_counted", "client_lost", "db_errors",
            "events_lost", "parse_errors", "series", "overflow", "scrape_ms", "metrics_mb",
            "socket_errors", "non2xx", "srv_util", "wrk_cpu_us", "peer_us", "other_cpus", "foreign_links",
            "runs_per_req", "ns_per_run", "ns_per_req",
            "result", "value", "limit", "note"]


def fmt_cell(v, spec, width):
    if v is None or v == "":
        s = "-"
    elif spec == "s":
        s = str(v)
    elif isinstance(v, float) and v != v:
        s = "nan"
    else:
        s = format(int(v) if spec == "d" else v, spec)
    return s.rjust(width) if spec != "s" else s.ljust(width)


def print_table(rows, out=sys.stdout):
    out.write("  ".join(fmt_cell(h, "s", w) if k in ("section", "workload", "variant", "param")
                        else h.rjust(w) for k, h, w, _ in COLS) + "\n")
    for r in rows:
        out.write("  ".join(fmt_cell(r.get(k), spec, w) for k, _, w, spec in COLS).rstrip() + "\n")
    out.flush()


def noise(r):
    """Server utilisation and noise columns of one measured round."""
    return dict(srv_util=r["server_util"], wrk_cpu_us=r["wrk_cpu"] / r["requests"] * 1e6 if r["requests"] else None,
                other_cpus=r["other_cpus"], foreign_links=r["foreign_links"])


def noise_med(rs):
    rs = list(rs)
    return dict(srv_util=median(r["server_util"] for r in rs),
                wrk_cpu_us=median(r["wrk_cpu"] / r["requests"] * 1e6 for r in rs if r["requests"]),
                other_cpus=median(r["other_cpus"] for r in rs),
                foreign_links=max(r["foreign_links"] for r in rs))


def median(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------
# the suite

class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []       # summary rows (the table)
        self.rounds = []     # per-round rows (CSV only)
        self.budget = []     # (label, value text, limit text, ok: True/False, None = report only)
        self.progs = []      # BPF run time per request of the programs (program_times)
        self.attach = {}     # {(workload, "floor"/"agent"): tracepoints and uprobes attached (attach_points)},
        #                      first round of each, taken after its load (the agent attaches to the TLS
        #                      libraries of clients started in the round when they map them)

    def wait_quiet(self):
        """--wait-quiet S: before a round, wait up to S seconds until no other
        BPF tracing link is attached on the host (another agent or tracer)."""
        if self.args.wait_quiet <= 0:
            return
        deadline = time.monotonic() + self.args.wait_quiet
        while foreign_links(None) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)

    def row(self, **kw):
        self.rows.append(kw)
        vlog("row %s" % kw)

    def check(self, label, ok, value, limit):
        """A budget line; ok None: reported only (INFO), not enforced."""
        self.budget.append((label, value, limit, None if ok is None else bool(ok)))

    # ---- interleaved workloads -----------------------------------------
    def interleave(self, name, param, server, url, rounds, seconds, conns, threads, variants, files=()):
        """rounds x variants (in this order within a round); returns
        {variant: [measure() dicts]}. files: what the traced processes map,
        for the floor's uprobes (mapped_files)."""
        a = self.args
        per = {v: [] for v in variants}
        for i in range(rounds):
            for variant in variants:
                time.sleep(a.pause)
                self.wait_quiet()
                v = self.start_variant(variant, server, files)
                if variant == "agent":
                    time.sleep(a.pause)
                try:
                    r = measure(server, url, seconds, conns, threads, v)
                    if v and (name, variant) not in self.attach:
                        self.attach[(name, variant)] = attach_points(v.pid)
                finally:
                    if v:
                        v.stop()
                if variant in ("min", "lean"):
                    # hook runs per request in the traced processes (warm-up
                    # and scrapes excluded: the counts span the whole round)
                    r["hits"], r["timed"] = v.hits, v.timed
                per[variant].append(r)
                self.rounds.append(dict(section="round", workload=name, variant=variant,
                                        param=param, round=i + 1, rps=r["rps"], cpu_us=r["cpu_per_req_us"],
                                        agent_us=r.get("variant_cpu_per_req_us"),
                                        rss_mb=r.get("variant_rss_mb"), sent=r["requests"],
                                        counted=r.get("counted"), lost=r.get("lost"),
                                        in_flight=r.get("in_flight"), over=r.get("over"),
                                        received=r.get("received"), closed=r.get("closed"),
                                        peer_us=r.get("peer_cpu_per_req_us"),
                                        client_counted=r.get("client_counted"),
                                        client_lost=r.get("client_lost"), db_errors=r.get("db_errors"),
                                        events_lost=r.get("events_lost"), parse_errors=r.get("parse_errors"),
                                        socket_errors=r["socket_errors"], non2xx=r["non2xx"],
                                        note=r["socket_errors_text"], **noise(r)))
                vlog("%s %s round %d %-8s %8.0f req/s  %.3f us/req  other %.2f  fgn %d  %s"
                     % (name, param, i + 1, variant, r["rps"], r["cpu_per_req_us"], r["other_cpus"],
                        r["foreign_links"],
                        "counted %s of %d" % (r.get("counted"), r["requests"]) if variant == "agent" else ""))
        return per

    def start_variant(self, variant, server, files):
        """Start what a variant attaches: None for the baseline, a FloorRun
        (floor, min, lean, lean-untraced: the lean programs with no traced
        process, the bench's own pid, idle meanwhile) or an AgentRun."""
        if variant == "baseline":
            return None
        if variant == "agent":
            return AgentRun(self.agent_bin, server)
        if variant == "floor":
            return FloorRun(self.floor_bin, files)
        if variant == "lean-untraced":
            return FloorRun(self.floor_bin, files, min_pids=[os.getpid()], mode="lean")
        return FloorRun(self.floor_bin, files, min_pids=server.pids, mode=variant)

    def workload(self, name, make_server, path, rounds=None, seconds=None):
        a = self.args
        rounds, seconds = rounds or a.rounds, seconds or a.seconds
        variants = ("baseline", "agent") if a.no_floor else \
            ("baseline", "floor", "min", "lean", "agent") if name in a.min_workloads else ("baseline", "floor", "agent")
        say("workload %s: %d rounds x (%s) x %ds, %s"
            % (name, rounds, ", ".join(variants), seconds,
               "wrk -t%d -c%d" % (a.threads, a.conns) if path is not None else "its own client"))
        server = make_server()
        try:
            files = [] if a.no_floor else mapped_files(server.tls_pids(), server.client_exes)
            vlog("files the traced processes map (the floor's uprobes go on the TLS libraries among them): %s"
                 % " ".join(files))
            if server.driven:
                url = None
                server.warm_up(a.warmup, seconds)                   # warm-up (sizes the load), not measured
                say("  %s" % server.load_text)
            else:
                url = server.url(path)
                run_wrk(url, a.warmup, a.conns, a.threads)            # warm-up, not measured
            per = self.interleave(name, "", server, url, rounds, seconds, a.conns, a.threads, variants, files)
            if name in a.min_workloads and not a.no_floor and url:
                self.program_times(name, server, url, variants, files)
        finally:
            server.stop()
        if server.db:
            return self.db_budget(name, server, self.summarise("workload", name, "", per, note=server.load_text))
        if server.client:
            return self.client_budget(name, self.summarise("workload", name, "", per, note=server.load_text))
        out = self.summarise("workload", name, "", per)
        ag = out.get("agent")
        if ag:
            self.check("%s: zero requests lost (sent %d, counted %d, %d in flight at wrk's end)"
                       % (name, ag["sent"], ag["counted"], ag["in_flight"]),
                       ag["lost"] == 0, "lost %d" % ag["lost"], "0")
            self.check("%s: aion_agent_events_lost_total stays 0" % name,
                       ag["events_lost"] == 0, "%d" % ag["events_lost"], "0")
        return out

    def program_times(self, name, server, url, variants, files):
        """BPF run time per request of each variant's programs: one wrk run
        each with kernel.bpf_stats_enabled=1 (apart from the measured rounds:
        the statistics add two clock reads to every program run, ~60 ns here,
        included in the figures)."""
        a = self.args
        try:
            with open(BPF_STATS) as f:
                old = f.read().strip()
        except OSError as e:
            raise BenchError("cannot read %s: %s" % (BPF_STATS, e))
        say("  %s: BPF run time per request (kernel.bpf_stats_enabled=1, %ds of wrk per variant)"
            % (name, a.seconds))
        try:
            with open(BPF_STATS, "w") as f:
                f.write("1")
            # lean-untraced: the lean programs with no traced process (the
            # bench's own pid, idle meanwhile), so that every run stops at the
            # bit test: half of them are wrk's share of the lean runs
            for variant in [v for v in variants if v != "baseline"] + (["lean-untraced"] if "lean" in variants else []):
                v = self.start_variant(variant, server, files)
                try:
                    run_wrk(url, 1, a.conns, a.threads)           # warm-up, not counted
                    s0 = prog_runs(v.pid)
                    w = run_wrk(url, a.seconds, a.conns, a.threads)
                    s1 = prog_runs(v.pid)
                finally:
                    v.stop()
                n = max(1, w["requests"])
                for prog in sorted(s1):
                    dc = s1[prog][0] - s0.get(prog, (0, 0))[0]
                    dt = s1[prog][1] - s0.get(prog, (0, 0))[1]
                    if dc < n / 100:
                        continue                                   # not on the request path
                    self.progs.append(dict(section="programs", workload=name, variant=variant, param=prog,
                                           runs_per_req=dc / n, ns_per_run=dt / dc, ns_per_req=dt / n,
                                           nginx=prog.endswith(NGINX_DATA_PROGS + LEAN_PROGS)))
        finally:
            with open(BPF_STATS, "w") as f:
                f.write(old)

    def client_budget(self, name, out):
        """Budget lines of the http-client workload: counted must equal sent
        exactly (the agent counts a response when wrk reads it, as wrk does;
        requests wrk wrote but never read before its deadline, in_flight, are
        counted by neither), no event lost. Its CPU and throughput ratios are
        in the table only (no budget line)."""
        ag = out.get("agent")
        if not ag:
            return out
        self.check("%s: zero requests lost, counted must equal sent exactly (sent %d, counted %d; %d written by wrk "
                   "but never read at its deadline, received by nginx, counted by neither)"
                   % (name, ag["sent"], ag["counted"], ag["in_flight"]),
                   ag["lost"] == 0 and ag["over"] == 0,
                   "lost %d" % ag["lost"] + (", over %d" % ag["over"] if ag["over"] else ""), "0")
        self.check("%s: aion_agent_events_lost_total stays 0" % name,
                   ag["events_lost"] == 0, "%d" % ag["events_lost"], "0")
        return out

    def db_budget(self, name, server, out):
        """Budget lines of a database workload: no operation lost on either
        side, no event lost; CPU per operation and throughput reported only."""
        ag = out.get("agent")
        if not ag:
            return out
        exact = isinstance(server, RedisServer)     # sent is the server's own count: nothing in flight
        self.check("%s: zero operations lost, server side (sent %d, counted %d, %d counted beyond sent%s)"
                   % (name, ag["sent"], ag["counted"], ag["in_flight"], ", must be 0" if exact else ""),
                   ag["lost"] == 0 and (ag["in_flight"] == 0 or not exact),
                   "lost %d" % ag["lost"] + (", over %d" % ag["in_flight"] if ag["in_flight"] else ""), "0")
        self.check("%s: zero operations lost, client side (sent %d, counted %d)"
                   % (name, ag["sent"], ag["client_counted"]), ag["client_lost"] == 0,
                   "lost %d" % ag["client_lost"], "0")
        self.check("%s: aion_agent_events_lost_total stays 0" % name,
                   ag["events_lost"] == 0, "%d" % ag["events_lost"], "0")
        fl = out.get("floor")
        self.check("%s: server CPU per operation, agent / baseline (not enforced yet)" % name, None,
                   "%.3fx (floor %s; per round %.3f..%.3f)" % (ag["cpu_ratio"], "%.3fx" % fl["cpu_ratio"] if fl else "-",
                                                           ag["cpu_ratio_min"], ag["cpu_ratio_max"]), "report only")
        self.check("%s: throughput, agent / baseline (not enforced yet)" % name, None,
                   "%.3fx (floor %s; per round %.3f..%.3f)" % (ag["thr_ratio"], "%.3fx" % fl["thr_ratio"] if fl else "-",
                                                           ag["thr_ratio_min"], ag["thr_ratio_max"]), "report only")
        return out

    def summarise(self, section, name, param, per, note=""):
        base = per["baseline"]
        out = {}

        def peer(rs):
            """http-client: nginx's CPU per request (median), requests it received (sum)."""
            if "peer_cpu_per_req_us" not in rs[0]:
                return {}
            return dict(peer_us=median(r["peer_cpu_per_req_us"] for r in rs),
                        received=sum(r["received"] for r in rs))
        self.row(section=section, workload=name, variant="baseline",
                 param=param or "%d rounds" % len(base), rounds=len(base),
                 rps=median(r["rps"] for r in base), cpu_us=median(r["cpu_per_req_us"] for r in base),
                 sent=sum(r["requests"] for r in base),
                 socket_errors=sum(r["socket_errors"] for r in base),
                 non2xx=sum(r["non2xx"] for r in base), note=note, **dict(noise_med(base), **peer(base)))
        for variant in ("floor", "min", "lean", "agent"):
            rs = per.get(variant)
            if not rs:
                continue
            thr = [v["rps"] / b["rps"] for b, v in zip(base, rs) if b["rps"]]
            cpu = [v["cpu_per_req_us"] / b["cpu_per_req_us"] for b, v in zip(base, rs) if b["cpu_per_req_us"]]
            s = dict(section=section, workload=name, variant=variant,
                     param=param or "%d rounds" % len(rs), rounds=len(rs),
                     rps=median(r["rps"] for r in rs),
                     thr_ratio=median(thr), thr_ratio_min=min(thr), thr_ratio_max=max(thr),
                     cpu_us=median(r["cpu_per_req_us"] for r in rs),
                     cpu_ratio=median(cpu), cpu_ratio_min=min(cpu), cpu_ratio_max=max(cpu),
                     agent_us=median(r["variant_cpu_per_req_us"] for r in rs),
                     rss_mb=max(r["variant_rss_mb"] for r in rs),
                     sent=sum(r["requests"] for r in rs),
                     socket_errors=sum(r["socket_errors"] for r in rs),
                     non2xx=sum(r["non2xx"] for r in rs), **dict(noise_med(rs), **peer(rs)))
            s["note"] = ("%s%d rounds; per-round thr x %.3f..%.3f, cpu x %.3f..%.3f"
                         % (note + "; " if note else "", len(rs), min(thr), max(thr), min(cpu), max(cpu)))
            if variant in ("min", "lean"):
                s.update(hits=sum(r["hits"] for r in rs), timed=sum(r["timed"] for r in rs))
                s["note"] += ("; hook runs in the traced processes %d (%.2f per request sent), writes timed %d"
                              % (s["hits"], s["hits"] / max(1, s["sent"]), s["timed"]))
            if variant == "agent":
                s.update(counted=sum(r["counted"] for r in rs), lost=sum(r["lost"] for r in rs),
                         in_flight=sum(r["in_flight"] for r in rs),
                         events_lost=sum(r["events_lost"] for r in rs),
                         parse_errors=sum(r["parse_errors"] for r in rs))
                for k in ("closed", "client_counted", "client_lost", "db_errors", "over"):
                    if k in rs[0]:
                        s[k] = sum(r[k] for r in rs)
                if "over" in s:
                    s["note"] += ("; in flight (received by nginx, never read by wrk) per round %d..%d; counted beyond "
                                  "sent %d; client requests without a response (status 0) %d"
                                  % (min(r["in_flight"] for r in rs), max(r["in_flight"] for r in rs),
                                     s["over"], s["closed"]))
                else:
                    s["note"] += "; max in flight in a round %d" % max(r["in_flight"] for r in rs)
                if "client_counted" in s:
                    s["note"] += ("; client side counted %d (lost %d); server-side operations with an error_type %d"
                                  % (s["client_counted"], s["client_lost"], s["db_errors"]))
            self.row(**s)
            out[variant] = s
        return out

    # ---- scaling: series -----------------------------------------------
    def scale_series(self):
        a = self.args
        results = {}
        for n in a.series:
            # A series is what Prometheus counts as one: a sample line. One
            # HTTP label set is SERIES_PER_SET of them, so n series need about
            # n / 43 label sets; the routes are driven until the body holds n.
            sets = max(1, -(-n // SERIES_PER_SET))
            say("scaling: %d series (%d label sets)" % (n, sets))
            script = os.path.join(lib.mkdtemp("bench-lua"), "routes.lua")   # cleanup() removes it
            with open(script, "w") as f:
                f.write(ROUTES_LUA)
            server = NginxServer(workers=1)
            ag = None
            try:
                ag = AgentRun(self.agent_bin, server, ["--max-routes", str(min(100000, max(2 * sets, 100)))])
                time.sleep(a.pause)
                idle_rss = ag.rss_mb()
                sent = 0
                agent_cpu = 0.0
                g = {}
                runs = []
                deadline = time.monotonic() + a.series_timeout
                # Drive the routes until the aggregator holds n series (the first
                # pass creates them: the agent's CPU per request includes the inserts).
                while True:
                    r = measure(server, server.url("/"), a.series_seconds, a.conns, 1, ag,
                                script=script, script_args=[sets], count=False)
                    runs.append(r)
                    sent += r["requests"]
                    agent_cpu += r["variant_cpu"]
                    g = ag.gauges()
                    if g.get("__lines__", 0) >= n or time.monotonic() > deadline:
                        break
                rss = ag.rss_mb()
                times = []
                size = 0
                c0 = ag.cpu()
                for _ in range(a.scrapes):
                    t, size = curl_scrape(ag.a.port)
                    times.append(t)
                scrape_cpu = (ag.cpu() - c0) / a.scrapes
                rss_after = ag.rss_mb()
                hwm = status_kb(ag.pid, "VmHWM") / 1024.0
                g = ag.gauges()
            finally:
                if ag:
                    ag.stop()
                server.stop()
            series = int(g.get("__lines__", 0))
            row = dict(section="scale", workload="series", variant="agent", param="%d" % n,
                       agent_us=agent_cpu / sent * 1e6 if sent else float("nan"),
                       rss_mb=rss, sent=sent, events_lost=int(g.get(LOST, 0)), series=series,
                       overflow=int(g.get(OVERFLOW, 0)), scrape_ms=median(times) * 1000.0,
                       metrics_mb=size / 1e6,
                       note="%d label sets; --max-routes %d; RSS %.1f MB idle, %.1f MB with the series, %.1f MB after "
                            "%d scrapes (peak %.1f MB); a scrape: %.1f MB body, %.0f ms agent CPU; "
                            "scrape ms min..max %.1f..%.1f"
                            % (int(g.get(SERIES, 0)) // HISTS_PER_SET, min(100000, max(2 * sets, 100)), idle_rss, rss, rss_after, a.scrapes, hwm,
                               size / 1e6, scrape_cpu * 1000, min(times) * 1000, max(times) * 1000),
                       rps=median(r["rps"] for r in runs), **noise_med(runs))
            row["rss_after_mb"] = rss_after
            self.row(**row)
            results[n] = row
            lib.cleanup()
        if 100000 in results:
            r = results[100000]
            self.check("scrape of 100k series under 250 ms (%d series held, %.0f MB body)"
                       % (r["series"], r["metrics_mb"]),
                       r["scrape_ms"] < 250 and r["series"] >= 100000, "%.1f ms" % r["scrape_ms"], "250 ms")
        if 10000 in results:
            r = results[10000]
            worst = max(r["rss_mb"], r["rss_after_mb"])
            self.check("agent RSS under 30 MB at 10k series (%d series held; %.1f MB before scraping, "
                       "%.1f MB after)" % (r["series"], r["rss_mb"], r["rss_after_mb"]),
                       worst < 30 and r["series"] >= 10000, "%.1f MB" % worst, "30 MB")

    # ---- scaling: connections ------------------------------------------
    def scale_conns(self):
        a = self.args
        for c in a.conn_counts:
            say("scaling: %d connections (%d rounds x (baseline, agent) x %ds)" % (c, a.scale_rounds, a.scale_seconds))
            server = NginxServer(workers=1, wconns=20000)
            try:
                url = server.url("/")
                run_wrk(url, a.warmup, min(c, 100), a.threads)
                th = min(a.scale_threads, c)
                per = self.interleave("conns", "c=%d" % c, server, url, a.scale_rounds, a.scale_seconds,
                                      c, th, ("baseline", "agent"))
            finally:
                server.stop()
            self.summarise("scale", "conns", "c=%d" % c, per, note="wrk -t%d -c%d" % (th, c))
            lib.cleanup()

    # ---- scaling: traced processes -------------------------------------
    def scale_procs(self):
        a = self.args
        for n in a.proc_counts:
            say("scaling: %d nginx workers (%d rounds x (baseline, agent) x %ds)" % (n, a.scale_rounds, a.scale_seconds))
            server = NginxServer(workers=n, wconns=1024)
            try:
                url = server.url("/")
                conns = max(a.conns, 2 * n)
                run_wrk(url, a.warmup, conns, a.threads)
                per = self.interleave("procs", "workers=%d" % n, server, url, a.scale_rounds, a.scale_seconds,
                                      conns, a.threads, ("baseline", "agent"))
            finally:
                server.stop()
            self.summarise("scale", "procs", "workers=%d" % n, per,
                           note="wrk -t%d -c%d; %d nginx processes traced" % (a.threads, conns, n + 1))
            lib.cleanup()

    # ---- everything ------------------------------------------------------
    def run(self):
        a = self.args
        self.agent_bin = os.path.abspath(a.agent)
        self.floor_bin = os.path.join(a.build, "bench", "aion-floor")
        self.go_bin = os.path.join(a.build, "bench", "goserver")
        sel = set(a.only or PARTS)
        if not a.only:
            # The database workloads are part of a full run when their
            # servers are installed (asked for with --only, they must be).
            for part, need in (("pgbench", [PG_BIN + "/postgres", PGBENCH, PG_BIN + "/initdb", PG_BIN + "/psql"]),
                               ("redis", [REDIS_SERVER, REDIS_BENCHMARK])):
                missing = [x for x in need if not os.access(x, os.X_OK)]
                if missing:
                    say("skipping %s: %s not installed" % (part, ", ".join(missing)))
                    sel.discard(part)
        res = {}
        if "nginx-tiny" in sel:
            res["tiny"] = self.workload("nginx-tiny", lambda: NginxServer(workers=1), "/")
            lib.cleanup()
        if "nginx-https" in sel:
            self.workload("nginx-https", lambda: NginxServer(workers=1, tls=True), "/")
            lib.cleanup()
        if "nginx-20k" in sel:
            self.workload("nginx-20k", lambda: NginxServer(workers=1), "/f20k.bin")
            lib.cleanup()
        if "go" in sel:
            self.workload("go-nethttp", lambda: GoServer(self.go_bin), "/")
            lib.cleanup()
        if "http-client" in sel:
            self.workload("http-client", lambda: WrkClient(a.conns, a.threads), None,
                          a.client_rounds, a.client_seconds)
            lib.cleanup()
        if "pgbench" in sel:
            self.workload("pgbench", PgServer, None)
            lib.cleanup()
        if "redis" in sel:
            self.workload("redis", RedisServer, None)
            lib.cleanup()
        if "series" in sel:
            self.scale_series()
        if "conns" in sel:
            self.scale_conns()
        if "procs" in sel:
            self.scale_procs()
        tiny = res.get("tiny", {}).get("agent")
        if tiny:
            self.check("nginx-tiny: CPU per request of the traced worker <= 1.05x baseline",
                       tiny["cpu_ratio"] <= 1.05, "%.3fx" % tiny["cpu_ratio"], "1.05x")
            self.check("nginx-tiny: throughput >= 0.95x baseline",
                       tiny["thr_ratio"] >= 0.95, "%.3fx" % tiny["thr_ratio"], "0.95x")
            self.check("nginx-tiny: agent CPU (user+sys of the agent process) <= 1 us per request",
                       tiny["agent_us"] <= 1.0, "%.3f us" % tiny["agent_us"], "1 us")
            fl, mn, ln = res["tiny"].get("floor"), res["tiny"].get("min"), res["tiny"].get("lean")
            if fl and mn and ln:
                base_us = next(r["cpu_us"] for r in self.rows
                               if r.get("workload") == "nginx-tiny" and r.get("variant") == "baseline")
                mine = [p for p in self.progs if p["workload"] == "nginx-tiny"]
                ns = {v: sum(p["ns_per_req"] for p in mine if p["variant"] == v and p["nginx"])
                      for v in ("floor", "min", "lean", "lean-untraced", "agent")}
                # lean: wrk's runs of the same programs stop at the bit test,
                # as all of them do with nobody traced (lean-untraced: nginx's
                # and wrk's, so half of it)
                wrk_ns = ns["lean-untraced"] / 2
                self.check("nginx-tiny: what the budget leaves to programs: it allows %.0f ns per request (5 %% of "
                           "the baseline's %.2f us); BPF run time per request of nginx's programs (%.2f hook runs "
                           "per request): floor (empty, %s) %.0f ns, min (bit test, hash lookup, clock, 16-byte read, "
                           "log2 bucket) %.0f ns, lean (%s: bit test, socket storage, clock; on the write a 16-byte "
                           "read and a log2 bucket) %.0f ns (%.0f with wrk's runs, less %.0f for them, half the runs' cost with "
                           "nobody traced), "
                           "agent %.0f ns; CPU per request x: floor %.3f, min %.3f, lean %.3f, agent %.3f"
                           % (50 * base_us, base_us, mn["hits"] / max(1, mn["sent"]), "/".join(NGINX_DATA_PROGS),
                              ns["floor"], ns["min"], "/".join(LEAN_PROGS), ns["lean"] - wrk_ns, ns["lean"], wrk_ns,
                              ns["agent"], fl["cpu_ratio"], mn["cpu_ratio"], ln["cpu_ratio"], tiny["cpu_ratio"]),
                           None, "min %.0f ns, lean %.0f ns" % (ns["min"], ns["lean"] - wrk_ns), "report only")
        # The floor must hold what the agent holds, workload by workload (the
        # uprobes depend on the TLS libraries the traced processes map).
        same, diff = [], []
        for (wl, variant), ag in self.attach.items():
            fl = self.attach.get((wl, "floor"))
            if variant != "agent" or fl is None or ag is None:
                continue
            mn = self.attach.get((wl, "min"))
            if mn is not None and mn != fl:
                diff.append("%s: min differs from the floor: %s" % (wl, " ".join(sorted(mn ^ fl))))
            nu = sum(1 for p in ag if is_uprobe(p))
            same.append("%s %d%s" % (wl, len(ag) - nu, " + %d uprobes" % nu if nu else ""))
            if ag - fl:
                diff.append("%s: agent only: %s" % (wl, " ".join(sorted(ag - fl))))
            if fl - ag:
                diff.append("%s: floor only: %s" % (wl, " ".join(sorted(fl - ag))))
        if same:
            self.check("the floor attaches to exactly the agent's tracepoints and uprobes, in each workload",
                       not diff, "; ".join(diff) or "same (%s)" % ", ".join(same), "same set")
        # events lost anywhere (scaling runs included)
        sc = [r for r in self.rows if r.get("section") == "scale" and r.get("events_lost") is not None]
        if sc:
            tot = sum(int(r["events_lost"]) for r in sc)
            self.check("scaling runs: aion_agent_events_lost_total stays 0", tot == 0, "%d" % tot, "0")
        sc = [r for r in self.rows if r.get("section") == "scale" and r.get("lost") is not None]
        if sc:
            tot = sum(int(r["lost"]) for r in sc)
            self.check("scaling runs (conns, procs): zero requests lost (sent %d, counted %d)"
                       % (sum(r["sent"] for r in sc), sum(r["counted"] for r in sc)), tot == 0, "lost %d" % tot, "0")


# The workloads the min variant can join (servers driven by wrk).
MIN_WORKLOADS = ["nginx-tiny", "nginx-https", "nginx-20k", "go-nethttp"]

PARTS = ["nginx-tiny", "nginx-https", "nginx-20k", "go", "http-client", "pgbench", "redis", "series", "conns", "procs"]


def build_tools(args):
    """Build the floor and the Go server (tests/bench/Makefile.inc)."""
    if not os.path.exists(os.path.join(args.build, "vmlinux.h")) or not os.path.exists(args.agent):
        raise BenchError("build the agent first: make (needs %s and %s)"
                         % (os.path.join(args.build, "vmlinux.h"), args.agent))
    targets = [os.path.join(args.build, "bench", "aion-floor")]
    if not args.only or "go" in args.only:
        targets.append(os.path.join(args.build, "bench", "goserver"))
    r = subprocess.run(["make", "--no-print-directory", "-f", "tests/bench/Makefile.inc",
                        "BUILD=" + os.path.relpath(args.build, ROOT)] + [os.path.relpath(t, ROOT) for t in targets],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise BenchError("building the bench tools failed:\n%s" % r.stdout.decode("utf-8", "replace"))


def write_csv(path, info, args, bench):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("# aion bench, %s\n" % info["date"])
        f.write("# machine: nproc %s, kernel %s, cpu %s\n" % (info["nproc"], info["kernel"], info["cpu"]))
        f.write("# settings: %s\n" % settings_text(args))
        w = csv.DictWriter(f, fieldnames=CSV_COLS, extrasaction="ignore")
        w.writeheader()
        for r in bench.rows + bench.rounds + bench.progs:
            w.writerow({k: ("%.6g" % v if isinstance(v, float) else v) for k, v in r.items()})
        for label, value, limit, ok in bench.budget:
            w.writerow({"section": "budget", "result": budget_result(ok),
                        "value": value, "limit": limit, "note": label})


def budget_result(ok):
    return "INFO" if ok is None else "PASS" if ok else "FAIL"


def settings_text(a):
    return ("rounds %d, %ds per round (http-client %d of %ds), wrk -t%d -c%d, warm-up %ds; scaling: %d rounds "
            "of %ds, series %s, conns %s, workers %s; %s"
            % (a.rounds, a.seconds, a.client_rounds, a.client_seconds, a.threads, a.conns, a.warmup, a.scale_rounds,
               a.scale_seconds, "/".join(map(str, a.series)), "/".join(map(str, a.conn_counts)),
               "/".join(map(str, a.proc_counts)),
               "wrk on CPU 0, nginx workers on CPU 1" if a.pin else "nothing pinned"))


def int_list(s):
    return [int(x) for x in s.split(",") if x.strip()]


def main():
    global VERBOSE, PIN
    ap = argparse.ArgumentParser(description="aion benchmark suite (root, loopback)")
    ap.add_argument("--agent", default=os.path.join(ROOT, "build", "aion-agent"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--csv", default=None, help="default: BUILD/bench/results.csv")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 2 s, short scaling")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per variant (default 6)")
    ap.add_argument("--seconds", type=int, default=None, help="wrk seconds per round (default 5)")
    ap.add_argument("--client-rounds", type=int, default=None,
                    help="rounds per variant of http-client (default: --rounds when given, else 4; --quick 2)")
    ap.add_argument("--client-seconds", type=int, default=None,
                    help="wrk seconds per round of http-client (default: --seconds when given, else 3; --quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections for the workloads (default 50)")
    ap.add_argument("--scale-seconds", type=int, default=None, help="wrk seconds per scaling point (default 5)")
    ap.add_argument("--scale-rounds", type=int, default=None,
                    help="rounds per variant at each conns/procs scaling point (default 2)")
    ap.add_argument("--scale-threads", type=int, default=2, help="wrk threads for the connection scaling (default 2)")
    ap.add_argument("--series", type=int_list, default=[1000, 10000, 100000])
    ap.add_argument("--conn-counts", type=int_list, default=[10, 1000, 10000])
    ap.add_argument("--proc-counts", type=int_list, default=[1, 100])
    ap.add_argument("--only", action="append",
                    choices=PARTS,
                    help="run only these parts (repeatable)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each round wait up to S s until no other BPF tracing link is attached (default 0: don't)")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor rounds")
    ap.add_argument("--pin", action="store_true",
                    help="nginx workloads: wrk on CPU 0, the nginx workers on CPU 1 (default: nothing pinned)")
    ap.add_argument("--min-workloads", type=lambda s: [x for x in s.split(",") if x], default=["nginx-tiny"],
                    metavar="W,...", help="workloads that also run the \"min\" variant (about the least work of a "
                    "per-request timing) and the BPF run time per request: HTTP server workloads, named as in the table "
                    "(nginx-tiny, nginx-https, nginx-20k, go-nethttp); default nginx-tiny; empty: none")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.verbose
    bad = [w for w in a.min_workloads if w not in MIN_WORKLOADS]
    if bad:
        ap.error("--min-workloads: %s: not an HTTP server workload (%s)" % (",".join(bad), ", ".join(MIN_WORKLOADS)))
    if a.pin:
        PIN = (0, 1)
    # http-client: fewer and shorter rounds than the others by default. Each
    # agent round starts the agent, 5-15 s on 2 busy vCPUs (BPF verification),
    # which dominates; the workload must add under 2 minutes to a full run.
    if a.client_rounds is None:
        a.client_rounds = a.rounds if a.rounds is not None else 2 if a.quick else 4
    if a.client_seconds is None:
        a.client_seconds = a.seconds if a.seconds is not None else 2 if a.quick else 3
    if a.rounds is None:
        a.rounds = 2 if a.quick else 6
    if a.seconds is None:
        a.seconds = 2 if a.quick else 5
    if a.scale_rounds is None:
        a.scale_rounds = 1 if a.quick else 3
    if a.scale_seconds is None:
        a.scale_seconds = 2 if a.quick else 5
    a.warmup = 1 if a.quick else 2
    a.pause = 0.3
    a.scrapes = 3 if a.quick else 5
    a.series_seconds = 2 if a.quick else 3
    a.series_timeout = 60
    if min(a.rounds, a.seconds, a.client_rounds, a.client_seconds) < 1:
        ap.error("--rounds, --seconds, --client-rounds and --client-seconds must be >= 1")
    a.build = os.path.abspath(a.build)
    a.csv = a.csv or os.path.join(a.build, "bench", "results.csv")

    def on_term(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    info = machine_info()
    bench = Bench(a)
    t0 = time.monotonic()
    rc = 0
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root (the agent and the floor load BPF programs)")
        for tool in ("wrk", "bpftool", "make", "curl"):
            if not shutil.which(tool):
                raise BenchError("%s is not installed (make deps)" % tool)
        if not os.access(NGINX, os.X_OK):
            raise BenchError("%s is missing (apt-get install nginx-light)" % NGINX)
        if (not a.only or "nginx-https" in a.only) and not shutil.which("openssl"):
            raise BenchError("openssl is not installed (apt-get install openssl): nginx-https needs a certificate")
        NOFILE[0] = raise_nofile(max(a.conn_counts + [a.conns]) * 2 + 1024)
        if max(a.conn_counts) + 64 > NOFILE[0]:
            raise BenchError("RLIMIT_NOFILE is %d: too low for wrk -c %d" % (NOFILE[0], max(a.conn_counts)))
        build_tools(a)
        bench.run()
    except BenchError as e:
        say("error: %s" % e)
        rc = 1
    except KeyboardInterrupt:
        say("interrupted; stopping everything started")
        rc = 130
    finally:
        # Stop every server, wrk, agent and floor still running (by process
        # group / session); a second Ctrl-C must not cut this short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lib.cleanup()

    report(info, a, bench, time.monotonic() - t0, partial=rc != 0)
    return rc


def report(info, a, bench, took, partial=False):
    out = sys.stdout
    if partial and not bench.rows:
        return
    out.write("aion bench  %s  nproc %s  kernel %s  cpu %s\n" % (info["date"], info["nproc"], info["kernel"], info["cpu"]))
    out.write("settings: %s; took %.0f s%s\n" % (settings_text(a), took,
                                               "; INCOMPLETE (error or interrupted)" if partial else ""))
    out.write("srv us/req: CPU (utime+stime) of the server process(es) per wrk request (pgbench: of the "
              "postmaster's whole process tree per transaction; redis: of redis-server per GET/SET executed; "
              "http-client: of the traced client, wrk, per request it completed; srv cpu is then wrk's); "
              "x columns: median of per-round agent/baseline (or floor/baseline) ratios; "
              "agt us/req: CPU of the agent (or floor) process per request; srv cpu: server CPUs busy; "
              "sent/counted: wrk requests (pgbench: its transactions; redis: the server's get+set calls) / "
              "the agent's count (databases: server side; http-client: its client-side 200s for nginx's port); "
              "inflt: responses the agent counted that wrk had not read at its deadline (sum over rounds, "
              "each <= -c; http-client: requests nginx received that wrk never read, counted by neither); "
              "other: CPUs kept busy by anything else on the host during the load (noise); "
              "fgn: BPF tracing links attached by others during the round\n\n")
    print_table(bench.rows, out)
    out.write("\n")
    if bench.progs:
        out.write("BPF run time per request (kernel.bpf_stats_enabled=1, one run of wrk per variant after the "
                  "rounds; programs that ran at least once per 100 requests; * = run by the traced nginx, the "
                  "others by wrk, untraced (lean_recv and lean_send run for both; lean-untraced: the same with no "
                  "process traced, every run stopping at the bit test); each run includes ~60 ns of the statistics' own clock reads; a "
                  "tail-called program counts in its caller)\n")
        out.write("%-10s %-12s %-13s %-26s %9s %9s %9s\n"
                  % ("section", "workload", "variant", "program", "runs/req", "ns/run", "ns/req"))
        for p in bench.progs:
            out.write("%-10s %-12s %-13s %-26s %9.2f %9.0f %9.0f\n"
                      % (p["section"], p["workload"], p["variant"], p["param"] + (" *" if p["nginx"] else ""),
                         p["runs_per_req"], p["ns_per_run"], p["ns_per_req"]))
        out.write("\n")
    dirty = [r for r in bench.rounds if r.get("foreign_links", 0) > 0]
    if dirty:
        out.write("WARNING: other BPF tracing programs (another agent or tracer) were attached during %d of %d "
                  "measured rounds (column fgn): those baselines are not clean. Median CPUs busy with other "
                  "work during the rounds: %.2f (column other). Rerun on a quiet host, or with --wait-quiet S.\n\n"
                  % (len(dirty), len(bench.rounds), median(r["other_cpus"] for r in bench.rounds)))
    ok = sum(1 for b in bench.budget if b[3] is True)
    bad = sum(1 for b in bench.budget if b[3] is False)
    for label, value, limit, good in bench.budget:
        out.write("%s  %s: %s (limit %s)\n" % (budget_result(good), label, value, limit))
    write_csv(a.csv, info, a, bench)
    out.write("\ncsv: %s\n" % a.csv)
    out.write("bench: %d within budget, %d over budget%s\n" % (ok, bad, " (incomplete run)" if partial else ""))
    out.flush()


if __name__ == "__main__":
    sys.exit(main())

"""Helpers for the aion integration tests (Python 3 stdlib only).

Everything that starts a process registers it here; the runner calls
cleanup() after every test, whatever happened, and kills what is left by
process group id (every child is started in its own session, so nginx
workers go with their master).
"""
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")
PYTHON = "/usr/bin/python3"
NGINX = "/usr/sbin/nginx"

AGENT = None        # set by run.py (absolute path)
VERBOSE = False

HIST = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
OVERFLOW = "aion_agent_series_overflow_total"


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def log(msg):
    if VERBOSE:
        sys.stdout.write("    . %s\n" % msg)
        sys.stdout.flush()


# --------------------------------------------------------------------------
# process registry / cleanup

_procs = []          # Popen objects started during the current test
_tmpdirs = []
_agents = []         # Agent objects (for stderr on failure)


def _register(p):
    _procs.append(p)
    return p


def log_tail(tmp, names, limit=2000):
    """The last `limit` characters of the named files in tmp (a server's
    stderr and logs), for failure messages."""
    out = ""
    for n in names:
        try:
            with open(os.path.join(tmp, n), "rb") as f:
                out += f.read().decode("utf-8", "replace")
        except OSError:
            pass
    return out.strip()[-limit:] or "(no output)"


def spawn(argv, **kw):
    """Popen in a new session (own process group), registered for cleanup."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("start_new_session", True)
    env = kw.pop("env", None) or dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    p = subprocess.Popen(argv, env=env, **kw)
    return _register(p)


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _session_members(sid):
    """PIDs (other than sid itself) whose session id is sid. Since every
    process we spawn is a session leader, these are its descendants that are
    still alive (e.g. nginx workers whose master is gone). A session id
    cannot be reused while members exist."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == sid:
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 3 and int(rest[3]) == sid:
            out.append(int(d))
    return out


def stop_proc(p, sig=signal.SIGTERM, timeout=5.0):
    """Signal p's process group, wait, escalate to SIGKILL; then kill what is
    left of its session by pid. Returns rc."""
    if p.poll() is None:
        _killpg(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    for _ in range(50):
        left = _session_members(p.pid)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return p.returncode


def mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix="aion-it-" + prefix + "-")
    os.chmod(d, 0o755)
    _tmpdirs.append(d)
    return d


def cleanup(keep_tmp=False):
    """Kill everything started by the current test; returns notes."""
    notes = []
    for p in reversed(_procs):
        if p.poll() is None:
            notes.append("killed leftover pid %d (%s)" % (p.pid, os.path.basename(str(p.args[0]))))
        stop_proc(p, signal.SIGTERM, timeout=3.0)
    _procs.clear()
    if not keep_tmp:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.clear()
    _agents.clear()
    return notes


def agent_stderr_dump():
    out = []
    for a in _agents:
        out.append(("agent pid %d %s" % (a.proc.pid, " ".join(a.args)), a.stderr_text()))
    return out


# --------------------------------------------------------------------------
# small utilities

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=5.0, interval=0.05, what=None):
    """Poll pred() until it returns a truthy value; return it. On timeout
    fail with `what` (string or callable giving the message)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            if what is None:
                fail("condition not met within %.1fs" % timeout)
            fail(what() if callable(what) else what)
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid:
            out.append(int(d))
    return out


def exe_basename(pid):
    return os.path.basename(os.readlink("/proc/%d/exe" % pid))


def need_tool(path_or_name):
    p = shutil.which(path_or_name)
    if not p:
        fail("required tool %r is not installed (see `make deps`)" % path_or_name)
    return p


# --------------------------------------------------------------------------
# Prometheus text exposition parser

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LNAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ParseError(ValueError):
    pass


def _parse_value(s):
    t = s.strip()
    if t in ("+Inf", "Inf", "+inf", "inf"):
        return float("inf")
    if t in ("-Inf", "-inf"):
        return float("-inf")
    if t in ("NaN", "nan"):
        return float("nan")
    return float(t)


def parse_line(line, lineno=0):
    """Parse one sample line -> (name, {labels}, value)."""
    i = 0
    n = len(line)
    while i < n and line[i] in " \t":
        i += 1
    m = _NAME_RE.match(line, i)
    if not m:
        raise ParseError("line %d: bad metric name: %r" % (lineno, line))
    name = m.group(0)
    i = m.end()
    labels = {}
    while i < n and line[i] in " \t":
        i += 1
    if i < n and line[i] == "{":
        i += 1
        while True:
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] == "}":
                i += 1
                break
            lm = _LNAME_RE.match(line, i)
            if not lm:
                raise ParseError("line %d: bad label name at col %d: %r" % (lineno, i, line))
            lname = lm.group(0)
            i = lm.end()
            while i < n and line[i] in " \t":
                i += 1
            if i >= n or line[i] != "=":
                raise ParseError("line %d: expected '=' at col %d: %r" % (lineno, i, line))
            i += 1
            while i < n and line[i] in " \t":
                i += 1
            if i >= n or line[i] != '"':
                raise ParseError("line %d: expected '\"' at col %d: %r" % (lineno, i, line))
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ParseError("line %d: unterminated label value: %r" % (lineno, line))
                c = line[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise ParseError("line %d: dangling backslash: %r" % (lineno, line))
                    e = line[i + 1]
                    if e == "n":
                        buf.append("\n")
                    elif e == "\\":
                        buf.append("\\")
                    elif e == '"':
                        buf.append('"')
                    else:  # tolerated by Prometheus: keep both characters
                        buf.append("\\" + e)
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                buf.append(c)
                i += 1
            if lname in labels:
                raise ParseError("line %d: duplicate label %r: %r" % (lineno, lname, line))
            labels[lname] = "".join(buf)
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] == ",":
                i += 1
                continue
            if i < n and line[i] == "}":
                i += 1
                break
            raise ParseError("line %d: expected ',' or '}' at col %d: %r" % (lineno, i, line))
    rest = line[i:].split()
    if not rest or len(rest) > 2:
        raise ParseError("line %d: expected value [timestamp]: %r" % (lineno, line))
    try:
        value = _parse_value(rest[0])
        if len(rest) == 2:
            int(rest[1])
    except ValueError:
        raise ParseError("line %d: bad value: %r" % (lineno, line))
    return name, labels, value


def parse_exposition(text):
    """Prometheus text format 0.0.4 -> {(name, frozenset(labels.items())): value}.
    Raises ParseError on malformed input or duplicate series."""
    out = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            continue
        name, labels, value = parse_line(line, lineno)
        key = (name, frozenset(labels.items()))
        if key in out:
            raise ParseError("line %d: duplicate series %s%s" % (lineno, name, labels))
        out[key] = value
    return out


def parse_types(text):
    types = {}
    for line in text.split("\n"):
        p = line.split(None, 3)
        if len(p) >= 4 and p[0] == "#" and p[1] == "TYPE":
            types[p[2]] = p[3].strip()
    return types


def _match(labels_fs, want):
    d = dict(labels_fs)
    for k, v in want.items():
        if d.get(k, "") != str(v):
            return False
    return True


def select_series(samples, name, **labels):
    """[(labels_dict, value)] for series `name` whose labels match (a missing
    label matches the empty string)."""
    return [(dict(l), v) for (n, l), v in samples.items() if n == name and _match(l, labels)]


def total(samples, name, **labels):
    return sum(v for _, v in select_series(samples, name, **labels))


def count(samples, base=HIST, **labels):
    """Sum of <base>_count over matching series."""
    return total(samples, base + "_count", **labels)


def bucket(samples, le, base=HIST, **labels):
    """Sum of <base>_bucket{le=...} over matching series."""
    want = dict(labels)
    out = 0.0
    for l, v in select_series(samples, base + "_bucket", **want):
        if float(l.get("le", "nan")) == float(le):
            out += v
    return out


def fmt_series(samples, name_prefix=HIST + "_count", **labels):
    rows = []
    for (n, l), v in sorted(samples.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
        if n == name_prefix and _match(l, labels):
            lab = ",".join('%s="%s"' % (k, val) for k, val in sorted(l))
            rows.append("%s{%s} %g" % (n, lab, v))
    return "\n".join(rows) if rows else "(no %s series matching %s)" % (name_prefix, labels)


# --------------------------------------------------------------------------
# HTTP helpers (never use proxies)

def http_get(host, port, path, timeout=5.0, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, dict(r.getheaders()), body
    finally:
        c.close()


# --------------------------------------------------------------------------
# the agent

class Agent:
    def __init__(self, args, ready_timeout=60.0, prefix=()):
        """prefix: a command that execs the agent (e.g. setpriv ... --)."""
        if not AGENT:
            fail("agent path not set")
        if not os.path.exists(AGENT):
            fail("agent binary %s does not exist (run `make`)" % AGENT)
        self.tmp = mkdtemp("agent")
        self.port = free_port()
        self.listen = "127.0.0.1:%d" % self.port
        self.args = list(args) + ["--listen", self.listen]
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = spawn(list(prefix) + [AGENT] + self.args, stdout=self._out, stderr=self._err)
        _agents.append(self)
        log("agent pid %d: %s" % (self.proc.pid, " ".join(self.args)))
        t0 = time.monotonic()
        deadline = t0 + ready_timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                fail("agent exited with status %d before /readyz was 200; stderr: %s"
                     % (rc, self.stderr_text().strip()[-2000:] or "(empty)"))
            try:
                st, _, _ = http_get("127.0.0.1", self.port, "/readyz", timeout=1.0)
                last = st
                if st == 200:
                    break
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                fail("agent not ready within %.0fs (last /readyz: %s); stderr: %s"
                     % (ready_timeout, last, self.stderr_text().strip()[-2000:] or "(empty)"))
            time.sleep(0.05)
        log("agent ready in %.2fs" % (time.monotonic() - t0))

    def stderr_text(self):
        try:
            self._err.flush()
        except (OSError, ValueError):
            pass
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def get(self, path, timeout=5.0):
        return http_get("127.0.0.1", self.port, path, timeout=timeout)

    def scrape_text(self):
        if self.proc.poll() is not None:
            fail("agent died (status %s); stderr: %s" % (self.proc.returncode, self.stderr_text()[-2000:]))
        st, hdrs, body = self.get("/metrics")
        if st != 200:
            fail("/metrics returned %d" % st)
        return body.decode("utf-8")

    def scrape(self):
        text = self.scrape_text()
        try:
            return parse_exposition(text)
        except ParseError as e:
            fail("cannot parse /metrics: %s" % e)

    def stop(self, sig=signal.SIGTERM, timeout=5.0, expect_rc=0):
        """Signal the agent, wait up to `timeout` s; assert exit status."""
        if self.proc.poll() is not None:
            fail("agent already exited with %d before stop; stderr: %s"
                 % (self.proc.returncode, self.stderr_text()[-2000:]))
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_proc(self.proc, signal.SIGKILL)
            fail("agent did not exit within %.0fs of %s" % (timeout, signal.Signals(sig).name))
        if expect_rc is not None and rc != expect_rc:
            fail("agent exit status %d after %s (expected %d); stderr: %s"
                 % (rc, signal.Signals(sig).name, expect_rc, self.stderr_text()[-2000:]))
        return rc

    # --- metric helpers -------------------------------------------------
    def wait_count(self, expected, timeout=5.0, settle=0.3, base=HIST, **labels):
        """Wait until count(**labels) == expected, then make sure it stays
        there for `settle` seconds (catches double counting)."""
        last = [None]

        def ok():
            s = self.scrape()
            last[0] = s
            return count(s, base, **labels) == expected

        def why():
            s = last[0] or {}
            return ("%s_count%s: expected %g, got %g; series for port:\n%s"
                    % (base, _lfmt(labels), expected, count(s, base, **labels),
                       _indent(fmt_series(s, base + "_count",
                                          **{k: v for k, v in labels.items() if k == "server_port"}))))
        wait_for(ok, timeout, what=why)
        if settle:
            time.sleep(settle)
            s = self.scrape()
            got = count(s, base, **labels)
            if got != expected:
                last[0] = s
                fail("count changed after settling: " + why())
        return last[0]


def _lfmt(d):
    return "{" + ",".join('%s="%s"' % kv for kv in sorted(d.items())) + "}"


def _indent(s, p="      "):
    return "\n".join(p + l for l in s.split("\n"))


def start_agent(args, ready_timeout=60.0):
    return Agent(args, ready_timeout)


# --------------------------------------------------------------------------
# servers

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 30s;
    server {{
        listen 127.0.0.1:{port};{listen6}
        server_name localhost;
{body}
    }}
}}
"""


class Nginx:
    def __init__(self, conf_body, files=None, port=None, start_timeout=10.0, ipv6=False):
        if not os.access(NGINX, os.X_OK):
            fail("%s is not installed (package nginx-light)" % NGINX)
        self._spawn(NGINX, conf_body, files, port, ipv6)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                fail("nginx exited with %d: %s" % (self.proc.returncode, self.errors()))
            if len(children(self.pid)) >= 2 and port_open(self.port):
                break
            if time.monotonic() > deadline:
                fail("nginx not up within %.0fs: %s" % (start_timeout, self.errors()))
            time.sleep(0.05)
        self.workers = children(self.pid)
        log("nginx master %d workers %s port %d" % (self.pid, self.workers, self.port))

    def _spawn(self, binary, conf_body, files, port, ipv6=False):
        """Temp prefix with the files and nginx.conf, then start binary."""
        self.tmp = mkdtemp("nginx")
        self.port = port or free_port()
        body = conf_body.replace("TMPDIR", self.tmp)
        for rel, data in (files or {}).items():
            p = os.path.join(self.tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            for d in _parents(self.tmp, os.path.dirname(p)):
                os.chmod(d, 0o755)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o644)
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port,
                                      listen6="\n        listen [::1]:%d;" % self.port if ipv6 else "",
                                      body=_indent(body.strip("\n"), "        ")))
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn([binary, "-p", self.tmp + "/", "-c", self.conf, "-e", self.tmp + "/error.log"],
                          stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid

    def errors(self):
        return log_tail(self.tmp, ("stderr", "error.log"))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def access_log_lines(self):
        try:
            with open(os.path.join(self.tmp, "access.log")) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def access_count(self, path, status):
        """Requests nginx logged for `path` with `status` (combined format)."""
        needle = '"GET %s HTTP/1.1" %d ' % (path, status)
        return sum(1 for l in self.access_log_lines() if needle in l)

    def stop(self):
        return stop_proc(self.proc, signal.SIGQUIT, timeout=5.0)


def _parents(top, d):
    out = []
    while len(d) > len(top):
        out.append(d)
        d = os.path.dirname(d)
    return out


def start_nginx(conf_body, files=None, port=None, ipv6=False):
    """nginx (master + 2 workers) listening on 127.0.0.1:port (and [::1]:port
    with ipv6=True); TMPDIR in conf_body is replaced by its temp dir; files
    maps paths relative to that dir to contents."""
    return Nginx(conf_body, files, port, ipv6=ipv6)


class PyServer:
    def __init__(self, script="http_server.py", start_timeout=10.0):
        path = os.path.join(SERVERS, script)
        self.tmp = mkdtemp("py")
        self._err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn([PYTHON, path, "--port", "0"], stdout=subprocess.PIPE,
                          stderr=self._err, cwd=self.tmp)
        self.pid = self.proc.pid
        r, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("READY "):
            fail("python server did not start: %r %s" % (line, self.errors()))
        self.port = int(line.split()[1])
        log("python server pid %d port %d" % (self.pid, self.port))

    def errors(self):
        try:
            with open(os.path.join(self.tmp, "stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        return stop_proc(self.proc, signal.SIGTERM)


def start_python_server(script="http_server.py"):
    return PyServer(script)


# --------------------------------------------------------------------------
# clients

def curl(urls, timeout=30):
    """One curl invocation fetching all urls (reusing one keep-alive
    connection). Returns the list of status codes."""
    need_tool("curl")
    if isinstance(urls, str):
        urls = [urls]
    argv = ["curl", "-sS", "--noproxy", "*", "--http1.1",
            "-w", "%{http_code} %{num_connects}\\n"]
    for u in urls:
        argv += [u, "-o", "/dev/null"]
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
    lines = r.stdout.decode().split()
    codes = [int(x) for x in lines[0::2]]
    if r.returncode != 0 or len(codes) != len(urls):
        fail("curl %s failed (rc %d): %s %s" % (urls, r.returncode, r.stdout.decode(), r.stderr.decode()))
    return codes


def wrk(url, threads=1, conns=4, duration="2s", timeout=60):
    """Run wrk; return the number of completed requests it reports."""
    need_tool("wrk")
    r = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d" + duration, url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = r.stdout.decode()
    m = re.search(r"(\d+) requests in ", out)
    if r.returncode != 0 or not m:
        fail("wrk failed (rc %d): %s %s" % (r.returncode, out, r.stderr.decode()))
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(m.group(1)), out, (errs.group(1) if errs else None), (int(non2xx.group(1)) if non2xx else 0)


def keepalive_requests(port, paths, host="127.0.0.1", timeout=10.0):
    """Send paths sequentially over ONE http.client connection; return statuses."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    out = []
    try:
        for p in paths:
            c.request("GET", p)
            r = c.getresponse()
            r.read()
            out.append(r.status)
    finally:
        c.close()
    return out


def parallel_keepalive(port, path, threads, per_thread, host="127.0.0.1"):
    """`threads` connections each sending exactly `per_thread` requests:
    an exact, known number of completed requests. Returns status list."""
    results = [None] * threads
    errors = []

    def worker(i):
        try:
            results[i] = keepalive_requests(port, [path] * per_thread, host)
        except Exception as e:  # noqa: report below
            errors.append(repr(e))
    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    if errors:
        fail("client errors: %s" % errors[:3])
    return [s for r in results for s in (r or [])]


def raw_request(path, host="127.0.0.1", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aion-it\r\n%s\r\n" % (path, host, extra)).encode()


def read_responses(sock, n, timeout=10.0):
    """Read n HTTP/1.1 responses (Content-Length framed) from sock; return
    a list of (status, body)."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            d = sock.recv(65536)
            if not d:
                fail("connection closed after %d of %d responses" % (len(out), n))
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        clen = 0
        for l in lines[1:]:
            k, _, v = l.partition(":")
            if k.strip().lower() == "content-length":
                clen = int(v.strip())
        while len(buf) < clen:
            d = sock.recv(65536)
            if not d:
                fail("connection closed inside response body")
            buf += d
        out.append((status, buf[:clen]))
        buf = buf[clen:]
    return out


def pipelined(port, paths, host="127.0.0.1"):
    """All requests in ONE send on one connection; read all responses."""
    data = b"".join(raw_request(p, host) for p in paths)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        return read_responses(s, len(paths))


def trickle(port, path, delay=0.003, host="127.0.0.1"):
    """Send one request one byte per write (TCP_NODELAY, small sleeps)."""
    data = raw_request(path, host)
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.send(data[i:i + 1])
            time.sleep(delay)
        return read_responses(s, 1)


def abort_request(port, path, after=0.3, host="127.0.0.1"):
    """Send a request, close the connection `after` seconds later without
    reading the response. Returns the monotonic time of the close."""
    s = socket.create_connection((host, port), timeout=10)
    try:
        s.sendall(raw_request(path, host))
        time.sleep(after)
    finally:
        s.close()
    return time.monotonic()


# --------------------------------------------------------------------------
# bpftool

def bpf_prog_ids():
    """{id: name} of all loaded BPF programs."""
    need_tool("bpftool")
    r = subprocess.run(["bpftool", "-j", "prog", "show"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        fail("bpftool prog show failed: %s" % r.stderr.decode())
    try:
        progs = json.loads(r.stdout.decode() or "[]")
    except ValueError as e:
        fail("bpftool output not JSON: %s" % e)
    return {p["id"]: p.get("name", "") for p in progs}


# --------------------------------------------------------------------------
# target selection (test_targets.py): the agent's `targets:` log lines,
# gauges, agents with an environment or a config file, servers started from
# another binary / inside namespaces, PostgreSQL, cgroup v2 directories.

import collections  # noqa: E402
import pwd  # noqa: E402
import random  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
POSTGRES = PG_BIN + "/postgres"
INSTRUMENTED = "aion_agent_instrumented_processes"
MAP_ENTRIES = "aion_agent_map_entries"

TargetEvent = collections.namedtuple("TargetEvent", "line pid name kind reason")
_TARGET_RE = re.compile(r"^targets: pid (\d+) \((.*)\) (instrumented|dropped): (.*)$")


def target_events(agent, pid=None, kind=None):
    """The agent's `targets: pid N (NAME) instrumented|dropped: REASON` lines
    in log order, as TargetEvent(line index, pid, name, kind, reason);
    optionally only those of `pid` / of `kind`."""
    out = []
    for i, l in enumerate(agent.stderr_text().split("\n")):
        m = _TARGET_RE.match(l.rstrip("\r"))
        if not m:
            continue
        ev = TargetEvent(i, int(m.group(1)), m.group(2), m.group(3), m.group(4))
        if (pid is None or ev.pid == pid) and (kind is None or ev.kind == kind):
            out.append(ev)
    return out


def _target_lines(agent, pid=None, limit=30):
    evs = target_events(agent, pid)
    rows = ["targets: pid %d (%s) %s: %s" % (e.pid, e.name, e.kind, e.reason) for e in evs[-limit:]]
    if len(evs) > limit:
        rows.insert(0, "... %d earlier" % (len(evs) - limit))
    return "\n".join(rows) if rows else "(no `targets: pid %s` lines)" % ("N" if pid is None else pid)


def wait_target_event(agent, pid, kind, reason=None, timeout=5.0):
    """Wait for a `targets: pid <pid> (...) <kind>: ...` line (with exactly
    `reason` when given); return the TargetEvent. Fails showing that pid's
    target lines and the tail of the agent's stderr."""
    def find():
        for e in target_events(agent, pid, kind):
            if reason is None or e.reason == reason:
                return e
        return None

    def why():
        return ("no line `targets: pid %d (...) %s: %s` within %.0fs; lines for pid %d:\n%s\nagent stderr tail:\n%s"
                % (pid, kind, reason if reason is not None else "*", timeout, pid,
                   _indent(_target_lines(agent, pid)), _indent(agent.stderr_text().strip()[-1500:] or "(empty)")))
    return wait_for(find, timeout, what=why)


def metric(samples, name, **labels):
    """Sum of the series `name` matching labels, or None if there is none."""
    ss = select_series(samples, name, **labels)
    return sum(v for _, v in ss) if ss else None


def wait_metric(agent, name, want, timeout=5.0, **labels):
    """Wait until metric(name, labels) == want (want may be a callable
    taking the current value -> expected value, e.g. recomputed from /proc);
    return the samples."""
    last = [None, None, None]

    def ok():
        s = agent.scrape()
        v = metric(s, name, **labels)
        w = want(v) if callable(want) else want
        last[:] = [s, v, w]
        return v is not None and v == w and s

    def why():
        return "%s%s: expected %s, got %s (all series of %s: %s)" % (
            name, _lfmt(labels), last[2], "no series" if last[1] is None else "%g" % last[1], name,
            select_series(last[0] or {}, name))
    return wait_for(ok, timeout, interval=0.1, what=why)


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    fail("no VmRSS in /proc/%d/status" % pid)


def bpf_fd_ids(pid):
    """{"prog_id": set, "link_id": set, "map_id": set}: the BPF objects
    process pid holds by fd, from the id lines of its /proc/PID/fdinfo/* (a
    link's fdinfo also names its program). Empty sets once pid is gone."""
    out = {"prog_id": set(), "link_id": set(), "map_id": set()}
    d = "/proc/%d/fdinfo" % pid
    try:
        fds = os.listdir(d)
    except OSError:
        return out
    for fd in fds:
        try:
            with open(os.path.join(d, fd)) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.split("\n"):
            k, _, v = line.partition(":")
            if k in out and v.strip().isdigit():
                out[k].add(int(v))
    return out


def file_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def pids_with_exe(path):
    """Live processes (not zombies) whose executable is the file `path`
    (same device and inode), from /proc."""
    want = file_id(path)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = os.stat("/proc/%s/exe" % d)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == want:
            out.append(int(d))
    return sorted(out)


def descendants(pid):
    out = []
    todo = [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def copy_binary(src, dst):
    """A copy of src at dst (a different inode), executable."""
    shutil.copyfile(os.path.realpath(src), dst)
    os.chmod(dst, 0o755)
    return dst


def write_file(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def clean_env(extra=None):
    """os.environ without proxies and without any AION_* variable, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AION_")}
    env.update(extra or {})
    return env


class AgentEnv(Agent):
    """An agent started with an explicit environment (AION_* variables of the
    runner's own environment removed) and, with add_listen=False, without
    lib's --listen flag: the listen address then comes from the environment
    or the config file and `port` says where /readyz is expected."""

    def __init__(self, args, env=None, port=None, add_listen=True, ready_timeout=60.0):
        if not AGENT:
            fail("agent path not set")
        if not os.path.exists(AGENT):
            fail("agent binary %s does not exist (run `make`)" % AGENT)
        if not add_listen and port is None:
            fail("AgentEnv: add_listen=False needs the port the agent will listen on")
        self.tmp = mkdtemp("agent")
        self.port = port if port is not None else free_port()
        self.listen = "127.0.0.1:%d" % self.port
        self.args = list(args) + (["--listen", self.listen] if add_listen else [])
        self.env = dict(env or {})
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = spawn([AGENT] + self.args, stdout=self._out, stderr=self._err, env=clean_env(self.env))
        _agents.append(self)
        log("agent pid %d: %s %s" % (self.proc.pid, " ".join("%s=%s" % kv for kv in sorted(self.env.items())),
                                     " ".join(self.args)))
        t0 = time.monotonic()
        deadline = t0 + ready_timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                fail("agent (env %s, args %s) exited with status %d before /readyz on port %d was 200; stderr: %s"
                     % (self.env, self.args, rc, self.port, self.stderr_text().strip()[-2000:] or "(empty)"))
            try:
                st, _, _ = http_get("127.0.0.1", self.port, "/readyz", timeout=1.0)
                last = st
                if st == 200:
                    break
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                fail("agent (env %s, args %s) not ready on port %d within %.0fs (last /readyz: %s); stderr: %s"
                     % (self.env, self.args, self.port, ready_timeout, last,
                        self.stderr_text().strip()[-2000:] or "(empty)"))
            time.sleep(0.05)
        log("agent ready in %.2fs" % (time.monotonic() - t0))


def start_agent_env(args, env=None, port=None, add_listen=True):
    return AgentEnv(args, env, port, add_listen)


def run_agent_expect_exit(args, env=None, timeout=15.0):
    """Run the agent expecting it to exit on its own; returns (rc, stderr)."""
    if not os.path.exists(AGENT):
        fail("agent binary %s does not exist" % AGENT)
    try:
        r = subprocess.run([AGENT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, start_new_session=True, env=clean_env(env),
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        fail("aion-agent %s (env %s) did not exit within %.0fs" % (" ".join(args), env, timeout))
    return r.returncode, r.stderr.decode("utf-8", "replace")


class NginxAt(Nginx):
    """nginx (master + 2 workers) run from `binary` (e.g. a copy of
    /usr/sbin/nginx). With wait_workers=False the constructor returns as soon
    as the port accepts connections (the workers may not be forked yet); call
    wait_workers() later."""

    def __init__(self, binary, conf_body, files=None, port=None, wait_workers=True, start_timeout=10.0):
        if not os.access(binary, os.X_OK):
            fail("%s is not installed/executable (package nginx-light)" % binary)
        self.binary = binary
        self._spawn(binary, conf_body, files, port)
        self._start_timeout = start_timeout
        deadline = time.monotonic() + start_timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                fail("nginx (%s) exited with %d: %s" % (binary, self.proc.returncode, self.errors()))
            if time.monotonic() > deadline:
                fail("nginx (%s) not listening within %.0fs: %s" % (binary, start_timeout, self.errors()))
            time.sleep(0.01)
        self.workers = []
        if wait_workers:
            self.wait_workers()

    def wait_workers(self):
        self.workers = wait_for(lambda: len(children(self.pid)) >= 2 and sorted(children(self.pid)),
                                self._start_timeout,
                                what=lambda: "nginx %d did not fork 2 workers: %s %s"
                                % (self.pid, children(self.pid), self.errors()))
        log("nginx (%s) master %d workers %s port %d" % (self.binary, self.pid, self.workers, self.port))
        return self.workers


class CmdServer:
    """Any command that ends up running servers/http_server.py (e.g. through
    unshare/chroot) and prints `READY <port>` on stdout. Under
    `unshare --fork` use stop_signal=SIGKILL: unshare ignores SIGTERM while
    it waits, and the namespace's init (the server) ignores signals it has no
    handler for."""

    def __init__(self, argv, cwd=None, start_timeout=10.0, env=None, stop_signal=signal.SIGTERM):
        self.tmp = mkdtemp("srv")
        self.argv = list(argv)
        self.stop_signal = stop_signal
        self._err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn(self.argv, stdout=subprocess.PIPE, stderr=self._err, cwd=cwd or self.tmp, env=env)
        self.pid = self.proc.pid
        r, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline().decode() if r else ""
        if not line.startswith("READY "):
            fail("server %s did not start: %r %s" % (self.argv, line, self.errors()))
        self.port = int(line.split()[1])
        log("server pid %d (%s) port %d" % (self.pid, os.path.basename(self.argv[0]), self.port))

    def errors(self):
        return log_tail(self.tmp, ("stderr",))

    def listener_pid(self):
        """The process that owns the listening socket (the spawned process
        itself or a descendant, e.g. under unshare --fork)."""
        ino = _listen_inode(self.port)
        for pid in [self.pid] + descendants(self.pid):
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%d]" % ino:
                        return pid
            except OSError:
                continue
        fail("no process under pid %d holds the listening socket of port %d" % (self.pid, self.port))

    def stop(self):
        return stop_proc(self.proc, self.stop_signal)


def _listen_inode(port):
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for l in f:
                    p = l.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        return int(p[9])
        except OSError:
            continue
    fail("nothing listens on port %d (/proc/net/tcp)" % port)


def start_python_server_with(python, extra_argv=()):
    """servers/http_server.py run by another python binary (e.g. a copy)."""
    return CmdServer([python, os.path.join(SERVERS, "http_server.py"), "--port", "0"] + list(extra_argv))


def mountpoints_under(path):
    """Mount points at or below path visible in our mount namespace."""
    path = os.path.realpath(path).rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for l in f:
            mp = l.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


def safe_rmtree(path):
    """rmtree, refusing when anything is mounted below path (a bind mount of
    /usr must never be deleted through)."""
    mps = mountpoints_under(path)
    if mps:
        fail("not removing %s: mount points below it: %s" % (path, mps))
    shutil.rmtree(path, ignore_errors=True)


def rand_hex(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


# --- PostgreSQL --------------------------------------------------------------

class Postgres:
    """A PostgreSQL 15 cluster in a temp dir (initdb --auth=trust), the
    postmaster run as user postgres via setpriv (which execs: the spawned pid
    is the postmaster) on 127.0.0.1:port, sockets in the temp dir."""

    def __init__(self, port=None, start_timeout=20.0):
        for b in ("initdb", "postgres", "psql"):
            if not os.access(os.path.join(PG_BIN, b), os.X_OK):
                fail("%s/%s is missing (package postgresql-15, `make deps`)" % (PG_BIN, b))
        self.setpriv = need_tool("setpriv")
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            fail("user postgres does not exist (package postgresql-15)")
        self.tmp = mkdtemp("pg")
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        os.mkdir(self.sock)
        for d in (self.tmp, self.sock):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.port = port or free_port()
        self.env = dict(os.environ, LC_ALL="C", LANG="C", HOME=self.tmp, PGCONNECT_TIMEOUT="5")
        as_pg = [self.setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        r = subprocess.run(as_pg + [PG_BIN + "/initdb", "-D", self.data, "--auth=trust", "-U", "postgres",
                                    "--no-sync", "-E", "UTF8", "--locale=C"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.tmp, env=self.env,
                           timeout=60)
        if r.returncode != 0:
            fail("initdb failed (rc %d): %s" % (r.returncode, r.stdout.decode("utf-8", "replace")[-2000:]))
        self._log = open(os.path.join(self.tmp, "postgres.log"), "wb")
        self.proc = spawn(as_pg + [POSTGRES, "-D", self.data, "-p", str(self.port), "-k", self.sock,
                                   "-c", "listen_addresses=127.0.0.1", "-c", "autovacuum=off",
                                   "-c", "fsync=off"],
                          stdout=self._log, stderr=self._log, cwd=self.tmp, env=self.env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                fail("postgres exited with %d: %s" % (self.proc.returncode, self.errors()))
            if port_open(self.port):
                r = self._psql("select 1", check=False)
                if r.returncode == 0:
                    break
                last = r.stderr.decode("utf-8", "replace")
            if time.monotonic() > deadline:
                fail("postgres not accepting queries within %.0fs (%s): %s" % (start_timeout, last, self.errors()))
            time.sleep(0.1)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            pm = int(f.readline())
        if pm != self.pid:
            fail("postmaster.pid says %d, spawned pid %d" % (pm, self.pid))
        log("postgres postmaster %d port %d" % (self.pid, self.port))

    def errors(self):
        return log_tail(self.tmp, ("postgres.log",))

    def _psql(self, sql, check=True):
        r = subprocess.run([PG_BIN + "/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-X", "-A", "-t", "-q", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, timeout=30,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            fail("psql -c %r failed (rc %d): %s" % (sql, r.returncode, r.stderr.decode("utf-8", "replace")))
        return r

    def psql(self, sql):
        return self._psql(sql).stdout.decode().strip()

    def backend_pid(self):
        """One psql connection; returns the pid of the backend that served it."""
        out = self.psql("select pg_backend_pid()")
        try:
            return int(out)
        except ValueError:
            fail("select pg_backend_pid() printed %r" % out)

    def stop(self):
        return stop_proc(self.proc, signal.SIGINT, timeout=10.0)


# --- cgroup v2 -----------------------------------------------------------------

def cgroup2_mount():
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup on a pure v2
    host, /sys/fs/cgroup/unified on a hybrid one)."""
    mps = []
    with open("/proc/mounts") as f:
        for l in f:
            p = l.split()
            if len(p) > 2 and p[2] == "cgroup2":
                mps.append(p[1])
    if not mps:
        fail("no cgroup2 file system mounted (/proc/mounts)")
    return "/sys/fs/cgroup" if "/sys/fs/cgroup" in mps else mps[0]


class Cgroup:
    """A nested cgroup v2 directory created level by level (relative to the
    v2 mount; levels that already exist are shared, not owned). remove()
    moves every process back to the root cgroup and removes the directories
    it created, deepest first; call it in a finally, for several Cgroups in
    reverse order of creation."""

    def __init__(self, rel):
        self.root = cgroup2_mount()
        self.rel = rel.strip("/")
        self.levels = []      # the directories this object created
        cur = self.root
        try:
            for part in self.rel.split("/"):
                cur = os.path.join(cur, part)
                if os.path.isdir(cur):   # a parent shared with an earlier Cgroup
                    continue
                os.mkdir(cur)
                self.levels.append(cur)
        except OSError as e:
            self.remove()
            fail("cannot create cgroup %s: %s" % (cur, e))
        self.path = cur
        # what /proc/PID/cgroup shows for a member ("0::<this>")
        self.proc_path = "/" + self.rel

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)
        want = "0::" + self.proc_path
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().split("\n")
        if want not in lines:
            fail("pid %d not in cgroup %s after writing cgroup.procs: %s" % (pid, self.proc_path, lines))

    def remove(self):
        errs = []
        for d in reversed(self.levels):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    with open(os.path.join(self.root, "cgroup.procs"), "w") as f:
                        f.write("%d\n" % pid)
                except OSError:
                    pass   # exited meanwhile
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:     # EBUSY while an exiting task is still counted
                    err = e
                    time.sleep(0.05)
            else:
                errs.append("%s: %s" % (d, err))
        self.levels = []
        return errs


# --------------------------------------------------------------------------
# databases (test_db.py): the db_{client,server}_operation_duration_seconds
# histograms, MariaDB and Redis servers in temp dirs, the PostgreSQL client
# binaries, and small clients run as their own processes.

DB_CLIENT = "db_client_operation_duration_seconds"
DB_SERVER = "db_server_operation_duration_seconds"
PSQL = PG_BIN + "/psql"          # /usr/bin/psql is a perl wrapper that execs this
PGBENCH = PG_BIN + "/pgbench"
MARIADB = "/usr/bin/mariadb"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
REDIS_SERVER = "/usr/bin/redis-server"   # a symlink to redis-check-rdb on Debian
REDIS_CLI = "/usr/bin/redis-cli"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
PERL = "/usr/bin/perl"
DB_KEY = ("db_operation_name", "db_collection_name", "error_type")


def need_exe(path, package):
    if not os.access(path, os.X_OK):
        fail("%s is missing (package %s, `make deps`)" % (path, package))
    return path


def need_module(module, package, python=PYTHON):
    """The Debian python3 package `package` must provide `module` to `python`."""
    r = subprocess.run([python, "-c", "import " + module], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        fail("%s cannot import %s (package %s, `make deps`): %s"
             % (python, module, package, r.stdout.decode("utf-8", "replace").strip()[-300:]))


def db_table(samples, base, port, **labels):
    """{(db_operation_name, db_collection_name, error_type): count} of every
    `base`_count series with server_port=port (and labels): the whole
    picture of one server's operations, so that an extra or a missing series
    shows up in a comparison."""
    out = {}
    for l, v in select_series(samples, base + "_count", server_port=str(port), **labels):
        k = tuple(l.get(n, "") for n in DB_KEY)
        out[k] = out.get(k, 0) + v
    return out


def fmt_db_table(t):
    if not t:
        return "(none)"
    return "\n".join("%-10s %-22s %-10s %g" % (op, coll or '""', err or '""', v)
                     for (op, coll, err), v in sorted(t.items()))


def db_diff(got, want):
    rows = []
    for k in sorted(set(got) | set(want)):
        g, w = got.get(k, 0), want.get(k, 0)
        if g != w:
            rows.append("%s: expected %g, got %g" % ("/".join(x or '""' for x in k), w, g))
    return "\n".join(rows)


def wait_db_table(agent, base, port, want, timeout=10.0, settle=0.3, what="", **labels):
    """Wait until db_table(base, port, labels) equals `want` exactly (every
    series of the port, nothing more), then check it is the same `settle`
    seconds later. Returns the samples."""
    last = [None, {}]

    def ok():
        s = agent.scrape()
        last[0], last[1] = s, db_table(s, base, port, **labels)
        return last[1] == want and s

    def why():
        s = last[0] or {}
        counters = ", ".join("%s%s %g" % (n, _lfmt(l), v) for n in (
            "aion_agent_requests_dropped_total", "aion_agent_parse_errors_total", "aion_agent_events_lost_total")
            for l, v in select_series(s, n))
        return ("%s%s port %s%s: series differ:\n%s\nall series of the port:\n%s\nagent counters: %s"
                % (base, _lfmt(labels) if labels else "", port, " (%s)" % what if what else "",
                   _indent(db_diff(last[1], want)), _indent(fmt_db_table(last[1])), counters or "(none)"))
    wait_for(ok, timeout, interval=0.1, what=why)
    if settle:
        time.sleep(settle)
        s = agent.scrape()
        last[0], last[1] = s, db_table(s, base, port, **labels)
        if last[1] != want:
            fail("changed after settling: " + why())
    return last[0]


def db_labels(samples, base, port):
    """The label dicts of every `base`_count series of the port."""
    return [l for l, _ in select_series(samples, base + "_count", server_port=str(port))]


def run_client(argv, what, timeout=60.0, env=None, cwd=None, ok_rc=(0,)):
    """Run a client to completion (own session, registered for cleanup);
    returns (rc, stdout, stderr) as text; fails when rc is not in ok_rc."""
    p = spawn(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_proc(p, signal.SIGKILL)
        fail("%s (%s) did not finish within %.0fs" % (what, " ".join(argv)[:300], timeout))
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if ok_rc is not None and p.returncode not in ok_rc:
        fail("%s failed (rc %d): %s\nstdout: %s\nstderr: %s"
             % (what, p.returncode, " ".join(argv)[:300], out.strip()[-1500:], err.strip()[-1500:]))
    return p.returncode, out, err


class GatedClient:
    """A client process started now that waits for a line on its stdin
    before it does anything: its pid can be given to `--pid` and the agent
    started before the client opens a connection. go() releases it and waits
    for its exit; returns (stdout, stderr)."""

    def __init__(self, argv, what, env=None, cwd=None):
        self.what = what
        self.argv = list(argv)
        self.proc = spawn(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, cwd=cwd)
        self.pid = self.proc.pid

    def go(self, timeout=60.0, ok_rc=(0,)):
        try:
            out, err = self.proc.communicate(b"go\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_proc(self.proc, signal.SIGKILL)
            fail("%s did not finish within %.0fs" % (self.what, timeout))
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        if ok_rc is not None and self.proc.returncode not in ok_rc:
            fail("%s failed (rc %d):\nstdout: %s\nstderr: %s"
                 % (self.what, self.proc.returncode, out.strip()[-1500:], err.strip()[-1500:]))
        return out, err


def python_client(source, args, what):
    """A GatedClient running the Python source `source` with /usr/bin/python3
    (sys.argv[1:] = args) once released."""
    return GatedClient([PYTHON, "-c", "import sys; sys.stdin.readline()\n" + source] + [str(a) for a in args], what)


# --- PostgreSQL clients ---------------------------------------------------------

def pg_env(pg, extra=None):
    """Environment for a PostgreSQL client talking to pg over TCP."""
    env = dict(pg.env, PGHOST="127.0.0.1", PGPORT=str(pg.port), PGUSER="postgres", PGDATABASE="postgres")
    env.update(extra or {})
    return env


def pg_admin(pg, sql):
    """psql over the cluster's unix socket (not the TCP port the tests look
    at); returns stdout."""
    r = subprocess.run([PSQL, "-h", pg.sock, "-p", str(pg.port), "-U", "postgres", "-X", "-A", "-t", "-q",
                        "-v", "ON_ERROR_STOP=1", "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pg.env, timeout=60,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        fail("psql (unix socket) -c %r failed (rc %d): %s" % (sql, r.returncode, r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode().strip()


# --- MariaDB ----------------------------------------------------------------------

class MariaDB:
    """A MariaDB server in a temp dir (mariadb-install-db, root without a
    password), mariadbd run as user mysql on 127.0.0.1:port with its unix
    socket in the temp dir. admin()/status() talk over the unix socket
    (PyMySQL from the test process), never over the TCP port. extra: more
    mariadbd options (after the defaults)."""

    def __init__(self, port=None, start_timeout=60.0, extra=()):
        need_exe(MARIADBD, "mariadb-server")
        need_exe(MARIADB_INSTALL_DB, "mariadb-server")
        need_module("pymysql", "python3-pymysql")
        try:
            pw = pwd.getpwnam("mysql")
        except KeyError:
            fail("user mysql does not exist (package mariadb-server)")
        self.tmp = mkdtemp("mariadb")
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        os.mkdir(self.data)
        for d in (self.tmp, self.data):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.port = port or free_port()
        env = dict(os.environ, LC_ALL="C", LANG="C")
        r = subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", "--datadir=" + self.data, "--user=mysql",
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.tmp, env=env,
                           timeout=120, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            fail("mariadb-install-db failed (rc %d): %s" % (r.returncode, r.stdout.decode("utf-8", "replace")[-2000:]))
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn([MARIADBD, "--no-defaults", "--datadir=" + self.data, "--port=%d" % self.port,
                           "--bind-address=127.0.0.1", "--socket=" + self.sock,
                           "--pid-file=" + os.path.join(self.tmp, "pid"), "--user=mysql",
                           "--log-error=" + os.path.join(self.tmp, "error.log"),
                           "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
                           "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0"] + list(extra),
                          stdout=self._log, stderr=self._log, cwd=self.tmp, env=env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                fail("mariadbd exited with %d: %s" % (self.proc.returncode, self.errors()))
            if os.path.exists(self.sock) and port_open(self.port):
                try:
                    self.admin("select 1")
                    break
                except Exception as e:  # noqa: not up yet
                    last = repr(e)
            if time.monotonic() > deadline:
                fail("mariadbd not accepting queries within %.0fs (%s): %s" % (start_timeout, last, self.errors()))
            time.sleep(0.1)
        log("mariadbd pid %d port %d" % (self.pid, self.port))

    def errors(self):
        return log_tail(self.tmp, ("stderr", "error.log"))

    def admin(self, *sqls, db=None):
        """Run statements over the unix socket; returns the rows of the last."""
        import pymysql
        c = pymysql.connect(unix_socket=self.sock, user="root", password="", database=db,
                            autocommit=True, connect_timeout=5)
        try:
            rows = ()
            with c.cursor() as cur:
                for q in sqls:
                    cur.execute(q)
                    rows = cur.fetchall()
            return rows
        finally:
            c.close()

    def status(self, *names):
        """{name: int} of SHOW GLOBAL STATUS for the given variables."""
        rows = self.admin("SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
                          % ",".join("'%s'" % n for n in names))
        got = {k: int(v) for k, v in rows}
        missing = [n for n in names if n not in got]
        if missing:
            fail("SHOW GLOBAL STATUS has no %s" % missing)
        return got

    def stop(self):
        return stop_proc(self.proc, signal.SIGTERM, timeout=30.0)


def status_delta(before, after):
    return {k: after[k] - before[k] for k in before}


# --- Redis ----------------------------------------------------------------------------

class Redis:
    """redis-server on 127.0.0.1:port plus a unix socket in its temp dir (the
    test's own INFO / CONFIG RESETSTAT go there, not to the TCP port), no
    persistence, DEBUG enabled. Started as `binary` (the /usr/bin/redis-server
    symlink by default)."""

    def __init__(self, port=None, binary=REDIS_SERVER, start_timeout=20.0, extra=()):
        need_exe(binary, "redis-server")
        self.tmp = mkdtemp("redis")
        self.port = port or free_port()
        self.sock = os.path.join(self.tmp, "sock")
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", self.sock,
                "--dir", self.tmp, "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.tmp, "redis.log"), "--protected-mode", "no",
                "--enable-debug-command", "yes"] + list(extra)
        self.proc = spawn(argv, stdout=self._log, stderr=self._log, cwd=self.tmp)
        self.pid = self.proc.pid
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                fail("redis-server exited with %d: %s" % (self.proc.returncode, self.errors()))
            if os.path.exists(self.sock) and port_open(self.port):
                try:
                    if self.admin("PING") == "PONG":
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                fail("redis-server not answering PING within %.0fs: %s" % (start_timeout, self.errors()))
            time.sleep(0.05)
        log("redis-server pid %d port %d" % (self.pid, self.port))

    def errors(self):
        return log_tail(self.tmp, ("stderr", "redis.log"))

    def admin(self, *args):
        """One command over the unix socket; the reply (str, int, list, or
        an 'ERROR: ...' str)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(resp_command(*args))
            return RespReader(s).reply()

    def commandstats(self):
        """{command: calls} from INFO commandstats (lower case names, e.g.
        'get', 'config|get')."""
        out = {}
        for l in self.admin("INFO", "commandstats").split("\n"):
            m = re.match(r"cmdstat_([^:]+):calls=(\d+),", l.strip())
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def stop(self):
        return stop_proc(self.proc, signal.SIGTERM, timeout=10.0)


def resp_command(*args):
    """A RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespReader:
    """Minimal RESP2 reply reader over a socket."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                fail("redis closed the connection")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def _n(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            if not d:
                fail("redis closed the connection")
            self.buf += d
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v

    def reply(self):
        l = self._line()
        t, rest = l[:1], l[1:].decode("utf-8", "replace")
        if t == b"+":
            return rest
        if t == b"-":
            return "ERROR: " + rest
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._n(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        fail("unexpected RESP reply %r" % l)


def pty_session(argv, lines, prompt, quit_line, timeout=20.0, env=None):
    """Run an interactive client on a pseudo-terminal (so that it behaves as
    with a user: e.g. the mariadb client's version query and auto-rehash):
    wait for `prompt`, type each line, waiting for the next prompt, then
    `quit_line`; returns the transcript. Fails if a prompt does not come or
    the client does not exit 0."""
    import pty
    master, slave = pty.openpty()
    try:
        p = spawn(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env)
    finally:
        os.close(slave)
    out = [b""]

    def transcript():
        return out[0].decode("utf-8", "replace")[-1500:]

    def read_until(n_prompts, deadline):
        while out[0].count(prompt) < n_prompts:
            if time.monotonic() > deadline:
                return False
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    d = os.read(master, 65536)
                except OSError:
                    return False
                if not d:
                    return False
                out[0] += d
        return True

    try:
        deadline = time.monotonic() + timeout
        for i, l in enumerate(lines):
            if not read_until(i + 1, deadline):
                fail("%s: no prompt %r before line %d (%r); transcript: %s"
                     % (argv[0], prompt, i + 1, l, transcript()))
            os.write(master, l.encode() + b"\n")
        if not read_until(len(lines) + 1, deadline):
            fail("%s: no prompt after the last line; transcript: %s" % (argv[0], transcript()))
        os.write(master, quit_line.encode() + b"\n")
        while p.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    out[0] += os.read(master, 65536)
                except OSError:
                    pass
        if p.poll() is None:
            fail("%s did not exit after %r; transcript: %s" % (argv[0], quit_line, transcript()))
        if p.returncode != 0:
            fail("%s exited with %d; transcript: %s" % (argv[0], p.returncode, transcript()))
    finally:
        os.close(master)
    return out[0].decode("utf-8", "replace")


class PgStatementLog:
    """The cluster's own record of the statements it ran: log_statement=all
    with the remote address in log_line_prefix, set by ALTER SYSTEM and a
    reload (over the unix socket). count() gives the statements (simple
    queries and executes of the extended protocol) logged for TCP clients
    since mark()."""

    _LINE = re.compile(r"^\S+ \S+ \S+ \[\d+\] \d+\.\d+\.\d+\.\d+\(\d+\) LOG:  (statement|execute [^:]*): (.*)$")

    def __init__(self, pg):
        self.pg = pg
        self.path = os.path.join(pg.tmp, "postgres.log")
        pg_admin(pg, "ALTER SYSTEM SET log_statement = 'all'")
        pg_admin(pg, "ALTER SYSTEM SET log_line_prefix = '%m [%p] %r '")
        pg_admin(pg, "SELECT pg_reload_conf()")
        probe = "aion-probe-%s" % rand_hex(8)

        def logged():
            pg_admin(pg, "SELECT '%s'" % probe)
            with open(self.path, "rb") as f:
                return probe.encode() + b"'" in f.read()
        wait_for(logged, 10, interval=0.2, what="log_statement=all not in effect after pg_reload_conf(): %s"
                 % pg.errors())
        self.mark()

    def mark(self):
        self.off = os.path.getsize(self.path)

    def statements(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            text = f.read().decode("utf-8", "replace")
        out = []
        for l in text.split("\n"):
            m = self._LINE.match(l)
            if m:
                out.append((m.group(1), m.group(2)))
        return out

    def count(self):
        return len(self.statements())


# --------------------------------------------------------------------------
# TLS (test_tls.py): self-signed certificates, nginx with `ssl`, processes
# driven line by line over stdin/stdout, the TLS libraries a process maps
# and the agent's `tls: attached to` lines.

OPENSSL = "/usr/bin/openssl"
CURL_BIN = "/usr/bin/curl"
TLS_LIBRARIES = "aion_agent_tls_libraries"
INSTR_ERRORS = "aion_agent_instrumentation_errors_total"
PARSE_ERRORS = "aion_agent_parse_errors_total"
_TLS_ATTACH_RE = re.compile(r"tls: attached to (.+) \((openssl|gnutls), (\d+) probes\)\s*$")
_TLS_LIB_RE = re.compile(r"^lib(ssl|gnutls)\.so")


def tls_cert(d, cn="localhost"):
    """A self-signed RSA 2048 certificate and its key (no passphrase) in
    directory d: (cert path, key path)."""
    need_exe(OPENSSL, "openssl")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                        "-days", "2", "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or not os.path.exists(cert) or not os.path.exists(key):
        fail("openssl req -x509 failed (rc %d): %s" % (r.returncode, r.stdout.decode("utf-8", "replace")[-1500:]))
    return cert, key


class TlsNginx(Nginx):
    """lib's nginx (master + 2 workers) whose listener on 127.0.0.1:port has
    `ssl` with a self-signed certificate made in its temp dir
    (cert.pem / key.pem); with plain=True the same server block also listens
    in clear text on 127.0.0.1:plain_port."""

    def __init__(self, conf_body, files=None, port=None, plain=False, start_timeout=10.0):
        self.plain_port = free_port() if plain else None
        super().__init__(conf_body, files, port, start_timeout)
        if plain:
            wait_for(lambda: port_open(self.plain_port), start_timeout,
                     what=lambda: "nginx not listening on the plain port %d: %s" % (self.plain_port, self.errors()))

    def _spawn(self, binary, conf_body, files, port, ipv6=False):
        self.tmp = mkdtemp("nginx-tls")
        self.port = port or free_port()
        self.cert, self.key = tls_cert(self.tmp)
        body = conf_body.replace("TMPDIR", self.tmp)
        for rel, data in (files or {}).items():
            p = os.path.join(self.tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            for d in _parents(self.tmp, os.path.dirname(p)):
                os.chmod(d, 0o755)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o644)
        conf = NGINX_CONF.format(tmp=self.tmp, port=self.port, listen6="",
                                 body=_indent(body.strip("\n"), "        "))
        listen = "listen 127.0.0.1:%d;" % self.port
        tls = ("listen 127.0.0.1:%d ssl;\n" % self.port
               + ("        listen 127.0.0.1:%d;\n" % self.plain_port if self.plain_port else "")
               + "        ssl_certificate %s;\n        ssl_certificate_key %s;" % (self.cert, self.key))
        if conf.count(listen) != 1:
            fail("TlsNginx: cannot find %r in lib.NGINX_CONF" % listen)
        self.conf = os.path.join(self.tmp, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf.replace(listen, tls))
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn([binary, "-p", self.tmp + "/", "-c", self.conf, "-e", self.tmp + "/error.log"],
                          stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def plain_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.plain_port, path)


class StdioProc:
    """A process driven line by line: send(line) writes to its stdin,
    expect(prefix) returns the next stdout line starting with prefix (the
    pipe's fd is read directly, nothing is buffered behind our back);
    finish() closes stdin, waits for the exit and returns the rest of stdout.
    stderr goes to a file (shown on failure)."""

    def __init__(self, argv, what, env=None, cwd=None):
        self.what = what
        self.argv = [str(a) for a in argv]
        self.tmp = mkdtemp("stdio")
        self._err = open(os.path.join(self.tmp, "stderr"), "wb")
        self.proc = spawn(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                          env=env, cwd=cwd or self.tmp)
        self.pid = self.proc.pid
        self.buf = b""
        self.lines = []

    def errors(self):
        return log_tail(self.tmp, ("stderr",))

    def send(self, line):
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as e:
            fail("%s (pid %d): cannot write %r to its stdin (%s; rc %s): %s"
                 % (self.what, self.pid, line, e, self.proc.poll(), self.errors()))

    def expect(self, prefix, timeout=20.0):
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                l, self.buf = self.buf.split(b"\n", 1)
                l = l.decode("utf-8", "replace")
                self.lines.append(l)
                if l.startswith(prefix):
                    return l
            left = deadline - time.monotonic()
            if left <= 0:
                fail("%s (pid %d): no line starting with %r within %.0fs; stdout %r; stderr: %s"
                     % (self.what, self.pid, prefix, timeout, self.lines[-5:], self.errors()))
            r, _, _ = select.select([fd], [], [], min(left, 0.2))
            if r:
                d = os.read(fd, 65536)
                if not d:
                    self.proc.wait(5)
                    fail("%s (pid %d) exited (rc %s) before a line starting with %r; stdout %r; stderr: %s"
                         % (self.what, self.pid, self.proc.returncode, prefix, self.lines[-5:] + [self.buf],
                            self.errors()))
                self.buf += d

    def finish(self, timeout=60.0, ok_rc=(0,)):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stop_proc(self.proc, signal.SIGKILL)
                fail("%s (pid %d) did not finish within %.0fs: %s" % (self.what, self.pid, timeout, self.errors()))
            r, _, _ = select.select([fd], [], [], min(left, 0.2))
            if r:
                d = os.read(fd, 65536)
                if not d:
                    break
                self.buf += d
        try:
            self.proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_proc(self.proc, signal.SIGKILL)
            fail("%s (pid %d) closed stdout but did not exit: %s" % (self.what, self.pid, self.errors()))
        out = self.buf.decode("utf-8", "replace")
        self.buf = b""
        if ok_rc is not None and self.proc.returncode not in ok_rc:
            fail("%s (pid %d) failed (rc %d): stdout %r; stderr: %s"
                 % (self.what, self.pid, self.proc.returncode, out[-1500:], self.errors()))
        return out


def tls_libs_of(pids):
    """{(st_dev, st_ino): path} of the libssl.so* / libgnutls.so* files the
    processes map (from /proc/PID/maps, stat'ed through /proc/PID/root)."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/maps" % pid) as f:
                lines = f.read().split("\n")
        except OSError:
            continue
        for l in lines:
            p = l.split(None, 5)
            if len(p) < 6 or not p[5].startswith("/"):
                continue
            path = p[5].strip()
            if not _TLS_LIB_RE.match(os.path.basename(path)):
                continue
            try:
                st = os.stat("/proc/%d/root%s" % (pid, path))
            except OSError:
                continue
            out[(st.st_dev, st.st_ino)] = path
    return out


def tls_attached(agent):
    """The agent's `tls: attached to PATH (KIND, N probes)` lines in order:
    [(path, kind, probes)]."""
    out = []
    for l in agent.stderr_text().split("\n"):
        m = _TLS_ATTACH_RE.search(l.rstrip("\r"))
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3))))
    return out


def tls_attached_ids(agent):
    """{(st_dev, st_ino) of the file (or the path itself when it cannot be
    stat'ed): [(path, kind, probes), ...]} of the `tls: attached to` lines."""
    out = {}
    for path, kind, n in tls_attached(agent):
        try:
            st = os.stat(path)
            k = (st.st_dev, st.st_ino)
        except OSError:
            k = path
        out.setdefault(k, []).append((path, kind, n))
    return out


def tls_lines_text(agent):
    rows = [l for l in agent.stderr_text().split("\n") if "tls" in l.lower()]
    return "\n".join(rows[-20:]) if rows else "(no line mentioning tls)"


# --------------------------------------------------------------------------
# exact server tables (test_privs, test_lifecycle)

def curl_ok_n(url, n):
    """n GETs of url on one connection by an untraced curl (TLS not
    verified); every answer must be 200."""
    argv = [CURL_BIN, "-sS", "-k", "--noproxy", "*", "--http1.1", "-w", "%{http_code}\\n"]
    for _ in range(n):
        argv += [url, "-o", "/dev/null"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, stdin=subprocess.DEVNULL,
                       env=clean_env())
    codes = r.stdout.decode().split()
    if r.returncode != 0 or codes != ["200"] * n:
        fail("curl %s x%d: rc %d, codes %r: %s" % (url, n, r.returncode, codes, r.stderr.decode()[-500:]))


def server_table(s, port):
    """{(method, status, route, scheme, error): count} of a server port."""
    out = {}
    for l, v in select_series(s, HIST + "_count", server_port=str(port)):
        k = (l.get("http_request_method", ""), l.get("http_response_status_code", ""), l.get("http_route", ""),
             l.get("url_scheme", ""), l.get("error_type", ""))
        out[k] = out.get(k, 0) + v
    return out


def expect_server_tables(agent, want, timeout=10.0, settle=0.5):
    """want: {port: {(method, status, route, scheme, error): n}}; every
    series of those ports, exactly, and still so after `settle` s."""
    last = {}

    def got():
        s = agent.scrape()
        last["t"] = {p: server_table(s, p) for p in want}
        return last["t"] == want
    wait_for(got, timeout, what=lambda: "server series: expected %r, got %r" % (want, last.get("t")))
    time.sleep(settle)
    if not got():
        fail("server series changed after settling: expected %r, got %r" % (want, last["t"]))

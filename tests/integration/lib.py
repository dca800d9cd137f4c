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
    def __init__(self, args, ready_timeout=20.0):
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
        self.proc = spawn([AGENT] + self.args, stdout=self._out, stderr=self._err)
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


def start_agent(args, ready_timeout=20.0):
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
        self.proc = spawn([NGINX, "-p", self.tmp + "/", "-c", self.conf, "-e", self.tmp + "/error.log"],
                          stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid
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

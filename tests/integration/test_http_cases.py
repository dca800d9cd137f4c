"""HTTP server-side correctness cases (`-k cases`): a traced real server
(nginx, Python, Node.js), untraced real clients (curl, ab, Python sockets
and http.client, node), exact assertions.

Every test compares, for its own server's port, the whole table
{(method, status, route, error_type): count} of
http_server_request_duration_seconds with what it sent (an extra series
fails as much as a missing one), then the request and response body-size
histograms (count and exact sum per label set), which come last.
"""
import http.client
import json
import os
import random
import re
import resource
import socket
import ssl
import subprocess
import time

import lib
from lib import HIST, fail, select_series, wait_for, start_agent, start_nginx

REQ_BODY = "http_server_request_body_size_bytes"
RESP_BODY = "http_server_response_body_size_bytes"
KEY = ("http_request_method", "http_response_status_code", "http_route", "error_type")
NODE = "/usr/bin/node"
RAW_SERVER = os.path.join(lib.SERVERS, "cases_raw_server.py")
NODE_SERVER = os.path.join(lib.SERVERS, "cases_node_server.js")

NGINX_CASES = r"""
location = /ok { return 200 "ok\n"; }
location = /teapot { return 418; }
location = /boom { return 503; }
location = /nocontent { return 204; }
location /static/ { root TMPDIR/www; }
"""


# ---------------------------------------------------------------------------
# helpers (this file's own; lib.py is shared)

def _k(method, status, route, error_type=""):
    return (method, str(status), route, error_type)


def _fmt_table(t):
    if not t:
        return "      (none)"
    return "\n".join("      %s %s %s error_type=%r: %s" % (k[0], k[1], k[2], k[3], v)
                     for k, v in sorted(t.items()))


def table(s, port, base=HIST):
    """{(method, status, route, error_type): _count} of `base` for port."""
    out = {}
    for l, v in select_series(s, base + "_count", server_port=str(port)):
        k = tuple(l.get(x, "") for x in KEY)
        out[k] = out.get(k, 0) + int(v)
    return out


def port_series(s, port):
    """Every series of any metric whose server_port is port."""
    return sorted("%s%s %g" % (n, dict(l), v) for (n, l), v in s.items()
                  if dict(l).get("server_port") == str(port))


def wait_tables(agent, wants, timeout=5.0, settle=0.3):
    """wants: {port: {key: count}}. Wait until the duration table of every
    port equals its want exactly, check they are still equal `settle` s
    later (double counting); return the samples. A failure shows every
    port's table, matching or not."""
    last = [None]

    def ok():
        s = agent.scrape()
        last[0] = s
        return all(table(s, p) == w for p, w in wants.items())

    def why():
        s = last[0] or {}
        out = []
        for p, w in wants.items():
            got = table(s, p)
            out.append("%s table for port %s%s:\n    expected:\n%s\n    got:\n%s"
                       % (HIST, p, "" if got == w else " DIFFERS", _fmt_table(w), _fmt_table(got)))
        return "\n".join(out)
    wait_for(ok, timeout, interval=0.1, what=why)
    if settle:
        time.sleep(settle)
        s = agent.scrape()
        last[0] = s
        if not all(table(s, p) == w for p, w in wants.items()):
            fail("changed after settling: " + why())
    # only the server is traced: nothing on its port is a client's request
    for p in wants:
        cl = [l for l in port_series(last[0], p) if l.startswith("http_client_")]
        if cl:
            fail("http_client_* series on the traced server's port %s:\n      %s" % (p, "\n      ".join(cl)))
    return last[0]


def wait_table(agent, port, want, timeout=5.0, settle=0.3):
    return wait_tables(agent, {port: want}, timeout, settle)


def body_table(s, port, base):
    """{key: (count, sum)} of a body-size histogram for port; series with
    count 0 left out (a response series that only saw connection_closed)."""
    out = {}
    for suffix, i in (("_count", 0), ("_sum", 1)):
        for l, v in select_series(s, base + suffix, server_port=str(port)):
            k = tuple(l.get(x, "") for x in KEY)
            cur = out.setdefault(k, [0, 0])
            cur[i] += v
    return {k: (int(c), int(sm) if sm == int(sm) else sm) for k, (c, sm) in out.items() if c}


def check_bodies(s, port, req=None, resp=None):
    """Exact (count, sum) per label set of the request / response body-size
    histograms for port."""
    for base, want in ((REQ_BODY, req), (RESP_BODY, resp)):
        if want is None:
            continue
        got = body_table(s, port, base)
        if got != want:
            fail("%s for port %s (count, sum):\n    expected:\n%s\n    got:\n%s"
                 % (base, port, _fmt_table(want), _fmt_table(got)))


def check_bucket(s, port, le, want, **labels):
    got = lib.bucket(s, le, server_port=str(port), **labels)
    if got != want:
        les = sorted({float(dict(l)["le"]) for (n, l), _ in s.items()
                      if n == HIST + "_bucket" and dict(l).get("server_port") == str(port)})
        fail("%s_bucket{le=%g,%s}: expected %d, got %g; buckets: %s"
             % (HIST, le, labels, want, got,
                [(x, lib.bucket(s, x, server_port=str(port), **labels)) for x in les]))


def eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def start_raw_server():
    return lib.CmdServer([lib.PYTHON, RAW_SERVER, "--port", "0"])


def start_nginx_conns(conf_body, worker_connections, files=None):
    """start_nginx with another worker_connections (lib's template has 1024)
    and worker_rlimit_nofile to match."""
    old = lib.NGINX_CONF
    new = old.replace("events {{ worker_connections 1024; }}",
                      "worker_rlimit_nofile %d;\nevents {{ worker_connections %d; }}"
                      % (worker_connections * 2, worker_connections))
    if new == old:
        fail("lib.NGINX_CONF has no `events {{ worker_connections 1024; }}` to replace")
    lib.NGINX_CONF = new
    try:
        return start_nginx(conf_body, files)
    finally:
        lib.NGINX_CONF = old


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            hard = n
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


class Conn:
    """A raw client socket with a read buffer; reads whole responses and
    decodes their framing itself (Content-Length, chunked with the chunk
    sizes kept, close-delimited, no body for HEAD / 1xx / 204 / 304)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _more(self, what):
        d = self.s.recv(262144)
        if not d:
            fail("connection closed while reading %s (have %d bytes: %r)" % (what, len(self.buf), self.buf[:200]))
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more("a line")
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._more("a response head")
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return lines[0], status, hdrs

    def response(self, method="GET"):
        """-> dict(status, line, headers, body, chunks (sizes, or None),
        interim (the 1xx status lines before it))."""
        interim = []
        while True:
            line, status, hdrs = self.head()
            if 100 <= status < 200 and status != 101:
                interim.append(line)
                continue
            break
        chunks = None
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            parts = []
            while True:
                sz = self._line()
                n = int(sz.split(b";")[0].strip(), 16)
                if n == 0:
                    while self._line() != b"":  # trailers, then the empty line
                        pass
                    break
                while len(self.buf) < n + 2:
                    self._more("chunk data")
                parts.append(self.buf[:n])
                if self.buf[n:n + 2] != b"\r\n":
                    fail("chunk of %d bytes not followed by CRLF: %r" % (n, self.buf[n:n + 10]))
                self.buf = self.buf[n + 2:]
                chunks.append(n)
            body = b"".join(parts)
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._more("a body of %d bytes" % n)
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while True:
                d = self.s.recv(262144)
                if not d:
                    break
                self.buf += d
            body, self.buf = self.buf, b""
        return dict(status=status, line=line, headers=hdrs, body=body, chunks=chunks, interim=interim)

    def close(self):
        self.s.close()


def req(method, path, extra="", version="HTTP/1.1", body=b""):
    h = "%s %s %s\r\nHost: 127.0.0.1\r\nUser-Agent: aion-cases\r\n%s" % (method, path, version, extra)
    if body:
        h += "Content-Length: %d\r\n" % len(body)
    return (h + "\r\n").encode() + body


def run(argv, timeout=60, input=None):
    env = lib.clean_env()
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env,
                       input=input)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# 1. a 50 MB response

BIG = 50 * 1024 * 1024


def test_cases_large_response_50mb():
    """One 50 MB static file (sendfile) fetched by curl: counted once, its
    latency the whole transfer (curl's time_total within 10 % or 2 ms), body
    size exact. nginx sends it at 250 MB/s (limit_rate, ~0.2 s): the server
    is the bottleneck, as on a real network, so what is still in the socket
    buffers when nginx's last sendfile returns (the agent's end, by
    definition) is small. Unpaced, curl on a loaded 2-CPU host is the
    bottleneck and the megabytes it has not read yet when the server is done
    were 3-12 % of the time in our runs."""
    data = bytes(random.Random(1).getrandbits(8) for _ in range(65536)) * (BIG // 65536)
    ng = start_nginx("location = /static/big.bin { root TMPDIR/www; limit_rate 250m; }\n" + NGINX_CASES,
                     files={"www/static/big.bin": data})
    agent = start_agent(["--pid", str(ng.pid)])
    lib.need_tool("curl")
    rc, out, err = run(["curl", "-sS", "--noproxy", "*", "--http1.1", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download} %{time_total}", ng.url("/static/big.bin")])
    if rc != 0:
        fail("curl rc %d: %s %s" % (rc, out, err))
    code, size, t_curl = out.split()
    eq("curl status", code, "200")
    eq("curl size_download", int(size), BIG)
    t_curl = float(t_curl)
    port = ng.port
    s = wait_table(agent, port, {_k("GET", 200, "/static/big.bin"): 1})
    t_agent = lib.total(s, HIST + "_sum", server_port=str(port))
    lib.log("50 MB: curl time_total %.4fs, agent %.4fs" % (t_curl, t_agent))
    tol = max(0.10 * t_curl, 0.002)
    if abs(t_agent - t_curl) > tol:
        fail("latency of the 50 MB response: agent %.4fs, curl time_total %.4fs (tolerance %.4fs)"
             % (t_agent, t_curl, tol))
    check_bodies(s, port, req={_k("GET", 200, "/static/big.bin"): (1, 0)},
                 resp={_k("GET", 200, "/static/big.bin"): (1, BIG)})
    agent.stop()


# ---------------------------------------------------------------------------
# 2. chunked responses: nginx gzip and the raw server's own chunking

def _words(n, seed):
    r = random.Random(seed)
    vocab = ["aion", "latency", "histogram", "kernel", "socket", "chunk", "nginx", "bucket",
             "request", "response", "%d" % seed]
    out = []
    size = 0
    while size < n:
        w = r.choice(vocab) + (" " if r.random() < 0.9 else "\n") + str(r.getrandbits(12))
        out.append(w)
        size += len(w)
    return "".join(out)[:n].encode()


def test_cases_chunked_response():
    text = _words(400 * 1024, 7)
    ng = start_nginx("gzip on; gzip_min_length 0; gzip_types text/plain application/octet-stream;\n"
                     + NGINX_CASES, files={"www/static/words.txt": text})
    raw = start_raw_server()
    raw_iov = start_raw_server()
    agent = start_agent(["--pid", str(ng.pid), "--pid", str(raw.pid), "--pid", str(raw_iov.pid)])

    # One keep-alive connection per server: each chunked response followed
    # by a /ok (framing kept for the next request), except the last one,
    # after which the client closes the connection: a response whose end
    # was missed would be open at the close (connection_closed).
    #
    # nginx gzip: nginx writes every chunk with one writev: size line, the
    # 4 KB gzip buffers and the CRLF each an iovec (10-11 iovecs), the last
    # chunk's "0\r\n\r\n" in the final iovec of the last writev.
    c = Conn(ng.port)
    gz_sizes = []
    for i in range(4):
        c.send(req("GET", "/static/words.txt", "Accept-Encoding: gzip\r\n"))
        r = c.response()
        eq("nginx gzip status", r["status"], 200)
        if r["chunks"] is None:
            fail("nginx gzip answered without Transfer-Encoding: chunked: %s" % r["headers"])
        if len(r["chunks"]) < 2:
            fail("expected a multi-chunk gzip response, chunks %s" % r["chunks"])
        gz_sizes.append(sum(r["chunks"]))
        lib.log("nginx gzip chunks: %d, sizes %s..., decoded %d" % (len(r["chunks"]), r["chunks"][:5],
                                                                    gz_sizes[-1]))
        if i < 3:
            c.send(req("GET", "/ok"))
            eq("nginx /ok", c.response()["status"], 200)
    c.close()

    # raw server: each chunk its own write / all in one write / size, data
    # and CRLF in separate writes; sizes from 1 byte to 200 kB. A second one:
    # one sendmsg with an iovec per piece (as nginx writes).
    def chunked(port, plans):
        c = Conn(port)
        sizes_got = []
        for i, (sizes, mode) in enumerate(plans):
            c.send(req("GET", "/chunked?s=%s&m=%s" % (sizes, mode)))
            r = c.response()
            eq("raw chunked status", r["status"], 200)
            eq("chunk sizes (%s)" % mode, r["chunks"], [int(x) for x in sizes.split(",")])
            sizes_got.append(sum(r["chunks"]))
            if i < len(plans) - 1:
                c.send(req("GET", "/ok"))
                eq("raw /ok", c.response()["status"], 200)
        c.close()
        return sizes_got
    raw_sizes = chunked(raw.port, [("1,15,16,255,4096,5000,70000,200000", "each"),
                                   ("3,7,100,1,900", "one"),
                                   ("1,17,4095,4096,4097,65536,1", "split")])
    iov_sizes = chunked(raw_iov.port, [("10,20,30", "iov"), ("1,2000,3", "iov")])

    # every server is checked, then every difference reported
    errors = []
    for name, port, n, n_ok, route, sizes in (
            ("raw", raw.port, 3, 2, "/chunked", raw_sizes),
            ("raw (sendmsg)", raw_iov.port, 2, 1, "/chunked", iov_sizes),
            ("nginx gzip", ng.port, 4, 3, "/static/words.txt", gz_sizes)):
        want = {_k("GET", 200, route): n, _k("GET", 200, "/ok"): n_ok}
        try:
            s = wait_table(agent, port, want)
            check_bodies(s, port, req={k: (v, 0) for k, v in want.items()},
                         resp={_k("GET", 200, route): (n, sum(sizes)), _k("GET", 200, "/ok"): (n_ok, 3 * n_ok)})
        except lib.TestFailure as e:
            errors.append("%s server: %s" % (name, e))
    if errors:
        fail("\n".join(errors))
    agent.stop()


# ---------------------------------------------------------------------------
# 3. Expect: 100-continue

def test_cases_expect_100_continue():
    srv = lib.start_python_server()   # BaseHTTPRequestHandler, HTTP/1.1: answers 100 Continue
    agent = start_agent(["--pid", str(srv.pid)])
    tmp = lib.mkdtemp("cases-body")
    body1 = bytes(random.Random(3).getrandbits(8) for _ in range(5000))
    path = os.path.join(tmp, "body.bin")
    with open(path, "wb") as f:
        f.write(body1)
    rc, out, err = run(["curl", "-sS", "-v", "--noproxy", "*", "--http1.1", "-o", "/dev/null",
                        "-H", "Expect: 100-continue", "-H", "Content-Type: application/octet-stream",
                        "--data-binary", "@" + path, "-w", "%{http_code} %{size_download}\n",
                        srv.url("/users/17")])
    if rc != 0:
        fail("curl rc %d: %s %s" % (rc, out, err))
    code, size1 = out.split()
    eq("curl status", code, "200")
    if "< HTTP/1.1 100 Continue" not in err:
        fail("curl did not get a 100 Continue: %s" % err[-1500:])

    # by hand: head with Expect, wait for the 100, then the body
    body2 = b"y" * 3000
    c = Conn(srv.port)
    c.send(req("POST", "/ok", "Expect: 100-continue\r\nContent-Length: %d\r\n" % len(body2)))
    line, status, _ = c.head()
    eq("interim answer", (status, line), (100, "HTTP/1.1 100 Continue"))
    c.send(body2)
    r = c.response()
    eq("POST /ok status", r["status"], 200)
    c.close()

    port = srv.port
    want = {_k("POST", 200, "/users/{id}"): 1, _k("POST", 200, "/ok"): 1}
    s = wait_table(agent, port, want)
    check_bodies(s, port, req={_k("POST", 200, "/users/{id}"): (1, len(body1)), _k("POST", 200, "/ok"): (1, 3000)},
                 resp={_k("POST", 200, "/users/{id}"): (1, int(size1)), _k("POST", 200, "/ok"): (1, len(r["body"]))})
    agent.stop()


# ---------------------------------------------------------------------------
# 4. HEAD, 204, 304: no body

def test_cases_head_204_304_no_body():
    data = bytes(range(256)) * 40   # 10240 bytes
    ng = start_nginx(NGINX_CASES, files={"www/static/f.bin": data})
    agent = start_agent(["--pid", str(ng.pid)])
    c = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=10)

    def do(method, path, headers=None):
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        b = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), b

    try:
        st, h, b = do("GET", "/static/f.bin")
        eq("GET f.bin", (st, len(b)), (200, len(data)))
        etag, lm = h.get("etag"), h.get("last-modified")
        if not etag or not lm:
            fail("nginx sent no ETag / Last-Modified: %s" % h)
        got = []
        for _ in range(3):
            st, hh, b = do("HEAD", "/static/f.bin")
            if hh.get("content-length") != str(len(data)):
                fail("HEAD Content-Length %r" % hh.get("content-length"))
            got.append((st, len(b)))
            st, _, b = do("GET", "/ok")
            got.append((st, b))
        for _ in range(2):
            st, _, b = do("GET", "/nocontent")
            got.append((st, len(b)))
            st, _, b = do("GET", "/ok")
            got.append((st, b))
        st, _, b = do("GET", "/static/f.bin", {"If-None-Match": etag})
        got.append((st, len(b)))
        st, _, b = do("GET", "/ok")
        got.append((st, b))
        st, _, b = do("GET", "/static/f.bin", {"If-Modified-Since": lm})
        got.append((st, len(b)))
        # and the last request of the connection a HEAD
        st, _, b = do("HEAD", "/static/f.bin")
        got.append((st, len(b)))
    finally:
        c.close()
    eq("statuses", got, [(200, 0), (200, b"ok\n")] * 3 + [(204, 0), (200, b"ok\n")] * 2
       + [(304, 0), (200, b"ok\n"), (304, 0), (200, 0)])
    # HEAD on separate connections too (curl -I)
    for _ in range(2):
        rc, out, err = run(["curl", "-sS", "-I", "--noproxy", "*", "--http1.1", "-o", "/dev/null",
                            "-w", "%{http_code}", ng.url("/static/f.bin")])
        eq("curl -I", (rc, out), (0, "200"))

    port = ng.port
    want = {_k("GET", 200, "/static/f.bin"): 1, _k("HEAD", 200, "/static/f.bin"): 6,
            _k("GET", 204, "/nocontent"): 2, _k("GET", 304, "/static/f.bin"): 2, _k("GET", 200, "/ok"): 6}
    s = wait_table(agent, port, want)
    check_bodies(s, port, req={k: (v, 0) for k, v in want.items()},
                 resp={_k("GET", 200, "/static/f.bin"): (1, len(data)), _k("HEAD", 200, "/static/f.bin"): (6, 0),
                       _k("GET", 204, "/nocontent"): (2, 0), _k("GET", 304, "/static/f.bin"): (2, 0),
                       _k("GET", 200, "/ok"): (6, 18)})
    agent.stop()


# ---------------------------------------------------------------------------
# 5. HTTP/1.0 close-delimited response

def test_cases_http10_close_delimited():
    raw = start_raw_server()
    agent = start_agent(["--pid", str(raw.pid)])
    sizes = [1, 300000]
    for n in sizes:
        c = Conn(raw.port)
        c.send(req("GET", "/close/%d" % n, version="HTTP/1.0"))
        r = c.response()
        c.close()
        eq("status line", r["line"], "HTTP/1.0 200 OK")
        eq("Content-Length header", r["headers"].get("content-length"), None)
        eq("close-delimited body length", len(r["body"]), n)
    port = raw.port
    s = wait_table(agent, port, {_k("GET", 200, "/close/{id}"): 2})
    check_bodies(s, port, req={_k("GET", 200, "/close/{id}"): (2, 0)},
                 resp={_k("GET", 200, "/close/{id}"): (2, sum(sizes))})
    agent.stop()


# ---------------------------------------------------------------------------
# 6. pipelining

def test_cases_pipelined_nginx():
    ng = start_nginx(NGINX_CASES, files={"www/static/p.bin": b"p" * 7000})
    agent = start_agent(["--pid", str(ng.pid)])
    pipes = [["/ok", "/teapot", "/ok", "/boom", "/static/p.bin", "/missing", "/ok"],
             ["/static/p.bin", "/static/p.bin", "/teapot", "/ok", "/boom", "/boom"]]
    want, resp = {}, {}
    for paths in pipes:
        c = Conn(ng.port)
        c.send(b"".join(req("GET", p) for p in paths))     # one write
        for p in paths:
            r = c.response()
            st = {"/ok": 200, "/teapot": 418, "/boom": 503, "/static/p.bin": 200, "/missing": 404}[p]
            eq("pipelined %s status" % p, r["status"], st)
            k = _k("GET", st, p, "503" if st == 503 else "")
            want[k] = want.get(k, 0) + 1
            n, sm = resp.get(k, (0, 0))
            resp[k] = (n + 1, sm + len(r["body"]))
        c.close()
    port = ng.port
    s = wait_table(agent, port, want)
    check_bodies(s, port, req={k: (v, 0) for k, v in want.items()}, resp=resp)
    agent.stop()


# ---------------------------------------------------------------------------
# 7. keep-alive idle gaps never count as latency

def test_cases_keepalive_idle_gaps():
    ng = start_nginx(NGINX_CASES)
    agent = start_agent(["--pid", str(ng.pid)])
    c = Conn(ng.port)
    for i in range(3):
        if i:
            time.sleep(1.0)
        c.send(req("GET", "/ok"))
        eq("status", c.response()["status"], 200)
    c.close()
    port = ng.port
    s = wait_table(agent, port, {_k("GET", 200, "/ok"): 3})
    check_bucket(s, port, 0.005, 3)
    check_bodies(s, port, req={_k("GET", 200, "/ok"): (3, 0)}, resp={_k("GET", 200, "/ok"): (3, 9)})
    agent.stop()


# ---------------------------------------------------------------------------
# 8. the client aborts

def test_cases_client_abort():
    srv = lib.start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    closed_at = lib.abort_request(srv.port, "/sleep/500", after=0.1)
    # the handler wakes 0.4 s after the close and writes into the dead socket
    time.sleep(max(0, closed_at + 0.8 - time.monotonic()))
    port = srv.port
    want = {_k("GET", 0, "/sleep/{id}", "connection_closed"): 1}
    s = wait_table(agent, port, want, settle=0.5)
    check_bodies(s, port, req={_k("GET", 0, "/sleep/{id}", "connection_closed"): (1, 0)}, resp={})
    agent.stop()


# ---------------------------------------------------------------------------
# 9. the server resets the connection instead of answering

def test_cases_server_reset():
    raw = start_raw_server()
    agent = start_agent(["--pid", str(raw.pid)])
    c = Conn(raw.port)
    c.send(req("GET", "/reset"))
    try:
        d = c.s.recv(65536)
        eq("bytes before the reset", d, b"")
        outcome = "EOF"
    except ConnectionResetError:
        outcome = "RST"
    c.close()
    eq("client saw", outcome, "RST")
    port = raw.port
    want = {_k("GET", 0, "/reset", "connection_closed"): 1}
    s = wait_table(agent, port, want, settle=0.5)
    check_bodies(s, port, req={_k("GET", 0, "/reset", "connection_closed"): (1, 0)}, resp={})
    agent.stop()


# ---------------------------------------------------------------------------
# 10. fd reuse right after a close

def test_cases_fd_reuse_after_close():
    raw = start_raw_server()
    agent = start_agent(["--pid", str(raw.pid)])
    c = Conn(raw.port)
    c.send(req("GET", "/sleep/200", "Connection: close\r\n"))
    eq("/sleep/200", c.response()["status"], 200)
    c.close()
    for i in range(200):
        c = Conn(raw.port)
        # even: the server closes (Connection: close); odd: the client does
        c.send(req("GET", "/ok", "Connection: close\r\n" if i % 2 == 0 else ""))
        r = c.response()
        if r["status"] != 200:
            fail("request %d: status %d" % (i, r["status"]))
        c.close()
    port = raw.port
    s = wait_table(agent, port, {_k("GET", 200, "/sleep/{id}"): 1, _k("GET", 200, "/ok"): 200})
    check_bucket(s, port, 0.005, 200, http_route="/ok")
    check_bucket(s, port, 0.1, 0, http_route="/sleep/{id}")
    check_bucket(s, port, 0.25, 1, http_route="/sleep/{id}")
    check_bodies(s, port, req={_k("GET", 200, "/sleep/{id}"): (1, 0), _k("GET", 200, "/ok"): (200, 0)},
                 resp={_k("GET", 200, "/sleep/{id}"): (1, 6), _k("GET", 200, "/ok"): (200, 600)})
    agent.stop()


# ---------------------------------------------------------------------------
# 11. 10,000 short connections (ab, no keep-alive)

def test_cases_ab_10000_short_connections():
    ab = lib.need_tool("ab")
    ng = start_nginx(NGINX_CASES)
    agent = start_agent(["--pid", str(ng.pid)])
    rc, out, err = run([ab, "-q", "-n", "10000", "-c", "1", ng.url("/ok")], timeout=100)
    if rc != 0:
        fail("ab rc %d: %s %s" % (rc, out[-1500:], err[-500:]))
    m1 = re.search(r"^Complete requests:\s+(\d+)$", out, re.M)
    m2 = re.search(r"^Failed requests:\s+(\d+)$", out, re.M)
    if not m1 or not m2:
        fail("ab output without Complete/Failed requests: %s" % out[-1500:])
    eq("ab Complete requests", int(m1.group(1)), 10000)
    eq("ab Failed requests", int(m2.group(1)), 0)
    if "Non-2xx responses" in out:
        fail("ab saw non-2xx responses: %s" % out[-1500:])
    port = ng.port
    s = wait_table(agent, port, {_k("GET", 200, "/ok"): 10000}, timeout=15)
    check_bodies(s, port, req={_k("GET", 200, "/ok"): (10000, 0)}, resp={_k("GET", 200, "/ok"): (10000, 30000)})
    agent.stop()


# ---------------------------------------------------------------------------
# 12. 1,000 concurrent keep-alive connections

def test_cases_1000_concurrent_keepalive():
    raise_nofile(8192)
    ng = start_nginx_conns(NGINX_CASES, 4096)
    agent = start_agent(["--pid", str(ng.pid)])
    conns = []
    try:
        for i in range(1000):
            conns.append(Conn(ng.port))
        for rnd in range(2):
            for c in conns:
                c.send(req("GET", "/ok"))
            for i, c in enumerate(conns):
                r = c.response()
                if (r["status"], r["body"]) != (200, b"ok\n"):
                    fail("round %d connection %d: %s %r" % (rnd, i, r["status"], r["body"]))
        # all 1000 still open here
        port = ng.port
        s = wait_table(agent, port, {_k("GET", 200, "/ok"): 2000}, timeout=15)
    finally:
        for c in conns:
            c.close()
    check_bodies(s, port, req={_k("GET", 200, "/ok"): (2000, 0)}, resp={_k("GET", 200, "/ok"): (2000, 6000)})
    agent.stop()


# ---------------------------------------------------------------------------
# 13. non-HTTP bytes on the server's port

def tls_client_hello():
    """A real TLS ClientHello from Python's ssl module (memory BIOs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    if len(hello) < 100 or hello[0] != 0x16:
        fail("not a TLS ClientHello: %r" % hello[:20])
    return hello


def _garbage_exchange(port, payload):
    """Send payload on a fresh connection; read what nginx answers until it
    closes (or 1 s of silence); returns the answer's first line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    try:
        try:
            s.sendall(payload)
        except OSError:
            pass
        s.settimeout(1.0)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not d:
                break
            got += d
    finally:
        s.close()
    return got.split(b"\r\n", 1)[0]


def test_cases_non_http_traffic():
    ng = start_nginx(NGINX_CASES)
    agent = start_agent(["--pid", str(ng.pid)])
    rnd = random.Random(0xA10)

    def rbytes(n):   # fixed random bytes; the first never a letter
        b = bytearray(rnd.getrandbits(8) for _ in range(n))
        b[0] |= 0x80
        return bytes(b)
    payloads = [
        ("tls-client-hello", tls_client_hello()),
        ("random-1", rbytes(1)),
        ("random-4k", rbytes(4096)),
        ("random-64k", rbytes(65536)),
        ("redis-resp", lib.resp_command("SET", "k", "v") + lib.resp_command("PING")),
        ("pg-startup", b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00"
                       + b"\x00" * 8),
        ("pg-sslrequest", b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    ]
    answers = {}
    for name, p in payloads:
        answers[name] = _garbage_exchange(ng.port, p)
    lib.log("nginx answers: %s" % answers)
    time.sleep(0.5)
    s = agent.scrape()
    left = port_series(s, ng.port)
    if left:
        fail("series on the nginx port after non-HTTP bytes only (nginx answered %s):\n      %s"
             % (answers, "\n      ".join(left)))
    st, _, _ = agent.get("/healthz")
    eq("/healthz", st, 200)

    # a request line nginx can parse but rejects (HTTP/1.1 without Host): a 400
    # nginx wrote for a request; then a valid request on a fresh connection
    c = Conn(ng.port)
    c.send(b"GET /nohost HTTP/1.1\r\n\r\n")
    r400 = c.response()
    eq("no Host", r400["status"], 400)
    c.close()
    c = Conn(ng.port)
    c.send(req("GET", "/ok"))
    eq("valid request", c.response()["status"], 200)
    c.close()
    port = ng.port
    want = {_k("GET", 400, "/nohost"): 1, _k("GET", 200, "/ok"): 1}
    s = wait_table(agent, port, want, settle=0.5)
    others = [l for l in port_series(s, port) if not l.startswith(("http_server_",))]
    if others:
        fail("non-HTTP series on the nginx port:\n      %s" % "\n      ".join(others))
    check_bodies(s, port, req={k: (1, 0) for k in want},
                 resp={_k("GET", 200, "/ok"): (1, 3), _k("GET", 400, "/nohost"): (1, len(r400["body"]))})
    agent.stop()


# ---------------------------------------------------------------------------
# Node.js: GET (Content-Length and chunked) and chunked POSTs

NODE_CLIENT = r"""
const http = require('http');
const port = Number(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function call(method, path, chunks) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      let n = 0; let body = [];
      res.on('data', (d) => { n += d.length; body.push(d); });
      res.on('end', () => resolve({ status: res.statusCode, te: res.headers['transfer-encoding'] || '',
                                    n, body: Buffer.concat(body).toString('latin1').slice(0, 40) }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(Buffer.alloc(c, 120));
    req.end();
  });
}
(async () => {
  const out = [];
  out.push(await call('GET', '/hello', []));
  out.push(await call('GET', '/stream?s=10,2000,70000,1', []));
  out.push(await call('POST', '/echo', [5, 1000, 65536, 1]));
  out.push(await call('POST', '/echo', [300000]));
  out.push(await call('GET', '/hello', []));
  process.stdout.write(JSON.stringify(out) + '\n');
  agent.destroy();
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


def test_cases_node_server():
    if not os.access(NODE, os.X_OK):
        fail("%s is not installed" % NODE)
    srv = lib.CmdServer([NODE, NODE_SERVER, "0"])
    agent = start_agent(["--pid", str(srv.pid)])
    rc, out, err = run([NODE, "-e", NODE_CLIENT, str(srv.port)], timeout=30)
    if rc != 0:
        fail("node client rc %d: %s %s" % (rc, out, err))
    res = json.loads(out)
    eq("node client statuses", [r["status"] for r in res], [200] * 5)
    eq("/stream chunked", res[1]["te"], "chunked")
    eq("/stream length", res[1]["n"], 72011)
    eq("/echo bodies", [res[2]["body"], res[3]["body"]], ["got 66542\n", "got 300000\n"])
    # curl: a chunked POST of a file, and a GET
    tmp = lib.mkdtemp("cases-node")
    path = os.path.join(tmp, "up.bin")
    with open(path, "wb") as f:
        f.write(b"z" * 100000)
    base = "http://127.0.0.1:%d" % srv.port
    rc, out2, err2 = run(["curl", "-sS", "--noproxy", "*", "--http1.1", "-H", "Transfer-Encoding: chunked",
                          "--data-binary", "@" + path, "-o", "-", "-w", " %{http_code}",
                          base + "/echo", "--next", "--noproxy", "*", "--http1.1", "-o", "/dev/null",
                          "-w", " %{http_code}", base + "/stream?s=5,5"])
    if rc != 0:
        fail("curl rc %d: %s %s" % (rc, out2, err2))
    eq("curl output", out2, "got 100000\n 200 200")
    port = srv.port
    want = {_k("GET", 200, "/hello"): 2, _k("GET", 200, "/stream"): 2, _k("POST", 200, "/echo"): 3}
    s = wait_table(agent, port, want)
    hello = len("hello from node\n")
    check_bodies(s, port,
                 req={_k("GET", 200, "/hello"): (2, 0), _k("GET", 200, "/stream"): (2, 0),
                      _k("POST", 200, "/echo"): (3, 66542 + 300000 + 100000)},
                 resp={_k("GET", 200, "/hello"): (2, 2 * hello), _k("GET", 200, "/stream"): (2, 72011 + 10),
                       _k("POST", 200, "/echo"): (3, len("got 66542\n") + len("got 300000\n") + len("got 100000\n"))})
    agent.stop()

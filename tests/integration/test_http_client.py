"""HTTP client-side integration tests (`-k client`): a TRACED real client
(curl, wrk and ab by --exe; Python and Node.js clients by --pid) calling real
UNTRACED servers (nginx, servers/http_server.py, servers/client_servers.py),
checked against `http_client_request_duration_seconds` and the client
body-size histograms `http_client_request_body_size_bytes` /
`http_client_response_body_size_bytes`.

Every test compares, for its own server's port, the whole set of client
series {(method, status, server_address, error_type): count} with what it
expects (an extra series fails as much as a missing one), and the body-size
histograms' _count, _sum and every bucket exactly. The independent truth is
the client's own account: curl's `-w` (status, size_download, time_total),
the JSON the Python / Node.js clients print, wrk's and ab's reports, nginx's
access log.

Clients selected by --pid are started first and wait for a line on stdin
(lib.GatedClient / lib.python_client), so the agent is attached before their
first connect. `--exe /usr/bin/curl` (wrk, ab) traces every curl on the host;
the tests only look at their own server ports.

Timing assertions are only: latency within 10 % or 2 ms of the client's own
measurement (curl's time_total; 1 s for `curl --max-time 1` and
`--connect-timeout 1`), and fast requests in le="0.005" (see fast_buckets).

  curl_nginx_statuses_host_and_latency   curl -> nginx: 200/404/503, Host forms
                                         -> server_address; /sleep/200 vs time_total
  python_keepalive_idle_and_post_bodies  http.client, one connection, idle gaps,
                                         POST bodies 0/10/100/5000
  python_urllib_chunked_response         urllib, chunked responses (extensions,
                                         trailers, size lines cut into 1-byte writes)
  node_keepalive_chunked_request         Node.js keep-alive agent, chunked request
  wrk_nginx                              wrk 2 s: 200 count == wrk's requests
  curl_50mb_response                     50 MB body, latency vs time_total
  http10_close_delimited_response        HTTP/1.0 until close, no Host (IPv4, IPv6)
  curl_head_204_304                      HEAD, 204, 304 on one connection: body 0
  curl_expect_100_continue               100 Continue is not the response
  python_pipelined_requests              5 requests per send; 3-byte writes, 7-byte reads
  errors_closed_reset_refused_timeout    connection_closed (FIN, RST), refused,
                                         timeout (--max-time, --connect-timeout)
  fd_reuse_after_slow_request            200 connections on the slow one's fd
  ab_10000_connections_and_1000_concurrent
  only_traced_side_counted               traced client/untraced server and back
  non_http_bytes_ignored                 TLS ClientHello, random bytes, echoed request
"""
import email.utils
import json
import os
import re
import subprocess
import time

import lib
from lib import (HIST, fail, bucket, total, select_series, start_agent, start_nginx,
                 start_python_server)

CL = "http_client_request_duration_seconds"
CL_REQ = "http_client_request_body_size_bytes"
CL_RESP = "http_client_response_body_size_bytes"
BODY_FAMILIES = (CL_REQ, CL_RESP)
INF = float("inf")
BODY_LES = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, INF)   # spec default buckets

CURL = "/usr/bin/curl"
WRK = "/usr/bin/wrk"
AB = "/usr/bin/ab"
NODE = "/usr/bin/node"
CLIENT_SERVERS = os.path.join(lib.SERVERS, "client_servers.py")
CLIENT_NODE = os.path.join(lib.SERVERS, "client_node.js")

NGINX_CL = r"""
location = /ok { return 200 "ok\n"; }
location = /missing { return 404; }
location = /boom { return 503; }
location = /post { return 200 "posted\n"; }
location = /nocontent { return 204; }
location /static/ { root TMPDIR/www; }
"""
OK_BODY = 3        # len("ok\n")
POSTED_BODY = 7    # len("posted\n")


# ---------------------------------------------------------------------------
# helpers

def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def _key(l):
    return (l.get("http_request_method", ""), l.get("http_response_status_code", ""),
            l.get("server_address", ""), l.get("error_type", ""))


def _fmt_key(k):
    return "method=%s status=%s server_address=%s error_type=%r" % k


def client_table(s, port, base=CL):
    """{(method, status, server_address, error_type): count} of base's
    series for server_port=port."""
    out = {}
    for l, v in select_series(s, base + "_count", server_port=str(port)):
        k = _key(l)
        out[k] = out.get(k, 0) + v
    return out


def body_table(s, port, base):
    """{key: (count, sum, {le: cumulative count})} of a body-size family."""
    out = {}
    for suffix in ("_count", "_sum", "_bucket"):
        for l, v in select_series(s, base + suffix, server_port=str(port)):
            k = _key(l)
            c, sm, b = out.get(k, (0, 0, {}))
            if suffix == "_count":
                c += v
            elif suffix == "_sum":
                sm += v
            else:
                le = float(l.get("le", "nan"))
                b = dict(b)
                b[le] = b.get(le, 0) + v
            out[k] = (c, sm, b)
    return out


def body_expect(want):
    """{key: [sizes]} -> the body_table we expect (keys with no sizes have
    no series)."""
    return {k: (len(v), sum(v), {float(le): sum(1 for x in v if x <= le) for le in BODY_LES})
            for k, v in want.items() if v}


def _fmt_table(t):
    if not t:
        return "      (no series)"
    rows = []
    for k in sorted(t):
        v = t[k]
        if isinstance(v, tuple):
            c, sm, b = v
            bs = " ".join("%s:%g" % ("+Inf" if le == INF else "%g" % le, n) for le, n in sorted(b.items()))
            rows.append("      %s -> count %g sum %g buckets [%s]" % (_fmt_key(k), c, sm, bs))
        else:
            rows.append("      %s -> %g" % (_fmt_key(k), v))
    return "\n".join(rows)


def _problems(s, port, dur, req, resp):
    out = []
    t = client_table(s, port)
    if t != dur:
        out.append("%s_count for server_port %s:\n    expected\n%s\n    got\n%s"
                   % (CL, port, _fmt_table(dur), _fmt_table(t)))
    for base, want in ((CL_REQ, req), (CL_RESP, resp)):
        if want is None:
            continue
        got, exp = body_table(s, port, base), body_expect(want)
        if got != exp:
            out.append("%s for server_port %s:\n    expected\n%s\n    got\n%s"
                       % (base, port, _fmt_table(exp), _fmt_table(got)))
    return out


def expect_client(agent, port, svc, dur, req=None, resp=None, timeout=10.0, settle=0.3):
    """Wait (up to `timeout`) until, for server_port=port, the client
    duration series are exactly `dur` ({key: count}) and the request /
    response body-size histograms exactly `req` / `resp` ({key: [sizes]};
    None: not checked); then check it is still so `settle` s later (double
    counting), and that every client series of the port has service_name
    `svc` and url_scheme "http". Returns the samples."""
    last = [None, []]

    def ok():
        s = agent.scrape()
        last[0] = s
        last[1] = _problems(s, port, dur, req, resp)
        return not last[1]
    wait_for_msg = lambda: "\n".join(last[1])  # noqa: E731
    lib.wait_for(ok, timeout, interval=0.1, what=wait_for_msg)
    if settle:
        time.sleep(settle)
        s = agent.scrape()
        p = _problems(s, port, dur, req, resp)
        if p:
            fail("changed after settling %.1fs: %s" % (settle, "\n".join(p)))
        last[0] = s
    s = last[0]
    for base in (CL,) + BODY_FAMILIES:
        for l, _ in select_series(s, base + "_count", server_port=str(port)):
            if l.get("service_name") != svc or l.get("url_scheme") != "http":
                fail("%s series for port %s: expected service_name=%r url_scheme=\"http\", got %s"
                     % (base, port, svc, l))
    return s


def no_client_series(s, port, what):
    for base in (CL,) + BODY_FAMILIES:
        got = select_series(s, base + "_count", server_port=str(port))
        if got:
            fail("%s: expected no %s series for server_port %s, got %s" % (what, base, port, got))


def no_server_series(s, port, what):
    got = select_series(s, HIST + "_count", server_port=str(port))
    if got:
        fail("%s (untraced server): expected no %s series for server_port %s, got %s"
             % (what, HIST, port, got))


def near(what, got, ref):
    """The only latency check: within 10 % of ref or within 2 ms."""
    if abs(got - ref) > max(0.1 * ref, 0.002):
        fail("%s: %.6f s not within 10%% or 2 ms of %.6f s" % (what, got, ref))


def fast_buckets(s, port, elapsed, what, **labels):
    """Fast requests land in le="0.005". The agent's latency (first write ->
    the read completing the response) lies inside the client's own
    measurement (before the request call -> after the body was read), so for
    every bucket le: agent's bucket(le) >= the number of requests the client
    timed <= le. When the client timed every request <= 5 ms (the normal
    case) this is exactly: all of them in le="0.005"; a request the loaded
    machine made slow for the client itself is allowed its own bucket, never
    more (an idle gap inflating a latency would show as a bigger bucket)."""
    les = sorted({float(l["le"]) for l, _ in select_series(s, CL + "_bucket", server_port=str(port), **labels)})
    if 0.005 not in les:
        fail("no le=\"0.005\" bucket in %s (have %s)" % (CL, les))
    dist = [(le, bucket(s, le, CL, server_port=str(port), **labels), sum(1 for e in elapsed if e <= le))
            for le in les]
    slow = sorted(e for e in elapsed if e > 0.005)
    if slow:
        lib.log("%s: %d timed > 5 ms by the client itself: %s" % (what, len(slow), ["%.4f" % e for e in slow]))
    for le, got, need in dist:
        if got < need:
            fail("%s: bucket le=%g has %g, but the client timed %d requests <= %g s (client's slow ones %s);"
                 " buckets (le, agent, client): %s" % (what, le, got, need, le, ["%.4f" % e for e in slow], dist))
    if not slow:
        _eq("%s in le=0.005" % what, dist[les.index(0.005)][1], len(elapsed))


def _env():
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    return env


CURL_W = "%{http_code} %{time_total} %{size_download} %{size_upload} %{num_connects}\\n"


def run_curl(urls=(), args=(), segments=None, ok_rc=(0,), timeout=60):
    """One /usr/bin/curl invocation (one connection cache: keep-alive between
    URLs). Either `urls` with common `args`, or `segments` = [(url, args)]
    joined with --next. Returns (rc, [{code, time, down, up, conns}], stderr)."""
    if segments is None:
        segments = [(u, args) for u in urls]
    lib.need_tool(CURL)
    argv = [CURL]
    for i, (u, a) in enumerate(segments):
        if i:
            argv.append("--next")
        argv += ["-sS", "--noproxy", "*", "--http1.1", "-w", CURL_W] + list(a) + [u, "-o", "/dev/null"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=_env(),
                       stdin=subprocess.DEVNULL)
    out, err = r.stdout.decode(), r.stderr.decode("utf-8", "replace")
    if r.returncode not in ok_rc:
        fail("curl %s: rc %d (expected %s): %s %s" % (argv[1:], r.returncode, ok_rc, out, err))
    rows = []
    for l in out.strip().split("\n"):
        p = l.split()
        if len(p) == 5:
            rows.append(dict(code=int(p[0]), time=float(p[1]), down=int(p[2]), up=int(p[3]), conns=int(p[4])))
    if len(rows) != len(segments):
        fail("curl %s: %d -w lines for %d URLs: %r %s" % (argv[1:], len(rows), len(segments), out, err))
    return r.returncode, rows, err


def client_server(mode, host="127.0.0.1", size=0):
    """servers/client_servers.py --mode MODE (untraced)."""
    return lib.CmdServer([lib.PYTHON, CLIENT_SERVERS, "--mode", mode, "--host", host, "--port", "0",
                          "--size", str(size)])


def gated_python(source, args, what):
    """A Python client (/usr/bin/python3) that waits for a line on stdin;
    trace it with --pid c.pid, then out = run_json(c)."""
    return lib.python_client(source, args, what)


def run_json(client, timeout=90.0):
    out, err = client.go(timeout=timeout)
    try:
        return json.loads(out.strip().split("\n")[-1])
    except (ValueError, IndexError):
        fail("%s printed no JSON: stdout %r stderr %r" % (client.what, out[-1500:], err[-1500:]))


def group(rows, key, size):
    """{key(row): [size(row), ...]}"""
    out = {}
    for r in rows:
        out.setdefault(key(r), []).append(size(r))
    return out


def counts_of(sizes_by_key):
    return {k: len(v) for k, v in sizes_by_key.items()}


def G(status, addr="127.0.0.1", method="GET", err=None):
    """A client series key; error_type defaults to the status for >= 400."""
    if err is None:
        err = str(status) if int(status) >= 400 else ""
    return (method, str(status), addr, err)


# Python source shared by the raw-socket clients: read HTTP/1.1 responses
# framed by Content-Length (or none: no body for HEAD/204/304).
RAW_READER = r'''
import socket, json, sys, time
class Reader:
    def __init__(self, s, size=65536):
        self.s, self.buf, self.size = s, b"", size
    def _more(self):
        d = self.s.recv(self.size)
        if not d:
            raise ConnectionError("EOF after %d buffered bytes" % len(self.buf))
        self.buf += d
    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        n = 0
        for l in lines[1:]:
            k, _, v = l.partition(":")
            if k.strip().lower() == "content-length":
                n = int(v)
        if head_only or status in (204, 304):
            n = 0
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, body
'''


# ---------------------------------------------------------------------------
# 1. curl -> nginx: statuses, server_address from Host, latency vs time_total

def test_http_client_curl_nginx_statuses_host_and_latency():
    ng = start_nginx(NGINX_CL)
    py = start_python_server()
    agent = start_agent(["--exe", CURL])
    u = ng.url
    rows = []   # (key, row)

    _, r, _ = run_curl([u("/ok")] * 5 + [u("/missing")] * 2 + [u("/boom")])
    _eq("curl statuses (keep-alive)", [x["code"] for x in r], [200] * 5 + [404] * 2 + [503])
    _eq("curl connections for 8 URLs", sum(x["conns"] for x in r), 1)
    rows += [(G(x["code"]), x) for x in r]
    for _ in range(2):
        _, r, _ = run_curl([u("/ok")])
        rows += [(G(200), r[0])]
    # Host header: lower-cased, :port removed; server_port stays nginx's port
    _, r, _ = run_curl([u("/ok")] * 2, ["-H", "Host: Example.COM:8080"])
    _eq("statuses with Host: Example.COM:8080", [x["code"] for x in r], [200, 200])
    rows += [(G(200, "example.com"), x) for x in r]
    _, r, _ = run_curl([u("/ok")], ["-H", "Host: [::1]:8080"])
    _eq("status with Host: [::1]:8080", r[0]["code"], 200)
    rows += [(G(200, "::1"), r[0])]
    _, r, _ = run_curl([u("/missing")], ["-H", "host: WWW.Example.ORG"])     # header name in lower case
    _eq("status with host: WWW.Example.ORG", r[0]["code"], 404)
    rows += [(G(404, "www.example.org"), r[0])]
    # latency: a 200 ms request to the Python server. The agent measures from
    # the request's first write to the read that completes the response;
    # curl's time_total also covers its connect (loopback: << 1 ms) and
    # set-up, so the two agree within 10 % / 2 ms.
    _, rs, _ = run_curl([py.url("/sleep/200")])
    _eq("status of /sleep/200", rs[0]["code"], 200)

    want = group(rows, lambda kr: kr[0], lambda kr: kr[1]["down"])
    s = expect_client(agent, ng.port, "curl", counts_of(want),
                      req={k: [0] * len(v) for k, v in want.items()}, resp=want)
    no_server_series(s, ng.port, "nginx")
    s = expect_client(agent, py.port, "curl", {G(200): 1}, req={G(200): [0]}, resp={G(200): [rs[0]["down"]]})
    no_server_series(s, py.port, "python server")
    near("latency sum of /sleep/200 vs curl time_total", total(s, CL + "_sum", server_port=str(py.port)),
         rs[0]["time"])

    # label order of the spec: service_name, [identity], method, status,
    # server_address, server_port, url_scheme, error_type
    text = agent.scrape_text()
    order = ["service_name", "http_request_method", "http_response_status_code", "server_address",
             "server_port", "url_scheme", "error_type"]
    seen = 0
    for line in text.split("\n"):
        if line.startswith(CL + "_count{") and 'server_port="%d"' % ng.port in line:
            names = [n for n in re.findall(r'([a-zA-Z_]+)="', line) if n in order]
            _eq("label order of %s" % line, names, order)
            seen += 1
    _eq("%s_count lines checked for label order" % CL, seen, len(want))
    agent.stop()


# ---------------------------------------------------------------------------
# 2. Python http.client keep-alive: idle gaps, POST body sizes

KEEPALIVE_CLIENT = r'''
import http.client, json, sys, time
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
out = []
for i in range(50):
    t0 = time.monotonic()
    c.request("GET", "/ok")
    r = c.getresponse()
    b = r.read()
    out.append(["GET", r.status, 0, len(b), c.sock.getsockname()[1], time.monotonic() - t0])
    if i % 10 == 4:
        time.sleep(0.2)          # idle on the open connection
for n in (0, 10, 100, 5000):
    c.request("POST", "/post", body=b"p" * n)
    r = c.getresponse()
    b = r.read()
    out.append(["POST", r.status, n, len(b), c.sock.getsockname()[1], 0])
c.close()
print(json.dumps(out))
'''


def test_http_client_python_keepalive_idle_and_post_bodies():
    ng = start_nginx(NGINX_CL)
    cl = gated_python(KEEPALIVE_CLIENT, [ng.port], "http.client keep-alive client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    rows = run_json(cl)
    _eq("statuses", [r[1] for r in rows], [200] * 54)
    _eq("connections used (local ports)", len({r[4] for r in rows}), 1)
    _eq("response bodies", [r[3] for r in rows], [OK_BODY] * 50 + [POSTED_BODY] * 4)
    key = lambda r: G(r[1], method=r[0])  # noqa: E731
    req = group(rows, key, lambda r: r[2])
    resp = group(rows, key, lambda r: r[3])
    _eq("request body sizes", req, {G(200): [0] * 50, G(200, method="POST"): [0, 10, 100, 5000]})
    s = expect_client(agent, ng.port, svc, counts_of(req), req=req, resp=resp)
    # the 0.2 s idle gaps are not part of any request's latency: the 50 GETs
    # are in le="0.005" (each one, unless the client itself saw it slower)
    fast_buckets(s, ng.port, [r[5] for r in rows if r[0] == "GET"], "50 GETs, 5 of them after 0.2 s idle",
                 http_request_method="GET")
    no_server_series(s, ng.port, "nginx")
    agent.stop()


# ---------------------------------------------------------------------------
# 3. Python urllib: GETs and chunked responses

URLLIB_CLIENT = r'''
import json, sys, urllib.request, urllib.error
port = sys.argv[1]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = []
for path in sys.argv[2:]:
    try:
        with opener.open("http://127.0.0.1:%s%s" % (port, path), timeout=10) as r:
            b = r.read()
            out.append([path, r.status, len(b), r.headers.get("Transfer-Encoding")])
    except urllib.error.HTTPError as e:
        b = e.read()
        out.append([path, e.code, len(b), e.headers.get("Transfer-Encoding")])
print(json.dumps(out))
'''


def test_http_client_python_urllib_chunked_response():
    srv = client_server("http")
    # chunk framing is not body: extensions, trailers, size lines and CRLFs
    # cut into 1-byte writes (read piecewise by the client) included. (The
    # agent's README says a size line with extensions loses the framing;
    # RFC 9112 7.1.1 allows them and the spec has no such exception.)
    chunked = {"/chunked/1,100,4096,30000": 34197, "/chunked/10": 10, "/chunked/7,7": 14, "/chunked": 0,
               "/chunked/" + ",".join(["3"] * 40): 120, "/chunked/5,300?split=1&ext=1&trailer=1": 305,
               "/chunked/17,4000?ext=1&trailer=1": 4017, "/chunked/200?split=1": 200}
    paths = ["/ok", "/ok", "/ok"] + list(chunked) + ["/status/404"]
    cl = gated_python(URLLIB_CLIENT, [srv.port] + paths, "urllib client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    rows = run_json(cl)
    _eq("statuses", [r[1] for r in rows], [200] * (3 + len(chunked)) + [404])
    for path, status, n, te in rows:
        if path in chunked:
            _eq("body bytes read from %s" % path, n, chunked[path])
            _eq("Transfer-Encoding of %s" % path, te, "chunked")
    resp = group(rows, lambda r: G(r[1]), lambda r: r[2])
    _eq("response sizes", resp, {G(200): [3, 3, 3] + list(chunked.values()), G(404): [11]})
    s = expect_client(agent, srv.port, svc, counts_of(resp),
                      req={k: [0] * len(v) for k, v in resp.items()}, resp=resp)
    no_server_series(s, srv.port, "python server")
    agent.stop()


# ---------------------------------------------------------------------------
# 4. Node.js keep-alive agent, chunked request body

def test_http_client_node_keepalive_chunked_request():
    lib.need_tool(NODE)
    srv = client_server("http")
    cl = lib.GatedClient([NODE, CLIENT_NODE, str(srv.port)], "node client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    rows = run_json(cl)
    _eq("node statuses", [r["status"] for r in rows], [200] * 10 + [404, 404, 503, 200, 200])
    _eq("connections used (local ports)", len({r["localPort"] for r in rows}), 1)
    # the server's count of the body bytes it received (chunk data only)
    _eq("bodies of the POSTs (bytes the server read)", [r["body"] for r in rows[-2:]], ["23101\n", "500\n"])
    key = lambda r: G(r["status"], method=r["method"])  # noqa: E731
    req = group(rows, key, lambda r: r["reqBytes"])
    resp = group(rows, key, lambda r: len(r["body"]))
    _eq("request sizes", req[G(200, method="POST")], [23101, 500])
    s = expect_client(agent, srv.port, svc, counts_of(req), req=req, resp=resp)
    no_server_series(s, srv.port, "python server")
    agent.stop()


# ---------------------------------------------------------------------------
# 5. wrk -> nginx

def test_http_client_wrk_nginx():
    """wrk -t1 -c4 for 2 s. wrk counts a response when it parses it, in the
    same event-loop callback as the read() that brought its last byte, and
    the agent counts a response at that read: so the agent's 200 count is
    exactly wrk's "requests" figure (the range [wrk, wrk + 4] is checked
    first, for a clearer message). At its deadline wrk stops its loop and
    exits with up to one request in flight per connection (written, the
    response not read): wrk never close()s those sockets, the kernel does at
    exit, and the agent drops an exited process's connections, so they are
    in no series (a `timeout` sample for them is tolerated, at most one per
    connection). Cross-check with nginx's access log: it logged every request
    wrk wrote, so logged - (200 + timeout) is in [0, 4]."""
    lib.need_tool(WRK)
    ng = start_nginx(NGINX_CL)
    agent = start_agent(["--exe", WRK])
    conns = 4
    r = subprocess.run([WRK, "-t1", "-c%d" % conns, "-d2s", ng.url("/ok")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, env=_env(), stdin=subprocess.DEVNULL)
    out = r.stdout.decode()
    m = re.search(r"(\d+) requests in ", out)
    if r.returncode != 0 or not m:
        fail("wrk failed (rc %d): %s %s" % (r.returncode, out, r.stderr.decode()))
    n = int(m.group(1))
    if "Socket errors" in out or "Non-2xx" in out:
        fail("wrk reported errors:\n%s" % out)
    if n < 100:
        fail("wrk completed only %d requests:\n%s" % (n, out))
    port = str(ng.port)

    def logged():
        return sum(1 for l in ng.access_log_lines() if '"GET /ok HTTP/1.1"' in l)

    last = [{}]

    def reached():
        s = agent.scrape()
        last[0] = client_table(s, port)
        return last[0].get(G(200), 0) >= n
    lib.wait_for(reached, 10, interval=0.1,
                 what=lambda: "agent's 200 count below wrk's %d requests:\n%s" % (n, _fmt_table(last[0])))
    time.sleep(0.5)          # nginx's log lines of the last requests, double counting
    s = agent.scrape()
    t = client_table(s, port)
    ok, to = t.get(G(200), 0), t.get(G(0, err="timeout"), 0)
    nlog = logged()
    lib.log("wrk %d, nginx logged %d, agent 200=%g timeout=%g" % (n, nlog, ok, to))
    if not (n <= ok <= n + conns):
        fail("agent 200 count %g not in [wrk %d, wrk + %d]:\n%s" % (ok, n, conns, _fmt_table(t)))
    _eq("agent 200 count == wrk's completed requests", ok, n)
    if to > conns:
        fail("%g timeout samples, at most %d (one per connection):\n%s" % (to, conns, _fmt_table(t)))
    _eq("series other than 200 and timeout", {k: v for k, v in t.items() if k not in (G(200), G(0, err="timeout"))},
        {})
    if not (0 <= nlog - (ok + to) <= conns):
        fail("nginx logged %d requests, agent 200 %g + timeout %g: more than %d unaccounted for, or counted"
             " requests nginx never saw" % (nlog, ok, to, conns))
    for l, _ in select_series(s, CL + "_count", server_port=port):
        _eq("service_name", l.get("service_name"), "wrk")
    # bodies: every 200 read a 3-byte body, no request body
    _eq("response body table", body_table(s, port, CL_RESP), body_expect({G(200): [OK_BODY] * int(ok)}))
    _eq("request body table", body_table(s, port, CL_REQ),
        body_expect({G(200): [0] * int(ok), G(0, err="timeout"): [0] * int(to)}))
    no_server_series(s, port, "nginx")
    agent.stop()


# ---------------------------------------------------------------------------
# 6. a 50 MB response

def test_http_client_curl_50mb_response():
    size = 50 * 1024 * 1024
    ng = start_nginx(NGINX_CL, files={"www/static/big.bin": b"0123456789abcdef" * (size // 16)})
    agent = start_agent(["--exe", CURL])
    _, r, _ = run_curl([ng.url("/static/big.bin")])
    _eq("status", r[0]["code"], 200)
    _eq("curl size_download", r[0]["down"], size)
    s = expect_client(agent, ng.port, "curl", {G(200): 1}, req={G(200): [0]}, resp={G(200): [size]})
    # first write of the request -> the read that completes the response,
    # vs curl's time_total (which adds its connect and set-up)
    near("latency of the 50 MB response vs curl time_total", total(s, CL + "_sum", server_port=str(ng.port)),
         r[0]["time"])
    agent.stop()


# ---------------------------------------------------------------------------
# 7. HTTP/1.0 close-delimited response

HTTP10_CLIENT = RAW_READER + r'''
out = []
for host, port in ((sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4]))):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(b"GET /data HTTP/1.0\r\nUser-Agent: aion-it\r\n\r\n")     # no Host header
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    out.append([host, head.decode("latin-1"), len(body)])
print(json.dumps(out))
'''


def test_http_client_http10_close_delimited_response():
    n4, n6 = 100000, 7777
    s4 = client_server("http10", "127.0.0.1", size=n4)
    s6 = client_server("http10", "::1", size=n6)
    cl = gated_python(HTTP10_CLIENT, ["127.0.0.1", s4.port, "::1", s6.port], "HTTP/1.0 raw client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    rows = run_json(cl)
    _eq("response heads", [r[1] for r in rows], ["HTTP/1.0 200 OK"] * 2)
    _eq("body bytes until EOF", [r[2] for r in rows], [n4, n6])
    # no Host header: server_address is the peer IP
    expect_client(agent, s4.port, svc, {G(200): 1}, req={G(200): [0]}, resp={G(200): [n4]})
    expect_client(agent, s6.port, svc, {G(200, "::1"): 1}, req={G(200, "::1"): [0]},
                  resp={G(200, "::1"): [n6]})
    agent.stop()


# ---------------------------------------------------------------------------
# 8. HEAD, 204, 304 on one keep-alive connection

def test_http_client_curl_head_204_304():
    data = bytes((i * 13 + 5) & 0xFF for i in range(20480))
    ng = start_nginx(NGINX_CL, files={"www/static/file.bin": data})
    mtime = 1700000000
    os.utime(os.path.join(ng.tmp, "www/static/file.bin"), (mtime, mtime))
    ims = ["-H", "If-Modified-Since: " + email.utils.formatdate(mtime, usegmt=True)]
    agent = start_agent(["--exe", CURL])
    f, nc, ok = ng.url("/static/file.bin"), ng.url("/nocontent"), ng.url("/ok")
    # HEAD (Content-Length 20480, no body), 204, 304, 200: twice, one connection
    seq = [(f, ["-I"]), (nc, []), (f, ims), (ok, [])] * 2
    _, r, _ = run_curl(segments=seq)
    _eq("statuses", [x["code"] for x in r], [200, 204, 304, 200] * 2)
    _eq("connections", sum(x["conns"] for x in r), 1)
    _eq("bytes downloaded", [x["down"] for x in r], [0, 0, 0, OK_BODY] * 2)
    dur = {G(200, method="HEAD"): 2, G(204): 2, G(304): 2, G(200): 2}
    resp = {G(200, method="HEAD"): [0, 0], G(204): [0, 0], G(304): [0, 0], G(200): [OK_BODY] * 2}
    s = expect_client(agent, ng.port, "curl", dur, req={k: [0] * n for k, n in dur.items()}, resp=resp)
    no_server_series(s, ng.port, "nginx")
    agent.stop()


# ---------------------------------------------------------------------------
# 9. Expect: 100-continue

def test_http_client_curl_expect_100_continue():
    py = start_python_server()
    agent = start_agent(["--exe", CURL])
    tmp = lib.mkdtemp("body")
    path = os.path.join(tmp, "body.bin")
    with open(path, "wb") as fh:
        fh.write(bytes(range(256)) * 8)
    _, r, err = run_curl([py.url("/ok")], ["-v", "-H", "Expect: 100-continue", "--data-binary", "@" + path])
    _eq("status", r[0]["code"], 200)
    _eq("bytes uploaded", r[0]["up"], 2048)
    if "HTTP/1.1 100 Continue" not in err:
        fail("the server did not answer 100 Continue (curl -v):\n%s" % err[-2000:])
    k = G(200, method="POST")
    s = expect_client(agent, py.port, "curl", {k: 1}, req={k: [2048]}, resp={k: [r[0]["down"]]})
    _eq("response body", r[0]["down"], OK_BODY)
    no_server_series(s, py.port, "python server")
    agent.stop()


# ---------------------------------------------------------------------------
# 10. pipelining: 5 GETs in one send, 5 POSTs in one send, then 5 GETs
# written 3 bytes at a time and their responses read 7 bytes at a time

PIPELINE_CLIENT = RAW_READER + r'''
port = int(sys.argv[1])
host = "127.0.0.1:%d" % port
def get(p):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p, host)).encode()
def post(n):
    return ("POST /post HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host, n)).encode() + b"q" * n
s = socket.create_connection(("127.0.0.1", port), timeout=10)
rd = Reader(s)
out = []
gets = ["/ok", "/missing", "/ok", "/boom", "/ok"]
s.sendall(b"".join(get(p) for p in gets))                 # 5 requests, one send
for p in gets:
    st, b = rd.response()
    out.append(["GET", st, 0, len(b)])
sizes = [0, 10, 100, 1000, 3000]
s.sendall(b"".join(post(n) for n in sizes))               # 5 POSTs, one send
for n in sizes:
    st, b = rd.response()
    out.append(["POST", st, n, len(b)])
# 5 more written 3 bytes per send, the responses read 7 bytes per recv
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
data = b"".join(get(p) for p in gets)
for i in range(0, len(data), 3):
    s.send(data[i:i + 3])
    time.sleep(0.0002)
rd.size = 7
for p in gets:
    st, b = rd.response()
    out.append(["GET", st, 0, len(b)])
s.close()
print(json.dumps(out))
'''


def test_http_client_python_pipelined_requests():
    ng = start_nginx(NGINX_CL)
    cl = gated_python(PIPELINE_CLIENT, [ng.port], "pipelining client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    rows = run_json(cl)
    _eq("statuses", [r[1] for r in rows], [200, 404, 200, 503, 200] + [200] * 5 + [200, 404, 200, 503, 200])
    key = lambda r: G(r[1], method=r[0])  # noqa: E731
    req = group(rows, key, lambda r: r[2])
    resp = group(rows, key, lambda r: r[3])
    _eq("counts", counts_of(req), {G(200): 6, G(404): 2, G(503): 2, G(200, method="POST"): 5})
    s = expect_client(agent, ng.port, svc, counts_of(req), req=req, resp=resp)
    no_server_series(s, ng.port, "nginx")
    agent.stop()


# ---------------------------------------------------------------------------
# 11. errors: closed, reset, refused, timeout

def test_http_client_errors_closed_reset_refused_timeout():
    closer = client_server("close")
    resetter = client_server("reset")
    hanger = client_server("hang")
    full = client_server("full")          # accept queue full: connect() stays pending
    refused = lib.free_port()
    agent = start_agent(["--exe", CURL])
    for _ in range(2):
        run_curl(["http://127.0.0.1:%d/a" % closer.port], ok_rc=(52,))    # Empty reply from server
    for _ in range(2):
        run_curl(["http://127.0.0.1:%d/b" % resetter.port], ok_rc=(56,))   # Recv failure: reset
    for _ in range(3):
        run_curl(["http://127.0.0.1:%d/c" % refused], ok_rc=(7,))    # Failed to connect
    t0 = time.monotonic()
    run_curl(["http://127.0.0.1:%d/d" % hanger.port], ["--max-time", "1"], ok_rc=(28,))
    lib.log("curl --max-time 1 returned after %.3fs" % (time.monotonic() - t0))
    # (e) connect timeout: curl gives up on a pending connect after 1 s
    run_curl(["http://127.0.0.1:%d/e" % full.port], ["--connect-timeout", "1"], ok_rc=(28,))

    cc = G(0, err="connection_closed")
    for srv in (closer, resetter):
        expect_client(agent, srv.port, "curl", {cc: 2}, req={cc: [0, 0]}, resp={})
    rf = G(0, method="_OTHER", err="connection_refused")
    # no request was written: no request body observed, no response
    expect_client(agent, refused, "curl", {rf: 3}, req={}, resp={})
    to = G(0, err="timeout")
    s = expect_client(agent, hanger.port, "curl", {to: 1}, req={to: [0]}, resp={})
    near("latency of the request curl abandoned at --max-time 1", total(s, CL + "_sum", server_port=str(hanger.port)),
         1.0)
    # no request was written: _OTHER, like a refused connect; the latency is
    # the connect's 1 s
    ct = G(0, method="_OTHER", err="timeout")
    s = expect_client(agent, full.port, "curl", {ct: 1}, req={}, resp={})
    near("latency of the connect curl abandoned at --connect-timeout 1",
         total(s, CL + "_sum", server_port=str(full.port)), 1.0)
    agent.stop()


# ---------------------------------------------------------------------------
# 12. fd reuse after a slow request

FD_REUSE_CLIENT = r'''
import http.client, json, sys, time
slow_port, fast_port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", slow_port, timeout=10)
c.request("GET", "/sleep/200")
r = c.getresponse(); r.read()
slow = [r.status, c.sock.fileno()]
c.close()
fast = []
for i in range(n):
    c = http.client.HTTPConnection("127.0.0.1", fast_port, timeout=10)
    c.connect()
    fd = c.sock.fileno()
    t0 = time.monotonic()
    c.request("GET", "/ok")
    r = c.getresponse(); r.read()
    fast.append([r.status, fd, time.monotonic() - t0])
    c.close()
print(json.dumps({"slow": slow, "fast": fast}))
'''


def test_http_client_fd_reuse_after_slow_request():
    ng = start_nginx(NGINX_CL)
    py = start_python_server()
    n = 200
    cl = gated_python(FD_REUSE_CLIENT, [py.port, ng.port, n], "fd reuse client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    out = run_json(cl)
    _eq("slow status", out["slow"][0], 200)
    _eq("fast statuses", [x[0] for x in out["fast"]], [200] * n)
    reused = sum(1 for x in out["fast"] if x[1] == out["slow"][1])
    if reused < n:
        fail("precondition: only %d of %d fast connections reused the slow one's fd %d (fds %s)"
             % (reused, n, out["slow"][1], sorted({x[1] for x in out["fast"]})))
    s = expect_client(agent, py.port, svc, {G(200): 1})
    _eq("slow request (200 ms) in le=0.1", bucket(s, 0.1, CL, server_port=str(py.port)), 0)
    s = expect_client(agent, ng.port, svc, {G(200): n}, req={G(200): [0] * n}, resp={G(200): [OK_BODY] * n})
    fast_buckets(s, ng.port, [x[2] for x in out["fast"]], "%d fast requests on the reused fd" % n)
    agent.stop()


# ---------------------------------------------------------------------------
# 13. 10,000 short connections (ab) and 1,000 concurrent keep-alive connections

class _BigNginx(lib.Nginx):
    """lib's nginx with worker_connections 4096 and worker_rlimit_nofile
    8192 (1,000 concurrent client connections may all land on one worker)."""

    def _spawn(self, binary, conf_body, files, port, ipv6=False):
        saved = lib.NGINX_CONF
        lib.NGINX_CONF = saved.replace("worker_connections 1024;", "worker_connections 4096;") \
            .replace("worker_processes 2;", "worker_processes 2;\nworker_rlimit_nofile 8192;")
        try:
            super()._spawn(binary, conf_body, files, port, ipv6)
        finally:
            lib.NGINX_CONF = saved


MANY_CONNS_CLIENT = RAW_READER + r'''
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
readers = [Reader(s) for s in socks]
statuses = {}
for rnd in range(2):
    for s in socks:                 # n requests in flight at once
        s.sendall(req)
    for rd in readers:
        st, b = rd.response()
        statuses[st] = statuses.get(st, 0) + 1
ports = len({s.getsockname()[1] for s in socks})
for s in socks:
    s.close()
print(json.dumps({"statuses": statuses, "conns": ports}))
'''


def test_http_client_ab_10000_connections_and_1000_concurrent():
    lib.need_tool(AB)
    ng = _BigNginx(NGINX_CL)
    ng2 = _BigNginx(NGINX_CL)
    conns = 1000
    cl = gated_python(MANY_CONNS_CLIENT, [ng2.port, conns], "1000-connection client")
    agent = start_agent(["--exe", AB, "--pid", str(cl.pid)])
    n = 10000
    r = subprocess.run([AB, "-q", "-n", str(n), "-c", "1", ng.url("/ok")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=90, env=_env(), stdin=subprocess.DEVNULL)
    out = r.stdout.decode()
    done = re.search(r"Complete requests:\s+(\d+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    if r.returncode != 0 or not done or not failed:
        fail("ab failed (rc %d): %s %s" % (r.returncode, out[-1500:], r.stderr.decode()[-500:]))
    _eq("ab complete requests", int(done.group(1)), n)
    _eq("ab failed requests", int(failed.group(1)), 0)
    if "Non-2xx" in out:
        fail("ab reported non-2xx responses:\n%s" % out)
    s = expect_client(agent, ng.port, "ab", {G(200): n}, req={G(200): [0] * n}, resp={G(200): [OK_BODY] * n},
                      timeout=20)
    no_server_series(s, ng.port, "nginx")

    # one traced Python process, 1,000 connections open at once, 2 requests each
    svc = lib.exe_basename(cl.pid)
    res = run_json(cl)
    _eq("statuses", res["statuses"], {"200": 2 * conns})
    _eq("connections", res["conns"], conns)
    s = expect_client(agent, ng2.port, svc, {G(200): 2 * conns}, req={G(200): [0] * (2 * conns)},
                      resp={G(200): [OK_BODY] * (2 * conns)}, timeout=20)
    no_server_series(s, ng2.port, "nginx")
    agent.stop()


# ---------------------------------------------------------------------------
# 14. traced client / untraced server and untraced client / traced server

TRACED_CLIENT = r'''
import http.client, json, sys
out = []
for port, n in ((int(sys.argv[1]), 7), (int(sys.argv[2]), 3)):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(n):
        c.request("GET", "/ok")
        r = c.getresponse(); r.read()
        out.append([port, r.status])
    c.close()
print(json.dumps(out))
'''


def test_http_client_only_traced_side_counted():
    ng = start_nginx(NGINX_CL)                # untraced server
    srv = start_python_server()               # traced server
    cl = gated_python(TRACED_CLIENT, [ng.port, srv.port], "traced client")
    agent = start_agent(["--pid", str(cl.pid), "--pid", str(srv.pid)])
    csvc = lib.exe_basename(cl.pid)
    # untraced client (this test process) -> traced server
    codes = lib.keepalive_requests(srv.port, ["/ok"] * 5)
    _eq("untraced client statuses", codes, [200] * 5)
    # traced client -> untraced nginx (7), then -> the traced server (3)
    rows = run_json(cl)
    _eq("traced client statuses", [r[1] for r in rows], [200] * 10)
    s = expect_client(agent, ng.port, csvc, {G(200): 7}, req={G(200): [0] * 7}, resp={G(200): [OK_BODY] * 7})
    no_server_series(s, ng.port, "nginx")
    # port of the traced server: client series only for the traced client's 3,
    # server series for all 8 requests it served
    s = expect_client(agent, srv.port, csvc, {G(200): 3}, req={G(200): [0] * 3}, resp={G(200): [OK_BODY] * 3})
    s = agent.wait_count(8, server_port=str(srv.port))
    _eq("server series of the traced server",
        {(l.get("http_route"), l.get("http_response_status_code"), l.get("error_type")): v
         for l, v in select_series(s, HIST + "_count", server_port=str(srv.port))},
        {("/ok", "200", ""): 8})
    for l, _ in select_series(s, HIST + "_count", server_port=str(srv.port)):
        _eq("server series service_name", l.get("service_name"), lib.exe_basename(srv.pid))
    agent.stop()


# ---------------------------------------------------------------------------
# 15. non-HTTP bytes on a traced client's connections (a TLS ClientHello,
# random bytes, a TLS record header + garbage, all echoed back): nothing; a
# valid request to another echo server gets itself back, which is no
# response: timeout when the client closes; a valid request to nginx: once

NON_HTTP_CLIENT = r'''
import http.client, json, random, socket, ssl, sys
echo_port, http_port = int(sys.argv[1]), int(sys.argv[2])
# a real TLS ClientHello, as the ssl module would send it
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inb, outb, server_hostname="example.com")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outb.read()
garbage = b"\x00\xff" + random.Random(15).randbytes(4094)
out = {"hello": len(hello), "echoed": []}
for payload in (hello, garbage, hello[:5] + garbage[:300]):
    s = socket.create_connection(("127.0.0.1", echo_port), timeout=10)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    out["echoed"].append(got == payload)
# a request to the echo server: what comes back is the request, not a
# response; the client gives up and closes -> timeout
req = b"GET /echo HTTP/1.1\r\nHost: echo.example\r\n\r\n"
s = socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=10)
s.sendall(req)
got = b""
while len(got) < len(req):
    got += s.recv(65536)
s.close()
out["echoed"].append(got == req)
c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
c.request("GET", "/ok")
r = c.getresponse()
out["status"] = r.status
out["len"] = len(r.read())
c.close()
print(json.dumps(out))
'''


def test_http_client_non_http_bytes_ignored():
    echo = client_server("echo")
    echo2 = client_server("echo")
    ng = start_nginx(NGINX_CL)
    cl = gated_python(NON_HTTP_CLIENT, [echo.port, ng.port, echo2.port], "non-HTTP client")
    agent = start_agent(["--pid", str(cl.pid)])
    svc = lib.exe_basename(cl.pid)
    out = run_json(cl)
    if not out["hello"] > 100:
        fail("no TLS ClientHello generated: %s" % out)
    _eq("payloads echoed back whole", out["echoed"], [True, True, True, True])
    _eq("valid request status", out["status"], 200)
    s = expect_client(agent, ng.port, svc, {G(200): 1}, req={G(200): [0]}, resp={G(200): [OK_BODY]})
    no_client_series(s, echo.port, "echo server")
    # the request echoed back is not its response: closed unanswered
    to = G(0, "echo.example", err="timeout")
    expect_client(agent, echo2.port, svc, {to: 1}, req={to: [0]}, resp={})
    st, _, _ = agent.get("/healthz")
    _eq("agent /healthz", st, 200)
    if agent.proc.poll() is not None:
        fail("agent exited (%s)" % agent.proc.returncode)
    agent.stop()

"""HTTP server-side integration tests: real nginx and a real Python server,
the agent attached by --exe / --pid / --all, exact request counts.

Every test starts its own servers on free loopback ports and filters the
agent's series by server_port, so tests never see each other's traffic.
"""
import http.client
import os
import signal
import subprocess
import threading
import time

import lib
from lib import (HIST, ACTIVE, OVERFLOW, fail, count, bucket, total, select_series,
                 fmt_series, wait_for, curl, start_agent, start_nginx, start_python_server)

NGINX_BASIC = r"""
location = /ok { return 200 "ok\n"; }
location = /teapot { return 418; }
location = /boom { return 503; }
location /static/ { root TMPDIR/www; }
"""

STATIC_FILE = bytes((i * 7 + 3) & 0xFF for i in range(20 * 1024))


def _eq(what, got, want, samples=None, **labels):
    if got != want:
        msg = "%s: expected %r, got %r" % (what, want, got)
        if samples is not None:
            msg += "\n" + fmt_series(samples, HIST + "_count", **labels)
        fail(msg)


def _series_for_port(samples, port):
    return select_series(samples, HIST + "_count", server_port=str(port))


def _nginx_requests(ng, n_keepalive, n_single, path="/ok"):
    """n_keepalive requests over one curl connection + n_single separate curls."""
    codes = []
    if n_keepalive:
        codes += curl([ng.url(path)] * n_keepalive)
    for _ in range(n_single):
        codes += curl(ng.url(path))
    return codes


# ---------------------------------------------------------------------------

def test_nginx_exe_statuses_and_routes():
    ng = start_nginx(NGINX_BASIC, files={"www/static/file.bin": STATIC_FILE})
    agent = start_agent(["--exe", "/usr/sbin/nginx"])
    u = ng.url
    codes = []
    # keep-alive: several URLs in one curl invocation
    codes += curl([u("/ok")] * 5 + [u("/teapot")] * 2 + [u("/boom")] + [u("/static/file.bin")] * 3)
    # separate connections
    for p in ["/ok"] * 5 + ["/teapot", "/boom"] + ["/static/file.bin"] * 2:
        codes += curl(u(p))
    _eq("curl status codes (sorted)", sorted(codes),
        sorted([200] * 10 + [418] * 3 + [503] * 2 + [200] * 5))

    port = str(ng.port)
    base = dict(service_name="nginx", server_port=port, http_request_method="GET", url_scheme="http")
    expect = [
        (dict(http_response_status_code="200", http_route="/ok", error_type=""), 10),
        (dict(http_response_status_code="418", http_route="/teapot", error_type=""), 3),
        (dict(http_response_status_code="503", http_route="/boom", error_type="503"), 2),
        (dict(http_response_status_code="200", http_route="/static/file.bin", error_type=""), 5),
    ]
    agent.wait_count(20, server_port=port)
    s = agent.scrape()
    for labels, n in expect:
        got = count(s, **dict(base, **labels))
        if got != n:
            fail("count%s: expected %d, got %g\n%s" % (labels, n, got, fmt_series(s, server_port=port)))
    series = _series_for_port(s, port)
    if len(series) != 4:
        fail("expected exactly 4 series for port %s, got %d\n%s"
             % (port, len(series), fmt_series(s, server_port=port)))
    for l, _ in series:
        if l.get("service_name") != "nginx" or l.get("url_scheme") != "http":
            fail("unexpected labels %s" % l)
    # _bucket{le=+Inf} must agree with _count
    inf = bucket(s, float("inf"), server_port=port)
    _eq("bucket le=+Inf for port", inf, 20)

    def active_zero():
        s2 = agent.scrape()
        g = select_series(s2, ACTIVE, service_name="nginx", server_port=port)
        return g and sum(v for _, v in g) == 0
    wait_for(active_zero, 5, what=lambda: "%s{service_name=nginx,server_port=%s} not present/0: %s"
             % (ACTIVE, port, select_series(agent.scrape(), ACTIVE, server_port=port)))
    agent.stop()


def test_nginx_pid_master_and_workers():
    ng = start_nginx(NGINX_BASIC)
    agent = start_agent(["--pid", str(ng.pid)])
    codes = _nginx_requests(ng, 10, 15)
    _eq("curl codes", codes, [200] * 25)
    port = str(ng.port)
    s = agent.wait_count(25, server_port=port)
    _eq("count{service_name=nginx,route=/ok,status=200}",
        count(s, service_name="nginx", server_port=port, http_route="/ok",
              http_response_status_code="200", error_type=""), 25, s, server_port=port)
    agent.stop()


def test_nginx_pid_future_workers_after_reload():
    """--pid follows future forks: SIGHUP makes the master fork new workers."""
    ng = start_nginx(NGINX_BASIC)
    agent = start_agent(["--pid", str(ng.pid)])
    old = set(ng.workers)
    os.kill(ng.pid, signal.SIGHUP)

    def reloaded():
        kids = set(lib.children(ng.pid))
        return len(kids) >= 2 and not (kids & old) and kids
    new = wait_for(reloaded, 10, what=lambda: "nginx did not replace its workers after SIGHUP: old %s now %s"
                   % (sorted(old), lib.children(ng.pid)))
    lib.log("new workers %s" % sorted(new))
    codes = _nginx_requests(ng, 6, 6)
    _eq("curl codes", codes, [200] * 12)
    agent.wait_count(12, server_port=str(ng.port), service_name="nginx", http_route="/ok")
    agent.stop()


def test_nginx_started_after_agent_exe():
    agent = start_agent(["--exe", "/usr/sbin/nginx"])
    ng = start_nginx(NGINX_BASIC)
    codes = _nginx_requests(ng, 4, 3)
    _eq("curl codes", codes, [200] * 7)
    agent.wait_count(7, server_port=str(ng.port), service_name="nginx", http_route="/ok",
                     http_response_status_code="200")
    agent.stop()


def test_python_keepalive_id_routes_and_query_stripped():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    paths = []
    for i in range(20):
        n = 1000 + i * 37
        p = "/users/%d" % n
        if i % 3 == 0:
            p += "?token=secret%d&page=2" % i
        paths.append(p)
    codes = lib.keepalive_requests(srv.port, paths)
    _eq("statuses", codes, [200] * 20)
    port = str(srv.port)
    svc = lib.exe_basename(srv.pid)
    s = agent.wait_count(20, server_port=port)
    series = _series_for_port(s, port)
    if len(series) != 1:
        fail("expected exactly one series for port %s, got %d:\n%s"
             % (port, len(series), fmt_series(s, server_port=port)))
    l, v = series[0]
    want = dict(service_name=svc, http_request_method="GET", http_response_status_code="200",
                http_route="/users/{id}", url_scheme="http", server_port=port, error_type="")
    for k, val in want.items():
        if l.get(k, "") != val:
            fail("label %s: expected %r, got %r (series %s)" % (k, val, l.get(k), l))
    _eq("count", v, 20)
    for (name, labels), _ in s.items():
        for k, val in labels:
            if "token" in val or "secret" in val or "?" in val:
                fail("query string leaked into label %s=%r of %s" % (k, val, name))
    agent.stop()


def test_python_route_normalization_uuid_hex():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    paths = ["/users/123e4567-e89b-12d3-a456-426614174000",       # UUID
             "/users/0123456789abcdef0123456789abcdef",             # long hex
             "/users/42",                                           # digits
             "/users/abc",                                          # a name: kept
             "/orders/42/items/7?x=1"]                              # two ids
    codes = lib.keepalive_requests(srv.port, paths)
    _eq("statuses", codes, [200, 200, 200, 200, 404])
    port = str(srv.port)
    s = agent.wait_count(5, server_port=port)
    for route, status, n in (("/users/{id}", "200", 3), ("/users/abc", "200", 1),
                             ("/orders/{id}/items/{id}", "404", 1)):
        _eq("count{route=%s,status=%s}" % (route, status),
            count(s, server_port=port, http_route=route, http_response_status_code=status, error_type=""),
            n, s, server_port=port)
    agent.stop()


def test_python_post_with_body_keepalive():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        for size in (0, 10, 5000, 20000, 100000):
            c.request("POST", "/users/%d" % (size + 1), body=b"x" * size)
            r = c.getresponse()
            r.read()
            _eq("POST status", r.status, 200)
            c.request("GET", "/ok")
            r = c.getresponse()
            r.read()
            _eq("GET status", r.status, 200)
    finally:
        c.close()
    port = str(srv.port)
    s = agent.wait_count(10, server_port=port)
    _eq("count{POST,/users/{id},200}", count(s, server_port=port, http_request_method="POST",
                                             http_route="/users/{id}", http_response_status_code="200",
                                             error_type=""), 5, s, server_port=port)
    _eq("count{GET,/ok,200}", count(s, server_port=port, http_request_method="GET", http_route="/ok",
                                    http_response_status_code="200", error_type=""), 5, s, server_port=port)
    agent.stop()


def test_python_active_requests_in_flight():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    port = str(srv.port)
    done = []
    t = threading.Thread(target=lambda: done.append(
        lib.http_get("127.0.0.1", srv.port, "/sleep/1500", timeout=10)[0]), daemon=True)
    t.start()

    def gauge():
        return sum(v for _, v in select_series(agent.scrape(), ACTIVE, server_port=port))
    wait_for(lambda: gauge() == 1 and not done, 1.2,
             what=lambda: "%s{server_port=%s} did not reach 1 while /sleep/1500 was in flight (now %s, done %s)"
             % (ACTIVE, port, select_series(agent.scrape(), ACTIVE, server_port=port), done))
    t.join(10)
    _eq("client status", done, [200])
    wait_for(lambda: gauge() == 0, 5, what=lambda: "%s did not return to 0: %s"
             % (ACTIVE, select_series(agent.scrape(), ACTIVE, server_port=port)))
    agent.wait_count(1, server_port=port, http_route="/sleep/{id}", http_response_status_code="200")
    agent.stop()


def test_nginx_ipv6_loopback():
    ng = start_nginx(NGINX_BASIC, ipv6=True)
    agent = start_agent(["--pid", str(ng.pid)])
    codes = lib.keepalive_requests(ng.port, ["/ok"] * 3, host="::1")
    codes += lib.keepalive_requests(ng.port, ["/ok"] * 2, host="127.0.0.1")
    _eq("statuses", codes, [200] * 5)
    agent.wait_count(5, server_port=str(ng.port), service_name="nginx", http_route="/ok",
                     http_response_status_code="200")
    agent.stop()


def test_adopted_keepalive_connections():
    """Connections opened before the agent started (the Python server thread
    is already blocked in recv when the programs attach) are adopted: every
    request sent after /readyz is 200 is counted."""
    srv = start_python_server()
    ng = start_nginx(NGINX_BASIC)
    conns = []
    for p in (srv.port, ng.port):
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
        c.request("GET", "/ok")
        c.getresponse().read()
        conns.append((c, p))
    agent = start_agent(["--pid", str(srv.pid), "--pid", str(ng.pid)])
    try:
        for c, p in conns:
            for i in range(5):
                c.request("GET", "/ok?i=%d" % i)
                r = c.getresponse()
                r.read()
                _eq("status", r.status, 200)
    finally:
        for c, _ in conns:
            c.close()
    for c, p in conns:
        agent.wait_count(5, server_port=str(p), http_route="/ok", http_response_status_code="200", error_type="")
        agent.wait_count(5, server_port=str(p), settle=0)
    agent.stop()


CLIENT_SCRIPT = r"""
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/ok"); c.getresponse().read()
print("READY", flush=True)
sys.stdin.readline()
for i in range(5):
    c.request("GET", "/ok"); c.getresponse().read()
print("DONE", flush=True)
"""


def test_adopted_client_connection_is_not_a_server():
    """A traced client whose keep-alive connection was opened before the
    agent started: its first write is a request, so the adopted connection is
    a client's. Nothing is counted as served by it, nothing is a parse
    error; the untraced nginx it talks to is not measured either."""
    ng = start_nginx(NGINX_BASIC)
    cl = lib.spawn(["/usr/bin/python3", "-c", CLIENT_SCRIPT, str(ng.port)],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    _eq("client ready", cl.stdout.readline().strip(), b"READY")
    agent = start_agent(["--pid", str(cl.pid)])
    cl.stdin.write(b"go\n")
    cl.stdin.flush()
    _eq("client done", cl.stdout.readline().strip(), b"DONE")
    cl.wait(timeout=10)
    time.sleep(0.5)  # two agent polls
    s = agent.scrape()
    _eq("server requests counted", count(s), 0, s)
    _eq("parse errors", total(s, "aion_agent_parse_errors_total"), 0, s)
    _eq("adopted connections", total(s, "aion_agent_connections_adopted_total"), 1, s)
    agent.stop()


def test_nginx_chunked_gzip_keepalive():
    """gzip makes nginx answer with Transfer-Encoding: chunked; the end of a
    chunked response must be found so the next request on the connection is
    paired with its own response."""
    ng = start_nginx("gzip on; gzip_min_length 0; gzip_types application/octet-stream;\n" + NGINX_BASIC,
                     files={"www/static/text.txt": b"hello aion " * 3000})
    agent = start_agent(["--pid", str(ng.pid)])
    c = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=10)
    try:
        for i in range(4):
            c.request("GET", "/static/text.txt", headers={"Accept-Encoding": "gzip"})
            r = c.getresponse()
            r.read()
            _eq("status", r.status, 200)
            _eq("Transfer-Encoding", r.getheader("Transfer-Encoding"), "chunked")
            c.request("GET", "/teapot")
            r = c.getresponse()
            r.read()
            _eq("status", r.status, 418)
    finally:
        c.close()
    port = str(ng.port)
    s = agent.wait_count(8, server_port=port)
    _eq("count{/static/text.txt,200}", count(s, server_port=port, http_route="/static/text.txt",
                                             http_response_status_code="200", error_type=""), 4, s, server_port=port)
    _eq("count{/teapot,418}", count(s, server_port=port, http_route="/teapot",
                                    http_response_status_code="418", error_type=""), 4, s, server_port=port)
    agent.stop()


def test_python_sleep_latency_buckets():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    for _ in range(5):
        st, _, _ = lib.http_get("127.0.0.1", srv.port, "/sleep/200", timeout=10)
        _eq("status", st, 200)
    port = str(srv.port)
    s = agent.wait_count(5, server_port=port)
    _eq("count{http_route=/sleep/{id}}", count(s, server_port=port, http_route="/sleep/{id}"), 5, s,
        server_port=port)
    les = sorted({float(dict(l)["le"]) for (n, l), _ in s.items()
                  if n == HIST + "_bucket" and dict(l).get("server_port") == port})
    if 0.1 not in les or 0.25 not in les or float("inf") not in les:
        fail("expected buckets le=0.1, 0.25 and +Inf, have %s" % les)
    for le in les:
        got = bucket(s, le, server_port=port)
        want = 0 if le <= 0.1 else (5 if le >= 0.25 else None)
        if want is not None and got != want:
            fail("bucket le=%g: expected %d, got %g (all: %s)"
                 % (le, want, got, [(x, bucket(s, x, server_port=port)) for x in les]))
    ssum = total(s, HIST + "_sum", server_port=port)
    if not ssum >= 1.0:
        fail("_sum %g < 5 x 0.2 s" % ssum)
    agent.stop()


def test_python_pipelined_requests():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    resp = lib.pipelined(srv.port, ["/ok", "/users/5", "/status/201"])
    _eq("pipelined statuses", [r[0] for r in resp], [200, 200, 201])
    port = str(srv.port)
    s = agent.wait_count(3, server_port=port)
    for route, status in (("/ok", "200"), ("/users/{id}", "200"), ("/status/{id}", "201")):
        _eq("count{route=%s,status=%s}" % (route, status),
            count(s, server_port=port, http_route=route, http_response_status_code=status, error_type=""),
            1, s, server_port=port)
    agent.stop()


def test_python_client_abort_connection_closed():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    port = str(srv.port)
    closed_at = lib.abort_request(srv.port, "/sleep/2000", after=0.3)
    cc = dict(server_port=port, error_type="connection_closed", http_response_status_code="0")

    def seen():
        return count(agent.scrape(), **cc) >= 1
    deadline = closed_at + 1.5
    while not seen():
        if time.monotonic() > deadline:
            s = agent.scrape()
            fail("no connection_closed sample within 1.5s of the client's close\n%s"
                 % fmt_series(s, server_port=port))
        time.sleep(0.05)
    lib.log("connection_closed visible %.2fs after close" % (time.monotonic() - closed_at))
    # let the handler wake up and write into the dead socket: still exactly one
    time.sleep(max(0, closed_at + 2.2 - time.monotonic()))
    time.sleep(0.5)
    s = agent.scrape()
    _eq("connection_closed count", count(s, **cc), 1, s, server_port=port)
    _eq("total count for port", count(s, server_port=port), 1, s, server_port=port)
    series = _series_for_port(s, port)
    _eq("series for port", len(series), 1, s, server_port=port)
    l = series[0][0]
    _eq("route of aborted request", l.get("http_route"), "/sleep/{id}")
    _eq("method of aborted request", l.get("http_request_method"), "GET")
    agent.stop()


def test_python_request_split_into_tiny_writes():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    resp = lib.trickle(srv.port, "/users/4242?x=1", delay=0.003)
    _eq("status", resp[0][0], 200)
    port = str(srv.port)
    s = agent.wait_count(1, server_port=port, settle=0.5)
    _eq("count{route=/users/{id},status=200}",
        count(s, server_port=port, http_route="/users/{id}", http_response_status_code="200",
              http_request_method="GET", error_type=""), 1, s, server_port=port)
    agent.stop()


def test_nginx_wrk_load():
    """wrk for 2 s. wrk reports completed requests only; at its deadline up
    to -c requests can be answered by nginx but not read by wrk, and a request
    can be cut off. So: every request nginx logged is counted by the agent
    exactly once (200 or connection_closed), and the agent's 200 count is
    wrk's count plus at most 4 (the connections) in-flight ones."""
    ng = start_nginx(NGINX_BASIC)
    agent = start_agent(["--exe", "/usr/sbin/nginx"])
    n, out, errs, non2xx = lib.wrk(ng.url("/ok"), threads=1, conns=4, duration="2s")
    lib.log("wrk: %d requests, socket errors %s" % (n, errs))
    if n < 100:
        fail("wrk completed only %d requests:\n%s" % (n, out))
    _eq("wrk non-2xx", non2xx, 0)
    port = str(ng.port)
    ok = dict(server_port=port, http_route="/ok", http_response_status_code="200", error_type="")
    cc = dict(server_port=port, error_type="connection_closed")

    def settled():
        logged = ng.access_count("/ok", 200)
        s = agent.scrape()
        return logged and (count(s, **ok) + count(s, **cc) == logged) and (s, logged)
    got = wait_for(settled, 8, what=lambda: "agent 200+connection_closed count %g != nginx access.log count %d "
                   "(wrk %d)\n%s" % (count(agent.scrape(), **ok) + count(agent.scrape(), **cc),
                                     ng.access_count("/ok", 200), n,
                                     fmt_series(agent.scrape(), server_port=port)))
    s, logged = got
    a200 = count(s, **ok)
    acc = count(s, **cc)
    lib.log("wrk %d, nginx logged %d, agent 200=%g connection_closed=%g" % (n, logged, a200, acc))
    if not (n <= a200 <= n + 4):
        fail("agent 200 count %g not in [wrk %d, wrk+4] (nginx logged %d, connection_closed %g)"
             % (a200, n, logged, acc))
    if acc > 4:
        fail("%g connection_closed samples, at most 4 (one per wrk connection) expected" % acc)
    others = count(s, server_port=port) - a200 - acc
    _eq("series other than /ok 200 and connection_closed", others, 0, s, server_port=port)
    agent.stop()


def test_nginx_exact_parallel_keepalive_clients():
    """Fixed N under concurrency: 4 connections x 250 requests = exactly 1000."""
    ng = start_nginx(NGINX_BASIC)
    agent = start_agent(["--pid", str(ng.pid)])
    codes = lib.parallel_keepalive(ng.port, "/ok", threads=4, per_thread=250)
    _eq("completed requests", len(codes), 1000)
    _eq("non-200", [c for c in codes if c != 200], [])
    agent.wait_count(1000, server_port=str(ng.port), http_route="/ok", http_response_status_code="200",
                     error_type="")
    agent.wait_count(1000, server_port=str(ng.port), settle=0)
    agent.stop()


def test_nginx_many_connections_fd_reuse():
    ng = start_nginx(NGINX_BASIC)
    agent = start_agent(["--pid", str(ng.pid)])
    for i in range(200):
        c = curl(ng.url("/ok"))
        if c != [200]:
            fail("request %d: status %s" % (i, c))
    agent.wait_count(200, server_port=str(ng.port), http_route="/ok", http_response_status_code="200")
    agent.wait_count(200, server_port=str(ng.port), settle=0)
    agent.stop()


def test_route_budget_overflow():
    ng = start_nginx('location / { return 200 "any\\n"; }')
    agent = start_agent(["--pid", str(ng.pid), "--max-routes", "5"])
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    paths = ["/" + n for n in names]
    for p in paths:
        _eq("status " + p, curl(ng.url(p)), [200])
    port = str(ng.port)
    s = agent.wait_count(8, server_port=port)
    series = _series_for_port(s, port)
    routes = {}
    for l, v in series:
        routes[l.get("http_route")] = routes.get(l.get("http_route"), 0) + v
    star = routes.pop("/*", 0)
    if star != 3 or len(routes) != 5 or any(v != 1 for v in routes.values()) \
            or not set(routes) <= set(paths):
        fail("expected 5 routes from %s with count 1 each and /* with 3; got %s, /*=%g"
             % (paths, routes, star))
    ov = select_series(s, OVERFLOW)
    hist_ov = [v for l, v in ov if l.get("metric") == HIST]
    got = sum(hist_ov) if hist_ov else sum(v for _, v in ov)
    if got != 3:
        fail("%s: expected 3 (for metric=%s), got %s" % (OVERFLOW, HIST, ov))
    agent.stop()


def test_bad_input_errors():
    if not os.path.exists(lib.AGENT):
        fail("agent binary %s does not exist" % lib.AGENT)
    cases = [
        (["--pid", "999999999"], "999999999"),
        (["--exe", "relative/nonexistent"], "relative/nonexistent"),
        (["--port", "0"], "--port '0'"),
        (["--max-routes", "0"], "--max-routes '0'"),
        (["--service-name", "caf\u00e9"], "--service-name"),
        (["--config", "/nonexistent/aion.conf"], "/nonexistent/aion.conf"),
        (["--bogus"], "bogus"),
    ]
    for args, needle in cases:
        try:
            r = subprocess.run([lib.AGENT] + args + ["--listen", "127.0.0.1:%d" % lib.free_port()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15,
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            fail("aion-agent %s did not exit within 15s" % " ".join(args))
        err = r.stderr.decode("utf-8", "replace")
        if r.returncode == 0:
            fail("aion-agent %s exited 0 (stderr %r)" % (" ".join(args), err))
        if r.returncode < 0:
            fail("aion-agent %s died from signal %d" % (" ".join(args), -r.returncode))
        lines = err.rstrip("\n").split("\n")
        if not err.strip() or len(lines) != 1:
            fail("aion-agent %s: expected one line on stderr, got %d: %r" % (" ".join(args), len(lines), err))
        if needle not in err:
            fail("aion-agent %s: stderr does not mention %r: %r" % (" ".join(args), needle, err))
    r = subprocess.run([lib.AGENT, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    if r.returncode != 0:
        fail("aion-agent --help exited %d: %r" % (r.returncode, out))
    if "usage" not in out.lower():
        fail("aion-agent --help does not print usage: %r" % out[:500])
    for flag in ("--pid", "--exe", "--port", "--all", "--config", "--listen"):
        if flag not in out:
            fail("aion-agent --help does not mention %s" % flag)


def test_endpoints_and_promtool():
    promtool = lib.need_tool("promtool")
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid)])
    for path in ("/healthz", "/readyz"):
        st, _, _ = agent.get(path)
        _eq("GET " + path, st, 200)
    lib.keepalive_requests(srv.port, ["/ok", "/status/503", "/users/7", "/status/404", "/sleep/10"])
    agent.wait_count(5, server_port=str(srv.port))
    st, hdrs, body = agent.get("/metrics")
    _eq("GET /metrics", st, 200)
    ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        fail("/metrics Content-Type %r, expected text/plain; version=0.0.4" % ctype)
    text = body.decode("utf-8")
    types = lib.parse_types(text)
    for name, t in ((HIST, "histogram"), (ACTIVE, "gauge")):
        if types.get(name) != t:
            fail("# TYPE %s: expected %s, got %r" % (name, t, types.get(name)))
    r = subprocess.run([promtool, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        fail("promtool check metrics exited %d: %s" % (r.returncode,
             (r.stdout + r.stderr).decode("utf-8", "replace").strip()[:1500]))
    agent.stop()


def test_service_name_flag():
    srv = start_python_server()
    agent = start_agent(["--pid", str(srv.pid), "--service-name", "checkout"])
    lib.keepalive_requests(srv.port, ["/ok"] * 3)
    s = agent.wait_count(3, server_port=str(srv.port), service_name="checkout")
    other = [l for l, _ in _series_for_port(s, srv.port) if l.get("service_name") != "checkout"]
    if other:
        fail("series with another service_name: %s" % other)
    agent.stop()


def test_all_selector():
    srv = start_python_server()
    agent = start_agent(["--all"])
    lib.keepalive_requests(srv.port, ["/ok"] * 4 + ["/users/9"] * 2)
    port = str(srv.port)
    svc = lib.exe_basename(srv.pid)
    s = agent.wait_count(6, server_port=port)
    _eq("count{service_name=%s,route=/ok}" % svc, count(s, server_port=port, service_name=svc, http_route="/ok"),
        4, s, server_port=port)
    agent.stop()


def _sig_clean_exit(sig):
    srv = start_python_server()
    before = lib.bpf_prog_ids()
    agent = start_agent(["--pid", str(srv.pid)])
    during = lib.bpf_prog_ids()
    mine = {i: n for i, n in during.items() if i not in before}
    if not mine:
        fail("no new BPF programs appeared while the agent was running (bpftool prog show)")
    lib.log("agent programs: %s" % sorted(set(mine.values())))
    lib.keepalive_requests(srv.port, ["/ok"] * 2)
    agent.wait_count(2, server_port=str(srv.port), settle=0)
    t0 = time.monotonic()
    agent.stop(sig, timeout=5.0, expect_rc=0)
    lib.log("exit after %s in %.2fs" % (signal.Signals(sig).name, time.monotonic() - t0))

    # Once the agent process is gone the kernel owns the cleanup: programs
    # attached to (faultable) syscall tracepoints are freed after an RCU
    # grace period, which can take a few seconds. A program pinned in bpffs
    # or held by a leftover process would stay forever.
    t1 = time.monotonic()

    def gone():
        now = lib.bpf_prog_ids()
        return not (set(now) & set(mine))
    wait_for(gone, 15, interval=0.2,
             what=lambda: "BPF programs still loaded 15s after exit: %s"
             % {i: n for i, n in lib.bpf_prog_ids().items() if i in mine})
    lib.log("programs released %.2fs after exit" % (time.monotonic() - t1))


def test_sigterm_clean_exit_unloads_programs():
    _sig_clean_exit(signal.SIGTERM)


def test_sigint_clean_exit_unloads_programs():
    _sig_clean_exit(signal.SIGINT)

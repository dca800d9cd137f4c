"""TLS integration tests (`-k tls`): HTTP and PostgreSQL over TLS, read in
clear text from the TLS libraries' uprobes (OpenSSL libssl.so*, GnuTLS
libgnutls.so*, a statically linked OpenSSL in an --exe binary).

Real servers and clients: nginx with `ssl` (a self-signed certificate made
by the test with `openssl req -x509`), curl, wrk, Python's ssl module (server
and client), pycurl (libcurl-gnutls: GnuTLS), PostgreSQL 15 with ssl=on and
psql / psycopg2 with sslmode=require, a tiny C client linked statically with
OpenSSL. Every test starts its own servers on free 127.0.0.1 ports and its
own agent, and compares, per server_port, the whole set of series with what
it expects, exactly (an extra series fails as much as a missing one):

- HTTP server: {(method, status, route, url_scheme, error_type): count}
  of http_server_request_duration_seconds_count, plus the response (and
  where there are bodies, request) body-size histograms' _count and _sum;
- HTTP client: {(method, status, server_address, url_scheme, error_type):
  count} of http_client_request_duration_seconds_count, plus body sizes;
- PostgreSQL: {(db_operation_name, db_collection_name, error_type): count}
  of db_{client,server}_operation_duration_seconds, as test_db.py.

The truth is the clients' own account (curl's -w, the JSON the Python
clients print, the C client's output), nginx's access log and the server's
statement log. aion_agent_parse_errors_total stays 0 in every test (the
ciphertext the syscall tracepoints see is never parsed).

The TLS library files a traced process maps are read from /proc/PID/maps
(compared by device and inode with the paths of the agent's
`tls: attached to PATH (KIND, N probes)` lines). For processes running
before the agent the spec attaches before /readyz is 200, so that is checked
right after start; processes that load a TLS library after the agent (curl
started under --exe, Python's `import ssl`, the static --exe binary) are held
on stdin until the agent logged the attach.

  tls_nginx_curl            curl -k -> nginx `ssl` (--pid): https series per
                            route/status, plain port of the same nginx: http
  tls_curl_client           traced curl (a copy, --exe) -> untraced TLS nginx
  tls_wrk_nginx             wrk https 2 s: agent 200 + connection_closed ==
                            nginx access log
  tls_python_both           ssl-wrapped ThreadingHTTPServer + HTTPSConnection,
                            both traced (--pid)
  tls_gnutls_client         pycurl (GnuTLS, no libssl mapped) -> TLS nginx
  tls_postgres              ssl=on, psql + psycopg2 sslmode=require: db tables
                            on both sides, pg_stat_ssl says ssl
  tls_dlopen                Python traced before `import ssl`
  tls_disabled              --no-tls: nothing for TLS ports, plain still counted
  tls_static_exe            static OpenSSL client under --exe; stripped copy:
                            `stripped` + instrumentation_errors{stripped_binary}
"""
import json
import os
import re
import shutil
import subprocess
import time

import lib
from lib import (HIST, fail, select_series, start_agent, wait_for, DB_CLIENT, DB_SERVER, wait_db_table,
                 TLS_LIBRARIES, INSTR_ERRORS, PARSE_ERRORS)

CL = "http_client_request_duration_seconds"
SRV_REQ = "http_server_request_body_size_bytes"
SRV_RESP = "http_server_response_body_size_bytes"
CL_REQ = "http_client_request_body_size_bytes"
CL_RESP = "http_client_response_body_size_bytes"
CURL = lib.CURL_BIN
WRK = "/usr/bin/wrk"
TLS_SERVER = os.path.join(lib.SERVERS, "tls_http_server.py")
STATIC_CLIENT_C = os.path.join(lib.SERVERS, "tls_static_client.c")

NGINX_TLS = r"""
location = /ok { return 200 "ok\n"; }
location = /boom { return 503; }
"""
OK_BODY = 3        # len("ok\n")
MISSING = "/missing"   # no location: nginx's static handler, 404


# ---------------------------------------------------------------------------
# helpers

def _eq(what, got, want):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


def server_table(s, port, base=HIST):
    """{(method, status, route, url_scheme, error_type): count} of every
    base_count series with server_port=port."""
    out = {}
    for l, v in select_series(s, base + "_count", server_port=str(port)):
        k = (l.get("http_request_method", ""), l.get("http_response_status_code", ""), l.get("http_route", ""),
             l.get("url_scheme", ""), l.get("error_type", ""))
        out[k] = out.get(k, 0) + v
    return out


def client_table(s, port, base=CL):
    """{(method, status, server_address, url_scheme, error_type): count}."""
    out = {}
    for l, v in select_series(s, base + "_count", server_port=str(port)):
        k = (l.get("http_request_method", ""), l.get("http_response_status_code", ""),
             l.get("server_address", ""), l.get("url_scheme", ""), l.get("error_type", ""))
        out[k] = out.get(k, 0) + v
    return out


def _sums(s, port, base, keyfn):
    """{key: (count, sum)} of a body-size histogram family."""
    out = {}
    for suffix in ("_count", "_sum"):
        kf = keyfn
        for l, v in select_series(s, base + suffix, server_port=str(port)):
            k = kf(l)
            c, sm = out.get(k, (0, 0))
            out[k] = (c + v, sm) if suffix == "_count" else (c, sm + v)
    return out


def server_sums(s, port, base):
    return _sums(s, port, base, lambda l: (l.get("http_request_method", ""), l.get("http_response_status_code", ""),
                                           l.get("http_route", ""), l.get("url_scheme", ""),
                                           l.get("error_type", "")))


def client_sums(s, port, base):
    return _sums(s, port, base, lambda l: (l.get("http_request_method", ""), l.get("http_response_status_code", ""),
                                           l.get("server_address", ""), l.get("url_scheme", ""),
                                           l.get("error_type", "")))


def sizes_to_sums(d):
    """{key: [sizes]} -> {key: (count, sum)}"""
    return {k: (len(v), sum(v)) for k, v in d.items() if v}


def counts_of(d):
    return {k: len(v) for k, v in d.items() if v}


def _fmt(t):
    if not t:
        return "      (no series)"
    return "\n".join("      %s -> %s" % (k, t[k]) for k in sorted(t))


def agent_counters(s):
    return ", ".join("%s%s %g" % (n, lib._lfmt(l), v) for n in (
        PARSE_ERRORS, "aion_agent_requests_dropped_total", "aion_agent_events_lost_total", INSTR_ERRORS,
        TLS_LIBRARIES) for l, v in select_series(s, n)) or "(none)"


def expect_tables(agent, checks, timeout=10.0, settle=0.3):
    """checks: [(what, fn(samples) -> table, want)]. Wait until every table
    equals its want exactly, then check they still do `settle` s later
    (double counting). Returns the samples."""
    last = [None, []]

    def problems(s):
        out = []
        for what, fn, want in checks:
            got = fn(s)
            if got != want:
                out.append("%s:\n    expected\n%s\n    got\n%s" % (what, _fmt(want), _fmt(got)))
        return out

    def ok():
        s = agent.scrape()
        last[0], last[1] = s, problems(s)
        return not last[1] and s

    def why():
        return "\n".join(last[1]) + "\n    agent counters: " + agent_counters(last[0] or {})
    wait_for(ok, timeout, interval=0.1, what=why)
    if settle:
        time.sleep(settle)
        s = agent.scrape()
        last[0], last[1] = s, problems(s)
        if last[1]:
            fail("changed after settling %.1fs: %s" % (settle, why()))
    return last[0]


def no_parse_errors(s, what=""):
    bad = [(l, v) for l, v in select_series(s, PARSE_ERRORS) if v != 0]
    if bad:
        fail("%s%s must stay 0 (ciphertext is never parsed), got %s" % (PARSE_ERRORS, " (%s)" % what if what else "",
                                                                      bad))


def no_http_series(s, port, what):
    for base in (HIST, CL, SRV_REQ, SRV_RESP, CL_REQ, CL_RESP):
        got = select_series(s, base + "_count", server_port=str(port))
        if got:
            fail("%s: expected no %s series for server_port %s, got %s" % (what, base, port, got))


def gauge(s, name, **labels):
    return lib.metric(s, name, **labels)


def _kind(path):
    return "gnutls" if os.path.basename(path).startswith("libgnutls") else "openssl"


def check_attached_now(agent, pids, what):
    """Right after /readyz: every libssl/libgnutls file the (already
    running) pids map is attached, one `tls: attached to` line each with the
    right kind, nothing else, and aion_agent_tls_libraries equals their
    number. Returns {id: path} of those files."""
    libs = lib.tls_libs_of(pids)
    if not libs:
        fail("precondition: %s (pids %s) map no libssl/libgnutls file" % (what, pids))
    att = lib.tls_attached_ids(agent)
    missing = {k: p for k, p in libs.items() if k not in att}
    if missing:
        fail("%s: TLS libraries mapped before the agent started are not attached when /readyz is 200 "
             "(spec: attach before ready): missing %s; the agent's tls lines:\n%s"
             % (what, sorted(missing.values()), lib.tls_lines_text(agent)))
    extra = {k: v for k, v in att.items() if k not in libs}
    if extra:
        fail("%s: `tls: attached to` lines for files no traced process maps: %s (traced processes map %s)"
             % (what, extra, sorted(libs.values())))
    for k, lines in att.items():
        if len(lines) != 1:
            fail("%s: %d `tls: attached to` lines for one file (spec: one per library file): %s"
                 % (what, len(lines), lines))
        path, kind, n = lines[0]
        if kind != _kind(libs[k]) or n < 1:
            fail("%s: attach line for %s says (%s, %d probes), expected kind %s and >= 1 probe"
                 % (what, libs[k], kind, n, _kind(libs[k])))
    lib.wait_metric(agent, TLS_LIBRARIES, len(libs), timeout=2.0)
    lib.log("%s: attached %s" % (what, sorted(libs.values())))
    return libs


def wait_attached(agent, ids, what, timeout=10.0):
    """Wait until every file in ids ({id: path}) has its `tls: attached to`
    line."""
    def ok():
        att = lib.tls_attached_ids(agent)
        return all(k in att for k in ids)
    wait_for(ok, timeout, interval=0.05,
             what=lambda: "%s: no `tls: attached to` line for %s within %.0fs; the agent's tls lines:\n%s"
             % (what, sorted(ids.values()), timeout, lib.tls_lines_text(agent)))


def blocked_on_stdin(pid):
    """The process sits in read(0, ...) (x86_64: syscall 0, first arg 0):
    its libraries are loaded and it waits for the test."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            p = f.read().split()
    except OSError:
        return False
    return len(p) > 1 and p[0] == "0" and int(p[1], 16) == 0


def wait_blocked_on_stdin(pid, what, timeout=10.0):
    wait_for(lambda: blocked_on_stdin(pid), timeout, interval=0.02,
             what="%s (pid %d) is not waiting in read(0) within %.0fs" % (what, pid, timeout))


def _env():
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
              "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    return env


CURL_W = "%{http_code} %{num_connects} %{size_download} %{scheme}\\n"
CURL_ARGS = ["-sS", "-k", "--noproxy", "*", "--http1.1", "-w", CURL_W]


def _curl_rows(out, err, n, what):
    rows = []
    for l in out.strip().split("\n"):
        p = l.split()
        if len(p) == 4:
            rows.append(dict(code=int(p[0]), conns=int(p[1]), down=int(p[2]), scheme=p[3].lower()))
    if len(rows) != n:
        fail("%s: %d -w lines for %d URLs: %r %s" % (what, len(rows), n, out, err))
    return rows


def curl_k(urls, curl=CURL):
    """One (untraced) curl -k invocation fetching urls on one connection;
    returns [{code, conns, down, scheme}]."""
    argv = [curl] + CURL_ARGS
    for u in urls:
        argv += [u, "-o", "/dev/null"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, env=_env(),
                       stdin=subprocess.DEVNULL)
    out, err = r.stdout.decode(), r.stderr.decode("utf-8", "replace")
    if r.returncode != 0:
        fail("curl %s: rc %d: %s %s" % (argv[1:], r.returncode, out, err))
    return _curl_rows(out, err, len(urls), "curl")


def curl_gated(agent, curl, urls, what):
    """curl (a traced binary started after the agent) reading its URLs from
    stdin (-K -): started, held until it waits on stdin (all its libraries
    loaded), until the agent logged it instrumented and attached every
    libssl/libgnutls it maps; then given the URLs. Returns the rows."""
    p = lib.StdioProc([curl] + CURL_ARGS + ["-K", "-"], what, env=_env())
    wait_blocked_on_stdin(p.pid, what)
    lib.wait_target_event(agent, p.pid, "instrumented")
    libs = lib.tls_libs_of([p.pid])
    if not any(os.path.basename(x).startswith("libssl") for x in libs.values()):
        fail("precondition: %s (pid %d) maps no libssl: %s" % (what, p.pid, sorted(libs.values())))
    wait_attached(agent, libs, what)
    for u in urls:
        p.send('url = "%s"' % u)
        p.send('output = "/dev/null"')
    out = p.finish(timeout=60)
    return _curl_rows(out, p.errors(), len(urls), what)


def tls_nginx(plain=False):
    return lib.TlsNginx(NGINX_TLS, plain=plain)


def nginx_pids(ng):
    return [ng.pid] + lib.children(ng.pid)


# ---------------------------------------------------------------------------
# 1. curl -k -> nginx `ssl`, nginx traced by --pid

def test_tls_nginx_curl():
    """nginx (master + 2 workers, traced by --pid) listening with `ssl` on
    one port and in clear text on another of the same server block. Five
    curl -k invocations over TLS (keep-alive: several URLs per invocation,
    one connection each): 200 for /ok, 404 for /missing; one clear-text
    invocation. TLS port: only url_scheme="https" series, exactly per
    (method, status, route), response body sizes equal curl's
    size_download; clear-text port: url_scheme="http"; nginx's access log
    agrees; parse errors 0; libssl attached once, before /readyz."""
    ng = tls_nginx(plain=True)
    agent = start_agent(["--pid", str(ng.pid)])
    check_attached_now(agent, nginx_pids(ng), "nginx")
    u, pu = ng.url, ng.plain_url
    rows = []     # (path, row)
    for urls in ([u("/ok")] * 5 + [u(MISSING)] * 2, [u("/ok")] * 3 + [u(MISSING)], [u("/ok")], [u("/ok")],
                 [u(MISSING)]):
        r = curl_k(urls)
        _eq("curl connections for %d URLs" % len(urls), sum(x["conns"] for x in r), 1)
        rows += list(zip([x.rsplit("/", 1)[1] for x in urls], r))
    _eq("statuses over TLS", [(p, x["code"], x["scheme"]) for p, x in rows],
        [(p, 200 if p == "ok" else 404, "https") for p, _ in rows])
    plain = curl_k([pu("/ok")] * 2 + [pu(MISSING)])
    _eq("clear-text statuses", [x["code"] for x in plain], [200, 200, 404])

    def key(path, code, scheme):
        return ("GET", str(code), "/" + path, scheme, "")
    tls_sizes, plain_sizes = {}, {}
    for p, x in rows:
        tls_sizes.setdefault(key(p, x["code"], "https"), []).append(x["down"])
    for p, x in zip(["ok", "ok", "missing"], plain):
        plain_sizes.setdefault(key(p, x["code"], "http"), []).append(x["down"])
    _eq("TLS request counts", counts_of(tls_sizes), {key("ok", 200, "https"): 10, key("missing", 404, "https"): 4})
    _eq("/ok body", tls_sizes[key("ok", 200, "https")], [OK_BODY] * 10)
    s = expect_tables(agent, [
        ("%s_count, TLS port %d" % (HIST, ng.port), lambda s: server_table(s, ng.port), counts_of(tls_sizes)),
        ("%s (count, sum), TLS port" % SRV_RESP, lambda s: server_sums(s, ng.port, SRV_RESP),
         sizes_to_sums(tls_sizes)),
        ("%s (count, sum), TLS port" % SRV_REQ, lambda s: server_sums(s, ng.port, SRV_REQ),
         {k: (len(v), 0) for k, v in tls_sizes.items()}),
        ("%s_count, clear-text port %d" % (HIST, ng.plain_port), lambda s: server_table(s, ng.plain_port),
         counts_of(plain_sizes)),
        ("%s (count, sum), clear-text port" % SRV_RESP, lambda s: server_sums(s, ng.plain_port, SRV_RESP),
         sizes_to_sums(plain_sizes)),
    ])
    _eq("nginx access log: /ok 200", ng.access_count("/ok", 200), 12)
    _eq("nginx access log: %s 404" % MISSING, ng.access_count(MISSING, 404), 5)
    for l, _ in select_series(s, HIST + "_count", server_port=str(ng.port)):
        _eq("service_name of the TLS series", l.get("service_name"), "nginx")
    no_parse_errors(s)
    _eq("%s after the traffic" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), len(lib.tls_libs_of(nginx_pids(ng))))
    agent.stop()


# ---------------------------------------------------------------------------
# 2. traced curl (client side) -> untraced TLS nginx

def test_tls_curl_client():
    """A copy of /usr/bin/curl (--exe: only this test's curls) started after
    the agent, held on stdin (-K -) until the agent attached the TLS
    libraries it maps; four invocations, keep-alive within each, against an
    untraced TLS nginx: http_client_request_duration_seconds with
    url_scheme="https" exactly per status; response body sizes equal
    curl's size_download; no server series; parse errors 0."""
    ng = tls_nginx()
    tmp = lib.mkdtemp("curl")
    curl = lib.copy_binary(CURL, os.path.join(tmp, "curl"))
    agent = start_agent(["--exe", curl])
    u = ng.url
    sizes = {}
    for i, urls in enumerate(([u("/ok")] * 4 + [u(MISSING)] * 2 + [u("/boom")],
                              [u("/ok")] * 3 + [u(MISSING)], [u("/ok")], [u(MISSING)])):
        r = curl_gated(agent, curl, urls, "curl invocation %d" % (i + 1))
        _eq("curl connections for %d URLs" % len(urls), sum(x["conns"] for x in r), 1)
        for url, x in zip(urls, r):
            want = {"/ok": 200, MISSING: 404, "/boom": 503}[url[url.rindex("/"):]]
            _eq("status of %s" % url, (x["code"], x["scheme"]), (want, "https"))
            err = str(x["code"]) if x["code"] >= 400 else ""
            sizes.setdefault(("GET", str(x["code"]), "127.0.0.1", "https", err), []).append(x["down"])
    _eq("counts", counts_of(sizes), {("GET", "200", "127.0.0.1", "https", ""): 8,
                                     ("GET", "404", "127.0.0.1", "https", "404"): 4,
                                     ("GET", "503", "127.0.0.1", "https", "503"): 1})
    s = expect_tables(agent, [
        ("%s_count, port %d" % (CL, ng.port), lambda s: client_table(s, ng.port), counts_of(sizes)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, ng.port, CL_RESP), sizes_to_sums(sizes)),
        ("%s (count, sum)" % CL_REQ, lambda s: client_sums(s, ng.port, CL_REQ),
         {k: (len(v), 0) for k, v in sizes.items()}),
        ("%s_count (nginx untraced)" % HIST, lambda s: server_table(s, ng.port), {}),
    ])
    for l, _ in select_series(s, CL + "_count", server_port=str(ng.port)):
        _eq("service_name", l.get("service_name"), "curl")
    _eq("nginx access log: /ok 200", ng.access_count("/ok", 200), 8)
    no_parse_errors(s)
    agent.stop()


# ---------------------------------------------------------------------------
# 3. wrk https -> traced nginx

def test_tls_wrk_nginx():
    """wrk -t1 -c4 -d2s https:// against nginx traced by --pid: every
    request nginx logged is counted once (200 over https, or
    connection_closed for the ones cut at wrk's deadline), the agent's 200
    count is within [wrk, wrk + 4], nothing else, parse errors 0 (as
    test_nginx_wrk_load in clear text)."""
    lib.need_tool(WRK)
    ng = tls_nginx()
    agent = start_agent(["--pid", str(ng.pid)])
    check_attached_now(agent, nginx_pids(ng), "nginx")
    n, out, errs, non2xx = lib.wrk(ng.url("/ok"), threads=1, conns=4, duration="2s")
    lib.log("wrk: %d requests, socket errors %s" % (n, errs))
    if n < 100:
        fail("wrk completed only %d requests over TLS:\n%s" % (n, out))
    _eq("wrk non-2xx", non2xx, 0)
    port = str(ng.port)
    ok = ("GET", "200", "/ok", "https", "")
    last = [None, None, 0]

    def settled():
        logged = ng.access_count("/ok", 200)
        s = agent.scrape()
        t = server_table(s, port)
        cc = sum(v for k, v in t.items() if k[4] == "connection_closed")
        last[:] = [s, t, logged]
        return logged and t.get(ok, 0) + cc == logged and (s, t, logged)
    got = wait_for(settled, 8, interval=0.1, what=lambda: "agent 200+connection_closed != nginx access.log count "
                   "%d (wrk %d); series of port %s:\n%s\n    agent counters: %s"
                   % (last[2], n, port, _fmt(last[1] or {}), agent_counters(last[0] or {})))
    s, t, logged = got
    time.sleep(0.3)
    s2 = agent.scrape()
    _eq("series of the port 0.3 s later (double counting)", server_table(s2, port), t)
    a200 = t.get(ok, 0)
    cc = {k: v for k, v in t.items() if k != ok}
    lib.log("wrk %d, nginx logged %d, agent 200=%g others=%s" % (n, logged, a200, cc))
    if not (n <= a200 <= n + 4):
        fail("agent 200 count %g not in [wrk %d, wrk+4] (nginx logged %d, others %s)" % (a200, n, logged, cc))
    for k, v in cc.items():
        if k[0] != "GET" or k[1] != "0" or k[2] != "/ok" or k[3] != "https" or k[4] != "connection_closed":
            fail("unexpected series %s = %g for port %s (only /ok 200 and connection_closed expected)" % (k, v, port))
    if sum(cc.values()) > 4:
        fail("%g connection_closed samples, at most 4 (one per wrk connection) expected" % sum(cc.values()))
    no_parse_errors(s2)
    agent.stop()


# ---------------------------------------------------------------------------
# 4. Python TLS server and Python TLS client, both traced

PY_TLS_CLIENT = r'''
import http.client, json, ssl, sys
print("LOADED " + ssl.OPENSSL_VERSION, flush=True)
sys.stdin.readline()
port = int(sys.argv[1])
ctx = ssl._create_unverified_context()
out = []
plan = [["GET", "/ok", 0]] * 6 + [["GET", "/status/500", 0]] * 2 + [["GET", "/status/404", 0]] * 2 + \
       [["GET", "/users/42", 0], ["POST", "/ok", 1000]]
for conn_plan in (plan, [["GET", "/ok", 0]] * 3 + [["GET", "/status/500", 0]]):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    for method, path, n in conn_plan:
        c.request(method, path, body=b"b" * n if n else None)
        r = c.getresponse()
        b = r.read()
        out.append([method, path, r.status, n, len(b), c.sock.version(), c.sock.getsockname()[1]])
    c.close()
print(json.dumps(out))
'''


def test_tls_python_both():
    """servers/tls_http_server.py (ThreadingHTTPServer, sockets wrapped by
    ssl.SSLContext.wrap_socket, HTTP/1.1 keep-alive) and an
    http.client.HTTPSConnection client (unverified context) in another
    process, both traced by --pid, started before the agent (ssl already
    imported): two connections, GET 200/500/404, /users/42, a POST with a
    1000-byte body. Server and client series exact with url_scheme="https",
    request and response body sizes; parse errors 0."""
    tmp = lib.mkdtemp("pytls")
    cert, key = lib.tls_cert(tmp)
    srv = lib.CmdServer([lib.PYTHON, TLS_SERVER, "--cert", cert, "--key", key, "--port", "0"])
    cl = lib.StdioProc([lib.PYTHON, "-c", PY_TLS_CLIENT, srv.port], "python TLS client")
    cl.expect("LOADED")
    agent = start_agent(["--pid", str(srv.pid), "--pid", str(cl.pid)])
    check_attached_now(agent, [srv.pid, cl.pid], "python server and client")
    cl.send("go")
    rows = json.loads(cl.finish(timeout=60).strip().split("\n")[-1])
    _eq("statuses", [(r[0], r[1], r[2]) for r in rows],
        [("GET", "/ok", 200)] * 6 + [("GET", "/status/500", 500)] * 2 + [("GET", "/status/404", 404)] * 2
        + [("GET", "/users/42", 200), ("POST", "/ok", 200)] + [("GET", "/ok", 200)] * 3
        + [("GET", "/status/500", 500)])
    _eq("TLS versions", {r[5] for r in rows}, {"TLSv1.3"})
    _eq("connections (client ports)", len({r[6] for r in rows}), 2)
    route = {"/ok": "/ok", "/status/500": "/status/{id}", "/status/404": "/status/{id}", "/users/42": "/users/{id}"}
    s_req, s_resp, c_req, c_resp = {}, {}, {}, {}
    for method, path, st, n, blen, _, _ in rows:
        sk = (method, str(st), route[path], "https", str(st) if st >= 500 else "")
        ck = (method, str(st), "127.0.0.1", "https", str(st) if st >= 400 else "")
        s_req.setdefault(sk, []).append(n)
        s_resp.setdefault(sk, []).append(blen)
        c_req.setdefault(ck, []).append(n)
        c_resp.setdefault(ck, []).append(blen)
    s = expect_tables(agent, [
        ("%s_count (server)" % HIST, lambda s: server_table(s, srv.port), counts_of(s_req)),
        ("%s (count, sum)" % SRV_REQ, lambda s: server_sums(s, srv.port, SRV_REQ), sizes_to_sums(s_req)),
        ("%s (count, sum)" % SRV_RESP, lambda s: server_sums(s, srv.port, SRV_RESP), sizes_to_sums(s_resp)),
        ("%s_count (client)" % CL, lambda s: client_table(s, srv.port), counts_of(c_req)),
        ("%s (count, sum)" % CL_REQ, lambda s: client_sums(s, srv.port, CL_REQ), sizes_to_sums(c_req)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, srv.port, CL_RESP), sizes_to_sums(c_resp)),
    ])
    svc = lib.exe_basename(srv.pid)
    for base in (HIST, CL):
        for l, _ in select_series(s, base + "_count", server_port=str(srv.port)):
            _eq("service_name of %s" % base, l.get("service_name"), svc)
    no_parse_errors(s)
    agent.stop()


# ---------------------------------------------------------------------------
# 5. GnuTLS client: pycurl (libcurl3-gnutls)

PYCURL_CLIENT = r'''
import io, json, sys
import pycurl
print("LOADED " + pycurl.version, flush=True)
sys.stdin.readline()
port = int(sys.argv[1])
out = []
for paths in (sys.argv[2].split(","), sys.argv[3].split(",")):
    c = pycurl.Curl()                     # one handle: one keep-alive connection
    c.setopt(pycurl.SSL_VERIFYPEER, 0)
    c.setopt(pycurl.SSL_VERIFYHOST, 0)
    c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    c.setopt(pycurl.NOPROXY, "*")
    for p in paths:
        b = io.BytesIO()
        c.setopt(pycurl.URL, "https://127.0.0.1:%d%s" % (port, p))
        c.setopt(pycurl.WRITEDATA, b)
        c.perform()
        out.append([p, c.getinfo(pycurl.RESPONSE_CODE), len(b.getvalue()), c.getinfo(pycurl.NUM_CONNECTS)])
    c.close()
maps = open("/proc/self/maps").read()
print(json.dumps({"rows": out, "gnutls": "/libgnutls.so" in maps, "libssl": "/libssl.so" in maps}))
'''


def test_tls_gnutls_client():
    """pycurl (Debian's python3-pycurl: libcurl3-gnutls, so GnuTLS, and no
    libssl in the process) traced by --pid, started before the agent: two
    handles (two keep-alive connections), 7 + 4 requests to a TLS nginx
    (200, 404, 503): client series exact with url_scheme="https",
    response body sizes; libgnutls attached (kind gnutls), libssl never
    mapped; parse errors 0."""
    lib.need_module("pycurl", "python3-pycurl")
    ng = tls_nginx()
    first = ["/ok"] * 4 + [MISSING, "/boom", "/ok"]
    second = ["/ok", MISSING, "/ok", "/ok"]
    cl = lib.StdioProc([lib.PYTHON, "-c", PYCURL_CLIENT, ng.port, ",".join(first), ",".join(second)],
                       "pycurl client", env=_env())
    v = cl.expect("LOADED")
    if "GnuTLS" not in v:
        fail("precondition: pycurl is not built on GnuTLS: %r" % v)
    libs = lib.tls_libs_of([cl.pid])
    kinds = sorted(os.path.basename(p).split(".so")[0] for p in libs.values())
    _eq("precondition: TLS libraries mapped by the pycurl process", kinds, ["libgnutls"])
    svc = lib.exe_basename(cl.pid)
    agent = start_agent(["--pid", str(cl.pid)])
    check_attached_now(agent, [cl.pid], "pycurl client")
    cl.send("go")
    res = json.loads(cl.finish(timeout=60).strip().split("\n")[-1])
    _eq("libgnutls / libssl mapped after the requests", (res["gnutls"], res["libssl"]), (True, False))
    rows = res["rows"]
    code = {"/ok": 200, MISSING: 404, "/boom": 503}
    _eq("statuses", [(r[0], r[1]) for r in rows], [(p, code[p]) for p in first + second])
    _eq("new connections (NUM_CONNECTS summed)", sum(r[3] for r in rows), 2)
    sizes = {}
    for p, st, blen, _ in rows:
        sizes.setdefault(("GET", str(st), "127.0.0.1", "https", str(st) if st >= 400 else ""), []).append(blen)
    s = expect_tables(agent, [
        ("%s_count" % CL, lambda s: client_table(s, ng.port), counts_of(sizes)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, ng.port, CL_RESP), sizes_to_sums(sizes)),
        ("%s (nginx untraced)" % HIST, lambda s: server_table(s, ng.port), {}),
    ])
    for l, _ in select_series(s, CL + "_count", server_port=str(ng.port)):
        _eq("service_name", l.get("service_name"), svc)
    _eq("nginx access log: /ok 200", ng.access_count("/ok", 200), 8)
    no_parse_errors(s)
    agent.stop()


# ---------------------------------------------------------------------------
# 6. PostgreSQL with ssl=on: psql and psycopg2 with sslmode=require

PSYCOPG2_TLS_CLIENT = r"""
import sys
import psycopg2
print("LOADED", flush=True)
sys.stdin.readline()
port, K = int(sys.argv[1]), int(sys.argv[2])
c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", sslmode="require")
cur = c.cursor()
cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
assert cur.fetchone()[0] is True, "not TLS"
for i in range(K):
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (100 + i, "it'em %d" % i, i))
c.commit()
for i in range(K):
    cur.execute("SELECT name, qty FROM items WHERE id = %s", (100 + i,))
    assert cur.fetchall() == [("it'em %d" % i, i)]
c.commit()
try:
    cur.execute("SELECT * FROM missing_table WHERE id = %s", (1,))
    raise SystemExit("the SELECT from a missing table did not fail")
except psycopg2.errors.UndefinedTable:
    pass
c.rollback()
c.close()
print("ok")
"""

SSL_Q = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def test_tls_postgres():
    """PostgreSQL 15 with ssl=on (a self-signed certificate; ALTER SYSTEM +
    reload), traced by --port; psql (a copy of the real binary, --exe) with
    sslmode=require: 3 connections asking pg_stat_ssl (each answers t), one
    connection running INSERT, SELECT, UPDATE (three -c), `select 1/0`
    (22), and one with sslmode=disable (answers f); psycopg2 (--pid,
    started before the agent) with sslmode=require: pg_stat_ssl (True),
    10 INSERT, COMMIT, 10 SELECT, COMMIT, a missing table (42), ROLLBACK.
    db_client and db_server tables exact (the same as in clear text), the
    server's statement log agrees on the total; parse errors 0."""
    lib.need_module("psycopg2", "python3-psycopg2")
    pg = lib.Postgres()
    cert, key = lib.tls_cert(pg.tmp)
    pw = lib.pwd.getpwnam("postgres")
    for p in (cert, key):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(key, 0o600)
    lib.pg_admin(pg, "ALTER SYSTEM SET ssl_cert_file = '%s'" % cert)
    lib.pg_admin(pg, "ALTER SYSTEM SET ssl_key_file = '%s'" % key)
    lib.pg_admin(pg, "ALTER SYSTEM SET ssl = on")
    lib.pg_admin(pg, "SELECT pg_reload_conf()")
    wait_for(lambda: lib.pg_admin(pg, "SHOW ssl") == "on", 10, interval=0.2,
             what=lambda: "ssl not on after pg_reload_conf(): %s" % pg.errors())
    lib.pg_admin(pg, "CREATE TABLE items (id int primary key, name text, qty int)")
    plog = lib.PgStatementLog(pg)
    tmp = lib.mkdtemp("psql")
    psql = lib.copy_binary(lib.PSQL, os.path.join(tmp, "psql"))
    k = 10
    py = lib.StdioProc([lib.PYTHON, "-c", PSYCOPG2_TLS_CLIENT, pg.port, k], "psycopg2 client")
    py.expect("LOADED")
    py_svc = lib.exe_basename(py.pid)
    agent = start_agent(["--exe", psql, "--port", str(pg.port), "--pid", str(py.pid)])
    check_attached_now(agent, [pg.pid, py.pid], "postgres and psycopg2")
    plog.mark()

    def run_psql(sqls, sslmode, ok_rc=(0,)):
        argv = [psql, "-X", "-A", "-t"]
        for q in sqls:
            argv += ["-c", q]
        _, out, err = lib.run_client(argv, "psql %s (sslmode=%s)" % (sqls, sslmode),
                                     env=lib.pg_env(pg, {"PGSSLMODE": sslmode}), timeout=30, ok_rc=ok_rc)
        return out.strip(), err
    for i in range(3):
        out, _ = run_psql([SSL_Q], "require")
        _eq("pg_stat_ssl.ssl of psql connection %d with sslmode=require" % (i + 1), out, "t")
    out, _ = run_psql([SSL_Q], "disable")
    _eq("pg_stat_ssl.ssl of the psql connection with sslmode=disable", out, "f")
    out, _ = run_psql(["INSERT INTO items VALUES (1, 'one', 1)", "SELECT name FROM items WHERE id = 1",
                       "UPDATE items SET qty = 2 WHERE id = 1"], "require")
    _eq("psql output of INSERT/SELECT/UPDATE", out.split("\n"), ["INSERT 0 1", "one", "UPDATE 1"])
    _, err = run_psql(["select 1/0"], "require", ok_rc=(1,))
    if "division by zero" not in err:
        fail("select 1/0: %r" % err)
    py.send("go")
    _eq("psycopg2 client output", py.finish(timeout=60).strip(), "ok")
    want_psql = {("SELECT", "pg_stat_ssl", ""): 4, ("INSERT", "items", ""): 1, ("SELECT", "items", ""): 1,
                 ("UPDATE", "items", ""): 1, ("SELECT", "", "22"): 1}
    want_py = {("SELECT", "pg_stat_ssl", ""): 1, ("BEGIN", "", ""): 3, ("INSERT", "items", ""): k,
               ("COMMIT", "", ""): 2, ("SELECT", "items", ""): k, ("SELECT", "missing_table", "42"): 1,
               ("ROLLBACK", "", ""): 1}
    want = {}
    for t in (want_psql, want_py):
        for kk, v in t.items():
            want[kk] = want.get(kk, 0) + v
    _eq("statements the server logged", plog.count(), sum(want.values()))
    wait_db_table(agent, DB_CLIENT, pg.port, want_psql, what="psql", service_name="psql")
    wait_db_table(agent, DB_CLIENT, pg.port, want_py, what="psycopg2", service_name=py_svc)
    wait_db_table(agent, DB_CLIENT, pg.port, want, what="all clients")
    s = wait_db_table(agent, DB_SERVER, pg.port, want, what="postgres")
    for base in (DB_CLIENT, DB_SERVER):
        for l, _ in select_series(s, base + "_count", server_port=str(pg.port)):
            _eq("db_system_name / server_address of %s" % base, (l.get("db_system_name"), l.get("server_address")),
                ("postgresql", "127.0.0.1"))
    for l, _ in select_series(s, DB_SERVER + "_count", server_port=str(pg.port)):
        _eq("service_name of %s" % DB_SERVER, l.get("service_name"), "postgres")
    no_http_series(s, pg.port, "postgres port")
    no_parse_errors(s)
    agent.stop()


# ---------------------------------------------------------------------------
# 7. libssl loaded after the agent started (Python's `import ssl`)

DLOPEN_CLIENT = r'''
import json, sys
print("STARTED", flush=True)
sys.stdin.readline()
import ssl, http.client
print("IMPORTED " + ssl.OPENSSL_VERSION, flush=True)
sys.stdin.readline()
port = int(sys.argv[1])
ctx = ssl._create_unverified_context()
out = []
for paths in (["/ok"] * 5 + ["/missing"], ["/ok"] * 3 + ["/boom"]):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    for p in paths:
        c.request("GET", p)
        r = c.getresponse()
        b = r.read()
        out.append([p, r.status, len(b)])
    c.close()
print(json.dumps(out))
'''


def test_tls_dlopen():
    """A Python process traced by --pid that has no TLS library mapped when
    the agent starts (aion_agent_tls_libraries 0, no attach line); told to
    `import ssl` (dlopen of _ssl -> libssl.so.3): the agent logs
    `tls: attached to .../libssl.so.3 (openssl, N probes)` and the gauge
    becomes 1; then 10 https requests on two connections to an untraced
    TLS nginx: client series exact with url_scheme="https"."""
    ng = tls_nginx()
    cl = lib.StdioProc([lib.PYTHON, "-c", DLOPEN_CLIENT, ng.port], "python client (import ssl later)")
    cl.expect("STARTED")
    _eq("precondition: TLS libraries mapped before `import ssl`", lib.tls_libs_of([cl.pid]), {})
    agent = start_agent(["--pid", str(cl.pid)])
    s = agent.scrape()
    _eq("%s with no TLS library in the traced process" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 0)
    _eq("`tls: attached to` lines before `import ssl`", lib.tls_attached(agent), [])
    cl.send("import")
    cl.expect("IMPORTED")
    libs = lib.tls_libs_of([cl.pid])
    _eq("precondition: TLS libraries after `import ssl`", sorted(os.path.basename(p) for p in libs.values()),
        ["libssl.so.3"])
    t0 = time.monotonic()
    wait_attached(agent, libs, "python after `import ssl`", timeout=10.0)
    lib.log("attach line %.2fs after `import ssl` returned" % (time.monotonic() - t0))
    att = lib.tls_attached(agent)
    _eq("`tls: attached to` lines", [(os.path.basename(p), kind) for p, kind, _ in att],
        [("libssl.so.3", "openssl")])
    lib.wait_metric(agent, TLS_LIBRARIES, 1, timeout=5.0)
    cl.send("go")
    rows = json.loads(cl.finish(timeout=60).strip().split("\n")[-1])
    code = {"/ok": 200, "/missing": 404, "/boom": 503}
    _eq("statuses", [(r[0], r[1]) for r in rows], [(r[0], code[r[0]]) for r in rows])
    sizes = {}
    for p, st, blen in rows:
        sizes.setdefault(("GET", str(st), "127.0.0.1", "https", str(st) if st >= 400 else ""), []).append(blen)
    _eq("counts", counts_of(sizes), {("GET", "200", "127.0.0.1", "https", ""): 8,
                                     ("GET", "404", "127.0.0.1", "https", "404"): 1,
                                     ("GET", "503", "127.0.0.1", "https", "503"): 1})
    s = expect_tables(agent, [
        ("%s_count" % CL, lambda s: client_table(s, ng.port), counts_of(sizes)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, ng.port, CL_RESP), sizes_to_sums(sizes)),
    ])
    no_parse_errors(s)
    _eq("%s at the end" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 1)
    agent.stop()


# ---------------------------------------------------------------------------
# 8. --no-tls

def test_tls_disabled():
    """--no-tls: nginx (--pid) with a TLS and a clear-text port, a traced
    copy of curl (--exe). 6 https requests (200 and 404) make no HTTP
    series at all for the TLS port (server or client side) and no parse
    error; the clear-text requests are counted as usual (url_scheme="http",
    both sides); no `tls: attached` line, aion_agent_tls_libraries 0."""
    ng = tls_nginx(plain=True)
    tmp = lib.mkdtemp("curl")
    curl = lib.copy_binary(CURL, os.path.join(tmp, "curl"))
    agent = start_agent(["--pid", str(ng.pid), "--exe", curl, "--no-tls"])
    r = curl_k([ng.url("/ok")] * 4 + [ng.url(MISSING)], curl=curl)
    r += curl_k([ng.url("/ok")], curl=curl)
    _eq("https statuses", [x["code"] for x in r], [200, 200, 200, 200, 404, 200])
    p = curl_k([ng.plain_url("/ok")] * 3 + [ng.plain_url(MISSING)], curl=curl)
    _eq("clear-text statuses", [x["code"] for x in p], [200, 200, 200, 404])
    s = expect_tables(agent, [
        ("%s_count, clear-text port" % HIST, lambda s: server_table(s, ng.plain_port),
         {("GET", "200", "/ok", "http", ""): 3, ("GET", "404", MISSING, "http", ""): 1}),
        ("%s_count, clear-text port" % CL, lambda s: client_table(s, ng.plain_port),
         {("GET", "200", "127.0.0.1", "http", ""): 3, ("GET", "404", "127.0.0.1", "http", "404"): 1}),
    ])
    _eq("nginx access log: /ok 200 (both ports)", ng.access_count("/ok", 200), 8)
    time.sleep(0.5)
    s = agent.scrape()
    no_http_series(s, ng.port, "https with --no-tls")
    no_parse_errors(s, "--no-tls")
    _eq("`tls: attached to` lines with --no-tls", lib.tls_attached(agent), [])
    _eq("%s with --no-tls" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 0)
    agent.stop()


def test_tls_untraced_not_probed():
    """A probe on a library file is paid by every process that maps it, so
    the agent attaches only to files its targets map. With an --exe
    selector the kernel reports every exec on the host (for path matching):
    an untraced wrk (libssl mapped, alive 3 s) and 3 curl runs over https
    that no selector names must attach nothing. The --exe file's own exec,
    reported after theirs on the same ring while wrk still runs, shows that
    the agent has handled their notices."""
    ng = tls_nginx()
    tmp = lib.mkdtemp("sleep")
    sleep = lib.copy_binary("/bin/sleep", os.path.join(tmp, "sleep"))
    agent = start_agent(["--exe", sleep])
    w = lib.spawn([WRK, "-t1", "-c1", "-d3s", ng.url("/ok")], stdout=subprocess.DEVNULL)
    r = []
    for _ in range(3):
        r += curl_k([ng.url("/ok")])
    _eq("untraced curl statuses", [x["code"] for x in r], [200] * 3)
    p = lib.spawn([sleep, "30"])
    lib.wait_target_event(agent, p.pid, "instrumented")
    if w.poll() is not None:
        fail("precondition: the untraced wrk exited before the agent handled the --exe exec")
    s = agent.scrape()
    _eq("`tls: attached to` lines for untraced processes", lib.tls_attached(agent), [])
    _eq("%s with no traced TLS process" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 0)
    no_http_series(s, ng.port, "untraced curl")
    agent.stop()


# ---------------------------------------------------------------------------
# 9. OpenSSL linked statically into an --exe binary; a stripped copy

def _build_static_client(tmp):
    lib.need_tool("gcc")
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/libssl.a"):
        fail("libssl.a is missing (package libssl-dev)")
    exe = os.path.join(tmp, "tlsclient")
    r = subprocess.run(["gcc", "-O1", "-static", "-o", exe, STATIC_CLIENT_C, "-lssl", "-lcrypto", "-lpthread",
                        "-ldl"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90, cwd=tmp)
    if r.returncode != 0:
        fail("gcc -static ... -lssl -lcrypto failed (rc %d): %s" % (r.returncode, r.stdout.decode()[-2000:]))
    nm = subprocess.run(["nm", exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30).stdout.decode()
    for sym in ("SSL_read", "SSL_write"):
        if not re.search(r" T %s$" % sym, nm, re.M):
            fail("precondition: the static client does not define %s" % sym)
    return exe


def _run_static(agent, exe, port, paths, what, before_go=None):
    c = lib.StdioProc([exe, port] + paths, what)
    wait_blocked_on_stdin(c.pid, what)
    lib.wait_target_event(agent, c.pid, "instrumented")
    _eq("precondition: %s maps no TLS library" % what, lib.tls_libs_of([c.pid]), {})
    if before_go:
        before_go(c)
    c.send("go")
    out = c.finish(timeout=60).strip().split("\n")
    if out[-1] != "DONE %d" % len(paths):
        fail("%s: output %r" % (what, out))
    return [tuple(int(x) for x in l.split()) for l in out[:-1]]


def test_tls_static_exe():
    """A C client linked statically with OpenSSL (libssl.a; it defines
    SSL_read/SSL_write, maps no libssl) run under --exe after the agent,
    held on stdin until the agent logged `tls: attached to <binary>
    (openssl, N probes)`: 6 requests on one TLS connection (200, 404, 503)
    counted exactly with url_scheme="https" and service_name = the
    binary's name. Then a stripped copy under --exe with a new agent: a log
    line containing `stripped`, instrumentation_errors{stripped_binary} == 1,
    its traffic makes no series and no parse error."""
    ng = tls_nginx()
    tmp = lib.mkdtemp("static")
    exe = _build_static_client(tmp)
    paths = ["/ok", "/ok", MISSING, "/ok", "/boom", "/ok"]
    agent = start_agent(["--exe", exe])
    st = os.stat(exe)

    def attached(c):
        wait_attached(agent, {(st.st_dev, st.st_ino): exe}, "static client", timeout=10.0)
        lines = lib.tls_attached_ids(agent)[(st.st_dev, st.st_ino)]
        _eq("attach lines for the static binary (count, kind)", [(len(lines), k) for _, k, _ in lines],
            [(1, "openssl")])
    rows = _run_static(agent, exe, ng.port, paths, "static TLS client", attached)
    code = {"/ok": 200, MISSING: 404, "/boom": 503}
    _eq("static client statuses", [r[0] for r in rows], [code[p] for p in paths])
    sizes = {}
    for status, blen in rows:
        sizes.setdefault(("GET", str(status), "127.0.0.1", "https", str(status) if status >= 400 else ""),
                         []).append(blen)
    s = expect_tables(agent, [
        ("%s_count" % CL, lambda s: client_table(s, ng.port), counts_of(sizes)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, ng.port, CL_RESP), sizes_to_sums(sizes)),
    ])
    for l, _ in select_series(s, CL + "_count", server_port=str(ng.port)):
        _eq("service_name", l.get("service_name"), os.path.basename(exe))
    no_parse_errors(s)
    agent.stop()

    stripped = os.path.join(tmp, "tlsclient-nosym")
    shutil.copyfile(exe, stripped)
    os.chmod(stripped, 0o755)
    r = subprocess.run(["strip", stripped], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        fail("strip failed: %s" % r.stdout.decode())
    nm = subprocess.run(["nm", stripped], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if "no symbols" not in nm.stdout.decode():
        fail("precondition: the stripped copy still has symbols: %s" % nm.stdout.decode()[:300])
    agent2 = start_agent(["--exe", stripped])

    with open(stripped, "rb") as f:
        data = f.read()
    marks = "the binary holds an `OpenSSL <major>.` version string: %s; OpenSSL's own strings such as " \
        "`../ssl/ssl_lib.c`: %s, `OPENSSL_init_ssl`: %s" % tuple(
            "yes" if m else "no" for m in (re.search(rb"OpenSSL [0-9]\.", data), b"../ssl/ssl_lib.c" in data,
                                           b"OPENSSL_init_ssl" in data))
    lib.log(marks)

    def reported(c):
        wait_for(lambda: any("stripped" in l for l in agent2.stderr_text().split("\n")), 10, interval=0.05,
                 what=lambda: "no agent log line containing `stripped` for --exe %s within 10s (%s); stderr tail:\n%s"
                 % (stripped, marks, agent2.stderr_text()[-1500:]))
        lib.wait_metric(agent2, INSTR_ERRORS, 1, timeout=5.0, reason="stripped_binary")
    rows = _run_static(agent2, stripped, ng.port, paths, "stripped static TLS client", reported)
    _eq("stripped client statuses", [r[0] for r in rows], [code[p] for p in paths])
    time.sleep(0.5)
    s = agent2.scrape()
    no_http_series(s, ng.port, "stripped binary")
    no_parse_errors(s, "stripped binary")
    _eq("%s{reason=\"stripped_binary\"} after the run" % INSTR_ERRORS,
        gauge(s, INSTR_ERRORS, reason="stripped_binary"), 1)
    lines = [l for l in agent2.stderr_text().split("\n") if "stripped" in l]
    lib.log("stripped lines: %s" % lines)
    agent2.stop()

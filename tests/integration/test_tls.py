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
  tls_container_root        client in a mount namespace with a copy of libssl
                            bind-mounted over the host path (--pid): the copy
                            is probed (via /proc/PID/root), the host file not
  tls_mariadb               MariaDB with TLS, PyMySQL + mariadb --ssl: db
                            tables equal the same run in clear text
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


# ---------------------------------------------------------------------------
# 10. a client in another mount namespace: the libssl it maps is the file
#     under its root (a copy bind-mounted over the host path)

LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"

NS_CLIENT = r'''
import http.client, json, ssl, sys
print("LOADED " + ssl.OPENSSL_VERSION, flush=True)
sys.stdin.readline()
port = int(sys.argv[1])
ctx = ssl._create_unverified_context()
out = []
for paths in (sys.argv[2].split(","), sys.argv[3].split(",")):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    for p in paths:
        c.request("GET", p)
        r = c.getresponse()
        b = r.read()
        out.append([p, r.status, len(b), c.sock.getsockname()[1]])
    c.close()
print(json.dumps(out))
'''


def _maps_rows(pid, path):
    """[(start, end, perms, offset, (major, minor), inode)] of the lines of
    /proc/pid/maps for the file the process calls `path`."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for l in f:
            p = l.split(None, 5)
            if len(p) < 6 or p[5].strip() != path:
                continue
            a, b = (int(x, 16) for x in p[0].split("-"))
            ma, mi = (int(x, 16) for x in p[3].split(":"))
            out.append((a, b, p[1], int(p[2], 16), (ma, mi), int(p[4])))
    return out


def _breakpoints(pid, path, contents):
    """{file offset: byte in memory} where the executable mappings of `path`
    in process pid differ from the file's bytes `contents` (a uprobe is an
    int3, 0xcc, written into the process's copy of the page)."""
    out = {}
    rows = [r for r in _maps_rows(pid, path) if "x" in r[2]]
    if not rows:
        fail("precondition: pid %d has no executable mapping of %s" % (pid, path))
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as m:
        for start, end, _, off, _, _ in rows:
            m.seek(start)
            mem = m.read(end - start)
            want = contents[off:off + len(mem)]
            for page in range(0, len(want), 4096):
                if mem[page:page + 4096] == want[page:page + 4096]:
                    continue
                for i in range(page, min(page + 4096, len(want))):
                    if mem[i] != want[i]:
                        out[off + i] = mem[i]
    return out


def _uprobes():
    """[(pid, fd_type, filename, offset)] of every uprobe with a BPF
    program that a process holds (bpftool perf show: BPF_TASK_FD_QUERY on
    the perf event fds of every process)."""
    lib.need_tool("bpftool")
    r = subprocess.run(["bpftool", "-j", "perf", "show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        fail("bpftool perf show failed: %s" % r.stderr.decode("utf-8", "replace"))
    try:
        rows = json.loads(r.stdout.decode() or "[]")
    except ValueError as e:
        fail("bpftool perf show: not JSON (%s): %r" % (e, r.stdout[:300]))
    return sorted((x.get("pid"), x.get("fd_type"), x.get("filename"), x.get("offset")) for x in rows
                  if x.get("fd_type") in ("uprobe", "uretprobe"))


def _same_file(path, st):
    try:
        o = os.stat(path)
    except (OSError, TypeError):
        return None
    return (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino)


def test_tls_container_root():
    """A Python HTTPS client in its own mount namespace (unshare -m) where a
    copy of libssl.so.3 is bind-mounted over /usr/lib/x86_64-linux-gnu/
    libssl.so.3: it maps the copy under the host's path. Traced alone by
    --pid (the TLS nginx is not traced; nothing else maps the copy). The
    agent reaches the file through /proc/PID/root: one `tls: attached to
    /usr/lib/x86_64-linux-gnu/libssl.so.3 (openssl, N probes)` line before
    /readyz, aion_agent_tls_libraries 1; every uprobe the agent holds
    (bpftool perf show) names a file that is the copy (same inode), and the
    int3s in the client's memory are exactly at those offsets of the copy;
    the host libssl (as nginx maps it) got no new breakpoint. 7 + 3
    keep-alive requests on two connections: client series exact with
    url_scheme="https"; parse errors 0."""
    unshare = lib.need_tool("unshare")
    ng = tls_nginx()
    tmp = lib.mkdtemp("nsssl")
    copy = os.path.join(tmp, "libssl.so.3")
    shutil.copyfile(LIBSSL, copy)
    os.chmod(copy, 0o644)
    with open(copy, "rb") as f:
        contents = f.read()
    cst, hst = os.stat(copy), os.stat(LIBSSL)
    copy_id = ((os.major(cst.st_dev), os.minor(cst.st_dev)), cst.st_ino)
    host_id = ((os.major(hst.st_dev), os.minor(hst.st_dev)), hst.st_ino)
    first = ["/ok"] * 5 + [MISSING, "/ok"]
    second = ["/ok", "/boom", "/ok"]
    # unshare without --fork execs: the client keeps unshare's pid
    cl = lib.StdioProc([unshare, "-m", "--propagation", "private", "/bin/sh", "-c",
                        'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", copy, LIBSSL,
                        lib.PYTHON, "-c", NS_CLIENT, ng.port, ",".join(first), ",".join(second)],
                       "python client in a mount namespace", env=_env())
    cl.expect("LOADED")
    if os.readlink("/proc/%d/ns/mnt" % cl.pid) == os.readlink("/proc/self/ns/mnt"):
        fail("precondition: the client is in the test's mount namespace")
    _eq("precondition: the client runs python", os.path.realpath("/proc/%d/exe" % cl.pid),
        os.path.realpath(lib.PYTHON))
    ids = {(r[4], r[5]) for r in _maps_rows(cl.pid, LIBSSL)}
    _eq("precondition: (device, inode) of %s in the client's /proc/PID/maps (the copy %s, not the host file %s)"
        % (LIBSSL, copy_id, host_id), ids, {copy_id})
    rst = os.stat("/proc/%d/root%s" % (cl.pid, LIBSSL))
    _eq("precondition: /proc/PID/root%s is the copy" % LIBSSL, (rst.st_dev, rst.st_ino), (cst.st_dev, cst.st_ino))
    _eq("precondition: TLS libraries the client maps", sorted(lib.tls_libs_of([cl.pid]).values()), [LIBSSL])
    ng_pids = [p for p in nginx_pids(ng) if _maps_rows(p, LIBSSL)]
    if not ng_pids:
        fail("precondition: nginx (pid %d) does not map the host %s" % (ng.pid, LIBSSL))
    _eq("precondition: breakpoints in the client's copy before the agent", _breakpoints(cl.pid, LIBSSL, contents),
        {})

    agent = start_agent(["--pid", str(cl.pid)])
    att = lib.tls_attached(agent)
    if len(att) != 1 or att[0][0] != LIBSSL or att[0][1] != "openssl" or att[0][2] < 1:
        fail("expected exactly one `tls: attached to %s (openssl, N probes)` line when /readyz is 200, got %s;"
             " tls lines:\n%s" % (LIBSSL, att, lib.tls_lines_text(agent)))
    nprobes = att[0][2]
    s = agent.scrape()
    _eq(TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 1)
    # the agent's own uprobes: all on the copy
    before = _uprobes()
    ups = [(t, fn, off) for pid, t, fn, off in before if pid == agent.proc.pid]
    lib.log("agent uprobes: %s" % ups)
    _eq("number of uprobes the agent holds (bpftool perf show) vs its attach line", len(ups), nprobes)
    for fd_type, fn, off in ups:
        same = _same_file(fn, cst)
        if not same:
            fail("%s at +%s on %r: not the copy (dev %d, inode %d; the host file's inode is %d): %s"
                 % (fd_type, off, fn, cst.st_dev, cst.st_ino, hst.st_ino,
                    "cannot stat it" if same is None else "inode %d" % os.stat(fn).st_ino))
    # the kernel's view: int3s in the client's copy exactly at those offsets
    bp = _breakpoints(cl.pid, LIBSSL, contents)
    _eq("int3 offsets in the client's copy == the agent's uprobe offsets",
        (sorted(bp), sorted(set(bp.values()))), (sorted({o for _, _, o in ups}), [0xcc]))
    # none in the host file but at offsets of uprobes that other processes
    # (another agent on this machine) hold on it, before or after the read
    with open(LIBSSL, "rb") as f:
        host = f.read()
    host_bp = {pid: _breakpoints(pid, LIBSSL, host) for pid in ng_pids}
    after = _uprobes()
    others = sorted({(pid, off) for pid, _, fn, off in before + after
                     if pid != agent.proc.pid and _same_file(fn, hst) is not False})
    allowed = {off for _, off in others}
    lib.log("host libssl: int3s %s; uprobes of other processes on it (pid, offset): %s"
            % ({p: sorted(x) for p, x in host_bp.items()}, others))
    for pid, x in host_bp.items():
        extra = sorted(set(x) - allowed)
        if extra:
            fail("the host %s as nginx pid %d maps it has int3s at %s that no other process's uprobe explains "
                 "(this agent's uprobes: %s of the copy; other processes' on the host file (pid, offset): %s)"
                 % (LIBSSL, pid, extra, sorted({o for _, _, o in ups}), others))

    svc = lib.exe_basename(cl.pid)
    cl.send("go")
    rows = json.loads(cl.finish(timeout=60).strip().split("\n")[-1])
    code = {"/ok": 200, MISSING: 404, "/boom": 503}
    _eq("statuses", [(r[0], r[1]) for r in rows], [(p, code[p]) for p in first + second])
    _eq("connections (client ports)", len({r[3] for r in rows}), 2)
    sizes = {}
    for p, st, blen, _ in rows:
        sizes.setdefault(("GET", str(st), "127.0.0.1", "https", str(st) if st >= 400 else ""), []).append(blen)
    _eq("counts", counts_of(sizes), {("GET", "200", "127.0.0.1", "https", ""): 8,
                                     ("GET", "404", "127.0.0.1", "https", "404"): 1,
                                     ("GET", "503", "127.0.0.1", "https", "503"): 1})
    s = expect_tables(agent, [
        ("%s_count" % CL, lambda s: client_table(s, ng.port), counts_of(sizes)),
        ("%s (count, sum)" % CL_RESP, lambda s: client_sums(s, ng.port, CL_RESP), sizes_to_sums(sizes)),
        ("%s_count (nginx untraced)" % HIST, lambda s: server_table(s, ng.port), {}),
    ])
    for l, _ in select_series(s, CL + "_count", server_port=str(ng.port)):
        _eq("service_name", l.get("service_name"), svc)
    _eq("nginx access log: /ok 200", ng.access_count("/ok", 200), 8)
    no_parse_errors(s)
    _eq("%s at the end" % TLS_LIBRARIES, gauge(s, TLS_LIBRARIES), 1)
    _eq("`tls: attached to` lines at the end", len(lib.tls_attached(agent)), 1)
    agent.stop()


# ---------------------------------------------------------------------------
# 11. MariaDB with TLS: PyMySQL and the mariadb client, calibrated against
#     the same clients in clear text

MY_TLS_COM = ("Com_select", "Com_insert", "Com_update", "Com_delete", "Com_set_option", "Com_commit",
              "Com_rollback", "Com_admin_commands", "Com_show_status")

MY_TLS_CLIENT = r'''
import json, sys
import pymysql
print("LOADED", flush=True)
sys.stdin.readline()
port, K, ca, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
kw = {"ssl": {"ca": ca, "check_hostname": False}} if mode == "tls" else {"ssl_disabled": True}
c = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database="app", **kw)
cur = c.cursor()
cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
cipher = cur.fetchall()[0][1]
version = c._sock.version() if hasattr(c._sock, "version") else ""
for i in range(K):
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (i, "it'em \"%d\" ; --" % i, i))
c.commit()
for i in range(K):
    cur.execute("SELECT name, qty FROM items WHERE id = %s", (i,))
    assert cur.fetchall() == (("it'em \"%d\" ; --" % i, i),)
for i in range(K):
    cur.execute("UPDATE items SET qty = qty + %s WHERE id = %s", (10, i))
for i in range(K):
    cur.execute("DELETE FROM items WHERE id = %s", (i,))
c.commit()
c.ping(reconnect=False)
try:
    cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s)", (1, "x"))
    raise SystemExit("the bad INSERT did not fail")
except pymysql.MySQLError as e:
    assert e.args[0] == 1136, e
c.rollback()
# a 300 kB value each way (many TLS records)
cur.execute("INSERT INTO items (id, name, qty) VALUES (%s, %s, %s)", (999, "y" * 300000, 0))
cur.execute("SELECT name FROM items WHERE id = %s", (999,))
assert cur.fetchall() == (("y" * 300000,),)
cur.execute("DELETE FROM items WHERE id = %s", (999,))
c.commit()
c.close()
print(json.dumps({"cipher": cipher, "version": version}))
'''


def _my_tls_phase(my, cert, mode, k):
    """One agent (mariadbd --pid, PyMySQL --pid, the mariadb client --exe)
    and one run of both clients with TLS (mode "tls") or without ("plain").
    Returns (Com_* deltas, ciphers, {side: db table}, want tables)."""
    tls = mode == "tls"
    py = lib.StdioProc([lib.PYTHON, "-c", MY_TLS_CLIENT, my.port, k, cert, mode], "PyMySQL client (%s)" % mode)
    py.expect("LOADED")
    py_svc = lib.exe_basename(py.pid)
    agent = start_agent(["--exe", lib.MARIADB, "--pid", str(my.pid), "--pid", str(py.pid)])
    check_attached_now(agent, [my.pid, py.pid], "mariadbd and PyMySQL (%s)" % mode)
    before = my.status(*MY_TLS_COM)
    py.send("go")
    res = json.loads(py.finish(timeout=60).strip().split("\n")[-1])

    def cli(sql, ok_rc=(0,)):
        return lib.run_client([lib.MARIADB, "--no-defaults", "-h", "127.0.0.1", "-P", str(my.port), "-u", "root",
                               "-D", "app", "--ssl" if tls else "--skip-ssl", "-e", sql],
                              "mariadb %s -e %r" % ("--ssl" if tls else "--skip-ssl", sql), timeout=30, ok_rc=ok_rc)
    _, out, _ = cli("SHOW STATUS LIKE 'Ssl_cipher'")
    rows = [l.split("\t") for l in out.strip().split("\n")]
    if len(rows) != 2 or rows[1][0] != "Ssl_cipher":
        fail("mariadb: SHOW STATUS LIKE 'Ssl_cipher' output %r" % out)
    cli_cipher = rows[1][1] if len(rows[1]) > 1 else ""
    cli("INSERT INTO items VALUES (1001, 'a', 1); INSERT INTO items VALUES (1002, 'b', 2); "
        "SELECT name FROM items WHERE id = 1002")
    cli("UPDATE items SET qty = qty + 1 WHERE id > 1000")
    cli("DELETE FROM items WHERE id > 1000")
    _, _, err = cli("selec 1", ok_rc=(1,))
    if "ERROR 1064" not in err:
        fail("`selec 1` did not fail with 1064: %r" % err)
    _, _, err = cli("SELECT * FROM nosuch", ok_rc=(1,))
    if "ERROR 1146" not in err:
        fail("`SELECT * FROM nosuch` did not fail with 1146: %r" % err)
    d = lib.status_delta(before, my.status(*MY_TLS_COM))
    com = {n: v for n, v in d.items() if v}
    want_py = {("SET", "", ""): 1, ("SHOW", "", ""): 1, ("INSERT", "items", ""): k + 1, ("COMMIT", "", ""): 3,
               ("SELECT", "items", ""): k + 1, ("UPDATE", "items", ""): k, ("DELETE", "items", ""): k + 1,
               ("PING", "", ""): 1, ("INSERT", "items", "1136"): 1, ("ROLLBACK", "", ""): 1}
    want_cli = {("SHOW", "", ""): 1, ("INSERT", "items", ""): 2, ("SELECT", "items", ""): 1,
                ("UPDATE", "items", ""): 1, ("DELETE", "items", ""): 1, ("_OTHER", "", "1064"): 1,
                ("SELECT", "nosuch", "1146"): 1}
    want = {}
    for t in (want_py, want_cli):
        for kk, v in t.items():
            want[kk] = want.get(kk, 0) + v
    got = {}
    for side, base, w, labels in (("PyMySQL", DB_CLIENT, want_py, {"service_name": py_svc}),
                                  ("mariadb client", DB_CLIENT, want_cli, {"service_name": "mariadb"}),
                                  ("all clients", DB_CLIENT, want, {}),
                                  ("mariadbd", DB_SERVER, want, {})):
        try:
            s = wait_db_table(agent, base, my.port, w, what="%s, %s" % (side, mode), **labels)
        except lib.TestFailure as e:
            fail("%s\n    agent counters: %s" % (e, agent_counters(agent.scrape())))
        got[side] = lib.db_table(s, base, my.port, **labels)
    for base in (DB_CLIENT, DB_SERVER):
        for l, _ in select_series(s, base + "_count", server_port=str(my.port)):
            _eq("db_system_name / server_address of %s (%s)" % (base, mode),
                (l.get("db_system_name"), l.get("server_address")), ("mysql", "127.0.0.1"))
    for l, _ in select_series(s, DB_SERVER + "_count", server_port=str(my.port)):
        _eq("service_name of %s (%s)" % (DB_SERVER, mode), l.get("service_name"), "mariadbd")
    no_http_series(s, my.port, "mariadb port (%s)" % mode)
    no_parse_errors(s, mode)
    lib.log("%s: PyMySQL cipher %r %r, mariadb client cipher %r, Com_* %s"
            % (mode, res["cipher"], res["version"], cli_cipher, com))
    agent.stop()
    return com, (res["cipher"], res["version"], cli_cipher), got


def test_tls_mariadb():
    """MariaDB 10.11 with TLS (--ssl-cert/--ssl-key/--ssl-ca: a self-signed
    certificate made by the test), mariadbd traced by --pid, PyMySQL
    (--pid, started before the agent) and the mariadb client (--exe). The
    same workload twice, each under its own agent: first in clear text
    (PyMySQL ssl_disabled, mariadb --skip-ssl), then with
    require_secure_transport=ON and TLS (PyMySQL ssl={"ca": cert},
    mariadb --ssl); each client asks SHOW STATUS LIKE 'Ssl_cipher' (empty
    in clear text, a cipher with TLS). PyMySQL: SET AUTOCOMMIT, K INSERT,
    COMMIT, K SELECT, K UPDATE, K DELETE, COMMIT, PING, 1136, ROLLBACK,
    300 kB each way; mariadb: INSERT x2 + SELECT, UPDATE, DELETE, 1064,
    1146. Per client and on the server side, the TLS db tables equal the
    clear-text ones exactly (and the expected tables), Com_* deltas equal;
    parse errors 0."""
    lib.need_exe(lib.MARIADB, "mariadb-client")
    lib.need_module("pymysql", "python3-pymysql")
    ctmp = lib.mkdtemp("mycert")
    cert, key = lib.tls_cert(ctmp)
    pw = lib.pwd.getpwnam("mysql")
    for p in (cert, key):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(key, 0o600)
    my = lib.MariaDB(extra=["--ssl-cert=" + cert, "--ssl-key=" + key, "--ssl-ca=" + cert])
    _eq("@@have_ssl, @@require_secure_transport", tuple(my.admin("SELECT @@have_ssl, @@require_secure_transport")),
        (("YES", 0),))
    my.admin("CREATE DATABASE app", "CREATE TABLE app.items (id INT PRIMARY KEY, name MEDIUMTEXT, qty INT)")
    k = 20
    com_plain, ciph_plain, plain = _my_tls_phase(my, cert, "plain", k)
    # the failed SELECT and INSERT count too, the syntax error in none;
    # Com_show_status: the two clients' and the status() query's own
    _eq("Com_* deltas in clear text", com_plain,
        {"Com_set_option": 1, "Com_show_status": 3, "Com_insert": k + 4, "Com_commit": 3, "Com_select": k + 3,
         "Com_update": k + 1, "Com_delete": k + 2, "Com_admin_commands": 1, "Com_rollback": 1})
    _eq("ciphers in clear text (PyMySQL Ssl_cipher, its socket's TLS version, mariadb's Ssl_cipher)",
        ciph_plain, ("", "", ""))
    my.admin("SET GLOBAL require_secure_transport = ON")
    _eq("@@require_secure_transport", tuple(my.admin("SELECT @@require_secure_transport")), ((1,),))
    com_tls, ciph_tls, tls = _my_tls_phase(my, cert, "tls", k)
    if not (ciph_tls[0] and ciph_tls[1].startswith("TLS") and ciph_tls[2]):
        fail("the TLS clients are not on TLS: PyMySQL Ssl_cipher %r, version %r; mariadb Ssl_cipher %r" % ciph_tls)
    _eq("Com_* deltas with TLS vs clear text", com_tls, com_plain)
    for side in plain:
        _eq("db table of %s with TLS vs clear text" % side, tls[side], plain[side])

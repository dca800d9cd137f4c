"""The metrics endpoint under attack and with --web-config (issue 8).

A real Prometheus 2 server (tests/integration/prom.py) scrapes the real
agent every second while clients bound to 127.0.0.2 hold 1,000 idle TCP
connections and slowloris requests; malformed and oversized requests;
HTTPS + basic auth with a certificate made by `openssl req` and a bcrypt
hash made by `htpasswd -B`, scraped by Prometheus with scheme https,
tls_config and basic_auth, during a flood of wrong passwords; bad web
config files. The limits are the constants of agent/expo.c (README,
Endpoints): 256 connections, 16 per client address, 10 s idle timeout,
32 KiB of request line + headers, 2 bcrypt checks a second.
"""
import http.client
import os
import select
import socket
import ssl
import subprocess
import threading
import time

import lib
from lib import fail, wait_for, start_agent, free_port
from prom import Prometheus, value

PER_IP_LIMIT = 16       # EXPO_PER_IP_LIMIT
IDLE_TIMEOUT = 10.0     # EXPO_CONN_TIMEOUT_S
BCRYPT_PER_S = 2        # EXPO_BCRYPT_PER_S
ATTACKER = "127.0.0.2"
# Loading the BPF programs takes seconds; more when the 2 cores are busy.
READY_TIMEOUT = 60.0


def _agent_args():
    # A port nothing listens on: the endpoint is what is tested here (and
    # no TLS uprobes, which halves the start-up time).
    return ["--port", str(free_port()), "--no-tls"]


def _scrape_job(target, **extra):
    job = {"job_name": "aion", "scrape_interval": "1s", "scrape_timeout": "1s",
           "static_configs": [{"targets": [target]}]}
    job.update(extra)
    return [job]


def _up_is_1(r):
    return len(r) == 1 and r[0]["value"][1] == "1"


def _check_every_scrape_ok(prom, window):
    """Every scrape of the last `window` seconds succeeded, and there were
    as many as a 1 s interval gives (one less for the phase)."""
    mn = prom.query('min_over_time(up{job="aion"}[%ds])' % window)
    n = prom.query('count_over_time(up{job="aion"}[%ds])' % window)
    if not mn or not n:
        fail("no up samples in the last %ds; targets: %s" % (window, prom.targets()))
    lib.log("last %ds: %d scrapes, min(up) %s" % (window, value(n), value(mn)))
    if value(mn) != 1:
        fail("a scrape failed in the last %ds (min_over_time(up) = %s, %d samples); "
             "targets: %s" % (window, value(mn), value(n), prom.targets()))
    if value(n) < window - 1:
        fail("only %d scrapes in %ds at a 1 s interval (want at least %d)"
             % (value(n), window, window - 1))


class Attack:
    """From address `src`: `slow` slowloris clients (one header byte a
    second, a header that never ends) and `idle` idle TCP connections,
    reopened every `reopen` s when the agent has closed them. Runs in a
    thread until stop(); every socket's open and close times are kept."""

    def __init__(self, port, src, idle, slow, reopen=2.0, host="127.0.0.1"):
        self.port, self.src, self.idle, self.host = port, src, idle, host
        self.reopen = reopen
        self.ep = select.epoll()
        self.socks = {}          # fd -> [sock, opened, closed or None, slow], live ones
        self.all = []            # every entry, in opening order
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._reopen_on = True
        self.slow_data = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
        self.slow_sent = {}
        for _ in range(slow):
            self._open(True)
        self._fill()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _open(self, slow=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind((self.src, 0))
        s.setblocking(False)
        try:
            s.connect((self.host, self.port))
        except BlockingIOError:
            pass
        self.ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        self.socks[s.fileno()] = v = [s, time.monotonic(), None, slow]
        self.all.append(v)
        if slow:
            self.slow_sent[s.fileno()] = 0

    def _fill(self):
        with self.lock:
            live = sum(1 for v in self.socks.values() if v[2] is None and not v[3])
            for _ in range(self.idle - live):
                self._open()

    def _closed(self, fd):
        v = self.socks.pop(fd)
        v[2] = time.monotonic()
        self.ep.unregister(fd)
        v[0].close()

    def _run(self):
        last_byte = last_fill = time.monotonic()
        deadline = last_byte + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            for fd, ev in self.ep.poll(0.1):
                with self.lock:
                    v = self.socks.get(fd)
                    if not v:
                        continue
                    try:
                        d = v[0].recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        d = b""
                    if not d:
                        self._closed(fd)
            now = time.monotonic()
            if now - last_byte >= 1.0:
                last_byte = now
                with self.lock:
                    for fd, n in list(self.slow_sent.items()):
                        v = self.socks.get(fd)
                        if not v or not v[3]:
                            self.slow_sent.pop(fd)
                            continue
                        try:
                            v[0].send(self.slow_data[n:n + 1])
                            self.slow_sent[fd] = n + 1
                        except OSError:
                            self._closed(fd)
            if self._reopen_on and now - last_fill >= self.reopen:
                last_fill = now
                self._fill()

    def stop_reopening(self):
        self._reopen_on = False

    def stats(self):
        with self.lock:
            vals = [list(v) for v in self.all]
        idle = [v for v in vals if not v[3]]
        slow = [v for v in vals if v[3]]
        return {
            "opened": len(idle),
            "idle_open": [v for v in idle if v[2] is None],
            "closed_fast": sum(1 for v in idle if v[2] is not None and v[2] - v[1] < 1.0),
            "idle_lifetimes": [v[2] - v[1] for v in idle if v[2] is not None and v[2] - v[1] >= 1.0],
            "slow_open": sum(1 for v in slow if v[2] is None),
            "slow_bytes": sum(self.slow_sent.values()) if self.slow_sent else 0,
        }

    def stop(self):
        self._stop.set()
        self.t.join(5)
        with self.lock:
            for v in self.socks.values():
                if v[2] is None:
                    v[0].close()
        self.ep.close()


def _fresh_get(port, path="/metrics", src=None):
    """GET on a new connection from src; (status, body) or the exception."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                   source_address=(src, 0) if src else None)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, e
    finally:
        c.close()


def _mhd_log_lines(agent):
    return [l for l in agent.stderr_text().splitlines() if "libmicrohttpd" in l]


def test_endpoint_attack_from_other_address():
    agent = start_agent(_agent_args(), ready_timeout=READY_TIMEOUT)
    prom = Prometheus(_scrape_job(agent.listen))
    prom.wait_query('up{job="aion"}', _up_is_1, 15)
    t0 = time.monotonic()
    atk = Attack(agent.port, ATTACKER, idle=1000, slow=4)
    try:
        time.sleep(1.0)
        st = atk.stats()
        lib.log("attack after 1s: %d opened, %d closed at once, %d idle open, %d slowloris open"
                % (st["opened"], st["closed_fast"], len(st["idle_open"]), st["slow_open"]))
        # The per-IP limit: 16 connections from 127.0.0.2, the rest
        # accepted and closed at once.
        if len(st["idle_open"]) + st["slow_open"] != PER_IP_LIMIT:
            fail("%d connections of %s open after 1 s (%d idle, %d slowloris); want the "
                 "per-address limit %d" % (len(st["idle_open"]) + st["slow_open"], ATTACKER,
                                          len(st["idle_open"]), st["slow_open"], PER_IP_LIMIT))
        if st["closed_fast"] != 1000 - len(st["idle_open"]):
            fail("%d of 1000 idle connections closed at once, want %d"
                 % (st["closed_fast"], 1000 - len(st["idle_open"])))
        # A new client from another address is served at once, too.
        code, body = _fresh_get(agent.port)
        if code != 200:
            fail("a new connection from 127.0.0.1 during the attack: %r" % (body,))
        time.sleep(max(0.0, 16.0 - (time.monotonic() - t0)))
        _check_every_scrape_ok(prom, 15)
        atk.stop_reopening()
        # The idle timeout closes the idle ones that got a slot.
        wait_for(lambda: not atk.stats()["idle_open"], IDLE_TIMEOUT + 5,
                 what=lambda: "%d idle connections still open %.0f s after the last was "
                 "opened (idle timeout %.0f s)" % (len(atk.stats()["idle_open"]),
                                                   IDLE_TIMEOUT + 5, IDLE_TIMEOUT))
        st = atk.stats()
        lt = st["idle_lifetimes"]
        lib.log("idle connections closed by the timeout: %d, lifetimes %.1f..%.1f s; "
                "%d opened in all; slowloris open %d after %d bytes"
                % (len(lt), min(lt), max(lt), st["opened"], st["slow_open"], st["slow_bytes"]))
        if not lt or min(lt) < IDLE_TIMEOUT - 1 or max(lt) > IDLE_TIMEOUT + 3:
            fail("idle connections that got a slot lived %s s; want the idle timeout %.0f s "
                 "(-1/+3 s)" % (["%.1f" % x for x in sorted(lt)], IDLE_TIMEOUT))
        # Slowloris clients send a byte a second: not idle, so only the
        # per-address limit bounds them (documented).
        if st["slow_open"] != 4:
            fail("%d of 4 slowloris connections open; they send a byte a second, so "
                 "the idle timeout should not close them" % st["slow_open"])
    finally:
        atk.stop()
    # libmicrohttpd's "connection limit" lines are rate-limited.
    lines = _mhd_log_lines(agent)
    if len(lines) > 10:
        fail("%d libmicrohttpd lines on stderr for one attack (at most 10 a minute): %s"
             % (len(lines), lines[:3]))
    code, _ = _fresh_get(agent.port)
    if code != 200:
        fail("/metrics after the attack: %r" % code)
    prom.stop()
    agent.stop()


def test_endpoint_attack_from_scraper_address():
    """The attacker shares the scraper's address: the per-address limit
    cannot tell them apart. Prometheus keeps its keep-alive connection and
    keeps scraping; a new connection from that address is refused while
    the attacker holds the 16 slots (documented limit)."""
    agent = start_agent(_agent_args(), ready_timeout=READY_TIMEOUT)
    prom = Prometheus(_scrape_job(agent.listen))
    prom.wait_query('up{job="aion"}', _up_is_1, 15)
    time.sleep(2.0)   # a few scrapes on Prometheus' keep-alive connection
    t0 = time.monotonic()
    atk = Attack(agent.port, "127.0.0.1", idle=1000, slow=4)
    try:
        time.sleep(1.0)
        st = atk.stats()
        held = len(st["idle_open"]) + st["slow_open"]
        lib.log("attacker on 127.0.0.1 holds %d connections" % held)
        if held != PER_IP_LIMIT - 1:
            fail("the attacker on the scraper's address holds %d connections; want %d "
                 "(the limit %d minus Prometheus' one)" % (held, PER_IP_LIMIT - 1, PER_IP_LIMIT))
        code, body = _fresh_get(agent.port)
        if code is not None:
            fail("a new connection from 127.0.0.1 was answered %r while that address is at "
                 "its limit" % code)
        lib.log("new connection from the attacker's address: %r" % (body,))
        code, body = _fresh_get(agent.port, src="127.0.0.3")
        if code != 200:
            fail("a new connection from 127.0.0.3: %r" % (body,))
        time.sleep(max(0.0, 16.0 - (time.monotonic() - t0)))
        _check_every_scrape_ok(prom, 15)
    finally:
        atk.stop()
    prom.stop()
    agent.stop()


def test_endpoint_global_limit():
    """16 addresses x 16 connections fill the 256 connections: libmicrohttpd
    stops accepting, so a NEW connection waits in the listen backlog until
    the idle timeout frees a slot (documented limit); Prometheus, on the
    keep-alive connection it already holds (1 s interval < 10 s idle
    timeout), keeps scraping."""
    agent = start_agent(_agent_args(), ready_timeout=READY_TIMEOUT)
    prom = Prometheus(_scrape_job(agent.listen))
    prom.wait_query('up{job="aion"}', _up_is_1, 15)
    time.sleep(2.0)
    t0 = time.monotonic()
    atks = []
    try:
        for i in range(16):
            atks.append(Attack(agent.port, "127.0.0.%d" % (10 + i), idle=PER_IP_LIMIT, slow=0))
        time.sleep(1.0)
        held = sum(len(a.stats()["idle_open"]) for a in atks)
        lib.log("16 addresses hold %d connections" % held)
        c = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=IDLE_TIMEOUT + 5)
        t1 = time.monotonic()
        c.request("GET", "/metrics")
        r = c.getresponse()
        waited = time.monotonic() - t1
        body = r.read()
        c.close()
        lib.log("a new connection at the global limit waited %.1f s for %d" % (waited, r.status))
        if r.status != 200 or b"aion_agent_series" not in body:
            fail("new connection at the global limit: %d %r" % (r.status, body[:100]))
        # It waited for the idle timeout of the first attackers' connections.
        if waited < IDLE_TIMEOUT - 1 - (t1 - t0):
            fail("a new connection was served after %.1f s while 256 connections were held; "
                 "expected it to wait for the idle timeout (%.0f s)" % (waited, IDLE_TIMEOUT))
        time.sleep(max(0.0, 16.0 - (time.monotonic() - t0)))
        _check_every_scrape_ok(prom, 15)
    finally:
        for a in atks:
            a.stop()
    prom.stop()
    agent.stop()


def _raw(port, data, timeout=5.0):
    """Send data on a new connection; everything read until the agent
    closes it (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the agent answered and closed before the end
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return out, True
                out += d
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True


def _status(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        fail("not an HTTP response: %r" % resp[:200])


def test_endpoint_malformed_requests():
    agent = start_agent(_agent_args(), ready_timeout=READY_TIMEOUT)
    port = agent.port
    # Headers up to the 32 KiB per-connection memory are served...
    resp, closed = _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        b"X-Big: " + b"a" * 16000 + b"\r\n\r\n")
    if _status(resp) != 200:
        fail("16 KB of headers: %r" % resp[:200])
    # ...beyond, 431 (headers) or 414 (URI), and the connection is closed.
    resp, closed = _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    if _status(resp) != 431 or not closed:
        fail("40 KB header: want 431 and a close, got %r (closed %s)" % (resp[:100], closed))
    resp, closed = _raw(port, b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    if _status(resp) != 414 or not closed:
        fail("40 KB URI: want 414 and a close, got %r (closed %s)" % (resp[:100], closed))
    # Endless headers with no end: closed at the limit, not buffered.
    resp, closed = _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 20000)
    if _status(resp) != 431 or not closed:
        fail("160 KB of small headers: want 431 and a close, got %r" % resp[:100])
    # Only GET and HEAD; a body is not read.
    for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        resp, _ = _raw(port, ("%s /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "Content-Length: 5\r\n\r\nhello" % m).encode())
        if _status(resp) != 405 or b"\r\nAllow: GET, HEAD\r\n" not in resp:
            fail("%s: want 405 with Allow: GET, HEAD, got %r" % (m, resp[:300]))
    resp, _ = _raw(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if _status(resp) != 200 or not resp.endswith(b"\r\n\r\n"):
        fail("HEAD: want 200 without a body, got %r" % resp[-200:])
    # HTTP/1.0: answered, then closed (no keep-alive asked).
    resp, closed = _raw(port, b"GET /metrics HTTP/1.0\r\n\r\n")
    if _status(resp) != 200 or not closed or b"aion_agent_series" not in resp:
        fail("HTTP/1.0: want 200 with the metrics and a close, got %r (closed %s)"
             % (resp[:200], closed))
    # Garbage and a bad version.
    resp, closed = _raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    if not closed or (resp and _status(resp) != 400):
        fail("garbage: want 400 or a close, got %r" % resp[:200])
    resp, closed = _raw(port, b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n")
    if _status(resp) != 505:
        fail("HTTP/9.9: want 505, got %r" % resp[:200])
    # Pipelined requests are answered in order on one connection.
    got = lib.pipelined(port, ["/healthz", "/metrics", "/nope", "/readyz"])
    codes = [c for c, _ in got]
    if codes != [200, 200, 404, 200] or got[0][1] != b"ok\n" or b"aion_agent_series" not in got[1][1]:
        fail("pipelined /healthz /metrics /nope /readyz: %s" % [(c, b[:40]) for c, b in got])
    # Keep-alive: sequential requests on one connection, a GET with a
    # body (skipped) among them.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        got = []
        for req in (lib.raw_request("/metrics"),
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + b"b" * 70000,
                    lib.raw_request("/readyz")):
            s.sendall(req)
            got += lib.read_responses(s, 1)
        if [c for c, _ in got] != [200, 200, 200] or got[1][1] != b"ok\n":
            fail("keep-alive /metrics, GET /healthz with a 70 KB body, /readyz: %s"
                 % [(c, b[:40]) for c, b in got])
    code, _ = _fresh_get(port)
    if code != 200:
        fail("/metrics after the malformed requests: %r" % code)
    agent.stop()


# --------------------------------------------------------------------------
# --web-config: HTTPS and basic auth

def _make_tls(tmp):
    openssl = lib.need_tool("openssl")
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(tmp, "server.key"),
                        "-out", os.path.join(tmp, "server.crt"), "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode:
        fail("openssl req: %s" % r.stdout.decode()[-500:])
    os.chmod(os.path.join(tmp, "server.key"), 0o600)
    return os.path.join(tmp, "server.crt")


def _bcrypt(user, password):
    htpasswd = lib.need_tool("htpasswd")
    r = subprocess.run([htpasswd, "-nbBC", "10", user, password], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    line = r.stdout.decode().strip()
    if r.returncode or not line.startswith(user + ":$2y$"):
        fail("htpasswd -nbBC 10: %r" % line)
    return line.split(":", 1)[1]


class TlsAgent(lib.Agent):
    """The agent with --web-config; ready when /readyz answers 200 over
    HTTPS (the probes need no credentials)."""

    def __init__(self, args, cafile, ready_timeout=20.0):
        self.tmp = lib.mkdtemp("agent")
        self.port = free_port()
        self.listen = "127.0.0.1:%d" % self.port
        self.args = list(args) + ["--listen", self.listen]
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.proc = lib.spawn([lib.AGENT] + self.args, stdout=self._out, stderr=self._err)
        lib._agents.append(self)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                fail("agent exited with %d before /readyz was 200: %s"
                     % (self.proc.returncode, self.stderr_text()[-2000:]))
            st, _, _ = self.https("/readyz", timeout=1.0)
            if st == 200:
                break
            if time.monotonic() > deadline:
                fail("agent not ready over HTTPS within %.0fs (last: %r): %s"
                     % (ready_timeout, st, self.stderr_text()[-2000:]))
            time.sleep(0.1)

    def https(self, path, auth=None, timeout=5.0, src=None):
        """(status, headers, body), or (None, exception, b"")."""
        import base64
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                        context=self.ctx,
                                        source_address=(src, 0) if src else None)
        hdrs = {}
        if auth:
            hdrs["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()
        try:
            c.request("GET", path, headers=hdrs)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        except (OSError, http.client.HTTPException) as e:
            return None, e, b""
        finally:
            c.close()


def _web_setup():
    tmp = lib.mkdtemp("web")
    cafile = _make_tls(tmp)
    h = _bcrypt("prom", "s3cret pass")
    web = os.path.join(tmp, "web.yml")
    with open(web, "w") as f:
        # relative paths: resolved from the web config's directory
        f.write("# aion endpoint\ntls_server_config:\n  cert_file: server.crt\n"
                "  key_file: 'server.key'\nbasic_auth_users:\n  prom: \"%s\"\n" % h)
    return tmp, cafile, web


def test_endpoint_tls_basic_auth():
    tmp, cafile, web = _web_setup()
    # From another directory: the cert and key are found next to web.yml.
    agent = TlsAgent(_agent_args() + ["--web-config", web], cafile, ready_timeout=READY_TIMEOUT)
    good = ("prom", "s3cret pass")
    st, hdrs, _ = agent.https("/metrics")
    if st != 401 or hdrs.get("WWW-Authenticate") != 'Basic realm="aion"':
        fail("no credentials: want 401 with WWW-Authenticate: Basic realm=\"aion\", got %r %r"
             % (st, hdrs))
    for auth in (("prom", "wrong"), ("nobody", "s3cret pass"), ("prom", "s3cret pass "),
                 ("prom", "")):
        st, _, _ = agent.https("/metrics", auth)
        if st != 401:
            fail("credentials %r: want 401, got %r" % (auth, st))
        time.sleep(1.0 / BCRYPT_PER_S)   # stay within the bcrypt budget here
    st, _, body = agent.https("/metrics", good)
    if st != 200 or b"aion_agent_series" not in body:
        fail("right credentials: want 200 with the metrics, got %r %r" % (st, body[:200]))
    for path in ("/", "/nope"):
        st, _, _ = agent.https(path)
        if st != 401:
            fail("%s without credentials: want 401, got %r" % (path, st))
    # Probes stay open (kubelet sends no credentials).
    for path, want in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        st, _, body = agent.https(path)
        if st != 200 or body != want:
            fail("%s without credentials: want 200 %r, got %r %r" % (path, want, st, body))
    # curl agrees, with --cacert of the generated certificate.
    curl = lib.need_tool("curl")
    for args, want in ((["-u", "prom:s3cret pass"], "200"), ([], "401"), (["-u", "prom:x"], "401")):
        r = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cafile,
                            "https://127.0.0.1:%d/metrics" % agent.port] + args,
                           stdout=subprocess.PIPE, timeout=20)
        if r.stdout.decode() != want:
            fail("curl %s: want %s, got %r" % (" ".join(args), want, r.stdout))
    # Plain HTTP to the HTTPS port gets no HTTP answer.
    r = subprocess.run([curl, "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/metrics" % agent.port], stdout=subprocess.PIPE, timeout=20)
    if r.returncode == 0 or r.stdout.decode() != "000":
        fail("plain HTTP to the HTTPS port: curl rc %d, status %r" % (r.returncode, r.stdout))

    # A real Prometheus over HTTPS with basic auth.
    prom = Prometheus(_scrape_job(agent.listen, scheme="https", tls_config={"ca_file": cafile},
                                  basic_auth={"username": good[0], "password": good[1]}))
    prom.wait_query('up{job="aion"}', _up_is_1, 15)
    prom.wait_query('aion_agent_series{job="aion"}', lambda r: len(r) >= 1, 10)

    # A flood of wrong passwords from 8 clients: Prometheus' verified
    # credentials are cached, so its scrapes keep succeeding; bcrypt runs
    # at most BCRYPT_PER_S times a second (beyond: 429).
    stop = threading.Event()
    codes = {}
    lock = threading.Lock()

    def flood(i):
        while not stop.is_set():
            st, _, _ = agent.https("/metrics", ("prom", "guess%d" % i), src=ATTACKER)
            with lock:
                codes[st] = codes.get(st, 0) + 1

    t0 = time.monotonic()
    th = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(8)]
    for t in th:
        t.start()
    time.sleep(12.0)
    stop.set()
    for t in th:
        t.join(10)
    dt = time.monotonic() - t0
    lib.log("wrong-password flood for %.1fs: %s" % (dt, codes))
    _check_every_scrape_ok(prom, 10)
    if set(codes) - {401, 429} or not codes.get(429):
        fail("the flood got %s; want 401 (bcrypt said no) and 429 (over the budget) only" % codes)
    # Every 401 cost one bcrypt: at most the budget (+ the reserve).
    if codes.get(401, 0) > BCRYPT_PER_S * dt + BCRYPT_PER_S + 1:
        fail("%d bcrypt checks in %.1fs (want at most %d a second)" % (codes[401], dt, BCRYPT_PER_S))
    st, _, _ = agent.https("/metrics", good)
    if st != 200:
        fail("right credentials after the flood: %r" % st)
    prom.stop()
    agent.stop()


def _run_agent(args, env=None, timeout=20):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([lib.AGENT] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=e)
    return r.returncode, r.stderr.decode()


def test_endpoint_bad_web_config():
    tmp = lib.mkdtemp("web")
    h = _bcrypt("prom", "pw")
    cases = [
        ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
         "4: tls_server_config: client_auth_type is not supported by aion"),
        ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca.pem\n",
         "4: tls_server_config: client_ca_file is not supported by aion"),
        ("# x\nhttp_server_config:\n  http2: false\n", "2: http_server_config is not supported by aion"),
        ("tls_server_config:\n  cert_file: c\n", "1: tls_server_config needs both cert_file and key_file"),
        ("basic_auth_users:\n  prom: pw\n", "2: basic_auth_users: the password of 'prom' is not a bcrypt hash"),
        ("basic_auth_users:\n  prom: %s\n\tother: %s\n" % (h, h), "3: a tab in the indentation"),
        ("basic_auth_users: {prom: x}\n", "1: basic_auth_users takes indented `key: value` lines"),
    ]
    port = str(free_port())
    for i, (text, want) in enumerate(cases):
        path = os.path.join(tmp, "bad%d.yml" % i)
        with open(path, "w") as f:
            f.write(text)
        rc, err = _run_agent(["--port", port, "--web-config", path, "--listen", "127.0.0.1:%s" % free_port()])
        line = "aion-agent: web config %s:%s" % (path, want)
        if rc != 2 or not err.startswith(line) or err.count("\n") != 1:
            fail("web config %r: want exit 2 and one line starting %r, got %d %r" % (text, line, rc, err))
    # The same through AION_WEB_CONFIG and the config file's web_config.
    path = os.path.join(tmp, "bad0.yml")
    rc, err = _run_agent(["--port", port], env={"AION_WEB_CONFIG": path})
    if rc != 2 or "bad0.yml:4: tls_server_config: client_auth_type" not in err:
        fail("AION_WEB_CONFIG with a bad file: %d %r" % (rc, err))
    conf = os.path.join(tmp, "aion.conf")
    with open(conf, "w") as f:
        f.write("web_config = %s\n" % path)
    rc, err = _run_agent(["--port", port, "--config", conf])
    if rc != 2 or "bad0.yml:4: tls_server_config: client_auth_type" not in err:
        fail("web_config in --config with a bad file: %d %r" % (rc, err))
    rc, err = _run_agent(["--port", port, "--web-config", os.path.join(tmp, "absent.yml")])
    if rc != 2 or err.count("\n") != 1 or "absent.yml: No such file or directory" not in err:
        fail("missing web config: want exit 2 and one line, got %d %r" % (rc, err))
    # A missing or bad certificate: exit 1, one line naming the file.
    web = os.path.join(tmp, "web.yml")
    with open(web, "w") as f:
        f.write("tls_server_config:\n  cert_file: nocert.pem\n  key_file: nokey.pem\n")
    rc, err = _run_agent(["--port", port, "--web-config", web])
    want = "aion-agent: web config %s: cert_file %s/nocert.pem: No such file or directory\n" % (web, tmp)
    if rc != 1 or err != want:
        fail("missing cert_file: want exit 1 and %r, got %d %r" % (want, rc, err))
    with open(os.path.join(tmp, "nocert.pem"), "w") as f:
        f.write("not a certificate\n")
    rc, err = _run_agent(["--port", port, "--web-config", web])
    if rc != 1 or err.count("\n") != 1 or "no PEM certificate" not in err:
        fail("bad cert_file: want exit 1 and one line, got %d %r" % (rc, err))
    # A certificate and a key that do not match: GnuTLS refuses them.
    _make_tls(tmp)
    other = os.path.join(tmp, "other")
    os.mkdir(other)
    _make_tls(other)
    with open(web, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: other/server.key\n")
    rc, err = _run_agent(["--port", port, "--web-config", web, "--listen", "127.0.0.1:%d" % free_port()])
    if rc != 1 or err.count("\n") != 1 or "rejected the certificate or key" not in err:
        fail("mismatched cert and key: want exit 1 and one line, got %d %r" % (rc, err))

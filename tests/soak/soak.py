#!/usr/bin/python3
"""aion soak test (Python 3 stdlib; run as root; loopback only).

  /usr/bin/python3 tests/soak/soak.py --agent build/aion-agent [--duration S] [-v]

Phase 1 (soak, --duration seconds of load): one nginx traced by --pid, one
traced parent process running short-lived curl children, and untraced
client threads in this script, all at once:

  - high-cardinality paths over keep-alive connections: unique numeric ids
    and UUIDs (which the agent folds into /users/{id} and /orders/{id}) and
    unique non-id paths (/u/<letters>), far more than --max-routes, which
    must end up in http_route="/*" and aion_agent_series_overflow_total;
  - connection churn: a new TCP connection for every request (Connection:
    close), many short-lived connections;
  - process churn: the traced parent forks a curl per request, so targets
    come and go all the time (server and client side are both measured).

Every few seconds it samples the agent's VmRSS, aion_agent_map_entries,
aion_agent_series and the loss and error counters. Asserts (see README.md):
counts per label set equal what the clients sent and got, RSS flat after
warm-up, map entries bounded and back to their baseline, series within the
budget, nothing lost, no parse errors.

Phase 2 (series): a fresh agent with --max-routes above --series, that many
distinct routes (each one request), and the agent's VmRSS must stay below
--rss-limit-mb (30 MB).

The last line is `soak: PASS ...` or `soak: FAIL ...`; exit status 0 only
on PASS. Every process started is stopped by pid (lib.cleanup).
"""
import argparse
import array
import bisect
import http.client
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.dont_write_bytecode = True

import lib  # noqa: E402
import run as itrun  # noqa: E402  (preflight: root, tracefs, BTF)
from lib import fail, count, select_series  # noqa: E402

CLIENT = "http_client_request_duration_seconds"
MAPS = ("targets", "conns", "nonsock", "socks")
NGINX_SOAK = r"""
access_log off;
location = /ok { return 200 "ok\n"; }
location = /boom { return 503; }
location = /missing { return 404; }
location / { return 200 "ok\n"; }
"""
# Routes made before the load so that they hold budget slots of their own.
FIXED = ["/ok", "/boom", "/missing", "/users/{id}", "/orders/{id}"]
LETTERS = "ghijklmnopqrstuvwxyz"  # no hex digits, no digits: never an id


def say(msg):
    sys.stdout.write("soak: %s\n" % msg)
    sys.stdout.flush()


class Ids:
    """Unique numbers for paths, shared by all client threads."""

    def __init__(self):
        self._n = 0
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            self._n += 1
            return self._n


def unique_word(n):
    """A non-id path segment unique for n: letters only, 8 of them."""
    out = []
    for _ in range(8):
        out.append(LETTERS[n % len(LETTERS)])
        n //= len(LETTERS)
    return "".join(out)


def unique_number(word):
    """The n of unique_word(n), or None."""
    if len(word) != 8 or any(c not in LETTERS for c in word):
        return None
    n = 0
    for c in reversed(word):
        n = n * len(LETTERS) + LETTERS.index(c)
    return n


def pick_path(i, ids):
    """(path, route the agent must report, the number of a unique path or
    None)."""
    k = i % 6
    n = ids.next()
    if k == 0:
        return "/users/%d" % (1000000 + n), "/users/{id}", None
    if k == 1:
        return "/orders/%s" % uuid.UUID(int=random.getrandbits(128), version=4), "/orders/{id}", None
    if k == 2:
        return "/u/" + unique_word(n), None, n
    if k == 3:
        return "/ok", "/ok", None
    if k == 4:
        return "/boom", "/boom", None
    return "/missing", "/missing", None


class Driver(threading.Thread):
    """One client thread: keep-alive (one connection for all its requests)
    or churn (a new connection per request). Counts its own responses."""

    def __init__(self, port, keepalive, ids, stop):
        super().__init__(daemon=True)
        self.port, self.keepalive, self.ids, self.stop = port, keepalive, ids, stop
        self.got = {}          # (route, status) -> n
        self.unique = array.array("Q")  # numbers of the unique paths answered 200 (8 bytes each: an hour fits)
        self.sent = 0
        self.error = None

    def _one_keepalive(self, conn, path):
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status

    def _one_churn(self, path):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        finally:
            s.close()
        line = data.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[1].isdigit():
            raise RuntimeError("bad response to %s: %r" % (path, data[:200]))
        return int(line[1])

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10) if self.keepalive else None
        i = random.randrange(6)
        try:
            while not self.stop.is_set():
                path, route, uniq = pick_path(i, self.ids)
                i += 1
                status = self._one_keepalive(conn, path) if conn else self._one_churn(path)
                self.sent += 1
                if uniq is not None:
                    if status != 200:
                        raise RuntimeError("%s answered %d" % (path, status))
                    self.unique.append(uniq)
                else:
                    self.got[(route, status)] = self.got.get((route, status), 0) + 1
        except Exception as e:  # reported by the main thread
            self.error = "%s client: %r" % ("keep-alive" if self.keepalive else "churn", e)
        finally:
            if conn:
                conn.close()


def metric0(samples, name, **labels):
    v = lib.metric(samples, name, **labels)
    if v is None:
        fail("%s%s missing from /metrics" % (name, labels))
    return v


def snapshot(agent):
    s = agent.scrape()
    snap = {
        "rss_kb": lib.vm_rss_kb(agent.proc.pid),
        "series": metric0(s, "aion_agent_series"),
        "lost": metric0(s, "aion_agent_events_lost_total"),
        "proc_lost": metric0(s, "aion_agent_process_events_lost_total"),
        "parse_errors": metric0(s, "aion_agent_parse_errors_total"),
        "update_errors": lib.metric(s, "aion_agent_map_update_errors_total") or 0,
        "dropped": lib.metric(s, "aion_agent_requests_dropped_total") or 0,
        "overflow": metric0(s, lib.OVERFLOW, metric=lib.HIST),
    }
    for m in MAPS:
        snap[m] = metric0(s, "aion_agent_map_entries", map=m)
    return snap, s


def fmt_snap(t, sn):
    return ("t=%5.0fs rss=%6d kB series=%4d targets=%3d conns=%3d socks=%3d nonsock=%4d lost=%d"
            % (t, sn["rss_kb"], sn["series"], sn["targets"], sn["conns"], sn["socks"], sn["nonsock"],
               sn["lost"]))


def server_table(samples, port):
    """(route, status, error_type) -> count of the nginx series."""
    out = {}
    for labels, v in select_series(samples, lib.HIST + "_count", server_port=str(port)):
        if labels.get("http_request_method") != "GET" or labels.get("url_scheme") != "http":
            fail("unexpected series %s" % labels)
        k = (labels.get("http_route"), int(labels.get("http_response_status_code")), labels.get("error_type"))
        out[k] = out.get(k, 0) + v
    return out


def wait_stable(agent, pred, timeout, what):
    """Scrape until pred(samples) is true twice 1.2 s apart (two walks of
    the agent's tables, which it repeats at most once a second); the
    samples."""
    last = [None]

    def ok():
        a = agent.scrape()
        if not pred(a):
            last[0] = a
            return None
        time.sleep(1.2)
        b = agent.scrape()
        last[0] = b
        return pred(b) and b
    return lib.wait_for(ok, timeout, interval=0.3, what=lambda: what(last[0]))


def phase_soak(a):
    max_routes = a.max_routes
    ng = lib.start_nginx(NGINX_SOAK)
    parent = lib.spawn([lib.PYTHON, os.path.join(HERE, "churn_parent.py"), str(ng.port)],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    r, _, _ = select.select([parent.stdout], [], [], 10)
    if not r or parent.stdout.readline().strip() != b"READY":
        fail("churn_parent.py did not start")
    agent = lib.start_agent(["--pid", str(ng.pid), "--pid", str(parent.pid), "--max-routes", str(max_routes)],
                            ready_timeout=60)
    port = ng.port

    # The fixed routes take their budget slots first (one keep-alive
    # connection, then closed), then the baseline of the maps is taken.
    expected = {}
    for path, route in (("/ok", "/ok"), ("/boom", "/boom"), ("/missing", "/missing"),
                        ("/users/1", "/users/{id}"), ("/orders/%s" % uuid.uuid4(), "/orders/{id}")):
        st = lib.keepalive_requests(port, [path])[0]
        expected[(route, st)] = expected.get((route, st), 0) + 1
    agent.wait_count(len(FIXED), server_port=str(port), timeout=10)
    routes = {k[0] for k in expected}
    if routes != set(FIXED):
        fail("warm-up routes %s" % routes)
    parent.stdin.write(b"ping\n")
    parent.stdin.flush()
    r, _, _ = select.select([parent.stdout], [], [], 10)
    if not r or parent.stdout.readline().strip() != b"pong":
        fail("churn_parent.py did not answer")
    # The agent walks its tables at most once a second: two snapshots more
    # than a second apart are two walks. The warm-up's last writes (nginx's
    # log) may land in the first, so up to three tries.
    base, _ = snapshot(agent)
    for _ in range(3):
        time.sleep(1.2)
        base2, _ = snapshot(agent)
        if all(base[m] == base2[m] for m in MAPS):
            break
        base = base2
    for m in MAPS:
        if base[m] != base2[m]:
            fail("map %s not stable before the load: %d then %d" % (m, base[m], base2[m]))
    say("baseline " + fmt_snap(0, base))

    stop = threading.Event()
    ids = Ids()
    drivers = [Driver(port, True, ids, stop) for _ in range(a.keepalive)] + \
              [Driver(port, False, ids, stop) for _ in range(a.churn)]
    t0 = time.monotonic()
    for d in drivers:
        d.start()
    parent.stdin.write(b"go\n")
    parent.stdin.flush()
    samples = []
    next_print = 0
    while True:
        t = time.monotonic() - t0
        if t >= a.duration:
            break
        sn, _ = snapshot(agent)
        samples.append((t, sn))
        if t >= next_print:
            say(fmt_snap(t, sn))
            next_print = t + max(10.0, a.duration / 12)
        for d in drivers:
            if d.error:
                stop.set()
                fail(d.error)
        if parent.poll() is not None:
            stop.set()
            fail("churn parent exited early (%s): %s" % (parent.returncode, parent.stdout.read()[-500:]))
        time.sleep(max(0.0, min(a.sample, a.duration - (time.monotonic() - t0))))
    stop.set()
    parent.stdin.write(b"stop\n")
    parent.stdin.flush()
    r, _, _ = select.select([parent.stdout], [], [], 60)
    line = parent.stdout.readline() if r else b""
    load_s = time.monotonic() - t0
    for d in drivers:
        d.join(30)
        if d.is_alive():
            fail("a client thread did not finish its last request within 30 s")
        if d.error:
            fail(d.error)
    try:
        churn = json.loads(line)
    except ValueError:
        fail("churn parent: %r" % line)
    if "error" in churn:
        fail("churn parent: " + churn["error"])

    # What the clients sent and got, per label set.
    unique = array.array("Q")
    for d in drivers:
        for k, v in d.got.items():
            expected[k] = expected.get(k, 0) + v
        unique.extend(d.unique)
    unique = array.array("Q", sorted(unique))
    for k, v in churn["server"].items():
        route, st = k.rsplit(" ", 1)
        expected[(route, int(st))] = expected.get((route, int(st)), 0) + v
    sent = sum(expected.values()) + len(unique)
    if any(unique[i] == unique[i + 1] for i in range(len(unique) - 1)):
        fail("unique paths were not unique")
    ka = sum(d.sent for d in drivers if d.keepalive)
    ch = sum(d.sent for d in drivers if not d.keepalive)
    say("load: %d requests in %.0f s (%.0f/s): %d keep-alive, %d on new connections, %d by %d curl processes; "
        "%d unique non-id paths" % (sent, load_s, sent / load_s, ka, ch, churn["runs"], churn["runs"], len(unique)))

    s = wait_stable(agent, lambda x: count(x, server_port=str(port)) == sent, 30,
                    lambda x: "nginx series count %g, clients sent %d" % (count(x or {}, server_port=str(port)), sent))
    got = server_table(s, port)
    # Unique non-id paths: the first (budget - fixed routes) get a route each
    # (count 1), the rest go to /*.
    def sent_unique(route):
        n = unique_number(route[3:]) if route.startswith("/u/") else None
        i = bisect.bisect_left(unique, n) if n is not None else len(unique)
        return i < len(unique) and unique[i] == n
    admitted = {k[0]: v for k, v in got.items() if sent_unique(k[0])}
    star = got.pop(("/*", 200, ""), 0)
    for k in [k for k in got if sent_unique(k[0])]:
        if k[1:] != (200, "") or got[k] != 1:
            fail("unique route %s counted %g (expected 1, status 200)" % (k, got[k]))
        del got[k]
    want_admitted = min(len(unique), max_routes - len(FIXED))
    if len(admitted) != want_admitted:
        fail("%d unique routes have series of their own, expected %d (--max-routes %d, %d fixed routes)"
             % (len(admitted), want_admitted, max_routes, len(FIXED)))
    if star != len(unique) - want_admitted:
        fail('http_route="/*": %g, expected %d unique paths beyond the budget' % (star, len(unique) - want_admitted))
    overflow = metric0(s, lib.OVERFLOW, metric=lib.HIST)
    if overflow != star:
        fail('%s{metric="%s"} %g != http_route="/*" count %g' % (lib.OVERFLOW, lib.HIST, overflow, star))
    want = {(r, st, str(st) if st >= 500 else ""): v for (r, st), v in expected.items()}
    if got != want:
        diff = sorted(set(got) | set(want))
        fail("nginx series differ from what the clients got:\n" + "\n".join(
            "  %s: agent %s, clients %s" % (k, got.get(k), want.get(k)) for k in diff if got.get(k) != want.get(k)))
    # The curl processes' own client series.
    cgot = {}
    for labels, v in select_series(s, CLIENT + "_count", server_port=str(port)):
        if labels.get("service_name") != "curl":
            fail("client series of %s (only curl makes requests from a traced process)" % labels)
        st = labels.get("http_response_status_code")
        cgot[st] = cgot.get(st, 0) + v
    cwant = {k: float(v) for k, v in churn["client"].items()}
    if cgot != cwant:
        fail("curl's client series %s != what the curl processes got %s" % (cgot, cwant))
    say("counts: %d label sets equal to the clients' (%d in /*, %d unique routes admitted, %d curl requests)"
        % (len(want) + len(admitted), star, len(admitted), churn["runs"]))

    # Maps back to their baseline once the churn stopped (the parent idles).
    def maps_back(x):
        return all(metric0(x, "aion_agent_map_entries", map=m) == base[m] for m in MAPS)
    wait_stable(agent, maps_back, 15, lambda x: "maps not back to their baseline %s: %s" % (
        {m: base[m] for m in MAPS}, {m: lib.metric(x or {}, "aion_agent_map_entries", map=m) for m in MAPS}))
    end, _ = snapshot(agent)
    say("after   " + fmt_snap(load_s, end))

    # Counters that must not move.
    for k in ("lost", "proc_lost", "parse_errors", "update_errors", "dropped"):
        if end[k] != 0:
            fail("%s is %g after the soak (expected 0)" % (k, end[k]))
    # Series: the budget is (max_routes + the /* route) label sets for
    # nginx plus one per curl status, each with 2 body-size companions.
    budget = 3 * (max_routes + 1 + len(churn["client"]))
    peak_series = max(sn["series"] for _, sn in samples + [(0, end)])
    if peak_series > budget:
        fail("aion_agent_series reached %d, over the budget %d" % (peak_series, budget))
    # Bounded maps during the load: every client holds at most one
    # connection at a time (both ends traced for curl).
    nconn = a.keepalive + a.churn + 4
    bounds = {"targets": base["targets"] + 4, "conns": base["conns"] + nconn,
              "socks": base["socks"] + nconn, "nonsock": base["nonsock"] + 64}
    for m, lim in bounds.items():
        peak = max(sn[m] for _, sn in samples)
        if peak > lim:
            fail("map %s reached %d during the load, over its bound %d (baseline %d)" % (m, peak, lim, base[m]))
    # RSS flat after warm-up: warm-up is the first third of the load (at
    # most 300 s); the rest is cut in two halves by time, and the highest
    # RSS of the second half must not exceed the highest of the first by
    # more than 1 MB.
    warm = min(a.duration / 3.0, 300.0)
    rest = [(t, sn) for t, sn in samples if t >= warm]
    mid = warm + (a.duration - warm) / 2.0
    first = [sn["rss_kb"] for t, sn in rest if t < mid]
    second = [sn["rss_kb"] for t, sn in rest if t >= mid]
    if len(first) < 2 or len(second) < 2:
        fail("too few samples after warm-up (%d, %d): give a longer --duration" % (len(first), len(second)))
    if max(second) > max(first) + 1024:
        fail("agent RSS grows: max %d kB in the second half after warm-up, %d kB in the first (+%d kB > 1 MB)"
             % (max(second), max(first), max(second) - max(first)))
    say("RSS: %d kB at start, max %d kB (first half after warm-up) / %d kB (second half), %d kB after; "
        "series peak %d (budget %d); maps peak %s" % (
            base["rss_kb"], max(first), max(second), end["rss_kb"], peak_series, budget,
            {m: max(sn[m] for _, sn in samples) for m in MAPS}))
    agent.stop()
    parent.stdin.close()
    lib.stop_proc(parent)
    ng.stop()
    lib.cleanup()
    return {"rate": sent / load_s, "sent": sent, "rss0": base["rss_kb"], "rss1": end["rss_kb"]}


def scrape_counts(agent, port):
    """route -> count of the nginx duration series, read line by line (the
    full parser would hold hundreds of thousands of samples)."""
    text = agent.scrape_text()
    prefix = lib.HIST + "_count{"
    want_port = 'server_port="%d"' % port
    out = {}
    series = None
    for line in text.split("\n"):
        if line.startswith("aion_agent_series "):
            series = float(line.split()[1])
        if not line.startswith(prefix) or want_port not in line:
            continue
        i = line.index('http_route="') + len('http_route="')
        route = line[i:line.index('"', i)]
        out[route] = out.get(route, 0) + float(line.rsplit(" ", 1)[1])
    return out, series, len(text)


def phase_series(a):
    """aion_agent_series counts histograms: every HTTP label set has its
    duration histogram and two body-size ones, so --series 10000 takes
    ceil(10000 / 3) routes. Each route gets --repeat requests, enough
    records (128 B each) to go round the 4 MiB ring buffer, whose pages are
    then all resident in the agent, as after any long run."""
    routes = -(-a.series // 3)
    ng = lib.start_nginx(NGINX_SOAK)
    agent = lib.start_agent(["--pid", str(ng.pid), "--max-routes", str(routes)], ready_timeout=60)
    rss0 = lib.vm_rss_kb(agent.proc.pid)
    paths = ["/r/" + unique_word(i) for i in range(routes)]
    threads = 4
    codes = []
    lock = threading.Lock()
    errors = []

    def worker(k):
        try:
            c = lib.keepalive_requests(ng.port, paths[k::threads] * a.repeat, timeout=30)
            with lock:
                codes.extend(c)
        except Exception as e:  # noqa: reported below
            errors.append(repr(e))
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    n = routes * a.repeat
    if errors or codes.count(200) != n:
        fail("series phase: clients got %d x 200 of %d (%s)" % (codes.count(200), n, errors[:2]))
    dt = time.monotonic() - t0

    last = [None]

    def done():
        got, series, size = scrape_counts(agent, ng.port)
        last[0] = (got, series, size)
        return sum(got.values()) == n and (got, series, size)
    got, series, size = lib.wait_for(done, 60, interval=1.0, what=lambda: "series phase: %d of %d requests counted"
                                     % (sum((last[0] or ({},))[0].values()), n))
    if len(got) != routes or any(v != a.repeat for v in got.values()) or set(got) != set(paths):
        fail("series phase: %d routes (expected %d, each counted %d times)" % (len(got), routes, a.repeat))
    if series != 3 * routes:
        fail("aion_agent_series %s, expected %d (%d label sets x 3 histograms)" % (series, 3 * routes, routes))
    if series < a.series:
        fail("aion_agent_series %s below the --series %d asked for" % (series, a.series))
    time.sleep(1.0)
    rss = lib.vm_rss_kb(agent.proc.pid)
    with open("/proc/%d/status" % agent.proc.pid) as f:
        hwm = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
    say("series: %d routes x %d requests (%.0f/s) -> aion_agent_series %d; agent RSS %d kB before, %d kB after "
        "(peak VmHWM %d kB, while rendering a %.1f MB scrape)"
        % (routes, a.repeat, n / dt, series, rss0, rss, hwm, size / 1e6))
    if rss >= a.rss_limit_mb * 1024:
        fail("agent RSS %d kB with %d series, over the %d MB limit" % (rss, series, a.rss_limit_mb))
    agent.stop()
    ng.stop()
    lib.cleanup()
    return {"series": series, "rss_series": rss, "hwm_series": hwm}


class Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise Timeout()


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True, help="path to aion-agent")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load in phase 1 (120)")
    ap.add_argument("--max-routes", type=int, default=64, help="the agent's --max-routes in phase 1 (64)")
    ap.add_argument("--keepalive", type=int, default=2, help="keep-alive client threads (2)")
    ap.add_argument("--churn", type=int, default=2, help="new-connection-per-request client threads (2)")
    ap.add_argument("--sample", type=float, default=2.0, help="seconds between samples (2)")
    ap.add_argument("--series", type=int, default=10000, help="aion_agent_series to reach in phase 2 (10000)")
    ap.add_argument("--repeat", type=int, default=15, help="requests per route in phase 2 (15)")
    ap.add_argument("--rss-limit-mb", type=int, default=30, help="agent RSS limit in phase 2 (30)")
    ap.add_argument("--phase", choices=("all", "soak", "series"), default="all")
    ap.add_argument("-v", action="store_true", help="verbose: the agent's stderr on failure, progress")
    a = ap.parse_args()
    if a.duration < 30:
        ap.error("--duration must be at least 30 s (warm-up plus two halves of samples)")
    lib.AGENT = os.path.abspath(a.agent)
    lib.VERBOSE = a.v
    problems = itrun.preflight()
    if not os.access(lib.AGENT, os.X_OK):
        problems.append("agent binary %s is missing (run `make`)" % lib.AGENT)
    if not shutil.which("curl"):
        problems.append("curl is not installed (make deps)")
    if problems:
        say("FAIL preflight: " + "; ".join(problems))
        return 1
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _interrupt)
    res, reason = {}, None
    t0 = time.monotonic()
    try:
        if a.phase in ("all", "soak"):
            signal.setitimer(signal.ITIMER_REAL, a.duration + 180)
            res.update(phase_soak(a))
        if a.phase in ("all", "series"):
            signal.setitimer(signal.ITIMER_REAL, 300)
            res.update(phase_series(a))
    except Timeout:
        reason = "timed out"
    except KeyboardInterrupt:
        reason = "interrupted"
    except (lib.TestFailure, AssertionError) as e:
        reason = str(e)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if reason:
            for title, text in lib.agent_stderr_dump():
                lines = text.rstrip("\n").split("\n")
                say("%s stderr (last %d lines):" % (title, 200 if a.v else 15))
                for l in lines[-(200 if a.v else 15):]:
                    say("  | " + l)
        lib.cleanup()
    if reason:
        say("FAIL %s (%.0f s)" % (reason, time.monotonic() - t0))
        return 1
    say("PASS %s (%.0f s)" % (", ".join("%s=%s" % (k, round(v) if isinstance(v, float) else v)
                                       for k, v in sorted(res.items())), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

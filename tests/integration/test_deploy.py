"""The shipped Prometheus files (deploy/prometheus) against a real Prometheus
server scraping the real agent.

The agent traces a Python HTTP server ("web"), the curl that calls it
("loadgen"), PostgreSQL 15 ("orders-db") and the psql that queries it
("orders-app"). Prometheus (Debian's /usr/bin/prometheus, on loopback in its
own temp folder) runs the job of deploy/prometheus/prometheus.yml with the
agent's port put in its targets, a 1 s scrape and evaluation interval, and
the shipped rule files unchanged.

Traffic goes in two phases: a tenth of it before Prometheus starts, so that
every series exists from the first scrape, and the rest while it scrapes.
Then:
- the raw counts Prometheus holds equal what was sent, per series;
- the error-ratio rules equal errors / requests of phase two exactly (every
  count series grew tenfold from its first sample, so rate()'s
  extrapolation, the same for all of them, cancels in the ratio);
- p95 and p99 equal what the slow requests (0.3 s, bucket 0.25..0.5) alone
  decide: 0.25 + 0.25 * (rank - 90) / 10;
- every rate and quantile rule equals what this file computes from the raw
  samples Prometheus holds at the rule's evaluation time, with rate()'s
  documented extrapolation and histogram_quantile()'s interpolation written
  out here;
- the alerts that should be pending are, and no other;
- every panel of deploy/grafana/aion-red.json parses and returns data.
"""
import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse

import yaml

import lib
from lib import fail, log, start_agent
from prom import Prometheus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
RULES = [os.path.join(DEPLOY, "prometheus", "rules", f)
         for f in ("aion-recording.rules.yml", "aion-alerts.rules.yml")]

# per phase-one unit; phase two is ten times as much
FAST, SLOW, ERR = 8, 1, 1
SLOW_MS = 300


def _scrape_job(agent_port):
    """The shipped plain-host job with the agent's address as its target."""
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
        conf = yaml.safe_load(f)
    jobs = [j for j in conf["scrape_configs"] if j["job_name"] == "aion-agent"]
    if len(jobs) != 1:
        fail("deploy/prometheus/prometheus.yml has no single job aion-agent: %s" % conf["scrape_configs"])
    job = dict(jobs[0])
    job["static_configs"] = [{"targets": ["127.0.0.1:%d" % agent_port]}]
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    for f in conf.get("rule_files", []):
        if os.path.basename(f) not in [os.path.basename(r) for r in RULES]:
            fail("prometheus.yml loads a rule file this test does not know: %s" % f)
    return job


def _api(p, path, **params):
    return p._api(path + "?" + urllib.parse.urlencode(params))


def _query_at(p, expr, t):
    return _api(p, "/api/v1/query", query=expr, time="%.3f" % t)["result"]


# --- rate() and histogram_quantile() as Prometheus 2.x documents them -------

def _rate(points, t_ms, range_s=300):
    """points: [(t_ms, v)] of one series in (t - range, t]."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    prev = first_v
    for _, v in points[1:]:
        if v < prev:
            result += prev
        prev = v
    to_start = (first_t - (t_ms - range_s * 1000)) / 1000.0
    to_end = (t_ms - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    avg = sampled / (len(points) - 1)
    if result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        if to_zero < to_start:
            to_start = to_zero
    threshold = avg * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else avg / 2
    interval += to_end if to_end < threshold else avg / 2
    return result * (interval / sampled) / range_s


def _quantile(q, buckets):
    """buckets: {upper bound: cumulative rate}."""
    bs = sorted(buckets.items())
    if not bs or not math.isinf(bs[-1][0]):
        return float("nan")
    total = bs[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    b = 0
    while b < len(bs) - 1 and bs[b][1] < rank:
        b += 1
    if b == len(bs) - 1:
        return bs[-2][0]
    start, count = 0.0, bs[b][1]
    if b > 0:
        start = bs[b - 1][0]
        count -= bs[b - 1][1]
        rank -= bs[b - 1][1]
    return start + (bs[b][0] - start) * (rank / count)


def _raw_rates(p, selector, t):
    """{labels tuple: rate} of every series of selector, from the raw
    samples in (t - 5m, t]."""
    out = {}
    for s in _query_at(p, "%s[5m]" % selector, t):
        pts = [(int(round(float(ts) * 1000)), float(v)) for ts, v in s["values"]]
        r = _rate(pts, int(round(t * 1000)))
        if r is not None:
            out[tuple(sorted(s["metric"].items()))] = r
    return out


def _last_rule_sample(p, rule, service):
    r = p.query('%s{service_name="%s"}[20s]' % (rule, service))
    if len(r) != 1 or not r[0]["values"]:
        fail("recording rule %s{service_name=%r}: no samples: %s" % (rule, service, json.dumps(r)))
    t, v = r[0]["values"][-1]
    return float(t), float(v)


def _close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _check_against_raw(p, rule, service, expected_fn):
    """The rule's latest sample equals expected_fn(t) computed from the raw
    samples at the rule's own evaluation time t. A scrape whose sample is
    dated before t but stored after the rule ran makes them differ once:
    then the next evaluation is compared (at most 3)."""
    tries = []
    for _ in range(3):
        t, v = _last_rule_sample(p, rule, service)
        want = expected_fn(t)
        if _close(v, want):
            return v
        tries.append("at %.3f: rule %r, from raw samples %r" % (t, v, want))
        log("%s{service_name=%r}: %s; comparing the next evaluation" % (rule, service, tries[-1]))
        time.sleep(1.5)
    fail("%s{service_name=%r} differs from the figure computed from the raw samples: %s"
         % (rule, service, "; ".join(tries)))


def _psql(pg, psql_bin, statements):
    argv = [psql_bin, "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-X", "-q"]
    for s in statements:
        argv += ["-c", s]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pg.env,
                       stdin=subprocess.DEVNULL, timeout=60)
    errors = r.stderr.decode().count("ERROR:  division by zero")
    want = sum(1 for s in statements if "1/0" in s)
    if errors != want:
        fail("psql: expected %d division-by-zero errors, got %d: %s"
             % (want, errors, r.stderr.decode()[-1000:]))


def _curl(curl_bin, urls):
    """One run of this test's own copy of curl (other tests' curls are not
    traced) fetching every url over one keep-alive connection."""
    argv = [curl_bin, "-sS", "--noproxy", "*", "--http1.1", "-w", "%{http_code}\\n"]
    for u in urls:
        argv += [u, "-o", "/dev/null"]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    codes = [int(x) for x in r.stdout.decode().split()]
    if r.returncode != 0 or len(codes) != len(urls):
        fail("curl failed (rc %d): %s" % (r.returncode, r.stderr.decode()[-500:]))
    return codes


def _traffic(web, pg, bins, k):
    """k units: 8k fast 200s, k slow 200s, k 500s over one curl connection;
    the same shape of SQL over one psql connection."""
    urls = ([web.url("/ok")] * (FAST * k) + [web.url("/sleep/%d" % SLOW_MS)] * (SLOW * k)
            + [web.url("/status/500")] * (ERR * k))
    codes = _curl(bins["curl"], urls)
    if sorted(codes) != sorted([200] * ((FAST + SLOW) * k) + [500] * (ERR * k)):
        fail("curl statuses: %s" % codes)
    _psql(pg, bins["psql"], ["select 1"] * (FAST * k) + ["select pg_sleep(%g)" % (SLOW_MS / 1000.0)] * (SLOW * k)
          + ["select 1/0"] * (ERR * k))


# (metric, service, {label: value of a series}: count after both phases)
def _expected_counts():
    n = 11  # phase one (1) + phase two (10)
    return [
        ("http_server_request_duration_seconds", "web",
         [({"http_route": "/ok", "error_type": ""}, FAST * n),
          ({"http_route": "/sleep/{id}", "error_type": ""}, SLOW * n),
          ({"http_route": "/status/{id}", "error_type": "500"}, ERR * n)]),
        ("http_client_request_duration_seconds", "loadgen",
         [({"http_response_status_code": "200", "error_type": ""}, (FAST + SLOW) * n),
          ({"http_response_status_code": "500", "error_type": "500"}, ERR * n)]),
        ("db_server_operation_duration_seconds", "orders-db",
         [({"db_operation_name": "SELECT", "error_type": ""}, (FAST + SLOW) * n),
          ({"db_operation_name": "SELECT", "error_type": "22"}, ERR * n)]),
        ("db_client_operation_duration_seconds", "orders-app",
         [({"db_operation_name": "SELECT", "error_type": ""}, (FAST + SLOW) * n),
          ({"db_operation_name": "SELECT", "error_type": "22"}, ERR * n)]),
    ]


FAMILIES = [  # (histogram, service, rate rule, error-ratio rule)
    ("http_server_request_duration_seconds", "web",
     "service_name:http_server_requests:rate5m", "service_name:http_server_request_error_ratio:rate5m"),
    ("http_client_request_duration_seconds", "loadgen",
     "service_name:http_client_requests:rate5m", "service_name:http_client_request_error_ratio:rate5m"),
    ("db_server_operation_duration_seconds", "orders-db",
     "service_name:db_server_operations:rate5m", "service_name:db_server_operation_error_ratio:rate5m"),
    ("db_client_operation_duration_seconds", "orders-app",
     "service_name:db_client_operations:rate5m", "service_name:db_client_operation_error_ratio:rate5m"),
]


def _prom_counts(p, metric, service):
    out = []
    for s in p.query('%s_count{service_name="%s"}' % (metric, service)):
        out.append((s["metric"], float(s["value"][1])))
    return out


def _match(m, want):
    return all(m.get(k, "") == v for k, v in want.items())


def _counts_ok(p, metric, service, series):
    got = _prom_counts(p, metric, service)
    if len(got) != len(series):
        return False, got
    for want, n in series:
        hits = [v for m, v in got if _match(m, want)]
        if hits != [n]:
            return False, got
    return True, got


def _wait_counts(p, factor, timeout=30.0):
    """Every series of _expected_counts() at factor/11 of its final count."""
    for metric, service, series in _expected_counts():
        want = [(w, n * factor // 11) for w, n in series]
        last = [None]

        def ok():
            good, last[0] = _counts_ok(p, metric, service, want)
            return good
        lib.wait_for(ok, timeout, 0.5, what=lambda: "prometheus: %s_count of %s: expected %s, got %s"
                     % (metric, service, want, [(m, v) for m, v in (last[0] or [])]))


def test_deploy_prometheus_rules_and_dashboard():
    web = lib.start_python_server()
    pg = lib.Postgres()
    tmp = lib.mkdtemp("deploy")
    # private copies: the agent traces them by path, and no other test's
    # curl or psql
    bins = {}
    for name, src in (("curl", lib.need_tool("curl")), ("psql", lib.PG_BIN + "/psql")):
        bins[name] = os.path.join(tmp, name)
        shutil.copy2(os.path.realpath(src), bins[name])
    conf = os.path.join(tmp, "aion.conf")
    with open(conf, "w") as f:
        # no TLS here: its programs double the start-up, which counts
        # against the test's time on a busy machine
        f.write("tls = off\n\n"
                "[target]\npid = %d\nservice_name = web\n\n"
                "[target]\nport = %d\nservice_name = orders-db\n\n"
                "[target]\nexe = %s\nservice_name = loadgen\n\n"
                "[target]\nexe = %s\nservice_name = orders-app\n"
                % (web.pid, pg.port, bins["curl"], bins["psql"]))
    agent = start_agent(["--config", conf], ready_timeout=60)   # BPF verification on a busy machine

    _traffic(web, pg, bins, 1)
    # every series at its phase-one count in the agent before Prometheus
    # starts: all of them then begin at its first scrape, with the same
    # timestamps (what makes the error ratio exact)
    last = [None]

    def phase_one():
        last[0] = s = agent.scrape()
        for metric, service, series in _expected_counts():
            for want, n in series:
                if lib.count(s, metric, service_name=service, **want) != n // 11:
                    return False
        return True
    lib.wait_for(phase_one, 10, 0.1, what=lambda: "agent: phase one not counted:\n%s" % "\n".join(
        lib.fmt_series(last[0], m + "_count") for m, _, _ in _expected_counts()))

    p = Prometheus([_scrape_job(agent.port)], rule_files=RULES)
    p.wait_query('up{job="aion-agent"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1", 20)
    _wait_counts(p, 1)
    time.sleep(2.5)   # two more scrapes with phase one's values
    _traffic(web, pg, bins, 10)
    _wait_counts(p, 11)
    time.sleep(3.5)   # a few evaluations after the last change
    log("prometheus holds the sent counts: %s" % "; ".join(
        "%s %s" % (svc, [n for _, n in series]) for _, svc, series in _expected_counts()))

    # the raw data the rules read: every slow request in 0.25..0.5, the
    # rest below 0.25, per the buckets Prometheus scraped
    for metric, service, _, _ in FAMILIES:
        for le, want in (("0.25", (FAST + ERR) * 11), ("0.5", (FAST + SLOW + ERR) * 11)):
            got = sum(float(x["value"][1]) for x in p.query(
                'sum(%s_bucket{service_name="%s",le="%s"})' % (metric, service, le)))
            if got != want:
                fail("%s{service_name=%r} bucket le=%s: expected %d, got %g (a request "
                     "outside its latency class)" % (metric, service, le, want, got))

    figures = []
    for metric, service, rate_rule, ratio_rule in FAMILIES:
        # error ratio: exactly phase two's errors / requests
        t, ratio = _last_rule_sample(p, ratio_rule, service)
        want = ERR / float(FAST + SLOW + ERR)
        if not _close(ratio, want):
            fail("%s{service_name=%r} = %r, expected %r (%d errors in %d)"
                 % (ratio_rule, service, ratio, want, ERR * 10, (FAST + SLOW + ERR) * 10))
        # rate: from the raw samples at the rule's evaluation time
        rate = _check_against_raw(p, rate_rule, service, lambda t: sum(
            _raw_rates(p, '%s_count{service_name="%s"}' % (metric, service), t).values()))
        # quantiles
        qs = []
        for q in (0.50, 0.95, 0.99):
            rule = "service_name:%s:p%02d_5m" % (metric, int(q * 100))

            def from_raw(t, q=q):
                buckets = {}
                for labels, r in _raw_rates(p, '%s_bucket{service_name="%s"}' % (metric, service), t).items():
                    le = float(dict(labels)["le"])
                    buckets[le] = buckets.get(le, 0.0) + r
                return _quantile(q, buckets)
            v = _check_against_raw(p, rule, service, from_raw)
            if q > 0.9:
                # only the slow class decides: 0.25 + 0.25 * (q*100 - 90) / 10
                exact = 0.25 + 0.25 * (q * 100 - 90) / 10
                if not _close(v, exact):
                    fail("%s{service_name=%r} = %r, expected %r" % (rule, service, v, exact))
            qs.append(v)
        figures.append("%s: rate %.4f/s error ratio %g p50 %.4f p95 %g p99 %g"
                       % (service, rate, ratio, qs[0], qs[1], qs[2]))
    log("recording rules: " + "; ".join(figures))

    # alerts: 10% errors at > 0.1/s on the two server sides pend (for: 10m);
    # nothing else is pending or firing
    want = {("AionHighErrorRatio", "web", "http_server", "pending"),
            ("AionHighErrorRatio", "orders-db", "db_server", "pending")}
    got = set()

    def alerts_ok():
        got.clear()
        for a in _api(p, "/api/v1/alerts")["alerts"]:
            got.add((a["labels"]["alertname"], a["labels"].get("service_name"),
                     a["labels"].get("signal"), a["state"]))
        return got == want
    lib.wait_for(alerts_ok, 10, 0.5, what=lambda: "alerts: expected %s, got %s" % (sorted(want), sorted(got)))
    for a in _api(p, "/api/v1/rules", type="alert")["groups"]:
        for r in a["rules"]:
            if r.get("health") != "ok":
                fail("alert rule %s: health %s: %s" % (r["name"], r.get("health"), r.get("lastError")))

    # every Grafana panel: parses, and returns data ($service = All)
    with open(os.path.join(DEPLOY, "grafana", "aion-red.json")) as f:
        dash = json.load(f)
    n = 0
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$service", ".*").replace("$__rate_interval", "1m")
            r = p.query(expr)
            if not r:
                fail("dashboard panel %r: %s returned no data" % (panel["title"], expr))
            n += 1
    log("dashboard: %d panel queries, each returned data" % n)
    p.stop()
    agent.stop()
    pg.stop()
    web.stop()


# --- the container image's file system with the DaemonSet's capabilities ----

CAP_NUMBERS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}


def _container_like(root, confdir, caps):
    """A preexec_fn: a private mount namespace in which `root` (the image's
    tree) is read-only, with the host's /proc and /sys (hostPID and the
    DaemonSet's hostPath mounts) and confdir at /etc/aion; chroot into it;
    the capability bounding set cut to `caps`, so that root's exec gets
    exactly those."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 1, 32, 4096, 16384, 1 << 18
    PR_CAPBSET_DROP = 24

    def ck(rc, what):
        if rc != 0:
            os.write(2, ("container setup: %s: %s\n" % (what, os.strerror(ctypes.get_errno()))).encode())
            os._exit(127)

    def mount(src, dst, flags):
        ck(libc.mount(src and src.encode(), dst.encode(), None, flags, None), "mount %s on %s" % (src, dst))

    def setup():
        ck(libc.unshare(CLONE_NEWNS), "unshare")
        mount(None, "/", MS_REC | MS_PRIVATE)
        mount(root, root, MS_BIND)
        mount(None, root, MS_REMOUNT | MS_BIND | MS_RDONLY)
        mount("/proc", root + "/proc", MS_BIND | MS_REC)
        mount("/sys", root + "/sys", MS_BIND | MS_REC)
        mount(confdir, root + "/etc/aion", MS_BIND)
        mount(None, root + "/etc/aion", MS_REMOUNT | MS_BIND | MS_RDONLY)
        os.chroot(root)
        os.chdir("/")
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for c in range(last + 1):
            if c not in caps:
                ck(libc.prctl(PR_CAPBSET_DROP, c, 0, 0, 0), "drop capability %d" % c)
    return setup


def test_deploy_image_rootfs_daemonset_caps():
    """The runtime stage's tree (deploy/container/rootfs.sh: the agent and
    the shared objects ldd lists, nothing else), mounted read-only, the
    agent run from it with exactly the capability set of the shipped
    DaemonSet and the config format of its ConfigMap: it loads, and counts
    N requests as N."""
    with open(os.path.join(DEPLOY, "kubernetes", "base", "daemonset.yaml")) as f:
        ds = yaml.safe_load(f)
    c = ds["spec"]["template"]["spec"]["containers"][0]
    names = c["securityContext"]["capabilities"]["add"]
    unknown = [n for n in names if n not in CAP_NUMBERS]
    if unknown:
        fail("daemonset.yaml adds unknown capabilities %s" % unknown)
    caps = {CAP_NUMBERS[n] for n in names}
    with open(os.path.join(DEPLOY, "kubernetes", "base", "configmap.yaml")) as f:
        cm = yaml.safe_load(f)
    args = c["args"]
    conf_path = args[args.index("--config") + 1]
    conf_text = cm["data"][os.path.basename(conf_path)]

    tmp = lib.mkdtemp("image")
    root = os.path.join(tmp, "rootfs")
    r = subprocess.run(["sh", os.path.join(DEPLOY, "container", "rootfs.sh"), lib.AGENT, root],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        fail("rootfs.sh failed: %s" % r.stdout.decode())
    for d in ("proc", "sys"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    log("image tree: %s" % " ".join(files))

    web = lib.start_python_server()
    port = lib.free_port()
    confdir = os.path.join(tmp, "etc-aion")
    os.mkdir(confdir)
    head = conf_text.split("[target]", 1)[0]
    if "listen = 0.0.0.0:9090" not in head:
        fail("the ConfigMap's aion.conf does not listen on 0.0.0.0:9090: %r" % conf_text)
    with open(os.path.join(confdir, os.path.basename(conf_path)), "w") as f:
        f.write(head.replace("listen = 0.0.0.0:9090", "listen = 127.0.0.1:%d" % port)
                + "[target]\npid = %d\nservice_name = web\n" % web.pid)
    err = open(os.path.join(tmp, "agent.stderr"), "wb")
    proc = lib.spawn(["/usr/bin/aion-agent"] + args, stdout=err, stderr=err,
                     preexec_fn=_container_like(root, confdir, caps))

    def stderr():
        with open(os.path.join(tmp, "agent.stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-2000:]

    def ready():
        if proc.poll() is not None:
            fail("the agent in the image tree exited with %d: %s" % (proc.returncode, stderr()))
        try:
            return lib.http_get("127.0.0.1", port, "/readyz", timeout=1.0)[0] == 200
        except OSError:
            return False
    lib.wait_for(ready, 60, 0.1, what=lambda: "agent in the image tree not ready in 60 s: " + stderr())
    with open("/proc/%d/status" % proc.pid) as f:
        status = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
    # exactly the DaemonSet's set, less what this machine's bounding set
    # lacks itself (a sandbox may hold no CAP_SYS_RESOURCE)
    with open("/proc/self/status") as f:
        ours = int([l for l in f if l.startswith("CapBnd:")][0].split()[1], 16)
    want = sum(1 << n for n in caps) & ours
    absent = [nm for nm in names if not ours >> CAP_NUMBERS[nm] & 1]
    for field in ("CapEff", "CapBnd"):
        if int(status[field], 16) != want:
            fail("agent %s %s, expected exactly the DaemonSet's %s (%x)" % (field, status[field].strip(), names, want))
    if absent:
        log("capabilities of the DaemonSet this machine cannot grant at all: %s" % absent)
    if os.readlink("/proc/%d/root" % proc.pid) != root:
        fail("agent root is %s, not the image tree" % os.readlink("/proc/%d/root" % proc.pid))

    n = 37
    codes = lib.keepalive_requests(web.port, ["/ok"] * n)
    if codes != [200] * n:
        fail("statuses %s" % codes)

    def counted():
        st, _, body = lib.http_get("127.0.0.1", port, "/metrics")
        s = lib.parse_exposition(body.decode())
        return lib.count(s, "http_server_request_duration_seconds", service_name="web") == n
    lib.wait_for(counted, 10, 0.2, what=lambda: "web: %d requests not counted by the agent in the image tree" % n)
    log("agent from the image tree (read-only, CapEff %s = %s): ready, %d of %d requests counted"
        % (status["CapEff"].strip(), "+".join(nm for nm in names if nm not in absent), n, n))
    lib.stop_proc(proc, timeout=10.0)
    web.stop()

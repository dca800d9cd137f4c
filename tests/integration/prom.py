"""A real Prometheus server for the integration tests (stdlib only).

    p = Prometheus([{"job_name": "aion", "scrape_interval": "1s",
                     "static_configs": [{"targets": ["127.0.0.1:%d" % port]}]}])
    p.wait_query('up{job="aion"}', lambda r: r and r[0]["value"][1] == "1", 10)
    p.stop()

Started like every other process of a test: its own temp folder (config,
TSDB, log), a free port on 127.0.0.1, registered with lib's cleanup, stopped
by PID. The configuration is written as JSON, which is YAML, so no YAML
library is needed; scrape_configs may also be given as YAML text (the
indented list that goes under `scrape_configs:`).
"""
import http.client
import json
import os
import signal
import time
import urllib.parse

import lib

PROMETHEUS = "/usr/bin/prometheus"


class Prometheus:
    def __init__(self, scrape_configs, rule_files=(), args=(),
                 scrape_interval="1s", start_timeout=30.0):
        if not os.access(PROMETHEUS, os.X_OK):
            lib.fail("%s is not installed (Debian package prometheus, in the "
                     "Makefile DEPS)" % PROMETHEUS)
        self.tmp = lib.mkdtemp("prom")
        self.port = lib.free_port()
        self.conf = os.path.join(self.tmp, "prometheus.yml")
        rules = []
        for i, r in enumerate(rule_files):
            # a path is used as is; anything else is the text of a rule file
            if "\n" not in r and os.path.exists(r):
                rules.append(r)
                continue
            p = os.path.join(self.tmp, "rules%d.yml" % i)
            with open(p, "w") as f:
                f.write(r)
            rules.append(p)
        with open(self.conf, "w") as f:
            f.write(self._config(scrape_configs, rules, scrape_interval))
        self._log = open(os.path.join(self.tmp, "stderr"), "wb")
        argv = [PROMETHEUS,
                "--config.file=" + self.conf,
                "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--log.level=warn"] + list(args)
        self.proc = lib.spawn(argv, stdout=self._log, stderr=self._log,
                              cwd=self.tmp)
        self.pid = self.proc.pid
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                lib.fail("prometheus exited with %d before /-/ready: %s"
                         % (self.proc.returncode, self.errors()))
            try:
                st, _ = self._get("/-/ready", timeout=1.0)
                if st == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() - t0 > start_timeout:
                lib.fail("prometheus not ready within %.0fs: %s"
                         % (start_timeout, self.errors()))
            time.sleep(0.1)
        lib.log("prometheus pid %d port %d ready in %.1fs"
                % (self.pid, self.port, time.monotonic() - t0))

    @staticmethod
    def _config(scrape_configs, rules, interval):
        glob = {"scrape_interval": interval, "scrape_timeout": interval,
                "evaluation_interval": interval}
        if isinstance(scrape_configs, str):
            # YAML text: the indented list that goes under scrape_configs.
            return ("global: %s\nrule_files: %s\nscrape_configs:\n%s\n"
                    % (json.dumps(glob), json.dumps(rules),
                       scrape_configs.rstrip("\n")))
        return json.dumps({"global": glob, "rule_files": rules,
                           "scrape_configs": list(scrape_configs)},
                          indent=1) + "\n"

    def errors(self):
        return lib.log_tail(self.tmp, ("stderr",))

    def _get(self, path, timeout=5.0):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _api(self, path):
        st, body = self._get(path)
        try:
            d = json.loads(body)
        except ValueError:
            lib.fail("prometheus %s: status %d, not JSON: %r" % (path, st, body[:300]))
        if st != 200 or d.get("status") != "success":
            lib.fail("prometheus %s: status %d: %s" % (path, st, body[:500]))
        return d["data"]

    def query(self, expr):
        """Instant query; the result list ([{"metric": {...}, "value":
        [t, "v"]}, ...] for a vector)."""
        return self._api("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["result"]

    def wait_query(self, expr, pred, timeout=10.0, interval=0.25):
        """Polls query(expr) until pred(result) is true; returns the result.
        Fails with the last result on timeout."""
        last = [None]

        def ok():
            last[0] = self.query(expr)
            return pred(last[0])
        lib.wait_for(ok, timeout, interval,
                     what=lambda: "prometheus query %r: condition not met within "
                                  "%.0fs; last result %s; targets %s"
                                  % (expr, timeout, json.dumps(last[0]),
                                     json.dumps(self.targets())))
        return last[0]

    def targets(self):
        """The active targets: [{"labels", "health", "lastError", ...}]."""
        return self._api("/api/v1/targets")["activeTargets"]

    def stop(self):
        return lib.stop_proc(self.proc, signal.SIGTERM, timeout=10.0)


def value(result):
    """The float value of a one-element instant vector; fails otherwise."""
    if len(result) != 1:
        lib.fail("expected one series, got %s" % json.dumps(result))
    return float(result[0]["value"][1])

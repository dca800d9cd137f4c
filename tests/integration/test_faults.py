"""Fault tests: what the agent does when the kernel cannot hand it records.

The flood test stops the agent (SIGSTOP: its ring-buffer consumer stops),
sends a known number of requests to a traced nginx through a 4 KiB ring
buffer, and checks that every request is either counted in the HTTP
series or in aion_agent_events_lost_total, exactly once.
"""
import os
import signal
import time

import lib
from lib import HIST, fail, count, start_agent, start_nginx, wait_for

LOST = "aion_agent_events_lost_total"


def _proc_state(pid):
    """The state letters of every thread of pid (R, S, T, ...)."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except OSError:
            continue
        out.append(st[st.rfind(")") + 2:].split()[0])
    return out


def _lost(samples):
    v = lib.metric(samples, LOST)
    if v is None:
        fail("%s missing from /metrics" % LOST)
    return v


def test_faults_ring_buffer_flood_lost_exact():
    """--ring-buffer-size 4096: with the agent stopped, N requests overflow
    the ring; after SIGCONT the series count c and lost == N - c exactly,
    with c > 0 and lost > 0 (records are staged 8 per CPU in the kernel and
    written or counted lost 8 at a time: none vanishes, none counts twice)."""
    n = 3000
    ng = start_nginx('location = /flood { return 200 "ok\\n"; }')
    agent = start_agent(["--pid", str(ng.pid), "--ring-buffer-size", "4096"], ready_timeout=60)
    port = str(ng.port)
    s = agent.scrape()
    if _lost(s) != 0 or count(s, server_port=port) != 0:
        fail("before the flood: %s %g, requests counted %g (expected 0 and 0)"
             % (LOST, _lost(s), count(s, server_port=port)))
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: all(c == "T" for c in _proc_state(agent.proc.pid)), 5,
                 what=lambda: "agent threads not stopped: %s" % _proc_state(agent.proc.pid))
        codes = lib.keepalive_requests(ng.port, ["/flood"] * n)
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    got = {}
    for c in codes:
        got[c] = got.get(c, 0) + 1
    if got != {200: n}:
        fail("client: expected %d responses 200, got %s" % (n, got))

    last = [None]

    def settled():
        a = agent.scrape()
        time.sleep(0.3)
        b = agent.scrape()
        last[0] = b
        va = (count(a, server_port=port), _lost(a))
        vb = (count(b, server_port=port), _lost(b))
        return va == vb and vb[0] + vb[1] >= n and vb
    counted, lost = wait_for(settled, 10, interval=0.2, what=lambda: (
        "after the flood: counted + lost never reached %d: counted %g, lost %g"
        % (n, count(last[0] or {}, server_port=port), _lost(last[0] or agent.scrape()))))
    lib.log("flood of %d through a 4 KiB ring: %d counted, %d lost" % (n, counted, lost))
    if counted + lost != n or counted <= 0 or lost <= 0:
        fail("flood of %d requests: counted %g + lost %g = %g (expected exactly %d, both > 0)"
             % (n, counted, lost, counted + lost, n))
    ok = count(last[0], server_port=port, http_route="/flood", http_response_status_code="200",
               http_request_method="GET", error_type="")
    if ok != counted:
        fail("counted series other than GET /flood 200: %g of %g" % (counted - ok, counted))
    # The agent consumes again: the next requests are all counted.
    codes = lib.keepalive_requests(ng.port, ["/flood"] * 50)
    if codes != [200] * 50:
        fail("after SIGCONT: statuses %s" % sorted(set(codes)))
    agent.wait_count(counted + 50, server_port=port)
    s = agent.scrape()
    if _lost(s) != lost:
        fail("%s moved from %g to %g for 50 requests with the agent consuming" % (LOST, lost, _lost(s)))
    agent.stop()


def test_faults_ring_buffer_size_bad_values():
    """Bad --ring-buffer-size / AION_RING_BUFFER_SIZE values: exit 2 and one
    line naming the value; a good one (64K) starts."""
    for args, env, needle in (
            (["--ring-buffer-size", "5000"], None, "--ring-buffer-size '5000'"),
            (["--ring-buffer-size", "2048"], None, "--ring-buffer-size '2048'"),
            (["--ring-buffer-size", "2G"], None, "--ring-buffer-size '2G'"),
            (["--ring-buffer-size", "lots"], None, "--ring-buffer-size 'lots'"),
            ([], {"AION_RING_BUFFER_SIZE": "12K"}, "AION_RING_BUFFER_SIZE: ring_buffer_size '12K'")):
        rc, err = lib.run_agent_expect_exit(["--pid", "1"] + args + ["--listen", "127.0.0.1:%d" % lib.free_port()],
                                            env=env)
        lines = err.rstrip("\n").split("\n")
        if rc != 2 or len(lines) != 1 or needle not in err:
            fail("aion-agent %s (env %s): expected exit 2 and one line with %r, got %d: %r"
                 % (" ".join(args), env, needle, rc, err))
    ng = start_nginx('location = /ok { return 200 "ok\\n"; }')
    agent = start_agent(["--pid", str(ng.pid), "--ring-buffer-size", "64K"], ready_timeout=60)
    if lib.curl([ng.url("/ok")] * 3) != [200] * 3:
        fail("curl against nginx failed")
    agent.wait_count(3, server_port=str(ng.port))
    agent.stop()

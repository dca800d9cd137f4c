#!/usr/bin/python3
"""Process churn for the soak: a traced parent that runs short-lived curl
processes, each making one request and exiting.

  churn_parent.py PORT

Prints "READY", answers each line "ping" on stdin with "pong" (so that
its own reads and writes on stdin and stdout have happened before the soak
takes its baseline), and waits for a line "go"; then runs curl, PARALLEL
at a time (one request, a new process and a new connection each time; the
paths cycle through /ok, /boom, /missing and /users/<n>) until a line
"stop" arrives;
then prints one JSON line {"server": {"ROUTE STATUS": n}, "client":
{"STATUS": n}, "runs": n} and waits for stdin to close. It never forks
while idle, so the target set holds still before and after the churn.
"""
import json
import os
import subprocess
import sys
import threading

PARALLEL = 2  # curl processes at once
PATHS = [("/ok", "/ok"), ("/boom", "/boom"), ("/missing", "/missing"), (None, "/users/{id}")]


def main():
    port = int(sys.argv[1])
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        line = sys.stdin.readline().strip()
        if line == "go":
            break
        if line != "ping":
            return 1
        sys.stdout.write("pong\n")
        sys.stdout.flush()
    server, client, runs = {}, {}, [0]
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def worker():
        while not stop.is_set() and not errors:
            with lock:
                i = runs[0]
                runs[0] += 1
            path, route = PATHS[i % len(PATHS)]
            if path is None:
                path = "/users/%d" % (100000 + i)
            p = subprocess.run(["curl", "-s", "-o", "/dev/null", "--noproxy", "*", "--http1.1",
                                "-w", "%{http_code}", "http://127.0.0.1:%d%s" % (port, path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)
            status = p.stdout.decode().strip()
            with lock:
                if p.returncode != 0 or not status.isdigit() or status == "000":
                    errors.append("curl %s: rc %d, %r %r" % (path, p.returncode, p.stdout.decode(),
                                                            p.stderr.decode()))
                    return
                key = "%s %s" % (route, status)
                server[key] = server.get(key, 0) + 1
                client[status] = client.get(status, 0) + 1
    threads = [threading.Thread(target=worker) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    sys.stdin.readline()
    stop.set()
    for t in threads:
        t.join()
    if errors:
        sys.stdout.write(json.dumps({"error": errors[0]}) + "\n")
        sys.stdout.flush()
        sys.stdin.read()
        return 1
    runs = sum(client.values())
    sys.stdout.write(json.dumps({"server": server, "client": client, "runs": runs}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Regenerate the HTTP/1.x byte captures used by tests/unit/test_http.c.

Stdlib only. Run from anywhere:  /usr/bin/python3 tests/unit/captures/capture.py

Requests  (req_*.bin):  what real clients (curl, python http.client, wrk, node)
                        send, recorded by a tiny socket listener.
Responses (resp_*.bin): what real servers (nginx, python http.server, node)
                        send, recorded by a raw socket client that reads to EOF.

Every response is requested with "Connection: close" so that EOF delimits the
capture; the framing bytes are the same as on a keep-alive connection.
Servers run on 127.0.0.1 free ports, out of a temporary directory.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def save(name, data):
    assert len(data) < 30 * 1024, (name, len(data))
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print("%-32s %6d bytes" % (name, len(data)))


def raw_exchange(port, parts, pause=0.0):
    """Send the byte strings of parts (with an optional pause between them),
    then read everything until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    out = b""
    for i, p in enumerate(parts):
        if i and pause:
            time.sleep(pause)
            s.setblocking(False)
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    out += d
            except BlockingIOError:
                pass
            s.setblocking(True)
            s.settimeout(10)
        s.sendall(p)
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out


# ---- request captures -------------------------------------------------------

class Listener:
    """Accepts connections, records the first complete request of each
    (headers + Content-Length body), answers with an empty 200."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        buf = b""
        first = True
        c.settimeout(5)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, rest = buf.split(b"\r\n\r\n", 1)
                clen = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v.strip())
                while len(rest) < clen:
                    d = c.recv(65536)
                    if not d:
                        return
                    rest += d
                req = head + b"\r\n\r\n" + rest[:clen]
                buf = rest[clen:]
                if first:
                    with self.lock:
                        self.requests.append(req)
                    first = False
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            return
        finally:
            c.close()

    def take(self, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if self.requests:
                    return self.requests.pop(0)
            time.sleep(0.02)
        raise RuntimeError("no request recorded")

    def close(self):
        self.sock.close()


def capture_requests():
    import http.client
    import json

    lst = Listener()
    url = "http://127.0.0.1:%d" % lst.port
    run = lambda *a: subprocess.run(a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)

    run("curl", "-s", url + "/api/users?id=42")
    save("req_curl_get.bin", lst.take())
    run("curl", "-s", "-d", "name=aion&kind=agent", url + "/api/items")
    save("req_curl_post.bin", lst.take())
    run("curl", "-s", "-I", url + "/index.html")
    save("req_curl_head.bin", lst.take())

    conn = http.client.HTTPConnection("127.0.0.1", lst.port, timeout=5)
    conn.request("GET", "/health")
    conn.getresponse().read()
    conn.close()
    save("req_python_get.bin", lst.take())
    conn = http.client.HTTPConnection("127.0.0.1", lst.port, timeout=5)
    body = json.dumps({"user": "alice", "items": [1, 2, 3]}).encode()
    conn.request("PUT", "/api/users/7", body=body, headers={"Content-Type": "application/json"})
    conn.getresponse().read()
    conn.close()
    save("req_python_put.bin", lst.take())

    if shutil.which("wrk"):
        p = subprocess.Popen(["wrk", "-t1", "-c1", "-d1s", url + "/bench"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            save("req_wrk.bin", lst.take())
        finally:
            p.wait(timeout=15)
    if shutil.which("node"):
        js = ("require('http').get('%s/node/path?q=1', r => { r.resume(); "
              "r.on('end', () => process.exit(0)); });" % url)
        run("node", "-e", js)
        save("req_node_get.bin", lst.take())
    lst.close()


# ---- response captures ------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    default_type application/octet-stream;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        sendfile on;
        location = /ok {{ default_type text/plain; return 200 "ok\\n"; }}
        location = /unavailable {{ return 503; }}
        location = /empty {{ return 204; }}
        location /static/ {{ }}
        location /gz/ {{
            gzip on;
            gzip_types text/plain;
            gzip_min_length 1;
            types {{ text/plain txt; }}
        }}
    }}
}}
"""


def text_of(n, seed):
    rnd = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"aion", b"metrics", b"http",
             b"kernel", b"window", b"chunk", b"frame", b"route"]
    out = b""
    while len(out) < n:
        out += rnd.choice(words) + (b"\n" if rnd.random() < 0.1 else b" ")
        out += b"%d " % rnd.randrange(100000)
    return out[:n]


def capture_nginx(tmp):
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "www", "static"))
    os.makedirs(os.path.join(d, "www", "gz"))
    os.makedirs(os.path.join(d, "tmp"))
    rnd = random.Random(1)
    with open(os.path.join(d, "www", "static", "file.bin"), "wb") as f:
        f.write(bytes(rnd.randrange(256) for _ in range(20480)))
    with open(os.path.join(d, "www", "gz", "words.txt"), "wb") as f:
        f.write(text_of(6000, 2))
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        host = b"Host: 127.0.0.1:%d\r\n" % port

        def get(path, method=b"GET", extra=b""):
            return raw_exchange(port, [method + b" " + path + b" HTTP/1.1\r\n" + host +
                                       extra + b"Connection: close\r\n\r\n"])

        save("resp_nginx_ok.bin", get(b"/ok"))
        save("resp_nginx_503.bin", get(b"/unavailable"))
        save("resp_nginx_204.bin", get(b"/empty"))
        save("resp_nginx_file.bin", get(b"/static/file.bin"))
        save("resp_nginx_gzip_chunked.bin", get(b"/gz/words.txt", extra=b"Accept-Encoding: gzip\r\n"))
        save("resp_nginx_head.bin", get(b"/static/file.bin", method=b"HEAD"))
        # Three pipelined requests on one connection, sent in one write.
        pipe = lambda m, path: raw_exchange(port, [
            (m + b" " + path + b" HTTP/1.1\r\n" + host + b"\r\n") * 2 +
            m + b" " + path + b" HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"])
        save("resp_nginx_pipelined_get.bin", pipe(b"GET", b"/ok"))
        save("resp_nginx_pipelined_head.bin", pipe(b"HEAD", b"/ok"))
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)


PY_SERVER = r'''
import http.server, sys

class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        out = b"got %d bytes\n" % len(body)
        self.send_response(201)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

class H10(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()  # no Content-Length: the body ends at close
        self.wfile.write(b"no length here, read until the connection closes\n")

cls = H10 if sys.argv[2] == "10" else H
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), cls).serve_forever()
'''


def capture_python(tmp):
    d = os.path.join(tmp, "py")
    os.makedirs(d)
    with open(os.path.join(d, "server.py"), "w") as f:
        f.write(PY_SERVER)
    with open(os.path.join(d, "hello.txt"), "wb") as f:
        f.write(b"hello from python http.server\n")
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen(["/usr/bin/python3", os.path.join(d, "server.py"), str(port), "11"],
                                      cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        port10 = free_port()
        procs.append(subprocess.Popen(["/usr/bin/python3", os.path.join(d, "server.py"), str(port10), "10"],
                                      cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_port(port)
        wait_port(port10)
        host = b"Host: 127.0.0.1:%d\r\n" % port
        save("resp_python_file.bin", raw_exchange(port, [
            b"GET /hello.txt HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"]))
        save("resp_python_404.bin", raw_exchange(port, [
            b"GET /missing HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"]))
        # Expect: 100-continue: the interim response, then the final one.
        body = b"x" * 100
        save("resp_python_100_continue.bin", raw_exchange(port, [
            b"POST /upload HTTP/1.1\r\n" + host + b"Content-Length: 100\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n", body], pause=0.5))
        save("resp_python_http10.bin", raw_exchange(port10, [
            b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"]))
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)


NODE_SERVER = r'''
const http = require('http');
http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  if (req.url === '/big') {
    // Chunks larger than the parser's window: chunk-size lines land inside.
    for (let i = 0; i < 4; i++) res.write(String.fromCharCode(97 + i).repeat(700));
    res.end();
    return;
  }
  res.write('hello ');
  res.write('from node, ');
  setTimeout(() => { res.write('written in pieces\n'); res.end(); }, 10);
}).listen(+process.argv[2], '127.0.0.1');
'''


def capture_node(tmp):
    if not shutil.which("node"):
        print("node not installed: node captures skipped")
        return
    d = os.path.join(tmp, "node")
    os.makedirs(d)
    js = os.path.join(d, "server.js")
    with open(js, "w") as f:
        f.write(NODE_SERVER)
    port = free_port()
    p = subprocess.Popen(["node", js, str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        save("resp_node_chunked.bin", raw_exchange(port, [
            b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port]))
        save("resp_node_chunked_big.bin", raw_exchange(port, [
            b"GET /big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port]))
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)


def main():
    tmp = tempfile.mkdtemp(prefix="aion-capture-")
    try:
        capture_requests()
        capture_nginx(tmp)
        capture_python(tmp)
        capture_node(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

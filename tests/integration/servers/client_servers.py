#!/usr/bin/python3
"""Servers for the HTTP client tests (test_http_client.py); stdlib only.

Usage: client_servers.py --mode MODE [--host 127.0.0.1|::1] [--port N] [--size N]
Prints "READY <port>" on stdout once it is listening, then nothing more.

Modes (one thread per connection):
  http    HTTP/1.1 keep-alive server (ThreadingHTTPServer):
            /ok                 -> 200 "ok\\n"
            /size               -> reads the request body (Content-Length or
                                   chunked) and answers 200 "<bytes read>\\n"
            /chunked/A,B,C      -> 200, Transfer-Encoding: chunked, chunks of
                                   A, B, C bytes, each chunk its own write
            /chunked/...?split=1&ext=1&trailer=1 -> the same with size lines
                                   and CRLFs written a byte at a time, chunk
                                   extensions, a trailer field
            /chunked            -> 200, chunked, no data chunk ("0\\r\\n\\r\\n")
            /sleep/MS           -> 200 "slept\\n" after MS milliseconds
            /status/NNN         -> NNN "status NNN\\n"
            anything else       -> 404 "not found\\n"
          A request body is always read (Content-Length or chunked).
  http10  reads a request head, writes "HTTP/1.0 200 OK\\r\\n\\r\\n" and --size
          bytes (in 8 kB writes), then closes: a close-delimited response.
  close   reads a request head, then closes without answering.
  reset   reads a request head, then closes with SO_LINGER {1, 0}: a RST.
  hang    reads a request head, never answers; closes when the client does.
  echo    a TCP echo server: writes back whatever it reads until EOF.
  full    listens with a backlog of 0 and never accepts; its own first
          connection fills the accept queue, so a client's SYN is dropped
          and its connect() stays pending (a connect timeout on loopback).
"""
import argparse
import http.server
import socket
import struct
import sys
import threading
import time


# ---------------------------------------------------------------- http mode

def read_chunked(rfile):
    """Read a chunked body from rfile; returns the number of data bytes."""
    total = 0
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("EOF in chunk size line")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:       # trailers until the empty line
                t = rfile.readline(65537)
                if not t or t in (b"\r\n", b"\n"):
                    return total
        left = size
        while left:
            d = rfile.read(min(left, 65536))
            if not d:
                raise ConnectionError("EOF in chunk data")
            left -= len(d)
        total += size
        rfile.readline(3)      # CRLF after the data


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aion-client-test/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def _body_len(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return read_chunked(self.rfile)
        n = int(self.headers.get("Content-Length") or 0)
        left = n
        while left > 0:
            d = self.rfile.read(min(left, 65536))
            if not d:
                raise ConnectionError("EOF in request body")
            left -= len(d)
        return n

    def _reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _chunked(self, sizes, opts):
        """split: chunk-size lines, CRLFs and the last chunk written a byte
        at a time (2 ms apart: the client reads them piecewise); ext: a
        chunk extension on every size line; trailer: a trailer field."""
        split, ext, trailer = "split" in opts, "ext" in opts, "trailer" in opts
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        if trailer:
            self.send_header("Trailer", "X-Trailer")
        self.end_headers()
        self.wfile.flush()

        def put(b, bytewise):
            if not bytewise:
                self.wfile.write(b)
                self.wfile.flush()
                return
            for i in range(len(b)):
                self.wfile.write(b[i:i + 1])
                self.wfile.flush()
                time.sleep(0.002)
        for i, n in enumerate(sizes):
            data = bytes((i + j) & 0xFF for j in range(256)) * (n // 256 + 1)
            head = b"%x" % n + (b";name=v%d" % i if ext else b"") + b"\r\n"
            if split:
                put(head, True)
                put(data[:n], False)
                put(b"\r\n", True)
            else:
                put(head + data[:n] + b"\r\n", False)
                time.sleep(0.002)
        put(b"0" + (b";name=last" if ext else b"") + b"\r\n" + (b"X-Trailer: yes\r\n" if trailer else b"")
            + b"\r\n", split)

    def _route(self):
        got = self._body_len()
        path, _, query = self.path.partition("?")
        parts = [p for p in path.split("/") if p]
        if path == "/ok":
            return self._reply(200, b"ok\n")
        if path == "/size":
            return self._reply(200, b"%d\n" % got)
        if parts and parts[0] == "chunked" and len(parts) <= 2:
            return self._chunked([int(x) for x in parts[1].split(",") if x] if len(parts) == 2 else [],
                                 query.replace("=1", "").split("&"))
        if len(parts) == 2 and parts[0] == "sleep" and parts[1].isdigit():
            time.sleep(int(parts[1]) / 1000.0)
            return self._reply(200, b"slept\n")
        if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            return self._reply(int(parts[1]), b"status %s\n" % parts[1].encode())
        return self._reply(404, b"not found\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, OSError, ValueError):
            self.close_connection = True


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


# ---------------------------------------------------------------- raw modes

def read_head(conn):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None
        buf += d
    return buf


def serve_raw(conn, mode, size):
    try:
        if mode == "echo":
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                conn.sendall(d)
            return
        if read_head(conn) is None:
            return
        if mode == "http10":
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            data = b"0123456789abcdef" * 512
            left = size
            while left:
                n = min(left, 8192)
                conn.sendall(data[:n])
                left -= n
                time.sleep(0.001)
        elif mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "hang":
            while conn.recv(65536):
                pass
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True, choices=["http", "http10", "close", "reset", "hang", "echo", "full"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--size", type=int, default=0)
    a = ap.parse_args()
    v6 = ":" in a.host
    if a.mode == "http":
        srv = (HTTPServer6 if v6 else HTTPServer)((a.host, a.port), Handler)
        sys.stdout.write("READY %d\n" % srv.server_address[1])
        sys.stdout.flush()
        srv.serve_forever(poll_interval=0.2)
        return
    ls = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    if a.mode == "full":
        ls.listen(0)
        filler = socket.create_connection(ls.getsockname()[:2], timeout=5)
        probe = socket.socket(ls.family, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        try:
            probe.connect(ls.getsockname()[:2])
            sys.stderr.write("accept queue not full: a second connect succeeded\n")
            sys.exit(1)
        except socket.timeout:
            pass
        probe.close()
        sys.stdout.write("READY %d\n" % ls.getsockname()[1])
        sys.stdout.flush()
        while filler:              # holds the queued connection
            time.sleep(3600)
    ls.listen(128)
    sys.stdout.write("READY %d\n" % ls.getsockname()[1])
    sys.stdout.flush()
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve_raw, args=(conn, a.mode, a.size), daemon=True).start()


if __name__ == "__main__":
    main()

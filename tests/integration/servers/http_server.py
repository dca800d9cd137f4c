#!/usr/bin/python3
"""Plain Python HTTP/1.1 server used by the aion integration tests.

ThreadingHTTPServer (one thread per connection), keep-alive, quiet.
Routes:
  GET /ok             -> 200 "ok\n"
  GET /status/NNN     -> NNN with a small body
  GET /sleep/MS       -> sleeps MS milliseconds, then 200
  GET /users/<id>     -> 200 small JSON body
  anything else       -> 404
Query strings are ignored. A request body (Content-Length) is read and dropped.

Usage: http_server.py [--port N]   (0 = pick a free port)
Prints "READY <port>" on stdout once it is listening.
"""
import argparse
import http.server
import socket
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aion-test/1"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def _reply(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _drain_body(self):
        n = self.headers.get("Content-Length")
        if n:
            try:
                left = int(n)
            except ValueError:
                left = 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)

    def _route(self):
        self._drain_body()
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if path == "/ok":
            return self._reply(200, b"ok\n")
        if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            code = int(parts[1])
            if 100 <= code <= 199 or code in (204, 304):
                self.send_response(code)
                self.end_headers()
                return None
            return self._reply(code, b"status %d\n" % code)
        if len(parts) == 2 and parts[0] == "sleep" and parts[1].isdigit():
            time.sleep(int(parts[1]) / 1000.0)
            return self._reply(200, b"slept\n")
        if len(parts) == 2 and parts[0] == "users":
            return self._reply(200, b'{"id":"%s"}\n' % parts[1].encode(), "application/json")
        return self._reply(404, b"not found\n")

    do_GET = _route
    do_POST = _route
    do_PUT = _route
    do_DELETE = _route
    do_HEAD = _route

    def handle(self):
        # A client that goes away mid-request (the abort test) must not
        # produce tracebacks.
        try:
            super().handle()
        except (ConnectionError, BrokenPipeError, socket.timeout, OSError):
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # quiet
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    sys.stdout.write("READY %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A raw-socket HTTP/1.x server for test_http_cases.py: every byte it writes
and every way it ends a connection is decided here (no http.server), one
thread per connection, keep-alive for HTTP/1.1.

Routes (query strings select options; the route label never sees them):
  GET /ok                     200, Content-Length 3, one write
  GET /sleep/MS               sleeps MS ms, then 200 (Content-Length)
  GET /chunked?s=A,B,..&m=M   200, Transfer-Encoding: chunked, chunks of A,
                              B, ... bytes then the last chunk. M = each
                              (one write per chunk, default), one (head and
                              all chunks in one write), split (size line,
                              data and CRLF of every chunk in separate writes)
  GET /close/N                "HTTP/1.0 200 OK\\r\\n\\r\\n" + N bytes, no
                              Content-Length, then close(): a close-delimited
                              response
  GET /reset                  reads the request, answers nothing, closes with
                              SO_LINGER {1, 0} (the peer gets an RST)
  anything else               404 (Content-Length)
A request body (Content-Length) is read and dropped; `Expect: 100-continue`
is answered with `HTTP/1.1 100 Continue` first. `Connection: close` or
HTTP/1.0 closes the connection after the response.

Usage: cases_raw_server.py [--port N]   (0 = a free port)
Prints "READY <port>" on stdout once it is listening.
"""
import argparse
import socket
import struct
import sys
import threading
import time


def body_bytes(n, seed=0):
    pat = bytes((i * 31 + seed) & 0xFF for i in range(4096))
    return (pat * (n // len(pat) + 1))[:n]


def send_plain(conn, status, reason, body, close):
    head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n" % (
        status, reason, len(body), "Connection: close\r\n" if close else "")
    conn.sendall(head.encode() + body)


def send_chunked(conn, sizes, mode, close):
    head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n%s\r\n" % ("Connection: close\r\n" if close else "")).encode()
    chunks = [(b"%x\r\n" % n, body_bytes(n, seed=i + 1), b"\r\n") for i, n in enumerate(sizes)]
    last = b"0\r\n\r\n"
    if mode == "one":
        conn.sendall(head + b"".join(a + b + c for a, b, c in chunks) + last)
    elif mode == "iov":
        iov = [head] + [x for ch in chunks for x in ch] + [last]
        n = conn.sendmsg(iov)
        rest = b"".join(iov)[n:]
        if rest:
            conn.sendall(rest)
    elif mode == "split":
        conn.sendall(head)
        for a, b, c in chunks:
            conn.sendall(a)
            conn.sendall(b)
            conn.sendall(c)
        conn.sendall(last)
    else:
        conn.sendall(head)
        for a, b, c in chunks:
            conn.sendall(a + b + c)
        conn.sendall(last)


def handle(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                return
            method, target, version = parts
            hdrs = {}
            for l in lines[1:]:
                k, _, v = l.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            close = version != "HTTP/1.1" or hdrs.get("connection", "").lower() == "close"
            clen = int(hdrs.get("content-length", "0") or 0)
            if clen and hdrs.get("expect", "").lower() == "100-continue" and len(buf) < clen:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(buf) < clen:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            buf = buf[clen:]
            path, _, query = target.partition("?")
            opts = dict(kv.partition("=")[::2] for kv in query.split("&") if kv)
            seg = [p for p in path.split("/") if p]
            if path == "/ok":
                send_plain(conn, 200, "OK", b"ok\n", close)
            elif len(seg) == 2 and seg[0] == "sleep" and seg[1].isdigit():
                time.sleep(int(seg[1]) / 1000.0)
                send_plain(conn, 200, "OK", b"slept\n", close)
            elif path == "/chunked":
                sizes = [int(x) for x in opts.get("s", "").split(",") if x]
                send_chunked(conn, sizes, opts.get("m", "each"), close)
            elif len(seg) == 2 and seg[0] == "close" and seg[1].isdigit():
                n = int(seg[1])
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                data = body_bytes(n)
                for i in range(0, n, 65536):
                    conn.sendall(data[i:i + 65536])
                return
            elif path == "/reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            else:
                send_plain(conn, 404, "Not Found", b"not found\n", close)
            if close:
                return
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(512)
    sys.stdout.write("READY %d\n" % ls.getsockname()[1])
    sys.stdout.flush()
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass

#!/usr/bin/python3
"""servers/http_server.py's routes over TLS (the ssl module, i.e. OpenSSL's
SSL_read/SSL_write on the connection's socket).

ThreadingHTTPServer, HTTP/1.1 keep-alive; each accepted socket is wrapped
(server side, handshake done in its handler thread) with the given
certificate and key. Routes as http_server.py: /ok, /status/NNN,
/sleep/MS, /users/<id>, anything else 404.

Usage: tls_http_server.py --cert CERT --key KEY [--port N]  (0 = free port)
Prints "READY <port>" on stdout once it is listening.
"""
import argparse
import os
import ssl
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_server  # noqa: E402


class TlsServer(http_server.Server):
    ctx = None

    def finish_request(self, request, client_address):
        try:
            conn = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    TlsServer.ctx = ctx
    srv = TlsServer((a.host, a.port), http_server.Handler)
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

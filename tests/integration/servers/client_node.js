// Node.js HTTP client for test_http_client.py.
//
//   node client_node.js PORT
//
// Waits for a line on stdin (so that the agent can be started with --pid of
// this process first), then, over ONE keep-alive connection (http.Agent
// keepAlive, maxSockets 1) to 127.0.0.1:PORT (servers/client_servers.py
// --mode http):
//   10 x GET /ok, 2 x GET /status/404, 1 x GET /status/503,
//   POST /size with a chunked body (no Content-Length: node sends
//     Transfer-Encoding: chunked), one req.write() per entry of CHUNKS,
//   POST /size with a Content-Length body of 500 bytes.
// Prints one JSON line: [{method, status, body, reqBytes, localPort}, ...].
'use strict';
const http = require('http');

const port = parseInt(process.argv[2], 10);
const CHUNKS = [1, 100, 3000, 20000];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const results = [];

function request(method, path, writes, contentLength) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (contentLength !== undefined) headers['Content-Length'] = String(contentLength);
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const localPort = res.socket.localPort;
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const body = Buffer.concat(parts).toString('latin1');
        const reqBytes = writes.reduce((a, n) => a + n, 0);
        results.push({ method, status: res.statusCode, body, reqBytes, localPort });
        resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    let i = 0;
    const next = () => {
      if (i === writes.length) { req.end(); return; }
      const n = writes[i++];
      req.write(Buffer.alloc(n, 0x61 + (i % 26)));
      setTimeout(next, 5);       // each write its own chunk on the wire
    };
    next();
  });
}

async function main() {
  for (let i = 0; i < 10; i++) await request('GET', '/ok', []);
  for (let i = 0; i < 2; i++) await request('GET', '/status/404', []);
  await request('GET', '/status/503', []);
  await request('POST', '/size', CHUNKS);
  await request('POST', '/size', [500], 500);
  process.stdout.write(JSON.stringify(results) + '\n');
  agent.destroy();
}

let started = false;
process.stdin.on('data', () => {
  if (started) return;
  started = true;
  process.stdin.pause();
  main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
});

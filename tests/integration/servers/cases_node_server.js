// Node.js HTTP server for test_http_cases.py (node's own http module).
//   GET  /hello              200, a fixed body (node sets Content-Length)
//   GET  /stream?s=A,B,...   200, res.write() of A, B, ... bytes: chunked
//   POST /echo               reads the whole request body (Content-Length or
//                            chunked), answers "got N\n" (Content-Length)
//   anything else            404
// Prints "READY <port>" once listening on 127.0.0.1 (port from argv[2], 0 =
// a free one).
'use strict';
const http = require('http');

const srv = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (d) => { n += d.length; });
  req.on('end', () => {
    const [path, query] = req.url.split('?');
    if (req.method === 'GET' && path === '/hello') {
      res.setHeader('Content-Type', 'text/plain');
      res.end('hello from node\n');
    } else if (req.method === 'GET' && path === '/stream') {
      const m = /(?:^|&)s=([0-9,]*)/.exec(query || '');
      const sizes = m ? m[1].split(',').filter((x) => x).map(Number) : [];
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      let i = 0;
      const next = () => {
        if (i === sizes.length) { res.end(); return; }
        res.write(Buffer.alloc(sizes[i], 97 + (i % 26)));
        i++;
        setImmediate(next);
      };
      next();
    } else if (req.method === 'POST' && path === '/echo') {
      res.setHeader('Content-Type', 'text/plain');
      res.end('got ' + n + '\n');
    } else {
      res.statusCode = 404;
      res.end('not found\n');
    }
  });
});
srv.keepAliveTimeout = 30000;
srv.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write('READY ' + srv.address().port + '\n');
});

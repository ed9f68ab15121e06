// Anchor for the proxy benchmark: the least an undici-based Node proxy can do. node:http in front,
// one undici Pool per upstream, round-robin, `dispatch()` streaming the answer back. No routing,
// no middleware, no error handling beyond a 502.
//   node bench/proxy/bare-proxy.mjs <port> <upstream-port> <upstream-port>
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, ...upstreams] = process.argv.slice(2).map(Number);
const pools = upstreams.map((upstream) => new Pool(`http://127.0.0.1:${upstream}`, { connections: 256, pipelining: 1 }));
let next = 0;

createServer((request, response) => {
  const pool = pools[next++ % pools.length];
  pool.dispatch(
    { path: request.url, method: request.method, headers: request.headers, body: request.method === 'GET' || request.method === 'HEAD' ? null : request },
    {
      onRequestStart() {},
      onResponseStart(controller, status, headers) {
        delete headers.connection;
        delete headers['keep-alive'];
        delete headers['transfer-encoding'];
        response.writeHead(status, headers);
      },
      onResponseData(controller, chunk) {
        if (!response.write(chunk)) {
          controller.pause();
          response.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        response.end();
      },
      onResponseError() {
        if (!response.headersSent) response.writeHead(502);
        response.end();
      },
    },
  );
}).listen(port, '127.0.0.1');
process.on('SIGINT', () => process.exit(0));

// Anchor for the proxy benchmark: the least an undici-based Node proxy can do. node:http in front,
// one undici Pool per upstream, round-robin, `dispatch()` streaming the answer back. No routing,
// no middleware, no error handling beyond a 502. With `--tls <cert> <key>` it terminates TLS
// instead, offering HTTP/2 and HTTP/1.1 through ALPN as Switchboard's https entry point does
// (node:http2's compatibility API, which hands both kinds of request to the same function).
// With `--gateway-headers` it also sends what Switchboard's default middleware adds and nothing
// more (X-Forwarded-For, -Proto, -Host, X-Real-IP and a fresh X-Request-Id upstream, the id back to
// the client): the floor for the same header work, to tell the headers' cost from the gateway's own.
//   node bench/proxy/bare-proxy.mjs <port> <upstream-port> <upstream-port> [--tls <cert-file> <key-file>] [--gateway-headers]
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createSecureServer } from 'node:http2';
import { Pool } from 'undici';

const gatewayHeaders = process.argv.includes('--gateway-headers');
const args = process.argv.slice(2).filter((arg) => arg !== '--gateway-headers');
const tlsAt = args.indexOf('--tls');
const tls = tlsAt === -1 ? undefined : { cert: readFileSync(args[tlsAt + 1]), key: readFileSync(args[tlsAt + 2]) };
const [port, ...upstreams] = (tlsAt === -1 ? args : args.slice(0, tlsAt)).map(Number);
const pools = upstreams.map((upstream) => new Pool(`http://127.0.0.1:${upstream}`, { connections: 256, pipelining: 1 }));
let next = 0;

/** An HTTP/2 request's headers without its pseudo-headers (`:path`…), which HTTP/1.1 has no room for. */
function http1Headers(headers) {
  const result = { host: headers[':authority'] };
  for (const name in headers) if (name[0] !== ':') result[name] = headers[name];
  return result;
}

const handle = (request, response) => {
  const pool = pools[next++ % pools.length];
  const headers = request.httpVersionMajor === 2 ? http1Headers(request.headers) : request.headers;
  // Hop-by-hop: a client's `Connection: close` is not the upstream's (undici would close its pooled connection).
  if (headers.connection !== undefined) delete headers.connection;
  const id = gatewayHeaders ? randomUUID() : undefined;
  if (id !== undefined) {
    const peer = request.socket.remoteAddress;
    headers['x-forwarded-for'] = peer;
    headers['x-forwarded-proto'] = tls ? 'https' : 'http';
    if (headers.host !== undefined) headers['x-forwarded-host'] = headers.host;
    headers['x-real-ip'] = peer;
    headers['x-request-id'] = id;
  }
  pool.dispatch(
    { path: request.url, method: request.method, headers, body: request.method === 'GET' || request.method === 'HEAD' ? null : request },
    {
      onRequestStart() {},
      onResponseStart(controller, status, headers) {
        delete headers.connection;
        delete headers['keep-alive'];
        delete headers['transfer-encoding'];
        if (id !== undefined) headers['x-request-id'] = id;
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
};
(tls ? createSecureServer({ ...tls, allowHTTP1: true }, handle) : createServer(handle)).listen(port, '127.0.0.1');
process.on('SIGINT', () => process.exit(0));

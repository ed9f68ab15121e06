// Minimal upstream for the proxy benchmark: answers every request with a small body, keep-alive on.
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
const body = Buffer.from(JSON.stringify({ ok: true, port }));
createServer((request, response) => {
  request.resume();
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  response.end(body);
})
  .listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`))
  .keepAliveTimeout = 65_000;

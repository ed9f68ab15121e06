#!/usr/bin/env node
// The demo's TCP backend: a line server that answers each line it reads with `<name>: <line>`.
// Plain JavaScript run by node (its agent starts it), so that the demo needs no Redis or other server.
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, name: { type: 'string', default: 'tcp-backend' } } });
const server = createServer((socket) => {
  socket.setEncoding('utf8');
  let pending = '';
  socket.on('data', (text) => {
    pending += text;
    let end;
    while ((end = pending.indexOf('\n')) >= 0) {
      socket.write(`${values.name}: ${pending.slice(0, end).replace(/\r$/, '')}\n`);
      pending = pending.slice(end + 1);
    }
  });
  socket.on('error', () => undefined);
});
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(`${values.name} listening on 127.0.0.1:${values.port}\n`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));

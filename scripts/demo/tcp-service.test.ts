import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { tcpHello } from './tcp-service.ts';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** `tcpHello`, or 'hung' if it has not settled within `ms`. */
function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)))]).finally(() => clearTimeout(timer));
}

describe('tcpHello', () => {
  it('returns the first answer line', async () => {
    const port = await listen(createServer((socket) => socket.once('data', (line) => socket.end(`echo: ${line.toString().trim()}\nmore\n`))));
    expect(await tcpHello(port, 'hi')).toBe('echo: hi');
  });

  // A tcp entry point with no instance closes the client at once, before reading it: often a plain
  // FIN with no error, which also clears a socket's idle timeout. The demo once waited its whole minute on such a probe.
  it('settles when the peer closes without answering, however the close arrives', async () => {
    const port = await listen(createServer({ pauseOnConnect: true }, (socket) => socket.destroy()));
    const outcomes = [];
    for (let attempt = 0; attempt < 40; attempt += 1) outcomes.push(await settledWithin(tcpHello(port, 'hello', 5_000), 1_500));
    expect(outcomes.filter((outcome) => outcome !== undefined)).toEqual([]);
  }, 120_000);

  it('gives up at its deadline when the peer holds the connection silently', async () => {
    // It reads what comes and never answers.
    const port = await listen(createServer((socket) => socket.resume()));
    expect(await settledWithin(tcpHello(port, 'hello', 200), 2_000)).toBeUndefined();
  });

  it('settles when nothing listens', async () => {
    const port = await listen(createServer());
    servers.pop()!.close();
    expect(await settledWithin(tcpHello(port), 2_000)).toBeUndefined();
  });
});

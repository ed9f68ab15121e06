import { createServer } from 'node:net';

// Ports already handed out by this process: the kernel may offer a just-closed port again before its
// first user has bound it, and an ensemble asks for nine ports at once.
const handedOut = new Set<number>();

const MAX_ATTEMPTS = 20;

/** Resolves with a loopback TCP port that was free a moment ago and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const port = await ephemeralPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no fresh loopback port after ${MAX_ATTEMPTS} attempts`);
}

/**
 * Marks `ports` as handed out: ports this process was told to use (a program given its ports by a
 * test that chose them in another process), which `freePort` must not offer for something else while
 * they are not bound yet.
 */
export function reservePorts(...ports: number[]): void {
  for (const port of ports) if (port > 0) handedOut.add(port);
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('listen returned no port'))));
    });
  });
}

// Node's own listen reports "address already in use"; a cluster worker's bind through the primary
// reports only "bind EADDRINUSE <host>:<port>"; ZooKeeper throws a BindException.
const PORT_CLASH = /EADDRINUSE|address already in use|BindException/i;
const PORT_CLASH_ATTEMPTS = 3;

/**
 * Runs `start` again (up to 3 times) when it failed because another process took one of its ports between
 * freePort() and the bind; `start` must pick fresh ports and clean up after itself on failure.
 */
export async function retryOnPortClash<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await start();
    } catch (error) {
      if (attempt >= PORT_CLASH_ATTEMPTS || !PORT_CLASH.test(String((error as Error).message))) throw error;
    }
  }
}

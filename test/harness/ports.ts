import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

// Ports already handed out by this process: the kernel may offer a just-closed port again before its
// first user has bound it, and an ensemble asks for nine ports at once.
const handedOut = new Set<number>();

const MAX_ATTEMPTS = 20;

/**
 * Resolves with a loopback TCP port that was free a moment ago and that this process has not handed out before.
 *
 * It is picked below the kernel's ephemeral range (`ip_local_port_range`, 32768-60999 by default) where the
 * range leaves room: a port from inside it can be taken before its program binds it, not only by another
 * process's listen on port 0, but by any outgoing connection on the machine, whose local port the kernel picks
 * from the same range (a test run opens thousands: registry clients, probes, requests), and the program's
 * bind then fails with EADDRINUSE (CI run C at 284aa1e: an agent's backend). Below it only ports chosen the
 * same way land.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const port = (await portBelowEphemeralRange()) ?? (await ephemeralPort());
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no fresh loopback port after ${MAX_ATTEMPTS} attempts`);
}

/** The lowest port the harness picks from, and how much room below the ephemeral range it needs to pick there. */
const LOWEST_PICKED = 20_000;
const ROOM_NEEDED = 4_000;
let ephemeralStart: number | undefined;

/** The first port of the kernel's ephemeral range (Linux), or 32768 when it cannot be read. */
function ephemeralRangeStart(): number {
  if (ephemeralStart === undefined) {
    try {
      ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
    } catch {
      ephemeralStart = 32_768;
    }
  }
  return ephemeralStart;
}

/** A random port in [20000, ephemeral range start) that binds on loopback now, or undefined (no room there, or none found in a few tries). */
async function portBelowEphemeralRange(): Promise<number | undefined> {
  const end = ephemeralRangeStart();
  if (end - LOWEST_PICKED < ROOM_NEEDED) return undefined;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const port = LOWEST_PICKED + Math.floor(Math.random() * (end - LOWEST_PICKED));
    if (handedOut.has(port)) continue;
    if (await bindsNow(port)) return port;
  }
  return undefined;
}

/** Whether 127.0.0.1:`port` can be bound exclusively right now (it is bound and closed again at once). */
export function bindsNow(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Marks `ports` as handed out: ports this process was told to use (a program given its ports by a
 * test that chose them in another process), which `freePort` must not offer for something else while
 * they are not bound yet.
 */
export function reservePorts(...ports: number[]): void {
  for (const port of ports) if (port > 0) handedOut.add(port);
}

// Holds every refusing port's two ends until the process exits (unreferenced: they never keep it alive).
let holder: Promise<Server> | undefined;
const held: Socket[] = [];

/**
 * Resolves with a loopback TCP port that refuses every connection for as long as this process lives.
 *
 * A port that was bound and closed again ("free a moment ago") refuses only until someone binds it: the
 * kernel offers it again to a later listen on port 0, in this process or in any other, and then the
 * "refusing" instance answers (measured: 1 in 200 trials within 50 listens). Here the port is the local end
 * of an open outgoing connection instead, and a connect to it is refused (ECONNREFUSED): a listen on port 0
 * never picks it, and only a listen that names this very port could take it, which no port the harness hands
 * out is (they are below the ephemeral range).
 * The connection binds its local end before it connects (the kernel picks an odd port for a bind): a port
 * the kernel picked for a connect itself (an even one) it picks again for other connects, and a connect to it
 * then sometimes leaves from it, a TCP self-connect: the "refusing" instance answered the proxy's own request
 * back as its response (502 upstream-protocol, CI run C at 0c7f0d5). A port bound first is never a connect's pick.
 */
export async function refusingPort(): Promise<number> {
  holder ??= new Promise<Server>((resolve, reject) => {
    const server = createServer((accepted) => {
      accepted.unref();
      accepted.on('error', () => undefined);
      held.push(accepted);
    });
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
  });
  const server = await holder;
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the refusing-port holder has no address');
  const socket = await new Promise<Socket>((resolve, reject) => {
    // Bound before it connects (`localAddress`): see above for why the port is not the kernel's pick for a connect.
    const outgoing = connect({ host: '127.0.0.1', port: address.port, localAddress: '127.0.0.1' });
    outgoing.once('error', reject);
    outgoing.once('connect', () => resolve(outgoing));
  });
  socket.unref();
  socket.on('error', () => undefined);
  held.push(socket);
  const port = socket.localPort;
  if (port === undefined) throw new Error('the refusing-port connection has no local port');
  handedOut.add(port);
  return port;
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

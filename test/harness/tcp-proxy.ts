import { connect, createServer, type Server, type Socket } from 'node:net';

/** A loopback TCP relay in front of one target, used to partition one client from a registry that keeps running. */
export interface TcpProxy {
  readonly port: number;
  /** `127.0.0.1:<port>`, for a connect string. */
  readonly address: string;
  /** Keeps every socket open but relays no byte either way, and holds new connections unrelayed: a silent partition. */
  blackhole(): void;
  /** Destroys every relayed socket and refuses new connections (the port stops listening). */
  cut(): void;
  /** Relays again: held connections are connected to the target and buffered bytes flow. */
  restore(): void;
  /** Destroys every socket and stops listening; safe to call twice. */
  close(): Promise<void>;
}

type ProxyState = 'open' | 'blackholed' | 'cut' | 'closed';

const HOST = '127.0.0.1';

interface Relay {
  readonly client: Socket;
  upstream: Socket | undefined;
}

class TcpRelay implements TcpProxy {
  readonly port: number;
  readonly address: string;
  readonly #target: { host: string; port: number };
  readonly #relays = new Set<Relay>();
  #server: Server | undefined;
  #state: ProxyState = 'open';

  constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.address = `${HOST}:${port}`;
    this.#target = target;
  }

  async listen(): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: HOST, port: this.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A late listen error (port taken while cut) must not crash the test process; the next connect fails instead.
    server.on('error', () => undefined);
  }

  blackhole(): void {
    if (this.#state !== 'open') return;
    this.#state = 'blackholed';
    // Paused sockets stop reading, so bytes wait in kernel buffers, as they would behind a dropped link.
    for (const relay of this.#relays) {
      relay.client.pause();
      relay.upstream?.pause();
    }
  }

  cut(): void {
    if (this.#state === 'cut' || this.#state === 'closed') return;
    this.#state = 'cut';
    this.#destroyAll();
    this.#server?.close();
    this.#server = undefined;
  }

  restore(): void {
    if (this.#state === 'blackholed') {
      this.#state = 'open';
      for (const relay of this.#relays) {
        if (relay.upstream) {
          relay.client.resume();
          relay.upstream.resume();
        } else {
          this.#connectUpstream(relay);
        }
      }
    } else if (this.#state === 'cut') {
      this.#state = 'open';
      // listen() binds on the next tick for an IP literal, before any client's reconnect can arrive.
      void this.listen().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#destroyAll();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    if (this.#state === 'cut' || this.#state === 'closed') {
      client.destroy();
      return;
    }
    const relay: Relay = { client, upstream: undefined };
    this.#relays.add(relay);
    client.on('error', () => this.#drop(relay));
    client.on('close', () => this.#drop(relay));
    if (this.#state === 'blackholed') client.pause();
    else this.#connectUpstream(relay);
  }

  #connectUpstream(relay: Relay): void {
    const upstream = connect(this.#target);
    relay.upstream = upstream;
    upstream.on('error', () => this.#drop(relay));
    upstream.on('close', () => this.#drop(relay));
    // pipe() keeps backpressure; pause() on either end stops the flow in that direction.
    relay.client.pipe(upstream);
    upstream.pipe(relay.client);
    if (this.#state === 'blackholed') {
      relay.client.pause();
      upstream.pause();
    }
  }

  #drop(relay: Relay): void {
    if (!this.#relays.delete(relay)) return;
    relay.client.destroy();
    relay.upstream?.destroy();
  }

  #destroyAll(): void {
    for (const relay of [...this.#relays]) this.#drop(relay);
  }
}

/** Starts a relay on a free loopback port that forwards every connection to `target` until told otherwise. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const probe = createServer();
  const port = await new Promise<number>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host: HOST, port: 0 }, () => {
      const address = probe.address();
      probe.close();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
  const proxy = new TcpRelay(port, target);
  await proxy.listen();
  return proxy;
}

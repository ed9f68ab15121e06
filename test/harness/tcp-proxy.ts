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
  readonly #target: { host: string; port: number };
  readonly #relays = new Set<Relay>();
  #port = 0;
  #server: Server | undefined;
  #state: ProxyState = 'open';

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `${HOST}:${this.#port}`;
  }

  async listen(): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Port 0 the first time; after cut() the same port again, so the client's address stays valid.
      server.listen({ host: HOST, port: this.#port }, () => {
        server.off('error', reject);
        // cut() or close() ran while this listen was pending: give the port up again.
        if (this.#server !== server) server.close();
        const address = server.address();
        if (typeof address === 'object' && address) this.#port = address.port;
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
          resumeUnlessBlocked(relay.client, relay.upstream);
          resumeUnlessBlocked(relay.upstream, relay.client);
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
    this.#forward(relay.client, upstream);
    this.#forward(upstream, relay.client);
    if (this.#state === 'blackholed') {
      relay.client.pause();
      upstream.pause();
    } else {
      // A connection held during a blackhole was paused explicitly; a new 'data' listener does not undo that.
      relay.client.resume();
    }
  }

  // Not pipe(): pipe resumes its source on 'drain', which would leak bytes through a blackhole.
  #forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (to.write(chunk)) return;
      from.pause();
      to.once('drain', () => {
        if (this.#state === 'open') from.resume();
      });
    });
    from.on('end', () => to.end());
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
  const proxy = new TcpRelay(target);
  await proxy.listen();
  return proxy;
}

function resumeUnlessBlocked(from: Socket, to: Socket): void {
  if (!to.writableNeedDrain) from.resume();
}

import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, refusingPort } from './ports.ts';

function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve('connected')));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function listenError(port: number, host?: string): Promise<string> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen({ port, host }, () => server.close(() => resolve('listening')));
  });
}

describe('refusingPort', () => {
  it('refuses connections, and is never offered to a listen on port 0 nor as the local end of a connect', async () => {
    const port = await refusingPort();
    expect(await connectError(port)).toBe('ECONNREFUSED');
    // The failure it prevents: a port bound and closed again is offered to the next listen on port 0 and answers. (A listen
    // naming this very port could take it: no port the harness hands out is one, as they are below the ephemeral range.)
    // A connect that left from it to it would be a TCP self-connect, answered by its own request (502 upstream-protocol).
    const sources: number[] = [];
    const sink = createServer((accepted) => accepted.destroy());
    await new Promise<void>((resolve) => sink.listen({ host: '127.0.0.1', port: 0 }, resolve));
    try {
      for (let index = 0; index < 200; index += 1) {
        const socket = connect({ host: '127.0.0.1', port: (sink.address() as { port: number }).port });
        await new Promise((resolve) => socket.once('connect', resolve));
        sources.push(socket.localPort!);
        socket.destroy();
      }
    } finally {
      await new Promise((resolve) => sink.close(resolve));
    }
    expect(sources).not.toContain(port);
    const servers: Server[] = [];
    try {
      for (let index = 0; index < 200; index += 1) {
        const server = createServer();
        servers.push(server);
        await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
        expect((server.address() as { port: number }).port).not.toBe(port);
      }
    } finally {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    }
    expect(await connectError(port)).toBe('ECONNREFUSED');
  });

  it('hands out a different port each time, none of which freePort offers', async () => {
    const ports = await Promise.all(Array.from({ length: 5 }, () => refusingPort()));
    expect(new Set(ports).size).toBe(5);
    const free = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of free) expect(ports).not.toContain(port);
    for (const port of ports) expect(await connectError(port)).toBe('ECONNREFUSED');
  });
});

describe('freePort', () => {
  it('picks ports below the ephemeral range, which no outgoing connection or listen on port 0 takes meanwhile', async () => {
    const [start] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(start!);
      expect(await listenError(port, '127.0.0.1')).toBe('listening');
    }
  });
});

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
  it('refuses connections, cannot be listened on from any address, and is never offered to a listen on port 0', async () => {
    const port = await refusingPort();
    expect(await connectError(port)).toBe('ECONNREFUSED');
    // The failure it prevents: a port bound and closed again listens happily for the next taker (no host: every address,
    // IPv6 too where the machine has it).
    for (const host of ['127.0.0.1', '0.0.0.0', undefined]) expect(await listenError(port, host)).toBe('EADDRINUSE');
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

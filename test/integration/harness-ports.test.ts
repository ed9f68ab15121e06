import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, startGateway, type GatewayProcess } from '../harness/index.ts';

const CONFIG = `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  gone: { instances: ["127.0.0.1:1"], retries: { attempts: 1 } }
routes:
  - { path: /gone, service: gone }
`;

/**
 * Another program on a port the harness was given: what a process of the other test worker does
 * when the kernel hands both the same free port. It accepts and closes at once, so a harness that
 * took it for the gateway would hand the test a dead URL.
 */
async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('the holder has no port');
  return { server, port: address.port };
}

describe('a gateway from the harness when another process took a port it was given', () => {
  let holder: Awaited<ReturnType<typeof holdPort>>;
  let gateway: GatewayProcess | undefined;

  beforeAll(async () => {
    holder = await holdPort();
  });
  afterEach(async () => {
    await gateway?.process.stop();
    gateway = undefined;
  });
  afterAll(() => {
    holder?.server.close();
  });

  it('starts again on a fresh listener port, and the URL it gives is the gateway', async () => {
    gateway = await startGateway(CONFIG, {}, { firstPorts: { port: holder.port } });
    expect(gateway.port).not.toBe(holder.port);
    expect(gateway.process.running).toBe(true);
    // The gateway's own answer: its upstream refuses connections.
    expect((await fetch(`${gateway.url}/gone`)).status).toBe(502);
    // Not silently: the attempt that met the clash heads the log that a failing test prints.
    const log = await readFile(gateway.process.logFile, 'utf8');
    expect(log).toContain(`the gateway on port ${holder.port} exited before it listened`);
    expect(log).toMatch(new RegExp(`EADDRINUSE[^\\n]*127\\.0\\.0\\.1:${holder.port}\\b`));
  });

  it('starts again on a fresh admin port, and the admin port it gives is the gateway', async () => {
    gateway = await startGateway(CONFIG, {}, { firstPorts: { adminPort: holder.port } });
    expect(gateway.adminPort).not.toBe(holder.port);
    const services = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/services`)).json()) as { services: Array<{ name: string }> };
    expect(services.services.map((service) => service.name)).toEqual(['gone']);
  });

  it('starts again on a fresh port for a second entry point ({{port:<name>}}), and the port it gives is the gateway', async () => {
    const config = CONFIG.replace('listen: 127.0.0.1:{{port}}\n', 'entryPoints:\n  web: { listen: "127.0.0.1:{{port}}" }\n  other: { listen: "127.0.0.1:{{port:other}}" }\n');
    gateway = await startGateway(config, {}, { firstPorts: { ports: { other: holder.port } } });
    expect(gateway.ports.other).not.toBe(holder.port);
    expect((await fetch(`http://127.0.0.1:${gateway.ports.other}/gone`)).status).toBe(502);
    expect(await readFile(gateway.configPath, 'utf8')).toContain(`listen: "127.0.0.1:${gateway.ports.other}"`);
  });

  it('with workers: 2, starts again on a fresh listener port (a worker reports the clash as "bind EADDRINUSE")', async () => {
    gateway = await startGateway(`${CONFIG}workers: 2\n`, {}, { firstPorts: { port: holder.port } });
    expect(gateway.port).not.toBe(holder.port);
    expect((await fetch(`${gateway.url}/gone`)).status).toBe(502);
  });
});

describe('a backend from the harness when another process holds its port', () => {
  it('is refused as not started, not confused with the holder', async () => {
    const holder = await holdPort();
    try {
      // Given a port, the harness keeps it (a test restarting a backend where it was), so it cannot move it.
      await expect(startBackend({ port: holder.port })).rejects.toThrow(/exited before it listened[\s\S]*EADDRINUSE/);
    } finally {
      holder.server.close();
    }
  });
});

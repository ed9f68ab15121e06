import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayListeningIn, listeningPorts, waitForGatewayListening } from './listening-ports.ts';
import { acceptsConnections, REPO_ROOT } from './programs.ts';
import { makeTempDir } from './process.ts';

const line = (fields: object) => `${JSON.stringify({ level: 30, time: 1, ...fields })}\n`;

describe('gatewayListeningIn', () => {
  it.each([
    ['a one-process gateway', line({ msg: 'entry point listening', port: 4001 }) + line({ msg: 'gateway listening', ports: { web: 4001 }, admin: 4002 }), { port: 4001, ports: { web: 4001 }, adminPort: 4002 }],
    ['a gateway without admin, its one entry point not named web', line({ msg: 'gateway listening', ports: { edge: 4003 }, admin: null }), { port: 4003, ports: { edge: 4003 }, adminPort: undefined }],
    ['web among other entry points', line({ msg: 'gateway listening', ports: { tcp: 4004, web: 4005 }, admin: 4006 }), { port: 4005, ports: { tcp: 4004, web: 4005 }, adminPort: 4006 }],
    ['a primary with workers (its line names no entry point)', line({ msg: 'worker listening', worker: 1, ports: { web: 4007 } }) + line({ msg: 'gateway listening', workers: 2, admin: 4008 }), { port: 4007, ports: { web: 4007 }, adminPort: 4008 }],
  ])('reads the ports of %s', (_, log, expected) => {
    expect(gatewayListeningIn(log)).toEqual(expected);
  });

  it.each([
    ['nothing yet', ''],
    ['only a worker listening (the others still start)', line({ msg: 'worker listening', worker: 1, ports: { web: 4007 } })],
    ['the line still being written', line({ msg: 'gateway listening', ports: { web: 4001 }, admin: 4002 }).slice(0, -10)],
  ])('says not yet with %s', (_, log) => {
    expect(gatewayListeningIn(log)).toBeUndefined();
  });
});

describe('listeningPorts', () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it("lists this process's listeners, not its connections' ports, and no longer a closed one", async () => {
    const listen = async (host: string) => {
      const server = createServer((accepted) => sockets.push(accepted));
      servers.push(server);
      await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve));
      return (server.address() as { port: number }).port;
    };
    const [v4, v6] = [await listen('127.0.0.1'), await listen('::1')];
    const client = connect({ host: '127.0.0.1', port: v4 });
    sockets.push(client);
    await new Promise((resolve) => client.once('connect', resolve));
    const ports = await listeningPorts(process.pid);
    expect(ports).toContain(v4);
    expect(ports).toContain(v6);
    expect(ports).not.toContain(client.localPort);
    // close() waits for the connections to end; the listener itself is gone at once.
    servers.shift()!.close();
    expect(await listeningPorts(process.pid)).not.toContain(v4);
  });
});

describe('waitForGatewayListening', () => {
  it('tells the ports of a real gateway told to listen on port 0, and rejects at once when the gateway exits first', async () => {
    const dir = await makeTempDir('sb-listening-');
    const start = async (config: string) => {
      const configPath = join(dir, `gateway-${Date.now()}.yaml`);
      await writeFile(configPath, config);
      const logFile = `${configPath}.log`;
      const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath], {
        stdio: ['ignore', 'ignore', openSync(logFile, 'a')],
        // Under Vitest the gateway's level is silent unless told.
        env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
        cwd: REPO_ROOT,
      });
      const listening = waitForGatewayListening(() => readFile(logFile, 'utf8'), () => child.exitCode !== null || child.signalCode !== null);
      return { child, listening };
    };
    const good = await start('listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nservices:\n  a: { instances: ["127.0.0.1:1"] }\nroutes:\n  - { path: /, service: a }\n');
    try {
      const { port, adminPort } = await good.listening;
      expect(await acceptsConnections(port)).toBe(true);
      expect((await fetch(`http://127.0.0.1:${adminPort}/api/services`)).status).toBe(200);
      expect(await listeningPorts(good.child.pid!)).toEqual([port, adminPort!].sort((a, b) => a - b));
    } finally {
      good.child.kill('SIGKILL');
    }
    const refused = await start('listen: 127.0.0.1:99999\nadmin: false\n');
    try {
      await expect(refused.listening).rejects.toThrow(/the gateway exited before it listened\n.*listen \(line 1\)/);
    } finally {
      refused.child.kill('SIGKILL');
    }
  });
});

// The demo's TCP service: a line server (tcp-backend.mjs) registered by its own agent with
// `--health tcp`, behind a tcp entry point of the gateway. Kept apart from the HTTP members.
import { connect } from 'node:net';
import { join } from 'node:path';
import { DemoChild } from './child.ts';
import type { DemoMember, MemberContext } from './members.ts';

/** The service the TCP backend registers as, and the name of the gateway's tcp entry point. */
export const DEMO_TCP_SERVICE = 'demo-tcp';

/** The `entryPoints` entry the demo configuration adds (YAML, indented for the `entryPoints:` map). */
export function demoTcpEntryPoint(port: number): string {
  return `  tcp: { listen: "127.0.0.1:${port}", protocol: tcp, service: ${DEMO_TCP_SERVICE} }   # L4: bytes to the line server\n`;
}

/** Prepares (does not start) the agent of `tcp-backend-1` on `port`: a TCP connect check, no HTTP. */
export function demoTcpMember(context: MemberContext, port: number): DemoMember {
  const name = 'tcp-backend-1';
  const agent = new DemoChild({
    name: `${name} (agent and backend)`,
    command: process.execPath,
    args: [
      join(context.repoRoot, 'bin/switchboard-agent.js'),
      '--registry', `zk://${context.zooKeeper}/services`,
      '--service', DEMO_TCP_SERVICE,
      '--id', name,
      '--port', String(port),
      '--health', 'tcp', '--interval', '500ms', '--rise', '1', '--fall', '2', '--ttl', '4s', '--drain', '0s',
      '--', process.execPath, join(context.repoRoot, 'scripts/demo/tcp-backend.mjs'), '--port', String(port), '--name', name,
    ],
    logFile: join(context.logDir, `${name}.log`),
    cwd: context.repoRoot,
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
    onUnexpectedExit: context.onUnexpectedExit,
  });
  return { name, weight: 1, port, agent };
}

/**
 * Sends one line through the gateway's tcp entry point and resolves with the answer line, or with
 * undefined when the connection fails, closes without an answer (a tcp entry point closes a
 * connection it has no instance for, often with a plain FIN and no error) or gives no answer within
 * `timeoutMs`.
 */
export function tcpHello(port: number, line = 'hello', timeoutMs = 1_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    let settled = false;
    const done = (value: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      resolve(value);
    };
    // A deadline of its own: socket.setTimeout is an idle timer, which a close without an error
    // clears, and then nothing would ever settle this (a waitFor awaiting it would lose its whole budget).
    const deadline = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
    socket.on('connect', () => socket.write(`${line}\n`));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\n')) done(answer.slice(0, answer.indexOf('\n')));
    });
  });
}

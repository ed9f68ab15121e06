import { readdir, readFile, readlink } from 'node:fs/promises';
import { waitFor } from './wait.ts';

// A program told to listen on port 0 binds a port nobody else holds: no clash with a program of the
// other test worker is possible, unlike a port chosen ahead with freePort(). These tell a test which
// port it got, for the programs it starts itself (startGateway starts on chosen ports and retries).

/** The ports a gateway bound, as its "gateway listening" log line (and, with `workers`, a "worker listening" line) says. */
export interface GatewayListening {
  /** The `web` entry point's port, or the only entry point's. */
  readonly port: number;
  /** Each entry point's port, by name. */
  readonly ports: Readonly<Record<string, number>>;
  /** The admin listener's port; undefined with `admin: false`. */
  readonly adminPort: number | undefined;
}

interface LogLine {
  msg?: string;
  ports?: Record<string, number>;
  admin?: number | null;
}

/**
 * What the gateway whose JSON log is `log` bound, once its "gateway listening" line (logged at info, after
 * every listener, admin included, is bound) is there; undefined before. With `workers`, the primary's line
 * names no entry point ports: they come from a "worker listening" line (every worker shares them).
 */
export function gatewayListeningIn(log: string): GatewayListening | undefined {
  let listening: LogLine | undefined;
  let worker: LogLine | undefined;
  // The last piece is a line still being written (or nothing).
  for (const text of log.split('\n').slice(0, -1)) {
    if (!text.includes('"msg":"gateway listening"') && !text.includes('"msg":"worker listening"')) continue;
    const line = JSON.parse(text) as LogLine;
    if (line.msg === 'gateway listening') listening = line;
    else worker ??= line;
  }
  const ports = listening?.ports ?? worker?.ports;
  if (listening === undefined || ports === undefined) return undefined;
  const port = ports.web ?? Object.values(ports)[0];
  if (port === undefined) throw new Error(`the gateway says it listens on no entry point: ${JSON.stringify(listening)}`);
  return { port, ports, adminPort: listening.admin ?? undefined };
}

/**
 * Waits until the gateway's log (`readLog`, at level info or below) says it listens and resolves with its ports; rejects at once
 * when `exited()` says the gateway ended first, with its log (a refused config, a port it could not bind).
 * Some 300 ms on a quiet machine; the bound is for a loaded CI machine.
 */
export async function waitForGatewayListening(readLog: () => Promise<string>, exited: () => boolean, timeoutMs = 30_000): Promise<GatewayListening> {
  const state = await waitFor(async () => (exited() ? 'exited' : gatewayListeningIn(await readLog())), { timeoutMs, message: 'the gateway to log that it listens' }).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await readLog().catch(String)}`);
  });
  if (state === 'exited') throw new Error(`the gateway exited before it listened\n${await readLog().catch(String)}`);
  return state;
}

const TCP_LISTEN = '0A';

/**
 * The loopback-or-any TCP ports process `pid` listens on right now (Linux: its socket descriptors in
 * /proc/<pid>/fd matched to the LISTEN sockets of /proc/<pid>/net/tcp and tcp6), for a program that
 * cannot say which port it got (its log goes to a pipe the test must leave alone).
 */
export async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    // A descriptor closed meanwhile is simply not counted.
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8');
    // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …", addresses as hex ip:port.
    for (const row of text.split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/);
      if (fields[3] !== TCP_LISTEN || !inodes.has(fields[9] ?? '')) continue;
      ports.add(Number.parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}
